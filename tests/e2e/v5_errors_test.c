/* E2E, MQTT 5.0 error paths: the server's DISCONNECT reason codes for malformed
 * packets (0x81), protocol errors (0x82), Receive Maximum exceeded (0x93), invalid
 * Topic Alias (0x94), packets too large (0x95), QoS and retain not supported
 * (0x9B, 0x9A), and the Reason String rule of Request Problem Information. Every
 * case also checks that a bystander keeps working. Raw v5 sockets; each test
 * starts its own broker. */
#include "harness_v5.h"

#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

static struct broker b;
static struct v5_pkt pk;

TestSuite(v5_errors, .fini = e2e_fini, .timeout = 30);

/* ringmq sends a Reason String with an error DISCONNECT unless the client set
 * Request Problem Information to 0; the specification leaves it optional, and
 * mosquitto sends none, so only ringmq is held to it. */
static int want_reason_string(void)
{
    return e2e_mosquitto() ? -1 : 1;
}

static int bystander(void)
{
    int fd = v5_open(&b, "bystander", NULL);
    v5_subscribe(fd, 1, "ok/t", 1, NULL, 1);
    return fd;
}

static void bystander_still_works(int fd)
{
    cr_assert(v5_publish(fd, "ok/t", "still", 0, false, 0, NULL) == 0);
    v5_expect_publish(fd, &pk);
    cr_assert(v5_payload_is(&pk, "still"));
    close(fd);
}

/* Sends p on a fresh v5 connection and expects DISCONNECT `reason`. */
static void expect_disconnect_after(const struct pkt *p, int reason)
{
    int by = bystander();
    int fd = v5_open(&b, "offender", NULL);
    cr_assert(raw_send_pkt(fd, p) == 0);
    v5_expect_disconnect(fd, reason, want_reason_string());
    close(fd);
    bystander_still_works(by);
}

Test(v5_errors, mqtt_2_2_2_property_length_overruns_packet_0x81)
{
    broker_start(&b, NULL);
    struct pkt p;
    pkt_init(&p, 0x30);
    pkt_str(&p, "bad/t");
    pkt_varint(&p, 50); /* property length beyond the packet's end */
    pkt_u8(&p, P_PAYLOAD_FORMAT);
    pkt_u8(&p, 0);
    expect_disconnect_after(&p, 0x81);
    broker_stop(&b);
}

Test(v5_errors, mqtt_2_2_2_property_not_valid_for_packet_0x81)
{
    broker_start(&b, NULL);
    struct props pr;
    props_init(&pr);
    props_u32(&pr, P_SESSION_EXPIRY, 5); /* a CONNECT property in a PUBLISH */
    struct pkt p;
    pkt_publish5(&p, "bad/t", "x", 1, 0, false, 0, &pr);
    expect_disconnect_after(&p, 0x81);
    broker_stop(&b);
}

Test(v5_errors, mqtt_2_2_2_duplicate_property_0x82)
{
    broker_start(&b, NULL);
    struct props pr;
    props_init(&pr);
    props_u32(&pr, P_MESSAGE_EXPIRY, 5);
    props_u32(&pr, P_MESSAGE_EXPIRY, 6); /* allowed once only */
    struct pkt p;
    pkt_publish5(&p, "bad/t", "x", 1, 1, false, 1, &pr);
    expect_disconnect_after(&p, 0x82);
    broker_stop(&b);
}

Test(v5_errors, mqtt_3_1_0_2_second_connect_0x82)
{
    broker_start(&b, NULL);
    struct pkt p;
    struct raw_connect o = {.flags = -1, .clean = true, .id = "again", .keepalive = 60};
    pkt_connect5(&p, &o, NULL, NULL);
    expect_disconnect_after(&p, 0x82);
    broker_stop(&b);
}

Test(v5_errors, mqtt_3_8_2_subscription_identifier_zero_0x82)
{
    broker_start(&b, NULL);
    struct props pr;
    props_init(&pr);
    props_varint(&pr, P_SUBSCRIPTION_ID, 0);
    struct pkt p;
    pkt_subscribe5(&p, 1, "s/t", 0, &pr);
    expect_disconnect_after(&p, 0x82);
    broker_stop(&b);
}

Test(v5_errors, mqtt_3_3_2_8_topic_alias_zero_0x94)
{
    broker_start(&b, "mqtt.topic_alias_maximum=4", NULL);
    struct props pr;
    props_init(&pr);
    props_u16(&pr, P_TOPIC_ALIAS, 0);
    struct pkt p;
    pkt_publish5(&p, "a/t", "x", 1, 0, false, 0, &pr);
    expect_disconnect_after(&p, 0x94);
    broker_stop(&b);
}

Test(v5_errors, mqtt_3_3_2_9_topic_alias_above_maximum_0x94)
{
    broker_start(&b, "mqtt.topic_alias_maximum=4", NULL);
    struct props pr;
    props_init(&pr);
    props_u16(&pr, P_TOPIC_ALIAS, 5);
    struct pkt p;
    pkt_publish5(&p, "a/t", "x", 1, 0, false, 0, &pr);
    expect_disconnect_after(&p, 0x94);
    broker_stop(&b);
}

Test(v5_errors, mqtt_3_3_2_unknown_alias_with_empty_topic_0x82)
{
    broker_start(&b, "mqtt.topic_alias_maximum=4", NULL);
    struct props pr;
    props_init(&pr);
    props_u16(&pr, P_TOPIC_ALIAS, 3); /* never set on this connection */
    struct pkt p;
    pkt_publish5(&p, "", "x", 1, 0, false, 0, &pr);
    expect_disconnect_after(&p, 0x82);
    broker_stop(&b);
}

Test(v5_errors, mqtt_3_3_4_7_receive_maximum_exceeded_0x93)
{
    if (e2e_mosquitto())
        cr_skip_test("mosquitto has no setting for its Receive Maximum");
    broker_start(&b, "mqtt.receive_maximum=2", NULL);
    int by = bystander();
    struct raw_connect o = {.flags = -1, .clean = true, .id = "eager", .keepalive = 60};
    int fd = v5_connect(&b, &o, NULL, NULL, &pk);
    cr_assert_eq(v5_prop_num(&pk, P_RECEIVE_MAXIMUM), 2);
    /* QoS 2 flows stay open until PUBREL: two are allowed, the third is one too many. */
    struct pkt p;
    for (uint16_t mid = 1; mid <= 2; mid++) {
        pkt_publish5(&p, "rm/t", "x", 1, 2, false, mid, NULL);
        cr_assert(raw_send_pkt(fd, &p) == 0);
        v5_expect(fd, T_PUBREC, &pk);
    }
    pkt_publish5(&p, "rm/t", "x", 1, 2, false, 3, NULL);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    v5_expect_disconnect(fd, 0x93, want_reason_string());
    close(fd);
    bystander_still_works(by);
    broker_stop(&b);
}

Test(v5_errors, mqtt_3_2_2_15_packet_too_large_0x95)
{
    broker_start(&b, "limits.max_packet_size=1000", NULL);
    int by = bystander();
    struct raw_connect o = {.flags = -1, .clean = true, .id = "big", .keepalive = 60};
    int fd = v5_connect(&b, &o, NULL, NULL, &pk);
    cr_assert_eq(pk.reason, 0);
    static char payload[1200];
    memset(payload, 'p', sizeof(payload));
    struct pkt p;
    pkt_publish5(&p, "big/t", payload, sizeof(payload), 0, false, 0, NULL);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    v5_expect_disconnect(fd, 0x95, want_reason_string());
    close(fd);
    bystander_still_works(by);
    broker_stop(&b);
}

Test(v5_errors, mqtt_3_2_2_11_qos_above_maximum_0x9b)
{
    broker_start(&b, "mqtt.maximum_qos=1", NULL);
    struct pkt p;
    pkt_publish5(&p, "q/t", "x", 1, 2, false, 1, NULL);
    expect_disconnect_after(&p, 0x9b);
    broker_stop(&b);
}

Test(v5_errors, mqtt_3_2_2_14_retain_when_unavailable_0x9a)
{
    broker_start(&b, "mqtt.retain_available=false", NULL);
    struct pkt p;
    pkt_publish5(&p, "r/t", "x", 1, 0, true, 0, NULL);
    expect_disconnect_after(&p, 0x9a);
    broker_stop(&b);
}

Test(v5_errors, mqtt_3_8_3_4_no_local_on_shared_subscription_0x82)
{
    broker_start(&b, NULL);
    struct pkt p;
    pkt_subscribe5(&p, 1, "$share/g/t", 1 | SUB_NO_LOCAL, NULL);
    expect_disconnect_after(&p, 0x82);
    broker_stop(&b);
}

Test(v5_errors, mqtt_3_1_2_29_no_reason_string_when_problem_info_refused)
{
    if (e2e_mosquitto())
        cr_skip_test("mosquitto has no validate_payload_format setting to provoke a PUBACK error");
    broker_start(&b, "mqtt.validate_payload_format=true", NULL);
    struct props cp, pr;
    props_init(&cp);
    props_u8(&cp, P_REQUEST_PROBLEM_INFO, 0);
    props_init(&pr);
    props_u8(&pr, P_PAYLOAD_FORMAT, 1);
    struct pkt p;
    pkt_publish5(&p, "utf/t", "\xff", 1, 1, false, 1, &pr);
    /* Refused: no Reason String on the PUBACK (MQTT-3.1.2-29)... */
    int quiet = v5_open(&b, "quiet", &cp);
    cr_assert(raw_send_pkt(quiet, &p) == 0);
    v5_expect(quiet, T_PUBACK, &pk);
    cr_assert_eq(pk.reason, 0x99);
    cr_assert_eq(v5_prop_count(&pk, P_REASON_STRING), 0, "MQTT-3.1.2-29");
    /* ...nor on the DISCONNECT that ends a protocol error. */
    pkt_connect5(&p, &(struct raw_connect){.flags = -1, .clean = true, .id = "x"}, NULL, NULL);
    cr_assert(raw_send_pkt(quiet, &p) == 0);
    v5_expect_disconnect(quiet, 0x82, 0);
    close(quiet);
    /* Default (1): the PUBACK explains itself. */
    int chatty = v5_open(&b, "chatty", NULL);
    pkt_publish5(&p, "utf/t", "\xff", 1, 1, false, 1, &pr);
    cr_assert(raw_send_pkt(chatty, &p) == 0);
    v5_expect(chatty, T_PUBACK, &pk);
    cr_assert_eq(pk.reason, 0x99);
    cr_assert_eq(v5_prop_count(&pk, P_REASON_STRING), 1, "no Reason String on PUBACK 0x99");
    close(chatty);
    broker_stop(&b);
}

Test(v5_errors, mqtt_3_1_2_connect_receive_maximum_zero_refused)
{
    broker_start(&b, NULL);
    struct props pr;
    props_init(&pr);
    props_u16(&pr, P_RECEIVE_MAXIMUM, 0); /* a Protocol Error */
    struct raw_connect o = {.flags = -1, .clean = true, .id = "rm0", .keepalive = 60};
    int fd = v5_connect(&b, &o, &pr, NULL, &pk);
    cr_assert(pk.type == T_CONNACK && pk.reason == 0x82, "CONNACK 0x%02x, want 0x82", pk.reason);
    cr_assert(raw_wait_close(fd, E2E_WAIT_MS) == 0);
    close(fd);
    broker_stop(&b);
}
