/* SPDX-License-Identifier: LGPL-2.1-only */
/* Pause, dirty bitmap, copy, unpause on real Xen (see xc-capture.h). */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include <xenctrl.h>
#include <xenforeignmemory.h>

#include "tdm-util.h"
#include "xc-capture.h"

#define MAP_BATCH 1024

struct tdm_xc_capture {
    xc_interface *xch;
    xenforeignmemory_handle *fmem;
    uint32_t domid;
    uint64_t p2m_size, nr_pages;
    xc_hypercall_buffer_t bm_hbuf;
    unsigned long *bm;
    int bm_pages;
    bool logdirty, first;
    uint8_t *ctx;
    uint32_t ctx_cap;
    xen_pfn_t *batch;
    int *errs;
};

static size_t bm_bytes(uint64_t bits)
{
    return (size_t)((bits + 63) / 64) * 8;
}

int tdm_xc_capture_open(uint32_t domid, struct tdm_xc_capture **c_r,
                        char *err, size_t errlen)
{
    struct tdm_xc_capture *c = tdm_calloc(1, sizeof(*c));
    xc_dominfo_t info;
    xen_pfn_t maxgpfn = 0;
    int ctx;

    c->domid = domid;
    c->first = true;
    c->bm_hbuf = (xc_hypercall_buffer_t){ .hbuf = NULL, .param_shadow = NULL,
                                          HYPERCALL_BUFFER_INIT_NO_BOUNCE };
    if (!(c->xch = xc_interface_open(NULL, NULL, 0)) ||
        !(c->fmem = xenforeignmemory_open(NULL, 0))) {
        tdm_errf(err, errlen, "cannot open the hypervisor interface: %s "
                 "(dom0, root, xen-privcmd loaded?)", strerror(errno));
        goto fail;
    }
    if (xc_domain_getinfo(c->xch, domid, 1, &info) != 1 || info.domid != domid) {
        tdm_errf(err, errlen, "no domain %u", domid);
        goto fail;
    }
    if (!info.hvm) {
        tdm_errf(err, errlen, "domain %u is PV: log-dirty of PV domains needs "
                 "shadow paging, which Debian's Xen is built without; use a "
                 "PVH or HVM guest", domid);
        goto fail;
    }
    if (!info.hap) {
        tdm_errf(err, errlen, "domain %u runs without HAP (nested paging): "
                 "log-dirty needs it here", domid);
        goto fail;
    }
    if (xc_domain_maximum_gpfn(c->xch, domid, &maxgpfn) < 0) {
        tdm_errf(err, errlen, "domain %u: maximum gpfn: %s", domid, strerror(errno));
        goto fail;
    }
    c->p2m_size = (uint64_t)maxgpfn + 1;
    c->nr_pages = info.nr_pages;
    c->bm_pages = (int)((bm_bytes(c->p2m_size) + XC_PAGE_SIZE - 1) / XC_PAGE_SIZE);
    c->bm = xc__hypercall_buffer_alloc_pages(c->xch, &c->bm_hbuf, c->bm_pages);
    if (!c->bm) {
        tdm_errf(err, errlen, "cannot allocate the dirty bitmap (%d pages)",
                 c->bm_pages);
        goto fail;
    }
    ctx = xc_domain_hvm_getcontext(c->xch, domid, NULL, 0);
    if (ctx <= 0) {
        tdm_errf(err, errlen, "domain %u: HVM context size: %s", domid,
                 strerror(errno));
        goto fail;
    }
    c->ctx_cap = (uint32_t)ctx + 4096;
    c->ctx = tdm_malloc(c->ctx_cap);
    c->batch = tdm_calloc(MAP_BATCH, sizeof(*c->batch));
    c->errs = tdm_calloc(MAP_BATCH, sizeof(*c->errs));
    if (xc_shadow_control(c->xch, domid, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
                          NULL, 0) < 0) {
        tdm_errf(err, errlen, "domain %u: cannot enable log-dirty: %s", domid,
                 strerror(errno));
        goto fail;
    }
    c->logdirty = true;
    *c_r = c;
    return 0;
fail:
    tdm_xc_capture_close(c);
    return -1;
}

uint64_t tdm_xc_capture_npages(const struct tdm_xc_capture *c)
{
    return TDM_MIN(c->nr_pages + 4096, c->p2m_size);
}

uint64_t tdm_xc_capture_p2m_size(const struct tdm_xc_capture *c)
{
    return c->p2m_size;
}

/* Map n frames and copy the mappable ones into st. */
static int copy_batch(struct tdm_xc_capture *c, struct tdm_staging *st, int n,
                      struct tdm_xc_epoch_stats *s)
{
    uint8_t *m = xenforeignmemory_map(c->fmem, c->domid, PROT_READ, (size_t)n,
                                      c->batch, c->errs);

    if (!m) {
        log_warn("domain %u: mapping %d frames", c->domid, n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        uint8_t *dst;

        if (c->errs[i]) {       /* a hole in the physmap: nothing to copy */
            s->unmappable++;
            continue;
        }
        if (!(dst = tdm_staging_add_page(st, c->batch[i]))) {
            xenforeignmemory_unmap(c->fmem, m, (size_t)n);
            return -1;
        }
        memcpy(dst, m + (size_t)i * XC_PAGE_SIZE, XC_PAGE_SIZE);
        s->dirty++;
    }
    xenforeignmemory_unmap(c->fmem, m, (size_t)n);
    return 0;
}

int tdm_xc_capture_epoch(struct tdm_xc_capture *c, struct tdm_staging *st,
                         struct tdm_xc_epoch_stats *s)
{
    uint64_t t0, t1, t2;
    int n = 0, ctx, rc = -1;

    memset(s, 0, sizeof(*s));
    if (c->first) {
        /* The full copy runs live: log-dirty is on since open, so a frame
         * written after its copy is in the bitmap the paused part below
         * takes, and is copied again there. */
        n = 0;
        for (uint64_t pfn = 0; pfn < c->p2m_size; pfn++) {
            c->batch[n++] = (xen_pfn_t)pfn;
            if (n == MAP_BATCH || pfn + 1 == c->p2m_size) {
                if (copy_batch(c, st, n, s) < 0)
                    return -1;
                n = 0;
            }
        }
        s->live = s->dirty;
        s->dirty = 0;
        c->first = false;
    }
    t0 = tdm_now_ns();
    if (xc_domain_pause(c->xch, c->domid) < 0) {
        log_warn("domain %u: pause", c->domid);
        return -1;
    }
    if (xc_logdirty_control(c->xch, c->domid, XEN_DOMCTL_SHADOW_OP_CLEAN,
                            &c->bm_hbuf, c->p2m_size,
                            XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL, NULL) < 0) {
        log_warn("domain %u: dirty bitmap", c->domid);
        goto out;
    }
    t1 = tdm_now_ns();
    for (uint64_t pfn = 0; pfn < c->p2m_size; pfn++) {
        if (!(c->bm[pfn / (8 * sizeof(long))] &
              (1UL << (pfn % (8 * sizeof(long))))))
            continue;
        c->batch[n++] = (xen_pfn_t)pfn;
        if (n == MAP_BATCH) {
            if (copy_batch(c, st, n, s) < 0)
                goto out;
            n = 0;
        }
    }
    if (n && copy_batch(c, st, n, s) < 0)
        goto out;
    t2 = tdm_now_ns();
    ctx = xc_domain_hvm_getcontext(c->xch, c->domid, c->ctx, c->ctx_cap);
    if (ctx < 0) {
        log_warn("domain %u: HVM context", c->domid);
        goto out;
    }
    if (tdm_staging_set_state(st, c->ctx, (size_t)ctx) < 0)
        goto out;
    s->hvm_ctx_len = (uint32_t)ctx;
    s->bitmap_ns = t1 - t0;
    s->copy_ns = t2 - t1;
    rc = 0;
out:
    if (xc_domain_unpause(c->xch, c->domid) < 0) {
        log_warn("domain %u: unpause", c->domid);
        rc = -1;
    }
    s->pause_ns = tdm_now_ns() - t0;
    return rc;
}

void tdm_xc_capture_close(struct tdm_xc_capture *c)
{
    if (!c)
        return;
    if (c->logdirty)
        xc_shadow_control(c->xch, c->domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0);
    if (c->bm)
        xc__hypercall_buffer_free_pages(c->xch, &c->bm_hbuf, c->bm_pages);
    if (c->fmem)
        xenforeignmemory_close(c->fmem);
    if (c->xch)
        xc_interface_close(c->xch);
    free(c->ctx);
    free(c->batch);
    free(c->errs);
    free(c);
}
