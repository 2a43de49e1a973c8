/* tj_buf.c: capped growable buffers. No thread affinity: a buffer belongs to its owner. */
#include "tj_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void tj_buf_init(struct tj_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->slack = 0;
}

void tj_buf_fini(struct tj_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

int tj_buf_grow(struct tj_buf *b, size_t extra)
{
    size_t need, ncap;
    char *p;

    if (extra > b->max || b->len > b->max - extra)
        return TJ_ENOSPC;
    need = b->len + extra;
    if (need <= b->cap)
        return 0;
    ncap = b->cap ? b->cap : 256 < b->max ? 256 : b->max;
    while (ncap < need)
        ncap = ncap > b->max / 2 ? b->max : ncap * 2;
    p = realloc(b->data, ncap);
    if (!p)
        return TJ_ENOMEM;
    b->data = p;
    b->cap = ncap;
    return 0;
}

int tj_buf_printf(struct tj_buf *b, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n <= 0)
        return 0;
    return tj_buf_append(b, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

void tj_buf_prom_head(struct tj_buf *b, const char *name, const char *type, const char *help)
{
    tj_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void tj_buf_prom_label(struct tj_buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            tj_buf_append(b, "\\", 1);
        if (*v == '\n')
            tj_buf_append(b, "\\n", 2);
        else
            tj_buf_append(b, v, 1);
    }
}
