/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The replication wire format (docs/protocol.md).
 *
 * A stream of frames over TCP. Each frame is a 24-byte header followed by
 * its payload; all integers little-endian:
 *
 *     0  u32 magic     "TDM1" (0x314d4454)
 *     4  u16 version   TDM_PROTO_VERSION
 *     6  u16 type      enum tdm_msg
 *     8  u32 length    payload bytes, <= TDM_FRAME_MAX
 *    12  u32 crc       CRC32C of bytes 0..11, 16..23 and the payload
 *    16  u64 epoch     the epoch the frame belongs to (0 if none)
 *
 * Every frame is checked (magic, version, type, length, CRC) before any of
 * it is used; a frame that fails is an error for the whole connection.
 */
#ifndef TDM_PROTO_H
#define TDM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define TDM_PROTO_MAGIC 0x314d4454u
#define TDM_PROTO_VERSION 1
#define TDM_HDR_SIZE 24
#define TDM_FRAME_MAX (4u << 20)            /* payload bytes */
#define TDM_PAGES_PER_FRAME 256u            /* 1 MiB of pages per frame */
#define TDM_NAME_MAX 64
#define TDM_DRIVER_NAME_MAX 16
#define TDM_HELLO_CONFIG_MAX (64u << 10)
#define TDM_TEXT_MAX 512

/* Message types. Numbers are explicit and never reused: a retired type
 * keeps its number reserved. */
enum tdm_msg {
    TDM_MSG_HELLO = 1,        /* primary -> backup: who I am, what I protect */
    TDM_MSG_HELLO_REPLY = 2,  /* backup -> primary: accepted */
    TDM_MSG_HEARTBEAT = 3,    /* both ways */
    TDM_MSG_EPOCH_BEGIN = 4,  /* primary -> backup */
    TDM_MSG_PAGES = 5,        /* primary -> backup: dirty pages */
    TDM_MSG_DRIVER = 6,       /* primary -> backup: opaque driver state */
    TDM_MSG_EPOCH_END = 7,    /* primary -> backup: epoch complete */
    TDM_MSG_ACK = 8,          /* backup -> primary: epoch applied */
    TDM_MSG_GOODBYE = 9,      /* primary -> backup: protection ended, drop */
    TDM_MSG_HANDOVER = 10,    /* primary -> backup: planned switch, activate */
    TDM_MSG_ERROR = 11,       /* either way: fatal error, then close */
    TDM_MSG_DISK = 12,        /* primary -> backup: one disk change, a
                                 tdm-blkrep.h record; never inside an epoch */
    TDM_MSG_DISK_INFO = 13,   /* primary -> backup: the disk and how it is
                                 brought in sync (struct tdm_disk_info) */
    TDM_MSG_MAX_ = 14,
};

const char *tdm_msg_name(uint16_t type);

/* A decoded frame; payload points into the caller's buffer. */
struct tdm_frame {
    uint16_t type;
    uint64_t epoch;
    uint32_t len;
    const uint8_t *payload;
};

enum tdm_dec {
    TDM_DEC_OK = 0,     /* a frame was decoded */
    TDM_DEC_NEED = 1,   /* more bytes are needed */
    TDM_DEC_ERR = -1,   /* the stream is bad: err says why */
};

/* Decode the frame at the start of buf. On TDM_DEC_OK, *used_r is the frame
 * size; on TDM_DEC_NEED, *used_r is the total size needed if known (the
 * header was complete), else TDM_HDR_SIZE. */
enum tdm_dec tdm_frame_decode(const uint8_t *buf, size_t len,
                              struct tdm_frame *f, size_t *used_r, char *err,
                              size_t errlen);

/* Fill a header for a payload given as iovecs (may be 0 of them). Returns
 * the payload length, or -1 if it exceeds TDM_FRAME_MAX. */
long tdm_frame_hdr(uint8_t hdr[TDM_HDR_SIZE], uint16_t type, uint64_t epoch,
                   const struct iovec *iov, int iovcnt);

/* ---- payloads ---- */

#define TDM_HELLO_FIXED 128
struct tdm_hello {
    char name[TDM_NAME_MAX];            /* NUL-terminated, valid domain name */
    uint8_t uuid[16];                   /* the domain's identity */
    char driver[TDM_DRIVER_NAME_MAX];   /* NUL-terminated */
    uint64_t npages;                    /* guest pages */
    uint32_t page_size;                 /* 4096 */
    uint32_t interval_ms, heartbeat_ms, timeout_ms;
    uint64_t generation;                /* bumps at every takeover */
    const uint8_t *config;              /* domain config text (not NUL-t.) */
    uint32_t config_len;
};
/* Encodes into out (room for TDM_HELLO_FIXED + config_len); returns size. */
size_t tdm_hello_encode(const struct tdm_hello *h, uint8_t *out);
int tdm_hello_decode(const uint8_t *p, size_t len, struct tdm_hello *h,
                     char *err, size_t errlen);

#define TDM_HELLO_REPLY_SIZE 16
struct tdm_hello_reply {
    uint64_t last_epoch;                /* last epoch the backup applied */
    uint64_t generation;
};
void tdm_hello_reply_encode(const struct tdm_hello_reply *r, uint8_t *out);
int tdm_hello_reply_decode(const uint8_t *p, size_t len,
                           struct tdm_hello_reply *r, char *err,
                           size_t errlen);

#define TDM_HEARTBEAT_SIZE 16
struct tdm_heartbeat {
    uint64_t sent_ns;                   /* sender's monotonic clock */
    uint64_t last_epoch;                /* sender's latest epoch */
};
void tdm_heartbeat_encode(const struct tdm_heartbeat *h, uint8_t *out);
int tdm_heartbeat_decode(const uint8_t *p, size_t len, struct tdm_heartbeat *h,
                         char *err, size_t errlen);

/* DISK_INFO, sent once after HELLO_REPLY when the domain has a disk and
 * before any DISK frame. base_epoch 0: a full sync follows (every byte of
 * the disk, as WRITE records of epoch sync_epoch); otherwise a resync of
 * what changed after base_epoch, which must be the backup's last applied
 * epoch. The backup's disk matches the replica's memory from the commit of
 * sync_epoch on. */
#define TDM_DISK_INFO_SIZE 24
struct tdm_disk_info {
    uint64_t size;                      /* bytes, a multiple of 512, >= 512 */
    uint64_t base_epoch;
    uint64_t sync_epoch;                /* > base_epoch */
};
void tdm_disk_info_encode(const struct tdm_disk_info *d, uint8_t *out);
int tdm_disk_info_decode(const uint8_t *p, size_t len,
                         struct tdm_disk_info *d, char *err, size_t errlen);

#define TDM_EPOCH_BEGIN_SIZE 16
struct tdm_epoch_begin {
    uint64_t npages;                    /* pages the epoch will carry */
    uint64_t state_len;                 /* driver state bytes */
};
void tdm_epoch_begin_encode(const struct tdm_epoch_begin *b, uint8_t *out);
int tdm_epoch_begin_decode(const uint8_t *p, size_t len,
                           struct tdm_epoch_begin *b, char *err,
                           size_t errlen);

/* PAGES: u32 count, u32 reserved (0), u64 pfn[count], then count pages. */
#define TDM_PAGES_HDR 8
struct tdm_pages {
    uint32_t count;
    const uint8_t *pfns;                /* count little-endian u64 */
    const uint8_t *data;                /* count * 4096 bytes */
};
static inline size_t tdm_pages_size(uint32_t count)
{
    return TDM_PAGES_HDR + (size_t)count * (8 + 4096);
}
void tdm_pages_hdr_encode(uint32_t count, uint8_t out[TDM_PAGES_HDR]);
int tdm_pages_decode(const uint8_t *p, size_t len, struct tdm_pages *pg,
                     char *err, size_t errlen);
uint64_t tdm_pages_pfn(const struct tdm_pages *pg, uint32_t i);

#define TDM_EPOCH_END_SIZE 32
struct tdm_epoch_end {
    uint64_t npages;                    /* must match what was received */
    uint64_t state_len;
    uint32_t frames;                    /* PAGES + DRIVER frames sent */
    uint32_t reserved;
    uint64_t capture_ns;                /* primary's pause, for metrics */
};
void tdm_epoch_end_encode(const struct tdm_epoch_end *e, uint8_t *out);
int tdm_epoch_end_decode(const uint8_t *p, size_t len, struct tdm_epoch_end *e,
                         char *err, size_t errlen);

/* ERROR and GOODBYE: u32 code, then UTF-8 text (not NUL-terminated). */
enum tdm_err_code {
    TDM_ERR_PROTOCOL = 1,     /* malformed or unexpected frame */
    TDM_ERR_VERSION = 2,      /* unsupported protocol version */
    TDM_ERR_DOMAIN = 3,       /* another domain holds that name here */
    TDM_ERR_REFUSED = 4,      /* this host does not accept replicas */
    TDM_ERR_RESOURCE = 5,     /* cannot create the replica */
    TDM_ERR_STALE = 6,        /* a newer generation of the domain exists */
    TDM_ERR_SHUTDOWN = 7,     /* the peer is going away */
};
struct tdm_text_msg {
    uint32_t code;
    char text[TDM_TEXT_MAX];            /* NUL-terminated, control chars
                                           replaced */
};
size_t tdm_text_msg_encode(uint32_t code, const char *text, uint8_t *out,
                           size_t outlen);
int tdm_text_msg_decode(const uint8_t *p, size_t len, struct tdm_text_msg *m,
                        char *err, size_t errlen);

#endif
