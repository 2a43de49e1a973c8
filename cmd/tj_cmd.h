/* tj_cmd.h: the tailjet subcommands, each with its option table (see tj_opt.h). */
#ifndef TJ_CMD_H
#define TJ_CMD_H

#include "tj_opt.h"

struct tj_cmd {
    const char *name;
    const char *usage;   /* one line: arguments after the command name */
    const char *summary; /* one line */
    const struct tj_opt *opts;
    size_t nopts;
    int (*main)(int argc, char **argv); /* argv[0] is the first argument after the name */
};

extern const struct tj_cmd tj_cmd_parse;
extern const struct tj_cmd tj_cmd_patterns;
extern const struct tj_cmd tj_cmd_run;
extern const struct tj_cmd tj_cmd_tap;

/* Runs tailjet with main()'s arguments; returns the exit status. */
int tj_main(int argc, char **argv);

/* Every command, for --help, dispatch and the documentation test. */
extern const struct tj_cmd *const tj_cmds[];
extern const size_t tj_ncmds;

/* Prints "tailjet NAME USAGE", the summary and the option list. */
void tj_cmd_help(FILE *f, const struct tj_cmd *c);

/* The built-in grok library plus every regular file of each directory in dirs, in sorted order
 * (later names override earlier ones, as Logstash's patterns_dir). Returns the library (owned,
 * tj_grok_lib_destroy) or NULL with err filled. */
struct tj_grok_lib;
struct tj_grok_lib *tj_cmd_load_library(const struct tj_strv *dirs, char *err, size_t errlen);

#endif
