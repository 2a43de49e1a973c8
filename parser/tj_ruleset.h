/* tj_ruleset.h: how one source's lines are parsed: pattern alternatives tried in order (the first
 * that matches wins), an optional multiline first-line regex, and the record shapes. Built once
 * (per service, by discovery; per command line, by `tailjet parse`), immutable and
 * reference-counted, so workers use it without locks while a newer one replaces it. */
#ifndef TJ_RULESET_H
#define TJ_RULESET_H

#include "tj_grok.h"
#include "tj_record.h"
#include "tj_time.h"

#define TJ_RULESET_MAX_TS_GROUPS 8

#define TJ_RULESET_MAX_ALTS 16

struct tj_ruleset {
    struct tj_grok *alt[TJ_RULESET_MAX_ALTS]; /* owned references */
    struct tj_shape *shape[TJ_RULESET_MAX_ALTS];
    size_t nalt;
    struct tj_grok *multiline; /* owned reference, or NULL */
    struct tj_shape *plain;    /* metadata only: unparsed and failed lines */
    unsigned base_tags;        /* tags every record gets (e.g. _patternerror) */
    enum tj_ecs_mode ecs;      /* the field names the library's patterns gave */
    struct tj_grok_lib *defs;  /* owned: the source's own definitions, or NULL */
    struct tj_time_spec *ts;   /* owned: where the event's own time is, or NULL */
    /* per alternative: the capture groups of the time field, first set wins */
    uint32_t ts_group[TJ_RULESET_MAX_ALTS][TJ_RULESET_MAX_TS_GROUPS];
    size_t nts_group[TJ_RULESET_MAX_ALTS];
    int refs;
};

/* Everything that says how one source is parsed (borrowed during tj_ruleset_build only). */
struct tj_rules_spec {
    const char *const *exprs; /* pattern alternatives, tried in order */
    size_t n;
    const char *multiline;   /* first-line regex, or NULL */
    enum tj_ecs_mode ecs;    /* field names of the library's patterns */
    const char *definitions; /* "NAME REGEX" lines usable by exprs (Logstash's
                                pattern_definitions; a service's logPatternDefinitions), or NULL */
    const char *timestamp;   /* "FIELD FORMAT[|FORMAT...][|zone=Z]" (tj_time.h): the event's own
                                time becomes @timestamp, the json-file time event.created; a
                                field that fits no format tags the record _dateparsefailure */
};

/* Compiles the alternatives exprs[0..n) and the multiline regex (NULL: none) against lib; all
 * NUL-terminated and borrowed during the call only.
 * Returns a ruleset with one reference, or NULL with err filled ("pattern 2: ..."). */
struct tj_ruleset *tj_ruleset_create(const struct tj_grok_lib *lib, const char *const *exprs,
                                     size_t n, const char *multiline, char *err, size_t errlen);

/* The same from a spec. err starts with what was wrong: "pattern N: ", "multiline: ",
 * "definitions: " (then "line L: ..."), "timestamp: ", or nothing with one pattern. */
struct tj_ruleset *tj_ruleset_build(const struct tj_grok_lib *lib, const struct tj_rules_spec *spec,
                                    char *err, size_t errlen);

struct tj_ruleset *tj_ruleset_ref(struct tj_ruleset *rs);
void tj_ruleset_unref(struct tj_ruleset *rs);

/* Per-thread counters of what apply did. */
struct tj_parse_stats {
    uint64_t records, matched, failed, limited, json_errors, truncated;
};

/* Parses ev with rs (tries each alternative) and appends its JSON line to out. The event's tags
 * gain _grokparsefailure (no alternative matched) or _groktimeout (a limit stopped one). A
 * record too large for even an empty `out` is written without its fields, tagged _truncated.
 * Returns 0, or TJ_ENOSPC with out unchanged when out holds other records (the caller flushes
 * and retries), or TJ_ENOMEM. Borrows everything; runs on the calling thread. */
int tj_ruleset_apply(const struct tj_ruleset *rs, struct tj_matcher *m, const struct tj_event *ev,
                     const struct tj_meta *meta, struct tj_buf *out, struct tj_parse_stats *st);

/* tj_ruleset_apply in two steps, so that a caller may match a batch of events, then encode
 * them (each step's code and branch history then stay warm: tailjet parse does this). */
struct tj_match_result {
    int alt;      /* the alternative that matched, or -1 */
    bool limited; /* a match limit stopped an alternative */
};

/* Matches ev against the alternatives in order. Returns the captures of the one that matched
 * (borrowed from m: valid until its next match; copy tj_ruleset_ovector_len(rs) values or
 * fewer to keep them), or NULL. A _jsonparsefailure event is not matched. */
const size_t *tj_ruleset_match(const struct tj_ruleset *rs, struct tj_matcher *m,
                               const struct tj_event *ev, struct tj_match_result *res);

/* The most values a match's captures take, over the alternatives. */
size_t tj_ruleset_ovector_len(const struct tj_ruleset *rs);

/* Encodes ev after tj_ruleset_match gave res and ov (or a copy of it). Returns as
 * tj_ruleset_apply. */
int tj_ruleset_encode(const struct tj_ruleset *rs, const struct tj_event *ev,
                      const struct tj_match_result *res, const size_t *ov,
                      const struct tj_meta *meta, struct tj_buf *out, struct tj_parse_stats *st);

#endif
