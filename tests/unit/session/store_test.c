/*
 * store: the seam is complete. A recording store logs every call the broker
 * makes to it (store.h), keeping copies of the arguments and a reference to
 * each message, and after every step the test rebuilds the durable state
 * from that log alone and compares it with the live sessions and retained
 * messages. A change to durable state that does not go through the store
 * leaves the rebuilt state behind, and the comparison fails.
 *
 * The shard (real, without a loop), the client's side and the scenarios
 * are store_harness.c's, shared with the tests of the persist room's
 * records.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/retain.h"
#include "session/msg.h"
#include "session/session.h"
#include "session/store.h"
#include "store_harness.h"

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
    cr_assert_eq(model.ns, tenant0->reg_count, "%s: sessions (store %u, live %u)", step, model.ns,
                 tenant0->reg_count);
    for (uint32_t i = 0; i < model.ns; i++) {
        const struct model_session *ms = &model.s[i];
        struct session *ss = session_find(tenant0, (const uint8_t *)ms->id, ms->id_len);
        cr_assert_not_null(ss, "%s: the store has session %s, the shard does not", step, ms->id);
        same_session(ss, ms);
    }
    cr_assert_eq(model.nr, tenant0->ctr.retained, "%s: retained messages", step);
    for (uint32_t i = 0; i < model.nr; i++) {
        const struct model_retained *r = &model.r[i];
        cr_assert_eq(retain_get(tenant0->retained, (const uint8_t *)r->topic, r->len), r->m,
                     "%s: retained message of %.*s", step, (int)r->len, r->topic);
    }
}

/* ---- the suite: the harness's shard with the recording store ---- */

static void setup(void)
{
    memset(&rec, 0, sizeof(rec));
    harness_setup(&recording, check);
}

static void teardown(void)
{
    harness_teardown();
    for (size_t i = 0; i < rec.n; i++) {
        struct call *c = &rec.v[i];
        msg_release(c->will);
        if (c->kind != C_QUEUE_POP)
            msg_release(c->e.m);
    }
    free(rec.v);
}

TestSuite(store, .init = setup, .fini = teardown);

Test(store, a_session_from_connect_to_expiry)
{
    scenario_session_life();
}

Test(store, retained_put_replace_and_clear)
{
    scenario_retained();
}

Test(store, clean_start_and_takeover)
{
    scenario_clean_start_and_takeover();
}

Test(store, a_full_queue_drops_its_oldest)
{
    scenario_full_queue();
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
