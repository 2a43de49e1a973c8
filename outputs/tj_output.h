/* tj_output.h: the one interface every output implements (stdout, file, and later kafka and
 * elasticsearch), and the batch that moves from the engine's workers to an output.
 *
 * The engine owns retry policy and ordering: it submits one file's batches in order, and when
 * submit answers TJ_EAGAIN it keeps the batch and submits it again later (an output never
 * sleeps in submit). An output acknowledges every batch it took exactly once, from any thread,
 * by calling the ack function it was created with; only then may the engine advance that
 * file's checkpoint past the batch. */
#ifndef TJ_OUTPUT_H
#define TJ_OUTPUT_H

#include "tj_buf.h"
#include "tj_opt.h"

/* A batch of records: NDJSON lines from one file, in file order. Owned by the engine; an output
 * borrows it from submit until it acknowledges it. */
struct tj_batch {
    struct tj_buf records; /* one JSON object per line, each ending in '\n' */
    uint64_t nrecords;
    struct tj_slice key;     /* the records' message key (container id), or empty */
    struct tj_slice topic;   /* Kafka topic the service's labels chose (logTopic), or empty */
    struct tj_slice index;   /* Elasticsearch index the labels chose (logIndex), or empty */
    struct tj_slice service; /* the records' service name (else container name, else "file"),
                                for an output's default index name */
    size_t out_done;         /* bytes an output already wrote after a partial submit (0 at the
                                first submit; the output's to use) */
    int64_t out_pending;     /* the output's to use (Kafka: messages not yet reported) */
    bool out_started;        /* the output's to use */
};

/* Called by an output when a batch it took is done: status 0 (delivered). Any thread. */
typedef void (*tj_ack_fn)(void *arg, struct tj_batch *b, int status);

struct tj_output_ops {
    const char *scheme; /* "stdout", "file", ...: matched against the URI before ':' */
    /* Creates the output from its URI and its NAME=VALUE options (--kafka-opt ...; borrowed
     * during the call). Returns 0 and *state, or a TJ_E* code with err filled (TJ_EINVAL: a bad
     * URI or option, named in err). */
    int (*create)(const char *uri, const char *const *opts, size_t nopts, tj_ack_fn ack,
                  void *ack_arg, void **state, char *err, size_t errlen);
    /* Takes b: returns 0 (b is acknowledged later, or already was), TJ_EAGAIN (not taken now,
     * try again later; b->out_done may have moved), or another TJ_E* code (not taken; the
     * engine retries too, and reports it). Called by several threads at once. */
    int (*submit)(void *state, struct tj_batch *b);
    /* Waits at most timeout_ms for the batches it took to be acknowledged. Returns 0 when none
     * is left, TJ_EAGAIN otherwise. */
    int (*flush)(void *state, unsigned timeout_ms);
    /* Asks the output to reopen what it writes to (SIGHUP, after logrotate). Async-signal-safe
     * is not required: the engine calls it from its main thread. May be NULL. */
    void (*reopen)(void *state);
    /* Writes why the output refuses records now ("" when it does not). Any thread. May be NULL. */
    void (*problem)(void *state, char *buf, size_t n);
    void (*destroy)(void *state);
    /* Appends the output's own Prometheus metrics (tailjet_output_*) to b. Any thread. May be
     * NULL. */
    void (*metrics)(void *state, struct tj_buf *b);
    const char *aliases; /* other schemes it answers to, "a|b", or NULL */
    /* Its NAME=VALUE options (given with --OPT_FLAG), for --help and the documentation test, or
     * NULL. */
    const struct tj_opt *opts;
    size_t nopts;
    const char *opt_flag;
};

struct tj_output {
    const struct tj_output_ops *ops;
    void *state;
};

/* Creates the output named by uri ("stdout", "file:PATH", ...). Returns 0, or TJ_EINVAL with err
 * naming the scheme and the known ones, or the output's own error. */
int tj_output_create(struct tj_output *out, const char *uri, const char *const *opts, size_t nopts,
                     tj_ack_fn ack, void *ack_arg, char *err, size_t errlen);
void tj_output_destroy(struct tj_output *out);

/* Whether uri names this output (its scheme or an alias, before ':'). */
bool tj_output_matches(const struct tj_output_ops *ops, const char *uri);

/* Writes each output's NAME=VALUE options, for tailjet run --help. */
void tj_output_help(FILE *f);

/* The registry, for --help. */
extern const struct tj_output_ops *const tj_outputs[];
extern const size_t tj_noutputs;

/* The built-in outputs. */
extern const struct tj_output_ops tj_output_stdout;
extern const struct tj_output_ops tj_output_file;
extern const struct tj_output_ops tj_output_kafka;
extern const struct tj_output_ops tj_output_es;

#endif
