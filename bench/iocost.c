/*
 * iocost: what the kernel's copies alone cost for one `tailjet parse` run.
 *
 * Reads INPUT to its end with read(2) in 1 MiB blocks, as `tailjet parse` reads its json-file
 * input, then writes BYTES bytes to OUTPUT with write(2) in 1 MiB blocks, as it writes its
 * records, three times (the output truncated in between), and prints the least CPU time (user +
 * system) of each part. Nothing is decoded, matched or
 * encoded: the sum is the CPU that a shipper writing the same records to a file pays even when
 * its own code costs nothing. bench/workloads.sh adds it to the regex floor's CPU time to give
 * the highest ratio to the floor that tailjet could reach (its `ceiling` column).
 *
 * OUTPUT is created (truncated); the caller removes it and `sync`s first, as before tailjet's
 * run, so that both write into the page cache in the same state.
 *
 * Build: cc -O2 -o iocost bench/iocost.c
 * Run:   iocost INPUT BYTES OUTPUT
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IOCOST_BLOCK  (1024 * 1024)
#define IOCOST_PASSES 3

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads fd to its end into buf. Returns the bytes read, or -1 after printing why. */
static long long read_through(int fd, char *buf, const char *path)
{
    long long total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, IOCOST_BLOCK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "iocost: reading %s: %s\n", path, strerror(errno));
            return -1;
        }
        if (n == 0)
            return total;
        total += n;
    }
}

/* Writes bytes bytes of buf, block after block, to fd. Returns 0, or -1 after printing why. */
static int write_out(int fd, const char *buf, long long bytes, const char *path)
{
    while (bytes > 0) {
        size_t want = bytes < IOCOST_BLOCK ? (size_t)bytes : IOCOST_BLOCK;
        ssize_t n = write(fd, buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "iocost: writing %s: %s\n", path, n < 0 ? strerror(errno) : "short");
            return -1;
        }
        bytes -= n;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fputs("usage: iocost INPUT BYTES OUTPUT\n"
              "Reads INPUT and writes BYTES bytes to OUTPUT, in 1 MiB blocks, three times each,\n"
              "and prints the least CPU seconds of each.\n",
              stderr);
        return 2;
    }
    char *end = NULL;
    errno = 0;
    long long bytes = strtoll(argv[2], &end, 10);
    if (errno || !end || *end || bytes < 0) {
        fprintf(stderr, "iocost: BYTES must be a number of bytes, not '%s'\n", argv[2]);
        return 2;
    }
    char *buf = malloc(IOCOST_BLOCK);
    if (!buf) {
        fputs("iocost: out of memory\n", stderr);
        return 1;
    }

    int rc = 1;
    int in = open(argv[1], O_RDONLY);
    if (in < 0) {
        fprintf(stderr, "iocost: cannot open %s: %s\n", argv[1], strerror(errno));
        goto free_buf;
    }
    int out = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) {
        fprintf(stderr, "iocost: cannot create %s: %s\n", argv[3], strerror(errno));
        goto close_in;
    }
    /* Each part three times, the least counted. The first write into a fresh file may have to
     * reclaim page cache (and, on ext4 with discard, follow large deletions), costing several
     * times the copy on this machine; the truncated file's pages are free for the next passes.
     * This is the copies' own cost, the least a shipper writing the same bytes can pay. */
    double rd = 1e300, wr = 1e300;
    long long got = 0;
    for (int pass = 0; pass < IOCOST_PASSES; pass++) {
        double c0 = cpu_seconds();
        if (lseek(in, 0, SEEK_SET) != 0 || (got = read_through(in, buf, argv[1])) < 0)
            goto close_out;
        double c1 = cpu_seconds();
        /* buf now holds the input's last block: the copies cost, not what they copy */
        if (ftruncate(out, 0) != 0 || lseek(out, 0, SEEK_SET) != 0 ||
            write_out(out, buf, bytes, argv[3]) != 0)
            goto close_out;
        double c2 = cpu_seconds();
        rd = c1 - c0 < rd ? c1 - c0 : rd;
        wr = c2 - c1 < wr ? c2 - c1 : wr;
    }
    printf("iocost: read_bytes=%lld read_cpu_seconds=%.6f write_bytes=%lld "
           "write_cpu_seconds=%.6f cpu_seconds=%.6f\n",
           got, rd, bytes, wr, rd + wr);
    rc = 0;
close_out:
    close(out);
close_in:
    close(in);
free_buf:
    free(buf);
    return rc;
}
