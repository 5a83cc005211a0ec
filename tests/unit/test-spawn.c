/* SPDX-License-Identifier: LGPL-2.1-only */
/* libs/util/spawn.c alone (with util.c and log.c, which it uses). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tdm-spawn.h"
#include "tdm-util.h"

static void test_run_output_status_and_stderr(void **state)
{
    char *argv[] = {"sh", "-c", "echo out; echo first >&2; echo second >&2; "
                    "exit 3", NULL};
    char out[64], err[256];

    assert_int_equal(tdm_run(argv, 5000, out, sizeof(out), err, sizeof(err)),
                     3);
    assert_string_equal(out, "out\n");
    /* the first line of stderr, named */
    assert_non_null(strstr(err, "sh exited with 3: first"));
    assert_null(strstr(err, "second"));
}

static void test_run_stdin_is_dev_null(void **state)
{
    char *argv[] = {"cat", NULL};
    char out[16] = "x", err[128];

    /* with the test's own stdin it would wait for ever */
    assert_int_equal(tdm_run(argv, 5000, out, sizeof(out), err, sizeof(err)),
                     0);
    assert_string_equal(out, "");
}

static void test_run_times_out_and_kills(void **state)
{
    char *argv[] = {"sleep", "30", NULL};
    char err[256];
    uint64_t t0 = tdm_now_ns();

    assert_int_equal(tdm_run(argv, 200, NULL, 0, err, sizeof(err)), -1);
    assert_true(tdm_now_ns() - t0 < 3000000000ull);
    assert_non_null(strstr(err, "did not finish within 200 ms"));
    /* nothing left to reap: it was killed and waited for */
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void test_run_missing_program(void **state)
{
    char *argv[] = {"/nonexistent/tandem-helper", NULL};
    char err[256];

    assert_int_equal(tdm_run(argv, 1000, NULL, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot run /nonexistent/tandem-helper"));
}

static void test_child_wait_is_bounded(void **state)
{
    struct tdm_spawn s;
    char *argv[] = {"sleep", "30", NULL};
    char err[128];
    pid_t pid;
    uint64_t t0;

    tdm_spawn_init(&s);
    assert_int_equal(tdm_spawn(argv, &s, &pid, err, sizeof(err)), 0);
    t0 = tdm_now_ns();
    assert_int_equal(tdm_child_wait(pid, 100, NULL), -1);
    assert_true(tdm_now_ns() - t0 >= 100000000ull);
    assert_true(tdm_now_ns() - t0 < 2000000000ull);
    tdm_child_stop(pid, 1000);
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static int exit_42(void *arg)
{
    return *(int *)arg;
}

static void test_fork_call_status(void **state)
{
    struct tdm_spawn s;
    int v = 42, st;
    pid_t pid;

    tdm_spawn_init(&s);
    assert_int_equal(tdm_fork_call(exit_42, &v, &s, &pid, NULL, 0), 0);
    assert_int_equal(tdm_child_wait(pid, 5000, &st), 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 42);
}

static int say_parent(void *arg)
{
    dprintf(1, "%d\n", (int)getppid());   /* _exit: no stdio flush */
    return 0;
}

/* An orphan is not ours: it has another parent, outlives its wait, and
 * is watched with tdm_proc_gone. */
static void test_orphans(void **state)
{
    struct tdm_spawn s;
    char *argv[] = {"sleep", "30", NULL};
    char buf[32] = "";
    int p[2];
    pid_t pid;
    ssize_t n;

    assert_int_equal(pipe(p), 0);
    tdm_spawn_init(&s);
    s.orphan = true;
    s.stdout_fd = p[1];
    assert_int_equal(tdm_fork_call(say_parent, NULL, &s, &pid, NULL, 0), 0);
    close(p[1]);
    n = read(p[0], buf, sizeof(buf) - 1);
    close(p[0]);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_int_not_equal(atoi(buf), (int)getpid());
    assert_int_not_equal(atoi(buf), 0);

    tdm_spawn_init(&s);
    s.orphan = true;
    assert_int_equal(tdm_spawn(argv, &s, &pid, NULL, 0), 0);
    assert_false(tdm_proc_gone(pid));
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);  /* not our child */
    tdm_proc_stop(pid, 3000);
    for (int i = 0; i < 300 && !tdm_proc_gone(pid); i++)
        usleep(10000);
    assert_true(tdm_proc_gone(pid));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_output_status_and_stderr),
        cmocka_unit_test(test_run_stdin_is_dev_null),
        cmocka_unit_test(test_run_times_out_and_kills),
        cmocka_unit_test(test_run_missing_program),
        cmocka_unit_test(test_child_wait_is_bounded),
        cmocka_unit_test(test_fork_call_status),
        cmocka_unit_test(test_orphans),
    };
    tdm_log_init("test-spawn", true, TDM_LOG_WARNING);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
