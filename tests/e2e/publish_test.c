/* E2E: PUBLISH in both directions at QoS 0/1/2 with full acknowledgement flows
 * (raw sockets check the exact packets), QoS downgrade to the subscription's QoS,
 * QoS 2 exactly-once under a resent PUBLISH, per-topic ordering, payload edge
 * cases. Each test starts its own broker. */
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct broker b;

TestSuite(publish, .fini = e2e_fini, .timeout = 30);

Test(publish, roundtrip_qos0_qos1_qos2)
{
    broker_start(&b, NULL);
    struct client *c = client_open(&b, "rt", true);
    for (int q = 0; q <= 2; q++) {
        char topic[16];
        snprintf(topic, sizeof(topic), "rt/%d", q);
        cr_assert(client_subscribe(c, topic, q) == q, "MQTT-3.9.3-2: granted QoS");
        client_publish(c, topic, "payload", 7, q, false);
        int got = -1;
        client_expect_message(c, topic, "payload", &got, NULL);
        cr_assert(got == q, "delivered at QoS %d, want %d", got, q);
    }
    client_disconnect(c);
    broker_stop(&b);
}

Test(publish, mqtt_3_8_4_6_delivered_qos_is_min_of_publish_and_subscription)
{
    broker_start(&b, NULL);
    struct client *sub[3];
    for (int s = 0; s <= 2; s++) {
        char id[8];
        snprintf(id, sizeof(id), "sub%d", s);
        sub[s] = client_open(&b, id, true);
        cr_assert(client_subscribe(sub[s], "down/t", s) == s);
    }
    struct client *pub = client_open(&b, "pub", true);
    for (int p = 0; p <= 2; p++) {
        char payload[8];
        snprintf(payload, sizeof(payload), "p%d", p);
        client_publish(pub, "down/t", payload, 2, p, false);
        for (int s = 0; s <= 2; s++) {
            int got = -1;
            client_expect_message(sub[s], "down/t", payload, &got, NULL);
            int want = p < s ? p : s;
            cr_assert(got == want, "published QoS %d, subscribed %d: delivered %d, want %d", p, s,
                      got, want);
        }
    }
    for (int s = 0; s <= 2; s++)
        client_disconnect(sub[s]);
    client_disconnect(pub);
    broker_stop(&b);
}

Test(publish, mqtt_3_3_4_1_raw_qos1_puback_even_without_subscribers)
{
    broker_start(&b, NULL);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "rawpub"};
    int fd = raw_mqtt_open(&b, &o);
    struct pkt p;
    pkt_publish(&p, "nobody/listens", "x", 1, 1, false, false, 0x1234);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    raw_expect_ack(fd, 0x40, 0x1234); /* MQTT-4.3.2-2 */
    close(fd);
    broker_stop(&b);
}

Test(publish, mqtt_4_3_3_2_raw_qos2_inbound_flow)
{
    broker_start(&b, NULL);
    struct client *sub = client_open(&b, "sub", true);
    cr_assert(client_subscribe(sub, "q2/in", 2) == 2);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "rawpub"};
    int fd = raw_mqtt_open(&b, &o);
    struct pkt p;
    pkt_publish(&p, "q2/in", "two", 3, 2, false, false, 0x0102);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    raw_expect_ack(fd, 0x50, 0x0102); /* PUBREC */
    pkt_ack(&p, 0x62, 0x0102);        /* PUBREL, flags 0010 (MQTT-3.6.1-1) */
    cr_assert(raw_send_pkt(fd, &p) == 0);
    raw_expect_ack(fd, 0x70, 0x0102); /* PUBCOMP */
    int qos = -1;
    client_expect_message(sub, "q2/in", "two", &qos, NULL);
    cr_assert(qos == 2);
    close(fd);
    client_disconnect(sub);
    broker_stop(&b);
}

/* Reads one packet and asserts its bytes. */
static void expect_bytes(int fd, const uint8_t *want, size_t n)
{
    uint8_t buf[64];
    int len = raw_read_packet(fd, buf, sizeof(buf), E2E_WAIT_MS);
    cr_assert(len == (int)n && memcmp(buf, want, n) == 0, "got %d bytes (first 0x%02x)", len,
              len > 0 ? buf[0] : 0);
}

/* MQTT 3.1 §2.1: a 3.1 client re-delivering PUBREL, SUBSCRIBE or UNSUBSCRIBE
 * sets DUP on it (0x6a, 0x8a, 0xaa). 3.1.1 fixed those flags at 0010
 * (MQTT-3.6.1-1, MQTT-3.8.1-1, MQTT-3.10.1-1), a rule for 3.1.1 clients
 * only: the 3.1 client is answered, not disconnected. */
Test(publish, mqtt_3_1_dup_on_resent_pubrel_subscribe_unsubscribe_accepted)
{
    broker_start(&b, NULL);
    struct raw_connect o = {
        .proto_name = "MQIsdp", .level = 3, .flags = -1, .clean = true, .id = "v31dup"};
    int fd = raw_mqtt_open(&b, &o);
    struct pkt p;
    pkt_init(&p, 0x8a); /* SUBSCRIBE, DUP + QoS 1 */
    pkt_u16(&p, 2);
    pkt_str(&p, "v31/sub");
    pkt_u8(&p, 1);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    expect_bytes(fd, (const uint8_t[]){0x90, 0x03, 0x00, 0x02, 0x01}, 5);
    pkt_publish(&p, "v31/pub", "x", 1, 2, false, false, 1);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    expect_bytes(fd, (const uint8_t[]){0x50, 0x02, 0x00, 0x01}, 4);
    pkt_ack(&p, 0x6a, 1); /* PUBREL, DUP + QoS 1 */
    cr_assert(raw_send_pkt(fd, &p) == 0);
    expect_bytes(fd, (const uint8_t[]){0x70, 0x02, 0x00, 0x01}, 4);
    pkt_init(&p, 0xaa); /* UNSUBSCRIBE, DUP + QoS 1 */
    pkt_u16(&p, 3);
    pkt_str(&p, "v31/sub");
    cr_assert(raw_send_pkt(fd, &p) == 0);
    expect_bytes(fd, (const uint8_t[]){0xb0, 0x02, 0x00, 0x03}, 4);
    cr_assert(raw_send(fd, (const uint8_t[]){0xc0, 0x00}, 2) == 0);
    expect_bytes(fd, (const uint8_t[]){0xd0, 0x00}, 2); /* still connected */
    close(fd);
    broker_stop(&b);
}

Test(publish, mqtt_4_3_2_1_raw_qos1_outbound_flow)
{
    broker_start(&b, NULL);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "rawsub"};
    int fd = raw_mqtt_open(&b, &o);
    raw_subscribe(fd, 1, "q1/out", 1);
    struct client *pub = client_open(&b, "pub", true);
    struct raw_publish rp;
    struct pkt p;
    for (int i = 0; i < 3; i++) {
        client_publish(pub, "q1/out", "one", 3, 1, false);
        raw_expect_publish(fd, &rp);
        cr_assert(rp.qos == 1 && !rp.dup && !rp.retain, "qos %d dup %d retain %d", rp.qos, rp.dup,
                  rp.retain);
        cr_assert(rp.mid != 0, "MQTT-2.3.1-1: non-zero packet id");
        cr_assert_str_eq(rp.topic, "q1/out");
        cr_assert(rp.len == 3 && !memcmp(rp.payload, "one", 3));
        pkt_ack(&p, 0x40, rp.mid);
        cr_assert(raw_send_pkt(fd, &p) == 0);
    }
    client_disconnect(pub);
    close(fd);
    broker_stop(&b);
}

Test(publish, mqtt_4_3_3_1_raw_qos2_outbound_flow)
{
    broker_start(&b, NULL);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "rawsub"};
    int fd = raw_mqtt_open(&b, &o);
    raw_subscribe(fd, 1, "q2/out", 2);
    struct client *pub = client_open(&b, "pub", true);
    struct raw_publish rp;
    struct pkt p;
    for (int i = 0; i < 3; i++) {
        client_publish(pub, "q2/out", "two", 3, 2, false);
        raw_expect_publish(fd, &rp);
        cr_assert(rp.qos == 2 && !rp.dup, "qos %d dup %d", rp.qos, rp.dup);
        cr_assert(rp.mid != 0, "MQTT-2.3.1-1");
        pkt_ack(&p, 0x50, rp.mid); /* PUBREC */
        cr_assert(raw_send_pkt(fd, &p) == 0);
        raw_expect_ack(fd, 0x62, rp.mid); /* PUBREL with flags 0010 (MQTT-3.6.1-1) */
        pkt_ack(&p, 0x70, rp.mid);        /* PUBCOMP */
        cr_assert(raw_send_pkt(fd, &p) == 0);
    }
    client_disconnect(pub);
    close(fd);
    broker_stop(&b);
}

Test(publish, mqtt_4_3_3_2_qos2_resent_publish_delivered_once)
{
    broker_start(&b, NULL);
    struct client *sub = client_open(&b, "sub", true);
    cr_assert(client_subscribe(sub, "once/t", 2) == 2);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "rawpub"};
    int fd = raw_mqtt_open(&b, &o);
    struct pkt p;
    pkt_publish(&p, "once/t", "m1", 2, 2, false, false, 7);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    raw_expect_ack(fd, 0x50, 7);
    /* The publisher "lost" the PUBREC and resends with DUP: the broker must answer
     * PUBREC again and not deliver a second copy. */
    pkt_publish(&p, "once/t", "m1", 2, 2, false, true, 7);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    raw_expect_ack(fd, 0x50, 7);
    pkt_ack(&p, 0x62, 7);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    raw_expect_ack(fd, 0x70, 7);
    client_expect_message(sub, "once/t", "m1", NULL, NULL);
    cr_assert(client_no_message(sub, E2E_ABSENT_MS), "QoS 2 message delivered twice");
    /* After PUBCOMP the same packet id starts a new publication. */
    pkt_publish(&p, "once/t", "m2", 2, 2, false, false, 7);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    raw_expect_ack(fd, 0x50, 7);
    pkt_ack(&p, 0x62, 7);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    raw_expect_ack(fd, 0x70, 7);
    client_expect_message(sub, "once/t", "m2", NULL, NULL);
    close(fd);
    client_disconnect(sub);
    broker_stop(&b);
}

/* Publishes n messages "0".."n-1" without waiting between them and checks that
 * they arrive complete and in order. */
static void check_order(int n, int qos)
{
    struct client *sub = client_open(&b, "sub", true);
    cr_assert(client_subscribe(sub, "order/t", qos) == qos);
    struct client *pub = client_open(&b, "pub", true);
    char payload[16];
    for (int i = 0; i < n; i++) {
        int len = snprintf(payload, sizeof(payload), "%d", i);
        client_publish_async(pub, "order/t", payload, len, qos, false);
    }
    client_wait_published(pub, n);
    for (int i = 0; i < n; i++) {
        struct msg m;
        cr_assert(client_wait_message(sub, &m, E2E_WAIT_MS) == 0, "message %d of %d missing", i, n);
        int got = atoi((char *)m.payload);
        msg_free(&m);
        cr_assert(got == i, "MQTT-4.6.0-6: got message %d where %d was due", got, i);
    }
    client_disconnect(pub);
    client_disconnect(sub);
}

Test(publish, mqtt_4_6_0_6_ordered_topic_1000_qos1)
{
    broker_start(&b, NULL);
    check_order(1000, 1);
    broker_stop(&b);
}

Test(publish, mqtt_4_6_0_6_ordered_topic_300_qos2)
{
    broker_start(&b, NULL);
    check_order(300, 2);
    broker_stop(&b);
}

Test(publish, large_binary_payload_intact)
{
    broker_start(&b, NULL);
    enum { LEN = 200000 }; /* spans many receive buffers */
    uint8_t *data = malloc(LEN);
    cr_assert(data);
    for (int i = 0; i < LEN; i++)
        data[i] = (uint8_t)(i * 7 + i / 256);
    struct client *c = client_open(&b, "big", true);
    cr_assert(client_subscribe(c, "big/t", 1) == 1);
    client_publish(c, "big/t", data, LEN, 1, false);
    struct msg m;
    cr_assert(client_wait_message(c, &m, E2E_WAIT_MS) == 0);
    cr_assert(m.len == LEN, "length %d", m.len);
    cr_assert(!memcmp(m.payload, data, LEN), "payload corrupted");
    msg_free(&m);
    free(data);
    client_disconnect(c);
    broker_stop(&b);
}

Test(publish, zero_length_payload_delivered)
{
    broker_start(&b, NULL);
    struct client *c = client_open(&b, "empty", true);
    cr_assert(client_subscribe(c, "empty/t", 1) == 1);
    client_publish(c, "empty/t", NULL, 0, 1, false);
    client_expect_message(c, "empty/t", "", NULL, NULL);
    client_disconnect(c);
    broker_stop(&b);
}

Test(publish, utf8_topic_with_spaces_kept_exactly)
{
    broker_start(&b, NULL);
    const char *topic = "caf\xc3\xa9 / \xe2\x82\xac/\xf0\x9f\x98\x80 x";
    struct client *c = client_open(&b, "utf8", true);
    cr_assert(client_subscribe(c, topic, 0) == 0);
    client_publish(c, topic, "u", 1, 0, false);
    client_expect_message(c, topic, "u", NULL, NULL);
    client_disconnect(c);
    broker_stop(&b);
}

Test(publish, mqtt_4_7_3_4_topics_are_case_sensitive)
{
    broker_start(&b, NULL);
    struct client *c = client_open(&b, "case", true);
    cr_assert(client_subscribe(c, "ACCOUNTS", 0) == 0);
    client_publish(c, "Accounts", "no", 2, 0, false);
    client_publish(c, "ACCOUNTS", "yes", 3, 0, false);
    client_expect_message(c, "ACCOUNTS", "yes", NULL, NULL);
    cr_assert(client_no_message(c, E2E_ABSENT_MS));
    client_disconnect(c);
    broker_stop(&b);
}
