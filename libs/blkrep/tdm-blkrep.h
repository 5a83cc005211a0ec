/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Disk replication (issue 5): the write log stream from the primary's
 * nbdkit plugin (nbdkit-tandem.c) to tandemd, and the backup's epoch write
 * log that holds each epoch's writes until its memory checkpoint commits.
 *
 * The log socket carries, plugin -> peer, records and acks; peer -> plugin,
 * cuts. All integers little-endian.
 *
 * Record: a 32-byte header, then `len` data bytes for WRITE only.
 *
 *     0  u32 magic     "TDB1" (0x31424454)
 *     4  u16 version   TDM_BLK_VERSION
 *     6  u16 kind      enum tdm_blk_kind
 *     8  u64 epoch     >= 1: the epoch the operation belongs to
 *    16  u64 offset    byte offset in the image (0 for FLUSH)
 *    24  u32 len       bytes affected: 1..TDM_BLK_WRITE_MAX for WRITE,
 *                      >= 1 for TRIM and ZERO, 0 for FLUSH
 *    28  u32 crc       CRC32C of bytes 0..27, then the data
 *
 * Cut (peer -> plugin): u32 magic "TDBC", u64 new_epoch. Every write the
 * plugin acknowledged before reading the cut belongs to an older epoch,
 * every later one to new_epoch or newer. The plugin answers with an ack
 * (u32 magic "TDBA", u64 new_epoch) written after every record of the older
 * epochs, so a peer that has read the ack holds those epochs whole.
 *
 * Mode (peer -> plugin): u32 magic "TDBM", u64 mode (enum tdm_blk_mode).
 * In TDM_BLK_MODE_DIRTY the plugin sends, for each write, trim or zero, a
 * DIRTY record (the range, no data) and nothing for a flush: what a peer
 * without a backup needs to know which regions changed, for a fraction of
 * the bytes. The plugin answers with u32 magic "TDBN", u64 mode, written
 * after every record made in the old mode.
 */
#ifndef TDM_BLKREP_H
#define TDM_BLKREP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TDM_BLK_MAGIC 0x31424454u          /* "TDB1" */
#define TDM_BLK_CUT_MAGIC 0x43424454u      /* "TDBC" */
#define TDM_BLK_ACK_MAGIC 0x41424454u      /* "TDBA" */
#define TDM_BLK_MODE_MAGIC 0x4d424454u     /* "TDBM" */
#define TDM_BLK_MODE_ACK_MAGIC 0x4e424454u /* "TDBN" */
#define TDM_BLK_VERSION 2
#define TDM_BLK_HDR_SIZE 32
#define TDM_BLK_CTL_SIZE 12                /* a cut or an ack */
/* nbdkit's own limit on one request (64 MiB). */
#define TDM_BLK_WRITE_MAX (64u << 20)

/* Numbers are explicit and never reused. */
enum tdm_blk_kind {
    TDM_BLK_WRITE = 1,          /* data follows */
    TDM_BLK_TRIM = 2,           /* the range reads as zeroes afterwards */
    TDM_BLK_ZERO = 3,
    TDM_BLK_FLUSH = 4,          /* make everything before it durable */
    TDM_BLK_DIRTY = 5,          /* the range changed (TDM_BLK_MODE_DIRTY):
                                   the plugin's peer only, never a backup */
    TDM_BLK_KIND_MAX_ = 6,
};

enum tdm_blk_mode {
    TDM_BLK_MODE_FULL = 1,      /* every change with its data (default) */
    TDM_BLK_MODE_DIRTY = 2,     /* only which ranges changed */
};

const char *tdm_blk_kind_name(uint16_t kind);

/* One operation; data points into the caller's buffer (WRITE only, NULL
 * otherwise). */
struct tdm_blk_rec {
    uint16_t kind;
    uint64_t epoch;
    uint64_t offset;
    uint32_t len;
    const uint8_t *data;
};

enum tdm_blk_dec {
    TDM_BLK_DEC_OK = 0,         /* a record was decoded */
    TDM_BLK_DEC_NEED = 1,       /* more bytes are needed */
    TDM_BLK_DEC_ERR = -1,       /* the stream is bad: err says why */
};

/* The rules every record obeys (kind, epoch, length, offset + len
 * overflow); the image size is the write log's to check. Returns 0 or -1. */
int tdm_blk_rec_check(const struct tdm_blk_rec *r, char *err, size_t errlen);

/* Bytes of data following a record's header. */
static inline size_t tdm_blk_rec_data_len(const struct tdm_blk_rec *r)
{
    return r->kind == TDM_BLK_WRITE ? r->len : 0;
}

/* Fill the header for r (the data is not copied, only checksummed).
 * Returns 0, or -1 if r breaks a rule. */
int tdm_blk_rec_hdr(uint8_t hdr[TDM_BLK_HDR_SIZE], const struct tdm_blk_rec *r,
                    char *err, size_t errlen);

/* Decode the record at the start of buf. On TDM_BLK_DEC_OK *used_r is the
 * record's size; on TDM_BLK_DEC_NEED the total size needed if the header
 * was complete, else TDM_BLK_HDR_SIZE. r is written only on OK. */
enum tdm_blk_dec tdm_blk_rec_decode(const uint8_t *buf, size_t len,
                                    struct tdm_blk_rec *r, size_t *used_r,
                                    char *err, size_t errlen);

/* Cut and ack: epoch must be >= 1. Decoders take exactly TDM_BLK_CTL_SIZE
 * bytes and return 0 or -1. */
void tdm_blk_cut_encode(uint64_t epoch, uint8_t out[TDM_BLK_CTL_SIZE]);
int tdm_blk_cut_decode(const uint8_t *p, uint64_t *epoch_r, char *err,
                       size_t errlen);
void tdm_blk_ack_encode(uint64_t epoch, uint8_t out[TDM_BLK_CTL_SIZE]);
int tdm_blk_ack_decode(const uint8_t *p, uint64_t *epoch_r, char *err,
                       size_t errlen);
/* Mode and its ack: mode is an enum tdm_blk_mode. */
void tdm_blk_mode_encode(uint32_t magic, uint64_t mode,
                         uint8_t out[TDM_BLK_CTL_SIZE]);
int tdm_blk_mode_decode(uint32_t magic, const uint8_t *p, uint64_t *mode_r,
                        char *err, size_t errlen);

/* ---- the backup's epoch write log ----
 *
 * Records arrive in stream order, epochs never going backwards. They are
 * held in memory until commit(epoch) applies every record of the epochs
 * <= epoch, in arrival order, to the image with pwrite (TRIM and ZERO
 * write zeroes, FLUSH is fdatasync). drop_after(epoch) forgets every record
 * of a later epoch: a torn epoch, or the primary failing. Nothing but
 * commit touches the image.
 *
 * Held memory is bounded: a record costs its data bytes plus
 * TDM_WLOG_REC_COST, and add refuses one that would take the total past
 * the limit given to create.
 */
#define TDM_WLOG_REC_COST 64u

struct tdm_wlog_rec;

struct tdm_wlog_stats {
    uint64_t held_records, held_bytes;   /* bytes: data only */
    uint64_t applied_records, applied_bytes;
    uint64_t dropped_records, dropped_bytes;
    uint64_t flushes;                    /* fdatasyncs done */
};

struct tdm_wlog {
    int fd;                              /* -1: not created */
    uint64_t image_size;
    uint64_t limit;                      /* bytes, as TDM_WLOG_REC_COST says */
    uint64_t cost;                       /* held, the same way */
    uint64_t committed;                  /* last committed epoch, 0: none */
    uint64_t last;                       /* highest epoch held or committed */
    struct tdm_wlog_rec *head, *tail;
    struct tdm_wlog_stats st;
};

void tdm_wlog_init(struct tdm_wlog *w);
/* Over an image of image_size bytes open read-write on fd (not owned: the
 * caller closes it after dispose). committed is the epoch the image holds
 * (0 for a fresh one). Returns 0, or -1 with err. */
int tdm_wlog_create(struct tdm_wlog *w, int fd, uint64_t image_size,
                    uint64_t limit, uint64_t committed, char *err,
                    size_t errlen);
void tdm_wlog_dispose(struct tdm_wlog *w);        /* idempotent */

/* Hold one record (its data is copied). On error nothing changes. */
int tdm_wlog_add(struct tdm_wlog *w, uint64_t epoch, uint16_t kind,
                 uint64_t offset, uint32_t len, const void *data, char *err,
                 size_t errlen);
static inline int tdm_wlog_add_rec(struct tdm_wlog *w,
                                   const struct tdm_blk_rec *r, char *err,
                                   size_t errlen)
{
    return tdm_wlog_add(w, r->epoch, r->kind, r->offset, r->len, r->data, err,
                        errlen);
}

/* Apply and free every record of the epochs <= epoch; the log's committed
 * epoch becomes epoch (an epoch without records commits too). epoch below
 * the committed one is an error that changes nothing. If the image fails
 * (pwrite, fdatasync), the records applied so far are gone, the failing one
 * and the rest are still held, the committed epoch stays, and -1 is
 * returned: a retry applies them again in order. */
int tdm_wlog_commit(struct tdm_wlog *w, uint64_t epoch, char *err,
                    size_t errlen);

/* Hand every record of the epochs <= epoch to `to` (initialised here over
 * the same image, without a limit), to be committed there, by another
 * thread if need be: `from` counts them as committed, without touching the
 * image. epoch below the committed one is an error that changes nothing. */
int tdm_wlog_move(struct tdm_wlog *from, uint64_t epoch, struct tdm_wlog *to,
                  char *err, size_t errlen);

/* Forget every record of the epochs > epoch; epoch must not be below the
 * committed one (those are in the image). Afterwards the epochs after it
 * may be received again. */
int tdm_wlog_drop_after(struct tdm_wlog *w, uint64_t epoch, char *err,
                        size_t errlen);

static inline uint64_t tdm_wlog_committed(const struct tdm_wlog *w)
{
    return w->committed;
}
void tdm_wlog_stats(const struct tdm_wlog *w, struct tdm_wlog_stats *st_r);

#endif
