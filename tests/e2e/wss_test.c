/* E2E: the wss transport (MQTT over WebSocket over TLS) with wolfSSL as
 * the client and WebSocket frames written by the test: bad input closes
 * only its own connection (an unmasked client frame gets close 1002 inside
 * TLS; a plain WebSocket Upgrade on the wss port is closed), and clients
 * whose CONNECT arrives with the next TLS record holding the rest of a
 * frame move to their home shard with both the TLS keys and the frame
 * parser's state (meson runs this with 1 and 4 shards). MQTT.js covers the
 * transport from an independent client (node/wss_test.mjs).
 *
 * Certificates are made by the openssl CLI in the suite's own directory
 * (nothing with a private key is committed). ringmqd only. */
#include "harness.h"
#include "ws_wire.h"

#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

static struct broker b;
static struct broker wssb; /* b with the wss listener's port */
static WOLFSSL_CTX *cctx;
static char dir[64], ca[128], set_cert[200], set_key[200];

static const char make_certs[] =
    "set -e; cd %s; k='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes'\n"
    "openssl req -x509 $k -keyout ca.key -out ca.crt -days 2 -subj /CN=ringmq-wss-test-ca\n"
    "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext\n"
    "openssl req $k -keyout server.key -out server.csr -subj /CN=localhost\n"
    "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial"
    " -out server.crt -days 2 -extfile san.ext\n";

static void suite_init(void)
{
    const char *which = getenv("RINGMQ_E2E_BROKER");
    if (which && !strcmp(which, "mosquitto"))
        cr_skip_test("ringmqd only");
    snprintf(dir, sizeof(dir), "/tmp/ringmq-wss-XXXXXX");
    cr_assert(mkdtemp(dir));
    char cmd[1024], full[1200];
    snprintf(cmd, sizeof(cmd), make_certs, dir);
    snprintf(full, sizeof(full), "( %s ) >%s/openssl.log 2>&1", cmd, dir);
    cr_assert(system(full) == 0, "openssl could not make the test certificates (see %s)", dir);
    snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
    snprintf(set_cert, sizeof(set_cert), "listener.wss.tls_cert=%s/server.crt", dir);
    snprintf(set_key, sizeof(set_key), "listener.wss.tls_key=%s/server.key", dir);
    cr_assert_eq(wolfSSL_Init(), WOLFSSL_SUCCESS);
    cctx = wolfSSL_CTX_new(wolfTLS_client_method());
    cr_assert(cctx);
    cr_assert_eq(wolfSSL_CTX_load_verify_locations(cctx, ca, NULL), WOLFSSL_SUCCESS);
}

static void suite_fini(void)
{
    e2e_fini();
    if (cctx) {
        wolfSSL_CTX_free(cctx);
        wolfSSL_Cleanup();
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (dir[0] && system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

TestSuite(wss, .init = suite_init, .fini = suite_fini, .timeout = 60);

static void start(void)
{
    broker_start(&b, "listener.wss.transport=wss", "listener.wss.port=0", set_cert, set_key,
                 "log.level=info", NULL);
    wssb = b;
    wssb.port = broker_listener_port(&b, 2);
}

/* ---- a WebSocket client over wolfSSL ------------------------------------- */

/* After the handshake wolfSSL's records are held here and sent by
 * wssc_flush, so that a test can put several records in one send. */
struct wssc {
    int fd;
    WOLFSSL *ssl;
    size_t held; /* bytes in out */
    uint8_t out[8192];
    struct ws_packets rx;
};

static int held_send(WOLFSSL *ssl, char *data, int sz, void *ctx)
{
    (void)ssl;
    struct wssc *w = ctx;
    cr_assert_leq(w->held + (size_t)sz, sizeof(w->out));
    memcpy(w->out + w->held, data, (size_t)sz);
    w->held += (size_t)sz;
    return sz;
}

static void wssc_flush(struct wssc *w)
{
    cr_assert_eq(raw_send(w->fd, w->out, w->held), 0);
    w->held = 0;
}

/* One record of n bytes, held until the next flush. */
static void wssc_write(struct wssc *w, const void *data, size_t n)
{
    cr_assert_eq(wolfSSL_write(w->ssl, data, (int)n), (int)n);
}

/* Exactly n decrypted bytes; 0 when the broker closed first. */
static size_t wssc_read(struct wssc *w, void *buf, size_t n)
{
    size_t got = 0;
    struct pollfd pf = {.fd = w->fd, .events = POLLIN};
    while (got < n) {
        if (!wolfSSL_pending(w->ssl))
            cr_assert(poll(&pf, 1, E2E_WAIT_MS) > 0, "timed out reading %zu bytes", n);
        int k = wolfSSL_read(w->ssl, (uint8_t *)buf + got, (int)(n - got));
        if (k > 0)
            got += (size_t)k;
        else if (wolfSSL_get_error(w->ssl, k) != WOLFSSL_ERROR_WANT_READ)
            return 0;
    }
    return got;
}

/* The broker ended the connection (close_notify or the socket's end). */
static void wssc_expect_end(struct wssc *w)
{
    uint8_t c;
    struct pollfd pf = {.fd = w->fd, .events = POLLIN};
    for (;;) {
        cr_assert(wolfSSL_pending(w->ssl) || poll(&pf, 1, E2E_WAIT_MS) > 0, "not closed");
        int k = wolfSSL_read(w->ssl, &c, 1);
        if (k <= 0 && wolfSSL_get_error(w->ssl, k) != WOLFSSL_ERROR_WANT_READ)
            return;
        cr_assert_leq(k, 0, "a byte after the close frame");
    }
}

/* TLS handshake, then the Upgrade answered 101. */
static struct wssc *wssc_open(void)
{
    struct wssc *w = calloc(1, sizeof(*w));
    w->fd = raw_open(&wssb);
    w->ssl = wolfSSL_new(cctx);
    cr_assert(w->ssl);
    wolfSSL_set_fd(w->ssl, w->fd);
    cr_assert_eq(wolfSSL_connect(w->ssl), WOLFSSL_SUCCESS, "handshake: %d",
                 wolfSSL_get_error(w->ssl, 0));
    wolfSSL_SSLSetIOSend(w->ssl, held_send);
    wolfSSL_SetIOWriteCtx(w->ssl, w);
    static const char req[] =
        "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";
    wssc_write(w, req, sizeof(req) - 1);
    wssc_flush(w);
    char head[512];
    size_t n = 0;
    while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0) {
        cr_assert_lt(n + 1, sizeof(head));
        cr_assert_eq(wssc_read(w, (uint8_t *)head + n, 1), 1, "closed during the answer");
        n++;
    }
    head[n] = '\0';
    cr_assert(strncmp(head, "HTTP/1.1 101", 12) == 0, "%s", head);
    cr_assert(strstr(head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "%s", head);
    return w;
}

static void wssc_free(struct wssc *w)
{
    wolfSSL_free(w->ssl);
    close(w->fd);
    free(w);
}

/* One binary frame (fin), masked when `masked`. */
static size_t frame(uint8_t *out, bool masked, const void *payload, size_t len)
{
    return ws_frame(out, true, 0x2, masked, payload, len, 0);
}

/* Exactly n decrypted bytes (ws_read_fn). */
static size_t tls_read(void *io, void *buf, size_t n)
{
    return wssc_read(io, buf, n);
}

static size_t read_packet(struct wssc *w, uint8_t *out, size_t cap)
{
    return ws_read_packet_from(tls_read, w, &w->rx, out, cap);
}

static void send_pkt(struct wssc *w, const struct pkt *p)
{
    uint8_t enc[128], f[140];
    size_t n = pkt_encode(p, enc);
    wssc_write(w, f, frame(f, true, enc, n));
    wssc_flush(w);
}

static void expect_connack_ok(struct wssc *w)
{
    uint8_t in[16];
    size_t n = read_packet(w, in, sizeof(in));
    cr_assert(n == 4 && in[0] == 0x20 && in[3] == 0, "CONNACK 0 expected");
}

/* Connected as id and subscribed to `topic` at QoS 0. */
static struct wssc *mqtt_open(const char *id, const char *topic)
{
    struct wssc *w = wssc_open();
    struct pkt p;
    pkt_connect(&p, &(struct raw_connect){.id = id, .clean = true, .keepalive = 60, .flags = -1});
    send_pkt(w, &p);
    expect_connack_ok(w);
    pkt_subscribe(&p, 1, topic, 0);
    send_pkt(w, &p);
    uint8_t in[16];
    cr_assert_eq(read_packet(w, in, sizeof(in)), 5);
    cr_assert_eq(in[0], 0x90);
    return w;
}

/* w, subscribed to topic, gets what it publishes there. */
static void still_works(struct wssc *w, const char *topic)
{
    struct pkt p;
    pkt_publish(&p, topic, "still here", 10, 0, false, false, 0);
    send_pkt(w, &p);
    uint8_t in[128];
    size_t n = read_packet(w, in, sizeof(in));
    cr_assert(in[0] == 0x30 && n > 10 && memcmp(in + n - 10, "still here", 10) == 0);
}

/* ---- tests ----------------------------------------------------------------- */

/* RFC 6455 5.1: a client frame must be masked; the broker answers with
 * close 1002, inside TLS, and ends only that connection. */
Test(wss, unmasked_frame_closes_1002)
{
    start();
    struct wssc *good = mqtt_open("good", "good/t");
    struct wssc *bad = mqtt_open("bad", "bad/t");
    struct pkt p;
    uint8_t enc[128], f[140];
    pkt_publish(&p, "bad/t", "x", 1, 0, false, false, 0);
    size_t n = pkt_encode(&p, enc);
    wssc_write(bad, f, frame(f, false, enc, n));
    wssc_flush(bad);
    uint8_t payload[128];
    size_t len;
    cr_assert_eq(ws_read_frame(tls_read, bad, payload, sizeof(payload), &len), 0x8,
                 "not a close frame");
    cr_assert_geq(len, 2);
    cr_assert_eq(payload[0] << 8 | payload[1], 1002);
    wssc_expect_end(bad);
    wssc_free(bad);
    still_works(good, "good/t");
    wssc_free(good);
    cr_assert_geq(broker_log_count(&b, "unmasked client frame"), 1);
    cr_assert_geq(broker_log_count(&b, "info [shard"), 1);
    cr_assert_eq(broker_log_count(&b, "] ws "), 0, "the line names the listener's transport, wss");
    cr_assert_geq(broker_log_count(&b, "] wss "), 1);
    broker_stop(&b);
}

/* The wss port speaks TLS first: a plain WebSocket Upgrade is not a
 * ClientHello, and the connection is closed. */
Test(wss, plain_websocket_upgrade_on_the_wss_port_is_closed)
{
    start();
    struct wssc *good = mqtt_open("good", "good/t");
    int fd = raw_open(&wssb);
    static const char req[] =
        "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";
    cr_assert_eq(raw_send(fd, req, sizeof(req) - 1), 0);
    cr_assert_eq(raw_wait_close(fd, E2E_WAIT_MS), 0, "not closed");
    close(fd);
    still_works(good, "good/t");
    wssc_free(good);
    broker_stop(&b);
}

/* CONNECT and the first half of a SUBSCRIBE frame in one TLS record, the
 * rest of the frame in a second, both in one send: with 4 shards most of
 * these clients are read on a shard that is not their home, and move there
 * while the second record is not decrypted yet (the TLS layer's state
 * carries it) and the WebSocket parser is in the middle of a frame (the ws
 * layer's state carries that). Each then talks through its home shard. */
Test(wss, connection_moves_home_with_tls_and_websocket_state)
{
    start();
    enum { N = 16 };
    struct wssc *w[N];
    for (int i = 0; i < N; i++) {
        char id[32], topic[32];
        snprintf(id, sizeof(id), "mover-%d", i);
        snprintf(topic, sizeof(topic), "move/%d", i);
        w[i] = wssc_open();
        struct pkt p;
        uint8_t body[128], f[280];
        pkt_connect(&p,
                    &(struct raw_connect){.id = id, .clean = true, .keepalive = 60, .flags = -1});
        size_t fl = frame(f, true, body, pkt_encode(&p, body));
        pkt_subscribe(&p, 3, topic, 0);
        size_t s = frame(f + fl, true, body, pkt_encode(&p, body));
        size_t cut = fl + s / 2 + 1; /* odd: the mask's phase is not 0 */
        wssc_write(w[i], f, cut);
        wssc_write(w[i], f + cut, fl + s - cut);
        wssc_flush(w[i]);
        expect_connack_ok(w[i]);
        uint8_t in[16];
        cr_assert_eq(read_packet(w[i], in, sizeof(in)), 5);
        cr_assert(in[0] == 0x90 && in[4] == 0, "SUBACK granting 0");
    }
    for (int i = 0; i < N; i++) {
        char topic[32];
        snprintf(topic, sizeof(topic), "move/%d", (i + 3) % N);
        struct pkt p;
        pkt_publish(&p, topic, "moved", 5, 0, false, false, 0);
        send_pkt(w[i], &p);
        uint8_t in[128];
        size_t n = read_packet(w[(i + 3) % N], in, sizeof(in));
        cr_assert(in[0] == 0x30 && n > 5 && memcmp(in + n - 5, "moved", 5) == 0);
    }
    for (int i = 0; i < N; i++)
        wssc_free(w[i]);
    broker_stop(&b);
}
