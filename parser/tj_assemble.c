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
    char time_raw[64]; /* json-file's time when it was not RFC 3339 (cut at 64 bytes) */
    size_t time_raw_len;
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
    if (p->time_len) /* a missing time may be a NULL slice: memcpy must not see it */
        memcpy(p->time, ev->time.ptr, p->time_len);
    p->time_raw_len =
        ev->time_raw.len <= sizeof(p->time_raw) ? ev->time_raw.len : sizeof(p->time_raw);
    if (p->time_raw_len)
        memcpy(p->time_raw, ev->time_raw.ptr, p->time_raw_len);
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
        .time_raw = {p->time_raw, p->time_raw_len},
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

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static int num2(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* True when t[0..n) is an RFC 3339 date-time as Docker writes it and Elasticsearch's
 * strict_date_optional_time reads it: YYYY-MM-DDTHH:MM:SS, an optional fraction of 1 to 9
 * digits, then Z or +HH:MM / -HH:MM; fields in their ranges (a leap second's 60 too). */
static bool time_valid(const char *t, size_t n)
{
    size_t i = 19, k;

    if (n < 20 || !digits(t, 4) || t[4] != '-' || !digits(t + 5, 2) || t[7] != '-' ||
        !digits(t + 8, 2) || (t[10] != 'T' && t[10] != 't') || !digits(t + 11, 2) || t[13] != ':' ||
        !digits(t + 14, 2) || t[16] != ':' || !digits(t + 17, 2))
        return false;
    if (num2(t + 5) < 1 || num2(t + 5) > 12 || num2(t + 8) < 1 || num2(t + 8) > 31 ||
        num2(t + 11) > 23 || num2(t + 14) > 59 || num2(t + 17) > 60)
        return false;
    if (t[i] == '.') {
        for (k = i + 1; k < n && t[k] >= '0' && t[k] <= '9'; k++)
            ;
        if (k == i + 1 || k - i - 1 > 9)
            return false;
        i = k;
    }
    if (i + 1 == n && (t[i] == 'Z' || t[i] == 'z'))
        return true;
    return i + 6 == n && (t[i] == '+' || t[i] == '-') && digits(t + i + 1, 2) && t[i + 3] == ':' &&
           digits(t + i + 4, 2) && num2(t + i + 1) <= 23 && num2(t + i + 4) <= 59;
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
    if (e.time.len && !time_valid(e.time.ptr, e.time.len)) {
        /* Every index would refuse the record: the read time stands in, the text is kept. */
        ev.time = f->now;
        ev.time_raw = e.time;
        ev.tags |= TJ_TAG_TIMESTAMPPARSEFAILURE;
    }
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
    ev.ascii = e.ascii; /* a cut keeps it */
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

void tj_assembler_reset(struct tj_assembler *a, enum tj_format fmt)
{
    a->fmt = fmt;
    for (int i = 0; i < NSTREAMS; i++) {
        a->part[i].active = false;
        a->multi[i].active = false;
    }
}

enum tj_format tj_assemble_detect(const char *buf, size_t len, struct tj_buf *scratch)
{
    const char *p = buf, *end = buf + len, *nl;

    while (p < end && (nl = memchr(p, '\n', (size_t)(end - p)))) {
        const char *q = p;
        while (q < nl && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        if (q < nl) {
            struct tj_jsonfile_entry e;
            const char *why = NULL;
            if (*q != '{')
                return TJ_FORMAT_PLAIN;
            if (tj_jsonfile_decode(p, (size_t)(nl - p), scratch, &e, &why) == 0)
                return TJ_FORMAT_JSONFILE;
            if (why == tj_jsonfile_why_nolog)
                return TJ_FORMAT_PLAIN;
        }
        p = nl + 1;
    }
    return TJ_FORMAT_AUTO;
}

#define CUT_WINDOW 64

/* One complete line seen by the cut search, newest first. */
struct cut_line {
    size_t start, end; /* end: offset of its '\n' */
    bool ok;           /* a json-file entry (else corrupt: it closes no stream's line) */
    bool partial;
    int si;
};

/* Fills l with the line that ends at buf[end] ('\n'). Plain: ok, not partial, no stream. */
static void cut_line_at(const struct tj_cut *c, const char *buf, size_t end, struct cut_line *l,
                        struct tj_jsonfile_entry *e)
{
    const void *prev = end ? memrchr(buf, '\n', end) : NULL;
    const char *why;

    l->start = prev ? (size_t)((const char *)prev - buf) + 1 : 0;
    l->end = end;
    l->ok = true;
    l->partial = false;
    l->si = STREAM_OTHER;
    e->log = (struct tj_slice){buf + l->start, end - l->start};
    if (c->fmt != TJ_FORMAT_JSONFILE) {
        if (e->log.len && e->log.ptr[e->log.len - 1] == '\r')
            e->log.len--;
        return;
    }
    if (tj_jsonfile_decode(buf + l->start, end - l->start, c->scratch, e, &why) != 0) {
        l->ok = false;
        return;
    }
    l->partial = e->partial;
    l->si = stream_index(e->stream);
}

/* True when no stream other than `except` has a line open among lines[k+1..n) (older). */
static bool others_closed(const struct cut_line *lines, size_t k, size_t n, int except)
{
    bool seen[NSTREAMS] = {false};

    for (size_t j = k + 1; j < n; j++) {
        const struct cut_line *l = &lines[j];
        if (!l->ok || l->si == except || seen[l->si])
            continue;
        if (l->partial)
            return false;
        seen[l->si] = true;
    }
    return true;
}

static size_t cut_jsonfile(const struct tj_cut *c, const char *buf, size_t last_nl)
{
    struct cut_line lines[CUT_WINDOW];
    struct tj_jsonfile_entry e;
    size_t n = 0, end = last_nl;

    for (;;) {
        cut_line_at(c, buf, end, &lines[n], &e);
        n++;
        if (n == CUT_WINDOW || lines[n - 1].start == 0)
            break;
        end = lines[n - 1].start - 1;
    }
    for (size_t k = 0; k < n; k++) {
        const struct cut_line *l = &lines[k];
        if (l->ok && l->partial)
            continue;
        if (others_closed(lines, k, n, l->ok ? l->si : -1))
            return l->end + 1;
    }
    return 0;
}

/* The line of stream si before the line that starts at `start`, looked for among the
 * CUT_WINDOW lines before it. Returns false when there is none. */
static bool prev_of_stream(const struct tj_cut *c, const char *buf, size_t start, int si,
                           struct cut_line *out)
{
    struct tj_jsonfile_entry e;

    for (int k = 0; k < CUT_WINDOW && start > 0; k++) {
        cut_line_at(c, buf, start - 1, out, &e);
        if (!out->ok || si < 0 || out->si == si)
            return true;
        start = out->start;
    }
    return false;
}

/* Whether the line is the first line of an event: the regex marks it and it is not a later
 * 16 KiB piece of a line. Corrupt lines end every open event, so they count as first lines. */
static bool starts_event(const struct tj_cut *c, const char *buf, struct cut_line *l)
{
    struct cut_line prev;
    struct tj_jsonfile_entry e;

    if (!l->ok)
        return true;
    if (c->fmt == TJ_FORMAT_JSONFILE && prev_of_stream(c, buf, l->start, l->si, &prev) && prev.ok &&
        prev.partial)
        return false;
    cut_line_at(c, buf, l->end, l, &e); /* again: prev_of_stream reused the scratch */
    return tj_grok_match(c->multiline, c->matcher, e.log.ptr, e.log.len) == 1;
}

/* The latest start of an event in (from, last_nl] before which no stream has an event open that
 * continues after it: walking back from the end, `next` keeps, per stream, whether that stream's
 * first line after the current position starts an event. A stream with no line after the cut is
 * safe only when it has no line in the window before it either. */
static size_t cut_multiline(const struct tj_cut *c, const char *buf, size_t last_nl, size_t from)
{
    enum { NONE, START, CONT } next[NSTREAMS] = {NONE, NONE, NONE};
    struct tj_jsonfile_entry e;
    struct cut_line l;
    size_t end = last_nl;

    for (;;) {
        bool start, safe = true;
        cut_line_at(c, buf, end, &l, &e);
        if (l.start == 0 || l.start < from)
            return 0;
        start = starts_event(c, buf, &l);
        for (int t = 0; start && safe && t < NSTREAMS; t++) {
            struct cut_line prev;
            if (l.ok && t == l.si)
                continue;
            if (next[t] == CONT)
                safe = false;
            else if (next[t] == NONE && prev_of_stream(c, buf, l.start, t, &prev) && prev.ok)
                safe = false; /* its event may go on after the cut */
        }
        if (start && safe)
            return l.start;
        if (l.ok)
            next[l.si] = start ? START : CONT;
        else
            next[0] = next[1] = next[2] = START;
        end = l.start - 1;
    }
}

size_t tj_assemble_cut(const struct tj_cut *c, const char *buf, size_t len, size_t from)
{
    const char *nl = len ? memrchr(buf, '\n', len) : NULL;
    size_t last_nl;

    if (!nl)
        return 0;
    last_nl = (size_t)(nl - buf);
    if (c->multiline)
        return cut_multiline(c, buf, last_nl, from);
    if (c->fmt == TJ_FORMAT_JSONFILE)
        return cut_jsonfile(c, buf, last_nl);
    return last_nl + 1;
}
