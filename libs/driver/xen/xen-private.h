/* SPDX-License-Identifier: LGPL-2.1-only */
/* The xen driver's insides, shared by xen.c (configuration, the primary,
 * the ops) and xen-restore.c (the backup's replica). */
#ifndef TDM_XEN_PRIVATE_H
#define TDM_XEN_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <xenctrl.h>
#include <xenforeignmemory.h>
#include <xenstore.h>
#include <xentoollog.h>
#include <libxl.h>

#include "driver.h"
#include "xen-stream.h"

/* Slots beyond the domain's memory: special pages (console, xenstore,
 * ioreq), ACPI tables, frames Xen maps into the physmap. */
#define XEN_SLOT_SLACK 2048u

enum xen_suspend {
    XEN_SUSPEND_COOP,       /* the guest suspends itself (control/shutdown) */
    XEN_SUSPEND_PAUSE,      /* the hypervisor pauses it */
};

struct xen_conf {
    char name[64];          /* tandem's name of the domain */
    char domain[64];        /* xl's name or domid of the running domain */
    uint64_t memory_mib;
    enum xen_suspend suspend;
    uint64_t suspend_timeout_ms;
    /* A replicated disk (xen-disk.c): "" without */
    char disk_nbd[108];     /* the engine's NBD socket, NAME.nbd */
    char disk_link[108];    /* backup: NAME.dev, the link the restore uses */
    char disk_vdev[8];      /* the guest's name of it */
    bool disk_adopted;      /* primary: served by an earlier tandemd's nbdkit */
};

/* One queued piece of the restore stream. */
struct xen_chunk {
    struct xen_chunk *next;
    /* An epoch taken whole from the engine (xen_replica_apply_take): its
     * pages go into the stream straight from the staging buffer, as
     * PAGE_DATA records of pfns[], ahead of b. */
    struct tdm_staging pages;
    uint64_t *pfns;
    struct tdm_xbuf b;
    size_t bytes;           /* of stream, for the queue's bound */
};

/* The backup's replica: Xen's stock restore in a child process, fed
 * through a pipe by a writer thread (xen-restore.c). */
struct xen_replica {
    bool started;           /* child forked, stream head written */
    pid_t child;
    int data_fd, ctl_fd;
    uint16_t xen_major, xen_minor;
    uint64_t *slot_pfn;     /* [npages]: the guest frame of each slot */
    uint32_t nslots;
    uint64_t epochs;

    pthread_t writer;
    bool writer_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct xen_chunk *head, *tail;
    size_t queued;          /* bytes */
    bool quit, failed, busy;
    uint64_t written;       /* bytes into the pipe */
    bool abort;             /* destroy: stop writing now */
    char incoming[80];      /* the replica's domain name while restoring */
};

struct tdm_dom {
    struct xen_conf conf;
    bool replica;           /* a backup's replica not yet activated */
    struct event_base *base;
    struct tdm_dom_events ev;
    struct event *watch;    /* polls the domain's state (guest_stopped) */
    bool stop_reported;
    uint64_t npages;        /* slots: the staging capacity */

    xentoollog_logger logger;
    xc_interface *xch;
    xenforeignmemory_handle *fmem;
    struct xs_handle *xs;
    uint32_t domid;
    bool have_domid;
    char domname[64];       /* xl's name of the running domain */
    char nbd_dev[32];       /* the disk's /dev/nbdN, "" if not connected */
    bool disk_plugged;      /* primary: tandem added the disk */

    /* primary */
    char *config_json;      /* libxl_domain_config_to_json */
    uint64_t p2m_size;
    xc_hypercall_buffer_t bm_hbuf;
    unsigned long *bm;
    int bm_pages;
    bool logdirty, full_next, suspended, deferred;
    struct tdm_xslots slots;
    uint32_t *pos_of_slot;  /* [npages] full epoch: staging index of a slot */
    struct tdm_xbuf blob;
    struct tdm_xbuf cpuid, msr;
    uint8_t *ctx;
    uint32_t ctx_cap;
    xen_pfn_t *batch;
    uint64_t *batch_pfn;
    int *errs;
    uint64_t suspend_t0, last_pause_ns, unmappable;
    uint64_t probed;            /* frames the last full copy tried */
    uint64_t copy_pfn;          /* the full copy's next frame */
    uint64_t copy_t0;           /* and when it began */

    /* backup */
    struct xen_replica r;
};

/* xen.c */
void xen_logger_init(xentoollog_logger *lg);
int xen_open_handles(struct tdm_dom *d, bool fmem, char *err, size_t errlen);

/* xen-restore.c */
void xen_replica_init(struct tdm_dom *d);
int xen_replica_apply(struct tdm_dom *d, const struct tdm_staging *st);
int xen_replica_apply_take(struct tdm_dom *d, struct tdm_staging *st);
int xen_replica_activate(struct tdm_dom *d);
void xen_replica_destroy(struct tdm_dom *d);
/* Destroy the running domain d->domid with libxl (devices and all). */
void xen_destroy_domain(struct tdm_dom *d);
/* Run fn(ctx, domid, arg) in a child process with a libxl context of its
 * own (libxl runs hotplug scripts and waits for them: SIGCHLD is not
 * tandemd's to give). Returns fn's libxl error code, or ERROR_FAIL. */
int xen_libxl_child(const char *name,
                    int (*fn)(libxl_ctx *ctx, uint32_t domid, void *arg),
                    uint32_t domid, void *arg);

/* xen-disk.c */
struct tdm_cfg;
int xen_disk_conf(struct tdm_cfg *cfg, struct xen_conf *c, char *err,
                  size_t errlen);
/* Connect a free /dev/nbdN to the NBD socket sock; its path in dev. */
int xen_nbd_attach(const char *sock, char *dev, size_t devlen, char *err,
                   size_t errlen);
void xen_nbd_detach(const char *dev);
/* Add (or remove) d->nbd_dev as disk_vdev of domain d->domid. */
int xen_disk_plug(struct tdm_dom *d, bool add, char *err, size_t errlen);
/* Primary: connect the disk and add it to the running domain. */
int xen_disk_attach(struct tdm_dom *d, char *err, size_t errlen);
/* Backup, at the failover: connect the served replica disk, point
 * disk_link at it. */
int xen_disk_replica_link(struct tdm_dom *d, char *err, size_t errlen);
/* Restore child: the disk at disk_vdev becomes disk_link. */
int xen_disk_rewrite(libxl_domain_config *dc, const struct xen_conf *c,
                     char *err, size_t errlen);

#endif
