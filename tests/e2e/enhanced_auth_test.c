/* E2E, MQTT 5.0 enhanced authentication decided by an auth plugin (answers
 * from the plugin's own threads): CONNECT -> AUTH 0x18 challenge -> client AUTH
 * 0x18 -> CONNACK with the method; re-authentication AUTH 0x19 -> AUTH 0x18 ->
 * AUTH 0x00 on the live connection; a wrong response gets CONNACK 0x86; a
 * failed re-authentication a DISCONNECT 0x87. ringmqd only. */
#include "harness_v5.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct broker b;
static struct v5_pkt pk;

TestSuite(enhanced_auth, .fini = e2e_fini, .timeout = 60);

static void start(void)
{
    if (e2e_mosquitto())
        cr_skip_test("ringmq plugins");
    static char set_path[300];
    snprintf(set_path, sizeof(set_path), "plugin.chal.path=%s", getenv("RINGMQ_CHALLENGE_SO"));
    broker_start(&b, set_path, NULL);
}

Test(enhanced_auth, mqtt_4_12_0_plugin_challenge_response_and_reauth)
{
    start();
    int fd = v5_connect_auth(&b, "chal", "plugin-chal", "hello", &pk);
    cr_assert_eq(pk.type, T_AUTH, "expected AUTH, got packet type %d", pk.type);
    cr_assert_eq(pk.reason, 0x18);
    cr_assert(v5_prop_is(&pk, P_AUTH_METHOD, "plugin-chal"), "MQTT-4.12.0-5");
    cr_assert(v5_prop_is(&pk, P_AUTH_DATA, "challenge"));
    v5_send_auth(fd, 0x18, "plugin-chal", "response");
    v5_expect(fd, T_CONNACK, &pk);
    cr_assert_eq(pk.reason, 0);
    cr_assert(v5_prop_is(&pk, P_AUTH_METHOD, "plugin-chal"));
    /* MQTT-4.12.1-1: re-authentication; the connection keeps working. */
    v5_send_auth(fd, 0x19, "plugin-chal", "hello");
    v5_expect(fd, T_AUTH, &pk);
    cr_assert_eq(pk.reason, 0x18);
    v5_send_auth(fd, 0x18, "plugin-chal", "response");
    v5_expect(fd, T_AUTH, &pk);
    cr_assert_eq(pk.reason, 0x00, "re-authentication: AUTH 0x%02x, want success", pk.reason);
    v5_subscribe(fd, 1, "t", 1, NULL, 1);
    close(fd);
    broker_stop(&b);
}

/* The plugin's user properties go on a successful re-authentication's AUTH,
 * but not to a client that set Request Problem Information to 0: then only
 * PUBLISH, CONNACK and DISCONNECT may carry them (MQTT-3.1.2-29). */
static int reauth_user_properties(const char *id, bool problem_info)
{
    struct raw_connect o = {.flags = -1, .clean = true, .id = id, .keepalive = 60};
    struct props pr;
    props_init(&pr);
    props_str(&pr, P_AUTH_METHOD, "plugin-chal");
    props_bin(&pr, P_AUTH_DATA, "hello", 5);
    if (!problem_info)
        props_u8(&pr, P_REQUEST_PROBLEM_INFO, 0);
    int fd = v5_connect(&b, &o, &pr, NULL, &pk);
    cr_assert_eq(pk.type, T_AUTH);
    v5_send_auth(fd, 0x18, "plugin-chal", "response");
    v5_expect(fd, T_CONNACK, &pk);
    cr_assert_eq(pk.reason, 0);
    v5_send_auth(fd, 0x19, "plugin-chal", "hello");
    v5_expect(fd, T_AUTH, &pk);
    v5_send_auth(fd, 0x18, "plugin-chal", "response");
    v5_expect(fd, T_AUTH, &pk);
    cr_assert_eq(pk.reason, 0x00);
    int n = v5_prop_count(&pk, P_USER_PROPERTY);
    close(fd);
    return n;
}

Test(enhanced_auth, mqtt_3_1_2_29_no_user_properties_on_auth_without_problem_info)
{
    start();
    cr_assert_gt(reauth_user_properties("rpi-1", true), 0, "the plugin's user properties");
    cr_assert_eq(reauth_user_properties("rpi-0", false), 0);
    broker_stop(&b);
}

Test(enhanced_auth, wrong_response_is_0x86_and_failed_reauth_disconnects_0x87)
{
    start();
    int fd = v5_connect_auth(&b, "chal", "plugin-chal", "hello", &pk);
    cr_assert_eq(pk.type, T_AUTH);
    v5_send_auth(fd, 0x18, "plugin-chal", "wrong");
    v5_expect(fd, T_CONNACK, &pk);
    cr_assert_eq(pk.reason, 0x86, "CONNACK 0x%02x, want 0x86", pk.reason);
    close(fd);
    fd = v5_connect_auth(&b, "chal", "plugin-chal", "hello", &pk);
    v5_send_auth(fd, 0x18, "plugin-chal", "response");
    v5_expect(fd, T_CONNACK, &pk);
    cr_assert_eq(pk.reason, 0);
    v5_send_auth(fd, 0x19, "plugin-chal", "nonsense");
    v5_expect_disconnect(fd, 0x87, -1);
    close(fd);
    broker_stop(&b);
}

/* The auth plugin's CONNECT permission check: a denied client gets CONNACK
 * 0x87 (5.0) or 0x05 (3.1.1) and no session; on any shard (the check runs on
 * the client's home shard, after the connection moved there). */
Test(enhanced_auth, connect_check_denied_is_0x87_and_0x05)
{
    start();
    struct raw_connect o = {.flags = -1, .clean = true, .id = "banned-id", .keepalive = 60};
    int fd = v5_connect(&b, &o, NULL, NULL, &pk);
    cr_assert_eq(pk.type, T_CONNACK);
    cr_assert_eq(pk.reason, 0x87, "CONNACK 0x%02x, want 0x87", pk.reason);
    close(fd);
    struct client *c = NULL;
    struct client_opts co = {.id = "banned-id", .clean = true};
    cr_assert_eq(client_connect_rc(&b, &co, &c), 5);
    client_destroy(c);
    /* Other ids (landing on every shard) are granted. */
    for (int i = 0; i < 8; i++) {
        char id[16];
        snprintf(id, sizeof(id), "ok-%d", i);
        c = client_open(&b, id, true);
        client_disconnect(c);
    }
    broker_stop(&b);
}

/* A refusal carries the reason code the plugin asked for (ABI 3) where MQTT
 * 5.0 allows it in that packet, else 0x87: SUBACK (3.9.3), PUBACK and PUBREC
 * (3.4.2.1, 3.5.2.1), UNSUBACK (3.11.3), CONNACK (3.2.2.2). 3.1.1 keeps its
 * own codes (SUBACK 0x80, MQTT-3.9.3-2; CONNACK 0x05). */
Test(enhanced_auth, plugin_reason_codes_reach_the_client_when_the_packet_allows_them)
{
    start();
    int fd = v5_open(&b, "rc5", NULL);
    v5_subscribe(fd, 1, "rc97/a", 1, NULL, 0x97); /* Quota exceeded */
    v5_subscribe(fd, 2, "rc80/a", 1, NULL, 0x80); /* Unspecified error */
    v5_subscribe(fd, 3, "rc9e/a", 1, NULL, 0x9E); /* Shared subscriptions not supported */
    v5_subscribe(fd, 4, "rc04/a", 1, NULL, 0x87); /* not a SUBACK code */
    v5_subscribe(fd, 5, "rc99/a", 1, NULL, 0x87); /* PUBACK's, not SUBACK's */
    cr_assert_eq(v5_publish(fd, "rc99/a", "x", 1, false, 7, NULL), 0x99); /* Payload format */
    /* Kept with the verdict: the same topic again is answered from the cache. */
    cr_assert_eq(v5_publish(fd, "rc99/a", "x", 1, false, 12, NULL), 0x99);
    v5_subscribe(fd, 13, "rc97/a", 1, NULL, 0x97);
    cr_assert_eq(v5_publish(fd, "rc97/a", "x", 2, false, 8, NULL), 0x97); /* in PUBREC */
    cr_assert_eq(v5_publish(fd, "rc9e/a", "x", 1, false, 9, NULL), 0x87); /* not a PUBACK code */
    struct pkt p;
    pkt_unsubscribe5(&p, 10, "rc8f/a");
    cr_assert(raw_send_pkt(fd, &p) == 0);
    v5_expect(fd, T_UNSUBACK, &pk);
    cr_assert(pk.ncodes == 1 && pk.codes[0] == 0x8F, "UNSUBACK 0x%02x, want 0x8F", pk.codes[0]);
    pkt_unsubscribe5(&p, 11, "rc97/a");
    cr_assert(raw_send_pkt(fd, &p) == 0);
    v5_expect(fd, T_UNSUBACK, &pk);
    cr_assert(pk.ncodes == 1 && pk.codes[0] == 0x87, "UNSUBACK 0x%02x, want 0x87", pk.codes[0]);
    close(fd);

    struct raw_connect o = {.flags = -1, .clean = true, .id = "rc9f", .keepalive = 60};
    fd = v5_connect(&b, &o, NULL, NULL, &pk);
    cr_assert_eq(pk.type, T_CONNACK);
    cr_assert_eq(pk.reason, 0x9F, "CONNACK 0x%02x, want 0x9F (connection rate)", pk.reason);
    close(fd);
    o.id = "rca2"; /* a SUBACK code, not a CONNACK one */
    fd = v5_connect(&b, &o, NULL, NULL, &pk);
    cr_assert_eq(pk.reason, 0x87, "CONNACK 0x%02x, want 0x87", pk.reason);
    close(fd);

    struct client *old = client_open(&b, "rc3", true);
    cr_assert_eq(client_subscribe(old, "rc97/a", 1), 0x80);
    client_disconnect(old);
    struct client *c = NULL;
    struct client_opts co = {.id = "rc9f", .clean = true};
    cr_assert_eq(client_connect_rc(&b, &co, &c), 5);
    client_destroy(c);
    broker_stop(&b);
}

/* The UNSUBSCRIBE permission check: denied, the subscription stays: 5.0 gets
 * UNSUBACK 0x87, 3.1.1 its UNSUBACK (MQTT-3.10.4-5) and, still, the messages. */
Test(enhanced_auth, unsubscribe_check_denied_keeps_the_subscription)
{
    start();
    int fd = v5_open(&b, "unsub5", NULL);
    v5_subscribe(fd, 1, "locked/a", 1, NULL, 1);
    v5_subscribe(fd, 2, "free/a", 1, NULL, 1);
    struct pkt p;
    pkt_unsubscribe5(&p, 3, "locked/a");
    cr_assert(raw_send_pkt(fd, &p) == 0);
    v5_expect(fd, T_UNSUBACK, &pk);
    cr_assert(pk.mid == 3 && pk.ncodes == 1 && pk.codes[0] == 0x87, "UNSUBACK 0x%02x, want 0x87",
              pk.codes[0]);
    pkt_unsubscribe5(&p, 4, "free/a");
    cr_assert(raw_send_pkt(fd, &p) == 0);
    v5_expect(fd, T_UNSUBACK, &pk);
    cr_assert(pk.ncodes == 1 && pk.codes[0] == 0x00, "UNSUBACK 0x%02x, want 0", pk.codes[0]);

    struct client *old = client_open(&b, "unsub3", true);
    cr_assert_eq(client_subscribe(old, "locked/a", 1), 1);
    client_unsubscribe(old, "locked/a");

    struct client *pub = client_open(&b, "unsub-pub", true);
    client_publish(pub, "locked/a", "still", 5, 1, false);
    client_publish(pub, "free/a", "gone", 4, 1, false);
    client_expect_message(old, "locked/a", "still", NULL, NULL);
    v5_expect_publish(fd, &pk);
    cr_assert_str_eq(pk.topic, "locked/a");
    v5_expect_nothing(fd, E2E_ABSENT_MS); /* free/a was unsubscribed */
    client_disconnect(pub);
    client_disconnect(old);
    close(fd);
    broker_stop(&b);
}

/* The auth plugin's answer travels with the client to its home shard (any
 * of them): its CONNACK User Properties reach a 5.0 client in order
 * (MQTT 5.0 3.2.2.3.17), and its attributes reach every permission check
 * (role=limited may not publish under ro/). */
Test(enhanced_auth, auth_attributes_reach_checks_and_user_properties_reach_connack)
{
    start();
    for (int i = 0; i < 8; i++) {
        char id[16];
        snprintf(id, sizeof(id), "attr-%d", i);
        struct raw_connect o = {.flags = -1, .clean = true, .id = id, .keepalive = 60};
        int fd = v5_connect(&b, &o, NULL, NULL, &pk);
        cr_assert_eq(pk.type, T_CONNACK);
        cr_assert_eq(pk.reason, 0);
        cr_assert_eq(v5_prop_count(&pk, P_USER_PROPERTY), 3);
        const struct v5_prop *u = v5_prop(&pk, P_USER_PROPERTY, 0);
        cr_assert(u->len == 7 && !memcmp(u->data, "welcome", 7) && u->len2 == 4 &&
                  !memcmp(u->data2, "acme", 4));
        u = v5_prop(&pk, P_USER_PROPERTY, 1);
        cr_assert(u->len == 4 && !memcmp(u->data, "plan", 4) && u->len2 == 4 &&
                  !memcmp(u->data2, "gold", 4));
        cr_assert_eq(v5_publish(fd, "ro/x", "no", 1, false, 1, NULL), 0x87);
        cr_assert_eq(v5_publish(fd, "rw/x", "ok", 1, false, 2, NULL), 0);
        close(fd);
    }
    broker_stop(&b);
}

/* MQTT-3.2.2-20: the plugin's User Properties are the first thing a CONNACK
 * leaves out to fit the client's Maximum Packet Size, then the Topic Alias
 * Maximum (MQTT-3.1.2-24): 16 and 13 bytes. */
Test(enhanced_auth, mqtt_3_2_2_20_connack_user_properties_left_out_first)
{
    start();
    static const uint32_t limits[] = {16, 15};
    static const size_t sizes[] = {16, 13};
    for (size_t i = 0; i < 2; i++) {
        struct props pr;
        props_init(&pr);
        props_u32(&pr, P_MAXIMUM_PACKET_SIZE, limits[i]);
        struct raw_connect o = {.flags = -1, .clean = true, .id = "small", .keepalive = 60};
        int fd = v5_connect(&b, &o, &pr, NULL, &pk);
        cr_assert(pk.type == T_CONNACK && pk.reason == 0);
        cr_assert_eq(pk.rawlen, sizes[i], "limit %u: %zu-byte CONNACK", limits[i], pk.rawlen);
        cr_assert_eq(v5_prop_count(&pk, P_USER_PROPERTY), 0);
        cr_assert_eq(v5_prop_count(&pk, P_TOPIC_ALIAS_MAXIMUM), i == 0 ? 1 : 0);
        close(fd);
    }
    broker_stop(&b);
}

/* A SUBSCRIBE and an UNSUBSCRIBE with more filters than a connection's
 * verdict cache holds (each filter asked from the plugin's own threads):
 * every verdict is kept for the packet, so both are answered, once, with a
 * code per filter. */
Test(enhanced_auth, packets_with_more_filters_than_the_verdict_cache_are_answered)
{
    start();
    int fd = v5_open(&b, "many", NULL);
    enum { N = 300 };
    struct pkt p;
    for (int kind = 0; kind < 2; kind++) {
        pkt_init(&p, kind == 0 ? 0x82 : 0xa2);
        pkt_u16(&p, (uint16_t)(10 + kind));
        pkt_varint(&p, 0); /* no properties */
        for (int i = 0; i < N; i++) {
            char f[32];
            snprintf(f, sizeof(f), "many/%d", i);
            pkt_str(&p, f);
            if (kind == 0)
                pkt_u8(&p, 1);
        }
        cr_assert(raw_send_pkt(fd, &p) == 0);
        v5_expect(fd, kind == 0 ? T_SUBACK : T_UNSUBACK, &pk);
        cr_assert_eq(pk.mid, 10 + kind);
        cr_assert_eq(pk.ncodes, 64, "the harness keeps the first 64 of %d codes", N);
        for (int i = 0; i < pk.ncodes; i++)
            cr_assert_eq(pk.codes[i], kind == 0 ? 1 : 0, "filter %d: 0x%02x", i, pk.codes[i]);
    }
    v5_expect_nothing(fd, E2E_ABSENT_MS);
    close(fd);
    broker_stop(&b);
}

/* A verdict the plugin does not mark cacheable is asked again for every
 * PUBLISH: the test plugin grants and denies "flip/" in turn (5.0 PUBACK
 * 0x00, 0x87, 0x00, 0x87). */
Test(enhanced_auth, uncacheable_verdicts_are_asked_every_time)
{
    start();
    int fd = v5_open(&b, "flipper", NULL);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(v5_publish(fd, "flip/x", "1", 1, false, (uint16_t)(i + 1), NULL),
                     i % 2 ? 0x87 : 0, "publish %d", i);
    close(fd);
    broker_stop(&b);
}

/* While a PUBLISH waits for the plugin's verdict, the broker stops reading
 * that client (DESIGN: it stops reading instead of growing memory): what the
 * client sends meanwhile stays in TCP's buffers, not in the broker's. Once
 * the verdict arrives, everything queued is handled and the client goes on. */
/* RINGMQ_CHALLENGE_RELEASE names a file that does not exist yet: the test
 * plugin holds "hold/" verdicts until it does (release_verdicts). */
static void hold_verdicts(char release[32])
{
    snprintf(release, 32, "/tmp/ringmq-release-XXXXXX");
    int tmp = mkstemp(release);
    cr_assert(tmp >= 0);
    close(tmp);
    unlink(release);
    setenv("RINGMQ_CHALLENGE_RELEASE", release, 1);
}

static void release_verdicts(const char *release)
{
    int tmp = open(release, O_CREAT | O_WRONLY, 0600);
    cr_assert(tmp >= 0);
    close(tmp);
}

/* ringmqd with the challenge plugin holding "hold/" verdicts (and a plugin
 * timeout far beyond the hold). */
static void start_holding(char release[32])
{
    hold_verdicts(release);
    static char set_path[300];
    snprintf(set_path, sizeof(set_path), "plugin.chal.path=%s", getenv("RINGMQ_CHALLENGE_SO"));
    broker_start(&b, set_path, "server.plugin_timeout_ms=60000", NULL);
}

static void verdicts_done(const char *release)
{
    unlink(release);
    unsetenv("RINGMQ_CHALLENGE_RELEASE");
}

/* A client is not read while its PUBLISH waits for a verdict, so its
 * PINGREQs are not seen either: the keepalive (MQTT-3.1.2-24: 1.5 times
 * the Keep Alive without a control packet) must not close it for the
 * broker's own wait. Keep Alive 1 s, a verdict held for 2.5 s. */
Test(enhanced_auth, keepalive_does_not_expire_while_a_verdict_is_awaited)
{
    if (e2e_mosquitto())
        cr_skip_test("ringmq plugins");
    char release[32];
    start_holding(release);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "pinger", .keepalive = 1};
    int fd = raw_mqtt_open(&b, &o);
    static struct pkt p;
    pkt_publish(&p, "hold/x", (const uint8_t *)"x", 1, 1, false, false, 7);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    uint8_t ping[] = {0xc0, 0x00};
    for (int i = 0; i < 10; i++) {
        usleep(250 * 1000);
        cr_assert(raw_send(fd, ping, sizeof(ping)) == 0, "closed after %d ms", (i + 1) * 250);
    }
    release_verdicts(release);
    uint8_t in[16];
    cr_assert_eq(raw_read_packet(fd, in, sizeof(in), E2E_WAIT_MS), 4, "PUBACK, not a close");
    cr_assert_eq(in[0], 0x40);
    cr_assert_eq(raw_read_packet(fd, in, sizeof(in), E2E_WAIT_MS), 2);
    cr_assert_eq(in[0], 0xd0, "the PINGREQs are answered once read");
    close(fd);
    verdicts_done(release);
    broker_stop(&b);
}

Test(enhanced_auth, a_client_is_not_read_while_its_permission_check_waits)
{
    if (e2e_mosquitto())
        cr_skip_test("ringmq plugins");
    char release[32];
    start_holding(release);

    struct raw_connect o = {.flags = -1, .clean = true, .id = "holder", .keepalive = 60};
    int fd = raw_mqtt_open(&b, &o);
    static struct pkt p;
    static uint8_t wire[sizeof(p.body) + 5];
    static uint8_t payload[60000];
    pkt_publish(&p, "hold/x", payload, sizeof(payload), 0, false, false, 0);
    size_t n = pkt_encode(&p, wire);
    int fl = fcntl(fd, F_GETFL);
    cr_assert(fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0);
    /* Far more than the kernel's socket buffers hold: a broker that kept
     * reading would take it all. */
    const size_t limit = 64u << 20;
    size_t sent = 0, off = 0;
    bool stalled = false;
    while (sent < limit) {
        ssize_t w = send(fd, wire + off, n - off, MSG_NOSIGNAL);
        if (w > 0) {
            sent += (size_t)w;
            off = (off + (size_t)w) % n;
            continue;
        }
        cr_assert(w < 0 && errno == EAGAIN, "send: %s", strerror(errno));
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        if (poll(&pf, 1, E2E_ABSENT_MS) == 0) {
            stalled = true;
            break;
        }
    }
    cr_assert(stalled, "the broker read %zu bytes while a permission check was pending", sent);
    release_verdicts(release);
    cr_assert(fcntl(fd, F_SETFL, fl) == 0);
    /* Finish the packet being sent, then ping: the answer comes after all of it. */
    if (off)
        cr_assert(raw_send(fd, wire + off, n - off) == 0);
    uint8_t ping[] = {0xc0, 0x00};
    cr_assert(raw_send(fd, ping, sizeof(ping)) == 0);
    uint8_t in[16];
    cr_assert_eq(raw_read_packet(fd, in, sizeof(in), E2E_WAIT_MS * 4), 2);
    cr_assert_eq(in[0], 0xd0);
    close(fd);
    verdicts_done(release);
    broker_stop(&b);
}
