/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * udpseq: numbered UDP datagrams for the output-commit tests and benches.
 *
 *   udpseq send ADDR PORT FROM TO [GAP_US]  one datagram per number
 *   udpseq recv PORT FILE                   append "SEQ DELAY_US" per datagram
 *   udpseq echo PORT                        echo every datagram back
 *   udpseq rr ADDR PORT COUNT [GAP_US]      request/response: prints the
 *                                           round-trip median and p99 (us)
 * Datagrams carry the sequence number and the sender's CLOCK_MONOTONIC
 * (one clock for every namespace of one machine).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tdm-util.h"

struct dgram {
    uint64_t seq;
    uint64_t sent_ns;
    uint8_t pad[48];
};

static int sock_to(const char *addr, const char *port, struct sockaddr_in *sa)
{
    uint64_t p;
    int fd;

    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    if (inet_pton(AF_INET, addr, &sa->sin_addr) != 1 ||
        tdm_parse_u64(port, 1, 65535, &p) < 0) {
        fprintf(stderr, "udpseq: bad address %s:%s\n", addr, port);
        exit(2);
    }
    sa->sin_port = htons((uint16_t)p);
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("socket");
        exit(1);
    }
    return fd;
}

static int sock_bound(const char *port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    uint64_t p;
    int fd = socket(AF_INET, SOCK_DGRAM, 0), rcv = 8 << 20;

    if (fd < 0 || tdm_parse_u64(port, 1, 65535, &p) < 0) {
        fprintf(stderr, "udpseq: bad port %s\n", port);
        exit(2);
    }
    sa.sin_port = htons((uint16_t)p);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("bind");
        exit(1);
    }
    return fd;
}

static void sleep_us(uint64_t us)
{
    struct timespec ts = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000 };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    struct dgram d;
    uint64_t from, to, gap = 0, n;
    int fd;

    if (argc >= 6 && !strcmp(argv[1], "send")) {
        fd = sock_to(argv[2], argv[3], &sa);
        if (tdm_parse_u64(argv[4], 0, UINT64_MAX / 2, &from) < 0 ||
            tdm_parse_u64(argv[5], from, UINT64_MAX / 2, &to) < 0 ||
            (argc > 6 && tdm_parse_u64(argv[6], 0, 10000000, &gap) < 0)) {
            fprintf(stderr, "udpseq send: bad numbers\n");
            return 2;
        }
        for (uint64_t s = from; s <= to; s++) {
            memset(&d, 0, sizeof(d));
            d.seq = s;
            d.sent_ns = tdm_now_ns();
            if (sendto(fd, &d, sizeof(d), 0, (struct sockaddr *)&sa,
                       sizeof(sa)) < 0) {
                perror("sendto");
                return 1;
            }
            if (gap)
                sleep_us(gap);
        }
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "recv")) {
        FILE *out = fopen(argv[3], "a");

        fd = sock_bound(argv[2]);
        if (!out) {
            perror(argv[3]);
            return 1;
        }
        for (;;) {
            ssize_t r = recv(fd, &d, sizeof(d), 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r != (ssize_t)sizeof(d))
                continue;
            fprintf(out, "%" PRIu64 " %" PRIu64 "\n", d.seq,
                    (tdm_now_ns() - d.sent_ns) / 1000);
            fflush(out);
        }
    }
    if (argc == 3 && !strcmp(argv[1], "echo")) {
        fd = sock_bound(argv[2]);
        for (;;) {
            socklen_t sl = sizeof(sa);
            ssize_t r = recvfrom(fd, &d, sizeof(d), 0, (struct sockaddr *)&sa, &sl);
            if (r > 0)
                sendto(fd, &d, (size_t)r, 0, (struct sockaddr *)&sa, sl);
        }
    }
    if (argc >= 5 && !strcmp(argv[1], "rr")) {
        uint64_t *rtt, got = 0;

        fd = sock_to(argv[2], argv[3], &sa);
        if (tdm_parse_u64(argv[4], 1, 10000000, &n) < 0 ||
            (argc > 5 && tdm_parse_u64(argv[5], 0, 10000000, &gap) < 0)) {
            fprintf(stderr, "udpseq rr: bad numbers\n");
            return 2;
        }
        rtt = tdm_calloc(n, sizeof(*rtt));
        for (uint64_t s = 0; s < n; s++) {
            struct pollfd pf = { .fd = fd, .events = POLLIN };
            memset(&d, 0, sizeof(d));
            d.seq = s;
            d.sent_ns = tdm_now_ns();
            sendto(fd, &d, sizeof(d), 0, (struct sockaddr *)&sa, sizeof(sa));
            while (poll(&pf, 1, 2000) > 0) {
                struct dgram r;
                if (recv(fd, &r, sizeof(r), 0) == (ssize_t)sizeof(r) && r.seq == s) {
                    rtt[got++] = (tdm_now_ns() - r.sent_ns) / 1000;
                    break;
                }
            }
            if (gap)
                sleep_us(gap);
        }
        if (!got) {
            printf("rr: no answer\n");
            return 1;
        }
        qsort(rtt, got, sizeof(*rtt), cmp_u64);
        printf("rr: %" PRIu64 " of %" PRIu64 " answered, median %" PRIu64
               " us, p99 %" PRIu64 " us\n", got, n, rtt[got / 2],
               rtt[(got * 99) / 100 < got ? (got * 99) / 100 : got - 1]);
        return got == n ? 0 : 1;
    }
    fprintf(stderr, "usage: udpseq send ADDR PORT FROM TO [GAP_US] | recv PORT FILE |"
            " echo PORT | rr ADDR PORT COUNT [GAP_US]\n");
    return 2;
}
