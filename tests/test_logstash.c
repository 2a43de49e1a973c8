/* test_logstash.c: logstash-patterns-core's own pattern cases, run against tailjet's grok.
 *
 *   test_logstash FAMILY v1|disabled
 *
 * tests/data/logstash/FAMILY.ndjson holds the cases (written by tests/logstash/port_specs.rb from
 * the upstream spec files): {"mode","case","expr","line","checks":[...]}. Each case compiles expr
 * in the given ECS mode, matches line and encodes the record as `tailjet parse` would; every
 * check must hold (see check_one for their meaning). A case whose mode is "default" (the
 * upstream spec set no mode, so the plugin default applied, with legacy names) runs all its
 * checks in disabled mode and only its match/no-match checks in v1.
 * Checks marked "pending" are ones Logstash itself fails (RSpec pending): counted apart.
 * tests/data/logstash/deviations.tsv lists "MODE<TAB>CASE<TAB>reason" for cases tailjet does not
 * pass on purpose or cannot pass; such a case failing is a known deviation, passing is an error
 * (the list must stay true). Prints "FAMILY MODE: N cases, P pass, D deviations, F fail". */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "tj_record.h"
#include "tj_test.h"

#define DATA_DIR TJ_SOURCE_DIR "/tests/data/logstash"

static const char *family, *mode;
static struct tj_grok_lib *lib;
static struct tj_matcher *matcher;
static cJSON *deviations; /* array of [mode, case, reason, seen] */
static unsigned ncases, npass, ndev, nfail, nunported, npending, npending_pass;
static bool verbose;

static bool matches(const cJSON *want, const cJSON *got);

/* Logstash's view of equality: objects have the same keys with matching values (or, under
 * {"$subset":{...}}, want's keys only), arrays match element-wise, scalars are equal with
 * their JSON types (numbers by value). */
static bool matches(const cJSON *want, const cJSON *got)
{
    const cJSON *w, *sub = cJSON_GetObjectItemCaseSensitive(want, "$subset");

    if (!got)
        return cJSON_IsNull(want);
    if (sub)
        want = sub;
    if (cJSON_IsObject(want)) {
        if (!cJSON_IsObject(got))
            return false;
        if (!sub && cJSON_GetArraySize(want) != cJSON_GetArraySize(got))
            return false;
        cJSON_ArrayForEach(w, want)
        {
            if (!matches(w, cJSON_GetObjectItemCaseSensitive(got, w->string)))
                return false;
        }
        return true;
    }
    if (cJSON_IsArray(want)) {
        const cJSON *g;
        if (!cJSON_IsArray(got) || cJSON_GetArraySize(want) != cJSON_GetArraySize(got))
            return false;
        g = got->child;
        cJSON_ArrayForEach(w, want)
        {
            if (!matches(w, g))
                return false;
            g = g->next;
        }
        return true;
    }
    return cJSON_Compare(want, got, true);
}

/* The value at path (keys and indexes, -1 the last element), or NULL. */
static const cJSON *at(const cJSON *rec, const cJSON *path)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, path)
    {
        if (!rec)
            return NULL;
        if (cJSON_IsString(p)) {
            rec =
                cJSON_IsObject(rec) ? cJSON_GetObjectItemCaseSensitive(rec, p->valuestring) : NULL;
        } else if (cJSON_IsNumber(p) && cJSON_IsArray(rec)) {
            int i = p->valueint, n = cJSON_GetArraySize(rec);
            rec = cJSON_GetArrayItem(rec, i < 0 ? n + i : i);
        } else {
            return NULL;
        }
    }
    return rec;
}

/* Logstash keeps a captured "message" beside the line: "message" becomes [line, captured].
 * tailjet writes the captured text to message and the line to event.original (tj_record.h).
 * This rewrites such a record into Logstash's shape, so the upstream expectations apply. */
static void logstash_message_shape(cJSON *rec)
{
    cJSON *ev = cJSON_GetObjectItemCaseSensitive(rec, "event");
    cJSON *orig = ev ? cJSON_DetachItemFromObjectCaseSensitive(ev, "original") : NULL;
    cJSON *msg;

    if (!orig)
        return;
    if (cJSON_GetArraySize(ev) == 0)
        cJSON_DeleteItemFromObjectCaseSensitive(rec, "event");
    msg = cJSON_DetachItemFromObjectCaseSensitive(rec, "message");
    {
        cJSON *arr = cJSON_CreateArray();
        cJSON_AddItemToArray(arr, orig);
        if (msg)
            cJSON_AddItemToArray(arr, msg);
        cJSON_AddItemToObject(rec, "message", arr);
    }
}

static bool contains(const cJSON *got, const cJSON *v)
{
    if (cJSON_IsObject(got))
        return cJSON_IsString(v) && cJSON_GetObjectItemCaseSensitive(got, v->valuestring);
    if (cJSON_IsArray(got)) {
        const cJSON *g;
        cJSON_ArrayForEach(g, got)
        {
            if (matches(v, g))
                return true;
        }
        return false;
    }
    if (cJSON_IsString(got) && cJSON_IsString(v))
        return strstr(got->valuestring, v->valuestring) != NULL;
    return false;
}

static bool has_failure_tag(const cJSON *rec)
{
    return cJSON_GetObjectItemCaseSensitive(rec, "tags") != NULL;
}

/* One check on the record. ops: pass (matched, no tags), include (every key of value is in the
 * object at path with a matching value), contains (every element of value is a key of the
 * object, an element of the array or a substring of the string at path), eq (the value at path
 * matches; null: absent), is_a Hash, start_with / end_with (strings; end_with takes an array's
 * last element), top_keys_within (top-level keys other than @timestamp, @version, message, tags
 * are all in value). conv "str"/"int" compares the value's text / integer. */
static bool check_one(const cJSON *rec, const cJSON *c, char *why, size_t wl)
{
    const char *op = cJSON_GetStringValue(cJSON_GetObjectItem(c, "op"));
    const cJSON *v = cJSON_GetObjectItem(c, "value");
    const cJSON *got = at(rec, cJSON_GetObjectItem(c, "path"));
    const char *conv = cJSON_GetStringValue(cJSON_GetObjectItem(c, "conv"));
    bool neg = cJSON_IsTrue(cJSON_GetObjectItem(c, "not")), ok = false;
    cJSON *tmp = NULL;

    if (!op)
        op = "";
    if (conv && got && strcmp(conv, "keys") != 0) {
        char b[64];
        if (strcmp(conv, "str") == 0 && cJSON_IsNumber(got)) {
            snprintf(b, sizeof(b), "%.17g", got->valuedouble);
            got = tmp = cJSON_CreateString(b);
        } else if (strcmp(conv, "int") == 0 && cJSON_IsString(got)) {
            got = tmp = cJSON_CreateNumber((double)strtoll(got->valuestring, NULL, 10));
        }
    }
    if (strcmp(op, "pass") == 0) {
        ok = !has_failure_tag(rec);
    } else if (strcmp(op, "include") == 0) {
        const cJSON *w;
        ok = cJSON_IsObject(got) && cJSON_IsObject(v);
        cJSON_ArrayForEach(w, v)
        {
            if (ok && !matches(w, cJSON_GetObjectItemCaseSensitive(got, w->string)))
                ok = false;
        }
        if (neg) { /* not include(k => v): no key of v holds its value */
            ok = false;
            cJSON_ArrayForEach(w, v)
            {
                if (cJSON_IsObject(got) &&
                    matches(w, cJSON_GetObjectItemCaseSensitive(got, w->string)))
                    ok = true;
            }
        }
    } else if (strcmp(op, "contains") == 0) {
        /* RSpec: to include(a, b) needs all of them, not_to include(a, b) none of them */
        const cJSON *w;
        bool all = true, none = true;
        cJSON_ArrayForEach(w, v)
        {
            bool in = got && contains(got, w);
            all &= in;
            none &= !in;
        }
        cJSON_Delete(tmp);
        return neg ? none : all;
    } else if (strcmp(op, "eq") == 0) {
        ok = matches(v, got) || (!got && cJSON_IsNull(v));
    } else if (strcmp(op, "is_a") == 0) {
        ok = cJSON_IsObject(got);
    } else if (strcmp(op, "start_with") == 0 || strcmp(op, "end_with") == 0) {
        if (cJSON_IsArray(got))
            got = cJSON_GetArrayItem(got, cJSON_GetArraySize(got) - 1);
        if (cJSON_IsString(got) && cJSON_IsString(v)) {
            size_t gl = strlen(got->valuestring), vl = strlen(v->valuestring);
            ok = gl >= vl &&
                 memcmp(got->valuestring + (op[0] == 's' ? 0 : gl - vl), v->valuestring, vl) == 0;
        }
    } else if (strcmp(op, "top_keys_within") == 0) {
        const cJSON *k;
        ok = true;
        cJSON_ArrayForEach(k, rec)
        {
            static const char *internal[] = {"@timestamp", "@version", "message", "tags"};
            bool allowed = false;
            const cJSON *a;
            for (size_t i = 0; i < TJ_ARRAY_LEN(internal); i++)
                allowed |= strcmp(k->string, internal[i]) == 0;
            cJSON_ArrayForEach(a, v)
            {
                allowed |= cJSON_IsString(a) && strcmp(a->valuestring, k->string) == 0;
            }
            if (!allowed) {
                snprintf(why, wl, "top-level key %s not in the allowed namespaces", k->string);
                ok = false;
                break;
            }
        }
    } else {
        snprintf(why, wl, "unknown check op '%s'", op);
        cJSON_Delete(tmp);
        return false;
    }
    cJSON_Delete(tmp);
    if (strcmp(op, "include") == 0 && neg)
        return !ok;
    return neg ? !ok : ok;
}

static const cJSON *deviation(const char *kase)
{
    const cJSON *d;
    cJSON_ArrayForEach(d, deviations)
    {
        if (strcmp(cJSON_GetArrayItem(d, 0)->valuestring, mode) == 0 &&
            strcmp(cJSON_GetArrayItem(d, 1)->valuestring, kase) == 0)
            return d;
    }
    return NULL;
}

/* The record `tailjet parse` writes for line under expr (as Logstash would see it), or NULL
 * with why filled when the expression does not compile. */
static cJSON *record_for(const char *expr, const char *line, char *why, size_t wl)
{
    struct tj_grok_opts opts = {.ecs = strcmp(mode, "v1") == 0 ? TJ_ECS_V1 : TJ_ECS_DISABLED};
    struct tj_grok *g = tj_grok_compile_opts(lib, expr, strlen(expr), &opts, why, wl);
    struct tj_shape *shape = g ? tj_shape_create(g, why, wl) : NULL;
    struct tj_event ev = {.message = {line, strlen(line)}, .offset = -1};
    struct tj_buf out;
    cJSON *rec = NULL;
    int rc;

    if (!shape)
        goto out;
    rc = tj_grok_match(g, matcher, line, strlen(line));
    if (rc != 1)
        ev.tags = TJ_TAG_GROKPARSEFAILURE;
    tj_buf_init(&out, 1 << 20);
    if (tj_record_encode(&out, shape, &ev, NULL, rc == 1 ? tj_matcher_ovector(matcher) : NULL) == 0)
        rec = cJSON_ParseWithLength(out.data, out.len);
    tj_buf_fini(&out);
    if (!rec)
        snprintf(why, wl, "record not encoded");
    else
        logstash_message_shape(rec);
out:
    tj_shape_destroy(shape);
    tj_grok_unref(g);
    return rec;
}

static void run_case(const cJSON *c, unsigned lineno)
{
    const char *cmode = cJSON_GetStringValue(cJSON_GetObjectItem(c, "mode"));
    const char *kase = cJSON_GetStringValue(cJSON_GetObjectItem(c, "case"));
    const char *expr = cJSON_GetStringValue(cJSON_GetObjectItem(c, "expr"));
    const char *line = cJSON_GetStringValue(cJSON_GetObjectItem(c, "line"));
    bool dflt = cmode && strcmp(cmode, "default") == 0;
    char why[1024] = "";
    const cJSON *chk, *dev;
    cJSON *rec;
    bool ok = true, any = false;

    if (cJSON_GetObjectItem(c, "unported")) {
        if (!cmode || dflt || strcmp(cmode, mode) == 0)
            nunported++;
        return;
    }
    if (!cmode || !kase || !expr || !line) {
        fprintf(stderr, "%s.ndjson:%u: malformed case\n", family, lineno);
        nfail++;
        return;
    }
    if (!dflt && strcmp(cmode, mode) != 0)
        return;
    rec = record_for(expr, line, why, sizeof(why));
    cJSON_ArrayForEach(chk, cJSON_GetObjectItem(c, "checks"))
    {
        const char *op = cJSON_GetStringValue(cJSON_GetObjectItem(chk, "op"));
        bool pending = cJSON_IsTrue(cJSON_GetObjectItem(chk, "pending")), r;
        if (dflt && strcmp(mode, "v1") == 0 && (!op || strcmp(op, "pass") != 0))
            continue; /* field names of a mode-less spec are the legacy ones */
        r = rec && check_one(rec, chk, why + strlen(why), sizeof(why) - strlen(why));
        if (pending) {
            npending++;
            npending_pass += r;
            continue;
        }
        any = true;
        if (!r && ok) {
            char *w = cJSON_PrintUnformatted(chk);
            size_t k = strlen(why);
            snprintf(why + k, sizeof(why) - k, "%scheck %s", k ? "; " : "", w);
            free(w);
        }
        ok &= r;
    }
    if (!any) {
        cJSON_Delete(rec);
        return;
    }
    ncases++;
    dev = deviation(kase);
    if (ok && !dev) {
        npass++;
    } else if (ok) {
        fprintf(stderr, "%s %s: '%s' passes but is listed in deviations.tsv: remove it\n", family,
                mode, kase);
        nfail++;
    } else if (dev) {
        ndev++;
        if (verbose)
            fprintf(stderr, "deviation: %s: %s\n", kase, cJSON_GetArrayItem(dev, 2)->valuestring);
    } else {
        char *r = rec ? cJSON_PrintUnformatted(rec) : NULL;
        fprintf(stderr, "FAIL %s %s: %s\n  %s\n  line %s\n  %s\n  got %s\n", family, mode, kase,
                expr, line, why, r ? r : "(no record)");
        free(r);
        nfail++;
    }
    cJSON_Delete(rec);
}

static void load_deviations(void)
{
    size_t n;
    char *text = tj_test_read_file(DATA_DIR "/deviations.tsv", &n);

    deviations = cJSON_CreateArray();
    for (char *p = text, *e; text && p < text + n; p = e + 1) {
        char *t1, *t2;
        cJSON *d;
        e = strchr(p, '\n');
        if (!e)
            e = text + n;
        *e = '\0';
        if (!*p || *p == '#')
            continue;
        t1 = strchr(p, '\t');
        t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (!t2)
            continue;
        *t1 = *t2 = '\0';
        d = cJSON_CreateArray();
        cJSON_AddItemToArray(d, cJSON_CreateString(p));
        cJSON_AddItemToArray(d, cJSON_CreateString(t1 + 1));
        cJSON_AddItemToArray(d, cJSON_CreateString(t2 + 1));
        cJSON_AddItemToArray(deviations, d);
    }
    free(text);
}

static void each_case(void *ctx, unsigned lineno, const cJSON *c)
{
    (void)ctx;
    run_case(c, lineno);
}

static void test_family(void)
{
    char path[1024];

    snprintf(path, sizeof(path), "%s/%s.ndjson", DATA_DIR, family);
    nfail += tj_test_each_ndjson(path, each_case, NULL);
    printf("     %s %s: %u cases, %u pass, %u deviations, %u fail (%u upstream examples not "
           "ported; %u checks pending upstream, %u of them pass here)\n",
           family, mode, ncases, npass, ndev, nfail, nunported, npending, npending_pass);
    CHECK(ncases > 0);
    tj_test_failures += (int)nfail;
}

static const struct tj_test tests[] = {
    {"family", test_family},
};

int main(int argc, char **argv)
{
    char err[1024];
    int rc;

    if (argc < 3 || (strcmp(argv[2], "v1") != 0 && strcmp(argv[2], "disabled") != 0)) {
        fprintf(stderr, "usage: test_logstash FAMILY v1|disabled [TEST]\n");
        return 2;
    }
    family = argv[1];
    mode = argv[2];
    verbose = getenv("TJ_TEST_VERBOSE") != NULL;
    lib = tj_grok_lib_create();
    if (tj_grok_lib_load_builtin(lib, err, sizeof(err))) {
        fprintf(stderr, "built-in library: %s\n", err);
        return 1;
    }
    matcher = tj_matcher_create(&TJ_MATCH_LIMITS_DEFAULT);
    load_deviations();
    rc = tj_test_main(tests, TJ_ARRAY_LEN(tests), argc - 2, argv + 2);
    cJSON_Delete(deviations);
    tj_matcher_destroy(matcher);
    tj_grok_lib_destroy(lib);
    return rc;
}
