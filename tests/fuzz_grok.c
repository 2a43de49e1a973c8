/* fuzz_grok.c: libFuzzer target for the grok compiler. The input is split into pattern
 * definitions and an expression (at the first NUL byte, else at the first blank line, else it
 * is all expression). The definitions are loaded over the built-in library, the expression is
 * compiled, and when it compiles its record shape is built and it is matched against fixed
 * lines and the input itself; every match is encoded as a record that must be one line of
 * strict JSON. On a pure-ASCII line, a regex with a byte-mode twin (tj_grok.ascii_code) must
 * give what the UTF-mode regex gives: match or not, every group's offsets. It must never crash,
 * leak or hang: PCRE2's match limits bound each match. The JSON validator is in fuzz_check.c. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "tj_grok.h"
#include "tj_record.h"

/* ---- one run ---- */

static const char *const lines[] = {
    "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 2326 "
    "\"http://www.example.com/start.html\" \"Mozilla/4.08 [en] (Win98; I ;Nav)\"",
    "Nov 25 17:56:16 host sshd[4242]: Accepted publickey for root from 10.0.0.1 port 22 ssh2",
    "2026-11-25T17:56:16.123Z ERROR [main] c.e.App - boom 12 3.5 -7 1e400 0x1F",
    "\tat com.example.App.handle(App.java:42)",
    "{\"level\":\"info\",\"msg\":\"hi \\\"there\\\"\",\"n\":1}",
    "",
    " ",
    "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 bad: \xC3 \xED\xA0\x80 \xFF \x01\x7f \"\\",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!",
    "9223372036854775807 -9223372036854775808 9223372036854775808 00012 +5 - . 1. .5 nan inf",
};

static struct tj_matcher *matcher;
static struct tj_meta meta;
static pcre2_match_context *ref_mctx;

/* The differential check of the byte-mode twin: rc is tj_grok_match's answer on line[0..n),
 * which the twin gave when the line is ASCII; the UTF-mode regex must agree. */
static void check_twin(const struct tj_grok *g, const char *line, size_t n, int rc)
{
    bool ascii = true;
    for (size_t i = 0; i < n && ascii; i++)
        ascii = (unsigned char)line[i] < 0x80;
    if (!g->ascii_code || !ascii || rc == TJ_ELIMIT)
        return;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(g->code, NULL);
    if (!md)
        abort();
    int want = pcre2_match(g->code, (PCRE2_SPTR)line, n, 0, 0, md, ref_mctx);
    if (want >= 0 || want == PCRE2_ERROR_NOMATCH) { /* else a limit in UTF mode: no verdict */
        if ((want >= 0) != (rc == 1))
            abort();
        const size_t *wo = pcre2_get_ovector_pointer(md), *go = tj_matcher_ovector(matcher);
        for (uint32_t k = 0; rc == 1 && k <= 2 * g->ngroups + 1; k++)
            if (wo[k] != go[k])
                abort();
    }
    pcre2_match_data_free(md);
}

static void match_and_encode(const struct tj_grok *g, const struct tj_shape *shape,
                             struct tj_buf *out, const char *s, size_t n)
{
    /* An exact-size copy, so reads past the line's end are caught. */
    char *line = malloc(n ? n : 1);
    struct tj_event ev = {.time = TJ_SLICE_LIT("2026-11-25T17:56:16Z"),
                          .stream = TJ_SLICE_LIT("stdout"),
                          .offset = 42};
    int rc;

    memcpy(line, s, n);
    ev.message = (struct tj_slice){line, n};
    rc = tj_grok_match(g, matcher, line, n);
    if (rc != 0 && rc != 1 && rc != TJ_ELIMIT)
        abort();
    check_twin(g, line, n, rc);
    if (rc == 1) {
        const size_t *ov = tj_matcher_ovector(matcher);
        for (size_t i = 0; i < g->nfields; i++) {
            size_t a = ov[2 * g->fields[i].group], b = ov[2 * g->fields[i].group + 1];
            if (a != SIZE_MAX && (a > b || b > n))
                abort();
        }
    }
    if (shape) {
        ev.tags = rc == 1 ? 0 : rc == 0 ? TJ_TAG_GROKPARSEFAILURE : TJ_TAG_GROKTIMEOUT;
        out->len = 0;
        if (tj_record_encode(out, shape, &ev, &meta, rc == 1 ? tj_matcher_ovector(matcher) : NULL))
            abort();
        fuzz_check_record(out->data, out->len, true);
    }
    free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data, *expr = in, *cut;
    size_t dlen = 0, elen = size;
    struct tj_grok_lib *lib;
    struct tj_grok *g;
    struct tj_shape *shape;
    struct tj_buf out;
    char err[512];

    if (!matcher) {
        matcher = tj_matcher_create(&TJ_MATCH_LIMITS_DEFAULT);
        tj_meta_init(&meta);
        tj_meta_set(&meta, TJ_META_HOST_NAME, "node-1", 6);
        ref_mctx = pcre2_match_context_create(NULL);
        if (!matcher || !ref_mctx)
            abort();
        pcre2_set_match_limit(ref_mctx, TJ_MATCH_LIMITS_DEFAULT.match_limit);
        pcre2_set_depth_limit(ref_mctx, TJ_MATCH_LIMITS_DEFAULT.depth_limit);
    }
    if ((cut = memchr(in, '\0', size)) != NULL) {
        dlen = (size_t)(cut - in);
        expr = cut + 1;
        elen = size - dlen - 1;
    } else if ((cut = memmem(in, size, "\n\n", 2)) != NULL) {
        dlen = (size_t)(cut - in);
        expr = cut + 2;
        elen = size - dlen - 2;
    }
    lib = tj_grok_lib_create();
    if (!lib || tj_grok_lib_load_builtin(lib, err, sizeof(err)))
        abort();
    if (dlen) {
        /* An exact-size copy of the definitions. */
        char *defs = malloc(dlen);
        memcpy(defs, in, dlen);
        tj_grok_lib_load(lib, defs, dlen, "fuzz", size & 1, err, sizeof(err));
        free(defs);
    }
    /* An exact-size copy of the expression, so reads past its end are caught. */
    char *e = malloc(elen ? elen : 1);
    memcpy(e, expr, elen);
    err[0] = '\0';
    g = tj_grok_compile(lib, e, elen, err, sizeof(err));
    free(e);
    if (g) {
        shape = tj_shape_create(g, err, sizeof(err));
        tj_buf_init(&out, 1u << 24);
        for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
            match_and_encode(g, shape, &out, lines[i], strlen(lines[i]));
        match_and_encode(g, shape, &out, in, size);
        match_and_encode(g, shape, &out, expr, elen);
        tj_buf_fini(&out);
        tj_shape_destroy(shape);
        tj_grok_unref(g);
    } else if (!err[0]) {
        abort(); /* a failure always says why */
    }
    tj_grok_lib_destroy(lib);
    return 0;
}
