/* SPDX-License-Identifier: LGPL-2.1-only */
/* libFuzzer target: the replication stream decoder and every payload
 * decoder, over arbitrary bytes. Frames with a wrong CRC are rejected early,
 * so the input's first byte chooses whether to fix up the CRC first, letting
 * the fuzzer reach the payload decoders. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tdm-proto.h"
#include "tdm-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void payload(const struct tdm_frame *f)
{
    char err[256];
    union {
        struct tdm_hello h;
        struct tdm_hello_reply r;
        struct tdm_heartbeat hb;
        struct tdm_epoch_begin b;
        struct tdm_pages p;
        struct tdm_epoch_end e;
        struct tdm_text_msg t;
        struct tdm_disk_info d;
    } u;

    switch (f->type) {
    case TDM_MSG_HELLO:
        tdm_hello_decode(f->payload, f->len, &u.h, err, sizeof(err));
        break;
    case TDM_MSG_HELLO_REPLY:
        tdm_hello_reply_decode(f->payload, f->len, &u.r, err, sizeof(err));
        break;
    case TDM_MSG_HEARTBEAT:
        tdm_heartbeat_decode(f->payload, f->len, &u.hb, err, sizeof(err));
        break;
    case TDM_MSG_EPOCH_BEGIN:
        tdm_epoch_begin_decode(f->payload, f->len, &u.b, err, sizeof(err));
        break;
    case TDM_MSG_PAGES:
        if (tdm_pages_decode(f->payload, f->len, &u.p, err, sizeof(err)) == 0) {
            volatile uint64_t sum = 0;
            for (uint32_t i = 0; i < u.p.count; i++)
                sum += tdm_pages_pfn(&u.p, i) + u.p.data[(size_t)i * 4096 + 4095];
            (void)sum;
        }
        break;
    case TDM_MSG_EPOCH_END:
        tdm_epoch_end_decode(f->payload, f->len, &u.e, err, sizeof(err));
        break;
    case TDM_MSG_DISK_INFO:
        tdm_disk_info_decode(f->payload, f->len, &u.d, err, sizeof(err));
        break;
    case TDM_MSG_GOODBYE:
    case TDM_MSG_ERROR:
        tdm_text_msg_decode(f->payload, f->len, &u.t, err, sizeof(err));
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf;
    size_t off = 0;
    char err[256];

    if (size < 1)
        return 0;
    buf = malloc(size);
    memcpy(buf, data + 1, size - 1);
    size--;
    while (off < size) {
        struct tdm_frame f;
        size_t used;
        enum tdm_dec d;

        if ((data[0] & 1) && size - off >= TDM_HDR_SIZE) {
            uint32_t plen = tdm_get_le32(buf + off + 8);
            if (plen <= size - off - TDM_HDR_SIZE) {
                struct iovec iov = {.iov_base = buf + off + TDM_HDR_SIZE,
                                    .iov_len = plen};
                uint16_t type = tdm_get_le16(buf + off + 6);
                tdm_frame_hdr(buf + off, type, tdm_get_le64(buf + off + 16),
                              &iov, 1);
                /* keep the fuzzer's magic/version/type fields */
                tdm_put_le16(buf + off + 6, type);
            }
        }
        d = tdm_frame_decode(buf + off, size - off, &f, &used, err, sizeof(err));
        if (d != TDM_DEC_OK)
            break;
        payload(&f);
        off += used;
    }
    free(buf);
    return 0;
}
