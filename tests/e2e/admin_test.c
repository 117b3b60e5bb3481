/*
 * The admin API (issue 14) against the real broker: authentication (401
 * without or with an unknown token, 403 for a token limited to another
 * tenant, every refusal logged), GET /api/v1/tenants with live counts of
 * real libmosquitto clients, and the open mode of a loopback API without a
 * token file. Tokens are made with ringmq-passwd token, as an operator
 * would. HTTP/1.0 over a loopback socket, read until the server closes.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static struct broker b;
static char tokens[64];
static char set_file[128];

TestSuite(admin, .fini = e2e_fini, .timeout = 60);

static void skip_mosquitto(void)
{
    if (getenv("RINGMQ_E2E_BROKER") && !strcmp(getenv("RINGMQ_E2E_BROKER"), "mosquitto"))
        cr_skip_test("the admin API is ringmq's");
}

/* Append the line `ringmq-passwd token ROLE TENANTS` makes for `token`. */
static void add_token(const char *token, const char *role, const char *tenants)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "printf '%%s\\n' '%s' | '%s' token %s %s >>'%s'", token,
             getenv("RINGMQ_PASSWD_TOOL"), role, tenants ? tenants : "", tokens);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* Three tokens: an admin of every tenant, a reader of acme only, a reader
 * of every tenant; the broker started with them. */
static void start_with_tokens(void)
{
    skip_mosquitto();
    snprintf(tokens, sizeof(tokens), "/tmp/ringmq-admin-XXXXXX");
    int fd = mkstemp(tokens);
    cr_assert(fd >= 0);
    close(fd);
    add_token("admin-token", "admin", NULL);
    add_token("acme-reader", "read", "acme");
    add_token("any-reader", "read", NULL);
    snprintf(set_file, sizeof(set_file), "admin.token_file=%s", tokens);
    broker_start(&b, "admin.enabled=true", "admin.port=0", set_file, NULL);
}

static int admin_port(void)
{
    const char needle[] = "admin API on http://127.0.0.1:";
    broker_wait_log(&b, needle, 1);
    char path[128], line[512];
    snprintf(path, sizeof(path), "%s/broker.log", b.dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    int port = 0;
    while (!port && fgets(line, sizeof(line), f)) {
        char *p = strstr(line, needle);
        if (p)
            port = atoi(p + strlen(needle));
    }
    fclose(f);
    cr_assert(port > 0);
    return port;
}

/* METHOD PATH with `token` (NULL: no Authorization); the status, and the
 * body into body[cap]. */
static int http(const char *method, const char *path, const char *token, char *body, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)admin_port())};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    char req[512], auth[128] = "";
    if (token)
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", token);
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\n%s\r\n", method, path, auth);
    cr_assert(write(fd, req, (size_t)n) == n);
    static char buf[65536];
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        cr_assert(poll(&p, 1, E2E_WAIT_MS) == 1, "admin API did not answer");
        ssize_t r = read(fd, buf + len, sizeof(buf) - len - 1);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = 0;
    close(fd);
    int status = 0;
    cr_assert(sscanf(buf, "HTTP/1.%*d %d", &status) == 1, "%s", buf);
    const char *start = strstr(buf, "\r\n\r\n");
    snprintf(body, cap, "%s", start ? start + 4 : "");
    return status;
}

Test(admin, no_or_unknown_token_is_401_and_logged)
{
    start_with_tokens();
    char body[4096];
    cr_assert_eq(http("GET", "/api/v1/tenants", NULL, body, sizeof(body)), 401, "%s", body);
    cr_assert(strstr(body, "\"code\":\"unauthorized\""), "%s", body);
    cr_assert_eq(http("GET", "/api/v1/tenants", "admin-tokem", body, sizeof(body)), 401);
    /* The hash in the file is not a token. */
    cr_assert_eq(http("GET", "/api/v1/tenants", "", body, sizeof(body)), 401);
    broker_wait_log(&b, "admin: 401 unauthorized: GET /api/v1/tenants from 127.0.0.1", 3);
    broker_stop(&b);
    unlink(tokens);
}

Test(admin, tenant_limited_token_is_403_elsewhere_and_sees_only_its_tenants)
{
    start_with_tokens();
    struct client *c = client_open(&b, "admin-seen", true); /* tenant global exists */
    char body[4096];
    cr_assert_eq(http("GET", "/api/v1/tenants/global", "acme-reader", body, sizeof(body)), 403,
                 "%s", body);
    cr_assert(strstr(body, "\"code\":\"forbidden\""), "%s", body);
    broker_wait_log(&b, "admin: 403 forbidden: GET /api/v1/tenants/global", 1);
    cr_assert_eq(http("GET", "/api/v1/tenants", "acme-reader", body, sizeof(body)), 200);
    cr_assert_str_eq(body, "{\"tenants\":[]}");
    cr_assert_eq(http("GET", "/api/v1/tenants/global", "any-reader", body, sizeof(body)), 200, "%s",
                 body);
    client_disconnect(c);
    broker_stop(&b);
    unlink(tokens);
}

/* Connections and sessions as the shards count them, summed: two clients
 * (on different shards when there are several: the ids hash apart). */
Test(admin, tenants_lists_live_counts)
{
    start_with_tokens();
    struct client *c1 = client_open(&b, "admin-c1", true);
    struct client *c2 = client_open(&b, "admin-c2", true);
    char body[4096];
    cr_assert_eq(http("GET", "/api/v1/tenants", "admin-token", body, sizeof(body)), 200);
    cr_assert_str_eq(body,
                     "{\"tenants\":[{\"name\":\"global\",\"connections\":2,\"sessions\":2}]}");
    cr_assert_eq(http("GET", "/api/v1/tenants/global", "any-reader", body, sizeof(body)), 200);
    cr_assert_str_eq(body, "{\"name\":\"global\",\"connections\":2,\"sessions\":2}");
    cr_assert_eq(http("GET", "/api/v1/tenants/nobody", "admin-token", body, sizeof(body)), 404);
    cr_assert_eq(http("GET", "/api/v1/nothing", "admin-token", body, sizeof(body)), 404);
    cr_assert_eq(http("DELETE", "/api/v1/tenants", "admin-token", body, sizeof(body)), 405);
    client_disconnect(c1);
    client_disconnect(c2);
    broker_stop(&b);
    unlink(tokens);
}

Test(admin, loopback_without_token_file_is_open)
{
    skip_mosquitto();
    broker_start(&b, "admin.enabled=true", "admin.port=0", NULL);
    broker_wait_log(&b, "every local caller is an admin", 1);
    char body[4096];
    cr_assert_eq(http("GET", "/api/v1/tenants", NULL, body, sizeof(body)), 200, "%s", body);
    broker_stop(&b);
}
