/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * libs/netbuf: the mechanism-independent part (argument checks, epoch
 * bookkeeping shared by both mechanisms, the command runner used to drive
 * iptables).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "netbuf-private.h"
#include "tdm-util.h"

extern char **environ;

int tdm_netbuf_kind_parse(const char *s)
{
    if (!strcmp(s, "nfqueue"))
        return TDM_NETBUF_NFQUEUE;
    if (!strcmp(s, "plug"))
        return TDM_NETBUF_PLUG;
    return -1;
}

const char *tdm_netbuf_kind_name(enum tdm_netbuf_kind k)
{
    return k == TDM_NETBUF_PLUG ? "plug" : k == TDM_NETBUF_NFQUEUE ? "nfqueue" : "?";
}

int tdm_netbuf_probe(char *why, size_t whylen)
{
    char pwhy[160];

    if (tdm__netbuf_plug_available(pwhy, sizeof(pwhy))) {
        tdm_errf(why, whylen, "sch_plug is available");
        return TDM_NETBUF_PLUG;
    }
    tdm_errf(why, whylen, "sch_plug is not available (%s): using nfqueue", pwhy);
    return TDM_NETBUF_NFQUEUE;
}

static bool valid_ifname(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n >= IF_NAMESIZE)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        /* What iproute2 accepts, minus characters a shell or iptables
         * would treat specially. */
        if (c <= ' ' || c == '/' || c == ':' || c == '"' || c == '\'' ||
            c == '\\' || c >= 0x7f)
            return false;
    }
    return true;
}

int tdm_netbuf_open(struct event_base *base, const char *ifname,
                    const struct tdm_netbuf_opts *opts,
                    struct tdm_netbuf **nb_r, char *err, size_t errlen)
{
    struct tdm_netbuf *nb;

    if (!valid_ifname(ifname))
        return tdm_errf(err, errlen, "netbuf: bad interface name \"%s\"", ifname);
    if (opts->kind != TDM_NETBUF_NFQUEUE && opts->kind != TDM_NETBUF_PLUG)
        return tdm_errf(err, errlen, "netbuf: unknown mechanism %d", opts->kind);
    nb = tdm_calloc(1, sizeof(*nb));
    nb->base = base;
    tdm_strlcpy(nb->ifname, ifname, sizeof(nb->ifname));
    nb->opts = *opts;
    nb->ops = opts->kind == TDM_NETBUF_PLUG ? &tdm__netbuf_plug_ops
                                            : &tdm__netbuf_nfqueue_ops;
    if (nb->ops->open(nb, err, errlen) < 0) {
        free(nb);
        return -1;
    }
    log_info("netbuf %s: %s ready (not holding yet)", ifname,
             tdm_netbuf_kind_name(opts->kind));
    *nb_r = nb;
    return 0;
}

int tdm_netbuf_hold(struct tdm_netbuf *nb, uint64_t epoch)
{
    if (nb->holding)
        return tdm_netbuf_cut(nb, epoch);
    if (nb->ops->hold(nb, epoch) < 0)
        return -1;
    nb->holding = true;
    nb->epoch = epoch;
    log_info("netbuf %s: holding output from epoch %llu", nb->ifname,
             (unsigned long long)epoch);
    return 0;
}

int tdm_netbuf_cut(struct tdm_netbuf *nb, uint64_t epoch)
{
    if (!nb->holding)
        return 0;
    if (epoch <= nb->epoch) {
        log_warnx("netbuf %s: cut to epoch %llu after %llu", nb->ifname,
                  (unsigned long long)epoch, (unsigned long long)nb->epoch);
        return -1;
    }
    if (nb->ops->cut(nb, epoch) < 0)
        return -1;
    nb->epoch = epoch;
    return 0;
}

int tdm_netbuf_release(struct tdm_netbuf *nb, uint64_t epoch)
{
    if (!nb->holding)
        return 0;
    if (epoch >= nb->epoch) {
        /* The open epoch has no checkpoint yet: releasing it would let out
         * output of state the backup does not have. */
        log_warnx("netbuf %s: release of epoch %llu refused (epoch %llu is "
                  "still open)", nb->ifname, (unsigned long long)epoch,
                  (unsigned long long)nb->epoch);
        return -1;
    }
    if (epoch <= nb->st.released_epoch)
        return 0;
    if (nb->ops->release(nb, epoch) < 0)
        return -1;
    nb->st.released_epoch = epoch;
    return 0;
}

int tdm_netbuf_discard(struct tdm_netbuf *nb)
{
    if (!nb->holding)
        return 0;
    return nb->ops->discard(nb);
}

int tdm_netbuf_unhold(struct tdm_netbuf *nb)
{
    if (!nb->holding)
        return 0;
    if (nb->ops->unhold(nb) < 0)
        return -1;
    nb->holding = false;
    log_info("netbuf %s: output passes unheld", nb->ifname);
    return 0;
}

void tdm_netbuf_stats(struct tdm_netbuf *nb, struct tdm_netbuf_stats *s)
{
    nb->ops->stats(nb, &nb->st);
    *s = nb->st;
}

const char *tdm_netbuf_ifname(const struct tdm_netbuf *nb)
{
    return nb->ifname;
}

enum tdm_netbuf_kind tdm_netbuf_kind(const struct tdm_netbuf *nb)
{
    return nb->opts.kind;
}

void tdm_netbuf_close(struct tdm_netbuf *nb, bool discard)
{
    if (!nb)
        return;
    nb->ops->close(nb, discard);
    log_info("netbuf %s: closed (%llu packets released, %llu discarded, "
             "%llu dropped by the kernel)", nb->ifname,
             (unsigned long long)nb->st.released_pkts,
             (unsigned long long)nb->st.discarded_pkts,
             (unsigned long long)nb->st.dropped_pkts);
    free(nb);
}

int tdm_netbuf_cleanup(const char *ifname)
{
    int a, b;

    if (!valid_ifname(ifname)) {
        log_warnx("netbuf: bad interface name \"%s\"", ifname);
        return -1;
    }
    a = tdm__netbuf_nfqueue_cleanup(ifname);
    b = tdm__netbuf_plug_cleanup(ifname);
    if (a < 0 || b < 0)
        return -1;
    return a + b;
}
