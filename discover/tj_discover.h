/* tj_discover.h: discovery of containers and their labels, fed to the engine as files to follow
 * with compiled rules. Docker mode follows the Engine API (list, inspect, events, Swarm service
 * labels on managers); docker-root mode reads <root>/containers/<id>/config.v2.json. One
 * discovery thread; it owns its Docker client, its tables and the ruleset cache. */
#ifndef TJ_DISCOVER_H
#define TJ_DISCOVER_H

#include <cjson/cJSON.h>

#include "tj_engine.h"
#include "tj_labels.h"

struct tj_discover_cfg {
    const char *docker_host;       /* "unix:///var/run/docker.sock", or NULL */
    const char *docker_root;       /* data root for docker-root mode, or NULL */
    const char *label_prefix;      /* "" or e.g. "com.df." */
    const struct tj_grok_lib *lib; /* borrowed for the discovery's lifetime */
    unsigned poll_ms;              /* docker-root rescan interval */
    struct tj_labels *labels;      /* the label table hub (borrowed), or NULL */
    unsigned label_wait_ms;        /* on a worker: how long a task waits for its service */
    bool include_self;             /* follow the container tailjet runs in too */
};

struct tj_discover_stats {
    uint64_t containers, pattern_errors, reconnects, label_updates;
    uint64_t label_waits; /* tasks shipped unparsed: their service's labels came too late */
};

struct tj_discover;

/* Starts the discovery thread feeding e (borrowed: it must outlive tj_discover_stop). Returns
 * it or NULL with err filled. The first connection is attempted at once; an engine that is not
 * reachable yet is retried with back-off (logged), it is not an error here. */
struct tj_discover *tj_discover_start(const struct tj_discover_cfg *cfg, struct tj_engine *e,
                                      char *err, size_t errlen);

/* Stops and joins the thread, frees everything. NULL does nothing. */
void tj_discover_stop(struct tj_discover *d);

/* Appends discovery's series (Prometheus text) to b. Any thread. */
void tj_discover_metrics(struct tj_discover *d, struct tj_buf *b);

/* Appends "docker: not connected: WHY" when so and returns the number of problems. */
size_t tj_discover_health(struct tj_discover *d, struct tj_buf *b);

void tj_discover_get_stats(struct tj_discover *d, struct tj_discover_stats *st);

/* Label names and values to rules: exposed for tests. Fills exprs (borrowed from the labels
 * object) in order: <prefix>logPattern, then <prefix>logPattern.1, .2, ... while present.
 * Returns the count (at most max); *more says whether a further non-empty alternative was left
 * out. */
size_t tj_labels_patterns(const cJSON *labels, const char *prefix, const char **exprs, size_t max,
                          bool *more);

#endif
