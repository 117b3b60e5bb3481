/*
 * pool: a bounded FIFO of jobs served by a fixed set of threads, for work too
 * slow for a broker shard thread (auth_file's PBKDF2). Submitting never
 * blocks: a full queue is the caller's answer to give.
 *
 * Jobs are intrusive (struct pool_job embedded in the caller's struct) so a
 * submit allocates nothing beyond the caller's own job.
 */
#ifndef RINGMQ_PLUGIN_POOL_H
#define RINGMQ_PLUGIN_POOL_H

#include <stddef.h>

struct pool;

/* Embed in the job; the pool owns it from a successful pool_submit until it
 * hands it to run or cancel. */
struct pool_job {
    struct pool_job *next;
};

/* Runs `job` on one of the pool's threads; takes ownership of it. */
typedef void (*pool_run_fn)(void *arg, struct pool_job *job);
/* A job that will never run (pool_destroy): called on the destroying thread,
 * takes ownership. */
typedef void (*pool_cancel_fn)(void *arg, struct pool_job *job);

/* The most threads one pool runs. */
#define POOL_MAX_THREADS 64u

/* Start `n_threads` threads (at most POOL_MAX_THREADS; named "<name>/<i>",
 * `name` borrowed for the pool's life; all signals blocked: they
 * must not take the process's SIGHUP or SIGTERM) serving a queue of at most
 * `max_queue` jobs waiting (jobs being run do not count). Returns 0 and
 * *out, or -errno (-EINVAL for zero threads or zero max_queue) with nothing
 * started. */
int pool_create(const char *name, unsigned n_threads, size_t max_queue, pool_run_fn run,
                pool_cancel_fn cancel, void *arg, struct pool **out);

/* Queue `job`, from any thread, without blocking on anything but the queue
 * lock (held for a few pointer writes). Returns 0 (the pool owns the job),
 * -EAGAIN when max_queue jobs are waiting, or -ESHUTDOWN once pool_destroy
 * has begun; on error the caller keeps the job. */
int pool_submit(struct pool *p, struct pool_job *job);

/* Change the number of threads and the queue's bound, on the thread that
 * created the pool (never beside pool_destroy), while others submit. Jobs
 * already queued stay queued (a smaller bound only refuses new ones). A
 * thread taken away finishes the job it runs (this waits for it, then
 * joins it). Returns 0, -EINVAL (zero, or more than POOL_MAX_THREADS:
 * nothing changed) or -errno from pthread_create, with the threads started
 * until then serving (pool_threads says how many). */
int pool_resize(struct pool *p, unsigned n_threads, size_t max_queue);

/* How many threads serve the queue (the creating thread's view). */
unsigned pool_threads(const struct pool *p);

/* Stop: every job still waiting goes to cancel (on this thread), jobs being
 * run finish, the threads are joined, the pool is freed. NULL is a no-op. */
void pool_destroy(struct pool *p);

#endif
