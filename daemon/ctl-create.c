/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include "tandemd.h"

static const char *const params[] = {"config", NULL};

static int run(struct tdmd *d, const struct tdm_ctl_req *r, yajl_gen g,
               char *err, size_t errlen)
{
    const char *text;

    if (tdm_ctl_param_str(r, "config", true, &text, err, errlen) < 0 ||
        tdm_host_create(d->host, text, strlen(text), err, errlen) < 0)
        return -1;
    yajl_gen_null(g);
    return 0;
}

const struct ctl_method ctl_create = {"create", 0, params, run};
