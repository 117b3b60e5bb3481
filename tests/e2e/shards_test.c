/* E2E: traffic that crosses shards when ringmqd runs with several (meson runs this
 * file with RINGMQ_SHARDS=1 and 4; connections are spread over the shards by the
 * kernel's SO_REUSEPORT balancing, so many fresh connections exercise every pair).
 * Exactly-once fan-out, the SUBACK visibility invariant, takeover and session
 * moves with many client ids. Plain MQTT, so they pass on any broker. */
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct broker b;

TestSuite(shards, .fini = e2e_fini, .timeout = 60);

Test(shards, every_message_exactly_once_32_clients)
{
    enum { N = 32 };
    broker_start(&b, NULL);
    struct client *c[N];
    char id[32], topic[32], payload[32];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "c%d", i);
        c[i] = client_open(&b, id, true);
        snprintf(topic, sizeof(topic), "own/%d", i);
        const char *filters[] = {topic, "all/+"};
        int granted[2];
        client_subscribe_many(c[i], 2, filters, 1, granted);
        cr_assert(granted[0] == 1 && granted[1] == 1);
    }
    for (int i = 0; i < N; i++) {
        int len = snprintf(payload, sizeof(payload), "%d", i);
        snprintf(topic, sizeof(topic), "own/%d", (i + 1) % N);
        client_publish_async(c[i], topic, payload, len, 1, false);
        snprintf(topic, sizeof(topic), "all/%d", i);
        client_publish_async(c[i], topic, payload, len, 1, false);
    }
    for (int i = 0; i < N; i++)
        client_wait_published(c[i], 2);
    for (int i = 0; i < N; i++) {
        bool seen_all[N] = {0}, seen_own = false;
        for (int k = 0; k < N + 1; k++) {
            struct msg m;
            cr_assert(client_wait_message(c[i], &m, E2E_WAIT_MS) == 0,
                      "client %d got %d of %d messages", i, k, N + 1);
            int from = atoi((char *)m.payload);
            bool ok = from >= 0 && from < N;
            if (ok && !strncmp(m.topic, "all/", 4)) {
                ok = atoi(m.topic + 4) == from && !seen_all[from];
                seen_all[from] = true;
            } else if (ok && !strncmp(m.topic, "own/", 4)) {
                ok = atoi(m.topic + 4) == i && from == (i + N - 1) % N && !seen_own;
                seen_own = true;
            } else {
                ok = false;
            }
            cr_expect(ok, "client %d: unexpected or duplicate %s '%s'", i, m.topic,
                      (char *)m.payload);
            msg_free(&m);
            cr_assert(ok);
        }
    }
    cr_assert(client_no_message(c[0], E2E_ABSENT_MS));
    for (int i = 0; i < N; i++) {
        cr_assert(client_no_message(c[i], 0), "client %d got an extra message", i);
        client_disconnect(c[i]);
    }
    broker_stop(&b);
}

/* DESIGN.md: SUBACK is sent only after the new interest is visible on every shard,
 * so a message published after the subscriber saw its SUBACK always reaches it. */
Test(shards, message_published_after_suback_always_arrives_100_rounds)
{
    broker_start(&b, NULL);
    char id[32], topic[32];
    for (int r = 0; r < 100; r++) {
        snprintf(id, sizeof(id), "pub%d", r);
        struct client *pub = client_open(&b, id, true);
        snprintf(id, sizeof(id), "sub%d", r);
        struct client *sub = client_open(&b, id, true);
        snprintf(topic, sizeof(topic), "inv/%d", r);
        cr_assert(client_subscribe(sub, topic, 1) == 1);
        client_publish(pub, topic, "now", 3, r % 2, false);
        struct msg m;
        int rc = client_wait_message(sub, &m, E2E_WAIT_MS);
        cr_assert(rc == 0, "round %d: message published after SUBACK was lost", r);
        msg_free(&m);
        client_disconnect(sub);
        client_disconnect(pub);
    }
    broker_stop(&b);
}

Test(shards, mqtt_3_1_4_2_takeover_16_client_ids)
{
    enum { N = 16 };
    broker_start(&b, NULL);
    struct client *first[N], *second[N];
    char id[32], topic[32], payload[32];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "tk%d", i);
        first[i] = client_open(&b, id, false);
        snprintf(topic, sizeof(topic), "tk/%d", i);
        cr_assert(client_subscribe(first[i], topic, 1) == 1);
    }
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "tk%d", i);
        second[i] = client_open(&b, id, false);
        cr_assert(client_session_present(second[i]), "%s: session lost in takeover", id);
    }
    for (int i = 0; i < N; i++)
        cr_assert(client_wait_closed(first[i], E2E_WAIT_MS) == 0, "tk%d: first not closed", i);
    struct client *pub = client_open(&b, "pub", true);
    for (int i = 0; i < N; i++) {
        snprintf(topic, sizeof(topic), "tk/%d", i);
        int len = snprintf(payload, sizeof(payload), "%d", i);
        client_publish(pub, topic, payload, len, 1, false);
    }
    for (int i = 0; i < N; i++) {
        snprintf(topic, sizeof(topic), "tk/%d", i);
        snprintf(payload, sizeof(payload), "%d", i);
        client_expect_message(second[i], topic, payload, NULL, NULL);
    }
    cr_assert(client_no_message(second[0], E2E_ABSENT_MS));
    for (int i = 0; i < N; i++) {
        cr_assert(client_no_message(second[i], 0), "tk%d: message twice", i);
        cr_assert(client_no_message(first[i], 0), "tk%d: old connection got a message", i);
        client_disconnect(second[i]);
        client_destroy(first[i]);
    }
    client_disconnect(pub);
    broker_stop(&b);
}

Test(shards, persistent_sessions_follow_reconnects_16_client_ids)
{
    enum { N = 16, M = 5 };
    broker_start(&b, NULL);
    char id[32], topic[32], payload[32];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "mv%d", i);
        struct client *c = client_open(&b, id, false);
        snprintf(topic, sizeof(topic), "mv/%d", i);
        cr_assert(client_subscribe(c, topic, 1) == 1);
        client_disconnect(c);
    }
    struct client *pub = client_open(&b, "pub", true);
    for (int i = 0; i < N; i++) {
        snprintf(topic, sizeof(topic), "mv/%d", i);
        for (int k = 0; k < M; k++) {
            int len = snprintf(payload, sizeof(payload), "%d", k);
            client_publish_async(pub, topic, payload, len, 1, false);
        }
    }
    client_wait_published(pub, N * M);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "mv%d", i);
        struct client *c = client_open(&b, id, false);
        cr_assert(client_session_present(c), "%s: session lost", id);
        snprintf(topic, sizeof(topic), "mv/%d", i);
        for (int k = 0; k < M; k++) {
            snprintf(payload, sizeof(payload), "%d", k);
            client_expect_message(c, topic, payload, NULL, NULL);
        }
        client_disconnect(c);
    }
    client_disconnect(pub);
    broker_stop(&b);
}

/* Every shard holds a replica of the retained store. Publishers homed on different
 * shards replacing (and clearing, MQTT-3.3.1-10/-11) the same retained topics at the
 * same time must leave every replica with the same message: subscribers, spread over
 * the shards, must all be sent the same retained message per topic, or none. */
Test(shards, retained_replicas_agree_after_concurrent_replace_and_clear)
{
    enum { P = 8, T = 64, S = 16, ROUNDS = 3 };
    broker_start(&b, NULL);
    struct client *pub[P];
    char id[32], topic[32], payload[32];
    for (int i = 0; i < P; i++) {
        snprintf(id, sizeof(id), "rpub%d", i);
        pub[i] = client_open(&b, id, true);
    }
    for (int r = 0; r < ROUNDS; r++) {
        /* Every publisher writes every topic, as fast as it can: value or clear. */
        for (int k = 0; k < T; k++) {
            snprintf(topic, sizeof(topic), "rr%d/%d", r, k);
            for (int i = 0; i < P; i++) {
                int len = (i + k) % 3 == 0 ? 0 : snprintf(payload, sizeof(payload), "p%d", i);
                client_publish_async(pub[i], topic, payload, len, 1, true);
            }
        }
        /* pub[0] has also published the S end markers of each earlier round: its
         * count is all-time, so they are part of what it waits for. */
        for (int i = 0; i < P; i++)
            client_wait_published(pub[i], (r + 1) * T + (i == 0 ? r * S : 0));
        /* Each subscriber's SUBACK waits for every shard: the replica of its
         * shard has applied every publish acknowledged above. */
        int seen[S][T]; /* index of the publisher whose value is retained, -1: none */
        for (int j = 0; j < S; j++) {
            snprintf(id, sizeof(id), "rsub%d-%d", r, j);
            struct client *sub = client_open(&b, id, true);
            snprintf(topic, sizeof(topic), "rr%d/#", r);
            cr_assert(client_subscribe(sub, topic, 0) == 0);
            /* The retained messages follow the SUBACK; a message published now
             * comes after them. */
            snprintf(topic, sizeof(topic), "rr%d/end", r);
            client_publish(pub[0], topic, "end", 3, 1, false);
            for (int k = 0; k < T; k++)
                seen[j][k] = -1;
            for (;;) {
                struct msg m;
                cr_assert(client_wait_message(sub, &m, E2E_WAIT_MS) == 0,
                          "round %d subscriber %d: no end marker", r, j);
                const char *slash = strchr(m.topic, '/');
                bool end = slash && strcmp(slash + 1, "end") == 0;
                if (!end) {
                    int k = atoi(slash + 1);
                    cr_assert(m.retain && k >= 0 && k < T && seen[j][k] < 0 && m.len > 1);
                    seen[j][k] = atoi((char *)m.payload + 1);
                }
                msg_free(&m);
                if (end)
                    break;
            }
            client_disconnect(sub);
        }
        for (int j = 1; j < S; j++)
            for (int k = 0; k < T; k++)
                cr_assert(seen[j][k] == seen[0][k],
                          "round %d topic %d: subscriber 0 got retained %d, subscriber %d got %d "
                          "(-1: none): the shards' replicas diverged",
                          r, k, seen[0][k], j, seen[j][k]);
    }
    for (int i = 0; i < P; i++)
        client_disconnect(pub[i]);
    broker_stop(&b);
}
