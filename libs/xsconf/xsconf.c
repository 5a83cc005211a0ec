/* SPDX-License-Identifier: LGPL-2.1-only */
/* Protection settings in xenstore: decoding and checking (tdm-xsconf.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "tdm-util.h"
#include "tdm-xsconf.h"

/* The replication port when a backup names none (tandem.conf's listen). */
#define XS_DEFAULT_PORT 7390

const char *const tdm_xsconf_keys[] = {
    "domain", "memory", "suspend", "netbuf", "backup", "interval",
    "heartbeat", "timeout", NULL,
};

/* Values go into a tandem-domain.cfg(5) text as double-quoted strings:
 * printable ASCII, no quote or backslash. */
static bool plain(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
            return false;
    return true;
}

static int ms(const char *k, const char *v, uint64_t min, uint64_t max,
              uint32_t *out, char *err, size_t errlen)
{
    uint64_t n;

    if (tdm_parse_u64(v, min, max, &n) < 0)
        return tdm_errf(err, errlen, "%s = '%s': expected milliseconds from "
                        "%llu to %llu", k, v, (unsigned long long)min,
                        (unsigned long long)max);
    *out = (uint32_t)n;
    return 0;
}

int tdm_xsconf_parse(const char *name, const char *const *keys,
                     const char *const *vals, size_t n,
                     struct tdm_xsconf *out, char *err, size_t errlen)
{
    struct tdm_xsconf c;
    bool seen[8] = {false};
    uint64_t v;

    memset(&c, 0, sizeof(c));
    if (!name || !tdm_valid_name(name))
        return tdm_errf(err, errlen, "'%.80s': not a domain name (1-63 of "
                        "A-Z a-z 0-9 _ . -, not all digits)",
                        name ? name : "");
    tdm_strlcpy(c.name, name, sizeof(c.name));
    tdm_strlcpy(c.domain, name, sizeof(c.domain));
    for (size_t i = 0; i < n; i++) {
        const char *k = keys[i], *val = vals[i];
        size_t ki;

        for (ki = 0; tdm_xsconf_keys[ki]; ki++)
            if (!strcmp(k, tdm_xsconf_keys[ki]))
                break;
        if (!tdm_xsconf_keys[ki])
            return tdm_errf(err, errlen, "unknown key '%.60s' (known: domain, "
                            "memory, suspend, netbuf, backup, interval, "
                            "heartbeat, timeout)", k);
        if (seen[ki])
            return tdm_errf(err, errlen, "%s: given twice", k);
        seen[ki] = true;
        if (!val || strlen(val) > TDM_XS_VALUE_MAX || !plain(val))
            return tdm_errf(err, errlen, "%s: not a value tandem takes "
                            "(printable ASCII without quotes or backslashes, "
                            "at most %u bytes)", k, TDM_XS_VALUE_MAX);
        if (!strcmp(k, "domain")) {
            if (!tdm_valid_name(val) &&
                tdm_parse_u64(val, 1, 0x7fef, &v) < 0)
                return tdm_errf(err, errlen, "domain = '%s': expected a "
                                "domain name or domid, as xl takes them",
                                val);
            tdm_strlcpy(c.domain, val, sizeof(c.domain));
        } else if (!strcmp(k, "memory")) {
            if (tdm_parse_u64(val, 16, 1u << 20, &c.memory_mib) < 0)
                return tdm_errf(err, errlen, "memory = '%s': expected MiB "
                                "from 16 to 1048576", val);
        } else if (!strcmp(k, "suspend")) {
            if (strcmp(val, "cooperative") && strcmp(val, "pause"))
                return tdm_errf(err, errlen, "suspend = '%s': expected "
                                "cooperative or pause", val);
            tdm_strlcpy(c.suspend, val, sizeof(c.suspend));
        } else if (!strcmp(k, "netbuf")) {
            if (strcmp(val, "auto") && strcmp(val, "nfqueue") &&
                strcmp(val, "plug") && strcmp(val, "devmodel"))
                return tdm_errf(err, errlen, "netbuf = '%s': expected auto, "
                                "nfqueue, plug or devmodel", val);
            tdm_strlcpy(c.netbuf, val, sizeof(c.netbuf));
        } else if (!strcmp(k, "backup")) {
            if (!*val)
                continue;       /* written empty: attach only */
            if (tdm_parse_hostport(val, XS_DEFAULT_PORT, c.host,
                                   sizeof(c.host), &c.port) < 0 || !c.host[0])
                return tdm_errf(err, errlen, "backup = '%s': expected HOST "
                                "or HOST:PORT", val);
            tdm_strlcpy(c.backup, val, sizeof(c.backup));
            c.protect = true;
        } else if (!strcmp(k, "interval")) {
            if (ms(k, val, 1, 10000, &c.interval_ms, err, errlen) < 0)
                return -1;
        } else if (!strcmp(k, "heartbeat")) {
            if (ms(k, val, 5, 10000, &c.heartbeat_ms, err, errlen) < 0)
                return -1;
        } else if (ms(k, val, 10, 600000, &c.timeout_ms, err, errlen) < 0) {
            return -1;
        }
    }
    if (!c.memory_mib)
        return tdm_errf(err, errlen, "memory: required (MiB, the domain's "
                        "maximum memory)");
    *out = c;
    return 0;
}

int tdm_xsconf_domain_cfg(const struct tdm_xsconf *c, char *buf, size_t len)
{
    int n = snprintf(buf, len,
                     "# from xenstore " TDM_XS_ROOT "/domains/%s\n"
                     "name = \"%s\"\ndriver = \"xen\"\ndomain = \"%s\"\n"
                     "memory = %llu\n%s%s%s%s%s%s",
                     c->name, c->name, c->domain,
                     (unsigned long long)c->memory_mib,
                     c->suspend[0] ? "suspend = \"" : "", c->suspend,
                     c->suspend[0] ? "\"\n" : "",
                     c->netbuf[0] ? "netbuf = \"" : "", c->netbuf,
                     c->netbuf[0] ? "\"\n" : "");
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

bool tdm_xsconf_same_domain(const struct tdm_xsconf *a,
                            const struct tdm_xsconf *b)
{
    return !strcmp(a->name, b->name) && !strcmp(a->domain, b->domain) &&
           a->memory_mib == b->memory_mib &&
           !strcmp(a->suspend, b->suspend) && !strcmp(a->netbuf, b->netbuf);
}

bool tdm_xsconf_same_protection(const struct tdm_xsconf *a,
                                const struct tdm_xsconf *b)
{
    return a->protect == b->protect && !strcmp(a->host, b->host) &&
           a->port == b->port && a->interval_ms == b->interval_ms &&
           a->heartbeat_ms == b->heartbeat_ms &&
           a->timeout_ms == b->timeout_ms;
}
