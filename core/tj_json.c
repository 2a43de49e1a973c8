/* tj_json.c: JSON text output helpers (escaping, UTF-8 repair, numbers). Pure functions over a
 * caller-owned buffer; any thread. */
#include "tj_json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static const char hex_digits[] = "0123456789abcdef";

/* Length of the valid UTF-8 sequence starting at s (s[0] >= 0x80), or 0 if invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];

    if (c >= 0xC2 && c <= 0xDF) {
        return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0 && s[1] < 0xA0)
            return 0; /* overlong */
        if (c == 0xED && s[1] > 0x9F)
            return 0; /* UTF-16 surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90)
            return 0; /* overlong */
        if (c == 0xF4 && s[1] > 0x8F)
            return 0; /* past U+10FFFF */
        return 4;
    }
    return 0;
}

/* Index of the first byte in s[0..n) that is '"', '\\', a control character or >= 0x80. */
static inline size_t scan_plain(const unsigned char *s, size_t n)
{
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i bslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
        /* Signed compare: bytes >= 0x80 are negative, so one compare finds them and < 0x20. */
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                 _mm_cmplt_epi8(v, space));
        int mask = _mm_movemask_epi8(m);
        if (mask)
            return i + (size_t)__builtin_ctz((unsigned)mask);
    }
#endif
    for (; i < n; i++) {
        unsigned char c = s[i];
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\')
            return i;
    }
    return n;
}

int tj_json_escape(struct tj_buf *out, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    char *w;
    int rc;

    /* Worst case is 6 output bytes per input byte (\u00XX); reserving it once keeps the loop
     * free of capacity checks. */
    if (n > (SIZE_MAX - 8) / 6)
        return TJ_ENOSPC;
    rc = tj_buf_reserve(out, n * 6 + 8);
    if (rc)
        return rc;
    w = out->data + out->len;
    while (i < n) {
        size_t run = scan_plain(s + i, n - i);
        memcpy(w, s + i, run);
        w += run;
        i += run;
        if (i >= n)
            break;
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            *w++ = '\\';
            *w++ = (char)c;
            i++;
        } else if (c < 0x20) {
            *w++ = '\\';
            switch (c) {
            case '\n':
                *w++ = 'n';
                break;
            case '\r':
                *w++ = 'r';
                break;
            case '\t':
                *w++ = 't';
                break;
            case '\b':
                *w++ = 'b';
                break;
            case '\f':
                *w++ = 'f';
                break;
            default:
                *w++ = 'u';
                *w++ = '0';
                *w++ = '0';
                *w++ = hex_digits[c >> 4];
                *w++ = hex_digits[c & 15];
            }
            i++;
        } else {
            size_t k = utf8_seq_len(s + i, n - i);
            if (k) {
                memcpy(w, s + i, k);
                w += k;
                i += k;
            } else {
                /* U+FFFD REPLACEMENT CHARACTER, one per invalid byte. */
                *w++ = (char)0xEF;
                *w++ = (char)0xBF;
                *w++ = (char)0xBD;
                i++;
            }
        }
    }
    out->len = (size_t)(w - out->data);
    return 0;
}

int tj_json_string(struct tj_buf *out, const char *s, size_t n)
{
    int rc = tj_buf_reserve(out, 2);
    if (rc)
        return rc;
    out->data[out->len++] = '"';
    rc = tj_json_escape(out, s, n);
    if (rc)
        return rc;
    return tj_buf_append(out, "\"", 1);
}

size_t tj_utf8_cut(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t back;

    /* Only a cut inside the last (at most 4-byte) sequence needs care: look back for its lead. */
    for (back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = s[n - back];
        if ((c & 0xC0) == 0x80)
            continue; /* continuation byte */
        if (c >= 0xC0) {
            size_t want = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            return want > back ? n - back : n;
        }
        return n;
    }
    return n;
}

int tj_json_number_text(struct tj_buf *out, const char *s, size_t n)
{
    size_t i = 0;

    if (i < n && s[i] == '-')
        i++;
    if (i >= n)
        return TJ_EPARSE;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    } else {
        return TJ_EPARSE;
    }
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return TJ_EPARSE;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return TJ_EPARSE;
    }
    if (i != n)
        return TJ_EPARSE;
    return tj_buf_append(out, s, n);
}

int tj_json_i64(struct tj_buf *out, int64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof(tmp);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return tj_buf_append(out, p, (size_t)(tmp + sizeof(tmp) - p));
}

int tj_json_int_text(struct tj_buf *out, const char *s, size_t n)
{
    size_t i = 0;
    bool neg = false;
    uint64_t u = 0;
    const uint64_t limit_pos = (uint64_t)INT64_MAX;

    if (i < n && (s[i] == '-' || s[i] == '+'))
        neg = s[i++] == '-';
    if (i >= n)
        return TJ_EPARSE;
    for (; i < n; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9)
            return TJ_EPARSE;
        if (u > (limit_pos + 1 - d) / 10)
            return TJ_EPARSE;
        u = u * 10 + d;
    }
    if (!neg && u > limit_pos)
        return TJ_EPARSE;
    if (neg)
        return tj_json_i64(out, u == limit_pos + 1 ? INT64_MIN : -(int64_t)u);
    return tj_json_i64(out, (int64_t)u);
}

int tj_json_float_text(struct tj_buf *out, const char *s, size_t n)
{
    char tmp[512];
    char *end;
    double v;
    int k;

    if (n == 0 || n >= sizeof(tmp))
        return TJ_EPARSE;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    errno = 0;
    v = strtod(tmp, &end);
    if (end != tmp + n || !isfinite(v))
        return TJ_EPARSE; /* "1e400" is JSON syntax, but no finite double */
    if (tj_json_number_text(out, s, n) == 0)
        return 0; /* already canonical JSON: keep the exact digits */
    if (errno == ERANGE)
        return TJ_EPARSE;
    k = snprintf(tmp, sizeof(tmp), "%.17g", v);
    return tj_buf_append(out, tmp, (size_t)k);
}
