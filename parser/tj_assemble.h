/* tj_assemble.h: from the raw lines of one log file to events. Detects json-file or plain text,
 * decodes json-file entries, joins Docker's 16 KiB partial entries back per stream, applies the
 * multiline first-line regex, strips CR of CRLF, and cuts what exceeds the line cap (tagged
 * _truncated, never split into several records). One assembler per followed file; it is used by
 * one thread at a time. */
#ifndef TJ_ASSEMBLE_H
#define TJ_ASSEMBLE_H

#include "tj_buf.h"
#include "tj_grok.h"
#include "tj_record.h"

enum tj_format { TJ_FORMAT_AUTO, TJ_FORMAT_JSONFILE, TJ_FORMAT_PLAIN };

/* Receives each event; slices are valid during the call only. Non-zero stops the feed and is
 * returned by it. */
typedef int (*tj_event_fn)(void *arg, const struct tj_event *ev);

struct tj_feed {
    struct tj_matcher *matcher;      /* the calling thread's, for the multiline regex */
    const struct tj_grok *multiline; /* first-line regex, or NULL (borrowed) */
    tj_event_fn fn;
    void *arg;
    struct tj_slice now; /* @timestamp for lines that carry no time (plain text) */
};

/* The longest raw line a reader should feed for a given line cap: json-file escapes can make a
 * line's raw form longer than its text, so readers cut raw lines at this size (feeding the cut
 * head with cut=true) and the assembler never needs more room than this. */
#define TJ_ASSEMBLE_MAX_RAW(max_line_bytes) ((size_t)(max_line_bytes) + ((size_t)1 << 20))

struct tj_assembler;

/* Returns an assembler, or NULL when out of memory. max_line_bytes caps one event's message. */
struct tj_assembler *tj_assembler_create(enum tj_format fmt, size_t max_line_bytes);
void tj_assembler_destroy(struct tj_assembler *a);

/* The format in use (AUTO until the first non-empty line decided it). */
enum tj_format tj_assembler_format(const struct tj_assembler *a);

/* Feeds one raw line (without its '\n') that starts at `offset` in the file. `cut` says the
 * reader had to cut the raw line (it was longer than its buffer). Returns 0 or fn's result. */
int tj_assembler_line(struct tj_assembler *a, const char *line, size_t len, int64_t offset,
                      bool cut, const struct tj_feed *f);

/* Forgets every pending event and sets the format: the assembler is as new. */
void tj_assembler_reset(struct tj_assembler *a, enum tj_format fmt);

/* Emits pending events: multiline events always, and joined-so-far partial json-file entries
 * when `partials` is true (end of input). Returns 0 or fn's result. */
int tj_assembler_flush(struct tj_assembler *a, bool partials, const struct tj_feed *f);

/* Decides the format from the complete lines of buf[0..len) as the assembler would: the first
 * decisive line (a json-file entry, an application's own JSON, or any other non-empty text)
 * decides; torn Docker-looking lines and empty lines decide nothing (TJ_FORMAT_AUTO). scratch:
 * as for tj_jsonfile_decode, with room for the longest line. */
enum tj_format tj_assemble_detect(const char *buf, size_t len, struct tj_buf *scratch);

/* Where a reader may cut a file's data into pieces that can be assembled independently (by
 * several threads at once): a boundary no event spans. */
struct tj_cut {
    enum tj_format fmt;              /* of the file (AUTO: treated as plain) */
    const struct tj_grok *multiline; /* first-line regex, or NULL (borrowed) */
    struct tj_matcher *matcher;      /* the caller's, for the multiline regex */
    struct tj_buf *scratch;          /* for decoding, with room for the longest line + 16 */
};

/* Returns the offset just past a line end in buf[0..len) such that no event of the data spans
 * it, the last such offset after `from` (lines before `from` were looked at by an earlier call
 * on the same data and held no event start), or 0 when there is none. Without a multiline regex
 * a plain line end is a boundary, and in json-file the end of an entry that completes its line
 * while no other stream's line is open (looked up among the 64 entries before it). With one, a
 * boundary is the start of a line the regex marks as first, not in the middle of a line's
 * 16 KiB pieces. Lines only borrow; the matcher and scratch are used. */
size_t tj_assemble_cut(const struct tj_cut *c, const char *buf, size_t len, size_t from);

#endif
