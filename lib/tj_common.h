/* tj_common.h: error codes, slices and small helpers shared by every module. */
#ifndef TJ_COMMON_H
#define TJ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* One error convention everywhere: 0 on success, a negative TJ_E* code on failure. */
enum {
    TJ_OK = 0,
    TJ_ENOMEM = -1, /* an allocation failed */
    TJ_ENOSPC = -2, /* a buffer reached its hard cap */
    TJ_EPARSE = -3, /* malformed input */
    TJ_EINVAL = -4, /* invalid argument or configuration */
    TJ_ENOENT = -5, /* not found */
    TJ_EIO = -6,    /* an I/O call failed (errno tells more) */
    TJ_ELIMIT = -7, /* a resource limit was hit (PCRE2 match limit, ...) */
    TJ_EAGAIN = -8, /* try again later (backpressure) */
};

/* A borrowed view into someone else's memory. */
struct tj_slice {
    const char *ptr;
    size_t len;
};

#define TJ_SLICE_LIT(s) ((struct tj_slice){(s), sizeof(s) - 1})
#define TJ_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define TJ_UNUSED(x)    ((void)(x))

#if defined(__GNUC__)
#define TJ_LIKELY(x)    __builtin_expect(!!(x), 1)
#define TJ_UNLIKELY(x)  __builtin_expect(!!(x), 0)
#define TJ_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define TJ_LIKELY(x)   (x)
#define TJ_UNLIKELY(x) (x)
#define TJ_PRINTF(f, a)
#endif

/* Returns a short static description of a TJ_E* code. */
const char *tj_strerror(int code);

#endif
