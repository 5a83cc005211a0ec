/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "tdm-util.h"

static const char *log_ident = "tandem";
static bool log_foreground = true;
static int log_max = TDM_LOG_INFO;

void tdm_log_init(const char *ident, bool foreground, int max_level)
{
    log_ident = ident;
    log_foreground = foreground;
    log_max = max_level;
    if (!foreground)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void tdm_log_set_level(int max_level) { log_max = max_level; }
int tdm_log_get_level(void) { return log_max; }

static const char *level_name(int level)
{
    switch (level) {
    case TDM_LOG_ERR: return "error";
    case TDM_LOG_WARNING: return "notice";
    case TDM_LOG_INFO: return "info";
    default: return "debug";
    }
}

static void vlog(int level, const char *func, int errnum, const char *fmt,
                 va_list ap)
{
    char msg[1024];
    int n;

    if (level > log_max)
        return;
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n < 0)
        return;
    if (errnum && (size_t)n < sizeof(msg))
        snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(errnum));

    if (log_foreground) {
        struct timespec ts;
        struct tm tm;
        char tbuf[32];

        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        strftime(tbuf, sizeof(tbuf), "%H:%M:%S", &tm);
        /* One fprintf per line so concurrent threads do not interleave. */
        fprintf(stderr, "%s.%03ld %s[%s] %s: %s\n", tbuf, ts.tv_nsec / 1000000,
                log_ident, level_name(level), func, msg);
    } else {
        syslog(level, "%s: %s", func, msg);
    }
}

void tdm_logx(int level, const char *func, const char *fmt, ...)
{
    va_list ap;
    int saved = errno;

    va_start(ap, fmt);
    vlog(level, func, 0, fmt, ap);
    va_end(ap);
    errno = saved;
}

void tdm_log_errno(int level, const char *func, const char *fmt, ...)
{
    va_list ap;
    int saved = errno;

    va_start(ap, fmt);
    vlog(level, func, saved, fmt, ap);
    va_end(ap);
    errno = saved;
}

void tdm_fatal(const char *func, bool with_errno, const char *fmt, ...)
{
    va_list ap;
    int saved = errno;

    va_start(ap, fmt);
    vlog(TDM_LOG_ERR, func, with_errno ? saved : 0, fmt, ap);
    va_end(ap);
    exit(1);
}
