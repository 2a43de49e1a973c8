/* tj_discover.c: the discovery thread. It keeps the table of containers (log file, names,
 * labels) and, on Swarm managers, of services (their labels), turns each container's effective
 * labels (service labels overridden by container labels) into compiled rules, and tells the
 * engine which files to follow with which rules. Each distinct set of pattern texts is compiled
 * once and shared by reference. Everything here runs on the discovery thread but
 * tj_discover_start/stop/get_stats/metrics/health. This file holds the thread's life cycle,
 * docker-root scans, and /metrics and /health; the rest is in tj_label_rules.c (labels to
 * rules), tj_table.c (containers and services) and tj_docker_loop.c (Docker events and
 * listings), around the shared state of tj_discover_int.h. */
#include "tj_discover.h"

#include <curl/curl.h>
#include <errno.h>
#include <glob.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "tj_discover_int.h"
#include "tj_docker_loop.h"
#include "tj_label_rules.h"
#include "tj_labels.h"
#include "tj_log.h"
#include "tj_table.h"

static void wake_discovery(void *arg)
{
    struct tj_discover *d = arg;
    if (d->dk)
        tj_docker_wakeup(d->dk);
}

void tj_discover_set_state(struct tj_discover *d, bool connected, const char *why)
{
    pthread_mutex_lock(&d->lock);
    d->connected = connected;
    snprintf(d->why, sizeof(d->why), "%s", why);
    pthread_mutex_unlock(&d->lock);
}

/* ---- docker-root mode ---- */

static void root_scan(struct tj_discover *d, bool initial)
{
    char pattern[4096];
    glob_t gl;
    struct ctr *c, *next;

    snprintf(pattern, sizeof(pattern), "%s/containers/*/config.v2.json", d->cfg.docker_root);
    for (c = d->ctrs; c; c = c->next)
        c->seen = false;
    if (glob(pattern, 0, NULL, &gl) == 0) {
        for (size_t i = 0; i < gl.gl_pathc; i++) {
            FILE *f = fopen(gl.gl_pathv[i], "re");
            char *text = NULL;
            size_t cap = 0;
            ssize_t n;
            cJSON *j;
            if (!f)
                continue;
            n = getdelim(&text, &cap, '\0', f);
            fclose(f);
            j = n > 0 ? cJSON_ParseWithLength(text, (size_t)n) : NULL;
            free(text);
            if (!j)
                continue; /* being written: next scan */
            c = tj_table_ctr_from_json(j);
            cJSON_Delete(j);
            if (!c)
                continue;
            if (tj_table_ctr_is_self(d, c)) {
                tj_table_ctr_free(c);
                continue;
            }
            if (tj_table_ctr_find(d, c->id)) {
                tj_table_ctr_find(d, c->id)->seen = true;
                tj_table_ctr_find(d, c->id)->gone = false; /* listed again: not removed after all */
                tj_table_ctr_free(c);
                continue;
            }
            if (tj_label_rules_missing(d, c) && d->cfg.label_wait_ms) {
                c->wait_until = mono_ms() + d->cfg.label_wait_ms;
                c->initial = initial;
            }
            tj_table_ctr_add(d, c);
            tj_log(TJ_LOG_INFO, "container %.12s %s (from %s): following %s", c->id,
                   c->name ? c->name : "", d->cfg.docker_root, c->log_path);
            tj_label_rules_apply(d, c, initial);
        }
    }
    globfree(&gl);
    for (c = d->ctrs; c; c = next) {
        next = c->next;
        if (!c->seen)
            tj_table_ctr_forget(d, c->id);
    }
}

static void *discover_main(void *arg)
{
    struct tj_discover *d = arg;

    if (d->cfg.docker_host) {
        tj_docker_loop_run(d);
        return NULL;
    }
    tj_log(TJ_LOG_INFO,
           "docker: reading containers from %s/containers (no API: container labels, and "
           "service labels from --label-source when given)",
           d->cfg.docker_root);
    if (d->cfg.labels)
        tj_labels_set_role(d->cfg.labels, false); /* without the API: a worker's view */
    tj_discover_set_state(d, true,
                          ""); /* no connection to lose: /health has nothing to say about it */
    for (bool initial = true; !stopping(d); initial = false) {
        tj_table_labels_sync(d);
        root_scan(d, initial);
        if (initial && tj_engine_release_eof(d->e) != 0) /* --exit-on-eof may end after these */
            tj_log(TJ_LOG_ERROR, "out of memory: --exit-on-eof may end before every container "
                                 "found is read");
        nap(d, tj_table_pending_check(d, d->cfg.poll_ms));
    }
    return NULL;
}

struct tj_discover *tj_discover_start(const struct tj_discover_cfg *cfg, struct tj_engine *e,
                                      char *err, size_t errlen)
{
    struct tj_discover *d = calloc(1, sizeof(*d));

    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->cfg = *cfg;
    d->e = e;
    {
        char host[256] = "";
        if (gethostname(host, sizeof(host) - 1) != 0)
            host[0] = '\0';
        tj_self_detect(&d->self, "/proc", host);
    }
    d->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    d->prefix = strdup(cfg->label_prefix ? cfg->label_prefix : "");
    pthread_mutex_init(&d->lock, NULL);
    if (d->wake_fd < 0 || !d->prefix) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->docker_host && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "libcurl could not be initialised");
        goto fail;
    }
    if (cfg->docker_host && !(d->dk = tj_docker_create(cfg->docker_host, err, errlen)))
        goto fail;
    if (cfg->labels)
        tj_labels_set_notify(cfg->labels, wake_discovery, d);
    if (pthread_create(&d->thread, NULL, discover_main, d) != 0) {
        snprintf(err, errlen, "cannot start the discovery thread");
        goto fail;
    }
    return d;
fail:
    tj_docker_destroy(d->dk);
    if (d->wake_fd >= 0)
        close(d->wake_fd);
    free(d->prefix);
    free(d);
    return NULL;
}

void tj_discover_stop(struct tj_discover *d)
{
    uint64_t one = 1;

    if (!d)
        return;
    __atomic_store_n(&d->stop, true, __ATOMIC_RELEASE);
    if (write(d->wake_fd, &one, sizeof(one)) < 0)
        tj_log(TJ_LOG_WARN, "cannot wake the discovery thread: %s", strerror(errno));
    if (d->dk)
        tj_docker_wakeup(d->dk);
    pthread_join(d->thread, NULL);
    if (d->cfg.labels)
        tj_labels_set_notify(d->cfg.labels, NULL, NULL);
    while (d->ctrs) {
        struct ctr *c = d->ctrs;
        d->ctrs = c->next;
        tj_table_ctr_free(c);
    }
    while (d->svcs) {
        struct svc *s = d->svcs;
        d->svcs = s->next;
        tj_table_svc_free(s);
    }
    while (d->cache) {
        struct rules *r = d->cache;
        d->cache = r->next;
        tj_ruleset_unref(r->rs);
        free(r->key);
        free(r->error);
        free(r);
    }
    tj_docker_destroy(d->dk);
    close(d->wake_fd);
    pthread_mutex_destroy(&d->lock);
    free(d->prefix);
    free(d);
}

void tj_discover_get_stats(struct tj_discover *d, struct tj_discover_stats *st)
{
    pthread_mutex_lock(&d->lock);
    *st = d->st;
    pthread_mutex_unlock(&d->lock);
}

void tj_discover_metrics(struct tj_discover *d, struct tj_buf *b)
{
    char line[2048];
    int n;

    pthread_mutex_lock(&d->lock);
    n = snprintf(line, sizeof(line),
                 "# HELP tailjet_discovery_connected 1 when the Docker engine (or data root) is "
                 "followed.\n# TYPE tailjet_discovery_connected gauge\n"
                 "tailjet_discovery_connected %d\n"
                 "# HELP tailjet_discovery_reconnects_total Reconnections to the Docker engine.\n"
                 "# TYPE tailjet_discovery_reconnects_total counter\n"
                 "tailjet_discovery_reconnects_total %llu\n"
                 "# HELP tailjet_discovery_containers Containers whose logs are followed now.\n"
                 "# TYPE tailjet_discovery_containers gauge\n"
                 "tailjet_discovery_containers %llu\n"
                 "# HELP tailjet_label_wait_timeouts_total Swarm tasks shipped unparsed because "
                 "their service's labels did not reach this worker within --label-wait.\n"
                 "# TYPE tailjet_label_wait_timeouts_total counter\n"
                 "tailjet_label_wait_timeouts_total %llu\n",
                 d->connected ? 1 : 0, (unsigned long long)d->st.reconnects,
                 (unsigned long long)d->following, (unsigned long long)d->st.label_waits);
    pthread_mutex_unlock(&d->lock);
    if (n > 0)
        tj_buf_append(b, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

size_t tj_discover_health(struct tj_discover *d, struct tj_buf *b)
{
    char line[600];
    int n = 0;

    pthread_mutex_lock(&d->lock);
    if (!d->connected)
        n = snprintf(line, sizeof(line), "docker: not connected: %s\n",
                     d->why[0] ? d->why : "connecting");
    pthread_mutex_unlock(&d->lock);
    if (n > 0)
        tj_buf_append(b, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    return n > 0;
}
