/* E2E: MQTT over TLS (transport = tls) with libmosquitto as the client:
 * QoS 0/1/2 round trips, a 1 MiB payload (many records), mutual TLS, a
 * retained message and a persistent session across reconnects, clients
 * whose CONNECT lands on another shard than their home (the connection
 * moves there with its TLS state), and bad input, each closing only its
 * own connection: plain MQTT on the TLS port, a ClientHello on a plain
 * port, TLS 1.1, no / wrong-CA / expired client certificate, a stalled
 * handshake, an unknown ALPN protocol, and bad certificate files. After
 * the handshake the broker runs the records itself (net/tls_record.c):
 * every AEAD suite of TLS 1.2 and 1.3, a CBC suite left to wolfSSL, and
 * from a wolfSSL client a close_notify, a changed record and a KeyUpdate.
 *
 * Certificates are made by the openssl CLI in the suite's own directory
 * (certs.h: nothing with a private key is committed). ringmqd only. */
#include "certs.h"
#include "harness.h"
#include "tls_openssl.h"

#include <criterion/criterion.h>
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
static char ca[128], cert[128], key[128], ccert[128], ckey[128];
static char other_cert[128], other_key[128], exp_cert[128], exp_key[128];
static char future_cert[128], future_key[128], revoked_cert[128], revoked_key[128];
static char crl[128];
static char set_cert[200], set_key[200], set_ca[200];

/* CA; server certificates for localhost / 127.0.0.1 (CN server, and a
 * second, CN server2, for reloads); a client certificate of that CA; one
 * of another CA; an expired one of the CA; one not valid before tomorrow,
 * and a revoked one with the CA's CRL (`openssl ca`, which can set the
 * start date and keeps the list of revoked ones). P-256 keys. */
static const char make_certs[] =
    "ca_new ca ringmq-test-ca\n"
    "ca_new oca other-ca\n"
    "sign server ca 2 '-extfile san.ext'\n"
    "sign client ca 2 ''\n"
    "sign stranger oca 2 ''\n"
    "sign expired ca -1 ''\n"
    "sign server2 ca 2 '-extfile san.ext'\n"
    "printf '[ca]\\ndefault_ca=c\\n[c]\\ndatabase=index.txt\\nnew_certs_dir=.\\n"
    "serial=ca-db.srl\\ndefault_md=sha256\\npolicy=p\\n[p]\\ncommonName=supplied\\n' >ca.cnf\n"
    ": >index.txt; echo 1000 >ca-db.srl\n"
    "ca() { openssl req $k -keyout $1.key -out $1.csr -subj /CN=$1;"
    " openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in $1.csr -out $1.crt"
    " -notext -startdate $(date -u -d \"$2\" +%Y%m%d%H%M%SZ)"
    " -enddate $(date -u -d '+2 days' +%Y%m%d%H%M%SZ); }\n"
    "ca future '+1 day'\n"
    "ca revoked '-1 hour'\n"
    "openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -revoke revoked.crt\n"
    "openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -gencrl -crldays 2"
    " -out ca.crl\n";

static void certs_make_all(void)
{
    certs_make(dir, sizeof(dir), "tls", make_certs);
#define P(var, name) snprintf(var, sizeof(var), "%s/%s", dir, name)
    P(ca, "ca.crt");
    P(cert, "server.crt");
    P(key, "server.key");
    P(ccert, "client.crt");
    P(ckey, "client.key");
    P(other_cert, "stranger.crt");
    P(other_key, "stranger.key");
    P(exp_cert, "expired.crt");
    P(exp_key, "expired.key");
    P(future_cert, "future.crt");
    P(future_key, "future.key");
    P(revoked_cert, "revoked.crt");
    P(revoked_key, "revoked.key");
    P(crl, "ca.crl");
#undef P
    snprintf(set_cert, sizeof(set_cert), "listener.default.tls_cert=%s", cert);
    snprintf(set_key, sizeof(set_key), "listener.default.tls_key=%s", key);
    snprintf(set_ca, sizeof(set_ca), "listener.default.tls_ca=%s", ca);
}

static void suite_init(void)
{
    const char *which = getenv("RINGMQ_E2E_BROKER");
    if (which && !strcmp(which, "mosquitto"))
        cr_skip_test("ringmqd only");
    certs_make_all();
}

static void suite_fini(void)
{
    e2e_fini();
    certs_remove(dir);
}

TestSuite(tls, .init = suite_init, .fini = suite_fini, .timeout = 60);

#define TLS_LISTENER "listener.default.transport=tls", set_cert, set_key

/* The debug line of a connection whose records the broker runs itself. */
#define TAKEN_OVER ": records run here"

static struct client_opts tls_opts(const char *id, bool clean)
{
    return (struct client_opts){.id = id, .clean = clean, .tls_ca = ca};
}

static struct client *tls_open(const char *id, bool clean)
{
    struct client_opts o = tls_opts(id, clean);
    return client_connect(&b, &o);
}

/* A TLS client of the same broker that must keep working. */
static struct client *good_client(void)
{
    struct client *good = tls_open("good", true);
    cr_assert(client_subscribe(good, "ok/t", 1) == 1);
    return good;
}

static void good_still_works(struct client *good)
{
    client_publish(good, "ok/t", "still", 5, 1, false);
    client_expect_message(good, "ok/t", "still", NULL, NULL);
    client_disconnect(good);
}

Test(tls, qos012_round_trip)
{
    broker_start(&b, TLS_LISTENER, NULL);
    struct client *sub = tls_open("sub", true);
    struct client *pub = tls_open("pub", true);
    for (int q = 0; q <= 2; q++) {
        char topic[16];
        snprintf(topic, sizeof(topic), "t/%d", q);
        cr_assert_eq(client_subscribe(sub, topic, q), q);
        client_publish(pub, topic, "hello", 5, q, false);
        int got_qos;
        client_expect_message(sub, topic, "hello", &got_qos, NULL);
        cr_assert_eq(got_qos, q);
    }
    client_disconnect(pub);
    client_disconnect(sub);
    broker_stop(&b);
}

Test(tls, payload_of_1mib_in_many_records)
{
    broker_start(&b, TLS_LISTENER, "limits.max_packet_size=2000000", NULL);
    struct client *sub = tls_open("big-sub", true);
    struct client *pub = tls_open("big-pub", true);
    cr_assert_eq(client_subscribe(sub, "big", 1), 1);
    size_t n = 1u << 20;
    uint8_t *payload = malloc(n);
    cr_assert(payload);
    for (size_t i = 0; i < n; i++)
        payload[i] = (uint8_t)(i * 7 + (i >> 10));
    client_publish(pub, "big", payload, (int)n, 1, false);
    struct msg m;
    cr_assert_eq(client_wait_message(sub, &m, E2E_WAIT_MS), 0);
    cr_assert_eq(m.len, (int)n);
    cr_assert(memcmp(m.payload, payload, n) == 0, "the payload came back changed");
    msg_free(&m);
    free(payload);
    client_disconnect(pub);
    client_disconnect(sub);
    broker_stop(&b);
}

Test(tls, mutual_tls_required_with_a_good_certificate)
{
    broker_start(&b, TLS_LISTENER, set_ca, "listener.default.tls_verify_client=required", NULL);
    struct client_opts o = tls_opts("mtls", true);
    o.tls_cert = ccert;
    o.tls_key = ckey;
    struct client *c = client_connect(&b, &o);
    cr_assert_eq(client_subscribe(c, "m/t", 2), 2);
    client_publish(c, "m/t", "mutual", 6, 2, false);
    client_expect_message(c, "m/t", "mutual", NULL, NULL);
    client_disconnect(c);
    broker_stop(&b);
}

Test(tls, retained_and_persistent_session_across_reconnect)
{
    broker_start(&b, TLS_LISTENER, NULL);
    struct client *c = tls_open("keeper", false);
    cr_assert_eq(client_subscribe(c, "q/#", 1), 1);
    client_disconnect(c);
    struct client *pub = tls_open("pub", true);
    client_publish(pub, "q/1", "queued", 6, 1, false);
    client_publish(pub, "r/1", "kept", 4, 1, true);
    client_disconnect(pub);
    c = tls_open("keeper", false);
    cr_assert(client_session_present(c), "the session outlived the TLS connection");
    client_expect_message(c, "q/1", "queued", NULL, NULL);
    cr_assert_eq(client_subscribe(c, "r/1", 1), 1);
    bool retain = false;
    client_expect_message(c, "r/1", "kept", NULL, &retain);
    cr_assert(retain);
    client_disconnect(c);
    broker_stop(&b);
}

/* With 4 shards most of these CONNECTs land on a shard that is not the
 * client's home: the connection moves there with its TLS session and
 * must go on decrypting and encrypting there. */
Test(tls, clients_move_to_their_home_shard_with_their_tls_state)
{
    enum { N = 16 };
    broker_start(&b, TLS_LISTENER, NULL);
    struct client *c[N];
    for (int i = 0; i < N; i++) {
        char id[16], topic[16];
        snprintf(id, sizeof(id), "mover-%d", i);
        snprintf(topic, sizeof(topic), "m/%d", i);
        c[i] = tls_open(id, true);
        cr_assert_eq(client_subscribe(c[i], topic, 1), 1);
    }
    struct client *pub = tls_open("pub", true);
    for (int i = 0; i < N; i++) {
        char topic[16], body[16];
        snprintf(topic, sizeof(topic), "m/%d", i);
        snprintf(body, sizeof(body), "to %d", i);
        client_publish(pub, topic, body, (int)strlen(body), 1, false);
        client_expect_message(c[i], topic, body, NULL, NULL);
    }
    for (int i = 0; i < N; i++) {
        /* And the other way: each publishes from its home shard. */
        char topic[16];
        snprintf(topic, sizeof(topic), "m/%d", (i + 1) % N);
        client_publish(c[i], topic, "back", 4, 1, false);
        client_expect_message(c[(i + 1) % N], topic, "back", NULL, NULL);
    }
    client_disconnect(pub);
    for (int i = 0; i < N; i++)
        client_disconnect(c[i]);
    broker_stop(&b);
}

Test(tls, alpn_mqtt_accepted_and_another_refused)
{
    broker_start(&b, TLS_LISTENER, NULL);
    struct client_opts o = tls_opts("alpn", true);
    o.tls_alpn = "mqtt";
    struct client *c = client_connect(&b, &o);
    client_disconnect(c);
    o.tls_alpn = "h2";
    cr_assert_neq(client_connect_rc(&b, &o, &c), 0, "a client asking only for h2 was served");
    client_destroy(c);
    broker_stop(&b);
}

/* ---- an OpenSSL client: the certificate shown, resumption ----------------- */

/* A handshake on a new connection (TLS 1.2 or 1.3 at most: 12, 13; 0:
 * either), offering `session`, through CONNECT/CONNACK as `id` (by then a
 * TLS 1.3 ticket has arrived). The socket in *fd, closed by the caller
 * after ossl_close. */
static struct ossl_client *ossl_open(int *fd, int version, const char *sni, void *session,
                                     const char *id)
{
    *fd = raw_open(&b);
    struct timeval tv = {.tv_sec = E2E_WAIT_MS / 1000, .tv_usec = (E2E_WAIT_MS % 1000) * 1000};
    cr_assert_eq(setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    struct ossl_client *c = ossl_connect(*fd, ca, version, sni, session);
    cr_assert(c, "%s: no TLS handshake", id);
    struct pkt p;
    uint8_t out[256], in[4];
    struct raw_connect rc = {.flags = -1, .clean = true, .id = id, .keepalive = 60};
    pkt_connect(&p, &rc);
    size_t n = pkt_encode(&p, out);
    cr_assert(ossl_write(c, out, n));
    cr_assert(ossl_read(c, in, 4), "%s: no CONNACK", id);
    cr_assert(in[0] == 0x20 && in[3] == 0, "%s: not accepted", id);
    return c;
}

/* The subject of the certificate a new connection is shown. */
static void shown_subject(const char *sni, char *subject, size_t cap)
{
    int fd;
    struct ossl_client *c = ossl_open(&fd, 0, sni, NULL, "looker");
    cr_assert(ossl_subject(c, subject, cap));
    ossl_close(c);
    close(fd);
}

static void file_copy(const char *from, const char *to)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "cp -f '%s' '%s'", from, to);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* SIGHUP reloads the listener's certificates (issue 12): connections open
 * before it go on (publish and receive, on every shard); a new one is
 * shown the new certificate, by default and by server name; a file that
 * does not load is named in the log ("reload: FILE: reason"), the reload
 * is refused and the previous certificates stay. */
Test(tls, sighup_reloads_certificates_and_open_connections_stay)
{
    char live_crt[160], live_key[160], sni_crt[160], sni_key[160];
    snprintf(live_crt, sizeof(live_crt), "%s/live.crt", dir);
    snprintf(live_key, sizeof(live_key), "%s/live.key", dir);
    snprintf(sni_crt, sizeof(sni_crt), "%s/sni-live.crt", dir);
    snprintf(sni_key, sizeof(sni_key), "%s/sni-live.key", dir);
    file_copy(cert, live_crt);
    file_copy(key, live_key);
    file_copy(cert, sni_crt);
    file_copy(key, sni_key);
    char s_crt[200], s_key[200], n_crt[200], n_key[200];
    snprintf(s_crt, sizeof(s_crt), "listener.default.tls_cert=%s", live_crt);
    snprintf(s_key, sizeof(s_key), "listener.default.tls_key=%s", live_key);
    snprintf(n_crt, sizeof(n_crt), "listener.default.sni.named.test.cert=%s", sni_crt);
    snprintf(n_key, sizeof(n_key), "listener.default.sni.named.test.key=%s", sni_key);
    broker_start(&b, "listener.default.transport=tls", s_crt, s_key, n_crt, n_key, NULL);
    enum { N = 8 };
    struct client *c[N];
    for (int i = 0; i < N; i++) {
        char id[16], topic[16];
        snprintf(id, sizeof(id), "before-%d", i);
        snprintf(topic, sizeof(topic), "h/%d", i);
        c[i] = tls_open(id, true);
        cr_assert_eq(client_subscribe(c[i], topic, 1), 1);
    }
    char subject[256];
    shown_subject(NULL, subject, sizeof(subject));
    cr_assert_str_eq(subject, "/CN=server");

    /* New files in place, one SIGHUP: the new certificate for new clients. */
    char server2_crt[160], server2_key[160];
    snprintf(server2_crt, sizeof(server2_crt), "%s/server2.crt", dir);
    snprintf(server2_key, sizeof(server2_key), "%s/server2.key", dir);
    file_copy(server2_crt, live_crt);
    file_copy(server2_key, live_key);
    file_copy(server2_crt, sni_crt);
    file_copy(server2_key, sni_key);
    cr_assert_eq(kill(b.pid, SIGHUP), 0);
    broker_wait_log(&b, "listener default: TLS certificates reloaded", 1);
    shown_subject(NULL, subject, sizeof(subject));
    cr_assert_str_eq(subject, "/CN=server2", "the default certificate was not reloaded");
    shown_subject("named.test", subject, sizeof(subject));
    cr_assert_str_eq(subject, "/CN=server2", "the sni.named.test certificate was not reloaded");
    for (int i = 0; i < N; i++) {
        char topic[16];
        snprintf(topic, sizeof(topic), "h/%d", (i + 1) % N);
        client_publish(c[i], topic, "after", 5, 1, false);
        client_expect_message(c[(i + 1) % N], topic, "after", NULL, NULL);
    }

    /* A broken file: named in the log, the previous certificates stay. */
    FILE *f = fopen(live_crt, "w");
    cr_assert(f);
    fputs("not a certificate\n", f);
    fclose(f);
    cr_assert_eq(kill(b.pid, SIGHUP), 0);
    char named[256];
    snprintf(named, sizeof(named), "reload: %s: not a PEM certificate chain", live_crt);
    broker_wait_log(&b, named, 1);
    broker_wait_log(&b, "TLS files of the listeners do not load; nothing changed", 1);
    shown_subject(NULL, subject, sizeof(subject));
    cr_assert_str_eq(subject, "/CN=server2", "a bad file replaced the certificate");
    struct client *late = tls_open("late", true);
    cr_assert_eq(client_subscribe(late, "h/late", 1), 1);
    for (int i = 0; i < N; i++) {
        client_publish(c[i], "h/late", "still", 5, 1, false);
        client_expect_message(late, "h/late", "still", NULL, NULL);
    }
    client_disconnect(late);
    for (int i = 0; i < N; i++)
        client_disconnect(c[i]);
    broker_stop(&b);
}

/* Session resumption is on by default: a second connection offering the
 * first one's session (a ticket) resumes it (`on`), over TLS 1.3 and 1.2;
 * with the settings set1, set2 (NULL: none) it may be a full handshake. */
static void resumption(int version, bool on, const char *set1, const char *set2)
{
    broker_start(&b, TLS_LISTENER, "log.level=debug", set1, set2, NULL);
    int fd1, fd2;
    struct ossl_client *first = ossl_open(&fd1, version, NULL, NULL, "first");
    cr_assert(!ossl_resumed(first));
    void *session = ossl_session(first);
    cr_assert(session);
    ossl_close(first);
    close(fd1);
    struct ossl_client *second = ossl_open(&fd2, version, NULL, session, "second");
    if (on)
        cr_assert(ossl_resumed(second), "TLS 1.%d: the session was not resumed", version - 10);
    else
        cr_assert(!ossl_resumed(second), "TLS 1.%d: resumed with tls_resumption = false",
                  version - 10);
    ossl_close(second);
    close(fd2);
    ossl_session_free(session);
    /* The broker sees it too (and its records run here as well). */
    broker_wait_log(&b, TAKEN_OVER, 2);
    cr_assert_eq(broker_log_count(&b, " (resumed)" TAKEN_OVER), on ? 1 : 0);
    broker_stop(&b);
}

#define RESUMPTION_OFF "listener.default.tls_resumption=false"
#define CERTS_OPTIONAL "listener.default.tls_verify_client=optional"

Test(tls, tls13_session_is_resumed_by_default)
{
    resumption(13, true, NULL, NULL);
}

Test(tls, tls12_session_is_resumed_by_default)
{
    resumption(12, true, NULL, NULL);
}

Test(tls, tls13_no_resumption_with_tls_resumption_false)
{
    resumption(13, false, RESUMPTION_OFF, NULL);
}

Test(tls, tls12_no_resumption_with_tls_resumption_false)
{
    resumption(12, false, RESUMPTION_OFF, NULL);
}

/* A resumed TLS 1.2 session would come without the client's certificate
 * (Debian's wolfSSL keeps none in it), so the auth plugin would see none:
 * where client certificates are asked for, no session is resumed. */
Test(tls, tls12_no_resumption_where_client_certificates_are_asked_for)
{
    resumption(12, false, set_ca, CERTS_OPTIONAL);
}

Test(tls, tls13_no_resumption_where_client_certificates_are_asked_for)
{
    resumption(13, false, set_ca, CERTS_OPTIONAL);
}

/* ---- records that arrive together ------------------------------------------ */

/* wolfSSL as a raw TLS client: after the handshake its records are held
 * and sent in one send(), so that the broker reads CONNECT and SUBSCRIBE
 * (two records) in one receive. */
struct held {
    uint8_t buf[4096];
    size_t len;
};

static int held_send(WOLFSSL *ssl, char *data, int sz, void *ctx)
{
    (void)ssl;
    struct held *h = ctx;
    cr_assert_leq(h->len + (size_t)sz, sizeof(h->buf));
    memcpy(h->buf + h->len, data, (size_t)sz);
    h->len += (size_t)sz;
    return sz;
}

/* CONNECT as `id`, SUBSCRIBE, in two records sent at once; the SUBACK
 * must come without anything more from the client. */
static void connect_and_subscribe_at_once(WOLFSSL_CTX *cctx, const char *id)
{
    int fd = raw_open(&b);
    WOLFSSL *ssl = wolfSSL_new(cctx);
    cr_assert(ssl);
    wolfSSL_set_fd(ssl, fd);
    cr_assert_eq(wolfSSL_connect(ssl), WOLFSSL_SUCCESS, "handshake: %d", wolfSSL_get_error(ssl, 0));
    struct held h = {.len = 0};
    wolfSSL_SSLSetIOSend(ssl, held_send);
    wolfSSL_SetIOWriteCtx(ssl, &h);
    struct pkt p;
    uint8_t out[512];
    struct raw_connect rc = {.flags = -1, .clean = true, .id = id, .keepalive = 60};
    pkt_connect(&p, &rc);
    size_t n = pkt_encode(&p, out);
    cr_assert_eq(wolfSSL_write(ssl, out, (int)n), (int)n);
    pkt_subscribe(&p, 7, "held/t", 1);
    n = pkt_encode(&p, out);
    cr_assert_eq(wolfSSL_write(ssl, out, (int)n), (int)n);
    cr_assert_eq(raw_send(fd, h.buf, h.len), 0);
    uint8_t in[16];
    int got = 0;
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    while (got < 4 + 5 && poll(&pf, 1, E2E_WAIT_MS) > 0) {
        int k = wolfSSL_read(ssl, in + got, (int)sizeof(in) - got);
        if (k <= 0 && wolfSSL_get_error(ssl, k) != WOLFSSL_ERROR_WANT_READ)
            break;
        got += k > 0 ? k : 0;
    }
    cr_assert_eq(got, 4 + 5, "%s: got %d bytes, not CONNACK and SUBACK", id, got);
    cr_assert_eq(in[0], 0x20, "CONNACK");
    cr_assert_eq(in[3], 0, "accepted");
    cr_assert_eq(in[4], 0x90, "SUBACK without more input");
    wolfSSL_free(ssl);
    close(fd);
}

Test(tls, records_that_arrive_with_connect_are_read_after_the_move)
{
    broker_start(&b, TLS_LISTENER, NULL);
    cr_assert_eq(wolfSSL_Init(), WOLFSSL_SUCCESS);
    WOLFSSL_CTX *cctx = wolfSSL_CTX_new(wolfTLS_client_method());
    cr_assert(cctx);
    cr_assert_eq(wolfSSL_CTX_load_verify_locations(cctx, ca, NULL), WOLFSSL_SUCCESS);
    /* With 4 shards most of these land away from their home shard. */
    for (int i = 0; i < 8; i++) {
        char id[16];
        snprintf(id, sizeof(id), "held-%d", i);
        connect_and_subscribe_at_once(cctx, id);
    }
    wolfSSL_CTX_free(cctx);
    wolfSSL_Cleanup();
    broker_stop(&b);
}

/* ---- records run by the broker itself ------------------------------------- */

/* After the handshake the broker frees its WOLFSSL and runs the records
 * itself (net/tls_record.c) for every AEAD suite: each one, pinned on the
 * broker's side, carries a 1 MiB payload (many records, both ways) and
 * 100 small messages at QoS 1, and the debug log says the records were
 * taken over. */
struct aead_case {
    const char *version, *set, *suite;
};

static const struct aead_case aead_cases[] = {
    {"tlsv1.3", "listener.default.tls_ciphersuites=TLS13-AES128-GCM-SHA256",
     "TLSv1.3 TLS13-AES128-GCM-SHA256"},
    {"tlsv1.3", "listener.default.tls_ciphersuites=TLS13-AES256-GCM-SHA384",
     "TLSv1.3 TLS13-AES256-GCM-SHA384"},
    {"tlsv1.3", "listener.default.tls_ciphersuites=TLS13-CHACHA20-POLY1305-SHA256",
     "TLSv1.3 TLS13-CHACHA20-POLY1305-SHA256"},
    {"tlsv1.2", "listener.default.tls_ciphers=ECDHE-ECDSA-AES128-GCM-SHA256",
     "TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256"},
    {"tlsv1.2", "listener.default.tls_ciphers=ECDHE-ECDSA-AES256-GCM-SHA384",
     "TLSv1.2 ECDHE-ECDSA-AES256-GCM-SHA384"},
    {"tlsv1.2", "listener.default.tls_ciphers=ECDHE-ECDSA-CHACHA20-POLY1305",
     "TLSv1.2 ECDHE-ECDSA-CHACHA20-POLY1305"},
};

/* libmosquitto's tls_version is a minimum: TLS 1.2 is capped in an
 * SSL_CTX of the test's own (*ctx, freed by the caller after the client). */
static struct client *suite_client(const char *id, const char *version, void **ctx)
{
    struct client_opts o = tls_opts(id, true);
    o.tls_version = version;
    *ctx = NULL;
    if (!strcmp(version, "tlsv1.2"))
        cr_assert(*ctx = o.tls_ssl_ctx = tls12_only_ssl_ctx(ca));
    return client_connect(&b, &o);
}

static void big_and_small_round_trip(const char *version)
{
    void *sub_ctx, *pub_ctx;
    struct client *sub = suite_client("suite-sub", version, &sub_ctx);
    struct client *pub = suite_client("suite-pub", version, &pub_ctx);
    cr_assert_eq(client_subscribe(sub, "s/#", 1), 1);
    size_t n = 1u << 20;
    uint8_t *payload = malloc(n);
    cr_assert(payload);
    for (size_t i = 0; i < n; i++)
        payload[i] = (uint8_t)(i * 13 + (i >> 12));
    client_publish(pub, "s/big", payload, (int)n, 1, false);
    struct msg m;
    cr_assert_eq(client_wait_message(sub, &m, E2E_WAIT_MS), 0);
    cr_assert_eq(m.len, (int)n);
    cr_assert(memcmp(m.payload, payload, n) == 0, "the payload came back changed");
    msg_free(&m);
    free(payload);
    for (int i = 0; i < 100; i++) {
        char body[16];
        snprintf(body, sizeof(body), "small %d", i);
        client_publish(pub, "s/small", body, (int)strlen(body), 1, false);
        client_expect_message(sub, "s/small", body, NULL, NULL);
    }
    client_disconnect(pub);
    client_disconnect(sub);
    tls_ssl_ctx_free(pub_ctx);
    tls_ssl_ctx_free(sub_ctx);
}

static void aead_suite(const struct aead_case *c)
{
    broker_start(&b, TLS_LISTENER, c->set, "limits.max_packet_size=2000000", "log.level=debug",
                 NULL);
    big_and_small_round_trip(c->version);
    char needle[96];
    snprintf(needle, sizeof(needle), "%s%s", c->suite, TAKEN_OVER);
    broker_wait_log(&b, needle, 2);
    broker_stop(&b);
}

Test(tls, tls13_aes128_gcm_records_run_by_the_broker)
{
    aead_suite(&aead_cases[0]);
}

Test(tls, tls13_aes256_gcm_records_run_by_the_broker)
{
    aead_suite(&aead_cases[1]);
}

Test(tls, tls13_chacha20_poly1305_records_run_by_the_broker)
{
    aead_suite(&aead_cases[2]);
}

Test(tls, tls12_aes128_gcm_records_run_by_the_broker)
{
    aead_suite(&aead_cases[3]);
}

Test(tls, tls12_aes256_gcm_records_run_by_the_broker)
{
    aead_suite(&aead_cases[4]);
}

Test(tls, tls12_chacha20_poly1305_records_run_by_the_broker)
{
    aead_suite(&aead_cases[5]);
}

/* A CBC suite is not one the broker runs: wolfSSL keeps the connection. */
Test(tls, a_cbc_suite_stays_with_wolfssl_and_works)
{
    broker_start(&b, TLS_LISTENER, "listener.default.tls_ciphers=ECDHE-ECDSA-AES128-SHA256",
                 "limits.max_packet_size=2000000", "log.level=debug", NULL);
    big_and_small_round_trip("tlsv1.2");
    cr_assert_eq(broker_log_count(&b, TAKEN_OVER), 0, "a CBC connection was taken over");
    broker_stop(&b);
}

/* ---- a wolfSSL client for what libmosquitto does not send ---------------- */

/* The client's output goes to the socket, or is held (to be changed, or
 * sent at once). */
struct wolf_client {
    int fd;
    WOLFSSL_CTX *ctx;
    WOLFSSL *ssl;
    bool hold;
    uint8_t buf[4096];
    size_t len;
};

static int wolf_send(WOLFSSL *ssl, char *data, int sz, void *ctx)
{
    (void)ssl;
    struct wolf_client *w = ctx;
    if (!w->hold)
        return raw_send(w->fd, data, (size_t)sz) == 0 ? sz : WOLFSSL_CBIO_ERR_CONN_CLOSE;
    cr_assert_leq(w->len + (size_t)sz, sizeof(w->buf));
    memcpy(w->buf + w->len, data, (size_t)sz);
    w->len += (size_t)sz;
    return sz;
}

/* Read exactly n bytes of plaintext (bounded wait); false when the
 * connection failed or closed first. */
static bool wolf_read(struct wolf_client *w, uint8_t *out, int n)
{
    int got = 0;
    struct pollfd pf = {.fd = w->fd, .events = POLLIN};
    while (got < n && (wolfSSL_pending(w->ssl) || poll(&pf, 1, E2E_WAIT_MS) > 0)) {
        int k = wolfSSL_read(w->ssl, out + got, n - got);
        if (k <= 0 && wolfSSL_get_error(w->ssl, k) != WOLFSSL_ERROR_WANT_READ)
            return false;
        got += k > 0 ? k : 0;
    }
    return got == n;
}

/* Connected over TLS 1.3 or 1.2 and through CONNECT/CONNACK as `id`. */
static void wolf_open(struct wolf_client *w, bool tls13, const char *id)
{
    cr_assert_eq(wolfSSL_Init(), WOLFSSL_SUCCESS);
    *w = (struct wolf_client){.fd = raw_open(&b)};
    /* Bounded: a blocked read gives up (wolfSSL reads it as WANT_READ). */
    struct timeval tv = {.tv_sec = E2E_WAIT_MS / 1000, .tv_usec = (E2E_WAIT_MS % 1000) * 1000};
    cr_assert_eq(setsockopt(w->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    w->ctx = wolfSSL_CTX_new(tls13 ? wolfTLSv1_3_client_method() : wolfTLSv1_2_client_method());
    cr_assert(w->ctx);
    cr_assert_eq(wolfSSL_CTX_load_verify_locations(w->ctx, ca, NULL), WOLFSSL_SUCCESS);
    w->ssl = wolfSSL_new(w->ctx);
    cr_assert(w->ssl);
    wolfSSL_set_fd(w->ssl, w->fd);
    wolfSSL_SSLSetIOSend(w->ssl, wolf_send);
    wolfSSL_SetIOWriteCtx(w->ssl, w);
    cr_assert_eq(wolfSSL_connect(w->ssl), WOLFSSL_SUCCESS, "handshake: %d",
                 wolfSSL_get_error(w->ssl, 0));
    struct pkt p;
    uint8_t out[256], in[4];
    struct raw_connect rc = {.flags = -1, .clean = true, .id = id, .keepalive = 60};
    pkt_connect(&p, &rc);
    size_t n = pkt_encode(&p, out);
    cr_assert_eq(wolfSSL_write(w->ssl, out, (int)n), (int)n);
    cr_assert(wolf_read(w, in, 4), "%s: no CONNACK", id);
    cr_assert(in[0] == 0x20 && in[3] == 0, "%s: not accepted", id);
}

static void wolf_close(struct wolf_client *w)
{
    wolfSSL_free(w->ssl);
    wolfSSL_CTX_free(w->ctx);
    wolfSSL_Cleanup();
    close(w->fd);
}

/* RFC 8446 6.1: a close_notify is answered with one before the close. */
static void close_notify_answered(bool tls13)
{
    broker_start(&b, TLS_LISTENER, NULL);
    struct wolf_client w;
    wolf_open(&w, tls13, "notifier");
    cr_assert_eq(wolfSSL_shutdown(w.ssl), WOLFSSL_SHUTDOWN_NOT_DONE, "close_notify sent");
    struct pollfd pf = {.fd = w.fd, .events = POLLIN};
    cr_assert_gt(poll(&pf, 1, E2E_WAIT_MS), 0, "no answer to close_notify");
    cr_assert_eq(wolfSSL_shutdown(w.ssl), WOLFSSL_SUCCESS, "the broker's close_notify");
    cr_assert_eq(raw_wait_close(w.fd, E2E_WAIT_MS), 0, "closed after close_notify");
    wolf_close(&w);
    broker_stop(&b);
}

Test(tls, tls13_close_notify_is_answered_and_closes)
{
    close_notify_answered(true);
}

Test(tls, tls12_close_notify_is_answered_and_closes)
{
    close_notify_answered(false);
}

/* A record whose ciphertext was changed on the way: bad_record_mac, that
 * connection closed and logged, the others go on. */
static void flipped_byte_closes(bool tls13)
{
    broker_start(&b, TLS_LISTENER, NULL);
    struct client *good = good_client();
    struct wolf_client w;
    wolf_open(&w, tls13, "flipper");
    w.hold = true;
    static const uint8_t pingreq[] = {0xc0, 0x00};
    cr_assert_eq(wolfSSL_write(w.ssl, pingreq, 2), 2);
    cr_assert_gt(w.len, 8);
    w.buf[8] ^= 0x01; /* past the header: ciphertext (or TLS 1.2's explicit nonce) */
    cr_assert_eq(raw_send(w.fd, w.buf, w.len), 0);
    uint8_t in[2];
    cr_assert(!wolf_read(&w, in, 2), "a PINGRESP to a changed record");
    cr_assert_eq(raw_wait_close(w.fd, E2E_WAIT_MS), 0, "the broker kept the connection");
    broker_wait_log(&b, "a record does not authenticate, closing", 1);
    wolf_close(&w);
    good_still_works(good);
    broker_stop(&b);
}

Test(tls, tls13_a_flipped_ciphertext_byte_closes_the_connection)
{
    flipped_byte_closes(true);
}

Test(tls, tls12_a_flipped_ciphertext_byte_closes_the_connection)
{
    flipped_byte_closes(false);
}

/* The broker cannot follow a TLS 1.3 KeyUpdate (its records are its own
 * after the handshake and wolfSSL does not export the traffic secrets):
 * a fatal alert, the connection closed, a clear log line. */
Test(tls, tls13_key_update_from_the_client_closes_with_a_log_line)
{
    broker_start(&b, TLS_LISTENER, NULL);
    struct client *good = good_client();
    struct wolf_client w;
    wolf_open(&w, true, "updater");
    cr_assert_eq(wolfSSL_update_keys(w.ssl), WOLFSSL_SUCCESS);
    uint8_t in[2];
    cr_assert(!wolf_read(&w, in, 2), "data after a KeyUpdate");
    cr_assert_eq(raw_wait_close(w.fd, E2E_WAIT_MS), 0, "the broker kept the connection");
    broker_wait_log(&b, "KeyUpdate from the client, which this broker cannot follow", 1);
    wolf_close(&w);
    good_still_works(good);
    broker_stop(&b);
}

/* ---- bad input ------------------------------------------------------------ */

/* A TLS 1.0 (minor 1) or 1.1 (minor 2) ClientHello (no
 * supported_versions extension) offering two TLS 1.0/1.1 suites. */
static size_t client_hello_old(uint8_t *out, uint8_t minor)
{
    static const uint8_t tail[] = {0x00, 0x00, 0x04, 0xc0, 0x14, 0x00, 0x2f, 0x01, 0x00};
    size_t body = 2 + 32 + sizeof(tail);
    uint8_t *w = out;
    *w++ = 0x16; /* handshake record, version 3.1 */
    *w++ = 0x03;
    *w++ = 0x01;
    *w++ = (uint8_t)((body + 4) >> 8);
    *w++ = (uint8_t)(body + 4);
    *w++ = 0x01; /* ClientHello */
    *w++ = 0;
    *w++ = (uint8_t)(body >> 8);
    *w++ = (uint8_t)body;
    *w++ = 0x03; /* client_version TLS 1.0 or 1.1 */
    *w++ = minor;
    for (int i = 0; i < 32; i++)
        *w++ = (uint8_t)(i * 13);
    memcpy(w, tail, sizeof(tail));
    return (size_t)(w - out) + sizeof(tail);
}

static size_t client_hello_tls11(uint8_t *out)
{
    return client_hello_old(out, 2);
}

/* Sends bytes on a raw connection and asserts the broker closes it; the
 * first byte it answered with, or -1 for none. */
static int closed_after(const void *bytes, size_t len)
{
    int fd = raw_open(&b);
    raw_send(fd, bytes, len);
    uint8_t first[1];
    int answer = -1;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, E2E_WAIT_MS) > 0 && recv(fd, first, 1, MSG_PEEK) == 1)
        answer = first[0];
    cr_assert(raw_wait_close(fd, E2E_WAIT_MS) == 0, "broker kept the connection open");
    close(fd);
    return answer;
}

Test(tls, plain_mqtt_on_the_tls_port_is_closed_and_logged)
{
    broker_start(&b, TLS_LISTENER, NULL);
    struct client *good = good_client();
    struct pkt p;
    struct raw_connect rc = {.flags = -1, .clean = true, .id = "plain", .keepalive = 60};
    pkt_connect(&p, &rc);
    uint8_t out[256];
    size_t n = pkt_encode(&p, out);
    int answer = closed_after(out, n);
    cr_assert(answer == -1 || answer == 0x15, "answered 0x%02x, not a TLS alert", answer);
    broker_wait_log(&b, "TLS handshake from 127.0.0.1 failed", 1);
    good_still_works(good);
    broker_stop(&b);
}

Test(tls, client_hello_on_a_plain_port_is_closed)
{
    broker_start(&b, NULL);
    struct client *good = client_open(&b, "good", true);
    cr_assert(client_subscribe(good, "ok/t", 1) == 1);
    uint8_t hello[128];
    cr_assert_eq(closed_after(hello, client_hello_tls11(hello)), -1, "MQTT answered TLS");
    good_still_works(good);
    broker_stop(&b);
}

static void old_version_refused(uint8_t minor)
{
    broker_start(&b, TLS_LISTENER, NULL);
    struct client *good = good_client();
    uint8_t hello[128];
    int answer = closed_after(hello, client_hello_old(hello, minor));
    cr_assert(answer == -1 || answer == 0x15, "answered 0x%02x, not a TLS alert", answer);
    broker_wait_log(&b, "a TLS version the listener does not accept", 1);
    good_still_works(good);
    broker_stop(&b);
}

Test(tls, tls_1_0_is_refused)
{
    old_version_refused(1);
}

Test(tls, tls_1_1_is_refused)
{
    old_version_refused(2);
}

/* With tls_verify_client = required (and the CA's CRL), a client
 * presenting (cert, key) is refused, logged with the reason `why`; the
 * good client (with a certificate) goes on. */
static void refused_with(const char *c_cert, const char *c_key, const char *why)
{
    char set_crl[200];
    snprintf(set_crl, sizeof(set_crl), "listener.default.tls_crl=%s", crl);
    broker_start(&b, TLS_LISTENER, set_ca, set_crl, "listener.default.tls_verify_client=required",
                 NULL);
    struct client_opts go = tls_opts("good", true);
    go.tls_cert = ccert;
    go.tls_key = ckey;
    struct client *good = client_connect(&b, &go);
    cr_assert(client_subscribe(good, "ok/t", 1) == 1);
    struct client_opts o = tls_opts("bad", true);
    o.tls_cert = c_cert;
    o.tls_key = c_key;
    struct client *c;
    int rc = client_connect_rc(&b, &o, &c);
    cr_assert_lt(rc, 0, "client served (CONNACK %d)", rc);
    client_destroy(c);
    broker_wait_log(&b, why, 1);
    good_still_works(good);
    broker_stop(&b);
}

Test(tls, no_client_certificate_with_required_is_refused)
{
    refused_with(NULL, NULL, "no client certificate");
}

Test(tls, client_certificate_of_another_ca_is_refused)
{
    refused_with(other_cert, other_key, "not issued by a CA of tls_ca");
}

Test(tls, expired_client_certificate_is_refused)
{
    refused_with(exp_cert, exp_key, "has expired");
}

Test(tls, not_yet_valid_client_certificate_is_refused)
{
    refused_with(future_cert, future_key, "is not valid yet");
}

Test(tls, revoked_client_certificate_is_refused_by_the_crl)
{
    refused_with(revoked_cert, revoked_key, "is revoked (tls_crl)");
}

Test(tls, stalled_handshake_is_closed_after_tls_handshake_timeout)
{
    /* connect_timeout (10 s) is far away: the TLS bound closes it. */
    broker_start(&b, TLS_LISTENER, "listener.default.tls_handshake_timeout=1", NULL);
    struct client *good = good_client();
    uint8_t hello[128];
    client_hello_tls11(hello);
    int fd = raw_open(&b);
    raw_send(fd, hello, 3); /* a record header begun, never finished */
    cr_assert(raw_wait_close(fd, 4000) == 0, "a stalled handshake was kept open");
    close(fd);
    broker_wait_log(&b, "tls handshake not done within 1000 ms", 1);
    good_still_works(good);
    broker_stop(&b);
}

/* ringmqd with these settings must refuse to start, naming `needle`. */
static void start_fails(const char *needle, const char *const *sets, int n)
{
    char cmd[2048];
    /* Bounded: a broker that starts after all must not hang the test. */
    int w = snprintf(cmd, sizeof(cmd), "timeout 10 %s -c %s --set listener.default.port=0",
                     getenv("RINGMQD"), getenv("RINGMQ_CONF"));
    for (int i = 0; i < n; i++)
        w += snprintf(cmd + w, sizeof(cmd) - (size_t)w, " --set '%s'", sets[i]);
    snprintf(cmd + w, sizeof(cmd) - (size_t)w, " >%s/start.log 2>&1", dir);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0, "ringmqd started with a bad TLS file");
    char path[128], line[512];
    snprintf(path, sizeof(path), "%s/start.log", dir);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    cr_assert(found, "no \"%s\" in the start-up error", needle);
}

Test(tls, unreadable_or_bad_pem_stops_start_up_naming_the_file)
{
    char missing[200], not_pem[200], not_key[200];
    snprintf(missing, sizeof(missing), "listener.default.tls_cert=%s/none.crt", dir);
    const char *a[] = {"listener.default.transport=tls", missing, set_key};
    start_fails("tls_cert = ", a, 3);
    start_fails("none.crt: cannot read", a, 3);
    snprintf(not_pem, sizeof(not_pem), "listener.default.tls_cert=%s/san.ext", dir);
    const char *b2[] = {"listener.default.transport=tls", not_pem, set_key};
    start_fails("san.ext: not a PEM certificate chain", b2, 3);
    snprintf(not_key, sizeof(not_key), "listener.default.tls_key=%s", ca);
    const char *c3[] = {"listener.default.transport=tls", set_cert, not_key};
    start_fails("ca.crt: not a PEM private key", c3, 3);
}

/* ---- a TLS listener added and removed by a reload (issue 14) ---------------------------- */

/* SIGHUP after `conf` was rewritten; waits until the nth reload is in force. */
static void reload_nth(int nth)
{
    cr_assert_eq(kill(b.pid, SIGHUP), 0);
    broker_wait_log(&b, "reload: 1 change(s) in force", nth);
}

/* A broker started with a TLS listener (its connections have room for TLS
 * state) takes a [listener.NAME] transport = tls added by a reload: a
 * libmosquitto client over TLS publishes and receives through it, with a
 * client of the other listener too. Removed by the next reload, it
 * refuses new connections; the client connected through it stays. */
Test(tls, listener_added_and_removed_by_reload)
{
    char conf[64] = "", original[256], tail[600];
    snprintf(original, sizeof(original), "%s", getenv("RINGMQ_CONF"));
    e2e_conf_write(conf, sizeof(conf), "");
    setenv("RINGMQ_CONF", conf, 1); /* the file ringmqd reads again on SIGHUP */
    broker_start(&b, TLS_LISTENER, NULL);
    setenv("RINGMQ_CONF", original, 1);
    struct client *other = tls_open("on-default", true);

    snprintf(tail, sizeof(tail),
             "[listener.live]\nport = 0\ntransport = tls\ntls_cert = %s\ntls_key = %s\n", cert,
             key);
    e2e_conf_write(conf, sizeof(conf), tail);
    reload_nth(1);
    cr_assert_eq(broker_log_count(&b, "reload: [listener.live] * added"), 1);
    int port = broker_listener_port(&b, 2);
    cr_assert_neq(port, b.port);
    struct broker live = broker_on_port(&b, port);
    struct client_opts o = tls_opts("on-live", true);
    struct client *c = client_connect(&live, &o);
    cr_assert_eq(client_subscribe(c, "live/t", 1), 1);
    client_publish(c, "live/t", "self", 4, 1, false);
    client_expect_message(c, "live/t", "self", NULL, NULL);
    client_publish(other, "live/t", "from default", 12, 1, false);
    client_expect_message(c, "live/t", "from default", NULL, NULL);
    /* TLS only: plain MQTT on it gets no CONNACK. */
    struct client *plain = NULL;
    cr_assert_lt(
        client_connect_rc(&live, &(struct client_opts){.id = "plain", .clean = true}, &plain), 0);
    client_destroy(plain);

    e2e_conf_write(conf, sizeof(conf), "");
    reload_nth(2);
    cr_assert_eq(broker_log_count(&b, "reload: [listener.live] * removed"), 1);
    broker_wait_log(&b, "listener live: no longer accepting", 1);
    cr_assert(port_refuses_soon(port), "the removed listener still accepts");
    struct client *refused = NULL;
    struct client_opts o2 = tls_opts("late", true);
    cr_assert_lt(client_connect_rc(&live, &o2, &refused), 0);
    client_destroy(refused);
    client_publish(c, "live/t", "still", 5, 1, false);
    client_expect_message(c, "live/t", "still", NULL, NULL);
    client_publish(other, "live/t", "and again", 9, 1, false);
    client_expect_message(c, "live/t", "and again", NULL, NULL);
    client_disconnect(c);
    client_disconnect(other);
    broker_stop(&b);
    unlink(conf);
}
