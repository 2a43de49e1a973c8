/* test_jsonfile.c: parser/tj_jsonfile.h, the json-file line decoder. Every line is decoded
 * from an exact-size heap copy, so AddressSanitizer sees any read past its end. */
#include <stdlib.h>
#include <string.h>

#include "tj_jsonfile.h"
#include "tj_test.h"

#define FFFD "\xEF\xBF\xBD"

/* One decode of an exact-size copy of line[0..len); the copy and scratch live until done(). */
struct dec {
    char *line;
    size_t len;
    struct tj_buf scratch;
    struct tj_jsonfile_entry e;
    const char *why;
    int rc;
};

static int decode_n(struct dec *d, const char *line, size_t len)
{
    d->line = malloc(len ? len : 1);
    memcpy(d->line, line, len);
    d->len = len;
    tj_buf_init(&d->scratch, 1u << 20);
    d->why = NULL;
    d->rc = tj_jsonfile_decode(d->line, len, &d->scratch, &d->e, &d->why);
    return d->rc;
}

static int decode(struct dec *d, const char *line)
{
    return decode_n(d, line, strlen(line));
}

static void done(struct dec *d)
{
    free(d->line);
    tj_buf_fini(&d->scratch);
}

static bool slice_is(struct tj_slice s, const char *want, size_t n)
{
    bool ok = s.len == n && (n == 0 || memcmp(s.ptr, want, n) == 0);
    if (!ok)
        fprintf(stderr, "  got \"%.*s\" (%zu bytes), want \"%.*s\" (%zu bytes)\n", (int)s.len,
                s.len ? s.ptr : "", s.len, (int)n, want, n);
    return ok;
}

#define SLICE_IS(s, lit) slice_is((s), (lit), sizeof(lit) - 1)

/* True if p points into d's input line. */
static bool in_line(const struct dec *d, const char *p)
{
    return p >= d->line && p <= d->line + d->len;
}

/* Decodes a line that must fail, and checks that a reason is given. */
static bool fails(const char *line, size_t len)
{
    struct dec d;
    bool ok = decode_n(&d, line, len) == TJ_EPARSE && d.why && d.why[0];

    if (!ok)
        fprintf(stderr, "  accepted (rc %d): %.*s\n", d.rc, (int)len, line);
    done(&d);
    return ok;
}

#define FAILS(lit) fails((lit), sizeof(lit) - 1)

/* ---- well-formed entries ---- */

static void test_docker_line(void)
{
    struct dec d;

    CHECK(decode(&d, "{\"log\":\"hello world\\n\",\"stream\":\"stdout\","
                     "\"time\":\"2026-11-25T17:56:16.123456789Z\"}") == 0);
    CHECK(SLICE_IS(d.e.log, "hello world"));
    CHECK(!d.e.partial);
    CHECK(SLICE_IS(d.e.stream, "stdout"));
    CHECK(SLICE_IS(d.e.time, "2026-11-25T17:56:16.123456789Z"));
    CHECK(d.e.attrs.len == 0);
    /* stream and time are slices of the line; the escaped log text is in scratch. */
    CHECK(in_line(&d, d.e.stream.ptr) && in_line(&d, d.e.time.ptr));
    CHECK(d.e.log.ptr == d.scratch.data);
    done(&d);
}

static void test_keys_any_order(void)
{
    static const char *const kv[] = {"\"log\":\"x\\n\"", "\"stream\":\"stderr\"", "\"time\":\"T\"",
                                     "\"attrs\":{\"a\":\"b\"}"};
    static const int perm[][4] = {{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 0, 3, 2}, {2, 3, 0, 1},
                                  {1, 2, 3, 0}, {3, 0, 2, 1}, {2, 1, 0, 3}, {0, 3, 1, 2}};
    char line[256];

    for (size_t i = 0; i < TJ_ARRAY_LEN(perm); i++) {
        struct dec d;
        snprintf(line, sizeof(line), "{%s,%s,%s,%s}", kv[perm[i][0]], kv[perm[i][1]],
                 kv[perm[i][2]], kv[perm[i][3]]);
        CHECK(decode(&d, line) == 0);
        CHECK(SLICE_IS(d.e.log, "x"));
        CHECK(SLICE_IS(d.e.stream, "stderr"));
        CHECK(SLICE_IS(d.e.time, "T"));
        CHECK(SLICE_IS(d.e.attrs, "{\"a\":\"b\"}"));
        done(&d);
    }
}

static void test_unknown_keys_skipped(void)
{
    static const char *const unknown[] = {
        "\"o\":{\"a\":[1,2,{\"b\":null}],\"c\":{}}",
        "\"a\":[]",
        "\"a\":[[],{},\"x\",-1.5e+3,true]",
        "\"n\":-0.25E-7",
        "\"n\":0",
        "\"t\":true",
        "\"f\":false",
        "\"z\":null",
        "\"s\":\"with \\\"quotes\\\" and \\u00e9 and \\\\\"",
        "\"\":\"empty key\"",
        "\"l\\u006fg\":\"an escaped key is not ours\"",
        "\"attrs\":\"not an object\"",
        "\"attrs\":[\"not\",\"an\",\"object\"]",
    };
    char line[512];

    for (size_t i = 0; i < TJ_ARRAY_LEN(unknown); i++) {
        for (int before = 0; before < 2; before++) {
            struct dec d;
            if (before)
                snprintf(line, sizeof(line), "{%s,\"log\":\"x\\n\",\"stream\":\"stdout\"}",
                         unknown[i]);
            else
                snprintf(line, sizeof(line), "{\"log\":\"x\\n\",\"stream\":\"stdout\",%s}",
                         unknown[i]);
            if (decode(&d, line) != 0)
                fprintf(stderr, "  %s: %s\n", line, d.why);
            CHECK(d.rc == 0);
            CHECK(SLICE_IS(d.e.log, "x"));
            CHECK(SLICE_IS(d.e.stream, "stdout"));
            CHECK(d.e.attrs.len == 0);
            done(&d);
        }
    }
}

static void test_attrs_raw(void)
{
    struct dec d;

    CHECK(decode(&d, "{\"log\":\"x\\n\",\"stream\":\"stdout\",\"attrs\":{\"tag\":\"web.1\","
                     "\"com.example.team\":\"a \\\"b\\\" \\u00e9\"},\"time\":\"T\"}") == 0);
    CHECK(SLICE_IS(d.e.attrs, "{\"tag\":\"web.1\",\"com.example.team\":\"a \\\"b\\\" \\u00e9\"}"));
    CHECK(in_line(&d, d.e.attrs.ptr));
    done(&d);

    /* Whitespace inside is kept as written; around it, it is not part of the value. */
    CHECK(decode(&d, "{ \"attrs\" : { \"a\" : [ 1 , 2 ] } , \"log\" : \"x\\n\" }") == 0);
    CHECK(SLICE_IS(d.e.attrs, "{ \"a\" : [ 1 , 2 ] }"));
    CHECK(SLICE_IS(d.e.log, "x"));
    done(&d);

    CHECK(decode(&d, "{\"log\":\"x\\n\",\"attrs\":{}}") == 0);
    CHECK(SLICE_IS(d.e.attrs, "{}"));
    done(&d);
}

/* The decoder says a log is ASCII only when it is: grok then skips its own check. */
static void test_ascii_flag(void)
{
    static const struct {
        const char *line;
        bool ascii;
    } cases[] = {
        {"{\"log\":\"GET \\\"/\\\" 200\\n\",\"stream\":\"stdout\",\"time\":\"t\"}", true},
        {"{\"log\":\"plain\\n\",\"stream\":\"stdout\",\"time\":\"t\"}", true},
        {"{\"log\":\"\\u0041\\u007f\\n\",\"stream\":\"stdout\"}", true},
        {"{\"log\":\"caf\xc3\xa9\\n\",\"stream\":\"stdout\"}", false},
        {"{\"log\":\"caf\\u00e9\\n\",\"stream\":\"stdout\"}", false},
        {"{\"log\":\"\\ud83d\\ude00\\n\",\"stream\":\"stdout\"}", false},
        {"{\"log\":\"lone \\ud83d\\n\",\"stream\":\"stdout\"}", false},
        {"{\"stream\":\"stdout\",\"log\":\"other order \\\"q\\\"\\n\"}", true},
    };

    for (size_t i = 0; i < TJ_ARRAY_LEN(cases); i++) {
        struct dec d;
        CHECK(decode(&d, cases[i].line) == 0);
        if (d.e.ascii != cases[i].ascii)
            fprintf(stderr, "case %zu: ascii %d\n", i, d.e.ascii);
        CHECK(d.e.ascii == cases[i].ascii);
        for (size_t k = 0; d.e.ascii && k < d.e.log.len; k++)
            CHECK((unsigned char)d.e.log.ptr[k] < 0x80);
        done(&d);
    }
}

static void test_escapes(void)
{
    static const struct {
        const char *json; /* the log value as written in the line */
        const char *text; /* what it decodes to */
        size_t len;
    } cases[] = {
        {"\\\"", "\"", 1},
        {"\\\\", "\\", 1},
        {"\\/", "/", 1},
        {"\\b", "\b", 1},
        {"\\f", "\f", 1},
        {"\\n", "\n", 1}, /* the appended \n is the line end */
        {"\\rx", "\rx", 2},
        {"\\t", "\t", 1},
        {"\\u0041", "A", 1},
        {"\\u00e9", "\xC3\xA9", 2},
        {"\\u00E9", "\xC3\xA9", 2},
        {"\\u0000", "\0", 1},
        {"a\\u0000b", "a\0b", 3},
        {"\\u07ff", "\xDF\xBF", 2},
        {"\\u20ac", "\xE2\x82\xAC", 3},
        {"\\uffff", "\xEF\xBF\xBF", 3},
        {"\\ud83d\\ude00", "\xF0\x9F\x98\x80", 4},
        {"\\uD83D\\uDE00", "\xF0\x9F\x98\x80", 4},
        {"\\udbff\\udfff", "\xF4\x8F\xBF\xBF", 4},
        {"\\ud800\\udc00", "\xF0\x90\x80\x80", 4},
        {"\\ud83d", FFFD, 3},             /* lone high surrogate */
        {"\\ud83dx", FFFD "x", 4},        /* high, then not an escape */
        {"\\ud83d\\u0041", FFFD "A", 4},  /* high, then not a low surrogate */
        {"\\ud83d\\n", FFFD "\n", 4},     /* high, then another escape */
        {"\\ude00", FFFD, 3},             /* lone low surrogate */
        {"\\ude00\\ud83d", FFFD FFFD, 6}, /* reversed pair */
        {"\\ud83d\\ud83d\\ude00", FFFD "\xF0\x9F\x98\x80", 7},
        {"caf\xC3\xA9 \\t", "caf\xC3\xA9 \t", 7}, /* raw UTF-8 is kept as is */
    };
    char line[256];

    for (size_t i = 0; i < TJ_ARRAY_LEN(cases); i++) {
        struct dec d;
        snprintf(line, sizeof(line), "{\"stream\":\"stdout\",\"log\":\"%s\\n\",\"time\":\"T\"}",
                 cases[i].json);
        CHECK(decode(&d, line) == 0);
        bool ok = slice_is(d.e.log, cases[i].text, cases[i].len);
        if (!ok)
            fprintf(stderr, "  (log \"%s\")\n", cases[i].json);
        CHECK(ok);
        CHECK(!d.e.partial);
        CHECK(SLICE_IS(d.e.time, "T"));
        done(&d);
    }
}

static void test_docker_go_escapes(void)
{
    struct dec d;

    /* Go's encoder escapes <, > and & for HTML safety, and tabs as \t. */
    CHECK(decode(&d, "{\"log\":\"\\u003chtml\\u003e \\u0026amp;\\tGET /a?b=1\\u0026c=2\\n\","
                     "\"stream\":\"stderr\",\"time\":\"2026-01-02T03:04:05.000000006Z\"}") == 0);
    CHECK(SLICE_IS(d.e.log, "<html> &amp;\tGET /a?b=1&c=2"));
    CHECK(SLICE_IS(d.e.stream, "stderr"));
    done(&d);

    /* A line Go wrote with invalid UTF-8 in the output: \ufffd. */
    CHECK(decode(&d, "{\"log\":\"bad \\ufffd byte\\n\",\"stream\":\"stdout\"}") == 0);
    CHECK(SLICE_IS(d.e.log, "bad " FFFD " byte"));
    done(&d);
}

/* Docker never escapes "stream" or "time": an escaped value is dropped, not passed on raw. */
static void test_escaped_stream_and_time_dropped(void)
{
    struct dec d;

    CHECK(decode(&d, "{\"log\":\"x\\n\",\"stream\":\"std\\u006fut\",\"time\":\"2026\\u002d01\"}") ==
          0);
    CHECK(SLICE_IS(d.e.log, "x"));
    CHECK(d.e.stream.len == 0);
    CHECK(d.e.time.len == 0);
    done(&d);
}

/* A repeated "log" key: the last one is the text, and the escaped form is its own or none, never
 * the earlier one's (here the second holds a control character, so it has none). */
static void test_repeated_log_key(void)
{
    struct dec d;

    CHECK(decode(&d, "{\"log\":\"first\\n\",\"log\":\"sec\x01"
                     "nd\\n\"}") == 0);
    CHECK(SLICE_IS(d.e.log, "sec\x01"
                            "nd"));
    CHECK(d.e.log_json.len == 0);
    done(&d);
    CHECK(decode(&d, "{\"log\":\"first\\n\",\"log\":\"second\\n\"}") == 0);
    CHECK(SLICE_IS(d.e.log, "second"));
    CHECK(SLICE_IS(d.e.log_json, "second"));
    done(&d);
}

static void test_partial_and_slices(void)
{
    struct dec d;

    /* No escape: the log text is a slice of the input line itself. */
    CHECK(decode(&d, "{\"log\":\"first 16k piece\",\"stream\":\"stdout\",\"time\":\"T\"}") == 0);
    CHECK(SLICE_IS(d.e.log, "first 16k piece"));
    CHECK(d.e.partial);
    CHECK(d.e.log.ptr == d.line + 8);
    CHECK(d.scratch.len == 0);
    done(&d);

    /* A CR at the end of a piece stays: the LF may come in the next piece. */
    CHECK(decode(&d, "{\"log\":\"abc\\r\",\"stream\":\"stdout\"}") == 0);
    CHECK(d.e.partial);
    CHECK(SLICE_IS(d.e.log, "abc\r"));
    done(&d);

    /* A full 16 KiB piece, no escape. */
    size_t n = 16384;
    char *big = malloc(n + 64);
    int k = snprintf(big, 64, "{\"stream\":\"stderr\",\"log\":\"");
    memset(big + k, 'a', n);
    memcpy(big + k + n, "\"}", 2);
    CHECK(decode_n(&d, big, (size_t)k + n + 2) == 0);
    CHECK(d.e.partial && d.e.log.len == n && d.e.log.ptr == d.line + k);
    CHECK(SLICE_IS(d.e.stream, "stderr"));
    done(&d);
    free(big);
}

static void test_crlf(void)
{
    struct dec d;

    CHECK(decode(&d, "{\"log\":\"abc\\r\\n\",\"stream\":\"stdout\"}") == 0);
    CHECK(SLICE_IS(d.e.log, "abc"));
    CHECK(!d.e.partial);
    done(&d);
    CHECK(decode(&d, "{\"log\":\"\\r\\n\"}") == 0);
    CHECK(SLICE_IS(d.e.log, "") && !d.e.partial);
    done(&d);
    CHECK(decode(&d, "{\"log\":\"\\n\"}") == 0);
    CHECK(SLICE_IS(d.e.log, "") && !d.e.partial);
    done(&d);
    /* Only one line end is stripped. */
    CHECK(decode(&d, "{\"log\":\"a\\r\\n\\r\\n\"}") == 0);
    CHECK(SLICE_IS(d.e.log, "a\r\n"));
    done(&d);
    CHECK(decode(&d, "{\"log\":\"a\\r\\r\\n\"}") == 0);
    CHECK(SLICE_IS(d.e.log, "a\r"));
    done(&d);
    /* A line end written as \u escapes is stripped too, and the escaped form records copy
     * never keeps it. */
    CHECK(decode(&d, "{\"log\":\"a\\u000d\\u000a\",\"stream\":\"stdout\"}") == 0);
    CHECK(SLICE_IS(d.e.log, "a") && !d.e.partial);
    CHECK(d.e.log_json.len == 0 || SLICE_IS(d.e.log_json, "a"));
    done(&d);
    CHECK(decode(&d, "{\"log\":\"b\\u000a\",\"stream\":\"stdout\"}") == 0);
    CHECK(SLICE_IS(d.e.log, "b") && !d.e.partial);
    CHECK(d.e.log_json.len == 0 || SLICE_IS(d.e.log_json, "b"));
    done(&d);
}

static void test_whitespace_tolerated(void)
{
    struct dec d;

    CHECK(decode(&d, " \t{ \"log\" :\t\"x\\n\" ,\r\"stream\" : \"stdout\" } \r") == 0);
    CHECK(SLICE_IS(d.e.log, "x"));
    CHECK(SLICE_IS(d.e.stream, "stdout"));
    done(&d);
    /* Absent stream and time are empty. */
    CHECK(decode(&d, "{\"log\":\"x\\n\"}") == 0);
    CHECK(d.e.stream.len == 0 && d.e.time.len == 0 && d.e.attrs.len == 0);
    done(&d);
}

/* ---- malformed ---- */

static void test_malformed(void)
{
    CHECK(FAILS(""));
    CHECK(FAILS("   "));
    CHECK(FAILS("not json"));
    CHECK(FAILS("hello {\"log\":\"x\\n\"}"));
    CHECK(FAILS("[\"log\",\"x\"]"));
    CHECK(FAILS("\"log\""));
    CHECK(FAILS("null"));
    CHECK(FAILS("{"));
    CHECK(FAILS("}"));
    CHECK(FAILS("{}"));                      /* no log */
    CHECK(FAILS("{\"stream\":\"stdout\"}")); /* no log */
    CHECK(FAILS("{\"log\":5}"));             /* log not a string */
    CHECK(FAILS("{\"log\":null}"));
    CHECK(FAILS("{\"log\":true}"));
    CHECK(FAILS("{\"log\":[\"x\"]}"));
    CHECK(FAILS("{\"log\":{\"a\":\"x\"}}"));
    CHECK(FAILS("{\"log\":}"));
    CHECK(FAILS("{\"log\"}"));
    CHECK(FAILS("{\"log\" \"x\\n\"}"));                  /* no colon */
    CHECK(FAILS("{\"log\":\"x\\n\" \"stream\":\"s\"}")); /* no comma */
    CHECK(FAILS("{\"log\":\"x\\n\",}"));                 /* trailing comma */
    CHECK(FAILS("{,\"log\":\"x\\n\"}"));
    CHECK(FAILS("{log:\"x\\n\"}")); /* unquoted key */
    CHECK(FAILS("{'log':'x'}"));
    CHECK(FAILS("{\"log\":\"x\\n\"} garbage")); /* trailing garbage */
    CHECK(FAILS("{\"log\":\"x\\n\"}}"));
    CHECK(FAILS("{\"log\":\"x\\n\"}{}"));
    CHECK(FAILS("{\"log\":\"x\\n\"},"));
    /* Docker's exact layout, read by the fast path, with bytes after it. */
    CHECK(FAILS("{\"log\":\"x\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-01T00:00:00Z\"}x"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-01T00:00:00Z\"}}"));
    CHECK(FAILS("{\"log\":\"x\\q\\n\"}")); /* bad escapes */
    CHECK(FAILS("{\"log\":\"\\x41\\n\"}"));
    CHECK(FAILS("{\"log\":\"\\u12\"}"));
    CHECK(FAILS("{\"log\":\"\\u12\\n\"}"));
    CHECK(FAILS("{\"log\":\"\\u12g4\\n\"}"));
    CHECK(FAILS("{\"log\":\"\\uZZZZ\\n\"}"));
    CHECK(FAILS("{\"log\":\"\\U00e9\\n\"}"));
    CHECK(FAILS("{\"log\":\"\\ud83d\\uZZZZ\\n\"}"));
    CHECK(FAILS("{\"log\":\"\\"));    /* ends in an escape */
    CHECK(FAILS("{\"log\":\"x\\n}")); /* unterminated strings */
    CHECK(FAILS("{\"log\":\"x"));
    CHECK(FAILS("{\"log\":\"x\\\"}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"stream\":\"stdout}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"stream\":5}")); /* stream/time not strings */
    CHECK(FAILS("{\"log\":\"x\\n\",\"time\":null}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"stream\":\"a\\q\"}"));
    /* Unknown values are validated, not just skipped over. */
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":\"\\q\"}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":\"abc}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":[1,]}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":[1 2]}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":[1}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":{\"a\"}}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":{\"a\":1,}}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":{1:2}}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":{\"a\" 1}}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":tru}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":nul}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":truex}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":True}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":undefined}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":NaN}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":-}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":01}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":1.}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":.5}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":1e}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":+1}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":0x1f}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"k\":1-2}"));
    /* attrs is copied into records as is: it must be JSON to the byte. */
    CHECK(FAILS("{\"log\":\"x\\n\",\"attrs\":{\"a\":b}}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"attrs\":{\"a\":\"tab\there\"}}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"attrs\":{\"a\":\"nul\0\"}}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"attrs\":{\"a\":\"bad \xC3 utf-8\"}}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"attrs\":{\"a\":\"\xED\xA0\x80\"}}"));
    CHECK(FAILS("{\"log\":\"x\\n\",\"attrs\":{\"\xFF\":\"v\"}}"));
}

static void test_deep_nesting(void)
{
    char line[4096];
    size_t k = 0;

    /* Far deeper than the skipper's limit: refused, no stack overflow. */
    k += (size_t)snprintf(line + k, sizeof(line) - k, "{\"log\":\"x\\n\",\"k\":");
    for (int i = 0; i < 1000; i++)
        line[k++] = '[';
    CHECK(fails(line, k));
    /* Well-formed but too deep: still refused. */
    k = (size_t)snprintf(line, sizeof(line), "{\"log\":\"x\\n\",\"k\":");
    for (int i = 0; i < 200; i++)
        line[k++] = '[';
    for (int i = 0; i < 200; i++)
        line[k++] = ']';
    line[k++] = '}';
    CHECK(fails(line, k));
    /* Moderate nesting is fine. */
    struct dec d;
    k = (size_t)snprintf(line, sizeof(line), "{\"log\":\"x\\n\",\"k\":");
    for (int i = 0; i < 10; i++)
        k += (size_t)snprintf(line + k, sizeof(line) - k, "{\"a\":[");
    for (int i = 0; i < 10; i++)
        k += (size_t)snprintf(line + k, sizeof(line) - k, "]}");
    line[k++] = '}';
    CHECK(decode_n(&d, line, k) == 0);
    CHECK(SLICE_IS(d.e.log, "x"));
    done(&d);
}

/* A torn write: every proper prefix of a valid line is refused (and read within bounds). */
static void test_torn_at_every_byte(void)
{
    static const char *const lines[] = {
        "{\"log\":\"GET /a \\u003c\\u003e \\ud83d\\ude00 \\\"q\\\"\\n\",\"stream\":\"stdout\","
        "\"attrs\":{\"tag\":\"web\",\"n\":[1,-2.5e3,true,null]},"
        "\"time\":\"2026-11-25T17:56:16.123456789Z\"}",
        "{\"log\":\"no escape partial piece\",\"stream\":\"stderr\",\"time\":\"T\"}",
    };

    for (size_t l = 0; l < TJ_ARRAY_LEN(lines); l++) {
        size_t len = strlen(lines[l]);
        struct dec d;
        CHECK(decode_n(&d, lines[l], len) == 0);
        done(&d);
        for (size_t k = 0; k < len; k++) {
            bool ok = fails(lines[l], k);
            if (!ok)
                fprintf(stderr, "  (prefix of %zu bytes)\n", k);
            CHECK(ok);
        }
        /* A line whose start was lost is refused too. */
        for (size_t k = 1; k < len; k++) {
            bool ok = fails(lines[l] + k, len - k);
            if (!ok)
                fprintf(stderr, "  (suffix from byte %zu)\n", k);
            CHECK(ok);
        }
    }
}

/* Every single byte of a valid line replaced by each of a few bytes: never a crash, and either
 * refused with a reason or decoded to something with a log. */
static void test_mutations(void)
{
    const char *line = "{\"log\":\"a\\u00e9\\ud83d\\ude00\\n\",\"stream\":\"stdout\","
                       "\"attrs\":{\"t\":[1,{\"u\":null}]},\"time\":\"T\"}";
    static const char subst[] = {'"', '\\', '{', '}', '[', ']', ',', ':', 'u', '0', ' ', 0};
    size_t len = strlen(line);
    char *m = malloc(len);

    for (size_t i = 0; i < len; i++) {
        for (size_t s = 0; s < sizeof(subst); s++) {
            struct dec d;
            memcpy(m, line, len);
            m[i] = subst[s];
            if (decode_n(&d, m, len) == 0)
                CHECK(d.e.log.len <= len);
            else
                CHECK(d.rc == TJ_EPARSE && d.why && d.why[0]);
            done(&d);
        }
    }
    free(m);
}

/* Escapes at every position of log texts of 0..40 bytes, so the 16-byte scanner meets them at
 * the start, middle and end of a block and in its scalar tail. */
static void test_scan_boundaries(void)
{
    static const struct {
        const char *json, *text;
    } esc[] = {{"\\\"", "\""}, {"\\\\", "\\"}, {"\\t", "\t"}, {"\\u00e9", "\xC3\xA9"}};
    char line[128], want[64];

    for (size_t len = 0; len <= 40; len++) {
        struct dec d;
        bool ok;
        /* No escape: a slice of the line, partial. */
        int k = snprintf(line, sizeof(line), "{\"log\":\"%.*s\"}", (int)len,
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        ok = decode_n(&d, line, (size_t)k) == 0 && d.e.partial && d.e.log.len == len &&
             d.e.log.ptr == d.line + 8;
        done(&d);
        CHECK(ok);
        for (size_t e = 0; e < TJ_ARRAY_LEN(esc); e++) {
            for (size_t pos = 0; pos <= len; pos++) {
                size_t tl = strlen(esc[e].text);
                k = snprintf(line, sizeof(line), "{\"log\":\"%.*s%s%.*s\\n\"}", (int)pos,
                             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", esc[e].json,
                             (int)(len - pos), "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
                memset(want, 'x', pos);
                memcpy(want + pos, esc[e].text, tl);
                memset(want + pos + tl, 'y', len - pos);
                ok = decode_n(&d, line, (size_t)k) == 0 && !d.e.partial &&
                     d.e.log.len == len + tl && memcmp(d.e.log.ptr, want, len + tl) == 0;
                if (!ok)
                    fprintf(stderr, "  %s\n", line);
                done(&d);
                CHECK(ok);
            }
        }
    }
}

/* The same escapes in lines that end where an unreadable page begins: the block scanner may
 * not load past the page, and the byte-at-a-time path it falls back on decodes the same. */
static void test_decode_at_page_end(void)
{
    static const struct {
        const char *json, *text;
    } esc[] = {{"\\\"", "\""}, {"\\\\", "\\"}, {"\\t", "\t"}, {"\\u00e9", "\xC3\xA9"}};
    char line[128], want[64];

    for (size_t len = 0; len <= 40; len++) {
        for (size_t e = 0; e < TJ_ARRAY_LEN(esc); e++) {
            for (size_t pos = 0; pos <= len; pos++) {
                size_t tl = strlen(esc[e].text);
                int k =
                    snprintf(line, sizeof(line), "{\"log\":\"%.*s%s%.*s\\n\"}", (int)pos,
                             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", esc[e].json,
                             (int)(len - pos), "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
                char *g = tj_test_guarded_copy(line, (size_t)k);
                struct tj_buf scratch;
                struct tj_jsonfile_entry en;
                const char *why = NULL;
                bool ok;

                CHECK(g != NULL);
                if (!g)
                    return;
                memset(want, 'x', pos);
                memcpy(want + pos, esc[e].text, tl);
                memset(want + pos + tl, 'y', len - pos);
                tj_buf_init(&scratch, 1u << 20);
                ok = tj_jsonfile_decode(g, (size_t)k, &scratch, &en, &why) == 0 && !en.partial &&
                     en.log.len == len + tl && memcmp(en.log.ptr, want, len + tl) == 0;
                if (!ok)
                    fprintf(stderr, "  %s\n", line);
                tj_buf_fini(&scratch);
                tj_test_guarded_free(g, (size_t)k);
                CHECK(ok);
            }
        }
    }
}

/* Unterminated strings that end exactly where an unreadable page begins: the scanners reach
 * the end with nothing left, where no block may be loaded, and report the line malformed. */
static void test_unterminated_at_page_end(void)
{
    static const char *const lines[] = {"{\"log\":\"abc",
                                        "{\"log\":\"",
                                        "{\"log\":\"abc\\\"",
                                        "{\"log\":\"0123456789abcdef",
                                        "{\"log\":\"x\\n\",\"stream\":\"stdout\",\"time\":\"",
                                        "{\"log\":\"x\\n\",\"time\":\"2026"};

    for (size_t i = 0; i < TJ_ARRAY_LEN(lines); i++) {
        size_t n = strlen(lines[i]);
        char *g = tj_test_guarded_copy(lines[i], n);
        struct tj_buf scratch;
        struct tj_jsonfile_entry en;
        const char *why = NULL;

        CHECK(g != NULL);
        if (!g)
            return;
        tj_buf_init(&scratch, 1u << 20);
        CHECK(tj_jsonfile_decode(g, n, &scratch, &en, &why) == TJ_EPARSE && why != NULL);
        tj_buf_fini(&scratch);
        tj_test_guarded_free(g, n);
    }
}

static void test_scratch_too_small(void)
{
    const char *line = "{\"log\":\"needs unescaping\\n\"}";
    struct tj_buf scratch;
    struct tj_jsonfile_entry e;
    const char *why = NULL;

    tj_buf_init(&scratch, 4);
    CHECK(tj_jsonfile_decode(line, strlen(line), &scratch, &e, &why) == TJ_ENOSPC);
    tj_buf_fini(&scratch);

    /* The scratch is reset by each decode. */
    tj_buf_init(&scratch, 1024);
    CHECK(tj_jsonfile_decode(line, strlen(line), &scratch, &e, &why) == 0);
    CHECK(SLICE_IS(e.log, "needs unescaping"));
    line = "{\"log\":\"b\\n\"}";
    CHECK(tj_jsonfile_decode(line, strlen(line), &scratch, &e, &why) == 0);
    CHECK(SLICE_IS(e.log, "b"));
    tj_buf_fini(&scratch);
}

static void test_unescape_direct(void)
{
    const char *s = "\"a\\tb\\u00e9\" rest";
    const char *cur = s, *why = NULL;
    char out[32];
    size_t n = 0;

    CHECK(tj_jsonfile_unescape(&cur, s + strlen(s), out, &n, &why) == 0);
    CHECK(n == 5 && memcmp(out, "a\tb\xC3\xA9", 5) == 0);
    CHECK(cur == s + 12 && *cur == ' ');

    s = "\"abc";
    cur = s;
    CHECK(tj_jsonfile_unescape(&cur, s + 4, out, &n, &why) == TJ_EPARSE && why);
    s = "\"a\\";
    cur = s;
    CHECK(tj_jsonfile_unescape(&cur, s + 3, out, &n, &why) == TJ_EPARSE && why);
    s = "\"\\ud83d\\ude0";
    cur = s;
    CHECK(tj_jsonfile_unescape(&cur, s + strlen(s), out, &n, &why) == TJ_EPARSE && why);
}

/* The output of tj_jsonfile_unescape needs room for the raw length only: nothing is written
 * past it, whatever the string's length (short strings meet the block scanner's tail). */
static void test_unescape_writes_within_raw_length(void)
{
    for (size_t len = 0; len <= 40; len++) {
        char out[64];
        char in[48];
        const char *cur = in, *why = NULL;
        size_t n = 0, raw;

        /* "xx...\t" with its quotes: raw length len + 4 */
        in[0] = '"';
        memset(in + 1, 'x', len);
        memcpy(in + 1 + len, "\\t\"", 3);
        raw = len + 4;
        memset(out, 'Z', sizeof(out));
        CHECK(tj_jsonfile_unescape(&cur, in + raw, out, &n, &why) == 0);
        CHECK(n == len + 1 && out[len] == '\t');
        for (size_t i = raw; i < sizeof(out); i++)
            if (out[i] != 'Z') {
                fprintf(stderr, "  length %zu: byte %zu past the raw length was written\n", len, i);
                CHECK(out[i] == 'Z');
                break;
            }
    }
}

static const struct tj_test tests[] = {
    {"docker_line", test_docker_line},
    {"keys_any_order", test_keys_any_order},
    {"unknown_keys_skipped", test_unknown_keys_skipped},
    {"attrs_raw", test_attrs_raw},
    {"escapes", test_escapes},
    {"ascii_flag", test_ascii_flag},
    {"docker_go_escapes", test_docker_go_escapes},
    {"escaped_stream_and_time_dropped", test_escaped_stream_and_time_dropped},
    {"repeated_log_key", test_repeated_log_key},
    {"partial_and_slices", test_partial_and_slices},
    {"crlf", test_crlf},
    {"whitespace_tolerated", test_whitespace_tolerated},
    {"malformed", test_malformed},
    {"deep_nesting", test_deep_nesting},
    {"torn_at_every_byte", test_torn_at_every_byte},
    {"mutations", test_mutations},
    {"scan_boundaries", test_scan_boundaries},
    {"decode_at_page_end", test_decode_at_page_end},
    {"unterminated_at_page_end", test_unterminated_at_page_end},
    {"scratch_too_small", test_scratch_too_small},
    {"unescape_direct", test_unescape_direct},
    {"unescape_writes_within_raw_length", test_unescape_writes_within_raw_length},
};

int main(int argc, char **argv)
{
    return tj_test_main(tests, TJ_ARRAY_LEN(tests), argc, argv);
}
