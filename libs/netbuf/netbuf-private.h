/* SPDX-License-Identifier: LGPL-2.1-only */
/* libs/netbuf internals: one ops table per mechanism. */
#ifndef TDM_NETBUF_PRIVATE_H
#define TDM_NETBUF_PRIVATE_H

#include <net/if.h>

#include "tdm-netbuf.h"

struct tdm_netbuf;

struct netbuf_ops {
    int (*open)(struct tdm_netbuf *nb, char *err, size_t errlen);
    int (*hold)(struct tdm_netbuf *nb, uint64_t epoch);
    int (*cut)(struct tdm_netbuf *nb, uint64_t epoch);
    int (*release)(struct tdm_netbuf *nb, uint64_t epoch);
    int (*discard)(struct tdm_netbuf *nb);
    int (*unhold)(struct tdm_netbuf *nb);
    void (*stats)(struct tdm_netbuf *nb, struct tdm_netbuf_stats *s);
    void (*close)(struct tdm_netbuf *nb, bool discard);
};

struct tdm_netbuf {
    const struct netbuf_ops *ops;
    struct event_base *base;
    char ifname[IF_NAMESIZE];
    struct tdm_netbuf_opts opts;
    bool holding;
    uint64_t epoch;             /* packets arriving now belong to it */
    struct tdm_netbuf_stats st;
    void *priv;                 /* the mechanism's state */
};

extern const struct netbuf_ops tdm__netbuf_nfqueue_ops;
extern const struct netbuf_ops tdm__netbuf_plug_ops;

/* nfqueue / plug cleanup of what a crashed instance left. */
int tdm__netbuf_nfqueue_cleanup(const char *ifname);
int tdm__netbuf_plug_cleanup(const char *ifname);
bool tdm__netbuf_plug_available(char *why, size_t whylen);

#endif
