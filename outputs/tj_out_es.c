/* tj_out_es.c: the elasticsearch://HOST:PORT[,HOST:PORT...][/INDEX] output (also http:// and
 * https://), on libcurl's multi interface and the _bulk API.
 *
 * Each record is one document. submit (the engine's workers, several at once) turns a batch into
 * pieces of a bulk request: an action line with the index (the batch's logIndex label, else a
 * template on the record's @timestamp and service) and a deterministic _id (XXH3-128 of the
 * record's bytes), then the record. gzip: built with libdeflate (TJ_LIBDEFLATE, the default), the
 * output thread gzips each request body in one libdeflate call (measured cheaper per document
 * than zlib, bench/es.sh); without it, zlib deflates each piece apart on the workers, ending
 * with a sync flush, and the output thread lays pieces end to end into one gzip body. The output
 * thread owns the curl handles: it sends up to
 * request.concurrency requests at once on keep-alive connections, reads each answer item by item
 * and finishes each document: indexed (2xx, or 409 to a create: already there), or rejected for
 * good (a 400 mapping error: appended to the dead-letter file with Elasticsearch's error, and the
 * file fsync'ed), or retried alone with exponential back-off and jitter (429, 5xx; a whole request
 * that failed: only its documents, never a batch as a whole again). 401, 403 and 404 are a
 * configuration problem, not a document's: held and retried slowly, said once, shown by /health.
 * A batch is acknowledged to the engine when all its documents are finished; nothing is dropped.
 *
 * Threads: submit on the engine's workers (takes `lock` briefly), everything else on the output
 * thread; problem, metrics and flush from any thread.
 *
 * This file is the interface (create, submit, flush, reopen, problem, metrics, destroy); the
 * output's state is in tj_es_out.h, its options in tj_es_opts.c, index names, pieces and request
 * bodies in tj_es_request.c, the output thread in tj_es_loop.c, answers and retries in
 * tj_es_result.c. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tj_es_loop.h"
#include "tj_es_opts.h"
#include "tj_es_out.h"
#include "tj_es_request.h"
#include "tj_log.h"

#define GZIP_LEVEL 1

/* Pieces are deflated by the workers (zlib), unless libdeflate gzips each body whole. */
#ifdef TJ_HAVE_LIBDEFLATE
#define PIECE_GZIP(o) false
#else
#define PIECE_GZIP(o) ((o)->gzip)
#endif

static const char *const req_outcomes[REQ_N] = {"ok", "item_errors", "http_error",
                                                "transport_error"};

static void es_destroy(void *state);

static int es_create(const char *uri, const char *const *opts, size_t nopts, tj_ack_fn ack,
                     void *ack_arg, void **state, char *err, size_t errlen)
{
    struct tj_es_opts eo;
    struct out_es *o;
    struct curl_slist *hl = NULL;
    int rc;

    if ((rc = tj_es_opts_parse(&eo, opts, nopts, err, errlen)))
        return rc;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "elasticsearch: libcurl cannot start");
        return TJ_EIO;
    }
    if (!(o = calloc(1, sizeof(*o)))) {
        curl_global_cleanup();
        snprintf(err, errlen, "out of memory");
        return TJ_ENOMEM;
    }
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->idle, NULL);
    o->dl_fd = -1;
    o->ack = ack;
    o->ack_arg = ack_arg;
    o->seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    if ((rc = tj_es_opts_apply(o, uri, &eo, err, errlen)))
        goto fail;
    tj_es_pw_init(&o->pw, PIECE_GZIP(o), GZIP_LEVEL);
    rc = TJ_ENOMEM;
    snprintf(err, errlen, "out of memory");
    if (!(hl = curl_slist_append(NULL, "Content-Type: application/x-ndjson")))
        goto fail;
    o->headers = hl;
    if (!(hl = curl_slist_append(o->headers, "Expect:")) || /* no 100-continue round trip */
        (o->gzip && !(hl = curl_slist_append(o->headers, "Content-Encoding: gzip"))) ||
        (o->api_key_header && !(hl = curl_slist_append(o->headers, o->api_key_header))))
        goto fail;
    if (!(o->multi = curl_multi_init()) || !(o->slots = calloc(o->concurrency, sizeof(*o->slots))))
        goto fail;
#ifdef TJ_HAVE_LIBDEFLATE
    tj_buf_init(&o->plain, SIZE_MAX / 4);
    if (o->gzip && !(o->ldc = libdeflate_alloc_compressor(GZIP_LEVEL)))
        goto fail;
#endif
    for (unsigned i = 0; i < o->concurrency; i++)
        if (tj_es_loop_slot_init(o, &o->slots[i]))
            goto fail;
    if (pthread_create(&o->thread, NULL, tj_es_loop_main, o) != 0) {
        snprintf(err, errlen, "elasticsearch: cannot start the output thread");
        rc = TJ_EIO;
        goto fail;
    }
    o->thread_started = true;
    if (!o->verify)
        tj_log(TJ_LOG_WARN, "elasticsearch: TLS certificates are not checked "
                            "(tls.verify_certificate=false)");
    tj_log(TJ_LOG_INFO,
           "elasticsearch: %s%s (index %s, action %s, ids %s, %s; up to %u requests of %u "
           "documents or %zu bytes; dead letters to %s)",
           o->hosts[0].url, o->nhosts > 1 ? " and failover hosts" : "", o->index,
           o->create ? "create" : "index", o->ids ? "hash" : "by Elasticsearch",
           o->gzip ? "gzip" : "uncompressed", o->concurrency, o->max_docs, o->max_bytes,
           o->dl_path);
    *state = o;
    return 0;
fail:
    es_destroy(o);
    return rc;
}

/* ---- the interface ---- */

static struct tj_es_piece_writer *pw_get(struct out_es *o)
{
    struct tj_es_piece_writer *pw = NULL;

    pthread_mutex_lock(&o->lock);
    if (o->npw)
        pw = o->pw_pool[--o->npw];
    pthread_mutex_unlock(&o->lock);
    if (!pw && (pw = malloc(sizeof(*pw))))
        tj_es_pw_init(pw, PIECE_GZIP(o), GZIP_LEVEL);
    return pw;
}

static void pw_put(struct out_es *o, struct tj_es_piece_writer *pw)
{
    pthread_mutex_lock(&o->lock);
    if (o->npw < MAX_POOLED_PW) {
        o->pw_pool[o->npw++] = pw;
        pw = NULL;
    }
    pthread_mutex_unlock(&o->lock);
    if (pw) {
        tj_es_pw_fini(pw);
        free(pw);
    }
}

static int es_submit(void *state, struct tj_batch *b)
{
    struct out_es *o = state;
    const char *p = b->records.data, *end = p + b->records.len;
    struct piece *first = NULL, *last = NULL;
    struct doc *undone = NULL;
    struct tj_es_piece_writer *pw;
    struct tracker *t;
    size_t n = 0, i = 0;
    int rc;

    if (__atomic_load_n(&o->held, __ATOMIC_ACQUIRE) >= o->buffer_max)
        return TJ_EAGAIN; /* the engine pauses reading and submits it again later */
    for (const char *q = p; q < end;) {
        const char *nl = memchr(q, '\n', (size_t)(end - q));
        const char *e = nl ? nl : end;
        n += e > q;
        q = e + 1;
    }
    if (n == 0) {
        o->ack(o->ack_arg, b, 0);
        return 0;
    }
    if (!(t = calloc(1, sizeof(*t) + n * sizeof(struct doc))))
        return TJ_ENOMEM;
    t->b = b;
    t->left = n;
    t->bytes = b->records.len;
    for (const char *q = p; q < end;) {
        const char *nl = memchr(q, '\n', (size_t)(end - q));
        const char *e = nl ? nl : end;
        if (e > q) {
            struct doc *d = &t->docs[i++];
            d->t = t;
            d->rec = q;
            d->len = (size_t)(e - q);
            d->next = i < n ? &t->docs[i] : NULL;
        }
        q = e + 1;
    }
    if (!(pw = pw_get(o))) {
        free(t);
        return TJ_ENOMEM;
    }
    rc = tj_es_request_build(o, pw, &t->docs[0], o->max_bytes, &first, &last, &undone);
    pw_put(o, pw);
    if (rc) {
        free(t);
        return rc;
    }
    __atomic_add_fetch(&o->held, t->bytes, __ATOMIC_ACQ_REL);
    pthread_mutex_lock(&o->lock);
    t->next = o->live;
    if (o->live)
        o->live->prev = t;
    o->live = t;
    o->ntrackers++;
    if (o->in_tail)
        o->in_tail->next = first;
    else
        o->in = first;
    o->in_tail = last;
    pthread_mutex_unlock(&o->lock);
    curl_multi_wakeup(o->multi);
    return 0;
}

static int es_flush(void *state, unsigned timeout_ms)
{
    struct out_es *o = state;
    struct timespec deadline;
    size_t left;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&o->lock);
    while (o->ntrackers && pthread_cond_timedwait(&o->idle, &o->lock, &deadline) == 0)
        ;
    left = o->ntrackers;
    pthread_mutex_unlock(&o->lock);
    return left ? TJ_EAGAIN : 0;
}

static void es_reopen(void *state)
{
    struct out_es *o = state;

    __atomic_store_n(&o->reopen, true, __ATOMIC_RELEASE);
    curl_multi_wakeup(o->multi);
}

static void es_problem(void *state, char *buf, size_t n)
{
    struct out_es *o = state;
    size_t held = __atomic_load_n(&o->held, __ATOMIC_ACQUIRE);

    if (!n)
        return;
    pthread_mutex_lock(&o->lock);
    snprintf(buf, n, "%s", o->problem);
    pthread_mutex_unlock(&o->lock);
    if (!buf[0] && held >= o->buffer_max)
        snprintf(buf, n,
                 "elasticsearch: %zu bytes of records wait for Elasticsearch (buffer.max_bytes)",
                 held);
}

#define LOAD(x) ((unsigned long long)__atomic_load_n(&(x), __ATOMIC_RELAXED))
#define OUT     "output=\"elasticsearch\""

static void es_metrics(void *state, struct tj_buf *b)
{
    struct out_es *o = state;

    tj_buf_prom_head(b, "tailjet_output_documents_total", "counter",
                     "Documents Elasticsearch took, by result (indexed: 2xx; conflict: 409 to a "
                     "create, already there).");
    tj_buf_printf(b, "tailjet_output_documents_total{" OUT ",result=\"indexed\"} %llu\n",
                  LOAD(o->n.indexed));
    tj_buf_printf(b, "tailjet_output_documents_total{" OUT ",result=\"conflict\"} %llu\n",
                  LOAD(o->n.conflicts));
    tj_buf_prom_head(b, "tailjet_output_dead_letters_total", "counter",
                     "Documents rejected for good, written to the dead-letter file.");
    tj_buf_printf(b, "tailjet_output_dead_letters_total{" OUT "} %llu\n", LOAD(o->n.dead));
    tj_buf_prom_head(b, "tailjet_output_documents_sent_total", "counter",
                     "Documents sent in bulk requests, retries included.");
    tj_buf_printf(b, "tailjet_output_documents_sent_total{" OUT "} %llu\n", LOAD(o->n.sent));
    tj_buf_prom_head(b, "tailjet_output_documents_retried_total", "counter",
                     "Documents scheduled again after a failure (429, 5xx, no answer, ...).");
    tj_buf_printf(b, "tailjet_output_documents_retried_total{" OUT "} %llu\n", LOAD(o->n.retried));
    tj_buf_prom_head(b, "tailjet_output_requests_total", "counter",
                     "Bulk requests by outcome (ok; item_errors: some items failed; http_error: "
                     "the whole request was refused; transport_error: no answer).");
    for (int k = 0; k < REQ_N; k++)
        tj_buf_printf(b, "tailjet_output_requests_total{" OUT ",outcome=\"%s\"} %llu\n",
                      req_outcomes[k], LOAD(o->n.requests[k]));
    tj_buf_prom_head(b, "tailjet_output_request_bytes_total", "counter",
                     "Bytes of bulk request bodies, before compression (uncompressed) and as sent "
                     "(sent).");
    tj_buf_printf(b, "tailjet_output_request_bytes_total{" OUT ",stage=\"uncompressed\"} %llu\n",
                  LOAD(o->n.bytes_raw));
    tj_buf_printf(b, "tailjet_output_request_bytes_total{" OUT ",stage=\"sent\"} %llu\n",
                  LOAD(o->n.bytes_sent));
    tj_buf_prom_head(b, "tailjet_output_requests_in_flight", "gauge",
                     "Bulk requests waiting for an answer.");
    tj_buf_printf(b, "tailjet_output_requests_in_flight{" OUT "} %llu\n", LOAD(o->busy_gauge));
    tj_buf_prom_head(b, "tailjet_output_buffered_bytes", "gauge",
                     "Bytes of records the output holds, not yet acknowledged.");
    tj_buf_printf(b, "tailjet_output_buffered_bytes{" OUT "} %llu\n", LOAD(o->held));
}

#undef LOAD
#undef OUT

static void pieces_free(struct piece *p)
{
    while (p) {
        struct piece *next = p->next;
        tj_es_request_piece_free(p);
        p = next;
    }
}

static void es_destroy(void *state)
{
    struct out_es *o = state;

    if (!o)
        return;
    if (o->thread_started) {
        pthread_mutex_lock(&o->lock);
        o->stop = true;
        pthread_mutex_unlock(&o->lock);
        curl_multi_wakeup(o->multi);
        pthread_join(o->thread, NULL);
    }
    for (unsigned i = 0; o->slots && i < o->concurrency; i++) {
        struct slot *s = &o->slots[i];
        if (s->busy)
            curl_multi_remove_handle(o->multi, s->h);
        if (s->h)
            curl_easy_cleanup(s->h);
        tj_buf_fini(&s->body);
        tj_buf_fini(&s->answer);
    }
    free(o->slots);
    curl_multi_cleanup(o->multi);
    curl_slist_free_all(o->headers);
    pieces_free(o->in);
    pieces_free(o->ready);
    while (o->live) { /* only when the engine gave up waiting: it exits without them */
        struct tracker *t = o->live;
        o->live = t->next;
        free(t);
    }
    while (o->npw) {
        tj_es_pw_fini(o->pw_pool[--o->npw]);
        free(o->pw_pool[o->npw]);
    }
    tj_es_pw_fini(&o->pw);
#ifdef TJ_HAVE_LIBDEFLATE
    if (o->ldc)
        libdeflate_free_compressor(o->ldc);
    tj_buf_fini(&o->plain);
#endif
    if (o->dl_fd >= 0)
        close(o->dl_fd);
    for (size_t i = 0; i < o->nhosts; i++) {
        free(o->hosts[i].url);
        free(o->hosts[i].bulk_url);
    }
    if (o->password)
        explicit_bzero(o->password, strlen(o->password));
    if (o->api_key_header)
        explicit_bzero(o->api_key_header, strlen(o->api_key_header));
    free(o->password);
    free(o->api_key_header);
    free(o->user);
    free(o->ca_file);
    free(o->index);
    free(o->dl_path);
    free(o->tpl_body);
    free(o->tpl_path);
    free(o->tpl_name);
    pthread_cond_destroy(&o->idle);
    pthread_mutex_destroy(&o->lock);
    free(o);
    curl_global_cleanup();
}

const struct tj_output_ops tj_output_es = {
    .scheme = "elasticsearch",
    .create = es_create,
    .submit = es_submit,
    .flush = es_flush,
    .reopen = es_reopen,
    .problem = es_problem,
    .destroy = es_destroy,
    .metrics = es_metrics,
    .aliases = "http|https",
    .opts = tj_es_opts_table,
    .nopts = TJ_ES_OPTS_N,
    .opt_flag = "es-opt",
};
