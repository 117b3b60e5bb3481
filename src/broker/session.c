/*
 * session: per client id state, homed on one shard (see session.h).
 *
 * Runs on the owning shard's thread only. Memory held by a session grows
 * only with what the client asked for (subscriptions) and what the limits
 * allow (max_inflight, max_queued_messages/bytes); an idle session holds
 * no in-flight or queue array.
 */
#include "broker/session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "broker/conn.h"
#include "broker/msg.h"
#include "broker/observe.h"
#include "broker/protocol.h"
#include "broker/readcheck.h"
#include "broker/route.h"
#include "broker/shard.h"
#include "broker/share.h"
#include "core/log.h"
#include "core/vec.h"
#include "index/trie.h"
#include "broker/alias.h"
#include "mqtt/codec.h"
#include "mqtt/props.h"

/* While a shard holds more unsent output than its share of
 * limits.max_slow_output_total, QoS 0 is dropped for every client with at
 * least SESSION_SLOW_MIN unsent: a client that keeps up has next to
 * nothing (conn.h). */

/* One per connection: 16 more bytes here are 16 more per connection. */
_Static_assert(sizeof(struct session) <= 176, "struct session grew past 176 bytes");

/* ---- registry: (tenant, client id) -> session, chained hash table ---- */

static uint64_t reg_hash(const struct tenant *t, const uint8_t *id, size_t len)
{
    return XXH3_64bits_withSeed(id, len, t->id);
}

static struct session **reg_find(struct tenant *t, uint64_t h, const uint8_t *id, size_t len)
{
    if (!t->reg)
        return NULL;
    struct session **pp = &t->reg[h & t->reg_mask];
    for (; *pp; pp = &(*pp)->reg_next) {
        struct session *ss = *pp;
        if (ss->reg_hash == h && ss->client_id_len == len && memcmp(ss->client_id, id, len) == 0)
            return pp;
    }
    return NULL;
}

static int reg_grow(struct tenant *t)
{
    uint32_t n = t->reg ? (t->reg_mask + 1) * 2 : 64;
    struct session **v = calloc(n, sizeof(*v));
    if (!v)
        return -ENOMEM;
    if (t->reg) {
        for (uint32_t i = 0; i <= t->reg_mask; i++) {
            struct session *ss = t->reg[i];
            while (ss) {
                struct session *next = ss->reg_next;
                ss->reg_next = v[ss->reg_hash & (n - 1)];
                v[ss->reg_hash & (n - 1)] = ss;
                ss = next;
            }
        }
        free(t->reg);
    }
    t->reg = v;
    t->reg_mask = n - 1;
    return 0;
}

bool session_exists(struct tenant *t, const uint8_t *id, size_t len)
{
    return reg_find(t, reg_hash(t, id, len), id, len) != NULL;
}

struct session *session_find(struct tenant *t, const uint8_t *id, size_t len)
{
    struct session **pp = reg_find(t, reg_hash(t, id, len), id, len);
    return pp ? *pp : NULL;
}

bool session_connected(struct tenant *t, const uint8_t *id, size_t len)
{
    struct session **pp = reg_find(t, reg_hash(t, id, len), id, len);
    return pp && (*pp)->conn;
}

static void reg_remove(struct tenant *t, struct session *ss)
{
    struct session **pp = reg_find(t, ss->reg_hash, ss->client_id, ss->client_id_len);
    if (pp && *pp == ss) {
        *pp = ss->reg_next;
        t->reg_count--;
    }
}

/* ---- output helpers ---- */

/* Encode one PUBLISH for a 5.0 client: properties forwarded with the
 * remaining expiry, our Subscription Identifiers and a topic alias. Returns
 * false when the client's Maximum Packet Size forbids it (MQTT-3.1.2-25). */
static bool write_publish_v5(struct shard *s, struct conn *c, const struct msg *m, uint8_t qos,
                             bool dup, bool retain, uint16_t pid, const uint32_t *ids, size_t nids)
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
        observe_drop(s, c->session->tenant, c->session, RINGMQ_DROP_TOO_LARGE, m, 1);
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
    c->session->tenant->ctr.msgs_out[qos]++;
    c->session->tenant->ctr.bytes_out[qos] += total;
    return true;
}

static bool write_publish(struct shard *s, struct conn *c, const struct msg *m, uint8_t qos,
                          bool dup, bool retain, uint16_t pid, const uint32_t *ids, size_t nids)
{
    if (c->v5)
        return write_publish_v5(s, c, m, qos, dup, retain, pid, ids, nids);
    size_t n = mqtt_publish_size(c->version, m->topic_len, m->payload_len, qos);
    uint8_t *p = conn_reserve(s, c, n);
    if (!p)
        return true;
    mqtt_publish_encode(p, c->version, qos, dup, retain, msg_topic(m), m->topic_len, pid,
                        msg_payload(m), m->payload_len);
    conn_commit(s, c, n);
    c->session->tenant->ctr.msgs_out[qos]++;
    c->session->tenant->ctr.bytes_out[qos] += n;
    return true;
}

static bool online(const struct session *ss)
{
    return ss->conn && ss->conn->state == CONN_ACTIVE;
}

static subids_t ids_copy(const uint32_t *ids, size_t n)
{
    if (n == 0)
        return NULL;
    subids_t v = malloc((n + 1) * sizeof(*v));
    if (v) {
        v[0] = (uint32_t)n;
        memcpy(v + 1, ids, n * sizeof(*ids));
    }
    return v;
}

static struct xfilter *share_copy(const uint8_t *f, size_t len)
{
    if (!f)
        return NULL;
    struct xfilter *x = malloc(sizeof(*x) + len);
    if (x) {
        x->len = (uint16_t)len;
        memcpy(x->data, f, len);
    }
    return x;
}

static const uint32_t *ids_of(const subids_t v, size_t *n)
{
    *n = v ? v[0] : 0;
    return v ? v + 1 : NULL;
}

/* ---- in-flight window and queue ---- */

static struct inflight *infl_find(struct session *ss, uint16_t pid)
{
    for (uint16_t i = 0; i < ss->ninfl; i++)
        if (ss->infl[i].pid == pid)
            return &ss->infl[i];
    return NULL;
}

static void infl_remove(struct session *ss, struct inflight *e)
{
    if (e->held)
        ss->nheld--;
    msg_release(e->m);
    free(e->ids);
    free(e->share);
    size_t i = (size_t)(e - ss->infl);
    memmove(e, e + 1, (ss->ninfl - i - 1) * sizeof(*e));
    ss->ninfl--;
    /* The (small) window stays while the client is connected, so steady
     * QoS 1/2 traffic allocates nothing per message; session_detach frees
     * an empty one. */
}

static uint16_t next_pid(struct session *ss)
{
    for (;;) {
        ss->next_pid++;
        if (ss->next_pid == 0)
            ss->next_pid = 1;
        if (!infl_find(ss, ss->next_pid))
            return ss->next_pid;
    }
}

/* Takes ownership of the caller's reference to m, of ids and of share. */
static void send_inflight(struct shard *s, struct session *ss, struct msg *m, uint8_t qos,
                          bool retain, subids_t ids, struct xfilter *share)
{
    if (msg_expired(m, s->now_ms)) {
        /* MQTT-3.3.2-5: onward delivery had not started. */
        observe_drop(s, ss->tenant, ss, RINGMQ_DROP_EXPIRED, m, 1);
        msg_release(m);
        free(ids);
        free(share);
        return;
    }
    if (ss->ninfl == ss->infl_cap) {
        /* Doubled in 32 bits: a window above 32768 would wrap a uint16_t
         * to 0 (realloc to nothing). Capped by the window, <= 65535. */
        uint32_t cap = ss->infl_cap ? 2u * ss->infl_cap : 8u;
        if (cap > ss->window)
            cap = ss->window;
        struct inflight *v = realloc(ss->infl, cap * sizeof(*v));
        if (!v) {
            msg_release(m);
            free(ids);
            free(share);
            observe_drop(s, ss->tenant, ss, RINGMQ_DROP_QUEUE_FULL, NULL, 1);
            return;
        }
        ss->infl = v;
        ss->infl_cap = (uint16_t)cap;
    }
    size_t nids;
    const uint32_t *idv = ids_of(ids, &nids);
    uint16_t pid = next_pid(ss);
    if (!write_publish(s, ss->conn, m, qos, false, retain, pid, idv, nids)) {
        /* Too large for this client: dropped for it alone (counted). */
        msg_release(m);
        free(ids);
        free(share);
        return;
    }
    struct inflight *e = &ss->infl[ss->ninfl++];
    e->m = m;
    e->ids = ids;
    e->share = share;
    e->pid = pid;
    e->qos = qos;
    e->state = INFL_WAIT_ACK;
    e->retain = retain;
    e->held = 0;
}

/* Take the head of a non-empty queue (the caller owns what it holds). */
static struct qentry queue_pop(struct session *ss)
{
    struct qentry e = ss->q[ss->qhead];
    ss->qhead = (ss->qhead + 1) & (ss->qcap - 1);
    ss->qlen--;
    ss->qbytes -= msg_size(e.m);
    return e;
}

static void queue_push(struct shard *s, struct session *ss, struct msg *m, uint8_t qos, bool retain,
                       subids_t ids, struct xfilter *share, bool paid)
{
    const struct tenant_settings *ts = ss->tenant->set;
    if (ts->queue_drop_oldest && ts->max_queued_messages &&
        (!ts->max_queued_bytes || msg_size(m) <= ts->max_queued_bytes)) {
        /* Drop policy "oldest": the head makes room for the newcomer. */
        while (ss->qlen &&
               (ss->qlen >= ts->max_queued_messages ||
                (ts->max_queued_bytes && ss->qbytes + msg_size(m) > ts->max_queued_bytes))) {
            struct qentry e = queue_pop(ss);
            observe_drop(s, ss->tenant, ss, RINGMQ_DROP_QUEUE_FULL, e.m, 1);
            msg_release(e.m);
            free(e.ids);
            free(e.share);
        }
    }
    if (ss->qlen >= ts->max_queued_messages ||
        (ts->max_queued_bytes && ss->qbytes + msg_size(m) > ts->max_queued_bytes)) {
        /* Drop policy "newest" (or a message larger than the whole queue):
         * the arriving message is dropped, what is queued keeps its order.
         * Counted per shard. */
        observe_drop(s, ss->tenant, ss, RINGMQ_DROP_QUEUE_FULL, m, 1);
        log_ratelimited(LOG_LEVEL_WARN, "client %.*s: queue full, message dropped",
                        (int)ss->client_id_len, ss->client_id);
        msg_release(m);
        free(ids);
        free(share);
        return;
    }
    if (ss->qlen == ss->qcap) {
        uint32_t cap = ss->qcap ? ss->qcap * 2 : 8;
        struct qentry *v = malloc(cap * sizeof(*v));
        if (!v) {
            observe_drop(s, ss->tenant, ss, RINGMQ_DROP_QUEUE_FULL, m, 1);
            msg_release(m);
            free(ids);
            free(share);
            return;
        }
        for (uint32_t i = 0; i < ss->qlen; i++)
            v[i] = ss->q[(ss->qhead + i) & (ss->qcap - 1)];
        free(ss->q);
        ss->q = v;
        ss->qcap = cap;
        ss->qhead = 0;
    }
    ss->q[(ss->qhead + ss->qlen) & (ss->qcap - 1)] =
        (struct qentry){m, ids, share, qos, retain, paid};
    ss->qlen++;
    ss->qbytes += msg_size(m);
}

static void throttled_add(struct shard *s, struct session *ss)
{
    if (ss->out_throttled)
        return;
    if (s->nthrottled == s->throttled_cap) {
        struct session **v = vec_grow(s->throttled, &s->throttled_cap, sizeof(*v), 16);
        if (!v)
            return; /* not held back: the queue drains with the next ack */
        s->throttled = v;
    }
    s->throttled[s->nthrottled++] = ss;
    ss->out_throttled = true;
}

static void throttled_remove(struct shard *s, struct session *ss)
{
    if (!ss->out_throttled)
        return;
    for (uint32_t i = 0; i < s->nthrottled; i++)
        if (s->throttled[i] == ss) {
            s->throttled[i] = s->throttled[--s->nthrottled];
            break;
        }
    ss->out_throttled = false;
}

/* Resend the in-flight entry i (DUP). False when it was too large for the
 * client and is gone (MQTT-3.1.2-25: done as if sent). */
static bool resend(struct shard *s, struct session *ss, uint16_t i)
{
    struct inflight *e = &ss->infl[i];
    size_t nids;
    const uint32_t *ids = ids_of(e->ids, &nids);
    if (e->held) {
        e->held = 0;
        ss->nheld--;
    }
    if (!write_publish(s, ss->conn, e->m, e->qos, true, e->retain, e->pid, ids, nids)) {
        infl_remove(ss, e);
        return false;
    }
    return true;
}

/* MQTT-3.3.4-9: resend held entries, in order, while the client's Receive
 * Maximum allows. */
static void resend_held(struct shard *s, struct session *ss)
{
    for (uint16_t i = 0; ss->nheld && online(ss) && i < ss->ninfl;) {
        if (!ss->infl[i].held) {
            i++;
            continue;
        }
        if (ss->ninfl - ss->nheld >= ss->window)
            return;
        if (resend(s, ss, i))
            i++;
    }
}

static void pump(struct shard *s, struct session *ss)
{
    resend_held(s, ss);
    if (ss->out_throttled)
        return; /* session_drain_throttled sends what the quota allows */
    while (ss->qlen && online(ss) && ss->ninfl < ss->window) {
        struct qentry e = queue_pop(ss);
        send_inflight(s, ss, e.m, e.qos, e.retain, e.ids, e.share);
    }
    if (ss->qlen == 0 && ss->q) {
        free(ss->q);
        ss->q = NULL;
        ss->qcap = 0;
        ss->qhead = 0;
    }
}

/*
 * Whether a QoS 0 message for a connected subscriber is dropped because the
 * subscriber does not keep up: over its own cap, or, while the shard holds
 * more than its share of the broker-wide budget, with SESSION_SLOW_MIN
 * unsent. Counted as slow_consumer; the event goes out once per episode
 * (until the subscriber is under the cap again), not once per message.
 */
static bool qos0_shed(struct shard *s, struct session *ss, const struct msg *m)
{
    /* Once slow, dropped until the connection says it caught up
     * (conn.c): a flood to 1000 such subscribers reads no connection. */
    if (!ss->slow) {
        size_t backlog = conn_backlog(ss->conn);
        if (backlog <= ss->tenant->set->max_client_output &&
            !(s->slow_budget && s->streams.out_bytes > s->slow_budget &&
              backlog >= SESSION_SLOW_MIN))
            return false;
        ss->slow = true;
        observe_event(s, RINGMQ_EV_SLOW_SUBSCRIBER, ss->tenant, ss, RINGMQ_DROP_SLOW_CONSUMER, 0,
                      msg_topic(m), m->topic_len);
    }
    ss->tenant->ctr.dropped[RINGMQ_DROP_SLOW_CONSUMER]++;
    return true;
}

void session_deliver_shared(struct shard *s, struct session *ss, struct msg *m, uint8_t qos,
                            bool retain, const uint32_t *ids, size_t nids, const uint8_t *share,
                            size_t share_len)
{
    if (msg_expired(m, s->now_ms)) {
        observe_drop(s, ss->tenant, ss, RINGMQ_DROP_EXPIRED, m, 1);
        return;
    }
    if (qos == 0) {
        if (!online(ss))
            return; /* QoS 0 is not stored for offline clients */
        if (s->out_quota == OUT_OVER) {
            /* Over the tenant's outbound bytes quota: at most once. */
            observe_drop(s, ss->tenant, ss, RINGMQ_DROP_THROTTLED, m, 1);
            return;
        }
        if (qos0_shed(s, ss, m))
            return;
        write_publish(s, ss->conn, m, 0, false, retain, 0, ids, nids);
        return;
    }
    msg_acquire(m);
    subids_t copy = ids_copy(ids, nids);
    struct xfilter *sh = share_copy(share, share_len);
    if (online(ss) && ss->qlen == 0 && ss->ninfl < ss->window && s->out_quota != OUT_OVER) {
        send_inflight(s, ss, m, qos, retain, copy, sh);
        return;
    }
    queue_push(s, ss, m, qos, retain, copy, sh, s->out_quota == OUT_GRANTED);
    if (s->out_quota == OUT_OVER && online(ss))
        throttled_add(s, ss); /* QoS 1 and 2 wait for the quota, in order */
}

void session_drain_throttled(struct shard *s)
{
    /* Tenants refused in this pass: their other sessions are not asked again
     * (the answer would not change; one THROTTLED event per tenant). */
    uint16_t refused[16];
    uint32_t nrefused = 0;
    for (uint32_t i = 0; i < s->nthrottled;) {
        struct session *ss = s->throttled[i];
        bool held = false;
        for (uint32_t k = 0; k < nrefused && !held; k++)
            held = refused[k] == ss->tenant->id;
        while (!held && ss->qlen && online(ss) && ss->ninfl < ss->window) {
            struct qentry *e = &ss->q[ss->qhead];
            if (!e->paid && !observe_throttle(s, ss->tenant, RINGMQ_RES_BYTES_OUT_RATE,
                                              msg_publish_estimate(e->m), NULL)) {
                if (nrefused < sizeof(refused) / sizeof(refused[0]))
                    refused[nrefused++] = ss->tenant->id;
                held = true;
                break;
            }
            struct qentry x = queue_pop(ss);
            send_inflight(s, ss, x.m, x.qos, x.retain, x.ids, x.share);
        }
        if (ss->qlen == 0 || !online(ss)) {
            /* Done, or offline (resumed later like any session). */
            s->throttled[i] = s->throttled[--s->nthrottled];
            ss->out_throttled = false;
            pump(s, ss);
            continue;
        }
        i++;
    }
}

void session_deliver(struct shard *s, struct session *ss, struct msg *m, uint8_t qos, bool retain,
                     const uint32_t *ids, size_t nids)
{
    session_deliver_shared(s, ss, m, qos, retain, ids, nids, NULL, 0);
}

int session_on_puback(struct shard *s, struct session *ss, uint16_t pid)
{
    struct inflight *e = infl_find(ss, pid);
    if (e && e->qos == 1) {
        infl_remove(ss, e);
        pump(s, ss);
    }
    /* An unknown id is ignored: it may be an ack for a message the session
     * no longer tracks (e.g. sent before a clean reconnect). */
    return 0;
}

int session_on_pubrec(struct shard *s, struct session *ss, uint16_t pid, uint8_t reason)
{
    struct inflight *e = infl_find(ss, pid);
    if (!e || e->qos != 2)
        return 0;
    if (reason >= 0x80) {
        /* MQTT 5.0 4.3.3: a failing PUBREC ends the flow; no PUBREL. */
        infl_remove(ss, e);
        pump(s, ss);
        return 0;
    }
    if (e->held) {
        /* Received before the reconnection after all: nothing to resend. */
        e->held = 0;
        ss->nheld--;
    }
    if (e->state == INFL_WAIT_ACK) {
        /* MQTT-4.3.3-1: after PUBREC the message is no longer needed. */
        msg_release(e->m);
        e->m = NULL;
        free(e->ids);
        e->ids = NULL;
        free(e->share);
        e->share = NULL;
        e->state = INFL_WAIT_COMP;
    }
    conn_write_ack(s, ss->conn, MQTT_PUBREL, pid, MQTT_RC_SUCCESS, NULL);
    return 0;
}

int session_on_pubcomp(struct shard *s, struct session *ss, uint16_t pid)
{
    struct inflight *e = infl_find(ss, pid);
    if (e && e->state == INFL_WAIT_COMP) {
        infl_remove(ss, e);
        pump(s, ss);
    }
    return 0;
}

void session_resume(struct shard *s, struct session *ss)
{
    /* MQTT-4.4.0-1: resend unacknowledged PUBLISH (DUP) and PUBREL, in order.
     * MQTT-3.3.4-9: only as many PUBLISH as the new connection's Receive
     * Maximum allows (each entry holds one slot until PUBACK/PUBCOMP); the
     * rest are held and resent as acknowledgements come (pump). */
    uint32_t used = 0;
    ss->nheld = 0;
    for (uint16_t i = 0; i < ss->ninfl;) {
        struct inflight *e = &ss->infl[i];
        e->held = 0;
        if (e->state == INFL_WAIT_ACK) {
            if (used >= ss->window) {
                e->held = 1;
                ss->nheld++;
            } else if (!resend(s, ss, i)) {
                /* MQTT-3.1.2-25: too large for the client's new Maximum
                 * Packet Size; done as if sent, or it would hold a slot of
                 * the client's Receive Maximum that no ack ever frees. */
                continue;
            }
        } else {
            conn_write_ack(s, ss->conn, MQTT_PUBREL, e->pid, MQTT_RC_SUCCESS, NULL);
        }
        used++;
        i++;
    }
    pump(s, ss);
}

/* ---- inbound QoS 2 ids ---- */

bool session_qos2_has(const struct session *ss, uint16_t pid)
{
    for (uint16_t i = 0; i < ss->nqos2; i++)
        if (ss->qos2_in[i] == pid)
            return true;
    return false;
}

int session_qos2_add(struct shard *s, struct session *ss, uint16_t pid)
{
    /* Our Receive Maximum bounds the QoS 2 flows a client may leave open
     * (MQTT-3.3.4-7); 3.1.1 clients get the same bound. */
    uint32_t max = ss->tenant->set->receive_maximum;
    (void)s;
    if (ss->nqos2 >= max)
        return -ENOSPC;
    if (ss->nqos2 == ss->qos2_cap) {
        uint32_t cap = ss->qos2_cap ? 2u * ss->qos2_cap : 4u;
        if (cap > max)
            cap = max;
        uint16_t *v = realloc(ss->qos2_in, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        ss->qos2_in = v;
        ss->qos2_cap = (uint16_t)cap;
    }
    ss->qos2_in[ss->nqos2++] = pid;
    return 0;
}

void session_qos2_remove(struct session *ss, uint16_t pid)
{
    for (uint16_t i = 0; i < ss->nqos2; i++) {
        if (ss->qos2_in[i] == pid) {
            ss->qos2_in[i] = ss->qos2_in[--ss->nqos2];
            break;
        }
    }
}

bool topic_within_limits(const struct tenant_settings *ts, const uint8_t *t, size_t len)
{
    if (len > ts->max_topic_length)
        return false;
    uint32_t levels = 1;
    for (size_t i = 0; i < len; i++)
        levels += t[i] == '/';
    return levels <= ts->max_topic_levels;
}

/* ---- subscriptions ---- */

static struct sess_sub **sub_find(struct session *ss, const uint8_t *filter, size_t len)
{
    for (uint32_t i = 0; i < ss->nsubs; i++)
        if (ss->subs[i]->len == len && memcmp(ss->subs[i]->filter, filter, len) == 0)
            return &ss->subs[i];
    return NULL;
}

bool session_has_sub(struct session *ss, const uint8_t *filter, size_t len)
{
    return sub_find(ss, filter, len) != NULL;
}

static struct sub_entry *node_find(struct sub_node *n, const struct session *ss)
{
    for (uint32_t i = 0; i < n->n; i++)
        if (n->v[i].s == ss)
            return &n->v[i];
    return NULL;
}

int session_subscribe(struct shard *s, struct session *ss, const uint8_t *filter, size_t len,
                      const struct sub_req *req, bool *is_new_interest, bool *existed)
{
    struct tenant *t = ss->tenant;
    *is_new_interest = false;
    struct sess_sub **have = sub_find(ss, filter, len);
    *existed = have != NULL;
    if (have) {
        /* MQTT-3.8.4-3: a repeated filter replaces the subscription. */
        (*have)->qos = req->qos;
        (*have)->opts = req->opts;
        (*have)->subid = req->subid;
        struct share_spec sp;
        if (share_parse(filter, len, &sp) > 0) {
            bool first;
            return share_member_add(s, t, &sp, ss, req, &first);
        }
        struct sub_node *n = trie_get(t->subs, filter, len);
        struct sub_entry *e = n ? node_find(n, ss) : NULL;
        if (e) {
            e->qos = req->qos;
            e->opts = req->opts;
            e->subid = req->subid;
        }
        return 0;
    }
    if (ss->nsubs >= ss->tenant->set->max_subscriptions)
        return -ENOSPC;
    struct share_spec sp;
    bool shared = share_parse(filter, len, &sp) > 0;
    if (ss->nsubs == ss->subs_cap) {
        struct sess_sub **v = vec_grow(ss->subs, &ss->subs_cap, sizeof(*v), 4);
        if (!v)
            return -ENOMEM;
        ss->subs = v;
    }
    struct sess_sub *sub = malloc(sizeof(*sub) + len);
    if (!sub)
        return -ENOMEM;
    sub->qos = req->qos;
    sub->opts = req->opts;
    sub->subid = req->subid;
    sub->len = (uint16_t)len;
    memcpy(sub->filter, filter, len);

    if (shared) {
        if (share_member_add(s, t, &sp, ss, req, is_new_interest) < 0) {
            free(sub);
            return -ENOMEM;
        }
        ss->subs[ss->nsubs++] = sub;
        t->ctr.subscriptions++;
        t->ctr.shared_subscriptions++;
        return 0;
    }
    void **slot = trie_slot(t->subs, filter, len);
    if (!slot) {
        free(sub);
        return -ENOMEM;
    }
    struct sub_node *n = *slot;
    if (!n) {
        n = calloc(1, sizeof(*n));
        if (!n) {
            free(sub);
            trie_remove(t->subs, filter, len);
            return -ENOMEM;
        }
        *slot = n;
    }
    if (n->n == n->cap) {
        struct sub_entry *v = vec_grow(n->v, &n->cap, sizeof(*v), 2);
        if (!v) {
            free(sub);
            if (share_node_empty(n)) {
                trie_remove(t->subs, filter, len);
                free(n);
            }
            return -ENOMEM;
        }
        n->v = v;
    }
    n->v[n->n++] = (struct sub_entry){ss, req->qos, req->opts, req->subid};
    if (n->n == 1) {
        n->mask |= 1ull << s->id;
        *is_new_interest = true;
    }
    ss->subs[ss->nsubs++] = sub;
    t->ctr.subscriptions++;
    return 0;
}

static void node_drop(struct shard *s, struct tenant *t, const uint8_t *filter, size_t len,
                      struct session *ss)
{
    struct share_spec sp;
    if (share_parse(filter, len, &sp) > 0) {
        share_member_drop(s, t, &sp, filter, len, ss);
        return;
    }
    struct sub_node *n = trie_get(t->subs, filter, len);
    if (!n)
        return;
    struct sub_entry *e = node_find(n, ss);
    if (!e)
        return;
    *e = n->v[--n->n];
    if (n->n)
        return;
    free(n->v);
    n->v = NULL;
    n->cap = 0;
    n->mask &= ~(1ull << s->id);
    route_interest_del(s, t, filter, len);
    if (share_node_empty(n)) {
        trie_remove(t->subs, filter, len);
        free(n);
    }
}

bool session_unsubscribe(struct shard *s, struct session *ss, const uint8_t *filter, size_t len)
{
    struct sess_sub **have = sub_find(ss, filter, len);
    if (!have)
        return false;
    struct sess_sub *sub = *have;
    *have = ss->subs[--ss->nsubs];
    ss->tenant->ctr.subscriptions--;
    if (share_parse(sub->filter, sub->len, &(struct share_spec){0}) > 0)
        ss->tenant->ctr.shared_subscriptions--;
    node_drop(s, ss->tenant, sub->filter, sub->len, ss);
    free(sub);
    return true;
}

/* ---- life cycle ---- */

/* Deadlines of an offline session: the will (after its delay) and the end
 * of the session (after its expiry). Exists only while one is pending. */
struct session_timer {
    struct wheel_entry e;
    struct session *ss;
    uint64_t will_at_ms;   /* 0: no will pending */
    uint64_t expire_at_ms; /* 0: never */
};

static void timer_drop(struct session *ss)
{
    if (ss->timer) {
        wheel_remove(&ss->timer->e);
        free(ss->timer);
        ss->timer = NULL;
    }
}

static void session_destroy(struct shard *s, struct session *ss)
{
    throttled_remove(s, ss);
    reg_remove(ss->tenant, ss);
    ss->tenant->ctr.sessions--;
    ss->tenant->ctr.subscriptions -= ss->nsubs;
    protocol_orphan_pending(ss);
    timer_drop(ss);
    for (uint32_t i = 0; i < ss->nsubs; i++) {
        if (share_parse(ss->subs[i]->filter, ss->subs[i]->len, &(struct share_spec){0}) > 0)
            ss->tenant->ctr.shared_subscriptions--;
        node_drop(s, ss->tenant, ss->subs[i]->filter, ss->subs[i]->len, ss);
        free(ss->subs[i]);
    }
    free(ss->subs);
    /* MQTT 5.0 4.8.2: what a departing member of a shared subscription
     * never acknowledged goes to another member (its subscriptions are
     * dropped above, so it cannot be chosen again). */
    bool redispatch = !s->stopping;
    for (uint16_t i = 0; i < ss->ninfl; i++) {
        struct inflight *e = &ss->infl[i];
        if (redispatch && e->share && e->m)
            share_redispatch(s, ss->tenant, e->share->data, e->share->len, e->m);
        msg_release(e->m);
        free(e->ids);
        free(e->share);
    }
    free(ss->infl);
    for (uint32_t i = 0; i < ss->qlen; i++) {
        struct qentry *e = &ss->q[(ss->qhead + i) & (ss->qcap - 1)];
        if (redispatch && e->share)
            share_redispatch(s, ss->tenant, e->share->data, e->share->len, e->m);
        msg_release(e->m);
        free(e->ids);
        free(e->share);
    }
    free(ss->q);
    free(ss->qos2_in);
    msg_release(ss->will);
    readcheck_free(ss->reads);
    free(ss->client_id);
    slab_free(s->session_slab, ss);
}

struct session *session_attach(struct shard *s, struct tenant *t, struct conn *c,
                               const uint8_t *client_id, size_t len, const struct session_opts *o,
                               bool *present)
{
    uint64_t h = reg_hash(t, client_id, len);
    struct session **pp = reg_find(t, h, client_id, len);
    if (pp && (*pp)->conn) {
        /* MQTT-3.1.4-2: the existing client is disconnected. Closing it
         * detaches (and, with expiry 0, destroys) its session. */
        conn_close(s, (*pp)->conn, CLOSE_TAKEOVER);
        pp = reg_find(t, h, client_id, len);
    }
    struct session *ss = pp ? *pp : NULL;
    if (ss && o->clean_start) {
        /* MQTT-3.1.2-6 / MQTT-3.1.2-4: Clean Start discards any previous
         * state (a pending will is published first, as the session ends). */
        if (ss->will && ss->timer && ss->timer->will_at_ms)
            session_publish_will(s, ss);
        session_destroy(s, ss);
        ss = NULL;
    }
    *present = ss != NULL;
    if (!ss) {
        if (t->reg_count >= (t->reg ? t->reg_mask + 1 : 0) && reg_grow(t) < 0)
            goto oom;
        ss = slab_alloc(s->session_slab);
        if (!ss)
            goto oom;
        ss->client_id = malloc(len ? len : 1);
        if (!ss->client_id) {
            slab_free(s->session_slab, ss);
            goto oom;
        }
        memcpy(ss->client_id, client_id, len);
        ss->client_id_len = (uint16_t)len;
        ss->tenant = t;
        t->ctr.sessions++;
        observe_event(s, RINGMQ_EV_SESSION_CREATED, t, ss, 0, 0, NULL, 0);
        ss->reg_hash = h;
        struct session **bucket = &t->reg[h & t->reg_mask];
        ss->reg_next = *bucket;
        *bucket = ss;
        t->reg_count++;
    }
    /* A reconnection within the will delay cancels the old will
     * (MQTT-3.1.3-9): the new CONNECT's will replaces it. */
    timer_drop(ss);
    ss->expiry_s = o->expiry_s;
    ss->will_delay_s = o->will_delay_s;
    ss->window = o->window;
    ss->conn = c;
    ss->slow = false; /* a new connection has nothing unsent */
    msg_release(ss->will);
    ss->will = o->will;
    /* Reads through the subscriptions it resumes are judged as the client
     * now connected (a failure leaves them refused: readcheck_bind). */
    if (ss->reads && readcheck_bind(ss, c->auth) < 0)
        log_ratelimited(LOG_LEVEL_ERR, "out of memory for the read checks of a session");
    return ss;
oom:
    msg_release(o->will);
    return NULL;
}

void session_publish_will(struct shard *s, struct session *ss)
{
    struct msg *will = ss->will;
    ss->will = NULL;
    if (!will)
        return;
    /* Sole owner until published: its expiry still holds the interval
     * and starts counting now (connect.c). */
    if (will->expires_at_ms)
        will->expires_at_ms += s->now_ms;
    /* A retained will counts toward the tenant's retained limits like any
     * retained PUBLISH (or clients could fill the store through wills);
     * over them it is published, not retained, as for a 3.1.1 PUBLISH. */
    if (will->retain && !route_retain_allowed(s, ss->tenant, msg_topic(will), will->topic_len,
                                              will->payload_len, will->props_len, ss))
        will->retain = 0;
    route_publish(s, ss->tenant, will);
}

static void timer_arm(struct shard *s, struct session *ss)
{
    struct session_timer *t = ss->timer;
    uint64_t at = t->expire_at_ms;
    if (t->will_at_ms && (!at || t->will_at_ms < at))
        at = t->will_at_ms;
    wheel_add(s->session_wheel, &t->e, at);
}

void session_on_timer(struct wheel_entry *e, void *arg)
{
    struct shard *s = arg;
    struct session_timer *t = (struct session_timer *)e;
    struct session *ss = t->ss;
    if (t->will_at_ms && s->now_ms >= t->will_at_ms) {
        t->will_at_ms = 0;
        session_publish_will(s, ss);
    }
    if (t->expire_at_ms && s->now_ms >= t->expire_at_ms) {
        /* MQTT-3.1.2-23 (5.0): the session ends when its interval passes,
         * and a will still waiting goes out then (MQTT-3.1.3-9). */
        session_publish_will(s, ss);
        observe_event(s, RINGMQ_EV_SESSION_EXPIRED, ss->tenant, ss, 0, 0, NULL, 0);
        session_destroy(s, ss);
        return;
    }
    if (t->will_at_ms || t->expire_at_ms)
        timer_arm(s, ss);
    else
        timer_drop(ss);
}

void session_detach(struct shard *s, struct session *ss, bool send_will)
{
    ss->conn = NULL;
    /* An offline session holds no empty window or id table. */
    if (ss->ninfl == 0) {
        free(ss->infl);
        ss->infl = NULL;
        ss->infl_cap = 0;
    }
    if (ss->nqos2 == 0) {
        free(ss->qos2_in);
        ss->qos2_in = NULL;
        ss->qos2_cap = 0;
    }
    protocol_orphan_pending(ss);
    /* MQTT-3.1.3-9: the will waits for its delay unless the session ends
     * first; with expiry 0 it ends now. */
    bool delay = ss->will && send_will && ss->will_delay_s && ss->expiry_s;
    if (send_will && !delay)
        session_publish_will(s, ss);
    if (!delay) {
        msg_release(ss->will);
        ss->will = NULL;
    }
    if (ss->expiry_s == 0) {
        session_destroy(s, ss);
        return;
    }
    if (!delay && ss->expiry_s == SESSION_EXPIRY_NEVER)
        return;
    struct session_timer *t = calloc(1, sizeof(*t));
    if (!t) {
        /* Without a timer the session could never end: end it now. */
        if (delay)
            session_publish_will(s, ss);
        session_destroy(s, ss);
        return;
    }
    t->ss = ss;
    ss->timer = t;
    if (delay)
        t->will_at_ms = s->now_ms + (uint64_t)ss->will_delay_s * 1000u;
    if (ss->expiry_s != SESSION_EXPIRY_NEVER)
        t->expire_at_ms = s->now_ms + (uint64_t)ss->expiry_s * 1000u;
    timer_arm(s, ss);
}

void session_destroy_all(struct shard *s, struct tenant *t)
{
    if (!t->reg)
        return;
    for (uint32_t i = 0; i <= t->reg_mask; i++) {
        while (t->reg[i])
            session_destroy(s, t->reg[i]);
    }
    free(t->reg);
    t->reg = NULL;
}
