/* fuzz_checkpoint.c: libFuzzer target for the checkpoint file parser (tj_ckpt_parse) and writer
 * (tj_ckpt_format). The input is parsed as the text of a checkpoint file: a rejected text must
 * come with a reason and leave the table empty; an accepted one, written again, must be the
 * same bytes (the format has one spelling per table), and parsed again the same table, and
 * its prefixes must be rejected. So that mutations get past the checksum, the input is parsed
 * a second time with the checksum of its end line made right. The input is also read as a table:
 * split at NUL bytes into paths (any other byte may be in a path), with ids and offsets drawn from
 * the bytes, written, and parsed back to an equal table. Any violated property aborts. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tj_buf.h"
#include "tj_checkpoint.h"

#define MAX_PATHS 64

static bool tables_equal(const struct tj_ckpt_table *a, const struct tj_ckpt_table *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const struct tj_ckpt_entry *x = &a->v[i], *y = &b->v[i];
        if (x->id.dev != y->id.dev || x->id.ino != y->id.ino || x->id.fp_len != y->id.fp_len ||
            x->id.fp_hash != y->id.fp_hash || x->offset != y->offset ||
            strcmp(x->path, y->path) != 0)
            return false;
    }
    return true;
}

/* Parses s[0..n) (borrowed, exact size) into t; aborts unless the result is 0 or a rejection
 * with a reason and an empty table. */
static int parse_checked(const char *s, size_t n, struct tj_ckpt_table *t)
{
    char why[256];
    int rc = tj_ckpt_parse(s, n, t, why, sizeof(why));

    if (rc == TJ_EPARSE && (!why[0] || t->n != 0 || t->v != NULL)) {
        fprintf(stderr, "rejected with reason \"%s\" and %zu entries\n", why, t->n);
        abort();
    }
    if (rc == 0 && why[0]) {
        fprintf(stderr, "accepted with a reason \"%s\"\n", why);
        abort();
    }
    if (rc != 0 && rc != TJ_EPARSE && rc != TJ_ENOMEM)
        abort();
    return rc;
}

/* Writes t, parses the text back and checks it is t. Returns the text in out. */
static void round_trip(const struct tj_ckpt_table *t, struct tj_buf *out)
{
    struct tj_ckpt_table back;
    char err[256];
    char *exact;

    out->len = 0;
    if (tj_ckpt_format(t, out, err, sizeof(err)) != 0) {
        fprintf(stderr, "format: %s\n", err);
        abort();
    }
    /* An exact-size copy, so reads past the text's end are caught. */
    exact = malloc(out->len);
    memcpy(exact, out->data, out->len);
    tj_ckpt_table_init(&back);
    if (parse_checked(exact, out->len, &back) != 0 || !tables_equal(t, &back)) {
        fprintf(stderr, "written text does not read back:\n%.*s", (int)out->len, out->data);
        abort();
    }
    tj_ckpt_table_fini(&back);
    /* A cut file is never taken for a whole one. */
    for (size_t k = out->len - 1, step = 1; k > 0 && k < out->len; k -= step, step *= 2)
        if (parse_checked(exact, k, &back) != TJ_EPARSE)
            abort();
    tj_ckpt_table_fini(&back);
    free(exact);
}

static void parse_input(const uint8_t *data, size_t size, struct tj_buf *out)
{
    struct tj_ckpt_table t;

    tj_ckpt_table_init(&t);
    if (parse_checked((const char *)data, size, &t) == 0) {
        round_trip(&t, out);
        if (out->len != size || memcmp(out->data, data, size) != 0) {
            fprintf(stderr, "accepted text is not written back the same:\n%.*s", (int)out->len,
                    out->data);
            abort();
        }
    }
    tj_ckpt_table_fini(&t);
}

/* The input with the checksum of its end line made right, so that the fuzzer gets past it
 * and into the entry lines: the 16 bytes after "\nend <digits> " are rewritten, when there. */
static void parse_fixed(const uint8_t *data, size_t size, struct tj_buf *out)
{
    const uint8_t *e = memmem(data, size, "\nend ", 5);
    uint8_t *copy;
    size_t at;
    char hex[17];

    if (!e)
        return;
    at = (size_t)(e - data) + 5;
    while (at < size && data[at] >= '0' && data[at] <= '9')
        at++;
    if (size - at < 17 || data[at] != ' ')
        return;
    snprintf(hex, sizeof(hex), "%016" PRIx64, tj_fileid_hash(data, (size_t)(e - data) + 1));
    copy = malloc(size);
    memcpy(copy, data, size);
    memcpy(copy + at + 1, hex, 16);
    parse_input(copy, size, out);
    free(copy);
}

static void table_from_input(const uint8_t *data, size_t size, struct tj_buf *out)
{
    struct tj_ckpt_table t;
    size_t pos = 0;

    tj_ckpt_table_init(&t);
    for (size_t i = 0; i < MAX_PATHS && pos <= size; i++) {
        const uint8_t *nul = memchr(data + pos, '\0', size - pos);
        size_t len = nul ? (size_t)(nul - (data + pos)) : size - pos;
        uint64_t h = tj_fileid_hash(data + pos, len) ^ i;
        struct tj_fileid id = {.dev = h >> 32 ? h : i,
                               .ino = h * 31,
                               .fp_len = (uint32_t)(h % (TJ_FILEID_FP_MAX + 1)),
                               .fp_hash = h & 1 ? 0 : h};
        char *path = malloc(len + 1);
        memcpy(path, data + pos, len);
        path[len] = '\0';
        if (tj_ckpt_table_add(&t, &id, (int64_t)(h >> 1), path) != 0)
            abort();
        free(path);
        pos += len + 1;
    }
    round_trip(&t, out);
    tj_ckpt_table_fini(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tj_buf out;

    tj_buf_init(&out, 1u << 26);
    parse_input(data, size, &out);
    parse_fixed(data, size, &out);
    table_from_input(data, size, &out);
    tj_buf_fini(&out);
    return 0;
}
