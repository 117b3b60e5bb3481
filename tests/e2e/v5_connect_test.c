/* E2E, MQTT 5.0 connection life cycle: CONNACK properties from the configuration,
 * Assigned Client Identifier, Server Keep Alive, Clean Start and Session Expiry
 * (0, kept, changed at DISCONNECT, expiry, server maximum), server-initiated
 * DISCONNECT (keepalive 0x8D, takeover 0x8E, shutdown 0x8B) and enhanced
 * authentication with ringmqd's built-in test method. Raw v5 sockets throughout,
 * so every reason code and property is checked byte for byte. Each test starts
 * its own broker. */
#include "harness_v5.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct broker b;
static struct v5_pkt pk;

TestSuite(v5_connect, .fini = e2e_fini, .timeout = 30);

/* A raw v5 connection with the given id, Clean Start and Session Expiry Interval
 * (< 0: no property); returns the fd, CONNACK in pk (asserted reason 0). */
static int open_session(const char *id, bool clean, long expiry)
{
    struct raw_connect o = {.flags = -1, .clean = clean, .id = id, .keepalive = 60};
    struct props pr;
    props_init(&pr);
    if (expiry >= 0)
        props_u32(&pr, P_SESSION_EXPIRY, (uint32_t)expiry);
    int fd = v5_connect(&b, &o, &pr, NULL, &pk);
    cr_assert(pk.type == T_CONNACK && pk.reason == 0, "CONNACK 0x%02x for %s", pk.reason, id);
    return fd;
}

/* Publishes one QoS 1 message from a throwaway v5 client. */
static void publish_one(const char *topic, const char *payload)
{
    int fd = v5_open(&b, "e2e-pub", NULL);
    cr_assert(v5_publish(fd, topic, payload, 1, false, 1, NULL) < 0x80);
    v5_disconnect(fd, 0, NULL);
}

Test(v5_connect, mqtt_3_2_2_connack_properties_from_config)
{
    broker_start(&b, "mqtt.receive_maximum=100", "mqtt.topic_alias_maximum=7", "mqtt.maximum_qos=1",
                 "mqtt.retain_available=false", "limits.max_packet_size=2000", NULL);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "caps", .keepalive = 60};
    int fd = v5_connect(&b, &o, NULL, NULL, &pk);
    cr_assert_eq(pk.reason, 0);
    cr_expect_eq(v5_prop_num(&pk, P_TOPIC_ALIAS_MAXIMUM), 7);
    /* MQTT-3.2.2-9: a server without QoS 2 must say so. */
    cr_expect_eq(v5_prop_num(&pk, P_MAXIMUM_QOS), 1);
    cr_expect_eq(v5_prop_num(&pk, P_RETAIN_AVAILABLE), 0);
    /* The harness gives mosquitto max_packet_size = 1998 (it counts without the
     * length bytes) and mosquitto advertises that number. */
    cr_expect_eq(v5_prop_num(&pk, P_MAXIMUM_PACKET_SIZE), b.mosquitto ? 1998 : 2000);
    if (!b.mosquitto) /* mosquitto has no setting for its own Receive Maximum */
        cr_expect_eq(v5_prop_num(&pk, P_RECEIVE_MAXIMUM), 100);
    close(fd);
    broker_stop(&b);
}

Test(v5_connect, mqtt_3_2_2_connack_default_capabilities)
{
    /* Absent means "available" (Retain, Wildcard, Subscription Identifier and
     * Shared Subscription Available; Maximum QoS 2); a server that sends them
     * must send 1 (2 for Maximum QoS). ringmq's defaults: Receive Maximum 1024,
     * Topic Alias Maximum 64. */
    broker_start(&b, "mqtt.topic_alias_maximum=64", NULL);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "defaults", .keepalive = 60};
    int fd = v5_connect(&b, &o, NULL, NULL, &pk);
    cr_assert_eq(pk.reason, 0);
    static const uint8_t yes[] = {P_RETAIN_AVAILABLE, P_WILDCARD_SUB_AVAILABLE, P_SUB_ID_AVAILABLE,
                                  P_SHARED_SUB_AVAILABLE};
    for (size_t i = 0; i < sizeof(yes); i++) {
        const struct v5_prop *p = v5_prop(&pk, yes[i], 0);
        cr_expect(!p || p->num == 1, "property 0x%02x = %u", yes[i], p ? p->num : 0);
    }
    const struct v5_prop *q = v5_prop(&pk, P_MAXIMUM_QOS, 0);
    cr_expect(!q, "Maximum QoS %u sent although QoS 2 is supported", q ? q->num : 0);
    cr_expect_eq(v5_prop_num(&pk, P_TOPIC_ALIAS_MAXIMUM), 64);
    if (!b.mosquitto)
        cr_expect_eq(v5_prop_num(&pk, P_RECEIVE_MAXIMUM), 1024);
    close(fd);
    broker_stop(&b);
}

Test(v5_connect, mqtt_3_2_2_capabilities_off_announced_and_enforced)
{
    if (e2e_mosquitto())
        cr_skip_test("mosquitto cannot turn off wildcards, subscription ids or shares");
    broker_start(&b, "mqtt.wildcard_subscriptions=false", "mqtt.subscription_identifiers=false",
                 "mqtt.shared_subscriptions=false", NULL);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "off", .keepalive = 60};
    int fd = v5_connect(&b, &o, NULL, NULL, &pk);
    cr_assert_eq(pk.reason, 0);
    cr_expect_eq(v5_prop_num(&pk, P_WILDCARD_SUB_AVAILABLE), 0);
    cr_expect_eq(v5_prop_num(&pk, P_SUB_ID_AVAILABLE), 0);
    cr_expect_eq(v5_prop_num(&pk, P_SHARED_SUB_AVAILABLE), 0);
    v5_subscribe(fd, 1, "plain/t", 1, NULL, 1);
    v5_subscribe(fd, 2, "wild/+", 1, NULL, 0xa2);     /* Wildcard Subscriptions not supported */
    v5_subscribe(fd, 3, "$share/g/t", 1, NULL, 0x9e); /* Shared Subscriptions not supported */
    /* A Subscription Identifier when they are off is a protocol error: DISCONNECT 0xA1. */
    struct props pr;
    props_init(&pr);
    props_varint(&pr, P_SUBSCRIPTION_ID, 5);
    struct pkt p;
    pkt_subscribe5(&p, 4, "plain/u", 1, &pr);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    v5_expect_disconnect(fd, 0xa1, -1);
    close(fd);
    broker_stop(&b);
}

Test(v5_connect, mqtt_3_2_2_16_assigned_client_identifier)
{
    broker_start(&b, NULL);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "", .keepalive = 60};
    int fd = v5_connect(&b, &o, NULL, NULL, &pk);
    cr_assert_eq(pk.reason, 0);
    const struct v5_prop *id = v5_prop(&pk, P_ASSIGNED_CLIENT_ID, 0);
    cr_assert(id && id->len > 0, "no Assigned Client Identifier for an empty client id");
    char assigned[256];
    snprintf(assigned, sizeof(assigned), "%.*s", (int)id->len, (const char *)id->data);
    /* The identifier is the session's: a second connection with it takes over. */
    int fd2 = v5_open(&b, assigned, NULL);
    cr_assert(raw_wait_close(fd, E2E_WAIT_MS) == 0, "assigned id did not name the session");
    close(fd);
    close(fd2);
    broker_stop(&b);
}

Test(v5_connect, mqtt_3_2_2_21_server_keep_alive_replaces_the_clients)
{
    broker_start(&b, "mqtt.server_keepalive=10", NULL);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "ska", .keepalive = 60};
    int fd = v5_connect(&b, &o, NULL, NULL, &pk);
    cr_assert_eq(pk.reason, 0);
    cr_expect_eq(v5_prop_num(&pk, P_SERVER_KEEPALIVE), 10);
    close(fd);
    if (!b.mosquitto) {
        /* ringmq imposes its value on shorter keepalives too (and on 0). */
        o.keepalive = 0;
        o.id = "ska0";
        fd = v5_connect(&b, &o, NULL, NULL, &pk);
        cr_expect_eq(v5_prop_num(&pk, P_SERVER_KEEPALIVE), 10);
        close(fd);
    }
    broker_stop(&b);
}

/* A v5 CONNECT with `keepalive`; returns the Server Keep Alive of its CONNACK
 * (-1: none), asserting CONNACK 0. */
static long server_keepalive_for(const char *id, int keepalive)
{
    struct raw_connect o = {.flags = -1, .clean = true, .id = id, .keepalive = keepalive};
    int fd = v5_connect(&b, &o, NULL, NULL, &pk);
    cr_assert(pk.type == T_CONNACK && pk.reason == 0, "CONNACK 0x%02x", pk.reason);
    const struct v5_prop *ska = v5_prop(&pk, P_SERVER_KEEPALIVE, 0);
    close(fd);
    return ska ? (long)ska->num : -1;
}

/* MQTT-3.2.2-21 with mqtt.max_keepalive: within the cap the client keeps its
 * own keepalive (no Server Keep Alive, MQTT-3.2.2-22); over it, or 0 (none),
 * it is told the cap. */
Test(v5_connect, mqtt_3_2_2_21_max_keepalive_caps_the_clients)
{
    broker_start(&b, "mqtt.max_keepalive=30", NULL);
    static const struct {
        int keepalive;
        long told;
    } cases[] = {{5, -1}, {30, -1}, {31, 30}, {7200, 30}, {0, 30}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_assert_eq(server_keepalive_for("cap", cases[i].keepalive), cases[i].told, "keepalive %d",
                     cases[i].keepalive);
    broker_stop(&b);
}

/* Starts the broker with `setting`: a client asking for `keepalive` is told
 * Server Keep Alive 1 s and, silent, disconnected with 0x8D after 1.5 s. */
static void told_one_second_then_0x8d(const char *setting, int keepalive)
{
    broker_start(&b, setting, NULL);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "silent", .keepalive = keepalive};
    int fd = v5_connect(&b, &o, NULL, NULL, &pk);
    cr_assert_eq(pk.reason, 0);
    cr_assert_eq(v5_prop_num(&pk, P_SERVER_KEEPALIVE), 1);
    v5_expect_disconnect(fd, 0x8d, -1);
    close(fd);
    broker_stop(&b);
}

/* The cap is enforced: a client asking for no keepalive is held to 1 s. */
Test(v5_connect, mqtt_3_1_2_22_max_keepalive_enforced_with_0x8d)
{
    if (e2e_mosquitto())
        cr_skip_test("mosquitto's max_keepalive is at least 10 s");
    told_one_second_then_0x8d("mqtt.max_keepalive=1", 0);
}

/* server_keepalive replaces, max_keepalive caps: with both, a 5.0 client gets
 * server_keepalive, even above the cap. */
Test(v5_connect, mqtt_3_2_2_21_server_keepalive_wins_over_max_keepalive)
{
    if (e2e_mosquitto())
        cr_skip_test("the harness maps server_keepalive onto mosquitto's max_keepalive");
    broker_start(&b, "mqtt.server_keepalive=20", "mqtt.max_keepalive=10", NULL);
    cr_assert_eq(server_keepalive_for("both", 5), 20);
    cr_assert_eq(server_keepalive_for("both", 0), 20);
    cr_assert_eq(server_keepalive_for("both", 60), 20);
    broker_stop(&b);
}

Test(v5_connect, mqtt_3_1_2_22_server_keep_alive_enforced_with_0x8d)
{
    if (e2e_mosquitto())
        cr_skip_test("mosquitto's max_keepalive only lowers larger values, minimum 10 s");
    told_one_second_then_0x8d("mqtt.server_keepalive=1", 60);
}

Test(v5_connect, mqtt_3_1_2_22_keepalive_timeout_0x8d)
{
    broker_start(&b, NULL);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "silent", .keepalive = 1};
    int fd = v5_connect(&b, &o, NULL, NULL, &pk);
    cr_assert_eq(pk.reason, 0);
    v5_expect_disconnect(fd, 0x8d, -1);
    close(fd);
    broker_stop(&b);
}

Test(v5_connect, mqtt_3_1_4_3_takeover_disconnects_old_with_0x8e)
{
    broker_start(&b, NULL);
    int old = v5_open(&b, "twin", NULL);
    int fresh = v5_open(&b, "twin", NULL);
    v5_expect_disconnect(old, 0x8e, -1);
    close(old);
    /* The new connection is unaffected. */
    v5_subscribe(fresh, 1, "tw/t", 1, NULL, 1);
    close(fresh);
    broker_stop(&b);
}

Test(v5_connect, server_shutdown_disconnects_with_0x8b)
{
    broker_start(&b, NULL);
    int fd = v5_open(&b, "bye", NULL);
    v5_subscribe(fd, 1, "x/y", 0, NULL, 0); /* the CONNECT is fully processed */
    kill(b.pid, SIGTERM);
    v5_expect_disconnect(fd, 0x8b, -1);
    close(fd);
    broker_stop(&b); /* reaps it and checks the exit status */
}

Test(v5_connect, mqtt_3_1_2_23_session_expiry_absent_ends_with_connection)
{
    broker_start(&b, NULL);
    int fd = open_session("nox", false, -1);
    v5_subscribe(fd, 1, "nox/t", 1, NULL, 1);
    v5_disconnect(fd, 0, NULL);
    fd = open_session("nox", false, -1);
    cr_assert_not(pk.session_present, "session outlived a connection with expiry 0");
    close(fd);
    broker_stop(&b);
}

Test(v5_connect, mqtt_3_1_2_23_session_kept_and_messages_queued)
{
    broker_start(&b, NULL);
    int fd = open_session("keep", false, 60);
    v5_subscribe(fd, 1, "keep/t", 1, NULL, 1);
    close(fd); /* unclean close: the session stays for 60 s */
    publish_one("keep/t", "while away");
    fd = open_session("keep", false, 60);
    cr_assert(pk.session_present, "MQTT-3.2.2-2");
    v5_expect_publish(fd, &pk);
    cr_assert_str_eq(pk.topic, "keep/t");
    cr_assert(v5_payload_is(&pk, "while away"));
    close(fd);
    /* MQTT-3.1.2-4: Clean Start discards it. */
    fd = open_session("keep", true, 60);
    cr_assert_not(pk.session_present, "Clean Start kept the session");
    close(fd);
    broker_stop(&b);
}

Test(v5_connect, mqtt_3_14_2_2_disconnect_sets_expiry_after_zero_is_protocol_error)
{
    broker_start(&b, NULL);
    int fd = open_session("zero", false, 0);
    struct props pr;
    props_init(&pr);
    props_u32(&pr, P_SESSION_EXPIRY, 30);
    struct pkt p;
    pkt_reason5(&p, 0xe0, 0, &pr);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    v5_expect_disconnect(fd, 0x82, -1);
    close(fd);
    fd = open_session("zero", false, -1);
    cr_assert_not(pk.session_present, "the session must not survive");
    close(fd);
    broker_stop(&b);
}

Test(v5_connect, mqtt_3_14_2_disconnect_changes_session_expiry)
{
    broker_start(&b, NULL);
    /* 60 -> 0 at DISCONNECT: the session ends now. */
    int fd = open_session("shrink", false, 60);
    v5_subscribe(fd, 1, "sh/t", 1, NULL, 1);
    struct props pr;
    props_init(&pr);
    props_u32(&pr, P_SESSION_EXPIRY, 0);
    v5_disconnect(fd, 0, &pr);
    fd = open_session("shrink", false, -1);
    cr_assert_not(pk.session_present, "DISCONNECT with expiry 0 kept the session");
    close(fd);
    /* 60 -> 120: still kept. */
    fd = open_session("grow", false, 60);
    props_init(&pr);
    props_u32(&pr, P_SESSION_EXPIRY, 120);
    v5_disconnect(fd, 0, &pr);
    fd = open_session("grow", false, 60);
    cr_assert(pk.session_present, "DISCONNECT with expiry 120 lost the session");
    close(fd);
    broker_stop(&b);
}

Test(v5_connect, mqtt_3_1_3_9_session_expiry_publishes_delayed_will_and_ends_session)
{
    /* The session's end is observed through its will: with Will Delay 3600 and
     * Session Expiry 1, the will is published when the session expires
     * (MQTT-3.1.3-9), about 1 s after the close; no sleeping. */
    broker_start(&b, NULL);
    int watcher = v5_open(&b, "watcher", NULL);
    v5_subscribe(watcher, 1, "exp/will", 0, NULL, 0);
    struct raw_connect o = {.flags = -1,
                            .clean = false,
                            .id = "expiring",
                            .keepalive = 60,
                            .will_topic = "exp/will",
                            .will_payload = "expired"};
    struct props pr, wp;
    props_init(&pr);
    props_u32(&pr, P_SESSION_EXPIRY, 1);
    props_init(&wp);
    props_u32(&wp, P_WILL_DELAY, 3600);
    int fd = v5_connect(&b, &o, &pr, &wp, &pk);
    cr_assert_eq(pk.reason, 0);
    v5_subscribe(fd, 1, "exp/t", 1, NULL, 1);
    close(fd);
    v5_expect_publish(watcher, &pk);
    cr_assert(v5_payload_is(&pk, "expired"));
    fd = open_session("expiring", false, -1);
    cr_assert_not(pk.session_present, "session still present after its expiry");
    close(fd);
    close(watcher);
    broker_stop(&b);
}

Test(v5_connect, mqtt_3_2_2_max_session_expiry_returned_in_connack)
{
    if (e2e_mosquitto())
        cr_skip_test("mosquitto has no maximum session expiry to announce");
    broker_start(&b, "mqtt.max_session_expiry=100", NULL);
    int fd = open_session("greedy", true, 1000);
    cr_expect_eq(v5_prop_num(&pk, P_SESSION_EXPIRY), 100);
    close(fd);
    fd = open_session("modest", true, 50);
    const struct v5_prop *se = v5_prop(&pk, P_SESSION_EXPIRY, 0);
    cr_expect(!se || se->num == 50, "granted %u for a request of 50", se ? se->num : 0);
    close(fd);
    broker_stop(&b);
}

Test(v5_connect, connection_quota_exceeded_0x97)
{
    if (e2e_mosquitto())
        cr_skip_test("mosquitto closes over-limit connections without a CONNACK");
    broker_start(&b, "limits.max_connections=1", NULL);
    int fd = v5_open(&b, "first", NULL);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "second", .keepalive = 60};
    int fd2 = v5_connect(&b, &o, NULL, NULL, &pk);
    cr_expect_eq(pk.reason, 0x97, "CONNACK 0x%02x, want 0x97 (Quota exceeded)", pk.reason);
    cr_assert(raw_wait_close(fd2, E2E_WAIT_MS) == 0);
    close(fd2);
    close(fd);
    broker_stop(&b);
}

/* ---- enhanced authentication (ringmqd's built-in test method) ------------------ */

Test(v5_connect, mqtt_4_12_0_2_enhanced_auth_challenge_response)
{
    if (e2e_mosquitto())
        cr_skip_test("the test authentication method is built into ringmqd");
    broker_start(&b, "mqtt.test_auth_method=e2e-test", NULL);
    int fd = v5_connect_auth(&b, "authc", "e2e-test", "hello", &pk);
    cr_assert_eq(pk.type, T_AUTH, "expected AUTH, got packet type %d", pk.type);
    cr_assert_eq(pk.reason, 0x18); /* MQTT-4.12.0-2: Continue authentication */
    cr_assert(v5_prop_is(&pk, P_AUTH_METHOD, "e2e-test"), "MQTT-4.12.0-5");
    cr_assert(v5_prop_is(&pk, P_AUTH_DATA, "challenge"));
    v5_send_auth(fd, 0x18, "e2e-test", "response");
    v5_expect(fd, T_CONNACK, &pk);
    cr_assert_eq(pk.reason, 0);
    cr_assert(v5_prop_is(&pk, P_AUTH_METHOD, "e2e-test"), "MQTT-4.12.0-5");
    /* MQTT-4.12.1-1: re-authentication on the live connection. */
    v5_send_auth(fd, 0x19, "e2e-test", "hello");
    v5_expect(fd, T_AUTH, &pk);
    cr_assert_eq(pk.reason, 0x18);
    cr_assert(v5_prop_is(&pk, P_AUTH_DATA, "challenge"));
    v5_send_auth(fd, 0x18, "e2e-test", "response");
    v5_expect(fd, T_AUTH, &pk);
    cr_assert_eq(pk.reason, 0x00, "re-authentication: AUTH 0x%02x, want success", pk.reason);
    cr_assert(v5_prop_is(&pk, P_AUTH_METHOD, "e2e-test"));
    /* Still connected and working. */
    v5_subscribe(fd, 1, "auth/t", 1, NULL, 1);
    close(fd);
    broker_stop(&b);
}

Test(v5_connect, mqtt_4_12_0_enhanced_auth_bad_response_0x86)
{
    if (e2e_mosquitto())
        cr_skip_test("the test authentication method is built into ringmqd");
    broker_start(&b, "mqtt.test_auth_method=e2e-test", NULL);
    int fd = v5_connect_auth(&b, "authc", "e2e-test", "hello", &pk);
    cr_assert_eq(pk.type, T_AUTH);
    v5_send_auth(fd, 0x18, "e2e-test", "wrong");
    v5_expect(fd, T_CONNACK, &pk);
    cr_assert_eq(pk.reason, 0x86, "CONNACK 0x%02x, want 0x86 (Bad user name or password)",
                 pk.reason);
    cr_assert(raw_wait_close(fd, E2E_WAIT_MS) == 0);
    close(fd);
    /* Wrong initial data fails as well. */
    fd = v5_connect_auth(&b, "authc", "e2e-test", "bonjour", &pk);
    cr_assert(pk.type == T_CONNACK && pk.reason == 0x86, "type %d reason 0x%02x", pk.type,
              pk.reason);
    close(fd);
    broker_stop(&b);
}

Test(v5_connect, mqtt_4_12_0_1_unknown_auth_method_0x8c)
{
    /* Both brokers: mosquitto without an auth plugin knows no method either. */
    broker_start(&b, e2e_mosquitto() ? NULL : "mqtt.test_auth_method=e2e-test", NULL);
    int fd = v5_connect_auth(&b, "authc", "no-such-method", "hello", &pk);
    cr_assert(pk.type == T_CONNACK && pk.reason == 0x8c,
              "packet type %d reason 0x%02x, want CONNACK 0x8C", pk.type, pk.reason);
    cr_assert(raw_wait_close(fd, E2E_WAIT_MS) == 0, "MQTT-4.12.0-1: must close");
    close(fd);
    broker_stop(&b);
}

Test(v5_connect, mqtt_4_12_0_1_auth_method_when_none_configured_0x8c)
{
    if (e2e_mosquitto())
        cr_skip_test("covered by the unknown-method test");
    broker_start(&b, NULL); /* test_auth_method empty: no method at all */
    int fd = v5_connect_auth(&b, "authc", "e2e-test", "hello", &pk);
    cr_assert(pk.type == T_CONNACK && pk.reason == 0x8c, "type %d reason 0x%02x", pk.type,
              pk.reason);
    close(fd);
    broker_stop(&b);
}

Test(v5_connect, mqtt_3_1_2_request_response_information_accepted)
{
    broker_start(&b, NULL);
    struct props pr;
    props_init(&pr);
    props_u8(&pr, P_REQUEST_RESPONSE_INFO, 1);
    int fd = v5_open(&b, "rri", &pr);
    close(fd);
    broker_stop(&b);
}
