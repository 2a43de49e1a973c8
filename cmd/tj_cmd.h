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
    void (*help_more)(FILE *f);         /* printed after the option list by --help, or NULL */
};

/* Option rows that several commands share word for word (name, default, help), so that their
 * --help says the same: ST is the command's configuration struct, FIELD the member set. */
#define TJ_CMD_OPT_MAX_LINE_BYTES(ST, FIELD)                                                       \
    {                                                                                              \
        "max-line-bytes", TJ_OPT_SIZE, offsetof(ST, FIELD), "1MiB", NULL, "N",                     \
            "a longer line (or joined event) becomes one record, cut and tagged _truncated", NULL  \
    }
#define TJ_CMD_OPT_PATTERNS_DIR(ST, FIELD)                                                         \
    {                                                                                              \
        "patterns-dir", TJ_OPT_STRINGS, offsetof(ST, FIELD), NULL, NULL, "DIR",                    \
            "also load pattern files from DIR (repeatable; their names override the library's)",   \
            NULL                                                                                   \
    }
#define TJ_CMD_OPT_HELP(ST, FIELD)                                                                 \
    {                                                                                              \
        "help", TJ_OPT_FLAG, offsetof(ST, FIELD), NULL, NULL, NULL, "show this help", NULL         \
    }

extern const struct tj_cmd tj_cmd_parse;
extern const struct tj_cmd tj_cmd_patterns;
extern const struct tj_cmd tj_cmd_run;
extern const struct tj_cmd tj_cmd_tap;

/* Runs tailjet with main()'s arguments; returns the exit status. */
int tj_main(int argc, char **argv);

/* Every command, for --help, dispatch and the documentation test. */
extern const struct tj_cmd *const tj_cmds[];
extern const size_t tj_ncmds;

/* Prints "tailjet NAME USAGE", the summary, the option list and c->help_more's text. */
void tj_cmd_help(FILE *f, const struct tj_cmd *c);

/* The start of every command's main: parses argv[0..argc) with c's option table into cfg and
 * the positional arguments into *rest (tj_opt_parse), and answers --help (*help, a member of
 * cfg, is the command's help flag). Returns true when the command is done: *status is then 0
 * after the help was printed on stdout, or 2 after the error was printed on stderr as
 * "tailjet NAME: ...". Returns false to go on (*status unchanged). Main thread, at start-up. */
bool tj_cmd_start(const struct tj_cmd *c, int argc, char **argv, void *cfg, const bool *help,
                  struct tj_strv *rest, int *status);

/* The built-in grok library plus every regular file of each directory in dirs, in sorted order
 * (later names override earlier ones, as Logstash's patterns_dir). Returns the library (owned,
 * tj_grok_lib_destroy) or NULL with err filled. */
struct tj_grok_lib;
struct tj_grok_lib *tj_cmd_load_library(const struct tj_strv *dirs, char *err, size_t errlen);

/* Reads a shared token: the first line of the file at path, without its line end and trailing
 * spaces, into *token (owned, free). Returns 0; TJ_EIO when the file cannot be opened (errno
 * says why); TJ_EINVAL when it has no such line (empty). *token is NULL on failure. */
int tj_cmd_read_token(const char *path, char **token);

#endif
