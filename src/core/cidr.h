/*
 * cidr: address ranges (a.b.c.d/n, x:y::/n) and whether an address is in
 * one, for access lists such as a listener's proxy_trusted.
 *
 * Addresses are 16 bytes in network byte order with IPv4 stored v4-mapped
 * (::ffff:a.b.c.d), as net/peer.h keeps a connection's address, so one
 * comparison serves both families: an IPv4 range is its mapped range
 * (/n becomes /96+n), and never matches an IPv6 address outside
 * ::ffff:0:0/96. Pure functions over the caller's storage; any thread.
 */
#ifndef RINGMQ_CORE_CIDR_H
#define RINGMQ_CORE_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cidr {
    uint8_t addr[16]; /* network byte order, bits past the prefix zero */
    uint8_t bits;     /* prefix length over the 128-bit form, 0..128 */
};

/*
 * Parse `len` bytes of s: an IPv4 or IPv6 literal, optionally followed by
 * /N (0..32 for IPv4, 0..128 for IPv6; without it, the one address).
 * Address bits past the prefix are cleared (10.1.2.3/8 is 10.0.0.0/8).
 * Returns 0, or -EINVAL (*c is then unchanged).
 */
int cidr_parse(struct cidr *c, const char *s, size_t len);

/* Whether addr (16 bytes, IPv4 v4-mapped) is inside c. */
bool cidr_contains(const struct cidr *c, const uint8_t addr[16]);

/* Whether addr is inside any of the n ranges of cs. */
bool cidr_any(const struct cidr *cs, size_t n, const uint8_t addr[16]);

#endif
