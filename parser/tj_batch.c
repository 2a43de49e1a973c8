/* tj_batch.c: see tj_batch.h. */
#include "tj_batch.h"

#include <stdlib.h>
#include <string.h>

struct tj_batch {
    struct tj_event ev[TJ_BATCH_EVENTS];
    struct tj_match_result res[TJ_BATCH_EVENTS];
    size_t *ov; /* TJ_BATCH_EVENTS rows of ovlen captures */
    size_t ovlen, n;
    char *arena;
    size_t used;
    const char *lo, *hi, *now, *now_end; /* texts there are not copied */
};

struct tj_batch *tj_batch_create(void)
{
    struct tj_batch *b = calloc(1, sizeof(*b));

    if (b && !(b->arena = malloc(TJ_BATCH_ARENA))) {
        free(b);
        b = NULL;
    }
    return b;
}

void tj_batch_destroy(struct tj_batch *b)
{
    if (!b)
        return;
    free(b->ov);
    free(b->arena);
    free(b);
}

void tj_batch_region(struct tj_batch *b, const char *lo, const char *hi, const char *now,
                     size_t now_len)
{
    b->lo = lo;
    b->hi = hi;
    b->now = now;
    b->now_end = now + now_len;
}

void tj_batch_clear(struct tj_batch *b)
{
    b->n = 0;
    b->used = 0;
}

int tj_batch_run(struct tj_batch *b, const struct tj_ruleset *rs, struct tj_matcher *m,
                 tj_batch_encode_fn *fn, void *arg)
{
    size_t ovlen = tj_ruleset_ovector_len(rs), n = b->n;
    int rc = 0;

    tj_batch_clear(b);
    if (!n)
        return 0;
    if (ovlen > b->ovlen) {
        size_t *ov = realloc(b->ov, TJ_BATCH_EVENTS * ovlen * sizeof(*ov));
        if (!ov) { /* no room to keep captures: one event at a time, nothing lost */
            for (size_t i = 0; i < n && !rc; i++) {
                const size_t *one = tj_ruleset_match(rs, m, &b->ev[i], &b->res[i]);
                rc = fn(arg, &b->ev[i], &b->res[i], one);
            }
            return rc;
        }
        b->ov = ov;
        b->ovlen = ovlen;
    }
    for (size_t i = 0; i < n; i++) {
        const size_t *ov = tj_ruleset_match(rs, m, &b->ev[i], &b->res[i]);
        if (ov)
            memcpy(b->ov + i * b->ovlen, ov,
                   2 * ((size_t)rs->alt[b->res[i].alt]->ngroups + 1) * sizeof(*ov));
    }
    for (size_t i = 0; i < n && !rc; i++) /* no captures, no row: ov may be NULL then */
        rc = fn(arg, &b->ev[i], &b->res[i], b->res[i].alt >= 0 ? b->ov + i * b->ovlen : NULL);
    return rc;
}

/* Points *s at a copy of its text in the arena, unless it lies in the region. Returns false
 * when the arena has no room for it. */
static inline bool keep_text(struct tj_batch *b, struct tj_slice *s)
{
    if (TJ_LIKELY(!s->len || (s->ptr >= b->lo && s->ptr + s->len <= b->hi)) ||
        (s->ptr >= b->now && s->ptr + s->len <= b->now_end))
        return true;
    if (s->len > TJ_BATCH_ARENA - b->used)
        return false;
    memcpy(b->arena + b->used, s->ptr, s->len);
    s->ptr = b->arena + b->used;
    b->used += s->len;
    return true;
}

int tj_batch_push(struct tj_batch *b, const struct tj_event *ev, const struct tj_ruleset *rs,
                  struct tj_matcher *m, tj_batch_encode_fn *fn, void *arg)
{
    struct tj_match_result res;
    const size_t *ov;
    int rc;

    for (int attempt = 0; attempt < 2; attempt++) {
        struct tj_event *e;
        size_t mark;

        if (b->n == TJ_BATCH_EVENTS && (rc = tj_batch_run(b, rs, m, fn, arg)))
            return rc;
        mark = b->used;
        e = &b->ev[b->n];
        *e = *ev;
        if (keep_text(b, &e->message) && keep_text(b, &e->message_json) && keep_text(b, &e->time) &&
            keep_text(b, &e->stream) && keep_text(b, &e->attrs) && keep_text(b, &e->time_raw)) {
            b->n++;
            return 0;
        }
        b->used = mark;
        if (b->n == 0)
            break; /* larger than the arena */
        if ((rc = tj_batch_run(b, rs, m, fn, arg)))
            return rc;
    }
    ov = tj_ruleset_match(rs, m, ev, &res);
    return fn(arg, ev, &res, ov);
}
