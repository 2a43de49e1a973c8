/* tj_http.c: the HTTP endpoint on libmicrohttpd, one thread per connection (at most
 * MAX_CONNECTIONS), so that the label table's long polls, the taps' streams and the scrapes never
 * wait for each other. GET and HEAD are answered, and POST with a body of 512 KiB at most. */
#include "tj_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONNECTIONS 256
#define MAX_BODY        ((size_t)64 << 20)

struct tj_http {
    struct MHD_Daemon *d;
    tj_http_render_fn fn;
    void *arg;
    char *cert, *key; /* PEM texts, kept while the daemon runs */
};

#define MAX_POST    ((size_t)512 << 10)
#define MAX_HEADERS 4

struct tj_http_req {
    struct MHD_Connection *c;
    const char *method;
    const char *body; /* POST body, NUL-terminated, or NULL */
    size_t body_len;
    tj_http_stream_fn stream;
    tj_http_stream_free_fn stream_free;
    void *stream_arg;
    char hdr[MAX_HEADERS][2][512];
    int nhdr;
};

/* A POST body being received (con_cls). */
struct upload {
    struct tj_buf body;
    bool too_big;
};

const char *tj_http_query(const struct tj_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, name);
}

const char *tj_http_header(const struct tj_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, name);
}

const char *tj_http_cookie(const struct tj_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->c, MHD_COOKIE_KIND, name);
}

const char *tj_http_method(const struct tj_http_req *r)
{
    return r->method;
}

const char *tj_http_body(const struct tj_http_req *r, size_t *len)
{
    *len = r->body_len;
    return r->body;
}

void tj_http_stream(struct tj_http_req *r, tj_http_stream_fn fn, tj_http_stream_free_fn free_fn,
                    void *arg)
{
    r->stream = fn;
    r->stream_free = free_fn;
    r->stream_arg = arg;
}

void tj_http_add_header(struct tj_http_req *r, const char *name, const char *value)
{
    if (r->nhdr == MAX_HEADERS)
        return;
    snprintf(r->hdr[r->nhdr][0], sizeof(r->hdr[0][0]), "%s", name);
    snprintf(r->hdr[r->nhdr][1], sizeof(r->hdr[0][1]), "%s", value);
    r->nhdr++;
}

const char *tj_http_peer(const struct tj_http_req *r, char *buf, size_t n)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;

    snprintf(buf, n, "?");
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
                  (socklen_t)n);
    return buf;
}

struct stream_ctx {
    tj_http_stream_fn fn;
    tj_http_stream_free_fn free_fn;
    void *arg;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream_ctx *s = cls;
    long n;

    TJ_UNUSED(pos);
    n = s->fn(s->arg, buf, max);
    return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : (ssize_t)n;
}

static void stream_free(void *cls)
{
    struct stream_ctx *s = cls;

    if (s->free_fn)
        s->free_fn(s->arg);
    free(s);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct upload *u = *con_cls;

    TJ_UNUSED(cls);
    TJ_UNUSED(c);
    TJ_UNUSED(toe);
    if (u) {
        tj_buf_fini(&u->body);
        free(u);
        *con_cls = NULL;
    }
}

/* Receives a POST body into *con_cls. Returns true once it is all there. */
static bool receive(void **con_cls, const char *data, size_t *size, bool *ok)
{
    struct upload *u = *con_cls;

    *ok = true;
    if (!u) {
        if (!(u = calloc(1, sizeof(*u)))) {
            *ok = false;
            return false;
        }
        tj_buf_init(&u->body, MAX_POST + 1);
        *con_cls = u;
        return false;
    }
    if (*size) {
        if (u->too_big || tj_buf_append(&u->body, data, *size))
            u->too_big = true;
        *size = 0;
        return false;
    }
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct tj_http *h = cls;
    struct tj_http_req req = {c, method, NULL, 0, NULL, NULL, NULL, {{""}}, 0};
    struct MHD_Response *r;
    struct tj_buf body;
    const char *ctype = "text/plain; charset=utf-8";
    int status = 404;
    enum MHD_Result rc;
    bool post = strcmp(method, "POST") == 0, ok;

    TJ_UNUSED(version);
    if (post && !receive(con_cls, upload_data, upload_data_size, &ok))
        return ok ? MHD_YES : MHD_NO;
    tj_buf_init(&body, MAX_BODY);
    if (!post && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        status = 405;
        tj_buf_append(&body, "only GET and POST\n", 18);
    } else if (post && ((struct upload *)*con_cls)->too_big) {
        status = 413;
        tj_buf_append(&body, "request body too large (512 KiB at most)\n", 41);
    } else {
        if (post) {
            struct upload *u = *con_cls;
            tj_buf_append(&u->body, "", 1); /* NUL-terminated for the render function */
            req.body = u->body.data ? u->body.data : "";
            req.body_len = u->body.len ? u->body.len - 1 : 0;
        }
        h->fn(h->arg, &req, url, &body, &status, &ctype);
    }
    if (req.stream) {
        struct stream_ctx *s = malloc(sizeof(*s));
        tj_buf_fini(&body);
        if (!s) {
            if (req.stream_free)
                req.stream_free(req.stream_arg);
            return MHD_NO;
        }
        *s = (struct stream_ctx){req.stream, req.stream_free, req.stream_arg};
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, s,
                                              stream_free);
        if (!r) {
            stream_free(s);
            return MHD_NO;
        }
    } else {
        r = MHD_create_response_from_buffer(body.len, body.data ? body.data : (char *)"",
                                            MHD_RESPMEM_MUST_COPY);
        tj_buf_fini(&body);
        if (!r)
            return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    for (int i = 0; i < req.nhdr; i++)
        MHD_add_response_header(r, req.hdr[i][0], req.hdr[i][1]);
    rc = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

/* Reads a whole (small) file into a string. Returns it or NULL with err filled. */
static char *slurp(const char *what, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    char *text = NULL;
    size_t cap = 0;
    ssize_t n;

    if (!f) {
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return NULL;
    }
    n = getdelim(&text, &cap, '\0', f);
    fclose(f);
    if (n <= 0) {
        snprintf(err, errlen, "%s %s: empty or unreadable", what, path);
        free(text);
        return NULL;
    }
    return text;
}

static int parse_addr(const char *addr, struct sockaddr_in *sa, char *err, size_t errlen)
{
    const char *colon = strrchr(addr, ':');
    char host[64];
    long port;

    if (!colon || (size_t)(colon - addr) >= sizeof(host) ||
        (port = strtol(colon + 1, NULL, 10)) <= 0 || port > 65535) {
        snprintf(err, errlen, "--metrics-addr %s: use HOST:PORT (127.0.0.1:9284)", addr);
        return TJ_EINVAL;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (!host[0]) {
        sa->sin_addr.s_addr = htonl(INADDR_ANY);
    } else if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
        snprintf(err, errlen, "--metrics-addr %s: '%s' is not an IPv4 address", addr, host);
        return TJ_EINVAL;
    }
    return 0;
}

static void http_free(struct tj_http *h)
{
    free(h->cert);
    free(h->key);
    free(h);
}

struct tj_http *tj_http_start(const char *addr, const struct tj_http_tls *tls, tj_http_render_fn fn,
                              void *arg, bool *bad_addr, char *err, size_t errlen)
{
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD;
    struct sockaddr_in sa;
    struct tj_http *h;

    *bad_addr = false;
    if (parse_addr(addr, &sa, err, errlen)) {
        *bad_addr = true;
        return NULL;
    }
    if (!(h = calloc(1, sizeof(*h)))) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->fn = fn;
    h->arg = arg;
    if (tls && (tls->cert_file || tls->key_file)) {
        if (!tls->cert_file || !tls->key_file) {
            snprintf(err, errlen, "--tls-cert and --tls-key go together");
            *bad_addr = true;
            http_free(h);
            return NULL;
        }
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(err, errlen, "this libmicrohttpd was built without TLS");
            *bad_addr = true;
            http_free(h);
            return NULL;
        }
        if (!(h->cert = slurp("--tls-cert", tls->cert_file, err, errlen)) ||
            !(h->key = slurp("--tls-key", tls->key_file, err, errlen))) {
            *bad_addr = true;
            http_free(h);
            return NULL;
        }
        flags |= MHD_USE_TLS;
    }
    if (h->cert)
        h->d = MHD_start_daemon(
            flags, ntohs(sa.sin_port), NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, &sa,
            MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned)MAX_CONNECTIONS, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
            MHD_OPTION_HTTPS_MEM_CERT, h->cert, MHD_OPTION_HTTPS_MEM_KEY, h->key, MHD_OPTION_END);
    else
        h->d = MHD_start_daemon(flags, ntohs(sa.sin_port), NULL, NULL, on_request, h,
                                MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_CONNECTION_TIMEOUT, 120u,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
                                MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (!h->d) {
        snprintf(err, errlen,
                 "--metrics-addr %s: cannot listen (in use, or not an address of this host%s)",
                 addr, h->cert ? ", or the TLS certificate and key do not load" : "");
        http_free(h);
        return NULL;
    }
    return h;
}

void tj_http_stop(struct tj_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    http_free(h);
}
