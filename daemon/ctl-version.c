/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include "tandemd.h"

static int run(struct tdmd *d, const struct tdm_ctl_req *r, yajl_gen g,
               char *err, size_t errlen)
{
    yajl_gen_map_open(g);
    tdm_ctl_gen_kv_str(g, "version", PACKAGE_VERSION);
    tdm_ctl_gen_kv_str(g, "drivers", tdm_driver_names());
    tdm_ctl_gen_kv_u64(g, "replication_port", tdm_host_listen_port(d->host));
    yajl_gen_map_close(g);
    return 0;
}

const struct ctl_method ctl_version = {"version", CTL_READONLY, NULL, run};
