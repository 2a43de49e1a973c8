/* cmd_run.c: `tailjet run`: the daemon. Parses the command line into watches (a glob with its
 * patterns), creates the output and the engine, and runs it on the main thread until a signal
 * (or, with --exit-on-eof, until every file is shipped). */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cmd_web.h"
#include "tj_cmd.h"
#include "tj_discover.h"
#include "tj_engine.h"
#include "tj_http.h"
#include "tj_labels.h"
#include "tj_log.h"

#define MAX_LINE_BYTES_LIMIT ((size_t)64 << 20)

struct run_cfg {
    struct tj_strv seq; /* --watch, --pattern and --multiline in command-line order */
    const char *docker_host;
    const char *docker_root;
    const char *label_prefix;
    const char *output;
    struct tj_strv output_opts;
    struct tj_strv es_opts;
    bool es_data_stream;
    const char *state_dir;
    unsigned workers;
    const char *start_at;
    bool exit_on_eof;
    size_t max_line_bytes;
    size_t read_ahead;
    size_t chunk_bytes;
    unsigned poll_ms, checkpoint_ms, multiline_timeout_ms, shutdown_timeout_ms, rotate_wait_ms;
    struct tj_strv dirs;
    unsigned match_limit;
    const char *log_level;
    const char *log_format;
    const char *metrics_addr;
    const char *tls_cert, *tls_key;
    const char *label_source, *label_token_file, *label_ca_file;
    unsigned label_wait_ms;
    bool include_self;
    bool help;
};

static const struct tj_opt run_opts[] = {
    {"docker-host", TJ_OPT_STRING, offsetof(struct run_cfg, docker_host), NULL, "DOCKER_HOST",
     "URL",
     "the Docker Engine API (unix:///PATH or tcp://HOST:PORT): containers are discovered and "
     "parsed by their labels; the default, unix:///var/run/docker.sock, is used when neither "
     "--watch nor --docker-root is given",
     NULL},
    {"docker-root", TJ_OPT_STRING, offsetof(struct run_cfg, docker_root), NULL, NULL, "DIR",
     "without the API: discover containers from DIR/containers/*/config.v2.json (container "
     "labels only)",
     NULL},
    {"label-prefix", TJ_OPT_STRING, offsetof(struct run_cfg, label_prefix), "", NULL, "P",
     "read the labels PlogPattern, PlogMultiline, ... instead (e.g. com.df.)", NULL},
    {"watch", TJ_OPT_SEQ, offsetof(struct run_cfg, seq), NULL, NULL, "GLOB",
     "follow every file matching GLOB, now and later (repeatable; the --pattern and "
     "--multiline options after it apply to it)",
     NULL},
    {"pattern", TJ_OPT_SEQ, offsetof(struct run_cfg, seq), NULL, NULL, "EXPR",
     "grok expression or PCRE2 regex for the files of the --watch before it; repeat it for "
     "alternatives tried in order; none: records are shipped unparsed",
     NULL},
    {"multiline", TJ_OPT_SEQ, offsetof(struct run_cfg, seq), NULL, NULL, "REGEX",
     "for the --watch before it: a line matching REGEX starts an event, other lines join it", NULL},
    {"timestamp", TJ_OPT_SEQ, offsetof(struct run_cfg, seq), NULL, NULL,
     "'FIELD FORMAT[|FORMAT...]'",
     "for the --watch before it: take @timestamp from an extracted field, as for parse", NULL},
    {"ecs", TJ_OPT_SEQ, offsetof(struct run_cfg, seq), NULL, NULL, "MODE",
     "for the --watch before it: field names of the library's patterns, v1 (ECS, the default) "
     "or disabled (Logstash's legacy names)",
     NULL},
    {"output", TJ_OPT_STRING, offsetof(struct run_cfg, output), "stdout", "TAILJET_OUTPUT", "URI",
     "where records go: stdout, file:PATH (NDJSON appended; reopened on SIGHUP), "
     "kafka://HOST:PORT[,HOST:PORT...]/TOPIC, or elasticsearch://HOST:PORT[,HOST:PORT...][/INDEX] "
     "(also http:// and https://)",
     NULL},
    {"kafka-opt", TJ_OPT_STRINGS, offsetof(struct run_cfg, output_opts), NULL, NULL, "NAME=VALUE",
     "a librdkafka property for the kafka:// output (repeatable; TLS, SASL, ...)", NULL},
    {"es-opt", TJ_OPT_STRINGS, offsetof(struct run_cfg, es_opts), NULL, NULL, "NAME=VALUE",
     "an option of the elasticsearch output (repeatable; listed below)", NULL},
    {"es-data-stream", TJ_OPT_FLAG, offsetof(struct run_cfg, es_data_stream), NULL, NULL, NULL,
     "the elasticsearch output writes to data streams: create actions (a 409 conflict counts "
     "as delivered), default index logs-%{service}-default",
     NULL},
    {"state-dir", TJ_OPT_STRING, offsetof(struct run_cfg, state_dir), "/var/lib/tailjet",
     "TAILJET_STATE_DIR", "DIR", "where checkpoints are kept (DIR/checkpoints)", NULL},
    {"workers", TJ_OPT_UINT, offsetof(struct run_cfg, workers), "0", NULL, "N",
     "parsing threads; 0: one per core", NULL},
    {"start-at", TJ_OPT_STRING, offsetof(struct run_cfg, start_at), "beginning", NULL, "WHERE",
     "at the very first start (no checkpoints yet), read files from their beginning or skip "
     "what they already hold",
     "beginning|end"},
    {"exit-on-eof", TJ_OPT_FLAG, offsetof(struct run_cfg, exit_on_eof), NULL, NULL, NULL,
     "exit once every file is read to its end and every record acknowledged", NULL},
    TJ_CMD_OPT_MAX_LINE_BYTES(struct run_cfg, max_line_bytes),
    {"read-ahead", TJ_OPT_SIZE, offsetof(struct run_cfg, read_ahead), "8MiB", NULL, "N",
     "input read but not yet acknowledged by the output, at most: reading pauses beyond it", NULL},
    {"chunk-bytes", TJ_OPT_SIZE, offsetof(struct run_cfg, chunk_bytes), "256KiB", NULL, "N",
     "bytes read from a file at once; a busy file's chunks are parsed by all workers", NULL},
    {"poll-interval", TJ_OPT_DURATION, offsetof(struct run_cfg, poll_ms), "1s", NULL, "DUR",
     "how often globs are run again and files are checked for rotation (inotify usually "
     "notices sooner)",
     NULL},
    {"checkpoint-interval", TJ_OPT_DURATION, offsetof(struct run_cfg, checkpoint_ms), "1s", NULL,
     "DUR", "how often checkpoints are written (also at exit)", NULL},
    {"multiline-timeout", TJ_OPT_DURATION, offsetof(struct run_cfg, multiline_timeout_ms), "1s",
     NULL, "DUR", "an event still open at the end of a quiet file is shipped after this long",
     NULL},
    {"rotate-wait", TJ_OPT_DURATION, offsetof(struct run_cfg, rotate_wait_ms), "5s", NULL, "DUR",
     "a rotated file read to its end is still watched this long for lines written late (a "
     "program that reopens its log after a while)",
     NULL},
    {"shutdown-timeout", TJ_OPT_DURATION, offsetof(struct run_cfg, shutdown_timeout_ms), "10s",
     NULL, "DUR", "on SIGTERM or SIGINT, drain in-flight records for this long at most", NULL},
    TJ_CMD_OPT_PATTERNS_DIR(struct run_cfg, dirs),
    {"match-limit", TJ_OPT_UINT, offsetof(struct run_cfg, match_limit), "200000", NULL, "N",
     "PCRE2 match limit per line and pattern: a line that needs more is tagged _groktimeout", NULL},
    {"log-format", TJ_OPT_STRING, offsetof(struct run_cfg, log_format), "text", NULL, "FMT",
     "self-logs on stderr as text lines or as JSON lines", "text|json"},
    {"metrics-addr", TJ_OPT_STRING, offsetof(struct run_cfg, metrics_addr), "127.0.0.1:9284",
     "TAILJET_METRICS_ADDR", "HOST:PORT",
     "serve /metrics (Prometheus), /health, the taps and the /ui/ page there; 0.0.0.0:PORT (or "
     ":PORT) listens on every "
     "interface; off: no server",
     NULL},
    {"tls-cert", TJ_OPT_STRING, offsetof(struct run_cfg, tls_cert), NULL, NULL, "FILE",
     "serve --metrics-addr over HTTPS with this PEM certificate (and --tls-key)", NULL},
    {"tls-key", TJ_OPT_STRING, offsetof(struct run_cfg, tls_key), NULL, NULL, "FILE",
     "the PEM private key of --tls-cert", NULL},
    {"label-source", TJ_OPT_STRING, offsetof(struct run_cfg, label_source), NULL,
     "TAILJET_LABEL_SOURCE", "URL[,URL...]",
     "on a Swarm worker: read service labels from the managers' tailjets (their "
     "--metrics-addr, e.g. http://tasks.tailjet:9284), failing over between them and every "
     "address a name resolves to; ignored on a manager",
     NULL},
    {"label-token-file", TJ_OPT_STRING, offsetof(struct run_cfg, label_token_file), NULL,
     "TAILJET_LABEL_TOKEN_FILE", "FILE",
     "a shared secret (a Swarm secret): a manager serves its label table only to requests "
     "that carry it, a worker sends it",
     NULL},
    {"label-ca-file", TJ_OPT_STRING, offsetof(struct run_cfg, label_ca_file), NULL, NULL, "FILE",
     "CA certificates that sign the https:// label sources' certificates", NULL},
    {"label-wait", TJ_OPT_DURATION, offsetof(struct run_cfg, label_wait_ms), "5s", NULL, "DUR",
     "on a worker, a new task whose service is not in the label table yet waits this long for "
     "it; then its lines ship unparsed, tagged _labelsmissing, until the labels come",
     NULL},
    {"include-self", TJ_OPT_FLAG, offsetof(struct run_cfg, include_self), NULL, NULL, NULL,
     "also follow the container tailjet itself runs in (found by its cgroup, its mounts or its "
     "host name); left out by default, so that its own log is not shipped again and again",
     NULL},
    {"log-level", TJ_OPT_STRING, offsetof(struct run_cfg, log_level), "info", "TAILJET_LOG_LEVEL",
     "LEVEL", "self-logs on stderr from this level up", "debug|info|warn|error"},
    TJ_CMD_OPT_HELP(struct run_cfg, help),
};

struct watches {
    const char *glob[256];
    struct tj_ruleset *rs[256];
    size_t n;
};

static void watches_fini(struct watches *w)
{
    for (size_t i = 0; i < w->n; i++)
        tj_ruleset_unref(w->rs[i]);
    w->n = 0;
}

/* Builds one ruleset per --watch from the options that follow it. Returns 0, or 2 (a usage
 * error, printed). Patterns are compiled before anything else is touched. */
static int build_watches(struct watches *w, const struct run_cfg *cfg,
                         const struct tj_grok_lib *lib)
{
    size_t i = 0;

    if (cfg->seq.n == 0)
        return 0; /* containers only */
    if (strcmp(cfg->seq.v[0], "watch") != 0) {
        fprintf(stderr, "tailjet run: --%s must follow the --watch it applies to\n", cfg->seq.v[0]);
        return 2;
    }
    while (i < cfg->seq.n) {
        const char *glob = cfg->seq.v[i + 1], *multiline = NULL;
        const char *exprs[TJ_RULESET_MAX_ALTS];
        struct tj_rules_spec spec = {0};
        size_t n = 0;
        char err[900];

        for (i += 2; i < cfg->seq.n && strcmp(cfg->seq.v[i], "watch") != 0; i += 2) {
            if (strcmp(cfg->seq.v[i], "multiline") == 0) {
                multiline = cfg->seq.v[i + 1];
            } else if (strcmp(cfg->seq.v[i], "timestamp") == 0) {
                spec.timestamp = cfg->seq.v[i + 1];
            } else if (strcmp(cfg->seq.v[i], "ecs") == 0) {
                if (tj_ecs_mode_parse(cfg->seq.v[i + 1], &spec.ecs)) {
                    fprintf(stderr, "tailjet run: --watch %s: --ecs %s: use v1 or disabled\n", glob,
                            cfg->seq.v[i + 1]);
                    return 2;
                }
            } else if (n == TJ_RULESET_MAX_ALTS) {
                fprintf(stderr, "tailjet run: --watch %s: more than %d patterns\n", glob,
                        TJ_RULESET_MAX_ALTS);
                return 2;
            } else {
                exprs[n++] = cfg->seq.v[i + 1];
            }
        }
        if (w->n == TJ_ARRAY_LEN(w->glob)) {
            fprintf(stderr, "tailjet run: more than %zu --watch options\n", w->n);
            return 2;
        }
        spec.exprs = exprs;
        spec.n = n;
        spec.multiline = multiline;
        w->rs[w->n] = tj_ruleset_build(lib, &spec, err, sizeof(err));
        if (!w->rs[w->n]) {
            fprintf(stderr, "tailjet run: --watch %s: bad pattern: %s\n", glob, err);
            return 2;
        }
        w->glob[w->n++] = glob;
    }
    return 0;
}

/* Whether --metrics-addr (or its variable) was given: a default address in use is only a
 * warning (several tailjets on one host), a chosen one that fails is an error. */
static bool explicit_metrics_addr(int argc, char **argv)
{
    const char *env = getenv("TAILJET_METRICS_ADDR");

    if (env && *env)
        return true;
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], "--metrics-addr", 14) == 0)
            return true;
    return false;
}

/* One descriptor per followed file (and per rotated file until it is read): the soft limit
 * (often 1024) is raised to the hard one, as Go programs and Vector do. */
static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            tj_log(TJ_LOG_WARN, "cannot raise the open files limit: %s", strerror(errno));
    }
}

/* Before any thread starts (librdkafka's, discovery's, the engine's): the engine takes these
 * signals through a signalfd, and a thread that did not block them would let the default
 * action kill the process. */
static void block_signals(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* The output exists before the engine (a bad URI must not touch the state directory), so its
 * acknowledgements go through this slot. */
static void forward_ack(void *slot, struct tj_batch *b, int status)
{
    tj_engine_ack(*(struct tj_engine **)slot, b, status);
}

struct endpoint {
    struct tj_engine *e;
    struct tj_discover *disc;
    struct tj_labels *labels;
    struct tj_output *out;
    struct tj_tap_hub *hub;
    struct tj_web web;
};

/* The options of the output the URI names: --kafka-opt for kafka://, --es-opt (with
 * --es-data-stream last) for the elasticsearch output; both get the dead-letter file in the state
 * directory first, so that one given overrides it. Returns 0 or 2 (a usage error, printed).
 * dl holds the default dead-letter option's text. */
static int output_opts(struct run_cfg *cfg, struct tj_strv *v, char *dl, size_t dln)
{
    bool es = tj_output_matches(&tj_output_es, cfg->output);

    if (!es && (cfg->es_opts.n || cfg->es_data_stream)) {
        fprintf(stderr, "tailjet run: --es-opt and --es-data-stream apply to the elasticsearch "
                        "output only (--output elasticsearch://HOST:PORT)\n");
        return 2;
    }
    if (es && cfg->output_opts.n) {
        fprintf(stderr, "tailjet run: --kafka-opt applies to the kafka:// output only (the "
                        "elasticsearch output takes --es-opt)\n");
        return 2;
    }
    if (!es && !tj_output_matches(&tj_output_kafka, cfg->output)) {
        *v = cfg->output_opts;
        cfg->output_opts = (struct tj_strv){0};
        return 0;
    }
    if (!es) { /* kafka: its dead-letter file in the state directory, unless one is given */
        snprintf(dl, dln, "dead_letter_file=%s/kafka-dead-letters.ndjson", cfg->state_dir);
        if (tj_strv_push(v, dl))
            goto nomem;
        for (size_t i = 0; i < cfg->output_opts.n; i++)
            if (tj_strv_push(v, cfg->output_opts.v[i]))
                goto nomem;
        return 0;
    }
    snprintf(dl, dln, "dead_letter_file=%s/es-dead-letters.ndjson", cfg->state_dir);
    if (tj_strv_push(v, dl) || (cfg->es_data_stream && tj_strv_push(v, "data_stream=true")))
        goto nomem;
    for (size_t i = 0; i < cfg->es_opts.n; i++)
        if (tj_strv_push(v, cfg->es_opts.v[i]))
            goto nomem;
    return 0;
nomem:
    fprintf(stderr, "tailjet run: out of memory\n");
    return 2;
}

/* /metrics, /health, the label table, and the web's paths (the HTTP server's threads). */
static void render(void *arg, struct tj_http_req *req, const char *path, struct tj_buf *body,
                   int *status, const char **ctype)
{
    struct endpoint *ep = arg;
    struct tj_discover_stats ds = {0};
    char line[256];
    int n;
    static const char build[] = "# HELP tailjet_build_info tailjet's version.\n"
                                "# TYPE tailjet_build_info gauge\n"
                                "tailjet_build_info{version=\"" TJ_VERSION "\"} 1\n";

    if (tj_web_render(&ep->web, req, path, body, status, ctype))
        return;
    if (strcmp(path, "/v1/services") == 0) {
        char peer[64];
        tj_labels_serve(ep->labels, tj_http_header(req, "Authorization"),
                        tj_http_query(req, "version"), tj_http_query(req, "wait"),
                        tj_http_peer(req, peer, sizeof(peer)), body, status, ctype);
    } else if (strcmp(path, "/metrics") == 0) {
        tj_buf_append(body, build, sizeof(build) - 1);
        tj_engine_metrics(ep->e, body);
        tj_labels_metrics(ep->labels, body);
        tj_tap_metrics(ep->hub, body);
        if (ep->out && ep->out->ops && ep->out->ops->metrics)
            ep->out->ops->metrics(ep->out->state, body);
        if (ep->disc) {
            tj_discover_get_stats(ep->disc, &ds);
            tj_discover_metrics(ep->disc, body);
        }
        n = snprintf(line, sizeof(line),
                     "# HELP tailjet_pattern_errors_total Label patterns that did not compile, or "
                     "alternatives past the 16 a container may have.\n"
                     "# TYPE tailjet_pattern_errors_total counter\n"
                     "tailjet_pattern_errors_total %llu\n",
                     (unsigned long long)ds.pattern_errors);
        tj_buf_append(body, line, (size_t)n);
        *status = 200;
        *ctype = "text/plain; version=0.0.4; charset=utf-8";
    } else if (strcmp(path, "/health") == 0) {
        size_t problems = tj_engine_health(ep->e, body);
        if (ep->disc)
            problems += tj_discover_health(ep->disc, body);
        struct tj_buf info;
        tj_buf_init(&info, 4096);
        problems += tj_labels_health(ep->labels, &info); /* its state, a problem or not */
        if (!problems)
            tj_buf_append(body, "ok\n", 3);
        tj_buf_append(body, info.data, info.len);
        tj_buf_fini(&info);
        *status = problems ? 503 : 200;
    } else {
        static const char nf[] = "not found: try /metrics, /health or /ui/\n";
        tj_buf_append(body, nf, sizeof(nf) - 1);
        *status = 404;
    }
}

/* Reads the shared token: the file's first line, without its line end. Returns it (owned) or
 * NULL with err filled. */
static char *read_token(const char *path, char *err, size_t errlen)
{
    char *token;
    int rc = tj_cmd_read_token(path, &token);

    if (rc == TJ_EIO)
        snprintf(err, errlen, "--label-token-file %s: %s", path, strerror(errno));
    else if (rc)
        snprintf(err, errlen, "--label-token-file %s: empty (put the token on its first line)",
                 path);
    return token;
}

static enum tj_log_level level_of(const char *s)
{
    return strcmp(s, "debug") == 0   ? TJ_LOG_DEBUG
           : strcmp(s, "warn") == 0  ? TJ_LOG_WARN
           : strcmp(s, "error") == 0 ? TJ_LOG_ERROR
                                     : TJ_LOG_INFO;
}

static void log_summary(struct tj_engine *e)
{
    struct tj_engine_stats st;
    unsigned long long unparsed;

    tj_engine_get_stats(e, &st);
    unparsed = st.parse.records - st.parse.matched - st.parse.failed - st.parse.json_errors;
    tj_log(TJ_LOG_INFO,
           "stopped: %llu bytes read, %llu records acknowledged (%llu parsed: %llu matched, %llu "
           "_grokparsefailure, %llu _jsonparsefailure, %llu without a pattern; %llu _truncated), "
           "%llu files opened, %llu rotations, %llu truncations, %llu refused submits",
           (unsigned long long)st.bytes_read, (unsigned long long)st.records_acked,
           (unsigned long long)st.parse.records, (unsigned long long)st.parse.matched,
           (unsigned long long)st.parse.failed, (unsigned long long)st.parse.json_errors, unparsed,
           (unsigned long long)st.parse.truncated, (unsigned long long)st.files_opened,
           (unsigned long long)st.rotations, (unsigned long long)st.truncations,
           (unsigned long long)st.submit_retries);
}

static int run_main(int argc, char **argv)
{
    struct run_cfg cfg = {0};
    struct tj_strv rest = {0}, oopts = {0};
    struct tj_engine_cfg ec = {0};
    struct tj_grok_lib *lib = NULL;
    struct tj_engine *e = NULL;
    struct tj_output out = {0};
    struct watches w = {0};
    struct tj_discover *disc = NULL;
    struct tj_http *http = NULL;
    struct tj_labels *labels = NULL;
    char *token = NULL;
    struct endpoint ep = {0};
    char err[1024], host[256], dl[PATH_MAX + 64];
    bool abandoned = false;
    int status = 2, rc;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    if (tj_cmd_start(&tj_cmd_run, argc, argv, &cfg, &cfg.help, &rest, &status))
        goto out;
    if (rest.n) {
        fprintf(stderr, "tailjet run: unexpected argument '%s' (files are given with --watch)\n",
                rest.v[0]);
        goto out;
    }
    if (cfg.max_line_bytes < 16 || cfg.max_line_bytes > MAX_LINE_BYTES_LIMIT) {
        fprintf(stderr, "tailjet run: --max-line-bytes must be between 16 and 64MiB\n");
        goto out;
    }
    if (cfg.chunk_bytes < 4096 || cfg.chunk_bytes > ((size_t)64 << 20)) {
        fprintf(stderr, "tailjet run: --chunk-bytes must be between 4KiB and 64MiB\n");
        goto out;
    }
    if (cfg.workers > 256) {
        fprintf(stderr, "tailjet run: --workers must be at most 256\n");
        goto out;
    }
    tj_log_set_level(level_of(cfg.log_level));
    tj_log_set_json(strcmp(cfg.log_format, "json") == 0);
    raise_fd_limit();
    block_signals();
    lib = tj_cmd_load_library(&cfg.dirs, err, sizeof(err));
    if (!lib) {
        fprintf(stderr, "tailjet run: %s\n", err);
        goto out;
    }
    if ((status = build_watches(&w, &cfg, lib)) != 0)
        goto out;
    status = 2;
    if (!cfg.docker_host && !cfg.docker_root && w.n == 0)
        cfg.docker_host = "unix:///var/run/docker.sock";
    if (cfg.docker_host && cfg.docker_root) {
        fprintf(stderr, "tailjet run: give --docker-host or --docker-root, not both\n");
        goto out;
    }
    ec.workers = cfg.workers ? cfg.workers : (cores > 0 ? (unsigned)cores : 1);
    ec.read_ahead = cfg.read_ahead;
    ec.chunk_bytes = cfg.chunk_bytes;
    ec.max_line_bytes = cfg.max_line_bytes;
    ec.poll_ms = cfg.poll_ms ? cfg.poll_ms : 1;
    ec.checkpoint_ms = cfg.checkpoint_ms;
    ec.multiline_timeout_ms = cfg.multiline_timeout_ms;
    ec.shutdown_timeout_ms = cfg.shutdown_timeout_ms;
    ec.rotate_wait_ms = cfg.rotate_wait_ms;
    ec.start_at_end = strcmp(cfg.start_at, "end") == 0;
    ec.exit_on_eof = cfg.exit_on_eof;
    ec.state_dir = cfg.state_dir;
    ec.limits = TJ_MATCH_LIMITS_DEFAULT;
    ec.limits.match_limit = cfg.match_limit;
    if (gethostname(host, sizeof(host)) == 0) {
        host[sizeof(host) - 1] = '\0';
        ec.host_name = host;
    }
    if ((status = output_opts(&cfg, &oopts, dl, sizeof(dl))) != 0)
        goto out;
    status = 2;
    if ((rc = tj_output_create(&out, cfg.output, oopts.v, oopts.n, forward_ack, &e, err,
                               sizeof(err)))) {
        fprintf(stderr, "tailjet run: %s\n", err);
        status = rc == TJ_EINVAL ? 2 : 1;
        out.ops = NULL; /* nothing was created */
        goto out;
    }
    e = tj_engine_create(&ec, err, sizeof(err));
    if (!e) {
        fprintf(stderr, "tailjet run: %s\n", err);
        status = 1;
        goto out;
    }
    for (size_t i = 0; i < w.n; i++) {
        if (tj_engine_watch(e, w.glob[i], w.rs[i])) {
            fprintf(stderr, "tailjet run: out of memory\n");
            status = 1;
            goto out;
        }
    }
    tj_engine_set_output(e, &out);
    if (!(ep.hub = tj_tap_hub_create())) {
        fprintf(stderr, "tailjet run: out of memory\n");
        status = 1;
        goto out;
    }
    tj_engine_set_tap(e, ep.hub);
    if (cfg.label_token_file && !(token = read_token(cfg.label_token_file, err, sizeof(err)))) {
        fprintf(stderr, "tailjet run: %s\n", err);
        status = 2;
        goto out;
    }
    {
        struct tj_labels_cfg lc = {cfg.label_source, token, cfg.label_ca_file, cfg.state_dir};
        if (!(labels = tj_labels_create(&lc, err, sizeof(err)))) {
            fprintf(stderr, "tailjet run: %s\n", err);
            status = 2;
            goto out;
        }
    }
    if (cfg.docker_root)
        tj_engine_hold_eof(e); /* released once the first scan's containers are followed */
    if (cfg.docker_host || cfg.docker_root) {
        struct tj_discover_cfg dc = {
            cfg.docker_host, cfg.docker_root, cfg.label_prefix,  lib,
            ec.poll_ms,      labels,          cfg.label_wait_ms, cfg.include_self};
        disc = tj_discover_start(&dc, e, err, sizeof(err));
        if (!disc) {
            fprintf(stderr, "tailjet run: %s\n", err);
            status = 2;
            goto out;
        }
    }
    ep.e = e;
    ep.disc = disc;
    ep.labels = labels;
    ep.out = &out;
    ep.web = (struct tj_web){e, ep.hub, lib, token, ec.host_name, ec.limits, 0};
    if (strcmp(cfg.metrics_addr, "off") != 0) {
        struct tj_http_tls tls = {cfg.tls_cert, cfg.tls_key};
        bool bad_addr = false;
        http = tj_http_start(cfg.metrics_addr, &tls, render, &ep, &bad_addr, err, sizeof(err));
        if (!http && (bad_addr || explicit_metrics_addr(argc, argv))) {
            fprintf(stderr, "tailjet run: %s\n", err);
            status = bad_addr ? 2 : 1;
            goto out;
        }
        if (!http)
            tj_log(TJ_LOG_WARN, "%s; running without /metrics and /health", err);
    }
    tj_log(TJ_LOG_INFO, "tailjet %s started: %u workers, output %s, state in %s, metrics %s",
           TJ_VERSION, ec.workers, cfg.output, cfg.state_dir, http ? cfg.metrics_addr : "off");
    status = tj_engine_run(e, &abandoned);
    tj_labels_shutdown(labels);
    tj_tap_hub_shutdown(ep.hub);
    tj_http_stop(http);
    http = NULL;
    if (disc) {
        struct tj_discover_stats ds;
        tj_discover_get_stats(disc, &ds);
        tj_log(TJ_LOG_INFO,
               "discovery: %llu containers followed, %llu labels that did not compile, %llu "
               "label changes applied, %llu reconnects",
               (unsigned long long)ds.containers, (unsigned long long)ds.pattern_errors,
               (unsigned long long)ds.label_updates, (unsigned long long)ds.reconnects);
    }
    tj_discover_stop(disc);
    disc = NULL;
    log_summary(e);
    if (abandoned)
        _exit(status); /* threads are blocked in the output: nothing to free safely */
out:
    tj_labels_shutdown(labels);
    tj_tap_hub_shutdown(ep.hub);
    tj_http_stop(http);
    tj_discover_stop(disc);
    tj_labels_destroy(labels);
    free(token);
    tj_engine_destroy(e);
    tj_tap_hub_destroy(ep.hub);
    tj_output_destroy(&out);
    watches_fini(&w);
    tj_grok_lib_destroy(lib);
    tj_strv_fini(&rest);
    tj_strv_fini(&cfg.seq);
    tj_strv_fini(&cfg.output_opts);
    tj_strv_fini(&cfg.es_opts);
    tj_strv_fini(&oopts);
    tj_strv_fini(&cfg.dirs);
    return status;
}

const struct tj_cmd tj_cmd_run = {
    "run",
    "[--docker-host URL | --docker-root DIR] [--watch GLOB [--pattern EXPR]...]... [--output URI]",
    "Discover containers (or follow files), parse their logs by their labels, ship the records.",
    run_opts,
    TJ_ARRAY_LEN(run_opts),
    run_main,
    tj_output_help};
