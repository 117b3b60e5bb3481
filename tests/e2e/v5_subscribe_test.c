/* E2E, MQTT 5.0 subscription options and identifiers: No Local, Retain As
 * Published, Retain Handling 0/1/2, Subscription Identifiers (one, many on one
 * message, on retained messages, removed by resubscribing), SUBACK/UNSUBACK reason
 * codes and the Maximum QoS downgrade. Raw v5 sockets; each test starts its own
 * broker. */
#include "harness_v5.h"

#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

static struct broker b;
static struct v5_pkt pk;

TestSuite(v5_subscribe, .fini = e2e_fini, .timeout = 30);

static struct props *sub_id(uint32_t id)
{
    static struct props pr;
    props_init(&pr);
    props_varint(&pr, P_SUBSCRIPTION_ID, id);
    return &pr;
}

Test(v5_subscribe, mqtt_3_8_3_3_no_local)
{
    broker_start(&b, NULL);
    int me = v5_open(&b, "me", NULL);
    v5_subscribe(me, 1, "nl/t", 1 | SUB_NO_LOCAL, NULL, 1);
    int other = v5_open(&b, "other", NULL);
    v5_subscribe(other, 1, "nl/t", 1, NULL, 1);
    cr_assert(v5_publish(me, "nl/t", "mine", 1, false, 1, NULL) < 0x80);
    v5_expect_publish(other, &pk); /* others still get it */
    cr_assert(v5_payload_is(&pk, "mine"));
    v5_expect_nothing(me, E2E_ABSENT_MS);
    /* Someone else's message does reach the No Local subscriber. */
    cr_assert(v5_publish(other, "nl/t", "theirs", 0, false, 0, NULL) == 0);
    v5_expect_publish(me, &pk);
    cr_assert(v5_payload_is(&pk, "theirs"));
    close(other);
    close(me);
    broker_stop(&b);
}

Test(v5_subscribe, mqtt_3_3_1_12_retain_as_published)
{
    broker_start(&b, NULL);
    int rap = v5_open(&b, "rap", NULL);
    v5_subscribe(rap, 1, "rap/t", 0 | SUB_RAP, NULL, 0);
    int plain = v5_open(&b, "plain", NULL);
    v5_subscribe(plain, 1, "rap/t", 0, NULL, 0);
    int pub = v5_open(&b, "pub", NULL);
    v5_publish(pub, "rap/t", "r", 0, true, 0, NULL);
    v5_expect_publish(rap, &pk);
    cr_assert(pk.retain, "MQTT-3.3.1-13: RAP=1 must keep the RETAIN flag");
    v5_expect_publish(plain, &pk);
    cr_assert_not(pk.retain, "MQTT-3.3.1-12: RAP=0 must clear the RETAIN flag");
    close(pub);
    close(plain);
    close(rap);
    broker_stop(&b);
}

Test(v5_subscribe, mqtt_3_3_1_9_to_11_retain_handling)
{
    broker_start(&b, NULL);
    int pub = v5_open(&b, "pub", NULL);
    cr_assert(v5_publish(pub, "rh/t", "kept", 1, true, 1, NULL) < 0x80);
    int c = v5_open(&b, "c", NULL);
    /* 0: sent on every subscribe (MQTT-3.3.1-9). */
    v5_subscribe(c, 1, "rh/t", 1 | SUB_RH(0), NULL, 1);
    v5_expect_publish(c, &pk);
    cr_assert(pk.retain && v5_payload_is(&pk, "kept"));
    v5_subscribe(c, 2, "rh/t", 1 | SUB_RH(0), NULL, 1);
    v5_expect_publish(c, &pk);
    cr_assert(pk.retain, "RH 0: resubscribing sends the retained message again");
    /* 1: only when the subscription is new (MQTT-3.3.1-10). */
    v5_subscribe(c, 3, "rh/t", 1 | SUB_RH(1), NULL, 1);
    v5_expect_nothing(c, E2E_ABSENT_MS);
    v5_subscribe(c, 4, "rh/+", 1 | SUB_RH(1), NULL, 1);
    v5_expect_publish(c, &pk);
    cr_assert(pk.retain && !strcmp(pk.topic, "rh/t"), "RH 1 on a new subscription");
    /* 2: never (MQTT-3.3.1-11). */
    v5_subscribe(c, 5, "rh/#", 1 | SUB_RH(2), NULL, 1);
    v5_expect_nothing(c, E2E_ABSENT_MS);
    close(c);
    close(pub);
    broker_stop(&b);
}

Test(v5_subscribe, mqtt_3_3_4_3_subscription_identifier_one)
{
    broker_start(&b, NULL);
    int c = v5_open(&b, "c", NULL);
    v5_subscribe(c, 1, "sid/+", 1, sub_id(268435455), 1); /* the largest value */
    v5_subscribe(c, 2, "other/t", 1, NULL, 1);
    int pub = v5_open(&b, "pub", NULL);
    cr_assert(v5_publish(pub, "sid/a", "x", 1, false, 1, NULL) < 0x80);
    v5_expect_publish(c, &pk);
    cr_assert_eq(v5_prop_count(&pk, P_SUBSCRIPTION_ID), 1);
    cr_assert_eq(v5_prop_num(&pk, P_SUBSCRIPTION_ID), 268435455);
    /* A subscription without an identifier: none on its messages. */
    cr_assert(v5_publish(pub, "other/t", "y", 1, false, 2, NULL) < 0x80);
    v5_expect_publish(c, &pk);
    cr_assert_eq(v5_prop_count(&pk, P_SUBSCRIPTION_ID), 0);
    /* Retained messages carry it too. */
    cr_assert(v5_publish(pub, "sid/r", "ret", 1, true, 3, NULL) < 0x80);
    v5_expect_publish(c, &pk); /* live copy */
    v5_subscribe(c, 3, "sid/r", 1, sub_id(9), 1);
    v5_expect_publish(c, &pk);
    cr_assert(pk.retain);
    cr_assert_eq(v5_prop_num(&pk, P_SUBSCRIPTION_ID), 9);
    close(pub);
    close(c);
    broker_stop(&b);
}

Test(v5_subscribe, mqtt_3_3_4_4_subscription_identifiers_many_on_one_message)
{
    broker_start(&b, NULL);
    int c = v5_open(&b, "c", NULL);
    v5_subscribe(c, 1, "m/+/t", 1, sub_id(1), 1);
    v5_subscribe(c, 2, "m/#", 1, sub_id(2), 1);
    v5_subscribe(c, 3, "m/a/t", 1, sub_id(300), 1);
    v5_subscribe(c, 4, "m/a/+", 1, NULL, 1); /* no identifier */
    int pub = v5_open(&b, "pub", NULL);
    cr_assert(v5_publish(pub, "m/a/t", "x", 1, false, 1, NULL) < 0x80);
    /* One copy with all three identifiers (MQTT-3.3.4-4), or one copy per
     * subscription each with its own (MQTT-3.3.4-5); either way 1, 2 and 300 all
     * arrive, each once. */
    bool seen[3] = {false, false, false};
    int copies = 0;
    for (;;) {
        if (v5_read(c, &pk, copies ? E2E_ABSENT_MS : E2E_WAIT_MS) <= 0)
            break;
        cr_assert_eq(pk.type, T_PUBLISH);
        copies++;
        for (int i = 0; i < v5_prop_count(&pk, P_SUBSCRIPTION_ID); i++) {
            uint32_t id = v5_prop(&pk, P_SUBSCRIPTION_ID, i)->num;
            int k = id == 1 ? 0 : id == 2 ? 1 : id == 300 ? 2 : -1;
            cr_assert(k >= 0, "unknown subscription identifier %u", id);
            cr_assert_not(seen[k], "identifier %u twice", id);
            seen[k] = true;
        }
    }
    cr_assert(copies >= 1 && seen[0] && seen[1] && seen[2],
              "identifiers seen: 1=%d 2=%d 300=%d over %d copies", seen[0], seen[1], seen[2],
              copies);
    close(pub);
    close(c);
    broker_stop(&b);
}

Test(v5_subscribe, mqtt_3_8_4_resubscribe_replaces_identifier)
{
    broker_start(&b, NULL);
    int c = v5_open(&b, "c", NULL);
    v5_subscribe(c, 1, "re/t", 1, sub_id(5), 1);
    v5_subscribe(c, 2, "re/t", 1, NULL, 1);
    int pub = v5_open(&b, "pub", NULL);
    cr_assert(v5_publish(pub, "re/t", "x", 1, false, 1, NULL) < 0x80);
    v5_expect_publish(c, &pk);
    cr_assert_eq(v5_prop_count(&pk, P_SUBSCRIPTION_ID), 0, "the old identifier survived");
    close(pub);
    close(c);
    broker_stop(&b);
}

Test(v5_subscribe, mqtt_3_11_3_unsuback_reason_codes)
{
    broker_start(&b, NULL);
    int c = v5_open(&b, "c", NULL);
    v5_subscribe(c, 1, "u/t", 1, NULL, 1);
    struct pkt p;
    pkt_unsubscribe5(&p, 7, "u/t");
    cr_assert(raw_send_pkt(c, &p) == 0);
    v5_expect(c, T_UNSUBACK, &pk);
    cr_assert(pk.mid == 7 && pk.ncodes == 1 && pk.codes[0] == 0x00, "UNSUBACK 0x%02x", pk.codes[0]);
    pkt_unsubscribe5(&p, 8, "u/t");
    cr_assert(raw_send_pkt(c, &p) == 0);
    v5_expect(c, T_UNSUBACK, &pk);
    cr_assert(pk.ncodes == 1 && pk.codes[0] == 0x11,
              "UNSUBACK 0x%02x, want 0x11 (No subscription existed)", pk.codes[0]);
    close(c);
    broker_stop(&b);
}

Test(v5_subscribe, mqtt_3_2_2_10_maximum_qos_grants_lower)
{
    broker_start(&b, "mqtt.maximum_qos=1", NULL);
    int c = v5_open(&b, "c", NULL);
    v5_subscribe(c, 1, "mq/t", 2, NULL, 1); /* accepted, granted 1 */
    int pub = v5_open(&b, "pub", NULL);
    cr_assert(v5_publish(pub, "mq/t", "x", 1, false, 1, NULL) < 0x80);
    v5_expect_publish(c, &pk);
    cr_assert_eq(pk.qos, 1);
    close(pub);
    close(c);
    broker_stop(&b);
}
