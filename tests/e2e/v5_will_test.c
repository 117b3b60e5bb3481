/* E2E, MQTT 5.0 will messages: Will Delay Interval (published after the delay,
 * not at all when the client reconnects within it), will properties forwarded,
 * DISCONNECT 0x04 (with will) versus 0x00, and Retain Available = 0 refusing a
 * retained will. Raw v5 sockets; each test starts its own broker. */
#include "harness_v5.h"

#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

static struct broker b;
static struct v5_pkt pk;

TestSuite(v5_will, .fini = e2e_fini, .timeout = 30);

static int watcher(void)
{
    int w = v5_open(&b, "watcher", NULL);
    v5_subscribe(w, 1, "will/#", 1, NULL, 1);
    return w;
}

/* A client with a will on will/t, Session Expiry `expiry` and Will Delay `delay`
 * (< 0: no property), extra will properties appended. */
static int will_client(const char *id, long expiry, long delay, const struct props *extra)
{
    struct raw_connect o = {.flags = -1,
                            .clean = true,
                            .id = id,
                            .keepalive = 60,
                            .will_topic = "will/t",
                            .will_payload = "gone",
                            .will_qos = 1};
    struct props pr, wp;
    props_init(&pr);
    if (expiry >= 0)
        props_u32(&pr, P_SESSION_EXPIRY, (uint32_t)expiry);
    props_init(&wp);
    if (delay >= 0)
        props_u32(&wp, P_WILL_DELAY, (uint32_t)delay);
    if (extra)
        props_raw(&wp, extra->buf, extra->len);
    int fd = v5_connect(&b, &o, &pr, &wp, &pk);
    cr_assert(pk.type == T_CONNACK && pk.reason == 0, "CONNACK 0x%02x", pk.reason);
    return fd;
}

Test(v5_will, mqtt_3_1_3_9_will_delay_then_published)
{
    broker_start(&b, NULL);
    int w = watcher();
    int fd = will_client("delayed", 60, 1, NULL);
    close(fd);
    /* Not at once: the delay is 1 s. */
    v5_expect_nothing(w, E2E_ABSENT_MS);
    v5_expect_publish(w, &pk);
    cr_assert(v5_payload_is(&pk, "gone"));
    close(w);
    broker_stop(&b);
}

Test(v5_will, mqtt_3_1_3_9_no_will_when_reconnecting_within_delay)
{
    broker_start(&b, NULL);
    int w = watcher();
    int fd = will_client("back", 60, 1, NULL);
    close(fd);
    struct raw_connect o = {.flags = -1, .clean = false, .id = "back", .keepalive = 60};
    struct props pr;
    props_init(&pr);
    props_u32(&pr, P_SESSION_EXPIRY, 60);
    fd = v5_connect(&b, &o, &pr, NULL, &pk);
    cr_assert_eq(pk.reason, 0);
    /* Past the original 1 s delay plus slack: still no will. */
    v5_expect_nothing(w, 1500);
    close(fd);
    close(w);
    broker_stop(&b);
}

Test(v5_will, mqtt_3_1_3_10_will_properties_forwarded)
{
    broker_start(&b, NULL);
    int w = watcher();
    struct props extra;
    props_init(&extra);
    props_u8(&extra, P_PAYLOAD_FORMAT, 1);
    props_str(&extra, P_CONTENT_TYPE, "text/plain");
    props_str(&extra, P_RESPONSE_TOPIC, "will/reply");
    props_bin(&extra, P_CORRELATION_DATA, "cd", 2);
    props_u32(&extra, P_MESSAGE_EXPIRY, 100);
    props_pair(&extra, "z", "1");
    props_pair(&extra, "a", "2");
    int fd = will_client("props", -1, -1, &extra);
    close(fd);
    v5_expect_publish(w, &pk);
    cr_assert(v5_payload_is(&pk, "gone"));
    cr_expect_eq(v5_prop_num(&pk, P_PAYLOAD_FORMAT), 1);
    cr_expect(v5_prop_is(&pk, P_CONTENT_TYPE, "text/plain"));
    cr_expect(v5_prop_is(&pk, P_RESPONSE_TOPIC, "will/reply"));
    cr_expect(v5_prop_is(&pk, P_CORRELATION_DATA, "cd"));
    uint32_t left = v5_prop_num(&pk, P_MESSAGE_EXPIRY);
    cr_expect(left >= 95 && left <= 100, "will Message Expiry %u", left);
    cr_assert_eq(v5_prop_count(&pk, P_USER_PROPERTY), 2);
    const struct v5_prop *u0 = v5_prop(&pk, P_USER_PROPERTY, 0);
    cr_expect(u0->len == 1 && u0->data[0] == 'z', "MQTT-3.1.3-10: user property order");
    close(w);
    broker_stop(&b);
}

Test(v5_will, mqtt_3_14_4_3_disconnect_0x00_deletes_will_0x04_sends_it)
{
    broker_start(&b, NULL);
    int w = watcher();
    int fd = will_client("normal", -1, -1, NULL);
    v5_disconnect(fd, 0x00, NULL);
    v5_expect_nothing(w, E2E_ABSENT_MS);
    fd = will_client("withwill", -1, -1, NULL);
    v5_disconnect(fd, 0x04, NULL); /* Disconnect with Will Message */
    v5_expect_publish(w, &pk);
    cr_assert(v5_payload_is(&pk, "gone"));
    close(w);
    broker_stop(&b);
}

/* MQTT-3.1.2-8, MQTT-3.14.4-3: only DISCONNECT 0x00 deletes the will; a client
 * that disconnects with an error reason (0x80 Unspecified error, 0x83
 * Implementation specific error) still gets its will published. */
Test(v5_will, mqtt_3_1_2_8_disconnect_with_error_reason_publishes_will)
{
    broker_start(&b, NULL);
    int w = watcher();
    int fd = will_client("err80", -1, -1, NULL);
    v5_disconnect(fd, 0x80, NULL);
    v5_expect_publish(w, &pk);
    cr_assert(v5_payload_is(&pk, "gone"), "MQTT-3.1.2-8: will after DISCONNECT 0x80");
    fd = will_client("err83", -1, -1, NULL);
    v5_disconnect(fd, 0x83, NULL);
    v5_expect_publish(w, &pk);
    cr_assert(v5_payload_is(&pk, "gone"), "MQTT-3.1.2-8: will after DISCONNECT 0x83");
    close(w);
    broker_stop(&b);
}

Test(v5_will, mqtt_3_2_2_13_retained_will_refused_without_retain_0x9a)
{
    broker_start(&b, "mqtt.retain_available=false", NULL);
    struct raw_connect o = {.flags = -1,
                            .clean = true,
                            .id = "rw",
                            .keepalive = 60,
                            .will_topic = "will/t",
                            .will_payload = "x",
                            .will_retain = true};
    int fd = v5_connect(&b, &o, NULL, NULL, &pk);
    cr_assert(pk.type == T_CONNACK && pk.reason == 0x9a, "CONNACK 0x%02x, want 0x9A", pk.reason);
    cr_assert(raw_wait_close(fd, E2E_WAIT_MS) == 0);
    close(fd);
    broker_stop(&b);
}
