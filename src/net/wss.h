/*
 * wss: the `wss` transport, MQTT over WebSocket over TLS (MQTT 5.0 section
 * 6; what browsers and many mobile SDKs use on port 443).
 *
 * Not a transport written again: `ws` (ws.h) runs on `tls` (tls.h) as the
 * layers of a stack (transport_stack.h), each with its own state and its
 * listener's options, which are the union of both: tls_cert, tls_key,
 * tls_ca, tls_verify_client, tls_crl, tls_min_version, the cipher lists,
 * the handshake bound and sni.*, and ws_path, ws_allowed_origins,
 * ws_max_frame. A stream moves to its home shard with both layers' state
 * (the TLS keys and the frame parser), and an idle one holds no buffer,
 * as with each of them alone.
 */
#ifndef RINGMQ_NET_WSS_H
#define RINGMQ_NET_WSS_H

#include "net/transport.h"

/* The wss kind (transport.c lists it). */
extern const struct transport_kind transport_kind_wss;

#endif
