/* SPDX-License-Identifier: LGPL-2.1-only */
/* tandem.conf(5): parse into a copy, validate, and only then replace. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "tandemd.h"
#include "tdm-cfg.h"

void tdmd_conf_default(struct tdmd_conf *c)
{
    memset(c, 0, sizeof(*c));
    tdm_strlcpy(c->listen_addr, "0.0.0.0", sizeof(c->listen_addr));
    c->listen_port = TDM_DEFAULT_PORT;
    tdm_strlcpy(c->socket, TDM_RUNSTATEDIR "/tandem/tandemd.sock",
                sizeof(c->socket));
    c->log_level = TDM_LOG_INFO;
    c->accept_replicas = true;
    tdm_engine_params_default(&c->params);
    c->xenstore = TDMD_XS_AUTO;
    tdm_strlcpy(c->xenstore_root, "/tool/tandem", sizeof(c->xenstore_root));
    tdm_strlcpy(c->disk_dir, TDM_DEFAULT_DISK_DIR, sizeof(c->disk_dir));
    tdm_strlcpy(c->nbdkit, "nbdkit", sizeof(c->nbdkit));
    tdm_strlcpy(c->nbdkit_plugin, TDM_DEFAULT_NBDKIT_PLUGIN,
                sizeof(c->nbdkit_plugin));
    c->disk_hold_max = TDM_DEFAULT_DISK_HOLD_MAX;
}

static int parse_bool(const char *k, const char *v, bool *b, char *err,
                      size_t errlen)
{
    if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1"))
        *b = true;
    else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0"))
        *b = false;
    else
        return tdm_errf(err, errlen, "%s = '%s': expected yes or no", k, v);
    return 0;
}

int tdmd_parse_listen(const char *v, struct tdmd_conf *c, char *err,
                      size_t errlen);
int tdmd_parse_listen(const char *v, struct tdmd_conf *c, char *err,
                      size_t errlen)
{
    char tmp[128];
    size_t n = strlen(v);
    uint16_t port;
    bool any_port;

    if (!strcmp(v, "none")) {
        c->listen_off = true;
        return 0;
    }
    /* ":0" lets the kernel choose a port (tests); tdm_parse_hostport
     * only takes real ports. */
    any_port = n > 2 && !strcmp(v + n - 2, ":0");
    if (!tdm_strlcpy(tmp, v, sizeof(tmp)))
        return tdm_errf(err, errlen, "listen = '%s': too long", v);
    if (any_port)
        tmp[n - 2] = '\0';
    if (tdm_parse_hostport(tmp, TDM_DEFAULT_PORT, c->listen_addr,
                           sizeof(c->listen_addr), &port) < 0)
        return tdm_errf(err, errlen, "listen = '%s': expected ADDRESS[:PORT] "
                        "or none", v);
    c->listen_port = any_port ? 0 : port;
    c->listen_off = false;
    return 0;
}

int tdmd_conf_parse(struct tdmd_conf *out, const char *text, size_t len,
                    char *err, size_t errlen)
{
    struct tdmd_conf c = *out;
    struct tdm_cfg cfg;
    const char *v;
    uint64_t n;
    bool b;
    int rc = -1;

    tdm_cfg_init(&cfg);
    if (tdm_cfg_parse(&cfg, text, len, err, errlen) < 0)
        goto out;
    if ((v = tdm_cfg_get(&cfg, "listen")) &&
        tdmd_parse_listen(v, &c, err, errlen) < 0)
        goto out;
    if ((v = tdm_cfg_get(&cfg, "socket"))) {
        if (v[0] != '/' || !tdm_strlcpy(c.socket, v, sizeof(c.socket))) {
            tdm_errf(err, errlen, "socket = '%s': an absolute path of at most "
                     "%zu bytes", v, sizeof(c.socket) - 5);
            goto out;
        }
    }
    if ((v = tdm_cfg_get(&cfg, "log-level"))) {
        if (!strcmp(v, "error"))
            c.log_level = TDM_LOG_ERR;
        else if (!strcmp(v, "notice"))
            c.log_level = TDM_LOG_WARNING;
        else if (!strcmp(v, "info"))
            c.log_level = TDM_LOG_INFO;
        else if (!strcmp(v, "debug"))
            c.log_level = TDM_LOG_DEBUG;
        else {
            tdm_errf(err, errlen, "log-level = '%s': expected error, notice, "
                     "info or debug", v);
            goto out;
        }
    }
    if ((v = tdm_cfg_get(&cfg, "accept-replicas")) &&
        parse_bool("accept-replicas", v, &c.accept_replicas, err, errlen) < 0)
        goto out;
    if (tdm_cfg_get_u64(&cfg, "interval", c.params.interval_ms, 1, 10000, &n,
                        err, errlen) < 0)
        goto out;
    c.params.interval_ms = (uint32_t)n;
    if (tdm_cfg_get_u64(&cfg, "heartbeat", c.params.heartbeat_ms, 5, 10000,
                        &n, err, errlen) < 0)
        goto out;
    c.params.heartbeat_ms = (uint32_t)n;
    if (tdm_cfg_get_u64(&cfg, "timeout", c.params.timeout_ms, 10, 600000, &n,
                        err, errlen) < 0)
        goto out;
    c.params.timeout_ms = (uint32_t)n;
    if (tdm_engine_params_check(&c.params, err, errlen) < 0)
        goto out;
    if ((v = tdm_cfg_get(&cfg, "fence"))) {
        struct stat sb;
        if (v[0] != '/' || !tdm_strlcpy(c.fence, v, sizeof(c.fence))) {
            tdm_errf(err, errlen, "fence = '%s': an absolute path", v);
            goto out;
        }
        if (stat(v, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
            tdm_errf(err, errlen, "fence = '%s': not a directory", v);
            goto out;
        }
    }
    if ((v = tdm_cfg_get(&cfg, "xenstore"))) {
        if (!strcmp(v, "auto"))
            c.xenstore = TDMD_XS_AUTO;
        else if (parse_bool("xenstore", v, &b, err, errlen) < 0) {
            tdm_errf(err, errlen, "xenstore = '%s': expected auto, yes or "
                     "no", v);
            goto out;
        } else
            c.xenstore = b ? TDMD_XS_YES : TDMD_XS_NO;
#ifndef HAVE_XEN
        if (c.xenstore == TDMD_XS_YES) {
            tdm_errf(err, errlen, "xenstore = yes: this tandemd was built "
                     "without the Xen libraries");
            goto out;
        }
#endif
    }
    if ((v = tdm_cfg_get(&cfg, "xenstore-root"))) {
        bool ok = v[0] == '/' && strlen(v) < 100 && v[strlen(v) - 1] != '/';
        for (const char *p = v; ok && *p; p++)
            ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                 (*p >= '0' && *p <= '9') || strchr("/_-.", *p);
        if (!ok || strstr(v, "//")) {
            tdm_errf(err, errlen, "xenstore-root = '%s': an absolute "
                     "xenstore path of at most 99 bytes of [A-Za-z0-9/_.-]",
                     v);
            goto out;
        }
        tdm_strlcpy(c.xenstore_root, v, sizeof(c.xenstore_root));
    }
    if ((v = tdm_cfg_get(&cfg, "disk-dir"))) {
        /* NAME.nbd below it must fit a unix socket path */
        if (v[0] != '/' || strlen(v) > 40 ||
            !tdm_strlcpy(c.disk_dir, v, sizeof(c.disk_dir))) {
            tdm_errf(err, errlen, "disk-dir = '%s': an absolute path of at "
                     "most 40 bytes (unix socket paths are short)", v);
            goto out;
        }
    }
    if ((v = tdm_cfg_get(&cfg, "nbdkit")) &&
        (!v[0] || !tdm_strlcpy(c.nbdkit, v, sizeof(c.nbdkit)))) {
        tdm_errf(err, errlen, "nbdkit = '%s': a program name or path", v);
        goto out;
    }
    if ((v = tdm_cfg_get(&cfg, "nbdkit-plugin"))) {
        if (v[0] != '/' ||
            !tdm_strlcpy(c.nbdkit_plugin, v, sizeof(c.nbdkit_plugin))) {
            tdm_errf(err, errlen, "nbdkit-plugin = '%s': an absolute path", v);
            goto out;
        }
    }
    if (tdm_cfg_get_u64(&cfg, "disk-hold-max", c.disk_hold_max >> 20, 16,
                        1u << 20, &n, err, errlen) < 0)
        goto out;
    c.disk_hold_max = n << 20;
    if (tdm_cfg_check_unused(&cfg, err, errlen) < 0)
        goto out;
    *out = c;
    rc = 0;
out:
    tdm_cfg_dispose(&cfg);
    return rc;
}

int tdmd_conf_load(struct tdmd_conf *c, const char *path, bool must_exist,
                   char *err, size_t errlen)
{
    struct tdm_cfg raw;
    char perr[512];
    int rc;

    tdm_cfg_init(&raw);
    if (tdm_cfg_parse_file(&raw, path, perr, sizeof(perr)) < 0) {
        struct stat sb;
        if (!must_exist && stat(path, &sb) < 0 && errno == ENOENT)
            return 0;
        return tdm_errf(err, errlen, "%s", perr);
    }
    rc = tdmd_conf_parse(c, raw.text, raw.text_len, perr, sizeof(perr));
    if (rc < 0)
        tdm_errf(err, errlen, "%s: %s", path, perr);
    tdm_cfg_dispose(&raw);
    return rc;
}
