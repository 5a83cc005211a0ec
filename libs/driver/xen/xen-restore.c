/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The backup's replica: Xen's stock restore path, fed one whole epoch at a
 * time.
 *
 * The first epoch starts a child process that runs
 * libxl_domain_create_restore() on a pipe, with a Remus checkpointed
 * stream (what `xl migrate-receive -r` does): it creates the domain
 * NAME--incoming from the guest's libxl configuration (sent by the primary
 * in that epoch), loads the first checkpoint, and from then on buffers each
 * checkpoint whole (libxc until CHECKPOINT, libxl until CHECKPOINT_END)
 * before applying it. apply() checks an epoch whole, turns it into stream
 * records (PAGE_DATA for each staged page, then TSC_INFO, HVM_PARAMS,
 * HVM_CONTEXT, CHECKPOINT, CHECKPOINT_END) and queues them; a writer thread
 * moves the queue into the pipe, so that the event loop never waits for
 * the restore (the first epoch takes the child seconds). Queued bytes are
 * the backup's copy of the epoch as much as staging was: they all reach the
 * pipe before activation closes it.
 *
 * activate() closes the stream at an epoch boundary: libxc and libxl take
 * the end of the stream for the primary's failure, restore the domain from
 * the last whole checkpoint and finish building it (devices, console);
 * the child then renames it back to the guest's name (when that name is
 * free) and unpauses it. The child stays, one per replica, as the owner of
 * the domain's libxl state: a "destroy" command or, before activation, the
 * end of its control socket (tandemd gone) makes it destroy the domain; an
 * activated domain outlives tandemd.
 *
 * The child is started with a double fork, so nobody has to reap it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xenctrl.h>

#include "tdm-util.h"
#include "xen-private.h"

#define QUEUE_MAX ((size_t)512 << 20)
#define ACTIVATE_TIMEOUT_MS 120000
#define DESTROY_TIMEOUT_MS 30000

/* ---- the child ---- */

static void child_write(int fd, const char *fmt, ...) TDM_PRINTF(2, 3);
static void child_write(int fd, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0 && write(fd, line, (size_t)TDM_MIN(n, (int)sizeof(line) - 1)) < 0)
        return;
}

/* One command line from tandemd; "" on its end. */
static void child_read(int fd, char *buf, size_t len)
{
    size_t n = 0;

    while (n + 1 < len) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || c == '\n')
            break;
        buf[n++] = c;
    }
    buf[n] = '\0';
}

/* A clean process for libxl: default signals (libxl handles SIGCHLD
 * itself), nothing of tandemd's open but the stream and the control
 * socket, as fds 3 and 4. */
static void child_setup(int data_fd, int ctl_fd)
{
    sigset_t none;
    int a, b;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            signal(s, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);   /* a gone tandemd is an error, not death */
    a = fcntl(data_fd, F_DUPFD, 10);
    b = fcntl(ctl_fd, F_DUPFD, 10);
    if (a < 0 || b < 0 || dup2(a, 3) < 0 || dup2(b, 4) < 0)
        _exit(120);
    close_range(5, ~0u, 0);
}

static _Noreturn void child_main(const char *json, const char *incoming,
                                 const struct xen_conf *c)
{
    xentoollog_logger lg;
    libxl_ctx *ctx = NULL;
    libxl_domain_config dc;
    libxl_domain_restore_params params;
    uint32_t domid = INVALID_DOMID;
    char cmd[64], errbuf[200], *name = NULL;
    bool active = false;
    int rc;

    xen_logger_init(&lg);
    libxl_domain_config_init(&dc);
    libxl_domain_restore_params_init(&params);
    if (libxl_ctx_alloc(&ctx, LIBXL_VERSION, 0, &lg)) {
        child_write(4, "error cannot open libxl\n");
        _exit(1);
    }
    if (libxl_domain_config_from_json(ctx, &dc, json) || !dc.c_info.name) {
        child_write(4, "error the primary's domain configuration does not "
                    "parse\n");
        _exit(1);
    }
    if (c->disk_nbd[0] &&
        xen_disk_rewrite(&dc, c, errbuf, sizeof(errbuf)) < 0) {
        child_write(4, "error %s\n", errbuf);
        _exit(1);
    }
    name = dc.c_info.name;
    dc.c_info.name = strdup(incoming);
    /* a domid is the primary host's: let Xen pick one here */
    dc.c_info.domid = INVALID_DOMID;
    params.checkpointed_stream = LIBXL_CHECKPOINTED_STREAM_REMUS;
    params.stream_version = 2;
    log_info("restore[%d]: receiving domain '%s' as '%s'", (int)getpid(),
             name, incoming);
    rc = libxl_domain_create_restore(ctx, &dc, &domid, 3, -1, &params, NULL,
                                     NULL);
    close(3);
    if (rc) {
        child_write(4, "error restore failed (libxl error %d)\n", rc);
        log_warnx("restore[%d]: restore of '%s' failed (libxl error %d)",
                  (int)getpid(), incoming, rc);
        _exit(1);
    }
    child_write(4, "ready %u\n", domid);
    for (;;) {
        child_read(4, cmd, sizeof(cmd));
        if (!strcmp(cmd, "activate") && !active) {
            const char *now = incoming;
            if (!libxl_domain_rename(ctx, domid, incoming, name))
                now = name;
            else
                log_notice("restore[%d]: the name '%s' is taken here: the "
                           "domain stays '%s'", (int)getpid(), name,
                           incoming);
            if (libxl_domain_unpause(ctx, domid, NULL)) {
                child_write(4, "error cannot unpause domain %u\n", domid);
                continue;
            }
            active = true;
            child_write(4, "ok %u %s\n", domid, now);
        } else if (!strcmp(cmd, "destroy") || (!cmd[0] && !active)) {
            libxl_domain_destroy(ctx, domid, NULL);
            _exit(0);
        } else if (!cmd[0]) {
            /* tandemd is gone; the active domain runs on */
            _exit(0);
        }
    }
}

/* Fork the restore child (double fork: it is nobody's to reap). */
static int child_start(struct tdm_dom *d, const char *json)
{
    struct xen_replica *r = &d->r;
    int data[2] = {-1, -1}, ctl[2] = {-1, -1};
    pid_t p;
    int st;

    if (pipe2(data, O_CLOEXEC) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) < 0) {
        log_warn("%s: restore pipe", d->conf.name);
        goto fail;
    }
    /* Fewer wakeups of the child per epoch; best effort. */
    fcntl(data[1], F_SETPIPE_SZ, 1 << 20);
    snprintf(r->incoming, sizeof(r->incoming), "%.60s--incoming",
             d->domname[0] ? d->domname : d->conf.name);
    p = fork();
    if (p < 0) {
        log_warn("%s: fork", d->conf.name);
        goto fail;
    }
    if (p == 0) {
        if (fork() == 0) {
            child_setup(data[0], ctl[1]);
            child_main(json, r->incoming, &d->conf);
        }
        _exit(0);
    }
    while (waitpid(p, &st, 0) < 0 && errno == EINTR)
        ;
    close(data[0]);
    close(ctl[1]);
    r->data_fd = data[1];
    r->ctl_fd = ctl[0];
    fcntl(r->data_fd, F_SETFL, O_NONBLOCK);
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (data[i] >= 0)
            close(data[i]);
        if (ctl[i] >= 0)
            close(ctl[i]);
    }
    return -1;
}

/* A line from the child within timeout_ms: 0, or -1 on its end or time. */
static int ctl_line(struct xen_replica *r, char *buf, size_t len,
                    uint64_t deadline_ns)
{
    size_t n = 0;

    while (n + 1 < len) {
        struct pollfd pfd = {.fd = r->ctl_fd, .events = POLLIN};
        uint64_t now = tdm_now_ns();
        char c;
        ssize_t got;

        if (now >= deadline_ns)
            return -1;
        if (poll(&pfd, 1, (int)((deadline_ns - now) / 1000000) + 1) <= 0)
            continue;
        got = read(r->ctl_fd, &c, 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        if (c == '\n')
            break;
        buf[n++] = c;
    }
    buf[n] = '\0';
    return 0;
}

/* ---- the writer thread ---- */

static bool write_all(struct xen_replica *r, const uint8_t *p, size_t len)
{
    while (len) {
        ssize_t w = write(r->data_fd, p, TDM_MIN(len, (size_t)1 << 20));

        if (w > 0) {
            p += w;
            len -= (size_t)w;
            __atomic_add_fetch(&r->written, (uint64_t)w, __ATOMIC_RELAXED);
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            struct pollfd pfd = {.fd = r->data_fd, .events = POLLOUT};
            if (__atomic_load_n(&r->abort, __ATOMIC_ACQUIRE))
                return false;
            poll(&pfd, 1, 200);
            continue;
        }
        log_warn("restore stream: the restore process is gone");
        return false;
    }
    return true;
}

static void chunk_free(struct xen_chunk *c)
{
    tdm_xbuf_dispose(&c->b);
    tdm_staging_dispose(&c->pages);
    free(c->pfns);
    free(c);
}

/* A taken epoch's pages: a PAGE_DATA head, then the pages where they lie. */
static bool write_pages(struct xen_replica *r, const struct xen_chunk *c)
{
    struct tdm_xbuf h;
    bool ok = true;

    tdm_xbuf_init(&h);
    for (size_t i = 0; ok && i < c->pages.npages; i += TDM_XPAGE_BATCH) {
        uint32_t n = (uint32_t)TDM_MIN((size_t)TDM_XPAGE_BATCH,
                                       c->pages.npages - i);
        h.len = 0;
        /* pfns were checked when their slots came */
        tdm_xrec_page_data_head(&h, c->pfns + i, n);
        ok = write_all(r, h.p, h.len) &&
             write_all(r, tdm_staging_page(&c->pages, i),
                       (size_t)n * TDM_XPAGE_SIZE);
    }
    tdm_xbuf_dispose(&h);
    return ok;
}

static void free_chunks(struct xen_chunk *c)
{
    while (c) {
        struct xen_chunk *next = c->next;
        chunk_free(c);
        c = next;
    }
}

static void *writer_main(void *arg)
{
    struct xen_replica *r = arg;

    for (;;) {
        struct xen_chunk *c;
        bool ok;

        pthread_mutex_lock(&r->lock);
        while (!r->head && !r->quit)
            pthread_cond_wait(&r->cond, &r->lock);
        c = r->head;
        pthread_mutex_unlock(&r->lock);
        if (!c)
            break;
        ok = !__atomic_load_n(&r->abort, __ATOMIC_ACQUIRE) &&
             (!c->pfns || write_pages(r, c)) &&
             write_all(r, c->b.p, c->b.len);
        pthread_mutex_lock(&r->lock);
        r->head = c->next;
        if (!r->head)
            r->tail = NULL;
        r->queued -= c->bytes;
        if (!ok) {
            r->failed = true;
            free_chunks(r->head);
            r->head = r->tail = NULL;
            r->queued = 0;
        }
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
        chunk_free(c);
        if (!ok)
            break;
    }
    return NULL;
}

static int push(struct xen_replica *r, struct xen_chunk *c)
{
    pthread_mutex_lock(&r->lock);
    /* A restore far behind (it cannot be: it only copies) holds the loop
     * rather than all of dom0's memory. */
    while (r->queued > QUEUE_MAX && !r->failed)
        pthread_cond_wait(&r->cond, &r->lock);
    if (r->failed) {
        pthread_mutex_unlock(&r->lock);
        chunk_free(c);
        return -1;
    }
    c->next = NULL;
    if (r->tail)
        r->tail->next = c;
    else
        r->head = c;
    r->tail = c;
    if (!c->bytes)
        c->bytes = c->b.len;
    r->queued += c->bytes;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return 0;
}

static void writer_stop(struct xen_replica *r, bool abort)
{
    if (!r->writer_started)
        return;
    pthread_mutex_lock(&r->lock);
    r->quit = true;
    if (abort)
        __atomic_store_n(&r->abort, true, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->writer, NULL);
    r->writer_started = false;
}

/* ---- apply ---- */

void xen_replica_init(struct tdm_dom *d)
{
    struct xen_replica *r = &d->r;

    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->slot_pfn = tdm_calloc(d->npages, sizeof(*r->slot_pfn));
}

static int start(struct tdm_dom *d, const struct tdm_xstate *s)
{
    struct xen_replica *r = &d->r;
    struct xen_chunk *c;
    char *json = tdm_malloc(s->config_len + 1);
    int e;

    memcpy(json, s->config, s->config_len);
    json[s->config_len] = '\0';
    e = child_start(d, json);
    free(json);
    if (e < 0)
        return -1;
    r->quit = r->failed = false;
    r->abort = false;
    e = pthread_create(&r->writer, NULL, writer_main, r);
    if (e) {
        errno = e;
        log_warn("%s: restore writer thread", d->conf.name);
        return -1;
    }
    r->writer_started = true;
    r->started = true;
    c = tdm_calloc(1, sizeof(*c));
    tdm_xstream_head(&c->b, r->xen_major, r->xen_minor);
    if (s->cpuid.len)
        tdm_xrec_put(&c->b, TDM_XREC_X86_CPUID_POLICY, s->cpuid.body,
                     s->cpuid.len);
    if (s->msr.len)
        tdm_xrec_put(&c->b, TDM_XREC_X86_MSR_POLICY, s->msr.body, s->msr.len);
    tdm_xrec_put(&c->b, TDM_XREC_STATIC_DATA_END, NULL, 0);
    log_info("%s: restoring into domain '%s' (Xen %u.%u stream)",
             d->conf.name, r->incoming, r->xen_major, r->xen_minor);
    return push(r, c);
}

/* take: the chunk takes st's buffers and the writer thread sends its pages
 * from there (st is left empty); otherwise they are copied now. */
static int replica_epoch(struct tdm_dom *d, struct tdm_staging *st, bool take)
{
    struct xen_replica *r = &d->r;
    struct tdm_xstate s;
    struct xen_chunk *c;
    uint64_t pfns[TDM_XPAGE_BATCH];
    uint32_t base, nslots;
    uint64_t t0 = tdm_now_ns();
    char err[256];
    bool full;

    /* Everything is checked before anything changes. */
    if (tdm_xstate_decode(st->state, st->state_len, &s, err,
                          sizeof(err)) < 0) {
        log_warnx("%s: epoch %llu: %s", d->conf.name,
                  (unsigned long long)st->epoch, err);
        return -1;
    }
    full = s.flags & TDM_XSTATE_FULL;
    if (!r->started && !full) {
        log_warnx("%s: epoch %llu is not a full epoch, and the replica has "
                  "none yet", d->conf.name, (unsigned long long)st->epoch);
        return -1;
    }
    if (r->failed) {
        log_warnx("%s: epoch %llu: the restore process is gone; this "
                  "replica cannot take epochs", d->conf.name,
                  (unsigned long long)st->epoch);
        return -1;
    }
    base = full ? 0 : r->nslots;
    if (s.slot_count && s.slot_first != base) {
        log_warnx("%s: epoch %llu: new slots start at %u, expected %u",
                  d->conf.name, (unsigned long long)st->epoch, s.slot_first,
                  base);
        return -1;
    }
    if ((uint64_t)base + s.slot_count > d->npages) {
        log_warnx("%s: epoch %llu: %u slots, the replica has %llu",
                  d->conf.name, (unsigned long long)st->epoch,
                  base + s.slot_count, (unsigned long long)d->npages);
        return -1;
    }
    nslots = base + s.slot_count;
    for (size_t i = 0; i < st->npages; i++) {
        if (st->pfns[i] >= nslots) {
            log_warnx("%s: epoch %llu: page %zu is in slot %llu, which has "
                      "no frame", d->conf.name,
                      (unsigned long long)st->epoch, i,
                      (unsigned long long)st->pfns[i]);
            return -1;
        }
    }

    for (uint32_t i = 0; i < s.slot_count; i++)
        r->slot_pfn[base + i] = tdm_xstate_slot_pfn(&s, i);
    r->nslots = nslots;
    if (!r->started && start(d, &s) < 0) {
        r->failed = true;
        return -1;
    }
    c = tdm_calloc(1, sizeof(*c));
    if (take) {
        /* the pages stay where they are: only their pfns are worked out */
        c->pfns = tdm_malloc(TDM_MAX(st->npages, (size_t)1) *
                             sizeof(*c->pfns));
        for (size_t i = 0; i < st->npages; i++)
            c->pfns[i] = r->slot_pfn[st->pfns[i]];
        tdm_xbuf_reserve(&c->b, 64 + st->state_len);
    } else {
        tdm_xbuf_reserve(&c->b, tdm_xstream_epoch_size(st->npages) +
                         st->state_len);
        for (size_t i = 0; i < st->npages; i += TDM_XPAGE_BATCH) {
            uint32_t n = (uint32_t)TDM_MIN((size_t)TDM_XPAGE_BATCH,
                                           st->npages - i);
            for (uint32_t j = 0; j < n; j++)
                pfns[j] = r->slot_pfn[st->pfns[i + j]];
            /* pfns were checked when their slots came */
            tdm_xrec_page_data(&c->b, pfns, tdm_staging_page(st, i), n);
        }
    }
    for (unsigned i = 0; i < s.nrec; i++)
        tdm_xrec_put(&c->b, s.rec[i].type, s.rec[i].body, s.rec[i].len);
    tdm_xstream_checkpoint(&c->b);
    r->epochs++;
    c->bytes = c->b.len;
    if (full)
        log_info("%s: epoch %llu: full, %zu pages, %zu bytes of stream "
                 "queued in %.1f ms%s", d->conf.name,
                 (unsigned long long)st->epoch, st->npages,
                 c->bytes + (take ? tdm_xstream_epoch_size(st->npages) : 0),
                 (tdm_now_ns() - t0) / 1e6,
                 take ? " (its pages go from the staging buffer, off the "
                        "event loop)" : "");
    if (take) {
        c->bytes += tdm_xstream_epoch_size(st->npages);
        c->pages = *st;             /* the buffers are the chunk's now */
        tdm_staging_init(st);
    }
    return push(r, c);
}

int xen_replica_apply(struct tdm_dom *d, const struct tdm_staging *st)
{
    /* not taken: st is only read */
    return replica_epoch(d, (struct tdm_staging *)st, false);
}

int xen_replica_apply_take(struct tdm_dom *d, struct tdm_staging *st)
{
    return replica_epoch(d, st, true);
}

/* ---- activate, destroy ---- */

int xen_replica_activate(struct tdm_dom *d)
{
    struct xen_replica *r = &d->r;
    uint64_t t0 = tdm_now_ns(), deadline;
    char line[160];
    unsigned domid;
    int n = 0;

    if (!r->started) {
        log_warnx("%s: no epoch applied: nothing to activate", d->conf.name);
        return -1;
    }
    /* Every queued epoch into the stream, then its end: Xen's restore
     * takes that for the primary's failure and completes from the last
     * whole checkpoint. */
    writer_stop(r, false);
    if (r->failed) {
        log_warnx("%s: the restore stream broke before the failover: no "
                  "replica to activate", d->conf.name);
        return -1;
    }
    /* Xen adds the disks when the stream ends: the link must be there. */
    if (d->conf.disk_nbd[0] &&
        xen_disk_replica_link(d, line, sizeof(line)) < 0) {
        log_warnx("%s: failover: %s", d->conf.name, line);
        return -1;
    }
    close(r->data_fd);
    r->data_fd = -1;
    if (write(r->ctl_fd, "activate\n", 9) != 9) {
        log_warn("%s: the restore process is gone", d->conf.name);
        return -1;
    }
    deadline = t0 + (uint64_t)ACTIVATE_TIMEOUT_MS * 1000000;
    for (;;) {
        if (ctl_line(r, line, sizeof(line), deadline) < 0) {
            log_warnx("%s: the restore process did not complete the "
                      "failover (%s)", d->conf.name,
                      tdm_now_ns() >= deadline ? "timed out" : "it ended");
            return -1;
        }
        if (!strncmp(line, "ready ", 6)) {
            log_info("%s: restore complete after %.1f ms (%llu bytes of "
                     "stream): unpausing", d->conf.name,
                     (tdm_now_ns() - t0) / 1e6,
                     (unsigned long long)r->written);
            continue;
        }
        if (!strncmp(line, "error ", 6)) {
            log_warnx("%s: failover: %s", d->conf.name, line + 6);
            return -1;
        }
        if (sscanf(line, "ok %u %63s%n", &domid, d->domname, &n) == 2 &&
            domid < 0x7ff0)
            break;
        log_warnx("%s: unexpected word from the restore process: %.60s",
                  d->conf.name, line);
        return -1;
    }
    d->domid = domid;
    log_notice("%s: replica running as domain '%s' (domid %u), %.1f ms "
               "after the failover began", d->conf.name, d->domname, domid,
               (tdm_now_ns() - t0) / 1e6);
    return 0;
}

/* Tell the child to destroy its domain, and wait for it to be done. */
static void child_destroy(struct tdm_dom *d)
{
    struct xen_replica *r = &d->r;
    char line[160];

    if (r->ctl_fd < 0)
        return;
    if (write(r->ctl_fd, "destroy\n", 8) == 8) {
        uint64_t deadline = tdm_now_ns() +
                            (uint64_t)DESTROY_TIMEOUT_MS * 1000000;
        while (ctl_line(r, line, sizeof(line), deadline) == 0)
            ;
    }
    close(r->ctl_fd);
    r->ctl_fd = -1;
}

void xen_replica_destroy(struct tdm_dom *d)
{
    struct xen_replica *r = &d->r;
    bool init = r->slot_pfn != NULL;

    writer_stop(r, true);
    if (r->data_fd >= 0)
        close(r->data_fd);
    r->data_fd = -1;
    free_chunks(r->head);
    r->head = r->tail = NULL;
    child_destroy(d);
    if (init) {
        pthread_mutex_destroy(&r->lock);
        pthread_cond_destroy(&r->cond);
    }
}

int xen_libxl_child(const char *name,
                    int (*fn)(libxl_ctx *ctx, uint32_t domid, void *arg),
                    uint32_t domid, void *arg)
{
    xentoollog_logger lg;
    libxl_ctx *ctx = NULL;
    pid_t p;
    int st, rc;

    p = fork();
    if (p < 0) {
        log_warn("%s: fork", name);
        return ERROR_FAIL;
    }
    if (p == 0) {
        child_setup(open("/dev/null", O_RDONLY), open("/dev/null", O_RDONLY));
        xen_logger_init(&lg);
        if (libxl_ctx_alloc(&ctx, LIBXL_VERSION, 0, &lg))
            _exit(-ERROR_FAIL);
        rc = fn(ctx, domid, arg);
        _exit(rc < 0 && rc > -256 ? -rc : rc ? -ERROR_FAIL : 0);
    }
    while (waitpid(p, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st))
        return ERROR_FAIL;
    return -WEXITSTATUS(st);
}

static int destroy_fn(libxl_ctx *ctx, uint32_t domid, void *arg)
{
    (void)arg;
    return libxl_domain_destroy(ctx, domid, NULL);
}

void xen_destroy_domain(struct tdm_dom *d)
{
    if (d->r.ctl_fd >= 0) {     /* an activated replica: its child does it */
        child_destroy(d);
        return;
    }
    if (xen_libxl_child(d->conf.name, destroy_fn, d->domid, NULL))
        log_warnx("%s: destroying domain %u failed", d->conf.name, d->domid);
    else
        log_info("%s: domain %u destroyed", d->conf.name, d->domid);
}
