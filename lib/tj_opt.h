/* tj_opt.h: declarative command-line options. Each command has one table of (name, type,
 * default, environment variable, help) that drives parsing, --help, and the test that every
 * option is documented in the README. */
#ifndef TJ_OPT_H
#define TJ_OPT_H

#include <stdio.h>

#include "tj_common.h"

enum tj_opt_type {
    TJ_OPT_STRING,   /* const char * (borrowed from argv or the environment) */
    TJ_OPT_STRINGS,  /* struct tj_strv: repeatable */
    TJ_OPT_SIZE,     /* size_t: bytes, with an optional k/KiB/M/MiB/G/GiB suffix */
    TJ_OPT_UINT,     /* unsigned */
    TJ_OPT_FLAG,     /* bool, no value */
    TJ_OPT_DURATION, /* unsigned milliseconds: 250ms, 2s, 1m, or a bare number of seconds */
    TJ_OPT_SEQ,      /* struct tj_strv shared by several options, in command-line order: each
                        occurrence pushes the option's name, then its value */
};

struct tj_strv {
    const char **v; /* owned array of borrowed strings; free with tj_strv_fini */
    size_t n;
};

void tj_strv_fini(struct tj_strv *sv);
/* Appends a borrowed string. Returns 0 or TJ_ENOMEM (sv unchanged). */
int tj_strv_push(struct tj_strv *sv, const char *s);

struct tj_opt {
    const char *name; /* without the leading "--" */
    enum tj_opt_type type;
    size_t offset;       /* of the value in the command's configuration struct */
    const char *def;     /* default as text (NULL: none) */
    const char *env;     /* environment variable that stands in for the flag, or NULL */
    const char *metavar; /* shown in --help */
    const char *help;
    const char *choices; /* "a|b|c" when only those values are valid, else NULL */
};

/* Applies defaults and environment variables, then parses argv[0..argc) into cfg. Positional
 * arguments are collected into *rest. "--name value" and "--name=value" both work; "--"
 * ends the options. Strings stay borrowed from argv and the environment. Returns 0, TJ_EINVAL
 * with err naming the option and the problem, or TJ_ENOMEM. Main thread, at start-up. */
int tj_opt_parse(const struct tj_opt *opts, size_t nopts, int argc, char **argv, void *cfg,
                 struct tj_strv *rest, char *err, size_t errlen);

/* Writes the option list for --help. */
void tj_opt_help(FILE *f, const struct tj_opt *opts, size_t nopts);

/* Parses "64k", "1MiB", "1048576". Returns 0 or TJ_EINVAL. */
int tj_parse_size(const char *s, size_t *out);

/* Parses "250ms", "2s", "1m", "3" (seconds) into milliseconds. Returns 0 or TJ_EINVAL. */
int tj_parse_duration(const char *s, unsigned *ms);

#endif
