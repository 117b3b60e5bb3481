/*
 * protocol: MQTT 3.1, 3.1.1 and 5.0 server behaviour, one packet at a time,
 * one file per packet family: connect.c (CONNECT, AUTH, DISCONNECT),
 * publish.c (PUBLISH and its acknowledgements), subscribe.c (SUBSCRIBE,
 * UNSUBSCRIBE and the SUBACK ordering invariant), protocol.c (dispatch).
 * The codec has already checked the bytes; the rules that need state
 * (first packet, packet ids, aliases, sessions) live here.
 */
#ifndef RINGMQ_BROKER_PROTOCOL_H
#define RINGMQ_BROKER_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

struct shard;
struct conn;
struct session;
struct mqtt_frame;

/* Handle one complete packet (`pkt` holds f->total_len bytes, then
 * `rest_len` more bytes of input that may travel with the connection if it
 * moves). Returns 0, or -1 when the connection stopped reading (closed,
 * moved, or waiting for authentication). */
int protocol_handle(struct shard *s, struct conn *c, const struct mqtt_frame *f, const uint8_t *pkt,
                    size_t rest_len);

/* Protocol violation: log once (rate-limited), send DISCONNECT with
 * `reason` to a 5.0 client (CONNACK before CONNECT is accepted), close. */
void protocol_violation(struct shard *s, struct conn *c, const char *what, int reason);

/* Packet families (connect.c, publish.c, subscribe.c). Each returns 0 or
 * -1 like protocol_handle. */
int protocol_connect(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                     const uint8_t *pkt, size_t avail);
int protocol_auth(struct shard *s, struct conn *c, const struct mqtt_frame *f, const uint8_t *body);
/* Before CONNACK, a packet over max_connect_size (its fixed header `f` is
 * at `pkt`, with `avail` bytes there): refuse and close without reading
 * the rest. */
void protocol_connect_too_large(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                                const uint8_t *pkt, size_t avail);
int protocol_disconnect(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                        const uint8_t *body);
int protocol_publish(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                     const uint8_t *body);
int protocol_ack(struct shard *s, struct conn *c, const struct mqtt_frame *f, const uint8_t *body);
int protocol_subscribe(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                       const uint8_t *body);
int protocol_unsubscribe(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                         const uint8_t *body);

/* An XMSG_ACK came back for a pending SUBSCRIBE. */
void protocol_on_ack(struct shard *s, uint64_t token);

/* The session is going away: pending SUBSCRIBEs lose it. */
void protocol_orphan_pending(struct session *ss);

/* Free every pending SUBSCRIBE of the shard (shutdown). */
void protocol_free_pending(struct shard *s);

#endif
