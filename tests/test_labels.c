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
    cJSON *l = labels_of("{\"logPattern.2\":\"two\",\"logPattern\":\"zero\",\"logPattern.1\":"
                         "\"one\",\"logPattern.4\":\"four\",\"other\":\"x\"}");
    const char *v[16];
    size_t n = tj_labels_patterns(l, "", v, 16);

    /* logPattern first, then .1, .2, ... until the first missing number */
    CHECK(n == 3);
    CHECK(n == 3 && strcmp(v[0], "zero") == 0 && strcmp(v[1], "one") == 0 &&
          strcmp(v[2], "two") == 0);
    cJSON_Delete(l);
}

static void test_prefix(void)
{
    cJSON *l = labels_of("{\"logPattern\":\"plain\",\"com.df.logPattern\":\"prefixed\","
                         "\"com.df.logPattern.1\":\"alt\"}");
    const char *v[16];
    size_t n = tj_labels_patterns(l, "com.df.", v, 16);

    CHECK(n == 2 && strcmp(v[0], "prefixed") == 0 && strcmp(v[1], "alt") == 0);
    n = tj_labels_patterns(l, "", v, 16);
    CHECK(n == 1 && strcmp(v[0], "plain") == 0);
    cJSON_Delete(l);
}

static void test_empty_and_limits(void)
{
    cJSON *l = labels_of("{\"logPattern\":\"\",\"logPattern.1\":\"a\",\"logPattern.2\":\"b\","
                         "\"logPattern.3\":\"c\"}");
    const char *v[16];

    CHECK(tj_labels_patterns(l, "", v, 16) == 3); /* an empty value is no pattern */
    CHECK(tj_labels_patterns(l, "", v, 2) == 2);  /* never more than asked */
    cJSON_Delete(l);
    l = labels_of("{\"logPattern\":5}");
    CHECK(tj_labels_patterns(l, "", v, 16) == 0); /* not a string */
    cJSON_Delete(l);
    CHECK(tj_labels_patterns(NULL, "", v, 16) == 0);
}

/* Only log labels leave the manager: never other labels, however close their names. */
static void test_published_labels(void)
{
    static const char *const yes[] = {"logPattern",   "logPattern.1", "logPattern.12",
                                      "logMultiline", "logTopic",     "logIndex"};
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
};

int main(int argc, char **argv)
{
    return tj_test_main(tests, TJ_ARRAY_LEN(tests), argc, argv);
}
