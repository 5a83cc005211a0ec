/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * netbuf-ctl: drive one libs/netbuf instance by hand or from a test.
 *
 *   netbuf-ctl [--kind nfqueue|plug] [--limit N] [--queue N] IFNAME
 *   netbuf-ctl --cleanup IFNAME
 *   netbuf-ctl --probe
 *   netbuf-ctl --xen-vifs DOMAIN   (name or domid: its vifs in dom0, from
 *        xenstore, one per line)
 *   netbuf-ctl --auto HZ ACK_MS [--kind K] IFNAME   (a model of the engine:
 *        cut every 1/HZ s, release each epoch ACK_MS after its cut)
 *
 * Commands on stdin, one per line: hold E | cut E | release E | discard |
 * unhold | stats | close | close-discard. Each answers "ok ..." or
 * "error ..." on stdout. EOF closes (releasing what is held).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "tdm-netbuf.h"
#include "tdm-util.h"
#ifdef HAVE_XEN
#include "tdm-xenvif.h"
#endif

static struct tdm_netbuf *nb;
static struct event_base *base;
static char line[256];
static size_t linelen;

static void print_stats(void)
{
    struct tdm_netbuf_stats s;

    tdm_netbuf_stats(nb, &s);
    printf("ok stats held=%" PRIu64 " held_bytes=%" PRIu64 " released=%" PRIu64
           " discarded=%" PRIu64 " dropped=%" PRIu64 " merged=%" PRIu64
           " released_epoch=%" PRIu64 "\n", s.held_pkts, s.held_bytes,
           s.released_pkts, s.discarded_pkts, s.dropped_pkts, s.epochs_merged,
           s.released_epoch);
}

static int epoch_arg(const char *a, uint64_t *e)
{
    if (!a || tdm_parse_u64(a, 1, UINT64_MAX / 2, e) < 0) {
        printf("error: an epoch number (1 or more) is needed\n");
        return -1;
    }
    return 0;
}

static void command(char *l)
{
    char *cmd = strtok(l, " \t"), *arg = strtok(NULL, " \t");
    uint64_t e;
    int rc;

    if (!cmd)
        return;
    if (!strcmp(cmd, "hold") || !strcmp(cmd, "cut") || !strcmp(cmd, "release")) {
        if (epoch_arg(arg, &e) < 0)
            goto out;
        rc = !strcmp(cmd, "hold") ? tdm_netbuf_hold(nb, e) :
             !strcmp(cmd, "cut") ? tdm_netbuf_cut(nb, e) :
             tdm_netbuf_release(nb, e);
        printf(rc < 0 ? "error %s %s (see the log)\n" : "ok %s %s\n", cmd, arg);
    } else if (!strcmp(cmd, "discard")) {
        printf(tdm_netbuf_discard(nb) < 0 ? "error discard\n" : "ok discard\n");
    } else if (!strcmp(cmd, "unhold")) {
        printf(tdm_netbuf_unhold(nb) < 0 ? "error unhold\n" : "ok unhold\n");
    } else if (!strcmp(cmd, "stats")) {
        print_stats();
    } else if (!strcmp(cmd, "close") || !strcmp(cmd, "close-discard")) {
        print_stats();
        tdm_netbuf_close(nb, !strcmp(cmd, "close-discard"));
        nb = NULL;
        printf("ok %s\n", cmd);
        fflush(stdout);
        event_base_loopbreak(base);
        return;
    } else {
        printf("error: unknown command \"%s\"\n", cmd);
    }
out:
    fflush(stdout);
}

static void on_stdin(evutil_socket_t fd, short what, void *arg)
{
    char buf[512];
    ssize_t r = read(fd, buf, sizeof(buf));

    (void)what;
    (void)arg;
    if (r <= 0) {
        if (nb) {
            tdm_netbuf_close(nb, false);
            nb = NULL;
        }
        event_base_loopbreak(base);
        return;
    }
    for (ssize_t i = 0; i < r && nb; i++) {
        if (buf[i] == '\n') {
            line[linelen] = '\0';
            command(line);
            linelen = 0;
        } else if (linelen + 1 < sizeof(line)) {
            line[linelen++] = buf[i];
        }
    }
}

/* --auto: the engine's timing without a VM. */
static uint64_t auto_epoch;
static int auto_ack_ms;
static struct event *auto_tick;

struct pending_release { uint64_t epoch; struct event *ev; };

static void on_auto_release(evutil_socket_t fd, short what, void *arg)
{
    struct pending_release *p = arg;

    (void)fd;
    (void)what;
    if (nb)
        tdm_netbuf_release(nb, p->epoch);
    event_free(p->ev);
    free(p);
}

static void on_auto_tick(evutil_socket_t fd, short what, void *arg)
{
    struct pending_release *p = tdm_calloc(1, sizeof(*p));
    struct timeval tv = { auto_ack_ms / 1000, (auto_ack_ms % 1000) * 1000 };

    (void)fd;
    (void)what;
    (void)arg;
    p->epoch = auto_epoch;
    tdm_netbuf_cut(nb, ++auto_epoch);
    p->ev = evtimer_new(base, on_auto_release, p);
    evtimer_add(p->ev, &tv);
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (nb) {
        tdm_netbuf_close(nb, false);
        nb = NULL;
    }
    event_base_loopbreak(base);
}

static void usage(void)
{
    fprintf(stderr, "usage: netbuf-ctl [--kind nfqueue|plug] [--limit N] "
            "[--queue N] [--auto HZ ACK_MS] IFNAME\n"
            "       netbuf-ctl --cleanup IFNAME | --probe\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "kind", required_argument, NULL, 'k' },
        { "limit", required_argument, NULL, 'l' },
        { "queue", required_argument, NULL, 'q' },
        { "cleanup", no_argument, NULL, 'c' },
        { "probe", no_argument, NULL, 'p' },
        { "auto", required_argument, NULL, 'a' },
        { "verbose", no_argument, NULL, 'v' },
        { "xen-vifs", required_argument, NULL, 'x' },
        { NULL, 0, NULL, 0 },
    };
    struct tdm_netbuf_opts o = { .kind = TDM_NETBUF_NFQUEUE };
    char err[256];
    uint64_t v;
    int c, kind, cleanup = 0, probe = 0, hz = 0, level = TDM_LOG_WARNING;
    struct event *ev_in, *ev_int, *ev_term;

    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'k':
            if ((kind = tdm_netbuf_kind_parse(optarg)) < 0) {
                fprintf(stderr, "netbuf-ctl: --kind: nfqueue or plug, not %s\n", optarg);
                return 2;
            }
            o.kind = (enum tdm_netbuf_kind)kind;
            break;
        case 'l':
        case 'q':
            if (tdm_parse_u64(optarg, 1, UINT32_MAX, &v) < 0) {
                fprintf(stderr, "netbuf-ctl: bad number %s\n", optarg);
                return 2;
            }
            if (c == 'l')
                o.limit = (uint32_t)v;
            else
                o.queue = (unsigned)v;
            break;
        case 'c': cleanup = 1; break;
        case 'p': probe = 1; break;
        case 'v': level = TDM_LOG_DEBUG; break;
        case 'x': {
#ifdef HAVE_XEN
            char names[16][16];
            uint32_t domid;
            int n;

            if (tdm_xen_domid(optarg, &domid, err, sizeof(err)) < 0 ||
                (n = tdm_xen_vifs(domid, names, 16, err, sizeof(err))) < 0) {
                fprintf(stderr, "netbuf-ctl: %s\n", err);
                return 1;
            }
            for (int i = 0; i < n; i++)
                printf("%s\n", names[i]);
            return 0;
#else
            fprintf(stderr, "netbuf-ctl: built without the Xen libraries\n");
            return 1;
#endif
        }
        case 'a':
            if (tdm_parse_u64(optarg, 1, 1000, &v) < 0 || optind >= argc ||
                tdm_parse_u64(argv[optind], 0, 10000, (uint64_t[]){ 0 }) < 0) {
                fprintf(stderr, "netbuf-ctl: --auto HZ(1-1000) ACK_MS(0-10000)\n");
                return 2;
            }
            hz = (int)v;
            tdm_parse_u64(argv[optind++], 0, 10000, &v);
            auto_ack_ms = (int)v;
            break;
        default: usage();
        }
    }
    tdm_log_init("netbuf-ctl", true, level);
    if (probe) {
        kind = tdm_netbuf_probe(err, sizeof(err));
        printf("%s (%s)\n", tdm_netbuf_kind_name((enum tdm_netbuf_kind)kind), err);
        return 0;
    }
    if (optind + 1 != argc)
        usage();
    if (cleanup) {
        int n = tdm_netbuf_cleanup(argv[optind]);
        printf("removed %d\n", n);
        return n < 0;
    }
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    if (tdm_netbuf_open(base, argv[optind], &o, &nb, err, sizeof(err)) < 0) {
        fprintf(stderr, "netbuf-ctl: %s\n", err);
        return 1;
    }
    printf("ok open %s %s\n", argv[optind], tdm_netbuf_kind_name(o.kind));
    fflush(stdout);
    ev_int = evsignal_new(base, SIGINT, on_signal, NULL);
    ev_term = evsignal_new(base, SIGTERM, on_signal, NULL);
    event_add(ev_int, NULL);
    event_add(ev_term, NULL);
    ev_in = event_new(base, 0, EV_READ | EV_PERSIST, on_stdin, NULL);
    if (!hz)                    /* --auto runs until a signal */
        event_add(ev_in, NULL);
    if (hz) {
        struct timeval tv = { 0, 1000000 / hz };
        auto_epoch = 1;
        if (tdm_netbuf_hold(nb, auto_epoch) < 0)
            return 1;
        auto_tick = event_new(base, -1, EV_PERSIST, on_auto_tick, NULL);
        event_add(auto_tick, &tv);
    }
    event_base_dispatch(base);
    if (nb)
        tdm_netbuf_close(nb, false);
    return 0;
}
