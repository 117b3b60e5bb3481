/*
 * tls: MQTT over TLS 1.2 and 1.3 (`transport = tls`), on wolfSSL.
 *
 * wolfSSL never sees the socket: its I/O callbacks read from the bytes the
 * stream hands to `input` and write into output the transport owns, which
 * `seal` puts in front of the owner's encrypted bytes at the flush.
 * Decrypted application data is handed up from a per-thread scratch
 * buffer, so an idle connection holds no buffer of its own; wolfSSL's
 * handshake resources are released once the handshake is done.
 *
 * The listener's context (one WOLFSSL_CTX: certificate chain, key, CAs,
 * CRL, versions, ciphers, session tickets, ALPN "mqtt") is built before
 * the shards start and shared by them; a stream's WOLFSSL is its own and
 * moves with it to another shard of the same process (export/import carry
 * the pointer).
 */
#ifndef RINGMQ_NET_TLS_H
#define RINGMQ_NET_TLS_H

#include "net/transport.h"

/* The most its per-stream state takes (tls.c checks it), for a transport
 * that stacks another on it (wss). */
#define TLS_STATE_SIZE 56u

/* The tls kind: its stream ops and its listener context. */
extern const struct transport_kind transport_kind_tls;

#endif
