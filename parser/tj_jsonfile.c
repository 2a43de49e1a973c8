/* tj_jsonfile.c: the json-file line decoder. A cursor walks the line once; the "log" string is
 * returned as a slice of the input when it holds no escape (plain lines), else unescaped into
 * the caller's scratch buffer. No allocation. Runs on whichever thread reads the file. */
#include "tj_jsonfile.h"

#include "tj_simd.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#if defined(__SSE2__)
/* Bit i set where p[i] is '"' or '\\' (bits past `end` cleared, and bit end-p set). */
static inline unsigned block_stops(__m128i v, const char *p, const char *end, unsigned *odd)
{
    unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                                          _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
    /* Signed compare: control characters and bytes >= 0x80 both test below 0x20. */
    unsigned o = (unsigned)_mm_movemask_epi8(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
    if (end - p < 16) {
        unsigned live = (1u << (end - p)) - 1;
        m = (m & live) | (1u << (end - p));
        o &= live;
    }
    *odd = o;
    return m;
}
#endif

/* True if [p, end) holds no '"', no '\\', no control character and no byte >= 0x80. */
static bool printable_plain(const char *p, const char *end)
{
#if defined(__SSE2__)
    if (end - p >= 16 && end - p <= 32) { /* a timestamp: two blocks that may overlap */
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i u = _mm_loadu_si128((const __m128i *)(end - 16));
        __m128i bad = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                                _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                                   _mm_or_si128(_mm_cmpeq_epi8(u, _mm_set1_epi8('"')),
                                                _mm_cmpeq_epi8(u, _mm_set1_epi8('\\'))));
        /* Signed compare: control characters and bytes >= 0x80 both test below 0x20. */
        bad = _mm_or_si128(bad, _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
        bad = _mm_or_si128(bad, _mm_cmplt_epi8(u, _mm_set1_epi8(0x20)));
        return _mm_movemask_epi8(bad) == 0;
    }
    while (p < end && tj_block_readable(p, (size_t)(end - p))) {
        unsigned odd, stops = block_stops(_mm_loadu_si128((const __m128i *)p), p, end, &odd);
        if (odd || (end - p < 16 ? stops != 1u << (end - p) : stops != 0))
            return false;
        p += 16;
    }
#endif
    for (; p < end; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x80 || *p == '"' || *p == '\\')
            return false;
    return true;
}

static inline const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* First '"' or '\\' in [p, end), or end. */
static inline const char *scan_quote_or_bslash(const char *p, const char *end)
{
#if defined(__SSE2__)
    while (p < end && tj_block_readable(p, (size_t)(end - p))) {
        unsigned odd, stops = block_stops(_mm_loadu_si128((const __m128i *)p), p, end, &odd);
        if (stops)
            return p + __builtin_ctz(stops); /* end itself when nothing was found before it */
        p += 16;
    }
#endif
    while (p < end && *p != '"' && *p != '\\')
        p++;
    return p;
}

/* 0x10 | the value of each hex digit, 0 for the other bytes. */
static const unsigned char hex_digit[256] = {
    ['0'] = 0x10, ['1'] = 0x11, ['2'] = 0x12, ['3'] = 0x13, ['4'] = 0x14, ['5'] = 0x15,
    ['6'] = 0x16, ['7'] = 0x17, ['8'] = 0x18, ['9'] = 0x19, ['a'] = 0x1a, ['b'] = 0x1b,
    ['c'] = 0x1c, ['d'] = 0x1d, ['e'] = 0x1e, ['f'] = 0x1f, ['A'] = 0x1a, ['B'] = 0x1b,
    ['C'] = 0x1c, ['D'] = 0x1d, ['E'] = 0x1e, ['F'] = 0x1f,
};

static inline int hex4(const char *p, const char *end, unsigned *v)
{
    const unsigned char *u = (const unsigned char *)p;
    unsigned a, b, c, d;

    if (end - p < 4)
        return -1;
    a = hex_digit[u[0]];
    b = hex_digit[u[1]];
    c = hex_digit[u[2]];
    d = hex_digit[u[3]];
    if (!(a & b & c & d & 0x10))
        return -1;
    *v = (a & 15) << 12 | (b & 15) << 8 | (c & 15) << 4 | (d & 15);
    return 0;
}

static size_t put_utf8(char *w, unsigned cp)
{
    if (cp < 0x80) {
        w[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        w[0] = (char)(0xC0 | (cp >> 6));
        w[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        w[0] = (char)(0xE0 | (cp >> 12));
        w[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        w[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    w[0] = (char)(0xF0 | (cp >> 18));
    w[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    w[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    w[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes one escape at p (just past the backslash). A \u escape always shrinks or keeps the
 * size (6 or 12 input bytes give at most 4 output bytes). Returns the new p or NULL. */
static const char *unescape_one(const char *p, const char *end, char *w, size_t *wn, bool *lossy,
                                const char **why)
{
    unsigned cp, lo;

    if (p >= end) {
        *why = "string ends inside an escape";
        return NULL;
    }
    switch (*p) {
    case '"':
    case '\\':
    case '/':
        *w = *p;
        *wn = 1;
        return p + 1;
    case 'n':
        *w = '\n';
        break;
    case 'r':
        *w = '\r';
        break;
    case 't':
        *w = '\t';
        break;
    case 'b':
        *w = '\b';
        break;
    case 'f':
        *w = '\f';
        break;
    case 'u':
        if (hex4(p + 1, end, &cp)) {
            *why = "bad \\u escape";
            return NULL;
        }
        p += 5;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            /* A high surrogate pairs with a following \uDC00..\uDFFF; alone it is U+FFFD. */
            if (end - p >= 6 && p[0] == '\\' && p[1] == 'u' && hex4(p + 2, end, &lo) == 0 &&
                lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            } else {
                cp = 0xFFFD;
                *lossy = true;
            }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            cp = 0xFFFD;
            *lossy = true;
        }
        *wn = put_utf8(w, cp);
        return p;
    default:
        *why = "unknown escape";
        return NULL;
    }
    *wn = 1;
    return p + 1;
}

/* The output byte of each one-character escape ("\n" gives '\n'), 0 for the others. */
static const char simple_escape[256] = {
    ['"'] = '"',  ['\\'] = '\\', ['/'] = '/',  ['b'] = '\b',
    ['f'] = '\f', ['n'] = '\n',  ['r'] = '\r', ['t'] = '\t',
};

#if defined(__SSE2__)
/* The window scanners below find, for the 64 bytes at b, the stops (bit i set where b[i] is '"'
 * or '\\') and the odd bytes (bit i set where b[i] < 0x20 or >= 0x80). Bits at and past `end` are
 * cleared. Bytes past end are loaded only where tj_window_readable allows it; otherwise the
 * string's tail is copied to a local window first. Odd bytes are rare, so their exact mask is
 * computed only when there is one. */
struct window {
    uint64_t stops, odd;
};

typedef struct window window_fn(const char *b, const char *end);

/* Copies n bytes from s to w in whole blocks (16 or 32 bytes), so it reads and writes up to a
 * block less one past s + n and w + n. */
typedef void copy_fn(char *w, const char *s, size_t n);

static inline struct window window_clip(size_t left, struct window m)
{
    if (left < 64) {
        uint64_t live = ((uint64_t)1 << left) - 1;
        m.stops &= live;
        m.odd &= live;
    }
    return m;
}

static inline unsigned stops16(__m128i v)
{
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                                    _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
}

/* Signed compare: control characters and bytes >= 0x80 both test below 0x20. */
static inline __m128i odd16(__m128i v)
{
    return _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
}

static inline __attribute__((always_inline)) struct window window_sse2_at(const char *s)
{
    struct window m;
    __m128i v0 = _mm_loadu_si128((const __m128i *)s);
    __m128i v1 = _mm_loadu_si128((const __m128i *)(s + 16));
    __m128i v2 = _mm_loadu_si128((const __m128i *)(s + 32));
    __m128i v3 = _mm_loadu_si128((const __m128i *)(s + 48));
    __m128i o =
        _mm_or_si128(_mm_or_si128(odd16(v0), odd16(v1)), _mm_or_si128(odd16(v2), odd16(v3)));

    m.stops = (uint64_t)stops16(v0) | (uint64_t)stops16(v1) << 16 | (uint64_t)stops16(v2) << 32 |
              (uint64_t)stops16(v3) << 48;
    m.odd = 0;
    if (TJ_UNLIKELY(_mm_movemask_epi8(o)))
        m.odd = (uint64_t)(unsigned)_mm_movemask_epi8(odd16(v0)) |
                (uint64_t)(unsigned)_mm_movemask_epi8(odd16(v1)) << 16 |
                (uint64_t)(unsigned)_mm_movemask_epi8(odd16(v2)) << 32 |
                (uint64_t)(unsigned)_mm_movemask_epi8(odd16(v3)) << 48;
    return m;
}

/* The string's last bytes, too close to a page end to be loaded 64 at a time. */
static __attribute__((noinline)) struct window window_sse2_tail(const char *b, size_t left)
{
    char tmp[64] = {0};

    memcpy(tmp, b, left);
    return window_sse2_at(tmp);
}

static inline __attribute__((always_inline)) struct window window_sse2(const char *b,
                                                                       const char *end)
{
    size_t left = (size_t)(end - b);

    return window_clip(left, TJ_LIKELY(tj_window_readable(b, left)) ? window_sse2_at(b)
                                                                    : window_sse2_tail(b, left));
}

static inline __attribute__((always_inline)) void copy_sse2(char *w, const char *s, size_t n)
{
    size_t i = 0;

    do /* at least one block, even for n == 0: the caller allows it */
        _mm_storeu_si128((__m128i *)(w + i), _mm_loadu_si128((const __m128i *)(s + i)));
    while ((i += 16) < n);
}

/* The string whose opening quote is at *cursor, unescaped into out[0..out_end) (room for its
 * raw length); returns the unescaped length, which is less than the raw length exactly when the
 * string held an escape (else out holds a copy of the raw text), and moves *cursor past the
 * closing quote. *clean is cleared when the raw text holds a control character or a byte >= 0x80,
 * or a \u escape had to be replaced (lone surrogate). Returns TJ_EPARSE and sets *why when the
 * string is not valid.
 *
 * The stop masks are computed for a 64-byte window at once; their set bits are then walked, each
 * plain run copied in blocks of `blk` bytes and each escape decoded. The stop mask is kept
 * shifted so that its bit 0 is p, so the bits an escape consumed are shifted out with it. The
 * bytes of an escape that decodes are printable ASCII, so the odd bits of a window all belong to
 * raw text up to the closing quote. Inlined into one function per instruction set, with `masks`
 * and `copy` known. */
static inline __attribute__((always_inline)) ptrdiff_t
unescape_windows(const char **cursor, const char *end, char *out, const char *out_end,
                 bool *clean_out, bool *high, const char **why, window_fn *masks, copy_fn *copy,
                 size_t blk)
{
    const char *start = *cursor + 1, *p = start, *b = p, *q;
    char *w = out;
    bool clean = true;
    /* Output never runs ahead of input, so when out has room for the raw text, block copies of
     * runs ending at or before block_lim stay within both the input and out. Else (0) runs are
     * copied with memcpy. */
    uintptr_t block_lim =
        out_end - out >= end - p && (size_t)(end - p) >= blk ? (uintptr_t)(end - blk) : 0;
    struct window m;
    size_t k;
    char c;

    m = masks(b, end);
    for (;;) {
        while (m.stops) { /* bit i: a stop at p + i */
            k = (size_t)__builtin_ctzll(m.stops);
            q = p + k;
            if (TJ_LIKELY((uintptr_t)q <= block_lim))
                copy(w, p, k);
            else
                memcpy(w, p, k);
            w += k;
            m.stops >>= k;
            if (*q == '"') {
                clean &= (m.odd & (((uint64_t)1 << (q - b)) - 1)) == 0;
                *clean_out &= clean;
                *cursor = q + 1;
                return w - out;
            }
            if (TJ_LIKELY(q + 1 < end) && (c = simple_escape[(unsigned char)q[1]]) != 0) {
                *w++ = c;
                p = q + 2;
                m.stops >>= 2; /* the backslash and the byte it escapes */
                continue;
            }
            unsigned cp;
            if (q + 1 < end && q[1] == 'u' && hex4(q + 2, end, &cp) == 0 &&
                (cp < 0xD800 || cp > 0xDFFF)) { /* no surrogate: this escape alone */
                *high |= cp >= 0x80;
                w += put_utf8(w, cp);
                p = q + 6;
                m.stops >>= 6;
                continue;
            }
            size_t wn;
            bool lossy = false;
            p = unescape_one(q + 1, end, w, &wn, &lossy, why);
            clean &= !lossy; /* a lone surrogate escape is not copied into records as is */
            *high = true;    /* a surrogate pair, or U+FFFD for a lone one */
            if (!p)
                return TJ_EPARSE;
            w += wn;
            m.stops >>= p - q; /* at most 12: the escape's own bytes */
        }
        /* No stop left in the window: the string is unterminated if it was the last one, else
         * copy the rest of it (unless the last escape ran past it) and go on from there. */
        if (end - b <= 64) {
            *why = "unterminated string";
            return TJ_EPARSE;
        }
        q = b + 64;
        if (p < q) {
            if (TJ_LIKELY((uintptr_t)q <= block_lim))
                copy(w, p, (size_t)(q - p));
            else
                memcpy(w, p, (size_t)(q - p));
            w += q - p;
            p = q;
        }
        clean &= m.odd == 0;
        b = p;
        m = masks(b, end);
    }
}

static ptrdiff_t unescape_sse2(const char **cursor, const char *end, char *out, const char *out_end,
                               bool *clean, bool *high, const char **why)
{
    return unescape_windows(cursor, end, out, out_end, clean, high, why, window_sse2, copy_sse2,
                            16);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(TJ_NO_AVX2)
#define TJ_HAVE_AVX2_PATH 1
#include <immintrin.h>

static inline __attribute__((always_inline, target("avx2"))) struct window
window_avx2_at(const char *s)
{
    struct window m;
    __m256i v0 = _mm256_loadu_si256((const __m256i *)s);
    __m256i v1 = _mm256_loadu_si256((const __m256i *)(s + 32));
    __m256i quote = _mm256_set1_epi8('"'), bslash = _mm256_set1_epi8('\\');
    __m256i sp = _mm256_set1_epi8(0x20);
    /* Signed compare: control characters and bytes >= 0x80 both test below 0x20. */
    __m256i o0 = _mm256_cmpgt_epi8(sp, v0), o1 = _mm256_cmpgt_epi8(sp, v1);
    __m256i o = _mm256_or_si256(o0, o1);

    m.stops = (uint64_t)(uint32_t)_mm256_movemask_epi8(
                  _mm256_or_si256(_mm256_cmpeq_epi8(v0, quote), _mm256_cmpeq_epi8(v0, bslash))) |
              (uint64_t)(uint32_t)_mm256_movemask_epi8(
                  _mm256_or_si256(_mm256_cmpeq_epi8(v1, quote), _mm256_cmpeq_epi8(v1, bslash)))
                  << 32;
    m.odd = 0;
    if (TJ_UNLIKELY(!_mm256_testz_si256(o, o)))
        m.odd = (uint64_t)(uint32_t)_mm256_movemask_epi8(o0) |
                (uint64_t)(uint32_t)_mm256_movemask_epi8(o1) << 32;
    return m;
}

static __attribute__((noinline, target("avx2"))) struct window window_avx2_tail(const char *b,
                                                                                size_t left)
{
    char tmp[64] = {0};

    memcpy(tmp, b, left);
    return window_avx2_at(tmp);
}

static inline __attribute__((always_inline, target("avx2"))) struct window
window_avx2(const char *b, const char *end)
{
    size_t left = (size_t)(end - b);

    return window_clip(left, TJ_LIKELY(tj_window_readable(b, left)) ? window_avx2_at(b)
                                                                    : window_avx2_tail(b, left));
}

static inline __attribute__((always_inline, target("avx2"))) void copy_avx2(char *w, const char *s,
                                                                            size_t n)
{
    size_t i = 0;

    do /* at least one block, even for n == 0: the caller allows it */
        _mm256_storeu_si256((__m256i *)(w + i), _mm256_loadu_si256((const __m256i *)(s + i)));
    while ((i += 32) < n);
}

__attribute__((target("avx2"))) static ptrdiff_t unescape_avx2(const char **cursor, const char *end,
                                                               char *out, const char *out_end,
                                                               bool *clean, bool *high,
                                                               const char **why)
{
    return unescape_windows(cursor, end, out, out_end, clean, high, why, window_avx2, copy_avx2,
                            32);
}
#endif

static ptrdiff_t unescape_str(const char **cursor, const char *end, char *out, const char *out_end,
                              bool *clean, bool *high, const char **why)
{
#if defined(TJ_HAVE_AVX2_PATH)
    if (__builtin_cpu_supports("avx2"))
        return unescape_avx2(cursor, end, out, out_end, clean, high, why);
#endif
    return unescape_sse2(cursor, end, out, out_end, clean, high, why);
}
#else
/* The string whose opening quote is at *cursor, unescaped into out[0..out_end) (room for its
 * raw length); returns the unescaped length, which is less than the raw length exactly when the
 * string held an escape (else out holds a copy of the raw text), and moves *cursor past the
 * closing quote. *clean is cleared when the raw text holds a control character or a byte >= 0x80,
 * or a \u escape had to be replaced (lone surrogate); *high is set when an escape wrote a byte
 * >= 0x80 (or may have). Returns TJ_EPARSE and sets *why when the string is not valid. */
static ptrdiff_t unescape_str(const char **cursor, const char *end, char *out, const char *out_end,
                              bool *clean, bool *high, const char **why)
{
    const char *p = *cursor + 1;
    char *w = out;

    (void)out_end;
    for (;;) {
        const char *q = scan_quote_or_bslash(p, end);
        memcpy(w, p, (size_t)(q - p));
        for (const char *c = p; c < q; c++)
            *clean &= (unsigned char)*c >= 0x20 && (unsigned char)*c < 0x80;
        w += q - p;
        if (q >= end) {
            *why = "unterminated string";
            return TJ_EPARSE;
        }
        if (*q == '"') {
            *cursor = q + 1;
            return w - out;
        }
        if (TJ_LIKELY(q + 1 < end) && simple_escape[(unsigned char)q[1]]) {
            *w++ = simple_escape[(unsigned char)q[1]];
            p = q + 2;
        } else {
            size_t wn;
            bool lossy = false;
            p = unescape_one(q + 1, end, w, &wn, &lossy, why);
            *clean &= !lossy; /* a lone surrogate escape is not copied into records as is */
            *high = true;     /* any \u escape, here */
            if (!p)
                return TJ_EPARSE;
            w += wn;
        }
    }
}
#endif

int tj_jsonfile_unescape(const char **cursor, const char *end, char *out, size_t *outlen,
                         const char **why)
{
    bool clean = true, high = false;
    /* out holds the raw length only: a block store past it is not allowed. */
    ptrdiff_t n = unescape_str(cursor, end, out, out + (end - *cursor), &clean, &high, why);

    if (n < 0)
        return TJ_EPARSE;
    *outlen = (size_t)n;
    return 0;
}

/* True if the raw bytes [s, e) of a string are JSON's: no control character, valid UTF-8 (as
 * Docker's encoder writes them). Skipped values such as "attrs" are copied into records as is. */
static bool raw_text_ok(const char *str, const char *e)
{
    const unsigned char *s = (const unsigned char *)str, *end = (const unsigned char *)e;

    while (s < end) {
        unsigned c = *s;
        size_t k = c < 0x80                 ? 1
                   : c >= 0xC2 && c <= 0xDF ? 2
                   : c >= 0xE0 && c <= 0xEF ? 3
                   : c >= 0xF0 && c <= 0xF4 ? 4
                                            : 0;
        if (c < 0x20 || k == 0 || (size_t)(end - s) < k)
            return false;
        for (size_t i = 1; i < k; i++)
            if ((s[i] & 0xC0) != 0x80)
                return false;
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) ||
            (c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))
            return false; /* overlong, surrogate, past U+10FFFF */
        s += k;
    }
    return true;
}

/* Skips a string starting at its opening quote; returns the byte after the closing quote, sets
 * *has_escape, or returns NULL. Escapes and raw bytes are validated so a bad one is reported
 * anywhere. */
static const char *skip_string(const char *p, const char *end, bool *has_escape, const char **why)
{
    bool lossy;
    char tmp[4];
    size_t wn;
    const char *run;

    *has_escape = false;
    p++;
    for (;;) {
        run = p;
        p = scan_quote_or_bslash(p, end);
        if (p >= end) {
            *why = "unterminated string";
            return NULL;
        }
        if (!raw_text_ok(run, p)) {
            *why = "control character or invalid UTF-8 in a string";
            return NULL;
        }
        if (*p == '"')
            return p + 1;
        *has_escape = true;
        p = unescape_one(p + 1, end, tmp, &wn, &lossy, why);
        if (!p)
            return NULL;
    }
}

static const char *skip_digits(const char *p, const char *end)
{
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    return p;
}

/* Skips true, false, null or a number in JSON's grammar; returns NULL for anything else. */
static const char *skip_scalar(const char *p, const char *end)
{
    static const char *const lits[] = {"true", "false", "null"};
    const char *d;

    for (size_t i = 0; i < TJ_ARRAY_LEN(lits); i++) {
        size_t n = strlen(lits[i]);
        if ((size_t)(end - p) >= n && memcmp(p, lits[i], n) == 0)
            return p + n;
    }
    if (p < end && *p == '-')
        p++;
    if (p < end && *p == '0')
        p++;
    else if (p < end && *p >= '1' && *p <= '9')
        p = skip_digits(p, end);
    else
        return NULL;
    if (p < end && *p == '.') {
        d = p + 1;
        if ((p = skip_digits(d, end)) == d)
            return NULL;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        d = p + 1 < end && (p[1] == '+' || p[1] == '-') ? p + 2 : p + 1;
        if ((p = skip_digits(d, end)) == d)
            return NULL;
    }
    return p;
}

/* Skips any JSON value (objects and arrays to a bounded depth). */
static const char *skip_value(const char *p, const char *end, int depth, const char **why)
{
    bool esc;

    p = skip_ws(p, end);
    if (p >= end) {
        *why = "value expected";
        return NULL;
    }
    if (*p == '"')
        return skip_string(p, end, &esc, why);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        bool obj = *p == '{';
        if (depth > 32) {
            *why = "nesting too deep";
            return NULL;
        }
        p = skip_ws(p + 1, end);
        if (p < end && *p == close)
            return p + 1;
        for (;;) {
            if (obj) {
                p = skip_ws(p, end);
                if (p >= end || *p != '"') {
                    *why = "object key expected";
                    return NULL;
                }
                p = skip_string(p, end, &esc, why);
                if (!p)
                    return NULL;
                p = skip_ws(p, end);
                if (p >= end || *p != ':') {
                    *why = "':' expected";
                    return NULL;
                }
                p++;
            }
            p = skip_value(p, end, depth + 1, why);
            if (!p)
                return NULL;
            p = skip_ws(p, end);
            if (p < end && *p == ',') {
                p++;
                continue;
            }
            if (p < end && *p == close)
                return p + 1;
            *why = "',' or end of container expected";
            return NULL;
        }
    }
    if (!(p = skip_scalar(p, end)))
        *why = "value expected";
    return p;
}

/* Removes a trailing two-byte escape "\\c" from s; false if s does not end in one. */
static bool strip_escape(struct tj_slice *s, char c)
{
    if (s->len < 2 || s->ptr[s->len - 1] != c || s->ptr[s->len - 2] != '\\')
        return false;
    s->len -= 2;
    return true;
}

/* Decodes the "log" string at *pp (its opening quote) into scratch; sets e->log and, when the
 * escaped form can be copied into records as is, e->log_json. */
static int decode_log(const char **pp, const char *end, struct tj_buf *scratch,
                      struct tj_jsonfile_entry *e, const char **why)
{
    const char *raw = *pp + 1;
    bool clean = true, high = false;
    ptrdiff_t got;
    size_t n;

    if (scratch->max < (size_t)(end - *pp) + 16) /* unescaped never exceeds raw */
        return TJ_ENOSPC;
    if (tj_buf_reserve(scratch, (size_t)(end - *pp) + 16))
        return TJ_ENOSPC;
    got =
        unescape_str(pp, end, scratch->data, scratch->data + (end - *pp) + 16, &clean, &high, why);
    if (got < 0)
        return TJ_EPARSE;
    n = (size_t)got;
    if (n != (size_t)(*pp - 1 - raw)) { /* every escape shrinks the text */
        scratch->len = n;
        e->log = (struct tj_slice){scratch->data, n};
    } else {
        e->log = (struct tj_slice){raw, n}; /* no escape: the line's own bytes */
    }
    /* Clean raw text is printable ASCII; with no escape to a byte >= 0x80, so is the text. */
    e->ascii = clean && !high;
    if (clean) /* the raw form, line end included: trimmed where the text is (see below) */
        e->log_json = (struct tj_slice){raw, (size_t)(*pp - 1 - raw)};
    else /* not an earlier "log" key's, when a line repeats it */
        e->log_json = (struct tj_slice){NULL, 0};
    return 0;
}

/* Docker writes every entry as {"log":"...","stream":"stdout|stderr","time":"..."}. This reads
 * exactly that layout; anything else (attrs, other order, spaces) returns false and the
 * general parser takes the line from its start. */
static bool decode_docker(const char *p, const char *end, struct tj_buf *scratch,
                          struct tj_jsonfile_entry *e)
{
    static const char head[] = "{\"log\":\"", mid[] = "\",\"stream\":\"", tail[] = "\",\"time\":\"";
    const char *why, *t;

    if (end - p < 40 || memcmp(p, head, sizeof(head) - 1) != 0)
        return false;
    p += sizeof(head) - 2;
    if (decode_log(&p, end, scratch, e, &why))
        return false;
    p--; /* back on the closing quote, which starts mid[] */
    if (end - p < (ptrdiff_t)(sizeof(mid) - 1 + 6 + sizeof(tail) - 1 + 2) ||
        memcmp(p, mid, sizeof(mid) - 1) != 0)
        return false;
    p += sizeof(mid) - 1;
    if (memcmp(p, "stdout", 6) != 0 && memcmp(p, "stderr", 6) != 0)
        return false;
    e->stream = (struct tj_slice){p, 6};
    p += 6;
    if (memcmp(p, tail, sizeof(tail) - 1) != 0)
        return false;
    p += sizeof(tail) - 1;
    /* The time runs to the line's closing "} and holds only printable ASCII but '"' and '\\'. */
    t = end - 2;
    if (t < p || t[0] != '"' || t[1] != '}' || !printable_plain(p, t))
        return false;
    e->time = (struct tj_slice){p, (size_t)(t - p)};
    return true;
}

const char tj_jsonfile_why_nolog[] = "no \"log\" key";

static bool key_is(const char *k, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    return n == m && memcmp(k, lit, m) == 0;
}

/* Decodes one member ("key": value) of the entry at *pp, advancing it past the value. */
static int decode_member(const char **pp, const char *end, struct tj_buf *scratch,
                         struct tj_jsonfile_entry *e, bool *have_log, const char **why)
{
    const char *p = *pp;
    const char *k, *v;
    size_t kn;
    bool esc;

    if (p >= end || *p != '"') {
        *why = "object key expected";
        return TJ_EPARSE;
    }
    k = p + 1;
    p = skip_string(p, end, &esc, why);
    if (!p)
        return TJ_EPARSE;
    kn = (size_t)(p - 1 - k);
    if (esc)
        kn = 0; /* an escaped key is never one of ours */
    p = skip_ws(p, end);
    if (p >= end || *p != ':') {
        *why = "':' expected";
        return TJ_EPARSE;
    }
    p = skip_ws(p + 1, end);
    v = p;
    if (key_is(k, kn, "log")) {
        if (p >= end || *p != '"') {
            *why = "\"log\" is not a string";
            return TJ_EPARSE;
        }
        int rc = decode_log(&p, end, scratch, e, why);
        if (rc)
            return rc;
        *have_log = true;
    } else if (key_is(k, kn, "stream") || key_is(k, kn, "time")) {
        if (p >= end || *p != '"') {
            *why = "\"stream\" or \"time\" is not a string";
            return TJ_EPARSE;
        }
        p = skip_string(p, end, &esc, why);
        if (!p)
            return TJ_EPARSE;
        struct tj_slice s = {v + 1, (size_t)(p - v - 2)};
        if (esc)
            s.len = 0; /* Docker never escapes these; an odd value is dropped */
        if (k[0] == 's')
            e->stream = s;
        else
            e->time = s;
    } else {
        p = skip_value(p, end, 0, why);
        if (!p)
            return TJ_EPARSE;
        if (key_is(k, kn, "attrs") && *v == '{')
            e->attrs = (struct tj_slice){v, (size_t)(p - v)};
    }
    *pp = p;
    return 0;
}

/* Strips the line end from the decoded text and its escaped form; marks partial pieces. */
static void finish_entry(struct tj_jsonfile_entry *e)
{
    /* Strip the line end from the text and its escaped form from log_json. The text decides:
     * raw backslash-backslash-n is an escaped backslash and an n, not a line end. */
    if (e->log.len && e->log.ptr[e->log.len - 1] == '\n') {
        e->log.len--;
        if (!strip_escape(&e->log_json, 'n'))
            e->log_json.len = 0;
        if (e->log.len && e->log.ptr[e->log.len - 1] == '\r') {
            e->log.len--;
            if (!strip_escape(&e->log_json, 'r'))
                e->log_json.len = 0;
        }
    } else {
        e->partial = true;
        e->log_json.len = 0;
    }
    if (!e->log_json.len)
        e->log_json.ptr = NULL;
}

int tj_jsonfile_decode(const char *line, size_t len, struct tj_buf *scratch,
                       struct tj_jsonfile_entry *e, const char **why)
{
    const char *p = line, *end = line + len;
    bool have_log = false;

    *e = (struct tj_jsonfile_entry){0}; /* a few stores, where memset became a rep stos */
    scratch->len = 0;
    if (decode_docker(p, end, scratch, e))
        goto done;
    memset(e, 0, sizeof(*e));
    scratch->len = 0;
    p = skip_ws(p, end);
    if (p >= end || *p != '{') {
        *why = "not a JSON object";
        return TJ_EPARSE;
    }
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        p++;
    else
        for (;;) {
            int rc = decode_member(&p, end, scratch, e, &have_log, why);
            if (rc)
                return rc;
            p = skip_ws(p, end);
            if (p < end && *p == ',') {
                p = skip_ws(p + 1, end);
                continue;
            }
            if (p < end && *p == '}') {
                p++;
                break;
            }
            *why = "',' or '}' expected";
            return TJ_EPARSE;
        }
    p = skip_ws(p, end);
    if (p != end) {
        *why = "trailing bytes after the object";
        return TJ_EPARSE;
    }
    if (!have_log) {
        *why = tj_jsonfile_why_nolog;
        return TJ_EPARSE;
    }
done:
    finish_entry(e);
    return 0;
}
