/*
 * xprt_info: what the transport knows of the client beyond its address
 * (the TLS it speaks, the server name it asked for, the certificate it
 * showed), for the auth plugin at CONNECT.
 *
 * One heap block per stream, made once (when the TLS handshake completes,
 * or when a PROXY header with TLS TLVs arrives) and immutable after: every
 * string points into the block itself, so it moves between shards as one
 * pointer and is freed with one free(). Streams without anything to say
 * (plain TCP) hold none. Pure data: no I/O, any thread.
 */
#ifndef RINGMQ_NET_XPRT_INFO_H
#define RINGMQ_NET_XPRT_INFO_H

#include <stdbool.h>
#include <stddef.h>

/* At most this many subjectAltName entries are kept (the first ones). */
#define XPRT_INFO_MAX_SANS 16u
/* Longest text kept of one field, NUL excluded; longer ones are cut. */
#define XPRT_INFO_FIELD_MAX 1024u

struct xprt_info {
    bool from_proxy;         /* the fields come from a PROXY v2 header's TLVs */
    bool cert_verified;      /* a client certificate was shown and verified */
    const char *tls_version; /* "TLSv1.3"; NULL: no TLS */
    const char *cipher;      /* "TLS13-AES128-GCM-SHA256" (wolfSSL's name); NULL: unknown */
    const char *sni;         /* server name the client asked for; NULL: none */
    /* The verified certificate's subject, one line ("/C=DE/O=Acme/CN=dev1"; from a
     * proxy: its CN alone), its CN, its SHA-256 over the DER as 64 lowercase hex
     * digits (NULL from a proxy); NULL when none was verified. */
    const char *subject;
    const char *cn;
    const char *sha256;
    /* subjectAltName entries as "DNS:name", "email:addr", "URI:uri". */
    const char *sans[XPRT_INFO_MAX_SANS];
    size_t n_sans;
};

/* The fields before packing: each NULL or a NUL-terminated string
 * (borrowed). */
struct xprt_info_draft {
    bool from_proxy, cert_verified;
    const char *tls_version, *cipher, *sni, *subject, *cn, *sha256;
    const char *sans[XPRT_INFO_MAX_SANS];
    size_t n_sans;
};

/* One block holding a copy of d (each string cut at XPRT_INFO_FIELD_MAX
 * bytes); free() it. NULL when out of memory. */
struct xprt_info *xprt_info_pack(const struct xprt_info_draft *d);

#endif
