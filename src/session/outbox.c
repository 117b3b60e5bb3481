/*
 * session outbox: what a session sends its client and what the client owes
 * it (see outbox.h). Owns the in-flight arrays, the queue and the
 * inbound QoS 2 ids of st (session.h) and the shard's throttled list.
 *
 * Runs on the owning shard's thread only. Memory grows only with what the
 * limits allow (max_inflight, max_queued_messages/bytes); an idle session
 * holds no in-flight or queue array. session_deliver is the hot path: one
 * branch per durable change for the store (store.h), nothing for QoS 0.
 */
#include "session/outbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/vec.h"
#include "net/stream.h"
#include "session/msg.h"
#include "session/session.h"
#include "session/store.h"
#include "shard/shard.h"

/* The client is set only while its connection is active (session.h). */
static bool online(const struct session *ss)
{
    return ss->client != NULL;
}

/* The broker writes the packet (session_ops): the client's protocol
 * version, aliases and Maximum Packet Size are the connection's. */
static bool write_publish(struct shard *s, struct session *ss, const struct msg *m, uint8_t qos,
                          bool dup, bool retain, uint16_t pid, const uint32_t *ids, size_t nids)
{
    return s->session_ops->write_publish(s, ss, m, qos, dup, retain, pid, ids, nids);
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
    for (uint16_t i = 0; i < ss->st.ninfl; i++)
        if (ss->st.infl[i].pid == pid)
            return &ss->st.infl[i];
    return NULL;
}

static void infl_remove(struct shard *s, struct session *ss, struct inflight *e)
{
    uint16_t pid = e->pid;
    if (e->held)
        ss->nheld--;
    msg_release(e->m);
    free(e->ids);
    free(e->share);
    size_t i = (size_t)(e - ss->st.infl);
    memmove(e, e + 1, (ss->st.ninfl - i - 1) * sizeof(*e));
    ss->st.ninfl--;
    store_infl_del(s, ss, pid);
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

/* Takes ownership of the caller's reference to m, of ids and of share.
 * `from`: the queue entry they were taken from (queue_take), which the
 * store is told left the queue, in flight or dropped; NULL for a message
 * that was not queued. */
static void send_inflight(struct shard *s, struct session *ss, struct msg *m, uint8_t qos,
                          bool retain, subids_t ids, struct xfilter *share,
                          const struct qentry *from)
{
    if (from && msg_expired(m, s->now_ms))
        store_queue_pop(s, ss, from);
    if (msg_expired(m, s->now_ms)) {
        /* MQTT-3.3.2-5: onward delivery had not started. */
        s->session_ops->drop(s, ss->tenant, ss, RINGMQ_DROP_EXPIRED, m, 1);
        msg_release(m);
        free(ids);
        free(share);
        return;
    }
    if (ss->st.ninfl == ss->st.infl_cap) {
        /* Doubled in 32 bits: a window above 32768 would wrap a uint16_t
         * to 0 (realloc to nothing). Capped by the window, <= 65535. */
        uint32_t cap = ss->st.infl_cap ? 2u * ss->st.infl_cap : 8u;
        if (cap > ss->window)
            cap = ss->window;
        struct inflight *v = realloc(ss->st.infl, cap * sizeof(*v));
        if (!v) {
            if (from)
                store_queue_pop(s, ss, from);
            msg_release(m);
            free(ids);
            free(share);
            s->session_ops->drop(s, ss->tenant, ss, RINGMQ_DROP_QUEUE_FULL, NULL, 1);
            return;
        }
        ss->st.infl = v;
        ss->st.infl_cap = (uint16_t)cap;
    }
    size_t nids;
    const uint32_t *idv = ids_of(ids, &nids);
    uint16_t pid = next_pid(ss);
    if (!write_publish(s, ss, m, qos, false, retain, pid, idv, nids)) {
        /* Too large for this client: dropped for it alone (counted). */
        if (from)
            store_queue_pop(s, ss, from);
        msg_release(m);
        free(ids);
        free(share);
        return;
    }
    struct inflight *e = &ss->st.infl[ss->st.ninfl++];
    e->m = m;
    e->ids = ids;
    e->share = share;
    e->pid = pid;
    e->qos = qos;
    e->state = INFL_WAIT_ACK;
    e->retain = retain;
    e->held = 0;
    if (from)
        store_infl_from_queue(s, ss, e, from); /* one record where two would say it */
    else
        store_infl_put(s, ss, e);
}

/* Take the head of a non-empty queue (the caller owns what it holds, and
 * tells the store where it went). */
static struct qentry queue_take(struct session *ss)
{
    struct qentry e = ss->st.q[ss->st.qhead];
    ss->st.qhead = (ss->st.qhead + 1) & (ss->st.qcap - 1);
    ss->st.qlen--;
    ss->st.qbytes -= msg_size(e.m);
    return e;
}

/* queue_take, told to the store as a pop (dropped, not sent). */
static struct qentry queue_pop(struct shard *s, struct session *ss)
{
    struct qentry e = queue_take(ss);
    store_queue_pop(s, ss, &e);
    return e;
}

static void queue_push(struct shard *s, struct session *ss, struct msg *m, uint8_t qos, bool retain,
                       subids_t ids, struct xfilter *share, bool paid)
{
    const struct tenant_settings *ts = ss->tenant->set;
    if (ts->queue_drop_oldest && ts->max_queued_messages &&
        (!ts->max_queued_bytes || msg_size(m) <= ts->max_queued_bytes)) {
        /* Drop policy "oldest": the head makes room for the newcomer. */
        while (ss->st.qlen &&
               (ss->st.qlen >= ts->max_queued_messages ||
                (ts->max_queued_bytes && ss->st.qbytes + msg_size(m) > ts->max_queued_bytes))) {
            struct qentry e = queue_pop(s, ss);
            s->session_ops->drop(s, ss->tenant, ss, RINGMQ_DROP_QUEUE_FULL, e.m, 1);
            msg_release(e.m);
            free(e.ids);
            free(e.share);
        }
    }
    if (ss->st.qlen >= ts->max_queued_messages ||
        (ts->max_queued_bytes && ss->st.qbytes + msg_size(m) > ts->max_queued_bytes)) {
        /* Drop policy "newest" (or a message larger than the whole queue):
         * the arriving message is dropped, what is queued keeps its order.
         * Counted per shard. */
        s->session_ops->drop(s, ss->tenant, ss, RINGMQ_DROP_QUEUE_FULL, m, 1);
        log_ratelimited(LOG_LEVEL_WARN, "client %.*s: queue full, message dropped",
                        (int)ss->st.client_id_len, ss->st.client_id);
        msg_release(m);
        free(ids);
        free(share);
        return;
    }
    if (ss->st.qlen == ss->st.qcap) {
        uint32_t cap = ss->st.qcap ? ss->st.qcap * 2 : 8;
        struct qentry *v = malloc(cap * sizeof(*v));
        if (!v) {
            s->session_ops->drop(s, ss->tenant, ss, RINGMQ_DROP_QUEUE_FULL, m, 1);
            msg_release(m);
            free(ids);
            free(share);
            return;
        }
        for (uint32_t i = 0; i < ss->st.qlen; i++)
            v[i] = ss->st.q[(ss->st.qhead + i) & (ss->st.qcap - 1)];
        free(ss->st.q);
        ss->st.q = v;
        ss->st.qcap = cap;
        ss->st.qhead = 0;
    }
    struct qentry *e = &ss->st.q[(ss->st.qhead + ss->st.qlen) & (ss->st.qcap - 1)];
    *e = (struct qentry){m, ids, share, qos, retain, paid};
    ss->st.qlen++;
    ss->st.qbytes += msg_size(m);
    store_queue_push(s, ss, e);
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
    struct inflight *e = &ss->st.infl[i];
    size_t nids;
    const uint32_t *ids = ids_of(e->ids, &nids);
    if (e->held) {
        e->held = 0;
        ss->nheld--;
    }
    if (!write_publish(s, ss, e->m, e->qos, true, e->retain, e->pid, ids, nids)) {
        infl_remove(s, ss, e);
        return false;
    }
    return true;
}

/* MQTT-3.3.4-9: resend held entries, in order, while the client's Receive
 * Maximum allows. */
static void resend_held(struct shard *s, struct session *ss)
{
    for (uint16_t i = 0; ss->nheld && online(ss) && i < ss->st.ninfl;) {
        if (!ss->st.infl[i].held) {
            i++;
            continue;
        }
        if (ss->st.ninfl - ss->nheld >= ss->window)
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
    while (ss->st.qlen && online(ss) && ss->st.ninfl < ss->window) {
        struct qentry e = queue_take(ss);
        send_inflight(s, ss, e.m, e.qos, e.retain, e.ids, e.share, &e);
    }
    if (ss->st.qlen == 0 && ss->st.q) {
        free(ss->st.q);
        ss->st.q = NULL;
        ss->st.qcap = 0;
        ss->st.qhead = 0;
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
        size_t backlog = ss->client->backlog;
        if (backlog <= ss->tenant->set->max_client_output &&
            !(s->slow_budget && s->streams.out_bytes > s->slow_budget &&
              backlog >= SESSION_SLOW_MIN))
            return false;
        ss->slow = true;
        s->session_ops->event(s, RINGMQ_EV_SLOW_SUBSCRIBER, ss->tenant, ss,
                              RINGMQ_DROP_SLOW_CONSUMER, 0, msg_topic(m), m->topic_len);
    }
    ss->tenant->ctr.dropped[RINGMQ_DROP_SLOW_CONSUMER]++;
    return true;
}

void session_deliver_shared(struct shard *s, struct session *ss, struct msg *m, uint8_t qos,
                            bool retain, const uint32_t *ids, size_t nids, const uint8_t *share,
                            size_t share_len)
{
    if (msg_expired(m, s->now_ms)) {
        s->session_ops->drop(s, ss->tenant, ss, RINGMQ_DROP_EXPIRED, m, 1);
        return;
    }
    if (qos == 0) {
        if (!online(ss))
            return; /* QoS 0 is not stored for offline clients */
        if (s->out_quota == OUT_OVER) {
            /* Over the tenant's outbound bytes quota: at most once. */
            s->session_ops->drop(s, ss->tenant, ss, RINGMQ_DROP_THROTTLED, m, 1);
            return;
        }
        if (qos0_shed(s, ss, m))
            return;
        write_publish(s, ss, m, 0, false, retain, 0, ids, nids);
        return;
    }
    msg_acquire(m);
    subids_t copy = ids_copy(ids, nids);
    struct xfilter *sh = share_copy(share, share_len);
    if (online(ss) && ss->st.qlen == 0 && ss->st.ninfl < ss->window && s->out_quota != OUT_OVER) {
        send_inflight(s, ss, m, qos, retain, copy, sh, NULL);
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
        while (!held && ss->st.qlen && online(ss) && ss->st.ninfl < ss->window) {
            struct qentry *e = &ss->st.q[ss->st.qhead];
            if (!e->paid && !s->session_ops->throttle(s, ss->tenant, RINGMQ_RES_BYTES_OUT_RATE,
                                                      msg_publish_estimate(e->m), NULL)) {
                if (nrefused < sizeof(refused) / sizeof(refused[0]))
                    refused[nrefused++] = ss->tenant->id;
                held = true;
                break;
            }
            struct qentry x = queue_take(ss);
            send_inflight(s, ss, x.m, x.qos, x.retain, x.ids, x.share, &x);
        }
        if (ss->st.qlen == 0 || !online(ss)) {
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
        infl_remove(s, ss, e);
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
        infl_remove(s, ss, e);
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
        store_infl_rec(s, ss, pid);
    }
    s->session_ops->write_pubrel(s, ss, pid);
    return 0;
}

int session_on_pubcomp(struct shard *s, struct session *ss, uint16_t pid)
{
    struct inflight *e = infl_find(ss, pid);
    if (e && e->state == INFL_WAIT_COMP) {
        infl_remove(s, ss, e);
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
    for (uint16_t i = 0; i < ss->st.ninfl;) {
        struct inflight *e = &ss->st.infl[i];
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
            s->session_ops->write_pubrel(s, ss, e->pid);
        }
        used++;
        i++;
    }
    pump(s, ss);
}

/* ---- inbound QoS 2 ids ---- */

bool session_qos2_has(const struct session *ss, uint16_t pid)
{
    for (uint16_t i = 0; i < ss->st.nqos2; i++)
        if (ss->st.qos2_in[i] == pid)
            return true;
    return false;
}

int session_qos2_add(struct shard *s, struct session *ss, uint16_t pid)
{
    /* Our Receive Maximum bounds the QoS 2 flows a client may leave open
     * (MQTT-3.3.4-7); 3.1.1 clients get the same bound. */
    uint32_t max = ss->tenant->set->receive_maximum;
    if (ss->st.nqos2 >= max)
        return -ENOSPC;
    if (ss->st.nqos2 == ss->st.qos2_cap) {
        uint32_t cap = ss->st.qos2_cap ? 2u * ss->st.qos2_cap : 4u;
        if (cap > max)
            cap = max;
        uint16_t *v = realloc(ss->st.qos2_in, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        ss->st.qos2_in = v;
        ss->st.qos2_cap = (uint16_t)cap;
    }
    ss->st.qos2_in[ss->st.nqos2++] = pid;
    store_qos2_add(s, ss, pid);
    return 0;
}

/* Forget pid; true when it was held. */
static bool qos2_forget(struct session *ss, uint16_t pid)
{
    for (uint16_t i = 0; i < ss->st.nqos2; i++) {
        if (ss->st.qos2_in[i] == pid) {
            ss->st.qos2_in[i] = ss->st.qos2_in[--ss->st.nqos2];
            return true;
        }
    }
    return false;
}

void session_qos2_del(struct shard *s, struct session *ss, uint16_t pid)
{
    if (qos2_forget(ss, pid))
        store_qos2_del(s, ss, pid);
}

/* ---- for session.c ---- */

void outbox_release(struct shard *s, struct session *ss)
{
    throttled_remove(s, ss);
    /* MQTT 5.0 4.8.2: what a departing member of a shared subscription
     * never acknowledged goes to another member (the caller dropped its
     * subscriptions, so it cannot be chosen again). */
    bool redispatch = !s->stopping;
    for (uint16_t i = 0; i < ss->st.ninfl; i++) {
        struct inflight *e = &ss->st.infl[i];
        if (redispatch && e->share && e->m)
            s->session_ops->share_redispatch(s, ss->tenant, e->share->data, e->share->len, e->m);
        msg_release(e->m);
        free(e->ids);
        free(e->share);
    }
    free(ss->st.infl);
    for (uint32_t i = 0; i < ss->st.qlen; i++) {
        struct qentry *e = &ss->st.q[(ss->st.qhead + i) & (ss->st.qcap - 1)];
        if (redispatch && e->share)
            s->session_ops->share_redispatch(s, ss->tenant, e->share->data, e->share->len, e->m);
        msg_release(e->m);
        free(e->ids);
        free(e->share);
    }
    free(ss->st.q);
    free(ss->st.qos2_in);
}

void outbox_trim(struct session *ss)
{
    if (ss->st.ninfl == 0) {
        free(ss->st.infl);
        ss->st.infl = NULL;
        ss->st.infl_cap = 0;
    }
    if (ss->st.nqos2 == 0) {
        free(ss->st.qos2_in);
        ss->st.qos2_in = NULL;
        ss->st.qos2_cap = 0;
    }
}
