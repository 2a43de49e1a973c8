/* tj_labels.c: the label table hub (see tj_labels.h). Three kinds of threads meet here: the
 * discovery thread (publish on a manager, take on a worker), the HTTP server's connection
 * threads (serve, which may wait for a change) and the follower thread (long polls of the
 * managers' tailjets, on a worker). Everything shared is under `lock`. */
#include "tj_labels.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tj_checkpoint.h"
#include "tj_log.h"

#define POLL_WAIT_S     25 /* how long a manager holds an unchanged long poll */
#define MAX_WAIT_S      60 /* the most a client may ask for */
#define MAX_TABLE_BYTES (16u << 20)
#define MAX_CANDIDATES  64
#define RETRY_MS        1000 /* after every source failed once */
#define CACHE_NAME      "labels.json"

struct candidate {
    size_t src;    /* index in srcs */
    char addr[64]; /* one of its host's addresses */
};

struct src {
    char *url;  /* without a trailing '/' */
    char *host; /* from the URL */
    long port;
};

struct tj_labels {
    char *token, *ca_file, *state_dir;
    struct src *srcs;
    size_t nsrcs;
    pthread_mutex_t lock;
    pthread_cond_t changed; /* the served table changed, or shutdown */
    bool shutdown, manager;
    bool role_known; /* discovery said once whether this node is a manager */
    /* served (manager) */
    char *body; /* the table as JSON, or NULL before discovery published one */
    size_t body_len;
    char version[17];
    uint64_t served, unchanged, refused, unavailable;
    int64_t refusal_said_ms;
    /* followed (worker) */
    pthread_t thread;
    bool started;
    int wake_fd;
    bool stop;
    cJSON *services; /* the last table's services, or NULL */
    char tversion[17];
    uint64_t gen;
    bool cached, connected;
    int64_t table_ms; /* when a source last confirmed the table (or the cache was saved) */
    char source[400], why[700];
    uint64_t errors, updates;
    void (*notify)(void *);
    void *notify_arg;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool tj_labels_is_log_label(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    const char *rest;
    char *end;

    if (strncmp(name, prefix, n) != 0)
        return false;
    rest = name + n;
    if (strcmp(rest, "logPattern") == 0 || strcmp(rest, "logMultiline") == 0 ||
        strcmp(rest, "logTopic") == 0 || strcmp(rest, "logIndex") == 0 ||
        strcmp(rest, "logEcs") == 0 || strcmp(rest, "logPatternDefinitions") == 0 ||
        strcmp(rest, "logTimestamp") == 0)
        return true;
    if (strncmp(rest, "logPattern.", 11) != 0 || rest[11] < '1' || rest[11] > '9')
        return false;
    strtoul(rest + 11, &end, 10);
    return *end == '\0';
}

/* ---- serving (manager) ---- */

void tj_labels_publish(struct tj_labels *h, const cJSON *services)
{
    cJSON *doc = cJSON_CreateObject(), *copy = cJSON_Duplicate(services, 1);
    char *svc_text = cJSON_PrintUnformatted(services), version[17], *text;

    if (!doc || !copy || !svc_text) {
        cJSON_Delete(doc);
        cJSON_Delete(copy);
        free(svc_text);
        tj_log(TJ_LOG_ERROR, "out of memory: the label table is not updated");
        return;
    }
    snprintf(version, sizeof(version), "%016llx",
             (unsigned long long)tj_fileid_hash(svc_text, strlen(svc_text)));
    free(svc_text);
    cJSON_AddStringToObject(doc, "version", version);
    cJSON_AddItemToObject(doc, "services", copy);
    text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (!text) {
        tj_log(TJ_LOG_ERROR, "out of memory: the label table is not updated");
        return;
    }
    pthread_mutex_lock(&h->lock);
    if (h->body && strcmp(h->version, version) == 0) {
        pthread_mutex_unlock(&h->lock);
        free(text);
        return;
    }
    free(h->body);
    h->body = text;
    h->body_len = strlen(text);
    memcpy(h->version, version, sizeof(version));
    pthread_cond_broadcast(&h->changed);
    pthread_mutex_unlock(&h->lock);
    tj_log(TJ_LOG_DEBUG, "label table: version %s published", version);
}

/* Compares the Authorization header with "Bearer TOKEN" in a time that does not depend on
 * where they differ. */
static bool token_ok(const char *auth, const char *token)
{
    size_t n = strlen(token), m;
    unsigned char diff = 0;

    if (!auth || strncmp(auth, "Bearer ", 7) != 0)
        return false;
    auth += 7;
    m = strlen(auth);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(token[i] ^ (i < m ? auth[i] : 0));
    return diff == 0 && m == n;
}

static void json_error(struct tj_buf *body, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    char *text;

    cJSON_AddStringToObject(o, "error", msg);
    text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (text) {
        tj_buf_append(body, text, strlen(text));
        tj_buf_append(body, "\n", 1);
    }
    free(text);
}

static struct timespec deadline_in(unsigned s)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += s;
    return ts;
}

void tj_labels_serve(struct tj_labels *h, const char *auth, const char *version, const char *wait,
                     const char *peer, struct tj_buf *body, int *status, const char **ctype)
{
    *ctype = "application/json";
    if (h->token && !token_ok(auth, h->token)) {
        int64_t now = wall_ms();
        bool say;
        pthread_mutex_lock(&h->lock);
        h->refused++;
        say = now - h->refusal_said_ms >= 10000;
        if (say)
            h->refusal_said_ms = now;
        pthread_mutex_unlock(&h->lock);
        if (say)
            tj_log(TJ_LOG_WARN,
                   "label table: refused a request from %s: %s token (every node's "
                   "--label-token-file must hold the same token)",
                   peer, auth ? "wrong" : "no");
        json_error(body, auth ? "wrong token: this tailjet's --label-token-file holds another"
                              : "a token is required (Authorization: Bearer, --label-token-file)");
        *status = 401;
        return;
    }
    pthread_mutex_lock(&h->lock);
    if (!h->manager || !h->body) {
        h->unavailable++;
        pthread_mutex_unlock(&h->lock);
        json_error(body, h->manager ? "not connected to the Docker engine yet"
                                    : "this node is not a Swarm manager: ask a manager's tailjet");
        *status = 503;
        return;
    }
    if (version && strcmp(version, h->version) == 0) {
        long s = wait ? strtol(wait, NULL, 10) : 0;
        struct timespec until = deadline_in(s < 0 ? 0 : s > MAX_WAIT_S ? MAX_WAIT_S : (unsigned)s);
        while (!h->shutdown && h->manager && strcmp(version, h->version) == 0)
            if (pthread_cond_timedwait(&h->changed, &h->lock, &until) == ETIMEDOUT)
                break;
        if (strcmp(version, h->version) == 0 || !h->manager) {
            h->unchanged++;
            pthread_mutex_unlock(&h->lock);
            *status = 304;
            return;
        }
    }
    h->served++;
    tj_buf_append(body, h->body, h->body_len);
    pthread_mutex_unlock(&h->lock);
    tj_buf_append(body, "\n", 1);
    *status = 200;
}

/* ---- following (worker) ---- */

static bool stopping(struct tj_labels *h)
{
    return __atomic_load_n(&h->stop, __ATOMIC_ACQUIRE);
}

static void nap(struct tj_labels *h, unsigned ms)
{
    struct pollfd p = {h->wake_fd, POLLIN, 0};
    uint64_t v;

    if (poll(&p, 1, (int)ms) > 0 && read(h->wake_fd, &v, sizeof(v)) < 0)
        tj_log(TJ_LOG_DEBUG, "label source: wake: %s", strerror(errno));
}

/* Parses a table; returns its services (owned) and version, or NULL. */
static cJSON *table_parse(const char *text, size_t n, char *version)
{
    cJSON *j = cJSON_ParseWithLength(text, n), *svcs, *s;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "version");

    svcs = cJSON_DetachItemFromObjectCaseSensitive(j, "services");
    if (!cJSON_IsString(v) || strlen(v->valuestring) != 16 || !cJSON_IsArray(svcs)) {
        cJSON_Delete(svcs);
        cJSON_Delete(j);
        return NULL;
    }
    cJSON_ArrayForEach(s, svcs)
    {
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(s, "id")) ||
            !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(s, "labels"))) {
            cJSON_Delete(svcs);
            cJSON_Delete(j);
            return NULL;
        }
    }
    memcpy(version, v->valuestring, 17);
    cJSON_Delete(j);
    return svcs;
}

/* Installs a table for discovery (and wakes it). */
static void table_install(struct tj_labels *h, cJSON *svcs, const char *version, bool cached,
                          int64_t when_ms)
{
    pthread_mutex_lock(&h->lock);
    cJSON_Delete(h->services);
    h->services = svcs;
    memcpy(h->tversion, version, 17);
    h->gen++;
    h->cached = cached;
    h->table_ms = when_ms;
    if (!cached)
        h->updates++;
    if (h->notify) /* under the lock: discovery unhooks itself before it goes away */
        h->notify(h->notify_arg);
    pthread_mutex_unlock(&h->lock);
}

static void cache_save(struct tj_labels *h, const char *text, size_t n)
{
    char path[4096], tmp[4200];
    int fd;
    bool ok;

    snprintf(path, sizeof(path), "%s/" CACHE_NAME, h->state_dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ok = fd >= 0 && write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0) {
        tj_log(TJ_LOG_WARN, "label table: cannot keep a copy in %s: %s", path, strerror(errno));
        unlink(tmp);
    }
}

static void cache_load(struct tj_labels *h)
{
    char path[4096], version[17];
    struct stat st;
    FILE *f;
    char *text = NULL;
    size_t cap = 0;
    ssize_t n;
    cJSON *svcs;

    snprintf(path, sizeof(path), "%s/" CACHE_NAME, h->state_dir);
    if (!(f = fopen(path, "re")))
        return; /* first start: nothing cached */
    n = getdelim(&text, &cap, '\0', f);
    if (fstat(fileno(f), &st) != 0)
        st.st_mtime = 0;
    fclose(f);
    svcs = n > 0 ? table_parse(text, (size_t)n, version) : NULL;
    free(text);
    if (!svcs) {
        tj_log(TJ_LOG_WARN, "label table: %s is damaged: ignored", path);
        return;
    }
    tj_log(TJ_LOG_INFO,
           "label table: loaded the last table (version %s, %d services) kept in %s; it is used "
           "until a label source answers",
           version, cJSON_GetArraySize(svcs), path);
    table_install(h, svcs, version, true, (int64_t)st.st_mtime * 1000);
}

struct answer {
    struct tj_buf body;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    return tj_buf_append(&a->body, p, size * n) == 0 ? size * n : 0;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    TJ_UNUSED(dt);
    TJ_UNUSED(dn);
    TJ_UNUSED(ut);
    TJ_UNUSED(un);
    return stopping(arg) ? 1 : 0;
}

/* Resolves every source's host into candidates (one per address). */
static size_t candidates(struct tj_labels *h, struct candidate *c, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < h->nsrcs && n < max; i++) {
        struct addrinfo hints = {0}, *res, *a;
        char port[16];
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        snprintf(port, sizeof(port), "%ld", h->srcs[i].port);
        if (getaddrinfo(h->srcs[i].host, port, &hints, &res) != 0) {
            c[n].src = i; /* let curl say why */
            snprintf(c[n++].addr, sizeof(c->addr), "%s", "");
            continue;
        }
        for (a = res; a && n < max; a = a->ai_next) {
            char host[64];
            if (getnameinfo(a->ai_addr, a->ai_addrlen, host, sizeof(host), NULL, 0,
                            NI_NUMERICHOST) != 0)
                continue;
            c[n].src = i;
            snprintf(c[n++].addr, sizeof(c->addr), "%s", host);
        }
        freeaddrinfo(res);
    }
    return n;
}

enum ask_result { ASK_OK, ASK_DENIED, ASK_NOT_MANAGER, ASK_FAILED };

/* One long poll of one candidate. */
static enum ask_result ask(struct tj_labels *h, CURL *curl, const struct candidate *c, char *why,
                           size_t whylen)
{
    const struct src *s = &h->srcs[c->src];
    struct answer a;
    struct curl_slist *hdr = NULL, *to = NULL;
    char url[1024], line[600], version[17];
    char cerr[CURL_ERROR_SIZE] = "";
    long status = 0;
    CURLcode rc;
    enum ask_result res = ASK_FAILED;
    cJSON *svcs;

    pthread_mutex_lock(&h->lock);
    snprintf(version, sizeof(version), "%s", h->cached ? "" : h->tversion);
    pthread_mutex_unlock(&h->lock);
    snprintf(url, sizeof(url), "%s/v1/services?version=%s&wait=%d", s->url, version, POLL_WAIT_S);
    tj_buf_init(&a.body, MAX_TABLE_BYTES);
    if (h->token) {
        snprintf(line, sizeof(line), "Authorization: Bearer %s", h->token);
        hdr = curl_slist_append(hdr, line);
    }
    if (c->addr[0]) {
        snprintf(line, sizeof(line), "%s:%ld:%s%s%s:%ld", s->host, s->port,
                 strchr(c->addr, ':') ? "[" : "", c->addr, strchr(c->addr, ':') ? "]" : "",
                 s->port);
        to = curl_slist_append(to, line);
    }
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(curl, CURLOPT_CONNECT_TO, to);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)POLL_WAIT_S + 15);
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, h);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, cerr);
    if (h->ca_file)
        curl_easy_setopt(curl, CURLOPT_CAINFO, h->ca_file);
    rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdr);
    curl_slist_free_all(to);
    if (rc != CURLE_OK) {
        snprintf(why, whylen, "%s (%s): %s", s->url, c->addr,
                 cerr[0] ? cerr : curl_easy_strerror(rc));
    } else if (status == 200 && (svcs = table_parse(a.body.data, a.body.len, version))) {
        bool news;
        pthread_mutex_lock(&h->lock);
        news = h->cached || strcmp(version, h->tversion) != 0 || !h->services;
        h->table_ms = wall_ms();
        pthread_mutex_unlock(&h->lock);
        if (news) {
            tj_log(TJ_LOG_INFO, "label source %s (%s): table version %s, %d services", s->url,
                   c->addr, version, cJSON_GetArraySize(svcs));
            cache_save(h, a.body.data, a.body.len);
            table_install(h, svcs, version, false, wall_ms());
        } else {
            cJSON_Delete(svcs);
        }
        res = ASK_OK;
    } else if (status == 304) {
        pthread_mutex_lock(&h->lock);
        h->table_ms = wall_ms();
        pthread_mutex_unlock(&h->lock);
        res = ASK_OK;
    } else if (status == 401 || status == 403) {
        snprintf(why, whylen,
                 "%s (%s) refused our token (HTTP %ld): --label-token-file must hold the same "
                 "token as the managers'",
                 s->url, c->addr, status);
        res = ASK_DENIED;
    } else if (status == 503) {
        snprintf(why, whylen, "%s (%s) is not a Swarm manager's tailjet", s->url, c->addr);
        res = ASK_NOT_MANAGER;
    } else {
        snprintf(why, whylen, "%s (%s): unexpected answer (HTTP %ld)", s->url, c->addr, status);
    }
    tj_buf_fini(&a.body);
    return res;
}

static void set_connected(struct tj_labels *h, bool on, const char *source, const char *why)
{
    pthread_mutex_lock(&h->lock);
    h->connected = on;
    if (source)
        snprintf(h->source, sizeof(h->source), "%s", source);
    if (why)
        snprintf(h->why, sizeof(h->why), "%s", why);
    pthread_mutex_unlock(&h->lock);
}

/* Says once that no source answers, and what is used meanwhile. */
static void say_down(struct tj_labels *h, const char *why)
{
    char version[17];
    bool have, cached;
    int64_t age;

    pthread_mutex_lock(&h->lock);
    have = h->services != NULL;
    cached = h->cached;
    memcpy(version, h->tversion, sizeof(version));
    age = (wall_ms() - h->table_ms) / 1000;
    pthread_mutex_unlock(&h->lock);
    if (have)
        tj_log(TJ_LOG_WARN,
               "label sources: none answers (%s); parsing with the %s table (version %s, %llds "
               "old) until one does",
               why, cached ? "cached" : "last received", version, (long long)age);
    else
        tj_log(TJ_LOG_WARN,
               "label sources: none answers (%s) and no table was ever received: services' "
               "labels are unknown; their tasks' lines wait --label-wait, then ship unparsed",
               why);
}

static void *follow_main(void *arg)
{
    struct tj_labels *h = arg;
    struct candidate c[MAX_CANDIDATES];
    size_t n = 0, cur = 0;
    bool down_said = false, denied_said = false;
    char why[700] = "", srcname[400];
    CURL *curl = curl_easy_init();

    if (!curl) {
        tj_log(TJ_LOG_ERROR, "label source: libcurl could not start: labels are not followed");
        return NULL;
    }
    while (!stopping(h)) {
        enum ask_result r;
        bool manager;
        bool known;
        pthread_mutex_lock(&h->lock);
        manager = h->manager;
        known = h->role_known;
        pthread_mutex_unlock(&h->lock);
        if (!known) { /* a manager never asks: wait until discovery knows which this is */
            nap(h, 200);
            continue;
        }
        if (manager) { /* this node reads service labels itself */
            set_connected(h, false, NULL, "this node is a manager: it reads service labels itself");
            nap(h, RETRY_MS);
            continue;
        }
        if (cur >= n) { /* every candidate was tried: resolve again (tasks come and go) */
            if (n) {
                set_connected(h, false, NULL, why);
                if (!down_said)
                    say_down(h, why);
                down_said = true;
                nap(h, RETRY_MS);
                if (stopping(h))
                    break;
            }
            n = candidates(h, c, MAX_CANDIDATES);
            cur = 0;
            if (!n) {
                snprintf(why, sizeof(why), "no address for any --label-source");
                n = 0;
                set_connected(h, false, NULL, why);
                nap(h, RETRY_MS);
                continue;
            }
        }
        r = ask(h, curl, &c[cur], why, sizeof(why));
        if (r == ASK_OK) {
            snprintf(srcname, sizeof(srcname), "%s (%s)", h->srcs[c[cur].src].url, c[cur].addr);
            if (down_said || denied_said)
                tj_log(TJ_LOG_INFO, "label source %s answers again", srcname);
            down_said = denied_said = false;
            set_connected(h, true, srcname, "");
            continue; /* the same source again: the next long poll */
        }
        pthread_mutex_lock(&h->lock);
        h->errors++;
        pthread_mutex_unlock(&h->lock);
        if (r == ASK_DENIED && !denied_said) {
            tj_log(TJ_LOG_ERROR, "label source %s", why);
            denied_said = true;
        } else if (r != ASK_NOT_MANAGER) {
            tj_log(TJ_LOG_DEBUG, "label source %s", why);
        }
        cur++;
    }
    curl_easy_cleanup(curl);
    return NULL;
}

/* ---- set-up ---- */

static int parse_sources(struct tj_labels *h, const char *list, char *err, size_t errlen)
{
    char *copy = strdup(list), *save = NULL, *tok;

    if (!copy)
        return TJ_ENOMEM;
    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        struct src *s;
        const char *hostp;
        char *slash, *colon;
        bool tls = strncmp(tok, "https://", 8) == 0;
        if (!tls && strncmp(tok, "http://", 7) != 0) {
            snprintf(err, errlen, "--label-source %s: use http://HOST:PORT or https://HOST:PORT",
                     tok);
            free(copy);
            return TJ_EINVAL;
        }
        if (!(s = realloc(h->srcs, (h->nsrcs + 1) * sizeof(*s)))) {
            free(copy);
            return TJ_ENOMEM;
        }
        h->srcs = s;
        s = &h->srcs[h->nsrcs++];
        hostp = tok + (tls ? 8 : 7);
        s->url = strdup(tok);
        s->host = strdup(hostp);
        if (!s->url || !s->host) {
            free(copy);
            return TJ_ENOMEM;
        }
        while (*s->url && s->url[strlen(s->url) - 1] == '/')
            s->url[strlen(s->url) - 1] = '\0';
        if ((slash = strchr(s->host, '/')))
            *slash = '\0';
        colon = strrchr(s->host, ':');
        s->port = tls ? 443 : 80;
        if (colon && !strchr(colon, ']')) {
            s->port = strtol(colon + 1, NULL, 10);
            *colon = '\0';
        }
        if (s->host[0] == '[') { /* [v6] */
            memmove(s->host, s->host + 1, strlen(s->host));
            if (strchr(s->host, ']'))
                *strchr(s->host, ']') = '\0';
        }
        if (!s->host[0] || s->port <= 0 || s->port > 65535) {
            snprintf(err, errlen, "--label-source %s: no host or a bad port", tok);
            free(copy);
            return TJ_EINVAL;
        }
    }
    free(copy);
    if (!h->nsrcs) {
        snprintf(err, errlen, "--label-source is empty");
        return TJ_EINVAL;
    }
    return 0;
}

struct tj_labels *tj_labels_create(const struct tj_labels_cfg *cfg, char *err, size_t errlen)
{
    struct tj_labels *h = calloc(1, sizeof(*h));
    pthread_condattr_t ca;
    int rc;

    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->wake_fd = -1;
    pthread_mutex_init(&h->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->changed, &ca);
    pthread_condattr_destroy(&ca);
    if ((cfg->token && !(h->token = strdup(cfg->token))) ||
        (cfg->ca_file && !(h->ca_file = strdup(cfg->ca_file))) ||
        !(h->state_dir = strdup(cfg->state_dir ? cfg->state_dir : "."))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (!cfg->sources || !*cfg->sources)
        return h;
    if ((rc = parse_sources(h, cfg->sources, err, errlen)) != 0) {
        if (rc == TJ_ENOMEM)
            snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if ((h->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    cache_load(h);
    if (pthread_create(&h->thread, NULL, follow_main, h) != 0) {
        snprintf(err, errlen, "cannot start the label source thread");
        goto fail;
    }
    h->started = true;
    return h;
fail:
    tj_labels_destroy(h);
    return NULL;
}

bool tj_labels_following(const struct tj_labels *h)
{
    return h && h->nsrcs > 0;
}

void tj_labels_set_role(struct tj_labels *h, bool manager)
{
    uint64_t one = 1;

    pthread_mutex_lock(&h->lock);
    h->role_known = true;
    if (h->manager != manager) {
        h->manager = manager;
        pthread_cond_broadcast(&h->changed);
    }
    pthread_mutex_unlock(&h->lock);
    if (h->wake_fd >= 0 && write(h->wake_fd, &one, sizeof(one)) < 0)
        tj_log(TJ_LOG_DEBUG, "label source: wake: %s", strerror(errno));
}

void tj_labels_set_notify(struct tj_labels *h, void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&h->lock);
    h->notify = fn;
    h->notify_arg = arg;
    pthread_mutex_unlock(&h->lock);
}

cJSON *tj_labels_take(struct tj_labels *h, uint64_t *gen)
{
    cJSON *copy = NULL;

    pthread_mutex_lock(&h->lock);
    if (h->gen != *gen && h->services) {
        copy = cJSON_Duplicate(h->services, 1);
        if (copy)
            *gen = h->gen;
    }
    pthread_mutex_unlock(&h->lock);
    return copy;
}

void tj_labels_shutdown(struct tj_labels *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->shutdown = true;
    pthread_cond_broadcast(&h->changed);
    pthread_mutex_unlock(&h->lock);
}

void tj_labels_destroy(struct tj_labels *h)
{
    uint64_t one = 1;

    if (!h)
        return;
    if (h->started) {
        __atomic_store_n(&h->stop, true, __ATOMIC_RELEASE);
        if (write(h->wake_fd, &one, sizeof(one)) < 0)
            tj_log(TJ_LOG_DEBUG, "label source: wake: %s", strerror(errno));
        pthread_join(h->thread, NULL);
    }
    for (size_t i = 0; i < h->nsrcs; i++) {
        free(h->srcs[i].url);
        free(h->srcs[i].host);
    }
    free(h->srcs);
    if (h->wake_fd >= 0)
        close(h->wake_fd);
    cJSON_Delete(h->services);
    free(h->body);
    free(h->token);
    free(h->ca_file);
    free(h->state_dir);
    pthread_cond_destroy(&h->changed);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* ---- metrics and health ---- */

/* A Prometheus label value: the characters it must escape are never in our URLs or versions
 * but '"' and '\\', which are dropped. */
static void label_value(char *out, size_t n, const char *s)
{
    size_t k = 0;
    for (; *s && k + 1 < n; s++)
        if (*s != '"' && *s != '\\' && *s != '\n')
            out[k++] = *s;
    out[k] = '\0';
}

void tj_labels_metrics(struct tj_labels *h, struct tj_buf *b)
{
    char src[400], ver[17];

    pthread_mutex_lock(&h->lock);
    tj_buf_printf(b,
                  "# HELP tailjet_label_table_requests_total Requests for this node's label table "
                  "(/v1/services), by result.\n# TYPE tailjet_label_table_requests_total counter\n"
                  "tailjet_label_table_requests_total{result=\"served\"} %llu\n"
                  "tailjet_label_table_requests_total{result=\"unchanged\"} %llu\n"
                  "tailjet_label_table_requests_total{result=\"refused\"} %llu\n"
                  "tailjet_label_table_requests_total{result=\"unavailable\"} %llu\n",
                  (unsigned long long)h->served, (unsigned long long)h->unchanged,
                  (unsigned long long)h->refused, (unsigned long long)h->unavailable);
    if (h->nsrcs) {
        label_value(src, sizeof(src), h->source);
        label_value(ver, sizeof(ver), h->tversion);
        tj_buf_printf(
            b,
            "# HELP tailjet_label_source_connected 1 when a manager's tailjet serves this "
            "worker its label table.\n# TYPE tailjet_label_source_connected gauge\n"
            "tailjet_label_source_connected %d\n"
            "# HELP tailjet_label_source_errors_total Label source requests that failed.\n"
            "# TYPE tailjet_label_source_errors_total counter\n"
            "tailjet_label_source_errors_total %llu\n"
            "# HELP tailjet_label_source_updates_total New label tables received.\n"
            "# TYPE tailjet_label_source_updates_total counter\n"
            "tailjet_label_source_updates_total %llu\n",
            h->connected ? 1 : 0, (unsigned long long)h->errors, (unsigned long long)h->updates);
        if (h->services)
            tj_buf_printf(
                b,
                "# HELP tailjet_label_source_table_info The label table in use.\n"
                "# TYPE tailjet_label_source_table_info gauge\n"
                "tailjet_label_source_table_info{version=\"%s\",source=\"%s\",cached=\"%s\"} "
                "1\n"
                "# HELP tailjet_label_source_services Services in the label table in use.\n"
                "# TYPE tailjet_label_source_services gauge\n"
                "tailjet_label_source_services %d\n"
                "# HELP tailjet_label_source_table_age_seconds Since a label source last "
                "confirmed the table in use.\n"
                "# TYPE tailjet_label_source_table_age_seconds gauge\n"
                "tailjet_label_source_table_age_seconds %.3f\n",
                ver, h->cached ? "cache" : src, h->cached ? "true" : "false",
                cJSON_GetArraySize(h->services), (double)(wall_ms() - h->table_ms) / 1000.0);
    }
    pthread_mutex_unlock(&h->lock);
}

size_t tj_labels_health(struct tj_labels *h, struct tj_buf *b)
{
    size_t problem = 0;
    double age;

    if (!h->nsrcs)
        return 0;
    pthread_mutex_lock(&h->lock);
    age = (double)(wall_ms() - h->table_ms) / 1000.0;
    if (h->manager) {
        /* it reads service labels itself: nothing to say */
    } else if (h->connected) {
        tj_buf_printf(b, "label source: connected to %s, table version %s, %.0fs old\n", h->source,
                      h->tversion, age);
    } else if (h->services) {
        tj_buf_printf(
            b, "label source: not connected (%s); using the %s table version %s, %.0fs old\n",
            h->why[0] ? h->why : "connecting", h->cached ? "cached" : "last received", h->tversion,
            age);
    } else {
        tj_buf_printf(b, "label source: not connected (%s) and no label table yet\n",
                      h->why[0] ? h->why : "connecting");
        problem = 1;
    }
    pthread_mutex_unlock(&h->lock);
    return problem;
}
