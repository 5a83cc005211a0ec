/* SPDX-License-Identifier: LGPL-2.1-only */
/* Protection settings in xenstore: reading and writing whole entries
 * (tdm-xsconf.h has the layout). */
#ifndef TDM_XSCONF_XS_H
#define TDM_XSCONF_XS_H

#include <stddef.h>

#include "tdm-xsconf.h"

struct xs_handle;

/* Read and check ROOT/domains/NAME. -1 with a message. */
int tdm_xs_read_entry(struct xs_handle *h, const char *root, const char *name,
                      struct tdm_xsconf *out, char *err, size_t errlen);
/* Replace ROOT/domains/NAME with c, in one transaction. */
int tdm_xs_write_entry(struct xs_handle *h, const char *root,
                       const struct tdm_xsconf *c, char *err, size_t errlen);
/* Remove ROOT/domains/NAME (no error if absent). */
int tdm_xs_remove_entry(struct xs_handle *h, const char *root,
                        const char *name, char *err, size_t errlen);

#endif
