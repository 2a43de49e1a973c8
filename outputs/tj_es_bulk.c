/* tj_es_bulk.c: _bulk request pieces that need no network (see tj_es_bulk.h). Pure functions on
 * their arguments; any thread. */
#include "tj_es_bulk.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "tj_json.h"

#define STAGE_BYTES (64 * 1024) /* text gathered before a deflate call */
#define TS_SEARCH   4096        /* where "@timestamp" is looked for when it is not first */

/* ---- dates ---- */

static bool digits(const char *p, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        *v = *v * 10 + (p[i] - '0');
    }
    return true;
}

static void date_of(struct tj_es_date *d, const struct tm *tm)
{
    d->year = tm->tm_year + 1900;
    d->mon = tm->tm_mon + 1;
    d->day = tm->tm_mday;
    d->hour = tm->tm_hour;
}

/* Parses RFC 3339 text at p (up to end). Returns 0 or TJ_EPARSE. */
static int parse_rfc3339(const char *p, const char *end, struct tj_es_date *d)
{
    struct tm tm = {0};
    int y, mo, da, h, mi, s, oh = 0, om = 0, sign = 0;

    if (end - p < 20 || !digits(p, 4, &y) || p[4] != '-' || !digits(p + 5, 2, &mo) || p[7] != '-' ||
        !digits(p + 8, 2, &da) || (p[10] != 'T' && p[10] != 't' && p[10] != ' ') ||
        !digits(p + 11, 2, &h) || p[13] != ':' || !digits(p + 14, 2, &mi) || p[16] != ':' ||
        !digits(p + 17, 2, &s))
        return TJ_EPARSE;
    if (mo < 1 || mo > 12 || da < 1 || da > 31 || h > 23 || mi > 59 || s > 60)
        return TJ_EPARSE;
    p += 19;
    if (p < end && *p == '.')
        for (p++; p < end && *p >= '0' && *p <= '9'; p++)
            ;
    if (p < end && (*p == 'Z' || *p == 'z')) {
        sign = 0;
    } else if (end - p >= 6 && (*p == '+' || *p == '-') && digits(p + 1, 2, &oh) && p[3] == ':' &&
               digits(p + 4, 2, &om)) {
        sign = *p == '+' ? 1 : -1;
    } else if (end - p >= 5 && (*p == '+' || *p == '-') && digits(p + 1, 2, &oh) &&
               digits(p + 3, 2, &om)) {
        sign = *p == '+' ? 1 : -1;
    } else {
        return TJ_EPARSE;
    }
    if (!sign || (oh == 0 && om == 0)) {
        *d = (struct tj_es_date){y, mo, da, h};
        return 0;
    }
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = da;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    {
        time_t t = timegm(&tm) - (time_t)sign * (oh * 3600 + om * 60);
        struct tm u;
        if (!gmtime_r(&t, &u))
            return TJ_EPARSE;
        date_of(d, &u);
    }
    return 0;
}

int tj_es_record_date(const char *rec, size_t len, struct tj_es_date *d)
{
    static const char key[] = "\"@timestamp\":\"";
    const size_t klen = sizeof(key) - 1;
    const char *p = NULL, *end = rec + len, *q;

    if (len > klen && rec[0] == '{' && memcmp(rec + 1, key, klen) == 0)
        p = rec + 1 + klen;
    else if ((q = memmem(rec, len < TS_SEARCH ? len : TS_SEARCH, key, klen)))
        p = q + klen;
    if (!p)
        return TJ_EPARSE;
    q = memchr(p, '"', (size_t)(end - p));
    return q ? parse_rfc3339(p, q, d) : TJ_EPARSE;
}

void tj_es_date_now(struct tj_es_date *d)
{
    time_t t = time(NULL);
    struct tm u;

    gmtime_r(&t, &u);
    date_of(d, &u);
}

/* ---- index templates ---- */

static const char svc_code[] = "%{service}";

int tj_es_template_check(const char *tpl, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        if (tpl[i] != '%')
            continue;
        if (i + 1 < n && tpl[i + 1] && strchr("YmdH%", tpl[i + 1])) {
            i++;
            continue;
        }
        if (n - i >= sizeof(svc_code) - 1 && memcmp(tpl + i, svc_code, sizeof(svc_code) - 1) == 0) {
            i += sizeof(svc_code) - 2;
            continue;
        }
        snprintf(err, errlen,
                 "index template '%.*s': '%.*s' at offset %zu is not one of %%Y %%m %%d %%H "
                 "%%{service} %%%%",
                 (int)n, tpl, i + 1 < n ? 2 : 1, tpl + i, i);
        return TJ_EINVAL;
    }
    if (n == 0) {
        snprintf(err, errlen, "the index template is empty");
        return TJ_EINVAL;
    }
    return 0;
}

bool tj_es_template_dated(const char *tpl, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (tpl[i] != '%')
            continue;
        if (tpl[i + 1] && strchr("YmdH", tpl[i + 1]))
            return true;
        i++; /* %% and %{ */
    }
    return false;
}

static int append_num(struct tj_buf *out, int v, int width)
{
    char s[16];
    int k = snprintf(s, sizeof(s), "%0*d", width, v);

    return tj_buf_append(out, s, (size_t)k);
}

/* The service name as index names allow it. */
static int append_service(struct tj_buf *out, struct tj_slice svc)
{
    int rc = tj_buf_reserve(out, svc.len);

    if (rc)
        return rc;
    for (size_t i = 0; i < svc.len; i++) {
        char c = svc.ptr[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                   c == '-'))
            c = '_';
        out->data[out->len++] = c;
    }
    return 0;
}

int tj_es_index_expand(struct tj_buf *out, const char *tpl, size_t n, const struct tj_es_date *d,
                       struct tj_slice svc)
{
    size_t i = 0, lit = 0;
    int rc = 0;

    while (i < n && !rc) {
        const char *pct = memchr(tpl + i, '%', n - i);
        size_t j = pct ? (size_t)(pct - tpl) : n;
        rc = tj_buf_append(out, tpl + i, j - i);
        i = j;
        if (i >= n || rc)
            break;
        lit = 1; /* a code not known: copied as it is */
        if (i + 1 < n) {
            switch (tpl[i + 1]) {
            case 'Y':
                rc = append_num(out, d->year, 4), lit = 0;
                break;
            case 'm':
                rc = append_num(out, d->mon, 2), lit = 0;
                break;
            case 'd':
                rc = append_num(out, d->day, 2), lit = 0;
                break;
            case 'H':
                rc = append_num(out, d->hour, 2), lit = 0;
                break;
            case '%':
                rc = tj_buf_append(out, "%", 1), lit = 0;
                break;
            default:
                break;
            }
            if (!lit) {
                i += 2;
                continue;
            }
        }
        if (n - i >= sizeof(svc_code) - 1 && memcmp(tpl + i, svc_code, sizeof(svc_code) - 1) == 0) {
            rc = append_service(out, svc);
            i += sizeof(svc_code) - 1;
            continue;
        }
        rc = tj_buf_append(out, "%", 1);
        i++;
    }
    return rc;
}

/* ---- ids and action lines ---- */

void tj_es_doc_id(const char *rec, size_t len, char *out)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    XXH128_canonical_t c;
    const unsigned char *h = c.digest;
    char *o = out;

    XXH128_canonicalFromHash(&c, XXH3_128bits(rec, len));
    for (int i = 0; i < 15; i += 3) {
        uint32_t v = (uint32_t)h[i] << 16 | (uint32_t)h[i + 1] << 8 | h[i + 2];
        *o++ = b64[v >> 18];
        *o++ = b64[(v >> 12) & 63];
        *o++ = b64[(v >> 6) & 63];
        *o++ = b64[v & 63];
    }
    *o++ = b64[h[15] >> 2];
    *o++ = b64[(h[15] & 3) << 4];
    *o = '\0';
}

int tj_es_action(struct tj_buf *out, bool create, struct tj_slice index, const char *id)
{
    int rc = tj_buf_append(
        out, create ? "{\"create\":{\"_index\":" : "{\"index\":{\"_index\":", create ? 20 : 19);

    if (!rc)
        rc = tj_json_string(out, index.ptr, index.len);
    if (!rc && id) {
        rc = tj_buf_append(out, ",\"_id\":\"", 8);
        if (!rc)
            rc = tj_buf_append(out, id, strlen(id));
        if (!rc)
            rc = tj_buf_append(out, "\"", 1);
    }
    if (!rc)
        rc = tj_buf_append(out, "}}\n", 3);
    return rc;
}

/* ---- pieces and gzip ---- */

void tj_es_pw_init(struct tj_es_piece_writer *w, bool gzip, int level)
{
    memset(w, 0, sizeof(*w));
    w->gzip = gzip;
    w->level = level;
    tj_buf_init(&w->stage, STAGE_BYTES);
}

void tj_es_pw_fini(struct tj_es_piece_writer *w)
{
    if (w->zinit)
        deflateEnd(&w->z);
    w->zinit = false;
    tj_buf_fini(&w->stage);
}

int tj_es_pw_begin(struct tj_es_piece_writer *w, struct tj_buf *out)
{
    w->out = out;
    w->crc = (uint32_t)crc32(0L, Z_NULL, 0);
    w->raw = 0;
    w->stage.len = 0;
    if (!w->gzip)
        return 0;
    if (!w->zinit) {
        if (deflateInit2(&w->z, w->level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return TJ_ENOMEM;
        w->zinit = true;
        return 0;
    }
    return deflateReset(&w->z) == Z_OK ? 0 : TJ_EINVAL;
}

/* Compresses p[0..n) into out with the given flush mode. */
static int deflate_some(struct tj_es_piece_writer *w, const char *p, size_t n, int flush)
{
    if (n)
        w->crc = (uint32_t)crc32(w->crc, (const Bytef *)p, (uInt)n);
    w->z.next_in = (Bytef *)p;
    w->z.avail_in = (uInt)n;
    for (;;) {
        size_t room = deflateBound(&w->z, w->z.avail_in) + 64;
        int rc = tj_buf_reserve(w->out, room), zrc;
        if (rc)
            return rc;
        w->z.next_out = (Bytef *)w->out->data + w->out->len;
        w->z.avail_out = (uInt)(w->out->cap - w->out->len);
        zrc = deflate(&w->z, flush);
        w->out->len = w->out->cap - w->z.avail_out;
        if (zrc != Z_OK && zrc != Z_BUF_ERROR)
            return TJ_EINVAL;
        if (w->z.avail_in == 0 && w->z.avail_out != 0)
            return 0;
    }
}

int tj_es_pw_write(struct tj_es_piece_writer *w, const void *p, size_t n)
{
    int rc;

    w->raw += n;
    if (!w->gzip)
        return tj_buf_append(w->out, p, n);
    if (w->stage.len + n > STAGE_BYTES) { /* compress what waits; a large text goes as it is */
        if (w->stage.len && (rc = deflate_some(w, w->stage.data, w->stage.len, Z_NO_FLUSH)))
            return rc;
        w->stage.len = 0;
        if (n > STAGE_BYTES / 2)
            return deflate_some(w, p, n, Z_NO_FLUSH);
    }
    if (!w->stage.data && (rc = tj_buf_reserve(&w->stage, STAGE_BYTES)))
        return rc;
    memcpy(w->stage.data + w->stage.len, p, n);
    w->stage.len += n;
    return 0;
}

int tj_es_pw_end(struct tj_es_piece_writer *w)
{
    int rc = 0;

    if (w->gzip) {
        rc = deflate_some(w, w->stage.data, w->stage.len, Z_SYNC_FLUSH);
        w->stage.len = 0;
    }
    w->out = NULL;
    return rc;
}

int tj_es_gzip_head(struct tj_buf *out)
{
    static const unsigned char head[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};

    return tj_buf_append(out, head, sizeof(head));
}

int tj_es_gzip_tail(struct tj_buf *out, uint32_t crc, uint64_t raw)
{
    unsigned char t[10] = {0x03, 0x00}; /* a final, empty block of fixed codes */

    for (int i = 0; i < 4; i++) {
        t[2 + i] = (unsigned char)(crc >> (8 * i));
        t[6 + i] = (unsigned char)((uint32_t)raw >> (8 * i));
    }
    return tj_buf_append(out, t, sizeof(t));
}

uint32_t tj_es_crc_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
    return (uint32_t)crc32_combine(crc_a, crc_b, (z_off_t)len_b);
}

/* ---- a quick look at the answer ---- */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

/* p at '"': returns the byte after the closing quote, or NULL. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* Skips one JSON value (not checked in depth: only strings and brackets are followed). Returns
 * the byte after it, or NULL. */
static const char *skip_value(const char *p, const char *end)
{
    int depth = 0;

    p = skip_ws(p, end);
    if (p >= end)
        return NULL;
    if (*p == '"')
        return skip_string(p, end);
    if (*p != '{' && *p != '[') {
        const char *s = p;
        while (p < end && !strchr(",}] \n\r\t", *p))
            p++;
        return p > s ? p : NULL;
    }
    while (p < end) {
        if (*p == '"') {
            if (!(p = skip_string(p, end)))
                return NULL;
            continue;
        }
        if (*p == '{' || *p == '[')
            depth++;
        else if ((*p == '}' || *p == ']') && --depth == 0)
            return p + 1;
        p++;
    }
    return NULL;
}

/* p at '[': counts the elements of the array. Returns the byte after it, or NULL. */
static const char *count_items(const char *p, const char *end, size_t *n)
{
    *n = 0;
    p = skip_ws(p + 1, end);
    if (p < end && *p == ']')
        return p + 1;
    while (p < end) {
        if (!(p = skip_value(p, end)))
            return NULL;
        (*n)++;
        p = skip_ws(p, end);
        if (p < end && *p == ']')
            return p + 1;
        if (p >= end || *p != ',')
            return NULL;
        p++;
    }
    return NULL;
}

int tj_es_bulk_summary(const char *body, size_t len, bool *errors, size_t *nitems)
{
    const char *p = skip_ws(body, body + len), *end = body + len;
    bool have_errors = false, have_items = false;

    if (p >= end || *p != '{')
        return TJ_EPARSE;
    p = skip_ws(p + 1, end);
    while (p < end && *p == '"') {
        const char *k = p + 1, *ke = skip_string(p, end);
        size_t kn;
        if (!ke)
            return TJ_EPARSE;
        kn = (size_t)(ke - 1 - k);
        p = skip_ws(ke, end);
        if (p >= end || *p != ':')
            return TJ_EPARSE;
        p = skip_ws(p + 1, end);
        if (kn == 6 && memcmp(k, "errors", 6) == 0) {
            if (end - p >= 4 && memcmp(p, "true", 4) == 0)
                *errors = true, p += 4;
            else if (end - p >= 5 && memcmp(p, "false", 5) == 0)
                *errors = false, p += 5;
            else
                return TJ_EPARSE;
            have_errors = true;
        } else if (kn == 5 && memcmp(k, "items", 5) == 0 && p < end && *p == '[') {
            if (!(p = count_items(p, end, nitems)))
                return TJ_EPARSE;
            have_items = true;
        } else if (!(p = skip_value(p, end))) {
            return TJ_EPARSE;
        }
        p = skip_ws(p, end);
        if (p < end && *p == ',')
            p = skip_ws(p + 1, end);
        else
            break;
    }
    if (p >= end || *p != '}' || !have_errors)
        return TJ_EPARSE;
    if (!have_items)
        *nitems = 0; /* filter_path drops an empty array: none */
    return 0;
}
