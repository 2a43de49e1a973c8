/* tj_es_bulk.h: the pieces of an Elasticsearch _bulk request that need no network: index names
 * from a template and a record's @timestamp, deterministic document ids, action lines, gzip
 * bodies assembled from independently compressed pieces, and a quick look at a _bulk answer.
 * No state, no threads: every function is safe to call from any thread on its own arguments. */
#ifndef TJ_ES_BULK_H
#define TJ_ES_BULK_H

#include <zlib.h>

#include "tj_buf.h"

/* A record's date, UTC: what index templates use. */
struct tj_es_date {
    int year, mon, day, hour; /* mon 1..12, day 1..31, hour 0..23 */
};

/* Reads the "@timestamp" of a record (RFC 3339: "2026-11-25T22:00:00.123456789Z", or with an
 * offset such as "+02:00", which is converted to UTC). tailjet writes it first; elsewhere in the
 * first 4 KiB of the record is accepted too. Returns 0 with *d filled, or TJ_EPARSE (d
 * unchanged). */
int tj_es_record_date(const char *rec, size_t len, struct tj_es_date *d);

/* The current UTC date. */
void tj_es_date_now(struct tj_es_date *d);

/* Checks an index template: the codes are %Y %m %d %H (the record's UTC date), %{service} (the
 * service name, made a valid index name: lower case, other characters than [a-z0-9._-] become
 * '_') and %% (a '%'). Returns 0, or TJ_EINVAL with err naming the template and the code. */
int tj_es_template_check(const char *tpl, size_t n, char *err, size_t errlen);

/* Appends the index name of template tpl[0..n) for date d and service name svc. A code the
 * template check would refuse is copied as it is. Returns 0 or a tj_buf error. */
int tj_es_index_expand(struct tj_buf *out, const char *tpl, size_t n, const struct tj_es_date *d,
                       struct tj_slice svc);

/* Whether the template uses the record's date (then each record's index may differ). */
bool tj_es_template_dated(const char *tpl, size_t n);

#define TJ_ES_ID_LEN 22 /* 128 bits in base64url, without padding */

/* Writes the document id of the record rec[0..len): XXH3-128 of its bytes in base64url, and a
 * NUL (out needs TJ_ES_ID_LEN + 1 bytes). The same record bytes always give the same id. */
void tj_es_doc_id(const char *rec, size_t len, char *out);

/* Appends one action line, with its '\n': {"index":{"_index":"NAME","_id":"ID"}} (create:
 * "create" instead of "index"; id NULL: no "_id"). Returns 0 or a tj_buf error (out->len may
 * have moved: callers rewind). */
int tj_es_action(struct tj_buf *out, bool create, struct tj_slice index, const char *id);

/* Writes the body of one piece of a request: either plain text, or raw deflate that ends with a
 * sync flush, so that pieces compressed apart (by different threads) and laid end to end between
 * tj_es_gzip_head and tj_es_gzip_tail form one valid gzip member (as pigz does). */
struct tj_es_piece_writer {
    z_stream z;
    bool zinit;          /* deflateInit2 was called */
    bool gzip;           /* compress; else text goes straight to out */
    int level;           /* zlib's compression level */
    struct tj_buf stage; /* text waiting to be compressed */
    struct tj_buf *out;  /* the piece's bytes (borrowed between begin and end) */
    uint32_t crc;        /* CRC-32 of the text of the piece so far (gzip only) */
    uint64_t raw;        /* bytes of text in the piece so far */
};

/* Embedded init; allocates nothing yet. level: zlib's 1..9. */
void tj_es_pw_init(struct tj_es_piece_writer *w, bool gzip, int level);
void tj_es_pw_fini(struct tj_es_piece_writer *w);
/* Starts a piece written into out (borrowed until tj_es_pw_end; out is appended to). Returns 0
 * or TJ_ENOMEM (zlib's state could not be allocated). */
int tj_es_pw_begin(struct tj_es_piece_writer *w, struct tj_buf *out);
/* Adds text to the piece. Returns 0 or a tj_buf/zlib error (the piece is then unusable: begin
 * again). */
int tj_es_pw_write(struct tj_es_piece_writer *w, const void *p, size_t n);
/* Ends the piece: every byte of text is in out, byte-aligned. Returns 0 or an error. */
int tj_es_pw_end(struct tj_es_piece_writer *w);

/* The 10-byte gzip header. Returns 0 or a tj_buf error. */
int tj_es_gzip_head(struct tj_buf *out);
/* The end of a gzip member whose pieces hold `raw` bytes of text with CRC-32 crc: an empty
 * final deflate block, the CRC and the length. Returns 0 or a tj_buf error. */
int tj_es_gzip_tail(struct tj_buf *out, uint32_t crc, uint64_t raw);
/* The CRC-32 of text A followed by text B (B of len_b bytes). */
uint32_t tj_es_crc_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

/* A quick look at a _bulk answer without building a tree: whether its top-level "errors" is
 * true, and how many elements its top-level "items" array has. Returns 0 with both filled, or
 * TJ_EPARSE (not a JSON object, or one without "errors" or "items"). */
int tj_es_bulk_summary(const char *body, size_t len, bool *errors, size_t *nitems);

#endif
