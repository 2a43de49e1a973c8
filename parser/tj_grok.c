/* tj_grok.c: the grok library (name -> definition), the expander that turns an expression into
 * one PCRE2 regex, and matching. The library and compiled patterns are immutable once built
 * and shared read-only; a tj_matcher belongs to one thread.
 * Size: most of it (about 830 lines) is the expander, one recursive walk from an expression to
 * one regex with its typed, renamed captures and its byte-mode twin; it is left whole. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tj_grok.h"

#include <ctype.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tj_patterns.h"
#include "tj_simd.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Byte mode for pure-ASCII subjects (see tj_grok.ascii_code). */
#define ASCII_PCRE2_FLAGS                                                                          \
    ((TJ_GROK_PCRE2_FLAGS & ~(PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF)) |                  \
     PCRE2_NEVER_UTF | PCRE2_NEVER_UCP)

/* ---- the library: an open-addressing hash table of names ---- */

struct lib_entry {
    char *name; /* NULL: empty slot */
    char *def;
    const char *origin;
};

/* One legacy field name: in the definition of `pattern`, capture `field` is named `legacy`
 * (NULL: not captured) under TJ_ECS_DISABLED. */
struct legacy_name {
    char *pattern, *field, *legacy; /* one allocation, from pattern */
    enum tj_field_type type;
};

struct tj_grok_lib {
    /* definitions used instead of the library's under TJ_ECS_DISABLED (patterns/legacy.defs), for
     * patterns whose legacy captures a rename cannot give; NULL when none */
    struct tj_grok_lib *legacy_defs;
    struct legacy_name *legacy; /* sorted by (pattern, field) once loaded */
    size_t nlegacy;
    struct lib_entry *slots;
    size_t nslots; /* power of two */
    size_t count;
    char **origins; /* owned copies of the origin names given to tj_grok_lib_load */
    size_t norigins;
};

static uint64_t hash_name(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static struct lib_entry *lib_slot(const struct tj_grok_lib *lib, const char *name, size_t n)
{
    size_t mask = lib->nslots - 1;
    size_t i = (size_t)hash_name(name, n) & mask;

    for (;; i = (i + 1) & mask) {
        struct lib_entry *e = &lib->slots[i];
        if (!e->name || (strlen(e->name) == n && memcmp(e->name, name, n) == 0))
            return e;
    }
}

struct tj_grok_lib *tj_grok_lib_create(void)
{
    struct tj_grok_lib *lib = calloc(1, sizeof(*lib));
    if (!lib)
        return NULL;
    lib->nslots = 1024;
    lib->slots = calloc(lib->nslots, sizeof(*lib->slots));
    if (!lib->slots) {
        free(lib);
        return NULL;
    }
    return lib;
}

void tj_grok_lib_destroy(struct tj_grok_lib *lib)
{
    if (!lib)
        return;
    for (size_t i = 0; i < lib->nslots; i++) {
        free(lib->slots[i].name);
        free(lib->slots[i].def);
    }
    tj_grok_lib_destroy(lib->legacy_defs);
    for (size_t i = 0; i < lib->nlegacy; i++)
        free(lib->legacy[i].pattern);
    free(lib->legacy);
    for (size_t i = 0; i < lib->norigins; i++)
        free(lib->origins[i]);
    free(lib->origins);
    free(lib->slots);
    free(lib);
}

static int lib_rehash(struct tj_grok_lib *lib)
{
    struct tj_grok_lib bigger = *lib;

    bigger.nslots = lib->nslots * 2;
    bigger.slots = calloc(bigger.nslots, sizeof(*bigger.slots));
    if (!bigger.slots)
        return TJ_ENOMEM;
    for (size_t i = 0; i < lib->nslots; i++) {
        struct lib_entry *e = &lib->slots[i];
        if (e->name)
            *lib_slot(&bigger, e->name, strlen(e->name)) = *e;
    }
    free(lib->slots);
    lib->slots = bigger.slots;
    lib->nslots = bigger.nslots;
    return 0;
}

static int lib_put(struct tj_grok_lib *lib, const char *name, size_t n, const char *def, size_t dn,
                   const char *origin, bool override)
{
    struct lib_entry *e;
    char *d;

    if ((lib->count + 1) * 2 > lib->nslots && lib_rehash(lib))
        return TJ_ENOMEM;
    e = lib_slot(lib, name, n);
    if (e->name && !override)
        return TJ_EINVAL;
    d = strndup(def, dn);
    if (!d)
        return TJ_ENOMEM;
    if (e->name) {
        free(e->def);
    } else {
        e->name = strndup(name, n);
        if (!e->name) {
            free(d);
            return TJ_ENOMEM;
        }
        lib->count++;
    }
    e->def = d;
    e->origin = origin;
    return 0;
}

static bool is_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* Returns the library's own copy of origin (made once per name), or NULL when out of memory. */
static const char *lib_origin(struct tj_grok_lib *lib, const char *origin)
{
    char **p;

    for (size_t i = 0; i < lib->norigins; i++)
        if (strcmp(lib->origins[i], origin) == 0)
            return lib->origins[i];
    p = realloc(lib->origins, (lib->norigins + 1) * sizeof(*p));
    if (!p)
        return NULL;
    lib->origins = p;
    p[lib->norigins] = strdup(origin);
    return p[lib->norigins] ? p[lib->norigins++] : NULL;
}

int tj_grok_lib_load(struct tj_grok_lib *lib, const char *text, size_t len, const char *origin,
                     bool override, char *err, size_t errlen)
{
    const char *p = text, *end = text + len;
    unsigned lineno = 0;

    origin = lib_origin(lib, origin);
    if (!origin) {
        snprintf(err, errlen, "out of memory");
        return TJ_ENOMEM;
    }

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        const char *q = p, *name, *def;
        size_t nn;
        int rc;

        lineno++;
        while (q < le && (*q == ' ' || *q == '\t'))
            q++;
        if (le > q && le[-1] == '\r')
            le--;
        if (q == le || *q == '#')
            goto next;
        name = q;
        while (q < le && is_name_char(*q))
            q++;
        nn = (size_t)(q - name);
        if (nn == 0 || q == le || (*q != ' ' && *q != '\t')) {
            snprintf(err, errlen, "%s:%u: expected 'NAME regex' (NAME of letters, digits, _)",
                     origin, lineno);
            return TJ_EPARSE;
        }
        while (q < le && (*q == ' ' || *q == '\t'))
            q++;
        def = q;
        rc = lib_put(lib, name, nn, def, (size_t)(le - def), origin, override);
        if (rc == TJ_EINVAL) {
            snprintf(err, errlen, "%s:%u: pattern %.*s is already defined", origin, lineno, (int)nn,
                     name);
            return rc;
        }
        if (rc) {
            snprintf(err, errlen, "%s:%u: out of memory", origin, lineno);
            return rc;
        }
    next:
        p = eol ? eol + 1 : end;
    }
    return 0;
}

static int cmp_legacy(const void *a, const void *b)
{
    const struct legacy_name *x = a, *y = b;
    int c = strcmp(x->pattern, y->pattern);
    return c ? c : strcmp(x->field, y->field);
}

static enum tj_field_type type_named(const char *t, size_t n)
{
    if ((n == 3 && memcmp(t, "int", 3) == 0) || (n == 4 && memcmp(t, "long", 4) == 0))
        return TJ_FIELD_INT;
    if ((n == 5 && memcmp(t, "float", 5) == 0) || (n == 6 && memcmp(t, "double", 6) == 0))
        return TJ_FIELD_FLOAT;
    if (n == 7 && memcmp(t, "boolean", 7) == 0)
        return TJ_FIELD_BOOL;
    return TJ_FIELD_STRING; /* Elasticsearch's ingest grok keeps the text under another name */
}

int tj_grok_lib_load_legacy(struct tj_grok_lib *lib, const char *text, size_t len,
                            const char *origin, char *err, size_t errlen)
{
    const char *p = text, *end = text + len;
    unsigned lineno = 0;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p)), *le = eol ? eol : end;
        const char *t1, *t2, *colon;
        struct legacy_name *ln, *arr;
        size_t n1, n2, n3;

        lineno++;
        if (le > p && le[-1] == '\r')
            le--;
        if (le == p || *p == '#')
            goto next;
        t1 = memchr(p, '\t', (size_t)(le - p));
        t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(le - t1 - 1)) : NULL;
        if (!t2 || t1 == p || t2 == t1 + 1 || t2 + 1 == le) {
            snprintf(err, errlen, "%s:%u: expected NAME<TAB>FIELD<TAB>LEGACY[:type] or -", origin,
                     lineno);
            return TJ_EPARSE;
        }
        arr = realloc(lib->legacy, (lib->nlegacy + 1) * sizeof(*arr));
        if (!arr)
            goto oom;
        lib->legacy = arr;
        ln = &arr[lib->nlegacy];
        n1 = (size_t)(t1 - p);
        n2 = (size_t)(t2 - t1 - 1);
        colon = memchr(t2 + 1, ':', (size_t)(le - t2 - 1));
        n3 = (size_t)((colon ? colon : le) - t2 - 1);
        ln->pattern = malloc(n1 + n2 + n3 + 3);
        if (!ln->pattern)
            goto oom;
        memcpy(ln->pattern, p, n1);
        ln->pattern[n1] = '\0';
        ln->field = ln->pattern + n1 + 1;
        memcpy(ln->field, t1 + 1, n2);
        ln->field[n2] = '\0';
        ln->legacy = ln->field + n2 + 1;
        memcpy(ln->legacy, t2 + 1, n3);
        ln->legacy[n3] = '\0';
        ln->type = colon ? type_named(colon + 1, (size_t)(le - colon - 1)) : TJ_FIELD_STRING;
        if (n3 == 1 && t2[1] == '-')
            ln->legacy = NULL;
        lib->nlegacy++;
    next:
        p = eol ? eol + 1 : end;
    }
    qsort(lib->legacy, lib->nlegacy, sizeof(*lib->legacy), cmp_legacy);
    return 0;
oom:
    snprintf(err, errlen, "%s:%u: out of memory", origin, lineno);
    return TJ_ENOMEM;
}

/* The legacy name of capture field[0..fn) in the definition of pattern[0..pn), or NULL. */
static const struct legacy_name *legacy_find(const struct tj_grok_lib *lib, const char *pattern,
                                             size_t pn, const char *field, size_t fn)
{
    size_t lo = 0, hi = lib->nlegacy;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const struct legacy_name *ln = &lib->legacy[mid];
        int c = strncmp(ln->pattern, pattern, pn);
        if (c == 0)
            c = ln->pattern[pn] ? 1 : 0;
        if (c == 0) {
            c = strncmp(ln->field, field, fn);
            if (c == 0)
                c = ln->field[fn] ? 1 : 0;
        }
        if (c == 0)
            return ln;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int tj_grok_lib_load_builtin(struct tj_grok_lib *lib, char *err, size_t errlen)
{
    for (size_t i = 0; i < tj_pattern_files_count; i++) {
        const struct tj_pattern_file *f = &tj_pattern_files[i];
        size_t k = strlen(f->name);
        int rc;
        if (k > 6 && strcmp(f->name + k - 6, ".names") == 0) {
            rc = tj_grok_lib_load_legacy(lib, f->text, f->len, f->name, err, errlen);
        } else if (k > 5 && strcmp(f->name + k - 5, ".defs") == 0) {
            if (!lib->legacy_defs && !(lib->legacy_defs = tj_grok_lib_create())) {
                snprintf(err, errlen, "out of memory");
                return TJ_ENOMEM;
            }
            rc = tj_grok_lib_load(lib->legacy_defs, f->text, f->len, f->name, false, err, errlen);
        } else {
            rc = tj_grok_lib_load(lib, f->text, f->len, f->name, false, err, errlen);
        }
        if (rc)
            return rc;
    }
    return 0;
}

int tj_ecs_mode_parse(const char *s, enum tj_ecs_mode *mode)
{
    if (strcmp(s, "v1") == 0)
        *mode = TJ_ECS_V1;
    else if (strcmp(s, "disabled") == 0 || strcmp(s, "legacy") == 0)
        *mode = TJ_ECS_DISABLED;
    else
        return TJ_EINVAL;
    return 0;
}

const char *tj_ecs_mode_name(enum tj_ecs_mode mode)
{
    return mode == TJ_ECS_DISABLED ? "disabled" : "v1";
}

const char *tj_grok_lib_get(const struct tj_grok_lib *lib, const char *name, size_t n,
                            const char **origin)
{
    struct lib_entry *e = lib_slot(lib, name, n);
    if (!e->name)
        return NULL;
    if (origin)
        *origin = e->origin;
    return e->def;
}

const char *tj_grok_lib_get_ecs(const struct tj_grok_lib *lib, const char *name, size_t n,
                                enum tj_ecs_mode ecs, const char **origin)
{
    const char *def = NULL;

    if (ecs == TJ_ECS_DISABLED && lib->legacy_defs)
        def = tj_grok_lib_get(lib->legacy_defs, name, n, origin);
    return def ? def : tj_grok_lib_get(lib, name, n, origin);
}

size_t tj_grok_lib_count(const struct tj_grok_lib *lib)
{
    return lib->count;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char **tj_grok_lib_names(const struct tj_grok_lib *lib, size_t *n)
{
    const char **names = malloc((lib->count ? lib->count : 1) * sizeof(*names));
    size_t k = 0;

    if (!names)
        return NULL;
    for (size_t s = 0; s < lib->nslots; s++)
        if (lib->slots[s].name)
            names[k++] = lib->slots[s].name;
    qsort(names, k, sizeof(*names), cmp_str);
    *n = k;
    return names;
}

/* ---- the expander ---- */

/* Where a piece of the expanded regex came from, to map PCRE2's error offset back. */
struct seg {
    size_t out_off;
    size_t user_off;
    const char *name; /* NULL: the user's own text, else the %{NAME} expanded there */
    size_t name_len;
};

/* A group the expression named itself, and the generated name it got. */
struct gname {
    const char *name; /* borrowed from the expression or the library definition */
    size_t len;
    size_t g;
};

struct gx {
    const struct tj_grok_lib *lib;
    const struct tj_grok_lib *defs; /* the expression's own definitions, or NULL */
    enum tj_ecs_mode ecs;
    char *out;
    size_t len, cap;
    struct tj_grok_field *fields;
    size_t nfields, capf;
    struct seg *segs;
    size_t nsegs, capsegs;
    struct gname *names; /* inline (?<name>...) groups, for references to them */
    size_t nnames, capnames;
    const char *stack[TJ_GROK_MAX_DEPTH];
    size_t stack_len[TJ_GROK_MAX_DEPTH];
    int depth;
    const char *user;
    size_t user_len;
    size_t user_pos; /* offset in the user's text of the %{ being expanded (depth > 0) */
    char *err;
    size_t errlen;
    bool failed;
};

static void gx_fail(struct gx *g, const char *fmt, ...) TJ_PRINTF(2, 3);

static void gx_fail(struct gx *g, const char *fmt, ...)
{
    va_list ap;

    if (g->failed)
        return;
    g->failed = true;
    va_start(ap, fmt);
    vsnprintf(g->err, g->errlen, fmt, ap);
    va_end(ap);
}

static void gx_put(struct gx *g, const char *s, size_t n)
{
    if (g->failed)
        return;
    if (g->len + n + 1 > TJ_GROK_MAX_REGEX) {
        gx_fail(g, "the expression expands to more than %u bytes of regex", TJ_GROK_MAX_REGEX);
        return;
    }
    if (g->len + n + 1 > g->cap) {
        size_t ncap = g->cap ? g->cap : 1024;
        char *p;
        while (ncap < g->len + n + 1)
            ncap *= 2;
        p = realloc(g->out, ncap);
        if (!p) {
            gx_fail(g, "out of memory");
            return;
        }
        g->out = p;
        g->cap = ncap;
    }
    memcpy(g->out + g->len, s, n);
    g->len += n;
    g->out[g->len] = '\0';
}

/* Makes room for one more element in arr (`used` elements of `size` bytes, capacity *cap),
 * doubling the capacity as needed. Returns the array, perhaps moved, or NULL with the expansion
 * failed (arr is then unchanged and still owned by the caller). */
static void *gx_room(struct gx *g, void *arr, size_t *cap, size_t used, size_t size)
{
    size_t ncap;
    void *p;

    if (used < *cap)
        return arr;
    ncap = *cap ? *cap * 2 : 16;
    p = realloc(arr, ncap * size);
    if (!p) {
        gx_fail(g, "out of memory");
        return NULL;
    }
    *cap = ncap;
    return p;
}

static void gx_puts(struct gx *g, const char *s)
{
    gx_put(g, s, strlen(s));
}

/* Records that output from here on comes from the user's offset `u` (name NULL) or from the
 * expansion of %{name} written at user offset u. */
static void gx_mark(struct gx *g, size_t u, const char *name, size_t name_len)
{
    struct seg *last = g->nsegs ? &g->segs[g->nsegs - 1] : NULL, *segs;

    if (g->failed)
        return;
    if (last && !name && !last->name && last->user_off + (g->len - last->out_off) == u)
        return; /* still linear */
    segs = gx_room(g, g->segs, &g->capsegs, g->nsegs, sizeof(*segs));
    if (!segs)
        return;
    g->segs = segs;
    g->segs[g->nsegs++] = (struct seg){g->len, u, name, name_len};
}

static void field_free(struct tj_grok_field *f)
{
    for (size_t i = 0; i < f->nseg; i++)
        free(f->seg[i]);
    free(f->seg);
}

/* Splits a field name into path segments: "[a][b]" (a segment may hold dots), or "a.b". */
static int field_path(struct gx *g, const char *name, size_t n, struct tj_grok_field *f)
{
    const char *p = name, *end = name + n;
    char *segs[TJ_GROK_MAX_FIELD_DEPTH];
    size_t k = 0;

    if (n == 0) {
        gx_fail(g, "empty field name");
        return TJ_EINVAL;
    }
    while (p < end) {
        const char *s, *e;
        if (*name == '[') {
            if (*p != '[')
                goto bad;
            s = p + 1;
            e = memchr(s, ']', (size_t)(end - s));
            if (!e || e == s)
                goto bad;
            p = e + 1;
        } else {
            s = p;
            e = memchr(s, '.', (size_t)(end - s));
            if (!e)
                e = end;
            if (e == s || e + 1 == end)
                goto bad;
            p = e < end ? e + 1 : end;
        }
        if (k == TJ_GROK_MAX_FIELD_DEPTH) {
            gx_fail(g, "field name '%.*s' nests deeper than %d levels", (int)n, name,
                    TJ_GROK_MAX_FIELD_DEPTH);
            goto fail;
        }
        segs[k] = strndup(s, (size_t)(e - s));
        if (!segs[k]) {
            gx_fail(g, "out of memory");
            goto fail;
        }
        k++;
    }
    f->seg = malloc(k * sizeof(char *));
    if (!f->seg) {
        gx_fail(g, "out of memory");
        goto fail;
    }
    memcpy(f->seg, segs, k * sizeof(char *));
    f->nseg = k;
    return 0;
bad:
    gx_fail(g, "bad field name '%.*s': use [a][b] or a.b", (int)n, name);
fail:
    while (k)
        free(segs[--k]);
    return TJ_EINVAL;
}

/* Opens a named capture for field `name`: writes "(?<gN>" and adds to the field table. In
 * legacy mode, a capture the library's definition makes gets its legacy name and type, or when
 * the legacy pattern has no such capture, the group opens as "(?:". Returns true when a capture
 * was opened. */
static bool gx_open_field(struct gx *g, const char *name, size_t n, enum tj_field_type type)
{
    char tmp[32];
    struct tj_grok_field f = {0}, *fields;

    if (g->failed)
        return false;
    if (g->ecs == TJ_ECS_DISABLED && g->depth > 0) {
        const struct legacy_name *ln =
            legacy_find(g->lib, g->stack[g->depth - 1], g->stack_len[g->depth - 1], name, n);
        if (ln && !ln->legacy) {
            gx_puts(g, "(?:");
            return false;
        }
        if (ln) {
            name = ln->legacy;
            n = strlen(name);
            type = ln->type;
        }
    }
    fields = gx_room(g, g->fields, &g->capf, g->nfields, sizeof(*fields));
    if (!fields)
        return false;
    g->fields = fields;
    if (field_path(g, name, n, &f))
        return false;
    f.type = type;
    f.group = (uint32_t)(g->nfields + 1);
    g->fields[g->nfields++] = f;
    snprintf(tmp, sizeof(tmp), "(?<g%zu>", g->nfields);
    gx_puts(g, tmp);
    return true;
}

static void gx_expand(struct gx *g, const char *src, size_t n);

/* The parts of one %{NAME[:field[:type]]}. */
struct grok_ref {
    const char *name, *field;
    size_t name_len, field_len;
    enum tj_field_type type;
    size_t len; /* bytes from '%' to '}' included */
};

/* Parses the reference at src[0] ("%{"), reporting a malformed one at user offset `at`.
 * Returns false with the expansion failed. */
static bool parse_reference(struct gx *g, const char *src, size_t n, size_t at, struct grok_ref *r)
{
    const char *p = src + 2, *end = src + n;
    const char *close = memchr(p, '}', (size_t)(end - p)), *colon;

    memset(r, 0, sizeof(*r));
    r->name = p;
    while (p < end && is_name_char(*p))
        p++;
    r->name_len = (size_t)(p - r->name);
    if (!close || r->name_len == 0 || (p != close && *p != ':')) {
        gx_fail(g,
                "malformed %%{...} at offset %zu: expected %%{NAME}, %%{NAME:field} or "
                "%%{NAME:field:int|long|float|double|boolean}",
                at);
        return false;
    }
    r->len = (size_t)(close + 1 - src);
    if (*p != ':')
        return true;
    /* A field name never contains ':' in Logstash's syntax: a second ':' starts the type. */
    r->field = p + 1;
    colon = memchr(r->field, ':', (size_t)(close - r->field));
    r->field_len = (size_t)((colon ? colon : close) - r->field);
    if (colon) {
        r->type = type_named(colon + 1, (size_t)(close - colon - 1));
    }
    return true;
}

/* Fails the expansion if name is already being expanded (a reference cycle). */
static bool gx_check_cycle(struct gx *g, const char *name, size_t nn)
{
    for (int i = 0; i < g->depth; i++) {
        if (g->stack_len[i] == nn && memcmp(g->stack[i], name, nn) == 0) {
            char chain[512];
            size_t c = 0;
            for (int k = i; k < g->depth && c < sizeof(chain) - 80; k++)
                c += (size_t)snprintf(chain + c, sizeof(chain) - c, "%.*s -> ",
                                      (int)g->stack_len[k], g->stack[k]);
            gx_fail(g, "pattern reference cycle: %s%.*s", chain, (int)nn, name);
            return false;
        }
    }
    if (g->depth == TJ_GROK_MAX_DEPTH) {
        gx_fail(g, "pattern references nest deeper than %d levels", TJ_GROK_MAX_DEPTH);
        return false;
    }
    return true;
}

/* Handles %{NAME[:field[:type]]} at src[0]; returns the bytes consumed. */
static size_t gx_reference(struct gx *g, const char *src, size_t n, size_t at)
{
    struct grok_ref r;
    const char *def;

    if (!parse_reference(g, src, n, at, &r))
        return n;
    def = g->defs ? tj_grok_lib_get(g->defs, r.name, r.name_len, NULL) : NULL;
    if (!def)
        def = tj_grok_lib_get_ecs(g->lib, r.name, r.name_len, g->ecs, NULL);
    if (!def) {
        gx_fail(g, "unknown pattern %%{%.*s} at offset %zu%s%.*s%s", (int)r.name_len, r.name, at,
                g->depth ? " (used by %{" : "", g->depth ? (int)g->stack_len[g->depth - 1] : 0,
                g->depth ? g->stack[g->depth - 1] : "", g->depth ? "})" : "");
        return n;
    }
    if (!gx_check_cycle(g, r.name, r.name_len))
        return n;
    if (g->depth == 0)
        gx_mark(g, at, r.name, r.name_len);
    if (r.field)
        gx_open_field(g, r.field, r.field_len, r.type);
    else
        gx_puts(g, "(?:");
    g->stack[g->depth] = r.name;
    g->stack_len[g->depth] = r.name_len;
    g->depth++;
    gx_expand(g, def, strlen(def));
    g->depth--;
    gx_puts(g, ")");
    return r.len;
}

/* Remembers that the group just opened was named `name` by the expression. */
static void gx_name(struct gx *g, const char *name, size_t len)
{
    struct gname *names;

    if (g->failed)
        return;
    names = gx_room(g, g->names, &g->capnames, g->nnames, sizeof(*names));
    if (!names)
        return;
    g->names = names;
    g->names[g->nnames++] = (struct gname){name, len, g->nfields};
}

/* Writes the generated name of the group the expression called name[0..len), or the name
 * itself when no such group was opened before (PCRE2 then reports it). */
static void gx_put_ref(struct gx *g, const char *name, size_t len)
{
    char tmp[32];

    for (size_t i = g->nnames; i-- > 0;) {
        if (g->names[i].len == len && memcmp(g->names[i].name, name, len) == 0) {
            snprintf(tmp, sizeof(tmp), "g%zu", g->names[i].g);
            gx_puts(g, tmp);
            return;
        }
    }
    gx_put(g, name, len);
}

/* Rewrites a reference by name at src[0]: \k<n> \k'n' \k{n} \g{n}, or (?P=n) (?&n) (?P>n)
 * (?(<n>) (?('n') (?(n). Returns the bytes consumed, or 0 when src holds none of these. */
static size_t gx_group_reference(struct gx *g, const char *src, size_t n)
{
    static const struct {
        const char *open; /* text before the name */
        char close;       /* byte after it */
    } forms[] = {{"\\k<", '>'}, {"\\k'", '\''}, {"\\k{", '}'}, {"\\g{", '}'},  {"(?P=", ')'},
                 {"(?&", ')'},  {"(?P>", ')'},  {"(?(<", '>'}, {"(?('", '\''}, {"(?(", ')'}};

    for (size_t f = 0; f < TJ_ARRAY_LEN(forms); f++) {
        size_t k = strlen(forms[f].open);
        const char *name = src + k, *q;
        if (n <= k || memcmp(src, forms[f].open, k) != 0)
            continue;
        q = memchr(name, forms[f].close, n - k);
        if (!q || q == name || !is_name_char(*name) || (*name >= '0' && *name <= '9') ||
            *name == '-' || *name == '+')
            return 0; /* numbered, relative or malformed: PCRE2's to judge */
        for (const char *c = name; c < q; c++)
            if (!is_name_char(*c))
                return 0;
        gx_put(g, src, k);
        gx_put_ref(g, name, (size_t)(q - name));
        gx_put(g, q, 1);
        return (size_t)(q + 1 - src);
    }
    return 0;
}

/* Handles "(?" at src[0]: renames named groups, translates Ruby's m flag. Returns consumed. */
static size_t gx_paren(struct gx *g, const char *src, size_t n, size_t at)
{
    const char *p = src + 2, *end = src + n, *name, *q;
    char close;
    size_t used;

    if (p < end && *p == 'P' && p + 1 < end && p[1] == '<')
        p++;
    if (p < end && (*p == '<' || *p == '\'') && p + 1 < end && p[1] != '=' && p[1] != '!') {
        close = *p == '<' ? '>' : '\'';
        name = p + 1;
        q = memchr(name, close, (size_t)(end - name));
        if (!q) {
            gx_fail(g, "unterminated group name at offset %zu", at);
            return n;
        }
        if (gx_open_field(g, name, (size_t)(q - name), TJ_FIELD_STRING))
            gx_name(g, name, (size_t)(q - name));
        return (size_t)(q + 1 - src);
    }
    if ((used = gx_group_reference(g, src, n)) != 0)
        return used;
    /* (?flags) or (?flags:...): letters and '-' then ')' or ':'. */
    for (q = p; q < end && ((*q >= 'a' && *q <= 'z') || *q == '-'); q++)
        ;
    if (q > p && q < end && (*q == ')' || *q == ':')) {
        gx_puts(g, "(?");
        for (const char *f = p; f <= q; f++) {
            char c = *f == 'm' ? 's' : *f; /* Ruby's (?m) is dot-all */
            gx_put(g, &c, 1);
        }
        return (size_t)(q + 1 - src);
    }
    gx_puts(g, "(?");
    return 2;
}

/* Copies a bracket class starting at src[0] == '[', flattening nested classes. */
static size_t gx_class(struct gx *g, const char *src, size_t n, size_t at)
{
    size_t i = 1;
    int nest = 0;

    gx_put(g, "[", 1);
    if (i < n && src[i] == '^')
        gx_put(g, src + i++, 1);
    if (i < n && src[i] == ']')
        gx_put(g, src + i++, 1);
    while (i < n) {
        char c = src[i];
        if (c == '\\' && i + 1 < n) {
            if (src[i + 1] == 'h') {
                gx_puts(g, "0-9A-Fa-f");
            } else if (src[i + 1] == 'H') {
                gx_fail(g, "\\H inside a character class is not supported (offset %zu)", at + i);
                return n;
            } else {
                gx_put(g, src + i, 2);
            }
            i += 2;
        } else if (c == '[' && i + 1 < n && src[i + 1] == ':') {
            const char *e = memmem(src + i, n - i, ":]", 2);
            size_t k = e ? (size_t)(e - src) + 2 - i : 1;
            gx_put(g, src + i, k);
            i += k;
        } else if (c == '[') {
            /* Oniguruma: a class inside a class is their union; PCRE2 would read '[' as a
             * literal and end the class early, silently matching something else. */
            if (i + 1 < n && src[i + 1] == '^') {
                gx_fail(g, "a negated class nested in a class is not supported (offset %zu)",
                        at + i);
                return n;
            }
            nest++;
            i++;
            if (i < n && src[i] == ']')
                gx_put(g, src + i++, 1);
        } else if (c == ']') {
            i++;
            if (nest == 0) {
                gx_put(g, "]", 1);
                return i;
            }
            nest--;
        } else {
            gx_put(g, src + i++, 1);
        }
    }
    return i; /* unterminated: PCRE2 reports it */
}

static void gx_expand(struct gx *g, const char *src, size_t n)
{
    size_t i = 0;
    bool top = g->depth == 0;

    while (i < n && !g->failed) {
        char c = src[i];
        size_t used;

        if (top)
            gx_mark(g, i, NULL, 0);
        if (c == '\\' && i + 1 < n) {
            char d = src[i + 1];
            if (d == 'h') {
                gx_puts(g, "[0-9A-Fa-f]"); /* Oniguruma's \h */
                used = 2;
            } else if (d == 'H') {
                gx_puts(g, "[^0-9A-Fa-f]");
                used = 2;
            } else if ((d == 'k' || d == 'g') && (used = gx_group_reference(g, src + i, n - i))) {
                /* a reference to a named group, renamed with it */
            } else if (d == 'Q') {
                const char *e = memmem(src + i + 2, n - i - 2, "\\E", 2);
                used = e ? (size_t)(e - src) + 2 - i : n - i;
                gx_put(g, src + i, used);
            } else {
                gx_put(g, src + i, 2);
                used = 2;
            }
        } else if (c == '[') {
            used = gx_class(g, src + i, n - i, i);
        } else if (c == '(' && i + 1 < n && src[i + 1] == '?') {
            used = gx_paren(g, src + i, n - i, i);
        } else if (c == '%' && i + 1 < n && src[i + 1] == '{') {
            used = gx_reference(g, src + i, n - i, i);
        } else {
            gx_put(g, &c, 1);
            used = 1;
        }
        i += used;
    }
}

static void gx_fini(struct gx *g)
{
    free(g->out);
    for (size_t i = 0; i < g->nfields; i++)
        field_free(&g->fields[i]);
    free(g->fields);
    free(g->segs);
    free(g->names);
}

static bool gx_run(struct gx *g, const struct tj_grok_lib *lib, const char *expr, size_t len,
                   const struct tj_grok_opts *opts, char *err, size_t errlen)
{
    memset(g, 0, sizeof(*g));
    g->lib = lib;
    if (opts) {
        g->defs = opts->defs;
        g->ecs = opts->ecs;
    }
    g->user = expr;
    g->user_len = len;
    g->err = err;
    g->errlen = errlen;
    gx_put(g, "", 0);
    gx_expand(g, expr, len);
    return !g->failed;
}

char *tj_grok_expand(const struct tj_grok_lib *lib, const char *expr, size_t len, char *err,
                     size_t errlen)
{
    return tj_grok_expand_opts(lib, expr, len, NULL, err, errlen);
}

char *tj_grok_expand_opts(const struct tj_grok_lib *lib, const char *expr, size_t len,
                          const struct tj_grok_opts *opts, char *err, size_t errlen)
{
    struct gx g;
    char *out;

    if (!gx_run(&g, lib, expr, len, opts, err, errlen)) {
        gx_fini(&g);
        return NULL;
    }
    out = g.out;
    g.out = NULL;
    gx_fini(&g);
    return out;
}

/* Describes where PCRE2's error offset `off` (in the regex) lies in the user's expression. */
static void describe_offset(const struct gx *g, size_t off, char *buf, size_t n)
{
    const struct seg *s = NULL;

    for (size_t i = 0; i < g->nsegs && g->segs[i].out_off <= off; i++)
        s = &g->segs[i];
    if (!s)
        snprintf(buf, n, "at offset 0 of the expression");
    else if (s->name)
        snprintf(buf, n, "inside the expansion of %%{%.*s} at offset %zu of the expression",
                 (int)s->name_len, s->name, s->user_off);
    else
        snprintf(buf, n, "at offset %zu of the expression",
                 s->user_off + (off - s->out_off) > g->user_len ? g->user_len
                                                                : s->user_off + (off - s->out_off));
}

/* True if s[0..n) holds no byte >= 0x80. */
static bool all_ascii(const char *s, size_t n)
{
    size_t i = 0;
    unsigned high = 0;

#if defined(__SSE2__)
    __m128i acc = _mm_setzero_si128();
    for (; i + 16 <= n; i += 16)
        acc = _mm_or_si128(acc, _mm_loadu_si128((const __m128i *)(s + i)));
    high = (unsigned)_mm_movemask_epi8(acc);
    if (i < n && tj_block_readable(s + i, n - i)) {
        unsigned live = (1u << (n - i)) - 1; /* n - i < 16 here */
        high |= (unsigned)_mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(s + i))) & live;
        i = n;
    }
#endif
    for (; i < n; i++)
        high |= (unsigned char)s[i] & 0x80;
    return high == 0;
}

/* True if re[0..n) sets the i (caseless) or x (extended) option anywhere: (?i), (?x), (?-i:,
 * (?^xi) and the like. Caseless matching folds some characters above U+00FF to ASCII (U+017F to
 * 's', U+212A to 'k'); extended mode makes '[' in a comment plain text. */
static bool sets_i_or_x(const char *re, size_t n)
{
    for (size_t i = 0; i + 2 < n; i++) {
        if (re[i] != '(' || re[i + 1] != '?' || (i > 0 && re[i - 1] == '\\'))
            continue;
        size_t k = i + 2;
        bool ix = false;
        while (k < n && re[k] != '\0' && strchr("imnsxJU^-", re[k]))
            ix |= re[k] == 'i' || re[k] == 'x', k++;
        if (ix && k < n && (re[k] == ')' || re[k] == ':'))
            return true;
    }
    return false;
}

/* Writes to out the regex re[0..n) for byte mode: each non-ASCII character (re is valid UTF-8,
 * as the UTF compile checked) becomes \x{HH}, one unit that a quantifier or a class takes
 * whole, as in UTF mode. Inside a character class, a \x{...} above U+00FF becomes \x{ff}: the
 * twin only ever sees pure-ASCII subjects, which no character above U+007F matches, so
 * [%\x{80}-\x{10FFFF}] (URIPATH's class) and [%\x{80}-\x{ff}] match the same lines, unless the
 * regex sets (?i) or (?x) (see sets_i_or_x). Returns the length, or 0 when there is no such
 * twin: a character above U+00FF elsewhere, a non-ASCII one right after a backslash, or a \Q
 * quote (where \x{HH} would be literal text). out has room for 4 * n + 1 bytes. */
static size_t ascii_twin(const char *re, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)re;
    bool clamp = !sets_i_or_x(re, n), in_class = false;
    size_t w = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        if (c == '\\' && i + 1 < n && s[i + 1] == 'Q')
            return 0;
        if (c == '\\' && i + 2 < n && s[i + 1] == 'x' && s[i + 2] == '{') {
            size_t k = i + 3;
            unsigned long v = 0;
            for (; k < n && isxdigit(s[k]) && v <= 0x10FFFF; k++)
                v = v * 16 + (unsigned long)(isdigit(s[k]) ? s[k] - '0' : (s[k] | 0x20) - 'a' + 10);
            if (k < n && s[k] == '}' && v > 0xFF) {
                if (!clamp || !in_class)
                    return 0;
                memcpy(out + w, "\\x{ff}", 6);
                w += 6;
                i = k;
                continue;
            }
        }
        if (c == '\\' && i + 1 < n && s[i + 1] < 0x80) { /* an escape: both bytes as they are */
            out[w++] = (char)c;
            out[w++] = (char)s[++i];
            continue;
        }
        if (c == '[' && in_class && i + 1 < n && s[i + 1] == ':') { /* [:alpha:] */
            const char *end = memmem(re + i, n - i, ":]", 2);
            if (end) {
                size_t len = (size_t)(end + 2 - (re + i));
                memcpy(out + w, re + i, len);
                w += len;
                i += len - 1;
                continue;
            }
        }
        if (c == '[' && !in_class) {
            in_class = true;
            out[w++] = '[';
            if (i + 1 < n && s[i + 1] == '^')
                out[w++] = (char)s[++i];
            if (i + 1 < n && s[i + 1] == ']') /* a ']' first in a class is literal */
                out[w++] = (char)s[++i];
            continue;
        }
        if (c == ']' && in_class)
            in_class = false;
        if (c < 0x80) {
            out[w++] = (char)c;
            continue;
        }
        if ((c != 0xC2 && c != 0xC3) || i + 1 >= n || (i > 0 && s[i - 1] == '\\'))
            return 0;
        c = ((c & 0x1F) << 6) | (s[++i] & 0x3F); /* U+0080..U+00FF */
        memcpy(out + w, "\\x{", 3);
        out[w + 3] = hex[c >> 4];
        out[w + 4] = hex[c & 15];
        out[w + 5] = '}';
        w += 6;
    }
    return w;
}

/* The byte-mode twin of an expanded regex (see tj_grok.ascii_code), JIT compiled, or NULL when
 * it has none (ascii_twin), does not compile or JIT compile in byte mode, or has other groups. */
static pcre2_code *compile_ascii(const char *re, size_t n, uint32_t ngroups)
{
    pcre2_code *code = NULL;
    uint32_t count = 0;
    int errcode;
    PCRE2_SIZE erroff;
    char *twin = n < SIZE_MAX / 4 ? malloc(4 * n + 1) : NULL;
    size_t tn = twin ? ascii_twin(re, n, twin) : 0;

    if (twin && (tn || n == 0))
        code = pcre2_compile((PCRE2_SPTR)twin, tn, ASCII_PCRE2_FLAGS, &errcode, &erroff, NULL);
    free(twin);
    if (!code)
        return NULL; /* (*UTF), (*UCP), \x{100} and the like: UTF mode only */
    pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &count);
    if (count != ngroups || pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) != 0) {
        pcre2_code_free(code);
        return NULL;
    }
    return code;
}

char *tj_grok_byte_regex(const struct tj_grok *g)
{
    size_t n = strlen(g->regex);
    char *twin = g->ascii_code && n < SIZE_MAX / 4 ? malloc(4 * n + 1) : NULL;

    if (twin)
        twin[ascii_twin(g->regex, n, twin)] = '\0';
    return twin;
}

struct tj_grok *tj_grok_compile(const struct tj_grok_lib *lib, const char *expr, size_t len,
                                char *err, size_t errlen)
{
    return tj_grok_compile_opts(lib, expr, len, NULL, err, errlen);
}

struct tj_grok *tj_grok_compile_opts(const struct tj_grok_lib *lib, const char *expr, size_t len,
                                     const struct tj_grok_opts *opts, char *err, size_t errlen)
{
    struct gx g;
    struct tj_grok *gr = NULL;
    pcre2_code *code;
    int errcode;
    PCRE2_SIZE erroff;
    uint32_t ngroups = 0;

    if (!gx_run(&g, lib, expr, len, opts, err, errlen))
        goto fail;
    code = pcre2_compile((PCRE2_SPTR)g.out, g.len, TJ_GROK_PCRE2_FLAGS, &errcode, &erroff, NULL);
    if (!code) {
        char msg[256], where[256];
        pcre2_get_error_message(errcode, (PCRE2_UCHAR *)msg, sizeof(msg));
        describe_offset(&g, erroff, where, sizeof(where));
        snprintf(err, errlen, "PCRE2 error %s: %s", where, msg);
        goto fail;
    }
    gr = calloc(1, sizeof(*gr));
    if (!gr) {
        pcre2_code_free(code);
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    gr->code = code;
    gr->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
    pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &ngroups);
    gr->ngroups = ngroups;
    if (gr->jit)
        gr->ascii_code = compile_ascii(g.out, g.len, ngroups);
    gr->expr = strndup(expr, len);
    gr->regex = g.out;
    g.out = NULL;
    gr->fields = g.fields;
    gr->nfields = g.nfields;
    g.fields = NULL;
    g.nfields = 0;
    gr->refs = 1;
    if (!gr->expr) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < gr->nfields; i++) {
        char gname[32];
        int num;
        snprintf(gname, sizeof(gname), "g%zu", i + 1);
        num = pcre2_substring_number_from_name(code, (PCRE2_SPTR)gname);
        if (num <= 0) {
            snprintf(err, errlen,
                     "the group of field '%s' is not in the compiled regex (is it inside an (?x) "
                     "comment?)",
                     gr->fields[i].seg[gr->fields[i].nseg - 1]);
            goto fail;
        }
        gr->fields[i].group = (uint32_t)num;
    }
    gx_fini(&g);
    return gr;
fail:
    gx_fini(&g);
    if (gr) {
        gr->refs = 1;
        tj_grok_unref(gr);
    }
    return NULL;
}

struct tj_grok *tj_grok_ref(struct tj_grok *g)
{
    __atomic_add_fetch(&g->refs, 1, __ATOMIC_RELAXED);
    return g;
}

void tj_grok_unref(struct tj_grok *g)
{
    if (!g || __atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    pcre2_code_free(g->code);
    pcre2_code_free(g->ascii_code);
    for (size_t i = 0; i < g->nfields; i++)
        field_free(&g->fields[i]);
    free(g->fields);
    free(g->expr);
    free(g->regex);
    free(g);
}

/* ---- matching ---- */

struct tj_matcher {
    pcre2_match_data *md;
    uint32_t pairs;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jstack;
};

struct tj_matcher *tj_matcher_create(const struct tj_match_limits *lim)
{
    struct tj_matcher *m = calloc(1, sizeof(*m));

    if (!m)
        return NULL;
    m->pairs = 32;
    m->md = pcre2_match_data_create(m->pairs, NULL);
    m->mctx = pcre2_match_context_create(NULL);
    m->jstack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
    if (!m->md || !m->mctx || !m->jstack) {
        tj_matcher_destroy(m);
        return NULL;
    }
    pcre2_set_match_limit(m->mctx, lim->match_limit);
    pcre2_set_depth_limit(m->mctx, lim->depth_limit);
    pcre2_set_heap_limit(m->mctx, lim->heap_limit_kib);
    pcre2_jit_stack_assign(m->mctx, NULL, m->jstack);
    return m;
}

void tj_matcher_destroy(struct tj_matcher *m)
{
    if (!m)
        return;
    pcre2_match_data_free(m->md);
    pcre2_match_context_free(m->mctx);
    pcre2_jit_stack_free(m->jstack);
    free(m);
}

int tj_grok_match(const struct tj_grok *g, struct tj_matcher *m, const char *s, size_t n)
{
    return tj_grok_match_hint(g, m, s, n, false);
}

int tj_grok_match_hint(const struct tj_grok *g, struct tj_matcher *m, const char *s, size_t n,
                       bool ascii)
{
    int rc;

    if (TJ_UNLIKELY(g->ngroups + 1 > m->pairs)) {
        pcre2_match_data *md = pcre2_match_data_create(g->ngroups + 1, NULL);
        if (!md)
            return TJ_ENOMEM;
        pcre2_match_data_free(m->md);
        m->md = md;
        m->pairs = g->ngroups + 1;
    }
    if (g->ascii_code && (ascii || all_ascii(s, n)))
        rc = pcre2_jit_match(g->ascii_code, (PCRE2_SPTR)s, n, 0, 0, m->md, m->mctx);
    else if (TJ_LIKELY(g->jit))
        rc = pcre2_jit_match(g->code, (PCRE2_SPTR)s, n, 0, 0, m->md, m->mctx);
    else
        rc = pcre2_match(g->code, (PCRE2_SPTR)s, n, 0, 0, m->md, m->mctx);
    if (rc >= 0)
        return 1;
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    /* Match/depth/heap limits, JIT stack exhaustion, or anything else: bounded, no match. */
    return TJ_ELIMIT;
}

const size_t *tj_matcher_ovector(const struct tj_matcher *m)
{
    return pcre2_get_ovector_pointer(m->md);
}
