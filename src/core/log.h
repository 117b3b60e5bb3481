/*
 * log: leveled logging with a per-thread prefix (shard id), and a
 * per-thread rate limiter for per-client errors.
 *
 * Lines go to stderr (the journal keeps them under systemd) or to
 * syslog(3), as text ("level [thread] message") or as one JSON object per
 * line (time, level, thread, shard, and the tenant and client id of the
 * connection being handled, where the thread set them: log_set_client).
 *
 * Every thread may call it; level, format and target are process-wide and
 * set once at start-up before any shard thread runs. Nothing here
 * allocates.
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

enum log_format {
    LOG_FORMAT_TEXT = 0, /* "level [thread] message" */
    LOG_FORMAT_JSON = 1, /* {"time":...,"level":...,"thread":...,"msg":...} */
};

enum log_target {
    LOG_TARGET_STDERR = 0,
    LOG_TARGET_SYSLOG = 1, /* syslog(3), facility daemon, ident "ringmqd" */
};

/* Set the process-wide format and target. Call before starting threads. */
void log_set_output(enum log_format format, enum log_target target);

/* The connection this thread is handling now: its tenant (a name that
 * outlives the call) and client id (copied, at most 128 bytes); a NULL
 * tenant clears both. JSON lines carry them as "tenant" and "client_id". */
void log_set_client(const char *tenant, const char *client_id, int client_id_len);

/* Whether lines name the client (JSON): callers on a hot path skip
 * log_set_client otherwise. Set once at start-up (log_set_output). */
extern bool log_names_clients;

/* True when messages of `level` are written (use it to skip formatting). */
bool log_enabled(enum log_level level);

/* Parse "error", "warning", "info", "debug". Returns 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);

/* Set this thread's prefix (copied, truncated to 31 bytes), e.g. "shard 2". */
void log_set_thread_name(const char *name);

/* Write one line, "level [thread] message\n" (e.g. "warning [shard 2] ...")
 * or its JSON object, with one write so that threads do not interleave; the
 * message is cut at 1 KiB. Nothing when `level` is not enabled. */
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
