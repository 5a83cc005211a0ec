/* SPDX-License-Identifier: LGPL-2.1-only */
/* Xen migration stream records, the state blob, slots (see xen-stream.h). */
#include "config.h"

#include <stdio.h>

#include "tdm-util.h"
#include "xen-stream.h"

/* ---- buffer ---- */

void tdm_xbuf_init(struct tdm_xbuf *b)
{
    memset(b, 0, sizeof(*b));
}

void tdm_xbuf_dispose(struct tdm_xbuf *b)
{
    free(b->p);
    tdm_xbuf_init(b);
}

void tdm_xbuf_reserve(struct tdm_xbuf *b, size_t n)
{
    if (n > b->cap - b->len) {
        size_t ncap = TDM_MAX(b->cap * 2, (size_t)4096);

        while (ncap - b->len < n)
            ncap *= 2;
        b->p = tdm_realloc(b->p, ncap);
        b->cap = ncap;
    }
}

/* n more bytes, not cleared: for what the caller fills whole. */
static uint8_t *extend(struct tdm_xbuf *b, size_t n)
{
    uint8_t *r;

    tdm_xbuf_reserve(b, n);
    r = b->p + b->len;
    b->len += n;
    return r;
}

uint8_t *tdm_xbuf_grow(struct tdm_xbuf *b, size_t n)
{
    uint8_t *r = extend(b, n);

    memset(r, 0, n);
    return r;
}

void tdm_xbuf_put(struct tdm_xbuf *b, const void *p, size_t n)
{
    if (n)
        memcpy(tdm_xbuf_grow(b, n), p, n);
}

/* ---- records ---- */

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

void tdm_xrec_put(struct tdm_xbuf *b, uint32_t type, const void *body,
                  uint32_t len)
{
    uint8_t *p = tdm_xbuf_grow(b, 8 + pad8(len));

    tdm_put_le32(p, type);
    tdm_put_le32(p + 4, len);
    if (len)
        memcpy(p + 8, body, len);
}

void tdm_xstream_head(struct tdm_xbuf *b, uint16_t xen_major,
                      uint16_t xen_minor)
{
    uint8_t *p;

    /* libxl header: "LibxlFmt", version 2, options (little-endian) */
    p = tdm_xbuf_grow(b, 16);
    put_be64(p, 0x4c6962786c466d74ull);
    put_be32(p + 8, 2);
    tdm_xrec_put(b, TDM_XLREC_LIBXC_CONTEXT, NULL, 0);
    /* libxc image header: marker, "XENF", version 3, options */
    p = tdm_xbuf_grow(b, 24);
    memset(p, 0xff, 8);
    put_be32(p + 8, 0x58454e46u);
    put_be32(p + 12, 3);
    put_be16(p + 16, 0);
    /* libxc domain header: x86 HVM (PVH is HVM here), 4 KiB pages */
    p = tdm_xbuf_grow(b, 16);
    tdm_put_le32(p, 2);
    tdm_put_le16(p + 4, 12);
    tdm_put_le32(p + 8, xen_major);
    tdm_put_le32(p + 12, xen_minor);
}

static uint8_t *page_data_head(struct tdm_xbuf *b, const uint64_t *pfns,
                               uint32_t n, size_t extra)
{
    size_t body;
    uint8_t *p;

    if (n == 0 || n > TDM_XPAGE_BATCH)
        return NULL;
    for (uint32_t i = 0; i < n; i++)
        if (pfns[i] >= TDM_XPFN_LIMIT)
            return NULL;
    body = 8 + (size_t)n * 8 + (size_t)n * TDM_XPAGE_SIZE;
    /* every byte is written by the caller: no clearing of megabytes first */
    p = extend(b, 16 + (size_t)n * 8 + extra);
    tdm_put_le32(p, TDM_XREC_PAGE_DATA);
    tdm_put_le32(p + 4, (uint32_t)body);
    tdm_put_le32(p + 8, n);
    tdm_put_le32(p + 12, 0);
    p += 16;
    /* type NOTAB (0) in the top bits: a normal page with data */
    for (uint32_t i = 0; i < n; i++, p += 8)
        tdm_put_le64(p, pfns[i]);
    return p;
}

int tdm_xrec_page_data(struct tdm_xbuf *b, const uint64_t *pfns,
                       const uint8_t *data, uint32_t n)
{
    uint8_t *p = page_data_head(b, pfns, n, (size_t)n * TDM_XPAGE_SIZE);

    if (!p)
        return -1;
    memcpy(p, data, (size_t)n * TDM_XPAGE_SIZE);
    return 0;
}

int tdm_xrec_page_data_head(struct tdm_xbuf *b, const uint64_t *pfns,
                            uint32_t n)
{
    return page_data_head(b, pfns, n, 0) ? 0 : -1;
}

void tdm_xstream_checkpoint(struct tdm_xbuf *b)
{
    tdm_xrec_put(b, TDM_XREC_CHECKPOINT, NULL, 0);
    tdm_xrec_put(b, TDM_XLREC_CHECKPOINT_END, NULL, 0);
}

size_t tdm_xstream_epoch_size(size_t npages)
{
    size_t recs = (npages + TDM_XPAGE_BATCH - 1) / TDM_XPAGE_BATCH;

    return recs * 16 + npages * (8 + TDM_XPAGE_SIZE) + 16;
}

/* ---- state blob ---- */

void tdm_xstate_begin(struct tdm_xbuf *b, uint16_t flags)
{
    uint8_t *p;

    b->len = 0;
    p = tdm_xbuf_grow(b, TDM_XSTATE_HDR);
    tdm_put_le32(p, TDM_XSTATE_MAGIC);
    tdm_put_le16(p + 4, TDM_XSTATE_VERSION);
    tdm_put_le16(p + 6, flags);
}

void tdm_xstate_finish(struct tdm_xbuf *b)
{
    tdm_put_le32(b->p + 8, (uint32_t)b->len);
}

uint64_t tdm_xstate_slot_pfn(const struct tdm_xstate *s, uint32_t i)
{
    return tdm_get_le64(s->slot_pfns + (size_t)i * 8);
}

/* The parameters libxc's save sends (xg_sr_save_x86_hvm.c): a primary
 * has no reason to send others, and the restore would set them. */
static bool hvm_param_ok(uint64_t index)
{
    static const uint8_t ok[] = {
        1,      /* STORE_PFN */
        5, 6,   /* IOREQ_PFN, BUFIOREQ_PFN */
        9,      /* VIRIDIAN */
        12,     /* IDENT_PT */
        17,     /* CONSOLE_PFN */
        19,     /* ACPI_IOPORTS_LOCATION */
        27, 28, 29, /* PAGING, MONITOR, SHARING_RING_PFN */
        32, 33, /* IOREQ_SERVER_PFN, NR_IOREQ_SERVER_PAGES */
        34,     /* VM_GENERATION_ID_ADDR */
        36,     /* X87_FIP_WIDTH */
        37,     /* VM86_TSS_SIZED */
        38,     /* MCA_CAP */
    };

    for (size_t i = 0; i < TDM_ARRAY_SIZE(ok); i++)
        if (index == ok[i])
            return true;
    return false;
}

static const char *rec_name(uint32_t type)
{
    switch (type) {
    case TDM_XREC_TDM_SLOTS: return "SLOTS";
    case TDM_XREC_TDM_DOMCONFIG: return "DOMCONFIG";
    case TDM_XREC_X86_CPUID_POLICY: return "X86_CPUID_POLICY";
    case TDM_XREC_X86_MSR_POLICY: return "X86_MSR_POLICY";
    case TDM_XREC_X86_TSC_INFO: return "X86_TSC_INFO";
    case TDM_XREC_HVM_PARAMS: return "HVM_PARAMS";
    case TDM_XREC_HVM_CONTEXT: return "HVM_CONTEXT";
    }
    return NULL;
}

static int check_rec(const struct tdm_xstate_rec *r, struct tdm_xstate *s,
                     char *err, size_t errlen)
{
    const char *name = rec_name(r->type);
    uint32_t n;

    switch (r->type) {
    case TDM_XREC_TDM_SLOTS:
        if (r->len < 8)
            break;
        s->slot_first = tdm_get_le32(r->body);
        s->slot_count = n = tdm_get_le32(r->body + 4);
        if (n == 0 || n > (r->len - 8) / 8 || r->len != 8 + (size_t)n * 8)
            break;
        s->slot_pfns = r->body + 8;
        if ((uint64_t)s->slot_first + n > UINT32_MAX)
            return tdm_errf(err, errlen, "xen state: slots %u+%u overflow",
                            s->slot_first, n);
        for (uint32_t i = 0; i < n; i++)
            if (tdm_xstate_slot_pfn(s, i) >= TDM_XPFN_LIMIT)
                return tdm_errf(err, errlen, "xen state: slot %u: frame "
                                "0x%llx is not a guest frame",
                                s->slot_first + i, (unsigned long long)
                                tdm_xstate_slot_pfn(s, i));
        return 0;
    case TDM_XREC_TDM_DOMCONFIG:
        if (r->len == 0 || r->len > TDM_XCONFIG_MAX ||
            memchr(r->body, '\0', r->len))
            break;
        s->config = r->body;
        s->config_len = r->len;
        return 0;
    case TDM_XREC_X86_CPUID_POLICY:
        if (r->len == 0 || r->len > TDM_XPOLICY_MAX || r->len % 24)
            break;
        s->cpuid = *r;
        return 0;
    case TDM_XREC_X86_MSR_POLICY:
        if (r->len == 0 || r->len > TDM_XPOLICY_MAX || r->len % 16)
            break;
        s->msr = *r;
        return 0;
    case TDM_XREC_X86_TSC_INFO:
        if (r->len != 24)
            break;
        s->rec[s->nrec++] = *r;
        return 0;
    case TDM_XREC_HVM_PARAMS:
        if (r->len < 8)
            break;
        n = tdm_get_le32(r->body);
        if (n == 0 || n > TDM_XHVM_PARAMS_MAX || r->len != 8 + n * 16)
            break;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t idx = tdm_get_le64(r->body + 8 + i * 16);
            if (!hvm_param_ok(idx))
                return tdm_errf(err, errlen, "xen state: HVM parameter %llu "
                                "is not one a migration carries",
                                (unsigned long long)idx);
        }
        s->rec[s->nrec++] = *r;
        return 0;
    case TDM_XREC_HVM_CONTEXT:
        if (r->len == 0 || r->len > TDM_XHVM_CTX_MAX)
            break;
        s->rec[s->nrec++] = *r;
        return 0;
    default:
        return tdm_errf(err, errlen, "xen state: unknown record type 0x%x",
                        r->type);
    }
    return tdm_errf(err, errlen, "xen state: %s record of %u bytes is "
                    "malformed", name, r->len);
}

int tdm_xstate_decode(const uint8_t *p, size_t len, struct tdm_xstate *s,
                      char *err, size_t errlen)
{
    uint32_t seen = 0;      /* bit per record kind: each at most once */
    size_t off = TDM_XSTATE_HDR;
    bool full;

    memset(s, 0, sizeof(*s));
    if (len < TDM_XSTATE_HDR || tdm_get_le32(p) != TDM_XSTATE_MAGIC)
        return tdm_errf(err, errlen, "xen state: not a xen driver state "
                        "(%zu bytes)", len);
    if (tdm_get_le16(p + 4) != TDM_XSTATE_VERSION)
        return tdm_errf(err, errlen, "xen state: version %u, expected %u",
                        tdm_get_le16(p + 4), TDM_XSTATE_VERSION);
    s->flags = tdm_get_le16(p + 6);
    if (s->flags & ~(TDM_XSTATE_FULL | TDM_XSTATE_COOP))
        return tdm_errf(err, errlen, "xen state: unknown flags 0x%x",
                        s->flags);
    if (tdm_get_le32(p + 8) != len || tdm_get_le32(p + 12))
        return tdm_errf(err, errlen, "xen state: header says %u bytes, "
                        "got %zu", tdm_get_le32(p + 8), len);
    full = s->flags & TDM_XSTATE_FULL;
    while (off < len) {
        struct tdm_xstate_rec r;
        size_t padded;
        unsigned bit;

        if (len - off < 8)
            return tdm_errf(err, errlen, "xen state: truncated record "
                            "header at %zu", off);
        r.type = tdm_get_le32(p + off);
        r.len = tdm_get_le32(p + off + 4);
        padded = pad8(r.len);
        if (padded > len - off - 8)
            return tdm_errf(err, errlen, "xen state: record 0x%x of %u "
                            "bytes at %zu overruns the blob", r.type, r.len,
                            off);
        r.body = p + off + 8;
        for (size_t i = r.len; i < padded; i++)
            if (r.body[i])
                return tdm_errf(err, errlen, "xen state: record 0x%x: "
                                "padding not zero", r.type);
        bit = r.type & 0xff;    /* distinct for every known type */
        if (rec_name(r.type) && (seen & (1u << (bit % 32))))
            return tdm_errf(err, errlen, "xen state: two %s records",
                            rec_name(r.type));
        seen |= 1u << (bit % 32);
        if (!full && (r.type == TDM_XREC_TDM_DOMCONFIG ||
                      r.type == TDM_XREC_X86_CPUID_POLICY ||
                      r.type == TDM_XREC_X86_MSR_POLICY))
            return tdm_errf(err, errlen, "xen state: %s outside a full "
                            "epoch", rec_name(r.type));
        if (check_rec(&r, s, err, errlen) < 0)
            return -1;
        off += 8 + padded;
    }
    if (!(seen & (1u << (TDM_XREC_HVM_CONTEXT & 0xff))))
        return tdm_errf(err, errlen, "xen state: no HVM_CONTEXT record");
    if (full && !s->config)
        return tdm_errf(err, errlen, "xen state: a full epoch without the "
                        "domain configuration");
    if (full && s->slot_count && s->slot_first != 0)
        return tdm_errf(err, errlen, "xen state: a full epoch's slots start "
                        "at %u, not 0", s->slot_first);
    return 0;
}

/* ---- slots ---- */

void tdm_xslots_init(struct tdm_xslots *s)
{
    memset(s, 0, sizeof(*s));
}

int tdm_xslots_alloc(struct tdm_xslots *s, uint64_t nframes, uint32_t cap)
{
    tdm_xslots_dispose(s);
    if (nframes == 0 || nframes > TDM_XPFN_LIMIT || cap == 0 ||
        nframes > SIZE_MAX / sizeof(uint32_t))
        return -1;
    s->nframes = nframes;
    s->cap = cap;
    s->slot_of = tdm_malloc((size_t)nframes * sizeof(*s->slot_of));
    s->pfn_of = tdm_calloc(cap, sizeof(*s->pfn_of));
    tdm_xslots_reset(s);
    return 0;
}

void tdm_xslots_dispose(struct tdm_xslots *s)
{
    free(s->slot_of);
    free(s->pfn_of);
    tdm_xslots_init(s);
}

void tdm_xslots_reset(struct tdm_xslots *s)
{
    memset(s->slot_of, 0xff, (size_t)s->nframes * sizeof(*s->slot_of));
    s->n = s->sent = 0;
}

int tdm_xslots_get(struct tdm_xslots *s, uint64_t pfn, uint32_t *slot_r)
{
    if (pfn >= s->nframes)
        return -1;
    if (s->slot_of[pfn] == TDM_XSLOT_NONE) {
        if (s->n == s->cap)
            return -1;
        s->slot_of[pfn] = s->n;
        s->pfn_of[s->n++] = pfn;
    }
    *slot_r = s->slot_of[pfn];
    return 0;
}

void tdm_xslots_put_new(struct tdm_xslots *s, struct tdm_xbuf *b)
{
    uint32_t n = s->n - s->sent;
    uint8_t *p;

    if (!n)
        return;
    p = tdm_xbuf_grow(b, 8 + 8 + (size_t)n * 8);
    tdm_put_le32(p, TDM_XREC_TDM_SLOTS);
    tdm_put_le32(p + 4, 8 + n * 8);
    tdm_put_le32(p + 8, s->sent);
    tdm_put_le32(p + 12, n);
    for (uint32_t i = 0; i < n; i++)
        tdm_put_le64(p + 16 + (size_t)i * 8, s->pfn_of[s->sent + i]);
    s->sent = s->n;
}

/* ---- bitmaps ---- */

size_t tdm_xbm_collect(const unsigned long *bm, uint64_t nbits, uint64_t *pos,
                       uint64_t *out, size_t max)
{
    const uint64_t w = 8 * sizeof(unsigned long);
    uint64_t i = *pos;
    size_t n = 0;

    while (i < nbits && n < max) {
        unsigned long word = bm[i / w] >> (i % w);

        if (!word) {
            i = (i / w + 1) * w;
            continue;
        }
        i += (uint64_t)__builtin_ctzl(word);
        if (i >= nbits)
            break;
        out[n++] = i++;
    }
    *pos = TDM_MIN(i, nbits);
    return n;
}
