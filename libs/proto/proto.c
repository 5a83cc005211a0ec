/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tdm-proto.h"
#include "tdm-util.h"


const char *tdm_msg_name(uint16_t type)
{
    static const char *const names[TDM_MSG_MAX_] = {
        [TDM_MSG_HELLO] = "HELLO",
        [TDM_MSG_HELLO_REPLY] = "HELLO_REPLY",
        [TDM_MSG_HEARTBEAT] = "HEARTBEAT",
        [TDM_MSG_EPOCH_BEGIN] = "EPOCH_BEGIN",
        [TDM_MSG_PAGES] = "PAGES",
        [TDM_MSG_DRIVER] = "DRIVER",
        [TDM_MSG_EPOCH_END] = "EPOCH_END",
        [TDM_MSG_ACK] = "ACK",
        [TDM_MSG_GOODBYE] = "GOODBYE",
        [TDM_MSG_HANDOVER] = "HANDOVER",
        [TDM_MSG_ERROR] = "ERROR",
        [TDM_MSG_DISK] = "DISK",
        [TDM_MSG_DISK_INFO] = "DISK_INFO",
    };
    return type < TDM_MSG_MAX_ && names[type] ? names[type] : "UNKNOWN";
}

static uint32_t hdr_crc(const uint8_t *hdr)
{
    uint32_t crc = tdm_crc32c(0, hdr, 12);
    return tdm_crc32c(crc, hdr + 16, 8);
}

enum tdm_dec tdm_frame_decode(const uint8_t *buf, size_t len,
                              struct tdm_frame *f, size_t *used_r, char *err,
                              size_t errlen)
{
    uint32_t magic, plen, crc;
    uint16_t version, type;

    *used_r = TDM_HDR_SIZE;
    if (len < TDM_HDR_SIZE)
        return TDM_DEC_NEED;
    magic = tdm_get_le32(buf);
    version = tdm_get_le16(buf + 4);
    type = tdm_get_le16(buf + 6);
    plen = tdm_get_le32(buf + 8);
    if (magic != TDM_PROTO_MAGIC) {
        tdm_errf(err, errlen, "bad magic 0x%08x: not a tandem peer", magic);
        return TDM_DEC_ERR;
    }
    if (version != TDM_PROTO_VERSION) {
        tdm_errf(err, errlen, "peer speaks protocol version %u, this side %u",
             version, TDM_PROTO_VERSION);
        return TDM_DEC_ERR;
    }
    if (type == 0 || type >= TDM_MSG_MAX_) {
        tdm_errf(err, errlen, "unknown message type %u", type);
        return TDM_DEC_ERR;
    }
    if (plen > TDM_FRAME_MAX) {
        tdm_errf(err, errlen, "%s frame of %u bytes exceeds %u", tdm_msg_name(type),
             plen, TDM_FRAME_MAX);
        return TDM_DEC_ERR;
    }
    *used_r = TDM_HDR_SIZE + (size_t)plen;
    if (len < *used_r)
        return TDM_DEC_NEED;
    crc = tdm_crc32c(hdr_crc(buf), buf + TDM_HDR_SIZE, plen);
    if (crc != tdm_get_le32(buf + 12)) {
        tdm_errf(err, errlen, "%s frame (epoch %llu): checksum 0x%08x, expected "
             "0x%08x", tdm_msg_name(type),
             (unsigned long long)tdm_get_le64(buf + 16), crc,
             tdm_get_le32(buf + 12));
        return TDM_DEC_ERR;
    }
    f->type = type;
    f->epoch = tdm_get_le64(buf + 16);
    f->len = plen;
    f->payload = buf + TDM_HDR_SIZE;
    return TDM_DEC_OK;
}

long tdm_frame_hdr(uint8_t hdr[TDM_HDR_SIZE], uint16_t type, uint64_t epoch,
                   const struct iovec *iov, int iovcnt)
{
    size_t total = 0;
    uint32_t crc;

    for (int i = 0; i < iovcnt; i++) {
        total += iov[i].iov_len;
        if (total > TDM_FRAME_MAX)
            return -1;
    }
    tdm_put_le32(hdr, TDM_PROTO_MAGIC);
    tdm_put_le16(hdr + 4, TDM_PROTO_VERSION);
    tdm_put_le16(hdr + 6, type);
    tdm_put_le32(hdr + 8, (uint32_t)total);
    tdm_put_le64(hdr + 16, epoch);
    crc = hdr_crc(hdr);
    for (int i = 0; i < iovcnt; i++)
        crc = tdm_crc32c(crc, iov[i].iov_base, iov[i].iov_len);
    tdm_put_le32(hdr + 12, crc);
    return (long)total;
}

/* ---- HELLO ----
 *   0 name[64]  64 uuid[16]  80 driver[16]  96 u64 npages  104 u32 page_size
 * 108 u32 interval_ms  112 u32 heartbeat_ms  116 u32 timeout_ms
 * 120 u64 generation  128 config text (the rest)
 */
static bool fixed_string_ok(const uint8_t *p, size_t n)
{
    const uint8_t *nul = memchr(p, '\0', n);

    if (!nul || nul == p)
        return false;
    for (const uint8_t *q = nul; q < p + n; q++)
        if (*q)
            return false; /* padding must be zero: one encoding per value */
    return true;
}

size_t tdm_hello_encode(const struct tdm_hello *h, uint8_t *out)
{
    memset(out, 0, TDM_HELLO_FIXED);
    tdm_strlcpy((char *)out, h->name, TDM_NAME_MAX);
    memcpy(out + 64, h->uuid, 16);
    tdm_strlcpy((char *)out + 80, h->driver, TDM_DRIVER_NAME_MAX);
    tdm_put_le64(out + 96, h->npages);
    tdm_put_le32(out + 104, h->page_size);
    tdm_put_le32(out + 108, h->interval_ms);
    tdm_put_le32(out + 112, h->heartbeat_ms);
    tdm_put_le32(out + 116, h->timeout_ms);
    tdm_put_le64(out + 120, h->generation);
    if (h->config_len)
        memcpy(out + TDM_HELLO_FIXED, h->config, h->config_len);
    return TDM_HELLO_FIXED + h->config_len;
}

int tdm_hello_decode(const uint8_t *p, size_t len, struct tdm_hello *h,
                     char *err, size_t errlen)
{
    if (len < TDM_HELLO_FIXED)
        return tdm_errf(err, errlen, "HELLO of %zu bytes, at least %d expected",
                    len, TDM_HELLO_FIXED);
    if (len - TDM_HELLO_FIXED > TDM_HELLO_CONFIG_MAX)
        return tdm_errf(err, errlen, "HELLO config of %zu bytes exceeds %u",
                    len - TDM_HELLO_FIXED, TDM_HELLO_CONFIG_MAX);
    if (!fixed_string_ok(p, TDM_NAME_MAX))
        return tdm_errf(err, errlen, "HELLO: malformed domain name");
    if (!fixed_string_ok(p + 80, TDM_DRIVER_NAME_MAX))
        return tdm_errf(err, errlen, "HELLO: malformed driver name");
    memcpy(h->name, p, TDM_NAME_MAX);
    if (!tdm_valid_name(h->name))
        return tdm_errf(err, errlen, "HELLO: invalid domain name");
    memcpy(h->uuid, p + 64, 16);
    memcpy(h->driver, p + 80, TDM_DRIVER_NAME_MAX);
    h->npages = tdm_get_le64(p + 96);
    h->page_size = tdm_get_le32(p + 104);
    h->interval_ms = tdm_get_le32(p + 108);
    h->heartbeat_ms = tdm_get_le32(p + 112);
    h->timeout_ms = tdm_get_le32(p + 116);
    h->generation = tdm_get_le64(p + 120);
    h->config = p + TDM_HELLO_FIXED;
    h->config_len = (uint32_t)(len - TDM_HELLO_FIXED);
    if (h->page_size != TDM_PAGE_SIZE)
        return tdm_errf(err, errlen, "HELLO: page size %u, this side %u",
                    h->page_size, TDM_PAGE_SIZE);
    if (h->npages == 0 || h->npages > ((uint64_t)1 << 28))
        return tdm_errf(err, errlen, "HELLO: %llu pages is out of range",
                    (unsigned long long)h->npages);
    if (memchr(h->config, '\0', h->config_len))
        return tdm_errf(err, errlen, "HELLO: config text contains NUL");
    return 0;
}

/* ---- fixed-size payloads ---- */

void tdm_hello_reply_encode(const struct tdm_hello_reply *r, uint8_t *out)
{
    tdm_put_le64(out, r->last_epoch);
    tdm_put_le64(out + 8, r->generation);
}

int tdm_hello_reply_decode(const uint8_t *p, size_t len,
                           struct tdm_hello_reply *r, char *err, size_t errlen)
{
    if (len != TDM_HELLO_REPLY_SIZE)
        return tdm_errf(err, errlen, "HELLO_REPLY of %zu bytes, %d expected", len,
                    TDM_HELLO_REPLY_SIZE);
    r->last_epoch = tdm_get_le64(p);
    r->generation = tdm_get_le64(p + 8);
    return 0;
}

void tdm_heartbeat_encode(const struct tdm_heartbeat *h, uint8_t *out)
{
    tdm_put_le64(out, h->sent_ns);
    tdm_put_le64(out + 8, h->last_epoch);
}

int tdm_heartbeat_decode(const uint8_t *p, size_t len, struct tdm_heartbeat *h,
                         char *err, size_t errlen)
{
    if (len != TDM_HEARTBEAT_SIZE)
        return tdm_errf(err, errlen, "HEARTBEAT of %zu bytes, %d expected", len,
                    TDM_HEARTBEAT_SIZE);
    h->sent_ns = tdm_get_le64(p);
    h->last_epoch = tdm_get_le64(p + 8);
    return 0;
}

void tdm_disk_info_encode(const struct tdm_disk_info *d, uint8_t *out)
{
    tdm_put_le64(out, d->size);
    tdm_put_le64(out + 8, d->base_epoch);
    tdm_put_le64(out + 16, d->sync_epoch);
}

int tdm_disk_info_decode(const uint8_t *p, size_t len,
                         struct tdm_disk_info *d, char *err, size_t errlen)
{
    struct tdm_disk_info v;

    if (len != TDM_DISK_INFO_SIZE)
        return tdm_errf(err, errlen, "DISK_INFO of %zu bytes, %d expected",
                        len, TDM_DISK_INFO_SIZE);
    v.size = tdm_get_le64(p);
    v.base_epoch = tdm_get_le64(p + 8);
    v.sync_epoch = tdm_get_le64(p + 16);
    if (v.size < 512 || v.size % 512 || v.size > (1ull << 50))
        return tdm_errf(err, errlen, "DISK_INFO: disk size %llu is not a "
                        "multiple of 512 from 512 to 2^50",
                        (unsigned long long)v.size);
    if (v.sync_epoch <= v.base_epoch)
        return tdm_errf(err, errlen, "DISK_INFO: sync epoch %llu is not after "
                        "base epoch %llu", (unsigned long long)v.sync_epoch,
                        (unsigned long long)v.base_epoch);
    *d = v;
    return 0;
}

void tdm_epoch_begin_encode(const struct tdm_epoch_begin *b, uint8_t *out)
{
    tdm_put_le64(out, b->npages);
    tdm_put_le64(out + 8, b->state_len);
}

int tdm_epoch_begin_decode(const uint8_t *p, size_t len,
                           struct tdm_epoch_begin *b, char *err, size_t errlen)
{
    if (len != TDM_EPOCH_BEGIN_SIZE)
        return tdm_errf(err, errlen, "EPOCH_BEGIN of %zu bytes, %d expected", len,
                    TDM_EPOCH_BEGIN_SIZE);
    b->npages = tdm_get_le64(p);
    b->state_len = tdm_get_le64(p + 8);
    return 0;
}

void tdm_pages_hdr_encode(uint32_t count, uint8_t out[TDM_PAGES_HDR])
{
    tdm_put_le32(out, count);
    tdm_put_le32(out + 4, 0);
}

int tdm_pages_decode(const uint8_t *p, size_t len, struct tdm_pages *pg,
                     char *err, size_t errlen)
{
    uint32_t count;

    if (len < TDM_PAGES_HDR)
        return tdm_errf(err, errlen, "PAGES of %zu bytes is too short", len);
    count = tdm_get_le32(p);
    if (count == 0 || count > TDM_PAGES_PER_FRAME)
        return tdm_errf(err, errlen, "PAGES with %u pages (1..%u allowed)", count,
                    TDM_PAGES_PER_FRAME);
    if (tdm_get_le32(p + 4) != 0)
        return tdm_errf(err, errlen, "PAGES: reserved field is not zero");
    if (len != tdm_pages_size(count))
        return tdm_errf(err, errlen, "PAGES of %zu bytes for %u pages (%zu "
                    "expected)", len, count, tdm_pages_size(count));
    pg->count = count;
    pg->pfns = p + TDM_PAGES_HDR;
    pg->data = p + TDM_PAGES_HDR + (size_t)count * 8;
    return 0;
}

uint64_t tdm_pages_pfn(const struct tdm_pages *pg, uint32_t i)
{
    return tdm_get_le64(pg->pfns + (size_t)i * 8);
}

void tdm_epoch_end_encode(const struct tdm_epoch_end *e, uint8_t *out)
{
    tdm_put_le64(out, e->npages);
    tdm_put_le64(out + 8, e->state_len);
    tdm_put_le32(out + 16, e->frames);
    tdm_put_le32(out + 20, 0);
    tdm_put_le64(out + 24, e->capture_ns);
}

int tdm_epoch_end_decode(const uint8_t *p, size_t len, struct tdm_epoch_end *e,
                         char *err, size_t errlen)
{
    if (len != TDM_EPOCH_END_SIZE)
        return tdm_errf(err, errlen, "EPOCH_END of %zu bytes, %d expected", len,
                    TDM_EPOCH_END_SIZE);
    if (tdm_get_le32(p + 20) != 0)
        return tdm_errf(err, errlen, "EPOCH_END: reserved field is not zero");
    e->npages = tdm_get_le64(p);
    e->state_len = tdm_get_le64(p + 8);
    e->frames = tdm_get_le32(p + 16);
    e->reserved = 0;
    e->capture_ns = tdm_get_le64(p + 24);
    return 0;
}

size_t tdm_text_msg_encode(uint32_t code, const char *text, uint8_t *out,
                           size_t outlen)
{
    size_t n = strlen(text);

    if (outlen < 4)
        return 0;
    n = TDM_MIN(n, TDM_MIN(outlen - 4, (size_t)TDM_TEXT_MAX - 1));
    tdm_put_le32(out, code);
    memcpy(out + 4, text, n);
    return 4 + n;
}

int tdm_text_msg_decode(const uint8_t *p, size_t len, struct tdm_text_msg *m,
                        char *err, size_t errlen)
{
    size_t n;

    if (len < 4)
        return tdm_errf(err, errlen, "text message of %zu bytes is too short", len);
    if (len - 4 > TDM_TEXT_MAX - 1)
        return tdm_errf(err, errlen, "text message of %zu bytes is too long", len);
    m->code = tdm_get_le32(p);
    n = len - 4;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[4 + i];
        /* Text from a peer goes into our logs: no control characters. */
        m->text[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    m->text[n] = '\0';
    return 0;
}
