/* tj_es_result.h: what becomes of each document once Elasticsearch answered (or did not): the
 * answer to a request read item by item, each document finished (its batch acknowledged to the
 * engine when all its documents are), retried alone with back-off and jitter, held (a
 * configuration problem: 401, 403, 404, TLS) or written to the dead-letter file; and the problem
 * shown by /health, logged without flooding. Output thread, all of it. */
#ifndef TJ_ES_RESULT_H
#define TJ_ES_RESULT_H

#include "tj_es_out.h"
#include "tj_log.h"

/* Records why documents do not flow (o->problem, for /health). A configuration problem
 * (transient false: credentials, privileges, TLS, the dead-letter file) is logged once, until it
 * clears or another one comes; a transient failure (429, 5xx, a dropped connection, a time-out)
 * at most every 10 s, with the number of those not logged. */
void tj_es_result_problem(struct out_es *o, int kind, bool transient, enum tj_log_level level,
                          const char *fmt, ...) TJ_PRINTF(5, 6);

/* A request to h went through: the problem is over, unless documents their index refuses are
 * still held. */
void tj_es_result_clear(struct out_es *o, const struct host *h);

/* The wait (ms) before a document's attempt number `attempts`: retry.initial_backoff doubled per
 * attempt up to retry.max_backoff, with jitter; slow (a configuration problem): never under a
 * second, unless retry.max_backoff is shorter. */
unsigned tj_es_result_backoff(struct out_es *o, unsigned attempts, bool slow);

/* Puts the documents of the list (taken) back to be encoded again at once (no attempt spent). */
void tj_es_result_requeue_now(struct out_es *o, struct doc *list);

/* Documents whose back-off is over are encoded again, into pieces ahead of o->ready. */
void tj_es_result_requeue_due(struct out_es *o, int64_t now);

/* What Elasticsearch said in the error answer in s->answer (error.type: error.reason, else the
 * start of the body), into buf. */
void tj_es_result_reason(const struct slot *s, char *buf, size_t n);

/* Slot s's request is over (curl's result rc): its documents (s->head, taken) are finished,
 * retried, held or dead-lettered, and the slot is free again. */
void tj_es_result_done(struct out_es *o, struct slot *s, CURLcode rc);

#endif
