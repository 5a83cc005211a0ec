/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Output commit, whichever way it is done: by the driver's device model
 * (the micro-VM's own queue) or in the kernel on the domain's interfaces
 * (libs/netbuf: nfqueue or sch_plug). The domain configuration chooses:
 *
 *   netbuf = devmodel | nfqueue | plug | auto
 *
 * devmodel is the default of a driver with output queues of its own (uvm);
 * a driver without them (xen) defaults to auto: plug where the kernel has
 * sch_plug, else nfqueue, said in the log. Kernel buffers are opened when
 * buffering first starts (a replica that becomes primary gets them then)
 * and closed when the domain goes; failing to open them refuses
 * protection rather than protecting without output commit.
 */
#include "config.h"

#include <string.h>

#include "engine-private.h"
#include "tdm-netbuf.h"

int tdm__output_parse(const struct tdm_driver_ops *drv, struct tdm_cfg *cfg,
                      int *kind_r, char *err, size_t errlen)
{
    const char *v = tdm_cfg_get(cfg, "netbuf");
    bool has_devmodel = drv->output_buffer != NULL;

    if (!v)
        v = has_devmodel ? "devmodel" : "auto";
    if (!strcmp(v, "devmodel")) {
        if (!has_devmodel)
            return tdm_errf(err, errlen, "netbuf = devmodel: the %s driver "
                            "has no device-model queues (use nfqueue, plug or "
                            "auto)", drv->name);
        *kind_r = 0;
    } else if (!strcmp(v, "auto")) {
        *kind_r = -1;
    } else if (tdm_netbuf_kind_parse(v) > 0) {
        *kind_r = tdm_netbuf_kind_parse(v);
    } else {
        return tdm_errf(err, errlen, "netbuf = '%s': expected devmodel, "
                        "nfqueue, plug or auto", v);
    }
    if (*kind_r != 0 && !drv->net_ifaces)
        return tdm_errf(err, errlen, "netbuf = %s: the %s driver cannot name "
                        "the domain's interfaces", v, drv->name);
    return 0;
}

static int open_netbufs(struct tdm_engine *eng)
{
    char names[TDM_NETBUF_MAX_IF][16], err[256], why[200];
    struct tdm_netbuf_opts o = { 0 };
    int n, kind = eng->netbuf_kind;

    if (kind < 0) {
        kind = tdm_netbuf_probe(why, sizeof(why));
        log_notice("%s: netbuf auto: %s", eng->name, why);
        eng->netbuf_kind = kind;
    }
    o.kind = (enum tdm_netbuf_kind)kind;
    n = eng->drv->net_ifaces(eng->dom, names, TDM_NETBUF_MAX_IF);
    if (n < 0) {
        log_warnx("%s: cannot list the domain's interfaces", eng->name);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (tdm_netbuf_open(eng->host->base, names[i], &o,
                            &eng->netbufs[eng->n_netbufs], err,
                            sizeof(err)) < 0) {
            log_warnx("%s: %s", eng->name, err);
            return -1;
        }
        eng->n_netbufs++;
    }
    if (n == 0)
        log_notice("%s: the domain has no network interface: nothing to "
                   "hold", eng->name);
    eng->netbufs_open = true;
    return 0;
}

int tdm__output_buffer(struct tdm_engine *eng, bool on, uint64_t epoch)
{
    int rc = 0;

    if (!eng->dom)
        return on ? -1 : 0;
    if (eng->netbuf_kind == 0) {
        eng->drv->output_buffer(eng->dom, on, epoch);
        return 0;
    }
    if (on && !eng->netbufs_open && open_netbufs(eng) < 0) {
        tdm__output_close(eng, false);
        return -1;
    }
    for (int i = 0; i < eng->n_netbufs; i++)
        if ((on ? tdm_netbuf_hold(eng->netbufs[i], epoch)
                : tdm_netbuf_unhold(eng->netbufs[i])) < 0)
            rc = -1;
    return rc;
}

void tdm__output_cut(struct tdm_engine *eng, uint64_t epoch)
{
    if (eng->netbuf_kind == 0) {
        eng->drv->output_cut(eng->dom, epoch);
        return;
    }
    for (int i = 0; i < eng->n_netbufs; i++)
        tdm_netbuf_cut(eng->netbufs[i], epoch);
}

void tdm__output_release(struct tdm_engine *eng, uint64_t epoch)
{
    if (eng->netbuf_kind == 0) {
        eng->drv->output_release(eng->dom, epoch);
        return;
    }
    for (int i = 0; i < eng->n_netbufs; i++)
        tdm_netbuf_release(eng->netbufs[i], epoch);
}

void tdm__output_stats(struct tdm_engine *eng, struct tdm_output_stats *s)
{
    memset(s, 0, sizeof(*s));
    if (eng->netbuf_kind == 0) {
        if (eng->dom)
            eng->drv->output_stats(eng->dom, s);
        tdm_strlcpy(s->mechanism, "devmodel", sizeof(s->mechanism));
        return;
    }
    tdm_strlcpy(s->mechanism, eng->netbuf_kind < 0 ? "auto" :
                tdm_netbuf_kind_name((enum tdm_netbuf_kind)eng->netbuf_kind),
                sizeof(s->mechanism));
    for (int i = 0; i < eng->n_netbufs; i++) {
        struct tdm_netbuf_stats ns;

        tdm_netbuf_stats(eng->netbufs[i], &ns);
        s->held_frames += ns.held_pkts;
        s->held_bytes += ns.held_bytes;
        s->released_frames += ns.released_pkts;
        s->discarded_frames += ns.discarded_pkts;
        s->dropped_frames += ns.dropped_pkts;
    }
}

void tdm__output_cleanup(struct tdm_engine *eng)
{
    char names[TDM_NETBUF_MAX_IF][16];
    int n;

    if (eng->netbuf_kind == 0 || !eng->dom)
        return;
    n = eng->drv->net_ifaces(eng->dom, names, TDM_NETBUF_MAX_IF);
    for (int i = 0; i < n; i++)
        tdm_netbuf_cleanup(names[i]);
}

void tdm__output_close(struct tdm_engine *eng, bool discard)
{
    for (int i = 0; i < eng->n_netbufs; i++)
        tdm_netbuf_close(eng->netbufs[i], discard);
    eng->n_netbufs = 0;
    eng->netbufs_open = false;
}
