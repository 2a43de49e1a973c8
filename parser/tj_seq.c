/* tj_seq.c: submits in file order, retries, acknowledgements (see tj_seq.h). Workers, the
 * main thread and the output's threads. */
#include "tj_chunks.h"
#include "tj_engine_int.h"
#include "tj_files.h"
#include "tj_ident.h"
#include "tj_seq.h"
#include "tj_state.h"

/* Submits the path's parsed chunks that are next in sequence. Lock held on entry and exit. */
static void submit_ready(struct tj_engine *e, struct path *p)
{
    if (p->submitting || p->retry_at)
        return;
    p->submitting = true;
    while (p->ready && p->ready->seq == p->submit_seq) {
        struct chunk *c = p->ready;
        int rc;
        p->ready = c->next;
        pthread_mutex_unlock(&e->lock);
        rc = e->out->ops->submit(e->out->state, &c->b);
        pthread_mutex_lock(&e->lock);
        if (rc == 0) {
            p->submit_seq++;
            p->backoff_ms = 0;
            continue;
        }
        c->next = p->ready;
        p->ready = c;
        p->backoff_ms = p->backoff_ms ? (p->backoff_ms * 2 > 1000 ? 1000 : p->backoff_ms * 2) : 10;
        p->retry_at = now_ms() + p->backoff_ms;
        e->nretry++;
        e->st.submit_retries++;
        break;
    }
    p->submitting = false;
}

void tj_seq_chunk_ready(struct tj_engine *e, struct chunk *c)
{
    struct path *p = c->p;
    struct chunk **pp = &p->ready;

    pthread_mutex_lock(&e->lock);
    tj_chunks_pool_put(e->in_pool, &e->nin_pool, &c->in, 2 * e->cfg.chunk_bytes + 65536,
                       e->pool_keep);
    while (*pp && (*pp)->seq < c->seq)
        pp = &(*pp)->next;
    c->next = *pp;
    *pp = c;
    submit_ready(e, p);
    pthread_mutex_unlock(&e->lock);
}

void tj_engine_ack(void *engine, struct tj_batch *b, int status)
{
    struct tj_engine *e = engine;
    struct chunk *c = (struct chunk *)b, *h;
    struct path *p = c->p;

    TJ_UNUSED(status);
    pthread_mutex_lock(&e->lock);
    c->acked = true;
    while ((h = p->inflight) && h->acked) {
        p->inflight = h->next_inflight;
        if (!p->inflight)
            p->inflight_tail = NULL;
        p->ninflight--;
        for (int i = 0; i < h->nseg; i++) {
            struct gen *g = h->seg[i].g;
            int64_t end = h->seg[i].off + (int64_t)h->seg[i].len;
            if (end > g->acked_off)
                g->acked_off = end;
            e->state_ver++;
            g->refs--;
        }
        e->inflight_bytes -= h->in_bytes;
        e->inflight_chunks--;
        e->st.records_acked += h->b.nrecords;
        tj_chunks_pool_put(e->out_pool, &e->nout_pool, &h->b.records, 4 * e->cfg.chunk_bytes,
                           e->pool_keep);
        tj_engine_source_unref(h->src);
        free(h);
    }
    if (e->inflight_chunks == 0)
        wake(e->main_fd);
    if (e->reader_blocked &&
        (e->inflight_chunks == 0 || e->inflight_bytes + e->cfg.chunk_bytes <= e->cfg.read_ahead)) {
        e->reader_blocked = false;
        wake_reader(e);
    }
    pthread_mutex_unlock(&e->lock);
}

/* Submits again what the output refused, when its time came. The paths are walked only while
 * some wait: ten thousand idle files cost nothing here. */
void tj_seq_retry_due(struct tj_engine *e, int64_t now)
{
    pthread_mutex_lock(&e->lock);
    for (struct path *p = e->paths; p && e->nretry; p = p->next) {
        if (p->retry_at && p->retry_at <= now) {
            p->retry_at = 0;
            e->nretry--;
            submit_ready(e, p);
        }
    }
    pthread_mutex_unlock(&e->lock);
}

size_t tj_seq_inflight(struct tj_engine *e)
{
    size_t n;

    pthread_mutex_lock(&e->lock);
    n = e->inflight_chunks;
    pthread_mutex_unlock(&e->lock);
    return n;
}
