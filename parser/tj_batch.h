/* tj_batch.h: events parsed a batch at a time. A reader adds the events of what it has read,
 * then runs the batch: every event is matched, then every record is encoded. Run back to back,
 * the JIT code, the encoder and their branch history stay warm; `tailjet parse` and the
 * engine's workers gain about 5% of their time from it (README, Performance).
 *
 * An event's texts must outlive it until the batch runs. Those inside the region the reader
 * names (its read buffer, its clock text) do; any other text (a line joined from partial
 * entries, an unescaped message in the assembler's scratch) is copied into the batch's arena.
 * One thread: a batch is the reader's own. */
#ifndef TJ_BATCH_H
#define TJ_BATCH_H

#include "tj_ruleset.h"

#define TJ_BATCH_EVENTS 64
#define TJ_BATCH_ARENA  (256 * 1024) /* an event whose texts need more is parsed on its own */

struct tj_batch;

/* Encodes one matched event (what tj_ruleset_encode needs, with the caller's output). */
typedef int tj_batch_encode_fn(void *arg, const struct tj_event *ev,
                               const struct tj_match_result *res, const size_t *ov);

/* Returns an empty batch, or NULL when out of memory. */
struct tj_batch *tj_batch_create(void);
void tj_batch_destroy(struct tj_batch *b);

/* Texts in [lo, hi) or [now, now + now_len) are not copied: the caller runs the batch before
 * they change. */
void tj_batch_region(struct tj_batch *b, const char *lo, const char *hi, const char *now,
                     size_t now_len);

/* Adds ev. When the batch is full, or its arena has no room for ev's texts, runs it first; an
 * event too large for an empty arena is matched and encoded at once, after the batch. Returns
 * 0 or the first error of tj_batch_run. */
int tj_batch_push(struct tj_batch *b, const struct tj_event *ev, const struct tj_ruleset *rs,
                  struct tj_matcher *m, tj_batch_encode_fn *fn, void *arg);

/* Forgets the events not yet run. */
void tj_batch_clear(struct tj_batch *b);

/* Matches every event with rs, then calls fn on each in order, stopping at its first error.
 * The batch is empty afterwards, whatever happened. Returns 0 or fn's error. */
int tj_batch_run(struct tj_batch *b, const struct tj_ruleset *rs, struct tj_matcher *m,
                 tj_batch_encode_fn *fn, void *arg);

#endif
