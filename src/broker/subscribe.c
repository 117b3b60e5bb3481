/*
 * subscribe: SUBSCRIBE and UNSUBSCRIBE for MQTT 3.1, 3.1.1 and 5.0, and
 * the SUBACK ordering invariant across shards: a SUBACK is sent only once
 * every other shard has acknowledged everything this shard sent it before
 * (the new interest, or a ping), so a message published after the client
 * saw its SUBACK always finds the subscription.
 * Runs on the connection's shard.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/acl.h"
#include "broker/conn.h"
#include "broker/observe.h"
#include "broker/protocol.h"
#include "broker/readcheck.h"
#include "broker/route.h"
#include "broker/shard.h"
#include "broker/share.h"
#include "mqtt/codec.h"
#include "mqtt/props.h"
#include "mqtt/topic.h"
#include "session/session.h"
#include "session/store.h"

/* Per filter: send the retained messages after the SUBACK; check each one's
 * topic with readcheck_allows (granted RINGMQ_GRANTED_PER_TOPIC). */
#define PENDING_RETAINED   0x01
#define PENDING_READ_CHECK 0x02

/* A SUBSCRIBE whose SUBACK waits for the other shards. */
struct pending_sub {
    struct pending_sub *next, *prev; /* shard->pending_subs */
    struct pending_sub *next_in_session;
    struct session *ss; /* NULL once the session is gone */
    uint64_t conn_id;
    uint32_t waiting;
    uint32_t subid;
    uint16_t pid;
    uint32_t n;
    uint8_t *codes;    /* n reason codes / granted QoS */
    uint8_t *flags;    /* n PENDING_* */
    uint8_t filters[]; /* [u16 len][bytes] ..., then codes, then flags */
};

static void pending_finish(struct shard *s, struct pending_sub *p)
{
    struct session *ss = p->ss;
    struct conn *c = ss ? conn_of_session(ss) : NULL;
    if (c && c->id == p->conn_id && c->state == CONN_ACTIVE) {
        size_t n = mqtt_suback_size(c->version, p->n);
        uint8_t *out = conn_reserve(s, c, n);
        if (out)
            conn_commit(s, c,
                        mqtt_suback_encode(out, MQTT_SUBACK, c->version, p->pid, p->codes, p->n));
        /* Retained messages follow the SUBACK, for the filters the session
         * still holds (an UNSUBSCRIBE may have overtaken this SUBACK). */
        const uint8_t *f = p->filters;
        for (uint32_t i = 0; i < p->n; i++) {
            uint16_t len = (uint16_t)(f[0] | f[1] << 8);
            if ((p->flags[i] & PENDING_RETAINED) && session_has_sub(ss, f + 2, len))
                route_send_retained(s, ss, f + 2, len, p->codes[i], p->subid,
                                    (p->flags[i] & PENDING_READ_CHECK) != 0);
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

/* The reason code for one filter of a SUBSCRIBE (>= 0x80 refuses it), or
 * -1 when the whole packet is a protocol violation. */
static int filter_check(const struct conn *c, struct mqtt_bytes f, uint8_t options)
{
    const struct tenant_settings *ts = c->session->tenant->set;
    if (!mqtt_topic_filter_valid(f.p, f.len))
        return c->v5 ? MQTT_RC_TOPIC_FILTER_INVALID : -1; /* MQTT-4.7.1-1..3 */
    if (!topic_within_limits(ts, f.p, f.len))
        return c->v5 ? MQTT_RC_TOPIC_FILTER_INVALID : MQTT_RC_UNSPECIFIED;
    struct mqtt_share_spec sp;
    int kind = mqtt_share_parse(f.p, f.len, &sp);
    if (kind < 0)
        return c->v5 ? MQTT_RC_TOPIC_FILTER_INVALID : -1; /* MQTT-4.8.2-1/-2 */
    if (kind > 0) {
        if (c->v5 && (options & 0x04))
            return -1; /* MQTT-3.8.3-4: No Local on a shared subscription */
        if (!ts->shared_subscriptions)
            return c->v5 ? 0x9E : MQTT_RC_UNSPECIFIED; /* not supported */
    }
    if (!ts->wildcard_subscriptions && mqtt_topic_has_wildcard(f.p, f.len))
        return c->v5 ? 0xA2 : MQTT_RC_UNSPECIFIED; /* MQTT-3.8.3-? wildcards off */
    return 0;
}

/* The auth plugin's verdict on one filter: 0 (granted; *per_topic when
 * deliveries through it need a read check per topic, for which the session
 * then keeps the connection's identity) or the reason code refusing it. */
static int subscribe_allowed(struct shard *s, struct conn *c, struct mqtt_bytes f, uint8_t options,
                             bool *per_topic)
{
    uint8_t why;
    int v = acl_check(s, c, RINGMQ_ACTION_SUBSCRIBE, f.p, f.len, options & 3, false, &why);
    if (v == RINGMQ_GRANTED)
        return 0;
    if (v == RINGMQ_GRANTED_PER_TOPIC) {
        if (readcheck_bind(c->session, c->auth) < 0)
            return MQTT_RC_UNSPECIFIED; /* out of memory */
        *per_topic = true;
        return 0;
    }
    c->session->tenant->ctr.denied++;
    observe_event(s, RINGMQ_EV_PERMISSION_DENIED, c->session->tenant, c->session,
                  RINGMQ_ACTION_SUBSCRIBE, 0, f.p, f.len);
    /* 3.1.1 has one failure code (MQTT-3.9.3-2); 5.0 says why, in the
     * plugin's words when it gave a code. */
    return c->v5 ? (why ? why : MQTT_RC_NOT_AUTHORIZED) : MQTT_RC_UNSPECIFIED;
}

/*
 * protocol_subscribe: decode -> check (every filter answerable, every
 * verdict of the auth plugin known, before anything changes) -> subscribe
 * each filter, its code kept in a pending SUBACK -> wait for the other
 * shards (the SUBACK invariant, pending_start).
 */

/* decode: the SUBSCRIBE of `f` and its 5.0 properties. PROTO_OK with
 * *subid (its Subscription Identifier, 0: none), or PROTO_STOP when the
 * connection closes: malformed, a SUBACK that cannot fit the client's
 * Maximum Packet Size, or an identifier the tenant does not allow. */
static enum proto_result subscribe_decode(struct shard *s, struct conn *c,
                                          const struct mqtt_frame *f, const uint8_t *body,
                                          struct mqtt_subscribe *sb, uint32_t *subid)
{
    int rc = mqtt_subscribe_decode(f->flags, body, f->body_len, c->version, sb);
    struct mqtt_props pr;
    memset(&pr, 0, sizeof(pr));
    if (rc == MQTT_OK && c->v5)
        rc = mqtt_props_decode(MQTT_SUBSCRIBE, sb->props.p, sb->props.len, &pr);
    if (rc != MQTT_OK) {
        protocol_violation(s, c, "bad SUBSCRIBE", rc);
        return PROTO_STOP;
    }
    if (!conn_fits(c, mqtt_suback_size(c->version, sb->count))) {
        conn_too_large(s, c, "SUBACK"); /* MQTT-3.1.2-24: nothing to leave out */
        return PROTO_STOP;
    }
    *subid = mqtt_props_has(&pr, MQTT_PROP_SUBSCRIPTION_ID) ? pr.subscription_id : 0;
    if (*subid && !c->session->tenant->set->subscription_identifiers) {
        protocol_violation(s, c, "subscription identifiers not supported", 0xA1);
        return PROTO_STOP;
    }
    return PROTO_OK;
}

/* check: PROTO_STOP when a filter makes the whole packet a violation;
 * PROTO_WAIT when the plugin's verdict on one is pending (the packet is
 * handled again from the start, so nothing may change before this returns
 * PROTO_OK). *flen: the bytes the filters take in a pending_sub. */
static enum proto_result subscribe_check(struct shard *s, struct conn *c,
                                         const struct mqtt_subscribe *sb, size_t *flen)
{
    struct mqtt_sub_iter it;
    struct mqtt_bytes filter;
    uint8_t options;
    *flen = 0;
    mqtt_sub_iter_init(&it, sb, true);
    while (mqtt_sub_iter_next(&it, &filter, &options)) {
        int code = filter_check(c, filter, options);
        if (code < 0) {
            protocol_violation(s, c, "invalid topic filter", MQTT_RC_PROTOCOL_ERROR);
            return PROTO_STOP;
        }
        if (code == 0 && acl_check(s, c, RINGMQ_ACTION_SUBSCRIBE, filter.p, filter.len, options & 3,
                                   false, NULL) == ACL_WAIT)
            return PROTO_WAIT;
        *flen += 2 + filter.len;
    }
    return PROTO_OK;
}

/* The pending SUBACK of `sb` (its filters taking `flen` bytes), codes and
 * flags to be filled in, not yet linked anywhere; NULL when out of memory. */
static struct pending_sub *pending_create(const struct conn *c, const struct mqtt_subscribe *sb,
                                          size_t flen, uint32_t subid)
{
    struct pending_sub *p = malloc(sizeof(*p) + flen + 2 * (size_t)sb->count);
    if (!p)
        return NULL;
    memset(p, 0, sizeof(*p));
    p->codes = p->filters + flen;
    p->flags = p->codes + sb->count;
    p->n = sb->count;
    p->pid = sb->packet_id;
    p->subid = subid;
    p->conn_id = c->id;
    p->ss = c->session;
    return p;
}

/* Subscribe the session to a filter that was allowed (read-checked per
 * topic when `per_topic`): the SUBACK code (the QoS granted, or the
 * failure), PENDING_* in p->flags[i]; *acks counts the shards told of a
 * new interest, which the SUBACK then waits for. */
static int subscribe_add(struct shard *s, struct conn *c, struct pending_sub *p, uint32_t i,
                         struct mqtt_bytes filter, uint8_t options, bool per_topic, uint32_t *acks)
{
    const struct tenant_settings *ts = c->session->tenant->set;
    struct sub_req req = {.qos = options & 3, .subid = p->subid};
    if (req.qos > ts->max_qos)
        req.qos = (uint8_t)ts->max_qos; /* MQTT-3.2.2-10: downgrade */
    if (per_topic) {
        req.opts |= SUB_READ_CHECK;
        p->flags[i] |= PENDING_READ_CHECK;
    }
    if (c->v5) {
        if (options & 0x04)
            req.opts |= SUB_NO_LOCAL;
        if (options & 0x08)
            req.opts |= SUB_RETAIN_AS_PUBLISHED;
    }
    uint8_t retain_handling = c->v5 ? (options >> 4) & 3 : 0;
    sub_req_set_retain_handling(&req, retain_handling);
    bool fresh = false, existed = false;
    int code;
    int r = session_subscribe(s, c->session, filter.p, filter.len, &req, &fresh, &existed);
    if (r == 0) {
        code = req.qos; /* MQTT-3.9.3-1: one code per filter, in order */
        /* MQTT-3.3.1-9..11 (5.0): Retain Handling 0 sends, 1 only for a
         * new subscription, 2 never. */
        /* MQTT 5.0 4.8.2: no retained messages on a shared one. */
        if ((retain_handling == 0 || (retain_handling == 1 && !existed)) &&
            mqtt_share_parse(filter.p, filter.len, &(struct mqtt_share_spec){0}) == MQTT_SHARE_NONE)
            p->flags[i] |= PENDING_RETAINED;
    } else {
        code = r == -ENOSPC && c->v5 ? MQTT_RC_QUOTA_EXCEEDED : MQTT_RC_UNSPECIFIED;
    }
    if (fresh)
        *acks +=
            route_interest_add(s, c->session->tenant, filter.p, filter.len, (uint64_t)(uintptr_t)p);
    return code;
}

/* One filter of a checked SUBSCRIBE: its SUBACK code, subscribing it when
 * it is valid, allowed and within the tenant's quotas (subscribe_add). */
static int subscribe_filter(struct shard *s, struct conn *c, struct pending_sub *p, uint32_t i,
                            struct mqtt_bytes filter, uint8_t options, uint32_t *acks)
{
    int code = filter_check(c, filter, options);
    p->flags[i] = 0;
    bool per_topic = false;
    if (code == 0 && c->session->st.expiry_s && store_failing(s))
        code = c->v5 ? MQTT_RC_QUOTA_EXCEEDED : MQTT_RC_UNSPECIFIED; /* the store cannot write */
    if (code == 0)
        code = subscribe_allowed(s, c, filter, options, &per_topic);
    if (code == 0 && !session_has_sub(c->session, filter.p, filter.len) &&
        (!observe_throttle(s, c->session->tenant, RINGMQ_RES_SUBSCRIPTIONS, 1, c->session) ||
         (mqtt_share_parse(filter.p, filter.len, &(struct mqtt_share_spec){0}) > 0 &&
          !observe_throttle(s, c->session->tenant, RINGMQ_RES_SHARED_SUBSCRIPTIONS, 1,
                            c->session))))
        code = c->v5 ? MQTT_RC_QUOTA_EXCEEDED : MQTT_RC_UNSPECIFIED;
    if (code == 0)
        code = subscribe_add(s, c, p, i, filter, options, per_topic, acks);
    return code;
}

/* The SUBACK invariant: answer only once every shard has processed
 * everything we sent it before, including any earlier interest for these
 * filters (`acks` shards were sent one; none: ping them all). Links p to
 * the shard and the session; the SUBACK goes out from protocol_on_ack. */
static void pending_start(struct shard *s, struct session *ss, struct pending_sub *p, uint32_t acks)
{
    if (acks == 0)
        acks = route_ping_all(s, (uint64_t)(uintptr_t)p);
    p->next = s->pending_subs;
    if (p->next)
        p->next->prev = p;
    s->pending_subs = p;
    p->next_in_session = ss->pending;
    ss->pending = p;
    p->waiting = acks + 1;
    protocol_on_ack(s, (uint64_t)(uintptr_t)p); /* our own share */
}

enum proto_result protocol_subscribe(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                                     const uint8_t *body)
{
    struct mqtt_subscribe sb;
    uint32_t subid;
    size_t flen;
    enum proto_result r = subscribe_decode(s, c, f, body, &sb, &subid);
    if (r == PROTO_OK)
        r = subscribe_check(s, c, &sb, &flen);
    if (r != PROTO_OK)
        return r;
    struct pending_sub *p = pending_create(c, &sb, flen, subid);
    if (!p) {
        protocol_violation(s, c, "out of memory", MQTT_RC_UNSPECIFIED);
        return PROTO_STOP;
    }
    struct mqtt_sub_iter it;
    struct mqtt_bytes filter;
    uint8_t options;
    uint8_t *w = p->filters;
    uint32_t acks = 0, i = 0;
    mqtt_sub_iter_init(&it, &sb, true);
    while (mqtt_sub_iter_next(&it, &filter, &options)) {
        p->codes[i] = (uint8_t)subscribe_filter(s, c, p, i, filter, options, &acks);
        w[0] = (uint8_t)(filter.len & 0xff);
        w[1] = (uint8_t)(filter.len >> 8);
        memcpy(w + 2, filter.p, filter.len);
        w += 2 + filter.len;
        i++;
    }
    pending_start(s, c->session, p, acks);
    return PROTO_OK;
}

/*
 * protocol_unsubscribe: decode -> check (every verdict known before
 * anything changes) -> unsubscribe each filter -> UNSUBACK.
 */

/* decode: the UNSUBSCRIBE of `f` and its 5.0 properties; PROTO_STOP when
 * malformed or when its UNSUBACK cannot fit the client's Maximum Packet
 * Size. */
static enum proto_result unsubscribe_decode(struct shard *s, struct conn *c,
                                            const struct mqtt_frame *f, const uint8_t *body,
                                            struct mqtt_subscribe *sb)
{
    int rc = mqtt_unsubscribe_decode(f->flags, body, f->body_len, c->version, sb);
    if (rc == MQTT_OK && c->v5) {
        struct mqtt_props pr;
        rc = mqtt_props_decode(MQTT_UNSUBSCRIBE, sb->props.p, sb->props.len, &pr);
    }
    if (rc != MQTT_OK) {
        protocol_violation(s, c, "bad UNSUBSCRIBE", rc);
        return PROTO_STOP;
    }
    if (!conn_fits(c, mqtt_suback_size(c->version, sb->count))) {
        conn_too_large(s, c, "UNSUBACK"); /* MQTT-3.1.2-24: nothing to leave out */
        return PROTO_STOP;
    }
    return PROTO_OK;
}

/* check: PROTO_WAIT when the plugin's verdict on a filter is pending (the
 * packet is handled again from the start, so nothing may change before
 * this returns PROTO_OK). */
static enum proto_result unsubscribe_check(struct shard *s, struct conn *c,
                                           const struct mqtt_subscribe *sb)
{
    const struct tenant_settings *ts = c->session->tenant->set;
    struct mqtt_sub_iter it;
    struct mqtt_bytes filter;
    uint8_t options;
    mqtt_sub_iter_init(&it, sb, false);
    while (mqtt_sub_iter_next(&it, &filter, &options))
        if (mqtt_topic_filter_valid(filter.p, filter.len) &&
            topic_within_limits(ts, filter.p, filter.len) &&
            acl_check(s, c, RINGMQ_ACTION_UNSUBSCRIBE, filter.p, filter.len, 0, false, NULL) ==
                ACL_WAIT)
            return PROTO_WAIT;
    return PROTO_OK;
}

/* One filter of a checked UNSUBSCRIBE: its UNSUBACK reason code,
 * unsubscribing it when it is valid and allowed; -1 when it is invalid
 * from a 3.x client, which makes the packet a violation. */
static int unsubscribe_filter(struct shard *s, struct conn *c, struct mqtt_bytes filter)
{
    if (!mqtt_topic_filter_valid(filter.p, filter.len))
        return c->v5 ? MQTT_RC_TOPIC_FILTER_INVALID : -1;
    if (!topic_within_limits(c->session->tenant->set, filter.p, filter.len)) {
        /* No such subscription can exist (SUBSCRIBE refuses it); 5.0
         * says why, 3.1.1's UNSUBACK has no codes. */
        return MQTT_RC_TOPIC_FILTER_INVALID;
    }
    uint8_t why;
    if (acl_check(s, c, RINGMQ_ACTION_UNSUBSCRIBE, filter.p, filter.len, 0, false, &why) !=
        RINGMQ_GRANTED) {
        /* The subscription stays. 5.0 says so (0x87, or the plugin's
         * code); 3.1.1's UNSUBACK has no codes (MQTT-3.10.4-5: it is
         * sent anyway). */
        c->session->tenant->ctr.denied++;
        observe_event(s, RINGMQ_EV_PERMISSION_DENIED, c->session->tenant, c->session,
                      RINGMQ_ACTION_UNSUBSCRIBE, 0, filter.p, filter.len);
        return why ? why : MQTT_RC_NOT_AUTHORIZED;
    }
    bool had = session_unsubscribe(s, c->session, filter.p, filter.len);
    return had ? 0x00 : 0x11; /* 0x11: No subscription existed */
}

/* MQTT-3.10.4-4/-5: UNSUBACK for `sb` even when nothing matched; the `n`
 * codes only in 5.0. */
static void unsuback_write(struct shard *s, struct conn *c, const struct mqtt_subscribe *sb,
                           const uint8_t *codes, uint32_t n)
{
    if (c->v5) {
        uint8_t *p = conn_reserve(s, c, mqtt_suback_size(c->version, sb->count));
        if (p)
            conn_commit(s, c,
                        mqtt_suback_encode(p, MQTT_UNSUBACK, c->version, sb->packet_id, codes, n));
    } else {
        conn_write_ack(s, c, MQTT_UNSUBACK, sb->packet_id, 0, NULL);
    }
}

enum proto_result protocol_unsubscribe(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                                       const uint8_t *body)
{
    struct mqtt_subscribe sb;
    enum proto_result r = unsubscribe_decode(s, c, f, body, &sb);
    if (r == PROTO_OK)
        r = unsubscribe_check(s, c, &sb);
    if (r != PROTO_OK)
        return r;
    uint8_t codes_small[64];
    uint8_t *codes = sb.count <= sizeof(codes_small) ? codes_small : malloc(sb.count);
    if (!codes) {
        protocol_violation(s, c, "out of memory", MQTT_RC_UNSPECIFIED);
        return PROTO_STOP;
    }
    struct mqtt_sub_iter it;
    struct mqtt_bytes filter;
    uint8_t options;
    uint32_t i = 0;
    mqtt_sub_iter_init(&it, &sb, false);
    while (mqtt_sub_iter_next(&it, &filter, &options)) {
        int code = unsubscribe_filter(s, c, filter);
        if (code < 0) {
            if (codes != codes_small)
                free(codes);
            protocol_violation(s, c, "invalid topic filter", MQTT_RC_TOPIC_FILTER_INVALID);
            return PROTO_STOP;
        }
        codes[i++] = (uint8_t)code;
    }
    unsuback_write(s, c, &sb, codes, i);
    if (codes != codes_small)
        free(codes);
    return PROTO_OK;
}
