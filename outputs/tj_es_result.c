/* tj_es_result.c: per-document results of the Elasticsearch output (see tj_es_result.h):
 * answers read item by item, acknowledgements, back-off and retries, dead letters, problems.
 * Runs on the output thread; the problem text is shared with /health under o->lock. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tj_es_request.h"
#include "tj_es_result.h"
#include "tj_json.h"

#define SLOW_RETRY_MS 1000  /* the least back-off for a configuration problem */
#define DL_LOG_MS     10000 /* dead letters are reported at most this often */
#define BLIP_LOG_MS   10000 /* so are transient failures (429, 5xx, drops, time-outs) */

/* ---- problems: shown by /health, logged without flooding ---- */

void tj_es_result_problem(struct out_es *o, int kind, bool transient, enum tj_log_level level,
                          const char *fmt, ...)
{
    char text[sizeof(o->problem)];
    int64_t now = now_ms();
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&o->lock);
    if (!o->problem_kind)
        o->problem_since = now;
    o->problem_kind = kind;
    memcpy(o->problem, text, sizeof(text));
    pthread_mutex_unlock(&o->lock);
    if (!transient) {
        if (o->said_kind != kind)
            tj_log(level, "%s", text);
        o->said_kind = kind;
    } else if (!o->blip_logged_ms || now - o->blip_logged_ms >= BLIP_LOG_MS) {
        if (o->blips_unlogged)
            tj_log(level, "%s (and %llu other failed requests in the last %d s)", text,
                   (unsigned long long)o->blips_unlogged, BLIP_LOG_MS / 1000);
        else
            tj_log(level, "%s", text);
        o->blip_logged_ms = now;
        o->blips_unlogged = 0;
    } else {
        o->blips_unlogged++;
    }
}

#define KIND_ITEM 10000 /* + status: documents refused by their index (403, 404) */

/* A request went through: the problem is over, unless it is documents that their index refuses
 * and some are still held for it. Its end is logged after a configuration problem, or after
 * BLIP_LOG_MS or more of failures. */
void tj_es_result_clear(struct out_es *o, const struct host *h)
{
    int64_t now = now_ms(), since;
    bool was;

    pthread_mutex_lock(&o->lock);
    was = o->problem_kind != 0 && (o->problem_kind < KIND_ITEM || o->nheld == 0);
    since = o->problem_since;
    if (was) {
        o->problem_kind = 0;
        o->problem[0] = '\0';
    }
    pthread_mutex_unlock(&o->lock);
    if (!was)
        return;
    if (o->said_kind || now - since >= BLIP_LOG_MS)
        tj_log(TJ_LOG_INFO, "elasticsearch: %s accepts documents again (after %.1f s)", h->url,
               (double)(now - since) / 1000.0);
    o->said_kind = 0;
}

/* ---- finishing documents (output thread) ---- */

/* The batch's documents are all finished: it is acknowledged, then forgotten. */
static void tracker_done(struct out_es *o, struct tracker *t)
{
    o->ack(o->ack_arg, t->b, 0);
    __atomic_sub_fetch(&o->held, t->bytes, __ATOMIC_ACQ_REL);
    pthread_mutex_lock(&o->lock);
    if (t->prev)
        t->prev->next = t->next;
    else
        o->live = t->next;
    if (t->next)
        t->next->prev = t->prev;
    if (--o->ntrackers == 0)
        pthread_cond_broadcast(&o->idle);
    pthread_mutex_unlock(&o->lock);
    free(t);
}

/* d is finished (it may be freed with its batch: do not touch it afterwards). */
static void doc_done(struct out_es *o, struct doc *d)
{
    struct tracker *t = d->t;

    if (--t->left == 0)
        tracker_done(o, t);
}

/* The wait before a document's next attempt: retry.initial_backoff doubled per attempt up to
 * retry.max_backoff, then a random time between half and all of it; slow (a configuration
 * problem): never under a second, unless retry.max_backoff is shorter. */
unsigned tj_es_result_backoff(struct out_es *o, unsigned attempts, bool slow)
{
    uint64_t ms = o->backoff_ms,
             floor = SLOW_RETRY_MS < o->backoff_max_ms ? SLOW_RETRY_MS : o->backoff_max_ms;

    for (unsigned i = 1; i < attempts && ms < o->backoff_max_ms; i++)
        ms *= 2;
    if (ms > o->backoff_max_ms)
        ms = o->backoff_max_ms;
    ms = ms / 2 + (uint64_t)rand_r(&o->seed) % (ms / 2 + 1);
    return (unsigned)(slow && ms < floor ? floor : ms);
}

/* Appends d (with its due time set) to the documents waiting for a retry. */
static void retry_push(struct out_es *o, struct doc *d)
{
    if (!o->retry || d->due < o->retry_min)
        o->retry_min = d->due;
    d->next = NULL;
    if (o->retry_tail)
        o->retry_tail->next = d;
    else
        o->retry = d;
    o->retry_tail = d;
}

/* Schedules the documents of the list (taken) again, each after its own back-off. */
static void retry_docs(struct out_es *o, struct doc *list, bool slow)
{
    int64_t now = now_ms();
    uint64_t n = 0;

    while (list) {
        struct doc *d = list;
        list = d->next;
        d->attempts++;
        d->due = now + tj_es_result_backoff(o, d->attempts, slow);
        retry_push(o, d);
        n++;
    }
    ctr_add(&o->n.retried, n);
}

/* Puts documents back to be encoded again at once (no attempt spent). */
void tj_es_result_requeue_now(struct out_es *o, struct doc *list)
{
    int64_t now = now_ms();

    while (list) {
        struct doc *d = list;
        list = d->next;
        d->due = now;
        retry_push(o, d);
    }
}

/* Documents whose back-off is over are encoded again, into pieces ahead of the new ones. */
void tj_es_result_requeue_due(struct out_es *o, int64_t now)
{
    struct doc *due = NULL, **dt = &due, **pp = &o->retry, *undone = NULL;
    struct piece *first, *last;
    int64_t min = INT64_MAX;

    o->retry_tail = NULL;
    while (*pp) {
        struct doc *d = *pp;
        if (d->due <= now) {
            *pp = d->next;
            d->next = NULL;
            *dt = d;
            dt = &d->next;
        } else {
            if (d->due < min)
                min = d->due;
            o->retry_tail = d;
            pp = &d->next;
        }
    }
    o->retry_min = min;
    if (!due)
        return;
    if (tj_es_request_build(o, &o->pw, due, o->eff_max_bytes, &first, &last, &undone) != 0) {
        tj_log(TJ_LOG_ERROR, "elasticsearch: out of memory encoding documents to retry; "
                             "trying again in a second");
        retry_docs(o, undone, true);
        return;
    }
    last->next = o->ready;
    o->ready = first;
    if (!o->ready_tail)
        o->ready_tail = last;
}

/* ---- dead letters ---- */

/* Appends the dead-letter line of d: when, where, its id, Elasticsearch's status and error
 * (JSON text, or NULL), and the record. Returns 0 or a tj_buf error. */
static int dl_line(const struct out_es *o, struct tj_buf *out, struct tj_es_namer *nm,
                   const struct doc *d, int status, const char *error)
{
    char now[40], id[TJ_ES_ID_LEN + 1];
    struct tj_slice index = tj_es_request_index(o, nm, d);
    size_t mark = out->len;
    int rc;

    tj_time_now(now, sizeof(now));
    rc = tj_buf_append(out, "{\"@timestamp\":\"", 15);
    if (!rc)
        rc = tj_buf_append(out, now, strlen(now));
    if (!rc)
        rc = tj_buf_append(out, "\",\"index\":", 10);
    if (!rc)
        rc = tj_json_string(out, index.ptr, index.len);
    if (!rc && o->ids) {
        tj_es_doc_id(d->rec, d->len, id);
        rc = tj_buf_append(out, ",\"_id\":\"", 8);
        if (!rc)
            rc = tj_buf_append(out, id, TJ_ES_ID_LEN);
        if (!rc)
            rc = tj_buf_append(out, "\"", 1);
    }
    if (!rc)
        rc = tj_buf_append(out, ",\"status\":", 10);
    if (!rc)
        rc = tj_json_i64(out, status);
    if (!rc)
        rc = tj_buf_append(out, ",\"error\":", 9);
    if (!rc)
        rc = error ? tj_buf_append(out, error, strlen(error)) : tj_buf_append(out, "null", 4);
    if (!rc)
        rc = tj_buf_append(out, ",\"document\":", 12);
    if (!rc)
        rc = tj_buf_append(out, d->rec, d->len);
    if (!rc)
        rc = tj_buf_append(out, "}\n", 2);
    if (rc)
        out->len = mark;
    return rc;
}

/* Appends lines to the dead-letter file (opened on first use, and again after SIGHUP) and
 * fsyncs it. Returns 0, or an errno value with the file as it was before. */
static int dl_write(struct out_es *o, const struct tj_buf *lines)
{
    struct stat st;
    size_t done = 0;
    int e = 0;

    if (o->dl_fd < 0) {
        o->dl_fd = open(o->dl_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (o->dl_fd < 0)
            return errno;
    }
    if (fstat(o->dl_fd, &st) != 0)
        return errno;
    while (done < lines->len) {
        ssize_t n = write(o->dl_fd, lines->data + done, lines->len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            e = n < 0 ? errno : EIO;
            break;
        }
        done += (size_t)n;
    }
    if (!e && fdatasync(o->dl_fd) != 0)
        e = errno;
    if (e && ftruncate(o->dl_fd, st.st_size) != 0) /* no torn line left behind */
        tj_log(TJ_LOG_ERROR, "elasticsearch: cannot cut %s back to %lld bytes: %s", o->dl_path,
               (long long)st.st_size, strerror(errno));
    return e;
}

/* Writes the dead letters of the list (taken; their lines in `lines`) and finishes them, or,
 * when the file cannot take them, holds them for a slow retry. */
static void dead_letter(struct out_es *o, struct doc *list, size_t n, const struct tj_buf *lines,
                        int status, const char *what)
{
    int e;
    int64_t now;

    if (!list)
        return;
    if ((e = dl_write(o, lines)) != 0) {
        tj_es_result_problem(
            o, 4, false, TJ_LOG_ERROR,
            "elasticsearch: cannot write the dead-letter file %s: %s; the %zu documents "
            "Elasticsearch rejected are held and retried (set --es-opt "
            "dead_letter_file=PATH)",
            o->dl_path, strerror(e), n);
        retry_docs(o, list, true);
        return;
    }
    ctr_add(&o->n.dead, n);
    while (list) {
        struct doc *d = list;
        list = d->next;
        doc_done(o, d);
    }
    o->dl_unlogged += n;
    now = now_ms();
    if (!o->dl_logged_ms || now - o->dl_logged_ms >= DL_LOG_MS) {
        tj_log(TJ_LOG_WARN,
               "elasticsearch: %llu documents rejected for good (the last: %d %s) were written "
               "to %s",
               (unsigned long long)o->dl_unlogged, status, what, o->dl_path);
        o->dl_unlogged = 0;
        o->dl_logged_ms = now;
    }
}

/* ---- answers ---- */

/* What Elasticsearch said in an error answer: error.reason (with error.type), else the start of
 * the body. */
void tj_es_result_reason(const struct slot *s, char *buf, size_t n)
{
    cJSON *j =
        s->answer.len < (1u << 20) ? cJSON_ParseWithLength(s->answer.data, s->answer.len) : NULL;
    cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    cJSON *r = cJSON_GetObjectItemCaseSensitive(e, "reason");
    cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "type");
    size_t k = 0;

    if (cJSON_IsString(r) && cJSON_IsString(t))
        snprintf(buf, n, "%s: %s", t->valuestring, r->valuestring);
    else if (cJSON_IsString(e))
        snprintf(buf, n, "%s", e->valuestring);
    else {
        for (; k + 1 < n && k < s->answer.len && k < 200; k++) {
            char c = s->answer.data[k];
            buf[k] = c >= 0x20 && c < 0x7f ? c : ' ';
        }
        buf[k] = '\0';
        if (!k)
            snprintf(buf, n, "(empty answer)");
    }
    cJSON_Delete(j);
}

/* The answer to a 200: each item finishes, retries or dead-letters its document. */
static void answer_items(struct out_es *o, struct slot *s, struct host *h, struct doc *docs)
{
    struct doc *again = NULL, **at = &again, *slow = NULL, **st = &slow, *dead = NULL, **dt = &dead;
    size_t nitems = 0, ndead = 0, nslow = 0;
    bool errors = false;
    cJSON *root, *items, *it;
    struct tj_buf lines;
    struct tj_es_namer nm;
    int slow_status = 0, dead_status = 0;
    char slow_why[300] = "", dead_why[300] = "", slow_index[256] = "";

    if (tj_es_bulk_summary(s->answer.data, s->answer.len, &errors, &nitems) != 0 ||
        nitems != s->ndocs) {
        ctr_add(&o->n.requests[REQ_HTTP_ERROR], 1);
        tj_es_result_problem(
            o, 3, true, TJ_LOG_WARN,
            "elasticsearch: %s answered a _bulk request of %zu documents with %s; they "
            "are retried",
            h->url, s->ndocs,
            nitems != s->ndocs && nitems ? "another number of items"
                                         : "something that is not a bulk result");
        retry_docs(o, docs, false);
        return;
    }
    if (!errors) {
        ctr_add(&o->n.indexed, s->ndocs);
        ctr_add(&o->n.requests[REQ_OK], 1);
        while (docs) {
            struct doc *d = docs;
            docs = d->next;
            doc_done(o, d);
        }
        tj_es_result_clear(o, h);
        return;
    }
    root = cJSON_ParseWithLength(s->answer.data, s->answer.len);
    items = cJSON_GetObjectItemCaseSensitive(root, "items");
    if (!cJSON_IsArray(items)) { /* the quick look said otherwise: out of memory */
        cJSON_Delete(root);
        retry_docs(o, docs, false);
        return;
    }
    ctr_add(&o->n.requests[REQ_ITEM_ERRORS], 1);
    tj_es_request_namer_init(&nm);
    tj_buf_init(&lines, SIZE_MAX / 4);
    it = items->child;
    while (docs) {
        struct doc *d = docs;
        cJSON *act = it ? it->child : NULL;
        cJSON *stn = cJSON_GetObjectItemCaseSensitive(act, "status");
        cJSON *err = cJSON_GetObjectItemCaseSensitive(act, "error");
        int status = cJSON_IsNumber(stn) ? stn->valueint : 0;
        docs = d->next;
        d->next = NULL;
        it = it ? it->next : NULL;
        if (status >= 200 && status < 300) {
            ctr_add(&o->n.indexed, 1);
            doc_done(o, d);
        } else if (status == 409 && o->create) {
            ctr_add(&o->n.conflicts, 1);
            doc_done(o, d);
        } else if (status == 429 || status >= 500 || status == 0) {
            *at = d;
            at = &d->next;
        } else if (status == 401 || status == 403 || status == 404) {
            if (!slow_status) {
                cJSON *r = cJSON_GetObjectItemCaseSensitive(err, "reason");
                struct tj_slice ix = tj_es_request_index(o, &nm, d);
                slow_status = status;
                snprintf(slow_why, sizeof(slow_why), "%s",
                         cJSON_IsString(r) ? r->valuestring : "(no reason given)");
                snprintf(slow_index, sizeof(slow_index), "%.*s", (int)ix.len, ix.ptr);
            }
            *st = d;
            st = &d->next;
            nslow++;
        } else {
            char *ej = err ? cJSON_PrintUnformatted(err) : NULL;
            if (dl_line(o, &lines, &nm, d, status, ej) != 0) {
                *at = d; /* out of memory: sent again later */
                at = &d->next;
            } else {
                if (!dead_status) {
                    cJSON *r = cJSON_GetObjectItemCaseSensitive(err, "reason");
                    cJSON *t = cJSON_GetObjectItemCaseSensitive(err, "type");
                    dead_status = status;
                    snprintf(dead_why, sizeof(dead_why), "%s: %s",
                             cJSON_IsString(t) ? t->valuestring : "error",
                             cJSON_IsString(r) ? r->valuestring : "(no reason given)");
                }
                *dt = d;
                dt = &d->next;
                ndead++;
            }
            cJSON_free(ej);
        }
    }
    cJSON_Delete(root);
    retry_docs(o, again, false);
    dead_letter(o, dead, ndead, &lines, dead_status, dead_why);
    if (slow) {
        for (struct doc *d = slow; d; d = d->next)
            d->held = true;
        o->nheld += nslow;
        tj_es_result_problem(
            o, KIND_ITEM + slow_status, false, TJ_LOG_ERROR,
            "elasticsearch: %d for documents of index %s from %s (%s; they are held and "
            "retried, not dead-lettered): %s",
            slow_status, slow_index, h->url,
            slow_status == 403   ? "the user lacks a privilege on that index: grant it "
                                   "create_doc or index, and create_index"
            : slow_status == 404 ? "the index does not exist and is not created "
                                   "automatically: create it, or an index template"
                                 : "check the credentials",
            slow_why);
        retry_docs(o, slow, true);
    } else {
        tj_es_result_clear(o, h);
    }
    tj_buf_fini(&lines);
    tj_buf_fini(&nm.name);
}

/* A whole request answered with another status than 200. */
static void http_failed(struct out_es *o, struct slot *s, struct host *h, long status,
                        struct doc *docs)
{
    char why[300];

    tj_es_result_reason(s, why, sizeof(why));
    ctr_add(&o->n.requests[REQ_HTTP_ERROR], 1);
    if (status == 401) {
        tj_es_result_problem(
            o, 401, false, TJ_LOG_ERROR,
            "elasticsearch: 401 Unauthorized from %s (check auth.user and its password, "
            "TAILJET_ES_PASSWORD or auth.password_file, or the API key, "
            "TAILJET_ES_API_KEY or auth.api_key_file; documents are held and retried): "
            "%s",
            h->url, why);
        retry_docs(o, docs, true);
    } else if (status == 403) {
        tj_es_result_problem(
            o, 403, false, TJ_LOG_ERROR,
            "elasticsearch: 403 Forbidden from %s (the user lacks a privilege: grant it "
            "create_doc or index, and create_index, on the target indices; documents "
            "are held and retried): %s",
            h->url, why);
        retry_docs(o, docs, true);
    } else if (status == 413 && s->ndocs > 1) {
        size_t was = o->eff_max_bytes, half = s->raw / 2 > 16384 ? s->raw / 2 : 16384;
        o->eff_max_bytes = half < was ? half : was;
        o->cut_ms = now_ms();
        if (o->eff_max_bytes < was)
            tj_log(TJ_LOG_WARN,
                   "elasticsearch: %s refused a request of %llu bytes as too large (413): "
                   "requests are now cut at %zu bytes (lower batch.max_bytes, or raise its "
                   "http.max_content_length)",
                   h->url, (unsigned long long)s->raw, o->eff_max_bytes);
        tj_es_result_requeue_now(o, docs);
    } else if (status == 413) {
        struct tj_buf lines;
        struct tj_es_namer nm;
        tj_es_request_namer_init(&nm);
        tj_buf_init(&lines, SIZE_MAX / 4);
        if (dl_line(o, &lines, &nm, docs, 413,
                    "{\"type\":\"request_entity_too_large\",\"reason\":\"the document alone is "
                    "larger than the server takes (http.max_content_length)\"}") == 0)
            dead_letter(o, docs, 1, &lines, 413, "request_entity_too_large");
        else
            retry_docs(o, docs, true);
        tj_buf_fini(&lines);
        tj_buf_fini(&nm.name);
    } else if (status == 429 || status >= 500) {
        tj_es_result_problem(
            o, (int)status, true, TJ_LOG_WARN,
            "elasticsearch: %ld from %s: %s; its documents are retried with back-off", status,
            h->url, why);
        retry_docs(o, docs, false);
    } else {
        tj_es_result_problem(o, (int)status, false, TJ_LOG_ERROR,
                             "elasticsearch: unexpected %ld from %s/_bulk (documents are held and "
                             "retried): %s",
                             status, h->url, why);
        retry_docs(o, docs, true);
    }
}

static bool all_hosts_down(const struct out_es *o, int64_t now)
{
    for (size_t i = 0; i < o->nhosts; i++)
        if (o->hosts[i].down_until <= now)
            return false;
    return true;
}

/* A request that got no answer: connection refused or dropped, time-out, TLS. */
static void transport_failed(struct out_es *o, struct slot *s, struct host *h, CURLcode rc,
                             struct doc *docs)
{
    const char *e = s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc);
    curl_off_t started = 0; /* 0: the connection was not made (a reused one counts) */
    int64_t now = now_ms();

    ctr_add(&o->n.requests[REQ_TRANSPORT_ERROR], 1);
    curl_easy_getinfo(s->h, CURLINFO_PRETRANSFER_TIME_T, &started);
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_OPERATION_TIMEDOUT:
        if (rc == CURLE_OPERATION_TIMEDOUT && started > 0) {
            tj_es_result_problem(
                o, 1000 + rc, true, TJ_LOG_WARN,
                "elasticsearch: %s did not answer within %u ms (request.timeout); its "
                "documents are retried",
                h->url, o->timeout_ms);
            break;
        }
        h->down_until = now + HOST_DOWN_MS;
        if (h->err != (int)rc) {
            h->err = (int)rc;
            tj_log(TJ_LOG_WARN, "elasticsearch: cannot connect to %s: %s; %s", h->url, e,
                   o->nhosts > 1 ? "the other hosts take its requests, and it is tried again "
                                   "every 5 s"
                                 : "retrying");
        }
        if (all_hosts_down(o, now))
            tj_es_result_problem(o, 1000 + rc, true, TJ_LOG_DEBUG,
                                 "elasticsearch: cannot connect to %s%s: %s", h->url,
                                 o->nhosts > 1 ? " (nor to the other hosts)" : "", e);
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        tj_es_result_problem(
            o, 1000 + rc, false, TJ_LOG_ERROR,
            "elasticsearch: TLS certificate problem with %s (give the CA that signed its "
            "certificate with --es-opt tls.ca_file=PATH, or set "
            "tls.verify_certificate=false to skip the check; documents are held and "
            "retried): %s",
            h->url, e);
        retry_docs(o, docs, true);
        return;
    case CURLE_SSL_CONNECT_ERROR:
        tj_es_result_problem(o, 1000 + rc, false, TJ_LOG_ERROR,
                             "elasticsearch: TLS handshake with %s failed (is it an https port? is "
                             "tls.ca_file right? documents are held and retried): %s",
                             h->url, e);
        retry_docs(o, docs, true);
        return;
    default:
        tj_es_result_problem(o, 1000 + rc, true, TJ_LOG_WARN,
                             "elasticsearch: request to %s failed: %s; its documents are retried",
                             h->url, e);
        break;
    }
    retry_docs(o, docs, false);
}

void tj_es_result_done(struct out_es *o, struct slot *s, CURLcode rc)
{
    struct host *h = &o->hosts[s->host];
    struct doc *docs = s->head;
    long status = 0;

    curl_multi_remove_handle(o->multi, s->h);
    s->busy = false;
    s->head = NULL;
    o->busy--;
    __atomic_store_n(&o->busy_gauge, o->busy, __ATOMIC_RELAXED);
    for (struct doc *d = docs; d; d = d->next) { /* held again below if refused again */
        if (d->held) {
            d->held = false;
            o->nheld--;
        }
    }
    if (rc != CURLE_OK) {
        transport_failed(o, s, h, rc, docs);
        return;
    }
    if (h->err) {
        tj_log(TJ_LOG_INFO, "elasticsearch: %s answers again", h->url);
        h->err = 0;
    }
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
    if (status == 200)
        answer_items(o, s, h, docs);
    else
        http_failed(o, s, h, status, docs);
}
