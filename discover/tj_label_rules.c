/* tj_label_rules.c: labels to rules. A container's effective labels (its own logPattern*
 * alternatives, else its service's; each other label its own, else its service's) become a
 * tj_rules_spec, compiled once per distinct text into the cache and shared by reference, and
 * the engine is told to follow its file with them; label errors are said once per change, with
 * the label's name. A Swarm task whose service's labels have not come yet (a worker) waits for
 * them, its file held open. Runs on the discovery thread. */
#include "tj_label_rules.h"

#include "tj_labels.h"
#include "tj_log.h"
#include "tj_table.h"

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

/* A label of the container: its own, else its service's. */
static const char *label_of(struct tj_discover *d, const struct ctr *c, const char *name)
{
    const char *v = label_in(c->labels, d->prefix, name);
    struct svc *s;

    if (v || !c->svc_id || !(s = tj_table_svc_find(d, c->svc_id)))
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

    if (n || !c->svc_id || !(s = tj_table_svc_find(d, c->svc_id)))
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
    struct svc *s = c->svc_id ? tj_table_svc_find(d, c->svc_id) : NULL;
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
bool tj_label_rules_missing(struct tj_discover *d, const struct ctr *c)
{
    return c->svc_id && !d->manager && tj_labels_following(d->cfg.labels) &&
           !tj_table_svc_find(d, c->svc_id);
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
void tj_label_rules_apply(struct tj_discover *d, struct ctr *c, bool initial)
{
    const char *exprs[MAX_ALTS];
    bool more;
    size_t n = patterns_of(d, c, exprs, &more);
    const char *multiline = label_of(d, c, "logMultiline");
    const char *ecs = label_of(d, c, "logEcs");
    const char *defs = label_of(d, c, "logPatternDefinitions");
    const char *ts = label_of(d, c, "logTimestamp");
    struct tj_rules_spec spec = {0};
    bool missing = tj_label_rules_missing(d, c);
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
