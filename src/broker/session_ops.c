/*
 * session_ops: the broker's side of the session room's seam (session.h,
 * struct session_ops): a session's packets written to its connection (the
 * PUBLISH encodings, with a 5.0 client's properties, Subscription
 * Identifiers and topic aliases, within its Maximum Packet Size), a
 * takeover's close, the will routed, the read checks, and the broker's
 * functions the room reaches through the table (share.c, route.c,
 * protocol.c, observe.c).
 *
 * Runs on the shard's thread; owns nothing.
 */
#include "broker/session_ops.h"

#include <string.h>

#include "broker/alias.h"
#include "broker/conn.h"
#include "broker/observe.h"
#include "broker/protocol.h"
#include "broker/readcheck.h"
#include "broker/route.h"
#include "broker/share.h"
#include "core/log.h"
#include "mqtt/codec.h"
#include "mqtt/props.h"
#include "session/msg.h"
#include "session/session.h"

/* Encode one PUBLISH for a 5.0 client: properties forwarded with the
 * remaining expiry, our Subscription Identifiers and a topic alias. Returns
 * false when the client's Maximum Packet Size forbids it (MQTT-3.1.2-25). */
static bool write_publish_v5(struct shard *s, struct conn *c, struct session *ss,
                             const struct msg *m, uint8_t qos, bool dup, bool retain, uint16_t pid,
                             const uint32_t *ids, size_t nids)
{
    struct conn_v5 *v = c->v5;
    struct mqtt_props_forward f = {0};
    if (m->expires_at_ms) {
        uint64_t left = m->expires_at_ms > s->now_ms ? m->expires_at_ms - s->now_ms : 0;
        /* MQTT-3.3.2-6: the remaining time; at least 1 s once in flight. */
        f.message_expiry = (uint32_t)((left + 999) / 1000);
        if (f.message_expiry == 0)
            f.message_expiry = 1;
    }
    f.sub_ids = ids;
    f.n_sub_ids = nids;
    bool known = false;
    f.topic_alias = alias_out_get(v, msg_topic(m), m->topic_len, &known);
    size_t tlen = known ? 0 : m->topic_len; /* MQTT-3.3.2-12: alias only */
    size_t plen = mqtt_props_forward_size(msg_props(m), m->props_len, &f);
    size_t rem = 2 + tlen + (qos ? 2 : 0) + plen + m->payload_len;
    size_t total = 1 + mqtt_varint_size((uint32_t)rem) + rem;
    if (plen == 0 || rem > MQTT_MAX_REMAINING_LENGTH ||
        (v->max_packet_out && total > v->max_packet_out)) {
        if (!known) /* MQTT-3.1.2-25: never sent, so the client has no alias */
            alias_out_undo(v, f.topic_alias, msg_topic(m), m->topic_len);
        observe_drop(s, ss->tenant, ss, RINGMQ_DROP_TOO_LARGE, m, 1);
        return false;
    }
    uint8_t *p = conn_reserve(s, c, total);
    if (!p) {
        if (!known)
            alias_out_undo(v, f.topic_alias, msg_topic(m), m->topic_len);
        return true;
    }
    uint8_t *w = p;
    *w++ = (uint8_t)(MQTT_PUBLISH << 4 | (dup ? 8 : 0) | qos << 1 | (retain ? 1 : 0));
    w += mqtt_varint_encode(w, (uint32_t)rem);
    *w++ = (uint8_t)(tlen >> 8);
    *w++ = (uint8_t)tlen;
    memcpy(w, msg_topic(m), tlen);
    w += tlen;
    if (qos) {
        *w++ = (uint8_t)(pid >> 8);
        *w++ = (uint8_t)pid;
    }
    w += mqtt_props_forward_encode(w, msg_props(m), m->props_len, &f);
    memcpy(w, msg_payload(m), m->payload_len);
    conn_commit(s, c, total);
    ss->tenant->ctr.msgs_out[qos]++;
    ss->tenant->ctr.bytes_out[qos] += total;
    return true;
}

/* session_ops.write_publish: the hot path of every delivery. */
static bool write_publish(struct shard *s, struct session *ss, const struct msg *m, uint8_t qos,
                          bool dup, bool retain, uint16_t pid, const uint32_t *ids, size_t nids)
{
    struct conn *c = conn_of_session(ss);
    if (c->v5)
        return write_publish_v5(s, c, ss, m, qos, dup, retain, pid, ids, nids);
    size_t n = mqtt_publish_size(c->version, m->topic_len, m->payload_len, qos);
    uint8_t *p = conn_reserve(s, c, n);
    if (!p)
        return true;
    mqtt_publish_encode(p, c->version, qos, dup, retain, msg_topic(m), m->topic_len, pid,
                        msg_payload(m), m->payload_len);
    conn_commit(s, c, n);
    ss->tenant->ctr.msgs_out[qos]++;
    ss->tenant->ctr.bytes_out[qos] += n;
    return true;
}

static void write_pubrel(struct shard *s, struct session *ss, uint16_t pid)
{
    conn_write_ack(s, conn_of_session(ss), MQTT_PUBREL, pid, MQTT_RC_SUCCESS, NULL);
}

static void take_over(struct shard *s, struct session *ss)
{
    conn_close(s, conn_of_session(ss), CLOSE_TAKEOVER);
}

static void bind_reads(struct shard *s, struct session *ss)
{
    (void)s;
    /* A failure leaves the reads refused (readcheck_bind). */
    if (readcheck_bind(ss, conn_of_session(ss)->auth) < 0)
        log_ratelimited(LOG_LEVEL_ERR, "out of memory for the read checks of a session");
}

static void publish_will(struct shard *s, struct session *ss, struct msg *will)
{
    /* A retained will counts toward the tenant's retained limits like any
     * retained PUBLISH (or clients could fill the store through wills);
     * over them it is published, not retained, as for a 3.1.1 PUBLISH. */
    if (will->retain && !route_retain_allowed(s, ss->tenant, msg_topic(will), will->topic_len,
                                              will->payload_len, will->props_len, ss))
        will->retain = 0;
    route_publish(s, ss->tenant, will);
}

const struct session_ops broker_session_ops = {
    .write_publish = write_publish,
    .write_pubrel = write_pubrel,
    .take_over = take_over,
    .bind_reads = bind_reads,
    .orphan = protocol_orphan_pending,
    .free_reads = readcheck_free,
    .publish_will = publish_will,
    .share_add = share_member_add,
    .share_drop = share_member_drop,
    .share_redispatch = share_redispatch,
    .interest_add = route_interest_restored,
    .interest_del = route_interest_del,
    .event = observe_event,
    .drop = observe_drop,
    .throttle = observe_throttle,
};
