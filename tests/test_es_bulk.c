/* test_es_bulk.c: outputs/tj_es_bulk.h, the parts of the Elasticsearch output that need no
 * network: @timestamp dates (UTC, offsets), index templates, document ids, action lines, gzip
 * bodies laid together from pieces compressed apart (inflated back with zlib), and the quick
 * look at a _bulk answer. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "tj_es_bulk.h"
#include "tj_test.h"

/* ---- dates ---- */

static bool date_is(const char *rec, int y, int mo, int d, int h)
{
    struct tj_es_date dt = {0};
    size_t n = strlen(rec);
    char *copy = tj_test_guarded_copy(rec, n);
    bool ok = copy && tj_es_record_date(copy, n, &dt) == 0 && dt.year == y && dt.mon == mo &&
              dt.day == d && dt.hour == h;

    tj_test_guarded_free(copy, n);
    return ok;
}

static bool date_fails(const char *rec)
{
    struct tj_es_date dt = {1, 2, 3, 4};
    size_t n = strlen(rec);
    char *copy = tj_test_guarded_copy(rec, n);
    bool ok = copy && tj_es_record_date(copy, n, &dt) == TJ_EPARSE && dt.year == 1 && dt.hour == 4;

    tj_test_guarded_free(copy, n);
    return ok;
}

static void test_record_date(void)
{
    CHECK(date_is("{\"@timestamp\":\"2026-11-25T22:00:00.123456789Z\",\"message\":\"x\"}", 2026, 11,
                  25, 22));
    CHECK(date_is("{\"@timestamp\":\"2026-11-25T22:00:00Z\"}", 2026, 11, 25, 22));
    /* not first: found further on */
    CHECK(date_is("{\"message\":\"x\",\"@timestamp\":\"2024-02-29T00:30:00.5Z\"}", 2024, 2, 29, 0));
    /* offsets are converted to UTC, across days, months and years */
    CHECK(date_is("{\"@timestamp\":\"2026-11-26T01:30:00+02:00\"}", 2026, 11, 25, 23));
    CHECK(date_is("{\"@timestamp\":\"2026-12-31T21:00:00.000-05:00\"}", 2027, 1, 1, 2));
    CHECK(date_is("{\"@timestamp\":\"2026-03-01T00:10:00+0100\"}", 2026, 2, 28, 23));
    CHECK(date_is("{\"@timestamp\":\"2026-11-25T10:00:00+00:00\"}", 2026, 11, 25, 10));
    CHECK(date_fails("{\"message\":\"no time\"}"));
    CHECK(date_fails("{\"@timestamp\":\"yesterday\"}"));
    CHECK(date_fails("{\"@timestamp\":\"2026-13-25T10:00:00Z\"}"));
    CHECK(date_fails("{\"@timestamp\":\"2026-11-25T10:00:00\"}")); /* no zone */
    CHECK(date_fails("{\"@timestamp\":\"2026-11-25T10:00:00Z"));   /* no closing quote */
    CHECK(date_fails("{\"@timestamp\":\"2026-11-25T10:0"));
    CHECK(date_fails(""));
}

/* ---- templates ---- */

static char *expand(const char *tpl, const char *svc)
{
    struct tj_buf b;
    struct tj_es_date d = {2026, 3, 7, 9};

    tj_buf_init(&b, 4096);
    if (tj_es_index_expand(&b, tpl, strlen(tpl), &d, (struct tj_slice){svc, strlen(svc)}) ||
        tj_buf_append(&b, "", 1)) {
        tj_buf_fini(&b);
        return NULL;
    }
    return b.data;
}

static void test_templates(void)
{
    char err[256], *s;
    static const char *const good[] = {"logs-%{service}-%Y.%m.%d", "plain", "a-%H%%", "%Y"};
    static const char *const bad[] = {"logs-%q", "x-%", "%{svc}", ""};

    for (size_t i = 0; i < TJ_ARRAY_LEN(good); i++)
        CHECK(tj_es_template_check(good[i], strlen(good[i]), err, sizeof(err)) == 0);
    for (size_t i = 0; i < TJ_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        CHECK(tj_es_template_check(bad[i], strlen(bad[i]), err, sizeof(err)) == TJ_EINVAL);
        CHECK(err[0] != '\0');
    }
    CHECK(strstr((tj_es_template_check("logs-%q", 7, err, sizeof(err)), err), "%q") != NULL);
    CHECK_STR((s = expand("logs-%{service}-%Y.%m.%d", "web")), "logs-web-2026.03.07");
    free(s);
    CHECK_STR((s = expand("%{service}-%H:%%", "My Shop/API#2")), "my_shop_api_2-09:%");
    free(s);
    CHECK_STR((s = expand("x-%q-%", "s")), "x-%q-%"); /* unknown codes stay as they are */
    free(s);
    CHECK_STR((s = expand("a.b_c-%{service}", "Web.1_x-Y")), "a.b_c-web.1_x-y");
    free(s);
    CHECK(tj_es_template_dated("logs-%Y", 7));
    CHECK(tj_es_template_dated("x%H", 3));
    CHECK(!tj_es_template_dated("logs-%{service}-default", 23));
    CHECK(!tj_es_template_dated("100%%Y", 6)); /* %% then a plain Y */
}

/* ---- ids and actions ---- */

static void test_doc_id(void)
{
    char a[TJ_ES_ID_LEN + 1], b[TJ_ES_ID_LEN + 1], rec[64];
    size_t n = 20000, dup = 0;
    char(*ids)[TJ_ES_ID_LEN + 1] = malloc(n * sizeof(*ids));

    tj_es_doc_id("{\"x\":1}", 7, a);
    tj_es_doc_id("{\"x\":1}", 7, b);
    CHECK(strlen(a) == TJ_ES_ID_LEN && strcmp(a, b) == 0);
    for (size_t i = 0; i < TJ_ES_ID_LEN; i++)
        CHECK(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", a[i]));
    tj_es_doc_id("{\"x\":2}", 7, b);
    CHECK(strcmp(a, b) != 0);
    /* records that differ by their offset only: all ids differ */
    for (size_t i = 0; ids && i < n; i++) {
        int k = snprintf(rec, sizeof(rec), "{\"log\":{\"offset\":%zu}}", i * 100);
        tj_es_doc_id(rec, (size_t)k, ids[i]);
    }
    for (size_t i = 1; ids && i < n; i++)
        for (size_t j = i > 64 ? i - 64 : 0; j < i; j++)
            dup += strcmp(ids[i], ids[j]) == 0;
    CHECK(ids && dup == 0);
    free(ids);
}

static char *action(bool create, const char *index, const char *id)
{
    struct tj_buf b;

    tj_buf_init(&b, 4096);
    if (tj_es_action(&b, create, (struct tj_slice){index, strlen(index)}, id) ||
        tj_buf_append(&b, "", 1)) {
        tj_buf_fini(&b);
        return NULL;
    }
    return b.data;
}

static void test_action(void)
{
    char *s;

    CHECK_STR((s = action(false, "logs-web", "abc")),
              "{\"index\":{\"_index\":\"logs-web\",\"_id\":\"abc\"}}\n");
    free(s);
    CHECK_STR((s = action(true, "logs-web-default", NULL)),
              "{\"create\":{\"_index\":\"logs-web-default\"}}\n");
    free(s);
    CHECK_STR((s = action(false, "a\"b\\c", "i")),
              "{\"index\":{\"_index\":\"a\\\"b\\\\c\",\"_id\":\"i\"}}\n");
    free(s);
}

/* ---- gzip from pieces ---- */

/* Inflates a gzip member; returns the text (owned, NUL-terminated) or NULL. */
static char *gunzip(const char *p, size_t n, size_t *outlen)
{
    z_stream z = {0};
    size_t cap = 1 << 20, len = 0;
    char *out = malloc(cap);
    int rc = Z_OK;

    if (!out || inflateInit2(&z, 16 + 15) != Z_OK) {
        free(out);
        return NULL;
    }
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    while (rc == Z_OK) {
        if (cap - len < 65536) {
            char *m = realloc(out, cap * 2);
            if (!m)
                break;
            out = m;
            cap *= 2;
        }
        z.next_out = (Bytef *)out + len;
        z.avail_out = (uInt)(cap - len - 1);
        rc = inflate(&z, Z_NO_FLUSH);
        len = cap - 1 - z.avail_out;
    }
    inflateEnd(&z);
    if (rc != Z_STREAM_END || z.avail_in != 0) { /* the whole input is one complete member */
        free(out);
        return NULL;
    }
    out[len] = '\0';
    *outlen = len;
    return out;
}

/* Writes text into a piece with writer w; returns 0 or an error. */
static int piece(struct tj_es_piece_writer *w, struct tj_buf *out, const char *const *parts,
                 size_t n, const char *big, size_t bign)
{
    int rc = tj_es_pw_begin(w, out);

    for (size_t i = 0; !rc && i < n; i++)
        rc = tj_es_pw_write(w, parts[i], strlen(parts[i]));
    if (!rc && big)
        rc = tj_es_pw_write(w, big, bign);
    return rc ? rc : tj_es_pw_end(w);
}

static void test_gzip_pieces(void)
{
    static const char *const p1[] = {"{\"index\":{}}\n", "{\"a\":1}\n"};
    static const char *const p3[] = {"tail one\n", "tail two\n"};
    struct tj_es_piece_writer w1, w2;
    struct tj_buf a, b, c, body, want;
    size_t bign = 300000, len = 0;
    char *big = malloc(bign), *text;
    uint32_t crc;
    uint64_t raw;

    for (size_t i = 0; big && i < bign; i++)
        big[i] = (char)('a' + (i * 7 + i / 13) % 26);
    tj_es_pw_init(&w1, true, 1);
    tj_es_pw_init(&w2, true, 6);
    tj_buf_init(&a, 1 << 24);
    tj_buf_init(&b, 1 << 24);
    tj_buf_init(&c, 1 << 24);
    tj_buf_init(&body, 1 << 24);
    tj_buf_init(&want, 1 << 24);
    /* three pieces, by two writers, one of them reused, one piece with a large text */
    CHECK(piece(&w1, &a, p1, 2, NULL, 0) == 0);
    crc = w1.crc;
    raw = w1.raw;
    CHECK(piece(&w2, &b, p3, 1, big, bign) == 0);
    crc = tj_es_crc_combine(crc, w2.crc, w2.raw);
    raw += w2.raw;
    CHECK(piece(&w1, &c, p3, 2, NULL, 0) == 0);
    crc = tj_es_crc_combine(crc, w1.crc, w1.raw);
    raw += w1.raw;
    CHECK(tj_es_gzip_head(&body) == 0);
    CHECK(tj_buf_append(&body, a.data, a.len) == 0 && tj_buf_append(&body, b.data, b.len) == 0 &&
          tj_buf_append(&body, c.data, c.len) == 0);
    CHECK(tj_es_gzip_tail(&body, crc, raw) == 0);
    tj_buf_append(&want, p1[0], strlen(p1[0]));
    tj_buf_append(&want, p1[1], strlen(p1[1]));
    tj_buf_append(&want, p3[0], strlen(p3[0]));
    tj_buf_append(&want, big, bign);
    tj_buf_append(&want, p3[0], strlen(p3[0]));
    tj_buf_append(&want, p3[1], strlen(p3[1]));
    CHECK(raw == want.len);
    CHECK(body.len < want.len / 4); /* it did compress */
    text = gunzip(body.data, body.len, &len);
    CHECK(text && len == want.len && memcmp(text, want.data, len) == 0);
    free(text);
    /* an empty piece is valid too */
    a.len = 0;
    body.len = 0;
    CHECK(piece(&w1, &a, NULL, 0, NULL, 0) == 0 && w1.raw == 0);
    tj_es_gzip_head(&body);
    tj_buf_append(&body, a.data, a.len);
    tj_es_gzip_tail(&body, w1.crc, 0);
    text = gunzip(body.data, body.len, &len);
    CHECK(text && len == 0);
    free(text);
    /* without compression, the text itself */
    tj_es_pw_fini(&w1);
    tj_es_pw_init(&w1, false, 1);
    a.len = 0;
    CHECK(piece(&w1, &a, p1, 2, NULL, 0) == 0);
    CHECK(a.len == strlen(p1[0]) + strlen(p1[1]) && memcmp(a.data, p1[0], strlen(p1[0])) == 0);
    tj_es_pw_fini(&w1);
    tj_es_pw_fini(&w2);
    tj_buf_fini(&a);
    tj_buf_fini(&b);
    tj_buf_fini(&c);
    tj_buf_fini(&body);
    tj_buf_fini(&want);
    free(big);
}

/* ---- answers ---- */

static int summary(const char *s, bool *errors, size_t *n)
{
    size_t len = strlen(s);
    char *copy = tj_test_guarded_copy(s, len);
    int rc = copy ? tj_es_bulk_summary(copy, len, errors, n) : -100;

    tj_test_guarded_free(copy, len);
    return rc;
}

static void test_summary(void)
{
    bool e = true;
    size_t n = 99;

    CHECK(summary("{\"took\":3,\"errors\":false,\"items\":[{\"index\":{\"status\":201}},"
                  "{\"index\":{\"status\":200}}]}",
                  &e, &n) == 0 &&
          !e && n == 2);
    CHECK(summary(" { \"errors\" : true , \"items\" : [ {\"index\":{\"status\":400,\"error\":{"
                  "\"reason\":\"a ] b } \\\" [ {\"}}} ] } ",
                  &e, &n) == 0 &&
          e && n == 1);
    CHECK(summary("{\"items\":[],\"errors\":false}", &e, &n) == 0 && !e && n == 0);
    CHECK(summary("{\"errors\":false}", &e, &n) == 0 && !e && n == 0); /* filtered empty */
    CHECK(summary("{\"took\":1,\"items\":[{}]}", &e, &n) == TJ_EPARSE);
    CHECK(summary("{\"errors\":maybe,\"items\":[]}", &e, &n) == TJ_EPARSE);
    CHECK(summary("[]", &e, &n) == TJ_EPARSE);
    CHECK(summary("{\"errors\":false,\"items\":[{\"index\":{}}", &e, &n) == TJ_EPARSE);
    CHECK(summary("{\"errors\":false,\"items\":[{\"index\":\"unterminated}]}", &e, &n) ==
          TJ_EPARSE);
    CHECK(summary("", &e, &n) == TJ_EPARSE);
    CHECK(summary("<html>502 Bad Gateway</html>", &e, &n) == TJ_EPARSE);
}

static const struct tj_test tests[] = {
    {"record_date", test_record_date}, {"templates", test_templates},     {"doc_id", test_doc_id},
    {"action", test_action},           {"gzip_pieces", test_gzip_pieces}, {"summary", test_summary},
};

int main(int argc, char **argv)
{
    return tj_test_main(tests, TJ_ARRAY_LEN(tests), argc, argv);
}
