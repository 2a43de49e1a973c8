/* test_json.c: lib/tj_json.h, the JSON text writers: string escaping with UTF-8 repair (checked
 * byte for byte, against a plain reference implementation, and re-parsed with cJSON), the
 * UTF-8 cut, and the number converters. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tj_json.h"
#include "tj_test.h"

#define FFFD "\xEF\xBF\xBD"

/* ---- helpers ---- */

/* An exact-size heap copy of s[0..n), so AddressSanitizer sees any read past its end. */
static char *copy(const char *s, size_t n)
{
    char *c = malloc(n ? n : 1);
    memcpy(c, s, n);
    return c;
}

/* Escapes s[0..n) with tj_json_escape into a fresh buffer; returns the text NUL-terminated
 * (owned, free()) and its length in *outlen, or NULL on error. */
static char *escape(const char *s, size_t n, size_t *outlen)
{
    struct tj_buf b;
    char *in = copy(s, n);
    int rc;

    tj_buf_init(&b, 1u << 24);
    rc = tj_json_escape(&b, in, n);
    free(in);
    if (rc == 0 && tj_buf_append(&b, "", 1) == 0) {
        *outlen = b.len - 1;
        return b.data;
    }
    tj_buf_fini(&b);
    return NULL;
}

/* Checks that tj_json_string(s) parses with cJSON to a string whose first `wantlen` bytes are
 * want (cJSON's value stops at an embedded NUL, so want must not hold one). */
static bool reparses_to(const char *s, size_t n, const char *want, size_t wantlen)
{
    struct tj_buf b;
    char *in = copy(s, n);
    cJSON *j;
    bool ok;
    int rc;

    tj_buf_init(&b, 1u << 24);
    rc = tj_json_string(&b, in, n);
    free(in);
    if (rc || tj_buf_append(&b, "", 1)) {
        tj_buf_fini(&b);
        return false;
    }
    j = cJSON_Parse(b.data);
    ok = j && cJSON_IsString(j) && strlen(j->valuestring) == wantlen &&
         memcmp(j->valuestring, want, wantlen) == 0;
    if (!ok)
        fprintf(stderr, "  cJSON did not read back %s\n", b.data);
    cJSON_Delete(j);
    tj_buf_fini(&b);
    return ok;
}

/* Checks escape(s) == want exactly. */
static bool escapes_to(const char *s, size_t n, const char *want, size_t wantlen)
{
    size_t len = 0;
    char *got = escape(s, n, &len);
    bool ok = got && len == wantlen && memcmp(got, want, wantlen) == 0;

    if (!ok)
        fprintf(stderr, "  escape gave \"%s\"\n  want       \"%.*s\"\n", got ? got : "(error)",
                (int)wantlen, want);
    free(got);
    return ok;
}

/* The reference: length of the valid UTF-8 sequence at s[0..n), or 0, found the plain way by
 * decoding the code point and checking it against Unicode's ranges. */
static size_t ref_seq_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    unsigned long cp = len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    unsigned long min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;

    if (!len || len > n)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3F);
    }
    return cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF) ? len : 0;
}

/* The reference escaper: the same contract written byte by byte. out holds 6 * n bytes. */
static size_t ref_escape(const unsigned char *s, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t w = 0;

    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len;
        if (c == '"' || c == '\\') {
            out[w++] = '\\';
            out[w++] = (char)c;
            i++;
        } else if (c < 0x20) {
            const char *named = c == '\n'   ? "\\n"
                                : c == '\r' ? "\\r"
                                : c == '\t' ? "\\t"
                                : c == '\b' ? "\\b"
                                : c == '\f' ? "\\f"
                                            : NULL;
            if (named) {
                memcpy(out + w, named, 2);
                w += 2;
            } else {
                memcpy(out + w, "\\u00", 4);
                out[w + 4] = hex[c >> 4];
                out[w + 5] = hex[c & 15];
                w += 6;
            }
            i++;
        } else if (c < 0x80) {
            out[w++] = (char)c;
            i++;
        } else if ((len = ref_seq_len(s + i, n - i)) != 0) {
            memcpy(out + w, s + i, len);
            w += len;
            i += len;
        } else {
            memcpy(out + w, FFFD, 3);
            w += 3;
            i++;
        }
    }
    return w;
}

/* True if str[0..n) is valid UTF-8, by the reference. */
static bool valid_utf8(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t len = 1;

    for (size_t i = 0; i < n; i += s[i] < 0x80 ? 1 : len)
        if (s[i] >= 0x80 && (len = ref_seq_len(s + i, n - i)) == 0)
            return false;
    return true;
}

/* ---- escaping ---- */

static void test_escape_plain_and_empty(void)
{
    CHECK(escapes_to("", 0, "", 0));
    CHECK(escapes_to("hello world", 11, "hello world", 11));
    CHECK(escapes_to("a/b~\x7f", 5, "a/b~\x7f", 5)); /* '/' and DEL need no escape */
    CHECK(reparses_to("", 0, "", 0));
    CHECK(reparses_to("a/b~\x7f", 5, "a/b~\x7f", 5));
}

static void test_escape_quote_backslash(void)
{
    CHECK(escapes_to("\"", 1, "\\\"", 2));
    CHECK(escapes_to("\\", 1, "\\\\", 2));
    const char *in = "say \"hi\" C:\\x\\", *want = "say \\\"hi\\\" C:\\\\x\\\\";

    CHECK(escapes_to(in, strlen(in), want, strlen(want)));
    CHECK(reparses_to(in, strlen(in), in, strlen(in)));
}

static void test_escape_every_control_char(void)
{
    for (int c = 0; c < 0x20; c++) {
        char in[3] = {'a', (char)c, 'b'}, want[16];
        const char *named = c == '\n'   ? "n"
                            : c == '\r' ? "r"
                            : c == '\t' ? "t"
                            : c == '\b' ? "b"
                            : c == '\f' ? "f"
                                        : NULL;
        int wn = named ? snprintf(want, sizeof(want), "a\\%sb", named)
                       : snprintf(want, sizeof(want), "a\\u%04xb", c);
        CHECK(escapes_to(in, 3, want, (size_t)wn));
        /* cJSON's value ends at a NUL: for c == 0 only "a" is visible. */
        CHECK(c == 0 ? reparses_to(in, 3, "a", 1) : reparses_to(in, 3, in, 3));
    }
    /* A NUL is escaped, never written raw. */
    CHECK(escapes_to("\0", 1, "\\u0000", 6));
}

static void test_escape_valid_utf8_passes(void)
{
    static const char *const ok[] = {
        "\xC2\x80",         /* U+0080, smallest 2-byte */
        "\xC3\xA9",         /* e acute */
        "\xDF\xBF",         /* U+07FF */
        "\xE0\xA0\x80",     /* U+0800, smallest 3-byte */
        "\xE2\x82\xAC",     /* euro */
        "\xED\x9F\xBF",     /* U+D7FF, just below the surrogates */
        "\xEE\x80\x80",     /* U+E000, just above */
        "\xEF\xBF\xBD",     /* U+FFFD itself */
        "\xEF\xBF\xBF",     /* U+FFFF */
        "\xF0\x90\x80\x80", /* U+10000, smallest 4-byte */
        "\xF0\x9F\x98\x80", /* grinning face */
        "\xF4\x8F\xBF\xBF", /* U+10FFFF, the last code point */
        "na\xC3\xAFve caf\xC3\xA9 \xE2\x82\xAC 5 \xF0\x9F\x98\x80!",
    };
    for (size_t i = 0; i < TJ_ARRAY_LEN(ok); i++) {
        size_t n = strlen(ok[i]);
        CHECK(escapes_to(ok[i], n, ok[i], n));
        CHECK(reparses_to(ok[i], n, ok[i], n));
    }
}

static void test_escape_invalid_utf8_replaced(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"\x80", FFFD}, /* stray continuation */
        {"a\xBF"
         "b",
         "a" FFFD "b"},          /* stray continuation inside */
        {"\x80\x80", FFFD FFFD}, /* one per byte */
        {"\xC3", FFFD},          /* truncated 2-byte at the end */
        {"\xC3"
         "a",
         FFFD "a"},              /* truncated 2-byte, then ASCII */
        {"\xE2\x82", FFFD FFFD}, /* truncated 3-byte */
        {"\xE2\x82"
         "a",
         FFFD FFFD "a"},                  /* ... followed by ASCII */
        {"\xF0\x9F\x98", FFFD FFFD FFFD}, /* truncated 4-byte */
        {"\xF0\x9F\x98"
         "a",
         FFFD FFFD FFFD "a"},                      /* ... followed by ASCII */
        {"\xC0\xAF", FFFD FFFD},                   /* overlong '/' */
        {"\xC1\xBF", FFFD FFFD},                   /* overlong 2-byte */
        {"\xE0\x80\xAF", FFFD FFFD FFFD},          /* overlong 3-byte */
        {"\xE0\x9F\xBF", FFFD FFFD FFFD},          /* overlong, just below U+0800 */
        {"\xF0\x80\x80\xAF", FFFD FFFD FFFD FFFD}, /* overlong 4-byte */
        {"\xF0\x8F\xBF\xBF", FFFD FFFD FFFD FFFD}, /* overlong, just below U+10000 */
        {"\xED\xA0\x80", FFFD FFFD FFFD},          /* surrogate U+D800 */
        {"\xED\xBF\xBF", FFFD FFFD FFFD},          /* surrogate U+DFFF */
        {"\xED\xA0\xBD\xED\xB8\x80", FFFD FFFD FFFD FFFD FFFD FFFD}, /* CESU-8 pair */
        {"\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD},                   /* U+110000 */
        {"\xF5\x80\x80\x80", FFFD FFFD FFFD FFFD},                   /* lead F5 */
        {"\xF8\x88\x80\x80\x80", FFFD FFFD FFFD FFFD FFFD},          /* 5-byte form */
        {"\xFE\xFF", FFFD FFFD},                                     /* never in UTF-8 */
        {"\xC3\xA9\xA9", "\xC3\xA9" FFFD},                  /* extra continuation after a char */
        {"\xE2\x82\xE2\x82\xAC", FFFD FFFD "\xE2\x82\xAC"}, /* cut sequence, then a good one */
    };
    for (size_t i = 0; i < TJ_ARRAY_LEN(cases); i++) {
        size_t n = strlen(cases[i].in), wn = strlen(cases[i].want);
        if (!escapes_to(cases[i].in, n, cases[i].want, wn))
            fprintf(stderr, "  (case %zu)\n", i);
        CHECK(escapes_to(cases[i].in, n, cases[i].want, wn));
        CHECK(reparses_to(cases[i].in, n, cases[i].want, wn));
    }
}

/* Every special input at every position of strings of length 0..40, so each one is seen at
 * the start, middle and end of a 16-byte SIMD block and in the scalar tail. */
static void test_escape_simd_boundaries(void)
{
    static const struct {
        const char *in, *want, *value; /* value: what cJSON must read back */
    } sp[] = {
        {"\"", "\\\"", "\""},
        {"\\", "\\\\", "\\"},
        {"\n", "\\n", "\n"},
        {"\x01", "\\u0001", "\x01"},
        {"\x1f", "\\u001f", "\x1f"},
        {"\x7f", "\x7f", "\x7f"},
        {" ", " ", " "},
        {"\x80", FFFD, FFFD},
        {"\xFF", FFFD, FFFD},
        {"\xC3\xA9", "\xC3\xA9", "\xC3\xA9"},
        {"\xE2\x82\xAC", "\xE2\x82\xAC", "\xE2\x82\xAC"},
        {"\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80"},
        {"\xED\xA0\x80", FFFD FFFD FFFD, FFFD FFFD FFFD},
        {"\xE2\x82", FFFD FFFD, FFFD FFFD},
    };
    char in[64], want[256], value[256];

    for (size_t k = 0; k < TJ_ARRAY_LEN(sp); k++) {
        size_t sl = strlen(sp[k].in), wl = strlen(sp[k].want), vl = strlen(sp[k].value);
        for (size_t len = 0; len <= 40; len++) {
            bool ok = true;
            if (len == 0) {
                ok = escapes_to("", 0, "", 0);
            }
            for (size_t pos = 0; pos + sl <= len && ok; pos++) {
                size_t tail = len - pos - sl, w = 0, v = 0;
                memset(in, 'x', len);
                memcpy(in + pos, sp[k].in, sl);
                memset(want, 'x', pos);
                memcpy(want + pos, sp[k].want, wl);
                memset(want + pos + wl, 'x', tail);
                w = pos + wl + tail;
                memset(value, 'x', pos);
                memcpy(value + pos, sp[k].value, vl);
                memset(value + pos + vl, 'x', tail);
                v = pos + vl + tail;
                ok = escapes_to(in, len, want, w) && reparses_to(in, len, value, v);
                if (!ok)
                    fprintf(stderr, "  special %zu, length %zu, position %zu\n", k, len, pos);
            }
            CHECK(ok);
        }
    }
}

/* Strings that end where an unreadable page begins: the 16-byte scanner may not load past the
 * page, and the byte-at-a-time path it falls back on must escape exactly as it does. Every
 * special byte at every position of strings of 0..40 bytes, against the reference. */
static void test_escape_at_page_end(void)
{
    static const unsigned char sp[] = {'"', '\\', '\n', 0x01, 0x1f, 0x7f, 0x80, 0xC3, 0xED, 0xF0};
    unsigned char in[48];
    char want[48 * 6];

    for (size_t k = 0; k < sizeof(sp); k++) {
        for (size_t len = 0; len <= 40; len++) {
            bool ok = true;
            for (size_t pos = 0; pos < len && ok; pos++) {
                struct tj_buf b;
                char *g;
                size_t wn;
                memset(in, 'x', len);
                in[pos] = sp[k];
                wn = ref_escape(in, len, want);
                g = tj_test_guarded_copy((const char *)in, len);
                CHECK(g != NULL);
                if (!g)
                    return;
                tj_buf_init(&b, 1u << 16);
                ok =
                    tj_json_escape(&b, g, len) == 0 && b.len == wn && memcmp(b.data, want, wn) == 0;
                if (!ok)
                    fprintf(stderr, "  byte 0x%02x, length %zu, position %zu: \"%.*s\"\n", sp[k],
                            len, pos, (int)b.len, b.data ? b.data : "");
                tj_buf_fini(&b);
                tj_test_guarded_free(g, len);
            }
            CHECK(ok);
        }
    }
}

/* Random inputs over an alphabet rich in the bytes that matter, against the reference. */
static void test_escape_matches_reference(void)
{
    static const unsigned char alpha[] = {
        'a',  ' ',  '"',  '\\', '\n', 0x00, 0x1f, 0x7f, 0x80, 0xBF, 0xC2, 0xC3, 0xA9, 0xE0,
        0xE2, 0x82, 0xAC, 0xED, 0xA0, 0x9F, 0xF0, 0xF4, 0x8F, 0x90, 0xF5, 0xFF, 0xC0, 0x98};
    uint64_t x = 88172645463325252ull;
    unsigned char in[80];
    char *want = malloc(80 * 6 + 1);
    int bad = 0;

    for (int iter = 0; iter < 20000 && bad < 5; iter++) {
        size_t n;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        n = (size_t)(x % 80);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            in[i] = alpha[x % sizeof(alpha)];
        }
        size_t wn = ref_escape(in, n, want);
        if (!escapes_to((const char *)in, n, want, wn))
            bad++;
    }
    CHECK(bad == 0);
    free(want);
}

/* tj_json_string takes short plain strings (at most 32 bytes) by a one- or two-block fast path:
 * random short inputs, in the heap and ending at an unreadable page, must come out as the
 * reference's escape between quotes, whether they take the fast path or not. */
static void test_string_short_fast_path(void)
{
    static const unsigned char alpha[] = {'a',  '0',  ' ',  '"',  '\\', '\n', 0x00, 0x1f, 0x7f,
                                          0x80, 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xED, 0xA0, 0xFF};
    uint64_t x = 1442695040888963407ull;
    unsigned char in[40];
    char want[40 * 6 + 2];
    int bad = 0;

    for (int iter = 0; iter < 20000 && bad < 5; iter++) {
        size_t n, wn;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        n = (size_t)(x % 40);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            /* mostly plain text, so the fast path is taken often */
            in[i] = x % 4 ? (unsigned char)('a' + x % 26) : alpha[(x >> 8) % sizeof(alpha)];
        }
        want[0] = '"';
        wn = ref_escape(in, n, want + 1) + 1;
        want[wn++] = '"';
        for (int guarded = 0; guarded < 2; guarded++) {
            char *g = guarded ? tj_test_guarded_copy((const char *)in, n) : malloc(n + 1);
            struct tj_buf b;
            CHECK(g != NULL);
            if (!g)
                return;
            if (!guarded)
                memcpy(g, in, n);
            tj_buf_init(&b, 1u << 16);
            if (tj_json_string(&b, g, n) != 0 || b.len != wn || memcmp(b.data, want, wn) != 0) {
                fprintf(stderr, "  length %zu (guarded %d): got \"%.*s\"\n", n, guarded, (int)b.len,
                        b.data ? b.data : "");
                bad++;
            }
            tj_buf_fini(&b);
            if (guarded)
                tj_test_guarded_free(g, n);
            else
                free(g);
        }
    }
    CHECK(bad == 0);
}

static void test_escape_appends_and_caps(void)
{
    struct tj_buf b;

    tj_buf_init(&b, 1024);
    CHECK(tj_buf_append(&b, "[", 1) == 0);
    CHECK(tj_json_string(&b, "a\"b", 3) == 0);
    CHECK(tj_buf_append(&b, ",", 1) == 0);
    CHECK(tj_json_string(&b, "", 0) == 0);
    CHECK(tj_buf_append(&b, "]", 2) == 0); /* with the NUL */
    CHECK_STR(b.data, "[\"a\\\"b\",\"\"]");
    cJSON *j = cJSON_Parse(b.data);
    CHECK(j && cJSON_GetArraySize(j) == 2);
    CHECK(j && strcmp(cJSON_GetArrayItem(j, 0)->valuestring, "a\"b") == 0);
    cJSON_Delete(j);
    tj_buf_fini(&b);

    /* A capped buffer refuses instead of growing past its cap. */
    tj_buf_init(&b, 16);
    CHECK(tj_json_escape(&b, "0123456789abcdefghij", 20) == TJ_ENOSPC);
    CHECK(b.len == 0);
    tj_buf_fini(&b);
}

/* ---- UTF-8 cut ---- */

static void test_utf8_cut(void)
{
    const char *s = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z"; /* a é € 😀 z: 11 bytes */
    static const size_t want[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 11};

    for (size_t n = 0; n <= 11; n++) {
        if (tj_utf8_cut(s, n) != want[n])
            fprintf(stderr, "  cut at %zu gave %zu\n", n, tj_utf8_cut(s, n));
        CHECK(tj_utf8_cut(s, n) == want[n]);
    }
    CHECK(tj_utf8_cut("", 0) == 0);
    CHECK(tj_utf8_cut("\xC3", 1) == 0);
    CHECK(tj_utf8_cut("\xF0\x9F\x98", 3) == 0);
    CHECK(tj_utf8_cut("abc", 3) == 3);
    /* Bytes that start no sequence are left to the encoder (it repairs them). */
    CHECK(tj_utf8_cut("\x80\x80\x80\x80", 4) == 4);
    CHECK(tj_utf8_cut("ab\xFF", 3) <= 3);
}

/* On valid text, every cut is the largest character boundary <= n, and leaves valid UTF-8. */
static void test_utf8_cut_property(void)
{
    const char *s = "\xF0\x9F\x98\x80x\xC3\xA9\xE2\x82\xAC\xE2\x82\xAC\xC3\xA9y\xF4\x8F\xBF\xBF"
                    "\xC2\x80\xEF\xBF\xBD";
    size_t len = strlen(s);

    CHECK(valid_utf8(s, len));
    for (size_t n = 0; n <= len; n++) {
        size_t c = tj_utf8_cut(s, n), best = 0;
        for (size_t b = 0; b <= n; b++)
            if (b == len || ((unsigned char)s[b] & 0xC0) != 0x80)
                best = b;
        CHECK(c == best);
        CHECK(valid_utf8(s, c));
    }
}

/* ---- numbers ---- */

/* Runs fn on s and checks the result: want NULL means TJ_EPARSE with the buffer unchanged. */
static bool number_is(int (*fn)(struct tj_buf *, const char *, size_t), const char *s,
                      const char *want)
{
    struct tj_buf b;
    char *in = copy(s, strlen(s));
    int rc;
    bool ok;

    tj_buf_init(&b, 4096);
    tj_buf_append(&b, "x", 1);
    rc = fn(&b, in, strlen(s));
    free(in);
    if (!want) {
        ok = rc == TJ_EPARSE && b.len == 1;
    } else {
        ok = rc == 0 && b.len == 1 + strlen(want) && memcmp(b.data + 1, want, b.len - 1) == 0;
        if (ok) {
            /* The text is a JSON number to cJSON, with the value strtod reads. */
            char *t = strndup(b.data + 1, b.len - 1);
            cJSON *j = cJSON_Parse(t);
            ok = j && cJSON_IsNumber(j) && j->valuedouble == strtod(want, NULL);
            cJSON_Delete(j);
            free(t);
        }
    }
    if (!ok)
        fprintf(stderr, "  \"%s\": rc %d, got \"%.*s\", want %s\n", s, rc, (int)b.len - 1,
                b.data + 1, want ? want : "TJ_EPARSE");
    tj_buf_fini(&b);
    return ok;
}

static void test_number_text(void)
{
    static const char *const good[] = {"0",
                                       "-0",
                                       "1",
                                       "-1",
                                       "123",
                                       "1.5",
                                       "0.0",
                                       "1e5",
                                       "1E+5",
                                       "1e-5",
                                       "-0.0e0",
                                       "12.34e56",
                                       "9007199254740993",
                                       "0.000001"};
    static const char *const bad[] = {"",    "-",   "01",    "1.", ".5",       "+1",   "1e",
                                      "1e+", "abc", "1 ",    " 1", "0x10",     "NaN",  "1.2.3",
                                      "--1", "-.5", "1e5.0", "1f", "Infinity", "1_000"};

    for (size_t i = 0; i < TJ_ARRAY_LEN(good); i++)
        CHECK(number_is(tj_json_number_text, good[i], good[i]));
    for (size_t i = 0; i < TJ_ARRAY_LEN(bad); i++)
        CHECK(number_is(tj_json_number_text, bad[i], NULL));
}

static void test_int_text(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"0", "0"},
        {"42", "42"},
        {"-42", "-42"},
        {"+42", "42"},
        {"-0", "0"},
        {"+0", "0"},
        {"007", "7"},
        {"-007", "-7"},
        {"0000000000000000000000000000001", "1"},
        {"9223372036854775807", "9223372036854775807"},
        {"-9223372036854775808", "-9223372036854775808"},
        {"+9223372036854775807", "9223372036854775807"},
        {"09223372036854775807", "9223372036854775807"},
        {"9223372036854775808", NULL},  /* INT64_MAX + 1 */
        {"-9223372036854775809", NULL}, /* INT64_MIN - 1 */
        {"18446744073709551615", NULL},
        {"18446744073709551616", NULL},
        {"99999999999999999999", NULL},
        {"", NULL},
        {"+", NULL},
        {"-", NULL},
        {"+-1", NULL},
        {"1a", NULL},
        {" 1", NULL},
        {"1 ", NULL},
        {"1.0", NULL},
        {"1e3", NULL},
        {"0x10", NULL},
    };

    for (size_t i = 0; i < TJ_ARRAY_LEN(cases); i++)
        CHECK(number_is(tj_json_int_text, cases[i].in, cases[i].want));

    /* The extremes read back exactly as integers (cJSON keeps the text's double only). */
    struct tj_buf b;
    tj_buf_init(&b, 64);
    CHECK(tj_json_i64(&b, INT64_MIN) == 0);
    CHECK(b.len == 20 && memcmp(b.data, "-9223372036854775808", 20) == 0);
    b.len = 0;
    CHECK(tj_json_i64(&b, INT64_MAX) == 0);
    CHECK(b.len == 19 && memcmp(b.data, "9223372036854775807", 19) == 0);
    b.len = 0;
    CHECK(tj_json_i64(&b, 0) == 0);
    CHECK(b.len == 1 && b.data[0] == '0');
    /* Every digit count, both signs, against printf (digits are written two at a time). */
    for (int k = 0; k < 19; k++) {
        int64_t v = 1;
        for (int i = 0; i < k; i++)
            v *= 10;
        const int64_t probes[] = {v - 1, v, v + 1, v + v / 2, -v, -(v - 1), -(v + 7)};
        for (size_t i = 0; i < TJ_ARRAY_LEN(probes); i++) {
            char want[32];
            int wn = snprintf(want, sizeof(want), "%lld", (long long)probes[i]);
            b.len = 0;
            CHECK(tj_json_i64(&b, probes[i]) == 0);
            CHECK(b.len == (size_t)wn && memcmp(b.data, want, b.len) == 0);
        }
    }
    tj_buf_fini(&b);
}

static void test_float_text(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"1.5", "1.5"}, /* canonical JSON keeps its exact digits */
        {"0.1", "0.1"},   {"-2.25", "-2.25"}, {"1e5", "1e5"},  {"1E-3", "1E-3"},
        {"42", "42"},     {"1.", "1"}, /* strtod forms are rewritten */
        {".5", "0.5"},    {"-.5", "-0.5"},    {"+1.5", "1.5"}, {"007.5", "7.5"},
        {"5.e1", "50"},   {"nan", NULL},      {"NaN", NULL},   {"inf", NULL},
        {"-inf", NULL},   {"Infinity", NULL}, {"1e400", NULL}, /* not a finite double */
        {"-1e400", NULL}, {"1e999999", NULL}, {"", NULL},      {".", NULL},
        {"-", NULL},      {"abc", NULL},      {"1.5x", NULL},  {"1,5", NULL},
    };

    for (size_t i = 0; i < TJ_ARRAY_LEN(cases); i++)
        CHECK(number_is(tj_json_float_text, cases[i].in, cases[i].want));

    /* A rewritten value round-trips to the same double. */
    struct tj_buf b;
    tj_buf_init(&b, 64);
    CHECK(tj_json_float_text(&b, ".1", 2) == 0);
    CHECK(tj_buf_append(&b, "", 1) == 0);
    cJSON *j = cJSON_Parse(b.data);
    CHECK(j && cJSON_IsNumber(j) && j->valuedouble == 0.1);
    cJSON_Delete(j);
    tj_buf_fini(&b);
}

static const struct tj_test tests[] = {
    {"escape_plain_and_empty", test_escape_plain_and_empty},
    {"escape_quote_backslash", test_escape_quote_backslash},
    {"escape_every_control_char", test_escape_every_control_char},
    {"escape_valid_utf8_passes", test_escape_valid_utf8_passes},
    {"escape_invalid_utf8_replaced", test_escape_invalid_utf8_replaced},
    {"escape_simd_boundaries", test_escape_simd_boundaries},
    {"escape_at_page_end", test_escape_at_page_end},
    {"escape_matches_reference", test_escape_matches_reference},
    {"escape_appends_and_caps", test_escape_appends_and_caps},
    {"string_short_fast_path", test_string_short_fast_path},
    {"utf8_cut", test_utf8_cut},
    {"utf8_cut_property", test_utf8_cut_property},
    {"number_text", test_number_text},
    {"int_text", test_int_text},
    {"float_text", test_float_text},
};

int main(int argc, char **argv)
{
    return tj_test_main(tests, TJ_ARRAY_LEN(tests), argc, argv);
}
