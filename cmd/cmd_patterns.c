/* cmd_patterns.c: `tailjet patterns [NAME]`: list the grok library, or show one name's
 * definition, expansion and fields; `--regex EXPR` prints an expression's exact PCRE2 regex,
 * `--byte-regex EXPR` the byte-mode twin tailjet runs on pure-ASCII lines.
 * Main thread only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tj_cmd.h"
#include "tj_grok.h"

struct patterns_cfg {
    const char *regex;
    const char *byte_regex;
    const char *ecs;
    struct tj_strv dirs;
    bool help;
};

static const struct tj_opt patterns_opts[] = {
    {"regex", TJ_OPT_STRING, offsetof(struct patterns_cfg, regex), NULL, NULL, "EXPR",
     "print the PCRE2 regex that EXPR expands to, exactly as compiled, and exit", NULL},
    {"byte-regex", TJ_OPT_STRING, offsetof(struct patterns_cfg, byte_regex), NULL, NULL, "EXPR",
     "print the byte-mode twin of EXPR's regex that tailjet runs on pure-ASCII lines (exit 1 "
     "when it has none: every line is then matched in UTF mode), and exit",
     NULL},
    {"ecs", TJ_OPT_STRING, offsetof(struct patterns_cfg, ecs), "v1", NULL, "MODE",
     "show the fields (and regex) as compiled with ECS names (v1) or Logstash's legacy names "
     "(disabled); the names of the patterns are the same in both",
     "v1|disabled"},
    TJ_CMD_OPT_PATTERNS_DIR(struct patterns_cfg, dirs),
    TJ_CMD_OPT_HELP(struct patterns_cfg, help),
};

static void print_fields(const struct tj_grok *g)
{
    for (size_t i = 0; i < g->nfields; i++) {
        const struct tj_grok_field *f = &g->fields[i];
        printf("  ");
        for (size_t k = 0; k < f->nseg; k++)
            printf("%s%s", k ? "." : "", f->seg[k]);
        printf("%s\n", f->type == TJ_FIELD_INT     ? " (int)"
                       : f->type == TJ_FIELD_FLOAT ? " (float)"
                       : f->type == TJ_FIELD_BOOL  ? " (boolean)"
                                                   : "");
    }
}

/* Prints the regex expr expands to. Returns the exit status. */
static int print_regex(const struct tj_grok_lib *lib, const struct tj_grok_opts *opts,
                       const char *expr)
{
    char err[1024];
    char *re = tj_grok_expand_opts(lib, expr, strlen(expr), opts, err, sizeof(err));

    if (!re) {
        fprintf(stderr, "tailjet patterns: %s\n", err);
        return 2;
    }
    printf("%s\n", re);
    free(re);
    return 0;
}

/* Prints the byte-mode twin of expr's regex. Returns the exit status (1: no twin). */
static int print_byte_regex(const struct tj_grok_lib *lib, const char *expr)
{
    char err[1024];
    struct tj_grok *g = tj_grok_compile(lib, expr, strlen(expr), err, sizeof(err));
    char *twin;

    if (!g) {
        fprintf(stderr, "tailjet patterns: %s\n", err);
        return 2;
    }
    twin = tj_grok_byte_regex(g);
    if (twin)
        printf("%s\n", twin);
    else
        fprintf(stderr,
                "tailjet patterns: %s has no byte-mode twin: every line is matched in UTF "
                "mode\n",
                expr);
    free(twin);
    tj_grok_unref(g);
    return twin ? 0 : 1;
}

/* Lists every name with the file that defines it. Returns the exit status. */
static int list_names(const struct tj_grok_lib *lib)
{
    size_t n;
    const char **names = tj_grok_lib_names(lib, &n);

    if (!names) {
        fprintf(stderr, "tailjet patterns: out of memory\n");
        return 2;
    }
    for (size_t i = 0; i < n; i++) {
        const char *origin = "";
        tj_grok_lib_get(lib, names[i], strlen(names[i]), &origin);
        printf("%-32s %s\n", names[i], origin);
    }
    free(names);
    return 0;
}

/* Shows one name's definition, regex and fields. Returns the exit status. */
static int show_name(const struct tj_grok_lib *lib, const struct tj_grok_opts *opts,
                     const char *name)
{
    const char *origin = "",
               *def = tj_grok_lib_get_ecs(lib, name, strlen(name), opts->ecs, &origin);
    char expr[256], err[1024];
    struct tj_grok *g;

    if (!def) {
        fprintf(stderr,
                "tailjet patterns: no pattern named '%s' (list them with 'tailjet patterns')\n",
                name);
        return 2;
    }
    snprintf(expr, sizeof(expr), "%%{%s}", name);
    g = tj_grok_compile_opts(lib, expr, strlen(expr), opts, err, sizeof(err));
    printf("%s (%s)\n  definition: %s\n", name, origin, def);
    if (!g) {
        printf("  error: %s\n", err);
        return 2;
    }
    printf("  regex: %s\n  fields:%s\n", g->regex, g->nfields ? "" : " (none)");
    print_fields(g);
    tj_grok_unref(g);
    return 0;
}

static int patterns_main(int argc, char **argv)
{
    struct patterns_cfg cfg = {0};
    struct tj_strv rest = {0};
    struct tj_grok_lib *lib = NULL;
    struct tj_grok_opts opts = {0};
    char err[1024];
    int status = 2;

    if (tj_cmd_start(&tj_cmd_patterns, argc, argv, &cfg, &cfg.help, &rest, &status))
        goto out;
    lib = tj_cmd_load_library(&cfg.dirs, err, sizeof(err));
    if (!lib) {
        fprintf(stderr, "tailjet patterns: %s\n", err);
        goto out;
    }
    tj_ecs_mode_parse(cfg.ecs, &opts.ecs); /* checked against the option's choices */
    if (cfg.regex) {
        status = print_regex(lib, &opts, cfg.regex);
    } else if (cfg.byte_regex) {
        status = print_byte_regex(lib, cfg.byte_regex);
    } else if (rest.n == 0) {
        status = list_names(lib);
    } else {
        status = 0;
        for (size_t i = 0; i < rest.n; i++)
            status |= show_name(lib, &opts, rest.v[i]);
    }
out:
    tj_grok_lib_destroy(lib);
    tj_strv_fini(&rest);
    tj_strv_fini(&cfg.dirs);
    return status;
}

const struct tj_cmd tj_cmd_patterns = {
    "patterns",
    "[--ecs v1|disabled] [--regex EXPR] [NAME...]",
    "List the grok pattern library, or show a pattern's definition, regex and fields.",
    patterns_opts,
    TJ_ARRAY_LEN(patterns_opts),
    patterns_main,
    NULL};
