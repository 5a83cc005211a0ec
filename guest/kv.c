/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The KV service: an open-addressing hash table (linear probing, deletion by
 * backward shift, so no tombstones build up) and the per-client table of last
 * replies that makes retried requests execute exactly once. Both live in
 * guest RAM, so a backup that takes over has them exactly as of the last
 * checkpoint: a retry of a request whose reply was never released is
 * executed there for the first time, and a retry of one that was answered
 * gets the same answer again.
 */
#include "guest.h"

static uint32_t kv_hash(const struct kv *kv, const uint8_t *key, size_t len)
{
    return kvd_hash(kv->seed, key, len);    /* FNV-1a */
}

/* Before the reply: the mirror holds what the reply reports. */
static void kv_sync(struct kv *kv, uint32_t first, uint32_t count)
{
    if (kv->mirror)
        kv->mirror->sync(kv, first, count);
}

int kv_init(struct kv *kv, void *mem, size_t bytes, uint32_t seed)
{
    size_t n = bytes / sizeof(struct kv_slot), count = 8;

    if (n < count) {
        guest_log("kv_init: %u bytes hold fewer than %u slots", (unsigned)bytes,
                  (unsigned)count);
        return -1;
    }
    while (count * 2 <= n && count * 2 <= ((size_t)1 << 31))
        count *= 2;

    memset(kv, 0, sizeof(*kv));
    kv->slots = mem;
    kv->mask = (uint32_t)(count - 1);
    /* Keeps probe runs short and guarantees an empty slot, which ends every
     * probe loop below. */
    kv->max_items = kvd_max_items((uint32_t)count);
    kv->seed = seed;
    for (size_t i = 0; i < count; i++)
        kv->slots[i].used = 0;
    return 0;
}

/* The slot holding key, or NULL with *free_r set to where it would go. */
static struct kv_slot *kv_find(struct kv *kv, const uint8_t *key, uint8_t len,
                               uint32_t hash, uint32_t *free_r)
{
    struct kv_slot *s;

    for (uint32_t i = hash & kv->mask;; i = (i + 1) & kv->mask) {
        s = &kv->slots[i];
        if (!s->used) {
            *free_r = i;
            return NULL;
        }
        if (s->hash == hash && s->key_len == len && !memcmp(s->key, key, len))
            return s;
    }
}

static struct kv_slot *kv_insert(struct kv *kv, uint32_t i, const uint8_t *key,
                                 uint8_t len, uint32_t hash)
{
    struct kv_slot *s = &kv->slots[i];

    s->used = 1;
    s->key_len = len;
    s->hash = hash;
    memcpy(s->key, key, len);
    kv->items++;
    return s;
}

static void kv_remove(struct kv *kv, struct kv_slot *s)
{
    uint32_t i = (uint32_t)(s - kv->slots), j = i, home, first = i;

    /* Pull back every later entry of the run whose home slot does not lie
     * cyclically in (i, j]: lookups then never meet a hole before it. */
    for (;;) {
        j = (j + 1) & kv->mask;
        if (!kv->slots[j].used)
            break;
        home = kv->slots[j].hash & kv->mask;
        if (((j - home) & kv->mask) >= ((j - i) & kv->mask)) {
            kv->slots[i] = kv->slots[j];
            i = j;
        }
    }
    kv->slots[i].used = 0;
    kv->items--;
    /* Every slot from the removed one to the last one moved. */
    kv_sync(kv, first, ((i - first) & kv->mask) + 1);
}

const char *kv_check(const struct kv *kv, uint32_t *slot_r)
{
    uint32_t items = 0;

    for (uint32_t i = 0; i <= kv->mask; i++) {
        const struct kv_slot *s = &kv->slots[i];
        *slot_r = i;
        if (!s->used)
            continue;
        items++;
        if (!s->key_len || s->key_len > KV_KEY_MAX ||
            s->value_len > KV_VALUE_MAX)
            return "bad key or value length";
        if (s->hash != kv_hash(kv, s->key, s->key_len))
            return "hash does not match the key";
        for (uint32_t j = s->hash & kv->mask; j != i; j = (j + 1) & kv->mask)
            if (!kv->slots[j].used)
                return "not reachable from its home slot";
    }
    *slot_r = 0;
    if (items != kv->items)
        return "item count differs";
    if (items > kv->max_items)
        return "more items than the table may hold";
    return NULL;
}

static int kv_format_stats(struct kv *kv, char *out, size_t size)
{
    const struct kv_stats *k = &kv->stats;
    const struct net_stats *n = kv->net_stats;
    int len, more;

    len = fmt_snprintf(out, size,
                       "items=%u max_items=%u slots=%u requests=%llu "
                       "executed=%llu replayed=%llu stale=%llu bad=%llu "
                       "full=%llu evicted=%llu",
                       kv->items, kv->max_items, kv->mask + 1,
                       (unsigned long long)k->requests,
                       (unsigned long long)k->executed,
                       (unsigned long long)k->replayed,
                       (unsigned long long)k->stale, (unsigned long long)k->bad,
                       (unsigned long long)k->full,
                       (unsigned long long)k->evicted);
    if (n && (size_t)len < size) {
        more = fmt_snprintf(out + len, size - (size_t)len,
                            " rx=%llu malformed=%llu ignored=%llu "
                            "fragments=%llu tx=%llu tx_retries=%llu "
                            "tx_errors=%llu",
                            (unsigned long long)n->rx,
                            (unsigned long long)n->malformed,
                            (unsigned long long)n->ignored,
                            (unsigned long long)n->fragments,
                            (unsigned long long)n->tx,
                            (unsigned long long)n->tx_retries,
                            (unsigned long long)n->tx_errors);
        len += more;
    }
    return (size_t)len < size ? len : (int)size - 1;
}

/* Runs one well-formed request; the reply value goes to out (KV_VALUE_MAX
 * bytes), its length to *out_len_r. Returns the status. */
static uint8_t kv_execute(struct kv *kv, uint8_t op, const uint8_t *key,
                          uint8_t key_len, const uint8_t *value,
                          uint16_t value_len, uint8_t *out, uint16_t *out_len_r)
{
    struct kv_slot *s;
    uint32_t hash, free_slot = 0;
    uint64_t counter;

    *out_len_r = 0;
    if (op == KV_OP_STATS) {
        if (key_len || value_len)
            return KV_BAD_REQUEST;
        *out_len_r = (uint16_t)kv_format_stats(kv, (char *)out, KV_VALUE_MAX);
        return KV_OK;
    }
    if (op == KV_OP_FSCK) {
        if (key_len || value_len)
            return KV_BAD_REQUEST;
        kv_put_le32(out, kv->mirror ? kv->mirror->fsck(kv) : 0);
        kv_put_le32(out + 4, kv->items);
        kv_put_le32(out + 8, kv->mask + 1);
        kv_put_le32(out + 12, kv->mirror ? KV_FSCK_DISK : 0);
        *out_len_r = KV_FSCK_LEN;
        return KV_OK;
    }
    if (!key_len)
        return KV_BAD_REQUEST;
    hash = kv_hash(kv, key, key_len);
    s = kv_find(kv, key, key_len, hash, &free_slot);

    switch (op) {
    case KV_OP_PUT:
        if (!s) {
            if (kv->items >= kv->max_items)
                goto full;
            s = kv_insert(kv, free_slot, key, key_len, hash);
        }
        memcpy(s->value, value, value_len);
        s->value_len = value_len;
        kv_sync(kv, (uint32_t)(s - kv->slots), 1);
        return KV_OK;

    case KV_OP_GET:
        if (value_len)
            return KV_BAD_REQUEST;
        if (!s)
            return KV_NOT_FOUND;
        memcpy(out, s->value, s->value_len);
        *out_len_r = s->value_len;
        return KV_OK;

    case KV_OP_INCR:
        if (value_len != 8 || (s && s->value_len != 8))
            return KV_BAD_REQUEST;
        if (!s) {
            if (kv->items >= kv->max_items)
                goto full;
            s = kv_insert(kv, free_slot, key, key_len, hash);
            s->value_len = 8;
            kv_put_le64(s->value, 0);
        }
        /* Unsigned arithmetic: two's complement wrap, never UB. */
        counter = kv_get_le64(s->value) + kv_get_le64(value);
        kv_put_le64(s->value, counter);
        kv_sync(kv, (uint32_t)(s - kv->slots), 1);
        kv_put_le64(out, counter);
        *out_len_r = 8;
        return KV_OK;

    case KV_OP_DEL:
        if (value_len)
            return KV_BAD_REQUEST;
        if (!s)
            return KV_NOT_FOUND;
        kv_remove(kv, s);
        return KV_OK;

    default:
        return KV_BAD_REQUEST;
    }

full:
    kv->stats.full++;
    return KV_FULL;
}

static size_t kv_reply_header(uint8_t *reply, uint8_t status, uint8_t op,
                              uint32_t client_id, uint64_t request_id,
                              uint16_t value_len)
{
    kv_put_le32(reply + KV_OFF_MAGIC, KV_MAGIC);
    reply[KV_OFF_VERSION] = KV_VERSION;
    reply[KV_OFF_STATUS] = status;
    reply[KV_OFF_REP_OP] = op;
    reply[KV_OFF_RSVD8] = 0;
    kv_put_le32(reply + KV_OFF_CLIENT_ID, client_id);
    kv_put_le16(reply + KV_OFF_VALUE_LEN, value_len);
    kv_put_le16(reply + KV_OFF_RSVD16, 0);
    kv_put_le64(reply + KV_OFF_REQUEST_ID, request_id);
    return KV_REP_HDR_LEN + value_len;
}

/* The client's entry, or a fresh one taking the least recently used. */
static struct kv_client *kv_client_get(struct kv *kv, uint32_t client_id,
                                       bool *fresh_r)
{
    struct kv_client *c, *victim = &kv->clients[0];

    for (size_t i = 0; i < KV_CLIENTS; i++) {
        c = &kv->clients[i];
        if (c->valid && c->client_id == client_id) {
            *fresh_r = false;
            return c;
        }
        if (victim->valid && (!c->valid || c->last_used < victim->last_used))
            victim = c;
    }
    if (victim->valid)
        kv->stats.evicted++;
    victim->valid = 1;
    victim->client_id = client_id;
    victim->reply_len = 0;
    *fresh_r = true;
    return victim;
}

size_t kv_handle(struct kv *kv, const uint8_t *req, size_t len, uint8_t *reply)
{
    struct kv_client *c;
    uint64_t request_id;
    uint32_t client_id;
    uint16_t value_len, out_len;
    uint8_t op, key_len, status;
    bool fresh;
    size_t n;

    if (len < KV_REQ_HDR_LEN || kv_get_le32(req + KV_OFF_MAGIC) != KV_MAGIC ||
        req[KV_OFF_VERSION] != KV_VERSION) {
        kv->stats.bad++;
        return 0;
    }
    op = req[KV_OFF_OP];
    key_len = req[KV_OFF_KEY_LEN];
    client_id = kv_get_le32(req + KV_OFF_CLIENT_ID);
    value_len = kv_get_le16(req + KV_OFF_VALUE_LEN);
    request_id = kv_get_le64(req + KV_OFF_REQUEST_ID);
    kv->stats.requests++;

    /* A malformed body is answered but leaves the client's entry alone: it
     * was never executed, so there is nothing to deduplicate. */
    if (req[KV_OFF_RSVD8] || kv_get_le16(req + KV_OFF_RSVD16) ||
        key_len > KV_KEY_MAX || value_len > KV_VALUE_MAX ||
        len != (size_t)KV_REQ_HDR_LEN + key_len + value_len) {
        kv->stats.bad++;
        return kv_reply_header(reply, KV_BAD_REQUEST, op, client_id,
                               request_id, 0);
    }

    c = kv_client_get(kv, client_id, &fresh);
    c->last_used = ++kv->clock;
    if (!fresh && request_id == c->request_id) {
        kv->stats.replayed++;
        memcpy(reply, c->reply, c->reply_len);
        return c->reply_len;
    }
    if (!fresh && request_id < c->request_id) {
        /* Its reply was superseded: the client has already moved on. */
        kv->stats.stale++;
        return 0;
    }

    status = kv_execute(kv, op, req + KV_REQ_HDR_LEN, key_len,
                        req + KV_REQ_HDR_LEN + key_len, value_len,
                        reply + KV_REP_HDR_LEN, &out_len);
    kv->stats.executed++;
    if (status == KV_BAD_REQUEST)
        kv->stats.bad++;
    n = kv_reply_header(reply, status, op, client_id, request_id, out_len);
    c->request_id = request_id;
    c->reply_len = (uint16_t)n;
    memcpy(c->reply, reply, n);
    return n;
}
