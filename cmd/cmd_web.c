/* cmd_web.c: the taps, the /ui/ page and the workbench of `tailjet run` (see cmd_web.h). HTTP
 * connection threads only: nothing here runs on a shipping thread. */
#include "cmd_web.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tj_json.h"
#include "tj_workbench.h"

/* The page, embedded at build time from cmd/ui/index.html (cmake/embed.cmake). */
extern const unsigned char tj_ui_html[];
extern const size_t tj_ui_html_len;

#define COOKIE "tj_token"

/* Constant-time comparison of a presented token with ours. */
static bool same_token(const char *have, const char *want)
{
    size_t n = strlen(want), m = have ? strlen(have) : 0;
    unsigned char diff = 0;

    if (!have)
        return false;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(want[i] ^ (i < m ? have[i] : 0));
    return diff == 0 && m == n;
}

/* Whether the request carries the token: "Authorization: Bearer T", the page's cookie, or
 * "?token=T" (which, on the page, also sets the cookie). No token configured: always. */
static bool allowed(const struct tj_web *w, struct tj_http_req *req, bool set_cookie)
{
    const char *auth = tj_http_header(req, "Authorization");
    const char *q = tj_http_query(req, "token");

    if (!w->token)
        return true;
    if (auth && strncmp(auth, "Bearer ", 7) == 0 && same_token(auth + 7, w->token))
        return true;
    if (same_token(tj_http_cookie(req, COOKIE), w->token))
        return true;
    if (same_token(q, w->token)) {
        if (set_cookie) {
            char v[600];
            snprintf(v, sizeof(v), COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict", w->token);
            tj_http_add_header(req, "Set-Cookie", v);
        }
        return true;
    }
    return false;
}

static void refuse(struct tj_buf *body, int *status)
{
    static const char msg[] =
        "a token is required: this tailjet runs with --label-token-file; open /ui/?token=TOKEN "
        "once (a cookie keeps it), or send Authorization: Bearer TOKEN (tailjet tap "
        "--token-file)\n";
    tj_buf_append(body, msg, sizeof(msg) - 1);
    *status = 401;
}

static void json_error(struct tj_buf *body, int *status, int code, const char *msg,
                       const char **ctype)
{
    tj_buf_append(body, "{\"error\":", 9);
    tj_json_string(body, msg, strlen(msg));
    tj_buf_append(body, "}", 1);
    *status = code;
    *ctype = "application/json";
}

/* ---- /v1/tap ---- */

static long tap_read(void *arg, char *buf, size_t max)
{
    long n = tj_tap_read(arg, buf, max, 1000);

    if (n == 0) { /* a heartbeat: keeps proxies open and finds a gone client within a second */
        buf[0] = '\n';
        return 1;
    }
    return n;
}

static void tap_free(void *arg)
{
    tj_tap_close(arg);
}

static void serve_tap(struct tj_web *w, struct tj_http_req *req, struct tj_buf *body, int *status,
                      const char **ctype)
{
    struct tj_tap_filter f = {0};
    const char *svc = tj_http_query(req, "service"), *fail = tj_http_query(req, "failures");
    char names[1024];
    struct tj_tap *t;
    int rc;

    if (svc && *svc) { /* service=a,b */
        char *save = NULL;
        snprintf(names, sizeof(names), "%s", svc);
        for (char *s = strtok_r(names, ",", &save); s && f.nservice < TJ_TAP_MAX_SERVICES;
             s = strtok_r(NULL, ",", &save))
            f.service[f.nservice++] = s;
    }
    f.container = tj_http_query(req, "container");
    if (f.container && !*f.container)
        f.container = NULL;
    f.failures = fail && (strcmp(fail, "1") == 0 || strcmp(fail, "true") == 0);
    if (!(t = tj_tap_open(w->hub, &f, &rc))) {
        json_error(body, status, 503,
                   rc == TJ_EAGAIN ? "too many taps are open (8 at most): try again later"
                                   : "tailjet is stopping",
                   ctype);
        return;
    }
    tj_http_stream(req, tap_read, tap_free, t);
    *status = 200;
    *ctype = "application/x-ndjson";
}

/* ---- /v1/workbench ---- */

static int count_lines(const char *s, size_t n)
{
    int lines = n && s[n - 1] != '\n';

    for (const char *p = s; (p = memchr(p, '\n', n - (size_t)(p - s))); p++)
        lines++;
    return lines;
}

static void serve_workbench(struct tj_web *w, struct tj_http_req *req, struct tj_buf *body,
                            int *status, const char **ctype)
{
    size_t len;
    const char *text = tj_http_body(req, &len);
    cJSON *root = NULL, *pats, *ml, *lines, *defs, *ecs, *ts;
    const char *exprs[TJ_RULESET_MAX_ALTS];
    struct tj_workbench_req wr = {0};

    if (strcmp(tj_http_method(req), "POST") != 0) {
        json_error(body, status, 405, "POST a JSON object {\"patterns\":[...],\"lines\":\"...\"}",
                   ctype);
        return;
    }
    if (__atomic_add_fetch(&w->running, 1, __ATOMIC_ACQ_REL) > TJ_WEB_MAX_WORKBENCH) {
        json_error(body, status, 503, "the workbench is busy (2 requests at once): try again",
                   ctype);
        goto out;
    }
    if (!text || !(root = cJSON_ParseWithLength(text, len)) || !cJSON_IsObject(root)) {
        json_error(body, status, 400, "the body is not a JSON object", ctype);
        goto out;
    }
    pats = cJSON_GetObjectItemCaseSensitive(root, "patterns");
    ml = cJSON_GetObjectItemCaseSensitive(root, "multiline");
    lines = cJSON_GetObjectItemCaseSensitive(root, "lines");
    defs = cJSON_GetObjectItemCaseSensitive(root, "definitions");
    ecs = cJSON_GetObjectItemCaseSensitive(root, "ecs");
    ts = cJSON_GetObjectItemCaseSensitive(root, "timestamp");
    if (!cJSON_IsString(lines) || (pats && !cJSON_IsArray(pats))) {
        json_error(body, status, 400, "give \"lines\" (a string) and \"patterns\" (an array)",
                   ctype);
        goto out;
    }
    wr.text = lines->valuestring;
    wr.len = strlen(wr.text);
    if (wr.len > TJ_WORKBENCH_MAX_BYTES || count_lines(wr.text, wr.len) > TJ_WORKBENCH_MAX_LINES) {
        json_error(body, status, 413, "at most 1000 lines and 256 KiB of them", ctype);
        goto out;
    }
    for (cJSON *p = pats ? pats->child : NULL; p; p = p->next) {
        if (!cJSON_IsString(p) || wr.npatterns == TJ_RULESET_MAX_ALTS) {
            json_error(body, status, 400, "patterns: at most 16 strings", ctype);
            goto out;
        }
        if (*p->valuestring)
            exprs[wr.npatterns++] = p->valuestring;
    }
    wr.patterns = exprs;
    wr.multiline = cJSON_IsString(ml) && *ml->valuestring ? ml->valuestring : NULL;
    wr.host_name = w->host_name;
    wr.limits = w->limits;
    wr.cpu_budget_ms = TJ_WEB_CPU_BUDGET_MS;
    wr.definitions = cJSON_IsString(defs) && *defs->valuestring ? defs->valuestring : NULL;
    wr.timestamp = cJSON_IsString(ts) && *ts->valuestring ? ts->valuestring : NULL;
    if (ecs && (!cJSON_IsString(ecs) || tj_ecs_mode_parse(ecs->valuestring, &wr.ecs))) {
        json_error(body, status, 400, "ecs: \"v1\" or \"disabled\"", ctype);
        goto out;
    }
    if (tj_workbench_run(w->lib, &wr, body)) {
        body->len = 0;
        json_error(body, status, 500, "out of memory (the answer is capped at 64 MiB)", ctype);
        goto out;
    }
    *status = 200;
    *ctype = "application/json";
out:
    cJSON_Delete(root);
    __atomic_sub_fetch(&w->running, 1, __ATOMIC_ACQ_REL);
}

/* ---- the page and its data ---- */

static void serve_services(struct tj_web *w, struct tj_buf *body, int *status, const char **ctype)
{
    tj_buf_printf(body, "{\"host\":");
    if (w->host_name)
        tj_json_string(body, w->host_name, strlen(w->host_name));
    else
        tj_buf_append(body, "null", 4);
    tj_buf_printf(body, ",\"services\":");
    tj_engine_services_json(w->e, body);
    tj_buf_printf(body, ",\"failures\":");
    tj_tap_failures_json(w->hub, body);
    tj_buf_append(body, "}", 1);
    *status = 200;
    *ctype = "application/json";
}

bool tj_web_render(struct tj_web *w, struct tj_http_req *req, const char *path, struct tj_buf *body,
                   int *status, const char **ctype)
{
    bool page = strcmp(path, "/ui/") == 0 || strcmp(path, "/ui") == 0;

    if (!page && strcmp(path, "/v1/tap") != 0 && strcmp(path, "/v1/workbench") != 0 &&
        strcmp(path, "/v1/ui/services") != 0)
        return false;
    if (!allowed(w, req, page)) {
        refuse(body, status);
        return true;
    }
    if (page) {
        tj_buf_append(body, tj_ui_html, tj_ui_html_len);
        *status = 200;
        *ctype = "text/html; charset=utf-8";
        tj_http_add_header(req, "Content-Security-Policy",
                           "default-src 'self'; script-src 'unsafe-inline'; style-src "
                           "'unsafe-inline'; img-src data:");
        tj_http_add_header(req, "Cache-Control", "no-store");
    } else if (strcmp(path, "/v1/tap") == 0) {
        serve_tap(w, req, body, status, ctype);
    } else if (strcmp(path, "/v1/workbench") == 0) {
        serve_workbench(w, req, body, status, ctype);
    } else {
        serve_services(w, body, status, ctype);
    }
    return true;
}
