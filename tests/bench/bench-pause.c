/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The pause of an epoch (suspend .. capture .. resume) on the uvm driver
 * for 100, 1,000 and 10,000 dirty pages, beside a plain memcpy of the same
 * pages measured in the same run: the physical floor of the copy. The guest
 * is a loop that writes page (i mod N) of a region, so every epoch finds
 * exactly N dirty pages. Prints a table; never fails on a time.
 *
 *   bench-pause [EPOCHS]     (default 300 per row)
 */
#include "config.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tdm-util.h"
#include "uvm-private.h"

#define REGION 0x1000000ull /* 16 MiB: the dirtied pages start here */

static size_t put(uint8_t *p, const uint8_t *b, size_t n)
{
    memcpy(p, b, n);
    return n;
}

static void write_guest(const char *path, uint32_t npages)
{
    uint8_t c[64];
    size_t n = 0, loop;
    FILE *f;

    /* mov r8, npages (rcx carries the hypercall's resume address) */
    n += put(c + n, (const uint8_t[]){0x49, 0xc7, 0xc0}, 3);
    tdm_put_le32(c + n, npages);
    n += 4;
    loop = n;
    n += put(c + n, (const uint8_t[]){0x48, 0x89, 0xd8}, 3);       /* mov rax,rbx */
    n += put(c + n, (const uint8_t[]){0x31, 0xd2}, 2);             /* xor edx,edx */
    n += put(c + n, (const uint8_t[]){0x49, 0xf7, 0xf0}, 3);       /* div r8 */
    /* once per pass over the pages, a hypercall (WAIT, 0 us), as a real
     * guest makes them: that is where the vCPU stops for a suspend */
    n += put(c + n, (const uint8_t[]){0x48, 0x85, 0xd2}, 3);       /* test rdx,rdx */
    n += put(c + n, (const uint8_t[]){0x75, 0x0e}, 2);             /* jnz +14 */
    n += put(c + n, (const uint8_t[]){0xbf, 0, 0, 0, 0}, 5);       /* mov edi,0 */
    n += put(c + n, (const uint8_t[]){0x48, 0x8d, 0x0d, 2, 0, 0, 0}, 7); /* lea rcx,[rip+2] */
    n += put(c + n, (const uint8_t[]){0xe5, UVM_HC_WAIT}, 2);      /* in eax,WAIT */
    n += put(c + n, (const uint8_t[]){0x48, 0xc1, 0xe2, 0x0c}, 4); /* shl rdx,12 */
    n += put(c + n, (const uint8_t[]){0x48, 0xb8}, 2);             /* mov rax,REGION */
    tdm_put_le64(c + n, REGION);
    n += 8;
    n += put(c + n, (const uint8_t[]){0x48, 0x01, 0xc2}, 3);       /* add rdx,rax */
    n += put(c + n, (const uint8_t[]){0x48, 0x89, 0x1a}, 3);       /* mov [rdx],rbx */
    n += put(c + n, (const uint8_t[]){0x48, 0xff, 0xc3}, 3);       /* inc rbx */
    c[n++] = 0xeb;                                                 /* jmp loop */
    c[n] = (uint8_t)(loop - (n + 1));
    n++;
    f = fopen(path, "w");
    if (!f || fwrite(c, 1, n, f) != n)
        fatal("writing %s", path);
    fclose(f);
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, size_t n, double p)
{
    qsort(v, n, sizeof(*v), cmp);
    return v[(size_t)(p / 100.0 * (double)(n - 1) + 0.5)];
}

int main(int argc, char **argv)
{
    static const uint32_t sizes[] = {100, 1000, 10000};
    size_t epochs = argc > 1 ? strtoul(argv[1], NULL, 10) : 300;
    struct event_base *base;
    char path[] = "/tmp/tdm-bench-pause-XXXXXX";
    int fd;

    if (epochs < 10)
        epochs = 10;
    tdm_log_init("bench-pause", true, TDM_LOG_ERR);
    evthread_use_pthreads();
    base = event_base_new();
    fd = mkstemp(path);
    if (fd < 0)
        fatal("mkstemp");
    close(fd);

    printf("uvm pause per epoch (suspend + copy + resume) vs memcpy of the "
           "same pages, %zu epochs per row\n", epochs);
    printf("%8s %9s | %11s %11s | %11s %11s | %11s %11s | %9s %s\n",
           "pages", "pages/ep", "pause p50", "pause p99", "copy p50",
           "copy p99", "memcpy p50", "memcpy p99", "ratio", "goal: p50 <= 2x memcpy + 100us");
    for (size_t s = 0; s < TDM_ARRAY_SIZE(sizes); s++) {
        uint64_t *pause = tdm_calloc(epochs, 8), *copy = tdm_calloc(epochs, 8),
                 *floor = tdm_calloc(epochs, 8), got = 0;
        struct tdm_staging st;
        struct tdm_cfg cfg;
        struct tdm_dom *d;
        char text[256], err[256];
        uint8_t *dst;

        write_guest(path, sizes[s]);
        snprintf(text, sizeof(text), "name = \"bench\"\nmemory = 64\n"
                 "kernel = \"%s\"\n", path);
        tdm_cfg_init(&cfg);
        if (tdm_cfg_parse(&cfg, text, strlen(text), err, sizeof(err)) < 0 ||
            tdm_driver_uvm.create(&cfg, base, NULL, &d) < 0)
            fatalx("cannot create the guest: %s", err);
        tdm_staging_init(&st);
        tdm_staging_alloc(&st, d->npages);
        usleep(20000);
        tdm_driver_uvm.suspend(d); /* drop the boot's dirt */
        tdm_staging_reset(&st, 0);
        tdm_driver_uvm.capture(d, &st);
        tdm_driver_uvm.resume(d);
        for (size_t e = 0; e < epochs; e++) {
            uint64_t t0, t1, t2, t3;
            usleep(5000);
            t0 = tdm_now_ns();
            tdm_driver_uvm.suspend(d);
            tdm_staging_reset(&st, e + 1);
            t1 = tdm_now_ns();
            tdm_driver_uvm.capture(d, &st);
            t2 = tdm_now_ns();
            tdm_driver_uvm.resume(d);
            t3 = tdm_now_ns();
            pause[e] = t3 - t0;
            copy[e] = t2 - t1;
            got += st.npages;
        }
        if (d->stopped)
            fatalx("the bench guest stopped: %s", d->why);
        /* the floor: the same number of pages, same source and target */
        dst = st.data;
        for (size_t e = 0; e < epochs; e++) {
            uint64_t t0 = tdm_now_ns();
            for (uint32_t p = 0; p < sizes[s]; p++)
                memcpy(dst + (size_t)p * TDM_PAGE_SIZE,
                       d->ram + REGION + (size_t)p * TDM_PAGE_SIZE,
                       TDM_PAGE_SIZE);
            floor[e] = tdm_now_ns() - t0;
        }
        {
            uint64_t p50 = pct(pause, epochs, 50), p99 = pct(pause, epochs, 99);
            uint64_t c50 = pct(copy, epochs, 50), c99 = pct(copy, epochs, 99);
            uint64_t f50 = pct(floor, epochs, 50), f99 = pct(floor, epochs, 99);
            printf("%8u %9.0f | %8.1f us %8.1f us | %8.1f us %8.1f us | "
                   "%8.1f us %8.1f us | %8.2fx %s\n", sizes[s],
                   (double)got / (double)epochs, p50 / 1e3, p99 / 1e3,
                   c50 / 1e3, c99 / 1e3, f50 / 1e3, f99 / 1e3,
                   (double)p50 / (double)(f50 ? f50 : 1),
                   p50 <= 2 * f50 + 100000 ? "met" : "missed");
        }
        tdm_driver_uvm.destroy(d);
        tdm_staging_dispose(&st);
        tdm_cfg_dispose(&cfg);
        free(pause);
        free(copy);
        free(floor);
    }
    unlink(path);
    event_base_free(base);
    return 0;
}
