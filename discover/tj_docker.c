/* tj_docker.c: Docker Engine API over libcurl. Requests are blocking GETs on one easy handle;
 * the event stream runs on a second handle inside a multi handle so the discovery thread can
 * wait on it with a timeout and be woken. Run by the discovery thread only (tj_docker_wakeup
 * excepted). */
#include "tj_docker.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tj_buf.h"

#define MAX_ANSWER ((size_t)64 << 20)
#define MAX_EVENT  ((size_t)1 << 20)

struct tj_docker {
    char *socket;   /* unix socket path, or NULL */
    char base[512]; /* "http://localhost" or "http://HOST:PORT" */
    char api[32];   /* "/v1.41", or "" before negotiation */
    CURL *req;
    CURLM *multi;
    CURL *events;
    struct tj_buf answer, stream;
    tj_docker_event_fn fn;
    void *fn_arg;
    bool stream_too_long;
};

struct tj_docker *tj_docker_create(const char *host, char *err, size_t errlen)
{
    struct tj_docker *d = calloc(1, sizeof(*d));
    static const char unix_prefix[] = "unix://";

    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (strncmp(host, unix_prefix, strlen(unix_prefix)) == 0) {
        d->socket = strdup(host + strlen(unix_prefix));
        snprintf(d->base, sizeof(d->base), "http://localhost");
    } else if (strncmp(host, "tcp://", 6) == 0 || strncmp(host, "http://", 7) == 0) {
        snprintf(d->base, sizeof(d->base), "http://%s", strstr(host, "://") + 3);
    } else {
        snprintf(err, errlen,
                 "--docker-host %s: use unix:///var/run/docker.sock or tcp://HOST:PORT", host);
        free(d);
        return NULL;
    }
    d->req = curl_easy_init();
    d->multi = curl_multi_init();
    tj_buf_init(&d->answer, MAX_ANSWER);
    tj_buf_init(&d->stream, MAX_EVENT);
    if (!d->req || !d->multi || (host[0] == 'u' && !d->socket)) {
        snprintf(err, errlen, "out of memory");
        tj_docker_destroy(d);
        return NULL;
    }
    return d;
}

void tj_docker_destroy(struct tj_docker *d)
{
    if (!d)
        return;
    tj_docker_events_close(d);
    if (d->req)
        curl_easy_cleanup(d->req);
    if (d->multi)
        curl_multi_cleanup(d->multi);
    tj_buf_fini(&d->answer);
    tj_buf_fini(&d->stream);
    free(d->socket);
    free(d);
}

static size_t on_answer(char *p, size_t size, size_t n, void *arg)
{
    struct tj_buf *b = arg;
    return tj_buf_append(b, p, size * n) == 0 ? size * n : 0;
}

static void setup(struct tj_docker *d, CURL *h, const char *url)
{
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (d->socket)
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, d->socket);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
}

int tj_docker_get(struct tj_docker *d, const char *path, cJSON **out, long *status, char *err,
                  size_t errlen)
{
    char url[2048];
    CURLcode rc;

    *out = NULL;
    *status = 0;
    snprintf(url, sizeof(url), "%s%s%s", d->base, d->api, path);
    curl_easy_reset(d->req);
    setup(d, d->req, url);
    curl_easy_setopt(d->req, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(d->req, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(d->req, CURLOPT_WRITEDATA, &d->answer);
    d->answer.len = 0;
    rc = curl_easy_perform(d->req);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "GET %s: %s", path, curl_easy_strerror(rc));
        return TJ_EIO;
    }
    curl_easy_getinfo(d->req, CURLINFO_RESPONSE_CODE, status);
    if (*status == 404)
        return TJ_ENOENT;
    if (*status < 200 || *status > 299) {
        snprintf(err, errlen, "GET %s: HTTP %ld: %.*s", path, *status,
                 (int)(d->answer.len > 300 ? 300 : d->answer.len),
                 d->answer.data ? d->answer.data : "");
        return TJ_EIO;
    }
    *out = cJSON_ParseWithLength(d->answer.data ? d->answer.data : "", d->answer.len);
    if (!*out) {
        snprintf(err, errlen, "GET %s: the answer is not JSON", path);
        return TJ_EIO;
    }
    return 0;
}

int tj_docker_negotiate(struct tj_docker *d, char *version, size_t vlen, char *api, size_t alen,
                        char *err, size_t errlen)
{
    cJSON *v;
    const cJSON *av, *ev;
    long status;
    int rc;

    d->api[0] = '\0';
    if ((rc = tj_docker_get(d, "/version", &v, &status, err, errlen)))
        return TJ_EIO;
    av = cJSON_GetObjectItemCaseSensitive(v, "ApiVersion");
    ev = cJSON_GetObjectItemCaseSensitive(v, "Version");
    if (!cJSON_IsString(av) || strlen(av->valuestring) > 16) {
        snprintf(err, errlen, "GET /version: no ApiVersion: is this a Docker engine?");
        cJSON_Delete(v);
        return TJ_EIO;
    }
    /* The engine's own version: every endpoint used here exists since 1.24 and is unchanged up
     * to current engines, which refuse clients older than their minimum. */
    snprintf(d->api, sizeof(d->api), "/v%s", av->valuestring);
    snprintf(api, alen, "%s", av->valuestring);
    snprintf(version, vlen, "%s", cJSON_IsString(ev) ? ev->valuestring : "?");
    cJSON_Delete(v);
    return 0;
}

/* Splits the stream into lines, one JSON object each. */
static size_t on_events(char *p, size_t size, size_t n, void *arg)
{
    struct tj_docker *d = arg;
    size_t len = size * n, start = 0;
    char *nl;

    if (tj_buf_append(&d->stream, p, len)) {
        d->stream.len = 0; /* an event over 1 MiB: not Docker's; skip it */
        d->stream_too_long = true;
        return len;
    }
    while ((nl = memchr(d->stream.data + start, '\n', d->stream.len - start))) {
        size_t k = (size_t)(nl - d->stream.data);
        cJSON *ev = cJSON_ParseWithLength(d->stream.data + start, k - start);
        if (ev) {
            d->fn(d->fn_arg, ev);
            cJSON_Delete(ev);
        }
        start = k + 1;
    }
    memmove(d->stream.data, d->stream.data + start, d->stream.len - start);
    d->stream.len -= start;
    return len;
}

int tj_docker_events_open(struct tj_docker *d, char *err, size_t errlen)
{
    char url[1024];

    tj_docker_events_close(d);
    d->events = curl_easy_init();
    if (!d->events) {
        snprintf(err, errlen, "out of memory");
        return TJ_ENOMEM;
    }
    /* filters={"type":["container","service"]} */
    snprintf(url, sizeof(url),
             "%s%s/events?filters=%%7B%%22type%%22%%3A%%5B%%22container%%22%%2C"
             "%%22service%%22%%5D%%7D",
             d->base, d->api);
    setup(d, d->events, url);
    curl_easy_setopt(d->events, CURLOPT_WRITEFUNCTION, on_events);
    curl_easy_setopt(d->events, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(d->events, CURLOPT_TCP_KEEPALIVE, 1L);
    d->stream.len = 0;
    curl_multi_add_handle(d->multi, d->events);
    return 0;
}

int tj_docker_events_poll(struct tj_docker *d, unsigned timeout_ms, tj_docker_event_fn fn,
                          void *arg, char *err, size_t errlen)
{
    int running = 0, left;
    CURLMsg *m;

    if (!d->events) {
        snprintf(err, errlen, "the event stream is not open");
        return TJ_EIO;
    }
    d->fn = fn;
    d->fn_arg = arg;
    curl_multi_poll(d->multi, NULL, 0, (int)timeout_ms, NULL);
    curl_multi_perform(d->multi, &running);
    while ((m = curl_multi_info_read(d->multi, &left))) {
        if (m->msg == CURLMSG_DONE) {
            long status = 0;
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            snprintf(err, errlen, "the event stream ended: %s (HTTP %ld)",
                     curl_easy_strerror(m->data.result), status);
            return TJ_EIO;
        }
    }
    if (!running) {
        snprintf(err, errlen, "the event stream ended");
        return TJ_EIO;
    }
    return 0;
}

void tj_docker_events_close(struct tj_docker *d)
{
    if (!d->events)
        return;
    curl_multi_remove_handle(d->multi, d->events);
    curl_easy_cleanup(d->events);
    d->events = NULL;
}

void tj_docker_wakeup(struct tj_docker *d)
{
    curl_multi_wakeup(d->multi);
}
