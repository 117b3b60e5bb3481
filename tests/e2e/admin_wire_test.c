/*
 * The admin API's wire (issue 14), raw bytes over a loopback socket
 * against the real broker:
 *  - a request cut short and half-closed (shutdown(SHUT_WR)) is closed
 *    within a second (it was held until the 10 s connection timeout:
 *    libmicrohttpd's edge-triggered epoll missed the end of the stream);
 *  - a control byte in the request target, %-encoded (%00 included) or
 *    raw (a NUL included), in the path or the query, is a 400 JSON error,
 *    never the shorter path it would decode to;
 *  - what libmicrohttpd refuses itself, before the API sees a request, is
 *    exactly what docs/admin-api.md ("Errors") lists, with the status it
 *    lists; everything else is the API's JSON.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static struct broker b;
static char tokens[64];

TestSuite(admin_wire, .fini = e2e_fini, .timeout = 60);

/* The broker with an admin token; its admin port. */
static int start(void)
{
    if (getenv("RINGMQ_E2E_BROKER") && !strcmp(getenv("RINGMQ_E2E_BROKER"), "mosquitto"))
        cr_skip_test("the admin API is ringmq's");
    snprintf(tokens, sizeof(tokens), "/tmp/ringmq-adminwire-XXXXXX");
    int fd = mkstemp(tokens);
    cr_assert(fd >= 0);
    close(fd);
    char cmd[512], set_file[128];
    snprintf(cmd, sizeof(cmd), "printf 'admin-token\\n' | '%s' token admin >>'%s'",
             getenv("RINGMQ_PASSWD_TOOL"), tokens);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(set_file, sizeof(set_file), "admin.token_file=%s", tokens);
    broker_start(&b, "admin.enabled=true", "admin.port=0", set_file, NULL);
    return broker_admin_port(&b, false);
}

static void stop(void)
{
    broker_stop(&b);
    unlink(tokens);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct answer {
    int status; /* 0: closed without an answer */
    bool json;  /* Content-Type: application/json */
    char head[2048];
    char body[8192];
    long long close_ms; /* from the half-close to the server's close */
};

/* Send len bytes, half-close, read until the server closes (each wait at
 * most E2E_WAIT_MS), the answer parsed into *a. */
static void exchange(int port, const char *req, size_t len, struct answer *a)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    (void)!send(fd, req, len, MSG_NOSIGNAL); /* the server may close first */
    shutdown(fd, SHUT_WR);
    long long t0 = now_ms();
    static char buf[65536];
    size_t n = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        cr_assert(poll(&p, 1, E2E_WAIT_MS) == 1, "the server neither answered nor closed");
        ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    memset(a, 0, sizeof(*a));
    a->close_ms = now_ms() - t0;
    close(fd);
    buf[n] = '\0';
    if (sscanf(buf, "HTTP/1.%*1[01] %3d", &a->status) != 1)
        a->status = 0;
    char *end = strstr(buf, "\r\n\r\n");
    snprintf(a->head, sizeof(a->head), "%.*s", (int)(end ? end - buf : (long)n), buf);
    snprintf(a->body, sizeof(a->body), "%s", end ? end + 4 : "");
    a->json = strcasestr(a->head, "\r\nContent-Type: application/json") != NULL;
}

static void exchange_str(int port, const char *req, struct answer *a)
{
    exchange(port, req, strlen(req), a);
}

/* A request cut anywhere before its end, then half-closed: closed at
 * once, without an answer (there is no request to answer). */
Test(admin_wire, a_half_closed_request_is_closed_within_a_second)
{
    int port = start();
    static const char *const cut[] = {
        "garbage",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* a ClientHello's start */
        "GET /api/v1/tenants HTTP/1.0\r\n",
        "GET /api/v1/tenants HTTP/1.0\r\nAuthorization: Bearer adm",
        "POST /api/v1/tenants/global/publish HTTP/1.0\r\nAuthorization: Bearer admin-token\r\n"
        "Content-Length: 100\r\n\r\n{\"topic\":",
    };
    for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
        struct answer a;
        exchange_str(port, cut[i], &a);
        cr_assert_lt(a.close_ms, 1000, "request %zu held %lld ms after the half-close", i,
                     a.close_ms);
        cr_assert_eq(a.status, 0, "request %zu answered: %s", i, a.head);
    }
    /* A whole request half-closed is still answered. */
    struct answer a;
    exchange_str(port, "GET /api/v1/tenants HTTP/1.0\r\nAuthorization: Bearer admin-token\r\n\r\n",
                 &a);
    cr_assert_eq(a.status, 200, "%s", a.head);
    stop();
}

/* A 400 from the API saying why: a control character in the target. */
static void expect_ctl_400(int port, const char *req, size_t len)
{
    struct answer a;
    exchange(port, req, len, &a);
    cr_assert_eq(a.status, 400, "%d for %.*s: %s", a.status, (int)len, req, a.body);
    cr_assert(a.json, "%s", a.head);
    json_t *j = json_loads(a.body, 0, NULL);
    json_t *e = json_object_get(j, "error");
    cr_assert_str_eq(json_string_value(json_object_get(e, "code")), "bad_request", "%s", a.body);
    cr_assert(strstr(json_string_value(json_object_get(e, "message")), "control character"), "%s",
              a.body);
    json_decref(j);
}

#define AUTH " HTTP/1.0\r\nAuthorization: Bearer admin-token\r\n\r\n"

/* Each would decode to a path or a query the API serves (a %00 ends the
 * string MHD hands over): refused instead, before the token is looked at. */
Test(admin_wire, a_control_byte_in_the_target_is_a_400_never_a_shorter_path)
{
    int port = start();
    struct answer a;
    exchange_str(port, "GET /api/v1/tenants/global/clients?limit=5" AUTH, &a);
    cr_assert_eq(a.status, 200, "the unaltered requests are served: %s", a.body);
    static const char *const enc[] = {
        "GET /api/v1/tenants%00/x" AUTH,
        "GET /api/v1/tenants%00" AUTH,
        "GET /api/v1/tenants/global%00evil/clients" AUTH,
        "GET /api/v1/tenants/global/clients?limit=5%00" AUTH,
        "GET /api/v1/tenants/global/clients?limit%00x=5" AUTH,
        "GET /api/v1/tenants/global/clients?prefix=a%0ab" AUTH,
        "GET /api/v1/tenants/global/clients/%01id" AUTH,
        "GET /api/v1/tenants/global/clients/id%1f" AUTH,
        "GET /api/v1/tenants/global/clients/id%7F" AUTH,
        "DELETE /api/v1/tenants/global/sessions/a%0D%0Ab" AUTH,
        "POST /api/v1/tenants/global/clients/x%00/kick" AUTH,
        "GET /api/v1/ten\x01ants" AUTH,
        "GET /api/v1/tenants?x=\x7f" AUTH,
        "GET /api/v1/tenants%00 HTTP/1.0\r\n\r\n", /* no token: still the 400 */
    };
    for (size_t i = 0; i < sizeof(enc) / sizeof(enc[0]); i++)
        expect_ctl_400(port, enc[i], strlen(enc[i]));
    /* A raw NUL byte: /api/v1/tenants would be served. */
    static const char raw_nul[] = "GET /api/v1/tenants\0/x" AUTH;
    expect_ctl_400(port, raw_nul, sizeof(raw_nul) - 1);
    static const char raw_nul_q[] = "GET /api/v1/tenants/global/clients?limit=5\0x" AUTH;
    expect_ctl_400(port, raw_nul_q, sizeof(raw_nul_q) - 1);
    /* Encoded bytes that are not control characters still decode. */
    exchange_str(port, "GET /api/v1/tenants/%67lobal" AUTH, &a);
    cr_assert_eq(a.status, 200, "%s", a.body);
    exchange_str(port, "GET /api/v1/tenants/global/clients/a%2Fb%20c" AUTH, &a);
    cr_assert_eq(a.status, 404, "%s", a.body);
    cr_assert(strstr(a.body, "no such client connected"), "%s", a.body);
    stop();
}

/* What libmicrohttpd 0.9.75 answers itself, before the API sees a
 * request: its own HTML body, no Content-Type (docs/admin-api.md,
 * "Errors", lists exactly these). */
struct mhd_refusal {
    const char *what;
    const char *req;
    int status;
};

static void expect_mhd_refusal(int port, const struct mhd_refusal *r, const char *req, size_t len)
{
    struct answer a;
    exchange(port, req, len, &a);
    cr_assert_eq(a.status, r->status, "%s: %d %s", r->what, a.status, a.head);
    cr_assert_not(a.json, "%s: now JSON? then docs/admin-api.md is wrong: %s", r->what, a.body);
    cr_assert_lt(a.close_ms, 1000, "%s", r->what);
}

Test(admin_wire, libmicrohttpds_own_refusals_are_the_documented_ones)
{
    int port = start();
    static const struct mhd_refusal plain[] = {
        {"a header line without a colon", "GET /api/v1/tenants HTTP/1.0\r\nNoColon\r\n\r\n", 400},
        {"an HTTP version other than 1.x", "GET /api/v1/tenants HTTP/2.0\r\n\r\n", 505},
        {"HTTP/0.x", "GET /api/v1/tenants HTTP/0.9\r\n\r\n", 505},
        {"a version that is not HTTP/d.d", "GET /api/v1/tenants HTTP/one\r\n\r\n", 400},
        {"a Content-Length that is not a number",
         "POST /api/v1/tenants/global/publish HTTP/1.0\r\nContent-Length: x\r\n\r\n", 400},
        {"a Content-Length past 64 bits",
         "POST /api/v1/tenants/global/publish HTTP/1.0\r\n"
         "Content-Length: 99999999999999999999999\r\n\r\n",
         413},
        {"a bad chunk size",
         "POST /api/v1/tenants/global/publish HTTP/1.1\r\nHost: x\r\n"
         "Authorization: Bearer admin-token\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
         400},
    };
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        expect_mhd_refusal(port, &plain[i], plain[i].req, strlen(plain[i].req));
    /* Past the connection's 32 KiB of memory: the request line (414) or
     * the headers (431). */
    static char big[48 * 1024];
    int n = snprintf(big, sizeof(big), "GET /api/v1/tenants?x=");
    memset(big + n, 'a', 40000);
    n += 40000;
    n += snprintf(big + n, sizeof(big) - (size_t)n, " HTTP/1.0\r\n\r\n");
    static const struct mhd_refusal uri = {"a request line past the buffer", NULL, 414};
    expect_mhd_refusal(port, &uri, big, (size_t)n);
    n = snprintf(big, sizeof(big), "GET /api/v1/tenants HTTP/1.0\r\nX-Big: ");
    memset(big + n, 'a', 40000);
    n += 40000;
    n += snprintf(big + n, sizeof(big) - (size_t)n, "\r\n\r\n");
    static const struct mhd_refusal hdr = {"headers past the buffer", NULL, 431};
    expect_mhd_refusal(port, &hdr, big, (size_t)n);
    /* And what looks broken but reaches the API: its JSON. */
    static const char *const api[] = {
        "FUZZ /api/v1/tenants" AUTH,                                           /* any method */
        "GET /api/v1/tenants HTTP/1.1\r\nAuthorization: Bearer x\r\n\r\n",     /* no Host */
        "GET api" AUTH,                                                        /* no leading / */
        "GET /api/v1/tenants HTTP/1.0\nAuthorization: Bearer admin-token\n\n", /* bare LF */
    };
    for (size_t i = 0; i < sizeof(api) / sizeof(api[0]); i++) {
        struct answer a;
        exchange_str(port, api[i], &a);
        cr_assert(a.status >= 200 && a.json, "%zu: %d %s", i, a.status, a.head);
        json_t *j = json_loads(a.body, 0, NULL);
        cr_assert_not_null(j, "%zu: %s", i, a.body);
        json_decref(j);
    }
    stop();
}
