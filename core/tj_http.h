/* tj_http.h: tailjet's small read-only HTTP endpoint (--metrics-addr) on libmicrohttpd: /metrics
 * and /health today. The server runs its own thread; each request asks the caller's render
 * function for the body. */
#ifndef TJ_HTTP_H
#define TJ_HTTP_H

#include "tj_buf.h"

/* Fills body for a GET of path; sets *status (200, 404, 503, ...) and *ctype (a static string).
 * Called on the server's thread, one request at a time. */
typedef void (*tj_http_render_fn)(void *arg, const char *path, struct tj_buf *body, int *status,
                                  const char **ctype);

struct tj_http;

/* Listens on addr ("127.0.0.1:9284", "0.0.0.0:9284", ":9284" for every interface). Returns the
 * server or NULL with err filled and *bad_addr true when addr is malformed (false: it could not
 * listen there, e.g. the port is taken). */
struct tj_http *tj_http_start(const char *addr, tj_http_render_fn fn, void *arg, bool *bad_addr,
                              char *err, size_t errlen);
void tj_http_stop(struct tj_http *h);

#endif
