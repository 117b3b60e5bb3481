/*
 * protocol: dispatch of one packet to its family, and the common way out
 * for a violation (MQTT-4.8.0-1 in 3.1.1, MQTT-4.13.1-1 in 5.0: close the
 * connection, in 5.0 after a DISCONNECT or CONNACK with the reason).
 * Runs on the connection's shard; a violation never affects another client.
 */
#include "broker/protocol.h"

#include "broker/conn.h"
#include "broker/shard.h"
#include "core/log.h"
#include "mqtt/codec.h"
#include "session/session.h"

void protocol_violation(struct shard *s, struct conn *c, const char *what, int reason)
{
    if (c->session)
        log_ratelimited(LOG_LEVEL_WARN, "client %.*s: %s (reason 0x%02x), closing",
                        (int)c->session->st.client_id_len, c->session->st.client_id, what, reason);
    else
        log_ratelimited(LOG_LEVEL_WARN, "connection %llu: %s (reason 0x%02x), closing",
                        (unsigned long long)c->id, what, reason);
    conn_close_reason(s, c, CLOSE_PROTOCOL, (uint8_t)reason, what);
}

enum proto_result protocol_handle(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                                  const uint8_t *pkt, size_t rest_len)
{
    const uint8_t *body = pkt + f->header_len;
    if (f->type == MQTT_CONNECT)
        return protocol_connect(s, c, f, pkt, f->total_len + rest_len);
    if (f->type == MQTT_AUTH && c->v5 && c->state == CONN_NEW)
        return protocol_auth(s, c, f, body);
    if (c->state != CONN_ACTIVE) {
        /* MQTT-3.1.0-1; in 5.0 also MQTT-4.12.0-? (only AUTH during auth). */
        protocol_violation(s, c, "first packet is not CONNECT", MQTT_RC_PROTOCOL_ERROR);
        return PROTO_STOP;
    }
    switch (f->type) {
    case MQTT_PUBLISH:
        return protocol_publish(s, c, f, body);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return protocol_ack(s, c, f, body);
    case MQTT_SUBSCRIBE:
        return protocol_subscribe(s, c, f, body);
    case MQTT_UNSUBSCRIBE:
        return protocol_unsubscribe(s, c, f, body);
    case MQTT_DISCONNECT:
        return protocol_disconnect(s, c, f, body);
    case MQTT_AUTH:
        if (c->v5)
            return protocol_auth(s, c, f, body);
        break;
    case MQTT_PINGREQ: {
        uint8_t reason = 0;
        int rc = mqtt_empty_decode(f->type, f->flags, body, f->body_len, c->version, &reason);
        if (rc != MQTT_OK) {
            protocol_violation(s, c, "malformed PINGREQ", rc);
            return PROTO_STOP;
        }
        uint8_t *p = conn_reserve(s, c, 2);
        if (p)
            conn_commit(s, c, mqtt_simple_encode(p, MQTT_PINGRESP, c->version, 0));
        return PROTO_OK;
    }
    default:
        break;
    }
    /* CONNACK, SUBACK, UNSUBACK, PINGRESP, and AUTH before 5.0: never sent
     * by clients. */
    protocol_violation(s, c, "unexpected packet type", MQTT_RC_PROTOCOL_ERROR);
    return PROTO_STOP;
}
