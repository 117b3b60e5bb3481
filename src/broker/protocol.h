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

/*
 * What a packet handler tells the reader (process() in conn.c), the one
 * result type of every protocol_* handler below.
 */
enum proto_result {
    /* Handled: go on with the next packet (unless the connection stopped
     * reading meanwhile, which the reader checks itself). */
    PROTO_OK = 0,
    /* The connection stops reading: it is closed or closing (a refusal, a
     * violation, a DISCONNECT), moved to its home shard, or waiting for
     * authentication (CONN_AUTHENTICATING). The rest of the input is not
     * handled here. */
    PROTO_STOP,
    /* The packet waits for the auth plugin's verdict (acl.h; the
     * connection is c->blocked): it is not consumed, and is handled again
     * from the start when the plugin answers, so a handler returns this
     * only before it changed any state. */
    PROTO_WAIT,
};

/* Handle one complete packet (`pkt` holds f->total_len bytes, then
 * `rest_len` more bytes of input that may travel with the connection if it
 * moves). */
enum proto_result protocol_handle(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                                  const uint8_t *pkt, size_t rest_len);

/* Protocol violation: log once (rate-limited), send DISCONNECT with
 * `reason` to a 5.0 client (CONNACK before CONNECT is accepted), close. */
void protocol_violation(struct shard *s, struct conn *c, const char *what, int reason);

/* Packet families (connect.c, publish.c, subscribe.c), with the results of
 * protocol_handle. `body` is the packet after its fixed header. */

/* CONNECT: the whole packet at `pkt`, `avail` bytes of input there (the
 * packet and what follows it, kept when the connection moves or waits for
 * the auth plugin). PROTO_WAIT while the plugin checks whether this client
 * may connect. */
enum proto_result protocol_connect(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                                   const uint8_t *pkt, size_t avail);
/* AUTH (5.0): a step of enhanced authentication or re-authentication.
 * With the built-in test method, the answer that completes authentication
 * handles the kept CONNECT again (protocol_connect's results); with an auth
 * plugin, a step during CONNECT waits for it (PROTO_STOP,
 * CONN_AUTHENTICATING). */
enum proto_result protocol_auth(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                                const uint8_t *body);
/* Before CONNACK, a packet over max_connect_size (its fixed header `f` is
 * at `pkt`, with `avail` bytes there): refuse and close without reading
 * the rest. */
void protocol_connect_too_large(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                                const uint8_t *pkt, size_t avail);
/* Always PROTO_STOP: the connection closes. */
enum proto_result protocol_disconnect(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                                      const uint8_t *body);
/* PUBLISH: PROTO_WAIT while the plugin decides on its topic. */
enum proto_result protocol_publish(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                                   const uint8_t *body);
/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
enum proto_result protocol_ack(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                               const uint8_t *body);
/* SUBSCRIBE, UNSUBSCRIBE: PROTO_WAIT while the plugin decides on one of
 * the filters. */
enum proto_result protocol_subscribe(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                                     const uint8_t *body);
enum proto_result protocol_unsubscribe(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                                       const uint8_t *body);

/* An XMSG_ACK came back for a pending SUBSCRIBE. */
void protocol_on_ack(struct shard *s, uint64_t token);

/* The session is going away: pending SUBSCRIBEs lose it. */
void protocol_orphan_pending(struct session *ss);

/* Free every pending SUBSCRIBE of the shard (shutdown). */
void protocol_free_pending(struct shard *s);

#endif
