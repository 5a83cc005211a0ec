/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include "tandemd.h"

static int run(struct tdmd *d, const struct tdm_ctl_req *r, yajl_gen g,
               char *err, size_t errlen)
{
    return ctl_run_by_name(d, r, g, tdm_host_unprotect, err, errlen);
}

const struct ctl_method ctl_unprotect = {"unprotect", 0, ctl_name_params, run};
