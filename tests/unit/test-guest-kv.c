/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The guest firmware's protocol code (guest/net.c, kv.c, fmt.c, cmdline.c)
 * built for Linux, with the hypercalls it uses replaced by a shim that
 * records transmitted frames.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "guest.h"

#define STORE_BYTES (256u * sizeof(struct kv_slot))
#define MAX_TX 8

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t host_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };
static const uint8_t guest_ip[4] = { 10, 0, 0, 2 };
static const uint8_t host_ip[4] = { 10, 0, 0, 1 };

/* ---- the hypercall shim ---- */

static struct {
    uint8_t frame[MAX_TX][UVM_FRAME_MAX];
    size_t len[MAX_TX];
    int count;
    int eagain;                 /* how many sends to refuse first */
    int waits;
} tx;

int hc_console(const void *buf, size_t len)
{
    fwrite(buf, 1, len, stderr);
    return (int)len;
}

int hc_net_tx(const void *frame, size_t len)
{
    if (tx.eagain) {
        tx.eagain--;
        return -UVM_EAGAIN;
    }
    assert_true(len >= UVM_FRAME_MIN && len <= UVM_FRAME_MAX);
    assert_true(tx.count < MAX_TX);
    memcpy(tx.frame[tx.count], frame, len);
    tx.len[tx.count++] = len;
    return 0;
}

int hc_wait(uint64_t timeout_us)
{
    tx.waits++;
    return 0;
}

/* ---- fixtures ---- */

struct fx {
    struct kv kv;
    struct net net;
    uint8_t store[STORE_BYTES];
};

static int fx_setup(void **state)
{
    struct uvm_net_info info = { .prefix_len = 24, .flags = UVM_NET_PRESENT };
    struct fx *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    memcpy(info.mac, guest_mac, 6);
    memcpy(&info.ip, guest_ip, 4);
    assert_int_equal(kv_init(&fx->kv, fx->store, sizeof(fx->store), 1234), 0);
    net_init(&fx->net, &info, KV_DEFAULT_PORT, &fx->kv);
    fx->kv.net_stats = &fx->net.stats;
    memset(&tx, 0, sizeof(tx));
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    free(*state);
    return 0;
}

/* ---- request and frame builders ---- */

static size_t req_build(uint8_t *p, uint8_t op, uint32_t client, uint64_t id,
                        const char *key, const void *value, size_t value_len)
{
    size_t klen = strlen(key);

    memset(p, 0, KV_REQ_HDR_LEN);
    kv_put_le32(p + KV_OFF_MAGIC, KV_MAGIC);
    p[KV_OFF_VERSION] = KV_VERSION;
    p[KV_OFF_OP] = op;
    p[KV_OFF_KEY_LEN] = (uint8_t)klen;
    kv_put_le32(p + KV_OFF_CLIENT_ID, client);
    kv_put_le16(p + KV_OFF_VALUE_LEN, (uint16_t)value_len);
    kv_put_le64(p + KV_OFF_REQUEST_ID, id);
    memcpy(p + KV_REQ_HDR_LEN, key, klen);
    if (value_len)
        memcpy(p + KV_REQ_HDR_LEN + klen, value, value_len);
    return KV_REQ_HDR_LEN + klen + value_len;
}

/* Sends one request straight to kv_handle; returns the reply length. */
static size_t call(struct fx *fx, uint8_t op, uint32_t client, uint64_t id,
                   const char *key, const void *value, size_t value_len,
                   uint8_t *reply)
{
    uint8_t req[KV_REQ_MAX];
    size_t n = req_build(req, op, client, id, key, value, value_len);

    return kv_handle(&fx->kv, req, n, reply);
}

static uint8_t call_status(struct fx *fx, uint8_t op, uint32_t client,
                           uint64_t id, const char *key, const void *value,
                           size_t value_len)
{
    uint8_t reply[KV_REP_MAX];

    assert_true(call(fx, op, client, id, key, value, value_len, reply) >=
                KV_REP_HDR_LEN);
    return reply[KV_OFF_STATUS];
}

static int64_t call_incr(struct fx *fx, uint32_t client, uint64_t id,
                         const char *key, int64_t delta)
{
    uint8_t reply[KV_REP_MAX], d[8];

    kv_put_le64(d, (uint64_t)delta);
    assert_int_equal(call(fx, KV_OP_INCR, client, id, key, d, 8, reply),
                     KV_REP_HDR_LEN + 8);
    assert_int_equal(reply[KV_OFF_STATUS], KV_OK);
    return (int64_t)kv_get_le64(reply + KV_REP_HDR_LEN);
}

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t inet_csum(const uint8_t *p, size_t len, uint32_t sum)
{
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1)
        sum += (uint32_t)p[len - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static uint32_t pseudo_sum(const uint8_t *src, const uint8_t *dst, size_t len)
{
    return (uint32_t)((src[0] << 8 | src[1]) + (src[2] << 8 | src[3]) +
                      (dst[0] << 8 | dst[1]) + (dst[2] << 8 | dst[3]) + 17 + len);
}

/* Ethernet + IPv4 (+ ihl_words - 5 option words) header for a payload. */
static size_t ip_frame(uint8_t *f, uint8_t proto, size_t payload_len,
                       unsigned ihl_words)
{
    uint8_t *ip = f + 14;
    size_t ihl = ihl_words * 4;

    memcpy(f, guest_mac, 6);
    memcpy(f + 6, host_mac, 6);
    put_be16(f + 12, 0x0800);
    memset(ip, 0, ihl);
    ip[0] = (uint8_t)(0x40 | ihl_words);
    put_be16(ip + 2, (uint16_t)(ihl + payload_len));
    ip[8] = 64;
    ip[9] = proto;
    memcpy(ip + 12, host_ip, 4);
    memcpy(ip + 16, guest_ip, 4);
    put_be16(ip + 10, inet_csum(ip, ihl, 0));
    return 14 + ihl;
}

static size_t udp_frame_opts(uint8_t *f, uint16_t dport, const uint8_t *payload,
                             size_t len, unsigned ihl_words)
{
    size_t off = ip_frame(f, 17, 8 + len, ihl_words);
    uint8_t *u = f + off;

    put_be16(u, 40000);
    put_be16(u + 2, dport);
    put_be16(u + 4, (uint16_t)(8 + len));
    put_be16(u + 6, 0);
    memcpy(u + 8, payload, len);
    put_be16(u + 6, inet_csum(u, 8 + len, pseudo_sum(host_ip, guest_ip, 8 + len)));
    return off + 8 + len;
}

static size_t udp_frame(uint8_t *f, uint16_t dport, const uint8_t *payload,
                        size_t len)
{
    return udp_frame_opts(f, dport, payload, len, 5);
}

static size_t arp_frame(uint8_t *f, const uint8_t *target_ip)
{
    uint8_t *a = f + 14;

    memset(f, 0xff, 6);
    memcpy(f + 6, host_mac, 6);
    put_be16(f + 12, 0x0806);
    put_be16(a, 1);
    put_be16(a + 2, 0x0800);
    a[4] = 6;
    a[5] = 4;
    put_be16(a + 6, 1);
    memcpy(a + 8, host_mac, 6);
    memcpy(a + 14, host_ip, 4);
    memset(a + 18, 0, 6);
    memcpy(a + 24, target_ip, 4);
    return 42;
}

/* ---- KV operations ---- */

static void test_kv_ops(void **state)
{
    struct fx *fx = *state;
    uint8_t reply[KV_REP_MAX], big[KV_VALUE_MAX];
    uint64_t id = 1;

    assert_int_equal(call_status(fx, KV_OP_GET, 1, id++, "a", NULL, 0), KV_NOT_FOUND);
    assert_int_equal(call_status(fx, KV_OP_PUT, 1, id++, "a", "one", 3), KV_OK);
    assert_int_equal(call(fx, KV_OP_GET, 1, id++, "a", NULL, 0, reply),
                     KV_REP_HDR_LEN + 3);
    assert_int_equal(kv_get_le32(reply + KV_OFF_MAGIC), KV_MAGIC);
    assert_int_equal(reply[KV_OFF_STATUS], KV_OK);
    assert_int_equal(reply[KV_OFF_REP_OP], KV_OP_GET);
    assert_int_equal(kv_get_le32(reply + KV_OFF_CLIENT_ID), 1);
    assert_int_equal(kv_get_le64(reply + KV_OFF_REQUEST_ID), id - 1);
    assert_memory_equal(reply + KV_REP_HDR_LEN, "one", 3);

    /* Overwrite with the largest value. */
    memset(big, 'x', sizeof(big));
    assert_int_equal(call_status(fx, KV_OP_PUT, 1, id++, "a", big, sizeof(big)), KV_OK);
    assert_int_equal(call(fx, KV_OP_GET, 1, id++, "a", NULL, 0, reply), KV_REP_MAX);
    assert_memory_equal(reply + KV_REP_HDR_LEN, big, sizeof(big));
    assert_int_equal(fx->kv.items, 1);

    assert_int_equal(call_status(fx, KV_OP_DEL, 1, id++, "a", NULL, 0), KV_OK);
    assert_int_equal(call_status(fx, KV_OP_DEL, 1, id++, "a", NULL, 0), KV_NOT_FOUND);
    assert_int_equal(call_status(fx, KV_OP_GET, 1, id++, "a", NULL, 0), KV_NOT_FOUND);
    assert_int_equal(fx->kv.items, 0);

    /* INCR counts from 0, takes negative deltas, rejects non-counters. */
    assert_int_equal(call_incr(fx, 1, id++, "c", 5), 5);
    assert_int_equal(call_incr(fx, 1, id++, "c", -8), -3);
    assert_int_equal(call_status(fx, KV_OP_PUT, 1, id++, "s", "text", 4), KV_OK);
    assert_int_equal(call_status(fx, KV_OP_INCR, 1, id++, "s", "12345678", 8),
                     KV_BAD_REQUEST);
    assert_int_equal(call_status(fx, KV_OP_INCR, 1, id++, "c", "1234", 4),
                     KV_BAD_REQUEST);

    /* Empty keys, values on GET, keys on STATS and unknown ops. */
    assert_int_equal(call_status(fx, KV_OP_PUT, 1, id++, "", "v", 1), KV_BAD_REQUEST);
    assert_int_equal(call_status(fx, KV_OP_GET, 1, id++, "c", "v", 1), KV_BAD_REQUEST);
    assert_int_equal(call_status(fx, KV_OP_STATS, 1, id++, "c", NULL, 0), KV_BAD_REQUEST);
    assert_int_equal(call_status(fx, 99, 1, id++, "c", NULL, 0), KV_BAD_REQUEST);

    assert_true(call(fx, KV_OP_STATS, 1, id++, "", NULL, 0, reply) > KV_REP_HDR_LEN);
    assert_int_equal(reply[KV_OFF_STATUS], KV_OK);
    reply[KV_REP_MAX - 1] = '\0';
    assert_non_null(strstr((char *)reply + KV_REP_HDR_LEN, "items=2 "));
}

static void test_kv_full(void **state)
{
    struct fx *fx = *state;
    char key[8];
    uint64_t id = 1;
    uint32_t i;

    /* The smallest store: 8 slots, 7 items. */
    assert_int_equal(kv_init(&fx->kv, fx->store, 8 * sizeof(struct kv_slot) + 100, 1), 0);
    assert_int_equal(fx->kv.mask, 7);
    assert_int_equal(kv_init(&fx->kv, fx->store, 7 * sizeof(struct kv_slot), 1), -1);
    assert_int_equal(kv_init(&fx->kv, fx->store, 8 * sizeof(struct kv_slot), 1), 0);
    for (i = 0; i < fx->kv.max_items; i++) {
        snprintf(key, sizeof(key), "k%u", i);
        assert_int_equal(call_status(fx, KV_OP_PUT, 1, id++, key, "v", 1), KV_OK);
    }
    assert_int_equal(call_status(fx, KV_OP_PUT, 1, id++, "new", "v", 1), KV_FULL);
    assert_int_equal(call_status(fx, KV_OP_INCR, 1, id++, "new", "\1\0\0\0\0\0\0\0", 8),
                     KV_FULL);
    assert_int_equal(fx->kv.stats.full, 2);
    /* Existing keys can still change; a delete makes room. */
    assert_int_equal(call_status(fx, KV_OP_PUT, 1, id++, "k0", "w", 1), KV_OK);
    assert_int_equal(call_status(fx, KV_OP_DEL, 1, id++, "k3", NULL, 0), KV_OK);
    assert_int_equal(call_status(fx, KV_OP_PUT, 1, id++, "new", "v", 1), KV_OK);
}

/* Deletion by backward shift must keep every other key reachable. */
static void test_kv_delete_keeps_runs(void **state)
{
    struct fx *fx = *state;
    bool present[220] = { false };
    uint8_t reply[KV_REP_MAX];
    unsigned seed = 42;
    uint64_t id = 1;
    char key[16];

    for (int round = 0; round < 4000; round++) {
        unsigned k = (unsigned)rand_r(&seed) % 220;

        snprintf(key, sizeof(key), "key-%u", k);
        if (present[k] && rand_r(&seed) % 2) {
            assert_int_equal(call_status(fx, KV_OP_DEL, 1, id++, key, NULL, 0), KV_OK);
            present[k] = false;
        } else {
            assert_int_equal(call_status(fx, KV_OP_PUT, 1, id++, key, key, strlen(key)),
                             KV_OK);
            present[k] = true;
        }
    }
    for (unsigned k = 0; k < 220; k++) {
        snprintf(key, sizeof(key), "key-%u", k);
        if (!present[k]) {
            assert_int_equal(call_status(fx, KV_OP_GET, 1, id++, key, NULL, 0),
                             KV_NOT_FOUND);
            continue;
        }
        assert_int_equal(call(fx, KV_OP_GET, 1, id++, key, NULL, 0, reply),
                         KV_REP_HDR_LEN + strlen(key));
        assert_memory_equal(reply + KV_REP_HDR_LEN, key, strlen(key));
    }
}

/* ---- exactly once ---- */

static void test_dedupe(void **state)
{
    struct fx *fx = *state;
    uint8_t first[KV_REP_MAX], again[KV_REP_MAX], d[8];
    size_t n1, n2;

    assert_int_equal(call_status(fx, KV_OP_PUT, 7, 10, "k", "v1", 2), KV_OK);
    /* The same id again, even with another body, is not executed again. */
    assert_int_equal(call_status(fx, KV_OP_PUT, 7, 10, "k", "v2", 2), KV_OK);
    n1 = call(fx, KV_OP_GET, 7, 11, "k", NULL, 0, first);
    assert_int_equal(n1, KV_REP_HDR_LEN + 2);
    assert_memory_equal(first + KV_REP_HDR_LEN, "v1", 2);

    /* INCR retried three times is applied once, answered the same each time. */
    kv_put_le64(d, 5);
    n1 = call(fx, KV_OP_INCR, 7, 12, "ctr", d, 8, first);
    for (int i = 0; i < 3; i++) {
        n2 = call(fx, KV_OP_INCR, 7, 12, "ctr", d, 8, again);
        assert_int_equal(n1, n2);
        assert_memory_equal(first, again, n1);
    }
    assert_int_equal(kv_get_le64(first + KV_REP_HDR_LEN), 5);
    assert_int_equal(call_incr(fx, 7, 13, "ctr", 0), 5);

    /* Older ids get no answer at all. */
    assert_int_equal(call(fx, KV_OP_INCR, 7, 12, "ctr", d, 8, again), 0);
    assert_int_equal(call(fx, KV_OP_PUT, 7, 1, "k", "v3", 2, again), 0);
    assert_int_equal(fx->kv.stats.stale, 2);
    assert_int_equal(fx->kv.stats.replayed, 4);

    /* Other clients have their own sequence. */
    assert_int_equal(call_incr(fx, 8, 1, "ctr", 1), 6);
    assert_int_equal(call_incr(fx, 7, 14, "ctr", 1), 7);
    assert_int_equal(fx->kv.stats.executed, 6);
}

static void test_dedupe_lru(void **state)
{
    struct fx *fx = *state;
    uint8_t reply[KV_REP_MAX];

    for (uint32_t c = 1; c <= KV_CLIENTS; c++)
        assert_int_equal(call_incr(fx, c, 100, "ctr", 1), c);
    /* Client 1 is touched again: client 2 is now the oldest. */
    assert_int_equal(call(fx, KV_OP_INCR, 1, 100, "ctr", "\1\0\0\0\0\0\0\0", 8, reply),
                     KV_REP_HDR_LEN + 8);
    assert_int_equal(kv_get_le64(reply + KV_REP_HDR_LEN), 1);
    assert_int_equal(call_incr(fx, 1000, 1, "ctr", 1), KV_CLIENTS + 1);
    assert_int_equal(fx->kv.stats.evicted, 1);
    /* Client 1 is still remembered; client 2 was forgotten, so its retry
     * runs again: the table must be large enough for the live clients. */
    assert_int_equal(call(fx, KV_OP_INCR, 1, 100, "ctr", "\1\0\0\0\0\0\0\0", 8, reply),
                     KV_REP_HDR_LEN + 8);
    assert_int_equal(kv_get_le64(reply + KV_REP_HDR_LEN), 1);
    assert_int_equal(call_incr(fx, 2, 100, "ctr", 1), KV_CLIENTS + 2);
}

static void test_bad_requests(void **state)
{
    struct fx *fx = *state;
    uint8_t req[KV_REQ_MAX + 8], reply[KV_REP_MAX];
    size_t n = req_build(req, KV_OP_PUT, 3, 1, "k", "v", 1);
    char long_key[KV_KEY_MAX + 2];

    /* Not ours at all: dropped without an answer. */
    assert_int_equal(kv_handle(&fx->kv, req, KV_REQ_HDR_LEN - 1, reply), 0);
    req[KV_OFF_VERSION] = 2;
    assert_int_equal(kv_handle(&fx->kv, req, n, reply), 0);
    req[KV_OFF_VERSION] = KV_VERSION;
    req[0] ^= 1;
    assert_int_equal(kv_handle(&fx->kv, req, n, reply), 0);
    req[0] ^= 1;

    /* Ours but inconsistent: BAD_REQUEST, and nothing remembered. */
    assert_int_equal(kv_handle(&fx->kv, req, n - 1, reply), KV_REP_HDR_LEN);
    assert_int_equal(reply[KV_OFF_STATUS], KV_BAD_REQUEST);
    assert_int_equal(kv_get_le64(reply + KV_OFF_REQUEST_ID), 1);
    assert_int_equal(kv_handle(&fx->kv, req, n + 1, reply), KV_REP_HDR_LEN);
    req[KV_OFF_RSVD8] = 1;
    assert_int_equal(kv_handle(&fx->kv, req, n, reply), KV_REP_HDR_LEN);
    assert_int_equal(reply[KV_OFF_STATUS], KV_BAD_REQUEST);
    memset(long_key, 'a', KV_KEY_MAX + 1);
    long_key[KV_KEY_MAX + 1] = '\0';
    n = req_build(req, KV_OP_PUT, 3, 1, long_key, "v", 1);
    assert_int_equal(kv_handle(&fx->kv, req, n, reply), KV_REP_HDR_LEN);
    assert_int_equal(reply[KV_OFF_STATUS], KV_BAD_REQUEST);
    assert_int_equal(fx->kv.stats.executed, 0);

    /* The same id, well-formed now, runs. */
    n = req_build(req, KV_OP_PUT, 3, 1, "k", "v", 1);
    assert_int_equal(kv_handle(&fx->kv, req, n, reply), KV_REP_HDR_LEN);
    assert_int_equal(reply[KV_OFF_STATUS], KV_OK);
}

/* ---- network ---- */

static void test_arp_reply(void **state)
{
    struct fx *fx = *state;
    uint8_t f[64];
    const uint8_t *a;
    static const uint8_t other[4] = { 10, 0, 0, 9 };

    net_input(&fx->net, f, arp_frame(f, guest_ip));
    assert_int_equal(tx.count, 1);
    assert_int_equal(tx.len[0], 42);
    a = tx.frame[0] + 14;
    assert_memory_equal(tx.frame[0], host_mac, 6);
    assert_memory_equal(tx.frame[0] + 6, guest_mac, 6);
    assert_int_equal(tx.frame[0][12] << 8 | tx.frame[0][13], 0x0806);
    assert_int_equal(a[6] << 8 | a[7], 2);
    assert_memory_equal(a + 8, guest_mac, 6);
    assert_memory_equal(a + 14, guest_ip, 4);
    assert_memory_equal(a + 18, host_mac, 6);
    assert_memory_equal(a + 24, host_ip, 4);
    assert_int_equal(fx->net.stats.arp_replies, 1);

    /* For someone else: no answer. Truncated: dropped, counted. */
    net_input(&fx->net, f, arp_frame(f, other));
    assert_int_equal(tx.count, 1);
    assert_int_equal(fx->net.stats.ignored, 1);
    net_input(&fx->net, f, arp_frame(f, guest_ip) - 1);
    assert_int_equal(tx.count, 1);
    assert_int_equal(fx->net.stats.malformed, 1);
}

static void check_udp_reply(const uint8_t *f, size_t len, size_t payload_len)
{
    const uint8_t *ip = f + 14, *u = ip + 20;

    assert_int_equal(len, 42 + payload_len);
    assert_memory_equal(f, host_mac, 6);
    assert_memory_equal(f + 6, guest_mac, 6);
    assert_int_equal(inet_csum(ip, 20, 0), 0);
    assert_int_equal(ip[2] << 8 | ip[3], 28 + payload_len);
    assert_memory_equal(ip + 12, guest_ip, 4);
    assert_memory_equal(ip + 16, host_ip, 4);
    assert_int_equal(u[0] << 8 | u[1], KV_DEFAULT_PORT);
    assert_int_equal(u[2] << 8 | u[3], 40000);
    assert_int_equal(inet_csum(u, 8 + payload_len,
                               pseudo_sum(guest_ip, host_ip, 8 + payload_len)), 0);
}

static void test_udp_kv(void **state)
{
    struct fx *fx = *state;
    uint8_t f[UVM_FRAME_MAX], req[KV_REQ_MAX];
    size_t n;

    n = req_build(req, KV_OP_PUT, 1, 1, "key", "value", 5);
    net_input(&fx->net, f, udp_frame(f, KV_DEFAULT_PORT, req, n));
    n = req_build(req, KV_OP_GET, 1, 2, "key", NULL, 0);
    net_input(&fx->net, f, udp_frame(f, KV_DEFAULT_PORT, req, n));
    assert_int_equal(tx.count, 2);
    check_udp_reply(tx.frame[0], tx.len[0], KV_REP_HDR_LEN);
    check_udp_reply(tx.frame[1], tx.len[1], KV_REP_HDR_LEN + 5);
    assert_memory_equal(tx.frame[1] + 42 + KV_REP_HDR_LEN, "value", 5);

    /* IP options are skipped; Ethernet padding past the IP length too. */
    n = req_build(req, KV_OP_GET, 1, 3, "key", NULL, 0);
    n = udp_frame_opts(f, KV_DEFAULT_PORT, req, n, 7);
    memset(f + n, 0xee, 10);
    net_input(&fx->net, f, n + 10);
    assert_int_equal(tx.count, 3);
    check_udp_reply(tx.frame[2], tx.len[2], KV_REP_HDR_LEN + 5);
}

static void test_udp_wrong_port(void **state)
{
    struct fx *fx = *state;
    uint8_t f[UVM_FRAME_MAX], req[KV_REQ_MAX];
    size_t n = req_build(req, KV_OP_PUT, 1, 1, "key", "value", 5);

    net_input(&fx->net, f, udp_frame(f, KV_DEFAULT_PORT + 1, req, n));
    assert_int_equal(tx.count, 0);
    assert_int_equal(fx->net.stats.ignored, 1);
    assert_int_equal(fx->kv.stats.requests, 0);
}

static void test_ipv4_checksum(void **state)
{
    struct fx *fx = *state;
    uint8_t f[UVM_FRAME_MAX], req[KV_REQ_MAX];
    size_t n = req_build(req, KV_OP_PUT, 1, 1, "key", "value", 5);

    n = udp_frame(f, KV_DEFAULT_PORT, req, n);
    f[14 + 10] ^= 0x40;
    net_input(&fx->net, f, n);
    assert_int_equal(tx.count, 0);
    assert_int_equal(fx->net.stats.malformed, 1);
    f[14 + 10] ^= 0x40;

    /* A bad UDP checksum is caught too. */
    f[n - 1] ^= 1;
    net_input(&fx->net, f, n);
    assert_int_equal(tx.count, 0);
    assert_int_equal(fx->net.stats.malformed, 2);
    assert_int_equal(fx->kv.stats.requests, 0);
}

static void test_truncated(void **state)
{
    struct fx *fx = *state;
    uint8_t f[UVM_FRAME_MAX], req[KV_REQ_MAX], *cut;
    size_t n = req_build(req, KV_OP_PUT, 1, 1, "key", "value", 5);

    n = udp_frame(f, KV_DEFAULT_PORT, req, n);
    /* Each prefix in a buffer of its own size, so ASan sees any overread. */
    for (size_t len = 0; len < n; len++) {
        cut = malloc(len ? len : 1);
        assert_non_null(cut);
        memcpy(cut, f, len);
        net_input(&fx->net, cut, len);
        free(cut);
    }
    assert_int_equal(tx.count, 0);
    assert_int_equal(fx->net.stats.malformed, n);
    assert_int_equal(fx->kv.stats.requests, 0);
    net_input(&fx->net, f, n);
    assert_int_equal(tx.count, 1);
}

static void test_fragments_and_others(void **state)
{
    struct fx *fx = *state;
    uint8_t f[UVM_FRAME_MAX], req[KV_REQ_MAX];
    size_t rlen = req_build(req, KV_OP_PUT, 1, 1, "key", "value", 5), n;
    uint8_t *ip = f + 14;

    n = udp_frame(f, KV_DEFAULT_PORT, req, rlen);
    put_be16(ip + 6, 0x2000);               /* MF */
    put_be16(ip + 10, 0);
    put_be16(ip + 10, inet_csum(ip, 20, 0));
    net_input(&fx->net, f, n);
    assert_int_equal(fx->net.stats.fragments, 1);

    n = udp_frame(f, KV_DEFAULT_PORT, req, rlen);
    memcpy(f, "\x02\x00\x00\x00\x00\x99", 6);   /* another host's MAC */
    net_input(&fx->net, f, n);
    memcpy(f, guest_mac, 6);
    f[6] |= 1;                                  /* multicast source */
    net_input(&fx->net, f, n);
    assert_int_equal(tx.count, 0);
    assert_int_equal(fx->net.stats.ignored, 1);
    assert_int_equal(fx->net.stats.malformed, 1);
}

static void test_icmp_echo(void **state)
{
    struct fx *fx = *state;
    uint8_t f[UVM_FRAME_MAX], *m;
    size_t off = ip_frame(f, 1, 8 + 56, 5);

    m = f + off;
    memset(m, 0, 8);
    m[0] = 8;
    m[5] = 1;
    for (int i = 0; i < 56; i++)
        m[8 + i] = (uint8_t)i;
    put_be16(m + 2, inet_csum(m, 64, 0));
    net_input(&fx->net, f, off + 64);
    assert_int_equal(tx.count, 1);
    assert_int_equal(tx.len[0], off + 64);
    assert_int_equal(tx.frame[0][14 + 9], 1);
    assert_int_equal(tx.frame[0][off], 0);
    assert_int_equal(inet_csum(tx.frame[0] + 14, 20, 0), 0);
    assert_int_equal(inet_csum(tx.frame[0] + off, 64, 0), 0);
    assert_memory_equal(tx.frame[0] + off + 4, m + 4, 60);
}

/* A full output queue delays a reply; it never drops it. */
static void test_tx_eagain(void **state)
{
    struct fx *fx = *state;
    uint8_t f[64];

    tx.eagain = 3;
    net_input(&fx->net, f, arp_frame(f, guest_ip));
    assert_int_equal(tx.count, 1);
    assert_int_equal(tx.waits, 3);
    assert_int_equal(fx->net.stats.tx_retries, 3);
    assert_int_equal(fx->net.stats.tx, 1);
}

/* ---- command line and formatting ---- */

static void test_config(void **state)
{
    struct guest_config cfg;

    guest_config_init(&cfg);
    assert_int_equal(guest_config_parse(&cfg, ""), 0);
    assert_int_equal(cfg.port, KV_DEFAULT_PORT);
    assert_int_equal(guest_config_parse(&cfg, " port=7100  dirty=64\tdirty_us=500 "), 0);
    assert_int_equal(cfg.port, 7100);
    assert_int_equal(cfg.dirty, 64);
    assert_int_equal(cfg.dirty_us, 500);

    /* Any error leaves cfg as it was. */
    assert_int_equal(guest_config_parse(&cfg, "dirty=1 port=0"), -1);
    assert_int_equal(guest_config_parse(&cfg, "dirty=1 port=65536"), -1);
    assert_int_equal(guest_config_parse(&cfg, "dirty=1 port=70x"), -1);
    assert_int_equal(guest_config_parse(&cfg, "dirty=1 port="), -1);
    assert_int_equal(guest_config_parse(&cfg, "dirty=1 port"), -1);
    assert_int_equal(guest_config_parse(&cfg, "dirty=1 colour=blue"), -1);
    assert_int_equal(guest_config_parse(&cfg, "dirty=99999999999"), -1);
    assert_int_equal(cfg.port, 7100);
    assert_int_equal(cfg.dirty, 64);
}

static void test_fmt(void **state)
{
    char buf[64];

    assert_int_equal(fmt_snprintf(buf, sizeof(buf), "%d|%5u|%05d|%x|%02X|%s|%c|%%",
                                  -42, 7u, -3, 0xbeefu, 0xau, "str", 'z'), 31);
    assert_string_equal(buf, "-42|    7|-0003|beef|0A|str|z|%");
    fmt_snprintf(buf, sizeof(buf), "%llu %lld %zu %.*s", 18446744073709551615ull,
                 -9223372036854775807ll - 1, (size_t)12, 3, "abcdef");
    assert_string_equal(buf, "18446744073709551615 -9223372036854775808 12 abc");
    assert_int_equal(fmt_snprintf(buf, 4, "%s", "truncated"), 9);
    assert_string_equal(buf, "tru");
}

#define FX(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX(test_kv_ops),
        FX(test_kv_full),
        FX(test_kv_delete_keeps_runs),
        FX(test_dedupe),
        FX(test_dedupe_lru),
        FX(test_bad_requests),
        FX(test_arp_reply),
        FX(test_udp_kv),
        FX(test_udp_wrong_port),
        FX(test_ipv4_checksum),
        FX(test_truncated),
        FX(test_fragments_and_others),
        FX(test_icmp_echo),
        FX(test_tx_eagain),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_fmt),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
