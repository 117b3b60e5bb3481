/* E2E: SUBSCRIBE / SUBACK / UNSUBSCRIBE / UNSUBACK, topic filter matching ('+', '#',
 * '$' topics, empty levels), resubscription and overlapping subscriptions. Each
 * test starts its own broker. */
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static struct broker b;

TestSuite(subscribe, .fini = e2e_fini, .timeout = 30);

Test(subscribe, mqtt_3_8_4_5_many_filters_in_one_packet_raw)
{
    broker_start(&b, NULL);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "multi"};
    int fd = raw_mqtt_open(&b, &o);
    struct pkt p;
    pkt_init(&p, 0x82);
    pkt_u16(&p, 0x0a0b);
    const char *filters[] = {"m/zero", "m/one", "m/two"};
    for (int i = 0; i < 3; i++) {
        pkt_str(&p, filters[i]);
        pkt_u8(&p, (uint8_t)i);
    }
    cr_assert(raw_send_pkt(fd, &p) == 0);
    uint8_t in[16];
    int n = raw_read_packet(fd, in, sizeof(in), E2E_WAIT_MS);
    cr_assert(n == 7 && in[0] == 0x90 && in[1] == 5, "expected a 3-code SUBACK (n=%d)", n);
    cr_assert(in[2] == 0x0a && in[3] == 0x0b, "MQTT-3.8.4-2: same packet id");
    /* MQTT-3.8.4-4 / MQTT-3.9.3-1: one code per filter, in order. */
    cr_assert(in[4] == 0 && in[5] == 1 && in[6] == 2, "codes %d %d %d", in[4], in[5], in[6]);

    struct client *pub = client_open(&b, "pub", true);
    for (int i = 0; i < 3; i++) {
        client_publish(pub, filters[i], "v", 1, 2, false);
        struct raw_publish rp;
        raw_expect_publish(fd, &rp);
        cr_assert_str_eq(rp.topic, filters[i]);
        cr_assert(rp.qos == i, "delivered at QoS %d, want %d", rp.qos, i);
        if (i == 1) {
            pkt_ack(&p, 0x40, rp.mid);
            cr_assert(raw_send_pkt(fd, &p) == 0);
        } else if (i == 2) {
            pkt_ack(&p, 0x50, rp.mid);
            cr_assert(raw_send_pkt(fd, &p) == 0);
            raw_expect_ack(fd, 0x62, rp.mid);
            pkt_ack(&p, 0x70, rp.mid);
            cr_assert(raw_send_pkt(fd, &p) == 0);
        }
    }
    client_disconnect(pub);
    close(fd);
    broker_stop(&b);
}

Test(subscribe, mqtt_3_8_4_4_many_filters_libmosquitto)
{
    broker_start(&b, NULL);
    enum { N = 12 };
    char names[N][16];
    const char *filters[N];
    int granted[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "many/%d", i);
        filters[i] = names[i];
    }
    struct client *c = client_open(&b, "many", true);
    client_subscribe_many(c, N, filters, 1, granted);
    for (int i = 0; i < N; i++)
        cr_assert(granted[i] == 1, "filter %d granted %d", i, granted[i]);
    for (int i = 0; i < N; i++) {
        client_publish(c, filters[i], "x", 1, 1, false);
        client_expect_message(c, filters[i], "x", NULL, NULL);
    }
    client_disconnect(c);
    broker_stop(&b);
}

Test(subscribe, mqtt_3_10_4_4_unsubscribe_stops_delivery)
{
    broker_start(&b, NULL);
    struct client *c = client_open(&b, "unsub", true);
    cr_assert(client_subscribe(c, "u/t", 1) == 1);
    cr_assert(client_subscribe(c, "u/other", 1) == 1);
    client_publish(c, "u/t", "before", 6, 1, false);
    client_expect_message(c, "u/t", "before", NULL, NULL);
    client_unsubscribe(c, "u/t");
    client_publish(c, "u/t", "after", 5, 1, false);
    client_publish(c, "u/other", "kept", 4, 1, false);
    client_expect_message(c, "u/other", "kept", NULL, NULL);
    cr_assert(client_no_message(c, E2E_ABSENT_MS), "delivered after UNSUBACK");
    client_disconnect(c);
    broker_stop(&b);
}

Test(subscribe, mqtt_3_10_4_5_unsuback_for_unknown_filter)
{
    broker_start(&b, NULL);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "unsub"};
    int fd = raw_mqtt_open(&b, &o);
    struct pkt p;
    pkt_init(&p, 0xa2);
    pkt_u16(&p, 9);
    pkt_str(&p, "never/subscribed");
    cr_assert(raw_send_pkt(fd, &p) == 0);
    raw_expect_ack(fd, 0xb0, 9);
    close(fd);
    broker_stop(&b);
}

struct match_case {
    const char *filter;
    const char *topics; /* ';'-separated topics this filter must receive */
};

/* Topics published once each; every filter below must receive exactly the listed
 * subset (MQTT 3.1.1 section 4.7 examples). */
static const char *const g_topics[] = {
    "sport",
    "sport/",
    "sport/tennis",
    "sport/tennis/player1",
    "sport/tennis/player1/ranking",
    "/finance",
    "a//b",
    "a/b",
    "$foo/x",
    "$foo",
};

static const struct match_case g_cases[] = {
    /* MQTT-4.7.1-2: '#' also matches the parent level. */
    {"sport/#", "sport;sport/;sport/tennis;sport/tennis/player1;sport/tennis/player1/ranking"},
    {"sport/tennis/+", "sport/tennis/player1"},
    {"sport/+", "sport/;sport/tennis"},
    {"+", "sport"},
    {"+/+", "sport/;sport/tennis;/finance;a/b"},
    {"/+", "/finance"},
    {"a//b", "a//b"},
    {"a/+/b", "a//b"},
    /* MQTT-4.7.2-1: wildcards at the first level do not match '$' topics. */
    {"#", "sport;sport/;sport/tennis;sport/tennis/player1;sport/tennis/player1/ranking;"
          "/finance;a//b;a/b"},
    {"+/x", ""},
    {"$foo/+", "$foo/x"},
    {"$foo/#", "$foo/x;$foo"},
};

static bool listed(const char *list, const char *topic)
{
    size_t tl = strlen(topic);
    for (const char *at = list; *at;) {
        const char *end = strchr(at, ';');
        size_t len = end ? (size_t)(end - at) : strlen(at);
        if (len == tl && !memcmp(at, topic, tl))
            return true;
        at += len + (end ? 1 : 0);
    }
    return false;
}

Test(subscribe, mqtt_4_7_wildcard_and_dollar_matching)
{
    broker_start(&b, NULL);
    enum { NC = sizeof(g_cases) / sizeof(g_cases[0]), NT = sizeof(g_topics) / sizeof(g_topics[0]) };
    struct client *sub[NC];
    for (int i = 0; i < NC; i++) {
        char id[16];
        snprintf(id, sizeof(id), "m%d", i);
        sub[i] = client_open(&b, id, true);
        cr_assert(client_subscribe(sub[i], g_cases[i].filter, 1) == 1, "filter %s",
                  g_cases[i].filter);
    }
    struct client *pub = client_open(&b, "pub", true);
    for (int t = 0; t < NT; t++)
        client_publish(pub, g_topics[t], "m", 1, 1, false);
    for (int i = 0; i < NC; i++) {
        bool seen[NT] = {0};
        int want = 0;
        for (int t = 0; t < NT; t++)
            want += listed(g_cases[i].topics, g_topics[t]);
        for (int k = 0; k < want; k++) {
            struct msg m;
            cr_assert(client_wait_message(sub[i], &m, E2E_WAIT_MS) == 0,
                      "filter '%s' got %d of %d messages", g_cases[i].filter, k, want);
            bool ok = listed(g_cases[i].topics, m.topic);
            int t = 0;
            while (t < NT && strcmp(g_topics[t], m.topic))
                t++;
            cr_expect(ok && t < NT && !seen[t], "filter '%s' must not receive '%s' (again)",
                      g_cases[i].filter, m.topic);
            if (t < NT)
                seen[t] = true;
            msg_free(&m);
            cr_assert(ok);
        }
    }
    /* One absence window covers everybody: all publishes completed before it. */
    cr_assert(client_no_message(sub[0], E2E_ABSENT_MS));
    for (int i = 1; i < NC; i++)
        cr_assert(client_no_message(sub[i], 0), "filter '%s' got an extra message",
                  g_cases[i].filter);
    for (int i = 0; i < NC; i++)
        client_disconnect(sub[i]);
    client_disconnect(pub);
    broker_stop(&b);
}

Test(subscribe, mqtt_3_8_4_3_resubscribe_replaces_subscription)
{
    broker_start(&b, NULL);
    struct client *c = client_open(&b, "resub", true);
    cr_assert(client_subscribe(c, "r/t", 0) == 0);
    cr_assert(client_subscribe(c, "r/t", 2) == 2);
    client_publish(c, "r/t", "x", 1, 2, false);
    int qos = -1;
    client_expect_message(c, "r/t", "x", &qos, NULL);
    cr_assert(qos == 2, "replaced subscription must deliver at QoS 2, got %d", qos);
    cr_assert(client_no_message(c, E2E_ABSENT_MS), "one subscription, one copy");
    client_disconnect(c);
    broker_stop(&b);
}

/* Publishes one QoS 2 message that matches three subscriptions of one client
 * (QoS 0, 2, 1) and returns how many copies arrived and the highest QoS seen. */
static void overlap(int *copies, int *max_qos)
{
    struct client *c = client_open(&b, "overlap", true);
    cr_assert(client_subscribe(c, "ov/+", 0) == 0);
    cr_assert(client_subscribe(c, "ov/#", 2) == 2);
    cr_assert(client_subscribe(c, "ov/t", 1) == 1);
    struct client *pub = client_open(&b, "pub", true);
    client_publish(pub, "ov/t", "x", 1, 2, false);
    int qos = -1;
    client_expect_message(c, "ov/t", "x", &qos, NULL);
    *copies = 1;
    *max_qos = qos;
    struct msg m;
    while (client_wait_message(c, &m, E2E_ABSENT_MS) == 0) {
        (*copies)++;
        *max_qos = m.qos > *max_qos ? m.qos : *max_qos;
        msg_free(&m);
    }
    client_disconnect(pub);
    client_disconnect(c);
}

Test(subscribe, mqtt_3_3_5_1_overlapping_subscriptions_max_qos)
{
    broker_start(&b, NULL);
    int copies, max_qos;
    overlap(&copies, &max_qos);
    cr_assert(max_qos == 2, "MQTT-3.3.5-1: max QoS of matching subscriptions, got %d", max_qos);
    broker_stop(&b);
}

/* MQTT 3.1.1 allows one extra copy per further matching subscription; ringmq
 * promises exactly one, at the highest QoS. */
Test(subscribe, overlapping_subscriptions_delivered_once)
{
    broker_start(&b, NULL);
    int copies, max_qos;
    overlap(&copies, &max_qos);
    cr_assert(copies == 1, "one message matching three subscriptions arrived %d times", copies);
    cr_assert(max_qos == 2, "the single copy must have the highest QoS, got %d", max_qos);
    broker_stop(&b);
}

Test(subscribe, fan_out_to_many_subscribers)
{
    broker_start(&b, NULL);
    enum { N = 10 };
    struct client *sub[N];
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof(id), "fan%d", i);
        sub[i] = client_open(&b, id, true);
        cr_assert(client_subscribe(sub[i], "fan/+", 1) == 1);
    }
    struct client *pub = client_open(&b, "pub", true);
    client_publish(pub, "fan/out", "f", 1, 1, false);
    for (int i = 0; i < N; i++)
        client_expect_message(sub[i], "fan/out", "f", NULL, NULL);
    for (int i = 0; i < N; i++) {
        cr_assert(client_no_message(sub[i], i ? 0 : E2E_ABSENT_MS));
        client_disconnect(sub[i]);
    }
    client_disconnect(pub);
    broker_stop(&b);
}
