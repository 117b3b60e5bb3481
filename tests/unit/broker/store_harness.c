/*
 * The shared part of the store tests (store_harness.h): a shard without a
 * loop (one shard, one tenant, connections that only collect their output
 * (conn_reserve), an io_uring that is never submitted: a takeover's close
 * queues its operations there), the client's side of the session code, and
 * the scenarios. The store and the comparison are the test's.
 */
#include "store_harness.h"

#include <criterion/criterion.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/route.h"
#include "broker/session_ops.h"
#include "core/slab.h"
#include "core/wheel.h"
#include "index/retain.h"
#include "index/trie.h"
#include "mqtt/codec.h"

static struct config cfg;
struct tenant_settings set;
static struct broker broker;
struct shard shard;
static struct shard *shards[1] = {&shard};
struct tenant *tenant0;
static harness_check_fn check;

void harness_setup(const struct store_ops *store, harness_check_fn fn)
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
    shard.session_ops = &broker_session_ops;
    shard.wheel = wheel_create(100, 64, shard.now_ms);
    shard.session_wheel = wheel_create(1000, 64, shard.now_ms);
    shard.tenants = calloc(TENANT_MAX, sizeof(*shard.tenants));
    tenant0 = calloc(1, sizeof(*tenant0));
    cr_assert(shard.session_slab && shard.wheel && shard.session_wheel && shard.tenants && tenant0);
    *tenant0 = (struct tenant){.name = "global", .name_len = 6, .set = &set};
    tenant0->subs = trie_create();
    tenant0->retained = retain_create();
    shard.tenants[0] = tenant0;
    broker.tenant_shards = (struct tenant_shards){.tables = {shard.tenants}, .n = 1};
    shard.store = store;
    check = fn;
}

void harness_teardown(void)
{
    session_destroy_all(&shard, tenant0);
    route_tenant_fini(&shard, tenant0);
    route_fini(&shard);        /* route.c's scratch, tombstones */
    free(shard.share_scratch); /* share.c's and the outbox's scratch */
    free(shard.throttled);
    free(tenant0);
    free(shard.tenants);
    wheel_destroy(shard.session_wheel);
    wheel_destroy(shard.wheel);
    slab_destroy(shard.session_slab);
    io_uring_queue_exit(&shard.ring);
}

struct conn *conn_new(void)
{
    struct conn *c = calloc(1, sizeof(*c));
    cr_assert_not_null(c);
    c->state = CONN_ACTIVE;
    c->version = 4; /* 3.1.1: the output is a plain encoding */
    return c;
}

/* The harness never flushes the loop: a connection leaves its dirty list
 * (FIFO, linked through the streams) before it is freed. */
static void undirty(struct stream *st)
{
    struct stream_loop *l = &shard.streams;
    struct stream **pp = &l->dirty, *prev = NULL;
    while (*pp && *pp != st) {
        prev = *pp;
        pp = &(*pp)->next_dirty;
    }
    if (*pp) {
        *pp = st->next_dirty;
        if (l->dirty_tail == st)
            l->dirty_tail = prev;
    }
    st->is_dirty = false;
}

void conn_free(struct conn *c)
{
    undirty(&c->st);
    free(c->st.out);
    free(c->st.sending); /* a takeover's close moved out here: never sent */
    free(c);
}

/* CONNECT as connect.c makes it: attach, then resume. */
struct session *connect_as(struct conn *c, const char *id, bool clean, uint32_t expiry_s,
                           struct msg *will, uint32_t will_delay_s, bool *present)
{
    struct session_opts o = {clean, expiry_s, will_delay_s, will, 2};
    bool p;
    struct session *ss = session_attach(&shard, tenant0, &c->st, (const uint8_t *)id, strlen(id),
                                        &o, present ? present : &p);
    cr_assert_not_null(ss);
    c->session = ss;
    session_resume(&shard, ss);
    return ss;
}

void disconnect(struct conn *c, bool send_will)
{
    struct session *ss = c->session;
    c->session = NULL;
    c->state = CONN_CLOSING;
    session_detach(&shard, ss, send_will);
}

struct msg *msg_new(const char *topic, const char *payload, uint8_t qos, bool retain)
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

void publish(const char *topic, const char *payload, uint8_t qos, bool retain)
{
    route_publish(&shard, tenant0, msg_new(topic, payload, qos, retain));
}

void subscribe(struct session *ss, const char *filter, uint8_t qos, uint32_t subid)
{
    struct sub_req req = {.qos = qos, .subid = subid};
    bool fresh, existed;
    cr_assert_eq(session_subscribe(&shard, ss, (const uint8_t *)filter, strlen(filter), &req,
                                   &fresh, &existed),
                 0);
}

/* Acknowledge everything in flight, as the client would. */
void ack_all(struct session *ss)
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

size_t take_output(struct conn *c, struct out_pkt *out)
{
    size_t n = 0;
    if (!c->st.out)
        return 0;
    const uint8_t *b = c->st.out->data;
    size_t len = c->st.out->len;
    while (len) {
        struct mqtt_frame f;
        cr_assert_eq(mqtt_frame_decode(b, len, 0, &f), MQTT_OK);
        cr_assert_leq(f.total_len, len);
        cr_assert_lt(n, OUT_PKT_MAX);
        struct out_pkt *p = &out[n++];
        memset(p, 0, sizeof(*p));
        p->type = f.type;
        const uint8_t *body = b + f.header_len;
        if (f.type == MQTT_PUBLISH) {
            struct mqtt_publish pub;
            cr_assert_eq(mqtt_publish_decode(f.flags, body, f.body_len, c->version, &pub), MQTT_OK);
            p->qos = pub.qos;
            p->dup = pub.dup;
            p->pid = pub.packet_id;
            snprintf(p->topic, sizeof(p->topic), "%.*s", (int)pub.topic.len,
                     (const char *)pub.topic.p);
            snprintf(p->payload, sizeof(p->payload), "%.*s", (int)pub.payload.len,
                     (const char *)pub.payload.p);
        } else {
            struct mqtt_ack a;
            cr_assert_eq(mqtt_ack_decode(f.type, f.flags, body, f.body_len, c->version, &a),
                         MQTT_OK);
            p->pid = a.packet_id;
        }
        b += f.total_len;
        len -= f.total_len;
    }
    c->st.out->len = 0;
    c->st.backlog = 0; /* as if sent: the client keeps up */
    return n;
}

void advance(uint64_t ms)
{
    shard.now_ms += ms;
    wheel_advance(shard.session_wheel, shard.now_ms, session_on_timer, &shard);
}

void scenario_session_life(void)
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
    cr_assert_null(session_find(tenant0, (const uint8_t *)"dev-1", 5));
    check("MQTT-3.1.2-23: the session expired");
    disconnect(c2, false);
    check("expiry 0: the session ends with its connection");
    conn_free(c1);
    conn_free(c2);
    conn_free(c3);
}

void scenario_retained(void)
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
    cr_assert_not_null(retain_get(tenant0->retained, (const uint8_t *)"dev/3/status", 12));
    conn_free(c);
}

void scenario_clean_start_and_takeover(void)
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

void scenario_full_queue(void)
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
