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
#include "broker/protocol.h"
#include "broker/route.h"
#include "broker/shard.h"
#include "core/log.h"
#include "index/trie.h"
#include "mqtt/codec.h"

/* QoS 0 output beyond this many unsent bytes is dropped for that client. */
#define SESSION_QOS0_BACKLOG_LIMIT (1u << 20)

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

static void reg_remove(struct tenant *t, struct session *ss)
{
    struct session **pp = reg_find(t, ss->reg_hash, ss->client_id, ss->client_id_len);
    if (pp && *pp == ss) {
        *pp = ss->reg_next;
        t->reg_count--;
    }
}

/* ---- output helpers ---- */

static void write_publish(struct shard *s, struct conn *c, const struct msg *m, uint8_t qos,
                          bool dup, bool retain, uint16_t pid)
{
    size_t n = mqtt_publish_size(c->version, m->topic_len, m->payload_len, qos);
    uint8_t *p = conn_reserve(s, c, n);
    if (!p)
        return;
    mqtt_publish_encode(p, c->version, qos, dup, retain, msg_topic(m), m->topic_len, pid,
                        msg_payload(m), m->payload_len);
    conn_commit(s, c, n);
}

static void write_ack(struct shard *s, struct conn *c, uint8_t type, uint16_t pid)
{
    uint8_t *p = conn_reserve(s, c, 5);
    if (!p)
        return;
    conn_commit(s, c, mqtt_ack_encode(p, type, c->version, pid, MQTT_RC_SUCCESS));
}

static bool online(const struct session *ss)
{
    return ss->conn && ss->conn->state == CONN_ACTIVE;
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
    msg_release(e->m);
    size_t i = (size_t)(e - ss->infl);
    memmove(e, e + 1, (ss->ninfl - i - 1) * sizeof(*e));
    ss->ninfl--;
    if (ss->ninfl == 0) {
        /* An idle session holds no window. */
        free(ss->infl);
        ss->infl = NULL;
        ss->infl_cap = 0;
    }
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

/* Takes ownership of the caller's reference to m. */
static void send_inflight(struct shard *s, struct session *ss, struct msg *m, uint8_t qos,
                          bool retain)
{
    if (ss->ninfl == ss->infl_cap) {
        uint16_t cap = ss->infl_cap ? (uint16_t)(ss->infl_cap * 2) : 8;
        if (cap > s->cfg->max_inflight)
            cap = (uint16_t)s->cfg->max_inflight;
        struct inflight *v = realloc(ss->infl, cap * sizeof(*v));
        if (!v) {
            msg_release(m);
            s->dropped_queue_full++;
            return;
        }
        ss->infl = v;
        ss->infl_cap = cap;
    }
    struct inflight *e = &ss->infl[ss->ninfl++];
    e->m = m;
    e->pid = next_pid(ss);
    e->qos = qos;
    e->state = INFL_WAIT_ACK;
    e->retain = retain;
    write_publish(s, ss->conn, m, qos, false, retain, e->pid);
}

static void queue_push(struct shard *s, struct session *ss, struct msg *m, uint8_t qos, bool retain)
{
    const struct config *cfg = s->cfg;
    if (ss->qlen >= cfg->max_queued_messages ||
        (cfg->max_queued_bytes && ss->qbytes + msg_size(m) > cfg->max_queued_bytes)) {
        /* Drop policy: the newest message is dropped, what is queued keeps
         * its order. Counted per shard. */
        s->dropped_queue_full++;
        log_ratelimited(LOG_LEVEL_WARN, "client %.*s: queue full, message dropped",
                        (int)ss->client_id_len, ss->client_id);
        msg_release(m);
        return;
    }
    if (ss->qlen == ss->qcap) {
        uint32_t cap = ss->qcap ? ss->qcap * 2 : 8;
        struct qentry *v = malloc(cap * sizeof(*v));
        if (!v) {
            s->dropped_queue_full++;
            msg_release(m);
            return;
        }
        for (uint32_t i = 0; i < ss->qlen; i++)
            v[i] = ss->q[(ss->qhead + i) & (ss->qcap - 1)];
        free(ss->q);
        ss->q = v;
        ss->qcap = cap;
        ss->qhead = 0;
    }
    ss->q[(ss->qhead + ss->qlen) & (ss->qcap - 1)] = (struct qentry){m, qos, retain};
    ss->qlen++;
    ss->qbytes += msg_size(m);
}

static void pump(struct shard *s, struct session *ss)
{
    while (ss->qlen && online(ss) && ss->ninfl < s->cfg->max_inflight) {
        struct qentry e = ss->q[ss->qhead];
        ss->qhead = (ss->qhead + 1) & (ss->qcap - 1);
        ss->qlen--;
        ss->qbytes -= msg_size(e.m);
        send_inflight(s, ss, e.m, e.qos, e.retain);
    }
    if (ss->qlen == 0 && ss->q) {
        free(ss->q);
        ss->q = NULL;
        ss->qcap = 0;
        ss->qhead = 0;
    }
}

void session_deliver(struct shard *s, struct session *ss, struct msg *m, uint8_t qos, bool retain)
{
    if (qos == 0) {
        if (!online(ss))
            return; /* QoS 0 is not stored for offline clients */
        if (conn_backlog(ss->conn) > SESSION_QOS0_BACKLOG_LIMIT) {
            s->dropped_qos0++;
            return;
        }
        write_publish(s, ss->conn, m, 0, false, retain, 0);
        return;
    }
    msg_acquire(m);
    if (online(ss) && ss->qlen == 0 && ss->ninfl < s->cfg->max_inflight)
        send_inflight(s, ss, m, qos, retain);
    else
        queue_push(s, ss, m, qos, retain);
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

int session_on_pubrec(struct shard *s, struct session *ss, uint16_t pid)
{
    struct inflight *e = infl_find(ss, pid);
    if (!e || e->qos != 2)
        return 0;
    if (e->state == INFL_WAIT_ACK) {
        /* MQTT-4.3.3-1: after PUBREC the message is no longer needed. */
        msg_release(e->m);
        e->m = NULL;
        e->state = INFL_WAIT_COMP;
    }
    write_ack(s, ss->conn, MQTT_PUBREL, pid);
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
    /* MQTT-4.4.0-1: resend unacknowledged PUBLISH (DUP) and PUBREL, in order. */
    for (uint16_t i = 0; i < ss->ninfl; i++) {
        struct inflight *e = &ss->infl[i];
        if (e->state == INFL_WAIT_ACK)
            write_publish(s, ss->conn, e->m, e->qos, true, e->retain, e->pid);
        else
            write_ack(s, ss->conn, MQTT_PUBREL, e->pid);
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

int session_qos2_add(struct session *ss, uint16_t pid)
{
    if (ss->nqos2 == ss->qos2_cap) {
        if (ss->qos2_cap >= 65535)
            return -ENOSPC;
        uint16_t cap = ss->qos2_cap ? (uint16_t)(ss->qos2_cap * 2) : 4;
        uint16_t *v = realloc(ss->qos2_in, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        ss->qos2_in = v;
        ss->qos2_cap = cap;
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
    if (ss->nqos2 == 0) {
        free(ss->qos2_in);
        ss->qos2_in = NULL;
        ss->qos2_cap = 0;
    }
}

/* ---- subscriptions ---- */

static struct sess_sub **sub_find(struct session *ss, const uint8_t *filter, size_t len)
{
    for (uint32_t i = 0; i < ss->nsubs; i++)
        if (ss->subs[i]->len == len && memcmp(ss->subs[i]->filter, filter, len) == 0)
            return &ss->subs[i];
    return NULL;
}

static struct sub_entry *node_find(struct sub_node *n, const struct session *ss)
{
    for (uint32_t i = 0; i < n->n; i++)
        if (n->v[i].s == ss)
            return &n->v[i];
    return NULL;
}

int session_subscribe(struct shard *s, struct session *ss, const uint8_t *filter, size_t len,
                      uint8_t qos, bool *is_new_interest)
{
    struct tenant *t = ss->tenant;
    *is_new_interest = false;
    struct sess_sub **have = sub_find(ss, filter, len);
    if (have) {
        /* MQTT-3.8.4-3: a repeated filter replaces the subscription. */
        (*have)->qos = qos;
        struct sub_node *n = trie_get(t->subs, filter, len);
        struct sub_entry *e = n ? node_find(n, ss) : NULL;
        if (e)
            e->qos = qos;
        return 0;
    }
    if (ss->nsubs == ss->subs_cap) {
        uint32_t cap = ss->subs_cap ? ss->subs_cap * 2 : 4;
        struct sess_sub **v = realloc(ss->subs, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        ss->subs = v;
        ss->subs_cap = cap;
    }
    struct sess_sub *sub = malloc(sizeof(*sub) + len);
    if (!sub)
        return -ENOMEM;
    sub->qos = qos;
    sub->len = (uint16_t)len;
    memcpy(sub->filter, filter, len);

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
        uint32_t cap = n->cap ? n->cap * 2 : 2;
        struct sub_entry *v = realloc(n->v, cap * sizeof(*v));
        if (!v) {
            free(sub);
            if (n->n == 0 && n->mask == 0) {
                trie_remove(t->subs, filter, len);
                free(n);
            }
            return -ENOMEM;
        }
        n->v = v;
        n->cap = cap;
    }
    n->v[n->n++] = (struct sub_entry){ss, qos};
    if (n->n == 1) {
        n->mask |= 1ull << s->id;
        *is_new_interest = true;
    }
    ss->subs[ss->nsubs++] = sub;
    return 0;
}

static void node_drop(struct shard *s, struct tenant *t, const uint8_t *filter, size_t len,
                      struct session *ss)
{
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
    if (n->mask == 0) {
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
    node_drop(s, ss->tenant, sub->filter, sub->len, ss);
    free(sub);
    return true;
}

/* ---- life cycle ---- */

static void session_destroy(struct shard *s, struct session *ss)
{
    reg_remove(ss->tenant, ss);
    protocol_orphan_pending(ss);
    for (uint32_t i = 0; i < ss->nsubs; i++) {
        node_drop(s, ss->tenant, ss->subs[i]->filter, ss->subs[i]->len, ss);
        free(ss->subs[i]);
    }
    free(ss->subs);
    for (uint16_t i = 0; i < ss->ninfl; i++)
        msg_release(ss->infl[i].m);
    free(ss->infl);
    for (uint32_t i = 0; i < ss->qlen; i++)
        msg_release(ss->q[(ss->qhead + i) & (ss->qcap - 1)].m);
    free(ss->q);
    free(ss->qos2_in);
    msg_release(ss->will);
    free(ss->client_id);
    slab_free(s->session_slab, ss);
}

struct session *session_attach(struct shard *s, struct tenant *t, struct conn *c,
                               const uint8_t *client_id, size_t len, bool clean, struct msg *will,
                               bool *present)
{
    uint64_t h = reg_hash(t, client_id, len);
    struct session **pp = reg_find(t, h, client_id, len);
    if (pp && (*pp)->conn) {
        /* MQTT-3.1.4-2: the existing client is disconnected. Closing it
         * detaches (and, for a clean session, destroys) its session. */
        conn_close(s, (*pp)->conn, CLOSE_TAKEOVER);
        pp = reg_find(t, h, client_id, len);
    }
    struct session *ss = pp ? *pp : NULL;
    if (ss && clean) {
        /* MQTT-3.1.2-6: clean session discards any previous state. */
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
        ss->reg_hash = h;
        struct session **bucket = &t->reg[h & t->reg_mask];
        ss->reg_next = *bucket;
        *bucket = ss;
        t->reg_count++;
    }
    ss->clean = clean;
    ss->conn = c;
    msg_release(ss->will);
    ss->will = will;
    return ss;
oom:
    msg_release(will);
    return NULL;
}

void session_detach(struct shard *s, struct session *ss, bool send_will)
{
    ss->conn = NULL;
    struct msg *will = ss->will;
    ss->will = NULL;
    if (will && send_will)
        route_publish(s, ss->tenant, will);
    else
        msg_release(will);
    protocol_orphan_pending(ss);
    if (ss->clean)
        session_destroy(s, ss);
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
