/*
 * Unit tests for src/metrics/server.c through metrics/metrics.h: a server on
 * 127.0.0.1 port 0 answers raw HTTP/1.0 requests over loopback: /metrics
 * with the collector's text and the 0.0.4 content type, / with the index,
 * 404 and 405 otherwise; start-up failures come back with a message.
 * Every socket read is bounded by SO_RCVTIMEO; nothing sleeps.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "metrics/metrics.h"

enum { IO_TIMEOUT_S = 5 };

struct scrape_state {
    atomic_uint calls;
};

/* Known samples; the call count makes each scrape's text distinct. */
static void collect_known(struct metrics_writer *w, void *arg)
{
    struct scrape_state *st = arg;
    unsigned call = atomic_fetch_add(&st->calls, 1) + 1;
    const char *keys[] = {"tenant", "qos", NULL};
    const char *v1[] = {"t\"1\\x\ny", "1", NULL};
    const char *v2[] = {"t2", "2", NULL};
    metrics_write(w, "test_messages_total", "Messages.", "counter", keys, v1, 5);
    metrics_write(w, "test_messages_total", "Messages.", "counter", keys, v2, 0.25);
    metrics_write(w, "test_scrapes", "Scrapes so far.", "gauge", NULL, NULL, call);
}

struct response {
    int status;
    char *head; /* status line and headers, NUL-terminated */
    char *body; /* points into head's allocation */
    size_t body_len;
};

static void response_free(struct response *r)
{
    free(r->head);
}

/* Send `request` raw to family/addr:port and read until the server closes. */
static struct response http_raw_family(int family, uint16_t port, const char *request)
{
    int fd = socket(family, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sl = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        sin6->sin6_addr = in6addr_loopback;
        sl = sizeof(*sin6);
    }
    cr_assert_eq(connect(fd, (struct sockaddr *)&ss, sl), 0, "connect: %s", strerror(errno));
    size_t n = strlen(request);
    cr_assert_eq(send(fd, request, n, MSG_NOSIGNAL), (ssize_t)n);

    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    for (;;) {
        if (cap - len < 1024) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
        ssize_t got = recv(fd, buf + len, cap - len - 1, 0);
        cr_assert_geq(got, 0, "recv: %s (timed out waiting for the server?)", strerror(errno));
        if (got == 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    buf[len] = '\0';

    struct response r = {0};
    r.head = buf;
    char *sep = strstr(buf, "\r\n\r\n");
    cr_assert_not_null(sep, "no end of headers in: %s", buf);
    *sep = '\0';
    r.body = sep + 4;
    r.body_len = len - (size_t)(r.body - buf);
    cr_assert_eq(strncmp(buf, "HTTP/1.", 7), 0, "status line: %s", buf);
    r.status = atoi(buf + 9);
    return r;
}

static struct response http_raw(uint16_t port, const char *request)
{
    return http_raw_family(AF_INET, port, request);
}

/* Value of a header (case-insensitive name), copied into out. */
static bool header_get(const struct response *r, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ')
                v++;
            size_t vlen = strcspn(v, "\r");
            if (vlen >= outlen)
                return false;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return true;
        }
    }
    return false;
}

static struct metrics_server *start_loopback(struct scrape_state *st, uint16_t *port)
{
    char err[256] = "untouched";
    *port = 0;
    struct metrics_server *s =
        metrics_server_start("127.0.0.1", 0, collect_known, st, port, err, sizeof(err));
    cr_assert_not_null(s, "start: %s", err);
    cr_assert_neq(*port, 0, "port 0 must report the port picked");
    return s;
}

static const char expected_scrape_1[] =
    "# HELP test_messages_total Messages.\n"
    "# TYPE test_messages_total counter\n"
    "test_messages_total{tenant=\"t\\\"1\\\\x\\ny\",qos=\"1\"} 5\n"
    "test_messages_total{tenant=\"t2\",qos=\"2\"} 0.25\n"
    "# HELP test_scrapes Scrapes so far.\n"
    "# TYPE test_scrapes gauge\n"
    "test_scrapes 1\n";

Test(metrics_server, get_metrics_answers_the_collected_text)
{
    struct scrape_state st = {0};
    uint16_t port;
    struct metrics_server *s = start_loopback(&st, &port);

    struct response r = http_raw(port, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    cr_assert_eq(r.status, 200, "%s", r.head);
    char ct[128];
    cr_assert(header_get(&r, "Content-Type", ct, sizeof(ct)), "%s", r.head);
    cr_assert_eq(strncmp(ct, "text/plain; version=0.0.4", 25), 0, "content type %s", ct);
    cr_assert_eq(r.body_len, strlen(expected_scrape_1));
    cr_assert_str_eq(r.body, expected_scrape_1);
    char cl[32];
    if (header_get(&r, "Content-Length", cl, sizeof(cl)))
        cr_assert_eq((size_t)atol(cl), r.body_len);
    response_free(&r);

    /* Each GET runs the collector again. */
    r = http_raw(port, "GET /metrics HTTP/1.0\r\n\r\n");
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.body, "\ntest_scrapes 2\n"), "%s", r.body);
    response_free(&r);
    cr_assert_eq(atomic_load(&st.calls), 2);

    metrics_server_stop(s);
}

Test(metrics_server, query_string_is_ignored)
{
    struct scrape_state st = {0};
    uint16_t port;
    struct metrics_server *s = start_loopback(&st, &port);
    struct response r = http_raw(port, "GET /metrics?name[]=x HTTP/1.0\r\n\r\n");
    cr_assert_eq(r.status, 200, "%s", r.head);
    cr_assert_str_eq(r.body, expected_scrape_1);
    response_free(&r);
    metrics_server_stop(s);
}

Test(metrics_server, index_and_not_found)
{
    struct scrape_state st = {0};
    uint16_t port;
    struct metrics_server *s = start_loopback(&st, &port);

    struct response r = http_raw(port, "GET / HTTP/1.0\r\n\r\n");
    cr_assert_eq(r.status, 200, "%s", r.head);
    cr_assert_not_null(strstr(r.body, "/metrics"), "%s", r.body);
    cr_assert_eq(strchr(r.body, '\n'), r.body + r.body_len - 1, "one line: %s", r.body);
    response_free(&r);

    const char *missing[] = {"GET /nope HTTP/1.0\r\n\r\n", "GET /metrics/ HTTP/1.0\r\n\r\n",
                             "GET /metricsx HTTP/1.0\r\n\r\n", "GET /Metrics HTTP/1.0\r\n\r\n"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        r = http_raw(port, missing[i]);
        cr_assert_eq(r.status, 404, "%s -> %s", missing[i], r.head);
        response_free(&r);
    }
    cr_assert_eq(atomic_load(&st.calls), 0, "only /metrics runs the collector");
    metrics_server_stop(s);
}

Test(metrics_server, other_methods_are_405_with_allow_get)
{
    struct scrape_state st = {0};
    uint16_t port;
    struct metrics_server *s = start_loopback(&st, &port);

    const char *reqs[] = {
        "POST /metrics HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
        "PUT /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
        "DELETE / HTTP/1.0\r\n\r\n",
        "HEAD /metrics HTTP/1.0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        struct response r = http_raw(port, reqs[i]);
        cr_assert_eq(r.status, 405, "%s -> %s", reqs[i], r.head);
        char allow[32];
        cr_assert(header_get(&r, "Allow", allow, sizeof(allow)), "%s", r.head);
        cr_assert_str_eq(allow, "GET");
        response_free(&r);
    }
    cr_assert_eq(atomic_load(&st.calls), 0);

    /* Still serving after the refusals. */
    struct response r = http_raw(port, "GET /metrics HTTP/1.0\r\n\r\n");
    cr_assert_eq(r.status, 200);
    response_free(&r);
    metrics_server_stop(s);
}

Test(metrics_server, body_matches_metrics_render)
{
    struct scrape_state st = {0};
    uint16_t port;
    struct metrics_server *s = start_loopback(&st, &port);
    struct response r = http_raw(port, "GET /metrics HTTP/1.0\r\n\r\n");
    metrics_server_stop(s);

    struct scrape_state fresh = {0};
    size_t len;
    char *direct = metrics_render(collect_known, &fresh, &len);
    cr_assert_not_null(direct);
    cr_assert_eq(len, r.body_len);
    cr_assert_str_eq(direct, r.body);
    free(direct);
    response_free(&r);
}

Test(metrics_server, stop_null_is_a_noop_and_bound_port_may_be_null)
{
    metrics_server_stop(NULL);
    struct scrape_state st = {0};
    struct metrics_server *s =
        metrics_server_start("127.0.0.1", 0, collect_known, &st, NULL, NULL, 0);
    cr_assert_not_null(s);
    metrics_server_stop(s);
}

Test(metrics_server, bad_arguments_fail_with_a_message)
{
    struct scrape_state st = {0};
    const char *bad[] = {"localhost",   "",     "999.1.1.1", "127.0.0.1:80",
                         "[127.0.0.1]", "::1]", "[::1",      "fe80::1%lo0%"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        uint16_t port = 7;
        cr_assert_null(metrics_server_start(bad[i], 0, collect_known, &st, &port, err, sizeof(err)),
                       "%s", bad[i]);
        cr_assert_neq(err[0], '\0', "no message for '%s'", bad[i]);
        cr_assert_eq(port, 7, "bound_port untouched on failure");
    }
    char err[256] = "";
    cr_assert_null(metrics_server_start(NULL, 0, collect_known, &st, NULL, err, sizeof(err)));
    cr_assert_neq(err[0], '\0');
    err[0] = '\0';
    cr_assert_null(metrics_server_start("127.0.0.1", 0, NULL, &st, NULL, err, sizeof(err)));
    cr_assert_neq(err[0], '\0');
    /* A tiny buffer is truncated, not overrun. */
    char small[8];
    memset(small, 'x', sizeof(small));
    cr_assert_null(metrics_server_start("nope", 0, collect_known, &st, NULL, small, 4));
    cr_assert_eq(strlen(small), 3);
    cr_assert_eq(small[4], 'x');
}

Test(metrics_server, port_in_use_fails_with_a_message)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    cr_assert_eq(listen(fd, 1), 0);
    socklen_t sl = sizeof(sin);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    uint16_t taken = ntohs(sin.sin_port);

    struct scrape_state st = {0};
    char err[256] = "";
    struct metrics_server *s =
        metrics_server_start("127.0.0.1", taken, collect_known, &st, NULL, err, sizeof(err));
    cr_assert_null(s, "port %u is taken", taken);
    /* The bind error reaches the caller, not just a log line. */
    cr_assert_not_null(strstr(err, strerror(EADDRINUSE)), "err: %s", err);
    close(fd);
}

Test(metrics_server, fixed_port_is_reported_back)
{
    /* Learn a free port, release it, then ask for it by number. */
    struct scrape_state st = {0};
    uint16_t port;
    struct metrics_server *s = start_loopback(&st, &port);
    metrics_server_stop(s);
    uint16_t again = 0;
    char err[256] = "";
    s = metrics_server_start("127.0.0.1", port, collect_known, &st, &again, err, sizeof(err));
    cr_assert_not_null(s, "restart on %u: %s", port, err);
    cr_assert_eq(again, port);
    struct response r = http_raw(port, "GET / HTTP/1.0\r\n\r\n");
    cr_assert_eq(r.status, 200);
    response_free(&r);
    metrics_server_stop(s);
}

static bool ipv6_loopback_available(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) == 0;
    close(fd);
    return ok;
}

Test(metrics_server, ipv6_literal_with_and_without_brackets)
{
    if (!ipv6_loopback_available())
        cr_skip_test("no IPv6 loopback here");
    const char *binds[] = {"::1", "[::1]"};
    for (size_t i = 0; i < 2; i++) {
        struct scrape_state st = {0};
        uint16_t port = 0;
        char err[256] = "";
        struct metrics_server *s =
            metrics_server_start(binds[i], 0, collect_known, &st, &port, err, sizeof(err));
        cr_assert_not_null(s, "%s: %s", binds[i], err);
        cr_assert_neq(port, 0);
        struct response r = http_raw_family(AF_INET6, port, "GET /metrics HTTP/1.0\r\n\r\n");
        cr_assert_eq(r.status, 200);
        cr_assert_str_eq(r.body, expected_scrape_1);
        response_free(&r);
        metrics_server_stop(s);
    }
}
