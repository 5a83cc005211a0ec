/* SPDX-License-Identifier: LGPL-2.1-only */
#ifndef TDM_UVM_PRIVATE_H
#define TDM_UVM_PRIVATE_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <sys/un.h>

#include <libnbd.h>
#include <unicorn/unicorn.h>

#include "driver.h"
#include "uvm-abi.h"

/* Inputs from outside the machine: the only sources of non-determinism.
 * Every one is produced inside uvm_input() (uvm.c), which hands the bytes
 * that enter the guest to the recorder, if one is attached, before they
 * reach the guest. A replay log attaches there. An empty record means the
 * call produced nothing (no frame waiting, getrandom failed). */
enum uvm_input_kind {
    UVM_INPUT_TIME = 1,         /* u64 LE guest nanoseconds, written to RAM */
    UVM_INPUT_RANDOM = 2,       /* the random bytes, written to RAM */
    UVM_INPUT_FRAME = 3,        /* the received frame, written to RAM */
    UVM_INPUT_WAIT = 4,         /* u8: UVM_HC_WAIT's result (timing) */
    UVM_INPUT_TX_STATUS = 5,    /* u32 LE: UVM_HC_NET_TX's result (queue
                                   space depends on the backup's acks) */
};
typedef void (*uvm_input_recorder)(void *arg, enum uvm_input_kind kind,
                                   const void *data, size_t len);

/* The CPU state as an explicit register list (uc_context_* is not a wire
 * format). The firmware is built general-registers-only, but the vector
 * state is kept so that any x86-64 guest code resumes exactly. */
#define UVM_NGPR 16
enum { UVM_SEG_CS, UVM_SEG_SS, UVM_SEG_DS, UVM_SEG_ES, UVM_SEG_FS,
       UVM_SEG_GS, UVM_NSEG };
struct uvm_cpu {
    uint64_t gpr[UVM_NGPR];     /* RAX RBX RCX RDX RSI RDI RBP RSP R8..R15 */
    uint64_t rip, rflags;
    uint16_t seg[UVM_NSEG];     /* selectors, UVM_SEG_* order */
    uint64_t fs_base, gs_base;
    uint64_t cr0, cr3, cr4, efer;
    uint8_t xmm[16][16];
    uint32_t mxcsr;
};

/* Device-model state carried in every epoch. The NIC identity travels so
 * that a backup configured with another MAC or IP refuses the epoch rather
 * than bringing the guest up under a different address. */
struct uvm_dev {
    uint64_t guest_time_ns;     /* guest clock at capture */
    bool nic_present;
    uint8_t mac[6];
    uint8_t prefix;
    uint32_t ip;                /* network order */
};

#define UVM_STATE_MAGIC 0x534d5655u     /* "UVMS" */
#define UVM_STATE_VERSION 2
size_t uvm_state_size(void);
void uvm_state_encode(const struct uvm_cpu *cpu, const struct uvm_dev *dev,
                      uint8_t *out);
int uvm_state_decode(const uint8_t *p, size_t len, struct uvm_cpu *cpu,
                     struct uvm_dev *dev, char *err, size_t errlen);

struct uvm_frame {
    struct uvm_frame *next;
    uint64_t epoch;
    uint32_t len;
    uint8_t data[];
};

#define UVM_QUEUE_MAX_FRAMES 4096
#define UVM_QUEUE_MAX_BYTES (8u << 20)

struct uvm_nic {
    bool present;
    uint8_t mac[6];
    uint32_t ip;                /* network order */
    uint8_t prefix;
    char tap[16];
    char bridge[16];
    int fd;
};

struct tdm_dom {
    char name[64];
    struct event_base *base;
    struct tdm_dom_events ev;
    struct event *stop_ev;
    bool replica;

    size_t ram_size, npages;
    uint8_t *ram;
    uint64_t *dirty;            /* one bit per page, set by the write hook */
    bool log_all;               /* next capture takes every page */

    char kernel[PATH_MAX];
    char extra[1025];
    struct uvm_nic nic;

    /* The disk: an NBD export, used only on the vCPU thread once it runs
     * (connected before it starts, closed after it has stopped). */
    char disk_nbd[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct nbd_handle *nbd;     /* NULL: no disk, or a replica not active */
    uint64_t disk_size;
    uint8_t *disk_bounce;       /* UVM_DISK_MAX_IO, for reads */

    uc_engine *uc;
    uc_hook hk_write, hk_in;
    pthread_t thread;
    bool thread_started;

    /* vCPU control, under lock */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool want_pause, parked, in_emu, quit;
    bool in_hook;               /* inside a hypercall (no outside stops) */
    bool hc_parked;             /* parked inside a hypercall ... */
    uint32_t hc_result;         /* ... whose result EAX is about to get */
    uint64_t hc_resume;         /* ... and the RIP after it (the guest's RCX) */
    bool stopped, crashed;
    char why[160];
    int wake_fd;                /* eventfd: interrupts UVM_HC_WAIT */
    uint64_t forced_stops;      /* suspends that needed a stop from the
                                   engine thread (no hypercall in time) */
    uint64_t suspend_last_ns, suspend_max_ns;   /* suspend latency */

    uint64_t time_base_ns;      /* guest time = now - time_base */

    /* output queue, under qlock */
    pthread_mutex_t qlock;
    struct uvm_frame *qhead, *qtail;
    size_t qframes, qbytes;
    bool buffering;
    uint64_t cur_epoch;
    struct tdm_output_stats stats;

    /* replica: the last applied state */
    struct uvm_cpu cpu;
    struct uvm_dev dev;
    bool have_state;

    char con[256];
    size_t conlen;

    uvm_input_recorder record;
    void *record_arg;
};

/* For tests: frames released go here instead of a TAP when set. */
extern void (*uvm_test_tx_hook)(struct tdm_dom *d, const uint8_t *frame,
                                size_t len);
/* For tests: when >= 0, a domain with a vif gets a duplicate of this fd
 * (a datagram socket: one frame per message) instead of a TAP. */
extern int uvm_test_nic_fd;
void uvm_set_input_recorder(struct tdm_dom *d, uvm_input_recorder fn,
                            void *arg);

#endif
