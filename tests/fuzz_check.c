/* fuzz_check.c: the property both fuzz targets check on every record they make: one JSON object
 * of strict JSON (RFC 8259, UTF-8 strings) ending in "}\n". A validator small enough to trust,
 * written apart from the encoder it checks. */
#include "fuzz_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 128

/* ---- a strict JSON validator (RFC 8259, UTF-8 strings), small enough to trust ---- */

struct jv {
    const unsigned char *p, *end;
};

static void jv_ws(struct jv *v)
{
    while (v->p < v->end && (*v->p == ' ' || *v->p == '\t' || *v->p == '\n' || *v->p == '\r'))
        v->p++;
}

static int jv_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Length of the valid UTF-8 sequence at p, or 0. */
static size_t jv_utf8(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t k = c >= 0xC2 && c <= 0xDF   ? 2
               : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4
                                        : 0;

    if (!k || (size_t)(end - p) < k)
        return 0;
    for (size_t i = 1; i < k; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F) || (c == 0xF0 && p[1] < 0x90) ||
        (c == 0xF4 && p[1] > 0x8F))
        return 0;
    return k;
}

static int jv_string(struct jv *v)
{
    if (v->p >= v->end || *v->p != '"')
        return 0;
    v->p++;
    while (v->p < v->end) {
        unsigned c = *v->p;
        if (c == '"') {
            v->p++;
            return 1;
        }
        if (c < 0x20)
            return 0;
        if (c == '\\') {
            if (v->end - v->p < 2)
                return 0;
            c = v->p[1];
            if (c == 'u') {
                if (v->end - v->p < 6 || !jv_hex(v->p[2]) || !jv_hex(v->p[3]) || !jv_hex(v->p[4]) ||
                    !jv_hex(v->p[5]))
                    return 0;
                v->p += 6;
            } else if (strchr("\"\\/bfnrt", (int)c) && c) {
                v->p += 2;
            } else {
                return 0;
            }
        } else if (c >= 0x80) {
            size_t k = jv_utf8(v->p, v->end);
            if (!k)
                return 0;
            v->p += k;
        } else {
            v->p++;
        }
    }
    return 0;
}

static int jv_digits(struct jv *v)
{
    const unsigned char *s = v->p;
    while (v->p < v->end && *v->p >= '0' && *v->p <= '9')
        v->p++;
    return v->p > s;
}

static int jv_number(struct jv *v)
{
    if (v->p < v->end && *v->p == '-')
        v->p++;
    if (v->p < v->end && *v->p == '0')
        v->p++;
    else if (!(v->p < v->end && *v->p >= '1' && *v->p <= '9') || !jv_digits(v))
        return 0;
    if (v->p < v->end && *v->p == '.') {
        v->p++;
        if (!jv_digits(v))
            return 0;
    }
    if (v->p < v->end && (*v->p == 'e' || *v->p == 'E')) {
        v->p++;
        if (v->p < v->end && (*v->p == '+' || *v->p == '-'))
            v->p++;
        if (!jv_digits(v))
            return 0;
    }
    return 1;
}

static int jv_value(struct jv *v, int depth)
{
    static const char *const lits[] = {"true", "false", "null"};

    jv_ws(v);
    if (v->p >= v->end || depth > MAX_DEPTH)
        return 0;
    if (*v->p == '"')
        return jv_string(v);
    if (*v->p == '{' || *v->p == '[') {
        unsigned char close = *v->p == '{' ? '}' : ']';
        v->p++;
        jv_ws(v);
        if (v->p < v->end && *v->p == close) {
            v->p++;
            return 1;
        }
        for (;;) {
            if (close == '}') {
                jv_ws(v);
                if (!jv_string(v))
                    return 0;
                jv_ws(v);
                if (v->p >= v->end || *v->p != ':')
                    return 0;
                v->p++;
            }
            if (!jv_value(v, depth + 1))
                return 0;
            jv_ws(v);
            if (v->p < v->end && *v->p == ',') {
                v->p++;
                continue;
            }
            if (v->p < v->end && *v->p == close) {
                v->p++;
                return 1;
            }
            return 0;
        }
    }
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(lits[i]);
        if ((size_t)(v->end - v->p) >= n && memcmp(v->p, lits[i], n) == 0) {
            v->p += n;
            return 1;
        }
    }
    return jv_number(v);
}

/* A record is one JSON object ending in "}\n", on one line when its input line was one (attrs
 * are copied as written, white space included: a '\n' there can only come from a "line" that
 * held one, which the file reader never produces). */
void fuzz_check_record(const char *s, size_t n, bool one_line)
{
    struct jv v = {(const unsigned char *)s, (const unsigned char *)s + n - 1};

    if (n < 3 || s[0] != '{' || s[n - 2] != '}' || s[n - 1] != '\n' ||
        (one_line && memchr(s, '\n', n - 1))) {
        fprintf(stderr, "record is not one line ending in }\\n: %.*s\n", (int)n, s);
        abort();
    }
    if (!jv_value(&v, 0) || v.p != v.end) {
        fprintf(stderr, "record is not strict JSON (byte %zu): %.*s\n",
                (size_t)(v.p - (const unsigned char *)s), (int)n, s);
        abort();
    }
}
