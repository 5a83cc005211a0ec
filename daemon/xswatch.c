/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * tandemd's side of tandem-xenstore(7): it watches ROOT/domains, attaches
 * to and protects the domains listed there, and publishes each domain's
 * state under ROOT/status.
 *
 * An entry is applied whole or not at all: one that does not parse, or
 * that tandem refuses, changes nothing and its error is published as
 * ROOT/status/NAME/error (and logged). A removed entry unprotects its
 * domain, which stays attached and running ('xl-tandem destroy' lets it
 * go). Changing the domain part of an attached domain (domain, memory,
 * suspend, netbuf) is refused with an error until it is detached; the
 * protection part (backup, interval, heartbeat, timeout) is applied at
 * once.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <xenstore.h>

#include "tandemd.h"
#include "tdm-util.h"
#include "tdm-xsconf.h"
#include "tdm-xsconf-xs.h"

#define RESCAN_MS 50

struct xs_ent {
    struct xs_ent *next;
    struct tdm_xsconf cur;      /* what is applied */
    bool seen;
};

struct tdmd_xs {
    struct xs_handle *h;
    struct event *ev_fd, *ev_rescan;
    struct xs_ent *ents;
    char root[128];
};

static void publish(struct tdmd *d, const char *name, const char *key,
                    const char *val)
{
    char p[320];

    snprintf(p, sizeof(p), "%s/status/%s/%s", d->xs->root, name, key);
    if (!xs_write(d->xs->h, XBT_NULL, p, val, strlen(val)))
        log_warn("xenstore: cannot write %s", p);
}

static void entry_error(struct tdmd *d, const char *name, const char *err)
{
    log_warnx("xenstore %s/domains/%s: %s; nothing changed", d->xs->root,
              name, err);
    publish(d, name, "error", err);
}

static struct xs_ent *ent_find(struct tdmd_xs *x, const char *name)
{
    for (struct xs_ent *e = x->ents; e; e = e->next)
        if (!strcmp(e->cur.name, name))
            return e;
    return NULL;
}

static int protect(struct tdmd *d, const struct tdm_xsconf *c, char *err,
                   size_t errlen)
{
    struct tdm_engine_params p = d->conf.params;

    if (c->interval_ms)
        p.interval_ms = c->interval_ms;
    if (c->heartbeat_ms)
        p.heartbeat_ms = c->heartbeat_ms;
    if (c->timeout_ms)
        p.timeout_ms = c->timeout_ms;
    if (tdm_engine_params_check(&p, err, errlen) < 0)
        return -1;
    return tdm_host_protect(d->host, c->name, c->host, c->port, &p, err,
                            errlen);
}

/* Record c as applied, in e or in a new entry. */
static struct xs_ent *ent_set(struct tdmd_xs *x, struct xs_ent *e,
                              const struct tdm_xsconf *c)
{
    if (!e) {
        e = tdm_calloc(1, sizeof(*e));
        e->next = x->ents;
        x->ents = e;
    }
    e->cur = *c;
    e->seen = true;
    return e;
}

/* Bring the engine of entry c where c asks. */
static void apply(struct tdmd *d, const struct tdm_xsconf *c)
{
    struct tdmd_xs *x = d->xs;
    struct xs_ent *e = ent_find(x, c->name);
    struct tdm_engine *eng = tdm_host_find(d->host, c->name);
    struct tdm_engine_info info;
    char err[512], cfg[1024];
    bool reprotect;

    if (e && tdm_xsconf_same_domain(&e->cur, c) &&
        tdm_xsconf_same_protection(&e->cur, c) && eng)
        return;                         /* nothing asked of us changed */
    if (eng && e && !tdm_xsconf_same_domain(&e->cur, c)) {
        entry_error(d, c->name, "domain, memory, suspend and netbuf of an "
                    "attached domain cannot change: remove the entry, "
                    "'xl-tandem destroy' it (which destroys the guest) or "
                    "restart tandemd, then write it again");
        return;
    }
    if (!eng) {
        if (tdm_xsconf_domain_cfg(c, cfg, sizeof(cfg)) < 0) {
            entry_error(d, c->name, "settings too long");
            return;
        }
        if (tdm_host_create(d->host, cfg, strlen(cfg), err,
                            sizeof(err)) < 0) {
            entry_error(d, c->name, err);
            return;
        }
        eng = tdm_host_find(d->host, c->name);
        log_info("%s: attached from xenstore %s/domains/%s", c->name,
                 x->root, c->name);
    }
    tdm_engine_info(eng, &info);
    if (info.role != TDM_ROLE_PRIMARY) {
        entry_error(d, c->name, "this host keeps a replica of that name: it "
                    "cannot also be a primary");
        return;
    }
    reprotect = c->protect && e && e->cur.protect &&
                !tdm_xsconf_same_protection(&e->cur, c);
    if ((!c->protect || reprotect) && info.state != TDM_ST_UNPROTECTED &&
        info.state != TDM_ST_STOPPED) {
        if (tdm_host_unprotect(d->host, c->name, err, sizeof(err)) < 0) {
            entry_error(d, c->name, err);
            return;
        }
        tdm_engine_info(eng, &info);
    }
    if (c->protect && info.state == TDM_ST_UNPROTECTED &&
        protect(d, c, err, sizeof(err)) < 0) {
        entry_error(d, c->name, err);
        /* attached: remember the domain part, not the protection */
        e = ent_set(x, e, c);
        e->cur.protect = false;
        return;
    }
    ent_set(x, e, c);
    publish(d, c->name, "error", "");
    if (c->protect)
        log_info("%s: protected from xenstore: backup %s", c->name,
                 c->backup);
}

static void rescan(evutil_socket_t fd, short what, void *arg)
{
    struct tdmd *d = arg;
    struct tdmd_xs *x = d->xs;
    char path[320], err[512];
    char **names;
    unsigned n = 0;

    for (struct xs_ent *e = x->ents; e; e = e->next)
        e->seen = false;
    snprintf(path, sizeof(path), "%s/domains", x->root);
    names = xs_directory(x->h, XBT_NULL, path, &n);
    if (!names && errno != ENOENT) {
        log_warn("xenstore: cannot list %s", path);
        return;     /* nothing is known: nothing is removed */
    }
    for (unsigned i = 0; i < n; i++) {
        struct tdm_xsconf c;
        struct xs_ent *e = ent_find(x, names[i]);

        if (e)
            e->seen = true;
        if (tdm_xs_read_entry(x->h, x->root, names[i], &c, err,
                              sizeof(err)) < 0) {
            entry_error(d, names[i], err);
            continue;
        }
        apply(d, &c);
    }
    free(names);
    /* Entries gone from xenstore: unprotect, keep the domain. */
    for (struct xs_ent **pp = &x->ents; *pp;) {
        struct xs_ent *e = *pp;
        struct tdm_engine *eng;

        if (e->seen) {
            pp = &e->next;
            continue;
        }
        eng = tdm_host_find(d->host, e->cur.name);
        if (eng) {
            struct tdm_engine_info info;
            tdm_engine_info(eng, &info);
            if (info.role == TDM_ROLE_PRIMARY &&
                info.state != TDM_ST_UNPROTECTED &&
                info.state != TDM_ST_STOPPED &&
                tdm_host_unprotect(d->host, e->cur.name, err,
                                   sizeof(err)) < 0)
                log_warnx("%s: %s", e->cur.name, err);
            log_notice("%s: its xenstore entry is gone: unprotected, still "
                       "attached and running", e->cur.name);
        }
        snprintf(path, sizeof(path), "%s/status/%s/error", x->root,
                 e->cur.name);
        xs_rm(x->h, XBT_NULL, path);
        *pp = e->next;
        free(e);
    }
}

static void on_fd(evutil_socket_t fd, short what, void *arg)
{
    struct tdmd *d = arg;
    struct timeval tv = {0, RESCAN_MS * 1000};
    char **w;
    bool any = false;

    while ((w = xs_check_watch(d->xs->h))) {
        any = true;
        free(w);
    }
    /* A transaction fires one watch per key: look once they settle. */
    if (any)
        evtimer_add(d->xs->ev_rescan, &tv);
}

int tdmd_xs_start(struct tdmd *d, char *err, size_t errlen)
{
    struct tdmd_xs *x;
    char path[192];

    if (d->conf.xenstore == TDMD_XS_NO)
        return 0;
    x = tdm_calloc(1, sizeof(*x));
    tdm_strlcpy(x->root, d->conf.xenstore_root, sizeof(x->root));
    if (!(x->h = xs_open(0))) {
        int e = errno;
        free(x);
        if (d->conf.xenstore == TDMD_XS_AUTO) {
            log_notice("xenstore is not reachable (%s): domains are "
                       "configured through the control socket only (set "
                       "xenstore = no in tandem.conf to say so)",
                       strerror(e));
            return 0;
        }
        return tdm_errf(err, errlen, "xenstore = yes, but xenstore is not "
                        "reachable: %s", strerror(e));
    }
    d->xs = x;
    /* States of an earlier tandemd are not ours to show */
    snprintf(path, sizeof(path), "%s/status", x->root);
    xs_rm(x->h, XBT_NULL, path);
    snprintf(path, sizeof(path), "%s/domains", x->root);
    if (!xs_mkdir(x->h, XBT_NULL, path) ||
        !xs_watch(x->h, path, "tandem")) {
        int e = errno;
        tdmd_xs_stop(d);
        return tdm_errf(err, errlen, "xenstore: cannot watch %s: %s", path,
                        strerror(e));
    }
    x->ev_rescan = evtimer_new(d->base, rescan, d);
    x->ev_fd = event_new(d->base, xs_fileno(x->h), EV_READ | EV_PERSIST,
                         on_fd, d);
    event_add(x->ev_fd, NULL);
    log_info("xenstore: watching %s", path);
    /* xs_watch fires once at once: that is the first scan. */
    return 0;
}

void tdmd_xs_changed(struct tdmd *d, struct tdm_engine *eng)
{
    struct tdm_engine_info info;

    if (!d->xs)
        return;
    tdm_engine_info(eng, &info);
    publish(d, info.name, "role", tdm_role_name(info.role));
    publish(d, info.name, "state", tdm_state_name(info.state));
    publish(d, info.name, "peer", info.peer ? info.peer : "");
}

void tdmd_xs_stop(struct tdmd *d)
{
    struct tdmd_xs *x = d->xs;

    if (!x)
        return;
    if (x->ev_fd)
        event_free(x->ev_fd);
    if (x->ev_rescan)
        event_free(x->ev_rescan);
    while (x->ents) {
        struct xs_ent *e = x->ents;
        x->ents = e->next;
        free(e);
    }
    {
        char path[192];
        snprintf(path, sizeof(path), "%s/status", x->root);
        xs_rm(x->h, XBT_NULL, path);
    }
    xs_close(x->h);
    free(x);
    d->xs = NULL;
}
