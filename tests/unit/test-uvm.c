/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The uvm driver with tiny hand-assembled guests: exact dirty tracking,
 * CPU state carried through a replica, the state decoder's checks,
 * hypercall bounds, guest stops, the input recorder, the held output
 * queue, many suspends, and configuration errors. The TAP test needs root
 * and skips, saying why, without it.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tdm-util.h"
#include "uvm-private.h"

#define RAM_MIB 8
#define RAM_SIZE ((uint64_t)RAM_MIB << 20)

#include "uvm-test.h"

static struct tdm_dom *make(const char *extra_cfg, bool replica)
{
    return make_cfg(RAM_MIB, extra_cfg, replica, 0);
}

static void run_a_while(void) { usleep(30000); }

static void staging(struct tdm_staging *st, struct tdm_dom *d)
{
    tdm_staging_init(st);
    assert_int_equal(tdm_staging_alloc(st, d->npages), 0);
}

static void snap(struct tdm_dom *d, struct tdm_staging *st, uint64_t epoch)
{
    assert_int_equal(tdm_driver_uvm.suspend(d), 0);
    tdm_staging_reset(st, epoch);
    assert_int_equal(tdm_driver_uvm.capture(d, st), 0);
}

/* ---- dirty tracking ---- */

static void test_dirty_exact(void **state)
{
    struct as a = {.n = 0};
    struct tdm_staging st;
    struct tdm_dom *d;
    static const uint64_t want[] = {0x200, 0x203, 0x204, 0x300, 0x301, 0x302};

    (void)state;
    mov_imm(&a, RAX, 0x200010);
    EMIT(&a, 0xc6, 0x00, 0x01);                 /* mov byte [rax],1 */
    mov_imm(&a, RAX, 0x203fff);
    EMIT(&a, 0x66, 0xc7, 0x00, 0x01, 0x00);     /* mov word [rax],1: 2 pages */
    mov_imm(&a, RDI, 0x300008);
    hcall(&a, UVM_HC_TIME);                     /* host writes 8 bytes */
    mov_imm(&a, RDI, 0x301ff8);
    mov_imm(&a, RSI, 16);
    hcall(&a, UVM_HC_RANDOM);                   /* host write across 2 pages */
    spin(&a);
    write_kernel(a.b, a.n);
    d = make(NULL, false);
    run_a_while();
    staging(&st, d);
    snap(d, &st, 1);
    for (size_t i = 0; i < st.npages; i++)
        print_message("dirty pfn 0x%llx\n", (unsigned long long)st.pfns[i]);
    /* exactly: the byte, both pages of the straddling word, the host's
     * writes of the time value and of the random bytes; the firmware's own
     * page was only read and the stack never touched */
    assert_int_equal(st.npages, TDM_ARRAY_SIZE(want));
    for (size_t i = 0; i < TDM_ARRAY_SIZE(want); i++)
        assert_int_equal(st.pfns[i], want[i]);
    assert_int_equal(tdm_staging_page(&st, 0)[0x10], 1);
    assert_int_equal(st.state_len, uvm_state_size());

    /* nothing ran since: the next capture is empty ... */
    tdm_staging_reset(&st, 2);
    assert_int_equal(tdm_driver_uvm.capture(d, &st), 0);
    assert_int_equal(st.npages, 0);
    /* ... and after log_dirty(true) it is every page, once */
    tdm_driver_uvm.log_dirty(d, true);
    tdm_staging_reset(&st, 3);
    assert_int_equal(tdm_driver_uvm.capture(d, &st), 0);
    assert_int_equal(st.npages, d->npages);
    assert_memory_equal(tdm_staging_page(&st, 0x100), d->ram + 0x100000,
                        TDM_PAGE_SIZE);
    tdm_staging_reset(&st, 4);
    assert_int_equal(tdm_driver_uvm.capture(d, &st), 0);
    assert_int_equal(st.npages, 0);
    assert_int_equal(tdm_driver_uvm.resume(d), 0);
    /* capture needs a suspended domain */
    tdm_staging_reset(&st, 5);
    assert_int_equal(tdm_driver_uvm.capture(d, &st), -1);

    tdm_driver_uvm.destroy(d);
    tdm_staging_dispose(&st);
    unlink(kpath);
}

/* ---- the input recorder ---- */

static struct {
    int n[8];
    uint8_t last[8][32];
    size_t last_len[8];
} rec;

static void recorder(void *arg, enum uvm_input_kind kind, const void *p,
                     size_t len)
{
    (void)arg;
    assert_true(kind > 0 && kind < 8);
    rec.n[kind]++;
    rec.last_len[kind] = len;
    memcpy(rec.last[kind], p, TDM_MIN(len, sizeof(rec.last[kind])));
}

static void test_input_recorder(void **state)
{
    struct as a = {.n = 0};
    struct tdm_dom *d;
    size_t loop;

    (void)state;
    loop = a.n;
    mov_imm(&a, RDI, 0x301000);
    mov_imm(&a, RSI, 24);
    hcall(&a, UVM_HC_RANDOM);
    mov_imm(&a, RDI, 0x302000);
    hcall(&a, UVM_HC_TIME);
    mov_imm(&a, RDI, 0);
    hcall(&a, UVM_HC_WAIT);
    jmp_to(&a, loop);
    write_kernel(a.b, a.n);
    d = make(NULL, false);
    memset(&rec, 0, sizeof(rec));
    /* attach while parked: the vCPU thread reads the pointer */
    assert_int_equal(tdm_driver_uvm.suspend(d), 0);
    uvm_set_input_recorder(d, recorder, NULL);
    assert_int_equal(tdm_driver_uvm.resume(d), 0);
    run_a_while();
    assert_int_equal(tdm_driver_uvm.suspend(d), 0);
    /* parked inside one of the three calls; every value the guest holds
     * went through the recorder first */
    assert_true(rec.n[UVM_INPUT_RANDOM] > 0);
    assert_true(rec.n[UVM_INPUT_TIME] > 0);
    assert_true(rec.n[UVM_INPUT_WAIT] > 0);
    assert_int_equal(rec.last_len[UVM_INPUT_RANDOM], 24);
    assert_memory_equal(rec.last[UVM_INPUT_RANDOM], d->ram + 0x301000, 24);
    assert_int_equal(rec.last_len[UVM_INPUT_TIME], 8);
    assert_memory_equal(rec.last[UVM_INPUT_TIME], d->ram + 0x302000, 8);
    uvm_set_input_recorder(d, NULL, NULL);
    assert_int_equal(tdm_driver_uvm.resume(d), 0);
    tdm_driver_uvm.destroy(d);
    unlink(kpath);
}

/* ---- CPU state through a replica ---- */

/* loop: inc rbx; [lea rcx; in WAIT]; add r9,3; mov rax,0x400000;
 *       mov [rax],rbx; jmp loop */
static void counter_guest_hc(bool hypercall)
{
    struct as a = {.n = 0};

    EMIT(&a, 0x48, 0xff, 0xc3);                 /* inc rbx */
    if (hypercall) {
        EMIT(&a, 0xbf, 0, 0, 0, 0);             /* mov edi,0 */
        hcall(&a, UVM_HC_WAIT);
    }
    EMIT(&a, 0x49, 0x83, 0xc1, 0x03);           /* add r9,3 */
    mov_imm(&a, RAX, 0x400000);
    EMIT(&a, 0x48, 0x89, 0x18);                 /* mov [rax],rbx */
    jmp_to(&a, 0);
    write_kernel(a.b, a.n);
}

static void counter_guest(void)
{
    counter_guest_hc(false);
}

static void regs(struct tdm_dom *d, uint64_t *rbx, uint64_t *r9, uint64_t *rip)
{
    uc_reg_read(d->uc, UC_X86_REG_RBX, rbx);
    uc_reg_read(d->uc, UC_X86_REG_R9, r9);      /* the 3x counter */
    uc_reg_read(d->uc, UC_X86_REG_RIP, rip);
}

static void state_through_replica(bool hypercall)
{
    struct tdm_staging st;
    struct tdm_dom *p, *r;
    uint64_t rbx, r9, rip, rbx2, r92, rip2, mem;

    counter_guest_hc(hypercall);
    p = make(NULL, false);
    r = make(NULL, true);
    staging(&st, p);

    /* an inactive replica is trivially suspended and cannot be captured */
    assert_int_equal(tdm_driver_uvm.suspend(r), 0);
    tdm_staging_reset(&st, 0);
    assert_int_equal(tdm_driver_uvm.capture(r, &st), -1);

    tdm_driver_uvm.log_dirty(p, true);
    run_a_while();
    snap(p, &st, 1);
    regs(p, &rbx, &r9, &rip);
    assert_true(rbx > 1000);
    assert_int_equal(tdm_driver_uvm.apply(r, &st), 0);
    /* a whole epoch: the replica's RAM is the primary's, byte for byte */
    assert_memory_equal(r->ram, p->ram, p->ram_size);
    assert_int_equal(r->cpu.gpr[1], rbx);
    assert_int_equal(r->cpu.gpr[9], r9);
    if (hypercall) {
        /* parked in the hypercall: the carried state is after the IN */
        assert_true(p->hc_parked);
        assert_int_equal(r->ram[r->cpu.rip - 2], 0xe5);
        assert_int_equal(r->ram[r->cpu.rip - 1], UVM_HC_WAIT);
        assert_int_equal(r->cpu.gpr[0], 0);     /* WAIT's result */
    } else {
        assert_int_equal(r->cpu.rip, rip);
    }
    assert_int_equal(tdm_driver_uvm.resume(p), 0);

    assert_int_equal(tdm_driver_uvm.activate(r), 0);
    assert_int_equal(tdm_driver_uvm.activate(r), -1);  /* only once */
    assert_int_equal(tdm_driver_uvm.apply(r, &st), -1); /* it runs now */
    run_a_while();
    assert_int_equal(tdm_driver_uvm.suspend(r), 0);
    regs(r, &rbx2, &r92, &rip2);
    memcpy(&mem, r->ram + 0x400000, 8);
    /* it went on from the captured point, not from the start */
    assert_true(rbx2 > rbx);
    assert_true(r92 == 3 * rbx2 || r92 + 3 == 3 * rbx2);
    assert_true(mem == rbx2 || mem + 1 == rbx2);
    assert_true(tdm_driver_uvm.running(r));

    tdm_driver_uvm.destroy(p);
    tdm_driver_uvm.destroy(r);
    tdm_staging_dispose(&st);
    unlink(kpath);
}

static void test_state_through_replica(void **state)
{
    (void)state;
    state_through_replica(false);   /* stopped from outside (no hypercalls) */
}

static void test_state_through_replica_parked_in_hypercall(void **state)
{
    (void)state;
    state_through_replica(true);
}

/* A deterministic guest run to its end twice from one checkpoint: on the
 * primary, and on a replica activated from it. Every register the guest
 * computes with, and all of RAM, must come out the same. */
static void test_replica_finishes_identically(void **state)
{
    struct as a = {.n = 0};
    struct tdm_staging st;
    struct tdm_dom *p, *r;
    uint64_t pr[UVM_NGPR], rr[UVM_NGPR];
    size_t loop;

    (void)state;
    /* rbx counts to 3e6; each round stores rbx, mixes r10 = r10*33 ^ rbx
     * and writes it to page (rbx & 255) of a region, then EXIT(0) */
    loop = a.n;
    EMIT(&a, 0x48, 0xff, 0xc3);                 /* inc rbx */
    EMIT(&a, 0x4d, 0x6b, 0xd2, 0x21);           /* imul r10,r10,33 */
    EMIT(&a, 0x49, 0x31, 0xda);                 /* xor r10,rbx */
    EMIT(&a, 0x48, 0x89, 0xd8);                 /* mov rax,rbx */
    EMIT(&a, 0x48, 0x25, 0xff, 0, 0, 0);        /* and rax,255 */
    EMIT(&a, 0x48, 0xc1, 0xe0, 0x0c);           /* shl rax,12 */
    EMIT(&a, 0x48, 0x05, 0, 0, 0x50, 0);        /* add rax,0x500000 */
    EMIT(&a, 0x4c, 0x89, 0x10);                 /* mov [rax],r10 */
    EMIT(&a, 0x48, 0x81, 0xfb, 0xc0, 0xc6, 0x2d, 0x00); /* cmp rbx,3000000 */
    EMIT(&a, 0x75, 0x00);                       /* jne loop (patched) */
    a.b[a.n - 1] = (uint8_t)(loop - a.n);
    mov_imm(&a, RDI, 0);
    hcall(&a, UVM_HC_EXIT);
    spin(&a);
    write_kernel(a.b, a.n);

    memset(&stops, 0, sizeof(stops));
    p = make(NULL, false);
    r = make(NULL, true);
    staging(&st, p);
    tdm_driver_uvm.log_dirty(p, true);
    usleep(2000);
    snap(p, &st, 1);
    assert_int_equal(tdm_driver_uvm.apply(r, &st), 0);
    assert_true(r->cpu.gpr[1] < 3000000);       /* mid-run */
    assert_int_equal(tdm_driver_uvm.resume(p), 0);
    wait_stop();
    assert_false(stops.crashed);
    assert_non_null(strstr(stops.why, "exit code 0"));
    assert_false(tdm_driver_uvm.running(p));

    memset(&stops, 0, sizeof(stops));
    assert_int_equal(tdm_driver_uvm.activate(r), 0);
    wait_stop();
    assert_false(stops.crashed);

    assert_int_equal(tdm_driver_uvm.suspend(p), 0);
    assert_int_equal(tdm_driver_uvm.suspend(r), 0);
    for (int i = 0; i < UVM_NGPR; i++) {
        static const int ids[UVM_NGPR] = {
            UC_X86_REG_RAX, UC_X86_REG_RBX, UC_X86_REG_RCX, UC_X86_REG_RDX,
            UC_X86_REG_RSI, UC_X86_REG_RDI, UC_X86_REG_RBP, UC_X86_REG_RSP,
            UC_X86_REG_R8, UC_X86_REG_R9, UC_X86_REG_R10, UC_X86_REG_R11,
            UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15};
        uc_reg_read(p->uc, ids[i], &pr[i]);
        uc_reg_read(r->uc, ids[i], &rr[i]);
    }
    assert_int_equal(pr[1], 3000000);
    assert_memory_equal(pr, rr, sizeof(pr));
    assert_memory_equal(p->ram, r->ram, p->ram_size);

    tdm_driver_uvm.destroy(p);
    tdm_driver_uvm.destroy(r);
    tdm_staging_dispose(&st);
    unlink(kpath);
}

/* ---- the state blob ---- */

static void reseal(uint8_t *buf, size_t n)
{
    tdm_put_le32(buf + n - 4, tdm_crc32c(0, buf, n - 4));
}

static void test_state_decode_rejects(void **state)
{
    struct uvm_cpu c, c2;
    struct uvm_dev dev = {.guest_time_ns = 5, .nic_present = true,
                          .mac = {0x52, 0x54, 0, 1, 2, 3}, .prefix = 24,
                          .ip = 0x0100000a}, dev2;
    uint8_t buf[1024], good[1024];
    size_t n = uvm_state_size();
    char err[128];

    (void)state;
    memset(&c, 0, sizeof(c));
    for (int i = 0; i < UVM_NGPR; i++)
        c.gpr[i] = 0x0101010101010101ull * (uint64_t)(i + 1);
    c.rip = 0x100000;
    c.rflags = 0x246;
    c.seg[UVM_SEG_DS] = 0x10;
    c.fs_base = 0x7000;
    c.cr0 = 0x11;
    c.efer = 0x500;
    c.xmm[3][7] = 0x99;
    c.mxcsr = 0x1f80;
    uvm_state_encode(&c, &dev, good);
    memset(&c2, 0, sizeof(c2));
    assert_int_equal(uvm_state_decode(good, n, &c2, &dev2, err, sizeof(err)), 0);
    assert_memory_equal(&c, &c2, sizeof(c));
    assert_int_equal(dev2.guest_time_ns, 5);
    assert_true(dev2.nic_present);
    assert_memory_equal(dev2.mac, dev.mac, 6);
    assert_int_equal(dev2.ip, dev.ip);
    assert_int_equal(dev2.prefix, 24);

    /* truncated, at every length */
    for (size_t len = 0; len < n; len++)
        assert_int_equal(uvm_state_decode(good, len, &c2, &dev2, err, sizeof(err)), -1);
    /* too long */
    memcpy(buf, good, n);
    assert_int_equal(uvm_state_decode(buf, n + 1, &c2, &dev2, err, sizeof(err)), -1);
    /* any single flipped bit */
    for (size_t bit = 0; bit < n * 8; bit += 7) {
        memcpy(buf, good, n);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_equal(uvm_state_decode(buf, n, &c2, &dev2, err, sizeof(err)), -1);
    }
    /* wrong version, named as such */
    memcpy(buf, good, n);
    buf[4] = 9;
    assert_int_equal(uvm_state_decode(buf, n, &c2, &dev2, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "version"));
    /* well sealed but wrong inside: reserved bits, RFLAGS, MXCSR, NIC */
    memcpy(buf, good, n);
    buf[6] = 1;
    reseal(buf, n);
    assert_int_equal(uvm_state_decode(buf, n, &c2, &dev2, err, sizeof(err)), -1);
    memcpy(buf, good, n);
    tdm_put_le64(buf + 152, 0x246 | (1ull << 40));
    reseal(buf, n);
    assert_int_equal(uvm_state_decode(buf, n, &c2, &dev2, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "RFLAGS"));
    memcpy(buf, good, n);
    tdm_put_le32(buf + 480, 0x10000);
    reseal(buf, n);
    assert_int_equal(uvm_state_decode(buf, n, &c2, &dev2, err, sizeof(err)), -1);
    memcpy(buf, good, n);
    buf[496] = 2;
    reseal(buf, n);
    assert_int_equal(uvm_state_decode(buf, n, &c2, &dev2, err, sizeof(err)), -1);
    /* a failed decode leaves the outputs alone */
    memset(&c2, 0xab, sizeof(c2));
    memcpy(buf, good, n);
    buf[20] ^= 1;
    assert_int_equal(uvm_state_decode(buf, n, &c2, &dev2, err, sizeof(err)), -1);
    assert_int_equal(c2.rip, 0xababababababababull);
}

static void test_apply_bad_epoch_leaves_replica(void **state)
{
    struct tdm_staging st, bad;
    struct tdm_dom *p, *r, *r2;
    struct uvm_cpu cpu;
    uint8_t *before;
    uint8_t junk[16] = {1, 2, 3};

    (void)state;
    counter_guest_hc(true);
    r = make(NULL, true);
    staging(&bad, r);
    /* nothing applied yet: a junk state is refused, RAM untouched */
    tdm_staging_reset(&bad, 1);
    memset(tdm_staging_add_page(&bad, 5), 0x77, TDM_PAGE_SIZE);
    tdm_staging_set_state(&bad, junk, sizeof(junk));
    assert_int_equal(tdm_driver_uvm.apply(r, &bad), -1);
    assert_int_equal(r->ram[5 * TDM_PAGE_SIZE], 0);
    assert_false(r->have_state);
    assert_int_equal(tdm_driver_uvm.activate(r), -1);  /* nothing applied */

    /* a good epoch from a primary, then bad ones: the good one stays */
    p = make(NULL, false);
    staging(&st, p);
    tdm_driver_uvm.log_dirty(p, true);
    run_a_while();
    snap(p, &st, 2);
    assert_int_equal(tdm_driver_uvm.apply(r, &st), 0);
    cpu = r->cpu;
    before = tdm_malloc(r->ram_size);
    memcpy(before, r->ram, r->ram_size);

    /* 1: a page beyond RAM, after a good page */
    tdm_staging_reset(&bad, 3);
    memset(tdm_staging_add_page(&bad, 5), 0x77, TDM_PAGE_SIZE);
    bad.pfns[bad.npages] = r->npages;
    memset(bad.data + bad.npages * TDM_PAGE_SIZE, 0x66, TDM_PAGE_SIZE);
    bad.npages++;
    tdm_staging_set_state(&bad, st.state, st.state_len);
    assert_int_equal(tdm_driver_uvm.apply(r, &bad), -1);
    /* 2: one bit of the state flipped */
    tdm_staging_reset(&bad, 4);
    memset(tdm_staging_add_page(&bad, 5), 0x77, TDM_PAGE_SIZE);
    tdm_staging_set_state(&bad, st.state, st.state_len);
    bad.state[40] ^= 0x10;
    assert_int_equal(tdm_driver_uvm.apply(r, &bad), -1);
    /* 3: truncated state */
    tdm_staging_set_state(&bad, st.state, st.state_len - 1);
    assert_int_equal(tdm_driver_uvm.apply(r, &bad), -1);
    assert_memory_equal(before, r->ram, r->ram_size);
    assert_memory_equal(&cpu, &r->cpu, sizeof(cpu));
    free(before);

    /* 4: a primary with a NIC, a replica without: refused */
    r2 = make(NULL, true);
    r2->nic.present = true;     /* as if its config had a vif */
    assert_int_equal(tdm_driver_uvm.apply(r2, &st), -1);
    assert_false(r2->have_state);

    /* and the replica still activates from the good epoch */
    assert_int_equal(tdm_driver_uvm.activate(r), 0);
    run_a_while();
    assert_true(tdm_driver_uvm.running(r));

    tdm_driver_uvm.destroy(p);
    tdm_driver_uvm.destroy(r);
    tdm_driver_uvm.destroy(r2);
    tdm_staging_dispose(&st);
    tdm_staging_dispose(&bad);
    unlink(kpath);
}

/* ---- hypercalls ---- */

#define RES 0x500000ull         /* results: one u32 per call */

static void test_hypercall_bounds(void **state)
{
    static const struct {
        uint8_t port;
        uint64_t rdi, rsi;
        int32_t want;
    } calls[] = {
        {UVM_HC_CONSOLE, RAM_SIZE - 4, 16, -UVM_EFAULT},
        {UVM_HC_CONSOLE, ~0ull, 1, -UVM_EFAULT},
        {UVM_HC_TIME, RAM_SIZE - 4, 0, -UVM_EFAULT},
        {UVM_HC_TIME, ~0ull - 3, 0, -UVM_EFAULT},
        {UVM_HC_RANDOM, RAM_SIZE, 8, -UVM_EFAULT},
        {UVM_HC_RANDOM, 0x1000, 300, -UVM_EINVAL},
        {UVM_HC_NET_INFO, RAM_SIZE - 8, 0, -UVM_EFAULT},
        {UVM_HC_NET_TX, RAM_SIZE - 20, 60, -UVM_EFAULT},
        {UVM_HC_NET_TX, 0x1000, 2000, -UVM_EINVAL},
        {UVM_HC_NET_RX, RAM_SIZE - 100, UVM_FRAME_MAX, -UVM_EFAULT},
        {UVM_HC_NET_RX, 0x1000, 100, -UVM_EINVAL},
        {UVM_HC_CONFIG, RAM_SIZE - 1, 64, -UVM_EFAULT},
        {0x7f, 0, 0, -UVM_ENOSYS},
        /* and the good ones */
        {UVM_HC_NET_INFO, 0x600000, 0, 0},
        {UVM_HC_CONFIG, 0x601000, 64, 5},
        {UVM_HC_CONFIG, 0x602000, 3, 5},        /* too small: length only */
        {UVM_HC_NET_RX, 0x603000, UVM_FRAME_MAX, 0},    /* no NIC */
        {UVM_HC_CONSOLE, 0x604000, 3, 3},
    };
    struct as a = {.n = 0};
    struct tdm_dom *d;
    struct uvm_net_info ni;

    (void)state;
    for (size_t i = 0; i < TDM_ARRAY_SIZE(calls); i++) {
        mov_imm(&a, RDI, calls[i].rdi);
        mov_imm(&a, RSI, calls[i].rsi);
        hcall(&a, calls[i].port);
        store_eax(&a, RES + 4 * i);
    }
    mov_imm(&a, RDI, 0);
    hcall(&a, UVM_HC_EXIT);
    spin(&a);
    write_kernel(a.b, a.n);
    memset(&stops, 0, sizeof(stops));
    d = make("extra = \"hello\"\n", false);
    memcpy(d->ram + 0x602000, "xyz", 3);
    wait_stop();
    assert_false(stops.crashed);
    for (size_t i = 0; i < TDM_ARRAY_SIZE(calls); i++) {
        int32_t got = (int32_t)tdm_get_le32(d->ram + RES + 4 * i);
        if (got != calls[i].want)
            print_message("call %zu (port 0x%x): got %d, want %d\n", i,
                          calls[i].port, got, calls[i].want);
        assert_int_equal(got, calls[i].want);
    }
    memcpy(&ni, d->ram + 0x600000, sizeof(ni));
    assert_int_equal(ni.flags, 0);              /* no vif: no NIC */
    assert_string_equal((char *)d->ram + 0x601000, "hello");
    assert_int_equal(d->ram[0x602000], 'x');    /* not written */
    tdm_driver_uvm.destroy(d);
    unlink(kpath);
}

static void test_guest_stops(void **state)
{
    struct as a = {.n = 0};
    struct tdm_dom *d;

    (void)state;
    /* a panic with its message */
    memcpy(a.b + 0x100, "boom", 4);
    mov_imm(&a, RDI, UVM_LOAD_ADDR + 0x100);
    mov_imm(&a, RSI, 4);
    hcall(&a, UVM_HC_PANIC);
    spin(&a);
    a.n = 0x104;
    write_kernel(a.b, a.n);
    memset(&stops, 0, sizeof(stops));
    d = make(NULL, false);
    wait_stop();
    assert_true(stops.crashed);
    assert_non_null(strstr(stops.why, "boom"));
    assert_false(tdm_driver_uvm.running(d));
    tdm_driver_uvm.destroy(d);
    unlink(kpath);

    /* an invalid instruction */
    a.n = 0;
    EMIT(&a, 0x0f, 0x0b);                       /* ud2 */
    write_kernel(a.b, a.n);
    memset(&stops, 0, sizeof(stops));
    d = make(NULL, false);
    wait_stop();
    assert_true(stops.crashed);
    assert_non_null(strstr(stops.why, "emulation fault"));
    tdm_driver_uvm.destroy(d);
    unlink(kpath);

    /* a write outside RAM */
    a.n = 0;
    mov_imm(&a, RAX, RAM_SIZE + 0x1000);
    EMIT(&a, 0xc6, 0x00, 0x01);
    write_kernel(a.b, a.n);
    memset(&stops, 0, sizeof(stops));
    d = make(NULL, false);
    wait_stop();
    assert_true(stops.crashed);
    print_message("fault reported as: %s\n", stops.why);
    tdm_driver_uvm.destroy(d);
    unlink(kpath);
}

/* ---- suspend and resume ---- */

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static void suspend_many(bool hypercall, int rounds)
{
    struct tdm_dom *d;
    uint64_t last = 0, *lat = tdm_calloc((size_t)rounds, 8);

    counter_guest_hc(hypercall);
    d = make(NULL, false);
    for (int i = 0; i < rounds; i++) {
        uint64_t rbx, t0;
        usleep(500);
        t0 = tdm_now_ns();
        assert_int_equal(tdm_driver_uvm.suspend(d), 0);
        lat[i] = tdm_now_ns() - t0;
        uc_reg_read(d->uc, UC_X86_REG_RBX, &rbx);
        /* no progress lost, and none made while suspended */
        assert_true(rbx >= last);
        usleep(100);
        uc_reg_read(d->uc, UC_X86_REG_RBX, &last);
        assert_int_equal(last, rbx);
        assert_int_equal(tdm_driver_uvm.resume(d), 0);
    }
    run_a_while();
    assert_int_equal(tdm_driver_uvm.suspend(d), 0);
    uc_reg_read(d->uc, UC_X86_REG_RBX, &last);
    assert_true(last > 0);
    assert_true(tdm_driver_uvm.running(d));
    qsort(lat, (size_t)rounds, 8, cmp_u64);
    print_message("%s guest: %d suspends, latency p50 %.1f us, p99 %.1f us, "
                  "max %.1f us\n", hypercall ? "hypercalling" : "computing",
                  rounds, lat[rounds / 2] / 1e3, lat[rounds * 99 / 100] / 1e3,
                  lat[rounds - 1] / 1e3);
    tdm_driver_uvm.destroy(d);
    free(lat);
    unlink(kpath);
}

static void test_suspend_resume_many(void **state)
{
    (void)state;
    suspend_many(true, 1000);
    suspend_many(false, 30);    /* each waits out the outside-stop grace */
}

/* ---- output queue (no TAP: the test hook takes released frames) ---- */

int uvm__test_net_tx(struct tdm_dom *d, const uint8_t *frame, size_t len);

static int tx_count;
static uint8_t tx_last;
static void tx_hook(struct tdm_dom *d, const uint8_t *f, size_t len)
{
    (void)d;
    (void)len;
    tx_count++;
    tx_last = f[0];
}

static void test_output_queue(void **state)
{
    struct tdm_dom *d;
    struct tdm_output_stats s;
    uint8_t frame[60] = {0};

    (void)state;
    counter_guest();
    d = make(NULL, true);   /* no vCPU needed: drive net_tx's queue */
    uvm_test_tx_hook = tx_hook;
    tx_count = 0;
    tdm_driver_uvm.output_buffer(d, true, 1);
    for (int e = 1; e <= 3; e++) {
        frame[0] = (uint8_t)e;
        assert_int_equal(uvm__test_net_tx(d, frame, sizeof(frame)), 0);
        assert_int_equal(uvm__test_net_tx(d, frame, sizeof(frame)), 0);
        tdm_driver_uvm.output_cut(d, (uint64_t)e + 1);
    }
    assert_int_equal(tx_count, 0);          /* all held */
    tdm_driver_uvm.output_stats(d, &s);
    assert_int_equal(s.held_frames, 6);
    assert_int_equal(s.held_bytes, 6 * sizeof(frame));
    tdm_driver_uvm.output_release(d, 0);    /* nothing that old */
    assert_int_equal(tx_count, 0);
    tdm_driver_uvm.output_release(d, 2);    /* epochs 1 and 2, in order */
    assert_int_equal(tx_count, 4);
    assert_int_equal(tx_last, 2);
    tdm_driver_uvm.output_release(d, 2);    /* idempotent */
    assert_int_equal(tx_count, 4);
    tdm_driver_uvm.output_buffer(d, false, 0); /* the rest */
    assert_int_equal(tx_count, 6);
    assert_int_equal(tx_last, 3);
    assert_int_equal(uvm__test_net_tx(d, frame, sizeof(frame)), 0);
    assert_int_equal(tx_count, 7);          /* passthrough */
    tdm_driver_uvm.output_stats(d, &s);
    assert_int_equal(s.held_frames, 0);
    assert_int_equal(s.released_frames, 7);

    /* a full queue pushes back, counted, nothing dropped */
    tdm_driver_uvm.output_buffer(d, true, 10);
    for (int i = 0; i < UVM_QUEUE_MAX_FRAMES; i++)
        assert_int_equal(uvm__test_net_tx(d, frame, sizeof(frame)), 0);
    assert_int_equal(uvm__test_net_tx(d, frame, sizeof(frame)), -UVM_EAGAIN);
    tdm_driver_uvm.output_stats(d, &s);
    assert_int_equal(s.backpressure, 1);
    assert_int_equal(s.held_frames, UVM_QUEUE_MAX_FRAMES);
    assert_int_equal(s.discarded_frames, 0);
    tdm_driver_uvm.output_release(d, 10);
    assert_int_equal(tx_count, 7 + UVM_QUEUE_MAX_FRAMES);
    uvm_test_tx_hook = NULL;
    tdm_driver_uvm.destroy(d);
    unlink(kpath);
}

/* The guest's transmits through the hypercall, held and released. */
static void test_guest_tx_held(void **state)
{
    struct as a = {.n = 0};
    struct tdm_dom *d;
    struct tdm_output_stats s;
    size_t loop;

    (void)state;
    /* frame at 0x300000 (60 bytes of 0); TX it, store the result, WAIT */
    loop = a.n;
    mov_imm(&a, RDI, 0x300000);
    mov_imm(&a, RSI, 60);
    hcall(&a, UVM_HC_NET_TX);
    store_eax(&a, RES);
    mov_imm(&a, RDI, 1000);
    hcall(&a, UVM_HC_WAIT);
    jmp_to(&a, loop);
    write_kernel(a.b, a.n);
    uvm_test_tx_hook = tx_hook;
    tx_count = 0;
    d = make(NULL, false);
    assert_int_equal(tdm_driver_uvm.suspend(d), 0);
    tdm_driver_uvm.output_buffer(d, true, 1);
    tx_count = 0;
    assert_int_equal(tdm_driver_uvm.resume(d), 0);
    run_a_while();
    assert_int_equal(tdm_driver_uvm.suspend(d), 0);
    tdm_driver_uvm.output_cut(d, 2);
    tdm_driver_uvm.output_stats(d, &s);
    assert_true(s.held_frames > 0);
    assert_int_equal(tx_count, 0);
    assert_int_equal(tdm_driver_uvm.resume(d), 0);
    tdm_driver_uvm.output_release(d, 1);
    assert_int_equal((uint64_t)tx_count, s.held_frames);
    tdm_driver_uvm.destroy(d);
    uvm_test_tx_hook = NULL;
    unlink(kpath);
}

/* ---- a real TAP (root only) ---- */

static bool have_tap(void)
{
    if (geteuid() != 0) {
        print_message("SKIP: not root: the TAP test needs CAP_NET_ADMIN\n");
        return false;
    }
    if (access("/dev/net/tun", R_OK | W_OK) != 0) {
        print_message("SKIP: no /dev/net/tun\n");
        return false;
    }
    return true;
}

static void test_tap_garp_and_bridge(void **state)
{
    struct tdm_staging st;
    struct tdm_dom *p, *r;
    struct sockaddr_ll sll;
    char cfgp[256], cfgr[256], ifr[IFNAMSIZ], ifp[IFNAMSIZ], br[IFNAMSIZ];
    char cmd[256], path[128];
    uint8_t f[2048];
    int s, garps = 0;

    (void)state;
    if (!have_tap()) {
        skip();
        return;
    }
    snprintf(ifp, sizeof(ifp), "tdmtp%d", (int)getpid() % 100000);
    snprintf(ifr, sizeof(ifr), "tdmtr%d", (int)getpid() % 100000);
    snprintf(br, sizeof(br), "tdmtb%d", (int)getpid() % 100000);
    snprintf(cmd, sizeof(cmd), "ip link add %s type bridge 2>/dev/null && "
             "ip tuntap add %s mode tap 2>/dev/null", br, ifr);
    if (system(cmd) != 0) {
        print_message("SKIP: cannot make a bridge or a TAP with ip(8)\n");
        snprintf(cmd, sizeof(cmd), "ip link del %s 2>/dev/null", br);
        (void)!system(cmd);
        skip();
        return;
    }
    counter_guest_hc(true);
    snprintf(cfgp, sizeof(cfgp), "vif = \"mac=52:54:00:12:34:56,ip=10.9.8.7/24,"
             "tap=%s\"\n", ifp);
    snprintf(cfgr, sizeof(cfgr), "vif = \"mac=52:54:00:12:34:56,ip=10.9.8.7/24,"
             "tap=%s,bridge=%s\"\n", ifr, br);
    p = make(cfgp, false);
    r = make(cfgr, true);
    staging(&st, p);
    tdm_driver_uvm.log_dirty(p, true);
    run_a_while();
    snap(p, &st, 1);
    assert_int_equal(tdm_driver_uvm.apply(r, &st), 0);

    /* listen on the replica's (persistent) TAP before it comes up there */
    /* ETH_P_ALL: a bridge port's frames go to the bridge before any
     * per-protocol socket would see them */
    s = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
    assert_true(s >= 0);
    memset(&sll, 0, sizeof(sll));
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = (int)if_nametoindex(ifr);
    assert_true(sll.sll_ifindex > 0);
    assert_int_equal(bind(s, (struct sockaddr *)&sll, sizeof(sll)), 0);
    assert_int_equal(tdm_driver_uvm.activate(r), 0);
    for (int i = 0; i < 50 && garps < 3; i++) {
        struct pollfd pfd = {.fd = s, .events = POLLIN};
        ssize_t n;
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        for (;;) {
            static const uint8_t mac[6] = {0x52, 0x54, 0, 0x12, 0x34, 0x56};
            static const uint8_t ip[4] = {10, 9, 8, 7};
            struct sockaddr_ll from;
            socklen_t fl = sizeof(from);
            n = recvfrom(s, f, sizeof(f), 0, (struct sockaddr *)&from, &fl);
            if (n <= 0)
                break;
            /* only what the guest sent into the TAP, only ARP */
            if (from.sll_pkttype == PACKET_OUTGOING || n < 14 ||
                f[12] != 0x08 || f[13] != 0x06)
                continue;
            assert_true(n >= 42);
            assert_memory_equal(f + 6, mac, 6);     /* from the guest */
            assert_int_equal(f[0] & f[1] & f[2] & f[3] & f[4] & f[5], 0xff);
            assert_int_equal(f[21], 1);             /* request */
            assert_memory_equal(f + 22, mac, 6);
            assert_memory_equal(f + 28, ip, 4);     /* sender = target */
            assert_memory_equal(f + 38, ip, 4);
            garps++;
        }
    }
    assert_int_equal(garps, 3);
    snprintf(path, sizeof(path), "/sys/class/net/%s/brif/%s", br, ifr);
    assert_int_equal(access(path, F_OK), 0);       /* on the bridge */

    close(s);
    tdm_driver_uvm.destroy(p);
    tdm_driver_uvm.destroy(r);
    tdm_staging_dispose(&st);
    snprintf(cmd, sizeof(cmd), "ip tuntap del %s mode tap; ip link del %s",
             ifr, br);
    (void)!system(cmd);
    unlink(kpath);
}

/* ---- configuration ---- */

static void test_config_errors(void **state)
{
    static const struct {
        const char *text, *names;
    } bad[] = {
        {"name = \"t\"\nmemory = 1\n", "memory"},
        {"name = \"t\"\nmemory = 4097\n", "memory"},
        {"name = \"t\"\nmemory = x\n", "memory"},
        {"name = \"t\"\ndriver = \"xen\"\n", "driver"},
        {"name = \"t\"\nvif = \"mac=52:54:00:00:00:01\"\n", "vif"},
        {"name = \"t\"\nvif = \"ip=10.0.0.1/24\"\n", "vif"},
        {"name = \"t\"\nvif = \"mac=53:54:00:00:00:01,ip=10.0.0.1/24\"\n", "vif"},
        {"name = \"t\"\nvif = \"mac=52:54:00:00:00:01,ip=10.0.0.1/33\"\n", "vif"},
        {"name = \"t\"\nvif = \"mac=52:54:00:00:00:01,ip=10.0.0.1\"\n", "vif"},
        {"name = \"t\"\nvif = \"mac=52:54:00:00:00:01,ip=10.0.0.1/24,tap=waytoolonganame0\"\n", "vif"},
        {"name = \"t\"\nvif = \"mac=52:54:00:00:00:01,ip=10.0.0.1/24,colour=red\"\n", "vif"},
        {"name = \"t\"\ndisk = \"x.img\"\n", "disk"},
        {"name = \"t\"\nbogus = 1\n", "bogus"},
        {"memory = 8\n", "name"},
        {"name = \"12\"\n", "name"},
        {"name = \"a/b\"\n", "name"},
    };
    static const char *good[] = {
        "name = \"t\"\n",
        "name = \"t\"\ndriver = \"uvm\"\nmemory = 2\nkernel = \"/nonexistent\"\n"
        "extra = \"port=7\"\n",
        "name = \"averyveryverylongdomainname\"\n"
        "vif = \"mac=52:54:00:00:00:01,ip=10.0.0.1/24,bridge=br0\"\n",
    };
    char err[256], extra[1100], text[1200];
    struct tdm_cfg cfg;

    (void)state;
    for (size_t i = 0; i < TDM_ARRAY_SIZE(bad); i++) {
        tdm_cfg_init(&cfg);
        assert_int_equal(tdm_cfg_parse(&cfg, bad[i].text, strlen(bad[i].text),
                                       err, sizeof(err)), 0);
        err[0] = '\0';
        assert_int_equal(tdm_driver_uvm.validate(&cfg, err, sizeof(err)), -1);
        if (!strstr(err, bad[i].names))
            print_message("config %zu: '%s' does not name %s\n", i, err,
                          bad[i].names);
        assert_non_null(strstr(err, bad[i].names));
        tdm_cfg_dispose(&cfg);
    }
    for (size_t i = 0; i < TDM_ARRAY_SIZE(good); i++) {
        tdm_cfg_init(&cfg);
        assert_int_equal(tdm_cfg_parse(&cfg, good[i], strlen(good[i]), err,
                                       sizeof(err)), 0);
        assert_int_equal(tdm_driver_uvm.validate(&cfg, err, sizeof(err)), 0);
        tdm_cfg_dispose(&cfg);
    }
    /* extra: 1024 bytes is the limit */
    memset(extra, 'x', 1025);
    extra[1025] = '\0';
    snprintf(text, sizeof(text), "name = \"t\"\nextra = \"%s\"\n", extra);
    tdm_cfg_init(&cfg);
    assert_int_equal(tdm_cfg_parse(&cfg, text, strlen(text), err, sizeof(err)), 0);
    assert_int_equal(tdm_driver_uvm.validate(&cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "extra"));
    tdm_cfg_dispose(&cfg);

    /* create runs the same checks, and a missing kernel fails cleanly */
    strcpy(kpath, "/nonexistent/kernel");
    assert_null(make_cfg(RAM_MIB, "bogus = 1\n", false, -1));
    assert_null(make_cfg(RAM_MIB, NULL, false, -1));
    assert_null(make_cfg(RAM_MIB, "disk = \"x\"\n", true, -1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dirty_exact),
        cmocka_unit_test(test_input_recorder),
        cmocka_unit_test(test_state_through_replica),
        cmocka_unit_test(test_state_through_replica_parked_in_hypercall),
        cmocka_unit_test(test_replica_finishes_identically),
        cmocka_unit_test(test_state_decode_rejects),
        cmocka_unit_test(test_apply_bad_epoch_leaves_replica),
        cmocka_unit_test(test_hypercall_bounds),
        cmocka_unit_test(test_guest_stops),
        cmocka_unit_test(test_suspend_resume_many),
        cmocka_unit_test(test_output_queue),
        cmocka_unit_test(test_guest_tx_held),
        cmocka_unit_test(test_tap_garp_and_bridge),
        cmocka_unit_test(test_config_errors),
    };
    int rc;

    int fd;

    strcpy(kpath, "/tmp/tdm-uvm-test-XXXXXX");
    if ((fd = mkstemp(kpath)) < 0) {
        perror("mkstemp");
        return 1;
    }
    close(fd);
    tdm_log_init("test-uvm", true, getenv("TDM_TEST_DEBUG") ? TDM_LOG_DEBUG : TDM_LOG_ERR - 1);
    evthread_use_pthreads();
    base = event_base_new();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    event_base_free(base);
    unlink(kpath);
    return rc;
}
