/* tj_es_opts.h: the Elasticsearch output's options (--es-opt NAME=VALUE, one declarative table
 * that drives parsing, --help and the documentation test) and the configuration of a struct out_es
 * from them and from the URI: hosts, index template, limits, dead-letter path, credentials (files
 * or environment, never the command line), TLS, the index template file. Main thread, in create
 * only: nothing here runs once the output thread has started. */
#ifndef TJ_ES_OPTS_H
#define TJ_ES_OPTS_H

#include "tj_es_out.h"
#include "tj_opt.h"

struct tj_es_opts { /* as parsed; strings borrowed from the options during create */
    const char *index;
    bool data_stream;
    size_t max_bytes;
    unsigned regrow_ms;
    unsigned max_docs;
    unsigned concurrency;
    unsigned timeout_ms;
    unsigned backoff_ms, backoff_max_ms;
    const char *compression;
    const char *id;
    const char *pipeline;
    const char *dead_letter_file;
    const char *template_file;
    const char *template_name;
    const char *user;
    const char *password_file;
    const char *api_key_file;
    const char *ca_file;
    bool verify;
    size_t buffer_max;
};

/* The option table (name, type, default, environment variable, help), for tj_output_ops. */
#define TJ_ES_OPTS_N 21 /* its length; tj_es_opts.c asserts it at compile time */
extern const struct tj_opt tj_es_opts_table[];

/* Fills *eo from the defaults, the environment variables of the table and the NAME=VALUE options
 * (borrowed: eo's strings point into them and into the environment). Returns 0, or TJ_EINVAL with
 * err naming the option (a secret given on the command line is refused). */
int tj_es_opts_parse(struct tj_es_opts *eo, const char *const *opts, size_t nopts, char *err,
                     size_t errlen);

/* Sets o's configuration from the URI (hosts, /INDEX) and eo: copies what it keeps (o owns it,
 * freed by the output's destroy, also after a failure), reads the secret and template files.
 * Returns 0, TJ_EINVAL with err naming what is wrong and what to do, or TJ_ENOMEM. */
int tj_es_opts_apply(struct out_es *o, const char *uri, const struct tj_es_opts *eo, char *err,
                     size_t errlen);

#endif
