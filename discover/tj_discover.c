/* tj_discover.c: the discovery thread. It keeps the table of containers (log file, names,
 * labels) and, on Swarm managers, of services (their labels), turns each container's effective
 * labels (service labels overridden by container labels) into compiled rules, and tells the
 * engine which files to follow with which rules. Each distinct set of pattern texts is compiled
 * once and shared by reference. Everything here runs on the discovery thread but
 * tj_discover_start/stop/get_stats.
 * Size: four parts of one thread share its container table (labels to rules, Swarm services,
 * Docker events, docker-root scans); labels to rules is the first to cut out, not done yet. */
#include "tj_discover.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "tj_docker.h"
#include "tj_log.h"
#include "tj_self.h"

#define MAX_ALTS     TJ_RULESET_MAX_ALTS
#define MAX_EVENTS   1024
#define LABEL_PREFIX "com.docker.swarm."
#define ROLE_CHECK_S 10 /* a manager asks /info this often whether it still is one */

struct ctr {
    char *id;
    char *log_path;
    char *name, *image;
    char *svc_id, *svc_name, *ns;
    cJSON *labels;      /* its own, owned */
    char *rules;        /* the key of the rules it is followed with, or NULL before the first */
    bool seen;          /* in the last listing */
    bool initial;       /* found at start-up (--start-at applies), kept while it waits */
    int64_t wait_until; /* a worker's task waits for its service's labels until then (ms) */
    bool held;          /* its file is open in the engine, not read, while it waits */
    bool gone;          /* removed while it waited: forgotten once its wait ends */
    struct ctr *next;
};

struct svc {
    char *id, *name;
    uint64_t version; /* Docker's Version.Index */
    cJSON *labels;    /* owned */
    bool seen;        /* in the last listing */
    struct svc *next;
};

struct rules {
    char *key;             /* patterns, multiline: what was compiled */
    struct tj_ruleset *rs; /* one reference held by the cache */
    char *error;           /* why it did not compile, or NULL */
    struct rules *next;
};

struct event {
    char type[16], action[32], id[80];
};

struct tj_discover {
    struct tj_discover_cfg cfg;
    char *prefix;
    struct tj_engine *e;
    pthread_t thread;
    bool stop; /* atomic */
    int wake_fd;
    struct tj_docker *dk;
    bool manager, swarm_said;
    time_t role_checked; /* when /info was last asked (monotonic seconds) */
    struct ctr *ctrs;
    struct svc *svcs;
    struct rules *cache;
    struct event ev[MAX_EVENTS];
    size_t nev;
    bool ev_overflow;
    pthread_mutex_t lock; /* stats, connected, why */
    struct tj_discover_stats st;
    bool connected;
    char why[512];       /* why it is not connected */
    uint64_t following;  /* containers followed now */
    uint64_t labels_gen; /* the label table generation applied (worker) */
    struct tj_self self; /* the container tailjet runs in, if any */
    bool self_said;      /* that its log is left out was logged */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool stopping(struct tj_discover *d)
{
    return __atomic_load_n(&d->stop, __ATOMIC_ACQUIRE);
}

/* Sleeps ms, or less when asked to stop. */
static void nap(struct tj_discover *d, unsigned ms)
{
    struct pollfd p = {d->wake_fd, POLLIN, 0};
    poll(&p, 1, (int)ms);
}

static const char *str_at(const cJSON *o, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b)
        v = cJSON_GetObjectItemCaseSensitive(v, b);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* ---- labels to rules ---- */

static const char *label_in(const cJSON *labels, const char *prefix, const char *name)
{
    char key[256];

    snprintf(key, sizeof(key), "%s%s", prefix, name);
    return str_at(labels, key, NULL);
}

size_t tj_labels_patterns(const cJSON *labels, const char *prefix, const char **exprs, size_t max,
                          bool *more)
{
    const char *v = label_in(labels, prefix, "logPattern");
    size_t n = 0;
    char name[32];

    *more = false;
    if (v && *v) {
        if (n == max)
            *more = true;
        else
            exprs[n++] = v;
    }
    for (int i = 1; !*more; i++) {
        snprintf(name, sizeof(name), "logPattern.%d", i);
        if (!(v = label_in(labels, prefix, name)))
            break;
        if (!*v)
            continue;
        if (n == max)
            *more = true; /* one alternative past max: the caller says so */
        else
            exprs[n++] = v;
    }
    return n;
}

static struct svc *svc_find(struct tj_discover *d, const char *id)
{
    struct svc *s = d->svcs;
    while (s && strcmp(s->id, id) != 0)
        s = s->next;
    return s;
}

/* A label of the container: its own, else its service's. */
static const char *label_of(struct tj_discover *d, const struct ctr *c, const char *name)
{
    const char *v = label_in(c->labels, d->prefix, name);
    struct svc *s;

    if (v || !c->svc_id || !(s = svc_find(d, c->svc_id)))
        return v;
    return label_in(s->labels, d->prefix, name);
}

/* The pattern alternatives: a container that sets any logPattern label sets them all (its own
 * alternatives replace the service's, so the two never mix into an order nobody wrote). */
static size_t patterns_of(struct tj_discover *d, const struct ctr *c, const char **exprs,
                          bool *more)
{
    size_t n = tj_labels_patterns(c->labels, d->prefix, exprs, MAX_ALTS, more);
    struct svc *s;

    if (n || !c->svc_id || !(s = svc_find(d, c->svc_id)))
        return n;
    return tj_labels_patterns(s->labels, d->prefix, exprs, MAX_ALTS, more);
}

/* The compiled rules for these patterns (from the cache, or compiled now). `missing`: the
 * service's labels were not known in time; its records are tagged _labelsmissing. */
static struct rules *rules_get(struct tj_discover *d, const struct tj_rules_spec *spec,
                               const char *ecs, bool missing)
{
    size_t len = 8, n = spec->n;
    const char *const *exprs = spec->exprs;
    const char *multiline = spec->multiline, *defs = spec->definitions, *ts = spec->timestamp;
    struct rules *r;
    char *key, *p, err[900];
    struct tj_rules_spec s = *spec;
    bool bad_ecs = ecs && *ecs && tj_ecs_mode_parse(ecs, &s.ecs) != 0;

    for (size_t i = 0; i < n; i++)
        len += strlen(exprs[i]) + 1;
    len += multiline ? strlen(multiline) : 0;
    len += (defs ? strlen(defs) : 0) + (ecs ? strlen(ecs) : 0) + (ts ? strlen(ts) : 0) + 1;
    if (!(key = malloc(len + 1)))
        return NULL;
    p = key;
    if (missing)
        *p++ = '\x1f';
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s\x1e", exprs[i]);
    sprintf(p, "\x1d%s\x1d%s\x1d%s\x1d%s", multiline ? multiline : "", defs ? defs : "",
            ecs ? ecs : "", ts ? ts : "");
    for (r = d->cache; r; r = r->next) {
        if (strcmp(r->key, key) == 0) {
            free(key);
            return r;
        }
    }
    if (!(r = calloc(1, sizeof(*r)))) {
        free(key);
        return NULL;
    }
    r->key = key;
    if (bad_ecs) {
        snprintf(err, sizeof(err), "ecs: '%s' is not v1 or disabled", ecs);
        r->rs = NULL;
    } else {
        r->rs = tj_ruleset_build(d->cfg.lib, &s, err, sizeof(err));
    }
    if (!r->rs) {
        r->error = strdup(err);
        r->rs = tj_ruleset_create(d->cfg.lib, NULL, 0, NULL, err, sizeof(err));
        if (!r->rs) {
            free(r->error);
            free(r->key);
            free(r);
            return NULL;
        }
        r->rs->base_tags |= TJ_TAG_PATTERNERROR; /* before anyone else sees it */
    }
    if (missing)
        r->rs->base_tags |= TJ_TAG_LABELSMISSING;
    r->next = d->cache;
    d->cache = r;
    return r;
}

/* The name of the label (container's or service's) whose value is expr (compared by address). */
static void label_name(struct tj_discover *d, const struct ctr *c, const char *expr, char *out,
                       size_t n)
{
    const cJSON *sets[2] = {c->labels, NULL};
    struct svc *s = c->svc_id ? svc_find(d, c->svc_id) : NULL;
    char name[32];

    sets[1] = s ? s->labels : NULL;
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 64; i++) {
            if (i)
                snprintf(name, sizeof(name), "logPattern.%d", i);
            else
                snprintf(name, sizeof(name), "logPattern");
            if (sets[k] && label_in(sets[k], d->prefix, name) == expr) {
                snprintf(out, n, "%s%s%s", k ? "(service) " : "", d->prefix, name);
                return;
            }
        }
    }
    snprintf(out, n, "%slogPattern", d->prefix);
}

/* On a worker that follows label sources: a task whose service is not in the table. */
static bool labels_missing(struct tj_discover *d, const struct ctr *c)
{
    return c->svc_id && !d->manager && tj_labels_following(d->cfg.labels) &&
           !svc_find(d, c->svc_id);
}

/* Whether a waiting task goes on waiting; says so when its wait ends without labels. */
static bool still_waiting(struct tj_discover *d, struct ctr *c, bool missing)
{
    if (!c->wait_until)
        return false;
    if (missing && mono_ms() < c->wait_until)
        return true;
    c->wait_until = 0;
    if (missing) {
        tj_log(TJ_LOG_WARN,
               "service %s (task container %.12s): its labels are not in the managers' table "
               "after --label-wait; its lines are shipped unparsed, tagged _labelsmissing, until "
               "they are",
               c->svc_name ? c->svc_name : c->svc_id, c->id);
        pthread_mutex_lock(&d->lock);
        d->st.label_waits++;
        pthread_mutex_unlock(&d->lock);
    }
    return false;
}

/* The file and metadata of the container's follow; name holds its name without the '/'. */
static void follow_meta(const struct ctr *c, struct tj_follow *f, char *name, size_t n)
{
    snprintf(name, n, "%s", c->name ? (c->name[0] == '/' ? c->name + 1 : c->name) : "");
    f->path = c->log_path;
    f->meta[TJ_META_CONTAINER_ID] = c->id;
    f->meta[TJ_META_CONTAINER_NAME] = name[0] ? name : NULL;
    f->meta[TJ_META_IMAGE_NAME] = c->image;
    f->meta[TJ_META_SERVICE_NAME] = c->svc_name;
    f->meta[TJ_META_SERVICE_ID] = c->svc_id;
    f->meta[TJ_META_SERVICE_NAMESPACE] = c->ns;
    f->key = c->id;
}

/* A task that waits for its service's labels: its file is opened at once and held (not read),
 * so that its lines outlive the container if it is removed before the labels come (a crash
 * loop, a short batch job); the follow with the rules, when they come or the wait ends, starts
 * the reading. */
static void ctr_hold(struct tj_discover *d, struct ctr *c, bool initial)
{
    struct tj_rules_spec spec = {0};
    struct tj_follow f = {0};
    struct rules *r;
    char name[300];

    if (c->held)
        return;
    if (!(r = rules_get(d, &spec, NULL, true))) {
        tj_log(TJ_LOG_ERROR, "out of memory: container %.12s is opened once its wait ends", c->id);
        return;
    }
    follow_meta(c, &f, name, sizeof(name));
    f.rs = r->rs; /* nothing is parsed with these: the reading waits */
    f.hold = true;
    if (tj_engine_follow(d->e, &f, initial) == 0)
        c->held = true;
    else
        tj_log(TJ_LOG_ERROR, "out of memory: container %.12s is opened once its wait ends", c->id);
}

/* Tells the engine to follow the container with its current rules (or the new ones). */
static void ctr_apply(struct tj_discover *d, struct ctr *c, bool initial)
{
    const char *exprs[MAX_ALTS];
    bool more;
    size_t n = patterns_of(d, c, exprs, &more);
    const char *multiline = label_of(d, c, "logMultiline");
    const char *ecs = label_of(d, c, "logEcs");
    const char *defs = label_of(d, c, "logPatternDefinitions");
    const char *ts = label_of(d, c, "logTimestamp");
    struct tj_rules_spec spec = {0};
    bool missing = labels_missing(d, c);
    struct rules *r;
    struct tj_follow f = {0};
    char name[300], who[400];

    if (c->wait_until)
        initial = c->initial;
    if (still_waiting(d, c, missing)) {
        ctr_hold(d, c, initial); /* its lines stay in its file, held open, meanwhile */
        return;
    }
    spec.exprs = exprs;
    spec.n = n;
    spec.multiline = multiline && *multiline ? multiline : NULL;
    spec.definitions = defs && *defs ? defs : NULL;
    spec.timestamp = ts && *ts ? ts : NULL;
    r = rules_get(d, &spec, ecs, missing);
    if (!r) {
        tj_log(TJ_LOG_ERROR, "out of memory: container %.12s is not followed", c->id);
        return;
    }
    const char *topic = label_of(d, c, "logTopic"), *index = label_of(d, c, "logIndex");
    char *key =
        malloc(strlen(r->key) + (topic ? strlen(topic) : 0) + (index ? strlen(index) : 0) + 3);

    if (!key)
        return;
    sprintf(key, "%s\x1c%s\x1c%s", r->key, topic ? topic : "", index ? index : "");
    if (c->rules && strcmp(c->rules, key) == 0) {
        free(key);
        return; /* nothing changed: patterns, multiline, topic and index are the same */
    }
    if (c->svc_name)
        snprintf(who, sizeof(who), "service %s, container %.12s %s", c->svc_name, c->id,
                 c->name ? c->name : "");
    else
        snprintf(who, sizeof(who), "container %.12s %s", c->id, c->name ? c->name : "");
    if (more) {
        tj_log(TJ_LOG_WARN,
               "%s: more than %d logPattern alternatives: %slogPattern.%d and later are not used",
               who, MAX_ALTS, d->prefix, MAX_ALTS);
        pthread_mutex_lock(&d->lock);
        d->st.pattern_errors++;
        pthread_mutex_unlock(&d->lock);
    }
    if (r->error) {
        char label[64];
        const char *msg = r->error;
        unsigned k = 0;
        if (strncmp(msg, "multiline: ", 11) == 0) {
            snprintf(label, sizeof(label), "%slogMultiline", d->prefix);
            msg += 11;
        } else if (strncmp(msg, "definitions: ", 13) == 0) {
            snprintf(label, sizeof(label), "%slogPatternDefinitions", d->prefix);
            msg += 13;
        } else if (strncmp(msg, "ecs: ", 5) == 0) {
            snprintf(label, sizeof(label), "%slogEcs", d->prefix);
            msg += 5;
        } else if (strncmp(msg, "timestamp: ", 11) == 0) {
            snprintf(label, sizeof(label), "%slogTimestamp", d->prefix);
            msg += 11;
        } else if (sscanf(msg, "pattern %u: ", &k) == 1 && k >= 1 && k <= n) {
            label_name(d, c, exprs[k - 1], label, sizeof(label));
            msg = strchr(msg, ':') + 2;
        } else {
            snprintf(label, sizeof(label), "%slogPattern", d->prefix);
        }
        tj_log(TJ_LOG_WARN,
               "%s: label %s does not compile: %s; its records are shipped unparsed, tagged "
               "_patternerror",
               who, label, msg);
        pthread_mutex_lock(&d->lock);
        d->st.pattern_errors++;
        pthread_mutex_unlock(&d->lock);
    }
    if (c->rules) {
        tj_log(TJ_LOG_INFO,
               "container %.12s %s: labels changed; new lines are parsed with the new "
               "patterns",
               c->id, c->name ? c->name : "");
        pthread_mutex_lock(&d->lock);
        d->st.label_updates++;
        pthread_mutex_unlock(&d->lock);
    }
    free(c->rules);
    c->rules = key;
    follow_meta(c, &f, name, sizeof(name));
    f.rs = r->rs;
    f.topic = topic;
    f.index = index;
    if (tj_engine_follow(d->e, &f, initial))
        tj_log(TJ_LOG_ERROR, "out of memory: container %.12s is not followed", c->id);
}

static void ctr_free(struct ctr *c)
{
    free(c->id);
    free(c->log_path);
    free(c->name);
    free(c->image);
    free(c->svc_id);
    free(c->svc_name);
    free(c->ns);
    cJSON_Delete(c->labels);
    free(c->rules);
    free(c);
}

/* Whether the container is the one tailjet runs in, and left out (says so once): its log holds
 * tailjet's own output, which a stdout output would ship again and again. */
static bool ctr_is_self(struct tj_discover *d, const struct ctr *c)
{
    if (d->cfg.include_self || !tj_self_is(&d->self, c->id))
        return false;
    if (!d->self_said)
        tj_log(TJ_LOG_INFO,
               "container %.12s %s is the one tailjet runs in (found by its %s): its log is not "
               "followed (--include-self follows it)",
               c->id, c->name ? c->name : "", d->self.how);
    d->self_said = true;
    return true;
}

/* Adds a new container to the table and counts it. */
static void ctr_add(struct tj_discover *d, struct ctr *c)
{
    c->seen = true;
    c->next = d->ctrs;
    d->ctrs = c;
    pthread_mutex_lock(&d->lock);
    d->st.containers++;
    d->following++;
    pthread_mutex_unlock(&d->lock);
}

static struct ctr *ctr_find(struct tj_discover *d, const char *id)
{
    struct ctr *c = d->ctrs;
    while (c && strcmp(c->id, id) != 0)
        c = c->next;
    return c;
}

static void ctr_forget(struct tj_discover *d, const char *id)
{
    struct ctr **pp = &d->ctrs, *c;

    while ((c = *pp) && strcmp(c->id, id) != 0)
        pp = &c->next;
    if (!c)
        return;
    if (c->wait_until) {
        /* Still waiting for its labels: its file is held open; it is read with the rules the
         * wait ends with, then released (ctrs_reap). */
        if (!c->gone)
            tj_log(TJ_LOG_INFO,
                   "container %.12s %s removed while it waits for its service's labels: its "
                   "log is read once they come or the wait ends",
                   c->id, c->name ? c->name : "");
        c->gone = true;
        return;
    }
    *pp = c->next;
    pthread_mutex_lock(&d->lock);
    d->following--;
    pthread_mutex_unlock(&d->lock);
    if (c->rules || c->held) {
        tj_engine_unfollow(d->e, c->log_path);
        tj_log(TJ_LOG_INFO, "container %.12s %s removed: its log is read to its end, then released",
               c->id, c->name ? c->name : "");
    }
    ctr_free(c);
}

/* Builds a container from an inspect answer or a config.v2.json (same field names). Returns
 * NULL when it has no json-file log. */
static struct ctr *ctr_from_json(const cJSON *j)
{
    const char *id = str_at(j, "Id", NULL) ? str_at(j, "Id", NULL) : str_at(j, "ID", NULL);
    const char *log_path = str_at(j, "LogPath", NULL);
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(j, "Config");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(config, "Labels");
    struct ctr *c;

    if (!id || !log_path || !*log_path)
        return NULL;
    if (!(c = calloc(1, sizeof(*c))))
        return NULL;
    c->id = strdup(id);
    c->log_path = strdup(log_path);
    c->name = dup_or_null(str_at(j, "Name", NULL));
    c->image = dup_or_null(str_at(config, "Image", NULL));
    c->labels = cJSON_IsObject(labels) ? cJSON_Duplicate(labels, 1) : cJSON_CreateObject();
    c->svc_id = dup_or_null(str_at(c->labels, LABEL_PREFIX "service.id", NULL));
    c->svc_name = dup_or_null(str_at(c->labels, LABEL_PREFIX "service.name", NULL));
    c->ns = dup_or_null(str_at(c->labels, "com.docker.stack.namespace", NULL));
    if (!c->id || !c->log_path || !c->labels) {
        ctr_free(c);
        return NULL;
    }
    return c;
}

/* ---- Swarm services (managers) ---- */

static void svc_free(struct svc *s)
{
    cJSON_Delete(s->labels);
    free(s->id);
    free(s->name);
    free(s);
}

/* Adds or updates a service from its JSON (an element of GET /services, GET /services/ID, or
 * of a label table: "ID"/"id", Spec.Name/"name", Version.Index/"version", Spec.Labels/"labels"). */
static void svc_set(struct tj_discover *d, const char *id, const char *name, uint64_t version,
                    const cJSON *labels)
{
    struct svc *s = svc_find(d, id);

    if (!s) {
        if (!(s = calloc(1, sizeof(*s))) || !(s->id = strdup(id))) {
            free(s);
            return;
        }
        s->next = d->svcs;
        d->svcs = s;
    }
    s->seen = true;
    free(s->name);
    s->name = dup_or_null(name);
    s->version = version;
    cJSON_Delete(s->labels);
    s->labels = cJSON_IsObject(labels) ? cJSON_Duplicate(labels, 1) : cJSON_CreateObject();
}

static void svc_set_docker(struct tj_discover *d, const cJSON *j)
{
    const char *id = str_at(j, "ID", NULL);
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(j, "Spec");
    const cJSON *index =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "Version"), "Index");

    if (id)
        svc_set(d, id, str_at(spec, "Name", NULL),
                cJSON_IsNumber(index) ? (uint64_t)index->valuedouble : 0,
                cJSON_GetObjectItemCaseSensitive(spec, "Labels"));
}

static void svc_remove(struct tj_discover *d, const char *id)
{
    struct svc **pp = &d->svcs, *s;

    while ((s = *pp) && strcmp(s->id, id) != 0)
        pp = &s->next;
    if (s) {
        *pp = s->next;
        svc_free(s);
    }
}

/* Removes the services not seen since svcs_unsee. */
static void svcs_prune(struct tj_discover *d)
{
    struct svc **pp = &d->svcs, *s;

    while ((s = *pp)) {
        if (s->seen) {
            pp = &s->next;
        } else {
            *pp = s->next;
            svc_free(s);
        }
    }
}

static void svcs_unsee(struct tj_discover *d)
{
    for (struct svc *s = d->svcs; s; s = s->next)
        s->seen = false;
}

static int cmp_svc(const void *a, const void *b)
{
    return strcmp((*(struct svc *const *)a)->id, (*(struct svc *const *)b)->id);
}

/* On a manager: publishes every service's log labels (and only those) for the workers. */
static void publish_table(struct tj_discover *d)
{
    struct svc **v, *s;
    size_t n = 0, i;
    cJSON *arr;

    if (!d->cfg.labels || !d->manager)
        return;
    for (s = d->svcs; s; s = s->next)
        n++;
    if (!(v = calloc(n ? n : 1, sizeof(*v))) || !(arr = cJSON_CreateArray())) {
        free(v);
        tj_log(TJ_LOG_ERROR, "out of memory: the label table is not updated");
        return;
    }
    for (i = 0, s = d->svcs; s; s = s->next)
        v[i++] = s;
    qsort(v, n, sizeof(*v), cmp_svc); /* the same table gives the same text on every manager */
    for (i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject(), *labels = cJSON_CreateObject(), *l;
        cJSON_AddStringToObject(o, "id", v[i]->id);
        cJSON_AddStringToObject(o, "name", v[i]->name ? v[i]->name : "");
        cJSON_AddNumberToObject(o, "version", (double)v[i]->version);
        cJSON_ArrayForEach(l, v[i]->labels)
        {
            if (cJSON_IsString(l) && tj_labels_is_log_label(l->string, d->prefix))
                cJSON_AddStringToObject(labels, l->string, l->valuestring);
        }
        cJSON_AddItemToObject(o, "labels", labels);
        cJSON_AddItemToArray(arr, o);
    }
    free(v);
    tj_labels_publish(d->cfg.labels, arr);
    cJSON_Delete(arr);
}

static void check_still_manager(struct tj_discover *d, bool now);

/* Reads one service's labels (GET /services/ID). Returns 0, TJ_ENOENT (gone) or TJ_EIO. */
static int svc_fetch(struct tj_discover *d, const char *id)
{
    char path[160], err[512];
    cJSON *j;
    long status;
    int rc;

    snprintf(path, sizeof(path), "/services/%s", id);
    rc = tj_docker_get(d->dk, path, &j, &status, err, sizeof(err));
    if (rc == 0) {
        svc_set_docker(d, j);
        cJSON_Delete(j);
        publish_table(d);
    } else if (rc == TJ_ENOENT) {
        svc_remove(d, id);
        publish_table(d);
    } else {
        tj_log(TJ_LOG_WARN, "docker: %s", err);
        if (status == 503)
            check_still_manager(d, true); /* "This node is not a swarm manager" */
    }
    return rc;
}

static void svcs_fetch_all(struct tj_discover *d)
{
    char err[512];
    cJSON *j, *s;
    long status;

    if (tj_docker_get(d->dk, "/services", &j, &status, err, sizeof(err)) != 0) {
        tj_log(TJ_LOG_WARN, "docker: %s", err);
        if (status == 503)
            check_still_manager(d, true);
        return;
    }
    svcs_unsee(d);
    cJSON_ArrayForEach(s, j)
    {
        svc_set_docker(d, s);
    }
    cJSON_Delete(j);
    svcs_prune(d);
    publish_table(d);
}

/* On a worker: takes a new table from the label sources, if one came, and applies it to the
 * tasks. Returns whether one came. */
/* Forgets the containers removed while they waited whose wait is over: they were just followed
 * with their rules, so their held files are read to their end, then released. */
static void ctrs_reap(struct tj_discover *d)
{
    struct ctr *c, *next;

    for (c = d->ctrs; c; c = next) {
        next = c->next;
        if (c->gone && !c->wait_until)
            ctr_forget(d, c->id);
    }
}

static bool labels_sync(struct tj_discover *d)
{
    cJSON *svcs, *s;

    if (d->manager || !tj_labels_following(d->cfg.labels) ||
        !(svcs = tj_labels_take(d->cfg.labels, &d->labels_gen)))
        return false;
    svcs_unsee(d);
    cJSON_ArrayForEach(s, svcs)
    {
        const cJSON *version = cJSON_GetObjectItemCaseSensitive(s, "version");
        svc_set(d, str_at(s, "id", NULL), str_at(s, "name", NULL),
                cJSON_IsNumber(version) ? (uint64_t)version->valuedouble : 0,
                cJSON_GetObjectItemCaseSensitive(s, "labels"));
    }
    cJSON_Delete(svcs);
    svcs_prune(d);
    for (struct ctr *c = d->ctrs; c; c = c->next)
        if (c->svc_id)
            ctr_apply(d, c, false);
    ctrs_reap(d);
    return true;
}

/* Applies the rules of tasks whose wait for their service's labels is over; returns how long
 * until the next one's wait ends (ms), at most `max`. */
static unsigned pending_check(struct tj_discover *d, unsigned max)
{
    int64_t now = mono_ms(), next = now + max;

    for (struct ctr *c = d->ctrs; c; c = c->next) {
        if (!c->wait_until)
            continue;
        ctr_apply(d, c, c->initial);
        if (c->wait_until && c->wait_until < next)
            next = c->wait_until;
    }
    ctrs_reap(d);
    return next > now ? (unsigned)(next - now) : 1;
}

static void wake_discovery(void *arg)
{
    struct tj_discover *d = arg;
    if (d->dk)
        tj_docker_wakeup(d->dk);
}

/* ---- Docker mode ---- */

static bool read_swarm_role(struct tj_discover *d, char *role, size_t n, bool keep);

/* A Swarm task on a node that did not look like a manager: the node may have joined or been
 * promoted since (swarm init after tailjet started); ask again, at most every few seconds. */
static void recheck_role(struct tj_discover *d)
{
    struct timespec ts;
    char role[64];

    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (d->manager || ts.tv_sec < d->role_checked + 5)
        return;
    d->role_checked = ts.tv_sec;
    read_swarm_role(d, role, sizeof(role), false);
    if (d->manager) {
        tj_log(TJ_LOG_INFO, "docker: this node is now a Swarm manager: service labels are read");
        svcs_fetch_all(d);
        for (struct ctr *c = d->ctrs; c; c = c->next)
            if (c->svc_id)
                ctr_apply(d, c, false);
    }
}

/* On a manager, asks again every ROLE_CHECK_S seconds (or at once, after the engine refused a
 * services request) whether it still is one: a demoted node gets no more service events, so
 * from then on its service labels come from the label sources, like any worker's. */
static void check_still_manager(struct tj_discover *d, bool now)
{
    struct timespec ts;
    char role[64];

    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (!d->manager || (!now && ts.tv_sec < d->role_checked + ROLE_CHECK_S))
        return;
    d->role_checked = ts.tv_sec;
    d->swarm_said = true; /* a demotion is said below, in its own words */
    if (!read_swarm_role(d, role, sizeof(role), true) || d->manager)
        return; /* /info did not answer (nothing learned), or still a manager */
    tj_log(TJ_LOG_WARN, "docker: this node is no longer a Swarm manager (%s): %s", role,
           tj_labels_following(d->cfg.labels)
               ? "service labels now come from the managers' tailjets (--label-source)"
               : "service labels can no longer be read here; the last ones known stay in use "
                 "(give --label-source to follow the managers' tailjets)");
    for (struct ctr *c = d->ctrs; c; c = c->next)
        if (c->svc_id)
            ctr_apply(d, c, false);
}

/* Inspects a container and follows it (or applies new rules). */
static void ctr_inspect(struct tj_discover *d, const char *id, bool initial)
{
    char path[160], err[512];
    struct ctr *c, *old;
    cJSON *j;
    long status;
    int rc;

    snprintf(path, sizeof(path), "/containers/%s/json", id);
    if ((rc = tj_docker_get(d->dk, path, &j, &status, err, sizeof(err))) != 0) {
        if (rc != TJ_ENOENT && (old = ctr_find(d, id)))
            old->seen = true; /* a failed request is not a removed container */
        if (rc != TJ_ENOENT)
            tj_log(TJ_LOG_WARN, "docker: %s", err);
        return; /* gone already: its destroy event follows */
    }
    c = ctr_from_json(j);
    cJSON_Delete(j);
    if (!c) {
        tj_log(TJ_LOG_INFO, "container %.12s has no json-file log: not followed", id);
        return;
    }
    if (ctr_is_self(d, c)) {
        ctr_free(c);
        return;
    }
    if ((old = ctr_find(d, c->id))) { /* known: keep what it is followed with */
        old->seen = true;
        old->gone = false; /* listed again: not removed after all */
        ctr_free(c);
        ctr_apply(d, old, initial);
        return;
    }
    if (c->svc_id)
        recheck_role(d);
    if (d->manager && c->svc_id && !svc_find(d, c->svc_id))
        svc_fetch(d, c->svc_id);
    if (labels_missing(d, c) && d->cfg.label_wait_ms) {
        c->wait_until = mono_ms() + d->cfg.label_wait_ms;
        c->initial = initial;
    }
    ctr_add(d, c);
    tj_log(TJ_LOG_INFO, "container %.12s %s (image %s%s%s): following %s", c->id,
           c->name ? c->name : "", c->image ? c->image : "?", c->svc_name ? ", service " : "",
           c->svc_name ? c->svc_name : "", c->log_path);
    ctr_apply(d, c, initial);
}

/* Lists every container (running or not: a stopped one's log may still have unread lines) and
 * reconciles: new ones are followed, vanished ones released. */
static int reconcile(struct tj_discover *d, bool initial)
{
    char err[512];
    cJSON *j, *it;
    long status;
    struct ctr *c, *next;

    if (tj_docker_get(d->dk, "/containers/json?all=1", &j, &status, err, sizeof(err)) != 0) {
        tj_log(TJ_LOG_WARN, "docker: %s", err);
        return TJ_EIO;
    }
    for (c = d->ctrs; c; c = c->next)
        c->seen = false;
    if (d->manager)
        svcs_fetch_all(d);
    cJSON_ArrayForEach(it, j)
    {
        const char *id = str_at(it, "Id", NULL);
        if (id)
            ctr_inspect(d, id, initial);
    }
    cJSON_Delete(j);
    for (c = d->ctrs; c; c = next) {
        next = c->next;
        if (!c->seen)
            ctr_forget(d, c->id);
        else
            ctr_apply(d, c, false); /* service labels may have changed meanwhile */
    }
    return 0;
}

static void on_event(void *arg, const cJSON *ev)
{
    struct tj_discover *d = arg;
    const char *type = str_at(ev, "Type", NULL), *action = str_at(ev, "Action", NULL);
    const char *id = str_at(ev, "Actor", "ID");
    struct event *e;

    if (!type || !action || !id)
        return;
    if (d->nev == MAX_EVENTS) {
        d->ev_overflow = true; /* a full listing will follow */
        return;
    }
    e = &d->ev[d->nev++];
    snprintf(e->type, sizeof(e->type), "%s", type);
    snprintf(e->action, sizeof(e->action), "%s", action);
    snprintf(e->id, sizeof(e->id), "%s", id);
}

static void handle_events(struct tj_discover *d)
{
    if (d->ev_overflow) {
        d->nev = 0;
        d->ev_overflow = false;
        reconcile(d, false);
        return;
    }
    for (size_t i = 0; i < d->nev; i++) {
        struct event *e = &d->ev[i];
        if (strcmp(e->type, "container") == 0) {
            if (strcmp(e->action, "start") == 0)
                ctr_inspect(d, e->id, false);
            else if (strcmp(e->action, "destroy") == 0)
                ctr_forget(d, e->id);
        } else if (strcmp(e->type, "service") == 0 && (recheck_role(d), d->manager)) {
            if (strcmp(e->action, "remove") == 0) {
                svc_remove(d, e->id); /* its tasks' containers are destroyed, released then */
                publish_table(d);
                continue;
            }
            if (svc_fetch(d, e->id) == 0)
                for (struct ctr *c = d->ctrs; c; c = c->next)
                    if (c->svc_id && strcmp(c->svc_id, e->id) == 0)
                        ctr_apply(d, c, false);
        }
    }
    d->nev = 0;
}

/* Asks /info whether this node is a Swarm manager; says once when it is a worker. Returns
 * false when /info did not answer: the node is then taken for a worker, unless `keep` says to
 * leave the role as it was. */
static bool read_swarm_role(struct tj_discover *d, char *role, size_t n, bool keep)
{
    char err[512];
    cJSON *j;
    long status;

    snprintf(role, n, "swarm inactive");
    if (tj_docker_get(d->dk, "/info", &j, &status, err, sizeof(err)) != 0) {
        if (keep)
            return false;
        d->manager = false;
        if (d->cfg.labels)
            tj_labels_set_role(d->cfg.labels, false);
        return false;
    }
    d->manager = false;
    {
        const cJSON *sw = cJSON_GetObjectItemCaseSensitive(j, "Swarm");
        const char *state = str_at(sw, "LocalNodeState", NULL);
        bool control = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sw, "ControlAvailable"));
        if (state && strcmp(state, "active") == 0) {
            d->manager = control;
            snprintf(role, n, "swarm %s", control ? "manager" : "worker");
            if (!control && !d->swarm_said) {
                if (tj_labels_following(d->cfg.labels))
                    tj_log(TJ_LOG_INFO, "docker: this node is a Swarm worker: service labels "
                                        "come from the managers' tailjets (--label-source)");
                else
                    tj_log(TJ_LOG_WARN,
                           "docker: this node is a Swarm worker: service labels cannot be read "
                           "here (only managers have them); give --label-source to read them "
                           "from the managers' tailjets; container labels are used meanwhile");
                d->swarm_said = true;
            }
        }
    }
    cJSON_Delete(j);
    if (d->cfg.labels)
        tj_labels_set_role(d->cfg.labels, d->manager);
    return true;
}

static void set_state(struct tj_discover *d, bool connected, const char *why)
{
    pthread_mutex_lock(&d->lock);
    d->connected = connected;
    snprintf(d->why, sizeof(d->why), "%s", why);
    pthread_mutex_unlock(&d->lock);
}

static void docker_loop(struct tj_discover *d)
{
    unsigned backoff = 200;
    bool initial = true, said_down = false;
    char err[512], version[64], api[32], role[64];

    while (!stopping(d)) {
        if (tj_docker_negotiate(d->dk, version, sizeof(version), api, sizeof(api), err,
                                sizeof(err)) != 0) {
            set_state(d, false, err);
            if (!said_down)
                tj_log(TJ_LOG_WARN, "docker: %s; retrying (back-off up to 5 s)", err);
            said_down = true;
            nap(d, backoff);
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
            continue;
        }
        read_swarm_role(d, role, sizeof(role), false);
        tj_log(TJ_LOG_INFO, "docker: connected to %s (API %s, engine %s, %s)", d->cfg.docker_host,
               api, version, role);
        labels_sync(d);
        /* The stream first, so that nothing that happens while listing is missed. */
        if (tj_docker_events_open(d->dk, err, sizeof(err)) != 0 || reconcile(d, initial) != 0) {
            tj_docker_events_close(d->dk);
            nap(d, backoff);
            continue;
        }
        initial = false;
        said_down = false;
        backoff = 200;
        set_state(d, true, "");
        while (!stopping(d)) {
            unsigned wait = pending_check(d, 1000);
            int rc = tj_docker_events_poll(d->dk, wait, on_event, d, err, sizeof(err));
            handle_events(d);
            check_still_manager(d, false);
            labels_sync(d);
            if (rc) {
                set_state(d, false, err);
                if (!stopping(d))
                    tj_log(TJ_LOG_WARN, "docker: %s; reconnecting", err);
                break;
            }
        }
        tj_docker_events_close(d->dk);
        if (stopping(d))
            break;
        pthread_mutex_lock(&d->lock);
        d->st.reconnects++;
        pthread_mutex_unlock(&d->lock);
        nap(d, backoff);
    }
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
            c = ctr_from_json(j);
            cJSON_Delete(j);
            if (!c)
                continue;
            if (ctr_is_self(d, c)) {
                ctr_free(c);
                continue;
            }
            if (ctr_find(d, c->id)) {
                ctr_find(d, c->id)->seen = true;
                ctr_find(d, c->id)->gone = false; /* listed again: not removed after all */
                ctr_free(c);
                continue;
            }
            if (labels_missing(d, c) && d->cfg.label_wait_ms) {
                c->wait_until = mono_ms() + d->cfg.label_wait_ms;
                c->initial = initial;
            }
            ctr_add(d, c);
            tj_log(TJ_LOG_INFO, "container %.12s %s (from %s): following %s", c->id,
                   c->name ? c->name : "", d->cfg.docker_root, c->log_path);
            ctr_apply(d, c, initial);
        }
    }
    globfree(&gl);
    for (c = d->ctrs; c; c = next) {
        next = c->next;
        if (!c->seen)
            ctr_forget(d, c->id);
    }
}

static void *discover_main(void *arg)
{
    struct tj_discover *d = arg;

    if (d->cfg.docker_host) {
        docker_loop(d);
        return NULL;
    }
    tj_log(TJ_LOG_INFO,
           "docker: reading containers from %s/containers (no API: container labels, and "
           "service labels from --label-source when given)",
           d->cfg.docker_root);
    if (d->cfg.labels)
        tj_labels_set_role(d->cfg.labels, false); /* without the API: a worker's view */
    set_state(d, true, ""); /* no connection to lose: /health has nothing to say about it */
    for (bool initial = true; !stopping(d); initial = false) {
        labels_sync(d);
        root_scan(d, initial);
        if (initial && tj_engine_release_eof(d->e) != 0) /* --exit-on-eof may end after these */
            tj_log(TJ_LOG_ERROR, "out of memory: --exit-on-eof may end before every container "
                                 "found is read");
        nap(d, pending_check(d, d->cfg.poll_ms));
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
        ctr_free(c);
    }
    while (d->svcs) {
        struct svc *s = d->svcs;
        d->svcs = s->next;
        svc_free(s);
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
