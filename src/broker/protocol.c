/*
 * protocol: MQTT 3.1 / 3.1.1 server behaviour for one packet at a time.
 *
 * Runs on the connection's shard. The codec has already checked the bytes;
 * this file applies the rules that need state: CONNECT first and once,
 * packet identifiers, QoS flows, the SUBACK ordering invariant. Every
 * violation closes the connection (MQTT-4.8.0-1) after one rate-limited log
 * line; nothing here can affect another client.
 */
#include "broker/protocol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/conn.h"
#include "broker/msg.h"
#include "broker/route.h"
#include "broker/session.h"
#include "broker/shard.h"
#include "core/log.h"
#include "mqtt/codec.h"
#include "mqtt/topic.h"

/* A SUBSCRIBE whose SUBACK waits until every shard has seen the interest. */
struct pending_sub {
    struct pending_sub *next, *prev; /* shard->pending_subs */
    struct pending_sub *next_in_session;
    struct session *ss; /* NULL once the session is gone */
    uint64_t conn_id;
    uint32_t waiting;
    uint16_t pid;
    uint8_t version;
    uint32_t n;
    uint8_t *codes; /* n granted QoS / 0x80 */
    size_t flen;    /* filters: [u16 len][bytes] ... */
    uint8_t filters[];
};

static void violation(struct shard *s, struct conn *c, const char *what, int rc)
{
    s->protocol_errors++;
    if (c->session)
        log_ratelimited(LOG_LEVEL_WARN, "client %.*s: %s (reason 0x%02x), closing",
                        (int)c->session->client_id_len, c->session->client_id, what, rc);
    else
        log_ratelimited(LOG_LEVEL_WARN, "connection %llu: %s (reason 0x%02x), closing",
                        (unsigned long long)c->id, what, rc);
    conn_close(s, c, CLOSE_PROTOCOL);
}

static void write_connack(struct shard *s, struct conn *c, bool present, uint8_t code)
{
    uint8_t *p = conn_reserve(s, c, 8);
    if (p)
        conn_commit(s, c, mqtt_connack_encode(p, c->version, present, code));
}

static void refuse(struct shard *s, struct conn *c, uint8_t code, const char *why)
{
    log_ratelimited(LOG_LEVEL_INFO, "connection %llu: CONNECT refused: %s",
                    (unsigned long long)c->id, why);
    write_connack(s, c, false, code);
    conn_close(s, c, CLOSE_REFUSED);
}

/* An id unique on this broker whose home is this shard (so that an
 * assigned id never needs to move). */
static size_t assign_client_id(struct shard *s, struct tenant *t, char *buf, size_t cap)
{
    for (;;) {
        int n = snprintf(buf, cap, "ringmq-%u-%llx", s->id, (unsigned long long)++s->next_conn_id);
        if (shard_home(s->broker, t->id, (const uint8_t *)buf, (size_t)n) == s->id)
            return (size_t)n;
    }
}

static int handle_connect(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                          const uint8_t *pkt, size_t avail)
{
    if (c->state != CONN_NEW) {
        violation(s, c, "second CONNECT", MQTT_RC_PROTOCOL_ERROR); /* MQTT-3.1.0-2 */
        return -1;
    }
    struct mqtt_connect ck;
    int rc = mqtt_connect_decode(f->flags, pkt + f->header_len, f->body_len, &ck);
    if (rc == MQTT_RC_UNSUPPORTED_VERSION) {
        /* MQTT-3.1.2-2: CONNACK 0x01, then close. */
        c->version = MQTT_V311;
        refuse(s, c, MQTT_CONNACK_BAD_PROTOCOL, "unsupported protocol level");
        return -1;
    }
    if (rc != MQTT_OK) {
        violation(s, c, "malformed CONNECT", rc);
        return -1;
    }
    c->version = ck.version;
    if (ck.version == MQTT_V5) {
        /* MQTT 5.0 is issue #4: refuse cleanly in its own format. */
        refuse(s, c, MQTT_RC_UNSUPPORTED_VERSION, "MQTT 5.0 is not supported yet");
        return -1;
    }
    struct tenant *t = &s->global;
    char assigned[48];
    const uint8_t *id = ck.client_id.p;
    size_t id_len = ck.client_id.len;
    if (id_len == 0) {
        /* MQTT-3.1.3-7/-8: an empty id needs clean session (3.1.1 only). */
        if (!ck.clean_start || ck.version == MQTT_V31) {
            refuse(s, c, MQTT_CONNACK_ID_REJECTED, "empty client id");
            return -1;
        }
        id_len = assign_client_id(s, t, assigned, sizeof(assigned));
        id = (const uint8_t *)assigned;
    } else if (id_len > s->cfg->max_client_id_len) {
        refuse(s, c, MQTT_CONNACK_ID_REJECTED, "client id too long");
        return -1;
    } else if (!c->relocated) {
        uint32_t home = shard_home(s->broker, t->id, id, id_len);
        if (home != s->id) {
            conn_relocate(s, c, home, pkt, avail);
            return -1;
        }
    }
    struct msg *will = NULL;
    if (ck.will) {
        will = msg_create(ck.will_topic.p, ck.will_topic.len, ck.will_payload.p,
                          ck.will_payload.len, ck.will_qos, ck.will_retain);
        if (!will) {
            refuse(s, c, MQTT_CONNACK_UNAVAILABLE, "out of memory");
            return -1;
        }
    }
    bool present = false;
    struct session *ss = session_attach(s, t, c, id, id_len, ck.clean_start, will, &present);
    if (!ss) {
        refuse(s, c, MQTT_CONNACK_UNAVAILABLE, "out of memory");
        return -1;
    }
    c->session = ss;
    c->state = CONN_ACTIVE;
    c->keepalive = ck.keepalive;
    /* MQTT-3.1.2-24: one and a half times the keepalive. */
    if (ck.keepalive)
        wheel_add(s->wheel, &c->timer, s->now_ms + (uint64_t)ck.keepalive * 1500u);
    else
        wheel_remove(&c->timer);
    write_connack(s, c, present, MQTT_CONNACK_ACCEPTED); /* MQTT-3.2.2-1..3 */
    log_debug("client %.*s connected (level %u, clean %d, present %d)", (int)id_len, id, ck.version,
              ck.clean_start, present);
    session_resume(s, ss);
    return 0;
}

static int handle_publish(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                          const uint8_t *body)
{
    struct mqtt_publish pb;
    int rc = mqtt_publish_decode(f->flags, body, f->body_len, c->version, &pb);
    if (rc != MQTT_OK) {
        violation(s, c, "bad PUBLISH", rc);
        return -1;
    }
    struct session *ss = c->session;
    bool deliver = true;
    if (pb.qos == 2) {
        /* MQTT-4.3.3-2 (method A): deliver once, remember the id until PUBREL. */
        if (session_qos2_has(ss, pb.packet_id))
            deliver = false;
        else if (session_qos2_add(ss, pb.packet_id) < 0) {
            violation(s, c, "too many QoS 2 messages in flight", MQTT_RC_RECEIVE_MAX_EXCEEDED);
            return -1;
        }
    } else if (pb.qos == 1 && session_qos2_has(ss, pb.packet_id)) {
        /* MQTT-2.3.1-2: the id is still in use by an unfinished QoS 2 flow. */
        violation(s, c, "packet id in use", MQTT_RC_PACKET_ID_IN_USE);
        return -1;
    }
    if (deliver) {
        struct msg *m =
            msg_create(pb.topic.p, pb.topic.len, pb.payload.p, pb.payload.len, pb.qos, pb.retain);
        if (!m) {
            violation(s, c, "out of memory", MQTT_RC_UNSPECIFIED);
            return -1;
        }
        route_publish(s, ss->tenant, m);
    }
    if (pb.qos) {
        uint8_t *p = conn_reserve(s, c, 4);
        if (p)
            conn_commit(s, c,
                        mqtt_ack_encode(p, pb.qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, c->version,
                                        pb.packet_id, MQTT_RC_SUCCESS));
    }
    return 0;
}

static int handle_ack(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                      const uint8_t *body)
{
    struct mqtt_ack ack;
    int rc = mqtt_ack_decode(f->type, f->flags, body, f->body_len, c->version, &ack);
    if (rc != MQTT_OK) {
        violation(s, c, "bad acknowledgement", rc);
        return -1;
    }
    struct session *ss = c->session;
    switch (f->type) {
    case MQTT_PUBACK:
        rc = session_on_puback(s, ss, ack.packet_id);
        break;
    case MQTT_PUBREC:
        rc = session_on_pubrec(s, ss, ack.packet_id);
        break;
    case MQTT_PUBCOMP:
        rc = session_on_pubcomp(s, ss, ack.packet_id);
        break;
    case MQTT_PUBREL: {
        /* MQTT-4.3.3-2: PUBCOMP even for an id we no longer hold. */
        session_qos2_remove(ss, ack.packet_id);
        uint8_t *p = conn_reserve(s, c, 4);
        if (p)
            conn_commit(
                s, c, mqtt_ack_encode(p, MQTT_PUBCOMP, c->version, ack.packet_id, MQTT_RC_SUCCESS));
        break;
    }
    }
    if (rc) {
        violation(s, c, "bad acknowledgement", rc);
        return -1;
    }
    return 0;
}

static void pending_finish(struct shard *s, struct pending_sub *p)
{
    struct session *ss = p->ss;
    if (ss && ss->conn && ss->conn->id == p->conn_id && ss->conn->state == CONN_ACTIVE) {
        struct conn *c = ss->conn;
        size_t n = mqtt_suback_size(c->version, p->n);
        uint8_t *out = conn_reserve(s, c, n);
        if (out)
            conn_commit(s, c,
                        mqtt_suback_encode(out, MQTT_SUBACK, c->version, p->pid, p->codes, p->n));
        /* Retained messages follow the SUBACK. */
        const uint8_t *f = p->filters;
        for (uint32_t i = 0; i < p->n; i++) {
            uint16_t len = (uint16_t)(f[0] | f[1] << 8);
            if (p->codes[i] != 0x80)
                route_send_retained(s, ss, f + 2, len, p->codes[i]);
            f += 2 + len;
        }
    }
    if (ss) {
        struct pending_sub **pp = &ss->pending;
        while (*pp && *pp != p)
            pp = &(*pp)->next_in_session;
        if (*pp)
            *pp = p->next_in_session;
    }
    if (p->prev)
        p->prev->next = p->next;
    else
        s->pending_subs = p->next;
    if (p->next)
        p->next->prev = p->prev;
    free(p);
}

void protocol_on_ack(struct shard *s, uint64_t token)
{
    struct pending_sub *p = (struct pending_sub *)(uintptr_t)token;
    if (--p->waiting == 0)
        pending_finish(s, p);
}

void protocol_orphan_pending(struct session *ss)
{
    for (struct pending_sub *p = ss->pending; p; p = p->next_in_session)
        p->ss = NULL;
    ss->pending = NULL;
}

void protocol_free_pending(struct shard *s)
{
    while (s->pending_subs) {
        struct pending_sub *p = s->pending_subs;
        s->pending_subs = p->next;
        free(p);
    }
}

static int handle_subscribe(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                            const uint8_t *body)
{
    struct mqtt_subscribe sb;
    int rc = mqtt_subscribe_decode(f->flags, body, f->body_len, c->version, &sb);
    if (rc != MQTT_OK) {
        violation(s, c, "bad SUBSCRIBE", rc);
        return -1;
    }
    struct mqtt_sub_iter it;
    struct mqtt_bytes filter;
    uint8_t options;
    size_t flen = 0;
    mqtt_sub_iter_init(&it, &sb, true);
    while (mqtt_sub_iter_next(&it, &filter, &options)) {
        if (!mqtt_topic_filter_valid(filter.p, filter.len)) {
            /* MQTT-4.7.1-1..3 and MQTT-4.8.0-1: a protocol violation. */
            violation(s, c, "invalid topic filter", MQTT_RC_TOPIC_FILTER_INVALID);
            return -1;
        }
        flen += 2 + filter.len;
    }
    struct pending_sub *p = malloc(sizeof(*p) + flen + sb.count);
    if (!p) {
        violation(s, c, "out of memory", MQTT_RC_UNSPECIFIED);
        return -1;
    }
    memset(p, 0, sizeof(*p));
    p->codes = p->filters + flen;
    p->n = sb.count;
    p->pid = sb.packet_id;
    p->conn_id = c->id;
    p->ss = c->session;
    uint8_t *w = p->filters;
    uint32_t acks = 0, i = 0;
    mqtt_sub_iter_init(&it, &sb, true);
    while (mqtt_sub_iter_next(&it, &filter, &options)) {
        uint8_t qos = options & 3;
        bool fresh = false;
        /* MQTT-3.9.3-1: one return code per filter, in order. */
        if (session_subscribe(s, c->session, filter.p, filter.len, qos, &fresh) == 0)
            p->codes[i] = qos;
        else
            p->codes[i] = 0x80;
        if (fresh)
            acks += route_interest_add(s, c->session->tenant, filter.p, filter.len,
                                       (uint64_t)(uintptr_t)p);
        w[0] = (uint8_t)(filter.len & 0xff);
        w[1] = (uint8_t)(filter.len >> 8);
        memcpy(w + 2, filter.p, filter.len);
        w += 2 + filter.len;
        i++;
    }
    /* The SUBACK invariant: answer only once every shard has processed
     * everything we sent it before, including any earlier interest for
     * these filters. */
    if (acks == 0)
        acks = route_ping_all(s, (uint64_t)(uintptr_t)p);
    p->next = s->pending_subs;
    if (p->next)
        p->next->prev = p;
    s->pending_subs = p;
    p->next_in_session = c->session->pending;
    c->session->pending = p;
    p->waiting = acks + 1;
    protocol_on_ack(s, (uint64_t)(uintptr_t)p); /* our own share */
    return 0;
}

static int handle_unsubscribe(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                              const uint8_t *body)
{
    struct mqtt_subscribe sb;
    int rc = mqtt_unsubscribe_decode(f->flags, body, f->body_len, c->version, &sb);
    if (rc != MQTT_OK) {
        violation(s, c, "bad UNSUBSCRIBE", rc);
        return -1;
    }
    struct mqtt_sub_iter it;
    struct mqtt_bytes filter;
    uint8_t options;
    mqtt_sub_iter_init(&it, &sb, false);
    while (mqtt_sub_iter_next(&it, &filter, &options)) {
        if (!mqtt_topic_filter_valid(filter.p, filter.len)) {
            violation(s, c, "invalid topic filter", MQTT_RC_TOPIC_FILTER_INVALID);
            return -1;
        }
        session_unsubscribe(s, c->session, filter.p, filter.len);
    }
    /* MQTT-3.10.4-4/-5: UNSUBACK even when nothing matched. */
    uint8_t *p = conn_reserve(s, c, 4);
    if (p)
        conn_commit(s, c, mqtt_ack_encode(p, MQTT_UNSUBACK, c->version, sb.packet_id, 0));
    return 0;
}

int protocol_handle(struct shard *s, struct conn *c, const struct mqtt_frame *f, const uint8_t *pkt,
                    const uint8_t *rest, size_t rest_len)
{
    const uint8_t *body = pkt + f->header_len;
    (void)rest;
    if (f->type == MQTT_CONNECT)
        return handle_connect(s, c, f, pkt, f->total_len + rest_len);
    if (c->state != CONN_ACTIVE) {
        violation(s, c, "first packet is not CONNECT", MQTT_RC_PROTOCOL_ERROR); /* MQTT-3.1.0-1 */
        return -1;
    }
    switch (f->type) {
    case MQTT_PUBLISH:
        return handle_publish(s, c, f, body);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return handle_ack(s, c, f, body);
    case MQTT_SUBSCRIBE:
        return handle_subscribe(s, c, f, body);
    case MQTT_UNSUBSCRIBE:
        return handle_unsubscribe(s, c, f, body);
    case MQTT_PINGREQ:
    case MQTT_DISCONNECT: {
        uint8_t reason = 0;
        int rc = mqtt_empty_decode(f->type, f->flags, body, f->body_len, c->version, &reason);
        if (rc != MQTT_OK) {
            violation(s, c, "malformed packet", rc);
            return -1;
        }
        if (f->type == MQTT_DISCONNECT) {
            /* MQTT-3.14.4-3: a clean DISCONNECT discards the will. */
            conn_close(s, c, CLOSE_CLIENT_DISCONNECT);
            return -1;
        }
        uint8_t *p = conn_reserve(s, c, 2);
        if (p)
            conn_commit(s, c, mqtt_simple_encode(p, MQTT_PINGRESP, c->version, 0));
        return 0;
    }
    default:
        /* CONNACK, SUBACK, UNSUBACK, PINGRESP, AUTH: not sent by clients. */
        violation(s, c, "unexpected packet type", MQTT_RC_PROTOCOL_ERROR);
        return -1;
    }
}
