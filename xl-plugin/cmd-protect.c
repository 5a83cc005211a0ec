/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include <getopt.h>
#include <stdio.h>

#include "tdm-util.h"
#include "xl-tandem.h"

struct protect_args {
    const char *name;
    char host[256];
    uint16_t port;
    uint64_t interval, heartbeat, timeout;  /* 0: the daemon's default */
};

static void params(yajl_gen g, void *arg)
{
    struct protect_args *a = arg;

    tdm_ctl_gen_kv_str(g, "name", a->name);
    tdm_ctl_gen_kv_str(g, "host", a->host);
    tdm_ctl_gen_kv_u64(g, "port", a->port);
    if (a->interval)
        tdm_ctl_gen_kv_u64(g, "interval_ms", a->interval);
    if (a->heartbeat)
        tdm_ctl_gen_kv_u64(g, "heartbeat_ms", a->heartbeat);
    if (a->timeout)
        tdm_ctl_gen_kv_u64(g, "timeout_ms", a->timeout);
}

int cmd_protect(struct xlt *x, int argc, char **argv)
{
    struct protect_args a = {0};
    yajl_val root, result;
    char msg[400];
    int ch;

    while ((ch = getopt(argc, argv, "+i:H:t:")) != -1) {
        uint64_t *v = ch == 'i' ? &a.interval : ch == 'H' ? &a.heartbeat
                    : ch == 't' ? &a.timeout : NULL;
        if (!v)
            return xlt_usage_error("protect", "unknown option");
        if (tdm_parse_u64(optarg, 1, 600000, v) < 0)
            return xlt_usage_error("protect", "-%c '%s': expected "
                                   "milliseconds, a whole number from 1",
                                   ch, optarg);
    }
    if (argc - optind != 2)
        return xlt_usage_error("protect", "protect takes a domain and a "
                               "backup host");
    a.name = argv[optind];
    if (!xlt_valid_vm(a.name))
        return xlt_usage_error("protect", "'%s' is not a domain name", a.name);
    if (tdm_parse_hostport(argv[optind + 1], 7390, a.host, sizeof(a.host),
                           &a.port) < 0)
        return xlt_usage_error("protect", "'%s' is not HOST or HOST:PORT",
                               argv[optind + 1]);
    if (xlt_call(x, "protect", params, &a, &root, &result))
        return XLT_EXIT_FAIL;
    snprintf(msg, sizeof(msg), "%s: protecting with backup %s", a.name,
             argv[optind + 1]);
    x->out->done(msg);
    yajl_tree_free(root);
    return 0;
}
