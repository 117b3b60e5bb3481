/* net/peer: IPv4 stored v4-mapped and shown as plain IPv4, IPv6 as is,
 * ports in host order, unknown and truncated addresses, short buffers. */
#include "net/peer.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

Test(peer, ipv4_is_stored_mapped_and_shown_plain)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(50123)};
    cr_assert_eq(inet_pton(AF_INET, "127.0.0.2", &sa.sin_addr), 1);
    struct net_peer p;
    cr_assert_eq(net_peer_from_sockaddr(&p, (struct sockaddr *)&sa, sizeof(sa)), 0);
    static const uint8_t want[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 2};
    cr_assert_arr_eq(p.addr, want, 16);
    cr_assert_eq(p.port, 50123);
    char buf[NET_PEER_STRLEN];
    cr_assert_eq(net_peer_format(&p, buf, sizeof(buf)), 0);
    cr_assert_str_eq(buf, "127.0.0.2");
}

Test(peer, ipv6_is_kept_and_shown_as_ipv6)
{
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(1)};
    sa.sin6_addr = in6addr_loopback;
    struct net_peer p;
    cr_assert_eq(net_peer_from_sockaddr(&p, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(p.port, 1);
    char buf[NET_PEER_STRLEN];
    cr_assert_eq(net_peer_format(&p, buf, sizeof(buf)), 0);
    cr_assert_str_eq(buf, "::1");
    cr_assert_eq(inet_pton(AF_INET6, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", &sa.sin6_addr), 1);
    cr_assert_eq(net_peer_from_sockaddr(&p, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(net_peer_format(&p, buf, sizeof(buf)), 0);
    cr_assert_str_eq(buf, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
}

Test(peer, unknown_and_truncated_addresses)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(7)};
    struct net_peer p;
    /* The kernel wrote less than an address: unknown, not half of one. */
    cr_assert_eq(net_peer_from_sockaddr(&p, (struct sockaddr *)&sa, 4), -EAFNOSUPPORT);
    struct sockaddr un = {.sa_family = AF_UNIX};
    cr_assert_eq(net_peer_from_sockaddr(&p, &un, sizeof(un)), -EAFNOSUPPORT);
    char buf[NET_PEER_STRLEN] = "x";
    cr_assert_eq(net_peer_format(&p, buf, sizeof(buf)), -ENOENT);
    cr_assert_str_eq(buf, "");
}

Test(peer, short_buffer_is_enospc)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(7)};
    cr_assert_eq(inet_pton(AF_INET, "192.168.100.200", &sa.sin_addr), 1);
    struct net_peer p;
    cr_assert_eq(net_peer_from_sockaddr(&p, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char buf[8];
    cr_assert_eq(net_peer_format(&p, buf, sizeof(buf)), -ENOSPC);
    cr_assert_str_eq(buf, "");
}
