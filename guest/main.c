/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * kv-guest: the micro-VM's firmware. A UDP key-value service (kv.c over
 * net.c), its table mirrored onto the disk when the domain has one
 * (disk.c), plus an optional memory-dirtying loop for benchmarks.
 *
 * Memory, from the bottom of RAM:
 *   0 .. UVM_LOAD_ADDR      unused
 *   image + .bss            code, data, the dedupe table, frame buffers
 *   KV store                half of what is left, in whole pages
 *   dirty region            the rest: the pages dirty=N writes to
 *   STACK_RESERVE           the stack, growing down from the top
 */
#include "guest.h"

#define PAGE_SIZE 4096u
#define STACK_RESERVE (64u << 10)
#define IDLE_WAIT_US 1000000u

/* guest.ld */
extern char __image_end[];

static struct kv kv;
static struct net net;
static uint8_t rx_frame[UVM_FRAME_MAX];
static char cmdline[256];

_Noreturn void guest_panic(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = fmt_vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(msg))
        n = (int)strlen(msg);
    hc_panic(msg, (size_t)n);
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

/* Writes one word in each of the next n pages of the region, wrapping. The
 * value changes every pass so each write is a real modification. */
static void dirty_pages(uint64_t *region, size_t pages, uint32_t n,
                        size_t *cursor, uint64_t pass)
{
    for (uint32_t i = 0; i < n; i++) {
        ((volatile uint64_t *)region)[*cursor * (PAGE_SIZE / 8)] = pass;
        *cursor = *cursor + 1 == pages ? 0 : *cursor + 1;
    }
}

static void boot_line(const struct uvm_net_info *info, bool have_net,
                      const struct guest_config *cfg, uint64_t ram_size,
                      size_t dirty_region)
{
    const uint8_t *ip = (const uint8_t *)&info->ip;
    const uint8_t *m = info->mac;

    if (have_net)
        guest_log("up: ip %u.%u.%u.%u/%u mac %02x:%02x:%02x:%02x:%02x:%02x "
                  "port %u ram %llu MiB kv slots %u dirty %u pages/%u us of %zu",
                  ip[0], ip[1], ip[2], ip[3], info->prefix_len, m[0], m[1], m[2],
                  m[3], m[4], m[5], cfg->port,
                  (unsigned long long)(ram_size >> 20), kv.mask + 1, cfg->dirty,
                  cfg->dirty_us, dirty_region);
    else
        guest_log("up: no network ram %llu MiB dirty %u pages/%u us of %zu",
                  (unsigned long long)(ram_size >> 20), cfg->dirty,
                  cfg->dirty_us, dirty_region);
}

_Noreturn void guest_main(uint64_t ram_size)
{
    struct guest_config cfg;
    struct uvm_net_info info;
    uint64_t heap, heap_end, store, pass;
    size_t dirty_region, cursor = 0;
    uint32_t seed = 0;
    bool have_net;
    int r;

    guest_config_init(&cfg);
    r = hc_config(cmdline, sizeof(cmdline));
    if (r < 0 || (size_t)r >= sizeof(cmdline))
        guest_panic("kv-guest: cannot read the command line (%d)", r);
    if (guest_config_parse(&cfg, cmdline) < 0)
        guest_panic("kv-guest: bad command line \"%s\"", cmdline);

    heap = align_up((uintptr_t)__image_end, PAGE_SIZE);
    heap_end = ram_size - STACK_RESERVE;
    if (ram_size < UVM_MIN_RAM || ram_size % PAGE_SIZE ||
        heap + 2 * PAGE_SIZE > heap_end)
        guest_panic("kv-guest: %llu bytes of RAM is too little",
                    (unsigned long long)ram_size);
    store = align_up((heap_end - heap) / 2, PAGE_SIZE);
    dirty_region = (size_t)((heap_end - heap - store) / PAGE_SIZE);
    if (cfg.dirty > dirty_region)
        guest_panic("kv-guest: dirty=%u exceeds the %zu pages of the dirty region",
                    cfg.dirty, dirty_region);

    /* A seeded hash keeps crafted keys from forcing long probe runs. */
    if (hc_random(&seed, sizeof(seed)) < 0)
        guest_log("no random seed: using a fixed hash seed");
    if (kv_init(&kv, (void *)(uintptr_t)heap, (size_t)store, seed) < 0)
        guest_panic("kv-guest: no room for the KV store");
    /* With a disk, the table lives there too (and may come from there). */
    disk_attach(&kv);

    memset(&info, 0, sizeof(info));
    have_net = hc_net_info(&info) == 0 && (info.flags & UVM_NET_PRESENT);
    if (have_net) {
        net_init(&net, &info, cfg.port, &kv);
        kv.net_stats = &net.stats;
    }
    boot_line(&info, have_net, &cfg, ram_size, dirty_region);

    for (pass = 1;; pass++) {
        while (have_net && (r = hc_net_rx(rx_frame, sizeof(rx_frame))) != 0) {
            if (r < 0) {
                guest_log("receiving a frame failed: %d", r);
                break;
            }
            net_input(&net, rx_frame, (size_t)r);
        }
        if (cfg.dirty) {
            dirty_pages((uint64_t *)(uintptr_t)(heap + store), dirty_region,
                        cfg.dirty, &cursor, pass);
            hc_wait(cfg.dirty_us);
        } else {
            hc_wait(IDLE_WAIT_US);
        }
    }
}
