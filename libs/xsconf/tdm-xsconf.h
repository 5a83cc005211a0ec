/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Protection settings kept in xenstore (tandem-xenstore(7)).
 *
 *   /tool/tandem/domains/NAME/KEY   written by xl-tandem (or by hand)
 *   /tool/tandem/status/NAME/KEY    written by tandemd
 *
 * NAME is tandem's name of the domain. The keys of a domain entry:
 *   domain     xl's name or domid of the running domain (default NAME)
 *   memory     MiB, the domain's maximum memory (required)
 *   suspend    cooperative | pause
 *   netbuf     auto | nfqueue | plug | devmodel
 *   backup     HOST[:PORT]: protect with this backup; absent: attach only
 *   interval, heartbeat, timeout   milliseconds (default: tandem.conf)
 * Anything else is an error, as is any value out of its range: an entry in
 * error changes nothing, and the error is published under status/NAME.
 *
 * This file holds the pure part, shared by tandemd (which reads entries)
 * and xl-tandem (which writes them): no xenstore access, unit-tested.
 */
#ifndef TDM_XSCONF_H
#define TDM_XSCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TDM_XS_ROOT "/tool/tandem"
/* Longest value tandem reads from an entry. */
#define TDM_XS_VALUE_MAX 255u

/* One domain entry, decoded and checked. */
struct tdm_xsconf {
    char name[64];
    char domain[64];
    uint64_t memory_mib;
    char suspend[16];       /* "" : the driver's default */
    char netbuf[16];        /* "" : the engine's default */
    bool protect;           /* a backup is named */
    char backup[300];       /* as written, for messages */
    char host[256];
    uint16_t port;
    uint32_t interval_ms, heartbeat_ms, timeout_ms;     /* 0: default */
};

/* The keys of an entry, NULL-terminated (for writers and messages). */
extern const char *const tdm_xsconf_keys[];

/* Decode entry NAME from its n keys and values. -1 with a message naming
 * the key at fault; out is then unchanged. */
int tdm_xsconf_parse(const char *name, const char *const *keys,
                     const char *const *vals, size_t n,
                     struct tdm_xsconf *out, char *err, size_t errlen);

/* The domain configuration (tandem-domain.cfg(5)) of an entry, for the
 * xen driver. -1 if it does not fit. */
int tdm_xsconf_domain_cfg(const struct tdm_xsconf *c, char *buf, size_t len);

/* Do two entries ask for the same domain (everything but the protection
 * settings)? And for the same protection? */
bool tdm_xsconf_same_domain(const struct tdm_xsconf *a,
                            const struct tdm_xsconf *b);
bool tdm_xsconf_same_protection(const struct tdm_xsconf *a,
                                const struct tdm_xsconf *b);

#endif
