/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A small bounded work queue between threads (wq.c), and timed waits on
 * the monotonic clock.
 *
 * Items carry a cost (bytes, usually) and the queue a bound on the cost it
 * holds, counting the item a consumer is working on until it is done.
 * Producers either refuse past the bound (tdm_wq_push: the event loop
 * never waits) or wait for room (tdm_wq_wait_room: a thread that must not
 * outrun its consumer). Consumers take one item at a time (a worker
 * thread) or all at once (the event loop, woken by the producer).
 */
#ifndef TDM_WQ_H
#define TDM_WQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- timed waits: deadlines are tdm_now_ns() values ---- */

/* A condition variable whose timed waits use CLOCK_MONOTONIC. */
void tdm_cond_init(pthread_cond_t *c);
/* Wait on c (m held) until signalled or deadline_ns; false at the
 * deadline. */
bool tdm_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m,
                         uint64_t deadline_ns);

/* ---- the queue ---- */

struct tdm_wq_item {
    struct tdm_wq_item *next;
    uint64_t cost;
};

struct tdm_wq {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct tdm_wq_item *head, *tail;
    uint64_t cost;          /* queued and in hand */
    uint64_t max;           /* the bound; 0: none */
    uint64_t extra;         /* cost held elsewhere, counted against max */
    uint64_t waits;         /* times a producer waited for room */
    bool busy;              /* a consumer holds an item */
    bool open;              /* the bound is lifted for now */
    bool quit;
    bool ready;             /* initialised, not yet disposed of */
};

void tdm_wq_init(struct tdm_wq *q, uint64_t max);
/* Frees what is still queued with free_item (may be NULL); no thread may
 * use q any more. Idempotent, and a no-op on a zeroed struct. */
void tdm_wq_dispose(struct tdm_wq *q, void (*free_item)(struct tdm_wq_item *));

/* Queue it unless the bound would be passed: 0, or -1 (it stays the
 * caller's). */
int tdm_wq_push(struct tdm_wq *q, struct tdm_wq_item *it);
/* Queue it whatever the bound. */
void tdm_wq_push_any(struct tdm_wq *q, struct tdm_wq_item *it);
/* Producer: wait while the queue is over its bound (unless open or
 * quitting). True if it had to wait. */
bool tdm_wq_wait_room(struct tdm_wq *q);
/* Cost held elsewhere that counts against the bound (what the event loop
 * has yet to send), and lifting the bound for a while. */
void tdm_wq_set_extra(struct tdm_wq *q, uint64_t extra);
void tdm_wq_set_open(struct tdm_wq *q, bool open);
/* Over the bound right now, counting extra. */
bool tdm_wq_full(struct tdm_wq *q);

/* Worker: the next item, waiting for one; NULL once quitting with nothing
 * left (what was queued before the quit is still handed out). The item is
 * in hand until tdm_wq_done. */
struct tdm_wq_item *tdm_wq_pop(struct tdm_wq *q);
void tdm_wq_done(struct tdm_wq *q, struct tdm_wq_item *it);
/* Event loop: every queued item, in order, without waiting; their cost is
 * released at once. */
struct tdm_wq_item *tdm_wq_take_all(struct tdm_wq *q);
/* Wait until nothing is queued or in hand. */
void tdm_wq_drain(struct tdm_wq *q);
/* Wake everyone; pop returns NULL once the queue is empty. */
void tdm_wq_quit(struct tdm_wq *q);

#endif
