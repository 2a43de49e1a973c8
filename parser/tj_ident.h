/* tj_ident.h: file identities. A file is known by its device, inode and the fingerprint of its
 * first bytes, not by its path: the live generations by (device, inode), the released files a
 * name may show again (struct done, kept while some path shows them, written to checkpoints
 * too), and the siblings of a rotated file (`app.log.1` found by identity or as a copy). Reader
 * thread; the released files change under e->lock (checkpoints read them). */
#ifndef TJ_IDENT_H
#define TJ_IDENT_H

#include "tj_engine_int.h"

/* The bucket of (dev, ino) in e->by_ident and e->done. */
size_t tj_ident_bucket(uint64_t dev, uint64_t ino);

/* The generation that reads the file (dev, ino) now, under any path, or NULL. A generation
 * whose descriptor was truncated is no longer that file's reader. */
struct gen *tj_ident_live(struct tj_engine *e, uint64_t dev, uint64_t ino);

/* Takes g out of the identity index (nothing when it is not there). Reader thread. */
void tj_ident_del(struct tj_engine *e, struct gen *g);

/* Remembers a released file and the offset it was read to. Lock held. */
void tj_ident_done_add(struct tj_engine *e, const struct gen *g, int64_t now);

/* True when the open file fd (st: its fstat) was read to its end and released earlier (its
 * fingerprint too, so not a reused inode). */
bool tj_ident_done_holds(struct tj_engine *e, int fd, const struct stat *st);

/* A path shows the file (dev, ino) now: its memory is kept. */
void tj_ident_done_touch(struct tj_engine *e, uint64_t dev, uint64_t ino, int64_t now);

/* Forgets released files that no path showed for `grace` ms. */
void tj_ident_done_prune(struct tj_engine *e, int64_t now, int64_t grace);

/* How far the open file fd (identity *id, taken from fd) was read before: by a generation
 * released earlier (under any path), or before a restart (checkpoints, under any path). Returns
 * true with *off set when it is known; an entry so used is forgotten. */
bool tj_ident_file_known(struct tj_engine *e, int fd, const struct tj_fileid *id, int64_t *off);

/* Looks among the path's siblings (PATH.1, PATH.2, ...) for a file accepted by `want`. Returns
 * an open fd or -1. */
int tj_ident_find_sibling(const char *name, bool (*want)(int fd, const void *arg), const void *arg);

/* For find_sibling: whether fd's file has the identity arg (a struct tj_fileid). */
bool tj_ident_want_identity(int fd, const void *arg);

/* A copy made by copytruncate: another inode whose head is the truncated file's head and that
 * holds at least what was read of it. */
bool tj_ident_want_copy(int fd, const void *arg);

/* A new generation for fd (taken: closed on failure), to be read from off. Returns it (owned)
 * or NULL. */
struct gen *tj_ident_gen_from_fd(int fd, int64_t off);

/* Index N of the sibling PATH.N that is the file (dev, ino), or 0. */
int tj_ident_sibling_index(const char *name, uint64_t dev, uint64_t ino);

/* A copy of a followed file made by copytruncate, seen under its own name (`app.log.1` matched
 * by `app.log*`) before the original's path noticed the truncation: the original's path reads
 * it (from where it had read the original), so this name does not. True when name is
 * `BASE.N`, BASE is followed, and fd's first bytes are those of BASE's current file. */
bool tj_ident_copy_of_followed(struct tj_engine *e, const char *name, int fd);

/* How long a released file is remembered after the last time a path showed it: two full checks
 * of every path, so that a name that shows it finds it. */
int64_t tj_ident_done_grace(const struct tj_engine *e);

#endif
