/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * For the engine tests (test-engine, test-engine-disk): a primary host hp
 * and a backup host hb on one event loop, driven a few milliseconds at a
 * time, and the domain "d1" on each side. The including test defines
 * base, hp, hb and loop_step (called between turns of the loop: the
 * "guest" runs there).
 */
#ifndef TDM_TEST_ENGINE_LOOP_H
#define TDM_TEST_ENGINE_LOOP_H

#include <stdbool.h>
#include <event2/event.h>

#include "engine-private.h"

static struct event_base *base;
static struct tdm_host *hp, *hb;
static void loop_step(unsigned i);

static void run_ms(unsigned ms)
{
    uint64_t end = tdm_now_ns() + (uint64_t)ms * 1000000;
    unsigned i = 0;

    while (tdm_now_ns() < end) {
        struct timeval tv = {0, 2000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
        loop_step(i++);
    }
}

static bool run_until(bool (*cond)(void), unsigned ms)
{
    uint64_t end = tdm_now_ns() + (uint64_t)ms * 1000000;

    while (tdm_now_ns() < end) {
        run_ms(5);
        if (cond())
            return true;
    }
    return cond();
}

static struct tdm_engine *eng_p(void) { return tdm_host_find(hp, "d1"); }
static struct tdm_engine *eng_b(void) { return tdm_host_find(hb, "d1"); }
static bool protected(void)
{
    return eng_p() && eng_p()->state == TDM_ST_PROTECTED;
}

#endif
