/*
 * floor: the bare regex floor for tailjet's parse benchmark.
 *
 * Reads one PCRE2 pattern from a file and a file of plain lines, compiles the pattern exactly
 * as tailjet's grok compiler does, then times only the loop that finds each line end and runs
 * pcre2_jit_match on the line: no decoding, no record encoding, no output. Whatever tailjet
 * does per line costs on top of this. One thread; the whole input is read into memory first.
 *
 * Build: cc -O2 -o floor bench/floor.c $(pkg-config --cflags --libs libpcre2-8)
 * Run:   floor --regex-file RE.txt PLAIN.log
 */
#define _POSIX_C_SOURCE       200809L
#define PCRE2_CODE_UNIT_WIDTH 8

#include <errno.h>
#include <fcntl.h>
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The same compile options as tailjet's grok compiler: keep the two in step. */
#define FLOOR_COMPILE_OPTIONS                                                                      \
    (PCRE2_UTF | PCRE2_UCP | PCRE2_NO_AUTO_CAPTURE | PCRE2_MATCH_INVALID_UTF)

#define FLOOR_JIT_STACK_START (32 * 1024)
#define FLOOR_JIT_STACK_MAX   (1024 * 1024)

struct floor_file {
    char *data;
    size_t len;
};

/*
 * Reads all of path into f->data (malloc'd, one spare byte, NUL-terminated). Returns 0, or -1
 * after printing what went wrong; f is untouched then.
 */
static int read_all(const char *path, struct floor_file *f)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "floor: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        fprintf(stderr, "floor: cannot stat %s: %s\n", path, strerror(errno));
        goto close_fd;
    }
    size_t cap = (size_t)st.st_size + 1;
    char *data = malloc(cap);
    if (!data) {
        fprintf(stderr, "floor: cannot hold %s in memory (%zu bytes)\n", path, cap);
        goto close_fd;
    }
    size_t len = 0;
    for (;;) {
        if (len == cap - 1) { /* the file grew while we read it: make room */
            char *bigger = realloc(data, cap * 2);
            if (!bigger) {
                fprintf(stderr, "floor: cannot hold %s in memory\n", path);
                goto free_data;
            }
            data = bigger;
            cap *= 2;
        }
        ssize_t n = read(fd, data + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "floor: cannot read %s: %s\n", path, strerror(errno));
            goto free_data;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    data[len] = '\0';
    close(fd);
    f->data = data;
    f->len = len;
    return 0;

free_data:
    free(data);
close_fd:
    close(fd);
    return -1;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
    fputs(
        "usage: floor --regex-file FILE PLAIN_LINES_FILE\n"
        "Matches every line of PLAIN_LINES_FILE against the PCRE2 pattern in FILE (its first\n"
        "line) with JIT, and prints matched/total, lines/s and MB/s of the matching loop alone.\n",
        f);
}

int main(int argc, char **argv)
{
    const char *regex_path = NULL, *input_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--regex-file") == 0 && i + 1 < argc) {
            regex_path = argv[++i];
        } else if (strncmp(argv[i], "--regex-file=", 13) == 0) {
            regex_path = argv[i] + 13;
        } else if (argv[i][0] != '-' && !input_path) {
            input_path = argv[i];
        } else {
            fprintf(stderr, "floor: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!regex_path || !input_path) {
        usage(stderr);
        return 2;
    }

    int rc = 1;
    struct floor_file re, in;
    if (read_all(regex_path, &re) != 0)
        return 1;
    /* The pattern is the file's first line; a trailing newline is not part of it. */
    re.len = strcspn(re.data, "\r\n");
    if (re.len == 0) {
        fprintf(stderr, "floor: %s holds no pattern on its first line\n", regex_path);
        goto free_re;
    }
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *code =
        pcre2_compile((PCRE2_SPTR)re.data, re.len, FLOOR_COMPILE_OPTIONS, &errcode, &erroff, NULL);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        fprintf(stderr, "floor: the pattern in %s does not compile: %s at offset %zu\n", regex_path,
                (char *)msg, (size_t)erroff);
        goto free_re;
    }
    errcode = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    if (errcode != 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        fprintf(stderr, "floor: JIT compilation failed: %s (is PCRE2 built with JIT?)\n",
                (char *)msg);
        goto free_code;
    }
    if (read_all(input_path, &in) != 0)
        goto free_code;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
    pcre2_match_context *mctx = pcre2_match_context_create(NULL);
    pcre2_jit_stack *stack =
        pcre2_jit_stack_create(FLOOR_JIT_STACK_START, FLOOR_JIT_STACK_MAX, NULL);
    if (!md || !mctx || !stack) {
        fprintf(stderr, "floor: out of memory for PCRE2 match data\n");
        goto free_match;
    }
    pcre2_jit_stack_assign(mctx, NULL, stack);

    /* The timed loop: find each line, match it. Nothing else. */
    uint64_t total = 0, matched = 0, errors = 0;
    int first_error = 0;
    const char *p = in.data, *end = in.data + in.len;
    double t0 = now_seconds();
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        size_t len = (size_t)(eol - p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        int m = pcre2_jit_match(code, (PCRE2_SPTR)p, len, 0, 0, md, mctx);
        total++;
        if (m >= 0)
            matched++;
        else if (m != PCRE2_ERROR_NOMATCH && errors++ == 0)
            first_error = m;
        p = eol + 1;
    }
    double secs = now_seconds() - t0;

    if (errors) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(first_error, msg, sizeof msg);
        fprintf(stderr, "floor: %llu lines failed with a match error, the first: %s\n",
                (unsigned long long)errors, (char *)msg);
    }
    if (secs <= 0)
        secs = 1e-9;
    printf("floor: matched=%llu total=%llu bytes=%zu seconds=%.6f lines_per_s=%.0f mb_per_s=%.2f\n",
           (unsigned long long)matched, (unsigned long long)total, in.len, secs,
           (double)total / secs, (double)in.len / 1e6 / secs);
    rc = 0;

free_match:
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(mctx);
    pcre2_match_data_free(md);
    free(in.data);
free_code:
    pcre2_code_free(code);
free_re:
    free(re.data);
    return rc;
}
