/* tj_http.c: the HTTP endpoint on libmicrohttpd's internal polling thread (one thread; requests
 * are served one at a time, which is plenty for scrapes and health checks). Only GET and HEAD
 * are answered. */
#include "tj_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tj_http {
    struct MHD_Daemon *d;
    tj_http_render_fn fn;
    void *arg;
    struct tj_buf body;
};

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct tj_http *h = cls;
    struct MHD_Response *r;
    const char *ctype = "text/plain; charset=utf-8";
    int status = 404;
    enum MHD_Result rc;

    TJ_UNUSED(version);
    TJ_UNUSED(upload_data);
    TJ_UNUSED(upload_data_size);
    TJ_UNUSED(con_cls);
    h->body.len = 0;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        status = 405;
        tj_buf_append(&h->body, "only GET\n", 9);
    } else {
        h->fn(h->arg, url, &h->body, &status, &ctype);
    }
    r = MHD_create_response_from_buffer(h->body.len, h->body.data ? h->body.data : (char *)"",
                                        MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    rc = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

struct tj_http *tj_http_start(const char *addr, tj_http_render_fn fn, void *arg, bool *bad_addr,
                              char *err, size_t errlen)
{
    const char *colon = strrchr(addr, ':');
    struct sockaddr_in sa = {0};
    struct tj_http *h;
    char host[64];
    long port;

    if (!colon || (size_t)(colon - addr) >= sizeof(host) ||
        (port = strtol(colon + 1, NULL, 10)) <= 0 || port > 65535) {
        snprintf(err, errlen, "--metrics-addr %s: use HOST:PORT (127.0.0.1:9284)", addr);
        *bad_addr = true;
        return NULL;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (!host[0])
        sa.sin_addr.s_addr = htonl(INADDR_ANY);
    else if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "--metrics-addr %s: '%s' is not an IPv4 address", addr, host);
        *bad_addr = true;
        return NULL;
    }
    if (!(h = calloc(1, sizeof(*h)))) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->fn = fn;
    h->arg = arg;
    tj_buf_init(&h->body, (size_t)64 << 20);
    h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL, on_request,
                            h, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                            MHD_OPTION_END);
    if (!h->d) {
        snprintf(err, errlen,
                 "--metrics-addr %s: cannot listen (in use, or not an address of "
                 "this host)",
                 addr);
        tj_buf_fini(&h->body);
        free(h);
        return NULL;
    }
    return h;
}

void tj_http_stop(struct tj_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    tj_buf_fini(&h->body);
    free(h);
}
