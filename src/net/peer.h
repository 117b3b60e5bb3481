/*
 * peer: a connection's remote address and port, kept compactly (18 bytes,
 * 2-byte aligned, so it fits the padding of the connection struct) and
 * turned into text only when someone asks for it (an auth plugin, an
 * event), never on the per-packet path.
 *
 * IPv4 addresses are stored v4-mapped (::ffff:a.b.c.d) so that one layout
 * holds both families; net_peer_format shows them as plain IPv4 again.
 */
#ifndef RINGMQ_NET_PEER_H
#define RINGMQ_NET_PEER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest text net_peer_format writes, NUL included (INET6_ADDRSTRLEN). */
#define NET_PEER_STRLEN 46

/* All zero: unknown (never a real peer: "::" cannot connect to us). */
struct net_peer {
    uint8_t addr[16]; /* network byte order; IPv4 as ::ffff:a.b.c.d */
    uint16_t port;    /* host byte order */
};

/* Fill *p from an address the kernel returned (accept, getpeername) of
 * `len` bytes. Returns 0, or -EAFNOSUPPORT for anything but a complete
 * AF_INET / AF_INET6 address, leaving *p unknown (all zero). */
int net_peer_from_sockaddr(struct net_peer *p, const struct sockaddr *sa, socklen_t len);

/* The address as text into buf (at least NET_PEER_STRLEN bytes for any
 * address): "127.0.0.1" for an IPv4 peer, "::1" for IPv6. Returns 0,
 * -ENOENT when the address is unknown (buf is then ""), -ENOSPC when buf
 * is too small. */
int net_peer_format(const struct net_peer *p, char *buf, size_t len);

#endif
