/* tj_time.c: event time from a field's text (see tj_time.h). A spec is compiled into formats,
 * each a short list of tokens; parsing walks the text once per format tried, with no
 * allocation, and turns civil time into seconds with the days-from-civil formula (no libc time
 * zone state, so any thread may call it). */
#include "tj_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_TOKENS 48

enum fmt_kind { F_ISO8601, F_UNIX, F_UNIX_MS, F_TAI64N, F_PATTERN };

enum tok_kind {
    T_LIT,    /* one byte, exactly */
    T_YEAR4,  /* yyyy */
    T_YEAR2,  /* yy: 2000 + yy */
    T_MONTH,  /* M, MM: 1 or 2 digits */
    T_MONTHN, /* MMM, MMMM: an English month name, full or abbreviated */
    T_DAY,    /* d, dd */
    T_HOUR,   /* H, HH */
    T_HOUR12, /* h, hh */
    T_MIN,    /* m, mm */
    T_SEC,    /* s, ss */
    T_FRAC,   /* S...: 1 to 9 digits, whatever the count of S */
    T_ZONE,   /* Z, ZZ: Z, +HH, +HHMM, +HH:MM */
    T_ZONEID, /* ZZZ, z: UTC, GMT, Z */
    T_AMPM,   /* a */
    T_DOW,    /* E...: an English day name, full or abbreviated (checked, not used) */
};

struct tok {
    enum tok_kind kind;
    char lit;
};

struct fmt {
    enum fmt_kind kind;
    struct tok toks[MAX_TOKENS];
    size_t ntoks;
};

struct tj_time_spec {
    char *field;
    struct fmt fmts[TJ_TIME_MAX_FORMATS];
    size_t nfmts;
    int zone_s; /* offset of zone-less times, seconds east of UTC */
};

static const char *const months[] = {"january",   "february", "march",    "april",
                                     "may",       "june",     "july",     "august",
                                     "september", "october",  "november", "december"};
static const char *const days[] = {"monday", "tuesday",  "wednesday", "thursday",
                                   "friday", "saturday", "sunday"};

/* Parses "UTC", "Z", "+HH", "+HHMM", "+HH:MM" (all of s). Returns 0 with *off in seconds. */
static int parse_offset(const char *s, size_t n, int *off)
{
    int sign, h, m = 0;

    if ((n == 3 && (strncasecmp(s, "UTC", 3) == 0 || strncasecmp(s, "GMT", 3) == 0)) ||
        (n == 1 && (s[0] == 'Z' || s[0] == 'z'))) {
        *off = 0;
        return 0;
    }
    if (n < 3 || (s[0] != '+' && s[0] != '-'))
        return -1;
    sign = s[0] == '-' ? -1 : 1;
    for (size_t i = 1; i < n; i++)
        if (!(s[i] >= '0' && s[i] <= '9') && !(i == 3 && s[i] == ':'))
            return -1;
    h = (s[1] - '0') * 10 + (s[2] - '0');
    if (n == 5)
        m = (s[3] - '0') * 10 + (s[4] - '0');
    else if (n == 6 && s[3] == ':')
        m = (s[4] - '0') * 10 + (s[5] - '0');
    else if (n != 3)
        return -1;
    if (h > 23 || m > 59)
        return -1;
    *off = sign * (h * 3600 + m * 60);
    return 0;
}

/* The pattern letters: the token a run of one or two of them stands for, and that of a longer
 * run (MMM: a month name, ZZZ: a zone name). */
static const struct letter {
    char c;
    enum tok_kind kind, longer;
} letters[] = {
    {'y', T_YEAR4, T_YEAR4},   {'Y', T_YEAR4, T_YEAR4}, {'x', T_YEAR4, T_YEAR4},
    {'M', T_MONTH, T_MONTHN},  {'d', T_DAY, T_DAY},     {'H', T_HOUR, T_HOUR},
    {'h', T_HOUR12, T_HOUR12}, {'m', T_MIN, T_MIN},     {'s', T_SEC, T_SEC},
    {'S', T_FRAC, T_FRAC},     {'Z', T_ZONE, T_ZONEID}, {'z', T_ZONEID, T_ZONEID},
    {'a', T_AMPM, T_AMPM},     {'E', T_DOW, T_DOW},
};

/* The token of a run of run letters c into *kind (yy: a two-digit year). Returns false when c
 * is not a pattern letter. */
static bool letter_token(char c, size_t run, enum tok_kind *kind)
{
    for (size_t i = 0; i < TJ_ARRAY_LEN(letters); i++) {
        if (letters[i].c != c)
            continue;
        *kind = run >= 3 ? letters[i].longer : letters[i].kind;
        if (*kind == T_YEAR4 && run == 2)
            *kind = T_YEAR2;
        return true;
    }
    return false;
}

/* Compiles a Joda-style pattern into f. Returns 0, or -1 with err filled. */
static int compile_pattern(struct fmt *f, const char *p, size_t n, char *err, size_t errlen)
{
    f->kind = F_PATTERN;
    f->ntoks = 0;
    for (size_t i = 0; i < n;) {
        char c = p[i];
        size_t run = 1;
        struct tok t = {T_LIT, c};

        if (f->ntoks == MAX_TOKENS) {
            snprintf(err, errlen, "format '%.*s' is too long", (int)n, p);
            return -1;
        }
        if (c == '\'') { /* quoted literal text; '' is a quote */
            size_t j = i + 1;
            if (j < n && p[j] == '\'') {
                f->toks[f->ntoks++] = (struct tok){T_LIT, '\''};
                i += 2;
                continue;
            }
            for (; j < n && p[j] != '\'' && f->ntoks < MAX_TOKENS; j++)
                f->toks[f->ntoks++] = (struct tok){T_LIT, p[j]};
            if (j >= n) {
                snprintf(err, errlen, "format '%.*s': unterminated quote", (int)n, p);
                return -1;
            }
            i = j + 1;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
            f->toks[f->ntoks++] = t;
            i++;
            continue;
        }
        while (i + run < n && p[i + run] == c)
            run++;
        if (!letter_token(c, run, &t.kind)) {
            snprintf(err, errlen,
                     "format '%.*s': pattern letter '%c' is not supported (use y M d H h m s S "
                     "Z a E, or quote literal text)",
                     (int)n, p, c);
            return -1;
        }
        f->toks[f->ntoks++] = t;
        i += run;
    }
    return 0;
}

struct tj_time_spec *tj_time_spec_create(const char *spec, char *err, size_t errlen)
{
    struct tj_time_spec *t;
    const char *sp, *p;

    while (*spec == ' ')
        spec++;
    sp = strchr(spec, ' ');
    if (!*spec || !sp) {
        snprintf(err, errlen,
                 "'%s': expected 'FIELD FORMAT[|FORMAT...]' (e.g. 'timestamp "
                 "dd/MMM/yyyy:HH:mm:ss Z')",
                 spec);
        return NULL;
    }
    t = calloc(1, sizeof(*t));
    if (!t || !(t->field = strndup(spec, (size_t)(sp - spec)))) {
        free(t);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p = sp + 1;
    while (*p == ' ')
        p++;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        struct fmt *f;

        if (n == 0) {
            snprintf(err, errlen, "an empty format in '%s'", spec);
            goto fail;
        }
        if (n > 5 && strncmp(p, "zone=", 5) == 0) {
            if (parse_offset(p + 5, n - 5, &t->zone_s)) {
                snprintf(err, errlen, "zone '%.*s': use UTC, +HH:MM or -HHMM", (int)(n - 5), p + 5);
                goto fail;
            }
        } else if (t->nfmts == TJ_TIME_MAX_FORMATS) {
            snprintf(err, errlen, "more than %d formats", TJ_TIME_MAX_FORMATS);
            goto fail;
        } else {
            f = &t->fmts[t->nfmts++];
            if (n == 7 && memcmp(p, "ISO8601", 7) == 0)
                f->kind = F_ISO8601;
            else if (n == 4 && memcmp(p, "UNIX", 4) == 0)
                f->kind = F_UNIX;
            else if (n == 7 && memcmp(p, "UNIX_MS", 7) == 0)
                f->kind = F_UNIX_MS;
            else if (n == 6 && memcmp(p, "TAI64N", 6) == 0)
                f->kind = F_TAI64N;
            else if (compile_pattern(f, p, n, err, errlen))
                goto fail;
        }
        p += n + (bar ? 1 : 0);
    }
    if (t->nfmts == 0) {
        snprintf(err, errlen, "'%s': no format after the field", spec);
        goto fail;
    }
    return t;
fail:
    tj_time_spec_destroy(t);
    return NULL;
}

void tj_time_spec_destroy(struct tj_time_spec *t)
{
    if (!t)
        return;
    free(t->field);
    free(t);
}

const char *tj_time_spec_field(const struct tj_time_spec *t)
{
    return t->field;
}

/* ---- parsing ---- */

/* Civil time, as read. */
struct civil {
    int64_t year; /* INT64_MIN: not given */
    int mon, day, hour, min, sec;
    const char *frac; /* fraction digits, or NULL */
    size_t nfrac;
    int zone_s;
    bool zoned;
    int ampm; /* 0 none, 1 am, 2 pm */
};

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in(int64_t y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : dm[m - 1];
}

/* Reads 1..max digits at *p (before end) into *v. */
static bool digits(const char **p, const char *end, size_t min, size_t max, int64_t *v)
{
    size_t k = 0;
    int64_t x = 0;

    while (*p + k < end && k < max && (*p)[k] >= '0' && (*p)[k] <= '9')
        x = x * 10 + ((*p)[k++] - '0');
    if (k < min)
        return false;
    *p += k;
    *v = x;
    return true;
}

/* digits() into an int field of the civil time. */
static inline bool int_at(const char **p, const char *end, size_t min, size_t max, int *field)
{
    int64_t v;

    if (!digits(p, end, min, max, &v))
        return false;
    *field = (int)v;
    return true;
}

/* Reads the separator sep, then exactly two digits into *field. */
static inline bool sep_int2_at(const char **p, const char *end, char sep, int *field)
{
    if (*p >= end || **p != sep)
        return false;
    (*p)++;
    return int_at(p, end, 2, 2, field);
}

/* Reads 1 to 9 fraction digits at *p into c (as a slice of the text). */
static inline bool frac_at(const char **p, const char *end, struct civil *c)
{
    const char *q = *p;

    while (q < end && q - *p < 9 && *q >= '0' && *q <= '9')
        q++;
    if (q == *p)
        return false;
    c->frac = *p;
    c->nfrac = (size_t)(q - *p);
    *p = q;
    return true;
}

/* Matches one of names (its first three letters, then the rest of the full name if the text
 * goes on with it), ASCII case-insensitive. Returns the index or -1. */
static int name_at(const char **p, const char *end, const char *const *names, int n)
{
    const char *s = *p;

    if (end - s < 3)
        return -1;
    for (int i = 0; i < n; i++) {
        const char *nm = names[i];
        size_t k = 3;
        if ((s[0] | 0x20) != nm[0] || (s[1] | 0x20) != nm[1] || (s[2] | 0x20) != nm[2])
            continue;
        while (nm[k] && s + k < end && (s[k] | 0x20) == nm[k])
            k++;
        *p = s + (nm[k] ? 3 : k); /* the full name, or its abbreviation */
        return i;
    }
    return -1;
}

/* Reads a zone at *p: Z, or +HH[[:]MM]. */
static bool zone_at(const char **p, const char *end, int *off)
{
    const char *s = *p;
    size_t n = 0;

    if (s < end && (*s == 'Z' || *s == 'z')) {
        *off = 0;
        *p = s + 1;
        return true;
    }
    if (s >= end || (*s != '+' && *s != '-'))
        return false;
    n = 1;
    while (s + n < end && n < 6 && ((s[n] >= '0' && s[n] <= '9') || (n == 3 && s[n] == ':')))
        n++;
    if (n == 4 && s[3] == ':') /* "+01:" then something else */
        n = 3;
    if (n != 3 && n != 5 && n != 6)
        return false;
    if (n == 6 && s[3] != ':')
        return false;
    if (n == 5 && s[3] == ':')
        return false;
    if (parse_offset(s, n, off))
        return false;
    *p = s + n;
    return true;
}

static bool run_pattern(const struct fmt *f, const char *s, const char *end, struct civil *c)
{
    const char *p = s;
    int64_t v;

    for (size_t i = 0; i < f->ntoks; i++) {
        const struct tok *t = &f->toks[i];
        switch (t->kind) {
        case T_LIT:
            if (p >= end || *p != t->lit)
                return false;
            p++;
            break;
        case T_YEAR4:
            if (!digits(&p, end, 4, 4, &v))
                return false;
            c->year = v;
            break;
        case T_YEAR2:
            if (!digits(&p, end, 2, 2, &v))
                return false;
            c->year = 2000 + v;
            break;
        case T_MONTH:
            if (!int_at(&p, end, 1, 2, &c->mon))
                return false;
            break;
        case T_MONTHN: {
            int m = name_at(&p, end, months, 12);
            if (m < 0)
                return false;
            c->mon = m + 1;
            break;
        }
        case T_DAY:
            if (!int_at(&p, end, 1, 2, &c->day))
                return false;
            break;
        case T_HOUR:
        case T_HOUR12:
            if (!int_at(&p, end, 1, 2, &c->hour))
                return false;
            break;
        case T_MIN:
            if (!int_at(&p, end, 1, 2, &c->min))
                return false;
            break;
        case T_SEC:
            if (!int_at(&p, end, 1, 2, &c->sec))
                return false;
            break;
        case T_FRAC:
            if (!frac_at(&p, end, c))
                return false;
            break;
        case T_ZONE:
            if (!zone_at(&p, end, &c->zone_s))
                return false;
            c->zoned = true;
            break;
        case T_ZONEID:
            if (end - p >= 3 && (strncasecmp(p, "UTC", 3) == 0 || strncasecmp(p, "GMT", 3) == 0)) {
                p += 3;
            } else if (p < end && *p == 'Z') {
                p++;
            } else {
                return false;
            }
            c->zone_s = 0;
            c->zoned = true;
            break;
        case T_AMPM:
            if (end - p < 2 || (p[1] != 'M' && p[1] != 'm'))
                return false;
            if (*p == 'A' || *p == 'a')
                c->ampm = 1;
            else if (*p == 'P' || *p == 'p')
                c->ampm = 2;
            else
                return false;
            p += 2;
            break;
        case T_DOW:
            if (name_at(&p, end, days, 7) < 0)
                return false;
            break;
        }
    }
    return p == end;
}

/* ISO 8601 as Logstash reads it: 2011-04-19, then [T ]03:44[:01[.103]], then a zone. */
static bool run_iso(const char *s, const char *end, struct civil *c)
{
    const char *p = s;
    int64_t v;

    if (!digits(&p, end, 4, 4, &v))
        return false;
    c->year = v;
    if (!sep_int2_at(&p, end, '-', &c->mon) || !sep_int2_at(&p, end, '-', &c->day))
        return false;
    if (p == end)
        return true;
    if (*p != 'T' && *p != ' ')
        return false;
    p++;
    if (!int_at(&p, end, 2, 2, &c->hour) || !sep_int2_at(&p, end, ':', &c->min))
        return false;
    if (p < end && *p == ':') {
        if (!sep_int2_at(&p, end, ':', &c->sec))
            return false;
        if (p < end && (*p == '.' || *p == ',')) {
            p++;
            if (!frac_at(&p, end, c))
                return false;
            while (p < end && *p >= '0' && *p <= '9') /* beyond nanoseconds: dropped */
                p++;
        }
    }
    if (p < end && *p == ' ')
        p++;
    if (p == end)
        return true;
    if (!zone_at(&p, end, &c->zone_s))
        return false;
    c->zoned = true;
    return p == end;
}

static inline void put2(char *o, unsigned v)
{
    o[0] = (char)('0' + v / 10);
    o[1] = (char)('0' + v % 10);
}

/* Writes secs (UTC) and the fraction digits as RFC 3339 into out. Returns the length. */
static int format_utc(int64_t secs, const char *frac, size_t nfrac, char *out)
{
    int64_t day = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400), y;
    int64_t rem = secs - day * 86400;
    unsigned m, d;
    int n;

    civil_from_days(day, &y, &m, &d);
    if (y < 0 || y > 9999)
        return -1;
    /* "YYYY-MM-DDTHH:MM:SS", written digit by digit (no printf on the parse path) */
    put2(out, (unsigned)(y / 100));
    put2(out + 2, (unsigned)(y % 100));
    out[4] = '-';
    put2(out + 5, m);
    out[7] = '-';
    put2(out + 8, d);
    out[10] = 'T';
    put2(out + 11, (unsigned)(rem / 3600));
    out[13] = ':';
    put2(out + 14, (unsigned)(rem / 60 % 60));
    out[16] = ':';
    put2(out + 17, (unsigned)(rem % 60));
    n = 19;
    if (nfrac) {
        out[n++] = '.';
        memcpy(out + n, frac, nfrac);
        n += (int)nfrac;
    }
    out[n++] = 'Z';
    out[n] = '\0';
    return n;
}

/* Seconds since the epoch of c (its month in 1..12), zone_s seconds east of UTC. */
static inline int64_t civil_secs(const struct civil *c, int zone_s)
{
    return days_from_civil(c->year, (unsigned)c->mon, (unsigned)c->day) * 86400 + c->hour * 3600 +
           c->min * 60 + c->sec - zone_s;
}

/* Seconds of the reference time (RFC 3339), or now. */
static int64_t ref_secs(struct tj_slice ref)
{
    struct civil c = {0};

    if (ref.len && run_iso(ref.ptr, ref.ptr + ref.len, &c) && c.mon >= 1 && c.mon <= 12)
        return civil_secs(&c, c.zone_s);
    return (int64_t)time(NULL);
}

static int civil_out(const struct tj_time_spec *t, struct civil *c, struct tj_slice ref, char *out)
{
    int64_t secs, r = 0;
    bool guessed = c->year == INT64_MIN;
    int zone_s;

    if (c->ampm) {
        if (c->hour < 1 || c->hour > 12)
            return -1;
        c->hour = c->hour % 12 + (c->ampm == 2 ? 12 : 0);
    }
    if (guessed) {
        int64_t y;
        unsigned m, d;
        r = ref_secs(ref);
        civil_from_days(r >= 0 ? r / 86400 : -((-r + 86399) / 86400), &y, &m, &d);
        c->year = y;
    }
    if (c->mon < 1 || c->mon > 12 || c->day < 1 || c->day > days_in(c->year, c->mon) ||
        c->hour > 23 || c->min > 59 || c->sec > 60)
        return -1;
    zone_s = c->zoned ? c->zone_s : t->zone_s;
    secs = civil_secs(c, zone_s);
    if (guessed && secs > r + 86400) { /* a December line read in January */
        c->year--;
        if (c->day > days_in(c->year, c->mon))
            return -1;
        secs = civil_secs(c, zone_s);
    }
    return format_utc(secs, c->frac, c->nfrac, out);
}

static int hexval(char ch)
{
    return ch >= '0' && ch <= '9'   ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                    : -1;
}

static int parse_one(const struct tj_time_spec *t, const struct fmt *f, const char *s, size_t n,
                     struct tj_slice ref, char *out)
{
    const char *end = s + n, *p = s;
    struct civil c = {.year = INT64_MIN};
    int64_t v = 0;

    switch (f->kind) {
    case F_ISO8601:
        if (!run_iso(s, end, &c))
            return -1;
        return civil_out(t, &c, ref, out);
    case F_PATTERN:
        c.day = 1;
        c.mon = 1;
        if (!run_pattern(f, s, end, &c))
            return -1;
        return civil_out(t, &c, ref, out);
    case F_UNIX: {
        const char *frac = NULL;
        size_t nfrac = 0;
        if (!digits(&p, end, 1, 12, &v))
            return -1;
        if (p < end && *p == '.') {
            frac = ++p;
            while (p < end && *p >= '0' && *p <= '9')
                p++;
            nfrac = (size_t)(p - frac) > 9 ? 9 : (size_t)(p - frac);
        }
        if (p != end)
            return -1;
        return format_utc(v, frac, nfrac, out);
    }
    case F_UNIX_MS: {
        char ms[3];
        if (!digits(&p, end, 1, 15, &v) || p != end)
            return -1;
        ms[0] = (char)('0' + v % 1000 / 100);
        ms[1] = (char)('0' + v % 100 / 10);
        ms[2] = (char)('0' + v % 10);
        return format_utc(v / 1000, ms, 3, out);
    }
    case F_TAI64N: {
        uint64_t secs = 0, nanos = 0;
        char ns[9];
        if (p < end && *p == '@')
            p++;
        if (end - p != 24)
            return -1;
        for (int i = 0; i < 24; i++) {
            int h = hexval(p[i]);
            if (h < 0)
                return -1;
            if (i < 16)
                secs = secs << 4 | (uint64_t)h;
            else
                nanos = nanos << 4 | (uint64_t)h;
        }
        /* TAI64 labels start at 2^62; TAI runs 10 s ahead of UTC at the label's origin, as
         * Logstash counts it */
        if (secs < ((uint64_t)1 << 62) + 10 || nanos > 999999999)
            return -1;
        for (int i = 8; i >= 0; i--, nanos /= 10)
            ns[i] = (char)('0' + nanos % 10);
        return format_utc((int64_t)(secs - ((uint64_t)1 << 62) - 10), ns, 9, out);
    }
    }
    return -1;
}

int tj_time_parse(const struct tj_time_spec *t, const char *s, size_t n, struct tj_slice ref,
                  char *out)
{
    for (size_t i = 0; i < t->nfmts; i++) {
        int k = parse_one(t, &t->fmts[i], s, n, ref, out);
        if (k > 0)
            return k;
    }
    return -1;
}
