/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The firmware's command line (the domain's "extra" string): words of the
 * form key=value separated by blanks.
 *   port=N       KV service UDP port (default 7000)
 *   dirty=N      pages dirtied per loop iteration (default 0: none)
 *   dirty_us=N   pause between dirtying iterations, in microseconds
 */
#include "guest.h"

#define DIRTY_MAX (1u << 20)            /* 4 GiB of pages per iteration */
#define DIRTY_US_MAX 60000000u          /* one minute */

void guest_config_init(struct guest_config *cfg)
{
    cfg->port = KV_DEFAULT_PORT;
    cfg->dirty = 0;
    cfg->dirty_us = 0;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n';
}

/* Whole-string decimal in [min, max]. */
static int parse_u32(const char *s, size_t len, uint32_t min, uint32_t max,
                     uint32_t *v_r)
{
    uint64_t v = 0;

    if (!len || len > 10)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v < min || v > max)
        return -1;
    *v_r = (uint32_t)v;
    return 0;
}

static bool word_is(const char *s, size_t len, const char *name)
{
    return strlen(name) == len && !memcmp(s, name, len);
}

int guest_config_parse(struct guest_config *cfg, const char *s)
{
    struct guest_config c = *cfg;
    const char *word, *eq;
    size_t len, klen;
    uint32_t v;
    int r;

    while (*s) {
        if (is_blank(*s)) {
            s++;
            continue;
        }
        word = s;
        while (*s && !is_blank(*s))
            s++;
        len = (size_t)(s - word);
        for (eq = word; eq < s && *eq != '='; eq++)
            ;
        if (eq == s) {
            guest_log("config: \"%.*s\" is not key=value", (int)len, word);
            return -1;
        }
        klen = (size_t)(eq - word);
        eq++;
        if (word_is(word, klen, "port")) {
            r = parse_u32(eq, (size_t)(s - eq), 1, 65535, &v);
            if (!r)
                c.port = (uint16_t)v;
        } else if (word_is(word, klen, "dirty")) {
            r = parse_u32(eq, (size_t)(s - eq), 0, DIRTY_MAX, &c.dirty);
        } else if (word_is(word, klen, "dirty_us")) {
            r = parse_u32(eq, (size_t)(s - eq), 0, DIRTY_US_MAX, &c.dirty_us);
        } else {
            guest_log("config: unknown key in \"%.*s\"", (int)len, word);
            return -1;
        }
        if (r < 0) {
            guest_log("config: bad value in \"%.*s\"", (int)len, word);
            return -1;
        }
    }
    *cfg = c;
    return 0;
}
