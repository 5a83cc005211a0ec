/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include "xl-tandem.h"

int cmd_version(struct xlt *x, int argc, char **argv)
{
    yajl_val root, result;

    if (argc != 1)
        return xlt_usage_error("version", "version takes no arguments");
    if (xlt_call(x, "version", NULL, NULL, &root, &result))
        return XLT_EXIT_FAIL;
    x->out->version(result);
    yajl_tree_free(root);
    return 0;
}
