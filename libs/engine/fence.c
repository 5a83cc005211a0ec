/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Split-brain arbitration, after VMware FT: before a side runs a domain on
 * its own (the backup activating, or the primary going on without its
 * backup) it must win an atomic test-and-set on shared storage. The lease of
 * a domain is the file <fence dir>/<name>.lease holding its generation; the
 * side that finds the generation it knows and writes the next one wins, and
 * the other side, finding a newer generation, stops.
 *
 * POSIX record locks make the read-compare-write atomic between hosts on
 * storage that honours them (a local file system, NFS with lockd).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "engine-private.h"

static int lease_open(const char *dir, const char *name)
{
    char path[512];
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    int fd;

    snprintf(path, sizeof(path), "%s/%s.lease", dir, name);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_warn("fence %s", path);
        return -1;
    }
    while (fcntl(fd, F_SETLKW, &fl) < 0) {
        if (errno != EINTR) {
            log_warn("fence %s: lock", path);
            close(fd);
            return -1;
        }
    }
    return fd;
}

/* 0 if the lease is empty (never written). */
static int lease_read(int fd, uint64_t *gen_r)
{
    char buf[32];
    ssize_t r = pread(fd, buf, sizeof(buf) - 1, 0);

    if (r < 0) {
        log_warn("fence: read");
        return -1;
    }
    buf[r] = '\0';
    if (r == 0) {
        *gen_r = 0;
        return 0;
    }
    if (sscanf(buf, "%" SCNu64, gen_r) != 1) {
        log_warnx("fence: lease is corrupt ('%.20s')", buf);
        return -1;
    }
    return 0;
}

static int lease_write(int fd, uint64_t gen)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", gen);

    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n ||
        fsync(fd) < 0) {
        log_warn("fence: write");
        return -1;
    }
    return 0;
}

int tdm__fence_take(const char *dir, const char *name, uint64_t expect,
                    uint64_t *gen_r)
{
    uint64_t cur;
    int fd, rc = -1;

    *gen_r = expect + 1;
    if (!dir || !dir[0])
        return 1;
    fd = lease_open(dir, name);
    if (fd < 0)
        return -1;
    if (lease_read(fd, &cur) < 0)
        goto out;
    if (cur != expect && cur != 0) {
        *gen_r = cur;
        rc = 0;
        goto out;
    }
    if (lease_write(fd, expect + 1) < 0)
        goto out;
    log_info("%s: fence taken at generation %" PRIu64, name, expect + 1);
    rc = 1;
out:
    close(fd); /* releases the lock */
    return rc;
}

int tdm__fence_init(const char *dir, const char *name, uint64_t gen)
{
    int fd, rc;

    if (!dir || !dir[0])
        return 0;
    fd = lease_open(dir, name);
    if (fd < 0)
        return -1;
    rc = lease_write(fd, gen);
    close(fd);
    return rc;
}
