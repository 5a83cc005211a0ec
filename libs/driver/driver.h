/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The domain-driver interface. The epoch engine is hypervisor-agnostic; a
 * driver knows how to suspend a domain, copy its dirty pages and CPU/device
 * state into a staging buffer, resume it, apply a staged epoch to a replica,
 * and activate the replica. One folder per driver (uvm/, xen/).
 *
 * Threading: every op is called from the engine's event-loop thread. A driver
 * may run the guest on threads of its own (uvm does) and reports guest events
 * through the callbacks in tdm_dom_events.
 */
#ifndef TDM_DRIVER_H
#define TDM_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tdm-cfg.h"
#include "tdm-staging.h"

struct event_base;

struct tdm_dom;

/* Output-commit counters of a domain's device-model queues. */
struct tdm_output_stats {
    uint64_t held_frames;       /* currently held (unacked epochs) */
    uint64_t held_bytes;
    uint64_t released_frames;   /* total written out after their epoch's ack */
    uint64_t discarded_frames;  /* dropped with a lost primary or discard */
    uint64_t backpressure;      /* guest transmits refused: queue full */
    uint64_t rx_frames;
    uint64_t rx_dropped;
    uint64_t dropped_frames;    /* kernel buffers: dropped with a full queue */
    char mechanism[16];         /* devmodel, nfqueue or plug */
};

/* Asynchronous notifications from a driver to its owner (the engine). Called
 * on the engine's event-loop thread (drivers with threads of their own hop
 * through an event). */
struct tdm_dom_events {
    /* The guest stopped by itself: shutdown (crashed=false) or a fault. */
    void (*guest_stopped)(void *arg, bool crashed, const char *why);
    void *arg;
};

#define TDM_APPLY_TAKE_MIN 8192

struct tdm_driver_ops {
    const char *name;

    /* Check a domain configuration; no side effects. err gets a message
     * naming the key at fault. */
    int (*validate)(struct tdm_cfg *cfg, char *err, size_t errlen);

    /* Primary: create (uvm) or attach to (xen) the domain described by cfg.
     * It runs unprotected until log_dirty(dom, true). */
    int (*create)(struct tdm_cfg *cfg, struct event_base *base,
                  const struct tdm_dom_events *ev, struct tdm_dom **dom_r);

    /* Backup: an empty, stopped replica of the same geometry. */
    int (*create_replica)(struct tdm_cfg *cfg, struct event_base *base,
                          const struct tdm_dom_events *ev,
                          struct tdm_dom **dom_r);

    /* Guest pages (the staging capacity the engine allocates). */
    uint64_t (*npages)(struct tdm_dom *dom);

    /* Start or stop dirty logging. After enabling, the next capture returns
     * every page (the initial full copy). */
    int (*log_dirty)(struct tdm_dom *dom, bool enable);

    /* Optional, primary: the live part of a full epoch, in steps. Called
     * after log_dirty(dom, true), before the next suspend, with st reset
     * for that epoch: copy up to max_pages more pages into st while the
     * guest runs. Returns 1 while pages remain, 0 once every page has been
     * copied (the capture that follows then copies only what the guest
     * dirtied meanwhile), -1 on error. The engine returns to its event loop
     * between steps, so heartbeats and acks keep flowing however large the
     * guest. Without it, capture makes the whole live copy in one call. */
    int (*precopy)(struct tdm_dom *dom, struct tdm_staging *st,
                   size_t max_pages);

    /* --- the pause: suspend, capture, resume. No network I/O in here. --- */
    int (*suspend)(struct tdm_dom *dom);
    /* While suspended: copy dirty pages and CPU/device state into st and
     * clear the dirty log. */
    int (*capture)(struct tdm_dom *dom, struct tdm_staging *st);
    int (*resume)(struct tdm_dom *dom);

    /* --- backup side --- */
    /* Apply one complete, verified epoch to the replica. */
    int (*apply)(struct tdm_dom *dom, const struct tdm_staging *st);
    /* Optional: the same, but the driver may take st's buffers (leaving st
     * initialised and empty; the engine allocates another) and finish the
     * work off the event loop. The engine uses it for epochs of at least
     * TDM_APPLY_TAKE_MIN pages, where a copy would hold the loop, and its
     * heartbeats, for seconds. */
    int (*apply_take)(struct tdm_dom *dom, struct tdm_staging *st);
    /* Run the replica from its last applied epoch and announce it on the
     * network (gratuitous ARP). Outputs pass unbuffered afterwards until
     * output_buffer(dom, true, ...) is called again (re-protection). */
    int (*activate)(struct tdm_dom *dom);

    /* --- output commit for device-model queues --- */
    /* Buffer outputs (on) or pass them straight through (off: releases
     * everything held). When turning on, outputs belong to epoch 'epoch'. */
    void (*output_buffer)(struct tdm_dom *dom, bool on, uint64_t epoch);
    /* Outputs made from now on belong to epoch 'epoch' (called in the pause). */
    void (*output_cut)(struct tdm_dom *dom, uint64_t epoch);
    /* Write out everything that belongs to epochs <= epoch. */
    void (*output_release)(struct tdm_dom *dom, uint64_t epoch);
    void (*output_stats)(struct tdm_dom *dom, struct tdm_output_stats *s);

    /* The host-side network interfaces of the domain, whose output kernel
     * buffers (libs/netbuf) hold: up to max names of 16 bytes. Returns the
     * count or -1. Optional (NULL: the driver cannot name them). */
    int (*net_ifaces)(struct tdm_dom *dom, char (*names)[16], int max);

    bool (*running)(struct tdm_dom *dom);
    /* Stop and free everything (the guest too). Idempotent on NULL. */
    void (*destroy)(struct tdm_dom *dom);
    /* Free the driver's state but leave a running guest running: what
     * tandemd's shutdown does to domains it attached to (xen) rather than
     * created. Optional; NULL: the guest belongs to tandem, destroy. */
    void (*release)(struct tdm_dom *dom);
};

/* Registry: NULL if no driver of that name was built in. */
const struct tdm_driver_ops *tdm_driver_find(const char *name);
/* Make one more driver findable by name (tests, out-of-tree drivers): up
 * to 4 names; registering a name again replaces its driver. */
void tdm_driver_register(const struct tdm_driver_ops *ops);
/* Comma-separated list of the built-in drivers, for messages. */
const char *tdm_driver_names(void);

extern const struct tdm_driver_ops tdm_driver_uvm;
#ifdef HAVE_XEN_DRIVER
extern const struct tdm_driver_ops tdm_driver_xen;
#endif

#endif
