/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The uvm driver with tiny hand-assembled guests: exact dirty tracking,
 * CPU state carried through a replica, the state decoder's checks, the
 * held output queue, and configuration errors. No root, no TAP.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <stdio.h>
#include <unistd.h>

#include "tdm-util.h"
#include "uvm-private.h"

static struct event_base *base;
static char kpath[64];

static void write_kernel(const uint8_t *code, size_t n)
{
    FILE *f;

    strcpy(kpath, "/tmp/tdm-uvm-test-XXXXXX");
    int fd = mkstemp(kpath);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_int_equal(fwrite(code, 1, n, f), n);
    fclose(f);
}

static struct tdm_dom *make(const char *extra_cfg, bool replica)
{
    struct tdm_cfg cfg;
    struct tdm_dom *d = NULL;
    char text[512], err[256];

    snprintf(text, sizeof(text), "name = \"t\"\nmemory = 8\nkernel = \"%s\"\n%s",
             kpath, extra_cfg ? extra_cfg : "");
    tdm_cfg_init(&cfg);
    assert_int_equal(tdm_cfg_parse(&cfg, text, strlen(text), err, sizeof(err)), 0);
    if (replica)
        assert_int_equal(tdm_driver_uvm.create_replica(&cfg, base, NULL, &d), 0);
    else
        assert_int_equal(tdm_driver_uvm.create(&cfg, base, NULL, &d), 0);
    tdm_cfg_dispose(&cfg);
    return d;
}

static void run_a_while(void) { usleep(30000); }

/* mov rax,imm64: 48 b8 <8>; mov byte [rax],1: c6 00 01;
 * mov word [rax],1: 66 c7 00 01 00; mov rdi,imm64: 48 bf <8>;
 * in eax,0x11 (UVM_HC_TIME): e5 11; jmp $: eb fe */
static size_t put64(uint8_t *p, uint64_t v)
{
    tdm_put_le64(p, v);
    return 8;
}

static void test_dirty_exact(void **state)
{
    uint8_t code[64];
    size_t n = 0;
    struct tdm_staging st;
    struct tdm_dom *d;

    code[n++] = 0x48; code[n++] = 0xb8; n += put64(code + n, 0x200010);
    code[n++] = 0xc6; code[n++] = 0x00; code[n++] = 0x01;
    code[n++] = 0x48; code[n++] = 0xb8; n += put64(code + n, 0x203fff);
    code[n++] = 0x66; code[n++] = 0xc7; code[n++] = 0x00; code[n++] = 0x01; code[n++] = 0x00;
    code[n++] = 0x48; code[n++] = 0xbf; n += put64(code + n, 0x300008);
    code[n++] = 0xe5; code[n++] = UVM_HC_TIME;
    code[n++] = 0xeb; code[n++] = 0xfe;
    write_kernel(code, n);
    d = make(NULL, false);
    run_a_while();

    tdm_staging_init(&st);
    assert_int_equal(tdm_staging_alloc(&st, d->npages), 0);
    assert_int_equal(tdm_driver_uvm.suspend(d), 0);
    tdm_staging_reset(&st, 1);
    assert_int_equal(tdm_driver_uvm.capture(d, &st), 0);
    /* exactly: the byte, both pages of the straddling word, the host's
     * write of the time value */
    for (size_t i = 0; i < st.npages; i++)
        print_message("dirty pfn 0x%llx\n", (unsigned long long)st.pfns[i]);
    assert_int_equal(st.npages, 4);
    assert_int_equal(st.pfns[0], 0x200);
    assert_int_equal(st.pfns[1], 0x203);
    assert_int_equal(st.pfns[2], 0x204);
    assert_int_equal(st.pfns[3], 0x300);
    assert_int_equal(tdm_staging_page(&st, 0)[0x10], 1);
    assert_int_equal(st.state_len, uvm_state_size());

    /* nothing ran since: the next capture is empty ... */
    tdm_staging_reset(&st, 2);
    assert_int_equal(tdm_driver_uvm.capture(d, &st), 0);
    assert_int_equal(st.npages, 0);
    /* ... and after log_dirty(true) it is every page */
    tdm_driver_uvm.log_dirty(d, true);
    tdm_staging_reset(&st, 3);
    assert_int_equal(tdm_driver_uvm.capture(d, &st), 0);
    assert_int_equal(st.npages, d->npages);
    assert_int_equal(tdm_driver_uvm.resume(d), 0);

    tdm_driver_uvm.destroy(d);
    tdm_staging_dispose(&st);
    unlink(kpath);
}

/* loop: inc rbx (48 ff c3); add r9,3 (49 83 c1 03);
 *       mov rax,0x400000 (48 b8 <8>); mov [rax],rbx (48 89 18); jmp loop */
static void counter_guest_hc(bool hypercall)
{
    uint8_t code[64];
    size_t n = 0;

    code[n++] = 0x48; code[n++] = 0xff; code[n++] = 0xc3;
    if (hypercall) { /* mov edi,0; in eax,WAIT: where suspends park */
        code[n++] = 0xbf; code[n++] = 0; code[n++] = 0; code[n++] = 0; code[n++] = 0;
        /* lea rcx,[rip+2]: the resume point, as the ABI asks */
        code[n++] = 0x48; code[n++] = 0x8d; code[n++] = 0x0d;
        code[n++] = 2; code[n++] = 0; code[n++] = 0; code[n++] = 0;
        code[n++] = 0xe5; code[n++] = UVM_HC_WAIT;
    }
    code[n++] = 0x49; code[n++] = 0x83; code[n++] = 0xc1; code[n++] = 0x03;
    code[n++] = 0x48; code[n++] = 0xb8; n += put64(code + n, 0x400000);
    code[n++] = 0x48; code[n++] = 0x89; code[n++] = 0x18;
    code[n++] = 0xeb; code[n] = (uint8_t)(-(int)(n + 1)); n++;
    write_kernel(code, n);
}

static void counter_guest(void)
{
    counter_guest_hc(false);
}

static void regs(struct tdm_dom *d, uint64_t *rbx, uint64_t *rcx, uint64_t *rip)
{
    uc_reg_read(d->uc, UC_X86_REG_RBX, rbx);
    uc_reg_read(d->uc, UC_X86_REG_R9, rcx);  /* the 3x counter */
    uc_reg_read(d->uc, UC_X86_REG_RIP, rip);
}

static void state_through_replica(bool hypercall)
{
    struct tdm_staging st;
    struct tdm_dom *p, *r;
    uint64_t rbx, rcx, rip, rbx2, rcx2, rip2, mem;

    counter_guest_hc(hypercall);
    p = make(NULL, false);
    r = make(NULL, true);
    tdm_staging_init(&st);
    assert_int_equal(tdm_staging_alloc(&st, p->npages), 0);

    /* many suspend/resume cycles: no deadlock, progress continues */
    for (int i = 0; i < 50; i++) {
        assert_int_equal(tdm_driver_uvm.suspend(p), 0);
        assert_int_equal(tdm_driver_uvm.resume(p), 0);
    }
    tdm_driver_uvm.log_dirty(p, true);
    run_a_while();
    assert_int_equal(tdm_driver_uvm.suspend(p), 0);
    tdm_staging_reset(&st, 1);
    assert_int_equal(tdm_driver_uvm.capture(p, &st), 0);
    regs(p, &rbx, &rcx, &rip);
    assert_true(rbx > 1000);
    assert_int_equal(tdm_driver_uvm.apply(r, &st), 0);
    assert_int_equal(r->cpu.gpr[1], rbx);
    if (hypercall) {
        /* parked in the hypercall: the carried state is after the IN */
        assert_true(p->hc_parked);
        assert_int_equal(r->ram[r->cpu.rip - 2], 0xe5);
        assert_int_equal(r->ram[r->cpu.rip - 1], UVM_HC_WAIT);
    } else {
        assert_int_equal(r->cpu.rip, rip);
    }

    assert_int_equal(tdm_driver_uvm.activate(r), 0);
    run_a_while();
    assert_int_equal(tdm_driver_uvm.suspend(r), 0);
    regs(r, &rbx2, &rcx2, &rip2);
    memcpy(&mem, r->ram + 0x400000, 8);
    /* it went on from the captured point, not from the start */
    assert_true(rbx2 > rbx);
    assert_true(rcx2 == 3 * rbx2 || rcx2 + 3 == 3 * rbx2);
    assert_true(mem == rbx2 || mem + 1 == rbx2);
    assert_true(tdm_driver_uvm.running(r));

    tdm_driver_uvm.destroy(p);
    tdm_driver_uvm.destroy(r);
    tdm_staging_dispose(&st);
    unlink(kpath);
}

static void test_state_through_replica(void **state)
{
    state_through_replica(false);   /* stopped from outside (no hypercalls) */
}

static void test_state_through_replica_parked_in_hypercall(void **state)
{
    state_through_replica(true);
}

static void test_state_decode_rejects(void **state)
{
    struct uvm_cpu c = {0}, c2;
    struct uvm_dev dev = {.guest_time_ns = 5}, dev2;
    uint8_t buf[1024];
    size_t n = uvm_state_size();
    char err[128];

    c.rip = 0x100000;
    uvm_state_encode(&c, &dev, buf);
    assert_int_equal(uvm_state_decode(buf, n, &c2, &dev2, err, sizeof(err)), 0);
    assert_int_equal(c2.rip, 0x100000);
    assert_int_equal(dev2.guest_time_ns, 5);
    assert_int_equal(uvm_state_decode(buf, n - 1, &c2, &dev2, err, sizeof(err)), -1);
    buf[0] ^= 1;
    assert_int_equal(uvm_state_decode(buf, n, &c2, &dev2, err, sizeof(err)), -1);
    buf[0] ^= 1;
    buf[4] = 9;
    assert_int_equal(uvm_state_decode(buf, n, &c2, &dev2, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "version"));
}

static void test_apply_bad_state_leaves_replica(void **state)
{
    struct tdm_staging st;
    struct tdm_dom *r;
    uint8_t junk[16] = {1, 2, 3};

    counter_guest();
    r = make(NULL, true);
    tdm_staging_init(&st);
    assert_int_equal(tdm_staging_alloc(&st, r->npages), 0);
    tdm_staging_reset(&st, 1);
    memset(tdm_staging_add_page(&st, 5), 0x77, TDM_PAGE_SIZE);
    tdm_staging_set_state(&st, junk, sizeof(junk));
    assert_int_equal(tdm_driver_uvm.apply(r, &st), -1);
    assert_int_equal(r->ram[5 * TDM_PAGE_SIZE], 0);   /* untouched */
    assert_false(r->have_state);
    assert_int_equal(tdm_driver_uvm.activate(r), -1);  /* nothing applied */
    tdm_driver_uvm.destroy(r);
    tdm_staging_dispose(&st);
    unlink(kpath);
}

int uvm__test_net_tx(struct tdm_dom *d, const uint8_t *frame, size_t len);

static int tx_count;
static uint8_t tx_last;
static void tx_hook(struct tdm_dom *d, const uint8_t *f, size_t len)
{
    tx_count++;
    tx_last = f[0];
}

static void test_output_queue(void **state)
{
    struct tdm_dom *d;
    struct tdm_output_stats s;
    uint8_t frame[60] = {0};

    counter_guest();
    d = make(NULL, true);   /* no vCPU needed: drive net_tx's queue */
    uvm_test_tx_hook = tx_hook;
    tx_count = 0;
    tdm_driver_uvm.output_buffer(d, true, 1);
    /* the guest transmits through the hypercall path's queue */
    for (int e = 1; e <= 3; e++) {
        frame[0] = (uint8_t)e;
        assert_int_equal(uvm__test_net_tx(d, frame, sizeof(frame)), 0);
        assert_int_equal(uvm__test_net_tx(d, frame, sizeof(frame)), 0);
        tdm_driver_uvm.output_cut(d, (uint64_t)e + 1);
    }
    assert_int_equal(tx_count, 0);          /* all held */
    tdm_driver_uvm.output_stats(d, &s);
    assert_int_equal(s.held_frames, 6);
    tdm_driver_uvm.output_release(d, 2);    /* epochs 1 and 2, in order */
    assert_int_equal(tx_count, 4);
    assert_int_equal(tx_last, 2);
    tdm_driver_uvm.output_buffer(d, false, 0); /* the rest */
    assert_int_equal(tx_count, 6);
    assert_int_equal(tx_last, 3);
    assert_int_equal(uvm__test_net_tx(d, frame, sizeof(frame)), 0);
    assert_int_equal(tx_count, 7);          /* passthrough */

    /* a full queue pushes back, counted, nothing dropped */
    tdm_driver_uvm.output_buffer(d, true, 10);
    for (int i = 0; i < UVM_QUEUE_MAX_FRAMES; i++)
        assert_int_equal(uvm__test_net_tx(d, frame, sizeof(frame)), 0);
    assert_int_equal(uvm__test_net_tx(d, frame, sizeof(frame)), -UVM_EAGAIN);
    tdm_driver_uvm.output_stats(d, &s);
    assert_int_equal(s.backpressure, 1);
    assert_int_equal(s.held_frames, UVM_QUEUE_MAX_FRAMES);
    uvm_test_tx_hook = NULL;
    tdm_driver_uvm.destroy(d);
    unlink(kpath);
}

static void test_config_errors(void **state)
{
    const char *bad[] = {
        "name = \"t\"\nmemory = 1\n",
        "name = \"t\"\nmemory = x\n",
        "name = \"t\"\ndriver = \"xen\"\n",
        "name = \"t\"\nvif = \"mac=52:54:00:00:00:01\"\n",
        "name = \"t\"\nvif = \"mac=53:54:00:00:00:01,ip=10.0.0.1/24\"\n",
        "name = \"t\"\nvif = \"mac=52:54:00:00:00:01,ip=10.0.0.1/33\"\n",
        "name = \"t\"\nvif = \"mac=52:54:00:00:00:01,ip=10.0.0.1/24,tap=waytoolonganame0\"\n",
        "name = \"t\"\nvif = \"mac=52:54:00:00:00:01,ip=10.0.0.1/24,colour=red\"\n",
        "name = \"t\"\ndisk = \"x.img\"\n",
        "name = \"t\"\nbogus = 1\n",
        "memory = 8\n",
    };
    char err[256];

    for (size_t i = 0; i < TDM_ARRAY_SIZE(bad); i++) {
        struct tdm_cfg cfg;
        tdm_cfg_init(&cfg);
        assert_int_equal(tdm_cfg_parse(&cfg, bad[i], strlen(bad[i]), err, sizeof(err)), 0);
        err[0] = '\0';
        assert_int_equal(tdm_driver_uvm.validate(&cfg, err, sizeof(err)), -1);
        assert_true(strlen(err) > 0);
        tdm_cfg_dispose(&cfg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dirty_exact),
        cmocka_unit_test(test_state_through_replica),
        cmocka_unit_test(test_state_through_replica_parked_in_hypercall),
        cmocka_unit_test(test_state_decode_rejects),
        cmocka_unit_test(test_apply_bad_state_leaves_replica),
        cmocka_unit_test(test_output_queue),
        cmocka_unit_test(test_config_errors),
    };
    int rc;

    tdm_log_init("test-uvm", true, getenv("TDM_TEST_DEBUG") ? TDM_LOG_DEBUG : TDM_LOG_ERR - 1);
    evthread_use_pthreads();
    base = event_base_new();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    event_base_free(base);
    return rc;
}
