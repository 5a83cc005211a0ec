/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "tdm-util.h"

void *tdm_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        fatal("malloc %zu", n);
    return p;
}

void *tdm_calloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        fatal("calloc %zu x %zu", nmemb, size);
    return p;
}

void *tdm_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        fatal("realloc %zu", n);
    return q;
}

char *tdm_strdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        fatal("strdup");
    return p;
}

void *tdm_alloc_pages(size_t bytes)
{
    /* Populated up front: a first touch inside an epoch's pause would
     * page-fault on every page it copies. */
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED)
        fatal("mmap %zu bytes", bytes);
    return p;
}

void tdm_free_pages(void *p, size_t bytes)
{
    if (p)
        munmap(p, bytes);
}

int tdm_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

bool tdm_strlcpy(char *dst, const char *src, size_t size)
{
    size_t n = strlen(src);

    if (size == 0)
        return false;
    if (n >= size) {
        memcpy(dst, src, size - 1);
        dst[size - 1] = '\0';
        return false;
    }
    memcpy(dst, src, n + 1);
    return true;
}

uint64_t tdm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t tdm_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int tdm_ms_left(uint64_t deadline_ns)
{
    uint64_t now = tdm_now_ns(), ms;

    if (now >= deadline_ns)
        return 0;
    ms = (deadline_ns - now + 999999) / 1000000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

size_t tdm_bitmap_count(const uint64_t *bm, size_t nbits)
{
    size_t n = 0, words = nbits / 64;

    for (size_t i = 0; i < words; i++)
        n += (size_t)__builtin_popcountll(bm[i]);
    if (nbits % 64)
        n += (size_t)__builtin_popcountll(bm[words] &
                                          (((uint64_t)1 << (nbits % 64)) - 1));
    return n;
}

size_t tdm_bitmap_next(const uint64_t *bm, size_t nbits, size_t from)
{
    while (from < nbits) {
        uint64_t w = bm[from / 64] >> (from % 64);
        if (w) {
            size_t bit = from + (size_t)__builtin_ctzll(w);
            return bit < nbits ? bit : nbits;
        }
        from = (from / 64 + 1) * 64;
    }
    return nbits;
}

int tdm_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *v_r)
{
    unsigned long long v;
    char *end;

    if (!s || !*s || !isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max)
        return -1;
    *v_r = v;
    return 0;
}

int tdm_parse_hostport(const char *s, uint16_t default_port, char *host,
                       size_t hostlen, uint16_t *port_r)
{
    const char *colon, *hend;
    uint64_t port = default_port;
    size_t n;

    if (!s || !*s)
        return -1;
    if (s[0] == '[') {
        hend = strchr(s, ']');
        if (!hend)
            return -1;
        colon = hend[1] == ':' ? hend + 1 : NULL;
        if (!colon && hend[1] != '\0')
            return -1;
        s++;
    } else {
        colon = strrchr(s, ':');
        if (colon && strchr(s, ':') != colon)
            return -1; /* bare IPv6 needs brackets */
        hend = colon ? colon : s + strlen(s);
    }
    n = (size_t)(hend - s);
    if (n == 0 || n >= hostlen)
        return -1;
    memcpy(host, s, n);
    host[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!isalnum(c) && c != '.' && c != '-' && c != ':' && c != '_')
            return -1;
    }
    if (colon && tdm_parse_u64(colon + 1, 1, 65535, &port) < 0)
        return -1;
    *port_r = (uint16_t)port;
    return 0;
}

int tdm_parse_mac(const char *s, uint8_t mac[6])
{
    unsigned int b[6];
    char tail;

    if (!s || strlen(s) != 17)
        return -1;
    if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3],
               &b[4], &b[5], &tail) != 6)
        return -1;
    for (int i = 0; i < 6; i++) {
        if (!isxdigit((unsigned char)s[i * 3]) ||
            !isxdigit((unsigned char)s[i * 3 + 1]) ||
            (i < 5 && s[i * 3 + 2] != ':'))
            return -1;
        mac[i] = (uint8_t)b[i];
    }
    if (mac[0] & 1)
        return -1; /* multicast is not a NIC address */
    return 0;
}

bool tdm_valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    bool digits_only = true;

    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '_' && c != '.' && c != '-')
            return false;
        if (!isdigit(c))
            digits_only = false;
    }
    return !digits_only && s[0] != '-' && s[0] != '.';
}

void tdm_stat_init(struct tdm_stat *s)
{
    memset(s, 0, sizeof(*s));
}

void tdm_stat_add(struct tdm_stat *s, uint64_t v)
{
    if (s->count == 0 || v < s->min)
        s->min = v;
    if (v > s->max)
        s->max = v;
    s->count++;
    s->sum += v;
    s->last = v;
    s->ring[s->ring_pos] = v;
    s->ring_pos = (s->ring_pos + 1) % TDM_ARRAY_SIZE(s->ring);
    if (s->ring_len < TDM_ARRAY_SIZE(s->ring))
        s->ring_len++;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

uint64_t tdm_stat_pct(const struct tdm_stat *s, double p)
{
    uint64_t tmp[TDM_ARRAY_SIZE(s->ring)];
    size_t idx;

    if (s->ring_len == 0)
        return 0;
    memcpy(tmp, s->ring, s->ring_len * sizeof(tmp[0]));
    qsort(tmp, s->ring_len, sizeof(tmp[0]), cmp_u64);
    idx = (size_t)((p / 100.0) * (double)(s->ring_len - 1) + 0.5);
    if (idx >= s->ring_len)
        idx = s->ring_len - 1;
    return tmp[idx];
}
