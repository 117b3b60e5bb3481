/*
 * A property test of the admin API's request handling (issue 14): the
 * real broker with the admin API on, and ADMIN_FUZZ_REQUESTS generated
 * requests from a fixed seed over loopback, one connection each.
 *
 * Why not a libFuzzer target in tests/fuzz/: every routing and query
 * function of src/admin takes libmicrohttpd's connection (the query
 * values, the reply), so nothing can be called without a server short of
 * a refactor of the room. Here the whole path is exercised instead:
 * libmicrohttpd's parsing, the router, the query checks, the broker's ops.
 *
 * Two kinds of request:
 *  - well formed (a request line and headers libmicrohttpd takes): random
 *    methods, paths made of the API's own segments and random bytes
 *    (percent-encoded, badly encoded, raw high bytes, %-encoded and raw
 *    control bytes, %00 and raw NULs among them, too long),
 *    query strings of the API's keys with random values, tokens of every
 *    role or none, sometimes a body (bad JSON, random bytes). Each must be
 *    answered by the admin code: a status the API documents, Content-Type
 *    application/json, a body that jansson parses, {"error": {"code",
 *    "message"}} for every 4xx and 5xx; and a target holding a control
 *    byte (raw or %-encoded: MHD decodes %00 into a shorter path) gets
 *    the 400 that says so, and only such a target gets it.
 *  - broken on the wire (random bytes, a bad request line, headers past
 *    libmicrohttpd's buffer, a request line past it, bytes cut short):
 *    libmicrohttpd may refuse them itself (the statuses docs/admin-api.md
 *    lists for it) or just close, and it closes promptly once the client
 *    half-closed (it once waited for the 10 s timeout).
 * After them the broker still answers a valid request and an MQTT client,
 * and stops cleanly (broker_stop fails the test on a crash or, under ASan,
 * a leak).
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

#include "admin_http.h"
#include "harness.h"

enum { ADMIN_FUZZ_REQUESTS = 2000, REQ_CAP = 96 * 1024, ANSWER_CAP = 256 * 1024 };

static struct broker b;
static char tokens[64];
static uint64_t rng_state;
static bool gen_ctl; /* this request's random bytes may hold control bytes */

TestSuite(admin_fuzz, .fini = e2e_fini, .timeout = 60);

/* xorshift64*: the same sequence on every run. */
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static uint32_t below(uint32_t n)
{
    return (uint32_t)(rnd() % n);
}

struct req {
    char *p;
    size_t len;
    char *first; /* the request as text, for failure messages */
};

static void put(struct req *r, const void *s, size_t n)
{
    if (r->len + n > REQ_CAP)
        n = REQ_CAP - r->len;
    memcpy(r->p + r->len, s, n);
    r->len += n;
}

static void puts_(struct req *r, const char *s)
{
    put(r, s, strlen(s));
}

static void putc_(struct req *r, char c)
{
    if (r->len < REQ_CAP)
        r->p[r->len++] = c;
}

/* n random bytes as a path or query value: mostly percent-encoded, some
 * badly encoded ("%", "%G1", "%0"), some raw high bytes, some NULs and
 * other control bytes, encoded or raw (never CR or LF, which would end
 * the request line). */
static void put_bytes(struct req *r, size_t n, bool query)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)rnd();
        uint32_t how = below(20);
        if ((c < 0x20 || c == 0x7f) && !gen_ctl)
            c ^= 0x40; /* printable: a control byte refuses the whole request */
        if (how == 0)
            puts_(r, below(2) ? "%" : below(2) ? "%G1" : "%0");
        else if (how == 1 && n < 64 && gen_ctl) /* a NUL ends the path MHD hands over */
            puts_(r, below(4) ? "%00" : "%7f");
        else if (how == 2 && n < 64 && gen_ctl && (c < 0x20 || c == 0x7f) && c != '\r' && c != '\n')
            putc_(r, (char)c); /* raw: a NUL too */
        else if (how <= 3 && c >= 0x80)
            putc_(r, (char)c);
        else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')
            putc_(r, (char)c);
        else if (query && c == ' ')
            putc_(r, '+');
        else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            put(r, e, 3);
        }
    }
}

/* A length: mostly short, sometimes around the API's bounds. */
static size_t some_len(void)
{
    static const size_t edges[] = {0, 1, 63, 64, 65, 200, 511, 512, 513, 700};
    return below(4) ? below(24) : edges[below(sizeof(edges) / sizeof(edges[0]))];
}

/* A path of the API's segments and random ones. */
static void put_path(struct req *r)
{
    static const char *const heads[] = {
        "/api/v1/tenants",  "/api/v1/tenants/global", "/api/v1/tenants/acme", "/api/v1", "/",
        "/api/v1/tenantsx", "/api/v1/tenants/",       "//api/v1/tenants"};
    static const char *const segs[] = {"/clients", "/sessions", "/retained", "/kick",  "/",
                                       "/fuzz-c1", "/%2F",      "/..",       "/global"};
    if (below(4)) {
        puts_(r, heads[below(sizeof(heads) / sizeof(heads[0]))]);
    } else { /* a random tenant */
        puts_(r, "/api/v1/tenants/");
        put_bytes(r, some_len(), false);
    }
    for (uint32_t n = below(4); n; n--) {
        if (below(4)) {
            puts_(r, segs[below(sizeof(segs) / sizeof(segs[0]))]);
        } else {
            putc_(r, '/');
            put_bytes(r, some_len(), false);
        }
    }
}

/* ?k=v&... of the API's keys (and others), values random or plausible. */
static void put_query(struct req *r)
{
    static const char *const keys[] = {"prefix", "after",   "limit", "offline", "filter",
                                       "topic",  "session", "x",     "",        "limit%00"};
    static const char *const vals[] = {
        "1", "0",   "1000", "1001", "-1", "99999999999999999999", "delete", "keep",
        "#", "+/+", "a/#",  "%",    ""};
    if (below(2))
        return;
    putc_(r, '?');
    for (uint32_t n = 1 + below(4); n; n--) {
        puts_(r, keys[below(sizeof(keys) / sizeof(keys[0]))]);
        if (below(8))
            putc_(r, '=');
        if (below(2))
            puts_(r, vals[below(sizeof(vals) / sizeof(vals[0]))]);
        else
            put_bytes(r, some_len(), true);
        if (n > 1)
            putc_(r, below(8) ? '&' : ';');
    }
}

/* Authorization (or none), maybe a body (bad JSON, bytes), the end. */
static void put_headers_body(struct req *r)
{
    static const char *const auth[] = {"admin-token", "acme-reader", "any-reader", "nope", "",
                                       "admin-token "};
    uint32_t a = below(16); /* mostly a valid token: past the 401 */
    if (a < 14) {
        puts_(r, "Authorization: Bearer ");
        puts_(r, auth[a < 13 ? a % 3 : 3 + below(3)]);
        puts_(r, "\r\n");
    } else if (a == 14) {
        puts_(r, "Authorization: Basic YWRtaW46YWRtaW4=\r\n");
    }
    static const char *const bodies[] = {"{}",   "{\"a\":",     "[1,2,",
                                         "null", "\"\\ud800\"", "{\"session\":\"delete\"}"};
    if (below(4)) {
        puts_(r, "\r\n");
        return;
    }
    char body[1024];
    size_t n;
    if (below(2)) {
        n = (size_t)snprintf(body, sizeof(body), "%s", bodies[below(6)]);
    } else {
        n = below(sizeof(body));
        for (size_t i = 0; i < n; i++)
            body[i] = (char)rnd();
    }
    char h[96];
    snprintf(h, sizeof(h), "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", n);
    puts_(r, h);
    put(r, body, n);
}

/* A request libmicrohttpd accepts as HTTP: the admin code must answer it. */
static void gen_well_formed(struct req *r)
{
    static const char *const methods[] = {"GET", "GET",   "GET",     "POST", "DELETE",
                                          "PUT", "PATCH", "OPTIONS", "FUZZ", "get"};
    puts_(r, methods[below(sizeof(methods) / sizeof(methods[0]))]);
    putc_(r, ' ');
    gen_ctl = below(6) == 0;
    put_path(r);
    put_query(r);
    puts_(r, below(2) ? " HTTP/1.0\r\n" : " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    put_headers_body(r);
}

/* A request broken on the wire. */
static void gen_broken(struct req *r)
{
    switch (below(6)) {
    case 0: /* random bytes, ended or cut short (then the half-close ends them) */
        for (size_t n = 1 + below(2048); n; n--)
            putc_(r, (char)rnd());
        if (below(2))
            puts_(r, "\r\n\r\n");
        break;
    case 1: /* a bad request line */
        puts_(r, below(2) ? "GET /api/v1/tenants HTTP/9.9\r\n\r\n" : "GET\r\n\r\n");
        break;
    case 2: /* a header past libmicrohttpd's buffer */
        puts_(r, "GET /api/v1/tenants HTTP/1.0\r\nX-Big: ");
        for (size_t n = 20000 + below(40000); n; n--)
            putc_(r, 'a');
        puts_(r, "\r\n\r\n");
        break;
    case 3: /* a query past it */
        puts_(r, "GET /api/v1/tenants/global/clients?prefix=");
        put_bytes(r, 70000, true);
        puts_(r, " HTTP/1.0\r\n\r\n");
        break;
    case 4: /* a bare LF, a header without a colon, a path without '/' */
        puts_(r,
              below(2) ? "GET /api/v1/tenants HTTP/1.0\nNoColon\n\n" : "GET api HTTP/1.0\r\n\r\n");
        break;
    default: /* a well-formed request cut short */
        gen_well_formed(r);
        r->len = below((uint32_t)r->len);
        break;
    }
}

struct answer {
    long long close_ms; /* from the half-close to the server's close */
    int status;         /* 0: closed without an answer */
    bool json;          /* Content-Type: application/json */
    const char *body;
    size_t body_len;
};

static int connect_admin(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0,
              "the admin API no longer accepts connections");
    return fd;
}

/* Send the request (then half-close: a request cut short ends), read to
 * the server's close; the answer parsed out of buf. */
static void exchange(int port, const struct req *r, char *buf, struct answer *ans)
{
    int fd = connect_admin(port);
    (void)!send(fd, r->p, r->len, MSG_NOSIGNAL); /* the server may close first */
    shutdown(fd, SHUT_WR);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        cr_assert(poll(&p, 1, E2E_WAIT_MS) == 1, "admin API did not answer: %.300s", r->first);
        ssize_t n = read(fd, buf + len, ANSWER_CAP - 1 - len);
        if (n <= 0)
            break; /* closed, or reset with the request unread */
        len += (size_t)n;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    close(fd);
    buf[len] = '\0';
    memset(ans, 0, sizeof(*ans));
    ans->close_ms = (t1.tv_sec - t0.tv_sec) * 1000LL + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    if (sscanf(buf, "HTTP/1.%*1[01] %3d", &ans->status) != 1)
        ans->status = 0;
    char *end = strstr(buf, "\r\n\r\n");
    if (end)
        *end = '\0';
    ans->json = strcasestr(buf, "\r\nContent-Type: application/json") != NULL;
    ans->body = end ? end + 4 : buf + len;
    ans->body_len = (size_t)(buf + len - ans->body);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

/* Whether a well-formed request's target (between the method's space and
 * the next: the generator writes no space inside it) holds a control
 * byte, raw or %-encoded. */
static bool target_ctl(const struct req *r)
{
    const char *p = memchr(r->p, ' ', r->len), *end = r->p + r->len;
    for (p = p ? p + 1 : end; p < end && *p != ' '; p++) {
        unsigned char c = (unsigned char)*p;
        int hi, lo;
        if (c < 0x20 || c == 0x7f)
            return true;
        if (c == '%' && end - p > 2 && (hi = hexval(p[1])) >= 0 && (lo = hexval(p[2])) >= 0 &&
            ((hi << 4 | lo) < 0x20 || (hi << 4 | lo) == 0x7f))
            return true;
    }
    return false;
}

/* The API's answer to a target with a control byte. */
static bool ctl_refusal(const struct answer *a)
{
    return a->status == 400 && memmem(a->body, a->body_len, "control character", 17);
}

/* The statuses the admin code answers with. */
static bool api_status(int s)
{
    static const int ok[] = {200, 201, 202, 204, 400, 401, 403, 404, 405, 409, 413, 414, 500, 503};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (ok[i] == s)
            return true;
    return false;
}

/* A well-formed request's answer: the admin code's, JSON, an error object
 * for a refusal. */
static void check_api_answer(const struct req *r, const struct answer *a)
{
    cr_assert(api_status(a->status), "status %d for %.300s", a->status, r->first);
    cr_assert(a->json, "%d without a JSON content type for %.300s", a->status, r->first);
    json_error_t e;
    json_t *j = json_loadb(a->body, a->body_len, 0, &e);
    cr_assert_not_null(j, "%d: body not JSON (%s) for %.300s", a->status, e.text, r->first);
    if (a->status >= 400) {
        json_t *err = json_object_get(j, "error");
        cr_assert(json_is_string(json_object_get(err, "code")) &&
                      json_is_string(json_object_get(err, "message")),
                  "%d: not an error object for %.300s", a->status, r->first);
    }
    json_decref(j);
}

/* A broken request's answer: none, libmicrohttpd's refusal, or (when it
 * passed the request on) the API's answer, checked as such. */
static void check_broken_answer(const struct req *r, const struct answer *a)
{
    if (a->json) {
        check_api_answer(r, a);
        return;
    }
    /* libmicrohttpd 0.9.75's own refusals (docs/admin-api.md, "Errors"). */
    static const int ok[] = {0, 400, 413, 414, 431, 505};
    bool known = false;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        known |= ok[i] == a->status;
    cr_assert(known, "status %d for a broken request %.300s", a->status, r->first);
}

/* The request as printable text for the failure messages. */
static void describe(struct req *r)
{
    size_t n = r->len < 300 ? r->len : 300;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)r->p[i];
        r->first[i] = c >= 0x20 && c < 0x7f ? (char)c : c == '\r' || c == '\n' ? ' ' : '.';
    }
    r->first[n] = '\0';
}

/* The broker with admin_http.h's tokens; the admin API's port. */
static int start_broker(void)
{
    char set_file[128];
    admin_tokens_make(tokens, sizeof(tokens), set_file, sizeof(set_file));
    broker_start(&b, "admin.enabled=true", "admin.port=0", set_file, NULL);
    return broker_admin_port(&b, false);
}

/* ADMIN_FUZZ_REQUESTS requests (one in eight broken on the wire), each
 * answer checked; then the broker still serves the API and MQTT. */
Test(admin_fuzz, generated_requests_get_json_answers_and_the_broker_stays_up)
{
    if (getenv("RINGMQ_E2E_BROKER") && !strcmp(getenv("RINGMQ_E2E_BROKER"), "mosquitto"))
        cr_skip_test("the admin API is ringmq's");
    int port = start_broker();
    /* Something for the ops to find: a client with a session, a retained
     * message. */
    struct client *c = client_open(&b, "fuzz-c1", false);
    client_subscribe(c, "fuzz/#", 1);
    client_publish(c, "fuzz/r", "kept", 4, 1, true);
    client_expect_message(c, "fuzz/r", "kept", NULL, NULL);
    struct req r = {malloc(REQ_CAP), 0, malloc(301)};
    char *buf = malloc(ANSWER_CAP);
    cr_assert(r.p && r.first && buf);
    rng_state = 0x5eed0f14adc0ffeeull;
    int seen[600] = {0}, ctls = 0;
    for (int i = 0; i < ADMIN_FUZZ_REQUESTS; i++) {
        r.len = 0;
        bool broken = below(8) == 0;
        if (broken)
            gen_broken(&r);
        else
            gen_well_formed(&r);
        describe(&r);
        struct answer a;
        exchange(port, &r, buf, &a);
        if (broken) {
            check_broken_answer(&r, &a);
            /* Under the sanitizers on a loaded machine: twice the second
             * the wire test allows. */
            cr_assert_lt(a.close_ms, 2000, "closed %lld ms after the half-close: %.300s",
                         a.close_ms, r.first);
        } else {
            check_api_answer(&r, &a);
            bool ctl = target_ctl(&r);
            cr_assert_eq(ctl_refusal(&a), ctl, "%d %.*s for %s target %.300s", a.status,
                         (int)a.body_len, a.body, ctl ? "a control byte in the" : "a clean",
                         r.first);
            ctls += ctl;
        }
        seen[a.status]++;
    }
    cr_log_info("admin_fuzz: %d requests: none %d, 200 %d, 400 %d (%d control bytes), 401 %d, "
                "403 %d, 404 %d, 405 %d, 414 %d, 431 %d, 503 %d",
                ADMIN_FUZZ_REQUESTS, seen[0], seen[200], seen[400], ctls, seen[401], seen[403],
                seen[404], seen[405], seen[414], seen[431], seen[503]);
    cr_assert_gt(ctls, 50, "the generator made too few targets with control bytes");
    /* Still up: a valid request, an MQTT round trip (the fuzzed requests
     * may have kicked fuzz-c1 or deleted its session: a new client). */
    r.len = 0;
    puts_(&r, "GET /api/v1/tenants/global HTTP/1.0\r\nAuthorization: Bearer any-reader\r\n\r\n");
    describe(&r);
    struct answer a;
    exchange(port, &r, buf, &a);
    cr_assert_eq(a.status, 200, "%s", a.body);
    cr_assert(strstr(a.body, "\"name\":\"global\""), "%s", a.body);
    client_destroy(c);
    struct client *c2 = client_open(&b, "fuzz-c2", true);
    client_subscribe(c2, "fuzz/x", 1);
    client_publish(c2, "fuzz/x", "hi", 2, 1, false);
    client_expect_message(c2, "fuzz/x", "hi", NULL, NULL);
    client_disconnect(c2);
    free(buf);
    free(r.p);
    free(r.first);
    broker_stop(&b);
    unlink(tokens);
}
