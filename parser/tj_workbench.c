/* tj_workbench.c: sample lines through one ruleset, as `tailjet parse` would (see
 * tj_workbench.h). The caller's thread only. */
#include "tj_workbench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tj_assemble.h"
#include "tj_batch.h"
#include "tj_json.h"
#include "tj_ruleset.h"
#include "tj_tap.h"

#define MAX_LINE_BYTES ((size_t)1 << 20)

struct wb_run {
    const struct tj_ruleset *rs;
    struct tj_matcher *m;
    struct tj_batch *batch;
    struct tj_meta meta;
    struct tj_buf records; /* NDJSON */
    struct tj_parse_stats st;
    unsigned budget_ms;
    const char *stopped; /* why the run stopped early, or NULL */
};

static unsigned cpu_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (unsigned)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static int encode_event(void *arg, const struct tj_event *ev, const struct tj_match_result *res,
                        const size_t *ov)
{
    struct wb_run *r = arg;

    return tj_ruleset_encode(r->rs, ev, res, ov, &r->meta, &r->records, &r->st);
}

static int on_event(void *arg, const struct tj_event *ev)
{
    struct wb_run *r = arg;

    return tj_batch_push(r->batch, ev, r->rs, r->m, encode_event, r);
}

/* The pattern number a ruleset error names ("pattern 2: ..." -> 2, "multiline: ..." -> 0). */
static int error_pattern(const char *err, size_t npatterns)
{
    if (strncmp(err, "multiline:", 10) == 0)
        return 0;
    if (strncmp(err, "definitions:", 12) == 0)
        return -1;
    if (strncmp(err, "pattern ", 8) == 0)
        return atoi(err + 8);
    return npatterns ? 1 : 0;
}

/* Feeds the text's lines, stopping when the CPU budget is spent. Returns 0 or an error. */
static int feed_lines(struct wb_run *r, const struct tj_workbench_req *req, struct tj_assembler *a)
{
    const char *d = req->text, *end = d + req->len, *p = d, *nl;
    char now[40];
    struct tj_feed f = {r->m, r->rs->multiline, on_event, r, {now, 0}};
    unsigned start = cpu_ms(), lines = 0;
    int rc = 0;

    tj_time_now(now, sizeof(now));
    f.now.len = strlen(now);
    tj_batch_region(r->batch, d, end, now, sizeof(now));
    while (!rc && p < end) {
        nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end;
        rc = tj_assembler_line(a, p, (size_t)(nl - p), (int64_t)(p - d), false, &f);
        p = nl + 1;
        if (++lines % 16 == 0 && cpu_ms() - start > r->budget_ms) {
            r->stopped = "the CPU budget of a request ran out: the lines after it were not run";
            break;
        }
    }
    if (!rc)
        rc = tj_assembler_flush(a, true, &f);
    if (!rc)
        rc = tj_batch_run(r->batch, r->rs, r->m, encode_event, r);
    return rc;
}

static void answer(struct wb_run *r, struct tj_buf *out)
{
    const char *p = r->records.data, *end = p + r->records.len, *nl;
    bool first = true;

    tj_buf_append(out, "{\"records\":[", 12);
    for (; p && p < end && (nl = memchr(p, '\n', (size_t)(end - p))); p = nl + 1) {
        if (!first)
            tj_buf_append(out, ",", 1);
        first = false;
        tj_buf_append(out, p, (size_t)(nl - p));
    }
    tj_buf_append(out, "],\"failed\":[", 12);
    first = true;
    for (p = r->records.data; p && p < end && (nl = memchr(p, '\n', (size_t)(end - p)));
         p = nl + 1) {
        tj_buf_printf(out, "%s%s", first ? "" : ",",
                      tj_tap_record_failed(p, (size_t)(nl - p)) ? "true" : "false");
        first = false;
    }
    tj_buf_printf(out,
                  "],\"stats\":{\"records\":%llu,\"matched\":%llu,\"grokparsefailure\":%llu,"
                  "\"groktimeout\":%llu,\"jsonparsefailure\":%llu,\"truncated\":%llu},\"stopped\":",
                  (unsigned long long)r->st.records, (unsigned long long)r->st.matched,
                  (unsigned long long)r->st.failed, (unsigned long long)r->st.limited,
                  (unsigned long long)r->st.json_errors, (unsigned long long)r->st.truncated);
    if (r->stopped)
        tj_json_string(out, r->stopped, strlen(r->stopped));
    else
        tj_buf_append(out, "null", 4);
    tj_buf_append(out, "}", 1);
}

int tj_workbench_run(const struct tj_grok_lib *lib, const struct tj_workbench_req *req,
                     struct tj_buf *out)
{
    struct wb_run r = {0};
    struct tj_rules_spec spec = {0};
    struct tj_assembler *a = NULL;
    char err[900];
    int rc = TJ_ENOMEM;

    tj_meta_init(&r.meta);
    tj_buf_init(&r.records, 64 * TJ_WORKBENCH_MAX_BYTES + 64 * MAX_LINE_BYTES);
    r.budget_ms = req->cpu_budget_ms;
    spec.exprs = req->patterns;
    spec.n = req->npatterns;
    spec.multiline = req->multiline;
    spec.ecs = req->ecs;
    spec.definitions = req->definitions;
    spec.timestamp = req->timestamp;
    r.rs = tj_ruleset_build(lib, &spec, err, sizeof(err));
    if (!r.rs) {
        tj_buf_append(out, "{\"error\":", 9);
        tj_json_string(out, err, strlen(err));
        tj_buf_printf(out, ",\"pattern\":%d}", error_pattern(err, req->npatterns));
        rc = out->len ? 0 : TJ_ENOMEM;
        goto done;
    }
    if (req->host_name &&
        tj_meta_set(&r.meta, TJ_META_HOST_NAME, req->host_name, strlen(req->host_name)))
        goto done;
    if (!(r.m = tj_matcher_create(&req->limits)) || !(r.batch = tj_batch_create()) ||
        !(a = tj_assembler_create(TJ_FORMAT_AUTO, MAX_LINE_BYTES)))
        goto done;
    if ((rc = feed_lines(&r, req, a)) == 0)
        answer(&r, out);
done:
    tj_assembler_destroy(a);
    tj_batch_destroy(r.batch);
    tj_matcher_destroy(r.m);
    tj_ruleset_unref((struct tj_ruleset *)r.rs);
    tj_meta_fini(&r.meta);
    tj_buf_fini(&r.records);
    return rc;
}
