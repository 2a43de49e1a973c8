/* tj_table.h: the discovery thread's tables of containers (d->ctrs) and Swarm services (d->svcs),
 * both owned by struct tj_discover (tj_discover_int.h). Every function runs on the discovery
 * thread; the counters they change (st, following) are changed under d->lock. */
#ifndef TJ_TABLE_H
#define TJ_TABLE_H

#include "tj_discover_int.h"

/* The service with this id, or NULL. Borrowed: valid until the table changes. */
struct svc *tj_table_svc_find(struct tj_discover *d, const char *id);

/* Frees a container that is in no table (all its strings and labels). */
void tj_table_ctr_free(struct ctr *c);

/* Whether c is the container tailjet runs in and is left out (not --include-self); says so once. */
bool tj_table_ctr_is_self(struct tj_discover *d, const struct ctr *c);

/* Adds c (taken over) to the table, seen, and counts it. */
void tj_table_ctr_add(struct tj_discover *d, struct ctr *c);

/* The container with this id, or NULL. Borrowed: valid until it is forgotten. */
struct ctr *tj_table_ctr_find(struct tj_discover *d, const char *id);

/* Removes the container with this id (nothing if none) and tells the engine to read its file to
 * its end, then release it. One that waits for its labels is only marked gone: it is forgotten
 * once its wait ends. */
void tj_table_ctr_forget(struct tj_discover *d, const char *id);

/* A new container (owned, freed with tj_table_ctr_free) from an inspect answer or a
 * config.v2.json; NULL when it has no json-file log or memory runs out. j is borrowed. */
struct ctr *tj_table_ctr_from_json(const cJSON *j);

/* Frees a service that is in no table. */
void tj_table_svc_free(struct svc *s);

/* Adds or updates the service of a Docker answer (GET /services or /services/ID, borrowed);
 * ignored without an "ID". */
void tj_table_svc_set_docker(struct tj_discover *d, const cJSON *j);

/* Removes and frees the service with this id, if there is one. */
void tj_table_svc_remove(struct tj_discover *d, const char *id);

/* Marks every service unseen; tj_table_svcs_prune then removes those not set since. */
void tj_table_svcs_unsee(struct tj_discover *d);
void tj_table_svcs_prune(struct tj_discover *d);

/* On a manager with a label table: publishes every service's log labels (sorted by id) for the
 * workers; does nothing elsewhere. Out of memory, the table is left as it was (logged). */
void tj_table_publish(struct tj_discover *d);

/* On a worker: takes a new table from the label sources, if one came, and applies it to the
 * tasks. Returns whether one came. */
bool tj_table_labels_sync(struct tj_discover *d);

/* Applies the rules of tasks whose wait for their service's labels is over; returns how long
 * until the next one's wait ends (ms, at least 1), at most `max`. */
unsigned tj_table_pending_check(struct tj_discover *d, unsigned max);

#endif
