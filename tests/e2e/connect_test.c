/* E2E: CONNECT validation, CONNACK (return codes, session present), PINGREQ and
 * DISCONNECT, keepalive expiry. Raw sockets where exact bytes matter, libmosquitto
 * for the well-behaved paths. Each test starts its own broker. */
#include "harness.h"
#include "harness_v5.h"

#include <criterion/criterion.h>
#include <mosquitto.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

static struct broker b;

TestSuite(connect, .fini = e2e_fini, .timeout = 30);

/* Reads until the broker closes: anything it sends first may only be a refusing
 * CONNACK (return code != 0, session present 0). */
static void expect_refused_close(int fd)
{
    uint8_t in[64];
    int n;
    while ((n = raw_read_packet(fd, in, sizeof(in), E2E_WAIT_MS)) > 0) {
        cr_assert(n == 4 && in[0] == 0x20, "only a CONNACK may precede the close, got 0x%02x",
                  in[0]);
        cr_assert(in[3] != 0, "the CONNECT must not be accepted");
        cr_assert(in[2] == 0, "MQTT-3.2.2-4: session present 0 with a refusal");
    }
    cr_assert(n == 0, "broker did not close the connection (%d)", n);
    close(fd);
}

static void send_connect(int fd, const struct raw_connect *o)
{
    struct pkt p;
    pkt_connect(&p, o);
    cr_assert(raw_send_pkt(fd, &p) == 0);
}

/* A second client that still works proves the broker survived. */
static void expect_broker_alive(void)
{
    struct client *c = client_open(&b, "alive-check", true);
    cr_assert(client_subscribe(c, "alive/t", 1) == 1);
    client_publish(c, "alive/t", "x", 1, 1, false);
    client_expect_message(c, "alive/t", "x", NULL, NULL);
    client_disconnect(c);
}

Test(connect, accepts_3_1_1_and_exchanges)
{
    broker_start(&b, NULL);
    struct client *c = client_open(&b, "c311", true);
    cr_assert(client_subscribe(c, "a/b", 0) == 0);
    client_publish(c, "a/b", "hello", 5, 0, false);
    client_expect_message(c, "a/b", "hello", NULL, NULL);
    client_disconnect(c);
    broker_stop(&b);
}

Test(connect, mqtt_3_1_2_1_accepts_protocol_3_1_mqisdp)
{
    broker_start(&b, NULL);
    struct client_opts o = {.id = "c31", .clean = true, .protocol = MQTT_PROTOCOL_V31};
    struct client *c = client_connect(&b, &o);
    cr_assert(client_subscribe(c, "a/b", 1) == 1);
    client_publish(c, "a/b", "v31", 3, 1, false);
    client_expect_message(c, "a/b", "v31", NULL, NULL);
    client_disconnect(c);
    broker_stop(&b);
}

Test(connect, mqtt_3_1_2_2_unsupported_level_6_connack_1_then_close)
{
    broker_start(&b, NULL);
    int fd = raw_open(&b);
    struct raw_connect o = {.level = 6, .flags = -1, .clean = true, .id = "lvl6"};
    send_connect(fd, &o);
    uint8_t in[16];
    int n = raw_read_packet(fd, in, sizeof(in), E2E_WAIT_MS);
    cr_assert(n == 4, "expected CONNACK, got %d", n);
    cr_assert(in[0] == 0x20 && in[1] == 2 && in[2] == 0 && in[3] == 0x01,
              "expected 20 02 00 01, got %02x %02x %02x %02x", in[0], in[1], in[2], in[3]);
    cr_assert(raw_wait_close(fd, E2E_WAIT_MS) == 0, "MQTT-3.1.2-2: must close after CONNACK 1");
    close(fd);
    expect_broker_alive();
    broker_stop(&b);
}

Test(connect, mqtt_3_1_2_1_wrong_protocol_name_refused)
{
    broker_start(&b, NULL);
    int fd = raw_open(&b);
    struct raw_connect o = {.proto_name = "MQTX", .flags = -1, .clean = true, .id = "name"};
    send_connect(fd, &o);
    expect_refused_close(fd);
    expect_broker_alive();
    broker_stop(&b);
}

Test(connect, mqtt_3_1_2_3_reserved_flag)
{
    broker_start(&b, NULL);
    int fd = raw_open(&b);
    struct raw_connect o = {.flags = 0x03, .id = "reserved"};
    send_connect(fd, &o);
    expect_refused_close(fd);
    expect_broker_alive();
    broker_stop(&b);
}

Test(connect, mqtt_3_1_2_13_will_qos_without_will_flag)
{
    broker_start(&b, NULL);
    int fd = raw_open(&b);
    struct raw_connect o = {.flags = 0x02 | 0x08, .id = "wq"};
    send_connect(fd, &o);
    expect_refused_close(fd);
    broker_stop(&b);
}

Test(connect, mqtt_3_1_2_15_will_retain_without_will_flag)
{
    broker_start(&b, NULL);
    int fd = raw_open(&b);
    struct raw_connect o = {.flags = 0x02 | 0x20, .id = "wr"};
    send_connect(fd, &o);
    expect_refused_close(fd);
    broker_stop(&b);
}

Test(connect, mqtt_3_1_2_14_will_qos_3)
{
    broker_start(&b, NULL);
    int fd = raw_open(&b);
    struct raw_connect o = {
        .flags = 0x02 | 0x04 | 0x18, .id = "wq3", .will_topic = "w/t", .will_payload = "x"};
    send_connect(fd, &o);
    expect_refused_close(fd);
    broker_stop(&b);
}

Test(connect, mqtt_3_1_2_22_password_without_username)
{
    broker_start(&b, NULL);
    int fd = raw_open(&b);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "pw", .password = "secret"};
    send_connect(fd, &o);
    expect_refused_close(fd);
    expect_broker_alive();
    broker_stop(&b);
}

Test(connect, username_and_password_accepted_without_auth_plugin)
{
    broker_start(&b, NULL);
    struct client_opts o = {.id = "up", .clean = true, .username = "u", .password = "p"};
    struct client *c = client_connect(&b, &o);
    client_disconnect(c);
    broker_stop(&b);
}

Test(connect, mqtt_3_1_3_6_empty_client_id_clean_session_gets_assigned_id)
{
    broker_start(&b, NULL);
    struct raw_connect o = {.flags = -1, .clean = true, .id = ""};
    int fd1 = raw_mqtt_open(&b, &o);
    int fd2 = raw_mqtt_open(&b, &o);
    /* Both stay connected: had they been given the same id, the second would have
     * taken over the first. */
    uint8_t ping[] = {0xc0, 0x00}, in[8];
    for (int i = 0; i < 2; i++) {
        int fd = i ? fd2 : fd1;
        cr_assert(raw_send(fd, ping, sizeof(ping)) == 0);
        cr_assert(raw_read_packet(fd, in, sizeof(in), E2E_WAIT_MS) == 2);
        cr_assert(in[0] == 0xd0 && in[1] == 0, "expected PINGRESP");
    }
    close(fd1);
    close(fd2);
    broker_stop(&b);
}

Test(connect, mqtt_3_1_3_8_empty_client_id_without_clean_session_connack_2)
{
    broker_start(&b, NULL);
    int fd = raw_open(&b);
    struct raw_connect o = {.flags = -1, .clean = false, .id = ""};
    send_connect(fd, &o);
    uint8_t in[16];
    int n = raw_read_packet(fd, in, sizeof(in), E2E_WAIT_MS);
    cr_assert(n == 4 && in[0] == 0x20 && in[3] == 0x02, "expected CONNACK 0x02 (n=%d, rc=%d)", n,
              n == 4 ? in[3] : -1);
    cr_assert(in[2] == 0, "MQTT-3.2.2-4");
    cr_assert(raw_wait_close(fd, E2E_WAIT_MS) == 0, "MQTT-3.1.3-9: close after refusal");
    close(fd);
    broker_stop(&b);
}

Test(connect, mqtt_3_1_3_5_accepts_23_char_alphanumeric_id)
{
    broker_start(&b, NULL);
    struct client *c = client_open(&b, "abcdefghijABCDEFGHIJ012", true);
    client_disconnect(c);
    broker_stop(&b);
}

Test(connect, mqtt_3_2_2_1_clean_session_session_present_0)
{
    broker_start(&b, NULL);
    struct client *c = client_open(&b, "sp", false);
    cr_assert(client_subscribe(c, "sp/t", 1) == 1);
    client_disconnect(c);
    c = client_open(&b, "sp", true); /* a stored session exists, yet clean wins */
    cr_assert_not(client_session_present(c), "MQTT-3.2.2-1");
    client_disconnect(c);
    broker_stop(&b);
}

Test(connect, mqtt_3_2_2_2_session_present_1_when_session_stored)
{
    broker_start(&b, NULL);
    struct client *c = client_open(&b, "sp", false);
    cr_assert_not(client_session_present(c), "MQTT-3.2.2-3: nothing stored yet");
    cr_assert(client_subscribe(c, "sp/t", 1) == 1);
    client_disconnect(c);
    c = client_open(&b, "sp", false);
    cr_assert(client_session_present(c), "MQTT-3.2.2-2");
    client_disconnect(c);
    broker_stop(&b);
}

Test(connect, mqtt_3_2_2_3_no_stored_session_session_present_0)
{
    broker_start(&b, NULL);
    struct raw_connect o = {.flags = -1, .clean = false, .id = "fresh"};
    int rc = -1;
    bool sp = true;
    int fd = raw_mqtt_connect(&b, &o, &rc, &sp);
    cr_assert(rc == 0);
    cr_assert_not(sp, "MQTT-3.2.2-3");
    close(fd);
    broker_stop(&b);
}

Test(connect, mqtt_3_12_4_1_pingreq_gets_pingresp)
{
    broker_start(&b, NULL);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "ping", .keepalive = 30};
    int fd = raw_mqtt_open(&b, &o);
    uint8_t ping[] = {0xc0, 0x00}, in[8];
    for (int i = 0; i < 3; i++) {
        cr_assert(raw_send(fd, ping, sizeof(ping)) == 0);
        int n = raw_read_packet(fd, in, sizeof(in), E2E_WAIT_MS);
        cr_assert(n == 2 && in[0] == 0xd0 && in[1] == 0, "expected PINGRESP (n=%d)", n);
    }
    close(fd);
    broker_stop(&b);
}

Test(connect, connect_split_into_single_bytes)
{
    broker_start(&b, NULL);
    struct pkt p;
    uint8_t out[256], in[8];
    struct raw_connect o = {.flags = -1, .clean = true, .id = "bytewise", .keepalive = 30};
    pkt_connect(&p, &o);
    size_t n = pkt_encode(&p, out);
    int fd = raw_open(&b);
    for (size_t i = 0; i < n; i++)
        cr_assert(raw_send(fd, out + i, 1) == 0);
    cr_assert(raw_read_packet(fd, in, sizeof(in), E2E_WAIT_MS) == 4);
    cr_assert(in[0] == 0x20 && in[3] == 0, "CONNACK 0 expected");
    close(fd);
    broker_stop(&b);
}

Test(connect, mqtt_3_14_4_1_disconnect_closes_connection)
{
    broker_start(&b, NULL);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "bye"};
    int fd = raw_mqtt_open(&b, &o);
    uint8_t disc[] = {0xe0, 0x00};
    cr_assert(raw_send(fd, disc, sizeof(disc)) == 0);
    cr_assert(raw_wait_close(fd, E2E_WAIT_MS) == 0);
    close(fd);
    broker_stop(&b);
}

Test(connect, mqtt_3_1_2_24_keepalive_expiry_closes_silent_client)
{
    broker_start(&b, NULL);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "silent", .keepalive = 1};
    int fd = raw_mqtt_open(&b, &o);
    /* The client now says nothing: one and a half keepalive periods later the
     * broker must close it. 5 s bounds the wait generously. */
    cr_assert(raw_wait_close(fd, 5000) == 0, "MQTT-3.1.2-24: silent client not closed");
    close(fd);
    expect_broker_alive();
    broker_stop(&b);
}

/* limits.max_connections: a connection beyond the limit gets CONNACK 0x03
 * (server unavailable) and is closed; those already connected keep working. */
Test(connect, max_connections_refuses_the_extra_connection)
{
    broker_start(&b, "limits.max_connections=2", NULL);
    struct client *one = client_open(&b, "one", true);
    struct client *two = client_open(&b, "two", true);
    int fd = raw_open(&b);
    struct pkt p;
    struct raw_connect o = {.flags = -1, .clean = true, .id = "three", .keepalive = 60};
    pkt_connect(&p, &o);
    raw_send_pkt(fd, &p);
    uint8_t buf[16];
    int n = raw_read_packet(fd, buf, sizeof(buf), E2E_WAIT_MS);
    cr_assert(n == 4 && buf[0] == 0x20 && buf[3] == 0x03, "want CONNACK 0x03, got %d bytes", n);
    cr_assert_eq(raw_wait_close(fd, E2E_WAIT_MS), 0);
    close(fd);
    cr_assert_eq(client_subscribe(one, "mc/t", 1), 1);
    client_publish(two, "mc/t", "still", 5, 1, false);
    client_expect_message(one, "mc/t", "still", NULL, NULL);
    client_disconnect(one);
    client_disconnect(two);
    broker_stop(&b);
}

/* Sends CONNECT `o` on a new connection; returns the CONNACK return code
 * (asserting one arrives), after waiting for the close when it refuses. */
static bool on_mosquitto(void)
{
    return getenv("RINGMQ_E2E_BROKER") && !strcmp(getenv("RINGMQ_E2E_BROKER"), "mosquitto");
}

static int connack_rc(const struct raw_connect *o)
{
    int rc;
    bool present;
    int fd = raw_mqtt_connect(&b, o, &rc, &present);
    if (rc != 0)
        cr_assert(raw_wait_close(fd, E2E_WAIT_MS) == 0, "MQTT-3.2.2-5: close after refusal");
    close(fd);
    return rc;
}

/* mqtt.max_keepalive caps the keepalive, and a 3.1/3.1.1 client cannot be told
 * a lower one (it has no Server Keep Alive): asking for more, or for 0 (no
 * keepalive at all), it is refused with CONNACK 0x02, as mosquitto does; within
 * the cap it keeps its own. */
Test(connect, max_keepalive_refuses_3_1_1_clients_over_it_with_0x02)
{
    broker_start(&b, "mqtt.max_keepalive=30", NULL);
    static const struct {
        int keepalive, rc;
    } cases[] = {{5, 0}, {30, 0}, {31, 2}, {7200, 2}, {0, 2}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct raw_connect o = {
            .flags = -1, .clean = true, .id = "ka", .keepalive = cases[i].keepalive};
        cr_assert_eq(connack_rc(&o), cases[i].rc, "keepalive %d", cases[i].keepalive);
        o.level = 3; /* 3.1 alike */
        o.proto_name = "MQIsdp";
        cr_assert_eq(connack_rc(&o), cases[i].rc, "3.1, keepalive %d", cases[i].keepalive);
    }
    broker_stop(&b);
}

/* Within the cap the client's own keepalive holds: 1 s, not 30, so a silent
 * client is closed after 1.5 s (bound: 5 s). */
Test(connect, mqtt_3_1_2_24_keepalive_within_max_keepalive_is_the_clients)
{
    if (on_mosquitto())
        cr_skip_test("mosquitto closes a client with keepalive 1 s after about 6 s");
    broker_start(&b, "mqtt.max_keepalive=30", NULL);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "silent", .keepalive = 1};
    int fd = raw_mqtt_open(&b, &o);
    cr_assert(raw_wait_close(fd, 5000) == 0, "MQTT-3.1.2-24: silent client not closed");
    close(fd);
    broker_stop(&b);
}

/* server_keepalive replaces only what a client can be told of (5.0): a 3.1.1
 * client is still held to max_keepalive when both are set. */
Test(connect, max_keepalive_applies_to_3_1_1_when_server_keepalive_is_set)
{
    if (on_mosquitto())
        cr_skip_test("the harness maps server_keepalive onto mosquitto's max_keepalive");
    broker_start(&b, "mqtt.server_keepalive=20", "mqtt.max_keepalive=10", NULL);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "ka", .keepalive = 15};
    cr_assert_eq(connack_rc(&o), 2);
    o.keepalive = 10;
    cr_assert_eq(connack_rc(&o), 0);
    broker_stop(&b);
}

/* ---- connections that have not sent CONNECT (limits.max_pending_connections,
 * limits.connect_timeout) ---- */

#define SILENT 24

/* The broker closed fd without sending a byte. */
static void expect_closed_unanswered(int fd, const char *what)
{
    uint8_t in[16];
    int n = raw_read_packet(fd, in, sizeof(in), E2E_WAIT_MS);
    cr_assert(n == 0 || n == -ECONNRESET, "%s: want a close and no byte, got %d (0x%02x)", what, n,
              n > 0 ? in[0] : 0);
    close(fd);
}

/* The broker has neither closed fd nor sent anything on it. */
static bool still_open(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 0;
}

/* With one shard, every connection opened before this returns has been
 * accepted: accepts come off the listener's queue in order, and the CONNACK
 * of this later one shows its accept happened. (With several shards, each
 * has its own queue: then it only makes that likely.) */
static void sync_accepts(const char *id)
{
    struct raw_connect o = {.flags = -1, .clean = true, .id = id, .keepalive = 60};
    int rc = -1;
    int fd = raw_mqtt_connect(&b, &o, &rc, NULL); /* any CONNACK will do */
    uint8_t disc[] = {0xe0, 0x00};
    if (rc == 0)
        cr_assert(raw_send(fd, disc, sizeof(disc)) == 0);
    cr_assert(raw_wait_close(fd, E2E_WAIT_MS) == 0);
    close(fd);
}

/* limits.max_connections counts clients whose CONNECT was accepted: more
 * silent TCP connections than the limit (which held places until their
 * connect timeout, so that reopening them kept everyone out) do not refuse a
 * real client, and the limit still holds among real clients. */
Test(connect, silent_sockets_do_not_count_against_max_connections)
{
    if (e2e_mosquitto())
        cr_skip_test("ringmqd limits");
    broker_start(&b, "limits.max_connections=2", NULL);
    int silent[SILENT];
    for (int i = 0; i < SILENT; i++)
        silent[i] = raw_open(&b);
    sync_accepts("sync"); /* the silent sockets are in the broker */
    struct client *one = NULL, *two = NULL, *three = NULL;
    struct client_opts o1 = {.id = "one", .clean = true}, o2 = {.id = "two", .clean = true};
    struct client_opts o3 = {.id = "three", .clean = true};
    cr_assert_eq(client_connect_rc(&b, &o1, &one), 0, "silent sockets locked a client out");
    cr_assert_eq(client_connect_rc(&b, &o2, &two), 0, "silent sockets locked a client out");
    cr_assert_eq(client_connect_rc(&b, &o3, &three), 3, "max_connections = 2 must still hold");
    client_destroy(three);
    for (int i = 0; i < SILENT; i++) {
        cr_assert(still_open(silent[i]), "silent socket %d closed early", i);
        close(silent[i]);
    }
    cr_assert_eq(client_subscribe(one, "pc/t", 1), 1);
    client_publish(two, "pc/t", "in", 2, 1, false);
    client_expect_message(one, "pc/t", "in", NULL, NULL);
    client_disconnect(one);
    client_disconnect(two);
    broker_stop(&b);
}

/* Beyond limits.max_pending_connections the oldest connection still
 * waiting for CONNECT is closed (unanswered) to admit the new one, which
 * can then connect; the others are left alone. The budget is per shard
 * (max_pending_connections / shards), so one shard makes "oldest" exact. */
Test(connect, oldest_pending_connection_closed_beyond_max_pending)
{
    if (e2e_mosquitto())
        cr_skip_test("ringmqd limits");
    broker_start(&b, "server.shards=1", "limits.max_pending_connections=4", NULL);
    int oldest = raw_open(&b);
    sync_accepts("sync"); /* pending while it connects: 2 of 4 */
    int mid[3];
    for (int i = 0; i < 3; i++)
        mid[i] = raw_open(&b); /* with the oldest, 4 pending: the budget */
    cr_assert(still_open(oldest), "closed within the budget");
    struct raw_connect o = {.flags = -1, .clean = true, .id = "newest", .keepalive = 60};
    int newest = raw_mqtt_open(&b, &o); /* the fifth: CONNACK 0 */
    expect_closed_unanswered(oldest, "the oldest pending connection");
    for (int i = 0; i < 3; i++) {
        cr_assert(still_open(mid[i]), "pending connection %d closed, not the oldest", i + 1);
        close(mid[i]);
    }
    struct pkt p;
    pkt_init(&p, 0xc0); /* PINGREQ */
    cr_assert(raw_send_pkt(newest, &p) == 0);
    uint8_t in[8];
    cr_assert_eq(raw_read_packet(newest, in, sizeof(in), E2E_WAIT_MS), 2);
    cr_assert_eq(in[0], 0xd0);
    close(newest);
    cr_assert_eq(broker_log_count(&b, "max_pending_connections reached"), 1);
    broker_stop(&b);
}

/* limits.connect_timeout: a connection that sends nothing, or only part of
 * a CONNECT, is closed once the timeout passes (it used to be a fixed 10 s),
 * and not at once. */
Test(connect, connect_timeout_closes_silent_and_partial_connections)
{
    if (e2e_mosquitto())
        cr_skip_test("ringmqd limits");
    broker_start(&b, "limits.connect_timeout=1", NULL);
    int silent = raw_open(&b);
    int partial = raw_open(&b);
    uint8_t part[] = {0x10, 0x0c, 0x00, 0x04, 'M'};
    cr_assert(raw_send(partial, part, sizeof(part)) == 0);
    cr_assert(still_open(silent) && still_open(partial));
    uint8_t in[8];
    cr_assert_eq(raw_read_packet(silent, in, sizeof(in), E2E_ABSENT_MS), -ETIMEDOUT,
                 "closed long before connect_timeout");
    /* 1 s (plus the broker's 250 ms timer tick); 5 s bounds the wait. */
    expect_closed_unanswered(silent, "silent connection after connect_timeout");
    expect_closed_unanswered(partial, "partial CONNECT after connect_timeout");
    expect_broker_alive();
    broker_stop(&b);
}
