/* tj_json.c: JSON text output helpers (escaping, UTF-8 repair, numbers). Pure functions over a
 * caller-owned buffer; any thread. */
#include "tj_json.h"

#include <stdio.h>
#include <time.h>
#include "tj_simd.h"

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

/* Writes the escape of the special byte at s[0] ('"', '\\', a control character or the lead of
 * a multi-byte sequence) to w; returns the bytes consumed and advances *wp. */
static inline size_t escape_special(const unsigned char *s, size_t left, char **wp)
{
    char *w = *wp;
    unsigned char c = s[0];
    size_t k = 1;

    if (c == '"' || c == '\\') {
        *w++ = '\\';
        *w++ = (char)c;
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
    } else if ((k = utf8_seq_len(s, left)) != 0) {
        memcpy(w, s, k);
        w += k;
    } else {
        /* U+FFFD REPLACEMENT CHARACTER, one per invalid byte. */
        *w++ = (char)0xEF;
        *w++ = (char)0xBF;
        *w++ = (char)0xBD;
        k = 1;
    }
    *wp = w;
    return k;
}

/* Escapes s[0..n) to w, which has room for 6n + 16 bytes; returns the end of what it wrote.
 * Plain bytes move 16 at a time: a block is stored whole, then the cursor advances to its first
 * special byte, so a short string costs one or two blocks and no call. */
static char *escape_into(char *w, const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
#if defined(__SSE2__)
        if (tj_block_readable(s + i, n - i)) {
            const __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
            unsigned mask = tj_json_special16(v);
            size_t left = n - i;
            if (left < 16)
                mask |= 1u << left; /* stop at the end of the string */
            _mm_storeu_si128((__m128i *)w, v);
            if (!mask) {
                i += 16;
                w += 16;
                continue;
            }
            size_t k = (size_t)__builtin_ctz(mask);
            i += k;
            w += k;
            if (i >= n)
                break;
        } else
#endif
        {
            unsigned char c = s[i];
            if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
                *w++ = (char)c;
                i++;
                continue;
            }
        }
        i += escape_special(s + i, n - i, &w);
    }
    return w;
}

int tj_json_escape(struct tj_buf *out, const char *s, size_t n)
{
    int rc;

    /* Worst case is 6 output bytes per input byte (\u00XX), plus a block store's overrun. */
    if (n > (SIZE_MAX - 64) / 6)
        return TJ_ENOSPC;
    rc = tj_buf_reserve(out, n * 6 + 16);
    if (rc)
        return rc;
    out->len = (size_t)(escape_into(out->data + out->len, (const unsigned char *)s, n) - out->data);
    return 0;
}

int tj_json_string(struct tj_buf *out, const char *s, size_t n)
{
    char *w;
    int rc;

    if (tj_json_string_short(out, s, n))
        return 0;

    if (n > (SIZE_MAX - 64) / 6)
        return TJ_ENOSPC;
    rc = tj_buf_reserve(out, n * 6 + 18);
    if (rc)
        return rc;
    w = out->data + out->len;
    *w++ = '"';
    w = escape_into(w, (const unsigned char *)s, n);
    *w++ = '"';
    out->len = (size_t)(w - out->data);
    return 0;
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
    static const char pairs[201] = "00010203040506070809101112131415161718192021222324252627282930"
                                   "31323334353637383940414243444546474849505152535455565758596061"
                                   "62636465666768697071727374757677787980818283848586878889909192"
                                   "93949596979899";
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    static const uint64_t pow10[20] = {1ull,
                                       10ull,
                                       100ull,
                                       1000ull,
                                       10000ull,
                                       100000ull,
                                       1000000ull,
                                       10000000ull,
                                       100000000ull,
                                       1000000000ull,
                                       10000000000ull,
                                       100000000000ull,
                                       1000000000000ull,
                                       10000000000000ull,
                                       100000000000000ull,
                                       1000000000000000ull,
                                       10000000000000000ull,
                                       100000000000000000ull,
                                       1000000000000000000ull,
                                       10000000000000000000ull};
    /* The digits of u: log10(2) ~ 1233 / 4096 gives them from the bit length, to within one. */
    size_t t = (size_t)(64 - __builtin_clzll(u | 1)) * 1233 >> 12;
    size_t digits = t + (u >= pow10[t]) + (u == 0);
    char *p;
    int rc = tj_buf_reserve(out, 21);

    if (rc)
        return rc;
    p = out->data + out->len;
    if (v < 0)
        *p++ = '-';
    out->len = (size_t)(p - out->data) + digits;
    p += digits;
    /* Two digits per division, written from the end: log offsets run to 10 or more digits. */
    while (u >= 100) {
        unsigned d = (unsigned)(u % 100) * 2;
        u /= 100;
        p -= 2;
        memcpy(p, pairs + d, 2);
    }
    if (u >= 10)
        memcpy(p - 2, pairs + u * 2, 2);
    else
        p[-1] = (char)('0' + u);
    return 0;
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

/* [+-] digits [. digits] [e [+-] digits], where either side of the point may be empty but not
 * both: the decimal forms a log writes ("+1.5", "1.", ".5", "2E-3"). */
static bool decimal_syntax(const char *s, size_t n)
{
    size_t i = 0, digits = 0;

    if (s[i] == '+' || s[i] == '-')
        i++;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
        digits++;
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            digits++;
    if (!digits)
        return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t d;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        for (d = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            ;
        if (i == d)
            return false;
    }
    return i == n;
}

int tj_json_float_text(struct tj_buf *out, const char *s, size_t n)
{
    char tmp[512];
    char *end;
    double v;
    int k;

    if (n == 0 || n >= sizeof(tmp) || !decimal_syntax(s, n))
        return TJ_EPARSE; /* no hex, inf, nan or blanks, which strtod would take */
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

void tj_time_now(char *buf, size_t n)
{
    struct timespec ts;
    struct tm tm;
    size_t k;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, n - k, ".%09ldZ", ts.tv_nsec);
}
