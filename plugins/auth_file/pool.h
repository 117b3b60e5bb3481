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

/* Start `n_threads` threads (named "<name>/<i>", all signals blocked: they
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

/* Stop: every job still waiting goes to cancel (on this thread), jobs being
 * run finish, the threads are joined, the pool is freed. NULL is a no-op. */
void pool_destroy(struct pool *p);

#endif
