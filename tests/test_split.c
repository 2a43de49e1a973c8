/* test_split.c: the segment plans of tj_split against PCRE2 itself. For each workload of
 * bench/workloads.sh (its patterns, and lines from bench/gen_corpus, the generator the benchmark
 * uses), every line, and mutated copies of it (bytes replaced by the ones that cut segments,
 * deleted, inserted, parts repeated), is matched by the whole byte-mode regex (PCRE2, unanchored,
 * as tailjet ran it before plans) and by the plan alone; wherever the plan answers, its match and
 * every group's offsets must be PCRE2's, and tj_grok_match (plan first, then the regex) must
 * always agree. The plan must also answer for nearly every line a workload's pattern matches, or
 * it would be no plan at all. The generator is $TJ_GEN_CORPUS (ctest sets it). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tj_grok.h"
#include "tj_split.h"
#include "tj_test.h"

#define E "(?:\\e\\[[0-9;]*m)?"

struct workload {
    const char *name, *kind;
    const char *pattern;
    double min_hits; /* the share of the pattern's matches the plan must answer */
};

static const struct workload workloads[] = {
    {"apache", "apache", "%{COMBINEDAPACHELOG}", 0.99},
    {"syslog", "syslog", "%{SYSLOGLINE}", 0.0},
    {"haproxy", "haproxy", "%{HAPROXYHTTP}", 0.0},
    {"java", "javatrace",
     "^" E "%{TIMESTAMP_ISO8601:timestamp}" E " +" E " *%{LOGLEVEL:log.level}" E
     " +(?:\\[%{DATA:process.thread.name}\\] %{JAVACLASS:log.logger} - |" E "1" E " " E "---" E
     " (?:\\[%{DATA:service.component}\\] \\[ *%{DATA:process.thread.name}\\] )?" E
     "%{JAVACLASS:log.logger} *" E " " E ":" E " )%{GREEDYDATA:log.text}",
     0.0},
    {"kv", "kv",
     "ts=%{TIMESTAMP_ISO8601:timestamp} level=%{LOGLEVEL:log.level} "
     "method=%{WORD:http.request.method} path=%{NOTSPACE:url.original} "
     "status=%{INT:http.response.status_code:int} duration_ms=%{INT:event.duration_ms:int} "
     "bytes=%{INT:http.response.body.bytes:int} user=%{NOTSPACE:user.name} "
     "request_id=%{BASE16NUM:trace.id}",
     0.0},
    {"nomatch-apache", "json", "%{COMBINEDAPACHELOG}", 0.0},
    {"nomatch-syslog", "json", "%{SYSLOGLINE}", 0.0},
    {"nomatch-haproxy", "json", "%{HAPROXYHTTP}", 0.0},
};

/* Hand-written lines near the edges of the Apache plan: "-" fields, quotes and backslashes
 * where a plan cuts, a request PCRE2 only matches by its second alternative, IPv6, e-mail users,
 * lines that match only from a later offset. */
static const char *const edge_lines[] = {
    "127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 2326 \"-\" \"-\"",
    "127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" - - \"-\" \"-\"",
    "127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" -5 -6 \"-x\" \"-\\\"y\"",
    "127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET /a\"b HTTP/1.0\" 200 1 \"r\" \"a\"",
    "127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"\\\"quoted\\\" thing\" 400 0 \"-\" \"-\"",
    "127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"\" 400 0 \"-\" \"-\"",
    "127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 1 \"a\\\\\" \"b\\\\\"",
    "127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 1 \"a\\\"",
    "127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 1 \"a\\\n\" \"b\"",
    "::1 frank@example.com - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 1 \"a\" \"b\"",
    "2001:db8::ff00:42:8329 - user.name [1/Mar/2000:1:5:6 +0100] \"GET / HTTP/2\" 200 1 \"a\" "
    "\"b\"",
    "-- 1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 2326 \"-\" \"-\"",
    "x y 1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 2326 \"-\" \"-\"",
    "1.2.3.4  - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 2326 \"-\" \"-\"",
    "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700]  \"GET / HTTP/1.0\" 200 2326 \"-\" \"-\"",
    "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 2326 \"-\" \"-\" extra",
    "999.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 2326 \"-\" \"-\"",
    "host-a.example.com. - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 1 \"-\" \"-\"",
    "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 2326 \"-\" \"-\" 1.2.3.4 - - "
    "[10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 2326 \"-\" \"-\"",
    "a b c [d] \"e\" 1 2 \"f\" \"g\"",
    "",
    " ",
    "-",
};

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

struct counts {
    size_t lines, matched, hits, checked;
};

static pcre2_match_data *ref_md;
static pcre2_match_context *ref_mctx;

/* Matches line[0..n) both ways and checks the plan against PCRE2. */
static void check_line(const struct tj_grok *g, struct tj_matcher *m, const char *line, size_t n,
                       struct counts *c, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)line[i] >= 0x80)
            return; /* plans only run on ASCII lines */
    int want = pcre2_jit_match(g->ascii_code, (PCRE2_SPTR)line, n, 0, 0, ref_md, ref_mctx);
    if (want < 0 && want != PCRE2_ERROR_NOMATCH)
        return; /* a limit: no verdict to compare with */
    const PCRE2_SIZE *wo = pcre2_get_ovector_pointer(ref_md);
    c->checked++;
    c->matched += want >= 0;
    int got = tj_grok_match_split(g, m, line, n);
    if (got == 1) {
        c->hits++;
        const size_t *go = tj_matcher_ovector(m);
        bool same = want >= 0;
        for (uint32_t k = 0; same && k <= 2 * g->ngroups + 1; k++)
            same = wo[k] == go[k];
        if (!same) {
            fprintf(stderr, "%s: the plan disagrees with PCRE2 (PCRE2 rc %d) on: %.*s\n", what,
                    want, (int)n, line);
            for (uint32_t k = 0; k <= g->ngroups; k++)
                fprintf(stderr, "  group %u: pcre2 [%zd,%zd) plan [%zd,%zd)\n", k,
                        want >= 0 ? (ssize_t)wo[2 * k] : -9,
                        want >= 0 ? (ssize_t)wo[2 * k + 1] : -9, (ssize_t)go[2 * k],
                        (ssize_t)go[2 * k + 1]);
            CHECK(same);
            return;
        }
    }
    int all = tj_grok_match(g, m, line, n);
    CHECK(all == (want >= 0));
    if (all == 1 && want >= 0) {
        const size_t *go = tj_matcher_ovector(m);
        for (uint32_t k = 0; k <= 2 * g->ngroups + 1; k++)
            if (wo[k] != go[k]) {
                fprintf(stderr, "%s: tj_grok_match disagrees with PCRE2 at %u on: %.*s\n", what, k,
                        (int)n, line);
                CHECK(false);
                return;
            }
    }
    c->lines++;
}

/* Checks line and `variants` mutated copies of it. */
static void check_mutations(const struct tj_grok *g, struct tj_matcher *m, const char *line,
                            size_t n, int variants, struct counts *c, const char *what)
{
    static const char cut[] = " \"-[]\\:./@+0123456789aZ_\n\t=,";
    char buf[8192];
    check_line(g, m, line, n, c, what);
    if (n + 64 > sizeof(buf))
        return;
    for (int v = 0; v < variants; v++) {
        size_t len = n, at;
        memcpy(buf, line, n);
        int edits = 1 + (int)(next_rand() % 3);
        for (int e = 0; e < edits; e++) {
            at = len ? (size_t)(next_rand() % (len + 1)) : 0;
            switch (next_rand() % 4) {
            case 0: /* replace */
                if (at < len)
                    buf[at] = cut[next_rand() % (sizeof(cut) - 1)];
                break;
            case 1: /* delete */
                if (at < len) {
                    memmove(buf + at, buf + at + 1, len - at - 1);
                    len--;
                }
                break;
            case 2: /* insert */
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = cut[next_rand() % (sizeof(cut) - 1)];
                len++;
                break;
            default: { /* repeat a few bytes */
                size_t k = 1 + (size_t)(next_rand() % 8);
                if (at + k <= len && len + k < sizeof(buf)) {
                    memmove(buf + at + k, buf + at, len - at);
                    len += k;
                }
                break;
            }
            }
        }
        check_line(g, m, buf, len, c, what);
    }
}

static char *run_gen(const char *gen, const char *kind, int lines, size_t *len)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' --kind %s --lines %d --seed 7 --format plain 2>/dev/null", gen,
             kind, lines);
    FILE *p = popen(cmd, "r");
    size_t cap = 1 << 20, n = 0;
    char *data = malloc(cap);
    if (!p || !data) {
        free(data);
        if (p)
            pclose(p);
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            char *more = realloc(data, cap * 2);
            if (!more)
                break;
            data = more;
            cap *= 2;
        }
        size_t r = fread(data + n, 1, cap - n, p);
        if (r == 0)
            break;
        n += r;
    }
    if (pclose(p) != 0) {
        free(data);
        return NULL;
    }
    *len = n;
    return data;
}

static void test_workloads(struct tj_grok_lib *lib, const char *gen)
{
    char err[512], plan[2048];
    struct tj_matcher *m = tj_matcher_create(&TJ_MATCH_LIMITS_DEFAULT);
    CHECK(m != NULL);
    for (size_t w = 0; w < TJ_ARRAY_LEN(workloads); w++) {
        const struct workload *wl = &workloads[w];
        struct tj_grok *g =
            tj_grok_compile(lib, wl->pattern, strlen(wl->pattern), err, sizeof(err));
        CHECK(g != NULL);
        if (!g) {
            fprintf(stderr, "%s: %s\n", wl->name, err);
            continue;
        }
        CHECK(g->ascii_code != NULL);
        if (g->split)
            tj_split_describe(g->split, plan, sizeof(plan));
        else
            snprintf(plan, sizeof(plan), "(none)");
        size_t len = 0;
        char *data = run_gen(gen, wl->kind, 3000, &len);
        CHECK(data != NULL);
        if (!data) {
            fprintf(stderr, "%s: cannot run %s\n", wl->name, gen);
            tj_grok_unref(g);
            continue;
        }
        struct counts plain = {0}, mutated = {0};
        for (size_t p = 0; p < len;) {
            const char *nl = memchr(data + p, '\n', len - p);
            size_t e = nl ? (size_t)(nl - data) : len;
            check_line(g, m, data + p, e - p, &plain, wl->name);
            check_mutations(g, m, data + p, e - p, 6, &mutated, wl->name);
            p = e + 1;
        }
        if (strcmp(wl->name, "apache") == 0)
            for (size_t i = 0; i < TJ_ARRAY_LEN(edge_lines); i++)
                check_mutations(g, m, edge_lines[i], strlen(edge_lines[i]), 200, &mutated,
                                "apache edge");
        printf("%-16s plan: %s\n%-16s corpus %zu lines, %zu matched, plan answered %zu; mutated "
               "%zu, %zu matched, plan answered %zu\n",
               wl->name, plan, "", plain.lines, plain.matched, plain.hits, mutated.lines,
               mutated.matched, mutated.hits);
        CHECK(plain.lines > 1000);
        if (wl->min_hits > 0) {
            CHECK(g->split != NULL);
            CHECK(plain.hits >= (size_t)(wl->min_hits * (double)plain.matched));
            CHECK(plain.matched == plain.lines);
        }
        free(data);
        tj_grok_unref(g);
    }
    tj_matcher_destroy(m);
}

/* Regexes that must get no plan: they would let one segment depend on another's captures, on
 * where the match began, or on options set outside it. */
static void test_no_plan(struct tj_grok_lib *lib)
{
    static const char *const exprs[] = {
        "(?<a>\\w+) \\k<a> x", "(?<a>\\w+) \\1 x",      "a(?i)b c d",   "\\w+ \\K\\w+ x",
        "\\G\\w+ \\w+ x",      "(?(1)a|b) c d",         "a|b c",        "(*COMMIT)\\w+ \\w+",
        "\\Qa b\\E c",         "(?|(?<x>a)|(?<x>b)) c", "(?x) a b # c",
    };
    char err[512];
    for (size_t i = 0; i < TJ_ARRAY_LEN(exprs); i++) {
        struct tj_grok *g = tj_grok_compile(lib, exprs[i], strlen(exprs[i]), err, sizeof(err));
        if (!g)
            continue; /* PCRE2 or the expander refused it: no plan either */
        if (g->split) {
            char plan[512];
            tj_split_describe(g->split, plan, sizeof(plan));
            fprintf(stderr, "'%s' got a plan: %s\n", exprs[i], plan);
        }
        CHECK(g->split == NULL);
        tj_grok_unref(g);
    }
}

/* Small expressions with every kind of segment, against many short random subjects made of the
 * bytes they cut at. */
static void test_small(struct tj_grok_lib *lib)
{
    static const char *const exprs[] = {
        "%{INT:a} %{INT:b}",
        "(?:-|%{INT:a:int}) (?:-|%{WORD:b})",
        "%{IPORHOST:h} %{USER:u}x",
        "\"(?:-|%{QS:q})\" %{NUMBER:n}",
        "%{DATA:a}:%{GREEDYDATA:b}",
        "[a-c]+?b [0-9]{2,3}+ (?<x>[^ ]*) \\[(?<y>[^\\]]*)\\]",
        "(?<x>a|ab)(?<y>c|bcd)(?<z>d*)",
        "^(?<x>\\d+)\\.(?<y>\\d*)$",
        "(?<x>[ab]*)b(?<y>[ab]*)a",
        "(?<x>\\S+) (?<y>\\S+)(?: (?<z>\\S+))?",
        "(?:(?<x>a)|(?<y>b)) (?<z>\\w)",
        "(?<x>(?>a+)) (?<y>a++)b",
        "(?<x>[^\"\\\\]*+(?:\\\\.[^\"\\\\]*+)*+)\"(?<y>.)",
        "(?:x|[^\"\\\\]*+(?:\\\\.[^\"\\\\]*+)*+)\" ",
        "(?<=a)(?<x>b+) (?<!c)(?<y>d)",
        "\\b(?<x>\\w+)\\b-(?<y>\\d+)",
    };
    static const char alphabet[] = "ab cd-\"\\.:x10[]\n";
    char err[512], buf[32];
    struct tj_matcher *m = tj_matcher_create(&TJ_MATCH_LIMITS_DEFAULT);
    CHECK(m != NULL);
    for (size_t i = 0; i < TJ_ARRAY_LEN(exprs); i++) {
        struct tj_grok *g = tj_grok_compile(lib, exprs[i], strlen(exprs[i]), err, sizeof(err));
        CHECK(g != NULL);
        if (!g) {
            fprintf(stderr, "'%s': %s\n", exprs[i], err);
            continue;
        }
        struct counts c = {0};
        for (int r = 0; r < 20000; r++) {
            size_t len = (size_t)(next_rand() % sizeof(buf));
            for (size_t k = 0; k < len; k++)
                buf[k] = alphabet[next_rand() % (sizeof(alphabet) - 1)];
            check_line(g, m, buf, len, &c, exprs[i]);
        }
        char plan[512];
        if (g->split)
            tj_split_describe(g->split, plan, sizeof(plan));
        else
            snprintf(plan, sizeof(plan), "(none)");
        printf("%-40s plan: %s; %zu subjects, %zu matched, plan answered %zu\n", exprs[i], plan,
               c.lines, c.matched, c.hits);
        tj_grok_unref(g);
    }
    tj_matcher_destroy(m);
}

static struct tj_grok_lib *lib;

static void no_plan(void)
{
    test_no_plan(lib);
}

static void small(void)
{
    test_small(lib);
}

static void workloads_corpus(void)
{
    const char *gen = getenv("TJ_GEN_CORPUS");
    CHECK(gen != NULL);
    if (gen)
        test_workloads(lib, gen);
    else
        fprintf(stderr, "TJ_GEN_CORPUS must name bench/gen_corpus's binary\n");
}

int main(int argc, char **argv)
{
    static const struct tj_test tests[] = {
        {"no_plan", no_plan},
        {"small", small},
        {"workloads", workloads_corpus},
    };
    char err[512];
    lib = tj_grok_lib_create();
    if (!lib || tj_grok_lib_load_builtin(lib, err, sizeof(err)) != 0)
        return 1;
    ref_md = pcre2_match_data_create(64, NULL);
    ref_mctx = pcre2_match_context_create(NULL);
    pcre2_set_match_limit(ref_mctx, TJ_MATCH_LIMITS_DEFAULT.match_limit);
    pcre2_set_depth_limit(ref_mctx, TJ_MATCH_LIMITS_DEFAULT.depth_limit);
    int rc = tj_test_main(tests, TJ_ARRAY_LEN(tests), argc, argv);
    pcre2_match_data_free(ref_md);
    pcre2_match_context_free(ref_mctx);
    tj_grok_lib_destroy(lib);
    return rc;
}
