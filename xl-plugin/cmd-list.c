/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include "xl-tandem.h"

int cmd_list(struct xlt *x, int argc, char **argv)
{
    yajl_val root, result;

    if (argc != 1)
        return xlt_usage_error("list", "list takes no arguments");
    if (xlt_call(x, "list", NULL, NULL, &root, &result))
        return XLT_EXIT_FAIL;
    x->out->list(result);
    yajl_tree_free(root);
    return 0;
}
