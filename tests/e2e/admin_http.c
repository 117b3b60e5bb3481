/* The admin API's end-to-end helpers (admin_http.h). */
#include "admin_http.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness_v5.h"

void admin_skip_mosquitto(void)
{
    if (e2e_mosquitto())
        cr_skip_test("the admin API is ringmq's");
}

/* Append the line `ringmq-passwd token ROLE TENANTS` makes for `token`. */
static void add_token(const char *path, const char *token, const char *role, const char *tenants)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "printf '%%s\\n' '%s' | '%s' token %s %s >>'%s'", token,
             getenv("RINGMQ_PASSWD_TOOL"), role, tenants ? tenants : "", path);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

void admin_tokens_make(char *path, size_t cap, char *set, size_t set_cap)
{
    snprintf(path, cap, "/tmp/ringmq-admin-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    add_token(path, "admin-token", "admin", NULL);
    add_token(path, "acme-reader", "read", "acme");
    add_token(path, "any-reader", "read", NULL);
    add_token(path, "acme-admin", "admin", "acme");
    snprintf(set, set_cap, "admin.token_file=%s", path);
}

int admin_http_send(const struct broker *b, const char *method, const char *path, const char *token,
                    const char *out, size_t out_len, char *body, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)broker_admin_port(b, false))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    char req[1024], auth[128] = "", length[64] = "";
    if (token)
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", token);
    if (out)
        snprintf(length, sizeof(length), "Content-Length: %zu\r\n", out_len);
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\n%s%s\r\n", method, path, auth, length);
    cr_assert(n > 0 && (size_t)n < sizeof(req), "request line too long");
    cr_assert(write(fd, req, (size_t)n) == n);
    for (size_t off = 0; out && off < out_len;) {
        ssize_t w = send(fd, out + off, out_len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server answered early (413) and closed */
        off += (size_t)w;
    }
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

json_t *admin_call_json(const struct broker *b, const char *method, const char *path,
                        const char *token, const char *json, int status)
{
    static char body[65536];
    int got =
        admin_http_send(b, method, path, token, json, json ? strlen(json) : 0, body, sizeof(body));
    cr_assert_eq(got, status, "%s %s %s: %d %s", method, path, json ? json : "", got, body);
    return json_loads(body, 0, NULL);
}

json_t *admin_get_json(const struct broker *b, const char *path, const char *token, int status)
{
    return admin_call_json(b, "GET", path, token, NULL, status);
}

/* An MQTT filter match written apart from the broker's: '+' one level,
 * '#' the rest and the parent level ("s/#" matches "s", MQTT-4.7.1-2),
 * no '$' topic under a first-level wildcard (MQTT-4.7.2-1). */
bool admin_ref_matches(const char *f, const char *t)
{
    if ((f[0] == '+' || f[0] == '#') && t[0] == '$')
        return false;
    for (;;) {
        size_t fl = strcspn(f, "/"), tl = strcspn(t, "/");
        if (fl == 1 && f[0] == '#')
            return true;
        if (!(fl == 1 && f[0] == '+') && (fl != tl || memcmp(f, t, fl) != 0))
            return false;
        f += fl;
        t += tl;
        if (!*t)
            return !*f || !strcmp(f, "/#");
        if (!*f)
            return false;
        f++;
        t++;
    }
}
