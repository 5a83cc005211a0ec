/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include "tandemd.h"

static int run(struct tdmd *d, const struct tdm_ctl_req *r, yajl_gen g,
               char *err, size_t errlen)
{
    struct tdm_engine *eng;

    yajl_gen_array_open(g);
    for (size_t i = 0; (eng = tdm_host_engine_at(d->host, i)); i++)
        ctl_gen_domain(g, eng, false);
    yajl_gen_array_close(g);
    return 0;
}

const struct ctl_method ctl_list = {"list", CTL_READONLY, NULL, run};
