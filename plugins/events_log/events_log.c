/*
 * events_log: a ringmq event collector (RINGMQ_KIND_EVENTS) appending each
 * event as one JSON object on one line to the file named by the `file` key
 * (see README.md). Called by every shard thread: a line is formatted on the
 * caller's stack (or heap for long topics) with no lock held, then written
 * with one write(2) on an O_APPEND descriptor under a mutex, so lines never
 * interleave. reload() reopens the file (log rotation): the new descriptor is
 * opened first and swapped in under the mutex.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ringmq/plugin.h>

struct events_log {
    const struct ringmq_host *host;
    char *path;
    pthread_mutex_t lock; /* guards fd */
    int fd;
};

/* A growable output buffer; starts on the caller's stack. */
struct jbuf {
    char *p;
    size_t len, cap;
    bool heap;
    bool failed; /* out of memory: the line is dropped */
};

static void jb_reserve(struct jbuf *b, size_t more)
{
    if (b->failed || b->len + more <= b->cap)
        return;
    size_t cap = b->cap * 2;
    while (cap < b->len + more)
        cap *= 2;
    char *p = b->heap ? realloc(b->p, cap) : malloc(cap);
    if (!p) {
        b->failed = true;
        return;
    }
    if (!b->heap)
        memcpy(p, b->p, b->len);
    b->p = p;
    b->cap = cap;
    b->heap = true;
}

static void jb_put(struct jbuf *b, const char *s, size_t n)
{
    jb_reserve(b, n);
    if (b->failed)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void jb_str(struct jbuf *b, const char *s)
{
    jb_put(b, s, strlen(s));
}

static void jb_printf(struct jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void jb_printf(struct jbuf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        jb_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 when it is not one. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t len;
    uint32_t min, cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, min = 0x80, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, min = 0x800, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, min = 0x10000, cp = c & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* A JSON string from arbitrary bytes: valid UTF-8 is kept, '"', '\\' and
 * control characters are escaped, and each byte that is not part of valid
 * UTF-8 is written as \u00XX (the byte's value as a code point), so the line
 * stays valid JSON whatever a client sent. */
static void jb_json_bytes(struct jbuf *b, const uint8_t *p, size_t n)
{
    jb_put(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        size_t l = utf8_seq(p + i, n - i);
        if (l > 1) {
            jb_put(b, (const char *)p + i, l);
            i += l;
            continue;
        }
        if (l == 1 && c == '"') {
            jb_put(b, "\\\"", 2);
        } else if (l == 1 && c == '\\') {
            jb_put(b, "\\\\", 2);
        } else if (l == 1 && c == '\n') {
            jb_put(b, "\\n", 2);
        } else if (l == 1 && c >= 0x20 && c != 0x7f) {
            jb_put(b, (const char *)&c, 1);
        } else {
            jb_printf(b, "\\u%04x", c);
        }
        i++;
    }
    jb_put(b, "\"", 1);
}

static void jb_json_str(struct jbuf *b, const char *s)
{
    if (s)
        jb_json_bytes(b, (const uint8_t *)s, strlen(s));
    else
        jb_str(b, "null");
}

static const char *const type_names[] = {
    [RINGMQ_EV_CONNECTED] = "connected",
    [RINGMQ_EV_DISCONNECTED] = "disconnected",
    [RINGMQ_EV_AUTH_FAILED] = "auth_failed",
    [RINGMQ_EV_PERMISSION_DENIED] = "permission_denied",
    [RINGMQ_EV_THROTTLED] = "throttled",
    [RINGMQ_EV_MESSAGE_DROPPED] = "message_dropped",
    [RINGMQ_EV_SESSION_CREATED] = "session_created",
    [RINGMQ_EV_SESSION_EXPIRED] = "session_expired",
    [RINGMQ_EV_SLOW_SUBSCRIBER] = "slow_subscriber",
};

static const char *const resource_names[RINGMQ_RES_COUNT] = {
    [RINGMQ_RES_CONNECTIONS] = "connections",
    [RINGMQ_RES_CONNECT_RATE] = "connect_rate",
    [RINGMQ_RES_SESSIONS] = "sessions",
    [RINGMQ_RES_SUBSCRIPTIONS] = "subscriptions",
    [RINGMQ_RES_SHARED_SUBSCRIPTIONS] = "shared_subscriptions",
    [RINGMQ_RES_BYTES_IN_RATE] = "bytes_in_rate",
    [RINGMQ_RES_BYTES_OUT_RATE] = "bytes_out_rate",
    [RINGMQ_RES_RETAINED] = "retained",
    [RINGMQ_RES_RETAINED_BYTES] = "retained_bytes",
};

static const char *const drop_names[] = {
    [RINGMQ_DROP_QUEUE_FULL] = "queue_full",
    [RINGMQ_DROP_TOO_LARGE] = "too_large",
    [RINGMQ_DROP_EXPIRED] = "expired",
    [RINGMQ_DROP_SLOW_CONSUMER] = "slow_consumer",
    [RINGMQ_DROP_NO_SHARE_MEMBER] = "no_share_member",
    [RINGMQ_DROP_THROTTLED] = "throttled",
    [RINGMQ_DROP_DENIED] = "denied",
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static void events_format(struct jbuf *b, const struct ringmq_event *ev)
{
    jb_str(b, "{\"type\":");
    if ((unsigned)ev->type < N_OF(type_names))
        jb_printf(b, "\"%s\"", type_names[ev->type]);
    else
        jb_printf(b, "\"unknown_%u\"", (unsigned)ev->type);
    jb_printf(b, ",\"time_ms\":%" PRIu64, ev->time_ms);
    jb_str(b, ",\"tenant\":");
    jb_json_str(b, ev->tenant);
    jb_str(b, ",\"user_id\":");
    jb_json_str(b, ev->user_id);
    jb_str(b, ",\"client_id\":");
    jb_json_bytes(b, ev->client_id.p, ev->client_id.len);
    jb_str(b, ",\"remote_addr\":");
    jb_json_str(b, ev->remote_addr);
    jb_printf(b, ",\"reason\":%" PRIu32, ev->reason);
    /* Names where the number alone would need the header to read. */
    if (ev->type == RINGMQ_EV_MESSAGE_DROPPED && ev->reason < N_OF(drop_names))
        jb_printf(b, ",\"reason_name\":\"%s\"", drop_names[ev->reason]);
    jb_str(b, ",\"resource\":");
    if (ev->type == RINGMQ_EV_THROTTLED && (unsigned)ev->resource < RINGMQ_RES_COUNT)
        jb_printf(b, "\"%s\"", resource_names[ev->resource]);
    else
        jb_str(b, "null");
    jb_str(b, ",\"topic\":");
    if (ev->topic.len > 0)
        jb_json_bytes(b, ev->topic.p, ev->topic.len);
    else
        jb_str(b, "null");
    jb_printf(b, ",\"shard\":%" PRIu32 "}\n", ev->shard);
}

static int events_open(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    return fd >= 0 ? fd : -errno;
}

static void events_event(void *state, const struct ringmq_event *ev)
{
    struct events_log *st = state;
    char stack[512];
    struct jbuf b = {.p = stack, .cap = sizeof(stack)};
    events_format(&b, ev);
    if (!b.failed) {
        pthread_mutex_lock(&st->lock);
        /* O_APPEND: a line lands whole at the end even if another process
         * (logrotate's copytruncate) touches the file. */
        size_t off = 0;
        while (off < b.len) {
            ssize_t n = write(st->fd, b.p + off, b.len - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            off += (size_t)n;
        }
        pthread_mutex_unlock(&st->lock);
    }
    if (b.heap)
        free(b.p);
}

static void events_fini(void *state)
{
    struct events_log *st = state;
    if (!st)
        return;
    if (st->fd >= 0)
        close(st->fd);
    pthread_mutex_destroy(&st->lock);
    free(st->path);
    free(st);
}

static int events_init(const struct ringmq_host *host, const struct ringmq_kv *config, size_t n,
                       void **state, char *err, size_t errlen)
{
    const char *path = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(config[i].key, "file") == 0) {
            path = config[i].value;
        } else {
            snprintf(err, errlen, "unknown key '%s' (known: file)", config[i].key);
            return -EINVAL;
        }
    }
    if (!path || !*path) {
        snprintf(err, errlen, "file is required");
        return -EINVAL;
    }
    struct events_log *st = calloc(1, sizeof(*st));
    if (!st || !(st->path = strdup(path))) {
        free(st);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    st->host = host;
    pthread_mutex_init(&st->lock, NULL);
    st->fd = events_open(path);
    if (st->fd < 0) {
        int rc = st->fd;
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        events_fini(st);
        return rc;
    }
    *state = st;
    return 0;
}

static void events_reload(void *state)
{
    struct events_log *st = state;
    int fd = events_open(st->path);
    if (fd < 0) {
        st->host->log(RINGMQ_LOG_ERR, "%s: cannot reopen (%s), writing to the old file", st->path,
                      strerror(-fd));
        return;
    }
    pthread_mutex_lock(&st->lock);
    int old = st->fd;
    st->fd = fd;
    pthread_mutex_unlock(&st->lock);
    close(old);
}

static const struct ringmq_plugin events_plugin = {
    .abi_version = RINGMQ_PLUGIN_ABI_VERSION,
    .name = "events_log",
    .kinds = RINGMQ_KIND_EVENTS,
    .init = events_init,
    .fini = events_fini,
    .reload = events_reload,
    .event = events_event,
};

__attribute__((visibility("default"))) const struct ringmq_plugin *ringmq_plugin_entry(void);

const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &events_plugin;
}
