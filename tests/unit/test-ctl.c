/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tdm-ctl.h"
#include "tdm-util.h"

static void params(yajl_gen g, void *arg)
{
    tdm_ctl_gen_kv_str(g, "name", "kv1");
    tdm_ctl_gen_kv_u64(g, "interval_ms", 10);
}

static void test_roundtrip(void **state)
{
    struct tdm_ctl_req r;
    size_t len;
    char *line = tdm_ctl_request("protect", params, NULL, &len), err[256];
    const char *s;
    uint64_t v;
    const char *const allowed[] = {"name", "interval_ms", NULL};
    const char *const fewer[] = {"name", NULL};

    assert_int_equal(line[len - 1], '\n');
    tdm_ctl_req_init(&r);
    assert_int_equal(tdm_ctl_req_parse(&r, line, len - 1, err, sizeof(err)), 0);
    assert_string_equal(r.method, "protect");
    assert_int_equal(tdm_ctl_params_only(&r, allowed, err, sizeof(err)), 0);
    assert_int_equal(tdm_ctl_params_only(&r, fewer, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "interval_ms"));
    assert_int_equal(tdm_ctl_param_str(&r, "name", true, &s, err, sizeof(err)), 0);
    assert_string_equal(s, "kv1");
    assert_int_equal(tdm_ctl_param_u64(&r, "interval_ms", 25, 1, 100, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 10);
    assert_int_equal(tdm_ctl_param_u64(&r, "interval_ms", 25, 20, 100, &v, err, sizeof(err)), -1);
    assert_int_equal(tdm_ctl_param_u64(&r, "absent", 25, 1, 100, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 25);
    assert_int_equal(tdm_ctl_param_str(&r, "interval_ms", true, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "string"));
    assert_int_equal(tdm_ctl_param_str(&r, "host", true, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "required"));
    tdm_ctl_req_dispose(&r);
    tdm_ctl_req_dispose(&r);
    free(line);
}

static void test_malformed(void **state)
{
    const char *bad[] = {
        "", "{", "[]", "42", "\"x\"", "{}", "{\"method\":1}",
        "{\"method\":\"\"}", "{\"method\":\"x\",\"params\":[]}",
        "{\"method\":\"x\",\"extra\":1}",
        "{\"method\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
        "{\"method\":\"x\"} trailing",
    };
    struct tdm_ctl_req r;
    char err[256];

    tdm_ctl_req_init(&r);
    for (size_t i = 0; i < TDM_ARRAY_SIZE(bad); i++) {
        err[0] = '\0';
        assert_int_equal(tdm_ctl_req_parse(&r, bad[i], strlen(bad[i]), err, sizeof(err)), -1);
        assert_true(strlen(err) > 0);
        assert_null(r.root);
    }
    assert_int_equal(tdm_ctl_req_parse(&r, "{\"method\":\"x\"}\0", 15, err, sizeof(err)), -1);
    /* negative and fractional numbers are not whole numbers */
    const char *nums = "{\"method\":\"p\",\"params\":{\"n\":-1,\"f\":1.5}}";
    assert_int_equal(tdm_ctl_req_parse(&r, nums, strlen(nums), err, sizeof(err)), 0);
    uint64_t v;
    assert_int_equal(tdm_ctl_param_u64(&r, "n", 0, 0, 10, &v, err, sizeof(err)), -1);
    assert_int_equal(tdm_ctl_param_u64(&r, "f", 0, 0, 10, &v, err, sizeof(err)), -1);
    tdm_ctl_req_dispose(&r);
}

static void test_replies(void **state)
{
    size_t len;
    yajl_gen g = tdm_ctl_reply_begin();
    char *line, err[256];
    yajl_val root, result;
    bool ok;

    yajl_gen_map_open(g);
    tdm_ctl_gen_kv_u64(g, "epochs", 7);
    yajl_gen_map_close(g);
    line = tdm_ctl_reply_end(g, &len);
    assert_int_equal(tdm_ctl_reply_parse(line, &root, &ok, &result, err, sizeof(err)), 0);
    assert_true(ok);
    assert_true(YAJL_IS_OBJECT(result));
    yajl_tree_free(root);
    free(line);

    line = tdm_ctl_reply_error("no domain named 'x' here", &len);
    assert_int_equal(tdm_ctl_reply_parse(line, &root, &ok, &result, err, sizeof(err)), 0);
    assert_false(ok);
    assert_string_equal(err, "no domain named 'x' here");
    yajl_tree_free(root);
    free(line);

    assert_int_equal(tdm_ctl_reply_parse("{\"ok\":3}", &root, &ok, &result, err, sizeof(err)), -1);
    assert_int_equal(tdm_ctl_reply_parse("nope", &root, &ok, &result, err, sizeof(err)), -1);
}

static void test_call_not_running(void **state)
{
    char *reply, err[256];

    assert_int_equal(tdm_ctl_call("/nonexistent/tandemd.sock", "{}\n", 3, 100,
                                  &reply, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "is it running"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_replies),
        cmocka_unit_test(test_call_not_running),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
