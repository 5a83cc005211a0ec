/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The host: every engine of one tandemd, and the replication listener that
 * backups are reached on. A new connection must say HELLO within
 * PENDING_TIMEOUT_MS before it is handed to the backup side.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "engine-private.h"

#define PENDING_TIMEOUT_MS 5000

struct tdm__pending {
    struct tdm__pending *next;
    struct tdm_host *host;
    struct tdm__peer *peer;
    struct event *timer;
};


/* ---- engines ---- */

void tdm__engine_changed(struct tdm_engine *eng)
{
    struct tdm_host *host = eng->host;

    if (host->hooks.changed)
        host->hooks.changed(eng, host->hooks.arg);
}

void tdm__engine_set_state(struct tdm_engine *eng, enum tdm_state st)
{
    if (eng->state == st)
        return;
    log_info("%s: %s -> %s (%s)", eng->name, tdm_state_name(eng->state),
             tdm_state_name(st), tdm_role_name(eng->role));
    eng->state = st;
    tdm__engine_changed(eng);
}

static void stat_init_all(struct tdm_engine_metrics *m)
{
    memset(m, 0, sizeof(*m));
    tdm_stat_init(&m->pause_ns);
    tdm_stat_init(&m->capture_ns);
    tdm_stat_init(&m->dirty_pages);
    tdm_stat_init(&m->epoch_bytes);
    tdm_stat_init(&m->ack_ns);
    tdm_stat_init(&m->apply_ns);
}

struct tdm_engine *tdm__engine_new(struct tdm_host *host, struct tdm_cfg *cfg,
                                   const struct tdm_driver_ops *drv,
                                   enum tdm_role role)
{
    struct tdm_engine *eng = tdm_calloc(1, sizeof(*eng)), **tail;

    eng->host = host;
    eng->cfg = *cfg;            /* takes ownership */
    tdm_cfg_init(cfg);
    eng->drv = drv;
    eng->role = role;
    eng->state = role == TDM_ROLE_PRIMARY ? TDM_ST_UNPROTECTED
                                          : TDM_ST_RECEIVING;
    eng->generation = 1;
    tdm_engine_params_default(&eng->params);
    tdm_staging_init(&eng->st);
    stat_init_all(&eng->m);
    for (tail = &host->engines; *tail; tail = &(*tail)->next)
        ;
    *tail = eng;
    return eng;
}

void tdm__engine_free(struct tdm_engine *eng)
{
    struct tdm_engine **pp;
    bool guest_runs = false;

    if (!eng)
        return;
    for (pp = &eng->host->engines; *pp; pp = &(*pp)->next) {
        if (*pp == eng) {
            *pp = eng->next;
            break;
        }
    }
    tdm__peer_close(eng->peer);
    eng->peer = NULL;
    if (eng->tick)
        event_free(eng->tick);
    if (eng->hb)
        event_free(eng->hb);
    if (eng->retry)
        event_free(eng->retry);
    if (eng->stopped_ev)
        event_free(eng->stopped_ev);
    if (eng->precopy_ev)
        event_free(eng->precopy_ev);
    /* The domain goes: what it sent in unacknowledged epochs never leaves. */
    tdm__output_close(eng, true);
    if (eng->dom && eng->keep_guest && eng->drv->release &&
        eng->role == TDM_ROLE_PRIMARY) {
        eng->drv->release(eng->dom);
        guest_runs = true;
    } else if (eng->dom) {
        eng->drv->destroy(eng->dom);
    } else {
        /* never attached: a guest runs on with the disk it had */
        guest_runs = tdm__disk_adopted(eng);
    }
    eng->dom = NULL;
    tdm__disk_free(eng, guest_runs);  /* after the driver let go of it */
    tdm_staging_dispose(&eng->st);
    tdm_cfg_dispose(&eng->cfg);
    free(eng);
}

struct tdm_engine *tdm_host_find(struct tdm_host *host, const char *name)
{
    for (struct tdm_engine *e = host->engines; e; e = e->next)
        if (!strcmp(e->name, name))
            return e;
    return NULL;
}

struct tdm_engine *tdm_host_engine_at(struct tdm_host *host, size_t i)
{
    struct tdm_engine *e = host->engines;

    while (e && i--)
        e = e->next;
    return e;
}

void tdm_engine_info(struct tdm_engine *eng, struct tdm_engine_info *info)
{
    memset(info, 0, sizeof(*info));
    info->name = eng->name;
    info->driver = eng->drv->name;
    info->role = eng->role;
    info->state = eng->state;
    info->peer = eng->peer_str;
    info->params = eng->params;
    info->npages = eng->dom ? eng->drv->npages(eng->dom) : 0;
    tdm__output_stats(eng, &info->out);
    info->m = &eng->m;
    tdm__disk_stats(eng, &info->disk);
}

/* ---- guest stopped by itself (driver event, on the loop thread) ---- */

static void guest_stopped(void *arg, bool crashed, const char *why)
{
    struct tdm_engine *eng = arg;

    if (crashed)
        log_warnx("%s: guest crashed: %s", eng->name, why);
    else
        log_info("%s: guest shut down: %s", eng->name, why);
    if (eng->role == TDM_ROLE_PRIMARY && eng->state != TDM_ST_UNPROTECTED &&
        eng->state != TDM_ST_STOPPED)
        tdm__primary_unprotect(eng, true);
    tdm__engine_set_state(eng, TDM_ST_STOPPED);
}

/* ---- create ---- */

int tdm_host_create(struct tdm_host *host, const char *cfg_text, size_t len,
                    char *err, size_t errlen)
{
    struct tdm_cfg cfg;
    struct tdm_dom_events ev;
    const struct tdm_driver_ops *drv;
    struct tdm_engine *eng = NULL;
    const char *name, *dname;
    char perr[256], image[PATH_MAX];
    int rc = -1, netbuf_kind = 0;

    tdm_cfg_init(&cfg);
    if (tdm_cfg_parse(&cfg, cfg_text, len, perr, sizeof(perr)) < 0) {
        tdm_errf(err, errlen, "domain configuration: %s", perr);
        goto out;
    }
    name = tdm_cfg_get(&cfg, "name");
    if (!name || !tdm_valid_name(name)) {
        tdm_errf(err, errlen, "domain configuration: %s", name ?
             "name must be 1-63 of [A-Za-z0-9_.-], not all digits" :
             "'name' is required");
        goto out;
    }
    if (tdm_host_find(host, name)) {
        tdm_errf(err, errlen, "a domain named '%s' already exists here", name);
        goto out;
    }
    dname = tdm_cfg_get(&cfg, "driver");
    if (!dname)
        dname = "uvm";
    drv = tdm_driver_find(dname);
    if (!drv) {
        tdm_errf(err, errlen, "driver '%s' is not built in (available: %s)",
             dname, tdm_driver_names());
        goto out;
    }
    if (tdm__output_parse(drv, &cfg, &netbuf_kind, perr, sizeof(perr)) < 0 ||
        tdm__disk_parse(host, &cfg, name, false, image, sizeof(image),
                        perr, sizeof(perr)) < 0 ||
        drv->validate(&cfg, perr, sizeof(perr)) < 0) {
        tdm_errf(err, errlen, "domain configuration: %s", perr);
        goto out;
    }
    eng = tdm__engine_new(host, &cfg, drv, TDM_ROLE_PRIMARY);
    eng->netbuf_kind = netbuf_kind;
    tdm_strlcpy(eng->name, tdm_cfg_get(&eng->cfg, "name"), sizeof(eng->name));
    if (getrandom(eng->uuid, sizeof(eng->uuid), 0) != sizeof(eng->uuid)) {
        tdm_errf(err, errlen, "getrandom: %s", strerror(errno));
        goto out;
    }
    if (tdm__disk_start(eng, image, perr, sizeof(perr)) < 0) {
        tdm_errf(err, errlen, "%s: disk: %s", eng->name, perr);
        goto out;
    }
    ev.guest_stopped = guest_stopped;
    ev.arg = eng;
    if (drv->create(&eng->cfg, host->base, &ev, &eng->dom) < 0) {
        tdm_errf(err, errlen, "%s: the %s driver could not create the domain "
             "(see the daemon log)", eng->name, drv->name);
        goto out;
    }
    if (tdm__fence_init(host->cfg.fence_path, eng->name, eng->generation) < 0) {
        tdm_errf(err, errlen, "%s: cannot record the domain in the fence at %s",
             eng->name, host->cfg.fence_path);
        goto out;
    }
    tdm__output_cleanup(eng);
    log_info("%s: created (driver %s, %llu pages), unprotected", eng->name,
             drv->name, (unsigned long long)drv->npages(eng->dom));
    tdm__engine_changed(eng);
    eng = NULL;
    rc = 0;
out:
    if (eng)
        tdm__engine_free(eng);
    tdm_cfg_dispose(&cfg);
    return rc;
}

/* Used by the backup side when a HELLO names a new domain. */
int tdm__host_create_replica(struct tdm_host *host, const struct tdm_hello *h,
                             struct tdm_engine **eng_r, char *err,
                             size_t errlen);
int tdm__host_create_replica(struct tdm_host *host, const struct tdm_hello *h,
                             struct tdm_engine **eng_r, char *err,
                             size_t errlen)
{
    struct tdm_cfg cfg;
    struct tdm_dom_events ev;
    const struct tdm_driver_ops *drv;
    struct tdm_engine *eng = NULL;
    const char *name;
    char perr[256], image[PATH_MAX];
    int rc = -1, netbuf_kind = 0;

    tdm_cfg_init(&cfg);
    drv = tdm_driver_find(h->driver);
    if (!drv) {
        tdm_errf(err, errlen, "driver '%s' is not built in here", h->driver);
        goto out;
    }
    if (tdm_cfg_parse(&cfg, (const char *)h->config, h->config_len, perr,
                      sizeof(perr)) < 0 ||
        tdm__output_parse(drv, &cfg, &netbuf_kind, perr, sizeof(perr)) < 0 ||
        tdm__disk_parse(host, &cfg, h->name, true, image, sizeof(image),
                        perr, sizeof(perr)) < 0 ||
        drv->validate(&cfg, perr, sizeof(perr)) < 0) {
        tdm_errf(err, errlen, "domain configuration: %s", perr);
        goto out;
    }
    name = tdm_cfg_get(&cfg, "name");
    if (!name || strcmp(name, h->name)) {
        tdm_errf(err, errlen, "HELLO names '%s' but its configuration does not",
             h->name);
        goto out;
    }
    eng = tdm__engine_new(host, &cfg, drv, TDM_ROLE_BACKUP);
    eng->netbuf_kind = netbuf_kind;
    tdm_strlcpy(eng->name, h->name, sizeof(eng->name));
    memcpy(eng->uuid, h->uuid, sizeof(eng->uuid));
    eng->generation = h->generation;
    if (tdm__disk_replica(eng, image, perr, sizeof(perr)) < 0) {
        tdm_errf(err, errlen, "disk: %s", perr);
        goto out;
    }
    ev.guest_stopped = guest_stopped;
    ev.arg = eng;
    if (drv->create_replica(&eng->cfg, host->base, &ev, &eng->dom) < 0) {
        tdm_errf(err, errlen, "the %s driver could not create a replica",
             drv->name);
        goto out;
    }
    tdm__output_cleanup(eng);
    if (drv->npages(eng->dom) != h->npages) {
        tdm_errf(err, errlen, "replica has %llu pages, the primary %llu",
             (unsigned long long)drv->npages(eng->dom),
             (unsigned long long)h->npages);
        goto out;
    }
    if (tdm_staging_alloc(&eng->st, h->npages) < 0) {
        tdm_errf(err, errlen, "cannot allocate staging for %llu pages",
             (unsigned long long)h->npages);
        goto out;
    }
    *eng_r = eng;
    eng = NULL;
    rc = 0;
out:
    if (eng)
        tdm__engine_free(eng);
    tdm_cfg_dispose(&cfg);
    return rc;
}

/* ---- control entry points ---- */

static struct tdm_engine *find_or_err(struct tdm_host *host, const char *name,
                                      char *err, size_t errlen)
{
    struct tdm_engine *eng = tdm_host_find(host, name);

    if (!eng)
        tdm_errf(err, errlen, "no domain named '%s' here", name);
    return eng;
}

/* The domain, if this host is its primary; 'what' names the command for
 * the message that sends the user to the primary. */
static struct tdm_engine *find_primary(struct tdm_host *host, const char *name,
                                       const char *what, char *err,
                                       size_t errlen)
{
    struct tdm_engine *eng = find_or_err(host, name, err, errlen);

    if (eng && eng->role != TDM_ROLE_PRIMARY) {
        tdm_errf(err, errlen, "'%s' is a replica here (the backup side); run "
                 "%s on its primary", name, what);
        return NULL;
    }
    return eng;
}

int tdm_host_protect(struct tdm_host *host, const char *name,
                     const char *peer_host, uint16_t peer_port,
                     const struct tdm_engine_params *params, char *err,
                     size_t errlen)
{
    struct tdm_engine *eng = find_primary(host, name, "protect", err, errlen);

    if (!eng)
        return -1;
    if (eng->state == TDM_ST_STOPPED)
        return tdm_errf(err, errlen, "'%s' is stopped", name);
    if (eng->state != TDM_ST_UNPROTECTED)
        return tdm_errf(err, errlen, "'%s' is already protected by %s (%s)", name,
                    eng->peer_str, tdm_state_name(eng->state));
    return tdm__primary_protect(eng, peer_host, peer_port, params, err,
                                errlen);
}

int tdm_host_unprotect(struct tdm_host *host, const char *name, char *err,
                       size_t errlen)
{
    struct tdm_engine *eng = find_primary(host, name, "unprotect", err, errlen);

    if (!eng)
        return -1;
    if (eng->state == TDM_ST_UNPROTECTED || eng->state == TDM_ST_STOPPED)
        return tdm_errf(err, errlen, "'%s' is not protected", name);
    tdm__primary_unprotect(eng, true);
    return 0;
}

int tdm_host_failover(struct tdm_host *host, const char *name, char *err,
                      size_t errlen)
{
    struct tdm_engine *eng = find_primary(host, name, "failover", err, errlen);

    if (!eng)
        return -1;
    if (eng->state != TDM_ST_PROTECTED)
        return tdm_errf(err, errlen, "'%s' is %s: a planned failover needs a "
                    "protected domain", name, tdm_state_name(eng->state));
    return tdm__primary_failover(eng, err, errlen);
}

int tdm_host_destroy(struct tdm_host *host, const char *name, char *err,
                     size_t errlen)
{
    struct tdm_engine *eng = find_or_err(host, name, err, errlen);

    if (!eng)
        return -1;
    if (eng->role == TDM_ROLE_PRIMARY && eng->peer)
        tdm__primary_unprotect(eng, true);
    log_info("%s: destroyed", eng->name);
    eng->state = TDM_ST_STOPPED;
    tdm__engine_changed(eng);
    tdm__engine_free(eng);
    return 0;
}

/* ---- listener ---- */

static void pending_free(struct tdm__pending *pd)
{
    struct tdm__pending **pp;

    for (pp = &pd->host->pending; *pp; pp = &(*pp)->next) {
        if (*pp == pd) {
            *pp = pd->next;
            break;
        }
    }
    event_free(pd->timer);
    free(pd);
}

static void pending_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct tdm__pending *pd = arg;

    log_warnx("%s: no HELLO within %d ms, closing", pd->peer->addr,
              PENDING_TIMEOUT_MS);
    tdm__peer_close(pd->peer);
    pending_free(pd);
}

static void pending_frame(struct tdm__peer *p, const struct tdm_frame *f,
                          const char *why, void *arg)
{
    struct tdm__pending *pd = arg;
    struct tdm_host *host = pd->host;

    if (!f) {
        if (why)
            log_info("%s: closed before HELLO: %s", p->addr, why);
        pending_free(pd);
        return;
    }
    pending_free(pd);
    if (f->type != TDM_MSG_HELLO) {
        log_warnx("%s: expected HELLO, got %s", p->addr, tdm_msg_name(f->type));
        tdm__peer_send_text(p, TDM_MSG_ERROR, TDM_ERR_PROTOCOL,
                            "expected HELLO");
        tdm__peer_close_after_flush(p);
        return;
    }
    tdm__peer_set_cb(p, NULL, NULL, NULL);
    tdm__backup_hello(host, p, f);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    struct tdm_host *host = arg;
    struct tdm__pending *pd;
    char addr[96] = "?", ip[INET6_ADDRSTRLEN] = "?";
    struct timeval tv = {PENDING_TIMEOUT_MS / 1000,
                         (PENDING_TIMEOUT_MS % 1000) * 1000};

    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(addr, sizeof(addr), "%s:%u", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(addr, sizeof(addr), "[%s]:%u", ip, ntohs(in6->sin6_port));
    }
    if (!host->cfg.accept_replicas) {
        log_notice("%s: refused: this host does not accept replicas", addr);
        evutil_closesocket(fd);
        return;
    }
    pd = tdm_calloc(1, sizeof(*pd));
    pd->host = host;
    pd->peer = tdm__peer_accept(host->base, fd, addr, pending_frame, pd);
    if (!pd->peer) {
        free(pd);
        return;
    }
    pd->timer = evtimer_new(host->base, pending_timeout, pd);
    evtimer_add(pd->timer, &tv);
    pd->next = host->pending;
    host->pending = pd;
    log_debug("%s: connection", addr);
}

static int host_listen(struct tdm_host *host)
{
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    char spec[128];

    memset(&ss, 0, sizeof(ss));
    snprintf(spec, sizeof(spec), strchr(host->cfg.listen_addr, ':') ?
             "[%s]:%u" : "%s:%u", host->cfg.listen_addr, host->cfg.listen_port);
    if (inet_pton(AF_INET, host->cfg.listen_addr,
                  &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ss.ss_family = AF_INET;
        ((struct sockaddr_in *)&ss)->sin_port = htons(host->cfg.listen_port);
        sslen = sizeof(struct sockaddr_in);
    } else if (inet_pton(AF_INET6, host->cfg.listen_addr,
                         &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        ss.ss_family = AF_INET6;
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(host->cfg.listen_port);
        sslen = sizeof(struct sockaddr_in6);
    } else {
        log_warnx("bad listen address '%s' (an IP address is expected)",
                  host->cfg.listen_addr);
        return -1;
    }
    host->listener = evconnlistener_new_bind(
        host->base, accept_cb, host,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 16,
        (struct sockaddr *)&ss, sslen);
    if (!host->listener) {
        log_warn("cannot listen on %s", spec);
        return -1;
    }
    {
        struct sockaddr_storage b;
        socklen_t blen = sizeof(b);
        int fd = evconnlistener_get_fd(host->listener);
        if (getsockname(fd, (struct sockaddr *)&b, &blen) == 0)
            host->port = ntohs(b.ss_family == AF_INET6
                                   ? ((struct sockaddr_in6 *)&b)->sin6_port
                                   : ((struct sockaddr_in *)&b)->sin_port);
    }
    log_info("replication listener on %s:%u", host->cfg.listen_addr,
             host->port);
    return 0;
}

int tdm_host_new(struct event_base *base, const struct tdm_host_config *hc,
                 const struct tdm_host_hooks *hooks, struct tdm_host **host_r)
{
    struct tdm_host *host = tdm_calloc(1, sizeof(*host));

    host->base = base;
    host->cfg = *hc;
    if (hooks)
        host->hooks = *hooks;
    host->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                         EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!host->dns) {
        /* No resolv.conf (a bare namespace): numeric addresses still work. */
        host->dns = evdns_base_new(base, 0);
    }
    if (hc->listen_addr[0] && host_listen(host) < 0) {
        tdm_host_free(host);
        return -1;
    }
    *host_r = host;
    return 0;
}

void tdm_host_free(struct tdm_host *host)
{
    if (!host)
        return;
    host->stopping = true;
    while (host->pending) {
        tdm__peer_close(host->pending->peer);
        pending_free(host->pending);
    }
    while (host->engines) {
        struct tdm_engine *eng = host->engines;
        if (eng->role == TDM_ROLE_PRIMARY && eng->peer)
            tdm__primary_unprotect(eng, true);
        /* tandemd stops; guests it attached to run on, unprotected */
        eng->keep_guest = true;
        tdm__engine_free(eng);
    }
    tdm__peer_closing_end(host->base);
    if (host->listener)
        evconnlistener_free(host->listener);
    if (host->dns)
        evdns_base_free(host->dns, 0);
    free(host);
}

uint16_t tdm_host_listen_port(const struct tdm_host *host)
{
    return host->port;
}
