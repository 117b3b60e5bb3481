/*
 * log: leveled logging to stderr or syslog, as text or JSON lines. Level,
 * format and target are written once at start-up and only read
 * afterwards; the thread name, the client being handled and the rate
 * limiter are thread-local, so shards never share a cache line here.
 *
 * The JSON line is written here rather than through a JSON library: it
 * only escapes strings into a fixed buffer (a log line must not allocate),
 * and nothing parses untrusted input.
 */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static enum log_level current_level = LOG_LEVEL_INFO;
static enum log_format current_format = LOG_FORMAT_TEXT;
static enum log_target current_target = LOG_TARGET_STDERR;
static _Thread_local char thread_name[32] = "main";
static _Thread_local struct {
    const char *tenant;
    int id_len;
    char id[128]; /* a copy: the session may end while its input is handled */
} client;
static _Thread_local struct {
    time_t second;
    unsigned count;
    unsigned suppressed;
} limiter;

enum { LOG_RATELIMIT_PER_SECOND = 10 };

/* Set by main (at start and on a reload) while the shards log: relaxed
 * atomics, a line may still follow the old level briefly. */
void log_set_level(enum log_level level)
{
    __atomic_store_n(&current_level, level, __ATOMIC_RELAXED);
}

bool log_enabled(enum log_level level)
{
    return level <= __atomic_load_n(&current_level, __ATOMIC_RELAXED);
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

bool log_names_clients;

void log_set_output(enum log_format format, enum log_target target)
{
    current_format = format;
    log_names_clients = format == LOG_FORMAT_JSON;
    current_target = target;
    if (target == LOG_TARGET_SYSLOG)
        openlog("ringmqd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_thread_name(const char *name)
{
    snprintf(thread_name, sizeof(thread_name), "%s", name);
}

void log_set_client(const char *tenant, const char *client_id, int client_id_len)
{
    client.tenant = tenant;
    int n = tenant && client_id && client_id_len > 0 ? client_id_len : 0;
    if (n > (int)sizeof(client.id))
        n = (int)sizeof(client.id);
    memcpy(client.id, client_id ? client_id : "", (size_t)n);
    client.id_len = n;
}

static const char *const level_names[] = {"error", "warning", "info", "debug"};

/* Append s (n bytes, or up to its NUL when n < 0) to out[*at..cap) as the
 * inside of a JSON string; stops short rather than overflow. */
static void json_escape(char *out, size_t cap, size_t *at, const char *s, int n)
{
    size_t i = *at;
    for (int k = 0; n < 0 ? s[k] != '\0' : k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        if (i + 7 > cap)
            break;
        if (c == '"' || c == '\\') {
            out[i++] = '\\';
            out[i++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            i += (size_t)snprintf(out + i, cap - i, "\\u%04x", c);
        } else {
            out[i++] = (char)c; /* UTF-8 passes through (client ids are validated) */
        }
    }
    *at = i;
}

/* Append a formatted piece; false when it does not fit. */
static bool put(char *out, size_t cap, size_t *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool put(char *out, size_t cap, size_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *at, cap - *at, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap - *at)
        return false;
    *at += (size_t)n;
    return true;
}

/* The JSON object of one line (without the newline) into out; its length. */
static size_t json_line(char *out, size_t cap, enum log_level level, const char *msg)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    size_t at = 0;
    put(out, cap, &at, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"thread\":\"", when,
        ts.tv_nsec / 1000000, level_names[level]);
    json_escape(out, cap, &at, thread_name, -1);
    put(out, cap, &at, "\"");
    unsigned shard;
    if (sscanf(thread_name, "shard %u", &shard) == 1)
        put(out, cap, &at, ",\"shard\":%u", shard);
    if (client.tenant) {
        put(out, cap, &at, ",\"tenant\":\"");
        json_escape(out, cap, &at, client.tenant, -1);
        put(out, cap, &at, "\"");
        if (client.id_len) {
            put(out, cap, &at, ",\"client_id\":\"");
            json_escape(out, cap, &at, client.id, client.id_len);
            put(out, cap, &at, "\"");
        }
    }
    put(out, cap, &at, ",\"msg\":\"");
    json_escape(out, cap - 2, &at, msg, -1); /* room for the closing "} */
    out[at++] = '"';
    out[at++] = '}';
    return at;
}

static void log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
    char msg[1024];
    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
        return;
    char line[2048];
    size_t len;
    if (current_format == LOG_FORMAT_JSON) {
        len = json_line(line, sizeof(line) - 1, level, msg);
    } else {
        int n =
            snprintf(line, sizeof(line) - 1, "%s [%s] %s", level_names[level], thread_name, msg);
        if (n < 0)
            return;
        len = (size_t)n < sizeof(line) - 1 ? (size_t)n : sizeof(line) - 2;
    }
    if (current_target == LOG_TARGET_SYSLOG) {
        static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
        syslog(prio[level], "%.*s", (int)len, line);
        return;
    }
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
