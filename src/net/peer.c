/*
 * peer: compact storage and formatting of a connection's remote address
 * (see peer.h). Pure functions over caller's storage; any thread.
 */
#include "net/peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int net_peer_from_sockaddr(struct net_peer *p, const struct sockaddr *sa, socklen_t len)
{
    memset(p, 0, sizeof(*p));
    /* A short length means the kernel had no address to give (or a caller
     * passed a truncated one): unknown rather than half an address. */
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        memcpy(p->addr, v4_mapped_prefix, sizeof(v4_mapped_prefix));
        memcpy(p->addr + 12, &s4->sin_addr, 4);
        p->port = ntohs(s4->sin_port);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        memcpy(p->addr, &s6->sin6_addr, 16);
        p->port = ntohs(s6->sin6_port);
        return 0;
    }
    return -EAFNOSUPPORT;
}

int net_peer_format(const struct net_peer *p, char *buf, size_t len)
{
    static const uint8_t zero[16];
    if (len)
        buf[0] = 0;
    if (!memcmp(p->addr, zero, sizeof(zero)) && p->port == 0)
        return -ENOENT;
    const char *ok;
    /* Listeners are IPV6_V6ONLY, so a v4-mapped address only ever comes
     * from an IPv4 client: show it the way that client knows itself. */
    if (!memcmp(p->addr, v4_mapped_prefix, sizeof(v4_mapped_prefix)))
        ok = inet_ntop(AF_INET, p->addr + 12, buf, (socklen_t)len);
    else
        ok = inet_ntop(AF_INET6, p->addr, buf, (socklen_t)len);
    if (!ok) {
        if (len)
            buf[0] = 0;
        return -ENOSPC;
    }
    return 0;
}
