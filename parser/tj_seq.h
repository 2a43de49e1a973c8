/* tj_seq.h: sequencing and acknowledgements. A path's parsed chunks are submitted to the output
 * in sequence order by whichever worker holds the next one (a refused submit is retried later
 * by the main thread, with back-off); the output's acknowledgements (tj_engine_ack, any thread)
 * advance each generation's acknowledged offset in sequence order and free the chunks. All of it
 * under e->lock but the submit itself. */
#ifndef TJ_SEQ_H
#define TJ_SEQ_H

#include "tj_engine_int.h"

/* A worker parsed c: it waits on its path's ready list in sequence order, and whatever is next
 * in sequence is submitted. Takes e->lock. */
void tj_seq_chunk_ready(struct tj_engine *e, struct chunk *c);

/* Submits again what the output refused, when its time came. The paths are walked only while
 * some wait: ten thousand idle files cost nothing here. */
void tj_seq_retry_due(struct tj_engine *e, int64_t now);

/* Chunks read and not yet acknowledged. Takes e->lock. */
size_t tj_seq_inflight(struct tj_engine *e);

#endif
