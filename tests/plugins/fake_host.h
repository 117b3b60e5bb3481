/*
 * A fake ringmq host for the plugin tests: loads a plugin .so with dlopen
 * exactly as ringmqd does (entry symbol, ABI version, kinds), offers the
 * host services (log, now_ms with a clock tests can move forward, complete)
 * and records what complete() got, copying the borrowed strings.
 *
 * complete() may be called from any thread (plugins with their own
 * threads): everything it records is guarded by one mutex, and tests wait
 * for completions on a condition variable, each wait bounded (30 s) so that
 * a lost completion fails the test instead of hanging it. A test that needs
 * a plugin thread to stand still (a full queue, fini with work queued) holds
 * a call: its complete() from another thread waits at a gate until the test
 * opens it, before anything is recorded.
 */
#ifndef RINGMQ_TESTS_FAKE_HOST_H
#define RINGMQ_TESTS_FAKE_HOST_H

#include <pthread.h>

#include <ringmq/plugin.h>

struct fake_result {
    int completions; /* how many times complete() was called */
    struct ringmq_call *call;
    enum ringmq_auth_decision decision;
    char tenant[128];  /* "" for NULL */
    char user_id[128]; /* "" for NULL */
    bool has_tenant, has_user_id;
    enum ringmq_verdict verdict;
    bool cacheable;
    char reason[128]; /* "" for NULL */
    bool has_reason;
};

extern const struct ringmq_host fake_host;
extern struct fake_result fake_last;
extern int fake_log_lines;      /* log() calls so far */
extern char fake_last_log[512]; /* the last one's text (read when no plugin thread logs) */

/* Move the host's now_ms() forward by `ms` (it is the monotonic clock plus
 * every advance so far; fake_reset goes back to the plain clock), so a test
 * of an expiry needs no sleep. */
void fake_clock_advance_ms(uint64_t ms);

/* dlopen `path` and return its table, asserting the ABI version. */
const struct ringmq_plugin *fake_load(const char *path);

/* init with `n` key/value pairs: returns init's result, err filled. */
int fake_init(const struct ringmq_plugin *p, const struct ringmq_kv *kv, size_t n, void **state,
              char *err, size_t errlen);

/* A scratch directory for the test's files; fake_path joins a name. */
const char *fake_dir(void);
const char *fake_path(const char *name, char *buf, size_t len);
void fake_write_file(const char *path, const char *content);

/* ---- calls tracked one by one, for completions from other threads ---- */

#define FAKE_MAX_CALLS 1024

/* What complete() got for one call made with fake_call(i). */
struct fake_call_rec {
    int completions;
    pthread_t thread; /* who called complete() (the last time) */
    enum ringmq_auth_decision decision;
    char tenant[128], user_id[128], reason[128]; /* "" for NULL */
    bool has_tenant, has_user_id, has_reason;
};

/* Forget every call and completion, close the gate (a suite's .init). */
void fake_reset(void);

/* The call handle number `i` (0 <= i < FAKE_MAX_CALLS) to pass to a plugin. */
struct ringmq_call *fake_call(int i);

/* A copy of what call `i` got so far (completions 0: nothing yet). */
struct fake_call_rec fake_call_get(int i);

/* Wait until call `i` was completed at least once; returns its record. */
struct fake_call_rec fake_wait_call(int i);

/* Completions recorded so far, all calls, tracked or not. */
int fake_completions(void);

/* Wait until at least `n` completions were recorded (asserts, 30 s). */
void fake_wait_completions(int n);

/* Hold call `i`: its complete(), if called from a thread other than this
 * one, waits at the gate until fake_open_gate(). A complete() on this
 * thread (inside the plugin callback) is recorded at once: waiting would
 * deadlock, and that is the synchronous behaviour tests want to see. */
void fake_hold(int i);

/* Wait until `n` complete() calls wait at the gate (asserts, 30 s). */
void fake_wait_held(int n);

/* From now on host->call_abandoned() says true for call `i` (as ringmqd
 * does once the call's timeout passed). */
void fake_abandon(int i);

/* Let every held complete() through, and every later one. */
void fake_open_gate(void);

/* Fail the test if LeakSanitizer (an ASan build) finds memory no longer
 * reachable now; without LeakSanitizer, do nothing. Criterion ignores the
 * leak report a test process prints at exit, hence this explicit check. */
void fake_assert_no_leaks(void);

/* Remove the scratch directory and everything in it (a suite's .fini). */
void fake_cleanup(void);

#endif
