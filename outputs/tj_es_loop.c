/* tj_es_loop.c: the Elasticsearch output's thread and its curl multi loop (see tj_es_loop.h).
 * Everything here runs on the output thread, but tj_es_loop_slot_init (create, main thread). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tj_es_loop.h"
#include "tj_es_request.h"
#include "tj_es_result.h"
#include "tj_log.h"

#define ANSWER_MAX (64u << 20) /* a longer answer is cut off: its request is retried */

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
        if (!tj_es_request_fill(o, s))
            return;
        s->host = hi;
        s->answer.len = 0;
        s->errbuf[0] = '\0';
        curl_easy_setopt(s->h, CURLOPT_URL, o->hosts[hi].bulk_url);
        curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, s->body.data);
        curl_easy_setopt(s->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->body.len);
        if (curl_multi_add_handle(o->multi, s->h) != CURLM_OK) {
            tj_es_result_requeue_now(o, s->head);
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
        tj_es_result_clear(o, &o->hosts[hi]);
        return;
    }
    if (rc != CURLE_OK) {
        snprintf(why, sizeof(why), "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
        if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
            o->hosts[hi].down_until = now + (o->nhosts > 1 ? HOST_DOWN_MS : 0);
    } else {
        struct slot tmp = {.answer = answer};
        tj_es_result_reason(&tmp, why, sizeof(why));
    }
    tj_buf_fini(&answer);
    o->tpl_due = now + tj_es_result_backoff(o, ++o->tpl_attempts, false);
    /* 4xx but 408 and 429: the template or the privileges are wrong, not the moment */
    tj_es_result_problem(
        o, rc != CURLE_OK ? 1000 + (int)rc : (int)status,
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

void *tj_es_loop_main(void *arg)
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
            tj_es_result_requeue_due(o, now);
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
            tj_es_result_done(o, s, rc);
        }
    }
    return NULL;
}

int tj_es_loop_slot_init(struct out_es *o, struct slot *s)
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
