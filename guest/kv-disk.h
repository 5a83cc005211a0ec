/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The KV table on the micro-VM's disk, shared by the guest firmware
 * (guest/disk.c writes it), the offline checker (tests/tools/kvdisk.c) and
 * the tests. Freestanding: only <stdint.h>, <stddef.h>, <stdbool.h>, and no
 * library calls. Every integer is little-endian.
 *
 * The disk mirrors the hash table slot for slot, so a slot's place on disk
 * is its place in memory and a mutation rewrites only the slots it
 * changed (a put or incr one slot, a del the run its backward shift moved).
 *
 * Header, sector 0 (KVD_HDR_SIZE bytes):
 *    0  u32 magic       KVD_MAGIC
 *    4  u32 version     KVD_VERSION
 *    8  u32 seed        the hash seed (kvd_hash); a table loaded from disk
 *                       keeps it
 *   12  u32 slots       slot count, a power of 2, >= 8
 *   16  u32 slot_size   KVD_SLOT_SIZE
 *   20  ... zero
 *  508  u32 CRC32C of bytes 0..507
 *
 * Slot i at byte kvd_slot_offset(i) = KVD_HDR_SIZE + i * KVD_SLOT_SIZE,
 * whole sectors. A free slot is KVD_SLOT_SIZE zero bytes. A used one:
 *    0  u8  used        1
 *    1  u8  key_len     1..KV_KEY_MAX
 *    2  u16 value_len   0..KV_VALUE_MAX
 *    4  u32 hash        kvd_hash(seed, key)
 *    8  key[KV_KEY_MAX]     bytes past key_len zero
 *   72  value[KV_VALUE_MAX] bytes past value_len zero
 *  584  ... zero
 * 1020  u32 CRC32C of bytes 0..583
 *
 * The table is linear probing with deletion by backward shift (kv.c): a
 * consistent image also has every used slot reachable from its home slot
 * (hash & (slots - 1)) without crossing a free one, no key twice, and at
 * most kvd_max_items(slots) items.
 */
#ifndef KV_DISK_H
#define KV_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv-proto.h"

#define KVD_MAGIC 0x44564b54u   /* "TKVD" */
#define KVD_VERSION 1u
#define KVD_SECTOR 512u
#define KVD_HDR_SIZE 512u
#define KVD_SLOT_SIZE 1024u
#define KVD_SLOT_BODY (8u + KV_KEY_MAX + KV_VALUE_MAX)     /* 584 */
#define KVD_OFF_KEY 8u
#define KVD_OFF_VALUE (8u + KV_KEY_MAX)

static inline uint64_t kvd_slot_offset(uint32_t i)
{
    return KVD_HDR_SIZE + (uint64_t)i * KVD_SLOT_SIZE;
}

/* The disk a table of this many slots needs. */
static inline uint64_t kvd_disk_bytes(uint32_t slots)
{
    return kvd_slot_offset(slots);
}

/* kv.c's fill limit: keeps probe runs short, guarantees a free slot. */
static inline uint32_t kvd_max_items(uint32_t slots)
{
    return slots - slots / 8;
}

/* FNV-1a, seeded: the table's hash (kv.c uses this one). */
static inline uint32_t kvd_hash(uint32_t seed, const uint8_t *key, size_t len)
{
    uint32_t h = 2166136261u ^ seed;

    for (size_t i = 0; i < len; i++) {
        h ^= key[i];
        h *= 16777619u;
    }
    return h;
}

/* CRC32C (Castagnoli), as tdm_crc32c(0, ...), four bits at a time. */
static inline uint32_t kvd_crc32c(const uint8_t *p, size_t n)
{
    static const uint32_t t[16] = {
        0x00000000u, 0x105ec76fu, 0x20bd8edeu, 0x30e349b1u,
        0x417b1dbcu, 0x5125dad3u, 0x61c69362u, 0x7198540du,
        0x82f63b78u, 0x92a8fc17u, 0xa24bb5a6u, 0xb21572c9u,
        0xc38d26c4u, 0xd3d3e1abu, 0xe330a81au, 0xf36e6f75u,
    };
    uint32_t c = ~0u;

    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        c = (c >> 4) ^ t[c & 15];
        c = (c >> 4) ^ t[c & 15];
    }
    return ~c;
}

static inline void kvd_header_encode(uint8_t *out, uint32_t seed,
                                     uint32_t slots)
{
    for (size_t i = 0; i < KVD_HDR_SIZE; i++)
        out[i] = 0;
    kv_put_le32(out, KVD_MAGIC);
    kv_put_le32(out + 4, KVD_VERSION);
    kv_put_le32(out + 8, seed);
    kv_put_le32(out + 12, slots);
    kv_put_le32(out + 16, KVD_SLOT_SIZE);
    kv_put_le32(out + KVD_HDR_SIZE - 4, kvd_crc32c(out, KVD_HDR_SIZE - 4));
}

/* NULL, or what is wrong. */
static inline const char *kvd_header_decode(const uint8_t *in, uint32_t *seed,
                                            uint32_t *slots)
{
    uint32_t n;

    if (kv_get_le32(in) != KVD_MAGIC)
        return "no KV table (bad magic)";
    if (kv_get_le32(in + KVD_HDR_SIZE - 4) != kvd_crc32c(in, KVD_HDR_SIZE - 4))
        return "header checksum mismatch";
    if (kv_get_le32(in + 4) != KVD_VERSION)
        return "unknown version";
    if (kv_get_le32(in + 16) != KVD_SLOT_SIZE)
        return "unknown slot size";
    n = kv_get_le32(in + 12);
    if (n < 8 || (n & (n - 1)))
        return "slot count is not a power of 2 >= 8";
    for (size_t i = 20; i < KVD_HDR_SIZE - 4; i++)
        if (in[i])
            return "reserved header bytes not zero";
    *seed = kv_get_le32(in + 8);
    *slots = n;
    return NULL;
}

static inline void kvd_slot_encode(uint8_t *out, bool used, uint8_t key_len,
                                   uint16_t value_len, uint32_t hash,
                                   const uint8_t *key, const uint8_t *value)
{
    for (size_t i = 0; i < KVD_SLOT_SIZE; i++)
        out[i] = 0;
    if (!used)
        return;
    out[0] = 1;
    out[1] = key_len;
    kv_put_le16(out + 2, value_len);
    kv_put_le32(out + 4, hash);
    for (size_t i = 0; i < key_len; i++)
        out[KVD_OFF_KEY + i] = key[i];
    for (size_t i = 0; i < value_len; i++)
        out[KVD_OFF_VALUE + i] = value[i];
    kv_put_le32(out + KVD_SLOT_SIZE - 4, kvd_crc32c(out, KVD_SLOT_BODY));
}

struct kvd_slot {
    bool used;
    uint8_t key_len;
    uint16_t value_len;
    uint32_t hash;
    const uint8_t *key, *value;     /* into the decoded buffer */
};

/* NULL, or what is wrong with the slot. */
static inline const char *kvd_slot_decode(const uint8_t *in, uint32_t seed,
                                          struct kvd_slot *s)
{
    s->used = in[0] != 0;
    s->key_len = in[1];
    s->value_len = kv_get_le16(in + 2);
    s->hash = kv_get_le32(in + 4);
    s->key = in + KVD_OFF_KEY;
    s->value = in + KVD_OFF_VALUE;
    if (!s->used) {
        for (size_t i = 0; i < KVD_SLOT_SIZE; i++)
            if (in[i])
                return "free slot not zero";
        return NULL;
    }
    if (in[0] != 1)
        return "bad used flag";
    if (kv_get_le32(in + KVD_SLOT_SIZE - 4) != kvd_crc32c(in, KVD_SLOT_BODY))
        return "checksum mismatch";
    if (!s->key_len || s->key_len > KV_KEY_MAX)
        return "bad key length";
    if (s->value_len > KV_VALUE_MAX)
        return "bad value length";
    for (size_t i = KVD_OFF_KEY + s->key_len; i < KVD_OFF_VALUE; i++)
        if (in[i])
            return "bytes past the key not zero";
    for (size_t i = KVD_OFF_VALUE + s->value_len; i < KVD_SLOT_SIZE - 4; i++)
        if (in[i])
            return "bytes past the value not zero";
    if (s->hash != kvd_hash(seed, s->key, s->key_len))
        return "hash does not match the key";
    return NULL;
}

#endif
