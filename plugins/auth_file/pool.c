/*
 * pool: a bounded job queue and the threads serving it (see pool.h).
 *
 * Owns its threads and the jobs waiting in the queue. pool_submit runs on any
 * thread (broker shards) and must never wait for a job: it only takes the
 * queue lock, which no one holds while running or cancelling a job. The
 * pool's threads run jobs and nothing else; pool_create and pool_destroy run
 * on the plugin's init / fini thread, and so does pool_resize.
 */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

/* One thread: its place decides whether a smaller pool keeps it. */
struct pool_worker {
    struct pool *p;
    unsigned index;
    pthread_t thread;
};

struct pool {
    pool_run_fn run;
    pool_cancel_fn cancel;
    void *arg;
    const char *name;

    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t work;  /* a job was queued, stopping was set, or `keep` fell */
    struct pool_job *head, *tail;
    size_t queued;
    size_t max_queue;
    bool stopping; /* set once, by pool_destroy */
    unsigned keep; /* threads whose index is below it serve; the others leave */

    unsigned n_threads; /* started, to join: the creating thread's */
    struct pool_worker workers[POOL_MAX_THREADS];
};

static void *pool_thread(void *arg)
{
    struct pool_worker *w = arg;
    struct pool *p = w->p;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stopping && !p->head && w->index < p->keep)
            pthread_cond_wait(&p->work, &p->lock);
        if (p->stopping || w->index >= p->keep)
            break; /* destroy took the queue, or a resize this thread */
        struct pool_job *job = p->head;
        p->head = job->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        pthread_mutex_unlock(&p->lock);
        /* Unlocked: a slow job must not hold up submitters or the others. */
        job->next = NULL;
        p->run(p->arg, job);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Stop and join the first `n` threads, cancelling whatever is queued. */
static void pool_stop(struct pool *p, unsigned n)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    struct pool_job *job = p->head;
    p->head = p->tail = NULL;
    p->queued = 0;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    /* Cancelled before the join: a thread still running a job may be slow,
     * and the waiting callers need not wait for it. */
    while (job) {
        struct pool_job *next = job->next;
        job->next = NULL;
        p->cancel(p->arg, job);
        job = next;
    }
    for (unsigned i = 0; i < n; i++)
        pthread_join(p->workers[i].thread, NULL);
}

/* Start threads n_threads..n-1 (all signals blocked, see pool_create):
 * 0, or the pthread_create error with the ones before it running. */
static int pool_start(struct pool *p, unsigned n)
{
    /* Threads inherit the creator's mask. ringmqd takes its signals with
     * sigwait on the main thread, and a SIGHUP delivered to a thread that
     * does not block it would kill the process. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_mutex_lock(&p->lock);
    p->keep = n; /* before the threads look at it */
    pthread_mutex_unlock(&p->lock);
    int rc = 0;
    for (unsigned i = p->n_threads; i < n; i++) {
        struct pool_worker *w = &p->workers[i];
        w->p = p;
        w->index = i;
        rc = pthread_create(&w->thread, NULL, pool_thread, w);
        if (rc != 0)
            break;
        p->n_threads++;
        char tname[16]; /* the kernel's limit, NUL included */
        snprintf(tname, sizeof(tname), "%s/%u", p->name, i);
        pthread_setname_np(w->thread, tname); /* cosmetic: ignore failure */
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_mutex_lock(&p->lock);
        p->keep = p->n_threads;
        pthread_mutex_unlock(&p->lock);
    }
    return rc;
}

static void pool_free(struct pool *p)
{
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

int pool_create(const char *name, unsigned n_threads, size_t max_queue, pool_run_fn run,
                pool_cancel_fn cancel, void *arg, struct pool **out)
{
    if (n_threads == 0 || n_threads > POOL_MAX_THREADS || max_queue == 0)
        return -EINVAL;
    struct pool *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->run = run;
    p->cancel = cancel;
    p->arg = arg;
    p->name = name;
    p->max_queue = max_queue;
    int rc = pthread_mutex_init(&p->lock, NULL);
    if (rc != 0) {
        free(p);
        return -rc;
    }
    rc = pthread_cond_init(&p->work, NULL);
    if (rc != 0) {
        pthread_mutex_destroy(&p->lock);
        free(p);
        return -rc;
    }
    rc = pool_start(p, n_threads);
    if (rc != 0) {
        pool_stop(p, p->n_threads);
        pool_free(p);
        return -rc;
    }
    *out = p;
    return 0;
}

int pool_resize(struct pool *p, unsigned n_threads, size_t max_queue)
{
    if (n_threads == 0 || n_threads > POOL_MAX_THREADS || max_queue == 0)
        return -EINVAL;
    pthread_mutex_lock(&p->lock);
    p->max_queue = max_queue;
    pthread_mutex_unlock(&p->lock);
    if (n_threads > p->n_threads)
        return -pool_start(p, n_threads);
    if (n_threads == p->n_threads)
        return 0;
    pthread_mutex_lock(&p->lock);
    p->keep = n_threads;
    pthread_cond_broadcast(&p->work); /* the idle ones among those leaving */
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = n_threads; i < p->n_threads; i++)
        pthread_join(p->workers[i].thread, NULL);
    p->n_threads = n_threads;
    return 0;
}

unsigned pool_threads(const struct pool *p)
{
    return p->n_threads;
}

int pool_submit(struct pool *p, struct pool_job *job)
{
    int rc = 0;
    job->next = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        rc = -ESHUTDOWN;
    } else if (p->queued >= p->max_queue) {
        rc = -EAGAIN;
    } else {
        if (p->tail)
            p->tail->next = job;
        else
            p->head = job;
        p->tail = job;
        p->queued++;
        pthread_cond_signal(&p->work); /* one job: one thread to wake */
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void pool_destroy(struct pool *p)
{
    if (!p)
        return;
    pool_stop(p, p->n_threads);
    pool_free(p);
}
