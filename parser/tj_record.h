/* tj_record.h: encoding one log event as one ECS-style JSON line.
 * A tj_shape is built once per compiled pattern: a tree that merges tailjet's own metadata
 * (@timestamp, message, stream, container.*, service.*, host.name, log.file.path, log.offset,
 * docker.attrs, event.original, event.created, tags) with the pattern's field paths, so that an
 * extracted "log.level" sits beside "log.file.path" in one "log" object. Encoding walks the tree
 * and writes only what is present; objects with nothing in them are not written. */
#ifndef TJ_RECORD_H
#define TJ_RECORD_H

#include "tj_buf.h"
#include "tj_grok.h"

/* Metadata that is the same for every line of one file, stored as encoded JSON strings. */
enum tj_meta_key {
    TJ_META_CONTAINER_ID,
    TJ_META_CONTAINER_NAME,
    TJ_META_IMAGE_NAME,
    TJ_META_SERVICE_NAME,
    TJ_META_SERVICE_ID,
    TJ_META_SERVICE_NAMESPACE,
    TJ_META_HOST_NAME,
    TJ_META_FILE_PATH,
    TJ_META_COUNT
};

struct tj_meta {
    char *val[TJ_META_COUNT]; /* owned encoded JSON strings ("\"...\""), NULL when absent */
    size_t len[TJ_META_COUNT];
    unsigned present; /* bit k set when val[k] is */
};

void tj_meta_init(struct tj_meta *m);
void tj_meta_fini(struct tj_meta *m);
/* Sets (or with s == NULL clears) one value. Returns 0 or TJ_ENOMEM (value unchanged). */
int tj_meta_set(struct tj_meta *m, enum tj_meta_key k, const char *s, size_t n);

enum tj_tag {
    TJ_TAG_GROKPARSEFAILURE = 1u << 0, /* no pattern matched */
    TJ_TAG_JSONPARSEFAILURE = 1u << 1, /* the json-file line was malformed: raw text kept */
    TJ_TAG_TRUNCATED = 1u << 2,        /* the line was cut at the line-length cap */
    TJ_TAG_GROKTIMEOUT = 1u << 3,      /* a PCRE2 match limit stopped a pattern */
    TJ_TAG_PATTERNERROR = 1u << 4,     /* the service's pattern label did not compile */
    TJ_TAG_LABELSMISSING = 1u << 5,    /* a worker did not learn its service's labels in time */
    TJ_TAG_DATEPARSEFAILURE = 1u << 6, /* the event-time field fitted none of its formats */
    TJ_TAG_TIMESTAMPPARSEFAILURE = 1u << 7, /* json-file's time was not RFC 3339: read time used,
                                               the text kept in docker.time */
};

/* One event: slices borrowed for the duration of tj_record_encode. */
struct tj_event {
    struct tj_slice time;         /* RFC 3339 text for @timestamp */
    struct tj_slice created;      /* RFC 3339 text for event.created, or empty (the json-file
                                     time, when the event's own time replaced it) */
    struct tj_slice message;      /* the line (or joined lines), unescaped */
    struct tj_slice message_json; /* the same text already escaped as JSON string content
                                     (valid, printable ASCII), or empty: then it is escaped */
    struct tj_slice stream;       /* "stdout"/"stderr", or empty */
    struct tj_slice attrs;        /* raw JSON object text from json-file, or empty */
    struct tj_slice time_raw;     /* json-file's time when it was not RFC 3339, or empty */
    int64_t offset;               /* byte offset of the event's first line in its file */
    unsigned tags;                /* enum tj_tag bits */
    bool ascii;                   /* message holds no byte >= 0x80 (false: not known), which
                                     spares grok its own check (see tj_grok_match_hint) */
};

struct tj_shape;

/* Builds the shape of records for pattern g (NULL: metadata only; borrowed during the call, the
 * shape keeps no pointer to it). Returns it (owned, free
 * with tj_shape_destroy) or NULL with err filled: a field that would replace tailjet's metadata
 * (only "message" may be replaced: the line then goes to event.original), or a field that is
 * both a value and an object. */
struct tj_shape *tj_shape_create(const struct tj_grok *g, char *err, size_t errlen);
void tj_shape_destroy(struct tj_shape *s);

/* Appends one JSON line (with '\n') for ev to out. ovector: the match of the shape's pattern,
 * or NULL when it did not match. Returns 0, or a tj_buf error with out->len restored. */
int tj_record_encode(struct tj_buf *out, const struct tj_shape *s, const struct tj_event *ev,
                     const struct tj_meta *meta, const size_t *ovector);

#endif
