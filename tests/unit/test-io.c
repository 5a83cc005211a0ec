/* SPDX-License-Identifier: LGPL-2.1-only */
/* libs/util/io.c alone. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tdm-io.h"

/* pwrite, as io.c sees it: the real one, or one that makes no progress. */
static int pwrite_returns_zero;
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (pwrite_returns_zero)
        return 0;
    return syscall(SYS_pwrite64, fd, buf, n, off);
}

static int tmpfile_fd(void)
{
    char path[] = "/tmp/tandem-test-io.XXXXXX";
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

static void test_round_trip_and_eof(void **state)
{
    uint8_t a[100000], b[sizeof(a)];
    int fd = tmpfile_fd();

    for (size_t i = 0; i < sizeof(a); i++)
        a[i] = (uint8_t)(i * 13);
    assert_int_equal(tdm_pwrite_all(fd, a, sizeof(a), 4096), 0);
    assert_int_equal(tdm_pread_all(fd, b, sizeof(b), 4096), 0);
    assert_memory_equal(a, b, sizeof(a));
    /* past the end: an error, not a short read taken for data */
    errno = 0;
    assert_int_equal(tdm_pread_all(fd, b, 10, 4096 + sizeof(a) - 5), -1);
    assert_int_equal(errno, EIO);
    close(fd);
}

static void test_write_errors(void **state)
{
    int fd = tmpfile_fd(), ro;
    char path[64];
    uint8_t x = 1;

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ro = open(path, O_RDONLY);
    assert_true(ro >= 0);
    assert_int_equal(tdm_pwrite_all(ro, &x, 1, 0), -1);
    assert_int_equal(errno, EBADF);
    /* a write that makes no progress fails; it never loops */
    pwrite_returns_zero = 1;
    assert_int_equal(tdm_pwrite_all(fd, &x, 1, 0), -1);
    assert_int_equal(errno, EIO);
    pwrite_returns_zero = 0;
    close(ro);
    close(fd);
}

static void test_write_all_pipe(void **state)
{
    uint8_t a[200000], b[sizeof(a)];
    int p[2];
    size_t got = 0;

    memset(a, 0x5a, sizeof(a));
    assert_int_equal(pipe(p), 0);
    if (fork() == 0) {
        close(p[0]);
        _exit(tdm_write_all(p[1], a, sizeof(a)) ? 1 : 0);
    }
    close(p[1]);
    while (got < sizeof(b)) {
        ssize_t r = read(p[0], b + got, sizeof(b) - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    assert_memory_equal(a, b, sizeof(a));
    close(p[0]);
}

static void test_zero_range(void **state)
{
    static uint8_t a[1 << 20], b[1 << 20], z[1 << 20];
    struct stat sb;
    int fd = tmpfile_fd();

    memset(a, 0xff, sizeof(a));
    assert_int_equal(tdm_pwrite_all(fd, a, sizeof(a), 0), 0);
    assert_int_equal(tdm_zero_range(fd, 4096, 65536, TDM_ZERO_WRITE), 0);
    assert_int_equal(tdm_zero_range(fd, 512 * 1024, 100000, TDM_ZERO_PUNCH),
                     0);
    assert_int_equal(tdm_pread_all(fd, b, sizeof(b), 0), 0);
    assert_memory_equal(b, a, 4096);
    assert_memory_equal(b + 4096, z, 65536);
    assert_memory_equal(b + 4096 + 65536, a, 512 * 1024 - 4096 - 65536);
    assert_memory_equal(b + 512 * 1024, z, 100000);
    assert_memory_equal(b + 512 * 1024 + 100000, a,
                        sizeof(a) - 512 * 1024 - 100000);
    /* the size is kept */
    assert_int_equal(fstat(fd, &sb), 0);
    assert_int_equal(sb.st_size, sizeof(a));
    assert_int_equal(tdm_zero_range(fd, 0, 0, TDM_ZERO_PUNCH), 0);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_eof),
        cmocka_unit_test(test_write_errors),
        cmocka_unit_test(test_write_all_pipe),
        cmocka_unit_test(test_zero_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
