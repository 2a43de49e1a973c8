/* cmd.c: the command table, --help, and dispatch to a subcommand (main.c calls tj_main).
 * Main thread only. */
#include <stdio.h>
#include <string.h>

#include "tj_cmd.h"

#ifndef TJ_VERSION
#define TJ_VERSION "0.0.0"
#endif

const struct tj_cmd *const tj_cmds[] = {&tj_cmd_parse, &tj_cmd_patterns};
const size_t tj_ncmds = TJ_ARRAY_LEN(tj_cmds);

void tj_cmd_help(FILE *f, const struct tj_cmd *c)
{
    fprintf(f, "usage: tailjet %s %s\n\n%s\n\noptions:\n", c->name, c->usage, c->summary);
    tj_opt_help(f, c->opts, c->nopts);
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
    fprintf(stderr, "tailjet: unknown command '%s' (commands: parse, patterns; see --help)\n",
            argv[1]);
    return 2;
}
