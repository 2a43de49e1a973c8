/* tj_log.c: stderr self-logging. Any thread may call tj_log; each event is formatted into a
 * stack buffer and written with one write(2), so lines from several threads never interleave. */
#include "tj_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum tj_log_level min_level = TJ_LOG_INFO;
static bool json_format;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void tj_log_set_level(enum tj_log_level level)
{
    min_level = level;
}

void tj_log_set_json(bool json)
{
    json_format = json;
}

/* Appends msg to line[*n..cap) as JSON string content (quotes not included), cut to fit. */
static void json_escape(char *line, size_t *n, size_t cap, const char *msg)
{
    static const char hex[] = "0123456789abcdef";

    for (const unsigned char *p = (const unsigned char *)msg; *p && *n + 7 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            line[(*n)++] = '\\';
            line[(*n)++] = (char)*p;
        } else if (*p < 0x20) {
            *n += (size_t)snprintf(line + *n, cap - *n, "\\u00%c%c", hex[*p >> 4], hex[*p & 15]);
        } else {
            line[(*n)++] = (char)*p;
        }
    }
}

void tj_log(enum tj_log_level level, const char *fmt, ...)
{
    char line[2048], msg[1800], stamp[40];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int k;
    va_list ap;

    if (level < min_level)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + n, sizeof(stamp) - n, ".%03ldZ", ts.tv_nsec / 1000000L);
    va_start(ap, fmt);
    k = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (k < 0)
        msg[0] = '\0';
    if (json_format) {
        k = snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\",\"pid\":%ld,\"msg\":\"",
                     stamp, level_names[level], (long)getpid());
        n = (size_t)k;
        json_escape(line, &n, sizeof(line) - 3, msg);
        line[n++] = '"';
        line[n++] = '}';
    } else {
        k = snprintf(line, sizeof(line) - 1, "%s tailjet[%ld] %s: %s", stamp, (long)getpid(),
                     level_names[level], msg);
        n = k < 0 ? 0 : (size_t)k < sizeof(line) - 1 ? (size_t)k : sizeof(line) - 2;
    }
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
