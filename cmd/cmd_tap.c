/* cmd_tap.c: `tailjet tap`: prints the records a running tailjet ships, live, as NDJSON (GET
 * /v1/tap on its metrics address, libcurl). Main thread only; SIGINT/SIGTERM end it at once. */
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tj_buf.h"
#include "tj_cmd.h"

struct tap_cfg {
    const char *addr;
    const char *token_file;
    const char *ca_file;
    struct tj_strv services;
    const char *container;
    bool failures;
    unsigned limit;
    unsigned rate;
    bool help;
};

static const struct tj_opt tap_opts[] = {
    {"addr", TJ_OPT_STRING, offsetof(struct tap_cfg, addr), "127.0.0.1:9284", NULL, "HOST:PORT",
     "the tailjet to tap: its --metrics-addr (https:// with --ca-file, or a URL)", NULL},
    {"token-file", TJ_OPT_STRING, offsetof(struct tap_cfg, token_file), NULL, NULL, "FILE",
     "the token of that tailjet's --label-token-file (sent as Authorization: Bearer)", NULL},
    {"ca-file", TJ_OPT_STRING, offsetof(struct tap_cfg, ca_file), NULL, NULL, "FILE",
     "connect with HTTPS, trusting the CA certificates in FILE (a tailjet run with --tls-cert)",
     NULL},
    {"service", TJ_OPT_STRINGS, offsetof(struct tap_cfg, services), NULL, NULL, "NAME",
     "only this service's records (the service label of /metrics; repeatable)", NULL},
    {"container", TJ_OPT_STRING, offsetof(struct tap_cfg, container), NULL, NULL, "NAME|ID",
     "only the records of this container (its name, or its id or an id prefix)", NULL},
    {"failures", TJ_OPT_FLAG, offsetof(struct tap_cfg, failures), NULL, NULL, NULL,
     "only records that failed: tagged _grokparsefailure, _groktimeout, _jsonparsefailure, "
     "_truncated, _dateparsefailure, _patternerror or _labelsmissing (any tag tailjet adds)",
     NULL},
    {"limit", TJ_OPT_UINT, offsetof(struct tap_cfg, limit), "0", NULL, "N",
     "exit after N records (0: run until Ctrl-C)", NULL},
    {"rate", TJ_OPT_UINT, offsetof(struct tap_cfg, rate), "0", NULL, "N",
     "print at most N records a second; the rest are counted and the count said on stderr (0: "
     "all)",
     NULL},
    TJ_CMD_OPT_HELP(struct tap_cfg, help),
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    TJ_UNUSED(sig);
    stop_flag = 1;
}

struct tap_run {
    const struct tap_cfg *cfg;
    CURL *curl;
    struct tj_buf line; /* a record not complete yet */
    unsigned long long printed, skipped, skipped_window, dropped;
    time_t window;
    unsigned in_window;
    bool done;
    long http_status;
    struct tj_buf error_body; /* the body of a refusal */
};

static void say_skipped(struct tap_run *r)
{
    if (r->skipped_window)
        fprintf(stderr, "tailjet tap: --rate %u: %llu records not printed in the last second\n",
                r->cfg->rate, r->skipped_window);
    r->skipped_window = 0;
}

static void one_line(struct tap_run *r, const char *p, size_t n)
{
    time_t now;

    if (n == 0 || r->done)
        return; /* a heartbeat */
    if (n > 8 && memcmp(p, "{\"tap\":", 7) == 0) {
        const char *d = strstr(p, "\"dropped\":"); /* p is NUL-terminated by the caller */
        unsigned long long k = d ? strtoull(d + 10, NULL, 10) : 0;
        r->dropped += k;
        fprintf(stderr,
                "tailjet tap: tailjet dropped %llu records for this tap (it read slower than "
                "records came; shipping never waits for a tap)\n",
                k);
        return;
    }
    if (r->cfg->rate) {
        now = time(NULL);
        if (now != r->window) {
            say_skipped(r);
            r->window = now;
            r->in_window = 0;
        }
        if (r->in_window >= r->cfg->rate) {
            r->skipped++;
            r->skipped_window++;
            return;
        }
        r->in_window++;
    }
    fwrite(p, 1, n, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    r->printed++;
    if (r->cfg->limit && r->printed >= r->cfg->limit)
        r->done = true;
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
    struct tap_run *r = arg;
    size_t n = size * nmemb;

    if (r->http_status == 0)
        curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &r->http_status);
    if (r->http_status != 200) {
        tj_buf_append(&r->error_body, data, n);
        return n;
    }
    for (size_t i = 0; i < n && !r->done; i++) {
        if (data[i] != '\n') {
            if (tj_buf_append(&r->line, data + i, 1))
                r->line.len = 0; /* a record past the cap: lost */
            continue;
        }
        if (tj_buf_append(&r->line, "", 1) == 0) {
            one_line(r, r->line.data, r->line.len - 1);
        }
        r->line.len = 0;
    }
    return r->done || stop_flag ? 0 : n; /* 0: curl stops the transfer */
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    struct tap_run *r = arg;

    TJ_UNUSED(a);
    TJ_UNUSED(b);
    TJ_UNUSED(c);
    TJ_UNUSED(d);
    if (r->cfg->rate && time(NULL) != r->window)
        say_skipped(r);
    return stop_flag || r->done;
}

/* Reads the token file's first line. Returns it (owned) or NULL with a message printed. */
static char *read_token(const char *path)
{
    char *token;
    int rc = tj_cmd_read_token(path, &token);

    if (rc == TJ_EIO)
        fprintf(stderr, "tailjet tap: --token-file %s: %s\n", path, strerror(errno));
    else if (rc)
        fprintf(stderr, "tailjet tap: --token-file %s: empty\n", path);
    return token;
}

/* Builds the URL of the tap. Returns 0 or 2 (usage error, printed). */
static int build_url(CURL *c, const struct tap_cfg *cfg, char *url, size_t n)
{
    const char *scheme = strstr(cfg->addr, "://") ? "" : cfg->ca_file ? "https://" : "http://";
    size_t len =
        (size_t)snprintf(url, n, "%s%s/v1/tap?failures=%d", scheme, cfg->addr, cfg->failures);

    for (size_t i = 0; i < cfg->services.n; i++) {
        char *e = curl_easy_escape(c, cfg->services.v[i], 0);
        if (!e)
            return 2;
        len += (size_t)snprintf(url + len, len < n ? n - len : 0, "%s%s", i ? "," : "&service=", e);
        curl_free(e);
    }
    if (cfg->container) {
        char *e = curl_easy_escape(c, cfg->container, 0);
        if (!e)
            return 2;
        len += (size_t)snprintf(url + len, len < n ? n - len : 0, "&container=%s", e);
        curl_free(e);
    }
    if (len >= n) {
        fprintf(stderr, "tailjet tap: the address and filters are too long\n");
        return 2;
    }
    return 0;
}

static int tap_main(int argc, char **argv)
{
    struct tap_cfg cfg = {0};
    struct tj_strv rest = {0};
    struct tap_run r = {0};
    struct curl_slist *hdrs = NULL;
    char url[4096], auth[1100], cerr[CURL_ERROR_SIZE] = "";
    char *token = NULL;
    CURL *c = NULL;
    CURLcode rc;
    int status = 2;

    tj_buf_init(&r.line, (size_t)80 << 20);
    tj_buf_init(&r.error_body, 64 * 1024);
    if (tj_cmd_start(&tj_cmd_tap, argc, argv, &cfg, &cfg.help, &rest, &status))
        goto out;
    if (rest.n) {
        fprintf(stderr, "tailjet tap: unexpected argument '%s'\n", rest.v[0]);
        goto out;
    }
    if (cfg.token_file && !(token = read_token(cfg.token_file)))
        goto out;
    r.cfg = &cfg;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) || !(c = curl_easy_init())) {
        fprintf(stderr, "tailjet tap: cannot start libcurl\n");
        status = 1;
        goto out;
    }
    if ((status = build_url(c, &cfg, url, sizeof(url))))
        goto out;
    if (token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        hdrs = curl_slist_append(hdrs, auth);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (cfg.ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, cfg.ca_file);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    r.curl = c;
    rc = curl_easy_perform(c);
    say_skipped(&r);
    if (r.http_status != 200 && r.http_status > 0) {
        fprintf(stderr, "tailjet tap: %s answered HTTP %ld: %.*s", url, r.http_status,
                (int)r.error_body.len, r.error_body.data ? r.error_body.data : "");
        if (!r.error_body.len || r.error_body.data[r.error_body.len - 1] != '\n')
            fputc('\n', stderr);
        status = 1;
    } else if (r.done || stop_flag) {
        status = 0;
    } else if (rc != CURLE_OK) {
        fprintf(stderr,
                "tailjet tap: %s: %s (is tailjet run listening there? see its --metrics-addr)\n",
                url, cerr[0] ? cerr : curl_easy_strerror(rc));
        status = 1;
    } else {
        fprintf(stderr, "tailjet tap: %s ended the stream (tailjet stopped)\n", url);
        status = 1;
    }
    if (r.skipped)
        fprintf(stderr, "tailjet tap: %llu records printed, %llu not printed (--rate %u)\n",
                r.printed, r.skipped, cfg.rate);
out:
    curl_slist_free_all(hdrs);
    if (c)
        curl_easy_cleanup(c);
    free(token);
    tj_buf_fini(&r.line);
    tj_buf_fini(&r.error_body);
    tj_strv_fini(&rest);
    tj_strv_fini(&cfg.services);
    return status;
}

const struct tj_cmd tj_cmd_tap = {
    "tap",
    "[--addr HOST:PORT] [--service NAME]... [--container NAME|ID] [--failures] [--limit N]",
    "Print the records a running tailjet ships, live, as NDJSON (encoded records, before the "
    "output acknowledges them).",
    tap_opts,
    TJ_ARRAY_LEN(tap_opts),
    tap_main,
    NULL};
