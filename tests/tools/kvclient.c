/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * kvclient: the Linux client of the micro-VM's KV service (guest/), used by
 * the integration tests and benchmarks.
 *
 * Every request is retried with the same request id until its reply comes:
 * the guest answers a repeated id from its cache without executing it again
 * (guest/kv-proto.h), so a write is applied exactly once even when replies
 * are lost or the VM fails over in between. `load` logs a write only once its
 * reply is in; `verify` then checks that every logged write survived, once.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kv-proto.h"
#include "tdm-util.h"

#define EXIT_TIMEOUT 1
#define EXIT_USAGE 2
#define EXIT_STATUS 3           /* the server answered, but not OK */

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull
#define DRAIN_NS (10 * NS_PER_S)
#define WINDOW_MAX 256u
#define BENCH_VALUE_LEN 64u

static volatile sig_atomic_t stop_requested;

struct opts {
    const char *server;
    uint64_t retry_ms, timeout_ms, duration_s, nkeys, window;
    uint32_t client_id;
    const char *acklog, *input;
    char seen[128];             /* options given, for per-command checks */
};

struct kvc {
    int fd;
    uint64_t retry_ns;
};

struct reply {
    uint8_t status;
    uint16_t len;
    uint8_t value[KV_VALUE_MAX + 1];    /* NUL-terminated for printing */
};

/* One request in flight, retried until answered. */
struct slot {
    unsigned index;
    bool busy;
    uint32_t client_id;
    uint64_t next_id;
    uint64_t seq;               /* requests issued by this slot */
    uint64_t key_seq;
    uint8_t op;
    char key[KV_KEY_MAX + 1];
    char value[KV_VALUE_MAX + 1];   /* as logged: PUT value, INCR delta */
    uint8_t req[KV_REQ_MAX];
    size_t req_len;
    uint64_t first_ns, last_ns;
};

struct run;
typedef void (*run_next_fn)(struct run *run, struct slot *s);
typedef int (*run_done_fn)(struct run *run, struct slot *s, const struct reply *rep);

struct run {
    struct kvc *kvc;
    struct slot *slots;
    unsigned nslots;
    uint64_t nkeys;
    uint64_t duration_ns;
    run_next_fn next;
    run_done_fn done;
    FILE *acklog;
    unsigned seed;
    /* results */
    uint64_t requests, acked, unacked, retries, errors, puts, gets;
    uint64_t start_ns, end_ns;
    uint64_t *lat_us;
    size_t nlat, lat_cap;
    uint64_t last_reply_ns, last_reply_wall;
    uint64_t gap_ns, gap_start_wall, gap_end_wall;
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: kvclient -s IP:PORT [-r MS] [-T MS] [-c CLIENT_ID] COMMAND ...\n"
        "  put KEY VALUE | get KEY | incr KEY DELTA | del KEY | stats | fsck\n"
        "        one request, resent every -r MS (50) for up to -T MS (5000);\n"
        "        fsck compares the table with its disk mirror and fails (1)\n"
        "        on any difference or without a disk\n"
        "  wait  succeed once the server answers (within -T MS)\n"
        "  load -d SECONDS -k NKEYS -o ACKLOG [-w WINDOW]\n"
        "        PUT k<i> and INCR ctr; each acked write is appended to ACKLOG\n"
        "  verify -i ACKLOG\n"
        "        read everything back: no acked write lost, none applied twice\n"
        "  bench -d SECONDS [-k NKEYS] [-w WINDOW]\n"
        "        closed-loop PUT/GET; one line of key=value results\n"
        "exit: 0 ok, 1 timeout or check failed, 2 usage, 3 server said no\n");
}

static void on_signal(int sig)
{
    stop_requested = 1;
}

static int kvc_open(struct kvc *kvc, const char *server, uint64_t retry_ms)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    char host[64];
    uint16_t port;
    int fd = -1;

    if (tdm_parse_hostport(server, 0, host, sizeof(host), &port) < 0 || !port ||
        inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        fprintf(stderr, "kvclient: -s wants IPV4:PORT, not \"%s\"\n", server);
        return -1;
    }
    sin.sin_port = htons(port);
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_warn("socket");
        return -1;
    }
    /* Connected: the kernel filters out datagrams from anyone else. */
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        log_warn("connect %s", server);
        close(fd);
        return -1;
    }
    kvc->fd = fd;
    kvc->retry_ns = retry_ms * NS_PER_MS;
    return 0;
}

static size_t req_encode(uint8_t *p, uint8_t op, uint32_t client_id,
                         uint64_t request_id, const char *key,
                         const void *value, size_t value_len)
{
    size_t klen = strlen(key);

    kv_put_le32(p + KV_OFF_MAGIC, KV_MAGIC);
    p[KV_OFF_VERSION] = KV_VERSION;
    p[KV_OFF_OP] = op;
    p[KV_OFF_KEY_LEN] = (uint8_t)klen;
    p[KV_OFF_RSVD8] = 0;
    kv_put_le32(p + KV_OFF_CLIENT_ID, client_id);
    kv_put_le16(p + KV_OFF_VALUE_LEN, (uint16_t)value_len);
    kv_put_le16(p + KV_OFF_RSVD16, 0);
    kv_put_le64(p + KV_OFF_REQUEST_ID, request_id);
    memcpy(p + KV_REQ_HDR_LEN, key, klen);
    if (value_len)
        memcpy(p + KV_REQ_HDR_LEN + klen, value, value_len);
    return KV_REQ_HDR_LEN + klen + value_len;
}

/* Loss is expected (that is what retries are for): a failed send is only
 * logged when it is not one of the transient network errors. */
static void kvc_send(struct kvc *kvc, const uint8_t *req, size_t len)
{
    if (send(kvc->fd, req, len, 0) < 0 && errno != EAGAIN &&
        errno != ECONNREFUSED && errno != ENOBUFS && errno != EHOSTUNREACH &&
        errno != ENETUNREACH && errno != EHOSTDOWN)
        log_warn("send");
}

/* Receives one datagram; 1 with its client and request id, 0 if none. */
static int kvc_recv(struct kvc *kvc, uint32_t *client_r, uint64_t *id_r,
                    struct reply *rep)
{
    uint8_t buf[KV_REP_MAX + 1];
    ssize_t r;
    size_t vlen;

    for (;;) {
        r = recv(kvc->fd, buf, sizeof(buf), 0);
        if (r < 0) {
            if (errno == EINTR || errno == ECONNREFUSED)
                continue;
            if (errno != EAGAIN)
                log_warn("recv");
            return 0;
        }
        if ((size_t)r < KV_REP_HDR_LEN ||
            kv_get_le32(buf + KV_OFF_MAGIC) != KV_MAGIC ||
            buf[KV_OFF_VERSION] != KV_VERSION)
            continue;
        vlen = kv_get_le16(buf + KV_OFF_VALUE_LEN);
        if (vlen > KV_VALUE_MAX || (size_t)r != KV_REP_HDR_LEN + vlen)
            continue;
        *client_r = kv_get_le32(buf + KV_OFF_CLIENT_ID);
        *id_r = kv_get_le64(buf + KV_OFF_REQUEST_ID);
        rep->status = buf[KV_OFF_STATUS];
        rep->len = (uint16_t)vlen;
        memcpy(rep->value, buf + KV_REP_HDR_LEN, vlen);
        rep->value[vlen] = '\0';
        return 1;
    }
}

static int kvc_poll(struct kvc *kvc, uint64_t until_ns)
{
    struct pollfd pfd = { .fd = kvc->fd, .events = POLLIN };
    uint64_t now = tdm_now_ns();
    int ms = until_ns > now ? (int)((until_ns - now + NS_PER_MS - 1) / NS_PER_MS) : 0;
    int r = poll(&pfd, 1, ms);

    if (r < 0 && errno != EINTR) {
        log_warn("poll");
        return -1;
    }
    return 0;
}

/* One request, resent until its reply or timeout_ns: 0, -1 on timeout. */
static int kvc_call(struct kvc *kvc, uint32_t client_id, uint64_t request_id,
                    uint8_t op, const char *key, const void *value,
                    size_t value_len, uint64_t timeout_ns, struct reply *rep)
{
    uint8_t req[KV_REQ_MAX];
    size_t len = req_encode(req, op, client_id, request_id, key, value, value_len);
    uint64_t deadline = tdm_now_ns() + timeout_ns, next_send = 0, now, id;
    uint32_t client;

    for (;;) {
        now = tdm_now_ns();
        if (now >= deadline)
            return -1;
        if (now >= next_send) {
            kvc_send(kvc, req, len);
            next_send = now + kvc->retry_ns;
        }
        if (kvc_poll(kvc, TDM_MIN(next_send, deadline)) < 0)
            return -1;
        while (kvc_recv(kvc, &client, &id, rep))
            if (client == client_id && id == request_id)
                return 0;
    }
}

/* ---- load and bench: a window of slots, each one request in flight ---- */

static void run_slot_send(struct run *run, struct slot *s, uint64_t now)
{
    kvc_send(run->kvc, s->req, s->req_len);
    s->last_ns = now;
}

static void run_slot_start(struct run *run, struct slot *s, uint8_t op,
                           const char *key, const void *value, size_t value_len)
{
    s->op = op;
    tdm_strlcpy(s->key, key, sizeof(s->key));
    s->req_len = req_encode(s->req, op, s->client_id, s->next_id++, key, value,
                            value_len);
    s->busy = true;
    s->seq++;
    s->first_ns = tdm_now_ns();
    run->requests++;
    run_slot_send(run, s, s->first_ns);
}

static void run_record(struct run *run, struct slot *s, uint64_t now)
{
    uint64_t wall = tdm_wall_ns();

    if (run->nlat == run->lat_cap) {
        run->lat_cap = run->lat_cap ? run->lat_cap * 2 : 4096;
        run->lat_us = tdm_realloc(run->lat_us, run->lat_cap * sizeof(uint64_t));
    }
    run->lat_us[run->nlat++] = (now - s->first_ns) / 1000;
    if (run->last_reply_ns && now - run->last_reply_ns > run->gap_ns) {
        run->gap_ns = now - run->last_reply_ns;
        run->gap_start_wall = run->last_reply_wall;
        run->gap_end_wall = wall;
    }
    run->last_reply_ns = now;
    run->last_reply_wall = wall;
}

static struct slot *run_find(struct run *run, uint32_t client_id, uint64_t id)
{
    struct slot *s;

    if (client_id - run->slots[0].client_id >= run->nslots)
        return NULL;
    s = &run->slots[client_id - run->slots[0].client_id];
    if (!s->busy || kv_get_le64(s->req + KV_OFF_REQUEST_ID) != id)
        return NULL;
    return s;
}

static int run_log_unacked(struct run *run, struct slot *s)
{
    run->unacked++;
    fprintf(stderr, "kvclient: no reply to %s %s after %.1f s\n",
            s->op == KV_OP_PUT ? "put" : "incr", s->key,
            (double)(tdm_now_ns() - s->first_ns) / NS_PER_S);
    if (!run->acklog)
        return 0;
    if (fprintf(run->acklog, "unacked %" PRIu64 " %s %s %s\n", tdm_wall_ns(),
                s->op == KV_OP_PUT ? "put" : "incr", s->key, s->value) < 0 ||
        fflush(run->acklog) != 0) {
        log_warn("writing the ack log");
        return -1;
    }
    return 0;
}

/* Issues requests until the duration ends or a signal comes, then waits up
 * to DRAIN_NS for the ones in flight. */
static int run_loop(struct run *run)
{
    uint64_t now, stop_at, drain_until = 0, wake, id;
    struct reply rep;
    struct slot *s;
    uint32_t client;
    bool stopping = false, busy;
    int rc = -1;

    run->start_ns = tdm_now_ns();
    stop_at = run->start_ns + run->duration_ns;
    for (;;) {
        now = tdm_now_ns();
        if (!stopping && (stop_requested || now >= stop_at)) {
            stopping = true;
            drain_until = now + DRAIN_NS;
        }
        busy = false;
        wake = stopping ? drain_until : stop_at;
        for (unsigned i = 0; i < run->nslots; i++) {
            s = &run->slots[i];
            if (!s->busy && !stopping)
                run->next(run, s);
            if (!s->busy)
                continue;
            busy = true;
            if (now >= s->last_ns + run->kvc->retry_ns) {
                run->retries++;
                run_slot_send(run, s, now);
            }
            wake = TDM_MIN(wake, s->last_ns + run->kvc->retry_ns);
        }
        if (stopping && (!busy || now >= drain_until))
            break;
        if (kvc_poll(run->kvc, wake) < 0)
            goto out;
        while (kvc_recv(run->kvc, &client, &id, &rep)) {
            s = run_find(run, client, id);
            if (!s)
                continue;       /* a reply to an earlier retry */
            now = tdm_now_ns();
            s->busy = false;
            run->acked++;
            run_record(run, s, now);
            /* NOT_FOUND is a normal answer to a bench GET. */
            if (rep.status != KV_OK && rep.status != KV_NOT_FOUND)
                run->errors++;
            if (run->done && run->done(run, s, &rep) < 0)
                goto out;
        }
    }
    for (unsigned i = 0; i < run->nslots; i++)
        if (run->slots[i].busy && run_log_unacked(run, &run->slots[i]) < 0)
            goto out;
    rc = 0;
out:
    run->end_ns = tdm_now_ns();
    return rc;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static uint64_t pct(const uint64_t *sorted, size_t n, double p)
{
    if (!n)
        return 0;
    return sorted[(size_t)(p / 100.0 * (double)(n - 1) + 0.5)];
}

static void run_print(struct run *run, const char *what)
{
    double secs = (double)(run->end_ns - run->start_ns) / NS_PER_S;

    qsort(run->lat_us, run->nlat, sizeof(uint64_t), cmp_u64);
    printf("%s requests=%" PRIu64 " acked=%" PRIu64 " unacked=%" PRIu64
           " retries=%" PRIu64 " errors=%" PRIu64 " puts=%" PRIu64
           " gets=%" PRIu64 " duration_s=%.3f throughput_rps=%.1f"
           " p50_us=%" PRIu64 " p99_us=%" PRIu64 " max_us=%" PRIu64
           " max_gap_us=%" PRIu64 " gap_start_ns=%" PRIu64
           " gap_end_ns=%" PRIu64 "\n",
           what, run->requests, run->acked, run->unacked, run->retries,
           run->errors, run->puts, run->gets, secs,
           secs > 0 ? (double)run->acked / secs : 0.0,
           pct(run->lat_us, run->nlat, 50), pct(run->lat_us, run->nlat, 99),
           run->nlat ? run->lat_us[run->nlat - 1] : 0, run->gap_ns / 1000,
           run->gap_start_wall, run->gap_end_wall);
}

/* Slot i owns keys k<i>, k<i+W>, ...: each key has one writer, so the
 * order of its acks is the order the server applied them. */
static void load_next(struct run *run, struct slot *s)
{
    uint64_t owned = (run->nkeys - s->index + run->nslots - 1) / run->nslots;
    uint64_t request_id = s->next_id;
    uint8_t delta[8];
    char key[KV_KEY_MAX + 1];

    if (s->seq % 4 == 3) {
        kv_put_le64(delta, 1);
        snprintf(s->value, sizeof(s->value), "1");
        run_slot_start(run, s, KV_OP_INCR, "ctr", delta, sizeof(delta));
        return;
    }
    snprintf(key, sizeof(key), "k%" PRIu64,
             s->index + run->nslots * (s->key_seq++ % owned));
    snprintf(s->value, sizeof(s->value), "c%" PRIu32 "-r%" PRIu64, s->client_id,
             request_id);
    run->puts++;
    run_slot_start(run, s, KV_OP_PUT, key, s->value, strlen(s->value));
}

static int load_done(struct run *run, struct slot *s, const struct reply *rep)
{
    const char *op = s->op == KV_OP_PUT ? "put" : "incr";

    if (rep->status != KV_OK) {
        fprintf(stderr, "kvclient: %s %s: status %u\n", op, s->key, rep->status);
        return 0;
    }
    if (fprintf(run->acklog, "ack %" PRIu64 " %s %s %s\n", tdm_wall_ns(), op,
                s->key, s->value) < 0 ||
        fflush(run->acklog) != 0) {
        log_warn("writing the ack log");
        return -1;
    }
    return 0;
}

static void bench_next(struct run *run, struct slot *s)
{
    char key[KV_KEY_MAX + 1], value[BENCH_VALUE_LEN];

    snprintf(key, sizeof(key), "b%u", (unsigned)(rand_r(&run->seed) % run->nkeys));
    if (rand_r(&run->seed) % 2) {
        memset(value, 'v', sizeof(value));
        run->puts++;
        run_slot_start(run, s, KV_OP_PUT, key, value, sizeof(value));
    } else {
        run->gets++;
        run_slot_start(run, s, KV_OP_GET, key, NULL, 0);
    }
}

static void run_init(struct run *run, struct kvc *kvc, const struct opts *o,
                     unsigned nslots)
{
    uint64_t first_id = tdm_wall_ns();

    memset(run, 0, sizeof(*run));
    run->kvc = kvc;
    run->nslots = nslots;
    run->nkeys = o->nkeys;
    run->duration_ns = o->duration_s * NS_PER_S;
    run->seed = (unsigned)first_id;
    run->slots = tdm_calloc(nslots, sizeof(struct slot));
    for (unsigned i = 0; i < nslots; i++) {
        run->slots[i].index = i;
        run->slots[i].client_id = o->client_id + i;
        /* Above any id an earlier run with this client id can have used. */
        run->slots[i].next_id = first_id;
    }
}

static void run_dispose(struct run *run)
{
    free(run->slots);
    free(run->lat_us);
    run->slots = NULL;
    run->lat_us = NULL;
}

static int cmd_load(struct kvc *kvc, const struct opts *o)
{
    struct run run;
    int rc;

    run_init(&run, kvc, o, (unsigned)o->window);
    run.next = load_next;
    run.done = load_done;
    run.acklog = fopen(o->acklog, "a");
    if (!run.acklog) {
        log_warn("opening %s", o->acklog);
        run_dispose(&run);
        return EXIT_FAILURE;
    }
    rc = run_loop(&run);
    if (fclose(run.acklog) != 0 && !rc) {
        log_warn("closing %s", o->acklog);
        rc = -1;
    }
    run_print(&run, "load:");
    rc = rc < 0 ? EXIT_FAILURE : run.unacked ? EXIT_TIMEOUT : 0;
    run_dispose(&run);
    return rc;
}

static int cmd_bench(struct kvc *kvc, const struct opts *o)
{
    struct run run;
    int rc;

    run_init(&run, kvc, o, (unsigned)o->window);
    run.next = bench_next;
    rc = run_loop(&run);
    run_print(&run, "bench:");
    rc = rc < 0 ? EXIT_FAILURE : run.unacked ? EXIT_TIMEOUT : 0;
    run_dispose(&run);
    return rc;
}

/* ---- verify ---- */

struct logrec {
    char *key;
    char *value;
    size_t line;
    bool acked;
    bool incr;
};

static int logrec_cmp(const void *a, const void *b)
{
    const struct logrec *x = a, *y = b;
    int c = strcmp(x->key, y->key);

    if (c)
        return c;
    return x->line < y->line ? -1 : x->line > y->line;
}

static int verify_read(const char *path, struct logrec **recs_r, size_t *n_r)
{
    char line[1024], kind[16], op[16], key[KV_KEY_MAX + 1], value[KV_VALUE_MAX + 1];
    struct logrec *recs = NULL, *r;
    size_t n = 0, cap = 0, lineno = 0;
    uint64_t ns;
    FILE *f = fopen(path, "r");
    int rc = -1;

    if (!f) {
        log_warn("opening %s", path);
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        if (sscanf(line, "%15s %" SCNu64 " %15s %64s %512s", kind, &ns, op, key,
                   value) != 5 ||
            (strcmp(kind, "ack") && strcmp(kind, "unacked")) ||
            (strcmp(op, "put") && strcmp(op, "incr"))) {
            log_warnx("%s:%zu: not an ack log line", path, lineno);
            goto out;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            recs = tdm_realloc(recs, cap * sizeof(*recs));
        }
        r = &recs[n++];
        r->key = tdm_strdup(key);
        r->value = tdm_strdup(value);
        r->line = lineno;
        r->acked = !strcmp(kind, "ack");
        r->incr = !strcmp(op, "incr");
    }
    if (ferror(f)) {
        log_warn("reading %s", path);
        goto out;
    }
    qsort(recs, n, sizeof(*recs), logrec_cmp);
    *recs_r = recs;
    *n_r = n;
    recs = NULL;
    n = 0;
    rc = 0;
out:
    for (size_t i = 0; i < n; i++) {
        free(recs[i].key);
        free(recs[i].value);
    }
    free(recs);
    fclose(f);
    return rc;
}

struct verify_counts {
    uint64_t ok, lost, duplicated;
};

/* Checks one key against its records recs[0..n): a counter must equal the
 * sum of its acked deltas (plus any unacked ones that may have landed), a
 * plain key must hold its last acked value (or an unacked later one). */
static int verify_key(struct kvc *kvc, uint32_t client_id, uint64_t *next_id,
                      uint64_t timeout_ns, const struct logrec *recs, size_t n,
                      struct verify_counts *vc)
{
    const char *key = recs[0].key, *want = NULL;
    int64_t acked_sum = 0, unacked_sum = 0, have, delta;
    bool incr = recs[0].incr, match;
    struct reply rep;

    for (size_t i = 0; i < n; i++) {
        if (recs[i].incr != incr) {
            log_warnx("key %s is both put and incremented in the log", key);
            return -1;
        }
        if (!incr) {
            if (recs[i].acked)
                want = recs[i].value;
            continue;
        }
        delta = strtoll(recs[i].value, NULL, 10);
        if (recs[i].acked)
            acked_sum += delta;
        else
            unacked_sum += delta;
    }
    if (kvc_call(kvc, client_id, (*next_id)++, KV_OP_GET, key, NULL, 0,
                 timeout_ns, &rep) < 0) {
        log_warnx("get %s: no reply", key);
        return -1;
    }
    if (rep.status != KV_OK && rep.status != KV_NOT_FOUND) {
        log_warnx("get %s: status %u", key, rep.status);
        return -1;
    }

    if (incr) {
        have = 0;
        if (rep.status == KV_OK && rep.len == 8)
            have = (int64_t)kv_get_le64(rep.value);
        else if (rep.status == KV_OK)
            fprintf(stderr, "verify: %s is not a counter\n", key);
        if (have < acked_sum) {
            fprintf(stderr, "verify: %s = %" PRId64 ", %" PRId64 " acked increments: "
                    "%" PRId64 " lost\n", key, have, acked_sum, acked_sum - have);
            vc->lost += (uint64_t)(acked_sum - have);
        } else if (have > acked_sum + unacked_sum) {
            fprintf(stderr, "verify: %s = %" PRId64 ", %" PRId64 " acked increments: "
                    "%" PRId64 " applied twice\n", key, have, acked_sum,
                    have - acked_sum - unacked_sum);
            vc->duplicated += (uint64_t)(have - acked_sum - unacked_sum);
        } else {
            vc->ok++;
        }
        return 0;
    }

    /* A key has one writer at a time, so its acked values are in the
     * order they were applied; an unacked write came last and may or may
     * not have landed. */
    if (rep.status == KV_OK) {
        match = want && !strcmp((char *)rep.value, want);
        for (size_t i = 0; i < n && !match; i++)
            match = !recs[i].acked && !strcmp((char *)rep.value, recs[i].value);
    } else {
        match = !want;
    }
    if (match) {
        vc->ok++;
    } else {
        fprintf(stderr, "verify: %s: want \"%s\", have %s%s%s\n", key,
                want ? want : "(unacked only)",
                rep.status == KV_OK ? "\"" : "nothing",
                rep.status == KV_OK ? (char *)rep.value : "",
                rep.status == KV_OK ? "\"" : "");
        vc->lost++;
    }
    return 0;
}

static int cmd_verify(struct kvc *kvc, const struct opts *o)
{
    struct verify_counts vc = { 0, 0, 0 };
    struct logrec *recs = NULL;
    uint64_t next_id = tdm_wall_ns();
    size_t n = 0, i, j;
    int rc = EXIT_FAILURE;

    if (verify_read(o->input, &recs, &n) < 0)
        return EXIT_FAILURE;
    for (i = 0; i < n; i = j) {
        for (j = i + 1; j < n && !strcmp(recs[j].key, recs[i].key); j++)
            ;
        if (verify_key(kvc, o->client_id, &next_id, o->timeout_ms * NS_PER_MS,
                       recs + i, j - i, &vc) < 0)
            goto out;
    }
    printf("verify: %" PRIu64 " keys ok, %" PRIu64 " lost, %" PRIu64 " duplicated\n",
           vc.ok, vc.lost, vc.duplicated);
    rc = vc.lost || vc.duplicated ? EXIT_FAILURE : 0;
out:
    for (i = 0; i < n; i++) {
        free(recs[i].key);
        free(recs[i].value);
    }
    free(recs);
    return rc;
}

/* ---- one-shot commands ---- */

static int check_key(const char *key)
{
    size_t n = strlen(key);

    if (n == 0 || n > KV_KEY_MAX) {
        fprintf(stderr, "kvclient: a key is 1 to %u bytes\n", KV_KEY_MAX);
        return -1;
    }
    return 0;
}

static int cmd_single(struct kvc *kvc, const struct opts *o, const char *cmd,
                      int argc, char **argv)
{
    static const struct {
        const char *name;
        uint8_t op;
        int nargs;
    } cmds[] = {
        { "put", KV_OP_PUT, 2 },   { "get", KV_OP_GET, 1 },
        { "incr", KV_OP_INCR, 2 }, { "del", KV_OP_DEL, 1 },
        { "stats", KV_OP_STATS, 0 }, { "wait", KV_OP_STATS, 0 },
        { "fsck", KV_OP_FSCK, 0 },
    };
    const void *value = NULL;
    size_t value_len = 0, i;
    uint8_t delta[8];
    struct reply rep;
    char *end;
    long long d;

    for (i = 0; i < TDM_ARRAY_SIZE(cmds) && strcmp(cmds[i].name, cmd); i++)
        ;
    if (argc != cmds[i].nargs) {
        fprintf(stderr, "kvclient: %s takes %d argument%s\n", cmd, cmds[i].nargs,
                cmds[i].nargs == 1 ? "" : "s");
        return EXIT_USAGE;
    }
    if (argc && check_key(argv[0]) < 0)
        return EXIT_USAGE;
    if (cmds[i].op == KV_OP_PUT) {
        value = argv[1];
        value_len = strlen(argv[1]);
        if (value_len > KV_VALUE_MAX) {
            fprintf(stderr, "kvclient: a value is at most %u bytes\n", KV_VALUE_MAX);
            return EXIT_USAGE;
        }
    } else if (cmds[i].op == KV_OP_INCR) {
        errno = 0;
        d = strtoll(argv[1], &end, 10);
        if (errno || end == argv[1] || *end) {
            fprintf(stderr, "kvclient: DELTA must be a signed 64-bit integer\n");
            return EXIT_USAGE;
        }
        kv_put_le64(delta, (uint64_t)d);
        value = delta;
        value_len = sizeof(delta);
    }

    if (kvc_call(kvc, o->client_id, tdm_wall_ns(), cmds[i].op,
                 argc ? argv[0] : "", value, value_len,
                 o->timeout_ms * NS_PER_MS, &rep) < 0) {
        fprintf(stderr, "kvclient: %s: no reply from %s in %" PRIu64 " ms\n", cmd,
                o->server, o->timeout_ms);
        return EXIT_TIMEOUT;
    }
    if (!strcmp(cmd, "wait"))
        return 0;
    switch (rep.status) {
    case KV_OK:
        break;
    case KV_NOT_FOUND:
        printf("NOT_FOUND\n");
        return EXIT_STATUS;
    case KV_FULL:
        printf("FULL\n");
        return EXIT_STATUS;
    default:
        printf("BAD_REQUEST\n");
        return EXIT_STATUS;
    }
    if (cmds[i].op == KV_OP_FSCK) {
        uint32_t differ, items, slots, flags;
        if (rep.len != KV_FSCK_LEN) {
            fprintf(stderr, "kvclient: fsck: a reply of %u bytes, %u expected\n",
                    rep.len, KV_FSCK_LEN);
            return EXIT_FAILURE;
        }
        differ = kv_get_le32(rep.value);
        items = kv_get_le32(rep.value + 4);
        slots = kv_get_le32(rep.value + 8);
        flags = kv_get_le32(rep.value + 12);
        if (!(flags & KV_FSCK_DISK)) {
            printf("fsck: items=%u slots=%u disk=none\n", items, slots);
            return EXIT_FAILURE;
        }
        printf("fsck: items=%u slots=%u differ=%u\n", items, slots, differ);
        return differ ? EXIT_FAILURE : 0;
    }
    if (cmds[i].op == KV_OP_INCR && rep.len == 8)
        printf("%" PRId64 "\n", (int64_t)kv_get_le64(rep.value));
    else if (cmds[i].op == KV_OP_GET || cmds[i].op == KV_OP_STATS)
        printf("%s\n", (char *)rep.value);
    else
        printf("OK\n");
    return 0;
}

/* ---- command line ---- */

static int parse_num(int opt, const char *arg, uint64_t min, uint64_t max,
                     uint64_t *v_r)
{
    if (tdm_parse_u64(arg, min, max, v_r) < 0) {
        fprintf(stderr, "kvclient: -%c wants a number in [%" PRIu64 ", %" PRIu64
                "], not \"%s\"\n", opt, min, max, arg);
        return -1;
    }
    return 0;
}

static int parse_opts(struct opts *o, int argc, char **argv)
{
    uint64_t v;
    int c;

    /* "+": stop at the first word, so "incr ctr -5" keeps its -5. */
    while ((c = getopt(argc, argv, "+s:r:T:c:d:k:o:i:w:h")) != -1) {
        if (c == '?' || c == 'h')
            return -1;
        o->seen[c] = 1;
        switch (c) {
        case 's': o->server = optarg; break;
        case 'o': o->acklog = optarg; break;
        case 'i': o->input = optarg; break;
        case 'r':
            if (parse_num(c, optarg, 1, 60000, &o->retry_ms) < 0)
                return -1;
            break;
        case 'T':
            if (parse_num(c, optarg, 1, 86400000, &o->timeout_ms) < 0)
                return -1;
            break;
        case 'c':
            if (parse_num(c, optarg, 1, UINT32_MAX, &v) < 0)
                return -1;
            o->client_id = (uint32_t)v;
            break;
        case 'd':
            if (parse_num(c, optarg, 1, 86400 * 365, &o->duration_s) < 0)
                return -1;
            break;
        case 'k':
            if (parse_num(c, optarg, 1, 100000000, &o->nkeys) < 0)
                return -1;
            break;
        case 'w':
            if (parse_num(c, optarg, 1, WINDOW_MAX, &o->window) < 0)
                return -1;
            break;
        }
    }
    return 0;
}

/* The options cmd accepts and the ones it needs. */
static int check_opts(const struct opts *o, const char *cmd, const char *allowed,
                      const char *required)
{
    for (int c = 0; c < (int)sizeof(o->seen); c++) {
        if (o->seen[c] && !strchr(allowed, c) && !strchr("srTc", c)) {
            fprintf(stderr, "kvclient: -%c does not apply to %s\n", c, cmd);
            return -1;
        }
    }
    for (; *required; required++) {
        if (!o->seen[(unsigned char)*required]) {
            fprintf(stderr, "kvclient: %s needs -%c\n", cmd, *required);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = { .retry_ms = 50, .timeout_ms = 5000, .nkeys = 100,
                      .window = 1 };
    struct sigaction sa = { .sa_handler = on_signal };
    struct kvc kvc = { .fd = -1 };
    const char *cmd;
    int rc, cmd_argc;
    char **cmd_argv;

    tdm_log_init("kvclient", true, TDM_LOG_INFO);
    if (parse_opts(&o, argc, argv) < 0 || optind >= argc)
        goto usage;
    cmd = argv[optind];
    cmd_argc = argc - optind;
    cmd_argv = argv + optind;
    optind = 0;                 /* glibc: start over, on cmd_argv */
    if (parse_opts(&o, cmd_argc, cmd_argv) < 0)
        goto usage;
    cmd_argc -= optind;
    cmd_argv += optind;
    if (!o.server) {
        fprintf(stderr, "kvclient: -s IP:PORT is required\n");
        goto usage;
    }

    if (!strcmp(cmd, "load")) {
        if (check_opts(&o, cmd, "dkow", "dko") < 0 || cmd_argc)
            goto usage;
        if (o.window > o.nkeys) {
            fprintf(stderr, "kvclient: -w must not exceed -k\n");
            goto usage;
        }
    } else if (!strcmp(cmd, "bench")) {
        if (check_opts(&o, cmd, "dkw", "d") < 0 || cmd_argc)
            goto usage;
    } else if (!strcmp(cmd, "verify")) {
        if (check_opts(&o, cmd, "i", "i") < 0 || cmd_argc)
            goto usage;
    } else if (!strcmp(cmd, "put") || !strcmp(cmd, "get") ||
               !strcmp(cmd, "incr") || !strcmp(cmd, "del") ||
               !strcmp(cmd, "stats") || !strcmp(cmd, "wait") ||
               !strcmp(cmd, "fsck")) {
        if (check_opts(&o, cmd, "", "") < 0)
            goto usage;
    } else {
        fprintf(stderr, "kvclient: unknown command \"%s\"\n", cmd);
        goto usage;
    }

    if (!o.seen['c']) {
        /* Clients must not share an id by chance: draw it at random. */
        do {
            if (getrandom(&o.client_id, sizeof(o.client_id), 0) !=
                sizeof(o.client_id))
                fatal("getrandom");
        } while (!o.client_id || o.client_id > UINT32_MAX - WINDOW_MAX);
    }
    if ((uint64_t)o.client_id + o.window - 1 > UINT32_MAX) {
        fprintf(stderr, "kvclient: -c plus -w overflows the client id\n");
        goto usage;
    }
    if (kvc_open(&kvc, o.server, o.retry_ms) < 0)
        return EXIT_USAGE;

    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    if (!strcmp(cmd, "load"))
        rc = cmd_load(&kvc, &o);
    else if (!strcmp(cmd, "bench"))
        rc = cmd_bench(&kvc, &o);
    else if (!strcmp(cmd, "verify"))
        rc = cmd_verify(&kvc, &o);
    else
        rc = cmd_single(&kvc, &o, cmd, cmd_argc, cmd_argv);
    close(kvc.fd);
    return rc;

usage:
    usage(stderr);
    return EXIT_USAGE;
}
