/*
 * net/stream_proxy: the PROXY header at the start of a stream, driven
 * through its hooks without a ring: trusted and untrusted sources, a
 * header whole in the first receive with the client's bytes after it, the
 * same split at every offset (held between receives, the table freed once
 * nothing is held), several streams holding at once, a refusal freeing
 * what was held, LOCAL keeping the socket's address, and a stream not
 * waiting for a header (adopted, or on a plain listener).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "config/config.h"
#include "net/stream.h"

static struct stream_loop loop;
static struct config_listener cl;

static void setup(void)
{
    memset(&loop, 0, sizeof(loop));
    memset(&cl, 0, sizeof(cl));
    strcpy(cl.name, "lb");
    cl.proxy_protocol = CONFIG_PROXY_ANY;
    cr_assert_eq(cidr_parse(&cl.proxy_trusted.v[0], "10.0.0.0/8", 10), 0);
    cl.proxy_trusted.n = 1;
    loop.proxy[1] = &cl; /* listener 1 takes headers, listener 0 does not */
}

TestSuite(stream_proxy, .init = setup);

static struct net_peer v4(const char *a, uint16_t port)
{
    struct net_peer p = {.port = port};
    p.addr[10] = p.addr[11] = 0xff;
    inet_pton(AF_INET, a, p.addr + 12);
    return p;
}

/* A stream accepted on `listener` from 10.0.0.5:999. */
static void accepted(struct stream *st, uint8_t listener)
{
    memset(st, 0, sizeof(*st));
    st->listener = listener;
    st->peer = v4("10.0.0.5", 999);
    stream_proxy_expect(&loop, st);
}

static const char hdr[] = "PROXY TCP4 192.0.2.9 10.0.0.1 4242 1883\r\n";
static const char body[] = "\x10\x0c\x00\x04MQTT";

Test(stream_proxy, only_trusted_sources_are_admitted)
{
    struct net_peer in = v4("10.200.0.1", 1), out = v4("127.0.0.1", 1);
    cr_assert_eq(stream_proxy_admit(&loop, 1, &in), 0);
    cr_assert_eq(stream_proxy_admit(&loop, 1, &out), -EPERM);
    cr_assert_eq(stream_proxy_admit(&loop, 0, &out), 0); /* proxy_protocol off */
}

Test(stream_proxy, whole_header_then_the_clients_bytes)
{
    struct stream st;
    accepted(&st, 1);
    cr_assert(st.proxy_wait);
    uint8_t in[128];
    size_t hl = strlen(hdr), bl = sizeof(body) - 1;
    memcpy(in, hdr, hl);
    memcpy(in + hl, body, bl);
    cr_assert_eq(stream_proxy_input(&loop, &st, in, hl + bl), (long)hl);
    cr_assert_not(st.proxy_wait);
    cr_assert_eq(st.proxy_hold, 0);
    struct net_peer want = v4("192.0.2.9", 4242);
    cr_assert_arr_eq(&st.peer, &want, sizeof(want));
}

Test(stream_proxy, split_at_every_offset)
{
    size_t hl = strlen(hdr), bl = sizeof(body) - 1;
    uint8_t in[128];
    memcpy(in, hdr, hl);
    memcpy(in + hl, body, bl);
    for (size_t cut = 1; cut < hl; cut++) {
        struct stream st;
        accepted(&st, 1);
        cr_assert_eq(stream_proxy_input(&loop, &st, in, cut), (long)cut);
        cr_assert(st.proxy_wait && st.proxy_hold, "cut %zu", cut);
        cr_assert_eq(loop.proxy_holds.used, 1);
        /* The second receive ends the header and carries the client's
         * first bytes: only the header's share is taken. */
        cr_assert_eq(stream_proxy_input(&loop, &st, in + cut, hl + bl - cut), (long)(hl - cut),
                     "cut %zu", cut);
        cr_assert_not(st.proxy_wait);
        cr_assert_eq(st.proxy_hold, 0);
        cr_assert_null(loop.proxy_holds.slot, "the table outlived the last hold");
        struct net_peer want = v4("192.0.2.9", 4242);
        cr_assert_arr_eq(&st.peer, &want, sizeof(want));
    }
}

Test(stream_proxy, one_byte_at_a_time_on_many_streams)
{
    enum { N = 40 }; /* more than the table's first 16 slots */
    static struct stream st[N];
    for (int i = 0; i < N; i++)
        accepted(&st[i], 1);
    size_t hl = strlen(hdr);
    for (size_t k = 0; k < hl; k++)
        for (int i = 0; i < N; i++) {
            long want = 1;
            cr_assert_eq(stream_proxy_input(&loop, &st[i], (const uint8_t *)hdr + k, 1), want);
        }
    for (int i = 0; i < N; i++) {
        cr_assert_not(st[i].proxy_wait);
        cr_assert_eq(st[i].peer.port, 4242);
    }
    cr_assert_eq(loop.proxy_holds.used, 0);
    cr_assert_null(loop.proxy_holds.slot);
}

Test(stream_proxy, refusal_frees_what_was_held)
{
    struct stream st;
    accepted(&st, 1);
    cr_assert_eq(stream_proxy_input(&loop, &st, (const uint8_t *)"PROXY TC", 8), 8);
    cr_assert_eq(loop.proxy_holds.used, 1);
    cr_assert_eq(stream_proxy_input(&loop, &st, (const uint8_t *)"P5 x\r\n", 6), -EPROTO);
    cr_assert_eq(st.proxy_hold, 0);
    cr_assert_null(loop.proxy_holds.slot);
    cr_assert(st.proxy_wait, "bytes after a refusal must not reach the transport");
    struct net_peer want = v4("10.0.0.5", 999);
    cr_assert_arr_eq(&st.peer, &want, sizeof(want));
}

Test(stream_proxy, release_of_a_closed_stream_frees_its_hold)
{
    struct stream st;
    accepted(&st, 1);
    cr_assert_eq(stream_proxy_input(&loop, &st, (const uint8_t *)"PROXY", 5), 5);
    stream_proxy_release(&loop, &st);
    cr_assert_eq(st.proxy_hold, 0);
    cr_assert_null(loop.proxy_holds.slot);
}

Test(stream_proxy, local_keeps_the_socket_address)
{
    struct stream st;
    accepted(&st, 1);
    const char *u = "PROXY UNKNOWN\r\n";
    cr_assert_eq(stream_proxy_input(&loop, &st, (const uint8_t *)u, strlen(u)), (long)strlen(u));
    struct net_peer want = v4("10.0.0.5", 999);
    cr_assert_arr_eq(&st.peer, &want, sizeof(want));
}

Test(stream_proxy, plain_listener_waits_for_nothing)
{
    struct stream st;
    accepted(&st, 0);
    cr_assert_not(st.proxy_wait);
}
