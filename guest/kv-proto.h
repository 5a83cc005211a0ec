/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The key-value service's wire format, shared by the guest firmware (guest/)
 * and the Linux client (tests/tools/kvclient.c). One request or reply per UDP
 * datagram; every integer is little-endian. Freestanding: only <stdint.h>.
 *
 * Request (KV_REQ_HDR_LEN bytes, then key_len key bytes, then value_len
 * value bytes; the datagram is exactly that long):
 *    0  u32 magic       KV_MAGIC
 *    4  u8  version     KV_VERSION
 *    5  u8  op          enum kv_op
 *    6  u8  key_len     0..KV_KEY_MAX
 *    7  u8  reserved    0
 *    8  u32 client_id
 *   12  u16 value_len   0..KV_VALUE_MAX
 *   14  u16 reserved    0
 *   16  u64 request_id
 *
 * Reply (KV_REP_HDR_LEN bytes, then value_len value bytes):
 *    0  u32 magic       KV_MAGIC
 *    4  u8  version     KV_VERSION
 *    5  u8  status      enum kv_status
 *    6  u8  op          the request's op
 *    7  u8  reserved    0
 *    8  u32 client_id   the request's client_id
 *   12  u16 value_len
 *   14  u16 reserved    0
 *   16  u64 request_id  the request's request_id
 *
 * Exactly once: the server remembers, per client_id, the last request_id it
 * executed and the reply it sent. A request carrying that id again gets the
 * same reply without being executed again; a smaller id gets no reply at
 * all. A client therefore retries with the same id until it gets an answer,
 * and uses a larger id for each new request.
 *
 * Ops:
 *   PUT   key, value           -> OK (no value) or FULL
 *   GET   key                  -> OK + value, or NOT_FOUND
 *   INCR  key, value = s64 delta
 *                              -> OK + the new s64 value; a missing key
 *                                 counts from 0; BAD_REQUEST if the stored
 *                                 value is not 8 bytes long
 *   DEL   key                  -> OK or NOT_FOUND
 *   STATS (no key, no value)   -> OK + "name=value name=value ..." text
 *   FSCK  (no key, no value)   -> OK + KV_FSCK_LEN bytes: u32 slots that
 *                                 differ between the table in memory and
 *                                 its disk mirror (the header counts as
 *                                 one), u32 items, u32 slots, u32 flags
 *                                 (KV_FSCK_DISK: the mirror is on; without
 *                                 it nothing was compared)
 */
#ifndef KV_PROTO_H
#define KV_PROTO_H

#include <stdint.h>

#define KV_MAGIC 0x564b4454u    /* "TDKV" on the wire */
#define KV_VERSION 1u
#define KV_DEFAULT_PORT 7000u

#define KV_KEY_MAX 64u
#define KV_VALUE_MAX 512u

#define KV_REQ_HDR_LEN 24u
#define KV_REP_HDR_LEN 24u
#define KV_REQ_MAX (KV_REQ_HDR_LEN + KV_KEY_MAX + KV_VALUE_MAX)
#define KV_REP_MAX (KV_REP_HDR_LEN + KV_VALUE_MAX)

/* Field offsets, common to requests and replies unless named otherwise. */
#define KV_OFF_MAGIC 0u
#define KV_OFF_VERSION 4u
#define KV_OFF_OP 5u            /* request */
#define KV_OFF_STATUS 5u        /* reply */
#define KV_OFF_KEY_LEN 6u       /* request */
#define KV_OFF_REP_OP 6u        /* reply */
#define KV_OFF_RSVD8 7u
#define KV_OFF_CLIENT_ID 8u
#define KV_OFF_VALUE_LEN 12u
#define KV_OFF_RSVD16 14u
#define KV_OFF_REQUEST_ID 16u

/* Numbers are never reused; a retired op stays reserved. */
enum kv_op {
    KV_OP_PUT = 1,
    KV_OP_GET = 2,
    KV_OP_INCR = 3,
    KV_OP_DEL = 4,
    KV_OP_STATS = 5,
    KV_OP_FSCK = 6,
};

#define KV_FSCK_LEN 16u
#define KV_FSCK_DISK 0x1u

enum kv_status {
    KV_OK = 0,
    KV_NOT_FOUND = 1,
    KV_BAD_REQUEST = 2,
    KV_FULL = 3,
};

static inline void kv_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void kv_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void kv_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t kv_get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t kv_get_le32(const uint8_t *p)
{
    uint32_t v = 0;

    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline uint64_t kv_get_le64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

#endif
