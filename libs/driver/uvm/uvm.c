/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The uvm driver: a small x86-64 machine on the Unicorn emulator.
 *
 * Guest RAM is a page-aligned host buffer mapped with uc_mem_map_ptr; a
 * write hook over all of it keeps an exact dirty bitmap (and every write
 * the host makes into guest RAM sets the same bits). The vCPU runs on a
 * thread of its own; suspend parks it at an instruction boundary and
 * capture copies the dirty pages and an explicit register list while it is
 * parked. Devices are reached through IN-instruction hypercalls
 * (guest/uvm-abi.h). The NIC carries Ethernet frames to a TAP device; what
 * the guest transmits while output buffering is on is held per epoch until
 * the engine releases that epoch.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "tdm-util.h"
#include "uvm-private.h"

void (*uvm_test_tx_hook)(struct tdm_dom *d, const uint8_t *frame,
                         size_t len);
int uvm_test_nic_fd = -1;

static const int gpr_ids[UVM_NGPR] = {
    UC_X86_REG_RAX, UC_X86_REG_RBX, UC_X86_REG_RCX, UC_X86_REG_RDX,
    UC_X86_REG_RSI, UC_X86_REG_RDI, UC_X86_REG_RBP, UC_X86_REG_RSP,
    UC_X86_REG_R8,  UC_X86_REG_R9,  UC_X86_REG_R10, UC_X86_REG_R11,
    UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15,
};

/* ---- configuration ---- */

struct uvm_conf {
    char name[64];
    uint64_t memory_mib;
    char kernel[PATH_MAX];
    char extra[1025];
    struct uvm_nic nic;
    char disk_nbd[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static int vif_opt(const char *k, const char *v, void *arg)
{
    struct uvm_nic *nic = arg;

    if (!v)
        return -1;
    if (!strcmp(k, "mac"))
        return tdm_parse_mac(v, nic->mac);
    if (!strcmp(k, "ip")) {
        char ip[32];
        const char *slash = strchr(v, '/');
        uint64_t prefix;
        struct in_addr a;
        if (!slash || (size_t)(slash - v) >= sizeof(ip))
            return -1;
        memcpy(ip, v, (size_t)(slash - v));
        ip[slash - v] = '\0';
        if (inet_pton(AF_INET, ip, &a) != 1 ||
            tdm_parse_u64(slash + 1, 1, 32, &prefix) < 0)
            return -1;
        nic->ip = a.s_addr;
        nic->prefix = (uint8_t)prefix;
        return 0;
    }
    if (!strcmp(k, "tap") || !strcmp(k, "bridge")) {
        char *dst = !strcmp(k, "tap") ? nic->tap : nic->bridge;
        if (!*v || strlen(v) >= IFNAMSIZ || strchr(v, '/'))
            return -1;
        tdm_strlcpy(dst, v, IFNAMSIZ);
        return 0;
    }
    return -1;
}

static int conf_parse(struct tdm_cfg *cfg, struct uvm_conf *c, char *err,
                      size_t errlen)
{
    const char *s;

    memset(c, 0, sizeof(*c));
    c->nic.fd = -1;
    s = tdm_cfg_get(cfg, "name");
    if (!s || !tdm_valid_name(s))
        return tdm_errf(err, errlen, "name: required, 1-63 of [A-Za-z0-9_.-]");
    tdm_strlcpy(c->name, s, sizeof(c->name));
    s = tdm_cfg_get(cfg, "driver");
    if (s && strcmp(s, "uvm"))
        return tdm_errf(err, errlen, "driver = '%s': this is the uvm driver", s);
    if (tdm_cfg_get_u64(cfg, "memory", 16, 2, 4096, &c->memory_mib, err,
                        errlen) < 0)
        return -1;
    s = tdm_cfg_get(cfg, "kernel");
    if (!s)
        s = TDM_PKGDATADIR "/kv-guest.bin";
    if (!tdm_strlcpy(c->kernel, s, sizeof(c->kernel)))
        return tdm_errf(err, errlen, "kernel: path too long");
    s = tdm_cfg_get(cfg, "extra");
    if (s && !tdm_strlcpy(c->extra, s, sizeof(c->extra)))
        return tdm_errf(err, errlen, "extra: longer than 1024 bytes");
    /* "disk" is the engine's (libs/engine/disk.c): it serves the image and
     * hands the driver disk_nbd. Left unread here, it is refused below as
     * an unknown key when the driver is used without the engine. */
    s = tdm_cfg_get(cfg, "disk_nbd");
    if (s && (s[0] != '/' || !tdm_strlcpy(c->disk_nbd, s, sizeof(c->disk_nbd))))
        return tdm_errf(err, errlen, "disk_nbd = '%s': the absolute path of a "
                        "unix socket (at most %zu bytes)", s,
                        sizeof(c->disk_nbd) - 1);
    s = tdm_cfg_get(cfg, "vif");
    if (s) {
        c->nic.present = true;
        if (tdm_cfg_split_opts(s, vif_opt, &c->nic) < 0)
            return tdm_errf(err, errlen, "vif = '%s': expected "
                            "mac=52:54:00:xx:xx:xx,ip=A.B.C.D/P[,tap=NAME]"
                            "[,bridge=NAME]", s);
        if (!c->nic.ip || !(c->nic.mac[0] | c->nic.mac[1] | c->nic.mac[2] |
                            c->nic.mac[3] | c->nic.mac[4] | c->nic.mac[5]))
            return tdm_errf(err, errlen, "vif: mac= and ip= are required");
        if (!c->nic.tap[0])
            snprintf(c->nic.tap, sizeof(c->nic.tap), "tdm-%.11s", c->name);
    }
    return tdm_cfg_check_unused(cfg, err, errlen);
}

static int uvm_validate(struct tdm_cfg *cfg, char *err, size_t errlen)
{
    struct uvm_conf c;
    return conf_parse(cfg, &c, err, errlen);
}

/* ---- guest RAM and dirty tracking ---- */

static inline void mark_dirty(struct tdm_dom *d, uint64_t addr, uint64_t len)
{
    uint64_t first = addr >> TDM_PAGE_SHIFT;
    uint64_t last = (addr + (len ? len : 1) - 1) >> TDM_PAGE_SHIFT;

    for (uint64_t p = first; p <= last && p < d->npages; p++)
        tdm_bitmap_set(d->dirty, p);
}

static void hook_write(uc_engine *uc, uc_mem_type type, uint64_t addr,
                       int size, int64_t value, void *arg)
{
    struct tdm_dom *d = arg;
    uint64_t p = addr >> TDM_PAGE_SHIFT;

    /* The common case, one page, without the loop. */
    if (((addr + (uint64_t)size - 1) >> TDM_PAGE_SHIFT) == p) {
        if (p < d->npages)
            d->dirty[p / 64] |= (uint64_t)1 << (p % 64);
        return;
    }
    mark_dirty(d, addr, (uint64_t)size);
}

static bool range_ok(struct tdm_dom *d, uint64_t gpa, uint64_t len)
{
    return gpa < d->ram_size && len <= d->ram_size - gpa;
}

/* Every byte the host puts into guest RAM goes through here, so that the
 * next capture carries it. */
static void guest_write(struct tdm_dom *d, uint64_t gpa, const void *p,
                        size_t len)
{
    memcpy(d->ram + gpa, p, len);
    mark_dirty(d, gpa, len);
}

static uint64_t guest_now(struct tdm_dom *d)
{
    return tdm_now_ns() - d->time_base_ns;
}

static int32_t hc_wait(struct tdm_dom *d, uint64_t timeout_us);
static int net_tx(struct tdm_dom *d, const uint8_t *frame, size_t len);

/*
 * uvm_input: the one door through which the outside world reaches the
 * guest. Time (UVM_HC_TIME), random bytes (UVM_HC_RANDOM) and received
 * frames (UVM_HC_NET_RX) are produced here, and only here, then written
 * into guest RAM at gpa (marked dirty). The results of UVM_HC_WAIT and
 * UVM_HC_NET_TX depend on timing too (when a frame arrives, when the
 * backup acks and frees queue space), so they pass through here as well,
 * as the value the guest gets in EAX.
 *
 * The recorder (d->record, NULL by default) sees each value before the
 * guest does: a replay log attaches there, and a replaying host would
 * substitute the logged bytes at this same point. Everything else the
 * guest observes is a function of its memory, its registers and its
 * configuration, all of which an epoch carries.
 *
 * Called on the vCPU thread; gpa ranges are checked by the caller. arg is
 * the byte count for RANDOM, the timeout for WAIT, the frame length for
 * TX (whose bytes are at gpa). Returns the hypercall's result.
 */
static int32_t uvm_input(struct tdm_dom *d, enum uvm_input_kind kind,
                         uint64_t gpa, uint64_t arg)
{
    uint8_t buf[2048];          /* > UVM_FRAME_MAX: an oversized frame shows */
    size_t n = 0;
    int32_t ret = 0;
    ssize_t r;

    switch (kind) {
    case UVM_INPUT_TIME:
        tdm_put_le64(buf, guest_now(d));
        n = 8;
        break;
    case UVM_INPUT_RANDOM:
        r = getrandom(buf, (size_t)arg, 0);
        if (r == (ssize_t)arg)
            n = (size_t)arg;
        ret = n ? (int32_t)n : -UVM_EIO;
        break;
    case UVM_INPUT_FRAME:
        if (d->nic.fd < 0)
            break;
        r = read(d->nic.fd, buf, sizeof(buf));
        if (r <= 0)
            break;
        pthread_mutex_lock(&d->qlock);
        if (r < (ssize_t)UVM_FRAME_MIN || r > (ssize_t)UVM_FRAME_MAX) {
            d->stats.rx_dropped++;
            r = 0;
        } else {
            d->stats.rx_frames++;
        }
        pthread_mutex_unlock(&d->qlock);
        n = (size_t)r;
        ret = (int32_t)n;
        break;
    case UVM_INPUT_WAIT:
        ret = hc_wait(d, arg);
        buf[0] = (uint8_t)ret;
        if (d->record)
            d->record(d->record_arg, kind, buf, 1);
        return ret;
    case UVM_INPUT_TX_STATUS:
        ret = net_tx(d, d->ram + gpa, (size_t)arg);
        tdm_put_le32(buf, (uint32_t)ret);
        if (d->record)
            d->record(d->record_arg, kind, buf, 4);
        return ret;
    }
    if (d->record)
        d->record(d->record_arg, kind, buf, n);
    if (n)
        guest_write(d, gpa, buf, n);
    return ret;
}

void uvm_set_input_recorder(struct tdm_dom *d, uvm_input_recorder fn, void *arg)
{
    d->record = fn;
    d->record_arg = arg;
}

/* ---- NIC ---- */

static int tap_open(struct uvm_nic *nic, const char *domname)
{
    struct ifreq ifr;
    int fd, s = -1, rc = -1;

    fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        log_warn("%s: /dev/net/tun", domname);
        return -1;
    }
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    tdm_strlcpy(ifr.ifr_name, nic->tap, IFNAMSIZ);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        log_warn("%s: cannot create TAP %s", domname, nic->tap);
        goto out;
    }
    s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        log_warn("%s: socket", domname);
        goto out;
    }
    if (nic->bridge[0]) {
        struct ifreq br;
        memset(&br, 0, sizeof(br));
        tdm_strlcpy(br.ifr_name, nic->tap, IFNAMSIZ);
        if (ioctl(s, SIOCGIFINDEX, &br) < 0) {
            log_warn("%s: %s: no ifindex", domname, nic->tap);
            goto out;
        }
        tdm_strlcpy(br.ifr_name, nic->bridge, IFNAMSIZ);
        if (ioctl(s, SIOCBRADDIF, &br) < 0) {
            log_warn("%s: cannot add %s to bridge %s", domname, nic->tap,
                     nic->bridge);
            goto out;
        }
    }
    memset(&ifr, 0, sizeof(ifr));
    tdm_strlcpy(ifr.ifr_name, nic->tap, IFNAMSIZ);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
        log_warn("%s: %s: get flags", domname, nic->tap);
        goto out;
    }
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
        log_warn("%s: %s: set up", domname, nic->tap);
        goto out;
    }
    nic->fd = fd;
    fd = -1;
    rc = 0;
out:
    if (s >= 0)
        close(s);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* The TAP, or in tests a datagram socket standing in for it. */
static int nic_open(struct tdm_dom *d)
{
    int fd;

    if (uvm_test_nic_fd < 0)
        return tap_open(&d->nic, d->name);
    fd = fcntl(uvm_test_nic_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
        log_warn("%s: test NIC", d->name);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    d->nic.fd = fd;
    return 0;
}

static void tx_write(struct tdm_dom *d, const uint8_t *frame, size_t len)
{
    if (uvm_test_tx_hook) {
        uvm_test_tx_hook(d, frame, len);
        return;
    }
    if (d->nic.fd < 0)
        return;
    /* A TAP write only fails when the interface is down or gone. */
    if (write(d->nic.fd, frame, len) < 0)
        d->stats.discarded_frames++;
}

/* Write out held frames of epochs <= epoch. Caller holds qlock. */
static void queue_release_locked(struct tdm_dom *d, uint64_t epoch)
{
    while (d->qhead && d->qhead->epoch <= epoch) {
        struct uvm_frame *f = d->qhead;
        d->qhead = f->next;
        if (!d->qhead)
            d->qtail = NULL;
        d->qframes--;
        d->qbytes -= f->len;
        tx_write(d, f->data, f->len);
        d->stats.released_frames++;
        free(f);
    }
}

static int net_tx(struct tdm_dom *d, const uint8_t *frame, size_t len)
{
    struct uvm_frame *f;
    int rc = 0;

    pthread_mutex_lock(&d->qlock);
    if (!d->buffering) {
        tx_write(d, frame, len);
        d->stats.released_frames++;
        goto out;
    }
    if (d->qframes >= UVM_QUEUE_MAX_FRAMES ||
        d->qbytes + len > UVM_QUEUE_MAX_BYTES) {
        d->stats.backpressure++;
        rc = -UVM_EAGAIN;
        goto out;
    }
    f = tdm_malloc(sizeof(*f) + len);
    f->next = NULL;
    f->epoch = d->cur_epoch;
    f->len = (uint32_t)len;
    memcpy(f->data, frame, len);
    if (d->qtail)
        d->qtail->next = f;
    else
        d->qhead = f;
    d->qtail = f;
    d->qframes++;
    d->qbytes += len;
out:
    pthread_mutex_unlock(&d->qlock);
    return rc;
}

/* The transmit path, for tests that have no vCPU. */
int uvm__test_net_tx(struct tdm_dom *d, const uint8_t *frame, size_t len);
int uvm__test_net_tx(struct tdm_dom *d, const uint8_t *frame, size_t len)
{
    return net_tx(d, frame, len);
}

static void send_garp(struct tdm_dom *d)
{
    uint8_t f[42];

    memset(f, 0xff, 6);                     /* broadcast */
    memcpy(f + 6, d->nic.mac, 6);
    f[12] = 0x08; f[13] = 0x06;             /* ARP */
    f[14] = 0; f[15] = 1;                   /* Ethernet */
    f[16] = 0x08; f[17] = 0x00;             /* IPv4 */
    f[18] = 6; f[19] = 4;
    f[20] = 0; f[21] = 1;                   /* request */
    memcpy(f + 22, d->nic.mac, 6);
    memcpy(f + 28, &d->nic.ip, 4);          /* sender = target = our IP */
    memset(f + 32, 0, 6);
    memcpy(f + 38, &d->nic.ip, 4);
    for (int i = 0; i < 3; i++)
        tx_write(d, f, sizeof(f));
}

/* ---- disk: an NBD export over a unix socket ---- */

/* Before the vCPU runs (create, activate): a domain whose disk cannot be
 * reached does not start. */
static int disk_connect(struct tdm_dom *d)
{
    struct nbd_handle *h;
    int64_t size;

    if (!d->disk_nbd[0] || d->nbd)
        return 0;
    h = nbd_create();
    if (!h) {
        log_warnx("%s: disk_nbd %s: libnbd: %s", d->name, d->disk_nbd,
                  nbd_get_error());
        return -1;
    }
    if (nbd_connect_unix(h, d->disk_nbd) < 0) {
        log_warnx("%s: disk_nbd %s: cannot connect to the NBD export: %s",
                  d->name, d->disk_nbd, nbd_get_error());
        nbd_close(h);
        return -1;
    }
    size = nbd_get_size(h);
    if (size < 0) {
        log_warnx("%s: disk_nbd %s: no size: %s", d->name, d->disk_nbd,
                  nbd_get_error());
        nbd_close(h);
        return -1;
    }
    if (!d->disk_bounce)
        d->disk_bounce = tdm_malloc(UVM_DISK_MAX_IO);
    d->nbd = h;
    d->disk_size = (uint64_t)size;
    log_info("%s: disk %s: %llu bytes", d->name, d->disk_nbd,
             (unsigned long long)d->disk_size);
    return 0;
}

static void disk_close(struct tdm_dom *d)
{
    /* Only once the vCPU has stopped: nothing is in flight. Closing the
     * socket is enough for the export (no blocking NBD_CMD_DISC). */
    if (d->nbd)
        nbd_close(d->nbd);
    d->nbd = NULL;
}

/* UVM_HC_DISK, on the vCPU thread, synchronously (uvm-abi.h). */
static int32_t hc_disk(struct tdm_dom *d, uint64_t req_gpa)
{
    const uint8_t *p;
    uint32_t op, len;
    uint64_t off, buf;
    uint8_t le[8];

    if (!d->nbd)
        return -UVM_ENOSYS;
    if (!range_ok(d, req_gpa, sizeof(struct uvm_disk_req)))
        return -UVM_EFAULT;
    p = d->ram + req_gpa;
    op = tdm_get_le32(p + offsetof(struct uvm_disk_req, op));
    len = tdm_get_le32(p + offsetof(struct uvm_disk_req, len));
    off = tdm_get_le64(p + offsetof(struct uvm_disk_req, offset));
    buf = tdm_get_le64(p + offsetof(struct uvm_disk_req, buf));

    switch (op) {
    case UVM_DISK_INFO:
        if (len != 8 || off)
            return -UVM_EINVAL;
        if (!range_ok(d, buf, 8))
            return -UVM_EFAULT;
        tdm_put_le64(le, d->disk_size);
        guest_write(d, buf, le, 8);
        return 0;
    case UVM_DISK_READ:
    case UVM_DISK_WRITE:
        if (!len || len > UVM_DISK_MAX_IO || len % UVM_DISK_SECTOR ||
            off % UVM_DISK_SECTOR || off > d->disk_size ||
            len > d->disk_size - off)
            return -UVM_EINVAL;
        if (!range_ok(d, buf, len))
            return -UVM_EFAULT;
        if (op == UVM_DISK_READ) {
            if (nbd_pread(d->nbd, d->disk_bounce, len, off, 0) < 0)
                goto eio;
            guest_write(d, buf, d->disk_bounce, len);
        } else {
            if (nbd_pwrite(d->nbd, d->ram + buf, len, off, 0) < 0)
                goto eio;
        }
        return 0;
    case UVM_DISK_FLUSH:
        if (len || off)
            return -UVM_EINVAL;
        /* An export that cannot flush has nothing to flush. */
        if (nbd_can_flush(d->nbd) == 1 && nbd_flush(d->nbd, 0) < 0)
            goto eio;
        return 0;
    default:
        return -UVM_EINVAL;
    }
eio:
    log_warnx("%s: disk %s: %s of %u bytes at %llu failed: %s", d->name,
              d->disk_nbd, op == UVM_DISK_READ ? "read" :
              op == UVM_DISK_WRITE ? "write" : "flush", len,
              (unsigned long long)off, nbd_get_error());
    return -UVM_EIO;
}

/* ---- hypercalls (vCPU thread) ---- */

static void guest_stop(struct tdm_dom *d, bool crashed, const char *why)
{
    pthread_mutex_lock(&d->lock);
    if (!d->stopped) {
        d->stopped = true;
        d->crashed = crashed;
        tdm_strlcpy(d->why, why, sizeof(d->why));
    }
    pthread_mutex_unlock(&d->lock);
    uc_emu_stop(d->uc);
    if (d->stop_ev)
        event_active(d->stop_ev, EV_TIMEOUT, 0);
}

static void console_put(struct tdm_dom *d, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = (char)p[i];
        if (c == '\n' || d->conlen == sizeof(d->con) - 1) {
            d->con[d->conlen] = '\0';
            log_info("%s: guest: %s", d->name, d->con);
            d->conlen = 0;
            if (c == '\n')
                continue;
        }
        d->con[d->conlen++] = (c >= 0x20 && c < 0x7f) ? c : '?';
    }
}

static int32_t hc_wait(struct tdm_dom *d, uint64_t timeout_us)
{
    struct pollfd pfd[2];
    int n = 0, r, ms;

    if (__atomic_load_n(&d->want_pause, __ATOMIC_ACQUIRE))
        return 0;
    pfd[n++] = (struct pollfd){.fd = d->wake_fd, .events = POLLIN};
    if (d->nic.fd >= 0)
        pfd[n++] = (struct pollfd){.fd = d->nic.fd, .events = POLLIN};
    ms = (int)TDM_MIN(timeout_us / 1000, (uint64_t)1000);
    r = poll(pfd, (nfds_t)n, ms);
    if (r > 0 && (pfd[0].revents & POLLIN)) {
        uint64_t v;
        if (read(d->wake_fd, &v, sizeof(v)) < 0)
            return 0;
    }
    return (r > 0 && n > 1 && (pfd[1].revents & POLLIN)) ? 1 : 0;
}

static uint32_t hypercall(uc_engine *uc, uint32_t port, int size,
                          struct tdm_dom *d)
{
    uint64_t a0 = 0, a1 = 0, a2 = 0;
    int32_t rc = -UVM_ENOSYS;

    uc_reg_read(uc, UC_X86_REG_RDI, &a0);
    uc_reg_read(uc, UC_X86_REG_RSI, &a1);
    uc_reg_read(uc, UC_X86_REG_RDX, &a2);

    switch (port) {
    case UVM_HC_CONSOLE:
        if (!range_ok(d, a0, a1) || a1 > 4096)
            return (uint32_t)-UVM_EFAULT;
        console_put(d, d->ram + a0, a1);
        return (uint32_t)a1;
    case UVM_HC_TIME:
        if (!range_ok(d, a0, 8))
            return (uint32_t)-UVM_EFAULT;
        return (uint32_t)uvm_input(d, UVM_INPUT_TIME, a0, 8);
    case UVM_HC_RANDOM:
        if (a1 > 256)
            return (uint32_t)-UVM_EINVAL;
        if (!range_ok(d, a0, a1))
            return (uint32_t)-UVM_EFAULT;
        if (!a1)
            return 0;
        return (uint32_t)uvm_input(d, UVM_INPUT_RANDOM, a0, a1);
    case UVM_HC_NET_INFO: {
        struct uvm_net_info ni;
        if (!range_ok(d, a0, sizeof(ni)))
            return (uint32_t)-UVM_EFAULT;
        memset(&ni, 0, sizeof(ni));
        if (d->nic.present) {
            memcpy(ni.mac, d->nic.mac, 6);
            ni.prefix_len = d->nic.prefix;
            ni.flags = UVM_NET_PRESENT;
            ni.ip = d->nic.ip;
            ni.mtu = 1500;
        }
        guest_write(d, a0, &ni, sizeof(ni)); /* config, not an input */
        return 0;
    }
    case UVM_HC_NET_TX:
        if (a1 < UVM_FRAME_MIN || a1 > UVM_FRAME_MAX)
            return (uint32_t)-UVM_EINVAL;
        if (!range_ok(d, a0, a1))
            return (uint32_t)-UVM_EFAULT;
        return (uint32_t)uvm_input(d, UVM_INPUT_TX_STATUS, a0, a1);
    case UVM_HC_NET_RX:
        if (a1 < UVM_FRAME_MAX)
            return (uint32_t)-UVM_EINVAL;
        if (!range_ok(d, a0, UVM_FRAME_MAX))
            return (uint32_t)-UVM_EFAULT;
        return (uint32_t)uvm_input(d, UVM_INPUT_FRAME, a0, 0);
    case UVM_HC_WAIT:
        return (uint32_t)uvm_input(d, UVM_INPUT_WAIT, 0, a0);
    case UVM_HC_CONFIG: {
        size_t n = strlen(d->extra);
        if (a1 > n) {
            if (!range_ok(d, a0, n + 1))
                return (uint32_t)-UVM_EFAULT;
            guest_write(d, a0, d->extra, n + 1);
        }
        return (uint32_t)n;
    }
    case UVM_HC_DISK:
        return (uint32_t)hc_disk(d, a0);
    case UVM_HC_EXIT: {
        char why[64];
        snprintf(why, sizeof(why), "exit code %llu", (unsigned long long)a0);
        guest_stop(d, a0 != 0, why);
        return 0;
    }
    case UVM_HC_PANIC: {
        char why[160] = "panic";
        if (range_ok(d, a0, a1)) {
            size_t n = TDM_MIN((size_t)a1, sizeof(why) - 8);
            snprintf(why, sizeof(why), "panic: %.*s", (int)n,
                     (const char *)d->ram + a0);
        }
        guest_stop(d, true, why);
        return 0;
    }
    default:
        (void)size;
        (void)a2;
        return (uint32_t)rc;
    }
}

/* A suspend parks the vCPU inside its next hypercall, as a hypervisor
 * holds a vCPU on an I/O exit: nothing is stopped halfway through an
 * instruction, and Unicorn is not touched from another thread. The state
 * captured there is the state after the IN completes (see cpu_read): RIP
 * past the instruction, EAX holding the result. */
static uint32_t hook_in(uc_engine *uc, uint32_t port, int size, void *arg)
{
    struct tdm_dom *d = arg;
    uint32_t r;
    uint64_t resume;

    /* While in here, no stop may come from outside: Unicorn would resume
     * from a stale RIP. */
    pthread_mutex_lock(&d->lock);
    d->in_hook = true;
    pthread_mutex_unlock(&d->lock);
    r = hypercall(uc, port, size, d);

    /* Unicorn does not bring RIP up to date for an IN hook: the guest's
     * RCX names the resume point; park only where it is checkably one. */
    if (__atomic_load_n(&d->want_pause, __ATOMIC_ACQUIRE) &&
        uc_reg_read(uc, UC_X86_REG_RCX, &resume) == UC_ERR_OK &&
        resume >= 2 && resume <= d->ram_size &&
        d->ram[resume - 2] == 0xe5 && d->ram[resume - 1] == port) {
        pthread_mutex_lock(&d->lock);
        d->hc_parked = true;
        d->hc_result = r;
        d->hc_resume = resume;
        while (d->want_pause && !d->quit) {
            d->parked = true;
            pthread_cond_broadcast(&d->cond);
            pthread_cond_wait(&d->cond, &d->lock);
        }
        d->parked = false;
        d->hc_parked = false;
        pthread_mutex_unlock(&d->lock);
    }
    pthread_mutex_lock(&d->lock);
    d->in_hook = false;
    pthread_mutex_unlock(&d->lock);
    return r;
}

/* ---- vCPU thread ---- */

static void *vcpu_main(void *arg)
{
    struct tdm_dom *d = arg;

    pthread_mutex_lock(&d->lock);
    for (;;) {
        uint64_t rip;
        uc_err err;

        while ((d->want_pause || d->stopped) && !d->quit) {
            d->parked = true;
            pthread_cond_broadcast(&d->cond);
            pthread_cond_wait(&d->cond, &d->lock);
        }
        d->parked = false;
        if (d->quit)
            break;
        d->in_emu = true;
        pthread_mutex_unlock(&d->lock);

        uc_reg_read(d->uc, UC_X86_REG_RIP, &rip);
        err = uc_emu_start(d->uc, rip, UINT64_MAX, 0, 0);

        pthread_mutex_lock(&d->lock);
        d->in_emu = false;
        if (err != UC_ERR_OK && !d->stopped) {
            char why[160];
            uc_reg_read(d->uc, UC_X86_REG_RIP, &rip);
            snprintf(why, sizeof(why), "emulation fault at rip 0x%llx: %s",
                     (unsigned long long)rip, uc_strerror(err));
            d->stopped = true;
            d->crashed = true;
            tdm_strlcpy(d->why, why, sizeof(d->why));
            if (d->stop_ev)
                event_active(d->stop_ev, EV_TIMEOUT, 0);
        }
    }
    d->parked = true;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

static void kick(struct tdm_dom *d)
{
    uint64_t one = 1;

    if (write(d->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_warn("%s: wake", d->name);
}

/* Long enough that a guest which is merely not scheduled (a busy host)
 * reaches its next hypercall first; stopping from outside is the risky
 * path (see hook_in). */
#define SELF_STOP_GRACE_NS 20000000

static int uvm_suspend(struct tdm_dom *d)
{
    uint64_t t0 = tdm_now_ns(), dt;

    /* A replica that was never activated runs nothing: it is suspended. */
    if (!d->thread_started)
        return 0;
    pthread_mutex_lock(&d->lock);
    __atomic_store_n(&d->want_pause, true, __ATOMIC_RELEASE);
    kick(d);
    while (!d->parked) {
        struct timespec ts;
        /* Past the grace period, stop it from here; uc_emu_stop is lost if
         * it lands before uc_emu_start has begun: repeat until parked. */
        if (d->in_emu && !d->in_hook &&
            tdm_now_ns() - t0 > SELF_STOP_GRACE_NS) {
            uc_emu_stop(d->uc);
            if (d->forced_stops++ % 1000 == 0)
                log_notice("%s: the guest made no hypercall within %d ms: "
                           "stopping it from outside (%llu times so far)",
                           d->name, SELF_STOP_GRACE_NS / 1000000,
                           (unsigned long long)d->forced_stops);
        }
        kick(d);
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&d->cond, &d->lock, &ts);
    }
    pthread_mutex_unlock(&d->lock);
    dt = tdm_now_ns() - t0;
    d->suspend_last_ns = dt;
    d->suspend_max_ns = TDM_MAX(d->suspend_max_ns, dt);
    return 0;
}

static int uvm_resume(struct tdm_dom *d)
{
    pthread_mutex_lock(&d->lock);
    d->want_pause = false;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    return 0;
}

/* ---- CPU state ---- */

static const int seg_ids[UVM_NSEG] = {
    UC_X86_REG_CS, UC_X86_REG_SS, UC_X86_REG_DS,
    UC_X86_REG_ES, UC_X86_REG_FS, UC_X86_REG_GS,
};

#define MSR_EFER 0xc0000080u

static int efer_read(uc_engine *uc, uint64_t *v)
{
    uc_x86_msr m = {.rid = MSR_EFER};

    if (uc_reg_read(uc, UC_X86_REG_MSR, &m) != UC_ERR_OK)
        return -1;
    *v = m.value;
    return 0;
}

static int cpu_read(struct tdm_dom *d, struct uvm_cpu *c)
{
    int rc = 0;

    memset(c, 0, sizeof(*c));
    for (int i = 0; i < UVM_NGPR; i++)
        rc |= uc_reg_read(d->uc, gpr_ids[i], &c->gpr[i]);
    rc |= uc_reg_read(d->uc, UC_X86_REG_RIP, &c->rip);
    rc |= uc_reg_read(d->uc, UC_X86_REG_RFLAGS, &c->rflags);
    for (int i = 0; i < UVM_NSEG; i++) {
        uint64_t v = 0;
        rc |= uc_reg_read(d->uc, seg_ids[i], &v);
        c->seg[i] = (uint16_t)v;
    }
    rc |= uc_reg_read(d->uc, UC_X86_REG_FS_BASE, &c->fs_base);
    rc |= uc_reg_read(d->uc, UC_X86_REG_GS_BASE, &c->gs_base);
    rc |= uc_reg_read(d->uc, UC_X86_REG_CR0, &c->cr0);
    rc |= uc_reg_read(d->uc, UC_X86_REG_CR3, &c->cr3);
    rc |= uc_reg_read(d->uc, UC_X86_REG_CR4, &c->cr4);
    rc |= efer_read(d->uc, &c->efer) ? 1 : 0;
    for (int i = 0; i < 16; i++)
        rc |= uc_reg_read(d->uc, UC_X86_REG_XMM0 + i, c->xmm[i]);
    rc |= uc_reg_read(d->uc, UC_X86_REG_MXCSR, &c->mxcsr);
    if (rc) {
        log_warnx("%s: cannot read the registers", d->name);
        return -1;
    }
    if (d->hc_parked) {
        /* Parked inside a hypercall: carry the state after the IN. */
        c->rip = d->hc_resume;
        c->gpr[0] = (uint64_t)d->hc_result; /* a 32-bit write zero-extends */
    }
    return 0;
}

/* Onto a fresh machine (activate). Control registers, EFER and selectors
 * are written only where the guest changed them from the reset values:
 * rewriting the mode-defining ones for nothing is not free of side effects
 * in the emulator, and a normal flat guest never changes them. */
static int cpu_write(struct tdm_dom *d, const struct uvm_cpu *c)
{
    uint64_t cur;
    int rc = 0;

    if (efer_read(d->uc, &cur) == 0 && cur != c->efer) {
        uc_x86_msr m = {.rid = MSR_EFER, .value = c->efer};
        rc |= uc_reg_write(d->uc, UC_X86_REG_MSR, &m);
    }
    if (uc_reg_read(d->uc, UC_X86_REG_CR4, &cur) == UC_ERR_OK && cur != c->cr4)
        rc |= uc_reg_write(d->uc, UC_X86_REG_CR4, &c->cr4);
    if (uc_reg_read(d->uc, UC_X86_REG_CR3, &cur) == UC_ERR_OK && cur != c->cr3)
        rc |= uc_reg_write(d->uc, UC_X86_REG_CR3, &c->cr3);
    if (uc_reg_read(d->uc, UC_X86_REG_CR0, &cur) == UC_ERR_OK && cur != c->cr0)
        rc |= uc_reg_write(d->uc, UC_X86_REG_CR0, &c->cr0);
    for (int i = 0; i < UVM_NSEG; i++) {
        uint64_t v = c->seg[i];
        if (uc_reg_read(d->uc, seg_ids[i], &cur) == UC_ERR_OK &&
            (uint16_t)cur != c->seg[i])
            rc |= uc_reg_write(d->uc, seg_ids[i], &v);
    }
    for (int i = 0; i < UVM_NGPR; i++)
        rc |= uc_reg_write(d->uc, gpr_ids[i], &c->gpr[i]);
    rc |= uc_reg_write(d->uc, UC_X86_REG_RIP, &c->rip);
    rc |= uc_reg_write(d->uc, UC_X86_REG_RFLAGS, &c->rflags);
    rc |= uc_reg_write(d->uc, UC_X86_REG_FS_BASE, &c->fs_base);
    rc |= uc_reg_write(d->uc, UC_X86_REG_GS_BASE, &c->gs_base);
    for (int i = 0; i < 16; i++)
        rc |= uc_reg_write(d->uc, UC_X86_REG_XMM0 + i, c->xmm[i]);
    rc |= uc_reg_write(d->uc, UC_X86_REG_MXCSR, &c->mxcsr);
    if (rc) {
        log_warnx("%s: cannot write the registers", d->name);
        return -1;
    }
    return 0;
}

/*
 * The state blob, version 2. Little-endian, fixed layout, 516 bytes:
 *
 *   0  u32 magic "UVMS"    4 u16 version    6 u16 reserved (0)
 *   8  u32 total length   12 u32 reserved (0)
 *  16  u64 RAX RBX RCX RDX RSI RDI RBP RSP R8..R15       (16 x 8)
 * 144  u64 RIP, RFLAGS
 * 160  u16 CS SS DS ES FS GS, u32 reserved (0)
 * 176  u64 FS_BASE, GS_BASE, CR0, CR3, CR4, EFER
 * 224  XMM0..XMM15 (16 bytes each, as Unicorn stores them)
 * 480  u32 MXCSR, u32 reserved (0)
 * 488  u64 guest time (ns)
 * 496  u8 NIC present, u8 prefix, u8 MAC[6], u32 IPv4 (network order),
 *      u32 reserved (0)
 * 512  u32 CRC32C of bytes 0..511
 *
 * The CRC catches what the transport's own checksums cannot: a blob that
 * was damaged before it was sent, or a bug that writes past a field. Any
 * layout change bumps the version: there is no partial compatibility.
 */
#define STATE_SIZE 516u

size_t uvm_state_size(void)
{
    return STATE_SIZE;
}

struct cursor {
    uint8_t *p;
    const uint8_t *q;
};

static void put16(struct cursor *c, uint16_t v) { tdm_put_le16(c->p, v); c->p += 2; }
static void put32(struct cursor *c, uint32_t v) { tdm_put_le32(c->p, v); c->p += 4; }
static void put64(struct cursor *c, uint64_t v) { tdm_put_le64(c->p, v); c->p += 8; }
static void putb(struct cursor *c, const void *b, size_t n)
{
    memcpy(c->p, b, n);
    c->p += n;
}
static uint16_t get16(struct cursor *c) { uint16_t v = tdm_get_le16(c->q); c->q += 2; return v; }
static uint32_t get32(struct cursor *c) { uint32_t v = tdm_get_le32(c->q); c->q += 4; return v; }
static uint64_t get64(struct cursor *c) { uint64_t v = tdm_get_le64(c->q); c->q += 8; return v; }
static void getb(struct cursor *c, void *b, size_t n)
{
    memcpy(b, c->q, n);
    c->q += n;
}

void uvm_state_encode(const struct uvm_cpu *cpu, const struct uvm_dev *dev,
                      uint8_t *out)
{
    struct cursor c = {.p = out};

    put32(&c, UVM_STATE_MAGIC);
    put16(&c, UVM_STATE_VERSION);
    put16(&c, 0);
    put32(&c, STATE_SIZE);
    put32(&c, 0);
    for (int i = 0; i < UVM_NGPR; i++)
        put64(&c, cpu->gpr[i]);
    put64(&c, cpu->rip);
    put64(&c, cpu->rflags);
    for (int i = 0; i < UVM_NSEG; i++)
        put16(&c, cpu->seg[i]);
    put32(&c, 0);
    put64(&c, cpu->fs_base);
    put64(&c, cpu->gs_base);
    put64(&c, cpu->cr0);
    put64(&c, cpu->cr3);
    put64(&c, cpu->cr4);
    put64(&c, cpu->efer);
    putb(&c, cpu->xmm, sizeof(cpu->xmm));
    put32(&c, cpu->mxcsr);
    put32(&c, 0);
    put64(&c, dev->guest_time_ns);
    *c.p++ = dev->nic_present ? 1 : 0;
    *c.p++ = dev->prefix;
    putb(&c, dev->mac, 6);
    putb(&c, &dev->ip, 4);      /* already in network order */
    put32(&c, 0);
    put32(&c, tdm_crc32c(0, out, (size_t)(c.p - out)));
}

/* RFLAGS bits that are reserved (must be 0) on x86-64; bit 1 must be 1. */
#define RFLAGS_RESERVED (~(uint64_t)0x3f7fd7)

int uvm_state_decode(const uint8_t *p, size_t len, struct uvm_cpu *cpu,
                     struct uvm_dev *dev, char *err, size_t errlen)
{
    struct cursor c = {.q = p};
    struct uvm_cpu cc;
    struct uvm_dev dd;
    uint32_t reserved = 0;

    if (len < 8)
        return tdm_errf(err, errlen, "uvm state of %zu bytes: truncated", len);
    if (tdm_get_le32(p) != UVM_STATE_MAGIC)
        return tdm_errf(err, errlen, "uvm state: bad magic");
    if (tdm_get_le16(p + 4) != UVM_STATE_VERSION)
        return tdm_errf(err, errlen, "uvm state version %u, this side reads "
                        "version %u", tdm_get_le16(p + 4), UVM_STATE_VERSION);
    if (len != STATE_SIZE || tdm_get_le32(p + 8) != STATE_SIZE)
        return tdm_errf(err, errlen, "uvm state of %zu bytes (header says "
                        "%u), %u expected", len,
                        len >= 12 ? tdm_get_le32(p + 8) : 0, STATE_SIZE);
    if (tdm_get_le32(p + STATE_SIZE - 4) != tdm_crc32c(0, p, STATE_SIZE - 4))
        return tdm_errf(err, errlen, "uvm state: bad checksum");

    /* Decode into locals: the caller's structs change only on success. */
    memset(&cc, 0, sizeof(cc));
    memset(&dd, 0, sizeof(dd));
    c.q += 6;
    reserved |= get16(&c);
    (void)get32(&c);
    reserved |= get32(&c);
    for (int i = 0; i < UVM_NGPR; i++)
        cc.gpr[i] = get64(&c);
    cc.rip = get64(&c);
    cc.rflags = get64(&c);
    for (int i = 0; i < UVM_NSEG; i++)
        cc.seg[i] = get16(&c);
    reserved |= get32(&c);
    cc.fs_base = get64(&c);
    cc.gs_base = get64(&c);
    cc.cr0 = get64(&c);
    cc.cr3 = get64(&c);
    cc.cr4 = get64(&c);
    cc.efer = get64(&c);
    getb(&c, cc.xmm, sizeof(cc.xmm));
    cc.mxcsr = get32(&c);
    reserved |= get32(&c);
    dd.guest_time_ns = get64(&c);
    if (*c.q > 1)
        return tdm_errf(err, errlen, "uvm state: bad NIC flag %u", *c.q);
    dd.nic_present = *c.q++ == 1;
    dd.prefix = *c.q++;
    getb(&c, dd.mac, 6);
    getb(&c, &dd.ip, 4);
    reserved |= get32(&c);

    if (reserved)
        return tdm_errf(err, errlen, "uvm state: reserved fields not zero");
    if ((cc.rflags & RFLAGS_RESERVED) || !(cc.rflags & 2))
        return tdm_errf(err, errlen, "uvm state: RFLAGS 0x%llx is not valid",
                        (unsigned long long)cc.rflags);
    if (cc.mxcsr >> 16)
        return tdm_errf(err, errlen, "uvm state: MXCSR 0x%x is not valid",
                        cc.mxcsr);
    if (dd.prefix > 32 || (dd.nic_present && !dd.prefix))
        return tdm_errf(err, errlen, "uvm state: bad NIC prefix %u",
                        dd.prefix);
    *cpu = cc;
    *dev = dd;
    return 0;
}

/* ---- lifecycle ---- */

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tdm_dom *d = arg;
    bool crashed;
    char why[160];

    pthread_mutex_lock(&d->lock);
    crashed = d->crashed;
    tdm_strlcpy(why, d->why, sizeof(why));
    pthread_mutex_unlock(&d->lock);
    if (d->ev.guest_stopped)
        d->ev.guest_stopped(d->ev.arg, crashed, why);
}

static struct tdm_dom *dom_alloc(const struct uvm_conf *c,
                                 struct event_base *base,
                                 const struct tdm_dom_events *ev)
{
    struct tdm_dom *d = tdm_calloc(1, sizeof(*d));

    tdm_strlcpy(d->name, c->name, sizeof(d->name));
    d->base = base;
    if (ev)
        d->ev = *ev;
    d->ram_size = (size_t)c->memory_mib << 20;
    d->npages = d->ram_size / TDM_PAGE_SIZE;
    d->ram = tdm_alloc_pages(d->ram_size);
    d->dirty = tdm_calloc(tdm_bitmap_words(d->npages), sizeof(uint64_t));
    tdm_strlcpy(d->kernel, c->kernel, sizeof(d->kernel));
    tdm_strlcpy(d->extra, c->extra, sizeof(d->extra));
    d->nic = c->nic;
    d->nic.fd = -1;
    tdm_strlcpy(d->disk_nbd, c->disk_nbd, sizeof(d->disk_nbd));
    d->wake_fd = -1;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    pthread_mutex_init(&d->qlock, NULL);
    /* Hops a guest stop from the vCPU thread to the engine's loop (the
     * owner called evthread_use_pthreads()). No base: nobody to tell. */
    if (base)
        d->stop_ev = event_new(base, -1, 0, stop_cb, d);
    return d;
}

static void uvm_destroy(struct tdm_dom *d)
{
    struct uvm_frame *f;

    if (!d)
        return;
    if (d->thread_started) {
        pthread_mutex_lock(&d->lock);
        d->quit = true;
        d->want_pause = true;
        pthread_cond_broadcast(&d->cond);
        while (d->in_emu) {
            struct timespec ts;
            uc_emu_stop(d->uc);
            kick(d);
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&d->cond, &d->lock, &ts);
        }
        pthread_mutex_unlock(&d->lock);
        pthread_join(d->thread, NULL);
    }
    if (d->uc)
        uc_close(d->uc);
    if (d->nic.fd >= 0)
        close(d->nic.fd);
    if (d->wake_fd >= 0)
        close(d->wake_fd);
    disk_close(d);
    free(d->disk_bounce);
    while ((f = d->qhead)) {
        d->qhead = f->next;
        free(f);
    }
    if (d->stop_ev)
        event_free(d->stop_ev);
    tdm_free_pages(d->ram, d->ram_size);
    free(d->dirty);
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->qlock);
    free(d);
}

/* Unicorn over our RAM, with the hooks; registers at their reset values. */
static int machine_setup(struct tdm_dom *d)
{
    uc_err err;

    err = uc_open(UC_ARCH_X86, UC_MODE_64, &d->uc);
    if (err) {
        log_warnx("%s: uc_open: %s", d->name, uc_strerror(err));
        return -1;
    }
    err = uc_mem_map_ptr(d->uc, 0, d->ram_size, UC_PROT_ALL, d->ram);
    if (err) {
        log_warnx("%s: uc_mem_map_ptr: %s", d->name, uc_strerror(err));
        return -1;
    }
    err = uc_hook_add(d->uc, &d->hk_write, UC_HOOK_MEM_WRITE, hook_write, d,
                      0, d->ram_size - 1);
    if (!err)
        err = uc_hook_add(d->uc, &d->hk_in, UC_HOOK_INSN, hook_in, d, 1, 0,
                          UC_X86_INS_IN);
    if (err) {
        log_warnx("%s: uc_hook_add: %s", d->name, uc_strerror(err));
        return -1;
    }
    d->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (d->wake_fd < 0) {
        log_warn("%s: eventfd", d->name);
        return -1;
    }
    return 0;
}

static int start_vcpu(struct tdm_dom *d)
{
    int r = pthread_create(&d->thread, NULL, vcpu_main, d);

    if (r) {
        errno = r;
        log_warn("%s: cannot start the vCPU thread", d->name);
        return -1;
    }
    d->thread_started = true;
    return 0;
}

static int load_kernel(struct tdm_dom *d)
{
    struct stat sb;
    size_t got = 0;
    int fd, rc = -1;

    fd = open(d->kernel, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        log_warn("%s: kernel %s", d->name, d->kernel);
        return -1;
    }
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size == 0 ||
        (uint64_t)sb.st_size > d->ram_size - UVM_LOAD_ADDR - (64u << 10)) {
        log_warnx("%s: kernel %s is not a regular file that fits in RAM",
                  d->name, d->kernel);
        goto out;
    }
    while (got < (size_t)sb.st_size) {
        ssize_t r = read(fd, d->ram + UVM_LOAD_ADDR + got,
                         (size_t)sb.st_size - got);
        if (r <= 0) {
            log_warn("%s: reading %s", d->name, d->kernel);
            goto out;
        }
        got += (size_t)r;
    }
    rc = 0;
out:
    close(fd);
    return rc;
}

static int uvm_create(struct tdm_cfg *cfg, struct event_base *base,
                      const struct tdm_dom_events *ev, struct tdm_dom **dom_r)
{
    struct uvm_conf c;
    struct tdm_dom *d = NULL;
    char err[256];
    uint64_t rsp, rip = UVM_LOAD_ADDR, rdi;
    int rc = -1;

    if (conf_parse(cfg, &c, err, sizeof(err)) < 0) {
        log_warnx("%s", err);
        return -1;
    }
    if (((uint64_t)c.memory_mib << 20) < UVM_MIN_RAM) {
        log_warnx("%s: memory below %u MiB", c.name, UVM_MIN_RAM >> 20);
        return -1;
    }
    d = dom_alloc(&c, base, ev);
    if (load_kernel(d) < 0 || machine_setup(d) < 0)
        goto out;
    rsp = d->ram_size - 16;
    rdi = d->ram_size;
    uc_reg_write(d->uc, UC_X86_REG_RIP, &rip);
    uc_reg_write(d->uc, UC_X86_REG_RSP, &rsp);
    uc_reg_write(d->uc, UC_X86_REG_RDI, &rdi);
    if (d->nic.present && nic_open(d) < 0)
        goto out;
    /* The disk is there before the first instruction. */
    if (disk_connect(d) < 0)
        goto out;
    d->time_base_ns = tdm_now_ns();
    if (start_vcpu(d) < 0)
        goto out;
    /* Like a NIC coming up: tell the switches where this MAC now lives. */
    if (d->nic.present)
        send_garp(d);
    *dom_r = d;
    d = NULL;
    rc = 0;
out:
    uvm_destroy(d);
    return rc;
}

static int uvm_create_replica(struct tdm_cfg *cfg, struct event_base *base,
                              const struct tdm_dom_events *ev,
                              struct tdm_dom **dom_r)
{
    struct uvm_conf c;
    char err[256];

    if (conf_parse(cfg, &c, err, sizeof(err)) < 0) {
        log_warnx("%s", err);
        return -1;
    }
    *dom_r = dom_alloc(&c, base, ev);
    (*dom_r)->replica = true;
    return 0;
}

static uint64_t uvm_npages(struct tdm_dom *d)
{
    return d->npages;
}

static int uvm_log_dirty(struct tdm_dom *d, bool enable)
{
    /* The write hook stays installed: removing it while the vCPU runs is
     * not safe in Unicorn, and the bitmap is only read in capture. */
    d->log_all = enable;
    return 0;
}

/* The device identity of this side's configuration, as an epoch carries it. */
static void dev_identity(const struct tdm_dom *d, struct uvm_dev *dev)
{
    dev->nic_present = d->nic.present;
    memcpy(dev->mac, d->nic.mac, 6);
    dev->prefix = d->nic.prefix;
    dev->ip = d->nic.ip;
}

/* The pause's floor: one memcpy per dirty page, found a 64-bit word of
 * the bitmap at a time. No syscalls, no allocation. */
static int uvm_capture(struct tdm_dom *d, struct tdm_staging *st)
{
    struct uvm_cpu cpu;
    struct uvm_dev dev;
    uint8_t state[STATE_SIZE];
    size_t words = tdm_bitmap_words(d->npages);
    bool parked;

    pthread_mutex_lock(&d->lock);
    parked = d->parked && d->want_pause;
    pthread_mutex_unlock(&d->lock);
    if (!d->uc || !d->thread_started || !parked) {
        log_warnx("%s: capture of a domain that is not running and "
                  "suspended", d->name);
        return -1;
    }
    if (d->log_all) {
        for (size_t p = 0; p < d->npages; p++) {
            uint8_t *slot = tdm_staging_add_page(st, p);
            if (!slot)
                return -1;
            memcpy(slot, d->ram + p * TDM_PAGE_SIZE, TDM_PAGE_SIZE);
        }
        d->log_all = false;
    } else {
        for (size_t w = 0; w < words; w++) {
            uint64_t bits = d->dirty[w];
            while (bits) {
                size_t p = w * 64 + (size_t)__builtin_ctzll(bits);
                uint8_t *slot;
                bits &= bits - 1;
                slot = tdm_staging_add_page(st, p);
                if (!slot)
                    return -1;
                memcpy(slot, d->ram + p * TDM_PAGE_SIZE, TDM_PAGE_SIZE);
            }
        }
    }
    memset(d->dirty, 0, words * sizeof(uint64_t));
    if (cpu_read(d, &cpu) < 0)
        return -1;
    memset(&dev, 0, sizeof(dev));
    dev.guest_time_ns = guest_now(d);
    dev_identity(d, &dev);
    uvm_state_encode(&cpu, &dev, state);
    return tdm_staging_set_state(st, state, sizeof(state));
}

static int uvm_apply(struct tdm_dom *d, const struct tdm_staging *st)
{
    struct uvm_cpu cpu;
    struct uvm_dev dev, mine;
    char err[256];

    if (!d->replica) {
        log_warnx("%s: epoch %llu: not a stopped replica", d->name,
                  (unsigned long long)st->epoch);
        return -1;
    }
    /* Check everything before touching the replica: a torn or foreign
     * epoch must leave the last good one whole. */
    if (uvm_state_decode(st->state, st->state_len, &cpu, &dev, err,
                         sizeof(err)) < 0) {
        log_warnx("%s: epoch %llu: %s", d->name,
                  (unsigned long long)st->epoch, err);
        return -1;
    }
    if (cpu.rip >= d->ram_size) {
        log_warnx("%s: epoch %llu: rip 0x%llx is outside RAM", d->name,
                  (unsigned long long)st->epoch, (unsigned long long)cpu.rip);
        return -1;
    }
    dev_identity(d, &mine);
    if (dev.nic_present != mine.nic_present || dev.prefix != mine.prefix ||
        dev.ip != mine.ip || memcmp(dev.mac, mine.mac, 6)) {
        log_warnx("%s: epoch %llu: the primary's vif differs from this "
                  "side's configuration", d->name,
                  (unsigned long long)st->epoch);
        return -1;
    }
    if (st->npages > d->npages) {
        log_warnx("%s: epoch %llu: %zu pages, the domain has %zu", d->name,
                  (unsigned long long)st->epoch, st->npages, d->npages);
        return -1;
    }
    for (size_t i = 0; i < st->npages; i++) {
        if (st->pfns[i] >= d->npages) {
            log_warnx("%s: epoch %llu: page %llu out of range", d->name,
                      (unsigned long long)st->epoch,
                      (unsigned long long)st->pfns[i]);
            return -1;
        }
    }
    for (size_t i = 0; i < st->npages; i++)
        memcpy(d->ram + st->pfns[i] * TDM_PAGE_SIZE, tdm_staging_page(st, i),
               TDM_PAGE_SIZE);
    d->cpu = cpu;
    d->dev = dev;
    d->have_state = true;
    return 0;
}

/* Undo machine_setup, nic_open and disk_connect: a failed activation leaves the replica
 * as it was, with its last applied epoch, so that it can be retried. */
static void machine_teardown(struct tdm_dom *d)
{
    if (d->uc)
        uc_close(d->uc);
    d->uc = NULL;
    if (d->wake_fd >= 0)
        close(d->wake_fd);
    d->wake_fd = -1;
    if (d->nic.fd >= 0)
        close(d->nic.fd);
    d->nic.fd = -1;
    disk_close(d);
}

static int uvm_activate(struct tdm_dom *d)
{
    int rc = -1;

    if (!d->replica) {
        log_warnx("%s: already active", d->name);
        return -1;
    }
    if (!d->have_state) {
        log_warnx("%s: no epoch applied: nothing to activate", d->name);
        return -1;
    }
    if (machine_setup(d) < 0 || cpu_write(d, &d->cpu) < 0)
        goto out;
    if (d->nic.present && nic_open(d) < 0)
        goto out;
    /* The export exists only now, on this side: connect before the vCPU
     * runs, and fail the activation if it cannot be reached. */
    if (disk_connect(d) < 0)
        goto out;
    /* The guest clock continues from the checkpoint: it never goes back. */
    d->time_base_ns = tdm_now_ns() - d->dev.guest_time_ns;
    if (start_vcpu(d) < 0)
        goto out;
    d->replica = false;
    /* Tell the bridge and the clients where the guest's MAC lives now. */
    if (d->nic.present)
        send_garp(d);
    log_info("%s: activated at rip 0x%llx", d->name,
             (unsigned long long)d->cpu.rip);
    rc = 0;
out:
    if (rc < 0)
        machine_teardown(d);
    return rc;
}

static void uvm_output_buffer(struct tdm_dom *d, bool on, uint64_t epoch)
{
    pthread_mutex_lock(&d->qlock);
    if (!on)
        queue_release_locked(d, UINT64_MAX);
    d->buffering = on;
    d->cur_epoch = epoch;
    pthread_mutex_unlock(&d->qlock);
}

static void uvm_output_cut(struct tdm_dom *d, uint64_t epoch)
{
    pthread_mutex_lock(&d->qlock);
    d->cur_epoch = epoch;
    pthread_mutex_unlock(&d->qlock);
}

static void uvm_output_release(struct tdm_dom *d, uint64_t epoch)
{
    pthread_mutex_lock(&d->qlock);
    queue_release_locked(d, epoch);
    pthread_mutex_unlock(&d->qlock);
}

/* The TAP carries the guest's frames into the host: kernel output buffers
 * (netbuf = nfqueue/plug) hold what arrives on it. */
static int uvm_net_ifaces(struct tdm_dom *d, char (*names)[16], int max)
{
    if (!d->nic.present || max < 1)
        return 0;
    tdm_strlcpy(names[0], d->nic.tap, 16);
    return 1;
}

static void uvm_output_stats(struct tdm_dom *d, struct tdm_output_stats *s)
{
    pthread_mutex_lock(&d->qlock);
    *s = d->stats;
    s->held_frames = d->qframes;
    s->held_bytes = d->qbytes;
    pthread_mutex_unlock(&d->qlock);
}

static bool uvm_running(struct tdm_dom *d)
{
    bool r;

    pthread_mutex_lock(&d->lock);
    r = d->thread_started && !d->stopped;
    pthread_mutex_unlock(&d->lock);
    return r;
}

const struct tdm_driver_ops tdm_driver_uvm = {
    .name = "uvm",
    .validate = uvm_validate,
    .create = uvm_create,
    .create_replica = uvm_create_replica,
    .npages = uvm_npages,
    .log_dirty = uvm_log_dirty,
    .suspend = uvm_suspend,
    .capture = uvm_capture,
    .resume = uvm_resume,
    .apply = uvm_apply,
    .activate = uvm_activate,
    .output_buffer = uvm_output_buffer,
    .output_cut = uvm_output_cut,
    .output_release = uvm_output_release,
    .output_stats = uvm_output_stats,
    .net_ifaces = uvm_net_ifaces,
    .running = uvm_running,
    .destroy = uvm_destroy,
};
