/* cmd_parse.c: `tailjet parse`: json-file or plain lines from files or stdin -> NDJSON records on
 * stdout. One thread: read a chunk, assemble lines into events, parse, encode into the output
 * buffer, write it out in large blocks. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tj_assemble.h"
#include "tj_batch.h"
#include "tj_json.h"
#include "tj_buf.h"
#include "tj_cmd.h"
#include "tj_ruleset.h"

#define OUT_FLUSH_AT (1024 * 1024)
#define TJ_MAX_LINE_BYTES_LIMIT                                                                    \
    ((size_t)64 << 20) /* keeps every derived size far from overflow                               \
                        */

struct parse_cfg {
    struct tj_strv patterns;
    const char *multiline;
    size_t max_line_bytes;
    const char *format;
    const char *ecs;
    const char *timestamp;
    struct tj_strv dirs;
    unsigned match_limit;
    bool quiet;
    bool help;
};

static const struct tj_opt parse_opts[] = {
    {"pattern", TJ_OPT_STRINGS, offsetof(struct parse_cfg, patterns), NULL, NULL, "EXPR",
     "grok expression or PCRE2 regex with named groups; repeat it for alternatives tried in "
     "order (the first that matches wins); none: records are shipped unparsed",
     NULL},
    {"multiline", TJ_OPT_STRING, offsetof(struct parse_cfg, multiline), NULL, NULL, "REGEX",
     "a line matching REGEX (grok allowed) starts an event; other lines join the event before "
     "them, with '\\n'",
     NULL},
    TJ_CMD_OPT_MAX_LINE_BYTES(struct parse_cfg, max_line_bytes),
    {"format", TJ_OPT_STRING, offsetof(struct parse_cfg, format), "auto", NULL, "FMT",
     "input format: json-file (Docker), plain (one line per record), or auto (decided by the "
     "first line)",
     "auto|json-file|plain"},
    {"ecs", TJ_OPT_STRING, offsetof(struct parse_cfg, ecs), "v1", NULL, "MODE",
     "field names of the library's patterns: v1 (ECS, Logstash 8's default) or disabled "
     "(Logstash's legacy names: clientip, verb, response, ...)",
     "v1|disabled"},
    {"timestamp", TJ_OPT_STRING, offsetof(struct parse_cfg, timestamp), NULL, NULL,
     "'FIELD FORMAT[|FORMAT...]'",
     "take @timestamp from the extracted FIELD, read with the first format that fits (ISO8601, "
     "UNIX, UNIX_MS, TAI64N or a Joda pattern such as 'dd/MMM/yyyy:HH:mm:ss Z'; a last "
     "'|zone=+HH:MM' for zone-less times); the line's own time then goes to event.created; no "
     "fit: tagged _dateparsefailure",
     NULL},
    TJ_CMD_OPT_PATTERNS_DIR(struct parse_cfg, dirs),
    {"match-limit", TJ_OPT_UINT, offsetof(struct parse_cfg, match_limit), "200000", NULL, "N",
     "PCRE2 match limit per line and pattern: a line that needs more is a no-match, tagged "
     "_groktimeout",
     NULL},
    {"quiet", TJ_OPT_FLAG, offsetof(struct parse_cfg, quiet), NULL, NULL, NULL,
     "do not print the summary line on stderr", NULL},
    TJ_CMD_OPT_HELP(struct parse_cfg, help),
};

struct parse_run {
    const struct tj_ruleset *rs;
    struct tj_matcher *matcher;
    struct tj_meta meta;
    struct tj_buf out;
    struct tj_parse_stats st;
    char now[40];
    bool write_failed;
    struct tj_batch *batch;
};

static int flush_out(struct parse_run *r)
{
    size_t off = 0;

    while (off < r->out.len) {
        ssize_t n = write(STDOUT_FILENO, r->out.data + off, r->out.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (!r->write_failed)
                fprintf(stderr, "tailjet parse: cannot write to stdout: %s\n", strerror(errno));
            r->write_failed = true;
            r->out.len = 0;
            return TJ_EIO;
        }
        off += (size_t)n;
    }
    r->out.len = 0;
    return 0;
}

/* Encodes one matched event, flushing the output when it is full (a tj_batch_encode_fn). */
static int encode_event(void *arg, const struct tj_event *ev, const struct tj_match_result *res,
                        const size_t *ov)
{
    struct parse_run *r = arg;
    int rc = tj_ruleset_encode(r->rs, ev, res, ov, &r->meta, &r->out, &r->st);

    if (rc == TJ_ENOSPC && r->out.len) {
        if (flush_out(r))
            return TJ_EIO;
        rc = tj_ruleset_encode(r->rs, ev, res, ov, &r->meta, &r->out, &r->st);
    }
    if (rc) {
        fprintf(stderr, "tailjet parse: record at offset %lld could not be encoded: %s\n",
                (long long)ev->offset, tj_strerror(rc));
        return rc;
    }
    if (r->out.len >= OUT_FLUSH_AT)
        return flush_out(r);
    return 0;
}

static int on_event(void *arg, const struct tj_event *ev)
{
    struct parse_run *r = arg;

    return tj_batch_push(r->batch, ev, r->rs, r->matcher, encode_event, r);
}

/* Parses the batched events: before the read buffer or r->now change. */
static int run_batch(struct parse_run *r)
{
    return tj_batch_run(r->batch, r->rs, r->matcher, encode_event, r);
}

/* True when a read of fd would not wait. */
static bool input_ready(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};

    return poll(&p, 1, 0) != 0;
}

/* Reads fd to its end, feeding complete lines to the assembler. Returns 0 or an error. */
static int parse_fd(struct parse_run *r, int fd, const char *name, struct tj_assembler *a,
                    size_t bufsize)
{
    char *buf = malloc(bufsize);
    size_t len = 0;
    int64_t base = 0;      /* file offset of buf[0] */
    bool skipping = false; /* discarding the rest of a line cut at the buffer size */
    struct tj_feed f = {r->matcher, r->rs->multiline, on_event, r, {r->now, 0}};
    struct stat st;
    bool live = fstat(fd, &st) == 0 && !S_ISREG(st.st_mode); /* a pipe, a terminal */
    int rc = 0;

    if (!buf)
        return TJ_ENOMEM;
    for (;;) {
        ssize_t n;
        size_t start = 0;

        /* Nothing more to read now: what is parsed goes out before the read waits (`tail -f
         * x.log | tailjet parse` prints each line as it comes). */
        if (live && r->out.len && !input_ready(fd) && flush_out(r)) {
            rc = TJ_EIO;
            break;
        }
        n = read(fd, buf + len, bufsize - len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "tailjet parse: reading %s: %s\n", name, strerror(errno));
            rc = TJ_EIO;
            break;
        }
        tj_time_now(r->now, sizeof(r->now));
        f.now.len = strlen(r->now);
        len += (size_t)n;
        tj_batch_region(r->batch, buf, buf + len, r->now, sizeof(r->now));
        for (;;) {
            char *nl = memchr(buf + start, '\n', len - start);
            if (!nl)
                break;
            if (skipping)
                skipping = false;
            else if ((rc = tj_assembler_line(a, buf + start, (size_t)(nl - buf) - start,
                                             base + (int64_t)start, false, &f)))
                goto out;
            start = (size_t)(nl - buf) + 1;
        }
        if (n == 0) {
            if (start < len && !skipping)
                rc = tj_assembler_line(a, buf + start, len - start, base + (int64_t)start, false,
                                       &f);
            break;
        }
        if (start == 0 && len == bufsize) {
            /* No line end in a full buffer: ship the head as one cut line, drop the rest. */
            if (!skipping && (rc = tj_assembler_line(a, buf, len, base, true, &f)))
                goto out;
            skipping = true;
            start = len;
        }
        if ((rc = run_batch(r))) /* before buf and r->now change */
            goto out;
        memmove(buf, buf + start, len - start);
        len -= start;
        base += (int64_t)start;
    }
    if (!rc)
        rc = tj_assembler_flush(a, true, &f);
    if (!rc)
        rc = run_batch(r);
out:
    if (rc)
        tj_batch_clear(r->batch); /* after an error, what is left is not written */
    free(buf);
    return rc;
}

/* Compiles the command line's patterns against the library (plus --patterns-dir). Returns the
 * ruleset, or NULL with err filled; the library is only needed while compiling. */
static struct tj_ruleset *build_ruleset(const struct parse_cfg *cfg, char *err, size_t errlen)
{
    struct tj_grok_lib *lib = tj_cmd_load_library(&cfg->dirs, err, errlen);
    struct tj_rules_spec spec = {0};
    struct tj_ruleset *rs;
    char msg[900];

    if (!lib)
        return NULL;
    spec.exprs = (const char *const *)cfg->patterns.v;
    spec.n = cfg->patterns.n;
    spec.multiline = cfg->multiline;
    spec.timestamp = cfg->timestamp;
    tj_ecs_mode_parse(cfg->ecs, &spec.ecs); /* checked against the option's choices */
    rs = tj_ruleset_build(lib, &spec, msg, sizeof(msg));
    if (!rs)
        snprintf(err, errlen, "bad pattern: %s", msg);
    tj_grok_lib_destroy(lib);
    return rs;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Parses one input: a path, or "-" for stdin. Returns 0, or 1 when it could not be read or
 * its records could not be written. */
static int parse_input(struct parse_run *r, const struct parse_cfg *cfg, const char *name)
{
    bool is_stdin = strcmp(name, "-") == 0;
    int fd = is_stdin ? STDIN_FILENO : open(name, O_RDONLY | O_CLOEXEC);
    enum tj_format fmt = strcmp(cfg->format, "json-file") == 0 ? TJ_FORMAT_JSONFILE
                         : strcmp(cfg->format, "plain") == 0   ? TJ_FORMAT_PLAIN
                                                               : TJ_FORMAT_AUTO;
    struct tj_assembler *a;
    int rc;

    if (fd < 0) {
        fprintf(stderr, "tailjet parse: cannot open %s: %s\n", name, strerror(errno));
        return 1;
    }
    if (fmt == TJ_FORMAT_AUTO && has_suffix(name, "-json.log"))
        fmt = TJ_FORMAT_JSONFILE; /* Docker's json-file name: a torn first line decides nothing */
    if (tj_meta_set(&r->meta, TJ_META_FILE_PATH, is_stdin ? NULL : name, strlen(name))) {
        rc = TJ_ENOMEM;
        goto close;
    }
    a = tj_assembler_create(fmt, cfg->max_line_bytes);
    rc = a ? parse_fd(r, fd, is_stdin ? "stdin" : name, a, TJ_ASSEMBLE_MAX_RAW(cfg->max_line_bytes))
           : TJ_ENOMEM;
    tj_assembler_destroy(a);
close:
    if (!is_stdin)
        close(fd);
    if (rc == TJ_ENOMEM)
        fprintf(stderr, "tailjet parse: out of memory while reading %s\n", name);
    return rc ? 1 : 0;
}

static void print_summary(const struct tj_parse_stats *st)
{
    fprintf(stderr,
            "tailjet parse: %llu records: %llu matched, %llu _grokparsefailure, %llu "
            "_groktimeout, %llu _jsonparsefailure, %llu _truncated\n",
            (unsigned long long)st->records, (unsigned long long)st->matched,
            (unsigned long long)st->failed, (unsigned long long)st->limited,
            (unsigned long long)st->json_errors, (unsigned long long)st->truncated);
}

static int parse_main(int argc, char **argv)
{
    struct parse_cfg cfg = {0};
    struct tj_strv rest = {0};
    struct parse_run r = {0};
    struct tj_match_limits lim = TJ_MATCH_LIMITS_DEFAULT;
    char err[1024], host[256];
    int status = 2;

    tj_meta_init(&r.meta);
    tj_buf_init(&r.out, 0);
    if (tj_cmd_start(&tj_cmd_parse, argc, argv, &cfg, &cfg.help, &rest, &status))
        goto out;
    if (cfg.max_line_bytes < 16 || cfg.max_line_bytes > TJ_MAX_LINE_BYTES_LIMIT) {
        fprintf(stderr, "tailjet parse: --max-line-bytes must be between 16 and 64MiB\n");
        goto out;
    }
    r.rs = build_ruleset(&cfg, err, sizeof(err));
    if (!r.rs) {
        fprintf(stderr, "tailjet parse: %s\n", err);
        goto out;
    }
    lim.match_limit = cfg.match_limit;
    r.matcher = tj_matcher_create(&lim);
    /* Room for a large record (every byte escaped, in the message and in captures); a larger
     * one is written without its fields (tj_ruleset_encode). */
    tj_buf_init(&r.out, OUT_FLUSH_AT + 64 * cfg.max_line_bytes + 65536);
    r.batch = tj_batch_create();
    if (!r.matcher || !r.batch || (rest.n == 0 && tj_strv_push(&rest, "-"))) { /* no file: stdin */
        fprintf(stderr, "tailjet parse: out of memory\n");
        goto out;
    }
    if (gethostname(host, sizeof(host)) == 0) {
        host[sizeof(host) - 1] = '\0';
        tj_meta_set(&r.meta, TJ_META_HOST_NAME, host, strlen(host));
    }
    status = 0;
    for (size_t i = 0; i < rest.n && !r.write_failed; i++)
        status |= parse_input(&r, &cfg, rest.v[i]);
    if (flush_out(&r))
        status = 1;
    if (!cfg.quiet)
        print_summary(&r.st);
out:
    tj_batch_destroy(r.batch);
    tj_matcher_destroy(r.matcher);
    tj_meta_fini(&r.meta);
    tj_buf_fini(&r.out);
    tj_ruleset_unref((struct tj_ruleset *)r.rs);
    tj_strv_fini(&rest);
    tj_strv_fini(&cfg.patterns);
    tj_strv_fini(&cfg.dirs);
    return status;
}

const struct tj_cmd tj_cmd_parse = {
    "parse",
    "[--pattern EXPR]... [--multiline REGEX] [FILE... | -]",
    "Parse json-file or plain log lines (files, or stdin) into NDJSON records on stdout.",
    parse_opts,
    TJ_ARRAY_LEN(parse_opts),
    parse_main,
    NULL};
