/* SPDX-License-Identifier: LGPL-2.1-only */
/* tandemd: the tandem dom0 daemon. See tandemd(8). */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/thread.h>

#include "tandemd.h"

int tdmd_parse_listen(const char *v, struct tdmd_conf *c, char *err,
                      size_t errlen);

static void usage(FILE *f)
{
    fprintf(f,
        "usage: tandemd [-fdVh] [-c FILE] [-s SOCKET] [-l ADDR[:PORT]|none]\n"
        "  -f           stay in the foreground, log to stderr\n"
        "  -d           debug logging\n"
        "  -c FILE      configuration (default %s/tandem/tandem.conf)\n"
        "  -s SOCKET    control socket (default %s/tandem/tandemd.sock)\n"
        "  -l ADDR      replication listener (default 0.0.0.0:%d), or none\n"
        "  -V           print the version\n"
        "  -h           this help\n",
        TDM_SYSCONFDIR, TDM_RUNSTATEDIR, TDM_DEFAULT_PORT);
}

static void changed(struct tdm_engine *eng, void *arg)
{
    /* States are logged by the engine; published in xenstore here. */
    tdmd_xs_changed(arg, eng);
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
    struct tdmd *d = arg;

    log_info("signal %d: shutting down", (int)sig);
    event_base_loopbreak(d->base);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    struct tdmd *d = arg;
    struct tdmd_conf c = d->conf;
    char err[512];

    if (tdmd_conf_load(&c, d->conf_path, d->conf_explicit, err,
                       sizeof(err)) < 0) {
        log_warnx("reload refused, configuration unchanged: %s", err);
        return;
    }
    if (strcmp(c.listen_addr, d->conf.listen_addr) ||
        c.listen_port != d->conf.listen_port ||
        c.listen_off != d->conf.listen_off || strcmp(c.socket, d->conf.socket) ||
        strcmp(c.fence, d->conf.fence) || c.xenstore != d->conf.xenstore ||
        strcmp(c.xenstore_root, d->conf.xenstore_root) ||
        strcmp(c.disk_dir, d->conf.disk_dir) ||
        strcmp(c.nbdkit, d->conf.nbdkit) ||
        strcmp(c.nbdkit_plugin, d->conf.nbdkit_plugin) ||
        c.disk_hold_max != d->conf.disk_hold_max)
        log_notice("reload: listen, socket, fence, xenstore and the disk "
                   "settings take effect at the next start");
    d->conf.log_level = c.log_level;
    d->conf.accept_replicas = c.accept_replicas;
    d->conf.params = c.params;
    tdm_log_set_level(c.log_level);
    log_info("reloaded %s: log level %d, replicas %s, interval %u ms, "
             "heartbeat %u ms, timeout %u ms", d->conf_path, c.log_level,
             c.accept_replicas ? "accepted" : "refused", c.params.interval_ms,
             c.params.heartbeat_ms, c.params.timeout_ms);
}

int main(int argc, char **argv)
{
    struct tdmd d;
    struct tdm_host_config hc;
    struct tdm_host_hooks hooks = {.changed = changed};
    struct event *sigs[4] = {0};
    const char *opt_sock = NULL, *opt_listen = NULL;
    bool foreground = false, debug = false;
    char err[512];
    int ch, rc = 1;

    memset(&d, 0, sizeof(d));
    d.conf_path = TDM_SYSCONFDIR "/tandem/tandem.conf";
    while ((ch = getopt(argc, argv, "fdc:s:l:Vh")) != -1) {
        switch (ch) {
        case 'f': foreground = true; break;
        case 'd': debug = true; break;
        case 'c': d.conf_path = optarg; d.conf_explicit = true; break;
        case 's': opt_sock = optarg; break;
        case 'l': opt_listen = optarg; break;
        case 'V': printf("tandemd %s\n", PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "tandemd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    tdmd_conf_default(&d.conf);
    if (tdmd_conf_load(&d.conf, d.conf_path, d.conf_explicit, err,
                       sizeof(err)) < 0) {
        fprintf(stderr, "tandemd: %s\n", err);
        return 2;
    }
    if (opt_sock) {
        if (opt_sock[0] != '/' && opt_sock[0] != '.') {
            fprintf(stderr, "tandemd: -s '%s': give a path\n", opt_sock);
            return 2;
        }
        if (!tdm_strlcpy(d.conf.socket, opt_sock, sizeof(d.conf.socket) - 4)) {
            fprintf(stderr, "tandemd: -s: path too long\n");
            return 2;
        }
    }
    if (opt_listen && tdmd_parse_listen(opt_listen, &d.conf, err,
                                        sizeof(err)) < 0) {
        fprintf(stderr, "tandemd: -l: %s\n", err);
        return 2;
    }
    tdm_log_init("tandemd", foreground, debug ? TDM_LOG_DEBUG
                                              : d.conf.log_level);
    signal(SIGPIPE, SIG_IGN);
    if (evthread_use_pthreads() < 0)
        fatalx("libevent without thread support");
    d.base = event_base_new();
    if (!d.base)
        fatalx("event_base_new");

    tdm_host_config_default(&hc);
    if (d.conf.listen_off)
        hc.listen_addr[0] = '\0';
    else
        tdm_strlcpy(hc.listen_addr, d.conf.listen_addr,
                    sizeof(hc.listen_addr));
    hc.listen_port = (uint16_t)d.conf.listen_port;
    hc.accept_replicas = d.conf.accept_replicas;
    tdm_strlcpy(hc.fence_path, d.conf.fence, sizeof(hc.fence_path));
    tdm_strlcpy(hc.disk_dir, d.conf.disk_dir, sizeof(hc.disk_dir));
    tdm_strlcpy(hc.nbdkit, d.conf.nbdkit, sizeof(hc.nbdkit));
    tdm_strlcpy(hc.nbdkit_plugin, d.conf.nbdkit_plugin,
                sizeof(hc.nbdkit_plugin));
    hc.disk_hold_max = d.conf.disk_hold_max;
    hooks.arg = &d;
    if (tdm_host_new(d.base, &hc, &hooks, &d.host) < 0)
        goto out;
    if (ctl_listen(&d, err, sizeof(err)) < 0) {
        log_warnx("%s", err);
        goto out;
    }
    if (tdmd_xs_start(&d, err, sizeof(err)) < 0) {
        log_warnx("%s", err);
        goto out;
    }
    sigs[0] = evsignal_new(d.base, SIGTERM, on_term, &d);
    sigs[1] = evsignal_new(d.base, SIGINT, on_term, &d);
    sigs[2] = evsignal_new(d.base, SIGHUP, on_hup, &d);
    for (int i = 0; i < 3; i++)
        evsignal_add(sigs[i], NULL);
    log_info("tandemd %s ready (drivers: %s)", PACKAGE_VERSION,
             tdm_driver_names());
    event_base_dispatch(d.base);
    rc = 0;
out:
    for (int i = 0; i < 3; i++)
        if (sigs[i])
            event_free(sigs[i]);
    ctl_close(&d);
    tdm_host_free(d.host);
    tdmd_xs_stop(&d);
    event_base_free(d.base);
    return rc;
}
