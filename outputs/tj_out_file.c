/* tj_out_file.c: the stdout and file:PATH outputs: NDJSON records appended in submit order.
 * Workers call submit concurrently; one mutex keeps each batch's records together. A batch is
 * acknowledged as soon as write(2) took all of it (the page cache has it: a crash of tailjet
 * loses nothing; a crash of the machine is the file system's business). file:PATH is opened
 * with O_APPEND and reopened after SIGHUP, so logrotate can move it. A file that ends in a record
 * cut short (a write that kill -9 interrupted: never acknowledged, so shipped again) has that
 * record cut away when it is opened, so no reader ever sees it glued to the next one. */
#include "tj_output.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tj_log.h"

struct out_file {
    pthread_mutex_t lock;
    int fd;
    char *path; /* NULL for stdout */
    bool reopen;
    bool failing; /* the last write failed: the error was logged once */
    int failing_errno;
    const struct tj_batch *partial; /* written in part when a write failed: it is finished
                                       before any other batch, so records never interleave */
    tj_ack_fn ack;
    void *ack_arg;
};

/* The length of the file's bytes up to and including its last '\n' (0 when it has none), or
 * -1 with errno set. Reads backwards from the end, 64 KiB at a time. */
static off_t last_newline_end(int fd, off_t size)
{
    char buf[65536];
    off_t end = size;

    while (end > 0) {
        size_t n = end < (off_t)sizeof(buf) ? (size_t)end : sizeof(buf);
        ssize_t got = pread(fd, buf, n, end - (off_t)n);
        const char *nl;
        if (got < 0 && errno == EINTR)
            continue;
        if (got != (ssize_t)n) {
            if (got >= 0)
                errno = EIO; /* it shrank meanwhile: someone else writes it */
            return -1;
        }
        if ((nl = memrchr(buf, '\n', n)))
            return end - (off_t)n + (nl - buf) + 1;
        end -= (off_t)n;
    }
    return 0;
}

/* A regular file whose last byte is not '\n' ends in a record cut short by a crash: its write
 * was never acknowledged, so the record is shipped again; cut it away (said on stderr) so that
 * the next record does not follow it on the same line. Failing that, a '\n' ends it: the torn
 * line is then a line of its own, never glued to a valid record. */
static void cut_torn_tail(int fd, const char *path)
{
    struct stat st;
    char last;
    off_t keep;

    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0 ||
        pread(fd, &last, 1, st.st_size - 1) != 1 || last == '\n')
        return;
    keep = last_newline_end(fd, st.st_size);
    if (keep >= 0 && ftruncate(fd, keep) == 0) {
        tj_log(TJ_LOG_WARN,
               "output file %s ended in a record cut short (%lld bytes: a write interrupted by "
               "a crash); cut away, the record is shipped again",
               path, (long long)(st.st_size - keep));
        return;
    }
    tj_log(TJ_LOG_WARN,
           "output file %s ends in a record cut short (a write interrupted by a crash) that "
           "could not be cut away (%s); a newline now ends it, the record is shipped again",
           path, strerror(errno));
    if (write(fd, "\n", 1) != 1)
        tj_log(TJ_LOG_ERROR, "cannot write to %s: %s", path, strerror(errno));
}

static int open_path(const char *path, char *err, size_t errlen)
{
    /* O_RDWR: the end of the file is read to find a torn record. */
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

    if (fd < 0 && (errno == EACCES || errno == EISDIR || errno == ETXTBSY))
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        snprintf(err, errlen, "cannot open output file %s: %s", path, strerror(errno));
    else
        cut_torn_tail(fd, path);
    return fd;
}

static int create_common(const char *path, tj_ack_fn ack, void *ack_arg, void **state, char *err,
                         size_t errlen)
{
    struct out_file *o = calloc(1, sizeof(*o));

    if (!o || (path && !(o->path = strdup(path)))) {
        free(o);
        snprintf(err, errlen, "out of memory");
        return TJ_ENOMEM;
    }
    o->fd = path ? open_path(path, err, errlen) : STDOUT_FILENO;
    if (o->fd < 0) {
        free(o->path);
        free(o);
        return TJ_EIO;
    }
    pthread_mutex_init(&o->lock, NULL);
    o->ack = ack;
    o->ack_arg = ack_arg;
    *state = o;
    return 0;
}

static int no_options(const char *uri, size_t nopts, char *err, size_t errlen)
{
    if (!nopts)
        return 0;
    snprintf(err, errlen, "output '%s' takes no options (they are for kafka://)", uri);
    return TJ_EINVAL;
}

static int stdout_create(const char *uri, const char *const *opts, size_t nopts, tj_ack_fn ack,
                         void *ack_arg, void **state, char *err, size_t errlen)
{
    TJ_UNUSED(opts);
    if (no_options(uri, nopts, err, errlen))
        return TJ_EINVAL;
    if (strcmp(uri, "stdout") != 0) {
        snprintf(err, errlen, "output '%s': stdout takes no argument", uri);
        return TJ_EINVAL;
    }
    return create_common(NULL, ack, ack_arg, state, err, errlen);
}

static int file_create(const char *uri, const char *const *opts, size_t nopts, tj_ack_fn ack,
                       void *ack_arg, void **state, char *err, size_t errlen)
{
    const char *path = uri + strlen("file:");

    TJ_UNUSED(opts);
    if (no_options(uri, nopts, err, errlen))
        return TJ_EINVAL;
    if (!*path) {
        snprintf(err, errlen, "output '%s': give a path, as in file:/var/log/records.ndjson", uri);
        return TJ_EINVAL;
    }
    return create_common(path, ack, ack_arg, state, err, errlen);
}

/* Reopens the file after SIGHUP; on failure keeps writing to the old descriptor. Lock held. */
static void reopen_locked(struct out_file *o)
{
    char err[512];
    int fd;

    o->reopen = false;
    if (!o->path)
        return;
    fd = open_path(o->path, err, sizeof(err));
    if (fd < 0) {
        tj_log(TJ_LOG_ERROR, "%s; still writing to the file opened before", err);
        return;
    }
    close(o->fd);
    o->fd = fd;
    tj_log(TJ_LOG_INFO, "reopened output file %s", o->path);
}

static int file_submit(void *state, struct tj_batch *b)
{
    struct out_file *o = state;
    int rc = 0;

    pthread_mutex_lock(&o->lock);
    if (o->partial && o->partial != b) {
        pthread_mutex_unlock(&o->lock);
        return TJ_EAGAIN; /* another batch's record is half written: it goes first */
    }
    if (o->reopen && !o->partial)
        reopen_locked(o);
    while (b->out_done < b->records.len) {
        ssize_t n = write(o->fd, b->records.data + b->out_done, b->records.len - b->out_done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            if (!o->failing)
                tj_log(TJ_LOG_ERROR, "cannot write to %s: %s; records are held and retried",
                       o->path ? o->path : "stdout", strerror(errno));
            o->failing = true;
            o->failing_errno = errno;
            rc = errno == EPIPE || errno == EBADF ? TJ_EIO : TJ_EAGAIN;
            break;
        }
        b->out_done += (size_t)n;
    }
    o->partial = rc && b->out_done ? b : NULL;
    if (!rc && o->failing) {
        tj_log(TJ_LOG_INFO, "writing to %s works again", o->path ? o->path : "stdout");
        o->failing = false;
    }
    pthread_mutex_unlock(&o->lock);
    if (!rc)
        o->ack(o->ack_arg, b, 0);
    return rc;
}

static int file_flush(void *state, unsigned timeout_ms)
{
    TJ_UNUSED(state);
    TJ_UNUSED(timeout_ms);
    return 0; /* every batch taken was written and acknowledged in submit */
}

static void file_reopen(void *state)
{
    struct out_file *o = state;

    pthread_mutex_lock(&o->lock);
    o->reopen = true;
    pthread_mutex_unlock(&o->lock);
}

static void file_problem(void *state, char *buf, size_t n)
{
    struct out_file *o = state;

    pthread_mutex_lock(&o->lock);
    if (o->failing)
        snprintf(buf, n, "cannot write to %s: %s", o->path ? o->path : "stdout",
                 strerror(o->failing_errno));
    else if (n)
        buf[0] = '\0';
    pthread_mutex_unlock(&o->lock);
}

static void file_destroy(void *state)
{
    struct out_file *o = state;

    if (!o)
        return;
    if (o->path)
        close(o->fd);
    pthread_mutex_destroy(&o->lock);
    free(o->path);
    free(o);
}

const struct tj_output_ops tj_output_stdout = {"stdout",    stdout_create, file_submit, file_flush,
                                               file_reopen, file_problem,  file_destroy};
const struct tj_output_ops tj_output_file = {"file",      file_create,  file_submit, file_flush,
                                             file_reopen, file_problem, file_destroy};
