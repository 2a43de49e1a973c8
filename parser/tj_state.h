/* tj_state.h: the state directory: its lock (one tailjet per directory), the checkpoints read at
 * start and looked up by identity or by path as files are found again, and the checkpoints
 * written while running (atomically, only over what the output acknowledged). The lock and
 * the restored table: create and the reader thread; saving: the main thread. */
#ifndef TJ_STATE_H
#define TJ_STATE_H

#include "tj_engine_int.h"

/* Indexes the restored checkpoints by identity and by path. Returns 0 or TJ_ENOMEM. */
int tj_state_restored_index(struct tj_engine *e);

/* The first position in rest_by_id whose entry is not before (dev, ino). */
size_t tj_state_restored_lower_id(const struct tj_engine *e, uint64_t dev, uint64_t ino);

/* Whether s ends with suffix. */
bool tj_state_has_suffix(const char *s, const char *suffix);

/* After the first scan: the files of followed paths that no name showed are gone. */
void tj_state_restored_sweep(struct tj_engine *e);

/* At start (or when a path is followed again later): the files the checkpoints knew under this
 * path that were rotated away meanwhile (found by their identity among PATH.N, unless another
 * path reads them), then the file at the path, from where it was read before when its identity
 * is known under any path. */
void tj_state_path_restore(struct tj_engine *e, struct path *p, bool at_start);

/* Writes every generation's and every released file's acknowledged offset to the state
 * directory, unless nothing changed since the last write. Returns 0 or an error (logged once
 * until a write works again). Main thread. */
int tj_state_save_checkpoints(struct tj_engine *e);

/* Makes the state directory when missing and takes its lock: two processes writing the same
 * checkpoints would each undo the other's. Returns 0 or TJ_EIO with err filled. */
int tj_state_lock_state_dir(struct tj_engine *e, char *err, size_t errlen);

#endif
