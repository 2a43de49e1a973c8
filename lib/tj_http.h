/* tj_http.h: tailjet's small HTTP endpoint (--metrics-addr) on libmicrohttpd: /metrics, /health,
 * on Swarm managers the label table (/v1/services, which long-polls), the taps (/v1/tap, streamed),
 * the workbench (POST /v1/workbench) and the /ui/ page. Each
 * connection has its own thread, so a long poll never delays a scrape; each request asks the
 * caller's render function for its body. */
#ifndef TJ_HTTP_H
#define TJ_HTTP_H

#include "tj_buf.h"

/* One request, for the render function (valid during the call). */
struct tj_http_req;

/* The value of a query argument ("?version=..."), or NULL. */
const char *tj_http_query(const struct tj_http_req *r, const char *name);
/* The value of a request header, or NULL. */
const char *tj_http_header(const struct tj_http_req *r, const char *name);
/* The value of a cookie, or NULL. */
const char *tj_http_cookie(const struct tj_http_req *r, const char *name);
/* "GET", "HEAD" or "POST". */
const char *tj_http_method(const struct tj_http_req *r);
/* A POST's body (NUL-terminated, *len bytes before the NUL), or NULL. */
const char *tj_http_body(const struct tj_http_req *r, size_t *len);
/* Adds a response header (copied; at most 4 per response, each cut at 511 bytes). */
void tj_http_add_header(struct tj_http_req *r, const char *name, const char *value);

/* A streamed response: called on the connection's thread for more of the body as the client
 * takes it; returns the bytes put into buf[0..max) (it may wait a while for them; 0 is not
 * allowed), or -1 to end the response. */
typedef long (*tj_http_stream_fn)(void *arg, char *buf, size_t max);
typedef void (*tj_http_stream_free_fn)(void *arg);
/* Makes the response a stream (the body is then ignored): fn until it returns -1 or the client
 * goes, then free_fn(arg) once, whatever happened. */
void tj_http_stream(struct tj_http_req *r, tj_http_stream_fn fn, tj_http_stream_free_fn free_fn,
                    void *arg);

/* The client's address as text ("127.0.0.2"), in buf. */
const char *tj_http_peer(const struct tj_http_req *r, char *buf, size_t n);

/* Fills body for a GET of path; sets *status (200, 404, 503, ...) and *ctype (a static string).
 * Called on the connection's thread: several calls may run at once. */
typedef void (*tj_http_render_fn)(void *arg, struct tj_http_req *r, const char *path,
                                  struct tj_buf *body, int *status, const char **ctype);

struct tj_http_tls {
    const char *cert_file, *key_file; /* PEM files; both NULL: plain HTTP */
};

struct tj_http;

/* Listens on addr ("127.0.0.1:9284", "0.0.0.0:9284", ":9284" for every interface), with TLS when
 * tls names a certificate and key. Returns the server or NULL with err filled and *bad_addr
 * true when addr (or a TLS file) is unusable as given (false: it could not listen there, e.g.
 * the port is taken). */
struct tj_http *tj_http_start(const char *addr, const struct tj_http_tls *tls, tj_http_render_fn fn,
                              void *arg, bool *bad_addr, char *err, size_t errlen);
void tj_http_stop(struct tj_http *h);

#endif
