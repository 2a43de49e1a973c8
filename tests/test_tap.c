/* test_tap.c: the taps' hub: filters, failure detection, a full ring drops and says so in the
 * stream, the tap limit, and each service's last failures (newest last, at most 20). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tj_tap.h"
#include "tj_test.h"

static const char OK[] = "{\"message\":\"GET / 200\",\"verb\":\"GET\"}\n";
static const char BAD[] = "{\"message\":\"oops\",\"tags\":[\"_grokparsefailure\"]}\n";
/* A message that holds the text of a tag array is not a failure. */
static const char TRICKY[] = "{\"message\":\"x,\\\"tags\\\":[\\\"_a\\\"]}\"}\n";

static void meta_of(struct tj_meta *m, const char *name, const char *id)
{
    tj_meta_init(m); /* tj_meta_set encodes the strings */
    tj_meta_set(m, TJ_META_CONTAINER_NAME, name, strlen(name));
    tj_meta_set(m, TJ_META_CONTAINER_ID, id, strlen(id));
}

static struct tj_ruleset *ruleset(void)
{
    static const char *const exprs[] = {"%{WORD:verb} %{URIPATH:url}"};
    struct tj_grok_lib *lib = tj_grok_lib_create();
    struct tj_ruleset *rs;
    char err[512];

    tj_grok_lib_load_builtin(lib, err, sizeof(err));
    rs = tj_ruleset_create(lib, exprs, 1, NULL, err, sizeof(err));
    tj_grok_lib_destroy(lib);
    return rs;
}

/* Occurrences of what in s (memmem over the length: ASan's strstr measures s at every call). */
static size_t count(const char *s, const char *what)
{
    size_t n = 0, len = strlen(s), k = strlen(what);

    for (const char *p = s, *end = s + len; (p = memmem(p, (size_t)(end - p), what, k)); p += k)
        n++;
    return n;
}

static void test_failed(void)
{
    CHECK(!tj_tap_record_failed(OK, sizeof(OK) - 2));
    CHECK(tj_tap_record_failed(BAD, sizeof(BAD) - 2));
    CHECK(!tj_tap_record_failed(TRICKY, sizeof(TRICKY) - 2));
    CHECK(!tj_tap_record_failed("", 0));
}

static void test_filters(void)
{
    struct tj_tap_hub *h = tj_tap_hub_create();
    struct tj_ruleset *rs = ruleset();
    struct tj_tap_filter fa = {{"api"}, 1, NULL, false}, fw = {{0}, 0, "web", true};
    struct tj_tap_filter fid = {{0}, 0, "abcd12", false};
    struct tj_tap *ta, *tw, *tid;
    struct tj_meta web, api;
    char recs[512], buf[4096];
    long n;
    int rc;

    meta_of(&web, "/web", "abcd1234");
    meta_of(&api, "api", "ffff0000");
    CHECK(!tj_tap_wanted(h, false) && tj_tap_wanted(h, true) && !tj_tap_wanted(NULL, true));
    ta = tj_tap_open(h, &fa, &rc);
    tw = tj_tap_open(h, &fw, &rc);
    tid = tj_tap_open(h, &fid, &rc);
    CHECK(ta && tw && tid && tj_tap_wanted(h, false));
    snprintf(recs, sizeof(recs), "%s%s%s", OK, BAD, TRICKY);
    tj_tap_offer(h, "web", rs, &web, recs, strlen(recs));
    tj_tap_offer(h, "api", rs, &api, recs, strlen(recs));
    n = tj_tap_read(ta, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    CHECK_STR(buf, recs); /* api's three, not web's */
    n = tj_tap_read(tw, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    CHECK_STR(buf, BAD); /* web's failures only; "/web" is the name "web" */
    n = tj_tap_read(tid, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    CHECK_STR(buf, recs);                              /* an id prefix */
    CHECK(tj_tap_read(ta, buf, sizeof(buf), 10) == 0); /* nothing more: waits, then 0 */
    tj_tap_close(ta);
    tj_tap_close(tw);
    tj_tap_close(tid);
    CHECK(!tj_tap_wanted(h, false));
    tj_meta_fini(&web);
    tj_meta_fini(&api);
    tj_ruleset_unref(rs);
    tj_tap_hub_destroy(h);
}

static void test_drops(void)
{
    struct tj_tap_hub *h = tj_tap_hub_create();
    struct tj_tap_filter f = {{0}, 0, NULL, false};
    struct tj_tap *t, *more[TJ_TAP_MAX_TAPS];
    size_t per = sizeof(OK) - 1, fit = TJ_TAP_RING_BYTES / per, total = fit + 100;
    char *buf = malloc(TJ_TAP_RING_BYTES + 256), *text;
    struct tj_buf metrics;
    long n;
    int rc;

    t = tj_tap_open(h, &f, &rc);
    CHECK(t && rc == 0);
    for (size_t i = 0; i < total; i++)
        tj_tap_offer(h, "web", NULL, NULL, OK, per);
    /* what was kept, then where the drops were, a line of its own */
    n = tj_tap_read(t, buf, TJ_TAP_RING_BYTES + 255, 0);
    CHECK(n > 0);
    buf[n > 0 ? n : 0] = '\0';
    CHECK(count(buf, "\"verb\"") == fit);
    CHECK(strstr(buf, "{\"tap\"") == buf + fit * per);
    CHECK_STR(buf + fit * per, "{\"tap\":{\"dropped\":100}}\n");
    /* told once; records come again */
    tj_tap_offer(h, "web", NULL, NULL, OK, per);
    n = tj_tap_read(t, buf, 1024, 0);
    buf[n > 0 ? n : 0] = '\0';
    CHECK_STR(buf, OK);
    tj_buf_init(&metrics, 1 << 20);
    tj_tap_metrics(h, &metrics);
    tj_buf_append(&metrics, "", 1);
    text = metrics.data;
    CHECK(strstr(text, "tailjet_tap_dropped_total 100\n") != NULL);
    CHECK(strstr(text, "tailjet_taps_open 1\n") != NULL);
    /* the limit of taps */
    for (int i = 0; i < TJ_TAP_MAX_TAPS - 1; i++)
        CHECK((more[i] = tj_tap_open(h, &f, &rc)) != NULL);
    CHECK(tj_tap_open(h, &f, &rc) == NULL && rc == TJ_EAGAIN);
    for (int i = 0; i < TJ_TAP_MAX_TAPS - 1; i++)
        tj_tap_close(more[i]);
    tj_tap_close(t);
    metrics.len = 0;
    tj_tap_metrics(h, &metrics);
    tj_buf_append(&metrics, "", 1);
    CHECK(strstr(metrics.data, "tailjet_tap_dropped_total 100\n") != NULL); /* kept after close */
    CHECK(strstr(metrics.data, "tailjet_taps_refused_total 1\n") != NULL);
    /* shutdown ends a reader's stream */
    t = tj_tap_open(h, &f, &rc);
    tj_tap_hub_shutdown(h);
    CHECK(tj_tap_read(t, buf, 1024, 1000) == -1);
    CHECK(tj_tap_open(h, &f, &rc) == NULL && rc == TJ_EIO);
    tj_tap_close(t);
    tj_buf_fini(&metrics);
    free(buf);
    tj_tap_hub_destroy(h);
}

static void test_last_failures(void)
{
    struct tj_tap_hub *h = tj_tap_hub_create();
    struct tj_ruleset *rs = ruleset();
    struct tj_buf b;
    char rec[128];

    tj_buf_init(&b, 1 << 20);
    for (int i = 0; i < 30; i++) {
        int n = snprintf(rec, sizeof(rec), "%s{\"message\":\"bad %d\",\"tags\":[\"_x\"]}\n", OK, i);
        tj_tap_offer(h, "web", rs, NULL, rec, (size_t)n);
    }
    tj_tap_failures_json(h, &b);
    tj_buf_append(&b, "", 1);
    CHECK(count(b.data, "bad ") == 20);
    CHECK(strstr(b.data, "bad 9\\\"") == NULL && strstr(b.data, "bad 10\\\"") != NULL);
    CHECK(strstr(b.data, "bad 29\\\"") > strstr(b.data, "bad 28\\\""));
    CHECK(strstr(b.data, "\"patterns\":[\"%{WORD:verb} %{URIPATH:url}\"]") != NULL);
    tj_buf_fini(&b);
    tj_ruleset_unref(rs);
    tj_tap_hub_destroy(h);
}

static const struct tj_test tests[] = {
    {"failed", test_failed},
    {"filters", test_filters},
    {"drops", test_drops},
    {"last_failures", test_last_failures},
};

int main(int argc, char **argv)
{
    return tj_test_main(tests, TJ_ARRAY_LEN(tests), argc, argv);
}
