/*
 * The admin API over HTTPS (issue 14: [admin] tls_cert, tls_key,
 * tls_client_ca) against the real broker, with wolfSSL as the client (the
 * library the project links; the server side is libmicrohttpd's GnuTLS):
 * a request with a token answered over TLS, without one still 401; plain
 * HTTP on the TLS port answered by no HTTP at all, a handshake cut short
 * and half-closed closed at once; a client trusting
 * another CA fails its handshake. With client certificates: none, or one
 * of another CA, is a 403 (JSON, logged); the CA's own works, and still
 * needs its token. Files: a missing certificate, a key that is not the
 * certificate's, a CA file without a certificate each stop the start with
 * a line naming the file, and --check-config says the same.
 *
 * Certificates are made by the openssl CLI in the suite's own directory,
 * as tls_test.c makes the MQTT listeners' (certs.h: nothing with a
 * private key is committed). ringmqd only.
 */
#include "certs.h"
#include "harness.h"

#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

static struct broker b;
static char dir[64];
static char ca[128], cert[128], key[128], ccert[128], ckey[128], other_ca[128];
static char scert[128], skey[128], tokens[128], rcert[128], rkey[128];

/* A CA and another; a server certificate of the CA for 127.0.0.1; a
 * client certificate of each CA. P-256 keys. */
static const char make_certs[] = "ca_new ca ringmq-admin-ca\n"
                                 "ca_new oca other-ca\n"
                                 "sign server ca 2 '-extfile san.ext'\n"
                                 "sign client ca 2 ''\n"
                                 "sign stranger oca 2 ''\n"
                                 "sign renewed ca 2 '-extfile san.ext'\n";

static void add_token(const char *token, const char *role)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "printf '%%s\\n' '%s' | '%s' token %s >>'%s'", token,
             getenv("RINGMQ_PASSWD_TOOL"), role, tokens);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void suite_init(void)
{
    const char *which = getenv("RINGMQ_E2E_BROKER");
    if (which && !strcmp(which, "mosquitto"))
        cr_skip_test("the admin API is ringmq's");
    certs_make(dir, sizeof(dir), "admintls", make_certs);
#define P(var, name) snprintf(var, sizeof(var), "%s/%s", dir, name)
    P(ca, "ca.crt");
    P(cert, "server.crt");
    P(key, "server.key");
    P(ccert, "client.crt");
    P(ckey, "client.key");
    P(other_ca, "oca.crt");
    P(scert, "stranger.crt");
    P(skey, "stranger.key");
    P(tokens, "admin.tokens");
    P(rcert, "renewed.crt");
    P(rkey, "renewed.key");
#undef P
    add_token("admin-token", "admin");
    cr_assert_eq(wolfSSL_Init(), WOLFSSL_SUCCESS);
}

static void suite_fini(void)
{
    e2e_fini();
    wolfSSL_Cleanup();
    certs_remove(dir);
}

TestSuite(admin_tls, .init = suite_init, .fini = suite_fini, .timeout = 60);

/* The broker with the API on HTTPS from `c` and `k` (and client
 * certificates of `client_ca` unless NULL); the admin port. */
static int start_with(const char *c, const char *k, const char *client_ca)
{
    static char s_cert[200], s_key[200], s_ca[200], s_tok[200];
    snprintf(s_cert, sizeof(s_cert), "admin.tls_cert=%s", c);
    snprintf(s_key, sizeof(s_key), "admin.tls_key=%s", k);
    snprintf(s_ca, sizeof(s_ca), "admin.tls_client_ca=%s", client_ca ? client_ca : "");
    snprintf(s_tok, sizeof(s_tok), "admin.token_file=%s", tokens);
    broker_start(&b, "admin.enabled=true", "admin.port=0", s_tok, s_cert, s_key, s_ca, NULL);
    return broker_admin_port(&b, true);
}

static int start_tls(const char *client_ca)
{
    return start_with(cert, key, client_ca);
}

/* A loopback connection to the admin port, reads bounded by E2E_WAIT_MS. */
static int admin_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    struct timeval tv = {.tv_sec = E2E_WAIT_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* `method` `path` over TLS trusting `trust`, presenting (c_cert, c_key)
 * when not NULL, with `token` (NULL: none). The status (-1: the handshake
 * failed), the body into body[cap], the server certificate's subject into
 * subject[SUBJECT_MAX] unless NULL. */
enum { SUBJECT_MAX = 256 };
static int https_req(int port, const char *method, const char *trust, const char *c_cert,
                     const char *c_key, const char *path, const char *token, char *body, size_t cap,
                     char *subject)
{
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
    cr_assert_not_null(ctx);
    cr_assert_eq(wolfSSL_CTX_load_verify_locations(ctx, trust, NULL), WOLFSSL_SUCCESS);
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL); /* not every build's default */
    if (c_cert) {
        cr_assert_eq(wolfSSL_CTX_use_certificate_file(ctx, c_cert, WOLFSSL_FILETYPE_PEM),
                     WOLFSSL_SUCCESS);
        cr_assert_eq(wolfSSL_CTX_use_PrivateKey_file(ctx, c_key, WOLFSSL_FILETYPE_PEM),
                     WOLFSSL_SUCCESS);
    }
    int fd = admin_connect(port);
    WOLFSSL *ssl = wolfSSL_new(ctx);
    cr_assert_not_null(ssl);
    wolfSSL_set_fd(ssl, fd);
    int status = -1;
    body[0] = '\0';
    if (wolfSSL_connect(ssl) == WOLFSSL_SUCCESS) {
        char req[512], auth[160] = "";
        if (subject) {
            WOLFSSL_X509 *peer = wolfSSL_get_peer_certificate(ssl);
            cr_assert_not_null(peer);
            wolfSSL_X509_NAME_oneline(wolfSSL_X509_get_subject_name(peer), subject, SUBJECT_MAX);
            wolfSSL_X509_free(peer);
        }
        if (token)
            snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", token);
        int n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nContent-Length: 0\r\n%s\r\n", method,
                         path, auth);
        cr_assert_eq(wolfSSL_write(ssl, req, n), n);
        static char buf[65536];
        size_t len = 0;
        int k;
        while (len < sizeof(buf) - 1 &&
               (k = wolfSSL_read(ssl, buf + len, (int)(sizeof(buf) - 1 - len))) > 0)
            len += (size_t)k;
        buf[len] = '\0';
        cr_assert(sscanf(buf, "HTTP/1.%*d %d", &status) == 1, "no HTTP answer: %s", buf);
        cr_assert(strstr(buf, "\r\nContent-Type: application/json\r\n"), "%s", buf);
        const char *start = strstr(buf, "\r\n\r\n");
        snprintf(body, cap, "%s", start ? start + 4 : "");
    }
    wolfSSL_free(ssl);
    wolfSSL_CTX_free(ctx);
    close(fd);
    return status;
}

static int https_get(int port, const char *trust, const char *c_cert, const char *c_key,
                     const char *path, const char *token, char *body, size_t cap)
{
    return https_req(port, "GET", trust, c_cert, c_key, path, token, body, cap, NULL);
}

Test(admin_tls, https_answers_and_tokens_still_apply)
{
    int port = start_tls(NULL);
    char body[4096];
    cr_assert_eq(
        https_get(port, ca, NULL, NULL, "/api/v1/tenants", "admin-token", body, sizeof(body)), 200,
        "%s", body);
    cr_assert(strstr(body, "{\"tenants\":["), "%s", body);
    cr_assert_eq(https_get(port, ca, NULL, NULL, "/api/v1/tenants", NULL, body, sizeof(body)), 401,
                 "%s", body);
    cr_assert(strstr(body, "\"code\":\"unauthorized\""), "%s", body);
    cr_assert_eq(
        https_get(port, ca, NULL, NULL, "/api/v1/tenants", "not-a-token", body, sizeof(body)), 401);
    broker_stop(&b);
}

/* A ClientHello is expected: plain HTTP gets no HTTP answer (at most a
 * TLS alert), and the connection ends at once, not at a timeout. */
Test(admin_tls, plain_http_on_the_tls_port_gets_no_http)
{
    int port = start_tls(NULL);
    int fd = admin_connect(port);
    static const char req[] = "GET /api/v1/tenants HTTP/1.0\r\n"
                              "Authorization: Bearer admin-token\r\n\r\n";
    cr_assert_eq(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
    char buf[4096];
    size_t len = 0;
    ssize_t r;
    while (len < sizeof(buf) - 1 && (r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)r;
    cr_assert(r == 0 || len == sizeof(buf) - 1, "the server did not close (read: %zd)", r);
    buf[len] = '\0';
    cr_assert(len < 5 || memcmp(buf, "HTTP/", 5) != 0, "an HTTP answer on the TLS port: %s", buf);
    cr_assert_null(strstr(buf, "tenants"), "%s", buf);
    close(fd);
    /* A ClientHello cut short and half-closed: closed at once, as on
     * plain HTTP (admin_wire_test.c). */
    fd = admin_connect(port);
    static const char hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    cr_assert_eq(write(fd, hello, sizeof(hello) - 1), (ssize_t)sizeof(hello) - 1);
    shutdown(fd, SHUT_WR);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 1000), 1, "a half-closed handshake held over a second");
    cr_assert_leq(read(fd, buf, sizeof(buf)), 0, "closed, or reset");
    close(fd);
    broker_stop(&b);
}

Test(admin_tls, a_client_trusting_another_ca_fails_its_handshake)
{
    int port = start_tls(NULL);
    char body[512];
    cr_assert_eq(
        https_get(port, other_ca, NULL, NULL, "/api/v1/tenants", "admin-token", body, sizeof(body)),
        -1, "the handshake verified a certificate of another CA");
    /* The API still answers the next caller. */
    cr_assert_eq(
        https_get(port, ca, NULL, NULL, "/api/v1/tenants", "admin-token", body, sizeof(body)), 200);
    broker_stop(&b);
}

Test(admin_tls, client_certificates_of_the_ca_only)
{
    int port = start_tls(ca);
    broker_wait_log(&b, "(client certificates required)", 1);
    char body[4096];
    cr_assert_eq(
        https_get(port, ca, NULL, NULL, "/api/v1/tenants", "admin-token", body, sizeof(body)), 403,
        "%s", body);
    cr_assert(strstr(body, "\"code\":\"forbidden\"") &&
                  strstr(body, "a client certificate is required"),
              "%s", body);
    broker_wait_log(&b, "admin: 403 forbidden: GET /api/v1/tenants from 127.0.0.1", 1);
    cr_assert_eq(
        https_get(port, ca, scert, skey, "/api/v1/tenants", "admin-token", body, sizeof(body)), 403,
        "%s", body);
    cr_assert(strstr(body, "the client certificate is not trusted"), "%s", body);
    cr_assert_eq(
        https_get(port, ca, ccert, ckey, "/api/v1/tenants", "admin-token", body, sizeof(body)), 200,
        "%s", body);
    /* The certificate is not a token. */
    cr_assert_eq(https_get(port, ca, ccert, ckey, "/api/v1/tenants", NULL, body, sizeof(body)), 401,
                 "%s", body);
    broker_stop(&b);
}

/* ringmqd with the API on `cert_path`, `key_path` (and `ca_path` unless
 * NULL), started (check false) or --check-config: the exit status, and
 * the output into out. Bounded: a broker that does start is stopped by
 * timeout (status 124). */
static int run_with(const char *cert_path, const char *key_path, const char *ca_path, bool check,
                    char *out, size_t cap)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "timeout 20 '%s' -c '%s' --set listener.default.port=0 --set "
             "persistence.enabled=false --set admin.enabled=true --set admin.port=0 --set "
             "admin.token_file='%s' --set admin.tls_cert='%s' --set admin.tls_key='%s' "
             "--set admin.tls_client_ca='%s' %s 2>&1",
             getenv("RINGMQD"), getenv("RINGMQ_CONF"), tokens, cert_path, key_path,
             ca_path ? ca_path : "", check ? "--check-config" : "");
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Each bad file stops the start and fails --check-config with the same
 * line; good files pass --check-config. */
static void refused(const char *c, const char *k, const char *a, const char *why)
{
    char out[8192];
    for (int check = 0; check < 2; check++) {
        int rc = run_with(c, k, a, check, out, sizeof(out));
        cr_assert_eq(rc, 1, "%s: exit %d:\n%s", check ? "--check-config" : "start", rc, out);
        cr_assert(strstr(out, why), "%s: no '%s' in:\n%s", check ? "--check-config" : "start", why,
                  out);
    }
}

Test(admin_tls, bad_files_refuse_to_start_and_fail_check_config)
{
    char missing[160], empty[160], out[8192], want[400];
    snprintf(missing, sizeof(missing), "%s/missing.crt", dir);
    snprintf(empty, sizeof(empty), "%s/empty.pem", dir);
    FILE *f = fopen(empty, "w");
    cr_assert_not_null(f);
    fputs("not a certificate\n", f);
    fclose(f);
    snprintf(want, sizeof(want), "admin: tls_cert %s: No such file or directory", missing);
    refused(missing, key, NULL, want);
    snprintf(want, sizeof(want), "admin: tls_key %s is not the key of tls_cert %s", ckey, cert);
    refused(cert, ckey, NULL, want);
    snprintf(want, sizeof(want), "admin: tls_client_ca %s: no PEM certificate", empty);
    refused(cert, key, empty, want);
    snprintf(want, sizeof(want), "admin: tls_cert %s: no PEM certificate", empty);
    refused(empty, key, NULL, want);
    cr_assert_eq(run_with(cert, key, ca, true, out, sizeof(out)), 0, "%s", out);
    cr_assert(strstr(out, "configuration OK"), "%s", out);
}

/* ---- a reload reads the files again ------------------------------------- */

static void copy_file(const char *from, const char *to)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* The broker with the API on HTTPS from the files live.crt and live.key
 * (copies of `c`, `k`) and client certificates of live-ca.crt (a copy of
 * `a`) unless a is NULL; the admin port. */
static int start_live(const char *c, const char *k, const char *a)
{
    static char live_cert[160], live_key[160], live_ca[160];
    snprintf(live_cert, sizeof(live_cert), "%s/live.crt", dir);
    snprintf(live_key, sizeof(live_key), "%s/live.key", dir);
    snprintf(live_ca, sizeof(live_ca), "%s/live-ca.crt", dir);
    copy_file(c, live_cert);
    copy_file(k, live_key);
    if (a)
        copy_file(a, live_ca);
    return start_with(live_cert, live_key, a ? live_ca : NULL);
}

static void live_set(const char *name, const char *from)
{
    char to[160];
    snprintf(to, sizeof(to), "%s/%s", dir, name);
    copy_file(from, to);
}

/* The subject of the certificate a new connection is served (a request
 * with the token answered 200 on it). */
static const char *served_subject(int port)
{
    static char subject[SUBJECT_MAX];
    char body[4096];
    subject[0] = '\0';
    cr_assert_eq(https_req(port, "GET", ca, NULL, NULL, "/api/v1/tenants", "admin-token", body,
                           sizeof(body), subject),
                 200, "%s", body);
    return subject;
}

/* POST /api/v1/reload over HTTPS: the status, the answer into body. */
static int post_reload(int port, const char *c_cert, const char *c_key, char *body, size_t cap)
{
    return https_req(port, "POST", ca, c_cert, c_key, "/api/v1/reload", "admin-token", body, cap,
                     NULL);
}

/* A reload (POST /api/v1/reload, SIGHUP) reads tls_cert and tls_key
 * again: new connections get the new certificate. A file that does not
 * load refuses the reload (422 naming it) and the one served stays. */
Test(admin_tls, reload_serves_the_new_certificate_to_new_connections)
{
    int port = start_live(cert, key, NULL);
    char body[8192];
    cr_assert(strstr(served_subject(port), "/CN=server"), "%s", served_subject(port));
    live_set("live.crt", rcert);
    live_set("live.key", rkey);
    cr_assert_eq(post_reload(port, NULL, NULL, body, sizeof(body)), 200, "%s", body);
    cr_assert(strstr(served_subject(port), "/CN=renewed"), "%s", served_subject(port));

    /* A certificate without its key: refused, nothing changed. */
    live_set("live.crt", cert);
    cr_assert_eq(post_reload(port, NULL, NULL, body, sizeof(body)), 422, "%s", body);
    cr_assert(strstr(body, "is not the key of tls_cert"), "%s", body);
    cr_assert(strstr(body, "\"changed\":[]"), "%s", body);
    cr_assert(strstr(served_subject(port), "/CN=renewed"), "%s", served_subject(port));
    /* Not a certificate at all. */
    char live[160];
    snprintf(live, sizeof(live), "%s/live.crt", dir);
    FILE *f = fopen(live, "w");
    cr_assert_not_null(f);
    fputs("not a certificate\n", f);
    fclose(f);
    cr_assert_eq(post_reload(port, NULL, NULL, body, sizeof(body)), 422, "%s", body);
    cr_assert(strstr(body, "no PEM certificate"), "%s", body);
    cr_assert(strstr(served_subject(port), "/CN=renewed"), "%s", served_subject(port));

    /* SIGHUP's reload reads them too. */
    live_set("live.crt", cert);
    live_set("live.key", key);
    int before = broker_log_count(&b, "reload: no change to put in force");
    cr_assert_eq(kill(b.pid, SIGHUP), 0);
    broker_wait_log(&b, "reload: no change to put in force", before + 1);
    cr_assert(strstr(served_subject(port), "/CN=server"), "%s", served_subject(port));
    broker_stop(&b);
}

/* tls_client_ca is read again too: after the CA file names the other CA,
 * a certificate of the other CA is taken and one of the first refused. */
Test(admin_tls, reload_reads_the_client_ca_again)
{
    int port = start_live(cert, key, ca);
    char body[8192];
    cr_assert_eq(post_reload(port, ccert, ckey, body, sizeof(body)), 200, "%s", body);
    cr_assert_eq(
        https_get(port, ca, scert, skey, "/api/v1/tenants", "admin-token", body, sizeof(body)), 403,
        "%s", body);
    live_set("live-ca.crt", other_ca);
    cr_assert_eq(post_reload(port, ccert, ckey, body, sizeof(body)), 200, "%s", body);
    cr_assert_eq(
        https_get(port, ca, scert, skey, "/api/v1/tenants", "admin-token", body, sizeof(body)), 200,
        "%s", body);
    cr_assert_eq(
        https_get(port, ca, ccert, ckey, "/api/v1/tenants", "admin-token", body, sizeof(body)), 403,
        "%s", body);
    cr_assert(strstr(body, "the client certificate is not trusted"), "%s", body);
    broker_stop(&b);
}
