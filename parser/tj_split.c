/* tj_split.c: segment plans for grok regexes (see tj_split.h for what a plan is and why its
 * answers are PCRE2's). Compiling parses the byte-mode regex into a small tree, just enough to
 * know each top-level item's extent, which bytes it can consume, and where its captures are;
 * anything outside the subset understood here makes the whole regex go without a plan. Plans are
 * immutable; matching runs on the caller's thread with the caller's PCRE2 match data. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tj_split.h"

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tj_simd.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* ---- byte sets ---- */

struct cls {
    uint64_t w[4];
};

static void cls_add(struct cls *c, unsigned b)
{
    c->w[b >> 6] |= 1ull << (b & 63);
}

static void cls_range(struct cls *c, unsigned lo, unsigned hi)
{
    for (unsigned b = lo; b <= hi; b++)
        cls_add(c, b);
}

static bool cls_has(const struct cls *c, unsigned char b)
{
    return (c->w[b >> 6] >> (b & 63)) & 1;
}

static void cls_or(struct cls *c, const struct cls *o)
{
    for (int i = 0; i < 4; i++)
        c->w[i] |= o->w[i];
}

static void cls_not(struct cls *c)
{
    for (int i = 0; i < 4; i++)
        c->w[i] = ~c->w[i];
}

static int cls_single(const struct cls *c)
{
    int found = -1;
    for (unsigned b = 0; b < 256; b++)
        if (cls_has(c, (unsigned char)b)) {
            if (found >= 0)
                return -1;
            found = (int)b;
        }
    return found;
}

/* ---- the regex tree ---- */

enum ntype { N_ATOM, N_ASSERT, N_GROUP };
enum gkind { G_NONCAP, G_CAP, G_LOOK, G_ATOMIC };
enum qmode { Q_GREEDY, Q_LAZY, Q_POSSESSIVE };

struct node {
    enum ntype type;
    enum gkind gkind;
    size_t b, e;   /* text of the node, quantifier included */
    size_t cb, ce; /* a group's content (between the opening and the closing parenthesis) */
    struct cls set;
    bool quant;
    uint32_t qmin, qmax;
    enum qmode qmode;
    uint32_t group; /* G_CAP: its number (named groups in order, NO_AUTO_CAPTURE) */
    int alt;        /* N_GROUP: its first alternative (index into tree.alts) */
    int next;       /* the next node of the same sequence, -1 at the end */
};

struct alt {
    int head;    /* the first node, -1 when empty */
    int next;    /* the next alternative of the same group, -1 at the end */
    size_t b, e; /* its text */
};

struct tree {
    const char *re;
    size_t n;
    struct node *nodes;
    size_t nnodes, capn;
    struct alt *alts;
    size_t nalts, capa;
    uint32_t ncap;
    bool doubt; /* something outside the subset: no plan */
    bool lf;    /* PCRE2's newline is LF: '.' is "not \n" */
};

#define MAX_REPEAT 65535u

static int new_node(struct tree *t)
{
    if (t->nnodes == t->capn) {
        size_t cap = t->capn ? 2 * t->capn : 64;
        struct node *p = realloc(t->nodes, cap * sizeof(*p));
        if (!p)
            return -1;
        t->nodes = p;
        t->capn = cap;
    }
    memset(&t->nodes[t->nnodes], 0, sizeof(t->nodes[0]));
    t->nodes[t->nnodes].next = -1;
    t->nodes[t->nnodes].alt = -1;
    return (int)t->nnodes++;
}

static int new_alt(struct tree *t)
{
    if (t->nalts == t->capa) {
        size_t cap = t->capa ? 2 * t->capa : 16;
        struct alt *p = realloc(t->alts, cap * sizeof(*p));
        if (!p)
            return -1;
        t->alts = p;
        t->capa = cap;
    }
    t->alts[t->nalts] = (struct alt){-1, -1, 0, 0};
    return (int)t->nalts++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A byte given by an escape at re[i] == '\\' that stands for one byte (\t, \x41, \x{e4}, \", ...).
 * Returns the byte and sets *end after it, or -1 when it is not such an escape. */
static int escape_byte(const struct tree *t, size_t i, size_t *end)
{
    const char *re = t->re;
    if (i + 1 >= t->n)
        return -1;
    char c = re[i + 1];
    *end = i + 2;
    switch (c) {
    case 't':
        return '\t';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 'f':
        return '\f';
    case 'e':
        return 0x1b;
    case 'a':
        return 0x07;
    case 'x': {
        size_t k = i + 2;
        int v = 0;
        if (k < t->n && re[k] == '{') {
            int digits = 0;
            for (k++; k < t->n && hexval(re[k]) >= 0 && digits < 3; k++, digits++)
                v = v * 16 + hexval(re[k]);
            if (k >= t->n || re[k] != '}' || digits == 0 || v > 0xFF)
                return -1;
            *end = k + 1;
            return v;
        }
        for (int d = 0; d < 2 && k < t->n && hexval(re[k]) >= 0; d++, k++)
            v = v * 16 + hexval(re[k]);
        *end = k;
        return v;
    }
    default:
        break;
    }
    if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
        (unsigned char)c >= 0x80)
        return -1;
    return (unsigned char)c; /* an escaped punctuation character stands for itself */
}

/* \d \D \w \W \s \S \h \H \v \V in byte mode without UCP (PCRE2's default tables). Returns true
 * and fills *c for one of them. */
static bool escape_class(char e, struct cls *c)
{
    memset(c, 0, sizeof(*c));
    switch (e | 0x20) {
    case 'd':
        cls_range(c, '0', '9');
        break;
    case 'w':
        cls_range(c, '0', '9');
        cls_range(c, 'A', 'Z');
        cls_range(c, 'a', 'z');
        cls_add(c, '_');
        break;
    case 's':
        cls_range(c, '\t', '\r'), cls_add(c, ' ');
        break;
    case 'h':
        cls_add(c, '\t'), cls_add(c, ' '), cls_add(c, 0xA0);
        break;
    case 'v':
        cls_range(c, 0x0A, 0x0D), cls_add(c, 0x85);
        break;
    default:
        return false;
    }
    if (e >= 'A' && e <= 'Z')
        cls_not(c);
    return true;
}

static bool posix_class(const char *name, size_t len, struct cls *c)
{
    struct cls x = {{0}};
#define IS(s) (len == sizeof(s) - 1 && memcmp(name, s, len) == 0)
    if (IS("digit")) {
        cls_range(&x, '0', '9');
    } else if (IS("alpha") || IS("alnum") || IS("word")) {
        cls_range(&x, 'A', 'Z');
        cls_range(&x, 'a', 'z');
        if (!IS("alpha"))
            cls_range(&x, '0', '9');
        if (IS("word"))
            cls_add(&x, '_');
    } else if (IS("upper")) {
        cls_range(&x, 'A', 'Z');
    } else if (IS("lower")) {
        cls_range(&x, 'a', 'z');
    } else if (IS("xdigit")) {
        cls_range(&x, '0', '9');
        cls_range(&x, 'A', 'F');
        cls_range(&x, 'a', 'f');
    } else if (IS("space")) {
        cls_range(&x, '\t', '\r');
        cls_add(&x, ' ');
    } else if (IS("blank")) {
        cls_add(&x, '\t');
        cls_add(&x, ' ');
    } else if (IS("punct")) {
        cls_range(&x, '!', '/');
        cls_range(&x, ':', '@');
        cls_range(&x, '[', '`');
        cls_range(&x, '{', '~');
    } else {
        return false;
    }
#undef IS
    cls_or(c, &x);
    return true;
}

/* Parses the class at re[i] == '['. Returns the index after its ']' with *c filled, or 0 when in
 * doubt. */
static size_t parse_class(struct tree *t, size_t i, struct cls *c)
{
    const char *re = t->re;
    size_t n = t->n, k = i + 1;
    bool neg = false, first = true;
    memset(c, 0, sizeof(*c));
    if (k < n && re[k] == '^')
        neg = true, k++;
    for (;;) {
        if (k >= n)
            return 0;
        char ch = re[k];
        int lo;
        if (ch == ']' && !first)
            break;
        first = false;
        if (ch == '[') {
            if (k + 1 < n && re[k + 1] == ':') {
                const char *end = memmem(re + k + 2, n - k - 2, ":]", 2);
                if (!end || re[k + 2] == '^' ||
                    !posix_class(re + k + 2, (size_t)(end - re - k - 2), c))
                    return 0;
                k = (size_t)(end - re) + 2;
                continue;
            }
            if (k + 1 < n && (re[k + 1] == '.' || re[k + 1] == '='))
                return 0;
            lo = '[';
            k++;
        } else if (ch == '\\') {
            struct cls e;
            if (k + 1 < n && escape_class(re[k + 1], &e)) {
                cls_or(c, &e);
                k += 2;
                continue;
            }
            if (k + 1 < n && re[k + 1] == 'b') /* a backspace in a class: rare, keep it simple */
                return 0;
            size_t end;
            lo = escape_byte(t, k, &end);
            if (lo < 0)
                return 0;
            k = end;
        } else {
            if ((unsigned char)ch >= 0x80)
                return 0;
            lo = (unsigned char)ch;
            k++;
        }
        if (k + 1 < n && re[k] == '-' && re[k + 1] != ']') { /* a range */
            int hi;
            if (re[k + 1] == '\\') {
                size_t end;
                hi = escape_byte(t, k + 1, &end);
                if (hi < 0)
                    return 0;
                k = end;
            } else if (re[k + 1] == '[' || (unsigned char)re[k + 1] >= 0x80) {
                return 0;
            } else {
                hi = (unsigned char)re[k + 1];
                k += 2;
            }
            if (hi < lo)
                return 0;
            cls_range(c, (unsigned)lo, (unsigned)hi);
            continue;
        }
        cls_add(c, (unsigned)lo);
    }
    if (neg)
        cls_not(c);
    return k + 1;
}

/* Parses a quantifier at re[i] (if any) into node x. Returns the index after it, or 0 in doubt. */
static size_t parse_quant(struct tree *t, size_t i, struct node *x)
{
    const char *re = t->re;
    size_t n = t->n;
    uint32_t lo, hi;
    if (i >= n)
        return i;
    if (re[i] == '*')
        lo = 0, hi = UINT32_MAX, i++;
    else if (re[i] == '+')
        lo = 1, hi = UINT32_MAX, i++;
    else if (re[i] == '?')
        lo = 0, hi = 1, i++;
    else if (re[i] == '{') {
        size_t k = i + 1;
        unsigned long a = 0, b;
        if (k >= n || re[k] < '0' || re[k] > '9')
            return 0; /* "{" as a literal, or {,m}: not here */
        for (; k < n && re[k] >= '0' && re[k] <= '9' && a <= MAX_REPEAT; k++)
            a = a * 10 + (unsigned long)(re[k] - '0');
        b = a;
        if (k < n && re[k] == ',') {
            k++;
            if (k < n && re[k] == '}') {
                b = UINT32_MAX;
            } else {
                b = 0;
                if (k >= n || re[k] < '0' || re[k] > '9')
                    return 0;
                for (; k < n && re[k] >= '0' && re[k] <= '9' && b <= MAX_REPEAT; k++)
                    b = b * 10 + (unsigned long)(re[k] - '0');
            }
        }
        if (k >= n || re[k] != '}' || a > MAX_REPEAT ||
            (b != UINT32_MAX && (b > MAX_REPEAT || b < a)))
            return 0;
        lo = (uint32_t)a, hi = (uint32_t)b, i = k + 1;
    } else {
        return i;
    }
    x->quant = true;
    x->qmin = lo;
    x->qmax = hi;
    x->qmode = Q_GREEDY;
    if (i < n && re[i] == '?')
        x->qmode = Q_LAZY, i++;
    else if (i < n && re[i] == '+')
        x->qmode = Q_POSSESSIVE, i++;
    if (i < n && (re[i] == '*' || re[i] == '+' || re[i] == '?' || re[i] == '{'))
        return 0;
    return i;
}

static size_t parse_alts(struct tree *t, size_t i, int *first_alt, int depth);

/* Parses one item at re[i] into a new node. Returns the index after it, or 0 in doubt (or out of
 * memory, which also sets t->doubt). *out gets the node. */
static size_t parse_item(struct tree *t, size_t i, int *out, int depth)
{
    const char *re = t->re;
    size_t n = t->n, k;
    int id = new_node(t);
    if (id < 0)
        return 0;
    struct node x;
    memset(&x, 0, sizeof(x));
    x.b = i;
    x.alt = -1;
    x.next = -1;
    char c = re[i];
    if (c == '(') {
        size_t cb;
        x.type = N_GROUP;
        if (i + 1 < n && re[i + 1] == '*')
            return 0; /* verbs */
        if (i + 1 < n && re[i + 1] == '?') {
            char d = i + 2 < n ? re[i + 2] : '\0';
            if (d == ':') {
                x.gkind = G_NONCAP, cb = i + 3;
            } else if (d == '=' || d == '!') {
                x.gkind = G_LOOK, cb = i + 3;
            } else if (d == '>') {
                x.gkind = G_ATOMIC, cb = i + 3;
            } else if (d == '<' && i + 3 < n && (re[i + 3] == '=' || re[i + 3] == '!')) {
                x.gkind = G_LOOK, cb = i + 4;
            } else if (d == '<') {
                k = i + 3;
                while (k < n && ((re[k] >= 'A' && re[k] <= 'Z') || (re[k] >= 'a' && re[k] <= 'z') ||
                                 (re[k] >= '0' && re[k] <= '9') || re[k] == '_'))
                    k++;
                if (k == i + 3 || k >= n || re[k] != '>')
                    return 0;
                x.gkind = G_CAP, cb = k + 1;
                x.group = ++t->ncap;
            } else {
                return 0; /* options, comments, conditionals, recursion, branch reset, ... */
            }
        } else {
            x.gkind = G_NONCAP, cb = i + 1; /* NO_AUTO_CAPTURE: a plain group captures nothing */
        }
        x.cb = cb;
        k = parse_alts(t, cb, &x.alt, depth + 1);
        if (!k || k >= n || re[k] != ')')
            return 0;
        x.ce = k;
        k++;
    } else if (c == '[') {
        x.type = N_ATOM;
        k = parse_class(t, i, &x.set);
        if (!k)
            return 0;
    } else if (c == '\\') {
        if (i + 1 >= n)
            return 0;
        char e = re[i + 1];
        if (escape_class(e, &x.set)) {
            x.type = N_ATOM, k = i + 2;
        } else if (e == 'b' || e == 'B' || e == 'A' || e == 'z' || e == 'Z') {
            x.type = N_ASSERT, k = i + 2;
        } else {
            int b = escape_byte(t, i, &k);
            if (b < 0)
                return 0; /* \K \G \Q \E \p \X \R \N \C, backreferences, octal, ... */
            x.type = N_ATOM;
            cls_add(&x.set, (unsigned)b);
        }
    } else if (c == '^' || c == '$') {
        x.type = N_ASSERT, k = i + 1;
    } else if (c == '.') {
        if (!t->lf)
            return 0;
        x.type = N_ATOM, k = i + 1;
        cls_range(&x.set, 0, 255);
        x.set.w[0] &= ~(1ull << '\n');
    } else if (c == '*' || c == '+' || c == '?' || c == '{' || c == '|' || c == ')' ||
               (unsigned char)c >= 0x80) {
        return 0;
    } else {
        x.type = N_ATOM, k = i + 1;
        cls_add(&x.set, (unsigned char)c);
    }
    k = parse_quant(t, k, &x);
    if (!k)
        return 0;
    x.e = k;
    t->nodes[id] = x;
    *out = id;
    return k;
}

/* Parses alternatives from re[i] up to an unmatched ')' or the end. Returns where it stopped, or 0
 * in doubt. */
static size_t parse_alts(struct tree *t, size_t i, int *first_alt, int depth)
{
    int prev_alt = -1;
    if (depth > 200)
        return 0;
    for (;;) {
        int a = new_alt(t), prev = -1;
        if (a < 0)
            return 0;
        if (prev_alt < 0)
            *first_alt = a;
        else
            t->alts[prev_alt].next = a;
        prev_alt = a;
        t->alts[a].b = i;
        while (i < t->n && t->re[i] != '|' && t->re[i] != ')') {
            int id;
            i = parse_item(t, i, &id, depth);
            if (!i)
                return 0;
            if (prev < 0)
                t->alts[a].head = id;
            else
                t->nodes[prev].next = id;
            prev = id;
        }
        t->alts[a].e = i;
        if (i < t->n && t->re[i] == '|') {
            i++;
            continue;
        }
        return i == 0 ? 0 : i;
    }
}

/* The bytes a node can consume (lookarounds and assertions consume none). */
static struct cls node_set(const struct tree *t, int id)
{
    const struct node *x = &t->nodes[id];
    struct cls c = {{0}};
    if (x->type == N_ATOM)
        return x->set;
    if (x->type == N_ASSERT || x->gkind == G_LOOK)
        return c;
    for (int a = x->alt; a >= 0; a = t->alts[a].next)
        for (int y = t->alts[a].head; y >= 0; y = t->nodes[y].next) {
            struct cls s = node_set(t, y);
            cls_or(&c, &s);
        }
    return c;
}

static bool has_capture(const struct tree *t, int id)
{
    const struct node *x = &t->nodes[id];
    if (x->type != N_GROUP)
        return false;
    if (x->gkind == G_CAP)
        return true;
    for (int a = x->alt; a >= 0; a = t->alts[a].next)
        for (int y = t->alts[a].head; y >= 0; y = t->nodes[y].next)
            if (has_capture(t, y))
                return true;
    return false;
}

static bool seq_has_capture(const struct tree *t, int head)
{
    for (int y = head; y >= 0; y = t->nodes[y].next)
        if (has_capture(t, y))
            return true;
    return false;
}

/* A node that is exactly one literal byte (no quantifier, or {1}). Returns it or -1. */
static int literal_of(const struct tree *t, int id)
{
    const struct node *x = &t->nodes[id];
    if (x->type != N_ATOM || (x->quant && (x->qmin != 1 || x->qmax != 1)))
        return -1;
    return cls_single(&x->set);
}

/* A group that only groups: non-capturing, unquantified, one alternative. */
static bool is_plain_group(const struct tree *t, int id)
{
    const struct node *x = &t->nodes[id];
    return x->type == N_GROUP && x->gkind == G_NONCAP && !x->quant && x->alt >= 0 &&
           t->alts[x->alt].next < 0;
}

/* Appends the sequence starting at head to list, opening plain groups. Returns the new count, or
 * SIZE_MAX when it does not fit in cap. */
static size_t flatten(const struct tree *t, int head, int *list, size_t cnt, size_t cap)
{
    for (int y = head; y >= 0; y = t->nodes[y].next) {
        if (is_plain_group(t, y)) {
            cnt = flatten(t, t->alts[t->nodes[y].alt].head, list, cnt, cap);
            if (cnt == SIZE_MAX)
                return cnt;
            continue;
        }
        if (cnt == cap)
            return SIZE_MAX;
        list[cnt++] = y;
    }
    return cnt;
}

/* ---- plans ---- */

struct atom {
    struct cls set;
    uint32_t min, max;
    enum qmode mode;
};

enum test_kind { T_LIT, T_MINI, T_PCRE, T_QS };

/* One alternative of a member or first segment. */
struct test {
    enum test_kind kind;
    uint32_t group; /* the capture spanning the whole alternative, 0 for none */
    char *lit;      /* T_LIT */
    size_t litlen;
    struct atom *atoms; /* T_MINI */
    size_t natoms;
    pcre2_code *code;    /* T_PCRE: the alternative, then the stop byte, anchored */
    unsigned char quote; /* T_QS */
    bool reordered;      /* T_PCRE: its alternatives were reversed */
};

enum seg_kind { S_LIT, S_MEMBER, S_FIRST, S_PCRE };

struct seg {
    enum seg_kind kind;
    char *lit; /* S_LIT: the literal; others: the literal run that follows them, or NULL */
    size_t litlen;
    unsigned char stop; /* S_MEMBER: the byte right after the field */
    struct test *tests; /* S_MEMBER, S_FIRST: alternatives in order */
    size_t ntests;
    pcre2_code *code; /* S_PCRE: anchored */
    uint32_t base;    /* S_PCRE: its group k is the whole regex's base + k */
    uint32_t nsub;
};

struct tj_split {
    struct seg *segs;
    size_t nsegs;
    uint32_t ngroups;
};

#define MINI_BUDGET 256

static void test_free(struct test *x)
{
    free(x->lit);
    free(x->atoms);
    pcre2_code_free(x->code);
}

void tj_split_destroy(struct tj_split *sp)
{
    if (!sp)
        return;
    for (size_t i = 0; i < sp->nsegs; i++) {
        struct seg *s = &sp->segs[i];
        free(s->lit);
        for (size_t k = 0; k < s->ntests; k++)
            test_free(&s->tests[k]);
        free(s->tests);
        pcre2_code_free(s->code);
    }
    free(sp->segs);
    free(sp);
}

/* A growable text for sub-patterns. */
struct str {
    char *p;
    size_t len, cap;
    bool oom;
};

static void str_put(struct str *s, const char *p, size_t n)
{
    if (s->oom)
        return;
    if (s->len + n + 1 > s->cap) {
        size_t cap = (s->len + n + 1) * 2;
        char *q = realloc(s->p, cap);
        if (!q) {
            s->oom = true;
            return;
        }
        s->p = q;
        s->cap = cap;
    }
    memcpy(s->p + s->len, p, n);
    s->len += n;
    s->p[s->len] = '\0';
}

static void str_byte(struct str *s, unsigned char b)
{
    char esc[8];
    snprintf(esc, sizeof(esc), "\\x{%02x}", b);
    str_put(s, esc, strlen(esc));
}

static pcre2_code *compile_sub(const char *re, size_t n, uint32_t flags)
{
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *code =
        pcre2_compile((PCRE2_SPTR)re, n, flags | PCRE2_ANCHORED, &errcode, &erroff, NULL);
    if (code && pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) != 0) {
        pcre2_code_free(code);
        code = NULL;
    }
    return code;
}

/* Collects the alternatives of a capture-free body for a membership test: nested plain
 * non-capturing unquantified groups are opened, so that (?:(?:A|B)|C) gives A, B, C. */
static size_t body_alts(const struct tree *t, int first_alt, int *out, size_t cnt, size_t cap)
{
    for (int a = first_alt; a >= 0; a = t->alts[a].next) {
        int h = t->alts[a].head;
        if (h >= 0 && t->nodes[h].next < 0 && t->nodes[h].type == N_GROUP &&
            t->nodes[h].gkind == G_NONCAP && !t->nodes[h].quant) {
            cnt = body_alts(t, t->nodes[h].alt, out, cnt, cap);
            if (cnt == SIZE_MAX)
                return cnt;
            continue;
        }
        if (cnt == cap)
            return SIZE_MAX;
        out[cnt++] = a;
    }
    return cnt;
}

/* True if the sequence is literal bytes only; fills lit. */
static bool seq_literal(const struct tree *t, int head, struct str *lit)
{
    for (int y = head; y >= 0; y = t->nodes[y].next) {
        int b = literal_of(t, y);
        if (b < 0)
            return false;
        char c = (char)b;
        str_put(lit, &c, 1);
    }
    return true;
}

/* True if the sequence (plain groups opened) is quantified byte classes only; fills atoms. */
static bool seq_mini(const struct tree *t, int head, struct atom **atoms, size_t *natoms)
{
    int list[64];
    size_t cnt = flatten(t, head, list, 0, 64);
    if (cnt == SIZE_MAX || cnt == 0)
        return false;
    for (size_t i = 0; i < cnt; i++)
        if (t->nodes[list[i]].type != N_ATOM)
            return false;
    *atoms = calloc(cnt, sizeof(**atoms));
    if (!*atoms)
        return false;
    for (size_t i = 0; i < cnt; i++) {
        const struct node *x = &t->nodes[list[i]];
        (*atoms)[i] = (struct atom){x->set, x->quant ? x->qmin : 1, x->quant ? x->qmax : 1,
                                    x->quant ? x->qmode : Q_GREEDY};
    }
    *natoms = cnt;
    return true;
}

/* The quoted-string body Logstash's QS expands to: [^Q\\]*+(?:\\.[^Q\\]*+)*+ (one path only: every
 * part is possessive). Returns Q, or -1. */
static int qs_quote(const struct tree *t, size_t b, size_t e)
{
    static const char tmpl[] = "[^Q\\\\]*+(?:\\\\.[^Q\\\\]*+)*+";
    size_t len = sizeof(tmpl) - 1;
    if (e - b != len || !t->lf)
        return -1;
    char q = t->re[b + 2];
    if (q == '\\' || q == ']' || q == '^' || q == '-' || q == '[' || (unsigned char)q >= 0x80)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (tmpl[i] != 'Q' ? t->re[b + i] != tmpl[i] : t->re[b + i] != q)
            return -1;
    return (unsigned char)q;
}

/* Builds the test of one capture-free alternative text [b,e) whose head is head, for a member
 * segment stopping at stop. Returns 0, or -1 when it cannot. */
static int build_member_test(const struct tree *t, int first_alt, size_t b, size_t e,
                             unsigned char stop, uint32_t flags, struct test *x)
{
    struct str lit = {0};
    int list[256];
    size_t cnt;

    /* one alternative: literal, or a flat run of classes */
    if (first_alt >= 0 && t->alts[first_alt].next < 0) {
        int head = t->alts[first_alt].head;
        if (head >= 0 && seq_literal(t, head, &lit) && !lit.oom && lit.len > 0) {
            x->kind = T_LIT, x->lit = lit.p, x->litlen = lit.len;
            return 0;
        }
        free(lit.p);
        if (seq_mini(t, head, &x->atoms, &x->natoms)) {
            x->kind = T_MINI;
            return 0;
        }
    }
    /* PCRE2: the alternatives reversed (whether one fits is all that counts, and grok's library
     * puts the general case last: a host name before the IPv6 forms), then the stop byte */
    struct str re = {0};
    cnt = first_alt >= 0 ? body_alts(t, first_alt, list, 0, 256) : 0;
    str_put(&re, "(?:", 3);
    x->reordered = cnt != SIZE_MAX && cnt > 1;
    if (cnt == SIZE_MAX || cnt == 0) {
        str_put(&re, t->re + b, e - b);
    } else {
        for (size_t i = cnt; i-- > 0;) {
            str_put(&re, t->re + t->alts[list[i]].b, t->alts[list[i]].e - t->alts[list[i]].b);
            if (i)
                str_put(&re, "|", 1);
        }
    }
    str_put(&re, ")", 1);
    str_byte(&re, stop);
    if (re.oom) {
        free(re.p);
        return -1;
    }
    x->kind = T_PCRE;
    x->code = compile_sub(re.p, re.len, flags);
    free(re.p);
    if (!x->code)
        return -1;
    uint32_t caps = 1;
    pcre2_pattern_info(x->code, PCRE2_INFO_CAPTURECOUNT, &caps);
    return caps == 0 ? 0 : -1;
}

/* The alternatives of a field item: itself (capture-free, or one capture around capture-free
 * content), or the alternatives of a plain non-capturing group, each of those forms. Fills
 * alts[] (tree alternatives; -1 for "the node itself") and groups[]. Returns the count, or 0. */
static size_t item_alts(const struct tree *t, int id, int *heads, uint32_t *groups, size_t *bs,
                        size_t *es, size_t cap)
{
    const struct node *x = &t->nodes[id];
    size_t cnt = 0;
    if (!has_capture(t, id)) {
        heads[0] = -2, groups[0] = 0, bs[0] = x->b, es[0] = x->e;
        return 1;
    }
    if (x->type == N_GROUP && x->gkind == G_CAP && !x->quant) {
        for (int a = x->alt; a >= 0; a = t->alts[a].next)
            if (seq_has_capture(t, t->alts[a].head))
                return 0;
        heads[0] = x->alt, groups[0] = x->group, bs[0] = x->cb, es[0] = x->ce;
        return 1;
    }
    if (x->type != N_GROUP || x->gkind != G_NONCAP || x->quant)
        return 0;
    for (int a = x->alt; a >= 0; a = t->alts[a].next) {
        int h = t->alts[a].head;
        if (cnt == cap)
            return 0;
        if (!seq_has_capture(t, h)) {
            heads[cnt] = -3 - a, groups[cnt] = 0, bs[cnt] = t->alts[a].b, es[cnt] = t->alts[a].e;
        } else if (h >= 0 && t->nodes[h].next < 0 && t->nodes[h].type == N_GROUP &&
                   t->nodes[h].gkind == G_CAP && !t->nodes[h].quant) {
            const struct node *c = &t->nodes[h];
            for (int b = c->alt; b >= 0; b = t->alts[b].next)
                if (seq_has_capture(t, t->alts[b].head))
                    return 0;
            heads[cnt] = c->alt, groups[cnt] = c->group, bs[cnt] = c->cb, es[cnt] = c->ce;
        } else {
            return 0;
        }
        cnt++;
    }
    return cnt;
}

/* Tree alternative list standing for an item alternative (see item_alts): a node's own text is
 * wrapped as a one-alternative list of that node only when it is a group; else -1 (no list). */
static int alt_list_of(const struct tree *t, int id, int head)
{
    if (head >= 0)
        return head;
    if (head == -2) {
        const struct node *x = &t->nodes[id];
        if (x->type == N_GROUP && !x->quant && (x->gkind == G_NONCAP))
            return x->alt;
        return -1;
    }
    /* one alternative a of a plain group: a list of its own, that alternative only */
    return -3 - head;
}

static int build_member(const struct tree *t, int id, unsigned char stop, uint32_t flags,
                        struct seg *s)
{
    int heads[16];
    uint32_t groups[16];
    size_t bs[16], es[16];
    size_t cnt = item_alts(t, id, heads, groups, bs, es, 16);
    if (!cnt)
        return -1;
    s->kind = S_MEMBER;
    s->stop = stop;
    s->tests = calloc(cnt, sizeof(*s->tests));
    if (!s->tests)
        return -1;
    s->ntests = cnt;
    for (size_t i = 0; i < cnt; i++) {
        struct test *x = &s->tests[i];
        int list = alt_list_of(t, id, heads[i]);
        x->group = groups[i];
        if (heads[i] <= -3) {
            /* a single alternative of a group: test it alone (its own list entry, not the rest) */
            struct alt one = t->alts[list];
            struct str lit = {0};
            if (one.head >= 0 && seq_literal(t, one.head, &lit) && !lit.oom && lit.len > 0) {
                x->kind = T_LIT, x->lit = lit.p, x->litlen = lit.len;
                continue;
            }
            free(lit.p);
            if (seq_mini(t, one.head, &x->atoms, &x->natoms)) {
                x->kind = T_MINI;
                continue;
            }
            if (build_member_test(t, -1, bs[i], es[i], stop, flags, x))
                return -1;
            continue;
        }
        if (list < 0) { /* a node that is not a group: its own text */
            struct atom *atoms;
            size_t natoms;
            const struct node *x0 = &t->nodes[id];
            if (x0->type == N_ATOM) {
                atoms = calloc(1, sizeof(*atoms));
                if (!atoms)
                    return -1;
                atoms[0] =
                    (struct atom){x0->set, x0->quant ? x0->qmin : 1, x0->quant ? x0->qmax : 1,
                                  x0->quant ? x0->qmode : Q_GREEDY};
                natoms = 1;
                x->kind = T_MINI, x->atoms = atoms, x->natoms = natoms;
                continue;
            }
            if (build_member_test(t, -1, bs[i], es[i], stop, flags, x))
                return -1;
            continue;
        }
        if (build_member_test(t, list, bs[i], es[i], stop, flags, x))
            return -1;
    }
    return 0;
}

/* A first-path item: a quoted-string body, a capture of one, or a plain group whose alternatives
 * are literals or those. Returns 0 with s filled, or -1. */
static int build_first(const struct tree *t, int id, struct seg *s)
{
    const struct node *x = &t->nodes[id];
    int q;
    struct test one = {0};

    if (x->quant)
        return -1;
    if (x->type == N_GROUP && x->gkind == G_CAP && (q = qs_quote(t, x->cb, x->ce)) >= 0) {
        one = (struct test){.kind = T_QS, .group = x->group, .quote = (unsigned char)q};
    } else if (x->type == N_GROUP && x->gkind == G_NONCAP && (q = qs_quote(t, x->cb, x->ce)) >= 0) {
        one = (struct test){.kind = T_QS, .quote = (unsigned char)q};
    } else if (x->type == N_GROUP && x->gkind == G_NONCAP) {
        size_t cnt = 0;
        for (int a = x->alt; a >= 0; a = t->alts[a].next)
            cnt++;
        s->tests = calloc(cnt, sizeof(*s->tests));
        if (!s->tests)
            return -1;
        s->ntests = cnt;
        s->kind = S_FIRST;
        size_t i = 0;
        for (int a = x->alt; a >= 0; a = t->alts[a].next, i++) {
            struct test *tt = &s->tests[i];
            int h = t->alts[a].head;
            struct str lit = {0};
            if (h >= 0 && seq_literal(t, h, &lit) && !lit.oom && lit.len > 0) {
                tt->kind = T_LIT, tt->lit = lit.p, tt->litlen = lit.len;
                continue;
            }
            free(lit.p);
            if ((q = qs_quote(t, t->alts[a].b, t->alts[a].e)) >= 0) {
                tt->kind = T_QS, tt->quote = (unsigned char)q;
                continue;
            }
            if (h >= 0 && t->nodes[h].next < 0 && t->nodes[h].type == N_GROUP &&
                t->nodes[h].gkind == G_CAP && !t->nodes[h].quant &&
                (q = qs_quote(t, t->nodes[h].cb, t->nodes[h].ce)) >= 0) {
                tt->kind = T_QS, tt->quote = (unsigned char)q, tt->group = t->nodes[h].group;
                continue;
            }
            return -1;
        }
        return 0;
    } else {
        return -1;
    }
    s->kind = S_FIRST;
    s->tests = calloc(1, sizeof(*s->tests));
    if (!s->tests)
        return -1;
    s->tests[0] = one;
    s->ntests = 1;
    return 0;
}

/* The first capture group number inside node id (or after it when none), for numbering. */
static uint32_t groups_before(const struct tree *t, size_t at)
{
    uint32_t k = 0;
    for (size_t i = 0; i < t->nnodes; i++)
        if (t->nodes[i].type == N_GROUP && t->nodes[i].gkind == G_CAP && t->nodes[i].b < at)
            k++;
    return k;
}

static struct seg *add_seg(struct tj_split *sp, size_t *cap)
{
    if (sp->nsegs == *cap) {
        size_t c = *cap ? 2 * *cap : 16;
        struct seg *p = realloc(sp->segs, c * sizeof(*p));
        if (!p)
            return NULL;
        sp->segs = p;
        *cap = c;
    }
    memset(&sp->segs[sp->nsegs], 0, sizeof(sp->segs[0]));
    return &sp->segs[sp->nsegs++];
}

enum { K_LIT, K_MEMBER, K_FIRST, K_PCRE };

struct tj_split *tj_split_compile(const char *re, size_t n, uint32_t flags, uint32_t ngroups)
{
    struct tree t = {.re = re, .n = n};
    struct tj_split *sp = NULL;
    int first_alt = -1;
    uint32_t nl = 0;
    enum { MAXITEMS = 512 };
    int *items = NULL, *kind = NULL;
    size_t nitems, segcap = 0, members = 0;

    pcre2_config(PCRE2_CONFIG_NEWLINE, &nl);
    t.lf = nl == PCRE2_NEWLINE_LF;
    if (n == 0 || parse_alts(&t, 0, &first_alt, 0) != n || t.ncap != ngroups ||
        t.alts[first_alt].next >= 0)
        goto out; /* in doubt, or an alternation at the top */
    items = malloc(MAXITEMS * sizeof(*items));
    kind = malloc(MAXITEMS * sizeof(*kind));
    if (!items || !kind)
        goto out;
    nitems = flatten(&t, t.alts[first_alt].head, items, 0, MAXITEMS);
    if (nitems == SIZE_MAX || nitems < 2)
        goto out;
    sp = calloc(1, sizeof(*sp));
    if (!sp)
        goto out;
    sp->ngroups = ngroups;

    /* classify: literal bytes; fields cut at the literal byte after them; quoted strings; the
     * rest for PCRE2 */
    for (size_t i = 0; i < nitems; i++) {
        int lit = literal_of(&t, items[i]);
        if (lit >= 0) {
            kind[i] = K_LIT;
            continue;
        }
        kind[i] = K_PCRE;
        if (i + 1 < nitems && (lit = literal_of(&t, items[i + 1])) >= 0) {
            struct cls c = node_set(&t, items[i]);
            struct seg probe = {0};
            bool worth = false;
            if (!cls_has(&c, (unsigned char)lit) &&
                build_member(&t, items[i], (unsigned char)lit, flags, &probe) == 0)
                kind[i] = K_MEMBER;
            /* a member segment whose only test is the field's own regex, in its own order,
             * costs a PCRE2 call of its own: better merged with its neighbours */
            for (size_t k = 0; k < probe.ntests; k++) {
                worth |= probe.tests[k].kind != T_PCRE || probe.tests[k].reordered;
                test_free(&probe.tests[k]);
            }
            if (!worth)
                kind[i] = K_PCRE;
            free(probe.tests);
            if (kind[i] == K_MEMBER)
                continue;
        }
        struct seg probe = {0};
        if (build_first(&t, items[i], &probe) == 0)
            kind[i] = K_FIRST;
        for (size_t k = 0; k < probe.ntests; k++)
            test_free(&probe.tests[k]);
        free(probe.tests);
    }

    for (size_t i = 0; i < nitems;) {
        struct seg *s = add_seg(sp, &segcap);
        if (!s)
            goto fail;
        if (kind[i] == K_LIT) {
            struct str lit = {0};
            for (; i < nitems && kind[i] == K_LIT; i++) {
                char c = (char)literal_of(&t, items[i]);
                str_put(&lit, &c, 1);
            }
            s->kind = S_LIT;
            s->lit = lit.p;
            s->litlen = lit.len;
            if (lit.oom)
                goto fail;
            continue;
        }
        if (kind[i] == K_MEMBER || kind[i] == K_FIRST) {
            if (kind[i] == K_MEMBER
                    ? build_member(&t, items[i], (unsigned char)literal_of(&t, items[i + 1]), flags,
                                   s)
                    : build_first(&t, items[i], s))
                goto fail;
            members++;
            struct str lit = {0};
            for (i++; i < nitems && kind[i] == K_LIT; i++) {
                char c = (char)literal_of(&t, items[i]);
                str_put(&lit, &c, 1);
            }
            s->lit = lit.p;
            s->litlen = lit.len;
            if (lit.oom)
                goto fail;
            continue;
        }
        /* PCRE2: this item, and the next ones while they are for PCRE2 too, or literal runs
         * followed by one (or ending the regex) */
        size_t j = i + 1;
        for (;;) {
            size_t k = j;
            while (k < nitems && kind[k] == K_LIT)
                k++;
            if (k < nitems && kind[k] == K_PCRE)
                j = k + 1;
            else if (k == nitems)
                j = k;
            else
                break;
            if (j == nitems)
                break;
        }
        size_t b = t.nodes[items[i]].b, e = t.nodes[items[j - 1]].e;
        s->kind = S_PCRE;
        s->code = compile_sub(re + b, e - b, flags);
        if (!s->code)
            goto fail;
        s->base = groups_before(&t, b);
        pcre2_pattern_info(s->code, PCRE2_INFO_CAPTURECOUNT, &s->nsub);
        if (s->base + s->nsub > ngroups)
            goto fail;
        i = j;
    }
    if (!members)
        goto fail; /* nothing cheaper than the whole regex */
    goto out;
fail:
    tj_split_destroy(sp);
    sp = NULL;
out:
    free(items);
    free(kind);
    free(t.nodes);
    free(t.alts);
    return sp;
}

/* ---- matching ---- */

/* Whether the flat atoms match s[p..end) exactly: 1 yes, 0 no, -1 too many steps to tell. */
static int mini_match(const struct atom *a, size_t na, const unsigned char *s, size_t p, size_t end,
                      unsigned *budget)
{
    if (na == 0)
        return p == end;
    if (*budget == 0)
        return -1;
    --*budget;
    size_t lim = end - p, run = 0;
    if (a->max < lim)
        lim = a->max;
    while (run < lim && cls_has(&a->set, s[p + run]))
        run++;
    if (run < a->min)
        return 0;
    if (a->mode == Q_POSSESSIVE)
        return mini_match(a + 1, na - 1, s, p + run, end, budget);
    for (size_t k = run + 1; k-- > a->min;) {
        int r = mini_match(a + 1, na - 1, s, p + k, end, budget);
        if (r)
            return r;
    }
    return 0;
}

/* The first p' >= p with s[p'] == a or s[p'] == b, or n. */
static inline size_t find2(const unsigned char *s, size_t p, size_t n, unsigned char a,
                           unsigned char b)
{
#if defined(__SSE2__)
    const __m128i va = _mm_set1_epi8((char)a), vb = _mm_set1_epi8((char)b);
    while (p < n && tj_block_readable(s + p, n - p)) {
        __m128i v = _mm_loadu_si128((const __m128i *)(s + p));
        unsigned m =
            (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, va), _mm_cmpeq_epi8(v, vb)));
        if (n - p < 16) { /* the last bytes, loaded with some past the end */
            m &= (1u << (n - p)) - 1;
            return m ? p + (size_t)__builtin_ctz(m) : n;
        }
        if (m)
            return p + (size_t)__builtin_ctz(m);
        p += 16;
    }
#endif
    while (p < n && s[p] != a && s[p] != b)
        p++;
    return p;
}

/* The end of Logstash's quoted-string body from p (its only path). */
static size_t qs_scan(const unsigned char *s, size_t p, size_t n, unsigned char q)
{
    for (;;) {
        p = find2(s, p, n, q, '\\');
        if (p + 1 < n && s[p] == '\\' && s[p + 1] != '\n')
            p += 2;
        else
            return p;
    }
}

/* Short literals: no call for a few bytes. */
static inline bool same(const unsigned char *s, const char *lit, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != (unsigned char)lit[i])
            return false;
    return true;
}

int tj_split_match(const struct tj_split *sp, void *mdv, void *mctxv, const char *str, size_t n,
                   size_t *ov)
{
    pcre2_match_data *md = mdv;
    pcre2_match_context *mctx = mctxv;
    const unsigned char *s = (const unsigned char *)str;
    size_t cur = 0;

    memset(ov + 2, 0xFF, 2 * sp->ngroups * sizeof(*ov)); /* every group unset: SIZE_MAX */
    for (size_t i = 0; i < sp->nsegs; i++) {
        const struct seg *sg = &sp->segs[i];
        switch (sg->kind) {
        case S_LIT:
            if (n - cur < sg->litlen || !same(s + cur, sg->lit, sg->litlen))
                return 0;
            cur += sg->litlen;
            break;
        case S_MEMBER: {
            size_t pos = find2(s, cur, n, sg->stop, sg->stop), k;
            if (pos == n)
                return 0;
            for (k = 0; k < sg->ntests; k++) {
                const struct test *x = &sg->tests[k];
                int r;
                if (x->kind == T_LIT) {
                    r = pos - cur == x->litlen && same(s + cur, x->lit, x->litlen);
                } else if (x->kind == T_MINI) {
                    unsigned budget = MINI_BUDGET;
                    r = mini_match(x->atoms, x->natoms, s, cur, pos, &budget);
                    if (r < 0)
                        return 0;
                } else {
                    int rc = pcre2_jit_match(x->code, s, n, cur, 0, md, mctx);
                    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH)
                        return 0;
                    r = rc >= 0;
                    if (r && pcre2_get_ovector_pointer(md)[1] != pos + 1)
                        return 0; /* cannot happen (the stop byte is not in the field) */
                }
                if (r)
                    break;
            }
            if (k == sg->ntests)
                return 0;
            if (sg->tests[k].group) {
                ov[2 * sg->tests[k].group] = cur;
                ov[2 * sg->tests[k].group + 1] = pos;
            }
            cur = pos;
            if (n - cur < sg->litlen || !same(s + cur, sg->lit, sg->litlen))
                return 0;
            cur += sg->litlen;
            break;
        }
        case S_FIRST: {
            size_t k, end = cur;
            for (k = 0; k < sg->ntests; k++) {
                const struct test *x = &sg->tests[k];
                if (x->kind == T_LIT) {
                    if (n - cur >= x->litlen && same(s + cur, x->lit, x->litlen)) {
                        end = cur + x->litlen;
                        break;
                    }
                } else { /* T_QS: always matches */
                    end = qs_scan(s, cur, n, x->quote);
                    break;
                }
            }
            if (k == sg->ntests)
                return 0;
            if (sg->tests[k].group) {
                ov[2 * sg->tests[k].group] = cur;
                ov[2 * sg->tests[k].group + 1] = end;
            }
            cur = end;
            if (n - cur < sg->litlen || !same(s + cur, sg->lit, sg->litlen))
                return 0;
            cur += sg->litlen;
            break;
        }
        case S_PCRE: {
            int rc = pcre2_jit_match(sg->code, s, n, cur, 0, md, mctx);
            if (rc < 0)
                return 0;
            const PCRE2_SIZE *sub = pcre2_get_ovector_pointer(md);
            for (uint32_t g = 1; g <= sg->nsub; g++) {
                ov[2 * (sg->base + g)] = sub[2 * g];
                ov[2 * (sg->base + g) + 1] = sub[2 * g + 1];
            }
            cur = sub[1];
            break;
        }
        }
    }
    ov[0] = 0;
    ov[1] = cur;
    return 1;
}

int tj_split_describe(const struct tj_split *sp, char *buf, size_t len)
{
    static const char *const tname[] = {"lit", "mini", "pcre", "qs"};
    int w = 0;
    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < sp->nsegs; i++) {
        const struct seg *sg = &sp->segs[i];
        size_t at = (size_t)w < len ? (size_t)w : len;
        const char *name = sg->kind == S_LIT      ? "lit"
                           : sg->kind == S_MEMBER ? "member("
                           : sg->kind == S_FIRST  ? "first("
                                                  : "pcre";
        w += snprintf(buf + at, len - at, "%s%s", i ? " " : "", name);
        if (sg->kind == S_MEMBER || sg->kind == S_FIRST) {
            for (size_t k = 0; k < sg->ntests; k++) {
                at = (size_t)w < len ? (size_t)w : len;
                w += snprintf(buf + at, len - at, "%s%s", k ? "," : "", tname[sg->tests[k].kind]);
            }
            at = (size_t)w < len ? (size_t)w : len;
            w += snprintf(buf + at, len - at, ")%s", sg->litlen ? "+lit" : "");
        }
    }
    return w;
}
