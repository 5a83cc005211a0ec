/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Network output commit on a kernel interface: hold the packets a protected
 * domain sends through one interface, per epoch, inside the kernel, and let
 * an epoch's packets out only when the backup has acknowledged the
 * checkpoint that produced them.
 *
 * Two mechanisms behind one interface:
 *
 *  - nfqueue: the interface's incoming IPv4/IPv6 packets (what the domain
 *    sends) are diverted to an NFQUEUE by iptables/ip6tables rules in the
 *    mangle table's PREROUTING chain (-i IF for the routed path,
 *    -m physdev --physdev-in IF for a bridge port, through br_netfilter).
 *    The packets stay in the kernel; tandem reads their ids and releases an
 *    epoch with one batch verdict. Non-IP frames (ARP) are not held.
 *
 *  - plug: the interface's ingress is redirected (ingress qdisc, matchall
 *    filter, mirred egress redirect) to an IFB whose root qdisc is sch_plug,
 *    driven over netlink with libnl-route-3 as Xen's libxl does. sch_plug
 *    knows two epochs (the closed one and the open one), so when more than
 *    one closed epoch is unacknowledged, the later ones are merged into the
 *    open one: that only delays their release, never advances it.
 *
 * Everything an instance creates carries the interface's name (rule comment
 * "tandem-netbuf:IF", IFB "tdmifb<crc32c of the name>") so that a restart after a crash
 * removes it (tdm_netbuf_open cleans up first, and logs what it removed).
 *
 * A full queue drops packets in the kernel and counts them (stats.dropped):
 * the sender's TCP retransmits; nothing is released early. All calls run on
 * the caller's event loop thread.
 */
#ifndef TDM_NETBUF_H
#define TDM_NETBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct tdm_netbuf;

enum tdm_netbuf_kind {
    TDM_NETBUF_NFQUEUE = 1,
    TDM_NETBUF_PLUG = 2,
};

struct tdm_netbuf_opts {
    enum tdm_netbuf_kind kind;
    /* nfqueue: first queue number tried (the next free one is used);
     * 0 means the default (TDM_NETBUF_QUEUE_BASE). */
    unsigned queue;
    /* The most packets (nfqueue) held at once, or bytes (plug); 0 means the
     * default. Beyond it the kernel drops and counts. */
    uint32_t limit;
};

#define TDM_NETBUF_QUEUE_BASE 7000u
#define TDM_NETBUF_NFQ_LIMIT_DEFAULT 65536u
#define TDM_NETBUF_PLUG_LIMIT_DEFAULT (64u << 20)

struct tdm_netbuf_stats {
    uint64_t held_pkts;         /* now held (nfqueue: exact; plug: qlen) */
    uint64_t held_bytes;
    uint64_t released_pkts;     /* let out after their epoch's ack */
    uint64_t discarded_pkts;    /* dropped by a discard */
    uint64_t dropped_pkts;      /* dropped by the kernel: queue full */
    uint64_t epochs_merged;     /* plug: closed epochs merged into the open one */
    uint64_t released_epoch;    /* highest epoch released */
};

/* "nfqueue" / "plug" -> kind; -1 if neither. */
int tdm_netbuf_kind_parse(const char *s);
const char *tdm_netbuf_kind_name(enum tdm_netbuf_kind k);
/* Which mechanism this kernel offers: plug if sch_plug can be created, else
 * nfqueue. Says why in err (for the log line) and returns the kind, or -1
 * if neither is available. */
int tdm_netbuf_probe(char *why, size_t whylen);

/* Prepare buffering of ifname (removing what a crashed earlier instance
 * left). Packets pass until tdm_netbuf_hold. Returns 0, or -1 with err. */
int tdm_netbuf_open(struct event_base *base, const char *ifname,
                    const struct tdm_netbuf_opts *opts,
                    struct tdm_netbuf **nb_r, char *err, size_t errlen);
/* Start holding: packets from now on belong to 'epoch'. */
int tdm_netbuf_hold(struct tdm_netbuf *nb, uint64_t epoch);
/* Packets from now on belong to 'epoch' (called inside the pause). */
int tdm_netbuf_cut(struct tdm_netbuf *nb, uint64_t epoch);
/* Let out every packet of epochs <= epoch, in order. */
int tdm_netbuf_release(struct tdm_netbuf *nb, uint64_t epoch);
/* Drop every packet not yet released; keep holding. */
int tdm_netbuf_discard(struct tdm_netbuf *nb);
/* Let everything out and stop holding (packets pass from now on). */
int tdm_netbuf_unhold(struct tdm_netbuf *nb);
void tdm_netbuf_stats(struct tdm_netbuf *nb, struct tdm_netbuf_stats *s);
const char *tdm_netbuf_ifname(const struct tdm_netbuf *nb);
enum tdm_netbuf_kind tdm_netbuf_kind(const struct tdm_netbuf *nb);
/* Stop holding (releasing what is held unless discard=true), remove every
 * rule, qdisc and IFB this instance made, free. Idempotent on NULL. */
void tdm_netbuf_close(struct tdm_netbuf *nb, bool discard);

/* Remove what a crashed instance left for ifname (also done by open).
 * Returns the number of objects removed, or -1. */
int tdm_netbuf_cleanup(const char *ifname);

#endif
