/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The micro-VM's machine ABI, shared by the guest firmware (guest/) and the
 * uvm driver (libs/driver/uvm). Freestanding: only <stdint.h>.
 *
 * Machine
 *   - x86-64, one vCPU, 64-bit mode from the first instruction, flat: guest
 *     virtual == guest physical, no page tables, no interrupts.
 *   - RAM at guest-physical 0 .. memory size (a multiple of 4 KiB).
 *   - The firmware image (a flat binary) is loaded at UVM_LOAD_ADDR and
 *     entered there with RSP = top of RAM - 16, RDI = RAM size in bytes.
 *
 * Hypercalls
 *   The guest executes `inl $PORT, %eax` (IN with an 8-bit immediate port)
 *   with RCX holding the address of the instruction after it, as SYSCALL
 *   leaves it:   lea 1f(%rip), %rcx;  inl $PORT, %eax;  1:
 *   PORT selects the call; arguments are in RDI, RSI, RDX; the 32-bit result
 *   is returned in EAX (>= 0 success, < 0 a negated UVM_E* code).
 *   RCX is the exact resume point the host needs to hold the vCPU inside a
 *   hypercall (a suspend parks it there); a hypercall without it still
 *   works, but a suspend then has to stop the vCPU from outside.
 *   Guest buffers are guest-physical addresses; the host checks each range
 *   against RAM and fails the call with -UVM_EFAULT otherwise.
 *   Every value the host writes into guest RAM is marked dirty.
 *
 * Disk
 *   Present when the domain has disk_nbd (an NBD export the host connected
 *   to before the first instruction); otherwise UVM_HC_DISK fails with
 *   -UVM_ENOSYS. One call takes one struct uvm_disk_req (all fields
 *   little-endian, as the machine) and completes synchronously: when it
 *   returns, the export has answered. Per op:
 *     UVM_DISK_INFO   the disk size in bytes, a u64, to buf; offset 0, len 8
 *     UVM_DISK_READ   len bytes at offset into buf (marked dirty)
 *     UVM_DISK_WRITE  len bytes from buf to offset
 *     UVM_DISK_FLUSH  what was written reaches stable storage; offset and
 *                     len 0, buf ignored
 *   READ and WRITE: offset and len multiples of UVM_DISK_SECTOR, len 1 ..
 *   UVM_DISK_MAX_IO bytes, the range inside the disk. Errors: -UVM_ENOSYS
 *   no disk, -UVM_EINVAL a bad op, offset, len or range, -UVM_EFAULT the
 *   request or buf not inside RAM, -UVM_EIO the export failed (the host
 *   logs why). A write is not visible to a replica by itself: the disk is
 *   replicated underneath, by the export.
 *
 * Non-determinism: time, random bytes and received frames are the only
 * inputs from outside; the host passes each through one logged function.
 * Disk contents are not an input: the disk is replicated with the epoch.
 */
#ifndef UVM_ABI_H
#define UVM_ABI_H

#include <stdint.h>

#define UVM_LOAD_ADDR 0x100000u
#define UVM_MIN_RAM (2u << 20)

enum uvm_hypercall {
    /* (gpa buf, len) -> len. Bytes to the host log, line-buffered. */
    UVM_HC_CONSOLE = 0x10,
    /* (gpa out_u64) -> 0. Monotonic nanoseconds since the domain was
     * created; continues across failover (never goes back). */
    UVM_HC_TIME = 0x11,
    /* (gpa buf, len <= 256) -> len. Random bytes. */
    UVM_HC_RANDOM = 0x12,
    /* (gpa struct uvm_net_info) -> 0. NIC identity from the domain config. */
    UVM_HC_NET_INFO = 0x13,
    /* (gpa frame, len) -> 0, or -UVM_EAGAIN when the output queue is full
     * (the guest retries after UVM_HC_WAIT), -UVM_EINVAL for a bad length. */
    UVM_HC_NET_TX = 0x14,
    /* (gpa buf, buflen >= UVM_FRAME_MAX) -> frame length, 0 if none. */
    UVM_HC_NET_RX = 0x15,
    /* (timeout_us) -> 1 if a frame may be waiting, 0 on timeout. May also
     * return early for host reasons: the guest must simply loop. */
    UVM_HC_WAIT = 0x16,
    /* (gpa buf, buflen) -> length of the domain's "extra" string (the
     * firmware's command line), copied NUL-terminated if it fits. */
    UVM_HC_CONFIG = 0x17,
    /* (code) -> does not return: the guest shut down. */
    UVM_HC_EXIT = 0x18,
    /* (gpa msg, len) -> does not return: the guest crashed. */
    UVM_HC_PANIC = 0x19,
    /* (gpa struct uvm_disk_req) -> 0 or -UVM_E*. See "Disk" above. */
    UVM_HC_DISK = 0x1a,
};

enum uvm_error {
    UVM_EINVAL = 22,
    UVM_EFAULT = 14,
    UVM_EAGAIN = 11,
    UVM_ENOSYS = 38,
    UVM_EIO = 5,
};

#define UVM_FRAME_MAX 1518u     /* Ethernet frame without FCS */
#define UVM_FRAME_MIN 14u

struct uvm_net_info {
    uint8_t mac[6];
    uint8_t prefix_len;         /* netmask as a prefix length */
    uint8_t flags;              /* UVM_NET_* */
    uint32_t ip;                /* IPv4, network byte order */
    uint32_t gateway;           /* network byte order, 0 if none */
    uint32_t mtu;
};
#define UVM_NET_PRESENT 0x01

#define UVM_DISK_SECTOR 512u
#define UVM_DISK_MAX_IO (1u << 20)

enum uvm_disk_op {
    UVM_DISK_INFO = 1,
    UVM_DISK_READ = 2,
    UVM_DISK_WRITE = 3,
    UVM_DISK_FLUSH = 4,
};

/* UVM_HC_DISK's argument, 24 bytes at a guest-physical address. */
struct uvm_disk_req {
    uint32_t op;                /* enum uvm_disk_op */
    uint32_t len;               /* bytes */
    uint64_t offset;            /* bytes from the start of the disk */
    uint64_t buf;               /* gpa */
};

#endif
