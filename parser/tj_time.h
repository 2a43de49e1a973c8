/* tj_time.h: an event's own time, taken from one of its fields (the job of Logstash's `date`
 * filter). A spec is "FIELD FORMAT[|FORMAT...][|zone=OFFSET]": the field (a grok field name,
 * "timestamp", "[a][b]" or "a.b"), then the formats tried in order: ISO8601, UNIX (seconds,
 * fraction allowed), UNIX_MS, TAI64N, or a Joda-style pattern ("dd/MMM/yyyy:HH:mm:ss Z",
 * "MMM  d HH:mm:ss"). zone= gives the offset (UTC, +HH:MM, -HHMM) of times whose text has none;
 * it is UTC when not given. A time without a year gets the year of the reference time (the
 * json-file time), or the year before when that puts it more than a day after the reference (a
 * December line read in January). Compiled once; parsing allocates nothing and is thread-safe. */
#ifndef TJ_TIME_H
#define TJ_TIME_H

#include "tj_common.h"

#define TJ_TIME_MAX_FORMATS 8
/* Longest text tj_time_parse writes: "-12345-01-01T00:00:00.123456789Z" and a NUL. */
#define TJ_TIME_TEXT_MAX 40

struct tj_time_spec;

/* Compiles spec (NUL-terminated, borrowed). Returns it (owned, tj_time_spec_destroy) or NULL
 * with err filled: no field, no format, an unknown pattern letter, a bad zone. */
struct tj_time_spec *tj_time_spec_create(const char *spec, char *err, size_t errlen);
void tj_time_spec_destroy(struct tj_time_spec *t);

/* The field whose text is parsed (borrowed from t). */
const char *tj_time_spec_field(const struct tj_time_spec *t);

/* Parses s[0..n) with the first format that fits the whole text. ref is the reference time
 * (RFC 3339 text, for a format without a year; may be empty: then the current time). On
 * success writes the time as RFC 3339 UTC ("2000-10-10T20:55:36.123Z", with as many fraction
 * digits as the text had) into out (TJ_TIME_TEXT_MAX bytes) and returns its length; returns -1
 * when no format fits. */
int tj_time_parse(const struct tj_time_spec *t, const char *s, size_t n, struct tj_slice ref,
                  char *out);

#endif
