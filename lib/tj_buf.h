/* tj_buf.h: a growable byte buffer with a hard cap given at init (curl's dynbuf habit):
 * it never grows past `max`, so no runaway input can take the node's memory. */
#ifndef TJ_BUF_H
#define TJ_BUF_H

#include "tj_common.h"
#include <string.h>

struct tj_buf {
    char *data; /* owned; NULL until the first reserve */
    size_t len;
    size_t cap;
    size_t max;   /* hard cap on cap */
    size_t slack; /* every reserve also leaves this many bytes free past the request, so a
                     writer may then put up to `slack` small bytes without checking */
};

/* Embedded init; allocates nothing. */
void tj_buf_init(struct tj_buf *b, size_t max);
/* Frees the memory; the buffer may be re-initialised afterwards. */
void tj_buf_fini(struct tj_buf *b);

/* Makes room for `extra` more bytes past len. Returns 0, TJ_ENOSPC past the cap or
 * TJ_ENOMEM; on failure the buffer is unchanged. */
int tj_buf_grow(struct tj_buf *b, size_t extra);

static inline int tj_buf_reserve(struct tj_buf *b, size_t extra)
{
    if (TJ_LIKELY(b->cap - b->len >= extra + b->slack))
        return 0;
    return tj_buf_grow(b, extra + b->slack);
}

/* Appends printf-style text (metrics lines and the like), at most 1 KiB per call: longer text
 * is cut there. Returns 0 or the tj_buf_grow error (buffer unchanged then). */
int tj_buf_printf(struct tj_buf *b, const char *fmt, ...) TJ_PRINTF(2, 3);

/* Prometheus' text format: the "# HELP" and "# TYPE" lines of a family, and a label value with
 * its escapes (\\, \", \n). A buffer at its cap gets what fits (metrics are best effort). */
void tj_buf_prom_head(struct tj_buf *b, const char *name, const char *type, const char *help);
void tj_buf_prom_label(struct tj_buf *b, const char *v);

/* Appends n bytes. Returns 0 or the tj_buf_grow error (buffer unchanged then). */
static inline int tj_buf_append(struct tj_buf *b, const void *p, size_t n)
{
    int rc;

    if (!n)
        return 0; /* also when data is still NULL */
    rc = tj_buf_reserve(b, n);
    if (TJ_UNLIKELY(rc))
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

#endif
