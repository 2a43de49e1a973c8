/* tj_tap.h: live taps on the records tailjet ships (`tailjet tap`, GET /v1/tap, the /ui/ page).
 *
 * Records are offered to the hub by the engine's workers right after a chunk is encoded (at
 * encode time, before the output acknowledges them). Each tap has its own bounded byte ring that
 * a worker fills without ever waiting for the tap's reader: what does not fit is dropped and
 * counted for that tap, and the reader is told in its stream. The hub also keeps, per service,
 * the last TJ_TAP_LAST_FAILURES failed records and the patterns that missed them.
 *
 * Cost with nobody tapping: tj_tap_wanted is one relaxed atomic load per chunk; a chunk with
 * failed records is offered anyway (only its last failures are looked at, from its end).
 *
 * Threads: workers call tj_tap_offer; HTTP connection threads open, read and close taps. */
#ifndef TJ_TAP_H
#define TJ_TAP_H

#include "tj_buf.h"
#include "tj_record.h"
#include "tj_ruleset.h"

#define TJ_TAP_MAX_TAPS      8
#define TJ_TAP_RING_BYTES    ((size_t)1 << 20)
#define TJ_TAP_LAST_FAILURES 20
#define TJ_TAP_MAX_SERVICES  8 /* --service names one tap may filter on */

struct tj_tap_hub;
struct tj_tap;

/* The public head of the hub, for tj_tap_wanted only. */
struct tj_tap_head {
    unsigned active; /* atomic: taps open */
};

/* What one tap wants (all strings borrowed during tj_tap_open only). */
struct tj_tap_filter {
    const char *service[TJ_TAP_MAX_SERVICES]; /* service names (the metrics' service label) */
    size_t nservice;                          /* 0: every service */
    const char *container;                    /* container name or id (prefix), or NULL */
    bool failures;                            /* only records with a failure tag */
};

/* Returns a hub, or NULL when out of memory. */
struct tj_tap_hub *tj_tap_hub_create(void);
/* Wakes every reader (they read the end of their stream) and refuses new taps. Any thread. */
void tj_tap_hub_shutdown(struct tj_tap_hub *h);
/* Frees the hub; after every tap is closed. NULL does nothing. */
void tj_tap_hub_destroy(struct tj_tap_hub *h);

/* Whether a chunk must be offered: a tap is open, or the chunk has failed records. */
static inline bool tj_tap_wanted(const struct tj_tap_hub *h, bool failures)
{
    return h && (failures || __atomic_load_n(&((const struct tj_tap_head *)(const void *)h)->active,
                                             __ATOMIC_RELAXED) != 0);
}

/* Offers one chunk's records (NDJSON, records[0..len)) of service `service` (the metrics'
 * service label), read with meta and parsed with rs (borrowed). Never waits for a tap's reader.
 */
void tj_tap_offer(struct tj_tap_hub *h, const char *service, const struct tj_ruleset *rs,
                  const struct tj_meta *meta, const char *records, size_t len);

/* Opens a tap. Returns it, or NULL: TJ_EAGAIN in *rc when TJ_TAP_MAX_TAPS are open, TJ_EIO when
 * the hub is shutting down, TJ_ENOMEM. */
struct tj_tap *tj_tap_open(struct tj_tap_hub *h, const struct tj_tap_filter *f, int *rc);
/* Copies the tap's stream into buf[0..max): its records' bytes (a record may be split between
 * two reads), and, where records were dropped, a line {"tap":{"dropped":N}} after the records
 * kept before the first of them. Waits up to wait_ms for something. Returns the bytes copied
 * (0: nothing yet), or -1 once the hub shuts down. One reader per tap. */
long tj_tap_read(struct tj_tap *t, char *buf, size_t max, unsigned wait_ms);
/* Closes the tap (its ring is freed). NULL does nothing. */
void tj_tap_close(struct tj_tap *t);

/* Appends the hub's series (tailjet_tap_* in Prometheus' text format) to b. */
void tj_tap_metrics(struct tj_tap_hub *h, struct tj_buf *b);
/* Appends a JSON object {"SERVICE":{"patterns":[...],"failures":{"TAG":N},"last":[RECORD...]}}
 * of the failures seen so far (newest last) to b. */
void tj_tap_failures_json(struct tj_tap_hub *h, struct tj_buf *b);

/* Whether one NDJSON record (without its '\n') carries a tag, i.e. failed somehow. */
bool tj_tap_record_failed(const char *rec, size_t len);

#endif
