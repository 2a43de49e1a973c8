/* tj_json.h: writing JSON text into a tj_buf. Strings are escaped so the output is always valid
 * JSON: quotes, backslashes and control characters are escaped and every invalid UTF-8 sequence
 * is replaced by U+FFFD. This is the encoder's hot loop, scanned 16 bytes at a time. */
#ifndef TJ_JSON_H
#define TJ_JSON_H

#include "tj_buf.h"
#include "tj_simd.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Appends s[0..n) escaped, without surrounding quotes. Returns 0 or a tj_buf error (the
 * buffer may then hold part of the string: callers rewind to a saved length). */
int tj_json_escape(struct tj_buf *out, const char *s, size_t n);

/* Appends "s" (quoted and escaped). Same errors as tj_json_escape. */
int tj_json_string(struct tj_buf *out, const char *s, size_t n);

#if defined(__SSE2__)
/* Bit i set where byte i of v must be escaped: '"', '\\', a control character, or (signed
 * compare) a byte >= 0x80. */
static inline uint32_t tj_json_special16(__m128i v)
{
    __m128i m = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
        _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
    return (uint32_t)_mm_movemask_epi8(m);
}
#endif

/* The common case of tj_json_string, inline: appends "s" when s is 1 to 32 bytes with nothing to
 * escape (most captured fields are such words, numbers, addresses and times), in one or two
 * block loads, tests and stores. Returns false, having written nothing, for any other string.
 * Not for n == 0: an empty string may sit at the very end of a readable page, where
 * tj_block_readable's rule does not hold. */
static inline __attribute__((always_inline)) bool tj_json_string_short(struct tj_buf *out,
                                                                       const char *s, size_t n)
{
#if defined(__SSE2__)
    __m128i v0, v1, v2, v3;
    uint64_t special;
    char *w;

    if (n - 1 >= 64 || tj_buf_reserve(out, 66) != 0)
        return false;
    if (TJ_UNLIKELY(!tj_window_readable(s, n)))
        return false;
    /* Four blocks, whatever n: one path, with no branch on the length, for every string up
     * to 64 bytes (addresses, URLs, referrers and most user agents). */
    v0 = _mm_loadu_si128((const __m128i *)s);
    v1 = _mm_loadu_si128((const __m128i *)(s + 16));
    v2 = _mm_loadu_si128((const __m128i *)(s + 32));
    v3 = _mm_loadu_si128((const __m128i *)(s + 48));
    special = (uint64_t)tj_json_special16(v0) | (uint64_t)tj_json_special16(v1) << 16 |
              (uint64_t)tj_json_special16(v2) << 32 | (uint64_t)tj_json_special16(v3) << 48;
    if (special & (~(uint64_t)0 >> (64 - n)))
        return false;
    w = out->data + out->len;
    w[0] = '"';
    _mm_storeu_si128((__m128i *)(w + 1), v0);
    _mm_storeu_si128((__m128i *)(w + 17), v1); /* past n when n is short: overwritten */
    _mm_storeu_si128((__m128i *)(w + 33), v2);
    _mm_storeu_si128((__m128i *)(w + 49), v3);
    w[n + 1] = '"';
    out->len += n + 2;
    return true;
#else
    (void)out;
    (void)s;
    (void)n;
    return false;
#endif
}

/* n, moved back (by at most 3 bytes) so that s[0..result) does not end inside a multi-byte
 * sequence: used to cut a long line on a character boundary. It does not validate the rest
 * (the encoder replaces invalid bytes). */
size_t tj_utf8_cut(const char *s, size_t n);

/* If text is a valid JSON number, appends it and returns 0; else TJ_EPARSE, buffer unchanged. */
int tj_json_number_text(struct tj_buf *out, const char *s, size_t n);

/* Parses s[0..n) as a signed 64-bit decimal integer (optional sign, digits only) and appends
 * its canonical JSON form. Returns 0, TJ_EPARSE (not an integer or out of range; buffer
 * unchanged) or a tj_buf error. */
int tj_json_int_text(struct tj_buf *out, const char *s, size_t n);

/* Parses s[0..n) as a float (strtod syntax, finite) and appends a JSON number for it. Returns 0
 * or TJ_EPARSE (buffer unchanged) or a tj_buf error. */
int tj_json_float_text(struct tj_buf *out, const char *s, size_t n);

/* Appends the decimal form of v. */
int tj_json_i64(struct tj_buf *out, int64_t v);

/* Writes the current UTC time as RFC 3339 with nanoseconds ("2026-11-25T17:56:16.123456789Z"),
 * the @timestamp of lines that carry no time of their own. buf needs 31 bytes. */
void tj_time_now(char *buf, size_t n);

#endif
