/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The micro-VM's disk (disk_nbd) against real nbdkit exports on unix
 * sockets: the device model with hand-assembled guests (every op and every
 * error, dirty marking, a dead export), a replica that connects only when
 * activated, a missing export failing create; then the KV guest firmware
 * itself, its table mirrored onto a file image: fsck over the protocol and
 * with kvclient, kvdisk on the image (and both failing on a corrupted
 * slot), a fresh boot over the same image reading the data back, a disk
 * too small, and a panic when the export dies. The firmware's NIC is a
 * datagram socket pair (uvm_test_nic_fd) relayed to a UDP socket on
 * 127.0.0.1, so kvclient talks to it unchanged and no root is needed.
 *
 * Skips (77), saying why, without nbdkit.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kv-disk.h"
#include "kv-proto.h"
#include "tdm-util.h"
#include "uvm-private.h"

#define RAM_MIB 8
#define RAM_SIZE ((uint64_t)RAM_MIB << 20)
#define DISK_SIZE (4u << 20)

static char tmpdir[64], logpath[128];
static int log_fd = -1;

#include "uvm-test.h"

/* Hand-assembled guests go to tmpdir (the KV tests point kpath at the
 * firmware). */
static void kernel_in_tmpdir(void)
{
    snprintf(kpath, sizeof(kpath), "%s/kernel", tmpdir);
}

/* Loop on UVM_HC_WAIT until the byte at flag is not 0. */
static void wait_flag(struct as *a, uint64_t flag)
{
    size_t top = a->n;

    mov_imm(a, RDI, 1000);
    hcall(a, UVM_HC_WAIT);
    mov_imm(a, RBX, flag);
    EMIT(a, 0x80, 0x3b, 0x00);                  /* cmp byte [rbx],0 */
    EMIT(a, 0x74, (uint8_t)(top - (a->n + 2))); /* je top */
}

/* ---- the log (stderr goes to a file, so that messages can be checked) ---- */

static off_t log_mark;

/* Since the last log_reset. */
static bool log_has(const char *needle)
{
    static char buf[1 << 20];
    ssize_t n;
    int fd = open(logpath, O_RDONLY);

    assert_true(fd >= 0);
    n = pread(fd, buf, sizeof(buf) - 1, log_mark);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return strstr(buf, needle) != NULL;
}

static void log_reset(void)
{
    log_mark = lseek(log_fd, 0, SEEK_END);
}

/* ---- nbdkit ---- */

struct nbd_srv {
    pid_t pid;
    char sock[108];
};

static bool have_nbdkit(void)
{
    return system("command -v nbdkit >/dev/null 2>&1") == 0;
}

static bool sock_ready(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    tdm_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* nbdkit PLUGIN ARG on TMPDIR/NAME. */
static void nbd_start(struct nbd_srv *s, const char *name, const char *plugin,
                      const char *arg)
{
    snprintf(s->sock, sizeof(s->sock), "%s/%s", tmpdir, name);
    unlink(s->sock);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        execlp("nbdkit", "nbdkit", "-f", "--exit-with-parent", "-U", s->sock,
               plugin, arg, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1000 && !sock_ready(s->sock); i++)
        usleep(10000);
    assert_true(sock_ready(s->sock));
}

static void nbd_stop(struct nbd_srv *s)
{
    int st;

    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    assert_int_equal(waitpid(s->pid, &st, 0), s->pid);
    s->pid = 0;
    unlink(s->sock);
}

/* ---- domains ---- */

static struct tdm_dom *make_disk(const char *sock, bool replica)
{
    char extra[256];

    snprintf(extra, sizeof(extra), "disk_nbd = \"%s\"\n", sock);
    return make_cfg(RAM_MIB, extra, replica, 0);
}

/* ---- the device model ---- */

#define DATA 0x300000ull        /* request structs, one per call */
#define RES 0x500000ull         /* results: one u32 per call */
#define WBUF 0x400000ull        /* what the guest writes */
#define RBUF 0x410000ull        /* where reads land */
#define BIGBUF 0x600000ull      /* 1 MiB */
#define SIZEBUF 0x420000ull
#define FLAG 0x430000ull

struct call {
    uint32_t op, len;
    uint64_t offset, buf;
    uint64_t req;               /* 0: at DATA + 32 * i */
    int32_t want;
};

/* The request structs go into guest RAM through the kernel image: placed
 * beyond the code, at DATA - UVM_LOAD_ADDR in the file. The kernel grows to
 * cover them (a sparse tail is fine: the loader reads the whole file). */
static void build_calls(struct as *a, const struct call *c, size_t n,
                        uint64_t flag)
{
    for (size_t i = 0; i < n; i++) {
        mov_imm(a, RDI, c[i].req ? c[i].req : DATA + 32 * i);
        hcall(a, UVM_HC_DISK);
        store_eax(a, RES + 4 * i);
        if (flag && i == 0) {
            /* after the first call: say so, then wait for the test */
            mov_imm(a, RBX, flag + 1);
            EMIT(a, 0xc6, 0x03, 0x01);      /* mov byte [rbx],1 */
            wait_flag(a, flag);
        }
    }
    mov_imm(a, RDI, 0);
    hcall(a, UVM_HC_EXIT);
    spin(a);
}

static void write_kernel_with(const struct as *a, const struct call *c,
                              size_t n)
{
    size_t size = (size_t)(DATA - UVM_LOAD_ADDR) + 32 * n + WBUF - DATA + 4096;
    uint8_t *img = calloc(1, size);

    assert_non_null(img);
    memcpy(img, a->b, a->n);
    for (size_t i = 0; i < n; i++) {
        uint8_t *r = img + (DATA - UVM_LOAD_ADDR) + 32 * i;
        tdm_put_le32(r, c[i].op);
        tdm_put_le32(r + 4, c[i].len);
        tdm_put_le64(r + 8, c[i].offset);
        tdm_put_le64(r + 16, c[i].buf);
    }
    /* the bytes the guest writes: a pattern at WBUF */
    for (size_t i = 0; i < 4096; i++)
        img[(WBUF - UVM_LOAD_ADDR) + i] = (uint8_t)(i * 7 + 3);
    kernel_in_tmpdir();
    write_kernel(img, size);
    free(img);
}

static void check_results(struct tdm_dom *d, const struct call *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int32_t got = (int32_t)tdm_get_le32(d->ram + RES + 4 * i);
        if (got != c[i].want)
            print_message("call %zu (op %u len %u off %llu): got %d, want %d\n",
                          i, c[i].op, c[i].len,
                          (unsigned long long)c[i].offset, got, c[i].want);
        assert_int_equal(got, c[i].want);
    }
}

static void test_disk_ops(void **state)
{
    const uint64_t sz = DISK_SIZE;
    const struct call calls[] = {
        {UVM_DISK_INFO, 8, 0, SIZEBUF, 0, 0},
        {UVM_DISK_WRITE, 4096, 8192, WBUF, 0, 0},
        {UVM_DISK_FLUSH, 0, 0, 0, 0, 0},
        {UVM_DISK_READ, 4096, 8192, RBUF, 0, 0},
        {UVM_DISK_READ, UVM_DISK_MAX_IO, sz - UVM_DISK_MAX_IO, BIGBUF, 0, 0},
        {UVM_DISK_WRITE, 512, sz - 512, WBUF, 0, 0},        /* last sector */
        /* bad requests */
        {0, 512, 0, RBUF, 0, -UVM_EINVAL},
        {99, 512, 0, RBUF, 0, -UVM_EINVAL},
        {UVM_DISK_READ, 0, 0, RBUF, 0, -UVM_EINVAL},
        {UVM_DISK_READ, 100, 0, RBUF, 0, -UVM_EINVAL},
        {UVM_DISK_WRITE, 512, 100, WBUF, 0, -UVM_EINVAL},
        {UVM_DISK_READ, UVM_DISK_MAX_IO + 512, 0, BIGBUF, 0, -UVM_EINVAL},
        {UVM_DISK_READ, 1024, sz - 512, RBUF, 0, -UVM_EINVAL},
        {UVM_DISK_WRITE, 512, sz, WBUF, 0, -UVM_EINVAL},
        {UVM_DISK_READ, 512, ~0ull & ~511ull, RBUF, 0, -UVM_EINVAL},
        {UVM_DISK_INFO, 4, 0, SIZEBUF, 0, -UVM_EINVAL},
        {UVM_DISK_INFO, 8, 512, SIZEBUF, 0, -UVM_EINVAL},
        {UVM_DISK_FLUSH, 512, 0, 0, 0, -UVM_EINVAL},
        /* buffers outside RAM */
        {UVM_DISK_READ, 1024, 0, RAM_SIZE - 512, 0, -UVM_EFAULT},
        {UVM_DISK_WRITE, 512, 0, ~0ull - 100, 0, -UVM_EFAULT},
        {UVM_DISK_INFO, 8, 0, RAM_SIZE - 4, 0, -UVM_EFAULT},
        {UVM_DISK_INFO, 8, 0, SIZEBUF, RAM_SIZE - 8, -UVM_EFAULT},
        {UVM_DISK_INFO, 8, 0, SIZEBUF, ~0ull - 8, -UVM_EFAULT},
    };
    struct as a = {.n = 0};
    struct nbd_srv srv;
    struct tdm_dom *d;
    struct nbd_handle *h;
    uint8_t buf[4096];

    (void)state;
    nbd_start(&srv, "ops.sock", "memory", "4M");
    /* Something to read back at the end of the disk. */
    h = nbd_create();
    assert_non_null(h);
    assert_int_equal(nbd_connect_unix(h, srv.sock), 0);
    memset(buf, 0xab, sizeof(buf));
    assert_int_equal(nbd_pwrite(h, buf, 4096, sz - 4096, 0), 0);

    build_calls(&a, calls, TDM_ARRAY_SIZE(calls), 0);
    write_kernel_with(&a, calls, TDM_ARRAY_SIZE(calls));
    memset(&stops, 0, sizeof(stops));
    d = make_disk(srv.sock, false);
    wait_stop();
    assert_false(stops.crashed);
    check_results(d, calls, TDM_ARRAY_SIZE(calls));

    /* INFO: the size, little-endian */
    assert_int_equal(tdm_get_le64(d->ram + SIZEBUF), sz);
    /* WRITE then READ: the pattern, and the read's page is dirty */
    assert_memory_equal(d->ram + RBUF, d->ram + WBUF, 4096);
    assert_true(tdm_bitmap_test(d->dirty, RBUF >> TDM_PAGE_SHIFT));
    assert_true(tdm_bitmap_test(d->dirty, SIZEBUF >> TDM_PAGE_SHIFT));
    assert_true(tdm_bitmap_test(d->dirty, (BIGBUF + UVM_DISK_MAX_IO - 1) >>
                                TDM_PAGE_SHIFT));
    /* the 1 MiB read has the bytes put there from outside, then the last
     * sector the guest overwrote */
    assert_int_equal(d->ram[BIGBUF + UVM_DISK_MAX_IO - 4096], 0xab);
    assert_int_equal(d->ram[BIGBUF + UVM_DISK_MAX_IO - 513], 0xab);
    assert_int_equal(d->ram[BIGBUF], 0);
    /* and the export has what the guest wrote */
    assert_int_equal(nbd_pread(h, buf, 4096, 8192, 0), 0);
    assert_memory_equal(buf, d->ram + WBUF, 4096);
    assert_int_equal(nbd_pread(h, buf, 512, sz - 512, 0), 0);
    assert_memory_equal(buf, d->ram + WBUF, 512);
    nbd_close(h);
    tdm_driver_uvm.destroy(d);
    nbd_stop(&srv);
}

/* No disk configured: every disk call is -ENOSYS, whatever its request. */
static void test_disk_none(void **state)
{
    const struct call calls[] = {
        {UVM_DISK_INFO, 8, 0, SIZEBUF, 0, -UVM_ENOSYS},
        {UVM_DISK_READ, 512, 0, RBUF, 0, -UVM_ENOSYS},
        {UVM_DISK_INFO, 8, 0, SIZEBUF, ~0ull, -UVM_ENOSYS},
    };
    struct as a = {.n = 0};
    struct tdm_dom *d;

    (void)state;
    build_calls(&a, calls, TDM_ARRAY_SIZE(calls), 0);
    write_kernel_with(&a, calls, TDM_ARRAY_SIZE(calls));
    memset(&stops, 0, sizeof(stops));
    d = make_cfg(RAM_MIB, NULL, false, 0);
    wait_stop();
    check_results(d, calls, TDM_ARRAY_SIZE(calls));
    tdm_driver_uvm.destroy(d);
}

/* The export dies between two calls: -EIO, logged. */
static void test_disk_eio(void **state)
{
    const struct call calls[] = {
        {UVM_DISK_READ, 512, 0, RBUF, 0, 0},
        {UVM_DISK_READ, 512, 0, RBUF, 0, -UVM_EIO},
        {UVM_DISK_WRITE, 512, 0, WBUF, 0, -UVM_EIO},
        {UVM_DISK_INFO, 8, 0, SIZEBUF, 0, 0},   /* no I/O: still answers */
    };
    struct as a = {.n = 0};
    struct nbd_srv srv;
    struct tdm_dom *d;

    (void)state;
    nbd_start(&srv, "eio.sock", "memory", "1M");
    build_calls(&a, calls, TDM_ARRAY_SIZE(calls), FLAG);
    write_kernel_with(&a, calls, TDM_ARRAY_SIZE(calls));
    memset(&stops, 0, sizeof(stops));
    log_reset();
    d = make_disk(srv.sock, false);
    for (int i = 0; i < 500 && !__atomic_load_n(&d->ram[FLAG + 1],
                                                 __ATOMIC_ACQUIRE); i++)
        usleep(10000);
    assert_int_equal(d->ram[FLAG + 1], 1);
    nbd_stop(&srv);
    __atomic_store_n(&d->ram[FLAG], 1, __ATOMIC_RELEASE);
    wait_stop();
    check_results(d, calls, TDM_ARRAY_SIZE(calls));
    assert_true(log_has("read of 512 bytes at 0 failed"));
    tdm_driver_uvm.destroy(d);
}

/* A missing export: create fails and says which. */
static void test_disk_missing(void **state)
{
    struct as a = {.n = 0};
    char extra[256];

    (void)state;
    spin(&a);
    kernel_in_tmpdir();
    write_kernel(a.b, a.n);
    log_reset();
    snprintf(extra, sizeof(extra), "disk_nbd = \"%s/nothing.sock\"\n", tmpdir);
    assert_null(make_cfg(RAM_MIB, extra, false, -1));
    assert_true(log_has("nothing.sock: cannot connect"));
}

/* A replica keeps the path and connects only when activated: before the
 * export exists that fails (and the replica can be activated again), after
 * it the guest continues and sees this export, not the primary's. */
static void test_disk_replica(void **state)
{
    const struct call calls[] = {
        {UVM_DISK_INFO, 8, 0, SIZEBUF, 0, 0},
        {UVM_DISK_INFO, 8, 0, SIZEBUF + 8, 0, 0},
    };
    struct as a = {.n = 0};
    struct nbd_srv pri, bak;
    struct tdm_dom *p, *r;
    struct tdm_staging st;
    char extra[256];

    (void)state;
    nbd_start(&pri, "pri.sock", "memory", "1M");
    build_calls(&a, calls, TDM_ARRAY_SIZE(calls), FLAG);
    write_kernel_with(&a, calls, TDM_ARRAY_SIZE(calls));
    memset(&stops, 0, sizeof(stops));
    p = make_disk(pri.sock, false);
    assert_non_null(p->nbd);

    /* The backup's export does not exist yet. */
    snprintf(bak.sock, sizeof(bak.sock), "%s/bak.sock", tmpdir);
    bak.pid = 0;
    snprintf(extra, sizeof(extra), "disk_nbd = \"%s\"\n", bak.sock);
    r = make_cfg(RAM_MIB, extra, true, 0);
    assert_null(r->nbd);
    assert_string_equal(r->disk_nbd, bak.sock);

    for (int i = 0; i < 500 && !__atomic_load_n(&p->ram[FLAG + 1],
                                                 __ATOMIC_ACQUIRE); i++)
        usleep(10000);
    assert_int_equal(tdm_get_le64(p->ram + SIZEBUF), 1u << 20);
    tdm_staging_init(&st);
    assert_int_equal(tdm_staging_alloc(&st, p->npages), 0);
    assert_int_equal(tdm_driver_uvm.log_dirty(p, true), 0);
    assert_int_equal(tdm_driver_uvm.suspend(p), 0);
    tdm_staging_reset(&st, 1);
    assert_int_equal(tdm_driver_uvm.capture(p, &st), 0);
    tdm_driver_uvm.destroy(p);
    nbd_stop(&pri);
    assert_int_equal(tdm_driver_uvm.apply(r, &st), 0);
    tdm_staging_dispose(&st);
    r->ram[FLAG] = 1;

    log_reset();
    assert_int_equal(tdm_driver_uvm.activate(r), -1);
    assert_true(log_has("bak.sock: cannot connect"));
    assert_null(r->nbd);

    nbd_start(&bak, "bak.sock", "memory", "2M");
    assert_int_equal(tdm_driver_uvm.activate(r), 0);
    assert_non_null(r->nbd);
    wait_stop();
    assert_false(stops.crashed);
    assert_int_equal((int32_t)tdm_get_le32(r->ram + RES + 4), 0);
    assert_int_equal(tdm_get_le64(r->ram + SIZEBUF + 8), 2u << 20);
    tdm_driver_uvm.destroy(r);
    nbd_stop(&bak);
}

static void test_disk_config(void **state)
{
    static const char *bad[] = {
        "name = \"t\"\ndisk_nbd = \"rel/sock\"\n",
        "name = \"t\"\ndisk_nbd = \"\"\n",
        NULL,                   /* 108 bytes: one too many for sun_path */
    };
    static const char *good = "name = \"t\"\ndisk_nbd = \"/run/x.sock\"\n";
    struct tdm_cfg cfg;
    char err[256], longest[256], path[110];

    (void)state;
    memset(path, 'x', 108);
    path[0] = '/';
    path[108] = '\0';
    snprintf(longest, sizeof(longest), "name = \"t\"\ndisk_nbd = \"%s\"\n", path);
    for (size_t i = 0; i < TDM_ARRAY_SIZE(bad); i++) {
        const char *text = bad[i] ? bad[i] : longest;
        tdm_cfg_init(&cfg);
        assert_int_equal(tdm_cfg_parse(&cfg, text, strlen(text), err,
                                       sizeof(err)), 0);
        err[0] = '\0';
        assert_int_equal(tdm_driver_uvm.validate(&cfg, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "disk_nbd"));
        tdm_cfg_dispose(&cfg);
    }
    tdm_cfg_init(&cfg);
    assert_int_equal(tdm_cfg_parse(&cfg, good, strlen(good), err, sizeof(err)), 0);
    assert_int_equal(tdm_driver_uvm.validate(&cfg, err, sizeof(err)), 0);
    tdm_cfg_dispose(&cfg);
    /* 107 bytes fit */
    path[107] = '\0';
    snprintf(longest, sizeof(longest), "name = \"t\"\ndisk_nbd = \"%s\"\n", path);
    tdm_cfg_init(&cfg);
    assert_int_equal(tdm_cfg_parse(&cfg, longest, strlen(longest), err,
                                   sizeof(err)), 0);
    assert_int_equal(tdm_driver_uvm.validate(&cfg, err, sizeof(err)), 0);
    tdm_cfg_dispose(&cfg);
}

/* The layout's CRC is tdm_crc32c's. */
static void test_layout_crc(void **state)
{
    uint8_t b[600];

    (void)state;
    assert_int_equal(kvd_crc32c((const uint8_t *)"123456789", 9), 0xe3069283u);
    for (size_t i = 0; i < sizeof(b); i++)
        b[i] = (uint8_t)(i * 31 + 1);
    assert_int_equal(kvd_crc32c(b, sizeof(b)), tdm_crc32c(0, b, sizeof(b)));
}

/* ---- the KV guest over a relay ---- */

#define GUEST_IP 0x0a000001u    /* 10.0.0.1 */
#define PEER_IP 0x0a000002u
#define KV_MIB 4
static const uint8_t guest_mac[6] = {0x52, 0x54, 0x00, 0x00, 0x00, 0x01};
static const uint8_t peer_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};

struct relay {
    int nic[2];                 /* [0] ours, [1] the guest's */
    int udp;                    /* 127.0.0.1:port */
    int stop[2];
    uint16_t port;
    pthread_t thread;
};

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    put_be16(p, (uint16_t)(v >> 16));
    put_be16(p + 2, (uint16_t)v);
}

static uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint16_t ip_csum(const uint8_t *p, size_t n)
{
    uint32_t sum = 0;

    for (size_t i = 0; i + 1 < n; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static void *relay_main(void *arg)
{
    struct relay *r = arg;
    uint8_t f[2048];

    for (;;) {
        struct pollfd pfd[3] = {{.fd = r->udp, .events = POLLIN},
                                {.fd = r->nic[0], .events = POLLIN},
                                {.fd = r->stop[0], .events = POLLIN}};
        if (poll(pfd, 3, -1) < 0 && errno != EINTR)
            break;
        if (pfd[2].revents)
            break;
        if (pfd[0].revents & POLLIN) {
            struct sockaddr_in from;
            socklen_t fl = sizeof(from);
            uint8_t *ip = f + 14, *u = ip + 20;
            ssize_t n = recvfrom(r->udp, u + 8, sizeof(f) - 42, 0,
                                 (struct sockaddr *)&from, &fl);
            if (n > 0 && n <= 1472) {
                memcpy(f, guest_mac, 6);
                memcpy(f + 6, peer_mac, 6);
                f[12] = 0x08; f[13] = 0x00;
                memset(ip, 0, 20);
                ip[0] = 0x45;
                put_be16(ip + 2, (uint16_t)(20 + 8 + n));
                ip[8] = 64;
                ip[9] = 17;
                put_be32(ip + 12, PEER_IP);
                put_be32(ip + 16, GUEST_IP);
                put_be16(ip + 10, ip_csum(ip, 20));
                memcpy(u, &from.sin_port, 2);
                put_be16(u + 2, KV_DEFAULT_PORT);
                put_be16(u + 4, (uint16_t)(8 + n));
                put_be16(u + 6, 0);
                if (send(r->nic[0], f, (size_t)(42 + n), 0) < 0)
                    perror("relay: to the guest");
            }
        }
        if (pfd[1].revents & POLLIN) {
            ssize_t n = recv(r->nic[0], f, sizeof(f), 0);
            uint8_t *ip = f + 14, *u = ip + 20;
            struct sockaddr_in to = {.sin_family = AF_INET};
            if (n < 42 || f[12] != 0x08 || f[13] != 0 || ip[0] != 0x45 ||
                ip[9] != 17 || get_be16(u) != KV_DEFAULT_PORT)
                continue;               /* ARP, GARP, ... */
            to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            memcpy(&to.sin_port, u + 2, 2);
            if (sendto(r->udp, u + 8, (size_t)(get_be16(u + 4) - 8), 0,
                       (struct sockaddr *)&to, sizeof(to)) < 0)
                perror("relay: to the client");
        }
    }
    return NULL;
}

static void relay_start(struct relay *r)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sin);

    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, r->nic), 0);
    assert_int_equal(pipe2(r->stop, O_CLOEXEC), 0);
    r->udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(r->udp >= 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(r->udp, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(r->udp, (struct sockaddr *)&sin, &sl), 0);
    r->port = ntohs(sin.sin_port);
    uvm_test_nic_fd = r->nic[1];
    assert_int_equal(pthread_create(&r->thread, NULL, relay_main, r), 0);
}

static void relay_stop(struct relay *r)
{
    assert_int_equal(write(r->stop[1], "x", 1), 1);
    pthread_join(r->thread, NULL);
    uvm_test_nic_fd = -1;
    close(r->nic[0]);
    close(r->nic[1]);
    close(r->udp);
    close(r->stop[0]);
    close(r->stop[1]);
}

/* One KV request, retried with the same id until answered (kv_tries
 * times 50 ms). */
static int kv_tries = 100;
struct kvc {
    int fd;
    uint32_t client;
    uint64_t id;
};

static void kvc_open(struct kvc *c, const struct relay *r)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};

    c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(c->fd >= 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(r->port);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    c->client = (uint32_t)getpid() ^ (uint32_t)tdm_now_ns();
    c->id = tdm_wall_ns();
}

/* Returns the status, -1 on no reply; the value to out/out_len. */
static int kv_call(struct kvc *c, uint8_t op, const char *key,
                   const void *value, size_t vlen, uint8_t *out,
                   size_t *out_len)
{
    uint8_t req[KV_REQ_MAX], rep[KV_REP_MAX + 16];
    size_t klen = key ? strlen(key) : 0, n = KV_REQ_HDR_LEN + klen + vlen;
    uint64_t id = ++c->id;

    memset(req, 0, KV_REQ_HDR_LEN);
    kv_put_le32(req + KV_OFF_MAGIC, KV_MAGIC);
    req[KV_OFF_VERSION] = KV_VERSION;
    req[KV_OFF_OP] = op;
    req[KV_OFF_KEY_LEN] = (uint8_t)klen;
    kv_put_le32(req + KV_OFF_CLIENT_ID, c->client);
    kv_put_le16(req + KV_OFF_VALUE_LEN, (uint16_t)vlen);
    kv_put_le64(req + KV_OFF_REQUEST_ID, id);
    if (klen)
        memcpy(req + KV_REQ_HDR_LEN, key, klen);
    if (vlen)
        memcpy(req + KV_REQ_HDR_LEN + klen, value, vlen);
    for (int tries = 0; tries < kv_tries; tries++) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        ssize_t got;
        assert_int_equal(send(c->fd, req, n, 0), (ssize_t)n);
        while (poll(&pfd, 1, 50) > 0) {
            got = recv(c->fd, rep, sizeof(rep), 0);
            if (got < (ssize_t)KV_REP_HDR_LEN ||
                kv_get_le64(rep + KV_OFF_REQUEST_ID) != id)
                continue;
            if (out) {
                *out_len = kv_get_le16(rep + KV_OFF_VALUE_LEN);
                memcpy(out, rep + KV_REP_HDR_LEN, *out_len);
            }
            return rep[KV_OFF_STATUS];
        }
    }
    return -1;
}

struct fsck {
    uint32_t differ, items, slots, flags;
};

static struct fsck kv_fsck(struct kvc *c)
{
    uint8_t out[KV_VALUE_MAX];
    size_t n = 0;
    struct fsck f;

    assert_int_equal(kv_call(c, KV_OP_FSCK, NULL, NULL, 0, out, &n), KV_OK);
    assert_int_equal(n, KV_FSCK_LEN);
    f.differ = kv_get_le32(out);
    f.items = kv_get_le32(out + 4);
    f.slots = kv_get_le32(out + 8);
    f.flags = kv_get_le32(out + 12);
    return f;
}

/* The model: what the table must hold. */
#define NKEYS 1400
static struct {
    char key[16];
    char value[40];
    bool present;
} model[NKEYS + 1];             /* the last one is "ctr" */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* kvdisk's escaping: printable ASCII but space and backslash as is. */
static size_t escape(char *out, const uint8_t *p, size_t n)
{
    size_t len = 0;

    for (size_t i = 0; i < n; i++) {
        if (p[i] > 0x20 && p[i] < 0x7f && p[i] != '\\')
            out[len++] = (char)p[i];
        else
            len += (size_t)sprintf(out + len, "\\x%02x", p[i]);
    }
    return len;
}

static char *model_listing(void)
{
    const char *keys[NKEYS + 1];
    size_t n = 0, len = 0;
    char *out;

    for (size_t i = 0; i <= NKEYS; i++)
        if (model[i].present)
            keys[n++] = model[i].key;
    qsort(keys, n, sizeof(keys[0]), cmp_str);
    out = calloc(1, 64 * (n + 1));
    assert_non_null(out);
    for (size_t k = 0; k < n; k++) {
        size_t i = (size_t)(strstr(keys[k], "ctr") == keys[k] ? NKEYS :
                            strtoul(keys[k] + 1, NULL, 10));
        /* ctr holds a little-endian u64 */
        size_t vlen = i == NKEYS ? 8 : strlen(model[i].value);
        len += escape(out + len, (const uint8_t *)model[i].key,
                      strlen(model[i].key));
        out[len++] = ' ';
        len += escape(out + len, (const uint8_t *)model[i].value, vlen);
        out[len++] = '\n';
    }
    return out;
}

static char *run_cmd(const char *cmd, int *status)
{
    FILE *p = popen(cmd, "r");
    char *buf = calloc(1, 1 << 20);
    size_t n;

    assert_non_null(p);
    assert_non_null(buf);
    n = fread(buf, 1, (1 << 20) - 1, p);
    buf[n] = '\0';
    *status = pclose(p);
    assert_true(WIFEXITED(*status));
    *status = WEXITSTATUS(*status);
    return buf;
}

static const char *builddir(void)
{
    const char *b = getenv("top_builddir");
    return b && *b ? b : ".";
}

static struct tdm_dom *kv_boot(const struct relay *r, const char *sock)
{
    char extra[512];

    snprintf(kpath, sizeof(kpath), "%s/guest/kv-guest.bin", builddir());
    snprintf(extra, sizeof(extra),
             "vif = \"mac=52:54:00:00:00:01,ip=10.0.0.1/24\"\n"
             "disk_nbd = \"%s\"\n", sock);
    (void)r;
    return make_cfg(KV_MIB, extra, false, 0);
}

static void kv_wait_up(struct kvc *c)
{
    assert_int_equal(kv_call(c, KV_OP_STATS, NULL, NULL, 0, NULL, NULL), KV_OK);
}

static void test_kv_on_disk(void **state)
{
    char img[160], cmd[512], *out, *want;
    struct nbd_srv srv;
    struct relay r;
    struct kvc c;
    struct tdm_dom *d;
    struct fsck f;
    uint8_t val[KV_VALUE_MAX], delta[8], saved[KVD_SLOT_SIZE];
    size_t n, items = 0;
    int st, fd;
    uint32_t slot = 0;

    (void)state;
    snprintf(img, sizeof(img), "%s/kv.img", tmpdir);
    fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 4 << 20), 0);
    nbd_start(&srv, "kv.sock", "file", img);
    relay_start(&r);
    log_reset();
    d = kv_boot(&r, srv.sock);
    kvc_open(&c, &r);
    kv_wait_up(&c);
    assert_true(log_has("slots initialised"));

    /* Enough keys for long probe runs, so that deletes shift entries back. */
    for (size_t i = 0; i < NKEYS; i++) {
        snprintf(model[i].key, sizeof(model[i].key), "k%zu", i);
        snprintf(model[i].value, sizeof(model[i].value), "value-%zu-%zu", i,
                 i * 7919 % 1000);
        assert_int_equal(kv_call(&c, KV_OP_PUT, model[i].key, model[i].value,
                                 strlen(model[i].value), NULL, NULL), KV_OK);
        model[i].present = true;
    }
    for (size_t i = 0; i < NKEYS; i += 3) {
        assert_int_equal(kv_call(&c, KV_OP_DEL, model[i].key, NULL, 0, NULL,
                                 NULL), KV_OK);
        model[i].present = false;
    }
    for (size_t i = 1; i < NKEYS; i += 5) {
        snprintf(model[i].value, sizeof(model[i].value), "again-%zu", i);
        assert_int_equal(kv_call(&c, KV_OP_PUT, model[i].key, model[i].value,
                                 strlen(model[i].value), NULL, NULL), KV_OK);
        model[i].present = true;    /* some were deleted above */
    }
    strcpy(model[NKEYS].key, "ctr");
    kv_put_le64(delta, 40);
    assert_int_equal(kv_call(&c, KV_OP_INCR, "ctr", delta, 8, NULL, NULL), KV_OK);
    kv_put_le64(delta, 2);
    assert_int_equal(kv_call(&c, KV_OP_INCR, "ctr", delta, 8, NULL, NULL), KV_OK);
    kv_put_le64((uint8_t *)model[NKEYS].value, 42);
    model[NKEYS].present = true;
    for (size_t i = 0; i <= NKEYS; i++)
        items += model[i].present;

    /* kvclient too, for a put and a del of its own */
    snprintf(cmd, sizeof(cmd), "%s/tests/tools/kvclient -s 127.0.0.1:%u put "
             "viaclient yes", builddir(), r.port);
    free(run_cmd(cmd, &st));
    assert_int_equal(st, 0);
    snprintf(cmd, sizeof(cmd), "%s/tests/tools/kvclient -s 127.0.0.1:%u del "
             "viaclient", builddir(), r.port);
    free(run_cmd(cmd, &st));
    assert_int_equal(st, 0);

    /* fsck over the protocol */
    f = kv_fsck(&c);
    assert_int_equal(f.flags, KV_FSCK_DISK);
    assert_int_equal(f.differ, 0);
    assert_int_equal(f.items, items);
    print_message("kv: %u items in %u slots, mirror identical\n", f.items,
                  f.slots);
    /* fsck with kvclient */
    snprintf(cmd, sizeof(cmd), "%s/tests/tools/kvclient -s 127.0.0.1:%u fsck",
             builddir(), r.port);
    out = run_cmd(cmd, &st);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "differ=0"));
    free(out);
    /* kvdisk on the image */
    snprintf(cmd, sizeof(cmd), "%s/tests/tools/kvdisk --check %s", builddir(),
             img);
    out = run_cmd(cmd, &st);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "consistent"));
    free(out);
    snprintf(cmd, sizeof(cmd), "%s/tests/tools/kvdisk %s", builddir(), img);
    out = run_cmd(cmd, &st);
    assert_int_equal(st, 0);
    want = model_listing();
    assert_string_equal(out, want);
    free(out);

    /* Damage one used slot behind the guest's back: every checker sees it. */
    for (slot = 0; slot < f.slots; slot++) {
        assert_int_equal(pread(fd, saved, sizeof(saved),
                               (off_t)kvd_slot_offset(slot)), sizeof(saved));
        if (saved[0])
            break;
    }
    assert_true(slot < f.slots);
    assert_int_equal(pwrite(fd, "X", 1, (off_t)kvd_slot_offset(slot) + 100), 1);
    assert_int_equal(fdatasync(fd), 0);
    assert_int_equal(kv_fsck(&c).differ, 1);
    snprintf(cmd, sizeof(cmd), "%s/tests/tools/kvclient -s 127.0.0.1:%u fsck",
             builddir(), r.port);
    out = run_cmd(cmd, &st);
    assert_int_equal(st, 1);
    assert_non_null(strstr(out, "differ=1"));
    free(out);
    snprintf(cmd, sizeof(cmd), "%s/tests/tools/kvdisk --check %s 2>&1",
             builddir(), img);
    out = run_cmd(cmd, &st);
    assert_int_equal(st, 1);
    assert_non_null(strstr(out, "checksum mismatch"));
    free(out);
    assert_int_equal(pwrite(fd, saved, sizeof(saved),
                            (off_t)kvd_slot_offset(slot)), sizeof(saved));
    assert_int_equal(kv_fsck(&c).differ, 0);

    /* A fresh boot over the same disk has the same table. */
    tdm_driver_uvm.destroy(d);
    log_reset();
    d = kv_boot(&r, srv.sock);
    kv_wait_up(&c);
    assert_true(log_has("loaded"));
    for (size_t i = 0; i <= NKEYS; i++) {
        int s = kv_call(&c, KV_OP_GET, model[i].key, NULL, 0, val, &n);
        if (!model[i].present) {
            assert_int_equal(s, KV_NOT_FOUND);
            continue;
        }
        assert_int_equal(s, KV_OK);
        assert_int_equal(n, i == NKEYS ? 8 : strlen(model[i].value));
        assert_memory_equal(val, model[i].value, n);
    }
    assert_int_equal(kv_call(&c, KV_OP_GET, "viaclient", NULL, 0, val, &n),
                     KV_NOT_FOUND);
    f = kv_fsck(&c);
    assert_int_equal(f.differ, 0);
    assert_int_equal(f.items, items);
    /* and it goes on writing through */
    assert_int_equal(kv_call(&c, KV_OP_DEL, "k1", NULL, 0, NULL, NULL), KV_OK);
    model[1].present = false;
    free(want);
    want = model_listing();
    snprintf(cmd, sizeof(cmd), "%s/tests/tools/kvdisk %s", builddir(), img);
    out = run_cmd(cmd, &st);
    assert_int_equal(st, 0);
    assert_string_equal(out, want);
    free(out);
    free(want);

    /* The export dies: the next write panics the guest, saying why. */
    memset(&stops, 0, sizeof(stops));
    nbd_stop(&srv);
    kv_tries = 4;
    assert_int_equal(kv_call(&c, KV_OP_PUT, "after", "x", 1, NULL, NULL), -1);
    kv_tries = 100;
    wait_stop();
    assert_true(stops.crashed);
    print_message("guest stopped: %s\n", stops.why);
    assert_non_null(strstr(stops.why, "disk write"));
    tdm_driver_uvm.destroy(d);

    close(c.fd);
    relay_stop(&r);
    close(fd);
    unlink(img);
}

/* A disk too small for the table: the guest says so and runs without. */
static void test_kv_disk_too_small(void **state)
{
    char cmd[256], *out;
    struct nbd_srv srv;
    struct relay r;
    struct kvc c;
    struct tdm_dom *d;
    struct fsck f;
    int st;

    (void)state;
    nbd_start(&srv, "small.sock", "memory", "64K");
    relay_start(&r);
    log_reset();
    d = kv_boot(&r, srv.sock);
    kvc_open(&c, &r);
    kv_wait_up(&c);
    assert_true(log_has("WITHOUT the disk mirror"));
    assert_int_equal(kv_call(&c, KV_OP_PUT, "a", "b", 1, NULL, NULL), KV_OK);
    f = kv_fsck(&c);
    assert_int_equal(f.flags, 0);
    assert_int_equal(f.items, 1);
    snprintf(cmd, sizeof(cmd), "%s/tests/tools/kvclient -s 127.0.0.1:%u fsck",
             builddir(), r.port);
    out = run_cmd(cmd, &st);
    assert_int_equal(st, 1);
    assert_non_null(strstr(out, "disk=none"));
    free(out);
    tdm_driver_uvm.destroy(d);
    close(c.fd);
    relay_stop(&r);
    nbd_stop(&srv);
}

/* cmocka's failure messages went to stderr too: show the log. */
static void dump_log(void)
{
    char buf[4096];
    ssize_t n;
    int fd = open(logpath, O_RDONLY);

    if (fd < 0)
        return;
    printf("--- stderr (cmocka and the driver's log) ---\n");
    fflush(stdout);
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        if (write(STDOUT_FILENO, buf, (size_t)n) != n)
            break;
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_crc),
        cmocka_unit_test(test_disk_config),
        cmocka_unit_test(test_disk_ops),
        cmocka_unit_test(test_disk_none),
        cmocka_unit_test(test_disk_eio),
        cmocka_unit_test(test_disk_missing),
        cmocka_unit_test(test_disk_replica),
        cmocka_unit_test(test_kv_on_disk),
        cmocka_unit_test(test_kv_disk_too_small),
    };
    char cmd[128];
    int rc;

    if (!have_nbdkit()) {
        printf("SKIP: nbdkit is not installed (apt-get install nbdkit)\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    strcpy(tmpdir, "/tmp/tdm-uvm-disk-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    /* The driver's messages are checked: stderr to a file. */
    snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
    log_fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0 || dup2(log_fd, STDERR_FILENO) < 0) {
        perror(logpath);
        return 1;
    }
    tdm_log_init("test-uvm-disk", true, TDM_LOG_INFO);
    evthread_use_pthreads();
    base = event_base_new();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    event_base_free(base);
    if (rc || getenv("TDM_TEST_DEBUG"))
        dump_log();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        printf("cannot remove %s\n", tmpdir);
    return rc;
}
