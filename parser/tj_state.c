/* tj_state.c: the state directory, checkpoints restored and saved (see tj_state.h). */
#include "tj_chunks.h"
#include "tj_engine_int.h"
#include "tj_files.h"
#include "tj_ident.h"
#include "tj_seq.h"
#include "tj_state.h"

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
int tj_state_restored_index(struct tj_engine *e)
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
size_t tj_state_restored_lower_id(const struct tj_engine *e, uint64_t dev, uint64_t ino)
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

bool tj_state_has_suffix(const char *s, const char *suffix)
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
void tj_state_restored_sweep(struct tj_engine *e)
{
    for (size_t i = 0; i < e->restored.n; i++) {
        struct tj_ckpt_entry *c = &e->restored.v[i];
        if (c->offset >= 0 && c->path[0] && tj_files_path_find(e, c->path))
            restored_gone(c);
    }
}

/* At start (or when a path is followed again later): the files the checkpoints knew under this
 * path that were rotated away meanwhile (found by their identity among PATH.N, unless another
 * path reads them), then the file at the path, from where it was read before when its identity
 * is known under any path. */
void tj_state_path_restore(struct tj_engine *e, struct path *p, bool at_start)
{
    struct gen *cur = NULL, *g;
    struct stat st;
    char why[256];
    int64_t off = 0;
    bool cur_known = false;

    if (stat(p->name, &st) == 0 && S_ISREG(st.st_mode) && !tj_files_path_alias(e, p, &st))
        cur = tj_files_gen_open(p->name, 0, why, sizeof(why));
    for (size_t k = e->rest_by_path ? restored_lower_path(e, p->name) : e->restored.n;
         k < e->restored.n; k++) {
        struct tj_ckpt_entry *c = &e->restored.v[e->rest_by_path[k]];
        int fd;
        if (strcmp(c->path, p->name) != 0)
            break;
        if (c->offset < 0 || (cur && tj_fileid_matches_fd(cur->fd, &c->id)))
            continue; /* used, or the file at the path: below */
        if (tj_ident_live(e, c->id.dev, c->id.ino)) {
            c->offset = -1; /* read under another name (a glob matched its new name first) */
            continue;
        }
        fd = tj_ident_find_sibling(p->name, tj_ident_want_identity, &c->id);
        if (fd < 0) {
            if (!e->first_scan) /* else another name may show it: see restored_gone */
                restored_gone(c);
            continue;
        }
        if ((g = tj_ident_gen_from_fd(fd, c->offset))) {
            g->retired = true;
            tj_files_gen_append(e, p, g);
            tj_log(TJ_LOG_INFO,
                   "%s: finishing a file rotated while tailjet was down, from "
                   "offset %lld",
                   p->name, (long long)c->offset);
        }
        c->offset = -1;
    }
    if (cur && fstat(cur->fd, &st) == 0 && tj_files_path_alias(e, p, &st)) {
        close(cur->fd); /* one of those just found (renamed back?) */
        free(cur);
        cur = NULL;
    }
    if (cur && tj_ident_copy_of_followed(e, p->name, cur->fd)) {
        p->aliased = true;
        p->alias_dev = cur->id.dev;
        p->alias_ino = cur->id.ino;
        close(cur->fd);
        free(cur);
        cur = NULL;
    }
    if (cur && (cur_known = tj_ident_file_known(e, cur->fd, &cur->id, &off))) {
        cur->read_off = cur->acked_off = off;
        cur->head_from_reads = off == 0;
    }
    if (cur && !cur_known && at_start && e->first_start && e->cfg.start_at_end)
        cur->read_off = cur->acked_off = (int64_t)lseek(cur->fd, 0, SEEK_END);
    if (cur)
        tj_files_gen_append(e, p, cur);
}

int tj_state_save_checkpoints(struct tj_engine *e)
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

/* Makes the state directory when missing and takes its lock: two processes writing the same
 * checkpoints would each undo the other's. Returns 0 or TJ_EIO with err filled. */
int tj_state_lock_state_dir(struct tj_engine *e, char *err, size_t errlen)
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
