/*
 * publish: PUBLISH from a client and the acknowledgements of PUBLISHes we
 * sent (PUBACK, PUBREC, PUBREL, PUBCOMP), for MQTT 3.1, 3.1.1 and 5.0:
 * topic aliases, the server's limits (Maximum QoS, Retain Available,
 * Receive Maximum), payload format validation and message expiry.
 * Runs on the connection's shard.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/acl.h"
#include "broker/alias.h"
#include "broker/conn.h"
#include "broker/ingress.h"
#include "broker/observe.h"
#include "broker/protocol.h"
#include "broker/route.h"
#include "broker/shard.h"
#include "mqtt/codec.h"
#include "mqtt/props.h"
#include "mqtt/topic.h"
#include "session/msg.h"
#include "session/session.h"
#include "session/store.h"

/* A property block the decoder refused as a protocol error because of
 * Topic Alias 0 deserves the specific reason 0x94 (MQTT-3.3.2-8). */
static int alias_zero(const struct mqtt_bytes props)
{
    struct mqtt_props_iter it;
    struct mqtt_prop pr;
    mqtt_props_iter_init_raw(&it, props.p, props.len);
    while (mqtt_props_iter_next(&it, &pr))
        if (pr.id == MQTT_PROP_TOPIC_ALIAS && pr.num == 0)
            return 1;
    return 0;
}

/* Resolve the topic of a 5.0 PUBLISH (MQTT 5.0 3.3.2.3.4). Returns 0 or a
 * reason code for DISCONNECT. */
static int resolve_alias(struct conn *c, const struct mqtt_props *pr, struct mqtt_publish *pb)
{
    struct conn_v5 *v = c->v5;
    if (!mqtt_props_has(pr, MQTT_PROP_TOPIC_ALIAS)) {
        /* MQTT-3.3.2-1 (5.0): an empty topic needs an alias. */
        return pb->topic.len ? 0 : MQTT_RC_PROTOCOL_ERROR;
    }
    uint16_t alias = pr->topic_alias;
    if (alias == 0 || alias > v->alias_max_in)
        return 0x94; /* MQTT-3.3.2-9, MQTT-3.3.2-10: Topic Alias invalid */
    if (pb->topic.len)
        return alias_in_set(v, alias, pb->topic.p, pb->topic.len) < 0 ? MQTT_RC_UNSPECIFIED : 0;
    size_t len;
    const uint8_t *topic = alias_in_get(v, alias, &len);
    if (!topic)
        return MQTT_RC_PROTOCOL_ERROR; /* alias never set on this connection */
    pb->topic = (struct mqtt_bytes){topic, len};
    return 0;
}

/*
 * protocol_publish is three steps, all static in this file so that the
 * compiler folds them back into one function on the hot path: decode (the
 * bytes, the properties, the alias), admit (may it be published: the
 * tenant's limits, the auth plugin, the quotas; a verdict), accept (the
 * QoS 2 id, the payload format, delivery, the acknowledgement). Nothing is
 * copied or allocated between them: they share the decoded packet on
 * protocol_publish's stack.
 */

/* What publish_admit decided. */
enum publish_verdict {
    PUBLISH_DELIVER,  /* accepted: deliver and acknowledge it */
    PUBLISH_DROP,     /* accepted, not delivered: a 3.x client, which cannot be
                       * told of a refusal, sees its flow complete as usual */
    PUBLISH_ANSWERED, /* not accepted, answered already (a resent QoS 2
                       * message, or a refusal in the PUBACK/PUBREC) */
    PUBLISH_CLOSED,   /* refused, the connection closing */
    PUBLISH_WAIT,     /* the auth plugin's verdict is pending: nothing was
                       * changed or counted yet */
};

/* A 5.0 PUBLISH refused for a quota hears 0x97: in its PUBACK/PUBREC, or,
 * for QoS 0, which has no acknowledgement to carry it, in a DISCONNECT
 * (MQTT 5.0 3.14.2.1). */
static enum publish_verdict refuse_over_quota(struct shard *s, struct conn *c,
                                              const struct mqtt_publish *pb, const char *why)
{
    if (pb->qos == 0) {
        conn_close_reason(s, c, CLOSE_PROTOCOL, MQTT_RC_QUOTA_EXCEEDED, why);
        return PUBLISH_CLOSED;
    }
    conn_write_ack(s, c, pb->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, pb->packet_id,
                   MQTT_RC_QUOTA_EXCEEDED, why);
    return PUBLISH_ANSWERED;
}

/*
 * The store cannot write (a full disk, an I/O error: session/store.h): a
 * message that would be kept (QoS 1/2, retained) is not accepted, since
 * its acknowledgement would promise what the disk cannot keep. A 5.0
 * client hears 0x97 as for a quota; 3.1/3.1.1 have no way to say it, and
 * the connection closes (the client sends it again once connected).
 */
static enum publish_verdict refuse_unstorable(struct shard *s, struct conn *c,
                                              const struct mqtt_publish *pb)
{
    if (c->v5)
        return refuse_over_quota(s, c, pb, "the broker cannot store messages now");
    conn_close(s, c, CLOSE_PROTOCOL);
    return PUBLISH_CLOSED;
}

/*
 * A topic over the tenant's max_topic_length or max_topic_levels: a 5.0
 * client hears 0x90 Topic Name invalid in its PUBACK/PUBREC and keeps its
 * connection (a PUBREC >= 0x80 ends a QoS 2 flow); at QoS 0, which has no
 * acknowledgement, in a DISCONNECT. MQTT 3.1/3.1.1 have no way to say it,
 * and a message dropped in silence would look delivered: the connection
 * closes.
 */
static enum publish_verdict refuse_topic(struct shard *s, struct conn *c,
                                         const struct mqtt_publish *pb)
{
    if (c->v5 && pb->qos) {
        conn_write_ack(s, c, pb->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, pb->packet_id,
                       MQTT_RC_TOPIC_NAME_INVALID, "topic too long or too deep");
        return PUBLISH_ANSWERED;
    }
    protocol_violation(s, c, "topic too long or too deep", MQTT_RC_TOPIC_NAME_INVALID);
    return PUBLISH_CLOSED;
}

/*
 * decode: the PUBLISH of `f` and, from a 5.0 client, its properties, with
 * the topic its alias stands for. MQTT_OK, or the reason code of the
 * violation (the caller closes). *pr is filled only for a 5.0 client;
 * otherwise only pr->present is set (to 0).
 */
static int publish_decode(struct conn *c, const struct mqtt_frame *f, const uint8_t *body,
                          struct mqtt_publish *pb, struct mqtt_props *pr)
{
    int rc = mqtt_publish_decode(f->flags, body, f->body_len, c->version, pb);
    /* Only `present` is read before mqtt_props_decode fills the rest: a
     * memset of the 240-byte struct for every PUBLISH of a 3.1.1 client
     * was 5% of the broker's CPU in p2p QoS 0. */
    pr->present = 0;
    if (rc == MQTT_OK && c->v5) {
        rc = mqtt_props_decode(MQTT_PUBLISH, pb->props.p, pb->props.len, pr);
        if (rc == MQTT_RC_PROTOCOL_ERROR && alias_zero(pb->props))
            rc = 0x94;
        if (rc == MQTT_OK && mqtt_props_has(pr, MQTT_PROP_SUBSCRIPTION_ID))
            rc = MQTT_RC_PROTOCOL_ERROR; /* MQTT-3.3.4-6 */
        /* A topic over the limits never enters the alias table; refusing
         * only this PUBLISH would leave the client believing in an alias
         * we do not hold, so the connection closes. */
        if (rc == MQTT_OK && mqtt_props_has(pr, MQTT_PROP_TOPIC_ALIAS) &&
            !topic_within_limits(c->session->tenant->set, pb->topic.p, pb->topic.len))
            rc = MQTT_RC_TOPIC_NAME_INVALID;
        if (rc == MQTT_OK)
            rc = resolve_alias(c, pr, pb);
    }
    return rc;
}

/* Count a PUBLISH of `size` bytes against the tenant's counters and the
 * connection's publish rate. Accepted, but over the rate the connection is
 * not read again until the next second (back-pressure, nothing dropped). */
static void publish_count(struct shard *s, struct conn *c, uint8_t qos, size_t size)
{
    const struct tenant_settings *ts = c->session->tenant->set;
    if (ts->publish_rate || ts->publish_bandwidth) {
        if (!c->rate)
            c->rate = calloc(1, sizeof(*c->rate));
        if (c->rate) {
            uint64_t second = s->now_ms / 1000u;
            if (c->rate->second != second)
                *c->rate = (struct conn_rate){.second = second};
            c->rate->msgs++;
            c->rate->bytes += size;
            if ((ts->publish_rate && c->rate->msgs >= ts->publish_rate) ||
                (ts->publish_bandwidth && c->rate->bytes >= ts->publish_bandwidth))
                c->rate_limited = true;
        }
    }
    c->session->tenant->ctr.msgs_in[qos]++;
    c->session->tenant->ctr.bytes_in[qos] += size;
}

/*
 * admit: may the decoded PUBLISH (`size` bytes in all) be published? In
 * this order: the tenant's Maximum QoS and Retain Available, a resent QoS
 * 2 message, the topic limits, the auth plugin ($SYS is the broker's),
 * then, counted, the inbound bandwidth quota and the retained quota. A 3.x
 * client's message that may not be retained is delivered without its
 * retain flag (pb->retain cleared).
 */
static enum publish_verdict publish_admit(struct shard *s, struct conn *c, size_t size,
                                          struct mqtt_publish *pb)
{
    const struct tenant_settings *ts = c->session->tenant->set;
    struct session *ss = c->session;
    if (pb->qos > ts->max_qos) {
        protocol_violation(s, c, "QoS not supported", 0x9B); /* MQTT-3.2.2-11 */
        return PUBLISH_CLOSED;
    }
    if (pb->retain && !ts->retain_available) {
        protocol_violation(s, c, "retain not supported", 0x9A); /* MQTT-3.2.2-14 */
        return PUBLISH_CLOSED;
    }
    if (pb->qos == 2 && session_qos2_has(ss, pb->packet_id)) {
        /* MQTT-4.3.3-2 (method A): a resend of a message already accepted
         * (its PUBREC was lost) is acknowledged again, and neither checked,
         * counted nor delivered a second time. A refusal now (a quota
         * reached since) would end the client's flow while the id stayed
         * taken here, and its next message with that id would be lost. */
        conn_write_ack(s, c, MQTT_PUBREC, pb->packet_id, MQTT_RC_SUCCESS, NULL);
        return PUBLISH_ANSWERED;
    }
    if (!topic_within_limits(ts, pb->topic.p, pb->topic.len))
        return refuse_topic(s, c, pb);
    if ((pb->qos || pb->retain) && store_failing(s))
        return refuse_unstorable(s, c, pb);
    /* $SYS belongs to the broker: a client's publish there is refused like
     * one the auth plugin denies. */
    uint8_t why = 0;
    int verdict = route_is_sys_topic(pb->topic.p, pb->topic.len)
                      ? RINGMQ_DENIED
                      : acl_check(s, c, RINGMQ_ACTION_PUBLISH, pb->topic.p, pb->topic.len, pb->qos,
                                  pb->retain, &why);
    if (verdict == ACL_WAIT)
        return PUBLISH_WAIT;
    /* Counted only past the permission check: a PUBLISH whose verdict the
     * plugin answers later is handled again from the start. */
    publish_count(s, c, pb->qos, size);
    if (verdict != RINGMQ_GRANTED) {
        /* Not delivered. A 5.0 client hears why (0x87, or the plugin's
         * code); 3.1.1 has no way to say it, so its flow completes as if
         * delivered (still under the bandwidth quota below). */
        ss->tenant->ctr.denied++;
        observe_event(s, RINGMQ_EV_PERMISSION_DENIED, ss->tenant, ss, RINGMQ_ACTION_PUBLISH, 0,
                      pb->topic.p, pb->topic.len);
        if (c->v5) {
            if (pb->qos)
                conn_write_ack(s, c, pb->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, pb->packet_id,
                               why ? why : MQTT_RC_NOT_AUTHORIZED, "not authorized");
            return PUBLISH_ANSWERED;
        }
    }
    if (!observe_throttle(s, ss->tenant, RINGMQ_RES_BYTES_IN_RATE, size, ss)) {
        /* Inbound bandwidth quota: not delivered; a 5.0 client hears 0x97
         * (refuse_over_quota); 3.1.1: its flow completes, nothing delivered. */
        if (c->v5)
            return refuse_over_quota(s, c, pb, "inbound bandwidth quota exceeded");
        return PUBLISH_DROP;
    }
    if (verdict != RINGMQ_GRANTED)
        return PUBLISH_DROP;
    /* A message that replaces its topic's retained one adds no topic, and
     * only what it has beyond the old message. */
    if (pb->retain && !route_retain_allowed(s, ss->tenant, pb->topic.p, pb->topic.len,
                                            pb->payload.len, c->v5 ? pb->props.len : 0, ss)) {
        /* Retained limit or quota reached: a 5.0 client is told (0x97), in the
         * PUBACK/PUBREC, or for QoS 0 in a DISCONNECT, as for the inbound
         * quota (a silent drop would leave it believing its state stored);
         * a 3.1.1 client's message is delivered but not retained. */
        if (c->v5)
            return refuse_over_quota(s, c, pb, "retained quota exceeded");
        pb->retain = false;
    }
    return PUBLISH_DELIVER;
}

/*
 * accept: take the admitted PUBLISH (5.0 properties in *pr): remember a
 * QoS 2 id until PUBREL, refuse a payload marked UTF-8 that is not (when
 * the tenant validates), deliver the message when `deliver`, acknowledge.
 * PROTO_STOP when the connection closes (a packet id still in use, out of
 * memory, a bad QoS 0 payload).
 */
static enum proto_result publish_accept(struct shard *s, struct conn *c,
                                        const struct mqtt_publish *pb, const struct mqtt_props *pr,
                                        bool deliver)
{
    struct session *ss = c->session;
    if (pb->qos == 2) {
        /* MQTT-4.3.3-2 (method A): deliver once, remember the id until PUBREL
         * (a resend is answered in publish_admit). */
        if (session_qos2_add(s, ss, pb->packet_id) < 0) {
            protocol_violation(s, c, "receive maximum exceeded", MQTT_RC_RECEIVE_MAX_EXCEEDED);
            return PROTO_STOP;
        }
    } else if (pb->qos == 1 && session_qos2_has(ss, pb->packet_id)) {
        /* MQTT-2.3.1-2: the id is still in use by an unfinished QoS 2 flow. */
        protocol_violation(s, c, "packet id in use", MQTT_RC_PACKET_ID_IN_USE);
        return PROTO_STOP;
    }
    uint8_t ack_reason = MQTT_RC_SUCCESS;
    if (c->v5 && ss->tenant->set->validate_payload_format &&
        mqtt_props_has(pr, MQTT_PROP_PAYLOAD_FORMAT) && pr->payload_format == 1 &&
        !mqtt_utf8_valid(pb->payload.p, pb->payload.len)) {
        /* MQTT 5.0 3.3.2.3.2: refuse a payload marked UTF-8 that is not. */
        if (pb->qos == 0) {
            protocol_violation(s, c, "payload is not UTF-8", MQTT_RC_PAYLOAD_FORMAT_INVALID);
            return PROTO_STOP;
        }
        ack_reason = MQTT_RC_PAYLOAD_FORMAT_INVALID;
        deliver = false;
        if (pb->qos == 2)
            session_qos2_del(s, ss, pb->packet_id); /* a failed PUBREC ends the flow */
    }
    if (deliver) {
        struct msg_spec sp = {
            .topic = pb->topic.p,
            .topic_len = pb->topic.len,
            .payload = pb->payload.p,
            .payload_len = pb->payload.len,
            .props = pb->props.p,
            .props_len = c->v5 ? pb->props.len : 0,
            .qos = pb->qos,
            .retain = pb->retain,
            .origin = ss,
            .ingress = pb->qos == 2 && s->store ? ingress_key(ss->tenant, ss, pb->packet_id) : 0,
        };
        if (mqtt_props_has(pr, MQTT_PROP_MESSAGE_EXPIRY))
            sp.expires_at_ms = s->now_ms + (uint64_t)pr->message_expiry * 1000u;
        struct msg *m = msg_create(&sp);
        if (!m) {
            protocol_violation(s, c, "out of memory", MQTT_RC_UNSPECIFIED);
            return PROTO_STOP;
        }
        uint32_t sent = s->store_xsent;
        route_publish(s, ss->tenant, m);
        if (s->store_xsent != sent)
            stream_depends(&c->st); /* its PUBACK waits for the other shards' records */
    }
    if (pb->qos)
        conn_write_ack(s, c, pb->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, pb->packet_id, ack_reason,
                       ack_reason ? "payload is not valid UTF-8" : NULL);
    return PROTO_OK;
}

enum proto_result protocol_publish(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                                   const uint8_t *body)
{
    struct mqtt_publish pb;
    struct mqtt_props pr;
    int rc = publish_decode(c, f, body, &pb, &pr);
    if (rc != MQTT_OK) {
        protocol_violation(s, c, "bad PUBLISH", rc);
        return PROTO_STOP;
    }
    enum publish_verdict v = publish_admit(s, c, f->total_len, &pb);
    switch (v) {
    case PUBLISH_DELIVER:
    case PUBLISH_DROP: /* one call, so that it is inlined */
        return publish_accept(s, c, &pb, &pr, v == PUBLISH_DELIVER);
    case PUBLISH_ANSWERED:
        return PROTO_OK;
    case PUBLISH_CLOSED:
        return PROTO_STOP;
    case PUBLISH_WAIT:
        return PROTO_WAIT;
    }
    return PROTO_STOP; /* not reached: every verdict has its case */
}

enum proto_result protocol_ack(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                               const uint8_t *body)
{
    struct mqtt_ack ack;
    int rc = mqtt_ack_decode(f->type, f->flags, body, f->body_len, c->version, &ack);
    if (rc == MQTT_OK && c->v5) {
        struct mqtt_props pr;
        rc = mqtt_props_decode(f->type, ack.props.p, ack.props.len, &pr);
    }
    if (rc != MQTT_OK) {
        protocol_violation(s, c, "bad acknowledgement", rc);
        return PROTO_STOP;
    }
    struct session *ss = c->session;
    switch (f->type) {
    case MQTT_PUBACK:
        session_on_puback(s, ss, ack.packet_id);
        break;
    case MQTT_PUBREC:
        session_on_pubrec(s, ss, ack.packet_id, ack.reason);
        break;
    case MQTT_PUBCOMP:
        session_on_pubcomp(s, ss, ack.packet_id);
        break;
    case MQTT_PUBREL: {
        /* MQTT-4.3.3-2: PUBCOMP even for an id we no longer hold; 5.0 says
         * which (0x92: Packet Identifier not found). */
        bool held = session_qos2_has(ss, ack.packet_id);
        session_qos2_del(s, ss, ack.packet_id);
        uint32_t sent = s->store_xsent;
        ingress_release(s, ss->tenant, ss, ack.packet_id); /* with a store */
        if (s->store_xsent != sent)
            stream_depends(&c->st); /* the PUBCOMP waits for every shard's record */
        conn_write_ack(s, c, MQTT_PUBCOMP, ack.packet_id,
                       held || !c->v5 ? MQTT_RC_SUCCESS : MQTT_RC_PACKET_ID_NOT_FOUND, NULL);
        break;
    }
    }
    return PROTO_OK;
}
