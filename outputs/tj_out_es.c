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
 * thread; problem, metrics and flush from any thread. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef TJ_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

#include "tj_es_bulk.h"
#include "tj_json.h"
#include "tj_log.h"
#include "tj_opt.h"
#include "tj_output.h"

#define MAX_HOSTS     16
#define HOST_DOWN_MS  5000        /* a host that refused a connection is skipped this long */
#define SLOW_RETRY_MS 1000        /* the least back-off for a configuration problem */
#define ANSWER_MAX    (64u << 20) /* a longer answer is cut off: its request is retried */
#define DL_LOG_MS     10000       /* dead letters are reported at most this often */
#define BLIP_LOG_MS   10000       /* so are transient failures (429, 5xx, drops, time-outs) */
#define GZIP_LEVEL    1
#define MAX_POOLED_PW 64
#define PASSWORD_MAX  4096
#define TEMPLATE_MAX  (1u << 20) /* an index template file is at most this long */

/* ---- configuration (set in create, read-only afterwards) ---- */

struct es_opts { /* as parsed; strings borrowed from the options during create */
    const char *index;
    bool data_stream;
    size_t max_bytes;
    unsigned regrow_ms;
    unsigned max_docs;
    unsigned concurrency;
    unsigned timeout_ms;
    unsigned backoff_ms, backoff_max_ms;
    const char *compression;
    const char *id;
    const char *pipeline;
    const char *dead_letter_file;
    const char *template_file;
    const char *template_name;
    const char *user;
    const char *password_file;
    const char *api_key_file;
    const char *ca_file;
    bool verify;
    size_t buffer_max;
};

#define OFF(f) offsetof(struct es_opts, f)
static const struct tj_opt es_opt_table[] = {
    {"index", TJ_OPT_STRING, OFF(index), NULL, NULL, "TEMPLATE",
     "index name template for records whose service has no logIndex label (the label is a "
     "template too): %Y %m %d %H from the record's @timestamp in UTC, %{service} (lower case), "
     "%%; the URI's /INDEX sets it too; default logs-%{service}-%Y.%m.%d, and with "
     "data_stream=true logs-%{service}-default",
     NULL},
    {"data_stream", TJ_OPT_FLAG, OFF(data_stream), "false", NULL, "BOOL",
     "write with the create action data streams require (--es-data-stream sets it); a 409 "
     "conflict, the document is already there, counts as delivered",
     "true|false"},
    {"batch.max_bytes", TJ_OPT_SIZE, OFF(max_bytes), "5MiB", NULL, "N",
     "a bulk request holds at most this many bytes of NDJSON (before compression)", NULL},
    {"batch.regrow_after", TJ_OPT_DURATION, OFF(regrow_ms), "30s", NULL, "DUR",
     "after a 413 (request too large) cut requests smaller, their bound doubles again after "
     "this long without another 413, back up to batch.max_bytes",
     NULL},
    {"batch.max_events", TJ_OPT_UINT, OFF(max_docs), "5000", NULL, "N",
     "a bulk request holds at most this many documents", NULL},
    {"request.concurrency", TJ_OPT_UINT, OFF(concurrency), "4", NULL, "N",
     "bulk requests in flight at once, each on its own keep-alive connection", NULL},
    {"request.timeout", TJ_OPT_DURATION, OFF(timeout_ms), "30s", NULL, "DUR",
     "a request not answered by then is given up and its documents are retried", NULL},
    {"retry.initial_backoff", TJ_OPT_DURATION, OFF(backoff_ms), "100ms", NULL, "DUR",
     "the first wait before a document is retried; it doubles at each attempt, with jitter", NULL},
    {"retry.max_backoff", TJ_OPT_DURATION, OFF(backoff_max_ms), "30s", NULL, "DUR",
     "the longest wait between two attempts (documents are retried without limit)", NULL},
    {"compression", TJ_OPT_STRING, OFF(compression), "gzip", NULL, "ALGO",
     "request bodies gzip-compressed (Content-Encoding: gzip) or not", "gzip|none"},
    {"id", TJ_OPT_STRING, OFF(id), "hash", NULL, "MODE",
     "hash: each document's _id is a hash of the record (its path, offset and time), so what is "
     "sent again after a crash overwrites itself instead of duplicating; none: Elasticsearch "
     "makes the ids",
     "hash|none"},
    {"pipeline", TJ_OPT_STRING, OFF(pipeline), NULL, NULL, "NAME",
     "ingest pipeline the documents go through", NULL},
    {"dead_letter_file", TJ_OPT_STRING, OFF(dead_letter_file), NULL, NULL, "PATH",
     "documents Elasticsearch rejects for good (a 400 mapping error, ...) are appended there as "
     "NDJSON with its error, and counted; default STATE-DIR/es-dead-letters.ndjson",
     NULL},
    {"template_file", TJ_OPT_STRING, OFF(template_file), NULL, NULL, "PATH",
     "an index template (JSON; deploy/elasticsearch/tailjet-logs-template.json is tailjet's, "
     "for data streams of ECS records) that tailjet puts into Elasticsearch (PUT "
     "_index_template/NAME) before it sends any document, at every start, as Filebeat's setup "
     "does; documents wait until it is in",
     NULL},
    {"template_name", TJ_OPT_STRING, OFF(template_name), "tailjet-logs", NULL, "NAME",
     "the name template_file is put under", NULL},
    {"auth.user", TJ_OPT_STRING, OFF(user), NULL, "TAILJET_ES_USER", "NAME",
     "basic authentication user; the password comes from TAILJET_ES_PASSWORD or "
     "auth.password_file, never from the command line",
     NULL},
    {"auth.password_file", TJ_OPT_STRING, OFF(password_file), NULL, NULL, "PATH",
     "a file whose first line is the basic authentication password", NULL},
    {"auth.api_key_file", TJ_OPT_STRING, OFF(api_key_file), NULL, NULL, "PATH",
     "a file whose first line is an API key, ID:KEY or its base64 'encoded' form (or "
     "TAILJET_ES_API_KEY); sent as Authorization: ApiKey",
     NULL},
    {"tls.ca_file", TJ_OPT_STRING, OFF(ca_file), NULL, NULL, "PATH",
     "PEM file of the certificate authorities that https:// hosts are checked against (default: "
     "the system's)",
     NULL},
    {"tls.verify_certificate", TJ_OPT_FLAG, OFF(verify), "true", NULL, "BOOL",
     "check the server's certificate and host name; false skips both (said at start)",
     "true|false"},
    {"buffer.max_bytes", TJ_OPT_SIZE, OFF(buffer_max), "64MiB", NULL, "N",
     "records held by the output (sent or waiting) at most: past it, it refuses batches and "
     "reading pauses",
     NULL},
};
#undef OFF

struct host {
    char *url;      /* "http://h:9200", for messages */
    char *bulk_url; /* url + "/_bulk?..." */
    int64_t down_until;
    int err; /* the failure last logged for it (a curl code), 0 when it answers */
};

/* Pieces are deflated by the workers (zlib), unless libdeflate gzips each body whole. */
#ifdef TJ_HAVE_LIBDEFLATE
#define PIECE_GZIP(o) false
#else
#define PIECE_GZIP(o) ((o)->gzip)
#endif

/* ---- what moves through the output ---- */

struct tracker; /* one batch taken */

struct doc {
    struct tracker *t;
    const char *rec; /* in the batch's records, without its '\n' */
    size_t len;
    unsigned attempts;
    bool held;   /* its index refused it (403, 404): a configuration problem */
    int64_t due; /* retry time (ms, monotonic) */
    struct doc *next;
};

struct tracker {
    struct tj_batch *b;
    size_t left; /* documents not finished (output thread) */
    size_t bytes;
    struct tracker *prev, *next; /* live trackers (lock) */
    struct doc docs[];
};

/* Part of a request body: documents' NDJSON, compressed or not. */
struct piece {
    struct tj_buf data;
    uint32_t crc;
    uint64_t raw;
    size_t ndocs;
    struct doc *head, *tail;
    struct piece *next;
};

struct slot { /* one request in flight */
    CURL *h;
    bool busy;
    size_t host;
    struct doc *head;
    size_t ndocs;
    uint64_t raw;
    struct tj_buf body, answer;
    char errbuf[CURL_ERROR_SIZE];
};

enum { REQ_OK, REQ_ITEM_ERRORS, REQ_HTTP_ERROR, REQ_TRANSPORT_ERROR, REQ_N };
static const char *const req_outcomes[REQ_N] = {"ok", "item_errors", "http_error",
                                                "transport_error"};

struct counters { /* atomic */
    uint64_t sent, indexed, conflicts, dead, retried;
    uint64_t requests[REQ_N];
    uint64_t bytes_raw, bytes_sent;
};

struct out_es {
    /* configuration */
    struct host hosts[MAX_HOSTS];
    size_t nhosts;
    char *index; /* the default template */
    bool create, ids, gzip, verify;
    size_t max_bytes, buffer_max;
    unsigned max_docs, concurrency, timeout_ms, backoff_ms, backoff_max_ms, regrow_ms;
    char *dl_path;
    char *tpl_body, *tpl_path, *tpl_name; /* the index template to put in, or NULL */
    char *user, *password, *api_key_header, *ca_file;
    tj_ack_fn ack;
    void *ack_arg;

    /* shared, under lock */
    pthread_mutex_t lock;
    pthread_cond_t idle;        /* broadcast when no tracker is left */
    struct piece *in, *in_tail; /* from submit, for the output thread */
    struct tracker *live;       /* batches taken, not acknowledged */
    size_t ntrackers;
    struct tj_es_piece_writer *pw_pool[MAX_POOLED_PW];
    size_t npw;
    char problem[640]; /* why documents do not flow now, for /health; "" when they do */
    int problem_kind;  /* its kind (HTTP status, 1000 + curl code, ...); 0: none */
    bool stop;

    /* atomic */
    size_t held; /* bytes of records taken, not acknowledged */
    bool reopen;
    unsigned busy_gauge;
    struct counters n;

    /* output thread */
    pthread_t thread;
    bool thread_started;
#ifdef TJ_HAVE_LIBDEFLATE
    struct libdeflate_compressor *ldc; /* gzips each body in one call */
    struct tj_buf plain;               /* the body before that */
#endif
    CURLM *multi;
    struct curl_slist *headers;
    struct slot *slots;
    unsigned busy;
    struct piece *ready, *ready_tail;
    struct doc *retry, *retry_tail; /* waiting for their back-off, in the order they failed */
    int64_t retry_min;
    size_t next_host;
    size_t eff_max_bytes; /* max_bytes, halved after a 413, doubled again after regrow_ms */
    int64_t cut_ms;       /* when eff_max_bytes last changed */
    bool tpl_done;        /* the index template is in (or there is none) */
    int64_t tpl_due;      /* when to try putting it in again */
    unsigned tpl_attempts;
    size_t nheld; /* documents with held set (output thread) */
    struct tj_es_piece_writer pw;
    int dl_fd;
    unsigned seed;
    int64_t dl_logged_ms;
    uint64_t dl_unlogged;
    int said_kind;           /* the configuration problem last logged (0: none since it cleared) */
    int64_t problem_since;   /* when documents stopped flowing */
    int64_t blip_logged_ms;  /* when a transient failure was last logged */
    uint64_t blips_unlogged; /* transient failures not logged since */
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ctr_add(uint64_t *c, uint64_t v)
{
    __atomic_add_fetch(c, v, __ATOMIC_RELAXED);
}

/* ---- problems: shown by /health, logged without flooding ---- */

/* Records why documents do not flow (output thread). A configuration problem (transient false:
 * credentials, privileges, TLS, the dead-letter file) is logged once, until it clears or another
 * one comes; a transient failure (429, 5xx, a dropped connection, a time-out) at most every
 * BLIP_LOG_MS, with the number of those not logged. */
static void set_problem(struct out_es *o, int kind, bool transient, enum tj_log_level level,
                        const char *fmt, ...) TJ_PRINTF(5, 6);
static void set_problem(struct out_es *o, int kind, bool transient, enum tj_log_level level,
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
static void clear_problem(struct out_es *o, const struct host *h)
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

/* ---- index names and pieces ---- */

/* The index of the documents being encoded, kept while template, service and date stay. */
struct namer {
    const char *tpl;
    size_t tn;
    struct tj_slice svc;
    bool dated;
    struct tj_es_date d;
    bool valid;
    struct tj_buf name;
};

static void namer_init(struct namer *nm)
{
    memset(nm, 0, sizeof(*nm));
    tj_buf_init(&nm->name, 64 * 1024);
}

/* The index of doc: its batch's logIndex template, else the output's. Returns the name (in nm)
 * or an empty slice when out of memory. */
static struct tj_slice doc_index(const struct out_es *o, struct namer *nm, const struct doc *d)
{
    const struct tj_batch *b = d->t->b;
    const char *tpl = b->index.len ? b->index.ptr : o->index;
    size_t tn = b->index.len ? b->index.len : strlen(o->index);
    struct tj_es_date date = {0};

    if (!nm->valid || tpl != nm->tpl || tn != nm->tn) {
        nm->dated = tj_es_template_dated(tpl, tn);
        nm->valid = false;
    }
    if (nm->dated && tj_es_record_date(d->rec, d->len, &date) != 0)
        tj_es_date_now(&date);
    if (!nm->valid || tpl != nm->tpl || tn != nm->tn || b->service.ptr != nm->svc.ptr ||
        b->service.len != nm->svc.len || memcmp(&date, &nm->d, sizeof(date)) != 0) {
        nm->name.len = 0;
        if (tj_es_index_expand(&nm->name, tpl, tn, &date, b->service) != 0)
            return (struct tj_slice){"", 0};
        nm->tpl = tpl;
        nm->tn = tn;
        nm->svc = b->service;
        nm->d = date;
        nm->valid = true;
    }
    return (struct tj_slice){nm->name.data, nm->name.len};
}

static void piece_free(struct piece *p)
{
    if (p) {
        tj_buf_fini(&p->data);
        free(p);
    }
}

/* Frees pieces and returns their documents as one list, in order. */
static struct doc *pieces_dissolve(struct piece *p, struct doc *rest)
{
    struct doc *head = NULL, **tail = &head;

    while (p) {
        struct piece *next = p->next;
        if (p->head) {
            *tail = p->head;
            tail = &p->tail->next;
        }
        piece_free(p);
        p = next;
    }
    *tail = rest;
    return head;
}

/* Ends the open piece p: its text is all in its data. Returns 0 or an error. */
static int piece_end(struct tj_es_piece_writer *pw, struct piece *p)
{
    int rc = tj_es_pw_end(pw);

    p->crc = pw->crc;
    p->raw = pw->raw;
    return rc;
}

/* Encodes the documents of the list (taken) into pieces of at most max_bytes of text (a
 * document larger than that alone makes a piece of its own) and max_docs documents each.
 * Returns 0 with the pieces in *first..*last, or an error with every document given back in
 * *undone (in order) and no piece. */
static int build_pieces(const struct out_es *o, struct tj_es_piece_writer *pw, struct doc *list,
                        size_t max_bytes, struct piece **first, struct piece **last,
                        struct doc **undone)
{
    struct piece *head = NULL, *tail = NULL, *p = NULL;
    struct namer nm;
    struct tj_buf act;
    char id[TJ_ES_ID_LEN + 1];
    int rc = 0;

    namer_init(&nm);
    tj_buf_init(&act, 128 * 1024);
    while (list) {
        struct doc *d = list;
        act.len = 0;
        if (o->ids)
            tj_es_doc_id(d->rec, d->len, id);
        if ((rc = tj_es_action(&act, o->create, doc_index(o, &nm, d), o->ids ? id : NULL)))
            break;
        if (p && (pw->raw + act.len + d->len + 1 > max_bytes || p->ndocs >= o->max_docs)) {
            if ((rc = piece_end(pw, p)))
                break;
            p = NULL;
        }
        if (!p) {
            if (!(p = calloc(1, sizeof(*p)))) {
                rc = TJ_ENOMEM;
                break;
            }
            tj_buf_init(&p->data, SIZE_MAX / 4);
            if (tail)
                tail->next = p;
            else
                head = p;
            tail = p;
            if ((rc = tj_es_pw_begin(pw, &p->data)))
                break;
        }
        if ((rc = tj_es_pw_write(pw, act.data, act.len)) ||
            (rc = tj_es_pw_write(pw, d->rec, d->len)) || (rc = tj_es_pw_write(pw, "\n", 1)))
            break;
        list = d->next;
        d->next = NULL;
        if (p->tail)
            p->tail->next = d;
        else
            p->head = d;
        p->tail = d;
        p->ndocs++;
    }
    if (!rc && p)
        rc = piece_end(pw, p);
    tj_buf_fini(&act);
    tj_buf_fini(&nm.name);
    if (rc) {
        *undone = pieces_dissolve(head, list);
        return rc;
    }
    *first = head;
    *last = tail;
    return 0;
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
static unsigned backoff(struct out_es *o, unsigned attempts, bool slow)
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
        d->due = now + backoff(o, d->attempts, slow);
        retry_push(o, d);
        n++;
    }
    ctr_add(&o->n.retried, n);
}

/* Puts documents back to be encoded again at once (no attempt spent). */
static void requeue_now(struct out_es *o, struct doc *list)
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
static void requeue_due(struct out_es *o, int64_t now)
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
    if (build_pieces(o, &o->pw, due, o->eff_max_bytes, &first, &last, &undone) != 0) {
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
static int dl_line(const struct out_es *o, struct tj_buf *out, struct namer *nm,
                   const struct doc *d, int status, const char *error)
{
    char now[40], id[TJ_ES_ID_LEN + 1];
    struct tj_slice index = doc_index(o, nm, d);
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
        set_problem(o, 4, false, TJ_LOG_ERROR,
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
static void answer_reason(const struct slot *s, char *buf, size_t n)
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
    struct namer nm;
    int slow_status = 0, dead_status = 0;
    char slow_why[300] = "", dead_why[300] = "", slow_index[256] = "";

    if (tj_es_bulk_summary(s->answer.data, s->answer.len, &errors, &nitems) != 0 ||
        nitems != s->ndocs) {
        ctr_add(&o->n.requests[REQ_HTTP_ERROR], 1);
        set_problem(o, 3, true, TJ_LOG_WARN,
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
        clear_problem(o, h);
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
    namer_init(&nm);
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
                struct tj_slice ix = doc_index(o, &nm, d);
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
        set_problem(o, KIND_ITEM + slow_status, false, TJ_LOG_ERROR,
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
        clear_problem(o, h);
    }
    tj_buf_fini(&lines);
    tj_buf_fini(&nm.name);
}

/* A whole request answered with another status than 200. */
static void http_failed(struct out_es *o, struct slot *s, struct host *h, long status,
                        struct doc *docs)
{
    char why[300];

    answer_reason(s, why, sizeof(why));
    ctr_add(&o->n.requests[REQ_HTTP_ERROR], 1);
    if (status == 401) {
        set_problem(o, 401, false, TJ_LOG_ERROR,
                    "elasticsearch: 401 Unauthorized from %s (check auth.user and its password, "
                    "TAILJET_ES_PASSWORD or auth.password_file, or the API key, "
                    "TAILJET_ES_API_KEY or auth.api_key_file; documents are held and retried): "
                    "%s",
                    h->url, why);
        retry_docs(o, docs, true);
    } else if (status == 403) {
        set_problem(o, 403, false, TJ_LOG_ERROR,
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
        requeue_now(o, docs);
    } else if (status == 413) {
        struct tj_buf lines;
        struct namer nm;
        namer_init(&nm);
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
        set_problem(o, (int)status, true, TJ_LOG_WARN,
                    "elasticsearch: %ld from %s: %s; its documents are retried with back-off",
                    status, h->url, why);
        retry_docs(o, docs, false);
    } else {
        set_problem(o, (int)status, false, TJ_LOG_ERROR,
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
            set_problem(o, 1000 + rc, true, TJ_LOG_WARN,
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
            set_problem(o, 1000 + rc, true, TJ_LOG_DEBUG,
                        "elasticsearch: cannot connect to %s%s: %s", h->url,
                        o->nhosts > 1 ? " (nor to the other hosts)" : "", e);
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        set_problem(o, 1000 + rc, false, TJ_LOG_ERROR,
                    "elasticsearch: TLS certificate problem with %s (give the CA that signed its "
                    "certificate with --es-opt tls.ca_file=PATH, or set "
                    "tls.verify_certificate=false to skip the check; documents are held and "
                    "retried): %s",
                    h->url, e);
        retry_docs(o, docs, true);
        return;
    case CURLE_SSL_CONNECT_ERROR:
        set_problem(o, 1000 + rc, false, TJ_LOG_ERROR,
                    "elasticsearch: TLS handshake with %s failed (is it an https port? is "
                    "tls.ca_file right? documents are held and retried): %s",
                    h->url, e);
        retry_docs(o, docs, true);
        return;
    default:
        set_problem(o, 1000 + rc, true, TJ_LOG_WARN,
                    "elasticsearch: request to %s failed: %s; its documents are retried", h->url,
                    e);
        break;
    }
    retry_docs(o, docs, false);
}

static void on_done(struct out_es *o, struct slot *s, CURLcode rc)
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

/* ---- requests ---- */

static size_t on_answer(char *p, size_t size, size_t n, void *arg)
{
    struct slot *s = arg;

    return tj_buf_append(&s->answer, p, size * n) == 0 ? size * n : 0; /* 0: curl gives up */
}

static size_t pick_host(struct out_es *o, int64_t now)
{
    for (size_t k = 0; k < o->nhosts; k++) {
        size_t i = (o->next_host + k) % o->nhosts;
        if (o->hosts[i].down_until <= now) {
            o->next_host = i + 1;
            return i;
        }
    }
    return SIZE_MAX;
}

static struct piece *ready_pop(struct out_es *o)
{
    struct piece *p = o->ready;

    o->ready = p->next;
    if (!o->ready)
        o->ready_tail = NULL;
    p->next = NULL;
    return p;
}

#ifdef TJ_HAVE_LIBDEFLATE
/* fill_body with libdeflate: the pieces' text end to end, then gzipped in one call. */
static size_t fill_body_whole(struct out_es *o, struct slot *s)
{
    struct doc **tail = &s->head;
    struct piece *p;
    size_t bound, n;

    o->plain.len = 0;
    while ((p = o->ready)) {
        if (s->ndocs && (s->raw + p->raw > o->eff_max_bytes || s->ndocs + p->ndocs > o->max_docs))
            break;
        if (p->raw > o->eff_max_bytes && p->ndocs > 1) { /* larger than a 413 allows now */
            requeue_now(o, pieces_dissolve(ready_pop(o), NULL));
            continue;
        }
        if (tj_buf_append(&o->plain, p->data.data, p->data.len) != 0)
            break;
        s->raw += p->raw;
        s->ndocs += p->ndocs;
        *tail = p->head;
        tail = &p->tail->next;
        piece_free(ready_pop(o));
    }
    if (!s->ndocs)
        return 0;
    bound = libdeflate_gzip_compress_bound(o->ldc, o->plain.len);
    if (tj_buf_reserve(&s->body, bound) != 0 ||
        !(n = libdeflate_gzip_compress(o->ldc, o->plain.data, o->plain.len, s->body.data, bound))) {
        requeue_now(o, s->head);
        s->head = NULL;
        s->ndocs = 0;
        return 0;
    }
    s->body.len = n;
    return s->ndocs;
}
#endif

/* Lays ready pieces end to end into the slot's body, up to the request's bounds. Returns the
 * number of documents taken (0: none could be, out of memory). */
static size_t fill_body(struct out_es *o, struct slot *s)
{
    uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
    struct doc **tail = &s->head;
    struct piece *p;

    s->body.len = 0;
    s->raw = 0;
    s->ndocs = 0;
    s->head = NULL;
#ifdef TJ_HAVE_LIBDEFLATE
    if (o->gzip)
        return fill_body_whole(o, s);
#endif
    if (o->gzip && tj_es_gzip_head(&s->body) != 0)
        return 0;
    while ((p = o->ready)) {
        if (s->ndocs && (s->raw + p->raw > o->eff_max_bytes || s->ndocs + p->ndocs > o->max_docs))
            break;
        if (p->raw > o->eff_max_bytes && p->ndocs > 1) { /* larger than a 413 allows now */
            requeue_now(o, pieces_dissolve(ready_pop(o), NULL));
            continue;
        }
        if (tj_buf_append(&s->body, p->data.data, p->data.len) != 0)
            break;
        crc = tj_es_crc_combine(crc, p->crc, p->raw);
        s->raw += p->raw;
        s->ndocs += p->ndocs;
        *tail = p->head;
        tail = &p->tail->next;
        piece_free(ready_pop(o));
    }
    if (s->ndocs && o->gzip && tj_es_gzip_tail(&s->body, crc, s->raw) != 0) {
        requeue_now(o, s->head);
        s->head = NULL;
        s->ndocs = 0;
    }
    return s->ndocs;
}

/* Starts requests while a connection is free, a host is up and documents wait. */
static void start_requests(struct out_es *o, int64_t now)
{
    while (o->busy < o->concurrency && o->ready) {
        size_t hi = pick_host(o, now);
        struct slot *s = NULL;
        if (hi == SIZE_MAX)
            return;
        for (unsigned i = 0; i < o->concurrency && !s; i++)
            if (!o->slots[i].busy)
                s = &o->slots[i];
        if (!fill_body(o, s))
            return;
        s->host = hi;
        s->answer.len = 0;
        s->errbuf[0] = '\0';
        curl_easy_setopt(s->h, CURLOPT_URL, o->hosts[hi].bulk_url);
        curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, s->body.data);
        curl_easy_setopt(s->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->body.len);
        if (curl_multi_add_handle(o->multi, s->h) != CURLM_OK) {
            requeue_now(o, s->head);
            s->head = NULL;
            return;
        }
        s->busy = true;
        o->busy++;
        __atomic_store_n(&o->busy_gauge, o->busy, __ATOMIC_RELAXED);
        ctr_add(&o->n.sent, s->ndocs);
        ctr_add(&o->n.bytes_raw, s->raw);
        ctr_add(&o->n.bytes_sent, s->body.len);
    }
}

/* After a 413 cut requests smaller, their bound doubles again once regrow_ms have passed
 * without another 413, back up to batch.max_bytes: a proxy's limit that was raised, or a 413
 * caused by one burst of large documents, does not keep requests small until a restart. */
static void regrow(struct out_es *o, int64_t now)
{
    size_t was = o->eff_max_bytes;

    if (was >= o->max_bytes || now - o->cut_ms < (int64_t)o->regrow_ms)
        return;
    o->eff_max_bytes = was > o->max_bytes / 2 ? o->max_bytes : was * 2;
    o->cut_ms = now;
    tj_log(TJ_LOG_INFO,
           "elasticsearch: no 413 for %.1f s: requests may be %zu bytes again (batch.max_bytes "
           "%zu)",
           (double)o->regrow_ms / 1000.0, o->eff_max_bytes, o->max_bytes);
}

static size_t on_text(char *p, size_t size, size_t n, void *arg)
{
    return tj_buf_append(arg, p, size * n) == 0 ? size * n : 0;
}

/* The connection settings every request of this output shares (the bulk slots' and the
 * template's): timeouts, user agent, basic auth, CA file, certificate checks. */
static void set_conn_opts(const struct out_es *o, CURL *h)
{
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(o->timeout_ms < 10000 ? o->timeout_ms : 10000));
    curl_easy_setopt(h, CURLOPT_USERAGENT, "tailjet/" TJ_VERSION);
    if (o->user) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, o->user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, o->password);
    }
    if (o->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file);
    if (!o->verify) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}

/* Puts the index template of template_file in (PUT _index_template/NAME) before any document
 * is sent, on the first host that is up; tried again with back-off until it is in. Blocks the
 * output thread for one request at most: nothing is in flight yet. */
static void put_template(struct out_es *o, int64_t now)
{
    size_t hi = pick_host(o, now);
    struct curl_slist *hl = NULL, *ok;
    struct tj_buf answer;
    char url[700], why[300], errbuf[CURL_ERROR_SIZE] = "";
    long status = 0;
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    CURL *h;

    if (hi == SIZE_MAX) {
        o->tpl_due = now + 100;
        return;
    }
    tj_buf_init(&answer, 1u << 20);
    snprintf(url, sizeof(url), "%s/_index_template/%s", o->hosts[hi].url, o->tpl_name);
    if ((h = curl_easy_init()) &&
        (ok = hl = curl_slist_append(NULL, "Content-Type: application/json")) &&
        (!o->api_key_header || (ok = curl_slist_append(hl, o->api_key_header)))) {
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, o->tpl_body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(o->tpl_body));
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_text);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &answer);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
        set_conn_opts(o, h);
        rc = curl_easy_perform(h);
        if (rc == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_easy_cleanup(h);
    curl_slist_free_all(hl);
    if (rc == CURLE_OK && status == 200) {
        tj_buf_fini(&answer);
        o->tpl_done = true;
        tj_log(TJ_LOG_INFO, "elasticsearch: index template %s put into %s from %s", o->tpl_name,
               o->hosts[hi].url, o->tpl_path);
        clear_problem(o, &o->hosts[hi]);
        return;
    }
    if (rc != CURLE_OK) {
        snprintf(why, sizeof(why), "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
        if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
            o->hosts[hi].down_until = now + (o->nhosts > 1 ? HOST_DOWN_MS : 0);
    } else {
        struct slot tmp = {.answer = answer};
        answer_reason(&tmp, why, sizeof(why));
    }
    tj_buf_fini(&answer);
    o->tpl_due = now + backoff(o, ++o->tpl_attempts, false);
    /* 4xx but 408 and 429: the template or the privileges are wrong, not the moment */
    set_problem(o, rc != CURLE_OK ? 1000 + (int)rc : (int)status,
                rc != CURLE_OK || status == 408 || status == 429 || status >= 500,
                status >= 400 && status < 500 && status != 408 && status != 429 ? TJ_LOG_ERROR
                                                                                : TJ_LOG_WARN,
                "elasticsearch: cannot put index template %s (template_file %s) into %s: %s%s; "
                "documents wait for it, tried again",
                o->tpl_name, o->tpl_path, o->hosts[hi].url,
                rc != CURLE_OK  ? ""
                : status == 403 ? "403 (the user needs the manage_index_templates "
                                  "cluster privilege) "
                                : "",
                why);
}

/* How long the thread may wait for curl (ms). */
static int next_wait(struct out_es *o, int64_t now)
{
    int64_t t = 1000;

    if (o->retry && o->retry_min - now < t)
        t = o->retry_min - now;
    if (!o->tpl_done && o->tpl_due - now < t)
        t = o->tpl_due - now;
    if (o->ready && o->busy < o->concurrency) { /* no host up, or out of memory */
        int64_t up = INT64_MAX;
        for (size_t i = 0; i < o->nhosts; i++)
            if (o->hosts[i].down_until < up)
                up = o->hosts[i].down_until;
        t = up - now < t ? up - now : t;
        if (t < 10)
            t = 10;
    }
    return t < 0 ? 0 : (int)t;
}

static void *es_main(void *arg)
{
    struct out_es *o = arg;

    for (;;) {
        struct piece *in, *in_tail;
        CURLMsg *m;
        int running, left;
        int64_t now;
        bool stop;

        pthread_mutex_lock(&o->lock);
        in = o->in;
        in_tail = o->in_tail;
        o->in = o->in_tail = NULL;
        stop = o->stop;
        pthread_mutex_unlock(&o->lock);
        if (in) {
            if (o->ready_tail)
                o->ready_tail->next = in;
            else
                o->ready = in;
            o->ready_tail = in_tail;
        }
        if (stop)
            break;
        if (__atomic_exchange_n(&o->reopen, false, __ATOMIC_ACQ_REL) && o->dl_fd >= 0) {
            close(o->dl_fd); /* opened again at the next dead letter */
            o->dl_fd = -1;
        }
        now = now_ms();
        if (o->retry && now >= o->retry_min)
            requeue_due(o, now);
        if (!o->tpl_done && now >= o->tpl_due)
            put_template(o, now);
        regrow(o, now);
        if (o->tpl_done)
            start_requests(o, now);
        curl_multi_poll(o->multi, NULL, 0, next_wait(o, now_ms()), NULL);
        curl_multi_perform(o->multi, &running);
        while ((m = curl_multi_info_read(o->multi, &left))) {
            struct slot *s = NULL;
            CURLcode rc = m->data.result;
            if (m->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            on_done(o, s, rc);
        }
    }
    return NULL;
}

/* ---- options and creation (main thread) ---- */

/* Sets one option from its text. Returns 0 or TJ_EINVAL with err filled. */
static int opt_set(const struct tj_opt *t, struct es_opts *eo, const char *v, char *err,
                   size_t errlen)
{
    char *base = (char *)eo + t->offset, *end;
    unsigned long u;
    const char *c = t->choices;

    if (c) {
        size_t n = strlen(v);
        bool ok = false;
        while (*c && !ok) {
            size_t k = strcspn(c, "|");
            ok = k == n && memcmp(c, v, n) == 0;
            c += k + (c[k] == '|');
        }
        if (!ok) {
            snprintf(err, errlen, "--es-opt %s=%s: use one of %s", t->name, v, t->choices);
            return TJ_EINVAL;
        }
    }
    switch (t->type) {
    case TJ_OPT_STRING:
        *(const char **)base = v;
        return 0;
    case TJ_OPT_FLAG:
        *(bool *)base = strcmp(v, "true") == 0;
        return 0;
    case TJ_OPT_SIZE:
        if (tj_parse_size(v, (size_t *)base) == 0)
            return 0;
        snprintf(err, errlen, "--es-opt %s=%s: not a size (e.g. 5MiB, 512k, 1048576)", t->name, v);
        return TJ_EINVAL;
    case TJ_OPT_DURATION:
        if (tj_parse_duration(v, (unsigned *)base) == 0)
            return 0;
        snprintf(err, errlen, "--es-opt %s=%s: not a duration (e.g. 500ms, 30s, 1m)", t->name, v);
        return TJ_EINVAL;
    case TJ_OPT_UINT:
        errno = 0;
        u = strtoul(v, &end, 10);
        if (*v >= '0' && *v <= '9' && !errno && !*end && u <= 0xFFFFFFFFul) {
            *(unsigned *)base = (unsigned)u;
            return 0;
        }
        snprintf(err, errlen, "--es-opt %s=%s: not a whole number", t->name, v);
        return TJ_EINVAL;
    default:
        break;
    }
    return TJ_EINVAL;
}

static int opts_parse(struct es_opts *eo, const char *const *opts, size_t nopts, char *err,
                      size_t errlen)
{
    memset(eo, 0, sizeof(*eo));
    for (size_t i = 0; i < TJ_ARRAY_LEN(es_opt_table); i++) {
        const struct tj_opt *t = &es_opt_table[i];
        const char *env = t->env ? getenv(t->env) : NULL;
        const char *v = env && *env ? env : t->def;
        if (v && opt_set(t, eo, v, err, errlen))
            return TJ_EINVAL;
    }
    for (size_t i = 0; i < nopts; i++) {
        const char *eq = strchr(opts[i], '=');
        const struct tj_opt *t = NULL;
        size_t n = eq ? (size_t)(eq - opts[i]) : 0;
        if (!eq || n == 0) {
            snprintf(err, errlen, "--es-opt %s: use NAME=VALUE (see tailjet run --help)", opts[i]);
            return TJ_EINVAL;
        }
        if ((n == 13 && memcmp(opts[i], "auth.password", 13) == 0) ||
            (n == 12 && memcmp(opts[i], "auth.api_key", 12) == 0)) {
            snprintf(err, errlen,
                     "--es-opt %.*s: a secret is not taken on the command line (every user sees "
                     "it in ps): put it in a file (%.*s_file=PATH) or in %s",
                     (int)n, opts[i], (int)n, opts[i],
                     n == 13 ? "TAILJET_ES_PASSWORD" : "TAILJET_ES_API_KEY");
            return TJ_EINVAL;
        }
        for (size_t k = 0; k < TJ_ARRAY_LEN(es_opt_table) && !t; k++)
            if (strlen(es_opt_table[k].name) == n && memcmp(es_opt_table[k].name, opts[i], n) == 0)
                t = &es_opt_table[k];
        if (!t) {
            snprintf(err, errlen,
                     "--es-opt %.*s: unknown option (the options are listed by tailjet run "
                     "--help)",
                     (int)n, opts[i]);
            return TJ_EINVAL;
        }
        if (opt_set(t, eo, eq + 1, err, errlen))
            return TJ_EINVAL;
    }
    return 0;
}

/* Reads the first line of a secret's file. Returns it (owned) or NULL with err filled. */
static char *read_secret(const char *opt, const char *path, char *err, size_t errlen)
{
    char buf[PASSWORD_MAX + 2], *copy = NULL;
    FILE *f = fopen(path, "re");
    size_t n;

    if (!f) {
        snprintf(err, errlen, "--es-opt %s=%s: %s", opt, path, strerror(errno));
        return NULL;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (!buf[0] || n > PASSWORD_MAX)
        snprintf(err, errlen, "--es-opt %s=%s: %s", opt, path,
                 buf[0] ? "longer than 4096 bytes" : "its first line is empty");
    else if (!(copy = strdup(buf)))
        snprintf(err, errlen, "out of memory");
    explicit_bzero(buf, sizeof(buf));
    return copy;
}

static char *base64(const char *s)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s), k = 0;
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    const unsigned char *p = (const unsigned char *)s;

    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        out[k++] = b64[v >> 18];
        out[k++] = b64[(v >> 12) & 63];
        out[k++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[k++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[k] = '\0';
    return out;
}

/* Fills the hosts from the URI; *index gets the URI's /INDEX (pointing into uri) or NULL. */
static int parse_uri(struct out_es *o, const char *uri, const char *pipeline, const char **index,
                     char *err, size_t errlen)
{
    static const char usage[] = "use elasticsearch://HOST:PORT[,HOST:PORT...][/INDEX] (or http:// "
                                "or https://)";
    const char *scheme = "http", *p, *slash;
    char *qpipe = NULL;

    if (strncmp(uri, "elasticsearch://", 16) == 0)
        p = uri + 16;
    else if (strncmp(uri, "http://", 7) == 0)
        p = uri + 7;
    else if (strncmp(uri, "https://", 8) == 0)
        p = uri + 8, scheme = "https";
    else
        goto bad;
    slash = strchr(p, '/');
    *index = slash && slash[1] ? slash + 1 : NULL;
    if (!slash)
        slash = p + strlen(p);
    if (slash == p)
        goto bad;
    if (memchr(p, '@', (size_t)(slash - p))) {
        snprintf(err, errlen,
                 "output '%s': credentials do not go in the URI (every user sees it in ps): use "
                 "--es-opt auth.user=NAME with TAILJET_ES_PASSWORD or auth.password_file",
                 uri);
        return TJ_EINVAL;
    }
    if (pipeline) {
        CURL *h = curl_easy_init();
        qpipe = h ? curl_easy_escape(h, pipeline, 0) : NULL;
        curl_easy_cleanup(h);
        if (!qpipe) {
            snprintf(err, errlen, "out of memory");
            return TJ_ENOMEM;
        }
    }
    while (p < slash) {
        const char *comma = memchr(p, ',', (size_t)(slash - p));
        const char *e = comma ? comma : slash;
        size_t n = (size_t)(e - p);
        const char *colon = memrchr(p, ':', n), *rb = memrchr(p, ']', n);
        bool port = colon && (!rb || colon > rb);
        struct host *h = &o->hosts[o->nhosts];
        char url[600];
        if (n == 0 || n > 500 || o->nhosts == MAX_HOSTS || memchr(p, ' ', n) || memchr(p, '?', n) ||
            memchr(p, '#', n)) {
            curl_free(qpipe);
            goto bad;
        }
        snprintf(url, sizeof(url), "%s://%.*s%s", scheme, (int)n, p, port ? "" : ":9200");
        h->url = strdup(url);
        if (h->url &&
            asprintf(&h->bulk_url, "%s/_bulk?filter_path=errors,items.*.status,items.*.error%s%s",
                     url, qpipe ? "&pipeline=" : "", qpipe ? qpipe : "") < 0)
            h->bulk_url = NULL;
        o->nhosts++;
        if (!h->url || !h->bulk_url) {
            curl_free(qpipe);
            snprintf(err, errlen, "out of memory");
            return TJ_ENOMEM;
        }
        p = comma ? comma + 1 : slash;
        if (comma && p == slash) {
            curl_free(qpipe);
            goto bad;
        }
    }
    curl_free(qpipe);
    return 0;
bad:
    snprintf(err, errlen, "output '%s': %s", uri, usage);
    return TJ_EINVAL;
}

/* Checks that the dead-letter file can be written, without making it (its directory may be the
 * state directory, made later by the engine). */
static int check_dl_path(const char *path, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');

    if (access(path, F_OK) == 0) {
        if (access(path, W_OK) == 0)
            return 0;
        snprintf(err, errlen, "dead-letter file %s: %s (set --es-opt dead_letter_file=PATH)", path,
                 strerror(errno));
        return TJ_EINVAL;
    }
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    if (!dir[0])
        snprintf(dir, sizeof(dir), "/");
    if (access(dir, F_OK) != 0 || access(dir, W_OK) == 0)
        return 0; /* missing: the state directory, made later; else writable */
    snprintf(err, errlen,
             "dead-letter file %s: cannot write in %s: %s (set --es-opt "
             "dead_letter_file=PATH)",
             path, dir, strerror(errno));
    return TJ_EINVAL;
}

/* Reads template_file: a JSON object of at most TEMPLATE_MAX bytes. Returns 0 or TJ_EINVAL. */
static int read_template(struct out_es *o, const struct es_opts *eo, char *err, size_t errlen)
{
    FILE *f = fopen(eo->template_file, "rb");
    size_t n = 0;
    cJSON *j;
    char *buf;

    if (!f) {
        snprintf(err, errlen, "elasticsearch: template_file %s: %s", eo->template_file,
                 strerror(errno));
        return TJ_EINVAL;
    }
    if (!(buf = malloc(TEMPLATE_MAX + 1))) {
        fclose(f);
        snprintf(err, errlen, "out of memory");
        return TJ_ENOMEM;
    }
    n = fread(buf, 1, TEMPLATE_MAX + 1, f);
    fclose(f);
    buf[n <= TEMPLATE_MAX ? n : TEMPLATE_MAX] = '\0';
    j = n <= TEMPLATE_MAX ? cJSON_ParseWithLength(buf, n) : NULL;
    if (!cJSON_IsObject(j) || !cJSON_GetObjectItemCaseSensitive(j, "index_patterns")) {
        snprintf(err, errlen,
                 "elasticsearch: template_file %s is not an index template (a JSON object with "
                 "index_patterns, of at most %u bytes)",
                 eo->template_file, TEMPLATE_MAX);
        cJSON_Delete(j);
        free(buf);
        return TJ_EINVAL;
    }
    cJSON_Delete(j);
    if (!eo->template_name[0] || strpbrk(eo->template_name, "/?#%&\"\\ *,") ||
        strlen(eo->template_name) > 255) {
        snprintf(err, errlen, "elasticsearch: template_name '%s' is not a template name",
                 eo->template_name);
        free(buf);
        return TJ_EINVAL;
    }
    o->tpl_body = buf;
    if (!(o->tpl_path = strdup(eo->template_file)) || !(o->tpl_name = strdup(eo->template_name))) {
        snprintf(err, errlen, "out of memory");
        return TJ_ENOMEM;
    }
    return 0;
}

/* The settings that only need the options and the URI. */
static int configure(struct out_es *o, const char *uri, const struct es_opts *eo, char *err,
                     size_t errlen)
{
    const char *uindex = NULL, *tpl;
    const char *env_pw = getenv("TAILJET_ES_PASSWORD"), *env_key = getenv("TAILJET_ES_API_KEY");
    char *key = NULL;
    bool https = false;
    int rc;

    if ((rc = parse_uri(o, uri, eo->pipeline, &uindex, err, errlen)))
        return rc;
    for (size_t i = 0; i < o->nhosts; i++)
        https |= strncmp(o->hosts[i].url, "https:", 6) == 0;
    if (uindex && eo->index) {
        snprintf(err, errlen,
                 "output '%s': give the index in the URI or as --es-opt index=, not "
                 "both",
                 uri);
        return TJ_EINVAL;
    }
    tpl = uindex            ? uindex
          : eo->index       ? eo->index
          : eo->data_stream ? "logs-%{service}-default"
                            : "logs-%{service}-%Y.%m.%d";
    if (tj_es_template_check(tpl, strlen(tpl), err, errlen))
        return TJ_EINVAL;
    if (eo->max_docs == 0 || eo->concurrency == 0 || eo->concurrency > 64 || eo->max_bytes < 1024 ||
        eo->timeout_ms == 0 || eo->backoff_ms == 0 || eo->backoff_max_ms < eo->backoff_ms) {
        snprintf(err, errlen,
                 "--es-opt: batch.max_events must be at least 1, request.concurrency 1 to 64, "
                 "batch.max_bytes at least 1KiB, request.timeout and retry.initial_backoff more "
                 "than 0, retry.max_backoff at least retry.initial_backoff");
        return TJ_EINVAL;
    }
    if (!eo->dead_letter_file) {
        snprintf(err, errlen,
                 "--es-opt dead_letter_file=PATH is needed (tailjet run sets "
                 "STATE-DIR/es-dead-letters.ndjson)");
        return TJ_EINVAL;
    }
    if ((rc = check_dl_path(eo->dead_letter_file, err, errlen)))
        return rc;
    if (eo->ca_file && !https) {
        snprintf(err, errlen, "--es-opt tls.ca_file is given but no host of '%s' is https://", uri);
        return TJ_EINVAL;
    }
    if (eo->ca_file && access(eo->ca_file, R_OK) != 0) {
        snprintf(err, errlen, "--es-opt tls.ca_file=%s: %s", eo->ca_file, strerror(errno));
        return TJ_EINVAL;
    }
    if ((env_pw && *env_pw && eo->password_file) || (env_key && *env_key && eo->api_key_file)) {
        snprintf(err, errlen,
                 "elasticsearch: a secret is given twice, in %s and in a file: give "
                 "one",
                 eo->password_file ? "TAILJET_ES_PASSWORD" : "TAILJET_ES_API_KEY");
        return TJ_EINVAL;
    }
    if (eo->password_file &&
        !(o->password = read_secret("auth.password_file", eo->password_file, err, errlen)))
        return TJ_EINVAL;
    if (!o->password && env_pw && *env_pw && !(o->password = strdup(env_pw)))
        goto nomem;
    if (eo->api_key_file &&
        !(key = read_secret("auth.api_key_file", eo->api_key_file, err, errlen)))
        return TJ_EINVAL;
    if (!key && env_key && *env_key && !(key = strdup(env_key)))
        goto nomem;
    if (o->password && !eo->user) {
        free(key);
        snprintf(err, errlen,
                 "elasticsearch: a password is given but no user: set --es-opt "
                 "auth.user=NAME (or TAILJET_ES_USER)");
        return TJ_EINVAL;
    }
    if (eo->user && !o->password) {
        free(key);
        snprintf(err, errlen,
                 "elasticsearch: auth.user is set but no password: set "
                 "TAILJET_ES_PASSWORD or --es-opt auth.password_file=PATH");
        return TJ_EINVAL;
    }
    if (eo->user && key) {
        free(key);
        snprintf(err, errlen,
                 "elasticsearch: give basic authentication (auth.user) or an API "
                 "key, not both");
        return TJ_EINVAL;
    }
    if (key) {
        char *enc = strchr(key, ':') ? base64(key) : strdup(key);
        explicit_bzero(key, strlen(key));
        free(key);
        if (!enc || asprintf(&o->api_key_header, "Authorization: ApiKey %s", enc) < 0)
            o->api_key_header = NULL;
        if (enc)
            explicit_bzero(enc, strlen(enc));
        free(enc);
        if (!o->api_key_header)
            goto nomem;
    }
    if (!(o->index = strdup(tpl)) || !(o->dl_path = strdup(eo->dead_letter_file)) ||
        (eo->user && !(o->user = strdup(eo->user))) ||
        (eo->ca_file && !(o->ca_file = strdup(eo->ca_file))))
        goto nomem;
    o->create = eo->data_stream;
    o->ids = strcmp(eo->id, "hash") == 0;
    o->gzip = strcmp(eo->compression, "gzip") == 0;
    o->verify = eo->verify;
    if (eo->template_file && (rc = read_template(o, eo, err, errlen)))
        return rc;
    o->tpl_done = !o->tpl_body;
    o->max_bytes = o->eff_max_bytes = eo->max_bytes;
    o->regrow_ms = eo->regrow_ms;
    o->max_docs = eo->max_docs;
    o->concurrency = eo->concurrency;
    o->timeout_ms = eo->timeout_ms;
    o->backoff_ms = eo->backoff_ms;
    o->backoff_max_ms = eo->backoff_max_ms;
    o->buffer_max = eo->buffer_max;
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    return TJ_ENOMEM;
}

static int slot_init(struct out_es *o, struct slot *s)
{
    CURL *h = curl_easy_init();

    if (!h)
        return TJ_ENOMEM;
    s->h = h;
    tj_buf_init(&s->body, SIZE_MAX / 4);
    tj_buf_init(&s->answer, ANSWER_MAX);
    curl_easy_setopt(h, CURLOPT_PRIVATE, (char *)s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, o->headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    set_conn_opts(o, h);
    return 0;
}

static void es_destroy(void *state);

static int es_create(const char *uri, const char *const *opts, size_t nopts, tj_ack_fn ack,
                     void *ack_arg, void **state, char *err, size_t errlen)
{
    struct es_opts eo;
    struct out_es *o;
    struct curl_slist *hl = NULL;
    int rc;

    if ((rc = opts_parse(&eo, opts, nopts, err, errlen)))
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
    if ((rc = configure(o, uri, &eo, err, errlen)))
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
        if (slot_init(o, &o->slots[i]))
            goto fail;
    if (pthread_create(&o->thread, NULL, es_main, o) != 0) {
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
    rc = build_pieces(o, pw, &t->docs[0], o->max_bytes, &first, &last, &undone);
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
        piece_free(p);
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
    .opts = es_opt_table,
    .nopts = TJ_ARRAY_LEN(es_opt_table),
    .opt_flag = "es-opt",
};
