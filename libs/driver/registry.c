/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "driver.h"

static const struct tdm_driver_ops *const drivers[] = {
#ifdef HAVE_UNICORN
    &tdm_driver_uvm,
#endif
#ifdef HAVE_XEN_DRIVER
    &tdm_driver_xen,
#endif
    NULL,
};

/* A few slots for drivers registered at run time (tests); a name
 * registered again replaces its driver. */
#define EXTRA_MAX 4
static const struct tdm_driver_ops *extra[EXTRA_MAX];

void tdm_driver_register(const struct tdm_driver_ops *ops)
{
    size_t i;

    for (i = 0; i < EXTRA_MAX && extra[i]; i++)
        if (!strcmp(extra[i]->name, ops->name))
            break;
    if (i == EXTRA_MAX)
        abort();                /* a test registering too many: its bug */
    extra[i] = ops;
}

const struct tdm_driver_ops *tdm_driver_find(const char *name)
{
    for (size_t i = 0; i < EXTRA_MAX && extra[i]; i++)
        if (!strcmp(extra[i]->name, name))
            return extra[i];
    for (size_t i = 0; drivers[i]; i++)
        if (!strcmp(drivers[i]->name, name))
            return drivers[i];
    return NULL;
}

const char *tdm_driver_names(void)
{
    static char buf[128];

    buf[0] = '\0';
    for (size_t i = 0; drivers[i]; i++) {
        if (i)
            strcat(buf, ",");
        strcat(buf, drivers[i]->name);
    }
    return buf;
}
