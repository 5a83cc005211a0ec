/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

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

/* One extra slot for drivers registered at run time (tests). */
static const struct tdm_driver_ops *extra;

void tdm_driver_register(const struct tdm_driver_ops *ops)
{
    extra = ops;
}

const struct tdm_driver_ops *tdm_driver_find(const char *name)
{
    if (extra && !strcmp(extra->name, name))
        return extra;
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
