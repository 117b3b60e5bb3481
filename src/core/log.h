/*
 * log: leveled logging to stderr with a per-thread prefix (shard id), and a
 * per-thread rate limiter for per-client errors.
 *
 * Every thread may call it; the level is process-wide and set once at
 * start-up before any shard thread runs. Nothing here allocates.
 */
#ifndef RINGMQ_CORE_LOG_H
#define RINGMQ_CORE_LOG_H

#include <stdbool.h>

enum log_level {
    LOG_LEVEL_ERR = 0,
    LOG_LEVEL_WARN = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
};

/* Set the process-wide level. Call before starting threads. */
void log_set_level(enum log_level level);

/* True when messages of `level` are written (use it to skip formatting). */
bool log_enabled(enum log_level level);

/* Parse "error", "warning", "info", "debug". Returns 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);

/* Set this thread's prefix (copied, truncated to 31 bytes), e.g. "shard 2". */
void log_set_thread_name(const char *name);

/* Write one line, "level [thread] message\n" (e.g. "warning [shard 2] ..."),
 * with one write so that threads do not interleave; cut at 1 KiB. Nothing
 * when `level` is not enabled. */
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Rate-limited variant for per-client errors: at most 10 lines per second
 * per thread, all levels together. How many were dropped is written as a
 * line of its own ("(N similar messages suppressed)") before the first line
 * let through in a later second.
 */
void log_ratelimited(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_err(...)  log_write(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warn(...) log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOG_LEVEL_DEBUG))                                                          \
            log_write(LOG_LEVEL_DEBUG, __VA_ARGS__);                                               \
    } while (0)

#endif
