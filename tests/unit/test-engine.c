/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The epoch engine's state machines, end to end over loopback TCP inside one
 * process: a primary host and a backup host on one event loop, a fake driver
 * whose "guest" is a page array the test writes to, and (for corruption) a
 * proxy on the replication link that flips one bit.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <stdio.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "engine-private.h"
#include "engine-loop.h"

#define NPAGES 64
#define MAX_EPOCHS 4096

/* ---- fake driver ---- */

struct tdm_dom {
    bool replica, running, suspended, log_all;
    uint8_t mem[NPAGES][TDM_PAGE_SIZE];
    uint64_t dirty;                 /* bit per page */
    uint64_t state;                 /* a "register" */
    bool buffering;
    uint64_t out_epoch;
    uint64_t held[256], held_epoch[256];
    size_t nheld;
    uint64_t next_out;              /* output sequence number */
    uint64_t released;              /* outputs released */
    uint64_t pc_next;               /* precopy: the next page */
};

static struct tdm_dom *primary_dom, *replica_dom;
static uint64_t epoch_hash[MAX_EPOCHS]; /* primary's memory hash per epoch */
static int applied_bad;                 /* applies that matched no snapshot */
static int released_early;              /* outputs released before ack */

static uint64_t mem_hash(struct tdm_dom *d)
{
    return tdm_crc32c(0, d->mem, sizeof(d->mem)) ^ (d->state << 32);
}

static int f_validate(struct tdm_cfg *cfg, char *err, size_t errlen)
{
    tdm_cfg_get(cfg, "name");
    tdm_cfg_get(cfg, "driver");
    return tdm_cfg_check_unused(cfg, err, errlen);
}
static int f_create(struct tdm_cfg *cfg, struct event_base *b,
                    const struct tdm_dom_events *ev, struct tdm_dom **r)
{
    *r = tdm_calloc(1, sizeof(**r));
    (*r)->running = true;
    primary_dom = *r;
    return 0;
}
static int f_create_replica(struct tdm_cfg *cfg, struct event_base *b,
                            const struct tdm_dom_events *ev, struct tdm_dom **r)
{
    *r = tdm_calloc(1, sizeof(**r));
    (*r)->replica = true;
    replica_dom = *r;
    return 0;
}
static uint64_t f_npages(struct tdm_dom *d) { return NPAGES; }
static int f_log_dirty(struct tdm_dom *d, bool on) { d->log_all = on; return 0; }
static int f_suspend(struct tdm_dom *d) { d->suspended = true; return 0; }
static int f_resume(struct tdm_dom *d) { d->suspended = false; return 0; }
static int f_capture(struct tdm_dom *d, struct tdm_staging *st)
{
    assert_true(d->suspended);
    for (uint64_t p = 0; p < NPAGES; p++) {
        if (d->log_all || (d->dirty >> p & 1)) {
            /* after a precopy (page p staged at p), overwrite in place */
            uint8_t *slot = st->npages == NPAGES ? tdm_staging_page(st, p)
                                                 : tdm_staging_add_page(st, p);
            assert_non_null(slot);
            memcpy(slot, d->mem[p], TDM_PAGE_SIZE);
        }
    }
    d->log_all = false;
    d->dirty = 0;
    tdm_staging_set_state(st, &d->state, sizeof(d->state));
    if (st->epoch < MAX_EPOCHS)
        epoch_hash[st->epoch] = mem_hash(d);
    return 0;
}
static int f_apply(struct tdm_dom *d, const struct tdm_staging *st)
{
    if (st->state_len != sizeof(d->state))
        return -1;
    for (size_t i = 0; i < st->npages; i++)
        memcpy(d->mem[st->pfns[i]], tdm_staging_page(st, i), TDM_PAGE_SIZE);
    memcpy(&d->state, st->state, sizeof(d->state));
    /* the replica must always equal the primary at exactly that epoch */
    if (st->epoch >= MAX_EPOCHS || mem_hash(d) != epoch_hash[st->epoch])
        applied_bad++;
    return 0;
}
static int f_activate(struct tdm_dom *d) { d->running = true; return 0; }
static void f_output_buffer(struct tdm_dom *d, bool on, uint64_t e)
{
    d->buffering = on;
    d->out_epoch = e;
    if (!on) {
        d->released += d->nheld;
        d->nheld = 0;
    }
}
static void f_output_cut(struct tdm_dom *d, uint64_t e) { d->out_epoch = e; }
static void f_output_release(struct tdm_dom *d, uint64_t e)
{
    size_t keep = 0;

    for (size_t i = 0; i < d->nheld; i++) {
        if (d->held_epoch[i] <= e) {
            /* the backup must already hold the epoch that made it */
            if (!replica_dom || replica_dom->state < d->held_epoch[i])
                released_early++;
            d->released++;
        } else {
            d->held[keep] = d->held[i];
            d->held_epoch[keep++] = d->held_epoch[i];
        }
    }
    d->nheld = keep;
}
static void f_output_stats(struct tdm_dom *d, struct tdm_output_stats *s)
{
    memset(s, 0, sizeof(*s));
    s->held_frames = d->nheld;
    s->released_frames = d->released;
}
static bool f_running(struct tdm_dom *d) { return d->running; }
static void f_destroy(struct tdm_dom *d)
{
    if (d == primary_dom)
        primary_dom = NULL;
    if (d == replica_dom)
        replica_dom = NULL;
    free(d);
}

/* The live copy in steps (driver op precopy), made slow on purpose: one
 * page a step, precopy_sleep_us each, the guest running in between. */
static unsigned precopy_sleep_us, precopy_calls, precopy_max_seen;
static int f_precopy(struct tdm_dom *d, struct tdm_staging *st, size_t max)
{
    assert_false(d->suspended);
    assert_true(d->log_all);
    assert_true(max >= 1);
    if (st->npages == 0)
        d->pc_next = 0;
    precopy_calls++;
    precopy_max_seen = TDM_MAX(precopy_max_seen, (unsigned)max);
    usleep(precopy_sleep_us);
    memcpy(tdm_staging_add_page(st, d->pc_next), d->mem[d->pc_next],
           TDM_PAGE_SIZE);
    if (++d->pc_next < NPAGES)
        return 1;
    /* every page is staged: the capture takes what was dirtied since */
    d->log_all = false;
    return 0;
}

static const struct tdm_driver_ops fake = {
    .name = "fake", .validate = f_validate, .create = f_create,
    .create_replica = f_create_replica, .npages = f_npages,
    .log_dirty = f_log_dirty, .suspend = f_suspend, .capture = f_capture,
    .resume = f_resume, .apply = f_apply, .activate = f_activate,
    .output_buffer = f_output_buffer, .output_cut = f_output_cut,
    .output_release = f_output_release, .output_stats = f_output_stats,
    .running = f_running, .destroy = f_destroy,
};

static struct tdm_driver_ops fake_pc;   /* fake + precopy, as "fakepc" */

/* The guest "runs": dirty a page, bump its state (= the epoch counter it
 * will be captured in, so outputs can be checked against the replica), and
 * emit an output tagged with the current epoch. */
static void guest_step(struct tdm_dom *d, unsigned i)
{
    uint64_t p = (i * 7u) % NPAGES;

    if (!d || d->suspended || d->replica)
        return;
    memset(d->mem[p], (int)i, 100);
    d->dirty |= 1ull << p;
    d->state = d->out_epoch;
    if (d->buffering && d->nheld < 256) {
        d->held[d->nheld] = d->next_out++;
        d->held_epoch[d->nheld++] = d->out_epoch;
    } else {
        d->released++;
    }
}

/* ---- harness ---- */

static void loop_step(unsigned i)
{
    guest_step(primary_dom, i);
}

/* Hosts hp and hb, and domain d1 on hp with the given driver. */
static int setup_driver(const char *driver)
{
    struct tdm_host_config hc;
    char err[256], cfg[64];

    snprintf(cfg, sizeof(cfg), "name = \"d1\"\ndriver = \"%s\"\n", driver);
    base = event_base_new();
    tdm_host_config_default(&hc);
    tdm_strlcpy(hc.listen_addr, "127.0.0.1", sizeof(hc.listen_addr));
    hc.listen_port = 0;
    assert_int_equal(tdm_host_new(base, &hc, NULL, &hb), 0);
    hc.listen_addr[0] = '\0';
    assert_int_equal(tdm_host_new(base, &hc, NULL, &hp), 0);
    memset(epoch_hash, 0, sizeof(epoch_hash));
    applied_bad = released_early = 0;
    precopy_calls = precopy_max_seen = 0;
    if (tdm_host_create(hp, cfg, strlen(cfg), err, sizeof(err)) < 0)
        fail_msg("create: %s", err);
    return 0;
}

static int setup(void **state) { return setup_driver("fake"); }
static int setup_pc(void **state) { return setup_driver("fakepc"); }

static int teardown(void **state)
{
    tdm_host_free(hp);
    tdm_host_free(hb);
    hp = hb = NULL;
    run_ms(1);
    event_base_free(base);
    return 0;
}

static void protect(uint16_t port)
{
    struct tdm_engine_params p = {.interval_ms = 10, .heartbeat_ms = 20,
                                  .timeout_ms = 150};
    char err[256];

    assert_int_equal(tdm_host_protect(hp, "d1", "127.0.0.1", port, &p, err,
                                      sizeof(err)), 0);
}

static void test_protect_replicates_and_holds_output(void **state)
{
    protect(tdm_host_listen_port(hb));
    assert_true(run_until(protected, 3000));
    run_ms(300);
    assert_non_null(eng_b());
    assert_int_equal(eng_b()->state, TDM_ST_REPLICA);
    assert_true(eng_p()->m.epochs >= 10);
    assert_true(eng_b()->applied >= eng_p()->acked);
    assert_int_equal(applied_bad, 0);
    assert_int_equal(released_early, 0);
    assert_true(primary_dom->released > 0);
    /* pauses were measured, the initial sync apart, and every epoch was a
     * whole one */
    assert_int_equal(eng_p()->m.syncs, 1);
    assert_int_equal(eng_p()->m.sync_pages, NPAGES);  /* every page */
    assert_true(eng_p()->m.pause_ns.count + 1 == eng_p()->m.epochs);
    assert_int_equal(eng_b()->m.torn_epochs, 0);
}

static void test_primary_loss_activates_replica(void **state)
{
    uint64_t applied;

    protect(tdm_host_listen_port(hb));
    assert_true(run_until(protected, 3000));
    run_ms(100);
    /* the primary dies without a word: its link just closes */
    tdm__primary_unprotect(eng_p(), false);
    tdm_host_destroy(hp, "d1", NULL, 0);
    applied = eng_b()->applied;
    /* not before the failure timeout */
    run_ms(60);
    assert_int_equal(eng_b()->role, TDM_ROLE_BACKUP);
    run_ms(400);
    assert_int_equal(eng_b()->role, TDM_ROLE_PRIMARY);
    assert_int_equal(eng_b()->state, TDM_ST_UNPROTECTED);
    assert_true(replica_dom->running);
    assert_int_equal(eng_b()->applied, applied);
    assert_int_equal(eng_b()->m.failovers, 1);
    assert_int_equal(applied_bad, 0);
}

static void test_goodbye_drops_replica(void **state)
{
    char err[256];

    protect(tdm_host_listen_port(hb));
    assert_true(run_until(protected, 3000));
    assert_int_equal(tdm_host_unprotect(hp, "d1", err, sizeof(err)), 0);
    run_ms(400);
    assert_null(eng_b());
    assert_int_equal(eng_p()->state, TDM_ST_UNPROTECTED);
    assert_int_equal(primary_dom->nheld, 0);
    /* and errors for the wrong calls */
    assert_int_equal(tdm_host_unprotect(hp, "d1", err, sizeof(err)), -1);
    assert_int_equal(tdm_host_failover(hp, "nope", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "nope"));
}

/* A GOODBYE (or ERROR) is the last frame a side sends before it closes.
 * Closed at once while the peer's own frames lay unread, the socket would
 * answer with a reset, which drops what the kernel has not sent yet: the
 * GOODBYE behind an epoch in flight. The backup would then take the
 * silence for a dead primary and run a second copy of the guest. The
 * "backup" here is a raw socket that reads slowly and keeps talking. */
static bool peer_up;
static void peer_up_cb(struct tdm__peer *p, const struct tdm_frame *f,
                       const char *why, void *arg)
{
    if (!f && !why)
        peer_up = true;
}

static void test_goodbye_reaches_a_slow_talking_peer(void **state)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t salen = sizeof(sa);
    int lfd, bfd, small = 64 << 10, one = 1;
    static uint8_t chunk[64 << 10];
    enum { NCHUNK = 256 };  /* 16 MiB: far more than the socket buffers */
    size_t cap = (size_t)NCHUNK * (sizeof(chunk) + 64) + 4096, got = 0;
    uint8_t *in = malloc(cap);
    struct iovec iov = {chunk, sizeof(chunk)};
    struct tdm__peer *a;
    bool eof = false, reset = false;
    uint64_t end;

    assert_non_null(in);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 1), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &salen), 0);

    peer_up = false;
    a = tdm__peer_connect(base, hp->dns, "127.0.0.1", ntohs(sa.sin_port),
                          peer_up_cb, NULL);
    assert_non_null(a);
    bfd = accept(lfd, NULL, NULL);
    assert_true(bfd >= 0);
    for (int i = 0; i < 500 && !peer_up; i++)
        run_ms(2);
    assert_true(peer_up);

    memset(chunk, 0x5a, sizeof(chunk));
    for (int i = 0; i < NCHUNK; i++)
        assert_int_equal(tdm__peer_send(a, TDM_MSG_PAGES, 7, &iov, 1), 0);
    assert_int_equal(tdm__peer_send_text(a, TDM_MSG_GOODBYE, 0, "bye"), 0);
    tdm__peer_close_after_flush(a);
    /* the backup still talks: a's side has input it will not act on */
    assert_int_equal(write(bfd, "heartbeat, ack, heartbeat...", 28), 28);

    end = tdm_now_ns() + 20000000000ull;
    while (!eof && !reset && tdm_now_ns() < end) {
        ssize_t n;

        run_ms(2);
        n = recv(bfd, in + got, cap - got < 65536 ? cap - got : 65536,
                 MSG_DONTWAIT);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0)
            eof = true;
        else if (errno == ECONNRESET)
            reset = true;
    }
    assert_false(reset);
    assert_true(eof);

    /* every frame arrived, the GOODBYE last */
    {
        size_t off = 0, used;
        unsigned pages = 0, goodbyes = 0;
        struct tdm_frame f;
        char err[128];

        while (off < got) {
            assert_int_equal(tdm_frame_decode(in + off, got - off, &f, &used,
                                              err, sizeof(err)), TDM_DEC_OK);
            if (f.type == TDM_MSG_PAGES)
                pages++;
            else if (f.type == TDM_MSG_GOODBYE && off + used == got)
                goodbyes++;
            off += used;
        }
        assert_int_equal(pages, NCHUNK);
        assert_int_equal(goodbyes, 1);
    }
    close(bfd);
    close(lfd);
    free(in);
}

static void test_planned_failover(void **state)
{
    char err[256];

    protect(tdm_host_listen_port(hb));
    assert_true(run_until(protected, 3000));
    run_ms(100);
    assert_int_equal(tdm_host_failover(hp, "d1", err, sizeof(err)), 0);
    run_ms(300);
    assert_int_equal(eng_p()->state, TDM_ST_STOPPED);
    assert_int_equal(eng_b()->role, TDM_ROLE_PRIMARY);
    assert_int_equal(applied_bad, 0);
    assert_int_equal(released_early, 0);
}

/* ---- bit-flipping proxy on the replication link ---- */

struct proxy {
    struct evconnlistener *l;
    uint16_t port, to;
    uint64_t flip_at, seen;     /* flip one bit at this byte of p->b */
    bool blackhole;             /* swallow everything: a partition */
    struct bufferevent *a, *b;
};
static struct proxy px;

static void px_read(struct bufferevent *from, void *arg)
{
    struct bufferevent *to = from == px.a ? px.b : px.a;
    struct evbuffer *in = bufferevent_get_input(from);
    size_t n = evbuffer_get_length(in);
    uint8_t *d = evbuffer_pullup(in, (ssize_t)n);

    if (px.blackhole) {
        evbuffer_drain(in, n);
        return;
    }
    if (from == px.a && px.flip_at >= px.seen && px.flip_at < px.seen + n)
        d[px.flip_at - px.seen] ^= 0x10;
    if (from == px.a)
        px.seen += n;
    bufferevent_write(to, d, n);
    evbuffer_drain(in, n);
}
static void px_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (px.a) bufferevent_free(px.a);
        if (px.b) bufferevent_free(px.b);
        px.a = px.b = NULL;
    }
}
static void px_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int len, void *arg)
{
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons(px.to),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (px.a) { /* one link at a time */
        evutil_closesocket(fd);
        return;
    }
    px.a = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    px.b = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_socket_connect(px.b, (struct sockaddr *)&to, sizeof(to));
    bufferevent_setcb(px.a, px_read, NULL, px_event, NULL);
    bufferevent_setcb(px.b, px_read, NULL, px_event, NULL);
    bufferevent_enable(px.a, EV_READ | EV_WRITE);
    bufferevent_enable(px.b, EV_READ | EV_WRITE);
}
static void proxy_start(uint64_t flip_at)
{
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sin);

    memset(&px, 0, sizeof(px));
    px.to = tdm_host_listen_port(hb);
    px.flip_at = flip_at;
    px.l = evconnlistener_new_bind(base, px_accept, NULL,
                                   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                   8, (struct sockaddr *)&sin, sizeof(sin));
    assert_non_null(px.l);
    getsockname(evconnlistener_get_fd(px.l), (struct sockaddr *)&sin, &sl);
    px.port = ntohs(sin.sin_port);
}
static void proxy_stop(void)
{
    if (px.a) bufferevent_free(px.a);
    if (px.b) bufferevent_free(px.b);
    evconnlistener_free(px.l);
}

static void test_corrupt_epoch_never_applied(void **state)
{
    uint64_t applied_before;

    /* Past the first full epoch (64 pages ~ 260 KiB), inside a later one. */
    proxy_start(400 * 1024 + 77);
    protect(px.port);
    assert_true(run_until(protected, 3000));
    run_ms(600);
    /* the flipped frame was caught and its epoch dropped whole */
    assert_true(eng_b()->m.rejected_frames >= 1);
    assert_true(eng_b()->m.torn_epochs >= 1);
    assert_int_equal(applied_bad, 0);
    /* the backup did not take the broken link for a dead primary */
    assert_int_equal(eng_b()->role, TDM_ROLE_BACKUP);
    /* the primary reconnects and protection resumes past the bad spot */
    applied_before = eng_b()->applied;
    assert_true(run_until(protected, 4000));
    run_ms(200);
    assert_true(eng_b()->applied > applied_before);
    assert_int_equal(applied_bad, 0);
    assert_int_equal(released_early, 0);
    proxy_stop();
}

/* A partition, not a crash: both sides are alive and each takes the other
 * for dead. With a fence, exactly one of them may go on running the domain. */
static void test_partition_with_fence_leaves_one_copy(void **state)
{
    char dir[] = "/tmp/tdm-fence-XXXXXX";
    int running = 0;

    assert_non_null(mkdtemp(dir));
    tdm_strlcpy(hp->cfg.fence_path, dir, sizeof(hp->cfg.fence_path));
    tdm_strlcpy(hb->cfg.fence_path, dir, sizeof(hb->cfg.fence_path));
    proxy_start(UINT64_MAX);
    protect(px.port);
    assert_true(run_until(protected, 3000));
    run_ms(100);
    px.blackhole = true;
    run_ms(800);
    if (eng_p() && eng_p()->state != TDM_ST_STOPPED && primary_dom)
        running++;
    if (eng_b() && eng_b()->role == TDM_ROLE_PRIMARY &&
        eng_b()->state != TDM_ST_STOPPED)
        running++;
    assert_int_equal(running, 1);
    proxy_stop();
    {
        char path[600];
        snprintf(path, sizeof(path), "%s/d1.lease", dir);
        unlink(path);
        rmdir(dir);
    }
}

static void test_hello_refusals(void **state)
{
    struct tdm_host_config hc;
    struct tdm_host *other;
    char err[256];
    const char *cfg = "name = \"d1\"\ndriver = \"fake\"\n";

    /* a domain of the same name already runs on the would-be backup */
    tdm_host_config_default(&hc);
    hc.listen_addr[0] = '\0';
    assert_int_equal(tdm_host_create(hb, cfg, strlen(cfg), err, sizeof(err)), 0);
    protect(tdm_host_listen_port(hb));
    run_ms(300);
    assert_int_equal(eng_p()->state, TDM_ST_UNPROTECTED);
    assert_int_equal(tdm_host_destroy(hb, "d1", err, sizeof(err)), 0);

    /* bad arguments change nothing */
    struct tdm_engine_params bad = {.interval_ms = 0, .heartbeat_ms = 20,
                                    .timeout_ms = 100};
    assert_int_equal(tdm_host_protect(hp, "d1", "127.0.0.1", 1, &bad, err,
                                      sizeof(err)), -1);
    assert_non_null(strstr(err, "interval"));
    bad.interval_ms = 10;
    bad.timeout_ms = 30;
    assert_int_equal(tdm_host_protect(hp, "d1", "127.0.0.1", 1, &bad, err,
                                      sizeof(err)), -1);
    assert_non_null(strstr(err, "timeout"));
    assert_int_equal(eng_p()->state, TDM_ST_UNPROTECTED);
    assert_int_equal(tdm_host_create(hp, cfg, strlen(cfg), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "already exists"));
    assert_int_equal(tdm_host_create(hp, "name = 1x/\n", 11, err, sizeof(err)), -1);
    assert_int_equal(tdm_host_create(hp, "name = \"d2\"\ndriver = \"nope\"\n", 28,
                                     err, sizeof(err)), -1);
    assert_non_null(strstr(err, "nope"));
    (void)other;
}

/* A live copy that takes 13 times the failure timeout, in steps: the
 * heartbeats get through between them, so neither side takes the other
 * for dead, and the replica is exact. Made in one call (as capture makes
 * it without the op), the backup would activate mid-copy. */
static void test_live_copy_in_steps_keeps_heartbeats(void **state)
{
    struct tdm_engine_params p = {.interval_ms = 10, .heartbeat_ms = 20,
                                  .timeout_ms = 150};
    char err[256];

    precopy_sleep_us = 30000;       /* 64 steps: about 1.9 s */
    assert_int_equal(tdm_host_protect(hp, "d1", "127.0.0.1",
                                      tdm_host_listen_port(hb), &p, err,
                                      sizeof(err)), 0);
    assert_true(run_until(protected, 6000));
    run_ms(200);
    assert_int_equal(eng_p()->state, TDM_ST_PROTECTED);
    assert_int_equal(precopy_calls, NPAGES);
    assert_true(precopy_max_seen >= 1);
    assert_int_equal(eng_p()->m.sync_live_steps, NPAGES);
    assert_true(eng_p()->m.sync_live_ns >= NPAGES * 30000000ull);
    assert_true(eng_p()->m.sync_live_step_max_ns < 150000000ull);
    /* one sync only: the link never dropped */
    assert_int_equal(eng_p()->m.syncs, 1);
    assert_non_null(eng_b());
    assert_int_equal(eng_b()->state, TDM_ST_REPLICA);
    assert_int_equal(eng_b()->m.failovers, 0);
    assert_true(eng_b()->applied >= eng_p()->acked);
    assert_int_equal(applied_bad, 0);
    assert_int_equal(released_early, 0);
    precopy_sleep_us = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_protect_replicates_and_holds_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_primary_loss_activates_replica, setup, teardown),
        cmocka_unit_test_setup_teardown(test_goodbye_drops_replica, setup, teardown),
        cmocka_unit_test_setup_teardown(test_goodbye_reaches_a_slow_talking_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_planned_failover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_epoch_never_applied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partition_with_fence_leaves_one_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_copy_in_steps_keeps_heartbeats, setup_pc, teardown),
    };
    tdm_log_init("test-engine", true,
                 getenv("TDM_TEST_DEBUG") ? TDM_LOG_DEBUG : TDM_LOG_ERR - 1);
    tdm_driver_register(&fake);
    fake_pc = fake;
    fake_pc.name = "fakepc";
    fake_pc.precopy = f_precopy;
    tdm_driver_register(&fake_pc);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
