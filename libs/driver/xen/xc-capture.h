/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The primary side of a Xen epoch, without the network: log-dirty on a
 * PVH/HVM domain (HAP), and per epoch: pause the domain in the hypervisor,
 * take and clear the dirty bitmap (CLEAN with the FINAL flag), copy every
 * dirty frame through foreign mappings into a tdm_staging buffer, read the
 * HVM context, unpause. No byte leaves the host inside the pause.
 *
 * This is the building block of the xen driver (issue 3); the driver adds
 * the migration-stream records and the backup's restore path.
 */
#ifndef TDM_XC_CAPTURE_H
#define TDM_XC_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tdm-staging.h"

struct tdm_xc_capture;

struct tdm_xc_epoch_stats {
    uint64_t pause_ns;          /* domain paused: pause to unpause */
    uint64_t bitmap_ns;         /* CLEAN of the dirty bitmap */
    uint64_t copy_ns;           /* mapping and copying the dirty frames */
    uint64_t live;              /* first epoch: frames copied before the pause */
    uint64_t dirty;             /* frames copied while paused */
    uint64_t unmappable;        /* dirty frames Xen refused to map (holes) */
    uint32_t hvm_ctx_len;
};

/* Attach to a running domain: checks it is HVM/PVH on HAP, enables
 * log-dirty. PV domains get an error that names the cause. */
int tdm_xc_capture_open(uint32_t domid, struct tdm_xc_capture **c_r,
                        char *err, size_t errlen);
/* The frames the domain holds (plus slack): the staging capacity, and
 * the p2m size (its pfns are below it, with holes): the pfn limit. */
uint64_t tdm_xc_capture_npages(const struct tdm_xc_capture *c);
uint64_t tdm_xc_capture_p2m_size(const struct tdm_xc_capture *c);
/* One epoch. The first after open copies every frame while the domain
 * runs, then pauses for the frames written meanwhile. A frame the first
 * epoch already staged and dirtied again is staged twice (the later copy
 * wins when applied in order). */
int tdm_xc_capture_epoch(struct tdm_xc_capture *c, struct tdm_staging *st,
                         struct tdm_xc_epoch_stats *s);
/* Log-dirty off, handles closed; the domain keeps running. */
void tdm_xc_capture_close(struct tdm_xc_capture *c);

#endif
