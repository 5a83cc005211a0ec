/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tdm-cfg.h"
#include "tdm-staging.h"
#include "tdm-util.h"

/* Known answers: RFC 3720 appendix B.4 and the "123456789" check value. */
static void test_crc32c_vectors(void **state)
{
    uint8_t zeros[32] = {0}, ones[32], inc[32];

    for (int i = 0; i < 32; i++) {
        ones[i] = 0xff;
        inc[i] = (uint8_t)i;
    }
    assert_int_equal(tdm_crc32c(0, "123456789", 9), 0xE3069283);
    assert_int_equal(tdm_crc32c(0, zeros, 32), 0x8A9136AA);
    assert_int_equal(tdm_crc32c(0, ones, 32), 0x62A8AB43);
    assert_int_equal(tdm_crc32c(0, inc, 32), 0x46DD794E);
    assert_int_equal(tdm_crc32c_sw(0, inc, 32), 0x46DD794E);
}

static void test_crc32c_chain_and_hw_match(void **state)
{
    uint8_t buf[5000];

    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    for (size_t off = 0; off < 9; off++) {
        uint32_t whole = tdm_crc32c(0, buf + off, sizeof(buf) - off);
        uint32_t split = tdm_crc32c(tdm_crc32c(0, buf + off, 1234), buf + off + 1234,
                                    sizeof(buf) - off - 1234);
        assert_int_equal(whole, split);
        assert_int_equal(whole, tdm_crc32c_sw(0, buf + off, sizeof(buf) - off));
    }
}

static void test_bitmap(void **state)
{
    uint64_t bm[4] = {0};

    tdm_bitmap_set(bm, 0);
    tdm_bitmap_set(bm, 63);
    tdm_bitmap_set(bm, 64);
    tdm_bitmap_set(bm, 200);
    assert_int_equal(tdm_bitmap_count(bm, 256), 4);
    assert_int_equal(tdm_bitmap_count(bm, 200), 3);
    assert_int_equal(tdm_bitmap_next(bm, 256, 1), 63);
    assert_int_equal(tdm_bitmap_next(bm, 256, 65), 200);
    assert_int_equal(tdm_bitmap_next(bm, 256, 201), 256);
    assert_int_equal(tdm_bitmap_next(bm, 150, 65), 150);
    tdm_bitmap_clear(bm, 63);
    assert_false(tdm_bitmap_test(bm, 63));
    assert_true(tdm_bitmap_test(bm, 64));
}

static void test_parse(void **state)
{
    uint64_t v;
    char host[64];
    uint16_t port;
    uint8_t mac[6];

    assert_int_equal(tdm_parse_u64("25", 1, 100, &v), 0);
    assert_int_equal(v, 25);
    assert_int_equal(tdm_parse_u64("0", 1, 100, &v), -1);
    assert_int_equal(tdm_parse_u64("101", 1, 100, &v), -1);
    assert_int_equal(tdm_parse_u64("1x", 1, 100, &v), -1);
    assert_int_equal(tdm_parse_u64("-1", 0, 100, &v), -1);
    assert_int_equal(tdm_parse_u64("", 0, 100, &v), -1);
    assert_int_equal(tdm_parse_u64("99999999999999999999999", 0, UINT64_MAX, &v), -1);

    assert_int_equal(tdm_parse_hostport("hostb:7000", 1, host, sizeof(host), &port), 0);
    assert_string_equal(host, "hostb");
    assert_int_equal(port, 7000);
    assert_int_equal(tdm_parse_hostport("10.0.0.2", 7390, host, sizeof(host), &port), 0);
    assert_int_equal(port, 7390);
    assert_int_equal(tdm_parse_hostport("[::1]:9", 1, host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(tdm_parse_hostport("h:0", 1, host, sizeof(host), &port), -1);
    assert_int_equal(tdm_parse_hostport("h:70000", 1, host, sizeof(host), &port), -1);
    assert_int_equal(tdm_parse_hostport("::1", 1, host, sizeof(host), &port), -1);
    assert_int_equal(tdm_parse_hostport("a b", 1, host, sizeof(host), &port), -1);
    assert_int_equal(tdm_parse_hostport(":5", 1, host, sizeof(host), &port), -1);

    assert_int_equal(tdm_parse_mac("52:54:00:12:34:56", mac), 0);
    assert_int_equal(mac[5], 0x56);
    assert_int_equal(tdm_parse_mac("53:54:00:12:34:56", mac), -1); /* multicast */
    assert_int_equal(tdm_parse_mac("52:54:00:12:34", mac), -1);
    assert_int_equal(tdm_parse_mac("52-54-00-12-34-56", mac), -1);
    assert_int_equal(tdm_parse_mac("52:54:00:12:34:5g", mac), -1);

    assert_true(tdm_valid_name("kv1"));
    assert_true(tdm_valid_name("web-01.prod"));
    assert_false(tdm_valid_name("123"));
    assert_false(tdm_valid_name(""));
    assert_false(tdm_valid_name("a/b"));
    assert_false(tdm_valid_name("-x"));
}

static void test_cfg(void **state)
{
    struct tdm_cfg c;
    char err[256];
    const char *good = "# a domain\nname = \"kv1\"\nmemory = 16  # MiB\n"
                       "extra=\"a \\\"b\\\"\"\n\n";
    uint64_t v;

    tdm_cfg_init(&c);
    assert_int_equal(tdm_cfg_parse(&c, good, strlen(good), err, sizeof(err)), 0);
    assert_string_equal(tdm_cfg_get(&c, "name"), "kv1");
    assert_string_equal(tdm_cfg_get(&c, "extra"), "a \"b\"");
    assert_int_equal(tdm_cfg_get_u64(&c, "memory", 0, 2, 1024, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 16);
    assert_int_equal(tdm_cfg_get_u64(&c, "memory", 0, 32, 1024, &v, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "memory"));
    assert_int_equal(tdm_cfg_check_unused(&c, err, sizeof(err)), 0);
    tdm_cfg_dispose(&c);

    const char *bad[] = {"name\n", "name = \"x\n", "= 3\n", "a = 1\na = 2\n",
                         "a = 1 2\n", "a = \"x\" y\n", "a = \"\\n\"\n", "a =\n"};
    for (size_t i = 0; i < TDM_ARRAY_SIZE(bad); i++) {
        tdm_cfg_init(&c);
        err[0] = '\0';
        assert_int_equal(tdm_cfg_parse(&c, bad[i], strlen(bad[i]), err, sizeof(err)), -1);
        assert_non_null(strstr(err, "line"));
        assert_int_equal(c.n, 0);
        tdm_cfg_dispose(&c);
    }

    const char *extra = "name = x\nbogus = 1\n";
    tdm_cfg_init(&c);
    assert_int_equal(tdm_cfg_parse(&c, extra, strlen(extra), err, sizeof(err)), 0);
    tdm_cfg_get(&c, "name");
    assert_int_equal(tdm_cfg_check_unused(&c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "bogus"));
    tdm_cfg_dispose(&c);
    tdm_cfg_dispose(&c); /* idempotent */
}

static void test_staging(void **state)
{
    struct tdm_staging st;
    uint8_t *slot;

    tdm_staging_init(&st);
    assert_int_equal(tdm_staging_alloc(&st, 4), 0);
    tdm_staging_reset(&st, 7);
    for (uint64_t pfn = 0; pfn < 4; pfn++) {
        slot = tdm_staging_add_page(&st, pfn);
        assert_non_null(slot);
        memset(slot, (int)pfn + 1, TDM_PAGE_SIZE);
    }
    assert_null(tdm_staging_add_page(&st, 0));   /* full */
    assert_int_equal(st.npages, 4);
    assert_int_equal(tdm_staging_page(&st, 2)[4095], 3);
    tdm_staging_reset(&st, 8);
    assert_null(tdm_staging_add_page(&st, 4));   /* pfn out of range */
    assert_int_equal(tdm_staging_set_state(&st, "abc", 3), 0);
    assert_int_equal(tdm_staging_append_state(&st, "de", 2), 0);
    assert_int_equal(st.state_len, 5);
    assert_memory_equal(st.state, "abcde", 5);
    assert_int_equal(tdm_staging_set_state(&st, NULL, TDM_STAGING_STATE_MAX + 1), -1);
    tdm_staging_dispose(&st);
    tdm_staging_dispose(&st);
}

/* A physmap with holes: few pages, pfns far apart (Xen's p2m). */
static void test_staging_sparse(void **state)
{
    struct tdm_staging st;

    (void)state;
    tdm_staging_init(&st);
    assert_int_equal(tdm_staging_alloc_sparse(&st, 2, 1), -1);  /* limit < cap */
    assert_int_equal(tdm_staging_alloc_sparse(&st, 2, 1u << 20), 0);
    tdm_staging_reset(&st, 1);
    assert_non_null(tdm_staging_add_page(&st, 0xfeff0));
    assert_null(tdm_staging_add_page(&st, 1u << 20));   /* at the limit */
    assert_non_null(tdm_staging_add_page(&st, 3));
    assert_null(tdm_staging_add_page(&st, 4));          /* full */
    assert_int_equal(st.pfns[0], 0xfeff0);
    tdm_staging_dispose(&st);
}

static void test_stat(void **state)
{
    struct tdm_stat s;

    tdm_stat_init(&s);
    assert_int_equal(tdm_stat_pct(&s, 50), 0);
    for (uint64_t i = 1; i <= 101; i++)
        tdm_stat_add(&s, i);
    assert_int_equal(tdm_stat_pct(&s, 50), 51);
    assert_int_equal(tdm_stat_pct(&s, 100), 101);
    assert_int_equal(tdm_stat_pct(&s, 0), 1);
    assert_int_equal(s.min, 1);
    assert_int_equal(s.max, 101);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_vectors),
        cmocka_unit_test(test_crc32c_chain_and_hw_match),
        cmocka_unit_test(test_bitmap),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_cfg),
        cmocka_unit_test(test_staging),
        cmocka_unit_test(test_staging_sparse),
        cmocka_unit_test(test_stat),
    };
    tdm_log_init("test-util", true, TDM_LOG_ERR - 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
