/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "tdm-proto.h"
#include "tdm-util.h"

static size_t build(uint8_t *buf, uint16_t type, uint64_t epoch,
                    const void *payload, size_t len)
{
    struct iovec iov = {.iov_base = (void *)payload, .iov_len = len};
    long n = tdm_frame_hdr(buf, type, epoch, &iov, len ? 1 : 0);

    assert_int_equal(n, (long)len);
    if (len)
        memcpy(buf + TDM_HDR_SIZE, payload, len);
    return TDM_HDR_SIZE + len;
}

static void test_roundtrip_and_need(void **state)
{
    uint8_t buf[256], payload[40];
    struct tdm_frame f;
    size_t used, n;
    char err[128];

    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)i;
    n = build(buf, TDM_MSG_DRIVER, 42, payload, sizeof(payload));
    /* every prefix asks for more, with the right total once the header is in */
    for (size_t cut = 0; cut < n; cut++) {
        assert_int_equal(tdm_frame_decode(buf, cut, &f, &used, err, sizeof(err)),
                         TDM_DEC_NEED);
        assert_int_equal(used, cut < TDM_HDR_SIZE ? TDM_HDR_SIZE : n);
    }
    assert_int_equal(tdm_frame_decode(buf, n, &f, &used, err, sizeof(err)), TDM_DEC_OK);
    assert_int_equal(used, n);
    assert_int_equal(f.type, TDM_MSG_DRIVER);
    assert_int_equal(f.epoch, 42);
    assert_int_equal(f.len, sizeof(payload));
    assert_memory_equal(f.payload, payload, sizeof(payload));
}

/* Any single bit flipped anywhere in a frame is caught. */
static void test_every_bit_flip_rejected(void **state)
{
    uint8_t buf[128], payload[64];
    struct tdm_frame f;
    size_t used, n;
    char err[128];

    memset(payload, 0xa5, sizeof(payload));
    n = build(buf, TDM_MSG_PAGES, 7, payload, sizeof(payload));
    for (size_t bit = 0; bit < n * 8; bit++) {
        enum tdm_dec d;
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        d = tdm_frame_decode(buf, n, &f, &used, err, sizeof(err));
        /* a flip in the length field may make the frame look longer */
        assert_true(d == TDM_DEC_ERR || d == TDM_DEC_NEED);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    assert_int_equal(tdm_frame_decode(buf, n, &f, &used, err, sizeof(err)), TDM_DEC_OK);
}

static void test_header_checks(void **state)
{
    uint8_t buf[64];
    struct tdm_frame f;
    size_t used;
    char err[128];

    build(buf, TDM_MSG_ACK, 1, NULL, 0);
    tdm_put_le16(buf + 4, 2); /* another version */
    assert_int_equal(tdm_frame_decode(buf, 24, &f, &used, err, sizeof(err)), TDM_DEC_ERR);
    assert_non_null(strstr(err, "version 2"));

    build(buf, TDM_MSG_ACK, 1, NULL, 0);
    tdm_put_le32(buf, 0x50545448); /* "HTTP" */
    assert_int_equal(tdm_frame_decode(buf, 24, &f, &used, err, sizeof(err)), TDM_DEC_ERR);
    assert_non_null(strstr(err, "magic"));

    build(buf, TDM_MSG_ACK, 1, NULL, 0);
    tdm_put_le16(buf + 6, 0);
    assert_int_equal(tdm_frame_decode(buf, 24, &f, &used, err, sizeof(err)), TDM_DEC_ERR);
    tdm_put_le16(buf + 6, TDM_MSG_MAX_);
    assert_int_equal(tdm_frame_decode(buf, 24, &f, &used, err, sizeof(err)), TDM_DEC_ERR);
    assert_non_null(strstr(err, "unknown message type"));

    build(buf, TDM_MSG_ACK, 1, NULL, 0);
    tdm_put_le32(buf + 8, TDM_FRAME_MAX + 1);
    assert_int_equal(tdm_frame_decode(buf, 24, &f, &used, err, sizeof(err)), TDM_DEC_ERR);
    assert_non_null(strstr(err, "exceeds"));

    struct iovec big = {.iov_base = NULL, .iov_len = TDM_FRAME_MAX + 1};
    assert_int_equal(tdm_frame_hdr(buf, TDM_MSG_PAGES, 0, &big, 1), -1);
}

static void test_hello(void **state)
{
    struct tdm_hello h = {0}, d;
    uint8_t buf[TDM_HELLO_FIXED + 32];
    const char *cfg = "name = \"kv1\"\n";
    char err[128];
    size_t n;

    strcpy(h.name, "kv1");
    strcpy(h.driver, "uvm");
    memset(h.uuid, 0x11, 16);
    h.npages = 4096;
    h.page_size = 4096;
    h.interval_ms = 25;
    h.heartbeat_ms = 50;
    h.timeout_ms = 250;
    h.generation = 3;
    h.config = (const uint8_t *)cfg;
    h.config_len = (uint32_t)strlen(cfg);
    n = tdm_hello_encode(&h, buf);
    assert_int_equal(n, TDM_HELLO_FIXED + strlen(cfg));
    assert_int_equal(tdm_hello_decode(buf, n, &d, err, sizeof(err)), 0);
    assert_string_equal(d.name, "kv1");
    assert_string_equal(d.driver, "uvm");
    assert_int_equal(d.npages, 4096);
    assert_int_equal(d.generation, 3);
    assert_int_equal(d.config_len, strlen(cfg));
    assert_memory_equal(d.config, cfg, strlen(cfg));

    assert_int_equal(tdm_hello_decode(buf, TDM_HELLO_FIXED - 1, &d, err, sizeof(err)), -1);
    /* unterminated name */
    uint8_t bad[sizeof(buf)];
    memcpy(bad, buf, n);
    memset(bad, 'a', TDM_NAME_MAX);
    assert_int_equal(tdm_hello_decode(bad, n, &d, err, sizeof(err)), -1);
    /* junk after the NUL */
    memcpy(bad, buf, n);
    bad[10] = 'x';
    assert_int_equal(tdm_hello_decode(bad, n, &d, err, sizeof(err)), -1);
    /* name that is not a domain name */
    memcpy(bad, buf, n);
    memcpy(bad, "a/b", 3);
    assert_int_equal(tdm_hello_decode(bad, n, &d, err, sizeof(err)), -1);
    /* page size */
    memcpy(bad, buf, n);
    tdm_put_le32(bad + 104, 8192);
    assert_int_equal(tdm_hello_decode(bad, n, &d, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "page size"));
    /* zero pages */
    memcpy(bad, buf, n);
    tdm_put_le64(bad + 96, 0);
    assert_int_equal(tdm_hello_decode(bad, n, &d, err, sizeof(err)), -1);
    /* NUL inside the config */
    memcpy(bad, buf, n);
    bad[TDM_HELLO_FIXED + 2] = 0;
    assert_int_equal(tdm_hello_decode(bad, n, &d, err, sizeof(err)), -1);
}

static void test_pages(void **state)
{
    size_t n = tdm_pages_size(2);
    uint8_t *buf = tdm_calloc(1, n + 8);
    struct tdm_pages pg;
    char err[128];

    tdm_pages_hdr_encode(2, buf);
    tdm_put_le64(buf + 8, 5);
    tdm_put_le64(buf + 16, 9);
    buf[24] = 0x33;
    buf[24 + 4096] = 0x44;
    assert_int_equal(tdm_pages_decode(buf, n, &pg, err, sizeof(err)), 0);
    assert_int_equal(pg.count, 2);
    assert_int_equal(tdm_pages_pfn(&pg, 0), 5);
    assert_int_equal(tdm_pages_pfn(&pg, 1), 9);
    assert_int_equal(pg.data[0], 0x33);
    assert_int_equal(pg.data[4096], 0x44);
    assert_int_equal(tdm_pages_decode(buf, n - 1, &pg, err, sizeof(err)), -1);
    assert_int_equal(tdm_pages_decode(buf, n + 1, &pg, err, sizeof(err)), -1);
    tdm_pages_hdr_encode(0, buf);
    assert_int_equal(tdm_pages_decode(buf, 8, &pg, err, sizeof(err)), -1);
    tdm_pages_hdr_encode(TDM_PAGES_PER_FRAME + 1, buf);
    assert_int_equal(tdm_pages_decode(buf, n, &pg, err, sizeof(err)), -1);
    tdm_pages_hdr_encode(2, buf);
    buf[5] = 1;
    assert_int_equal(tdm_pages_decode(buf, n, &pg, err, sizeof(err)), -1);
    free(buf);
}

static void test_small_payloads(void **state)
{
    uint8_t buf[64];
    char err[128];
    struct tdm_epoch_end e = {.npages = 10, .state_len = 300, .frames = 2,
                              .capture_ns = 12345}, e2;
    struct tdm_heartbeat h = {.sent_ns = 9, .last_epoch = 8}, h2;
    struct tdm_hello_reply r = {.last_epoch = 77, .generation = 2}, r2;
    struct tdm_epoch_begin b = {.npages = 3, .state_len = 4}, b2;
    struct tdm_text_msg m;
    size_t n;

    tdm_epoch_end_encode(&e, buf);
    assert_int_equal(tdm_epoch_end_decode(buf, TDM_EPOCH_END_SIZE, &e2, err, sizeof(err)), 0);
    assert_int_equal(e2.npages, 10);
    assert_int_equal(e2.state_len, 300);
    assert_int_equal(e2.frames, 2);
    assert_int_equal(e2.capture_ns, 12345);
    assert_int_equal(tdm_epoch_end_decode(buf, TDM_EPOCH_END_SIZE - 1, &e2, err, sizeof(err)), -1);
    buf[20] = 1;
    assert_int_equal(tdm_epoch_end_decode(buf, TDM_EPOCH_END_SIZE, &e2, err, sizeof(err)), -1);

    tdm_heartbeat_encode(&h, buf);
    assert_int_equal(tdm_heartbeat_decode(buf, TDM_HEARTBEAT_SIZE, &h2, err, sizeof(err)), 0);
    assert_int_equal(h2.last_epoch, 8);
    assert_int_equal(tdm_heartbeat_decode(buf, 3, &h2, err, sizeof(err)), -1);

    tdm_hello_reply_encode(&r, buf);
    assert_int_equal(tdm_hello_reply_decode(buf, TDM_HELLO_REPLY_SIZE, &r2, err, sizeof(err)), 0);
    assert_int_equal(r2.last_epoch, 77);
    assert_int_equal(tdm_hello_reply_decode(buf, 17, &r2, err, sizeof(err)), -1);

    tdm_epoch_begin_encode(&b, buf);
    assert_int_equal(tdm_epoch_begin_decode(buf, TDM_EPOCH_BEGIN_SIZE, &b2, err, sizeof(err)), 0);
    assert_int_equal(b2.state_len, 4);
    assert_int_equal(tdm_epoch_begin_decode(buf, 0, &b2, err, sizeof(err)), -1);

    n = tdm_text_msg_encode(TDM_ERR_DOMAIN, "no\nway", buf, sizeof(buf));
    assert_int_equal(tdm_text_msg_decode(buf, n, &m, err, sizeof(err)), 0);
    assert_int_equal(m.code, TDM_ERR_DOMAIN);
    assert_string_equal(m.text, "no?way");
    assert_int_equal(tdm_text_msg_decode(buf, 2, &m, err, sizeof(err)), -1);

    assert_string_equal(tdm_msg_name(TDM_MSG_EPOCH_END), "EPOCH_END");
    assert_string_equal(tdm_msg_name(TDM_MSG_DISK_INFO), "DISK_INFO");
    assert_string_equal(tdm_msg_name(999), "UNKNOWN");
}

static void test_disk_info(void **state)
{
    uint8_t buf[TDM_DISK_INFO_SIZE];
    char err[128];
    struct tdm_disk_info d = {.size = 1 << 20, .base_epoch = 7,
                              .sync_epoch = 9}, d2 = {0};

    (void)state;
    tdm_disk_info_encode(&d, buf);
    assert_int_equal(tdm_disk_info_decode(buf, sizeof(buf), &d2, err, sizeof(err)), 0);
    assert_int_equal(d2.size, 1 << 20);
    assert_int_equal(d2.base_epoch, 7);
    assert_int_equal(d2.sync_epoch, 9);
    assert_int_equal(tdm_disk_info_decode(buf, sizeof(buf) - 1, &d2, err, sizeof(err)), -1);
    /* not a multiple of 512; empty; sync epoch not after the base */
    d.size = 1000;
    tdm_disk_info_encode(&d, buf);
    assert_int_equal(tdm_disk_info_decode(buf, sizeof(buf), &d2, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "multiple of 512"));
    d.size = 0;
    tdm_disk_info_encode(&d, buf);
    assert_int_equal(tdm_disk_info_decode(buf, sizeof(buf), &d2, err, sizeof(err)), -1);
    d.size = 4096;
    d.sync_epoch = 7;
    tdm_disk_info_encode(&d, buf);
    assert_int_equal(tdm_disk_info_decode(buf, sizeof(buf), &d2, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not after"));
    assert_int_equal(d2.size, 1 << 20);     /* untouched on error */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_need),
        cmocka_unit_test(test_every_bit_flip_rejected),
        cmocka_unit_test(test_header_checks),
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_pages),
        cmocka_unit_test(test_small_payloads),
        cmocka_unit_test(test_disk_info),
    };
    tdm_log_init("test-proto", true, TDM_LOG_ERR - 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
