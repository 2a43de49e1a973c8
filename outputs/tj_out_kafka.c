/* tj_out_kafka.c: the kafka://HOST:PORT[,HOST:PORT...]/TOPIC output on librdkafka.
 *
 * Each record is one message, produced straight from the batch's memory (no copy): value = the
 * JSON record without its '\n', key = the batch's key (the container id), topic = the batch's
 * logTopic or the URI's. A batch is acknowledged to the engine when the delivery reports of all
 * its messages are in. Defaults are safe: idempotence (acks=all), lz4, and no message time-out,
 * so librdkafka never drops what the brokers have not taken. A full local queue is
 * back-pressure: submit remembers where it stopped and answers TJ_EAGAIN. A message that fails
 * for good (authorization, unknown topic) is held and produced again every few seconds, and the
 * cause is logged once per topic. A message set the broker refuses as too large (the topic's
 * max.message.bytes) is produced again one message per request, through a second producer made
 * for that (batch.num.messages=1): what the broker still refuses alone goes to the dead-letter
 * file with the broker's reason, and is counted.
 *
 * Threads: workers call submit (librdkafka's produce is thread-safe); one poll thread of this
 * output serves delivery reports, retries and the dead-letter file; librdkafka runs its own
 * broker threads. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tj_json.h"
#include "tj_log.h"
#include "tj_output.h"

#define RETRY_MS  2000
#define POLL_MS   100
#define DL_LOG_MS 10000 /* dead letters are reported at most this often */

struct topic {
    char *name;
    size_t len;
    rd_kafka_topic_t *rkt;
    rd_kafka_topic_t *rkt1; /* the same topic of the one-at-a-time producer (poll thread) */
    int last_err; /* the last error logged for this topic (logged again when it changes) */
};

/* A message that failed for good: produced again later from the batch's memory. */
struct held {
    struct tj_batch *b;
    struct topic *t;
    const char *ptr;
    size_t len;
    size_t fit; /* the broker refused its size: produce it cut to this many bytes (0: as is) */
    char *own;  /* ptr's copy when it was itself a cut copy (librdkafka frees those), or NULL */
    bool said;  /* that it cannot be made small enough was logged */
    bool alone; /* refused in a message set too large: produced again one per request */
    struct held *next;
};

struct out_kafka {
    rd_kafka_t *rk;
    char *topic; /* the URI's */
    tj_ack_fn ack;
    void *ack_arg;
    pthread_mutex_t lock;  /* topics, held */
    struct topic **topics; /* every topic used so far (a logTopic label each): no cap */
    size_t ntopics, cap_topics;
    struct held *held, *held_tail; /* in the order the records were produced */
    pthread_t poller;
    bool stop; /* atomic */
    bool down_said;
    size_t max_bytes;   /* message.max.bytes: a longer record is cut to fit */
    uint64_t truncated; /* records cut to fit (atomic) */
    /* The one-at-a-time producer (batch.num.messages=1) for records refused in a message set
     * too large: made by the poll thread at the first such refusal from conf1 (atomic). */
    rd_kafka_conf_t *conf1;
    rd_kafka_t *rk1;
    /* Dead letters: records the broker refuses alone as too large (poll thread). */
    char *dl_path;
    int dl_fd;
    uint64_t dead; /* atomic */
    uint64_t dl_unlogged;
    int64_t dl_logged_ms;
    /* SASL authentication fails: said once, the reason for /health (under lock). */
    bool auth_said;
    char auth_why[256];
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Produces a copy of the record p[0..len) cut to at most `fit` bytes: its "message" is
 * shortened (on a UTF-8 boundary) and "_truncated" joins its tags, so the record still says
 * what it was and that it is not whole. librdkafka frees the copy after delivery. Returns
 * librdkafka's error (0: produced). */
static rd_kafka_resp_err_t produce_cut(struct out_kafka *o, struct topic *t, struct tj_batch *b,
                                       const char *p, size_t len, size_t fit)
{
    cJSON *j = cJSON_ParseWithLength(p, len), *msg, *tags;
    char *out = NULL;

    if (!j)
        return RD_KAFKA_RESP_ERR__BAD_MSG;
    msg = cJSON_GetObjectItemCaseSensitive(j, "message");
    tags = cJSON_GetObjectItemCaseSensitive(j, "tags");
    if (!cJSON_IsArray(tags))
        tags = cJSON_AddArrayToObject(j, "tags");
    if (tags)
        cJSON_AddItemToArray(tags, cJSON_CreateString("_truncated"));
    for (size_t keep = cJSON_IsString(msg) ? strlen(msg->valuestring) : 0;;) {
        free(out);
        out = cJSON_PrintUnformatted(j);
        if (!out || strlen(out) <= fit || keep == 0)
            break;
        keep = keep / 2;
        msg->valuestring[tj_utf8_cut(msg->valuestring, keep)] = '\0';
    }
    cJSON_Delete(j);
    if (!out || strlen(out) > fit) {
        free(out);
        return RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE; /* its fields alone are too large */
    }
    if (rd_kafka_produce(t->rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_FREE, out, strlen(out),
                         b->key.len ? b->key.ptr : NULL, b->key.len, b) != 0) {
        rd_kafka_resp_err_t e = rd_kafka_last_error();
        free(out);
        return e;
    }
    __atomic_add_fetch(&o->truncated, 1, __ATOMIC_RELAXED);
    return 0;
}

static void batch_release(struct out_kafka *o, struct tj_batch *b)
{
    if (__atomic_sub_fetch(&b->out_pending, 1, __ATOMIC_ACQ_REL) == 0)
        o->ack(o->ack_arg, b, 0);
}

/* The topic named name[0..n), made on first use. NULL when out of memory. */
static struct topic *topic_get(struct out_kafka *o, const char *name, size_t n)
{
    struct topic *t = NULL;

    pthread_mutex_lock(&o->lock);
    for (size_t i = 0; i < o->ntopics; i++) {
        if (o->topics[i]->len == n && memcmp(o->topics[i]->name, name, n) == 0) {
            t = o->topics[i];
            break;
        }
    }
    if (!t && o->ntopics == o->cap_topics) {
        size_t cap = o->cap_topics ? 2 * o->cap_topics : 16;
        struct topic **grown = realloc(o->topics, cap * sizeof(*grown));
        if (grown) {
            o->topics = grown;
            o->cap_topics = cap;
        }
    }
    if (!t && o->ntopics < o->cap_topics && (t = calloc(1, sizeof(*t)))) {
        t->name = strndup(name, n);
        t->len = n;
        t->rkt = t->name ? rd_kafka_topic_new(o->rk, t->name, NULL) : NULL;
        if (t->rkt) {
            o->topics[o->ntopics++] = t;
        } else {
            free(t->name);
            free(t);
            t = NULL;
        }
    }
    pthread_mutex_unlock(&o->lock);
    return t;
}

/* Appends the dead-letter line of m (when, topic, key, the broker's reason, size, the record)
 * to the dead-letter file, opened on first use, and fsyncs it. Returns 0, or an errno value
 * with the file as it was (the record is then held and tried again). Poll thread. */
static int dead_letter(struct out_kafka *o, const rd_kafka_message_t *m)
{
    struct tj_buf line;
    struct stat st;
    char now[40];
    const char *topic = rd_kafka_topic_name(m->rkt), *why = rd_kafka_err2str(m->err);
    size_t done = 0;
    int e = 0;
    int64_t t;

    tj_buf_init(&line, m->len + 1024);
    tj_time_now(now, sizeof(now));
    if (tj_buf_printf(&line, "{\"@timestamp\":\"%s\",\"topic\":", now) ||
        tj_json_string(&line, topic, strlen(topic)) || tj_buf_append(&line, ",\"key\":", 7) ||
        tj_json_string(&line, m->key ? m->key : "", m->key ? m->key_len : 0) ||
        tj_buf_append(&line, ",\"error\":", 9) || tj_json_string(&line, why, strlen(why)) ||
        tj_buf_printf(&line, ",\"bytes\":%zu,\"record\":", m->len) ||
        tj_buf_append(&line, m->payload, m->len) || tj_buf_append(&line, "}\n", 2)) {
        tj_buf_fini(&line);
        return ENOMEM;
    }
    if (o->dl_fd < 0)
        o->dl_fd = open(o->dl_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (o->dl_fd < 0 || fstat(o->dl_fd, &st) != 0)
        e = errno;
    while (!e && done < line.len) {
        ssize_t n = write(o->dl_fd, line.data + done, line.len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            e = n < 0 ? errno : EIO;
        else
            done += (size_t)n;
    }
    if (!e && fdatasync(o->dl_fd) != 0)
        e = errno;
    if (e && o->dl_fd >= 0 && done && ftruncate(o->dl_fd, st.st_size) != 0)
        tj_log(TJ_LOG_ERROR, "kafka: cannot cut %s back to %lld bytes: %s", o->dl_path,
               (long long)st.st_size, strerror(errno));
    tj_buf_fini(&line);
    if (e) {
        tj_log(TJ_LOG_ERROR,
               "kafka: cannot write the dead-letter file %s: %s; the record the broker refused "
               "is held (set --kafka-opt dead_letter_file=PATH)",
               o->dl_path, strerror(e));
        return e;
    }
    __atomic_add_fetch(&o->dead, 1, __ATOMIC_RELAXED);
    o->dl_unlogged++;
    t = now_ms();
    if (!o->dl_logged_ms || t - o->dl_logged_ms >= DL_LOG_MS) {
        tj_log(TJ_LOG_WARN,
               "kafka: %llu records the brokers refused for good (the last: topic %s, %zu bytes: "
               "%s) were written to %s",
               (unsigned long long)o->dl_unlogged, topic, m->len, why, o->dl_path);
        o->dl_unlogged = 0;
        o->dl_logged_ms = t;
    }
    return 0;
}

/* Delivery report (poll thread). */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct out_kafka *o = opaque;
    struct tj_batch *b = m->_private;
    struct held *h;

    if (!m->err) {
        batch_release(o, b);
        return;
    }
    if (rk != o->rk && m->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && dead_letter(o, m) == 0) {
        batch_release(o, b); /* refused alone: in the dead-letter file, acknowledged */
        return;
    }
    /* Failed for good (idempotence and no time-out leave only those): hold it, in order, and
     * say why once per topic and cause. A broker refuses a message set larger than the topic's
     * max.message.bytes: its records are produced again one per request. */
    h = calloc(1, sizeof(*h));
    pthread_mutex_lock(&o->lock);
    for (size_t i = 0; i < o->ntopics; i++) {
        struct topic *t = o->topics[i];
        bool too_large = m->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE;
        if (t->rkt != m->rkt && t->rkt1 != m->rkt)
            continue;
        if (__atomic_exchange_n(&t->last_err, (int)m->err, __ATOMIC_ACQ_REL) != (int)m->err)
            tj_log(TJ_LOG_ERROR,
                   "kafka: topic %s: %s; its records are held and produced again "
                   "every %d s%s%s",
                   t->name, rd_kafka_err2str(m->err), RETRY_MS / 1000,
                   too_large ? ", one per request; one the broker refuses alone goes to "
                               "the dead-letter file "
                             : "",
                   too_large ? o->dl_path : "");
        if (h) {
            const char *p = m->payload;
            bool in_batch = p >= b->records.data && p < b->records.data + b->records.len;
            char *own = in_batch ? NULL : malloc(m->len);
            if (in_batch || own) {
                if (own)
                    memcpy(own, p, m->len);
                *h = (struct held){b, t, own ? own : p, m->len, 0, own, false, too_large, NULL};
                if (o->held_tail)
                    o->held_tail->next = h;
                else
                    o->held = h;
                o->held_tail = h;
                h = NULL;
            }
        }
    }
    pthread_mutex_unlock(&o->lock);
    if (h) { /* out of memory, or an unknown topic handle: keep the batch unacknowledged */
        free(h);
        tj_log(TJ_LOG_ERROR, "kafka: a failed message could not be held; its batch stays "
                             "unacknowledged and is shipped again at the next start");
    }
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct out_kafka *o = opaque;

    if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION) {
        bool said;
        pthread_mutex_lock(&o->lock);
        said = o->auth_said;
        o->auth_said = true;
        snprintf(o->auth_why, sizeof(o->auth_why), "%s", reason);
        pthread_mutex_unlock(&o->lock);
        if (!said)
            tj_log(TJ_LOG_ERROR,
                   "kafka: the brokers refuse tailjet's credentials: %s; records are held until "
                   "authentication succeeds (check sasl.username, sasl.password, "
                   "sasl.mechanisms in --kafka-opt)",
                   reason);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT ||
        err == RD_KAFKA_RESP_ERR__RESOLVE) {
        bool auth;
        pthread_mutex_lock(&o->lock);
        auth = o->auth_said;
        pthread_mutex_unlock(&o->lock);
        if (!__atomic_exchange_n(&o->down_said, true, __ATOMIC_ACQ_REL) && !auth)
            tj_log(TJ_LOG_WARN,
                   "kafka: cannot reach the brokers: %s; records are held until "
                   "one answers",
                   reason);
        return;
    }
    if (rd_kafka_fatal_error(rk, NULL, 0))
        tj_log(TJ_LOG_ERROR, "kafka: fatal error: %s", reason);
    else
        tj_log(TJ_LOG_WARN, "kafka: %s", reason);
}

/* librdkafka's own log lines go through tj_log (debug: the error callback above says what an
 * operator needs). */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    TJ_UNUSED(rk);
    TJ_UNUSED(level);
    tj_log(TJ_LOG_DEBUG, "kafka: %s: %s", fac, buf);
}

/* The one-at-a-time producer's handle of topic t, both made on first use. NULL when they cannot
 * be made (logged). Poll thread. */
static rd_kafka_topic_t *single_topic(struct out_kafka *o, struct topic *t)
{
    rd_kafka_t *rk1 = __atomic_load_n(&o->rk1, __ATOMIC_ACQUIRE);
    char why[512];

    if (!rk1 && o->conf1) {
        rk1 = rd_kafka_new(RD_KAFKA_PRODUCER, o->conf1, why, sizeof(why));
        if (!rk1) {
            tj_log(TJ_LOG_ERROR, "kafka: cannot make the one-at-a-time producer: %s", why);
            return NULL;
        }
        o->conf1 = NULL; /* rd_kafka_new took it */
        __atomic_store_n(&o->rk1, rk1, __ATOMIC_RELEASE);
    }
    if (rk1 && !t->rkt1) { /* under the lock: delivery reports on other threads compare it */
        rd_kafka_topic_t *rkt1 = rd_kafka_topic_new(rk1, t->name, NULL);
        pthread_mutex_lock(&o->lock);
        t->rkt1 = rkt1;
        pthread_mutex_unlock(&o->lock);
    }
    return t->rkt1;
}

/* Produces held messages again, in their order (poll thread). A record is acknowledged only
 * when it is delivered: one that cannot be made small enough stays held (and its file's
 * checkpoint with it) rather than be lost. */
static void retry_held(struct out_kafka *o)
{
    struct held *h, *next, *keep = NULL, *keep_tail = NULL;

    pthread_mutex_lock(&o->lock);
    h = o->held;
    o->held = o->held_tail = NULL;
    pthread_mutex_unlock(&o->lock);
    for (; h; h = next) {
        rd_kafka_resp_err_t e = 0;
        next = h->next;
        h->next = NULL;
        if (!keep) { /* once one waits, the ones after it wait too: order is kept */
            rd_kafka_topic_t *rkt = h->alone ? single_topic(o, h->t) : h->t->rkt;
            if (!rkt)
                e = RD_KAFKA_RESP_ERR__FAIL; /* no one-at-a-time producer yet: later */
            else if (h->fit)
                e = produce_cut(o, h->t, h->b, h->ptr, h->len, h->fit);
            else if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, h->own ? RD_KAFKA_MSG_F_FREE : 0,
                                      (void *)h->ptr, h->len, h->b->key.len ? h->b->key.ptr : NULL,
                                      h->b->key.len, h->b) != 0)
                e = rd_kafka_last_error();
            if (e == 0) {
                if (!h->fit)
                    h->own = NULL; /* librdkafka frees it after delivery */
                free(h->own);
                free(h);
                continue;
            }
            if ((e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || e == RD_KAFKA_RESP_ERR__BAD_MSG) &&
                !h->said) {
                tj_log(TJ_LOG_ERROR,
                       "kafka: topic %s: a record of %zu bytes cannot be made small enough "
                       "(%zu bytes); it stays held",
                       h->t->name, h->len, h->fit);
                h->said = true;
            }
        }
        if (keep_tail)
            keep_tail->next = h;
        else
            keep = h;
        keep_tail = h;
    }
    if (keep) { /* before what failed meanwhile */
        pthread_mutex_lock(&o->lock);
        keep_tail->next = o->held;
        if (!o->held)
            o->held_tail = keep_tail;
        o->held = keep;
        pthread_mutex_unlock(&o->lock);
    }
}

static void *poll_main(void *arg)
{
    struct out_kafka *o = arg;
    struct timespec last, now;

    clock_gettime(CLOCK_MONOTONIC, &last);
    while (!__atomic_load_n(&o->stop, __ATOMIC_ACQUIRE)) {
        rd_kafka_t *rk1 = __atomic_load_n(&o->rk1, __ATOMIC_ACQUIRE);
        rd_kafka_poll(o->rk, POLL_MS);
        if (rk1)
            rd_kafka_poll(rk1, 0);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - last.tv_sec) * 1000 + (now.tv_nsec - last.tv_nsec) / 1000000 >=
            RETRY_MS) {
            retry_held(o);
            last = now;
            if (rd_kafka_outq_len(o->rk) == 0) { /* delivered again: say it if it happens again */
                __atomic_store_n(&o->down_said, false, __ATOMIC_RELEASE);
                pthread_mutex_lock(&o->lock);
                o->auth_said = false;
                pthread_mutex_unlock(&o->lock);
            }
        }
    }
    return NULL;
}

/* Sets a property; a bad one fails with its name. */
static int set_prop(rd_kafka_conf_t *conf, const char *name, const char *value, char *err,
                    size_t errlen)
{
    char why[256];

    if (rd_kafka_conf_set(conf, name, value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka option %s=%s: %s", name, value, why);
        return TJ_EINVAL;
    }
    return 0;
}

static int kafka_create(const char *uri, const char *const *opts, size_t nopts, tj_ack_fn ack,
                        void *ack_arg, void **state, char *err, size_t errlen)
{
    const char *hosts = uri + strlen("kafka://"), *slash = strchr(hosts, '/');
    struct out_kafka *o;
    rd_kafka_conf_t *conf;
    char servers[1024], why[512];

    if (strncmp(uri, "kafka://", 8) != 0 || !slash || slash == hosts || !slash[1] ||
        (size_t)(slash - hosts) >= sizeof(servers)) {
        snprintf(err, errlen, "output '%s': use kafka://HOST:PORT[,HOST:PORT...]/TOPIC", uri);
        return TJ_EINVAL;
    }
    snprintf(servers, sizeof(servers), "%.*s", (int)(slash - hosts), hosts);
    if (!(o = calloc(1, sizeof(*o))) || !(o->topic = strdup(slash + 1))) {
        free(o);
        snprintf(err, errlen, "out of memory");
        return TJ_ENOMEM;
    }
    o->ack = ack;
    o->ack_arg = ack_arg;
    o->dl_fd = -1;
    pthread_mutex_init(&o->lock, NULL);
    conf = rd_kafka_conf_new();
    if (set_prop(conf, "bootstrap.servers", servers, err, errlen) ||
        set_prop(conf, "enable.idempotence", "true", err, errlen) ||
        set_prop(conf, "compression.type", "lz4", err, errlen) ||
        set_prop(conf, "linger.ms", "50", err, errlen) ||
        set_prop(conf, "batch.num.messages", "100000", err, errlen) ||
        set_prop(conf, "batch.size", "1000000", err, errlen) ||
        set_prop(conf, "reconnect.backoff.max.ms", "1000", err, errlen) ||
        set_prop(conf, "message.timeout.ms", "0", err, errlen) ||
        set_prop(conf, "queue.buffering.max.kbytes", "65536", err, errlen))
        goto fail;
    for (size_t i = 0; i < nopts; i++) {
        const char *eq = strchr(opts[i], '=');
        char name[256];
        if (!eq || eq == opts[i] || (size_t)(eq - opts[i]) >= sizeof(name)) {
            snprintf(err, errlen, "--kafka-opt %s: use NAME=VALUE", opts[i]);
            goto fail;
        }
        snprintf(name, sizeof(name), "%.*s", (int)(eq - opts[i]), opts[i]);
        if (strcmp(name, "dead_letter_file") == 0) { /* ours, not librdkafka's */
            free(o->dl_path);
            if (!(o->dl_path = strdup(eq + 1))) {
                snprintf(err, errlen, "out of memory");
                goto fail;
            }
            continue;
        }
        if (set_prop(conf, name, eq + 1, err, errlen))
            goto fail;
    }
    if (!o->dl_path || !o->dl_path[0]) {
        snprintf(err, errlen, "--kafka-opt dead_letter_file=PATH is needed (tailjet run sets it)");
        goto fail;
    }
    {
        char v[32];
        size_t vn = sizeof(v);
        o->max_bytes = rd_kafka_conf_get(conf, "message.max.bytes", v, &vn) == RD_KAFKA_CONF_OK
                           ? (size_t)strtoull(v, NULL, 10)
                           : 1000000;
        if (o->max_bytes < 4096)
            o->max_bytes = 4096;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_opaque(conf, o);
    o->conf1 = rd_kafka_conf_dup(conf);
    if (!o->conf1 || set_prop(o->conf1, "batch.num.messages", "1", err, errlen) ||
        set_prop(o->conf1, "linger.ms", "0", err, errlen))
        goto fail;
    o->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!o->rk) { /* the configuration is still ours then */
        snprintf(err, errlen, "kafka: %s", why);
        goto fail;
    }
    if (pthread_create(&o->poller, NULL, poll_main, o) != 0) {
        snprintf(err, errlen, "kafka: cannot start the delivery report thread");
        rd_kafka_destroy(o->rk);
        goto fail_conf_taken;
    }
    *state = o;
    return 0;
fail:
    rd_kafka_conf_destroy(conf);
fail_conf_taken:
    if (o->conf1)
        rd_kafka_conf_destroy(o->conf1);
    pthread_mutex_destroy(&o->lock);
    free(o->dl_path);
    free(o->topic);
    free(o);
    return TJ_EINVAL;
}

static int kafka_submit(void *state, struct tj_batch *b)
{
    struct out_kafka *o = state;
    struct tj_slice tn = b->topic.len ? b->topic : (struct tj_slice){o->topic, strlen(o->topic)};
    struct topic *t = topic_get(o, tn.ptr, tn.len);
    const char *p, *end = b->records.data + b->records.len;

    if (!t)
        return TJ_ENOMEM;
    if (!b->out_started) {
        b->out_started = true;
        __atomic_store_n(&b->out_pending, 1, __ATOMIC_RELEASE); /* submit's own token */
    }
    for (p = b->records.data + b->out_done; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        __atomic_add_fetch(&b->out_pending, 1, __ATOMIC_ACQ_REL);
        if (rd_kafka_produce(t->rkt, RD_KAFKA_PARTITION_UA, 0, (void *)p, len,
                             b->key.len ? b->key.ptr : NULL, b->key.len, b) != 0) {
            rd_kafka_resp_err_t e = rd_kafka_last_error();
            __atomic_sub_fetch(&b->out_pending, 1, __ATOMIC_ACQ_REL);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                return TJ_EAGAIN; /* b->out_done says where to go on */
            if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
                __atomic_add_fetch(&b->out_pending, 1, __ATOMIC_ACQ_REL);
                e = produce_cut(o, t, b, p, len, o->max_bytes - 1024);
                if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                    __atomic_sub_fetch(&b->out_pending, 1, __ATOMIC_ACQ_REL);
                    return TJ_EAGAIN;
                }
                if (e) { /* held (never acknowledged undelivered); retried every 2 s */
                    struct held *h = calloc(1, sizeof(*h));
                    tj_log(TJ_LOG_ERROR,
                           "kafka: topic %s: a record of %zu bytes cannot be made small "
                           "enough; it is held",
                           t->name, len);
                    if (h) {
                        *h = (struct held){b,    t,    p,     len, o->max_bytes - 1024,
                                           NULL, true, false, NULL};
                        pthread_mutex_lock(&o->lock);
                        if (o->held_tail)
                            o->held_tail->next = h;
                        else
                            o->held = h;
                        o->held_tail = h;
                        pthread_mutex_unlock(&o->lock);
                    } else {
                        __atomic_sub_fetch(&b->out_pending, 1, __ATOMIC_ACQ_REL);
                        return TJ_ENOMEM;
                    }
                } else {
                    tj_log(TJ_LOG_WARN,
                           "kafka: topic %s: a record of %zu bytes is over "
                           "message.max.bytes (%zu): cut to fit, tagged _truncated",
                           t->name, len, o->max_bytes);
                }
                p += len + (nl != NULL);
                b->out_done = (size_t)(p - b->records.data);
                continue;
            }
            if (__atomic_exchange_n(&t->last_err, (int)e, __ATOMIC_ACQ_REL) != (int)e)
                tj_log(TJ_LOG_ERROR, "kafka: cannot produce to %s: %s; retried", t->name,
                       rd_kafka_err2str(e));
            return TJ_EIO;
        }
        p += len + (nl != NULL);
        b->out_done = (size_t)(p - b->records.data);
    }
    batch_release(o, b); /* every message is produced: the token goes */
    return 0;
}

static int kafka_flush(void *state, unsigned timeout_ms)
{
    struct out_kafka *o = state;
    bool held;

    rd_kafka_flush(o->rk, (int)timeout_ms);
    pthread_mutex_lock(&o->lock);
    held = o->held != NULL;
    pthread_mutex_unlock(&o->lock);
    {
        rd_kafka_t *rk1 = __atomic_load_n(&o->rk1, __ATOMIC_ACQUIRE);
        if (rk1 && rd_kafka_outq_len(rk1) > 0)
            held = true; /* its reports come through the poll thread */
    }
    return rd_kafka_outq_len(o->rk) == 0 && !held ? 0 : TJ_EAGAIN;
}

static void kafka_destroy(void *state)
{
    struct out_kafka *o = state;

    if (!o)
        return;
    __atomic_store_n(&o->stop, true, __ATOMIC_RELEASE);
    pthread_join(o->poller, NULL);
    while (o->held) {
        struct held *h = o->held;
        o->held = h->next;
        free(h->own);
        free(h);
    }
    for (size_t i = 0; i < o->ntopics; i++) {
        if (o->topics[i]->rkt1)
            rd_kafka_topic_destroy(o->topics[i]->rkt1);
        rd_kafka_topic_destroy(o->topics[i]->rkt);
        free(o->topics[i]->name);
        free(o->topics[i]);
    }
    free(o->topics);
    if (o->rk1)
        rd_kafka_destroy(o->rk1);
    if (o->conf1)
        rd_kafka_conf_destroy(o->conf1);
    if (o->dl_fd >= 0)
        close(o->dl_fd);
    free(o->dl_path);
    rd_kafka_destroy(o->rk);
    pthread_mutex_destroy(&o->lock);
    free(o->topic);
    free(o);
}

static void kafka_problem(void *state, char *buf, size_t n)
{
    struct out_kafka *o = state;

    if (n)
        buf[0] = '\0';
    pthread_mutex_lock(&o->lock);
    if (o->auth_said)
        snprintf(buf, n, "kafka: authentication fails: %s", o->auth_why);
    pthread_mutex_unlock(&o->lock);
    if (!buf[0] && __atomic_load_n(&o->down_said, __ATOMIC_ACQUIRE))
        snprintf(buf, n, "kafka: the brokers cannot be reached");
    pthread_mutex_lock(&o->lock);
    if (!buf[0] && o->held)
        snprintf(buf, n, "kafka: topic %s refuses records: %s", o->held->t->name,
                 rd_kafka_err2str((rd_kafka_resp_err_t)o->held->t->last_err));
    pthread_mutex_unlock(&o->lock);
}

static void kafka_metrics(void *state, struct tj_buf *b)
{
    struct out_kafka *o = state;

    tj_buf_prom_head(b, "tailjet_output_dead_letters_total", "counter",
                     "Records the brokers refused for good (alone, as too large), written to the "
                     "dead-letter file.");
    tj_buf_printf(b, "tailjet_output_dead_letters_total{output=\"kafka\"} %llu\n",
                  (unsigned long long)__atomic_load_n(&o->dead, __ATOMIC_RELAXED));
    tj_buf_prom_head(b, "tailjet_output_records_truncated_total", "counter",
                     "Records over message.max.bytes, shipped cut to fit and tagged _truncated.");
    tj_buf_printf(b, "tailjet_output_records_truncated_total{output=\"kafka\"} %llu\n",
                  (unsigned long long)__atomic_load_n(&o->truncated, __ATOMIC_RELAXED));
}

const struct tj_output_ops tj_output_kafka = {"kafka", kafka_create,  kafka_submit,  kafka_flush,
                                              NULL,    kafka_problem, kafka_destroy, kafka_metrics};
