/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The C runtime the compiler may call even with -ffreestanding. memcpy and
 * memset use the string instructions: short, and a C loop here could be
 * turned back into a call to itself.
 */
#include "guest.h"

void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    void *d = dst;

    __asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    void *d = dst;

    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *p = a, *q = b;

    for (size_t i = 0; i < n; i++)
        if (p[i] != q[i])
            return p[i] - q[i];
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;

    while (s[n])
        n++;
    return n;
}
