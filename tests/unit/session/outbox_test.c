/*
 * session outbox: the in-flight window, the queue behind it, the QoS 2
 * outbound flow, resumption, the queue limits and message expiry, checked
 * on what the client receives: the bytes each connection collects are
 * decoded with the mqtt codec (3.1.1 encoding, the harness's connections).
 *
 * The shard (real, without a loop) and the client's side are
 * store_harness.c's; no store (memory only).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/route.h"
#include "mqtt/codec.h"
#include "store_harness.h"

static void setup(void)
{
    harness_setup(NULL, NULL);
}

TestSuite(session_outbox, .init = setup, .fini = harness_teardown);

/* CONNECT with an in-flight window (min(max_inflight, Receive Maximum)). */
static struct session *connect_w(struct conn *c, const char *id, bool clean, uint16_t window,
                                 bool *present)
{
    struct session_opts o = {.clean_start = clean, .expiry_s = 600, .window = window};
    bool p;
    struct session *ss = session_attach(&shard, tenant0, &c->st, (const uint8_t *)id, strlen(id),
                                        &o, present ? present : &p);
    cr_assert_not_null(ss);
    c->session = ss;
    session_resume(&shard, ss);
    return ss;
}

static void publish_n(const char *topic, uint8_t qos, int from, int to)
{
    for (int i = from; i <= to; i++) {
        char pl[16];
        snprintf(pl, sizeof(pl), "%d", i);
        publish(topic, pl, qos, false);
    }
}

static void assert_publish(const struct out_pkt *p, uint8_t qos, bool dup, const char *payload)
{
    cr_assert_eq(p->type, MQTT_PUBLISH);
    cr_assert_eq(p->qos, qos, "qos %u, want %u", p->qos, qos);
    cr_assert_eq(p->dup, dup, "dup %d for %s", p->dup, p->payload);
    cr_assert_str_eq(p->payload, payload);
}

/* MQTT-4.9.0-2: never more unacknowledged QoS 1/2 PUBLISHes than the
 * window; the rest wait in the queue and go out in order as PUBACKs free
 * the window (MQTT-4.6.0-6), even when acks come out of order. */
Test(session_outbox, window_limits_inflight_and_queue_drains_in_order)
{
    struct out_pkt p[OUT_PKT_MAX];
    struct conn *c = conn_new();
    struct session *ss = connect_w(c, "w", true, 3, NULL);
    subscribe(ss, "t", 1, 0);
    publish_n("t", 1, 1, 6);
    cr_assert_eq(take_output(c, p), 3, "MQTT-4.9.0-2: only the window goes out");
    for (int i = 0; i < 3; i++) {
        char want[4];
        snprintf(want, sizeof(want), "%d", i + 1);
        assert_publish(&p[i], 1, false, want);
        cr_assert_neq(p[i].pid, 0);
    }
    cr_assert_neq(p[0].pid, p[1].pid);
    cr_assert_neq(p[1].pid, p[2].pid);
    cr_assert_neq(p[0].pid, p[2].pid);
    cr_assert_eq(ss->st.qlen, 3);

    /* The second acknowledged first: one slot, the next in order. */
    uint16_t pid1 = p[0].pid, pid3 = p[2].pid;
    cr_assert_eq(session_on_puback(&shard, ss, p[1].pid), 0);
    cr_assert_eq(take_output(c, p), 1);
    assert_publish(&p[0], 1, false, "4");
    uint16_t pid4 = p[0].pid;
    /* An unknown id frees nothing. */
    cr_assert_eq(session_on_puback(&shard, ss, 4242), 0);
    cr_assert_eq(take_output(c, p), 0);
    cr_assert_eq(session_on_puback(&shard, ss, pid1), 0);
    cr_assert_eq(session_on_puback(&shard, ss, pid3), 0);
    cr_assert_eq(take_output(c, p), 2);
    assert_publish(&p[0], 1, false, "5");
    assert_publish(&p[1], 1, false, "6");
    cr_assert_eq(ss->st.qlen, 0);
    cr_assert_eq(ss->st.ninfl, 3);
    cr_assert_eq(session_on_puback(&shard, ss, pid4), 0);
    cr_assert_eq(take_output(c, p), 0, "nothing left to send");
    conn_free(c);
}

/* QoS 0 does not take a slot of the window: it is written at once, even
 * with the window full and messages queued (pinned: the broker's choice). */
Test(session_outbox, qos0_bypasses_full_window)
{
    struct out_pkt p[OUT_PKT_MAX];
    struct conn *c = conn_new();
    struct session *ss = connect_w(c, "q0", true, 1, NULL);
    subscribe(ss, "t", 2, 0);
    publish("t", "a", 1, false);
    publish("t", "b", 1, false);
    publish("t", "c", 0, false);
    cr_assert_eq(take_output(c, p), 2);
    assert_publish(&p[0], 1, false, "a");
    assert_publish(&p[1], 0, false, "c");
    cr_assert_eq(ss->st.qlen, 1);
    conn_free(c);
}

/* Outbound QoS 2: PUBLISH, PUBREC -> PUBREL (MQTT-4.3.3-3), PUBCOMP. The
 * slot is held until PUBCOMP (MQTT-4.9.0-2: PUBREC < 0x80 does not free
 * it); a PUBREC >= 0x80 ends the flow without PUBREL and frees it. */
Test(session_outbox, qos2_flow_pubrec_pubrel_pubcomp)
{
    struct out_pkt p[OUT_PKT_MAX];
    struct conn *c = conn_new();
    struct session *ss = connect_w(c, "q2", true, 1, NULL);
    subscribe(ss, "t", 2, 0);
    publish("t", "a", 2, false);
    publish("t", "b", 2, false);
    publish("t", "c", 2, false);
    cr_assert_eq(take_output(c, p), 1);
    assert_publish(&p[0], 2, false, "a");
    uint16_t pid = p[0].pid;

    cr_assert_eq(session_on_pubrec(&shard, ss, pid, 0), 0);
    cr_assert_eq(take_output(c, p), 1, "MQTT-4.9.0-2: PUBREC does not free the slot");
    cr_assert_eq(p[0].type, MQTT_PUBREL);
    cr_assert_eq(p[0].pid, pid);
    /* A repeated PUBREC gets the PUBREL again. */
    cr_assert_eq(session_on_pubrec(&shard, ss, pid, 0), 0);
    cr_assert_eq(take_output(c, p), 1);
    cr_assert_eq(p[0].type, MQTT_PUBREL);
    /* PUBACK is not the ack of a QoS 2 message. */
    cr_assert_eq(session_on_puback(&shard, ss, pid), 0);
    cr_assert_eq(take_output(c, p), 0);
    cr_assert_eq(ss->st.ninfl, 1);

    cr_assert_eq(session_on_pubcomp(&shard, ss, pid), 0);
    cr_assert_eq(take_output(c, p), 1, "PUBCOMP frees the slot");
    assert_publish(&p[0], 2, false, "b");

    /* A failing PUBREC: no PUBREL, the flow is over, the slot is free. */
    cr_assert_eq(session_on_pubrec(&shard, ss, p[0].pid, 0x80), 0);
    cr_assert_eq(take_output(c, p), 1);
    assert_publish(&p[0], 2, false, "c");
    /* PUBCOMP before PUBREC is not the end of the flow. */
    cr_assert_eq(session_on_pubcomp(&shard, ss, p[0].pid), 0);
    cr_assert_eq(ss->st.ninfl, 1);
    conn_free(c);
}

/* MQTT-4.4.0-1: a persistent session resumed resends its unacknowledged
 * PUBLISHes with DUP (MQTT-3.3.1-1) and their original packet ids, and
 * PUBREL for QoS 2 past PUBREC; then the queue, in order. */
Test(session_outbox, resume_resends_with_dup_and_same_ids)
{
    struct out_pkt p[OUT_PKT_MAX];
    struct conn *c1 = conn_new(), *c2 = conn_new();
    struct session *ss = connect_w(c1, "r", true, 3, NULL);
    subscribe(ss, "t", 2, 0);
    publish("t", "q2", 2, false);
    publish("t", "a", 1, false);
    publish("t", "b", 2, false);
    cr_assert_eq(take_output(c1, p), 3);
    uint16_t pid_q2 = p[0].pid, pid_a = p[1].pid, pid_b = p[2].pid;
    cr_assert_eq(session_on_pubrec(&shard, ss, pid_q2, 0), 0);
    cr_assert_eq(take_output(c1, p), 1);
    disconnect(c1, false);
    publish("t", "c", 1, false); /* offline: queued */
    cr_assert_eq(ss->st.qlen, 1);

    bool present = false;
    cr_assert_eq(connect_w(c2, "r", false, 3, &present), ss);
    cr_assert(present);
    cr_assert_eq(take_output(c2, p), 3, "the window is full: the queue waits");
    cr_assert_eq(p[0].type, MQTT_PUBREL, "MQTT-4.4.0-1: PUBREL resent");
    cr_assert_eq(p[0].pid, pid_q2);
    assert_publish(&p[1], 1, true, "a");
    cr_assert_eq(p[1].pid, pid_a);
    assert_publish(&p[2], 2, true, "b");
    cr_assert_eq(p[2].pid, pid_b);

    cr_assert_eq(session_on_puback(&shard, ss, pid_a), 0);
    cr_assert_eq(take_output(c2, p), 1);
    assert_publish(&p[0], 1, false, "c");
    conn_free(c1);
    conn_free(c2);
}

/* MQTT-3.3.4-9: resumed with a smaller window, the entries over it are held
 * and resent (DUP) as acknowledgements free slots, before the queue. */
Test(session_outbox, resume_smaller_window_holds_resends)
{
    struct out_pkt p[OUT_PKT_MAX];
    struct conn *c1 = conn_new(), *c2 = conn_new();
    struct session *ss = connect_w(c1, "h", true, 3, NULL);
    subscribe(ss, "t", 1, 0);
    publish_n("t", 1, 1, 4);
    cr_assert_eq(take_output(c1, p), 3);
    uint16_t pids[3] = {p[0].pid, p[1].pid, p[2].pid};
    disconnect(c1, false);

    cr_assert_eq(connect_w(c2, "h", false, 1, NULL), ss);
    cr_assert_eq(take_output(c2, p), 1);
    assert_publish(&p[0], 1, true, "1");
    cr_assert_eq(p[0].pid, pids[0]);
    cr_assert_eq(session_on_puback(&shard, ss, pids[0]), 0);
    cr_assert_eq(take_output(c2, p), 1);
    assert_publish(&p[0], 1, true, "2");
    cr_assert_eq(p[0].pid, pids[1]);
    cr_assert_eq(session_on_puback(&shard, ss, pids[1]), 0);
    cr_assert_eq(take_output(c2, p), 1);
    assert_publish(&p[0], 1, true, "3");
    cr_assert_eq(p[0].pid, pids[2]);
    cr_assert_eq(session_on_puback(&shard, ss, pids[2]), 0);
    cr_assert_eq(take_output(c2, p), 1);
    assert_publish(&p[0], 1, false, "4");
    conn_free(c1);
    conn_free(c2);
}

/* Queue the messages 1..n for an offline session, then reconnect and
 * return the payloads received (window large enough for all). */
static size_t offline_then_resume(const char *id, int n, struct out_pkt *p)
{
    struct conn *c1 = conn_new(), *c2 = conn_new();
    struct session *ss = connect_w(c1, id, true, 16, NULL);
    subscribe(ss, id, 1, 0); /* a topic of its own: other sessions stay */
    disconnect(c1, false);
    publish_n(id, 1, 1, n);
    connect_w(c2, id, false, 16, NULL);
    size_t got = take_output(c2, p);
    disconnect(c2, false);
    conn_free(c1);
    conn_free(c2);
    return got;
}

/* max_queued_messages: the newest dropped by default. */
Test(session_outbox, queue_full_drops_newest)
{
    struct out_pkt p[OUT_PKT_MAX];
    set.max_queued_messages = 2;
    set.queue_drop_oldest = false;
    cr_assert_eq(offline_then_resume("qn", 4, p), 2);
    assert_publish(&p[0], 1, false, "1");
    assert_publish(&p[1], 1, false, "2");
}

/* queue_drop = oldest: the head makes room, the order is kept. */
Test(session_outbox, queue_full_drops_oldest)
{
    struct out_pkt p[OUT_PKT_MAX];
    set.max_queued_messages = 2;
    set.queue_drop_oldest = true;
    cr_assert_eq(offline_then_resume("qo", 4, p), 2);
    assert_publish(&p[0], 1, false, "3");
    assert_publish(&p[1], 1, false, "4");
}

/* max_queued_bytes bounds the queue by msg_size: room for two of these. */
Test(session_outbox, queue_bytes_limit)
{
    struct out_pkt p[OUT_PKT_MAX];
    struct msg *m = msg_new("t", "1", 1, false);
    set.max_queued_bytes = 2 * msg_size(m) + msg_size(m) / 2;
    msg_release(m);
    set.queue_drop_oldest = false;
    cr_assert_eq(offline_then_resume("qb", 4, p), 2);
    assert_publish(&p[0], 1, false, "1");
    assert_publish(&p[1], 1, false, "2");

    set.queue_drop_oldest = true;
    cr_assert_eq(offline_then_resume("qb2", 4, p), 2);
    assert_publish(&p[0], 1, false, "3");
    assert_publish(&p[1], 1, false, "4");
}

/* A message larger than the whole byte limit is dropped even under
 * "oldest": it must not empty the queue for nothing. */
Test(session_outbox, queue_oversized_message_keeps_queue)
{
    struct out_pkt p[OUT_PKT_MAX];
    struct conn *c1 = conn_new(), *c2 = conn_new();
    struct msg *m = msg_new("t", "1", 1, false);
    set.max_queued_bytes = 3 * msg_size(m);
    msg_release(m);
    set.queue_drop_oldest = true;
    struct session *ss = connect_w(c1, "big", true, 16, NULL);
    subscribe(ss, "t", 1, 0);
    disconnect(c1, false);
    publish("t", "1", 1, false);
    char big[256];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    publish("t", big, 1, false);
    cr_assert_eq(ss->st.qlen, 1);
    connect_w(c2, "big", false, 16, NULL);
    cr_assert_eq(take_output(c2, p), 1);
    assert_publish(&p[0], 1, false, "1");
    conn_free(c1);
    conn_free(c2);
}

/* QoS 0 is not stored for an offline session (nor a QoS 1 message that a
 * QoS 0 subscription downgrades); QoS 1 is. */
Test(session_outbox, qos0_not_queued_offline)
{
    struct out_pkt p[OUT_PKT_MAX];
    struct conn *c1 = conn_new(), *c2 = conn_new();
    struct session *ss = connect_w(c1, "off", true, 16, NULL);
    subscribe(ss, "t", 1, 0);
    subscribe(ss, "z", 0, 0);
    disconnect(c1, false);
    publish("t", "q0", 0, false);
    publish("z", "down", 1, false);
    publish("t", "q1", 1, false);
    cr_assert_eq(ss->st.qlen, 1);
    connect_w(c2, "off", false, 16, NULL);
    cr_assert_eq(take_output(c2, p), 1);
    assert_publish(&p[0], 1, false, "q1");
    conn_free(c1);
    conn_free(c2);
}

static void publish_expiring(const char *topic, const char *payload, uint64_t ttl_ms)
{
    struct msg_spec sp = {
        .topic = (const uint8_t *)topic,
        .topic_len = strlen(topic),
        .payload = (const uint8_t *)payload,
        .payload_len = strlen(payload),
        .qos = 1,
        .expires_at_ms = shard.now_ms + ttl_ms,
    };
    struct msg *m = msg_create(&sp);
    cr_assert_not_null(m);
    route_publish(&shard, tenant0, m);
}

/* MQTT-3.3.2-5: a queued message whose expiry passed is not sent; the
 * others are, in order. Offline queue and the queue behind a full window. */
Test(session_outbox, expired_queued_messages_not_sent)
{
    struct out_pkt p[OUT_PKT_MAX];
    struct conn *c1 = conn_new(), *c2 = conn_new();
    struct session *ss = connect_w(c1, "exp", true, 1, NULL);
    subscribe(ss, "t", 1, 0);
    disconnect(c1, false);
    publish_expiring("t", "short", 2000);
    publish("t", "keep", 1, false);
    publish_expiring("t", "long", 60000);
    cr_assert_eq(ss->st.qlen, 3);
    advance(3000);
    connect_w(c2, "exp", false, 16, NULL);
    cr_assert_eq(take_output(c2, p), 2);
    assert_publish(&p[0], 1, false, "keep");
    assert_publish(&p[1], 1, false, "long");
    ack_all(ss);

    /* Behind a full window. */
    ss->window = 1;
    publish("t", "first", 1, false);
    publish_expiring("t", "soon", 1000);
    publish("t", "last", 1, false);
    cr_assert_eq(take_output(c2, p), 1);
    assert_publish(&p[0], 1, false, "first");
    advance(1000);
    cr_assert_eq(session_on_puback(&shard, ss, p[0].pid), 0);
    cr_assert_eq(take_output(c2, p), 1);
    assert_publish(&p[0], 1, false, "last");
    conn_free(c1);
    conn_free(c2);
}
