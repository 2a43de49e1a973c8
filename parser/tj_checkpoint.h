/* tj_checkpoint.h: file identities and the checkpoint file of `tailjet run`.
 * A followed file is identified by its device, inode and a fingerprint of its first bytes, so a
 * reused inode with other content is a new file. The checkpoint file DIR/checkpoints holds, per
 * file identity, the offset up to which every record was acknowledged by the output. It is
 * written atomically (write a temporary file, fsync, keep the previous copy as
 * DIR/checkpoints.prev, rename, fsync the directory) and validated when read: a truncated or
 * corrupt file is reported and the previous copy is used, never a crash. */
#ifndef TJ_CHECKPOINT_H
#define TJ_CHECKPOINT_H

#include "tj_common.h"

/* Bytes of a file's head that make its fingerprint (fewer while the file is shorter). */
#define TJ_FILEID_FP_MAX 1024

struct tj_fileid {
    uint64_t dev, ino;
    uint32_t fp_len;  /* bytes hashed: min(file size when taken, TJ_FILEID_FP_MAX) */
    uint64_t fp_hash; /* 64-bit FNV-1a of those bytes (0 when fp_len is 0) */
};

/* Hashes n bytes (FNV-1a 64). */
uint64_t tj_fileid_hash(const void *p, size_t n);

/* Fills *id from an open file: fstat for dev/ino/size, pread of its first min(size, FP_MAX)
 * bytes. Returns 0 or TJ_EIO (errno set). Thread-safe (pread does not move the offset). */
int tj_fileid_from_fd(int fd, struct tj_fileid *id);

/* True when the open file fd is the file `id` was taken from: same dev and inode, at least
 * id->fp_len bytes long, and its first id->fp_len bytes hash to id->fp_hash. */
bool tj_fileid_matches_fd(int fd, const struct tj_fileid *id);

struct tj_ckpt_entry {
    struct tj_fileid id;
    int64_t offset; /* every byte before it was acknowledged */
    char *path;     /* the path the file was followed under (owned); may contain any byte
                       but '\0'; informational, and used to look for a rotated file */
};

struct tj_ckpt_table {
    struct tj_ckpt_entry *v; /* owned array */
    size_t n;
};

void tj_ckpt_table_init(struct tj_ckpt_table *t);
void tj_ckpt_table_fini(struct tj_ckpt_table *t);
/* Appends an entry (path copied). Returns 0 or TJ_ENOMEM (table unchanged). */
int tj_ckpt_table_add(struct tj_ckpt_table *t, const struct tj_fileid *id, int64_t offset,
                      const char *path);

/* Reads DIR/checkpoints into t (which must be empty). Returns:
 *   0          loaded (possibly from DIR/checkpoints.prev: then *warn is filled, see below);
 *   TJ_ENOENT  there is no state at all: the first start;
 *   TJ_EPARSE  both copies are unusable: *warn says why; t is left empty, the caller decides
 *              (tailjet reads every file from its beginning: at-least-once);
 *   TJ_EIO     DIR cannot be read (err filled).
 * `warn` (warnlen bytes) is set to "" or to a message the caller should log once
 * ("DIR/checkpoints: truncated (no end line); using DIR/checkpoints.prev from <time>"). */
int tj_ckpt_load(const char *dir, struct tj_ckpt_table *t, char *warn, size_t warnlen);

/* Writes t atomically as described above. Creates DIR if missing (mode 0700). Returns 0 or
 * TJ_EIO with err filled (the old checkpoints stay in place). Before anything is written it
 * may also return, err filled, TJ_EINVAL (an entry that could not be read back: negative
 * offset, fp_len over TJ_FILEID_FP_MAX, NULL path), TJ_ENOSPC (the text would be over the
 * 64 MiB that tj_ckpt_load accepts) or TJ_ENOMEM. */
int tj_ckpt_save(const char *dir, const struct tj_ckpt_table *t, char *err, size_t errlen);

/* ---- exposed for tests and the fuzz target ---- */

struct tj_buf;

/* Parses the text of a checkpoint file, text[0..len) (not NUL-terminated, borrowed), into t,
 * which must be empty. Returns 0, TJ_EPARSE with the reason in why (t left empty) or
 * TJ_ENOMEM (t left empty). The format has one spelling per table: a text that parses is
 * exactly what tj_ckpt_format writes for the table it gives. */
int tj_ckpt_parse(const char *text, size_t len, struct tj_ckpt_table *t, char *why, size_t whylen);

/* Appends the text of t to out. Returns 0, TJ_EINVAL with err filled (an entry that could not
 * be read back, see tj_ckpt_save), or TJ_ENOSPC / TJ_ENOMEM from out (out->len is then
 * restored). */
int tj_ckpt_format(const struct tj_ckpt_table *t, struct tj_buf *out, char *err, size_t errlen);

#endif
