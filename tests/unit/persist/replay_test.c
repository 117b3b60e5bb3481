/*
 * persist/replay: the records the store hooks write, replayed, give back
 * the live state. The real session code is driven through the scenarios of
 * tests/unit/broker/store_harness.c with a store whose hooks encode records
 * (record.h) into a byte array; after every step the whole array is
 * replayed from the start, handed to a sink that collects it, and compared
 * field by field with the live sessions and retained messages. Then the
 * snapshot of the live state (snapshot.h) is replayed and compared the same
 * way. A change the records miss, or a record replay gets wrong, leaves the
 * rebuilt state different from the live one.
 *
 * Then replay's own rules, on records written by hand: keys by tenant name,
 * latest retained stamp wins, deadlines across a reboot, the records at
 * odds with the state, and a sink that fails.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/route.h"
#include "index/retain.h"
#include "persist/record.h"
#include "persist/replay.h"
#include "persist/snapshot.h"
#include "session/msg.h"
#include "session/session.h"
#include "session/store.h"
#include "records.h"
#include "shard/xshard.h"
#include "store_harness.h"
#include "tenant/tenant.h"

/* The wall clock, as far as these tests know: a fixed offset from the
 * shard's monotonic now. */
#define WALL_BASE 1700000000000ull

static struct buf log_;

static struct record_writer writer(void)
{
    return buf_writer(&log_, shard.now_ms, WALL_BASE + shard.now_ms);
}

/* ---- the store: every hook writes its record ---- */

static void w_session_put(void *ctx, const struct tenant *t, const struct session_state *st)
{
    (void)ctx;
    struct record_writer w = writer();
    cr_assert_eq(record_session_put(&w, t, st), 0);
}

static void w_session_del(void *ctx, const struct tenant *t, const struct session_state *st)
{
    (void)ctx;
    struct record_writer w = writer();
    cr_assert_eq(record_session_del(&w, t, st), 0);
}

static void w_sub_put(void *ctx, const struct tenant *t, const struct session_state *st,
                      const struct sess_sub *sub)
{
    (void)ctx;
    struct record_writer w = writer();
    cr_assert_eq(record_sub_put(&w, t, st, sub), 0);
}

static void w_sub_del(void *ctx, const struct tenant *t, const struct session_state *st,
                      const uint8_t *filter, size_t len)
{
    (void)ctx;
    struct record_writer w = writer();
    cr_assert_eq(record_sub_del(&w, t, st, filter, len), 0);
}

static void w_queue_push(void *ctx, const struct tenant *t, const struct session_state *st,
                         const struct qentry *e)
{
    (void)ctx;
    struct record_writer w = writer();
    cr_assert_eq(record_queue_push(&w, t, st, e), 0);
}

static void w_queue_pop(void *ctx, const struct tenant *t, const struct session_state *st,
                        const struct qentry *e)
{
    (void)ctx;
    (void)e;
    struct record_writer w = writer();
    cr_assert_eq(record_queue_pop(&w, t, st), 0);
}

static void w_infl_put(void *ctx, const struct tenant *t, const struct session_state *st,
                       const struct inflight *e)
{
    (void)ctx;
    struct record_writer w = writer();
    cr_assert_eq(record_infl_put(&w, t, st, e), 0);
}

static void w_pid(uint8_t type, const struct tenant *t, const struct session_state *st,
                  uint16_t pid)
{
    struct record_writer w = writer();
    cr_assert_eq(record_pid(&w, type, t, st, pid), 0);
}

static void w_infl_rec(void *ctx, const struct tenant *t, const struct session_state *st,
                       uint16_t pid)
{
    (void)ctx;
    w_pid(RECORD_INFL_REC, t, st, pid);
}

/* As the store in src/persist does: an INFL_DEL still last when the same
 * session's queue head goes in flight becomes an INFL_DEL_NEXT. */
static struct {
    const struct session_state *st;
    size_t records; /* log_.records once the INFL_DEL was written */
    unsigned joined;
} del_last;

static void w_infl_del(void *ctx, const struct tenant *t, const struct session_state *st,
                       uint16_t pid)
{
    (void)ctx;
    w_pid(RECORD_INFL_DEL, t, st, pid);
    del_last.st = st;
    del_last.records = log_.records;
}

static void w_qos2_add(void *ctx, const struct tenant *t, const struct session_state *st,
                       uint16_t pid)
{
    (void)ctx;
    w_pid(RECORD_QOS2_ADD, t, st, pid);
}

static void w_qos2_del(void *ctx, const struct tenant *t, const struct session_state *st,
                       uint16_t pid)
{
    (void)ctx;
    w_pid(RECORD_QOS2_DEL, t, st, pid);
}

/* The queue's head sent: one record (the store in src/persist writes it
 * so), which every scenario below then replays. */
static void w_infl_from_queue(void *ctx, const struct tenant *t, const struct session_state *st,
                              const struct inflight *e, const struct qentry *q)
{
    (void)ctx;
    (void)q;
    if (del_last.st == st && del_last.records == log_.records) {
        record_del_next(buf_extend_last(&log_, RECORD_INFL_DEL_NEXT, RECORD_DEL_NEXT_MORE), e->pid);
        del_last.st = NULL;
        del_last.joined++;
        return;
    }
    w_pid(RECORD_INFL_FROM_QUEUE, t, st, e->pid);
}

static void w_retained_put(void *ctx, const struct tenant *t, const struct msg *m)
{
    (void)ctx;
    struct record_writer w = writer();
    cr_assert_eq(record_retained(&w, RECORD_RETAINED_PUT, t, m), 0);
}

static void w_retained_clear(void *ctx, const struct tenant *t, const struct msg *m)
{
    (void)ctx;
    struct record_writer w = writer();
    cr_assert_eq(record_retained(&w, RECORD_RETAINED_CLEAR, t, m), 0);
}

static int w_load(void *ctx, struct shard *s, const struct store_sink *sink)
{
    (void)ctx;
    (void)s;
    (void)sink;
    return 0;
}

static const struct store_ops recording = {
    .session_put = w_session_put,
    .session_del = w_session_del,
    .sub_put = w_sub_put,
    .sub_del = w_sub_del,
    .queue_push = w_queue_push,
    .queue_pop = w_queue_pop,
    .infl_put = w_infl_put,
    .infl_from_queue = w_infl_from_queue,
    .infl_rec = w_infl_rec,
    .infl_del = w_infl_del,
    .qos2_add = w_qos2_add,
    .qos2_del = w_qos2_del,
    .retained_put = w_retained_put,
    .retained_clear = w_retained_clear,
    .load = w_load,
};

/* ---- a sink that collects what replay hands back ---- */

#define MAX_GOT 32

static struct {
    struct {
        uint16_t tenant;
        struct session_state st;
    } s[MAX_GOT];
    uint32_t ns;
    struct msg *r[MAX_GOT];
    uint16_t rtenant[MAX_GOT];
    uint32_t nr;
    int fail_after; /* > 0: the n-th hand-over fails (-EIO) */
} got;

static int got_session(struct shard *s, uint16_t tenant, struct session_state *st)
{
    cr_assert_eq(s, &shard);
    if (got.fail_after && --got.fail_after == 0) {
        replay_state_fini(st); /* the sink's even when it fails */
        return -EIO;
    }
    cr_assert_lt(got.ns, MAX_GOT);
    got.s[got.ns].tenant = tenant;
    got.s[got.ns++].st = *st;
    return 0;
}

static int got_retained(struct shard *s, uint16_t tenant, struct msg *m)
{
    cr_assert_eq(s, &shard);
    cr_assert_lt(got.nr, MAX_GOT);
    got.rtenant[got.nr] = tenant;
    got.r[got.nr++] = m;
    return 0;
}

static const struct store_sink collect = {got_session, got_retained};

static void got_free(void)
{
    for (uint32_t i = 0; i < got.ns; i++)
        replay_state_fini(&got.s[i].st);
    for (uint32_t i = 0; i < got.nr; i++)
        msg_release(got.r[i]);
    memset(&got, 0, sizeof(got));
}

/* Tenant names to ids: "global" is 0, "tenant-b" 1, no other. */
static int tenant_ids(void *ctx, const char *name, size_t len)
{
    (void)ctx;
    cr_assert_eq(strlen(name), len);
    if (strcmp(name, "global") == 0)
        return 0;
    return strcmp(name, "tenant-b") == 0 ? 1 : -ENOENT;
}

/* Replay every record of b with the clocks (mono, wall) into `got`. */
static void replay_into_got(const struct buf *b, uint64_t mono, uint64_t wall)
{
    struct replay_opts o = {mono, wall, false};
    struct replay *r = replay_create(&o);
    cr_assert_not_null(r);
    size_t off = 0, len;
    uint8_t type;
    const uint8_t *body;
    for (size_t i = 0; buf_next(b, &off, &type, &body, &len); i++) {
        int rc = replay_apply(r, RECORD_FORMAT, type, body, len);
        cr_assert_eq(rc, 0, "record %zu (type %u): %d, %s", i, type, rc, replay_error(r));
    }
    got_free();
    cr_assert_eq(replay_finish(r, &shard, &collect, tenant_ids, NULL), 0);
    cr_assert_eq(replay_sessions(r), 0, "the replay is empty after finish");
    replay_destroy(r);
}

/* ---- the comparison ---- */

static void same_msg(const struct msg *a, const struct msg *b, const char *what)
{
    cr_assert_not_null(a, "%s: no message", what);
    cr_assert_not_null(b, "%s: no message", what);
    cr_assert(a->qos == b->qos && a->retain == b->retain, "%s: QoS, retain", what);
    cr_assert_eq(a->expires_at_ms, b->expires_at_ms, "%s: expiry", what);
    cr_assert_eq(a->retain_stamp, b->retain_stamp, "%s: retain stamp", what);
    cr_assert(a->topic_len == b->topic_len && a->payload_len == b->payload_len &&
                  a->props_len == b->props_len,
              "%s: lengths", what);
    cr_assert_eq(memcmp(a->data, b->data, (size_t)a->topic_len + a->payload_len + a->props_len), 0,
                 "%s: topic, payload, properties", what);
}

static void same_extras(const subids_t a, const struct xfilter *sa, const subids_t b,
                        const struct xfilter *sb, const char *what)
{
    uint32_t n = a ? a[0] : 0;
    cr_assert_eq(b ? b[0] : 0, n, "%s: Subscription Identifiers", what);
    for (uint32_t i = 1; i <= n; i++)
        cr_assert_eq(a[i], b[i], "%s: Subscription Identifier %u", what, i);
    cr_assert_eq(sa ? sa->len : 0, sb ? sb->len : 0, "%s: $share filter", what);
    if (sa)
        cr_assert_eq(memcmp(sa->data, sb->data, sa->len), 0, "%s: $share filter", what);
}

static void same_outbox(const struct session_state *a, const struct session_state *b,
                        const char *id)
{
    cr_assert_eq(a->ninfl, b->ninfl, "%s: in flight", id);
    for (uint32_t i = 0; i < a->ninfl; i++) {
        const struct inflight *x = &a->infl[i], *y = &b->infl[i];
        cr_assert(x->pid == y->pid && x->state == y->state, "%s: in flight %u (send order)", id, i);
        cr_assert(x->qos == y->qos && x->retain == y->retain, "%s: in flight %u", id, x->pid);
        cr_assert_eq(y->held, 0, "%s: held is the connection's", id);
        same_extras(x->ids, x->share, y->ids, y->share, "in flight");
        if (x->state == INFL_WAIT_ACK)
            same_msg(x->m, y->m, "in flight");
        else
            cr_assert_null(y->m, "%s: MQTT-4.3.3-1: released after PUBREC", id);
    }
    cr_assert_eq(a->qlen, b->qlen, "%s: queued", id);
    cr_assert_eq(a->qbytes, b->qbytes, "%s: queued bytes", id);
    cr_assert(b->qlen == 0 || (b->qcap & (b->qcap - 1)) == 0, "%s: ring of 2^k", id);
    for (uint32_t i = 0; i < a->qlen; i++) {
        const struct qentry *x = &a->q[(a->qhead + i) & (a->qcap - 1)];
        const struct qentry *y = &b->q[(b->qhead + i) & (b->qcap - 1)];
        cr_assert(x->qos == y->qos && x->retain == y->retain, "%s: queued %u", id, i);
        same_extras(x->ids, x->share, y->ids, y->share, "queued");
        same_msg(x->m, y->m, "queued");
    }
    cr_assert_eq(a->nqos2, b->nqos2, "%s: inbound QoS 2 ids", id);
    for (uint32_t i = 0; i < a->nqos2; i++)
        cr_assert_eq(a->qos2_in[i], b->qos2_in[i], "%s: inbound QoS 2 id %u", id, i);
}

/* Live state a against rebuilt state b, every durable field. */
static void same_state(const struct session_state *a, const struct session_state *b)
{
    char id[64] = {0};
    memcpy(id, a->client_id, a->client_id_len < 63 ? a->client_id_len : 63);
    cr_assert(a->expiry_s == b->expiry_s && a->will_delay_s == b->will_delay_s,
              "%s: expiry, will delay", id);
    cr_assert_eq(a->will != NULL, b->will != NULL, "%s: will", id);
    if (a->will)
        same_msg(a->will, b->will, "will"); /* its expiry: the interval */
    cr_assert_eq(a->nsubs, b->nsubs, "%s: subscriptions", id);
    for (uint32_t i = 0; i < a->nsubs; i++) {
        const struct sess_sub *x = a->subs[i], *y = b->subs[i];
        cr_assert(x->len == y->len && !memcmp(x->filter, y->filter, x->len), "%s: subscription %u",
                  id, i);
        cr_assert(x->qos == y->qos && x->opts == y->opts && x->subid == y->subid,
                  "%s: subscription %.*s options", id, (int)x->len, x->filter);
    }
    same_outbox(a, b, id);
}

struct live_retained {
    struct msg *m[MAX_GOT];
    uint32_t n;
};

static void live_retained_add(void *value, void *arg)
{
    struct live_retained *l = arg;
    struct msg *m = value;
    if (m->payload_len == 0)
        return; /* a clear's tombstone: no retained message */
    cr_assert_lt(l->n, MAX_GOT);
    l->m[l->n++] = m;
}

static void live_retained(struct live_retained *l)
{
    l->n = 0;
    retain_match(tenant0->retained, (const uint8_t *)"#", 1, live_retained_add, l);
    retain_match(tenant0->retained, (const uint8_t *)"$SYS/#", 6, live_retained_add, l);
}

/* What `got` holds against the live tenant. */
static void same_as_live(const char *step)
{
    cr_assert_eq(got.ns, tenant0->reg_count, "%s: sessions (rebuilt %u, live %u)", step, got.ns,
                 tenant0->reg_count);
    for (uint32_t i = 0; i < got.ns; i++) {
        const struct session_state *b = &got.s[i].st;
        cr_assert_eq(got.s[i].tenant, 0, "%s: tenant", step);
        struct session *ss = session_find(tenant0, b->client_id, b->client_id_len);
        cr_assert_not_null(ss, "%s: session %.*s rebuilt, not live", step, (int)b->client_id_len,
                           b->client_id);
        same_state(&ss->st, b);
    }
    struct live_retained l;
    live_retained(&l);
    cr_assert_eq(got.nr, l.n, "%s: retained messages (rebuilt %u, live %u)", step, got.nr, l.n);
    for (uint32_t i = 0; i < got.nr; i++) {
        const struct msg *b = got.r[i];
        cr_assert_eq(got.rtenant[i], 0);
        same_msg(retain_get(tenant0->retained, msg_topic(b), b->topic_len), b, step);
    }
}

/* The records recreating the live tenant (snapshot.h). */
static void snapshot_live(struct buf *b)
{
    struct record_writer w = buf_writer(b, shard.now_ms, WALL_BASE + shard.now_ms);
    for (uint32_t i = 0; tenant0->reg && i <= tenant0->reg_mask; i++)
        for (struct session *ss = tenant0->reg[i]; ss; ss = ss->reg_next)
            cr_assert_eq(snapshot_session(&w, tenant0, &ss->st, true, 0, 0), 0);
    struct live_retained l;
    live_retained(&l);
    for (uint32_t i = 0; i < l.n; i++)
        cr_assert_eq(snapshot_retained(&w, tenant0, l.m[i]), 0);
}

static void check(const char *step)
{
    replay_into_got(&log_, shard.now_ms, WALL_BASE + shard.now_ms);
    same_as_live(step);
    struct buf snap = {0};
    snapshot_live(&snap);
    replay_into_got(&snap, shard.now_ms, WALL_BASE + shard.now_ms);
    same_as_live(step);
    buf_fini(&snap);
    got_free();
}

static void setup(void)
{
    memset(&log_, 0, sizeof(log_));
    memset(&got, 0, sizeof(got));
    memset(&del_last, 0, sizeof(del_last));
    harness_setup(&recording, check);
}

static void teardown(void)
{
    harness_teardown();
    buf_fini(&log_);
    got_free();
}

TestSuite(replay_live, .init = setup, .fini = teardown);

Test(replay_live, a_session_from_connect_to_expiry)
{
    scenario_session_life();
    /* A PUBACK and the next queued message's delivery: one record. */
    cr_assert_gt(del_last.joined, 0, "no INFL_DEL_NEXT was written");
}

Test(replay_live, retained_put_replace_and_clear)
{
    scenario_retained();
}

Test(replay_live, clean_start_and_takeover)
{
    scenario_clean_start_and_takeover();
}

Test(replay_live, a_full_queue_drops_its_oldest)
{
    scenario_full_queue();
}

static struct msg *msg_expiring(const char *topic, const char *payload, uint8_t qos, bool retain,
                                uint64_t in_ms)
{
    struct msg *m = msg_new(topic, payload, qos, retain);
    m->expires_at_ms = in_ms; /* still the creator's alone */
    return m;
}

/* MQTT-3.3.2-5/-6: message deadlines (queued, in flight, retained) and a
 * will's Message Expiry Interval survive the records exactly. */
Test(replay_live, message_expiry_and_the_wills_interval)
{
    struct conn *c = conn_new();
    struct session *ss = connect_as(c, "dev-7", true, 600,
                                    msg_expiring("dev/7/status", "gone", 1, true, 45000), 30, NULL);
    subscribe(ss, "e/#", 2, 4);
    check("a will with a Message Expiry Interval");
    route_publish(&shard, tenant0, msg_expiring("e/1", "a", 1, false, shard.now_ms + 20000));
    route_publish(&shard, tenant0, msg_expiring("e/2", "b", 2, true, shard.now_ms + 90000));
    check("in flight with deadlines, one retained");
    disconnect(c, false);
    route_publish(&shard, tenant0, msg_expiring("e/3", "c", 1, false, shard.now_ms + 5000));
    advance(2000);
    check("queued with a deadline, time passed");
    conn_free(c);
}

/* A restart: the monotonic clock began again, wall time went on. The
 * remaining time of a retained message is what was left minus the time
 * the broker was down. */
Test(replay_live, deadlines_are_rebased_across_a_restart)
{
    route_publish(&shard, tenant0, msg_expiring("r/e", "v", 1, true, shard.now_ms + 60000));
    check("retained with 60 s left");
    uint64_t wall_then = WALL_BASE + shard.now_ms;
    replay_into_got(&log_, 700, wall_then + 15000); /* 15 s later, booted 0.7 s ago */
    cr_assert_eq(got.nr, 1);
    cr_assert_eq(got.r[0]->expires_at_ms, 700 + 45000);
    replay_into_got(&log_, 700, wall_then + 61000); /* expired meanwhile */
    cr_assert_eq(got.nr, 1);
    cr_assert(msg_expired(got.r[0], 700), "expired while the broker was down");
}

/* ---- replay's rules, on records written by hand ---- */

static struct tenant ta = {.name = "global", .name_len = 6},
                     tb = {.name = "tenant-b", .name_len = 8};
static struct session_state dev = {.client_id = (uint8_t *)"dev-1", .client_id_len = 5};

static struct replay *rp;
static struct buf hand;
static struct record_writer hw;

static void hand_setup(void)
{
    struct replay_opts o = {1000, WALL_BASE, false};
    rp = replay_create(&o);
    cr_assert_not_null(rp);
    memset(&hand, 0, sizeof(hand));
    hw = buf_writer(&hand, 1000, WALL_BASE);
    memset(&got, 0, sizeof(got));
}

static void hand_teardown(void)
{
    replay_destroy(rp);
    buf_fini(&hand);
    got_free();
}

TestSuite(replay, .init = hand_setup, .fini = hand_teardown);

/* Apply the records written to `hand` since the last call; the last rc. */
static int apply_new(void)
{
    static size_t done;
    if (hand.records == 0)
        done = 0;
    size_t off = done, len;
    uint8_t type;
    const uint8_t *body;
    int rc = 0;
    while (rc == 0 && buf_next(&hand, &off, &type, &body, &len))
        rc = replay_apply(rp, RECORD_FORMAT, type, body, len);
    done = hand.n;
    return rc;
}

static struct msg *retained_msg(const char *payload, uint64_t stamp)
{
    struct msg *m = msg_new("r/1", payload, 1, true);
    m->retain_stamp = stamp;
    return m;
}

Test(replay, sessions_are_keyed_by_tenant_name_and_client_id)
{
    cr_assert_eq(record_session_put(&hw, &ta, &dev), 0);
    cr_assert_eq(record_session_put(&hw, &tb, &dev), 0);
    cr_assert_eq(record_pid(&hw, RECORD_QOS2_ADD, &tb, &dev, 5), 0);
    cr_assert_eq(record_session_del(&hw, &ta, &dev), 0);
    cr_assert_eq(apply_new(), 0, "%s", replay_error(rp));
    cr_assert_eq(replay_sessions(rp), 1);
    cr_assert_eq(replay_finish(rp, &shard, &collect, tenant_ids, NULL), 0);
    cr_assert_eq(got.ns, 1);
    cr_assert_eq(got.s[0].tenant, 1, "tenant-b's, named by the resolver");
    cr_assert(got.s[0].st.nqos2 == 1 && got.s[0].st.qos2_in[0] == 5);
}

/* An offline session's expiry and will delay count the time the broker was
 * down: written 20 s before this replay's clock, with 60 s and 5 s left. */
Test(replay, offline_deadlines_count_the_time_the_broker_was_down)
{
    struct record_writer old = buf_writer(&hand, 500, WALL_BASE - 20000);
    struct session_state a = dev, b = dev;
    a.expiry_s = 600;
    a.will_delay_s = 30;
    b.client_id = (uint8_t *)"dev-2";
    b.expiry_s = 10;
    cr_assert_eq(record_session_put_at(&old, &ta, &a, 500 + 60000, 500 + 5000), 0);
    cr_assert_eq(record_session_put_at(&old, &ta, &b, 500 + 10000, 0), 0);
    cr_assert_eq(apply_new(), 0, "%s", replay_error(rp));
    cr_assert_eq(replay_finish(rp, &shard, &collect, tenant_ids, NULL), 0);
    cr_assert_eq(got.ns, 1, "dev-2 ran out while the broker was down: %u sessions", got.ns);
    const struct session_state *st = &got.s[0].st;
    cr_assert_eq(st->expiry_s, 40, "60 s left 20 s ago: %u", st->expiry_s);
    cr_assert_eq(st->will_delay_s, 0, "the will was due 15 s ago");
}

Test(replay, the_latest_retained_stamp_wins_and_a_clear_removes)
{
    struct msg *m[] = {retained_msg("new", 5), retained_msg("old", 3), retained_msg("", 7),
                       retained_msg("older than the clear", 6), retained_msg("newest", 8)};
    cr_assert_eq(record_retained(&hw, RECORD_RETAINED_PUT, &ta, m[0]), 0);
    cr_assert_eq(record_retained(&hw, RECORD_RETAINED_PUT, &ta, m[1]), 0);
    cr_assert_eq(apply_new(), 0);
    cr_assert_eq(replay_retained(rp), 1);
    cr_assert_eq(record_retained(&hw, RECORD_RETAINED_CLEAR, &ta, m[2]), 0);
    cr_assert_eq(record_retained(&hw, RECORD_RETAINED_PUT, &ta, m[3]), 0);
    cr_assert_eq(apply_new(), 0);
    cr_assert_eq(replay_retained(rp), 0, "an older put does not revive a cleared topic");
    cr_assert_eq(record_retained(&hw, RECORD_RETAINED_PUT, &ta, m[4]), 0);
    cr_assert_eq(apply_new(), 0);
    cr_assert_eq(replay_finish(rp, &shard, &collect, tenant_ids, NULL), 0);
    cr_assert_eq(got.nr, 1);
    same_msg(got.r[0], m[4], "the newest");
    for (size_t i = 0; i < 5; i++)
        msg_release(m[i]);
}

Test(replay, the_first_put_of_a_retained_topic_before_its_older_put)
{
    struct msg *m[] = {retained_msg("new", 5), retained_msg("old", 3)};
    cr_assert_eq(record_retained(&hw, RECORD_RETAINED_PUT, &ta, m[0]), 0);
    cr_assert_eq(record_retained(&hw, RECORD_RETAINED_PUT, &ta, m[1]), 0);
    cr_assert_eq(apply_new(), 0);
    cr_assert_eq(replay_finish(rp, &shard, &collect, tenant_ids, NULL), 0);
    cr_assert_eq(got.nr, 1);
    same_msg(got.r[0], m[0], "the later stamp");
    msg_release(m[0]);
    msg_release(m[1]);
}

/* Each record at odds with the state before it: -EBADMSG, a reason, and
 * the state unchanged. */
static void refused(const char *why)
{
    uint32_t before = replay_sessions(rp);
    cr_assert_eq(apply_new(), -EBADMSG, "%s", why);
    cr_assert(strstr(replay_error(rp), why), "\"%s\" does not say \"%s\"", replay_error(rp), why);
    cr_assert_eq(replay_sessions(rp), before);
}

Test(replay, records_at_odds_with_the_state_are_refused)
{
    static const uint8_t junk[] = {1, 2, 3};
    cr_assert_eq(replay_apply(rp, RECORD_FORMAT, 0, junk, sizeof(junk)), -EBADMSG);
    cr_assert(strstr(replay_error(rp), "unknown record type 0"));
    cr_assert_eq(replay_apply(rp, RECORD_FORMAT, RECORD_TYPE_MAX + 1, junk, sizeof(junk)),
                 -EBADMSG);
    cr_assert(strstr(replay_error(rp), "unknown record type"));
    cr_assert_eq(replay_apply(rp, RECORD_FORMAT, RECORD_SESSION_PUT, junk, sizeof(junk)), -EBADMSG);
    cr_assert(strstr(replay_error(rp), "malformed session put"));

    cr_assert_eq(record_pid(&hw, RECORD_QOS2_ADD, &ta, &dev, 1), 0);
    refused("never put");
    cr_assert_eq(record_session_put(&hw, &ta, &dev), 0);
    cr_assert_eq(apply_new(), 0);
    cr_assert_eq(record_session_del(&hw, &tb, &dev), 0);
    refused("never put"); /* the same client id, another tenant */
    cr_assert_eq(record_queue_pop(&hw, &ta, &dev), 0);
    refused("empty queue");
    cr_assert_eq(record_pid(&hw, RECORD_INFL_REC, &ta, &dev, 9), 0);
    refused("not in flight");
    cr_assert_eq(record_pid(&hw, RECORD_INFL_DEL, &ta, &dev, 9), 0);
    refused("not in flight");
    cr_assert_eq(record_pid(&hw, RECORD_QOS2_DEL, &ta, &dev, 9), 0);
    refused("not held");
    cr_assert_eq(record_sub_del(&hw, &ta, &dev, (const uint8_t *)"a/b", 3), 0);
    refused("not subscribed");

    struct inflight e = {msg_new("a", "1", 1, false), NULL, NULL, 9, 1, INFL_WAIT_ACK, 0, 0};
    cr_assert_eq(record_infl_put(&hw, &ta, &dev, &e), 0);
    cr_assert_eq(apply_new(), 0);
    cr_assert_eq(record_infl_put(&hw, &ta, &dev, &e), 0);
    refused("already in flight");
    cr_assert_eq(record_pid(&hw, RECORD_INFL_REC, &ta, &dev, 9), 0);
    refused("not a QoS 2 PUBLISH"); /* PUBREC is for QoS 2 only */
    cr_assert_eq(record_pid(&hw, RECORD_QOS2_ADD, &ta, &dev, 3), 0);
    cr_assert_eq(apply_new(), 0);
    cr_assert_eq(record_pid(&hw, RECORD_QOS2_ADD, &ta, &dev, 3), 0);
    refused("already held");
    msg_release(e.m);
}

Test(replay, skip_unknown_counts_what_it_skips)
{
    replay_destroy(rp);
    struct replay_opts o = {1000, WALL_BASE, true};
    rp = replay_create(&o);
    cr_assert_eq(record_pid(&hw, RECORD_QOS2_ADD, &ta, &dev, 1), 0);
    cr_assert_eq(record_queue_pop(&hw, &tb, &dev), 0);
    cr_assert_eq(record_session_put(&hw, &ta, &dev), 0);
    cr_assert_eq(apply_new(), 0);
    cr_assert_eq(replay_skipped(rp), 2);
    cr_assert_eq(replay_sessions(rp), 1);
}

/* A sink that fails stops the hand-over; what was not handed is freed
 * (ASan's leak check), and so is a session whose tenant is unknown. */
Test(replay, a_failing_sink_or_tenant_stops_the_hand_over)
{
    struct session_state other = {.client_id = (uint8_t *)"dev-2", .client_id_len = 5};
    struct msg *will = msg_new("w", "x", 0, false);
    dev.will = will;
    cr_assert_eq(record_session_put(&hw, &ta, &dev), 0);
    dev.will = NULL;
    cr_assert_eq(record_session_put(&hw, &ta, &other), 0);
    struct msg *m = retained_msg("v", 1);
    cr_assert_eq(record_retained(&hw, RECORD_RETAINED_PUT, &ta, m), 0);
    cr_assert_eq(apply_new(), 0);
    got.fail_after = 1;
    cr_assert_eq(replay_finish(rp, &shard, &collect, tenant_ids, NULL), -EIO);
    cr_assert_eq(got.ns + got.nr, 0, "nothing handed after the failure");
    cr_assert_eq(replay_sessions(rp) + replay_retained(rp), 0);

    struct tenant tc = {.name = "tenant-c", .name_len = 8};
    cr_assert_eq(record_session_put(&hw, &tc, &other), 0);
    cr_assert_eq(apply_new(), 0);
    cr_assert_eq(replay_finish(rp, &shard, &collect, tenant_ids, NULL), -ENOENT);
    msg_release(will);
    msg_release(m);
}

/* A compaction marker into `hand` (persist/compact.c writes them). */
static void marker(uint8_t type)
{
    cr_assert_not_null(hw.reserve(hw.ctx, 0));
    hw.commit(hw.ctx, type, 0);
}

/*
 * A snapshot under way when the broker stopped: a start-up replays from the
 * snapshot before it, through the new one's SNAP_BEGIN and what followed.
 * A session written whole after SNAP_BEGIN replaces what came before (not
 * doubling its queue); one the snapshot had not reached keeps its state;
 * one that ended before it was reached is gone (its del is written).
 */
Test(replay, a_snapshot_under_way_replaces_the_sessions_it_wrote)
{
    static struct session_state
        a = {.client_id = (uint8_t *)"a", .client_id_len = 1, .expiry_s = 60},
        b = {.client_id = (uint8_t *)"b", .client_id_len = 1, .expiry_s = 60},
        c = {.client_id = (uint8_t *)"c", .client_id_len = 1, .expiry_s = 60};
    struct msg *m1 = msg_new("t/1", "one", 1, false), *m2 = msg_new("t/2", "two", 1, false);
    struct qentry e1 = {.m = m1, .qos = 1}, e2 = {.m = m2, .qos = 1};
    cr_assert_eq(record_session_put(&hw, &ta, &a), 0);
    cr_assert_eq(record_queue_push(&hw, &ta, &a, &e1), 0);
    cr_assert_eq(record_session_put(&hw, &ta, &b), 0);
    cr_assert_eq(record_queue_push(&hw, &ta, &b, &e1), 0);
    cr_assert_eq(record_session_put(&hw, &ta, &c), 0);
    marker(RECORD_SNAP_BEGIN);
    /* a written whole again, as it is now: m1 then m2 queued. */
    cr_assert_eq(record_session_put(&hw, &ta, &a), 0);
    cr_assert_eq(record_queue_push(&hw, &ta, &a, &e1), 0);
    cr_assert_eq(record_queue_push(&hw, &ta, &a, &e2), 0);
    cr_assert_eq(record_session_del(&hw, &ta, &c), 0); /* c ends, not reached */
    cr_assert_eq(apply_new(), 0, "%s", replay_error(rp));
    cr_assert_eq(replay_finish(rp, &shard, &collect, tenant_ids, NULL), 0);
    cr_assert_eq(got.ns, 2, "a and b; c ended");
    for (uint32_t i = 0; i < got.ns; i++) {
        const struct session_state *st = &got.s[i].st;
        uint32_t want = st->client_id[0] == 'a' ? 2 : 1;
        cr_assert_eq(st->qlen, want, "%c: %u queued", st->client_id[0], st->qlen);
    }
    msg_release(m1);
    msg_release(m2);
}

/* Replayed from a whole snapshot's SNAP_BEGIN: a session that ended before
 * the snapshot reached it has no put here; its del is no contradiction. */
Test(replay, the_end_of_a_session_before_the_snapshot_is_no_contradiction)
{
    marker(RECORD_SNAP_BEGIN);
    cr_assert_eq(record_session_del(&hw, &ta, &dev), 0);
    cr_assert_eq(apply_new(), 0, "%s", replay_error(rp));
    cr_assert_eq(replay_sessions(rp), 0);
    /* Without a snapshot begun it still is one: records were lost. */
    struct replay_opts o = {1000, WALL_BASE, false};
    struct replay *r2 = replay_create(&o);
    size_t off = 0, len;
    uint8_t type;
    const uint8_t *body;
    cr_assert(buf_next(&hand, &off, &type, &body, &len)); /* the marker */
    cr_assert(buf_next(&hand, &off, &type, &body, &len));
    cr_assert_eq(replay_apply(r2, RECORD_FORMAT, type, body, len), -EBADMSG);
    replay_destroy(r2);
}

/* ---- session numbers (format 2) and keys (format 1) ---- */

static uint32_t forced_no;

static uint32_t forced(void *ctx, const struct tenant *t, const struct session_state *st)
{
    (void)ctx, (void)t, (void)st;
    return forced_no;
}

/* A snapshot writes a session whole under a new number: the records after
 * it name that one, and the old number names nothing any more. */
Test(replay, a_put_gives_a_session_a_new_number)
{
    struct record_writer w = hw;
    w.number = forced;
    forced_no = 7;
    cr_assert_eq(record_session_put(&w, &ta, &dev), 0);
    cr_assert_eq(record_pid(&w, RECORD_QOS2_ADD, &ta, &dev, 1), 0);
    forced_no = 0x80000001u;
    cr_assert_eq(record_session_put(&w, &ta, &dev), 0);
    cr_assert_eq(record_pid(&w, RECORD_QOS2_ADD, &ta, &dev, 2), 0);
    cr_assert_eq(apply_new(), 0, "%s", replay_error(rp));
    cr_assert_eq(replay_sessions(rp), 1);
    forced_no = 7;
    cr_assert_eq(record_pid(&w, RECORD_QOS2_DEL, &ta, &dev, 1), 0);
    refused("session number 7, never put");
    forced_no = 0x80000001u;
    cr_assert_eq(record_pid(&w, RECORD_QOS2_DEL, &ta, &dev, 1), 0);
    cr_assert_eq(apply_new(), 0, "%s", replay_error(rp));
    cr_assert_eq(replay_finish(rp, &shard, &collect, tenant_ids, NULL), 0);
    cr_assert(got.ns == 1 && got.s[0].st.nqos2 == 1 && got.s[0].st.qos2_in[0] == 2);
}

Test(replay, a_number_is_one_live_sessions_and_one_logs)
{
    static struct session_state other = {.client_id = (uint8_t *)"dev-2", .client_id_len = 5};
    struct record_writer w = hw;
    w.number = forced;
    forced_no = 3;
    cr_assert_eq(record_session_put(&w, &ta, &dev), 0);
    cr_assert_eq(apply_new(), 0, "%s", replay_error(rp));
    cr_assert_eq(record_session_put(&w, &ta, &other), 0);
    refused("its number 3 is another session's");
    /* Once dev-1 ended, its number may name another session. */
    cr_assert_eq(record_session_del(&w, &ta, &dev), 0);
    cr_assert_eq(record_session_put(&w, &ta, &other), 0);
    cr_assert_eq(apply_new(), 0, "%s", replay_error(rp));
    /* Another log's records: its numbers are its own. */
    replay_next_log(rp);
    cr_assert_eq(record_pid(&w, RECORD_QOS2_ADD, &ta, &other, 4), 0);
    refused("session number 3, never put");
    cr_assert_eq(replay_sessions(rp), 1, "the session stays");
}

/* Format 1 (before session numbers): every session record holds the
 * tenant's name and the client id, [tlen u16][clen u16][tenant][client]. */
Test(replay, format_1_records_are_read_by_their_keys)
{
    static const uint8_t put[] = {6,   0,   5,   0,  'g', 'l', 'o', 'b', 'a', 'l', 'd', 'e',
                                  'v', '-', '1', 10, 0,   0,   0,   0,   0,   0,   0,   0};
    static const uint8_t qos2[] = {6,   0,   5,   0,   'g', 'l', 'o', 'b', 'a',
                                   'l', 'd', 'e', 'v', '-', '1', 9,   0};
    cr_assert_eq(replay_apply(rp, RECORD_FORMAT_KEYED, RECORD_SESSION_PUT, put, sizeof(put)), 0,
                 "%s", replay_error(rp));
    cr_assert_eq(replay_apply(rp, RECORD_FORMAT_KEYED, RECORD_QOS2_ADD, qos2, sizeof(qos2)), 0,
                 "%s", replay_error(rp));
    /* A queue push: the key, the delivery (u8 QoS 1, u8 retain 0, u16
     * share length 0, u32 id count 0), the message (flags QoS 1, u64 expiry
     * and u64 stamp both 0 and written, lengths 1, 2, 0, "t", "hi"). */
    static const uint8_t push[] = {6,   0, 5, 0, 'g', 'l', 'o', 'b', 'a', 'l', 'd', 'e', 'v', '-',
                                   '1', 1, 0, 0, 0,   0,   0,   0,   0,   1,   0,   0,   0,   0,
                                   0,   0, 0, 0, 0,   0,   0,   0,   0,   0,   0,   0,   1,   0,
                                   2,   0, 0, 0, 0,   0,   0,   0,   't', 'h', 'i'};
    cr_assert_eq(replay_apply(rp, RECORD_FORMAT_KEYED, RECORD_QUEUE_PUSH, push, sizeof(push)), 0,
                 "%s", replay_error(rp));
    cr_assert_eq(replay_apply(rp, RECORD_FORMAT, RECORD_QOS2_ADD, qos2, sizeof(qos2)), -EBADMSG,
                 "format 2 reads a number, not a key");
    cr_assert_eq(replay_finish(rp, &shard, &collect, tenant_ids, NULL), 0);
    cr_assert_eq(got.ns, 1);
    cr_assert_eq(got.s[0].st.expiry_s, 10);
    cr_assert(got.s[0].st.nqos2 == 1 && got.s[0].st.qos2_in[0] == 9);
    cr_assert_eq(got.s[0].st.qlen, 1);
    const struct msg *m = got.s[0].st.q[got.s[0].st.qhead].m;
    cr_assert(m->topic_len == 1 && m->payload_len == 2 && memcmp(msg_payload(m), "hi", 2) == 0);
}
