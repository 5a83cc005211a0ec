/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A printf subset for the firmware's console and STATS text: %d %i %u %x %X
 * %s %c %%, the l, ll and z length modifiers, a field width, the 0 flag and
 * a precision for %s (digits or *).
 * Returns what snprintf would: the untruncated length.
 */
#include "guest.h"

#define LOG_PREFIX "kv-guest: "

struct fmt_out {
    char *buf;
    size_t size, len;
};

static void fmt_putc(struct fmt_out *o, char c)
{
    if (o->len + 1 < o->size)
        o->buf[o->len] = c;
    o->len++;
}

static void fmt_pad(struct fmt_out *o, char c, size_t have, size_t width)
{
    for (; have < width; have++)
        fmt_putc(o, c);
}

static void fmt_num(struct fmt_out *o, unsigned long long v, bool neg,
                    unsigned base, bool upper, size_t width, bool zero)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    size_t n = 0;

    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);
    if (neg && zero)
        fmt_putc(o, '-');
    fmt_pad(o, zero ? '0' : ' ', n + neg, width);
    if (neg && !zero)
        fmt_putc(o, '-');
    while (n)
        fmt_putc(o, tmp[--n]);
}

int fmt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct fmt_out o = { buf, size, 0 };
    unsigned long long u;
    long long s;
    const char *str;
    size_t width, prec, n;
    bool zero;
    int lng;

    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            fmt_putc(&o, *fmt);
            continue;
        }
        fmt++;
        zero = *fmt == '0';
        if (zero)
            fmt++;
        for (width = 0; *fmt >= '0' && *fmt <= '9'; fmt++)
            width = width * 10 + (size_t)(*fmt - '0');
        prec = (size_t)-1;
        if (*fmt == '.') {
            fmt++;
            if (*fmt == '*') {
                s = va_arg(ap, int);
                prec = s < 0 ? 0 : (size_t)s;
                fmt++;
            } else {
                for (prec = 0; *fmt >= '0' && *fmt <= '9'; fmt++)
                    prec = prec * 10 + (size_t)(*fmt - '0');
            }
        }
        /* z is l: size_t is unsigned long on x86-64, the only target. */
        lng = 0;
        for (; *fmt == 'l' || *fmt == 'z'; fmt++)
            lng++;

        switch (*fmt) {
        case 'd':
        case 'i':
            s = lng >= 2 ? va_arg(ap, long long)
              : lng ? va_arg(ap, long) : va_arg(ap, int);
            u = s < 0 ? 0ull - (unsigned long long)s : (unsigned long long)s;
            fmt_num(&o, u, s < 0, 10, false, width, zero);
            break;
        case 'u':
        case 'x':
        case 'X':
            u = lng >= 2 ? va_arg(ap, unsigned long long)
              : lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
            fmt_num(&o, u, false, *fmt == 'u' ? 10 : 16, *fmt == 'X', width,
                    zero);
            break;
        case 's':
            str = va_arg(ap, const char *);
            for (n = 0; n < prec && str[n]; n++)
                ;
            fmt_pad(&o, ' ', n, width);
            for (size_t i = 0; i < n; i++)
                fmt_putc(&o, str[i]);
            break;
        case 'c':
            fmt_putc(&o, (char)va_arg(ap, int));
            break;
        case '%':
            fmt_putc(&o, '%');
            break;
        default:
            /* %p, %f and the like: fail rather than print garbage. */
            return -1;
        }
    }
    if (size)
        buf[o.len < size ? o.len : size - 1] = '\0';
    return (int)o.len;
}

int fmt_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = fmt_vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

void guest_log(const char *fmt, ...)
{
    char line[256];
    size_t prefix = sizeof(LOG_PREFIX) - 1, len;
    va_list ap;
    int n;

    memcpy(line, LOG_PREFIX, prefix);
    va_start(ap, fmt);
    n = fmt_vsnprintf(line + prefix, sizeof(line) - prefix - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    len = prefix + ((size_t)n < sizeof(line) - prefix - 1 ? (size_t)n
                                                         : sizeof(line) - prefix - 2);
    line[len++] = '\n';
    hc_console(line, len);
}
