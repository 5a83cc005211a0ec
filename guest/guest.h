/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The micro-VM firmware's private header. net.c, kv.c, fmt.c and cmdline.c
 * build both freestanding (the firmware) and hosted (tests/unit/
 * test-guest-kv.c, which supplies the hc_* functions they call); start.S,
 * main.c, disk.c, hc.c and rt.c are the firmware's alone.
 */
#ifndef GUEST_H
#define GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv-disk.h"
#include "kv-proto.h"
#include "uvm-abi.h"

#if __STDC_HOSTED__
#include <string.h>
#else
/* rt.c */
void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
#endif

#define GUEST_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define GUEST_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- main.c: entered from start.S with .bss zeroed ---- */

_Noreturn void guest_main(uint64_t ram_size);
/* The message to the host (UVM_HC_PANIC); the guest stops there. */
_Noreturn void guest_panic(const char *fmt, ...) GUEST_PRINTF(1, 2);

/* ---- hypercalls (hc.c; the unit test has its own) ---- */

int hc_console(const void *buf, size_t len);
int hc_random(void *buf, size_t len);
int hc_net_info(struct uvm_net_info *info);
int hc_net_tx(const void *frame, size_t len);
int hc_net_rx(void *buf, size_t len);
int hc_wait(uint64_t timeout_us);
int hc_config(char *buf, size_t len);
int hc_disk_info(uint64_t *size);
int hc_disk_read(uint64_t offset, void *buf, uint32_t len);
int hc_disk_write(uint64_t offset, const void *buf, uint32_t len);
int hc_disk_flush(void);
_Noreturn void hc_panic(const char *msg, size_t len);

/* ---- fmt.c: a printf subset (%d %u %x %s %c %%, l/ll/z, width, 0, %.*s) ---- */

int fmt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int fmt_snprintf(char *buf, size_t size, const char *fmt, ...) GUEST_PRINTF(3, 4);
/* One console line, "kv-guest: " prefixed. */
void guest_log(const char *fmt, ...) GUEST_PRINTF(1, 2);

/* ---- cmdline.c: the "extra" string, "key=value" words ---- */

struct guest_config {
    uint16_t port;              /* KV service UDP port */
    uint32_t dirty;             /* pages dirtied per loop iteration */
    uint32_t dirty_us;          /* pause between iterations */
};

void guest_config_init(struct guest_config *cfg);
/* Returns 0, or -1 after logging what is wrong; cfg changes only on 0. */
int guest_config_parse(struct guest_config *cfg, const char *s);

/* ---- kv.c: storage, per-client dedupe, request dispatch ---- */

#define KV_CLIENTS 256u

struct kv_slot {
    uint8_t used;
    uint8_t key_len;
    uint16_t value_len;
    uint32_t hash;
    uint8_t key[KV_KEY_MAX];
    uint8_t value[KV_VALUE_MAX];
};

struct kv_client {
    uint8_t valid;
    uint16_t reply_len;
    uint32_t client_id;
    uint64_t request_id;
    uint64_t last_used;         /* kv->clock when last seen, for LRU */
    uint8_t reply[KV_REP_MAX];
};

struct kv_stats {
    uint64_t requests;          /* well-formed datagrams */
    uint64_t executed;
    uint64_t replayed;          /* retries answered from the cache */
    uint64_t stale;             /* older ids, ignored */
    uint64_t bad;               /* dropped or answered BAD_REQUEST */
    uint64_t full;
    uint64_t evicted;           /* clients pushed out of the dedupe table */
};

struct net_stats;

struct kv;

/* A copy of the table elsewhere (disk.c: the disk). Both are called on the
 * request path, before the reply exists. */
struct kv_mirror {
    /* Slots first .. first + count - 1 (modulo the slot count) changed. */
    void (*sync)(struct kv *kv, uint32_t first, uint32_t count);
    /* How many slots differ from the copy (the header counts as one). */
    uint32_t (*fsck)(struct kv *kv);
};

struct kv {
    struct kv_slot *slots;
    uint32_t mask;              /* slot count - 1; the count is a power of 2 */
    uint32_t items, max_items;
    uint32_t seed;
    uint64_t clock;
    struct kv_stats stats;
    const struct net_stats *net_stats;  /* for STATS; may be NULL */
    const struct kv_mirror *mirror;     /* NULL: memory only */
    struct kv_client clients[KV_CLIENTS];
};

/* mem/bytes: the store's own memory. Returns -1 if it holds < 8 slots. */
int kv_init(struct kv *kv, void *mem, size_t bytes, uint32_t seed);
/* Handles one request datagram; writes the reply (<= KV_REP_MAX bytes)
 * to reply and returns its length, or 0 when nothing is to be sent. */
size_t kv_handle(struct kv *kv, const uint8_t *req, size_t len, uint8_t *reply);
/* NULL if the table is consistent (every used slot reachable from its home
 * slot, hashes right, item count right), else what is wrong; *slot_r gets
 * the slot. For a table loaded from elsewhere. */
const char *kv_check(const struct kv *kv, uint32_t *slot_r);

/* ---- disk.c: the table mirrored onto the disk (firmware only) ---- */

/* No disk, or one too small: logs it, leaves kv as it is. Otherwise loads
 * the table from the disk if it holds one of this geometry, or writes this
 * one there, and sets kv->mirror. Panics on a disk error. */
void disk_attach(struct kv *kv);

/* ---- net.c: Ethernet, ARP, IPv4, ICMP echo, UDP ---- */

#define NET_ARP_ENTRIES 16u
#define NET_TX_RETRY_US 1000u

struct net_arp {
    uint32_t ip;                /* host byte order; 0 = free */
    uint8_t mac[6];
    uint64_t last_used;
};

struct net_stats {
    uint64_t rx;
    uint64_t malformed;         /* truncated, bad checksum, bad header */
    uint64_t ignored;           /* well-formed but not for us */
    uint64_t fragments;
    uint64_t arp_replies;
    uint64_t icmp_replies;
    uint64_t udp_rx;
    uint64_t tx;
    uint64_t tx_retries;        /* -UVM_EAGAIN, waited and sent again */
    uint64_t tx_errors;
};

struct net {
    uint8_t mac[6];
    uint32_t ip;                /* host byte order, as all IPs in net.c */
    uint16_t port;
    uint16_t ip_id;
    uint64_t clock;
    struct kv *kv;
    struct net_stats stats;
    struct net_arp arp[NET_ARP_ENTRIES];
    uint8_t tx[UVM_FRAME_MAX];
};

void net_init(struct net *net, const struct uvm_net_info *info, uint16_t port,
              struct kv *kv);
/* Handles one received Ethernet frame (without FCS); replies go out before
 * it returns. */
void net_input(struct net *net, const uint8_t *frame, size_t len);

#endif
