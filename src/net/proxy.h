/*
 * proxy: the PROXY protocol header (HAProxy's "The PROXY protocol",
 * versions 1 and 2) that a load balancer writes at the start of a
 * connection to tell the server who the client is.
 *
 * A pure parser over the bytes received so far (the caller keeps them
 * until the header is complete: a header may arrive in pieces): it says
 * "need more", "done, this long, these addresses", or "refuse, because".
 * Validation is strict, as the specification asks ("any sequence which
 * does not exactly match the protocol must be discarded"): a bad prefix is
 * refused at its first wrong byte, lengths must agree with what they
 * count, and nothing may point past the header. No allocation, no I/O, no
 * logging; any thread.
 *
 * Where the header goes (which listeners, whose headers are trusted) is
 * stream_proxy.c's business.
 */
#ifndef RINGMQ_NET_PROXY_H
#define RINGMQ_NET_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/peer.h"

/* The longest v1 line, CRLF included ("PROXY UNKNOWN" with two full IPv6
 * addresses and ports). */
#define PROXY_V1_MAX 107u
/* A v2 header is 16 bytes and a block of up to 65535 (addresses, then
 * TLVs); a larger block than this is refused (what balancers send is
 * addresses and a few short TLVs), which bounds what a caller holds. */
#define PROXY_V2_MAX_BLOCK 1024u
#define PROXY_HEADER_MAX   (16u + PROXY_V2_MAX_BLOCK)

/* Which versions proxy_parse accepts (a mask; config's enum config_proxy
 * uses the same values). */
#define PROXY_ACCEPT_V1 1u
#define PROXY_ACCEPT_V2 2u

/* v2 TLV types and PP2_TYPE_SSL's client bits, as the specification
 * numbers them. */
enum {
    PROXY_TLV_ALPN = 0x01,
    PROXY_TLV_AUTHORITY = 0x02,
    PROXY_TLV_CRC32C = 0x03,
    PROXY_TLV_NOOP = 0x04,
    PROXY_TLV_UNIQUE_ID = 0x05,
    PROXY_TLV_SSL = 0x20,
    PROXY_SUBTLV_SSL_VERSION = 0x21,
    PROXY_SUBTLV_SSL_CN = 0x22,
    PROXY_SUBTLV_SSL_CIPHER = 0x23,
    PROXY_TLV_NETNS = 0x30,
};
#define PROXY_CLIENT_SSL       0x01u
#define PROXY_CLIENT_CERT_CONN 0x02u
#define PROXY_CLIENT_CERT_SESS 0x04u

/* Bytes inside the parsed buffer (borrowed: valid while it is); len 0
 * when absent. */
struct proxy_text {
    const uint8_t *p;
    uint16_t len;
};

struct proxy_header {
    uint8_t version; /* 1 or 2 */
    /* Keep the connection's own addresses: a v2 LOCAL command (the proxy's
     * own health check), a v1 UNKNOWN line, or a v2 family this broker does
     * not take addresses from (UNSPEC, UNIX, UDP: the specification's
     * fall-back to UNSPEC). src and dst are then unknown (zero). */
    bool local;
    struct net_peer src; /* the client */
    struct net_peer dst; /* the address the client connected to */
    /* v2 TLVs (each at most once): the TLS the proxy ended, and the host
     * name the client asked for (SNI). */
    bool ssl;            /* a PP2_TYPE_SSL TLV was there */
    uint8_t ssl_client;  /* PROXY_CLIENT_* bits */
    uint32_t ssl_verify; /* 0: the client sent a certificate and it verified */
    struct proxy_text ssl_version, ssl_cn, authority;
};

/*
 * Parse the first `len` bytes of a connection (all of them, from its
 * first byte, on every call) as a header of a version in `accept`.
 * Returns:
 *  - the header's length (> 0): complete and valid, *h filled; the bytes
 *    after it are the connection's own;
 *  - 0: valid so far, more bytes needed: *need is the header's total
 *    length once known (v2 after its first 16 bytes), else a lower bound;
 *  - -EPROTO: not a header of an accepted version, or malformed;
 *    -EMSGSIZE: a v2 block over PROXY_V2_MAX_BLOCK. *why then says what
 *    (a static string).
 * Never reads past len, never asks for more than PROXY_HEADER_MAX bytes.
 */
int proxy_parse(const uint8_t *buf, size_t len, unsigned accept, struct proxy_header *h,
                size_t *need, const char **why);

/* CRC32c (Castagnoli, as in RFC 4960 appendix B) of n bytes: what
 * PP2_TYPE_CRC32C carries. */
uint32_t proxy_crc32c(const uint8_t *p, size_t n);

#endif
