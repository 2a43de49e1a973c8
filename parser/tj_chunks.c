/* tj_chunks.c: reading into chunks (reader thread) and the workers that parse them (see
 * tj_chunks.h). */
#include "tj_chunks.h"
#include "tj_engine_int.h"
#include "tj_files.h"
#include "tj_ident.h"
#include "tj_seq.h"
#include "tj_state.h"

static void pool_get(struct tj_buf *pool, size_t *n, struct tj_buf *b, size_t max)
{
    if (*n) {
        *b = pool[--*n];
        b->len = 0;
    } else {
        tj_buf_init(b, max);
    }
    b->max = max;
}

void tj_chunks_pool_put(struct tj_buf *pool, size_t *n, struct tj_buf *b, size_t keep_cap,
                        size_t keep)
{
    if (*n < keep && b->cap && b->cap <= keep_cap)
        pool[(*n)++] = *b;
    else
        tj_buf_fini(b);
    tj_buf_init(b, 0);
}

/* Splits segs (covering n bytes in order) at byte k: the first part stays in a, the rest goes
 * to b. */
static void segs_split(const struct seg *s, int n, size_t k, struct seg *a, int *na, struct seg *b,
                       int *nb)
{
    *na = *nb = 0;
    for (int i = 0; i < n; i++) {
        struct seg x = s[i];
        if (k >= x.len) {
            a[(*na)++] = x;
            k -= x.len;
        } else if (k > 0) {
            a[(*na)++] = (struct seg){x.g, x.off, k};
            b[(*nb)++] = (struct seg){x.g, x.off + (int64_t)k, x.len - k};
            k = 0;
        } else {
            b[(*nb)++] = x;
        }
    }
}

void tj_chunks_segs_add(struct seg *s, int *n, struct gen *g, int64_t off, size_t len)
{
    if (*n && s[*n - 1].g == g && s[*n - 1].off + (int64_t)s[*n - 1].len == off)
        s[*n - 1].len += len;
    else
        s[(*n)++] = (struct seg){g, off, len};
}

/* Queues a chunk of the path made of carry bytes [0, n) (segments cseg): the rest of the carry
 * stays. Returns 0 or TJ_ENOMEM. */
int tj_chunks_dispatch(struct tj_engine *e, struct path *p, size_t n, size_t skip, bool final,
                       bool cut_tail)
{
    struct chunk *c = calloc(1, sizeof(*c));
    struct seg rest[MAX_SEGS];
    int nrest;

    if (!c)
        return TJ_ENOMEM;
    c->p = p;
    c->skip = skip;
    c->final = final;
    c->cut_tail = cut_tail;
    c->fmt = p->fmt;
    c->src = tj_engine_source_ref(p->src);
    c->b.key = slice_of(c->src->key ? c->src->key : p->name); /* a file's records: one key */
    c->b.topic = slice_of(c->src->topic);
    c->b.index = slice_of(c->src->index);
    c->b.service = slice_of(c->src->ctr ? c->src->ctr->name : NULL);
    segs_split(p->cseg, p->ncseg, n, c->seg, &c->nseg, rest, &nrest);
    pthread_mutex_lock(&e->lock);
    pool_get(e->in_pool, &e->nin_pool, &c->in, p->carry.max);
    pthread_mutex_unlock(&e->lock);
    if (n >= p->carry.len / 2) {
        /* Most of the carry goes: the chunk takes its buffer, the rest moves to a new one. */
        struct tj_buf t = c->in;
        c->in = p->carry;
        p->carry = t;
        if (tj_buf_append(&p->carry, c->in.data + n, c->in.len - n)) {
            t = c->in; /* give the buffer back: nothing changed */
            c->in = p->carry;
            p->carry = t;
            goto nomem;
        }
        c->in.len = n;
    } else {
        if (tj_buf_append(&c->in, p->carry.data, n))
            goto nomem;
        memmove(p->carry.data, p->carry.data + n, p->carry.len - n);
        p->carry.len -= n;
    }
    p->scanned = p->scanned > n ? p->scanned - n : 0;
    memcpy(p->cseg, rest, sizeof(rest));
    p->ncseg = nrest;
    c->in_bytes = n;

    pthread_mutex_lock(&e->lock);
    c->seq = p->seq++;
    for (int i = 0; i < c->nseg; i++)
        c->seg[i].g->refs++;
    if (p->inflight_tail)
        p->inflight_tail->next_inflight = c;
    else
        p->inflight = c;
    p->inflight_tail = c;
    p->ninflight++;
    e->inflight_bytes += c->in_bytes;
    e->inflight_chunks++;
    e->st.chunks++;
    if (e->jobs_tail)
        e->jobs_tail->next = c;
    else
        e->jobs = c;
    e->jobs_tail = c;
    pthread_cond_signal(&e->job_cv);
    pthread_mutex_unlock(&e->lock);
    return 0;
nomem:
    tj_engine_source_unref(c->src);
    tj_buf_fini(&c->in);
    free(c);
    return TJ_ENOMEM;
}

/* The first generation with bytes left to read. */
static struct gen *gen_reading(struct path *p)
{
    for (struct gen *g = p->gens; g; g = g->next)
        if (!g->eof)
            return g;
    return NULL;
}

/* The file at the path may have been truncated (copytruncate, a writer starting over) while it
 * was read: after each read of the file now at the path, its size and first bytes must still be
 * those of what was read before; otherwise the bytes just read belong to its new content. */
static bool read_still_valid(struct tj_engine *e, struct path *p, struct gen *g)
{
    struct stat st;

    TJ_UNUSED(e);
    TJ_UNUSED(p);
    if (fstat(g->fd, &st) != 0 || st.st_size < g->read_off)
        return false;
    pthread_mutex_lock(&e->lock);
    g->size_seen = st.st_size;
    pthread_mutex_unlock(&e->lock);
    return tj_files_gen_head_matches(g);
}

/* Keeps the first bytes read of a file read from its start, and its fingerprint from them. */
static void head_grow(struct tj_engine *e, struct gen *g, const char *data, size_t n)
{
    size_t k;

    if (!g->head_from_reads || g->read_off != (int64_t)g->head_len ||
        g->head_len == TJ_FILEID_FP_MAX)
        return;
    k = TJ_FILEID_FP_MAX - g->head_len < n ? TJ_FILEID_FP_MAX - g->head_len : n;
    memcpy(g->head + g->head_len, data, k);
    g->head_len += (uint32_t)k;
    pthread_mutex_lock(&e->lock); /* checkpoints read it */
    g->id.fp_len = g->head_len;
    g->id.fp_hash = tj_fileid_hash(g->head, g->head_len);
    e->state_ver++;
    pthread_mutex_unlock(&e->lock);
}

/* Ships what the carry holds now (the file ended, or went quiet long enough): every complete
 * line, and with `all` the last unterminated one too. */
static int flush_carry(struct tj_engine *e, struct path *p, bool all)
{
    const char *nl;
    size_t n;

    if (!p->carry.len)
        return 0;
    if (all)
        return tj_chunks_dispatch(e, p, p->carry.len, 0, true, false);
    nl = memrchr(p->carry.data, '\n', p->carry.len);
    n = nl ? (size_t)(nl - p->carry.data) + 1 : 0;
    return n ? tj_chunks_dispatch(e, p, n, 0, false, false) : 0;
}

/* Reads the next piece of the path's data into its carry and queues what can be parsed.
 * Returns true when it read something (there may be more). */
static bool path_read_once(struct tj_engine *e, struct path *p, struct tj_cut *cut, int64_t now)
{
    const size_t max_raw = TJ_ASSEMBLE_MAX_RAW(e->cfg.max_line_bytes);
    struct gen *g = gen_reading(p);
    size_t want = e->cfg.chunk_bytes, base = 0, k;
    ssize_t n;

    if (!g)
        return false;
    if (!p->carry.cap) {
        pthread_mutex_lock(&e->lock);
        pool_get(e->in_pool, &e->nin_pool, &p->carry, p->carry.max);
        pthread_mutex_unlock(&e->lock);
    }
    if (tj_buf_reserve(&p->carry, want)) {
        flush_carry(e, p, true); /* cannot happen: the carry never exceeds max_raw */
        return true;
    }
    n = pread(g->fd, p->carry.data + p->carry.len, want, g->read_off);
    if (n < 0 && errno == EINTR)
        return true;
    if (n <= 0) {
        if (n < 0)
            tj_log(TJ_LOG_ERROR, "reading %s: %s; the file is left", p->name, strerror(errno));
        if (g->retired && n == 0 && p->carry.len && p->carry.data[p->carry.len - 1] != '\n' &&
            tj_files_carry_uses(p, g)) {
            /* A line of this rotated file is cut short: its writer may still finish it (it
             * has not reopened its log yet). Wait for that, --rotate-wait at most, before the
             * files after it are read. */
            if (!g->torn_since)
                g->torn_since = now;
            if (now - g->torn_since < (int64_t)e->cfg.rotate_wait_ms)
                return false;
        }
        if (g->retired && n == 0 && !g->next && p->carry.len && p->fmt == TJ_FORMAT_JSONFILE &&
            p->ncseg < MAX_SEGS && tj_files_carry_uses(p, g) &&
            tj_assemble_cut(cut, p->carry.data, p->carry.len, 0) != p->carry.len) {
            /* A line still in 16 KiB pieces continues in the next file, which Docker creates
             * just after the rename: it may not exist yet. Wait for it, --rotate-wait at most,
             * before the pieces are shipped on their own. */
            if (!g->torn_since)
                g->torn_since = now;
            if (now - g->torn_since < (int64_t)e->cfg.rotate_wait_ms)
                return false;
        }
        if (g->retired || n < 0) {
            g->eof = true;
            g->linger_until = now + e->cfg.rotate_wait_ms;
            if (n < 0)
                g->retired = true;
            /* Nothing will complete a line cut short at its end: end it here (the '\n' is not
             * the file's, so no segment counts it). */
            if (p->carry.len && p->carry.data[p->carry.len - 1] != '\n')
                p->carry.data[p->carry.len++] = '\n';
            /* The carry joins the next file only for a line still in 16 KiB pieces. */
            if (!g->next || p->fmt != TJ_FORMAT_JSONFILE || p->ncseg == MAX_SEGS ||
                tj_assemble_cut(cut, p->carry.data, p->carry.len, 0) == p->carry.len)
                flush_carry(e, p, true);
            return g->next != NULL;
        }
        if (e->cfg.exit_on_eof)
            flush_carry(e, p, true);
        else if (p->carry.len && now - p->last_read_ms >= e->cfg.multiline_timeout_ms)
            flush_carry(e, p, false);
        return false;
    }
    if (!g->retired && !read_still_valid(e, p, g)) {
        tj_files_handle_truncation(e, p, g); /* what was just read is the new content: not kept */
        return true;
    }
    head_grow(e, g, p->carry.data + p->carry.len, (size_t)n);
    tj_chunks_segs_add(p->cseg, &p->ncseg, g, g->read_off, (size_t)n);
    g->read_off += n;
    p->carry.len += (size_t)n;
    p->last_read_ms = now;
    pthread_mutex_lock(&e->lock);
    e->st.bytes_read += (uint64_t)n;
    pthread_mutex_unlock(&e->lock);

    if (p->skipping) { /* the rest of an overlong line already shipped cut */
        const char *nl = memchr(p->carry.data, '\n', p->carry.len);
        if (!nl) {
            tj_chunks_dispatch(e, p, p->carry.len, p->carry.len, false, false);
            return true;
        }
        base = (size_t)(nl - p->carry.data) + 1;
        p->skipping = false;
        p->scanned = base;
    }
    if (p->fmt == TJ_FORMAT_AUTO)
        p->fmt = tj_assemble_detect(p->carry.data + base, p->carry.len - base, cut->scratch);
    cut->fmt = p->fmt;
    cut->multiline = p->src->rs->multiline;
    k = tj_assemble_cut(cut, p->carry.data + base, p->carry.len - base,
                        p->scanned > base ? p->scanned - base : 0);
    if (k) {
        const char *nl = memrchr(p->carry.data, '\n', p->carry.len);
        size_t lines_end = (size_t)(nl - p->carry.data) + 1;
        tj_chunks_dispatch(e, p, base + k, base, false, false);
        p->scanned = lines_end - (base + k); /* what follows the cut holds no event start */
    } else if (p->carry.len >= max_raw) {
        /* No boundary in all that: an event longer than any record may be. */
        const char *nl = memrchr(p->carry.data + base, '\n', p->carry.len - base);
        if (nl) {
            tj_chunks_dispatch(e, p, (size_t)(nl - p->carry.data) + 1, base, false, false);
        } else {
            tj_chunks_dispatch(e, p, p->carry.len, base, false, true);
            p->skipping = true;
        }
    } else {
        const char *nl;
        if (base)
            tj_chunks_dispatch(e, p, base, base, false, false);
        nl = memrchr(p->carry.data, '\n', p->carry.len);
        p->scanned = nl ? (size_t)(nl - p->carry.data) + 1 : 0;
    }
    return true;
}

/* path_read_once, then an empty carry gives its buffer back: a thousand quiet files hold no
 * read buffers. */
bool tj_chunks_path_read(struct tj_engine *e, struct path *p, struct tj_cut *cut, int64_t now)
{
    bool more = path_read_once(e, p, cut, now);

    if (!p->carry.len && p->carry.cap) {
        size_t max = p->carry.max;
        pthread_mutex_lock(&e->lock);
        tj_chunks_pool_put(e->in_pool, &e->nin_pool, &p->carry, 2 * e->cfg.chunk_bytes + 65536,
                           e->pool_keep);
        pthread_mutex_unlock(&e->lock);
        p->carry.max = max;
    }
    return more;
}

bool tj_chunks_budget_left(struct tj_engine *e)
{
    bool ok;

    pthread_mutex_lock(&e->lock);
    ok = e->inflight_chunks == 0 || e->inflight_bytes + e->cfg.chunk_bytes <= e->cfg.read_ahead;
    e->reader_blocked = !ok;
    pthread_mutex_unlock(&e->lock);
    return ok;
}

/* Encodes one matched event into the chunk's records (a tj_batch_encode_fn). */
static int encode_event(void *arg, const struct tj_event *ev, const struct tj_match_result *res,
                        const size_t *ov)
{
    struct work *w = arg;
    struct chunk *c = w->c;
    int rc = tj_ruleset_encode(c->src->rs, ev, res, ov, &c->p->meta, &c->b.records, &w->st);

    if (rc == TJ_ENOSPC && c->b.records.len) {
        c->b.records.max += w->record_room; /* room for this one record, whatever it is */
        rc = tj_ruleset_encode(c->src->rs, ev, res, ov, &c->p->meta, &c->b.records, &w->st);
    }
    if (rc) {
        tj_log(TJ_LOG_ERROR, "%s: the record at offset %lld could not be encoded: %s", c->p->name,
               (long long)ev->offset, tj_strerror(rc));
        return 0; /* keep the others */
    }
    c->b.nrecords++;
    return 0;
}

static int on_event(void *arg, const struct tj_event *ev)
{
    struct work *w = arg;

    return tj_batch_push(w->batch, ev, w->c->src->rs, w->m, encode_event, w);
}

static int64_t chunk_offset(const struct chunk *c, size_t pos)
{
    for (int i = 0; i < c->nseg; i++) {
        if (pos < c->seg[i].len || i == c->nseg - 1)
            return c->seg[i].off + (int64_t)pos;
        pos -= c->seg[i].len;
    }
    return 0;
}

static void chunk_parse(struct work *w)
{
    struct chunk *c = w->c;
    const char *d = c->in.data, *end = d + c->in.len, *p = d + c->skip, *nl;
    char now[40];
    struct tj_feed f = {w->m, c->src->rs->multiline, on_event, w, {now, 0}};

    tj_time_now(now, sizeof(now));
    f.now.len = strlen(now);
    tj_batch_region(w->batch, d, end, now, sizeof(now)); /* both stay put until the run below */
    tj_assembler_reset(w->a, c->fmt);
    while (p < end && (nl = memchr(p, '\n', (size_t)(end - p)))) {
        tj_assembler_line(w->a, p, (size_t)(nl - p), chunk_offset(c, (size_t)(p - d)), false, &f);
        p = nl + 1;
    }
    if (p < end && (c->final || c->cut_tail))
        tj_assembler_line(w->a, p, (size_t)(end - p), chunk_offset(c, (size_t)(p - d)), c->cut_tail,
                          &f);
    tj_assembler_flush(w->a, true, &f);
    tj_batch_run(w->batch, c->src->rs, w->m, encode_event, w); /* encode_event logs */
}

void *tj_chunks_worker_main(void *arg)
{
    struct work *w = arg;
    struct tj_engine *e = w->e;

    for (;;) {
        struct chunk *c;
        pthread_mutex_lock(&e->lock);
        while (!e->jobs && !e->workers_stop)
            pthread_cond_wait(&e->job_cv, &e->lock);
        c = e->jobs;
        if (!c) {
            pthread_mutex_unlock(&e->lock);
            break;
        }
        e->jobs = c->next;
        if (!e->jobs)
            e->jobs_tail = NULL;
        pool_get(e->out_pool, &e->nout_pool, &c->b.records, 16 * c->in.len + w->record_room);
        pthread_mutex_unlock(&e->lock);
        w->c = c;
        {
            struct tj_parse_stats before = w->st;
            chunk_parse(w);
            tj_engine_counters_add(c->src->ctr, &before, &w->st, c->src->rs->nalt != 0);
            if (tj_tap_wanted(e->tap,
                              w->st.failed + w->st.limited + w->st.json_errors + w->st.truncated !=
                                  before.failed + before.limited + before.json_errors +
                                      before.truncated))
                tj_tap_offer(e->tap, c->src->ctr ? c->src->ctr->name : "file", c->src->rs,
                             &c->p->meta, c->b.records.data, c->b.records.len);
        }
        tj_seq_chunk_ready(e, c);
    }
    return NULL;
}

void tj_chunks_stop_workers(struct tj_engine *e)
{
    pthread_mutex_lock(&e->lock);
    e->workers_stop = true;
    pthread_cond_broadcast(&e->job_cv);
    pthread_mutex_unlock(&e->lock);
    for (unsigned i = 0; i < e->nworkers_started; i++)
        pthread_join(e->workers[i], NULL);
    e->nworkers_started = 0;
}

struct work *tj_chunks_works_create(struct tj_engine *e)
{
    struct work *w = calloc(e->cfg.workers, sizeof(*w));

    if (!w)
        return NULL;
    for (unsigned i = 0; i < e->cfg.workers; i++) {
        w[i].e = e;
        w[i].record_room = 64 * e->cfg.max_line_bytes + 65536;
        w[i].m = tj_matcher_create(&e->cfg.limits);
        w[i].a = tj_assembler_create(TJ_FORMAT_AUTO, e->cfg.max_line_bytes);
        w[i].batch = tj_batch_create();
        if (!w[i].m || !w[i].a || !w[i].batch)
            return w; /* the caller sees the NULLs */
    }
    return w;
}

void tj_chunks_works_destroy(struct tj_engine *e, struct work *w)
{
    if (!w)
        return;
    for (unsigned i = 0; i < e->cfg.workers; i++) {
        struct tj_parse_stats *s = &w[i].st;
        e->st.parse.records += s->records;
        e->st.parse.matched += s->matched;
        e->st.parse.failed += s->failed;
        e->st.parse.limited += s->limited;
        e->st.parse.json_errors += s->json_errors;
        e->st.parse.truncated += s->truncated;
        tj_matcher_destroy(w[i].m);
        tj_assembler_destroy(w[i].a);
        tj_batch_destroy(w[i].batch);
    }
    free(w);
}
