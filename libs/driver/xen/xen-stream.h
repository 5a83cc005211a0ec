/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The pure parts of the xen driver: no Xen library, no I/O, unit-tested
 * without a hypervisor (tests/unit/test-xen-stream.c).
 *
 * - Xen's migration stream v2 as the backup writes it into Xen's stock
 *   restore (libxl_domain_create_restore with a Remus checkpointed stream):
 *   the libxl header (docs/specs/libxl-migration-stream.pandoc), the libxc
 *   image and domain headers and records (libxc-migration-stream.pandoc).
 * - The driver's state blob: what an epoch carries besides its pages. It is
 *   itself a list of records in libxc's framing (TSC_INFO, HVM_PARAMS,
 *   HVM_CONTEXT, and on a full epoch the CPU policy), plus two records of
 *   tandem's own: the slot map and the guest's libxl configuration.
 * - The slot map. Xen's physmap has holes (a 128 MiB PVH guest has frames
 *   near 4 GiB), the engine's staging wants page numbers below the page
 *   count: each guest frame gets a dense slot number the first time it is
 *   staged, and the state blob tells the backup which frame a new slot is.
 * - Dirty bitmap to frame lists.
 */
#ifndef TDM_XEN_STREAM_H
#define TDM_XEN_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* libxc record types (libxc-migration-stream.pandoc) */
#define TDM_XREC_END              0x00000000u
#define TDM_XREC_PAGE_DATA        0x00000001u
#define TDM_XREC_X86_TSC_INFO     0x00000008u
#define TDM_XREC_HVM_CONTEXT      0x00000009u
#define TDM_XREC_HVM_PARAMS       0x0000000au
#define TDM_XREC_CHECKPOINT       0x0000000eu
#define TDM_XREC_STATIC_DATA_END  0x00000010u
#define TDM_XREC_X86_CPUID_POLICY 0x00000011u
#define TDM_XREC_X86_MSR_POLICY   0x00000012u
/* tandem's own (optional bit set): in the state blob only, never given to
 * Xen */
#define TDM_XREC_TDM_SLOTS        0x80746401u
#define TDM_XREC_TDM_DOMCONFIG    0x80746402u

/* libxl record types (libxl-migration-stream.pandoc) */
#define TDM_XLREC_LIBXC_CONTEXT   0x00000001u
#define TDM_XLREC_CHECKPOINT_END  0x00000004u

#define TDM_XPAGE_SIZE 4096u
/* Frames per PAGE_DATA record, as libxc's own save writes them. */
#define TDM_XPAGE_BATCH 1024u
/* Guest frame numbers are below it (52-bit physical addresses). */
#define TDM_XPFN_LIMIT (1ull << 40)
/* Size limits of the state blob's parts (Xen's are far below these). */
#define TDM_XHVM_CTX_MAX (1u << 20)
#define TDM_XPOLICY_MAX (64u << 10)
#define TDM_XCONFIG_MAX (1u << 20)
#define TDM_XHVM_PARAMS_MAX 32u

/* ---- a growable byte buffer ---- */

struct tdm_xbuf {
    uint8_t *p;
    size_t len, cap;
};

void tdm_xbuf_init(struct tdm_xbuf *b);
void tdm_xbuf_dispose(struct tdm_xbuf *b);      /* idempotent */
/* n more bytes at the end, zeroed. */
uint8_t *tdm_xbuf_grow(struct tdm_xbuf *b, size_t n);
/* Room for n more bytes (len unchanged). */
void tdm_xbuf_reserve(struct tdm_xbuf *b, size_t n);
void tdm_xbuf_put(struct tdm_xbuf *b, const void *p, size_t n);

/* ---- the stream the backup writes into Xen's restore ---- */

/* One record: type, length, body, zero padding to 8 bytes. libxl's and
 * libxc's records share this framing. */
void tdm_xrec_put(struct tdm_xbuf *b, uint32_t type, const void *body,
                  uint32_t len);
/* The start of a checkpointed stream of an x86 HVM/PVH domain: the libxl
 * header, libxl's LIBXC_CONTEXT record, libxc's image header (version 3)
 * and domain header. */
void tdm_xstream_head(struct tdm_xbuf *b, uint16_t xen_major,
                      uint16_t xen_minor);
/* A PAGE_DATA record of n frames (1..TDM_XPAGE_BATCH): frame pfns[i] holds
 * the 4096 bytes at data + i * 4096. -1 on a bad count or frame number. */
int tdm_xrec_page_data(struct tdm_xbuf *b, const uint64_t *pfns,
                       const uint8_t *data, uint32_t n);
/* The same record without its page data: the header and the pfns, for a
 * writer that sends the n pages (n * TDM_XPAGE_SIZE bytes, straight from
 * where they are) right after it. Returns -1 on the rules above. */
int tdm_xrec_page_data_head(struct tdm_xbuf *b, const uint64_t *pfns,
                            uint32_t n);
/* The end of one checkpoint: libxc CHECKPOINT, then libxl CHECKPOINT_END
 * (libxc hands the stream to libxl at a CHECKPOINT). */
void tdm_xstream_checkpoint(struct tdm_xbuf *b);
/* Bytes of the PAGE_DATA records and the checkpoint end for n pages: what
 * an epoch adds besides its state records. */
size_t tdm_xstream_epoch_size(size_t npages);

/* ---- the state blob (tdm_staging's state) ----
 *
 *   0  u32 magic "TDMX"   4 u16 version (1)   6 u16 flags
 *   8  u32 total length  12 u32 reserved (0)
 *  16  records, in libxc's framing, little-endian:
 *      TDM_SLOTS      u32 first slot, u32 count, u64 frame[count]: the
 *                     frames of the slots new in this epoch
 *      TDM_DOMCONFIG  the guest's libxl configuration (JSON)   [full]
 *      X86_CPUID_POLICY, X86_MSR_POLICY                        [full]
 *      X86_TSC_INFO, HVM_PARAMS, HVM_CONTEXT                   [every epoch]
 *
 * Checked whole before use: known types only, each at most once, sizes
 * as Xen defines them, HVM parameters from the list libxc's own save
 * sends, zero padding, lengths inside the blob.
 */
#define TDM_XSTATE_MAGIC 0x584d4454u    /* "TDMX" */
#define TDM_XSTATE_VERSION 1
#define TDM_XSTATE_HDR 16u
/* The first epoch after log-dirty was enabled: every frame, the static
 * records and the configuration; the slot map starts again at 0. */
#define TDM_XSTATE_FULL 0x1
/* The guest suspended itself for this epoch (else Xen paused it). */
#define TDM_XSTATE_COOP 0x2

struct tdm_xstate_rec {
    uint32_t type, len;
    const uint8_t *body;
};

struct tdm_xstate {
    uint16_t flags;
    uint32_t slot_first, slot_count;
    const uint8_t *slot_pfns;           /* slot_count little-endian u64 */
    const uint8_t *config;              /* not NUL-terminated */
    uint32_t config_len;
    struct tdm_xstate_rec cpuid, msr;   /* len 0: absent */
    /* TSC_INFO, HVM_PARAMS, HVM_CONTEXT in blob order: for the stream */
    struct tdm_xstate_rec rec[3];
    unsigned nrec;
};

void tdm_xstate_begin(struct tdm_xbuf *b, uint16_t flags);
/* Writes the total length into the header. */
void tdm_xstate_finish(struct tdm_xbuf *b);
int tdm_xstate_decode(const uint8_t *p, size_t len, struct tdm_xstate *s,
                      char *err, size_t errlen);
uint64_t tdm_xstate_slot_pfn(const struct tdm_xstate *s, uint32_t i);

/* ---- the slot map (primary) ---- */

#define TDM_XSLOT_NONE UINT32_MAX

struct tdm_xslots {
    uint64_t nframes;       /* frames below it can get a slot */
    uint32_t *slot_of;      /* [nframes] */
    uint64_t *pfn_of;       /* [cap] */
    uint32_t n, cap;
    uint32_t sent;          /* slots below it are in a blob already */
};

void tdm_xslots_init(struct tdm_xslots *s);
/* Room for cap slots of frames below nframes. -1 on bad sizes. */
int tdm_xslots_alloc(struct tdm_xslots *s, uint64_t nframes, uint32_t cap);
void tdm_xslots_dispose(struct tdm_xslots *s);  /* idempotent */
/* Forget every slot (a new backup starts from nothing). */
void tdm_xslots_reset(struct tdm_xslots *s);
/* The slot of frame pfn, the next free one if it has none yet. -1 if pfn
 * is not below nframes or every slot is taken. */
int tdm_xslots_get(struct tdm_xslots *s, uint64_t pfn, uint32_t *slot_r);
/* A TDM_SLOTS record of the slots taken since the last call, if any. */
void tdm_xslots_put_new(struct tdm_xslots *s, struct tdm_xbuf *b);

/* ---- dirty bitmaps ---- */

/* The set bits of a bitmap of nbits bits in unsigned long words (as Xen
 * fills it), from *pos on: up to max of them into out; *pos moves past
 * the last one returned (to nbits at the end). Returns how many. */
size_t tdm_xbm_collect(const unsigned long *bm, uint64_t nbits, uint64_t *pos,
                       uint64_t *out, size_t max);

#endif
