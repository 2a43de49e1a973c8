/* tj_files.h: file following, the reader thread's side of each followed path: its generations
 * (the file now at the path and, oldest first, files renamed, unlinked or truncated away and
 * still read to their end), rotation, truncation, lingering rotated files, aliases (one file
 * under two names), the inotify watches of the paths' directories and of the globs, the glob
 * scans and the per-poll checks of the safety net. Reader thread (adding and freeing paths also in
 * create and destroy). The lists change under e->lock. */
#ifndef TJ_FILES_H
#define TJ_FILES_H

#include "tj_engine_int.h"

/* The followed path of that name, or NULL (the reader's name hash). */
struct path *tj_files_path_find(struct tj_engine *e, const char *name);

/* Whether the last full glob scan (or a file event since) matched the path. */
bool tj_files_path_matched(const struct tj_engine *e, const struct path *p);

/* Puts the path on the dirty list (reader): the next pass reads it. */
void tj_files_mark_dirty(struct tj_engine *e, struct path *p);

/* Puts the path on the busy list or takes it off (reader). */
void tj_files_set_busy(struct tj_engine *e, struct path *p, bool busy);

/* Opens a log file for reading without updating its access time where allowed: an atime update
 * is a journaled metadata change, and on ext4 it waits for the journal commit that a
 * checkpoint's fsync starts, which would stall the reader for a tenth of a second each time. */
int tj_files_open_log(int dirfd, const char *name);

/* A new generation for the file at name, to be read from off. Returns it (owned), or NULL
 * with why filled and errno set (ENOENT: no file there). */
struct gen *tj_files_gen_open(const char *name, int64_t off, char *why, size_t whylen);

/* Appends g (taken) as the path's newest generation and indexes it by identity. Reader thread;
 * takes e->lock. */
void tj_files_gen_append(struct tj_engine *e, struct path *p, struct gen *g);

/* The newest generation when it is the file at the path, else NULL. */
struct gen *tj_files_gen_current(struct path *p);

/* Whether the path's carry holds bytes of generation g. */
bool tj_files_carry_uses(const struct path *p, const struct gen *g);

/* Releases generations that are read to their end, acknowledged and not at the path. */
void tj_files_gens_release(struct tj_engine *e, struct path *p);

/* The file at the path was truncated (copytruncate, or a writer starting over): what was not
 * read yet is in the copy when there is one; the file's new content is a new generation. */
void tj_files_handle_truncation(struct tj_engine *e, struct path *p, struct gen *cur);

/* Whether the file's first bytes are still those the generation was identified by: compared
 * with the bytes kept when it was read from its start (a memcmp), else by their hash. */
bool tj_files_gen_head_matches(struct gen *g);

/* True when the file st at the path is read under another path (or by one of this path's own
 * older generations): then this path reads nothing of it. */
bool tj_files_path_alias(struct tj_engine *e, struct path *p, const struct stat *st);

/* Compares the path with what is followed: a new file (rename, unlink, re-creation) retires
 * the current generation and opens the new one (from its start unless its identity is known);
 * truncation is handled. */
void tj_files_path_check(struct tj_engine *e, struct path *p);

/* Starts following a path with src (a reference is taken) and the metadata values meta[k]
 * (NUL-terminated, or NULL; the file path and host name are the engine's). */
struct path *tj_files_path_add(struct tj_engine *e, const char *name, struct source *src,
                               const char *const *meta, bool at_start);

/* Frees a path: its generations (descriptors closed), its source reference, carry and name. */
void tj_files_path_free(struct path *p);

/* Runs every glob (with `all`; else only those that no inotify watch covers); new files become
 * paths. */
void tj_files_scan_globs(struct tj_engine *e, bool at_start, bool all);

/* Drains inotify. Returns true when a glob should be run again soon (files appeared). */
bool tj_files_drain_inotify(struct tj_engine *e);

/* Forgets paths that are gone: not matched, no file left, nothing in flight or carried, not
 * waiting to be read. Such a path is busy (it has no file), so the busy list holds them all. */
void tj_files_paths_prune(struct tj_engine *e);

/* The safety net's look at one path: a change inotify did not report (or that happened in a
 * rotated file), a rotated file whose wait ended. */
void tj_files_safety_check(struct tj_engine *e, struct path *p);

/* Watches the fixed directory part of each glob, where new files and directories appear. */
void tj_files_watch_glob_dirs(struct tj_engine *e);

#endif
