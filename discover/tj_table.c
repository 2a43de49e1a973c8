/* tj_table.c: the discovery thread's tables: containers (added, found, forgotten: a container
 * removed while it waits for its labels is kept until its wait ends, then read to its end and
 * released) and Swarm services (set from Docker's answers on a manager, or from the label table
 * taken from the label sources on a worker); a manager publishes its services' log labels for
 * the workers. Runs on the discovery thread. */
#include "tj_table.h"

#include "tj_label_rules.h"
#include "tj_labels.h"
#include "tj_log.h"

struct svc *tj_table_svc_find(struct tj_discover *d, const char *id)
{
    struct svc *s = d->svcs;
    while (s && strcmp(s->id, id) != 0)
        s = s->next;
    return s;
}

void tj_table_ctr_free(struct ctr *c)
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
bool tj_table_ctr_is_self(struct tj_discover *d, const struct ctr *c)
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
void tj_table_ctr_add(struct tj_discover *d, struct ctr *c)
{
    c->seen = true;
    c->next = d->ctrs;
    d->ctrs = c;
    pthread_mutex_lock(&d->lock);
    d->st.containers++;
    d->following++;
    pthread_mutex_unlock(&d->lock);
}

struct ctr *tj_table_ctr_find(struct tj_discover *d, const char *id)
{
    struct ctr *c = d->ctrs;
    while (c && strcmp(c->id, id) != 0)
        c = c->next;
    return c;
}

void tj_table_ctr_forget(struct tj_discover *d, const char *id)
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
    tj_table_ctr_free(c);
}

/* Builds a container from an inspect answer or a config.v2.json (same field names). Returns
 * NULL when it has no json-file log. */
struct ctr *tj_table_ctr_from_json(const cJSON *j)
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
        tj_table_ctr_free(c);
        return NULL;
    }
    return c;
}

/* ---- Swarm services (managers) ---- */

void tj_table_svc_free(struct svc *s)
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
    struct svc *s = tj_table_svc_find(d, id);

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

void tj_table_svc_set_docker(struct tj_discover *d, const cJSON *j)
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

void tj_table_svc_remove(struct tj_discover *d, const char *id)
{
    struct svc **pp = &d->svcs, *s;

    while ((s = *pp) && strcmp(s->id, id) != 0)
        pp = &s->next;
    if (s) {
        *pp = s->next;
        tj_table_svc_free(s);
    }
}

/* Removes the services not seen since tj_table_svcs_unsee. */
void tj_table_svcs_prune(struct tj_discover *d)
{
    struct svc **pp = &d->svcs, *s;

    while ((s = *pp)) {
        if (s->seen) {
            pp = &s->next;
        } else {
            *pp = s->next;
            tj_table_svc_free(s);
        }
    }
}

void tj_table_svcs_unsee(struct tj_discover *d)
{
    for (struct svc *s = d->svcs; s; s = s->next)
        s->seen = false;
}

static int cmp_svc(const void *a, const void *b)
{
    return strcmp((*(struct svc *const *)a)->id, (*(struct svc *const *)b)->id);
}

/* On a manager: publishes every service's log labels (and only those) for the workers. */
void tj_table_publish(struct tj_discover *d)
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

/* Forgets the containers removed while they waited whose wait is over: they were just followed
 * with their rules, so their held files are read to their end, then released. */
static void ctrs_reap(struct tj_discover *d)
{
    struct ctr *c, *next;

    for (c = d->ctrs; c; c = next) {
        next = c->next;
        if (c->gone && !c->wait_until)
            tj_table_ctr_forget(d, c->id);
    }
}

/* On a worker: takes a new table from the label sources, if one came, and applies it to the
 * tasks. Returns whether one came. */
bool tj_table_labels_sync(struct tj_discover *d)
{
    cJSON *svcs, *s;

    if (d->manager || !tj_labels_following(d->cfg.labels) ||
        !(svcs = tj_labels_take(d->cfg.labels, &d->labels_gen)))
        return false;
    tj_table_svcs_unsee(d);
    cJSON_ArrayForEach(s, svcs)
    {
        const cJSON *version = cJSON_GetObjectItemCaseSensitive(s, "version");
        svc_set(d, str_at(s, "id", NULL), str_at(s, "name", NULL),
                cJSON_IsNumber(version) ? (uint64_t)version->valuedouble : 0,
                cJSON_GetObjectItemCaseSensitive(s, "labels"));
    }
    cJSON_Delete(svcs);
    tj_table_svcs_prune(d);
    for (struct ctr *c = d->ctrs; c; c = c->next)
        if (c->svc_id)
            tj_label_rules_apply(d, c, false);
    ctrs_reap(d);
    return true;
}

/* Applies the rules of tasks whose wait for their service's labels is over; returns how long
 * until the next one's wait ends (ms), at most `max`. */
unsigned tj_table_pending_check(struct tj_discover *d, unsigned max)
{
    int64_t now = mono_ms(), next = now + max;

    for (struct ctr *c = d->ctrs; c; c = c->next) {
        if (!c->wait_until)
            continue;
        tj_label_rules_apply(d, c, c->initial);
        if (c->wait_until && c->wait_until < next)
            next = c->wait_until;
    }
    ctrs_reap(d);
    return next > now ? (unsigned)(next - now) : 1;
}
