/* tj_es_opts.c: the Elasticsearch output's option table and its configuration from the options
 * and the URI (see tj_es_opts.h). Runs on the main thread, in create. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tj_es_opts.h"

#define PASSWORD_MAX 4096
#define TEMPLATE_MAX (1u << 20) /* an index template file is at most this long */

#define OFF(f) offsetof(struct tj_es_opts, f)
const struct tj_opt tj_es_opts_table[] = {
    {"index", TJ_OPT_STRING, OFF(index), NULL, NULL, "TEMPLATE",
     "index name template for records whose service has no logIndex label (the label is a "
     "template too): %Y %m %d %H from the record's @timestamp in UTC, %{service} (lower case), "
     "%%; the URI's /INDEX sets it too; default logs-%{service}-%Y.%m.%d, and with "
     "data_stream=true logs-%{service}-default",
     NULL},
    {"data_stream", TJ_OPT_FLAG, OFF(data_stream), "false", NULL, "BOOL",
     "write with the create action data streams require (--es-data-stream sets it); a 409 "
     "conflict, the document is already there, counts as delivered",
     "true|false"},
    {"batch.max_bytes", TJ_OPT_SIZE, OFF(max_bytes), "5MiB", NULL, "N",
     "a bulk request holds at most this many bytes of NDJSON (before compression)", NULL},
    {"batch.regrow_after", TJ_OPT_DURATION, OFF(regrow_ms), "30s", NULL, "DUR",
     "after a 413 (request too large) cut requests smaller, their bound doubles again after "
     "this long without another 413, back up to batch.max_bytes",
     NULL},
    {"batch.max_events", TJ_OPT_UINT, OFF(max_docs), "5000", NULL, "N",
     "a bulk request holds at most this many documents", NULL},
    {"request.concurrency", TJ_OPT_UINT, OFF(concurrency), "4", NULL, "N",
     "bulk requests in flight at once, each on its own keep-alive connection", NULL},
    {"request.timeout", TJ_OPT_DURATION, OFF(timeout_ms), "30s", NULL, "DUR",
     "a request not answered by then is given up and its documents are retried", NULL},
    {"retry.initial_backoff", TJ_OPT_DURATION, OFF(backoff_ms), "100ms", NULL, "DUR",
     "the first wait before a document is retried; it doubles at each attempt, with jitter", NULL},
    {"retry.max_backoff", TJ_OPT_DURATION, OFF(backoff_max_ms), "30s", NULL, "DUR",
     "the longest wait between two attempts (documents are retried without limit)", NULL},
    {"compression", TJ_OPT_STRING, OFF(compression), "gzip", NULL, "ALGO",
     "request bodies gzip-compressed (Content-Encoding: gzip) or not", "gzip|none"},
    {"id", TJ_OPT_STRING, OFF(id), "hash", NULL, "MODE",
     "hash: each document's _id is a hash of the record (its path, offset and time), so what is "
     "sent again after a crash overwrites itself instead of duplicating; none: Elasticsearch "
     "makes the ids",
     "hash|none"},
    {"pipeline", TJ_OPT_STRING, OFF(pipeline), NULL, NULL, "NAME",
     "ingest pipeline the documents go through", NULL},
    {"dead_letter_file", TJ_OPT_STRING, OFF(dead_letter_file), NULL, NULL, "PATH",
     "documents Elasticsearch rejects for good (a 400 mapping error, ...) are appended there as "
     "NDJSON with its error, and counted; default STATE-DIR/es-dead-letters.ndjson",
     NULL},
    {"template_file", TJ_OPT_STRING, OFF(template_file), NULL, NULL, "PATH",
     "an index template (JSON; deploy/elasticsearch/tailjet-logs-template.json is tailjet's, "
     "for data streams of ECS records) that tailjet puts into Elasticsearch (PUT "
     "_index_template/NAME) before it sends any document, at every start, as Filebeat's setup "
     "does; documents wait until it is in",
     NULL},
    {"template_name", TJ_OPT_STRING, OFF(template_name), "tailjet-logs", NULL, "NAME",
     "the name template_file is put under", NULL},
    {"auth.user", TJ_OPT_STRING, OFF(user), NULL, "TAILJET_ES_USER", "NAME",
     "basic authentication user; the password comes from TAILJET_ES_PASSWORD or "
     "auth.password_file, never from the command line",
     NULL},
    {"auth.password_file", TJ_OPT_STRING, OFF(password_file), NULL, NULL, "PATH",
     "a file whose first line is the basic authentication password", NULL},
    {"auth.api_key_file", TJ_OPT_STRING, OFF(api_key_file), NULL, NULL, "PATH",
     "a file whose first line is an API key, ID:KEY or its base64 'encoded' form (or "
     "TAILJET_ES_API_KEY); sent as Authorization: ApiKey",
     NULL},
    {"tls.ca_file", TJ_OPT_STRING, OFF(ca_file), NULL, NULL, "PATH",
     "PEM file of the certificate authorities that https:// hosts are checked against (default: "
     "the system's)",
     NULL},
    {"tls.verify_certificate", TJ_OPT_FLAG, OFF(verify), "true", NULL, "BOOL",
     "check the server's certificate and host name; false skips both (said at start)",
     "true|false"},
    {"buffer.max_bytes", TJ_OPT_SIZE, OFF(buffer_max), "64MiB", NULL, "N",
     "records held by the output (sent or waiting) at most: past it, it refuses batches and "
     "reading pauses",
     NULL},
};
#undef OFF
_Static_assert(TJ_ARRAY_LEN(tj_es_opts_table) == TJ_ES_OPTS_N,
               "TJ_ES_OPTS_N is the table's length");

/* Sets one option from its text. Returns 0 or TJ_EINVAL with err filled. */
static int opt_set(const struct tj_opt *t, struct tj_es_opts *eo, const char *v, char *err,
                   size_t errlen)
{
    char *base = (char *)eo + t->offset, *end;
    unsigned long u;
    const char *c = t->choices;

    if (c) {
        size_t n = strlen(v);
        bool ok = false;
        while (*c && !ok) {
            size_t k = strcspn(c, "|");
            ok = k == n && memcmp(c, v, n) == 0;
            c += k + (c[k] == '|');
        }
        if (!ok) {
            snprintf(err, errlen, "--es-opt %s=%s: use one of %s", t->name, v, t->choices);
            return TJ_EINVAL;
        }
    }
    switch (t->type) {
    case TJ_OPT_STRING:
        *(const char **)base = v;
        return 0;
    case TJ_OPT_FLAG:
        *(bool *)base = strcmp(v, "true") == 0;
        return 0;
    case TJ_OPT_SIZE:
        if (tj_parse_size(v, (size_t *)base) == 0)
            return 0;
        snprintf(err, errlen, "--es-opt %s=%s: not a size (e.g. 5MiB, 512k, 1048576)", t->name, v);
        return TJ_EINVAL;
    case TJ_OPT_DURATION:
        if (tj_parse_duration(v, (unsigned *)base) == 0)
            return 0;
        snprintf(err, errlen, "--es-opt %s=%s: not a duration (e.g. 500ms, 30s, 1m)", t->name, v);
        return TJ_EINVAL;
    case TJ_OPT_UINT:
        errno = 0;
        u = strtoul(v, &end, 10);
        if (*v >= '0' && *v <= '9' && !errno && !*end && u <= 0xFFFFFFFFul) {
            *(unsigned *)base = (unsigned)u;
            return 0;
        }
        snprintf(err, errlen, "--es-opt %s=%s: not a whole number", t->name, v);
        return TJ_EINVAL;
    default:
        break;
    }
    return TJ_EINVAL;
}

int tj_es_opts_parse(struct tj_es_opts *eo, const char *const *opts, size_t nopts, char *err,
                     size_t errlen)
{
    memset(eo, 0, sizeof(*eo));
    for (size_t i = 0; i < TJ_ARRAY_LEN(tj_es_opts_table); i++) {
        const struct tj_opt *t = &tj_es_opts_table[i];
        const char *env = t->env ? getenv(t->env) : NULL;
        const char *v = env && *env ? env : t->def;
        if (v && opt_set(t, eo, v, err, errlen))
            return TJ_EINVAL;
    }
    for (size_t i = 0; i < nopts; i++) {
        const char *eq = strchr(opts[i], '=');
        const struct tj_opt *t = NULL;
        size_t n = eq ? (size_t)(eq - opts[i]) : 0;
        if (!eq || n == 0) {
            snprintf(err, errlen, "--es-opt %s: use NAME=VALUE (see tailjet run --help)", opts[i]);
            return TJ_EINVAL;
        }
        if ((n == 13 && memcmp(opts[i], "auth.password", 13) == 0) ||
            (n == 12 && memcmp(opts[i], "auth.api_key", 12) == 0)) {
            snprintf(err, errlen,
                     "--es-opt %.*s: a secret is not taken on the command line (every user sees "
                     "it in ps): put it in a file (%.*s_file=PATH) or in %s",
                     (int)n, opts[i], (int)n, opts[i],
                     n == 13 ? "TAILJET_ES_PASSWORD" : "TAILJET_ES_API_KEY");
            return TJ_EINVAL;
        }
        for (size_t k = 0; k < TJ_ARRAY_LEN(tj_es_opts_table) && !t; k++)
            if (strlen(tj_es_opts_table[k].name) == n &&
                memcmp(tj_es_opts_table[k].name, opts[i], n) == 0)
                t = &tj_es_opts_table[k];
        if (!t) {
            snprintf(err, errlen,
                     "--es-opt %.*s: unknown option (the options are listed by tailjet run "
                     "--help)",
                     (int)n, opts[i]);
            return TJ_EINVAL;
        }
        if (opt_set(t, eo, eq + 1, err, errlen))
            return TJ_EINVAL;
    }
    return 0;
}

/* Reads the first line of a secret's file. Returns it (owned) or NULL with err filled. */
static char *read_secret(const char *opt, const char *path, char *err, size_t errlen)
{
    char buf[PASSWORD_MAX + 2], *copy = NULL;
    FILE *f = fopen(path, "re");
    size_t n;

    if (!f) {
        snprintf(err, errlen, "--es-opt %s=%s: %s", opt, path, strerror(errno));
        return NULL;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (!buf[0] || n > PASSWORD_MAX)
        snprintf(err, errlen, "--es-opt %s=%s: %s", opt, path,
                 buf[0] ? "longer than 4096 bytes" : "its first line is empty");
    else if (!(copy = strdup(buf)))
        snprintf(err, errlen, "out of memory");
    explicit_bzero(buf, sizeof(buf));
    return copy;
}

static char *base64(const char *s)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s), k = 0;
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    const unsigned char *p = (const unsigned char *)s;

    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        out[k++] = b64[v >> 18];
        out[k++] = b64[(v >> 12) & 63];
        out[k++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[k++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[k] = '\0';
    return out;
}

/* Fills the hosts from the URI; *index gets the URI's /INDEX (pointing into uri) or NULL. */
static int parse_uri(struct out_es *o, const char *uri, const char *pipeline, const char **index,
                     char *err, size_t errlen)
{
    static const char usage[] = "use elasticsearch://HOST:PORT[,HOST:PORT...][/INDEX] (or http:// "
                                "or https://)";
    const char *scheme = "http", *p, *slash;
    char *qpipe = NULL;

    if (strncmp(uri, "elasticsearch://", 16) == 0)
        p = uri + 16;
    else if (strncmp(uri, "http://", 7) == 0)
        p = uri + 7;
    else if (strncmp(uri, "https://", 8) == 0)
        p = uri + 8, scheme = "https";
    else
        goto bad;
    slash = strchr(p, '/');
    *index = slash && slash[1] ? slash + 1 : NULL;
    if (!slash)
        slash = p + strlen(p);
    if (slash == p)
        goto bad;
    if (memchr(p, '@', (size_t)(slash - p))) {
        snprintf(err, errlen,
                 "output '%s': credentials do not go in the URI (every user sees it in ps): use "
                 "--es-opt auth.user=NAME with TAILJET_ES_PASSWORD or auth.password_file",
                 uri);
        return TJ_EINVAL;
    }
    if (pipeline) {
        CURL *h = curl_easy_init();
        qpipe = h ? curl_easy_escape(h, pipeline, 0) : NULL;
        curl_easy_cleanup(h);
        if (!qpipe) {
            snprintf(err, errlen, "out of memory");
            return TJ_ENOMEM;
        }
    }
    while (p < slash) {
        const char *comma = memchr(p, ',', (size_t)(slash - p));
        const char *e = comma ? comma : slash;
        size_t n = (size_t)(e - p);
        const char *colon = memrchr(p, ':', n), *rb = memrchr(p, ']', n);
        bool port = colon && (!rb || colon > rb);
        struct host *h = &o->hosts[o->nhosts];
        char url[600];
        if (n == 0 || n > 500 || o->nhosts == MAX_HOSTS || memchr(p, ' ', n) || memchr(p, '?', n) ||
            memchr(p, '#', n)) {
            curl_free(qpipe);
            goto bad;
        }
        snprintf(url, sizeof(url), "%s://%.*s%s", scheme, (int)n, p, port ? "" : ":9200");
        h->url = strdup(url);
        if (h->url &&
            asprintf(&h->bulk_url, "%s/_bulk?filter_path=errors,items.*.status,items.*.error%s%s",
                     url, qpipe ? "&pipeline=" : "", qpipe ? qpipe : "") < 0)
            h->bulk_url = NULL;
        o->nhosts++;
        if (!h->url || !h->bulk_url) {
            curl_free(qpipe);
            snprintf(err, errlen, "out of memory");
            return TJ_ENOMEM;
        }
        p = comma ? comma + 1 : slash;
        if (comma && p == slash) {
            curl_free(qpipe);
            goto bad;
        }
    }
    curl_free(qpipe);
    return 0;
bad:
    snprintf(err, errlen, "output '%s': %s", uri, usage);
    return TJ_EINVAL;
}

/* Checks that the dead-letter file can be written, without making it (its directory may be the
 * state directory, made later by the engine). */
static int check_dl_path(const char *path, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');

    if (access(path, F_OK) == 0) {
        if (access(path, W_OK) == 0)
            return 0;
        snprintf(err, errlen, "dead-letter file %s: %s (set --es-opt dead_letter_file=PATH)", path,
                 strerror(errno));
        return TJ_EINVAL;
    }
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    if (!dir[0])
        snprintf(dir, sizeof(dir), "/");
    if (access(dir, F_OK) != 0 || access(dir, W_OK) == 0)
        return 0; /* missing: the state directory, made later; else writable */
    snprintf(err, errlen,
             "dead-letter file %s: cannot write in %s: %s (set --es-opt "
             "dead_letter_file=PATH)",
             path, dir, strerror(errno));
    return TJ_EINVAL;
}

/* Reads template_file: a JSON object of at most TEMPLATE_MAX bytes. Returns 0 or TJ_EINVAL. */
static int read_template(struct out_es *o, const struct tj_es_opts *eo, char *err, size_t errlen)
{
    FILE *f = fopen(eo->template_file, "rb");
    size_t n = 0;
    cJSON *j;
    char *buf;

    if (!f) {
        snprintf(err, errlen, "elasticsearch: template_file %s: %s", eo->template_file,
                 strerror(errno));
        return TJ_EINVAL;
    }
    if (!(buf = malloc(TEMPLATE_MAX + 1))) {
        fclose(f);
        snprintf(err, errlen, "out of memory");
        return TJ_ENOMEM;
    }
    n = fread(buf, 1, TEMPLATE_MAX + 1, f);
    fclose(f);
    buf[n <= TEMPLATE_MAX ? n : TEMPLATE_MAX] = '\0';
    j = n <= TEMPLATE_MAX ? cJSON_ParseWithLength(buf, n) : NULL;
    if (!cJSON_IsObject(j) || !cJSON_GetObjectItemCaseSensitive(j, "index_patterns")) {
        snprintf(err, errlen,
                 "elasticsearch: template_file %s is not an index template (a JSON object with "
                 "index_patterns, of at most %u bytes)",
                 eo->template_file, TEMPLATE_MAX);
        cJSON_Delete(j);
        free(buf);
        return TJ_EINVAL;
    }
    cJSON_Delete(j);
    if (!eo->template_name[0] || strpbrk(eo->template_name, "/?#%&\"\\ *,") ||
        strlen(eo->template_name) > 255) {
        snprintf(err, errlen, "elasticsearch: template_name '%s' is not a template name",
                 eo->template_name);
        free(buf);
        return TJ_EINVAL;
    }
    o->tpl_body = buf;
    if (!(o->tpl_path = strdup(eo->template_file)) || !(o->tpl_name = strdup(eo->template_name))) {
        snprintf(err, errlen, "out of memory");
        return TJ_ENOMEM;
    }
    return 0;
}

/* The settings that only need the options and the URI. */
int tj_es_opts_apply(struct out_es *o, const char *uri, const struct tj_es_opts *eo, char *err,
                     size_t errlen)
{
    const char *uindex = NULL, *tpl;
    const char *env_pw = getenv("TAILJET_ES_PASSWORD"), *env_key = getenv("TAILJET_ES_API_KEY");
    char *key = NULL;
    bool https = false;
    int rc;

    if ((rc = parse_uri(o, uri, eo->pipeline, &uindex, err, errlen)))
        return rc;
    for (size_t i = 0; i < o->nhosts; i++)
        https |= strncmp(o->hosts[i].url, "https:", 6) == 0;
    if (uindex && eo->index) {
        snprintf(err, errlen,
                 "output '%s': give the index in the URI or as --es-opt index=, not "
                 "both",
                 uri);
        return TJ_EINVAL;
    }
    tpl = uindex            ? uindex
          : eo->index       ? eo->index
          : eo->data_stream ? "logs-%{service}-default"
                            : "logs-%{service}-%Y.%m.%d";
    if (tj_es_template_check(tpl, strlen(tpl), err, errlen))
        return TJ_EINVAL;
    if (eo->max_docs == 0 || eo->concurrency == 0 || eo->concurrency > 64 || eo->max_bytes < 1024 ||
        eo->timeout_ms == 0 || eo->backoff_ms == 0 || eo->backoff_max_ms < eo->backoff_ms) {
        snprintf(err, errlen,
                 "--es-opt: batch.max_events must be at least 1, request.concurrency 1 to 64, "
                 "batch.max_bytes at least 1KiB, request.timeout and retry.initial_backoff more "
                 "than 0, retry.max_backoff at least retry.initial_backoff");
        return TJ_EINVAL;
    }
    if (!eo->dead_letter_file) {
        snprintf(err, errlen,
                 "--es-opt dead_letter_file=PATH is needed (tailjet run sets "
                 "STATE-DIR/es-dead-letters.ndjson)");
        return TJ_EINVAL;
    }
    if ((rc = check_dl_path(eo->dead_letter_file, err, errlen)))
        return rc;
    if (eo->ca_file && !https) {
        snprintf(err, errlen, "--es-opt tls.ca_file is given but no host of '%s' is https://", uri);
        return TJ_EINVAL;
    }
    if (eo->ca_file && access(eo->ca_file, R_OK) != 0) {
        snprintf(err, errlen, "--es-opt tls.ca_file=%s: %s", eo->ca_file, strerror(errno));
        return TJ_EINVAL;
    }
    if ((env_pw && *env_pw && eo->password_file) || (env_key && *env_key && eo->api_key_file)) {
        snprintf(err, errlen,
                 "elasticsearch: a secret is given twice, in %s and in a file: give "
                 "one",
                 eo->password_file ? "TAILJET_ES_PASSWORD" : "TAILJET_ES_API_KEY");
        return TJ_EINVAL;
    }
    if (eo->password_file &&
        !(o->password = read_secret("auth.password_file", eo->password_file, err, errlen)))
        return TJ_EINVAL;
    if (!o->password && env_pw && *env_pw && !(o->password = strdup(env_pw)))
        goto nomem;
    if (eo->api_key_file &&
        !(key = read_secret("auth.api_key_file", eo->api_key_file, err, errlen)))
        return TJ_EINVAL;
    if (!key && env_key && *env_key && !(key = strdup(env_key)))
        goto nomem;
    if (o->password && !eo->user) {
        free(key);
        snprintf(err, errlen,
                 "elasticsearch: a password is given but no user: set --es-opt "
                 "auth.user=NAME (or TAILJET_ES_USER)");
        return TJ_EINVAL;
    }
    if (eo->user && !o->password) {
        free(key);
        snprintf(err, errlen,
                 "elasticsearch: auth.user is set but no password: set "
                 "TAILJET_ES_PASSWORD or --es-opt auth.password_file=PATH");
        return TJ_EINVAL;
    }
    if (eo->user && key) {
        free(key);
        snprintf(err, errlen,
                 "elasticsearch: give basic authentication (auth.user) or an API "
                 "key, not both");
        return TJ_EINVAL;
    }
    if (key) {
        char *enc = strchr(key, ':') ? base64(key) : strdup(key);
        explicit_bzero(key, strlen(key));
        free(key);
        if (!enc || asprintf(&o->api_key_header, "Authorization: ApiKey %s", enc) < 0)
            o->api_key_header = NULL;
        if (enc)
            explicit_bzero(enc, strlen(enc));
        free(enc);
        if (!o->api_key_header)
            goto nomem;
    }
    if (!(o->index = strdup(tpl)) || !(o->dl_path = strdup(eo->dead_letter_file)) ||
        (eo->user && !(o->user = strdup(eo->user))) ||
        (eo->ca_file && !(o->ca_file = strdup(eo->ca_file))))
        goto nomem;
    o->create = eo->data_stream;
    o->ids = strcmp(eo->id, "hash") == 0;
    o->gzip = strcmp(eo->compression, "gzip") == 0;
    o->verify = eo->verify;
    if (eo->template_file && (rc = read_template(o, eo, err, errlen)))
        return rc;
    o->tpl_done = !o->tpl_body;
    o->max_bytes = o->eff_max_bytes = eo->max_bytes;
    o->regrow_ms = eo->regrow_ms;
    o->max_docs = eo->max_docs;
    o->concurrency = eo->concurrency;
    o->timeout_ms = eo->timeout_ms;
    o->backoff_ms = eo->backoff_ms;
    o->backoff_max_ms = eo->backoff_max_ms;
    o->buffer_max = eo->buffer_max;
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    return TJ_ENOMEM;
}
