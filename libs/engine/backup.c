/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The backup: receive each epoch into staging, check it whole, apply it to
 * the replica, then ACK. A frame that fails any check ends the connection
 * and the epoch in progress is dropped: the replica stays at the last whole
 * epoch. When a healthy link to the primary goes silent or breaks, the
 * primary is taken for dead and the replica is activated.
 */
#include "config.h"

#include <stdio.h>

#include "engine-private.h"

int tdm__host_create_replica(struct tdm_host *host, const struct tdm_hello *h,
                             struct tdm_engine **eng_r, char *err,
                             size_t errlen);

static void backup_frame(struct tdm__peer *p, const struct tdm_frame *f,
                         const char *why, void *arg);

static void timer_add_ms(struct event *ev, uint32_t ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

static void refuse(struct tdm__peer *p, uint32_t code, const char *msg)
{
    log_warnx("%s: refusing: %s", p->addr, msg);
    tdm__peer_send_text(p, TDM_MSG_ERROR, code, msg);
    tdm__peer_close_after_flush(p);
}

static void drop_epoch(struct tdm_engine *eng, const char *why)
{
    if (!eng->in_epoch)
        return;
    eng->in_epoch = false;
    eng->m.torn_epochs++;
    log_warnx("%s: epoch %llu dropped unapplied (%s); replica stays at epoch "
              "%llu", eng->name, (unsigned long long)eng->rx_epoch, why,
              (unsigned long long)eng->applied);
}

static void activate(struct tdm_engine *eng, const char *why)
{
    uint64_t gen = 0;
    char err[256];
    int won;

    evtimer_del(eng->hb);
    drop_epoch(eng, "primary lost mid-epoch");
    if (eng->state != TDM_ST_REPLICA) {
        log_warnx("%s: primary lost (%s) before a whole epoch arrived: "
                  "nothing to activate, dropping the replica", eng->name, why);
        tdm__engine_set_state(eng, TDM_ST_STOPPED);
        eng->drv->destroy(eng->dom);
        eng->dom = NULL;
        return;
    }
    tdm__engine_set_state(eng, TDM_ST_ACTIVATING);
    won = tdm__fence_take(eng->host->cfg.fence_path, eng->name,
                          eng->generation, &gen);
    if (won <= 0) {
        log_warnx("%s: primary lost (%s) but the fence is held by another "
                  "host (generation %llu): not activating", eng->name, why,
                  (unsigned long long)gen);
        tdm__engine_set_state(eng, TDM_ST_STOPPED);
        return;
    }
    eng->generation = gen;
    log_notice("%s: primary lost (%s): activating the replica from epoch %llu",
               eng->name, why, (unsigned long long)eng->applied);
    if (tdm__disk_activate(eng, err, sizeof(err)) < 0) {
        log_warnx("%s: not activating: %s", eng->name, err);
        tdm__engine_set_state(eng, TDM_ST_STOPPED);
        return;
    }
    if (eng->drv->activate(eng->dom) < 0) {
        log_warnx("%s: the driver failed to activate the replica", eng->name);
        tdm__engine_set_state(eng, TDM_ST_STOPPED);
        return;
    }
    eng->m.failovers++;
    eng->m.activated_at_ns = tdm_now_ns();
    eng->role = TDM_ROLE_PRIMARY;
    eng->peer_str[0] = '\0';
    tdm_staging_dispose(&eng->st);
    tdm__engine_set_state(eng, TDM_ST_UNPROTECTED);
    log_notice("%s: now primary (generation %llu), unprotected", eng->name,
               (unsigned long long)eng->generation);
}

static void hb_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tdm_engine *eng = arg;
    uint64_t silent;

    if (eng->peer)
        eng->last_rx_ns = eng->peer->last_rx_ns;
    silent = (tdm_now_ns() - eng->last_rx_ns) / 1000000;
    if (!eng->peer && !eng->failover_armed)
        return;
    /* Before its first whole epoch a replica has nothing to activate: a
     * slow initial copy is not a dead primary. Only a broken link ends it. */
    if (eng->state == TDM_ST_RECEIVING && eng->peer)
        silent = 0;
    if (silent > eng->params.timeout_ms) {
        char why[96];
        snprintf(why, sizeof(why), "silent for %llu ms",
                 (unsigned long long)silent);
        tdm__peer_close(eng->peer);
        eng->peer = NULL;
        eng->failover_armed = false;
        activate(eng, why);
        return;
    }
    if (!eng->peer) {
        /* link broke: wait out the timeout for a reconnect */
        timer_add_ms(eng->hb, eng->params.heartbeat_ms);
        return;
    }
    {
        struct tdm_heartbeat hb = {.sent_ns = tdm_now_ns(),
                                   .last_epoch = eng->applied};
        uint8_t buf[TDM_HEARTBEAT_SIZE];
        struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
        tdm_heartbeat_encode(&hb, buf);
        tdm__peer_send(eng->peer, TDM_MSG_HEARTBEAT, eng->applied, &iov, 1);
    }
    timer_add_ms(eng->hb, eng->params.heartbeat_ms);
}

/* A frame that breaks the rules: the stream cannot be trusted after it. */
static void stream_error(struct tdm_engine *eng, const char *msg)
{
    eng->m.rejected_frames++;
    drop_epoch(eng, msg);
    log_warnx("%s: from %s: %s", eng->name, eng->peer ? eng->peer->addr : "?",
              msg);
    if (eng->peer) {
        tdm__peer_send_text(eng->peer, TDM_MSG_ERROR, TDM_ERR_PROTOCOL, msg);
        tdm__peer_close_after_flush(eng->peer);
        eng->peer = NULL;
    }
    /* We broke the link on purpose: the primary is alive and will come back
     * with a full epoch. Do not take its silence for its death. */
    eng->failover_armed = false;
    evtimer_del(eng->hb);
}

/* A big epoch (a full one) goes to the driver whole when it can take it:
 * the engine then stages the next one in a new buffer. */
static int apply_epoch(struct tdm_engine *eng)
{
    size_t cap = eng->st.cap;
    uint64_t limit = eng->st.pfn_limit;
    int rc;

    if (!eng->drv->apply_take || eng->st.npages < TDM_APPLY_TAKE_MIN)
        return eng->drv->apply(eng->dom, &eng->st);
    rc = eng->drv->apply_take(eng->dom, &eng->st);
    if (!eng->st.pfns &&
        (limit > cap ? tdm_staging_alloc_sparse(&eng->st, cap, limit)
                     : tdm_staging_alloc(&eng->st, cap)) < 0) {
        log_warnx("%s: cannot allocate the next staging buffer", eng->name);
        return -1;
    }
    return rc;
}

static void on_epoch_end(struct tdm_engine *eng, const struct tdm_frame *f)
{
    struct tdm_epoch_end e;
    char err[256], msg[300];
    uint64_t t0;
    size_t npages;

    if (tdm_epoch_end_decode(f->payload, f->len, &e, err, sizeof(err)) < 0) {
        stream_error(eng, err);
        return;
    }
    if (e.npages != eng->st.npages || e.npages != eng->rx_begin.npages ||
        e.state_len != eng->st.state_len ||
        e.state_len != eng->rx_begin.state_len || e.frames != eng->rx_frames) {
        snprintf(msg, sizeof(msg), "epoch %llu incomplete: %zu/%llu pages, "
                 "%zu/%llu state bytes, %u/%u frames",
                 (unsigned long long)f->epoch, eng->st.npages,
                 (unsigned long long)e.npages, eng->st.state_len,
                 (unsigned long long)e.state_len, eng->rx_frames, e.frames);
        stream_error(eng, msg);
        return;
    }
    t0 = tdm_now_ns();
    npages = eng->st.npages;    /* the driver may take the buffer */
    /* The epoch's disk writes, held until now, go in with its memory. */
    if (tdm__disk_commit(eng, f->epoch, err, sizeof(err)) < 0) {
        stream_error(eng, err);
        return;
    }
    if (apply_epoch(eng) < 0) {
        snprintf(msg, sizeof(msg), "epoch %llu rejected by the driver",
                 (unsigned long long)f->epoch);
        tdm__disk_invalidate(eng, msg);
        stream_error(eng, msg);
        return;
    }
    tdm_stat_add(&eng->m.apply_ns, tdm_now_ns() - t0);
    tdm_stat_add(&eng->m.dirty_pages, npages);
    tdm_stat_add(&eng->m.capture_ns, e.capture_ns);
    eng->in_epoch = false;
    eng->applied = f->epoch;
    eng->m.epochs++;
    eng->m.last_epoch = f->epoch;
    tdm__peer_send(eng->peer, TDM_MSG_ACK, f->epoch, NULL, 0);
    if (eng->state == TDM_ST_RECEIVING) {
        log_info("%s: replica complete at epoch %llu", eng->name,
                 (unsigned long long)f->epoch);
        tdm__engine_set_state(eng, TDM_ST_REPLICA);
    }
}

static void on_pages(struct tdm_engine *eng, const struct tdm_frame *f)
{
    struct tdm_pages pg;
    char err[256];

    if (tdm_pages_decode(f->payload, f->len, &pg, err, sizeof(err)) < 0) {
        stream_error(eng, err);
        return;
    }
    if (eng->st.npages + pg.count > eng->rx_begin.npages) {
        stream_error(eng, "more pages than EPOCH_BEGIN announced");
        return;
    }
    for (uint32_t i = 0; i < pg.count; i++) {
        uint64_t pfn = tdm_pages_pfn(&pg, i);
        uint8_t *slot = tdm_staging_add_page(&eng->st, pfn);
        if (!slot) {
            snprintf(err, sizeof(err), "page %llu out of range",
                     (unsigned long long)pfn);
            stream_error(eng, err);
            return;
        }
        memcpy(slot, pg.data + (size_t)i * TDM_PAGE_SIZE, TDM_PAGE_SIZE);
    }
    eng->rx_frames++;
}

static void backup_frame(struct tdm__peer *p, const struct tdm_frame *f,
                         const char *why, void *arg)
{
    struct tdm_engine *eng = arg;
    struct tdm_text_msg tm;
    char err[256];

    if (!f) {
        bool bad = p->bad_frame;
        eng->last_rx_ns = p->last_rx_ns;
        eng->peer = NULL;
        if (bad) {
            eng->m.rejected_frames++;
            drop_epoch(eng, why);
            eng->failover_armed = false;
            evtimer_del(eng->hb);
            log_warnx("%s: link to the primary closed on a bad frame; the "
                      "replica stays at epoch %llu and waits for the primary "
                      "to reconnect", eng->name,
                      (unsigned long long)eng->applied);
            return;
        }
        drop_epoch(eng, why);
        if (eng->failover_armed) {
            /* The primary's host may be gone, or only its link. Give it the
             * failure timeout to come back before taking over. */
            log_warnx("%s: link to the primary lost: %s", eng->name, why);
        }
        return;
    }
    if (eng->in_epoch && f->epoch != eng->rx_epoch &&
        f->type != TDM_MSG_HEARTBEAT) {
        snprintf(err, sizeof(err), "%s for epoch %llu inside epoch %llu",
                 tdm_msg_name(f->type), (unsigned long long)f->epoch,
                 (unsigned long long)eng->rx_epoch);
        stream_error(eng, err);
        return;
    }
    switch (f->type) {
    case TDM_MSG_HEARTBEAT: {
        struct tdm_heartbeat hb;
        if (tdm_heartbeat_decode(f->payload, f->len, &hb, err, sizeof(err)) < 0)
            stream_error(eng, err);
        return;
    }
    case TDM_MSG_EPOCH_BEGIN:
        if (eng->in_epoch) {
            stream_error(eng, "EPOCH_BEGIN inside an epoch");
            return;
        }
        if (f->epoch <= eng->applied) {
            snprintf(err, sizeof(err), "epoch %llu is not after %llu",
                     (unsigned long long)f->epoch,
                     (unsigned long long)eng->applied);
            stream_error(eng, err);
            return;
        }
        if (tdm_epoch_begin_decode(f->payload, f->len, &eng->rx_begin, err,
                                   sizeof(err)) < 0) {
            stream_error(eng, err);
            return;
        }
        if (eng->rx_begin.npages > eng->st.cap ||
            eng->rx_begin.state_len > TDM_STAGING_STATE_MAX) {
            stream_error(eng, "EPOCH_BEGIN announces more than fits");
            return;
        }
        tdm_staging_reset(&eng->st, f->epoch);
        eng->in_epoch = true;
        eng->rx_epoch = f->epoch;
        eng->rx_frames = 0;
        return;
    case TDM_MSG_PAGES:
        if (!eng->in_epoch) {
            stream_error(eng, "PAGES outside an epoch");
            return;
        }
        on_pages(eng, f);
        return;
    case TDM_MSG_DRIVER:
        if (!eng->in_epoch) {
            stream_error(eng, "DRIVER outside an epoch");
            return;
        }
        if (eng->st.state_len + f->len > eng->rx_begin.state_len ||
            tdm_staging_append_state(&eng->st, f->payload, f->len) < 0) {
            stream_error(eng, "more driver state than EPOCH_BEGIN announced");
            return;
        }
        eng->rx_frames++;
        return;
    case TDM_MSG_EPOCH_END:
        if (!eng->in_epoch) {
            stream_error(eng, "EPOCH_END outside an epoch");
            return;
        }
        on_epoch_end(eng, f);
        return;
    case TDM_MSG_DISK_INFO:
    case TDM_MSG_DISK:
        if (eng->in_epoch) {
            snprintf(err, sizeof(err), "%s inside epoch %llu",
                     tdm_msg_name(f->type), (unsigned long long)eng->rx_epoch);
            stream_error(eng, err);
            return;
        }
        if ((f->type == TDM_MSG_DISK_INFO
                 ? tdm__disk_rx_info(eng, f, err, sizeof(err))
                 : tdm__disk_rx(eng, f, err, sizeof(err))) < 0)
            stream_error(eng, err);
        return;
    case TDM_MSG_GOODBYE:
        if (tdm_text_msg_decode(f->payload, f->len, &tm, err, sizeof(err)) < 0)
            tdm_strlcpy(tm.text, "?", sizeof(tm.text));
        log_info("%s: primary ended protection (%s): dropping the replica",
                 eng->name, tm.text);
        tdm__peer_close(eng->peer);
        eng->peer = NULL;
        eng->state = TDM_ST_STOPPED;
        tdm__engine_changed(eng);
        tdm__engine_free(eng);
        return;
    case TDM_MSG_HANDOVER:
        if (eng->in_epoch || f->epoch != eng->applied) {
            stream_error(eng, "HANDOVER before the final epoch was applied");
            return;
        }
        tdm__peer_close(eng->peer);
        eng->peer = NULL;
        eng->failover_armed = false;
        activate(eng, "planned failover");
        return;
    case TDM_MSG_ERROR:
        if (tdm_text_msg_decode(f->payload, f->len, &tm, err, sizeof(err)) < 0)
            tdm_strlcpy(tm.text, "?", sizeof(tm.text));
        log_warnx("%s: primary reported an error: %s", eng->name, tm.text);
        tdm__peer_close(eng->peer);
        eng->peer = NULL;
        eng->failover_armed = false;
        evtimer_del(eng->hb);
        return;
    default:
        snprintf(err, sizeof(err), "unexpected %s from the primary",
                 tdm_msg_name(f->type));
        stream_error(eng, err);
        return;
    }
}

void tdm__backup_hello(struct tdm_host *host, struct tdm__peer *p,
                       const struct tdm_frame *f)
{
    struct tdm_hello h;
    struct tdm_hello_reply hr;
    struct tdm_engine *eng;
    struct tdm_engine_params params;
    uint8_t buf[TDM_HELLO_REPLY_SIZE];
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
    char err[256], msg[400];

    if (tdm_hello_decode(f->payload, f->len, &h, err, sizeof(err)) < 0) {
        refuse(p, TDM_ERR_PROTOCOL, err);
        return;
    }
    params.interval_ms = h.interval_ms;
    params.heartbeat_ms = h.heartbeat_ms;
    params.timeout_ms = h.timeout_ms;
    if (tdm_engine_params_check(&params, err, sizeof(err)) < 0) {
        refuse(p, TDM_ERR_PROTOCOL, err);
        return;
    }
    eng = tdm_host_find(host, h.name);
    if (eng && eng->role == TDM_ROLE_BACKUP && !eng->dom) {
        /* A replica dropped earlier (never complete, or its primary said
         * goodbye): the primary starts over with a new one. */
        log_info("%s: replacing the dropped replica", eng->name);
        tdm__engine_free(eng);
        eng = NULL;
    }
    if (eng) {
        if (eng->role != TDM_ROLE_BACKUP) {
            snprintf(msg, sizeof(msg), "domain '%s' runs here as %s (%s)",
                     h.name, tdm_role_name(eng->role),
                     tdm_state_name(eng->state));
            refuse(p, TDM_ERR_DOMAIN, msg);
            return;
        }
        if (memcmp(eng->uuid, h.uuid, sizeof(h.uuid))) {
            snprintf(msg, sizeof(msg), "this host keeps a replica of another "
                     "domain named '%s'", h.name);
            refuse(p, TDM_ERR_DOMAIN, msg);
            return;
        }
        if (h.generation < eng->generation) {
            snprintf(msg, sizeof(msg), "generation %llu of '%s' is older than "
                     "this replica's %llu", (unsigned long long)h.generation,
                     h.name, (unsigned long long)eng->generation);
            refuse(p, TDM_ERR_STALE, msg);
            return;
        }
        /* The same primary reconnecting: the new link replaces the old. */
        log_info("%s: primary reconnected from %s", eng->name, p->addr);
        tdm__peer_close(eng->peer);
        eng->peer = NULL;
        drop_epoch(eng, "primary reconnected");
    } else {
        if (tdm__host_create_replica(host, &h, &eng, err, sizeof(err)) < 0) {
            refuse(p, TDM_ERR_RESOURCE, err);
            return;
        }
        log_info("%s: keeping a replica for primary %s (%llu pages, driver "
                 "%s)", eng->name, p->addr, (unsigned long long)h.npages,
                 h.driver);
        eng->hb = evtimer_new(host->base, hb_cb, eng);
        tdm__engine_changed(eng);
    }
    eng->generation = h.generation;
    eng->params = params;
    tdm_strlcpy(eng->peer_str, p->addr, sizeof(eng->peer_str));
    eng->peer = p;
    tdm__peer_set_cb(p, backup_frame, NULL, eng);
    eng->failover_armed = true;
    hr.last_epoch = eng->applied;
    hr.generation = eng->generation;
    tdm_hello_reply_encode(&hr, buf);
    tdm__peer_send(p, TDM_MSG_HELLO_REPLY, 0, &iov, 1);
    timer_add_ms(eng->hb, params.heartbeat_ms);
}
