/* tj_json.h: writing JSON text into a tj_buf. Strings are escaped so the output is always valid
 * JSON: quotes, backslashes and control characters are escaped and every invalid UTF-8 sequence
 * is replaced by U+FFFD. This is the encoder's hot loop, scanned 16 bytes at a time. */
#ifndef TJ_JSON_H
#define TJ_JSON_H

#include "tj_buf.h"

/* Appends s[0..n) escaped, without surrounding quotes. Returns 0 or a tj_buf error (the
 * buffer may then hold part of the string: callers rewind to a saved length). */
int tj_json_escape(struct tj_buf *out, const char *s, size_t n);

/* Appends "s" (quoted and escaped). Same errors as tj_json_escape. */
int tj_json_string(struct tj_buf *out, const char *s, size_t n);

/* n, moved back (by at most 3 bytes) so that s[0..result) does not end inside a multi-byte
 * sequence: used to cut a long line on a character boundary. It does not validate the rest
 * (the encoder replaces invalid bytes). */
size_t tj_utf8_cut(const char *s, size_t n);

/* If text is a valid JSON number, appends it and returns 0; else TJ_EPARSE, buffer unchanged. */
int tj_json_number_text(struct tj_buf *out, const char *s, size_t n);

/* Parses s[0..n) as a signed 64-bit decimal integer (optional sign, digits only) and appends
 * its canonical JSON form. Returns 0, TJ_EPARSE (not an integer or out of range; buffer
 * unchanged) or a tj_buf error. */
int tj_json_int_text(struct tj_buf *out, const char *s, size_t n);

/* Parses s[0..n) as a float (strtod syntax, finite) and appends a JSON number for it. Returns 0
 * or TJ_EPARSE (buffer unchanged) or a tj_buf error. */
int tj_json_float_text(struct tj_buf *out, const char *s, size_t n);

/* Appends the decimal form of v. */
int tj_json_i64(struct tj_buf *out, int64_t v);

/* Writes the current UTC time as RFC 3339 with nanoseconds ("2026-11-25T17:56:16.123456789Z"),
 * the @timestamp of lines that carry no time of their own. buf needs 31 bytes. */
void tj_time_now(char *buf, size_t n);

#endif
