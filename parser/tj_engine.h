/* tj_engine.h: the shipping engine of `tailjet run`. It follows files through rotation,
 * truncation and deletion (one reader thread), cuts each file's data at event boundaries into
 * chunks that a pool of workers parses in parallel, hands each file's batches to the output in
 * file order, and advances per-file checkpoints only over what the output acknowledged.
 *
 * Threads: the caller's (tj_engine_run: signals, retries, checkpoints, shutdown), one reader
 * (inotify, polling, reads), N workers (assembly, grok, encoding, submit), and whatever threads
 * the output has (acknowledgements may come from any of them). */
#ifndef TJ_ENGINE_H
#define TJ_ENGINE_H

#include "tj_grok.h"
#include "tj_output.h"
#include "tj_ruleset.h"

struct tj_engine_cfg {
    unsigned workers;              /* parsing threads (>= 1) */
    size_t read_ahead;             /* input bytes read but not yet acknowledged, at most */
    size_t chunk_bytes;            /* bytes read from one file at a time */
    size_t max_line_bytes;         /* a longer line or event: one record, cut, tagged _truncated */
    unsigned poll_ms;              /* stat/glob safety net besides inotify */
    unsigned checkpoint_ms;        /* checkpoint interval */
    unsigned multiline_timeout_ms; /* an open event at EOF is shipped after this much quiet */
    unsigned shutdown_timeout_ms;  /* SIGTERM: drain this long at most */
    unsigned rotate_wait_ms;       /* a rotated file read to its end is watched this long */
    bool start_at_end;             /* first start: skip what files hold */
    bool exit_on_eof;              /* stop once every file is read and acknowledged */
    const char *state_dir;         /* borrowed */
    const char *host_name;         /* borrowed; host.name of every record, or NULL */
    struct tj_match_limits limits;
};

/* What the engine did, for the summary line and tests. */
struct tj_engine_stats {
    uint64_t bytes_read, chunks, records_acked, submit_retries, files_opened, rotations,
        truncations;
    struct tj_parse_stats parse;
};

struct tj_engine;

/* Returns an engine (no threads yet), having locked cfg->state_dir and read its checkpoints, or
 * NULL with err filled (state directory not writable or locked by another tailjet). Its output
 * is set with tj_engine_set_output. */
struct tj_engine *tj_engine_create(const struct tj_engine_cfg *cfg, char *err, size_t errlen);
/* Frees everything; only after tj_engine_run returned without *abandoned. NULL does nothing. */
void tj_engine_destroy(struct tj_engine *e);

/* The acknowledgement function outputs are created with (arg: the engine). Any thread. */
void tj_engine_ack(void *engine, struct tj_batch *b, int status);

/* Offers encoded records to the taps of hub (borrowed; NULL: none). Before tj_engine_run. */
struct tj_tap_hub;
void tj_engine_set_tap(struct tj_engine *e, struct tj_tap_hub *tap);

/* Sets the output (borrowed). Before tj_engine_run. */
void tj_engine_set_output(struct tj_engine *e, struct tj_output *out);

/* Follows every file matching glob (now and later), parsed with rs (a reference is taken).
 * Before tj_engine_run. Returns 0 or TJ_ENOMEM. */
int tj_engine_watch(struct tj_engine *e, const char *glob, struct tj_ruleset *rs);

/* Runs until SIGTERM/SIGINT (or, with exit_on_eof, until everything is shipped): blocks those
 * signals and SIGHUP (reopen the output) in every thread and takes them through a signalfd.
 * Returns 0 after a clean drain, 1 when the drain timed out or a fatal error stopped it (then
 * threads may still be blocked in the output: exit the process, do not destroy the engine;
 * *abandoned says so). */
int tj_engine_run(struct tj_engine *e, bool *abandoned);

/* What discovery knows about one log file: how its lines are parsed and what its records carry. */
struct tj_follow {
    const char *path;                /* the log file */
    struct tj_ruleset *rs;           /* borrowed; the engine takes a reference */
    const char *meta[TJ_META_COUNT]; /* container and service fields, or NULL (the file path
                                        and host name are the engine's) */
    const char *topic, *index;       /* logTopic / logIndex, or NULL */
    const char *key;                 /* message key (the container id), or NULL */
    bool hold; /* open the file now (its descriptor keeps its lines if it is deleted), read
                  nothing of it until a follow without hold, or an unfollow */
};

/* Follows f->path with these rules, or, when it is followed already, parses what is read from
 * now on with them (live reconfiguration). `initial`: found by the first listing at start, so
 * --start-at applies. With f->hold, the file is opened but not read: a Swarm task waiting for
 * its service's labels (a later follow gives the rules and starts the reading). Any thread; applied
 * by the reader thread soon after. Strings are copied. Returns 0 or TJ_ENOMEM. */
int tj_engine_follow(struct tj_engine *e, const struct tj_follow *f, bool initial);

/* --exit-on-eof waits for discovery: tj_engine_hold_eof (before tj_engine_run) keeps it from
 * exiting until tj_engine_release_eof, called after the follows of a first full scan: the
 * release is applied after them, so everything they found is read to its end first. Release
 * returns 0 or TJ_ENOMEM. Any thread. */
void tj_engine_hold_eof(struct tj_engine *e);
int tj_engine_release_eof(struct tj_engine *e);

/* Stops following path once it is read to its end (a removed container). Any thread. Returns 0
 * or TJ_ENOMEM. */
int tj_engine_unfollow(struct tj_engine *e, const char *path);

/* Appends the engine's series in Prometheus' text format to b. Any thread. */
void tj_engine_metrics(struct tj_engine *e, struct tj_buf *b);

/* Appends a JSON array of the services (the metrics' service label) with their record counts
 * by result and the patterns last given for them: {"name","matched","unmatched",
 * "json_error","unparsed","truncated","groktimeout","patterns":[...],"ecs","multiline"}. Any
 * thread. */
void tj_engine_services_json(struct tj_engine *e, struct tj_buf *b);

/* Appends one line per problem (an output that keeps refusing records, checkpoints that are not
 * written) to b and returns their number (0: healthy). Any thread. */
size_t tj_engine_health(struct tj_engine *e, struct tj_buf *b);

/* Copies the counters so far. Any thread. */
void tj_engine_get_stats(struct tj_engine *e, struct tj_engine_stats *st);

#endif
