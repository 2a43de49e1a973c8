/* tj_c11_threads_tsan.c: linked into ThreadSanitizer builds only (TJ_SANITIZE=thread).
 *
 * Debian's librdkafka uses C11 threads (thrd_create, mtx_lock, cnd_wait, call_once). glibc
 * implements those without calling the pthread functions that ThreadSanitizer intercepts, so a
 * thread librdkafka starts has no TSan state (it crashes at its first malloc) and its locks are
 * invisible to TSan. The executable's definitions below take precedence over glibc's for
 * librdkafka (ELF symbol interposition) and forward to the intercepted pthread functions; glibc's
 * C11 types are laid out as the pthread ones. Nothing of this is in the normal build. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

static int c11(int e)
{
    switch (e) {
    case 0:
        return thrd_success;
    case ENOMEM:
        return thrd_nomem;
    case EBUSY:
        return thrd_busy;
    case ETIMEDOUT:
        return thrd_timedout;
    default:
        return thrd_error;
    }
}

struct start {
    thrd_start_t fn;
    void *arg;
};

static void *start_main(void *p)
{
    struct start s = *(struct start *)p;

    free(p);
    return (void *)(intptr_t)s.fn(s.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t fn, void *arg)
{
    struct start *s = malloc(sizeof(*s));
    int e;

    if (!s)
        return thrd_nomem;
    *s = (struct start){fn, arg};
    e = pthread_create((pthread_t *)thr, NULL, start_main, s);
    if (e)
        free(s);
    return c11(e);
}

int thrd_join(thrd_t thr, int *res)
{
    void *r = NULL;
    int e = pthread_join((pthread_t)thr, &r);

    if (!e && res)
        *res = (int)(intptr_t)r;
    return c11(e);
}

int thrd_detach(thrd_t thr)
{
    return c11(pthread_detach((pthread_t)thr));
}

int mtx_init(mtx_t *m, int type)
{
    pthread_mutexattr_t a;
    int e;

    pthread_mutexattr_init(&a);
    if (type & mtx_recursive)
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    e = pthread_mutex_init((pthread_mutex_t *)m, &a);
    pthread_mutexattr_destroy(&a);
    return c11(e);
}

int mtx_lock(mtx_t *m)
{
    return c11(pthread_mutex_lock((pthread_mutex_t *)m));
}

int mtx_trylock(mtx_t *m)
{
    return c11(pthread_mutex_trylock((pthread_mutex_t *)m));
}

int mtx_timedlock(mtx_t *restrict m, const struct timespec *restrict ts)
{
    return c11(pthread_mutex_timedlock((pthread_mutex_t *)m, ts));
}

int mtx_unlock(mtx_t *m)
{
    return c11(pthread_mutex_unlock((pthread_mutex_t *)m));
}

void mtx_destroy(mtx_t *m)
{
    pthread_mutex_destroy((pthread_mutex_t *)m);
}

int cnd_init(cnd_t *c)
{
    return c11(pthread_cond_init((pthread_cond_t *)c, NULL));
}

int cnd_signal(cnd_t *c)
{
    return c11(pthread_cond_signal((pthread_cond_t *)c));
}

int cnd_broadcast(cnd_t *c)
{
    return c11(pthread_cond_broadcast((pthread_cond_t *)c));
}

int cnd_wait(cnd_t *c, mtx_t *m)
{
    return c11(pthread_cond_wait((pthread_cond_t *)c, (pthread_mutex_t *)m));
}

int cnd_timedwait(cnd_t *restrict c, mtx_t *restrict m, const struct timespec *restrict ts)
{
    return c11(pthread_cond_timedwait((pthread_cond_t *)c, (pthread_mutex_t *)m, ts));
}

void cnd_destroy(cnd_t *c)
{
    pthread_cond_destroy((pthread_cond_t *)c);
}

void call_once(once_flag *flag, void (*fn)(void))
{
    pthread_once((pthread_once_t *)flag, fn);
}
