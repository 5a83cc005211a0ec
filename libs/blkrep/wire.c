/* SPDX-License-Identifier: LGPL-2.1-only */
/* The log socket's encoding (tdm-blkrep.h has the layout). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "tdm-blkrep.h"
#include "tdm-util.h"

const char *tdm_blk_kind_name(uint16_t kind)
{
    static const char *const names[TDM_BLK_KIND_MAX_] = {
        [TDM_BLK_WRITE] = "WRITE",
        [TDM_BLK_TRIM] = "TRIM",
        [TDM_BLK_ZERO] = "ZERO",
        [TDM_BLK_FLUSH] = "FLUSH",
        [TDM_BLK_DIRTY] = "DIRTY",
    };
    return kind < TDM_BLK_KIND_MAX_ && names[kind] ? names[kind] : "UNKNOWN";
}

int tdm_blk_rec_check(const struct tdm_blk_rec *r, char *err, size_t errlen)
{
    const char *name = tdm_blk_kind_name(r->kind);

    if (r->kind == 0 || r->kind >= TDM_BLK_KIND_MAX_)
        return tdm_errf(err, errlen, "unknown record kind %u", r->kind);
    if (r->epoch == 0)
        return tdm_errf(err, errlen, "%s record with epoch 0", name);
    if (r->kind == TDM_BLK_FLUSH) {
        if (r->offset != 0 || r->len != 0)
            return tdm_errf(err, errlen, "FLUSH record with offset %llu and "
                            "length %u, both must be 0",
                            (unsigned long long)r->offset, r->len);
        return 0;
    }
    if (r->len == 0)
        return tdm_errf(err, errlen, "%s record of length 0", name);
    if (r->kind == TDM_BLK_WRITE && r->len > TDM_BLK_WRITE_MAX)
        return tdm_errf(err, errlen, "WRITE record of %u bytes exceeds %u",
                        r->len, TDM_BLK_WRITE_MAX);
    if (r->offset > UINT64_MAX - r->len)
        return tdm_errf(err, errlen, "%s record: offset %llu + length %u "
                        "overflows", name, (unsigned long long)r->offset,
                        r->len);
    return 0;
}

static void hdr_fill(uint8_t *hdr, const struct tdm_blk_rec *r)
{
    tdm_put_le32(hdr, TDM_BLK_MAGIC);
    tdm_put_le16(hdr + 4, TDM_BLK_VERSION);
    tdm_put_le16(hdr + 6, r->kind);
    tdm_put_le64(hdr + 8, r->epoch);
    tdm_put_le64(hdr + 16, r->offset);
    tdm_put_le32(hdr + 24, r->len);
}

int tdm_blk_rec_hdr(uint8_t hdr[TDM_BLK_HDR_SIZE], const struct tdm_blk_rec *r,
                    char *err, size_t errlen)
{
    uint32_t crc;

    if (tdm_blk_rec_check(r, err, errlen) < 0)
        return -1;
    hdr_fill(hdr, r);
    crc = tdm_crc32c(0, hdr, 28);
    crc = tdm_crc32c(crc, r->data, tdm_blk_rec_data_len(r));
    tdm_put_le32(hdr + 28, crc);
    return 0;
}

enum tdm_blk_dec tdm_blk_rec_decode(const uint8_t *buf, size_t len,
                                    struct tdm_blk_rec *r, size_t *used_r,
                                    char *err, size_t errlen)
{
    struct tdm_blk_rec d;
    uint32_t magic, crc;
    uint16_t version;
    size_t dlen;

    *used_r = TDM_BLK_HDR_SIZE;
    if (len < TDM_BLK_HDR_SIZE)
        return TDM_BLK_DEC_NEED;
    magic = tdm_get_le32(buf);
    version = tdm_get_le16(buf + 4);
    if (magic != TDM_BLK_MAGIC) {
        tdm_errf(err, errlen, "bad record magic 0x%08x", magic);
        return TDM_BLK_DEC_ERR;
    }
    if (version != TDM_BLK_VERSION) {
        tdm_errf(err, errlen, "record version %u, this side %u", version,
                 TDM_BLK_VERSION);
        return TDM_BLK_DEC_ERR;
    }
    d.kind = tdm_get_le16(buf + 6);
    d.epoch = tdm_get_le64(buf + 8);
    d.offset = tdm_get_le64(buf + 16);
    d.len = tdm_get_le32(buf + 24);
    d.data = NULL;
    /* checked before the length is trusted to wait for data */
    if (tdm_blk_rec_check(&d, err, errlen) < 0)
        return TDM_BLK_DEC_ERR;
    dlen = tdm_blk_rec_data_len(&d);
    *used_r = TDM_BLK_HDR_SIZE + dlen;
    if (len < *used_r)
        return TDM_BLK_DEC_NEED;
    crc = tdm_crc32c(tdm_crc32c(0, buf, 28), buf + TDM_BLK_HDR_SIZE, dlen);
    if (crc != tdm_get_le32(buf + 28)) {
        tdm_errf(err, errlen, "%s record (epoch %llu, offset %llu): checksum "
                 "0x%08x, expected 0x%08x", tdm_blk_kind_name(d.kind),
                 (unsigned long long)d.epoch, (unsigned long long)d.offset,
                 crc, tdm_get_le32(buf + 28));
        return TDM_BLK_DEC_ERR;
    }
    if (dlen)
        d.data = buf + TDM_BLK_HDR_SIZE;
    *r = d;
    return TDM_BLK_DEC_OK;
}

static void ctl_encode(uint32_t magic, uint64_t epoch, uint8_t *out)
{
    tdm_put_le32(out, magic);
    tdm_put_le64(out + 4, epoch);
}

static int ctl_decode(const char *what, uint32_t want, const uint8_t *p,
                      uint64_t *epoch_r, char *err, size_t errlen)
{
    uint32_t magic = tdm_get_le32(p);
    uint64_t epoch = tdm_get_le64(p + 4);

    if (magic != want)
        return tdm_errf(err, errlen, "%s: bad magic 0x%08x", what, magic);
    if (epoch == 0)
        return tdm_errf(err, errlen, "%s to epoch 0", what);
    *epoch_r = epoch;
    return 0;
}

void tdm_blk_cut_encode(uint64_t epoch, uint8_t out[TDM_BLK_CTL_SIZE])
{
    ctl_encode(TDM_BLK_CUT_MAGIC, epoch, out);
}

int tdm_blk_cut_decode(const uint8_t *p, uint64_t *epoch_r, char *err,
                       size_t errlen)
{
    return ctl_decode("cut", TDM_BLK_CUT_MAGIC, p, epoch_r, err, errlen);
}

void tdm_blk_ack_encode(uint64_t epoch, uint8_t out[TDM_BLK_CTL_SIZE])
{
    ctl_encode(TDM_BLK_ACK_MAGIC, epoch, out);
}

int tdm_blk_ack_decode(const uint8_t *p, uint64_t *epoch_r, char *err,
                       size_t errlen)
{
    return ctl_decode("ack", TDM_BLK_ACK_MAGIC, p, epoch_r, err, errlen);
}

void tdm_blk_mode_encode(uint32_t magic, uint64_t mode,
                         uint8_t out[TDM_BLK_CTL_SIZE])
{
    ctl_encode(magic, mode, out);
}

int tdm_blk_mode_decode(uint32_t magic, const uint8_t *p, uint64_t *mode_r,
                        char *err, size_t errlen)
{
    const char *what = magic == TDM_BLK_MODE_MAGIC ? "mode" : "mode ack";
    uint64_t mode = tdm_get_le64(p + 4);

    if (tdm_get_le32(p) != magic)
        return tdm_errf(err, errlen, "%s: bad magic 0x%08x", what,
                        tdm_get_le32(p));
    if (mode != TDM_BLK_MODE_FULL && mode != TDM_BLK_MODE_DIRTY)
        return tdm_errf(err, errlen, "%s: unknown mode %llu", what,
                        (unsigned long long)mode);
    *mode_r = mode;
    return 0;
}
