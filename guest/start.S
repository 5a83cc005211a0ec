/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Entry at UVM_LOAD_ADDR: 64-bit mode, RSP = top of RAM - 16, RDI = RAM size.
 * Zero .bss (the host loads only the image), then run guest_main.
 */
    .section .text.entry, "ax"
    .globl _start
_start:
    mov     %rdi, %r12
    lea     __bss_start(%rip), %rdi
    lea     __bss_end(%rip), %rcx
    sub     %rdi, %rcx
    xor     %eax, %eax
    cld
    rep stosb
    mov     %r12, %rdi
    and     $-16, %rsp
    call    guest_main
1:  hlt
    jmp     1b

    .section .note.GNU-stack, "", @progbits
