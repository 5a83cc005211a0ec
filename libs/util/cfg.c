/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tdm-cfg.h"
#include "tdm-util.h"

#define CFG_MAX_TEXT (1u << 20)
#define CFG_MAX_ENTRIES 1024

void tdm_cfg_init(struct tdm_cfg *c)
{
    memset(c, 0, sizeof(*c));
}

void tdm_cfg_dispose(struct tdm_cfg *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].key);
        free(c->v[i].value);
    }
    free(c->v);
    free(c->text);
    tdm_cfg_init(c);
}


static bool key_char(int c)
{
    return isalnum(c) || c == '_' || c == '-' || c == '.';
}

int tdm_cfg_parse(struct tdm_cfg *c, const char *text, size_t len, char *err,
                  size_t errlen)
{
    struct tdm_cfg tmp;
    const char *p, *end;
    unsigned line = 0;
    int rc = -1;

    tdm_cfg_init(&tmp);
    if (len > CFG_MAX_TEXT) {
        tdm_errf(err, errlen, "configuration larger than %u bytes", CFG_MAX_TEXT);
        goto out;
    }
    if (memchr(text, '\0', len)) {
        tdm_errf(err, errlen, "configuration contains a NUL byte");
        goto out;
    }
    tmp.text = tdm_malloc(len + 1);
    memcpy(tmp.text, text, len);
    tmp.text[len] = '\0';
    tmp.text_len = len;

    p = text;
    end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *q, *kb, *ke;
        char *val;
        size_t vn = 0;

        if (!eol)
            eol = end;
        line++;
        q = p;
        while (q < eol && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        if (q == eol || *q == '#') {
            p = eol + 1;
            continue;
        }
        kb = q;
        while (q < eol && key_char((unsigned char)*q))
            q++;
        ke = q;
        if (ke == kb) {
            tdm_errf(err, errlen, "line %u: expected a key", line);
            goto out;
        }
        while (q < eol && (*q == ' ' || *q == '\t'))
            q++;
        if (q == eol || *q != '=') {
            tdm_errf(err, errlen, "line %u: expected '=' after '%.*s'", line,
                 (int)(ke - kb), kb);
            goto out;
        }
        q++;
        while (q < eol && (*q == ' ' || *q == '\t'))
            q++;
        val = tdm_malloc((size_t)(eol - q) + 1);
        if (q < eol && *q == '"') {
            q++;
            while (q < eol && *q != '"') {
                if (*q == '\\' && q + 1 < eol && (q[1] == '"' || q[1] == '\\'))
                    q++;
                else if (*q == '\\') {
                    free(val);
                    tdm_errf(err, errlen, "line %u: bad escape in string", line);
                    goto out;
                }
                val[vn++] = *q++;
            }
            if (q >= eol) {
                free(val);
                tdm_errf(err, errlen, "line %u: unterminated string", line);
                goto out;
            }
            q++;
        } else {
            while (q < eol && *q != '#' && *q != ' ' && *q != '\t' &&
                   *q != '\r')
                val[vn++] = *q++;
            if (vn == 0) {
                free(val);
                tdm_errf(err, errlen, "line %u: missing value", line);
                goto out;
            }
        }
        val[vn] = '\0';
        while (q < eol && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        if (q < eol && *q != '#') {
            free(val);
            tdm_errf(err, errlen, "line %u: unexpected text after value", line);
            goto out;
        }
        for (size_t i = 0; i < tmp.n; i++) {
            if (strlen(tmp.v[i].key) == (size_t)(ke - kb) &&
                !memcmp(tmp.v[i].key, kb, (size_t)(ke - kb))) {
                free(val);
                tdm_errf(err, errlen, "line %u: '%.*s' already set at line %u",
                     line, (int)(ke - kb), kb, tmp.v[i].line);
                goto out;
            }
        }
        if (tmp.n >= CFG_MAX_ENTRIES) {
            free(val);
            tdm_errf(err, errlen, "line %u: more than %d keys", line,
                 CFG_MAX_ENTRIES);
            goto out;
        }
        tmp.v = tdm_realloc(tmp.v, (tmp.n + 1) * sizeof(*tmp.v));
        tmp.v[tmp.n].key = tdm_malloc((size_t)(ke - kb) + 1);
        memcpy(tmp.v[tmp.n].key, kb, (size_t)(ke - kb));
        tmp.v[tmp.n].key[ke - kb] = '\0';
        tmp.v[tmp.n].value = val;
        tmp.v[tmp.n].line = line;
        tmp.v[tmp.n].used = false;
        tmp.n++;
        p = eol + 1;
    }
    tdm_cfg_dispose(c);
    *c = tmp;
    tdm_cfg_init(&tmp);
    rc = 0;
out:
    tdm_cfg_dispose(&tmp);
    return rc;
}

int tdm_cfg_parse_file(struct tdm_cfg *c, const char *path, char *err,
                       size_t errlen)
{
    struct stat sb;
    char *buf = NULL;
    ssize_t r;
    size_t got = 0;
    int fd, rc = -1;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tdm_errf(err, errlen, "%s: %s", path, strerror(errno));
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        tdm_errf(err, errlen, "%s: not a regular file", path);
        goto out;
    }
    if (sb.st_size > (off_t)CFG_MAX_TEXT) {
        tdm_errf(err, errlen, "%s: larger than %u bytes", path, CFG_MAX_TEXT);
        goto out;
    }
    buf = tdm_malloc((size_t)sb.st_size + 1);
    while (got < (size_t)sb.st_size) {
        r = read(fd, buf + got, (size_t)sb.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            tdm_errf(err, errlen, "%s: read failed", path);
            goto out;
        }
        got += (size_t)r;
    }
    if (tdm_cfg_parse(c, buf, got, err, errlen) < 0) {
        /* prefix the path */
        char tmp[512];
        tdm_strlcpy(tmp, err ? err : "", sizeof(tmp));
        tdm_errf(err, errlen, "%s: %s", path, tmp);
        goto out;
    }
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

const char *tdm_cfg_get(struct tdm_cfg *c, const char *key)
{
    for (size_t i = 0; i < c->n; i++) {
        if (!strcmp(c->v[i].key, key)) {
            c->v[i].used = true;
            return c->v[i].value;
        }
    }
    return NULL;
}

void tdm_cfg_set(struct tdm_cfg *c, const char *key, const char *value)
{
    for (size_t i = 0; i < c->n; i++) {
        if (!strcmp(c->v[i].key, key)) {
            free(c->v[i].value);
            c->v[i].value = tdm_strdup(value);
            c->v[i].used = true;
            return;
        }
    }
    c->v = tdm_realloc(c->v, (c->n + 1) * sizeof(*c->v));
    c->v[c->n] = (struct tdm_cfg_entry){.key = tdm_strdup(key),
                                        .value = tdm_strdup(value),
                                        .line = 0, .used = true};
    c->n++;
}

int tdm_cfg_get_u64(struct tdm_cfg *c, const char *key, uint64_t def,
                    uint64_t min, uint64_t max, uint64_t *v_r, char *err,
                    size_t errlen)
{
    const char *s = tdm_cfg_get(c, key);

    if (!s) {
        *v_r = def;
        return 0;
    }
    if (tdm_parse_u64(s, min, max, v_r) < 0)
        return tdm_errf(err, errlen, "%s = '%s': expected a whole number from "
                    "%llu to %llu", key, s, (unsigned long long)min,
                    (unsigned long long)max);
    return 0;
}

int tdm_cfg_check_unused(const struct tdm_cfg *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < c->n; i++)
        if (!c->v[i].used)
            return tdm_errf(err, errlen, "line %u: unknown key '%s'", c->v[i].line,
                        c->v[i].key);
    return 0;
}

int tdm_cfg_split_opts(const char *s,
                       int (*fn)(const char *k, const char *v, void *arg),
                       void *arg)
{
    char *copy = tdm_strdup(s), *save = NULL, *tok;
    int rc = 0;

    for (tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq || eq == tok) {
            rc = fn(tok, NULL, arg);
        } else {
            *eq = '\0';
            rc = fn(tok, eq + 1, arg);
        }
        if (rc < 0)
            break;
    }
    free(copy);
    return rc;
}
