/* SPDX-License-Identifier: LGPL-2.1-only */
#ifndef TANDEMD_H
#define TANDEMD_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "tdm-ctl.h"
#include "tdm-engine.h"

enum tdmd_xs_mode { TDMD_XS_AUTO, TDMD_XS_YES, TDMD_XS_NO };

/* tandem.conf(5), after defaults and command-line overrides. */
struct tdmd_conf {
    char listen_addr[64];
    unsigned listen_port;
    bool listen_off;
    char socket[108];
    int log_level;
    bool accept_replicas;
    struct tdm_engine_params params;
    char fence[256];
    enum tdmd_xs_mode xenstore;
    char xenstore_root[128];
    char disk_dir[200];         /* tandem.conf(5): disk-dir */
    char nbdkit[256];
    char nbdkit_plugin[256];
    uint64_t disk_hold_max;     /* bytes */
};

void tdmd_conf_default(struct tdmd_conf *c);
/* Parse text over the values already in c (a fresh copy: on error c is
 * unchanged). */
int tdmd_conf_parse(struct tdmd_conf *c, const char *text, size_t len,
                    char *err, size_t errlen);
int tdmd_conf_load(struct tdmd_conf *c, const char *path, bool must_exist,
                   char *err, size_t errlen);

struct tdmd {
    struct event_base *base;
    struct tdm_host *host;
    struct tdmd_conf conf;
    const char *conf_path;
    bool conf_explicit;
    struct evconnlistener *ctl_rw, *ctl_ro;
    char sock_ro[116];
    struct tdmd_xs *xs;         /* tandem-xenstore(7); NULL: not watched */
};

/* ---- xenstore (daemon/xswatch.c; without Xen: never started) ---- */
int tdmd_xs_start(struct tdmd *d, char *err, size_t errlen);
void tdmd_xs_changed(struct tdmd *d, struct tdm_engine *eng);
void tdmd_xs_stop(struct tdmd *d);

/* ---- control methods: one file each (daemon/ctl-<name>.c) ---- */
#define CTL_READONLY 0x1        /* allowed on the read-only socket */

struct ctl_method {
    const char *name;
    unsigned flags;
    const char *const *params;  /* the parameters it accepts */
    /* Write the result value into g, or fail with err (nothing changed). */
    int (*fn)(struct tdmd *d, const struct tdm_ctl_req *r, yajl_gen g,
              char *err, size_t errlen);
};

extern const struct ctl_method ctl_version, ctl_list, ctl_status, ctl_create,
    ctl_protect, ctl_unprotect, ctl_failover, ctl_destroy;

int ctl_listen(struct tdmd *d, char *err, size_t errlen);
void ctl_close(struct tdmd *d);
/* One domain as JSON (list: the summary; status: everything). */
void ctl_gen_domain(yajl_gen g, struct tdm_engine *eng, bool full);
/* The common shape of methods that take only a domain name. */
int ctl_name_param(const struct tdm_ctl_req *r, const char **name_r,
                   char *err, size_t errlen);

/* Methods that take only a domain name and call one tdm_host_* op. */
extern const char *const ctl_name_params[];
int ctl_run_by_name(struct tdmd *d, const struct tdm_ctl_req *r, yajl_gen g,
                    int (*op)(struct tdm_host *, const char *, char *, size_t),
                    char *err, size_t errlen);

#endif
