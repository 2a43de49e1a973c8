/* tj_record.c: shapes (metadata + field tree) and the record encoder. A shape is immutable once
 * built and may be shared by any number of threads; encoding writes into the caller's buffer. */
#include "tj_record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tj_json.h"
#include "tj_simd.h"

enum node_kind {
    N_OBJECT,
    N_TIMESTAMP,
    N_MESSAGE,
    N_STREAM,
    N_ORIGINAL,
    N_CREATED,
    N_META,
    N_OFFSET,
    N_ATTRS,
    N_TIMERAW,
    N_TAGS,
    N_FIELD,
};

/* Presence bits: which leaves a record can fill. Objects hold the OR of their leaves, so a
 * subtree with nothing to say is skipped without being walked. */
enum {
    B_TIME = TJ_META_COUNT,
    B_STREAM,
    B_ATTRS,
    B_TIMERAW,
    B_ORIGINAL,
    B_CREATED,
    B_OFFSET,
    B_TAGS,
    B_ALWAYS,
};

#define KEY_PAD 16

struct node {
    char *key; /* encoded "\"name\":", zero-padded to a multiple of KEY_PAD bytes */
    size_t keylen, keypad;
    unsigned mask;   /* presence bits of this leaf, or of every leaf below this object */
    bool has_fields; /* an object with pattern fields below it (known only per match) */
    char *name;      /* raw segment, for lookups while building */
    enum node_kind kind;
    int meta; /* enum tj_meta_key for N_META */
    int first_child, last_child, next;
    uint32_t *groups; /* N_FIELD, N_MESSAGE: captures that may fill it, first set wins */
    enum tj_field_type *types;
    size_t ngroups;
};

/* The tree flattened in depth-first order: what the encoder runs, start to end. */
enum op_kind { OP_OPEN, OP_CLOSE, OP_LEAF };

struct op {
    enum op_kind op;
    const struct node *nd; /* the node (borrowed from the tree) */
    uint32_t skip;         /* OP_OPEN: index just past the matching OP_CLOSE */
};

/* The text between two leaves written one after the other (closing braces, a comma, the keys
 * and opening braces of the objects entered, the second leaf's key): a slice of the shape's
 * plan text, zero-padded to a multiple of KEY_PAD bytes so that it is copied in whole blocks. */
struct run {
    uint32_t off, len;
};

/* A shape with more leaves than this encodes by walking its ops (run_ops); the plan's table
 * grows with the square of the leaves. */
#define PLAN_MAX_LEAVES 64

/* How the plan writes a leaf's value. */
enum leaf_op {
    L_TEXT,   /* a pattern field with one capture, of type text */
    L_INT,    /* a pattern field with one capture, of type int */
    L_FIELD,  /* any other pattern field */
    L_STRING, /* @timestamp or stream: the event's text */
    L_META,   /* a value of tj_meta, already encoded */
    L_OFFSET, /* log.offset */
    L_OTHER,  /* message, event.original, docker.attrs, tags: emit_leaf */
};

/* A leaf as the plan runs it. */
struct leaf {
    const struct node *nd;
    uint32_t group; /* L_TEXT: the capture */
    uint8_t op;     /* enum leaf_op */
};

/* A pattern field of one capture: leaf k is present when capture `group` is set and not empty. */
struct one_field {
    uint32_t leaf, group;
};

struct tj_shape {
    struct node *nodes;
    size_t n, cap;
    int message; /* index of the message node */
    struct op *ops;
    size_t nops;
    size_t static_bytes; /* keys and punctuation of a record with every leaf present */
    /* The plan: which text goes between any two present leaves, so that encoding is one copy
     * and one value per present leaf. Row 0 is the record's start, row k + 1 follows leaf k;
     * column k leads to leaf k, column nleaves to the record's end. NULL: use run_ops. */
    struct leaf *leaves;
    size_t nleaves;
    struct run *trans;                 /* (nleaves + 1) x (nleaves + 1) */
    uint64_t bit_leaves[B_ALWAYS + 1]; /* per presence bit: the leaves (bit k: leaf k) it fills */
    struct one_field *ones;            /* pattern fields with one capture */
    size_t nones;
    uint32_t *multis; /* leaves of pattern fields with several captures (pick_group) */
    size_t nmultis;
    char *plan_text;
    size_t plan_max; /* the longest padded run */
};

/* Zero bytes kept after each metadata value, so that it is copied in whole 16-byte blocks. */
#define META_PAD 16

void tj_meta_init(struct tj_meta *m)
{
    memset(m, 0, sizeof(*m));
}

void tj_meta_fini(struct tj_meta *m)
{
    for (int i = 0; i < TJ_META_COUNT; i++)
        free(m->val[i]);
    memset(m, 0, sizeof(*m));
}

int tj_meta_set(struct tj_meta *m, enum tj_meta_key k, const char *s, size_t n)
{
    struct tj_buf b;

    if (!s) {
        free(m->val[k]);
        m->val[k] = NULL;
        m->len[k] = 0;
        m->present &= ~(1u << k);
        return 0;
    }
    tj_buf_init(&b, SIZE_MAX / 8);
    if (tj_json_string(&b, s, n) || tj_buf_reserve(&b, META_PAD)) {
        tj_buf_fini(&b);
        return TJ_ENOMEM;
    }
    memset(b.data + b.len, 0, META_PAD); /* see put_meta */
    free(m->val[k]);
    m->val[k] = b.data;
    m->len[k] = b.len;
    m->present |= 1u << k;
    return 0;
}

/* ---- building ---- */

static int add_node(struct tj_shape *s, int parent, const char *name, enum node_kind kind)
{
    struct node *nd;
    struct tj_buf kb;

    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 32;
        struct node *p = realloc(s->nodes, ncap * sizeof(*p));
        if (!p)
            return TJ_ENOMEM;
        s->nodes = p;
        s->cap = ncap;
    }
    nd = &s->nodes[s->n];
    memset(nd, 0, sizeof(*nd));
    nd->kind = kind;
    nd->first_child = nd->last_child = nd->next = -1;
    if (name) {
        tj_buf_init(&kb, SIZE_MAX / 8);
        if (tj_json_string(&kb, name, strlen(name)) || tj_buf_append(&kb, ":", 1)) {
            tj_buf_fini(&kb);
            return TJ_ENOMEM;
        }
        nd->keylen = kb.len;
        nd->keypad = (kb.len + KEY_PAD - 1) / KEY_PAD * KEY_PAD;
        nd->key = calloc(1, nd->keypad);
        if (nd->key)
            memcpy(nd->key, kb.data, kb.len);
        tj_buf_fini(&kb);
        if (!nd->key)
            return TJ_ENOMEM;
        nd->name = strdup(name);
        if (!nd->name) {
            free(nd->key);
            return TJ_ENOMEM;
        }
    }
    if (parent >= 0) {
        struct node *p = &s->nodes[parent];
        if (p->last_child >= 0)
            s->nodes[p->last_child].next = (int)s->n;
        else
            p->first_child = (int)s->n;
        p->last_child = (int)s->n;
    }
    return (int)s->n++;
}

static int find_child(const struct tj_shape *s, int parent, const char *name)
{
    for (int c = s->nodes[parent].first_child; c >= 0; c = s->nodes[c].next)
        if (strcmp(s->nodes[c].name, name) == 0)
            return c;
    return -1;
}

/* Walks/creates the objects of path[0..n-1) and returns the parent index, or <0 on error. */
static int make_parents(struct tj_shape *s, char *const *path, size_t n, char *err, size_t errlen)
{
    int cur = 0;

    for (size_t i = 0; i + 1 < n; i++) {
        int c = find_child(s, cur, path[i]);
        if (c < 0) {
            c = add_node(s, cur, path[i], N_OBJECT);
            if (c < 0) {
                snprintf(err, errlen, "out of memory");
                return c;
            }
        } else if (s->nodes[c].kind != N_OBJECT) {
            snprintf(err, errlen, "field path goes through '%s', which holds a value", path[i]);
            return TJ_EINVAL;
        }
        cur = c;
    }
    return cur;
}

static int add_meta(struct tj_shape *s, const char *dotted, enum node_kind kind, int meta)
{
    char buf[64], *path[4], *save = NULL, err[16];
    size_t n = 0;
    int parent, idx;

    snprintf(buf, sizeof(buf), "%s", dotted);
    for (char *t = strtok_r(buf, ".", &save); t && n < 4; t = strtok_r(NULL, ".", &save))
        path[n++] = t;
    parent = make_parents(s, path, n, err, sizeof(err));
    if (parent < 0)
        return parent;
    idx = add_node(s, parent, path[n - 1], kind);
    if (idx < 0)
        return idx;
    s->nodes[idx].meta = meta;
    return idx;
}

static int push_group(struct node *nd, uint32_t group, enum tj_field_type type)
{
    uint32_t *g = realloc(nd->groups, (nd->ngroups + 1) * sizeof(*g));
    enum tj_field_type *t;

    if (!g)
        return TJ_ENOMEM;
    nd->groups = g;
    t = realloc(nd->types, (nd->ngroups + 1) * sizeof(*t));
    if (!t)
        return TJ_ENOMEM;
    nd->types = t;
    nd->groups[nd->ngroups] = group;
    nd->types[nd->ngroups] = type;
    nd->ngroups++;
    return 0;
}

static void path_text(const struct tj_grok_field *f, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < f->nseg && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? "." : "", f->seg[i]);
}

static int add_field(struct tj_shape *s, const struct tj_grok_field *f, char *err, size_t errlen)
{
    char where[256];
    int parent, c;

    path_text(f, where, sizeof(where));
    if (strcmp(f->seg[0], "@metadata") == 0)
        return 0; /* Logstash's scratch space: matched, never part of the record */
    if (strcmp(f->seg[0], "tags") == 0) { /* added last, after the fields, but reserved too */
        snprintf(err, errlen, "field '%s' would replace tailjet's own tags; rename it", where);
        return TJ_EINVAL;
    }
    parent = make_parents(s, f->seg, f->nseg, err, errlen);
    if (parent < 0) {
        size_t k = strlen(err);
        snprintf(err + k, errlen - k, " (field '%s')", where);
        return parent;
    }
    c = find_child(s, parent, f->seg[f->nseg - 1]);
    if (c < 0) {
        c = add_node(s, parent, f->seg[f->nseg - 1], N_FIELD);
        if (c < 0) {
            snprintf(err, errlen, "out of memory");
            return c;
        }
    }
    switch (s->nodes[c].kind) {
    case N_FIELD:
    case N_MESSAGE:
        if (push_group(&s->nodes[c], f->group, f->type)) {
            snprintf(err, errlen, "out of memory");
            return TJ_ENOMEM;
        }
        return 0;
    case N_OBJECT:
        snprintf(err, errlen,
                 "field '%s' collides with the object '%s' (tailjet's metadata or another "
                 "field's path); rename it",
                 where, where);
        return TJ_EINVAL;
    default:
        snprintf(err, errlen,
                 "field '%s' would replace tailjet's own metadata; rename it (only 'message' "
                 "may be replaced)",
                 where);
        return TJ_EINVAL;
    }
}

/* Fills mask and has_fields bottom-up from node i; returns the node's mask. */
static unsigned set_masks(struct tj_shape *s, int i)
{
    struct node *nd = &s->nodes[i];

    switch (nd->kind) {
    case N_OBJECT:
        nd->mask = 0;
        for (int c = nd->first_child; c >= 0; c = s->nodes[c].next) {
            nd->mask |= set_masks(s, c);
            nd->has_fields |= s->nodes[c].kind == N_FIELD || s->nodes[c].has_fields;
        }
        break;
    case N_TIMESTAMP:
        nd->mask = 1u << B_TIME;
        break;
    case N_STREAM:
        nd->mask = 1u << B_STREAM;
        break;
    case N_ORIGINAL:
        nd->mask = 1u << B_ORIGINAL;
        break;
    case N_CREATED:
        nd->mask = 1u << B_CREATED;
        break;
    case N_META:
        nd->mask = 1u << nd->meta;
        break;
    case N_OFFSET:
        nd->mask = 1u << B_OFFSET;
        break;
    case N_ATTRS:
        nd->mask = 1u << B_ATTRS;
        break;
    case N_TIMERAW:
        nd->mask = 1u << B_TIMERAW;
        break;
    case N_TAGS:
        nd->mask = 1u << B_TAGS;
        break;
    case N_MESSAGE:
        nd->mask = 1u << B_ALWAYS;
        break;
    case N_FIELD:
        nd->mask = 0;
        break;
    }
    return nd->mask;
}

/* Appends the ops of node i's children (i is an object). */
static void flatten(struct tj_shape *s, int i)
{
    for (int c = s->nodes[i].first_child; c >= 0; c = s->nodes[c].next) {
        const struct node *nd = &s->nodes[c];
        s->static_bytes += nd->keypad + 4; /* key, comma, braces */
        if (nd->kind == N_OBJECT) {
            size_t open = s->nops++;
            s->ops[open] = (struct op){OP_OPEN, nd, 0};
            flatten(s, c);
            s->ops[s->nops++] = (struct op){OP_CLOSE, nd, 0};
            s->ops[open].skip = (uint32_t)s->nops;
        } else {
            s->ops[s->nops++] = (struct op){OP_LEAF, nd, 0};
        }
    }
}

/* The objects that enclose each leaf, outermost first (the root not included). */
struct leaf_path {
    const struct node *obj[TJ_GROK_MAX_FIELD_DEPTH + 2];
    size_t depth;
};

/* Appends to b the text written between leaf `from` (NULL: the record's start) and leaf `to`
 * (NULL: the record's end), zero-padded to KEY_PAD bytes, and sets r to it. Returns 0 or
 * TJ_ENOMEM. */
static int plan_run(struct tj_buf *b, const struct leaf_path *from, const struct node *to,
                    const struct leaf_path *to_path, struct run *r)
{
    static const char zeros[KEY_PAD];
    static const struct leaf_path none;
    const struct leaf_path *fp = from ? from : &none, *tp = to ? to_path : &none;
    size_t start = b->len, lcp = 0, pad;
    int rc = 0;

    while (lcp < fp->depth && lcp < tp->depth && fp->obj[lcp] == tp->obj[lcp])
        lcp++;
    if (!from)
        rc |= tj_buf_append(b, "{", 1);
    for (size_t d = lcp; d < fp->depth; d++)
        rc |= tj_buf_append(b, "}", 1);
    if (!to) {
        rc |= tj_buf_append(b, "}\n", 2);
    } else {
        if (from)
            rc |= tj_buf_append(b, ",", 1);
        for (size_t d = lcp; d < tp->depth; d++)
            rc |= tj_buf_append(b, tp->obj[d]->key, tp->obj[d]->keylen) | tj_buf_append(b, "{", 1);
        rc |= tj_buf_append(b, to->key, to->keylen);
    }
    if (rc)
        return TJ_ENOMEM;
    r->off = (uint32_t)start;
    r->len = (uint32_t)(b->len - start);
    pad = (KEY_PAD - r->len % KEY_PAD) % KEY_PAD;
    return tj_buf_append(b, zeros, pad) ? TJ_ENOMEM : 0;
}

/* Builds the plan from the ops. Returns 0 (also when the shape has too many leaves for one:
 * it then has none) or TJ_ENOMEM. */
static int build_plan(struct tj_shape *s)
{
    struct leaf_path *paths = NULL, cur = {{NULL}, 0};
    struct tj_buf text;
    size_t n = 0, rows;
    int rc = TJ_ENOMEM;

    for (size_t i = 0; i < s->nops; i++)
        n += s->ops[i].op == OP_LEAF;
    if (n > PLAN_MAX_LEAVES)
        return 0;
    rows = n + 1;
    tj_buf_init(&text, (size_t)UINT32_MAX);
    s->leaves = calloc(rows, sizeof(*s->leaves));
    s->trans = calloc(rows * rows, sizeof(*s->trans));
    s->ones = calloc(rows, sizeof(*s->ones));
    s->multis = calloc(rows, sizeof(*s->multis));
    paths = calloc(rows, sizeof(*paths));
    if (!s->leaves || !s->trans || !s->ones || !s->multis || !paths)
        goto out;
    for (size_t i = 0; i < s->nops; i++) {
        const struct op *op = &s->ops[i];
        if (op->op == OP_OPEN) {
            cur.obj[cur.depth++] = op->nd;
        } else if (op->op == OP_CLOSE) {
            cur.depth--;
        } else {
            const struct node *nd = op->nd;
            size_t k = s->nleaves++;
            struct leaf *lf = &s->leaves[k];
            paths[k] = cur;
            lf->nd = nd;
            switch (nd->kind) {
            case N_FIELD:
                lf->op = nd->ngroups > 1                   ? L_FIELD
                         : nd->types[0] == TJ_FIELD_STRING ? L_TEXT
                         : nd->types[0] == TJ_FIELD_INT    ? L_INT
                                                           : L_FIELD;
                lf->group = nd->groups[0];
                if (nd->ngroups == 1)
                    s->ones[s->nones++] = (struct one_field){(uint32_t)k, nd->groups[0]};
                else
                    s->multis[s->nmultis++] = (uint32_t)k;
                break;
            case N_TIMESTAMP:
            case N_STREAM:
                lf->op = L_STRING;
                break;
            case N_META:
                lf->op = L_META;
                break;
            case N_OFFSET:
                lf->op = L_OFFSET;
                break;
            default:
                lf->op = L_OTHER;
                break;
            }
            if (nd->kind != N_FIELD) /* one presence bit each, see set_masks */
                s->bit_leaves[__builtin_ctz(nd->mask)] |= (uint64_t)1 << k;
        }
    }
    /* Row r follows leaf r - 1 (row 0: the start) and only leads to a later leaf or the end. */
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = r; c < rows; c++) {
            struct run *run = &s->trans[r * rows + c];
            if (plan_run(&text, r ? &paths[r - 1] : NULL, c < n ? s->leaves[c].nd : NULL, &paths[c],
                         run))
                goto out;
            if (run->len > s->plan_max)
                s->plan_max = run->len;
        }
    }
    s->plan_max = (s->plan_max + KEY_PAD - 1) / KEY_PAD * KEY_PAD;
    s->plan_text = text.data;
    text.data = NULL;
    rc = 0;
out:
    tj_buf_fini(&text);
    free(paths);
    if (rc) {
        free(s->leaves);
        free(s->trans);
        free(s->ones);
        free(s->multis);
        s->leaves = NULL;
        s->trans = NULL;
        s->ones = NULL;
        s->multis = NULL;
        s->nleaves = s->nones = s->nmultis = 0;
        memset(s->bit_leaves, 0, sizeof(s->bit_leaves));
    }
    return rc;
}

struct tj_shape *tj_shape_create(const struct tj_grok *g, char *err, size_t errlen)
{
    static const struct {
        const char *path;
        enum node_kind kind;
        int meta;
    } meta[] = {
        {"@timestamp", N_TIMESTAMP, 0},
        {"message", N_MESSAGE, 0},
        {"stream", N_STREAM, 0},
        {"event.original", N_ORIGINAL, 0},
        {"event.created", N_CREATED, 0},
        {"container.id", N_META, TJ_META_CONTAINER_ID},
        {"container.name", N_META, TJ_META_CONTAINER_NAME},
        {"container.image.name", N_META, TJ_META_IMAGE_NAME},
        {"service.name", N_META, TJ_META_SERVICE_NAME},
        {"service.id", N_META, TJ_META_SERVICE_ID},
        {"service.namespace", N_META, TJ_META_SERVICE_NAMESPACE},
        {"host.name", N_META, TJ_META_HOST_NAME},
        {"log.file.path", N_META, TJ_META_FILE_PATH},
        {"log.offset", N_OFFSET, 0},
        {"docker.attrs", N_ATTRS, 0},
        {"docker.time", N_TIMERAW, 0},
    };
    struct tj_shape *s = calloc(1, sizeof(*s));
    int idx;

    if (!s || add_node(s, -1, NULL, N_OBJECT) < 0)
        goto oom;
    for (size_t i = 0; i < TJ_ARRAY_LEN(meta); i++) {
        idx = add_meta(s, meta[i].path, meta[i].kind, meta[i].meta);
        if (idx < 0)
            goto oom;
        if (meta[i].kind == N_MESSAGE)
            s->message = idx;
    }
    for (size_t i = 0; g && i < g->nfields; i++)
        if (add_field(s, &g->fields[i], err, errlen))
            goto fail;
    if (add_meta(s, "tags", N_TAGS, 0) < 0)
        goto oom;
    set_masks(s, 0);
    s->ops = calloc(2 * s->n, sizeof(*s->ops));
    if (!s->ops)
        goto oom;
    flatten(s, 0);
    if (build_plan(s))
        goto oom;
    return s;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    tj_shape_destroy(s);
    return NULL;
}

void tj_shape_destroy(struct tj_shape *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->nodes[i].key);
        free(s->nodes[i].name);
        free(s->nodes[i].groups);
        free(s->nodes[i].types);
    }
    free(s->nodes);
    free(s->ops);
    free(s->leaves);
    free(s->trans);
    free(s->ones);
    free(s->multis);
    free(s->plan_text);
    free(s);
}

/* ---- encoding ---- */

struct ectx {
    struct tj_buf *out;
    const struct tj_event *ev;
    const struct tj_meta *meta;
    const size_t *ov;
    int msg_group;    /* index into the message node's groups that replaced it, or -1 */
    unsigned present; /* presence bits of this record */
};

static const char *const tag_names[] = {
    "_grokparsefailure", "_jsonparsefailure", "_truncated",        "_groktimeout",
    "_patternerror",     "_labelsmissing",    "_dateparsefailure", "_timestampparsefailure"};

/* The first group of nd that matched something non-empty (Logstash keeps no empty capture). */
static int pick_group(const struct node *nd, const size_t *ov)
{
    if (!ov)
        return -1;
    for (size_t i = 0; i < nd->ngroups; i++) {
        size_t a = ov[2 * nd->groups[i]], b = ov[2 * nd->groups[i] + 1];
        if (a != SIZE_MAX && b > a)
            return (int)i;
    }
    return -1;
}

/* Writes an optional comma and the node's key, into the room the buffer's slack guarantees
 * (the shape's static bytes, see tj_record_encode). The padded key is copied in fixed 16-byte
 * blocks, which compile to vector moves instead of a memcpy call. */
static inline void put_key(struct tj_buf *out, const struct node *nd, bool comma)
{
    char *w = out->data + out->len;

    *w = ',';
    w += comma;
    memcpy(w, nd->key, KEY_PAD);
    if (TJ_UNLIKELY(nd->keypad > KEY_PAD))
        for (size_t k = KEY_PAD; k < nd->keypad; k += KEY_PAD)
            memcpy(w + k, nd->key + k, KEY_PAD);
    out->len += comma + nd->keylen;
}

static inline void put_char(struct tj_buf *out, char ch)
{
    out->data[out->len++] = ch;
}

/* True for 1 to 18 decimal digits without a leading zero: a JSON integer that fits int64. */
static inline bool canonical_digits(const char *s, size_t n)
{
    if (n == 0 || n > 18 || (s[0] == '0' && n > 1))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)(s[i] - '0') > 9)
            return false;
    return true;
}

/* Writes s[0..n) when it is 1 to 16 digits without a leading zero (a JSON integer as it is,
 * the common :int capture), with one block load, test and store. Returns false, having
 * written nothing, for anything else (emit_field then parses it, or keeps it as text). */
static inline bool put_digits(struct tj_buf *out, const char *s, size_t n)
{
#if defined(__SSE2__)
    __m128i v, d;
    uint32_t digits, want = (uint32_t)(((uint64_t)1 << n) - 1);

    if (n - 1 >= 16 || (s[0] == '0' && n > 1) || !tj_block_readable(s, n) ||
        tj_buf_reserve(out, 16))
        return false;
    v = _mm_loadu_si128((const __m128i *)s);
    d = _mm_sub_epi8(v, _mm_set1_epi8('0'));
    /* d <= 9 as unsigned bytes: the byte is a digit */
    digits = (uint32_t)_mm_movemask_epi8(
        _mm_cmpeq_epi8(_mm_max_epu8(d, _mm_set1_epi8(9)), _mm_set1_epi8(9)));
    if ((digits & want) != want)
        return false;
    _mm_storeu_si128((__m128i *)(out->data + out->len), v);
    out->len += n;
    return true;
#else
    return n <= 16 && canonical_digits(s, n) && tj_buf_append(out, s, n) == 0;
#endif
}

static int emit_field(struct ectx *c, const struct node *nd, int gi)
{
    const char *s = c->ev->message.ptr + c->ov[2 * nd->groups[gi]];
    size_t n = c->ov[2 * nd->groups[gi] + 1] - c->ov[2 * nd->groups[gi]];
    int rc;

    switch (nd->types[gi]) {
    case TJ_FIELD_INT:
        if (put_digits(c->out, s, n))
            return 0;
        if (canonical_digits(s, n)) /* 17 or 18 digits: already its own JSON form too */
            return tj_buf_append(c->out, s, n);
        rc = tj_json_int_text(c->out, s, n);
        break;
    case TJ_FIELD_FLOAT:
        rc = tj_json_float_text(c->out, s, n);
        break;
    case TJ_FIELD_BOOL:
        if (n == 4 && strncasecmp(s, "true", 4) == 0)
            return tj_buf_append(c->out, "true", 4);
        return tj_buf_append(c->out, "false", 5);
    default:
        rc = TJ_EPARSE;
    }
    if (rc == TJ_EPARSE) /* not a number after all: keep the text rather than lose it */
        rc = tj_json_string(c->out, s, n);
    return rc;
}

/* Writes a field that several captures may fill, gi the first that matched: its value, or,
 * when a later capture matched too (the expression names the field twice and both parts
 * matched), an array of every value in order, as Logstash and Elasticsearch do. */
static int emit_fields(struct ectx *c, const struct node *nd, int gi)
{
    size_t more = 0;
    int rc;

    for (size_t i = (size_t)gi + 1; i < nd->ngroups; i++) {
        size_t a = c->ov[2 * nd->groups[i]], b = c->ov[2 * nd->groups[i] + 1];
        more += a != SIZE_MAX && b > a;
    }
    if (!more)
        return emit_field(c, nd, gi);
    if ((rc = tj_buf_append(c->out, "[", 1)) || (rc = emit_field(c, nd, gi)))
        return rc;
    for (size_t i = (size_t)gi + 1; i < nd->ngroups; i++) {
        size_t a = c->ov[2 * nd->groups[i]], b = c->ov[2 * nd->groups[i] + 1];
        if (a == SIZE_MAX || b <= a)
            continue;
        if ((rc = tj_buf_append(c->out, ",", 1)) || (rc = emit_field(c, nd, (int)i)))
            return rc;
    }
    return tj_buf_append(c->out, "]", 1);
}

/* Writes "text" for text that is already valid JSON string content. */
static int put_json_text(struct tj_buf *out, struct tj_slice text)
{
    char *w;

    if (tj_buf_reserve(out, text.len + 2))
        return TJ_ENOSPC;
    w = out->data + out->len;
    w[0] = '"';
    memcpy(w + 1, text.ptr, text.len);
    w[text.len + 1] = '"';
    out->len += text.len + 2;
    return 0;
}

static int emit_tags(struct tj_buf *out, unsigned tags)
{
    bool first = true;
    int rc;

    put_char(out, '[');
    for (size_t t = 0; t < TJ_ARRAY_LEN(tag_names); t++) {
        if (!(tags & (1u << t)))
            continue;
        if (!first)
            put_char(out, ',');
        if ((rc = tj_json_string(out, tag_names[t], strlen(tag_names[t]))))
            return rc;
        first = false;
    }
    put_char(out, ']');
    return 0;
}

/* Writes the value of leaf nd, known to be present; gi is the field's matched group. */
static int emit_leaf(struct ectx *c, const struct node *nd, int gi)
{
    const struct tj_event *ev = c->ev;

    switch (nd->kind) {
    case N_TIMESTAMP:
        return tj_json_string(c->out, ev->time.ptr, ev->time.len);
    case N_MESSAGE:
        if (c->msg_group >= 0)
            return emit_field(c, nd, c->msg_group);
        /* fall through */
    case N_ORIGINAL:
        if (ev->message_json.ptr)
            return put_json_text(c->out, ev->message_json);
        return tj_json_string(c->out, ev->message.ptr, ev->message.len);
    case N_STREAM:
        return tj_json_string(c->out, ev->stream.ptr, ev->stream.len);
    case N_CREATED:
        return tj_json_string(c->out, ev->created.ptr, ev->created.len);
    case N_TIMERAW:
        return tj_json_string(c->out, ev->time_raw.ptr, ev->time_raw.len);
    case N_META:
        return tj_buf_append(c->out, c->meta->val[nd->meta], c->meta->len[nd->meta]);
    case N_OFFSET:
        return tj_json_i64(c->out, ev->offset);
    case N_ATTRS:
        /* Validated JSON from the decoder; copied as is (escapes already JSON's). */
        return tj_buf_append(c->out, ev->attrs.ptr, ev->attrs.len);
    case N_TAGS:
        return emit_tags(c->out, ev->tags);
    case N_FIELD:
        return nd->ngroups > 1 ? emit_fields(c, nd, gi) : emit_field(c, nd, gi);
    case N_OBJECT:
        break;
    }
    return 0;
}

/* Runs the shape's ops: writes every present leaf, and the objects that hold one. An object
 * whose subtree cannot hold anything for this record is skipped whole; one that only holds
 * pattern fields is written optimistically and rewound if none matched. */
static int run_ops(struct ectx *c, const struct tj_shape *s)
{
    bool any[TJ_GROK_MAX_FIELD_DEPTH + 2];
    size_t mark[TJ_GROK_MAX_FIELD_DEPTH + 2];
    int depth = 0, rc, gi = -1;

    any[0] = false;
    for (size_t i = 0; i < s->nops;) {
        const struct op *op = &s->ops[i];
        const struct node *nd = op->nd;

        switch (op->op) {
        case OP_OPEN:
            if (!nd->has_fields && !(nd->mask & c->present)) {
                i = op->skip;
                continue;
            }
            mark[depth + 1] = c->out->len;
            put_key(c->out, nd, any[depth]);
            put_char(c->out, '{');
            any[++depth] = false;
            break;
        case OP_CLOSE:
            if (!any[depth]) {
                c->out->len = mark[depth--]; /* only fields below, and none matched */
                break;
            }
            put_char(c->out, '}');
            any[--depth] = true;
            break;
        case OP_LEAF:
            if (nd->kind == N_FIELD) {
                gi = pick_group(nd, c->ov);
                if (gi < 0)
                    break;
            } else if (!(nd->mask & c->present)) {
                break;
            }
            put_key(c->out, nd, any[depth]);
            if ((rc = emit_leaf(c, nd, gi)))
                return rc;
            any[depth] = true;
            break;
        }
        i++;
    }
    return 0;
}

/* Writes metadata value k, in whole blocks (its allocation has META_PAD bytes after it). */
static inline int put_meta(struct tj_buf *out, const struct tj_meta *meta, int k)
{
    const char *v = meta->val[k];
    size_t n = meta->len[k];
    int rc = tj_buf_reserve(out, n + META_PAD);
    char *w;

    if (TJ_UNLIKELY(rc))
        return rc;
    w = out->data + out->len;
    for (size_t i = 0; i < n; i += META_PAD)
        memcpy(w + i, v + i, META_PAD);
    out->len += n;
    return 0;
}

/* Writes the plan's run r into the room the buffer's slack guarantees, in whole blocks. */
static inline void put_run(struct tj_buf *out, const struct tj_shape *s, struct run r)
{
    char *w = out->data + out->len;
    const char *t = s->plan_text + r.off;

    /* Two blocks always (most runs are one key or two): plan_max and the plan text's padding
     * leave room for them. */
    memcpy(w, t, KEY_PAD);
    for (size_t k = KEY_PAD; k < r.len; k += KEY_PAD)
        memcpy(w + k, t + k, KEY_PAD);
    out->len += r.len;
}

/* Writes the record by the shape's plan. First the set of present leaves, one bit each: the
 * record's presence bits select whole groups of metadata leaves, and each pattern field is
 * present when its capture matched something. Then, for each present leaf in order, the run that
 * leads to it from the previous one and its value; then the run to the end. Writes what run_ops
 * writes. */
static int run_plan(struct ectx *c, const struct tj_shape *s)
{
    const size_t rows = s->nleaves + 1;
    const size_t *ov = c->ov;
    const char *msg = c->ev->message.ptr;
    uint64_t todo = 0;
    size_t prev = 0; /* row: 0 at the start, k + 1 after leaf k */
    int rc = 0;

    for (unsigned bits = c->present; bits; bits &= bits - 1)
        todo |= s->bit_leaves[__builtin_ctz(bits)];
    if (ov) {
        for (size_t i = 0; i < s->nones; i++) {
            size_t a = ov[2 * s->ones[i].group], b = ov[2 * s->ones[i].group + 1];
            /* unset (SIZE_MAX) or empty: absent, as pick_group decides */
            todo |= (uint64_t)((a != SIZE_MAX) & (b > a)) << s->ones[i].leaf;
        }
        for (size_t i = 0; i < s->nmultis; i++)
            todo |= (uint64_t)(pick_group(s->leaves[s->multis[i]].nd, ov) >= 0) << s->multis[i];
    }
    for (; todo; todo &= todo - 1) {
        size_t k = (size_t)__builtin_ctzll(todo);
        const struct leaf *lf = &s->leaves[k];
        const struct tj_event *ev = c->ev;

        put_run(c->out, s, s->trans[prev * rows + k]);
        prev = k + 1;
        switch (lf->op) {
        case L_TEXT: {
            size_t a = ov[2 * lf->group], n = ov[2 * lf->group + 1] - a;
            if (!tj_json_string_short(c->out, msg + a, n))
                rc = tj_json_string(c->out, msg + a, n);
            break;
        }
        case L_INT: {
            size_t a = ov[2 * lf->group], n = ov[2 * lf->group + 1] - a;
            if (!put_digits(c->out, msg + a, n))
                rc = emit_field(c, lf->nd, 0);
            break;
        }
        case L_FIELD:
            rc = lf->nd->ngroups == 1 ? emit_field(c, lf->nd, 0)
                                      : emit_fields(c, lf->nd, pick_group(lf->nd, ov));
            break;
        case L_STRING: {
            const struct tj_slice *t = lf->nd->kind == N_TIMESTAMP ? &ev->time : &ev->stream;
            if (!tj_json_string_short(c->out, t->ptr, t->len))
                rc = tj_json_string(c->out, t->ptr, t->len);
            break;
        }
        case L_META:
            rc = put_meta(c->out, c->meta, lf->nd->meta);
            break;
        case L_OFFSET:
            rc = tj_json_i64(c->out, ev->offset);
            break;
        default:
            rc = emit_leaf(c, lf->nd, -1);
            break;
        }
        if (rc)
            return rc;
    }
    put_run(c->out, s, s->trans[prev * rows + s->nleaves]);
    return 0;
}

int tj_record_encode(struct tj_buf *out, const struct tj_shape *s, const struct tj_event *ev,
                     const struct tj_meta *meta, const size_t *ovector)
{
    struct ectx c = {out, ev, meta, ovector, -1, 1u << B_ALWAYS};
    size_t mark = out->len, slack = out->slack;
    int rc;

    c.msg_group = pick_group(&s->nodes[s->message], ovector);
    c.present |= (meta ? meta->present : 0) | (ev->time.len ? 1u << B_TIME : 0) |
                 (ev->stream.len ? 1u << B_STREAM : 0) | (ev->attrs.len ? 1u << B_ATTRS : 0) |
                 (ev->created.len ? 1u << B_CREATED : 0) |
                 (ev->time_raw.len ? 1u << B_TIMERAW : 0) |
                 (c.msg_group >= 0 ? 1u << B_ORIGINAL : 0) |
                 (ev->offset >= 0 ? 1u << B_OFFSET : 0) | (ev->tags ? 1u << B_TAGS : 0);
    /* Every dynamic write below leaves the shape's static bytes free after it, so keys and
     * punctuation between two values never need a capacity check. */
    out->slack = (s->static_bytes > s->plan_max ? s->static_bytes : s->plan_max) + 16;
    if (s->trans) {
        if ((rc = tj_buf_reserve(out, 2)) == 0)
            rc = run_plan(&c, s);
    } else if ((rc = tj_buf_reserve(out, 2)) == 0) {
        put_char(out, '{');
        if ((rc = run_ops(&c, s)) == 0)
            rc = tj_buf_append(out, "}\n", 2);
    }
    out->slack = slack;
    if (rc)
        out->len = mark;
    return rc;
}
