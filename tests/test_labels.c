/* test_labels.c: discover/ label names to pattern alternatives (tj_labels_patterns), and which
 * labels a manager's label table may publish (tj_labels_is_log_label). */
#include <string.h>

#include "tj_discover.h"
#include "tj_test.h"

static cJSON *labels_of(const char *json)
{
    cJSON *j = cJSON_Parse(json);
    CHECK(j != NULL);
    return j;
}

static void test_order_and_gaps(void)
{
    bool more;
    cJSON *l = labels_of("{\"logPattern.2\":\"two\",\"logPattern\":\"zero\",\"logPattern.1\":"
                         "\"one\",\"logPattern.4\":\"four\",\"other\":\"x\"}");
    const char *v[16];
    size_t n = tj_labels_patterns(l, "", v, 16, &more);

    /* logPattern first, then .1, .2, ... until the first missing number */
    CHECK(n == 3);
    CHECK(n == 3 && strcmp(v[0], "zero") == 0 && strcmp(v[1], "one") == 0 &&
          strcmp(v[2], "two") == 0);
    cJSON_Delete(l);
}

static void test_prefix(void)
{
    bool more;
    cJSON *l = labels_of("{\"logPattern\":\"plain\",\"com.df.logPattern\":\"prefixed\","
                         "\"com.df.logPattern.1\":\"alt\"}");
    const char *v[16];
    size_t n = tj_labels_patterns(l, "com.df.", v, 16, &more);

    CHECK(n == 2 && strcmp(v[0], "prefixed") == 0 && strcmp(v[1], "alt") == 0);
    n = tj_labels_patterns(l, "", v, 16, &more);
    CHECK(n == 1 && strcmp(v[0], "plain") == 0);
    cJSON_Delete(l);
}

static void test_empty_and_limits(void)
{
    bool more;
    cJSON *l = labels_of("{\"logPattern\":\"\",\"logPattern.1\":\"a\",\"logPattern.2\":\"b\","
                         "\"logPattern.3\":\"c\"}");
    const char *v[16];

    CHECK(tj_labels_patterns(l, "", v, 16, &more) == 3); /* an empty value is no pattern */
    CHECK(tj_labels_patterns(l, "", v, 2, &more) == 2);  /* never more than asked */
    cJSON_Delete(l);
    l = labels_of("{\"logPattern\":5}");
    CHECK(tj_labels_patterns(l, "", v, 16, &more) == 0); /* not a string */
    cJSON_Delete(l);
    CHECK(tj_labels_patterns(NULL, "", v, 16, &more) == 0);
}

/* Alternatives past the limit are left out, and the caller is told so (it logs and counts it):
 * never silently. Exactly the limit is not "more". */
static void test_more_than_max(void)
{
    char json[2048];
    const char *v[17];
    bool more;
    size_t k = (size_t)snprintf(json, sizeof(json), "{\"logPattern\":\"p0\"");
    cJSON *l;

    for (int i = 1; i <= 16; i++)
        k += (size_t)snprintf(json + k, sizeof(json) - k, ",\"logPattern.%d\":\"p%d\"", i, i);
    snprintf(json + k, sizeof(json) - k, "}");
    l = labels_of(json);
    CHECK(tj_labels_patterns(l, "", v, 16, &more) == 16 && more); /* 17 alternatives */
    CHECK(strcmp(v[0], "p0") == 0 && strcmp(v[15], "p15") == 0);
    CHECK(tj_labels_patterns(l, "", v, 17, &more) == 17 && !more);
    cJSON_DeleteItemFromObject(l, "logPattern.16");
    CHECK(tj_labels_patterns(l, "", v, 16, &more) == 16 && !more); /* exactly 16 */
    cJSON_ReplaceItemInObject(l, "logPattern.15", cJSON_CreateString(""));
    CHECK(tj_labels_patterns(l, "", v, 15, &more) == 15 && !more); /* an empty one is none */
    cJSON_Delete(l);
}

/* Only log labels leave the manager: never other labels, however close their names. */
static void test_published_labels(void)
{
    static const char *const yes[] = {"logPattern",   "logPattern.1", "logPattern.12",
                                      "logMultiline", "logTopic",     "logIndex",
                                      "logEcs",       "logTimestamp", "logPatternDefinitions"};
    static const char *const no[] = {
        "logPattern.", "logPattern.0",      "logPattern.1x", "logPattern.-1",
        "logpattern",  "logPatterns",       "xlogPattern",   "secret",
        "logTopic2",   "com.df.logPattern", "logIndex.1",    "",
    };

    for (size_t i = 0; i < TJ_ARRAY_LEN(yes); i++)
        CHECK(tj_labels_is_log_label(yes[i], ""));
    for (size_t i = 0; i < TJ_ARRAY_LEN(no); i++)
        CHECK(!tj_labels_is_log_label(no[i], ""));
    CHECK(tj_labels_is_log_label("com.df.logPattern", "com.df."));
    CHECK(tj_labels_is_log_label("com.df.logPattern.3", "com.df."));
    CHECK(!tj_labels_is_log_label("logPattern", "com.df."));
    CHECK(!tj_labels_is_log_label("com.df.other", "com.df."));
}

static const struct tj_test tests[] = {
    {"published_labels", test_published_labels},
    {"order_and_gaps", test_order_and_gaps},
    {"prefix", test_prefix},
    {"empty_and_limits", test_empty_and_limits},
    {"more_than_max", test_more_than_max},
};

int main(int argc, char **argv)
{
    return tj_test_main(tests, TJ_ARRAY_LEN(tests), argc, argv);
}
