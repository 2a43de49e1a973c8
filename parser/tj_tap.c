/* tj_tap.c: live taps on the records being shipped, and each service's last failures (see
 * tj_tap.h). Workers offer records (tj_tap_offer); HTTP connection threads read taps.
 *
 * Locking: hub->lock guards the tap list, every ring and the failure table. A worker holds it
 * only to copy records into rings that have room (never waiting for a reader: a full ring drops
 * and counts); a reader holds it only to copy out at most its buffer. */
#include "tj_tap.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tj_json.h"

#define MAX_FAIL_SERVICES 512
#define MAX_FAIL_RECORD   4096 /* a failed record kept for the page is cut there */

struct tj_tap {
    struct tj_tap_hub *h;
    char *service[TJ_TAP_MAX_SERVICES];
    size_t nservice;
    char *container;
    bool failures;
    char *ring; /* TJ_TAP_RING_BYTES */
    size_t head, len;
    uint64_t dropped, told; /* records dropped; the count last told to the reader */
    uint64_t written, read; /* bytes put into the ring, and taken out, ever */
    uint64_t drop_at;       /* `written` when the first drop not told yet happened */
    uint64_t records;       /* records put into the ring */
    pthread_cond_t cv;      /* records came, or the hub shuts down */
    struct tj_tap *next;
};

struct svc_fail {
    char *name;
    struct tj_ruleset *rs; /* reference: the rules the last failure was parsed with */
    char *last[TJ_TAP_LAST_FAILURES];
    size_t lastlen[TJ_TAP_LAST_FAILURES];
    unsigned n, pos; /* records kept; next slot */
    struct svc_fail *next;
};

struct tj_tap_hub {
    struct tj_tap_head head; /* first: tj_tap_wanted reads it */
    pthread_mutex_t lock;
    struct tj_tap *taps;
    bool shutdown;
    uint64_t opened, refused, dropped_gone, records_gone; /* counters of closed taps too */
    struct svc_fail *fails;
    size_t nfails;
};

struct tj_tap_hub *tj_tap_hub_create(void)
{
    struct tj_tap_hub *h = calloc(1, sizeof(*h));

    if (!h)
        return NULL;
    pthread_mutex_init(&h->lock, NULL);
    return h;
}

void tj_tap_hub_shutdown(struct tj_tap_hub *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->shutdown = true;
    for (struct tj_tap *t = h->taps; t; t = t->next)
        pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&h->lock);
}

static void svc_fail_free(struct svc_fail *s)
{
    for (unsigned i = 0; i < TJ_TAP_LAST_FAILURES; i++)
        free(s->last[i]);
    tj_ruleset_unref(s->rs);
    free(s->name);
    free(s);
}

void tj_tap_hub_destroy(struct tj_tap_hub *h)
{
    if (!h)
        return;
    while (h->fails) {
        struct svc_fail *s = h->fails;
        h->fails = s->next;
        svc_fail_free(s);
    }
    pthread_mutex_destroy(&h->lock);
    free(h);
}

bool tj_tap_record_failed(const char *rec, size_t len)
{
    static const char key[] = ",\"tags\":[";
    size_t look = len < 256 ? len : 256; /* tags come last: "...,"tags":["_x",...]}" */
    const char *tail = rec + len - look;

    if (len < 2 || rec[len - 1] != '}' || rec[len - 2] != ']')
        return false;
    return memmem(tail, look, key, sizeof(key) - 1) != NULL;
}

/* Whether meta's encoded string k ("\"...\"") is s (or, for an id, starts with it). */
static bool meta_is(const struct tj_meta *meta, enum tj_meta_key k, const char *s, bool prefix)
{
    size_t n = strlen(s), have;
    const char *v;

    if (!meta || !(meta->present & (1u << k)) || meta->len[k] < 2)
        return false;
    v = meta->val[k] + 1;
    have = meta->len[k] - 2;
    if (have && v[0] == '/' && s[0] != '/') {
        v++;
        have--;
    }
    return prefix ? n <= have && memcmp(v, s, n) == 0 : n == have && memcmp(v, s, n) == 0;
}

static bool tap_takes_chunk(const struct tj_tap *t, const char *service, const struct tj_meta *meta)
{
    bool ok = t->nservice == 0;

    for (size_t i = 0; i < t->nservice && !ok; i++)
        ok = strcmp(t->service[i], service) == 0 ||
             meta_is(meta, TJ_META_SERVICE_NAME, t->service[i], false);
    if (ok && t->container)
        ok = meta_is(meta, TJ_META_CONTAINER_NAME, t->container, false) ||
             (strlen(t->container) >= 4 && meta_is(meta, TJ_META_CONTAINER_ID, t->container, true));
    return ok;
}

/* Copies one record (with its '\n') into t's ring, or counts it dropped. Lock held. */
static void ring_put(struct tj_tap *t, const char *rec, size_t n)
{
    size_t tail, first;

    if (t->len + n > TJ_TAP_RING_BYTES) {
        if (t->dropped == t->told)
            t->drop_at = t->written; /* told to the reader once it has read up to here */
        t->dropped++;
        return;
    }
    tail = (t->head + t->len) % TJ_TAP_RING_BYTES;
    first = n < TJ_TAP_RING_BYTES - tail ? n : TJ_TAP_RING_BYTES - tail;
    memcpy(t->ring + tail, rec, first);
    memcpy(t->ring, rec + first, n - first);
    t->len += n;
    t->written += n;
    t->records++;
}

static struct svc_fail *svc_fail_for(struct tj_tap_hub *h, const char *service)
{
    struct svc_fail *s;

    for (s = h->fails; s; s = s->next)
        if (strcmp(s->name, service) == 0)
            return s;
    if (h->nfails >= MAX_FAIL_SERVICES || !(s = calloc(1, sizeof(*s))))
        return NULL;
    if (!(s->name = strdup(service))) {
        free(s);
        return NULL;
    }
    s->next = h->fails;
    h->fails = s;
    h->nfails++;
    return s;
}

/* Keeps the chunk's last failed records (at most TJ_TAP_LAST_FAILURES, looked for from its end,
 * so that a chunk of failures costs a few records' scan, not the chunk's). Lock held. */
static void keep_failures(struct tj_tap_hub *h, const char *service, const struct tj_ruleset *rs,
                          const char *records, size_t len)
{
    const char *found[TJ_TAP_LAST_FAILURES];
    size_t flen[TJ_TAP_LAST_FAILURES], nfound = 0, end = len;
    struct svc_fail *s;

    while (end > 0 && nfound < TJ_TAP_LAST_FAILURES) {
        size_t stop = end - 1; /* the record's '\n' */
        const char *nl = stop ? memrchr(records, '\n', stop) : NULL;
        size_t start = nl ? (size_t)(nl - records) + 1 : 0;
        if (tj_tap_record_failed(records + start, stop - start)) {
            found[nfound] = records + start;
            flen[nfound++] = stop - start;
        }
        end = start;
    }
    if (!nfound || !(s = svc_fail_for(h, service)))
        return;
    if (s->rs != rs) {
        tj_ruleset_unref(s->rs);
        s->rs = tj_ruleset_ref((struct tj_ruleset *)rs);
    }
    while (nfound--) { /* oldest first */
        size_t n = flen[nfound] < MAX_FAIL_RECORD ? flen[nfound] : MAX_FAIL_RECORD;
        char *copy = malloc(n);
        if (!copy)
            return;
        memcpy(copy, found[nfound], n);
        free(s->last[s->pos]);
        s->last[s->pos] = copy;
        s->lastlen[s->pos] = n;
        s->pos = (s->pos + 1) % TJ_TAP_LAST_FAILURES;
        if (s->n < TJ_TAP_LAST_FAILURES)
            s->n++;
    }
}

void tj_tap_offer(struct tj_tap_hub *h, const char *service, const struct tj_ruleset *rs,
                  const struct tj_meta *meta, const char *records, size_t len)
{
    pthread_mutex_lock(&h->lock);
    keep_failures(h, service, rs, records, len);
    for (struct tj_tap *t = h->taps; t; t = t->next) {
        const char *p = records, *end = records + len, *nl;
        uint64_t before = t->records;
        if (!tap_takes_chunk(t, service, meta))
            continue;
        for (; p < end && (nl = memchr(p, '\n', (size_t)(end - p))); p = nl + 1)
            if (!t->failures || tj_tap_record_failed(p, (size_t)(nl - p)))
                ring_put(t, p, (size_t)(nl - p) + 1);
        if (t->records != before)
            pthread_cond_signal(&t->cv);
    }
    pthread_mutex_unlock(&h->lock);
}

static void tap_free(struct tj_tap *t)
{
    for (size_t i = 0; i < t->nservice; i++)
        free(t->service[i]);
    free(t->container);
    free(t->ring);
    pthread_cond_destroy(&t->cv);
    free(t);
}

struct tj_tap *tj_tap_open(struct tj_tap_hub *h, const struct tj_tap_filter *f, int *rc)
{
    struct tj_tap *t = calloc(1, sizeof(*t));
    unsigned n = 0;

    *rc = TJ_ENOMEM;
    if (!t)
        return NULL;
    pthread_cond_init(&t->cv, NULL);
    t->h = h;
    t->failures = f->failures;
    if (!(t->ring = malloc(TJ_TAP_RING_BYTES)) ||
        (f->container && !(t->container = strdup(f->container))))
        goto fail;
    for (size_t i = 0; i < f->nservice && i < TJ_TAP_MAX_SERVICES; i++)
        if (!(t->service[t->nservice++] = strdup(f->service[i])))
            goto fail;
    pthread_mutex_lock(&h->lock);
    for (struct tj_tap *o = h->taps; o; o = o->next)
        n++;
    if (h->shutdown || n >= TJ_TAP_MAX_TAPS) {
        *rc = h->shutdown ? TJ_EIO : TJ_EAGAIN;
        h->refused++;
        pthread_mutex_unlock(&h->lock);
        goto fail;
    }
    t->next = h->taps;
    h->taps = t;
    h->opened++;
    __atomic_store_n(&h->head.active, n + 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&h->lock);
    *rc = 0;
    return t;
fail:
    tap_free(t);
    return NULL;
}

static void deadline_in(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

long tj_tap_read(struct tj_tap *t, char *buf, size_t max, unsigned wait_ms)
{
    struct tj_tap_hub *h = t->h;
    struct timespec until;
    size_t out = 0;

    deadline_in(&until, wait_ms);
    pthread_mutex_lock(&h->lock);
    while (!h->shutdown && t->len == 0 && t->dropped == t->told) {
        if (pthread_cond_timedwait(&t->cv, &h->lock, &until) == ETIMEDOUT)
            break;
    }
    if (h->shutdown) {
        pthread_mutex_unlock(&h->lock);
        return -1;
    }
    while (out < max) {
        size_t n, first;
        if (t->dropped != t->told && t->read == t->drop_at) { /* the drops, where they were */
            char note[64];
            int k = snprintf(note, sizeof(note), "{\"tap\":{\"dropped\":%llu}}\n",
                             (unsigned long long)(t->dropped - t->told));
            if ((size_t)k > max - out)
                break;
            memcpy(buf + out, note, (size_t)k);
            out += (size_t)k;
            t->told = t->dropped;
            continue;
        }
        if (!t->len)
            break;
        n = t->len < max - out ? t->len : max - out;
        if (t->dropped != t->told && t->drop_at - t->read < n)
            n = (size_t)(t->drop_at - t->read);
        first = n < TJ_TAP_RING_BYTES - t->head ? n : TJ_TAP_RING_BYTES - t->head;
        memcpy(buf + out, t->ring + t->head, first);
        memcpy(buf + out + first, t->ring, n - first);
        t->head = (t->head + n) % TJ_TAP_RING_BYTES;
        t->len -= n;
        t->read += n;
        out += n;
    }
    pthread_mutex_unlock(&h->lock);
    return (long)out;
}

void tj_tap_close(struct tj_tap *t)
{
    struct tj_tap_hub *h;
    unsigned n = 0;

    if (!t)
        return;
    h = t->h;
    pthread_mutex_lock(&h->lock);
    for (struct tj_tap **pp = &h->taps; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    for (struct tj_tap *o = h->taps; o; o = o->next)
        n++;
    h->dropped_gone += t->dropped;
    h->records_gone += t->records;
    __atomic_store_n(&h->head.active, n, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&h->lock);
    tap_free(t);
}

void tj_tap_metrics(struct tj_tap_hub *h, struct tj_buf *b)
{
    uint64_t dropped, records, opened, refused;
    unsigned open = 0;

    pthread_mutex_lock(&h->lock);
    dropped = h->dropped_gone;
    records = h->records_gone;
    for (struct tj_tap *t = h->taps; t; t = t->next) {
        dropped += t->dropped;
        records += t->records;
        open++;
    }
    opened = h->opened;
    refused = h->refused;
    pthread_mutex_unlock(&h->lock);
    tj_buf_prom_head(b, "tailjet_taps_open", "gauge", "Taps (GET /v1/tap) connected now.");
    tj_buf_printf(b, "tailjet_taps_open %u\n", open);
    tj_buf_prom_head(b, "tailjet_taps_opened_total", "counter", "Taps opened.");
    tj_buf_printf(b, "tailjet_taps_opened_total %llu\n", (unsigned long long)opened);
    tj_buf_prom_head(b, "tailjet_taps_refused_total", "counter",
                     "Taps refused: too many open at once.");
    tj_buf_printf(b, "tailjet_taps_refused_total %llu\n", (unsigned long long)refused);
    tj_buf_prom_head(b, "tailjet_tap_records_total", "counter", "Records sent into taps' buffers.");
    tj_buf_printf(b, "tailjet_tap_records_total %llu\n", (unsigned long long)records);
    tj_buf_prom_head(b, "tailjet_tap_dropped_total", "counter",
                     "Records a tap missed because it read slower than records came (shipping "
                     "never waits for a tap).");
    tj_buf_printf(b, "tailjet_tap_dropped_total %llu\n", (unsigned long long)dropped);
}

void tj_tap_failures_json(struct tj_tap_hub *h, struct tj_buf *b)
{
    bool first = true;

    pthread_mutex_lock(&h->lock);
    tj_buf_append(b, "{", 1);
    for (struct svc_fail *s = h->fails; s; s = s->next) {
        if (!first)
            tj_buf_append(b, ",", 1);
        first = false;
        tj_json_string(b, s->name, strlen(s->name));
        tj_buf_printf(b, ":{\"patterns\":[");
        for (size_t i = 0; s->rs && i < s->rs->nalt; i++) {
            const char *e = s->rs->alt[i]->expr;
            if (i)
                tj_buf_append(b, ",", 1);
            tj_json_string(b, e, strlen(e));
        }
        tj_buf_printf(b, "],\"last\":[");
        for (unsigned i = 0; i < s->n; i++) {
            unsigned k = (s->pos + TJ_TAP_LAST_FAILURES - s->n + i) % TJ_TAP_LAST_FAILURES;
            if (i)
                tj_buf_append(b, ",", 1);
            tj_json_string(b, s->last[k], s->lastlen[k]); /* a record's text (may be cut) */
        }
        tj_buf_printf(b, "]}");
    }
    tj_buf_append(b, "}", 1);
    pthread_mutex_unlock(&h->lock);
}
