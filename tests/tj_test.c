/* tj_test.c: runs a table of tests (all, or the names given on the command line). */
#include "tj_test.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int tj_test_failures;

int tj_test_main(const struct tj_test *tests, size_t n, int argc, char **argv)
{
    int passed = 0, failed = 0;

    for (size_t i = 0; i < n; i++) {
        int before = tj_test_failures;
        bool run = argc < 2;
        for (int a = 1; a < argc; a++)
            run = run || strcmp(argv[a], tests[i].name) == 0;
        if (!run)
            continue;
        tests[i].fn();
        if (tj_test_failures == before) {
            passed++;
            printf("ok   %s\n", tests[i].name);
        } else {
            failed++;
            printf("FAIL %s\n", tests[i].name);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

char *tj_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        if (buf) {
            buf[n] = '\0';
            *len = (size_t)n;
        }
    }
    fclose(f);
    return buf;
}

unsigned tj_test_each_ndjson(const char *path,
                             void (*fn)(void *ctx, unsigned lineno, const cJSON *obj), void *ctx)
{
    size_t n;
    char *text = tj_test_read_file(path, &n);
    unsigned lineno = 0, bad = 0;

    if (!text) {
        fprintf(stderr, "%s: cannot read\n", path);
        return 1;
    }
    for (char *p = text, *e; p < text + n; p = e + 1) {
        cJSON *obj;
        e = strchr(p, '\n');
        if (!e)
            e = text + n;
        *e = '\0';
        lineno++;
        if (!*p)
            continue;
        obj = cJSON_Parse(p);
        if (!obj) {
            fprintf(stderr, "%s:%u: not JSON\n", path, lineno);
            bad++;
            continue;
        }
        fn(ctx, lineno, obj);
        cJSON_Delete(obj);
    }
    free(text);
    return bad;
}

/* Pages holding n bytes, plus the unreadable one after them. */
static size_t guarded_pages(size_t n, size_t page)
{
    return (n + page - 1) / page + 1;
}

char *tj_test_guarded_copy(const char *s, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = guarded_pages(n, page);
    char *base =
        mmap(NULL, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *guard;

    if (base == MAP_FAILED)
        return NULL;
    guard = base + (pages - 1) * page;
    if (mprotect(guard, page, PROT_NONE)) {
        munmap(base, pages * page);
        return NULL;
    }
    if (n)
        memcpy(guard - n, s, n);
    return guard - n;
}

void tj_test_guarded_free(char *p, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = guarded_pages(n, page);

    if (p)
        munmap(p + n - (pages - 1) * page, pages * page);
}
