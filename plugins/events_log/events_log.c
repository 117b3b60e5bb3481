/*
 * events_log: a ringmq event collector (RINGMQ_KIND_EVENTS) appending each
 * event as one JSON object on one line to the file named by the `file` key
 * (see README.md). Called by every shard thread: a line is built with
 * jansson and dumped on the caller's stack (or heap for long topics) with no
 * lock held, then written with one write(2) on an O_APPEND descriptor under
 * a mutex, so lines never interleave. reload() reopens the file (log
 * rotation) and reconfigure (ABI 5) opens the one a new `file` key names:
 * either way the new descriptor is opened first and swapped in under the
 * mutex, on the thread that reloads; `path` is read and written on that
 * thread only.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include <ringmq/plugin.h>

#include "../common/jsonstr.h"

struct events_log {
    const struct ringmq_host *host;
    char *path;
    pthread_mutex_t lock; /* guards fd */
    int fd;
};

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

/* Sets o[key] to v (taking it); 0 or -1, as jansson does. */
static int set(json_t *o, const char *key, json_t *v)
{
    return json_object_set_new(o, key, v);
}

/* The event as a JSON object with every key, in the documented order
 * (jansson keeps insertion order), or NULL when out of memory. Strings from
 * clients may be any bytes: see jsonstr_utf8_or_latin1. */
static json_t *events_format(const struct ringmq_event *ev)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    char unknown[32];
    const char *type = unknown;
    if ((unsigned)ev->type < N_OF(type_names) && type_names[ev->type])
        type = type_names[ev->type];
    else
        snprintf(unknown, sizeof(unknown), "unknown_%u", (unsigned)ev->type);
    int bad = set(o, "type", json_string(type));
    /* json_int_t is 64-bit signed: a time in ms fits for 292 million years. */
    bad |= set(o, "time_ms", json_integer((json_int_t)ev->time_ms));
    bad |= set(o, "tenant", jsonstr_cstr_or_null(ev->tenant));
    bad |= set(o, "user_id", jsonstr_cstr_or_null(ev->user_id));
    bad |= set(o, "client_id", jsonstr_utf8_or_latin1(ev->client_id.p, ev->client_id.len));
    bad |= set(o, "remote_addr", jsonstr_cstr_or_null(ev->remote_addr));
    bad |= set(o, "reason", json_integer(ev->reason));
    /* Names where the number alone would need the header to read. */
    if (ev->type == RINGMQ_EV_MESSAGE_DROPPED && ev->reason < N_OF(drop_names) &&
        drop_names[ev->reason])
        bad |= set(o, "reason_name", json_string(drop_names[ev->reason]));
    bool has_res = ev->type == RINGMQ_EV_THROTTLED && (unsigned)ev->resource < RINGMQ_RES_COUNT &&
                   resource_names[ev->resource];
    bad |= set(o, "resource", has_res ? json_string(resource_names[ev->resource]) : json_null());
    json_t *topic =
        ev->topic.len > 0 ? jsonstr_utf8_or_latin1(ev->topic.p, ev->topic.len) : json_null();
    bad |= set(o, "topic", topic);
    bad |= set(o, "shard", json_integer(ev->shard));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The event as one line (compact JSON and '\n') in line[cap] when it fits,
 * else in a malloc'd buffer; returns the buffer (free it unless it is
 * `line`) and sets *len, or NULL when out of memory. */
static char *events_line(const struct ringmq_event *ev, char *line, size_t cap, size_t *len)
{
    json_t *o = events_format(ev);
    if (!o)
        return NULL;
    char *out = line;
    size_t n = json_dumpb(o, line, cap - 1, JSON_COMPACT);
    if (n > cap - 1) { /* too long for the stack: json_dumpb said how long */
        out = malloc(n + 1);
        if (out && json_dumpb(o, out, n, JSON_COMPACT) != n) {
            free(out);
            out = NULL;
        }
    }
    json_decref(o);
    if (!out || n == 0)
        return NULL; /* n == 0: jansson's own allocation failed */
    out[n] = '\n';
    *len = n + 1;
    return out;
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
    size_t len = 0;
    char *line = events_line(ev, stack, sizeof(stack), &len);
    if (!line)
        return; /* out of memory: the line is dropped */
    pthread_mutex_lock(&st->lock);
    /* O_APPEND: a line lands whole at the end even if another process
     * (logrotate's copytruncate) touches the file. */
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(st->fd, line + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    pthread_mutex_unlock(&st->lock);
    if (line != stack)
        free(line);
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

/* The `file` key of config into *path (borrowed from config): 0, or
 * -EINVAL with err set. */
static int events_keys(const struct ringmq_kv *config, size_t n, const char **path, char *err,
                       size_t errlen)
{
    *path = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(config[i].key, "file") == 0) {
            *path = config[i].value;
        } else {
            snprintf(err, errlen, "unknown key '%s' (known: file)", config[i].key);
            return -EINVAL;
        }
    }
    if (!*path || !**path) {
        snprintf(err, errlen, "file is required");
        return -EINVAL;
    }
    return 0;
}

static int events_init(const struct ringmq_host *host, const struct ringmq_kv *config, size_t n,
                       void **state, char *err, size_t errlen)
{
    const char *path;
    int rc = events_keys(config, n, &path, err, errlen);
    if (rc != 0)
        return rc;
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
        rc = st->fd;
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        events_fini(st);
        return rc;
    }
    *state = st;
    return 0;
}

/* Swap fd in under the lock (the thread that reloads); closes the old one. */
static void events_swap(struct events_log *st, int fd)
{
    pthread_mutex_lock(&st->lock);
    int old = st->fd;
    st->fd = fd;
    pthread_mutex_unlock(&st->lock);
    close(old);
}

/* What a reconfigure prepared: the new file, already open. */
struct events_next {
    char *path;
    int fd;
};

/* ABI 5: a new `file` is opened now (a file that cannot be opened refuses
 * the reload), and written to from the commit on. */
static int events_reconfigure(void *state, const struct ringmq_kv *config, size_t n, void **next,
                              char *err, size_t errlen)
{
    (void)state;
    const char *path;
    int rc = events_keys(config, n, &path, err, errlen);
    if (rc != 0)
        return rc;
    struct events_next *nx = calloc(1, sizeof(*nx));
    if (!nx || !(nx->path = strdup(path))) {
        free(nx);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    nx->fd = events_open(path);
    if (nx->fd < 0) {
        rc = nx->fd;
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        free(nx->path);
        free(nx);
        return rc;
    }
    *next = nx;
    return 0;
}

static void events_reconfigure_commit(void *state, void *next, bool apply)
{
    struct events_log *st = state;
    struct events_next *nx = next;
    if (apply) {
        events_swap(st, nx->fd);
        free(st->path);
        st->path = nx->path;
        st->host->log(RINGMQ_LOG_INFO, "now writing to %s", st->path);
    } else {
        close(nx->fd);
        free(nx->path);
    }
    free(nx);
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
    events_swap(st, fd);
}

static const struct ringmq_plugin events_plugin = {
    .abi_version = RINGMQ_PLUGIN_ABI_VERSION,
    .name = "events_log",
    .kinds = RINGMQ_KIND_EVENTS,
    .init = events_init,
    .fini = events_fini,
    .reload = events_reload,
    .event = events_event,
    .reconfigure = events_reconfigure,
    .reconfigure_commit = events_reconfigure_commit,
};

__attribute__((visibility("default"))) const struct ringmq_plugin *ringmq_plugin_entry(void);

const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &events_plugin;
}
