/* tj_docker_loop.h: Docker mode of the discovery thread (tj_discover_int.h's state): the
 * connection to the engine, its event stream and its listings. */
#ifndef TJ_DOCKER_LOOP_H
#define TJ_DOCKER_LOOP_H

#include "tj_discover_int.h"

/* Runs until d->stop: connects to d->dk (retrying with a back-off up to 5 s, the reason in
 * /health meanwhile), reads the Swarm role, opens the event stream, then lists every container
 * (following new ones, releasing vanished ones) and applies the events as they come; after a
 * lost stream it counts a reconnect and starts again. Returns only when stopping; the stream is
 * closed then. Runs on the discovery thread. */
void tj_docker_loop_run(struct tj_discover *d);

#endif
