/* E2E, MQTT-3.1.2-24 (5.0): the server never sends a packet larger than the
 * Maximum Packet Size the client gave in CONNECT. A CONNACK leaves out what may
 * be left out (Reason String, User Properties, then Topic Alias Maximum) and is
 * not sent at all when it still does not fit: the connection closes, taking no
 * session over. SUBACK and UNSUBACK have nothing to leave out: the client gets
 * DISCONNECT 0x95 and the packet has no effect. PUBACK and PUBREC lose their
 * Reason String and then their empty Property Length, DISCONNECT its Reason
 * String, and an AUTH that cannot fit closes the connection.
 * Raw v5 sockets. Every packet read is checked against the client's limit; the
 * exact sizes are ringmqd's: its defaults (Receive Maximum 1024, Maximum Packet
 * Size 1048576, Topic Alias Maximum 64) make a 16-byte CONNACK, 13 without the
 * Topic Alias Maximum. */
#include "harness_v5.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct broker b;
static struct v5_pkt pk;
static struct pkt p;

TestSuite(v5_maxpacket, .fini = e2e_fini, .timeout = 60);

static void ringmq_only(const char *why)
{
    if (e2e_mosquitto())
        cr_skip_test("%s", why);
}

/* Reads the next packet (0: the server closed instead) and asserts that it
 * fits the client's limit `mps`. */
static int read_within(int fd, uint32_t mps)
{
    int n = v5_read(fd, &pk, E2E_WAIT_MS);
    cr_assert(n >= 0, "nothing from the server (%d)", n);
    cr_assert(n <= (int)mps,
              "MQTT-3.1.2-24: a %d-byte packet (type %d) to a client whose limit is %u", n, pk.type,
              mps);
    return n;
}

/* CONNECT with Maximum Packet Size `mps` (0: none) and Session Expiry `expiry`
 * (< 0: none); the answer is in pk and *n (0: closed without one). */
static int connect_mps(struct raw_connect *o, uint32_t mps, long expiry, int *n)
{
    struct props pr;
    props_init(&pr);
    if (mps)
        props_u32(&pr, P_MAXIMUM_PACKET_SIZE, mps);
    if (expiry >= 0)
        props_u32(&pr, P_SESSION_EXPIRY, (uint32_t)expiry);
    pkt_connect5(&p, o, &pr, NULL);
    int fd = raw_open(&b);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    *n = read_within(fd, mps ? mps : UINT32_MAX >> 1);
    return fd;
}

/* A clean connection with Maximum Packet Size `mps`, asserting CONNACK 0. */
static int open_mps(const char *id, uint32_t mps)
{
    struct raw_connect o = {.flags = -1, .clean = true, .id = id, .keepalive = 60};
    int n;
    int fd = connect_mps(&o, mps, -1, &n);
    cr_assert(n > 0 && pk.type == T_CONNACK && pk.reason == 0, "no CONNACK 0 for %s (limit %u)", id,
              mps);
    return fd;
}

Test(v5_maxpacket, mqtt_3_1_2_24_connack_whole_when_it_fits)
{
    ringmq_only("exact CONNACK sizes are ringmqd's");
    broker_start(&b, NULL);
    uint32_t limits[] = {0, 16};
    for (size_t i = 0; i < 2; i++) {
        int fd = open_mps("whole", limits[i]);
        cr_assert_eq(pk.rawlen, 16);
        cr_assert_eq(v5_prop_num(&pk, P_RECEIVE_MAXIMUM), 1024);
        cr_assert_eq(v5_prop_num(&pk, P_MAXIMUM_PACKET_SIZE), 1048576);
        cr_assert_eq(v5_prop_num(&pk, P_TOPIC_ALIAS_MAXIMUM), 64);
        close(fd);
    }
    broker_stop(&b);
}

/* Without Topic Alias Maximum the client may use no aliases (MQTT-3.2.2-17),
 * and the server accepts none: the DISCONNECT 0x94 that says so fits too. */
Test(v5_maxpacket, mqtt_3_1_2_24_connack_leaves_out_topic_alias_maximum)
{
    ringmq_only("exact CONNACK sizes are ringmqd's");
    broker_start(&b, NULL);
    uint32_t limits[] = {15, 14, 13};
    int fd = -1;
    for (size_t i = 0; i < 3; i++) {
        if (fd >= 0)
            close(fd);
        fd = open_mps("small", limits[i]);
        cr_assert_eq(pk.rawlen, 13, "limit %u: %zu-byte CONNACK", limits[i], pk.rawlen);
        cr_assert_null(v5_prop(&pk, P_TOPIC_ALIAS_MAXIMUM, 0));
        cr_assert_eq(v5_prop_num(&pk, P_RECEIVE_MAXIMUM), 1024);
        cr_assert_eq(v5_prop_num(&pk, P_MAXIMUM_PACKET_SIZE), 1048576);
    }
    struct props pr;
    props_init(&pr);
    props_u16(&pr, P_TOPIC_ALIAS, 1);
    pkt_publish5(&p, "a/t", "x", 1, 0, false, 0, &pr);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    cr_assert(read_within(fd, 13) > 0);
    cr_assert(pk.type == T_DISCONNECT && pk.reason == 0x94, "type %d reason 0x%02x", pk.type,
              pk.reason);
    cr_assert_eq(v5_prop_count(&pk, P_REASON_STRING), 0, "MQTT-3.14.2-3");
    cr_assert(raw_wait_close(fd, E2E_WAIT_MS) == 0);
    close(fd);
    /* With room, the same DISCONNECT says why (alias 65: over the maximum 64). */
    fd = open_mps("roomy", 200);
    props_init(&pr);
    props_u16(&pr, P_TOPIC_ALIAS, 65);
    pkt_publish5(&p, "a/t", "x", 1, 0, false, 0, &pr);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    v5_expect_disconnect(fd, 0x94, 1);
    close(fd);
    broker_stop(&b);
}

/* A CONNACK that cannot fit is not sent: the connection is closed and the
 * session of the same client id, connected elsewhere, is not taken over. */
Test(v5_maxpacket, mqtt_3_1_2_24_connack_that_cannot_fit_is_not_sent)
{
    broker_start(&b, NULL);
    int first = v5_open(&b, "dev", NULL);
    uint32_t limits[] = {2, 5, 10, 12};
    for (size_t i = 0; i < 4; i++) {
        if (b.mosquitto && limits[i] > 5)
            continue; /* mosquitto's CONNACK is smaller than ringmqd's */
        struct raw_connect o = {.flags = -1, .clean = true, .id = "dev", .keepalive = 60};
        int n;
        int fd = connect_mps(&o, limits[i], -1, &n);
        cr_assert_eq(n, 0, "limit %u: a %d-byte packet instead of a close", limits[i], n);
        close(fd);
    }
    /* MQTT-3.1.4-3 did not happen: the first connection still works. */
    v5_expect_nothing(first, E2E_ABSENT_MS);
    v5_subscribe(first, 1, "still/here", 1, NULL, 1);
    close(first);
    broker_stop(&b);
}

/* Server Keep Alive cannot be left out (MQTT-3.2.2-21: the client would keep
 * its own, longer keepalive), so below its room the connection closes. */
Test(v5_maxpacket, mqtt_3_1_2_24_server_keep_alive_is_kept)
{
    ringmq_only("exact CONNACK sizes are ringmqd's");
    broker_start(&b, "mqtt.server_keepalive=30", NULL);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "ka", .keepalive = 0};
    int n;
    int fd = connect_mps(&o, 19, -1, &n);
    cr_assert_eq(n, 19);
    cr_assert_eq(v5_prop_num(&pk, P_SERVER_KEEPALIVE), 30);
    cr_assert_eq(v5_prop_num(&pk, P_TOPIC_ALIAS_MAXIMUM), 64);
    close(fd);
    fd = connect_mps(&o, 16, -1, &n);
    cr_assert_eq(n, 16);
    cr_assert_eq(v5_prop_num(&pk, P_SERVER_KEEPALIVE), 30);
    cr_assert_null(v5_prop(&pk, P_TOPIC_ALIAS_MAXIMUM, 0));
    close(fd);
    fd = connect_mps(&o, 15, -1, &n);
    cr_assert_eq(n, 0, "a %d-byte packet instead of a close", n);
    close(fd);
    broker_stop(&b);
}

/* MQTT-3.2.2-19: a refusal's Reason String goes first; a 5-byte CONNACK is the
 * smallest there is, below that the client is closed without one. */
Test(v5_maxpacket, mqtt_3_2_2_19_refusal_leaves_out_its_reason_string)
{
    ringmq_only("mosquitto has no max_client_id_len");
    broker_start(&b, "limits.max_client_id_len=23", NULL);
    struct raw_connect o = {
        .flags = -1, .clean = true, .id = "an-id-of-thirty-bytes-for-you", .keepalive = 60};
    int n;
    int fd = connect_mps(&o, 100, -1, &n);
    cr_assert(n > 5 && pk.type == T_CONNACK && pk.reason == 0x85);
    cr_assert_eq(v5_prop_count(&pk, P_REASON_STRING), 1);
    close(fd);
    uint32_t fits[] = {(uint32_t)n - 1, 6, 5};
    for (size_t i = 0; i < 3; i++) {
        fd = connect_mps(&o, fits[i], -1, &n);
        cr_assert(n == 5 && pk.type == T_CONNACK && pk.reason == 0x85, "limit %u: %d bytes",
                  fits[i], n);
        cr_assert_eq(pk.nprops, 0);
        close(fd);
    }
    uint32_t closes[] = {4, 2};
    for (size_t i = 0; i < 2; i++) {
        fd = connect_mps(&o, closes[i], -1, &n);
        cr_assert_eq(n, 0, "limit %u: a %d-byte packet instead of a close", closes[i], n);
        close(fd);
    }
    broker_stop(&b);
}

/* The server's answer to a packet whose response cannot fit `mps`: a
 * DISCONNECT 0x95 that fits, without Reason String (MQTT-3.14.2-3), then the
 * close. */
static void expect_0x95_within(int fd, uint32_t mps)
{
    cr_assert(read_within(fd, mps) > 0);
    cr_assert(pk.type == T_DISCONNECT && pk.reason == 0x95, "type %d reason 0x%02x", pk.type,
              pk.reason);
    cr_assert_eq(v5_prop_count(&pk, P_REASON_STRING), 0, "MQTT-3.14.2-3");
    cr_assert(raw_wait_close(fd, E2E_WAIT_MS) == 0);
}

/* SUBSCRIBE (first 0x82) or UNSUBSCRIBE (0xa2) of n filters "PREFIX/i". */
static void send_filters(int fd, uint8_t first, uint16_t mid, const char *prefix, int n)
{
    pkt_init(&p, first);
    pkt_u16(&p, mid);
    pkt_varint(&p, 0);
    for (int i = 0; i < n; i++) {
        char f[32];
        snprintf(f, sizeof(f), "%s/%d", prefix, i);
        pkt_str(&p, f);
        if (first == 0x82)
            pkt_u8(&p, 1);
    }
    cr_assert(raw_send_pkt(fd, &p) == 0);
}

/* A SUBACK has one reason code per filter and nothing to leave out: 15
 * filters make a 20-byte SUBACK, 16 cannot be answered within 20 bytes, so
 * the client is disconnected (0x95: larger than its Maximum Packet Size) and
 * the SUBSCRIBE has no effect. */
Test(v5_maxpacket, mqtt_3_1_2_24_suback_over_the_limit_disconnects_0x95)
{
    broker_start(&b, NULL);
    struct raw_connect o = {.flags = -1, .clean = false, .id = "many", .keepalive = 60};
    int n;
    int fd = connect_mps(&o, 20, 300, &n);
    cr_assert(n > 0 && pk.type == T_CONNACK && pk.reason == 0);
    send_filters(fd, 0x82, 1, "f", 15);
    cr_assert_eq(read_within(fd, 20), 20);
    cr_assert(pk.type == T_SUBACK && pk.ncodes == 15 && pk.codes[14] == 1);
    send_filters(fd, 0x82, 2, "g", 16);
    expect_0x95_within(fd, 20);
    close(fd);
    /* The session kept f/0..14 and never got g/0..15. */
    fd = connect_mps(&o, 0, 300, &n);
    cr_assert(pk.type == T_CONNACK && pk.reason == 0 && pk.session_present);
    int pub = v5_open(&b, "pub", NULL);
    /* In order from one publisher: g/3 would arrive first. */
    cr_assert(v5_publish(pub, "g/3", "no", 1, false, 1, NULL) < 0x80);
    cr_assert(v5_publish(pub, "f/3", "yes", 1, false, 2, NULL) < 0x80);
    v5_expect_publish(fd, &pk);
    cr_assert_str_eq(pk.topic, "f/3");
    close(pub);
    close(fd);
    /* With room for it, the DISCONNECT says why. */
    fd = open_mps("more", 100);
    send_filters(fd, 0x82, 3, "h", 100);
    v5_expect_disconnect(fd, 0x95, 1);
    close(fd);
    broker_stop(&b);
}

Test(v5_maxpacket, mqtt_3_1_2_24_unsuback_over_the_limit_disconnects_0x95)
{
    broker_start(&b, NULL);
    int fd = open_mps("unsub", 20);
    send_filters(fd, 0xa2, 1, "f", 15);
    cr_assert_eq(read_within(fd, 20), 20);
    cr_assert(pk.type == T_UNSUBACK && pk.ncodes == 15 && pk.codes[0] == 0x11);
    send_filters(fd, 0xa2, 2, "f", 16);
    expect_0x95_within(fd, 20);
    close(fd);
    broker_stop(&b);
}

/* PUBACK and PUBREC with a failure reason: the Reason String only within the
 * limit (MQTT-3.4.2-2, MQTT-3.5.2-2), then without an empty Property Length
 * (5 bytes, as MQTT 5.0 3.4.2.2.1 allows). PUBREL and PUBCOMP carry neither,
 * and fit too. */
Test(v5_maxpacket, mqtt_3_4_2_2_acknowledgements_within_the_limit)
{
    ringmq_only("mosquitto has no validate_payload_format setting");
    broker_start(&b, "mqtt.validate_payload_format=true", NULL);
    struct props pf;
    props_init(&pf);
    props_u8(&pf, P_PAYLOAD_FORMAT, 1);
    int fd = open_mps("roomy", 100);
    pkt_publish5(&p, "utf/t", "\xc3\x28", 2, 1, false, 1, &pf);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    cr_assert(read_within(fd, 100) > 5);
    cr_assert(pk.type == T_PUBACK && pk.reason == 0x99);
    cr_assert_eq(v5_prop_count(&pk, P_REASON_STRING), 1);
    close(fd);

    fd = open_mps("small", 13);
    int sub = open_mps("sub", 13);
    v5_subscribe(sub, 1, "ok/t", 2, NULL, 2);
    for (int qos = 1; qos <= 2; qos++) {
        pkt_publish5(&p, "utf/t", "\xc3\x28", 2, qos, false, (uint16_t)qos, &pf);
        cr_assert(raw_send_pkt(fd, &p) == 0);
        cr_assert_eq(read_within(fd, 13), 5, "QoS %d: %zu bytes", qos, pk.rawlen);
        cr_assert(pk.type == (qos == 1 ? T_PUBACK : T_PUBREC) && pk.reason == 0x99);
    }
    /* PUBCOMP 0x92 for an id the server does not hold. */
    pkt_ack5(&p, 0x62, 77, 0, NULL);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    cr_assert(read_within(fd, 13) > 0);
    cr_assert(pk.type == T_PUBCOMP && pk.reason == 0x92);
    /* The server's PUBREL of a QoS 2 delivery. */
    cr_assert_eq(v5_publish(fd, "ok/t", "hi", 2, false, 3, NULL), 0);
    cr_assert(read_within(sub, 13) > 0);
    cr_assert_eq(pk.type, T_PUBLISH);
    pkt_ack5(&p, 0x50, pk.mid, 0, NULL);
    cr_assert(raw_send_pkt(sub, &p) == 0);
    cr_assert(read_within(sub, 13) > 0);
    cr_assert_eq(pk.type, T_PUBREL);
    close(sub);
    close(fd);
    broker_stop(&b);
}

/* The built-in test method's AUTH 0x18 carries the method "e2e-test" and the
 * data "challenge": 27 bytes. Within 26 it cannot be sent and nothing can
 * replace it: the connection closes without a packet. */
Test(v5_maxpacket, mqtt_3_1_2_24_auth_that_cannot_fit_closes)
{
    ringmq_only("the test authentication method is built into ringmqd");
    broker_start(&b, "mqtt.test_auth_method=e2e-test", NULL);
    struct props pr;
    props_init(&pr);
    props_str(&pr, P_AUTH_METHOD, "e2e-test");
    props_bin(&pr, P_AUTH_DATA, "hello", 5);
    props_u32(&pr, P_MAXIMUM_PACKET_SIZE, 27);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "auth", .keepalive = 60};
    pkt_connect5(&p, &o, &pr, NULL);
    int fd = raw_open(&b);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    cr_assert_eq(read_within(fd, 27), 27);
    cr_assert(pk.type == T_AUTH && pk.reason == 0x18);
    v5_send_auth(fd, 0x18, "e2e-test", "response");
    cr_assert_eq(read_within(fd, 27), 27); /* 16 bytes and the method */
    cr_assert(pk.type == T_CONNACK && pk.reason == 0);
    cr_assert(v5_prop_is(&pk, P_AUTH_METHOD, "e2e-test"), "MQTT-4.12.0-5");
    close(fd);

    props_init(&pr);
    props_str(&pr, P_AUTH_METHOD, "e2e-test");
    props_bin(&pr, P_AUTH_DATA, "hello", 5);
    props_u32(&pr, P_MAXIMUM_PACKET_SIZE, 26);
    pkt_connect5(&p, &o, &pr, NULL);
    fd = raw_open(&b);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    int n = read_within(fd, 26);
    cr_assert_eq(n, 0, "a %d-byte packet (type %d) instead of a close", n, pk.type);
    close(fd);
    broker_stop(&b);
}
