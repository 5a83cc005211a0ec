/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * An epoch's staging buffer: the dirty pages and the opaque driver state of
 * one epoch. The primary's driver fills it while the domain is suspended
 * (memcpy only, no I/O); the engine streams it after resume. The backup
 * receives into one and hands it to the driver only when the epoch is whole.
 */
#ifndef TDM_STAGING_H
#define TDM_STAGING_H

#include <stddef.h>
#include <stdint.h>

struct tdm_staging {
    uint64_t epoch;
    size_t npages;      /* pages staged in this epoch */
    size_t cap;         /* capacity in pages (the domain's page count) */
    uint64_t pfn_limit; /* pfns must be below it (cap, unless sparse) */
    uint64_t *pfns;     /* [cap] */
    uint8_t *data;      /* [cap * TDM_PAGE_SIZE], page-aligned */
    uint8_t *state;     /* opaque driver state (registers, devices) */
    size_t state_len, state_cap;
};

void tdm_staging_init(struct tdm_staging *st);
/* Allocate room for cap pages. Returns 0, or -1 (logged). */
int tdm_staging_alloc(struct tdm_staging *st, size_t cap);
/* Room for cap pages whose pfns may reach pfn_limit (a guest physmap with
 * holes: Xen's p2m is larger than the pages it holds). */
int tdm_staging_alloc_sparse(struct tdm_staging *st, size_t cap,
                             uint64_t pfn_limit);
void tdm_staging_dispose(struct tdm_staging *st);   /* idempotent */
void tdm_staging_reset(struct tdm_staging *st, uint64_t epoch);
/* Slot for one more page (caller copies TDM_PAGE_SIZE bytes into it);
 * NULL when full or pfn >= cap (logged). */
uint8_t *tdm_staging_add_page(struct tdm_staging *st, uint64_t pfn);
static inline uint8_t *tdm_staging_page(const struct tdm_staging *st, size_t i)
{
    return st->data + i * 4096u;
}
/* Replace the driver state blob. Returns 0 or -1 if larger than max. */
int tdm_staging_set_state(struct tdm_staging *st, const void *p, size_t len);
/* Append to the driver state blob (used by the receiving side). */
int tdm_staging_append_state(struct tdm_staging *st, const void *p, size_t len);

#define TDM_STAGING_STATE_MAX (16u << 20)

#endif
