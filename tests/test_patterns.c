/* test_patterns.c: every library pattern against its samples (tests/data/patterns, one .ndjson file
 * per family). A sample is {"pattern":NAME,"line":...,"fields":{...}} (the expression "^%{NAME}$",
 * or the sample's "expr", must match and the record must contain "fields" as a deep subset, JSON
 * types included), {"pattern":NAME,"line":...,"match":false} (must not match), or
 * {"pattern":NAME,"matches_anything":true}. Every library name needs a match sample and a
 * non-match sample (or matches_anything); every name compiles into a valid record shape. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "tj_record.h"
#include "tj_test.h"

#define DATA_DIR TJ_SOURCE_DIR "/tests/data/patterns"

struct coverage {
    char *name;
    bool match, nomatch;
};

static struct tj_grok_lib *lib;
static struct tj_matcher *matcher;
static struct coverage *cov;
static size_t ncov;
static unsigned nsamples;

static struct coverage *cov_find(const char *name)
{
    for (size_t i = 0; i < ncov; i++)
        if (strcmp(cov[i].name, name) == 0)
            return &cov[i];
    return NULL;
}

/* Deep subset: every key of want is in got with an equal value (numbers compared as numbers). */
static bool subset(const cJSON *want, const cJSON *got, char *path, size_t plen)
{
    if (cJSON_IsObject(want)) {
        const cJSON *w;
        if (!cJSON_IsObject(got))
            return false;
        cJSON_ArrayForEach(w, want)
        {
            size_t k = strlen(path);
            snprintf(path + k, plen - k, ".%s", w->string);
            if (!subset(w, cJSON_GetObjectItemCaseSensitive(got, w->string), path, plen))
                return false;
            path[k] = '\0';
        }
        return true;
    }
    return got && cJSON_Compare(want, got, true);
}

static void run_sample(const char *file, unsigned lineno, const cJSON *s)
{
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(s, "pattern"));
    const char *line = cJSON_GetStringValue(cJSON_GetObjectItem(s, "line"));
    const char *expr_in = cJSON_GetStringValue(cJSON_GetObjectItem(s, "expr"));
    const cJSON *fields = cJSON_GetObjectItem(s, "fields");
    bool want_match = !cJSON_IsFalse(cJSON_GetObjectItem(s, "match"));
    struct coverage *c = name ? cov_find(name) : NULL;
    char expr[512], err[1024], path[512] = "";
    struct tj_grok *g;
    struct tj_shape *shape = NULL;
    int rc;

    nsamples++;
    if (!c) {
        fprintf(stderr, "%s:%u: sample for unknown pattern '%s'\n", file, lineno,
                name ? name : "(none)");
        tj_test_failures++;
        return;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItem(s, "matches_anything"))) {
        c->nomatch = true;
        return;
    }
    if (!line) {
        fprintf(stderr, "%s:%u: sample has no \"line\"\n", file, lineno);
        tj_test_failures++;
        return;
    }
    if (expr_in)
        snprintf(expr, sizeof(expr), "%s", expr_in);
    else
        snprintf(expr, sizeof(expr), "^%%{%s}$", name);
    g = tj_grok_compile(lib, expr, strlen(expr), err, sizeof(err));
    if (g)
        shape = tj_shape_create(g, err, sizeof(err));
    if (!g || !shape) {
        fprintf(stderr, "%s:%u: %s: %s\n", file, lineno, expr, err);
        tj_test_failures++;
        goto out;
    }
    rc = tj_grok_match(g, matcher, line, strlen(line));
    if (rc != (want_match ? 1 : 0)) {
        fprintf(stderr, "%s:%u: %s %s '%s' (rc %d)\n", file, lineno, expr,
                want_match ? "does not match" : "matches", line, rc);
        tj_test_failures++;
        goto out;
    }
    if (want_match) {
        struct tj_event ev = {.message = {line, strlen(line)}, .offset = -1};
        struct tj_buf out;
        cJSON *rec;

        c->match = true;
        tj_buf_init(&out, 1 << 20);
        CHECK(tj_record_encode(&out, shape, &ev, NULL, tj_matcher_ovector(matcher)) == 0);
        rec = cJSON_ParseWithLength(out.data, out.len);
        if (!rec || (fields && !subset(fields, rec, path, sizeof(path)))) {
            char *w = cJSON_PrintUnformatted(fields);
            fprintf(stderr,
                    "%s:%u: %s on '%s'\n  want (subset) %s\n  got  %.*s  first diff at %s\n", file,
                    lineno, expr, line, w, (int)out.len, out.data, path);
            free(w);
            tj_test_failures++;
        }
        cJSON_Delete(rec);
        tj_buf_fini(&out);
    } else {
        c->nomatch = true;
    }
out:
    tj_shape_destroy(shape);
    tj_grok_unref(g);
}

static void each_sample(void *path, unsigned lineno, const cJSON *s)
{
    run_sample(path, lineno, s);
}

static void run_file(const char *path)
{
    tj_test_failures += (int)tj_test_each_ndjson(path, each_sample, (void *)path);
}

static void test_samples(void)
{
    DIR *d = opendir(DATA_DIR);
    struct dirent *de;
    unsigned files = 0;

    CHECK(d != NULL);
    while (d && (de = readdir(d))) {
        char path[1024];
        size_t k = strlen(de->d_name);
        if (k < 7 || strcmp(de->d_name + k - 7, ".ndjson") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", DATA_DIR, de->d_name);
        run_file(path);
        files++;
    }
    if (d)
        closedir(d);
    printf("     %u samples in %u files\n", nsamples, files);
    CHECK(files > 0);
}

static void test_every_name_compiles_and_is_covered(void)
{
    unsigned uncovered = 0;

    for (size_t i = 0; i < ncov; i++) {
        char expr[256], err[1024];
        struct tj_grok *g;
        struct tj_shape *shape = NULL;

        snprintf(expr, sizeof(expr), "%%{%s}", cov[i].name);
        g = tj_grok_compile(lib, expr, strlen(expr), err, sizeof(err));
        if (g)
            shape = tj_shape_create(g, err, sizeof(err));
        if (!g || !shape) {
            fprintf(stderr, "library pattern %s: %s\n", cov[i].name, err);
            tj_test_failures++;
        } else if (!g->jit) {
            fprintf(stderr, "library pattern %s: not JIT-compiled\n", cov[i].name);
            tj_test_failures++;
        }
        tj_shape_destroy(shape);
        tj_grok_unref(g);
        if (!cov[i].match || !cov[i].nomatch) {
            fprintf(stderr, "library pattern %s has no %s sample\n", cov[i].name,
                    !cov[i].match ? "matching" : "non-matching");
            uncovered++;
        }
    }
    printf("     %zu library patterns, %u without both samples\n", ncov, uncovered);
    CHECK(uncovered == 0);
}

static const struct tj_test tests[] = {
    {"samples", test_samples},
    {"every_name_compiles_and_is_covered", test_every_name_compiles_and_is_covered},
};

int main(int argc, char **argv)
{
    char err[1024];
    int rc;

    lib = tj_grok_lib_create();
    if (tj_grok_lib_load_builtin(lib, err, sizeof(err))) {
        fprintf(stderr, "built-in library: %s\n", err);
        return 1;
    }
    matcher = tj_matcher_create(&TJ_MATCH_LIMITS_DEFAULT);
    {
        const char **names = tj_grok_lib_names(lib, &ncov);
        cov = calloc(ncov, sizeof(*cov));
        for (size_t i = 0; i < ncov; i++)
            cov[i].name = strdup(names[i]);
        free((void *)names);
    }
    rc = tj_test_main(tests, TJ_ARRAY_LEN(tests), argc, argv);
    for (size_t i = 0; i < ncov; i++)
        free(cov[i].name);
    free(cov);
    tj_matcher_destroy(matcher);
    tj_grok_lib_destroy(lib);
    return rc;
}
