/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include "tandemd.h"

static const char *const params[] = {"name", "host", "port", "interval_ms",
                                     "heartbeat_ms", "timeout_ms", NULL};

static int run(struct tdmd *d, const struct tdm_ctl_req *r, yajl_gen g,
               char *err, size_t errlen)
{
    struct tdm_engine_params p = d->conf.params;
    const char *name, *host;
    uint64_t port, iv, hb, to;

    if (ctl_name_param(r, &name, err, errlen) < 0 ||
        tdm_ctl_param_str(r, "host", true, &host, err, errlen) < 0 ||
        tdm_ctl_param_u64(r, "port", TDM_DEFAULT_PORT, 1, 65535, &port, err,
                          errlen) < 0 ||
        tdm_ctl_param_u64(r, "interval_ms", p.interval_ms, 1, 10000, &iv, err,
                          errlen) < 0 ||
        tdm_ctl_param_u64(r, "heartbeat_ms", p.heartbeat_ms, 5, 10000, &hb,
                          err, errlen) < 0 ||
        tdm_ctl_param_u64(r, "timeout_ms", p.timeout_ms, 10, 600000, &to, err,
                          errlen) < 0)
        return -1;
    if (!*host || strlen(host) > 253)
        return tdm_errf(err, errlen, "protect: bad host '%s'", host);
    p.interval_ms = (uint32_t)iv;
    p.heartbeat_ms = (uint32_t)hb;
    p.timeout_ms = (uint32_t)to;
    if (tdm_host_protect(d->host, name, host, (uint16_t)port, &p, err,
                         errlen) < 0)
        return -1;
    yajl_gen_null(g);
    return 0;
}

const struct ctl_method ctl_protect = {"protect", 0, params, run};
