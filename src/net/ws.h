/*
 * ws: the `ws` transport, MQTT over WebSocket (RFC 6455; MQTT 5.0 section
 * 6) on a plain stream.
 *
 * A stream starts with the HTTP/1.1 Upgrade request (ws_upgrade.h); once
 * answered 101 it carries frames: the payload of binary frames, however
 * they split MQTT packets, goes to the owner as one byte stream; the
 * owner's output leaves as binary frames (seal). Ping is answered with
 * pong, close with close; a client frame that breaks the rules closes the
 * connection with a close frame saying why (1002 protocol error, 1003 not
 * binary, 1009 over ws_max_frame).
 *
 * Idle cost: the per-stream state is a few dozen bytes (WS_STATE_SIZE,
 * added to every connection's slot); the request is held in a buffer of
 * its own only while it is read, and a control frame's payload only while
 * it arrives in pieces. The state a moving stream carries is the frame
 * parser's (export/import).
 */
#ifndef RINGMQ_NET_WS_H
#define RINGMQ_NET_WS_H

#include <stddef.h>
#include <stdint.h>

#include "net/transport.h"

/* The transport's table and its kind (transport.c lists it). */
extern const struct transport_ops transport_ws;
extern const struct transport_kind transport_kind_ws;

/* The most its per-stream state takes (ws.c checks it), for a transport
 * that stacks it on another (wss). */
#define WS_STATE_SIZE 48u

/* Close status codes it sends (RFC 6455 7.4.1). */
#define WS_CLOSE_NORMAL      1000
#define WS_CLOSE_PROTOCOL    1002
#define WS_CLOSE_UNSUPPORTED 1003
#define WS_CLOSE_TOO_BIG     1009

#endif
