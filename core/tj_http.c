/* tj_http.c: the HTTP endpoint on libmicrohttpd, one thread per connection (at most
 * MAX_CONNECTIONS), so that the label table's long polls and the scrapes never wait for each
 * other. Only GET and HEAD are answered. */
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

struct tj_http_req {
    struct MHD_Connection *c;
};

const char *tj_http_query(const struct tj_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, name);
}

const char *tj_http_header(const struct tj_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, name);
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct tj_http *h = cls;
    struct tj_http_req req = {c};
    struct MHD_Response *r;
    struct tj_buf body;
    const char *ctype = "text/plain; charset=utf-8";
    int status = 404;
    enum MHD_Result rc;

    TJ_UNUSED(version);
    TJ_UNUSED(upload_data);
    TJ_UNUSED(upload_data_size);
    TJ_UNUSED(con_cls);
    tj_buf_init(&body, MAX_BODY);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        status = 405;
        tj_buf_append(&body, "only GET\n", 9);
    } else {
        h->fn(h->arg, &req, url, &body, &status, &ctype);
    }
    r = MHD_create_response_from_buffer(body.len, body.data ? body.data : (char *)"",
                                        MHD_RESPMEM_MUST_COPY);
    tj_buf_fini(&body);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
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
        h->d = MHD_start_daemon(flags, ntohs(sa.sin_port), NULL, NULL, on_request, h,
                                MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_CONNECTION_TIMEOUT, 120u,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
                                MHD_OPTION_HTTPS_MEM_CERT, h->cert, MHD_OPTION_HTTPS_MEM_KEY,
                                h->key, MHD_OPTION_END);
    else
        h->d = MHD_start_daemon(flags, ntohs(sa.sin_port), NULL, NULL, on_request, h,
                                MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_CONNECTION_TIMEOUT, 120u,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
                                MHD_OPTION_END);
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
