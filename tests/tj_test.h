/* tj_test.h: the unit-test harness. A test file lists its tests in one table and calls
 * tj_test_main; CHECK records a failure with its line and goes on; the run ends with the
 * line "N passed, N failed" that CI reads. */
#ifndef TJ_TEST_H
#define TJ_TEST_H

#include <stdio.h>
#include <stdbool.h>
#include <string.h>

struct tj_test {
    const char *name;
    void (*fn)(void);
};

extern int tj_test_failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            tj_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

#define CHECK_STR(got, want)                                                                       \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        if (!g_ || strcmp(g_, w_) != 0) {                                                          \
            fprintf(stderr, "%s:%d: got  %s\n%*swant %s\n", __FILE__, __LINE__,                    \
                    g_ ? g_ : "(null)", (int)strlen(__FILE__) + 8, "", w_);                        \
            tj_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

int tj_test_main(const struct tj_test *tests, size_t n, int argc, char **argv);

/* Reads a whole file, NUL-terminated. Returns it (free()) and its length in *len, or NULL. */
char *tj_test_read_file(const char *path, size_t *len);

struct cJSON;

/* Calls fn(ctx, lineno, obj) for each non-empty line of the NDJSON file at path (lineno counts
 * from 1). A line that is not JSON is named on stderr and skipped. Returns the number of such
 * lines, or 1 when the file cannot be read (also named); the caller counts them as failures. */
unsigned tj_test_each_ndjson(const char *path,
                             void (*fn)(void *ctx, unsigned lineno, const struct cJSON *obj),
                             void *ctx);

/* A copy of s[0..n) that ends exactly where an unreadable page begins, so that a read past its
 * end faults even without AddressSanitizer. Returns it (free with tj_test_guarded_free and the
 * same n), or NULL when the pages cannot be mapped. */
char *tj_test_guarded_copy(const char *s, size_t n);
void tj_test_guarded_free(char *p, size_t n);

#endif
