/* test_grok.c: the grok library, expander, compiler and matcher. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "tj_grok.h"
#include "tj_test.h"

static struct tj_grok_lib *lib_with(const char *defs)
{
    char err[512];
    struct tj_grok_lib *lib = tj_grok_lib_create();

    CHECK(lib != NULL);
    CHECK(tj_grok_lib_load_builtin(lib, err, sizeof(err)) == 0);
    if (defs)
        CHECK(tj_grok_lib_load(lib, defs, strlen(defs), "test", true, err, sizeof(err)) == 0);
    return lib;
}

/* Compiles expr and matches line; returns 1/0/limit and copies field `want` into got. */
static int match_field(const char *expr, const char *line, const char *field, char *got,
                       size_t gotlen)
{
    struct tj_grok_lib *lib = lib_with(NULL);
    struct tj_matcher *m = tj_matcher_create(&TJ_MATCH_LIMITS_DEFAULT);
    char err[512];
    struct tj_grok *g = tj_grok_compile(lib, expr, strlen(expr), err, sizeof(err));
    int rc = -100;

    got[0] = '\0';
    if (!g)
        fprintf(stderr, "compile %s: %s\n", expr, err);
    CHECK(g != NULL);
    if (g) {
        rc = tj_grok_match(g, m, line, strlen(line));
        for (size_t i = 0; rc == 1 && field && i < g->nfields; i++) {
            const size_t *ov = tj_matcher_ovector(m);
            char path[256] = "";
            for (size_t k = 0; k < g->fields[i].nseg; k++) {
                strcat(path, k ? "." : "");
                strcat(path, g->fields[i].seg[k]);
            }
            size_t a = ov[2 * g->fields[i].group], b = ov[2 * g->fields[i].group + 1];
            if (strcmp(path, field) == 0 && a != SIZE_MAX && b - a < gotlen) {
                memcpy(got, line + a, b - a);
                got[b - a] = '\0';
            }
        }
    }
    tj_grok_unref(g);
    tj_matcher_destroy(m);
    tj_grok_lib_destroy(lib);
    return rc;
}

/* Compiles expr expecting failure; returns the message in err. */
static void compile_error(const char *defs, const char *expr, char *err, size_t errlen)
{
    struct tj_grok_lib *lib = lib_with(defs);
    struct tj_grok *g = tj_grok_compile(lib, expr, strlen(expr), err, errlen);

    CHECK(g == NULL);
    tj_grok_unref(g);
    tj_grok_lib_destroy(lib);
}

static void test_reference_and_fields(void)
{
    char got[128];

    CHECK(match_field("%{INT:n} %{WORD:[a][b]}", "x 42 hello y", "a.b", got, sizeof(got)) == 1);
    CHECK_STR(got, "hello");
    CHECK(match_field("%{INT:n} %{WORD:a.b}", "42 hi", "n", got, sizeof(got)) == 1);
    CHECK_STR(got, "42");
    /* unanchored search, anchored when the user says so */
    CHECK(match_field("%{INT:n}", "abc -7 def", "n", got, sizeof(got)) == 1);
    CHECK_STR(got, "-7");
    CHECK(match_field("^%{INT:n}$", "abc -7 def", "n", got, sizeof(got)) == 0);
}

static void test_library_defs_reference_each_other(void)
{
    struct tj_grok_lib *lib = lib_with("INNER [a-z]+\nOUTER <%{INNER:[in][word]}>\n# comment\n");
    struct tj_matcher *m = tj_matcher_create(&TJ_MATCH_LIMITS_DEFAULT);
    char err[256];
    struct tj_grok *g = tj_grok_compile(lib, "%{OUTER:whole}", 14, err, sizeof(err));

    CHECK(g != NULL);
    if (g) {
        CHECK(g->nfields == 2);
        CHECK(tj_grok_match(g, m, "x <abc> y", 9) == 1);
        CHECK(g->nfields == 2 && g->fields[1].nseg == 2);
        CHECK_STR(g->fields[1].seg[0], "in");
    }
    tj_grok_unref(g);
    tj_matcher_destroy(m);
    tj_grok_lib_destroy(lib);
}

static void test_inline_named_groups(void)
{
    char got[64];

    CHECK(match_field("(?<[dns][question][class]>IN|CH) x", "a IN x", "dns.question.class", got,
                      sizeof(got)) == 1);
    CHECK_STR(got, "IN");
    CHECK(match_field("(?<@x>\\d+)", "v=12", "@x", got, sizeof(got)) == 1);
    CHECK_STR(got, "12");
    CHECK(match_field("(?P<py>\\d+)", "v=12", "py", got, sizeof(got)) == 1);
    CHECK_STR(got, "12");
    CHECK(match_field("(?'q'\\d+)", "v=12", "q", got, sizeof(got)) == 1);
    CHECK_STR(got, "12");
    /* lookbehind is not a named group */
    CHECK(match_field("(?<=v=)(?<n>\\d+)", "v=12", "n", got, sizeof(got)) == 1);
    CHECK_STR(got, "12");
    CHECK(match_field("(?<!v=)(?<n>\\d+)", "v=12 5", "n", got, sizeof(got)) == 1);
    CHECK_STR(got, "2");
}

static void test_references_to_named_groups(void)
{
    char got[64], err[512];

    CHECK(match_field("^(?<w>\\w+) \\k<w>$", "ab ab", "w", got, sizeof(got)) == 1);
    CHECK_STR(got, "ab");
    CHECK(match_field("^(?<w>\\w+) \\k<w>$", "ab cd", "w", got, sizeof(got)) == 0);
    CHECK(match_field("^(?<w>\\w+) \\k'w' \\k{w} \\g{w}$", "x x x x", "w", got, sizeof(got)) == 1);
    CHECK(match_field("^(?P<a>x)(?P=a)$", "xx", "a", got, sizeof(got)) == 1);
    /* a name given twice: a reference means the group of that name opened last before it */
    CHECK(match_field("^(?<w>a)-(?<w>b)-\\k<w>$", "a-b-b", "w", got, sizeof(got)) == 1);
    CHECK(match_field("^(?<q>\")?v(?(<q>)\"|)$", "\"v\"", "q", got, sizeof(got)) == 1);
    CHECK(match_field("^(?<q>\")?v(?('q')\"|)$", "\"v", "q", got, sizeof(got)) == 0);
    /* recursion by name: balanced parentheses */
    CHECK(match_field("^(?<p>\\((?:[^()]|(?&p))*\\))$", "(a(b)(c(d)))", "p", got, sizeof(got)) ==
          1);
    CHECK(match_field("^(?<p>\\((?:[^()]|(?P>p))*\\))$", "(a(b)", "p", got, sizeof(got)) == 0);
    /* numbered and relative references are left to PCRE2 */
    compile_error(NULL, "(a)\\1", err, sizeof(err));
    CHECK(strstr(err, "non-existent") != NULL);
    /* a named group inside an (?x) comment is reported clearly */
    compile_error(NULL, "(?x)y # (?<a>x)", err, sizeof(err));
    CHECK(strstr(err, "field 'a'") && strstr(err, "(?x) comment"));
}

static void test_same_field_in_alternatives(void)
{
    struct tj_grok_lib *lib = lib_with(NULL);
    struct tj_matcher *m = tj_matcher_create(&TJ_MATCH_LIMITS_DEFAULT);
    char err[256];
    const char *expr = "(?:%{INT:v:int}|%{WORD:v})$";
    struct tj_grok *g = tj_grok_compile(lib, expr, strlen(expr), err, sizeof(err));

    CHECK(g != NULL && g->nfields == 2);
    if (g) {
        const size_t *ov;
        CHECK(tj_grok_match(g, m, "abc", 3) == 1);
        ov = tj_matcher_ovector(m);
        CHECK(ov[2 * g->fields[0].group] == SIZE_MAX); /* the INT branch did not take part */
        CHECK(ov[2 * g->fields[1].group] == 0);
        CHECK(g->fields[0].type == TJ_FIELD_INT && g->fields[1].type == TJ_FIELD_STRING);
    }
    tj_grok_unref(g);
    tj_matcher_destroy(m);
    tj_grok_lib_destroy(lib);
}

static void test_oniguruma_traps(void)
{
    char got[64];

    /* A POSIX class nested in a class is Oniguruma's union, not a literal '['. */
    CHECK(match_field("^(?<v>[[[:alnum:]]_]+)$", "ab_9", "v", got, sizeof(got)) == 1);
    CHECK(match_field("^(?<v>[[[:alnum:]]_]+)$", "a[b", "v", got, sizeof(got)) == 0);
    CHECK(match_field("^(?<v>[[a-c][x-z]]+)$", "azb", "v", got, sizeof(got)) == 1);
    /* [[:alnum:]] and \w match non-ASCII letters (UTF + UCP). */
    CHECK(match_field("^(?<v>[[:alnum:]]+)$", "Zürich", "v", got, sizeof(got)) == 1);
    CHECK_STR(got, "Zürich");
    /* Oniguruma's \h is a hex digit (PCRE2's would be horizontal space). */
    CHECK(match_field("^(?<v>\\h+)$", "deadBEEF09", "v", got, sizeof(got)) == 1);
    CHECK(match_field("^(?<v>\\h+)$", "a b", "v", got, sizeof(got)) == 0);
    CHECK(match_field("^(?<v>[\\h:]+)$", "fe:80", "v", got, sizeof(got)) == 1);
    CHECK(match_field("^(?<v>\\H+)$", "xyz", "v", got, sizeof(got)) == 1);
    /* Ruby's (?m) is dot-all. */
    CHECK(match_field("(?m)^(?<v>a.b)$", "a\nb", "v", got, sizeof(got)) == 1);
    CHECK(match_field("(?m:(?<v>a.b))", "a\nb", "v", got, sizeof(got)) == 1);
    CHECK(match_field("(?<v>a.b)", "a\nb", "v", got, sizeof(got)) == 0);
}

static void test_errors_are_clear(void)
{
    char err[512];

    compile_error(NULL, "foo %{NOPE:x} bar", err, sizeof(err));
    CHECK(strstr(err, "unknown pattern %{NOPE}") && strstr(err, "offset 4"));
    compile_error("A x%{B}\nB y%{C}\nC %{A}\n", "%{A}", err, sizeof(err));
    CHECK(strstr(err, "cycle") && strstr(err, "A -> B -> C -> A"));
    compile_error(NULL, "abc(def", err, sizeof(err));
    CHECK(strstr(err, "PCRE2 error") && strstr(err, "offset 7") && strstr(err, "parenthes"));
    compile_error("BROKEN a(b\n", "xx %{BROKEN}", err, sizeof(err));
    CHECK(strstr(err, "%{BROKEN}") && strstr(err, "offset 3"));
    compile_error(NULL, "%{INT:[a]b}", err, sizeof(err));
    CHECK(strstr(err, "bad field name '[a]b'"));
    compile_error(NULL, "%{INT:a..b}", err, sizeof(err));
    CHECK(strstr(err, "bad field name"));
    compile_error(NULL, "%{INT:a.}", err, sizeof(err));
    CHECK(strstr(err, "bad field name 'a.'"));
    compile_error(NULL, "%{INT", err, sizeof(err));
    CHECK(strstr(err, "malformed %{...} at offset 0"));
    compile_error(NULL, "[[^a]]", err, sizeof(err));
    CHECK(strstr(err, "negated class nested"));
    /* Doubling 24 times: 16 M copies; the expander stops at its cap. */
    compile_error("E0 ab\nE1 %{E0}%{E0}\nE2 %{E1}%{E1}\nE3 %{E2}%{E2}\nE4 %{E3}%{E3}\n"
                  "E5 %{E4}%{E4}\nE6 %{E5}%{E5}\nE7 %{E6}%{E6}\nE8 %{E7}%{E7}\nE9 %{E8}%{E8}\n"
                  "E10 %{E9}%{E9}\nE11 %{E10}%{E10}\nE12 %{E11}%{E11}\nE13 %{E12}%{E12}\n"
                  "E14 %{E13}%{E13}\nE15 %{E14}%{E14}\nE16 %{E15}%{E15}\n",
                  "%{E16}", err, sizeof(err));
    CHECK(strstr(err, "expands to more than"));
}

static void test_library_file_errors(void)
{
    struct tj_grok_lib *lib = tj_grok_lib_create();
    char err[256];

    CHECK(tj_grok_lib_load(lib, "GOOD a\nbad-name x\n", 18, "f.grok", false, err, sizeof(err)) ==
          TJ_EPARSE);
    CHECK(strstr(err, "f.grok:2:") != NULL);
    CHECK(tj_grok_lib_load(lib, "GOOD b\n", 7, "g.grok", false, err, sizeof(err)) == TJ_EINVAL);
    CHECK(strstr(err, "already defined") != NULL);
    CHECK(tj_grok_lib_load(lib, "GOOD c\r\n", 8, "h.grok", true, err, sizeof(err)) == 0);
    CHECK_STR(tj_grok_lib_get(lib, "GOOD", 4, NULL), "c");
    CHECK(tj_grok_lib_count(lib) == 1);
    {
        size_t n = 0;
        const char **names = tj_grok_lib_names(lib, &n);
        CHECK(names && n == 1 && strcmp(names[0], "GOOD") == 0);
        free((void *)names);
    }
    tj_grok_lib_destroy(lib);
}

static void test_pathological_pattern_is_bounded(void)
{
    struct tj_grok_lib *lib = lib_with(NULL);
    struct tj_matcher *m = tj_matcher_create(&TJ_MATCH_LIMITS_DEFAULT);
    char err[256];
    struct tj_grok *g = tj_grok_compile(lib, "(a+)+$", 6, err, sizeof(err));
    size_t n = 20000;
    char *line = malloc(n + 1);

    memset(line, 'a', n);
    line[n - 1] = '!';
    line[n] = '\0';
    CHECK(g != NULL);
    if (g)
        CHECK(tj_grok_match(g, m, line, n) == TJ_ELIMIT);
    /* and the matcher still works afterwards */
    if (g)
        CHECK(tj_grok_match(g, m, "aaa", 3) == 1);
    free(line);
    tj_grok_unref(g);
    tj_matcher_destroy(m);
    tj_grok_lib_destroy(lib);
}

static void test_invalid_utf8_subject(void)
{
    char got[64];
    const char line[] = "k=\xff\xfe v=ok";

    CHECK(match_field("v=(?<v>\\w+)", line, "v", got, sizeof(got)) == 1);
    CHECK_STR(got, "ok");
}

/* On a pure-ASCII subject, tj_grok_match runs the regex's byte-mode twin where it has one: it
 * must give what the UTF-mode regex gives (match or not, every group's offsets), for regexes
 * with non-ASCII literals under quantifiers, classes and ranges, (?i) folds that only UTF mode
 * makes (U+017F to 's': no twin), \Q quotes and real library patterns. */
static void test_ascii_subjects_match_as_in_utf_mode(void)
{
    static const struct {
        const char *expr;
        int twin; /* 1: must have a byte-mode twin, 0: must not, -1: either */
    } pats[] = {
        {"^M(?<a>\xc3\xa4?)r(?<b>z)?", 1},
        {"(?i)^(?<s>\xc5\xbf+)", 0},
        {"(?i)(?<k>K+)(?<t>.*)", 1},
        {"^[!-\xc3\xa4]+?(?<r>[^\xc3\xa4]{2,})$", 1},
        {"(?<w>\\w+)\\s+(?<d>\\d+)[[:punct:]]+(?<p>[[:print:]]*)", 1},
        {"\\bfoo\\b(?<x>.*)", 1},
        {"(?<q>\\Q\xc3\xa4.\\E)|(?<z>z.)", 0},
        {"(?<e>\xc3\xa9|e)(?<f>x?)", 1},
        {"(?i)(?<h>H\xc3\x84?LLO)", 1},
        {"(?<u>\\x{100}|a)", 0},
        {"%{COMBINEDAPACHELOG}", 1},
        {"%{SYSLOGLINE}", -1},
        {"%{MONTH:m} %{GREEDYDATA:rest}", 1},
        {"%{HAPROXYHTTP}", 1},
        {"(?<p>%{URIPATH})(?<q>\\?%{URIQUERY})?", 1},
        {"(?<c>[^\\x{100}-\\x{10FFFF}]+)x", 1},
        {"(?<c>[]\\x{2028}s[:digit:]]+)(?<d>\\[?)", 1},
        {"(?<o>\\x{2028}|s)", 0},
        {"(?i)(?<c>[a\\x{17f}]+)", 0},
        {"(?x) # [\n(?<c>[\\x{17f}s]+)", 0},
    };
    static const char *const fixed[] = {
        "Mrz",
        "Mz",
        "MXrz",
        "sss",
        "SsS",
        "kK!",
        "Kelvin",
        "!!abc",
        "foo bar",
        "x foo y",
        "e",
        "ex",
        "z.",
        "hllo",
        "HLLO",
        "a",
        "Mar 3 rest",
        "Mrz 3 rest",
        ("203.0.113.7 - alice [25/Nov/2026:17:56:16 +0000] \"GET /a HTTP/1.1\" 200 5120 \"-\" "
         "\"curl/8\""),
        "Nov 25 17:56:16 host prog[123]: hello world",
        "/a/b?x=1",
        "ss]3[x",
        ("Nov 25 17:56:16 lb-1 haproxy[5146]: 198.124.139.247:35071 [25/Nov/2026:17:56:16.124] "
         "http-in api/api-1 1/0/2/65/111 200 28980 - - ---- 116/313/6/16/0 0/0 {web-02|curl/8} {} "
         "\"GET /blog/x?a=1 HTTP/1.1\""),
        "word   123 !?~ printable\ttab\x01\x7f",
        ""};
    static const char alpha[] = "MrzsSkK!-~ fooabxeHLl.123\t[]:\"/?=&%";
    struct tj_grok_lib *lib = lib_with(NULL);
    struct tj_matcher *m = tj_matcher_create(&TJ_MATCH_LIMITS_DEFAULT);
    pcre2_match_data *md = pcre2_match_data_create(64, NULL);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    char err[512], line[64];
    int bad = 0;

    for (size_t p = 0; p < TJ_ARRAY_LEN(pats); p++) {
        struct tj_grok *g =
            tj_grok_compile(lib, pats[p].expr, strlen(pats[p].expr), err, sizeof(err));
        int ec;
        PCRE2_SIZE eo;
        pcre2_code *ref;

        CHECK(g != NULL);
        if (!g)
            continue;
        if (pats[p].twin >= 0 && (g->ascii_code != NULL) != pats[p].twin) {
            fprintf(stderr, "  pattern %zu: twin %s\n", p, g->ascii_code ? "built" : "missing");
            bad++;
        }
        ref = pcre2_compile((PCRE2_SPTR)g->regex, PCRE2_ZERO_TERMINATED, TJ_GROK_PCRE2_FLAGS, &ec,
                            &eo, NULL);
        CHECK(ref != NULL && pcre2_jit_compile(ref, PCRE2_JIT_COMPLETE) == 0);
        for (size_t i = 0; i < TJ_ARRAY_LEN(fixed) + 3000 && bad < 5; i++) {
            const char *s = line;
            size_t n;
            if (i < TJ_ARRAY_LEN(fixed)) {
                s = fixed[i];
                n = strlen(s);
            } else {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                n = (size_t)(x % 24);
                for (size_t k = 0; k < n; k++) {
                    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                    line[k] = alpha[x % (sizeof(alpha) - 1)];
                }
            }
            int want = pcre2_jit_match(ref, (PCRE2_SPTR)s, n, 0, 0, md, NULL) >= 0;
            int got = tj_grok_match(g, m, s, n);
            const size_t *wo = pcre2_get_ovector_pointer(md), *go = tj_matcher_ovector(m);
            bool same = got == want;
            for (uint32_t k = 0; same && want && k <= 2 * g->ngroups + 1; k++)
                same = wo[k] == go[k];
            if (!same) {
                fprintf(stderr, "  pattern %zu on \"%.*s\": utf mode %d, tailjet %d\n", p, (int)n,
                        s, want, got);
                bad++;
            }
        }
        pcre2_code_free(ref);
        tj_grok_unref(g);
    }
    CHECK(bad == 0);
    pcre2_match_data_free(md);
    tj_matcher_destroy(m);
    tj_grok_lib_destroy(lib);
}

static void test_refcount(void)
{
    struct tj_grok_lib *lib = lib_with(NULL);
    char err[64];
    struct tj_grok *g = tj_grok_compile(lib, "x", 1, err, sizeof(err));

    CHECK(g && tj_grok_ref(g) == g);
    tj_grok_unref(g);
    CHECK(g->refs == 1);
    tj_grok_unref(g);
    tj_grok_unref(NULL);
    tj_grok_lib_destroy(lib);
}

static void test_match_data_grows(void)
{
    struct tj_grok_lib *lib = lib_with(NULL);
    struct tj_matcher *m = tj_matcher_create(&TJ_MATCH_LIMITS_DEFAULT);
    char expr[4096] = "", err[256];
    size_t n = 0;
    struct tj_grok *g;

    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(expr + n, sizeof(expr) - n, "(?<f%d>x)", i);
    g = tj_grok_compile(lib, expr, n, err, sizeof(err));
    CHECK(g && g->nfields == 100);
    if (g) {
        char line[101];
        memset(line, 'x', 100);
        line[100] = '\0';
        CHECK(tj_grok_match(g, m, line, 100) == 1);
        CHECK(tj_matcher_ovector(m)[2 * g->fields[99].group] == 99);
    }
    tj_grok_unref(g);
    tj_matcher_destroy(m);
    tj_grok_lib_destroy(lib);
}

static const struct tj_test tests[] = {
    {"reference_and_fields", test_reference_and_fields},
    {"library_defs_reference_each_other", test_library_defs_reference_each_other},
    {"inline_named_groups", test_inline_named_groups},
    {"references_to_named_groups", test_references_to_named_groups},
    {"same_field_in_alternatives", test_same_field_in_alternatives},
    {"oniguruma_traps", test_oniguruma_traps},
    {"errors_are_clear", test_errors_are_clear},
    {"library_file_errors", test_library_file_errors},
    {"pathological_pattern_is_bounded", test_pathological_pattern_is_bounded},
    {"invalid_utf8_subject", test_invalid_utf8_subject},
    {"ascii_subjects_match_as_in_utf_mode", test_ascii_subjects_match_as_in_utf_mode},
    {"refcount", test_refcount},
    {"match_data_grows", test_match_data_grows},
};

int main(int argc, char **argv)
{
    return tj_test_main(tests, TJ_ARRAY_LEN(tests), argc, argv);
}
