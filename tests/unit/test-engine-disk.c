/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Disk replication through the engine (libs/engine/disk.c), end to end in
 * one process: a primary host and a backup host on one event loop over
 * loopback TCP, real nbdkit with our plugin serving the primary's image,
 * and a "guest" thread writing to that export through libnbd (writes,
 * zeroes, trims, flushes) that stops while the fake driver is suspended,
 * as a guest's vCPU does.
 *
 * The fake driver's capture records the CRC of the primary's image, whose
 * writes all stand acknowledged while the guest is stopped; its apply on
 * the backup (which the engine calls right after committing the epoch's
 * disk writes) checks that the replica's image has exactly that CRC. So
 * every applied epoch has the disk of that epoch: no write of a later
 * epoch, none of its own missing. After a failover the activated replica
 * serves its disk over NBD, and what a client reads there is the disk of
 * the last applied epoch.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <event2/event.h>
#include <libnbd.h>

#include "engine-private.h"
#include "engine-loop.h"
#include "nbdkit-env.h"

#define DISK_SIZE (4u << 20)
#define MAX_EPOCHS 8192

static char dir[64], image[96], plugin[PATH_MAX], nbdkit[PATH_MAX];

/* ---- the guest: a thread writing to the disk ---- */

struct tdm_dom {
    bool replica, running, suspended, adopted;
    char nbd[108];
    uint64_t state;
};

static struct tdm_dom *primary_dom, *replica_dom;
static pthread_mutex_t guest_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t guest;
static bool guest_on;
static volatile bool guest_quit;
static unsigned guest_ops, guest_errors;
static volatile uint32_t guest_span;   /* writes go below it */
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t disk_crc[MAX_EPOCHS];
static bool have_crc[MAX_EPOCHS];
static unsigned disk_checked, disk_bad;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint32_t file_crc(const char *path)
{
    static uint8_t buf[DISK_SIZE];
    int fd = open(path, O_RDONLY);

    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, DISK_SIZE, 0), DISK_SIZE);
    close(fd);
    return tdm_crc32c(0, buf, DISK_SIZE);
}

static void *guest_main(void *arg)
{
    struct nbd_handle *h = nbd_create();
    static uint8_t data[65536];

    (void)arg;
    assert_non_null(h);
    if (nbd_connect_unix(h, primary_dom->nbd) < 0) {
        fprintf(stderr, "guest: %s\n", nbd_get_error());
        guest_errors++;
        nbd_close(h);
        return NULL;
    }
    while (!guest_quit) {
        uint32_t len = (uint32_t)(1 + rnd() % 128) * 512, k = rnd() % 100;
        uint64_t off = (rnd() % ((guest_span - len) / 512 + 1)) * 512;
        int r;

        pthread_mutex_lock(&guest_lock);        /* held while "suspended" */
        memset(data, (int)(guest_ops & 0xff), len);
        memcpy(data, &guest_ops, sizeof(guest_ops));
        if (k < 80)
            r = nbd_pwrite(h, data, len, off, 0);
        else if (k < 90)
            r = nbd_zero(h, len, off, 0);
        else if (k < 95)
            r = nbd_trim(h, len, off, 0);
        else
            r = nbd_flush(h, 0);
        pthread_mutex_unlock(&guest_lock);
        if (r < 0) {
            /* the export went away (the primary "died") */
            guest_errors++;
            break;
        }
        guest_ops++;
        usleep(200);
    }
    nbd_close(h);
    return NULL;
}

static void guest_start(void)
{
    guest_quit = false;
    guest_ops = guest_errors = 0;
    /* the upper half stays zeroes: a sync does not send those */
    guest_span = DISK_SIZE / 2;
    assert_int_equal(pthread_create(&guest, NULL, guest_main, NULL), 0);
    guest_on = true;
}

static void guest_stop(void)
{
    if (!guest_on)
        return;
    guest_quit = true;
    pthread_join(guest, NULL);
    guest_on = false;
}

/* ---- fake driver ---- */

static int f_validate(struct tdm_cfg *cfg, char *err, size_t errlen)
{
    tdm_cfg_get(cfg, "name");
    tdm_cfg_get(cfg, "driver");
    tdm_cfg_get(cfg, "disk_nbd");
    tdm_cfg_get(cfg, "disk_adopted");
    return tdm_cfg_check_unused(cfg, err, errlen);
}
static int f_new(struct tdm_cfg *cfg, bool replica, struct tdm_dom **r)
{
    const char *nbd = tdm_cfg_get(cfg, "disk_nbd");

    *r = tdm_calloc(1, sizeof(**r));
    (*r)->replica = replica;
    (*r)->running = !replica;
    (*r)->adopted = tdm_cfg_get(cfg, "disk_adopted") != NULL;
    if (nbd)
        tdm_strlcpy((*r)->nbd, nbd, sizeof((*r)->nbd));
    return 0;
}
static int f_create(struct tdm_cfg *cfg, struct event_base *b,
                    const struct tdm_dom_events *ev, struct tdm_dom **r)
{
    f_new(cfg, false, r);
    primary_dom = *r;
    /* the export is up before the driver creates the domain */
    assert_true(access(primary_dom->nbd, F_OK) == 0);
    return 0;
}
static int f_create_replica(struct tdm_cfg *cfg, struct event_base *b,
                            const struct tdm_dom_events *ev, struct tdm_dom **r)
{
    f_new(cfg, true, r);
    replica_dom = *r;
    return 0;
}
static uint64_t f_npages(struct tdm_dom *d) { return 4; }
static int f_log_dirty(struct tdm_dom *d, bool on) { return 0; }
static int f_suspend(struct tdm_dom *d)
{
    pthread_mutex_lock(&guest_lock);    /* waits out a request in flight */
    d->suspended = true;
    return 0;
}
static int f_resume(struct tdm_dom *d)
{
    if (d->suspended) {
        d->suspended = false;
        pthread_mutex_unlock(&guest_lock);
    }
    return 0;
}
static int f_capture(struct tdm_dom *d, struct tdm_staging *st)
{
    assert_true(d->suspended);
    memset(tdm_staging_add_page(st, 0), 0, TDM_PAGE_SIZE);
    d->state = st->epoch;
    tdm_staging_set_state(st, &d->state, sizeof(d->state));
    if (st->epoch < MAX_EPOCHS) {
        disk_crc[st->epoch] = file_crc(image);
        have_crc[st->epoch] = true;
    }
    return 0;
}
static int f_apply(struct tdm_dom *d, const struct tdm_staging *st)
{
    char rep[128];

    memcpy(&d->state, st->state, sizeof(d->state));
    /* the backup's disk thread applies committed epochs on its own time */
    tdm__disk_drain(eng_b());
    snprintf(rep, sizeof(rep), "%s/b/d1.img", dir);
    if (st->epoch >= MAX_EPOCHS || !have_crc[st->epoch] ||
        file_crc(rep) != disk_crc[st->epoch]) {
        fprintf(stderr, "epoch %llu: the replica's disk is not the "
                "primary's of that epoch\n", (unsigned long long)st->epoch);
        disk_bad++;
    }
    disk_checked++;
    return 0;
}
static int f_activate(struct tdm_dom *d)
{
    /* the replica's disk is served before the driver runs the guest */
    assert_true(access(d->nbd, F_OK) == 0);
    d->running = true;
    return 0;
}
static void f_output_buffer(struct tdm_dom *d, bool on, uint64_t e) {}
static void f_output_cut(struct tdm_dom *d, uint64_t e) {}
static void f_output_release(struct tdm_dom *d, uint64_t e) {}
static void f_output_stats(struct tdm_dom *d, struct tdm_output_stats *s)
{
    memset(s, 0, sizeof(*s));
}
static bool f_running(struct tdm_dom *d) { return d->running; }
static void f_destroy(struct tdm_dom *d)
{
    if (d == primary_dom) {
        if (d->suspended)
            f_resume(d);
        guest_stop();
        primary_dom = NULL;
    }
    if (d == replica_dom)
        replica_dom = NULL;
    free(d);
}
/* fakekeep: a guest that outlives tandemd (as the xen driver's do) */
static void f_release(struct tdm_dom *d)
{
    if (d->suspended)
        f_resume(d);
    if (d == primary_dom)
        primary_dom = NULL;     /* the guest thread runs on */
    free(d);
}

static const struct tdm_driver_ops fake_disk = {
    .name = "fakedisk", .validate = f_validate, .create = f_create,
    .create_replica = f_create_replica, .npages = f_npages,
    .log_dirty = f_log_dirty, .suspend = f_suspend, .capture = f_capture,
    .resume = f_resume, .apply = f_apply, .activate = f_activate,
    .output_buffer = f_output_buffer, .output_cut = f_output_cut,
    .output_release = f_output_release, .output_stats = f_output_stats,
    .running = f_running, .destroy = f_destroy,
};
/* fake_disk with a release op (main) */
static struct tdm_driver_ops fake_keep;
static const char *driver_name = "fakedisk";

/* ---- harness ---- */

/* the guest runs on its own thread */
static void loop_step(unsigned i) { (void)i; }
static bool b_primary(void)
{
    return eng_b() && eng_b()->role == TDM_ROLE_PRIMARY &&
           eng_b()->state == TDM_ST_UNPROTECTED;
}

static void make_image(void)
{
    static uint8_t buf[DISK_SIZE];
    int fd;

    /* the first MiB random, the rest zeroes (which a sync need not send) */
    for (size_t i = 0; i < (1u << 20); i += 8) {
        uint64_t v = rnd();
        memcpy(buf + i, &v, 8);
    }
    memset(buf + (1u << 20), 0, DISK_SIZE - (1u << 20));
    fd = open(image, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, buf, DISK_SIZE, 0), DISK_SIZE);
    close(fd);
}

static void host_config(struct tdm_host_config *hc, char which)
{
    tdm_host_config_default(hc);
    tdm_strlcpy(hc->nbdkit, nbdkit, sizeof(hc->nbdkit));
    tdm_strlcpy(hc->nbdkit_plugin, plugin, sizeof(hc->nbdkit_plugin));
    if (which == 'b') {
        tdm_strlcpy(hc->listen_addr, "127.0.0.1", sizeof(hc->listen_addr));
        hc->listen_port = 0;
    } else {
        hc->listen_addr[0] = '\0';
    }
    snprintf(hc->disk_dir, sizeof(hc->disk_dir), "%s/%c", dir, which);
}

static void create_d1(void)
{
    char err[256], cfg[256];

    snprintf(cfg, sizeof(cfg), "name = \"d1\"\ndriver = \"%s\"\n"
             "disk = \"%s\"\n", driver_name, image);
    if (tdm_host_create(hp, cfg, strlen(cfg), err, sizeof(err)) < 0)
        fail_msg("create: %s", err);
}

static int setup(void **state)
{
    struct tdm_host_config hc;

    strcpy(dir, "/tmp/tdm-edisk-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(image, sizeof(image), "%s/primary.img", dir);
    make_image();
    memset(have_crc, 0, sizeof(have_crc));
    disk_checked = disk_bad = 0;

    base = event_base_new();
    host_config(&hc, 'b');
    assert_int_equal(tdm_host_new(base, &hc, NULL, &hb), 0);
    host_config(&hc, 'p');
    assert_int_equal(tdm_host_new(base, &hc, NULL, &hp), 0);
    create_d1();
    guest_start();
    return 0;
}

static int setup_keep(void **state)
{
    driver_name = "fakekeep";
    return setup(state);
}

/* the pid in nbdkit's pid file for d1 on host which, or 0 */
static pid_t left_pid(char which)
{
    char p[128];
    long pid = 0;
    FILE *f;

    snprintf(p, sizeof(p), "%s/%c/d1.nbd.pid", dir, which);
    if (!(f = fopen(p, "r")))
        return 0;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    return (pid_t)pid;
}

static int teardown(void **state)
{
    char cmd[128];

    pid_t left;

    guest_stop();
    tdm_host_free(hp);
    tdm_host_free(hb);
    hp = hb = NULL;
    run_ms(1);
    /* a persistent nbdkit (fakekeep) outlives its host: not the test's */
    for (const char *h = "pb"; *h; h++)
        if ((left = left_pid(*h)) > 0 && kill(left, SIGTERM) == 0)
            for (int i = 0; i < 300 && kill(left, 0) == 0; i++)
                usleep(10000);
    driver_name = "fakedisk";
    event_base_free(base);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void protect(uint32_t timeout_ms)
{
    struct tdm_engine_params p = {.interval_ms = 10, .heartbeat_ms = 20,
                                  .timeout_ms = timeout_ms};
    char err[256];

    assert_int_equal(tdm_host_protect(hp, "d1", "127.0.0.1",
                                      tdm_host_listen_port(hb), &p, err,
                                      sizeof(err)), 0);
}

static void disk_stats(struct tdm_engine *eng, struct tdm_disk_stats *s)
{
    struct tdm_engine_info in;

    tdm_engine_info(eng, &in);
    *s = in.disk;
    assert_true(s->present);
}

/* Writes keep coming while the disk syncs and epochs go; every applied
 * epoch's disk is the primary's of that epoch. */
static void test_sync_then_epochs(void **state)
{
    struct tdm_disk_stats sp, sb;

    protect(2000);
    assert_true(run_until(protected, 10000));
    run_ms(600);
    guest_stop();
    run_ms(100);
    disk_stats(eng_p(), &sp);
    disk_stats(eng_b(), &sb);
    print_message("%u guest ops, %u epochs applied and checked; sync %llu "
                  "of %llu bytes sent; %llu records, %llu held on the "
                  "backup; longest cut %llu us\n", guest_ops, disk_checked,
                  (unsigned long long)sp.sync_sent,
                  (unsigned long long)sp.sync_total,
                  (unsigned long long)sp.records,
                  (unsigned long long)sb.held_records,
                  (unsigned long long)sp.cut_ns_max / 1000);
    assert_int_equal(guest_errors, 0);
    assert_true(guest_ops > 100);
    assert_true(disk_checked >= 10);
    assert_int_equal(disk_bad, 0);
    assert_int_equal(sp.syncs, 1);
    assert_true(sp.in_sync && sb.in_sync);
    assert_int_equal(sp.sync_total, DISK_SIZE);
    /* zero chunks are not sent: the random MiB and the one the guest
     * writes to, not the upper half */
    assert_true(sp.sync_sent <= DISK_SIZE / 2);
    assert_true(sp.records > 0);
    assert_int_equal(sb.committed_epoch, eng_b()->applied);
    assert_int_equal(eng_b()->m.torn_epochs, 0);
}

/* The primary dies at a random moment: the replica serves the disk of the
 * last epoch it applied, byte for byte, over the same NBD export. */
static void test_failover_serves_committed_disk(void **state)
{
    static uint8_t buf[DISK_SIZE];
    struct nbd_handle *h;
    uint64_t applied;
    char nbd[128];

    protect(400);   /* slack for sanitizer builds: the test checks the CRC in the loop */
    assert_true(run_until(protected, 10000));
    run_ms(100 + (unsigned)(rnd() % 400));
    /* the primary dies without a word; its guest (and writes) with it */
    tdm__primary_unprotect(eng_p(), false);
    tdm_host_destroy(hp, "d1", NULL, 0);
    applied = eng_b()->applied;
    assert_true(run_until(b_primary, 5000));
    /* an epoch already on its way may still have been applied */
    assert_true(eng_b()->applied >= applied);
    applied = eng_b()->applied;
    assert_int_equal(disk_bad, 0);
    assert_true(have_crc[applied]);

    snprintf(nbd, sizeof(nbd), "%s/b/d1.nbd", dir);
    h = nbd_create();
    assert_non_null(h);
    if (nbd_connect_unix(h, nbd) < 0)
        fail_msg("connecting to the activated replica's disk: %s",
                 nbd_get_error());
    assert_int_equal(nbd_get_size(h), DISK_SIZE);
    assert_int_equal(nbd_pread(h, buf, DISK_SIZE, 0, 0), 0);
    assert_int_equal(tdm_crc32c(0, buf, DISK_SIZE), disk_crc[applied]);
    /* and the new primary's disk takes writes (into its own write log) */
    memset(buf, 0x5a, 4096);
    assert_int_equal(nbd_pwrite(h, buf, 4096, 0, 0), 0);
    nbd_close(h);
    print_message("failed over at epoch %llu after %u guest ops; the "
                  "replica's disk matched it\n", (unsigned long long)applied,
                  guest_ops);
}

/* A planned failover while the guest writes: the final epoch goes once the
 * staging buffer is written, not when the link drains (the records may
 * never let it), and the new primary's disk is the old one's at that
 * epoch. */
static void test_planned_failover_with_disk(void **state)
{
    static uint8_t buf[DISK_SIZE];
    struct nbd_handle *h;
    char err[256], nbd[128];
    uint64_t applied;

    protect(5000);
    assert_true(run_until(protected, 10000));
    run_ms(200 + (unsigned)(rnd() % 300));
    assert_int_equal(tdm_host_failover(hp, "d1", err, sizeof(err)), 0);
    assert_true(run_until(b_primary, 5000));
    run_ms(50);
    assert_int_equal(eng_p()->state, TDM_ST_STOPPED);
    assert_int_equal(disk_bad, 0);
    applied = eng_b()->applied;
    assert_true(have_crc[applied]);
    snprintf(nbd, sizeof(nbd), "%s/b/d1.nbd", dir);
    assert_non_null(h = nbd_create());
    if (nbd_connect_unix(h, nbd) < 0)
        fail_msg("the new primary's disk: %s", nbd_get_error());
    assert_int_equal(nbd_pread(h, buf, DISK_SIZE, 0, 0), 0);
    assert_int_equal(tdm_crc32c(0, buf, DISK_SIZE), disk_crc[applied]);
    nbd_close(h);
    print_message("handed over at epoch %llu after %u guest ops; the new "
                  "primary's disk is the old one's of that epoch\n",
                  (unsigned long long)applied, guest_ops);
}

static bool b_gone(void)
{
    return eng_b() == NULL;
}

static bool p_connecting(void)
{
    return eng_p() && eng_p()->state == TDM_ST_CONNECTING;
}

/* A short break of the link: the primary comes back and sends only the
 * regions written after the backup's last epoch. */
static void test_resync_after_disconnect(void **state)
{
    struct tdm_disk_stats sp;
    uint64_t before;

    /* from now on the guest writes its first MiB only: the resync must
     * read that and no more */
    guest_span = 1u << 20;
    protect(5000);
    assert_true(run_until(protected, 10000));
    run_ms(200);
    /* the backup drops the link; the primary reconnects within a second,
     * well inside the failure timeout */
    tdm__peer_close(eng_b()->peer);
    eng_b()->peer = NULL;
    assert_true(run_until(p_connecting, 1000));
    before = disk_checked;
    assert_true(run_until(protected, 10000));
    run_ms(300);
    guest_stop();
    run_ms(100);
    disk_stats(eng_p(), &sp);
    print_message("resync read %llu of %llu bytes; %u epochs checked after "
                  "it\n", (unsigned long long)sp.sync_total,
                  (unsigned long long)DISK_SIZE, disk_checked - (unsigned)before);
    assert_int_equal(sp.syncs, 1);
    assert_int_equal(sp.resyncs, 1);
    assert_true(sp.sync_total > 0 && sp.sync_total <= (1u << 20));
    /* with a backup, changes went with their data; without one (the
     * disconnect), as ranges only, which the resync still found */
    assert_true(sp.records > 0);
    print_message("%llu ranges logged without data while unprotected\n",
                  (unsigned long long)sp.dirty_records);
    assert_true(sp.dirty_records > 0);
    assert_true(disk_checked > before + 5);
    assert_int_equal(disk_bad, 0);
    assert_int_equal(eng_b()->state, TDM_ST_REPLICA);
    assert_int_equal(eng_b()->m.failovers, 0);
}

/* tandemd stops while a guest that outlives it (xen) writes to its disk:
 * nbdkit serves on, unlogged, and the next tandemd takes it over, learns
 * its epoch, tracks its changes again and syncs the whole disk when
 * protecting. */
static void test_restart_keeps_disk_served(void **state)
{
    struct tdm_host_config hc;
    struct tdm_disk_stats sp;
    char err[256];
    unsigned ops, errs;
    pid_t pid = left_pid('p');
    char path[64], stat[256] = "";
    long ppid = 0;
    FILE *f;

    assert_true(pid > 0);
    /* nbdkit is not tandem's child: it would die with it (Debian's nbdkit
     * asks for a signal at its parent's death) */
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    assert_non_null(f = fopen(path, "r"));
    assert_non_null(fgets(stat, sizeof(stat), f));
    fclose(f);
    assert_int_equal(sscanf(strrchr(stat, ')') + 2, "%*c %ld", &ppid), 1);
    print_message("nbdkit %d: parent %ld (this process: %d)\n", (int)pid,
                  ppid, (int)getpid());
    assert_true(ppid != (long)getpid());
    protect(5000);
    assert_true(run_until(protected, 10000));
    run_ms(200);
    /* Protection ends (tandemd's stop does this too, but here the backup
     * shares this thread and cannot read while a stopping host flushes),
     * then tandemd stops: it leaves the guest and its disk. */
    assert_int_equal(tdm_host_unprotect(hp, "d1", err, sizeof(err)), 0);
    assert_true(run_until(b_gone, 3000));
    tdm_host_free(hp);
    hp = NULL;
    ops = guest_ops;
    errs = guest_errors;
    run_ms(300);
    print_message("%u guest requests while no tandemd ran\n",
                  guest_ops - ops);
    assert_true(guest_ops > ops + 20);
    assert_int_equal(guest_errors, errs);
    assert_int_equal(kill(pid, 0), 0);
    assert_int_equal(left_pid('p'), pid);

    /* the next tandemd */
    host_config(&hc, 'p');
    assert_int_equal(tdm_host_new(base, &hc, NULL, &hp), 0);
    create_d1();
    assert_non_null(primary_dom);
    assert_true(primary_dom->adopted);
    assert_int_equal(left_pid('p'), pid);
    disk_stats(eng_p(), &sp);
    ops = (unsigned)sp.dirty_records;
    run_ms(300);
    disk_stats(eng_p(), &sp);
    print_message("%llu changes tracked again after the takeover\n",
                  (unsigned long long)sp.dirty_records - ops);
    assert_true(sp.dirty_records > ops);
    assert_int_equal(guest_errors, errs);
    /* protected again: the whole disk (what changed meanwhile is unknown),
     * then every epoch's disk checked */
    ops = disk_checked;
    protect(5000);
    assert_true(run_until(protected, 10000));
    run_ms(300);
    disk_stats(eng_p(), &sp);
    assert_int_equal(sp.syncs, 1);
    assert_int_equal(sp.resyncs, 0);
    assert_true(disk_checked > ops + 5);
    assert_int_equal(disk_bad, 0);
    assert_int_equal(guest_errors, errs);
}

/* Bad disk settings are refused with a clear message and change nothing. */
static void test_config_errors(void **state)
{
    static const struct {
        const char *extra, *want;
    } cases[] = {
        {"disk = \"relative.img\"\n", "absolute path"},
        {"disk = \"/nonexistent/x.img\"\n", "No such file"},
        {"disk = \"/tmp\"\n", "not a regular file"},
        {"disk = \"@ODD@\"\n", "512-byte sectors"},
        {"disk = \"@IMG@\"\ndisk_nbd = \"/tmp/x.nbd\"\n", "disk_nbd is set by "
                                                            "tandem"},
        {"disk = \"@IMG2@\"\ndisk_adopted = \"yes\"\n", "disk_adopted is set "
                                                           "by tandem"},
    };
    char odd[128], cfg[512], err[256];
    int fd;

    snprintf(odd, sizeof(odd), "%s/odd.img", dir);
    fd = open(odd, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0 && ftruncate(fd, 1000) == 0);
    close(fd);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char extra[256];
        const char *e = cases[i].extra;

        if (strstr(e, "@ODD@"))
            snprintf(extra, sizeof(extra), "disk = \"%s\"\n", odd);
        else if (strstr(e, "@IMG@"))
            snprintf(extra, sizeof(extra), "disk = \"%s\"\ndisk_nbd = "
                     "\"/tmp/x.nbd\"\n", image);
        else if (strstr(e, "@IMG2@"))
            snprintf(extra, sizeof(extra), "disk = \"%s\"\ndisk_adopted = "
                     "\"yes\"\n", image);
        else
            snprintf(extra, sizeof(extra), "%s", e);
        snprintf(cfg, sizeof(cfg), "name = \"d2\"\ndriver = \"fakedisk\"\n%s",
                 extra);
        err[0] = '\0';
        assert_int_equal(tdm_host_create(hp, cfg, strlen(cfg), err,
                                         sizeof(err)), -1);
        if (!strstr(err, cases[i].want))
            fail_msg("case %zu: '%s' does not say '%s'", i, err,
                     cases[i].want);
        assert_null(tdm_host_find(hp, "d2"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sync_then_epochs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failover_serves_committed_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failover_serves_committed_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failover_serves_committed_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resync_after_disconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_planned_failover_with_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_disk_served,
                                        setup_keep, teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    if (!tdm_test_find_in_path("nbdkit", nbdkit, sizeof(nbdkit))) {
        printf("SKIP: nbdkit is not in PATH (apt-get install nbdkit)\n");
        return 77;
    }
    if (tdm_test_find_plugin(plugin, sizeof(plugin), "../..") < 0) {
        printf("plugin %s: %s (build it with make)\n", plugin,
               strerror(errno));
        return 1;
    }
    tdm_test_preload_asan();
    rng ^= (uint64_t)getpid() << 20 ^ tdm_now_ns();
    tdm_driver_register(&fake_disk);
    fake_keep = fake_disk;
    fake_keep.name = "fakekeep";
    fake_keep.release = f_release;
    tdm_driver_register(&fake_keep);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
