/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Disk replication end to end: nbdkit with the tandem plugin serves a
 * primary image; libnbd writes to it; this program plays tandemd on the
 * log socket (records into a write log over a backup image, cuts, commits)
 * and keeps a model of the primary's image at every epoch.
 *
 * Checked:
 *  - at each cut, the records logged before the cut's ack are exactly the
 *    changes acknowledged before the cut (the barrier); a write in flight
 *    across the cut lands in one epoch or the other, and the model follows;
 *  - after each commit, the backup equals the model at that epoch;
 *  - at random points the primary is killed (mid-epoch, with a write in
 *    flight, after a cut, after a commit): everything after the last
 *    committed epoch is dropped and the backup must equal the model at that
 *    epoch byte for byte, with none of the uncommitted writes in it; the
 *    backup then becomes the primary and the run goes on;
 *  - a log socket that breaks (peer closes, or a bad cut) fails every
 *    further change with EIO and applies none of them.
 *
 * BLKREP_SEED=N repeats a run; BLKREP_VERBOSE=1 runs nbdkit with -v.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libnbd.h>

#include "nbdkit-env.h"
#include "tdm-blkrep.h"
#include "tdm-util.h"

#define IMG_SIZE (16u << 20)
#define ITERATIONS 200          /* epochs cut */
#define NFAILOVERS 6
#define MAX_EPOCH 1024
#define MAX_SNAPS 8
#define WLOG_LIMIT (64u << 20)
#define TIMEOUT_MS 20000
#define WRITE_MIN 512           /* random data this long never repeats */
#define WRITE_MAX (64u << 10)
#define RANGE_MAX (1u << 20)    /* trim and zero */

enum phase {
    PH_MID,             /* killed after some writes of the open epoch */
    PH_INFLIGHT,        /* killed with a write on its way */
    PH_AFTER_CUT,       /* killed after a cut, before its commit */
    PH_AFTER_COMMIT,    /* killed right after a commit */
    PH_NONE,
};
static const char *const phase_name[] = {
    "mid-epoch", "write in flight", "after cut, before commit",
    "after commit",
};

struct rxrec {
    uint64_t epoch, offset;
    uint32_t len, crc;          /* crc of the data, WRITE only */
    uint16_t kind;
};

struct snap {
    uint64_t epoch;
    uint8_t *img;
};

static struct {
    char dir[64], primary[96], backup[96], logsock[96], nbdsock[96];
    char nbdkit[PATH_MAX], plugin[PATH_MAX];
    int listen_fd, log_fd, backup_fd, primary_fd;
    pid_t pid;
    struct nbd_handle *nbd;
    pthread_t rx;
    bool rx_running;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu, written by the receiver */
    struct tdm_wlog wlog;
    uint64_t acked;
    bool eof, failed;
    char why[512];
    size_t torn;                /* bytes of an unfinished record at EOF */
    uint64_t count[MAX_EPOCH];  /* records per epoch */
    struct rxrec *recs;
    size_t nrecs, caprecs, session_rec0;
    uint64_t total_records, total_bytes;

    /* main thread only */
    uint8_t *cur;               /* the primary's image as acknowledged */
    struct snap snaps[MAX_SNAPS];
    uint64_t epoch;             /* the primary's open epoch */
    uint64_t committed;
    uint64_t ops[MAX_EPOCH];    /* changes acknowledged per epoch */
    uint64_t rng;
    unsigned straddles_old, straddles_new, commits, compares;
} T = {.listen_fd = -1, .log_fd = -1, .backup_fd = -1, .primary_fd = -1,
       .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static uint8_t wbuf[WRITE_MAX];

static void cleanup(void)
{
    char p[128];

    if (T.pid > 0) {
        kill(T.pid, SIGKILL);
        waitpid(T.pid, NULL, 0);
        T.pid = 0;
    }
    if (!T.dir[0])
        return;
    unlink(T.primary);
    unlink(T.backup);
    unlink(T.logsock);
    unlink(T.nbdsock);
    snprintf(p, sizeof(p), "%s", T.dir);
    rmdir(p);
}

static _Noreturn void die(const char *fmt, ...) TDM_PRINTF(1, 2);
static _Noreturn void die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "FAIL: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (seed via BLKREP_SEED)\n");
    cleanup();
    exit(1);
}

static uint64_t rnd(void)
{
    /* xorshift64* */
    T.rng ^= T.rng >> 12;
    T.rng ^= T.rng << 25;
    T.rng ^= T.rng >> 27;
    return T.rng * 2685821657736338717ull;
}

static uint64_t below(uint64_t n)
{
    return rnd() % n;
}

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = rnd();
        memcpy(p + i, &v, TDM_MIN((size_t)8, n - i));
    }
}

static void read_image(int fd, uint8_t *buf)
{
    size_t got = 0;

    while (got < IMG_SIZE) {
        ssize_t r = pread(fd, buf + got, IMG_SIZE - got, (off_t)got);
        if (r <= 0)
            die("reading an image: %s", r < 0 ? strerror(errno) : "EOF");
        got += (size_t)r;
    }
}

static void write_image(int fd, const uint8_t *buf)
{
    size_t done = 0;

    while (done < IMG_SIZE) {
        ssize_t r = pwrite(fd, buf + done, IMG_SIZE - done, (off_t)done);
        if (r <= 0)
            die("writing an image: %s", strerror(errno));
        done += (size_t)r;
    }
}

static size_t first_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return i;
    return n;
}

static size_t count_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    size_t d = 0;

    for (size_t i = 0; i < n; i++)
        d += a[i] != b[i];
    return d;
}

static uint64_t now_ms(void)
{
    return tdm_now_ns() / 1000000;
}

/* ---- tandemd's side of the log socket ---- */

static void rx_fail(const char *fmt, ...) TDM_PRINTF(1, 2);
static void rx_fail(const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&T.mu);
    if (!T.failed) {
        va_start(ap, fmt);
        vsnprintf(T.why, sizeof(T.why), fmt, ap);
        va_end(ap);
    }
    T.failed = true;
    pthread_cond_broadcast(&T.cv);
    pthread_mutex_unlock(&T.mu);
}

/* Under mu. */
static void rx_note(const struct tdm_blk_rec *r)
{
    struct rxrec *x;

    if (T.nrecs == T.caprecs) {
        T.caprecs = T.caprecs ? T.caprecs * 2 : 1024;
        T.recs = tdm_realloc(T.recs, T.caprecs * sizeof(*T.recs));
    }
    x = &T.recs[T.nrecs++];
    x->epoch = r->epoch;
    x->offset = r->offset;
    x->len = r->len;
    x->kind = r->kind;
    x->crc = r->kind == TDM_BLK_WRITE ? tdm_crc32c(0, r->data, r->len) : 0;
    T.count[r->epoch]++;
    T.total_records++;
    T.total_bytes += tdm_blk_rec_data_len(r);
}

/* Consume what buf holds; returns bytes used, or -1 after rx_fail. */
static long rx_parse(const uint8_t *buf, size_t len)
{
    size_t off = 0;
    char err[256];

    while (len - off >= 4) {
        const uint8_t *p = buf + off;
        struct tdm_blk_rec r;
        size_t used;
        enum tdm_blk_dec d;

        if (tdm_get_le32(p) == TDM_BLK_ACK_MAGIC) {
            uint64_t e;

            if (len - off < TDM_BLK_CTL_SIZE)
                break;
            if (tdm_blk_ack_decode(p, &e, err, sizeof(err)) < 0) {
                rx_fail("log socket: %s", err);
                return -1;
            }
            pthread_mutex_lock(&T.mu);
            T.acked = e;
            pthread_cond_broadcast(&T.cv);
            pthread_mutex_unlock(&T.mu);
            off += TDM_BLK_CTL_SIZE;
            continue;
        }
        d = tdm_blk_rec_decode(p, len - off, &r, &used, err, sizeof(err));
        if (d == TDM_BLK_DEC_NEED)
            break;
        if (d == TDM_BLK_DEC_ERR) {
            rx_fail("log socket: %s", err);
            return -1;
        }
        if (r.epoch >= MAX_EPOCH) {
            rx_fail("record for epoch %" PRIu64 ", never cut", r.epoch);
            return -1;
        }
        pthread_mutex_lock(&T.mu);
        if (tdm_wlog_add_rec(&T.wlog, &r, err, sizeof(err)) < 0) {
            pthread_mutex_unlock(&T.mu);
            /* e.g. a record for an epoch already committed: the barrier
             * leaked */
            rx_fail("write log refused a record: %s", err);
            return -1;
        }
        rx_note(&r);
        pthread_cond_broadcast(&T.cv);
        pthread_mutex_unlock(&T.mu);
        off += used;
    }
    return (long)off;
}

static void *rx_main(void *arg)
{
    size_t cap = 1u << 20, len = 0;
    uint8_t *buf = tdm_malloc(cap);

    for (;;) {
        ssize_t r;
        long used;

        if (len == cap) {
            cap *= 2;
            buf = tdm_realloc(buf, cap);
        }
        r = read(T.log_fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rx_fail("reading the log socket: %s", strerror(errno));
            break;
        }
        if (r == 0) {
            pthread_mutex_lock(&T.mu);
            T.eof = true;
            T.torn = len;
            pthread_cond_broadcast(&T.cv);
            pthread_mutex_unlock(&T.mu);
            break;
        }
        len += (size_t)r;
        used = rx_parse(buf, len);
        if (used < 0)
            break;
        memmove(buf, buf + used, len - (size_t)used);
        len -= (size_t)used;
    }
    free(buf);
    return NULL;
}

/* Wait under mu for cond, failing on a receiver error or timeout. */
#define WAIT_FOR(cond, what)                                                  \
    do {                                                                      \
        uint64_t until_ = now_ms() + TIMEOUT_MS;                              \
        while (!(cond) && !T.failed) {                                        \
            struct timespec ts_;                                              \
            clock_gettime(CLOCK_REALTIME, &ts_);                              \
            ts_.tv_nsec += 50 * 1000000;                                      \
            if (ts_.tv_nsec >= 1000000000) {                                  \
                ts_.tv_sec++;                                                 \
                ts_.tv_nsec -= 1000000000;                                    \
            }                                                                 \
            pthread_cond_timedwait(&T.cv, &T.mu, &ts_);                       \
            if (now_ms() > until_) {                                          \
                pthread_mutex_unlock(&T.mu);                                  \
                die("timed out waiting for %s", what);                        \
            }                                                                 \
        }                                                                     \
        if (T.failed) {                                                       \
            pthread_mutex_unlock(&T.mu);                                      \
            die("%s", T.why);                                                 \
        }                                                                     \
    } while (0)

/* ---- the primary: nbdkit with the plugin ---- */


static void find_plugin(void)
{
    if (tdm_test_find_plugin(T.plugin, sizeof(T.plugin), "../..") < 0)
        die("plugin %s: %s (build it with make)", T.plugin, strerror(errno));
}

static void setup_dir(void)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd;

    strcpy(T.dir, "/tmp/blkrep-test-XXXXXX");
    if (!mkdtemp(T.dir))
        die("mkdtemp: %s", strerror(errno));
    snprintf(T.primary, sizeof(T.primary), "%s/primary.img", T.dir);
    snprintf(T.backup, sizeof(T.backup), "%s/backup.img", T.dir);
    snprintf(T.logsock, sizeof(T.logsock), "%s/log.sock", T.dir);
    snprintf(T.nbdsock, sizeof(T.nbdsock), "%s/nbd.sock", T.dir);

    for (int i = 0; i < 2; i++) {
        fd = open(i ? T.backup : T.primary, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd < 0 || ftruncate(fd, IMG_SIZE) < 0)
            die("creating an image: %s", strerror(errno));
        if (i)
            T.backup_fd = fd;
        else
            T.primary_fd = fd;
    }

    T.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (T.listen_fd < 0)
        die("socket: %s", strerror(errno));
    memcpy(sun.sun_path, T.logsock, strlen(T.logsock) + 1);
    if (bind(T.listen_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
        listen(T.listen_fd, 1) < 0)
        die("listening on %s: %s", T.logsock, strerror(errno));
}

static void start_primary(void)
{
    char file_arg[128], log_arg[128], epoch_arg[64];
    struct pollfd pfd = {.fd = T.listen_fd, .events = POLLIN};
    uint64_t until;
    char err[256];
    int r;

    snprintf(file_arg, sizeof(file_arg), "file=%s", T.primary);
    snprintf(log_arg, sizeof(log_arg), "log=%s", T.logsock);
    snprintf(epoch_arg, sizeof(epoch_arg), "epoch=%" PRIu64, T.epoch);
    unlink(T.nbdsock);

    T.pid = fork();
    if (T.pid < 0)
        die("fork: %s", strerror(errno));
    if (T.pid == 0) {
        char *argv[12];
        int n = 0;

        argv[n++] = "nbdkit";
        argv[n++] = "-U";
        argv[n++] = T.nbdsock;
        argv[n++] = "--exit-with-parent";
        argv[n++] = "-f";
        if (getenv("BLKREP_VERBOSE"))
            argv[n++] = "-v";
        argv[n++] = T.plugin;
        argv[n++] = file_arg;
        argv[n++] = log_arg;
        argv[n++] = epoch_arg;
        argv[n] = NULL;
        tdm_test_preload_asan();
        execv(T.nbdkit, argv);
        fprintf(stderr, "exec %s: %s\n", T.nbdkit, strerror(errno));
        _exit(127);
    }

    /* the plugin connects before nbdkit listens */
    until = now_ms() + TIMEOUT_MS;
    while ((r = poll(&pfd, 1, 100)) == 0) {
        int status;

        if (waitpid(T.pid, &status, WNOHANG) == T.pid) {
            T.pid = 0;
            die("nbdkit exited (status 0x%x) before connecting to the log",
                status);
        }
        if (now_ms() > until)
            die("nbdkit did not connect to the log socket");
    }
    if (r < 0)
        die("poll: %s", strerror(errno));
    T.log_fd = accept4(T.listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (T.log_fd < 0)
        die("accept: %s", strerror(errno));

    pthread_mutex_lock(&T.mu);
    T.eof = false;
    T.torn = 0;
    T.session_rec0 = T.nrecs;
    T.acked = 0;
    pthread_mutex_unlock(&T.mu);
    if (pthread_create(&T.rx, NULL, rx_main, NULL))
        die("pthread_create");
    T.rx_running = true;

    /* nbdkit binds, then listens: retry a refused connection for a while */
    until = now_ms() + TIMEOUT_MS;
    for (;;) {
        int status;

        T.nbd = nbd_create();
        if (!T.nbd)
            die("nbd_create: %s", nbd_get_error());
        if (nbd_connect_unix(T.nbd, T.nbdsock) == 0)
            break;
        snprintf(err, sizeof(err), "%s", nbd_get_error());
        nbd_close(T.nbd);
        T.nbd = NULL;
        if (waitpid(T.pid, &status, WNOHANG) == T.pid) {
            T.pid = 0;
            die("nbdkit exited (status 0x%x)", status);
        }
        if (now_ms() > until)
            die("connecting to nbdkit: %s", err);
        usleep(20000);
    }
    if (nbd_get_size(T.nbd) != IMG_SIZE)
        die("nbdkit serves %" PRId64 " bytes, not %u", nbd_get_size(T.nbd),
            IMG_SIZE);
    if (nbd_can_trim(T.nbd) != 1 || nbd_can_zero(T.nbd) != 1 ||
        nbd_can_flush(T.nbd) != 1)
        die("the plugin should offer trim, zero and flush");
}

/* Stop the primary; the receiver reads to the end of what it sent. With
 * SIGTERM nbdkit must unload the plugin and exit cleanly, and soon. */
static void kill_primary(int sig)
{
    uint64_t until = now_ms() + TIMEOUT_MS;
    int status;

    if (sig != SIGKILL) {
        /* nbdkit serves a connected client to its end, even on SIGTERM */
        nbd_shutdown(T.nbd, 0);
        nbd_close(T.nbd);
        T.nbd = NULL;
    }
    kill(T.pid, sig);
    while (waitpid(T.pid, &status, WNOHANG) != T.pid) {
        if (now_ms() > until)
            die("nbdkit did not exit on signal %d", sig);
        usleep(10000);
    }
    T.pid = 0;
    if (sig != SIGKILL && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        die("nbdkit exited with status 0x%x on signal %d", status, sig);
    if (T.rx_running) {
        pthread_join(T.rx, NULL);
        T.rx_running = false;
    }
    nbd_close(T.nbd);
    T.nbd = NULL;
    close(T.log_fd);
    T.log_fd = -1;
}

/* ---- the model ---- */

static struct snap *snap_find(uint64_t epoch)
{
    for (int i = 0; i < MAX_SNAPS; i++)
        if (T.snaps[i].img && T.snaps[i].epoch == epoch)
            return &T.snaps[i];
    return NULL;
}

static void snap_take(uint64_t epoch)
{
    for (int i = 0; i < MAX_SNAPS; i++) {
        if (!T.snaps[i].img) {
            T.snaps[i].epoch = epoch;
            T.snaps[i].img = tdm_malloc(IMG_SIZE);
            memcpy(T.snaps[i].img, T.cur, IMG_SIZE);
            return;
        }
    }
    die("more than %d epochs uncommitted", MAX_SNAPS - 1);
}

/* Keep the models of the committed epoch and the later ones up to
 * keep_hi. */
static void snap_prune(uint64_t keep_hi)
{
    for (int i = 0; i < MAX_SNAPS; i++) {
        if (T.snaps[i].img && (T.snaps[i].epoch < T.committed ||
                               T.snaps[i].epoch > keep_hi)) {
            free(T.snaps[i].img);
            T.snaps[i].img = NULL;
        }
    }
}

/* The backup image equals the model at the committed epoch; returns the
 * crc32c of both. */
static uint32_t check_backup(const char *when)
{
    static uint8_t img[IMG_SIZE];
    struct snap *s = snap_find(T.committed);
    size_t d;

    if (!s)
        die("no model for epoch %" PRIu64, T.committed);
    read_image(T.backup_fd, img);
    d = first_diff(img, s->img, IMG_SIZE);
    if (d != IMG_SIZE)
        die("%s: the backup differs from the model at epoch %" PRIu64
            " from byte %zu on (%zu bytes differ; backup crc32c %08x, "
            "model %08x)", when, T.committed, d,
            count_diff(img, s->img, IMG_SIZE),
            tdm_crc32c(0, img, IMG_SIZE), tdm_crc32c(0, s->img, IMG_SIZE));
    T.compares++;
    return tdm_crc32c(0, img, IMG_SIZE);
}

/* ---- changes ---- */

static void pick_range(uint32_t lo, uint32_t hi, uint64_t *off_r,
                       uint32_t *len_r)
{
    uint32_t len = lo + (uint32_t)below(hi - lo + 1);
    uint64_t off = below(IMG_SIZE - len + 1);

    if (below(2)) {             /* half of them sector-aligned */
        len = (len + 511) & ~511u;
        off &= ~(uint64_t)511;
        if (off + len > IMG_SIZE)
            off = IMG_SIZE - len;
    }
    *off_r = off;
    *len_r = len;
}

static void nbd_check(int r, const char *what)
{
    if (r < 0)
        die("%s: %s", what, nbd_get_error());
}

/* One random change, acknowledged before this returns. */
static void do_change(void)
{
    unsigned k = (unsigned)below(100);
    uint64_t off;
    uint32_t len;

    if (k < 50) {
        pick_range(WRITE_MIN, WRITE_MAX, &off, &len);
        fill_random(wbuf, len);
        nbd_check(nbd_pwrite(T.nbd, wbuf, len, off, 0), "nbd_pwrite");
        memcpy(T.cur + off, wbuf, len);
    } else if (k < 65) {
        pick_range(1, RANGE_MAX, &off, &len);
        nbd_check(nbd_trim(T.nbd, len, off, 0), "nbd_trim");
        memset(T.cur + off, 0, len);
    } else if (k < 88) {
        pick_range(1, RANGE_MAX, &off, &len);
        nbd_check(nbd_zero(T.nbd, len, off,
                           below(2) ? LIBNBD_CMD_FLAG_NO_HOLE : 0),
                  "nbd_zero");
        memset(T.cur + off, 0, len);
    } else if (k < 94) {
        nbd_check(nbd_flush(T.nbd, 0), "nbd_flush");
    } else {
        /* FUA: nbdkit adds a flush, so two records */
        pick_range(WRITE_MIN, WRITE_MAX, &off, &len);
        fill_random(wbuf, len);
        nbd_check(nbd_pwrite(T.nbd, wbuf, len, off, LIBNBD_CMD_FLAG_FUA),
                  "nbd_pwrite FUA");
        memcpy(T.cur + off, wbuf, len);
        T.ops[T.epoch]++;
    }
    T.ops[T.epoch]++;
}

static void send_cut(uint64_t epoch)
{
    uint8_t msg[TDM_BLK_CTL_SIZE];

    tdm_blk_cut_encode(epoch, msg);
    if (send(T.log_fd, msg, sizeof(msg), MSG_NOSIGNAL) != sizeof(msg))
        die("sending a cut: %s", strerror(errno));
}

/* Cut the open epoch. With straddle, a write is on its way while the cut
 * is; it may land on either side, and the stream says which. */
static void cut(bool straddle)
{
    uint64_t old = T.epoch, next = T.epoch + 1, off = 0, landed = 0;
    uint32_t len = 0, crc = 0;
    int64_t cookie = 0;
    bool new_side = false;

    if (next >= MAX_EPOCH)
        die("too many epochs");
    if (straddle) {
        pick_range(WRITE_MIN, WRITE_MAX, &off, &len);
        fill_random(wbuf, len);
        crc = tdm_crc32c(0, wbuf, len);
        cookie = nbd_aio_pwrite(T.nbd, wbuf, len, off, NBD_NULL_COMPLETION,
                                0);
        if (cookie < 0)
            die("nbd_aio_pwrite: %s", nbd_get_error());
        if (below(2))
            usleep((useconds_t)below(300));
    }
    send_cut(next);
    if (straddle) {
        int r;

        while ((r = nbd_aio_command_completed(T.nbd, (uint64_t)cookie)) == 0)
            nbd_check(nbd_poll(T.nbd, -1), "nbd_poll");
        nbd_check(r, "the write across the cut");
    }

    pthread_mutex_lock(&T.mu);
    WAIT_FOR(T.acked == next || T.eof, "the cut's ack");
    if (T.acked != next) {
        pthread_mutex_unlock(&T.mu);
        die("the log ended before the ack of the cut to %" PRIu64, next);
    }
    if (straddle) {
        /* acknowledged, so logged: find its record */
        bool found = false;

        size_t seen = T.session_rec0;

        while (!found) {
            for (size_t i = T.nrecs; i-- > seen && !found;) {
                const struct rxrec *x = &T.recs[i];
                if (x->kind == TDM_BLK_WRITE && x->offset == off &&
                    x->len == len && x->crc == crc) {
                    found = true;
                    landed = x->epoch;
                }
            }
            if (found)
                break;
            if (T.eof) {
                pthread_mutex_unlock(&T.mu);
                die("the log ended without the straddling write");
            }
            seen = T.nrecs;
            WAIT_FOR(T.nrecs > seen || T.eof, "the straddling write's record");
        }
        if (landed != old && landed != next) {
            pthread_mutex_unlock(&T.mu);
            die("a write across the cut %" PRIu64 " -> %" PRIu64
                " was logged in epoch %" PRIu64, old, next, landed);
        }
        new_side = landed == next;
        T.ops[landed]++;
    }
    if (T.count[old] != T.ops[old]) {
        uint64_t c = T.count[old];
        pthread_mutex_unlock(&T.mu);
        die("epoch %" PRIu64 ": %" PRIu64 " records logged before the cut's "
            "ack, %" PRIu64 " changes acknowledged in it", old, c,
            T.ops[old]);
    }
    pthread_mutex_unlock(&T.mu);

    if (straddle && !new_side) {
        memcpy(T.cur + off, wbuf, len);
        T.straddles_old++;
    }
    snap_take(old);
    if (straddle && new_side) {
        memcpy(T.cur + off, wbuf, len);
        T.straddles_new++;
    }
    T.epoch = next;
}

/* Commit closed epochs, leaving up to lag of them held. */
static void commit(unsigned lag)
{
    uint64_t closed = T.epoch - 1;
    uint64_t target = closed > T.committed + lag ? closed - lag : T.committed;
    char err[256];
    int r;

    if (target <= T.committed)
        return;
    pthread_mutex_lock(&T.mu);
    r = tdm_wlog_commit(&T.wlog, target, err, sizeof(err));
    pthread_mutex_unlock(&T.mu);
    if (r < 0)
        die("commit: %s", err);
    T.committed = target;
    T.commits++;
    check_backup("after a commit");
    snap_prune(UINT64_MAX);
}

/* ---- failover ---- */

struct fo_result {
    unsigned it;
    enum phase ph;
    uint64_t committed, open;
    uint64_t dropped, dropped_bytes, absent;
    size_t torn, changed;
    uint32_t crc;
};

static void failover(unsigned it, enum phase ph, bool inflight, uint64_t ioff,
                     uint32_t ilen, struct fo_result *res)
{
    static uint8_t img[IMG_SIZE];
    struct tdm_wlog_stats before, after;
    struct snap *base;
    char err[256];
    size_t torn;

    kill_primary(SIGKILL);

    pthread_mutex_lock(&T.mu);
    if (T.failed) {
        pthread_mutex_unlock(&T.mu);
        die("%s", T.why);
    }
    torn = T.torn;
    tdm_wlog_stats(&T.wlog, &before);
    if (tdm_wlog_drop_after(&T.wlog, T.committed, err, sizeof(err)) < 0) {
        pthread_mutex_unlock(&T.mu);
        die("drop_after: %s", err);
    }
    tdm_wlog_stats(&T.wlog, &after);
    if (after.held_records != 0 ||
        after.dropped_records - before.dropped_records !=
            before.held_records ||
        after.applied_records != before.applied_records)
        die("drop after epoch %" PRIu64 " left %" PRIu64 " records held",
            T.committed, after.held_records);
    pthread_mutex_unlock(&T.mu);

    /* the backup is the model at the committed epoch, byte for byte */
    res->crc = check_backup("after failover");

    /* none of the uncommitted writes is in it: each one's range reads
     * otherwise (its data is random and at least WRITE_MIN bytes) */
    read_image(T.backup_fd, img);
    res->absent = 0;
    pthread_mutex_lock(&T.mu);
    for (size_t i = T.session_rec0; i < T.nrecs; i++) {
        const struct rxrec *x = &T.recs[i];

        if (x->epoch <= T.committed || x->kind != TDM_BLK_WRITE)
            continue;
        if (tdm_crc32c(0, img + x->offset, x->len) == x->crc) {
            pthread_mutex_unlock(&T.mu);
            die("a write of uncommitted epoch %" PRIu64 " (%u bytes at "
                "%" PRIu64 ") is on the backup", x->epoch, x->len, x->offset);
        }
        res->absent++;
    }
    pthread_mutex_unlock(&T.mu);

    base = snap_find(T.committed);
    res->changed = count_diff(T.cur, base->img, IMG_SIZE);

    /* the primary's own image holds every acknowledged change */
    read_image(T.primary_fd, img);
    if (inflight) {
        /* the write on its way may be there in whole, in part or not */
        memcpy(img + ioff, T.cur + ioff, ilen);
    }
    if (memcmp(img, T.cur, IMG_SIZE) != 0)
        die("the primary image differs from its model at byte %zu",
            first_diff(img, T.cur, IMG_SIZE));

    res->it = it;
    res->ph = ph;
    res->committed = T.committed;
    res->open = T.epoch;
    res->dropped = before.held_records;
    res->dropped_bytes = before.held_bytes;
    res->torn = torn;

    /* the backup takes over: its image is the new primary's */
    memcpy(T.cur, base->img, IMG_SIZE);
    write_image(T.primary_fd, T.cur);
    T.epoch = T.committed + 1;
    snap_prune(T.committed);    /* those epochs are lost */
    pthread_mutex_lock(&T.mu);
    for (uint64_t e = T.committed + 1; e < MAX_EPOCH; e++)
        T.count[e] = T.ops[e] = 0;
    pthread_mutex_unlock(&T.mu);
    start_primary();
}

/* ---- a broken log ---- */

static void expect_eio(int r, const char *what)
{
    if (r != -1)
        die("%s succeeded with the log socket down", what);
    if (nbd_get_errno() != EIO)
        die("%s failed with %s, not EIO: %s", what,
            strerror(nbd_get_errno()), nbd_get_error());
}

/* Break the log (the peer closes it, or sends a bad cut); afterwards every
 * change fails with EIO and none reaches the image. */
static void broken_log(bool bad_cut)
{
    static uint8_t rbuf[WRITE_MAX];
    uint64_t off1 = 0, off2 = 1u << 20;
    uint32_t len = 8192;

    if (bad_cut) {
        send_cut(T.epoch);      /* not past the open epoch: a bad peer */
        /* the plugin shuts the socket down once it has read it */
        pthread_mutex_lock(&T.mu);
        WAIT_FOR(T.eof, "the plugin to give up the log");
        pthread_mutex_unlock(&T.mu);
    } else {
        shutdown(T.log_fd, SHUT_RDWR);
    }
    fill_random(wbuf, len);
    /* the first one may race the plugin's reader: it fails either way */
    expect_eio(nbd_pwrite(T.nbd, wbuf, len, off1, 0), "pwrite");
    expect_eio(nbd_pwrite(T.nbd, wbuf, len, off2, 0), "pwrite");
    expect_eio(nbd_trim(T.nbd, len, off2 + len, 0), "trim");
    expect_eio(nbd_zero(T.nbd, len, off2 + 2 * len, 0), "zero");
    expect_eio(nbd_flush(T.nbd, 0), "flush");
    expect_eio(nbd_pwrite(T.nbd, wbuf, len, off2 + 3 * len, 0), "pwrite");
    /* reads still work, and show none of the refused changes */
    nbd_check(nbd_pread(T.nbd, rbuf, 4 * len, off2, 0), "nbd_pread");
    if (memcmp(rbuf, T.cur + off2, 4 * len) != 0)
        die("a change refused with EIO reached the primary image");
}

int main(void)
{
    enum phase plan[ITERATIONS];
    struct fo_result fo[NFAILOVERS];
    const char *seed_env = getenv("BLKREP_SEED");
    uint64_t seed;
    unsigned nfo = 0, nchanged = 0;
    char err[256];

    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (!tdm_test_find_in_path("nbdkit", T.nbdkit, sizeof(T.nbdkit))) {
        printf("SKIP: nbdkit is not in PATH (apt-get install nbdkit)\n");
        return 77;
    }
    find_plugin();
    seed = seed_env ? strtoull(seed_env, NULL, 0)
                    : (tdm_wall_ns() ^ ((uint64_t)getpid() << 32));
    T.rng = seed ? seed : 1;
    printf("seed %" PRIu64 ", nbdkit %s, plugin %s\n", seed, T.nbdkit,
           T.plugin);

    setup_dir();
    T.cur = tdm_calloc(1, IMG_SIZE);
    tdm_wlog_init(&T.wlog);
    if (tdm_wlog_create(&T.wlog, T.backup_fd, IMG_SIZE, WLOG_LIMIT, 0, err,
                        sizeof(err)) < 0)
        die("%s", err);
    T.epoch = 1;
    snap_take(0);               /* epoch 0: the empty image */

    /* NFAILOVERS distinct iterations, each with its own phase */
    for (unsigned i = 0; i < ITERATIONS; i++)
        plan[i] = PH_NONE;
    for (unsigned n = 0; n < NFAILOVERS;) {
        unsigned it = 5 + (unsigned)below(ITERATIONS - 10);
        if (plan[it] != PH_NONE || plan[it - 1] != PH_NONE ||
            plan[it + 1] != PH_NONE)
            continue;
        /* every phase at least once */
        plan[it] = n < PH_NONE ? (enum phase)n : (enum phase)below(PH_NONE);
        n++;
    }

    start_primary();
    for (unsigned it = 0; it < ITERATIONS; it++) {
        enum phase ph = plan[it];
        unsigned nchg = (unsigned)below(7);
        unsigned lag = (unsigned)below(3);

        if (ph != PH_NONE) {
            nchg = 2 + nchg;    /* something to lose */
            lag = 1;            /* and a closed epoch held */
        }
        for (unsigned c = 0; c < nchg; c++)
            do_change();
        if (ph == PH_MID) {
            failover(it, ph, false, 0, 0, &fo[nfo++]);
            continue;
        }
        if (ph == PH_INFLIGHT) {
            uint64_t off;
            uint32_t len;

            pick_range(WRITE_MIN, WRITE_MAX, &off, &len);
            fill_random(wbuf, len);
            if (nbd_aio_pwrite(T.nbd, wbuf, len, off, NBD_NULL_COMPLETION,
                               0) < 0)
                die("nbd_aio_pwrite: %s", nbd_get_error());
            usleep((useconds_t)below(2000));
            failover(it, ph, true, off, len, &fo[nfo++]);
            continue;
        }
        cut(below(5) == 0);
        if (ph == PH_AFTER_CUT) {
            failover(it, ph, false, 0, 0, &fo[nfo++]);
            continue;
        }
        commit(lag);
        if (ph == PH_AFTER_COMMIT)
            failover(it, ph, false, 0, 0, &fo[nfo++]);
    }

    /* a clean end: everything committed, three images equal */
    cut(false);
    commit(0);
    {
        static uint8_t img[IMG_SIZE];

        read_image(T.primary_fd, img);
        if (memcmp(img, T.cur, IMG_SIZE) != 0)
            die("the primary image differs from its model at the end");
        printf("end: epoch %" PRIu64 " committed; primary, backup and model "
               "crc32c %08x %08x %08x\n", T.committed,
               tdm_crc32c(0, img, IMG_SIZE), check_backup("at the end"),
               tdm_crc32c(0, T.cur, IMG_SIZE));
    }

    for (unsigned i = 0; i < nfo; i++) {
        printf("failover %u at epoch-iteration %u (%s): committed %" PRIu64
               ", open %" PRIu64 "; dropped %" PRIu64 " records (%" PRIu64
               " bytes) of uncommitted epochs, torn tail %zu bytes; "
               "backup == model@%" PRIu64 " (crc32c %08x); %" PRIu64
               " uncommitted writes checked absent; the uncommitted epochs "
               "changed %zu bytes of the primary\n", i + 1, fo[i].it,
               phase_name[fo[i].ph], fo[i].committed, fo[i].open,
               fo[i].dropped, fo[i].dropped_bytes, fo[i].torn,
               fo[i].committed, fo[i].crc, fo[i].absent, fo[i].changed);
        nchanged += fo[i].changed > 0 && fo[i].absent > 0;
    }
    if (nfo != NFAILOVERS)
        die("%u failovers ran, %d planned", nfo, NFAILOVERS);
    /* a run whose failovers lost nothing would prove nothing */
    if (nchanged == 0)
        die("no failover had an uncommitted write to lose");

    /* the log breaks: the peer closes it */
    broken_log(false);
    kill_primary(SIGKILL);
    printf("log closed by the peer: every later change failed with EIO\n");
    /* and a peer that sends a bad cut: the plugin gives up the log */
    pthread_mutex_lock(&T.mu);
    tdm_wlog_drop_after(&T.wlog, T.committed, err, sizeof(err));
    pthread_mutex_unlock(&T.mu);
    start_primary();
    broken_log(true);
    kill_primary(SIGTERM);
    printf("bad cut from the peer: every later change failed with EIO; "
           "nbdkit then exited cleanly on SIGTERM\n");

    printf("PASS: %u epochs cut, %u commits, %u backup comparisons, "
           "%" PRIu64 " records (%" PRIu64 " data bytes), %u failovers, "
           "%u writes across a cut (%u old epoch, %u new)\n",
           ITERATIONS, T.commits, T.compares, T.total_records,
           T.total_bytes, nfo, T.straddles_old + T.straddles_new,
           T.straddles_old, T.straddles_new);
    tdm_wlog_dispose(&T.wlog);
    for (int i = 0; i < MAX_SNAPS; i++)
        free(T.snaps[i].img);
    free(T.cur);
    free(T.recs);
    close(T.listen_fd);
    close(T.backup_fd);
    close(T.primary_fd);
    cleanup();
    return 0;
}
