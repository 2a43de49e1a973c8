/* tj_record.c: shapes (metadata + field tree) and the record encoder. A shape is immutable once
 * built and may be shared by any number of threads; encoding writes into the caller's buffer. */
#include "tj_record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tj_json.h"

enum node_kind {
    N_OBJECT,
    N_TIMESTAMP,
    N_MESSAGE,
    N_STREAM,
    N_ORIGINAL,
    N_META,
    N_OFFSET,
    N_ATTRS,
    N_TAGS,
    N_FIELD,
};

struct node {
    char *key; /* encoded "\"name\":" */
    size_t keylen;
    char *name; /* raw segment, for lookups while building */
    enum node_kind kind;
    int meta; /* enum tj_meta_key for N_META */
    int first_child, last_child, next;
    uint32_t *groups; /* N_FIELD, N_MESSAGE: captures that may fill it, first set wins */
    enum tj_field_type *types;
    size_t ngroups;
};

struct tj_shape {
    struct node *nodes;
    size_t n, cap;
    int message; /* index of the message node */
};

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
        return 0;
    }
    tj_buf_init(&b, SIZE_MAX / 8);
    if (tj_json_string(&b, s, n)) {
        tj_buf_fini(&b);
        return TJ_ENOMEM;
    }
    free(m->val[k]);
    m->val[k] = b.data;
    m->len[k] = b.len;
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
        nd->key = kb.data;
        nd->keylen = kb.len;
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
    free(s);
}

/* ---- encoding ---- */

struct ectx {
    struct tj_buf *out;
    const struct tj_event *ev;
    const struct tj_meta *meta;
    const size_t *ov;
    int msg_group; /* index into the message node's groups that replaced it, or -1 */
};

static const char *const tag_names[] = {"_grokparsefailure", "_jsonparsefailure", "_truncated",
                                        "_groktimeout", "_patternerror"};

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

static int emit_field(struct ectx *c, const struct node *nd, int gi)
{
    const char *s = c->ev->message.ptr + c->ov[2 * nd->groups[gi]];
    size_t n = c->ov[2 * nd->groups[gi] + 1] - c->ov[2 * nd->groups[gi]];
    int rc;

    switch (nd->types[gi]) {
    case TJ_FIELD_INT:
        rc = tj_json_int_text(c->out, s, n);
        break;
    case TJ_FIELD_FLOAT:
        rc = tj_json_float_text(c->out, s, n);
        break;
    default:
        rc = TJ_EPARSE;
    }
    if (rc == TJ_EPARSE) /* not a number after all: keep the text rather than lose it */
        rc = tj_json_string(c->out, s, n);
    return rc;
}

static int emit_children(struct ectx *c, const struct tj_shape *s, int first);

/* Maps a writer's 0 to "written" (1) and keeps its errors. */
static inline int written(int rc)
{
    return rc ? rc : 1;
}

/* Writes the value of node i. Returns 1 if written, 0 if absent, or a negative error. */
static int emit_value(struct ectx *c, const struct tj_shape *s, int i)
{
    const struct node *nd = &s->nodes[i];
    const struct tj_event *ev = c->ev;
    int rc, gi;

    switch (nd->kind) {
    case N_OBJECT:
        if ((rc = tj_buf_append(c->out, "{", 1)))
            return rc;
        rc = emit_children(c, s, nd->first_child);
        if (rc <= 0)
            return rc;
        return tj_buf_append(c->out, "}", 1) ? TJ_ENOSPC : 1;
    case N_TIMESTAMP:
        if (!ev->time.len)
            return 0;
        return written(tj_json_string(c->out, ev->time.ptr, ev->time.len));
    case N_MESSAGE:
        if (c->msg_group >= 0)
            return written(emit_field(c, nd, c->msg_group));
        return written(tj_json_string(c->out, ev->message.ptr, ev->message.len));
    case N_ORIGINAL:
        if (c->msg_group < 0)
            return 0;
        return written(tj_json_string(c->out, ev->message.ptr, ev->message.len));
    case N_STREAM:
        if (!ev->stream.len)
            return 0;
        return written(tj_json_string(c->out, ev->stream.ptr, ev->stream.len));
    case N_META:
        if (!c->meta || !c->meta->val[nd->meta])
            return 0;
        return written(tj_buf_append(c->out, c->meta->val[nd->meta], c->meta->len[nd->meta]));
    case N_OFFSET:
        if (ev->offset < 0)
            return 0;
        return written(tj_json_i64(c->out, ev->offset));
    case N_ATTRS:
        if (!ev->attrs.len)
            return 0;
        /* Validated JSON from the decoder; copied as is (escapes already JSON's). */
        return written(tj_buf_append(c->out, ev->attrs.ptr, ev->attrs.len));
    case N_TAGS: {
        bool first = true;
        if (!ev->tags)
            return 0;
        if ((rc = tj_buf_append(c->out, "[", 1)))
            return rc;
        for (size_t t = 0; t < TJ_ARRAY_LEN(tag_names); t++) {
            if (!(ev->tags & (1u << t)))
                continue;
            if ((!first && (rc = tj_buf_append(c->out, ",", 1))) ||
                (rc = tj_json_string(c->out, tag_names[t], strlen(tag_names[t]))))
                return rc;
            first = false;
        }
        return written(tj_buf_append(c->out, "]", 1));
    }
    case N_FIELD:
        gi = pick_group(nd, c->ov);
        if (gi < 0)
            return 0;
        return written(emit_field(c, nd, gi));
    }
    return 0;
}

static int emit_children(struct ectx *c, const struct tj_shape *s, int first)
{
    bool any = false;

    for (int i = first; i >= 0; i = s->nodes[i].next) {
        const struct node *nd = &s->nodes[i];
        size_t mark = c->out->len;
        int rc;

        if ((any && (rc = tj_buf_append(c->out, ",", 1))) ||
            (rc = tj_buf_append(c->out, nd->key, nd->keylen)))
            return rc;
        rc = emit_value(c, s, i);
        if (rc <= 0) {
            c->out->len = mark;
            if (rc < 0)
                return rc;
            continue;
        }
        any = true;
    }
    return any;
}

int tj_record_encode(struct tj_buf *out, const struct tj_shape *s, const struct tj_event *ev,
                     const struct tj_meta *meta, const size_t *ovector)
{
    struct ectx c = {out, ev, meta, ovector, -1};
    size_t mark = out->len;
    int rc;

    c.msg_group = pick_group(&s->nodes[s->message], ovector);
    if ((rc = tj_buf_append(out, "{", 1)) ||
        (rc = emit_children(&c, s, s->nodes[0].first_child)) < 0 ||
        (rc = tj_buf_append(out, "}\n", 2))) {
        out->len = mark;
        return rc;
    }
    return 0;
}
