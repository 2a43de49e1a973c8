/* fuzz_jsonfile.c: libFuzzer target for the json-file decoder and the assembler. The input is
 * decoded as one json-file line, then fed split at '\n' to assemblers of each format (with and
 * without a multiline regex, with a small and a large line cap, through a reader that cuts long
 * lines). Every event is encoded as a record, and the record must be one line of strict JSON:
 * the encoder is what stands between outside bytes and Kafka or Elasticsearch. Any violated
 * property aborts. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "tj_assemble.h"
#include "tj_jsonfile.h"
#include "tj_record.h"

/* An escaped form given along with a text must be printable ASCII JSON string content that
 * decodes to exactly that text: records copy it instead of the text. */
static void check_json_form(struct tj_slice json, struct tj_slice text)
{
    char *q, *out;
    const char *cur, *why = NULL;
    size_t n = 0;

    if (!json.len)
        return;
    for (size_t i = 0; i < json.len; i++)
        if ((unsigned char)json.ptr[i] < 0x20 || (unsigned char)json.ptr[i] >= 0x80)
            abort();
    q = malloc(json.len + 2);
    out = malloc(json.len + 2);
    q[0] = '"';
    memcpy(q + 1, json.ptr, json.len);
    q[json.len + 1] = '"';
    cur = q;
    if (tj_jsonfile_unescape(&cur, q + json.len + 2, out, &n, &why) != 0 ||
        cur != q + json.len + 2 || n != text.len || memcmp(out, text.ptr, n) != 0) {
        fprintf(stderr, "escaped form \"%.*s\" is not the text \"%.*s\"\n", (int)json.len, json.ptr,
                (int)text.len, text.ptr);
        abort();
    }
    free(out);
    free(q);
}

/* ---- a plain reference for the string unescaper ---- */

static int ref_hex4(const char *p, const char *end, unsigned *v)
{
    *v = 0;
    if (end - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16;
        if (d == 16)
            return -1;
        *v = *v << 4 | d;
    }
    return 0;
}

static size_t ref_utf8(char *w, unsigned cp)
{
    if (cp < 0x80) {
        w[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        w[0] = (char)(0xC0 | cp >> 6);
        w[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        w[0] = (char)(0xE0 | cp >> 12);
        w[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        w[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    w[0] = (char)(0xF0 | cp >> 18);
    w[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    w[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    w[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* One byte at a time, the rules tj_jsonfile_unescape documents: the same result, the same
 * error text. *clean as the decoder computes it (no raw control or non-ASCII byte, no lone
 * surrogate). */
static int ref_unescape(const char **cursor, const char *end, char *out, size_t *outlen,
                        bool *clean, const char **why)
{
    const char *p = *cursor + 1;
    size_t n = 0;
    unsigned cp, lo;

    *clean = true;
    for (;;) {
        if (p >= end) {
            *why = "unterminated string";
            return -1;
        }
        char ch = *p++;
        if (ch == '"') {
            *cursor = p;
            *outlen = n;
            return 0;
        }
        if (ch != '\\') {
            if ((unsigned char)ch < 0x20 || (unsigned char)ch >= 0x80)
                *clean = false;
            out[n++] = ch;
            continue;
        }
        if (p >= end) {
            *why = "string ends inside an escape";
            return -1;
        }
        switch (ch = *p++) {
        case '"':
        case '\\':
        case '/':
            out[n++] = ch;
            break;
        case 'b':
            out[n++] = '\b';
            break;
        case 'f':
            out[n++] = '\f';
            break;
        case 'n':
            out[n++] = '\n';
            break;
        case 'r':
            out[n++] = '\r';
            break;
        case 't':
            out[n++] = '\t';
            break;
        case 'u':
            if (ref_hex4(p, end, &cp)) {
                *why = "bad \\u escape";
                return -1;
            }
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
                ref_hex4(p + 2, end, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            } else if (cp >= 0xD800 && cp <= 0xDFFF) {
                cp = 0xFFFD;
                *clean = false;
            }
            n += ref_utf8(out + n, cp);
            break;
        default:
            *why = "unknown escape";
            return -1;
        }
    }
}

/* The unescaper against the reference, on the string at s (its opening quote). */
static void check_unescape(const char *s, const char *end)
{
    size_t cap = (size_t)(end - s), n = 0, rn = 0;
    char *w = malloc(cap ? cap : 1), *r = malloc(cap ? cap : 1);
    const char *cur = s, *rcur = s, *why = NULL, *rwhy = NULL;
    bool clean;
    int rc = tj_jsonfile_unescape(&cur, end, w, &n, &why);
    int rrc = ref_unescape(&rcur, end, r, &rn, &clean, &rwhy);

    if ((rc == 0) != (rrc == 0) || (rc && strcmp(why, rwhy) != 0) ||
        (rc == 0 && (cur != rcur || n != rn || memcmp(w, r, n) != 0))) {
        fprintf(stderr, "unescape differs from the reference: rc %d/%d why %s/%s n %zu/%zu\n", rc,
                rrc, rc ? why : "-", rrc ? rwhy : "-", n, rn);
        abort();
    }
    free(r);
    free(w);
}

/* The decoded "log" text and whether its escaped form was kept, against the reference, for a
 * line that starts {"log":" and names "log" once (so that string is the one decoded). */
static void check_log(const char *line, size_t size, const struct tj_jsonfile_entry *e)
{
    static const char head[] = "{\"log\":\"";
    const char *cur = line + sizeof(head) - 2;
    char *r;
    size_t rn = 0;
    bool clean;
    const char *why;

    if (size < sizeof(head) - 1 || memcmp(line, head, sizeof(head) - 1) != 0)
        return;
    for (size_t i = 1; i + 5 <= size; i++)
        if (memcmp(line + i, "\"log\"", 5) == 0 && i != 1)
            return;
    r = malloc(size);
    if (ref_unescape(&cur, line + size, r, &rn, &clean, &why) != 0) {
        fprintf(stderr, "decoded a log string the reference rejects: %s\n", why);
        abort();
    }
    bool nl = rn && r[rn - 1] == '\n';
    if (nl)
        rn--;
    if (nl && rn && r[rn - 1] == '\r')
        rn--;
    if (e->log.len != rn || memcmp(e->log.ptr, r, rn) != 0 || e->partial == nl ||
        (e->log_json.len && !clean)) {
        fprintf(stderr, "decoded log differs from the reference\n");
        abort();
    }
    free(r);
}

/* ---- state built once ---- */

static struct tj_shape *shape;
static struct tj_meta meta;
static struct tj_grok_lib *lib;
static struct tj_grok *first_line;
static struct tj_matcher *matcher;

static void init_once(void)
{
    char err[256];

    if (shape)
        return;
    shape = tj_shape_create(NULL, err, sizeof(err));
    lib = tj_grok_lib_create();
    matcher = tj_matcher_create(&TJ_MATCH_LIMITS_DEFAULT);
    if (!shape || !lib || !matcher) {
        fprintf(stderr, "fuzz setup: %s\n", err);
        abort();
    }
    /* A line that does not start with white space starts an event (stack traces). */
    first_line = tj_grok_compile(lib, "^\\S", 3, err, sizeof(err));
    if (!first_line) {
        fprintf(stderr, "fuzz setup: %s\n", err);
        abort();
    }
    tj_meta_init(&meta);
    tj_meta_set(&meta, TJ_META_CONTAINER_ID, "0123456789ab", 12);
    tj_meta_set(&meta, TJ_META_CONTAINER_NAME, "web\"1\\", 6);
    tj_meta_set(&meta, TJ_META_FILE_PATH, "/var/lib/docker/x-json.log", 26);
}

/* ---- one run ---- */

struct run {
    struct tj_buf out;
    size_t max_line;
    const int64_t *starts; /* offsets of the lines fed, ascending */
    size_t nstarts;
};

static void encode_checked(struct tj_buf *out, const struct tj_event *ev, bool one_line)
{
    out->len = 0;
    if (tj_record_encode(out, shape, ev, &meta, NULL) != 0) {
        fprintf(stderr, "tj_record_encode failed\n");
        abort();
    }
    fuzz_check_record(out->data, out->len, one_line);
}

static int on_event(void *arg, const struct tj_event *ev)
{
    struct run *r = arg;
    size_t lo = 0, hi = r->nstarts;

    if (ev->message.len > r->max_line) {
        fprintf(stderr, "event of %zu bytes over the cap %zu\n", ev->message.len, r->max_line);
        abort();
    }
    /* The offset is one that was fed. */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->starts[mid] < ev->offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == r->nstarts || r->starts[lo] != ev->offset) {
        fprintf(stderr, "event offset %lld was never fed\n", (long long)ev->offset);
        abort();
    }
    check_json_form(ev->message_json, ev->message);
    encode_checked(&r->out, ev, true);
    return 0;
}

/* Feeds data split at '\n' the way the file reader does, cutting lines longer than `cut_at`. */
static void assemble(const uint8_t *data, size_t size, enum tj_format fmt, size_t max_line,
                     size_t cut_at, bool multiline, int64_t *starts)
{
    struct tj_assembler *a = tj_assembler_create(fmt, max_line);
    struct run r = {.max_line = max_line, .starts = starts};
    struct tj_feed f = {.matcher = matcher,
                        .multiline = multiline ? first_line : NULL,
                        .fn = on_event,
                        .arg = &r,
                        .now = TJ_SLICE_LIT("2026-11-25T00:00:00Z")};
    size_t pos = 0;

    if (!a)
        abort();
    tj_buf_init(&r.out, 1u << 26);
    for (size_t i = 0; pos < size; i++) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - (data + pos)) : size - pos;
        bool cut = len > cut_at;
        /* An exact-size copy, so reads past the line's end are caught. */
        size_t n = cut ? cut_at : len;
        char *line = malloc(n ? n : 1);
        memcpy(line, data + pos, n);
        starts[r.nstarts++] = (int64_t)pos;
        if (tj_assembler_line(a, line, n, (int64_t)pos, cut, &f) != 0)
            abort();
        free(line);
        pos += len + 1;
    }
    if (tj_assembler_flush(a, false, &f) || tj_assembler_flush(a, true, &f))
        abort();
    tj_buf_fini(&r.out);
    tj_assembler_destroy(a);
}

static void decode_whole(const uint8_t *data, size_t size)
{
    char *line = malloc(size ? size : 1);
    struct tj_buf scratch, out;
    struct tj_jsonfile_entry e;
    const char *why = NULL;
    int rc;

    memcpy(line, data, size);
    tj_buf_init(&scratch, size + 64);
    tj_buf_init(&out, 1u << 26);
    rc = tj_jsonfile_decode(line, size, &scratch, &e, &why);
    if (rc == TJ_EPARSE) {
        if (!why || !why[0])
            abort();
    } else if (rc == 0) {
        struct tj_event ev = {.time = e.time,
                              .ascii = e.ascii,
                              .message = e.log,
                              .message_json = e.log_json,
                              .stream = e.stream,
                              .attrs = e.attrs};
        bool in_line = e.log.ptr >= line && e.log.ptr + e.log.len <= line + size;
        bool in_scratch = scratch.data && e.log.ptr >= scratch.data &&
                          e.log.ptr + e.log.len <= scratch.data + scratch.len;
        if ((!in_line && !in_scratch) || e.log.len > size)
            abort();
        if (e.attrs.len && (e.attrs.ptr[0] != '{' || e.attrs.ptr[e.attrs.len - 1] != '}'))
            abort();
        check_json_form(e.log_json, e.log);
        check_log(line, size, &e);
        for (size_t i = 0; e.ascii && i < e.log.len; i++)
            if ((unsigned char)e.log.ptr[i] >= 0x80) /* grok would run its byte-mode regex */
                abort();
        encode_checked(&out, &ev, memchr(line, '\n', size) == NULL);
    } else if (rc != TJ_ENOSPC) {
        abort();
    }
    /* The string unescaper on its own, when the input starts like a string. */
    if (size && line[0] == '"')
        check_unescape(line, line + size);
    if (size && line[0] == '"') {
        const char *cur = line;
        size_t n = 0;
        char *w = malloc(size);
        if (tj_jsonfile_unescape(&cur, line + size, w, &n, &why) == 0 &&
            (n > size || cur <= line || cur > line + size))
            abort();
        free(w);
    }
    tj_buf_fini(&out);
    tj_buf_fini(&scratch);
    free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t *starts = malloc((size + 1) * sizeof(*starts));

    init_once();
    decode_whole(data, size);
    assemble(data, size, TJ_FORMAT_AUTO, 1u << 20, 1u << 20, false, starts);
    assemble(data, size, TJ_FORMAT_JSONFILE, 37, 200, false, starts);
    assemble(data, size, TJ_FORMAT_JSONFILE, 1u << 20, 1u << 20, true, starts);
    assemble(data, size, TJ_FORMAT_PLAIN, 23, 64, true, starts);
    free(starts);
    return 0;
}
