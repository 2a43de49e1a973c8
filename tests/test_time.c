/* test_time.c: event time from a field's text (tj_time): every format kind, zones, fractions,
 * the year of year-less formats, and what does not fit. */
#include <stdlib.h>
#include <string.h>

#include "tj_test.h"
#include "tj_time.h"

/* The RFC 3339 text spec gives for s (reference time ref), or "FAIL". */
static const char *parse(const char *spec, const char *s, const char *ref, char *out)
{
    char err[256];
    struct tj_time_spec *t = tj_time_spec_create(spec, err, sizeof(err));
    int n;

    if (!t) {
        snprintf(out, TJ_TIME_TEXT_MAX, "SPEC: %.30s", err);
        return out;
    }
    n = tj_time_parse(t, s, strlen(s), (struct tj_slice){ref, strlen(ref)}, out);
    if (n < 0)
        strcpy(out, "FAIL");
    tj_time_spec_destroy(t);
    return out;
}

static void test_formats(void)
{
    char b[TJ_TIME_TEXT_MAX];
    const char *ref = "2024-06-15T12:00:00Z";

    CHECK_STR(parse("t dd/MMM/yyyy:HH:mm:ss Z", "10/Oct/2000:13:55:36 -0700", ref, b),
              "2000-10-10T20:55:36Z");
    CHECK_STR(parse("t dd/MMM/yyyy:HH:mm:ss Z", "24/Feb/2015:23:13:42 +0000", ref, b),
              "2015-02-24T23:13:42Z");
    CHECK_STR(parse("t ISO8601", "2011-04-19T03:44:01.103Z", ref, b), "2011-04-19T03:44:01.103Z");
    CHECK_STR(parse("t ISO8601", "2011-04-19 03:44:01,123456789+02:00", ref, b),
              "2011-04-19T01:44:01.123456789Z");
    CHECK_STR(parse("t ISO8601", "2011-04-19T03:44", ref, b), "2011-04-19T03:44:00Z");
    CHECK_STR(parse("t UNIX", "1432555199.633017", ref, b), "2015-05-25T11:59:59.633017Z");
    CHECK_STR(parse("t UNIX", "0", ref, b), "1970-01-01T00:00:00Z");
    CHECK_STR(parse("t UNIX_MS", "1366125117000", ref, b), "2013-04-16T15:11:57.000Z");
    CHECK_STR(parse("t TAI64N", "@4000000052f88ea32489532c", ref, b),
              "2014-02-10T08:32:25.612979500Z");
    CHECK_STR(parse("t EEE MMM dd HH:mm:ss.SSSSSS yyyy", "Mon Aug 31 09:30:48.958285 2015", ref, b),
              "2015-08-31T09:30:48.958285Z");
    CHECK_STR(parse("t yyyy-MM-dd'T'HH:mm:ss.SSSZZ", "2020-02-29T23:00:00.5+01:00", ref, b),
              "2020-02-29T22:00:00.5Z");
    CHECK_STR(parse("t dd/MM/yy hh:mm a|zone=-05:00", "31/12/15 11:59 PM", ref, b),
              "2016-01-01T04:59:00Z");
    CHECK_STR(parse("t MMMM d, yyyy", "September 3, 2021", ref, b), "2021-09-03T00:00:00Z");
}

/* Syslog's formats have no year and no zone: the reference's year, the zone given (else UTC),
 * and the year before for a time more than a day after the reference. */
static void test_syslog_year_and_zone(void)
{
    char b[TJ_TIME_TEXT_MAX];
    const char *spec = "t MMM dd HH:mm:ss|MMM  d HH:mm:ss";

    CHECK_STR(parse(spec, "Jun 14 08:00:01", "2024-06-15T12:00:00Z", b), "2024-06-14T08:00:01Z");
    CHECK_STR(parse(spec, "Jun  4 08:00:01", "2024-06-15T12:00:00Z", b), "2024-06-04T08:00:01Z");
    CHECK_STR(parse(spec, "Dec 31 23:59:59", "2025-01-01T00:00:05Z", b), "2024-12-31T23:59:59Z");
    CHECK_STR(parse("t MMM dd HH:mm:ss|zone=+02:00", "Jun 14 08:00:01", "2024-06-15T12:00:00Z", b),
              "2024-06-14T06:00:01Z");
    CHECK_STR(parse(spec, "Feb 29 10:00:00", "2024-03-01T00:00:00Z", b), "2024-02-29T10:00:00Z");
}

static void test_what_does_not_fit(void)
{
    char b[TJ_TIME_TEXT_MAX];
    const char *ref = "2024-06-15T12:00:00Z";

    CHECK_STR(parse("t dd/MMM/yyyy:HH:mm:ss Z", "31/Feb/2015:23:13:42 +0000", ref, b), "FAIL");
    CHECK_STR(parse("t dd/MMM/yyyy:HH:mm:ss Z", "24/Foo/2015:23:13:42 +0000", ref, b), "FAIL");
    CHECK_STR(parse("t dd/MMM/yyyy:HH:mm:ss Z", "24/Feb/2015:23:13:42", ref, b), "FAIL");
    CHECK_STR(parse("t dd/MMM/yyyy:HH:mm:ss Z", "24/Feb/2015:23:13:42 +0000 x", ref, b), "FAIL");
    CHECK_STR(parse("t ISO8601", "2011-13-01T00:00:00Z", ref, b), "FAIL");
    CHECK_STR(parse("t ISO8601", "", ref, b), "FAIL");
    CHECK_STR(parse("t UNIX", "12a", ref, b), "FAIL");
    CHECK_STR(parse("t TAI64N", "@40000000", ref, b), "FAIL");
    CHECK_STR(parse("t UNIX|ISO8601", "2011-04-19T03:44:01Z", ref, b), "2011-04-19T03:44:01Z");
    CHECK(strncmp(parse("t", "x", ref, b), "SPEC", 4) == 0);
    CHECK(strncmp(parse("t yyyy-QQ", "x", ref, b), "SPEC", 4) == 0);
    CHECK(strncmp(parse("t ISO8601|zone=Mars", "x", ref, b), "SPEC", 4) == 0);
}

static const struct tj_test tests[] = {
    {"formats", test_formats},
    {"syslog_year_and_zone", test_syslog_year_and_zone},
    {"what_does_not_fit", test_what_does_not_fit},
};

int main(int argc, char **argv)
{
    return tj_test_main(tests, TJ_ARRAY_LEN(tests), argc, argv);
}
