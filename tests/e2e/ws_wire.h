/* WebSocket bytes for the e2e tests of the ws and wss transports
 * (ws_test.c, wss_test.c): frames written as a client writes them, and
 * frames and MQTT packets read back from the broker through the test's
 * own exact reader (a socket, or TLS over it). */
#ifndef RINGMQ_E2E_WS_WIRE_H
#define RINGMQ_E2E_WS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One frame into out: fin bit, opcode, payload masked (with a fixed key)
 * when `masked`; `claimed` overrides the length field when non-zero (the
 * payload written is len bytes). Its length (at most len + 14). */
size_t ws_frame(uint8_t *out, bool fin, int op, bool masked, const void *payload, size_t len,
                uint64_t claimed);

/* Exactly n bytes from io into buf, or 0 when the broker closed first
 * (the test fails on a timeout). */
typedef size_t (*ws_read_fn)(void *io, void *buf, size_t n);

/* One frame from the broker (the test fails unless it is unmasked, as a
 * server's are, and fits in cap): its opcode, payload in buf, *len. */
int ws_read_frame(ws_read_fn rd, void *io, uint8_t *buf, size_t cap, size_t *len);

/* Binary frames' payload received, not yet taken as packets. */
struct ws_packets {
    size_t have;
    uint8_t in[1 << 17];
};

/* One MQTT packet (fixed header included) into out, however the broker
 * framed them (several per frame, or one over several frames); its
 * length. */
size_t ws_read_packet_from(ws_read_fn rd, void *io, struct ws_packets *p, uint8_t *out, size_t cap);

#endif
