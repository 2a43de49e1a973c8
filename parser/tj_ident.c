/* tj_ident.c: file identities, released files, siblings (see tj_ident.h). Reader thread. */
#include "tj_chunks.h"
#include "tj_engine_int.h"
#include "tj_files.h"
#include "tj_ident.h"
#include "tj_seq.h"
#include "tj_state.h"

size_t tj_ident_bucket(uint64_t dev, uint64_t ino)
{
    return (size_t)(((ino * 0x9e3779b97f4a7c15ULL) ^ dev) >> 20) % IDENT_BUCKETS;
}

/* The generation that reads the file (dev, ino) now, under any path, or NULL. A generation
 * whose descriptor was truncated is no longer that file's reader. */
struct gen *tj_ident_live(struct tj_engine *e, uint64_t dev, uint64_t ino)
{
    for (struct gen *g = e->by_ident[tj_ident_bucket(dev, ino)]; g; g = g->inext)
        if (g->id.dev == dev && g->id.ino == ino && !g->truncated)
            return g;
    return NULL;
}

void tj_ident_del(struct tj_engine *e, struct gen *g)
{
    struct gen **pp = &e->by_ident[tj_ident_bucket(g->id.dev, g->id.ino)];

    while (*pp && *pp != g)
        pp = &(*pp)->inext;
    if (*pp)
        *pp = g->inext;
}

static struct done **done_find(struct tj_engine *e, uint64_t dev, uint64_t ino)
{
    struct done **pp = &e->done[tj_ident_bucket(dev, ino)];

    while (*pp && ((*pp)->id.dev != dev || (*pp)->id.ino != ino))
        pp = &(*pp)->next;
    return pp;
}

/* Remembers a released file and the offset it was read to. Lock held. */
void tj_ident_done_add(struct tj_engine *e, const struct gen *g, int64_t now)
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
bool tj_ident_done_holds(struct tj_engine *e, int fd, const struct stat *st)
{
    struct done *d = *done_find(e, st->st_dev, st->st_ino);

    return d && tj_fileid_matches_fd(fd, &d->id);
}

/* A path shows the file (dev, ino) now: its memory is kept. */
void tj_ident_done_touch(struct tj_engine *e, uint64_t dev, uint64_t ino, int64_t now)
{
    struct done *d = *done_find(e, dev, ino);

    if (d)
        d->seen_ms = now;
}

/* Forgets released files that no path showed for `grace` ms. */
void tj_ident_done_prune(struct tj_engine *e, int64_t now, int64_t grace)
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

/* How far the open file fd (identity *id, taken from fd) was read before: by a generation
 * released earlier (under any path), or before a restart (checkpoints, under any path). Returns
 * true with *off set when it is known; an entry so used is forgotten. */
bool tj_ident_file_known(struct tj_engine *e, int fd, const struct tj_fileid *id, int64_t *off)
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
    for (size_t i = e->rest_by_id ? tj_state_restored_lower_id(e, id->dev, id->ino) : e->restored.n;
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

/* Looks among the path's siblings (PATH.1, PATH.2, ...) for a file accepted by `want`. Returns
 * an open fd or -1. */
int tj_ident_find_sibling(const char *name, bool (*want)(int fd, const void *arg), const void *arg)
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
        fd = tj_files_open_log(dirfd(d), s);
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

bool tj_ident_want_identity(int fd, const void *arg)
{
    return tj_fileid_matches_fd(fd, arg);
}

/* A copy made by copytruncate: another inode whose head is the truncated file's head and that
 * holds at least what was read of it. */
bool tj_ident_want_copy(int fd, const void *arg)
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

struct gen *tj_ident_gen_from_fd(int fd, int64_t off)
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
int tj_ident_sibling_index(const char *name, uint64_t dev, uint64_t ino)
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

/* A copy of a followed file made by copytruncate, seen under its own name (`app.log.1` matched
 * by `app.log*`) before the original's path noticed the truncation: the original's path reads
 * it (from where it had read the original), so this name does not. True when name is
 * `BASE.N`, BASE is followed, and fd's first bytes are those of BASE's current file. */
bool tj_ident_copy_of_followed(struct tj_engine *e, const char *name, int fd)
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
    if (!(bp = tj_files_path_find(e, base)) || !(g = tj_files_gen_current(bp)) ||
        fstat(fd, &st) != 0)
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

/* How long a released file is remembered after the last time a path showed it: two full checks
 * of every path, so that a name that shows it finds it. */
int64_t tj_ident_done_grace(const struct tj_engine *e)
{
    int64_t g = 2 * GLOB_POLLS * (int64_t)e->cfg.poll_ms;

    return g > 10000 ? g : 10000;
}
