/* test_record.c: shapes and the record encoder; every record is re-parsed with cJSON. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "tj_record.h"
#include "tj_test.h"

struct fixture {
    struct tj_grok_lib *lib;
    struct tj_grok *g;
    struct tj_shape *shape;
    struct tj_matcher *m;
    struct tj_meta meta;
    struct tj_buf out;
};

static bool fixture_init(struct fixture *f, const char *expr, char *err, size_t errlen)
{
    memset(f, 0, sizeof(*f));
    f->lib = tj_grok_lib_create();
    tj_grok_lib_load_builtin(f->lib, err, errlen);
    f->m = tj_matcher_create(&TJ_MATCH_LIMITS_DEFAULT);
    tj_meta_init(&f->meta);
    tj_buf_init(&f->out, 1 << 20);
    if (expr) {
        f->g = tj_grok_compile(f->lib, expr, strlen(expr), err, errlen);
        if (!f->g)
            return false;
    }
    f->shape = tj_shape_create(f->g, err, errlen);
    return f->shape != NULL;
}

static void fixture_fini(struct fixture *f)
{
    tj_shape_destroy(f->shape);
    tj_grok_unref(f->g);
    tj_matcher_destroy(f->m);
    tj_meta_fini(&f->meta);
    tj_buf_fini(&f->out);
    tj_grok_lib_destroy(f->lib);
}

/* NUL-terminates a buffer's text (not counted in len) so tests may strstr it. */
static void terminate(struct tj_buf *b)
{
    CHECK(tj_buf_reserve(b, 1) == 0);
    b->data[b->len] = '\0';
}

/* Encodes `line` (matching it when there is a pattern) and returns the parsed record. */
static cJSON *encode(struct fixture *f, const char *line, size_t n, unsigned tags)
{
    struct tj_event ev = {.time = TJ_SLICE_LIT("2026-11-25T17:56:16.123456789Z"),
                          .message = {line, n},
                          .stream = TJ_SLICE_LIT("stdout"),
                          .offset = 42,
                          .tags = tags};
    const size_t *ov = NULL;
    cJSON *j;

    if (f->g && tj_grok_match(f->g, f->m, line, n) == 1)
        ov = tj_matcher_ovector(f->m);
    f->out.len = 0;
    CHECK(tj_record_encode(&f->out, f->shape, &ev, &f->meta, ov) == 0);
    terminate(&f->out);
    CHECK(f->out.len > 2 && f->out.data[f->out.len - 1] == '\n');
    CHECK(memchr(f->out.data, '\n', f->out.len - 1) == NULL); /* one line */
    j = cJSON_ParseWithLength(f->out.data, f->out.len);
    if (!j)
        fprintf(stderr, "not JSON: %.*s\n", (int)f->out.len, f->out.data);
    CHECK(j != NULL);
    return j;
}

/* Encodes `line` and leaves the record's text, NUL-terminated, in f->out. */
static void encode_text(struct fixture *f, const char *line)
{
    cJSON_Delete(encode(f, line, strlen(line), 0));
}

static const char *str_at(const cJSON *j, const char *a, const char *b, const char *c)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, a);
    if (b)
        x = cJSON_GetObjectItemCaseSensitive(x, b);
    if (c)
        x = cJSON_GetObjectItemCaseSensitive(x, c);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static const cJSON *item_at(const cJSON *j, const char *a, const char *b, const char *c)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, a);
    if (b)
        x = cJSON_GetObjectItemCaseSensitive(x, b);
    if (c)
        x = cJSON_GetObjectItemCaseSensitive(x, c);
    return x;
}

static void test_metadata_and_fields_deep_merge(void)
{
    struct fixture f;
    char err[256];
    const char line[] = "level=WARN code=404 took=1.5";
    cJSON *j;

    CHECK(fixture_init(&f,
                       "level=%{LOGLEVEL:log.level} code=%{INT:[http][response][status_code]:"
                       "int} took=%{NUMBER:event.duration:float}",
                       err, sizeof(err)));
    tj_meta_set(&f.meta, TJ_META_FILE_PATH, "/var/log/x.log", 14);
    tj_meta_set(&f.meta, TJ_META_HOST_NAME, "node-1", 6);
    tj_meta_set(&f.meta, TJ_META_CONTAINER_ID, "abc\"def", 7);
    j = encode(&f, line, strlen(line), 0);
    CHECK_STR(str_at(j, "log", "file", "path"), "/var/log/x.log");
    CHECK_STR(str_at(j, "log", "level", NULL), "WARN");
    CHECK(cJSON_GetNumberValue(item_at(j, "log", "offset", NULL)) == 42);
    CHECK(cJSON_GetNumberValue(item_at(j, "http", "response", "status_code")) == 404);
    CHECK(cJSON_GetNumberValue(item_at(j, "event", "duration", NULL)) == 1.5);
    CHECK_STR(str_at(j, "message", NULL, NULL), line);
    CHECK_STR(str_at(j, "stream", NULL, NULL), "stdout");
    CHECK_STR(str_at(j, "@timestamp", NULL, NULL), "2026-11-25T17:56:16.123456789Z");
    CHECK_STR(str_at(j, "host", "name", NULL), "node-1");
    CHECK_STR(str_at(j, "container", "id", NULL), "abc\"def");
    /* absent metadata leaves no empty object behind, and there is one "log" key */
    CHECK(item_at(j, "service", NULL, NULL) == NULL);
    CHECK(item_at(j, "tags", NULL, NULL) == NULL);
    CHECK(item_at(j, "event", "original", NULL) == NULL);
    CHECK(strstr(strstr(f.out.data, "\"log\":") + 1, "\"log\":") == NULL);
    cJSON_Delete(j);
    fixture_fini(&f);
}

static void test_failure_keeps_metadata_and_tags(void)
{
    struct fixture f;
    char err[256];
    cJSON *j;
    const cJSON *tags;

    CHECK(fixture_init(&f, "^%{INT:n:int}$", err, sizeof(err)));
    j = encode(&f, "not a number", 12, TJ_TAG_GROKPARSEFAILURE | TJ_TAG_TRUNCATED);
    tags = item_at(j, "tags", NULL, NULL);
    CHECK(cJSON_GetArraySize(tags) == 2);
    CHECK_STR(cJSON_GetArrayItem(tags, 0)->valuestring, "_grokparsefailure");
    CHECK_STR(cJSON_GetArrayItem(tags, 1)->valuestring, "_truncated");
    CHECK(item_at(j, "n", NULL, NULL) == NULL);
    CHECK_STR(str_at(j, "message", NULL, NULL), "not a number");
    cJSON_Delete(j);
    fixture_fini(&f);
}

static void test_message_override_keeps_original(void)
{
    struct fixture f;
    char err[256];
    const char line[] = "<13>app: the real message";
    cJSON *j;

    CHECK(fixture_init(&f, "^<%{INT}>%{WORD:[process][name]}: %{GREEDYDATA:message}", err,
                       sizeof(err)));
    j = encode(&f, line, strlen(line), 0);
    CHECK_STR(str_at(j, "message", NULL, NULL), "the real message");
    CHECK_STR(str_at(j, "event", "original", NULL), line);
    CHECK_STR(str_at(j, "process", "name", NULL), "app");
    cJSON_Delete(j);
    fixture_fini(&f);
}

static void test_conflicts_with_metadata_are_refused(void)
{
    static const char *const bad[] = {"%{WORD:host}",         "%{WORD:log}",
                                      "%{WORD:@timestamp}",   "%{WORD:[log][file][path]}",
                                      "%{WORD:tags}",         "%{WORD:a} %{WORD:a.b}",
                                      "%{WORD:a.b} %{WORD:a}"};
    for (size_t i = 0; i < TJ_ARRAY_LEN(bad); i++) {
        struct fixture f;
        char err[256] = "";
        CHECK(!fixture_init(&f, bad[i], err, sizeof(err)));
        CHECK(strstr(err, "field '") != NULL);
        fixture_fini(&f);
    }
}

static void test_metadata_fields_are_not_written(void)
{
    struct fixture f;
    char err[256];
    cJSON *j;

    CHECK(fixture_init(&f, "%{WORD:[@metadata][cisco][id]} %{WORD:kept}", err, sizeof(err)));
    j = encode(&f, "abc def", 7, 0);
    CHECK(item_at(j, "@metadata", NULL, NULL) == NULL);
    CHECK_STR(str_at(j, "kept", NULL, NULL), "def");
    cJSON_Delete(j);
    fixture_fini(&f);
}

static void test_hostile_bytes_stay_valid_json(void)
{
    struct fixture f;
    char err[256];
    const char line[] = "ctl\x01\x1f tab\t quote\" bs\\ bad\xff\xc0 cut\xe2\x82 nul\0end";
    size_t n = sizeof(line) - 1; /* the embedded NUL and what follows it count */
    cJSON *j;

    CHECK(fixture_init(&f, "(?<all>.*)", err, sizeof(err)));
    j = encode(&f, line, n, 0);
    CHECK(str_at(j, "message", NULL, NULL) != NULL);
    CHECK(strstr(f.out.data, "\\u0001\\u001f tab\\t quote\\\" bs\\\\") != NULL);
    CHECK(strstr(f.out.data, "bad\xef\xbf\xbd\xef\xbf\xbd cut\xef\xbf\xbd\xef\xbf\xbd") != NULL);
    CHECK(strstr(f.out.data, "nul\\u0000end") != NULL);
    cJSON_Delete(j);
    fixture_fini(&f);
}

static void test_typed_fields(void)
{
    struct fixture f;
    char err[256];
    const char line[] = "a=-9223372036854775808 b=9223372036854775808 c=007 d=1e3 e=x f=12";
    cJSON *j;

    CHECK(fixture_init(&f,
                       "a=%{NOTSPACE:a:int} b=%{NOTSPACE:b:int} c=%{NOTSPACE:c:int} "
                       "d=%{NOTSPACE:d:float} e=%{NOTSPACE:e:float} f=%{INT:f}",
                       err, sizeof(err)));
    j = encode(&f, line, strlen(line), 0);
    CHECK(strstr(f.out.data, "\"a\":-9223372036854775808") != NULL);
    CHECK_STR(str_at(j, "b", NULL, NULL), "9223372036854775808"); /* out of range: text kept */
    CHECK(strstr(f.out.data, "\"c\":7") != NULL);
    CHECK(cJSON_GetNumberValue(item_at(j, "d", NULL, NULL)) == 1000);
    CHECK_STR(str_at(j, "e", NULL, NULL), "x");
    CHECK_STR(str_at(j, "f", NULL, NULL), "12"); /* untyped numbers stay strings */
    cJSON_Delete(j);
    fixture_fini(&f);
}

static void test_empty_capture_is_absent(void)
{
    struct fixture f;
    char err[256];
    cJSON *j;

    CHECK(fixture_init(&f, "^x=%{DATA:x};y=%{DATA:y}$", err, sizeof(err)));
    j = encode(&f, "x=;y=1", 6, 0);
    CHECK(item_at(j, "x", NULL, NULL) == NULL);
    CHECK_STR(str_at(j, "y", NULL, NULL), "1");
    cJSON_Delete(j);
    fixture_fini(&f);
}

/* A field several captures fill: one value when one of them matched (alternatives), an array
 * of every matched value in order when several did (Logstash and Elasticsearch do so). */
static void test_field_captured_twice_is_an_array(void)
{
    struct fixture f;
    char err[256];
    cJSON *j;

    CHECK(fixture_init(&f, "^%{WORD:x} %{WORD:x}$", err, sizeof(err)));
    j = encode(&f, "first second", 12, 0);
    CHECK(strstr(f.out.data, "\"x\":[\"first\",\"second\"]") != NULL);
    cJSON_Delete(j);
    fixture_fini(&f);

    CHECK(fixture_init(&f, "^(?<x>\\d*)-(?<x>\\w+)-(?<x>\\w+)$", err, sizeof(err)));
    j = encode(&f, "-b-c", 4, 0);
    CHECK(strstr(f.out.data, "\"x\":[\"b\",\"c\"]") != NULL); /* the empty one is skipped */
    cJSON_Delete(j);
    fixture_fini(&f);

    CHECK(fixture_init(&f, "^(?:a=%{INT:x:int}|b=%{WORD:x})$", err, sizeof(err)));
    j = encode(&f, "a=5", 3, 0);
    CHECK(strstr(f.out.data, "\"x\":5") != NULL); /* alternatives: the one that matched */
    cJSON_Delete(j);
    j = encode(&f, "b=w", 3, 0);
    CHECK_STR(str_at(j, "x", NULL, NULL), "w");
    cJSON_Delete(j);
    fixture_fini(&f);
}

/* Elasticsearch's ingest grok conversions: :long, :double, :boolean; another name keeps text. */
static void test_ingest_conversions(void)
{
    struct fixture f;
    char err[256];
    const char line[] = "l=42 d=2.5 t=TRUE u=true f=no s=7";
    cJSON *j;

    CHECK(fixture_init(&f,
                       "l=%{INT:l:long} d=%{NUMBER:d:double} t=%{WORD:t:boolean} "
                       "u=%{WORD:u:boolean} f=%{WORD:f:boolean} s=%{INT:s:integer}",
                       err, sizeof(err)));
    j = encode(&f, line, strlen(line), 0);
    CHECK(strstr(f.out.data, "\"l\":42") != NULL);
    CHECK(cJSON_GetNumberValue(item_at(j, "d", NULL, NULL)) == 2.5);
    CHECK(cJSON_IsTrue(item_at(j, "t", NULL, NULL)));
    CHECK(cJSON_IsTrue(item_at(j, "u", NULL, NULL)));
    CHECK(cJSON_IsFalse(item_at(j, "f", NULL, NULL)));
    CHECK_STR(str_at(j, "s", NULL, NULL), "7"); /* unknown conversion: the text */
    cJSON_Delete(j);
    fixture_fini(&f);
}

/* Metadata set and then cleared (a file, then stdin) leaves nothing behind in records. */
static void test_cleared_metadata_is_absent(void)
{
    struct fixture f;
    char err[256];
    cJSON *j;

    CHECK(fixture_init(&f, NULL, err, sizeof(err)));
    CHECK(tj_meta_set(&f.meta, TJ_META_FILE_PATH, "/var/log/x.log", 14) == 0);
    CHECK(tj_meta_set(&f.meta, TJ_META_FILE_PATH, NULL, 0) == 0);
    j = encode(&f, "line", 4, 0);
    CHECK(item_at(j, "log", "file", NULL) == NULL);
    CHECK(cJSON_GetNumberValue(item_at(j, "log", "offset", NULL)) == 42);
    cJSON_Delete(j);
    fixture_fini(&f);
}

static void test_attrs_and_field_order(void)
{
    struct fixture f;
    char err[256];
    struct tj_event ev = {.time = TJ_SLICE_LIT("t"),
                          .message = TJ_SLICE_LIT("m"),
                          .attrs = TJ_SLICE_LIT("{\"tag\":\"web\"}"),
                          .offset = 0};
    const char *t, *mpos, *l, *a;

    CHECK(fixture_init(&f, NULL, err, sizeof(err)));
    tj_meta_set(&f.meta, TJ_META_FILE_PATH, "p", 1);
    CHECK(tj_record_encode(&f.out, f.shape, &ev, &f.meta, NULL) == 0);
    terminate(&f.out);
    CHECK(strstr(f.out.data, "\"docker\":{\"attrs\":{\"tag\":\"web\"}}") != NULL);
    t = strstr(f.out.data, "\"@timestamp\"");
    mpos = strstr(f.out.data, "\"message\"");
    l = strstr(f.out.data, "\"log\"");
    a = strstr(f.out.data, "\"docker\"");
    CHECK(t && mpos && l && a && t < mpos && mpos < l && l < a);
    fixture_fini(&f);
}

/* Sets every metadata value of f (or clears them all). */
static void set_all_meta(struct fixture *f, bool on)
{
    static const char *const vals[TJ_META_COUNT] = {"0123456789ab", "web.1.x",       "nginx:1.27",
                                                    "web",          "svc-id",        "prod",
                                                    "node-1",       "/var/log/x.log"};

    for (int k = 0; k < TJ_META_COUNT; k++)
        CHECK(tj_meta_set(&f->meta, (enum tj_meta_key)k, on ? vals[k] : NULL,
                          on ? strlen(vals[k]) : 0) == 0);
}

/* A shape with few leaves encodes by its plan (precomputed text between leaves), one with more
 * than 64 by walking its tree: both must write the same bytes, whichever leaves are present:
 * text, typed and repeated fields, a replaced message, metadata, tags. */
static void test_plan_matches_tree_walk(void)
{
    static const char *const lines[] = {
        "xyz",   "x",        "y",        "z",    "xz",       "",     "q",  "x12",
        "xword", "x-7 m=hi", "yz m=bye", "z3.5", "xyz99 m=", "x007", "x0", "x12345678901234567890"};
    static const char head[] = "^(?<a.b.c>x)?(?<a.d>y)?(?<e>z)?(?:%{INT:n:int}|%{WORD:n})?"
                               "(?:\\.%{INT:f:float})?(?: m=%{WORD:message})?";
    char small[512], big[4096], err[512];
    struct fixture fs, fb;
    size_t k;

    snprintf(small, sizeof(small), "%s", head);
    k = (size_t)snprintf(big, sizeof(big), "%s", head);
    for (int i = 0; i < 70; i++)
        k += (size_t)snprintf(big + k, sizeof(big) - k, "(?<u%d.v>Q)?", i);
    CHECK(fixture_init(&fs, small, err, sizeof(err)));
    CHECK(fixture_init(&fb, big, err, sizeof(err)));
    for (int meta = 0; meta < 2; meta++) {
        set_all_meta(&fs, meta);
        set_all_meta(&fb, meta);
        for (size_t i = 0; i < TJ_ARRAY_LEN(lines); i++) {
            unsigned tags = i % 3 ? 0 : TJ_TAG_TRUNCATED;
            cJSON *a = encode(&fs, lines[i], strlen(lines[i]), tags);
            cJSON *b = encode(&fb, lines[i], strlen(lines[i]), tags);
            CHECK(fs.out.len == fb.out.len && memcmp(fs.out.data, fb.out.data, fs.out.len) == 0);
            cJSON_Delete(a);
            cJSON_Delete(b);
        }
    }
    set_all_meta(&fs, false);
    encode_text(&fs, "xz");
    CHECK(strcmp(fs.out.data,
                 "{\"@timestamp\":\"2026-11-25T17:56:16.123456789Z\",\"message\":\"xz\","
                 "\"stream\":\"stdout\",\"log\":{\"offset\":42},\"a\":{\"b\":{\"c\":\"x\"}},"
                 "\"e\":\"z\"}\n") == 0);
    encode_text(&fs, "x12 m=hi");
    CHECK(strstr(fs.out.data, "\"message\":\"hi\"") && strstr(fs.out.data, "\"n\":12") &&
          strstr(fs.out.data, "\"event\":{\"original\":\"x12 m=hi\"}"));
    fixture_fini(&fs);
    fixture_fini(&fb);
}

static void test_buffer_cap_restores_length(void)
{
    struct fixture f;
    char err[256];
    struct tj_event ev = {.message = TJ_SLICE_LIT("0123456789012345678901234567890123456789")};

    CHECK(fixture_init(&f, NULL, err, sizeof(err)));
    f.out.max = 64;
    CHECK(tj_buf_append(&f.out, "abc", 3) == 0);
    CHECK(tj_record_encode(&f.out, f.shape, &ev, &f.meta, NULL) == TJ_ENOSPC);
    CHECK(f.out.len == 3);
    fixture_fini(&f);
}

static const struct tj_test tests[] = {
    {"metadata_and_fields_deep_merge", test_metadata_and_fields_deep_merge},
    {"failure_keeps_metadata_and_tags", test_failure_keeps_metadata_and_tags},
    {"message_override_keeps_original", test_message_override_keeps_original},
    {"conflicts_with_metadata_are_refused", test_conflicts_with_metadata_are_refused},
    {"metadata_fields_are_not_written", test_metadata_fields_are_not_written},
    {"hostile_bytes_stay_valid_json", test_hostile_bytes_stay_valid_json},
    {"typed_fields", test_typed_fields},
    {"empty_capture_is_absent", test_empty_capture_is_absent},
    {"field_captured_twice_is_an_array", test_field_captured_twice_is_an_array},
    {"ingest_conversions", test_ingest_conversions},
    {"cleared_metadata_is_absent", test_cleared_metadata_is_absent},
    {"attrs_and_field_order", test_attrs_and_field_order},
    {"buffer_cap_restores_length", test_buffer_cap_restores_length},
    {"plan_matches_tree_walk", test_plan_matches_tree_walk},
};

int main(int argc, char **argv)
{
    return tj_test_main(tests, TJ_ARRAY_LEN(tests), argc, argv);
}
