/* tj_es_request.h: what a bulk request carries. Documents are encoded into pieces (an action
 * line with the index and the _id, then the record; gzip-deflated per piece when zlib does it) on
 * the engine's workers, from submit; on the output thread, ready pieces are laid end to end into
 * one request body (gzipped whole by libdeflate when it is built in) and documents to retry are
 * encoded again. Every function here reads o's configuration only, except
 * tj_es_request_fill, which takes from o's ready list (output thread). */
#ifndef TJ_ES_REQUEST_H
#define TJ_ES_REQUEST_H

#include "tj_es_out.h"

/* The index of the documents being encoded, kept while template, service and date stay. */
struct tj_es_namer {
    const char *tpl;
    size_t tn;
    struct tj_slice svc;
    bool dated;
    struct tj_es_date d;
    bool valid;
    struct tj_buf name;
};

/* Embedded init (its name buffer is freed with tj_buf_fini(&nm->name)). */
void tj_es_request_namer_init(struct tj_es_namer *nm);

/* The index of document d: its batch's logIndex template, else the output's, expanded for the
 * record's date and service. Returns the name (borrowed from nm, valid until its next call), or an
 * empty slice when out of memory. Any thread, on its own nm. */
struct tj_slice tj_es_request_index(const struct out_es *o, struct tj_es_namer *nm,
                                    const struct doc *d);

/* Frees a piece (not its documents). NULL does nothing. */
void tj_es_request_piece_free(struct piece *p);

/* Encodes the documents of the list (taken) with pw into pieces of at most max_bytes of text (a
 * document larger than that alone makes a piece of its own) and batch.max_events documents each.
 * Returns 0 with the pieces (owned) in *first..*last, or an error with every document given back
 * in *undone (in order) and no piece. Any thread, on its own pw. */
int tj_es_request_build(const struct out_es *o, struct tj_es_piece_writer *pw, struct doc *list,
                        size_t max_bytes, struct piece **first, struct piece **last,
                        struct doc **undone);

/* Lays ready pieces (o->ready) end to end into the slot's body, up to the request's bounds; a
 * piece larger than a 413 allows now is dissolved and its documents requeued. Returns the number
 * of documents taken into s->head (0: none could be, out of memory). Output thread. */
size_t tj_es_request_fill(struct out_es *o, struct slot *s);

#endif
