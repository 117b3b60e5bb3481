/*
 * Tests of plugins/auth_http through the plugin ABI only: the .so is loaded
 * with dlopen (fake_load), but with this file's own host, whose complete()
 * may be called from the plugin's thread: it records the result under a
 * mutex and signals a condition variable the test waits on (bounded).
 *
 * The HTTP endpoint is a tiny HTTP/1.1 server on 127.0.0.1 (port 0) run by
 * a thread of the test: one request per connection, answered from a table
 * keyed by path and a substring of the body (answers up to several MiB, for
 * the size limit). A "hold" answer keeps the
 * connection open without answering until the server stops, so a timeout
 * or a fini() with a call in flight is certain, not a race.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "fake_host.h"

/* ---- the HTTP server ---- */

struct route {
    const char *path;   /* "/x/auth" */
    const char *needle; /* substring of the body; NULL: any */
    int status;         /* 0: hold the connection, never answer */
    const char *body;
};

#define MAX_CONNS 64

static struct {
    int lfd;
    uint16_t port;
    pthread_t acceptor;
    pthread_t conns[MAX_CONNS];
    int fds[MAX_CONNS];
    int n_conns;
    const struct route *routes;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int requests; /* requests read whole */
    int held;     /* connections held without answer */
    bool stopping;
    char last_body[1024];
} srv = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static const char *find_header_end(const char *p, size_t n)
{
    for (size_t i = 0; i + 3 < n; i++)
        if (!memcmp(p + i, "\r\n\r\n", 4))
            return p + i + 4;
    return NULL;
}

/* false when the client went away: a plugin over its answer size limit
 * closes the connection mid-body (MSG_NOSIGNAL: EPIPE, not SIGPIPE). */
static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void *conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char req[8192];
    size_t n = 0;
    const char *body = NULL;
    size_t clen = 0;
    for (;;) {
        ssize_t r = read(fd, req + n, sizeof(req) - 1 - n);
        if (r <= 0)
            return NULL; /* fd closed by the server's stop */
        n += (size_t)r;
        req[n] = '\0';
        if (!body && (body = find_header_end(req, n))) {
            const char *cl = strcasestr(req, "\r\nContent-Length:");
            clen = cl ? strtoul(cl + 17, NULL, 10) : 0;
        }
        if (body && (size_t)(req + n - body) >= clen)
            break;
        if (n == sizeof(req) - 1)
            return NULL;
    }
    char path[256] = "";
    sscanf(req, "POST %255s", path);
    const struct route *rt = NULL;
    for (const struct route *r = srv.routes; r && r->path; r++)
        if (!strcmp(r->path, path) && (!r->needle || strstr(body, r->needle))) {
            rt = r;
            break;
        }
    pthread_mutex_lock(&srv.lock);
    srv.requests++;
    snprintf(srv.last_body, sizeof(srv.last_body), "%s", body);
    if (rt && rt->status == 0) {
        srv.held++;
        pthread_cond_broadcast(&srv.cond);
        while (!srv.stopping)
            pthread_cond_wait(&srv.cond, &srv.lock);
        pthread_mutex_unlock(&srv.lock);
        return NULL;
    }
    pthread_cond_broadcast(&srv.cond);
    pthread_mutex_unlock(&srv.lock);
    int status = rt ? rt->status : 404;
    const char *rbody = rt && rt->body ? rt->body : "";
    char head[256];
    int len = snprintf(head, sizeof(head),
                       "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                       "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                       status, strlen(rbody));
    if (send_all(fd, head, (size_t)len))
        send_all(fd, rbody, strlen(rbody));
    return NULL;
}

static void *accept_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(srv.lfd, NULL, NULL);
        if (fd < 0)
            return NULL; /* shutdown() by server_stop */
        pthread_mutex_lock(&srv.lock);
        if (srv.n_conns == MAX_CONNS || srv.stopping) {
            pthread_mutex_unlock(&srv.lock);
            close(fd);
            continue;
        }
        int i = srv.n_conns++;
        srv.fds[i] = fd;
        cr_assert_eq(pthread_create(&srv.conns[i], NULL, conn_main, (void *)(intptr_t)fd), 0);
        pthread_mutex_unlock(&srv.lock);
    }
}

static void server_start(const struct route *routes)
{
    srv.routes = routes;
    srv.lfd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(srv.lfd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(srv.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(srv.lfd, 64), 0);
    socklen_t alen = sizeof(a);
    cr_assert_eq(getsockname(srv.lfd, (struct sockaddr *)&a, &alen), 0);
    srv.port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&srv.acceptor, NULL, accept_main, NULL), 0);
}

static void server_stop(void)
{
    pthread_mutex_lock(&srv.lock);
    srv.stopping = true;
    pthread_cond_broadcast(&srv.cond);
    pthread_mutex_unlock(&srv.lock);
    shutdown(srv.lfd, SHUT_RDWR); /* accept() returns EINVAL */
    pthread_join(srv.acceptor, NULL);
    for (int i = 0; i < srv.n_conns; i++) {
        shutdown(srv.fds[i], SHUT_RDWR); /* a conn still reading returns */
        pthread_join(srv.conns[i], NULL);
        close(srv.fds[i]);
    }
    close(srv.lfd);
}

static int server_requests(void)
{
    pthread_mutex_lock(&srv.lock);
    int n = srv.requests;
    pthread_mutex_unlock(&srv.lock);
    return n;
}

static struct timespec deadline(int seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += seconds;
    return ts;
}

/* Waits (10 s at most) until the server holds `n` connections. */
static void server_wait_held(int n)
{
    struct timespec ts = deadline(10);
    pthread_mutex_lock(&srv.lock);
    int rc = 0;
    while (srv.held < n && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&srv.cond, &srv.lock, &ts);
    int held = srv.held;
    pthread_mutex_unlock(&srv.lock);
    cr_assert_geq(held, n, "server holds %d connections, expected %d", held, n);
}

/* ---- the host ---- */

struct done {
    int completions;
    pthread_t thread; /* who called complete() */
    struct ringmq_call *call;
    enum ringmq_auth_decision decision;
    char tenant[128], user_id[128];
    bool has_tenant, has_user_id;
    enum ringmq_verdict verdict;
    bool cacheable;
};

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static struct done last;
/* Per call number (small integers cast to pointers): how often completed,
 * and with what, for tests with several calls in flight. */
static int times_by_call[16];
static int decision_by_call[16], verdict_by_call[16];

/* The plugin's last warning, for tests that check a bad answer is logged
 * (it is logged before the call is completed). */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_warn[512];

static void host_log(enum ringmq_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[auth_http %d] ", (int)level);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (level == RINGMQ_LOG_WARN) {
        pthread_mutex_lock(&log_lock);
        va_start(ap, fmt);
        vsnprintf(last_warn, sizeof(last_warn), fmt, ap);
        va_end(ap);
        pthread_mutex_unlock(&log_lock);
    }
}

/* Asserts that the last warning contains `needle`, then forgets it. */
static void assert_warned(const char *needle, const char *what)
{
    pthread_mutex_lock(&log_lock);
    cr_assert_not_null(strstr(last_warn, needle), "%s: last warning '%s'", what, last_warn);
    last_warn[0] = '\0';
    pthread_mutex_unlock(&log_lock);
}

static uint64_t host_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void copy(char *dst, size_t cap, bool *has, const char *s)
{
    *has = s != NULL;
    snprintf(dst, cap, "%s", s ? s : "");
}

/* The test knows which kind of call it made: both members are recorded. */
static void host_complete(struct ringmq_call *call, const union ringmq_result *res)
{
    pthread_mutex_lock(&done_lock);
    last.completions++;
    last.thread = pthread_self();
    last.call = call;
    last.decision = res->auth.decision;
    copy(last.tenant, sizeof(last.tenant), &last.has_tenant, res->auth.tenant);
    copy(last.user_id, sizeof(last.user_id), &last.has_user_id, res->auth.user_id);
    last.verdict = res->check.verdict;
    last.cacheable = res->check.cacheable;
    uintptr_t i = (uintptr_t)call;
    if (i < 16) {
        times_by_call[i]++;
        decision_by_call[i] = (int)res->auth.decision;
        verdict_by_call[i] = (int)res->check.verdict;
    }
    pthread_cond_broadcast(&done_cond);
    pthread_mutex_unlock(&done_lock);
}

/* The host has given up on this call number from the start (its timeout
 * passed before the plugin's thread took it). */
#define ABANDONED_CALL 13

static bool host_call_abandoned(const struct ringmq_call *call)
{
    return (uintptr_t)call == ABANDONED_CALL;
}

static const struct ringmq_host host = {
    .abi_version = RINGMQ_PLUGIN_ABI_VERSION,
    .log = host_log,
    .now_ms = host_now_ms,
    .complete = host_complete,
    .call_abandoned = host_call_abandoned,
};

/* Waits (10 s at most) for the n-th completion, returns a copy. */
static struct done wait_done(int n)
{
    struct timespec ts = deadline(10);
    pthread_mutex_lock(&done_lock);
    int rc = 0;
    while (last.completions < n && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&done_cond, &done_lock, &ts);
    struct done d = last;
    pthread_mutex_unlock(&done_lock);
    cr_assert_eq(d.completions, n, "%d completions, expected %d", d.completions, n);
    return d;
}

static int completions(void)
{
    pthread_mutex_lock(&done_lock);
    int n = last.completions;
    pthread_mutex_unlock(&done_lock);
    return n;
}

/* The last request body the server read, parsed strictly (the test
 * asserts it is one JSON object; \u0000 allowed: a password may hold it). */
static json_t *sent_body(void)
{
    char body[sizeof(srv.last_body)];
    pthread_mutex_lock(&srv.lock);
    memcpy(body, srv.last_body, sizeof(body));
    pthread_mutex_unlock(&srv.lock);
    json_error_t e;
    json_t *j = json_loads(body, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
    cr_assert(json_is_object(j), "%s: %s", body, j ? "not an object" : e.text);
    return j;
}

/* ---- fixtures ---- */

#define ANSWER_LIMIT 65536 /* the plugin's MAX_RESPONSE_BYTES */

static char body_tenant255[64 + 255], body_tenant256[64 + 256];
static char body_at_limit[ANSWER_LIMIT + 1], body_over_limit[ANSWER_LIMIT + 2];
static char body_2mib[2 * 1024 * 1024 + 1];
static char body_deep[64 + 2 * 3000];

/* out = pre, then 'x' up to `total` bytes with `post` at the end. */
static void pad_answer(char *out, size_t total, const char *pre, const char *post)
{
    size_t a = strlen(pre), b = strlen(post);
    cr_assert_geq(total, a + b);
    memcpy(out, pre, a);
    memset(out + a, 'x', total - a - b);
    memcpy(out + total - b, post, b + 1);
}

static void make_answers(void)
{
    static const char pre_t[] = "{\"result\":\"allow\",\"tenant\":\"";
    pad_answer(body_tenant255, strlen(pre_t) + 255 + 2, pre_t, "\"}");
    pad_answer(body_tenant256, strlen(pre_t) + 256 + 2, pre_t, "\"}");
    static const char pre_p[] = "{\"result\":\"allow\",\"pad\":\"";
    pad_answer(body_at_limit, ANSWER_LIMIT, pre_p, "\"}");
    pad_answer(body_over_limit, ANSWER_LIMIT + 1, pre_p, "\"}");
    pad_answer(body_2mib, sizeof(body_2mib) - 1, pre_p, "\"}");
    /* 3000 levels in another member: beyond jansson's 2048. */
    size_t n = (size_t)sprintf(body_deep, "{\"result\":\"allow\",\"x\":");
    memset(body_deep + n, '[', 3000);
    memset(body_deep + n + 3000, ']', 3000);
    strcpy(body_deep + n + 6000, "}");
}

static const struct route routes[] = {
    {"/mq/auth", "\"username\":\"alice\"", 200,
     "{\"result\": \"allow\", \"tenant\":\"acme\", \"user_id\":\"u-\\u00e9\", \"ttl\": [1, "
     "{\"x\":\"}\"}]}"},
    {"/mq/auth", "\"username\":\"bob\"", 200, "{\"result\":\"deny\"}"},
    {"/mq/auth", "\"username\":\"mallory\"", 401, ""},
    {"/mq/auth", "\"username\":\"broken\"", 500, "oops"},
    {"/mq/auth", "\"username\":\"garbage\"", 200, "{\"result\":\"allow\""},
    {"/mq/auth", "\"username\":\"weird\"", 200, "{\"result\":\"maybe\"}"},
    {"/mq/auth", "\"username\":\"slow\"", 0, NULL},
    /* The binary password, NUL and quote escaped; the test decodes the
     * rest (0xff is U+00FF, which jansson writes as the character). */
    {"/mq/auth", "\"password\":\"s\\u0000c\\\"r", 200, "{\"result\":\"allow\",\"tenant\":\"bin\"}"},
    /* Characters outside the BMP as escaped surrogate pairs (what Python's
     * json.dumps writes by default); lone or reversed halves are not text. */
    {"/mq/auth", "\"username\":\"emoji\"", 200,
     "{\"result\":\"allow\",\"tenant\":\"acme\",\"user_id\":\"u-\\ud83d\\ude00\"}"},
    {"/mq/auth", "\"username\":\"lonehigh\"", 200,
     "{\"result\":\"allow\",\"user_id\":\"\\ud83d-\"}"},
    {"/mq/auth", "\"username\":\"lonelow\"", 200,
     "{\"result\":\"allow\",\"user_id\":\"\\ude00\\ud83d\"}"},
    /* A tenant that is not a string must not mean "no tenant" (global). */
    {"/mq/auth", "\"username\":\"objtenant\"", 200,
     "{\"result\":\"allow\",\"tenant\":{\"name\":\"acme\"}}"},
    {"/mq/auth", "\"username\":\"numtenant\"", 200, "{\"result\":\"allow\",\"tenant\":7}"},
    {"/mq/auth", "\"username\":\"nulltenant\"", 200,
     "{\"result\":\"allow\",\"tenant\":null,\"user_id\":\"u-n\"}"},
    /* Escapes: a quote, a backslash, "\/", \u00e9, a surrogate pair in
     * upper case, an escaped member name. */
    {"/mq/auth", "\"username\":\"escapes\"", 200,
     "{\"res\\u0075lt\":\"allow\",\"tenant\":\"a\\\"c\\\\m\\/e\","
     "\"user_id\":\"caf\\u00e9 \\uD83D\\uDE00\"}"},
    /* Other members' values are skipped whatever they hold, even a
     * "result" inside an object; ours must be strings (or null). */
    {"/mq/auth", "\"username\":\"nested\"", 200,
     "{\"extra\":{\"result\":\"deny\",\"a\":[1,{\"b\":null},\"]}\"]},\"result\":\"allow\","
     "\"l\":[[],{}]}"},
    {"/mq/auth", "\"username\":\"arrresult\"", 200, "{\"result\":[\"allow\"]}"},
    {"/mq/auth", "\"username\":\"objuser\"", 200,
     "{\"result\":\"allow\",\"user_id\":{\"id\":\"u\"}}"},
    {"/mq/auth", "\"username\":\"toparray\"", 200, "[{\"result\":\"allow\"}]"},
    /* One object, then only white space. */
    {"/mq/auth", "\"username\":\"trailing\"", 200, "{\"result\":\"allow\"} x"},
    {"/mq/auth", "\"username\":\"twoobjs\"", 200, "{\"result\":\"allow\"}{\"result\":\"deny\"}"},
    {"/mq/auth", "\"username\":\"trailws\"", 200, "{\"result\":\"allow\"} \r\n\t"},
    /* Duplicate member names: the last one wins (null included). */
    {"/mq/auth", "\"username\":\"dup\"", 200,
     "{\"result\":\"deny\",\"tenant\":\"a\",\"user_id\":\"u\",\"result\":\"allow\","
     "\"tenant\":\"b\",\"user_id\":null}"},
    /* Not JSON, but the hand-written scanner read each as "allow": invalid
     * UTF-8 in our string and in another's (an overlong '/'), a bare word,
     * mismatched brackets. And a \u0000 (in no member's C string). */
    {"/mq/auth", "\"username\":\"badutf8\"", 200,
     "{\"result\":\"allow\",\"tenant\":\"ac\xff\xfe\"}"},
    {"/mq/auth", "\"username\":\"overlong\"", 200, "{\"result\":\"allow\",\"note\":\"\xc0\xaf\"}"},
    {"/mq/auth", "\"username\":\"bareword\"", 200, "{\"result\":\"allow\",\"ttl\":tru}"},
    {"/mq/auth", "\"username\":\"mismatch\"", 200, "{\"result\":\"allow\",\"x\":[1}}"},
    {"/mq/auth", "\"username\":\"nulother\"", 200, "{\"result\":\"allow\",\"note\":\"a\\u0000\"}"},
    /* Numbers are never read: beyond 64 bits is fine, beyond a double not. */
    {"/mq/auth", "\"username\":\"bignum\"", 200,
     "{\"result\":\"allow\",\"id\":123456789012345678901234567890,\"f\":-1.5e300}"},
    {"/mq/auth", "\"username\":\"hugenum\"", 200, "{\"result\":\"allow\",\"f\":1e999}"},
    /* Generated in setup(): sizes and depths at and over the limits. */
    {"/mq/auth", "\"username\":\"tenant255\"", 200, body_tenant255},
    {"/mq/auth", "\"username\":\"tenant256\"", 200, body_tenant256},
    {"/mq/auth", "\"username\":\"atlimit\"", 200, body_at_limit},
    {"/mq/auth", "\"username\":\"overlimit\"", 200, body_over_limit},
    {"/mq/auth", "\"username\":\"twomib\"", 200, body_2mib},
    {"/mq/auth", "\"username\":\"deep\"", 200, body_deep},
    /* A permission answer has no tenant or user id: those are not read. */
    {"/mq/acl", "\"topic\":\"typed/", 200, "{\"result\":\"allow\",\"tenant\":5,\"user_id\":{}}"},
    {"/mq/acl", "\"topic\":\"public/", 200, "{\"result\":\"allow\"}"},
    {"/mq/acl", "\"topic\":\"secret/", 200, "{\"result\":\"deny\"}"},
    {"/mq/acl", "\"topic\":\"forbidden/", 403, ""},
    {"/mq/acl", "\"topic\":\"slow/", 0, NULL},
    {NULL, NULL, 0, NULL},
};

static const struct ringmq_plugin *plug;
static void *state;
static pthread_t test_thread;

static int start_with(const char *timeout_ms, const char *cache_s, const char *max_in_flight)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/mq/", srv.port);
    struct ringmq_kv kv[4] = {{"url", url}};
    size_t n = 1;
    if (timeout_ms)
        kv[n++] = (struct ringmq_kv){"timeout_ms", timeout_ms};
    if (cache_s)
        kv[n++] = (struct ringmq_kv){"cache_seconds", cache_s};
    if (max_in_flight)
        kv[n++] = (struct ringmq_kv){"max_in_flight", max_in_flight};
    char err[256] = "";
    int rc = plug->init(&host, kv, n, &state, err, sizeof(err));
    cr_assert_eq(rc, 0, "init: %s", err);
    return rc;
}

static void setup(void)
{
    test_thread = pthread_self();
    plug = fake_load(AUTH_HTTP_SO);
    cr_assert_eq(plug->kinds, RINGMQ_KIND_AUTH);
    cr_assert_str_eq(plug->name, "auth_http");
    make_answers();
    server_start(routes);
}

static void teardown(void)
{
    if (state)
        plug->fini(state);
    state = NULL;
    server_stop();
}

static struct ringmq_call *call_no(uintptr_t n)
{
    return (struct ringmq_call *)n; /* opaque to the plugin: any distinct pointer */
}

static void authenticate_from(uintptr_t call, const char *user, const char *pw, size_t pw_len,
                              const char *addr, uint16_t port)
{
    struct ringmq_connect_info info = {
        .protocol_version = 5,
        .client_id = {(const uint8_t *)"dev-1", 5},
        .has_username = user != NULL,
        .username = {(const uint8_t *)user, user ? strlen(user) : 0},
        .has_password = pw != NULL,
        .password = {(const uint8_t *)pw, pw_len},
        .remote_addr = addr,
        .remote_port = port,
        .listener = "default",
    };
    plug->authenticate(state, call_no(call), &info);
}

static void authenticate(uintptr_t call, const char *user, const char *pw, size_t pw_len)
{
    authenticate_from(call, user, pw, pw_len, "127.0.0.1", 40000);
}

static void check(uintptr_t call, enum ringmq_action action, const char *topic)
{
    struct ringmq_check c = {
        .action = action,
        .tenant = "acme",
        .user_id = "u-1",
        .client_id = {(const uint8_t *)"dev-1", 5},
        .topic = {(const uint8_t *)topic, strlen(topic)},
        .qos = 1,
        .retain = true,
    };
    plug->check(state, call_no(call), &c);
}

TestSuite(auth_http, .init = setup, .fini = teardown, .timeout = 60);

/* ---- init ---- */

Test(auth_http, init_refuses_bad_config)
{
    char err[256];
    void *st = NULL;
    struct ringmq_kv none[] = {{"timeout_ms", "100"}};
    cr_assert_neq(plug->init(&host, none, 1, &st, err, sizeof(err)), 0);
    cr_assert_not_null(strstr(err, "url"), "%s", err);
    struct ringmq_kv ftp[] = {{"url", "ftp://127.0.0.1/"}};
    cr_assert_neq(plug->init(&host, ftp, 1, &st, err, sizeof(err)), 0);
    cr_assert_not_null(strstr(err, "http://"), "%s", err);
    const char *bad[][2] = {{"timeout_ms", "0"},    {"timeout_ms", "-5"},
                            {"timeout_ms", "1x"},   {"cache_seconds", ""},
                            {"max_in_flight", "0"}, {"max_in_flight", "99999999999999999999"},
                            {"colour", "blue"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ringmq_kv kv[] = {{"url", "http://127.0.0.1:1/"}, {bad[i][0], bad[i][1]}};
        err[0] = '\0';
        cr_assert_neq(plug->init(&host, kv, 2, &st, err, sizeof(err)), 0, "%s=%s", bad[i][0],
                      bad[i][1]);
        cr_assert_not_null(strstr(err, bad[i][0]), "%s", err);
    }
    /* Boundaries that are fine: cache off, a one-request window. */
    struct ringmq_kv ok[] = {{"url", "http://127.0.0.1:1"},
                             {"cache_seconds", "0"},
                             {"max_in_flight", "1"},
                             {"timeout_ms", "1"}};
    cr_assert_eq(plug->init(&host, ok, 4, &st, err, sizeof(err)), 0, "%s", err);
    plug->fini(st);
}

/* ---- authenticate ---- */

Test(auth_http, allow_gives_tenant_and_user_id_from_another_thread)
{
    start_with(NULL, NULL, NULL);
    authenticate(1, "alice", "pw", 2);
    struct done d = wait_done(1);
    cr_assert_eq(d.call, call_no(1));
    cr_assert_eq(d.decision, RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(d.tenant, "acme");
    cr_assert_str_eq(d.user_id, "u-\xc3\xa9"); /* \u00e9 decoded to UTF-8 */
    /* Asynchronous: completed by the plugin's thread, not the caller's. */
    cr_assert_eq(pthread_equal(d.thread, test_thread), 0);
    cr_assert_eq(server_requests(), 1);
    pthread_mutex_lock(&srv.lock);
    cr_assert_not_null(strstr(srv.last_body, "\"client_id\":\"dev-1\""), "%s", srv.last_body);
    cr_assert_not_null(strstr(srv.last_body, "\"protocol\":5"), "%s", srv.last_body);
    cr_assert_not_null(strstr(srv.last_body, "\"listener\":\"default\""), "%s", srv.last_body);
    /* The documented order, ending with the client's address and port. */
    cr_assert_not_null(strstr(srv.last_body, "\"listener\":\"default\",\"transport\":null,"
                                             "\"tls\":null,\"remote_addr\":"
                                             "\"127.0.0.1\",\"remote_port\":40000}"),
                       "%s", srv.last_body);
    pthread_mutex_unlock(&srv.lock);
}

/* A call the host no longer waits for is answered without a request. */
Test(auth_http, abandoned_call_is_not_sent)
{
    start_with(NULL, NULL, NULL);
    authenticate(ABANDONED_CALL, "alice", "pw", 2);
    struct done d = wait_done(1);
    cr_assert_eq(d.call, call_no(ABANDONED_CALL));
    cr_assert_eq(d.decision, RINGMQ_AUTH_ERROR);
    authenticate(1, "alice", "pw", 2);
    cr_assert_eq(wait_done(2).decision, RINGMQ_AUTH_ALLOW);
    cr_assert_eq(server_requests(), 1, "only the call still waited for was sent");
}

Test(auth_http, unknown_remote_address_is_null)
{
    start_with(NULL, NULL, NULL);
    authenticate_from(1, "alice", "pw", 2, NULL, 0);
    cr_assert_eq(wait_done(1).decision, RINGMQ_AUTH_ALLOW);
    pthread_mutex_lock(&srv.lock);
    cr_assert_not_null(strstr(srv.last_body, "\"remote_addr\":null,\"remote_port\":null}"), "%s",
                       srv.last_body);
    pthread_mutex_unlock(&srv.lock);
}

Test(auth_http, deny_401_and_deny_result_are_bad_credentials)
{
    start_with(NULL, NULL, NULL);
    authenticate(1, "mallory", "pw", 2);
    struct done d = wait_done(1);
    cr_assert_eq(d.decision, RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_eq(d.has_tenant, false);
    authenticate(2, "bob", "pw", 2);
    d = wait_done(2);
    cr_assert_eq(d.call, call_no(2));
    cr_assert_eq(d.decision, RINGMQ_AUTH_BAD_CREDENTIALS);
}

Test(auth_http, server_error_garbage_and_unknown_result_are_errors)
{
    start_with(NULL, NULL, NULL);
    const char *users[] = {"broken", "garbage", "weird", "nobody-404"};
    for (int i = 0; i < 4; i++) {
        authenticate((uintptr_t)i + 1, users[i], "pw", 2);
        struct done d = wait_done(i + 1);
        cr_assert_eq(d.decision, RINGMQ_AUTH_ERROR, "%s", users[i]);
    }
    /* Errors are not cached: the same request asks the server again. */
    authenticate(9, "broken", "pw", 2);
    cr_assert_eq(wait_done(5).decision, RINGMQ_AUTH_ERROR);
    cr_assert_eq(server_requests(), 5);
}

Test(auth_http, timeout_is_an_error)
{
    start_with("100", NULL, NULL);
    authenticate(1, "slow", "pw", 2);
    /* The server holds the request and never answers: only the plugin's
     * 100 ms timeout can complete the call. */
    struct done d = wait_done(1);
    cr_assert_eq(d.decision, RINGMQ_AUTH_ERROR);
    server_wait_held(1);
}

Test(auth_http, unreachable_server_is_an_error)
{
    char err[256];
    /* Port 1 on loopback: nothing listens, the connect is refused. */
    struct ringmq_kv kv[] = {{"url", "http://127.0.0.1:1/x"}};
    cr_assert_eq(plug->init(&host, kv, 1, &state, err, sizeof(err)), 0, "%s", err);
    authenticate(1, "alice", "pw", 2);
    cr_assert_eq(wait_done(1).decision, RINGMQ_AUTH_ERROR);
}

Test(auth_http, binary_password_is_escaped)
{
    start_with(NULL, NULL, NULL);
    static const char pw[] = {'s', 0, 'c', '"', 'r', (char)0xff};
    authenticate(1, "anyone", pw, sizeof(pw));
    struct done d = wait_done(1);
    cr_assert_eq(d.decision, RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(d.tenant, "bin");
    cr_assert_eq(d.has_user_id, false);
    /* What a server's JSON decoder sees: one code point per byte. */
    json_t *body = sent_body();
    json_t *p = json_object_get(body, "password");
    cr_assert(json_is_string(p));
    cr_assert_eq(json_string_length(p), 7); /* U+00FF is 2 bytes in UTF-8 */
    cr_assert_eq(memcmp(json_string_value(p), "s\0c\"r\xc3\xbf", 7), 0);
    json_decref(body);
}

/* Text fields are escaped by jansson and decode to what the client sent.
 * Pins behaviour (the hand-written writer did this too). */
Test(auth_http, request_strings_decode_to_the_bytes_sent)
{
    start_with(NULL, NULL, NULL);
    static const char cid[] = "q\"b\\n\nt\tc\x01 \xc3\xa9 \xf0\x9f\x98\x80 </";
    struct ringmq_connect_info info = {
        .protocol_version = 4,
        .client_id = {(const uint8_t *)cid, sizeof(cid) - 1},
        .has_username = true,
        .username = {(const uint8_t *)"u\"x", 3},
        .listener = "tls \"eu\"",
        .remote_addr = "::1",
        .remote_port = 1883,
    };
    plug->authenticate(state, call_no(1), &info);
    cr_assert_eq(wait_done(1).decision, RINGMQ_AUTH_ERROR); /* 404 from the table */
    json_t *body = sent_body();
    cr_assert_str_eq(json_string_value(json_object_get(body, "client_id")), cid);
    cr_assert_str_eq(json_string_value(json_object_get(body, "username")), "u\"x");
    cr_assert(json_is_null(json_object_get(body, "password")));
    cr_assert_eq(json_integer_value(json_object_get(body, "protocol")), 4);
    cr_assert_str_eq(json_string_value(json_object_get(body, "listener")), "tls \"eu\"");
    cr_assert_str_eq(json_string_value(json_object_get(body, "remote_addr")), "::1");
    cr_assert_eq(json_integer_value(json_object_get(body, "remote_port")), 1883);
    cr_assert_eq(json_object_size(body), 9);
    json_decref(body);
}

/* A client id that is not UTF-8 (the broker checks, so only a bug gets
 * here) is an error without a request: the hand-written writer sent the
 * bytes raw, a body that is not JSON. */
Test(auth_http, client_id_that_is_not_utf8_is_an_error_without_a_request)
{
    start_with(NULL, NULL, NULL);
    struct ringmq_connect_info info = {
        .protocol_version = 5,
        .client_id = {(const uint8_t *)"dev\xff", 4},
        .listener = "default",
    };
    plug->authenticate(state, call_no(1), &info);
    cr_assert_eq(wait_done(1).decision, RINGMQ_AUTH_ERROR);
    assert_warned("cannot encode", "client id 0xff");
    cr_assert_eq(server_requests(), 0);
}

Test(auth_http, surrogate_pairs_decode_and_lone_halves_are_refused)
{
    start_with(NULL, NULL, NULL);
    authenticate(1, "emoji", "pw", 2);
    struct done d = wait_done(1);
    cr_assert_eq(d.decision, RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(d.tenant, "acme");
    cr_assert_str_eq(d.user_id, "u-\xf0\x9f\x98\x80"); /* U+1F600 in UTF-8 */
    authenticate(2, "lonehigh", "pw", 2);
    cr_assert_eq(wait_done(2).decision, RINGMQ_AUTH_ERROR);
    authenticate(3, "lonelow", "pw", 2);
    cr_assert_eq(wait_done(3).decision, RINGMQ_AUTH_ERROR);
}

Test(auth_http, tenant_that_is_not_a_string_is_an_error_not_global)
{
    start_with(NULL, NULL, NULL);
    authenticate(1, "objtenant", "pw", 2);
    cr_assert_eq(wait_done(1).decision, RINGMQ_AUTH_ERROR);
    authenticate(2, "numtenant", "pw", 2);
    cr_assert_eq(wait_done(2).decision, RINGMQ_AUTH_ERROR);
    /* null is JSON's "none": the same as leaving the field out. */
    authenticate(3, "nulltenant", "pw", 2);
    struct done d = wait_done(3);
    cr_assert_eq(d.decision, RINGMQ_AUTH_ALLOW);
    cr_assert_eq(d.has_tenant, false);
    cr_assert_str_eq(d.user_id, "u-n");
}

Test(auth_http, no_username_sends_null)
{
    start_with(NULL, NULL, NULL);
    authenticate(1, NULL, NULL, 0);
    cr_assert_eq(wait_done(1).decision, RINGMQ_AUTH_ERROR); /* 404 from the table */
    pthread_mutex_lock(&srv.lock);
    cr_assert_not_null(strstr(srv.last_body, "\"username\":null,\"password\":null"), "%s",
                       srv.last_body);
    pthread_mutex_unlock(&srv.lock);
}

Test(auth_http, auth_continue_is_bad_method)
{
    start_with(NULL, NULL, NULL);
    struct ringmq_auth_step step = {.auth_method = {(const uint8_t *)"SCRAM", 5}};
    plug->auth_continue(state, call_no(1), &step);
    cr_assert_eq(wait_done(1).decision, RINGMQ_AUTH_BAD_METHOD);
}

/* ---- answers read with jansson ---- */

/* Pins behaviour: escapes decode to UTF-8 (the scanner did this too). */
Test(auth_http, escaped_quotes_and_unicode_in_answers_decode)
{
    start_with(NULL, NULL, NULL);
    authenticate(1, "escapes", "pw", 2);
    struct done d = wait_done(1);
    cr_assert_eq(d.decision, RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(d.tenant, "a\"c\\m/e");
    cr_assert_str_eq(d.user_id, "caf\xc3\xa9 \xf0\x9f\x98\x80");
}

/* Pins behaviour (README: other members are ignored; ours must be strings
 * or null, a nested value there is an error, and so is a top level that is
 * not an object). */
Test(auth_http, nested_values_are_skipped_in_other_members_and_errors_in_ours)
{
    start_with(NULL, NULL, NULL);
    authenticate(1, "nested", "pw", 2);
    struct done d = wait_done(1);
    cr_assert_eq(d.decision, RINGMQ_AUTH_ALLOW);
    cr_assert_eq(d.has_tenant, false);
    const char *bad[] = {"arrresult", "objuser", "toparray"};
    for (int i = 0; i < 3; i++) {
        authenticate((uintptr_t)i + 2, bad[i], "pw", 2);
        cr_assert_eq(wait_done(i + 2).decision, RINGMQ_AUTH_ERROR, "%s", bad[i]);
        assert_warned("unreadable answer", bad[i]);
    }
}

/* Pins behaviour: one object, then only white space. */
Test(auth_http, text_after_the_object_is_an_error)
{
    start_with(NULL, NULL, NULL);
    authenticate(1, "trailing", "pw", 2);
    cr_assert_eq(wait_done(1).decision, RINGMQ_AUTH_ERROR);
    assert_warned("unreadable answer", "trailing");
    authenticate(2, "twoobjs", "pw", 2);
    cr_assert_eq(wait_done(2).decision, RINGMQ_AUTH_ERROR);
    authenticate(3, "trailws", "pw", 2);
    cr_assert_eq(wait_done(3).decision, RINGMQ_AUTH_ALLOW);
}

/* Pins the documented rule: of duplicate member names the last one wins,
 * a null included (the scanner did the same). */
Test(auth_http, duplicate_members_last_one_wins)
{
    start_with(NULL, NULL, NULL);
    authenticate(1, "dup", "pw", 2);
    struct done d = wait_done(1);
    cr_assert_eq(d.decision, RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(d.tenant, "b");
    cr_assert_eq(d.has_user_id, false);
}

/* Fails on the hand-written scanner, which allowed all but "nulother" (and
 * passed the tenant's invalid UTF-8 on to the broker). */
Test(auth_http, answers_that_are_not_json_are_errors_and_logged)
{
    start_with(NULL, NULL, NULL);
    const char *bad[] = {"badutf8", "overlong", "bareword", "mismatch", "nulother", "hugenum"};
    for (int i = 0; i < 6; i++) {
        authenticate((uintptr_t)i + 1, bad[i], "pw", 2);
        struct done d = wait_done(i + 1);
        cr_assert_eq(d.decision, RINGMQ_AUTH_ERROR, "%s", bad[i]);
        assert_warned("unreadable answer from the server", bad[i]);
    }
    /* jansson's message quotes the server's bytes: the log gets '?' for
     * those that are not printable ASCII. */
    authenticate(9, "badutf8", "pw", 2);
    wait_done(7);
    pthread_mutex_lock(&log_lock);
    for (const char *p = last_warn; *p; p++)
        cr_assert(*p >= 0x20 && *p < 0x7f, "%s", last_warn);
    pthread_mutex_unlock(&log_lock);
}

/* Pins behaviour: numbers are never read, so an id beyond 64 bits in
 * another member does not spoil the answer. */
Test(auth_http, numbers_of_other_members_are_not_read)
{
    start_with(NULL, NULL, NULL);
    authenticate(1, "bignum", "pw", 2);
    cr_assert_eq(wait_done(1).decision, RINGMQ_AUTH_ALLOW);
}

/* Pins behaviour: tenant and user id hold at most 255 bytes. */
Test(auth_http, tenant_of_256_bytes_is_an_error)
{
    start_with(NULL, NULL, NULL);
    authenticate(1, "tenant255", "pw", 2);
    struct done d = wait_done(1);
    cr_assert_eq(d.decision, RINGMQ_AUTH_ALLOW);
    cr_assert_eq(d.has_tenant, true);
    authenticate(2, "tenant256", "pw", 2);
    cr_assert_eq(wait_done(2).decision, RINGMQ_AUTH_ERROR);
}

/* Pins the limits: an answer of 64 KiB is read, one byte more (or 2 MiB)
 * aborts the transfer, an error; nesting deeper than jansson's 2048 levels
 * is an error (the scanner had no bound there). */
Test(auth_http, answer_size_and_depth_limits)
{
    start_with(NULL, NULL, NULL);
    authenticate(1, "atlimit", "pw", 2);
    cr_assert_eq(wait_done(1).decision, RINGMQ_AUTH_ALLOW);
    authenticate(2, "overlimit", "pw", 2);
    cr_assert_eq(wait_done(2).decision, RINGMQ_AUTH_ERROR);
    assert_warned("request failed", "overlimit");
    authenticate(3, "twomib", "pw", 2);
    cr_assert_eq(wait_done(3).decision, RINGMQ_AUTH_ERROR);
    assert_warned("request failed", "twomib");
    authenticate(4, "deep", "pw", 2);
    cr_assert_eq(wait_done(4).decision, RINGMQ_AUTH_ERROR);
    assert_warned("maximum parsing depth", "deep");
}

/* ---- check ---- */

/* Pins behaviour: a permission answer's tenant or user id, whatever its
 * type, is not read. */
Test(auth_http, acl_answer_ignores_tenant_and_user_id)
{
    start_with(NULL, NULL, NULL);
    check(1, RINGMQ_ACTION_PUBLISH, "typed/a");
    cr_assert_eq(wait_done(1).verdict, RINGMQ_GRANTED);
}

Test(auth_http, acl_allow_and_deny)
{
    start_with(NULL, NULL, NULL);
    check(1, RINGMQ_ACTION_PUBLISH, "public/a");
    struct done d = wait_done(1);
    cr_assert_eq(d.verdict, RINGMQ_GRANTED);
    cr_assert_eq(d.cacheable, true);
    pthread_mutex_lock(&srv.lock);
    cr_assert_str_eq(srv.last_body, "{\"tenant\":\"acme\",\"user_id\":\"u-1\",\"client_id\":"
                                    "\"dev-1\",\"action\":\"publish\",\"topic\":\"public/a\","
                                    "\"qos\":1,\"retain\":true}");
    pthread_mutex_unlock(&srv.lock);
    check(2, RINGMQ_ACTION_SUBSCRIBE, "secret/#");
    d = wait_done(2);
    cr_assert_eq(d.verdict, RINGMQ_DENIED);
    cr_assert_eq(d.cacheable, true);
    check(3, RINGMQ_ACTION_SUBSCRIBE, "forbidden/x");
    cr_assert_eq(wait_done(3).verdict, RINGMQ_DENIED);
    check(4, RINGMQ_ACTION_UNSUBSCRIBE, "unknown/x"); /* 404 */
    d = wait_done(4);
    cr_assert_eq(d.verdict, RINGMQ_CHECK_ERROR);
    cr_assert_eq(d.cacheable, false);
}

/* ---- the cache ---- */

Test(auth_http, cache_hit_answers_synchronously_without_http)
{
    start_with(NULL, "60", NULL);
    authenticate(1, "alice", "pw", 2);
    wait_done(1);
    check(2, RINGMQ_ACTION_PUBLISH, "public/a");
    wait_done(2);
    cr_assert_eq(server_requests(), 2);
    /* The same requests again: completed before the callback returns, on
     * the caller's thread, and the server sees nothing new. */
    authenticate(3, "alice", "pw", 2);
    cr_assert_eq(completions(), 3);
    struct done d = wait_done(3);
    cr_assert_eq(d.call, call_no(3));
    cr_assert_neq(pthread_equal(d.thread, test_thread), 0);
    cr_assert_eq(d.decision, RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(d.tenant, "acme");
    cr_assert_str_eq(d.user_id, "u-\xc3\xa9");
    check(4, RINGMQ_ACTION_PUBLISH, "public/a");
    cr_assert_eq(completions(), 4);
    cr_assert_eq(wait_done(4).verdict, RINGMQ_GRANTED);
    cr_assert_eq(server_requests(), 2);
    /* Another password is another key: asked again. */
    authenticate(5, "alice", "pw2", 3);
    cr_assert_eq(wait_done(5).decision, RINGMQ_AUTH_ALLOW);
    cr_assert_eq(server_requests(), 3);
    /* A reconnect comes from a new port: still the same key. */
    authenticate_from(6, "alice", "pw2", 3, "127.0.0.1", 40001);
    cr_assert_eq(completions(), 6);
    cr_assert_eq(server_requests(), 3);
    /* Another address is another key: the server may decide by address. */
    authenticate_from(7, "alice", "pw2", 3, "::1", 40001);
    cr_assert_eq(wait_done(7).decision, RINGMQ_AUTH_ALLOW);
    cr_assert_eq(server_requests(), 4);
}

Test(auth_http, cache_off_asks_every_time)
{
    start_with(NULL, "0", NULL);
    authenticate(1, "mallory", "pw", 2);
    wait_done(1);
    authenticate(2, "mallory", "pw", 2);
    cr_assert_eq(wait_done(2).decision, RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_eq(server_requests(), 2);
}

/* ---- limits and shutdown ---- */

Test(auth_http, max_in_flight_refuses_the_excess)
{
    start_with("60000", NULL, "1");
    check(1, RINGMQ_ACTION_PUBLISH, "slow/a");
    server_wait_held(1);
    cr_assert_eq(completions(), 0);
    check(2, RINGMQ_ACTION_PUBLISH, "public/a");
    struct done d = wait_done(1); /* refused at once, on the caller's thread */
    cr_assert_eq(d.call, call_no(2));
    cr_assert_eq(d.verdict, RINGMQ_CHECK_ERROR);
    cr_assert_neq(pthread_equal(d.thread, test_thread), 0);
}

Test(auth_http, fini_completes_calls_in_flight_with_error)
{
    start_with("60000", NULL, NULL);
    authenticate(1, "slow", "pw", 2);
    check(2, RINGMQ_ACTION_SUBSCRIBE, "slow/#");
    server_wait_held(2);
    cr_assert_eq(completions(), 0);
    plug->fini(state);
    state = NULL;
    /* Both answered before fini returned, exactly once each. */
    cr_assert_eq(completions(), 2);
    pthread_mutex_lock(&done_lock);
    cr_assert_eq(times_by_call[1], 1);
    cr_assert_eq(times_by_call[2], 1);
    cr_assert_eq(decision_by_call[1], RINGMQ_AUTH_ERROR);
    cr_assert_eq(verdict_by_call[2], RINGMQ_CHECK_ERROR);
    pthread_mutex_unlock(&done_lock);
}

/* ABI 4: the transport and the connection's TLS reach the server, with the
 * verified client certificate (subject, CN, SHA-256, SANs), so it can
 * decide by certificate or by the server name the client asked for; the
 * port stays last (the cache key ends before it). */
Test(auth_http, transport_tls_and_client_certificate_are_sent)
{
    start_with(NULL, NULL, NULL);
    static const char *const san[] = {"DNS:dev-1.acme.example", "URI:urn:dev:1"};
    struct ringmq_connect_info info = {
        .protocol_version = 5,
        .client_id = {(const uint8_t *)"dev-1", 5},
        .listener = "tls",
        .remote_addr = "127.0.0.1",
        .remote_port = 40001,
        .transport = "tls",
        .tls_version = "TLSv1.3",
        .tls_cipher = "TLS13-AES128-GCM-SHA256",
        .tls_sni = "acme.mqtt.example",
        .client_cert_verified = true,
        .client_cert_subject = "/O=Acme/CN=dev-1",
        .client_cert_cn = "dev-1",
        .client_cert_sha256 = "00ff",
        .client_cert_san = san,
        .n_client_cert_san = 2,
    };
    plug->authenticate(state, call_no(1), &info);
    wait_done(1);
    json_t *body = sent_body();
    cr_assert_str_eq(json_string_value(json_object_get(body, "transport")), "tls");
    json_t *tls = json_object_get(body, "tls");
    cr_assert(json_is_object(tls));
    cr_assert_str_eq(json_string_value(json_object_get(tls, "version")), "TLSv1.3");
    cr_assert_str_eq(json_string_value(json_object_get(tls, "cipher")), "TLS13-AES128-GCM-SHA256");
    cr_assert_str_eq(json_string_value(json_object_get(tls, "sni")), "acme.mqtt.example");
    cr_assert(json_is_false(json_object_get(tls, "from_proxy")));
    json_t *cert = json_object_get(tls, "client_cert");
    cr_assert(json_is_object(cert));
    cr_assert_str_eq(json_string_value(json_object_get(cert, "subject")), "/O=Acme/CN=dev-1");
    cr_assert_str_eq(json_string_value(json_object_get(cert, "cn")), "dev-1");
    cr_assert_str_eq(json_string_value(json_object_get(cert, "sha256")), "00ff");
    json_t *sans = json_object_get(cert, "san");
    cr_assert_eq(json_array_size(sans), 2);
    cr_assert_str_eq(json_string_value(json_array_get(sans, 1)), "URI:urn:dev:1");
    json_decref(body);
    pthread_mutex_lock(&srv.lock);
    cr_assert_not_null(strstr(srv.last_body, ",\"remote_port\":40001}"), "%s", srv.last_body);
    pthread_mutex_unlock(&srv.lock);

    /* TLS ended by a proxy, no certificate verified: client_cert null. */
    info.tls_from_proxy = true;
    info.tls_cipher = NULL;
    info.client_cert_verified = false;
    plug->authenticate(state, call_no(2), &info);
    wait_done(2);
    body = sent_body();
    tls = json_object_get(body, "tls");
    cr_assert(json_is_true(json_object_get(tls, "from_proxy")));
    cr_assert(json_is_null(json_object_get(tls, "cipher")));
    cr_assert(json_is_null(json_object_get(tls, "client_cert")));
    json_decref(body);
}

/* ---- reconfigure (ABI 5) ---- */

/* Bad keys are refused with a message and change nothing; a new url is
 * not used before the commit (the cache still answers); after it the
 * cache is empty and requests go to the new url. */
Test(auth_http, reconfigure_takes_a_new_url_at_commit_and_empties_the_cache)
{
    start_with(NULL, "60", NULL);
    authenticate(1, "alice", "pw", 2);
    cr_assert_eq(wait_done(1).decision, RINGMQ_AUTH_ALLOW);
    char err[256], url[64];
    void *next = NULL;
    struct ringmq_kv bad[] = {{"url", "ftp://x"}};
    cr_assert_neq(plug->reconfigure(state, bad, 1, &next, err, sizeof(err)), 0);
    cr_assert(strstr(err, "url must start with http"), "%s", err);
    struct ringmq_kv typo[] = {{"url", "http://x"}, {"cache_second", "1"}};
    cr_assert_neq(plug->reconfigure(state, typo, 2, &next, err, sizeof(err)), 0);
    cr_assert(strstr(err, "cache_second"), "%s", err);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/elsewhere", srv.port);
    struct ringmq_kv kv[] = {{"url", url}, {"cache_seconds", "60"}, {"timeout_ms", "5000"}};
    cr_assert_eq(plug->reconfigure(state, kv, 3, &next, err, sizeof(err)), 0, "%s", err);
    authenticate(2, "alice", "pw", 2);
    cr_assert_eq(completions(), 2, "prepared only: the cache still answers");
    plug->reconfigure_commit(state, next, true);
    authenticate(3, "alice", "pw", 2);
    struct done d = wait_done(3);
    cr_assert_neq(d.decision, RINGMQ_AUTH_ALLOW, "/elsewhere/auth has no route: 404");
    cr_assert_eq(server_requests(), 2, "asked again: the cache was emptied");
    /* Discarded: the url in force stays /elsewhere. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/mq", srv.port);
    cr_assert_eq(plug->reconfigure(state, kv, 3, &next, err, sizeof(err)), 0, "%s", err);
    plug->reconfigure_commit(state, next, false);
    authenticate(4, "alice", "pw", 2);
    cr_assert_neq(wait_done(4).decision, RINGMQ_AUTH_ALLOW);
    /* Back to /mq: allowed again. */
    cr_assert_eq(plug->reconfigure(state, kv, 3, &next, err, sizeof(err)), 0, "%s", err);
    plug->reconfigure_commit(state, next, true);
    authenticate(5, "alice", "pw", 2);
    cr_assert_eq(wait_done(5).decision, RINGMQ_AUTH_ALLOW);
}
