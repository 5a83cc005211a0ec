/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * ackd: the client end of the Xen rig's disk scenario (tests/xen).
 *
 *   ackd ADDR PORT FILE STOPFILE
 *
 * Accepts TCP connections on ADDR:PORT one at a time. Each carries one
 * line from the guest ("ACK <key>": key written and synced to its disk);
 * ackd appends the line to FILE, flushed, and answers "STOP" if STOPFILE
 * exists (the guest then unmounts its disk) or "OK", and closes. A line
 * in FILE is a write the guest acknowledged to its client: its output
 * left the guest only after the epoch holding the write was committed on
 * the backup.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tdm-util.h"

#define LINE_MAX_ 128
#define READ_TIMEOUT_MS 5000

/* One line of at most LINE_MAX_ - 1 bytes, or -1. */
static int read_line(int fd, char *buf)
{
    size_t n = 0;

    while (n + 1 < LINE_MAX_) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t r;

        if (poll(&p, 1, READ_TIMEOUT_MS) <= 0)
            return -1;
        r = read(fd, buf + n, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        if (buf[n] == '\n')
            break;
        n++;
    }
    buf[n] = '\0';
    return n ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    uint64_t port;
    FILE *out;
    int ls, one = 1;

    if (argc != 5 || inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1 ||
        tdm_parse_u64(argv[2], 1, 65535, &port) < 0) {
        fprintf(stderr, "usage: ackd ADDR PORT FILE STOPFILE\n");
        return 2;
    }
    sa.sin_port = htons((uint16_t)port);
    if (!(out = fopen(argv[3], "a"))) {
        fprintf(stderr, "ackd: %s: %s\n", argv[3], strerror(errno));
        return 1;
    }
    ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(ls, 16) < 0) {
        fprintf(stderr, "ackd: %s:%s: %s\n", argv[1], argv[2],
                strerror(errno));
        return 1;
    }
    for (;;) {
        char line[LINE_MAX_];
        const char *reply;
        int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);

        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            fprintf(stderr, "ackd: accept: %s\n", strerror(errno));
            return 1;
        }
        if (read_line(c, line) == 0) {
            fprintf(out, "%s\n", line);
            fflush(out);
            reply = access(argv[4], F_OK) == 0 ? "STOP\n" : "OK\n";
            if (write(c, reply, strlen(reply)) < 0)
                fprintf(stderr, "ackd: reply: %s\n", strerror(errno));
        }
        close(c);
    }
}
