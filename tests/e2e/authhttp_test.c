/* E2E, the auth_http plugin through the broker: a small HTTP server started by
 * the test on loopback answers /auth (alice/pw -> tenant acme, others 401) and
 * /acl (topics containing "forbidden" denied); the broker authenticates and
 * checks asynchronously through it. ringmqd only. */
#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct broker b;
static int http_fd = -1;
static atomic_bool http_stop;
static pthread_t http_thread;

/* One request per connection: read headers and body, answer, close. */
static void serve(int fd)
{
    char req[8192];
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 2000) != 1)
            return;
        ssize_t n = read(fd, req + len, sizeof(req) - 1 - len);
        if (n <= 0)
            return;
        len += (size_t)n;
        req[len] = 0;
        char *hdr_end = strstr(req, "\r\n\r\n");
        char *cl = strcasestr(req, "Content-Length:");
        if (hdr_end && cl && len >= (size_t)(hdr_end + 4 - req) + (size_t)atoi(cl + 15))
            break;
    }
    const char *status = "200 OK", *body;
    if (strstr(req, "POST /auth")) {
        if (strstr(req, "\"username\":\"alice\"") && strstr(req, "\"password\":\"pw\""))
            body = "{\"result\":\"allow\",\"tenant\":\"acme\",\"user_id\":\"alice\"}";
        else {
            status = "401 Unauthorized";
            body = "{\"result\":\"deny\"}";
        }
    } else if (strstr(req, "POST /acl")) {
        body = strstr(req, "forbidden") ? "{\"result\":\"deny\"}" : "{\"result\":\"allow\"}";
    } else {
        status = "404 Not Found";
        body = "{}";
    }
    char out[512];
    int n = snprintf(out, sizeof(out),
                     "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     status, strlen(body), body);
    if (write(fd, out, (size_t)n) < 0)
        return;
}

static void *http_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&http_stop)) {
        struct pollfd p = {.fd = http_fd, .events = POLLIN};
        if (poll(&p, 1, 100) != 1)
            continue;
        int c = accept(http_fd, NULL, NULL);
        if (c < 0)
            continue;
        serve(c);
        close(c);
    }
    return NULL;
}

static int http_start(void)
{
    http_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    cr_assert(bind(http_fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    cr_assert(listen(http_fd, 16) == 0);
    cr_assert(getsockname(http_fd, (struct sockaddr *)&a, &alen) == 0);
    atomic_store(&http_stop, false);
    cr_assert(pthread_create(&http_thread, NULL, http_main, NULL) == 0);
    return ntohs(a.sin_port);
}

static void http_stop_server(void)
{
    atomic_store(&http_stop, true);
    pthread_join(http_thread, NULL);
    close(http_fd);
}

TestSuite(authhttp, .fini = e2e_fini, .timeout = 60);

Test(authhttp, authenticates_and_checks_over_http)
{
    if (getenv("RINGMQ_E2E_BROKER") && !strcmp(getenv("RINGMQ_E2E_BROKER"), "mosquitto"))
        cr_skip_test("ringmq plugins");
    int port = http_start();
    char set_path[300], set_url[100];
    snprintf(set_path, sizeof(set_path), "plugin.http.path=%s", getenv("RINGMQ_AUTH_HTTP"));
    snprintf(set_url, sizeof(set_url), "plugin.http.url=http://127.0.0.1:%d", port);
    broker_start(&b, set_path, set_url, NULL);

    struct client *bad = NULL;
    struct client_opts o = {.id = "x", .clean = true, .username = "alice", .password = "nope"};
    cr_assert_eq(client_connect_rc(&b, &o, &bad), 4, "wrong password: CONNACK 0x04");
    client_destroy(bad);

    struct client_opts ok = {.id = "a1", .clean = true, .username = "alice", .password = "pw"};
    struct client *sub = client_connect(&b, &ok);
    cr_assert_eq(client_subscribe(sub, "#", 1), 1);
    ok.id = "a2";
    struct client *pub = client_connect(&b, &ok);
    client_publish(pub, "forbidden/x", "no", 2, 1, false);
    client_publish(pub, "fine/x", "yes", 3, 1, false);
    client_expect_message(sub, "fine/x", "yes", NULL, NULL);
    cr_assert(client_no_message(sub, E2E_ABSENT_MS), "a denied PUBLISH was delivered");
    client_disconnect(pub);
    client_disconnect(sub);
    broker_stop(&b);
    http_stop_server();
}
