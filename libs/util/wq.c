/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include <errno.h>
#include <time.h>

#include "tdm-util.h"
#include "tdm-wq.h"

void tdm_cond_init(pthread_cond_t *c)
{
    pthread_condattr_t a;

    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
}

bool tdm_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m,
                         uint64_t deadline_ns)
{
    struct timespec ts = {(time_t)(deadline_ns / 1000000000u),
                          (long)(deadline_ns % 1000000000u)};

    return pthread_cond_timedwait(c, m, &ts) != ETIMEDOUT;
}

void tdm_wq_init(struct tdm_wq *q, uint64_t max)
{
    memset(q, 0, sizeof(*q));
    pthread_mutex_init(&q->lock, NULL);
    tdm_cond_init(&q->cond);
    q->max = max;
    q->ready = true;
}

void tdm_wq_dispose(struct tdm_wq *q, void (*free_item)(struct tdm_wq_item *))
{
    struct tdm_wq_item *it = q->head;

    if (!q->ready)
        return;
    while (it) {
        struct tdm_wq_item *n = it->next;
        if (free_item)
            free_item(it);
        it = n;
    }
    q->head = q->tail = NULL;
    q->cost = 0;
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond);
    q->ready = false;
}

static bool over(const struct tdm_wq *q, uint64_t more)
{
    return q->max && !q->open && q->cost + q->extra + more > q->max;
}

static void append(struct tdm_wq *q, struct tdm_wq_item *it)
{
    it->next = NULL;
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->cost += it->cost;
    pthread_cond_broadcast(&q->cond);
}

int tdm_wq_push(struct tdm_wq *q, struct tdm_wq_item *it)
{
    int rc = 0;

    pthread_mutex_lock(&q->lock);
    if (over(q, it->cost))
        rc = -1;
    else
        append(q, it);
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void tdm_wq_push_any(struct tdm_wq *q, struct tdm_wq_item *it)
{
    pthread_mutex_lock(&q->lock);
    append(q, it);
    pthread_mutex_unlock(&q->lock);
}

bool tdm_wq_wait_room(struct tdm_wq *q)
{
    bool waited = false;

    pthread_mutex_lock(&q->lock);
    while (!q->quit && over(q, 0)) {
        if (!waited)
            q->waits++;
        waited = true;
        pthread_cond_wait(&q->cond, &q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return waited;
}

void tdm_wq_set_extra(struct tdm_wq *q, uint64_t extra)
{
    pthread_mutex_lock(&q->lock);
    q->extra = extra;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

void tdm_wq_set_open(struct tdm_wq *q, bool open)
{
    pthread_mutex_lock(&q->lock);
    q->open = open;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

bool tdm_wq_full(struct tdm_wq *q)
{
    bool full;

    pthread_mutex_lock(&q->lock);
    full = over(q, 0);
    pthread_mutex_unlock(&q->lock);
    return full;
}

struct tdm_wq_item *tdm_wq_pop(struct tdm_wq *q)
{
    struct tdm_wq_item *it;

    pthread_mutex_lock(&q->lock);
    while (!q->head && !q->quit)
        pthread_cond_wait(&q->cond, &q->lock);
    it = q->head;
    if (it) {
        q->head = it->next;
        if (!q->head)
            q->tail = NULL;
        it->next = NULL;
        q->busy = true;
    }
    pthread_mutex_unlock(&q->lock);
    return it;
}

void tdm_wq_done(struct tdm_wq *q, struct tdm_wq_item *it)
{
    pthread_mutex_lock(&q->lock);
    q->busy = false;
    q->cost -= it->cost;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

struct tdm_wq_item *tdm_wq_take_all(struct tdm_wq *q)
{
    struct tdm_wq_item *it;

    pthread_mutex_lock(&q->lock);
    it = q->head;
    for (struct tdm_wq_item *i = it; i; i = i->next)
        q->cost -= i->cost;
    q->head = q->tail = NULL;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    return it;
}

void tdm_wq_drain(struct tdm_wq *q)
{
    pthread_mutex_lock(&q->lock);
    while (q->head || q->busy)
        pthread_cond_wait(&q->cond, &q->lock);
    pthread_mutex_unlock(&q->lock);
}

void tdm_wq_quit(struct tdm_wq *q)
{
    pthread_mutex_lock(&q->lock);
    q->quit = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}
