/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * What the uvm driver's tests share (test-uvm.c, test-uvm-disk.c): a very
 * small x86-64 assembler for hand-written guests, the kernel file they are
 * loaded from, and domains made from a configuration text with their stops
 * recorded. Include once, after <cmocka.h>, "tdm-util.h" and
 * "uvm-private.h". The including test owns `base` (its event loop) and
 * sets `kpath` (write_kernel writes there; tests may point it elsewhere).
 */
#ifndef TDM_UVM_TEST_H
#define TDM_UVM_TEST_H

static struct event_base *base;
static char kpath[160];

/* ---- the assembler ---- */

struct as {
    uint8_t b[4096];
    size_t n;
};

enum { RAX = 0, RCX = 1, RDX = 2, RBX = 3, RSI = 6, RDI = 7 };

static inline void emit(struct as *a, const uint8_t *p, size_t n)
{
    assert_true(a->n + n <= sizeof(a->b));
    memcpy(a->b + a->n, p, n);
    a->n += n;
}
#define EMIT(a, ...) emit(a, (const uint8_t[]){__VA_ARGS__}, \
                          sizeof((const uint8_t[]){__VA_ARGS__}))

static inline void mov_imm(struct as *a, int reg, uint64_t v) /* mov r64, imm64 */
{
    EMIT(a, 0x48, (uint8_t)(0xb8 + reg));
    assert_true(a->n + 8 <= sizeof(a->b));
    tdm_put_le64(a->b + a->n, v);
    a->n += 8;
}

/* A hypercall as the ABI asks: RCX = the address after the IN. */
static inline void hcall(struct as *a, uint8_t port)
{
    EMIT(a, 0x48, 0x8d, 0x0d, 2, 0, 0, 0);     /* lea rcx,[rip+2] */
    EMIT(a, 0xe5, port);                        /* in eax,port */
}

static inline void store_eax(struct as *a, uint64_t addr) /* [addr] = eax */
{
    mov_imm(a, RBX, addr);
    EMIT(a, 0x89, 0x03);                        /* mov [rbx],eax */
}

static inline void jmp_to(struct as *a, size_t target)
{
    EMIT(a, 0xeb, (uint8_t)(target - (a->n + 2)));
}

static inline void spin(struct as *a) { EMIT(a, 0xeb, 0xfe); }

/* The code as the guest's kernel, at kpath. */
static inline void write_kernel(const uint8_t *code, size_t n)
{
    FILE *f = fopen(kpath, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(code, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* ---- domains ---- */

static struct {
    int count;
    bool crashed;
    char why[160];
} stops;

static inline void on_stop(void *arg, bool crashed, const char *why)
{
    (void)arg;
    stops.count++;
    stops.crashed = crashed;
    tdm_strlcpy(stops.why, why, sizeof(stops.why));
}

static const struct tdm_dom_events events = {.guest_stopped = on_stop};

/* A uvm domain (or replica) of mib MiB running kpath, with extra_cfg
 * appended to its configuration; create must return want. */
static inline struct tdm_dom *make_cfg(int mib, const char *extra_cfg,
                                       bool replica, int want)
{
    struct tdm_cfg cfg;
    struct tdm_dom *d = NULL;
    char text[1024], err[256];
    int rc;

    snprintf(text, sizeof(text), "name = \"t\"\nmemory = %d\nkernel = \"%s\"\n%s",
             mib, kpath, extra_cfg ? extra_cfg : "");
    tdm_cfg_init(&cfg);
    assert_int_equal(tdm_cfg_parse(&cfg, text, strlen(text), err, sizeof(err)), 0);
    if (replica)
        rc = tdm_driver_uvm.create_replica(&cfg, base, &events, &d);
    else
        rc = tdm_driver_uvm.create(&cfg, base, &events, &d);
    assert_int_equal(rc, want);
    tdm_cfg_dispose(&cfg);
    return d;
}

/* Run the event loop until the guest reports a stop (or 10 s). */
static inline void wait_stop(void)
{
    for (int i = 0; i < 1000 && !stops.count; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        usleep(10000);
    }
    assert_int_equal(stops.count, 1);
}

#endif
