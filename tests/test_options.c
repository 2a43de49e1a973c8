/* test_options.c: every option of every command (and of every output) has help text and is
 * documented in README.md or a page of docs/, and the option parser handles the forms users
 * type. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "tj_cmd.h"
#include "tj_output.h"
#include "tj_test.h"

/* README.md and every .md page of docs/, one after the other (owned; NULL when one cannot be read).
 */
static char *read_docs(void)
{
    size_t len, n = 0;
    char *all = tj_test_read_file(TJ_SOURCE_DIR "/README.md", &len);
    DIR *d = opendir(TJ_SOURCE_DIR "/docs");
    struct dirent *e;

    if (!all || !d) {
        free(all);
        if (d)
            closedir(d);
        return NULL;
    }
    while ((e = readdir(d))) {
        size_t nl = strlen(e->d_name), plen;
        char path[4096], *page, *grown;
        if (nl < 4 || strcmp(e->d_name + nl - 3, ".md") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/docs/%s", TJ_SOURCE_DIR, e->d_name);
        if (!(page = tj_test_read_file(path, &plen)) || !(grown = realloc(all, len + plen + 2))) {
            free(page);
            free(all);
            closedir(d);
            return NULL;
        }
        all = grown;
        all[len++] = '\n';
        memcpy(all + len, page, plen);
        len += plen;
        all[len] = '\0';
        free(page);
        n++;
    }
    closedir(d);
    if (n == 0) {
        fprintf(stderr, "docs/ holds no page\n");
        free(all);
        return NULL;
    }
    return all;
}

static void test_every_option_documented(void)
{
    char *doc = read_docs();

    CHECK(doc != NULL);
    for (size_t c = 0; doc && c < tj_ncmds; c++) {
        char needle[128];
        snprintf(needle, sizeof(needle), "tailjet %s", tj_cmds[c]->name);
        if (!strstr(doc, needle)) {
            fprintf(stderr, "README.md and docs/ do not mention '%s'\n", needle);
            tj_test_failures++;
        }
        for (size_t i = 0; i < tj_cmds[c]->nopts; i++) {
            const struct tj_opt *o = &tj_cmds[c]->opts[i];
            CHECK(o->help && strlen(o->help) > 10);
            snprintf(needle, sizeof(needle), "--%s", o->name);
            if (!strstr(doc, needle)) {
                fprintf(stderr, "README.md and docs/ do not document %s of 'tailjet %s'\n", needle,
                        tj_cmds[c]->name);
                tj_test_failures++;
            }
        }
    }
    /* each output's NAME=VALUE options (--es-opt ...) */
    for (size_t i = 0; doc && i < tj_noutputs; i++) {
        for (size_t k = 0; k < tj_outputs[i]->nopts; k++) {
            const struct tj_opt *o = &tj_outputs[i]->opts[k];
            char needle[128];
            CHECK(o->help && strlen(o->help) > 10);
            snprintf(needle, sizeof(needle), "`%s=", o->name);
            if (!strstr(doc, needle)) {
                fprintf(stderr, "README.md and docs/ do not document --%s %s=\n",
                        tj_outputs[i]->opt_flag, o->name);
                tj_test_failures++;
            }
        }
    }
    free(doc);
}

struct cfg {
    const char *s;
    struct tj_strv v;
    size_t size;
    unsigned u;
    bool flag;
};

static const struct tj_opt opts[] = {
    {"s", TJ_OPT_STRING, offsetof(struct cfg, s), "dflt", "TJ_TEST_S", "S", "a string option",
     "dflt|a|b"},
    {"v", TJ_OPT_STRINGS, offsetof(struct cfg, v), NULL, NULL, "V", "a repeatable option", NULL},
    {"size", TJ_OPT_SIZE, offsetof(struct cfg, size), "1MiB", NULL, "N", "a size option", NULL},
    {"u", TJ_OPT_UINT, offsetof(struct cfg, u), "7", NULL, "N", "a number option", NULL},
    {"flag", TJ_OPT_FLAG, offsetof(struct cfg, flag), NULL, NULL, NULL, "a flag option", NULL},
};

static int parse(struct cfg *c, struct tj_strv *rest, char *err, int argc, char **argv)
{
    memset(c, 0, sizeof(*c));
    memset(rest, 0, sizeof(*rest));
    return tj_opt_parse(opts, TJ_ARRAY_LEN(opts), argc, argv, c, rest, err, 256);
}

static void test_parser_forms(void)
{
    struct cfg c;
    struct tj_strv rest;
    char err[256];
    char *ok[] = {"--s",        "a",   "--v=1", "file",   "--v", "2",
                  "--size=64k", "--u", "9",     "--flag", "--",  "--not-an-option"};
    char *bad_choice[] = {"--s", "zzz"};
    char *unknown[] = {"--nope"};
    char *missing[] = {"--u"};
    char *bad_size[] = {"--size", "12 parsecs"};
    char *bad_uint[] = {"--u", "-1"};
    char *short_opt[] = {"-x", "file"};
    char *size_overflow[] = {"--size", "17179869184G"}; /* 2^64 bytes */
    char *flag_false[] = {"--flag=false"};

    CHECK(parse(&c, &rest, err, (int)TJ_ARRAY_LEN(ok), ok) == 0);
    CHECK_STR(c.s, "a");
    CHECK(c.v.n == 2 && strcmp(c.v.v[1], "2") == 0);
    CHECK(c.size == 65536 && c.u == 9 && c.flag);
    CHECK(rest.n == 2 && strcmp(rest.v[0], "file") == 0 &&
          strcmp(rest.v[1], "--not-an-option") == 0);
    tj_strv_fini(&c.v);
    tj_strv_fini(&rest);

    CHECK(parse(&c, &rest, err, 0, NULL) == 0);
    CHECK_STR(c.s, "dflt");
    CHECK(c.size == 1048576 && c.u == 7 && !c.flag);
    setenv("TJ_TEST_S", "b", 1);
    CHECK(parse(&c, &rest, err, 0, NULL) == 0);
    CHECK_STR(c.s, "b");
    unsetenv("TJ_TEST_S");

    CHECK(parse(&c, &rest, err, 2, bad_choice) == TJ_EINVAL && strstr(err, "not one of"));
    CHECK(parse(&c, &rest, err, 1, unknown) == TJ_EINVAL && strstr(err, "unknown option"));
    CHECK(parse(&c, &rest, err, 1, missing) == TJ_EINVAL && strstr(err, "needs a value"));
    CHECK(parse(&c, &rest, err, 2, bad_size) == TJ_EINVAL && strstr(err, "not a size"));
    CHECK(parse(&c, &rest, err, 2, bad_uint) == TJ_EINVAL && strstr(err, "whole number"));
    CHECK(parse(&c, &rest, err, 2, short_opt) == TJ_EINVAL && strstr(err, "unknown option '-x'"));
    tj_strv_fini(&rest);
    CHECK(parse(&c, &rest, err, 2, size_overflow) == TJ_EINVAL && strstr(err, "not a size"));
    CHECK(parse(&c, &rest, err, 1, flag_false) == 0 && !c.flag);
    tj_strv_fini(&rest);
}

static const struct tj_test tests[] = {
    {"every_option_documented", test_every_option_documented},
    {"parser_forms", test_parser_forms},
};

int main(int argc, char **argv)
{
    return tj_test_main(tests, TJ_ARRAY_LEN(tests), argc, argv);
}
