/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * nbdkit-tandem-plugin: serves a protected domain's disk image and sends
 * every change to it, tagged with its epoch, down a unix stream socket
 * (tandemd in production, the test's receiver in tests/blkrep).
 *
 *     nbdkit -U NBD.sock PLUGIN.so file=IMAGE log=LOG.sock [epoch=N]
 *            [mode=full|dirty] [reattach=yes]
 *
 * Each write, trim, zero and flush is applied to IMAGE, then its record
 * (tdm-blkrep.h) is written whole to the socket, and only then answered:
 * an acknowledged write is always in the log. Once the socket fails,
 * every later change fails with EIO; none is ever applied unreplicated.
 *
 * The peer moves the epoch with a cut; a reader thread applies it under the
 * same lock that a change holds from taking its epoch until its record is
 * on the socket, and answers with an ack written behind those records. So
 * an acknowledged write precedes the ack in the stream and belongs to the
 * old epoch; a change that takes the lock after the cut gets the new one.
 * A mode message is applied and answered the same way: in dirty mode (no
 * backup to feed) a change sends only its range.
 *
 * reattach=yes (a Xen guest's disk, which outlives tandemd): a log that
 * ends in dirty mode, where nothing is replicated, leaves the disk served
 * and its changes untracked, and the reader connects to LOG.sock again
 * every 200 ms. On a new connection it first writes a cut's ack with its
 * epoch, so that the new peer learns it; changes are logged from then on.
 * In full mode the end of the log is still the end of every change.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "tdm-blkrep.h"
#include "tdm-util.h"

/* One request at a time, all connections together: this makes the barrier
 * trivial. A change is answered only after its record is on the socket,
 * and at most one change is ever in the plugin, so every change answered
 * before a cut was read took the old epoch, and the cut's ack (sent under
 * the lock) follows its record in the stream. The lock is still needed
 * against the reader thread, which applies cuts between requests. Parallel
 * requests would keep the image and the log in the same order (both happen
 * under the lock) but are untested in this slice. */
#define THREAD_MODEL NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS

struct nbdkit_plugin *plugin_init(void);

static char *image_path;
static char *log_path;
static uint64_t first_epoch = 1;
static uint64_t first_mode = TDM_BLK_MODE_FULL;
static bool reattach;

#define REATTACH_MS 200

static int image_fd = -1;
static int log_fd = -1;
static uint64_t image_size;

static pthread_t reader;
static bool reader_started;

/* Held from a change's choice of epoch until its record is sent, and by a
 * cut from reading the new epoch until its ack is sent. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t epoch;          /* under lock */
static uint64_t log_mode;       /* under lock: enum tdm_blk_mode */
static bool broken;             /* under lock: the log socket is gone */
static bool detached;           /* under lock: gone in dirty mode (reattach) */

static void tandem_unload(void)
{
    if (reader_started) {
        /* quietly: this is no broken log */
        pthread_mutex_lock(&lock);
        broken = true;
        pthread_mutex_unlock(&lock);
        /* wakes the reader out of its read */
        shutdown(log_fd, SHUT_RDWR);
        pthread_join(reader, NULL);
        reader_started = false;
    }
    if (log_fd >= 0)
        close(log_fd);
    if (image_fd >= 0)
        close(image_fd);
    log_fd = image_fd = -1;
    free(image_path);
    free(log_path);
    image_path = log_path = NULL;
}

static int tandem_config(const char *key, const char *value)
{
    if (strcmp(key, "file") == 0) {
        free(image_path);
        image_path = nbdkit_realpath(value);
        return image_path ? 0 : -1;
    }
    if (strcmp(key, "log") == 0) {
        free(log_path);
        log_path = nbdkit_absolute_path(value);
        return log_path ? 0 : -1;
    }
    if (strcmp(key, "epoch") == 0) {
        if (nbdkit_parse_uint64_t("epoch", value, &first_epoch) < 0)
            return -1;
        if (first_epoch == 0) {
            nbdkit_error("epoch: must be at least 1");
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "mode") == 0) {
        if (strcmp(value, "full") == 0)
            first_mode = TDM_BLK_MODE_FULL;
        else if (strcmp(value, "dirty") == 0)
            first_mode = TDM_BLK_MODE_DIRTY;
        else {
            nbdkit_error("mode: 'full' or 'dirty', not '%s'", value);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "reattach") == 0) {
        int b = nbdkit_parse_bool(value);
        if (b < 0)
            return -1;
        reattach = b;
        return 0;
    }
    nbdkit_error("unknown parameter '%s'", key);
    return -1;
}

static int tandem_config_complete(void)
{
    struct sockaddr_un sun;

    if (!image_path || !log_path) {
        nbdkit_error("both file=IMAGE and log=SOCKET are required");
        return -1;
    }
    if (strlen(log_path) >= sizeof(sun.sun_path)) {
        nbdkit_error("log: socket path longer than %zu bytes",
                     sizeof(sun.sun_path) - 1);
        return -1;
    }
    epoch = first_epoch;
    log_mode = first_mode;
    return 0;
}

#define tandem_config_help \
    "file=IMAGE       (required) the disk image to serve\n" \
    "log=SOCKET       (required) unix socket that takes the write log\n" \
    "epoch=N          epoch of the first writes (default 1)\n" \
    "mode=full|dirty  log changes with their data (default), or only\n" \
    "                 which ranges changed, until the peer says otherwise\n" \
    "reattach=yes     a log that ends in dirty mode leaves the disk served,\n" \
    "                 untracked, until a peer listens on the log again"

static int log_connect(void)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    memcpy(sun.sun_path, log_path, strlen(log_path) + 1);
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Before nbdkit listens: a primary without its log never serves a byte. */
static int tandem_get_ready(void)
{
    struct stat sb;

    image_fd = open(image_path, O_RDWR | O_CLOEXEC);
    if (image_fd < 0) {
        nbdkit_error("open %s: %m", image_path);
        return -1;
    }
    if (fstat(image_fd, &sb) < 0) {
        nbdkit_error("fstat %s: %m", image_path);
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        nbdkit_error("%s: not a regular file", image_path);
        return -1;
    }
    image_size = (uint64_t)sb.st_size;

    log_fd = log_connect();
    if (log_fd < 0) {
        nbdkit_error("connect %s: %m", log_path);
        return -1;
    }
    nbdkit_debug("tandem: %s (%llu bytes), log %s, epoch %llu", image_path,
                 (unsigned long long)image_size, log_path,
                 (unsigned long long)epoch);
    return 0;
}

/* Called with lock held: from now on every change fails; or, with
 * reattach in dirty mode, goes untracked until the reader reconnects. */
static void set_broken(const char *why)
{
    if (reattach && log_mode == TDM_BLK_MODE_DIRTY && !broken) {
        if (!detached)
            nbdkit_error("log socket %s: %s; serving on in dirty mode, "
                         "changes untracked until tandemd listens again",
                         log_path, why);
        detached = true;
        shutdown(log_fd, SHUT_RDWR);
        return;
    }
    if (!broken)
        nbdkit_error("log socket %s: %s; refusing every further change",
                     log_path, why);
    broken = true;
    shutdown(log_fd, SHUT_RDWR);
}

static int send_all(struct iovec *iov, int iovcnt)
{
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};

    while (msg.msg_iovlen) {
        ssize_t r = sendmsg(log_fd, &msg, MSG_NOSIGNAL);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        while (msg.msg_iovlen && (size_t)r >= msg.msg_iov->iov_len) {
            r -= (ssize_t)msg.msg_iov->iov_len;
            msg.msg_iov++;
            msg.msg_iovlen--;
        }
        if (msg.msg_iovlen) {
            msg.msg_iov->iov_base = (uint8_t *)msg.msg_iov->iov_base + r;
            msg.msg_iov->iov_len -= (size_t)r;
        }
    }
    return 0;
}

/* Detached: connect to the log again, every REATTACH_MS, and tell the
 * new peer the epoch. False once unloading. */
static bool reconnect(void)
{
    uint8_t buf[TDM_BLK_CTL_SIZE];
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};

    for (;;) {
        int fd;

        pthread_mutex_lock(&lock);
        if (broken) {
            pthread_mutex_unlock(&lock);
            return false;
        }
        fd = log_connect();
        if (fd >= 0) {
            close(log_fd);
            log_fd = fd;
            tdm_blk_ack_encode(epoch, buf);
            if (send_all(&iov, 1) == 0) {
                detached = false;
                nbdkit_error("log socket %s: reattached in epoch %llu, dirty "
                             "mode", log_path, (unsigned long long)epoch);
                pthread_mutex_unlock(&lock);
                return true;
            }
        }
        pthread_mutex_unlock(&lock);
        usleep(REATTACH_MS * 1000);
    }
}

static void *reader_main(void *arg)
{
    uint8_t buf[TDM_BLK_CTL_SIZE];
    char err[128];

    for (;;) {
        size_t got = 0;
        uint64_t next;
        struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};

        while (got < sizeof(buf)) {
            ssize_t r = read(log_fd, buf + got, sizeof(buf) - got);
            bool again;

            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                pthread_mutex_lock(&lock);
                set_broken(r == 0 ? "closed by the peer" : strerror(errno));
                again = detached;
                pthread_mutex_unlock(&lock);
                if (again && reconnect()) {
                    got = 0;
                    continue;
                }
                return NULL;
            }
            got += (size_t)r;
        }
        pthread_mutex_lock(&lock);
        if (broken) {
            pthread_mutex_unlock(&lock);
            return NULL;
        }
        if (tdm_get_le32(buf) == TDM_BLK_MODE_MAGIC) {
            uint64_t m;

            if (tdm_blk_mode_decode(TDM_BLK_MODE_MAGIC, buf, &m, err,
                                    sizeof(err)) < 0) {
                set_broken(err);
            } else {
                /* every change made in the old mode has been sent */
                log_mode = m;
                tdm_blk_mode_encode(TDM_BLK_MODE_ACK_MAGIC, m, buf);
                if (send_all(&iov, 1) < 0)
                    set_broken(strerror(errno));
            }
        } else if (tdm_blk_cut_decode(buf, &next, err, sizeof(err)) < 0) {
            set_broken(err);
        } else if (next <= epoch) {
            tdm_errf(err, sizeof(err), "cut to epoch %llu, already in %llu",
                     (unsigned long long)next, (unsigned long long)epoch);
            set_broken(err);
        } else {
            /* every change holding a smaller epoch has been sent: we hold
             * the lock, and took it after them */
            epoch = next;
            tdm_blk_ack_encode(next, buf);
            if (send_all(&iov, 1) < 0)
                set_broken(strerror(errno));
        }
        pthread_mutex_unlock(&lock);
    }
}

static int tandem_after_fork(void)
{
    int r = pthread_create(&reader, NULL, reader_main, NULL);

    if (r) {
        errno = r;
        nbdkit_error("pthread_create: %m");
        return -1;
    }
    reader_started = true;
    return 0;
}

static void *tandem_open(int readonly)
{
    return NBDKIT_HANDLE_NOT_NEEDED;
}

static int64_t tandem_get_size(void *handle)
{
    return (int64_t)image_size;
}

static int tandem_can_write(void *handle) { return 1; }
static int tandem_can_flush(void *handle) { return 1; }
static int tandem_can_trim(void *handle) { return 1; }
static int tandem_can_zero(void *handle) { return 1; }
/* nbdkit turns FUA into a flush after the write, so it is replicated as a
 * FLUSH record like any other. */
static int tandem_can_fua(void *handle) { return NBDKIT_FUA_EMULATE; }

static int tandem_pread(void *handle, void *buf, uint32_t count,
                        uint64_t offset, uint32_t flags)
{
    uint8_t *p = buf;

    while (count) {
        ssize_t r = pread(image_fd, p, count, (off_t)offset);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            nbdkit_error("pread %s: %s", image_path, strerror(e));
            nbdkit_set_error(e);
            return -1;
        }
        if (r == 0) {
            /* the image shrank under us */
            nbdkit_error("pread %s: end of file at %llu", image_path,
                         (unsigned long long)offset);
            nbdkit_set_error(EIO);
            return -1;
        }
        p += r;
        count -= (uint32_t)r;
        offset += (uint64_t)r;
    }
    return 0;
}

static int pwrite_all(const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;

    while (len) {
        ssize_t r = pwrite(image_fd, p, len, (off_t)off);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* Make [off, off + len) read as zeroes, as the backup will: fallocate where
 * the file system can, zeroes written otherwise. */
static int zero_range(int mode, uint64_t off, uint32_t len)
{
    static const uint8_t zeroes[64 * 1024];

    if (fallocate(image_fd, mode | FALLOC_FL_KEEP_SIZE, (off_t)off,
                  (off_t)len) == 0)
        return 0;
    if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
        return -1;
    while (len) {
        uint32_t n = TDM_MIN(len, (uint32_t)sizeof(zeroes));

        if (pwrite_all(zeroes, n, off) < 0)
            return -1;
        off += n;
        len -= n;
    }
    return 0;
}

static int apply_local(const struct tdm_blk_rec *r)
{
    switch (r->kind) {
    case TDM_BLK_WRITE:
        return pwrite_all(r->data, r->len, r->offset);
    case TDM_BLK_TRIM:
        return zero_range(FALLOC_FL_PUNCH_HOLE, r->offset, r->len);
    case TDM_BLK_ZERO:
        return zero_range(FALLOC_FL_ZERO_RANGE, r->offset, r->len);
    case TDM_BLK_FLUSH:
        return fdatasync(image_fd);
    default:
        errno = EINVAL;
        return -1;
    }
}

/* Apply r to the image and send its record, tagged with the current epoch.
 * Fails with EIO, touching nothing, once the log is gone. */
static int replicate(struct tdm_blk_rec *r)
{
    uint8_t hdr[TDM_BLK_HDR_SIZE];
    struct iovec iov[2];
    struct tdm_blk_rec dirty;
    const struct tdm_blk_rec *sent = r;
    char err[160];
    int rc = -1, e = EIO;

    if (r->kind != TDM_BLK_FLUSH && r->len == 0)
        return 0;               /* nothing to change, nothing to log */

    pthread_mutex_lock(&lock);
    if (broken) {
        nbdkit_error("%s refused: the write log is down",
                     tdm_blk_kind_name(r->kind));
        goto out;
    }
    r->epoch = epoch;
    if (tdm_blk_rec_hdr(hdr, r, err, sizeof(err)) < 0) {
        nbdkit_error("%s", err);
        e = EINVAL;
        goto out;
    }
    if (log_mode == TDM_BLK_MODE_DIRTY) {
        /* only the range goes to the log, and a flush not at all */
        dirty = (struct tdm_blk_rec){.kind = TDM_BLK_DIRTY, .epoch = epoch,
                                     .offset = r->offset, .len = r->len};
        if (r->kind != TDM_BLK_FLUSH &&
            tdm_blk_rec_hdr(hdr, &dirty, err, sizeof(err)) < 0) {
            nbdkit_error("%s", err);
            e = EINVAL;
            goto out;
        }
        sent = r->kind == TDM_BLK_FLUSH ? NULL : &dirty;
    }
    if (apply_local(r) < 0) {
        /* the client sees the error; the range is undefined on both sides
         * and nothing was logged */
        e = errno;
        nbdkit_error("%s of %u bytes at %llu on %s: %s",
                     tdm_blk_kind_name(r->kind), r->len,
                     (unsigned long long)r->offset, image_path, strerror(e));
        goto out;
    }
    if (!sent || detached) {
        rc = 0;                 /* detached: dirty mode, nobody to tell */
        goto out;
    }
    iov[0] = (struct iovec){.iov_base = hdr, .iov_len = sizeof(hdr)};
    iov[1] = (struct iovec){.iov_base = (void *)sent->data,
                            .iov_len = tdm_blk_rec_data_len(sent)};
    if (send_all(iov, iov[1].iov_len ? 2 : 1) < 0) {
        set_broken(strerror(errno));
        if (detached)
            rc = 0;             /* dirty mode: only a range was owed */
        goto out;               /* else EIO: applied here, not replicated */
    }
    rc = 0;
out:
    pthread_mutex_unlock(&lock);
    if (rc < 0)
        nbdkit_set_error(e);
    return rc;
}

static int tandem_pwrite(void *handle, const void *buf, uint32_t count,
                         uint64_t offset, uint32_t flags)
{
    struct tdm_blk_rec r = {.kind = TDM_BLK_WRITE, .offset = offset,
                            .len = count, .data = buf};
    return replicate(&r);
}

static int tandem_trim(void *handle, uint32_t count, uint64_t offset,
                       uint32_t flags)
{
    struct tdm_blk_rec r = {.kind = TDM_BLK_TRIM, .offset = offset,
                            .len = count};
    return replicate(&r);
}

static int tandem_zero(void *handle, uint32_t count, uint64_t offset,
                       uint32_t flags)
{
    struct tdm_blk_rec r = {.kind = TDM_BLK_ZERO, .offset = offset,
                            .len = count};
    return replicate(&r);
}

static int tandem_flush(void *handle, uint32_t flags)
{
    struct tdm_blk_rec r = {.kind = TDM_BLK_FLUSH};
    return replicate(&r);
}

static struct nbdkit_plugin plugin = {
    .name = "tandem",
    .longname = "tandem replicated disk",
    .version = PACKAGE_VERSION,
    .description = "serves a disk image and logs every change to tandemd",
    .unload = tandem_unload,
    .config = tandem_config,
    .config_complete = tandem_config_complete,
    .config_help = tandem_config_help,
    .magic_config_key = "file",
    .get_ready = tandem_get_ready,
    .after_fork = tandem_after_fork,
    .open = tandem_open,
    .get_size = tandem_get_size,
    .can_write = tandem_can_write,
    .can_flush = tandem_can_flush,
    .can_trim = tandem_can_trim,
    .can_zero = tandem_can_zero,
    .can_fua = tandem_can_fua,
    .pread = tandem_pread,
    .pwrite = tandem_pwrite,
    .trim = tandem_trim,
    .zero = tandem_zero,
    .flush = tandem_flush,
};

NBDKIT_REGISTER_PLUGIN(plugin)
