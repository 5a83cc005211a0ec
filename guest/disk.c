/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The KV table mirrored onto the disk (layout: kv-disk.h). Every mutation
 * writes the slots it changed before kv_handle returns, so before the reply
 * is sent; a fresh boot over the same disk loads the table back. A disk
 * error stops the guest with a panic: the mirror never silently diverges
 * from memory.
 *
 * Writes are not flushed one by one: the disk's durability is the export's
 * (replicated with the epoch); the guest flushes after it initialises the
 * disk.
 */
#include "guest.h"

#define CHUNK_SLOTS 64u
#define CHUNK_BYTES (CHUNK_SLOTS * KVD_SLOT_SIZE)

static uint8_t dbuf[CHUNK_BYTES] __attribute__((aligned(4096)));
static uint8_t fbuf[CHUNK_BYTES] __attribute__((aligned(4096)));

static void disk_read(uint64_t off, void *buf, uint32_t len)
{
    int r = hc_disk_read(off, buf, len);

    if (r < 0)
        guest_panic("kv-guest: disk read of %u bytes at %llu failed (%d)",
                    len, (unsigned long long)off, r);
}

static void disk_write(uint64_t off, const void *buf, uint32_t len)
{
    int r = hc_disk_write(off, buf, len);

    if (r < 0)
        guest_panic("kv-guest: disk write of %u bytes at %llu failed (%d)",
                    len, (unsigned long long)off, r);
}

static void disk_flush(void)
{
    int r = hc_disk_flush();

    if (r < 0)
        guest_panic("kv-guest: disk flush failed (%d)", r);
}

static void slot_encode(const struct kv *kv, uint32_t i, uint8_t *out)
{
    const struct kv_slot *s = &kv->slots[i];

    kvd_slot_encode(out, s->used, s->key_len, s->value_len, s->hash, s->key,
                    s->value);
}

/* Slots first .. first + count - 1, no wrap. */
static void write_run(struct kv *kv, uint32_t first, uint32_t count)
{
    while (count) {
        uint32_t n = count < CHUNK_SLOTS ? count : CHUNK_SLOTS;
        for (uint32_t k = 0; k < n; k++)
            slot_encode(kv, first + k, dbuf + k * KVD_SLOT_SIZE);
        disk_write(kvd_slot_offset(first), dbuf, n * KVD_SLOT_SIZE);
        first += n;
        count -= n;
    }
}

static void mirror_sync(struct kv *kv, uint32_t first, uint32_t count)
{
    uint32_t slots = kv->mask + 1, head;

    if (count > slots)
        count = slots;
    head = slots - first < count ? slots - first : count;
    write_run(kv, first, head);
    if (count > head)
        write_run(kv, 0, count - head);
}

static uint32_t mirror_fsck(struct kv *kv)
{
    uint32_t slots = kv->mask + 1, differ = 0;

    kvd_header_encode(fbuf, kv->seed, slots);
    disk_read(0, dbuf, KVD_HDR_SIZE);
    if (memcmp(fbuf, dbuf, KVD_HDR_SIZE)) {
        guest_log("fsck: the disk's header differs");
        differ++;
    }
    for (uint32_t first = 0; first < slots; first += CHUNK_SLOTS) {
        uint32_t n = slots - first < CHUNK_SLOTS ? slots - first : CHUNK_SLOTS;
        disk_read(kvd_slot_offset(first), dbuf, n * KVD_SLOT_SIZE);
        for (uint32_t k = 0; k < n; k++) {
            slot_encode(kv, first + k, fbuf);
            if (memcmp(fbuf, dbuf + k * KVD_SLOT_SIZE, KVD_SLOT_SIZE)) {
                if (differ < 8)
                    guest_log("fsck: slot %u differs", first + k);
                differ++;
            }
        }
    }
    guest_log("fsck: %u items, %u slots, %u differ", kv->items, slots, differ);
    return differ;
}

static const struct kv_mirror disk_mirror = {
    .sync = mirror_sync,
    .fsck = mirror_fsck,
};

/* The table from the disk, over the empty one kv_init made. */
static void load(struct kv *kv, uint32_t seed)
{
    uint32_t slots = kv->mask + 1, bad;
    struct kvd_slot ds;
    const char *why;

    kv->seed = seed;
    kv->items = 0;
    for (uint32_t first = 0; first < slots; first += CHUNK_SLOTS) {
        uint32_t n = slots - first < CHUNK_SLOTS ? slots - first : CHUNK_SLOTS;
        disk_read(kvd_slot_offset(first), dbuf, n * KVD_SLOT_SIZE);
        for (uint32_t k = 0; k < n; k++) {
            struct kv_slot *s = &kv->slots[first + k];
            why = kvd_slot_decode(dbuf + k * KVD_SLOT_SIZE, seed, &ds);
            if (why)
                guest_panic("kv-guest: disk: slot %u: %s", first + k, why);
            s->used = ds.used;
            if (!ds.used)
                continue;
            s->key_len = ds.key_len;
            s->value_len = ds.value_len;
            s->hash = ds.hash;
            memcpy(s->key, ds.key, ds.key_len);
            memcpy(s->value, ds.value, ds.value_len);
            kv->items++;
        }
    }
    why = kv_check(kv, &bad);
    if (why)
        guest_panic("kv-guest: disk: the table is not consistent at slot %u: "
                    "%s", bad, why);
}

/* Free slots, then the header last: a boot interrupted halfway finds no
 * valid header and starts over. */
static void format(struct kv *kv)
{
    uint32_t slots = kv->mask + 1;

    memset(dbuf, 0, KVD_HDR_SIZE);
    disk_write(0, dbuf, KVD_HDR_SIZE);
    disk_flush();
    write_run(kv, 0, slots);
    disk_flush();
    kvd_header_encode(dbuf, kv->seed, slots);
    disk_write(0, dbuf, KVD_HDR_SIZE);
    disk_flush();
}

void disk_attach(struct kv *kv)
{
    uint32_t slots = kv->mask + 1, seed, dslots;
    uint64_t size = 0, need = kvd_disk_bytes(slots);
    const char *why;
    int r;

    r = hc_disk_info(&size);
    if (r == -UVM_ENOSYS) {
        guest_log("disk: none, the KV table is in memory only");
        return;
    }
    if (r < 0)
        guest_panic("kv-guest: disk: no size (%d)", r);
    if (size < need) {
        guest_log("disk: %llu bytes, the table of %u slots needs %llu: "
                  "running WITHOUT the disk mirror",
                  (unsigned long long)size, slots, (unsigned long long)need);
        return;
    }
    disk_read(0, dbuf, KVD_HDR_SIZE);
    why = kvd_header_decode(dbuf, &seed, &dslots);
    if (!why && dslots == slots) {
        load(kv, seed);
        guest_log("disk: loaded %u items (%u slots) from the disk", kv->items,
                  slots);
    } else {
        if (!why)
            guest_log("disk: holds a table of %u slots, this one has %u: "
                      "starting an empty one", dslots, slots);
        else
            guest_log("disk: %s: starting an empty table", why);
        format(kv);
        guest_log("disk: %u slots initialised", slots);
    }
    kv->mirror = &disk_mirror;
}
