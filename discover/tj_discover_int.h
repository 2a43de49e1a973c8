/* tj_discover_int.h: the discovery thread's shared state (struct tj_discover, its tables of
 * containers and services, the cache of compiled rules, the batch of Docker events) and the small
 * helpers every part uses; included by the discovery modules and by nothing else: tj_discover.c
 * (life cycle, docker-root scans, /metrics and /health), tj_label_rules.c (labels to rules),
 * tj_table.c (the containers' and services' tables, the label table published and taken) and
 * tj_docker_loop.c (the Docker events and listing loop, the Swarm role).
 *
 * Everything here is the discovery thread's but the fields marked otherwise: `stop` is atomic,
 * and `st`, `connected`, `why` and `following` are read and written under d->lock. */
#ifndef TJ_DISCOVER_INT_H
#define TJ_DISCOVER_INT_H

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tj_discover.h"
#include "tj_docker.h"
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

static inline int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline bool stopping(struct tj_discover *d)
{
    return __atomic_load_n(&d->stop, __ATOMIC_ACQUIRE);
}

/* Sleeps ms, or less when asked to stop. */
static inline void nap(struct tj_discover *d, unsigned ms)
{
    struct pollfd p = {d->wake_fd, POLLIN, 0};
    poll(&p, 1, (int)ms);
}

static inline const char *str_at(const cJSON *o, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b)
        v = cJSON_GetObjectItemCaseSensitive(v, b);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static inline char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* tj_discover.c: the connection state /health reports (under d->lock). */
void tj_discover_set_state(struct tj_discover *d, bool connected, const char *why);

#endif
