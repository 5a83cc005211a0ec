/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The xen driver: real Xen domains, from dom0.
 *
 * Primary: attaches to a running PVH or HVM domain (domain = name or
 * domid), HAP log-dirty on while protected. An epoch stops the guest
 * (cooperative suspend through xenstore's control/shutdown, as xl save
 * and stock Remus do, or a hypervisor pause), takes and clears the dirty
 * bitmap (CLEAN with the FINAL flag, as libxc's save does), copies each
 * dirty frame through foreign mappings into staging, and writes Xen's own
 * records into the state blob (xen-stream.h): TSC info, HVM parameters,
 * HVM context, and on a full epoch the CPU policy and the guest's libxl
 * configuration. The first epoch after log-dirty is enabled copies every
 * frame while the guest runs, then stops it only for what was written
 * meanwhile. No byte leaves the host inside the pause.
 *
 * Backup (xen-restore.c): Xen's stock restore (libxl, libxc) of a Remus
 * checkpointed stream, fed one whole epoch at a time.
 *
 * Output commit: the guest's packets leave through its vifs in dom0, where
 * libs/netbuf holds them (net_ifaces names them). The driver has no
 * device-model queue of its own, so its output_* ops are NULL and the
 * engine defaults this driver to netbuf = auto.
 *
 * Why cooperative suspend is the default: a checkpoint taken by a pause
 * is consistent, but a PV-aware guest restored from it in a new domain
 * never learns that its event channels, vcpu_info, shared_info, xenstore
 * watches and PV devices are gone (it did not pass through its suspend
 * path), so the replica stops getting interrupts. suspend = "pause" is
 * for guests with no PV drivers, and for measuring.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <xenctrl.h>
#include <libxl.h>
#include <libxl_utils.h>
#include <xenguest.h>
#include <xen/hvm/params.h>

#include "tdm-util.h"
#include "tdm-xenvif.h"
#include "xen-private.h"

#define WATCH_MS 500

/* ---- logging: Xen's libraries log through tandem's log ---- */

static void lg_vmessage(struct xentoollog_logger *lg, xentoollog_level level,
                        int errnoval, const char *context, const char *fmt,
                        va_list al)
{
    char msg[1024];
    /* libxc says "All records buffered" at INFO for every checkpoint */
    int tl = level >= XTL_ERROR ? TDM_LOG_ERR :
             level >= XTL_WARN ? TDM_LOG_WARNING :
             level >= XTL_NOTICE ? TDM_LOG_INFO : TDM_LOG_DEBUG;

    if (tl > tdm_log_get_level())
        return;
    vsnprintf(msg, sizeof(msg), fmt, al);
    if (errnoval >= 0)
        tdm_logx(tl, context ? context : "xen", "%s: %s", msg,
                 strerror(errnoval));
    else
        tdm_logx(tl, context ? context : "xen", "%s", msg);
}

static void lg_destroy(struct xentoollog_logger *lg)
{
}

void xen_logger_init(xentoollog_logger *lg)
{
    memset(lg, 0, sizeof(*lg));
    lg->vmessage = lg_vmessage;
    lg->destroy = lg_destroy;
}

/* ---- configuration ---- */

static int conf_parse(struct tdm_cfg *cfg, struct xen_conf *c, char *err,
                      size_t errlen)
{
    const char *s;
    uint64_t v;

    memset(c, 0, sizeof(*c));
    s = tdm_cfg_get(cfg, "name");
    if (!s || !tdm_valid_name(s))
        return tdm_errf(err, errlen, "name: required, 1-63 of [A-Za-z0-9_.-]");
    tdm_strlcpy(c->name, s, sizeof(c->name));
    s = tdm_cfg_get(cfg, "driver");
    if (s && strcmp(s, "xen"))
        return tdm_errf(err, errlen, "driver = '%s': this is the xen driver",
                        s);
    s = tdm_cfg_get(cfg, "domain");
    if (!s)
        s = c->name;
    if (!tdm_valid_name(s) && tdm_parse_u64(s, 0, 0x7fef, &v) < 0)
        return tdm_errf(err, errlen, "domain = '%s': expected a domain name "
                        "or domid, as xl takes them", s);
    tdm_strlcpy(c->domain, s, sizeof(c->domain));
    if (!tdm_cfg_get(cfg, "memory"))
        return tdm_errf(err, errlen, "memory: required (MiB, the domain's "
                        "maximum memory): both hosts size the replica's "
                        "staging from it");
    if (tdm_cfg_get_u64(cfg, "memory", 0, 16, 1u << 20, &c->memory_mib, err,
                        errlen) < 0)
        return -1;
    s = tdm_cfg_get(cfg, "suspend");
    if (!s || !strcmp(s, "cooperative"))
        c->suspend = XEN_SUSPEND_COOP;
    else if (!strcmp(s, "pause"))
        c->suspend = XEN_SUSPEND_PAUSE;
    else
        return tdm_errf(err, errlen, "suspend = '%s': expected cooperative "
                        "or pause", s);
    if (tdm_cfg_get_u64(cfg, "suspend_timeout", 2000, 10, 60000,
                        &c->suspend_timeout_ms, err, errlen) < 0)
        return -1;
    if (xen_disk_conf(cfg, c, err, errlen) < 0)
        return -1;
    return tdm_cfg_check_unused(cfg, err, errlen);
}

static int xen_validate(struct tdm_cfg *cfg, char *err, size_t errlen)
{
    struct xen_conf c;

    return conf_parse(cfg, &c, err, errlen);
}

/* ---- handles ---- */

int xen_open_handles(struct tdm_dom *d, bool fmem, char *err, size_t errlen)
{
    if (!d->xch && !(d->xch = xc_interface_open(&d->logger, &d->logger, 0)))
        return tdm_errf(err, errlen, "cannot open the hypervisor interface: "
                        "%s (dom0, root, xen-privcmd loaded?)",
                        strerror(errno));
    if (fmem && !d->fmem && !(d->fmem = xenforeignmemory_open(&d->logger, 0)))
        return tdm_errf(err, errlen, "cannot open foreign memory: %s",
                        strerror(errno));
    if (fmem && !d->xs && !(d->xs = xs_open(0)))
        return tdm_errf(err, errlen, "cannot connect to xenstore: %s",
                        strerror(errno));
    return 0;
}

static void close_handles(struct tdm_dom *d)
{
    if (d->bm)
        xc__hypercall_buffer_free_pages(d->xch, &d->bm_hbuf, d->bm_pages);
    d->bm = NULL;
    if (d->xs)
        xs_close(d->xs);
    if (d->fmem)
        xenforeignmemory_close(d->fmem);
    if (d->xch)
        xc_interface_close(d->xch);
    d->xs = NULL;
    d->fmem = NULL;
    d->xch = NULL;
}

static int dominfo(struct tdm_dom *d, xc_dominfo_t *info)
{
    if (xc_domain_getinfo(d->xch, d->domid, 1, info) != 1 ||
        info->domid != d->domid)
        return -1;
    return 0;
}

/* ---- guest state watch (guest_stopped) ---- */

static void watch_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tdm_dom *d = arg;
    xc_dominfo_t info;
    char why[128];
    bool crashed;

    if (d->replica || !d->have_domid || d->stop_reported || d->suspended)
        return;
    if (dominfo(d, &info) < 0) {
        snprintf(why, sizeof(why), "domain %u is gone", d->domid);
        crashed = true;
    } else if (info.dying || (info.shutdown &&
                              info.shutdown_reason != SHUTDOWN_suspend)) {
        unsigned r = info.shutdown ? info.shutdown_reason : ~0u;
        crashed = info.crashed || r == SHUTDOWN_crash ||
                  r == SHUTDOWN_watchdog || info.dying;
        snprintf(why, sizeof(why), "domain %u %s (shutdown %u, reason %u, "
                 "dying %u)", d->domid,
                 r == SHUTDOWN_poweroff ? "powered off" :
                 r == SHUTDOWN_reboot ? "rebooted" :
                 r == SHUTDOWN_crash ? "crashed" :
                 r == SHUTDOWN_watchdog ? "was reset by its watchdog" :
                 "is dying", info.shutdown, info.shutdown_reason,
                 info.dying);
    } else {
        return;
    }
    d->stop_reported = true;
    if (d->ev.guest_stopped)
        d->ev.guest_stopped(d->ev.arg, crashed, why);
}

static void watch_start(struct tdm_dom *d)
{
    struct timeval tv = {WATCH_MS / 1000, (WATCH_MS % 1000) * 1000};

    if (!d->base || d->watch)
        return;
    d->watch = event_new(d->base, -1, EV_PERSIST, watch_cb, d);
    event_add(d->watch, &tv);
}

/* ---- create ---- */

static struct tdm_dom *dom_alloc(const struct xen_conf *c,
                                 struct event_base *base,
                                 const struct tdm_dom_events *ev)
{
    struct tdm_dom *d = tdm_calloc(1, sizeof(*d));

    d->conf = *c;
    d->base = base;
    if (ev)
        d->ev = *ev;
    d->npages = c->memory_mib * 256 + XEN_SLOT_SLACK;
    xen_logger_init(&d->logger);
    d->bm_hbuf = (xc_hypercall_buffer_t){ .hbuf = NULL, .param_shadow = NULL,
                                          HYPERCALL_BUFFER_INIT_NO_BOUNCE };
    tdm_xslots_init(&d->slots);
    tdm_xbuf_init(&d->blob);
    tdm_xbuf_init(&d->cpuid);
    tdm_xbuf_init(&d->msr);
    d->r.data_fd = d->r.ctl_fd = -1;
    return d;
}

/* The guest's libxl configuration, as xl save and migrate send it: the
 * backup rebuilds the domain from it. */
static int get_config(struct tdm_dom *d, char *err, size_t errlen)
{
    libxl_ctx *ctx = NULL;
    libxl_domain_config dc;
    char *json = NULL;
    int rc = -1;

    libxl_domain_config_init(&dc);
    if (libxl_ctx_alloc(&ctx, LIBXL_VERSION, 0, &d->logger)) {
        tdm_errf(err, errlen, "cannot open libxl");
        goto out;
    }
    if (libxl_retrieve_domain_configuration(ctx, d->domid, &dc, NULL)) {
        tdm_errf(err, errlen, "domain %u: cannot read its libxl "
                 "configuration (not created by xl/libxl?)", d->domid);
        goto out;
    }
    if (dc.b_info.type != LIBXL_DOMAIN_TYPE_PVH) {
        /* An HVM guest's device model (qemu) has state of its own, which
         * this driver does not carry yet (libxl's EMULATOR records). */
        tdm_errf(err, errlen, "domain %u is %s: only PVH guests are "
                 "supported (an HVM guest's qemu state is not replicated "
                 "yet)", d->domid,
                 libxl_domain_type_to_string(dc.b_info.type));
        goto out;
    }
    if (!(json = libxl_domain_config_to_json(ctx, &dc))) {
        tdm_errf(err, errlen, "domain %u: cannot write its configuration",
                 d->domid);
        goto out;
    }
    if (strlen(json) > TDM_XCONFIG_MAX) {
        tdm_errf(err, errlen, "domain %u: configuration of %zu bytes is too "
                 "large", d->domid, strlen(json));
        goto out;
    }
    if (dc.c_info.name)
        tdm_strlcpy(d->domname, dc.c_info.name, sizeof(d->domname));
    d->config_json = tdm_strdup(json);
    rc = 0;
out:
    free(json);
    libxl_domain_config_dispose(&dc);
    libxl_ctx_free(ctx);
    return rc;
}

static void xen_destroy(struct tdm_dom *d);

static int xen_create(struct tdm_cfg *cfg, struct event_base *base,
                      const struct tdm_dom_events *ev, struct tdm_dom **dom_r)
{
    struct xen_conf c;
    struct tdm_dom *d = NULL;
    xc_dominfo_t info;
    char err[256];
    int rc = -1;

    if (conf_parse(cfg, &c, err, sizeof(err)) < 0) {
        log_warnx("%s", err);
        return -1;
    }
    d = dom_alloc(&c, base, ev);
    if (xen_open_handles(d, true, err, sizeof(err)) < 0 ||
        tdm_xen_domid(c.domain, &d->domid, err, sizeof(err)) < 0)
        goto fail;
    if (dominfo(d, &info) < 0) {
        tdm_errf(err, sizeof(err), "no domain %u", d->domid);
        goto fail;
    }
    if (d->domid == 0) {
        tdm_errf(err, sizeof(err), "domain 0 cannot be protected");
        goto fail;
    }
    if (!info.hvm) {
        tdm_errf(err, sizeof(err), "domain '%s' (%u) is PV: log-dirty of PV "
                 "domains needs shadow paging, which Debian's Xen is built "
                 "without; use a PVH guest", c.domain, d->domid);
        goto fail;
    }
    if (!info.hap) {
        tdm_errf(err, sizeof(err), "domain '%s' (%u) runs without HAP "
                 "(nested paging): log-dirty needs it here", c.domain,
                 d->domid);
        goto fail;
    }
    if (info.dying || info.shutdown) {
        tdm_errf(err, sizeof(err), "domain '%s' (%u) is shut down",
                 c.domain, d->domid);
        goto fail;
    }
    if (info.nr_pages + XEN_SLOT_SLACK / 2 > d->npages) {
        tdm_errf(err, sizeof(err), "memory = %llu: domain '%s' holds %lu "
                 "frames (%lu MiB); set memory to its maximum",
                 (unsigned long long)c.memory_mib, c.domain, info.nr_pages,
                 info.nr_pages >> 8);
        goto fail;
    }
    /* the disk first: the configuration the backup gets must have it */
    if (c.disk_nbd[0] && xen_disk_attach(d, err, sizeof(err)) < 0)
        goto fail;
    if (get_config(d, err, sizeof(err)) < 0)
        goto fail;
    d->have_domid = true;
    watch_start(d);
    log_info("%s: attached to domain '%s' (domid %u, %lu frames, suspend %s)",
             c.name, d->domname, d->domid, info.nr_pages,
             c.suspend == XEN_SUSPEND_COOP ? "cooperative" : "pause");
    *dom_r = d;
    d = NULL;
    rc = 0;
fail:
    if (rc < 0)
        log_warnx("%s: %s", c.name, err);
    /* have_domid is not set: the domain is left alone */
    xen_destroy(d);
    return rc;
}

static int xen_create_replica(struct tdm_cfg *cfg, struct event_base *base,
                              const struct tdm_dom_events *ev,
                              struct tdm_dom **dom_r)
{
    struct xen_conf c;
    struct tdm_dom *d;
    char err[256];
    int v;

    if (conf_parse(cfg, &c, err, sizeof(err)) < 0) {
        log_warnx("%s", err);
        return -1;
    }
    d = dom_alloc(&c, base, ev);
    d->replica = true;
    if (xen_open_handles(d, false, err, sizeof(err)) < 0) {
        log_warnx("%s: %s", c.name, err);
        xen_destroy(d);
        return -1;
    }
    v = xc_version(d->xch, XENVER_version, NULL);
    d->r.xen_major = (uint16_t)(v >> 16);
    d->r.xen_minor = (uint16_t)v;
    xen_replica_init(d);
    *dom_r = d;
    return 0;
}

static uint64_t xen_npages(struct tdm_dom *d)
{
    return d->npages;
}

/* ---- log-dirty ---- */

static int read_cpu_policy(struct tdm_dom *d)
{
    xc_cpu_policy_t *p = xc_cpu_policy_init();
    uint32_t nl = 0, nm = 0;
    int rc = -1;

    if (!p || xc_cpu_policy_get_size(d->xch, &nl, &nm) < 0) {
        log_warn("domain %u: CPU policy size", d->domid);
        goto out;
    }
    d->cpuid.len = d->msr.len = 0;
    tdm_xbuf_grow(&d->cpuid, (size_t)nl * sizeof(xen_cpuid_leaf_t));
    tdm_xbuf_grow(&d->msr, (size_t)nm * sizeof(xen_msr_entry_t));
    if (xc_cpu_policy_get_domain(d->xch, d->domid, p) ||
        xc_cpu_policy_serialise(d->xch, p, (xen_cpuid_leaf_t *)d->cpuid.p,
                                &nl, (xen_msr_entry_t *)d->msr.p, &nm)) {
        log_warn("domain %u: CPU policy", d->domid);
        goto out;
    }
    d->cpuid.len = (size_t)nl * sizeof(xen_cpuid_leaf_t);
    d->msr.len = (size_t)nm * sizeof(xen_msr_entry_t);
    rc = 0;
out:
    xc_cpu_policy_destroy(p);
    return rc;
}

static int logdirty_on(struct tdm_dom *d)
{
    xen_pfn_t nr = 0;
    int ctx, pages;

    if (xc_domain_nr_gpfns(d->xch, d->domid, &nr) < 0 || nr == 0) {
        log_warn("domain %u: physmap size", d->domid);
        return -1;
    }
    pages = (int)(((nr + 63) / 64 * 8 + XC_PAGE_SIZE - 1) / XC_PAGE_SIZE);
    if (!d->bm || pages > d->bm_pages) {
        if (d->bm)
            xc__hypercall_buffer_free_pages(d->xch, &d->bm_hbuf, d->bm_pages);
        d->bm = xc__hypercall_buffer_alloc_pages(d->xch, &d->bm_hbuf, pages);
        if (!d->bm) {
            log_warn("domain %u: dirty bitmap of %d pages", d->domid, pages);
            return -1;
        }
        d->bm_pages = pages;
    }
    if (nr != d->p2m_size || !d->slots.slot_of) {
        if (tdm_xslots_alloc(&d->slots, nr, (uint32_t)d->npages) < 0) {
            log_warnx("domain %u: physmap of %llu frames", d->domid,
                      (unsigned long long)nr);
            return -1;
        }
        d->p2m_size = nr;
    }
    tdm_xslots_reset(&d->slots);
    if (!d->pos_of_slot)
        d->pos_of_slot = tdm_malloc(d->npages * sizeof(*d->pos_of_slot));
    if (!d->batch) {
        d->batch = tdm_calloc(TDM_XPAGE_BATCH, sizeof(*d->batch));
        d->batch_pfn = tdm_calloc(TDM_XPAGE_BATCH, sizeof(*d->batch_pfn));
        d->errs = tdm_calloc(TDM_XPAGE_BATCH, sizeof(*d->errs));
    }
    ctx = xc_domain_hvm_getcontext(d->xch, d->domid, NULL, 0);
    if (ctx <= 0) {
        log_warn("domain %u: HVM context size", d->domid);
        return -1;
    }
    if ((uint32_t)ctx + 4096 > d->ctx_cap) {
        d->ctx_cap = (uint32_t)ctx + 4096;
        d->ctx = tdm_realloc(d->ctx, d->ctx_cap);
    }
    if (read_cpu_policy(d) < 0)
        return -1;
    if (!d->logdirty &&
        xc_shadow_control(d->xch, d->domid,
                          XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL, 0) < 0) {
        /* Left on by someone (a tandemd that died): start over. */
        int e = errno;
        if (xc_shadow_control(d->xch, d->domid, XEN_DOMCTL_SHADOW_OP_OFF,
                              NULL, 0) < 0 ||
            xc_shadow_control(d->xch, d->domid,
                              XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL,
                              0) < 0) {
            errno = e;
            log_warn("domain %u: cannot enable log-dirty", d->domid);
            return -1;
        }
    }
    d->logdirty = true;
    d->full_next = true;
    return 0;
}

static int xen_log_dirty(struct tdm_dom *d, bool enable)
{
    if (d->replica)
        return 0;
    if (enable)
        return logdirty_on(d);
    if (d->logdirty &&
        xc_shadow_control(d->xch, d->domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL,
                          0) < 0)
        log_warn("domain %u: log-dirty off", d->domid);
    d->logdirty = false;
    d->full_next = false;
    return 0;
}

/* ---- the pause ---- */

static void sleep_us(long us)
{
    struct timespec ts = {0, us * 1000};

    nanosleep(&ts, NULL);
}

/* Withdraw a suspend request the guest did not take up; a last-minute
 * acknowledgement wins (as libxl does it). */
static void coop_cancel(struct tdm_dom *d, const char *path)
{
    for (int i = 0; i < 10; i++) {
        xs_transaction_t t = xs_transaction_start(d->xs);
        char *v;

        if (t == XBT_NULL)
            return;
        v = xs_read(d->xs, t, path, NULL);
        if (!v || strcmp(v, "suspend")) {
            free(v);
            xs_transaction_end(d->xs, t, true);
            return;
        }
        free(v);
        xs_write(d->xs, t, path, "", 0);
        if (xs_transaction_end(d->xs, t, false) || errno != EAGAIN)
            return;
    }
}

/* The guest's own suspend path (Linux: drivers/xen/manage.c): it freezes,
 * then makes the SCHEDOP_shutdown(suspend) hypercall; Xen then holds it
 * stopped with the hypercall's return value (0: "resumed in a new
 * domain") in its context. */
static int coop_suspend(struct tdm_dom *d)
{
    uint64_t t0 = tdm_now_ns(), limit = d->conf.suspend_timeout_ms * 1000000;
    char path[64];
    xc_dominfo_t info;

    snprintf(path, sizeof(path), "/local/domain/%u/control/shutdown",
             d->domid);
    if (!xs_write(d->xs, XBT_NULL, path, "suspend", 7)) {
        log_warn("domain %u: cannot write %s", d->domid, path);
        return -1;
    }
    for (;;) {
        if (dominfo(d, &info) < 0) {
            log_warnx("domain %u vanished while suspending", d->domid);
            return -1;
        }
        if (info.shutdown && info.shutdown_reason == SHUTDOWN_suspend)
            return 0;
        if (info.shutdown || info.dying) {
            log_warnx("domain %u shut down (reason %u) instead of "
                      "suspending", d->domid, info.shutdown_reason);
            return -1;
        }
        if (tdm_now_ns() - t0 > limit) {
            coop_cancel(d, path);
            log_warnx("domain %u did not suspend within %llu ms (no PV "
                      "drivers? suspend = \"pause\" is for such guests)",
                      d->domid,
                      (unsigned long long)d->conf.suspend_timeout_ms);
            return -1;
        }
        sleep_us(100);
    }
}

static int do_suspend(struct tdm_dom *d)
{
    d->suspend_t0 = tdm_now_ns();
    if (d->conf.suspend == XEN_SUSPEND_PAUSE) {
        if (xc_domain_pause(d->xch, d->domid) < 0) {
            log_warn("domain %u: pause", d->domid);
            return -1;
        }
    } else if (coop_suspend(d) < 0) {
        return -1;
    }
    d->suspended = true;
    return 0;
}

static int xen_suspend(struct tdm_dom *d)
{
    if (d->replica) {
        log_warnx("%s: suspend of a replica", d->conf.name);
        return -1;
    }
    /* The full epoch copies everything with the guest running; capture
     * stops it only after that. */
    if (d->full_next) {
        d->deferred = true;
        return 0;
    }
    return do_suspend(d);
}

static int xen_resume(struct tdm_dom *d)
{
    int r;

    d->deferred = false;
    if (!d->suspended)
        return 0;
    if (d->conf.suspend == XEN_SUSPEND_PAUSE)
        r = xc_domain_unpause(d->xch, d->domid);
    else
        r = xc_domain_resume(d->xch, d->domid, 1); /* fast: "cancelled" */
    d->last_pause_ns = tdm_now_ns() - d->suspend_t0;
    if (r < 0) {
        log_warn("domain %u: resume", d->domid);
        return -1;
    }
    d->suspended = false;
    return 0;
}

/* Copy the frames in d->batch_pfn[0..n) into staging. In a full epoch a
 * frame staged earlier in it is overwritten in place. */
static int copy_batch(struct tdm_dom *d, struct tdm_staging *st, size_t n,
                      bool full)
{
    uint8_t *m;

    for (size_t i = 0; i < n; i++)
        d->batch[i] = (xen_pfn_t)d->batch_pfn[i];
    m = xenforeignmemory_map(d->fmem, d->domid, PROT_READ, n, d->batch,
                             d->errs);
    if (!m) {
        log_warn("domain %u: mapping %zu frames", d->domid, n);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t slot;
        uint8_t *dst;

        if (d->errs[i]) {       /* a hole in the physmap */
            d->unmappable++;
            continue;
        }
        if (tdm_xslots_get(&d->slots, d->batch_pfn[i], &slot) < 0) {
            log_warnx("%s: domain %u has more than %u frames (memory = "
                      "%llu MiB): raise memory", d->conf.name, d->domid,
                      d->slots.cap,
                      (unsigned long long)d->conf.memory_mib);
            goto fail;
        }
        if (full && d->pos_of_slot[slot] != TDM_XSLOT_NONE) {
            dst = tdm_staging_page(st, d->pos_of_slot[slot]);
        } else {
            if (full)
                d->pos_of_slot[slot] = (uint32_t)st->npages;
            if (!(dst = tdm_staging_add_page(st, slot)))
                goto fail;
        }
        memcpy(dst, m + i * XC_PAGE_SIZE, XC_PAGE_SIZE);
    }
    xenforeignmemory_unmap(d->fmem, m, n);
    return 0;
fail:
    xenforeignmemory_unmap(d->fmem, m, n);
    return -1;
}

/* Exported by libxenctrl 4.17 (VERS_4.17.0), and what its own save code
 * asks for every guest type, but declared only in its private header. */
int xc_get_pfn_type_batch(xc_interface *xch, uint32_t dom, unsigned int num,
                          xen_pfn_t *arr);

/* Frames whose type a step may ask Xen for, per frame it may copy: the
 * physmap of a 128 MiB PVH guest is 4 GiB of mostly holes, and asking
 * about the 1 M frames past its RAM took 2.2 s under the rig's emulation,
 * which a step bounded by copied frames alone spent in one go. */
#define SCAN_PER_COPY 16

/* The full epoch's live copy of every frame, from d->copy_pfn on, until
 * at least max frames were copied, max * SCAN_PER_COPY were looked at, or
 * the physmap ends; returns 1 while frames remain, 0 at the end, -1 on
 * error. A PVH guest's physmap is its
 * RAM, a few pages of ACPI tables and special pages near 4 GiB, and holes
 * in between that cost seconds to find by failing to map them frame by
 * frame: Xen says which frames are holes (getpageframeinfo3) and only the
 * others are mapped. If Xen cannot say, every frame is tried. An empty
 * staging buffer (the engine reset it) starts the copy over. */
static int full_copy(struct tdm_dom *d, struct tdm_staging *st, size_t max)
{
    static bool types_failed;
    xen_pfn_t types[TDM_XPAGE_BATCH];
    size_t copied = 0;
    uint64_t scanned = 0, scan_max = max > SIZE_MAX / SCAN_PER_COPY
                                         ? UINT64_MAX
                                         : (uint64_t)max * SCAN_PER_COPY;

    if (st->npages == 0) {
        memset(d->pos_of_slot, 0xff, d->npages * sizeof(*d->pos_of_slot));
        d->copy_pfn = 0;
        d->probed = 0;
        d->unmappable = 0;
        d->copy_t0 = tdm_now_ns();
    }
    while (d->copy_pfn < d->p2m_size && copied < max && scanned < scan_max) {
        uint64_t pfn = d->copy_pfn;
        size_t n = (size_t)TDM_MIN((uint64_t)TDM_XPAGE_BATCH,
                                   d->p2m_size - pfn), k = 0;

        for (size_t i = 0; i < n; i++)
            types[i] = (xen_pfn_t)(pfn + i);
        if (!types_failed &&
            xc_get_pfn_type_batch(d->xch, d->domid, (unsigned)n, types) < 0) {
            log_warn("%s: Xen cannot tell holes in the physmap (frame types "
                     "of domain %u): every frame is tried", d->conf.name,
                     d->domid);
            types_failed = true;
        }
        for (size_t i = 0; i < n; i++) {
            uint32_t t = (uint32_t)(types[i] & XEN_DOMCTL_PFINFO_LTAB_MASK);
            if (types_failed || (t != XEN_DOMCTL_PFINFO_XTAB &&
                                 t != XEN_DOMCTL_PFINFO_BROKEN &&
                                 t != XEN_DOMCTL_PFINFO_XALLOC))
                d->batch_pfn[k++] = pfn + i;
        }
        d->probed += k;
        if (k && copy_batch(d, st, k, true) < 0)
            return -1;
        copied += k;
        scanned += n;
        d->copy_pfn = pfn + n;
    }
    if (d->copy_pfn < d->p2m_size)
        return 1;
    return 0;
}

static void full_copy_done(struct tdm_dom *d, const struct tdm_staging *st)
{
    log_info("%s: full copy of %zu frames while the guest runs: %.1f ms "
             "(physmap of %llu frames, %llu of them mapped)", d->conf.name,
             st->npages, (tdm_now_ns() - d->copy_t0) / 1e6,
             (unsigned long long)d->p2m_size,
             (unsigned long long)d->probed);
}

/* Staging must hold every page of the domain: the engine sizes it so. */
static int staging_fits(const struct tdm_dom *d, const struct tdm_staging *st)
{
    if (st->cap >= d->npages)
        return 0;
    log_warnx("%s: staging of %zu pages, need %llu", d->conf.name, st->cap,
              (unsigned long long)d->npages);
    return -1;
}

/* Engine op precopy: the full copy in steps, the guest running. */
static int xen_precopy(struct tdm_dom *d, struct tdm_staging *st,
                       size_t max_pages)
{
    int r;

    if (d->replica || !d->logdirty || !d->full_next || d->suspended) {
        log_warnx("%s: live copy of a domain that is not starting "
                  "protection", d->conf.name);
        return -1;
    }
    if (staging_fits(d, st) < 0)
        return -1;
    if ((r = full_copy(d, st, TDM_MAX(max_pages, (size_t)1))) == 0)
        full_copy_done(d, st);
    return r;
}

static int put_hvm_params(struct tdm_dom *d)
{
    static const uint32_t params[] = {
        HVM_PARAM_STORE_PFN, HVM_PARAM_IOREQ_PFN, HVM_PARAM_BUFIOREQ_PFN,
        HVM_PARAM_PAGING_RING_PFN, HVM_PARAM_MONITOR_RING_PFN,
        HVM_PARAM_SHARING_RING_PFN, HVM_PARAM_VM86_TSS_SIZED,
        HVM_PARAM_CONSOLE_PFN, HVM_PARAM_ACPI_IOPORTS_LOCATION,
        HVM_PARAM_VIRIDIAN, HVM_PARAM_IDENT_PT,
        HVM_PARAM_VM_GENERATION_ID_ADDR, HVM_PARAM_IOREQ_SERVER_PFN,
        HVM_PARAM_NR_IOREQ_SERVER_PAGES, HVM_PARAM_X87_FIP_WIDTH,
        HVM_PARAM_MCA_CAP,
    };
    uint8_t body[8 + TDM_ARRAY_SIZE(params) * 16];
    uint32_t n = 0;

    memset(body, 0, sizeof(body));
    for (size_t i = 0; i < TDM_ARRAY_SIZE(params); i++) {
        uint64_t v = 0;

        if (xc_hvm_param_get(d->xch, d->domid, params[i], &v) < 0) {
            log_warn("domain %u: HVM parameter %u", d->domid, params[i]);
            return -1;
        }
        if (!v)
            continue;
        tdm_put_le64(body + 8 + n * 16, params[i]);
        tdm_put_le64(body + 16 + n * 16, v);
        n++;
    }
    if (n) {
        tdm_put_le32(body, n);
        tdm_xrec_put(&d->blob, TDM_XREC_HVM_PARAMS, body, 8 + n * 16);
    }
    return 0;
}

static int put_state(struct tdm_dom *d, bool full)
{
    uint8_t tsc[24];
    uint32_t mode, khz, inc;
    uint64_t nsec;
    int ctx;

    tdm_xstate_begin(&d->blob, (uint16_t)((full ? TDM_XSTATE_FULL : 0) |
                     (d->conf.suspend == XEN_SUSPEND_COOP ?
                      TDM_XSTATE_COOP : 0)));
    tdm_xslots_put_new(&d->slots, &d->blob);
    if (full) {
        tdm_xrec_put(&d->blob, TDM_XREC_TDM_DOMCONFIG, d->config_json,
                     (uint32_t)strlen(d->config_json));
        if (d->cpuid.len)
            tdm_xrec_put(&d->blob, TDM_XREC_X86_CPUID_POLICY, d->cpuid.p,
                         (uint32_t)d->cpuid.len);
        if (d->msr.len)
            tdm_xrec_put(&d->blob, TDM_XREC_X86_MSR_POLICY, d->msr.p,
                         (uint32_t)d->msr.len);
    }
    if (xc_domain_get_tsc_info(d->xch, d->domid, &mode, &nsec, &khz,
                               &inc) < 0) {
        log_warn("domain %u: TSC info", d->domid);
        return -1;
    }
    memset(tsc, 0, sizeof(tsc));
    tdm_put_le32(tsc, mode);
    tdm_put_le32(tsc + 4, khz);
    tdm_put_le64(tsc + 8, nsec);
    tdm_put_le32(tsc + 16, inc);
    tdm_xrec_put(&d->blob, TDM_XREC_X86_TSC_INFO, tsc, sizeof(tsc));
    if (put_hvm_params(d) < 0)
        return -1;
    ctx = xc_domain_hvm_getcontext(d->xch, d->domid, d->ctx, d->ctx_cap);
    if (ctx < 0) {
        int need = xc_domain_hvm_getcontext(d->xch, d->domid, NULL, 0);
        if (need > 0 && (uint32_t)need > d->ctx_cap) {
            d->ctx_cap = (uint32_t)need + 4096;
            d->ctx = tdm_realloc(d->ctx, d->ctx_cap);
            ctx = xc_domain_hvm_getcontext(d->xch, d->domid, d->ctx,
                                           d->ctx_cap);
        }
    }
    if (ctx <= 0 || (uint32_t)ctx > TDM_XHVM_CTX_MAX) {
        log_warn("domain %u: HVM context", d->domid);
        return -1;
    }
    tdm_xrec_put(&d->blob, TDM_XREC_HVM_CONTEXT, d->ctx, (uint32_t)ctx);
    tdm_xstate_finish(&d->blob);
    return 0;
}

static int xen_capture(struct tdm_dom *d, struct tdm_staging *st)
{
    bool full = d->full_next;
    uint64_t pos = 0, dirty = 0;
    size_t n;

    if (d->replica || !d->logdirty || (!d->suspended && !d->deferred)) {
        log_warnx("%s: capture of a domain that is not protected and "
                  "suspended", d->conf.name);
        return -1;
    }
    if (staging_fits(d, st) < 0)
        return -1;
    if (!full) {
        d->unmappable = 0;
    } else if (st->npages == 0 || d->copy_pfn < d->p2m_size) {
        /* Every frame (or what the steps of precopy left), live: log-dirty
         * is on, so what the guest writes after its copy is in the bitmap
         * taken below. */
        if (full_copy(d, st, SIZE_MAX) < 0)
            return -1;
        full_copy_done(d, st);
    }
    if (d->deferred) {
        d->deferred = false;
        if (do_suspend(d) < 0)
            return -1;
    }
    if (xc_logdirty_control(d->xch, d->domid, XEN_DOMCTL_SHADOW_OP_CLEAN,
                            &d->bm_hbuf, d->p2m_size,
                            XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL, NULL) < 0) {
        log_warn("domain %u: dirty bitmap", d->domid);
        return -1;
    }
    while ((n = tdm_xbm_collect(d->bm, d->p2m_size, &pos, d->batch_pfn,
                                TDM_XPAGE_BATCH)) > 0) {
        if (copy_batch(d, st, n, full) < 0)
            return -1;
        dirty += n;
    }
    if (put_state(d, full) < 0 ||
        tdm_staging_set_state(st, d->blob.p, d->blob.len) < 0)
        return -1;
    if (full)
        log_info("%s: full epoch: %zu frames, %llu of them copied again "
                 "with the guest stopped (%.1f ms so far)", d->conf.name,
                 st->npages, (unsigned long long)dirty,
                 (tdm_now_ns() - d->suspend_t0) / 1e6);
    d->full_next = false;
    return 0;
}

/* ---- backup ops (xen-restore.c) ---- */

static int xen_apply(struct tdm_dom *d, const struct tdm_staging *st)
{
    if (!d->replica) {
        log_warnx("%s: epoch %llu: not a replica", d->conf.name,
                  (unsigned long long)st->epoch);
        return -1;
    }
    return xen_replica_apply(d, st);
}

static int xen_apply_take(struct tdm_dom *d, struct tdm_staging *st)
{
    if (!d->replica) {
        log_warnx("%s: epoch %llu: not a replica", d->conf.name,
                  (unsigned long long)st->epoch);
        return -1;
    }
    return xen_replica_apply_take(d, st);
}

static int xen_activate(struct tdm_dom *d)
{
    char err[256];

    if (!d->replica) {
        log_warnx("%s: already active", d->conf.name);
        return -1;
    }
    if (xen_replica_activate(d) < 0)
        return -1;
    if (xen_open_handles(d, true, err, sizeof(err)) < 0)
        log_warnx("%s: %s", d->conf.name, err);
    d->replica = false;
    d->have_domid = true;
    watch_start(d);
    return 0;
}

/* ---- the rest ---- */

static int xen_net_ifaces(struct tdm_dom *d, char (*names)[16], int max)
{
    char err[256];
    int n;

    if (d->replica || !d->have_domid)
        return 0;
    n = tdm_xen_vifs(d->domid, names, max, err, sizeof(err));
    if (n < 0)
        log_warnx("%s: %s", d->conf.name, err);
    return n;
}

static bool xen_running(struct tdm_dom *d)
{
    xc_dominfo_t info;

    if (d->replica || !d->have_domid || !d->xch || dominfo(d, &info) < 0)
        return false;
    return !info.dying &&
           (!info.shutdown || info.shutdown_reason == SHUTDOWN_suspend);
}

/* After the domain (and its disk device) went, or stays: the guest keeps
 * a disk it runs on. */
static void disk_free(struct tdm_dom *d, bool keep)
{
    char err[256];

    if (!d->nbd_dev[0] || (keep && !d->replica))
        return;
    if (!d->have_domid && d->disk_plugged &&
        xen_disk_plug(d, false, err, sizeof(err)) < 0)
        log_warnx("%s: %s", d->conf.name, err);   /* attach failed later */
    xen_nbd_detach(d->nbd_dev);
    d->nbd_dev[0] = '\0';
    if (d->conf.disk_link[0])
        unlink(d->conf.disk_link);   /* a backup's; never made on a primary */
}

static void dom_free(struct tdm_dom *d, bool keep)
{
    if (!d)
        return;
    if (d->watch)
        event_free(d->watch);
    if (keep && d->r.ctl_fd >= 0 && !d->replica) {
        /* An activated replica: its restore child lets it run on when
         * the control socket ends. */
        close(d->r.ctl_fd);
        d->r.ctl_fd = -1;
    }
    if (keep && !d->replica && d->have_domid) {
        if (d->logdirty)
            xen_log_dirty(d, false);
        log_info("%s: domain %u left running, unprotected", d->conf.name,
                 d->domid);
    } else if (!d->replica && d->have_domid) {
        if (d->logdirty)
            xen_log_dirty(d, false);
        /* The guest goes too: after a handover or a lost fence this copy
         * must not run on. */
        xen_destroy_domain(d);
    }
    if (d->r.slot_pfn)
        xen_replica_destroy(d);
    disk_free(d, keep);
    close_handles(d);
    tdm_xslots_dispose(&d->slots);
    tdm_xbuf_dispose(&d->blob);
    tdm_xbuf_dispose(&d->cpuid);
    tdm_xbuf_dispose(&d->msr);
    free(d->pos_of_slot);
    free(d->ctx);
    free(d->batch);
    free(d->batch_pfn);
    free(d->errs);
    free(d->config_json);
    free(d->r.slot_pfn);
    free(d);
}

static void xen_destroy(struct tdm_dom *d)
{
    dom_free(d, false);
}

static void xen_release(struct tdm_dom *d)
{
    dom_free(d, true);
}

const struct tdm_driver_ops tdm_driver_xen = {
    .name = "xen",
    .validate = xen_validate,
    .create = xen_create,
    .create_replica = xen_create_replica,
    .npages = xen_npages,
    .log_dirty = xen_log_dirty,
    .suspend = xen_suspend,
    .precopy = xen_precopy,
    .capture = xen_capture,
    .resume = xen_resume,
    .apply = xen_apply,
    .apply_take = xen_apply_take,
    .activate = xen_activate,
    /* No device-model queues: output commit is netbuf's, on the vifs. */
    .output_buffer = NULL,
    .output_cut = NULL,
    .output_release = NULL,
    .output_stats = NULL,
    .net_ifaces = xen_net_ifaces,
    .running = xen_running,
    .destroy = xen_destroy,
    .release = xen_release,
};
