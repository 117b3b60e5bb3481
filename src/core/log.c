/*
 * log: leveled stderr logging. The level is written once at start-up and
 * only read afterwards; the thread name and the rate limiter are
 * thread-local, so shards never share a cache line here.
 */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level current_level = LOG_LEVEL_INFO;
static _Thread_local char thread_name[32] = "main";
static _Thread_local struct {
    time_t second;
    unsigned count;
    unsigned suppressed;
} limiter;

enum { LOG_RATELIMIT_PER_SECOND = 10 };

void log_set_level(enum log_level level)
{
    current_level = level;
}

bool log_enabled(enum log_level level)
{
    return level <= current_level;
}

int log_parse_level(const char *s, enum log_level *out)
{
    static const struct {
        const char *name;
        enum log_level level;
    } names[] = {
        {"error", LOG_LEVEL_ERR},
        {"warning", LOG_LEVEL_WARN},
        {"info", LOG_LEVEL_INFO},
        {"debug", LOG_LEVEL_DEBUG},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return -EINVAL;
}

void log_set_thread_name(const char *name)
{
    snprintf(thread_name, sizeof(thread_name), "%s", name);
}

static void log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
    static const char *const tags[] = {"error", "warning", "info", "debug"};
    char line[1024];
    int n = snprintf(line, sizeof(line), "%s [%s] ", tags[level], thread_name);
    if (n < 0)
        return;
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    /* One write per line so concurrent shards do not interleave mid-line. */
    fwrite(line, 1, len, stderr);
}

void log_write(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, fmt, ap);
    va_end(ap);
}

void log_ratelimited(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    time_t now = time(NULL);
    if (now != limiter.second) {
        if (limiter.suppressed)
            log_write(level, "(%u similar messages suppressed)", limiter.suppressed);
        limiter.second = now;
        limiter.count = 0;
        limiter.suppressed = 0;
    }
    if (limiter.count >= LOG_RATELIMIT_PER_SECOND) {
        limiter.suppressed++;
        return;
    }
    limiter.count++;
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, fmt, ap);
    va_end(ap);
}
