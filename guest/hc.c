/* SPDX-License-Identifier: LGPL-2.1-only */
/* Hypercalls: `inl $port, %eax`, arguments in RDI, RSI, RDX, the resume
 * address in RCX (uvm-abi.h). */
#include "guest.h"

/* A macro, not a function: the port must be an immediate ("N"). */
#define HC(port, a0, a1, a2)                                                   \
    ({                                                                         \
        uint32_t hc_r_;                                                        \
        __asm__ volatile("lea 1f(%%rip), %%rcx\n\tinl %1, %%eax\n1:"          \
                         : "=a"(hc_r_)                                         \
                         : "N"(port), "D"((uint64_t)(a0)),                     \
                           "S"((uint64_t)(a1)), "d"((uint64_t)(a2))            \
                         : "rcx", "memory");                                   \
        (int)(int32_t)hc_r_;                                                   \
    })

int hc_console(const void *buf, size_t len)
{
    return HC(UVM_HC_CONSOLE, (uintptr_t)buf, len, 0);
}

int hc_random(void *buf, size_t len)
{
    return HC(UVM_HC_RANDOM, (uintptr_t)buf, len, 0);
}

int hc_net_info(struct uvm_net_info *info)
{
    return HC(UVM_HC_NET_INFO, (uintptr_t)info, 0, 0);
}

int hc_net_tx(const void *frame, size_t len)
{
    return HC(UVM_HC_NET_TX, (uintptr_t)frame, len, 0);
}

int hc_net_rx(void *buf, size_t len)
{
    return HC(UVM_HC_NET_RX, (uintptr_t)buf, len, 0);
}

int hc_wait(uint64_t timeout_us)
{
    return HC(UVM_HC_WAIT, timeout_us, 0, 0);
}

int hc_config(char *buf, size_t len)
{
    return HC(UVM_HC_CONFIG, (uintptr_t)buf, len, 0);
}

_Noreturn void hc_panic(const char *msg, size_t len)
{
    (void)HC(UVM_HC_PANIC, (uintptr_t)msg, len, 0);
    /* The host never resumes a panicked guest; stop here if it does. */
    for (;;)
        __asm__ volatile("hlt");
}

static int hc_disk(uint32_t op, uint64_t offset, uint64_t buf, uint32_t len)
{
    struct uvm_disk_req req = {.op = op, .len = len, .offset = offset,
                               .buf = buf};

    return HC(UVM_HC_DISK, (uintptr_t)&req, 0, 0);
}

int hc_disk_info(uint64_t *size)
{
    return hc_disk(UVM_DISK_INFO, 0, (uintptr_t)size, sizeof(*size));
}

int hc_disk_read(uint64_t offset, void *buf, uint32_t len)
{
    return hc_disk(UVM_DISK_READ, offset, (uintptr_t)buf, len);
}

int hc_disk_write(uint64_t offset, const void *buf, uint32_t len)
{
    return hc_disk(UVM_DISK_WRITE, offset, (uintptr_t)buf, len);
}

int hc_disk_flush(void)
{
    return hc_disk(UVM_DISK_FLUSH, 0, 0, 0);
}
