/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The control sockets: <socket> (0600, every method) and <socket>.ro
 * (0666, read-only methods). One JSON request per line, one answer per
 * line; a client that sends more than TDM_CTL_MAX_LINE without a newline
 * is answered with an error and dropped. Nothing here blocks the loop.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "tandemd.h"

static const struct ctl_method *const methods[] = {
    &ctl_version, &ctl_list, &ctl_status, &ctl_create, &ctl_protect,
    &ctl_unprotect, &ctl_failover, &ctl_destroy, NULL,
};

struct ctl_client {
    struct tdmd *d;
    bool readonly;
};

static char *dispatch(struct tdmd *d, bool readonly, const char *line,
                      size_t len, size_t *out_len)
{
    struct tdm_ctl_req req;
    const struct ctl_method *m = NULL;
    char err[512];
    char *out = NULL;
    yajl_gen g;

    tdm_ctl_req_init(&req);
    if (tdm_ctl_req_parse(&req, line, len, err, sizeof(err)) < 0)
        goto fail;
    for (size_t i = 0; methods[i]; i++)
        if (!strcmp(methods[i]->name, req.method))
            m = methods[i];
    if (!m) {
        tdm_errf(err, sizeof(err), "unknown method '%s'", req.method);
        goto fail;
    }
    if (readonly && !(m->flags & CTL_READONLY)) {
        tdm_errf(err, sizeof(err), "'%s' is not allowed on the read-only "
                 "socket", m->name);
        goto fail;
    }
    if (tdm_ctl_params_only(&req, m->params, err, sizeof(err)) < 0)
        goto fail;
    g = tdm_ctl_reply_begin();
    if (m->fn(d, &req, g, err, sizeof(err)) < 0) {
        yajl_gen_free(g);
        goto fail;
    }
    out = tdm_ctl_reply_end(g, out_len);
    tdm_ctl_req_dispose(&req);
    return out;
fail:
    if (m && !(m->flags & CTL_READONLY))
        log_notice("control: %s refused: %s", m->name, err);
    tdm_ctl_req_dispose(&req);
    return tdm_ctl_reply_error(err, out_len);
}

static void client_free(struct bufferevent *bev, struct ctl_client *c)
{
    bufferevent_free(bev);
    free(c);
}

static void client_read(struct bufferevent *bev, void *arg)
{
    struct ctl_client *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char *line, *reply;
    size_t n, rlen;

    while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF))) {
        reply = dispatch(c->d, c->readonly, line, n, &rlen);
        bufferevent_write(bev, reply, rlen);
        free(reply);
        free(line);
    }
    if (evbuffer_get_length(in) > TDM_CTL_MAX_LINE) {
        reply = tdm_ctl_reply_error("request line too long", &rlen);
        bufferevent_write(bev, reply, rlen);
        free(reply);
        evbuffer_drain(in, evbuffer_get_length(in));
        bufferevent_disable(bev, EV_READ);
    }
}

static void client_write(struct bufferevent *bev, void *arg)
{
    struct ctl_client *c = arg;

    /* Done once reading was stopped and the answer is out. */
    if (!(bufferevent_get_enabled(bev) & EV_READ))
        client_free(bev, c);
}

static void client_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        client_free(bev, arg);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    struct tdmd *d = arg;
    struct ctl_client *c = tdm_calloc(1, sizeof(*c));
    struct bufferevent *bev;

    c->d = d;
    c->readonly = l == d->ctl_ro;
    bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        log_warnx("control: cannot create a bufferevent");
        evutil_closesocket(fd);
        free(c);
        return;
    }
    bufferevent_setcb(bev, client_read, client_write, client_event, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* A socket file left by a crashed daemon is removed; a live one is not. */
static int claim_path(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd, r;

    tdm_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return tdm_errf(err, errlen, "socket: %s", strerror(errno));
    r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
    close(fd);
    if (r == 0)
        return tdm_errf(err, errlen, "another tandemd answers on %s", path);
    if (unlink(path) < 0 && errno != ENOENT)
        return tdm_errf(err, errlen, "cannot remove stale %s: %s", path,
                        strerror(errno));
    return 0;
}

static struct evconnlistener *listen_unix(struct tdmd *d, const char *path,
                                          mode_t mode, char *err,
                                          size_t errlen)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct evconnlistener *l;
    mode_t old;

    if (claim_path(path, err, errlen) < 0)
        return NULL;
    tdm_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    old = umask(0777 & ~mode);
    l = evconnlistener_new_bind(d->base, accept_cb, d,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                16, (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (!l) {
        tdm_errf(err, errlen, "cannot listen on %s: %s", path,
                 strerror(errno));
        return NULL;
    }
    chmod(path, mode);
    return l;
}

int ctl_listen(struct tdmd *d, char *err, size_t errlen)
{
    char dir[108], *slash;

    tdm_strlcpy(dir, d->conf.socket, sizeof(dir));
    slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            return tdm_errf(err, errlen, "cannot create %s: %s", dir,
                            strerror(errno));
    }
    snprintf(d->sock_ro, sizeof(d->sock_ro), "%s.ro", d->conf.socket);
    d->ctl_rw = listen_unix(d, d->conf.socket, 0600, err, errlen);
    if (!d->ctl_rw)
        return -1;
    d->ctl_ro = listen_unix(d, d->sock_ro, 0666, err, errlen);
    if (!d->ctl_ro)
        return -1;
    log_info("control sockets %s and %s", d->conf.socket, d->sock_ro);
    return 0;
}

void ctl_close(struct tdmd *d)
{
    if (d->ctl_rw) {
        evconnlistener_free(d->ctl_rw);
        unlink(d->conf.socket);
    }
    if (d->ctl_ro) {
        evconnlistener_free(d->ctl_ro);
        unlink(d->sock_ro);
    }
    d->ctl_rw = d->ctl_ro = NULL;
}

int ctl_name_param(const struct tdm_ctl_req *r, const char **name_r,
                   char *err, size_t errlen)
{
    if (tdm_ctl_param_str(r, "name", true, name_r, err, errlen) < 0)
        return -1;
    if (!tdm_valid_name(*name_r))
        return tdm_errf(err, errlen, "%s: '%s' is not a domain name",
                        r->method, *name_r);
    return 0;
}

const char *const ctl_name_params[] = {"name", NULL};

int ctl_run_by_name(struct tdmd *d, const struct tdm_ctl_req *r, yajl_gen g,
                    int (*op)(struct tdm_host *, const char *, char *, size_t),
                    char *err, size_t errlen)
{
    const char *name;

    if (ctl_name_param(r, &name, err, errlen) < 0 ||
        op(d->host, name, err, errlen) < 0)
        return -1;
    yajl_gen_null(g);
    return 0;
}

static void gen_stat(yajl_gen g, const char *k, const struct tdm_stat *s)
{
    tdm_ctl_gen_str(g, k);
    yajl_gen_map_open(g);
    tdm_ctl_gen_kv_u64(g, "count", s->count);
    tdm_ctl_gen_kv_u64(g, "median", tdm_stat_pct(s, 50));
    tdm_ctl_gen_kv_u64(g, "p99", tdm_stat_pct(s, 99));
    tdm_ctl_gen_kv_u64(g, "max", s->max);
    yajl_gen_map_close(g);
}

void ctl_gen_domain(yajl_gen g, struct tdm_engine *eng, bool full)
{
    struct tdm_engine_info in;
    const struct tdm_engine_metrics *m;

    tdm_engine_info(eng, &in);
    m = in.m;
    yajl_gen_map_open(g);
    tdm_ctl_gen_kv_str(g, "name", in.name);
    tdm_ctl_gen_kv_str(g, "driver", in.driver);
    tdm_ctl_gen_kv_str(g, "role", tdm_role_name(in.role));
    tdm_ctl_gen_kv_str(g, "state", tdm_state_name(in.state));
    tdm_ctl_gen_kv_str(g, "peer", in.peer);
    tdm_ctl_gen_kv_u64(g, "epoch", m->last_epoch);
    if (full) {
        tdm_ctl_gen_kv_u64(g, "pages", in.npages);
        tdm_ctl_gen_kv_u64(g, "interval_ms", in.params.interval_ms);
        tdm_ctl_gen_kv_u64(g, "heartbeat_ms", in.params.heartbeat_ms);
        tdm_ctl_gen_kv_u64(g, "timeout_ms", in.params.timeout_ms);
        tdm_ctl_gen_kv_u64(g, "epochs", m->epochs);
        tdm_ctl_gen_kv_u64(g, "acked_epoch", m->acked_epoch);
        tdm_ctl_gen_kv_u64(g, "rejected_frames", m->rejected_frames);
        tdm_ctl_gen_kv_u64(g, "torn_epochs", m->torn_epochs);
        tdm_ctl_gen_kv_u64(g, "skipped_ticks", m->skipped_ticks);
        tdm_ctl_gen_kv_u64(g, "failovers", m->failovers);
        tdm_ctl_gen_kv_u64(g, "bytes_sent", m->bytes_sent_total);
        tdm_ctl_gen_str(g, "output");
        yajl_gen_map_open(g);
        tdm_ctl_gen_kv_u64(g, "held_frames", in.out.held_frames);
        tdm_ctl_gen_kv_u64(g, "held_bytes", in.out.held_bytes);
        tdm_ctl_gen_kv_u64(g, "released_frames", in.out.released_frames);
        tdm_ctl_gen_kv_u64(g, "discarded_frames", in.out.discarded_frames);
        tdm_ctl_gen_kv_u64(g, "backpressure", in.out.backpressure);
        tdm_ctl_gen_kv_u64(g, "rx_frames", in.out.rx_frames);
        tdm_ctl_gen_kv_u64(g, "dropped_frames", in.out.dropped_frames);
        tdm_ctl_gen_kv_str(g, "mechanism", in.out.mechanism);
        yajl_gen_map_close(g);
        tdm_ctl_gen_kv_u64(g, "syncs", m->syncs);
        tdm_ctl_gen_kv_u64(g, "sync_pause_ns", m->sync_pause_ns);
        tdm_ctl_gen_kv_u64(g, "sync_pages", m->sync_pages);
        tdm_ctl_gen_kv_u64(g, "sync_live_ns", m->sync_live_ns);
        tdm_ctl_gen_kv_u64(g, "sync_live_steps", m->sync_live_steps);
        tdm_ctl_gen_kv_u64(g, "sync_live_step_max_ns",
                           m->sync_live_step_max_ns);
        gen_stat(g, "pause_ns", &m->pause_ns);
        gen_stat(g, "capture_ns", &m->capture_ns);
        gen_stat(g, "dirty_pages", &m->dirty_pages);
        gen_stat(g, "epoch_bytes", &m->epoch_bytes);
        gen_stat(g, "ack_ns", &m->ack_ns);
        gen_stat(g, "apply_ns", &m->apply_ns);
        if (in.disk.present) {
            const struct tdm_disk_stats *k = &in.disk;
            tdm_ctl_gen_str(g, "disk");
            yajl_gen_map_open(g);
            tdm_ctl_gen_kv_str(g, "state", k->broken ? "broken" :
                               k->syncing ? "syncing" :
                               k->in_sync ? "in-sync" : "not-in-sync");
            tdm_ctl_gen_kv_u64(g, "size", k->size);
            tdm_ctl_gen_kv_u64(g, "records", k->records);
            tdm_ctl_gen_kv_u64(g, "bytes", k->bytes);
            tdm_ctl_gen_kv_u64(g, "discarded", k->discarded);
            tdm_ctl_gen_kv_u64(g, "dirty_records", k->dirty_records);
            tdm_ctl_gen_kv_u64(g, "syncs", k->syncs);
            tdm_ctl_gen_kv_u64(g, "resyncs", k->resyncs);
            tdm_ctl_gen_kv_u64(g, "sync_done", k->sync_done);
            tdm_ctl_gen_kv_u64(g, "sync_total", k->sync_total);
            tdm_ctl_gen_kv_u64(g, "sync_sent", k->sync_sent);
            tdm_ctl_gen_kv_u64(g, "sync_ns", k->sync_ns);
            tdm_ctl_gen_kv_u64(g, "cut_ns_max", k->cut_ns_max);
            tdm_ctl_gen_kv_u64(g, "throttled", k->throttled);
            tdm_ctl_gen_kv_u64(g, "committed_epoch", k->committed_epoch);
            tdm_ctl_gen_kv_u64(g, "held_records", k->held_records);
            tdm_ctl_gen_kv_u64(g, "held_bytes", k->held_bytes);
            tdm_ctl_gen_kv_u64(g, "applied_records", k->applied_records);
            tdm_ctl_gen_kv_u64(g, "queued_bytes", k->queued_bytes);
            yajl_gen_map_close(g);
        }
    }
    yajl_gen_map_close(g);
}
