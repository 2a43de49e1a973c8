/* tj_es_out.h: the state of one Elasticsearch output (struct out_es) and what moves through it
 * (documents, the batch trackers they belong to, pieces of request bodies, request slots), shared
 * by the output's modules and by nothing else: tj_out_es.c (the interface: create, submit, flush,
 * destroy, metrics), tj_es_opts.c (options and configuration), tj_es_request.c (index names,
 * pieces, request bodies), tj_es_loop.c (the output thread's curl multi loop) and tj_es_result.c
 * (per-item results: acknowledgements, retries, dead letters, problems).
 *
 * Who touches what is written per group of fields in struct out_es: configuration is set in create
 * and read-only afterwards; "shared, under lock" is taken with o->lock from any thread; "atomic"
 * fields are read and written with __atomic builtins; "output thread" fields belong to the thread
 * that runs tj_es_loop_main (and to create/destroy, before it starts and after it is joined). A
 * document (struct doc) lives inside its tracker and is owned by whichever list holds it (a
 * piece, a slot, the retry list) until it is finished; a piece is owned by the list it is on. */
#ifndef TJ_ES_OUT_H
#define TJ_ES_OUT_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#ifdef TJ_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

#include "tj_es_bulk.h"
#include "tj_output.h"

#define MAX_HOSTS     16
#define HOST_DOWN_MS  5000 /* a host that refused a connection is skipped this long */
#define MAX_POOLED_PW 64

struct host {
    char *url;      /* "http://h:9200", for messages */
    char *bulk_url; /* url + "/_bulk?..." */
    int64_t down_until;
    int err; /* the failure last logged for it (a curl code), 0 when it answers */
};

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

/* Milliseconds of the monotonic clock. */
static inline int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Adds v to one of the atomic counters. */
static inline void ctr_add(uint64_t *c, uint64_t v)
{
    __atomic_add_fetch(c, v, __ATOMIC_RELAXED);
}

#endif
