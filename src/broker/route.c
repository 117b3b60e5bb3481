/*
 * route: publish routing and the cross-shard interest table.
 *
 * Runs on one shard's thread. A publish walks the shard's trie once: the
 * local subscribers are delivered to (each session once, at the highest
 * granted QoS), and the OR of the interest masks names the other shards
 * that get one reference to the same immutable message.
 */
#include "broker/route.h"

#include <stdlib.h>
#include <string.h>

#include "broker/conn.h"
#include "broker/ingress.h"
#include "broker/observe.h"
#include "broker/protocol.h"
#include "broker/readcheck.h"
#include "broker/shard.h"
#include "broker/share.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/vec.h"
#include "index/retain.h"
#include "index/trie.h"
#include "session/msg.h"
#include "session/session.h"
#include "session/store.h"

/* One Subscription Identifier collected while matching a publish. */
struct match_id {
    uint32_t id;
    uint32_t next; /* 1 + index of the session's next one, 0: end */
};

/* What routing keeps on a shard between and during publishes. */
struct route_state {
    /* One publish's matching scratch: the sessions it reaches (each once,
     * marked with match_epoch), their Subscription Identifiers chained per
     * session, those matched only through subscriptions refused the topic,
     * and the shards with subscribers. */
    uint64_t match_epoch; /* 64-bit: never wraps (a wrap would skip sessions) */
    struct session **match;
    uint32_t nmatch, match_cap;
    uint32_t nmatch_denied;
    struct match_id *match_idv;
    uint32_t nmatch_ids, match_ids_cap;
    uint64_t match_mask;
    /* Retained replays in progress (route_send_retained). */
    struct replay *replays;
    /* Retained replicas: the clock that stamps this shard's retained
     * updates, and the clears kept as tombstones for a while, oldest
     * first. */
    uint64_t retain_clock;
    struct retain_tomb *tombs, *tombs_tail;
};

int route_init(struct shard *s)
{
    s->route = calloc(1, sizeof(*s->route));
    return s->route ? 0 : -ENOMEM;
}

struct match_ctx {
    struct shard *s;
    const struct msg *m;
    bool origin;    /* published on this shard: shared groups are chosen here */
    uint64_t thash; /* the topic's hash for read checks, 0 until one needs it */
};

/* Remember one Subscription Identifier for a matched session. */
static void match_add_id(struct shard *s, struct session *ss, uint32_t id)
{
    if (s->route->nmatch_ids == s->route->match_ids_cap) {
        struct match_id *v =
            vec_grow(s->route->match_idv, &s->route->match_ids_cap, sizeof(*v), 64);
        if (!v)
            return; /* the message still goes out, without this identifier */
        s->route->match_idv = v;
    }
    s->route->match_idv[s->route->nmatch_ids] = (struct match_id){id, ss->match_ids};
    ss->match_ids = ++s->route->nmatch_ids;
}

/* Add ss to the sessions matched by this publish; false when out of
 * memory (it is left out). */
static bool match_push(struct shard *s, struct session *ss)
{
    if (s->route->nmatch == s->route->match_cap) {
        struct session **v = vec_grow(s->route->match, &s->route->match_cap, sizeof(*v), 64);
        if (!v)
            return false;
        s->route->match = v;
    }
    ss->match_epoch = s->route->match_epoch;
    ss->match_ids = 0;
    ss->match_denied = 0;
    s->route->match[s->route->nmatch++] = ss;
    return true;
}

static void collect(void *value, void *arg)
{
    struct match_ctx *ctx = arg;
    struct shard *s = ctx->s;
    struct sub_node *n = value;
    s->route->match_mask |= n->mask;
    if (ctx->origin && n->groups)
        share_collect(s, n);
    for (uint32_t i = 0; i < n->n; i++) {
        const struct sub_entry *e = &n->v[i];
        struct session *ss = e->s;
        /* MQTT-3.8.3-3: No Local. */
        if ((e->opts & SUB_NO_LOCAL) && ctx->m->origin == ss)
            continue;
        /* Only subscriptions granted per topic pay for a read check. */
        bool denied = (e->opts & SUB_READ_CHECK) &&
                      !readcheck_allows(s, ss, msg_topic(ctx->m), ctx->m->topic_len, &ctx->thash);
        bool fresh = ss->match_epoch != s->route->match_epoch;
        if (fresh && !match_push(s, ss))
            continue;
        if (denied) {
            /* Not through this subscription; counted as a drop unless
             * another of the session's subscriptions delivers it. */
            if (fresh) {
                ss->match_denied = 1;
                s->route->nmatch_denied++;
            }
            continue;
        }
        if (fresh || ss->match_denied) {
            if (ss->match_denied) {
                ss->match_denied = 0;
                s->route->nmatch_denied--;
            }
            ss->match_qos = e->qos;
            ss->match_rap = (e->opts & SUB_RETAIN_AS_PUBLISHED) != 0;
        } else {
            /* Overlapping subscriptions: one copy at the highest QoS
             * (MQTT-3.3.4-2), carrying every identifier (MQTT-3.3.4-4). */
            if (e->qos > ss->match_qos)
                ss->match_qos = e->qos;
            if (e->opts & SUB_RETAIN_AS_PUBLISHED)
                ss->match_rap = 1;
        }
        if (e->subid)
            match_add_id(s, ss, e->subid);
    }
}

/* Deliver m to this shard's subscribers (and, for a message published
 * here, to one member of each matching shared group); returns the interest
 * mask. */
static uint64_t deliver_local(struct shard *s, struct tenant *t, struct msg *m, bool origin)
{
    struct match_ctx ctx = {s, m, origin, 0};
    s->route->match_epoch++;
    s->route->nmatch = 0;
    s->route->nmatch_denied = 0;
    s->route->nmatch_ids = 0;
    s->route->match_mask = 0;
    s->nshare = 0;
    trie_match(t->subs, msg_topic(m), m->topic_len, collect, &ctx);
    uint64_t mask = s->route->match_mask;
    /* The tenant's outbound bytes quota: one question per message and
     * shard, for all of this shard's deliveries of it. Over it, QoS 0 is
     * dropped and QoS 1/2 wait in their sessions' queues (session/outbox.c). */
    uint32_t n = s->route->nmatch - s->route->nmatch_denied + s->nshare;
    s->out_quota = n && !observe_throttle(s, t, RINGMQ_RES_BYTES_OUT_RATE,
                                          (uint64_t)n * msg_publish_estimate(m), NULL)
                       ? OUT_OVER
                       : OUT_GRANTED;
    if (m->ingress && (s->route->nmatch || s->nshare) && !ingress_admit(s, m->ingress)) {
        /* Delivered here before a restart: the publisher sent it again. */
        for (uint32_t i = 0; i < s->route->nmatch; i++)
            s->route->match[i]->match_denied = 0;
        s->out_quota = OUT_UNASKED;
        return mask;
    }
    if (s->nshare)
        share_deliver_collected(s, t, m);
    for (uint32_t i = 0; i < s->route->nmatch; i++) {
        struct session *ss = s->route->match[i];
        if (ss->match_denied) {
            /* Its subscriptions match, its rights do not: not an error. */
            ss->match_denied = 0;
            observe_drop(s, t, ss, RINGMQ_DROP_DENIED, m, 1);
            continue;
        }
        uint8_t qos = ss->match_qos < m->qos ? ss->match_qos : m->qos;
        uint32_t ids[32];
        size_t nids = 0;
        for (uint32_t j = ss->match_ids; j && nids < 32; j = s->route->match_idv[j - 1].next)
            ids[nids++] = s->route->match_idv[j - 1].id;
        /* MQTT-3.3.1-9 / MQTT-3.3.1-12: live delivery carries retain 0
         * unless a subscription asked for Retain As Published. */
        session_deliver(s, ss, m, qos, ss->match_rap && m->retain, ids, nids);
    }
    s->out_quota = OUT_UNASKED;
    return mask;
}

/* The broker's own $SYS topics are not the tenant's: they count neither in
 * its retained gauges nor, hence, toward its retained quota (clients cannot
 * publish there, publish.c). A tombstone (below) is no retained message. */
static bool retain_counted(const struct msg *m)
{
    return m->payload_len != 0 && !route_is_sys_topic(msg_topic(m), m->topic_len);
}

/*
 * The retained bytes gauge (and quota) counts what the retained messages
 * keep in memory: each message once (header, topic, payload, properties),
 * since every replica holds the same reference-counted message and its
 * index borrows the topic, and the index of every shard's replica: this
 * replica's times the number of shards, which all converge to the same.
 * Index nodes count whatever holds them (a tombstone's too: memory all the
 * same), except $SYS's: its topics alone use the nodes below "$SYS".
 */
static void index_account(struct shard *s, struct tenant *t, size_t before, const uint8_t *topic,
                          size_t len)
{
    size_t after = retain_index_bytes(t->retained);
    if (route_is_sys_topic(topic, len))
        return;
    /* Unsigned wrap-around makes a shrink a subtraction. */
    t->ctr.retained_bytes += (uint64_t)s->broker->nshards * (uint64_t)(after - before);
}

static struct msg *store_delete(struct shard *s, struct tenant *t, const uint8_t *topic, size_t len)
{
    size_t before = retain_index_bytes(t->retained);
    struct msg *m = retain_delete(t->retained, topic, len);
    index_account(s, t, before, topic, len);
    return m;
}

static void retain_forget(struct tenant *t, struct msg *old)
{
    if (old) {
        if (retain_counted(old)) {
            t->ctr.retained--;
            t->ctr.retained_bytes -= msg_size(old);
        }
        msg_release(old);
    }
}

/*
 * The replicas of the retained store converge whatever order the rings
 * bring updates in. Each retained update is stamped where it is published
 * (a hybrid logical clock: the larger of the shard's clock + 1 and the
 * monotonic time in microseconds, above RETAIN_STAMP_SHIFT bits holding the
 * shard id), every shard's clock moves past each stamp it receives, and a
 * replica applies an update only over an older stamp. So two shards
 * replacing one topic at once leave the same message everywhere (the later
 * stamp), and updates in causal order keep it. A clear (empty payload,
 * MQTT-3.3.1-10/-11) stays as a tombstone, an empty message subscribers are
 * never sent, so that an older replace arriving after it cannot bring the
 * topic back on one shard only; tombstones go after RETAIN_TOMB_MS, far
 * longer than a message stays in the rings. One shard needs none of this.
 */
#define RETAIN_STAMP_SHIFT 8
#define RETAIN_TOMB_MS     10000u

struct retain_tomb {
    struct retain_tomb *next;
    struct msg *m; /* one reference, besides the store's */
    uint64_t at_ms;
    uint16_t tenant;
};

static void retain_stamp(struct shard *s, struct msg *m)
{
    uint64_t now = clock_now_us();
    s->route->retain_clock = now > s->route->retain_clock ? now : s->route->retain_clock + 1;
    m->retain_stamp = s->route->retain_clock << RETAIN_STAMP_SHIFT | s->id;
}

static void retain_stamp_seen(struct shard *s, const struct msg *m)
{
    uint64_t c = m->retain_stamp >> RETAIN_STAMP_SHIFT;
    if (c > s->route->retain_clock)
        s->route->retain_clock = c;
}

static bool tomb_add(struct shard *s, struct tenant *t, struct msg *m)
{
    struct retain_tomb *tb = malloc(sizeof(*tb));
    if (!tb)
        return false;
    *tb = (struct retain_tomb){NULL, msg_acquire(m), s->now_ms, t->id};
    if (s->route->tombs_tail)
        s->route->tombs_tail->next = tb;
    else
        s->route->tombs = tb;
    s->route->tombs_tail = tb;
    return true;
}

static void retain_apply(struct shard *s, struct tenant *t, struct msg *m)
{
    const struct msg *cur = retain_get(t->retained, msg_topic(m), m->topic_len);
    if (cur && cur->retain_stamp > m->retain_stamp)
        return; /* a later update is here already */
    if (m->payload_len == 0 && s->broker->nshards == 1) {
        retain_forget(t, store_delete(s, t, msg_topic(m), m->topic_len));
        return;
    }
    void *old = NULL;
    size_t before = retain_index_bytes(t->retained);
    /* The store borrows m's topic: m is the value it points into. */
    if (retain_set(t->retained, msg_topic(m), m->topic_len, msg_acquire(m), &old) < 0) {
        msg_release(m);
        return;
    }
    index_account(s, t, before, msg_topic(m), m->topic_len);
    if (retain_counted(m)) {
        t->ctr.retained++;
        t->ctr.retained_bytes += msg_size(m);
    }
    retain_forget(t, old);
    /* Out of memory for the tombstone's record: clear as without one. */
    if (m->payload_len == 0 && !tomb_add(s, t, m))
        msg_release(store_delete(s, t, msg_topic(m), m->topic_len));
}

void route_retain_gc(struct shard *s)
{
    while (s->route->tombs && s->now_ms - s->route->tombs->at_ms >= RETAIN_TOMB_MS) {
        struct retain_tomb *tb = s->route->tombs;
        s->route->tombs = tb->next;
        if (!s->route->tombs)
            s->route->tombs_tail = NULL;
        struct tenant *t = s->tenants[tb->tenant];
        struct msg *m = tb->m;
        /* Unless a later update replaced it meanwhile. */
        if (t && t->retained && retain_get(t->retained, msg_topic(m), m->topic_len) == m)
            msg_release(store_delete(s, t, msg_topic(m), m->topic_len));
        msg_release(m);
        free(tb);
    }
}

static void tombs_fini(struct shard *s)
{
    while (s->route->tombs) {
        struct retain_tomb *tb = s->route->tombs;
        s->route->tombs = tb->next;
        msg_release(tb->m);
        free(tb);
    }
    s->route->tombs_tail = NULL;
}

bool route_is_sys_topic(const uint8_t *topic, size_t len)
{
    return len >= 4 && memcmp(topic, "$SYS", 4) == 0 && (len == 4 || topic[4] == '/');
}

bool route_retain_allowed(struct shard *s, struct tenant *t, const uint8_t *topic, size_t len,
                          size_t payload_len, size_t props_len, const struct session *ss)
{
    if (payload_len == 0)
        return true; /* a clear frees what there was */
    const struct msg *old = retain_get(t->retained, topic, len);
    if (old && old->payload_len == 0)
        old = NULL; /* a clear's tombstone */
    if (!old && !observe_throttle(s, t, RINGMQ_RES_RETAINED, 1, ss))
        return false;
    /* What it adds (see index_account): the message, the levels missing
     * from the index on every shard, less the message it replaces. */
    uint64_t need = msg_size_for(len, payload_len, props_len) +
                    (uint64_t)s->broker->nshards * retain_index_growth(t->retained, topic, len);
    uint64_t have = old ? msg_size(old) : 0;
    return need <= have || observe_throttle(s, t, RINGMQ_RES_RETAINED_BYTES, need - have, ss);
}

void route_publish(struct shard *s, struct tenant *t, struct msg *m)
{
    uint32_t n = s->broker->nshards;
    if (m->retain) {
        retain_stamp(s, m); /* before any other shard can see m */
        retain_apply(s, t, m);
        if (s->id == 0)
            store_retained(s, t, m); /* shard 0 keeps them all (store.h) */
        for (uint32_t i = 0; i < n; i++) {
            if (i == s->id)
                continue;
            struct xmsg x = {.type = XMSG_RETAIN, .tenant = t->id, .p = msg_acquire(m)};
            if (i == 0 && m->qos)
                shard_store_remote(s, 0); /* the acknowledgement waits for its record there */
            shard_xsend(s, i, &x);
        }
    }
    uint64_t mask = deliver_local(s, t, m, true) & ~(1ull << s->id);
    while (mask) {
        uint32_t i = (uint32_t)__builtin_ctzll(mask);
        mask &= mask - 1;
        if (m->qos == 0 && shard_target_behind(s, i)) {
            /* QoS 0 gives way first: queued, it would wait in front of
             * every other client's messages to that shard. Counted, with
             * no event per message (a flood would make one each). */
            t->ctr.dropped[RINGMQ_DROP_SLOW_CONSUMER]++;
            continue;
        }
        struct xmsg x = {.type = XMSG_PUBLISH, .tenant = t->id, .p = msg_acquire(m)};
        if (m->qos)
            shard_store_remote(s, i); /* its records there: store.h */
        shard_xsend(s, i, &x);
    }
    msg_release(m);
}

static struct xfilter *xfilter_create(const uint8_t *filter, size_t len)
{
    struct xfilter *f = malloc(sizeof(*f) + len);
    if (!f)
        return NULL;
    f->len = (uint16_t)len;
    memcpy(f->data, filter, len);
    return f;
}

uint32_t route_interest_add(struct shard *s, struct tenant *t, const uint8_t *filter, size_t len,
                            uint64_t token)
{
    uint32_t sent = 0;
    for (uint32_t i = 0; i < s->broker->nshards; i++) {
        if (i == s->id)
            continue;
        struct xmsg x = {.type = XMSG_INTEREST_ADD, .tenant = t->id, .token = token};
        x.p = xfilter_create(filter, len);
        if (!x.p) {
            /* Without the filter the other shard cannot learn the interest;
             * a ping still orders the SUBACK, and the loss is logged. */
            log_ratelimited(LOG_LEVEL_ERR, "out of memory sending interest");
            x.type = XMSG_PING;
        }
        shard_xsend(s, i, &x);
        sent++;
    }
    return sent;
}

void route_interest_del(struct shard *s, struct tenant *t, const uint8_t *filter, size_t len)
{
    if (s->stopping)
        return;
    for (uint32_t i = 0; i < s->broker->nshards; i++) {
        if (i == s->id)
            continue;
        struct xmsg x = {.type = XMSG_INTEREST_DEL, .tenant = t->id};
        x.p = xfilter_create(filter, len);
        if (x.p)
            shard_xsend(s, i, &x);
    }
}

uint32_t route_ping_all(struct shard *s, uint64_t token)
{
    uint32_t sent = 0;
    for (uint32_t i = 0; i < s->broker->nshards; i++) {
        if (i == s->id)
            continue;
        struct xmsg x = {.type = XMSG_PING, .token = token};
        shard_xsend(s, i, &x);
        sent++;
    }
    return sent;
}

/* ---- retained replay (route_send_retained) ---- */

/* A replay produces more while less than this waits for the socket. */
#define REPLAY_OUT_LOW (64u << 10)

/*
 * The retained messages one new subscription gets, taken when it was
 * granted and sent as its client takes them. It names the session by
 * client id and the connection by id, not by pointer: either may be gone by
 * the next turn, and the registry says which.
 */
struct replay {
    struct replay *next; /* shard->replays */
    struct tenant *tenant;
    uint64_t conn_id;
    uint32_t subid;
    uint8_t qos;
    bool read_check; /* the subscription was granted per topic */
    uint16_t filter_len, client_id_len;
    uint8_t *filter; /* into bytes[] */
    uint8_t *client_id;
    uint32_t n, sent, cap;
    struct msg **v; /* referenced; v[sent..n) not sent yet */
    uint8_t bytes[];
};

static void replay_free(struct replay *r)
{
    for (uint32_t i = r->sent; i < r->n; i++)
        msg_release(r->v[i]);
    free(r->v);
    free(r);
}

static void replay_collect(void *value, void *arg)
{
    struct replay *r = arg;
    struct msg *m = value;
    if (m->payload_len == 0)
        return; /* a tombstone: the topic has no retained message */
    if (r->n == r->cap) {
        struct msg **v = vec_grow(r->v, &r->cap, sizeof(*v), 16);
        if (!v)
            return; /* out of memory: the subscriber gets fewer */
        r->v = v;
    }
    r->v[r->n++] = msg_acquire(m);
}

/* One retained message to ss, as a new subscription gets it: skipped when
 * the topic holds another by now (that one went out live), expired
 * (MQTT-3.3.2-5: gone, and purged here) or not readable by ss. */
static void replay_send(struct shard *s, struct replay *r, struct session *ss, struct msg *m)
{
    struct tenant *t = r->tenant;
    if (retain_get(t->retained, msg_topic(m), m->topic_len) != m)
        return;
    if (msg_expired(m, s->now_ms)) {
        retain_forget(t, store_delete(s, t, msg_topic(m), m->topic_len));
        return;
    }
    uint64_t thash = 0;
    if (r->read_check && !readcheck_allows(s, ss, msg_topic(m), m->topic_len, &thash)) {
        observe_drop(s, t, ss, RINGMQ_DROP_DENIED, m, 1);
        return;
    }
    uint8_t qos = m->qos < r->qos ? m->qos : r->qos;
    /* Outbound bytes like any delivery, or subscribing again and again
     * would pull the retained store past the tenant's quota. */
    s->out_quota = observe_throttle(s, t, RINGMQ_RES_BYTES_OUT_RATE, msg_publish_estimate(m), ss)
                       ? OUT_GRANTED
                       : OUT_OVER;
    /* MQTT-3.3.1-6: sent on a new subscription with the retain flag set. */
    session_deliver(s, ss, m, qos, true, &r->subid, r->subid ? 1 : 0);
    s->out_quota = OUT_UNASKED;
}

/* Send what r's client can take now; true when r is done. Its connection
 * gone, the QoS 1/2 messages left go to the session as before (queued,
 * within its limits), the QoS 0 ones are dropped. */
static bool replay_step(struct shard *s, struct replay *r)
{
    struct session *ss = session_find(r->tenant, r->client_id, r->client_id_len);
    if (!ss || !session_has_sub(ss, r->filter, r->filter_len))
        return true;
    struct conn *c = conn_of_session(ss);
    bool live = c && c->id == r->conn_id && c->state == CONN_ACTIVE;
    while (r->sent < r->n) {
        if (live && (conn_backlog(c) >= REPLAY_OUT_LOW || ss->st.qlen))
            return false;
        struct msg *m = r->v[r->sent++];
        if (live || (m->qos && r->qos))
            replay_send(s, r, ss, m);
        msg_release(m);
    }
    return true;
}

void route_send_retained(struct shard *s, struct session *ss, const uint8_t *filter, size_t len,
                         uint8_t qos, uint32_t subid, bool read_check)
{
    /* Offline (an admin's subscription): no connection to wait for, so
     * the whole replay goes now, the QoS 1/2 ones queued (replay_step). */
    struct conn *c = conn_of_session(ss);
    struct replay *r = calloc(1, sizeof(*r) + len + ss->st.client_id_len);
    if (!r) {
        log_ratelimited(LOG_LEVEL_ERR, "out of memory sending retained messages");
        return;
    }
    *r = (struct replay){.tenant = ss->tenant,
                         .conn_id = c ? c->id : 0,
                         .subid = subid,
                         .qos = qos,
                         .read_check = read_check,
                         .filter_len = (uint16_t)len,
                         .client_id_len = ss->st.client_id_len};
    r->filter = r->bytes;
    r->client_id = r->bytes + len;
    memcpy(r->filter, filter, len);
    memcpy(r->client_id, ss->st.client_id, ss->st.client_id_len);
    retain_match(ss->tenant->retained, filter, len, replay_collect, r);
    if (replay_step(s, r)) {
        replay_free(r);
        return;
    }
    struct replay **pp = &s->route->replays;
    while (*pp)
        pp = &(*pp)->next;
    *pp = r; /* in order of subscription */
}

void route_replay_pump(struct shard *s)
{
    if (!s->route->replays)
        return;
    struct replay **pp = &s->route->replays;
    while (*pp) {
        struct replay *r = *pp;
        if (replay_step(s, r)) {
            *pp = r->next;
            replay_free(r);
        } else {
            pp = &r->next;
        }
    }
}

static void replays_fini(struct shard *s)
{
    while (s->route->replays) {
        struct replay *r = s->route->replays;
        s->route->replays = r->next;
        replay_free(r);
    }
}

static void interest_add(struct tenant *t, uint32_t src, struct xfilter *f)
{
    struct mqtt_share_spec sp;
    if (mqtt_share_parse(f->data, f->len, &sp) > 0) {
        share_interest(t, src, &sp, true);
        return;
    }
    void **slot = trie_slot(t->subs, f->data, f->len);
    if (!slot) {
        log_ratelimited(LOG_LEVEL_ERR, "out of memory adding interest");
        return;
    }
    struct sub_node *n = *slot;
    if (!n) {
        n = calloc(1, sizeof(*n));
        if (!n) {
            trie_remove(t->subs, f->data, f->len);
            return;
        }
        *slot = n;
    }
    n->mask |= 1ull << src;
}

static void interest_del(struct tenant *t, uint32_t src, struct xfilter *f)
{
    struct mqtt_share_spec sp;
    if (mqtt_share_parse(f->data, f->len, &sp) > 0) {
        share_interest(t, src, &sp, false);
        return;
    }
    struct sub_node *n = trie_get(t->subs, f->data, f->len);
    if (!n)
        return;
    n->mask &= ~(1ull << src);
    if (sub_node_empty(n)) {
        trie_remove(t->subs, f->data, f->len);
        free(n->v);
        free(n);
    }
}

/* The store's cross-shard confirmations (store.h); without a store (a
 * shard cannot have one while another has none) answered at once. */
static void route_on_sync(struct shard *s, const struct xmsg *x)
{
    const struct store_ops *st = s->store;
    if (x->type == XMSG_SYNC) {
        if (st && st->sync_request) {
            st->sync_request(s->store_ctx, s, x->src, x->token);
        } else {
            struct xmsg ack = {.type = XMSG_SYNCED, .token = x->token};
            shard_xsend(s, x->src, &ack);
        }
    } else if (st && st->synced) {
        st->synced(s->store_ctx, s, x->src, x->token, x->pad == 0);
    }
}

void route_interest_restored(struct shard *s, struct tenant *t, const uint8_t *filter, size_t len)
{
    route_interest_add(s, t, filter, len, 0);
}

int route_retain_restore(struct shard *s, struct tenant *t, struct msg *m)
{
    retain_stamp_seen(s, m);
    retain_apply(s, t, m);
    for (uint32_t i = 0; i < s->broker->nshards; i++) {
        if (i == s->id)
            continue;
        struct xmsg x = {.type = XMSG_RETAIN, .tenant = t->id, .p = msg_acquire(m)};
        shard_xsend(s, i, &x);
    }
    msg_release(m);
    return 0;
}

void route_on_xmsg(struct shard *s, const struct xmsg *x)
{
    struct tenant *t = NULL;
    if (x->type == XMSG_SYNC || x->type == XMSG_SYNCED) {
        route_on_sync(s, x);
        return;
    }
    if (x->type == XMSG_FORGET) {
        ingress_forget(s, x->token);
        return;
    }
    if (x->type != XMSG_ACK && x->type != XMSG_PING) {
        t = shard_tenant(s, x->tenant);
        if (!t) {
            /* Out of memory for the tenant's state: the message is lost
             * (logged); an interest ADD is still acknowledged. */
            log_ratelimited(LOG_LEVEL_ERR, "out of memory creating tenant %u", x->tenant);
            shard_xmsg_discard(x);
            if (x->type == XMSG_INTEREST_ADD) {
                struct xmsg ack = {.type = XMSG_ACK, .token = x->token};
                shard_xsend(s, x->src, &ack);
            }
            return;
        }
    }
    switch (x->type) {
    case XMSG_PUBLISH:
        deliver_local(s, t, x->p, false);
        msg_release(x->p);
        break;
    case XMSG_RETAIN:
        retain_stamp_seen(s, x->p);
        retain_apply(s, t, x->p);
        if (s->id == 0)
            store_retained(s, t, x->p); /* shard 0 keeps them all (store.h) */
        msg_release(x->p);
        break;
    case XMSG_INTEREST_ADD:
        interest_add(t, x->src, x->p);
        free(x->p);
        if (!x->token)
            break; /* a restored subscription: nobody waits */
        /* The sender waits for the ack, exactly as for a ping. */
        __attribute__((fallthrough));
    case XMSG_PING: {
        struct xmsg ack = {.type = XMSG_ACK, .token = x->token};
        shard_xsend(s, x->src, &ack);
        break;
    }
    case XMSG_INTEREST_DEL:
        interest_del(t, x->src, x->p);
        free(x->p);
        break;
    case XMSG_ACK:
        protocol_on_ack(s, x->token);
        break;
    case XMSG_SHARE:
        share_on_xmsg(s, x);
        break;
    }
}

static void free_node(void *value, void *arg)
{
    (void)arg;
    struct sub_node *n = value;
    share_groups_free(n);
    free(n->v);
    free(n);
}

static void free_retained(void *value, void *arg)
{
    (void)arg;
    msg_release(value);
}

void route_tenant_fini(struct shard *s, struct tenant *t)
{
    (void)s;
    trie_destroy(t->subs, free_node, NULL);
    retain_destroy(t->retained, free_retained, NULL);
    t->subs = NULL;
    t->retained = NULL;
}

void route_fini(struct shard *s)
{
    if (!s->route)
        return;
    replays_fini(s);
    tombs_fini(s);
    free(s->route->match);
    free(s->route->match_idv);
    free(s->route);
    s->route = NULL;
}
