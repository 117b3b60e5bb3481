/* E2E, MQTT 5.0 enhanced authentication decided by an auth plugin (answers
 * from the plugin's own threads): CONNECT -> AUTH 0x18 challenge -> client AUTH
 * 0x18 -> CONNACK with the method; re-authentication AUTH 0x19 -> AUTH 0x18 ->
 * AUTH 0x00 on the live connection; a wrong response gets CONNACK 0x86; a
 * failed re-authentication a DISCONNECT 0x87. ringmqd only. */
#include "harness_v5.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int connect_with(const char *method, const char *data)
{
    struct raw_connect o = {.flags = -1, .clean = true, .id = "chal", .keepalive = 60};
    struct props pr;
    props_init(&pr);
    props_str(&pr, P_AUTH_METHOD, method);
    props_bin(&pr, P_AUTH_DATA, data, strlen(data));
    return v5_connect(&b, &o, &pr, NULL, &pk);
}

static void send_auth(int fd, uint8_t reason, const char *method, const char *data)
{
    struct props pr;
    props_init(&pr);
    props_str(&pr, P_AUTH_METHOD, method);
    props_bin(&pr, P_AUTH_DATA, data, strlen(data));
    struct pkt p;
    pkt_reason5(&p, 0xf0, reason, &pr);
    cr_assert(raw_send_pkt(fd, &p) == 0);
}

Test(enhanced_auth, mqtt_4_12_0_plugin_challenge_response_and_reauth)
{
    start();
    int fd = connect_with("plugin-chal", "hello");
    cr_assert_eq(pk.type, T_AUTH, "expected AUTH, got packet type %d", pk.type);
    cr_assert_eq(pk.reason, 0x18);
    cr_assert(v5_prop_is(&pk, P_AUTH_METHOD, "plugin-chal"), "MQTT-4.12.0-5");
    cr_assert(v5_prop_is(&pk, P_AUTH_DATA, "challenge"));
    send_auth(fd, 0x18, "plugin-chal", "response");
    v5_expect(fd, T_CONNACK, &pk);
    cr_assert_eq(pk.reason, 0);
    cr_assert(v5_prop_is(&pk, P_AUTH_METHOD, "plugin-chal"));
    /* MQTT-4.12.1-1: re-authentication; the connection keeps working. */
    send_auth(fd, 0x19, "plugin-chal", "hello");
    v5_expect(fd, T_AUTH, &pk);
    cr_assert_eq(pk.reason, 0x18);
    send_auth(fd, 0x18, "plugin-chal", "response");
    v5_expect(fd, T_AUTH, &pk);
    cr_assert_eq(pk.reason, 0x00, "re-authentication: AUTH 0x%02x, want success", pk.reason);
    v5_subscribe(fd, 1, "t", 1, NULL, 1);
    close(fd);
    broker_stop(&b);
}

Test(enhanced_auth, wrong_response_is_0x86_and_failed_reauth_disconnects_0x87)
{
    start();
    int fd = connect_with("plugin-chal", "hello");
    cr_assert_eq(pk.type, T_AUTH);
    send_auth(fd, 0x18, "plugin-chal", "wrong");
    v5_expect(fd, T_CONNACK, &pk);
    cr_assert_eq(pk.reason, 0x86, "CONNACK 0x%02x, want 0x86", pk.reason);
    close(fd);
    fd = connect_with("plugin-chal", "hello");
    send_auth(fd, 0x18, "plugin-chal", "response");
    v5_expect(fd, T_CONNACK, &pk);
    cr_assert_eq(pk.reason, 0);
    send_auth(fd, 0x19, "plugin-chal", "nonsense");
    v5_expect_disconnect(fd, 0x87, -1);
    close(fd);
    broker_stop(&b);
}
