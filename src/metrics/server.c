/*
 * metrics server: the HTTP listener of the control plane ([metrics] bind,
 * port), libmicrohttpd on its own internal polling thread.
 *
 * Owns the MHD daemon. Every request is answered on that one thread, so the
 * collector runs there, one scrape at a time, and never on a shard thread;
 * HTTP parsing is libmicrohttpd's, not ours. It must not block for long: a
 * slow collector delays only other scrapes, never message traffic.
 */
#include "metrics/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "core/log.h"

/* One scrape at a time anyway; a few spare slots for stuck peers. */
enum { METRICS_CONNECTION_LIMIT = 16, METRICS_CONNECTION_TIMEOUT_S = 10 };

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_INDEX        "ringmq metrics: GET /metrics\n"

struct metrics_server {
    struct MHD_Daemon *daemon;
    metrics_collect_fn collect;
    void *arg;
    /*
     * While metrics_server_start() runs, MHD's error messages (a failed
     * bind, say) go to the caller's err buffer; afterwards to the log. The
     * MHD thread may already log before start returns, hence the lock.
     */
    pthread_mutex_t log_lock;
    char *start_err;
    size_t start_errlen;
};

static void server_log(void *cls, const char *fmt, va_list ap)
{
    struct metrics_server *s = cls;
    char line[256];
    vsnprintf(line, sizeof(line), fmt, ap);
    /* MHD ends its messages with a newline; our log adds its own. */
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    pthread_mutex_lock(&s->log_lock);
    if (s->start_err && s->start_errlen)
        snprintf(s->start_err, s->start_errlen, "metrics: %s", line);
    else
        log_ratelimited(LOG_LEVEL_WARN, "metrics: http: %s", line);
    pthread_mutex_unlock(&s->log_lock);
}

static enum MHD_Result server_reply(struct MHD_Connection *conn, unsigned int status,
                                    struct MHD_Response *resp, const char *content_type)
{
    if (!resp)
        return MHD_NO; /* out of memory: MHD closes the connection */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, MHD_HTTP_METHOD_GET);
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result server_reply_static(struct MHD_Connection *conn, unsigned int status,
                                           const char *body)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    return server_reply(conn, status, resp, "text/plain; charset=utf-8");
}

static enum MHD_Result server_scrape(struct metrics_server *s, struct MHD_Connection *conn)
{
    size_t len = 0;
    char *body = metrics_render(s->collect, s->arg, &len);
    if (!body)
        return server_reply_static(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    /* MHD_RESPMEM_MUST_FREE: MHD free()s the body once it is sent. */
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        free(body);
    return server_reply(conn, MHD_HTTP_OK, resp, METRICS_CONTENT_TYPE);
}

/*
 * Answered on the first call for the request: nothing we serve takes a body,
 * and MHD closes a connection whose upload was refused early.
 */
static enum MHD_Result server_request(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **req_cls)
{
    struct metrics_server *s = cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;

    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
        return server_reply_static(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    if (strcmp(url, "/metrics") == 0)
        return server_scrape(s, conn);
    if (strcmp(url, "/") == 0)
        return server_reply_static(conn, MHD_HTTP_OK, METRICS_INDEX);
    return server_reply_static(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

/* Parse an IPv4 or IPv6 literal (IPv6 optionally in brackets). */
static int server_parse_addr(const char *bind_addr, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, bind_addr, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        return AF_INET;
    }
    char v6[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(bind_addr);
    if (n >= 2 && bind_addr[0] == '[' && bind_addr[n - 1] == ']' && n - 2 < sizeof(v6)) {
        memcpy(v6, bind_addr + 1, n - 2);
        v6[n - 2] = '\0';
    } else if (n < sizeof(v6)) {
        memcpy(v6, bind_addr, n + 1);
    } else {
        return -1;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, v6, &sin6->sin6_addr) != 1)
        return -1;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    return AF_INET6;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

struct metrics_server *metrics_server_start(const char *bind_addr, uint16_t port,
                                            metrics_collect_fn collect, void *arg,
                                            uint16_t *bound_port, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!bind_addr || !collect) {
        set_err(err, errlen, "metrics: %s", !bind_addr ? "no bind address" : "no collector");
        return NULL;
    }
    struct sockaddr_storage ss;
    int family = server_parse_addr(bind_addr, port, &ss);
    if (family < 0) {
        set_err(err, errlen, "metrics: bind address '%s' is not an IPv4 or IPv6 literal",
                bind_addr);
        return NULL;
    }

    struct metrics_server *s = calloc(1, sizeof(*s));
    if (!s) {
        set_err(err, errlen, "metrics: out of memory");
        return NULL;
    }
    s->collect = collect;
    s->arg = arg;
    pthread_mutex_init(&s->log_lock, NULL);
    s->start_err = err;
    s->start_errlen = errlen;

    /* poll(), not MHD_USE_AUTO's epoll: MHD 0.9.75's edge-triggered epoll
     * missed a half-close that came with the request's last bytes and held
     * the connection until the timeout (the admin server's note). */
    unsigned int flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* The logger goes first, or MHD reports the options before it on stderr. */
    s->daemon = MHD_start_daemon(
        flags, port, NULL, NULL, server_request, s, MHD_OPTION_EXTERNAL_LOGGER, server_log, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)METRICS_CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)METRICS_CONNECTION_TIMEOUT_S, MHD_OPTION_END);

    pthread_mutex_lock(&s->log_lock);
    s->start_err = NULL;
    s->start_errlen = 0;
    pthread_mutex_unlock(&s->log_lock);

    if (!s->daemon) {
        if (err && errlen && !err[0])
            set_err(err, errlen, "metrics: cannot listen on %s port %u", bind_addr, (unsigned)port);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || !info->port) {
        set_err(err, errlen, "metrics: cannot learn the port bound on %s", bind_addr);
        MHD_stop_daemon(s->daemon);
        goto fail;
    }
    if (bound_port)
        *bound_port = info->port;
    return s;

fail:
    pthread_mutex_destroy(&s->log_lock);
    free(s);
    return NULL;
}

void metrics_server_stop(struct metrics_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->daemon); /* joins the thread: no collect after this */
    pthread_mutex_destroy(&s->log_lock);
    free(s);
}
