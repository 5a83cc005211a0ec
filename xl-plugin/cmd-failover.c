/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include "xl-tandem.h"

int cmd_failover(struct xlt *x, int argc, char **argv)
{
    return xlt_by_name(x, "failover", "failover", "%s: planned failover started", argc, argv);
}
