/* SPDX-License-Identifier: LGPL-2.1-only */
/* libs/blkrep: the record encoding and the backup's epoch write log. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>
#include <cmocka.h>

#include "tdm-blkrep.h"
#include "tdm-util.h"

#define IMG_SIZE (256u * 1024)

/* ---- wire ---- */

static size_t build(uint8_t *buf, const struct tdm_blk_rec *r)
{
    char err[160];
    size_t dlen = tdm_blk_rec_data_len(r);

    assert_int_equal(tdm_blk_rec_hdr(buf, r, err, sizeof(err)), 0);
    if (dlen)
        memcpy(buf + TDM_BLK_HDR_SIZE, r->data, dlen);
    return TDM_BLK_HDR_SIZE + dlen;
}

static void test_wire_roundtrip_and_need(void **state)
{
    uint8_t buf[256], data[100];
    struct tdm_blk_rec r = {.kind = TDM_BLK_WRITE, .epoch = 9,
                            .offset = 4096 * 3 + 5, .len = sizeof(data),
                            .data = data};
    struct tdm_blk_rec d;
    size_t used, n;
    char err[160];

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7 + 1);
    n = build(buf, &r);
    assert_int_equal(n, TDM_BLK_HDR_SIZE + sizeof(data));
    for (size_t cut = 0; cut < n; cut++) {
        assert_int_equal(tdm_blk_rec_decode(buf, cut, &d, &used, err,
                                            sizeof(err)), TDM_BLK_DEC_NEED);
        assert_int_equal(used, cut < TDM_BLK_HDR_SIZE ? TDM_BLK_HDR_SIZE : n);
    }
    assert_int_equal(tdm_blk_rec_decode(buf, n + 3, &d, &used, err,
                                        sizeof(err)), TDM_BLK_DEC_OK);
    assert_int_equal(used, n);
    assert_int_equal(d.kind, TDM_BLK_WRITE);
    assert_int_equal(d.epoch, 9);
    assert_int_equal(d.offset, 4096 * 3 + 5);
    assert_int_equal(d.len, sizeof(data));
    assert_ptr_equal(d.data, buf + TDM_BLK_HDR_SIZE);
    assert_memory_equal(d.data, data, sizeof(data));

    /* TRIM, ZERO and FLUSH carry no data */
    static const struct tdm_blk_rec nodata[] = {
        {.kind = TDM_BLK_TRIM, .epoch = 1, .offset = 0, .len = 1u << 30},
        {.kind = TDM_BLK_ZERO, .epoch = 2, .offset = 512, .len = 512},
        {.kind = TDM_BLK_FLUSH, .epoch = UINT64_MAX},
    };
    for (size_t i = 0; i < TDM_ARRAY_SIZE(nodata); i++) {
        n = build(buf, &nodata[i]);
        assert_int_equal(n, TDM_BLK_HDR_SIZE);
        assert_int_equal(tdm_blk_rec_decode(buf, n, &d, &used, err,
                                            sizeof(err)), TDM_BLK_DEC_OK);
        assert_int_equal(used, TDM_BLK_HDR_SIZE);
        assert_int_equal(d.kind, nodata[i].kind);
        assert_int_equal(d.epoch, nodata[i].epoch);
        assert_int_equal(d.offset, nodata[i].offset);
        assert_int_equal(d.len, nodata[i].len);
        assert_null(d.data);
    }
}

/* Any single bit flipped anywhere in a record is caught. */
static void test_wire_every_bit_flip_rejected(void **state)
{
    uint8_t buf[128], data[48];
    struct tdm_blk_rec r = {.kind = TDM_BLK_WRITE, .epoch = 3, .offset = 64,
                            .len = sizeof(data), .data = data};
    struct tdm_blk_rec d;
    size_t used, n;
    char err[160];

    memset(data, 0x5a, sizeof(data));
    n = build(buf, &r);
    for (size_t bit = 0; bit < n * 8; bit++) {
        enum tdm_blk_dec dec;

        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        memset(&d, 0xee, sizeof(d));
        dec = tdm_blk_rec_decode(buf, n, &d, &used, err, sizeof(err));
        /* a flip in len may make the decoder wait for more: never OK */
        assert_int_not_equal(dec, TDM_BLK_DEC_OK);
        assert_int_equal(d.kind, 0xeeee);   /* untouched */
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    assert_int_equal(tdm_blk_rec_decode(buf, n, &d, &used, err, sizeof(err)),
                     TDM_BLK_DEC_OK);
}

/* A header with fields the encoder would refuse, with a valid CRC: the
 * decoder refuses it too, and names the problem. */
static void expect_decode_err(uint16_t kind, uint64_t epoch, uint64_t offset,
                              uint32_t len, uint32_t magic, uint16_t version,
                              const char *needle)
{
    uint8_t buf[TDM_BLK_HDR_SIZE + 16] = {0};
    struct tdm_blk_rec d;
    size_t used;
    char err[160] = "";

    tdm_put_le32(buf, magic);
    tdm_put_le16(buf + 4, version);
    tdm_put_le16(buf + 6, kind);
    tdm_put_le64(buf + 8, epoch);
    tdm_put_le64(buf + 16, offset);
    tdm_put_le32(buf + 24, len);
    tdm_put_le32(buf + 28, tdm_crc32c(0, buf, 28));
    assert_int_equal(tdm_blk_rec_decode(buf, sizeof(buf), &d, &used, err,
                                        sizeof(err)), TDM_BLK_DEC_ERR);
    if (!strstr(err, needle))
        fail_msg("error '%s' does not mention '%s'", err, needle);
}

static void test_wire_header_checks(void **state)
{
    struct tdm_blk_rec r = {.kind = TDM_BLK_ZERO, .epoch = 1, .offset = 0,
                            .len = 8};
    uint8_t hdr[TDM_BLK_HDR_SIZE];
    char err[160];

    expect_decode_err(TDM_BLK_ZERO, 1, 0, 8, 0x12345678, TDM_BLK_VERSION,
                      "magic");
    expect_decode_err(TDM_BLK_ZERO, 1, 0, 8, TDM_BLK_MAGIC,
                      TDM_BLK_VERSION + 1, "version");
    expect_decode_err(0, 1, 0, 8, TDM_BLK_MAGIC, TDM_BLK_VERSION, "kind 0");
    expect_decode_err(TDM_BLK_KIND_MAX_, 1, 0, 8, TDM_BLK_MAGIC,
                      TDM_BLK_VERSION, "kind 6");
    expect_decode_err(TDM_BLK_DIRTY, 1, 0, 0, TDM_BLK_MAGIC, TDM_BLK_VERSION,
                      "length 0");
    expect_decode_err(TDM_BLK_ZERO, 0, 0, 8, TDM_BLK_MAGIC, TDM_BLK_VERSION,
                      "epoch 0");
    expect_decode_err(TDM_BLK_TRIM, 1, 0, 0, TDM_BLK_MAGIC, TDM_BLK_VERSION,
                      "length 0");
    expect_decode_err(TDM_BLK_WRITE, 1, 0, TDM_BLK_WRITE_MAX + 1,
                      TDM_BLK_MAGIC, TDM_BLK_VERSION, "exceeds");
    expect_decode_err(TDM_BLK_ZERO, 1, UINT64_MAX - 7, 8, TDM_BLK_MAGIC,
                      TDM_BLK_VERSION, "overflows");
    expect_decode_err(TDM_BLK_FLUSH, 1, 0, 1, TDM_BLK_MAGIC, TDM_BLK_VERSION,
                      "must be 0");
    expect_decode_err(TDM_BLK_FLUSH, 1, 4096, 0, TDM_BLK_MAGIC,
                      TDM_BLK_VERSION, "must be 0");

    /* the last byte that fits is fine */
    r.offset = UINT64_MAX - 8;
    assert_int_equal(tdm_blk_rec_hdr(hdr, &r, err, sizeof(err)), 0);
    /* the encoder refuses what the decoder would */
    r.offset = UINT64_MAX - 7;
    assert_int_equal(tdm_blk_rec_hdr(hdr, &r, err, sizeof(err)), -1);
    r.offset = 0;
    r.epoch = 0;
    assert_int_equal(tdm_blk_rec_hdr(hdr, &r, err, sizeof(err)), -1);
    r.epoch = 1;
    r.kind = 77;
    assert_int_equal(tdm_blk_rec_hdr(hdr, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "kind 77"));
}

static void test_wire_cut_ack(void **state)
{
    uint8_t buf[TDM_BLK_CTL_SIZE];
    uint64_t e = 0;
    char err[160];

    tdm_blk_cut_encode(0x0102030405060708ull, buf);
    assert_int_equal(tdm_get_le32(buf), TDM_BLK_CUT_MAGIC);
    assert_int_equal(tdm_blk_cut_decode(buf, &e, err, sizeof(err)), 0);
    assert_int_equal(e, 0x0102030405060708ull);
    /* a cut is not an ack, nor the other way round */
    e = 5;
    assert_int_equal(tdm_blk_ack_decode(buf, &e, err, sizeof(err)), -1);
    assert_int_equal(e, 5);
    tdm_blk_ack_encode(42, buf);
    assert_int_equal(tdm_blk_cut_decode(buf, &e, err, sizeof(err)), -1);
    assert_int_equal(tdm_blk_ack_decode(buf, &e, err, sizeof(err)), 0);
    assert_int_equal(e, 42);
    tdm_blk_cut_encode(0, buf);
    assert_int_equal(tdm_blk_cut_decode(buf, &e, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "epoch 0"));
    assert_int_equal(e, 42);
}

/* A DIRTY record is a range without data; a mode message and its answer
 * carry one of two modes and are told apart from each other and from cuts. */
static void test_wire_dirty_and_mode(void **state)
{
    struct tdm_blk_rec r = {.kind = TDM_BLK_DIRTY, .epoch = 3,
                            .offset = 1 << 20, .len = 65536}, d;
    uint8_t buf[TDM_BLK_HDR_SIZE + 8];
    uint64_t m = 0;
    size_t used;
    char err[160];

    assert_int_equal(tdm_blk_rec_data_len(&r), 0);
    assert_int_equal(tdm_blk_rec_hdr(buf, &r, err, sizeof(err)), 0);
    assert_int_equal(tdm_blk_rec_decode(buf, TDM_BLK_HDR_SIZE, &d, &used, err,
                                        sizeof(err)), TDM_BLK_DEC_OK);
    assert_int_equal(used, TDM_BLK_HDR_SIZE);
    assert_int_equal(d.kind, TDM_BLK_DIRTY);
    assert_int_equal(d.offset, 1 << 20);
    assert_int_equal(d.len, 65536);
    assert_null(d.data);
    assert_string_equal(tdm_blk_kind_name(TDM_BLK_DIRTY), "DIRTY");

    tdm_blk_mode_encode(TDM_BLK_MODE_MAGIC, TDM_BLK_MODE_DIRTY, buf);
    assert_int_equal(tdm_blk_mode_decode(TDM_BLK_MODE_MAGIC, buf, &m, err,
                                         sizeof(err)), 0);
    assert_int_equal(m, TDM_BLK_MODE_DIRTY);
    /* a mode is not its answer, nor a cut */
    m = 9;
    assert_int_equal(tdm_blk_mode_decode(TDM_BLK_MODE_ACK_MAGIC, buf, &m, err,
                                         sizeof(err)), -1);
    assert_non_null(strstr(err, "magic"));
    assert_int_equal(tdm_blk_cut_decode(buf, &m, err, sizeof(err)), -1);
    assert_int_equal(m, 9);
    tdm_blk_mode_encode(TDM_BLK_MODE_ACK_MAGIC, TDM_BLK_MODE_FULL, buf);
    assert_int_equal(tdm_blk_mode_decode(TDM_BLK_MODE_ACK_MAGIC, buf, &m, err,
                                         sizeof(err)), 0);
    assert_int_equal(m, TDM_BLK_MODE_FULL);
    for (uint64_t bad = 0; bad < 5; bad += 3) {     /* 0 and 3 */
        m = 9;
        tdm_blk_mode_encode(TDM_BLK_MODE_MAGIC, bad, buf);
        assert_int_equal(tdm_blk_mode_decode(TDM_BLK_MODE_MAGIC, buf, &m, err,
                                             sizeof(err)), -1);
        assert_non_null(strstr(err, "unknown mode"));
        assert_int_equal(m, 9);
    }
}

/* ---- write log ---- */

struct img {
    char path[64];
    int fd;
    uint8_t model[IMG_SIZE];
};

static int img_setup(void **state)
{
    struct img *im = tdm_calloc(1, sizeof(*im));

    strcpy(im->path, "/tmp/test-blkrep-XXXXXX");
    im->fd = mkstemp(im->path);
    assert_true(im->fd >= 0);
    unlink(im->path);
    assert_int_equal(ftruncate(im->fd, IMG_SIZE), 0);
    *state = im;
    return 0;
}

static int img_teardown(void **state)
{
    struct img *im = *state;

    close(im->fd);
    free(im);
    return 0;
}

static void img_check(const struct img *im)
{
    static uint8_t buf[IMG_SIZE];

    assert_int_equal(pread(im->fd, buf, IMG_SIZE, 0), IMG_SIZE);
    assert_memory_equal(buf, im->model, IMG_SIZE);
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

static void stats_equal(const struct tdm_wlog_stats *a,
                        const struct tdm_wlog_stats *b)
{
    assert_memory_equal(a, b, sizeof(*a));
}

static void test_wlog_create_checks(void **state)
{
    struct img *im = *state;
    struct tdm_wlog w;
    char err[160];

    tdm_wlog_init(&w);
    assert_int_equal(tdm_wlog_create(&w, -1, IMG_SIZE, 1 << 20, 0, err,
                                     sizeof(err)), -1);
    assert_int_equal(tdm_wlog_create(&w, im->fd, 0, 1 << 20, 0, err,
                                     sizeof(err)), -1);
    assert_int_equal(tdm_wlog_create(&w, im->fd, IMG_SIZE, 10, 0, err,
                                     sizeof(err)), -1);
    /* nothing works on a log that was never created */
    assert_int_equal(tdm_wlog_add(&w, 1, TDM_BLK_FLUSH, 0, 0, NULL, err,
                                  sizeof(err)), -1);
    assert_int_equal(tdm_wlog_commit(&w, 1, err, sizeof(err)), -1);
    assert_int_equal(tdm_wlog_drop_after(&w, 1, err, sizeof(err)), -1);
    tdm_wlog_dispose(&w);
    tdm_wlog_dispose(&w);       /* idempotent */
}

/* Every bad input is refused with a reason, and nothing changes: neither
 * the held records nor the image. */
static void test_wlog_bad_input_changes_nothing(void **state)
{
    struct img *im = *state;
    struct tdm_wlog w;
    struct tdm_wlog_stats before, after;
    uint8_t data[8192];
    char err[160];
    static const struct {
        uint64_t epoch;
        uint16_t kind;
        uint64_t offset;
        uint32_t len;
        bool with_data;
        const char *needle;
    } bad[] = {
        {5, 0, 0, 16, true, "kind 0"},
        {5, 9, 0, 16, true, "kind 9"},
        {5, TDM_BLK_DIRTY, 0, 16, false, "DIRTY record"},
        {0, TDM_BLK_WRITE, 0, 16, true, "epoch 0"},
        {5, TDM_BLK_WRITE, 0, 0, true, "length 0"},
        {5, TDM_BLK_WRITE, 0, 16, false, "without data"},
        {5, TDM_BLK_WRITE, IMG_SIZE - 15, 16, true, "beyond the image"},
        {5, TDM_BLK_ZERO, IMG_SIZE, 1, true, "beyond the image"},
        {5, TDM_BLK_TRIM, UINT64_MAX - 4, 16, false, "overflows"},
        {5, TDM_BLK_WRITE, 0, TDM_BLK_WRITE_MAX + 1, true, "exceeds"},
        {5, TDM_BLK_FLUSH, 0, 4, false, "must be 0"},
        {3, TDM_BLK_WRITE, 0, 16, true, "went backwards"},  /* last is 4 */
        {2, TDM_BLK_ZERO, 0, 16, false, "already committed"},
        {1, TDM_BLK_FLUSH, 0, 0, false, "already committed"},
        {5, TDM_BLK_WRITE, 0, 8192, true, "full"},
    };

    tdm_wlog_init(&w);
    /* room for the two writes below and four small records, not for an
     * 8 KiB write */
    assert_int_equal(tdm_wlog_create(&w, im->fd, IMG_SIZE,
                                     8096 + 6 * TDM_WLOG_REC_COST, 0, err,
                                     sizeof(err)), 0);
    fill(data, sizeof(data), 1);
    assert_int_equal(tdm_wlog_add(&w, 2, TDM_BLK_WRITE, 100, 4096, data, err,
                                  sizeof(err)), 0);
    assert_int_equal(tdm_wlog_commit(&w, 2, err, sizeof(err)), 0);
    memcpy(im->model + 100, data, 4096);
    assert_int_equal(tdm_wlog_add(&w, 4, TDM_BLK_WRITE, 0, 4096, data + 1,
                                  err, sizeof(err)), 0);
    assert_int_equal(tdm_wlog_add(&w, 4, TDM_BLK_WRITE, 5000, 4000, data + 2,
                                  err, sizeof(err)), 0);

    tdm_wlog_stats(&w, &before);
    assert_int_equal(before.held_records, 2);
    assert_int_equal(before.held_bytes, 8096);
    for (size_t i = 0; i < TDM_ARRAY_SIZE(bad); i++) {
        err[0] = '\0';
        assert_int_equal(tdm_wlog_add(&w, bad[i].epoch, bad[i].kind,
                                      bad[i].offset, bad[i].len,
                                      bad[i].with_data ? data : NULL, err,
                                      sizeof(err)), -1);
        if (!strstr(err, bad[i].needle))
            fail_msg("case %zu: error '%s' does not mention '%s'", i, err,
                     bad[i].needle);
        tdm_wlog_stats(&w, &after);
        stats_equal(&before, &after);
        assert_int_equal(w.last, 4);
        assert_int_equal(w.committed, 2);
    }
    /* commit and drop going backwards */
    assert_int_equal(tdm_wlog_commit(&w, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "backwards"));
    assert_int_equal(tdm_wlog_drop_after(&w, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "already committed"));
    tdm_wlog_stats(&w, &after);
    stats_equal(&before, &after);
    img_check(im);              /* epoch 4 is not in the image */

    /* the full log takes a small record still, and a FLUSH */
    assert_int_equal(tdm_wlog_add(&w, 5, TDM_BLK_ZERO, 0, 16, NULL, err,
                                  sizeof(err)), 0);
    assert_int_equal(tdm_wlog_add(&w, 5, TDM_BLK_FLUSH, 0, 0, NULL, err,
                                  sizeof(err)), 0);
    tdm_wlog_dispose(&w);
    img_check(im);
}

/* Records apply in arrival order, epochs <= the committed one only; an
 * overlapping later write wins, TRIM and ZERO write zeroes. */
static void test_wlog_commit_order(void **state)
{
    struct img *im = *state;
    struct tdm_wlog w;
    struct tdm_wlog_stats st;
    uint8_t a[20000], b[20000], c[3000];
    char err[160];

    fill(a, sizeof(a), 11);
    fill(b, sizeof(b), 22);
    fill(c, sizeof(c), 33);
    memset(im->model, 0, IMG_SIZE);
    /* start from a non-zero image so zeroes are visible */
    memset(im->model, 0xff, IMG_SIZE);
    assert_int_equal(pwrite(im->fd, im->model, IMG_SIZE, 0), IMG_SIZE);

    tdm_wlog_init(&w);
    assert_int_equal(tdm_wlog_create(&w, im->fd, IMG_SIZE, 1 << 20, 0, err,
                                     sizeof(err)), 0);
    /* epoch 1: a, then b over half of it, then zero in the middle */
    assert_int_equal(tdm_wlog_add(&w, 1, TDM_BLK_WRITE, 1000, sizeof(a), a,
                                  err, sizeof(err)), 0);
    assert_int_equal(tdm_wlog_add(&w, 1, TDM_BLK_WRITE, 11000, sizeof(b), b,
                                  err, sizeof(err)), 0);
    assert_int_equal(tdm_wlog_add(&w, 1, TDM_BLK_ZERO, 9000, 5000, NULL, err,
                                  sizeof(err)), 0);
    /* epoch 2: trim across everything above, then c inside the hole */
    assert_int_equal(tdm_wlog_add(&w, 2, TDM_BLK_TRIM, 0, 150000, NULL, err,
                                  sizeof(err)), 0);
    assert_int_equal(tdm_wlog_add(&w, 2, TDM_BLK_WRITE, 70000, sizeof(c), c,
                                  err, sizeof(err)), 0);
    assert_int_equal(tdm_wlog_add(&w, 2, TDM_BLK_FLUSH, 0, 0, NULL, err,
                                  sizeof(err)), 0);
    /* epoch 4 (3 had no writes): c at the very end of the image */
    assert_int_equal(tdm_wlog_add(&w, 4, TDM_BLK_WRITE, IMG_SIZE - sizeof(c),
                                  sizeof(c), c, err, sizeof(err)), 0);

    img_check(im);              /* nothing applied before a commit */
    assert_int_equal(tdm_wlog_commit(&w, 1, err, sizeof(err)), 0);
    memcpy(im->model + 1000, a, sizeof(a));
    memcpy(im->model + 11000, b, sizeof(b));
    memset(im->model + 9000, 0, 5000);
    img_check(im);
    tdm_wlog_stats(&w, &st);
    assert_int_equal(st.applied_records, 3);
    assert_int_equal(st.applied_bytes, sizeof(a) + sizeof(b));
    assert_int_equal(st.held_records, 4);
    assert_int_equal(st.held_bytes, 2 * sizeof(c));

    /* committing 3 applies epoch 2 and stops before 4 */
    assert_int_equal(tdm_wlog_commit(&w, 3, err, sizeof(err)), 0);
    memset(im->model, 0, 150000);
    memcpy(im->model + 70000, c, sizeof(c));
    img_check(im);
    tdm_wlog_stats(&w, &st);
    assert_int_equal(st.applied_records, 6);
    assert_int_equal(st.flushes, 1);
    assert_int_equal(st.held_records, 1);
    assert_int_equal(tdm_wlog_committed(&w), 3);
    /* committing the same epoch again is a no-op */
    assert_int_equal(tdm_wlog_commit(&w, 3, err, sizeof(err)), 0);
    img_check(im);
    /* epoch 3 is closed: late records for it are refused */
    assert_int_equal(tdm_wlog_add(&w, 3, TDM_BLK_WRITE, 0, 10, c, err,
                                  sizeof(err)), -1);
    assert_int_equal(tdm_wlog_commit(&w, 10, err, sizeof(err)), 0);
    memcpy(im->model + IMG_SIZE - sizeof(c), c, sizeof(c));
    img_check(im);
    tdm_wlog_stats(&w, &st);
    assert_int_equal(st.held_records, 0);
    assert_int_equal(st.held_bytes, 0);
    assert_int_equal(st.applied_records, 7);
    assert_int_equal(w.cost, 0);
    tdm_wlog_dispose(&w);
}

/* drop_after forgets the later epochs whole and keeps the earlier ones;
 * the dropped epochs can then be received again. */
static void test_wlog_drop(void **state)
{
    struct img *im = *state;
    struct tdm_wlog w;
    struct tdm_wlog_stats st;
    uint8_t d[6][512];
    char err[160];

    memset(im->model, 0, IMG_SIZE);
    assert_int_equal(pwrite(im->fd, im->model, IMG_SIZE, 0), IMG_SIZE);
    tdm_wlog_init(&w);
    assert_int_equal(tdm_wlog_create(&w, im->fd, IMG_SIZE, 1 << 20, 7, err,
                                     sizeof(err)), 0);
    /* the image holds epoch 7 already */
    assert_int_equal(tdm_wlog_add(&w, 7, TDM_BLK_WRITE, 0, 512, d[0], err,
                                  sizeof(err)), -1);
    for (int e = 0; e < 6; e++) {
        fill(d[e], sizeof(d[e]), (uint32_t)e + 100);
        for (int k = 0; k < 2; k++)
            assert_int_equal(tdm_wlog_add(&w, 8 + (uint64_t)e, TDM_BLK_WRITE,
                                          (uint64_t)(e * 1024 + k * 256),
                                          512, d[e], err, sizeof(err)), 0);
    }
    /* epochs 8..13 held; keep 8 and 9 */
    assert_int_equal(tdm_wlog_drop_after(&w, 9, err, sizeof(err)), 0);
    tdm_wlog_stats(&w, &st);
    assert_int_equal(st.held_records, 4);
    assert_int_equal(st.dropped_records, 8);
    assert_int_equal(st.dropped_bytes, 8 * 512);
    img_check(im);              /* dropping writes nothing */
    /* 10 may come again, and must not go before 9 */
    assert_int_equal(tdm_wlog_add(&w, 10, TDM_BLK_WRITE, 200000, 512, d[5],
                                  err, sizeof(err)), 0);
    assert_int_equal(tdm_wlog_add(&w, 8, TDM_BLK_WRITE, 0, 512, d[5], err,
                                  sizeof(err)), -1);
    assert_int_equal(tdm_wlog_commit(&w, 9, err, sizeof(err)), 0);
    for (int e = 0; e < 2; e++)
        for (int k = 0; k < 2; k++)
            memcpy(im->model + e * 1024 + k * 256, d[e], 512);
    img_check(im);
    /* dropping everything after the committed epoch: the new 10 goes */
    assert_int_equal(tdm_wlog_drop_after(&w, 9, err, sizeof(err)), 0);
    tdm_wlog_stats(&w, &st);
    assert_int_equal(st.held_records, 0);
    assert_int_equal(st.dropped_records, 9);
    assert_int_equal(w.cost, 0);
    assert_int_equal(tdm_wlog_commit(&w, 20, err, sizeof(err)), 0);
    img_check(im);              /* the dropped epoch 10 never showed up */
    /* drop on an empty log and after the last epoch are fine */
    assert_int_equal(tdm_wlog_drop_after(&w, 30, err, sizeof(err)), 0);
    assert_int_equal(tdm_wlog_add(&w, 21, TDM_BLK_FLUSH, 0, 0, NULL, err,
                                  sizeof(err)), 0);
    tdm_wlog_dispose(&w);
}

/* move hands the committed epochs' records to a log of their own (the
 * backup commits that one on its disk thread): nothing reaches the image
 * until it is committed there, and the first log goes on with later ones. */
static void test_wlog_move(void **state)
{
    struct img *im = *state;
    struct tdm_wlog w, m, m2;
    struct tdm_wlog_stats st;
    uint8_t d[4][512];
    char err[160];

    memset(im->model, 0, IMG_SIZE);
    assert_int_equal(pwrite(im->fd, im->model, IMG_SIZE, 0), IMG_SIZE);
    tdm_wlog_init(&w);
    assert_int_equal(tdm_wlog_create(&w, im->fd, IMG_SIZE, 1 << 20, 4, err,
                                     sizeof(err)), 0);
    for (int e = 0; e < 4; e++) {
        fill(d[e], sizeof(d[e]), (uint32_t)e + 7);
        assert_int_equal(tdm_wlog_add(&w, 5 + (uint64_t)e, TDM_BLK_WRITE,
                                      (uint64_t)e * 512, 512, d[e], err,
                                      sizeof(err)), 0);
    }
    /* epochs 5 and 6 move; 7 and 8 stay */
    assert_int_equal(tdm_wlog_move(&w, 6, &m, err, sizeof(err)), 0);
    img_check(im);                      /* moving writes nothing */
    assert_int_equal(tdm_wlog_committed(&w), 6);
    tdm_wlog_stats(&w, &st);
    assert_int_equal(st.held_records, 2);
    assert_int_equal(w.cost, 2 * (512 + TDM_WLOG_REC_COST));
    tdm_wlog_stats(&m, &st);
    assert_int_equal(st.held_records, 2);
    assert_int_equal(st.held_bytes, 1024);
    /* the first log refuses what it no longer owns */
    assert_int_equal(tdm_wlog_add(&w, 6, TDM_BLK_WRITE, 0, 512, d[0], err,
                                  sizeof(err)), -1);
    assert_int_equal(tdm_wlog_move(&w, 5, &m2, err, sizeof(err)), -1);
    /* the moved log commits them, in order */
    assert_int_equal(tdm_wlog_commit(&m, 6, err, sizeof(err)), 0);
    memcpy(im->model, d[0], 512);
    memcpy(im->model + 512, d[1], 512);
    img_check(im);
    tdm_wlog_dispose(&m);
    /* a move of nothing is fine, and the rest still commits */
    assert_int_equal(tdm_wlog_move(&w, 6, &m2, err, sizeof(err)), 0);
    assert_null(m2.head);
    tdm_wlog_dispose(&m2);
    assert_int_equal(tdm_wlog_move(&w, 8, &m2, err, sizeof(err)), 0);
    assert_null(w.head);
    assert_int_equal(w.cost, 0);
    assert_int_equal(tdm_wlog_commit(&m2, 8, err, sizeof(err)), 0);
    memcpy(im->model + 1024, d[2], 512);
    memcpy(im->model + 1536, d[3], 512);
    img_check(im);
    tdm_wlog_dispose(&m2);
    tdm_wlog_dispose(&w);
}

/* The byte limit counts held records; commits and drops give it back. */
static void test_wlog_limit(void **state)
{
    struct img *im = *state;
    struct tdm_wlog w;
    uint8_t data[1000];
    char err[160];
    uint64_t limit = 3 * (1000 + TDM_WLOG_REC_COST);

    fill(data, sizeof(data), 5);
    tdm_wlog_init(&w);
    assert_int_equal(tdm_wlog_create(&w, im->fd, IMG_SIZE, limit, 0, err,
                                     sizeof(err)), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tdm_wlog_add(&w, 1 + (uint64_t)i, TDM_BLK_WRITE, 0,
                                      1000, data, err, sizeof(err)), 0);
    assert_int_equal(tdm_wlog_add(&w, 3, TDM_BLK_FLUSH, 0, 0, NULL, err,
                                  sizeof(err)), -1);
    assert_non_null(strstr(err, "full"));
    assert_int_equal(tdm_wlog_commit(&w, 1, err, sizeof(err)), 0);
    assert_int_equal(tdm_wlog_add(&w, 3, TDM_BLK_WRITE, 0, 1000, data, err,
                                  sizeof(err)), 0);
    assert_int_equal(tdm_wlog_add(&w, 3, TDM_BLK_FLUSH, 0, 0, NULL, err,
                                  sizeof(err)), -1);
    /* dropping epoch 3 gives back two records' worth */
    assert_int_equal(tdm_wlog_drop_after(&w, 2, err, sizeof(err)), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(tdm_wlog_add(&w, 3, TDM_BLK_WRITE, 0, 1000, data,
                                      err, sizeof(err)), 0);
    assert_int_equal(tdm_wlog_add(&w, 3, TDM_BLK_WRITE, 0, 1000, data, err,
                                  sizeof(err)), -1);
    tdm_wlog_dispose(&w);
}

/* An image that refuses writes: commit fails naming the record, keeps it
 * and the rest, and does not advance; a retry on a good image finishes. */
static void test_wlog_io_error(void **state)
{
    struct img *im = *state;
    struct tdm_wlog w;
    struct tdm_wlog_stats st;
    uint8_t data[64];
    char err[160];
    int rofd;
    char path[64];

    strcpy(path, "/tmp/test-blkrep-ro-XXXXXX");
    rofd = mkstemp(path);
    assert_true(rofd >= 0);
    close(rofd);
    rofd = open(path, O_RDONLY);
    assert_true(rofd >= 0);
    unlink(path);

    fill(data, sizeof(data), 9);
    tdm_wlog_init(&w);
    assert_int_equal(tdm_wlog_create(&w, rofd, IMG_SIZE, 1 << 20, 0, err,
                                     sizeof(err)), 0);
    assert_int_equal(tdm_wlog_add(&w, 1, TDM_BLK_WRITE, 128, 64, data, err,
                                  sizeof(err)), 0);
    assert_int_equal(tdm_wlog_add(&w, 2, TDM_BLK_ZERO, 0, 64, NULL, err,
                                  sizeof(err)), 0);
    assert_int_equal(tdm_wlog_commit(&w, 2, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "WRITE of 64 bytes at 128"));
    assert_non_null(strstr(err, strerror(EBADF)));
    tdm_wlog_stats(&w, &st);
    assert_int_equal(st.held_records, 2);
    assert_int_equal(st.applied_records, 0);
    assert_int_equal(tdm_wlog_committed(&w), 0);

    /* the same records onto a writable image */
    w.fd = im->fd;
    memset(im->model, 0xaa, IMG_SIZE);
    assert_int_equal(pwrite(im->fd, im->model, IMG_SIZE, 0), IMG_SIZE);
    assert_int_equal(tdm_wlog_commit(&w, 2, err, sizeof(err)), 0);
    memcpy(im->model + 128, data, 64);
    memset(im->model, 0, 64);
    img_check(im);
    tdm_wlog_dispose(&w);
    close(rofd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_roundtrip_and_need),
        cmocka_unit_test(test_wire_every_bit_flip_rejected),
        cmocka_unit_test(test_wire_header_checks),
        cmocka_unit_test(test_wire_cut_ack),
        cmocka_unit_test(test_wire_dirty_and_mode),
        cmocka_unit_test_setup_teardown(test_wlog_create_checks, img_setup,
                                        img_teardown),
        cmocka_unit_test_setup_teardown(test_wlog_bad_input_changes_nothing,
                                        img_setup, img_teardown),
        cmocka_unit_test_setup_teardown(test_wlog_commit_order, img_setup,
                                        img_teardown),
        cmocka_unit_test_setup_teardown(test_wlog_drop, img_setup,
                                        img_teardown),
        cmocka_unit_test_setup_teardown(test_wlog_move, img_setup,
                                        img_teardown),
        cmocka_unit_test_setup_teardown(test_wlog_limit, img_setup,
                                        img_teardown),
        cmocka_unit_test_setup_teardown(test_wlog_io_error, img_setup,
                                        img_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
