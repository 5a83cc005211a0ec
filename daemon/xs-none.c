/* SPDX-License-Identifier: LGPL-2.1-only */
/* tandemd built without the Xen libraries: no xenstore to watch (conf.c
 * refuses xenstore = yes in such a build). */
#include "config.h"

#include "tandemd.h"

int tdmd_xs_start(struct tdmd *d, char *err, size_t errlen)
{
    return 0;
}

void tdmd_xs_changed(struct tdmd *d, struct tdm_engine *eng)
{
}

void tdmd_xs_stop(struct tdmd *d)
{
}
