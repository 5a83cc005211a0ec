/* SPDX-License-Identifier: LGPL-2.1-only */
/* libs/util/wq.c alone (with util.c and log.c, which it uses). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <unistd.h>

#include "tdm-util.h"
#include "tdm-wq.h"

struct item {
    struct tdm_wq_item q;
    int n;
};

static struct item items[16];

static struct item *mk(int n, uint64_t cost)
{
    items[n].q.cost = cost;
    items[n].n = n;
    return &items[n];
}

static void test_bound_and_order(void **state)
{
    struct tdm_wq q;
    struct tdm_wq_item *all;
    int k = 0;

    tdm_wq_init(&q, 100);
    assert_int_equal(tdm_wq_push(&q, &mk(0, 60)->q), 0);
    assert_int_equal(tdm_wq_push(&q, &mk(1, 40)->q), 0);
    /* the bound is reached: refused, the caller keeps it */
    assert_int_equal(tdm_wq_push(&q, &mk(2, 1)->q), -1);
    assert_true(tdm_wq_full(&q) == false);  /* at the bound, not over */
    tdm_wq_push_any(&q, &mk(2, 1)->q);
    assert_true(tdm_wq_full(&q));
    all = tdm_wq_take_all(&q);
    for (struct tdm_wq_item *i = all; i; i = i->next)
        assert_int_equal(((struct item *)i)->n, k++);
    assert_int_equal(k, 3);
    assert_int_equal(q.cost, 0);
    /* extra counts against the bound; open lifts it */
    tdm_wq_set_extra(&q, 90);
    assert_int_equal(tdm_wq_push(&q, &mk(3, 20)->q), -1);
    tdm_wq_set_open(&q, true);
    assert_int_equal(tdm_wq_push(&q, &mk(3, 20)->q), 0);
    tdm_wq_set_open(&q, false);
    tdm_wq_dispose(&q, NULL);
    tdm_wq_dispose(&q, NULL);       /* idempotent */
}

static void test_cost_held_until_done(void **state)
{
    struct tdm_wq q;
    struct tdm_wq_item *it;

    tdm_wq_init(&q, 10);
    assert_int_equal(tdm_wq_push(&q, &mk(0, 10)->q), 0);
    it = tdm_wq_pop(&q);
    assert_ptr_equal(it, &items[0].q);
    /* in hand: it still counts */
    assert_int_equal(tdm_wq_push(&q, &mk(1, 1)->q), -1);
    tdm_wq_done(&q, it);
    assert_int_equal(tdm_wq_push(&q, &mk(1, 1)->q), 0);
    tdm_wq_dispose(&q, NULL);
}

struct consumer {
    struct tdm_wq *q;
    int seen[16], nseen;
};

static void *consume(void *arg)
{
    struct consumer *c = arg;
    struct tdm_wq_item *it;

    while ((it = tdm_wq_pop(c->q))) {
        usleep(20000);
        c->seen[c->nseen++] = ((struct item *)it)->n;
        tdm_wq_done(c->q, it);
    }
    return NULL;
}

/* A producer waits for room; quit still hands out what was queued. */
static void test_wait_room_drain_and_quit(void **state)
{
    struct tdm_wq q;
    struct consumer c = {.q = &q};
    pthread_t t;
    bool waited = false;

    tdm_wq_init(&q, 2);
    assert_int_equal(pthread_create(&t, NULL, consume, &c), 0);
    for (int i = 0; i < 6; i++) {
        waited |= tdm_wq_wait_room(&q);
        tdm_wq_push_any(&q, &mk(i, 1)->q);
    }
    assert_true(waited);
    assert_true(q.waits > 0);
    tdm_wq_drain(&q);
    assert_int_equal(c.nseen, 6);
    tdm_wq_push_any(&q, &mk(6, 1)->q);
    tdm_wq_push_any(&q, &mk(7, 1)->q);
    tdm_wq_quit(&q);
    pthread_join(t, NULL);
    assert_int_equal(c.nseen, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(c.seen[i], i);
    tdm_wq_dispose(&q, NULL);
}

static void test_cond_wait_until(void **state)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c;
    uint64_t t0 = tdm_now_ns();
    bool woke;

    tdm_cond_init(&c);
    pthread_mutex_lock(&m);
    woke = tdm_cond_wait_until(&c, &m, tdm_deadline_ms(50));
    pthread_mutex_unlock(&m);
    assert_false(woke);
    assert_true(tdm_now_ns() - t0 >= 50000000ull);
    assert_true(tdm_now_ns() - t0 < 2000000000ull);
    assert_int_equal(tdm_ms_left(t0), 0);
    assert_true(tdm_ms_left(tdm_deadline_ms(1000)) > 900);
    pthread_cond_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bound_and_order),
        cmocka_unit_test(test_cost_held_until_done),
        cmocka_unit_test(test_wait_room_drain_and_quit),
        cmocka_unit_test(test_cond_wait_until),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
