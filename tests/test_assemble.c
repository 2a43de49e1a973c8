/* test_assemble.c: parser/tj_assemble.h, from raw lines to events: format detection, Docker's
 * partial entries, multiline events, CRLF, the line cap. Lines are fed from exact-size heap
 * copies so AddressSanitizer sees any read past their end. */
#include <stdlib.h>
#include <string.h>

#include "tj_assemble.h"
#include "tj_test.h"

/* ---- collecting events ---- */

struct got {
    char *msg; /* owned copy (may hold NULs); msg_len bytes */
    size_t msg_len;
    char time[80], stream[16], attrs[256];
    int64_t offset;
    unsigned tags;
};

struct sink {
    struct got ev[64];
    size_t n;
    int stop_with; /* returned by the callback when non-zero */
};

static void copy_slice(char *dst, size_t cap, struct tj_slice s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    if (n)
        memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

static int collect(void *arg, const struct tj_event *ev)
{
    struct sink *k = arg;
    struct got *g;

    if (k->n == TJ_ARRAY_LEN(k->ev))
        return -100;
    g = &k->ev[k->n++];
    g->msg = malloc(ev->message.len + 1);
    if (ev->message.len)
        memcpy(g->msg, ev->message.ptr, ev->message.len);
    g->msg[ev->message.len] = '\0';
    g->msg_len = ev->message.len;
    copy_slice(g->time, sizeof(g->time), ev->time);
    copy_slice(g->stream, sizeof(g->stream), ev->stream);
    copy_slice(g->attrs, sizeof(g->attrs), ev->attrs);
    g->offset = ev->offset;
    g->tags = ev->tags;
    return k->stop_with;
}

static void sink_fini(struct sink *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->ev[i].msg);
    k->n = 0;
}

static struct tj_feed feed_to(struct sink *k)
{
    memset(k, 0, sizeof(*k));
    return (struct tj_feed){.fn = collect, .arg = k, .now = TJ_SLICE_LIT("NOW")};
}

/* Feeds line[0..len) from an exact-size heap copy. */
static int feed_n(struct tj_assembler *a, const struct tj_feed *f, const char *line, size_t len,
                  int64_t offset, bool cut)
{
    char *copy = malloc(len ? len : 1);
    int rc;

    memcpy(copy, line, len);
    rc = tj_assembler_line(a, copy, len, offset, cut, f);
    free(copy);
    return rc;
}

static int feed(struct tj_assembler *a, const struct tj_feed *f, const char *line, int64_t offset)
{
    return feed_n(a, f, line, strlen(line), offset, false);
}

/* Feeds text split at '\n' (a last line without '\n' too), with the lines' real offsets. */
static void feed_text(struct tj_assembler *a, const struct tj_feed *f, const char *text,
                      int64_t base)
{
    const char *p = text, *nl;

    while (*p) {
        nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        CHECK(feed_n(a, f, p, len, base + (p - text), false) == 0);
        p += len + (nl ? 1 : 0);
    }
}

static bool msg_is(const struct got *g, const char *want, size_t n)
{
    bool ok = g->msg_len == n && memcmp(g->msg, want, n) == 0;
    if (!ok)
        fprintf(stderr, "  message \"%.*s\" (%zu bytes), want \"%.*s\" (%zu bytes)\n",
                (int)g->msg_len, g->msg, g->msg_len, (int)n, want, n);
    return ok;
}

#define MSG_IS(g, lit) msg_is((g), (lit), sizeof(lit) - 1)

/* A json-file line for log text `json` (already escaped) of stream s at time t. */
static char *jline(const char *json, const char *s, const char *t)
{
    size_t n = strlen(json) + 128;
    char *line = malloc(n);
    snprintf(line, n, "{\"log\":\"%s\",\"stream\":\"%s\",\"time\":\"%s\"}", json, s, t);
    return line;
}

static int feed_json(struct tj_assembler *a, const struct tj_feed *f, const char *json,
                     const char *s, const char *t, int64_t offset)
{
    char *line = jline(json, s, t);
    int rc = feed(a, f, line, offset);
    free(line);
    return rc;
}

/* ---- multiline setup ---- */

struct ml {
    struct tj_grok_lib *lib;
    struct tj_grok *g;
    struct tj_matcher *m;
};

static void ml_init(struct ml *ml, const char *regex, struct tj_feed *f)
{
    char err[512];

    ml->lib = tj_grok_lib_create();
    CHECK(ml->lib && tj_grok_lib_load_builtin(ml->lib, err, sizeof(err)) == 0);
    ml->g = tj_grok_compile(ml->lib, regex, strlen(regex), err, sizeof(err));
    if (!ml->g)
        fprintf(stderr, "  compile %s: %s\n", regex, err);
    CHECK(ml->g != NULL);
    ml->m = tj_matcher_create(&TJ_MATCH_LIMITS_DEFAULT);
    CHECK(ml->m != NULL);
    f->matcher = ml->m;
    f->multiline = ml->g;
}

static void ml_fini(struct ml *ml)
{
    tj_grok_unref(ml->g);
    tj_matcher_destroy(ml->m);
    tj_grok_lib_destroy(ml->lib);
}

/* ---- format detection ---- */

static void test_detect_jsonfile(void)
{
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_AUTO, 1024);

    CHECK(tj_assembler_format(a) == TJ_FORMAT_AUTO);
    CHECK(feed(a, &f,
               "{\"log\":\"one\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-25T17:56:11Z\"}",
               0) == 0);
    CHECK(tj_assembler_format(a) == TJ_FORMAT_JSONFILE);
    CHECK(feed(a, &f,
               "{\"log\":\"two\\r\\n\",\"stream\":\"stderr\",\"attrs\":{\"tag\":\"w\"},"
               "\"time\":\"2026-11-25T17:56:12Z\"}",
               51) == 0);
    CHECK(k.n == 2);
    if (k.n == 2) {
        CHECK(MSG_IS(&k.ev[0], "one"));
        CHECK_STR(k.ev[0].stream, "stdout");
        CHECK_STR(k.ev[0].time, "2026-11-25T17:56:11Z");
        CHECK(k.ev[0].offset == 0 && k.ev[0].tags == 0);
        CHECK(MSG_IS(&k.ev[1], "two"));
        CHECK_STR(k.ev[1].stream, "stderr");
        CHECK_STR(k.ev[1].time, "2026-11-25T17:56:12Z");
        CHECK_STR(k.ev[1].attrs, "{\"tag\":\"w\"}");
        CHECK(k.ev[1].offset == 51);
    }
    sink_fini(&k);
    tj_assembler_destroy(a);
}

static void test_detect_plain(void)
{
    /* Not Docker's: the first line decides plain text (an application's own JSON lines too). */
    static const char *const firsts[] = {"hello", "[1,2]", "{\"level\":\"info\",\"msg\":\"up\"}"};

    for (size_t i = 0; i < TJ_ARRAY_LEN(firsts); i++) {
        struct sink k;
        struct tj_feed f = feed_to(&k);
        struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_AUTO, 1024);
        CHECK(feed(a, &f, firsts[i], 7) == 0);
        CHECK(tj_assembler_format(a) == TJ_FORMAT_PLAIN);
        /* The first line decided: a json-file line later is plain text. */
        CHECK(feed(a, &f, "{\"log\":\"x\\n\",\"stream\":\"stdout\"}", 100) == 0);
        CHECK(k.n == 2);
        if (k.n == 2) {
            CHECK(msg_is(&k.ev[0], firsts[i], strlen(firsts[i])));
            CHECK(k.ev[0].offset == 7 && k.ev[0].tags == 0);
            CHECK_STR(k.ev[0].time, "NOW");
            CHECK_STR(k.ev[0].stream, "");
            CHECK(MSG_IS(&k.ev[1], "{\"log\":\"x\\n\",\"stream\":\"stdout\"}"));
            CHECK(k.ev[1].offset == 100);
        }
        sink_fini(&k);
        tj_assembler_destroy(a);
    }
}

static void test_detect_after_torn_first_line(void)
{
    /* A damaged line that looks like Docker's decides nothing: it is shipped raw and tagged,
     * and the next line decides (a file read from a rotation's middle starts like this). */
    static const char *const firsts[] = {"{not json", " {\"log\":5}", "{\"log\":\"x\\n\"} trailing",
                                         "e\":\"stdout\"}"};

    for (size_t i = 0; i < TJ_ARRAY_LEN(firsts); i++) {
        struct sink k;
        struct tj_feed f = feed_to(&k);
        struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_AUTO, 1024);
        CHECK(feed(a, &f, firsts[i], 7) == 0);
        CHECK(feed(a, &f, "{\"log\":\"x\\n\",\"stream\":\"stdout\"}", 100) == 0);
        if (firsts[i][0] == 'e') { /* not even '{': plain, as before */
            CHECK(tj_assembler_format(a) == TJ_FORMAT_PLAIN);
        } else {
            CHECK(tj_assembler_format(a) == TJ_FORMAT_JSONFILE);
            CHECK(k.n == 2);
            if (k.n == 2) {
                CHECK(msg_is(&k.ev[0], firsts[i], strlen(firsts[i])));
                CHECK(k.ev[0].tags == TJ_TAG_JSONPARSEFAILURE && k.ev[0].offset == 7);
                CHECK(MSG_IS(&k.ev[1], "x") && k.ev[1].tags == 0 && k.ev[1].offset == 100);
            }
        }
        sink_fini(&k);
        tj_assembler_destroy(a);
    }
}

static void test_detect_after_empty_lines(void)
{
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_AUTO, 1024);

    /* Empty and blank lines decide nothing (and are still lines). */
    CHECK(feed(a, &f, "", 0) == 0);
    CHECK(feed(a, &f, "  \t", 1) == 0);
    CHECK(tj_assembler_format(a) == TJ_FORMAT_AUTO);
    CHECK(feed(a, &f, " {\"log\":\"j\\n\",\"stream\":\"stdout\"}", 5) == 0);
    CHECK(tj_assembler_format(a) == TJ_FORMAT_JSONFILE);
    CHECK(k.n == 3);
    if (k.n == 3) {
        CHECK(MSG_IS(&k.ev[0], "") && k.ev[0].offset == 0);
        CHECK(MSG_IS(&k.ev[1], "  \t") && k.ev[1].offset == 1);
        CHECK(MSG_IS(&k.ev[2], "j") && k.ev[2].offset == 5);
    }
    sink_fini(&k);
    tj_assembler_destroy(a);
}

/* A cut blank first line: nothing to look at past its end. */
static void test_detect_cut_blank_line(void)
{
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_AUTO, 1024);

    CHECK(feed_n(a, &f, "   ", 3, 0, true) == 0);
    CHECK(k.n == 1);
    if (k.n == 1)
        CHECK(MSG_IS(&k.ev[0], "   ") && (k.ev[0].tags & TJ_TAG_TRUNCATED));
    sink_fini(&k);
    tj_assembler_destroy(a);
}

/* ---- plain text ---- */

static void test_plain_crlf_and_empty(void)
{
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_PLAIN, 1024);

    feed_text(a, &f, "one\r\n\r\ntwo\n\nthree\r\r\nfour", 0);
    CHECK(k.n == 6);
    if (k.n == 6) {
        CHECK(MSG_IS(&k.ev[0], "one") && k.ev[0].offset == 0);
        CHECK(MSG_IS(&k.ev[1], "") && k.ev[1].offset == 5);
        CHECK(MSG_IS(&k.ev[2], "two") && k.ev[2].offset == 7);
        CHECK(MSG_IS(&k.ev[3], "") && k.ev[3].offset == 11);
        CHECK(MSG_IS(&k.ev[4], "three\r") && k.ev[4].offset == 12); /* one CR stripped */
        CHECK(MSG_IS(&k.ev[5], "four") && k.ev[5].offset == 20);
        for (size_t i = 0; i < k.n; i++)
            CHECK(k.ev[i].tags == 0);
    }
    sink_fini(&k);
    tj_assembler_destroy(a);
}

static void test_plain_cut_and_cap(void)
{
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_PLAIN, 10);

    CHECK(feed_n(a, &f, "reader cut", 10, 0, true) == 0);    /* the reader cut it */
    CHECK(feed(a, &f, "0123456789", 11) == 0);               /* exactly the cap */
    CHECK(feed(a, &f, "0123456789ABC", 22) == 0);            /* over it */
    CHECK(feed(a, &f, "012345678\xC3\xA9", 36) == 0);        /* é straddles the cap */
    CHECK(feed(a, &f, "01234567\xE2\x82\xAC", 48) == 0);     /* € straddles the cap */
    CHECK(feed(a, &f, "0123456\xF0\x9F\x98\x80z", 60) == 0); /* 😀 straddles the cap */
    CHECK(k.n == 6);
    if (k.n == 6) {
        CHECK(MSG_IS(&k.ev[0], "reader cut") && k.ev[0].tags == TJ_TAG_TRUNCATED);
        CHECK(MSG_IS(&k.ev[1], "0123456789") && k.ev[1].tags == 0);
        CHECK(MSG_IS(&k.ev[2], "0123456789") && k.ev[2].tags == TJ_TAG_TRUNCATED);
        CHECK(MSG_IS(&k.ev[3], "012345678") && k.ev[3].tags == TJ_TAG_TRUNCATED);
        CHECK(MSG_IS(&k.ev[4], "01234567") && k.ev[4].tags == TJ_TAG_TRUNCATED);
        CHECK(MSG_IS(&k.ev[5], "0123456") && k.ev[5].tags == TJ_TAG_TRUNCATED);
        CHECK(k.ev[5].offset == 60);
    }
    sink_fini(&k);
    tj_assembler_destroy(a);
}

/* ---- json-file ---- */

static void test_jsonfile_malformed_and_cut(void)
{
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_JSONFILE, 20);

    CHECK(feed(a, &f, "{\"log\":\"ok\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-25T17:56:16Z\"}",
               0) == 0);
    CHECK(feed(a, &f, "{\"log\":\"torn wri", 44) == 0);
    CHECK(feed(a, &f, "plain text in a json-file stream", 60) == 0);
    CHECK(feed_n(a, &f, "{\"log\":\"x\\n\"}", 13, 93, true) == 0); /* cut by the reader */
    CHECK(feed(a, &f, "", 106) == 0);
    CHECK(k.n == 5);
    if (k.n == 5) {
        CHECK(MSG_IS(&k.ev[0], "ok") && k.ev[0].tags == 0 && k.ev[0].offset == 0);
        CHECK(MSG_IS(&k.ev[1], "{\"log\":\"torn wri"));
        CHECK(k.ev[1].tags == TJ_TAG_JSONPARSEFAILURE && k.ev[1].offset == 44);
        CHECK_STR(k.ev[1].time, "NOW");
        /* Raw text is capped like any line. */
        CHECK(MSG_IS(&k.ev[2], "plain text in a json"));
        CHECK(k.ev[2].tags == (TJ_TAG_JSONPARSEFAILURE | TJ_TAG_TRUNCATED));
        CHECK(k.ev[2].offset == 60);
        CHECK(MSG_IS(&k.ev[3], "{\"log\":\"x\\n\"}"));
        CHECK(k.ev[3].tags == (TJ_TAG_JSONPARSEFAILURE | TJ_TAG_TRUNCATED));
        CHECK(MSG_IS(&k.ev[4], "") && k.ev[4].tags == TJ_TAG_JSONPARSEFAILURE);
    }
    sink_fini(&k);
    tj_assembler_destroy(a);
}

static void test_jsonfile_single_line_cap(void)
{
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_JSONFILE, 8);

    CHECK(feed_json(a, &f, "abcdefgh\\n", "stdout", "2026-11-25T17:56:16Z", 0) == 0);
    CHECK(feed_json(a, &f, "abcdefg\\u00e9\\n", "stdout", "2026-11-25T17:56:16Z", 1) == 0);
    CHECK(feed_json(a, &f, "abcdefghij\\r\\n", "stdout", "2026-11-25T17:56:16Z", 2) == 0);
    CHECK(k.n == 3);
    if (k.n == 3) {
        CHECK(MSG_IS(&k.ev[0], "abcdefgh") && k.ev[0].tags == 0);
        CHECK(MSG_IS(&k.ev[1], "abcdefg") && k.ev[1].tags == TJ_TAG_TRUNCATED);
        CHECK(MSG_IS(&k.ev[2], "abcdefgh") && k.ev[2].tags == TJ_TAG_TRUNCATED);
    }
    sink_fini(&k);
    tj_assembler_destroy(a);
}

/* Docker writes a line over 16 KiB as 16 KiB pieces; the last one ends in "\n". */
static void test_partials_joined(void)
{
    const size_t piece = 16384;
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_AUTO, 1u << 20);
    char *text = malloc(3 * piece + 1), *buf = malloc(piece + 16);
    int64_t off = 1000;

    for (size_t i = 0; i < 3 * piece; i++)
        text[i] = (char)('a' + (i * 7) % 26);
    text[3 * piece] = '\0';
    for (int p = 0; p < 3; p++) {
        char t[32];
        memcpy(buf, text + p * piece, piece);
        strcpy(buf + piece, p == 2 ? "tail\\r\\n" : "");
        snprintf(t, sizeof(t), "2026-11-25T17:56:1%dZ", p);
        char *line = jline(buf, "stdout", t);
        CHECK(feed(a, &f, line, off) == 0);
        CHECK(k.n == 0 || p == 2);
        off += (int64_t)strlen(line) + 1;
        free(line);
    }
    CHECK(k.n == 1);
    if (k.n == 1) {
        CHECK(k.ev[0].msg_len == 3 * piece + 4);
        CHECK(memcmp(k.ev[0].msg, text, 3 * piece) == 0);
        CHECK(memcmp(k.ev[0].msg + 3 * piece, "tail", 4) == 0);
        CHECK(k.ev[0].offset == 1000); /* the first piece's */
        CHECK_STR(k.ev[0].time, "2026-11-25T17:56:10Z");
        CHECK_STR(k.ev[0].stream, "stdout");
        CHECK(k.ev[0].tags == 0);
    }
    sink_fini(&k);
    free(text);
    free(buf);
    tj_assembler_destroy(a);
}

static void test_partials_interleaved(void)
{
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_JSONFILE, 1024);

    CHECK(feed_json(a, &f, "out-1 ", "stdout", "2026-11-25T17:56:11Z", 10) == 0);
    CHECK(feed_json(a, &f, "err-1 ", "stderr", "2026-11-25T17:56:12Z", 20) == 0);
    CHECK(feed_json(a, &f, "out-2 ", "stdout", "2026-11-25T17:56:13Z", 30) == 0);
    CHECK(feed_json(a, &f, "whole\\n", "stdout", "2026-11-25T17:56:14Z", 40) ==
          0); /* ends the stdout chain */
    CHECK(feed_json(a, &f, "whole\\n", "stdout", "2026-11-25T17:56:15Z", 50) == 0);
    CHECK(feed_json(a, &f, "err-2\\n", "stderr", "2026-11-25T17:56:16Z", 60) == 0);
    CHECK(k.n == 3);
    if (k.n == 3) {
        CHECK(MSG_IS(&k.ev[0], "out-1 out-2 whole"));
        CHECK_STR(k.ev[0].stream, "stdout");
        CHECK(k.ev[0].offset == 10);
        CHECK_STR(k.ev[0].time, "2026-11-25T17:56:11Z");
        CHECK(MSG_IS(&k.ev[1], "whole") && k.ev[1].offset == 50);
        CHECK_STR(k.ev[1].time, "2026-11-25T17:56:15Z");
        CHECK(MSG_IS(&k.ev[2], "err-1 err-2"));
        CHECK_STR(k.ev[2].stream, "stderr");
        CHECK(k.ev[2].offset == 20);
        CHECK_STR(k.ev[2].time, "2026-11-25T17:56:12Z");
    }
    sink_fini(&k);
    tj_assembler_destroy(a);
}

/* A CR at the end of one piece and the LF in the next: the joined line ends in CRLF. */
static void test_partials_crlf_across_pieces(void)
{
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_JSONFILE, 1024);

    CHECK(feed_json(a, &f, "abc\\r", "stdout", "2026-11-25T17:56:16Z", 0) == 0);
    CHECK(feed_json(a, &f, "\\n", "stdout", "2026-11-25T17:56:16Z", 1) == 0);
    CHECK(k.n == 1);
    if (k.n == 1)
        CHECK(MSG_IS(&k.ev[0], "abc"));
    sink_fini(&k);
    tj_assembler_destroy(a);
}

static void test_partials_flush(void)
{
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_JSONFILE, 1024);

    CHECK(feed_json(a, &f, "half ", "stdout", "2026-11-25T17:56:11Z", 5) == 0);
    CHECK(feed_json(a, &f, "more", "stdout", "2026-11-25T17:56:12Z", 6) == 0);
    /* The writer may still finish the line: flush(false) keeps it. */
    CHECK(tj_assembler_flush(a, false, &f) == 0);
    CHECK(k.n == 0);
    CHECK(tj_assembler_flush(a, true, &f) == 0);
    CHECK(k.n == 1);
    if (k.n == 1) {
        CHECK(MSG_IS(&k.ev[0], "half more") && k.ev[0].offset == 5);
        CHECK_STR(k.ev[0].stream, "stdout");
        CHECK_STR(k.ev[0].time, "2026-11-25T17:56:11Z");
    }
    CHECK(tj_assembler_flush(a, true, &f) == 0);
    CHECK(k.n == 1);
    sink_fini(&k);
    tj_assembler_destroy(a);
}

/* A chain longer than the cap: one event, cut on a character boundary, tagged. */
static void test_partials_over_cap(void)
{
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_JSONFILE, 10);

    /* The cap falls inside a character of the second piece. */
    CHECK(feed_json(a, &f, "012345", "stdout", "2026-11-25T17:56:16Z", 0) == 0);
    CHECK(feed_json(a, &f, "678\\u20acabc", "stdout", "2026-11-25T17:56:16Z", 1) == 0);
    CHECK(feed_json(a, &f, "more and more", "stdout", "2026-11-25T17:56:16Z", 2) == 0);
    CHECK(feed_json(a, &f, "end\\n", "stdout", "2026-11-25T17:56:16Z", 3) == 0);
    /* Docker splits by bytes: a character cut between pieces, the cap right after the first. */
    CHECK(feed_json(a, &f, "012345678\xC3", "stdout", "2026-11-25T17:56:16Z", 4) == 0);
    CHECK(feed_json(a, &f, "\xA9xyz\\n", "stdout", "2026-11-25T17:56:16Z", 5) == 0);
    /* After a cut, a later piece that would fit in the room left is not appended. */
    CHECK(feed_json(a, &f, "01234567", "stdout", "2026-11-25T17:56:16Z", 6) == 0);
    CHECK(feed_json(a, &f, "\\u20ac", "stdout", "2026-11-25T17:56:16Z", 7) == 0);
    CHECK(feed_json(a, &f, "z\\n", "stdout", "2026-11-25T17:56:16Z", 8) == 0);
    CHECK(k.n == 3);
    if (k.n == 3) {
        CHECK(MSG_IS(&k.ev[0], "012345678"));
        CHECK(k.ev[0].tags == TJ_TAG_TRUNCATED && k.ev[0].offset == 0);
        CHECK(MSG_IS(&k.ev[1], "012345678"));
        CHECK(k.ev[1].tags == TJ_TAG_TRUNCATED && k.ev[1].offset == 4);
        CHECK(MSG_IS(&k.ev[2], "01234567"));
        CHECK(k.ev[2].tags == TJ_TAG_TRUNCATED && k.ev[2].offset == 6);
    }
    sink_fini(&k);
    tj_assembler_destroy(a);
}

/* The raw bytes of a piece may split a UTF-8 character; joined, it is whole again. */
static void test_partials_split_character(void)
{
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_JSONFILE, 100);
    char *l1 = jline("ab\xE2\x82", "stdout", "2026-11-25T17:56:16Z"),
         *l2 = jline("\xAC"
                     "cd\\n",
                     "stdout", "2026-11-25T17:56:16Z");

    CHECK(feed(a, &f, l1, 0) == 0);
    CHECK(feed(a, &f, l2, 1) == 0);
    CHECK(k.n == 1);
    if (k.n == 1)
        CHECK(MSG_IS(&k.ev[0], "ab\xE2\x82\xAC"
                               "cd") &&
              k.ev[0].tags == 0);
    sink_fini(&k);
    free(l1);
    free(l2);
    tj_assembler_destroy(a);
}

static void test_callback_result_stops(void)
{
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_PLAIN, 100);

    k.stop_with = 42;
    CHECK(feed(a, &f, "a", 0) == 42);
    CHECK(k.n == 1);
    k.stop_with = 0;
    CHECK(feed(a, &f, "b", 2) == 0);
    CHECK(k.n == 2);
    sink_fini(&k);
    tj_assembler_destroy(a);
}

/* ---- multiline ---- */

static const char java_trace[] = "2026-11-25 17:56:16,123 ERROR [main] c.e.App - request failed\n"
                                 "java.lang.IllegalStateException: boom\n"
                                 "\tat com.example.App.handle(App.java:42)\n"
                                 "\tat com.example.App.main(App.java:10)\n"
                                 "Caused by: java.io.IOException: closed\n"
                                 "\t... 2 more\n"
                                 "2026-11-25 17:56:17,000 INFO  [main] c.e.App - recovered\n"
                                 "2026-11-25 17:56:18,000 INFO  [main] c.e.App - done\n";

static void test_multiline_java_plain(void)
{
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct ml ml;
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_AUTO, 1u << 20);
    const char *second = strstr(java_trace, "2026-11-25 17:56:17");
    const char *third = strstr(java_trace, "2026-11-25 17:56:18");

    ml_init(&ml, "^%{TIMESTAMP_ISO8601} ", &f);
    feed_text(a, &f, java_trace, 500);
    CHECK(k.n == 2); /* the last event waits for its continuation lines */
    CHECK(tj_assembler_flush(a, false, &f) == 0);
    CHECK(k.n == 3);
    if (k.n == 3) {
        CHECK(MSG_IS(&k.ev[0], "2026-11-25 17:56:16,123 ERROR [main] c.e.App - request failed\n"
                               "java.lang.IllegalStateException: boom\n"
                               "\tat com.example.App.handle(App.java:42)\n"
                               "\tat com.example.App.main(App.java:10)\n"
                               "Caused by: java.io.IOException: closed\n"
                               "\t... 2 more"));
        CHECK(k.ev[0].offset == 500 && k.ev[0].tags == 0);
        CHECK(MSG_IS(&k.ev[1], "2026-11-25 17:56:17,000 INFO  [main] c.e.App - recovered"));
        CHECK(k.ev[1].offset == 500 + (second - java_trace));
        CHECK(MSG_IS(&k.ev[2], "2026-11-25 17:56:18,000 INFO  [main] c.e.App - done"));
        CHECK(k.ev[2].offset == 500 + (third - java_trace));
    }
    CHECK(tj_assembler_flush(a, true, &f) == 0);
    CHECK(k.n == 3);
    sink_fini(&k);
    ml_fini(&ml);
    tj_assembler_destroy(a);
}

static void test_multiline_java_jsonfile(void)
{
    static const char *const lines[] = {
        "2026-11-25 17:56:16,123 ERROR boom\\n",
        "java.lang.RuntimeException: x\\n",
        "\\tat a.B.c(B.java:1)\\n",
        "2026-11-25 17:56:17,000 INFO ok\\n",
    };
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct ml ml;
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_AUTO, 1u << 20);
    char t[32];

    ml_init(&ml, "^%{TIMESTAMP_ISO8601} ", &f);
    for (size_t i = 0; i < TJ_ARRAY_LEN(lines); i++) {
        snprintf(t, sizeof(t), "2026-11-25T17:56:1%zuZ", i);
        CHECK(feed_json(a, &f, lines[i], "stderr", t, 100 * (int64_t)i) == 0);
        /* stdout lines in between belong to their own events */
        snprintf(t, sizeof(t), "2026-11-26T00:00:0%zuZ", i);
        CHECK(feed_json(a, &f, i ? "\\tout continuation\\n" : "2026-11-25 17:00:00 out\\n",
                        "stdout", t, 100 * (int64_t)i + 50) == 0);
    }
    CHECK(tj_assembler_flush(a, true, &f) == 0);
    CHECK(k.n == 3);
    if (k.n == 3) {
        CHECK(MSG_IS(&k.ev[0], "2026-11-25 17:56:16,123 ERROR boom\njava.lang.RuntimeException: x\n"
                               "\tat a.B.c(B.java:1)"));
        CHECK(k.ev[0].offset == 0);
        CHECK_STR(k.ev[0].time, "2026-11-25T17:56:10Z");
        CHECK_STR(k.ev[0].stream, "stderr");
        /* flush emits per stream: stdout's pending event, then stderr's */
        CHECK(MSG_IS(&k.ev[1], "2026-11-25 17:00:00 out\n\tout continuation\n"
                               "\tout continuation\n\tout continuation"));
        CHECK(k.ev[1].offset == 50);
        CHECK_STR(k.ev[1].time, "2026-11-26T00:00:00Z");
        CHECK_STR(k.ev[1].stream, "stdout");
        CHECK(MSG_IS(&k.ev[2], "2026-11-25 17:56:17,000 INFO ok"));
        CHECK(k.ev[2].offset == 300);
        CHECK_STR(k.ev[2].time, "2026-11-25T17:56:13Z");
    }
    sink_fini(&k);
    ml_fini(&ml);
    tj_assembler_destroy(a);
}

/* A line joined from partial pieces is one line to the multiline stage. */
static void test_multiline_with_partials(void)
{
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct ml ml;
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_JSONFILE, 1024);

    ml_init(&ml, "^START", &f);
    CHECK(feed_json(a, &f, "STA", "stdout", "2026-11-25T17:56:10Z", 0) == 0);
    CHECK(feed_json(a, &f, "RT one\\n", "stdout", "2026-11-25T17:56:11Z", 1) == 0);
    CHECK(feed_json(a, &f, "  cont", "stdout", "2026-11-25T17:56:12Z", 2) == 0);
    CHECK(feed_json(a, &f, "inued\\n", "stdout", "2026-11-25T17:56:13Z", 3) == 0);
    CHECK(feed_json(a, &f, "START two\\n", "stdout", "2026-11-25T17:56:14Z", 4) == 0);
    CHECK(k.n == 1);
    CHECK(tj_assembler_flush(a, true, &f) == 0);
    CHECK(k.n == 2);
    if (k.n == 2) {
        CHECK(MSG_IS(&k.ev[0], "START one\n  continued") && k.ev[0].offset == 0);
        CHECK_STR(k.ev[0].time, "2026-11-25T17:56:10Z");
        CHECK(MSG_IS(&k.ev[1], "START two") && k.ev[1].offset == 4);
    }
    sink_fini(&k);
    ml_fini(&ml);
    tj_assembler_destroy(a);
}

static void test_multiline_over_cap(void)
{
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct ml ml;
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_PLAIN, 24);

    ml_init(&ml, "^START", &f);
    CHECK(feed(a, &f, "START 1", 0) == 0);                     /* 7 bytes */
    CHECK(feed(a, &f, "  abcdefghijklm\xE2\x82\xAC", 8) == 0); /* the € does not fit */
    CHECK(feed(a, &f, "x", 30) == 0);                          /* room for "\n", not "x": nothing */
    CHECK(feed(a, &f, "  more", 32) == 0);
    CHECK(feed(a, &f, "START 2", 39) == 0);
    CHECK(feed_n(a, &f, "  cut by the reader", 19, 47, true) == 0);
    CHECK(tj_assembler_flush(a, false, &f) == 0);
    /* Nothing is dropped: an event at the cap is shipped, tagged as cut there, and the line
     * that did not fit starts the next one. */
    CHECK(k.n == 5);
    if (k.n == 5) {
        CHECK(MSG_IS(&k.ev[0], "START 1"));
        CHECK(k.ev[0].tags == TJ_TAG_TRUNCATED && k.ev[0].offset == 0);
        CHECK(MSG_IS(&k.ev[1], "  abcdefghijklm\xE2\x82\xAC\nx"));
        CHECK(k.ev[1].tags == TJ_TAG_TRUNCATED && k.ev[1].offset == 8);
        CHECK(MSG_IS(&k.ev[2], "  more") && k.ev[2].tags == 0 && k.ev[2].offset == 32);
        CHECK(MSG_IS(&k.ev[3], "START 2"));
        CHECK(k.ev[3].tags == TJ_TAG_TRUNCATED && k.ev[3].offset == 39);
        CHECK(MSG_IS(&k.ev[4], "  cut by the reader")); /* the reader's cut tags it too */
        CHECK(k.ev[4].tags == TJ_TAG_TRUNCATED && k.ev[4].offset == 47);
    }
    sink_fini(&k);
    ml_fini(&ml);
    tj_assembler_destroy(a);
}

/* A corrupt line never overtakes the multiline event that precedes it in the file. */
static void test_corrupt_line_keeps_file_order(void)
{
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct ml ml;
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_JSONFILE, 1024);

    ml_init(&ml, "^START", &f);
    CHECK(feed(a, &f, "{\"log\":\"START a\\n\",\"stream\":\"stdout\"}", 0) == 0);
    CHECK(feed(a, &f, "{\"log\":\"  more\\n\",\"stream\":\"stdout\"}", 40) == 0);
    CHECK(feed(a, &f, "{\"log\":\"torn", 80) == 0);
    CHECK(feed(a, &f, "{\"log\":\"START b\\n\",\"stream\":\"stdout\"}", 95) == 0);
    CHECK(tj_assembler_flush(a, true, &f) == 0);
    CHECK(k.n == 3);
    if (k.n == 3) {
        CHECK(MSG_IS(&k.ev[0], "START a\n  more") && k.ev[0].offset == 0);
        CHECK(k.ev[1].offset == 80 && k.ev[1].tags == TJ_TAG_JSONPARSEFAILURE);
        CHECK(MSG_IS(&k.ev[2], "START b") && k.ev[2].offset == 95);
    }
    sink_fini(&k);
    ml_fini(&ml);
    tj_assembler_destroy(a);
}

/* A continuation line that does not fit leaves no "\n" behind: it starts the next event. */
static void test_multiline_cap_no_dangling_separator(void)
{
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct ml ml;
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_PLAIN, 24);

    ml_init(&ml, "^START", &f);
    CHECK(feed(a, &f, "START 1", 0) == 0);
    CHECK(feed(a, &f, "  0123456789abc", 8) == 0); /* 7 + 1 + 15 = 23 */
    CHECK(feed(a, &f, "xy", 24) == 0);             /* "\n" would fit, "xy" not */
    CHECK(tj_assembler_flush(a, false, &f) == 0);
    CHECK(k.n == 2);
    if (k.n == 2) {
        CHECK(MSG_IS(&k.ev[0], "START 1\n  0123456789abc"));
        CHECK(k.ev[0].tags == TJ_TAG_TRUNCATED);
        CHECK(MSG_IS(&k.ev[1], "xy") && k.ev[1].tags == 0 && k.ev[1].offset == 24);
    }
    sink_fini(&k);
    ml_fini(&ml);
    tj_assembler_destroy(a);
}

/* A continuation that brings the event exactly to the cap still joins it, untagged; a joined line
 * the reader cut tags its event _truncated. */
static void test_multiline_exactly_at_cap(void)
{
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct ml ml;
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_PLAIN, 300);
    char more[293], want[301];

    memset(more, 'm', 292); /* 7 + 1 + 292 = 300: past the buffer's first allocation, too */
    more[292] = '\0';
    snprintf(want, sizeof(want), "START 1\n%s", more);
    ml_init(&ml, "^START", &f);
    CHECK(feed(a, &f, "START 1", 0) == 0);
    CHECK(feed(a, &f, more, 8) == 0);
    CHECK(feed(a, &f, "START 2", 301) == 0);
    CHECK(feed_n(a, &f, "  cut", 5, 309, true) == 0);
    CHECK(tj_assembler_flush(a, false, &f) == 0);
    CHECK(k.n == 2);
    if (k.n == 2) {
        CHECK(msg_is(&k.ev[0], want, 300));
        CHECK(k.ev[0].tags == 0 && k.ev[0].offset == 0);
        CHECK(MSG_IS(&k.ev[1], "START 2\n  cut"));
        CHECK(k.ev[1].tags == TJ_TAG_TRUNCATED && k.ev[1].offset == 301);
    }
    sink_fini(&k);
    ml_fini(&ml);
    tj_assembler_destroy(a);
}

/* A line the first-line regex cannot decide within the match limit starts an event of its own,
 * tagged _groktimeout, so a slow regex never swallows the lines after it. */
static void test_multiline_match_limit(void)
{
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct ml ml;
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_PLAIN, 1u << 20);
    size_t n = 20000;
    char *slow = malloc(n);

    memset(slow, 'a', n);
    slow[n - 1] = '!';
    ml_init(&ml, "^(a+)+$", &f);
    CHECK(feed(a, &f, "first", 0) == 0);
    CHECK(feed_n(a, &f, slow, n, 6, false) == 0);
    CHECK(tj_assembler_flush(a, false, &f) == 0);
    CHECK(k.n == 2);
    if (k.n == 2) {
        CHECK(MSG_IS(&k.ev[0], "first") && k.ev[0].tags == 0);
        CHECK(k.ev[1].msg_len == n && k.ev[1].offset == 6);
        CHECK(k.ev[1].tags == TJ_TAG_GROKTIMEOUT);
    }
    free(slow);
    sink_fini(&k);
    ml_fini(&ml);
    tj_assembler_destroy(a);
}

/* Lines before the first match form an event of their own; no regex match is needed. */
static void test_multiline_leading_lines(void)
{
    struct sink k;
    struct tj_feed f = feed_to(&k);
    struct ml ml;
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_PLAIN, 1024);

    ml_init(&ml, "^START", &f);
    feed_text(a, &f, "orphan 1\norphan 2\nSTART a\n\nSTART b", 0);
    CHECK(tj_assembler_flush(a, true, &f) == 0);
    CHECK(k.n == 3);
    if (k.n == 3) {
        CHECK(MSG_IS(&k.ev[0], "orphan 1\norphan 2") && k.ev[0].offset == 0);
        CHECK(MSG_IS(&k.ev[1], "START a\n") && k.ev[1].offset == 18);
        CHECK(MSG_IS(&k.ev[2], "START b") && k.ev[2].offset == 27);
    }
    sink_fini(&k);
    ml_fini(&ml);
    tj_assembler_destroy(a);
}

/* ---- cutting a file into independently assembled pieces ---- */

/* Appends each event as an "offset:message" line to a buffer, to compare two ways of assembling
 * the same data. */
static int append_event(void *arg, const struct tj_event *ev)
{
    struct tj_buf *out = arg;
    char head[32];
    int n = snprintf(head, sizeof(head), "%lld:", (long long)ev->offset);

    if (tj_buf_append(out, head, (size_t)n) ||
        tj_buf_append(out, ev->message.ptr, ev->message.len) || tj_buf_append(out, "\n", 1))
        return -100;
    return 0;
}

static int cmp_lines(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts the lines of b in place (events of different streams may come out in another order when
 * the data is cut: each stream's own order is what must hold, and offsets tell events apart). */
static void sort_lines(struct tj_buf *b)
{
    size_t n = 0, k = 0;
    char **v, *copy = malloc(b->len + 1), *p;

    CHECK(copy != NULL);
    memcpy(copy, b->data, b->len);
    copy[b->len] = '\0';
    for (size_t i = 0; i < b->len; i++)
        n += copy[i] == '\n';
    v = malloc((n + 1) * sizeof(*v));
    for (p = strtok(copy, "\n"); p; p = strtok(NULL, "\n"))
        v[k++] = p;
    qsort(v, k, sizeof(*v), cmp_lines);
    b->len = 0;
    for (size_t i = 0; i < k; i++) {
        CHECK(tj_buf_append(b, v[i], strlen(v[i])) == 0);
        CHECK(tj_buf_append(b, "\n", 1) == 0);
    }
    free(v);
    free(copy);
}

/* Feeds data[0..len) (starting at file offset base) to a fresh assembler, then flushes all. */
static void assemble_piece(struct tj_assembler *a, enum tj_format fmt, const char *data, size_t len,
                           int64_t base, struct tj_feed *f)
{
    const char *p = data, *end = data + len, *nl;

    tj_assembler_reset(a, fmt);
    while (p < end && (nl = memchr(p, '\n', (size_t)(end - p)))) {
        CHECK(tj_assembler_line(a, p, (size_t)(nl - p), base + (p - data), false, f) == 0);
        p = nl + 1;
    }
    CHECK(tj_assembler_flush(a, true, f) == 0);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random json-file data: lines on two streams, some split into pieces, some multiline heads
 * ("E" first) and continuations. */
static void gen_jsonfile(struct tj_buf *b, uint64_t *seed, int nlines)
{
    char line[256];

    for (int i = 0; i < nlines; i++) {
        const char *stream = rng_next(seed) % 4 == 0 ? "stderr" : "stdout";
        int pieces = rng_next(seed) % 5 == 0 ? 1 + (int)(rng_next(seed) % 3) : 0;
        bool head = rng_next(seed) % 3 == 0;
        for (int k = 0; k <= pieces; k++) {
            int n =
                snprintf(line, sizeof(line),
                         "{\"log\":\"%s%d.%d%s\",\"stream\":\"%s\","
                         "\"time\":\"2026-11-25T10:00:00.000000001Z\"}\n",
                         head && k == 0 ? "E " : "  at ", i, k, k == pieces ? "\\n" : "", stream);
            CHECK(tj_buf_append(b, line, (size_t)n) == 0);
        }
    }
}

/* Cutting where tj_assemble_cut says, reading in pieces of random size as the engine does, gives
 * the same events as assembling the whole data at once. */
static void check_cut_invariance(const char *multiline_regex)
{
    struct tj_buf data, want, got, scratch;
    struct tj_feed f = {NULL, NULL, append_event, &want, {"t", 1}};
    struct tj_feed fp = {NULL, NULL, append_event, &got, {"t", 1}};
    struct tj_assembler *a = tj_assembler_create(TJ_FORMAT_JSONFILE, 1 << 20);
    struct ml ml = {0};
    uint64_t seed = 0x9e3779b97f4a7c15ull;

    tj_buf_init(&data, 1 << 24);
    tj_buf_init(&want, 1 << 24);
    tj_buf_init(&got, 1 << 24);
    tj_buf_init(&scratch, 1 << 20);
    if (multiline_regex) {
        ml_init(&ml, multiline_regex, &f);
        fp.matcher = f.matcher;
        fp.multiline = f.multiline;
    }
    for (int round = 0; round < 40; round++) {
        struct tj_cut cut = {TJ_FORMAT_JSONFILE, fp.multiline, ml.m, &scratch};
        size_t done = 0, avail = 0, scanned = 0;
        data.len = want.len = got.len = 0;
        gen_jsonfile(&data, &seed, 20 + round * 5);
        assemble_piece(a, TJ_FORMAT_JSONFILE, data.data, data.len, 0, &f);
        while (done < data.len) {
            size_t k;
            avail += 1 + rng_next(&seed) % 600;
            if (done + avail > data.len)
                avail = data.len - done;
            k = tj_assemble_cut(&cut, data.data + done, avail, scanned);
            if (done + avail == data.len && !k)
                k = avail; /* end of input: the rest is one piece */
            if (k) {
                assemble_piece(a, TJ_FORMAT_JSONFILE, data.data + done, k, (int64_t)done, &fp);
                done += k;
                avail -= k;
                scanned = 0;
            } else {
                const char *nl = memrchr(data.data + done, '\n', avail);
                scanned = nl ? (size_t)(nl - (data.data + done)) + 1 : 0;
            }
        }
        sort_lines(&want);
        sort_lines(&got);
        if (getenv("TJ_DEBUG_CUT") &&
            (got.len != want.len || memcmp(got.data, want.data, want.len))) {
            fprintf(stderr, "round %d\n--want\n%.*s--got\n%.*s--data\n%.*s", round, (int)want.len,
                    want.data, (int)got.len, got.data, (int)data.len, data.data);
            exit(1);
        }
        CHECK(got.len == want.len && memcmp(got.data, want.data, want.len) == 0);
    }
    if (multiline_regex)
        ml_fini(&ml);
    tj_assembler_destroy(a);
    tj_buf_fini(&data);
    tj_buf_fini(&want);
    tj_buf_fini(&got);
    tj_buf_fini(&scratch);
}

static void test_cut_partials_invariant(void)
{
    check_cut_invariance(NULL);
}

static void test_cut_multiline_invariant(void)
{
    check_cut_invariance("^E ");
}

static void test_cut_basics(void)
{
    struct tj_buf scratch;
    struct tj_cut plain = {TJ_FORMAT_PLAIN, NULL, NULL, &scratch};
    struct tj_cut json = {TJ_FORMAT_JSONFILE, NULL, NULL, &scratch};
    const char *piece = "{\"log\":\"abc\",\"stream\":\"stdout\",\"time\":\"t\"}\n";
    const char *whole = "{\"log\":\"def\\n\",\"stream\":\"stdout\",\"time\":\"t\"}\n";
    char buf[512];

    tj_buf_init(&scratch, 4096);
    CHECK(tj_assemble_cut(&plain, "a\nb\nc", 5, 0) == 4); /* after the last complete line */
    CHECK(tj_assemble_cut(&plain, "abc", 3, 0) == 0);
    /* json-file: never inside a line's pieces */
    snprintf(buf, sizeof(buf), "%s%s%s", whole, piece, piece);
    CHECK(tj_assemble_cut(&json, buf, strlen(buf), 0) == strlen(whole));
    snprintf(buf, sizeof(buf), "%s%s", piece, piece);
    CHECK(tj_assemble_cut(&json, buf, strlen(buf), 0) == 0);
    snprintf(buf, sizeof(buf), "%s%s", piece, whole);
    CHECK(tj_assemble_cut(&json, buf, strlen(buf), 0) == strlen(buf));
    /* format detection: torn lines decide nothing */
    CHECK(tj_assemble_detect("{\"log\n", 6, &scratch) == TJ_FORMAT_AUTO);
    CHECK(tj_assemble_detect(whole, strlen(whole), &scratch) == TJ_FORMAT_JSONFILE);
    CHECK(tj_assemble_detect("{\"a\":1}\n", 8, &scratch) == TJ_FORMAT_PLAIN);
    CHECK(tj_assemble_detect("\n\nhello\n", 8, &scratch) == TJ_FORMAT_PLAIN);
    tj_buf_fini(&scratch);
}

static const struct tj_test tests[] = {
    {"detect_jsonfile", test_detect_jsonfile},
    {"detect_plain", test_detect_plain},
    {"detect_after_torn_first_line", test_detect_after_torn_first_line},
    {"corrupt_line_keeps_file_order", test_corrupt_line_keeps_file_order},
    {"detect_after_empty_lines", test_detect_after_empty_lines},
    {"detect_cut_blank_line", test_detect_cut_blank_line},
    {"plain_crlf_and_empty", test_plain_crlf_and_empty},
    {"plain_cut_and_cap", test_plain_cut_and_cap},
    {"jsonfile_malformed_and_cut", test_jsonfile_malformed_and_cut},
    {"jsonfile_single_line_cap", test_jsonfile_single_line_cap},
    {"partials_joined", test_partials_joined},
    {"partials_interleaved", test_partials_interleaved},
    {"partials_crlf_across_pieces", test_partials_crlf_across_pieces},
    {"partials_flush", test_partials_flush},
    {"partials_over_cap", test_partials_over_cap},
    {"partials_split_character", test_partials_split_character},
    {"callback_result_stops", test_callback_result_stops},
    {"multiline_java_plain", test_multiline_java_plain},
    {"multiline_java_jsonfile", test_multiline_java_jsonfile},
    {"multiline_with_partials", test_multiline_with_partials},
    {"multiline_over_cap", test_multiline_over_cap},
    {"multiline_cap_no_dangling_separator", test_multiline_cap_no_dangling_separator},
    {"multiline_exactly_at_cap", test_multiline_exactly_at_cap},
    {"multiline_match_limit", test_multiline_match_limit},
    {"multiline_leading_lines", test_multiline_leading_lines},
    {"cut_basics", test_cut_basics},
    {"cut_partials_invariant", test_cut_partials_invariant},
    {"cut_multiline_invariant", test_cut_multiline_invariant},
};

int main(int argc, char **argv)
{
    return tj_test_main(tests, TJ_ARRAY_LEN(tests), argc, argv);
}
