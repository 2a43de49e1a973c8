/* test_checkpoint.c: parser/tj_checkpoint.h, file identities and the checkpoint file: the
 * text format (round trips of awkward paths, every rejection with its reason, a valid file cut
 * at every byte), the save sequence and its kept previous copy, and the fallbacks of the load.
 * Every test works in its own mkdtemp directory under /tmp and removes it. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tj_buf.h"
#include "tj_checkpoint.h"
#include "tj_test.h"

/* ---- helpers ---- */

struct tmp {
    char dir[64];
};

static bool tmp_make(struct tmp *t)
{
    strcpy(t->dir, "/tmp/tj_ckpt_test_XXXXXX");
    if (!mkdtemp(t->dir)) {
        fprintf(stderr, "  mkdtemp: %s\n", strerror(errno));
        return false;
    }
    return true;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    TJ_UNUSED(st);
    TJ_UNUSED(flag);
    TJ_UNUSED(ftw);
    return remove(path);
}

/* Removes the directory and everything in it. */
static void tmp_remove(struct tmp *t)
{
    if (nftw(t->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "  could not remove %s\n", t->dir);
}

/* dir/name into a static-free caller buffer. */
static const char *join(char *buf, size_t len, const char *dir, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
    return buf;
}

/* Replaces path (unlinked first: it may share its inode with checkpoints.prev) with s[0..n). */
static bool put_file(const char *path, const char *s, size_t n)
{
    int fd;
    bool ok;

    unlink(path);
    fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    ok = write(fd, s, n) == (ssize_t)n;
    return close(fd) == 0 && ok;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static struct tj_fileid make_id(uint64_t i)
{
    struct tj_fileid id = {.dev = 2049 + i,
                           .ino = 1000000 + i * 7919,
                           .fp_len = (uint32_t)(i * 37 % (TJ_FILEID_FP_MAX + 1)),
                           .fp_hash = 0};
    if (id.fp_len)
        id.fp_hash = tj_fileid_hash(&i, sizeof(i));
    return id;
}

static bool tables_equal(const struct tj_ckpt_table *a, const struct tj_ckpt_table *b)
{
    if (a->n != b->n) {
        fprintf(stderr, "  tables of %zu and %zu entries\n", a->n, b->n);
        return false;
    }
    for (size_t i = 0; i < a->n; i++) {
        const struct tj_ckpt_entry *x = &a->v[i], *y = &b->v[i];
        if (x->id.dev != y->id.dev || x->id.ino != y->id.ino || x->id.fp_len != y->id.fp_len ||
            x->id.fp_hash != y->id.fp_hash || x->offset != y->offset ||
            strcmp(x->path, y->path) != 0) {
            fprintf(stderr, "  entry %zu differs\n", i);
            return false;
        }
    }
    return true;
}

/* Paths that test the escaping: spaces, newline, %, controls, UTF-8, every byte, 4 KiB. */
static char all_bytes[256], long_path[4097];
static const char *const awkward[] = {
    "/var/lib/docker/containers/0123456789ab/0123456789ab-json.log",
    "/tmp/with space/and  two",
    "/tmp/new\nline\r\n",
    "/tmp/100%/%41%25%",
    "/tmp/caf\xC3\xA9/\xE2\x82\xAC/\xF0\x9F\x98\x80/bad\xFF\xC3",
    "/tmp/\x01\x7f\t\x1b[31m",
    "",
    " ",
    "%",
    "end 1 0000000000000000",
    all_bytes,
    long_path,
};

static void fill_awkward(void)
{
    for (int i = 1; i < 256; i++)
        all_bytes[i - 1] = (char)i;
    for (size_t i = 0; i < sizeof(long_path) - 1; i++)
        long_path[i] = "/a b%\n\xC3\xA9"[i % 8];
}

/* A table of n entries, offsets from `base`, paths from awkward[]. */
static void make_table(struct tj_ckpt_table *t, size_t n, int64_t base)
{
    fill_awkward();
    tj_ckpt_table_init(t);
    for (size_t i = 0; i < n; i++) {
        struct tj_fileid id = make_id(i);
        int rc = tj_ckpt_table_add(t, &id, base + (int64_t)i * 1000003,
                                   awkward[i % TJ_ARRAY_LEN(awkward)]);
        CHECK(rc == 0);
    }
}

/* The text of t (owned, free()). */
static char *format(const struct tj_ckpt_table *t, size_t *len)
{
    struct tj_buf b;
    char err[256];

    tj_buf_init(&b, 1u << 26);
    if (tj_ckpt_format(t, &b, err, sizeof(err)) != 0 || tj_buf_append(&b, "", 1) != 0) {
        fprintf(stderr, "  format: %s\n", err);
        tj_buf_fini(&b);
        return NULL;
    }
    *len = b.len - 1;
    return b.data;
}

/* Parses an exact-size copy of s[0..n) that ends where an unreadable page begins. */
static int parse(const char *s, size_t n, struct tj_ckpt_table *t, char *why, size_t whylen)
{
    char *g = tj_test_guarded_copy(s, n);
    int rc;

    if (!g)
        return -100;
    rc = tj_ckpt_parse(g, n, t, why, whylen);
    tj_test_guarded_free(g, n);
    return rc;
}

/* body + a correct end line for `count` entries (owned, free()). */
static char *with_end(const char *body, size_t count, size_t *len)
{
    size_t n = strlen(body);
    char *s = malloc(n + 64);

    memcpy(s, body, n);
    *len = n + (size_t)sprintf(s + n, "end %zu %016" PRIx64 "\n", count, tj_fileid_hash(body, n));
    return s;
}

static bool contains(const char *s, const char *want)
{
    if (strstr(s, want))
        return true;
    fprintf(stderr, "  \"%s\"\n  does not contain \"%s\"\n", s, want);
    return false;
}

static bool same_file_text(const char *path, const char *want, size_t n)
{
    size_t len = 0;
    char *got = tj_test_read_file(path, &len);
    bool ok = got && len == n && memcmp(got, want, n) == 0;

    free(got);
    return ok;
}

/* ---- file identities ---- */

static void test_fileid_hash(void)
{
    CHECK(tj_fileid_hash("", 0) == 0xcbf29ce484222325ULL);
    CHECK(tj_fileid_hash("a", 1) == 0xaf63dc4c8601ec8cULL);
    CHECK(tj_fileid_hash("foobar", 6) == 0x85944171f73967e8ULL);
}

static void test_fileid_same_file_matches(void)
{
    struct tmp d;
    char path[128];
    struct tj_fileid id;
    int fd, fd2;

    if (!tmp_make(&d))
        return;
    join(path, sizeof(path), d.dir, "log");
    CHECK(put_file(path, "first line\nsecond line\n", 23));
    fd = open(path, O_RDWR | O_APPEND);
    fd2 = open(path, O_RDONLY);
    CHECK(fd >= 0 && fd2 >= 0);
    CHECK(tj_fileid_from_fd(fd, &id) == 0);
    CHECK(id.fp_len == 23 && id.fp_hash == tj_fileid_hash("first line\nsecond line\n", 23));
    CHECK(tj_fileid_matches_fd(fd, &id));
    CHECK(tj_fileid_matches_fd(fd2, &id));
    /* Appending does not change the head. */
    CHECK(write(fd, "third\n", 6) == 6);
    CHECK(tj_fileid_matches_fd(fd2, &id));
    /* The file offset is not moved. */
    CHECK(lseek(fd2, 0, SEEK_CUR) == 0);
    /* An id that could not come from a file never matches. */
    struct tj_fileid bad = id;
    bad.fp_len = TJ_FILEID_FP_MAX + 1;
    CHECK(!tj_fileid_matches_fd(fd2, &bad));
    bad = id;
    bad.fp_len = 0;
    CHECK(!tj_fileid_matches_fd(fd2, &bad)); /* hash of no bytes must be 0 */
    bad.fp_hash = 0;
    CHECK(tj_fileid_matches_fd(fd2, &bad));
    close(fd);
    close(fd2);
    CHECK(tj_fileid_from_fd(-1, &id) == TJ_EIO);
    CHECK(!tj_fileid_matches_fd(-1, &id));
    tmp_remove(&d);
}

static void test_fileid_rewritten_does_not_match(void)
{
    struct tmp d;
    char path[128];
    struct tj_fileid id, id2;
    int fd;

    if (!tmp_make(&d))
        return;
    join(path, sizeof(path), d.dir, "log");
    fd = open(path, O_CREAT | O_RDWR, 0600);
    CHECK(fd >= 0 && write(fd, "hello world\n", 12) == 12);
    CHECK(tj_fileid_from_fd(fd, &id) == 0);
    /* Same inode, same size, other first bytes. */
    CHECK(ftruncate(fd, 0) == 0 && pwrite(fd, "HELLO world\n", 12, 0) == 12);
    CHECK(tj_fileid_from_fd(fd, &id2) == 0);
    CHECK(id2.ino == id.ino && id2.dev == id.dev && id2.fp_len == id.fp_len);
    CHECK(!tj_fileid_matches_fd(fd, &id));
    close(fd);
    /* Another file with the same bytes is another inode. */
    join(path, sizeof(path), d.dir, "copy");
    CHECK(put_file(path, "HELLO world\n", 12));
    fd = open(path, O_RDONLY);
    CHECK(fd >= 0 && !tj_fileid_matches_fd(fd, &id2));
    close(fd);
    tmp_remove(&d);
}

static void test_fileid_shorter_does_not_match(void)
{
    struct tmp d;
    char path[128], data[100];
    struct tj_fileid id;
    int fd;

    if (!tmp_make(&d))
        return;
    memset(data, 'x', sizeof(data));
    join(path, sizeof(path), d.dir, "log");
    CHECK(put_file(path, data, sizeof(data)));
    fd = open(path, O_RDWR);
    CHECK(fd >= 0 && tj_fileid_from_fd(fd, &id) == 0 && id.fp_len == 100);
    CHECK(ftruncate(fd, 99) == 0);
    CHECK(!tj_fileid_matches_fd(fd, &id));
    CHECK(ftruncate(fd, 0) == 0);
    CHECK(!tj_fileid_matches_fd(fd, &id));
    /* Written again with the same bytes it is, by content, the same file. */
    CHECK(pwrite(fd, data, sizeof(data), 0) == (ssize_t)sizeof(data));
    CHECK(tj_fileid_matches_fd(fd, &id));
    close(fd);
    tmp_remove(&d);
}

static void test_fileid_fp_len_grows(void)
{
    static const size_t sizes[] = {
        0, 1, 10, TJ_FILEID_FP_MAX - 1, TJ_FILEID_FP_MAX, TJ_FILEID_FP_MAX + 1, 3000};
    struct tmp d;
    char path[128], data[3000];
    struct tj_fileid first, id;
    size_t had = 0;
    int fd;

    if (!tmp_make(&d))
        return;
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i * 131 + 7);
    join(path, sizeof(path), d.dir, "log");
    fd = open(path, O_CREAT | O_RDWR | O_APPEND, 0600);
    CHECK(fd >= 0);
    CHECK(tj_fileid_from_fd(fd, &first) == 0 && first.fp_len == 0 && first.fp_hash == 0);
    for (size_t i = 0; i < TJ_ARRAY_LEN(sizes); i++) {
        size_t want = sizes[i] < TJ_FILEID_FP_MAX ? sizes[i] : TJ_FILEID_FP_MAX;
        CHECK(write(fd, data + had, sizes[i] - had) == (ssize_t)(sizes[i] - had));
        had = sizes[i];
        CHECK(tj_fileid_from_fd(fd, &id) == 0);
        CHECK(id.fp_len == want);
        CHECK(id.fp_hash == (want ? tj_fileid_hash(data, want) : 0));
        /* Every earlier, shorter id still matches the grown file. */
        CHECK(tj_fileid_matches_fd(fd, &first));
        CHECK(tj_fileid_matches_fd(fd, &id));
        if (sizes[i] == 10)
            first = id;
    }
    CHECK(first.fp_len == 10);
    close(fd);
    tmp_remove(&d);
}

/* ---- the table and the text ---- */

static void test_table_add(void)
{
    struct tj_ckpt_table t;
    struct tj_fileid id = make_id(1);
    char path[32];

    tj_ckpt_table_init(&t);
    for (int i = 0; i < 1000; i++) {
        snprintf(path, sizeof(path), "/p/%d", i);
        CHECK(tj_ckpt_table_add(&t, &id, i, path) == 0);
    }
    CHECK(t.n == 1000);
    CHECK(t.v[999].path != path);
    CHECK_STR(t.v[999].path, "/p/999");
    CHECK(t.v[500].offset == 500);
    CHECK(tj_ckpt_table_add(&t, &id, 1, NULL) == TJ_EINVAL && t.n == 1000);
    tj_ckpt_table_fini(&t);
    CHECK(t.n == 0 && t.v == NULL);
    tj_ckpt_table_fini(&t);
}

static void test_format_text(void)
{
    struct tj_ckpt_table t;
    struct tj_fileid id = {.dev = 2049, .ino = 131074, .fp_len = 5, .fp_hash = 0x1234abcd};
    struct tj_buf b;
    char err[256], want[512];
    size_t n;

    tj_ckpt_table_init(&t);
    CHECK(tj_ckpt_table_add(&t, &id, 42, "/a b/%\n/\xC3\xA9") == 0);
    tj_buf_init(&b, 1u << 20);
    CHECK(tj_buf_append(&b, "keep", 4) == 0);
    CHECK(tj_ckpt_format(&t, &b, err, sizeof(err)) == 0);
    n = (size_t)snprintf(want, sizeof(want), "%s",
                         "tailjet-checkpoints 1\n"
                         "2049 131074 5 000000001234abcd 42 /a%20b/%25%0A/%C3%A9\n");
    n += (size_t)snprintf(want + n, sizeof(want) - n, "end 1 %016" PRIx64 "\n",
                          tj_fileid_hash(want, n));
    /* Appended after what out held. */
    CHECK(b.len == 4 + n && memcmp(b.data, "keep", 4) == 0 && memcmp(b.data + 4, want, n) == 0);

    /* An entry that could not be read back is refused, and out is left as it was. */
    t.v[0].offset = -1;
    CHECK(tj_ckpt_format(&t, &b, err, sizeof(err)) == TJ_EINVAL);
    CHECK(contains(err, "negative offset -1"));
    t.v[0].offset = 0;
    t.v[0].id.fp_len = TJ_FILEID_FP_MAX + 1;
    CHECK(tj_ckpt_format(&t, &b, err, sizeof(err)) == TJ_EINVAL);
    CHECK(contains(err, "fingerprint of 1025 bytes"));
    CHECK(b.len == 4 + n);
    t.v[0].id.fp_len = 0;
    free(t.v[0].path);
    t.v[0].path = NULL;
    CHECK(tj_ckpt_format(&t, &b, err, sizeof(err)) == TJ_EINVAL);
    CHECK(contains(err, "checkpoint entry 0 has no path"));
    t.v[0].path = strdup("/p");
    /* A buffer cap is reported and undone. */
    t.v[0].id.fp_len = 0;
    tj_buf_fini(&b);
    tj_buf_init(&b, 30);
    CHECK(tj_buf_append(&b, "keep", 4) == 0);
    CHECK(tj_ckpt_format(&t, &b, err, sizeof(err)) == TJ_ENOSPC && b.len == 4);
    CHECK(contains(err, "buffer cap reached"));
    tj_buf_fini(&b);
    tj_ckpt_table_fini(&t);
}

static void test_round_trip_text(void)
{
    for (size_t n = 0; n <= 2 * TJ_ARRAY_LEN(awkward); n += 3) {
        struct tj_ckpt_table t, back;
        char why[256];
        size_t len = 0;
        char *text;

        make_table(&t, n, INT64_MAX - 100000000);
        text = format(&t, &len);
        CHECK(text != NULL);
        if (!text) {
            tj_ckpt_table_fini(&t);
            continue;
        }
        /* Pure printable ASCII but the line ends. */
        for (size_t i = 0; i < len; i++)
            CHECK(text[i] == '\n' || (text[i] >= ' ' && text[i] < 0x7f));
        tj_ckpt_table_init(&back);
        CHECK(parse(text, len, &back, why, sizeof(why)) == 0);
        CHECK_STR(why, "");
        CHECK(tables_equal(&t, &back));
        tj_ckpt_table_fini(&back);
        free(text);
        tj_ckpt_table_fini(&t);
    }
}

static void test_round_trip_files(void)
{
    struct tj_ckpt_table t, back;
    struct tmp d;
    char err[256], warn[512], path[128];
    struct stat st;

    if (!tmp_make(&d))
        return;
    make_table(&t, 2 * TJ_ARRAY_LEN(awkward), 0);
    CHECK(tj_ckpt_save(d.dir, &t, err, sizeof(err)) == 0);
    CHECK_STR(err, "");
    CHECK(stat(join(path, sizeof(path), d.dir, "checkpoints"), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(!exists(join(path, sizeof(path), d.dir, "checkpoints.tmp")));
    CHECK(!exists(join(path, sizeof(path), d.dir, "checkpoints.prev")));
    tj_ckpt_table_init(&back);
    CHECK(tj_ckpt_load(d.dir, &back, warn, sizeof(warn)) == 0);
    CHECK_STR(warn, "");
    CHECK(tables_equal(&t, &back));
    /* The table to load into must be empty. */
    CHECK(tj_ckpt_load(d.dir, &back, warn, sizeof(warn)) == TJ_EINVAL);
    tj_ckpt_table_fini(&back);
    tj_ckpt_table_fini(&t);
    tmp_remove(&d);
}

static void test_empty_table(void)
{
    struct tj_ckpt_table t, back;
    struct tmp d;
    char err[256], warn[512], path[128];
    size_t len = 0;
    char *want = with_end("tailjet-checkpoints 1\n", 0, &len);

    tj_ckpt_table_init(&t);
    tj_ckpt_table_init(&back);
    CHECK(parse(want, len, &back, err, sizeof(err)) == 0 && back.n == 0);
    if (tmp_make(&d)) {
        CHECK(tj_ckpt_save(d.dir, &t, err, sizeof(err)) == 0);
        CHECK(same_file_text(join(path, sizeof(path), d.dir, "checkpoints"), want, len));
        CHECK(tj_ckpt_load(d.dir, &back, warn, sizeof(warn)) == 0);
        CHECK(back.n == 0);
        CHECK_STR(warn, "");
        tmp_remove(&d);
    }
    tj_ckpt_table_fini(&back);
    free(want);
}

static void test_load_no_state(void)
{
    struct tj_ckpt_table t;
    struct tmp d;
    char warn[512] = "x", path[128];

    tj_ckpt_table_init(&t);
    if (!tmp_make(&d))
        return;
    CHECK(tj_ckpt_load(d.dir, &t, warn, sizeof(warn)) == TJ_ENOENT);
    CHECK_STR(warn, "");
    CHECK(tj_ckpt_load(join(path, sizeof(path), d.dir, "missing"), &t, warn, sizeof(warn)) ==
          TJ_ENOENT);
    CHECK(t.n == 0);
    /* A stale temporary file is not state. */
    CHECK(put_file(join(path, sizeof(path), d.dir, "checkpoints.tmp"), "junk", 4));
    CHECK(tj_ckpt_load(d.dir, &t, warn, sizeof(warn)) == TJ_ENOENT);
    /* DIR that is not a directory cannot be read. */
    CHECK(tj_ckpt_load(path, &t, warn, sizeof(warn)) == TJ_EIO);
    CHECK(contains(warn, "checkpoints.tmp: Not a directory"));
    tmp_remove(&d);
}

static void test_parse_rejects(void)
{
    static const char H[] = "tailjet-checkpoints 1\n";
    static const char E[] = "1 2 3 00000000000000ab 4 /p\n"; /* a valid entry */
    static const struct {
        const char *body;
        size_t count;
        const char *why;
    } cases[] = {
        {"tailjet-checkpoints 2\n", 0, "unsupported version 2 (this tailjet reads version 1)"},
        {"tailjet-checkpoints 01\n", 0, "not a tailjet checkpoint file"},
        {"tailjet-checkpoints 1 \n", 0, "not a tailjet checkpoint file"},
        {"tailjet-checkpoint 1\n", 0, "not a tailjet checkpoint file"},
        {"TAILJET-checkpoints 1\n", 0, "not a tailjet checkpoint file"},
        {"1 2 3 00000000000000ab -4 /p\n", 1, "line 2: negative offset"},
        {"01 2 3 00000000000000ab 4 /p\n", 1, "line 2: bad device number"},
        {"18446744073709551616 2 3 00000000000000ab 4 /p\n", 1, "line 2: bad device number"},
        {"+1 2 3 00000000000000ab 4 /p\n", 1, "line 2: bad device number"},
        {"1  2 3 00000000000000ab 4 /p\n", 1, "line 2: bad inode number"},
        {"1 2\n", 1, "line 2: bad inode number"},
        {"1 2 1025 00000000000000ab 4 /p\n", 1, "line 2: fingerprint length over 1024"},
        {"1 2 x 00000000000000ab 4 /p\n", 1, "line 2: bad fingerprint length"},
        {"1 2 3 00000000000000AB 4 /p\n", 1, "line 2: bad fingerprint hash"},
        {"1 2 3 0000000000000ab 4 /p\n", 1, "line 2: bad fingerprint hash"},
        {"1 2 3 000000000000000ab 4 /p\n", 1, "line 2: bad fingerprint hash"},
        {"1 2 3 00000000000000ab 9223372036854775808 /p\n", 1, "line 2: offset out of range"},
        {"1 2 3 00000000000000ab 4x /p\n", 1, "line 2: bad offset"},
        {"1 2 3 00000000000000ab 4\n", 1, "line 2: bad offset"},
        {"1 2 3 00000000000000ab 4 /p\t\n", 1, "line 2: byte 0x09 in the path is not escaped"},
        {"1 2 3 00000000000000ab 4 /\xC3\xA9\n", 1, "line 2: byte 0xc3 in the path"},
        {"1 2 3 00000000000000ab 4 /p\r\n", 1, "line 2: byte 0x0d in the path"},
        {"1 2 3 00000000000000ab 4 /p%00\n", 1, "line 2: %00 in the path is a NUL byte"},
        {"1 2 3 00000000000000ab 4 /p%41\n", 1, "line 2: %41 in the path is not escaped by"},
        {"1 2 3 00000000000000ab 4 /p%0a\n", 1, "line 2: bad % escape in the path"},
        {"1 2 3 00000000000000ab 4 /p%2\n", 1, "line 2: bad % escape in the path"},
        {"1 2 3 00000000000000ab 4 /p%\n", 1, "line 2: bad % escape in the path"},
        {"\n", 1, "line 2: bad device number"},
        {"1 2 3 00000000000000ab 4 /p\n1 2 3 00000000000000ab 4 /p\nx\n", 3,
         "line 4: bad device number"},
        {"1 2 3 00000000000000ab 4 /p\n", 2, "the end line counts 2 entries, the file holds 1"},
        {"1 2 3 00000000000000ab 4 /p\n", 0, "the end line counts 0 entries, the file holds 1"},
    };
    struct tj_ckpt_table t;
    char why[256], body[256];

    tj_ckpt_table_init(&t);
    for (size_t i = 0; i < TJ_ARRAY_LEN(cases); i++) {
        size_t len = 0;
        char *text;
        /* Entry cases come after the first line, first-line cases replace it. */
        bool first = strncasecmp(cases[i].body, "tailjet-", 8) == 0;
        snprintf(body, sizeof(body), "%s%s", first ? "" : H, cases[i].body);
        text = with_end(body, cases[i].count, &len);
        CHECK(parse(text, len, &t, why, sizeof(why)) == TJ_EPARSE);
        CHECK(t.n == 0 && contains(why, cases[i].why));
        free(text);
    }

    /* Envelopes: the end line and what may follow it. */
    static const struct {
        const char *text;
        const char *why;
    } raw[] = {
        {"", "empty file"},
        {"x", "not a tailjet checkpoint file"},
        {"tailjet", "truncated (no end line)"},
        {"tailjet-checkpoints 1", "truncated (no end line)"},
        {"tailjet-checkpoints 1\n", "truncated (no end line)"},
        {"tailjet-checkpoints 1\nend", "truncated (no end line)"},
        {"tailjet-checkpoints 1\nend 0 cbf29ce484222325", "truncated (no end line)"},
        {"tailjet-checkpoints 1\nend 0 cbf29ce48422232\n", "bad end line"},
        {"tailjet-checkpoints 1\nend 0 cbf29ce484222325 \n", "bad end line"},
        {"tailjet-checkpoints 1\nend -0 cbf29ce484222325\n", "bad end line"},
        {"tailjet-checkpoints 1\nend 0 0000000000000000\n",
         "checksum mismatch (the end line says 0000000000000000, the content hashes to "},
        {"tailjet-checkpoints 1\nend 0 0000000000000000\n\n", "1 bytes after the end line"},
        {"tailjet-checkpoints 1\nend 0 0000000000000000\nend 0 0000000000000000\n",
         "23 bytes after the end line"},
    };
    for (size_t i = 0; i < TJ_ARRAY_LEN(raw); i++) {
        CHECK(parse(raw[i].text, strlen(raw[i].text), &t, why, sizeof(why)) == TJ_EPARSE);
        CHECK(t.n == 0 && contains(why, raw[i].why));
    }

    /* A valid text after all that, and the same with a byte flipped. */
    size_t len = 0;
    char *text;
    snprintf(body, sizeof(body), "%s%s", H, E);
    text = with_end(body, 1, &len);
    CHECK(parse(text, len, &t, why, sizeof(why)) == 0 && t.n == 1);
    CHECK_STR(why, "");
    tj_ckpt_table_fini(&t);
    text[sizeof(H) - 1 + 12] ^= 1;
    CHECK(parse(text, len, &t, why, sizeof(why)) == TJ_EPARSE);
    CHECK(contains(why, "checksum mismatch"));
    /* The table must be empty; a full one is not touched. */
    struct tj_fileid id = make_id(1);
    CHECK(tj_ckpt_table_add(&t, &id, 1, "/x") == 0);
    CHECK(parse(text, len, &t, why, sizeof(why)) == TJ_EINVAL && t.n == 1);
    tj_ckpt_table_fini(&t);
    free(text);
}

/* Every proper prefix of a valid file is refused with a reason; saved as DIR/checkpoints, the
 * load falls back to DIR/checkpoints.prev. */
static void test_truncated_every_byte(void)
{
    struct tj_ckpt_table a, b, t;
    struct tmp d;
    char err[256], warn[1024], why[256], path[128], want[256];
    size_t len = 0;
    char *text;

    if (!tmp_make(&d))
        return;
    make_table(&a, 3, 100);
    make_table(&b, 5, 200);
    tj_ckpt_table_init(&t);
    text = format(&b, &len);
    CHECK(text && tj_ckpt_save(d.dir, &a, err, sizeof(err)) == 0);
    CHECK(text && tj_ckpt_save(d.dir, &b, err, sizeof(err)) == 0);
    join(path, sizeof(path), d.dir, "checkpoints");
    snprintf(want, sizeof(want), "; using %s/checkpoints.prev from 20", d.dir);
    for (size_t k = 0; text && k < len; k++) {
        int rc = parse(text, k, &t, why, sizeof(why));
        CHECK(rc == TJ_EPARSE && t.n == 0 && why[0]);
        if (rc != TJ_EPARSE) {
            fprintf(stderr, "  prefix of %zu bytes of %zu\n", k, len);
            tj_ckpt_table_fini(&t);
            break;
        }
        CHECK(put_file(path, text, k));
        warn[0] = '\0';
        CHECK(tj_ckpt_load(d.dir, &t, warn, sizeof(warn)) == 0);
        CHECK(tables_equal(&t, &a) && strstr(warn, want) && strstr(warn, path) == warn);
        tj_ckpt_table_fini(&t);
    }
    /* The whole file is good. */
    CHECK(text && put_file(path, text, len));
    CHECK(tj_ckpt_load(d.dir, &t, warn, sizeof(warn)) == 0 && tables_equal(&t, &b));
    CHECK_STR(warn, "");
    tj_ckpt_table_fini(&t);
    free(text);
    tj_ckpt_table_fini(&b);
    tj_ckpt_table_fini(&a);
    tmp_remove(&d);
}

static void test_bad_checksum(void)
{
    struct tj_ckpt_table a, t;
    char why[256];
    size_t len = 0;
    char *text;

    make_table(&a, 4, 0);
    tj_ckpt_table_init(&t);
    text = format(&a, &len);
    CHECK(text != NULL);
    /* Each byte before the end line, changed, is caught (by the checksum or the syntax). */
    for (size_t i = 0; text && i < len; i++) {
        char was = text[i];
        text[i] = was == '1' ? '2' : '1';
        CHECK(parse(text, len, &t, why, sizeof(why)) == TJ_EPARSE && why[0] && t.n == 0);
        tj_ckpt_table_fini(&t);
        text[i] = was;
    }
    /* A digit changed in an offset is a checksum mismatch. */
    char *sp = text ? strchr(text, '\n') : NULL;
    for (int f = 0; sp && f < 4; f++)
        sp = strchr(sp + 1, ' ');
    if (sp) {
        sp[1] = sp[1] == '9' ? '8' : (char)(sp[1] + 1);
        CHECK(parse(text, len, &t, why, sizeof(why)) == TJ_EPARSE);
        CHECK(contains(why, "checksum mismatch"));
    }
    free(text);
    tj_ckpt_table_fini(&a);
}

/* A state directory and three tables a, b, c (3, 4 and 5 entries), t empty for loads, and the
 * paths of DIR/checkpoints and DIR/checkpoints.prev. */
struct three {
    struct tmp d;
    struct tj_ckpt_table a, b, c, t;
    char cur[128], prev[128];
};

static bool three_make(struct three *x)
{
    if (!tmp_make(&x->d))
        return false;
    make_table(&x->a, 3, 1);
    make_table(&x->b, 4, 2);
    make_table(&x->c, 5, 3);
    tj_ckpt_table_init(&x->t);
    join(x->cur, sizeof(x->cur), x->d.dir, "checkpoints");
    join(x->prev, sizeof(x->prev), x->d.dir, "checkpoints.prev");
    return true;
}

static void three_free(struct three *x)
{
    tj_ckpt_table_fini(&x->t);
    tj_ckpt_table_fini(&x->c);
    tj_ckpt_table_fini(&x->b);
    tj_ckpt_table_fini(&x->a);
    tmp_remove(&x->d);
}

static void test_fallback_to_prev(void)
{
    struct three x;
    char err[256], warn[1024], want[256];
    size_t len = 0;
    char *text_b;

    if (!three_make(&x))
        return;
    text_b = format(&x.b, &len);
    CHECK(tj_ckpt_save(x.d.dir, &x.a, err, sizeof(err)) == 0);
    CHECK(tj_ckpt_save(x.d.dir, &x.b, err, sizeof(err)) == 0);
    CHECK(tj_ckpt_save(x.d.dir, &x.c, err, sizeof(err)) == 0);
    /* prev holds the save before the last one. */
    CHECK(text_b && same_file_text(x.prev, text_b, len));

    /* A damaged DIR/checkpoints: DIR/checkpoints.prev is used, and the warning says why. */
    CHECK(put_file(x.cur, "tailjet-checkpoints 1\n1 2 3", 27));
    CHECK(tj_ckpt_load(x.d.dir, &x.t, warn, sizeof(warn)) == 0);
    CHECK(tables_equal(&x.t, &x.b));
    snprintf(want, sizeof(want), "%s/checkpoints: truncated (no end line); using %s/", x.d.dir,
             x.d.dir);
    CHECK(contains(warn, want));
    CHECK(contains(warn, "checkpoints.prev from 20"));
    CHECK(warn[strlen(warn) - 1] == 'Z');
    tj_ckpt_table_fini(&x.t);

    /* A missing DIR/checkpoints (a crash within a rename fallback, a hand): the same. */
    CHECK(unlink(x.cur) == 0);
    CHECK(tj_ckpt_load(x.d.dir, &x.t, warn, sizeof(warn)) == 0);
    CHECK(tables_equal(&x.t, &x.b));
    snprintf(want, sizeof(want), "%s/checkpoints: missing; using %s/checkpoints.prev", x.d.dir,
             x.d.dir);
    CHECK(contains(warn, want));
    tj_ckpt_table_fini(&x.t);

    /* DIR/checkpoints that is not a file. */
    CHECK(mkdir(x.cur, 0700) == 0);
    CHECK(tj_ckpt_load(x.d.dir, &x.t, warn, sizeof(warn)) == 0);
    CHECK(tables_equal(&x.t, &x.b) && contains(warn, "checkpoints: not a regular file; using"));
    tj_ckpt_table_fini(&x.t);
    CHECK(rmdir(x.cur) == 0);

    /* A FIFO does not hang the load. */
    CHECK(mkfifo(x.cur, 0600) == 0);
    CHECK(tj_ckpt_load(x.d.dir, &x.t, warn, sizeof(warn)) == 0);
    CHECK(tables_equal(&x.t, &x.b) && contains(warn, "checkpoints: not a regular file; using"));
    tj_ckpt_table_fini(&x.t);
    CHECK(unlink(x.cur) == 0);

    /* A file over the cap is not read (a sparse one: nothing is written). */
    int fd = open(x.cur, O_CREAT | O_WRONLY, 0600);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)65 << 20) == 0);
    close(fd);
    CHECK(tj_ckpt_load(x.d.dir, &x.t, warn, sizeof(warn)) == 0);
    CHECK(tables_equal(&x.t, &x.b) &&
          contains(warn, "checkpoints: 68157440 bytes, over the cap of"));
    tj_ckpt_table_fini(&x.t);

    free(text_b);
    three_free(&x);
}

static void test_both_corrupt(void)
{
    struct tj_ckpt_table a, t;
    struct tmp d;
    char err[256], warn[1024], cur[128], prev[128], want[512];

    if (!tmp_make(&d))
        return;
    make_table(&a, 3, 1);
    tj_ckpt_table_init(&t);
    join(cur, sizeof(cur), d.dir, "checkpoints");
    join(prev, sizeof(prev), d.dir, "checkpoints.prev");

    /* Damaged, and no previous copy. */
    CHECK(put_file(cur, "garbage\n", 8));
    CHECK(tj_ckpt_load(d.dir, &t, warn, sizeof(warn)) == TJ_EPARSE && t.n == 0);
    snprintf(want, sizeof(want),
             "%s/checkpoints: not a tailjet checkpoint file (bad first line); "
             "%s/checkpoints.prev: missing",
             d.dir, d.dir);
    CHECK_STR(warn, want);

    /* Both damaged. */
    CHECK(put_file(prev, "tailjet-checkpoints 7\n", 22));
    CHECK(tj_ckpt_load(d.dir, &t, warn, sizeof(warn)) == TJ_EPARSE && t.n == 0);
    snprintf(want, sizeof(want),
             "%s/checkpoints: not a tailjet checkpoint file (bad first line); "
             "%s/checkpoints.prev: unsupported version 7 (this tailjet reads version 1)",
             d.dir, d.dir);
    CHECK_STR(warn, want);

    /* Missing, and the previous copy damaged. */
    CHECK(unlink(cur) == 0);
    CHECK(tj_ckpt_load(d.dir, &t, warn, sizeof(warn)) == TJ_EPARSE && t.n == 0);
    CHECK(contains(warn, "checkpoints: missing; "));

    /* A save then puts a good DIR/checkpoints, and keeps the damaged prev out of the way. */
    CHECK(tj_ckpt_save(d.dir, &a, err, sizeof(err)) == 0);
    CHECK(tj_ckpt_load(d.dir, &t, warn, sizeof(warn)) == 0 && tables_equal(&t, &a));
    CHECK_STR(warn, "");
    tj_ckpt_table_fini(&t);
    tj_ckpt_table_fini(&a);
    tmp_remove(&d);
}

/* After a fallback, DIR/checkpoints is the damaged copy: a save must not make it the previous
 * copy, which would leave no good file until the rename. */
static void test_save_keeps_good_prev(void)
{
    struct three x;
    char err[256], warn[1024];
    size_t len = 0;
    char *text_a;

    if (!three_make(&x))
        return;
    text_a = format(&x.a, &len);
    CHECK(tj_ckpt_save(x.d.dir, &x.a, err, sizeof(err)) == 0);
    CHECK(tj_ckpt_save(x.d.dir, &x.b, err, sizeof(err)) == 0);
    CHECK(put_file(x.cur, "tailjet-checkpoints 1\n", 22));
    CHECK(tj_ckpt_save(x.d.dir, &x.c, err, sizeof(err)) == 0);
    CHECK(text_a && same_file_text(x.prev, text_a, len));
    CHECK(tj_ckpt_load(x.d.dir, &x.t, warn, sizeof(warn)) == 0 && tables_equal(&x.t, &x.c));
    tj_ckpt_table_fini(&x.t);
    CHECK(put_file(x.cur, "x", 1));
    CHECK(tj_ckpt_load(x.d.dir, &x.t, warn, sizeof(warn)) == 0 && tables_equal(&x.t, &x.a));
    free(text_a);
    three_free(&x);
}

static void test_save_creates_dir(void)
{
    struct tj_ckpt_table a, t;
    struct tmp d;
    char err[256], warn[512], sub[128], deep[160], file[160];
    struct stat st;

    if (!tmp_make(&d))
        return;
    make_table(&a, 2, 5);
    tj_ckpt_table_init(&t);
    join(sub, sizeof(sub), d.dir, "state");
    CHECK(tj_ckpt_save(sub, &a, err, sizeof(err)) == 0);
    CHECK(stat(sub, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
    CHECK(tj_ckpt_load(sub, &t, warn, sizeof(warn)) == 0 && tables_equal(&t, &a));
    tj_ckpt_table_fini(&t);

    /* One level only; the error names the path. */
    join(deep, sizeof(deep), d.dir, "no/such");
    CHECK(tj_ckpt_save(deep, &a, err, sizeof(err)) == TJ_EIO);
    CHECK(contains(err, deep) && contains(err, "No such file or directory"));
    /* DIR that is a file. */
    join(file, sizeof(file), sub, "checkpoints");
    CHECK(tj_ckpt_save(file, &a, err, sizeof(err)) == TJ_EIO);
    CHECK(contains(err, "Not a directory"));
    tj_ckpt_table_fini(&a);
    tmp_remove(&d);
}

/* A table that could not be read back is refused before anything is written. */
static void test_save_rejects_bad_entry(void)
{
    struct tj_ckpt_table a, t;
    struct tmp d;
    char err[256], warn[512], path[128];

    if (!tmp_make(&d))
        return;
    make_table(&a, 3, 5);
    tj_ckpt_table_init(&t);
    CHECK(tj_ckpt_save(d.dir, &a, err, sizeof(err)) == 0);
    a.v[1].offset = -7;
    CHECK(tj_ckpt_save(d.dir, &a, err, sizeof(err)) == TJ_EINVAL);
    CHECK(contains(err, "checkpoint entry 1 (inode 1007919) has a negative offset -7"));
    CHECK(!exists(join(path, sizeof(path), d.dir, "checkpoints.tmp")));
    CHECK(!exists(join(path, sizeof(path), d.dir, "checkpoints.prev")));
    a.v[1].offset = 5 + 1000003;
    CHECK(tj_ckpt_load(d.dir, &t, warn, sizeof(warn)) == 0 && tables_equal(&t, &a));
    tj_ckpt_table_fini(&t);
    tj_ckpt_table_fini(&a);
    tmp_remove(&d);
}

/* Loads DIR and checks it holds exactly `want`. */
static bool holds(const char *dir, const struct tj_ckpt_table *want)
{
    struct tj_ckpt_table t;
    char warn[512];
    bool ok;

    tj_ckpt_table_init(&t);
    ok = tj_ckpt_load(dir, &t, warn, sizeof(warn)) == 0 && !warn[0] && tables_equal(&t, want);
    tj_ckpt_table_fini(&t);
    return ok;
}

/* Each step of the save failing: TJ_EIO, the path in err, no temporary file left behind (where
 * it is a file), and the old DIR/checkpoints in place. */
static void test_save_failures(void)
{
    struct tj_ckpt_table a, b;
    struct tmp d;
    char err[512], tmp[128], prev[128], sub[160];
    struct rlimit was, small;

    if (!tmp_make(&d))
        return;
    make_table(&a, 3, 1);
    make_table(&b, 2 * TJ_ARRAY_LEN(awkward), 2);
    join(tmp, sizeof(tmp), d.dir, "checkpoints.tmp");
    join(prev, sizeof(prev), d.dir, "checkpoints.prev");
    CHECK(tj_ckpt_save(d.dir, &a, err, sizeof(err)) == 0);

    /* The temporary file cannot be opened. */
    CHECK(mkdir(tmp, 0700) == 0);
    CHECK(tj_ckpt_save(d.dir, &b, err, sizeof(err)) == TJ_EIO);
    CHECK(contains(err, tmp) && contains(err, "open: Is a directory"));
    CHECK(rmdir(tmp) == 0 && holds(d.dir, &a));

    /* A write fails (file size limit: EFBIG instead of SIGXFSZ). */
    CHECK(getrlimit(RLIMIT_FSIZE, &was) == 0);
    small = was;
    small.rlim_cur = 1000;
    signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
    CHECK(tj_ckpt_save(d.dir, &b, err, sizeof(err)) == TJ_EIO);
    CHECK(setrlimit(RLIMIT_FSIZE, &was) == 0);
    signal(SIGXFSZ, SIG_DFL);
    CHECK(contains(err, "checkpoints.tmp: write: File too large"));
    CHECK(!exists(tmp) && holds(d.dir, &a));

    /* The previous copy cannot be replaced. */
    join(sub, sizeof(sub), prev, "x");
    CHECK(mkdir(prev, 0700) == 0 && mkdir(sub, 0700) == 0);
    CHECK(tj_ckpt_save(d.dir, &b, err, sizeof(err)) == TJ_EIO);
    CHECK(contains(err, prev) && contains(err, "unlink"));
    CHECK(!exists(tmp) && holds(d.dir, &a));
    CHECK(rmdir(sub) == 0 && rmdir(prev) == 0);

    /* The rename fails (DIR/checkpoints is a directory: not valid, so not kept either). */
    join(sub, sizeof(sub), d.dir, "checkpoints");
    CHECK(unlink(sub) == 0 && mkdir(sub, 0700) == 0);
    join(sub, sizeof(sub), d.dir, "checkpoints/x");
    CHECK(mkdir(sub, 0700) == 0);
    CHECK(tj_ckpt_save(d.dir, &b, err, sizeof(err)) == TJ_EIO);
    CHECK(contains(err, "rename to checkpoints"));
    CHECK(!exists(tmp) && !exists(prev));

    tj_ckpt_table_fini(&b);
    tj_ckpt_table_fini(&a);
    tmp_remove(&d);
}

static const struct tj_test tests[] = {
    {"fileid_hash", test_fileid_hash},
    {"fileid_same_file_matches", test_fileid_same_file_matches},
    {"fileid_rewritten_does_not_match", test_fileid_rewritten_does_not_match},
    {"fileid_shorter_does_not_match", test_fileid_shorter_does_not_match},
    {"fileid_fp_len_grows", test_fileid_fp_len_grows},
    {"table_add", test_table_add},
    {"format_text", test_format_text},
    {"round_trip_text", test_round_trip_text},
    {"round_trip_files", test_round_trip_files},
    {"empty_table", test_empty_table},
    {"load_no_state", test_load_no_state},
    {"parse_rejects", test_parse_rejects},
    {"truncated_every_byte", test_truncated_every_byte},
    {"bad_checksum", test_bad_checksum},
    {"fallback_to_prev", test_fallback_to_prev},
    {"both_corrupt", test_both_corrupt},
    {"save_keeps_good_prev", test_save_keeps_good_prev},
    {"save_creates_dir", test_save_creates_dir},
    {"save_rejects_bad_entry", test_save_rejects_bad_entry},
    {"save_failures", test_save_failures},
};

int main(int argc, char **argv)
{
    return tj_test_main(tests, TJ_ARRAY_LEN(tests), argc, argv);
}
