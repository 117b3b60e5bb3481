/*
 * store: the seam is complete. A recording store logs every call the broker
 * makes to it (store.h), keeping copies of the arguments and a reference to
 * each message, and after every step the test rebuilds the durable state
 * from that log alone and compares it with the live sessions and retained
 * messages. A change to durable state that does not go through the store
 * leaves the rebuilt state behind, and the comparison fails.
 *
 * The shard is real but has no loop: one shard, one tenant, connections
 * that only collect their output (conn_reserve), an io_uring that is never
 * submitted (a takeover's close queues its operations there), time moved by
 * hand and the session wheel advanced by the test.
 */
#include <criterion/criterion.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/conn.h"
#include "broker/msg.h"
#include "broker/route.h"
#include "broker/session.h"
#include "broker/shard.h"
#include "broker/store.h"
#include "config/config.h"
#include "core/slab.h"
#include "core/wheel.h"
#include "index/retain.h"
#include "index/trie.h"

/* ---- the recording store: a log of calls ---- */

enum call_kind {
    C_SESSION_PUT,
    C_SESSION_DEL,
    C_SUB_PUT,
    C_SUB_DEL,
    C_QUEUE_PUSH,
    C_QUEUE_POP,
    C_INFL_PUT,
    C_INFL_REC,
    C_INFL_DEL,
    C_QOS2_ADD,
    C_QOS2_DEL,
    C_RETAINED_PUT,
    C_RETAINED_CLEAR,
};

#define ID_MAX  32
#define TXT_MAX 64
#define IDS_MAX 4

/* A queued or in-flight delivery as the store learnt it. */
struct rec_msg {
    struct msg *m; /* the log's reference (NULL: PUBREC received) */
    uint16_t pid;
    uint8_t qos, retain, state;
    uint32_t nids, ids[IDS_MAX];
    char share[TXT_MAX]; /* "" when not through a $share filter */
};

struct call {
    enum call_kind kind;
    uint16_t tenant;
    char id[ID_MAX]; /* client id (sessions) or topic (retained) */
    uint16_t id_len;
    uint32_t expiry_s, will_delay_s; /* session put */
    struct msg *will;                /* session put: the log's reference */
    char filter[TXT_MAX];            /* subscriptions */
    uint8_t qos, opts;
    uint32_t subid;
    uint16_t pid; /* in-flight, QoS 2 ids */
    struct rec_msg e;
};

static struct {
    struct call *v;
    size_t n, cap;
    unsigned loads;
} rec;

static struct call *rec_add(enum call_kind kind, const struct tenant *t,
                            const struct session_state *st)
{
    if (rec.n == rec.cap) {
        rec.cap = rec.cap ? rec.cap * 2 : 64;
        rec.v = realloc(rec.v, rec.cap * sizeof(*rec.v));
        cr_assert_not_null(rec.v);
    }
    struct call *c = &rec.v[rec.n++];
    memset(c, 0, sizeof(*c));
    c->kind = kind;
    c->tenant = t->id;
    if (st) {
        cr_assert_lt(st->client_id_len, ID_MAX);
        memcpy(c->id, st->client_id, st->client_id_len);
        c->id_len = st->client_id_len;
    }
    return c;
}

static struct msg *ref(struct msg *m)
{
    return m ? msg_acquire(m) : NULL;
}

static void copy_delivery(struct rec_msg *r, struct msg *m, const uint32_t *ids,
                          const struct xfilter *share, uint8_t qos, uint8_t retain)
{
    r->m = ref(m);
    r->qos = qos;
    r->retain = retain;
    r->nids = ids ? ids[0] : 0;
    cr_assert_leq(r->nids, IDS_MAX);
    memcpy(r->ids, ids ? ids + 1 : r->ids, r->nids * sizeof(*ids));
    if (share) {
        cr_assert_lt(share->len, TXT_MAX);
        memcpy(r->share, share->data, share->len);
    }
}

/* Each hook reads only what it is about, never the rest of st: a store that
 * copied the whole session at every call would hide a missing call. */
static void r_session_put(void *ctx, const struct tenant *t, const struct session_state *st)
{
    (void)ctx;
    struct call *c = rec_add(C_SESSION_PUT, t, st);
    c->expiry_s = st->expiry_s;
    c->will_delay_s = st->will_delay_s;
    c->will = ref(st->will);
}

static void r_session_del(void *ctx, const struct tenant *t, const struct session_state *st)
{
    (void)ctx;
    rec_add(C_SESSION_DEL, t, st);
}

static void r_sub_put(void *ctx, const struct tenant *t, const struct session_state *st,
                      const struct sess_sub *sub)
{
    (void)ctx;
    struct call *c = rec_add(C_SUB_PUT, t, st);
    cr_assert_lt(sub->len, TXT_MAX);
    memcpy(c->filter, sub->filter, sub->len);
    c->qos = sub->qos;
    c->opts = sub->opts;
    c->subid = sub->subid;
}

static void r_sub_del(void *ctx, const struct tenant *t, const struct session_state *st,
                      const uint8_t *filter, size_t len)
{
    (void)ctx;
    struct call *c = rec_add(C_SUB_DEL, t, st);
    cr_assert_lt(len, TXT_MAX);
    memcpy(c->filter, filter, len);
}

static void r_queue_push(void *ctx, const struct tenant *t, const struct session_state *st,
                         const struct qentry *e)
{
    (void)ctx;
    struct call *c = rec_add(C_QUEUE_PUSH, t, st);
    copy_delivery(&c->e, e->m, e->ids, e->share, e->qos, e->retain);
}

static void r_queue_pop(void *ctx, const struct tenant *t, const struct session_state *st,
                        const struct qentry *e)
{
    (void)ctx;
    struct call *c = rec_add(C_QUEUE_POP, t, st);
    c->e.m = e->m; /* compared with the head on replay, not kept */
}

static void r_infl_put(void *ctx, const struct tenant *t, const struct session_state *st,
                       const struct inflight *e)
{
    (void)ctx;
    struct call *c = rec_add(C_INFL_PUT, t, st);
    copy_delivery(&c->e, e->m, e->ids, e->share, e->qos, e->retain);
    c->e.pid = e->pid;
    c->e.state = e->state;
}

static void r_infl_rec(void *ctx, const struct tenant *t, const struct session_state *st,
                       uint16_t pid)
{
    (void)ctx;
    rec_add(C_INFL_REC, t, st)->pid = pid;
}

static void r_infl_del(void *ctx, const struct tenant *t, const struct session_state *st,
                       uint16_t pid)
{
    (void)ctx;
    rec_add(C_INFL_DEL, t, st)->pid = pid;
}

static void r_qos2_add(void *ctx, const struct tenant *t, const struct session_state *st,
                       uint16_t pid)
{
    (void)ctx;
    rec_add(C_QOS2_ADD, t, st)->pid = pid;
}

static void r_qos2_del(void *ctx, const struct tenant *t, const struct session_state *st,
                       uint16_t pid)
{
    (void)ctx;
    rec_add(C_QOS2_DEL, t, st)->pid = pid;
}

static void r_retained(enum call_kind kind, const struct tenant *t, const struct msg *m)
{
    struct call *c = rec_add(kind, t, NULL);
    cr_assert_lt(m->topic_len, ID_MAX);
    memcpy(c->id, msg_topic(m), m->topic_len);
    c->id_len = m->topic_len;
    c->e.m = ref((struct msg *)m);
}

static void r_retained_put(void *ctx, const struct tenant *t, const struct msg *m)
{
    (void)ctx;
    r_retained(C_RETAINED_PUT, t, m);
}

static void r_retained_clear(void *ctx, const struct tenant *t, const struct msg *m)
{
    (void)ctx;
    cr_assert_eq(m->payload_len, 0, "a clear is an empty message");
    r_retained(C_RETAINED_CLEAR, t, m);
}

static int r_load(void *ctx, struct shard *s, const struct store_sink *sink)
{
    (void)ctx;
    (void)s;
    (void)sink;
    rec.loads++;
    return 0;
}

static const struct store_ops recording = {
    .session_put = r_session_put,
    .session_del = r_session_del,
    .sub_put = r_sub_put,
    .sub_del = r_sub_del,
    .queue_push = r_queue_push,
    .queue_pop = r_queue_pop,
    .infl_put = r_infl_put,
    .infl_rec = r_infl_rec,
    .infl_del = r_infl_del,
    .qos2_add = r_qos2_add,
    .qos2_del = r_qos2_del,
    .retained_put = r_retained_put,
    .retained_clear = r_retained_clear,
    .load = r_load,
};

/* ---- the state rebuilt from the log alone ---- */

#define MAX_SESSIONS 8
#define MAX_SUBS     8
#define MAX_ENTRIES  64
#define MAX_RETAINED 8

struct model_sub {
    char filter[TXT_MAX];
    uint8_t qos, opts;
    uint32_t subid;
};

struct model_session {
    uint16_t tenant;
    char id[ID_MAX];
    uint16_t id_len;
    uint32_t expiry_s, will_delay_s;
    struct msg *will;
    struct model_sub subs[MAX_SUBS];
    uint32_t nsubs;
    struct rec_msg q[MAX_ENTRIES], infl[MAX_ENTRIES];
    uint32_t nq, ninfl;
    uint16_t qos2[MAX_ENTRIES];
    uint32_t nqos2;
};

struct model_retained {
    char topic[ID_MAX];
    uint16_t len;
    struct msg *m;
};

static struct model {
    struct model_session s[MAX_SESSIONS];
    uint32_t ns;
    struct model_retained r[MAX_RETAINED];
    uint32_t nr;
} model;

static struct model_session *model_find(const struct call *c, bool create)
{
    for (uint32_t i = 0; i < model.ns; i++) {
        struct model_session *ms = &model.s[i];
        if (ms->tenant == c->tenant && ms->id_len == c->id_len &&
            memcmp(ms->id, c->id, c->id_len) == 0)
            return ms;
    }
    cr_assert(create, "a call for session \"%.*s\" the store never saw put", (int)c->id_len, c->id);
    cr_assert_lt(model.ns, MAX_SESSIONS);
    struct model_session *ms = &model.s[model.ns++];
    memset(ms, 0, sizeof(*ms));
    ms->tenant = c->tenant;
    memcpy(ms->id, c->id, c->id_len);
    ms->id_len = c->id_len;
    return ms;
}

static struct model_sub *model_sub(struct model_session *ms, const char *filter)
{
    for (uint32_t i = 0; i < ms->nsubs; i++)
        if (strcmp(ms->subs[i].filter, filter) == 0)
            return &ms->subs[i];
    return NULL;
}

static struct rec_msg *model_infl(struct model_session *ms, uint16_t pid, uint32_t *at)
{
    for (uint32_t i = 0; i < ms->ninfl; i++) {
        if (ms->infl[i].pid == pid) {
            *at = i;
            return &ms->infl[i];
        }
    }
    cr_assert_fail("in-flight id %u unknown to the store", pid);
    return NULL;
}

static void replay_session(const struct call *c)
{
    struct model_session *ms = model_find(c, c->kind == C_SESSION_PUT);
    uint32_t at = 0;
    switch (c->kind) {
    case C_SESSION_PUT:
        ms->expiry_s = c->expiry_s;
        ms->will_delay_s = c->will_delay_s;
        ms->will = c->will;
        break;
    case C_SESSION_DEL:
        *ms = model.s[--model.ns];
        break;
    case C_SUB_PUT: {
        struct model_sub *sub = model_sub(ms, c->filter);
        if (!sub) {
            cr_assert_lt(ms->nsubs, MAX_SUBS);
            sub = &ms->subs[ms->nsubs++];
        }
        *sub = (struct model_sub){.qos = c->qos, .opts = c->opts, .subid = c->subid};
        strcpy(sub->filter, c->filter);
        break;
    }
    case C_SUB_DEL: {
        struct model_sub *sub = model_sub(ms, c->filter);
        cr_assert_not_null(sub, "unsubscribed from %s, never subscribed", c->filter);
        *sub = ms->subs[--ms->nsubs];
        break;
    }
    case C_QUEUE_PUSH:
        cr_assert_lt(ms->nq, MAX_ENTRIES);
        ms->q[ms->nq++] = c->e;
        break;
    case C_QUEUE_POP:
        cr_assert_gt(ms->nq, 0, "a pop from a queue the store has empty");
        cr_assert_eq(ms->q[0].m, c->e.m, "the pop is not of the head the store has");
        memmove(ms->q, ms->q + 1, --ms->nq * sizeof(ms->q[0]));
        break;
    case C_INFL_PUT:
        cr_assert_lt(ms->ninfl, MAX_ENTRIES);
        ms->infl[ms->ninfl++] = c->e;
        break;
    case C_INFL_REC: {
        struct rec_msg *e = model_infl(ms, c->pid, &at);
        *e = (struct rec_msg){.pid = e->pid, .qos = e->qos, .state = INFL_WAIT_COMP};
        break;
    }
    case C_INFL_DEL:
        model_infl(ms, c->pid, &at);
        memmove(ms->infl + at, ms->infl + at + 1, (--ms->ninfl - at) * sizeof(ms->infl[0]));
        break;
    case C_QOS2_ADD:
        cr_assert_lt(ms->nqos2, MAX_ENTRIES);
        ms->qos2[ms->nqos2++] = c->pid;
        break;
    case C_QOS2_DEL:
        for (at = 0; at < ms->nqos2 && ms->qos2[at] != c->pid; at++)
            ;
        cr_assert_lt(at, ms->nqos2, "QoS 2 id %u removed, never added", c->pid);
        ms->qos2[at] = ms->qos2[--ms->nqos2];
        break;
    default:
        break;
    }
}

static void replay_retained(const struct call *c)
{
    uint32_t i = 0;
    while (i < model.nr &&
           !(model.r[i].len == c->id_len && !memcmp(model.r[i].topic, c->id, c->id_len)))
        i++;
    if (c->kind == C_RETAINED_CLEAR) {
        if (i < model.nr)
            model.r[i] = model.r[--model.nr];
        return;
    }
    if (i == model.nr) {
        cr_assert_lt(model.nr, MAX_RETAINED);
        model.nr++;
    }
    memcpy(model.r[i].topic, c->id, c->id_len);
    model.r[i].len = c->id_len;
    model.r[i].m = c->e.m;
}

static void rebuild(void)
{
    memset(&model, 0, sizeof(model));
    for (size_t i = 0; i < rec.n; i++) {
        const struct call *c = &rec.v[i];
        if (c->kind == C_RETAINED_PUT || c->kind == C_RETAINED_CLEAR)
            replay_retained(c);
        else
            replay_session(c);
    }
}

/* ---- a shard without a loop ---- */

static struct config cfg;
static struct tenant_settings set;
static struct broker broker;
static struct shard shard;
static struct shard *shards[1] = {&shard};
static struct tenant *t;

static void setup(void)
{
    const char *over[] = {"listener.default.port=0"};
    char err[256];
    cr_assert_eq(config_load(&cfg, NULL, over, 1, err, sizeof(err)), 0, "%s", err);
    set = *config_tenant_settings(&cfg, "global");
    broker = (struct broker){.cfg = &cfg, .nshards = 1, .shards = shards};
    shard = (struct shard){.broker = &broker, .cfg = &cfg, .now_ms = 1000000};
    cr_assert_eq(io_uring_queue_init(64, &shard.ring, 0), 0);
    shard.streams.ring = &shard.ring;
    shard.streams.ev = &conn_stream_events;
    shard.streams.xprt[0] = &transport_tcp;
    cr_assert_eq(route_init(&shard), 0);
    shard.session_slab = slab_create(sizeof(struct session), 0);
    shard.wheel = wheel_create(100, 64, shard.now_ms);
    shard.session_wheel = wheel_create(1000, 64, shard.now_ms);
    shard.tenants = calloc(TENANT_MAX, sizeof(*shard.tenants));
    t = calloc(1, sizeof(*t));
    cr_assert(shard.session_slab && shard.wheel && shard.session_wheel && shard.tenants && t);
    *t = (struct tenant){.name = "global", .set = &set};
    t->subs = trie_create();
    t->retained = retain_create();
    shard.tenants[0] = t;
    shard.store = &recording;
    memset(&rec, 0, sizeof(rec));
}

static void teardown(void)
{
    session_destroy_all(&shard, t);
    route_tenant_fini(&shard, t);
    route_fini(&shard); /* route.c's scratch, tombstones */
    for (size_t i = 0; i < rec.n; i++) {
        struct call *c = &rec.v[i];
        msg_release(c->will);
        if (c->kind != C_QUEUE_POP)
            msg_release(c->e.m);
    }
    free(rec.v);
    free(shard.share_scratch); /* share.c's and the outbox's scratch */
    free(shard.throttled);
    free(t);
    free(shard.tenants);
    wheel_destroy(shard.session_wheel);
    wheel_destroy(shard.wheel);
    slab_destroy(shard.session_slab);
    io_uring_queue_exit(&shard.ring);
}

TestSuite(store, .init = setup, .fini = teardown);

static struct conn *conn_new(void)
{
    struct conn *c = calloc(1, sizeof(*c));
    cr_assert_not_null(c);
    c->state = CONN_ACTIVE;
    c->version = 4; /* 3.1.1: the output is a plain encoding */
    return c;
}

static void conn_free(struct conn *c)
{
    free(c->st.out);
    free(c->st.sending); /* a takeover's close moved out here: never sent */
    free(c);
}

/* CONNECT as connect.c makes it: attach, then resume. */
static struct session *connect_as(struct conn *c, const char *id, bool clean, uint32_t expiry_s,
                                  struct msg *will, uint32_t will_delay_s, bool *present)
{
    struct session_opts o = {clean, expiry_s, will_delay_s, will, 2};
    bool p;
    struct session *ss =
        session_attach(&shard, t, c, (const uint8_t *)id, strlen(id), &o, present ? present : &p);
    cr_assert_not_null(ss);
    c->session = ss;
    session_resume(&shard, ss);
    return ss;
}

static void disconnect(struct conn *c, bool send_will)
{
    struct session *ss = c->session;
    c->session = NULL;
    c->state = CONN_CLOSING;
    session_detach(&shard, ss, send_will);
}

static struct msg *msg_new(const char *topic, const char *payload, uint8_t qos, bool retain)
{
    struct msg_spec sp = {
        .topic = (const uint8_t *)topic,
        .topic_len = strlen(topic),
        .payload = (const uint8_t *)payload,
        .payload_len = strlen(payload),
        .qos = qos,
        .retain = retain,
    };
    struct msg *m = msg_create(&sp);
    cr_assert_not_null(m);
    return m;
}

static void publish(const char *topic, const char *payload, uint8_t qos, bool retain)
{
    route_publish(&shard, t, msg_new(topic, payload, qos, retain));
}

static void subscribe(struct session *ss, const char *filter, uint8_t qos, uint32_t subid)
{
    struct sub_req req = {.qos = qos, .subid = subid};
    bool fresh, existed;
    cr_assert_eq(session_subscribe(&shard, ss, (const uint8_t *)filter, strlen(filter), &req,
                                   &fresh, &existed),
                 0);
}

/* ---- the comparison ---- */

static void same_delivery(const struct rec_msg *r, struct msg *m, const uint32_t *ids,
                          const struct xfilter *share, uint8_t qos, uint8_t retain,
                          const char *what)
{
    cr_assert_eq(r->m, m, "%s: message", what);
    cr_assert_eq(r->qos, qos, "%s: QoS", what);
    cr_assert_eq(r->retain, retain, "%s: retain", what);
    uint32_t n = ids ? ids[0] : 0;
    cr_assert_eq(r->nids, n, "%s: Subscription Identifiers", what);
    for (uint32_t i = 0; i < n; i++)
        cr_assert_eq(r->ids[i], ids[i + 1], "%s: Subscription Identifier %u", what, i);
    cr_assert_eq(strlen(r->share), share ? share->len : 0, "%s: $share filter", what);
    if (share)
        cr_assert_eq(memcmp(r->share, share->data, share->len), 0, "%s: $share filter", what);
}

static void same_session(const struct session *ss, const struct model_session *ms)
{
    const struct session_state *st = &ss->st;
    const char *id = ms->id;
    cr_assert_eq(ms->expiry_s, st->expiry_s, "%s: expiry", id);
    cr_assert_eq(ms->will_delay_s, st->will_delay_s, "%s: will delay", id);
    cr_assert_eq(ms->will, st->will, "%s: will", id);
    cr_assert_eq(ms->nsubs, st->nsubs, "%s: subscriptions", id);
    for (uint32_t i = 0; i < st->nsubs; i++) {
        const struct sess_sub *sub = st->subs[i];
        char f[TXT_MAX] = {0};
        memcpy(f, sub->filter, sub->len);
        const struct model_sub *m = model_sub((struct model_session *)ms, f);
        cr_assert_not_null(m, "%s: subscription %s unknown to the store", id, f);
        cr_assert(m->qos == sub->qos && m->opts == sub->opts && m->subid == sub->subid,
                  "%s: subscription %s options", id, f);
    }
    cr_assert_eq(ms->nq, st->qlen, "%s: queued messages", id);
    for (uint32_t i = 0; i < st->qlen; i++) {
        const struct qentry *e = &st->q[(st->qhead + i) & (st->qcap - 1)];
        same_delivery(&ms->q[i], e->m, e->ids, e->share, e->qos, e->retain, "queue");
    }
    cr_assert_eq(ms->ninfl, st->ninfl, "%s: messages in flight", id);
    for (uint32_t i = 0; i < st->ninfl; i++) {
        const struct inflight *e = &st->infl[i];
        cr_assert_eq(ms->infl[i].pid, e->pid, "%s: in-flight id (send order)", id);
        cr_assert_eq(ms->infl[i].state, e->state, "%s: in-flight %u state", id, e->pid);
        if (e->state == INFL_WAIT_ACK)
            same_delivery(&ms->infl[i], e->m, e->ids, e->share, e->qos, e->retain, "in flight");
    }
    cr_assert_eq(ms->nqos2, st->nqos2, "%s: inbound QoS 2 ids", id);
    for (uint32_t i = 0; i < st->nqos2; i++) {
        bool found = false;
        for (uint32_t k = 0; k < ms->nqos2; k++)
            found |= ms->qos2[k] == st->qos2_in[i];
        cr_assert(found, "%s: inbound QoS 2 id %u unknown to the store", id, st->qos2_in[i]);
    }
}

/* Rebuild from the log, then compare with every live session and retained
 * message of the tenant. */
static void check(const char *step)
{
    rebuild();
    cr_assert_eq(model.ns, t->reg_count, "%s: sessions (store %u, live %u)", step, model.ns,
                 t->reg_count);
    for (uint32_t i = 0; i < model.ns; i++) {
        const struct model_session *ms = &model.s[i];
        struct session *ss = session_find(t, (const uint8_t *)ms->id, ms->id_len);
        cr_assert_not_null(ss, "%s: the store has session %s, the shard does not", step, ms->id);
        same_session(ss, ms);
    }
    cr_assert_eq(model.nr, t->ctr.retained, "%s: retained messages", step);
    for (uint32_t i = 0; i < model.nr; i++) {
        const struct model_retained *r = &model.r[i];
        cr_assert_eq(retain_get(t->retained, (const uint8_t *)r->topic, r->len), r->m,
                     "%s: retained message of %.*s", step, (int)r->len, r->topic);
    }
}

/* Acknowledge everything in flight, as the client would. */
static void ack_all(struct session *ss)
{
    while (ss->st.ninfl) {
        const struct inflight *e = &ss->st.infl[0];
        uint16_t pid = e->pid;
        if (e->qos == 1) {
            cr_assert_eq(session_on_puback(&shard, ss, pid), 0);
            continue;
        }
        if (e->state == INFL_WAIT_ACK)
            cr_assert_eq(session_on_pubrec(&shard, ss, pid, 0), 0);
        cr_assert_eq(session_on_pubcomp(&shard, ss, pid), 0);
    }
}

static void advance(uint64_t ms)
{
    shard.now_ms += ms;
    wheel_advance(shard.session_wheel, shard.now_ms, session_on_timer, &shard);
}

Test(store, a_session_from_connect_to_expiry)
{
    struct conn *c1 = conn_new(), *c2 = conn_new(), *c3 = conn_new();
    struct session *ss =
        connect_as(c1, "dev-1", true, 60, msg_new("dev/1/status", "gone", 1, false), 5, NULL);
    check("connect with a will");
    struct session *watcher = connect_as(c2, "watcher", true, 0, NULL, 0, NULL);
    subscribe(watcher, "dev/+/status", 1, 0);
    subscribe(ss, "a/#", 1, 7);
    subscribe(ss, "b", 2, 0);
    subscribe(ss, "$share/g/s", 1, 3);
    check("subscribe");
    subscribe(ss, "b", 1, 9);
    check("MQTT-3.8.4-3: a repeated filter replaces the subscription");

    /* The window holds 2 (session_opts.window): the rest is queued. */
    publish("a/x", "1", 1, false);
    publish("a/x", "2", 1, false);
    publish("a/x", "3", 1, false);
    publish("s", "shared", 1, false);
    cr_assert_eq(ss->st.ninfl, 2);
    cr_assert_eq(ss->st.qlen, 2);
    check("in flight, then queued");
    cr_assert_eq(session_on_puback(&shard, ss, ss->st.infl[0].pid), 0);
    check("PUBACK: the head of the queue goes out");
    ack_all(ss);
    ack_all(ss);
    cr_assert_eq(ss->st.qlen, 0);
    check("everything acknowledged");

    /* Outbound QoS 2: PUBREC, PUBCOMP, and a PUBREC that fails. */
    subscribe(ss, "c", 2, 0);
    publish("c", "q2", 2, false);
    cr_assert_eq(session_on_pubrec(&shard, ss, ss->st.infl[0].pid, 0), 0);
    cr_assert_eq(ss->st.infl[0].state, INFL_WAIT_COMP);
    check("MQTT-4.3.3-1: PUBREC received, the message released");
    cr_assert_eq(session_on_pubcomp(&shard, ss, ss->st.infl[0].pid), 0);
    check("PUBCOMP");
    publish("c", "q2 refused", 2, false);
    cr_assert_eq(session_on_pubrec(&shard, ss, ss->st.infl[0].pid, 0x80), 0);
    cr_assert_eq(ss->st.ninfl, 0);
    check("a failing PUBREC ends the flow");

    /* Inbound QoS 2 ids (MQTT-4.3.3-2). */
    cr_assert_eq(session_qos2_add(&shard, ss, 10), 0);
    cr_assert_eq(session_qos2_add(&shard, ss, 11), 0);
    check("inbound QoS 2 ids");
    session_qos2_del(&shard, ss, 10);
    session_qos2_del(&shard, ss, 99); /* unknown: nothing changes */
    check("PUBREL");

    /* Offline: the will waits for its delay, QoS 1 is queued, QoS 0 not. */
    publish("a/x", "unacked", 1, false);
    disconnect(c1, true);
    publish("a/x", "4", 1, false);
    publish("a/x", "5", 1, false);
    publish("a/x", "lost", 0, false);
    cr_assert_eq(ss->st.qlen, 2);
    check("offline, will waiting");
    advance(6000);
    cr_assert_null(ss->st.will);
    cr_assert_eq(watcher->st.ninfl, 1, "the will went out");
    check("MQTT-3.1.3-9: the will delay passed");

    /* Back: MQTT-4.4.0-1, in flight resent, then the queue. */
    bool present = false;
    struct session *again = connect_as(c3, "dev-1", false, 60, NULL, 0, &present);
    cr_assert(present);
    cr_assert_eq(again, ss);
    cr_assert_eq(ss->st.ninfl, 2);
    check("resumed");
    cr_assert(session_unsubscribe(&shard, ss, (const uint8_t *)"a/#", 3));
    check("unsubscribe");

    /* MQTT-3.14.2-2: DISCONNECT may change the expiry (connect.c writes it
     * directly; the detach tells the store). */
    ss->st.expiry_s = 30;
    disconnect(c3, false);
    check("DISCONNECT with a new expiry");
    advance(31000);
    cr_assert_null(session_find(t, (const uint8_t *)"dev-1", 5));
    check("MQTT-3.1.2-23: the session expired");
    disconnect(c2, false);
    check("expiry 0: the session ends with its connection");
    conn_free(c1);
    conn_free(c2);
    conn_free(c3);
}

Test(store, retained_put_replace_and_clear)
{
    publish("r/1", "a", 1, true);
    publish("r/2", "b", 0, true);
    check("retained");
    publish("r/1", "c", 1, true);
    check("retained replaced");
    publish("r/1", "", 0, true);
    check("MQTT-3.3.1-10: a retained message cleared");

    /* A retained will is a retained update like any other. */
    struct conn *c = conn_new();
    connect_as(c, "dev-3", true, 0, msg_new("dev/3/status", "gone", 0, true), 0, NULL);
    disconnect(c, true);
    check("a retained will");
    cr_assert_not_null(retain_get(t->retained, (const uint8_t *)"dev/3/status", 12));
    conn_free(c);
}

Test(store, clean_start_and_takeover)
{
    struct conn *c1 = conn_new(), *c2 = conn_new(), *c3 = conn_new();
    struct session *ss = connect_as(c1, "dev-4", true, 60, NULL, 0, NULL);
    subscribe(ss, "x/#", 2, 0);
    publish("x/1", "a", 2, false);
    check("connected");
    bool present = false;
    /* MQTT-3.1.4-2: a second connection takes the session over. */
    struct session *taken = connect_as(c2, "dev-4", false, 120,
                                       msg_new("dev/4/status", "gone", 0, false), 10, &present);
    cr_assert(present);
    cr_assert_eq(taken, ss);
    cr_assert_eq(c1->state, CONN_CLOSING);
    check("taken over, with a new expiry and will");
    /* MQTT-3.1.2-4: Clean Start discards it. */
    ss = connect_as(c3, "dev-4", true, 60, NULL, 0, &present);
    cr_assert_not(present);
    cr_assert_eq(ss->st.nsubs, 0);
    check("Clean Start");
    conn_free(c1);
    conn_free(c2);
    conn_free(c3);
}

Test(store, a_full_queue_drops_its_oldest)
{
    set.queue_drop_oldest = true;
    set.max_queued_messages = 2;
    struct conn *c = conn_new();
    struct session *ss = connect_as(c, "dev-5", true, 60, NULL, 0, NULL);
    subscribe(ss, "q", 1, 0);
    disconnect(c, false);
    publish("q", "1", 1, false);
    publish("q", "2", 1, false);
    publish("q", "3", 1, false);
    cr_assert_eq(ss->st.qlen, 2);
    check("the oldest dropped for the newest");
    set.queue_drop_oldest = false;
    publish("q", "4", 1, false);
    cr_assert_eq(ss->st.qlen, 2);
    check("the newest dropped");
    conn_free(c);
}

Test(store, load_is_the_stores_and_nothing_without_one)
{
    struct store_sink sink = {0};
    shard.store = NULL;
    cr_assert_eq(store_load(&shard, &sink), 0);
    cr_assert_eq(rec.loads, 0);
    shard.store = &recording;
    cr_assert_eq(store_load(&shard, &sink), 0);
    cr_assert_eq(rec.loads, 1);
}

Test(store, without_a_store_nothing_is_told)
{
    shard.store = NULL;
    struct conn *c = conn_new();
    struct session *ss = connect_as(c, "dev-6", true, 60, NULL, 0, NULL);
    subscribe(ss, "m", 1, 0);
    publish("m", "1", 1, true);
    ack_all(ss);
    disconnect(c, false);
    cr_assert_eq(rec.n, 0);
    conn_free(c);
}
