/* SPDX-License-Identifier: LGPL-2.1-only */
#ifndef TDM_ENGINE_PRIVATE_H
#define TDM_ENGINE_PRIVATE_H

#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "peer.h"
#include "tdm-engine.h"
#include "tdm-proto.h"

/* ---- fence (fence.c): test-and-set on shared storage ---- */
/* Take over 'name' if the lease still holds generation 'expect': writes
 * expect+1 and returns 1; returns 0 if someone else holds a newer
 * generation; -1 on I/O error (logged). With no fence path, returns 1. */
int tdm__fence_take(const char *fence_dir, const char *name, uint64_t expect,
                    uint64_t *gen_r);
/* Record generation 'gen' for 'name' if the lease holds nothing newer. */
int tdm__fence_init(const char *fence_dir, const char *name, uint64_t gen);

/* ---- output commit (output.c) ---- */
#define TDM_NETBUF_MAX_IF 8
struct tdm_engine;
struct tdm_netbuf;
/* The domain configuration's "netbuf" key -> *kind_r (see output.c). */
int tdm__output_parse(const struct tdm_driver_ops *drv, struct tdm_cfg *cfg,
                      int *kind_r, char *err, size_t errlen);
/* Start (on) or stop holding output; -1 if kernel buffers cannot be set up
 * (protection must then be refused). */
int tdm__output_buffer(struct tdm_engine *eng, bool on, uint64_t epoch);
void tdm__output_cut(struct tdm_engine *eng, uint64_t epoch);
void tdm__output_release(struct tdm_engine *eng, uint64_t epoch);
void tdm__output_stats(struct tdm_engine *eng, struct tdm_output_stats *s);
/* Remove kernel buffer state a crashed earlier run left on the domain's
 * interfaces (a stale NFQUEUE rule would black-hole its traffic). */
void tdm__output_cleanup(struct tdm_engine *eng);
/* Close kernel buffers, releasing (discard=false) or dropping what they hold. */
void tdm__output_close(struct tdm_engine *eng, bool discard);

/* ---- disk replication (disk.c) ---- */
struct tdm__disk;
/* The domain configuration's "disk" key: checks it, copies the image path
 * to image_r ("" without a disk) and sets disk_nbd for the driver. */
int tdm__disk_parse(struct tdm_host *host, struct tdm_cfg *cfg,
                    const char *name, bool replica, char *image_r,
                    size_t image_len, char *err, size_t errlen);
/* Primary: serve the image (before the driver creates the domain). */
int tdm__disk_start(struct tdm_engine *eng, const char *image, char *err,
                    size_t errlen);
/* Backup: the replica's disk, filled by the primary's sync. */
int tdm__disk_replica(struct tdm_engine *eng, const char *image, char *err,
                      size_t errlen);
/* guest_runs: the guest runs on without tandem (released, or never
 * attached): a disk served for it (xen) stays served. */
void tdm__disk_free(struct tdm_engine *eng, bool guest_runs);
/* The disk's nbdkit was left serving by an earlier tandemd, taken over. */
bool tdm__disk_adopted(struct tdm_engine *eng);
/* Around a pause: the write log is read whatever its backlog. */
void tdm__disk_pausing(struct tdm_engine *eng, bool on);
/* In the pause of epoch next-1: changes answered from now on are next's. */
int tdm__disk_cut(struct tdm_engine *eng, uint64_t next);
void tdm__disk_forward(struct tdm_engine *eng);
int tdm__disk_sync_begin(struct tdm_engine *eng, uint64_t backup_last,
                         char *err, size_t errlen);
bool tdm__disk_syncing(struct tdm_engine *eng);
void tdm__disk_pump(struct tdm_engine *eng);
void tdm__disk_acked(struct tdm_engine *eng, uint64_t n);
void tdm__disk_unprotected(struct tdm_engine *eng);
int tdm__disk_rx_info(struct tdm_engine *eng, const struct tdm_frame *f,
                      char *err, size_t errlen);
int tdm__disk_rx(struct tdm_engine *eng, const struct tdm_frame *f, char *err,
                 size_t errlen);
int tdm__disk_commit(struct tdm_engine *eng, uint64_t epoch, char *err,
                     size_t errlen);
void tdm__disk_invalidate(struct tdm_engine *eng, const char *why);
/* Backup: wait until every committed epoch is on the replica's image
 * (tests, activation). */
void tdm__disk_drain(struct tdm_engine *eng);
int tdm__disk_activate(struct tdm_engine *eng, char *err, size_t errlen);
void tdm__disk_stats(struct tdm_engine *eng, struct tdm_disk_stats *s);
/* primary.c, called by disk.c */
void tdm__primary_disk_synced(struct tdm_engine *eng);
void tdm__primary_disk_failed(struct tdm_engine *eng, const char *why);

/* ---- engine ---- */
#define TDM_ACK_RING 64

struct tdm_engine {
    struct tdm_host *host;
    struct tdm_engine *next;

    char name[TDM_NAME_MAX];
    uint8_t uuid[16];
    uint64_t generation;
    struct tdm_cfg cfg;
    const struct tdm_driver_ops *drv;
    struct tdm_dom *dom;

    enum tdm_role role;
    enum tdm_state state;
    struct tdm_engine_params params;
    char peer_host[256];
    uint16_t peer_port;
    char peer_str[280];

    struct tdm__peer *peer;
    struct event *tick;         /* primary: epoch deadline */
    struct event *hb;           /* heartbeat + failure detection */
    struct event *retry;        /* primary: reconnect */
    struct event *stopped_ev;   /* deferred guest-stopped handling */
    struct event *precopy_ev;   /* primary: the next live-copy step */

    struct tdm_staging st;
    uint64_t epoch;             /* primary: last captured */
    uint64_t acked;             /* primary: last acked */
    bool want_epoch;            /* a tick came while the last epoch was
                                   still being written */
    bool handing_over;          /* planned failover in progress */
    bool sync_next;             /* the next epoch is the initial sync */
    bool precopied;             /* its live copy is staged (driver op
                                   precopy): the epoch keeps st as it is */
    uint64_t precopy_t0;        /* when that live copy began */
    uint32_t precopy_steps;     /* and its steps so far */
    uint64_t precopy_step_max_ns;
    bool keep_guest;            /* freed by tandemd's shutdown: release,
                                   not destroy (driver op release) */
    bool final_suspended;       /* its final epoch is taken: the domain is
                                   held suspended until the backup acks */
    uint64_t resume_ns[TDM_ACK_RING];
    uint64_t st_sent_mark;      /* primary: the peer's bytes_out once the
                                   last epoch was queued; its pages (sent
                                   by reference from st) have left when
                                   that many bytes were written */

    /* backup receive state */
    bool in_epoch;
    uint64_t rx_epoch;
    struct tdm_epoch_begin rx_begin;
    uint32_t rx_frames;
    uint64_t applied;
    uint64_t last_rx_ns;        /* backup: last byte from the primary */
    bool failover_armed;        /* backup: the link was healthy; its loss
                                   means the primary is gone */

    struct tdm_engine_metrics m;
    struct tdm__disk *disk;     /* NULL: no disk replication */

    /* output commit (output.c): 0 = the driver's device model, -1 = auto
     * (not yet probed), else a tdm_netbuf_kind */
    int netbuf_kind;
    struct tdm_netbuf *netbufs[TDM_NETBUF_MAX_IF];
    int n_netbufs;
    bool netbufs_open;
};

struct tdm_host {
    struct event_base *base;
    struct evdns_base *dns;
    struct evconnlistener *listener;
    uint16_t port;
    struct tdm_host_config cfg;
    struct tdm_host_hooks hooks;
    struct tdm_engine *engines;     /* creation order */
    struct tdm__pending *pending;   /* accepted, HELLO not yet seen */
    bool stopping;                  /* tdm_host_free: the loop is done */
};

void tdm__engine_changed(struct tdm_engine *eng);
void tdm__engine_set_state(struct tdm_engine *eng, enum tdm_state st);
struct tdm_engine *tdm__engine_new(struct tdm_host *host, struct tdm_cfg *cfg,
                                   const struct tdm_driver_ops *drv,
                                   enum tdm_role role);
void tdm__engine_free(struct tdm_engine *eng);

/* primary.c */
int tdm__primary_protect(struct tdm_engine *eng, const char *host,
                         uint16_t port, const struct tdm_engine_params *p,
                         char *err, size_t errlen);
void tdm__primary_unprotect(struct tdm_engine *eng, bool tell_peer);
int tdm__primary_failover(struct tdm_engine *eng, char *err, size_t errlen);

/* backup.c: a verified HELLO arrived on peer p for this host. */
void tdm__backup_hello(struct tdm_host *host, struct tdm__peer *p,
                       const struct tdm_frame *f);
void tdm__backup_stop(struct tdm_engine *eng);

#endif
