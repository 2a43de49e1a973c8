/* tj_files.c: file following (see tj_files.h): generations, rotation, truncation, aliases,
 * inotify and polling, globs. Runs on the reader thread. */
#include "tj_chunks.h"
#include "tj_engine_int.h"
#include "tj_files.h"
#include "tj_ident.h"
#include "tj_seq.h"
#include "tj_state.h"

static uint64_t name_hash(const char *s)
{
    return tj_fileid_hash(s, strlen(s));
}

struct path *tj_files_path_find(struct tj_engine *e, const char *name)
{
    uint64_t h = name_hash(name);
    struct path *p = e->by_name[h % NAME_BUCKETS];

    while (p && (p->hash != h || strcmp(p->name, name) != 0))
        p = p->hnext;
    return p;
}

/* Whether the last full glob scan (or a file event since) matched the path. */
bool tj_files_path_matched(const struct tj_engine *e, const struct path *p)
{
    return p->match_epoch == e->match_epoch;
}

/* Puts the path on the dirty list (reader): the next pass reads it. */
void tj_files_mark_dirty(struct tj_engine *e, struct path *p)
{
    if (p->dirty)
        return;
    p->dirty = true;
    p->dnext = e->dirty;
    e->dirty = p;
}

/* Puts the path on the busy list or takes it off (reader). */
void tj_files_set_busy(struct tj_engine *e, struct path *p, bool busy)
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
int tj_files_open_log(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOATIME);

    if (fd < 0 && errno == EPERM) /* O_NOATIME needs to own the file (or CAP_FOWNER) */
        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    return fd;
}

struct gen *tj_files_gen_open(const char *name, int64_t off, char *why, size_t whylen)
{
    struct gen *g = calloc(1, sizeof(*g));

    if (!g) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    g->fd = tj_files_open_log(AT_FDCWD, name);
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

void tj_files_gen_append(struct tj_engine *e, struct path *p, struct gen *g)
{
    struct gen **pp = &p->gens;
    size_t b = tj_ident_bucket(g->id.dev, g->id.ino);

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
struct gen *tj_files_gen_current(struct path *p)
{
    struct gen *g = p->gens;

    while (g && g->next)
        g = g->next;
    return g && !g->retired ? g : NULL;
}

bool tj_files_carry_uses(const struct path *p, const struct gen *g)
{
    for (int i = 0; i < p->ncseg; i++)
        if (p->cseg[i].g == g)
            return true;
    return false;
}

/* Releases generations that are read to their end, acknowledged and not at the path. */
void tj_files_gens_release(struct tj_engine *e, struct path *p)
{
    struct gen **pp = &p->gens, *g;

    pthread_mutex_lock(&e->lock);
    while ((g = *pp)) {
        if (g->eof && g->refs == 0 && !tj_files_carry_uses(p, g) && g->acked_off >= g->read_off &&
            g->linger_until == 0) {
            tj_log(TJ_LOG_DEBUG, "%s: released inode %llu at offset %lld", p->name,
                   (unsigned long long)g->id.ino, (long long)g->read_off);
            *pp = g->next;
            tj_ident_del(e, g);
            e->state_ver++;
            if (!g->truncated)
                tj_ident_done_add(e, g, now_ms());
            close(g->fd);
            free(g);
            continue;
        }
        pp = &g->next;
    }
    pthread_mutex_unlock(&e->lock);
}

/* When the reader lagged several rotations behind (a busy machine, files that live a few
 * milliseconds), files rotated after the last one it knows were never opened: if that one is
 * PATH.k now, they are PATH.(k-1) ... PATH.1. They are followed, oldest first, from their start,
 * before the file now at the path. */
static void add_missed(struct tj_engine *e, struct path *p, uint64_t dev, uint64_t ino)
{
    int k = tj_ident_sibling_index(p->name, dev, ino);
    char sib[PATH_MAX];

    for (int i = k - 1; i >= 1; i--) {
        struct stat st;
        struct gen *g;
        int fd;
        snprintf(sib, sizeof(sib), "%s.%d", p->name, i);
        int64_t off = 0;
        if ((fd = tj_files_open_log(AT_FDCWD, sib)) < 0)
            continue;
        if (fstat(fd, &st) != 0 || tj_ident_live(e, st.st_dev, st.st_ino) ||
            !(g = tj_ident_gen_from_fd(fd, 0))) { /* read under its own name already (a glob) */
            close(fd);
            continue;
        }
        if (tj_ident_file_known(e, g->fd, &g->id, &off)) {
            g->read_off = g->acked_off = off;
            g->head_from_reads = off == 0;
        }
        g->retired = true;
        tj_files_gen_append(e, p, g);
        tj_log(TJ_LOG_INFO, "%s: reading %s, rotated away before it was seen", p->name, sib);
    }
}

/* The file at the path was truncated (copytruncate, or a writer starting over): what was not
 * read yet is in the copy when there is one; the file's new content is a new generation. */
void tj_files_handle_truncation(struct tj_engine *e, struct path *p, struct gen *cur)
{
    int fd = tj_ident_find_sibling(p->name, tj_ident_want_copy, cur);
    char why[256];
    struct gen *g;

    cur->retired = cur->eof = cur->truncated = true; /* its descriptor shows the new content */
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) != 0 || tj_ident_live(e, st.st_dev, st.st_ino) ||
            tj_ident_done_holds(e, fd, &st)) {
            close(fd); /* the copy is read under its own name already (a glob) */
            fd = -1;
        }
    }
    if (fd >= 0 && (g = tj_ident_gen_from_fd(fd, cur->read_off))) {
        g->retired = true;
        tj_files_gen_append(e, p, g);
        tj_log(TJ_LOG_INFO, "%s was truncated; reading its copy from offset %lld", p->name,
               (long long)cur->read_off);
        add_missed(e, p, g->id.dev, g->id.ino);
    } else {
        tj_log(TJ_LOG_INFO, "%s was truncated; reading it again from its start", p->name);
    }
    pthread_mutex_lock(&e->lock);
    e->st.truncations++;
    pthread_mutex_unlock(&e->lock);
    if ((g = tj_files_gen_open(p->name, 0, why, sizeof(why))))
        tj_files_gen_append(e, p, g);
}

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
        tj_chunks_segs_add(p->cseg, &p->ncseg, g, g->read_off, (size_t)n);
        g->read_off += n;
        p->carry.len += (size_t)n;
        nl = memrchr(p->carry.data, '\n', p->carry.len);
        if (nl && p->ncseg == MAX_SEGS)
            tj_chunks_dispatch(e, p, (size_t)(nl - p->carry.data) + 1, 0, false, false);
    }
    if (p->carry.len) {
        /* A line still cut short is read again next time (its writer is finishing it), unless
         * this is the last look at the file. */
        const char *nl = memrchr(p->carry.data, '\n', p->carry.len);
        size_t whole = nl ? (size_t)(nl - p->carry.data) + 1 : 0, cut = p->carry.len - whole;
        if (last)
            tj_chunks_dispatch(e, p, p->carry.len, 0, true, false);
        else if (whole)
            tj_chunks_dispatch(e, p, whole, 0, false, false);
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
bool tj_files_gen_head_matches(struct gen *g)
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
bool tj_files_path_alias(struct tj_engine *e, struct path *p, const struct stat *st)
{
    struct gen *g = tj_ident_live(e, st->st_dev, st->st_ino);

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
    struct gen *g = tj_files_gen_open(p->name, 0, why, whylen);
    struct stat st;
    int64_t off = 0;

    if (!g)
        return NULL;
    if ((fstat(g->fd, &st) == 0 && tj_files_path_alias(e, p, &st)) ||
        tj_ident_copy_of_followed(e, p->name, g->fd)) {
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
    if (tj_ident_file_known(e, g->fd, &g->id, &off)) {
        g->read_off = g->acked_off = off;
        g->head_from_reads = off == 0;
    }
    return g;
}

/* Compares the path with what is followed: a new file (rename, unlink, re-creation) retires
 * the current generation and opens the new one (from its start unless its identity is known);
 * truncation is handled. */
void tj_files_path_check(struct tj_engine *e, struct path *p)
{
    struct gen *cur = tj_files_gen_current(p), *g;
    struct stat st;
    char why[256];
    int serr;

    gens_linger(e, p);
    serr = stat(p->name, &st) != 0 ? errno : 0;
    if (!serr)
        tj_ident_done_touch(e, st.st_dev, st.st_ino, now_ms());
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
            tj_files_handle_truncation(e, p, cur);
        else if (st.st_size != cur->chk_size || mtime_ns(&st) != cur->chk_mtime) {
            if (!tj_files_gen_head_matches(cur)) {
                tj_files_handle_truncation(e, p, cur);
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
    if (tj_files_path_alias(e, p, &st))
        return;
    for (g = p->gens; g && g->next; g = g->next)
        ;
    if (g)
        add_missed(e, p, g->id.dev, g->id.ino);
    if (tj_files_path_alias(e, p, &st))
        return; /* the file at the path is one of those just found (it was renamed back?) */
    if ((g = gen_open_at(e, p, why, sizeof(why)))) {
        tj_files_gen_append(e, p, g);
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

/* Starts following a path with src (a reference is taken) and the metadata values meta[k]
 * (NUL-terminated, or NULL; the file path and host name are the engine's). */
struct path *tj_files_path_add(struct tj_engine *e, const char *name, struct source *src,
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
    p->src = tj_engine_source_ref(src);
    tj_meta_init(&p->meta);
    for (int k = 0; meta && k < TJ_META_COUNT; k++)
        if (meta[k] && k != TJ_META_FILE_PATH && k != TJ_META_HOST_NAME &&
            tj_meta_set(&p->meta, (enum tj_meta_key)k, meta[k], strlen(meta[k])))
            tj_log(TJ_LOG_ERROR, "out of memory: records of %s lack metadata", name);
    if (tj_meta_set(&p->meta, TJ_META_FILE_PATH, name, strlen(name)) ||
        (e->host_name &&
         tj_meta_set(&p->meta, TJ_META_HOST_NAME, e->host_name, strlen(e->host_name))))
        tj_log(TJ_LOG_ERROR, "out of memory: records of %s lack metadata", name);
    p->fmt = tj_state_has_suffix(name, "-json.log") ? TJ_FORMAT_JSONFILE : TJ_FORMAT_AUTO;
    tj_buf_init(&p->carry, TJ_ASSEMBLE_MAX_RAW(e->cfg.max_line_bytes) + e->cfg.chunk_bytes);
    p->wd = path_watch_dir(e, name);
    p->last_read_ms = now_ms();
    tj_state_path_restore(e, p, at_start);
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
    tj_files_mark_dirty(e, p);
    tj_files_set_busy(e, p, true);
    tj_log(TJ_LOG_DEBUG, "following %s", name);
    return p;
}

void tj_files_path_free(struct path *p)
{
    struct gen *g = p->gens, *n;

    for (; g; g = n) {
        n = g->next;
        close(g->fd);
        free(g);
    }
    tj_engine_source_unref(p->src);
    tj_meta_fini(&p->meta);
    tj_buf_fini(&p->carry);
    free(p->name);
    free(p);
}

/* Runs every glob (with `all`; else only those that no inotify watch covers); new files become
 * paths. */
void tj_files_scan_globs(struct tj_engine *e, bool at_start, bool all)
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
                struct path *p = tj_files_path_find(e, gl.gl_pathv[k]);
                struct stat st;
                if (!p && stat(gl.gl_pathv[k], &st) == 0 && S_ISREG(st.st_mode))
                    p = tj_files_path_add(e, gl.gl_pathv[k], e->watches[i].src, NULL, at_start);
                if (p)
                    p->match_epoch = e->match_epoch;
            }
        }
        if (rc != GLOB_NOMATCH)
            globfree(&gl);
    }
}

static void mark_dir_dirty(struct tj_engine *e, int wd)
{
    for (struct path *p = e->paths; p; p = p->next)
        if (p->wd == wd)
            tj_files_mark_dirty(e, p);
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
    if ((p = tj_files_path_find(e, full)) && p->wd == wd)
        tj_files_mark_dirty(e, p);
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
    if (tj_files_path_find(e, full))
        return true; /* marked by mark_file_dirty */
    if (stat(full, &st) != 0)
        return true; /* gone already: nothing to follow */
    if (!S_ISREG(st.st_mode))
        return false;
    for (size_t i = 0; i < e->nwatches; i++) {
        if (fnmatch(e->watches[i].glob, full, FNM_PATHNAME | FNM_PERIOD) == 0) {
            struct path *p = tj_files_path_add(e, full, e->watches[i].src, NULL, false);
            if (p)
                p->match_epoch = e->match_epoch;
            return p != NULL;
        }
    }
    return true; /* no glob wants it */
}

/* Drains inotify. Returns true when a glob should be run again soon (files appeared). */
bool tj_files_drain_inotify(struct tj_engine *e)
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
                    tj_files_mark_dirty(e, p);
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
void tj_files_paths_prune(struct tj_engine *e)
{
    struct path *p, *next;

    pthread_mutex_lock(&e->lock);
    for (p = e->busy; p; p = next) {
        struct path **hp = &e->by_name[p->hash % NAME_BUCKETS];
        next = p->bnext;
        if (tj_files_path_matched(e, p) || p->discovered || p->gens || p->ninflight ||
            p->carry.len || p->ready || p->submitting || p->retry_at ||
            p->dirty) /* a worker may be inside */
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
        tj_files_set_busy(e, p, false);
        tj_files_path_free(p);
    }
    pthread_mutex_unlock(&e->lock);
}

/* The safety net's look at one path: a change inotify did not report (or that happened in a
 * rotated file), a rotated file whose wait ended. */
void tj_files_safety_check(struct tj_engine *e, struct path *p)
{
    tj_files_path_check(e, p);
    if (tj_engine_path_has_work(p))
        tj_files_mark_dirty(e, p);
    else if (p->gens && p->gens->retired)
        tj_files_gens_release(e, p); /* a rotated file's wait may have ended */
    tj_files_set_busy(e, p, tj_engine_path_busy(p));
}

/* Watches the fixed directory part of each glob, where new files and directories appear. */
void tj_files_watch_glob_dirs(struct tj_engine *e)
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
