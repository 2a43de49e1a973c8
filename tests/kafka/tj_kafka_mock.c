/* tj_kafka_mock.c: a test helper that hosts librdkafka's mock Kafka cluster (real Kafka protocol
 * over TCP on 127.0.0.1) for the Kafka output's tests and benchmark. One thread (main) reads
 * commands; the mock cluster runs in librdkafka's own thread.
 *
 *   tj_kafka_mock [--brokers N] [--partitions N] TOPIC...
 *
 * Creates each TOPIC with N partitions (default 3) replicated on every broker (default 3, ids
 * 1..N), prints the bootstrap servers as the first line on stdout, then reads one command a line
 * on stdin and answers each with one line, "ok" or "error WHY":
 *   down ID            broker ID stops answering (its connections are closed)
 *   up ID              broker ID is back
 *   errors N CODE      the next N Produce requests fail with the Kafka error CODE
 *                      (7 REQUEST_TIMED_OUT, 6 NOT_LEADER_OR_FOLLOWER, -195 disconnect...)
 *   leader TOPIC P ID  broker ID becomes the leader of partition P of TOPIC
 *   quit               destroy the cluster and exit 0 (as on EOF, SIGTERM and SIGINT)
 * Exit status: 0 after quit/EOF/signal, 1 if the cluster cannot be set up, 2 on a usage error.
 *
 * Build (CMake target tj_kafka_mock), or by hand:
 *   cc -O2 -Wall -Wextra -o tj_kafka_mock tj_kafka_mock.c $(pkg-config --cflags --libs rdkafka)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* ppoll; CMake defines it for the whole project */
#endif

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MOCK_API_PRODUCE 0    /* Kafka protocol ApiKey of ProduceRequest */
#define MOCK_LINE_CAP    4096 /* a longer command line is rejected */
#define MOCK_MAX_ERRORS  100000

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

/* Line reader on fd 0 that a signal can interrupt without a race: SIGTERM and SIGINT stay
 * blocked except inside ppoll. */
struct line_reader {
    char buf[MOCK_LINE_CAP];
    size_t len;
    bool eof;
};

/* Returns 1 with the next line (NUL-terminated, without "\n") in *line, 0 on EOF or a signal,
 * -1 on a read error or a line longer than the cap (the reader is then unusable). The line
 * stays valid until the next call; *consumed (0 at the first call) is the caller's record of
 * how much of the buffer that line took, dropped at the next call. */
static int next_line(struct line_reader *r, char **line, size_t *consumed, const sigset_t *waitmask)
{
    memmove(r->buf, r->buf + *consumed, r->len - *consumed);
    r->len -= *consumed;
    *consumed = 0;
    for (;;) {
        char *nl = memchr(r->buf, '\n', r->len);
        struct pollfd pfd = {.fd = 0, .events = POLLIN};
        ssize_t n;

        if (nl) {
            *nl = '\0';
            *line = r->buf;
            *consumed = (size_t)(nl - r->buf) + 1;
            return 1;
        }
        if (r->eof) {
            if (r->len == 0 || r->len >= sizeof(r->buf))
                return 0;
            r->buf[r->len] = '\0'; /* a last line without "\n" */
            *line = r->buf;
            *consumed = r->len;
            return 1;
        }
        if (r->len >= sizeof(r->buf) - 1) {
            fprintf(stderr, "tj_kafka_mock: a command line is longer than %d bytes\n",
                    MOCK_LINE_CAP);
            return -1;
        }
        if (stop_signal)
            return 0;
        if (ppoll(&pfd, 1, NULL, waitmask) < 0) {
            if (errno == EINTR)
                continue; /* stop_signal is checked above */
            perror("tj_kafka_mock: ppoll");
            return -1;
        }
        n = read(0, r->buf + r->len, sizeof(r->buf) - 1 - r->len);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            perror("tj_kafka_mock: read stdin");
            return -1;
        }
        if (n == 0)
            r->eof = true;
        r->len += (size_t)n;
    }
}

/* Parses a base-10 integer in [lo, hi]; returns 0, or -1 leaving *out unchanged. */
static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    if (!s)
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static void reply_err(rd_kafka_resp_err_t err)
{
    if (err)
        printf("error %s: %s\n", rd_kafka_err2name(err), rd_kafka_err2str(err));
    else
        printf("ok\n");
}

/* Pushes n copies of code onto the Produce error stack. Returns 0 or -1 (no memory). */
static int push_produce_errors(rd_kafka_mock_cluster_t *mc, long n, long code)
{
    rd_kafka_resp_err_t *errs = malloc((size_t)n * sizeof(*errs));

    if (!errs)
        return -1;
    for (long i = 0; i < n; i++)
        errs[i] = (rd_kafka_resp_err_t)code;
    rd_kafka_mock_push_request_errors_array(mc, MOCK_API_PRODUCE, (size_t)n, errs);
    free(errs);
    return 0;
}

/* Runs one command line and prints its one-line answer. Returns 1 after "quit", else 0. */
static int run_command(rd_kafka_mock_cluster_t *mc, char *line)
{
    char *save = NULL;
    char *cmd = strtok_r(line, " \t\r", &save);
    char *a1 = cmd ? strtok_r(NULL, " \t\r", &save) : NULL;
    char *a2 = a1 ? strtok_r(NULL, " \t\r", &save) : NULL;
    char *a3 = a2 ? strtok_r(NULL, " \t\r", &save) : NULL;
    char *extra = a3 ? strtok_r(NULL, " \t\r", &save) : NULL;
    long id, n, code, part;

    if (!cmd) {
        printf("error empty command\n");
    } else if (!strcmp(cmd, "quit") && !a1) {
        printf("ok\n");
        return 1;
    } else if ((!strcmp(cmd, "down") || !strcmp(cmd, "up")) && !a2) {
        if (parse_long(a1, 1, INT32_MAX, &id))
            printf("error usage: %s BROKER_ID (1..N)\n", cmd);
        else if (cmd[0] == 'd')
            reply_err(rd_kafka_mock_broker_set_down(mc, (int32_t)id));
        else
            reply_err(rd_kafka_mock_broker_set_up(mc, (int32_t)id));
    } else if (!strcmp(cmd, "errors") && !a3) {
        if (parse_long(a1, 1, MOCK_MAX_ERRORS, &n) || parse_long(a2, -200, INT16_MAX, &code))
            printf("error usage: errors N CODE (N 1..%d, CODE a Kafka error code)\n",
                   MOCK_MAX_ERRORS);
        else if (push_produce_errors(mc, n, code))
            printf("error out of memory\n");
        else
            printf("ok\n");
    } else if (!strcmp(cmd, "leader") && a3 && !extra) {
        if (parse_long(a2, 0, INT32_MAX, &part) || parse_long(a3, 1, INT32_MAX, &id))
            printf("error usage: leader TOPIC PARTITION BROKER_ID\n");
        else
            reply_err(rd_kafka_mock_partition_set_leader(mc, a1, (int32_t)part, (int32_t)id));
    } else {
        printf("error unknown command or wrong arguments: %s (down ID, up ID, errors N CODE, "
               "leader TOPIC P ID, quit)\n",
               cmd);
    }
    return 0;
}

/* Creates the dummy producer that owns the mock cluster; NULL (reason on stderr) on failure. */
static rd_kafka_t *dummy_producer(void)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;

    /* This handle never produces: it only hosts the cluster. Its own "no bootstrap servers"
     * chatter is not wanted on stderr. */
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "tj_kafka_mock: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)); /* takes conf */
    if (!rk) {
        fprintf(stderr, "tj_kafka_mock: rd_kafka_new: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

static void usage(void)
{
    fprintf(stderr, "usage: tj_kafka_mock [--brokers N] [--partitions N] TOPIC...\n");
}

int main(int argc, char **argv)
{
    long brokers = 3, partitions = 3;
    int first_topic = 1, rc = 1, r;
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    struct line_reader *lr;
    struct sigaction sa = {.sa_handler = on_signal};
    sigset_t block, waitmask;
    char *line;
    size_t consumed = 0;

    while (first_topic + 1 < argc && !strncmp(argv[first_topic], "--", 2)) {
        long *dst = !strcmp(argv[first_topic], "--brokers")      ? &brokers
                    : !strcmp(argv[first_topic], "--partitions") ? &partitions
                                                                 : NULL;
        if (!dst || parse_long(argv[first_topic + 1], 1, 1000, dst)) {
            usage();
            return 2;
        }
        first_topic += 2;
    }
    if (first_topic >= argc || argv[first_topic][0] == '-') {
        usage();
        return 2;
    }

    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGINT);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    lr = calloc(1, sizeof(*lr));
    if (!lr) {
        fprintf(stderr, "tj_kafka_mock: out of memory\n");
        return 1;
    }
    rk = dummy_producer();
    if (!rk)
        goto free_reader;
    mc = rd_kafka_mock_cluster_new(rk, (int)brokers);
    if (!mc) {
        fprintf(stderr, "tj_kafka_mock: rd_kafka_mock_cluster_new failed\n");
        goto destroy_producer;
    }
    for (int i = first_topic; i < argc; i++) {
        rd_kafka_resp_err_t err =
            rd_kafka_mock_topic_create(mc, argv[i], (int)partitions, (int)brokers);
        if (err) {
            fprintf(stderr, "tj_kafka_mock: cannot create topic %s: %s\n", argv[i],
                    rd_kafka_err2str(err));
            goto destroy_cluster;
        }
    }
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);

    while ((r = next_line(lr, &line, &consumed, &waitmask)) > 0) {
        int quit = run_command(mc, line);
        fflush(stdout);
        if (quit)
            break;
    }
    rc = r < 0 ? 1 : 0;

destroy_cluster:
    rd_kafka_mock_cluster_destroy(mc);
destroy_producer:
    rd_kafka_destroy(rk);
free_reader:
    free(lr);
    return rc;
}
