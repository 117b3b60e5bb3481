/*
 * pool: a bounded job queue and the threads serving it (see pool.h).
 *
 * Owns its threads and the jobs waiting in the queue. pool_submit runs on any
 * thread (broker shards) and must never wait for a job: it only takes the
 * queue lock, which no one holds while running or cancelling a job. The
 * pool's threads run jobs and nothing else; pool_create and pool_destroy run
 * on the plugin's init / fini thread.
 */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

struct pool {
    pool_run_fn run;
    pool_cancel_fn cancel;
    void *arg;
    size_t max_queue;

    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t work;  /* a job was queued, or stopping was set */
    struct pool_job *head, *tail;
    size_t queued;
    bool stopping; /* set once, by pool_destroy */

    unsigned n_threads; /* started, to join */
    pthread_t threads[];
};

static void *pool_thread(void *arg)
{
    struct pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stopping && !p->head)
            pthread_cond_wait(&p->work, &p->lock);
        if (p->stopping)
            break; /* destroy took the queue: nothing is left to run */
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
        pthread_join(p->threads[i], NULL);
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
    if (n_threads == 0 || max_queue == 0)
        return -EINVAL;
    struct pool *p = calloc(1, sizeof(*p) + n_threads * sizeof(p->threads[0]));
    if (!p)
        return -ENOMEM;
    p->run = run;
    p->cancel = cancel;
    p->arg = arg;
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
    /* Threads inherit the creator's mask. ringmqd takes its signals with
     * sigwait on the main thread, and a SIGHUP delivered to a thread that
     * does not block it would kill the process. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (unsigned i = 0; i < n_threads; i++) {
        rc = pthread_create(&p->threads[i], NULL, pool_thread, p);
        if (rc != 0)
            break;
        p->n_threads++;
        char tname[16]; /* the kernel's limit, NUL included */
        snprintf(tname, sizeof(tname), "%s/%u", name, i);
        pthread_setname_np(p->threads[i], tname); /* cosmetic: ignore failure */
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pool_stop(p, p->n_threads);
        pool_free(p);
        return -rc;
    }
    *out = p;
    return 0;
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
