/* tj_simd.h: the one rule for 16-byte loads past the end of a string. Scanners load 16 bytes
 * at a time; near a string's end they may load past it, but only within the same 4 KiB page,
 * where a load cannot fault, and they ignore the extra bytes. Sanitizer builds never do it, so
 * every out-of-bounds report there stays a real one. */
#ifndef TJ_SIMD_H
#define TJ_SIMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TJ_OVERREAD_OK 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) ||                         \
    __has_feature(thread_sanitizer)
#define TJ_OVERREAD_OK 0
#endif
#endif
#ifndef TJ_OVERREAD_OK
#define TJ_OVERREAD_OK 1
#endif

/* True when 16 bytes can be loaded from p, `left` of which belong to the string. Never for
 * left == 0: p is then the string's end, which may be the first byte of an unmapped page. */
static inline bool tj_block_readable(const void *p, size_t left)
{
    return left >= 16 || (TJ_OVERREAD_OK && left > 0 && ((uintptr_t)p & 4095) <= 4096 - 16);
}

/* The same for a 64-byte window (four 16-byte loads). */
static inline bool tj_window_readable(const void *p, size_t left)
{
    return left >= 64 || (TJ_OVERREAD_OK && left > 0 && ((uintptr_t)p & 4095) <= 4096 - 64);
}

#endif
