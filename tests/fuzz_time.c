/* fuzz_time.c: libFuzzer target for event-time specs and their parsing (tj_time: the text of a
 * logTimestamp label and the field values it reads are outside input). The input is a spec up
 * to the first newline, then the text to parse. A spec that compiles is tried on the text and on
 * fixed times; what tj_time_parse writes must be RFC 3339 UTC, "YYYY-MM-DDTHH:MM:SS[.F]Z",
 * within TJ_TIME_TEXT_MAX. It must never crash, leak or read past the text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tj_time.h"

static const char *const texts[] = {
    "10/Oct/2000:13:55:36 -0700", "2011-04-19T03:44:01.103Z", "1432555199.633017", "1366125117000",
    "@4000000052f88ea32489532c",  "Dec  9 13:01:26",          "Feb 29 10:00:00",   "",
    "31/Feb/2015:23:13:42 +0000",
};

static void check_out(const char *out, int n)
{
    if (n < 0)
        return;
    if (n < 20 || n >= TJ_TIME_TEXT_MAX || out[n] != '\0' || out[n - 1] != 'Z' || out[4] != '-' ||
        out[7] != '-' || out[10] != 'T' || out[13] != ':' || out[16] != ':' ||
        (n > 20 && out[19] != '.'))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    size_t sl = nl ? (size_t)(nl - (const char *)data) : size;
    char *spec = malloc(sl + 1), *text, err[256], out[TJ_TIME_TEXT_MAX];
    size_t tl = nl ? size - sl - 1 : 0;
    struct tj_time_spec *t;
    struct tj_slice ref = {"2024-06-15T12:00:00.5Z", 22};

    if (!spec)
        return 0;
    memcpy(spec, data, sl);
    spec[sl] = '\0';
    t = tj_time_spec_create(spec, err, sizeof(err));
    free(spec);
    if (!t)
        return 0;
    /* the text in a buffer of its own size, so a read past it is caught */
    text = malloc(tl ? tl : 1);
    if (text) {
        memcpy(text, nl ? nl + 1 : "", tl);
        check_out(out, tj_time_parse(t, text, tl, ref, out));
        check_out(out, tj_time_parse(t, text, tl, (struct tj_slice){text, tl}, out));
        free(text);
    }
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        check_out(out, tj_time_parse(t, texts[i], strlen(texts[i]), ref, out));
    tj_time_spec_destroy(t);
    return 0;
}
