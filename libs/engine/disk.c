/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Disk replication in the engine (issue 5; the pieces are in libs/blkrep).
 *
 * Primary. A domain configured with `disk = IMAGE` gets its disk from
 * nbdkit running our plugin (nbdkit-tandem-plugin.so) over IMAGE, on the
 * unix socket DISK_DIR/NAME.nbd; the driver's device model is told that
 * path (configuration key disk_nbd) and connects to it. The plugin applies
 * every change and writes its record to DISK_DIR/NAME.log before answering
 * it; a reader thread here takes the records off that socket (so a vCPU
 * thread blocked in a write never waits on the event loop) and queues them.
 * The event loop forwards queued records to the backup as DISK frames, in
 * stream order, never inside an epoch's frames.
 *
 * The barrier. In the pause of epoch N, with the guest stopped, the engine
 * sends the plugin a cut to N+1 and waits for its ack: every change the
 * plugin answered before the cut carries epoch <= N and its record is
 * queued ahead of the ack; every later one carries N+1. The epoch's frames
 * are sent after the queue has been forwarded, so on the backup every
 * record of epoch N precedes EPOCH_END N.
 *
 * Sync. After HELLO_REPLY the primary sends DISK_INFO and, before the first
 * epoch, reads the image (while the guest runs) and sends it as WRITE
 * records of the first epoch: the whole disk (all-zero chunks skipped: the
 * backup's new image reads as zeroes), or, when the backup still holds a
 * replica this primary synced (a short disconnect), only the regions
 * written after the backup's last applied epoch. Changes made meanwhile
 * are forwarded as they come; a chunk is read and queued in one event-loop
 * callback, so any change it misses follows it in the stream.
 *
 * Backup. The replica's image is DISK_DIR/NAME.img. During a full sync,
 * records of the sync epoch go straight to the image: it is no disk yet,
 * and nothing can be activated before that epoch commits. Every other
 * record is held in a write log (libs/blkrep/wlog.c) and applied when its
 * epoch's EPOCH_END arrives, just before the memory is applied; a torn
 * epoch's records are dropped whole. On activation the replica's image is
 * served the same way the primary's was, so the new primary can be
 * protected in turn.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine-private.h"
#include "tdm-blkrep.h"

extern char **environ;

#define DISK_CHUNK (1u << 20)           /* sync reads, forwarded records */
#define SYNC_WINDOW (8u << 20)          /* sync bytes queued to the peer */
/* Changes read off the log but not yet sent to the backup: past this the
 * reader stops reading, the plugin's log socket fills and the guest's
 * writes wait. A primary never writes faster than it replicates. */
#define BACKLOG_MAX (32u << 20)
#define BACKLOG_TICK_MS 5
#define CUT_TIMEOUT_MS 2000
#define START_TIMEOUT_MS 10000
#define REGION_MIN (64u << 10)
#define REGIONS_MAX (1u << 20)
#define SUN_MAX (sizeof(((struct sockaddr_un *)0)->sun_path))

/* A record as forwarded: header and data, encoded. */
struct drec {
    struct drec *next;
    uint64_t epoch;
    size_t len;
    uint8_t buf[];
};

/* A job for the backup's disk thread: one record of a full sync, or the
 * records of committed epochs (moved out of the write log). */
struct djob {
    struct djob *next;
    uint64_t cost;
    bool commit;
    uint64_t epoch;
    struct tdm_wlog w;          /* commit */
    struct tdm_blk_rec r;       /* direct; r.data points at data */
    uint8_t data[];
};

struct tdm__disk {
    struct tdm_engine *eng;
    bool backup;
    uint64_t size;
    char nbd_path[SUN_MAX];
    char log_path[SUN_MAX];
    char image[PATH_MAX];

    /* primary: nbdkit, its log and the reader thread */
    pid_t nbdkit_pid;
    bool own_child;             /* nbdkit is ours to reap (not persistent) */
    bool adopted;               /* nbdkit is an earlier tandemd's */
    int log_fd;
    int img_fd;                 /* read-only: sync reads */
    int wake_fd;
    struct event *wake_ev;
    struct event *backlog_ev;   /* while throttled: is the backlog gone? */
    pthread_t reader;
    bool reader_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* under lock */
    struct drec *qhead, *qtail;
    uint64_t qbytes;            /* queued record bytes */
    uint64_t peer_backlog;      /* bytes the loop has yet to send (loop) */
    bool pausing;               /* the loop is in a pause: read regardless */
    uint64_t throttle_count;
    bool stopping;
    uint64_t acked_cut;
    uint64_t dirty_records;     /* DIRTY records read */
    uint64_t mode_acks;         /* mode messages the plugin answered */
    uint64_t acked_mode;        /* and the last one's mode */
    bool broken, broken_told;
    bool throttled;
    char why[200];
    uint64_t *lw;               /* per region: last epoch that wrote it */
    unsigned region_shift;
    size_t nregions;

    /* primary, event loop only */
    uint64_t cur_epoch;         /* the plugin's epoch */
    uint64_t modes_sent;        /* mode messages sent to the plugin */
    bool forwarding;            /* records go to the backup */
    bool syncing;
    uint64_t sync_base, sync_epoch, sync_pos, sync_t0;
    uint64_t valid_from;        /* 0, or the epoch from whose ack on the
                                   current backup's disk matches */
    uint8_t *chunk;

    /* backup */
    int rep_fd;
    bool have_info, valid, activated;
    uint64_t rsync_epoch;
    struct tdm_wlog wlog;
    /* backup: the disk thread applies, in stream order, what the loop
     * hands it (writes of a full sync, committed epochs), so that a slow
     * disk never holds up the loop and its heartbeats. Under lock. */
    pthread_t bthread;
    bool bthread_started, bquit, jbusy, jfailed;
    struct djob *jhead, *jtail;
    uint64_t jcost, japplied;
    char jwhy[200];

    struct tdm_disk_stats st;
};

static void bthread_stop(struct tdm__disk *d);
static void pid_path(const struct tdm__disk *d, char *p, size_t len);
static void deadline_in(struct timespec *dl, int ms);
static int set_mode(struct tdm__disk *d, uint64_t m, bool wait, char *err,
                    size_t errlen);

static void drec_free_list(struct drec *r)
{
    while (r) {
        struct drec *n = r->next;
        free(r);
        r = n;
    }
}

/* ---- configuration ---- */

static int disk_paths(struct tdm_host *host, const char *name,
                      struct tdm__disk *d, char *err, size_t errlen)
{
    const char *dir = host->cfg.disk_dir;

    if ((size_t)snprintf(d->nbd_path, sizeof(d->nbd_path), "%s/%s.nbd", dir,
                         name) >= sizeof(d->nbd_path) ||
        (size_t)snprintf(d->log_path, sizeof(d->log_path), "%s/%s.log", dir,
                         name) >= sizeof(d->log_path))
        return tdm_errf(err, errlen, "disk-dir '%s' is too long for a unix "
                        "socket path (%zu bytes with the domain's name)", dir,
                        SUN_MAX - 1);
    return 0;
}

int tdm__disk_parse(struct tdm_host *host, struct tdm_cfg *cfg,
                    const char *name, bool replica, char *image_r,
                    size_t image_len, char *err, size_t errlen)
{
    const char *img = tdm_cfg_get(cfg, "disk");
    struct tdm__disk tmp;
    struct stat sb;

    image_r[0] = '\0';
    if (!img)
        return 0;
    if (tdm_cfg_get(cfg, "disk_nbd") || tdm_cfg_get(cfg, "disk_adopted"))
        return tdm_errf(err, errlen, "%s is set by tandem when disk is given: "
                        "remove it", tdm_cfg_get(cfg, "disk_nbd") ?
                        "disk_nbd" : "disk_adopted");
    if (img[0] != '/' || !tdm_strlcpy(image_r, img, image_len))
        return tdm_errf(err, errlen, "disk = '%s': expected an absolute path",
                        img);
    if (!replica) {
        if (stat(img, &sb) < 0)
            return tdm_errf(err, errlen, "disk = '%s': %s", img,
                            strerror(errno));
        if (!S_ISREG(sb.st_mode))
            return tdm_errf(err, errlen, "disk = '%s': not a regular file",
                            img);
        if (sb.st_size < 512 || sb.st_size % 512)
            return tdm_errf(err, errlen, "disk = '%s': %lld bytes, not a "
                            "whole number of 512-byte sectors", img,
                            (long long)sb.st_size);
    }
    if (disk_paths(host, name, &tmp, err, errlen) < 0)
        return -1;
    tdm_cfg_set(cfg, "disk_nbd", tmp.nbd_path);
    return 0;
}

/* ---- primary: the reader thread ---- */

static void set_broken_locked(struct tdm__disk *d, const char *why)
{
    if (!d->broken)
        tdm_strlcpy(d->why, why, sizeof(d->why));
    d->broken = true;
    pthread_cond_broadcast(&d->cond);
}

static void wake(struct tdm__disk *d)
{
    uint64_t one = 1;

    if (write(d->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        return; /* the loop drains it; nothing better to do */
}

/* Queue r (split into pieces of at most DISK_CHUNK) and mark its regions. */
/* The regions [off, off + len) touches were last written in epoch. */
static void mark_written(struct tdm__disk *d, uint64_t off, uint32_t len,
                         uint64_t epoch)
{
    if (!len)
        return;
    pthread_mutex_lock(&d->lock);
    for (size_t i = off >> d->region_shift;
         i <= (off + len - 1) >> d->region_shift && i < d->nregions; i++)
        if (d->lw[i] < epoch)
            d->lw[i] = epoch;
    pthread_mutex_unlock(&d->lock);
}

static int queue_rec(struct tdm__disk *d, const struct tdm_blk_rec *r,
                     char *err, size_t errlen)
{
    uint64_t done = 0;

    if (r->len && r->offset + r->len > d->size)
        return tdm_errf(err, errlen, "%s at %llu+%u beyond the disk's %llu "
                        "bytes", tdm_blk_kind_name(r->kind),
                        (unsigned long long)r->offset, r->len,
                        (unsigned long long)d->size);
    if (r->kind == TDM_BLK_DIRTY) {
        /* unprotected: which regions changed is all there is to keep */
        mark_written(d, r->offset, r->len, r->epoch);
        pthread_mutex_lock(&d->lock);
        d->dirty_records++;
        pthread_mutex_unlock(&d->lock);
        return 0;
    }
    do {
        struct tdm_blk_rec p = *r;
        uint32_t n = r->len - (uint32_t)done;
        struct drec *q;

        if (n > DISK_CHUNK && r->kind != TDM_BLK_FLUSH)
            n = DISK_CHUNK;
        p.offset = r->kind == TDM_BLK_FLUSH ? 0 : r->offset + done;
        p.len = r->kind == TDM_BLK_FLUSH ? 0 : n;
        p.data = r->kind == TDM_BLK_WRITE ? r->data + done : NULL;
        q = tdm_malloc(sizeof(*q) + TDM_BLK_HDR_SIZE + tdm_blk_rec_data_len(&p));
        if (tdm_blk_rec_hdr(q->buf, &p, err, errlen) < 0) {
            free(q);
            return -1;
        }
        if (p.data)
            memcpy(q->buf + TDM_BLK_HDR_SIZE, p.data, p.len);
        q->len = TDM_BLK_HDR_SIZE + tdm_blk_rec_data_len(&p);
        q->epoch = p.epoch;
        q->next = NULL;
        mark_written(d, p.offset, p.len, p.epoch);
        pthread_mutex_lock(&d->lock);
        if (d->qtail)
            d->qtail->next = q;
        else
            d->qhead = q;
        d->qtail = q;
        d->qbytes += q->len;
        pthread_mutex_unlock(&d->lock);
        done += n;
    } while (done < r->len);
    return 0;
}

static void *reader_main(void *arg)
{
    struct tdm__disk *d = arg;
    size_t cap = 1u << 20, have = 0;
    uint8_t *buf = tdm_malloc(cap);
    char err[200];

    for (;;) {
        ssize_t r;
        size_t off = 0;
        bool queued = false;

        pthread_mutex_lock(&d->lock);
        while (!d->stopping && !d->pausing &&
               d->qbytes + d->peer_backlog > BACKLOG_MAX) {
            if (!d->throttled)
                d->throttle_count++;
            d->throttled = true;
            pthread_cond_wait(&d->cond, &d->lock);
        }
        d->throttled = false;
        pthread_mutex_unlock(&d->lock);
        r = read(d->log_fd, buf + have, cap - have);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            pthread_mutex_lock(&d->lock);
            set_broken_locked(d, r == 0 ? "the plugin closed its write log"
                                        : strerror(errno));
            pthread_mutex_unlock(&d->lock);
            wake(d);
            break;
        }
        have += (size_t)r;
        while (have - off >= 4) {
            uint64_t e;
            struct tdm_blk_rec rec;
            size_t used;
            enum tdm_blk_dec dec;

            if (tdm_get_le32(buf + off) == TDM_BLK_MODE_ACK_MAGIC) {
                if (have - off < TDM_BLK_CTL_SIZE)
                    break;
                if (tdm_blk_mode_decode(TDM_BLK_MODE_ACK_MAGIC, buf + off, &e,
                                        err, sizeof(err)) < 0)
                    goto bad;
                pthread_mutex_lock(&d->lock);
                d->acked_mode = e;
                d->mode_acks++;
                pthread_cond_broadcast(&d->cond);
                pthread_mutex_unlock(&d->lock);
                off += TDM_BLK_CTL_SIZE;
                continue;
            }
            if (tdm_get_le32(buf + off) == TDM_BLK_ACK_MAGIC) {
                if (have - off < TDM_BLK_CTL_SIZE)
                    break;
                if (tdm_blk_ack_decode(buf + off, &e, err, sizeof(err)) < 0)
                    goto bad;
                pthread_mutex_lock(&d->lock);
                d->acked_cut = e;
                pthread_cond_broadcast(&d->cond);
                pthread_mutex_unlock(&d->lock);
                off += TDM_BLK_CTL_SIZE;
                continue;
            }
            dec = tdm_blk_rec_decode(buf + off, have - off, &rec, &used, err,
                                     sizeof(err));
            if (dec == TDM_BLK_DEC_ERR)
                goto bad;
            if (dec == TDM_BLK_DEC_NEED) {
                if (used > cap) {
                    /* only the unconsumed tail moves */
                    memmove(buf, buf + off, have - off);
                    have -= off;
                    off = 0;
                    cap = used;
                    buf = tdm_realloc(buf, cap);
                }
                break;
            }
            if (queue_rec(d, &rec, err, sizeof(err)) < 0)
                goto bad;
            queued = true;
            off += used;
        }
        memmove(buf, buf + off, have - off);
        have -= off;
        if (queued)
            wake(d);
        continue;
bad:
        pthread_mutex_lock(&d->lock);
        set_broken_locked(d, err);
        pthread_mutex_unlock(&d->lock);
        wake(d);
        shutdown(d->log_fd, SHUT_RDWR);
        break;
    }
    free(buf);
    return NULL;
}

/* ---- primary: forwarding ---- */

/* What the loop has yet to send, for the reader's throttle. A timer looks
 * again as the peer's output drains, while the reader waits or may be
 * about to: it throttles on the value it was last given, and with half
 * the bound or more still unsent the next record need not come (the reader
 * is not reading), so the timer must. */
static void backlog_update(struct tdm__disk *d)
{
    struct tdm_engine *eng = d->eng;
    uint64_t b = d->forwarding && eng->peer ? tdm__peer_pending(eng->peer) : 0;
    bool throttled;

    pthread_mutex_lock(&d->lock);
    d->peer_backlog = b;
    throttled = d->throttled;
    if (d->qbytes + b <= BACKLOG_MAX)
        pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    if ((throttled || b > BACKLOG_MAX / 2) && d->backlog_ev) {
        struct timeval tv = {0, BACKLOG_TICK_MS * 1000};
        evtimer_add(d->backlog_ev, &tv);
    }
}

static void backlog_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    backlog_update(arg);
}

static void forward_all(struct tdm__disk *d)
{
    struct tdm_engine *eng = d->eng;
    struct drec *q;
    bool told;
    char why[200];

    pthread_mutex_lock(&d->lock);
    q = d->qhead;
    d->qhead = d->qtail = NULL;
    d->qbytes = 0;
    told = !d->broken || d->broken_told;
    d->broken_told = d->broken;
    tdm_strlcpy(why, d->why, sizeof(why));
    pthread_mutex_unlock(&d->lock);
    if (!told)
        log_warnx("%s: disk write log broken (%s): the plugin now fails every "
                  "write to the disk; the guest sees I/O errors", eng->name,
                  why);
    for (struct drec *r = q; r; r = r->next) {
        if (d->forwarding && eng->peer) {
            struct iovec iov = {r->buf, r->len};
            tdm__peer_send(eng->peer, TDM_MSG_DISK, r->epoch, &iov, 1);
            d->st.records++;
            d->st.bytes += r->len - TDM_BLK_HDR_SIZE;
        } else {
            d->st.discarded++;
        }
    }
    drec_free_list(q);
    backlog_update(d);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tdm__disk *d = arg;
    uint64_t v;

    (void)what;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warn("%s: disk wake", d->eng->name);
    forward_all(d);
}

void tdm__disk_forward(struct tdm_engine *eng)
{
    if (eng->disk && !eng->disk->backup)
        forward_all(eng->disk);
}

/* ---- primary: start and stop nbdkit ---- */

static int wait_child_gone(pid_t pid, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return 0;
        usleep(10000);
    }
    return -1;
}

/* A process that is not ours is gone: no such pid, or a zombie waiting
 * for init. */
static bool proc_gone(pid_t pid)
{
    char p[64], buf[256], *rp;
    FILE *f;
    size_t n;

    if (kill(pid, 0) < 0)
        return errno == ESRCH;
    snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
    if (!(f = fopen(p, "r")))
        return true;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    rp = strrchr(buf, ')');     /* "pid (comm) S ..." */
    return rp && rp[1] == ' ' && rp[2] == 'Z';
}

static bool nbdkit_gone(struct tdm__disk *d)
{
    if (d->nbdkit_pid <= 0)
        return true;
    if (d->own_child)
        return waitpid(d->nbdkit_pid, NULL, WNOHANG) == d->nbdkit_pid;
    return proc_gone(d->nbdkit_pid);
}

static void stop_nbdkit(struct tdm__disk *d)
{
    char pidfile[SUN_MAX + 8];

    if (d->nbdkit_pid <= 0)
        return;
    kill(d->nbdkit_pid, SIGTERM);
    if (!d->own_child) {        /* init reaps it */
        for (int i = 0; i < 300 && !proc_gone(d->nbdkit_pid); i++)
            usleep(10000);
        if (!proc_gone(d->nbdkit_pid))
            kill(d->nbdkit_pid, SIGKILL);
    } else if (wait_child_gone(d->nbdkit_pid, 3000) < 0) {
        kill(d->nbdkit_pid, SIGKILL);
        waitpid(d->nbdkit_pid, NULL, 0);
    }
    d->nbdkit_pid = 0;
    pid_path(d, pidfile, sizeof(pidfile));
    unlink(pidfile);
}

static int unix_listen(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return tdm_errf(err, errlen, "socket: %s", strerror(errno));
    tdm_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
        listen(fd, 1) < 0) {
        tdm_errf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* nbdkit outlives tandemd where the guest does: a domain the driver
 * releases (xen) keeps its disk served when tandemd stops, and the plugin
 * waits for the next tandemd (reattach=yes). */
static bool persistent(const struct tdm__disk *d)
{
    return d->eng->drv->release != NULL;
}

static void pid_path(const struct tdm__disk *d, char *p, size_t len)
{
    snprintf(p, len, "%s.pid", d->nbd_path);
}

/* The image's fd for sync reads, its size and the region map. */
static int disk_setup(struct tdm__disk *d, const char *image, char *err,
                      size_t errlen)
{
    struct stat sb;

    if (image != d->image)
        tdm_strlcpy(d->image, image, sizeof(d->image));
    d->img_fd = open(image, O_RDONLY | O_CLOEXEC);
    if (d->img_fd < 0 || fstat(d->img_fd, &sb) < 0)
        return tdm_errf(err, errlen, "disk %s: %s", image, strerror(errno));
    d->size = (uint64_t)sb.st_size;
    d->st.size = d->size;
    d->region_shift = 16;
    while ((d->size >> d->region_shift) >= REGIONS_MAX)
        d->region_shift++;
    d->nregions = (size_t)((d->size + (1ull << d->region_shift) - 1) >>
                           d->region_shift);
    d->lw = tdm_calloc(d->nregions, sizeof(*d->lw));
    d->chunk = tdm_malloc(DISK_CHUNK);
    if (mkdir(d->eng->host->cfg.disk_dir, 0700) < 0 && errno != EEXIST)
        return tdm_errf(err, errlen, "disk-dir %s: %s",
                        d->eng->host->cfg.disk_dir, strerror(errno));
    return 0;
}

/* Wait up to START_TIMEOUT_MS from t0 for the plugin to connect to the
 * log socket lfd (closed here); d->nbdkit_pid, if not 0, is the nbdkit
 * just started. */
static int accept_log(struct tdm__disk *d, int lfd, uint64_t t0, char *err,
                      size_t errlen)
{
    for (;;) {
        struct pollfd pfd = {.fd = lfd, .events = POLLIN};
        if (d->nbdkit_pid > 0 && nbdkit_gone(d)) {
            d->nbdkit_pid = 0;
            close(lfd);
            return tdm_errf(err, errlen, "nbdkit exited at start (its message "
                            "is in the daemon's log)");
        }
        if (poll(&pfd, 1, 50) > 0)
            break;
        if (tdm_now_ns() - t0 > (uint64_t)START_TIMEOUT_MS * 1000000) {
            close(lfd);
            return tdm_errf(err, errlen, "nbdkit did not connect to its write "
                            "log within %d ms", START_TIMEOUT_MS);
        }
    }
    d->log_fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    close(lfd);
    unlink(d->log_path);
    if (d->log_fd < 0)
        return tdm_errf(err, errlen, "accept on %s: %s", d->log_path,
                        strerror(errno));
    return 0;
}

/* The reader thread and its wakeups: the log is connected. */
static int start_reader(struct tdm__disk *d, char *err, size_t errlen)
{
    struct tdm_host *host = d->eng->host;
    int r;

    d->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->wake_fd < 0)
        return tdm_errf(err, errlen, "eventfd: %s", strerror(errno));
    d->wake_ev = event_new(host->base, d->wake_fd, EV_READ | EV_PERSIST,
                           wake_cb, d);
    event_add(d->wake_ev, NULL);
    d->backlog_ev = evtimer_new(host->base, backlog_cb, d);
    r = pthread_create(&d->reader, NULL, reader_main, d);
    if (r)
        return tdm_errf(err, errlen, "pthread_create: %s", strerror(r));
    d->reader_started = true;
    return 0;
}

/* Start argv as an orphan: init's child, in a session of its own, so that
 * it outlives tandemd. Debian's nbdkit (1.32) ties itself to its parent's
 * life (PR_SET_PDEATHSIG) even without --exit-with-parent, so it must not
 * start while tandemd is its parent: an intermediate child forks it and
 * exits, and it waits for that before it runs nbdkit. Returns 0 with its
 * pid, or an errno value. */
static int spawn_orphan(char *const argv[], pid_t *pid_r)
{
    int p[2], st, e = 0;
    pid_t mid, pid = 0;

    if (pipe2(p, O_CLOEXEC) < 0)
        return errno;
    mid = fork();
    if (mid < 0) {
        e = errno;
        close(p[0]);
        close(p[1]);
        return e;
    }
    if (mid == 0) {
        pid_t me = getpid(), g;

        setsid();
        g = fork();
        if (g == 0) {
            static const char msg[] = "tandemd: cannot run nbdkit\n";

            while (getppid() == me)
                usleep(1000);
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL);
            execvp(argv[0], argv);
            if (write(2, msg, sizeof(msg) - 1) < 0)
                _exit(127);
            _exit(127);
        }
        if (write(p[1], &g, sizeof(g)) != (ssize_t)sizeof(g))
            _exit(1);
        _exit(g < 0 ? 1 : 0);
    }
    close(p[1]);
    while (waitpid(mid, &st, 0) < 0 && errno == EINTR)
        ;
    if (read(p[0], &pid, sizeof(pid)) != (ssize_t)sizeof(pid) || pid <= 0)
        e = ECHILD;
    close(p[0]);
    *pid_r = pid;
    return e;
}

/* Serve image over NBD through our plugin, its write log to us, first
 * epoch `epoch`. */
static int serve(struct tdm__disk *d, const char *image, uint64_t epoch,
                 char *err, size_t errlen)
{
    struct tdm_host *host = d->eng->host;
    char a_file[PATH_MAX + 8], a_log[SUN_MAX + 8], a_epoch[32];
    /* no backup yet: the plugin logs only which ranges change */
    char a_mode[] = "mode=dirty";
    char pidfile[SUN_MAX + 8];
    bool keep = persistent(d);
    /* nbdkit writes its pid file once it accepts connections */
    char *argv[] = {host->cfg.nbdkit, "-f", "-P", pidfile, "-U", d->nbd_path,
                    host->cfg.nbdkit_plugin, a_file, a_log, a_epoch, a_mode,
                    keep ? "reattach=yes" : "--exit-with-parent", NULL};
    int lfd, r;
    uint64_t t0;

    if (disk_setup(d, image, err, errlen) < 0)
        return -1;
    if (access(host->cfg.nbdkit_plugin, R_OK) < 0)
        return tdm_errf(err, errlen, "nbdkit plugin %s: %s (tandem.conf: "
                        "nbdkit-plugin)", host->cfg.nbdkit_plugin,
                        strerror(errno));
    lfd = unix_listen(d->log_path, err, errlen);
    if (lfd < 0)
        return -1;
    unlink(d->nbd_path);
    pid_path(d, pidfile, sizeof(pidfile));
    unlink(pidfile);
    snprintf(a_file, sizeof(a_file), "file=%s", image);
    snprintf(a_log, sizeof(a_log), "log=%s", d->log_path);
    snprintf(a_epoch, sizeof(a_epoch), "epoch=%llu", (unsigned long long)epoch);
    if (keep) {
        r = spawn_orphan(argv, &d->nbdkit_pid);
    } else {
        r = posix_spawnp(&d->nbdkit_pid, host->cfg.nbdkit, NULL, NULL, argv,
                         environ);
        d->own_child = r == 0;
    }
    if (r) {
        close(lfd);
        d->nbdkit_pid = 0;
        return tdm_errf(err, errlen, "cannot run %s: %s (tandem.conf: nbdkit)",
                        host->cfg.nbdkit, strerror(r));
    }
    /* The plugin connects to the log before nbdkit listens. */
    t0 = tdm_now_ns();
    if (accept_log(d, lfd, t0, err, errlen) < 0)
        return -1;
    while (access(pidfile, F_OK) < 0) {
        if (nbdkit_gone(d)) {
            d->nbdkit_pid = 0;
            return tdm_errf(err, errlen, "nbdkit exited at start (its message "
                            "is in the daemon's log)");
        }
        if (tdm_now_ns() - t0 > (uint64_t)START_TIMEOUT_MS * 1000000)
            return tdm_errf(err, errlen, "nbdkit did not serve %s within %d "
                            "ms", d->nbd_path, START_TIMEOUT_MS);
        usleep(5000);
    }
    if (!keep)
        unlink(pidfile);        /* kept: the next tandemd finds nbdkit */
    d->cur_epoch = epoch;
    if (start_reader(d, err, errlen) < 0)
        return -1;
    log_info("%s: disk %s (%llu MiB) served on %s by nbdkit (pid %d), epoch "
             "%llu", d->eng->name, image,
             (unsigned long long)(d->size >> 20), d->nbd_path,
             (int)d->nbdkit_pid, (unsigned long long)epoch);
    return 0;
}

/* The pid of the nbdkit an earlier tandemd left serving this disk, or 0. */
static pid_t left_nbdkit(const struct tdm__disk *d)
{
    char p[SUN_MAX + 8], comm[32] = "";
    long pid = 0;
    FILE *f;

    pid_path(d, p, sizeof(p));
    if (!(f = fopen(p, "r")))
        return 0;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    if (pid <= 1 || pid > INT_MAX || kill((pid_t)pid, 0) < 0) {
        log_info("%s: %s: no nbdkit left serving the disk (pid %ld: %s)",
                 d->eng->name, p, pid, pid <= 1 || pid > INT_MAX ?
                 "not a pid" : strerror(errno));
        return 0;
    }
    snprintf(p, sizeof(p), "/proc/%ld/comm", pid);
    if ((f = fopen(p, "r"))) {
        if (!fgets(comm, sizeof(comm), f))
            comm[0] = '\0';
        fclose(f);
    }
    if (strncmp(comm, "nbdkit", 6)) {
        log_info("%s: pid %ld of the disk's pid file is not nbdkit but "
                 "'%.*s'", d->eng->name, pid, (int)strcspn(comm, "\n"), comm);
        return 0;
    }
    return (pid_t)pid;
}

/* Take over the nbdkit an earlier tandemd left serving the guest's disk:
 * its plugin connects to the log again and says its epoch. The changes it
 * made meanwhile went untracked: nothing here claims them, so the next
 * protection syncs the whole disk (a new engine has no valid_from). */
static int adopt(struct tdm__disk *d, const char *image, pid_t pid, char *err,
                 size_t errlen)
{
    struct timespec dl;
    uint64_t t0 = tdm_now_ns();
    int lfd;

    if (disk_setup(d, image, err, errlen) < 0)
        return -1;
    lfd = unix_listen(d->log_path, err, errlen);
    if (lfd < 0)
        return -1;
    if (accept_log(d, lfd, t0, err, errlen) < 0)
        return tdm_errf(err, errlen, "nbdkit (pid %d), left serving %s by an "
                        "earlier tandemd, did not connect to its write log "
                        "within %d ms", (int)pid, d->nbd_path,
                        START_TIMEOUT_MS);
    d->nbdkit_pid = pid;
    d->adopted = true;
    if (start_reader(d, err, errlen) < 0)
        return -1;
    deadline_in(&dl, CUT_TIMEOUT_MS);
    pthread_mutex_lock(&d->lock);
    while (!d->acked_cut && !d->broken)
        if (pthread_cond_timedwait(&d->cond, &d->lock, &dl) == ETIMEDOUT)
            break;
    d->cur_epoch = d->acked_cut;
    pthread_mutex_unlock(&d->lock);
    if (!d->cur_epoch)
        return tdm_errf(err, errlen, "nbdkit (pid %d) did not say its epoch",
                        (int)pid);
    log_notice("%s: disk %s: took over nbdkit (pid %d), which an earlier "
               "tandemd left serving %s, in epoch %llu; what changed "
               "meanwhile is untracked, so the next protection copies the "
               "whole disk", d->eng->name, image, (int)pid, d->nbd_path,
               (unsigned long long)d->cur_epoch);
    return 0;
}

static struct tdm__disk *disk_new(struct tdm_engine *eng, bool backup)
{
    struct tdm__disk *d = tdm_calloc(1, sizeof(*d));

    d->eng = eng;
    d->backup = backup;
    d->log_fd = d->img_fd = d->wake_fd = d->rep_fd = -1;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    tdm_wlog_init(&d->wlog);
    d->st.present = true;
    return d;
}

/* Stop serving: the driver has closed its connection by now. Or, with
 * leave, stop logging only: nbdkit serves on, for a guest that runs on
 * (its plugin, in dirty mode, waits for the next tandemd). */
static void unserve(struct tdm__disk *d, bool leave)
{
    /* nbdkit first: with its log gone first it would complain */
    if (!leave)
        stop_nbdkit(d);
    pthread_mutex_lock(&d->lock);
    d->stopping = true;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    if (d->reader_started) {
        shutdown(d->log_fd, SHUT_RDWR);
        pthread_join(d->reader, NULL);
        d->reader_started = false;
    }
    if (d->wake_ev)
        event_free(d->wake_ev);
    if (d->backlog_ev)
        event_free(d->backlog_ev);
    d->wake_ev = d->backlog_ev = NULL;
    if (d->wake_fd >= 0)
        close(d->wake_fd);
    if (d->log_fd >= 0)
        close(d->log_fd);
    if (d->img_fd >= 0)
        close(d->img_fd);
    d->wake_fd = d->log_fd = d->img_fd = -1;
    if (d->nbd_path[0] && !leave)
        unlink(d->nbd_path);
    drec_free_list(d->qhead);
    d->qhead = d->qtail = NULL;
    free(d->lw);
    d->lw = NULL;
    free(d->chunk);
    d->chunk = NULL;
}

int tdm__disk_start(struct tdm_engine *eng, const char *image, char *err,
                    size_t errlen)
{
    struct tdm__disk *d;

    if (!image[0])
        return 0;
    d = disk_new(eng, false);
    eng->disk = d;
    if (disk_paths(eng->host, eng->name, d, err, errlen) < 0)
        return -1;  /* the engine's free cleans up */
    if (persistent(d)) {
        pid_t pid = left_nbdkit(d);
        if (pid > 0) {
            if (adopt(d, image, pid, err, errlen) < 0)
                return -1;
            /* the driver finds the guest's disk attached already */
            tdm_cfg_set(&eng->cfg, "disk_adopted", "yes");
            return 0;
        }
    }
    return serve(d, image, eng->epoch + 1, err, errlen);
}

bool tdm__disk_adopted(struct tdm_engine *eng)
{
    return eng->disk && eng->disk->adopted;
}

int tdm__disk_replica(struct tdm_engine *eng, const char *image, char *err,
                      size_t errlen)
{
    struct tdm__disk *d;

    if (!image[0])
        return 0;
    d = disk_new(eng, true);
    eng->disk = d;
    if (disk_paths(eng->host, eng->name, d, err, errlen) < 0)
        return -1;
    if ((size_t)snprintf(d->image, sizeof(d->image), "%s/%s.img",
                         eng->host->cfg.disk_dir, eng->name) >=
        sizeof(d->image))
        return tdm_errf(err, errlen, "disk-dir too long");
    if (mkdir(eng->host->cfg.disk_dir, 0700) < 0 && errno != EEXIST)
        return tdm_errf(err, errlen, "disk-dir %s: %s",
                        eng->host->cfg.disk_dir, strerror(errno));
    return 0;
}

void tdm__disk_free(struct tdm_engine *eng, bool guest_runs)
{
    struct tdm__disk *d = eng->disk;
    bool leave;

    if (!d)
        return;
    leave = guest_runs && persistent(d) && !d->backup && d->nbdkit_pid > 0;
    if (leave) {
        char err[160];
        /* untracked from here: nothing may be waiting for its data */
        if (d->broken || set_mode(d, TDM_BLK_MODE_DIRTY, true, err,
                                  sizeof(err)) < 0)
            log_warnx("%s: disk: %s: the guest's disk will refuse writes",
                      eng->name, d->broken ? d->why : err);
        log_notice("%s: disk %s left served on %s by nbdkit (pid %d) for the "
                   "running guest, its changes untracked until tandemd "
                   "attaches to it again", eng->name, d->image, d->nbd_path,
                   (int)d->nbdkit_pid);
    }
    bthread_stop(d);
    unserve(d, leave);
    tdm_wlog_dispose(&d->wlog);
    if (d->rep_fd >= 0)
        close(d->rep_fd);
    /* A replica's image that was never activated is no one's disk. */
    if (d->backup && !d->activated && d->image[0])
        unlink(d->image);
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->cond);
    free(d);
    eng->disk = NULL;
}

/* ---- primary: the epoch ---- */

/* dl = now + ms, on the clock pthread_cond_timedwait uses. */
static void deadline_in(struct timespec *dl, int ms)
{
    clock_gettime(CLOCK_REALTIME, dl);
    dl->tv_sec += ms / 1000;
    dl->tv_nsec += (ms % 1000) * 1000000L;
    if (dl->tv_nsec >= 1000000000L) {
        dl->tv_sec++;
        dl->tv_nsec -= 1000000000L;
    }
}

int tdm__disk_cut(struct tdm_engine *eng, uint64_t next)
{
    struct tdm__disk *d = eng->disk;
    uint8_t buf[TDM_BLK_CTL_SIZE];
    struct timespec dl;
    uint64_t t0 = tdm_now_ns(), ns;
    bool ok;

    if (!d || d->backup)
        return 0;
    tdm_blk_cut_encode(next, buf);
    if (send(d->log_fd, buf, sizeof(buf), MSG_NOSIGNAL) != (ssize_t)sizeof(buf)) {
        pthread_mutex_lock(&d->lock);
        set_broken_locked(d, "cannot send a cut");
        pthread_mutex_unlock(&d->lock);
    }
    deadline_in(&dl, CUT_TIMEOUT_MS);
    pthread_mutex_lock(&d->lock);
    while (d->acked_cut < next && !d->broken)
        if (pthread_cond_timedwait(&d->cond, &d->lock, &dl) == ETIMEDOUT)
            break;
    ok = d->acked_cut >= next;
    pthread_mutex_unlock(&d->lock);
    ns = tdm_now_ns() - t0;
    if (ns > d->st.cut_ns_max)
        d->st.cut_ns_max = ns;
    if (!ok) {
        log_warnx("%s: the disk's cut to epoch %llu was not acknowledged "
                  "within %d ms", eng->name, (unsigned long long)next,
                  CUT_TIMEOUT_MS);
        return -1;
    }
    d->cur_epoch = next;
    return 0;
}

/* Tell the plugin to log in mode m; with wait, until it has answered (the
 * answer follows every record of the old mode). Returns 0 or -1. */
static int set_mode(struct tdm__disk *d, uint64_t m, bool wait, char *err,
                    size_t errlen)
{
    uint8_t buf[TDM_BLK_CTL_SIZE];
    struct timespec dl;
    bool ok;

    tdm_blk_mode_encode(TDM_BLK_MODE_MAGIC, m, buf);
    if (send(d->log_fd, buf, sizeof(buf), MSG_NOSIGNAL) != (ssize_t)sizeof(buf)) {
        pthread_mutex_lock(&d->lock);
        set_broken_locked(d, "cannot send a mode");
        pthread_mutex_unlock(&d->lock);
        wake(d);
        return tdm_errf(err, errlen, "the disk's write log is broken");
    }
    d->modes_sent++;
    if (!wait)
        return 0;
    deadline_in(&dl, CUT_TIMEOUT_MS);
    pthread_mutex_lock(&d->lock);
    /* the reader must read whatever the backlog to reach the answer */
    d->pausing = true;
    pthread_cond_broadcast(&d->cond);
    while (d->mode_acks < d->modes_sent && !d->broken)
        if (pthread_cond_timedwait(&d->cond, &d->lock, &dl) == ETIMEDOUT)
            break;
    ok = d->mode_acks >= d->modes_sent && d->acked_mode == m;
    d->pausing = false;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    if (!ok)
        return tdm_errf(err, errlen, "the disk's plugin did not take mode %s "
                        "within %d ms", m == TDM_BLK_MODE_FULL ? "full" :
                        "dirty", CUT_TIMEOUT_MS);
    return 0;
}

void tdm__disk_pausing(struct tdm_engine *eng, bool on)
{
    struct tdm__disk *d = eng->disk;

    if (!d || d->backup)
        return;
    /* While the loop waits for the guest to stop (a vCPU may be inside a
     * disk write, waiting on the log) and for the cut's ack (behind every
     * record before it), the reader must read whatever the backlog. */
    pthread_mutex_lock(&d->lock);
    d->pausing = on;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

bool tdm__disk_syncing(struct tdm_engine *eng)
{
    return eng->disk && eng->disk->syncing;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i += 8)
        if (*(const uint64_t *)(p + i))
            return false;
    return true;
}

/* The next range the sync pass must send, or false at the end. */
static bool sync_next(struct tdm__disk *d, uint64_t *off_r, uint32_t *len_r)
{
    uint64_t pos = d->sync_pos, rsz = 1ull << d->region_shift;

    if (d->sync_base) {
        pthread_mutex_lock(&d->lock);
        while (pos < d->size && d->lw[pos >> d->region_shift] <= d->sync_base)
            pos = ((pos >> d->region_shift) + 1) << d->region_shift;
        pthread_mutex_unlock(&d->lock);
    }
    if (pos >= d->size)
        return false;
    *off_r = pos;
    *len_r = (uint32_t)TDM_MIN((uint64_t)DISK_CHUNK, d->size - pos);
    if (d->sync_base) {
        /* stay inside the region: the next one may be clean */
        uint64_t end = ((pos >> d->region_shift) + 1) * rsz;
        if (pos + *len_r > end)
            *len_r = (uint32_t)(end - pos);
    }
    return true;
}

static void sync_done(struct tdm__disk *d)
{
    struct tdm_engine *eng = d->eng;
    double s;

    d->syncing = false;
    d->st.syncing = false;
    d->st.sync_ns = tdm_now_ns() - d->sync_t0;
    s = d->st.sync_ns / 1e9;
    log_info("%s: disk %s pass done: %llu MiB read, %llu MiB sent in %.1f s "
             "(%.1f MB/s read)", eng->name, d->sync_base ? "resync" : "sync",
             (unsigned long long)(d->st.sync_done >> 20),
             (unsigned long long)(d->st.sync_sent >> 20), s,
             s > 0 ? d->st.sync_done / 1e6 / s : 0.0);
    tdm__primary_disk_synced(eng);
}

void tdm__disk_pump(struct tdm_engine *eng)
{
    struct tdm__disk *d = eng->disk;

    if (!d || !d->syncing)
        return;
    while (d->syncing && eng->peer &&
           tdm__peer_pending(eng->peer) < SYNC_WINDOW) {
        struct tdm_blk_rec r = {.epoch = d->sync_epoch};
        uint8_t hdr[TDM_BLK_HDR_SIZE];
        struct iovec iov[2];
        char err[200];
        ssize_t n;

        if (!sync_next(d, &r.offset, &r.len)) {
            sync_done(d);
            return;
        }
        n = pread(d->img_fd, d->chunk, r.len, (off_t)r.offset);
        if (n != (ssize_t)r.len) {
            log_warnx("%s: disk sync: read of %s at %llu failed: %s",
                      eng->name, d->image, (unsigned long long)r.offset,
                      n < 0 ? strerror(errno) : "short read");
            tdm__primary_disk_failed(eng, "the disk sync could not read the "
                                     "image");
            return;
        }
        d->sync_pos = r.offset + r.len;
        d->st.sync_done += r.len;
        if (all_zero(d->chunk, r.len)) {
            if (!d->sync_base)
                continue;   /* the backup's new image is zeroes already */
            r.kind = TDM_BLK_ZERO;
        } else {
            r.kind = TDM_BLK_WRITE;
            r.data = d->chunk;
        }
        if (tdm_blk_rec_hdr(hdr, &r, err, sizeof(err)) < 0) {
            log_warnx("%s: disk sync: %s", eng->name, err);
            tdm__primary_disk_failed(eng, err);
            return;
        }
        iov[0] = (struct iovec){hdr, sizeof(hdr)};
        iov[1] = (struct iovec){d->chunk, tdm_blk_rec_data_len(&r)};
        tdm__peer_send(eng->peer, TDM_MSG_DISK, r.epoch, iov, 2);
        d->st.sync_sent += r.len;
    }
}

int tdm__disk_sync_begin(struct tdm_engine *eng, uint64_t backup_last,
                         char *err, size_t errlen)
{
    struct tdm__disk *d = eng->disk;
    struct tdm_disk_info di;
    uint8_t buf[TDM_DISK_INFO_SIZE];
    struct iovec iov = {buf, sizeof(buf)};

    if (!d)
        return 0;
    if (d->cur_epoch < eng->epoch + 1)
        return tdm_errf(err, errlen, "the disk is in epoch %llu, the domain "
                        "after %llu", (unsigned long long)d->cur_epoch,
                        (unsigned long long)eng->epoch);
    /* An epoch that failed after its cut leaves a gap: epochs need only
     * grow. */
    eng->epoch = d->cur_epoch - 1;
    /* Every change from here on with its data: the backup needs them. */
    if (set_mode(d, TDM_BLK_MODE_FULL, true, err, errlen) < 0)
        return -1;
    /* Take what the reader has queued first: it predates the sync. */
    forward_all(d);
    d->forwarding = true;
    d->sync_base = d->valid_from && backup_last >= d->valid_from &&
                   backup_last <= eng->epoch ? backup_last : 0;
    if (!d->sync_base)
        d->valid_from = 0;
    d->sync_epoch = d->cur_epoch;
    d->sync_pos = 0;
    d->sync_t0 = tdm_now_ns();
    d->syncing = true;
    d->st.syncing = true;
    d->st.in_sync = false;
    d->st.sync_done = d->st.sync_sent = 0;
    d->st.sync_total = d->size;
    if (d->sync_base) {
        uint64_t total = 0;
        pthread_mutex_lock(&d->lock);
        for (size_t i = 0; i < d->nregions; i++)
            if (d->lw[i] > d->sync_base)
                total += TDM_MIN(1ull << d->region_shift,
                                 d->size - ((uint64_t)i << d->region_shift));
        pthread_mutex_unlock(&d->lock);
        /* The backup holds a resync in memory until its epoch commits (its
         * replica must stay whole meanwhile): a big one is a full sync. */
        if (total > eng->host->cfg.disk_hold_max / 2) {
            log_notice("%s: %llu MiB changed since the backup's epoch %llu, "
                       "more than half of disk-hold-max: a full sync instead",
                       eng->name, (unsigned long long)(total >> 20),
                       (unsigned long long)d->sync_base);
            d->sync_base = 0;
            d->valid_from = 0;
        } else {
            d->st.sync_total = total;
        }
    }
    if (d->sync_base)
        d->st.resyncs++;
    else
        d->st.syncs++;
    di = (struct tdm_disk_info){.size = d->size, .base_epoch = d->sync_base,
                                .sync_epoch = d->sync_epoch};
    tdm_disk_info_encode(&di, buf);
    tdm__peer_send(eng->peer, TDM_MSG_DISK_INFO, 0, &iov, 1);
    log_info("%s: disk %s to %s: %llu MiB to read, as epoch %llu%s",
             eng->name, d->sync_base ? "resync" : "sync", eng->peer_str,
             (unsigned long long)(d->st.sync_total >> 20),
             (unsigned long long)d->sync_epoch,
             d->sync_base ? " (what changed after the backup's epoch)" : "");
    tdm__disk_pump(eng);
    return 0;
}

void tdm__disk_acked(struct tdm_engine *eng, uint64_t n)
{
    struct tdm__disk *d = eng->disk;

    if (!d || d->backup || d->syncing || n < d->sync_epoch)
        return;
    if (!d->st.in_sync)
        log_info("%s: the backup's disk matches from epoch %llu on",
                 eng->name, (unsigned long long)d->sync_epoch);
    d->st.in_sync = true;
    if (!d->valid_from)
        d->valid_from = d->sync_epoch;
}

void tdm__disk_unprotected(struct tdm_engine *eng)
{
    struct tdm__disk *d = eng->disk;

    if (!d || d->backup)
        return;
    d->forwarding = false;
    d->syncing = false;
    d->st.syncing = false;
    d->st.in_sync = false;
    backlog_update(d);
    if (!d->broken && d->log_fd >= 0) {
        char err[160];

        /* no backup to feed: ranges only (answered in the stream) */
        if (set_mode(d, TDM_BLK_MODE_DIRTY, false, err, sizeof(err)) < 0)
            log_warnx("%s: %s", eng->name, err);
    }
}

/* ---- backup ---- */

static int apply_direct(struct tdm__disk *d, const struct tdm_blk_rec *r,
                        char *err, size_t errlen);

static void *bthread_main(void *arg)
{
    struct tdm__disk *d = arg;

    for (;;) {
        struct djob *j;
        struct tdm_wlog_stats ws;
        char err[200];
        int rc;
        bool skip;

        pthread_mutex_lock(&d->lock);
        while (!d->jhead && !d->bquit)
            pthread_cond_wait(&d->cond, &d->lock);
        j = d->jhead;
        if (!j) {
            pthread_mutex_unlock(&d->lock);
            break;
        }
        d->jhead = j->next;
        if (!d->jhead)
            d->jtail = NULL;
        d->jbusy = true;
        skip = d->jfailed;      /* the image is no disk any more */
        pthread_mutex_unlock(&d->lock);

        rc = 0;
        ws.applied_records = 0;
        if (skip) {
            /* nothing */
        } else if (j->commit) {
            rc = tdm_wlog_commit(&j->w, j->epoch, err, sizeof(err));
            tdm_wlog_stats(&j->w, &ws);
        } else {
            rc = apply_direct(d, &j->r, err, sizeof(err));
            ws.applied_records = rc == 0;
        }
        if (j->commit)
            tdm_wlog_dispose(&j->w);

        pthread_mutex_lock(&d->lock);
        d->jbusy = false;
        d->jcost -= j->cost;
        d->japplied += ws.applied_records;
        if (rc < 0 && !d->jfailed) {
            d->jfailed = true;
            tdm_strlcpy(d->jwhy, err, sizeof(d->jwhy));
        }
        pthread_cond_broadcast(&d->cond);
        pthread_mutex_unlock(&d->lock);
        free(j);
    }
    return NULL;
}

static int job_push(struct tdm__disk *d, struct djob *j, char *err,
                    size_t errlen)
{
    uint64_t held;
    int r;

    if (!d->bthread_started) {
        r = pthread_create(&d->bthread, NULL, bthread_main, d);
        if (r) {
            free(j);
            return tdm_errf(err, errlen, "pthread_create: %s", strerror(r));
        }
        d->bthread_started = true;
    }
    pthread_mutex_lock(&d->lock);
    if (d->jfailed) {
        tdm_errf(err, errlen, "the replica's disk failed: %s", d->jwhy);
        pthread_mutex_unlock(&d->lock);
        free(j);
        return -1;
    }
    held = d->jcost + d->wlog.cost;
    if (held + j->cost > d->eng->host->cfg.disk_hold_max) {
        tdm_errf(err, errlen, "the replica's disk is behind by %llu MiB "
                 "(disk-hold-max): it is slower than the primary's writes",
                 (unsigned long long)(held >> 20));
        pthread_mutex_unlock(&d->lock);
        free(j);
        return -1;
    }
    j->next = NULL;
    if (d->jtail)
        d->jtail->next = j;
    else
        d->jhead = j;
    d->jtail = j;
    d->jcost += j->cost;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    return 0;
}

/* Wait until the disk thread has applied everything handed to it; -1 (with
 * err) if it failed. */
static int bdrain(struct tdm__disk *d, char *err, size_t errlen)
{
    int rc = 0;

    pthread_mutex_lock(&d->lock);
    while (d->jhead || d->jbusy)
        pthread_cond_wait(&d->cond, &d->lock);
    if (d->jfailed)
        rc = tdm_errf(err, errlen, "the replica's disk failed: %s", d->jwhy);
    pthread_mutex_unlock(&d->lock);
    return rc;
}

void tdm__disk_drain(struct tdm_engine *eng)
{
    char err[200];

    if (eng->disk && eng->disk->backup)
        bdrain(eng->disk, err, sizeof(err));
}

static void bthread_stop(struct tdm__disk *d)
{
    if (!d->bthread_started)
        return;
    pthread_mutex_lock(&d->lock);
    d->bquit = true;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->bthread, NULL);
    d->bthread_started = false;
    /* jobs never run (bquit with a queue: only at free) */
    while (d->jhead) {
        struct djob *j = d->jhead;
        d->jhead = j->next;
        if (j->commit)
            tdm_wlog_dispose(&j->w);
        free(j);
    }
    d->jtail = NULL;
    d->jcost = 0;
    d->bquit = false;
}

int tdm__disk_rx_info(struct tdm_engine *eng, const struct tdm_frame *f,
                      char *err, size_t errlen)
{
    struct tdm__disk *d = eng->disk;
    struct tdm_disk_info di;
    char e2[200];

    if (!d)
        return tdm_errf(err, errlen, "DISK_INFO for a domain without a disk");
    if (tdm_disk_info_decode(f->payload, f->len, &di, e2, sizeof(e2)) < 0)
        return tdm_errf(err, errlen, "%s", e2);
    if (di.sync_epoch <= eng->applied)
        return tdm_errf(err, errlen, "DISK_INFO: sync epoch %llu is not after "
                        "the replica's %llu", (unsigned long long)di.sync_epoch,
                        (unsigned long long)eng->applied);
    if (di.base_epoch) {
        if (di.base_epoch != eng->applied || !d->valid || d->size != di.size ||
            d->rep_fd < 0)
            return tdm_errf(err, errlen, "DISK_INFO: a resync from epoch %llu "
                            "of a %llu-byte disk, but the replica holds epoch "
                            "%llu of %s", (unsigned long long)di.base_epoch,
                            (unsigned long long)di.size,
                            (unsigned long long)eng->applied,
                            d->valid ? "its disk" : "no valid disk");
        if (tdm_wlog_drop_after(&d->wlog, eng->applied, e2, sizeof(e2)) < 0)
            return tdm_errf(err, errlen, "%s", e2);
        d->st.resyncs++;
    } else {
        /* what the thread still holds was for the image being replaced */
        if (bdrain(d, e2, sizeof(e2)) < 0)
            log_warnx("%s: %s; starting over with a full sync", eng->name,
                      e2);
        pthread_mutex_lock(&d->lock);
        d->jfailed = false;
        pthread_mutex_unlock(&d->lock);
        tdm_wlog_dispose(&d->wlog);
        if (d->rep_fd >= 0)
            close(d->rep_fd);
        d->valid = false;
        d->st.in_sync = false;
        d->rep_fd = open(d->image, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
                         0600);
        if (d->rep_fd < 0 || ftruncate(d->rep_fd, (off_t)di.size) < 0)
            return tdm_errf(err, errlen, "replica disk %s: %s", d->image,
                            strerror(errno));
        if (tdm_wlog_create(&d->wlog, d->rep_fd, di.size,
                            eng->host->cfg.disk_hold_max, eng->applied, e2,
                            sizeof(e2)) < 0)
            return tdm_errf(err, errlen, "%s", e2);
        d->size = di.size;
        d->st.size = di.size;
        d->st.syncs++;
        log_info("%s: disk sync from the primary: %llu MiB into %s, "
                 "consistent from epoch %llu", eng->name,
                 (unsigned long long)(di.size >> 20), d->image,
                 (unsigned long long)di.sync_epoch);
    }
    d->rsync_epoch = di.sync_epoch;
    d->have_info = true;
    return 0;
}

static int apply_direct(struct tdm__disk *d, const struct tdm_blk_rec *r,
                        char *err, size_t errlen)
{
    static const uint8_t zero[65536];
    uint64_t done = 0;

    if (r->kind == TDM_BLK_FLUSH)
        return fdatasync(d->rep_fd) < 0
                   ? tdm_errf(err, errlen, "fdatasync %s: %s", d->image,
                              strerror(errno))
                   : 0;
    while (done < r->len) {
        size_t n = r->len - done;
        const void *p;
        ssize_t w;

        if (r->kind == TDM_BLK_WRITE) {
            p = r->data + done;
        } else {
            n = TDM_MIN(n, sizeof(zero));
            p = zero;
        }
        w = pwrite(d->rep_fd, p, n, (off_t)(r->offset + done));
        if (w <= 0)
            return tdm_errf(err, errlen, "write to %s: %s", d->image,
                            w < 0 ? strerror(errno) : "no progress");
        done += (uint64_t)w;
    }
    return 0;
}

int tdm__disk_rx(struct tdm_engine *eng, const struct tdm_frame *f, char *err,
                 size_t errlen)
{
    struct tdm__disk *d = eng->disk;
    struct tdm_blk_rec r;
    size_t used;
    char e2[200];

    if (!d || !d->have_info)
        return tdm_errf(err, errlen, "DISK before DISK_INFO");
    if (tdm_blk_rec_decode(f->payload, f->len, &r, &used, e2, sizeof(e2)) !=
            TDM_BLK_DEC_OK || used != f->len) {
        if (used != f->len)
            tdm_strlcpy(e2, "a DISK frame that is not one record", sizeof(e2));
        return tdm_errf(err, errlen, "DISK: %s", e2);
    }
    if (r.epoch != f->epoch || r.epoch <= eng->applied)
        return tdm_errf(err, errlen, "DISK record of epoch %llu in a frame of "
                        "epoch %llu, replica at %llu",
                        (unsigned long long)r.epoch,
                        (unsigned long long)f->epoch,
                        (unsigned long long)eng->applied);
    if (r.kind != TDM_BLK_FLUSH && r.offset + r.len > d->size)
        return tdm_errf(err, errlen, "DISK %s at %llu+%u beyond the disk's "
                        "%llu bytes", tdm_blk_kind_name(r.kind),
                        (unsigned long long)r.offset, r.len,
                        (unsigned long long)d->size);
    d->st.records++;
    d->st.bytes += tdm_blk_rec_data_len(&r);
    if (!d->valid && r.epoch <= d->rsync_epoch) {
        /* a full sync: no disk until its epoch commits */
        size_t n = tdm_blk_rec_data_len(&r);
        struct djob *j = tdm_calloc(1, sizeof(*j) + n);

        j->r = r;
        if (n) {
            memcpy(j->data, r.data, n);
            j->r.data = j->data;
        }
        j->cost = n + TDM_WLOG_REC_COST;
        return job_push(d, j, err, errlen);
    }
    if (tdm_wlog_add_rec(&d->wlog, &r, e2, sizeof(e2)) < 0)
        return tdm_errf(err, errlen, "%s", e2);
    return 0;
}

int tdm__disk_commit(struct tdm_engine *eng, uint64_t epoch, char *err,
                     size_t errlen)
{
    struct tdm__disk *d = eng->disk;
    char e2[200];

    if (!d)
        return 0;
    if (!d->have_info)
        return tdm_errf(err, errlen, "epoch %llu of a domain with a disk "
                        "before its DISK_INFO", (unsigned long long)epoch);
    {
        struct djob *j = tdm_calloc(1, sizeof(*j));

        j->commit = true;
        j->epoch = epoch;
        if (tdm_wlog_move(&d->wlog, epoch, &j->w, e2, sizeof(e2)) < 0) {
            free(j);
            d->valid = false;
            d->st.in_sync = false;
            return tdm_errf(err, errlen, "the replica's disk: %s", e2);
        }
        j->cost = j->w.cost;
        if (job_push(d, j, e2, sizeof(e2)) < 0) {
            tdm_wlog_dispose(&j->w);    /* job_push freed j only */
            d->valid = false;
            d->st.in_sync = false;
            return tdm_errf(err, errlen, "%s", e2);
        }
    }
    if (!d->valid && epoch >= d->rsync_epoch) {
        d->valid = true;
        d->st.in_sync = true;
        log_info("%s: replica disk in sync at epoch %llu", eng->name,
                 (unsigned long long)epoch);
    }
    return 0;
}

void tdm__disk_invalidate(struct tdm_engine *eng, const char *why)
{
    struct tdm__disk *d = eng->disk;

    if (!d || !d->backup || !d->valid)
        return;
    d->valid = false;
    d->st.in_sync = false;
    log_warnx("%s: the replica's disk no longer matches its memory (%s): it "
              "will not be activated until the primary syncs it again",
              eng->name, why);
}

int tdm__disk_activate(struct tdm_engine *eng, char *err, size_t errlen)
{
    struct tdm__disk *d = eng->disk;
    char e2[200];

    if (!d)
        return 0;
    if (!d->valid)
        return tdm_errf(err, errlen, "the replica's disk is not in sync with "
                        "its memory (its sync never completed)");
    /* every committed epoch onto the image, then the rest dropped */
    if (bdrain(d, e2, sizeof(e2)) < 0)
        return tdm_errf(err, errlen, "%s", e2);
    bthread_stop(d);
    if (tdm_wlog_drop_after(&d->wlog, eng->applied, e2, sizeof(e2)) < 0)
        return tdm_errf(err, errlen, "the replica's disk: %s", e2);
    if (fdatasync(d->rep_fd) < 0)
        return tdm_errf(err, errlen, "the replica's disk: fdatasync %s: %s",
                        d->image, strerror(errno));
    tdm_wlog_dispose(&d->wlog);
    close(d->rep_fd);
    d->rep_fd = -1;
    d->activated = true;
    d->backup = false;
    d->st = (struct tdm_disk_stats){.present = true};
    if (serve(d, d->image, eng->epoch + 1, e2, sizeof(e2)) < 0)
        return tdm_errf(err, errlen, "serving the replica's disk: %s", e2);
    return 0;
}

void tdm__disk_stats(struct tdm_engine *eng, struct tdm_disk_stats *s)
{
    struct tdm__disk *d = eng->disk;

    memset(s, 0, sizeof(*s));
    if (!d)
        return;
    *s = d->st;
    if (d->backup) {
        struct tdm_wlog_stats ws;
        tdm_wlog_stats(&d->wlog, &ws);
        s->held_records = ws.held_records;
        s->held_bytes = ws.held_bytes;
        s->committed_epoch = tdm_wlog_committed(&d->wlog);
        pthread_mutex_lock(&d->lock);
        s->applied_records = d->japplied;
        s->queued_bytes = d->jcost;
        pthread_mutex_unlock(&d->lock);
    } else {
        pthread_mutex_lock(&d->lock);
        s->broken = d->broken;
        s->throttled = d->throttle_count;
        s->dirty_records = d->dirty_records;
        pthread_mutex_unlock(&d->lock);
    }
}
