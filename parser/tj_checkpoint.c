/* tj_checkpoint.c: file identities (device, inode, fingerprint of the head) and the checkpoint
 * file of `tailjet run`: its text format, its strict parser and its atomic save, which keeps
 * the previous copy. The module holds no state: the caller owns the table and runs it on its
 * own thread (the engine's checkpoint writer at run time, the start-up code for the load).
 *
 * The file is printable ASCII, one record a line, every line ending in '\n':
 *   tailjet-checkpoints 1
 *   <dev> <ino> <fp_len> <fp_hash> <offset> <path>       one line per entry
 *   end <count> <checksum>
 * Numbers are decimal, without sign or leading zero; fp_hash and checksum are 16 lowercase hex
 * digits; the checksum is the FNV-1a 64 of every byte before the end line. The path is the
 * rest of the line, percent-escaped: '%' and every byte outside '!'..'~' (space, newline,
 * controls, UTF-8) is written %XX with uppercase hex, so any path but one holding '\0' survives
 * and stays on its line; it may be empty. Nothing follows the end line. The parser accepts
 * exactly what the writer writes (one spelling per table): with the checksum, anything else is
 * a damaged file, and the fuzz target can check that text -> table -> text is the identity. */
#include "tj_checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tj_buf.h"

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME  0x100000001b3ULL

/* The largest checkpoint file read or written: about 400 000 entries of Docker paths. It caps
 * what a damaged or foreign file can make tj_ckpt_load allocate. */
#define CKPT_MAX_BYTES ((size_t)64 << 20)

#define CKPT_MAGIC   "tailjet-checkpoints "
#define CKPT_VERSION 1
#define CKPT_FILE    "checkpoints"
#define CKPT_PREV    "checkpoints.prev"
#define CKPT_TMP     "checkpoints.tmp"

/* Room for one entry line without its path: five numbers, five spaces. */
#define NUMS_MAX 96

#define STR_(x) #x
#define STR(x)  STR_(x)

static void say(char *buf, size_t len, const char *fmt, ...) TJ_PRINTF(3, 4);

/* snprintf into a caller's message buffer, which may be NULL or empty. */
static void say(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (!buf || !len)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* ---- file identities ---- */

uint64_t tj_fileid_hash(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = FNV_OFFSET;

    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* Reads up to n bytes from offset 0 of fd into buf, going on after short reads and EINTR.
 * Returns the bytes read (fewer than n only at end of file) or -1 with errno set. */
static ssize_t read_head(int fd, char *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t k = pread(fd, buf + got, n - got, (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        if (k == 0)
            break;
        got += (size_t)k;
    }
    return (ssize_t)got;
}

/* On failure *id is unchanged. A file that shrank between fstat and pread gets the shorter
 * fingerprint of what could be read. */
int tj_fileid_from_fd(int fd, struct tj_fileid *id)
{
    char head[TJ_FILEID_FP_MAX];
    struct stat st;
    size_t want = 0;
    ssize_t got;

    if (fstat(fd, &st) != 0)
        return TJ_EIO;
    if (st.st_size > 0)
        want = st.st_size < TJ_FILEID_FP_MAX ? (size_t)st.st_size : TJ_FILEID_FP_MAX;
    got = read_head(fd, head, want);
    if (got < 0)
        return TJ_EIO;
    id->dev = (uint64_t)st.st_dev;
    id->ino = (uint64_t)st.st_ino;
    id->fp_len = (uint32_t)got;
    id->fp_hash = got ? tj_fileid_hash(head, (size_t)got) : 0;
    return 0;
}

/* False as well when fd cannot be read, or id is not one tj_fileid_from_fd could give (fp_len
 * over TJ_FILEID_FP_MAX, or a non-zero hash of no bytes). */
bool tj_fileid_matches_fd(int fd, const struct tj_fileid *id)
{
    char head[TJ_FILEID_FP_MAX];
    struct stat st;

    if (id->fp_len > TJ_FILEID_FP_MAX || fstat(fd, &st) != 0)
        return false;
    if ((uint64_t)st.st_dev != id->dev || (uint64_t)st.st_ino != id->ino)
        return false;
    if (id->fp_len == 0)
        return id->fp_hash == 0;
    if (st.st_size < (off_t)id->fp_len)
        return false;
    return read_head(fd, head, id->fp_len) == (ssize_t)id->fp_len &&
           tj_fileid_hash(head, id->fp_len) == id->fp_hash;
}

/* ---- the table ---- */

void tj_ckpt_table_init(struct tj_ckpt_table *t)
{
    t->v = NULL;
    t->n = 0;
}

/* Frees every path and the array; t is then empty and may be reused. */
void tj_ckpt_table_fini(struct tj_ckpt_table *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].path);
    free(t->v);
    tj_ckpt_table_init(t);
}

/* Appends an entry whose path is taken over. The capacity is not stored: it is n rounded up to
 * a power of two (at least 8), so the array grows when n reaches one. Returns 0 or TJ_ENOMEM
 * (t unchanged, path still the caller's). */
static int table_push(struct tj_ckpt_table *t, const struct tj_fileid *id, int64_t offset,
                      char *path)
{
    if (t->n == 0 || (t->n >= 8 && (t->n & (t->n - 1)) == 0)) {
        size_t cap = t->n ? t->n * 2 : 8;
        struct tj_ckpt_entry *v;
        if (cap > SIZE_MAX / sizeof(*v))
            return TJ_ENOMEM;
        v = realloc(t->v, cap * sizeof(*v));
        if (!v)
            return TJ_ENOMEM;
        t->v = v;
    }
    t->v[t->n++] = (struct tj_ckpt_entry){.id = *id, .offset = offset, .path = path};
    return 0;
}

/* path is borrowed and must not be NULL (TJ_EINVAL then, t unchanged). */
int tj_ckpt_table_add(struct tj_ckpt_table *t, const struct tj_fileid *id, int64_t offset,
                      const char *path)
{
    char *copy;

    if (!path)
        return TJ_EINVAL;
    copy = strdup(path);
    if (!copy)
        return TJ_ENOMEM;
    if (table_push(t, id, offset, copy) != 0) {
        free(copy);
        return TJ_ENOMEM;
    }
    return 0;
}

/* ---- writing the text ---- */

/* Bytes written as themselves in a path; every other one is written %XX. */
static inline bool path_byte_plain(unsigned char c)
{
    return c > ' ' && c < 0x7f && c != '%';
}

static int put_path(struct tj_buf *b, const char *path)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(path);
    char *w;
    int rc;

    if (n > SIZE_MAX / 3)
        return TJ_ENOSPC;
    rc = tj_buf_reserve(b, 3 * n);
    if (rc)
        return rc;
    w = b->data + b->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)path[i];
        if (path_byte_plain(c)) {
            *w++ = (char)c;
        } else {
            *w++ = '%';
            *w++ = hex[c >> 4];
            *w++ = hex[c & 15];
        }
    }
    b->len = (size_t)(w - b->data);
    return 0;
}

/* 0 when entry i can be written and read back, else TJ_EINVAL with err filled. The message
 * names the entry by number, not by path: a path may hold a newline, and log lines do not. */
static int check_entry(const struct tj_ckpt_entry *e, size_t i, char *err, size_t errlen)
{
    if (!e->path)
        say(err, errlen, "checkpoint entry %zu has no path", i);
    else if (e->offset < 0)
        say(err, errlen, "checkpoint entry %zu (inode %" PRIu64 ") has a negative offset %" PRId64,
            i, e->id.ino, e->offset);
    else if (e->id.fp_len > TJ_FILEID_FP_MAX)
        say(err, errlen,
            "checkpoint entry %zu (inode %" PRIu64 ") has a fingerprint of %" PRIu32
            " bytes, over %d",
            i, e->id.ino, e->id.fp_len, TJ_FILEID_FP_MAX);
    else
        return 0;
    return TJ_EINVAL;
}

static int put_entry(struct tj_buf *b, const struct tj_ckpt_entry *e)
{
    char nums[NUMS_MAX];
    int k = snprintf(nums, sizeof(nums),
                     "%" PRIu64 " %" PRIu64 " %" PRIu32 " %016" PRIx64 " %" PRId64 " ", e->id.dev,
                     e->id.ino, e->id.fp_len, e->id.fp_hash, e->offset);
    int rc = tj_buf_append(b, nums, (size_t)k);

    if (!rc)
        rc = put_path(b, e->path);
    if (!rc)
        rc = tj_buf_append(b, "\n", 1);
    return rc;
}

int tj_ckpt_format(const struct tj_ckpt_table *t, struct tj_buf *out, char *err, size_t errlen)
{
    static const char first[] = CKPT_MAGIC "1\n";
    size_t start = out->len;
    char end[64];
    int rc;

    _Static_assert(CKPT_VERSION == 1, "the first line spells the version");
    for (size_t i = 0; i < t->n; i++) {
        rc = check_entry(&t->v[i], i, err, errlen);
        if (rc)
            return rc;
    }
    rc = tj_buf_append(out, first, sizeof(first) - 1);
    for (size_t i = 0; !rc && i < t->n; i++)
        rc = put_entry(out, &t->v[i]);
    if (!rc) {
        uint64_t sum = tj_fileid_hash(out->data + start, out->len - start);
        int k = snprintf(end, sizeof(end), "end %zu %016" PRIx64 "\n", t->n, sum);
        rc = tj_buf_append(out, end, (size_t)k);
    }
    if (!rc && out->len - start > CKPT_MAX_BYTES)
        rc = TJ_ENOSPC;
    if (rc) {
        out->len = start;
        say(err, errlen, "checkpoint text of %zu entries: %s", t->n, tj_strerror(rc));
    }
    return rc;
}

/* ---- parsing the text ---- */

/* Reads a decimal number without sign or leading zero at *cur, moving *cur past it.
 * Returns 0, or -1 (no digit, a leading zero, or over UINT64_MAX). */
static int parse_u64(const char **cur, const char *end, uint64_t *v)
{
    const char *p = *cur;
    uint64_t r = 0;

    if (p == end || *p < '0' || *p > '9' ||
        (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9'))
        return -1;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (r > (UINT64_MAX - d) / 10)
            return -1;
        r = r * 10 + d;
    }
    *cur = p;
    *v = r;
    return 0;
}

/* Reads exactly 16 lowercase hex digits at *cur. Returns 0 or -1. */
static int parse_hex16(const char **cur, const char *end, uint64_t *v)
{
    const char *p = *cur;
    uint64_t r = 0;

    if (end - p < 16)
        return -1;
    for (int i = 0; i < 16; i++, p++) {
        if (*p >= '0' && *p <= '9')
            r = r << 4 | (uint64_t)(*p - '0');
        else if (*p >= 'a' && *p <= 'f')
            r = r << 4 | (uint64_t)(*p - 'a' + 10);
        else
            return -1;
    }
    *cur = p;
    *v = r;
    return 0;
}

/* Moves *cur past c when it is there. Returns 0 or -1. */
static int expect(const char **cur, const char *end, char c)
{
    if (*cur == end || **cur != c)
        return -1;
    (*cur)++;
    return 0;
}

static int upper_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes the escaped path p[0..end) into a new string (returned in *out, malloc'd).
 * Returns 0, TJ_ENOMEM, or TJ_EPARSE with why filled (prefixed with "line N: "). */
static int parse_path(const char *p, const char *end, size_t line, char **out, char *why,
                      size_t whylen)
{
    size_t n = 0;
    char *s, *w;

    for (const char *q = p; q < end; n++) {
        unsigned char c = (unsigned char)*q;
        int hi, lo;
        if (path_byte_plain(c)) {
            q++;
            continue;
        }
        if (c != '%') {
            say(why, whylen, "line %zu: byte 0x%02x in the path is not escaped", line, c);
            return TJ_EPARSE;
        }
        if (end - q < 3 || (hi = upper_hex(q[1])) < 0 || (lo = upper_hex(q[2])) < 0) {
            say(why, whylen, "line %zu: bad %% escape in the path", line);
            return TJ_EPARSE;
        }
        c = (unsigned char)(hi << 4 | lo);
        if (c == 0 || path_byte_plain(c)) {
            say(why, whylen, "line %zu: %%%c%c in the path is %s", line, q[1], q[2],
                c ? "not escaped by tailjet" : "a NUL byte");
            return TJ_EPARSE;
        }
        q += 3;
    }
    s = malloc(n + 1);
    if (!s)
        return TJ_ENOMEM;
    for (w = s; p < end; w++) {
        if (*p == '%') {
            *w = (char)(upper_hex(p[1]) << 4 | upper_hex(p[2]));
            p += 3;
        } else {
            *w = *p++;
        }
    }
    *w = '\0';
    *out = s;
    return 0;
}

/* Parses the entry line p[0..end) (end at its '\n') and appends it to t. Returns 0, TJ_ENOMEM,
 * or TJ_EPARSE with why filled. */
static int parse_entry(const char *p, const char *end, size_t line, struct tj_ckpt_table *t,
                       char *why, size_t whylen)
{
    struct tj_fileid id;
    uint64_t fp_len, off;
    const char *what = NULL;
    char *path = NULL;
    int rc;

    if (parse_u64(&p, end, &id.dev) || expect(&p, end, ' '))
        what = "bad device number";
    else if (parse_u64(&p, end, &id.ino) || expect(&p, end, ' '))
        what = "bad inode number";
    else if (parse_u64(&p, end, &fp_len) || expect(&p, end, ' '))
        what = "bad fingerprint length";
    else if (fp_len > TJ_FILEID_FP_MAX)
        what = "fingerprint length over " STR(TJ_FILEID_FP_MAX);
    else if (parse_hex16(&p, end, &id.fp_hash) || expect(&p, end, ' '))
        what = "bad fingerprint hash (16 lowercase hex digits)";
    else if (p < end && *p == '-')
        what = "negative offset";
    else if (parse_u64(&p, end, &off) || expect(&p, end, ' '))
        what = "bad offset";
    else if (off > INT64_MAX)
        what = "offset out of range";
    if (what) {
        say(why, whylen, "line %zu: %s", line, what);
        return TJ_EPARSE;
    }
    id.fp_len = (uint32_t)fp_len;
    rc = parse_path(p, end, line, &path, why, whylen);
    if (rc)
        return rc;
    rc = table_push(t, &id, (int64_t)off, path);
    if (rc)
        free(path);
    return rc;
}

/* Checks what makes text[0..len) a whole checkpoint file: the first line, an end line that is
 * last, and the checksum. Returns 0 with *body (the first entry line), *tail (the end line) and
 * *count (entries the end line announces) set, or TJ_EPARSE with why filled. */
static int check_envelope(const char *text, size_t len, const char **body, const char **tail,
                          uint64_t *count, char *why, size_t whylen)
{
    const size_t m = sizeof(CKPT_MAGIC) - 1;
    const char *end = text + len, *nl, *last, *lend, *p;
    uint64_t version, stored, sum;

    if (len == 0) {
        say(why, whylen, "empty file");
        return TJ_EPARSE;
    }
    if (len > CKPT_MAX_BYTES) {
        say(why, whylen, "%zu bytes, over the cap of %zu", len, CKPT_MAX_BYTES);
        return TJ_EPARSE;
    }
    if (memcmp(text, CKPT_MAGIC, len < m ? len : m) != 0) {
        say(why, whylen, "not a tailjet checkpoint file (bad first line)");
        return TJ_EPARSE;
    }
    nl = memchr(text, '\n', len);
    if (!nl) {
        say(why, whylen, "truncated (no end line)");
        return TJ_EPARSE;
    }
    p = text + m;
    if (parse_u64(&p, nl, &version) || p != nl) {
        say(why, whylen, "not a tailjet checkpoint file (bad first line)");
        return TJ_EPARSE;
    }
    if (version != CKPT_VERSION) {
        say(why, whylen, "unsupported version %" PRIu64 " (this tailjet reads version %d)", version,
            CKPT_VERSION);
        return TJ_EPARSE;
    }
    /* Entry lines start with a digit, so the first "\nend " starts the end line. */
    last = memmem(nl, (size_t)(end - nl), "\nend ", 5);
    lend = last ? memchr(last + 1, '\n', (size_t)(end - last - 1)) : NULL;
    if (!lend) {
        say(why, whylen, "truncated (no end line)");
        return TJ_EPARSE;
    }
    last++;
    p = last + 4;
    if (parse_u64(&p, lend, count) || expect(&p, lend, ' ') || parse_hex16(&p, lend, &stored) ||
        p != lend) {
        say(why, whylen, "bad end line");
        return TJ_EPARSE;
    }
    if (lend + 1 != end) {
        say(why, whylen, "%zu bytes after the end line", (size_t)(end - lend - 1));
        return TJ_EPARSE;
    }
    sum = tj_fileid_hash(text, (size_t)(last - text));
    if (sum != stored) {
        say(why, whylen,
            "checksum mismatch (the end line says %016" PRIx64 ", the content hashes to %016" PRIx64
            ")",
            stored, sum);
        return TJ_EPARSE;
    }
    *body = nl + 1;
    *tail = last;
    return 0;
}

/* t must be empty (TJ_EINVAL otherwise, t untouched). */
int tj_ckpt_parse(const char *text, size_t len, struct tj_ckpt_table *t, char *why, size_t whylen)
{
    const char *p, *tail;
    uint64_t count;
    size_t line = 2;
    int rc;

    say(why, whylen, "%s", "");
    if (t->n) {
        say(why, whylen, "the table to fill is not empty");
        return TJ_EINVAL;
    }
    rc = check_envelope(text, len, &p, &tail, &count, why, whylen);
    for (; !rc && p < tail; line++) {
        const char *nl = memchr(p, '\n', (size_t)(tail - p)); /* tail[-1] is one */
        rc = parse_entry(p, nl, line, t, why, whylen);
        p = nl + 1;
    }
    if (!rc && count != t->n) {
        say(why, whylen, "the end line counts %" PRIu64 " entries, the file holds %zu", count,
            t->n);
        rc = TJ_EPARSE;
    }
    if (rc == TJ_ENOMEM)
        say(why, whylen, "out of memory");
    if (rc)
        tj_ckpt_table_fini(t);
    return rc;
}

/* ---- reading the files ---- */

/* Reads DIR/name (opened at dirfd) whole into *text (malloc'd, *len bytes). Returns 0,
 * TJ_ENOENT (no such file), TJ_EIO (why: the call and errno), TJ_EPARSE (not a regular file,
 * over the cap) or TJ_ENOMEM. *mtime is its modification time. */
static int read_copy(int dirfd, const char *name, char **text, size_t *len, time_t *mtime,
                     char *why, size_t whylen)
{
    struct stat st;
    size_t got = 0;
    char *buf = NULL;
    int fd, rc = 0;

    /* O_NONBLOCK: a FIFO put in its place must not hang the start; it is refused below. */
    fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT)
            return TJ_ENOENT;
        say(why, whylen, "open: %s", strerror(errno));
        return TJ_EIO;
    }
    if (fstat(fd, &st) != 0) {
        say(why, whylen, "fstat: %s", strerror(errno));
        rc = TJ_EIO;
    } else if (!S_ISREG(st.st_mode)) {
        say(why, whylen, "not a regular file");
        rc = TJ_EPARSE;
    } else if ((uint64_t)st.st_size > CKPT_MAX_BYTES) {
        say(why, whylen, "%jd bytes, over the cap of %zu", (intmax_t)st.st_size, CKPT_MAX_BYTES);
        rc = TJ_EPARSE;
    } else if (!(buf = malloc((size_t)st.st_size + 1))) {
        rc = TJ_ENOMEM;
    }
    /* Files are replaced by rename, never written in place: st_size is the size. A file cut
     * under us reads short, and the parser then says it is truncated. */
    while (!rc && got < (size_t)st.st_size) {
        ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            say(why, whylen, "read: %s", strerror(errno));
            rc = TJ_EIO;
        }
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    *text = buf;
    *len = got;
    *mtime = st.st_mtime;
    return 0;
}

/* Reads and parses DIR/name into t (empty). Returns 0, TJ_ENOENT, TJ_EPARSE or TJ_EIO with
 * why filled, or TJ_ENOMEM; t is empty unless 0. */
static int load_copy(int dirfd, const char *name, struct tj_ckpt_table *t, time_t *mtime, char *why,
                     size_t whylen)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_copy(dirfd, name, &text, &len, mtime, why, whylen);

    if (rc == 0)
        rc = tj_ckpt_parse(text, len, t, why, whylen);
    if (rc == TJ_ENOENT)
        say(why, whylen, "missing");
    else if (rc == TJ_ENOMEM)
        say(why, whylen, "out of memory");
    free(text);
    return rc;
}

/* t must be empty (TJ_EINVAL otherwise, t untouched). Beyond the header's contract: TJ_EIO
 * also when neither copy is usable and one of them could not be read (a permission or disk
 * problem is the operator's to fix, not a reason to read every log again), and TJ_ENOMEM. */
int tj_ckpt_load(const char *dir, struct tj_ckpt_table *t, char *warn, size_t warnlen)
{
    char why[256], why_prev[256], when[32] = "an unknown time";
    time_t mtime = 0;
    struct tm tm;
    int dirfd, rc, rc_prev;

    say(warn, warnlen, "%s", "");
    if (t->n)
        return TJ_EINVAL;
    dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0 && errno == ENOENT)
        return TJ_ENOENT;
    if (dirfd < 0) {
        say(warn, warnlen, "%s: %s", dir, strerror(errno));
        return TJ_EIO;
    }
    rc = load_copy(dirfd, CKPT_FILE, t, &mtime, why, sizeof(why));
    if (rc == TJ_ENOMEM)
        say(warn, warnlen, "%s/" CKPT_FILE ": %s", dir, why);
    if (rc == 0 || rc == TJ_ENOMEM)
        goto out;
    rc_prev = load_copy(dirfd, CKPT_PREV, t, &mtime, why_prev, sizeof(why_prev));
    if (rc_prev == 0) {
        if (gmtime_r(&mtime, &tm))
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        say(warn, warnlen, "%s/" CKPT_FILE ": %s; using %s/" CKPT_PREV " from %s", dir, why, dir,
            when);
        rc = 0;
    } else if (rc != TJ_ENOENT || rc_prev != TJ_ENOENT) {
        say(warn, warnlen, "%s/" CKPT_FILE ": %s; %s/" CKPT_PREV ": %s", dir, why, dir, why_prev);
        rc = rc_prev == TJ_ENOMEM                ? TJ_ENOMEM
             : rc == TJ_EIO || rc_prev == TJ_EIO ? TJ_EIO
                                                 : TJ_EPARSE;
    } /* else neither exists: TJ_ENOENT, no warning */
out:
    close(dirfd);
    return rc;
}

/* ---- saving ---- */

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        if (k == 0) {
            errno = EIO;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* fsyncs the directory holding `dir`, so that a DIR just made survives a crash. Best effort:
 * the worst a failure costs is a first start again. */
static void sync_parent(const char *dir)
{
    const char *slash = strrchr(dir, '/');
    char parent[4096];
    int fd;

    while (slash && slash > dir && slash[1] == '\0') /* "a/b/" is "a/b" */
        slash = memrchr(dir, '/', (size_t)(slash - dir));
    if (!slash)
        snprintf(parent, sizeof(parent), ".");
    else if (slash == dir)
        snprintf(parent, sizeof(parent), "/");
    else
        snprintf(parent, sizeof(parent), "%.*s", (int)(slash - dir), dir);
    fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        if (fsync(fd) != 0) {
            /* Best effort, see above. */
        }
        close(fd);
    }
}

/* Opens DIR, making it (mode 0700, one level) when missing. Returns the fd or -1 with err
 * filled. */
static int open_dir(const char *dir, char *err, size_t errlen)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0 && errno == ENOENT) {
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            say(err, errlen, "mkdir %s: %s", dir, strerror(errno));
            return -1;
        }
        sync_parent(dir);
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (fd < 0)
        say(err, errlen, "%s: %s", dir, strerror(errno));
    return fd;
}

/* Writes and fsyncs DIR/checkpoints.tmp. Returns 0 or TJ_EIO with err filled. */
static int write_tmp(int dirfd, const char *dir, const struct tj_buf *text, char *err,
                     size_t errlen)
{
    const char *what = NULL;
    int fd = openat(dirfd, CKPT_TMP, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);

    if (fd < 0) {
        say(err, errlen, "%s/" CKPT_TMP ": open: %s", dir, strerror(errno));
        return TJ_EIO;
    }
    if (write_all(fd, text->data, text->len) != 0)
        what = "write";
    else if (fsync(fd) != 0)
        what = "fsync";
    if (what)
        say(err, errlen, "%s/" CKPT_TMP ": %s: %s", dir, what, strerror(errno));
    if (close(fd) != 0 && !what) {
        what = "close";
        say(err, errlen, "%s/" CKPT_TMP ": close: %s", dir, strerror(errno));
    }
    return what ? TJ_EIO : 0;
}

/* Makes DIR/checkpoints.prev a second name of DIR/checkpoints, when that one is a valid file.
 * A damaged or unreadable DIR/checkpoints is not kept: DIR/checkpoints.prev may then be the
 * only good copy, and it stays. Returns 0 or TJ_EIO with err filled. */
static int keep_prev(int dirfd, const char *dir, char *err, size_t errlen)
{
    struct tj_ckpt_table cur;
    time_t mtime;
    int rc;

    tj_ckpt_table_init(&cur);
    rc = load_copy(dirfd, CKPT_FILE, &cur, &mtime, NULL, 0);
    tj_ckpt_table_fini(&cur);
    if (rc)
        return 0;
    /* DIR/checkpoints is valid from here on, so DIR/checkpoints.prev may be briefly absent. */
    if (unlinkat(dirfd, CKPT_PREV, 0) != 0 && errno != ENOENT) {
        say(err, errlen, "%s/" CKPT_PREV ": unlink: %s", dir, strerror(errno));
        return TJ_EIO;
    }
    if (linkat(dirfd, CKPT_FILE, dirfd, CKPT_PREV, 0) == 0)
        return 0;
    /* A file system without hard links: rename instead. Until the caller's rename, only
     * DIR/checkpoints.prev exists, and it is valid; tj_ckpt_load falls back to it. */
    if ((errno == EPERM || errno == EOPNOTSUPP || errno == ENOTSUP || errno == EMLINK) &&
        renameat(dirfd, CKPT_FILE, dirfd, CKPT_PREV) == 0)
        return 0;
    say(err, errlen, "%s/" CKPT_FILE ": link to " CKPT_PREV ": %s", dir, strerror(errno));
    return TJ_EIO;
}

/* The sequence, chosen so that at every instant (and after a crash at any point) at least one
 * of DIR/checkpoints and DIR/checkpoints.prev is a whole valid file:
 *   1. write DIR/checkpoints.tmp and fsync it: its bytes are on disk before any name points to
 *      them;
 *   2. if DIR/checkpoints exists and is valid (read and parsed again: after a fallback it may
 *      be the damaged copy), unlink DIR/checkpoints.prev and link the file as
 *      DIR/checkpoints.prev (a second name): DIR/checkpoints stays in place and valid. A damaged
 * DIR/checkpoints is not kept, and the old DIR/checkpoints.prev stays;
 *   3. rename DIR/checkpoints.tmp over DIR/checkpoints: atomic, the name holds the old file or
 *      the new one, both whole;
 *   4. fsync DIR, so that the names are durable.
 * The steps of 2 and 3 need no fsync between them: whichever of them a crash keeps,
 * DIR/checkpoints names a whole file (old or new) and DIR/checkpoints.prev, when there, the
 * old one. A failure before 3 removes the temporary file and leaves DIR/checkpoints as it was
 * (on a file system without hard links, where 2 renames, as DIR/checkpoints.prev);
 * a failing fsync of DIR in 4 returns TJ_EIO with the new file in place but maybe not durable.
 * One writer per DIR: two processes saving at once would share DIR/checkpoints.tmp. */
int tj_ckpt_save(const char *dir, const struct tj_ckpt_table *t, char *err, size_t errlen)
{
    struct tj_buf text;
    int dirfd = -1, rc;

    say(err, errlen, "%s", "");
    tj_buf_init(&text, CKPT_MAX_BYTES);
    rc = tj_ckpt_format(t, &text, err, errlen);
    if (rc)
        goto out_text;
    dirfd = open_dir(dir, err, errlen);
    if (dirfd < 0) {
        rc = TJ_EIO;
        goto out_text;
    }
    rc = write_tmp(dirfd, dir, &text, err, errlen);
    if (!rc)
        rc = keep_prev(dirfd, dir, err, errlen);
    if (!rc && renameat(dirfd, CKPT_TMP, dirfd, CKPT_FILE) != 0) {
        say(err, errlen, "%s/" CKPT_TMP ": rename to " CKPT_FILE ": %s", dir, strerror(errno));
        rc = TJ_EIO;
    }
    if (rc) {
        unlinkat(dirfd, CKPT_TMP, 0);
        goto out_dir;
    }
    if (fsync(dirfd) != 0) {
        say(err, errlen, "%s: fsync: %s", dir, strerror(errno));
        rc = TJ_EIO;
    }
out_dir:
    close(dirfd);
out_text:
    tj_buf_fini(&text);
    return rc;
}
