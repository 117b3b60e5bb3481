/*
 * mqc: the small MQTT 3.1.1 client of bench/slow_consumers, over plain
 * sockets to 127.0.0.1 (loopback only).
 *
 * mqc_open does the handshake with blocking calls, each bounded by a 5 s
 * socket timeout: connect, CONNECT/CONNACK, optionally SUBSCRIBE/SUBACK. It
 * reads exactly those packets and nothing after them, so a subscriber that
 * is never read again leaves everything that follows in its socket.
 *
 * struct mqc_conn then drives a connection without blocking: an output
 * buffer flushed with MSG_DONTWAIT, mqc_wait to poll (bounded) and read,
 * mqc_parse to hand each whole packet to a callback. One thread per
 * connection; nothing is shared.
 */
#ifndef RINGMQ_BENCH_MQC_H
#define RINGMQ_BENCH_MQC_H

#include "mqtt/codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MQC_IN_CAP  65536      /* largest packet a connection can receive */
#define MQC_OUT_CAP (1u << 20) /* output not yet taken by the socket */

/*
 * Connect to 127.0.0.1:port as client id `id`, clean session, keepalive 0,
 * with user/pass when user is not NULL (pass may be NULL), and SUBSCRIBE to
 * topic at qos unless topic is NULL. rcvbuf > 0 sets SO_RCVBUF before
 * connect() (the window the SYN announces); rcvbuf 0 sets TCP_NODELAY
 * instead. Returns the socket (blocking, 5 s send/receive timeouts), or
 * -errno: -EACCES for a refused CONNECT or subscription, -EPROTO for an
 * unexpected answer.
 */
int mqc_open(int port, const char *id, const char *user, const char *pass, int rcvbuf,
             const char *topic, uint8_t qos);

/* A connection after mqc_open, driven without blocking. The caller's
 * storage (about 1.1 MiB: allocate it); the fd stays the caller's. */
struct mqc_conn {
    int fd;
    size_t in_len, out_off, out_len;
    uint8_t in[MQC_IN_CAP];
    uint8_t out[MQC_OUT_CAP];
};

/* Write what the socket takes now. 0, or -errno on a failed send. */
int mqc_flush(struct mqc_conn *c);

/* Send all n bytes on a blocking socket (EINTR retried): 0 or -errno. */
int mqc_write_full(int fd, const uint8_t *p, size_t n);

/* True when n more bytes fit in c->out after c->out_len (unsent output is
 * moved to the front first); the caller appends there and adds n. */
bool mqc_room(struct mqc_conn *c, size_t n);

/* Wait up to timeout_ns for input (or room for pending output), flush what
 * is pending and read what has arrived. 0, or -errno: -ECONNRESET when the
 * broker closed the connection, -EMSGSIZE when a packet exceeds
 * MQC_IN_CAP. */
int mqc_wait(struct mqc_conn *c, uint64_t timeout_ns);

/* Called for each whole packet received; body is borrowed for the call.
 * Returns 0 to go on, or -errno to stop. */
typedef int (*mqc_packet_fn)(void *ctx, struct mqc_conn *c, const struct mqtt_frame *f,
                             const uint8_t *body);

/* Hand every whole packet in c->in to fn, keep the partial rest. 0, fn's
 * first error, or -EPROTO for bytes that are not an MQTT packet. */
int mqc_parse(struct mqc_conn *c, mqc_packet_fn fn, void *ctx);

#endif
