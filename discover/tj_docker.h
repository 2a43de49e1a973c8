/* tj_docker.h: a small Docker Engine API client over libcurl (unix socket or TCP), answers parsed
 * with cJSON. One client per thread: the discovery thread owns it. */
#ifndef TJ_DOCKER_H
#define TJ_DOCKER_H

#include <cjson/cJSON.h>

#include "tj_common.h"

struct tj_docker;

/* host: "unix:///var/run/docker.sock", "tcp://HOST:PORT" or "http://HOST:PORT". Returns a client
 * (no connection yet) or NULL with err filled. */
struct tj_docker *tj_docker_create(const char *host, char *err, size_t errlen);
void tj_docker_destroy(struct tj_docker *d);

/* Asks GET /version and uses the engine's API version from then on. Fills version (engine) and
 * api. Returns 0, or TJ_EIO with err filled (not reachable, not a Docker engine). */
int tj_docker_negotiate(struct tj_docker *d, char *version, size_t vlen, char *api, size_t alen,
                        char *err, size_t errlen);

/* GET path (below the version prefix, e.g. "/containers/json"). Returns 0 and *out (owned,
 * cJSON_Delete) for a 2xx JSON answer; TJ_ENOENT for 404; TJ_EIO with err filled otherwise
 * (*status gets the HTTP status, 0 when there was none). */
int tj_docker_get(struct tj_docker *d, const char *path, cJSON **out, long *status, char *err,
                  size_t errlen);

/* The event stream: opens GET /events with a type filter, then tj_docker_events_poll waits up
 * to timeout_ms and calls fn for each event object received (borrowed during the call).
 * Returns 0 while the stream is open, TJ_EIO (err filled) when it ended or failed. */
typedef void (*tj_docker_event_fn)(void *arg, const cJSON *ev);
int tj_docker_events_open(struct tj_docker *d, char *err, size_t errlen);
int tj_docker_events_poll(struct tj_docker *d, unsigned timeout_ms, tj_docker_event_fn fn,
                          void *arg, char *err, size_t errlen);
void tj_docker_events_close(struct tj_docker *d);

/* Wakes a tj_docker_events_poll in progress (any thread). */
void tj_docker_wakeup(struct tj_docker *d);

#endif
