/* tj_jsonfile.c: the json-file line decoder. A cursor walks the line once; the "log" string is
 * returned as a slice of the input when it holds no escape (plain lines), else unescaped into
 * the caller's scratch buffer. No allocation. Runs on whichever thread reads the file. */
#include "tj_jsonfile.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i bslash = _mm_set1_epi8('\\');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        int mask =
            _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)));
        if (mask)
            return p + __builtin_ctz((unsigned)mask);
        p += 16;
    }
#endif
    while (p < end && *p != '"' && *p != '\\')
        p++;
    return p;
}

static int hex4(const char *p, const char *end, unsigned *v)
{
    unsigned r = 0;
    int i;

    if (end - p < 4)
        return -1;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        r <<= 4;
        if (c >= '0' && c <= '9')
            r |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            r |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            r |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *v = r;
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
static const char *unescape_one(const char *p, const char *end, char *w, size_t *wn,
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
            }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            cp = 0xFFFD;
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

int tj_jsonfile_unescape(const char **cursor, const char *end, char *out, size_t *outlen,
                         const char **why)
{
    const char *p = *cursor + 1;
    char *w = out;

    for (;;) {
        const char *q = scan_quote_or_bslash(p, end);
        memcpy(w, p, (size_t)(q - p));
        w += q - p;
        if (q >= end) {
            *why = "unterminated string";
            return TJ_EPARSE;
        }
        if (*q == '"') {
            *cursor = q + 1;
            *outlen = (size_t)(w - out);
            return 0;
        }
        size_t wn;
        p = unescape_one(q + 1, end, w, &wn, why);
        if (!p)
            return TJ_EPARSE;
        w += wn;
    }
}

/* Skips a string starting at its opening quote; returns the byte after the closing quote, sets
 * *has_escape, or returns NULL. Escapes are validated so a bad one is reported anywhere. */
static const char *skip_string(const char *p, const char *end, bool *has_escape, const char **why)
{
    char tmp[4];
    size_t wn;

    *has_escape = false;
    p++;
    for (;;) {
        p = scan_quote_or_bslash(p, end);
        if (p >= end) {
            *why = "unterminated string";
            return NULL;
        }
        if (*p == '"')
            return p + 1;
        *has_escape = true;
        p = unescape_one(p + 1, end, tmp, &wn, why);
        if (!p)
            return NULL;
    }
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
    /* A literal or a number: a run of the characters they are made of. */
    const char *s = p;
    while (p < end && ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || *p == '-' ||
                       *p == '+' || *p == '.' || *p == 'E'))
        p++;
    if (p == s) {
        *why = "value expected";
        return NULL;
    }
    return p;
}

static bool key_is(const char *k, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    return n == m && memcmp(k, lit, m) == 0;
}

int tj_jsonfile_decode(const char *line, size_t len, struct tj_buf *scratch,
                       struct tj_jsonfile_entry *e, const char **why)
{
    const char *p = line, *end = line + len;
    bool have_log = false;

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
                const char *q = scan_quote_or_bslash(p + 1, end);
                if (q < end && *q == '"') {
                    /* No escape: the text is a slice of the line itself. */
                    e->log = (struct tj_slice){p + 1, (size_t)(q - p - 1)};
                    p = q + 1;
                } else {
                    size_t n;
                    if (scratch->max < (size_t)(end - p)) /* unescaped never exceeds raw */
                        return TJ_ENOSPC;
                    if (tj_buf_reserve(scratch, (size_t)(end - p)))
                        return TJ_ENOSPC;
                    if (tj_jsonfile_unescape(&p, end, scratch->data, &n, why))
                        return TJ_EPARSE;
                    scratch->len = n;
                    e->log = (struct tj_slice){scratch->data, n};
                }
                have_log = true;
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
        *why = "no \"log\" key";
        return TJ_EPARSE;
    }
    if (e->log.len && e->log.ptr[e->log.len - 1] == '\n') {
        e->log.len--;
        if (e->log.len && e->log.ptr[e->log.len - 1] == '\r')
            e->log.len--;
    } else {
        e->partial = true;
    }
    return 0;
}
