/* SPDX-License-Identifier: LGPL-2.1-only */
#ifndef TDM_ENGINE_PEER_H
#define TDM_ENGINE_PEER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>

#include "tdm-proto.h"

/* ---- peer: one replication connection (peer.c) ----
 * Frames in, frames out. The callback gets f == NULL and why == NULL when an
 * outgoing connection comes up; f == NULL with why set once, on EOF, error
 * or a bad frame: the peer is dead after that and is freed by the loop,
 * never inside the callback. */
struct tdm__peer;
typedef void (*tdm__peer_cb)(struct tdm__peer *p, const struct tdm_frame *f,
                             const char *why, void *arg);
typedef void (*tdm__peer_drain_cb)(struct tdm__peer *p, void *arg);

struct tdm__peer {
    struct event_base *base;
    struct bufferevent *bev;
    tdm__peer_cb cb;
    tdm__peer_drain_cb drained;
    void *arg;
    char addr[96];
    uint64_t last_rx_ns;
    uint64_t bytes_out;
    bool connected;
    bool dead;
    bool close_after_flush;
    bool lingering;         /* its write side shut: waits for the peer's */
    bool bad_frame;         /* died on a frame that failed its checks */
    struct tdm__peer *closing_next; /* on the list of closing peers */
};

struct tdm__peer *tdm__peer_accept(struct event_base *base, int fd,
                                   const char *addr, tdm__peer_cb cb,
                                   void *arg);
struct tdm__peer *tdm__peer_connect(struct event_base *base,
                                    struct evdns_base *dns, const char *host,
                                    uint16_t port, tdm__peer_cb cb, void *arg);
void tdm__peer_set_cb(struct tdm__peer *p, tdm__peer_cb cb,
                      tdm__peer_drain_cb drained, void *arg);
/* Queue a frame; payload bytes are copied. */
int tdm__peer_send(struct tdm__peer *p, uint16_t type, uint64_t epoch,
                   const struct iovec *iov, int iovcnt);
/* Queue a frame; the iovecs whose bit is set in ref_mask are referenced,
 * not copied: they must stay unchanged until the output has drained. */
int tdm__peer_sendv(struct tdm__peer *p, uint16_t type, uint64_t epoch,
                    const struct iovec *iov, int iovcnt, unsigned ref_mask);
int tdm__peer_send_text(struct tdm__peer *p, uint16_t type, uint32_t code,
                        const char *text);
size_t tdm__peer_pending(const struct tdm__peer *p);
/* Close now (drops unsent output). Safe inside callbacks. */
void tdm__peer_close(struct tdm__peer *p);
/* Close gracefully (e.g. after a GOODBYE or an ERROR): once the queued
 * output is written, shut the write side and discard input until the peer
 * closes too, or sends nothing for TDM__PEER_LINGER_MS (the write waits
 * as long for progress). A socket closed with input
 * unread answers with a reset, which drops what the kernel has not sent
 * yet: the last frames, the ones that matter. */
#define TDM__PEER_LINGER_MS 30000
void tdm__peer_close_after_flush(struct tdm__peer *p);
/* Write out what is queued (up to ms), then close: the loop is done. */
void tdm__peer_flush_close(struct tdm__peer *p, int ms);
/* Close at once the peers on base still closing gracefully (the loop is
 * about to stop: tdm_host_free). */
void tdm__peer_closing_end(struct event_base *base);

#endif
