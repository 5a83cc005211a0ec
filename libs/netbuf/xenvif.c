/* SPDX-License-Identifier: LGPL-2.1-only */
/* A Xen domain's vifs from xenstore (see tdm-xenvif.h). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenstore.h>

#include "tdm-util.h"
#include "tdm-xenvif.h"

static struct xs_handle *xs_connect(char *err, size_t errlen)
{
    struct xs_handle *xs = xs_open(0);

    if (!xs)
        tdm_errf(err, errlen, "cannot connect to xenstore: %s (is this dom0 "
                 "with xenstored running?)", strerror(errno));
    return xs;
}

static bool parse_id(const char *s, uint32_t max, uint32_t *v)
{
    uint64_t x;

    return tdm_parse_u64(s, 0, max, &x) == 0 && (*v = (uint32_t)x, true);
}

int tdm_xen_domid(const char *domain, uint32_t *domid_r, char *err,
                  size_t errlen)
{
    struct xs_handle *xs;
    char **ids = NULL, path[64];
    unsigned n = 0;
    int rc = -1;

    if (parse_id(domain, 0x7fef, domid_r))
        return 0;
    if (!tdm_valid_name(domain))
        return tdm_errf(err, errlen, "'%s' is neither a domain name nor a "
                        "domid", domain);
    if (!(xs = xs_connect(err, errlen)))
        return -1;
    ids = xs_directory(xs, XBT_NULL, "/local/domain", &n);
    for (unsigned i = 0; ids && i < n; i++) {
        char *name;
        uint32_t id;

        if (!parse_id(ids[i], 0x7fef, &id))
            continue;
        snprintf(path, sizeof(path), "/local/domain/%u/name", id);
        name = xs_read(xs, XBT_NULL, path, NULL);
        if (name && !strcmp(name, domain)) {
            *domid_r = id;
            rc = 0;
        }
        free(name);
        if (rc == 0)
            break;
    }
    if (rc < 0)
        tdm_errf(err, errlen, "no domain named '%s' (xl list shows them)",
                 domain);
    free(ids);
    xs_close(xs);
    return rc;
}

static int cmp_devid(const void *a, const void *b)
{
    unsigned long x = strtoul(*(char *const *)a, NULL, 10);
    unsigned long y = strtoul(*(char *const *)b, NULL, 10);

    return x < y ? -1 : x > y;
}

int tdm_xen_vifs(uint32_t domid, char (*names)[16], int max, char *err,
                 size_t errlen)
{
    struct xs_handle *xs;
    char **devs, path[96];
    unsigned n = 0;
    int count = 0;

    if (!(xs = xs_connect(err, errlen)))
        return -1;
    snprintf(path, sizeof(path), "/local/domain/0/backend/vif/%u", domid);
    devs = xs_directory(xs, XBT_NULL, path, &n);
    if (!devs) {
        xs_close(xs);
        return errno == ENOENT ? 0 : tdm_errf(err, errlen, "xenstore %s: %s",
                                              path, strerror(errno));
    }
    qsort(devs, n, sizeof(*devs), cmp_devid);
    for (unsigned i = 0; i < n; i++) {
        uint32_t devid;
        char *vifname;

        if (!parse_id(devs[i], 0xffff, &devid))
            continue;
        if (count == max) {
            tdm_errf(err, errlen, "domain %u has more than %d vifs", domid, max);
            count = -1;
            break;
        }
        snprintf(path, sizeof(path), "/local/domain/0/backend/vif/%u/%u/vifname",
                 domid, devid);
        vifname = xs_read(xs, XBT_NULL, path, NULL);
        if (vifname && vifname[0] && strlen(vifname) < 16)
            tdm_strlcpy(names[count], vifname, 16);
        else
            snprintf(names[count], 16, "vif%u.%u", domid % 100000u,
                     devid % 10000u);
        free(vifname);
        count++;
    }
    free(devs);
    xs_close(xs);
    return count;
}
