/* tj_jsonfile.h: decoding one line of Docker's json-file log driver:
 *   {"log":"text\n","stream":"stdout","attrs":{...},"time":"2026-11-25T17:56:16.123456789Z"}
 * Keys may come in any order; unknown keys are skipped (validated, not kept). */
#ifndef TJ_JSONFILE_H
#define TJ_JSONFILE_H

#include "tj_buf.h"

struct tj_jsonfile_entry {
    struct tj_slice log;      /* unescaped text without its trailing "\n" (and "\r"); borrowed
                                 from the input line, or from `scratch` when it had escapes */
    struct tj_slice log_json; /* the same text still in JSON's escaped form (a slice of the
                                 line), when that form is plain printable ASCII and escapes and
                                 the line ended in "\n": records copy it instead of re-escaping
                                 the text. Empty otherwise. */
    bool ascii;               /* log holds no byte >= 0x80 (false: not known) */
    bool partial;             /* no trailing "\n": a 16 KiB piece, more follows */
    struct tj_slice stream;   /* raw value of "stream" (empty if absent) */
    struct tj_slice time;     /* raw value of "time" (empty if absent) */
    struct tj_slice attrs;    /* raw JSON text of "attrs", an object (empty if absent) */
};

/* Decodes line[0..len) (no trailing newline). `scratch` is reset and receives the unescaped log
 * text when escapes occur; its cap must allow `len + 16` bytes (block stores). On success fills *e
 * and returns 0; slices borrow from `line` and `scratch`, valid until either changes. Returns
 * TJ_EPARSE when the line is not a json-file entry (not JSON, bad escape, no "log" string, trailing
 * garbage) and sets *why to a static reason; returns TJ_ENOSPC if scratch is too small. */
/* The reason tj_jsonfile_decode gives for a valid JSON object without a "log" string: an
 * application's own JSON line rather than a damaged Docker entry. Compare pointers. */
extern const char tj_jsonfile_why_nolog[];

int tj_jsonfile_decode(const char *line, size_t len, struct tj_buf *scratch,
                       struct tj_jsonfile_entry *e, const char **why);

/* Decodes the JSON string whose opening quote is at *cursor, writing its UTF-8 bytes to out
 * (which must have room for end - *cursor bytes). Advances *cursor past the closing quote.
 * Returns 0 or TJ_EPARSE with *why set. Exposed for tests and the fuzz target. */
int tj_jsonfile_unescape(const char **cursor, const char *end, char *out, size_t *outlen,
                         const char **why);

#endif
