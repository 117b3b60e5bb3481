/* E2E, the PROXY protocol (issue 12): a listener with proxy_protocol = any
 * and proxy_trusted = 127.0.0.1 takes a v1 or v2 header written by the
 * test before a raw MQTT 5.0 CONNECT, and the address it carries is the
 * client's address as the auth plugin sees it (the challenge plugin
 * returns "<remote_addr> <remote_port>" as the CONNACK user property
 * "peer"; with four shards most clients then move to their home shard,
 * the address with them). A header split across writes, LOCAL/UNKNOWN
 * (the connection's own address), a source outside proxy_trusted
 * (127.0.0.2: closed), malformed, truncated and over-long headers
 * (closed, logged), and a header on a listener without proxy_protocol
 * (the MQTT codec refuses it); another client stays connected
 * throughout. ringmqd only. */
#include "harness_v5.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct broker b;

TestSuite(proxy, .fini = e2e_fini, .timeout = 60);

static void start(const char *mode, const char *extra)
{
    if (e2e_mosquitto())
        cr_skip_test("ringmq plugins");
    static char set_path[300], set_mode[64];
    snprintf(set_path, sizeof(set_path), "plugin.peer.path=%s", getenv("RINGMQ_CHALLENGE_SO"));
    snprintf(set_mode, sizeof(set_mode), "listener.default.proxy_protocol=%s", mode);
    broker_start(&b, set_path, set_mode, "listener.default.proxy_trusted=10.0.0.0/8, 127.0.0.1",
                 extra, NULL);
}

/* A TCP connection to the broker from source address `src`; *sport gets
 * its port. */
static int open_from(const char *src, unsigned *sport)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in me = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &me.sin_addr);
    cr_assert(bind(fd, (struct sockaddr *)&me, sizeof(me)) == 0, "bind: %s", strerror(errno));
    socklen_t len = sizeof(me);
    cr_assert(getsockname(fd, (struct sockaddr *)&me, &len) == 0);
    if (sport)
        *sport = ntohs(me.sin_port);
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)b.port)};
    inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
    cr_assert(connect(fd, (struct sockaddr *)&dst, sizeof(dst)) == 0, "connect: %s",
              strerror(errno));
    return fd;
}

/* A 5.0 CONNECT with client id `id`, encoded into out; its length. */
static size_t connect_bytes(const char *id, uint8_t *out)
{
    static struct pkt p;
    struct raw_connect o = {.flags = -1, .clean = true, .id = id, .keepalive = 60};
    pkt_connect5(&p, &o, NULL, NULL);
    return pkt_encode(&p, out);
}

/* Sends header + CONNECT in one write and returns the address the auth
 * plugin saw ("ADDR PORT") in peer; the connection stays open in *fdp. */
static void connect_with(int fd, const void *hdr, size_t hlen, const char *id, char *peer,
                         size_t peer_len)
{
    uint8_t buf[2048];
    cr_assert(hlen < 1024);
    if (hlen) /* memcpy's source may not be NULL, even for 0 bytes */
        memcpy(buf, hdr, hlen);
    size_t n = hlen + connect_bytes(id, buf + hlen);
    cr_assert(raw_send(fd, buf, n) == 0);
    struct v5_pkt pk;
    v5_expect(fd, T_CONNACK, &pk);
    cr_assert_eq(pk.reason, 0, "%s: CONNACK 0x%02x", id, pk.reason);
    const struct v5_prop *up = v5_prop(&pk, P_USER_PROPERTY, 2);
    cr_assert(up && up->len == 4 && !memcmp(up->data, "peer", 4), "%s: no user property", id);
    cr_assert(up->len2 < peer_len);
    memcpy(peer, up->data2, up->len2);
    peer[up->len2] = 0;
}

/* The client that must stay connected while others misbehave: a PINGREQ
 * still gets its PINGRESP. */
static int bystander(void)
{
    char peer[128];
    const char *h = "PROXY TCP4 10.9.9.9 127.0.0.1 1111 1883\r\n";
    int fd = open_from("127.0.0.1", NULL);
    connect_with(fd, h, strlen(h), "bystander", peer, sizeof(peer));
    cr_assert_str_eq(peer, "10.9.9.9 1111");
    return fd;
}

static void bystander_alive(int fd)
{
    static const uint8_t ping[2] = {0xc0, 0x00};
    cr_assert(raw_send(fd, ping, 2) == 0);
    struct v5_pkt pk;
    v5_expect(fd, T_PINGRESP, &pk);
}

Test(proxy, v1_header_address_reaches_the_auth_plugin_on_every_shard)
{
    start("v1", NULL);
    for (int i = 0; i < 8; i++) {
        char id[32], hdr[128], peer[128], want[64];
        snprintf(id, sizeof(id), "pp-v1-%d", i);
        snprintf(hdr, sizeof(hdr), "PROXY TCP4 203.0.113.%d 127.0.0.1 %d 1883\r\n", 10 + i,
                 40000 + i);
        int fd = open_from("127.0.0.1", NULL);
        connect_with(fd, hdr, strlen(hdr), id, peer, sizeof(peer));
        snprintf(want, sizeof(want), "203.0.113.%d %d", 10 + i, 40000 + i);
        cr_assert_str_eq(peer, want, "client %s", id);
        close(fd);
    }
    char peer[128];
    const char *h6 = "PROXY TCP6 2001:db8::42 ::1 50000 1883\r\n";
    int fd = open_from("127.0.0.1", NULL);
    connect_with(fd, h6, strlen(h6), "pp-v1-6", peer, sizeof(peer));
    cr_assert_str_eq(peer, "2001:db8::42 50000");
    close(fd);
    broker_stop(&b);
}

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A v2 header: command, family, then `block` (addresses and TLVs). */
static size_t v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const void *block, size_t n)
{
    memcpy(out, sig, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (uint8_t)(n >> 8);
    out[15] = (uint8_t)n;
    if (n) /* memcpy's source may not be NULL, even for 0 bytes */
        memcpy(out + 16, block, n);
    return 16 + n;
}

Test(proxy, v2_header_address_reaches_the_auth_plugin_on_every_shard)
{
    start("v2", NULL);
    for (int i = 0; i < 8; i++) {
        char id[32], peer[128], want[64];
        snprintf(id, sizeof(id), "pp-v2-%d", i);
        /* INET, then an AUTHORITY and an SSL TLV (client SSL, verified,
         * version sub-TLV) as a TLS-terminating balancer sends them. */
        uint8_t block[64] = {198, 51, 100,  (uint8_t)i,          127,  0,
                             0,   1,  0x9c, (uint8_t)(0x40 + i), 0x07, 0x5b};
        size_t n = 12;
        memcpy(block + n, "\x02\x00\x04host", 7), n += 7;
        memcpy(block + n, "\x20\x00\x0f\x01\x00\x00\x00\x00\x21\x00\x07TLSv1.3", 18), n += 18;
        uint8_t hdr[128];
        size_t hl = v2(hdr, 0x21, 0x11, block, n);
        int fd = open_from("127.0.0.1", NULL);
        connect_with(fd, hdr, hl, id, peer, sizeof(peer));
        snprintf(want, sizeof(want), "198.51.100.%d %d", i, 0x9c40 + i);
        cr_assert_str_eq(peer, want, "client %s", id);
        close(fd);
    }
    uint8_t a6[36] = {0x20, 0x01, 0x0d, 0xb8, [15] = 7, [31] = 1, [32] = 0xc3, [33] = 0x50};
    uint8_t hdr[64];
    size_t hl = v2(hdr, 0x21, 0x21, a6, sizeof(a6));
    char peer[128];
    int fd = open_from("127.0.0.1", NULL);
    connect_with(fd, hdr, hl, "pp-v2-6", peer, sizeof(peer));
    cr_assert_str_eq(peer, "2001:db8::7 50000");
    close(fd);
    broker_stop(&b);
}

Test(proxy, header_split_across_writes)
{
    start("any", NULL);
    const char *h = "PROXY TCP4 192.0.2.1 127.0.0.1 2222 1883\r\n";
    uint8_t c[256];
    size_t cl = connect_bytes("pp-split", c);
    int fd = open_from("127.0.0.1", NULL);
    /* Pieces with pauses between them, so that they are likely to arrive
     * as separate receives (the result must be the same either way), the
     * last one with the CONNECT. */
    size_t cuts[] = {1, 7, 20, strlen(h) - 1};
    size_t at = 0;
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        cr_assert(raw_send(fd, h + at, cuts[i] - at) == 0);
        at = cuts[i];
        poll(NULL, 0, 30);
    }
    uint8_t rest[300];
    memcpy(rest, h + at, strlen(h) - at);
    memcpy(rest + strlen(h) - at, c, cl);
    cr_assert(raw_send(fd, rest, strlen(h) - at + cl) == 0);
    struct v5_pkt pk;
    v5_expect(fd, T_CONNACK, &pk);
    const struct v5_prop *up = v5_prop(&pk, P_USER_PROPERTY, 2);
    cr_assert(up && up->len2 == strlen("192.0.2.1 2222") &&
              !memcmp(up->data2, "192.0.2.1 2222", up->len2));
    close(fd);
    broker_stop(&b);
}

Test(proxy, local_and_unknown_keep_the_connection_address)
{
    start("any", NULL);
    char peer[128], want[64];
    unsigned sport;
    uint8_t hdr[16];
    size_t hl = v2(hdr, 0x20, 0x00, NULL, 0); /* LOCAL: the balancer's health check */
    int fd = open_from("127.0.0.1", &sport);
    connect_with(fd, hdr, hl, "pp-local", peer, sizeof(peer));
    snprintf(want, sizeof(want), "127.0.0.1 %u", sport);
    cr_assert_str_eq(peer, want);
    close(fd);
    const char *unknown = "PROXY UNKNOWN\r\n";
    fd = open_from("127.0.0.1", &sport);
    connect_with(fd, unknown, strlen(unknown), "pp-unknown", peer, sizeof(peer));
    snprintf(want, sizeof(want), "127.0.0.1 %u", sport);
    cr_assert_str_eq(peer, want);
    close(fd);
    broker_stop(&b);
}

/* Header + CONNECT from src: the broker closes without a CONNACK. The
 * client id is long enough that, on a listener without proxy_protocol, a
 * v1 header's "PR" (read as a PUBREL of 82 bytes) is whole, so the codec
 * refuses it at once instead of at the connect timeout. */
static void expect_closed(const char *src, const void *hdr, size_t hlen, const char *what)
{
    uint8_t buf[2048];
    memcpy(buf, hdr, hlen);
    size_t n = hlen + connect_bytes("pp-bad-0123456789012345678901234567890123456789012345678901234"
                                    "567890123456789",
                                    buf + hlen);
    int fd = open_from(src, NULL);
    raw_send(fd, buf, n); /* may fail: closed at accept */
    struct v5_pkt pk;
    int rc = v5_read(fd, &pk, E2E_WAIT_MS);
    cr_assert(rc <= 0, "%s: got packet type %d instead of a close", what, pk.type);
    cr_assert_neq(rc, -ETIMEDOUT, "%s: not closed", what);
    close(fd);
}

Test(proxy, untrusted_source_is_closed_at_accept)
{
    start("any", NULL);
    int by = bystander();
    const char *h = "PROXY TCP4 10.1.1.1 127.0.0.1 3333 1883\r\n";
    expect_closed("127.0.0.2", h, strlen(h), "v1 from 127.0.0.2");
    uint8_t a[12] = {10, 1, 1, 1, 127, 0, 0, 1, 1, 1, 1, 1};
    uint8_t hdr[64];
    expect_closed("127.0.0.2", hdr, v2(hdr, 0x21, 0x11, a, sizeof(a)), "v2 from 127.0.0.2");
    broker_wait_log(&b, "connection from 127.0.0.2 refused: not in proxy_trusted", 2);
    bystander_alive(by);
    close(by);
    broker_stop(&b);
}

Test(proxy, malformed_headers_are_closed)
{
    start("any", NULL);
    int by = bystander();
    static const char *text[] = {
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",       /* LF without CR */
        "PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n", /* port */
        "PROXY TCP4 ::1 ::1 1 2\r\n",             /* family */
        "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",    /* two spaces */
        "GARBAGE\r\n",                            /* not a header */
    };
    for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
        expect_closed("127.0.0.1", text[i], strlen(text[i]), text[i]);
    /* No CRLF in the first 107 bytes. */
    char longline[120] = "PROXY UNKNOWN ";
    memset(longline + 14, 'x', sizeof(longline) - 15);
    longline[sizeof(longline) - 1] = 0;
    expect_closed("127.0.0.1", longline, strlen(longline), "line over 107 bytes");
    uint8_t a[12] = {10, 1, 1, 1, 127, 0, 0, 1, 1, 1, 1, 1};
    uint8_t hdr[64];
    size_t hl = v2(hdr, 0x21, 0x11, a, sizeof(a));
    hdr[12] = 0x31; /* version 3 */
    expect_closed("127.0.0.1", hdr, hl, "v2 version 3");
    hl = v2(hdr, 0x21, 0x11, a, 8); /* block shorter than INET's 12 bytes */
    expect_closed("127.0.0.1", hdr, hl, "v2 block short of its addresses");
    uint8_t tl[15] = {10, 1, 1, 1, 127, 0, 0, 1, 1, 1, 1, 1, 0x02, 0x00, 0x09};
    hl = v2(hdr, 0x21, 0x11, tl, sizeof(tl)); /* TLV of 9 bytes, none follow */
    expect_closed("127.0.0.1", hdr, hl, "v2 TLV past the header");
    hl = v2(hdr, 0x21, 0x11, a, sizeof(a));
    hdr[14] = 0xff; /* a 65292-byte block: over what the broker takes */
    expect_closed("127.0.0.1", hdr, 16, "v2 block too large");
    broker_wait_log(&b, "bad PROXY protocol header", 9);
    bystander_alive(by);
    close(by);
    broker_stop(&b);
}

Test(proxy, truncated_header_is_closed_at_the_connect_timeout)
{
    start("any", "limits.connect_timeout=1");
    int by = bystander();
    /* Half a v1 line, half a v2 header: nothing more comes. */
    const char *half = "PROXY TCP4 1.2.3.4 ";
    int fd1 = open_from("127.0.0.1", NULL);
    cr_assert(raw_send(fd1, half, strlen(half)) == 0);
    uint8_t a[12] = {0};
    uint8_t hdr[64];
    v2(hdr, 0x21, 0x11, a, sizeof(a));
    int fd2 = open_from("127.0.0.1", NULL);
    cr_assert(raw_send(fd2, hdr, 20) == 0);
    cr_assert_eq(raw_wait_close(fd1, E2E_WAIT_MS), 0, "half a v1 line: not closed");
    cr_assert_eq(raw_wait_close(fd2, E2E_WAIT_MS), 0, "half a v2 header: not closed");
    close(fd1);
    close(fd2);
    bystander_alive(by);
    close(by);
    broker_stop(&b);
}

Test(proxy, header_without_proxy_protocol_is_refused_by_mqtt)
{
    if (e2e_mosquitto())
        cr_skip_test("ringmq plugins");
    static char set_path[300];
    snprintf(set_path, sizeof(set_path), "plugin.peer.path=%s", getenv("RINGMQ_CHALLENGE_SO"));
    broker_start(&b, set_path, NULL);
    char peer[128];
    int by = open_from("127.0.0.1", NULL);
    connect_with(by, NULL, 0, "plain-bystander", peer, sizeof(peer));
    const char *h = "PROXY TCP4 10.1.1.1 127.0.0.1 3333 1883\r\n";
    expect_closed("127.0.0.1", h, strlen(h), "v1 on a plain listener");
    uint8_t a[12] = {10, 1, 1, 1, 127, 0, 0, 1, 1, 1, 1, 1};
    uint8_t hdr[64];
    expect_closed("127.0.0.1", hdr, v2(hdr, 0x21, 0x11, a, sizeof(a)), "v2 on a plain listener");
    bystander_alive(by);
    close(by);
    broker_stop(&b);
}
