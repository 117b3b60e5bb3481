/* E2E: the ws transport (MQTT over WebSocket, RFC 6455; MQTT 5.0 section 6)
 * with WebSocket bytes written by the test: the Upgrade and its refusals
 * (400, 403, 404, 405, 426, 431), frames that split and join MQTT packets,
 * fragments, ping, the close handshake and the close codes for bad frames
 * (1002, 1003, 1009), and connections that move to their home shard in the
 * middle of a frame (meson runs this with 1 and 4 shards). In every bad-input
 * test a good WebSocket client keeps working. MQTT.js covers the same
 * transport from an independent client (node/ws_test.mjs). */
#include "harness.h"
#include "ws_wire.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct broker b;
static struct broker wsb; /* b with the ws listener's port */

TestSuite(ws, .fini = e2e_fini, .timeout = 60);

#define MAX_FRAME 4096

static long long ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void start(const char *extra)
{
    broker_start(&b, "listener.ws.transport=ws", "listener.ws.port=0",
                 "listener.ws.ws_max_frame=4096",
                 "listener.ws.ws_allowed_origins=http://good.example, https://also.example",
                 extra ? extra : "log.level=info", NULL);
    wsb = b;
    wsb.port = broker_listener_port(&b, 2);
}

/* Exactly n bytes, or the test fails (0 when the peer closed first). */
static size_t recv_exact(int fd, void *buf, size_t n, int timeout_ms)
{
    long long deadline = ms_now() + timeout_ms;
    size_t have = 0;
    while (have < n) {
        int left = (int)(deadline - ms_now());
        struct pollfd p = {.fd = fd, .events = POLLIN};
        cr_assert(left > 0 && poll(&p, 1, left) > 0, "timed out reading %zu bytes", n);
        ssize_t k = recv(fd, (char *)buf + have, n - have, 0);
        if (k <= 0)
            return 0;
        have += (size_t)k;
    }
    return have;
}

/* ---- HTTP --------------------------------------------------------------- */

/* Reads the response head (byte by byte: frames may follow); its status. */
static int read_head(int fd, char *head, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        if (recv_exact(fd, head + n, 1, E2E_WAIT_MS) != 1)
            break;
        n++;
        if (n >= 4 && memcmp(head + n - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    head[n] = '\0';
    int status = 0;
    cr_assert(sscanf(head, "HTTP/1.1 %d", &status) == 1, "not an HTTP answer: '%s'", head);
    return status;
}

static const char *const SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="; /* RFC 6455 1.3 */

/* GET path with the headers a WebSocket client sends, `proto` as its
 * subprotocols (NULL: none), `extra` lines before the blank line. */
static void send_upgrade(int fd, const char *path, const char *proto, const char *extra)
{
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s%s%s%s\r\n",
                     path, SAMPLE_KEY, proto ? "Sec-WebSocket-Protocol: " : "", proto ? proto : "",
                     proto ? "\r\n" : "", extra ? extra : "");
    cr_assert(raw_send(fd, req, (size_t)n) == 0);
}

/* Sends `req` on a new connection: the status of the answer, which must be
 * followed by the close when it is an error. */
static int refused(const char *req, size_t len)
{
    int fd = raw_open(&wsb);
    cr_assert(raw_send(fd, req, len) == 0);
    char head[2048];
    int status = read_head(fd, head, sizeof(head));
    cr_assert(strstr(head, "Connection: close\r\n"), "%s", head);
    cr_assert_eq(raw_wait_close(fd, E2E_WAIT_MS), 0, "not closed after %d", status);
    close(fd);
    return status;
}

/* ---- frames ------------------------------------------------------------- */

static void send_frame(int fd, bool fin, int op, const void *payload, size_t len)
{
    uint8_t f[MAX_FRAME + 16];
    cr_assert_leq(len, MAX_FRAME);
    cr_assert(raw_send(fd, f, ws_frame(f, fin, op, true, payload, len, 0)) == 0);
}

/* Exactly n bytes from the socket (ws_read_fn). */
static size_t fd_read(void *io, void *buf, size_t n)
{
    return recv_exact(*(int *)io, buf, n, E2E_WAIT_MS);
}

/* One frame from the server (never masked); its opcode, payload in buf. */
static int read_frame(int fd, uint8_t *buf, size_t cap, size_t *len)
{
    return ws_read_frame(fd_read, &fd, buf, cap, len);
}

/* The next frame is a close with status `code`, then the connection ends. */
static void expect_close(int fd, unsigned code)
{
    uint8_t p[128];
    size_t n;
    int op;
    while ((op = read_frame(fd, p, sizeof(p), &n)) == 0x2) {
    } /* MQTT bytes answered before the bad frame */
    cr_assert_eq(op, 0x8, "opcode %d, not close", op);
    cr_assert_geq(n, 2);
    cr_assert_eq((unsigned)(p[0] << 8 | p[1]), code);
    cr_assert_eq(raw_wait_close(fd, E2E_WAIT_MS), 0, "not closed after close %u", code);
    close(fd);
}

/* ---- MQTT over a raw WebSocket ------------------------------------------ */

struct wsc {
    int fd;
    struct ws_packets rx;
};

/* Upgraded connection (answered 101 with subprotocol mqtt). */
static struct wsc *ws_open(void)
{
    struct wsc *w = calloc(1, sizeof(*w));
    w->fd = raw_open(&wsb);
    send_upgrade(w->fd, "/mqtt", "mqtt", NULL);
    char head[1024];
    cr_assert_eq(read_head(w->fd, head, sizeof(head)), 101, "%s", head);
    return w;
}

static void ws_free(struct wsc *w)
{
    close(w->fd);
    free(w);
}

/* One MQTT packet, from however the server framed them; its length. */
static size_t ws_read_packet(struct wsc *w, uint8_t *out, size_t cap)
{
    return ws_read_packet_from(fd_read, &w->fd, &w->rx, out, cap);
}

static void ws_send_pkt(struct wsc *w, const struct pkt *p)
{
    uint8_t enc[MAX_FRAME];
    size_t n = pkt_encode(p, enc);
    send_frame(w->fd, true, 0x2, enc, n);
}

static void expect_connack_ok(struct wsc *w)
{
    uint8_t in[16];
    size_t n = ws_read_packet(w, in, sizeof(in));
    cr_assert(n == 4 && in[0] == 0x20 && in[3] == 0, "CONNACK 0 expected");
}

/* A connected client subscribed to its own topic "echo/ID" at QoS 0. */
static struct wsc *good_open(const char *id)
{
    struct wsc *w = ws_open();
    struct pkt p;
    pkt_connect(&p, &(struct raw_connect){.id = id, .clean = true, .keepalive = 60, .flags = -1});
    ws_send_pkt(w, &p);
    expect_connack_ok(w);
    char topic[64];
    snprintf(topic, sizeof(topic), "echo/%s", id);
    pkt_subscribe(&p, 1, topic, 0);
    ws_send_pkt(w, &p);
    uint8_t in[16];
    cr_assert_eq(ws_read_packet(w, in, sizeof(in)), 5);
    cr_assert_eq(in[0], 0x90);
    return w;
}

/* It still gets what it publishes to itself. */
static void good_check(struct wsc *w, const char *id)
{
    char topic[64];
    snprintf(topic, sizeof(topic), "echo/%s", id);
    struct pkt p;
    pkt_publish(&p, topic, "still here", 10, 0, false, false, 0);
    ws_send_pkt(w, &p);
    uint8_t in[128];
    size_t n = ws_read_packet(w, in, sizeof(in));
    cr_assert_eq(in[0] & 0xf0, 0x30);
    cr_assert(n > 10 && memcmp(in + n - 10, "still here", 10) == 0);
}

/* ---- the Upgrade -------------------------------------------------------- */

Test(ws, upgrade_is_answered_101_with_the_accept_key_and_mqtt)
{
    start(NULL);
    int fd = raw_open(&wsb);
    send_upgrade(fd, "/mqtt?client=x", "mqtt", "Origin: http://good.example\r\n");
    char head[1024];
    cr_assert_eq(read_head(fd, head, sizeof(head)), 101, "%s", head);
    cr_assert(strstr(head, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "%s",
              head);
    cr_assert(strstr(head, "\r\nSec-WebSocket-Protocol: mqtt\r\n"), "%s", head); /* MQTT-6.0.0-4 */
    cr_assert(strstr(head, "\r\nUpgrade: websocket\r\n"), "%s", head);
    close(fd);
    /* An MQTT 3.1 client that offers only mqttv3.1 gets it back. */
    fd = raw_open(&wsb);
    send_upgrade(fd, "/mqtt", "mqttv3.1", "Origin: https://also.example\r\n");
    cr_assert_eq(read_head(fd, head, sizeof(head)), 101, "%s", head);
    cr_assert(strstr(head, "\r\nSec-WebSocket-Protocol: mqttv3.1\r\n"), "%s", head);
    close(fd);
    broker_stop(&b);
}

Test(ws, malformed_or_wrong_upgrades_are_refused_and_closed)
{
    start(NULL);
    struct wsc *good = good_open("good-up");
    char req[512];
    /* A header line without a colon; then not HTTP at all (a TLS hello). */
    const char bad1[] = "GET /mqtt HTTP/1.1\r\nHost\r\nUpgrade: websocket\r\n\r\n";
    cr_assert_eq(refused(bad1, strlen(bad1)), 400);
    const char tls[] = "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03";
    cr_assert_eq(refused(tls, sizeof(tls) - 1), 400);
    /* Not GET; HTTP/1.0; no Upgrade header. */
    const char post[] = "POST /mqtt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
    cr_assert_eq(refused(post, strlen(post)), 405);
    const char old[] = "GET /mqtt HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    cr_assert_eq(refused(old, strlen(old)), 400);
    const char plain[] = "GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(refused(plain, strlen(plain)), 400);
    /* A key that is not 16 bytes of base64; another version. */
    int n = snprintf(req, sizeof(req),
                     "GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Protocol: mqtt\r\n\r\n");
    cr_assert_eq(refused(req, (size_t)n), 400);
    n = snprintf(req, sizeof(req),
                 "GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 8\r\n"
                 "Sec-WebSocket-Protocol: mqtt\r\n\r\n",
                 SAMPLE_KEY);
    cr_assert_eq(refused(req, (size_t)n), 426);
    good_check(good, "good-up");
    ws_free(good);
    broker_stop(&b);
}

/* Sends an Upgrade for `path` offering `proto` with `extra` headers: the
 * status of the answer (an error one is followed by the close). */
static int upgrade_status(const char *path, const char *proto, const char *extra)
{
    int fd = raw_open(&wsb);
    send_upgrade(fd, path, proto, extra);
    char head[1024];
    int status = read_head(fd, head, sizeof(head));
    if (status != 101)
        cr_assert_eq(raw_wait_close(fd, E2E_WAIT_MS), 0, "not closed after %d", status);
    close(fd);
    return status;
}

Test(ws, other_path_404_no_mqtt_subprotocol_400_other_origin_403)
{
    start(NULL);
    struct wsc *good = good_open("good-path");
    cr_assert_eq(upgrade_status("/other", "mqtt", NULL), 404);
    cr_assert_eq(upgrade_status("/mqtt/", "mqtt", NULL), 404);
    /* MQTT-6.0.0-3: the client must offer mqtt. */
    cr_assert_eq(upgrade_status("/mqtt", NULL, NULL), 400);
    cr_assert_eq(upgrade_status("/mqtt", "chat, MQTT", NULL), 400);
    cr_assert_eq(upgrade_status("/mqtt", "chat, mqtt", NULL), 101);
    cr_assert_eq(upgrade_status("/mqtt", "mqtt", "Origin: http://evil.example\r\n"), 403);
    cr_assert_eq(upgrade_status("/mqtt", "mqtt", "Origin: http://good.example\r\n"), 101);
    good_check(good, "good-path");
    ws_free(good);
    broker_stop(&b);
}

Test(ws, header_block_over_8_kib_gets_431)
{
    start(NULL);
    struct wsc *good = good_open("good-431");
    static char req[12000];
    int n = snprintf(req, sizeof(req), "GET /mqtt HTTP/1.1\r\nX-Filler: ");
    memset(req + n, 'a', 9000);
    n += 9000;
    n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n\r\n");
    cr_assert_eq(refused(req, (size_t)n), 431);
    good_check(good, "good-431");
    ws_free(good);
    broker_stop(&b);
}

/* ---- frames ------------------------------------------------------------- */

/* A connected raw WebSocket MQTT client. */
static struct wsc *mqtt_open(const char *id)
{
    struct wsc *w = ws_open();
    struct pkt p;
    pkt_connect(&p, &(struct raw_connect){.id = id, .clean = true, .keepalive = 60, .flags = -1});
    ws_send_pkt(w, &p);
    expect_connack_ok(w);
    return w;
}

Test(ws, unmasked_frame_closes_1002)
{
    start(NULL);
    struct wsc *good = good_open("good-1002");
    struct wsc *w = mqtt_open("bad-unmasked");
    uint8_t f[16];
    const uint8_t ping[2] = {0xc0, 0};
    cr_assert(raw_send(w->fd, f, ws_frame(f, true, 0x2, false, ping, 2, 0)) == 0);
    expect_close(w->fd, 1002);
    free(w);
    good_check(good, "good-1002");
    ws_free(good);
    broker_stop(&b);
}

Test(ws, text_frame_closes_1003)
{
    start(NULL);
    struct wsc *good = good_open("good-1003");
    struct wsc *w = mqtt_open("bad-text");
    const uint8_t ping[2] = {0xc0, 0};
    send_frame(w->fd, true, 0x1, ping, 2); /* MQTT-6.0.0-1: binary frames only */
    expect_close(w->fd, 1003);
    free(w);
    good_check(good, "good-1003");
    ws_free(good);
    broker_stop(&b);
}

Test(ws, frame_over_ws_max_frame_closes_1009)
{
    start(NULL);
    struct wsc *good = good_open("good-1009");
    struct wsc *w = mqtt_open("bad-big");
    uint8_t f[64];
    const uint8_t some[8] = {0};
    /* Only the header matters: it announces MAX_FRAME + 1 bytes. */
    cr_assert(raw_send(w->fd, f, ws_frame(f, true, 0x2, true, some, 8, MAX_FRAME + 1)) == 0);
    expect_close(w->fd, 1009);
    free(w);
    /* A 64-bit length with its top bit set is a protocol error. */
    w = mqtt_open("bad-len");
    cr_assert(raw_send(w->fd, f, ws_frame(f, true, 0x2, true, some, 8, UINT64_C(1) << 63)) == 0);
    expect_close(w->fd, 1002);
    free(w);
    good_check(good, "good-1009");
    ws_free(good);
    broker_stop(&b);
}

Test(ws, close_is_answered_and_a_bad_close_code_is_1002)
{
    start(NULL);
    struct wsc *good = good_open("good-close");
    struct wsc *w = mqtt_open("closer");
    const uint8_t normal[] = {0x03, 0xe8, 'b', 'y', 'e'};
    send_frame(w->fd, true, 0x8, normal, sizeof(normal));
    expect_close(w->fd, 1000);
    free(w);
    const uint16_t bad[] = {999, 1004, 1005, 1006, 1015, 2000, 5000};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        w = mqtt_open("bad-close");
        const uint8_t c[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
        send_frame(w->fd, true, 0x8, c, 2);
        expect_close(w->fd, 1002);
        free(w);
    }
    /* A control frame may not be fragmented; a continuation needs a message. */
    w = mqtt_open("bad-ctl");
    send_frame(w->fd, false, 0x9, "x", 1);
    expect_close(w->fd, 1002);
    free(w);
    w = mqtt_open("bad-cont");
    send_frame(w->fd, true, 0x0, "x", 1);
    expect_close(w->fd, 1002);
    free(w);
    good_check(good, "good-close");
    ws_free(good);
    broker_stop(&b);
}

Test(ws, ping_gets_pong_with_its_data)
{
    start(NULL);
    struct wsc *w = mqtt_open("pinger");
    send_frame(w->fd, true, 0x9, "are you there", 13);
    uint8_t p[128];
    size_t n;
    cr_assert_eq(read_frame(w->fd, p, sizeof(p), &n), 0xa);
    cr_assert(n == 13 && memcmp(p, "are you there", 13) == 0);
    ws_free(w);
    broker_stop(&b);
}

/* MQTT-6.0.0-2: packets split across frames (and across a fragmented
 * message with a ping in between), several packets in one frame. */
Test(ws, packets_split_across_frames_and_joined_in_one)
{
    start(NULL);
    struct wsc *w = ws_open();
    struct pkt p;
    uint8_t enc[2048], all[4096];
    pkt_connect(
        &p, &(struct raw_connect){.id = "splitter", .clean = true, .keepalive = 60, .flags = -1});
    size_t n = pkt_encode(&p, enc);
    send_frame(w->fd, false, 0x2, enc, 3);          /* a message begins */
    send_frame(w->fd, true, 0x9, "mid", 3);         /* a ping inside it */
    send_frame(w->fd, false, 0x0, enc + 3, n - 10); /* continuation */
    send_frame(w->fd, true, 0x0, enc + n - 7, 7);   /* the last fragment */
    uint8_t f[16];
    size_t fl;
    cr_assert_eq(read_frame(w->fd, f, sizeof(f), &fl), 0xa, "pong first");
    expect_connack_ok(w);
    /* SUBSCRIBE and two PUBLISHes in one frame; a third PUBLISH split over
     * two frames, one byte in the first. */
    size_t m = 0;
    pkt_subscribe(&p, 7, "split/#", 0);
    m += pkt_encode(&p, all + m);
    pkt_publish(&p, "split/a", "one", 3, 0, false, false, 0);
    m += pkt_encode(&p, all + m);
    pkt_publish(&p, "split/b", "two", 3, 0, false, false, 0);
    m += pkt_encode(&p, all + m);
    send_frame(w->fd, true, 0x2, all, m);
    pkt_publish(&p, "split/c", "three", 5, 0, false, false, 0);
    n = pkt_encode(&p, enc);
    send_frame(w->fd, true, 0x2, enc, 1);
    send_frame(w->fd, true, 0x2, enc + 1, n - 1);
    /* The server may send matching messages before the SUBACK (MQTT
     * 3.8.4), as it does when the subscription is shared with other
     * shards: the messages in order, the SUBACK anywhere. */
    uint8_t in[128];
    const char *want[] = {"one", "two", "three"};
    int next = 0, subacks = 0;
    for (int i = 0; i < 4; i++) {
        n = ws_read_packet(w, in, sizeof(in));
        if (in[0] == 0x90) {
            cr_assert_eq(n, 5);
            subacks++;
            continue;
        }
        cr_assert(next < 3);
        size_t wl = strlen(want[next]);
        cr_assert(in[0] == 0x30 && n > wl && memcmp(in + n - wl, want[next], wl) == 0, "%s",
                  want[next]);
        next++;
    }
    cr_assert_eq(subacks, 1);
    ws_free(w);
    broker_stop(&b);
}

/* With 4 shards most of these connections are accepted away from their
 * client id's home and move there while a frame is half read: the frame
 * carrying CONNECT goes on with half a SUBSCRIBE, whose rest (masked at the
 * right phase) arrives only once the home shard answered CONNACK. */
Test(ws, connection_moves_home_in_the_middle_of_a_frame)
{
    start(NULL);
    enum { N = 16 };
    struct wsc *w[N];
    for (int i = 0; i < N; i++) {
        char id[32], topic[32];
        snprintf(id, sizeof(id), "mover-%d", i);
        snprintf(topic, sizeof(topic), "move/%d", i);
        w[i] = ws_open();
        struct pkt p;
        uint8_t body[512], f[600];
        pkt_connect(&p,
                    &(struct raw_connect){.id = id, .clean = true, .keepalive = 60, .flags = -1});
        size_t c = pkt_encode(&p, body);
        pkt_subscribe(&p, 3, topic, 1);
        size_t s = pkt_encode(&p, body + c);
        size_t half = c + s / 2 + 1; /* odd: the mask's phase is not 0 */
        size_t fl = ws_frame(f, true, 0x2, true, body, c + s, 0);
        size_t cut = fl - (c + s) + half;
        cr_assert(raw_send(w[i]->fd, f, cut) == 0);
        expect_connack_ok(w[i]);
        cr_assert(raw_send(w[i]->fd, f + cut, fl - cut) == 0);
        uint8_t in[16];
        cr_assert_eq(ws_read_packet(w[i], in, sizeof(in)), 5);
        cr_assert(in[0] == 0x90 && in[4] == 1, "SUBACK granting 1");
    }
    for (int i = 0; i < N; i++) {
        char topic[32];
        snprintf(topic, sizeof(topic), "move/%d", (i + 3) % N);
        struct pkt p;
        pkt_publish(&p, topic, "moved", 5, 0, false, false, 0);
        ws_send_pkt(w[i], &p);
        uint8_t in[128];
        size_t n = ws_read_packet(w[(i + 3) % N], in, sizeof(in));
        cr_assert(in[0] == 0x30 && memcmp(in + n - 5, "moved", 5) == 0);
    }
    for (int i = 0; i < N; i++)
        ws_free(w[i]);
    broker_stop(&b);
}
