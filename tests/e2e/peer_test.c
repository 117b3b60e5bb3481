/* E2E, the client's address as the auth plugin sees it: the test plugin
 * (challenge_plugin.c) allows every client and returns "<remote_addr>
 * <remote_port>" as the CONNACK user property "peer", and raw MQTT 5.0
 * sockets bound to a known source compare it with their own address and
 * port: IPv4 from 127.0.0.2 (shown as plain IPv4, not ::ffff:), IPv6 from
 * ::1 on a second listener. Authentication runs on the shard that accepted
 * the connection; with four shards most clients then move to their home
 * shard, which writes the CONNACK with what the plugin said. ringmqd only. */
#include "harness_v5.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct broker b;
static struct v5_pkt pk;

TestSuite(peer, .fini = e2e_fini, .timeout = 60);

static void start(const char *extra1, const char *extra2)
{
    if (e2e_mosquitto())
        cr_skip_test("ringmq plugins");
    static char set_path[300];
    snprintf(set_path, sizeof(set_path), "plugin.peer.path=%s", getenv("RINGMQ_CHALLENGE_SO"));
    broker_start(&b, set_path, extra1, extra2, NULL);
}

/* Connects from `src` (port 0: the kernel picks) to `dst`, sends a 5.0
 * CONNECT with client id `id` and returns the CONNACK's user property in
 * `peer`; *src_port gets the port the socket got. */
static void connect_from(struct sockaddr *src, struct sockaddr *dst, socklen_t len, const char *id,
                         char *peer, size_t peer_len, unsigned *src_port)
{
    int fd = socket(src->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* Bind first so the source address is ours to choose and the port is
     * known before the broker sees the connection. */
    cr_assert(bind(fd, src, len) == 0, "bind: %s", strerror(errno));
    struct sockaddr_storage me;
    socklen_t mlen = sizeof(me);
    cr_assert(getsockname(fd, (struct sockaddr *)&me, &mlen) == 0);
    *src_port = ntohs(me.ss_family == AF_INET ? ((struct sockaddr_in *)&me)->sin_port
                                              : ((struct sockaddr_in6 *)&me)->sin6_port);
    cr_assert(connect(fd, dst, len) == 0, "connect: %s", strerror(errno));
    struct raw_connect o = {.flags = -1, .clean = true, .id = id, .keepalive = 60};
    struct pkt p;
    pkt_connect5(&p, &o, NULL, NULL);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    v5_expect(fd, T_CONNACK, &pk);
    cr_assert_eq(pk.reason, 0, "%s: CONNACK 0x%02x", id, pk.reason);
    const struct v5_prop *up = v5_prop(&pk, P_USER_PROPERTY, 2);
    cr_assert(up && up->len == 4 && !memcmp(up->data, "peer", 4), "%s: no user property peer", id);
    cr_assert(up->len2 < peer_len);
    memcpy(peer, up->data2, up->len2);
    peer[up->len2] = 0;
    close(fd);
}

Test(peer, ipv4_address_and_port_reach_the_auth_plugin_on_every_shard)
{
    start(NULL, NULL);
    struct sockaddr_in src = {.sin_family = AF_INET};
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)b.port)};
    inet_pton(AF_INET, "127.0.0.2", &src.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
    /* With four shards most of these ids live on another shard than the
     * one whose listener accepts them. */
    for (int i = 0; i < 8; i++) {
        char id[32], peer[128], want[64];
        unsigned port;
        snprintf(id, sizeof(id), "peer-v4-%d", i);
        connect_from((struct sockaddr *)&src, (struct sockaddr *)&dst, sizeof(src), id, peer,
                     sizeof(peer), &port);
        snprintf(want, sizeof(want), "127.0.0.2 %u", port);
        cr_assert_str_eq(peer, want, "client %s", id);
    }
    broker_stop(&b);
}

/* The port of listener "v6" from the broker's log ("listening on
 * [::1]:PORT"), which is written with the other listeners' lines before
 * the broker is ready. */
static int v6_port(void)
{
    char path[128], line[1024];
    snprintf(path, sizeof(path), "%s/broker.log", b.dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    int port = 0;
    while (!port && fgets(line, sizeof(line), f)) {
        const char *at = strstr(line, "listening on [::1]:");
        if (at)
            port = atoi(at + strlen("listening on [::1]:"));
    }
    fclose(f);
    return port;
}

static bool have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

Test(peer, ipv6_address_and_port_reach_the_auth_plugin)
{
    if (!have_ipv6_loopback())
        cr_skip_test("no IPv6 loopback (::1) on this host");
    start("listener.v6.bind=::1", "listener.v6.port=0");
    /* The harness returns once the first listener answers; the second's
     * line is logged just after it. */
    broker_wait_log(&b, "listening on [::1]:", 1);
    int port = v6_port();
    cr_assert(port > 0, "no 'listening on [::1]' line in the broker log");
    struct sockaddr_in6 src = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    struct sockaddr_in6 dst = {.sin6_family = AF_INET6,
                               .sin6_port = htons((uint16_t)port),
                               .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    for (int i = 0; i < 8; i++) {
        char id[32], peer[128], want[64];
        unsigned sport;
        snprintf(id, sizeof(id), "peer-v6-%d", i);
        connect_from((struct sockaddr *)&src, (struct sockaddr *)&dst, sizeof(src), id, peer,
                     sizeof(peer), &sport);
        snprintf(want, sizeof(want), "::1 %u", sport);
        cr_assert_str_eq(peer, want, "client %s", id);
    }
    broker_stop(&b);
}
