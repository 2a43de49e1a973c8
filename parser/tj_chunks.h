/* tj_chunks.h: chunks and the worker pool. The reader reads a path's generations into a chunk,
 * cuts it at the last event boundary (the rest is the path's carry), and queues it within the
 * read-ahead budget; a worker takes it from the job queue, assembles, parses and encodes it
 * into the chunk's batch, and hands it to sequencing (tj_seq.h). Buffers come from small pools
 * kept under e->lock. */
#ifndef TJ_CHUNKS_H
#define TJ_CHUNKS_H

#include "tj_engine_int.h"

/* Gives b's storage back to the pool (pool[0..*n), at most keep buffers of at most keep_cap
 * bytes; else it is freed) and leaves b empty. Under e->lock. */
void tj_chunks_pool_put(struct tj_buf *pool, size_t *n, struct tj_buf *b, size_t keep_cap,
                        size_t keep);

/* Records that the next len bytes of a chunk or carry come from generation g at offset off
 * (merged into the last segment when they follow it). */
void tj_chunks_segs_add(struct seg *s, int *n, struct gen *g, int64_t off, size_t len);

/* Queues a chunk of the path made of carry bytes [0, n) (segments cseg): the rest of the carry
 * stays. Returns 0 or TJ_ENOMEM. */
int tj_chunks_dispatch(struct tj_engine *e, struct path *p, size_t n, size_t skip, bool final,
                       bool cut_tail);

/* path_read_once, then an empty carry gives its buffer back: a thousand quiet files hold no
 * read buffers. */
bool tj_chunks_path_read(struct tj_engine *e, struct path *p, struct tj_cut *cut, int64_t now);

/* Whether the read-ahead budget allows another chunk (also when nothing is in flight); records
 * that the reader is blocked when it does not. Takes e->lock. */
bool tj_chunks_budget_left(struct tj_engine *e);

/* A worker thread (arg: its struct work): parses queued chunks until the workers stop. */
void *tj_chunks_worker_main(void *arg);

/* Tells the workers to stop and joins them. Main thread. */
void tj_chunks_stop_workers(struct tj_engine *e);

/* The workers' state, one struct work each (matcher, assembler, batch). Returns it (freed with
 * tj_chunks_works_destroy), or NULL; a member left NULL means out of memory. */
struct work *tj_chunks_works_create(struct tj_engine *e);

/* Adds the workers' parse counts to e->st and frees their state. NULL does nothing. */
void tj_chunks_works_destroy(struct tj_engine *e, struct work *w);

#endif
