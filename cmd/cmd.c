/* cmd.c: the command table, --help, and dispatch to a subcommand (main.c calls tj_main).
 * Main thread only. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tj_cmd.h"
#include "tj_grok.h"

#ifndef TJ_VERSION
#define TJ_VERSION "0.0.0"
#endif

const struct tj_cmd *const tj_cmds[] = {&tj_cmd_run, &tj_cmd_parse, &tj_cmd_patterns, &tj_cmd_tap};
const size_t tj_ncmds = TJ_ARRAY_LEN(tj_cmds);

void tj_cmd_help(FILE *f, const struct tj_cmd *c)
{
    fprintf(f, "usage: tailjet %s %s\n\n%s\n\noptions:\n", c->name, c->usage, c->summary);
    tj_opt_help(f, c->opts, c->nopts);
    if (c->help_more)
        c->help_more(f);
}

bool tj_cmd_start(const struct tj_cmd *c, int argc, char **argv, void *cfg, const bool *help,
                  struct tj_strv *rest, int *status)
{
    char err[1024];

    if (tj_opt_parse(c->opts, c->nopts, argc, argv, cfg, rest, err, sizeof(err))) {
        fprintf(stderr, "tailjet %s: %s\n", c->name, err);
        *status = 2;
        return true;
    }
    if (*help) {
        tj_cmd_help(stdout, c);
        *status = 0;
        return true;
    }
    return false;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tailjet COMMAND [OPTIONS] [ARGS]\n"
               "       tailjet --version | --help\n\n"
               "tailjet ships container logs: it parses them with grok patterns on PCRE2's JIT\n"
               "and writes structured JSON records.\n\ncommands:\n");
    for (size_t i = 0; i < tj_ncmds; i++)
        fprintf(f, "  %-10s %s\n", tj_cmds[i]->name, tj_cmds[i]->summary);
    fprintf(f, "\n'tailjet COMMAND --help' lists a command's options.\n");
}

int tj_main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("tailjet %s\n", TJ_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < tj_ncmds; i++)
        if (strcmp(argv[1], tj_cmds[i]->name) == 0)
            return tj_cmds[i]->main(argc - 2, argv + 2);
    fprintf(stderr,
            "tailjet: unknown command '%s' (commands: run, parse, patterns, tap; see --help)\n",
            argv[1]);
    return 2;
}

/* Loads one pattern file into lib (its names override earlier ones). */
static int load_pattern_file(struct tj_grok_lib *lib, const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    char *text = NULL;
    long size;
    int rc = TJ_EIO;

    if (!fp)
        goto fail;
    if (fseek(fp, 0, SEEK_END) || (size = ftell(fp)) < 0 || size > (1 << 24) ||
        fseek(fp, 0, SEEK_SET))
        goto close;
    text = malloc((size_t)size + 1);
    if (!text || fread(text, 1, (size_t)size, fp) != (size_t)size)
        goto free_text;
    rc = tj_grok_lib_load(lib, text, (size_t)size, path, true, err, errlen);
    free(text);
    fclose(fp);
    return rc;
free_text:
    free(text);
close:
    fclose(fp);
fail:
    snprintf(err, errlen, "cannot read pattern file %s (at most 16 MiB)", path);
    return rc;
}

static int load_pattern_dirs(struct tj_grok_lib *lib, const struct tj_strv *dirs, char *err,
                             size_t errlen)
{
    for (size_t i = 0; i < dirs->n; i++) {
        struct dirent **ents;
        /* Sorted, so that which of two files defining one name wins never depends on the
         * directory's order: the later name in sort order does. */
        int n = scandir(dirs->v[i], &ents, NULL, alphasort), rc = 0;

        if (n < 0) {
            snprintf(err, errlen, "cannot open patterns directory %s: %s", dirs->v[i],
                     strerror(errno));
            return TJ_EIO;
        }
        for (int k = 0; k < n; k++) {
            char path[4096];
            struct stat st;

            snprintf(path, sizeof(path), "%s/%s", dirs->v[i], ents[k]->d_name);
            if (!rc && ents[k]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode))
                rc = load_pattern_file(lib, path, err, errlen);
            free(ents[k]);
        }
        free(ents);
        if (rc)
            return rc;
    }
    return 0;
}

int tj_cmd_read_token(const char *path, char **token)
{
    FILE *f = fopen(path, "re");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    *token = NULL;
    if (!f)
        return TJ_EIO;
    n = getline(&line, &cap, f);
    fclose(f);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
        line[--n] = '\0';
    if (n <= 0) {
        free(line);
        return TJ_EINVAL;
    }
    *token = line;
    return 0;
}

struct tj_grok_lib *tj_cmd_load_library(const struct tj_strv *dirs, char *err, size_t errlen)
{
    struct tj_grok_lib *lib = tj_grok_lib_create();

    if (!lib) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (tj_grok_lib_load_builtin(lib, err, errlen) || load_pattern_dirs(lib, dirs, err, errlen)) {
        tj_grok_lib_destroy(lib);
        return NULL;
    }
    return lib;
}
