/* tj_ruleset.c: compiling a ruleset and applying it to one event. apply runs on the worker
 * threads, on a shared read-only ruleset and the worker's own matcher and buffer. */
#include "tj_ruleset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether grok field f is the field named `name` ("a", "a.b" or "[a][b]"). */
static bool field_is(const struct tj_grok_field *f, const char *name)
{
    const char *p = name;

    for (size_t i = 0; i < f->nseg; i++) {
        size_t k = strlen(f->seg[i]);
        if (*name == '[') {
            if (*p != '[' || strncmp(p + 1, f->seg[i], k) != 0 || p[1 + k] != ']')
                return false;
            p += k + 2;
        } else {
            if (i && *p++ != '.')
                return false;
            if (strncmp(p, f->seg[i], k) != 0)
                return false;
            p += k;
        }
    }
    return *p == '\0';
}

/* Finds the capture groups of the time field in alternative i. */
static void time_groups(struct tj_ruleset *rs, size_t i)
{
    const struct tj_grok *g = rs->alt[i];
    const char *name = tj_time_spec_field(rs->ts);

    for (size_t k = 0; k < g->nfields && rs->nts_group[i] < TJ_RULESET_MAX_TS_GROUPS; k++)
        if (field_is(&g->fields[k], name))
            rs->ts_group[i][rs->nts_group[i]++] = g->fields[k].group;
}

/* Compiles every definition of opts->defs alone, so that a bad one is reported even when no
 * pattern uses it yet. Returns 0, or -1 with err filled ("definitions: NAME: ..."). */
static int check_definitions(const struct tj_grok_lib *lib, const struct tj_grok_opts *opts,
                             char *err, size_t errlen)
{
    size_t n;
    const char **names = tj_grok_lib_names(opts->defs, &n);
    int rc = 0;

    if (!names) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        char expr[300], msg[512];
        struct tj_grok *g;
        snprintf(expr, sizeof(expr), "%%{%.280s}", names[i]);
        g = tj_grok_compile_opts(lib, expr, strlen(expr), opts, msg, sizeof(msg));
        if (!g) {
            snprintf(err, errlen, "definitions: %s: %s", names[i], msg);
            rc = -1;
        }
        tj_grok_unref(g);
    }
    free((void *)names);
    return rc;
}

struct tj_ruleset *tj_ruleset_create(const struct tj_grok_lib *lib, const char *const *exprs,
                                     size_t n, const char *multiline, char *err, size_t errlen)
{
    struct tj_rules_spec spec = {.exprs = exprs, .n = n, .multiline = multiline};
    return tj_ruleset_build(lib, &spec, err, errlen);
}

struct tj_ruleset *tj_ruleset_build(const struct tj_grok_lib *lib, const struct tj_rules_spec *spec,
                                    char *err, size_t errlen)
{
    const char *const *exprs = spec->exprs;
    size_t n = spec->n;
    const char *multiline = spec->multiline;
    struct tj_grok_opts opts = {.ecs = spec->ecs};
    struct tj_ruleset *rs;
    char msg[512];

    if (n > TJ_RULESET_MAX_ALTS) {
        snprintf(err, errlen, "at most %d pattern alternatives", TJ_RULESET_MAX_ALTS);
        return NULL;
    }
    rs = calloc(1, sizeof(*rs));
    if (!rs) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rs->refs = 1;
    rs->ecs = spec->ecs;
    if (spec->definitions && *spec->definitions) {
        rs->defs = tj_grok_lib_create();
        if (!rs->defs) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        if (tj_grok_lib_load(rs->defs, spec->definitions, strlen(spec->definitions), "definitions",
                             true, msg, sizeof(msg))) {
            /* "definitions:L: ..." from the loader, said as "definitions: line L: ..." */
            const char *p = strncmp(msg, "definitions:", 12) == 0 ? msg + 12 : msg;
            snprintf(err, errlen, "definitions: line %s", p);
            goto fail;
        }
        opts.defs = rs->defs;
        if (check_definitions(lib, &opts, err, errlen))
            goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        rs->alt[i] = tj_grok_compile_opts(lib, exprs[i], strlen(exprs[i]), &opts, msg, sizeof(msg));
        if (rs->alt[i])
            rs->shape[i] = tj_shape_create(rs->alt[i], msg, sizeof(msg));
        rs->nalt = i + 1;
        if (!rs->alt[i] || !rs->shape[i]) {
            if (n > 1)
                snprintf(err, errlen, "pattern %zu: %s", i + 1, msg);
            else
                snprintf(err, errlen, "%s", msg);
            goto fail;
        }
    }
    if (spec->timestamp && *spec->timestamp) {
        rs->ts = tj_time_spec_create(spec->timestamp, msg, sizeof(msg));
        if (!rs->ts) {
            snprintf(err, errlen, "timestamp: %s", msg);
            goto fail;
        }
        for (size_t i = 0; i < n; i++)
            time_groups(rs, i);
    }
    if (multiline) {
        rs->multiline =
            tj_grok_compile_opts(lib, multiline, strlen(multiline), &opts, msg, sizeof(msg));
        if (!rs->multiline) {
            snprintf(err, errlen, "multiline: %s", msg);
            goto fail;
        }
    }
    rs->plain = tj_shape_create(NULL, msg, sizeof(msg));
    if (!rs->plain) {
        snprintf(err, errlen, "%s", msg);
        goto fail;
    }
    return rs;
fail:
    tj_ruleset_unref(rs);
    return NULL;
}

struct tj_ruleset *tj_ruleset_ref(struct tj_ruleset *rs)
{
    __atomic_add_fetch(&rs->refs, 1, __ATOMIC_RELAXED);
    return rs;
}

void tj_ruleset_unref(struct tj_ruleset *rs)
{
    if (!rs || __atomic_sub_fetch(&rs->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; i < rs->nalt; i++) {
        tj_grok_unref(rs->alt[i]);
        tj_shape_destroy(rs->shape[i]);
    }
    tj_grok_unref(rs->multiline);
    tj_shape_destroy(rs->plain);
    tj_grok_lib_destroy(rs->defs);
    tj_time_spec_destroy(rs->ts);
    free(rs);
}

size_t tj_ruleset_ovector_len(const struct tj_ruleset *rs)
{
    size_t n = 0;

    for (size_t i = 0; i < rs->nalt; i++)
        if (2 * ((size_t)rs->alt[i]->ngroups + 1) > n)
            n = 2 * ((size_t)rs->alt[i]->ngroups + 1);
    return n;
}

const size_t *tj_ruleset_match(const struct tj_ruleset *rs, struct tj_matcher *m,
                               const struct tj_event *ev, struct tj_match_result *res)
{
    res->alt = -1;
    res->limited = false;
    if ((ev->tags | rs->base_tags) & TJ_TAG_JSONPARSEFAILURE)
        return NULL; /* the raw text of a damaged entry: shipped as it is */
    for (size_t i = 0; i < rs->nalt; i++) {
        int rc = tj_grok_match_hint(rs->alt[i], m, ev->message.ptr, ev->message.len, ev->ascii);
        if (rc == 1) {
            res->alt = (int)i;
            return tj_matcher_ovector(m);
        }
        res->limited |= rc == TJ_ELIMIT;
    }
    return NULL;
}

int tj_ruleset_encode(const struct tj_ruleset *rs, const struct tj_event *ev,
                      const struct tj_match_result *res, const size_t *ov,
                      const struct tj_meta *meta, struct tj_buf *out, struct tj_parse_stats *st)
{
    struct tj_event e = *ev;
    const struct tj_shape *shape = res->alt >= 0 ? rs->shape[res->alt] : rs->plain;
    int rc;

    char when[TJ_TIME_TEXT_MAX];

    if (res->alt < 0)
        ov = NULL;
    e.tags |= rs->base_tags;
    if (rs->ts && ov) {
        for (size_t k = 0; k < rs->nts_group[res->alt]; k++) {
            size_t a = ov[2 * rs->ts_group[res->alt][k]], b = ov[2 * rs->ts_group[res->alt][k] + 1];
            int n;
            if (a == SIZE_MAX || b <= a)
                continue;
            n = tj_time_parse(rs->ts, ev->message.ptr + a, b - a, ev->time, when);
            if (n > 0) {
                e.created = ev->time;
                e.time = (struct tj_slice){when, (size_t)n};
            } else {
                e.tags |= TJ_TAG_DATEPARSEFAILURE;
            }
            break;
        }
    }
    if (!ov && rs->nalt && !(e.tags & TJ_TAG_JSONPARSEFAILURE))
        e.tags |= TJ_TAG_GROKPARSEFAILURE | (res->limited ? TJ_TAG_GROKTIMEOUT : 0);
    rc = tj_record_encode(out, shape, &e, meta, ov);
    if (rc == TJ_ENOSPC && out->len == 0 && ov) {
        /* Even an empty buffer cannot hold this record (a pattern whose captures overlap many
         * times): ship the line without its fields rather than lose it. */
        e.tags |= TJ_TAG_TRUNCATED;
        ov = NULL;
        rc = tj_record_encode(out, rs->plain, &e, meta, NULL);
    }
    if (rc)
        return rc; /* counted when the caller retries with room */
    st->records++;
    st->matched += ov != NULL;
    st->failed += (e.tags & TJ_TAG_GROKPARSEFAILURE) != 0;
    st->limited += res->limited;
    st->json_errors += (e.tags & TJ_TAG_JSONPARSEFAILURE) != 0;
    st->truncated += (e.tags & TJ_TAG_TRUNCATED) != 0;
    return 0;
}

int tj_ruleset_apply(const struct tj_ruleset *rs, struct tj_matcher *m, const struct tj_event *ev,
                     const struct tj_meta *meta, struct tj_buf *out, struct tj_parse_stats *st)
{
    struct tj_match_result res;
    const size_t *ov = tj_ruleset_match(rs, m, ev, &res);

    return tj_ruleset_encode(rs, ev, &res, ov, meta, out, st);
}
