/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include "tandemd.h"

static const char *const params[] = {"name", NULL};

static int run(struct tdmd *d, const struct tdm_ctl_req *r, yajl_gen g,
               char *err, size_t errlen)
{
    struct tdm_engine *eng;
    const char *name;

    if (tdm_ctl_param_str(r, "name", false, &name, err, errlen) < 0)
        return -1;
    if (name) {
        eng = tdm_host_find(d->host, name);
        if (!eng)
            return tdm_errf(err, errlen, "no domain named '%s' here", name);
        ctl_gen_domain(g, eng, true);
        return 0;
    }
    yajl_gen_array_open(g);
    for (size_t i = 0; (eng = tdm_host_engine_at(d->host, i)); i++)
        ctl_gen_domain(g, eng, true);
    yajl_gen_array_close(g);
    return 0;
}

const struct ctl_method ctl_status = {"status", CTL_READONLY, params, run};
