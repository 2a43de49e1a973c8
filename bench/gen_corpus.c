/*
 * gen_corpus: deterministic generator of container log corpora for tailjet's benchmarks.
 *
 * Writes N log lines of one kind (apache, nginx, syslog, json, java, or a mix of them) either
 * as Docker's json-file (one entry per line, escaped exactly as Docker's Go encoder escapes
 * the "log" string, "time" strictly increasing) or as the bare lines ("plain", for the regex
 * floor and the peers). The same seed gives the same lines in both formats, byte for byte, so
 * a json-file corpus and its plain twin describe the same log.
 *
 * Single-threaded, libc only, C11:  cc -O2 -o gen_corpus bench/gen_corpus.c
 * Size: a standalone tool built with one cc command by the bench scripts: the generators of
 * every log kind side by side, with nothing of ours to include. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GC_LINE_CAP      (64 * 1024) /* no generated line comes close; the cap is a guard */
#define GC_OUT_CAP       (GC_LINE_CAP * 8 + 256)
#define GC_DEFAULT_SEED  UINT64_C(20261125)
#define GC_DEFAULT_LINES 100000

/* 2026-11-25T17:56:16.123456789Z: the first entry's time. */
#define GC_START_Y          2026
#define GC_START_M          11
#define GC_START_D          25
#define GC_START_SEC_OF_DAY (17 * 3600 + 56 * 60 + 16)
#define GC_START_NSEC       123456789L

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* javatrace: java lines where one event in JAVATRACE_ODDS is a stack trace (for logMultiline). */
enum gc_kind {
    GC_APACHE,
    GC_NGINX,
    GC_SYSLOG,
    GC_JSON,
    GC_JAVA,
    GC_MIXED,
    GC_HAPROXY,
    GC_KV,
    GC_JAVATRACE
};
enum gc_format { GC_JSONFILE, GC_PLAIN };

/* ---- random numbers: splitmix64, fully determined by the seed -------------------------- */

struct gc_rng {
    uint64_t s;
};

static uint64_t rng_next(struct gc_rng *r)
{
    uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* A number in [0, n); n > 0. */
static uint32_t rng_below(struct gc_rng *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* A number in [lo, hi]. */
static uint32_t rng_range(struct gc_rng *r, uint32_t lo, uint32_t hi)
{
    return lo + rng_below(r, hi - lo + 1);
}

/* True with probability pct/1000. */
static int rng_permille(struct gc_rng *r, uint32_t permille)
{
    return rng_below(r, 1000) < permille;
}

static const char *pick(struct gc_rng *r, const char *const *v, size_t n)
{
    return v[rng_below(r, (uint32_t)n)];
}

/* Index drawn with the given weights (any positive scale). */
static size_t pick_weighted(struct gc_rng *r, const unsigned *w, size_t n)
{
    unsigned total = 0;
    for (size_t i = 0; i < n; i++)
        total += w[i];
    unsigned x = rng_below(r, total);
    for (size_t i = 0; i < n; i++) {
        if (x < w[i])
            return i;
        x -= w[i];
    }
    return n - 1;
}

#define PICK(r, arr) pick((r), (arr), COUNT(arr))

/* ---- a capped line buffer ----------------------------------------------------------------- */

struct gc_buf {
    char *p;
    size_t len;
    size_t cap;
};

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("gen_corpus: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void buf_put(struct gc_buf *b, const char *s, size_t n)
{
    if (n > b->cap - b->len)
        die("internal error: a generated line exceeds %zu bytes", b->cap);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void buf_puts(struct gc_buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

static void buf_putc(struct gc_buf *b, char c)
{
    buf_put(b, &c, 1);
}

static void buf_printf(struct gc_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void buf_printf(struct gc_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len)
        die("internal error: a generated line exceeds %zu bytes", b->cap);
    b->len += (size_t)n;
}

/* ---- the clock: UTC, nanoseconds, strictly increasing ---------------------------------- */

struct gc_clock {
    int64_t sec; /* since the epoch */
    long nsec;
    int year;
    unsigned mon, day, hour, min, s; /* broken down from sec */
};

static const char *const MONTHS[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

static void clock_break_down(struct gc_clock *c)
{
    int64_t days = c->sec / 86400;
    unsigned sod = (unsigned)(c->sec % 86400);
    civil_from_days(days, &c->year, &c->mon, &c->day);
    c->hour = sod / 3600;
    c->min = sod / 60 % 60;
    c->s = sod % 60;
}

static void clock_init(struct gc_clock *c)
{
    c->sec = days_from_civil(GC_START_Y, GC_START_M, GC_START_D) * 86400 + GC_START_SEC_OF_DAY;
    c->nsec = GC_START_NSEC;
    clock_break_down(c);
}

/* Moves the clock forward by 1..max_ns nanoseconds (never by zero: times stay strictly increasing).
 */
static void clock_advance(struct gc_clock *c, struct gc_rng *r, uint32_t max_ns)
{
    c->nsec += (long)rng_range(r, 1, max_ns);
    if (c->nsec >= 1000000000L) {
        c->sec += c->nsec / 1000000000L;
        c->nsec %= 1000000000L;
        clock_break_down(c);
    }
}

/* Go's time.RFC3339Nano in UTC, as Docker writes "time": trailing zeros of the fraction dropped. */
static void put_rfc3339nano(struct gc_buf *b, const struct gc_clock *c)
{
    buf_printf(b, "%04d-%02u-%02uT%02u:%02u:%02u", c->year, c->mon, c->day, c->hour, c->min, c->s);
    if (c->nsec != 0) {
        char frac[16];
        snprintf(frac, sizeof frac, "%09ld", c->nsec);
        size_t n = 9;
        while (frac[n - 1] == '0')
            n--;
        buf_putc(b, '.');
        buf_put(b, frac, n);
    }
    buf_putc(b, 'Z');
}

/* 25/Nov/2026:17:56:16 +0000 (Apache %t and nginx $time_local, without brackets). */
static void put_clf_time(struct gc_buf *b, const struct gc_clock *c)
{
    buf_printf(b, "%02u/%s/%04d:%02u:%02u:%02u +0000", c->day, MONTHS[c->mon - 1], c->year, c->hour,
               c->min, c->s);
}

/* ---- Go encoding/json string escaping, as Docker writes the "log" field ----------------- */

static const char HEX[] = "0123456789abcdef";

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not valid UTF-8 in Go's sense
 * (overlong forms, surrogates and code points past U+10FFFF are invalid). *cp gets the code point.
 */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2, min = 0x80, *cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, min = 0x800, *cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, min = 0x10000, *cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (s[i] & 0x3f);
    }
    if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
        return 0;
    return len;
}

/*
 * Appends s[0..n) to b as the inside of a JSON string, escaped as Go's encoding/json does with
 * HTML escaping on (Docker's json-file writer): \" \\ \n \r \t; other bytes below 0x20 as
 * \u00XX; < > & as \u003c \u003e \u0026; U+2028 and U+2029 as \u2028 \u2029; each byte of
 * invalid UTF-8 as \ufffd. Everything else, DEL and valid UTF-8 included, is copied.
 */
static void put_json_escaped(struct gc_buf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x80) {
            uint32_t cp;
            size_t len = utf8_decode(s + i, n - i, &cp);
            if (len == 0) {
                buf_puts(b, "\\ufffd");
                i++;
            } else if (cp == 0x2028 || cp == 0x2029) {
                buf_puts(b, cp == 0x2028 ? "\\u2028" : "\\u2029");
                i += len;
            } else {
                buf_put(b, (const char *)s + i, len);
                i += len;
            }
            continue;
        }
        switch (c) {
        case '"':
            buf_puts(b, "\\\"");
            break;
        case '\\':
            buf_puts(b, "\\\\");
            break;
        case '\n':
            buf_puts(b, "\\n");
            break;
        case '\r':
            buf_puts(b, "\\r");
            break;
        case '\t':
            buf_puts(b, "\\t");
            break;
        case '<':
            buf_puts(b, "\\u003c");
            break;
        case '>':
            buf_puts(b, "\\u003e");
            break;
        case '&':
            buf_puts(b, "\\u0026");
            break;
        default:
            if (c < 0x20) {
                char e[6] = {'\\', 'u', '0', '0', HEX[c >> 4], HEX[c & 15]};
                buf_put(b, e, sizeof e);
            } else {
                buf_putc(b, (char)c);
            }
        }
        i++;
    }
}

/* ---- shared vocabulary ------------------------------------------------------------------ */

static const char *const HOSTS[] = {"web-01",   "web-02",    "api-7d9f8c6b5-x2kqz", "db-primary",
                                    "worker-3", "edge-fra1", "ip-10-0-3-17"};

static const char *const WORDS[] = {"shoes", "red+dress", "laptop",     "garden+chair", "caf%C3%A9",
                                    "usb-c", "winter",    "gift+ideas", "m%C3%BCnchen", "42"};

static void put_ipv4(struct gc_buf *b, struct gc_rng *r)
{
    static const unsigned first[] = {10, 66, 81, 93, 172, 185, 192, 198, 203, 34, 52, 8};
    buf_printf(b, "%u.%u.%u.%u", first[rng_below(r, COUNT(first))], rng_below(r, 256),
               rng_below(r, 256), rng_range(r, 1, 254));
}

/* IPv6 clients in the forms servers log: loopback, compressed, full, link-local, IPv4-mapped. */
static void put_ipv6(struct gc_buf *b, struct gc_rng *r)
{
    switch (rng_below(r, 6)) {
    case 0:
        buf_puts(b, "::1");
        break;
    case 1:
        buf_printf(b, "2001:db8:%x:%x::%x", rng_below(r, 0x10000), rng_below(r, 0x10000),
                   rng_range(r, 1, 0xffff));
        break;
    case 2:
        buf_printf(b, "2001:0db8:%04x:%04x:%04x:%04x:%04x:%04x", rng_below(r, 0x10000),
                   rng_below(r, 0x10000), rng_below(r, 0x10000), rng_below(r, 0x10000),
                   rng_below(r, 0x10000), rng_below(r, 0x10000));
        break;
    case 3:
        buf_printf(b, "fe80::%x:%xff:fe%02x:%x", rng_range(r, 1, 0xffff), rng_below(r, 0x100),
                   rng_below(r, 0x100), rng_range(r, 1, 0xffff));
        break;
    case 4:
        buf_printf(b, "2a03:2880:f12f:%x:face:b00c:0:%x", rng_range(r, 1, 0xfff),
                   rng_range(r, 1, 0xffff));
        break;
    default:
        buf_printf(b, "::ffff:192.0.2.%u", rng_range(r, 1, 254));
    }
}

static void put_hostname(struct gc_buf *b, struct gc_rng *r)
{
    switch (rng_below(r, 4)) {
    case 0:
        buf_printf(b, "crawl-66-249-66-%u.googlebot.com", rng_range(r, 1, 254));
        break;
    case 1:
        buf_printf(b, "host-%u.customer.example.net", rng_below(r, 100000));
        break;
    case 2:
        buf_puts(b, "localhost");
        break;
    default:
        buf_printf(b, "proxy-%02u.internal.example.com", rng_range(r, 1, 12));
    }
}

static const char *const METHODS[] = {"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"};
static const unsigned METHOD_W[] = {750, 120, 40, 30, 20, 20, 20};

static const unsigned STATUS[] = {200, 201, 204, 206, 301, 302, 304, 400, 401, 403,
                                  404, 405, 408, 429, 499, 500, 502, 503, 504};
static const unsigned STATUS_W[] = {700, 15, 10, 3, 25, 30, 60, 10, 10, 10,
                                    60,  3,  2,  5, 3,  8,  5,  5,  3};

static void put_path(struct gc_buf *b, struct gc_rng *r)
{
    switch (rng_below(r, 20)) {
    case 0:
        buf_puts(b, "/");
        break;
    case 1:
        buf_puts(b, "/index.html");
        break;
    case 2:
        buf_puts(b, "/favicon.ico");
        break;
    case 3:
        buf_printf(b, "/static/js/main.%08x.js", (unsigned)rng_next(r));
        break;
    case 4:
        buf_printf(b, "/static/css/app.%06x.css", rng_below(r, 0x1000000));
        break;
    case 5:
        buf_printf(b, "/images/products/%u/large.jpg", rng_range(r, 1000, 99999));
        break;
    case 6:
        buf_printf(b, "/api/v1/users/%u", rng_range(r, 1, 9999999));
        break;
    case 7:
        buf_printf(b, "/api/v1/orders/%u/items", rng_range(r, 1, 9999999));
        break;
    case 8:
        buf_printf(b, "/api/v2/search?q=%s&page=%u&sort=desc", PICK(r, WORDS), rng_range(r, 1, 40));
        break;
    case 9:
        buf_printf(b,
                   "/products?category=%s&utm_source=newsletter&utm_medium=email&utm_campaign=bf%u",
                   PICK(r, WORDS), rng_range(r, 2020, 2026));
        break;
    case 10:
        buf_printf(b, "/blog/%u/%02u/how-to-%s", rng_range(r, 2015, 2026), rng_range(r, 1, 12),
                   PICK(r, WORDS));
        break;
    case 11:
        buf_puts(b, "/wp-login.php");
        break;
    case 12:
        buf_puts(b, "/login?next=%2Fdashboard%3Ftab%3Dbilling");
        break;
    case 13:
        buf_printf(b, "/api/v1/items?ids=%u,%u,%u&fields=name,price", rng_below(r, 999),
                   rng_below(r, 999), rng_below(r, 999));
        break;
    case 14:
        buf_puts(b, "/download/annual%20report%202025.pdf");
        break;
    case 15:
        buf_puts(b, "/robots.txt");
        break;
    case 16:
        buf_printf(b, "/cart/add?sku=SKU-%06u&qty=%u", rng_below(r, 1000000), rng_range(r, 1, 5));
        break;
    case 17:
        if (rng_permille(r, 100))
            buf_puts(b, "/search?q=<script>alert(1)</script>");
        else
            buf_puts(b, "/.env");
        break;
    case 18:
        buf_printf(b, "/healthz?probe=%u", rng_below(r, 1000000));
        break;
    default:
        buf_printf(b, "/assets/fonts/inter-%u.woff2", rng_range(r, 100, 900));
        break;
    }
}

static const char *const UAS[] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.6778.81 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0)",
    "curl/8.5.0",
    "Wget/1.21.3",
    "python-requests/2.32.3",
    "Go-http-client/1.1",
    "kube-probe/1.31",
    "Prometheus/2.55.1",
    "okhttp/4.12.0",
    "Apache-HttpClient/4.5.14 (Java/17.0.13)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
};

static const char *const REFERRERS[] = {
    "https://www.google.com/",       "https://www.bing.com/search?q=red+dress&form=QBLH",
    "https://duckduckgo.com/",       "https://shop.example.com/products?category=shoes&page=2",
    "https://shop.example.com/cart", "android-app://com.google.android.gm/",
    "https://t.co/Xk3pQ9z",          "http://localhost:3000/",
};

static const char *const USERS[] = {"alice",      "bob",        "j.doe",
                                    "admin",      "svc-deploy", "maria.garcia@example.com",
                                    "deploy_bot", "U12345"};

static void put_bytes_or_dash(struct gc_buf *b, struct gc_rng *r, unsigned status,
                              const char *method)
{
    if (status == 304 || status == 204 || (status == 408) ||
        (strcmp(method, "HEAD") == 0 && rng_permille(r, 800))) {
        buf_putc(b, '-');
        return;
    }
    static const uint32_t mag[] = {300, 5000, 60000, 900000, 9000000};
    buf_printf(b, "%u", rng_range(r, 1, mag[rng_below(r, COUNT(mag))]));
}

/* ---- one line per kind ----------------------------------------------------------------- */

/* Apache "combined": %h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-agent}i\" */
static void gen_apache(struct gc_buf *b, struct gc_rng *r, const struct gc_clock *c)
{
    uint32_t who = rng_below(r, 100);
    if (who < 72)
        put_ipv4(b, r);
    else if (who < 88)
        put_ipv6(b, r);
    else
        put_hostname(b, r);
    buf_puts(b, rng_permille(r, 20) ? " ident-3 " : " - ");
    buf_puts(b, rng_permille(r, 180) ? PICK(r, USERS) : "-");
    buf_puts(b, " [");
    put_clf_time(b, c);
    buf_puts(b, "] \"");

    const char *method = METHODS[pick_weighted(r, METHOD_W, COUNT(METHOD_W))];
    unsigned status = STATUS[pick_weighted(r, STATUS_W, COUNT(STATUS_W))];
    if (status == 408) {
        buf_puts(b, "-\" 408 - \"-\" \"-\""); /* the client sent no request line */
        return;
    }
    buf_printf(b, "%s ", method);
    put_path(b, r);
    uint32_t v = rng_below(r, 100);
    buf_printf(b, " %s\" %u ", v < 80 ? "HTTP/1.1" : v < 92 ? "HTTP/2.0" : "HTTP/1.0", status);
    put_bytes_or_dash(b, r, status, method);
    buf_puts(b, " \"");
    buf_puts(b, rng_permille(r, 450) ? "-" : PICK(r, REFERRERS));
    buf_puts(b, "\" \"");
    uint32_t u = rng_below(r, 1000);
    if (u < 15)
        buf_puts(b, "-");
    else if (u < 25) /* Apache writes a quote inside a header as \" */
        buf_puts(b, "Mozilla/5.0 (compatible; \\\"Scanner\\\"; +https://scan.example.org/about)");
    else if (u < 30)
        buf_puts(b, "sqlmap/1.8.11#stable (https://sqlmap.org) C:\\\\tmp\\\\x");
    else
        buf_puts(b, PICK(r, UAS));
    buf_putc(b, '"');
}

/* nginx's default "combined" format: no ident, no hostnames, $body_bytes_sent is always a number,
 * and a quote inside a header is written as \x22. */
static void gen_nginx(struct gc_buf *b, struct gc_rng *r, const struct gc_clock *c)
{
    if (rng_below(r, 100) < 85)
        put_ipv4(b, r);
    else
        put_ipv6(b, r);
    buf_puts(b, " - ");
    buf_puts(b, rng_permille(r, 100) ? PICK(r, USERS) : "-");
    buf_puts(b, " [");
    put_clf_time(b, c);
    buf_puts(b, "] \"");
    const char *method = METHODS[pick_weighted(r, METHOD_W, COUNT(METHOD_W))];
    unsigned status = STATUS[pick_weighted(r, STATUS_W, COUNT(STATUS_W))];
    buf_printf(b, "%s ", method);
    put_path(b, r);
    uint32_t v = rng_below(r, 100);
    buf_printf(b, " %s\" %u ", v < 75 ? "HTTP/1.1" : v < 95 ? "HTTP/2.0" : "HTTP/1.0", status);
    if (status == 304 || status == 204 || strcmp(method, "HEAD") == 0)
        buf_putc(b, '0');
    else
        buf_printf(b, "%u", rng_range(r, 1, rng_permille(r, 900) ? 80000 : 5000000));
    buf_puts(b, " \"");
    buf_puts(b, rng_permille(r, 500) ? "-" : PICK(r, REFERRERS));
    buf_puts(b, "\" \"");
    if (rng_permille(r, 8))
        buf_puts(b, "Mozilla/5.0 (compatible; \\x22Scanner\\x22)");
    else
        buf_puts(b, PICK(r, UAS));
    buf_putc(b, '"');
}

/* RFC 3164: [<PRI>]Mmm dd hh:mm:ss HOST TAG[PID]: MSG (a quarter carry the <PRI> part). */
static void gen_syslog(struct gc_buf *b, struct gc_rng *r, const struct gc_clock *c)
{
    static const char *const progs[] = {"sshd", "CRON",          "systemd",  "kernel",
                                        "sudo", "postfix/smtpd", "dhclient", "dockerd"};
    const char *prog = PICK(r, progs);
    if (rng_below(r, 4) == 0)
        buf_printf(b, "<%u>", rng_range(r, 0, 191));
    buf_printf(b, "%s %2u %02u:%02u:%02u %s ", MONTHS[c->mon - 1], c->day, c->hour, c->min, c->s,
               PICK(r, HOSTS));
    if (strcmp(prog, "kernel") == 0) {
        buf_printf(b, "kernel: [%u.%06u] ", rng_range(r, 100, 999999), rng_below(r, 1000000));
        if (rng_below(r, 2))
            buf_printf(b,
                       "TCP: request_sock_TCP: Possible SYN flooding on port %u. Sending cookies.",
                       rng_range(r, 1, 65535));
        else
            buf_printf(b,
                       "[UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56 SRC=%u.%u.%u.%u "
                       "DST=10.0.0.5 LEN=40 PROTO=TCP SPT=%u DPT=22",
                       rng_range(r, 1, 223), rng_below(r, 256), rng_below(r, 256),
                       rng_below(r, 256), rng_range(r, 1024, 65535));
        return;
    }
    buf_printf(b, "%s[%u]: ", prog, rng_range(r, 2, 4194304));
    if (strcmp(prog, "sshd") == 0) {
        if (rng_below(r, 3) == 0)
            buf_printf(b, "Failed password for invalid user %s from ",
                       rng_below(r, 2) ? "oracle" : "admin");
        else
            buf_printf(b, "Accepted publickey for %s from ", PICK(r, USERS));
        put_ipv4(b, r);
        buf_printf(b, " port %u ssh2", rng_range(r, 1024, 65535));
    } else if (strcmp(prog, "CRON") == 0) {
        buf_puts(b, "(root) CMD (   cd / && run-parts --report /etc/cron.hourly)");
    } else if (strcmp(prog, "systemd") == 0) {
        buf_printf(b, "Started session-%u.scope - Session %u of User %s.", rng_below(r, 99999),
                   rng_below(r, 99999), PICK(r, USERS));
    } else if (strcmp(prog, "sudo") == 0) {
        buf_printf(
            b,
            "%s : TTY=pts/%u ; PWD=/home/%s ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx",
            "alice", rng_below(r, 8), "alice");
    } else if (strcmp(prog, "postfix/smtpd") == 0) {
        buf_printf(b, "connect from mail-%u.example.net[", rng_below(r, 1000));
        put_ipv4(b, r);
        buf_putc(b, ']');
    } else if (strcmp(prog, "dhclient") == 0) {
        buf_printf(b, "DHCPACK of 10.0.%u.%u from 10.0.0.1 (xid=0x%08x)", rng_below(r, 256),
                   rng_range(r, 2, 254), (unsigned)rng_next(r));
    } else {
        buf_printf(
            b,
            "time=\"%04d-%02u-%02uT%02u:%02u:%02u.%09ldZ\" level=info msg=\"ignoring event\" "
            "module=libcontainerd namespace=moby topic=/tasks/delete type=\"*events.TaskDelete\"",
            c->year, c->mon, c->day, c->hour, c->min, c->s, c->nsec);
    }
}

static const char *const APP_MSGS[] = {
    "request completed",
    "cache miss for key \"user:42:profile\"",
    "payment authorised <ok> & settled",
    "Bestellung f\xc3\xbcr Kunde M\xc3\xbcnchen angelegt",
    ("\xe3\x83\xa6\xe3\x83\xbc\xe3\x82\xb6\xe3\x83\xbc\xe3\x81\x8c\xe3\x83\xad\xe3\x82\xb0\xe3\x82"
     "\xa4\xe3\x83\xb3"),
    "retrying upstream call to C:\\svc\\pay",
    "slow query detected",
    "emoji in a product name: \xf0\x9f\x91\x9f sneaker",
};

/* s as the inside of a JSON string, escaped the way an application's JSON encoder does (zap, pino
 * and logrus escape quotes, backslashes and control characters, not < > &). */
static void put_app_json_str(struct gc_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf_putc(b, '\\');
            buf_putc(b, (char)c);
        } else if (c < 0x20) {
            buf_printf(b, "\\u%04x", c);
        } else {
            buf_putc(b, (char)c);
        }
    }
}

/* A JSON object per line, as zap, pino and logrus write them. */
static void gen_json(struct gc_buf *b, struct gc_rng *r, const struct gc_clock *c)
{
    static const char *const levels[] = {"debug", "info", "info", "info", "info", "warn", "error"};
    switch (rng_below(r, 3)) {
    case 0: /* zap */
        buf_printf(b,
                   "{\"level\":\"%s\",\"ts\":%" PRId64
                   ".%06ld,\"caller\":\"server/http.go:%u\",\"msg\":\"",
                   PICK(r, levels), c->sec, c->nsec / 1000, rng_range(r, 20, 900));
        put_app_json_str(b, PICK(r, APP_MSGS));
        buf_printf(b, "\",\"method\":\"%s\",\"path\":\"",
                   METHODS[pick_weighted(r, METHOD_W, COUNT(METHOD_W))]);
        put_path(b, r);
        buf_printf(b,
                   "\",\"status\":%u,\"duration_ms\":%u.%03u,\"trace_id\":\"%016" PRIx64
                   "%016" PRIx64 "\"}",
                   STATUS[pick_weighted(r, STATUS_W, COUNT(STATUS_W))], rng_below(r, 3000),
                   rng_below(r, 1000), rng_next(r), rng_next(r));
        break;
    case 1: /* pino */
        buf_printf(
            b,
            "{\"level\":%u,\"time\":%" PRId64
            "%03ld,\"pid\":1,\"hostname\":\"%s\",\"req\":{\"id\":%u,\"method\":\"%s\",\"url\":\"",
            10 * rng_range(r, 2, 5), c->sec, c->nsec / 1000000, PICK(r, HOSTS),
            rng_below(r, 1000000), METHODS[pick_weighted(r, METHOD_W, COUNT(METHOD_W))]);
        put_path(b, r);
        buf_puts(b, "\",\"remoteAddress\":\"");
        put_ipv4(b, r);
        buf_printf(b, "\"},\"responseTime\":%u,\"msg\":\"request completed\"}", rng_below(r, 2000));
        break;
    default: /* logrus */
        buf_printf(b, "{\"level\":\"%s\",\"msg\":\"", PICK(r, levels));
        put_app_json_str(b, PICK(r, APP_MSGS));
        buf_printf(b,
                   "\",\"time\":\"%04d-%02u-%02uT%02u:%02u:%02uZ\",\"user\":\"%s\",\"tags\":[\"a\","
                   "\"b\"],\"n\":null,\"ok\":%s}",
                   c->year, c->mon, c->day, c->hour, c->min, c->s, PICK(r, USERS),
                   rng_below(r, 2) ? "true" : "false");
    }
}

static const char *const LOGGERS[] = {"c.e.shop.order.OrderService",
                                      "o.s.web.servlet.DispatcherServlet",
                                      "o.h.engine.jdbc.spi.SqlExceptionHelper",
                                      "com.zaxxer.hikari.HikariPool",
                                      "c.e.shop.payment.PaymentClient",
                                      "o.a.kafka.clients.NetworkClient"};

static void put_thread(struct gc_buf *b, struct gc_rng *r)
{
    switch (rng_below(r, 6)) {
    case 0:
        buf_puts(b, "main");
        break;
    case 1:
        buf_puts(b, "scheduling-1");
        break;
    case 2:
        buf_puts(b, "kafka-producer-network-thread | producer-1");
        break;
    case 3:
        buf_printf(b, "pool-2-thread-%u", rng_range(r, 1, 16));
        break;
    case 4:
        buf_printf(b, "ForkJoinPool.commonPool-worker-%u", rng_range(r, 1, 8));
        break;
    default:
        buf_printf(b, "http-nio-8080-exec-%u", rng_range(r, 1, 200));
        break;
    }
}

static void put_java_msg(struct gc_buf *b, struct gc_rng *r)
{
    switch (rng_below(r, 6)) {
    case 0:
        buf_printf(b, "Order %u created for customer %u", rng_below(r, 10000000),
                   rng_below(r, 100000));
        break;
    case 1:
        buf_printf(b, "Completed initialization in %u ms", rng_range(r, 1, 900));
        break;
    case 2:
        buf_printf(b, "HikariPool-1 - Connection is not available, request timed out after %u ms.",
                   rng_range(r, 1000, 30000));
        break;
    case 3:
        buf_printf(b, "Payment declined for order %u: reason=\"insufficient funds\" code=%u",
                   rng_below(r, 10000000), rng_range(r, 1, 99));
        break;
    case 4:
        buf_printf(b, "Cache <products> refreshed & %u entries evicted", rng_below(r, 5000));
        break;
    default:
        buf_printf(b, "[Consumer clientId=consumer-orders-1, groupId=orders] Node %u disconnected.",
                   rng_range(r, 1, 5));
        break;
    }
}

/* logback's default pattern, Spring Boot's console pattern, and (rarely) Spring Boot with ANSI
 * colours. */
static void gen_java_with_level(struct gc_buf *b, struct gc_rng *r, const struct gc_clock *c,
                                const char *level)
{
    uint32_t style = rng_below(r, 100);
    if (style < 60) {
        buf_printf(b, "%04d-%02u-%02u %02u:%02u:%02u.%03ld %-5s [", c->year, c->mon, c->day,
                   c->hour, c->min, c->s, c->nsec / 1000000, level);
        put_thread(b, r);
        buf_printf(b, "] %s - ", PICK(r, LOGGERS));
    } else if (style < 97) {
        buf_printf(b, "%04d-%02u-%02uT%02u:%02u:%02u.%03ldZ %5s 1 --- [shop] [%15.15s] %-40.40s : ",
                   c->year, c->mon, c->day, c->hour, c->min, c->s, c->nsec / 1000000, level,
                   "nio-8080-exec-7", PICK(r, LOGGERS));
    } else {
        buf_printf(b,
                   "\x1b[2m%04d-%02u-%02uT%02u:%02u:%02u.%03ldZ\x1b[0;39m \x1b[32m%5s\x1b[0;39m "
                   "\x1b[35m1\x1b[0;39m \x1b[2m---\x1b[0;39m \x1b[36m%-40.40s\x1b[0;39m "
                   "\x1b[2m:\x1b[0;39m ",
                   c->year, c->mon, c->day, c->hour, c->min, c->s, c->nsec / 1000000, level,
                   PICK(r, LOGGERS));
    }
    put_java_msg(b, r);
}

static void gen_java(struct gc_buf *b, struct gc_rng *r, const struct gc_clock *c)
{
    static const char *const levels[] = {"INFO", "DEBUG", "WARN", "ERROR"};
    static const unsigned level_w[] = {70, 10, 12, 8};
    gen_java_with_level(b, r, c, levels[pick_weighted(r, level_w, COUNT(level_w))]);
}

/* ---- multi-line java stack traces (mixed and javatrace) --------------------------------- */

static const char *const FRAMES[] = {
    "com.example.shop.order.OrderService.load(OrderService.java:%u)",
    "com.example.shop.order.OrderController.get(OrderController.java:%u)",
    "java.base/"
    "jdk.internal.reflect.DirectMethodHandleAccessor.invoke(DirectMethodHandleAccessor.java:%u)",
    "java.base/java.lang.reflect.Method.invoke(Method.java:%u)",
    "org.springframework.web.method.support.InvocableHandlerMethod.doInvoke(InvocableHandlerMethod."
    "java:%u)",
    "org.springframework.web.servlet.FrameworkServlet.processRequest(FrameworkServlet.java:%u)",
    "jakarta.servlet.http.HttpServlet.service(HttpServlet.java:%u)",
    "org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:%u)",
    "org.apache.tomcat.util.net.NioEndpoint$SocketProcessor.doRun(NioEndpoint.java:%u)",
    "java.base/java.util.concurrent.ThreadPoolExecutor$Worker.run(ThreadPoolExecutor.java:%u)",
    "com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:%u)",
    "org.postgresql.core.v3.ConnectionFactoryImpl.openConnectionImpl(ConnectionFactoryImpl.java:%"
    "u)",
    "com.example.shop.payment.PaymentClient.lambda$charge$0(PaymentClient.java:%u)",
};

static const char *const EXCEPTIONS[] = {
    "java.lang.IllegalStateException: Order %u not found",
    "java.lang.NullPointerException: Cannot invoke \"String.length()\" because \"name\" is null",
    ("org.springframework.dao.DataAccessResourceFailureException: Unable to acquire JDBC "
     "Connection <pool=HikariPool-1>"),
    "java.net.SocketTimeoutException: Read timed out after %u ms",
};

struct gc_trace {
    uint32_t left;     /* lines still to write, the current one included */
    uint32_t step;     /* lines written so far */
    uint32_t frames;   /* frames of the top exception */
    uint32_t cause_at; /* step of the "Caused by:" line, 0 if none */
};

/* Starts a trace: an ERROR line, the exception line, frames, maybe "Caused by:" + frames + "... N
 * more". */
static void trace_start(struct gc_trace *t, struct gc_rng *r)
{
    t->step = 0;
    t->frames = rng_range(r, 4, 24);
    uint32_t total = 2 + t->frames;
    t->cause_at = 0;
    if (rng_below(r, 10) < 3) {
        t->cause_at = total;
        total += 1 + rng_range(r, 2, 8) + 1;
    }
    t->left = total;
}

static void trace_line(struct gc_trace *t, struct gc_buf *b, struct gc_rng *r,
                       const struct gc_clock *c)
{
    uint32_t s = t->step;
    if (s == 0) {
        gen_java_with_level(b, r, c, "ERROR");
    } else if (s == 1) {
        buf_printf(b, PICK(r, EXCEPTIONS), rng_range(r, 1, 99999));
    } else if (t->cause_at != 0 && s == t->cause_at) {
        buf_puts(b, "Caused by: java.net.ConnectException: Connection refused");
    } else if (t->cause_at != 0 && t->left == 1) {
        buf_printf(b, "\t... %u more", rng_range(r, 10, 60));
    } else {
        buf_puts(b, "\tat ");
        buf_printf(b, PICK(r, FRAMES), rng_range(r, 12, 1200));
    }
    t->step++;
    t->left--;
}

/* ---- haproxy and key=value lines --------------------------------------------------------- */

/* HAProxy's HTTP log format as syslog writes it: most with captured headers, some <NOSRV> 503s. */
static void gen_haproxy(struct gc_buf *b, struct gc_rng *r, const struct gc_clock *c)
{
    static const char *const backends[] = {"static/srv1", "api/api-2", "web/web-3", "api/api-1"};
    unsigned status = STATUS[pick_weighted(r, STATUS_W, COUNT(STATUS_W))];
    int nosrv = rng_below(r, 50) == 0;
    buf_printf(b, "%s %2u %02u:%02u:%02u lb-%u haproxy[%u]: ", MONTHS[c->mon - 1], c->day, c->hour,
               c->min, c->s, rng_range(r, 1, 3), rng_range(r, 100, 40000));
    put_ipv4(b, r);
    buf_printf(b, ":%u [%02u/%s/%04d:%02u:%02u:%02u.%03ld] http-in ", rng_range(r, 1024, 65535),
               c->day, MONTHS[c->mon - 1], c->year, c->hour, c->min, c->s, c->nsec / 1000000);
    if (nosrv) {
        buf_printf(b, "web/<NOSRV> 0/-1/-1/-1/%u 503 212 - - SC-- %u/%u/0/0/0 0/0 ",
                   rng_range(r, 0, 3), rng_range(r, 1, 300), rng_range(r, 1, 300));
    } else {
        unsigned tq = rng_below(r, 20), tw = rng_below(r, 3), tc = rng_below(r, 5),
                 tr = rng_range(r, 1, 400);
        buf_printf(b, "%s %u/%u/%u/%u/%u %u %u - - ---- %u/%u/%u/%u/0 0/0 ", PICK(r, backends), tq,
                   tw, tc, tr, tq + tw + tc + tr + rng_below(r, 50), status,
                   rng_range(r, 150, 90000), rng_range(r, 1, 900), rng_range(r, 1, 900),
                   rng_range(r, 1, 90), rng_range(r, 1, 30));
    }
    buf_printf(b, "{%s|", PICK(r, HOSTS));
    buf_puts(b, PICK(r, UAS));
    buf_puts(b, "} {} \"");
    buf_puts(b, METHODS[pick_weighted(r, METHOD_W, COUNT(METHOD_W))]);
    buf_putc(b, ' ');
    put_path(b, r);
    buf_puts(b, " HTTP/1.1\"");
}

/* An application's key=value line (logfmt-like) with numbers a pattern types as :int. */
static void gen_kv(struct gc_buf *b, struct gc_rng *r, const struct gc_clock *c)
{
    static const char *const levels[] = {"info", "debug", "warn", "error"};
    static const unsigned level_w[] = {80, 8, 8, 4};
    buf_printf(b, "ts=%04d-%02u-%02uT%02u:%02u:%02u.%03ldZ level=%s method=%s path=", c->year,
               c->mon, c->day, c->hour, c->min, c->s, c->nsec / 1000000,
               levels[pick_weighted(r, level_w, COUNT(level_w))],
               METHODS[pick_weighted(r, METHOD_W, COUNT(METHOD_W))]);
    put_path(b, r);
    buf_printf(b, " status=%u duration_ms=%u bytes=%u user=%s request_id=%08x%08x",
               STATUS[pick_weighted(r, STATUS_W, COUNT(STATUS_W))], rng_range(r, 0, 3000),
               rng_range(r, 0, 500000), PICK(r, USERS), (unsigned)rng_next(r),
               (unsigned)rng_next(r));
}

/* ---- main loop --------------------------------------------------------------------------- */

struct gc_opts {
    uint64_t lines;
    uint64_t seed;
    enum gc_kind kind;
    enum gc_format format;
    const char *out;
};

typedef void (*gc_gen_fn)(struct gc_buf *, struct gc_rng *, const struct gc_clock *);

/* One in TRACE_ODDS mixed events starts a stack trace: with ~20 lines a trace, about 5% of lines.
 */
#define TRACE_ODDS 380
/* One in JAVATRACE_ODDS javatrace events is a trace: about half of its lines are in traces. */
#define JAVATRACE_ODDS 20

static int run(const struct gc_opts *o, FILE *out)
{
    static gc_gen_fn const gens[] = {gen_apache, gen_nginx,   gen_syslog, gen_json, gen_java,
                                     NULL,       gen_haproxy, gen_kv,     gen_java};
    static const unsigned mix_w[] = {25, 20, 15, 20, 20};
    char *linemem = malloc(GC_LINE_CAP);
    char *outmem = malloc(GC_OUT_CAP);
    if (!linemem || !outmem)
        die("out of memory");
    struct gc_buf line = {linemem, 0, GC_LINE_CAP};
    struct gc_buf rec = {outmem, 0, GC_OUT_CAP};
    struct gc_rng r = {o->seed};
    struct gc_clock c;
    struct gc_trace trace = {0};
    uint64_t bytes = 0, trace_lines = 0;
    clock_init(&c);

    for (uint64_t i = 0; i < o->lines; i++) {
        const char *stream = "stdout";
        line.len = 0;
        if (trace.left > 0) {
            clock_advance(&c, &r, 2000); /* frames are written together */
            trace_line(&trace, &line, &r, &c);
            stream = "stderr";
            trace_lines++;
        } else {
            clock_advance(&c, &r, 2000000);
            if (o->kind == GC_MIXED || o->kind == GC_JAVATRACE) {
                uint32_t odds = o->kind == GC_MIXED ? TRACE_ODDS : JAVATRACE_ODDS;
                if (rng_below(&r, odds) == 0) {
                    trace_start(&trace, &r);
                    trace_line(&trace, &line, &r, &c);
                    stream = "stderr";
                    trace_lines++;
                } else if (o->kind == GC_JAVATRACE) {
                    gen_java(&line, &r, &c);
                } else {
                    gens[pick_weighted(&r, mix_w, COUNT(mix_w))](&line, &r, &c);
                }
            } else {
                gens[o->kind](&line, &r, &c);
            }
        }

        rec.len = 0;
        if (o->format == GC_PLAIN) {
            buf_put(&rec, line.p, line.len);
            buf_putc(&rec, '\n');
        } else {
            buf_puts(&rec, "{\"log\":\"");
            put_json_escaped(&rec, line.p, line.len);
            buf_puts(&rec, "\\n\",\"stream\":\"");
            buf_puts(&rec, stream);
            buf_puts(&rec, "\",\"time\":\"");
            put_rfc3339nano(&rec, &c);
            buf_puts(&rec, "\"}\n");
        }
        if (fwrite(rec.p, 1, rec.len, out) != rec.len)
            die("cannot write %s: %s", o->out, strerror(errno));
        bytes += rec.len;
    }
    free(linemem);
    free(outmem);
    fprintf(stderr,
            "gen_corpus: %" PRIu64 " lines, %" PRIu64 " bytes, %" PRIu64 " stack-trace lines\n",
            o->lines, bytes, trace_lines);
    return 0;
}

static void usage(FILE *f)
{
    fputs(
        "usage: gen_corpus [--lines N]\n"
        "                  [--kind apache|nginx|syslog|json|java|mixed|haproxy|kv|javatrace]\n"
        "                  [--format json-file|plain] [--seed S] [-o FILE]\n"
        "Writes N log lines (default 100000) as Docker json-file entries (default) or bare lines,\n"
        "to FILE or stdout. The same seed (default 20261125) gives the same lines in both "
        "formats.\n",
        f);
}

static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 0);
    if (errno || end == s || *end || s[0] == '-')
        return -1;
    *v = x;
    return 0;
}

int main(int argc, char **argv)
{
    struct gc_opts o = {GC_DEFAULT_LINES, GC_DEFAULT_SEED, GC_APACHE, GC_JSONFILE, "-"};
    static const char *const kinds[] = {"apache", "nginx",   "syslog", "json",     "java",
                                        "mixed",  "haproxy", "kv",     "javatrace"};

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        const char *eq = strchr(a, '=');
        char name[32];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (a[0] == '-' && a[1] == '-' && eq && (size_t)(eq - a) < sizeof name) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = '\0';
            a = name;
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        }
        if (!val) {
            fprintf(stderr, "gen_corpus: option %s needs a value\n", a);
            usage(stderr);
            return 2;
        }
        if (strcmp(a, "--lines") == 0) {
            if (parse_u64(val, &o.lines))
                return fprintf(stderr, "gen_corpus: --lines wants a count, got '%s'\n", val), 2;
        } else if (strcmp(a, "--seed") == 0) {
            if (parse_u64(val, &o.seed))
                return fprintf(stderr, "gen_corpus: --seed wants a number, got '%s'\n", val), 2;
        } else if (strcmp(a, "--kind") == 0) {
            size_t k = 0;
            while (k < COUNT(kinds) && strcmp(val, kinds[k]) != 0)
                k++;
            if (k == COUNT(kinds))
                return fprintf(stderr,
                               "gen_corpus: unknown --kind '%s' (apache, nginx, syslog, json, "
                               "java, mixed, haproxy, kv, javatrace)\n",
                               val),
                       2;
            o.kind = (enum gc_kind)k;
        } else if (strcmp(a, "--format") == 0) {
            if (strcmp(val, "json-file") == 0)
                o.format = GC_JSONFILE;
            else if (strcmp(val, "plain") == 0)
                o.format = GC_PLAIN;
            else
                return fprintf(stderr, "gen_corpus: unknown --format '%s' (json-file, plain)\n",
                               val),
                       2;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            o.out = val;
        } else {
            fprintf(stderr, "gen_corpus: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }

    FILE *out = stdout;
    if (strcmp(o.out, "-") != 0) {
        out = fopen(o.out, "wb");
        if (!out)
            die("cannot create %s: %s (check the folder exists and is writable)", o.out,
                strerror(errno));
    }
    setvbuf(out, NULL, _IOFBF, 1 << 20);
    run(&o, out);
    if (fflush(out) != 0 || (out != stdout && fclose(out) != 0))
        die("cannot write %s: %s", o.out, strerror(errno));
    return 0;
}
