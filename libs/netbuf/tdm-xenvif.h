/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A Xen domain's network interfaces in dom0, from xenstore: what the xen
 * driver hands to libs/netbuf (the driver's net_ifaces op). Each vif
 * backend is /local/domain/0/backend/vif/DOMID/DEVID; its dom0 device is
 * "vifDOMID.DEVID" unless the backend names another ("vifname", set when
 * the domain's configuration gives vifname=).
 */
#ifndef TDM_XENVIF_H
#define TDM_XENVIF_H

#include <stddef.h>
#include <stdint.h>

/* "name" or a domid, as xl accepts -> domid. Returns 0, or -1 with err. */
int tdm_xen_domid(const char *domain, uint32_t *domid_r, char *err,
                  size_t errlen);
/* The domain's vifs, devid order, up to max names. Returns how many, or -1
 * with err. */
int tdm_xen_vifs(uint32_t domid, char (*names)[16], int max, char *err,
                 size_t errlen);

#endif
