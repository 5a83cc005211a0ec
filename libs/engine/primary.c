/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The primary: at each epoch deadline, suspend the domain, copy its dirty
 * pages and state into staging, cut the output queues, resume, and only then
 * stream the epoch to the backup. Outputs of epoch N are released when the
 * backup acks N.
 *
 * One epoch is in flight on the wire at a time: the staging buffer is sent
 * by reference and reused only when the socket has taken all of it. A tick
 * that finds the last epoch still being written is deferred until it has
 * (counted in skipped_ticks); the domain keeps running meanwhile.
 */
#include "config.h"

#include <stdio.h>

#include "engine-private.h"

#define RETRY_MS 1000
#define PEER_FLUSH_MS 10000    /* a stopping daemon's GOODBYE */

static void primary_frame(struct tdm__peer *p, const struct tdm_frame *f,
                          const char *why, void *arg);
static void primary_drained(struct tdm__peer *p, void *arg);
static void primary_lost(struct tdm_engine *eng, const char *why);

static void timer_add_ms(struct event *ev, uint32_t ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

static void send_hello(struct tdm_engine *eng)
{
    struct tdm_hello h;
    uint8_t *buf;
    struct iovec iov;

    memset(&h, 0, sizeof(h));
    tdm_strlcpy(h.name, eng->name, sizeof(h.name));
    memcpy(h.uuid, eng->uuid, sizeof(h.uuid));
    tdm_strlcpy(h.driver, eng->drv->name, sizeof(h.driver));
    h.npages = eng->drv->npages(eng->dom);
    h.page_size = TDM_PAGE_SIZE;
    h.interval_ms = eng->params.interval_ms;
    h.heartbeat_ms = eng->params.heartbeat_ms;
    h.timeout_ms = eng->params.timeout_ms;
    h.generation = eng->generation;
    h.config = (const uint8_t *)eng->cfg.text;
    h.config_len = (uint32_t)eng->cfg.text_len;
    buf = tdm_malloc(TDM_HELLO_FIXED + h.config_len);
    iov.iov_base = buf;
    iov.iov_len = tdm_hello_encode(&h, buf);
    tdm__peer_send(eng->peer, TDM_MSG_HELLO, 0, &iov, 1);
    free(buf);
}

static void send_heartbeat(struct tdm__peer *p, uint64_t last_epoch)
{
    struct tdm_heartbeat hb = {.sent_ns = tdm_now_ns(), .last_epoch = last_epoch};
    uint8_t buf[TDM_HEARTBEAT_SIZE];
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};

    tdm_heartbeat_encode(&hb, buf);
    tdm__peer_send(p, TDM_MSG_HEARTBEAT, last_epoch, &iov, 1);
}

/* ---- the epoch ---- */

static void send_epoch(struct tdm_engine *eng)
{
    struct tdm_staging *st = &eng->st;
    struct tdm_epoch_begin b = {.npages = st->npages, .state_len = st->state_len};
    struct tdm_epoch_end e = {.npages = st->npages, .state_len = st->state_len};
    uint8_t bbuf[TDM_EPOCH_BEGIN_SIZE], ebuf[TDM_EPOCH_END_SIZE];
    struct iovec iov[3];
    uint64_t before = eng->peer->bytes_out;

    /* Every disk change of this epoch was queued before the cut's ack:
     * it reaches the backup ahead of the epoch's frames. */
    tdm__disk_forward(eng);

    tdm_epoch_begin_encode(&b, bbuf);
    iov[0] = (struct iovec){bbuf, sizeof(bbuf)};
    tdm__peer_send(eng->peer, TDM_MSG_EPOCH_BEGIN, st->epoch, iov, 1);

    for (size_t i = 0; i < st->npages; i += TDM_PAGES_PER_FRAME) {
        uint32_t n = (uint32_t)TDM_MIN((size_t)TDM_PAGES_PER_FRAME,
                                       st->npages - i);
        uint8_t phdr[TDM_PAGES_HDR], pfns[TDM_PAGES_PER_FRAME * 8];

        tdm_pages_hdr_encode(n, phdr);
        for (uint32_t j = 0; j < n; j++)
            tdm_put_le64(pfns + j * 8, st->pfns[i + j]);
        /* header and pfn list are copied; the page data is referenced */
        iov[0] = (struct iovec){phdr, sizeof(phdr)};
        iov[1] = (struct iovec){pfns, (size_t)n * 8};
        iov[2] = (struct iovec){tdm_staging_page(st, i),
                                (size_t)n * TDM_PAGE_SIZE};
        tdm__peer_sendv(eng->peer, TDM_MSG_PAGES, st->epoch, iov, 3, 1u << 2);
        e.frames++;
    }
    for (size_t off = 0; off < st->state_len; off += TDM_FRAME_MAX) {
        iov[0] = (struct iovec){st->state + off,
                                TDM_MIN((size_t)TDM_FRAME_MAX,
                                        st->state_len - off)};
        tdm__peer_sendv(eng->peer, TDM_MSG_DRIVER, st->epoch, iov, 1, 1u);
        e.frames++;
    }
    e.capture_ns = eng->m.capture_ns.last;
    tdm_epoch_end_encode(&e, ebuf);
    iov[0] = (struct iovec){ebuf, sizeof(ebuf)};
    tdm__peer_send(eng->peer, TDM_MSG_EPOCH_END, st->epoch, iov, 1);

    tdm_stat_add(&eng->m.epoch_bytes, eng->peer->bytes_out - before);
    eng->m.bytes_sent_total += eng->peer->bytes_out - before;
    eng->st_sent_mark = eng->peer->bytes_out;
}

/* The last epoch's pages go out by reference from the staging buffer, so
 * the next capture must wait until they have been written, but not for
 * what is queued behind them: under a steady stream of disk records the
 * link never drains, and epochs that waited for it stopped while the
 * records went on, until the backup's write log was full. */
static bool staging_in_flight(struct tdm_engine *eng)
{
    return eng->peer &&
           eng->peer->bytes_out - tdm__peer_pending(eng->peer) <
               eng->st_sent_mark;
}

/* Look again this soon for the staging buffer to be free. */
#define STAGING_POLL_MS 2

/* Suspend, capture, cut, resume: the pause. No network I/O in here. With
 * 'final' the domain stays suspended (planned failover). */
static int do_epoch(struct tdm_engine *eng, bool final)
{
    uint64_t t0, t1, t2, t3, next = eng->epoch + 1;
    int rc = -1;

    t0 = tdm_now_ns();
    tdm__disk_pausing(eng, true);
    if (eng->drv->suspend(eng->dom) < 0) {
        tdm__disk_pausing(eng, false);
        eng->precopied = false;
        log_warnx("%s: suspend failed", eng->name);
        return -1;
    }
    /* A full epoch whose live copy was made in steps keeps it. */
    if (!eng->precopied)
        tdm_staging_reset(&eng->st, next);
    eng->precopied = false;
    t1 = tdm_now_ns();
    if (eng->drv->capture(eng->dom, &eng->st) < 0) {
        log_warnx("%s: capture of epoch %llu failed", eng->name,
                  (unsigned long long)next);
        goto out_resume;
    }
    /* Disk changes answered from here on belong to the next epoch. */
    if (tdm__disk_cut(eng, next + 1) < 0)
        goto out_resume;
    t2 = tdm_now_ns();
    /* Outputs made from here on come from state after this checkpoint. */
    tdm__output_cut(eng, next + 1);
    rc = 0;
out_resume:
    tdm__disk_pausing(eng, false);
    if (!final || rc < 0) {
        if (eng->drv->resume(eng->dom) < 0) {
            log_warnx("%s: resume failed", eng->name);
            return -1;
        }
    }
    t3 = tdm_now_ns();
    if (rc < 0)
        return -1;
    eng->epoch = next;
    eng->m.epochs++;
    eng->m.last_epoch = next;
    if (eng->sync_next) {
        /* every page: not a figure of the steady state */
        eng->sync_next = false;
        eng->m.syncs++;
        eng->m.sync_pause_ns = t3 - t0;
        eng->m.sync_pages = eng->st.npages;
    } else {
        tdm_stat_add(&eng->m.pause_ns, t3 - t0);
        tdm_stat_add(&eng->m.capture_ns, t2 - t1);
        tdm_stat_add(&eng->m.dirty_pages, eng->st.npages);
    }
    eng->resume_ns[next % TDM_ACK_RING] = t3;
    send_epoch(eng);
    return 0;
}

static void precopy_begin(struct tdm_engine *eng);

static void epoch_now(struct tdm_engine *eng)
{
    eng->want_epoch = false;
    if (eng->sync_next && eng->drv->precopy && !eng->precopied) {
        precopy_begin(eng);
        return;
    }
    if (do_epoch(eng, false) < 0) {
        primary_lost(eng, "the driver failed an epoch");
        return;
    }
    timer_add_ms(eng->tick, eng->params.interval_ms);
}

static void final_epoch(struct tdm_engine *eng);

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tdm_engine *eng = arg;

    if (!eng->peer || (eng->state != TDM_ST_SYNCING &&
                       eng->state != TDM_ST_PROTECTED) ||
        tdm__disk_syncing(eng))
        return;
    /* a planned failover's final epoch is taken once: it waits for its ack */
    if (eng->handing_over && !eng->want_epoch)
        return;
    if (staging_in_flight(eng)) {
        /* Still writing the last epoch: go as soon as it has left (the
         * link may never drain: look again soon as well). */
        if (!eng->want_epoch)
            eng->m.skipped_ticks++;
        eng->want_epoch = true;
        timer_add_ms(eng->tick, STAGING_POLL_MS);
        return;
    }
    if (eng->handing_over)
        final_epoch(eng);
    else
        epoch_now(eng);
}

/* ---- the live copy of a full epoch, in steps ----
 *
 * Copying every page of a large guest holds the thread for seconds (2-3 s
 * for 128 MiB under the Xen rig's emulation), and the heartbeats leave
 * from this loop: the backup would take a primary busy copying for a dead
 * one, and activate its replica while the primary runs. So a driver with
 * the precopy op copies TDM_PRECOPY_STEP pages at a time, and the loop
 * runs in between (a 0 ms timer: pending I/O and timers go first). */
#define TDM_PRECOPY_STEP 4096

static void precopy_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tdm_engine *eng = arg;
    uint64_t t0 = tdm_now_ns(), dt;
    int r;

    (void)fd;
    (void)what;
    if (!eng->peer || !eng->sync_next || eng->state != TDM_ST_SYNCING)
        return;                 /* protection ended meanwhile */
    r = eng->drv->precopy(eng->dom, &eng->st, TDM_PRECOPY_STEP);
    dt = tdm_now_ns() - t0;
    eng->precopy_steps++;
    eng->precopy_step_max_ns = TDM_MAX(eng->precopy_step_max_ns, dt);
    if (r < 0) {
        primary_lost(eng, "the driver failed its live copy");
        return;
    }
    if (r > 0) {
        timer_add_ms(eng->precopy_ev, 0);
        return;
    }
    eng->precopied = true;
    eng->m.sync_live_ns = tdm_now_ns() - eng->precopy_t0;
    eng->m.sync_live_steps = eng->precopy_steps;
    eng->m.sync_live_step_max_ns = eng->precopy_step_max_ns;
    log_info("%s: live copy of %zu pages in %u steps: %.1f ms (longest "
             "step %.1f ms)", eng->name, eng->st.npages, eng->precopy_steps,
             eng->m.sync_live_ns / 1e6, eng->precopy_step_max_ns / 1e6);
    /* The epoch goes once the staging buffer is free, as any other. */
    if (staging_in_flight(eng)) {
        eng->want_epoch = true;
        timer_add_ms(eng->tick, STAGING_POLL_MS);
    } else {
        epoch_now(eng);
    }
}

static void precopy_begin(struct tdm_engine *eng)
{
    if (!eng->precopy_ev)
        eng->precopy_ev = evtimer_new(eng->host->base, precopy_cb, eng);
    tdm_staging_reset(&eng->st, eng->epoch + 1);
    eng->precopied = false;
    eng->precopy_t0 = tdm_now_ns();
    eng->precopy_steps = 0;
    eng->precopy_step_max_ns = 0;
    timer_add_ms(eng->precopy_ev, 0);
}

/* A live copy in progress is abandoned (protection lost or stopped); the
 * next full epoch starts another. */
static void precopy_cancel(struct tdm_engine *eng)
{
    if (eng->precopy_ev)
        evtimer_del(eng->precopy_ev);
    eng->precopied = false;
}

static void primary_drained(struct tdm__peer *p, void *arg)
{
    struct tdm_engine *eng = arg;

    if (tdm__disk_syncing(eng)) {
        tdm__disk_pump(eng);
        return;
    }
    if (!eng->want_epoch)
        return;
    if (eng->handing_over)
        final_epoch(eng);
    else
        epoch_now(eng);
}

/* ---- heartbeats and failure detection ---- */

static void hb_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tdm_engine *eng = arg;
    uint64_t silent;

    if (!eng->peer || !eng->peer->connected)
        return;
    silent = (tdm_now_ns() - eng->peer->last_rx_ns) / 1000000;
    if (silent > eng->params.timeout_ms) {
        char why[96];
        snprintf(why, sizeof(why), "no word from the backup for %llu ms",
                 (unsigned long long)silent);
        primary_lost(eng, why);
        return;
    }
    /* Skip the heartbeat while a big epoch is queued: bytes are flowing. */
    if (tdm__peer_pending(eng->peer) == 0)
        send_heartbeat(eng->peer, eng->epoch);
    timer_add_ms(eng->hb, eng->params.heartbeat_ms);
}

/* ---- connection ---- */

static void connect_peer(struct tdm_engine *eng);

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tdm_engine *eng = arg;

    if (eng->state == TDM_ST_CONNECTING && !eng->peer)
        connect_peer(eng);
}

static void connect_peer(struct tdm_engine *eng)
{
    eng->peer = tdm__peer_connect(eng->host->base, eng->host->dns,
                                  eng->peer_host, eng->peer_port,
                                  primary_frame, eng);
    if (!eng->peer)
        timer_add_ms(eng->retry, RETRY_MS);
    else
        eng->peer->drained = primary_drained;
}

/* The backup is gone (or the link): outputs held for it can no longer be
 * covered by a replica. Without a fence we continue unprotected, as Remus
 * does; with a fence we continue only if we still hold the lease. */
static void primary_lost(struct tdm_engine *eng, const char *why)
{
    uint64_t gen;
    int won;

    log_warnx("%s: lost backup %s: %s", eng->name, eng->peer_str, why);
    tdm__disk_unprotected(eng);
    tdm__peer_close(eng->peer);
    eng->peer = NULL;
    evtimer_del(eng->tick);
    evtimer_del(eng->hb);
    precopy_cancel(eng);
    eng->want_epoch = false;

    if (eng->handing_over) {
        eng->handing_over = false;
        log_warnx("%s: planned failover aborted; the domain resumes here",
                  eng->name);
        if (eng->final_suspended)
            eng->drv->resume(eng->dom);
        eng->final_suspended = false;
    }
    won = tdm__fence_take(eng->host->cfg.fence_path, eng->name,
                          eng->generation, &gen);
    if (won <= 0) {
        /* The backup took over (or we cannot tell): two running copies
         * must never exist, so this one stops, its outputs unreleased. */
        log_warnx("%s: the fence says another host owns the domain "
                  "(generation %llu): stopping this copy", eng->name,
                  (unsigned long long)gen);
        tdm__output_close(eng, true);
        eng->drv->destroy(eng->dom);
        eng->dom = NULL;
        tdm__engine_set_state(eng, TDM_ST_STOPPED);
        return;
    }
    eng->generation = gen;
    eng->drv->log_dirty(eng->dom, false);
    tdm__output_buffer(eng, false, 0);
    tdm__engine_set_state(eng, TDM_ST_CONNECTING);
    log_notice("%s: running unprotected; reconnecting to %s every %d ms",
               eng->name, eng->peer_str, RETRY_MS);
    timer_add_ms(eng->retry, RETRY_MS);
}

static void on_ack(struct tdm_engine *eng, uint64_t n)
{
    if (n > eng->epoch || n <= eng->acked) {
        log_warnx("%s: ACK for epoch %llu (sent up to %llu, acked %llu)",
                  eng->name, (unsigned long long)n,
                  (unsigned long long)eng->epoch,
                  (unsigned long long)eng->acked);
        primary_lost(eng, "protocol error: unexpected ACK");
        return;
    }
    eng->acked = n;
    eng->m.acked_epoch = n;
    tdm__disk_acked(eng, n);
    if (eng->epoch - n < TDM_ACK_RING)
        tdm_stat_add(&eng->m.ack_ns,
                     tdm_now_ns() - eng->resume_ns[n % TDM_ACK_RING]);
    tdm__output_release(eng, n);
    if (eng->state == TDM_ST_SYNCING) {
        log_info("%s: protected by %s (first epoch acked)", eng->name,
                 eng->peer_str);
        tdm__engine_set_state(eng, TDM_ST_PROTECTED);
    }
    if (eng->final_suspended && n == eng->epoch) {
        /* The backup holds the final state; it activates on HANDOVER. */
        tdm__peer_send(eng->peer, TDM_MSG_HANDOVER, n, NULL, 0);
        tdm__peer_close_after_flush(eng->peer);
        eng->peer = NULL;
        eng->handing_over = false;
        eng->final_suspended = false;
        log_info("%s: handed over to %s at epoch %llu; stopping here",
                 eng->name, eng->peer_str, (unsigned long long)n);
        eng->drv->destroy(eng->dom);
        eng->dom = NULL;
        evtimer_del(eng->tick);
        evtimer_del(eng->hb);
        tdm__engine_set_state(eng, TDM_ST_STOPPED);
    }
}

static void primary_frame(struct tdm__peer *p, const struct tdm_frame *f,
                          const char *why, void *arg)
{
    struct tdm_engine *eng = arg;
    struct tdm_hello_reply hr;
    struct tdm_heartbeat hb;
    struct tdm_text_msg tm;
    char err[256];

    if (!f && !why) {
        /* connected */
        log_info("%s: connected to backup %s", eng->name, p->addr);
        send_hello(eng);
        return;
    }
    if (!f) {
        eng->peer = NULL; /* dead; freed by the loop */
        if (eng->state == TDM_ST_CONNECTING) {
            log_notice("%s: cannot reach backup %s: %s; retrying", eng->name,
                       eng->peer_str, why);
            timer_add_ms(eng->retry, RETRY_MS);
        } else {
            primary_lost(eng, why);
        }
        return;
    }
    switch (f->type) {
    case TDM_MSG_HELLO_REPLY:
        if (eng->state != TDM_ST_CONNECTING ||
            tdm_hello_reply_decode(f->payload, f->len, &hr, err,
                                   sizeof(err)) < 0) {
            primary_lost(eng, "bad HELLO_REPLY");
            return;
        }
        /* A new backup (or a reconnect) gets every page again. */
        eng->acked = eng->epoch;
        if (tdm__output_buffer(eng, true, eng->epoch + 1) < 0) {
            /* Protection without output commit would promise clients
             * what a failover could take back: refuse it. */
            log_warnx("%s: cannot hold the domain's output: protection "
                      "refused", eng->name);
            tdm__peer_close(eng->peer);
            eng->peer = NULL;
            tdm__engine_set_state(eng, TDM_ST_UNPROTECTED);
            eng->peer_str[0] = '\0';
            return;
        }
        eng->drv->log_dirty(eng->dom, true);
        eng->sync_next = true;
        eng->st_sent_mark = 0;  /* a new peer counts from 0 */
        precopy_cancel(eng);
        tdm__engine_set_state(eng, TDM_ST_SYNCING);
        timer_add_ms(eng->hb, eng->params.heartbeat_ms);
        if (eng->disk) {
            /* The disk first, while the guest runs; its end starts the
             * first epoch (tdm__primary_disk_synced). */
            if (tdm__disk_sync_begin(eng, hr.last_epoch, err,
                                     sizeof(err)) < 0)
                primary_lost(eng, err);
            return;
        }
        epoch_now(eng);
        return;
    case TDM_MSG_ACK:
        on_ack(eng, f->epoch);
        return;
    case TDM_MSG_HEARTBEAT:
        if (tdm_heartbeat_decode(f->payload, f->len, &hb, err, sizeof(err)) < 0)
            primary_lost(eng, err);
        return;
    case TDM_MSG_ERROR:
        if (tdm_text_msg_decode(f->payload, f->len, &tm, err, sizeof(err)) < 0)
            snprintf(tm.text, sizeof(tm.text), "(unreadable: %s)", err);
        log_warnx("%s: backup %s refused: %s", eng->name, eng->peer_str,
                  tm.text);
        if (eng->state == TDM_ST_CONNECTING) {
            /* A refusal is final until an administrator acts. */
            tdm__peer_close(eng->peer);
            eng->peer = NULL;
            tdm__output_buffer(eng, false, 0);
            tdm__engine_set_state(eng, TDM_ST_UNPROTECTED);
            eng->peer_str[0] = '\0';
        } else {
            primary_lost(eng, tm.text);
        }
        return;
    default:
        snprintf(err, sizeof(err), "unexpected %s from the backup",
                 tdm_msg_name(f->type));
        primary_lost(eng, err);
        return;
    }
}

void tdm__primary_disk_synced(struct tdm_engine *eng)
{
    if (eng->state == TDM_ST_SYNCING && eng->peer)
        epoch_now(eng);
}

void tdm__primary_disk_failed(struct tdm_engine *eng, const char *why)
{
    primary_lost(eng, why);
}

int tdm__primary_protect(struct tdm_engine *eng, const char *host,
                         uint16_t port, const struct tdm_engine_params *p,
                         char *err, size_t errlen)
{
    if (tdm_engine_params_check(p, err, errlen) < 0)
        return -1;
    if (!eng->st.cap && tdm_staging_alloc(&eng->st,
                                          eng->drv->npages(eng->dom)) < 0) {
        snprintf(err, errlen, "cannot allocate the staging buffer");
        return -1;
    }
    eng->params = *p;
    tdm_strlcpy(eng->peer_host, host, sizeof(eng->peer_host));
    eng->peer_port = port;
    snprintf(eng->peer_str, sizeof(eng->peer_str),
             strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
    if (!eng->tick) {
        eng->tick = evtimer_new(eng->host->base, tick_cb, eng);
        eng->hb = evtimer_new(eng->host->base, hb_cb, eng);
        eng->retry = evtimer_new(eng->host->base, retry_cb, eng);
    }
    if (!eng->host->cfg.fence_path[0])
        log_notice("%s: no fence configured: a network partition (not a host "
                   "failure) could leave a copy running on each side",
                   eng->name);
    log_info("%s: protecting with backup %s (interval %u ms, heartbeat %u ms, "
             "timeout %u ms)", eng->name, eng->peer_str, p->interval_ms,
             p->heartbeat_ms, p->timeout_ms);
    tdm__engine_set_state(eng, TDM_ST_CONNECTING);
    connect_peer(eng);
    return 0;
}

void tdm__primary_unprotect(struct tdm_engine *eng, bool tell_peer)
{
    if (eng->peer && tell_peer) {
        tdm__peer_send_text(eng->peer, TDM_MSG_GOODBYE, 0, "unprotected");
        /* A stopping tandemd's loop does not run again: unsent, the
         * GOODBYE would leave the backup to take the silence for a dead
         * primary and run a second copy of a guest that runs on (xen). */
        if (eng->host->stopping)
            tdm__peer_flush_close(eng->peer, PEER_FLUSH_MS);
        else
            tdm__peer_close_after_flush(eng->peer);
    } else {
        tdm__peer_close(eng->peer);
    }
    eng->peer = NULL;
    if (eng->tick) {
        evtimer_del(eng->tick);
        evtimer_del(eng->hb);
        evtimer_del(eng->retry);
    }
    precopy_cancel(eng);
    eng->want_epoch = false;
    tdm__disk_unprotected(eng);
    if (eng->final_suspended)
        eng->drv->resume(eng->dom);
    eng->handing_over = eng->final_suspended = false;
    if (eng->dom) {
        eng->drv->log_dirty(eng->dom, false);
        tdm__output_buffer(eng, false, 0);
    }
    eng->peer_str[0] = '\0';
    log_info("%s: protection stopped", eng->name);
    if (eng->state != TDM_ST_STOPPED)
        tdm__engine_set_state(eng, TDM_ST_UNPROTECTED);
}

/* The final epoch is taken with the domain left suspended: it must not run
 * (and make outputs) after the state the backup resumes from. */
static void final_epoch(struct tdm_engine *eng)
{
    eng->want_epoch = false;
    if (do_epoch(eng, true) < 0) {
        eng->handing_over = false;
        log_warnx("%s: planned failover aborted: the final epoch failed",
                  eng->name);
        timer_add_ms(eng->tick, eng->params.interval_ms);
        return;
    }
    eng->final_suspended = true;
    log_info("%s: planned failover: final epoch %llu sent, domain suspended",
             eng->name, (unsigned long long)eng->epoch);
}

int tdm__primary_failover(struct tdm_engine *eng, char *err, size_t errlen)
{
    if (eng->handing_over) {
        snprintf(err, errlen, "'%s': a failover is already in progress",
                 eng->name);
        return -1;
    }
    evtimer_del(eng->tick);
    precopy_cancel(eng);
    eng->handing_over = true;
    /* The staging buffer may still be on its way out (sent by reference):
     * the final capture waits for it. */
    eng->want_epoch = true;
    log_info("%s: planned failover to %s started", eng->name, eng->peer_str);
    /* not once the link drains: a guest's disk records may never let it */
    if (staging_in_flight(eng))
        timer_add_ms(eng->tick, STAGING_POLL_MS);
    else
        final_epoch(eng);
    return 0;
}
