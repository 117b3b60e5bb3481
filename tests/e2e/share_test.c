/* E2E, shared subscriptions for MQTT 5.0 and 3.1.1 clients: $share/GROUP/FILTER
 * delivers each message to exactly one member (members spread over shards when
 * RINGMQ_SHARDS=4), groups are independent of each other and of plain
 * subscriptions, a member that leaves stops receiving and its unacknowledged
 * QoS 1 messages go to another member, retained messages are not sent on a shared
 * subscription, and ringmq's ordered share $oshare/GROUP/FILTER keeps one
 * publisher's messages on one topic with one member. Each test starts its own
 * broker. */
#include "harness_v5.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N 40

static struct broker b;
static struct v5_pkt pk;

TestSuite(share, .fini = e2e_fini, .timeout = 30);

/* The number a test payload carries (payloads are not NUL-terminated in pk). */
static int payload_num(const struct v5_pkt *p)
{
    char buf[16];
    cr_assert(p->len > 0 && p->len < sizeof(buf), "unexpected payload length %zu", p->len);
    memcpy(buf, p->payload, p->len);
    buf[p->len] = 0;
    return atoi(buf);
}

static void publish_n(int pub, const char *topic, int from, int n, int qos)
{
    char payload[16];
    for (int i = from; i < from + n; i++) {
        snprintf(payload, sizeof(payload), "%d", i);
        cr_assert(v5_publish(pub, topic, payload, qos, false, (uint16_t)(i + 1), NULL) < 0x80);
    }
}

/* Drains v5 members (acknowledging QoS 1) until `total` messages arrived overall,
 * counting per member and per payload number, then checks that no more come. The
 * wait is bounded: E2E_WAIT_MS without any message fails the test. */
static void drain(const int *fds, int nfd, int total, int *per_member, int *seen)
{
    int got = 0, idle_ms = 0;
    struct pkt p;
    while (got < total) {
        bool any = false;
        for (int i = 0; i < nfd; i++) {
            if (v5_read(fds[i], &pk, 20) <= 0)
                continue;
            cr_assert_eq(pk.type, T_PUBLISH);
            if (pk.qos == 1) {
                pkt_ack5(&p, 0x40, pk.mid, 0, NULL);
                raw_send_pkt(fds[i], &p);
            }
            int k = payload_num(&pk);
            cr_assert(k >= 0 && k < 4 * N);
            seen[k]++;
            per_member[i]++;
            got++;
            any = true;
        }
        idle_ms = any ? 0 : idle_ms + 20 * nfd;
        cr_assert(idle_ms < E2E_WAIT_MS, "only %d of %d shared messages arrived", got, total);
    }
    for (int i = 0; i < nfd; i++)
        v5_expect_nothing(fds[i], i ? 1 : E2E_ABSENT_MS);
}

Test(share, mqtt_4_8_2_each_message_to_exactly_one_member)
{
    broker_start(&b, NULL);
    int m[3];
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof(id), "member%d", i);
        m[i] = v5_open(&b, id, NULL);
        v5_subscribe(m[i], 1, "$share/g/sh/+", 1, NULL, 1);
    }
    int plain = v5_open(&b, "plain", NULL);
    v5_subscribe(plain, 1, "sh/t", 0, NULL, 0);
    int other = v5_open(&b, "othergroup", NULL);
    v5_subscribe(other, 1, "$share/h/sh/t", 0, NULL, 0);
    int pub = v5_open(&b, "pub", NULL);
    publish_n(pub, "sh/t", 0, N, 1);
    int per[3] = {0}, seen[4 * N] = {0};
    drain(m, 3, N, per, seen);
    for (int i = 0; i < N; i++)
        cr_assert_eq(seen[i], 1, "message %d delivered %d times in group g", i, seen[i]);
    /* Another group and a plain subscription each get every message. */
    int per2[1] = {0}, seen2[4 * N] = {0}, per3[1] = {0}, seen3[4 * N] = {0};
    drain(&other, 1, N, per2, seen2);
    drain(&plain, 1, N, per3, seen3);
    close(pub);
    close(other);
    close(plain);
    for (int i = 0; i < 3; i++)
        close(m[i]);
    broker_stop(&b);
}

Test(share, mqtt_4_8_2_v311_members)
{
    broker_start(&b, NULL);
    struct client *m[2] = {client_open(&b, "old0", true), client_open(&b, "old1", true)};
    for (int i = 0; i < 2; i++)
        cr_assert_eq(client_subscribe(m[i], "$share/legacy/l/t", 1), 1);
    struct client *pub = client_open(&b, "pub", true);
    char payload[16];
    for (int i = 0; i < N; i++) {
        int len = snprintf(payload, sizeof(payload), "%d", i);
        client_publish_async(pub, "l/t", payload, len, 1, false);
    }
    client_wait_published(pub, N);
    int seen[N] = {0}, got = 0, idle_ms = 0;
    while (got < N) {
        bool any = false;
        for (int i = 0; i < 2; i++) {
            struct msg msg;
            if (client_wait_message(m[i], &msg, 20) != 0)
                continue;
            cr_assert_str_eq(msg.topic, "l/t");
            int k = atoi((char *)msg.payload);
            msg_free(&msg);
            cr_assert(k >= 0 && k < N);
            seen[k]++;
            got++;
            any = true;
        }
        idle_ms = any ? 0 : idle_ms + 40;
        cr_assert(idle_ms < E2E_WAIT_MS, "only %d of %d arrived", got, N);
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(seen[i], 1, "message %d delivered %d times", i, seen[i]);
    cr_assert(client_no_message(m[0], E2E_ABSENT_MS) && client_no_message(m[1], 0));
    client_disconnect(pub);
    client_disconnect(m[0]);
    client_disconnect(m[1]);
    broker_stop(&b);
}

Test(share, mqtt_4_8_2_member_that_leaves_stops_receiving)
{
    broker_start(&b, NULL);
    int a = v5_open(&b, "a", NULL);
    v5_subscribe(a, 1, "$share/g/lv/t", 0, NULL, 0);
    int c = v5_open(&b, "c", NULL);
    v5_subscribe(c, 1, "$share/g/lv/t", 0, NULL, 0);
    v5_disconnect(a, 0, NULL);
    int pub = v5_open(&b, "pub", NULL);
    publish_n(pub, "lv/t", 0, N, 0);
    int per[1] = {0}, seen[4 * N] = {0};
    drain(&c, 1, N, per, seen);
    /* Unsubscribing leaves the group too. */
    int d = v5_open(&b, "d", NULL);
    v5_subscribe(d, 1, "$share/g/lv/t", 0, NULL, 0);
    struct pkt p;
    pkt_unsubscribe5(&p, 2, "$share/g/lv/t");
    cr_assert(raw_send_pkt(c, &p) == 0);
    v5_expect(c, T_UNSUBACK, &pk);
    cr_assert(pk.ncodes == 1 && pk.codes[0] == 0);
    publish_n(pub, "lv/t", N, N, 0);
    int per2[1] = {0}, seen2[4 * N] = {0};
    drain(&d, 1, N, per2, seen2);
    v5_expect_nothing(c, 0);
    close(pub);
    close(c);
    close(d);
    broker_stop(&b);
}

Test(share, mqtt_4_8_2_unacked_qos1_goes_to_another_member)
{
    broker_start(&b, NULL);
    /* The quitter receives but never acknowledges; its session ends with the
     * connection (no Session Expiry), so the messages must move on. */
    int quitter = v5_open(&b, "quitter", NULL);
    v5_subscribe(quitter, 1, "$share/g/un/t", 1, NULL, 1);
    int pub = v5_open(&b, "pub", NULL);
    publish_n(pub, "un/t", 0, 5, 1);
    int held[5], nheld = 0;
    for (int i = 0; i < 5; i++) {
        v5_expect_publish(quitter, &pk);
        held[nheld++] = payload_num(&pk);
    }
    int stayer = v5_open(&b, "stayer", NULL);
    v5_subscribe(stayer, 1, "$share/g/un/t", 1, NULL, 1);
    close(quitter);
    int per[1] = {0}, seen[4 * N] = {0};
    drain(&stayer, 1, nheld, per, seen);
    for (int i = 0; i < nheld; i++)
        cr_assert_eq(seen[held[i]], 1, "unacknowledged message %d not redelivered", held[i]);
    close(pub);
    close(stayer);
    broker_stop(&b);
}

Test(share, mqtt_4_8_2_no_retained_messages_on_shared_subscription)
{
    broker_start(&b, NULL);
    int pub = v5_open(&b, "pub", NULL);
    cr_assert(v5_publish(pub, "rt/t", "retained", 1, true, 1, NULL) < 0x80);
    int m = v5_open(&b, "m", NULL);
    v5_subscribe(m, 1, "$share/g/rt/t", 1, NULL, 1);
    v5_expect_nothing(m, E2E_ABSENT_MS);
    /* Live messages still arrive. */
    cr_assert(v5_publish(pub, "rt/t", "live", 1, false, 2, NULL) < 0x80);
    v5_expect_publish(m, &pk);
    cr_assert(v5_payload_is(&pk, "live"));
    close(pub);
    close(m);
    broker_stop(&b);
}

Test(share, ordered_share_keeps_a_publishers_topic_on_one_member)
{
    if (e2e_mosquitto())
        cr_skip_test("$oshare is ringmq's ordered share");
    broker_start(&b, NULL);
    int m[3];
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof(id), "om%d", i);
        m[i] = v5_open(&b, id, NULL);
        v5_subscribe(m[i], 1, "$oshare/g/os/#", 1, NULL, 1);
    }
    int pub = v5_open(&b, "pub", NULL);
    publish_n(pub, "os/t", 0, N, 1);
    int per[3] = {0}, seen[4 * N] = {0};
    drain(m, 3, N, per, seen);
    int owners = 0;
    for (int i = 0; i < 3; i++)
        owners += per[i] > 0;
    cr_assert_eq(owners, 1, "one publisher's topic spread over %d members (%d/%d/%d)", owners,
                 per[0], per[1], per[2]);
    for (int i = 0; i < N; i++)
        cr_assert_eq(seen[i], 1);
    close(pub);
    for (int i = 0; i < 3; i++)
        close(m[i]);
    broker_stop(&b);
}
