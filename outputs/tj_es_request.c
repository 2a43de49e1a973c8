/* tj_es_request.c: index names, pieces and request bodies of the Elasticsearch output (see
 * tj_es_request.h). Building pieces runs on the engine's workers (submit) and on the output
 * thread (retries); filling a request body runs on the output thread. */
#include <stdlib.h>
#include <string.h>
#ifdef TJ_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

#include "tj_es_request.h"
#include "tj_es_result.h"

void tj_es_request_namer_init(struct tj_es_namer *nm)
{
    memset(nm, 0, sizeof(*nm));
    tj_buf_init(&nm->name, 64 * 1024);
}

/* The index of doc: its batch's logIndex template, else the output's. Returns the name (in nm)
 * or an empty slice when out of memory. */
struct tj_slice tj_es_request_index(const struct out_es *o, struct tj_es_namer *nm,
                                    const struct doc *d)
{
    const struct tj_batch *b = d->t->b;
    const char *tpl = b->index.len ? b->index.ptr : o->index;
    size_t tn = b->index.len ? b->index.len : strlen(o->index);
    struct tj_es_date date = {0};

    if (!nm->valid || tpl != nm->tpl || tn != nm->tn) {
        nm->dated = tj_es_template_dated(tpl, tn);
        nm->valid = false;
    }
    if (nm->dated && tj_es_record_date(d->rec, d->len, &date) != 0)
        tj_es_date_now(&date);
    if (!nm->valid || tpl != nm->tpl || tn != nm->tn || b->service.ptr != nm->svc.ptr ||
        b->service.len != nm->svc.len || memcmp(&date, &nm->d, sizeof(date)) != 0) {
        nm->name.len = 0;
        if (tj_es_index_expand(&nm->name, tpl, tn, &date, b->service) != 0)
            return (struct tj_slice){"", 0};
        nm->tpl = tpl;
        nm->tn = tn;
        nm->svc = b->service;
        nm->d = date;
        nm->valid = true;
    }
    return (struct tj_slice){nm->name.data, nm->name.len};
}

void tj_es_request_piece_free(struct piece *p)
{
    if (p) {
        tj_buf_fini(&p->data);
        free(p);
    }
}

/* Frees pieces and returns their documents as one list, in order. */
static struct doc *pieces_dissolve(struct piece *p, struct doc *rest)
{
    struct doc *head = NULL, **tail = &head;

    while (p) {
        struct piece *next = p->next;
        if (p->head) {
            *tail = p->head;
            tail = &p->tail->next;
        }
        tj_es_request_piece_free(p);
        p = next;
    }
    *tail = rest;
    return head;
}

/* Ends the open piece p: its text is all in its data. Returns 0 or an error. */
static int piece_end(struct tj_es_piece_writer *pw, struct piece *p)
{
    int rc = tj_es_pw_end(pw);

    p->crc = pw->crc;
    p->raw = pw->raw;
    return rc;
}

/* Encodes the documents of the list (taken) into pieces of at most max_bytes of text (a
 * document larger than that alone makes a piece of its own) and max_docs documents each.
 * Returns 0 with the pieces in *first..*last, or an error with every document given back in
 * *undone (in order) and no piece. */
int tj_es_request_build(const struct out_es *o, struct tj_es_piece_writer *pw, struct doc *list,
                        size_t max_bytes, struct piece **first, struct piece **last,
                        struct doc **undone)
{
    struct piece *head = NULL, *tail = NULL, *p = NULL;
    struct tj_es_namer nm;
    struct tj_buf act;
    char id[TJ_ES_ID_LEN + 1];
    int rc = 0;

    tj_es_request_namer_init(&nm);
    tj_buf_init(&act, 128 * 1024);
    while (list) {
        struct doc *d = list;
        act.len = 0;
        if (o->ids)
            tj_es_doc_id(d->rec, d->len, id);
        if ((rc =
                 tj_es_action(&act, o->create, tj_es_request_index(o, &nm, d), o->ids ? id : NULL)))
            break;
        if (p && (pw->raw + act.len + d->len + 1 > max_bytes || p->ndocs >= o->max_docs)) {
            if ((rc = piece_end(pw, p)))
                break;
            p = NULL;
        }
        if (!p) {
            if (!(p = calloc(1, sizeof(*p)))) {
                rc = TJ_ENOMEM;
                break;
            }
            tj_buf_init(&p->data, SIZE_MAX / 4);
            if (tail)
                tail->next = p;
            else
                head = p;
            tail = p;
            if ((rc = tj_es_pw_begin(pw, &p->data)))
                break;
        }
        if ((rc = tj_es_pw_write(pw, act.data, act.len)) ||
            (rc = tj_es_pw_write(pw, d->rec, d->len)) || (rc = tj_es_pw_write(pw, "\n", 1)))
            break;
        list = d->next;
        d->next = NULL;
        if (p->tail)
            p->tail->next = d;
        else
            p->head = d;
        p->tail = d;
        p->ndocs++;
    }
    if (!rc && p)
        rc = piece_end(pw, p);
    tj_buf_fini(&act);
    tj_buf_fini(&nm.name);
    if (rc) {
        *undone = pieces_dissolve(head, list);
        return rc;
    }
    *first = head;
    *last = tail;
    return 0;
}

static struct piece *ready_pop(struct out_es *o)
{
    struct piece *p = o->ready;

    o->ready = p->next;
    if (!o->ready)
        o->ready_tail = NULL;
    p->next = NULL;
    return p;
}

/* The first ready piece that still fits in the slot's request, left on the ready list; a piece
 * larger than a 413 allows now is dissolved and its documents requeued on the way. Returns NULL
 * when no piece is ready or the next one does not fit. */
static struct piece *ready_fitting(struct out_es *o, const struct slot *s)
{
    struct piece *p;

    while ((p = o->ready)) {
        if (s->ndocs && (s->raw + p->raw > o->eff_max_bytes || s->ndocs + p->ndocs > o->max_docs))
            return NULL;
        if (p->raw > o->eff_max_bytes && p->ndocs > 1) { /* larger than a 413 allows now */
            tj_es_result_requeue_now(o, pieces_dissolve(ready_pop(o), NULL));
            continue;
        }
        return p;
    }
    return NULL;
}

/* Pops the first ready piece, whose text the caller has put in the body, into the slot: its
 * documents go to the slot's list at *tail (moved to the new end), the piece is freed. */
static void slot_take(struct out_es *o, struct slot *s, struct doc ***tail)
{
    struct piece *p = ready_pop(o);

    s->raw += p->raw;
    s->ndocs += p->ndocs;
    **tail = p->head;
    *tail = &p->tail->next;
    tj_es_request_piece_free(p);
}

/* Gives the slot's documents back to be sent again at once (its body could not be made). */
static void slot_requeue(struct out_es *o, struct slot *s)
{
    tj_es_result_requeue_now(o, s->head);
    s->head = NULL;
    s->ndocs = 0;
}

#ifdef TJ_HAVE_LIBDEFLATE
/* fill_body with libdeflate: the pieces' text end to end, then gzipped in one call. */
static size_t fill_body_whole(struct out_es *o, struct slot *s)
{
    struct doc **tail = &s->head;
    struct piece *p;
    size_t bound, n;

    o->plain.len = 0;
    while ((p = ready_fitting(o, s)) && tj_buf_append(&o->plain, p->data.data, p->data.len) == 0)
        slot_take(o, s, &tail);
    if (!s->ndocs)
        return 0;
    bound = libdeflate_gzip_compress_bound(o->ldc, o->plain.len);
    if (tj_buf_reserve(&s->body, bound) != 0 ||
        !(n = libdeflate_gzip_compress(o->ldc, o->plain.data, o->plain.len, s->body.data, bound))) {
        slot_requeue(o, s);
        return 0;
    }
    s->body.len = n;
    return s->ndocs;
}
#endif

/* Lays ready pieces end to end into the slot's body, up to the request's bounds. Returns the
 * number of documents taken (0: none could be, out of memory). */
size_t tj_es_request_fill(struct out_es *o, struct slot *s)
{
    uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
    struct doc **tail = &s->head;
    struct piece *p;

    s->body.len = 0;
    s->raw = 0;
    s->ndocs = 0;
    s->head = NULL;
#ifdef TJ_HAVE_LIBDEFLATE
    if (o->gzip)
        return fill_body_whole(o, s);
#endif
    if (o->gzip && tj_es_gzip_head(&s->body) != 0)
        return 0;
    while ((p = ready_fitting(o, s)) && tj_buf_append(&s->body, p->data.data, p->data.len) == 0) {
        crc = tj_es_crc_combine(crc, p->crc, p->raw);
        slot_take(o, s, &tail);
    }
    if (s->ndocs && o->gzip && tj_es_gzip_tail(&s->body, crc, s->raw) != 0)
        slot_requeue(o, s);
    return s->ndocs;
}
