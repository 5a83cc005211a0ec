/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include "xl-tandem.h"

int cmd_destroy(struct xlt *x, int argc, char **argv)
{
    return xlt_by_name(x, "destroy", "destroy", "%s: destroyed", argc, argv);
}
