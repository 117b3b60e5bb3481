/*
 * protocol: MQTT 3.1/3.1.1 packet handling on a connection: CONNECT,
 * PUBLISH and its acknowledgements, SUBSCRIBE/UNSUBSCRIBE, PINGREQ,
 * DISCONNECT. Validation happens in the codec; the rules that need state
 * (first packet, packet ids, sessions) happen here.
 */
#ifndef RINGMQ_BROKER_PROTOCOL_H
#define RINGMQ_BROKER_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

struct shard;
struct conn;
struct session;
struct mqtt_frame;

/* Handle one complete packet (`pkt` holds f->total_len bytes, which may
 * be copied if the connection moves). Returns 0, or -1 when the connection
 * stopped reading (closed or moved): the caller stops feeding it. */
int protocol_handle(struct shard *s, struct conn *c, const struct mqtt_frame *f, const uint8_t *pkt,
                    const uint8_t *rest, size_t rest_len);

/* An XMSG_ACK came back for a pending SUBSCRIBE. */
void protocol_on_ack(struct shard *s, uint64_t token);

/* The session is going away: pending SUBSCRIBEs lose it. */
void protocol_orphan_pending(struct session *ss);

/* Free every pending SUBSCRIBE of the shard (shutdown). */
void protocol_free_pending(struct shard *s);

#endif
