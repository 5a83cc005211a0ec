/* SPDX-License-Identifier: LGPL-2.1-only */
/* libFuzzer target: the log socket's decoders (records, cuts, acks, modes
 * and their answers) over
 * arbitrary bytes, and every record they accept fed to a write log over a
 * 1 MiB in-memory image, with commits and drops in between.
 *
 * Records with a wrong CRC are rejected early, so bit 0 of the first byte
 * makes the target fix the CRC up first; the second byte's bits choose
 * where commits and drops go. Afterwards the log must hold nothing and
 * account for every byte. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tdm-blkrep.h"
#include "tdm-util.h"

#define IMG_SIZE (1u << 20)
#define LIMIT (4u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int image_fd = -1;

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "invariant broken: %s\n", what);
        abort();
    }
}

static void fix_crc(uint8_t *p, size_t avail)
{
    struct tdm_blk_rec r;
    uint8_t hdr[TDM_BLK_HDR_SIZE];

    if (avail < TDM_BLK_HDR_SIZE)
        return;
    r.kind = tdm_get_le16(p + 6);
    r.epoch = tdm_get_le64(p + 8);
    r.offset = tdm_get_le64(p + 16);
    r.len = tdm_get_le32(p + 24);
    r.data = p + TDM_BLK_HDR_SIZE;
    if (tdm_blk_rec_data_len(&r) > avail - TDM_BLK_HDR_SIZE)
        return;
    if (tdm_blk_rec_hdr(hdr, &r, NULL, 0) < 0)
        return;
    /* keep the fuzzer's magic and version, take the CRC */
    memcpy(p + 28, hdr + 28, 4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tdm_wlog w;
    struct tdm_wlog_stats st;
    uint8_t *buf;
    size_t off = 0, n = 0;
    uint8_t mode, sched;
    uint64_t max_epoch = 0;
    char err[256];

    if (size < 2)
        return 0;
    if (image_fd < 0) {
        image_fd = memfd_create("fuzz-blkrep", 0);
        if (image_fd < 0 || ftruncate(image_fd, IMG_SIZE) < 0)
            abort();
    }
    mode = data[0];
    sched = data[1];
    size -= 2;
    buf = malloc(size ? size : 1);
    memcpy(buf, data + 2, size);

    tdm_wlog_init(&w);
    check(tdm_wlog_create(&w, image_fd, IMG_SIZE, LIMIT, 0, err,
                          sizeof(err)) == 0, "create");
    while (off < size) {
        uint8_t *p = buf + off;
        size_t avail = size - off, used;
        struct tdm_blk_rec r;
        uint64_t e;
        enum tdm_blk_dec d;

        if (avail >= TDM_BLK_CTL_SIZE &&
            (tdm_get_le32(p) == TDM_BLK_MODE_MAGIC ||
             tdm_get_le32(p) == TDM_BLK_MODE_ACK_MAGIC)) {
            if (tdm_blk_mode_decode(tdm_get_le32(p), p, &e, err,
                                    sizeof(err)) < 0)
                break;
            check(e == TDM_BLK_MODE_FULL || e == TDM_BLK_MODE_DIRTY,
                  "unknown mode accepted");
            off += TDM_BLK_CTL_SIZE;
            continue;
        }
        if (avail >= TDM_BLK_CTL_SIZE &&
            (tdm_get_le32(p) == TDM_BLK_CUT_MAGIC ||
             tdm_get_le32(p) == TDM_BLK_ACK_MAGIC)) {
            int rc = tdm_get_le32(p) == TDM_BLK_CUT_MAGIC
                         ? tdm_blk_cut_decode(p, &e, err, sizeof(err))
                         : tdm_blk_ack_decode(p, &e, err, sizeof(err));
            if (rc < 0)
                break;
            check(e != 0, "control message to epoch 0");
            /* a cut: commit what came before it, sometimes */
            if ((sched >> (n++ % 8)) & 1)
                tdm_wlog_commit(&w, e - 1, err, sizeof(err));
            off += TDM_BLK_CTL_SIZE;
            continue;
        }
        if (mode & 1)
            fix_crc(p, avail);
        d = tdm_blk_rec_decode(p, avail, &r, &used, err, sizeof(err));
        if (d != TDM_BLK_DEC_OK)
            break;
        check(used == TDM_BLK_HDR_SIZE + tdm_blk_rec_data_len(&r) &&
              used <= avail, "decoded size");
        check(tdm_blk_rec_check(&r, err, sizeof(err)) == 0,
              "decoder accepted a record the encoder refuses");
        if (tdm_blk_rec_data_len(&r)) {
            /* the data is all there */
            volatile uint8_t last = r.data[r.len - 1];
            (void)last;
        }
        if (tdm_wlog_add_rec(&w, &r, err, sizeof(err)) == 0) {
            check(r.kind == TDM_BLK_FLUSH || r.offset + r.len <= IMG_SIZE,
                  "write log took a record beyond the image");
            check(r.kind != TDM_BLK_DIRTY, "write log held a DIRTY record");
            max_epoch = TDM_MAX(max_epoch, r.epoch);
        }
        if ((mode & 2) && ((sched >> (n++ % 8)) & 1))
            tdm_wlog_drop_after(&w, tdm_wlog_committed(&w), err, sizeof(err));
        off += used;
    }
    tdm_wlog_stats(&w, &st);
    check(w.cost == st.held_records * TDM_WLOG_REC_COST + st.held_bytes,
          "held cost");
    check(w.cost <= LIMIT, "limit");
    if (mode & 4) {
        check(tdm_wlog_drop_after(&w, tdm_wlog_committed(&w), err,
                                  sizeof(err)) == 0, "drop");
    } else if (max_epoch > tdm_wlog_committed(&w)) {
        check(tdm_wlog_commit(&w, max_epoch, err, sizeof(err)) == 0,
              "commit");
    }
    tdm_wlog_stats(&w, &st);
    check(st.held_records == 0 && st.held_bytes == 0 && w.cost == 0,
          "records left after a final commit or drop");
    tdm_wlog_dispose(&w);
    free(buf);
    return 0;
}
