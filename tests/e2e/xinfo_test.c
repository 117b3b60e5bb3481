/* E2E: what the transport tells the auth plugin (ABI 4) and certificates
 * by server name. The xinfo plugin records each CONNECT's transport view;
 * the test compares it with what it knows: transport "tls" with the
 * client certificate's subject, CN, SANs and SHA-256 (as `openssl x509
 * -fingerprint -sha256` prints it), "tcp" on a plain listener, a PROXY v2
 * header's TLS TLVs marked as the proxy's. A wolfSSL client asking for a
 * server name checks that the listener shows that name's certificate, and
 * that sni.HOST.tenant keeps its clients in that tenant. auth_file admits
 * a client by its certificate's fingerprint or subject, and refuses one
 * that matches no line. With 4 shards most clients move to their home
 * shard after authentication, their TLS state with them.
 *
 * Certificates are made by the openssl CLI (nothing with a private key is
 * committed). ringmqd only. */
#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

static struct broker b;
static char dir[64], record[128], set_record[300], set_plugin[300];
static char set_cert[200], set_key[200], set_ca[200], set_acme_cert[260], set_acme_key[260];

/* CA; server (localhost); acme.example.test's own server certificate;
 * client dev1 with SANs, dev2, dev3 (of the same CA). P-256 keys. */
static const char make_certs[] =
    "set -e; cd %s; k='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes'\n"
    "openssl req -x509 $k -keyout ca.key -out ca.crt -days 2 -subj /CN=xinfo-ca\n"
    "sign() { openssl req $k -keyout $1.key -out $1.csr -subj $2;"
    " printf \"$3\\n\" > $1.ext;"
    " openssl x509 -req -in $1.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out $1.crt"
    " -days 2 -extfile $1.ext; }\n"
    "sign server /CN=localhost 'subjectAltName=DNS:localhost,IP:127.0.0.1'\n"
    "sign acme /CN=acme.example.test 'subjectAltName=DNS:acme.example.test'\n"
    "sign dev1 /O=Acme/CN=dev1"
    " 'subjectAltName=DNS:dev1.example.test,email:dev1@example.test,URI:urn:dev:1'\n"
    "sign dev2 /O=Acme/CN=dev2 'keyUsage=digitalSignature'\n"
    "sign dev3 /O=Acme/CN=dev3 'keyUsage=digitalSignature'\n";

static char *path_of(const char *name)
{
    static char p[8][128];
    static int i;
    char *out = p[i++ % 8];
    snprintf(out, sizeof(p[0]), "%s/%s", dir, name);
    return out;
}

static void suite_init(void)
{
    const char *which = getenv("RINGMQ_E2E_BROKER");
    if (which && !strcmp(which, "mosquitto"))
        cr_skip_test("ringmqd only");
    snprintf(dir, sizeof(dir), "/tmp/ringmq-xinfo-XXXXXX");
    cr_assert(mkdtemp(dir));
    char cmd[2048], full[2200];
    snprintf(cmd, sizeof(cmd), make_certs, dir);
    snprintf(full, sizeof(full), "( %s ) >%s/openssl.log 2>&1", cmd, dir);
    cr_assert(system(full) == 0, "openssl could not make the test certificates (see %s)", dir);
    snprintf(set_cert, sizeof(set_cert), "listener.default.tls_cert=%s/server.crt", dir);
    snprintf(set_key, sizeof(set_key), "listener.default.tls_key=%s/server.key", dir);
    snprintf(set_ca, sizeof(set_ca), "listener.default.tls_ca=%s/ca.crt", dir);
    snprintf(set_acme_cert, sizeof(set_acme_cert),
             "listener.default.sni.acme.example.test.cert=%s/acme.crt", dir);
    snprintf(set_acme_key, sizeof(set_acme_key),
             "listener.default.sni.acme.example.test.key=%s/acme.key", dir);
    snprintf(record, sizeof(record), "%s/record", dir);
    snprintf(set_record, sizeof(set_record), "plugin.xinfo.record=%s", record);
    snprintf(set_plugin, sizeof(set_plugin), "plugin.xinfo.path=%s", getenv("RINGMQ_XINFO_SO"));
}

static void suite_fini(void)
{
    e2e_fini();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (dir[0] && system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

TestSuite(xinfo, .init = suite_init, .fini = suite_fini, .timeout = 60);

#define TLS_LISTENER                                                                               \
    "listener.default.transport=tls", set_cert, set_key, set_ca,                                   \
        "listener.default.tls_verify_client=optional"

/* The line the plugin recorded for client `id` (static). */
static const char *recorded(const char *id)
{
    static char line[4096];
    char want[128];
    snprintf(want, sizeof(want), "id=%s ", id);
    FILE *f = fopen(record, "r");
    cr_assert(f, "nothing recorded for %s", id);
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        found = !strncmp(line, want, strlen(want));
    fclose(f);
    cr_assert(found, "nothing recorded for %s", id);
    return line;
}

/* Field `key` of a recorded line (values hold no blanks). */
static const char *field(const char *line, const char *key)
{
    static char v[2048];
    char k[64];
    snprintf(k, sizeof(k), " %s=", key);
    const char *at = strstr(line, k);
    cr_assert(at, "no %s in %s", key, line);
    at += strlen(k);
    size_t n = strcspn(at, " \n");
    cr_assert(n < sizeof(v));
    memcpy(v, at, n);
    v[n] = 0;
    return v;
}

/* `openssl x509 -fingerprint -sha256` of a certificate, as 64 lowercase
 * hex digits. */
static const char *fingerprint(const char *crt)
{
    static char fp[65];
    char cmd[300], out[256] = "";
    snprintf(cmd, sizeof(cmd), "openssl x509 -in %s -noout -fingerprint -sha256", crt);
    FILE *p = popen(cmd, "r");
    cr_assert(p && fgets(out, sizeof(out), p));
    pclose(p);
    const char *eq = strchr(out, '=');
    cr_assert(eq, "openssl said: %s", out);
    size_t n = 0;
    for (const char *c = eq + 1; *c && *c != '\n' && n < 64; c++)
        if (*c != ':')
            fp[n++] = (char)tolower((unsigned char)*c);
    fp[n] = 0;
    cr_assert_eq(n, 64);
    return fp;
}

static struct client *tls_client(const char *id, const char *user, const char *cert)
{
    struct client_opts o = {.id = id, .clean = true, .tls_ca = path_of("ca.crt"), .username = user};
    char crt[128], key[128];
    if (cert) {
        snprintf(crt, sizeof(crt), "%s/%s.crt", dir, cert);
        snprintf(key, sizeof(key), "%s/%s.key", dir, cert);
        o.tls_cert = crt;
        o.tls_key = key;
    }
    return client_connect(&b, &o);
}

Test(xinfo, tls_client_certificate_reaches_the_auth_plugin)
{
    broker_start(&b, TLS_LISTENER, set_plugin, set_record, NULL);
    for (int i = 0; i < 6; i++) {
        char id[32];
        snprintf(id, sizeof(id), "dev1-%d", i);
        struct client *c = tls_client(id, NULL, "dev1");
        const char *l = recorded(id);
        cr_assert_str_eq(field(l, "transport"), "tls");
        cr_assert(!strncmp(field(l, "version"), "TLSv1.", 6), "%s", l);
        cr_assert_str_neq(field(l, "cipher"), "-");
        cr_assert_str_eq(field(l, "proxy"), "0");
        cr_assert_str_eq(field(l, "verified"), "1");
        cr_assert_str_eq(field(l, "subject"), "/O=Acme/CN=dev1");
        cr_assert_str_eq(field(l, "cn"), "dev1");
        cr_assert_str_eq(field(l, "sha256"), fingerprint(path_of("dev1.crt")));
        /* As a set: wolfSSL does not keep the certificate's order. */
        char san[512];
        snprintf(san, sizeof(san), ",%s,", field(l, "san"));
        cr_assert_eq(strlen(san),
                     strlen(",DNS:dev1.example.test,email:dev1@example.test,URI:urn:dev:1,"));
        cr_assert(strstr(san, ",DNS:dev1.example.test,") &&
                      strstr(san, ",email:dev1@example.test,") && strstr(san, ",URI:urn:dev:1,"),
                  "%s", san);
        /* It works after the move to its home shard. */
        cr_assert_eq(client_subscribe(c, "x/t", 1), 1);
        client_publish(c, "x/t", "hi", 2, 1, false);
        client_expect_message(c, "x/t", "hi", NULL, NULL);
        client_disconnect(c);
    }
    /* Without a certificate: TLS, nothing verified. */
    struct client *c = tls_client("nocert", NULL, NULL);
    const char *l = recorded("nocert");
    cr_assert_str_eq(field(l, "verified"), "0");
    cr_assert_str_eq(field(l, "subject"), "-");
    cr_assert_str_eq(field(l, "sha256"), "-");
    client_disconnect(c);
    broker_stop(&b);
}

Test(xinfo, plain_listener_says_tcp)
{
    broker_start(&b, set_plugin, set_record, NULL);
    struct client_opts o = {.id = "plain", .clean = true};
    struct client *c = client_connect(&b, &o);
    const char *l = recorded("plain");
    cr_assert_str_eq(field(l, "transport"), "tcp");
    cr_assert_str_eq(field(l, "version"), "-");
    cr_assert_str_eq(field(l, "verified"), "0");
    client_disconnect(c);
    broker_stop(&b);
}

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A PROXY v2 header from a balancer that ended the client's TLS: INET
 * addresses, AUTHORITY, SSL (client SSL + certificate, verify `verify`,
 * version and CN sub-TLVs), then a 3.1.1 CONNECT; the CONNACK's code. */
static int proxied_connect(const char *id, uint32_t verify)
{
    uint8_t blk[256] = {198, 51, 100, 7, 127, 0, 0, 1, 0x9c, 0x40, 0x07, 0x5b};
    size_t n = 12;
    memcpy(blk + n,
           "\x02\x00\x11"
           "acme.example.test",
           20),
        n += 20;
    uint8_t ssl[64] = {0x20,
                       0,
                       0,
                       0x07,
                       (uint8_t)(verify >> 24),
                       (uint8_t)(verify >> 16),
                       (uint8_t)(verify >> 8),
                       (uint8_t)verify};
    size_t s = 8;
    memcpy(ssl + s, "\x21\x00\x07TLSv1.3", 10), s += 10;
    memcpy(ssl + s, "\x22\x00\x0bproxied-dev", 14), s += 14;
    ssl[1] = (uint8_t)((s - 3) >> 8);
    ssl[2] = (uint8_t)(s - 3);
    memcpy(blk + n, ssl, s), n += s;
    uint8_t buf[1024];
    memcpy(buf, sig, 12);
    buf[12] = 0x21;
    buf[13] = 0x11;
    buf[14] = (uint8_t)(n >> 8);
    buf[15] = (uint8_t)n;
    memcpy(buf + 16, blk, n);
    static struct pkt p;
    struct raw_connect o = {.flags = -1, .clean = true, .id = id, .keepalive = 60};
    pkt_connect(&p, &o);
    size_t len = 16 + n + pkt_encode(&p, buf + 16 + n);
    int fd = raw_open(&b);
    cr_assert(raw_send(fd, buf, len) == 0);
    uint8_t in[16];
    int k = raw_read_packet(fd, in, sizeof(in), 5000);
    close(fd);
    cr_assert(k >= 4 && in[0] == 0x20, "%s: no CONNACK", id);
    return in[3];
}

Test(xinfo, proxy_v2_tls_tlvs_reach_the_auth_plugin_marked_as_the_proxys)
{
    broker_start(&b, set_plugin, set_record, "listener.default.proxy_protocol=v2",
                 "listener.default.proxy_trusted=127.0.0.1", NULL);
    for (int i = 0; i < 4; i++) {
        char id[32];
        snprintf(id, sizeof(id), "pp-%d", i);
        cr_assert_eq(proxied_connect(id, 0), 0);
        const char *l = recorded(id);
        cr_assert_str_eq(field(l, "transport"), "tcp");
        cr_assert_str_eq(field(l, "proxy"), "1");
        cr_assert_str_eq(field(l, "version"), "TLSv1.3");
        cr_assert_str_eq(field(l, "sni"), "acme.example.test");
        cr_assert_str_eq(field(l, "verified"), "1");
        cr_assert_str_eq(field(l, "subject"), "proxied-dev");
        cr_assert_str_eq(field(l, "cn"), "proxied-dev");
        cr_assert_str_eq(field(l, "sha256"), "-");
    }
    /* The proxy says the certificate did not verify: no identity. */
    cr_assert_eq(proxied_connect("pp-bad", 1), 0);
    const char *l = recorded("pp-bad");
    cr_assert_str_eq(field(l, "verified"), "0");
    cr_assert_str_eq(field(l, "cn"), "-");
    broker_stop(&b);
}

/* A wolfSSL client asking for server name `sni` (NULL: none) that checks
 * the broker's certificate against the CA and the name `expect`: -1 when
 * that check fails, else the CONNACK code of a 3.1.1 CONNECT as `user`. */
static int sni_connect(const char *sni, const char *expect, const char *id, const char *user)
{
    wolfSSL_Init();
    WOLFSSL_CTX *cctx = wolfSSL_CTX_new(wolfTLS_client_method());
    cr_assert(cctx);
    cr_assert(wolfSSL_CTX_load_verify_locations(cctx, path_of("ca.crt"), NULL) == WOLFSSL_SUCCESS);
    wolfSSL_CTX_set_verify(cctx, WOLFSSL_VERIFY_PEER, NULL);
    WOLFSSL *ssl = wolfSSL_new(cctx);
    int fd = raw_open(&b);
    wolfSSL_set_fd(ssl, fd);
    if (sni)
        cr_assert(wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, sni, (unsigned short)strlen(sni)) ==
                  WOLFSSL_SUCCESS);
    wolfSSL_check_domain_name(ssl, expect);
    int rc = -1;
    if (wolfSSL_connect(ssl) == WOLFSSL_SUCCESS) {
        static struct pkt p;
        struct raw_connect o = {
            .flags = -1, .clean = true, .id = id, .keepalive = 60, .username = user};
        pkt_connect(&p, &o);
        uint8_t out[256], in[4];
        int n = (int)pkt_encode(&p, out);
        cr_assert_eq(wolfSSL_write(ssl, out, n), n);
        int got = 0;
        while (got < 4) {
            int k = wolfSSL_read(ssl, in + got, 4 - got);
            cr_assert(k > 0, "%s: no CONNACK", id);
            got += k;
        }
        cr_assert_eq(in[0], 0x20);
        rc = in[3];
    }
    wolfSSL_free(ssl);
    close(fd);
    wolfSSL_CTX_free(cctx);
    wolfSSL_Cleanup();
    return rc;
}

Test(xinfo, sni_selects_the_certificate_and_reaches_the_plugin)
{
    broker_start(&b, TLS_LISTENER, set_acme_cert, set_acme_key, set_plugin, set_record, NULL);
    cr_assert_eq(sni_connect("acme.example.test", "acme.example.test", "sni-acme", NULL), 0);
    cr_assert_str_eq(field(recorded("sni-acme"), "sni"), "acme.example.test");
    /* Any case: DNS names are not case-sensitive. */
    cr_assert_eq(sni_connect("ACME.example.test", "acme.example.test", "sni-case", NULL), 0);
    /* Another name, or none: the default certificate (localhost). */
    cr_assert_eq(sni_connect("other.example.test", "acme.example.test", "sni-x", NULL), -1);
    cr_assert_eq(sni_connect("other.example.test", "localhost", "sni-other", NULL), 0);
    cr_assert_str_eq(field(recorded("sni-other"), "sni"), "other.example.test");
    cr_assert_eq(sni_connect(NULL, "localhost", "sni-none", NULL), 0);
    cr_assert_str_eq(field(recorded("sni-none"), "sni"), "-");
    broker_stop(&b);
}

Test(xinfo, sni_tenant_binding_keeps_clients_in_that_tenant)
{
    broker_start(&b, TLS_LISTENER, set_acme_cert, set_acme_key,
                 "listener.default.sni.acme.example.test.tenant=acme", set_plugin, set_record,
                 NULL);
    /* The plugin puts each client in the tenant its user name names. */
    for (int i = 0; i < 4; i++) {
        char id[32];
        snprintf(id, sizeof(id), "bind-%d", i);
        cr_assert_eq(sni_connect("acme.example.test", "acme.example.test", id, "acme"), 0);
        cr_assert_eq(sni_connect("acme.example.test", "acme.example.test", id, "globex"), 5,
                     "a client of acme.example.test landed in globex");
        cr_assert_eq(sni_connect("acme.example.test", "acme.example.test", id, NULL), 5,
                     "a client of acme.example.test landed in global");
        /* Not bound without that name. */
        cr_assert_eq(sni_connect("localhost", "localhost", id, "globex"), 0);
    }
    broker_stop(&b);
}

Test(xinfo, sni_tenant_binding_without_an_auth_plugin_is_the_tenant)
{
    broker_start(&b, TLS_LISTENER, set_acme_cert, set_acme_key,
                 "listener.default.sni.acme.example.test.tenant=acme",
                 "listener.default.allow_anonymous=true", NULL);
    cr_assert_eq(sni_connect("acme.example.test", "acme.example.test", "nb-1", NULL), 0);
    broker_stop(&b);
}

/* CONNACK code of a TLS client `id` showing certificate `cert` (NULL:
 * none) with user name `user` (NULL: none). */
static int cert_connect_rc(const char *id, const char *cert, const char *user)
{
    struct client_opts o = {.id = id, .clean = true, .tls_ca = path_of("ca.crt"), .username = user};
    char crt[128], key[128];
    if (cert) {
        snprintf(crt, sizeof(crt), "%s/%s.crt", dir, cert);
        snprintf(key, sizeof(key), "%s/%s.key", dir, cert);
        o.tls_cert = crt;
        o.tls_key = key;
    }
    struct client *c;
    int rc = client_connect_rc(&b, &o, &c);
    if (rc == 0)
        client_disconnect(c);
    else
        client_destroy(c);
    return rc;
}

Test(xinfo, auth_file_admits_a_certificate_by_fingerprint_or_subject)
{
    /* dev1 by its fingerprint as openssl prints it (upper case, colons),
     * dev2 by its subject; dev3 is named nowhere. */
    char passwd[160], set_pw[300], fp[128] = "";
    const char *hexfp = fingerprint(path_of("dev1.crt"));
    for (int i = 0; i < 32; i++)
        snprintf(fp + strlen(fp), sizeof(fp) - strlen(fp), "%s%c%c", i ? ":" : "",
                 toupper((unsigned char)hexfp[2 * i]), toupper((unsigned char)hexfp[2 * i + 1]));
    snprintf(passwd, sizeof(passwd), "%s/passwd", dir);
    FILE *f = fopen(passwd, "w");
    cr_assert(f);
    fprintf(f,
            "# certificate identities\ndev1:acme:u-dev1:$x509-sha256$%s\n"
            "dev2:acme:u-dev2:$x509-subject$/O=Acme/CN=dev2\n",
            fp);
    fclose(f);
    snprintf(set_pw, sizeof(set_pw), "plugin.auth.password_file=%s", passwd);
    static char set_so[300];
    snprintf(set_so, sizeof(set_so), "plugin.auth.path=%s", getenv("RINGMQ_AUTH_FILE"));
    broker_start(&b, TLS_LISTENER, set_so, set_pw, NULL);
    for (int i = 0; i < 4; i++) {
        char id[32];
        snprintf(id, sizeof(id), "af-%d", i);
        cr_assert_eq(cert_connect_rc(id, "dev1", NULL), 0, "dev1 by fingerprint");
        cr_assert_eq(cert_connect_rc(id, "dev1", "dev1"), 0, "dev1 naming itself");
        cr_assert_eq(cert_connect_rc(id, "dev2", NULL), 0, "dev2 by subject");
        cr_assert_eq(cert_connect_rc(id, "dev3", NULL), 4, "a certificate no line names");
        cr_assert_eq(cert_connect_rc(id, NULL, NULL), 4, "no certificate");
        /* A certificate is no password for another line's user. */
        cr_assert_eq(cert_connect_rc(id, "dev1", "dev2"), 4, "dev1's certificate as dev2");
        cr_assert_eq(cert_connect_rc(id, NULL, "dev1"), 4, "dev1's name without its certificate");
    }
    broker_stop(&b);
}
