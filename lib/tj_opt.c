/* tj_opt.c: option table parsing and help. Runs once, on the main thread, at start-up. */
#include "tj_opt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void tj_strv_fini(struct tj_strv *sv)
{
    free(sv->v);
    sv->v = NULL;
    sv->n = 0;
}

int tj_strv_push(struct tj_strv *sv, const char *s)
{
    const char **p = realloc(sv->v, (sv->n + 1) * sizeof(*p));
    if (!p)
        return TJ_ENOMEM;
    sv->v = p;
    sv->v[sv->n++] = s;
    return 0;
}

int tj_parse_size(const char *s, size_t *out)
{
    static const struct {
        const char *suffix;
        unsigned long long mul;
    } units[] = {{"", 1},
                 {"k", 1024},
                 {"K", 1024},
                 {"KiB", 1024},
                 {"m", 1024 * 1024},
                 {"M", 1024 * 1024},
                 {"MiB", 1024 * 1024},
                 {"g", 1024ull * 1024 * 1024},
                 {"G", 1024ull * 1024 * 1024},
                 {"GiB", 1024ull * 1024 * 1024}};
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9') /* strtoull would skip blanks and accept a sign */
        return TJ_EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s)
        return TJ_EINVAL;
    for (size_t i = 0; i < TJ_ARRAY_LEN(units); i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            if (v > SIZE_MAX / units[i].mul)
                return TJ_EINVAL;
            *out = (size_t)(v * units[i].mul);
            return 0;
        }
    }
    return TJ_EINVAL;
}

static bool in_choices(const char *choices, const char *v)
{
    size_t n = strlen(v);
    const char *p = choices;

    while (p && *p) {
        const char *bar = strchr(p, '|');
        size_t k = bar ? (size_t)(bar - p) : strlen(p);
        if (k == n && memcmp(p, v, n) == 0)
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

static int set_value(const struct tj_opt *o, void *cfg, const char *v, const char *from, char *err,
                     size_t errlen)
{
    char *base = (char *)cfg + o->offset;
    char *end;
    unsigned long u;

    if (o->choices && !in_choices(o->choices, v)) {
        snprintf(err, errlen, "%s --%s: '%s' is not one of %s", from, o->name, v, o->choices);
        return TJ_EINVAL;
    }
    switch (o->type) {
    case TJ_OPT_STRING:
        *(const char **)base = v;
        return 0;
    case TJ_OPT_STRINGS:
        if (tj_strv_push((struct tj_strv *)base, v)) {
            snprintf(err, errlen, "out of memory");
            return TJ_ENOMEM;
        }
        return 0;
    case TJ_OPT_SIZE:
        if (tj_parse_size(v, (size_t *)base)) {
            snprintf(err, errlen, "%s --%s: '%s' is not a size (e.g. 65536, 64k, 1MiB)", from,
                     o->name, v);
            return TJ_EINVAL;
        }
        return 0;
    case TJ_OPT_UINT:
        errno = 0;
        u = strtoul(v, &end, 10);
        if (*v < '0' || *v > '9' || errno || end == v || *end || u > 0xFFFFFFFFul) {
            snprintf(err, errlen, "%s --%s: '%s' is not a whole number", from, o->name, v);
            return TJ_EINVAL;
        }
        *(unsigned *)base = (unsigned)u;
        return 0;
    case TJ_OPT_FLAG:
        *(bool *)base = strcmp(v, "0") != 0 && strcmp(v, "false") != 0;
        return 0;
    case TJ_OPT_DURATION:
        if (tj_parse_duration(v, (unsigned *)base)) {
            snprintf(err, errlen, "%s --%s: '%s' is not a duration (e.g. 500ms, 2s, 1m)", from,
                     o->name, v);
            return TJ_EINVAL;
        }
        return 0;
    case TJ_OPT_SEQ:
        if (tj_strv_push((struct tj_strv *)base, o->name) ||
            tj_strv_push((struct tj_strv *)base, v)) {
            snprintf(err, errlen, "out of memory");
            return TJ_ENOMEM;
        }
        return 0;
    }
    return TJ_EINVAL;
}

int tj_opt_parse(const struct tj_opt *opts, size_t nopts, int argc, char **argv, void *cfg,
                 struct tj_strv *rest, char *err, size_t errlen)
{
    bool only_args = false;

    for (size_t i = 0; i < nopts; i++) {
        const char *env = opts[i].env ? getenv(opts[i].env) : NULL;
        const char *v = env && *env ? env : opts[i].def;
        if (v && opts[i].type != TJ_OPT_STRINGS && opts[i].type != TJ_OPT_SEQ &&
            set_value(&opts[i], cfg, v, env && *env ? opts[i].env : "default of", err, errlen))
            return TJ_EINVAL;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *eq, *v;
        const struct tj_opt *o = NULL;
        size_t n;

        if (only_args || a[0] != '-' || a[1] != '-' || a[2] == '\0') {
            if (!only_args && strcmp(a, "--") == 0) {
                only_args = true;
                continue;
            }
            if (a[0] == '-' && a[1] != '\0' && !only_args) {
                snprintf(err, errlen, "unknown option '%s' (see --help)", a);
                return TJ_EINVAL;
            }
            if (tj_strv_push(rest, a)) {
                snprintf(err, errlen, "out of memory");
                return TJ_ENOMEM;
            }
            continue;
        }
        a += 2;
        eq = strchr(a, '=');
        n = eq ? (size_t)(eq - a) : strlen(a);
        for (size_t k = 0; k < nopts; k++)
            if (strlen(opts[k].name) == n && memcmp(opts[k].name, a, n) == 0)
                o = &opts[k];
        if (!o) {
            snprintf(err, errlen, "unknown option '--%.*s' (see --help)", (int)n, a);
            return TJ_EINVAL;
        }
        if (o->type == TJ_OPT_FLAG) {
            v = eq ? eq + 1 : "1";
        } else if (eq) {
            v = eq + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            snprintf(err, errlen, "option --%s needs a value (%s)", o->name, o->metavar);
            return TJ_EINVAL;
        }
        if (set_value(o, cfg, v, "option", err, errlen))
            return TJ_EINVAL;
    }
    return 0;
}

void tj_opt_help(FILE *f, const struct tj_opt *opts, size_t nopts)
{
    for (size_t i = 0; i < nopts; i++) {
        const struct tj_opt *o = &opts[i];
        char head[96];
        snprintf(head, sizeof(head), "--%s%s%s", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        fprintf(f, "  %-28s %s", head, o->help);
        if (o->def)
            fprintf(f, " [default: %s]", o->def);
        if (o->env)
            fprintf(f, " [env: %s]", o->env);
        fputc('\n', f);
    }
}

int tj_parse_duration(const char *s, unsigned *ms)
{
    char *end;
    double v;
    double unit = 1000;

    if (*s < '0' || *s > '9')
        return TJ_EINVAL;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s)
        return TJ_EINVAL;
    if (strcmp(end, "ms") == 0)
        unit = 1;
    else if (strcmp(end, "m") == 0)
        unit = 60000;
    else if (*end && strcmp(end, "s") != 0)
        return TJ_EINVAL;
    v *= unit;
    if (v > 86400000.0 * 365)
        return TJ_EINVAL;
    *ms = (unsigned)v;
    return 0;
}
