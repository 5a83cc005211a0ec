/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The epoch engine: hypervisor-agnostic primary and backup state machines on
 * libevent. A tdm_host is everything one tandemd runs: the domains it owns
 * (as primary, or unprotected), the replicas it keeps (as backup), and the
 * replication listener that backups are reached on.
 *
 * All calls are made on the thread that runs the event_base.
 */
#ifndef TDM_ENGINE_H
#define TDM_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "driver.h"
#include "tdm-cfg.h"
#include "tdm-util.h"

struct event_base;
struct tdm_host;
struct tdm_engine;

#define TDM_DEFAULT_PORT 7390
#define TDM_DEFAULT_INTERVAL_MS 25
#define TDM_DEFAULT_HEARTBEAT_MS 50
#define TDM_DEFAULT_TIMEOUT_MS 250
#define TDM_DEFAULT_DISK_DIR TDM_LOCALSTATEDIR "/lib/tandem"
#define TDM_DEFAULT_NBDKIT_PLUGIN TDM_PKGLIBEXECDIR "/nbdkit-tandem-plugin.so"
#define TDM_DEFAULT_DISK_HOLD_MAX (1ull << 30)

struct tdm_engine_params {
    uint32_t interval_ms;   /* epoch interval: 1 .. 10000, default 25 (40 Hz) */
    uint32_t heartbeat_ms;  /* heartbeat period: 5 .. 10000, default 50 */
    uint32_t timeout_ms;    /* peer declared lost after this silence: >= 2 *
                               heartbeat, default 250 */
};
void tdm_engine_params_default(struct tdm_engine_params *p);
/* Checks ranges and relations; message in err. */
int tdm_engine_params_check(const struct tdm_engine_params *p, char *err,
                            size_t errlen);

struct tdm_host_config {
    char listen_addr[64];   /* replication listener; "" = do not listen */
    uint16_t listen_port;   /* 0 = TDM_DEFAULT_PORT; bound port readable
                               through tdm_host_listen_port() */
    bool accept_replicas;   /* act as backup for domains offered to us */
    char fence_path[256];   /* split-brain lease file on shared storage; ""
                               = none */
    /* Disk replication (disk.c): where the NBD export and write-log sockets
     * (NAME.nbd, NAME.log) and a backup's replica images (NAME.img) live,
     * how nbdkit and our plugin are found, and how many bytes of unapplied
     * writes a backup may hold. */
    char disk_dir[200];     /* default TDM_DEFAULT_DISK_DIR */
    char nbdkit[256];       /* default "nbdkit" (PATH) */
    char nbdkit_plugin[256];/* default TDM_DEFAULT_NBDKIT_PLUGIN */
    uint64_t disk_hold_max; /* default 1 GiB */
};
void tdm_host_config_default(struct tdm_host_config *hc);

struct tdm_host_hooks {
    /* A domain changed role or state (log it, publish it). May be NULL. */
    void (*changed)(struct tdm_engine *eng, void *arg);
    void *arg;
};

int tdm_host_new(struct event_base *base, const struct tdm_host_config *hc,
                 const struct tdm_host_hooks *hooks, struct tdm_host **host_r);
/* Stops every engine: primaries' guests are destroyed, connections closed. */
void tdm_host_free(struct tdm_host *host);
uint16_t tdm_host_listen_port(const struct tdm_host *host);

/* Create and start a domain, unprotected, from its configuration text.
 * Errors (bad config, duplicate name, driver failure) go to err. */
int tdm_host_create(struct tdm_host *host, const char *cfg_text, size_t len,
                    char *err, size_t errlen);
/* Start protecting a domain with a backup at host:port. */
int tdm_host_protect(struct tdm_host *host, const char *name,
                     const char *peer_host, uint16_t peer_port,
                     const struct tdm_engine_params *params, char *err,
                     size_t errlen);
/* Stop protecting; the domain keeps running here and its held outputs are
 * released (the backup is told to drop its replica). */
int tdm_host_unprotect(struct tdm_host *host, const char *name, char *err,
                       size_t errlen);
/* Planned switch: the final epoch is sent and acked with the guest
 * suspended, then the backup activates and this side destroys its copy. */
int tdm_host_failover(struct tdm_host *host, const char *name, char *err,
                      size_t errlen);
/* Destroy a domain or drop a replica. */
int tdm_host_destroy(struct tdm_host *host, const char *name, char *err,
                     size_t errlen);

struct tdm_engine *tdm_host_find(struct tdm_host *host, const char *name);
/* Engines in creation order; i from 0 until NULL. */
struct tdm_engine *tdm_host_engine_at(struct tdm_host *host, size_t i);

enum tdm_role {
    TDM_ROLE_PRIMARY,       /* runs the domain (protected or not) */
    TDM_ROLE_BACKUP,        /* keeps a replica */
};

enum tdm_state {
    TDM_ST_UNPROTECTED,     /* primary, running, no backup */
    TDM_ST_CONNECTING,      /* primary, (re)connecting to its backup */
    TDM_ST_SYNCING,         /* primary, first full epoch not yet acked */
    TDM_ST_PROTECTED,       /* primary, epochs acked */
    TDM_ST_RECEIVING,       /* backup, no whole epoch applied yet */
    TDM_ST_REPLICA,         /* backup, replica holds a whole epoch */
    TDM_ST_ACTIVATING,      /* backup taking over */
    TDM_ST_STOPPED,         /* domain gone (shut down, crashed, handed over) */
};

const char *tdm_role_name(enum tdm_role r);
const char *tdm_state_name(enum tdm_state s);

struct tdm_engine_metrics {
    uint64_t epochs;            /* primary: captured; backup: applied */
    uint64_t last_epoch;        /* primary: last captured; backup: applied */
    uint64_t acked_epoch;       /* primary: last acked by the backup */
    uint64_t rejected_frames;   /* backup: frames failing checks */
    uint64_t torn_epochs;       /* backup: epochs dropped unapplied */
    uint64_t skipped_ticks;     /* primary: ticks deferred (send backlog) */
    uint64_t failovers;         /* times this side took over */
    uint64_t bytes_sent_total;
    uint64_t activated_at_ns;   /* monotonic, 0 if never */
    /* Steady-state epochs only: the first epoch after protection starts
     * (the initial sync, every page) is counted in sync_* instead. */
    struct tdm_stat pause_ns;   /* suspend .. resume */
    struct tdm_stat capture_ns; /* the copy inside the pause */
    struct tdm_stat dirty_pages;
    uint64_t syncs;             /* initial-sync epochs taken */
    uint64_t sync_pause_ns;     /* the last one's suspend .. resume */
    uint64_t sync_pages;        /* and its pages */
    uint64_t sync_live_ns;      /* its live copy, in steps (driver op
                                   precopy; 0 without) */
    uint64_t sync_live_steps;
    uint64_t sync_live_step_max_ns; /* the longest step: the event loop's
                                       longest wait in that copy */
    struct tdm_stat epoch_bytes;
    struct tdm_stat ack_ns;     /* resume .. ACK received */
    struct tdm_stat apply_ns;   /* backup: apply time */
};

/* Disk replication figures (disk.c); present is false without a disk. */
struct tdm_disk_stats {
    bool present;
    bool in_sync;               /* primary: the backup's disk matches at the
                                   acked epoch; backup: activatable */
    bool syncing;               /* primary: a sync pass is running */
    bool broken;                /* primary: the write log failed */
    uint64_t size;              /* bytes */
    uint64_t records, bytes;    /* primary: forwarded; backup: received */
    uint64_t discarded;         /* primary: records while unprotected */
    uint64_t dirty_records;     /* primary: ranges logged without their
                                   data, while unprotected */
    uint64_t syncs, resyncs;    /* full and partial syncs started */
    uint64_t sync_done, sync_total;     /* bytes of the current/last pass */
    uint64_t sync_sent;         /* bytes actually sent (zeros skipped) */
    uint64_t sync_ns;           /* the last completed pass */
    uint64_t cut_ns_max;        /* primary: longest cut in a pause */
    uint64_t throttled;         /* primary: times the guest's writes waited
                                   for replication to catch up */
    uint64_t committed_epoch;   /* backup */
    uint64_t held_records, held_bytes;  /* backup */
    uint64_t applied_records;   /* backup */
    uint64_t queued_bytes;      /* backup: committed, not yet on the image */
};

struct tdm_engine_info {
    const char *name;
    const char *driver;
    enum tdm_role role;
    enum tdm_state state;
    const char *peer;           /* "host:port" or "" */
    struct tdm_engine_params params;
    uint64_t npages;
    struct tdm_output_stats out;
    const struct tdm_engine_metrics *m;
    struct tdm_disk_stats disk;
};
void tdm_engine_info(struct tdm_engine *eng, struct tdm_engine_info *info);

#endif
