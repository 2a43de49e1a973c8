/* tj_log.c: stderr self-logging. Any thread may call tj_log; each event is formatted into a
 * stack buffer and written with one write(2), so lines from several threads never interleave. */
#include "tj_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum tj_log_level min_level = TJ_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void tj_log_set_level(enum tj_log_level level)
{
    min_level = level;
}

void tj_log(enum tj_log_level level, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int k;
    va_list ap;

    if (level < min_level)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    k = snprintf(line + n, sizeof(line) - n, ".%03ldZ tailjet[%ld] %s: ", ts.tv_nsec / 1000000L,
                 (long)getpid(), level_names[level]);
    n += (size_t)k;
    va_start(ap, fmt);
    k = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (k < 0)
        k = 0;
    n += (size_t)k < sizeof(line) - n - 1 ? (size_t)k : sizeof(line) - n - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) {
        /* Nowhere left to report a failing stderr. */
    }
}

const char *tj_strerror(int code)
{
    switch (code) {
    case TJ_OK:
        return "success";
    case TJ_ENOMEM:
        return "out of memory";
    case TJ_ENOSPC:
        return "buffer cap reached";
    case TJ_EPARSE:
        return "malformed input";
    case TJ_EINVAL:
        return "invalid argument";
    case TJ_ENOENT:
        return "not found";
    case TJ_EIO:
        return "I/O error";
    case TJ_ELIMIT:
        return "resource limit reached";
    case TJ_EAGAIN:
        return "try again";
    }
    return "unknown error";
}
