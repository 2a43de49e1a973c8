/* tj_assemble.c: line -> event assembly. Single-line events pass through without a copy;
 * partial and multiline events are gathered in per-stream buffers capped at the line limit. */
#include "tj_assemble.h"

#include <stdlib.h>
#include <string.h>

#include "tj_json.h"
#include "tj_jsonfile.h"

enum { STREAM_STDOUT, STREAM_STDERR, STREAM_OTHER, NSTREAMS };

/* An event being gathered (partial pieces, or lines of a multiline event). */
struct pending {
    bool active;
    struct tj_buf text;
    char time[64];
    size_t time_len;
    struct tj_buf attrs;
    int64_t offset;
    unsigned tags;
    bool full; /* cut at the cap: nothing more is appended */
};

struct tj_assembler {
    enum tj_format fmt;
    size_t max_line;
    struct tj_buf scratch;          /* unescaped json-file text */
    struct pending part[NSTREAMS];  /* 16 KiB partial entries being joined */
    struct pending multi[NSTREAMS]; /* multiline events being gathered */
};

static const struct tj_slice stream_names[NSTREAMS] = {{"stdout", 6}, {"stderr", 6}, {"", 0}};

static void pending_init(struct pending *p, size_t max)
{
    memset(p, 0, sizeof(*p));
    tj_buf_init(&p->text, max);
    tj_buf_init(&p->attrs, 4096);
}

static void pending_fini(struct pending *p)
{
    tj_buf_fini(&p->text);
    tj_buf_fini(&p->attrs);
}

struct tj_assembler *tj_assembler_create(enum tj_format fmt, size_t max_line_bytes)
{
    struct tj_assembler *a = calloc(1, sizeof(*a));

    if (!a)
        return NULL;
    a->fmt = fmt;
    a->max_line = max_line_bytes;
    /* Unescaped text is never longer than its raw line, and readers cut raw lines at
     * TJ_ASSEMBLE_MAX_RAW; 16 more bytes for the decoder's block stores. */
    tj_buf_init(&a->scratch, TJ_ASSEMBLE_MAX_RAW(max_line_bytes) + 64);
    for (int i = 0; i < NSTREAMS; i++) {
        pending_init(&a->part[i], max_line_bytes);
        pending_init(&a->multi[i], max_line_bytes);
    }
    return a;
}

void tj_assembler_destroy(struct tj_assembler *a)
{
    if (!a)
        return;
    tj_buf_fini(&a->scratch);
    for (int i = 0; i < NSTREAMS; i++) {
        pending_fini(&a->part[i]);
        pending_fini(&a->multi[i]);
    }
    free(a);
}

enum tj_format tj_assembler_format(const struct tj_assembler *a)
{
    return a->fmt;
}

/* Cuts text to the cap on a UTF-8 character boundary; sets the _truncated tag. */
static struct tj_slice cap_text(struct tj_slice s, size_t max, unsigned *tags)
{
    if (s.len > max) {
        s.len = tj_utf8_cut(s.ptr, max);
        *tags |= TJ_TAG_TRUNCATED;
    }
    return s;
}

/* Appends text to a pending buffer. At the cap the joined text is cut on a character boundary
 * (a piece may end inside a character) and nothing more is appended: an event never has a hole
 * in it. */
static void pending_append(struct pending *p, const char *s, size_t n)
{
    size_t room = p->text.max - p->text.len;

    if (p->full)
        return;
    if (n > room) {
        n = room;
        p->full = true;
    }
    if (n && tj_buf_append(&p->text, s, n))
        p->full = true; /* out of memory: keep what we have, say so */
    if (p->full) {
        p->tags |= TJ_TAG_TRUNCATED;
        p->text.len = tj_utf8_cut(p->text.data, p->text.len);
    }
}

static void pending_start(struct pending *p, const struct tj_event *ev)
{
    p->active = true;
    p->full = false;
    p->text.len = 0;
    p->attrs.len = 0;
    p->offset = ev->offset;
    p->tags = ev->tags;
    p->time_len = ev->time.len <= sizeof(p->time) ? ev->time.len : 0;
    memcpy(p->time, ev->time.ptr, p->time_len);
    if (ev->attrs.len && tj_buf_append(&p->attrs, ev->attrs.ptr, ev->attrs.len))
        p->attrs.len = 0; /* attrs larger than 4 KiB are not kept on joined events */
    pending_append(p, ev->message.ptr, ev->message.len);
}

/* The event's time: its first line's, or the reading time when that was missing or too long to
 * keep (no real Docker time is), as for a single line. */
static struct tj_slice pending_time(const struct pending *p, const struct tj_feed *f)
{
    return p->time_len ? (struct tj_slice){p->time, p->time_len} : f->now;
}

/* Ends the gathering: returns the event, whose slices borrow p's buffers until p starts again. */
static struct tj_event pending_take(struct pending *p, struct tj_slice stream,
                                    const struct tj_feed *f)
{
    struct tj_event ev = {
        .time = pending_time(p, f),
        .message = {p->text.data ? p->text.data : "", p->text.len},
        .stream = stream,
        .attrs = {p->attrs.data, p->attrs.len},
        .offset = p->offset,
        .tags = p->tags,
    };

    p->active = false;
    return ev;
}

static int pending_emit(struct pending *p, struct tj_slice stream, const struct tj_feed *f)
{
    struct tj_event ev = pending_take(p, stream, f);
    return f->fn(f->arg, &ev);
}

/* Multiline stage: a line that matches the first-line regex starts an event; others join it. */
static int multiline_line(struct tj_assembler *a, int si, const struct tj_event *ev,
                          const struct tj_feed *f)
{
    struct pending *p = &a->multi[si];
    bool limited = false;
    int rc;

    if (!f->multiline)
        return f->fn(f->arg, ev);
    if (p->active) {
        rc = tj_grok_match(f->multiline, f->matcher, ev->message.ptr, ev->message.len);
        if (rc == 0) {
            if (p->text.len + 1 + ev->message.len <= p->text.max) {
                pending_append(p, "\n", 1);
                pending_append(p, ev->message.ptr, ev->message.len);
                p->tags |= ev->tags & TJ_TAG_TRUNCATED;
                return 0;
            }
            /* The event is at the cap: ship it, marked as cut here, and go on with a new one
             * rather than drop the lines that follow (Logstash's max_bytes does the same). */
            p->tags |= TJ_TAG_TRUNCATED;
        }
        limited = rc < 0; /* a match limit: a first line, so a slow regex cannot swallow a file */
        if ((rc = pending_emit(p, stream_names[si], f)))
            return rc;
    }
    pending_start(p, ev);
    if (limited)
        p->tags |= TJ_TAG_GROKTIMEOUT;
    return 0;
}

/* Emits every pending multiline event, so that an event emitted next never comes before lines
 * that preceded it in the file. */
static int flush_multiline(struct tj_assembler *a, const struct tj_feed *f)
{
    int rc;

    for (int si = 0; si < NSTREAMS; si++)
        if (a->multi[si].active && (rc = pending_emit(&a->multi[si], stream_names[si], f)))
            return rc;
    return 0;
}

/* Ships a line that is not a json-file entry in a json-file stream: its raw text, tagged. */
static int corrupt_line(struct tj_assembler *a, const char *line, size_t len, int64_t offset,
                        bool cut, const struct tj_feed *f)
{
    struct tj_event ev = {.offset = offset};
    int rc = flush_multiline(a, f);

    if (rc)
        return rc;
    ev.tags = TJ_TAG_JSONPARSEFAILURE | (cut ? TJ_TAG_TRUNCATED : 0);
    ev.message = cap_text((struct tj_slice){line, len}, a->max_line, &ev.tags);
    ev.time = f->now;
    return f->fn(f->arg, &ev);
}

static int stream_index(struct tj_slice s)
{
    if (s.len == 6 && memcmp(s.ptr, "stdout", 6) == 0)
        return STREAM_STDOUT;
    if (s.len == 6 && memcmp(s.ptr, "stderr", 6) == 0)
        return STREAM_STDERR;
    return STREAM_OTHER;
}

static int jsonfile_line(struct tj_assembler *a, const char *line, size_t len, int64_t offset,
                         bool cut, const struct tj_feed *f)
{
    struct tj_jsonfile_entry e;
    struct tj_event ev = {.offset = offset};
    const char *why;
    struct pending *p;
    int si;

    if (cut || tj_jsonfile_decode(line, len, &a->scratch, &e, &why) != 0)
        return corrupt_line(a, line, len, offset, cut, f); /* kept raw, tagged, never lost */
    si = stream_index(e.stream);
    p = &a->part[si];
    ev.time = e.time.len ? e.time : f->now;
    ev.stream = e.stream;
    ev.attrs = e.attrs;
    if (e.partial || p->active) {
        if (!p->active) {
            ev.message = (struct tj_slice){"", 0};
            pending_start(p, &ev);
        }
        pending_append(p, e.log.ptr, e.log.len);
        if (e.partial)
            return 0;
        /* The last piece: the joined line is complete. */
        ev = pending_take(p, e.stream, f);
        if (ev.message.len && ev.message.ptr[ev.message.len - 1] == '\r')
            ev.message.len--;
        return multiline_line(a, si, &ev, f);
    }
    ev.message = cap_text(e.log, a->max_line, &ev.tags);
    if (!(ev.tags & TJ_TAG_TRUNCATED))
        ev.message_json = e.log_json; /* records copy the escaped form as it is */
    return multiline_line(a, si, &ev, f);
}

int tj_assembler_line(struct tj_assembler *a, const char *line, size_t len, int64_t offset,
                      bool cut, const struct tj_feed *f)
{
    struct tj_event ev = {.offset = offset};

    if (a->fmt == TJ_FORMAT_AUTO) {
        size_t i = 0;
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i == len && !cut) {
            /* An empty line decides nothing; in plain text it is still a line. */
            goto plain;
        }
        if (i < len && line[i] == '{') {
            struct tj_jsonfile_entry e;
            const char *why = NULL;
            if (!cut && tj_jsonfile_decode(line, len, &a->scratch, &e, &why) == 0)
                a->fmt = TJ_FORMAT_JSONFILE;
            else if (why == tj_jsonfile_why_nolog)
                a->fmt = TJ_FORMAT_PLAIN; /* an application's own JSON lines */
            else
                return corrupt_line(a, line, len, offset, cut, f); /* torn: decide later */
        } else {
            a->fmt = TJ_FORMAT_PLAIN;
        }
    }
    if (a->fmt == TJ_FORMAT_JSONFILE)
        return jsonfile_line(a, line, len, offset, cut, f);
plain:
    if (len && line[len - 1] == '\r')
        len--;
    ev.tags = cut ? TJ_TAG_TRUNCATED : 0;
    ev.message = cap_text((struct tj_slice){line, len}, a->max_line, &ev.tags);
    ev.time = f->now;
    return multiline_line(a, STREAM_OTHER, &ev, f);
}

int tj_assembler_flush(struct tj_assembler *a, bool partials, const struct tj_feed *f)
{
    int rc;

    for (int si = 0; si < NSTREAMS; si++) {
        struct pending *p = &a->part[si];
        if (partials && p->active) {
            struct tj_event ev = pending_take(p, stream_names[si], f);
            if ((rc = multiline_line(a, si, &ev, f)))
                return rc;
        }
        if (a->multi[si].active && (rc = pending_emit(&a->multi[si], stream_names[si], f)))
            return rc;
    }
    return 0;
}
