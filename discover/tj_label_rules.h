/* tj_label_rules.h: labels to rules, for the discovery thread (tj_discover_int.h's state).
 * A container's patterns, multiline, definitions, ECS mode, timestamp, topic and index come from
 * its labels (its own, else its service's); the rules compiled from them are cached in d->cache
 * (each distinct text once, one reference held by the cache, dropped at tj_discover_stop).
 * Both functions run on the discovery thread only. */
#ifndef TJ_LABEL_RULES_H
#define TJ_LABEL_RULES_H

#include "tj_discover_int.h"

/* Whether c is a Swarm task on a worker that follows label sources and whose service is not in
 * the table yet. Changes nothing. */
bool tj_label_rules_missing(struct tj_discover *d, const struct ctr *c);

/* Tells the engine to follow c's file with the rules of its current labels, unless it already
 * follows it with the same ones (then nothing happens). A task still waiting for its service's
 * labels has its file held open (not read) instead; when the wait ends without them its lines
 * are shipped tagged _labelsmissing. Labels that do not compile are said (counted in
 * st.pattern_errors) and its lines are shipped tagged _patternerror. `initial`: found at start
 * (--start-at applies). Cannot fail but for memory, which is logged; c stays in the table. */
void tj_label_rules_apply(struct tj_discover *d, struct ctr *c, bool initial);

#endif
