/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The nfqueue mechanism: iptables/ip6tables rules divert what arrives on
 * the interface (what the domain sends) to an NFQUEUE; the packets stay in
 * the kernel while tandem keeps only their ids, tagged with the epoch that
 * was open when they were read. An epoch is released with one batch
 * verdict (NFQNL_MSG_VERDICT_BATCH accepts every id up to the given one):
 * ids grow in arrival order and epochs are assigned in arrival order, so
 * "every id up to the last of epoch N" is exactly "epochs <= N".
 *
 * A packet read after a cut is tagged with the new epoch even if the guest
 * sent it a moment before the pause: it is held one epoch longer, never
 * released early. cut() drains the socket first to keep that rare.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#include "netbuf-private.h"
#include "tdm-spawn.h"
#include "tdm-util.h"

#define NFQ_COPY_RANGE 128              /* headers only: ids and lengths */
#define NFQ_QUEUES_TRIED 64
#define NFQ_RCVBUF (32 << 20)

struct seg {
    uint64_t epoch;
    uint32_t last_id;
    uint64_t pkts, bytes;
};

struct nfq {
    struct mnl_socket *nl;
    unsigned portid;
    unsigned queue;
    struct event *ev;
    bool rules;                 /* our rules are installed */
    struct seg *segs;           /* held, oldest first: [head, tail) */
    size_t head, tail, cap;
    uint32_t last_id;           /* last id read */
    bool have_id;
    char *buf;                  /* receive buffer */
    size_t buflen;
    int verdict_errors;
};

static const char *const ipt_cmds[] = { "iptables", "ip6tables" };

static void comment_of(const char *ifname, char *c, size_t n)
{
    snprintf(c, n, "tandem-netbuf:%s", ifname);
}

/* ---- rules ---- */

static int rules_apply(struct tdm_netbuf *nb, const char *op, bool quiet)
{
    struct nfq *q = nb->priv;
    char comment[64], qnum[16], err[256];
    int rc = 0;

    comment_of(nb->ifname, comment, sizeof(comment));
    snprintf(qnum, sizeof(qnum), "%u", q->queue);
    for (size_t c = 0; c < TDM_ARRAY_SIZE(ipt_cmds); c++) {
        char *routed[] = { (char *)ipt_cmds[c], "-w", "-t", "mangle",
            (char *)op, "PREROUTING", "-i", nb->ifname, "-m", "comment",
            "--comment", comment, "-j", "NFQUEUE", "--queue-num", qnum, NULL };
        char *bridged[] = { (char *)ipt_cmds[c], "-w", "-t", "mangle",
            (char *)op, "PREROUTING", "-m", "physdev", "--physdev-in",
            nb->ifname, "-m", "comment", "--comment", comment, "-j",
            "NFQUEUE", "--queue-num", qnum, NULL };
        char **argvs[] = { routed, bridged };

        for (int k = 0; k < 2; k++)
            if (tdm_run(argvs[k], TDM_HELPER_TIMEOUT_MS, NULL, 0, err,
                        sizeof(err)) != 0) {
                if (!quiet)
                    log_warnx("netbuf %s: %s", nb->ifname, err);
                rc = -1;
            }
    }
    return rc;
}

/* Bridged packets reach iptables only through br_netfilter. */
static int bridge_check(struct tdm_netbuf *nb)
{
    static const char *const knobs[] = {
        "/proc/sys/net/bridge/bridge-nf-call-iptables",
        "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
    };
    char path[128];
    struct stat sb;

    snprintf(path, sizeof(path), "/sys/class/net/%s/brport", nb->ifname);
    if (stat(path, &sb) < 0)
        return 0;               /* not a bridge port: the routed rule does it */
    for (size_t i = 0; i < TDM_ARRAY_SIZE(knobs); i++) {
        FILE *f = fopen(knobs[i], "r+");
        int v = -1;

        if (!f) {
            log_warnx("netbuf %s: the interface is a bridge port and %s is "
                      "missing: load br_netfilter (modprobe br_netfilter)",
                      nb->ifname, knobs[i]);
            return -1;
        }
        if (fscanf(f, "%d", &v) != 1 || v != 1) {
            rewind(f);
            if (fputs("1\n", f) < 0 || fflush(f) != 0) {
                log_warn("netbuf %s: cannot enable %s", nb->ifname, knobs[i]);
                fclose(f);
                return -1;
            }
            log_notice("netbuf %s: enabled %s (bridged packets must pass "
                       "iptables to be held)", nb->ifname, knobs[i]);
        }
        fclose(f);
    }
    return 0;
}

int tdm__netbuf_nfqueue_cleanup(const char *ifname)
{
    char comment[64], err[256];
    char *out = tdm_malloc(1 << 16);
    int removed = 0;

    comment_of(ifname, comment, sizeof(comment));
    for (size_t c = 0; c < TDM_ARRAY_SIZE(ipt_cmds); c++) {
        char *list[] = { (char *)ipt_cmds[c], "-w", "-t", "mangle", "-S",
                         "PREROUTING", NULL };
        char *line, *save = NULL;

        if (tdm_run(list, TDM_HELPER_TIMEOUT_MS, out, 1 << 16, err,
                    sizeof(err)) != 0) {
            log_warnx("netbuf %s: %s", ifname, err);
            free(out);
            return -1;
        }
        for (line = strtok_r(out, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
            char *argv[48], *tok, *s2 = NULL, *copy;
            int n = 0;
            bool ours = false;

            if (strncmp(line, "-A PREROUTING ", 14))
                continue;
            copy = tdm_strdup(line);
            argv[n++] = (char *)ipt_cmds[c];
            argv[n++] = "-w";
            argv[n++] = "-t";
            argv[n++] = "mangle";
            for (tok = strtok_r(copy, " ", &s2); tok && n < 46;
                 tok = strtok_r(NULL, " ", &s2)) {
                size_t tl = strlen(tok);

                /* -S quotes some arguments; argv must not carry quotes. */
                if (tl >= 2 && tok[0] == '"' && tok[tl - 1] == '"') {
                    tok[tl - 1] = '\0';
                    tok++;
                }
                if (!strcmp(tok, "-A"))
                    tok = "-D";
                if (!strcmp(tok, comment))
                    ours = true;
                argv[n++] = tok;
            }
            argv[n] = NULL;
            if (ours) {
                if (tdm_run(argv, TDM_HELPER_TIMEOUT_MS, NULL, 0, err,
                            sizeof(err)) != 0)
                    log_warnx("netbuf %s: removing a stale rule: %s", ifname, err);
                else
                    removed++;
            }
            free(copy);
        }
    }
    free(out);
    if (removed)
        log_notice("netbuf %s: removed %d rule(s) left by an earlier run",
                   ifname, removed);
    return removed;
}

/* ---- netlink ---- */

static int send_cfg(struct nfq *q, unsigned queue, uint8_t cmd, bool params,
                    uint32_t maxlen)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, queue);
    ssize_t r;

    nlh->nlmsg_flags |= NLM_F_ACK;
    if (cmd)
        nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, cmd);
    if (params) {
        nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, NFQ_COPY_RANGE);
        nfq_nlmsg_cfg_put_qmaxlen(nlh, maxlen);
        /* GSO packets whole; never NFQA_CFG_F_FAIL_OPEN: a full queue must
         * drop (counted), not let output out early. */
        mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(NFQA_CFG_F_GSO));
        mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_GSO));
    }
    if (mnl_socket_sendto(q->nl, nlh, nlh->nlmsg_len) < 0)
        return -1;
    /* The ack (or error) comes before any packet of this queue. */
    r = mnl_socket_recvfrom(q->nl, buf, sizeof(buf));
    if (r < 0)
        return -1;
    return mnl_cb_run(buf, (size_t)r, 0, q->portid, NULL, NULL) < 0 ? -1 : 0;
}

static int send_verdict(struct tdm_netbuf *nb, uint32_t id, int verdict)
{
    struct nfq *q = nb->priv;
    char buf[256];
    struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_VERDICT_BATCH, q->queue);

    nfq_nlmsg_verdict_put(nlh, (int)id, verdict);
    if (mnl_socket_sendto(q->nl, nlh, nlh->nlmsg_len) < 0) {
        log_warn("netbuf %s: batch verdict up to id %u", nb->ifname, id);
        return -1;
    }
    return 0;
}

static struct seg *seg_for(struct nfq *q, uint64_t epoch)
{
    if (q->tail > q->head && q->segs[q->tail - 1].epoch == epoch)
        return &q->segs[q->tail - 1];
    if (q->tail == q->cap) {
        if (q->head > 0) {
            memmove(q->segs, q->segs + q->head,
                    (q->tail - q->head) * sizeof(*q->segs));
            q->tail -= q->head;
            q->head = 0;
        } else {
            q->cap = q->cap ? q->cap * 2 : 16;
            q->segs = tdm_realloc(q->segs, q->cap * sizeof(*q->segs));
        }
    }
    q->segs[q->tail] = (struct seg){ .epoch = epoch };
    return &q->segs[q->tail++];
}

static int on_packet(const struct nlmsghdr *nlh, void *arg)
{
    struct tdm_netbuf *nb = arg;
    struct nfq *q = nb->priv;
    struct nlattr *attr[NFQA_MAX + 1] = { 0 };
    struct nfqnl_msg_packet_hdr *ph;
    uint32_t id, len = 0;
    struct seg *s;

    if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR]) {
        log_warnx("netbuf %s: unreadable queue message", nb->ifname);
        return MNL_CB_OK;
    }
    ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
    id = ntohl(ph->packet_id);
    if (attr[NFQA_CAP_LEN])
        len = ntohl(mnl_attr_get_u32(attr[NFQA_CAP_LEN]));
    else if (attr[NFQA_PAYLOAD])
        len = mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]);
    q->last_id = id;
    q->have_id = true;
    if (!nb->holding) {
        /* Passing through (after unhold, while the rules go away). */
        send_verdict(nb, id, NF_ACCEPT);
        nb->st.released_pkts++;
        return MNL_CB_OK;
    }
    s = seg_for(q, nb->epoch);
    s->last_id = id;
    s->pkts++;
    s->bytes += len;
    nb->st.held_pkts++;
    nb->st.held_bytes += len;
    return MNL_CB_OK;
}

static void drain(struct tdm_netbuf *nb)
{
    struct nfq *q = nb->priv;

    for (;;) {
        ssize_t r = recv(mnl_socket_get_fd(q->nl), q->buf, q->buflen,
                         MSG_DONTWAIT);

        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_warn("netbuf %s: queue socket", nb->ifname);
            return;
        }
        if (r == 0)
            return;
        if (mnl_cb_run(q->buf, (size_t)r, 0, q->portid, on_packet, nb) < 0 &&
            q->verdict_errors++ < 10)
            /* A verdict the kernel refused comes back as an error here. */
            log_warn("netbuf %s: queue message", nb->ifname);
    }
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    drain(arg);
}

static void nfqb_free(struct tdm_netbuf *nb)
{
    struct nfq *q = nb->priv;

    if (!q)
        return;
    if (q->ev)
        event_free(q->ev);
    if (q->nl)
        mnl_socket_close(q->nl);
    free(q->segs);
    free(q->buf);
    free(q);
    nb->priv = NULL;
}

static int nfqb_open(struct tdm_netbuf *nb, char *err, size_t errlen)
{
    struct nfq *q = tdm_calloc(1, sizeof(*q));
    unsigned base = nb->opts.queue ? nb->opts.queue : TDM_NETBUF_QUEUE_BASE;
    uint32_t limit = nb->opts.limit ? nb->opts.limit : TDM_NETBUF_NFQ_LIMIT_DEFAULT;
    int one = 1, rcv = NFQ_RCVBUF;
    int fd;

    nb->priv = q;
    if (tdm__netbuf_nfqueue_cleanup(nb->ifname) < 0) {
        tdm_errf(err, errlen, "netbuf %s: cannot list iptables rules "
                 "(is iptables installed and are we root?)", nb->ifname);
        goto fail;
    }
    q->buflen = 0xffff + (MNL_SOCKET_BUFFER_SIZE / 2);
    q->buf = tdm_malloc(q->buflen);
    q->nl = mnl_socket_open(NETLINK_NETFILTER);
    if (!q->nl || mnl_socket_bind(q->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        tdm_errf(err, errlen, "netbuf %s: netfilter netlink socket: %s",
                 nb->ifname, strerror(errno));
        goto fail;
    }
    q->portid = mnl_socket_get_portid(q->nl);
    fd = mnl_socket_get_fd(q->nl);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one));
    for (unsigned i = 0; i < NFQ_QUEUES_TRIED; i++) {
        if (send_cfg(q, base + i, NFQNL_CFG_CMD_BIND, false, 0) == 0) {
            q->queue = base + i;
            break;
        }
        if (errno != EBUSY) {
            tdm_errf(err, errlen, "netbuf %s: binding NFQUEUE %u: %s "
                     "(kernel without nfnetlink_queue?)", nb->ifname,
                     base + i, strerror(errno));
            goto fail;
        }
        if (i + 1 == NFQ_QUEUES_TRIED) {
            tdm_errf(err, errlen, "netbuf %s: NFQUEUE %u..%u all taken",
                     nb->ifname, base, base + i);
            goto fail;
        }
    }
    if (send_cfg(q, q->queue, 0, true, limit) < 0) {
        tdm_errf(err, errlen, "netbuf %s: configuring NFQUEUE %u: %s",
                 nb->ifname, q->queue, strerror(errno));
        send_cfg(q, q->queue, NFQNL_CFG_CMD_UNBIND, false, 0);
        goto fail;
    }
    q->ev = event_new(nb->base, fd, EV_READ | EV_PERSIST, on_readable, nb);
    event_add(q->ev, NULL);
    log_info("netbuf %s: NFQUEUE %u, at most %u packets held", nb->ifname,
             q->queue, limit);
    return 0;
fail:
    nfqb_free(nb);
    return -1;
}

static int nfqb_hold(struct tdm_netbuf *nb, uint64_t epoch)
{
    struct nfq *q = nb->priv;

    (void)epoch;
    if (bridge_check(nb) < 0)
        return -1;
    if (!q->rules) {
        if (rules_apply(nb, "-I", false) < 0) {
            rules_apply(nb, "-D", true);
            return -1;
        }
        q->rules = true;
    }
    return 0;
}

static int nfqb_cut(struct tdm_netbuf *nb, uint64_t epoch)
{
    (void)epoch;
    /* Tag what already arrived with the epoch that is closing. */
    drain(nb);
    return 0;
}

static int nfqb_release(struct tdm_netbuf *nb, uint64_t epoch)
{
    struct nfq *q = nb->priv;
    bool any = false;
    uint32_t upto = 0;

    while (q->head < q->tail && q->segs[q->head].epoch <= epoch) {
        struct seg *s = &q->segs[q->head++];
        upto = s->last_id;
        any = true;
        nb->st.released_pkts += s->pkts;
        nb->st.held_pkts -= s->pkts;
        nb->st.held_bytes -= s->bytes;
    }
    if (q->head == q->tail)
        q->head = q->tail = 0;
    return any ? send_verdict(nb, upto, NF_ACCEPT) : 0;
}

static int nfqb_drop_all(struct tdm_netbuf *nb, int verdict)
{
    struct nfq *q = nb->priv;
    uint64_t n = 0;

    if (q->head == q->tail)
        return 0;
    for (size_t i = q->head; i < q->tail; i++)
        n += q->segs[i].pkts;
    if (send_verdict(nb, q->segs[q->tail - 1].last_id, verdict) < 0)
        return -1;
    if (verdict == NF_DROP)
        nb->st.discarded_pkts += n;
    else
        nb->st.released_pkts += n;
    nb->st.held_pkts = nb->st.held_bytes = 0;
    q->head = q->tail = 0;
    return 0;
}

static int nfqb_discard(struct tdm_netbuf *nb)
{
    drain(nb);
    return nfqb_drop_all(nb, NF_DROP);
}

static int nfqb_unhold(struct tdm_netbuf *nb)
{
    struct nfq *q = nb->priv;
    int rc = 0;

    /* Rules first, so nothing new is queued; then everything queued. */
    if (q->rules && rules_apply(nb, "-D", false) < 0)
        rc = -1;
    q->rules = false;
    drain(nb);
    if (nfqb_drop_all(nb, NF_ACCEPT) < 0)
        rc = -1;
    return rc;
}

static void nfqb_stats(struct tdm_netbuf *nb, struct tdm_netbuf_stats *s)
{
    struct nfq *q = nb->priv;
    FILE *f = fopen("/proc/net/netfilter/nfnetlink_queue", "r");
    unsigned qn, portid, qlen, mode, range, qdrop, udrop;
    char line[256];

    if (!f)
        return;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "%u %u %u %u %u %u %u", &qn, &portid, &qlen, &mode,
                   &range, &qdrop, &udrop) == 7 && qn == q->queue) {
            s->dropped_pkts = (uint64_t)qdrop + udrop;
            break;
        }
    fclose(f);
}

static void nfqb_close(struct tdm_netbuf *nb, bool discard)
{
    struct nfq *q = nb->priv;

    if (q->rules)
        rules_apply(nb, "-D", false);
    q->rules = false;
    drain(nb);
    nfqb_stats(nb, &nb->st);
    nfqb_drop_all(nb, discard ? NF_DROP : NF_ACCEPT);
    nb->holding = false;
    send_cfg(q, q->queue, NFQNL_CFG_CMD_UNBIND, false, 0);
    nfqb_free(nb);
}

const struct netbuf_ops tdm__netbuf_nfqueue_ops = {
    .open = nfqb_open,
    .hold = nfqb_hold,
    .cut = nfqb_cut,
    .release = nfqb_release,
    .discard = nfqb_discard,
    .unhold = nfqb_unhold,
    .stats = nfqb_stats,
    .close = nfqb_close,
};
