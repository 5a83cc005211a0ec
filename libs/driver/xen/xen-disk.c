/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The xen driver's replicated disk (issue 5; the engine's side is
 * libs/engine/disk.c).
 *
 * The engine serves the domain's image with nbdkit and our plugin on the
 * unix socket disk_nbd. Xen reaches it through dom0's kernel NBD client:
 * nbd-client connects a free /dev/nbdN to that socket (netlink: the kernel
 * holds the connection, no process stays), and blkback gives the device to
 * the guest as a virtual disk (disk_vdev, xvdb by default).
 *
 * Primary: the domain runs already when tandem attaches to it, so the disk
 * is hot-plugged (libxl_device_disk_add), before the domain's libxl
 * configuration is read for the backup: the configuration the backup
 * rebuilds the domain from has the disk in it.
 *
 * Backup: Xen's restore adds a domain's disks only when the stream ends,
 * that is at the failover (libxl's domcreate_rebuild_done). So the restore
 * child rewrites the disk at disk_vdev to a path of its own host, the
 * symlink disk_link (disk_nbd with .dev for .nbd), with the "block" hotplug
 * script named (libxl would stat a phy path at the start of the restore,
 * and it does not exist yet). At the failover, after the engine serves the
 * replica's image, the driver connects a /dev/nbdM to it and points the
 * link there, and only then ends the stream.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxl.h>

#include "tdm-cfg.h"
#include "tdm-spawn.h"
#include "tdm-util.h"
#include "xen-private.h"

#define NBD_DEVS_MAX 256        /* /dev/nbd0 .. : the module's nbds_max */
#define NBD_TRIES 4             /* devices tried when another one takes ours */

/* xvda .. xvdzz, as xl names a PV disk */
static bool valid_vdev(const char *v)
{
    size_t n = strlen(v);

    if (n < 4 || n > 5 || strncmp(v, "xvd", 3))
        return false;
    for (size_t i = 3; i < n; i++)
        if (v[i] < 'a' || v[i] > 'z')
            return false;
    return true;
}

int xen_disk_conf(struct tdm_cfg *cfg, struct xen_conf *c, char *err,
                  size_t errlen)
{
    const char *s = tdm_cfg_get(cfg, "disk_nbd");
    const char *v = tdm_cfg_get(cfg, "disk_vdev");
    const char *a = tdm_cfg_get(cfg, "disk_adopted");
    size_t n;

    if (!s) {
        if (v)
            return tdm_errf(err, errlen, "disk_vdev = '%s': there is no disk "
                            "(disk = IMAGE) to attach", v);
        return 0;
    }
    n = strlen(s);
    if (s[0] != '/' || n < 5 || strcmp(s + n - 4, ".nbd") ||
        !tdm_strlcpy(c->disk_nbd, s, sizeof(c->disk_nbd)))
        return tdm_errf(err, errlen, "disk_nbd = '%s': the absolute path of "
                        "tandem's NBD socket, NAME.nbd (set by tandem)", s);
    snprintf(c->disk_link, sizeof(c->disk_link), "%.*s.dev", (int)(n - 4), s);
    if (!v)
        v = "xvdb";
    if (!valid_vdev(v))
        return tdm_errf(err, errlen, "disk_vdev = '%s': expected the guest's "
                        "name for the disk, xvda to xvdzz", v);
    tdm_strlcpy(c->disk_vdev, v, sizeof(c->disk_vdev));
    if (a && strcmp(a, "yes"))
        return tdm_errf(err, errlen, "disk_adopted = '%s': set by tandem", a);
    c->disk_adopted = a != NULL;
    return 0;
}

/* /dev/nbdN is free: no connection (no pid), no size. */
static bool nbd_free(int i)
{
    char p[64], v[32] = "";
    FILE *f;

    snprintf(p, sizeof(p), "/sys/block/nbd%d/pid", i);
    if (access(p, F_OK) == 0)
        return false;
    snprintf(p, sizeof(p), "/sys/block/nbd%d/size", i);
    if (!(f = fopen(p, "r")))
        return false;
    if (!fgets(v, sizeof(v), f))
        v[0] = '\0';
    fclose(f);
    return atoll(v) == 0;
}

int xen_nbd_attach(const char *sock, char *dev, size_t devlen, char *err,
                   size_t errlen)
{
    char out[256] = "", dpath[32];
    int tried = 0, r;

    if (access("/sys/module/nbd", F_OK) < 0)
        return tdm_errf(err, errlen, "the nbd kernel module is not loaded "
                        "(modprobe nbd; tandemd.service loads it)");
    for (int i = 0; i < NBD_DEVS_MAX && tried < NBD_TRIES; i++) {
        char *argv[] = {"nbd-client", "-unix", (char *)sock, dpath,
                        "-b", "512", NULL};

        snprintf(dpath, sizeof(dpath), "/dev/nbd%d", i);
        if (access(dpath, F_OK) < 0)
            break;
        if (!nbd_free(i))
            continue;
        tried++;
        r = tdm_run(argv, TDM_HELPER_TIMEOUT_MS, NULL, 0, out, sizeof(out));
        if (r < 0)
            return tdm_errf(err, errlen, "%s (install nbd-client)", out);
        if (r == 0) {
            tdm_strlcpy(dev, dpath, devlen);
            return 0;
        }
        /* another client may have taken it meanwhile: the next one */
        log_info("%s", out);
    }
    if (!tried)
        return tdm_errf(err, errlen, "no free /dev/nbd device (the nbd "
                        "module's nbds_max)");
    return tdm_errf(err, errlen, "nbd-client could not connect %s to a "
                    "device (last: %s)", sock, out);
}

void xen_nbd_detach(const char *dev)
{
    char err[256];
    char *argv[] = {"nbd-client", "-d", (char *)dev, NULL};

    if (tdm_run(argv, TDM_HELPER_TIMEOUT_MS, NULL, 0, err, sizeof(err)))
        log_warnx("nbd-client -d %s: %s", dev, err);
}

/* ---- libxl in a child process ---- */

struct disk_op {
    const char *pdev, *vdev;
    bool add;
};

static int disk_op(libxl_ctx *ctx, uint32_t domid, void *arg)
{
    const struct disk_op *o = arg;
    libxl_device_disk disk;
    int rc;

    libxl_device_disk_init(&disk);
    disk.pdev_path = strdup(o->pdev);
    disk.vdev = strdup(o->vdev);
    disk.backend = LIBXL_DISK_BACKEND_PHY;
    disk.format = LIBXL_DISK_FORMAT_RAW;
    disk.readwrite = 1;
    rc = o->add ? libxl_device_disk_add(ctx, domid, &disk, NULL)
                : libxl_device_disk_remove(ctx, domid, &disk, NULL);
    libxl_device_disk_dispose(&disk);
    return rc;
}

int xen_disk_plug(struct tdm_dom *d, bool add, char *err, size_t errlen)
{
    struct disk_op o = {d->nbd_dev, d->conf.disk_vdev, add};
    int rc = xen_libxl_child(d->conf.name, disk_op, d->domid, &o);

    if (rc == ERROR_DEVICE_EXISTS)
        return tdm_errf(err, errlen, "domain %u has a disk at %s already "
                        "(disk_vdev names the one tandem adds)", d->domid,
                        d->conf.disk_vdev);
    if (rc)
        return tdm_errf(err, errlen, "libxl could not %s disk %s (%s) %s "
                        "domain %u (libxl error %d; see the daemon's log)",
                        add ? "add" : "remove", d->conf.disk_vdev, d->nbd_dev,
                        add ? "to" : "from", d->domid, rc);
    return 0;
}

/* The device at vdev in the domain's libxl configuration, if it is a
 * connected /dev/nbdN: the disk an earlier tandemd added. */
static bool find_attached(struct tdm_dom *d)
{
    libxl_ctx *ctx = NULL;
    libxl_domain_config dc;
    bool found = false;

    libxl_domain_config_init(&dc);
    if (libxl_ctx_alloc(&ctx, LIBXL_VERSION, 0, &d->logger) ||
        libxl_retrieve_domain_configuration(ctx, d->domid, &dc, NULL))
        goto out;
    for (int i = 0; i < dc.num_disks && !found; i++) {
        const libxl_device_disk *k = &dc.disks[i];
        int n = -1, end = 0;
        char p[64];

        if (!k->vdev || strcmp(k->vdev, d->conf.disk_vdev) || !k->pdev_path ||
            sscanf(k->pdev_path, "/dev/nbd%d%n", &n, &end) != 1 ||
            k->pdev_path[end] || n < 0)
            continue;
        snprintf(p, sizeof(p), "/sys/block/nbd%d/pid", n);
        if (access(p, F_OK) == 0) {
            tdm_strlcpy(d->nbd_dev, k->pdev_path, sizeof(d->nbd_dev));
            found = true;
        }
    }
out:
    libxl_domain_config_dispose(&dc);
    libxl_ctx_free(ctx);
    return found;
}

/* The primary: the disk into the running domain. */
int xen_disk_attach(struct tdm_dom *d, char *err, size_t errlen)
{
    char e2[256];

    /* tandem restarted while the guest ran on: its disk is in place */
    if (d->conf.disk_adopted && find_attached(d)) {
        d->disk_plugged = true;
        log_info("%s: domain %u has its disk %s on %s from before tandemd "
                 "restarted", d->conf.name, d->domid, d->conf.disk_vdev,
                 d->nbd_dev);
        return 0;
    }

    if (xen_nbd_attach(d->conf.disk_nbd, d->nbd_dev, sizeof(d->nbd_dev), e2,
                       sizeof(e2)) < 0)
        return tdm_errf(err, errlen, "disk: %s", e2);
    if (xen_disk_plug(d, true, e2, sizeof(e2)) < 0) {
        xen_nbd_detach(d->nbd_dev);
        d->nbd_dev[0] = '\0';
        return tdm_errf(err, errlen, "disk: %s", e2);
    }
    d->disk_plugged = true;
    log_info("%s: disk %s on %s added to domain %u as %s", d->conf.name,
             d->conf.disk_nbd, d->nbd_dev, d->domid, d->conf.disk_vdev);
    return 0;
}

/* The backup, at the failover: the replica's served image on a device of
 * this host, behind the link the restore's configuration names. */
int xen_disk_replica_link(struct tdm_dom *d, char *err, size_t errlen)
{
    char e2[256];

    if (xen_nbd_attach(d->conf.disk_nbd, d->nbd_dev, sizeof(d->nbd_dev), e2,
                       sizeof(e2)) < 0)
        return tdm_errf(err, errlen, "disk: %s", e2);
    if ((unlink(d->conf.disk_link) < 0 && errno != ENOENT) ||
        symlink(d->nbd_dev, d->conf.disk_link) < 0) {
        tdm_errf(err, errlen, "disk: link %s -> %s: %s", d->conf.disk_link,
                 d->nbd_dev, strerror(errno));
        xen_nbd_detach(d->nbd_dev);
        d->nbd_dev[0] = '\0';
        return -1;
    }
    log_info("%s: the replica's disk %s on %s (%s), for %s", d->conf.name,
             d->conf.disk_nbd, d->nbd_dev, d->conf.disk_link,
             d->conf.disk_vdev);
    return 0;
}

/* In the restore child: the disk at vdev is this host's link. */
int xen_disk_rewrite(libxl_domain_config *dc, const struct xen_conf *c,
                     char *err, size_t errlen)
{
    for (int i = 0; i < dc->num_disks; i++) {
        libxl_device_disk *k = &dc->disks[i];
        if (!k->vdev || strcmp(k->vdev, c->disk_vdev))
            continue;
        free(k->pdev_path);
        free(k->script);
        k->pdev_path = strdup(c->disk_link);
        k->script = strdup("block");
        k->backend = LIBXL_DISK_BACKEND_PHY;
        k->format = LIBXL_DISK_FORMAT_RAW;
        return 0;
    }
    return tdm_errf(err, errlen, "the primary's domain has no disk %s",
                    c->disk_vdev);
}
