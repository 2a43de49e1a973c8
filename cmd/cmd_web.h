/* cmd_web.h: what `tailjet run` serves besides /metrics, /health and the label table: the taps
 * (GET /v1/tap, streamed NDJSON), the page (/ui/), its data (GET /v1/ui/services) and the
 * workbench (POST /v1/workbench). All of it is guarded by the label-table token when one is set.
 * Runs on the HTTP server's connection threads. */
#ifndef CMD_WEB_H
#define CMD_WEB_H

#include "tj_engine.h"
#include "tj_http.h"
#include "tj_tap.h"

#define TJ_WEB_MAX_WORKBENCH 2    /* workbench requests run at once, at most */
#define TJ_WEB_CPU_BUDGET_MS 2000 /* CPU time of one workbench request, at most */

struct tj_web {
    struct tj_engine *e;           /* borrowed */
    struct tj_tap_hub *hub;        /* borrowed */
    const struct tj_grok_lib *lib; /* borrowed; read only (the library and --patterns-dir) */
    const char *token;             /* the label-table token, or NULL */
    const char *host_name;         /* or NULL */
    struct tj_match_limits limits;
    unsigned running; /* atomic: workbench requests running */
};

/* Answers path when it is one of the web's; returns false (nothing touched) otherwise. */
bool tj_web_render(struct tj_web *w, struct tj_http_req *req, const char *path, struct tj_buf *body,
                   int *status, const char **ctype);

#endif
