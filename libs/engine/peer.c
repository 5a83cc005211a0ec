/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * One replication connection: a bufferevent that turns bytes into checked
 * frames. Any byte received counts as liveness (a long PAGES frame behind a
 * heartbeat must not look like silence).
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "peer.h"
#include "tdm-util.h"

/* Peers closing gracefully (tdm__peer_close_after_flush), so that a host
 * that stops can end them: one list for the process, whose loops may run
 * in threads of their own. */
static pthread_mutex_t closing_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tdm__peer *closing;

static void closing_add(struct tdm__peer *p)
{
    pthread_mutex_lock(&closing_mu);
    p->closing_next = closing;
    closing = p;
    pthread_mutex_unlock(&closing_mu);
}

static void closing_del(struct tdm__peer *p)
{
    pthread_mutex_lock(&closing_mu);
    for (struct tdm__peer **pp = &closing; *pp; pp = &(*pp)->closing_next) {
        if (*pp == p) {
            *pp = p->closing_next;
            break;
        }
    }
    pthread_mutex_unlock(&closing_mu);
}

static void peer_free_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tdm__peer *p = arg;

    if (p->bev)
        bufferevent_free(p->bev);
    free(p);
}

static void peer_die(struct tdm__peer *p, const char *why)
{
    tdm__peer_cb cb = p->cb;

    if (p->dead)
        return;
    p->dead = true;
    if (p->close_after_flush)
        closing_del(p);
    bufferevent_disable(p->bev, EV_READ | EV_WRITE);
    bufferevent_setcb(p->bev, NULL, NULL, NULL, NULL);
    event_base_once(p->base, -1, EV_TIMEOUT, peer_free_cb, p, NULL);
    if (cb)
        cb(p, NULL, why, p->arg);
}

void tdm__peer_close(struct tdm__peer *p)
{
    if (!p || p->dead)
        return;
    p->cb = NULL;
    peer_die(p, "closed");
}

static void tune_socket(int fd)
{
    int one = 1, buf = 4 << 20;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct tdm__peer *p = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char err[256];

    if (p->close_after_flush) {
        /* closing: what the peer still says is read, so that the close
         * is not a reset, and dropped */
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    p->last_rx_ns = tdm_now_ns();
    while (!p->dead) {
        size_t have = evbuffer_get_length(in), need;
        struct tdm_frame f;
        enum tdm_dec d;
        uint8_t *buf;

        if (have < TDM_HDR_SIZE)
            return;
        buf = evbuffer_pullup(in, TDM_HDR_SIZE);
        d = tdm_frame_decode(buf, TDM_HDR_SIZE, &f, &need, err, sizeof(err));
        if (d == TDM_DEC_NEED && need > TDM_HDR_SIZE) {
            if (have < need)
                return;
            buf = evbuffer_pullup(in, (ssize_t)need);
            d = tdm_frame_decode(buf, need, &f, &need, err, sizeof(err));
        }
        if (d != TDM_DEC_OK) {
            log_warnx("%s: rejected frame: %s", p->addr, err);
            p->bad_frame = true;
            peer_die(p, err);
            return;
        }
        if (p->cb)
            p->cb(p, &f, NULL, p->arg);
        if (p->dead)
            return;
        evbuffer_drain(in, need);
    }
}

static void tv_ms(struct timeval *tv, int ms)
{
    tv->tv_sec = ms / 1000;
    tv->tv_usec = (ms % 1000) * 1000;
}

/* All queued output is in the kernel: shut the write side (the peer reads
 * everything, then end of file) and wait for the peer to close its own. */
static void linger(struct tdm__peer *p)
{
    int fd = bufferevent_getfd(p->bev);
    struct timeval tv;

    if (p->lingering)
        return;
    if (!p->connected || fd < 0 || shutdown(fd, SHUT_WR) < 0) {
        tdm__peer_close(p);
        return;
    }
    p->lingering = true;
    tv_ms(&tv, TDM__PEER_LINGER_MS);
    bufferevent_disable(p->bev, EV_WRITE);
    bufferevent_set_timeouts(p->bev, &tv, NULL);
    bufferevent_enable(p->bev, EV_READ);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct tdm__peer *p = arg;

    if (p->close_after_flush) {
        linger(p);
        return;
    }
    if (p->drained)
        p->drained(p, p->arg);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct tdm__peer *p = arg;
    char why[160];

    if (what & BEV_EVENT_CONNECTED) {
        p->connected = true;
        p->last_rx_ns = tdm_now_ns();
        tune_socket(bufferevent_getfd(bev));
        if (p->cb)
            p->cb(p, NULL, NULL, p->arg); /* f == NULL, why == NULL: up */
        return;
    }
    if (p->close_after_flush) {
        /* the peer closed too, or it did not within the time allowed */
        if (what & BEV_EVENT_TIMEOUT)
            log_warnx("%s: closing: no end from the peer within %d ms",
                      p->addr, TDM__PEER_LINGER_MS);
        tdm__peer_close(p);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        snprintf(why, sizeof(why), "connection closed by %s", p->addr);
    } else if (what & BEV_EVENT_ERROR) {
        int dnserr = bufferevent_socket_get_dns_error(bev);
        if (dnserr)
            snprintf(why, sizeof(why), "%s: %s", p->addr,
                     evutil_gai_strerror(dnserr));
        else
            snprintf(why, sizeof(why), "%s: %s", p->addr,
                     evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    } else {
        snprintf(why, sizeof(why), "%s: connection event 0x%x", p->addr, what);
    }
    /* The peer's last words first: a write that failed (the peer closed)
     * may come before the read of what it said before closing, such as a
     * GOODBYE. */
    if (p->connected && (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) {
        int fd = bufferevent_getfd(bev);
        while (fd >= 0 && evbuffer_read(bufferevent_get_input(bev), fd, -1) > 0)
            ;
        read_cb(bev, p);
        if (p->dead)
            return;
    }
    peer_die(p, why);
}

static struct tdm__peer *peer_new(struct event_base *base, int fd,
                                  const char *addr, tdm__peer_cb cb, void *arg)
{
    struct tdm__peer *p = tdm_calloc(1, sizeof(*p));

    p->base = base;
    p->cb = cb;
    p->arg = arg;
    tdm_strlcpy(p->addr, addr, sizeof(p->addr));
    p->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!p->bev) {
        log_warnx("%s: cannot create a bufferevent", addr);
        if (fd >= 0)
            close(fd);
        free(p);
        return NULL;
    }
    bufferevent_setcb(p->bev, read_cb, write_cb, event_cb, p);
    bufferevent_enable(p->bev, EV_READ | EV_WRITE);
    p->last_rx_ns = tdm_now_ns();
    return p;
}

struct tdm__peer *tdm__peer_accept(struct event_base *base, int fd,
                                   const char *addr, tdm__peer_cb cb, void *arg)
{
    struct tdm__peer *p;

    tune_socket(fd);
    p = peer_new(base, fd, addr, cb, arg);
    if (p)
        p->connected = true;
    return p;
}

struct tdm__peer *tdm__peer_connect(struct event_base *base,
                                    struct evdns_base *dns, const char *host,
                                    uint16_t port, tdm__peer_cb cb, void *arg)
{
    struct tdm__peer *p;
    char addr[96];

    snprintf(addr, sizeof(addr), "%s:%u", host, port);
    p = peer_new(base, -1, addr, cb, arg);
    if (!p)
        return NULL;
    if (bufferevent_socket_connect_hostname(p->bev, dns, AF_UNSPEC, host,
                                            port) < 0) {
        log_warnx("cannot connect to %s", addr);
        bufferevent_free(p->bev);
        free(p);
        return NULL;
    }
    return p;
}

void tdm__peer_set_cb(struct tdm__peer *p, tdm__peer_cb cb,
                      tdm__peer_drain_cb drained, void *arg)
{
    p->cb = cb;
    p->drained = drained;
    p->arg = arg;
}

int tdm__peer_sendv(struct tdm__peer *p, uint16_t type, uint64_t epoch,
                    const struct iovec *iov, int iovcnt, unsigned ref_mask)
{
    struct evbuffer *out;
    uint8_t hdr[TDM_HDR_SIZE];
    long len;

    if (p->dead)
        return -1;
    len = tdm_frame_hdr(hdr, type, epoch, iov, iovcnt);
    if (len < 0) {
        log_warnx("%s frame too large", tdm_msg_name(type));
        return -1;
    }
    out = bufferevent_get_output(p->bev);
    if (evbuffer_add(out, hdr, sizeof(hdr)) < 0)
        goto fail;
    for (int i = 0; i < iovcnt; i++) {
        int r;
        if (!iov[i].iov_len)
            continue;
        r = (ref_mask & (1u << i)) ? evbuffer_add_reference(out, iov[i].iov_base, iov[i].iov_len,
                                         NULL, NULL)
                : evbuffer_add(out, iov[i].iov_base, iov[i].iov_len);
        if (r < 0)
            goto fail;
    }
    p->bytes_out += TDM_HDR_SIZE + (uint64_t)len;
    return 0;
fail:
    log_warnx("%s: cannot queue %s frame", p->addr, tdm_msg_name(type));
    return -1;
}

int tdm__peer_send(struct tdm__peer *p, uint16_t type, uint64_t epoch,
                   const struct iovec *iov, int iovcnt)
{
    return tdm__peer_sendv(p, type, epoch, iov, iovcnt, 0);
}

int tdm__peer_send_text(struct tdm__peer *p, uint16_t type, uint32_t code,
                        const char *text)
{
    uint8_t buf[4 + TDM_TEXT_MAX];
    struct iovec iov = {.iov_base = buf};

    iov.iov_len = tdm_text_msg_encode(code, text, buf, sizeof(buf));
    return tdm__peer_send(p, type, 0, &iov, 1);
}

size_t tdm__peer_pending(const struct tdm__peer *p)
{
    return p->dead ? 0 : evbuffer_get_length(bufferevent_get_output(p->bev));
}

/* Write out what is queued, waiting up to ms, then close: for a daemon
 * that stops, whose event loop will not run again. */
void tdm__peer_flush_close(struct tdm__peer *p, int ms)
{
    uint64_t end = tdm_now_ns() + (uint64_t)ms * 1000000;
    struct evbuffer *out;
    int fd;

    if (!p || p->dead)
        return;
    out = bufferevent_get_output(p->bev);
    fd = bufferevent_getfd(p->bev);
    bufferevent_disable(p->bev, EV_READ | EV_WRITE);
    /* the bufferevent keeps its output's front frozen: it writes it */
    evbuffer_unfreeze(out, 1);
    while (fd >= 0 && p->connected && evbuffer_get_length(out) > 0 &&
           tdm_now_ns() < end) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int r = poll(&pfd, 1, 50);

        if (r < 0 && errno != EINTR)
            break;
        if (pfd.revents & (POLLERR | POLLHUP))
            break;
        if ((pfd.revents & POLLOUT) && evbuffer_write(out, fd) < 0 &&
            errno != EAGAIN && errno != EINTR)
            break;
    }
    if (evbuffer_get_length(out)) {
        log_warnx("%s: %zu bytes not sent before closing", p->addr,
                  evbuffer_get_length(out));
    } else if (fd >= 0 && p->connected && shutdown(fd, SHUT_WR) == 0) {
        /* Closed with unread input, the socket would answer with a reset,
         * and the peer may drop what it has not read yet: the frames just
         * written. Read until the peer closes (it does on GOODBYE). */
        while (tdm_now_ns() < end) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            char sink[4096];
            ssize_t n;

            if (poll(&pfd, 1, 50) <= 0)
                continue;
            n = read(fd, sink, sizeof(sink));
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                break;
        }
    }
    tdm__peer_close(p);
}

void tdm__peer_close_after_flush(struct tdm__peer *p)
{
    struct timeval tv;

    if (!p || p->dead || p->close_after_flush)
        return;
    p->cb = NULL;
    p->drained = NULL;
    p->close_after_flush = true;
    closing_add(p);
    tv_ms(&tv, TDM__PEER_LINGER_MS);
    bufferevent_set_timeouts(p->bev, NULL, &tv);
    bufferevent_enable(p->bev, EV_READ | EV_WRITE);
    if (tdm__peer_pending(p) == 0)
        linger(p);
}

void tdm__peer_closing_end(struct event_base *base)
{
    for (;;) {
        struct tdm__peer *p;

        pthread_mutex_lock(&closing_mu);
        for (p = closing; p && p->base != base; p = p->closing_next)
            ;
        pthread_mutex_unlock(&closing_mu);
        if (!p)
            return;
        tdm__peer_close(p);
    }
}
