/* tj_engine.c: the shipping engine (see tj_engine.h).
 *
 * Data path: the reader thread reads a file into a chunk, cuts it at the last event boundary
 * (tj_assemble_cut), keeps the rest as the file's carry for the next chunk, and queues the chunk.
 * A worker assembles, parses and encodes it into the chunk's batch, then submits it in the
 * file's order (a file's batches are sequenced; whichever worker holds the next one submits it
 * and the ones that follow it). The output acknowledges batches; the engine then advances the
 * file's acknowledged offset in sequence order. Checkpoints are that offset per file identity.
 *
 * Files: a followed path has generations (struct gen): the file now at the path and, oldest
 * first, files that were renamed, unlinked or truncated away and are still being read to their
 * end. A generation is released when it is read to its end, nothing of it is in flight, and it
 * is no longer at the path.
 *
 * Identity: a file is known by its device, inode and the fingerprint of its first bytes, not by
 * its path. A file is read by one generation at a time, whatever names it has: a path whose file
 * is followed under another name (a glob that matches the rotated names too, `app.log*`) is an
 * alias and reads nothing while the other name's generation lives. A released file is remembered
 * (struct done: its identity and the offset it was read to) while some path still shows it, so
 * that a name that shows it later goes on from there instead of reading it again; checkpoints
 * hold those too (with an empty path), so a restart reads no finished file again.
 *
 * Locking: one mutex (e->lock) guards lists, sequencing, acknowledged offsets, the job queue,
 * the buffer pools and the in-flight budget. The reader alone touches fds, read offsets and
 * carries; workers alone touch their assembler and matcher. Nothing is read or parsed with the
 * lock held. */
#include "tj_engine.h"

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
#include <dirent.h>

#include "tj_assemble.h"
#include "tj_batch.h"
#include "tj_json.h"
#include "tj_checkpoint.h"
#include "tj_log.h"
#include "tj_tap.h"

#define MAX_SEGS      2
#define NAME_BUCKETS  16384
#define IDENT_BUCKETS 4096
#define POOL_KEEP     16
#define SAFETY_POLLS  10 /* with inotify: every file is looked at every 10 polls */
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

/* Takes ctr's reference (dropped when the source goes, or at once on failure). */
static struct source *source_create(struct tj_ruleset *rs, const char *topic, const char *index,
                                    const char *key, struct svc_counters *ctr)
{
    struct source *src = calloc(1, sizeof(*src));

    if (!src)
        goto fail;
    src->refs = 1;
    src->ctr = ctr;
    src->rs = tj_ruleset_ref(rs);
    if ((topic && !(src->topic = strdup(topic))) || (index && !(src->index = strdup(index))) ||
        (key && !(src->key = strdup(key)))) {
        tj_ruleset_unref(src->rs);
        free(src->topic);
        free(src->index);
        free(src);
        goto fail;
    }
    return src;
fail:
    if (ctr)
        __atomic_sub_fetch(&ctr->refs, 1, __ATOMIC_RELEASE);
    return NULL;
}

static struct source *source_ref(struct source *src)
{
    __atomic_add_fetch(&src->refs, 1, __ATOMIC_RELAXED);
    return src;
}

static void source_unref(struct source *src)
{
    if (!src || __atomic_sub_fetch(&src->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    tj_ruleset_unref(src->rs);
    if (src->ctr)
        __atomic_sub_fetch(&src->ctr->refs, 1, __ATOMIC_RELEASE);
    free(src->topic);
    free(src->index);
    free(src->key);
    free(src);
}

static struct tj_slice slice_of(const char *s)
{
    return s ? (struct tj_slice){s, strlen(s)} : (struct tj_slice){NULL, 0};
}

struct path;

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

#define WDIR_BUCKETS 1024

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
    struct path *slices[SAFETY_POLLS];   /* reader: every path, by poll slice */
    struct path *busy;                   /* reader: the paths polled every time (path_busy) */
    struct path *dirty;                  /* reader: the paths that may have data to read */
    size_t nheld;                        /* reader: held paths (the reader is not idle) */
    unsigned match_epoch;                /* reader: bumped by every full glob scan */
    struct tj_ckpt_table restored;       /* checkpoints read at start; an entry used once gets
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

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wake(int fd)
{
    uint64_t one = 1;

    if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        tj_log(TJ_LOG_ERROR, "cannot wake a thread: %s", strerror(errno));
}

static void wake_reader(struct tj_engine *e)
{
    wake(e->wake_fd);
}

/* ---- buffer pools (lock held) ---- */

static void pool_get(struct tj_buf *pool, size_t *n, struct tj_buf *b, size_t max)
{
    if (*n) {
        *b = pool[--*n];
        b->len = 0;
    } else {
        tj_buf_init(b, max);
    }
    b->max = max;
}

static void pool_put(struct tj_buf *pool, size_t *n, struct tj_buf *b, size_t keep_cap, size_t keep)
{
    if (*n < keep && b->cap && b->cap <= keep_cap)
        pool[(*n)++] = *b;
    else
        tj_buf_fini(b);
    tj_buf_init(b, 0);
}

/* ---- generations and paths (reader; list changes under the lock) ---- */

static uint64_t name_hash(const char *s)
{
    return tj_fileid_hash(s, strlen(s));
}

static struct path *path_find(struct tj_engine *e, const char *name)
{
    uint64_t h = name_hash(name);
    struct path *p = e->by_name[h % NAME_BUCKETS];

    while (p && (p->hash != h || strcmp(p->name, name) != 0))
        p = p->hnext;
    return p;
}

/* Whether the last full glob scan (or a file event since) matched the path. */
static bool path_matched(const struct tj_engine *e, const struct path *p)
{
    return p->match_epoch == e->match_epoch;
}

/* Puts the path on the dirty list (reader): the next pass reads it. */
static void mark_dirty(struct tj_engine *e, struct path *p)
{
    if (p->dirty)
        return;
    p->dirty = true;
    p->dnext = e->dirty;
    e->dirty = p;
}

/* Puts the path on the busy list or takes it off (reader). */
static void set_busy(struct tj_engine *e, struct path *p, bool busy)
{
    if (busy == p->busy)
        return;
    p->busy = busy;
    if (busy) {
        p->bnext = e->busy;
        p->bpprev = &e->busy;
        if (e->busy)
            e->busy->bpprev = &p->bnext;
        e->busy = p;
    } else {
        *p->bpprev = p->bnext;
        if (p->bnext)
            p->bnext->bpprev = p->bpprev;
        p->bnext = NULL;
        p->bpprev = NULL;
    }
}

/* Opens a log file for reading without updating its access time where allowed: an atime update
 * is a journaled metadata change, and on ext4 it waits for the journal commit that a
 * checkpoint's fsync starts, which would stall the reader for a tenth of a second each time. */
static int open_log(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOATIME);

    if (fd < 0 && errno == EPERM) /* O_NOATIME needs to own the file (or CAP_FOWNER) */
        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    return fd;
}

static struct gen *gen_open(const char *name, int64_t off, char *why, size_t whylen)
{
    struct gen *g = calloc(1, sizeof(*g));

    if (!g) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    g->fd = open_log(AT_FDCWD, name);
    if (g->fd < 0 || tj_fileid_from_fd(g->fd, &g->id)) {
        int err = errno;
        snprintf(why, whylen, "%s", strerror(err));
        if (g->fd >= 0)
            close(g->fd);
        free(g);
        errno = err; /* for the caller: ENOENT is no news */
        return NULL;
    }
    g->read_off = g->acked_off = off;
    g->head_from_reads = off == 0;
    return g;
}

/* ---- identities (reader) ---- */

static size_t ident_bucket(uint64_t dev, uint64_t ino)
{
    return (size_t)(((ino * 0x9e3779b97f4a7c15ULL) ^ dev) >> 20) % IDENT_BUCKETS;
}

/* The generation that reads the file (dev, ino) now, under any path, or NULL. A generation
 * whose descriptor was truncated is no longer that file's reader. */
static struct gen *ident_live(struct tj_engine *e, uint64_t dev, uint64_t ino)
{
    for (struct gen *g = e->by_ident[ident_bucket(dev, ino)]; g; g = g->inext)
        if (g->id.dev == dev && g->id.ino == ino && !g->truncated)
            return g;
    return NULL;
}

static void ident_del(struct tj_engine *e, struct gen *g)
{
    struct gen **pp = &e->by_ident[ident_bucket(g->id.dev, g->id.ino)];

    while (*pp && *pp != g)
        pp = &(*pp)->inext;
    if (*pp)
        *pp = g->inext;
}

static struct done **done_find(struct tj_engine *e, uint64_t dev, uint64_t ino)
{
    struct done **pp = &e->done[ident_bucket(dev, ino)];

    while (*pp && ((*pp)->id.dev != dev || (*pp)->id.ino != ino))
        pp = &(*pp)->next;
    return pp;
}

/* Remembers a released file and the offset it was read to. Lock held. */
static void done_add(struct tj_engine *e, const struct gen *g, int64_t now)
{
    struct done **pp = done_find(e, g->id.dev, g->id.ino), *d = *pp;

    if (!d && !(d = calloc(1, sizeof(*d))))
        return; /* out of memory: a name that shows it later reads it again (duplicates) */
    if (!*pp) {
        *pp = d;
        e->ndone++;
    }
    d->id = g->id;
    d->off = g->read_off;
    d->seen_ms = now;
}

/* True when the open file fd (st: its fstat) was read to its end and released earlier (its
 * fingerprint too, so not a reused inode). */
static bool done_holds(struct tj_engine *e, int fd, const struct stat *st)
{
    struct done *d = *done_find(e, st->st_dev, st->st_ino);

    return d && tj_fileid_matches_fd(fd, &d->id);
}

/* A path shows the file (dev, ino) now: its memory is kept. */
static void done_touch(struct tj_engine *e, uint64_t dev, uint64_t ino, int64_t now)
{
    struct done *d = *done_find(e, dev, ino);

    if (d)
        d->seen_ms = now;
}

/* Forgets released files that no path showed for `grace` ms. */
static void done_prune(struct tj_engine *e, int64_t now, int64_t grace)
{
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < IDENT_BUCKETS; i++) {
        for (struct done **pp = &e->done[i], *d; (d = *pp);) {
            if (now - d->seen_ms > grace) {
                *pp = d->next;
                free(d);
                e->ndone--;
                e->state_ver++;
                continue;
            }
            pp = &d->next;
        }
    }
    pthread_mutex_unlock(&e->lock);
}

static int cmp_rest_id(const void *a, const void *b, void *arg)
{
    const struct tj_ckpt_entry *v = arg, *x = &v[*(const size_t *)a], *y = &v[*(const size_t *)b];

    if (x->id.dev != y->id.dev)
        return x->id.dev < y->id.dev ? -1 : 1;
    if (x->id.ino != y->id.ino)
        return x->id.ino < y->id.ino ? -1 : 1;
    return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

static int cmp_rest_path(const void *a, const void *b, void *arg)
{
    const struct tj_ckpt_entry *v = arg, *x = &v[*(const size_t *)a], *y = &v[*(const size_t *)b];
    int c = strcmp(x->path, y->path);

    if (c)
        return c;
    return *(const size_t *)a < *(const size_t *)b ? -1 : 1; /* saved order: oldest first */
}

/* Indexes the restored checkpoints by identity and by path. Returns 0 or TJ_ENOMEM. */
static int restored_index(struct tj_engine *e)
{
    size_t n = e->restored.n;

    if (!n)
        return 0;
    e->rest_by_id = malloc(n * sizeof(size_t));
    e->rest_by_path = malloc(n * sizeof(size_t));
    if (!e->rest_by_id || !e->rest_by_path)
        return TJ_ENOMEM;
    for (size_t i = 0; i < n; i++)
        e->rest_by_id[i] = e->rest_by_path[i] = i;
    qsort_r(e->rest_by_id, n, sizeof(size_t), cmp_rest_id, e->restored.v);
    qsort_r(e->rest_by_path, n, sizeof(size_t), cmp_rest_path, e->restored.v);
    return 0;
}

/* The first position in rest_by_id whose entry is not before (dev, ino). */
static size_t restored_lower_id(const struct tj_engine *e, uint64_t dev, uint64_t ino)
{
    size_t lo = 0, hi = e->restored.n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct tj_fileid *id = &e->restored.v[e->rest_by_id[mid]].id;
        if (id->dev < dev || (id->dev == dev && id->ino < ino))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The first position in rest_by_path whose entry's path is not before name. */
static size_t restored_lower_path(const struct tj_engine *e, const char *name)
{
    size_t lo = 0, hi = e->restored.n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(e->restored.v[e->rest_by_path[mid]].path, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* How far the open file fd (identity *id, taken from fd) was read before: by a generation
 * released earlier (under any path), or before a restart (checkpoints, under any path). Returns
 * true with *off set when it is known; an entry so used is forgotten. */
static bool file_known(struct tj_engine *e, int fd, const struct tj_fileid *id, int64_t *off)
{
    struct done **pp = done_find(e, id->dev, id->ino), *d = *pp;
    struct stat st;
    bool known = false;

    if (fstat(fd, &st) != 0)
        return false;
    if (d) {
        known = tj_fileid_matches_fd(fd, &d->id); /* else the inode was reused */
        *off = d->off;
        pthread_mutex_lock(&e->lock);
        *pp = d->next;
        e->ndone--;
        e->state_ver++;
        pthread_mutex_unlock(&e->lock);
        free(d);
    }
    for (size_t i = e->rest_by_id ? restored_lower_id(e, id->dev, id->ino) : e->restored.n;
         !known && i < e->restored.n; i++) {
        struct tj_ckpt_entry *c = &e->restored.v[e->rest_by_id[i]];
        if (c->id.dev != id->dev || c->id.ino != id->ino)
            break;
        if (c->offset >= 0 && tj_fileid_matches_fd(fd, &c->id)) {
            known = true;
            *off = c->offset;
            c->offset = -1; /* used */
        }
    }
    if (known && *off > st.st_size)
        *off = 0; /* shorter than what was read of it: it was truncated, its content is new */
    return known;
}

/* A copy of a followed file made by copytruncate, seen under its own name (`app.log.1` matched
 * by `app.log*`) before the original's path noticed the truncation: the original's path reads
 * it (from where it had read the original), so this name does not. True when name is
 * `BASE.N`, BASE is followed, and fd's first bytes are those of BASE's current file. */
static bool copy_of_followed(struct tj_engine *e, const char *name, int fd);

static void gen_append(struct tj_engine *e, struct path *p, struct gen *g)
{
    struct gen **pp = &p->gens;
    size_t b = ident_bucket(g->id.dev, g->id.ino);

    pthread_mutex_lock(&e->lock);
    while (*pp)
        pp = &(*pp)->next;
    *pp = g;
    e->st.files_opened++;
    e->state_ver++;
    pthread_mutex_unlock(&e->lock);
    g->inext = e->by_ident[b];
    e->by_ident[b] = g;
}

/* The newest generation when it is the file at the path, else NULL. */
static struct gen *gen_current(struct path *p)
{
    struct gen *g = p->gens;

    while (g && g->next)
        g = g->next;
    return g && !g->retired ? g : NULL;
}

static bool carry_uses(const struct path *p, const struct gen *g)
{
    for (int i = 0; i < p->ncseg; i++)
        if (p->cseg[i].g == g)
            return true;
    return false;
}

/* Releases generations that are read to their end, acknowledged and not at the path. */
static void gens_release(struct tj_engine *e, struct path *p)
{
    struct gen **pp = &p->gens, *g;

    pthread_mutex_lock(&e->lock);
    while ((g = *pp)) {
        if (g->eof && g->refs == 0 && !carry_uses(p, g) && g->acked_off >= g->read_off &&
            g->linger_until == 0) {
            tj_log(TJ_LOG_DEBUG, "%s: released inode %llu at offset %lld", p->name,
                   (unsigned long long)g->id.ino, (long long)g->read_off);
            *pp = g->next;
            ident_del(e, g);
            e->state_ver++;
            if (!g->truncated)
                done_add(e, g, now_ms());
            close(g->fd);
            free(g);
            continue;
        }
        pp = &g->next;
    }
    pthread_mutex_unlock(&e->lock);
}

/* Looks among the path's siblings (PATH.1, PATH.2, ...) for a file accepted by `want`. Returns
 * an open fd or -1. */
static int find_sibling(const char *name, bool (*want)(int fd, const void *arg), const void *arg)
{
    const char *slash = strrchr(name, '/');
    char dir[PATH_MAX];
    const char *base = slash ? slash + 1 : name;
    size_t blen = strlen(base);
    struct dirent *de;
    DIR *d;
    int found = -1;

    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - name) : 1, slash ? name : ".");
    if (slash == name)
        snprintf(dir, sizeof(dir), "/");
    if (!(d = opendir(dir)))
        return -1;
    while (found < 0 && (de = readdir(d))) {
        const char *s = de->d_name;
        int fd;
        if (strncmp(s, base, blen) != 0 || s[blen] != '.' || s[blen + 1] < '0' ||
            s[blen + 1] > '9' || strspn(s + blen + 1, "0123456789") != strlen(s + blen + 1))
            continue;
        fd = open_log(dirfd(d), s);
        if (fd < 0)
            continue;
        if (want(fd, arg))
            found = fd;
        else
            close(fd);
    }
    closedir(d);
    return found;
}

static bool want_identity(int fd, const void *arg)
{
    return tj_fileid_matches_fd(fd, arg);
}

/* A copy made by copytruncate: another inode whose head is the truncated file's head and that
 * holds at least what was read of it. */
static bool want_copy(int fd, const void *arg)
{
    const struct gen *g = arg;
    struct tj_fileid id = g->id;
    struct stat st;

    if (fstat(fd, &st) || (st.st_dev == g->id.dev && st.st_ino == g->id.ino) ||
        st.st_size < g->read_off)
        return false;
    id.dev = st.st_dev;
    id.ino = st.st_ino;
    return tj_fileid_matches_fd(fd, &id);
}

static struct gen *gen_from_fd(int fd, int64_t off)
{
    struct gen *g = calloc(1, sizeof(*g));

    if (!g || tj_fileid_from_fd(fd, &g->id)) {
        free(g);
        close(fd);
        return NULL;
    }
    g->fd = fd;
    g->read_off = g->acked_off = off;
    g->head_from_reads = off == 0;
    return g;
}

/* Index N of the sibling PATH.N that is the file (dev, ino), or 0. */
static int sibling_index(const char *name, uint64_t dev, uint64_t ino)
{
    char sib[PATH_MAX];
    struct stat st;

    for (int i = 1; i <= 64; i++) {
        snprintf(sib, sizeof(sib), "%s.%d", name, i);
        if (stat(sib, &st) != 0)
            return 0;
        if ((uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino)
            return i;
    }
    return 0;
}

/* When the reader lagged several rotations behind (a busy machine, files that live a few
 * milliseconds), files rotated after the last one it knows were never opened: if that one is
 * PATH.k now, they are PATH.(k-1) ... PATH.1. They are followed, oldest first, from their start,
 * before the file now at the path. */
static void add_missed(struct tj_engine *e, struct path *p, uint64_t dev, uint64_t ino)
{
    int k = sibling_index(p->name, dev, ino);
    char sib[PATH_MAX];

    for (int i = k - 1; i >= 1; i--) {
        struct stat st;
        struct gen *g;
        int fd;
        snprintf(sib, sizeof(sib), "%s.%d", p->name, i);
        int64_t off = 0;
        if ((fd = open_log(AT_FDCWD, sib)) < 0)
            continue;
        if (fstat(fd, &st) != 0 || ident_live(e, st.st_dev, st.st_ino) ||
            !(g = gen_from_fd(fd, 0))) { /* read under its own name already (a glob) */
            close(fd);
            continue;
        }
        if (file_known(e, g->fd, &g->id, &off)) {
            g->read_off = g->acked_off = off;
            g->head_from_reads = off == 0;
        }
        g->retired = true;
        gen_append(e, p, g);
        tj_log(TJ_LOG_INFO, "%s: reading %s, rotated away before it was seen", p->name, sib);
    }
}

/* The file at the path was truncated (copytruncate, or a writer starting over): what was not
 * read yet is in the copy when there is one; the file's new content is a new generation. */
static void handle_truncation(struct tj_engine *e, struct path *p, struct gen *cur)
{
    int fd = find_sibling(p->name, want_copy, cur);
    char why[256];
    struct gen *g;

    cur->retired = cur->eof = cur->truncated = true; /* its descriptor shows the new content */
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) != 0 || ident_live(e, st.st_dev, st.st_ino) || done_holds(e, fd, &st)) {
            close(fd); /* the copy is read under its own name already (a glob) */
            fd = -1;
        }
    }
    if (fd >= 0 && (g = gen_from_fd(fd, cur->read_off))) {
        g->retired = true;
        gen_append(e, p, g);
        tj_log(TJ_LOG_INFO, "%s was truncated; reading its copy from offset %lld", p->name,
               (long long)cur->read_off);
        add_missed(e, p, g->id.dev, g->id.ino);
    } else {
        tj_log(TJ_LOG_INFO, "%s was truncated; reading it again from its start", p->name);
    }
    pthread_mutex_lock(&e->lock);
    e->st.truncations++;
    pthread_mutex_unlock(&e->lock);
    if ((g = gen_open(p->name, 0, why, sizeof(why))))
        gen_append(e, p, g);
}

static int dispatch(struct tj_engine *e, struct path *p, size_t n, size_t skip, bool final,
                    bool cut_tail);
static void segs_add(struct seg *s, int *n, struct gen *g, int64_t off, size_t len);

/* A program that was not told to reopen its log still writes to the rotated file for a while
 * (logrotate's create mode): lines that appear in a rotated file already read to its end are read
 * and shipped on their own, after what the path held then (Fluent Bit's rotate_wait). */
static void linger_read(struct tj_engine *e, struct path *p, struct gen *g, bool last)
{
    struct tj_buf saved = p->carry;
    struct seg sseg[MAX_SEGS];
    int snseg = p->ncseg;
    size_t sscanned = p->scanned;
    ssize_t n;

    memcpy(sseg, p->cseg, sizeof(sseg));
    tj_buf_init(&p->carry, saved.max);
    p->ncseg = 0;
    p->scanned = 0;
    while (tj_buf_reserve(&p->carry, e->cfg.chunk_bytes) == 0 &&
           (n = pread(g->fd, p->carry.data + p->carry.len, e->cfg.chunk_bytes, g->read_off)) > 0) {
        const char *nl;
        segs_add(p->cseg, &p->ncseg, g, g->read_off, (size_t)n);
        g->read_off += n;
        p->carry.len += (size_t)n;
        nl = memrchr(p->carry.data, '\n', p->carry.len);
        if (nl && p->ncseg == MAX_SEGS)
            dispatch(e, p, (size_t)(nl - p->carry.data) + 1, 0, false, false);
    }
    if (p->carry.len) {
        /* A line still cut short is read again next time (its writer is finishing it), unless
         * this is the last look at the file. */
        const char *nl = memrchr(p->carry.data, '\n', p->carry.len);
        size_t whole = nl ? (size_t)(nl - p->carry.data) + 1 : 0, cut = p->carry.len - whole;
        if (last)
            dispatch(e, p, p->carry.len, 0, true, false);
        else if (whole)
            dispatch(e, p, whole, 0, false, false);
        if (!last)
            g->read_off -= (int64_t)cut; /* un-read the cut line: read again next time */
    }
    tj_log(TJ_LOG_INFO, "%s: lines were written to the file after it was rotated; shipped",
           p->name);
    tj_buf_fini(&p->carry);
    p->carry = saved;
    memcpy(p->cseg, sseg, sizeof(sseg));
    p->ncseg = snseg;
    p->scanned = sscanned;
}

/* Reads what was written late to rotated files still within their wait. */
static void gens_linger(struct tj_engine *e, struct path *p)
{
    int64_t now = now_ms();

    for (struct gen *g = p->gens; g; g = g->next) {
        struct stat st;
        if (g->eof && !g->truncated && g->linger_until && fstat(g->fd, &st) == 0 &&
            st.st_size > g->read_off)
            linger_read(e, p, g, now >= g->linger_until);
        if (g->eof && now >= g->linger_until)
            g->linger_until = 0; /* looked at for the last time */
    }
}

/* Whether the file's first bytes are still those the generation was identified by: compared
 * with the bytes kept when it was read from its start (a memcmp), else by their hash. */
static bool gen_head_matches(struct gen *g)
{
    char buf[TJ_FILEID_FP_MAX];
    size_t got = 0;

    if (!g->head_from_reads || g->head_len != g->id.fp_len)
        return tj_fileid_matches_fd(g->fd, &g->id);
    while (got < g->head_len) {
        ssize_t n = pread(g->fd, buf + got, g->head_len - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return memcmp(buf, g->head, g->head_len) == 0;
}

static int64_t mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* A path that exists but cannot be opened (EACCES: tailjet runs without the right to read the
 * containers' logs) is reported once, not at every poll; it is tried again at every poll. */
static void path_unreadable(struct path *p, int err)
{
    if (p->unreadable || err == ENOENT || err == ENOTDIR)
        return;
    p->unreadable = true;
    tj_log(TJ_LOG_WARN, "cannot read %s: %s; trying again at every poll%s", p->name, strerror(err),
           err == EACCES ? " (run tailjet as a user that may read it, or with CAP_DAC_READ_SEARCH;"
                           " Docker's logs are root's: see README, Deploy)"
                         : "");
}

/* True when the file st at the path is read under another path (or by one of this path's own
 * older generations): then this path reads nothing of it. */
static bool path_alias(struct tj_engine *e, struct path *p, const struct stat *st)
{
    struct gen *g = ident_live(e, st->st_dev, st->st_ino);

    if (!g)
        return false;
    if (!p->aliased || p->alias_dev != (uint64_t)st->st_dev || p->alias_ino != (uint64_t)st->st_ino)
        tj_log(TJ_LOG_DEBUG, "%s: inode %llu is read under another name already", p->name,
               (unsigned long long)st->st_ino);
    p->aliased = true;
    p->alias_dev = st->st_dev;
    p->alias_ino = st->st_ino;
    return true;
}

/* Opens the file now at the path as a new generation: from where it was read before when its
 * identity is known (released earlier under any name, or in the checkpoints), else from its
 * start. NULL (errno set, why filled) when it cannot be opened, or when it turns out to be read
 * under another name (p->aliased set, errno 0). */
static struct gen *gen_open_at(struct tj_engine *e, struct path *p, char *why, size_t whylen)
{
    struct gen *g = gen_open(p->name, 0, why, whylen);
    struct stat st;
    int64_t off = 0;

    if (!g)
        return NULL;
    if ((fstat(g->fd, &st) == 0 && path_alias(e, p, &st)) || copy_of_followed(e, p->name, g->fd)) {
        if (!p->aliased)
            tj_log(TJ_LOG_DEBUG, "%s: a copy of a followed file; read by that file's path",
                   p->name);
        p->aliased = true;
        p->alias_dev = g->id.dev;
        p->alias_ino = g->id.ino;
        close(g->fd);
        free(g);
        errno = 0;
        return NULL;
    }
    p->aliased = false;
    if (file_known(e, g->fd, &g->id, &off)) {
        g->read_off = g->acked_off = off;
        g->head_from_reads = off == 0;
    }
    return g;
}

/* Compares the path with what is followed: a new file (rename, unlink, re-creation) retires
 * the current generation and opens the new one (from its start unless its identity is known);
 * truncation is handled. */
static void path_check(struct tj_engine *e, struct path *p)
{
    struct gen *cur = gen_current(p), *g;
    struct stat st;
    char why[256];
    int serr;

    gens_linger(e, p);
    serr = stat(p->name, &st) != 0 ? errno : 0;
    if (!serr)
        done_touch(e, st.st_dev, st.st_ino, now_ms());
    if (serr || !S_ISREG(st.st_mode)) {
        if (serr)
            path_unreadable(p, serr);
        if (cur) {
            cur->retired = true; /* renamed or deleted: read to its end */
            pthread_mutex_lock(&e->lock);
            e->st.rotations++;
            pthread_mutex_unlock(&e->lock);
        }
        return;
    }
    if (cur && (uint64_t)st.st_dev == cur->id.dev && (uint64_t)st.st_ino == cur->id.ino) {
        pthread_mutex_lock(&e->lock); /* the lag in /metrics, also while reading is paused */
        cur->size_seen = st.st_size;
        pthread_mutex_unlock(&e->lock);
        /* Its head is read again only when it changed since the last look (a quiet file costs
         * one stat); a rewrite keeps neither its size nor its mtime. */
        if (st.st_size < cur->read_off)
            handle_truncation(e, p, cur);
        else if (st.st_size != cur->chk_size || mtime_ns(&st) != cur->chk_mtime) {
            if (!gen_head_matches(cur)) {
                handle_truncation(e, p, cur);
            } else {
                cur->chk_size = st.st_size;
                cur->chk_mtime = mtime_ns(&st);
            }
        }
        return;
    }
    if (cur) {
        cur->retired = true;
        pthread_mutex_lock(&e->lock);
        e->st.rotations++;
        pthread_mutex_unlock(&e->lock);
    }
    if (path_alias(e, p, &st))
        return;
    for (g = p->gens; g && g->next; g = g->next)
        ;
    if (g)
        add_missed(e, p, g->id.dev, g->id.ino);
    if (path_alias(e, p, &st))
        return; /* the file at the path is one of those just found (it was renamed back?) */
    if ((g = gen_open_at(e, p, why, sizeof(why)))) {
        gen_append(e, p, g);
        p->unreadable = false;
        tj_log(TJ_LOG_DEBUG, "%s: following inode %llu from offset %lld%s", p->name,
               (unsigned long long)g->id.ino, (long long)g->read_off,
               cur ? " (the file before was rotated)" : "");
    } else if (errno) {
        path_unreadable(p, errno);
    }
}

static struct wdir *wdir_find(struct tj_engine *e, int wd)
{
    struct wdir *w = e->wdirs[(unsigned)wd % WDIR_BUCKETS];

    while (w && w->wd != wd)
        w = w->next;
    return w;
}

/* Remembers how the paths of watch wd spell their directory. */
static void wdir_note(struct tj_engine *e, int wd, const char *name)
{
    const char *slash = strrchr(name, '/');
    size_t n = slash ? (size_t)(slash - name) + 1 : 0;
    struct wdir *w = wdir_find(e, wd);

    if (w) {
        if (strlen(w->prefix) != n || memcmp(w->prefix, name, n) != 0)
            w->mixed = true;
        return;
    }
    if (!(w = calloc(1, sizeof(*w))) || !(w->prefix = strndup(name, n))) {
        free(w);
        return; /* out of memory: that directory's events mark each of its paths */
    }
    w->wd = wd;
    w->next = e->wdirs[(unsigned)wd % WDIR_BUCKETS];
    e->wdirs[(unsigned)wd % WDIR_BUCKETS] = w;
}

static int path_watch_dir(struct tj_engine *e, const char *name)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(name, '/');
    int wd;

    if (e->inotify_fd < 0)
        return -1;
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else
        snprintf(dir, sizeof(dir), "%.*s", slash == name ? 1 : (int)(slash - name), name);
    wd = inotify_add_watch(e->inotify_fd, dir,
                           IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                               IN_CLOSE_WRITE | IN_ATTRIB);
    if (wd >= 0)
        wdir_note(e, wd, name);
    return wd;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* A restored entry whose file was found under no name. */
static void restored_gone(struct tj_ckpt_entry *c)
{
    tj_log(TJ_LOG_WARN,
           "%s: a file followed before (inode %llu, offset %lld) is gone; what it held past that "
           "offset was not shipped",
           c->path, (unsigned long long)c->id.ino, (long long)c->offset);
    c->offset = -1;
}

/* After the first scan: the files of followed paths that no name showed are gone. */
static void restored_sweep(struct tj_engine *e)
{
    for (size_t i = 0; i < e->restored.n; i++) {
        struct tj_ckpt_entry *c = &e->restored.v[i];
        if (c->offset >= 0 && c->path[0] && path_find(e, c->path))
            restored_gone(c);
    }
}

static bool copy_of_followed(struct tj_engine *e, const char *name, int fd)
{
    const char *dot = strrchr(name, '.');
    char base[PATH_MAX], buf[TJ_FILEID_FP_MAX];
    struct path *bp;
    struct gen *g;
    struct stat st;
    size_t n, got = 0;

    if (!dot || dot == name || !dot[1] || strspn(dot + 1, "0123456789") != strlen(dot + 1) ||
        (size_t)(dot - name) >= sizeof(base))
        return false;
    memcpy(base, name, (size_t)(dot - name));
    base[dot - name] = '\0';
    if (!(bp = path_find(e, base)) || !(g = gen_current(bp)) || fstat(fd, &st) != 0)
        return false;
    if (st.st_size == 0)
        return true; /* maybe a copy being made: looked at again when it has bytes */
    if (!g->head_from_reads || g->head_len == 0) {
        struct tj_fileid id = g->id;
        id.dev = st.st_dev;
        id.ino = st.st_ino;
        return g->id.fp_len && tj_fileid_matches_fd(fd, &id);
    }
    /* A copy still being made may hold less than the head kept: compare what it holds. */
    n = (size_t)st.st_size < g->head_len ? (size_t)st.st_size : g->head_len;
    while (got < n) {
        ssize_t k = pread(fd, buf + got, n - got, (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        got += (size_t)k;
    }
    return memcmp(buf, g->head, n) == 0;
}

/* At start (or when a path is followed again later): the files the checkpoints knew under this
 * path that were rotated away meanwhile (found by their identity among PATH.N, unless another
 * path reads them), then the file at the path, from where it was read before when its identity
 * is known under any path. */
static void path_restore(struct tj_engine *e, struct path *p, bool at_start)
{
    struct gen *cur = NULL, *g;
    struct stat st;
    char why[256];
    int64_t off = 0;
    bool cur_known = false;

    if (stat(p->name, &st) == 0 && S_ISREG(st.st_mode) && !path_alias(e, p, &st))
        cur = gen_open(p->name, 0, why, sizeof(why));
    for (size_t k = e->rest_by_path ? restored_lower_path(e, p->name) : e->restored.n;
         k < e->restored.n; k++) {
        struct tj_ckpt_entry *c = &e->restored.v[e->rest_by_path[k]];
        int fd;
        if (strcmp(c->path, p->name) != 0)
            break;
        if (c->offset < 0 || (cur && tj_fileid_matches_fd(cur->fd, &c->id)))
            continue; /* used, or the file at the path: below */
        if (ident_live(e, c->id.dev, c->id.ino)) {
            c->offset = -1; /* read under another name (a glob matched its new name first) */
            continue;
        }
        fd = find_sibling(p->name, want_identity, &c->id);
        if (fd < 0) {
            if (!e->first_scan) /* else another name may show it: see restored_gone */
                restored_gone(c);
            continue;
        }
        if ((g = gen_from_fd(fd, c->offset))) {
            g->retired = true;
            gen_append(e, p, g);
            tj_log(TJ_LOG_INFO,
                   "%s: finishing a file rotated while tailjet was down, from "
                   "offset %lld",
                   p->name, (long long)c->offset);
        }
        c->offset = -1;
    }
    if (cur && fstat(cur->fd, &st) == 0 && path_alias(e, p, &st)) {
        close(cur->fd); /* one of those just found (renamed back?) */
        free(cur);
        cur = NULL;
    }
    if (cur && copy_of_followed(e, p->name, cur->fd)) {
        p->aliased = true;
        p->alias_dev = cur->id.dev;
        p->alias_ino = cur->id.ino;
        close(cur->fd);
        free(cur);
        cur = NULL;
    }
    if (cur && (cur_known = file_known(e, cur->fd, &cur->id, &off))) {
        cur->read_off = cur->acked_off = off;
        cur->head_from_reads = off == 0;
    }
    if (cur && !cur_known && at_start && e->first_start && e->cfg.start_at_end)
        cur->read_off = cur->acked_off = (int64_t)lseek(cur->fd, 0, SEEK_END);
    if (cur)
        gen_append(e, p, cur);
}

/* Starts following a path with src (a reference is taken) and the metadata values meta[k]
 * (NUL-terminated, or NULL; the file path and host name are the engine's). */
static struct path *path_add(struct tj_engine *e, const char *name, struct source *src,
                             const char *const *meta, bool at_start)
{
    struct path *p = calloc(1, sizeof(*p));
    uint64_t hash = name_hash(name), h = hash % NAME_BUCKETS;

    if (!p || !(p->name = strdup(name))) {
        free(p);
        tj_log(TJ_LOG_ERROR, "out of memory: cannot follow %s", name);
        return NULL;
    }
    p->hash = hash;
    p->src = source_ref(src);
    tj_meta_init(&p->meta);
    for (int k = 0; meta && k < TJ_META_COUNT; k++)
        if (meta[k] && k != TJ_META_FILE_PATH && k != TJ_META_HOST_NAME &&
            tj_meta_set(&p->meta, (enum tj_meta_key)k, meta[k], strlen(meta[k])))
            tj_log(TJ_LOG_ERROR, "out of memory: records of %s lack metadata", name);
    if (tj_meta_set(&p->meta, TJ_META_FILE_PATH, name, strlen(name)) ||
        (e->host_name &&
         tj_meta_set(&p->meta, TJ_META_HOST_NAME, e->host_name, strlen(e->host_name))))
        tj_log(TJ_LOG_ERROR, "out of memory: records of %s lack metadata", name);
    p->fmt = has_suffix(name, "-json.log") ? TJ_FORMAT_JSONFILE : TJ_FORMAT_AUTO;
    tj_buf_init(&p->carry, TJ_ASSEMBLE_MAX_RAW(e->cfg.max_line_bytes) + e->cfg.chunk_bytes);
    p->wd = path_watch_dir(e, name);
    p->last_read_ms = now_ms();
    path_restore(e, p, at_start);
    pthread_mutex_lock(&e->lock);
    p->next = e->paths;
    p->pprev = &e->paths;
    if (e->paths)
        e->paths->pprev = &p->next;
    e->paths = p;
    p->hnext = e->by_name[h];
    e->by_name[h] = p;
    pthread_mutex_unlock(&e->lock);
    p->snext = e->slices[hash % SAFETY_POLLS];
    p->spprev = &e->slices[hash % SAFETY_POLLS];
    if (p->snext)
        p->snext->spprev = &p->snext;
    *p->spprev = p;
    mark_dirty(e, p);
    set_busy(e, p, true);
    tj_log(TJ_LOG_DEBUG, "following %s", name);
    return p;
}

static void path_free(struct path *p)
{
    struct gen *g = p->gens, *n;

    for (; g; g = n) {
        n = g->next;
        close(g->fd);
        free(g);
    }
    source_unref(p->src);
    tj_meta_fini(&p->meta);
    tj_buf_fini(&p->carry);
    free(p->name);
    free(p);
}

/* Runs every glob (with `all`; else only those that no inotify watch covers); new files become
 * paths. */
static void scan_globs(struct tj_engine *e, bool at_start, bool all)
{
    if (!all) {
        size_t k = 0;
        while (k < e->nwatches && !e->watches[k].polled)
            k++;
        if (k == e->nwatches)
            return;
    }
    if (all)
        e->match_epoch++; /* a partial run keeps what the others matched */
    for (size_t i = 0; i < e->nwatches; i++) {
        glob_t gl;
        int rc;
        if (!all && !e->watches[i].polled)
            continue;
        rc = glob(e->watches[i].glob, GLOB_NOSORT, NULL, &gl);
        if (rc == 0) {
            for (size_t k = 0; k < gl.gl_pathc; k++) {
                struct path *p = path_find(e, gl.gl_pathv[k]);
                struct stat st;
                if (!p && stat(gl.gl_pathv[k], &st) == 0 && S_ISREG(st.st_mode))
                    p = path_add(e, gl.gl_pathv[k], e->watches[i].src, NULL, at_start);
                if (p)
                    p->match_epoch = e->match_epoch;
            }
        }
        if (rc != GLOB_NOMATCH)
            globfree(&gl);
    }
}

/* ---- chunks (reader side) ---- */

/* Splits segs (covering n bytes in order) at byte k: the first part stays in a, the rest goes
 * to b. */
static void segs_split(const struct seg *s, int n, size_t k, struct seg *a, int *na, struct seg *b,
                       int *nb)
{
    *na = *nb = 0;
    for (int i = 0; i < n; i++) {
        struct seg x = s[i];
        if (k >= x.len) {
            a[(*na)++] = x;
            k -= x.len;
        } else if (k > 0) {
            a[(*na)++] = (struct seg){x.g, x.off, k};
            b[(*nb)++] = (struct seg){x.g, x.off + (int64_t)k, x.len - k};
            k = 0;
        } else {
            b[(*nb)++] = x;
        }
    }
}

static void segs_add(struct seg *s, int *n, struct gen *g, int64_t off, size_t len)
{
    if (*n && s[*n - 1].g == g && s[*n - 1].off + (int64_t)s[*n - 1].len == off)
        s[*n - 1].len += len;
    else
        s[(*n)++] = (struct seg){g, off, len};
}

/* Queues a chunk of the path made of carry bytes [0, n) (segments cseg): the rest of the carry
 * stays. Returns 0 or TJ_ENOMEM. */
static int dispatch(struct tj_engine *e, struct path *p, size_t n, size_t skip, bool final,
                    bool cut_tail)
{
    struct chunk *c = calloc(1, sizeof(*c));
    struct seg rest[MAX_SEGS];
    int nrest;

    if (!c)
        return TJ_ENOMEM;
    c->p = p;
    c->skip = skip;
    c->final = final;
    c->cut_tail = cut_tail;
    c->fmt = p->fmt;
    c->src = source_ref(p->src);
    c->b.key = slice_of(c->src->key ? c->src->key : p->name); /* a file's records: one key */
    c->b.topic = slice_of(c->src->topic);
    c->b.index = slice_of(c->src->index);
    c->b.service = slice_of(c->src->ctr ? c->src->ctr->name : NULL);
    segs_split(p->cseg, p->ncseg, n, c->seg, &c->nseg, rest, &nrest);
    pthread_mutex_lock(&e->lock);
    pool_get(e->in_pool, &e->nin_pool, &c->in, p->carry.max);
    pthread_mutex_unlock(&e->lock);
    if (n >= p->carry.len / 2) {
        /* Most of the carry goes: the chunk takes its buffer, the rest moves to a new one. */
        struct tj_buf t = c->in;
        c->in = p->carry;
        p->carry = t;
        if (tj_buf_append(&p->carry, c->in.data + n, c->in.len - n)) {
            t = c->in; /* give the buffer back: nothing changed */
            c->in = p->carry;
            p->carry = t;
            goto nomem;
        }
        c->in.len = n;
    } else {
        if (tj_buf_append(&c->in, p->carry.data, n))
            goto nomem;
        memmove(p->carry.data, p->carry.data + n, p->carry.len - n);
        p->carry.len -= n;
    }
    p->scanned = p->scanned > n ? p->scanned - n : 0;
    memcpy(p->cseg, rest, sizeof(rest));
    p->ncseg = nrest;
    c->in_bytes = n;

    pthread_mutex_lock(&e->lock);
    c->seq = p->seq++;
    for (int i = 0; i < c->nseg; i++)
        c->seg[i].g->refs++;
    if (p->inflight_tail)
        p->inflight_tail->next_inflight = c;
    else
        p->inflight = c;
    p->inflight_tail = c;
    p->ninflight++;
    e->inflight_bytes += c->in_bytes;
    e->inflight_chunks++;
    e->st.chunks++;
    if (e->jobs_tail)
        e->jobs_tail->next = c;
    else
        e->jobs = c;
    e->jobs_tail = c;
    pthread_cond_signal(&e->job_cv);
    pthread_mutex_unlock(&e->lock);
    return 0;
nomem:
    source_unref(c->src);
    tj_buf_fini(&c->in);
    free(c);
    return TJ_ENOMEM;
}

/* The first generation with bytes left to read. */
static struct gen *gen_reading(struct path *p)
{
    for (struct gen *g = p->gens; g; g = g->next)
        if (!g->eof)
            return g;
    return NULL;
}

/* The file at the path may have been truncated (copytruncate, a writer starting over) while it
 * was read: after each read of the file now at the path, its size and first bytes must still be
 * those of what was read before; otherwise the bytes just read belong to its new content. */
static bool read_still_valid(struct tj_engine *e, struct path *p, struct gen *g)
{
    struct stat st;

    TJ_UNUSED(e);
    TJ_UNUSED(p);
    if (fstat(g->fd, &st) != 0 || st.st_size < g->read_off)
        return false;
    pthread_mutex_lock(&e->lock);
    g->size_seen = st.st_size;
    pthread_mutex_unlock(&e->lock);
    return gen_head_matches(g);
}

/* Keeps the first bytes read of a file read from its start, and its fingerprint from them. */
static void head_grow(struct tj_engine *e, struct gen *g, const char *data, size_t n)
{
    size_t k;

    if (!g->head_from_reads || g->read_off != (int64_t)g->head_len ||
        g->head_len == TJ_FILEID_FP_MAX)
        return;
    k = TJ_FILEID_FP_MAX - g->head_len < n ? TJ_FILEID_FP_MAX - g->head_len : n;
    memcpy(g->head + g->head_len, data, k);
    g->head_len += (uint32_t)k;
    pthread_mutex_lock(&e->lock); /* checkpoints read it */
    g->id.fp_len = g->head_len;
    g->id.fp_hash = tj_fileid_hash(g->head, g->head_len);
    e->state_ver++;
    pthread_mutex_unlock(&e->lock);
}

/* Ships what the carry holds now (the file ended, or went quiet long enough): every complete
 * line, and with `all` the last unterminated one too. */
static int flush_carry(struct tj_engine *e, struct path *p, bool all)
{
    const char *nl;
    size_t n;

    if (!p->carry.len)
        return 0;
    if (all)
        return dispatch(e, p, p->carry.len, 0, true, false);
    nl = memrchr(p->carry.data, '\n', p->carry.len);
    n = nl ? (size_t)(nl - p->carry.data) + 1 : 0;
    return n ? dispatch(e, p, n, 0, false, false) : 0;
}

/* Reads the next piece of the path's data into its carry and queues what can be parsed.
 * Returns true when it read something (there may be more). */
static bool path_read_once(struct tj_engine *e, struct path *p, struct tj_cut *cut, int64_t now)
{
    const size_t max_raw = TJ_ASSEMBLE_MAX_RAW(e->cfg.max_line_bytes);
    struct gen *g = gen_reading(p);
    size_t want = e->cfg.chunk_bytes, base = 0, k;
    ssize_t n;

    if (!g)
        return false;
    if (!p->carry.cap) {
        pthread_mutex_lock(&e->lock);
        pool_get(e->in_pool, &e->nin_pool, &p->carry, p->carry.max);
        pthread_mutex_unlock(&e->lock);
    }
    if (tj_buf_reserve(&p->carry, want)) {
        flush_carry(e, p, true); /* cannot happen: the carry never exceeds max_raw */
        return true;
    }
    n = pread(g->fd, p->carry.data + p->carry.len, want, g->read_off);
    if (n < 0 && errno == EINTR)
        return true;
    if (n <= 0) {
        if (n < 0)
            tj_log(TJ_LOG_ERROR, "reading %s: %s; the file is left", p->name, strerror(errno));
        if (g->retired && n == 0 && p->carry.len && p->carry.data[p->carry.len - 1] != '\n' &&
            carry_uses(p, g)) {
            /* A line of this rotated file is cut short: its writer may still finish it (it
             * has not reopened its log yet). Wait for that, --rotate-wait at most, before the
             * files after it are read. */
            if (!g->torn_since)
                g->torn_since = now;
            if (now - g->torn_since < (int64_t)e->cfg.rotate_wait_ms)
                return false;
        }
        if (g->retired && n == 0 && !g->next && p->carry.len && p->fmt == TJ_FORMAT_JSONFILE &&
            p->ncseg < MAX_SEGS && carry_uses(p, g) &&
            tj_assemble_cut(cut, p->carry.data, p->carry.len, 0) != p->carry.len) {
            /* A line still in 16 KiB pieces continues in the next file, which Docker creates
             * just after the rename: it may not exist yet. Wait for it, --rotate-wait at most,
             * before the pieces are shipped on their own. */
            if (!g->torn_since)
                g->torn_since = now;
            if (now - g->torn_since < (int64_t)e->cfg.rotate_wait_ms)
                return false;
        }
        if (g->retired || n < 0) {
            g->eof = true;
            g->linger_until = now + e->cfg.rotate_wait_ms;
            if (n < 0)
                g->retired = true;
            /* Nothing will complete a line cut short at its end: end it here (the '\n' is not
             * the file's, so no segment counts it). */
            if (p->carry.len && p->carry.data[p->carry.len - 1] != '\n')
                p->carry.data[p->carry.len++] = '\n';
            /* The carry joins the next file only for a line still in 16 KiB pieces. */
            if (!g->next || p->fmt != TJ_FORMAT_JSONFILE || p->ncseg == MAX_SEGS ||
                tj_assemble_cut(cut, p->carry.data, p->carry.len, 0) == p->carry.len)
                flush_carry(e, p, true);
            return g->next != NULL;
        }
        if (e->cfg.exit_on_eof)
            flush_carry(e, p, true);
        else if (p->carry.len && now - p->last_read_ms >= e->cfg.multiline_timeout_ms)
            flush_carry(e, p, false);
        return false;
    }
    if (!g->retired && !read_still_valid(e, p, g)) {
        handle_truncation(e, p, g); /* what was just read is the new content: not kept */
        return true;
    }
    head_grow(e, g, p->carry.data + p->carry.len, (size_t)n);
    segs_add(p->cseg, &p->ncseg, g, g->read_off, (size_t)n);
    g->read_off += n;
    p->carry.len += (size_t)n;
    p->last_read_ms = now;
    pthread_mutex_lock(&e->lock);
    e->st.bytes_read += (uint64_t)n;
    pthread_mutex_unlock(&e->lock);

    if (p->skipping) { /* the rest of an overlong line already shipped cut */
        const char *nl = memchr(p->carry.data, '\n', p->carry.len);
        if (!nl) {
            dispatch(e, p, p->carry.len, p->carry.len, false, false);
            return true;
        }
        base = (size_t)(nl - p->carry.data) + 1;
        p->skipping = false;
        p->scanned = base;
    }
    if (p->fmt == TJ_FORMAT_AUTO)
        p->fmt = tj_assemble_detect(p->carry.data + base, p->carry.len - base, cut->scratch);
    cut->fmt = p->fmt;
    cut->multiline = p->src->rs->multiline;
    k = tj_assemble_cut(cut, p->carry.data + base, p->carry.len - base,
                        p->scanned > base ? p->scanned - base : 0);
    if (k) {
        const char *nl = memrchr(p->carry.data, '\n', p->carry.len);
        size_t lines_end = (size_t)(nl - p->carry.data) + 1;
        dispatch(e, p, base + k, base, false, false);
        p->scanned = lines_end - (base + k); /* what follows the cut holds no event start */
    } else if (p->carry.len >= max_raw) {
        /* No boundary in all that: an event longer than any record may be. */
        const char *nl = memrchr(p->carry.data + base, '\n', p->carry.len - base);
        if (nl) {
            dispatch(e, p, (size_t)(nl - p->carry.data) + 1, base, false, false);
        } else {
            dispatch(e, p, p->carry.len, base, false, true);
            p->skipping = true;
        }
    } else {
        const char *nl;
        if (base)
            dispatch(e, p, base, base, false, false);
        nl = memrchr(p->carry.data, '\n', p->carry.len);
        p->scanned = nl ? (size_t)(nl - p->carry.data) + 1 : 0;
    }
    return true;
}

/* path_read_once, then an empty carry gives its buffer back: a thousand quiet files hold no
 * read buffers. */
static bool path_read(struct tj_engine *e, struct path *p, struct tj_cut *cut, int64_t now)
{
    bool more = path_read_once(e, p, cut, now);

    if (!p->carry.len && p->carry.cap) {
        size_t max = p->carry.max;
        pthread_mutex_lock(&e->lock);
        pool_put(e->in_pool, &e->nin_pool, &p->carry, 2 * e->cfg.chunk_bytes + 65536, e->pool_keep);
        pthread_mutex_unlock(&e->lock);
        p->carry.max = max;
    }
    return more;
}

/* ---- metrics ---- */

/* Drops the counters no source holds any more. Called with the lock held: counters_for, the
 * only place that takes a new reference to listed counters, holds it too. */
static void counters_sweep(struct tj_engine *e)
{
    for (struct svc_counters **pp = &e->counters, *c; (c = *pp);) {
        if (__atomic_load_n(&c->refs, __ATOMIC_ACQUIRE) > 0) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        e->truncated_gone += c->truncated;
        tj_ruleset_unref(c->rs);
        free(c->name);
        free(c);
    }
}

/* A reference to the counters of a service (created on first use), for a source about to be
 * made with rs, which owns it from then on. Any thread. NULL when out of memory. */
static struct svc_counters *counters_for(struct tj_engine *e, const char *name,
                                         struct tj_ruleset *rs)
{
    struct svc_counters *c;

    pthread_mutex_lock(&e->lock);
    counters_sweep(e);
    for (c = e->counters; c && strcmp(c->name, name) != 0; c = c->next)
        ;
    if (!c && (c = calloc(1, sizeof(*c)))) {
        if ((c->name = strdup(name))) {
            c->next = e->counters;
            e->counters = c;
        } else {
            free(c);
            c = NULL;
        }
    }
    if (c) {
        __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
        if (c->rs != rs) {
            tj_ruleset_unref(c->rs);
            c->rs = tj_ruleset_ref(rs);
        }
    }
    pthread_mutex_unlock(&e->lock);
    return c;
}

static void counters_add(struct svc_counters *c, const struct tj_parse_stats *before,
                         const struct tj_parse_stats *after, bool patterns)
{
    uint64_t matched = after->matched - before->matched, unmatched = after->failed - before->failed,
             json = after->json_errors - before->json_errors,
             records = after->records - before->records;

    if (!c)
        return;
    if (!patterns)
        unmatched = 0; /* nothing to match: the records are unparsed */
    __atomic_add_fetch(&c->matched, matched, __ATOMIC_RELAXED);
    __atomic_add_fetch(&c->unmatched, unmatched, __ATOMIC_RELAXED);
    __atomic_add_fetch(&c->json_error, json, __ATOMIC_RELAXED);
    __atomic_add_fetch(&c->unparsed, records - matched - unmatched - json, __ATOMIC_RELAXED);
    __atomic_add_fetch(&c->truncated, after->truncated - before->truncated, __ATOMIC_RELAXED);
    __atomic_add_fetch(&c->limited, after->limited - before->limited, __ATOMIC_RELAXED);
}

void tj_engine_metrics(struct tj_engine *e, struct tj_buf *b)
{
    static const char *const results[] = {"matched", "unmatched", "json_error", "unparsed"};
    struct tj_engine_stats st;
    int64_t now = now_ms();
    size_t files = 0;

    pthread_mutex_lock(&e->lock);
    counters_sweep(e);
    st = e->st;
    tj_buf_prom_head(b, "tailjet_up_seconds", "gauge", "Seconds since tailjet started.");
    tj_buf_printf(b, "tailjet_up_seconds %.3f\n", (double)(now - e->start_ms) / 1000.0);
    tj_buf_prom_head(b, "tailjet_read_bytes_total", "counter", "Bytes read from log files.");
    tj_buf_printf(b, "tailjet_read_bytes_total %llu\n", (unsigned long long)st.bytes_read);
    tj_buf_prom_head(
        b, "tailjet_records_total", "counter",
        "Records parsed, by service and result (matched, unmatched: _grokparsefailure, "
        "json_error: _jsonparsefailure, unparsed: no pattern or _patternerror).");
    for (struct svc_counters *c = e->counters; c; c = c->next) {
        uint64_t v[4] = {__atomic_load_n(&c->matched, __ATOMIC_RELAXED),
                         __atomic_load_n(&c->unmatched, __ATOMIC_RELAXED),
                         __atomic_load_n(&c->json_error, __ATOMIC_RELAXED),
                         __atomic_load_n(&c->unparsed, __ATOMIC_RELAXED)};
        for (int k = 0; k < 4; k++) {
            tj_buf_printf(b, "tailjet_records_total{service=\"");
            tj_buf_prom_label(b, c->name);
            tj_buf_printf(b, "\",result=\"%s\"} %llu\n", results[k], (unsigned long long)v[k]);
        }
    }
    tj_buf_prom_head(b, "tailjet_records_truncated_total", "counter",
                     "Records cut at the line cap (tagged _truncated).");
    {
        uint64_t t = e->truncated_gone;
        for (struct svc_counters *c = e->counters; c; c = c->next)
            t += __atomic_load_n(&c->truncated, __ATOMIC_RELAXED);
        tj_buf_printf(b, "tailjet_records_truncated_total %llu\n", (unsigned long long)t);
    }
    tj_buf_prom_head(b, "tailjet_output_records_acked_total", "counter",
                     "Records the output acknowledged (delivered).");
    tj_buf_printf(b, "tailjet_output_records_acked_total{output=\"%s\"} %llu\n",
                  e->out ? e->out->ops->scheme : "none", (unsigned long long)st.records_acked);
    tj_buf_prom_head(b, "tailjet_output_submit_retries_total", "counter",
                     "Times the output refused a batch (it is retried, never dropped).");
    tj_buf_printf(b, "tailjet_output_submit_retries_total %llu\n",
                  (unsigned long long)st.submit_retries);
    tj_buf_prom_head(b, "tailjet_inflight_bytes", "gauge", "Input read but not yet acknowledged.");
    tj_buf_printf(b, "tailjet_inflight_bytes %zu\n", e->inflight_bytes);
    tj_buf_prom_head(b, "tailjet_inflight_chunks", "gauge",
                     "Chunks read but not yet acknowledged.");
    tj_buf_printf(b, "tailjet_inflight_chunks %zu\n", e->inflight_chunks);
    tj_buf_prom_head(
        b, "tailjet_file_lag_bytes", "gauge",
        "Bytes of a followed file not yet acknowledged (its size minus its checkpoint).");
    for (struct path *p = e->paths; p; p = p->next) {
        int64_t lag = 0;
        for (struct gen *g = p->gens; g; g = g->next) {
            lag += g->size_seen > g->acked_off ? g->size_seen - g->acked_off : 0;
        }
        files += p->gens != NULL;
        tj_buf_printf(b, "tailjet_file_lag_bytes{path=\"");
        tj_buf_prom_label(b, p->name);
        tj_buf_printf(b, "\"} %lld\n", (long long)lag);
    }
    tj_buf_prom_head(b, "tailjet_files_followed", "gauge", "Paths with an open file.");
    tj_buf_printf(b, "tailjet_files_followed %zu\n", files);
    tj_buf_prom_head(b, "tailjet_checkpoint_age_seconds", "gauge",
                     "Seconds since checkpoints were last written (since start when never).");
    tj_buf_printf(b, "tailjet_checkpoint_age_seconds %.3f\n",
                  (double)(now - (e->ckpt_ok_ms ? e->ckpt_ok_ms : e->start_ms)) / 1000.0);
    tj_buf_prom_head(b, "tailjet_rotations_total", "counter",
                     "Files rotated away (renamed, unlinked).");
    tj_buf_printf(b, "tailjet_rotations_total %llu\n", (unsigned long long)st.rotations);
    tj_buf_prom_head(b, "tailjet_truncations_total", "counter", "Files truncated (copytruncate).");
    tj_buf_printf(b, "tailjet_truncations_total %llu\n", (unsigned long long)st.truncations);
    pthread_mutex_unlock(&e->lock);
}

void tj_engine_services_json(struct tj_engine *e, struct tj_buf *b)
{
    bool first = true;

    pthread_mutex_lock(&e->lock);
    counters_sweep(e);
    tj_buf_append(b, "[", 1);
    for (struct svc_counters *c = e->counters; c; c = c->next) {
        const struct tj_ruleset *rs = c->rs;
        tj_buf_printf(b, "%s{\"name\":", first ? "" : ",");
        first = false;
        tj_json_string(b, c->name, strlen(c->name));
        tj_buf_printf(b,
                      ",\"matched\":%llu,\"unmatched\":%llu,\"json_error\":%llu,"
                      "\"unparsed\":%llu,\"truncated\":%llu,\"groktimeout\":%llu,\"patterns\":[",
                      (unsigned long long)__atomic_load_n(&c->matched, __ATOMIC_RELAXED),
                      (unsigned long long)__atomic_load_n(&c->unmatched, __ATOMIC_RELAXED),
                      (unsigned long long)__atomic_load_n(&c->json_error, __ATOMIC_RELAXED),
                      (unsigned long long)__atomic_load_n(&c->unparsed, __ATOMIC_RELAXED),
                      (unsigned long long)__atomic_load_n(&c->truncated, __ATOMIC_RELAXED),
                      (unsigned long long)__atomic_load_n(&c->limited, __ATOMIC_RELAXED));
        for (size_t i = 0; rs && i < rs->nalt; i++) {
            if (i)
                tj_buf_append(b, ",", 1);
            tj_json_string(b, rs->alt[i]->expr, strlen(rs->alt[i]->expr));
        }
        tj_buf_printf(
            b, "],\"ecs\":\"%s\",\"multiline\":", tj_ecs_mode_name(rs ? rs->ecs : TJ_ECS_V1));
        if (rs && rs->multiline)
            tj_json_string(b, rs->multiline->expr, strlen(rs->multiline->expr));
        else
            tj_buf_append(b, "null", 4);
        tj_buf_append(b, "}", 1);
    }
    tj_buf_append(b, "]", 1);
    pthread_mutex_unlock(&e->lock);
}

size_t tj_engine_health(struct tj_engine *e, struct tj_buf *b)
{
    size_t problems = 0;
    int64_t now = now_ms();

    char why[300] = "";

    if (e->out && e->out->ops->problem)
        e->out->ops->problem(e->out->state, why, sizeof(why));
    pthread_mutex_lock(&e->lock);
    for (struct path *p = e->paths; p; p = p->next) {
        if (p->retry_at && p->backoff_ms >= 1000) { /* refused for a while, not a blip */
            tj_buf_printf(b, "output: refusing records: %s (retrying every %u ms)\n",
                          why[0] ? why : "see the log", p->backoff_ms);
            problems++;
            break;
        }
    }
    if (!problems && why[0]) { /* e.g. brokers down while nothing is waiting yet */
        tj_buf_printf(b, "output: %s\n", why);
        problems++;
    }
    if (e->ckpt_ok_ms && now - e->ckpt_ok_ms > 10 * (int64_t)e->cfg.checkpoint_ms + 10000) {
        tj_buf_printf(b, "checkpoints: not written for %lld s\n",
                      (long long)(now - e->ckpt_ok_ms) / 1000);
        problems++;
    }
    pthread_mutex_unlock(&e->lock);
    return problems;
}

/* ---- requests from discovery ---- */

static void op_free(struct op *o)
{
    free(o->path);
    source_unref(o->src);
    for (int k = 0; k < TJ_META_COUNT; k++)
        free(o->meta[k]);
    free(o);
}

/* Holds the path (opened, not read) or lets it be read. */
static void set_held(struct tj_engine *e, struct path *p, bool held)
{
    if (held == p->held)
        return;
    p->held = held;
    if (held)
        e->nheld++;
    else
        e->nheld--;
    mark_dirty(e, p);
}

/* Applies discovery's requests (reader thread). */
static void apply_ops(struct tj_engine *e)
{
    struct op *o, *next;

    pthread_mutex_lock(&e->lock);
    o = e->ops;
    e->ops = e->ops_tail = NULL;
    pthread_mutex_unlock(&e->lock);
    for (; o; o = next) {
        struct path *p = o->path ? path_find(e, o->path) : NULL;
        next = o->next;
        if (o->release) {
            /* what was followed before this is in the paths now: the next idle pass counts */
            __atomic_store_n(&e->reader_idle, false, __ATOMIC_RELEASE);
            __atomic_sub_fetch(&e->eof_holds, 1, __ATOMIC_ACQ_REL);
        } else if (o->src && !p) {
            p = path_add(e, o->path, o->src, (const char *const *)o->meta, o->initial);
            if (p) {
                p->discovered = true;
                set_held(e, p, o->hold);
            }
        } else if (o->src) {
            struct source *old = p->src;
            struct gen *g = p->gens;
            struct stat st;
            p->src = source_ref(o->src); /* chunks read from now on use the new rules */
            source_unref(old);
            p->discovered = true;
            set_held(e, p, o->hold);
            mark_dirty(e, p);
            set_busy(e, p, true);
            while (g && g->next)
                g = g->next;
            /* Unfollowed, then followed again (a container listed again): the file still at
             * the path goes on where it was, it is not read again from its start. */
            if (g && g->retired && !g->truncated && stat(p->name, &st) == 0 &&
                (uint64_t)st.st_dev == g->id.dev && (uint64_t)st.st_ino == g->id.ino)
                g->retired = g->eof = false;
        } else if (p && p->discovered) {
            struct gen *cur = gen_current(p);
            p->discovered = false;
            set_held(e, p, false); /* what it holds is read, with the rules it has */
            if (!path_matched(e, p) && cur)
                cur->retired = true; /* read to its end, then released */
            mark_dirty(e, p);
            set_busy(e, p, true);
            tj_log(TJ_LOG_DEBUG, "%s: no longer followed once read to its end", p->name);
        }
        op_free(o);
    }
}

static int op_queue(struct tj_engine *e, struct op *o)
{
    pthread_mutex_lock(&e->lock);
    if (e->ops_tail)
        e->ops_tail->next = o;
    else
        e->ops = o;
    e->ops_tail = o;
    pthread_mutex_unlock(&e->lock);
    wake_reader(e);
    return 0;
}

int tj_engine_follow(struct tj_engine *e, const struct tj_follow *f, bool initial)
{
    struct op *o = calloc(1, sizeof(*o));

    const char *svc = f->meta[TJ_META_SERVICE_NAME]     ? f->meta[TJ_META_SERVICE_NAME]
                      : f->meta[TJ_META_CONTAINER_NAME] ? f->meta[TJ_META_CONTAINER_NAME]
                                                        : "file";

    if (!o || !(o->path = strdup(f->path)) ||
        !(o->src = source_create(f->rs, f->topic, f->index, f->key, counters_for(e, svc, f->rs))))
        goto nomem;
    for (int k = 0; k < TJ_META_COUNT; k++)
        if (f->meta[k] && !(o->meta[k] = strdup(f->meta[k])))
            goto nomem;
    o->initial = initial;
    o->hold = f->hold;
    return op_queue(e, o);
nomem:
    if (o)
        op_free(o);
    return TJ_ENOMEM;
}

void tj_engine_hold_eof(struct tj_engine *e)
{
    __atomic_add_fetch(&e->eof_holds, 1, __ATOMIC_ACQ_REL);
}

int tj_engine_release_eof(struct tj_engine *e)
{
    struct op *o = calloc(1, sizeof(*o));

    if (!o)
        return TJ_ENOMEM;
    o->release = true;
    return op_queue(e, o);
}

int tj_engine_unfollow(struct tj_engine *e, const char *path)
{
    struct op *o = calloc(1, sizeof(*o));

    if (!o || !(o->path = strdup(path))) {
        free(o);
        return TJ_ENOMEM;
    }
    return op_queue(e, o);
}

/* ---- the reader thread ---- */

static bool budget_left(struct tj_engine *e)
{
    bool ok;

    pthread_mutex_lock(&e->lock);
    ok = e->inflight_chunks == 0 || e->inflight_bytes + e->cfg.chunk_bytes <= e->cfg.read_ahead;
    e->reader_blocked = !ok;
    pthread_mutex_unlock(&e->lock);
    return ok;
}

static void mark_dir_dirty(struct tj_engine *e, int wd)
{
    for (struct path *p = e->paths; p; p = p->next)
        if (p->wd == wd)
            mark_dirty(e, p);
}

/* An event about file `name` in watch wd: marks its path, if it is one (a file no path follows
 * is no news; files being finished are looked at every poll anyway). Returns false when the
 * directory's paths must all be marked instead. */
static bool mark_file_dirty(struct tj_engine *e, int wd, const char *name)
{
    struct wdir *w = wdir_find(e, wd);
    char full[PATH_MAX];
    struct path *p;

    if (!w || w->mixed || !name[0] ||
        (size_t)snprintf(full, sizeof(full), "%s%s", w->prefix, name) >= sizeof(full))
        return false;
    if ((p = path_find(e, full)) && p->wd == wd)
        mark_dirty(e, p);
    return true;
}

/* A file appeared as `name` in watch wd: followed at once when a glob matches it (as glob(3)
 * would: FNM_PATHNAME, FNM_PERIOD), so that a rotation among ten thousand files does not run
 * every glob again. Returns false when the globs must run instead (a directory, a name that
 * cannot be made whole). */
static bool new_file(struct tj_engine *e, int wd, const char *name)
{
    struct wdir *w = wdir_find(e, wd);
    char full[PATH_MAX];
    struct stat st;

    if (!w || w->mixed ||
        (size_t)snprintf(full, sizeof(full), "%s%s", w->prefix, name) >= sizeof(full))
        return false;
    if (path_find(e, full))
        return true; /* marked by mark_file_dirty */
    if (stat(full, &st) != 0)
        return true; /* gone already: nothing to follow */
    if (!S_ISREG(st.st_mode))
        return false;
    for (size_t i = 0; i < e->nwatches; i++) {
        if (fnmatch(e->watches[i].glob, full, FNM_PATHNAME | FNM_PERIOD) == 0) {
            struct path *p = path_add(e, full, e->watches[i].src, NULL, false);
            if (p)
                p->match_epoch = e->match_epoch;
            return p != NULL;
        }
    }
    return true; /* no glob wants it */
}

/* Drains inotify. Returns true when a glob should be run again soon (files appeared). */
static bool drain_inotify(struct tj_engine *e)
{
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool rescan = false;
    int last_wd = -2, last_named_wd = -2;
    char last_name[NAME_MAX + 1] = "";

    for (;;) {
        ssize_t n = read(e->inotify_fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (char *q = buf; q < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)q;
            if (ev->mask & IN_Q_OVERFLOW) {
                for (struct path *p = e->paths; p; p = p->next)
                    mark_dirty(e, p);
                rescan = true;
            } else if (ev->len && ev->wd == last_named_wd && strcmp(ev->name, last_name) == 0) {
                /* the same file as the event before (a writer's every write): marked */
            } else if (ev->len && mark_file_dirty(e, ev->wd, ev->name)) {
                last_named_wd = ev->wd; /* that file's path only */
                snprintf(last_name, sizeof(last_name), "%s", ev->name);
            } else if (ev->wd != last_wd) {
                mark_dir_dirty(e, ev->wd);
                last_wd = ev->wd;
            }
            if ((ev->mask & (IN_CREATE | IN_MOVED_TO)) &&
                !(ev->len && new_file(e, ev->wd, ev->name)))
                rescan = true;
            q += sizeof(*ev) + ev->len;
        }
    }
    return rescan;
}

/* Forgets paths that are gone: not matched, no file left, nothing in flight or carried, not
 * waiting to be read. Such a path is busy (it has no file), so the busy list holds them all. */
static void paths_prune(struct tj_engine *e)
{
    struct path *p, *next;

    pthread_mutex_lock(&e->lock);
    for (p = e->busy; p; p = next) {
        struct path **hp = &e->by_name[p->hash % NAME_BUCKETS];
        next = p->bnext;
        if (path_matched(e, p) || p->discovered || p->gens || p->ninflight || p->carry.len ||
            p->ready || p->submitting || p->retry_at || p->dirty) /* a worker may be inside */
            continue;
        while (*hp != p)
            hp = &(*hp)->hnext;
        *hp = p->hnext;
        *p->pprev = p->next;
        if (p->next)
            p->next->pprev = p->pprev;
        *p->spprev = p->snext;
        if (p->snext)
            p->snext->spprev = p->spprev;
        set_busy(e, p, false);
        path_free(p);
    }
    pthread_mutex_unlock(&e->lock);
}

/* A path worth a look at every poll even with inotify: a file being finished or followed
 * elsewhere, one without a file, one whose directory no watch covers. */
static bool path_busy(const struct path *p)
{
    return p->wd < 0 || p->aliased || !p->gens || p->gens->next || p->gens->retired ||
           p->carry.len || p->unreadable || p->held;
}

/* Whether the path has bytes to read or ship (its current file grew, a rotated one is not
 * finished, a carry waits). */
static bool path_has_work(const struct path *p)
{
    if (p->carry.len)
        return true;
    for (const struct gen *g = p->gens; g; g = g->next)
        if (!g->eof && (g->retired || g->size_seen != g->read_off))
            return true;
    return false;
}

/* How long a released file is remembered after the last time a path showed it: two full checks
 * of every path, so that a name that shows it finds it. */
static int64_t done_grace(const struct tj_engine *e)
{
    int64_t g = 2 * GLOB_POLLS * (int64_t)e->cfg.poll_ms;

    return g > 10000 ? g : 10000;
}

/* The safety net's look at one path: a change inotify did not report (or that happened in a
 * rotated file), a rotated file whose wait ended. */
static void safety_check(struct tj_engine *e, struct path *p)
{
    path_check(e, p);
    if (path_has_work(p))
        mark_dirty(e, p);
    else if (p->gens && p->gens->retired)
        gens_release(e, p); /* a rotated file's wait may have ended */
    set_busy(e, p, path_busy(p));
}

/* One pass over the dirty paths: each is read once (one chunk); one at the end of what it holds
 * is checked for a rotation or truncation. Sets *progress, *blocked (the read-ahead budget is
 * spent: the rest stay dirty), *pending (a carry waits for more). */
static void read_dirty(struct tj_engine *e, struct tj_cut *cut, int64_t now, bool *progress,
                       bool *blocked, bool *pending)
{
    struct path *p = e->dirty, *next;

    e->dirty = NULL; /* what stays dirty goes back on the list */
    for (; p; p = next) {
        next = p->dnext;
        p->dirty = false;
        if (p->held)
            continue; /* read once its rules come (set_held marks it dirty again) */
        if (*blocked || !budget_left(e)) {
            *blocked = true;
            mark_dirty(e, p);
            continue;
        }
        if (path_read(e, p, cut, now)) {
            *progress = true;
            mark_dirty(e, p);
        } else {
            /* At the end of what it holds: was it rotated or truncated meanwhile? A busy
             * reader must notice now, not at the next poll, or a file that lives a few
             * milliseconds (fast rotation) is gone before it is opened. */
            struct gen *before = gen_current(p);
            path_check(e, p);
            if (p->carry.len != 0 || gen_current(p) != before)
                mark_dirty(e, p);
            *progress |= gen_current(p) != before;
            gens_release(e, p);
            set_busy(e, p, path_busy(p));
        }
        *pending |= p->carry.len != 0;
    }
}

static void *reader_main(void *arg)
{
    struct tj_engine *e = arg;
    struct tj_buf scratch;
    struct tj_cut cut = {0};
    int64_t next_scan = 0, next_full = now_ms() + GLOB_POLLS * (int64_t)e->cfg.poll_ms;
    uint64_t npolls = 0;
    bool rescan = false;

    tj_buf_init(&scratch, TJ_ASSEMBLE_MAX_RAW(e->cfg.max_line_bytes) + 64);
    cut.scratch = &scratch;
    cut.matcher = tj_matcher_create(&e->cfg.limits);
    if (!cut.matcher) {
        tj_log(TJ_LOG_ERROR, "out of memory in the reader thread");
        __atomic_store_n(&e->fatal, true, __ATOMIC_RELEASE);
        goto out;
    }
    e->first_scan = true;
    scan_globs(e, true, true);
    e->first_scan = false;
    restored_sweep(e);
    __atomic_store_n(&e->started, true, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&e->reader_stop, __ATOMIC_ACQUIRE)) {
        int64_t now = now_ms();
        bool progress = false, blocked = false, pending = false;
        struct pollfd pfd[2] = {{e->wake_fd, POLLIN, 0}, {e->inotify_fd, POLLIN, 0}};
        int timeout;
        uint64_t v;

        apply_ops(e);
        if (now >= next_scan) {
            /* The safety net. With inotify, a file is checked as soon as its directory reports
             * a change; the poll looks each time only at files still being finished (rotated,
             * lingering, read under another name, absent) and at those no watch covers (the
             * busy list), and at a tenth of the others (one slice's list, by their name's hash:
             * each one every SAFETY_POLLS polls), so that it touches a tenth of the paths; the
             * globs run when inotify reports a new file, and every GLOB_POLLS polls. Without
             * inotify, everything at every poll. */
            bool full = e->inotify_fd < 0 || now >= next_full;
            unsigned slice = (unsigned)(npolls++ % SAFETY_POLLS);
            struct path *p, *next;
            scan_globs(e, false, full || rescan);
            rescan = false;
            if (e->inotify_fd < 0) {
                for (p = e->paths; p; p = p->next)
                    safety_check(e, p);
            } else {
                for (p = e->slices[slice]; p; p = p->snext)
                    if (!p->busy)
                        safety_check(e, p);
                for (p = e->busy; p; p = next) {
                    next = p->bnext; /* safety_check may take p off the list */
                    safety_check(e, p);
                }
            }
            paths_prune(e);
            if (full) {
                done_prune(e, now, done_grace(e));
                next_full = now + GLOB_POLLS * (int64_t)e->cfg.poll_ms;
            }
            next_scan = now + e->cfg.poll_ms;
        }
        read_dirty(e, &cut, now, &progress, &blocked, &pending);
        pending |= e->nheld != 0; /* not idle (--exit-on-eof) while a file waits for rules */
        if (!progress && !blocked && !pending &&
            !__atomic_exchange_n(&e->reader_idle, true, __ATOMIC_ACQ_REL))
            wake(e->main_fd); /* --exit-on-eof may be done */
        else if (progress || blocked || pending)
            __atomic_store_n(&e->reader_idle, false, __ATOMIC_RELEASE);
        if (progress && !blocked)
            continue;
        timeout = (int)(next_scan - now);
        if (pending && !blocked && timeout > (int)e->cfg.multiline_timeout_ms)
            timeout = (int)e->cfg.multiline_timeout_ms;
        if (timeout < 0)
            timeout = 0;
        if (poll(pfd, e->inotify_fd >= 0 ? 2 : 1, timeout) > 0) {
            if (pfd[0].revents & POLLIN && read(e->wake_fd, &v, sizeof(v)) < 0)
                v = 0;
            if (e->inotify_fd >= 0 && pfd[1].revents & POLLIN) {
                if (drain_inotify(e)) {
                    next_scan = now; /* a file appeared: run the globs now */
                    rescan = true;
                }
                for (struct path *p = e->dirty; p; p = p->dnext) {
                    path_check(e, p);
                    set_busy(e, p, path_busy(p));
                }
            }
        }
    }
out:
    tj_matcher_destroy(cut.matcher);
    tj_buf_fini(&scratch);
    return NULL;
}

/* ---- workers ---- */

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

/* Encodes one matched event into the chunk's records (a tj_batch_encode_fn). */
static int encode_event(void *arg, const struct tj_event *ev, const struct tj_match_result *res,
                        const size_t *ov)
{
    struct work *w = arg;
    struct chunk *c = w->c;
    int rc = tj_ruleset_encode(c->src->rs, ev, res, ov, &c->p->meta, &c->b.records, &w->st);

    if (rc == TJ_ENOSPC && c->b.records.len) {
        c->b.records.max += w->record_room; /* room for this one record, whatever it is */
        rc = tj_ruleset_encode(c->src->rs, ev, res, ov, &c->p->meta, &c->b.records, &w->st);
    }
    if (rc) {
        tj_log(TJ_LOG_ERROR, "%s: the record at offset %lld could not be encoded: %s", c->p->name,
               (long long)ev->offset, tj_strerror(rc));
        return 0; /* keep the others */
    }
    c->b.nrecords++;
    return 0;
}

static int on_event(void *arg, const struct tj_event *ev)
{
    struct work *w = arg;

    return tj_batch_push(w->batch, ev, w->c->src->rs, w->m, encode_event, w);
}

static int64_t chunk_offset(const struct chunk *c, size_t pos)
{
    for (int i = 0; i < c->nseg; i++) {
        if (pos < c->seg[i].len || i == c->nseg - 1)
            return c->seg[i].off + (int64_t)pos;
        pos -= c->seg[i].len;
    }
    return 0;
}

static void chunk_parse(struct work *w)
{
    struct chunk *c = w->c;
    const char *d = c->in.data, *end = d + c->in.len, *p = d + c->skip, *nl;
    char now[40];
    struct tj_feed f = {w->m, c->src->rs->multiline, on_event, w, {now, 0}};

    tj_time_now(now, sizeof(now));
    f.now.len = strlen(now);
    tj_batch_region(w->batch, d, end, now, sizeof(now)); /* both stay put until the run below */
    tj_assembler_reset(w->a, c->fmt);
    while (p < end && (nl = memchr(p, '\n', (size_t)(end - p)))) {
        tj_assembler_line(w->a, p, (size_t)(nl - p), chunk_offset(c, (size_t)(p - d)), false, &f);
        p = nl + 1;
    }
    if (p < end && (c->final || c->cut_tail))
        tj_assembler_line(w->a, p, (size_t)(end - p), chunk_offset(c, (size_t)(p - d)), c->cut_tail,
                          &f);
    tj_assembler_flush(w->a, true, &f);
    tj_batch_run(w->batch, c->src->rs, w->m, encode_event, w); /* encode_event logs */
}

/* Submits the path's parsed chunks that are next in sequence. Lock held on entry and exit. */
static void submit_ready(struct tj_engine *e, struct path *p)
{
    if (p->submitting || p->retry_at)
        return;
    p->submitting = true;
    while (p->ready && p->ready->seq == p->submit_seq) {
        struct chunk *c = p->ready;
        int rc;
        p->ready = c->next;
        pthread_mutex_unlock(&e->lock);
        rc = e->out->ops->submit(e->out->state, &c->b);
        pthread_mutex_lock(&e->lock);
        if (rc == 0) {
            p->submit_seq++;
            p->backoff_ms = 0;
            continue;
        }
        c->next = p->ready;
        p->ready = c;
        p->backoff_ms = p->backoff_ms ? (p->backoff_ms * 2 > 1000 ? 1000 : p->backoff_ms * 2) : 10;
        p->retry_at = now_ms() + p->backoff_ms;
        e->nretry++;
        e->st.submit_retries++;
        break;
    }
    p->submitting = false;
}

static void chunk_ready(struct tj_engine *e, struct chunk *c)
{
    struct path *p = c->p;
    struct chunk **pp = &p->ready;

    pthread_mutex_lock(&e->lock);
    pool_put(e->in_pool, &e->nin_pool, &c->in, 2 * e->cfg.chunk_bytes + 65536, e->pool_keep);
    while (*pp && (*pp)->seq < c->seq)
        pp = &(*pp)->next;
    c->next = *pp;
    *pp = c;
    submit_ready(e, p);
    pthread_mutex_unlock(&e->lock);
}

static void *worker_main(void *arg)
{
    struct work *w = arg;
    struct tj_engine *e = w->e;

    for (;;) {
        struct chunk *c;
        pthread_mutex_lock(&e->lock);
        while (!e->jobs && !e->workers_stop)
            pthread_cond_wait(&e->job_cv, &e->lock);
        c = e->jobs;
        if (!c) {
            pthread_mutex_unlock(&e->lock);
            break;
        }
        e->jobs = c->next;
        if (!e->jobs)
            e->jobs_tail = NULL;
        pool_get(e->out_pool, &e->nout_pool, &c->b.records, 16 * c->in.len + w->record_room);
        pthread_mutex_unlock(&e->lock);
        w->c = c;
        {
            struct tj_parse_stats before = w->st;
            chunk_parse(w);
            counters_add(c->src->ctr, &before, &w->st, c->src->rs->nalt != 0);
            if (tj_tap_wanted(e->tap,
                              w->st.failed + w->st.limited + w->st.json_errors + w->st.truncated !=
                                  before.failed + before.limited + before.json_errors +
                                      before.truncated))
                tj_tap_offer(e->tap, c->src->ctr ? c->src->ctr->name : "file", c->src->rs,
                             &c->p->meta, c->b.records.data, c->b.records.len);
        }
        chunk_ready(e, c);
    }
    return NULL;
}

void tj_engine_ack(void *engine, struct tj_batch *b, int status)
{
    struct tj_engine *e = engine;
    struct chunk *c = (struct chunk *)b, *h;
    struct path *p = c->p;

    TJ_UNUSED(status);
    pthread_mutex_lock(&e->lock);
    c->acked = true;
    while ((h = p->inflight) && h->acked) {
        p->inflight = h->next_inflight;
        if (!p->inflight)
            p->inflight_tail = NULL;
        p->ninflight--;
        for (int i = 0; i < h->nseg; i++) {
            struct gen *g = h->seg[i].g;
            int64_t end = h->seg[i].off + (int64_t)h->seg[i].len;
            if (end > g->acked_off)
                g->acked_off = end;
            e->state_ver++;
            g->refs--;
        }
        e->inflight_bytes -= h->in_bytes;
        e->inflight_chunks--;
        e->st.records_acked += h->b.nrecords;
        pool_put(e->out_pool, &e->nout_pool, &h->b.records, 4 * e->cfg.chunk_bytes, e->pool_keep);
        source_unref(h->src);
        free(h);
    }
    if (e->inflight_chunks == 0)
        wake(e->main_fd);
    if (e->reader_blocked &&
        (e->inflight_chunks == 0 || e->inflight_bytes + e->cfg.chunk_bytes <= e->cfg.read_ahead)) {
        e->reader_blocked = false;
        wake_reader(e);
    }
    pthread_mutex_unlock(&e->lock);
}

/* ---- checkpoints ---- */

static int save_checkpoints(struct tj_engine *e)
{
    struct tj_ckpt_table t;
    char err[512];
    int rc = 0;

    uint64_t ver;

    pthread_mutex_lock(&e->lock);
    ver = e->state_ver;
    if (e->ckpt_ok_ms && !e->ckpt_failing && ver == e->saved_ver) {
        e->ckpt_ok_ms = now_ms(); /* what is on disk is current: nothing to write */
        pthread_mutex_unlock(&e->lock);
        return 0;
    }
    tj_ckpt_table_init(&t);
    for (struct path *p = e->paths; p && !rc; p = p->next)
        for (struct gen *g = p->gens; g && !rc; g = g->next)
            rc = tj_ckpt_table_add(&t, &g->id, g->acked_off, p->name);
    for (size_t i = 0; i < IDENT_BUCKETS && !rc; i++) /* finished files: no path */
        for (struct done *d = e->done[i]; d && !rc; d = d->next)
            rc = tj_ckpt_table_add(&t, &d->id, d->off, "");
    pthread_mutex_unlock(&e->lock);
    if (rc || (rc = tj_ckpt_save(e->state_dir, &t, err, sizeof(err)))) {
        if (!e->ckpt_failing)
            tj_log(TJ_LOG_ERROR, "cannot write checkpoints: %s; retrying every %u ms",
                   rc == TJ_ENOMEM ? "out of memory" : err, e->cfg.checkpoint_ms);
        e->ckpt_failing = true;
    } else {
        if (e->ckpt_failing)
            tj_log(TJ_LOG_INFO, "checkpoints are written again");
        e->ckpt_failing = false;
        pthread_mutex_lock(&e->lock);
        e->ckpt_ok_ms = now_ms();
        e->saved_ver = ver;
        pthread_mutex_unlock(&e->lock);
    }
    tj_ckpt_table_fini(&t);
    return rc;
}

/* ---- life cycle ---- */

/* Makes the state directory when missing and takes its lock: two processes writing the same
 * checkpoints would each undo the other's. Returns 0 or TJ_EIO with err filled. */
static int lock_state_dir(struct tj_engine *e, char *err, size_t errlen)
{
    char path[PATH_MAX];

    if (mkdir(e->state_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create the state directory %s: %s", e->state_dir,
                 strerror(errno));
        return TJ_EIO;
    }
    snprintf(path, sizeof(path), "%s/lock", e->state_dir);
    e->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (e->lock_fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return TJ_EIO;
    }
    if (flock(e->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen,
                 "%s is in use by another tailjet (%s); give each one its own --state-dir",
                 e->state_dir, strerror(errno));
        return TJ_EIO;
    }
    return 0;
}

struct tj_engine *tj_engine_create(const struct tj_engine_cfg *cfg, char *err, size_t errlen)
{
    struct tj_engine *e = calloc(1, sizeof(*e));
    char warn[1024];
    int rc;

    if (!e) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->cfg = *cfg;
    e->start_ms = now_ms();
    e->pool_keep =
        2 * (size_t)cfg->workers + 2 < POOL_KEEP ? 2 * (size_t)cfg->workers + 2 : POOL_KEEP;
    e->wake_fd = e->main_fd = e->inotify_fd = e->lock_fd = -1;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->job_cv, NULL);
    tj_ckpt_table_init(&e->restored);
    e->state_dir = strdup(cfg->state_dir);
    e->host_name = cfg->host_name ? strdup(cfg->host_name) : NULL;
    e->cfg.state_dir = e->state_dir;
    if (!e->state_dir || (cfg->host_name && !e->host_name)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (lock_state_dir(e, err, errlen))
        goto fail;
    e->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    e->main_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e->wake_fd < 0 || e->main_fd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    e->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (e->inotify_fd < 0)
        tj_log(TJ_LOG_WARN, "inotify is not available (%s): files are polled every %u ms",
               strerror(errno), cfg->poll_ms);
    rc = tj_ckpt_load(e->state_dir, &e->restored, warn, sizeof(warn));
    if (warn[0])
        tj_log(TJ_LOG_WARN, "%s", warn);
    if (rc == TJ_EIO) {
        snprintf(err, errlen, "cannot read the state directory %s: %s", e->state_dir, warn);
        goto fail;
    }
    if (rc == TJ_EPARSE)
        tj_log(TJ_LOG_WARN,
               "no usable checkpoints in %s: every file is read from its start "
               "(records may be shipped again)",
               e->state_dir);
    e->first_start = rc == TJ_ENOENT;
    if (restored_index(e)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* The state directory must be writable before anything is shipped. */
    if (tj_ckpt_save(e->state_dir, &e->restored, err, errlen) != 0)
        goto fail;
    return e;
fail:
    tj_engine_destroy(e);
    return NULL;
}

void tj_engine_set_tap(struct tj_engine *e, struct tj_tap_hub *tap)
{
    e->tap = tap;
}

void tj_engine_set_output(struct tj_engine *e, struct tj_output *out)
{
    e->out = out;
}

int tj_engine_watch(struct tj_engine *e, const char *glob, struct tj_ruleset *rs)
{
    struct watch *w = realloc(e->watches, (e->nwatches + 1) * sizeof(*w));

    if (!w)
        return TJ_ENOMEM;
    e->watches = w;
    w = &e->watches[e->nwatches];
    if (!(w->glob = strdup(glob)))
        return TJ_ENOMEM;
    if (!(w->src = source_create(rs, NULL, NULL, NULL, counters_for(e, "file", rs)))) {
        free(w->glob);
        return TJ_ENOMEM;
    }
    w->wd = -1;
    w->polled = true;
    e->nwatches++;
    return 0;
}

/* Watches the fixed directory part of each glob, where new files and directories appear. */
static void watch_glob_dirs(struct tj_engine *e)
{
    for (size_t i = 0; i < e->nwatches && e->inotify_fd >= 0; i++) {
        const char *g = e->watches[i].glob;
        size_t fixed = strcspn(g, "*?[");
        char dir[PATH_MAX];
        const char *slash;
        snprintf(dir, sizeof(dir), "%.*s", (int)fixed, g);
        slash = strrchr(dir, '/');
        if (slash)
            dir[slash == dir ? 1 : slash - dir] = '\0';
        else
            snprintf(dir, sizeof(dir), ".");
        e->watches[i].wd = inotify_add_watch(e->inotify_fd, dir,
                                             IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM);
        e->watches[i].polled = e->watches[i].wd < 0 || strchr(g + fixed, '/') != NULL;
        if (e->watches[i].wd >= 0 && !e->watches[i].polled) {
            char name[PATH_MAX + 2];
            snprintf(name, sizeof(name), "%s/x",
                     strcmp(dir, "/") == 0 ? "" : dir); /* their prefix */
            wdir_note(e, e->watches[i].wd, slash ? name : "x");
        }
    }
}

static void stop_workers(struct tj_engine *e)
{
    pthread_mutex_lock(&e->lock);
    e->workers_stop = true;
    pthread_cond_broadcast(&e->job_cv);
    pthread_mutex_unlock(&e->lock);
    for (unsigned i = 0; i < e->nworkers_started; i++)
        pthread_join(e->workers[i], NULL);
    e->nworkers_started = 0;
}

static struct work *works_create(struct tj_engine *e)
{
    struct work *w = calloc(e->cfg.workers, sizeof(*w));

    if (!w)
        return NULL;
    for (unsigned i = 0; i < e->cfg.workers; i++) {
        w[i].e = e;
        w[i].record_room = 64 * e->cfg.max_line_bytes + 65536;
        w[i].m = tj_matcher_create(&e->cfg.limits);
        w[i].a = tj_assembler_create(TJ_FORMAT_AUTO, e->cfg.max_line_bytes);
        w[i].batch = tj_batch_create();
        if (!w[i].m || !w[i].a || !w[i].batch)
            return w; /* the caller sees the NULLs */
    }
    return w;
}

static void works_destroy(struct tj_engine *e, struct work *w)
{
    if (!w)
        return;
    for (unsigned i = 0; i < e->cfg.workers; i++) {
        struct tj_parse_stats *s = &w[i].st;
        e->st.parse.records += s->records;
        e->st.parse.matched += s->matched;
        e->st.parse.failed += s->failed;
        e->st.parse.limited += s->limited;
        e->st.parse.json_errors += s->json_errors;
        e->st.parse.truncated += s->truncated;
        tj_matcher_destroy(w[i].m);
        tj_assembler_destroy(w[i].a);
        tj_batch_destroy(w[i].batch);
    }
    free(w);
}

/* Submits again what the output refused, when its time came. The paths are walked only while
 * some wait: ten thousand idle files cost nothing here. */
static void retry_due(struct tj_engine *e, int64_t now)
{
    pthread_mutex_lock(&e->lock);
    for (struct path *p = e->paths; p && e->nretry; p = p->next) {
        if (p->retry_at && p->retry_at <= now) {
            p->retry_at = 0;
            e->nretry--;
            submit_ready(e, p);
        }
    }
    pthread_mutex_unlock(&e->lock);
}

static size_t inflight(struct tj_engine *e)
{
    size_t n;

    pthread_mutex_lock(&e->lock);
    n = e->inflight_chunks;
    pthread_mutex_unlock(&e->lock);
    return n;
}

int tj_engine_run(struct tj_engine *e, bool *abandoned)
{
    sigset_t set;
    int sfd;
    struct work *w = NULL;
    int64_t next_ckpt, deadline = 0;
    bool stopping = false;
    int status = 0;

    *abandoned = false;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    e->workers = calloc(e->cfg.workers, sizeof(*e->workers));
    w = works_create(e);
    if (sfd < 0 || !e->workers || !w) {
        tj_log(TJ_LOG_ERROR, "cannot start: %s", sfd < 0 ? strerror(errno) : "out of memory");
        status = 1;
        goto out;
    }
    for (unsigned i = 0; i < e->cfg.workers; i++) {
        if (!w[i].m || !w[i].a || !w[i].batch ||
            pthread_create(&e->workers[i], NULL, worker_main, &w[i]) != 0) {
            tj_log(TJ_LOG_ERROR, "cannot start worker %u", i);
            status = 1;
            goto out;
        }
        e->nworkers_started++;
    }
    watch_glob_dirs(e);
    if (pthread_create(&e->reader, NULL, reader_main, e) != 0) {
        tj_log(TJ_LOG_ERROR, "cannot start the reader thread");
        status = 1;
        goto out;
    }
    e->reader_started = true;
    next_ckpt = now_ms() + e->cfg.checkpoint_ms;
    for (;;) {
        struct pollfd pfd[2] = {{sfd, POLLIN, 0}, {e->main_fd, POLLIN, 0}};
        struct signalfd_siginfo si;
        uint64_t v;
        int64_t now;

        if (poll(pfd, 2, 50) > 0 && pfd[1].revents & POLLIN && read(e->main_fd, &v, sizeof(v)) < 0)
            v = 0;
        if (pfd[0].revents & POLLIN && read(sfd, &si, sizeof(si)) == sizeof(si)) {
            if (si.ssi_signo == SIGHUP) {
                if (e->out->ops->reopen)
                    e->out->ops->reopen(e->out->state);
            } else if (stopping) {
                tj_log(TJ_LOG_WARN, "second signal: exiting now, without draining");
                _exit(1);
            } else {
                tj_log(TJ_LOG_INFO, "signal %u: draining (at most %u ms), then exiting",
                       si.ssi_signo, e->cfg.shutdown_timeout_ms);
                stopping = true;
                deadline = now_ms() + e->cfg.shutdown_timeout_ms;
                __atomic_store_n(&e->reader_stop, true, __ATOMIC_RELEASE);
                wake_reader(e);
            }
        }
        now = now_ms();
        retry_due(e, now);
        if (now >= next_ckpt && __atomic_load_n(&e->started, __ATOMIC_ACQUIRE)) {
            save_checkpoints(e);
            next_ckpt = now + e->cfg.checkpoint_ms;
        }
        if (__atomic_load_n(&e->fatal, __ATOMIC_ACQUIRE)) {
            status = 1;
            break;
        }
        if (!stopping && e->cfg.exit_on_eof && !__atomic_load_n(&e->eof_holds, __ATOMIC_ACQUIRE) &&
            __atomic_load_n(&e->reader_idle, __ATOMIC_ACQUIRE) && inflight(e) == 0 &&
            __atomic_load_n(&e->reader_idle, __ATOMIC_ACQUIRE)) {
            stopping = true;
            deadline = now + e->cfg.shutdown_timeout_ms;
            __atomic_store_n(&e->reader_stop, true, __ATOMIC_RELEASE);
            wake_reader(e);
        }
        if (stopping && inflight(e) == 0)
            break;
        if (stopping && now >= deadline) {
            tj_log(TJ_LOG_WARN,
                   "the output did not take everything within %u ms: exiting; "
                   "what it did not acknowledge is shipped again at the next start",
                   e->cfg.shutdown_timeout_ms);
            *abandoned = true;
            break;
        }
    }
out:
    if (e->reader_started) {
        __atomic_store_n(&e->reader_stop, true, __ATOMIC_RELEASE);
        wake_reader(e);
        pthread_join(e->reader, NULL);
        e->reader_started = false;
    }
    if (!*abandoned) {
        if (e->out && e->out->ops->flush(e->out->state, e->cfg.shutdown_timeout_ms) != 0)
            *abandoned = true;
    }
    if (!*abandoned) {
        stop_workers(e);
        works_destroy(e, w);
        w = NULL;
    }
    if (__atomic_load_n(&e->started, __ATOMIC_ACQUIRE) && save_checkpoints(e) != 0)
        status = 1;
    if (sfd >= 0)
        close(sfd);
    if (*abandoned)
        return 1;
    works_destroy(e, w);
    return status;
}

void tj_engine_get_stats(struct tj_engine *e, struct tj_engine_stats *st)
{
    pthread_mutex_lock(&e->lock);
    *st = e->st;
    pthread_mutex_unlock(&e->lock);
}

void tj_engine_destroy(struct tj_engine *e)
{
    struct path *p, *n;
    struct chunk *c, *cn;

    if (!e)
        return;
    stop_workers(e);
    for (c = e->jobs; c; c = cn) {
        cn = c->next;
        tj_buf_fini(&c->in);
        source_unref(c->src);
        free(c);
    }
    while (e->ops) {
        struct op *o = e->ops;
        e->ops = o->next;
        op_free(o);
    }
    for (p = e->paths; p; p = n) {
        n = p->next;
        for (c = p->ready; c; c = cn) {
            cn = c->next;
            tj_buf_fini(&c->b.records);
            tj_buf_fini(&c->in);
            source_unref(c->src);
            free(c);
        }
        path_free(p);
    }
    for (size_t i = 0; i < e->nwatches; i++) {
        free(e->watches[i].glob);
        source_unref(e->watches[i].src);
    }
    for (size_t i = 0; i < e->nin_pool; i++)
        tj_buf_fini(&e->in_pool[i]);
    for (size_t i = 0; i < e->nout_pool; i++)
        tj_buf_fini(&e->out_pool[i]);
    while (e->counters) {
        struct svc_counters *sc = e->counters;
        e->counters = sc->next;
        tj_ruleset_unref(sc->rs);
        free(sc->name);
        free(sc);
    }
    free(e->watches);
    free(e->workers);
    tj_ckpt_table_fini(&e->restored);
    free(e->rest_by_id);
    free(e->rest_by_path);
    for (size_t i = 0; i < WDIR_BUCKETS; i++) {
        while (e->wdirs[i]) {
            struct wdir *w = e->wdirs[i];
            e->wdirs[i] = w->next;
            free(w->prefix);
            free(w);
        }
    }
    for (size_t i = 0; i < IDENT_BUCKETS; i++) {
        while (e->done[i]) {
            struct done *d = e->done[i];
            e->done[i] = d->next;
            free(d);
        }
    }
    if (e->wake_fd >= 0)
        close(e->wake_fd);
    if (e->main_fd >= 0)
        close(e->main_fd);
    if (e->lock_fd >= 0)
        close(e->lock_fd);
    if (e->inotify_fd >= 0)
        close(e->inotify_fd);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->job_cv);
    free(e->state_dir);
    free(e->host_name);
    free(e);
}
