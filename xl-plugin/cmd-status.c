/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include "xl-tandem.h"

static void params(yajl_gen g, void *arg)
{
    if (arg)
        tdm_ctl_gen_kv_str(g, "name", arg);
}

int cmd_status(struct xlt *x, int argc, char **argv)
{
    yajl_val root, result;

    if (argc > 2)
        return xlt_usage_error("status", "status takes at most one domain");
    if (argc == 2 && !xlt_valid_vm(argv[1]))
        return xlt_usage_error("status", "'%s' is not a domain name", argv[1]);
    if (xlt_call(x, "status", params, argc == 2 ? argv[1] : NULL, &root,
                 &result))
        return XLT_EXIT_FAIL;
    x->out->status(result);
    yajl_tree_free(root);
    return 0;
}
