/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * xl-tandem xs-protect, xs-unprotect, xs-list: protection settings kept in
 * xenstore (tandem-xenstore(7)), which tandemd watches and applies. They
 * outlive a restart of tandemd, unlike 'create' and 'protect' on the
 * control socket.
 */
#include "config.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tdm-util.h"
#include "xl-tandem.h"

#ifdef HAVE_XEN
#include <errno.h>
#include <xenstore.h>

#include "tdm-xenvif.h"
#include "tdm-xsconf.h"
#include "tdm-xsconf-xs.h"

static const char *xs_root(void)
{
    const char *r = getenv("TANDEM_XENSTORE_ROOT");

    return r && r[0] == '/' ? r : TDM_XS_ROOT;
}

static struct xs_handle *xs_connect(void)
{
    struct xs_handle *h = xs_open(0);

    if (!h)
        fprintf(stderr, "xl-tandem: cannot connect to xenstore: %s (run in "
                "dom0, as root)\n", strerror(errno));
    return h;
}

static char *xs_get(struct xs_handle *h, const char *fmt, ...)
    TDM_PRINTF(2, 3);
static char *xs_get(struct xs_handle *h, const char *fmt, ...)
{
    char path[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    return xs_read(h, XBT_NULL, path, NULL);
}

int cmd_xs_protect(struct xlt *x, int argc, char **argv)
{
    const char *keys[8], *vals[8];
    const char *name = NULL, *mem = NULL, *susp = NULL, *nb = NULL;
    const char *iv = NULL, *hb = NULL, *to = NULL;
    char memb[32], err[512], *xname = NULL, *smax = NULL;
    struct tdm_xsconf c;
    struct xs_handle *h;
    uint32_t domid;
    size_t n = 0;
    int ch, rc = XLT_EXIT_FAIL;

    while ((ch = getopt(argc, argv, "+n:m:i:H:t:S:N:")) != -1) {
        switch (ch) {
        case 'n': name = optarg; break;
        case 'm': mem = optarg; break;
        case 'i': iv = optarg; break;
        case 'H': hb = optarg; break;
        case 't': to = optarg; break;
        case 'S': susp = optarg; break;
        case 'N': nb = optarg; break;
        default: return xlt_usage_error("xs-protect", "unknown option");
        }
    }
    if (argc - optind < 1 || argc - optind > 2)
        return xlt_usage_error("xs-protect", "xs-protect takes a domain and "
                               "optionally a backup host");
    if (!(h = xs_connect()))
        return XLT_EXIT_FAIL;
    /* The domain must exist here: its domid gives its name and memory. */
    if (tdm_xen_domid(argv[optind], &domid, err, sizeof(err)) < 0) {
        fprintf(stderr, "xl-tandem: %s\n", err);
        goto out;
    }
    xname = xs_get(h, "/local/domain/%u/name", domid);
    if (!name)
        name = xname;
    if (!name) {
        fprintf(stderr, "xl-tandem: domain %u has no name in xenstore: "
                "give one with -n\n", domid);
        goto out;
    }
    if (!mem) {
        unsigned long long kib;
        smax = xs_get(h, "/local/domain/%u/memory/static-max", domid);
        if (!smax || sscanf(smax, "%llu", &kib) != 1 || !kib) {
            fprintf(stderr, "xl-tandem: domain %u: no memory/static-max in "
                    "xenstore: give its memory with -m MiB\n", domid);
            goto out;
        }
        snprintf(memb, sizeof(memb), "%llu", (kib + 1023) / 1024);
        mem = memb;
    }
    /* The entry names the domain as the user did (a domid stays one). */
    keys[n] = "domain"; vals[n++] = argv[optind];
    keys[n] = "memory"; vals[n++] = mem;
    if (argc - optind == 2) {
        keys[n] = "backup"; vals[n++] = argv[optind + 1];
    }
    if (susp) { keys[n] = "suspend"; vals[n++] = susp; }
    if (nb) { keys[n] = "netbuf"; vals[n++] = nb; }
    if (iv) { keys[n] = "interval"; vals[n++] = iv; }
    if (hb) { keys[n] = "heartbeat"; vals[n++] = hb; }
    if (to) { keys[n] = "timeout"; vals[n++] = to; }
    /* Checked as tandemd will check it, before anything is written. */
    if (tdm_xsconf_parse(name, keys, vals, n, &c, err, sizeof(err)) < 0) {
        xs_close(h);
        free(xname);
        free(smax);
        return xlt_usage_error("xs-protect", "%s", err);
    }
    if (tdm_xs_write_entry(h, xs_root(), &c, err, sizeof(err)) < 0) {
        fprintf(stderr, "xl-tandem: %s\n", err);
        goto out;
    }
    {
        char msg[512];
        if (c.protect)
            snprintf(msg, sizeof(msg), "%s: written to %s/domains/%s: "
                     "tandemd protects it with backup %s", c.name, xs_root(),
                     c.name, c.backup);
        else
            snprintf(msg, sizeof(msg), "%s: written to %s/domains/%s: "
                     "tandemd attaches to it, unprotected", c.name,
                     xs_root(), c.name);
        x->out->done(msg);
    }
    rc = 0;
out:
    free(xname);
    free(smax);
    xs_close(h);
    return rc;
}

int cmd_xs_unprotect(struct xlt *x, int argc, char **argv)
{
    struct xs_handle *h;
    char err[512], msg[300], path[300];
    char *v;

    if (argc != 2)
        return xlt_usage_error("xs-unprotect", "xs-unprotect takes a name");
    if (!tdm_valid_name(argv[1]))
        return xlt_usage_error("xs-unprotect", "'%s' is not a domain name",
                               argv[1]);
    if (!(h = xs_connect()))
        return XLT_EXIT_FAIL;
    snprintf(path, sizeof(path), "%s/domains/%s", xs_root(), argv[1]);
    if (!(v = xs_read(h, XBT_NULL, path, NULL))) {
        fprintf(stderr, "xl-tandem: no entry %s\n", path);
        xs_close(h);
        return XLT_EXIT_FAIL;
    }
    free(v);
    if (tdm_xs_remove_entry(h, xs_root(), argv[1], err, sizeof(err)) < 0) {
        fprintf(stderr, "xl-tandem: %s\n", err);
        xs_close(h);
        return XLT_EXIT_FAIL;
    }
    xs_close(h);
    snprintf(msg, sizeof(msg), "%s: entry removed: tandemd unprotects it "
             "and leaves it running", argv[1]);
    x->out->done(msg);
    return 0;
}

int cmd_xs_list(struct xlt *x, int argc, char **argv)
{
    struct xs_handle *h;
    char path[300], **names;
    unsigned n = 0;

    if (argc != 1)
        return xlt_usage_error("xs-list", "xs-list takes no arguments");
    if (!(h = xs_connect()))
        return XLT_EXIT_FAIL;
    snprintf(path, sizeof(path), "%s/domains", xs_root());
    names = xs_directory(h, XBT_NULL, path, &n);
    printf("%-20s %-20s %-24s %-12s %s\n", "Name", "Domain", "Backup",
           "State", "Error");
    for (unsigned i = 0; i < n; i++) {
        struct tdm_xsconf c;
        char err[512];
        char *st = xs_get(h, "%s/status/%s/state", xs_root(), names[i]);
        char *er = xs_get(h, "%s/status/%s/error", xs_root(), names[i]);

        if (tdm_xs_read_entry(h, xs_root(), names[i], &c, err,
                              sizeof(err)) < 0) {
            printf("%-20s %-20s %-24s %-12s %s\n", names[i], "-", "-",
                   st ? st : "-", err);
        } else {
            printf("%-20s %-20s %-24s %-12s %s\n", c.name, c.domain,
                   c.protect ? c.backup : "-", st && *st ? st : "-",
                   er && *er ? er : "");
        }
        free(st);
        free(er);
    }
    free(names);
    xs_close(h);
    return 0;
}

#else   /* !HAVE_XEN */

static int no_xen(const char *cmd)
{
    fprintf(stderr, "xl-tandem: %s: this xl-tandem was built without the "
            "Xen libraries (libxen-dev)\n", cmd);
    return XLT_EXIT_FAIL;
}

int cmd_xs_protect(struct xlt *x, int argc, char **argv)
{
    return no_xen("xs-protect");
}

int cmd_xs_unprotect(struct xlt *x, int argc, char **argv)
{
    return no_xen("xs-unprotect");
}

int cmd_xs_list(struct xlt *x, int argc, char **argv)
{
    return no_xen("xs-list");
}

#endif
