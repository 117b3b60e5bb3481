/* E2E, MQTT 5.0 PUBLISH: properties forwarded unchanged (Payload Format
 * Indicator, Content Type, Response Topic, Correlation Data, User Properties in
 * order), Message Expiry (dropped after expiry, remaining time forwarded, retained
 * messages expire), Topic Alias both ways, the client's Receive Maximum and
 * Maximum Packet Size, and payload format validation (0x99). Raw v5 sockets; each
 * test starts its own broker. */
#include "harness_v5.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct broker b;
static struct v5_pkt pk;

TestSuite(v5_publish, .fini = e2e_fini, .timeout = 30);

/* Lets time pass where the property under test is time itself (expiry). */
static void let_time_pass(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static int open_persistent(const char *id, const struct props *extra)
{
    struct raw_connect o = {.flags = -1, .clean = false, .id = id, .keepalive = 60};
    struct props pr;
    props_init(&pr);
    props_u32(&pr, P_SESSION_EXPIRY, 300);
    if (extra)
        props_raw(&pr, extra->buf, extra->len);
    int fd = v5_connect(&b, &o, &pr, NULL, &pk);
    cr_assert(pk.type == T_CONNACK && pk.reason == 0);
    return fd;
}

/* DISCONNECT (0x00, the session kept for its expiry) and wait until the
 * broker closes: it has detached the session. A bare close() may be seen
 * after messages that were then sent to the dying connection (onward
 * delivery started, so resent on return, expired or not). */
static void leave(int fd)
{
    static const uint8_t disconnect[] = {0xe0, 0x00};
    cr_assert(raw_send(fd, disconnect, sizeof(disconnect)) == 0);
    cr_assert(raw_wait_close(fd, E2E_WAIT_MS) == 0, "no close after DISCONNECT");
    close(fd);
}

Test(v5_publish, mqtt_3_3_2_17_properties_forwarded_unaltered_in_order)
{
    broker_start(&b, NULL);
    int sub = v5_open(&b, "sub", NULL);
    v5_subscribe(sub, 1, "req/#", 1, NULL, 1);
    int pub = v5_open(&b, "pub", NULL);
    struct props pr;
    props_init(&pr);
    props_u8(&pr, P_PAYLOAD_FORMAT, 1);
    props_str(&pr, P_CONTENT_TYPE, "application/json");
    props_str(&pr, P_RESPONSE_TOPIC, "resp/42");
    static const uint8_t corr[] = {0, 1, 0xff, 7};
    props_bin(&pr, P_CORRELATION_DATA, corr, sizeof(corr));
    props_pair(&pr, "k", "1");
    props_pair(&pr, "a", "2");
    props_pair(&pr, "k", "3"); /* a repeated name stays, in its place */
    props_pair(&pr, "", "empty name");
    cr_assert(v5_publish(pub, "req/x", "{\"q\":1}", 1, false, 1, &pr) < 0x80);
    v5_expect_publish(sub, &pk);
    cr_assert(v5_payload_is(&pk, "{\"q\":1}"));
    cr_expect_eq(v5_prop_num(&pk, P_PAYLOAD_FORMAT), 1, "MQTT-3.3.2-4");
    cr_expect(v5_prop_is(&pk, P_CONTENT_TYPE, "application/json"), "MQTT-3.3.2-20");
    cr_expect(v5_prop_is(&pk, P_RESPONSE_TOPIC, "resp/42"), "MQTT-3.3.2-15");
    const struct v5_prop *cd = v5_prop(&pk, P_CORRELATION_DATA, 0);
    cr_expect(cd && cd->len == sizeof(corr) && !memcmp(cd->data, corr, sizeof(corr)),
              "MQTT-3.3.2-16");
    static const char *const want[4][2] = {{"k", "1"}, {"a", "2"}, {"k", "3"}, {"", "empty name"}};
    cr_assert_eq(v5_prop_count(&pk, P_USER_PROPERTY), 4, "MQTT-3.3.2-17");
    for (int i = 0; i < 4; i++) {
        const struct v5_prop *up = v5_prop(&pk, P_USER_PROPERTY, i);
        bool ok = up->len == strlen(want[i][0]) && !memcmp(up->data, want[i][0], up->len) &&
                  up->len2 == strlen(want[i][1]) && !memcmp(up->data2, want[i][1], up->len2);
        cr_expect(ok, "MQTT-3.3.2-18: user property %d is '%.*s'='%.*s'", i, (int)up->len, up->data,
                  (int)up->len2, up->data2);
    }
    close(pub);
    close(sub);
    broker_stop(&b);
}

Test(v5_publish, mqtt_3_3_2_5_expired_message_not_delivered_remaining_time_forwarded)
{
    broker_start(&b, NULL);
    int sub = open_persistent("offline", NULL);
    v5_subscribe(sub, 1, "exp/t", 1, NULL, 1);
    leave(sub); /* a session gone offline, so the short one cannot start */
    int pub = v5_open(&b, "pub", NULL);
    struct props shortp, longp;
    props_init(&shortp);
    props_u32(&shortp, P_MESSAGE_EXPIRY, 1);
    props_init(&longp);
    props_u32(&longp, P_MESSAGE_EXPIRY, 30);
    cr_assert(v5_publish(pub, "exp/t", "short", 1, false, 1, &shortp) < 0x80);
    cr_assert(v5_publish(pub, "exp/t", "long", 1, false, 2, &longp) < 0x80);
    let_time_pass(2100);
    sub = open_persistent("offline", NULL);
    cr_assert(pk.session_present);
    v5_expect_publish(sub, &pk);
    cr_assert(v5_payload_is(&pk, "long"), "MQTT-3.3.2-5: an expired message was delivered");
    uint32_t left = v5_prop_num(&pk, P_MESSAGE_EXPIRY);
    /* MQTT-3.3.2-6: 30 minus the ~2 s it waited. */
    cr_expect(left >= 20 && left <= 28, "forwarded Message Expiry Interval %u", left);
    v5_expect_nothing(sub, E2E_ABSENT_MS);
    close(sub);
    close(pub);
    broker_stop(&b);
}

Test(v5_publish, mqtt_3_3_2_5_retained_messages_expire)
{
    broker_start(&b, NULL);
    int pub = v5_open(&b, "pub", NULL);
    struct props shortp, longp;
    props_init(&shortp);
    props_u32(&shortp, P_MESSAGE_EXPIRY, 1);
    props_init(&longp);
    props_u32(&longp, P_MESSAGE_EXPIRY, 30);
    cr_assert(v5_publish(pub, "ret/short", "gone", 1, true, 1, &shortp) < 0x80);
    cr_assert(v5_publish(pub, "ret/long", "kept", 1, true, 2, &longp) < 0x80);
    let_time_pass(2100);
    int sub = v5_open(&b, "late", NULL);
    v5_subscribe(sub, 1, "ret/#", 1, NULL, 1);
    v5_expect_publish(sub, &pk);
    cr_assert_str_eq(pk.topic, "ret/long", "an expired retained message was sent");
    uint32_t left = v5_prop_num(&pk, P_MESSAGE_EXPIRY);
    cr_expect(left >= 20 && left <= 28, "retained message forwarded with expiry %u", left);
    v5_expect_nothing(sub, E2E_ABSENT_MS);
    close(sub);
    close(pub);
    broker_stop(&b);
}

Test(v5_publish, mqtt_3_3_2_12_client_topic_alias_accepted)
{
    broker_start(&b, "mqtt.topic_alias_maximum=2", NULL);
    int sub = v5_open(&b, "sub", NULL);
    v5_subscribe(sub, 1, "alias/#", 1, NULL, 1);
    int pub = v5_open(&b, "pub", NULL);
    struct props pr;
    props_init(&pr);
    props_u16(&pr, P_TOPIC_ALIAS, 2);
    cr_assert(v5_publish(pub, "alias/one", "set", 1, false, 1, &pr) < 0x80);
    cr_assert(v5_publish(pub, "", "use", 1, false, 2, &pr) < 0x80);
    /* Re-mapping an alias to another topic. */
    cr_assert(v5_publish(pub, "alias/two", "remap", 1, false, 3, &pr) < 0x80);
    cr_assert(v5_publish(pub, "", "use2", 1, false, 4, &pr) < 0x80);
    static const char *const want[4][2] = {
        {"alias/one", "set"}, {"alias/one", "use"}, {"alias/two", "remap"}, {"alias/two", "use2"}};
    for (int i = 0; i < 4; i++) {
        v5_expect_publish(sub, &pk);
        cr_expect_str_eq(pk.topic, want[i][0]);
        cr_expect(v5_payload_is(&pk, want[i][1]));
        /* The subscriber allowed no aliases: MQTT-3.3.2-11 / MQTT-3.1.2-27. */
        cr_expect_eq(v5_prop_count(&pk, P_TOPIC_ALIAS), 0);
    }
    close(pub);
    /* MQTT-3.3.2-7: aliases die with the connection. */
    pub = v5_open(&b, "pub", NULL);
    struct pkt p;
    pkt_publish5(&p, "", "stale", 5, 1, false, 5, &pr);
    cr_assert(raw_send_pkt(pub, &p) == 0);
    v5_expect_disconnect(pub, 0x82, -1);
    close(pub);
    close(sub);
    broker_stop(&b);
}

Test(v5_publish, mqtt_3_3_2_11_server_topic_alias_within_client_maximum)
{
    broker_start(&b, NULL);
    struct props cp;
    props_init(&cp);
    props_u16(&cp, P_TOPIC_ALIAS_MAXIMUM, 2);
    int sub = v5_open(&b, "sub", &cp);
    v5_subscribe(sub, 1, "ta/#", 0, NULL, 0);
    int pub = v5_open(&b, "pub", NULL);
    static const char *const topics[] = {"ta/a", "ta/b", "ta/c", "ta/a", "ta/a",
                                         "ta/b", "ta/c", "ta/c", "ta/a", "ta/a"};
    char known[3][16] = {"", "", ""}; /* alias -> topic, as the client tracks it */
    int empty_topics = 0;
    for (int i = 0; i < 10; i++)
        v5_publish(pub, topics[i], "x", 0, false, 0, NULL);
    for (int i = 0; i < 10; i++) {
        v5_expect_publish(sub, &pk);
        const struct v5_prop *a = v5_prop(&pk, P_TOPIC_ALIAS, 0);
        const char *topic = pk.topic;
        if (a) {
            cr_assert(a->num >= 1 && a->num <= 2, "MQTT-3.3.2-11: alias %u > maximum 2", a->num);
            if (pk.topic[0])
                snprintf(known[a->num], sizeof(known[0]), "%.15s", pk.topic);
            else
                empty_topics++;
            topic = known[a->num];
        }
        cr_assert(*topic, "empty topic with an alias never set");
        cr_expect_str_eq(topic, topics[i], "message %d", i);
    }
    if (!b.mosquitto) /* ringmq uses aliases to save bytes on repeated topics */
        cr_expect(empty_topics > 0, "no PUBLISH used an alias instead of the topic");
    close(pub);
    close(sub);
    broker_stop(&b);
}

Test(v5_publish, mqtt_3_3_4_9_client_receive_maximum_limits_unacked_sends)
{
    broker_start(&b, NULL);
    struct props cp;
    props_init(&cp);
    props_u16(&cp, P_RECEIVE_MAXIMUM, 2);
    int sub = v5_open(&b, "slow", &cp);
    v5_subscribe(sub, 1, "rm/t", 1, NULL, 1);
    int pub = v5_open(&b, "pub", NULL);
    for (int i = 0; i < 5; i++) {
        char payload[8];
        snprintf(payload, sizeof(payload), "%d", i);
        cr_assert(v5_publish(pub, "rm/t", payload, 1, false, (uint16_t)(i + 1), NULL) < 0x80);
    }
    uint16_t mids[5];
    for (int i = 0; i < 2; i++) {
        v5_expect_publish(sub, &pk);
        mids[i] = pk.mid;
    }
    v5_expect_nothing(sub, E2E_ABSENT_MS); /* two unacknowledged: the window is full */
    struct pkt p;
    for (int i = 2; i < 5; i++) {
        pkt_ack5(&p, 0x40, mids[i - 2], 0, NULL);
        cr_assert(raw_send_pkt(sub, &p) == 0);
        v5_expect_publish(sub, &pk);
        char want[8];
        snprintf(want, sizeof(want), "%d", i);
        cr_assert(v5_payload_is(&pk, want), "message %d out of order", i);
        mids[i] = pk.mid;
    }
    close(pub);
    close(sub);
    broker_stop(&b);
}

Test(v5_publish, mqtt_3_1_2_25_too_large_for_client_dropped_for_it)
{
    broker_start(&b, NULL);
    struct props cp;
    props_init(&cp);
    props_u32(&cp, P_MAXIMUM_PACKET_SIZE, 200);
    int small = v5_open(&b, "small", &cp);
    v5_subscribe(small, 1, "mps/t", 1, NULL, 1);
    int big = v5_open(&b, "big", NULL);
    v5_subscribe(big, 1, "mps/t", 1, NULL, 1);
    int pub = v5_open(&b, "pub", NULL);
    char large[501];
    memset(large, 'L', 500);
    large[500] = 0;
    cr_assert(v5_publish(pub, "mps/t", "before", 1, false, 1, NULL) < 0x80);
    cr_assert(v5_publish(pub, "mps/t", large, 1, false, 2, NULL) < 0x80);
    cr_assert(v5_publish(pub, "mps/t", "after", 1, false, 3, NULL) < 0x80);
    static const char *const want_small[] = {"before", "after"};
    for (int i = 0; i < 2; i++) {
        v5_expect_publish(small, &pk);
        cr_assert(pk.rawlen <= 200, "MQTT-3.1.2-24: %zu-byte packet to a 200-byte client",
                  pk.rawlen);
        cr_assert(v5_payload_is(&pk, want_small[i]), "MQTT-3.1.2-25");
    }
    /* Only that subscriber lost it. */
    const char *want_big[] = {"before", large, "after"};
    struct pkt p;
    for (int i = 0; i < 3; i++) {
        v5_expect_publish(big, &pk);
        cr_assert(v5_payload_is(&pk, want_big[i]));
        pkt_ack5(&p, 0x40, pk.mid, 0, NULL);
        raw_send_pkt(big, &p);
    }
    close(pub);
    close(big);
    close(small);
    broker_stop(&b);
}

/* MQTT-3.1.2-25 with Topic Alias (3.3.2.3.4): a PUBLISH dropped as too large for
 * the client never told it an alias, so the next message on that topic must
 * carry the topic name, not an alias the client has never seen. */
Test(v5_publish, mqtt_3_1_2_25_dropped_publish_does_not_assign_topic_alias)
{
    broker_start(&b, NULL);
    struct props cp;
    props_init(&cp);
    props_u16(&cp, P_TOPIC_ALIAS_MAXIMUM, 2);
    props_u32(&cp, P_MAXIMUM_PACKET_SIZE, 200);
    int sub = v5_open(&b, "sub", &cp);
    v5_subscribe(sub, 1, "tad/#", 0, NULL, 0);
    int pub = v5_open(&b, "pub", NULL);
    char large[501];
    memset(large, 'L', 500);
    large[500] = 0;
    v5_publish(pub, "tad/x", large, 0, false, 0, NULL);
    v5_publish(pub, "tad/x", "after", 0, false, 0, NULL);
    v5_expect_publish(sub, &pk);
    cr_assert(v5_payload_is(&pk, "after"), "MQTT-3.1.2-25: the large one was dropped");
    cr_assert_str_eq(pk.topic, "tad/x", "alias-only PUBLISH for an alias the client never saw");
    close(pub);
    close(sub);
    broker_stop(&b);
}

/* MQTT-3.1.2-25 on reconnection: an unacknowledged message that no longer fits
 * the client's new Maximum Packet Size is discarded as if sent; it must not hold
 * a slot of the client's Receive Maximum forever (with Receive Maximum 1,
 * nothing would ever be delivered again). */
Test(v5_publish, mqtt_3_1_2_25_resend_too_large_after_reconnect_frees_window)
{
    broker_start(&b, NULL);
    struct props cp;
    props_init(&cp);
    props_u16(&cp, P_RECEIVE_MAXIMUM, 1);
    int sub = open_persistent("shrink", &cp);
    v5_subscribe(sub, 1, "shr/t", 1, NULL, 1);
    int pub = v5_open(&b, "pub", NULL);
    char large[501];
    memset(large, 'L', 500);
    large[500] = 0;
    cr_assert(v5_publish(pub, "shr/t", large, 1, false, 1, NULL) < 0x80);
    v5_expect_publish(sub, &pk); /* not acknowledged */
    close(sub);
    props_u32(&cp, P_MAXIMUM_PACKET_SIZE, 200);
    sub = open_persistent("shrink", &cp);
    cr_assert(pk.session_present);
    cr_assert(v5_publish(pub, "shr/t", "after", 1, false, 2, NULL) < 0x80);
    v5_expect_publish(sub, &pk);
    cr_assert(pk.rawlen <= 200, "MQTT-3.1.2-24: %zu-byte packet to a 200-byte client", pk.rawlen);
    cr_assert(v5_payload_is(&pk, "after"), "MQTT-3.1.2-25");
    close(pub);
    close(sub);
    broker_stop(&b);
}

/* MQTT-3.3.4-9 on reconnection: unacknowledged messages resent with DUP count
 * against the Receive Maximum of the new connection; with 5 unacknowledged and a
 * new Receive Maximum of 2, two are resent and each acknowledgement releases the
 * next, in order (MQTT-4.6.0-2). */
Test(v5_publish, mqtt_3_3_4_9_resend_on_reconnect_within_new_receive_maximum)
{
    broker_start(&b, NULL);
    struct props cp;
    props_init(&cp);
    props_u16(&cp, P_RECEIVE_MAXIMUM, 5);
    int sub = open_persistent("rmax", &cp);
    v5_subscribe(sub, 1, "rmr/t", 1, NULL, 1);
    int pub = v5_open(&b, "pub", NULL);
    for (int i = 0; i < 5; i++) {
        char payload[8];
        snprintf(payload, sizeof(payload), "%d", i);
        cr_assert(v5_publish(pub, "rmr/t", payload, 1, false, (uint16_t)(i + 1), NULL) < 0x80);
    }
    for (int i = 0; i < 5; i++)
        v5_expect_publish(sub, &pk); /* none acknowledged */
    close(sub);
    props_init(&cp);
    props_u16(&cp, P_RECEIVE_MAXIMUM, 2);
    sub = open_persistent("rmax", &cp);
    cr_assert(pk.session_present);
    struct pkt p;
    uint16_t mids[5];
    for (int i = 0; i < 5; i++) {
        v5_expect_publish(sub, &pk);
        char want[8];
        snprintf(want, sizeof(want), "%d", i);
        cr_assert(v5_payload_is(&pk, want), "message %d out of order", i);
        cr_assert(pk.dup, "MQTT-3.3.1-1: a resent PUBLISH has DUP set");
        mids[i] = pk.mid;
        if (i >= 1) {
            /* Two unacknowledged: the new Receive Maximum is reached. */
            v5_expect_nothing(sub, E2E_ABSENT_MS);
            pkt_ack5(&p, 0x40, mids[i - 1], 0, NULL);
            cr_assert(raw_send_pkt(sub, &p) == 0);
        }
    }
    close(pub);
    close(sub);
    broker_stop(&b);
}

/* MQTT-3.3.4-9 with QoS 2: a message held back at reconnection that the client
 * acknowledges with PUBREC anyway (it had received it) goes on to PUBREL and is
 * never resent; the held one after it goes out once a slot frees. */
Test(v5_publish, mqtt_3_3_4_9_held_qos2_message_acknowledged_before_resend)
{
    broker_start(&b, NULL);
    struct props cp;
    props_init(&cp);
    props_u16(&cp, P_RECEIVE_MAXIMUM, 3);
    int sub = open_persistent("rmq2", &cp);
    v5_subscribe(sub, 1, "rmq/t", 2, NULL, 2);
    int pub = v5_open(&b, "pub", NULL);
    uint16_t mids[3];
    for (int i = 0; i < 3; i++) {
        char payload[8];
        snprintf(payload, sizeof(payload), "%d", i);
        cr_assert(v5_publish(pub, "rmq/t", payload, 2, false, (uint16_t)(i + 1), NULL) < 0x80);
    }
    for (int i = 0; i < 3; i++) {
        v5_expect_publish(sub, &pk);
        mids[i] = pk.mid;
    }
    close(sub);
    props_init(&cp);
    props_u16(&cp, P_RECEIVE_MAXIMUM, 1);
    sub = open_persistent("rmq2", &cp);
    v5_expect_publish(sub, &pk);
    cr_assert(v5_payload_is(&pk, "0") && pk.dup);
    v5_expect_nothing(sub, E2E_ABSENT_MS);
    struct pkt p;
    pkt_ack5(&p, 0x50, mids[1], 0, NULL); /* PUBREC for the held "1" */
    cr_assert(raw_send_pkt(sub, &p) == 0);
    v5_expect(sub, T_PUBREL, &pk);
    cr_assert_eq(pk.mid, mids[1]);
    pkt_ack5(&p, 0x50, mids[0], 0, NULL);
    cr_assert(raw_send_pkt(sub, &p) == 0);
    v5_expect(sub, T_PUBREL, &pk);
    cr_assert_eq(pk.mid, mids[0]);
    pkt_ack5(&p, 0x70, mids[0], 0, NULL);
    cr_assert(raw_send_pkt(sub, &p) == 0);
    v5_expect_nothing(sub, E2E_ABSENT_MS); /* "1" holds the slot until PUBCOMP */
    pkt_ack5(&p, 0x70, mids[1], 0, NULL);
    cr_assert(raw_send_pkt(sub, &p) == 0);
    v5_expect_publish(sub, &pk);
    cr_assert(v5_payload_is(&pk, "2") && pk.dup, "the held \"2\" is resent, \"1\" is not");
    v5_expect_nothing(sub, E2E_ABSENT_MS);
    close(pub);
    close(sub);
    broker_stop(&b);
}

/* MQTT-3.4.2-2, MQTT-3.1.2-24: the Reason String is left out when it would make
 * the PUBACK larger than the client's Maximum Packet Size. */
Test(v5_publish, mqtt_3_4_2_2_reason_string_only_within_client_maximum_packet_size)
{
    if (e2e_mosquitto())
        cr_skip_test("mosquitto has no validate_payload_format setting");
    broker_start(&b, "mqtt.validate_payload_format=true", NULL);
    struct props cp;
    props_init(&cp);
    props_u32(&cp, P_MAXIMUM_PACKET_SIZE, 30);
    int pub = v5_open(&b, "pub", &cp);
    struct props pr;
    props_init(&pr);
    props_u8(&pr, P_PAYLOAD_FORMAT, 1);
    struct pkt p;
    pkt_publish5(&p, "utf/t", "\xc3\x28 bad", 6, 1, false, 1, &pr);
    cr_assert(raw_send_pkt(pub, &p) == 0);
    v5_expect(pub, T_PUBACK, &pk);
    cr_assert_eq(pk.reason, 0x99);
    cr_assert(pk.rawlen <= 30, "MQTT-3.4.2-2: %zu-byte PUBACK to a 30-byte client", pk.rawlen);
    close(pub);
    broker_stop(&b);
}

Test(v5_publish, invalid_utf8_payload_refused_with_0x99_when_validating)
{
    if (e2e_mosquitto())
        cr_skip_test("mosquitto has no validate_payload_format setting");
    broker_start(&b, "mqtt.validate_payload_format=true", NULL);
    int sub = v5_open(&b, "sub", NULL);
    v5_subscribe(sub, 1, "utf/t", 1, NULL, 1);
    int pub = v5_open(&b, "pub", NULL);
    struct props pr;
    props_init(&pr);
    props_u8(&pr, P_PAYLOAD_FORMAT, 1);
    cr_assert_eq(v5_publish(pub, "utf/t", "\xc3\x28 bad", 1, false, 1, &pr), 0x99);
    cr_assert(v5_publish(pub, "utf/t", "gr\xc3\xbc\xc3\x9f ok", 1, false, 2, &pr) < 0x80);
    v5_expect_publish(sub, &pk);
    cr_assert(v5_payload_is(&pk, "gr\xc3\xbc\xc3\x9f ok"), "the invalid payload was forwarded");
    close(pub);
    close(sub);
    broker_stop(&b);
}

Test(v5_publish, invalid_utf8_payload_forwarded_when_not_validating)
{
    if (e2e_mosquitto())
        cr_skip_test("mosquitto has no validate_payload_format setting");
    broker_start(&b, NULL);
    int sub = v5_open(&b, "sub", NULL);
    v5_subscribe(sub, 1, "utf/t", 1, NULL, 1);
    int pub = v5_open(&b, "pub", NULL);
    struct props pr;
    props_init(&pr);
    props_u8(&pr, P_PAYLOAD_FORMAT, 1);
    cr_assert(v5_publish(pub, "utf/t", "\xc3\x28 bad", 1, false, 1, &pr) < 0x80);
    v5_expect_publish(sub, &pk);
    cr_assert(v5_payload_is(&pk, "\xc3\x28 bad"));
    close(pub);
    close(sub);
    broker_stop(&b);
}
