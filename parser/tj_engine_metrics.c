/* tj_engine_metrics.c: the engine's /metrics series, its part of /health and the services'
 * record counters (tj_engine_metrics, tj_engine_health, tj_engine_services_json of
 * tj_engine.h). Any thread (the HTTP server's); counters are added to by the workers. */
#include "tj_chunks.h"
#include "tj_engine_int.h"
#include "tj_files.h"
#include "tj_ident.h"
#include "tj_seq.h"
#include "tj_state.h"

/* Drops the counters no source holds any more. Called with the lock held: tj_engine_counters_for,
 * the only place that takes a new reference to listed counters, holds it too. */
static void counters_sweep(struct tj_engine *e)
{
    for (struct svc_counters **pp = &e->counters, *c; (c = *pp);) {
        if (__atomic_load_n(&c->refs, __ATOMIC_ACQUIRE) > 0) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        e->truncated_gone += c->truncated;
        tj_ruleset_unref(c->rs);
        free(c->name);
        free(c);
    }
}

/* A reference to the counters of a service (created on first use), for a source about to be
 * made with rs, which owns it from then on. Any thread. NULL when out of memory. */
struct svc_counters *tj_engine_counters_for(struct tj_engine *e, const char *name,
                                            struct tj_ruleset *rs)
{
    struct svc_counters *c;

    pthread_mutex_lock(&e->lock);
    counters_sweep(e);
    for (c = e->counters; c && strcmp(c->name, name) != 0; c = c->next)
        ;
    if (!c && (c = calloc(1, sizeof(*c)))) {
        if ((c->name = strdup(name))) {
            c->next = e->counters;
            e->counters = c;
        } else {
            free(c);
            c = NULL;
        }
    }
    if (c) {
        __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
        if (c->rs != rs) {
            tj_ruleset_unref(c->rs);
            c->rs = tj_ruleset_ref(rs);
        }
    }
    pthread_mutex_unlock(&e->lock);
    return c;
}

void tj_engine_counters_add(struct svc_counters *c, const struct tj_parse_stats *before,
                            const struct tj_parse_stats *after, bool patterns)
{
    uint64_t matched = after->matched - before->matched, unmatched = after->failed - before->failed,
             json = after->json_errors - before->json_errors,
             records = after->records - before->records;

    if (!c)
        return;
    if (!patterns)
        unmatched = 0; /* nothing to match: the records are unparsed */
    __atomic_add_fetch(&c->matched, matched, __ATOMIC_RELAXED);
    __atomic_add_fetch(&c->unmatched, unmatched, __ATOMIC_RELAXED);
    __atomic_add_fetch(&c->json_error, json, __ATOMIC_RELAXED);
    __atomic_add_fetch(&c->unparsed, records - matched - unmatched - json, __ATOMIC_RELAXED);
    __atomic_add_fetch(&c->truncated, after->truncated - before->truncated, __ATOMIC_RELAXED);
    __atomic_add_fetch(&c->limited, after->limited - before->limited, __ATOMIC_RELAXED);
}

void tj_engine_metrics(struct tj_engine *e, struct tj_buf *b)
{
    static const char *const results[] = {"matched", "unmatched", "json_error", "unparsed"};
    struct tj_engine_stats st;
    int64_t now = now_ms();
    size_t files = 0;

    pthread_mutex_lock(&e->lock);
    counters_sweep(e);
    st = e->st;
    tj_buf_prom_head(b, "tailjet_up_seconds", "gauge", "Seconds since tailjet started.");
    tj_buf_printf(b, "tailjet_up_seconds %.3f\n", (double)(now - e->start_ms) / 1000.0);
    tj_buf_prom_head(b, "tailjet_read_bytes_total", "counter", "Bytes read from log files.");
    tj_buf_printf(b, "tailjet_read_bytes_total %llu\n", (unsigned long long)st.bytes_read);
    tj_buf_prom_head(
        b, "tailjet_records_total", "counter",
        "Records parsed, by service and result (matched, unmatched: _grokparsefailure, "
        "json_error: _jsonparsefailure, unparsed: no pattern or _patternerror).");
    for (struct svc_counters *c = e->counters; c; c = c->next) {
        uint64_t v[4] = {__atomic_load_n(&c->matched, __ATOMIC_RELAXED),
                         __atomic_load_n(&c->unmatched, __ATOMIC_RELAXED),
                         __atomic_load_n(&c->json_error, __ATOMIC_RELAXED),
                         __atomic_load_n(&c->unparsed, __ATOMIC_RELAXED)};
        for (int k = 0; k < 4; k++) {
            tj_buf_printf(b, "tailjet_records_total{service=\"");
            tj_buf_prom_label(b, c->name);
            tj_buf_printf(b, "\",result=\"%s\"} %llu\n", results[k], (unsigned long long)v[k]);
        }
    }
    tj_buf_prom_head(b, "tailjet_records_truncated_total", "counter",
                     "Records cut at the line cap (tagged _truncated).");
    {
        uint64_t t = e->truncated_gone;
        for (struct svc_counters *c = e->counters; c; c = c->next)
            t += __atomic_load_n(&c->truncated, __ATOMIC_RELAXED);
        tj_buf_printf(b, "tailjet_records_truncated_total %llu\n", (unsigned long long)t);
    }
    tj_buf_prom_head(b, "tailjet_output_records_acked_total", "counter",
                     "Records the output acknowledged (delivered).");
    tj_buf_printf(b, "tailjet_output_records_acked_total{output=\"%s\"} %llu\n",
                  e->out ? e->out->ops->scheme : "none", (unsigned long long)st.records_acked);
    tj_buf_prom_head(b, "tailjet_output_submit_retries_total", "counter",
                     "Times the output refused a batch (it is retried, never dropped).");
    tj_buf_printf(b, "tailjet_output_submit_retries_total %llu\n",
                  (unsigned long long)st.submit_retries);
    tj_buf_prom_head(b, "tailjet_inflight_bytes", "gauge", "Input read but not yet acknowledged.");
    tj_buf_printf(b, "tailjet_inflight_bytes %zu\n", e->inflight_bytes);
    tj_buf_prom_head(b, "tailjet_inflight_chunks", "gauge",
                     "Chunks read but not yet acknowledged.");
    tj_buf_printf(b, "tailjet_inflight_chunks %zu\n", e->inflight_chunks);
    tj_buf_prom_head(
        b, "tailjet_file_lag_bytes", "gauge",
        "Bytes of a followed file not yet acknowledged (its size minus its checkpoint).");
    for (struct path *p = e->paths; p; p = p->next) {
        int64_t lag = 0;
        for (struct gen *g = p->gens; g; g = g->next) {
            lag += g->size_seen > g->acked_off ? g->size_seen - g->acked_off : 0;
        }
        files += p->gens != NULL;
        tj_buf_printf(b, "tailjet_file_lag_bytes{path=\"");
        tj_buf_prom_label(b, p->name);
        tj_buf_printf(b, "\"} %lld\n", (long long)lag);
    }
    tj_buf_prom_head(b, "tailjet_files_followed", "gauge", "Paths with an open file.");
    tj_buf_printf(b, "tailjet_files_followed %zu\n", files);
    tj_buf_prom_head(b, "tailjet_checkpoint_age_seconds", "gauge",
                     "Seconds since checkpoints were last written (since start when never).");
    tj_buf_printf(b, "tailjet_checkpoint_age_seconds %.3f\n",
                  (double)(now - (e->ckpt_ok_ms ? e->ckpt_ok_ms : e->start_ms)) / 1000.0);
    tj_buf_prom_head(b, "tailjet_rotations_total", "counter",
                     "Files rotated away (renamed, unlinked).");
    tj_buf_printf(b, "tailjet_rotations_total %llu\n", (unsigned long long)st.rotations);
    tj_buf_prom_head(b, "tailjet_truncations_total", "counter", "Files truncated (copytruncate).");
    tj_buf_printf(b, "tailjet_truncations_total %llu\n", (unsigned long long)st.truncations);
    pthread_mutex_unlock(&e->lock);
}

void tj_engine_services_json(struct tj_engine *e, struct tj_buf *b)
{
    bool first = true;

    pthread_mutex_lock(&e->lock);
    counters_sweep(e);
    tj_buf_append(b, "[", 1);
    for (struct svc_counters *c = e->counters; c; c = c->next) {
        const struct tj_ruleset *rs = c->rs;
        tj_buf_printf(b, "%s{\"name\":", first ? "" : ",");
        first = false;
        tj_json_string(b, c->name, strlen(c->name));
        tj_buf_printf(b,
                      ",\"matched\":%llu,\"unmatched\":%llu,\"json_error\":%llu,"
                      "\"unparsed\":%llu,\"truncated\":%llu,\"groktimeout\":%llu,\"patterns\":[",
                      (unsigned long long)__atomic_load_n(&c->matched, __ATOMIC_RELAXED),
                      (unsigned long long)__atomic_load_n(&c->unmatched, __ATOMIC_RELAXED),
                      (unsigned long long)__atomic_load_n(&c->json_error, __ATOMIC_RELAXED),
                      (unsigned long long)__atomic_load_n(&c->unparsed, __ATOMIC_RELAXED),
                      (unsigned long long)__atomic_load_n(&c->truncated, __ATOMIC_RELAXED),
                      (unsigned long long)__atomic_load_n(&c->limited, __ATOMIC_RELAXED));
        for (size_t i = 0; rs && i < rs->nalt; i++) {
            if (i)
                tj_buf_append(b, ",", 1);
            tj_json_string(b, rs->alt[i]->expr, strlen(rs->alt[i]->expr));
        }
        tj_buf_printf(
            b, "],\"ecs\":\"%s\",\"multiline\":", tj_ecs_mode_name(rs ? rs->ecs : TJ_ECS_V1));
        if (rs && rs->multiline)
            tj_json_string(b, rs->multiline->expr, strlen(rs->multiline->expr));
        else
            tj_buf_append(b, "null", 4);
        tj_buf_append(b, "}", 1);
    }
    tj_buf_append(b, "]", 1);
    pthread_mutex_unlock(&e->lock);
}

size_t tj_engine_health(struct tj_engine *e, struct tj_buf *b)
{
    size_t problems = 0;
    int64_t now = now_ms();

    char why[300] = "";

    if (e->out && e->out->ops->problem)
        e->out->ops->problem(e->out->state, why, sizeof(why));
    pthread_mutex_lock(&e->lock);
    for (struct path *p = e->paths; p; p = p->next) {
        if (p->retry_at && p->backoff_ms >= 1000) { /* refused for a while, not a blip */
            tj_buf_printf(b, "output: refusing records: %s (retrying every %u ms)\n",
                          why[0] ? why : "see the log", p->backoff_ms);
            problems++;
            break;
        }
    }
    if (!problems && why[0]) { /* e.g. brokers down while nothing is waiting yet */
        tj_buf_printf(b, "output: %s\n", why);
        problems++;
    }
    if (e->ckpt_ok_ms && now - e->ckpt_ok_ms > 10 * (int64_t)e->cfg.checkpoint_ms + 10000) {
        tj_buf_printf(b, "checkpoints: not written for %lld s\n",
                      (long long)(now - e->ckpt_ok_ms) / 1000);
        problems++;
    }
    pthread_mutex_unlock(&e->lock);
    return problems;
}
