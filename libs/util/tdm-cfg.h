/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The key = value configuration format shared by tandem.conf(5) and domain
 * configurations (xl-style):
 *
 *     # comment
 *     name = "kv1"
 *     memory = 16
 *
 * Values are bare words or double-quoted strings (\" and \\ escapes).
 * A key may appear once. Parsing never touches live state: callers parse into
 * a fresh tdm_cfg, validate, then apply.
 */
#ifndef TDM_CFG_H
#define TDM_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tdm_cfg_entry {
    char *key;
    char *value;
    unsigned line;
    bool used;          /* set by the getters; see tdm_cfg_check_unused */
};

struct tdm_cfg {
    struct tdm_cfg_entry *v;
    size_t n;
    char *text;         /* the text as parsed (NUL-terminated) */
    size_t text_len;
};

void tdm_cfg_init(struct tdm_cfg *c);
void tdm_cfg_dispose(struct tdm_cfg *c);   /* idempotent */
/* Parse text of len bytes. On error returns -1 and writes a message
 * ("line 3: ...") into err. c is left empty on error. */
int tdm_cfg_parse(struct tdm_cfg *c, const char *text, size_t len, char *err,
                  size_t errlen);
int tdm_cfg_parse_file(struct tdm_cfg *c, const char *path, char *err,
                       size_t errlen);

/* Getters mark the entry used. NULL / default when absent. */
const char *tdm_cfg_get(struct tdm_cfg *c, const char *key);
/* 0 on success (or absent: *v_r = def), -1 with message if out of range. */
int tdm_cfg_get_u64(struct tdm_cfg *c, const char *key, uint64_t def,
                    uint64_t min, uint64_t max, uint64_t *v_r, char *err,
                    size_t errlen);
/* Set or replace key's value, marked used: what a caller adds for the code
 * it hands the configuration to (the engine gives a driver its disk's NBD
 * socket). The parsed text is left as it was. */
void tdm_cfg_set(struct tdm_cfg *c, const char *key, const char *value);
/* -1 with "unknown key 'x' at line N" if any entry was never read. */
int tdm_cfg_check_unused(const struct tdm_cfg *c, char *err, size_t errlen);

/* Split "a=1,b=2" style option lists (vif = "mac=..,bridge=.."): calls fn
 * for each pair; fn returns -1 to stop with an error. */
int tdm_cfg_split_opts(const char *s,
                       int (*fn)(const char *k, const char *v, void *arg),
                       void *arg);

#endif
