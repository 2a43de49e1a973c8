/* tj_labels.h: the Swarm service label table, carried from the managers to every node.
 *
 * Docker keeps service labels in the managers' store only: a worker's engine answers
 * GET /services with 503. So on a manager, discovery publishes its services' log labels here
 * and the HTTP endpoint serves them (GET /v1/services, read-only, optionally behind a shared
 * token); on a worker, a follower thread long-polls the managers' tailjets (--label-source),
 * fails over between them, keeps the last table in the state directory and hands every new
 * table to discovery. The table is JSON:
 *
 *   {"version":"<16 hex>","services":[{"id":"...","name":"...","version":N,
 *                                      "labels":{"logPattern":"..."}}, ...]}
 *
 * "version" is a hash of the services array, so every manager gives the same table the same
 * version and a worker may switch between them freely; a service's "version" is Docker's
 * (Version.Index). Only labels named <prefix>logPattern[.N], logMultiline, logTopic, logIndex,
 * logEcs, logPatternDefinitions and logTimestamp are ever published. */
#ifndef TJ_LABELS_H
#define TJ_LABELS_H

#include <cjson/cJSON.h>

#include "tj_buf.h"

struct tj_labels_cfg {
    const char *sources;   /* "http://h:p[,http://h:p...]" (--label-source), or NULL */
    const char *token;     /* shared secret (served and sent), or NULL: none */
    const char *ca_file;   /* CA for https:// sources, or NULL: the system's */
    const char *state_dir; /* where labels.json is kept (the worker's cache) */
};

struct tj_labels;

/* Creates the hub; with sources, loads the cached table and starts the follower thread.
 * Returns it or NULL with err filled. */
struct tj_labels *tj_labels_create(const struct tj_labels_cfg *cfg, char *err, size_t errlen);
/* Ends long polls in progress (before the HTTP server stops). */
void tj_labels_shutdown(struct tj_labels *h);
/* Stops the follower, frees everything. NULL does nothing. */
void tj_labels_destroy(struct tj_labels *h);

/* True when --label-source was given. */
bool tj_labels_following(const struct tj_labels *h);

/* Discovery: says whether this node is a manager (the follower rests then, and the table is
 * served), and gives the function that wakes discovery when a new table arrives (any thread). */
void tj_labels_set_role(struct tj_labels *h, bool manager);
void tj_labels_set_notify(struct tj_labels *h, void (*fn)(void *), void *arg);

/* Discovery, on a manager: publishes the table made of `services` (a cJSON array of
 * {"id","name","version","labels"} objects, labels already filtered; borrowed). */
void tj_labels_publish(struct tj_labels *h, const cJSON *services);

/* Discovery, on a worker: when a table newer than *gen arrived, returns a copy of its services
 * array (owned; cJSON_Delete) and updates *gen; NULL otherwise. */
cJSON *tj_labels_take(struct tj_labels *h, uint64_t *gen);

/* Whether label `name` (a full label name) is one the table carries, for `prefix`. */
bool tj_labels_is_log_label(const char *name, const char *prefix);

/* The HTTP endpoint: GET /v1/services[?version=V&wait=SECONDS]. With version equal to the
 * current one, waits up to wait (at most 60) seconds for a change, then answers 304. `auth` is
 * the Authorization header (or NULL), peer the client's address (for the refusal's log line). */
void tj_labels_serve(struct tj_labels *h, const char *auth, const char *version, const char *wait,
                     const char *peer, struct tj_buf *body, int *status, const char **ctype);

/* Prometheus series (label source and label table) appended to b. Any thread. */
void tj_labels_metrics(struct tj_labels *h, struct tj_buf *b);
/* Appends the label source's state to b ("label source: ..."); returns 1 when that is a problem
 * (no table at all: services' labels are unknown), else 0. Any thread. */
size_t tj_labels_health(struct tj_labels *h, struct tj_buf *b);

#endif
