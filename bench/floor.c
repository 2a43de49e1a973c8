/*
 * floor: the bare regex floor for tailjet's parse benchmark.
 *
 * Reads PCRE2 patterns from a file (one a line: alternatives tried in order, as tailjet tries a
 * service's logPattern.N) and a file of plain lines, compiles the patterns as tailjet's grok
 * compiler does (UTF mode, or with --byte the byte mode tailjet uses for ASCII lines), then
 * times only the loop that finds each line end and runs pcre2_jit_match on the line until one
 * alternative matches: no decoding, no record encoding, no output. Whatever tailjet does per
 * line costs on top of this. With --multiline-file, lines are first joined into events (a line
 * matching that regex starts one; others join it with '\n'), outside the timed loop, and the
 * loop matches events. One thread; the whole input is read into memory first.
 *
 * Build: cc -O2 -o floor bench/floor.c $(pkg-config --cflags --libs libpcre2-8)
 * Run:   floor [--byte] [--multiline-file ML.txt] --regex-file RE.txt PLAIN.log
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

/* The same compile options as tailjet's grok compiler (TJ_GROK_PCRE2_FLAGS and its byte-mode
 * twin's ASCII_PCRE2_FLAGS in parser/tj_grok.c): keep them in step. */
#define FLOOR_COMPILE_OPTIONS                                                                      \
    (PCRE2_UTF | PCRE2_UCP | PCRE2_NO_AUTO_CAPTURE | PCRE2_MATCH_INVALID_UTF)
#define FLOOR_BYTE_OPTIONS (PCRE2_NO_AUTO_CAPTURE | PCRE2_NEVER_UTF | PCRE2_NEVER_UCP)
#define FLOOR_MAX_ALTS     16

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

static double clock_seconds(clockid_t which)
{
    struct timespec ts;
    clock_gettime(which, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_seconds(void)
{
    return clock_seconds(CLOCK_MONOTONIC);
}

/* The CPU time this process has used: unlike the wall clock, it does not count the time other
 * processes on the same CPU take from it. */
static double cpu_seconds(void)
{
    return clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
}

static void usage(FILE *f)
{
    fputs("usage: floor [--byte] [--multiline-file FILE] --regex-file FILE PLAIN_LINES_FILE\n"
          "Matches every line of PLAIN_LINES_FILE against the PCRE2 patterns in FILE (one a\n"
          "line, tried in order until one matches) with JIT, and prints matched/total, lines/s\n"
          "and MB/s of the matching loop alone. --byte compiles them in byte mode (no UTF, no\n"
          "UCP), as tailjet matches ASCII lines; --multiline-file joins lines into events first\n"
          "(a line matching its regex starts one), outside the timed loop.\n",
          f);
}

/* Compiles pattern re[0..n) with options and JIT. Returns the code, or NULL after printing why.
 * In byte mode a pattern that only compiles in UTF mode (a \x{100} or above, say) is compiled in
 * UTF mode, as tailjet then has no byte-mode twin either; *fell_back is set then. */
static pcre2_code *compile_one(const char *re, size_t n, uint32_t options, const char *what,
                               int *fell_back)
{
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)re, n, options, &errcode, &erroff, NULL);
    if (!code && options == FLOOR_BYTE_OPTIONS) {
        code = pcre2_compile((PCRE2_SPTR)re, n, FLOOR_COMPILE_OPTIONS, &errcode, &erroff, NULL);
        *fell_back += code != NULL;
    }
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        fprintf(stderr, "floor: %s does not compile: %s at offset %zu\n", what, (char *)msg,
                (size_t)erroff);
        return NULL;
    }
    errcode = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    if (errcode != 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        fprintf(stderr, "floor: JIT compilation of %s failed: %s (is PCRE2 built with JIT?)\n",
                what, (char *)msg);
        pcre2_code_free(code);
        return NULL;
    }
    return code;
}

/* Joins in->data's lines into events in place: a line that ml matches (or the first line)
 * starts an event, any other line is appended to the event before it, after a '\n'. Each event
 * ends with '\n', so the joined text is read as lines again would be, only with events instead;
 * the caller keeps the event ends in ends[] (offset of each event's end). Returns the number of
 * events, or -1 when out of memory. */
static long join_events(struct floor_file *in, pcre2_code *ml, pcre2_match_data *md,
                        size_t **ends_out)
{
    size_t cap = 1024, n = 0;
    size_t *ends = malloc(cap * sizeof *ends);
    if (!ends)
        return -1;
    const char *p = in->data, *end = in->data + in->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        size_t len = (size_t)(eol - p);
        int starts = n == 0 || pcre2_match(ml, (PCRE2_SPTR)p, len, 0, 0, md, NULL) >= 0;
        if (starts) {
            if (n == cap) {
                size_t *bigger = realloc(ends, 2 * cap * sizeof *ends);
                if (!bigger) {
                    free(ends);
                    return -1;
                }
                ends = bigger;
                cap *= 2;
            }
            n++;
        }
        ends[n - 1] = (size_t)(eol - in->data);
        p = eol + 1;
    }
    *ends_out = ends;
    return (long)n;
}

int main(int argc, char **argv)
{
    const char *regex_path = NULL, *input_path = NULL, *ml_path = NULL;
    int byte_mode = 0, fell_back = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--regex-file") == 0 && i + 1 < argc) {
            regex_path = argv[++i];
        } else if (strncmp(argv[i], "--regex-file=", 13) == 0) {
            regex_path = argv[i] + 13;
        } else if (strcmp(argv[i], "--multiline-file") == 0 && i + 1 < argc) {
            ml_path = argv[++i];
        } else if (strcmp(argv[i], "--byte") == 0) {
            byte_mode = 1;
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
    uint32_t options = byte_mode ? FLOOR_BYTE_OPTIONS : FLOOR_COMPILE_OPTIONS;
    struct floor_file re, in = {NULL, 0}, mlf = {NULL, 0};
    pcre2_code *codes[FLOOR_MAX_ALTS] = {NULL};
    pcre2_code *ml = NULL;
    size_t *ends = NULL;
    int nalt = 0;
    if (read_all(regex_path, &re) != 0)
        return 1;
    /* One pattern a line; blank lines are skipped. */
    for (char *p = re.data, *end = re.data + re.len; p < end;) {
        size_t n = strcspn(p, "\r\n");
        if (n > 0) {
            char what[64];
            if (nalt == FLOOR_MAX_ALTS) {
                fprintf(stderr, "floor: more than %d patterns in %s\n", FLOOR_MAX_ALTS, regex_path);
                goto free_codes;
            }
            snprintf(what, sizeof what, "pattern %d of %s", nalt + 1, "the regex file");
            if (!(codes[nalt] = compile_one(p, n, options, what, &fell_back)))
                goto free_codes;
            nalt++;
        }
        p += n;
        while (p < end && (*p == '\r' || *p == '\n'))
            p++;
    }
    if (nalt == 0) {
        fprintf(stderr, "floor: %s holds no pattern\n", regex_path);
        goto free_codes;
    }
    if (ml_path) {
        if (read_all(ml_path, &mlf) != 0)
            goto free_codes;
        if (!(ml = compile_one(mlf.data, strcspn(mlf.data, "\r\n"), FLOOR_COMPILE_OPTIONS,
                               "the multiline regex", &fell_back)))
            goto free_codes;
    }
    if (read_all(input_path, &in) != 0)
        goto free_codes;
    pcre2_match_data *md = NULL;
    pcre2_match_context *mctx = pcre2_match_context_create(NULL);
    pcre2_jit_stack *stack =
        pcre2_jit_stack_create(FLOOR_JIT_STACK_START, FLOOR_JIT_STACK_MAX, NULL);
    uint32_t most = 0;
    for (int a = 0; a < nalt; a++) {
        uint32_t c = 0;
        pcre2_pattern_info(codes[a], PCRE2_INFO_CAPTURECOUNT, &c);
        most = c > most ? c : most;
    }
    md = pcre2_match_data_create(most + 1, NULL);
    if (!md || !mctx || !stack) {
        fprintf(stderr, "floor: out of memory for PCRE2 match data\n");
        goto free_match;
    }
    pcre2_jit_stack_assign(mctx, NULL, stack);
    long nevents = 0;
    if (ml && (nevents = join_events(&in, ml, md, &ends)) < 0) {
        fprintf(stderr, "floor: out of memory for the event list\n");
        goto free_match;
    }

    /* The timed loop: find each line (or event), try the alternatives. Nothing else. */
    uint64_t total = 0, matched = 0, errors = 0;
    int first_error = 0;
    const char *p = in.data, *end = in.data + in.len;
    double t0 = now_seconds(), c0 = cpu_seconds();
    while (p < end) {
        const char *eol;
        if (ends) {
            if (total == (uint64_t)nevents)
                break;
            eol = in.data + ends[total];
        } else {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            eol = nl ? nl : end;
        }
        size_t len = (size_t)(eol - p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        int m = PCRE2_ERROR_NOMATCH;
        for (int a = 0; a < nalt && m == PCRE2_ERROR_NOMATCH; a++)
            m = pcre2_jit_match(codes[a], (PCRE2_SPTR)p, len, 0, 0, md, mctx);
        total++;
        if (m >= 0)
            matched++;
        else if (m != PCRE2_ERROR_NOMATCH && errors++ == 0)
            first_error = m;
        p = eol + 1;
    }
    double secs = now_seconds() - t0, cpu = cpu_seconds() - c0;

    if (errors) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(first_error, msg, sizeof msg);
        fprintf(stderr, "floor: %llu lines failed with a match error, the first: %s\n",
                (unsigned long long)errors, (char *)msg);
    }
    if (secs <= 0)
        secs = 1e-9;
    printf("floor: mode=%s utf_fallbacks=%d alternatives=%d matched=%llu total=%llu bytes=%zu "
           "seconds=%.6f cpu_seconds=%.6f "
           "lines_per_s=%.0f mb_per_s=%.2f\n",
           byte_mode ? "byte" : "utf", fell_back, nalt, (unsigned long long)matched,
           (unsigned long long)total, in.len, secs, cpu, (double)total / secs,
           (double)in.len / 1e6 / secs);
    rc = 0;

free_match:
    free(ends);
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(mctx);
    pcre2_match_data_free(md);
    free(in.data);
free_codes:
    pcre2_code_free(ml);
    free(mlf.data);
    for (int a = 0; a < nalt; a++)
        pcre2_code_free(codes[a]);
    free(re.data);
    return rc;
}
