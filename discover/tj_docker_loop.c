/* tj_docker_loop.c: Docker mode: connects to the engine (backing off while it is down), asks
 * /info for the Swarm role (and again while it may change), opens the event stream before
 * listing every container, then applies the events batch by batch (container start and destroy,
 * service update and remove), inspecting containers and reading services' labels on a manager.
 * Runs on the discovery thread. */
#include "tj_docker_loop.h"

#include "tj_label_rules.h"
#include "tj_labels.h"
#include "tj_log.h"
#include "tj_table.h"

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
        tj_table_svc_set_docker(d, j);
        cJSON_Delete(j);
        tj_table_publish(d);
    } else if (rc == TJ_ENOENT) {
        tj_table_svc_remove(d, id);
        tj_table_publish(d);
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
    tj_table_svcs_unsee(d);
    cJSON_ArrayForEach(s, j)
    {
        tj_table_svc_set_docker(d, s);
    }
    cJSON_Delete(j);
    tj_table_svcs_prune(d);
    tj_table_publish(d);
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
                tj_label_rules_apply(d, c, false);
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
            tj_label_rules_apply(d, c, false);
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
        if (rc != TJ_ENOENT && (old = tj_table_ctr_find(d, id)))
            old->seen = true; /* a failed request is not a removed container */
        if (rc != TJ_ENOENT)
            tj_log(TJ_LOG_WARN, "docker: %s", err);
        return; /* gone already: its destroy event follows */
    }
    c = tj_table_ctr_from_json(j);
    cJSON_Delete(j);
    if (!c) {
        tj_log(TJ_LOG_INFO, "container %.12s has no json-file log: not followed", id);
        return;
    }
    if (tj_table_ctr_is_self(d, c)) {
        tj_table_ctr_free(c);
        return;
    }
    if ((old = tj_table_ctr_find(d, c->id))) { /* known: keep what it is followed with */
        old->seen = true;
        old->gone = false; /* listed again: not removed after all */
        tj_table_ctr_free(c);
        tj_label_rules_apply(d, old, initial);
        return;
    }
    if (c->svc_id)
        recheck_role(d);
    if (d->manager && c->svc_id && !tj_table_svc_find(d, c->svc_id))
        svc_fetch(d, c->svc_id);
    if (tj_label_rules_missing(d, c) && d->cfg.label_wait_ms) {
        c->wait_until = mono_ms() + d->cfg.label_wait_ms;
        c->initial = initial;
    }
    tj_table_ctr_add(d, c);
    tj_log(TJ_LOG_INFO, "container %.12s %s (image %s%s%s): following %s", c->id,
           c->name ? c->name : "", c->image ? c->image : "?", c->svc_name ? ", service " : "",
           c->svc_name ? c->svc_name : "", c->log_path);
    tj_label_rules_apply(d, c, initial);
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
            tj_table_ctr_forget(d, c->id);
        else
            tj_label_rules_apply(d, c, false); /* service labels may have changed meanwhile */
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
                tj_table_ctr_forget(d, e->id);
        } else if (strcmp(e->type, "service") == 0 && (recheck_role(d), d->manager)) {
            if (strcmp(e->action, "remove") == 0) {
                tj_table_svc_remove(d,
                                    e->id); /* its tasks' containers are destroyed, released then */
                tj_table_publish(d);
                continue;
            }
            if (svc_fetch(d, e->id) == 0)
                for (struct ctr *c = d->ctrs; c; c = c->next)
                    if (c->svc_id && strcmp(c->svc_id, e->id) == 0)
                        tj_label_rules_apply(d, c, false);
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

void tj_docker_loop_run(struct tj_discover *d)
{
    unsigned backoff = 200;
    bool initial = true, said_down = false;
    char err[512], version[64], api[32], role[64];

    while (!stopping(d)) {
        if (tj_docker_negotiate(d->dk, version, sizeof(version), api, sizeof(api), err,
                                sizeof(err)) != 0) {
            tj_discover_set_state(d, false, err);
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
        tj_table_labels_sync(d);
        /* The stream first, so that nothing that happens while listing is missed. */
        if (tj_docker_events_open(d->dk, err, sizeof(err)) != 0 || reconcile(d, initial) != 0) {
            tj_docker_events_close(d->dk);
            nap(d, backoff);
            continue;
        }
        initial = false;
        said_down = false;
        backoff = 200;
        tj_discover_set_state(d, true, "");
        while (!stopping(d)) {
            unsigned wait = tj_table_pending_check(d, 1000);
            int rc = tj_docker_events_poll(d->dk, wait, on_event, d, err, sizeof(err));
            handle_events(d);
            check_still_manager(d, false);
            tj_table_labels_sync(d);
            if (rc) {
                tj_discover_set_state(d, false, err);
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
