/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * nbd-load: write load on an NBD export on a unix socket, through libnbd,
 * for tests/bench/bench-disk.sh.
 *
 *     nbd-load -s SOCKET [-d SECONDS] [-b BYTES] [-q DEPTH] [-r] [-o OFFSET]
 *
 * Writes blocks of BYTES (default 4096) at random (-r) or sequential
 * offsets, DEPTH requests in flight (default 1: each write waits for the
 * last), for SECONDS (default 5), all at or above byte OFFSET (default 0;
 * a multiple of BYTES). Prints one line of key=value figures: writes, MB/s, latency median
 * and p99 in microseconds.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libnbd.h>

#define MAX_DEPTH 64
#define MAX_SAMPLES (1u << 22)

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static uint64_t *lat;
static size_t nlat;
static uint64_t t_issue[MAX_DEPTH];

static int done_cb(void *user_data, int *error)
{
    uintptr_t slot = (uintptr_t)user_data;

    if (*error) {
        fprintf(stderr, "nbd-load: write failed: %s\n", strerror(*error));
        exit(1);
    }
    if (nlat < MAX_SAMPLES)
        lat[nlat++] = now_ns() - t_issue[slot];
    return 1;   /* retire the command */
}

static void usage(void)
{
    fprintf(stderr, "usage: nbd-load -s SOCKET [-d SECONDS] [-b BYTES] "
            "[-q DEPTH] [-r] [-o OFFSET]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *sock = NULL;
    double secs = 5;
    long bs = 4096, depth = 1;
    long long base = 0;
    bool rnd = false;
    struct nbd_handle *h;
    int64_t size;
    uint8_t *buf;
    uint64_t t0, end, writes = 0, off = 0, x = 0x2545f4914f6cdd1dull;
    int c;

    while ((c = getopt(argc, argv, "s:d:b:q:ro:")) != -1) {
        switch (c) {
        case 's': sock = optarg; break;
        case 'd': secs = atof(optarg); break;
        case 'b': bs = strtol(optarg, NULL, 0); break;
        case 'q': depth = strtol(optarg, NULL, 0); break;
        case 'r': rnd = true; break;
        case 'o': base = strtoll(optarg, NULL, 0); break;
        default: usage();
        }
    }
    if (!sock || secs <= 0 || bs < 512 || bs % 512 || bs > (1 << 22) ||
        depth < 1 || depth > MAX_DEPTH || base < 0 || base % bs)
        usage();
    h = nbd_create();
    if (!h || nbd_connect_unix(h, sock) < 0) {
        fprintf(stderr, "nbd-load: %s: %s\n", sock, nbd_get_error());
        return 1;
    }
    size = nbd_get_size(h);
    if (size < base + bs) {
        fprintf(stderr, "nbd-load: export of %" PRId64 " bytes\n", size);
        return 1;
    }
    lat = malloc(MAX_SAMPLES * sizeof(*lat));
    buf = malloc((size_t)bs);
    if (!lat || !buf)
        return 1;
    memset(buf, 0xa5, (size_t)bs);
    t0 = now_ns();
    end = t0 + (uint64_t)(secs * 1e9);
    while (now_ns() < end) {
        /* keep `depth` writes in flight */
        while (nbd_aio_in_flight(h) < depth) {
            uintptr_t slot = writes % MAX_DEPTH;
            nbd_completion_callback cb = {.callback = done_cb,
                                          .user_data = (void *)slot};

            if (rnd) {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                off = (uint64_t)base +
                      (x % (uint64_t)((size - base) / bs)) * (uint64_t)bs;
            } else if (off < (uint64_t)base ||
                       off + (uint64_t)bs > (uint64_t)size) {
                off = (uint64_t)base;
            }
            memcpy(buf, &writes, sizeof(writes));
            t_issue[slot] = now_ns();
            if (nbd_aio_pwrite(h, buf, (size_t)bs, off, cb, 0) < 0) {
                fprintf(stderr, "nbd-load: %s\n", nbd_get_error());
                return 1;
            }
            if (!rnd)
                off += (uint64_t)bs;
            writes++;
        }
        if (nbd_poll(h, -1) < 0) {
            fprintf(stderr, "nbd-load: %s\n", nbd_get_error());
            return 1;
        }
    }
    while (nbd_aio_in_flight(h) > 0)
        if (nbd_poll(h, -1) < 0)
            return 1;
    {
        double s = (now_ns() - t0) / 1e9;
        qsort(lat, nlat, sizeof(*lat), cmp_u64);
        printf("writes=%" PRIu64 " mbps=%.1f iops=%.0f p50_us=%.0f "
               "p99_us=%.0f\n", writes, writes * (double)bs / 1e6 / s,
               writes / s, nlat ? lat[nlat / 2] / 1e3 : 0.0,
               nlat ? lat[nlat * 99 / 100] / 1e3 : 0.0);
    }
    nbd_shutdown(h, 0);
    nbd_close(h);
    return 0;
}
