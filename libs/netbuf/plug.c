/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The plug mechanism: what arrives on the interface is redirected (ingress
 * qdisc, matchall filter, mirred egress redirect) to an IFB whose root
 * qdisc is sch_plug; after the IFB the packets continue on the interface's
 * receive path (bridge or routing) as if nothing had happened.
 *
 * sch_plug counts packets of two epochs: the open one and the last closed
 * one. TCQ_PLUG_BUFFER closes the open epoch, TCQ_PLUG_RELEASE_ONE lets the
 * closed one out. A second BUFFER before the closed epoch was released
 * would overwrite its count, so a cut that finds a closed epoch still
 * pending merges the new epoch into the open one instead (stats count it):
 * its packets go out one release later, never earlier.
 */
#include "config.h"

#include <errno.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <netlink/netlink.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/action.h>
#include <netlink/route/classifier.h>
#include <netlink/route/cls/matchall.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/plug.h>
#include <netlink/route/tc.h>

#include "netbuf-private.h"
#include "tdm-util.h"

#define PLUG_HANDLE TC_HANDLE(1, 0)
#define INGRESS_HANDLE TC_HANDLE(0xffff, 0)

struct plug {
    struct nl_sock *sk;
    int ifindex, ifbindex;
    char ifb[IF_NAMESIZE];
    struct rtnl_qdisc *qdisc;   /* the plug, for commands */
    bool ingress;               /* our ingress qdisc + filter exist */
    bool last_pending;          /* a closed epoch awaits RELEASE_ONE */
    uint64_t last_tag;          /* the newest epoch in the closed one */
    uint64_t base_sent, base_drops;     /* counters of replaced qdiscs */
};

static struct nl_sock *nl_open(void)
{
    struct nl_sock *sk = nl_socket_alloc();

    if (!sk)
        fatalx("out of memory");
    if (nl_connect(sk, NETLINK_ROUTE) < 0) {
        nl_socket_free(sk);
        return NULL;
    }
    return sk;
}

static int ifindex_of(struct nl_sock *sk, const char *name)
{
    struct rtnl_link *l = NULL;
    int idx;

    if (rtnl_link_get_kernel(sk, 0, name, &l) < 0)
        return 0;
    idx = rtnl_link_get_ifindex(l);
    rtnl_link_put(l);
    return idx;
}

static int link_del(struct nl_sock *sk, const char *name)
{
    struct rtnl_link *l = rtnl_link_alloc();
    int r;

    rtnl_link_set_name(l, name);
    r = rtnl_link_delete(sk, l);
    rtnl_link_put(l);
    return r;
}

static int ifb_create(struct nl_sock *sk, const char *name, char *err,
                      size_t errlen)
{
    struct rtnl_link *l = rtnl_link_alloc(), *up = rtnl_link_alloc();
    int r;

    rtnl_link_set_name(l, name);
    r = rtnl_link_set_type(l, "ifb");
    if (r >= 0)
        r = rtnl_link_add(sk, l, NLM_F_CREATE | NLM_F_EXCL);
    if (r < 0) {
        tdm_errf(err, errlen, "cannot create IFB %s: %s (kernel without "
                 "ifb?)", name, nl_geterror(r));
        goto out;
    }
    rtnl_link_put(l);
    l = NULL;
    /* A change names the link by index: fetch what the kernel made. */
    r = rtnl_link_get_kernel(sk, 0, name, &l);
    if (r >= 0) {
        rtnl_link_set_flags(up, IFF_UP);
        r = rtnl_link_change(sk, l, up, 0);
    }
    if (r < 0)
        tdm_errf(err, errlen, "cannot bring IFB %s up: %s", name,
                 nl_geterror(r));
out:
    if (l)
        rtnl_link_put(l);
    rtnl_link_put(up);
    return r < 0 ? -1 : 0;
}

static struct rtnl_qdisc *plug_qdisc_new(int ifindex, uint32_t limit)
{
    struct rtnl_qdisc *q = rtnl_qdisc_alloc();

    rtnl_tc_set_ifindex(TC_CAST(q), ifindex);
    rtnl_tc_set_parent(TC_CAST(q), TC_H_ROOT);
    rtnl_tc_set_handle(TC_CAST(q), PLUG_HANDLE);
    rtnl_tc_set_kind(TC_CAST(q), "plug");
    if (limit)
        rtnl_qdisc_plug_set_limit(q, (int)limit);
    return q;
}

bool tdm__netbuf_plug_available(char *why, size_t whylen)
{
    struct nl_sock *sk = nl_open();
    struct rtnl_qdisc *q = NULL;
    char name[IF_NAMESIZE], err[160];
    int idx, r;
    bool ok = false;

    if (!sk) {
        tdm_errf(why, whylen, "no rtnetlink socket");
        return false;
    }
    snprintf(name, sizeof(name), "tdmprobe%d", (int)(getpid() % 100000));
    link_del(sk, name);
    if (ifb_create(sk, name, err, sizeof(err)) < 0) {
        tdm_errf(why, whylen, "%s", err);
        goto out;
    }
    idx = ifindex_of(sk, name);
    q = plug_qdisc_new(idx, 0);
    r = rtnl_qdisc_add(sk, q, NLM_F_CREATE);
    if (r < 0)
        tdm_errf(why, whylen, "cannot create a plug qdisc: %s", nl_geterror(r));
    else
        ok = true;
    link_del(sk, name);
out:
    if (q)
        rtnl_qdisc_put(q);
    nl_socket_free(sk);
    return ok;
}

/* Named after the interface's name (not its index, which a re-created TAP
 * or vif changes), so a restart finds what a crash left. */
static void ifb_name(const char *ifname, char *buf, size_t n)
{
    snprintf(buf, n, "tdmifb%08x",
             (unsigned)tdm_crc32c(0, ifname, strlen(ifname)));
}

static int ingress_del(struct nl_sock *sk, int ifindex)
{
    struct rtnl_qdisc *q = rtnl_qdisc_alloc();
    int r;

    rtnl_tc_set_ifindex(TC_CAST(q), ifindex);
    rtnl_tc_set_parent(TC_CAST(q), TC_H_INGRESS);
    rtnl_tc_set_handle(TC_CAST(q), INGRESS_HANDLE);
    rtnl_tc_set_kind(TC_CAST(q), "ingress");
    r = rtnl_qdisc_delete(sk, q);
    rtnl_qdisc_put(q);
    return r;
}

int tdm__netbuf_plug_cleanup(const char *ifname)
{
    struct nl_sock *sk = nl_open();
    char ifb[IF_NAMESIZE];
    int idx, removed = 0;

    if (!sk)
        return -1;
    idx = ifindex_of(sk, ifname);
    ifb_name(ifname, ifb, sizeof(ifb));
    {
        /* The IFB is made before the redirect: no IFB, no redirect of ours. */
        if (ifindex_of(sk, ifb) > 0) {
            if (idx > 0 && ingress_del(sk, idx) >= 0)
                removed++;
            if (link_del(sk, ifb) >= 0)
                removed++;
            log_notice("netbuf %s: removed IFB %s and the ingress redirect "
                       "left by an earlier run", ifname, ifb);
        }
    }
    nl_socket_free(sk);
    return removed;
}

static int plug_cmd(struct tdm_netbuf *nb, int (*set)(struct rtnl_qdisc *),
                    const char *what)
{
    struct plug *p = nb->priv;
    int r = set(p->qdisc);

    if (r >= 0)
        r = rtnl_qdisc_add(p->sk, p->qdisc, NLM_F_REQUEST);
    if (r < 0) {
        log_warnx("netbuf %s: plug %s: %s", nb->ifname, what, nl_geterror(r));
        return -1;
    }
    return 0;
}

static void plug_free(struct tdm_netbuf *nb)
{
    struct plug *p = nb->priv;

    if (!p)
        return;
    if (p->qdisc)
        rtnl_qdisc_put(p->qdisc);
    if (p->sk)
        nl_socket_free(p->sk);
    free(p);
    nb->priv = NULL;
}

static int redirect_add(struct plug *p, char *err, size_t errlen)
{
    struct rtnl_qdisc *ing = rtnl_qdisc_alloc();
    struct rtnl_cls *cls = rtnl_cls_alloc();
    struct rtnl_act *act = rtnl_act_alloc();
    int r;

    rtnl_tc_set_ifindex(TC_CAST(ing), p->ifindex);
    rtnl_tc_set_parent(TC_CAST(ing), TC_H_INGRESS);
    rtnl_tc_set_handle(TC_CAST(ing), INGRESS_HANDLE);
    rtnl_tc_set_kind(TC_CAST(ing), "ingress");
    r = rtnl_qdisc_add(p->sk, ing, NLM_F_CREATE | NLM_F_EXCL);
    if (r < 0) {
        tdm_errf(err, errlen, "cannot add an ingress qdisc (%s): %s",
                 r == -NLE_EXIST ? "the interface has one already" :
                 "kernel without sch_ingress?", nl_geterror(r));
        goto out;
    }
    p->ingress = true;
    rtnl_tc_set_kind(TC_CAST(act), "mirred");
    rtnl_mirred_set_action(act, TCA_EGRESS_REDIR);
    rtnl_mirred_set_policy(act, TC_ACT_STOLEN);
    rtnl_mirred_set_ifindex(act, (uint32_t)p->ifbindex);
    rtnl_tc_set_ifindex(TC_CAST(cls), p->ifindex);
    rtnl_tc_set_parent(TC_CAST(cls), INGRESS_HANDLE);
    rtnl_tc_set_kind(TC_CAST(cls), "matchall");
    rtnl_cls_set_protocol(cls, ETH_P_ALL);
    rtnl_cls_set_prio(cls, 1);
    r = rtnl_mall_append_action(cls, act);
    if (r >= 0)
        r = rtnl_cls_add(p->sk, cls, NLM_F_CREATE | NLM_F_EXCL);
    if (r < 0)
        tdm_errf(err, errlen, "cannot redirect to %s (matchall + mirred): %s",
                 p->ifb, nl_geterror(r));
out:
    rtnl_act_put(act);
    rtnl_cls_put(cls);
    rtnl_qdisc_put(ing);
    return r < 0 ? -1 : 0;
}

static void teardown(struct tdm_netbuf *nb)
{
    struct plug *p = nb->priv;

    if (p->ingress)
        ingress_del(p->sk, p->ifindex);
    p->ingress = false;
    if (p->ifbindex > 0)
        link_del(p->sk, p->ifb);
    p->ifbindex = 0;
}

static int plug_open(struct tdm_netbuf *nb, char *err, size_t errlen)
{
    struct plug *p = tdm_calloc(1, sizeof(*p));
    uint32_t limit = nb->opts.limit ? nb->opts.limit : TDM_NETBUF_PLUG_LIMIT_DEFAULT;
    char e[200];
    int r;

    nb->priv = p;
    if (!(p->sk = nl_open())) {
        tdm_errf(err, errlen, "netbuf %s: no rtnetlink socket", nb->ifname);
        goto fail;
    }
    p->ifindex = ifindex_of(p->sk, nb->ifname);
    if (p->ifindex <= 0) {
        tdm_errf(err, errlen, "netbuf %s: no such interface", nb->ifname);
        goto fail;
    }
    tdm__netbuf_plug_cleanup(nb->ifname);
    ifb_name(nb->ifname, p->ifb, sizeof(p->ifb));
    if (ifb_create(p->sk, p->ifb, e, sizeof(e)) < 0) {
        tdm_errf(err, errlen, "netbuf %s: %s", nb->ifname, e);
        goto fail;
    }
    p->ifbindex = ifindex_of(p->sk, p->ifb);
    p->qdisc = plug_qdisc_new(p->ifbindex, limit);
    r = rtnl_qdisc_add(p->sk, p->qdisc, NLM_F_CREATE | NLM_F_REPLACE);
    if (r < 0) {
        tdm_errf(err, errlen, "netbuf %s: cannot create a plug qdisc on %s: "
                 "%s (kernel without sch_plug? use nfqueue)", nb->ifname,
                 p->ifb, nl_geterror(r));
        goto fail;
    }
    /* A new plug holds everything: open it until hold(). */
    if (plug_cmd(nb, rtnl_qdisc_plug_release_indefinite, "release") < 0 ||
        redirect_add(p, e, sizeof(e)) < 0) {
        tdm_errf(err, errlen, "netbuf %s: %s", nb->ifname, e);
        goto fail;
    }
    log_info("netbuf %s: redirected to %s (plug, at most %u bytes held)",
             nb->ifname, p->ifb, limit);
    return 0;
fail:
    if (p->sk)
        teardown(nb);
    plug_free(nb);
    return -1;
}

static int plug_hold(struct tdm_netbuf *nb, uint64_t epoch)
{
    struct plug *p = nb->priv;

    (void)epoch;
    if (plug_cmd(nb, rtnl_qdisc_plug_buffer, "buffer") < 0)
        return -1;
    p->last_pending = false;
    return 0;
}

static int plug_cut(struct tdm_netbuf *nb, uint64_t epoch)
{
    struct plug *p = nb->priv;

    (void)epoch;
    if (p->last_pending) {
        nb->st.epochs_merged++;
        return 0;
    }
    if (plug_cmd(nb, rtnl_qdisc_plug_buffer, "buffer") < 0)
        return -1;
    p->last_pending = true;
    p->last_tag = nb->epoch;    /* the epoch that just closed */
    return 0;
}

static int plug_release(struct tdm_netbuf *nb, uint64_t epoch)
{
    struct plug *p = nb->priv;

    if (!p->last_pending || p->last_tag > epoch)
        return 0;
    if (plug_cmd(nb, rtnl_qdisc_plug_release_one, "release") < 0)
        return -1;
    p->last_pending = false;
    return 0;
}

static void plug_stats(struct tdm_netbuf *nb, struct tdm_netbuf_stats *s)
{
    struct plug *p = nb->priv;
    struct nl_cache *cache = NULL;
    struct rtnl_qdisc *q;

    if (rtnl_qdisc_alloc_cache(p->sk, &cache) < 0)
        return;
    q = rtnl_qdisc_get(cache, p->ifbindex, PLUG_HANDLE);
    if (q) {
        s->held_pkts = rtnl_tc_get_stat(TC_CAST(q), RTNL_TC_QLEN);
        s->held_bytes = rtnl_tc_get_stat(TC_CAST(q), RTNL_TC_BACKLOG);
        s->released_pkts = p->base_sent +
            rtnl_tc_get_stat(TC_CAST(q), RTNL_TC_PACKETS);
        s->dropped_pkts = p->base_drops +
            rtnl_tc_get_stat(TC_CAST(q), RTNL_TC_DROPS);
        rtnl_qdisc_put(q);
    }
    nl_cache_free(cache);
}

static int plug_discard(struct tdm_netbuf *nb)
{
    struct plug *p = nb->priv;
    struct tdm_netbuf_stats s = nb->st;
    int r;

    /* sch_plug cannot drop: replace it (its queue goes with it). */
    plug_stats(nb, &s);
    p->base_sent = s.released_pkts;
    p->base_drops = s.dropped_pkts;
    r = rtnl_qdisc_delete(p->sk, p->qdisc);
    if (r >= 0)
        r = rtnl_qdisc_add(p->sk, p->qdisc, NLM_F_CREATE | NLM_F_EXCL);
    if (r < 0) {
        log_warnx("netbuf %s: replacing the plug on %s: %s", nb->ifname,
                  p->ifb, nl_geterror(r));
        return -1;
    }
    nb->st.discarded_pkts += s.held_pkts;
    p->last_pending = false;
    /* The new plug starts closed, counting into the open epoch. */
    return 0;
}

static int plug_unhold(struct tdm_netbuf *nb)
{
    struct plug *p = nb->priv;

    if (plug_cmd(nb, rtnl_qdisc_plug_release_indefinite, "release") < 0)
        return -1;
    p->last_pending = false;
    return 0;
}

static void plug_close(struct tdm_netbuf *nb, bool discard)
{
    struct plug *p = nb->priv;

    if (discard)
        plug_discard(nb);
    else
        plug_cmd(nb, rtnl_qdisc_plug_release_indefinite, "release");
    /* Let the released packets leave the IFB before it goes (100 ms). */
    for (int i = 0; i < 20 && !discard; i++) {
        struct tdm_netbuf_stats s = { 0 };
        plug_stats(nb, &s);
        if (s.held_pkts == 0)
            break;
        nanosleep(&(struct timespec){ .tv_nsec = 5000000 }, NULL);
    }
    plug_stats(nb, &nb->st);
    teardown(nb);
    (void)p;
    plug_free(nb);
}

const struct netbuf_ops tdm__netbuf_plug_ops = {
    .open = plug_open,
    .hold = plug_hold,
    .cut = plug_cut,
    .release = plug_release,
    .discard = plug_discard,
    .unhold = plug_unhold,
    .stats = plug_stats,
    .close = plug_close,
};
