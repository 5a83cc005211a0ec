/* SPDX-License-Identifier: LGPL-2.1-only */
/* tandem-xenstore(7) entries: decoding, checking, the domain
 * configuration rendered from them. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "tdm-cfg.h"
#include "tdm-xsconf.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_full_entry(void **state)
{
    const char *k[] = {"domain", "memory", "suspend", "netbuf", "backup",
                       "interval", "heartbeat", "timeout"};
    const char *v[] = {"7", "128", "pause", "plug", "10.0.0.2:7400", "100",
                       "500", "10000"};
    struct tdm_xsconf c;
    char err[256], cfg[1024];
    struct tdm_cfg parsed;

    assert_int_equal(tdm_xsconf_parse("web1", k, v, N(k), &c, err,
                                      sizeof(err)), 0);
    assert_string_equal(c.name, "web1");
    assert_string_equal(c.domain, "7");
    assert_int_equal(c.memory_mib, 128);
    assert_true(c.protect);
    assert_string_equal(c.host, "10.0.0.2");
    assert_int_equal(c.port, 7400);
    assert_int_equal(c.interval_ms, 100);
    assert_int_equal(c.heartbeat_ms, 500);
    assert_int_equal(c.timeout_ms, 10000);
    /* the rendered configuration parses back to the same values */
    assert_int_equal(tdm_xsconf_domain_cfg(&c, cfg, sizeof(cfg)), 0);
    tdm_cfg_init(&parsed);
    assert_int_equal(tdm_cfg_parse(&parsed, cfg, strlen(cfg), err,
                                   sizeof(err)), 0);
    assert_string_equal(tdm_cfg_get(&parsed, "name"), "web1");
    assert_string_equal(tdm_cfg_get(&parsed, "driver"), "xen");
    assert_string_equal(tdm_cfg_get(&parsed, "domain"), "7");
    assert_string_equal(tdm_cfg_get(&parsed, "memory"), "128");
    assert_string_equal(tdm_cfg_get(&parsed, "suspend"), "pause");
    assert_string_equal(tdm_cfg_get(&parsed, "netbuf"), "plug");
    assert_int_equal(tdm_cfg_check_unused(&parsed, err, sizeof(err)), 0);
    tdm_cfg_dispose(&parsed);
}

static void test_minimal_entry(void **state)
{
    const char *k[] = {"memory", "backup"};
    const char *v[] = {"64", ""};
    struct tdm_xsconf c, d;
    char err[256], cfg[1024];

    assert_int_equal(tdm_xsconf_parse("g", k, v, N(k), &c, err, sizeof(err)),
                     0);
    assert_string_equal(c.domain, "g");     /* the name, as xl takes it */
    assert_false(c.protect);                /* an empty backup: attach only */
    assert_int_equal(c.interval_ms, 0);     /* tandem.conf's */
    assert_int_equal(tdm_xsconf_domain_cfg(&c, cfg, sizeof(cfg)), 0);
    assert_null(strstr(cfg, "suspend"));
    assert_null(strstr(cfg, "netbuf"));

    /* a backup without a port gets tandem's */
    const char *k2[] = {"memory", "backup"};
    const char *v2[] = {"64", "backup-host"};
    assert_int_equal(tdm_xsconf_parse("g", k2, v2, 2, &d, err, sizeof(err)),
                     0);
    assert_int_equal(d.port, 7390);
    assert_true(tdm_xsconf_same_domain(&c, &d));
    assert_false(tdm_xsconf_same_protection(&c, &d));
    d.memory_mib = 65;
    assert_false(tdm_xsconf_same_domain(&c, &d));
}

/* Each bad entry is refused with a message naming its key, and the output
 * is left as it was. */
static void test_rejects(void **state)
{
    static const struct {
        const char *name, *k, *v, *want;
    } bad[] = {
        {"g", "memory", "8", "memory"},
        {"g", "memory", "12x", "memory"},
        {"g", "memory", "", "memory"},
        {"g", "suspend", "sometimes", "suspend"},
        {"g", "netbuf", "tc", "netbuf"},
        {"g", "backup", "host:99999", "backup"},
        {"g", "backup", "[::1", "backup"},
        {"g", "interval", "0", "interval"},
        {"g", "interval", "10001", "interval"},
        {"g", "heartbeat", "4", "heartbeat"},
        {"g", "timeout", "-1", "timeout"},
        {"g", "domain", "bad name", "domain"},
        {"g", "domain", "0", "domain"},         /* dom0 */
        {"g", "domain", "32752", "domain"},
        {"g", "domain", "a\"b", "domain"},
        {"g", "colour", "blue", "unknown key 'colour'"},
        {"g", "domain", "x\ny", "domain"},
        {"12", "memory", "64", "not a domain name"},
        {"a/b", "memory", "64", "not a domain name"},
        {"", "memory", "64", "not a domain name"},
    };
    for (size_t i = 0; i < N(bad); i++) {
        struct tdm_xsconf c;
        const char *k[] = {"memory", bad[i].k};
        const char *v[] = {"64", bad[i].v};
        size_t n = strcmp(bad[i].k, "memory") ? 2 : 1;
        char err[256] = "";

        if (n == 1) {
            k[0] = bad[i].k;
            v[0] = bad[i].v;
        }
        memset(&c, 0x5a, sizeof(c));
        if (tdm_xsconf_parse(bad[i].name, k, v, n, &c, err,
                             sizeof(err)) != -1)
            fail_msg("entry %zu (%s = %s) was taken", i, bad[i].k, bad[i].v);
        if (!strstr(err, bad[i].want))
            fail_msg("entry %zu (%s = %s): '%s' lacks '%s'", i, bad[i].k,
                     bad[i].v, err, bad[i].want);
        for (size_t j = 0; j < sizeof(c); j++)
            assert_int_equal(((unsigned char *)&c)[j], 0x5a);
    }
    /* memory is required; a key twice is an error */
    const char *k[] = {"backup"}, *v[] = {"h"};
    struct tdm_xsconf c;
    char err[256];
    assert_int_equal(tdm_xsconf_parse("g", k, v, 1, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "memory: required"));
    const char *k2[] = {"memory", "memory"}, *v2[] = {"64", "64"};
    assert_int_equal(tdm_xsconf_parse("g", k2, v2, 2, &c, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "twice"));
    /* a long value */
    char longv[300];
    memset(longv, 'a', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    const char *k3[] = {"memory", "backup"}, *v3[] = {"64", longv};
    assert_int_equal(tdm_xsconf_parse("g", k3, v3, 2, &c, err, sizeof(err)),
                     -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_entry),
        cmocka_unit_test(test_minimal_entry),
        cmocka_unit_test(test_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
