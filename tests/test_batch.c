/* test_batch.c: events parsed in batches give the records that one-by-one parsing gives, in
 * order, whatever their texts' lifetime and size. */
#include <stdlib.h>
#include <string.h>

#include "tj_batch.h"
#include "tj_test.h"

#define NEVENTS 300

struct fixture {
    struct tj_grok_lib *lib;
    struct tj_ruleset *rs;
    struct tj_matcher *m;
    struct tj_meta meta;
    struct tj_parse_stats st;
    struct tj_buf out;
};

static bool fixture_init(struct fixture *f)
{
    /* Two alternatives with different capture counts: each event keeps its own captures. */
    static const char *const exprs[] = {"^a=%{INT:a:int} b=%{WORD:b} c=%{WORD:c.d}$",
                                        "^%{WORD:w}$"};
    char err[512];

    memset(f, 0, sizeof(*f));
    f->lib = tj_grok_lib_create();
    tj_grok_lib_load_builtin(f->lib, err, sizeof(err));
    f->rs = tj_ruleset_create(f->lib, exprs, 2, NULL, err, sizeof(err));
    f->m = tj_matcher_create(&TJ_MATCH_LIMITS_DEFAULT);
    tj_meta_init(&f->meta);
    tj_buf_init(&f->out, 64 << 20);
    return f->rs && f->m;
}

static void fixture_fini(struct fixture *f)
{
    tj_ruleset_unref(f->rs);
    tj_matcher_destroy(f->m);
    tj_meta_fini(&f->meta);
    tj_buf_fini(&f->out);
    tj_grok_lib_destroy(f->lib);
}

static int encode(void *arg, const struct tj_event *ev, const struct tj_match_result *res,
                  const size_t *ov)
{
    struct fixture *f = arg;

    return tj_ruleset_encode(f->rs, ev, res, ov, &f->meta, &f->out, &f->st);
}

/* Event i's message: a match of the first or second alternative, a failure, or (every 97th) a
 * 300 KiB line, larger than the batch's arena. */
static size_t message(int i, char *buf, size_t cap)
{
    if (i % 97 == 50) {
        memset(buf, 'x', 300 * 1024);
        return 300 * 1024;
    }
    switch (i % 3) {
    case 0:
        return (size_t)snprintf(buf, cap, "a=%d b=w%d c=z%d", i, i, i);
    case 1:
        return (size_t)snprintf(buf, cap, "word%d", i);
    default:
        return (size_t)snprintf(buf, cap, "no match %d", i);
    }
}

static void test_batches_match_one_by_one(void)
{
    struct fixture one, many;
    struct tj_batch *b = tj_batch_create();
    char *region = malloc(NEVENTS * 64), *volatile_text = malloc(400 * 1024);
    static const char now[] = "2026-11-25T17:56:16.000000001Z";

    CHECK(b && region && volatile_text && fixture_init(&one) && fixture_init(&many));
    if (!b || !region || !volatile_text || !one.rs || !many.rs)
        return;
    tj_batch_region(b, region, region + NEVENTS * 64, now, sizeof(now) - 1);
    for (int i = 0; i < NEVENTS; i++) {
        /* Odd events' texts live in the region; even ones' in a buffer that the next event
         * overwrites, as an assembler's scratch is: the batch must have copied them. */
        bool in_region = i % 2 && i % 97 != 50;
        char *text = in_region ? region + i * 64 : volatile_text;
        size_t n = message(i, text, in_region ? 64 : 400 * 1024);
        struct tj_event ev = {.time = {now, sizeof(now) - 1},
                              .message = {text, n},
                              .stream = TJ_SLICE_LIT("stdout"),
                              .offset = i};

        CHECK(tj_ruleset_apply(one.rs, one.m, &ev, &one.meta, &one.out, &one.st) == 0);
        CHECK(tj_batch_push(b, &ev, many.rs, many.m, encode, &many) == 0);
        memset(volatile_text, '#', n < 400 * 1024 ? n : 400 * 1024);
    }
    CHECK(tj_batch_run(b, many.rs, many.m, encode, &many) == 0);
    CHECK(one.st.records == NEVENTS && many.st.records == NEVENTS);
    CHECK(one.st.matched == many.st.matched && one.st.matched > NEVENTS / 2);
    CHECK(one.out.len == many.out.len && memcmp(one.out.data, many.out.data, one.out.len) == 0);
    /* Nothing left: a second run writes nothing. */
    CHECK(tj_batch_run(b, many.rs, many.m, encode, &many) == 0 && many.st.records == NEVENTS);
    fixture_fini(&one);
    fixture_fini(&many);
    tj_batch_destroy(b);
    free(region);
    free(volatile_text);
}

static int fail_third(void *arg, const struct tj_event *ev, const struct tj_match_result *res,
                      const size_t *ov)
{
    int *calls = arg;

    (void)ev;
    (void)res;
    (void)ov;
    return ++*calls == 3 ? TJ_EIO : 0;
}

/* An encoding error stops the run, is returned, and leaves the batch empty. */
static void test_error_stops_the_run(void)
{
    struct fixture f;
    struct tj_batch *b = tj_batch_create();
    static const char none[1];
    int calls = 0;

    CHECK(b && fixture_init(&f));
    tj_batch_region(b, none, none, none, 0);
    for (int i = 0; i < 5; i++) {
        struct tj_event ev = {.message = TJ_SLICE_LIT("word")};
        CHECK(tj_batch_push(b, &ev, f.rs, f.m, fail_third, &calls) == 0);
    }
    CHECK(tj_batch_run(b, f.rs, f.m, fail_third, &calls) == TJ_EIO && calls == 3);
    CHECK(tj_batch_run(b, f.rs, f.m, fail_third, &calls) == 0 && calls == 3);
    fixture_fini(&f);
    tj_batch_destroy(b);
}

int main(int argc, char **argv)
{
    static const struct tj_test tests[] = {
        {"batches_match_one_by_one", test_batches_match_one_by_one},
        {"error_stops_the_run", test_error_stops_the_run},
    };
    return tj_test_main(tests, TJ_ARRAY_LEN(tests), argc, argv);
}
