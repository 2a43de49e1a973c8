/* tj_engine_int.h: the engine's shared state (struct tj_engine, the followed paths and their
 * generations, chunks, sources, requests from discovery), included by the engine's modules and
 * by nothing else: tj_engine.c (life cycle, the reader thread, requests from discovery),
 * tj_files.c (file following: generations, rotation, truncation, inotify and polling, globs),
 * tj_ident.c (file identities, released files, siblings), tj_state.c (the state directory:
 * its lock, the checkpoints restored at start and those saved while running), tj_chunks.c
 * (reading into chunks, the job queue and the worker pool), tj_seq.c (sequencing, submits and
 * acknowledgements) and tj_engine_metrics.c (/metrics, /health, the services' counters).
 *
 * Who touches what is said per field: "reader" fields belong to the reader thread, "lock"
 * fields are read and written under e->lock, "atomic" ones with __atomic builtins; the reader
 * changes the lists of paths and generations under the lock and walks them without it. */
#ifndef TJ_ENGINE_INT_H
#define TJ_ENGINE_INT_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "tj_assemble.h"
#include "tj_batch.h"
#include "tj_checkpoint.h"
#include "tj_engine.h"
#include "tj_json.h"
#include "tj_log.h"
#include "tj_tap.h"

struct path;

#define MAX_SEGS      2
#define NAME_BUCKETS  16384
#define IDENT_BUCKETS 4096
#define POOL_KEEP     16
#define SAFETY_POLLS  30 /* with inotify: every quiet file is looked at every 30 polls */
#define GLOB_POLLS    30 /* and the globs run every 30 polls */

struct gen {
    int fd;
    struct tj_fileid id;
    int64_t read_off;            /* reader: next byte to read */
    int64_t acked_off;           /* lock: every byte before it was acknowledged */
    int64_t size_seen;           /* lock (written by the reader): its size when last looked at */
    int64_t chk_size, chk_mtime; /* reader: size and mtime (ns) when its head last matched */
    bool retired;                /* reader: no longer at the path; read to its end, then released */
    bool eof;                    /* reader: retired and read to its end */
    bool truncated;              /* reader: its descriptor shows other content now */
    int64_t linger_until;        /* reader: a rotated file is watched for late writes until then */
    int64_t torn_since;          /* reader: since when a rotated file read to its end waits (a line
                                    cut short, or 16 KiB pieces whose next file is not there yet) */
    int refs;                    /* lock: chunks in flight with data of this generation */
    struct gen *next;            /* newer */
    struct gen *inext;           /* reader: the next in its identity bucket */
    /* reader: its first bytes as read, while they are fewer than a fingerprint: the
     * fingerprint grows from what was shipped, never from what the file holds later */
    uint32_t head_len;
    bool head_from_reads; /* read from offset 0 */
    char head[TJ_FILEID_FP_MAX];
};

/* A file read to its end and released: what a name that shows it later goes on from. Reader
 * changes it under the lock (checkpoints read it). */
struct done {
    struct tj_fileid id;
    int64_t off;     /* read and acknowledged up to here */
    int64_t seen_ms; /* when a path last showed it */
    struct done *next;
};

/* A run of a chunk's (or a carry's) bytes that comes from one generation. */
struct seg {
    struct gen *g;
    int64_t off;
    size_t len;
};

/* Per-service record counters for /metrics (service name, container name, or "file"). Every
 * source holds a reference (atomic); once none does (the service's containers are gone and read
 * to their end), the next scrape or new service drops them, so the series of services that come
 * and go do not pile up. Workers add to them atomically, once per chunk. */
struct svc_counters {
    char *name;
    int refs;
    struct tj_ruleset *rs; /* lock: the rules last given for the service (a reference) */
    uint64_t matched, unmatched, json_error, unparsed, truncated, limited;
    struct svc_counters *next;
};

/* How a path's lines are parsed and where its records go: replaced as a whole when discovery
 * learns new labels; chunks hold a reference to the one they were read under. */
struct source {
    int refs;                  /* atomic */
    struct tj_ruleset *rs;     /* reference */
    char *topic, *index, *key; /* owned, or NULL */
    struct svc_counters *ctr;  /* the engine's, for metrics (or NULL) */
};

#define WDIR_BUCKETS 1024

struct chunk {
    struct tj_batch b; /* first: an output's batch pointer is the chunk's */
    struct path *p;
    uint64_t seq;
    struct seg seg[MAX_SEGS];
    int nseg;
    struct tj_buf in;
    size_t in_bytes; /* counted against the read-ahead budget */
    size_t skip;     /* the first `skip` bytes end an overlong line already shipped */
    bool final;      /* the last line may lack its '\n': feed it too */
    bool cut_tail;   /* the last bytes are the head of an overlong line */
    enum tj_format fmt;
    struct source *src; /* reference */
    bool acked;
    struct chunk *next;          /* job queue or ready list */
    struct chunk *next_inflight; /* the path's chunks in sequence order */
};

struct path {
    /* The list of every path changes under the lock; the reader alone changes it, so it walks
     * it without. The reader's idle work walks none of it: a poll walks one slice's list and the
     * busy list, a pass reads the dirty list (see reader_main). */
    struct path *next, **pprev, *hnext;
    struct path *snext, **spprev; /* reader: its poll slice's list (hash % SAFETY_POLLS) */
    struct path *bnext, **bpprev; /* reader: the busy list, while busy */
    struct path *dnext;           /* reader: the dirty list, while dirty */
    uint64_t hash;                /* of name */
    int wd;                       /* inotify watch of its directory, or -1 */
    /* reader */
    bool dirty;           /* may have data to read: on the dirty list */
    bool busy;            /* path_busy when last looked at: on the busy list, polled every time */
    bool skipping;        /* discarding the rest of an overlong line */
    bool held;            /* opened, not read: waiting for its rules (tj_follow.hold) */
    unsigned match_epoch; /* the glob scan that last matched it (matched: the last full one) */
    bool unreadable;      /* a reason other than its absence kept it closed: reported once */
    bool aliased;         /* the file at the path is read under another path (alias_*) */
    char *name;
    struct source *src; /* reference; replaced (reader) when discovery sends new labels */
    bool discovered;    /* followed because discovery said so (not a glob) */
    struct tj_meta meta;
    enum tj_format fmt;
    struct gen *gens; /* oldest first */
    /* reader */
    struct tj_buf carry; /* bytes after the last boundary, not yet in a chunk */
    struct seg cseg[MAX_SEGS];
    int ncseg;
    size_t scanned; /* carry bytes already searched for a boundary */
    uint64_t alias_dev, alias_ino;
    int64_t last_read_ms;
    uint64_t seq;
    /* lock */
    uint64_t submit_seq;
    struct chunk *ready; /* parsed, waiting for their turn, by sequence */
    bool submitting;
    int64_t retry_at; /* a submit was refused: try again then (0: not waiting) */
    unsigned backoff_ms;
    struct chunk *inflight, *inflight_tail;
    size_t ninflight;
};

/* A request from discovery, applied by the reader thread. */
struct op {
    char *path;
    struct source *src; /* NULL: stop following the path (drain it, then release it) */
    char *meta[TJ_META_COUNT];
    bool initial;
    bool hold;    /* open the file, read nothing until a follow without it */
    bool release; /* tj_engine_release_eof: no path */
    struct op *next;
};

/* A watched directory: the prefix its paths' names share (up to and including the last '/'),
 * so that an event's file name finds its path without a walk over every path. */
struct wdir {
    int wd;
    bool mixed; /* paths spell the directory differently: events mark all of them */
    char *prefix;
    struct wdir *next;
};

struct watch {
    char *glob;
    struct source *src;
    int wd;      /* inotify watch of the glob's fixed directory */
    bool polled; /* run at every poll: no watch, or wildcards in directory names (new
                    directories' files make no event in the watched one) */
};

struct tj_engine {
    struct tj_engine_cfg cfg;
    char *state_dir, *host_name;
    struct tj_output *out;
    struct tj_tap_hub *tap; /* borrowed, or NULL */
    struct watch *watches;
    size_t nwatches;
    struct path *paths;
    struct path *by_name[NAME_BUCKETS];
    struct path *slices[SAFETY_POLLS]; /* reader: every path, by poll slice */
    struct path *busy;             /* reader: the paths polled every time (tj_engine_path_busy) */
    struct path *dirty;            /* reader: the paths that may have data to read */
    size_t nheld;                  /* reader: held paths (the reader is not idle) */
    unsigned match_epoch;          /* reader: bumped by every full glob scan */
    struct tj_ckpt_table restored; /* checkpoints read at start; an entry used once gets
                                      offset -1 */
    size_t *rest_by_id, *rest_by_path;   /* indices of restored, by (dev, ino) and by path */
    struct gen *by_ident[IDENT_BUCKETS]; /* reader: every generation, by (dev, ino) */
    struct wdir *wdirs[WDIR_BUCKETS];    /* reader: watched directories of paths, by wd */
    struct done *done[IDENT_BUCKETS];    /* reader, changed under the lock */
    size_t ndone;
    bool first_start;
    bool first_scan; /* reader: the globs' first run at start */

    pthread_mutex_t lock;
    pthread_cond_t job_cv;
    struct chunk *jobs, *jobs_tail;
    struct op *ops, *ops_tail; /* from discovery, in order */
    bool workers_stop;
    size_t inflight_bytes;
    size_t inflight_chunks;
    bool reader_blocked;
    size_t nretry;      /* paths with retry_at set */
    uint64_t state_ver; /* bumped whenever what checkpoints hold changes */
    uint64_t saved_ver; /* main thread: the state_ver last written */
    struct tj_buf in_pool[POOL_KEEP], out_pool[POOL_KEEP];
    size_t nin_pool, nout_pool;
    size_t pool_keep; /* buffers kept per pool: enough for the workers, no more */
    struct tj_engine_stats st;
    struct svc_counters *counters; /* lock for the list; values atomic */
    uint64_t truncated_gone;       /* lock: the truncated counts of dropped counters */
    int64_t ckpt_ok_ms;            /* lock: when checkpoints were last written (0: never) */
    bool ckpt_failing;             /* main thread: the last write failed (logged once) */
    int64_t start_ms;

    int lock_fd;      /* DIR/lock, flock()ed: one tailjet per state directory */
    int wake_fd;      /* eventfd: wakes the reader */
    int main_fd;      /* eventfd: wakes the main thread (reader idle, nothing in flight) */
    int inotify_fd;   /* or -1: polling only */
    bool reader_stop; /* atomic */
    bool reader_idle; /* atomic: a full pass found nothing to read and no carry */
    bool fatal;       /* atomic */
    bool started;     /* atomic: the first scan is done (checkpoints may be written) */
    int eof_holds;    /* atomic: --exit-on-eof waits while some discovery has not released it */

    pthread_t reader;
    pthread_t *workers;
    unsigned nworkers_started;
    bool reader_started;
};

struct work {
    struct tj_engine *e;
    struct chunk *c;
    struct tj_matcher *m;
    struct tj_assembler *a;
    struct tj_batch *batch; /* the chunk's events, matched then encoded in batches */
    struct tj_parse_stats st;
    size_t record_room; /* how much a single record may need */
    int rc;
};

static inline struct tj_slice slice_of(const char *s)
{
    return s ? (struct tj_slice){s, strlen(s)} : (struct tj_slice){NULL, 0};
}

static inline int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void wake(int fd)
{
    uint64_t one = 1;

    if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        tj_log(TJ_LOG_ERROR, "cannot wake a thread: %s", strerror(errno));
}

static inline void wake_reader(struct tj_engine *e)
{
    wake(e->wake_fd);
}

/* tj_engine.c */

/* Takes a reference to src and returns it. Any thread. */
struct source *tj_engine_source_ref(struct source *src);

/* Drops a reference; the last one frees the source (and drops its counters' reference). NULL
 * does nothing. Any thread. */
void tj_engine_source_unref(struct source *src);

/* A path worth a look at every poll even with inotify: a file being finished or followed
 * elsewhere, one without a file, one whose directory no watch covers. */
bool tj_engine_path_busy(const struct path *p);

/* Whether the path has bytes to read or ship (its current file grew, a rotated one is not
 * finished, a carry waits). */
bool tj_engine_path_has_work(const struct path *p);

/* tj_engine_metrics.c */

/* A reference to the counters of a service (created on first use), for a source about to be
 * made with rs, which owns it from then on. Any thread. NULL when out of memory. */
struct svc_counters *tj_engine_counters_for(struct tj_engine *e, const char *name,
                                            struct tj_ruleset *rs);

/* Adds to c (atomically; NULL: nothing) what a chunk's parse added between the stats before and
 * after; patterns false: the source has none, its records count as unparsed. */
void tj_engine_counters_add(struct svc_counters *c, const struct tj_parse_stats *before,
                            const struct tj_parse_stats *after, bool patterns);

#endif
