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
 *
 * The engine's modules share its state through tj_engine_int.h: this file holds its life cycle
 * (create, run, destroy), the reader thread's loop and the requests from discovery; file
 * following is in tj_files.c, identities in tj_ident.c, the state directory and checkpoints in
 * tj_state.c, chunks and workers in tj_chunks.c, sequencing and acknowledgements in tj_seq.c,
 * metrics and health in tj_engine_metrics.c. */
#include "tj_engine.h"

#include "tj_chunks.h"
#include "tj_engine_int.h"
#include "tj_files.h"
#include "tj_ident.h"
#include "tj_seq.h"
#include "tj_state.h"

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

struct source *tj_engine_source_ref(struct source *src)
{
    __atomic_add_fetch(&src->refs, 1, __ATOMIC_RELAXED);
    return src;
}

void tj_engine_source_unref(struct source *src)
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

static void op_free(struct op *o)
{
    free(o->path);
    tj_engine_source_unref(o->src);
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
    tj_files_mark_dirty(e, p);
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
        struct path *p = o->path ? tj_files_path_find(e, o->path) : NULL;
        next = o->next;
        if (o->release) {
            /* what was followed before this is in the paths now: the next idle pass counts */
            __atomic_store_n(&e->reader_idle, false, __ATOMIC_RELEASE);
            __atomic_sub_fetch(&e->eof_holds, 1, __ATOMIC_ACQ_REL);
        } else if (o->src && !p) {
            p = tj_files_path_add(e, o->path, o->src, (const char *const *)o->meta, o->initial);
            if (p) {
                p->discovered = true;
                set_held(e, p, o->hold);
            }
        } else if (o->src) {
            struct source *old = p->src;
            struct gen *g = p->gens;
            struct stat st;
            p->src = tj_engine_source_ref(o->src); /* chunks read from now on use the new rules */
            tj_engine_source_unref(old);
            p->discovered = true;
            set_held(e, p, o->hold);
            tj_files_mark_dirty(e, p);
            tj_files_set_busy(e, p, true);
            while (g && g->next)
                g = g->next;
            /* Unfollowed, then followed again (a container listed again): the file still at
             * the path goes on where it was, it is not read again from its start. */
            if (g && g->retired && !g->truncated && stat(p->name, &st) == 0 &&
                (uint64_t)st.st_dev == g->id.dev && (uint64_t)st.st_ino == g->id.ino)
                g->retired = g->eof = false;
        } else if (p && p->discovered) {
            struct gen *cur = tj_files_gen_current(p);
            p->discovered = false;
            set_held(e, p, false); /* what it holds is read, with the rules it has */
            if (!tj_files_path_matched(e, p) && cur)
                cur->retired = true; /* read to its end, then released */
            tj_files_mark_dirty(e, p);
            tj_files_set_busy(e, p, true);
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
        !(o->src = source_create(f->rs, f->topic, f->index, f->key,
                                 tj_engine_counters_for(e, svc, f->rs))))
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

/* A path worth a look at every poll even with inotify: a file being finished or followed
 * elsewhere, one without a file, one whose directory no watch covers. */
bool tj_engine_path_busy(const struct path *p)
{
    return p->wd < 0 || p->aliased || !p->gens || p->gens->next || p->gens->retired ||
           p->carry.len || p->unreadable || p->held;
}

/* Whether the path has bytes to read or ship (its current file grew, a rotated one is not
 * finished, a carry waits). */
bool tj_engine_path_has_work(const struct path *p)
{
    if (p->carry.len)
        return true;
    for (const struct gen *g = p->gens; g; g = g->next)
        if (!g->eof && (g->retired || g->size_seen != g->read_off))
            return true;
    return false;
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
        if (*blocked || !tj_chunks_budget_left(e)) {
            *blocked = true;
            tj_files_mark_dirty(e, p);
            continue;
        }
        if (tj_chunks_path_read(e, p, cut, now)) {
            *progress = true;
            tj_files_mark_dirty(e, p);
        } else {
            /* At the end of what it holds: was it rotated or truncated meanwhile? A busy
             * reader must notice now, not at the next poll, or a file that lives a few
             * milliseconds (fast rotation) is gone before it is opened. */
            struct gen *before = tj_files_gen_current(p);
            tj_files_path_check(e, p);
            if (p->carry.len != 0 || tj_files_gen_current(p) != before)
                tj_files_mark_dirty(e, p);
            *progress |= tj_files_gen_current(p) != before;
            tj_files_gens_release(e, p);
            tj_files_set_busy(e, p, tj_engine_path_busy(p));
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
    tj_files_scan_globs(e, true, true);
    e->first_scan = false;
    tj_state_restored_sweep(e);
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
             * busy list), and at a thirtieth of the others (one slice's list, by their name's
             * hash: each one every SAFETY_POLLS polls), so that it touches few of the paths; the
             * globs run when inotify reports a new file, and every GLOB_POLLS polls. Without
             * inotify, everything at every poll. */
            bool full = e->inotify_fd < 0 || now >= next_full;
            unsigned slice = (unsigned)(npolls++ % SAFETY_POLLS);
            struct path *p, *next;
            tj_files_scan_globs(e, false, full || rescan);
            rescan = false;
            if (e->inotify_fd < 0) {
                for (p = e->paths; p; p = p->next)
                    tj_files_safety_check(e, p);
            } else {
                for (p = e->slices[slice]; p; p = p->snext)
                    if (!p->busy)
                        tj_files_safety_check(e, p);
                for (p = e->busy; p; p = next) {
                    next = p->bnext; /* safety_check may take p off the list */
                    tj_files_safety_check(e, p);
                }
            }
            tj_files_paths_prune(e);
            if (full) {
                tj_ident_done_prune(e, now, tj_ident_done_grace(e));
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
                if (tj_files_drain_inotify(e)) {
                    next_scan = now; /* a file appeared: run the globs now */
                    rescan = true;
                }
                for (struct path *p = e->dirty; p; p = p->dnext) {
                    tj_files_path_check(e, p);
                    tj_files_set_busy(e, p, tj_engine_path_busy(p));
                }
            }
        }
    }
out:
    tj_matcher_destroy(cut.matcher);
    tj_buf_fini(&scratch);
    return NULL;
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
    if (tj_state_lock_state_dir(e, err, errlen))
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
    if (tj_state_restored_index(e)) {
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
    if (!(w->src = source_create(rs, NULL, NULL, NULL, tj_engine_counters_for(e, "file", rs)))) {
        free(w->glob);
        return TJ_ENOMEM;
    }
    w->wd = -1;
    w->polled = true;
    e->nwatches++;
    return 0;
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
    w = tj_chunks_works_create(e);
    if (sfd < 0 || !e->workers || !w) {
        tj_log(TJ_LOG_ERROR, "cannot start: %s", sfd < 0 ? strerror(errno) : "out of memory");
        status = 1;
        goto out;
    }
    for (unsigned i = 0; i < e->cfg.workers; i++) {
        if (!w[i].m || !w[i].a || !w[i].batch ||
            pthread_create(&e->workers[i], NULL, tj_chunks_worker_main, &w[i]) != 0) {
            tj_log(TJ_LOG_ERROR, "cannot start worker %u", i);
            status = 1;
            goto out;
        }
        e->nworkers_started++;
    }
    tj_files_watch_glob_dirs(e);
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
        tj_seq_retry_due(e, now);
        if (now >= next_ckpt && __atomic_load_n(&e->started, __ATOMIC_ACQUIRE)) {
            tj_state_save_checkpoints(e);
            next_ckpt = now + e->cfg.checkpoint_ms;
        }
        if (__atomic_load_n(&e->fatal, __ATOMIC_ACQUIRE)) {
            status = 1;
            break;
        }
        if (!stopping && e->cfg.exit_on_eof && !__atomic_load_n(&e->eof_holds, __ATOMIC_ACQUIRE) &&
            __atomic_load_n(&e->reader_idle, __ATOMIC_ACQUIRE) && tj_seq_inflight(e) == 0 &&
            __atomic_load_n(&e->reader_idle, __ATOMIC_ACQUIRE)) {
            stopping = true;
            deadline = now + e->cfg.shutdown_timeout_ms;
            __atomic_store_n(&e->reader_stop, true, __ATOMIC_RELEASE);
            wake_reader(e);
        }
        if (stopping && tj_seq_inflight(e) == 0)
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
        tj_chunks_stop_workers(e);
        tj_chunks_works_destroy(e, w);
        w = NULL;
    }
    if (__atomic_load_n(&e->started, __ATOMIC_ACQUIRE) && tj_state_save_checkpoints(e) != 0)
        status = 1;
    if (sfd >= 0)
        close(sfd);
    if (*abandoned)
        return 1;
    tj_chunks_works_destroy(e, w);
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
    tj_chunks_stop_workers(e);
    for (c = e->jobs; c; c = cn) {
        cn = c->next;
        tj_buf_fini(&c->in);
        tj_engine_source_unref(c->src);
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
            tj_engine_source_unref(c->src);
            free(c);
        }
        tj_files_path_free(p);
    }
    for (size_t i = 0; i < e->nwatches; i++) {
        free(e->watches[i].glob);
        tj_engine_source_unref(e->watches[i].src);
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
