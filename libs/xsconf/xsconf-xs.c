/* SPDX-License-Identifier: LGPL-2.1-only */
/* Protection settings in xenstore: reading and writing entries. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenstore.h>

#include "tdm-util.h"
#include "tdm-xsconf.h"
#include "tdm-xsconf-xs.h"

int tdm_xs_read_entry(struct xs_handle *h, const char *root, const char *name,
                      struct tdm_xsconf *out, char *err, size_t errlen)
{
    char path[512];
    char **keys;
    char *vals[16] = {NULL};
    unsigned n = 0;
    int rc = -1;

    snprintf(path, sizeof(path), "%s/domains/%s", root, name);
    keys = xs_directory(h, XBT_NULL, path, &n);
    if (!keys)
        return tdm_errf(err, errlen, "%s: %s", path, strerror(errno));
    if (n > 16) {
        tdm_errf(err, errlen, "%s: %u keys, more than tandem knows", path, n);
        goto out;
    }
    for (unsigned i = 0; i < n; i++) {
        char kp[600];
        unsigned len = 0;

        snprintf(kp, sizeof(kp), "%s/%s", path, keys[i]);
        vals[i] = xs_read(h, XBT_NULL, kp, &len);
        if (!vals[i]) {
            /* removed between the listing and the read */
            tdm_errf(err, errlen, "%s: %s", kp, strerror(errno));
            goto out;
        }
        if (strlen(vals[i]) != len) {
            tdm_errf(err, errlen, "%s: holds a NUL byte", kp);
            goto out;
        }
    }
    rc = tdm_xsconf_parse(name, (const char *const *)keys,
                          (const char *const *)vals, n, out, err, errlen);
out:
    for (unsigned i = 0; i < n && i < 16; i++)
        free(vals[i]);
    free(keys);
    return rc;
}

/* Run fn in a transaction, again while xenstore says another writer came
 * in between (EAGAIN). */
static int in_transaction(struct xs_handle *h,
                          bool (*fn)(struct xs_handle *, xs_transaction_t,
                                     void *),
                          void *arg, char *err, size_t errlen)
{
    for (int i = 0; i < 20; i++) {
        xs_transaction_t t = xs_transaction_start(h);

        if (t == XBT_NULL)
            return tdm_errf(err, errlen, "xenstore transaction: %s",
                            strerror(errno));
        if (!fn(h, t, arg)) {
            int e = errno;
            xs_transaction_end(h, t, true);
            return tdm_errf(err, errlen, "xenstore: %s", strerror(e));
        }
        if (xs_transaction_end(h, t, false))
            return 0;
        if (errno != EAGAIN)
            return tdm_errf(err, errlen, "xenstore commit: %s",
                            strerror(errno));
    }
    return tdm_errf(err, errlen, "xenstore: too many concurrent writers");
}

struct write_arg {
    const char *root;
    const struct tdm_xsconf *c;
};

static bool put(struct xs_handle *h, xs_transaction_t t, const char *dir,
                const char *k, const char *v)
{
    char p[600];

    snprintf(p, sizeof(p), "%s/%s", dir, k);
    return xs_write(h, t, p, v, strlen(v));
}

static bool write_fn(struct xs_handle *h, xs_transaction_t t, void *arg)
{
    struct write_arg *a = arg;
    const struct tdm_xsconf *c = a->c;
    char dir[512], num[32];

    snprintf(dir, sizeof(dir), "%s/domains/%s", a->root, c->name);
    /* The whole entry at once: tandemd sees the old one or the new one. */
    xs_rm(h, t, dir);
    if (!put(h, t, dir, "domain", c->domain))
        return false;
    snprintf(num, sizeof(num), "%llu", (unsigned long long)c->memory_mib);
    if (!put(h, t, dir, "memory", num))
        return false;
    if (c->suspend[0] && !put(h, t, dir, "suspend", c->suspend))
        return false;
    if (c->netbuf[0] && !put(h, t, dir, "netbuf", c->netbuf))
        return false;
    if (c->protect && !put(h, t, dir, "backup", c->backup))
        return false;
#define PUT_MS(key, f)                                              \
    if (c->f) {                                                     \
        snprintf(num, sizeof(num), "%u", c->f);                     \
        if (!put(h, t, dir, key, num))                              \
            return false;                                           \
    }
    PUT_MS("interval", interval_ms)
    PUT_MS("heartbeat", heartbeat_ms)
    PUT_MS("timeout", timeout_ms)
#undef PUT_MS
    return true;
}

int tdm_xs_write_entry(struct xs_handle *h, const char *root,
                       const struct tdm_xsconf *c, char *err, size_t errlen)
{
    struct write_arg a = {root, c};

    return in_transaction(h, write_fn, &a, err, errlen);
}

static bool rm_fn(struct xs_handle *h, xs_transaction_t t, void *arg)
{
    return xs_rm(h, t, arg) || errno == ENOENT;
}

int tdm_xs_remove_entry(struct xs_handle *h, const char *root,
                        const char *name, char *err, size_t errlen)
{
    char dir[512];

    snprintf(dir, sizeof(dir), "%s/domains/%s", root, name);
    return in_transaction(h, rm_fn, dir, err, errlen);
}
