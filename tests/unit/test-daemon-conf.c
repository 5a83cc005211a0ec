/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tandemd.h"

static void test_good(void **state)
{
    struct tdmd_conf c;
    char err[256];
    const char *t = "# tandem.conf\nlisten = 10.0.0.1:7400\nsocket = \"/run/t.sock\"\n"
                    "log-level = debug\naccept-replicas = no\ninterval = 10\n"
                    "heartbeat = 20\ntimeout = 100\nfence = \"/tmp\"\n";

    tdmd_conf_default(&c);
    assert_int_equal(c.params.interval_ms, 25);
    assert_int_equal(tdmd_conf_parse(&c, t, strlen(t), err, sizeof(err)), 0);
    assert_string_equal(c.listen_addr, "10.0.0.1");
    assert_int_equal(c.listen_port, 7400);
    assert_string_equal(c.socket, "/run/t.sock");
    assert_int_equal(c.log_level, TDM_LOG_DEBUG);
    assert_false(c.accept_replicas);
    assert_int_equal(c.params.interval_ms, 10);
    assert_int_equal(c.params.timeout_ms, 100);
    assert_string_equal(c.fence, "/tmp");
    const char *none = "listen = none\n";
    assert_int_equal(tdmd_conf_parse(&c, none, strlen(none), err, sizeof(err)), 0);
    assert_true(c.listen_off);
}

static void test_bad_changes_nothing(void **state)
{
    const char *bad[] = {
        "listen = nowhere:99999\n", "socket = relative.sock\n",
        "log-level = loud\n", "accept-replicas = maybe\n", "interval = 0\n",
        "interval = 10001\n", "heartbeat = 50\ntimeout = 60\n",
        "fence = /nonexistent/dir\n", "colour = blue\n", "listen\n",
        "xenstore = maybe\n", "xenstore-root = relative\n",
        "xenstore-root = /tool/tandem/\n", "xenstore-root = \"/a b\"\n",
        "xenstore-root = /a//b\n",
    };
    struct tdmd_conf c, before;
    char err[256];

    tdmd_conf_default(&c);
    before = c;
    for (size_t i = 0; i < TDM_ARRAY_SIZE(bad); i++) {
        err[0] = '\0';
        assert_int_equal(tdmd_conf_parse(&c, bad[i], strlen(bad[i]), err, sizeof(err)), -1);
        assert_true(strlen(err) > 0);
        assert_memory_equal(&c, &before, sizeof(c));
    }
}

static void test_xenstore(void **state)
{
    struct tdmd_conf c;
    char err[256];
    const char *no = "xenstore = no\nxenstore-root = /tool/tandem-b\n";

    tdmd_conf_default(&c);
    assert_int_equal(c.xenstore, TDMD_XS_AUTO);
    assert_string_equal(c.xenstore_root, "/tool/tandem");
    assert_int_equal(tdmd_conf_parse(&c, no, strlen(no), err, sizeof(err)), 0);
    assert_int_equal(c.xenstore, TDMD_XS_NO);
    assert_string_equal(c.xenstore_root, "/tool/tandem-b");
#ifdef HAVE_XEN
    const char *yes = "xenstore = yes\n";
    assert_int_equal(tdmd_conf_parse(&c, yes, strlen(yes), err, sizeof(err)),
                     0);
    assert_int_equal(c.xenstore, TDMD_XS_YES);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad_changes_nothing),
        cmocka_unit_test(test_xenstore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
