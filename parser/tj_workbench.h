/* tj_workbench.h: the pattern workbench behind POST /v1/workbench (the /ui/ page): sample lines
 * and patterns in, the records tailjet would ship out, compiled and run by the same code as the
 * engine and `tailjet parse` (tj_ruleset, tj_assemble, tj_batch, tj_record). Bounded: the input
 * size and line count are capped by the caller, each line by the PCRE2 limits given, and the
 * whole run by a CPU-time budget of the calling thread. Runs on the caller's thread (an HTTP
 * connection's, never a shipping thread). */
#ifndef TJ_WORKBENCH_H
#define TJ_WORKBENCH_H

#include "tj_buf.h"
#include "tj_grok.h"

#define TJ_WORKBENCH_MAX_LINES 1000
#define TJ_WORKBENCH_MAX_BYTES ((size_t)256 << 10)

struct tj_workbench_req {
    const char *const *patterns; /* grok expressions, tried in order (borrowed) */
    size_t npatterns;
    const char *multiline;   /* first-line regex, or NULL */
    enum tj_ecs_mode ecs;    /* field names of the library's patterns */
    const char *definitions; /* "NAME REGEX" lines for these patterns only (as a service's
                                logPatternDefinitions), or NULL */
    const char *timestamp;   /* "FIELD FORMAT[|FORMAT...]" (as logTimestamp), or NULL */
    const char *text;        /* the sample lines (json-file or plain, as `tailjet parse` reads) */
    size_t len;
    const char *host_name; /* host.name of the records, or NULL */
    struct tj_match_limits limits;
    unsigned cpu_budget_ms; /* CPU time of this thread the run may take */
};

/* Appends the answer to out as one JSON object: {"records":[RECORD,...],"failed":[bool,...],
 * "stats":{...},"stopped":null|"why"} or, when a pattern does not compile, {"error":"pattern N:
 * PCRE2 error at offset K ...: message","pattern":N} (N from 1; 0: the multiline regex; -1: the
 * definitions). lib is borrowed read-only. Returns 0, or TJ_ENOMEM / TJ_ENOSPC when out could not
 * hold it. */
int tj_workbench_run(const struct tj_grok_lib *lib, const struct tj_workbench_req *req,
                     struct tj_buf *out);

#endif
