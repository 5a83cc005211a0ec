/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include "tdm-staging.h"
#include "tdm-util.h"

void tdm_staging_init(struct tdm_staging *st)
{
    memset(st, 0, sizeof(*st));
}

int tdm_staging_alloc_sparse(struct tdm_staging *st, size_t cap,
                             uint64_t pfn_limit)
{
    if (tdm_staging_alloc(st, cap) < 0)
        return -1;
    if (pfn_limit < cap) {
        log_warnx("pfn limit %llu below the capacity %zu",
                  (unsigned long long)pfn_limit, cap);
        tdm_staging_dispose(st);
        return -1;
    }
    st->pfn_limit = pfn_limit;
    return 0;
}

int tdm_staging_alloc(struct tdm_staging *st, size_t cap)
{
    tdm_staging_dispose(st);
    if (cap == 0 || cap > ((size_t)1 << 28)) {
        log_warnx("bad staging capacity %zu pages", cap);
        return -1;
    }
    st->cap = cap;
    st->pfn_limit = cap;
    st->pfns = tdm_calloc(cap, sizeof(*st->pfns));
    st->data = tdm_alloc_pages(cap * TDM_PAGE_SIZE);
    return 0;
}

void tdm_staging_dispose(struct tdm_staging *st)
{
    free(st->pfns);
    tdm_free_pages(st->data, st->cap * TDM_PAGE_SIZE);
    free(st->state);
    tdm_staging_init(st);
}

void tdm_staging_reset(struct tdm_staging *st, uint64_t epoch)
{
    st->epoch = epoch;
    st->npages = 0;
    st->state_len = 0;
}

uint8_t *tdm_staging_add_page(struct tdm_staging *st, uint64_t pfn)
{
    if (st->npages >= st->cap || pfn >= st->pfn_limit) {
        log_warnx("page %llu does not fit (staged %zu of %zu)",
                  (unsigned long long)pfn, st->npages, st->cap);
        return NULL;
    }
    st->pfns[st->npages] = pfn;
    return st->data + st->npages++ * TDM_PAGE_SIZE;
}

static int state_reserve(struct tdm_staging *st, size_t len)
{
    size_t ncap;

    if (len > TDM_STAGING_STATE_MAX) {
        log_warnx("driver state of %zu bytes exceeds %u", len,
                  TDM_STAGING_STATE_MAX);
        return -1;
    }
    if (len <= st->state_cap)
        return 0;
    ncap = TDM_MAX(len, st->state_cap * 2);
    ncap = TDM_MIN(TDM_MAX(ncap, (size_t)4096), (size_t)TDM_STAGING_STATE_MAX);
    st->state = tdm_realloc(st->state, ncap);
    st->state_cap = ncap;
    return 0;
}

int tdm_staging_set_state(struct tdm_staging *st, const void *p, size_t len)
{
    if (state_reserve(st, len) < 0)
        return -1;
    if (len)
        memcpy(st->state, p, len);
    st->state_len = len;
    return 0;
}

int tdm_staging_append_state(struct tdm_staging *st, const void *p, size_t len)
{
    if (len > TDM_STAGING_STATE_MAX - st->state_len) {
        log_warnx("driver state would exceed %u bytes", TDM_STAGING_STATE_MAX);
        return -1;
    }
    if (state_reserve(st, st->state_len + len) < 0)
        return -1;
    if (len)
        memcpy(st->state + st->state_len, p, len);
    st->state_len += len;
    return 0;
}
