/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * tandem utility library: logging, allocation, checksums, bitmaps, time,
 * little-endian codec helpers. Everything else in tandem links this.
 */
#ifndef TDM_UTIL_H
#define TDM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TDM_PAGE_SIZE 4096u
#define TDM_PAGE_SHIFT 12

#define TDM_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define TDM_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TDM_MAX(a, b) ((a) > (b) ? (a) : (b))
#define TDM_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* ---- logging (OpenBGPD style: once, where the error is found) ---- */

enum tdm_log_level {
    TDM_LOG_ERR = 3,
    TDM_LOG_WARNING = 4,
    TDM_LOG_INFO = 6,
    TDM_LOG_DEBUG = 7,
};

/* Log to stderr (foreground) or syslog (daemon). ident is kept by pointer. */
void tdm_log_init(const char *ident, bool foreground, int max_level);
void tdm_log_set_level(int max_level);
int tdm_log_get_level(void);

void tdm_logx(int level, const char *func, const char *fmt, ...) TDM_PRINTF(3, 4);
/* Appends ": strerror(errno)". */
void tdm_log_errno(int level, const char *func, const char *fmt, ...) TDM_PRINTF(3, 4);
_Noreturn void tdm_fatal(const char *func, bool with_errno, const char *fmt, ...)
    TDM_PRINTF(3, 4);

#define log_warn(...) tdm_log_errno(TDM_LOG_ERR, __func__, __VA_ARGS__)
#define log_warnx(...) tdm_logx(TDM_LOG_ERR, __func__, __VA_ARGS__)
#define log_notice(...) tdm_logx(TDM_LOG_WARNING, __func__, __VA_ARGS__)
#define log_info(...) tdm_logx(TDM_LOG_INFO, __func__, __VA_ARGS__)
#define log_debug(...) tdm_logx(TDM_LOG_DEBUG, __func__, __VA_ARGS__)
#define fatal(...) tdm_fatal(__func__, true, __VA_ARGS__)
#define fatalx(...) tdm_fatal(__func__, false, __VA_ARGS__)

/* ---- allocation: out of memory is fatal, never a silent NULL ---- */

void *tdm_malloc(size_t n);
void *tdm_calloc(size_t nmemb, size_t size);
void *tdm_realloc(void *p, size_t n);
char *tdm_strdup(const char *s);
/* Page-aligned, zeroed (anonymous mmap); free with tdm_free_pages. */
void *tdm_alloc_pages(size_t bytes);
void tdm_free_pages(void *p, size_t bytes);

static inline void tdm__freep(void *pp) { free(*(void **)pp); }
#define TDM_AUTOFREE __attribute__((cleanup(tdm__freep)))

/* Format a message into err (if err and errlen) and return -1: the shape
 * of every "fill in why and fail" in tandem. */
int tdm_errf(char *err, size_t errlen, const char *fmt, ...) TDM_PRINTF(3, 4);

/* Bounded copy that always terminates; returns false if truncated. */
bool tdm_strlcpy(char *dst, const char *src, size_t size);

/* ---- checksums ---- */

/* CRC32C (Castagnoli). Uses SSE4.2 when the CPU has it. Chainable:
 * crc = tdm_crc32c(0, a, n); crc = tdm_crc32c(crc, b, m); */
uint32_t tdm_crc32c(uint32_t crc, const void *buf, size_t len);
/* Portable table implementation, exposed for tests. */
uint32_t tdm_crc32c_sw(uint32_t crc, const void *buf, size_t len);

/* ---- time ---- */

uint64_t tdm_now_ns(void);      /* CLOCK_MONOTONIC */
uint64_t tdm_wall_ns(void);     /* CLOCK_REALTIME */
static inline uint64_t tdm_now_us(void) { return tdm_now_ns() / 1000; }

/* Deadlines are tdm_now_ns() values: one clock for every bounded wait. */
static inline uint64_t tdm_deadline_ms(uint64_t ms)
{
    return tdm_now_ns() + ms * 1000000u;
}
/* Milliseconds left until the deadline, rounded up (a poll timeout that
 * never wakes early); 0 once it has passed. */
int tdm_ms_left(uint64_t deadline_ns);

/* ---- bitmaps (64-bit words) ---- */

#define TDM_BITS_PER_WORD 64u
static inline size_t tdm_bitmap_words(size_t nbits)
{
    return (nbits + TDM_BITS_PER_WORD - 1) / TDM_BITS_PER_WORD;
}
static inline void tdm_bitmap_set(uint64_t *bm, size_t bit)
{
    bm[bit / 64] |= (uint64_t)1 << (bit % 64);
}
static inline bool tdm_bitmap_test(const uint64_t *bm, size_t bit)
{
    return (bm[bit / 64] >> (bit % 64)) & 1;
}
static inline void tdm_bitmap_clear(uint64_t *bm, size_t bit)
{
    bm[bit / 64] &= ~((uint64_t)1 << (bit % 64));
}
size_t tdm_bitmap_count(const uint64_t *bm, size_t nbits);
/* Next set bit at or after 'from', or nbits if none. */
size_t tdm_bitmap_next(const uint64_t *bm, size_t nbits, size_t from);

/* ---- little-endian helpers for wire formats ---- */

static inline void tdm_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void tdm_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void tdm_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t tdm_get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t tdm_get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static inline uint64_t tdm_get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* ---- parsing helpers: strict, whole-string, range-checked ---- */

/* Parse a decimal unsigned integer in [min, max]; the whole string must be
 * consumed. Returns 0 on success, -1 (errno-free) on any error. */
int tdm_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *v_r);
/* "host:port" or "host" (default_port); host may be [v6]. */
int tdm_parse_hostport(const char *s, uint16_t default_port, char *host,
                       size_t hostlen, uint16_t *port_r);
/* "52:54:00:12:34:56" */
int tdm_parse_mac(const char *s, uint8_t mac[6]);
/* A domain name as xl accepts it: [A-Za-z0-9_.-], 1..63 chars, not all digits. */
bool tdm_valid_name(const char *s);

/* ---- statistics: a fixed reservoir for medians and percentiles ---- */

struct tdm_stat {
    uint64_t count;
    uint64_t sum;
    uint64_t min, max;
    uint64_t last;
    /* ring of recent samples for percentiles */
    uint64_t ring[1024];
    size_t ring_len, ring_pos;
};
void tdm_stat_init(struct tdm_stat *s);
void tdm_stat_add(struct tdm_stat *s, uint64_t v);
/* p in [0, 100]; over the recent samples; 0 if none. */
uint64_t tdm_stat_pct(const struct tdm_stat *s, double p);

#endif
