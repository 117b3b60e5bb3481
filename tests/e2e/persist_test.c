/* E2E, the durable store (issue 13): what a restart of ringmqd on the same
 * data directory ([persistence] dir) keeps. Retained messages with their
 * remaining Message Expiry, cleared topics staying clear; persistent
 * sessions (3.1.1 clean session 0, 5.0 Session Expiry > 0) with their
 * subscriptions and queued QoS 1/2 messages, clean ones gone; the outbound
 * in-flight window (PUBLISH resent with DUP and its packet id, PUBREL
 * resent); inbound QoS 2 ids awaiting PUBREL (exactly once); the will delay
 * of a connection the restart cut; sessions re-homed when server.shards
 * changes; and fsync = interval / never after a clean stop. Each test
 * restarts the broker with SIGTERM or SIGKILL (a crash: with fsync =
 * always, what was acknowledged must be there) on a data directory of its
 * own, removed by the suite's .fini. ringmqd only (mosquitto's persistence
 * is a periodic snapshot, with none of these promises). */
#include "harness_v5.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct broker b;
static char data_dir[64];
static struct v5_pkt pk;
static struct raw_publish rp;

static void persist_fini(void)
{
    e2e_fini();
    e2e_data_dir_remove(data_dir);
}

TestSuite(persist, .fini = persist_fini, .timeout = 60);

static void setup(void)
{
    if (e2e_mosquitto())
        cr_skip_test("ringmqd's durable store");
    e2e_data_dir_create(data_dir, sizeof(data_dir));
}

static int env_shards(void)
{
    const char *s = getenv("RINGMQ_SHARDS");
    return s && atoi(s) > 0 ? atoi(s) : 1;
}

/* ringmqd on data_dir; shards 0: RINGMQ_SHARDS; fsync NULL: always. */
static void start(int shards, const char *fsync)
{
    char dir[128], sh[64], fs[64];
    snprintf(dir, sizeof(dir), "persistence.dir=%s", data_dir);
    snprintf(sh, sizeof(sh), "server.shards=%d", shards ? shards : env_shards());
    snprintf(fs, sizeof(fs), "persistence.fsync=%s", fsync ? fsync : "always");
    broker_start(&b, "persistence.enabled=true", dir, sh, fs, NULL);
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Lets time pass while the broker is down (a deadline, not a readiness wait). */
static void sleep_until(long long at_ms)
{
    long long left = at_ms - mono_ms();
    if (left <= 0)
        return;
    struct timespec ts = {.tv_sec = left / 1000, .tv_nsec = (left % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* ---- 3.1.1 raw clients ------------------------------------------------------- */

static int open311(const char *id, bool clean, bool *session_present)
{
    struct raw_connect o = {.flags = -1, .clean = clean, .keepalive = 60, .id = id};
    int rc = -1;
    bool sp = false;
    int fd = raw_mqtt_connect(&b, &o, &rc, &sp);
    cr_assert(rc == 0, "%s: CONNACK %d", id, rc);
    if (session_present)
        *session_present = sp;
    return fd;
}

/* DISCONNECT and wait for the close. */
static void bye311(int fd)
{
    static const uint8_t disconnect[] = {0xe0, 0x00};
    cr_assert(raw_send(fd, disconnect, sizeof(disconnect)) == 0);
    cr_assert(raw_wait_close(fd, E2E_WAIT_MS) == 0);
    close(fd);
}

/* PUBLISH QoS 1 and wait for its PUBACK. */
static void pub311_q1(int fd, const char *topic, const char *payload, bool retain, uint16_t mid)
{
    struct pkt p;
    pkt_publish(&p, topic, payload, strlen(payload), 1, retain, false, mid);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    raw_expect_ack(fd, 0x40, mid);
}

static void send_ack(int fd, uint8_t first, uint16_t mid)
{
    struct pkt p;
    pkt_ack(&p, first, mid);
    cr_assert(raw_send_pkt(fd, &p) == 0);
}

/* Reads a PUBLISH at QoS 1, asserts topic and payload, PUBACKs it. */
static void expect311_q1(int fd, const char *topic, const char *payload)
{
    raw_expect_publish(fd, &rp);
    cr_assert_str_eq(rp.topic, topic);
    cr_assert_str_eq((char *)rp.payload, payload, "on %s", topic);
    cr_assert_eq(rp.qos, 1, "on %s", topic);
    send_ack(fd, 0x40, rp.mid);
}

static void expect_nothing311(int fd)
{
    uint8_t in[512];
    int n = raw_read_packet(fd, in, sizeof(in), E2E_ABSENT_MS);
    cr_assert(n == -ETIMEDOUT, "unexpected packet 0x%02x (%d bytes)", n > 0 ? in[0] : 0, n);
}

/* ---- 5.0 raw clients ---------------------------------------------------------- */

/* CONNECT with Clean Start `clean` and Session Expiry `expiry` (0: none). */
static int open5(const char *id, bool clean, uint32_t expiry, bool *session_present)
{
    struct raw_connect o = {.flags = -1, .clean = clean, .keepalive = 60, .id = id};
    struct props pr;
    props_init(&pr);
    if (expiry)
        props_u32(&pr, P_SESSION_EXPIRY, expiry);
    int fd = v5_connect(&b, &o, &pr, NULL, &pk);
    cr_assert(pk.type == T_CONNACK && pk.reason == 0, "%s: CONNACK 0x%02x", id, pk.reason);
    if (session_present)
        *session_present = pk.session_present;
    return fd;
}

static void retain5(int fd, const char *topic, const char *payload, int qos, uint32_t expiry,
                    uint16_t mid)
{
    struct props pr;
    props_init(&pr);
    if (expiry)
        props_u32(&pr, P_MESSAGE_EXPIRY, expiry);
    cr_assert_eq(v5_publish(fd, topic, payload, qos, true, mid, &pr), 0, "publish %s", topic);
}

/* ---- retained messages ------------------------------------------------------------ */

/* Publishes the retained set both retained tests start from: r/keep (no
 * expiry), r/exp8 (Message Expiry 8 s: long enough for a broker under ASan
 * to start again, short enough that a restored full interval shows), r/clear
 * set and cleared, and, when `exp1`, r/exp1 (1 s). Returns when r/exp8 was
 * accepted. */
static long long publish_retained_set(int fd, bool exp1)
{
    retain5(fd, "r/keep", "kept", 2, 0, 1);
    retain5(fd, "r/clear", "soon cleared", 1, 0, 2);
    retain5(fd, "r/clear", "", 1, 0, 3); /* MQTT-3.3.1-6: a zero-byte retained clears */
    if (exp1)
        retain5(fd, "r/exp1", "short", 1, 1, 4);
    retain5(fd, "r/exp8", "eight", 1, 8, 5);
    return mono_ms();
}

/* Subscribes to r/# and asserts the retained messages are exactly r/keep
 * (no expiry) and r/exp8 with 0 < remaining expiry <= 7 (MQTT-3.3.2-6: a
 * second or more passed since it was published, with the broker down). */
static void expect_retained_set(void)
{
    int fd = v5_open(&b, "r-reader", NULL);
    v5_subscribe(fd, 1, "r/#", 1, NULL, 1);
    bool keep = false, exp8 = false;
    for (int i = 0; i < 2; i++) {
        v5_expect_publish(fd, &pk);
        cr_assert(pk.retain, "%s: not sent as retained", pk.topic);
        if (!strcmp(pk.topic, "r/keep")) {
            cr_assert(v5_payload_is(&pk, "kept"));
            cr_assert_eq(v5_prop_count(&pk, P_MESSAGE_EXPIRY), 0);
            keep = true;
        } else {
            cr_assert_str_eq(pk.topic, "r/exp8",
                             "an expired or cleared retained message came back");
            cr_assert(v5_payload_is(&pk, "eight"));
            uint32_t left = v5_prop_num(&pk, P_MESSAGE_EXPIRY);
            cr_assert(left > 0 && left <= 7, "MQTT-3.3.2-6: remaining expiry %u, want 1..7", left);
            exp8 = true;
        }
        if (pk.qos)
            send_ack(fd, 0x40, pk.mid);
    }
    cr_assert(keep && exp8);
    v5_expect_nothing(fd, E2E_ABSENT_MS);
    close(fd);
}

Test(persist, mqtt_3_3_2_6_retained_survive_clean_stop_with_remaining_expiry)
{
    setup();
    start(0, NULL);
    int fd = v5_open(&b, "r-writer", NULL);
    long long t0 = publish_retained_set(fd, true);
    close(fd);
    broker_stop(&b);
    /* r/exp1's second passes while the broker is down. */
    sleep_until(t0 + 1200);
    start(0, NULL);
    expect_retained_set();

    /* Clearing a topic retained in an earlier run lasts too. */
    fd = v5_open(&b, "r-writer", NULL);
    retain5(fd, "r/keep", "", 1, 0, 6);
    close(fd);
    broker_stop(&b);
    start(0, NULL);
    fd = v5_open(&b, "r-reader", NULL);
    v5_subscribe(fd, 1, "r/keep", 1, NULL, 1);
    v5_expect_nothing(fd, E2E_ABSENT_MS);
    close(fd);
    broker_stop(&b);
}

Test(persist, mqtt_3_3_2_6_retained_survive_kill9_with_remaining_expiry)
{
    setup();
    start(0, NULL);
    int fd = v5_open(&b, "r-writer", NULL);
    long long t0 = publish_retained_set(fd, false);
    /* Acknowledged with fsync = always: on disk before the PUBACK left. */
    broker_kill(&b);
    close(fd);
    sleep_until(t0 + 1000);
    start(0, NULL);
    expect_retained_set();
    broker_stop(&b);
}

/* ---- persistent sessions -------------------------------------------------------------- */

Test(persist, mqtt_3_2_2_2_session_311_keeps_subscriptions_and_queue)
{
    setup();
    start(0, NULL);
    bool sp = true;
    int sub = open311("s311", false, &sp);
    cr_assert(!sp);
    raw_subscribe(sub, 1, "s311/q1", 1);
    raw_subscribe(sub, 2, "s311/q2/#", 2);
    bye311(sub);
    /* A clean session, connected through the restart. */
    int clean = open311("c311", true, NULL);
    raw_subscribe(clean, 1, "s311/q1", 1);

    struct client *pub = client_open(&b, "p311", true);
    client_publish(pub, "s311/q1", "a", 1, 1, false);
    client_publish(pub, "s311/q2/x", "b", 1, 2, false);
    client_disconnect(pub);
    expect311_q1(clean, "s311/q1", "a");
    broker_stop(&b);
    close(clean);

    start(0, NULL);
    /* No SUBSCRIBE: the session brings its subscriptions and queue back. */
    struct client *s = client_open(&b, "s311", false);
    cr_assert(client_session_present(s), "MQTT-3.2.2-2: session present 0 after the restart");
    int qos = 0;
    client_expect_message(s, "s311/q1", "a", &qos, NULL);
    cr_assert_eq(qos, 1);
    client_expect_message(s, "s311/q2/x", "b", &qos, NULL);
    cr_assert_eq(qos, 2);
    pub = client_open(&b, "p311", true);
    client_publish(pub, "s311/q2/y", "c", 1, 2, false);
    client_expect_message(s, "s311/q2/y", "c", &qos, NULL);
    cr_assert_eq(qos, 2);
    cr_assert(client_no_message(s, E2E_ABSENT_MS));

    /* The clean session is gone (MQTT-3.2.2-3: session present 0). */
    sp = true;
    clean = open311("c311", false, &sp);
    cr_assert(!sp, "a clean session survived the restart");
    bye311(clean);
    client_disconnect(pub);
    client_disconnect(s);
    broker_stop(&b);
}

Test(persist, mqtt_3_2_2_2_session_v5_keeps_subscriptions_and_queue_after_kill9)
{
    setup();
    start(0, NULL);
    bool sp = true;
    int sub = open5("s5", false, 300, &sp);
    cr_assert(!sp);
    struct props id7;
    props_init(&id7);
    props_varint(&id7, P_SUBSCRIPTION_ID, 7);
    v5_subscribe(sub, 1, "s5/a", 1, &id7, 1);
    v5_subscribe(sub, 2, "s5/b", 2, NULL, 2);
    v5_disconnect(sub, 0x00, NULL);
    close(sub);
    /* Session Expiry 0 (absent) with Clean Start 0: ends with its connection. */
    int gone = open5("e5", false, 0, NULL);
    v5_subscribe(gone, 1, "s5/a", 1, NULL, 1);

    int pub = v5_open(&b, "p5", NULL);
    cr_assert_eq(v5_publish(pub, "s5/a", "one", 1, false, 1, NULL), 0);
    cr_assert_eq(v5_publish(pub, "s5/b", "two", 2, false, 2, NULL), 0);
    v5_expect_publish(gone, &pk);
    broker_kill(&b);
    close(pub);
    close(gone);

    start(0, NULL);
    sub = open5("s5", false, 300, &sp);
    cr_assert(sp, "MQTT-3.2.2-2: session present 0 after a kill -9");
    bool one = false, two = false;
    for (int i = 0; i < 2; i++) {
        v5_expect_publish(sub, &pk);
        if (pk.qos == 1) {
            cr_assert_str_eq(pk.topic, "s5/a");
            cr_assert(v5_payload_is(&pk, "one"));
            cr_assert_eq(v5_prop_num(&pk, P_SUBSCRIPTION_ID), 7, "Subscription Identifier lost");
            struct pkt p;
            pkt_ack5(&p, 0x40, pk.mid, 0, NULL);
            cr_assert(raw_send_pkt(sub, &p) == 0);
            one = true;
        } else {
            cr_assert_eq(pk.qos, 2);
            cr_assert_str_eq(pk.topic, "s5/b");
            cr_assert(v5_payload_is(&pk, "two"));
            cr_assert_eq(v5_prop_count(&pk, P_SUBSCRIPTION_ID), 0);
            uint16_t mid = pk.mid;
            struct pkt p;
            pkt_ack5(&p, 0x50, mid, 0, NULL);
            cr_assert(raw_send_pkt(sub, &p) == 0);
            v5_expect(sub, T_PUBREL, &pk);
            cr_assert_eq(pk.mid, mid);
            pkt_ack5(&p, 0x70, mid, 0, NULL);
            cr_assert(raw_send_pkt(sub, &p) == 0);
            two = true;
        }
    }
    cr_assert(one && two);
    pub = v5_open(&b, "p5", NULL);
    cr_assert_eq(v5_publish(pub, "s5/a", "three", 1, false, 1, NULL), 0);
    v5_expect_publish(sub, &pk);
    cr_assert(v5_payload_is(&pk, "three"));
    cr_assert_eq(v5_prop_num(&pk, P_SUBSCRIPTION_ID), 7);

    int again = open5("e5", false, 60, &sp);
    cr_assert(!sp, "a session with expiry 0 survived the restart");
    close(again);
    close(pub);
    close(sub);
    broker_stop(&b);
}

/* ---- in flight ---------------------------------------------------------------------------- */

Test(persist, mqtt_4_4_0_1_inflight_resent_with_dup_and_same_id_after_kill9)
{
    setup();
    start(0, NULL);
    int sub = open311("inf", false, NULL);
    raw_subscribe(sub, 1, "inf/1", 1);
    raw_subscribe(sub, 2, "inf/2", 2);
    int pub = open311("inf-pub", true, NULL);
    pub311_q1(pub, "inf/1", "m1", false, 10);
    struct pkt p;
    pkt_publish(&p, "inf/2", "m2", 2, 2, false, false, 11);
    cr_assert(raw_send_pkt(pub, &p) == 0);
    raw_expect_ack(pub, 0x50, 11);
    send_ack(pub, 0x62, 11);
    raw_expect_ack(pub, 0x70, 11);

    /* m1 stays unacknowledged; m2 gets its PUBREC, and the PUBREL no PUBCOMP. */
    raw_expect_publish(sub, &rp);
    cr_assert(rp.qos == 1 && !rp.dup && !strcmp(rp.topic, "inf/1"));
    uint16_t mid1 = rp.mid;
    raw_expect_publish(sub, &rp);
    cr_assert(rp.qos == 2 && !strcmp(rp.topic, "inf/2"));
    uint16_t mid2 = rp.mid;
    send_ack(sub, 0x50, mid2);
    raw_expect_ack(sub, 0x62, mid2);
    broker_kill(&b);
    close(sub);
    close(pub);

    start(0, NULL);
    bool sp = false;
    sub = open311("inf", false, &sp);
    cr_assert(sp);
    bool resent = false, pubrel = false;
    for (int i = 0; i < 2; i++) {
        uint8_t in[256];
        int n = raw_read_packet(sub, in, sizeof(in), E2E_WAIT_MS);
        cr_assert(n > 0, "%d of 2 resends, then %d", i, n);
        /* Either order: MQTT-4.6.0-1 orders the PUBLISHes, 4.6.0-3 the PUBRELs. */
        if ((in[0] & 0xf0) == 0x30) {
            cr_assert((in[0] & 0x06) == 0x02, "QoS %d PUBLISH resent: m2 without its PUBREC state",
                      (in[0] >> 1) & 3);
            cr_assert(in[0] & 0x08, "MQTT-4.4.0-1: m1 resent without DUP");
            cr_assert(n == 2 + 2 + 5 + 2 + 2 && !memcmp(in + 4, "inf/1", 5));
            cr_assert_eq(in[9] << 8 | in[10], mid1, "MQTT-4.4.0-1: resent with another packet id");
            cr_assert(!memcmp(in + 11, "m1", 2));
            send_ack(sub, 0x40, mid1);
            resent = true;
        } else {
            cr_assert(n == 4 && in[0] == 0x62 && in[1] == 2, "expected PUBREL, got 0x%02x", in[0]);
            cr_assert_eq(in[2] << 8 | in[3], mid2, "MQTT-4.4.0-1: PUBREL for another packet id");
            send_ack(sub, 0x70, mid2);
            pubrel = true;
        }
    }
    cr_assert(resent && pubrel);
    expect_nothing311(sub);
    bye311(sub);
    broker_stop(&b);
}

Test(persist, mqtt_4_3_3_inbound_qos2_pubrel_after_kill9_delivers_exactly_once)
{
    setup();
    start(0, NULL);
    int sub = open311("q2-sub", false, NULL);
    raw_subscribe(sub, 1, "in/q2", 2);
    bye311(sub);
    int pub = open311("q2-pub", false, NULL);
    struct pkt p;
    pkt_publish(&p, "in/q2", "once", 4, 2, false, false, 7);
    cr_assert(raw_send_pkt(pub, &p) == 0);
    raw_expect_ack(pub, 0x50, 7);
    broker_kill(&b);
    close(pub);

    start(0, NULL);
    bool sp = false;
    pub = open311("q2-pub", false, &sp);
    cr_assert(sp);
    /* The publisher missed the PUBREC: it sends the PUBLISH again (DUP), which
     * the broker must acknowledge without a second delivery (MQTT-4.3.3-10). */
    pkt_publish(&p, "in/q2", "once", 4, 2, false, true, 7);
    cr_assert(raw_send_pkt(pub, &p) == 0);
    raw_expect_ack(pub, 0x50, 7);
    send_ack(pub, 0x62, 7);
    raw_expect_ack(pub, 0x70, 7);
    bye311(pub);

    sub = open311("q2-sub", false, &sp);
    cr_assert(sp);
    raw_expect_publish(sub, &rp);
    cr_assert(rp.qos == 2 && !strcmp(rp.topic, "in/q2") && !strcmp((char *)rp.payload, "once"));
    send_ack(sub, 0x50, rp.mid);
    uint8_t in[256];
    int n = raw_read_packet(sub, in, sizeof(in), E2E_WAIT_MS);
    cr_assert(n > 0 && (in[0] & 0xf0) != 0x30, "delivered twice: the DUP resend was a new message");
    cr_assert(n == 4 && in[0] == 0x62 && (in[2] << 8 | in[3]) == rp.mid, "expected PUBREL");
    send_ack(sub, 0x70, rp.mid);
    expect_nothing311(sub);
    bye311(sub);
    broker_stop(&b);
}

/* ---- will delay ---------------------------------------------------------------------------- */

/* A 5.0 client `id` with a will ("gone", QoS 1) on "<name>/t", Session
 * Expiry `expiry` and Will Delay `delay` (0: none), and a kept 3.1.1 session
 * "<name>-watch" subscribed to "<name>/#": the watcher's session first,
 * unless `watcher_last`. Returns the client's socket. */
static void will_watcher(const char *name)
{
    char watcher[64], filter[64];
    snprintf(watcher, sizeof(watcher), "%s-watch", name);
    snprintf(filter, sizeof(filter), "%s/#", name);
    int w = open311(watcher, false, NULL);
    raw_subscribe(w, 1, filter, 1);
    bye311(w);
}

static int will_client(const char *name, const char *id, uint32_t expiry, uint32_t delay,
                       bool watcher_last)
{
    char topic[64];
    snprintf(topic, sizeof(topic), "%s/t", name);
    if (!watcher_last)
        will_watcher(name);
    struct raw_connect o = {.flags = -1,
                            .clean = true,
                            .id = id,
                            .keepalive = 60,
                            .will_topic = topic,
                            .will_payload = "gone",
                            .will_qos = 1};
    struct props pr, wp;
    props_init(&pr);
    props_u32(&pr, P_SESSION_EXPIRY, expiry);
    props_init(&wp);
    if (delay)
        props_u32(&wp, P_WILL_DELAY, delay);
    int fd = v5_connect(&b, &o, &pr, &wp, &pk);
    cr_assert(pk.type == T_CONNACK && pk.reason == 0);
    if (watcher_last)
        will_watcher(name);
    return fd;
}

Test(persist, mqtt_3_1_3_9_will_delay_of_a_connection_cut_by_kill9)
{
    setup();
    start(0, NULL);
    int fd = will_client("will", "will-5", 60, 2, false);
    broker_kill(&b);
    close(fd);

    start(0, NULL);
    long long t0 = mono_ms();
    bool sp = false;
    int w = open311("will-watch", false, &sp);
    cr_assert(sp);
    /* Not at once: the connection was lost at the restart, 2 s ago at most. */
    expect_nothing311(w);
    expect311_q1(w, "will/t", "gone");
    long long took = mono_ms() - t0;
    cr_assert(took >= 1000 && took <= 4000, "will published %lld ms after the restart", took);
    bye311(w);
    broker_stop(&b);
}

/* MQTT-3.1.2-8: the will of a connection the crash cut, with no delay, is
 * published after the restart, to subscribers restored after its session
 * too (the watcher's session is younger, so a replay restores it later: a
 * will published while loading found nobody). */
Test(persist, mqtt_3_1_2_8_will_without_delay_reaches_sessions_restored_after_it)
{
    setup();
    start(0, NULL);
    int fd = will_client("will0", "will-0", 60, 0, true);
    broker_kill(&b);
    close(fd);

    start(0, NULL);
    bool sp = false;
    int w = open311("will0-watch", false, &sp);
    cr_assert(sp);
    expect311_q1(w, "will0/t", "gone");
    bye311(w);
    broker_stop(&b);
}

/* A 5.0 connection of `id` without Clean Start and Session Expiry `expiry`;
 * the CONNACK's Session Present. Closed at once (the session is offline). */
static bool v5_visit(const char *id, uint32_t expiry)
{
    struct raw_connect o = {.flags = -1, .clean = false, .id = id, .keepalive = 60};
    struct props pr;
    props_init(&pr);
    props_u32(&pr, P_SESSION_EXPIRY, expiry);
    int fd = v5_connect(&b, &o, &pr, NULL, &pk);
    cr_assert(pk.type == T_CONNACK && pk.reason == 0);
    close(fd);
    return pk.session_present;
}

/* MQTT-3.1.2-23: an offline session's expiry counts from its connection's
 * close, also across a restart: one with 3 s left and a broker down for
 * 4 s is gone; one with 60 s is still there. */
Test(persist, mqtt_3_1_2_23_expiry_counts_the_time_the_broker_is_down)
{
    setup();
    start(0, NULL);
    v5_visit("exp-short", 3);
    v5_visit("exp-long", 60);
    usleep(200 * 1000); /* both closes seen */
    broker_stop(&b);
    sleep(4);
    start(0, NULL);
    cr_assert_not(v5_visit("exp-short", 3), "3 s of expiry left, 4 s down: still there");
    cr_assert(v5_visit("exp-long", 60), "60 s of expiry left, 4 s down: gone");
    broker_stop(&b);
}

/* MQTT-3.1.3-9: a session that ran out while the broker was down publishes
 * its will (still waiting for its 60 s delay) at once after the restart and
 * is gone; counted from the restart, both would take 2 s more. */
Test(persist, mqtt_3_1_3_9_will_of_a_session_that_ran_out_while_down)
{
    setup();
    start(0, NULL);
    int fd = will_client("ranout", "ranout", 2, 60, false);
    close(fd); /* lost: the will waits, the session has 2 s */
    usleep(200 * 1000);
    broker_stop(&b);
    sleep(3);

    start(0, NULL);
    long long t0 = mono_ms();
    bool sp = false;
    int w = open311("ranout-watch", false, &sp);
    cr_assert(sp);
    expect311_q1(w, "ranout/t", "gone");
    long long took = mono_ms() - t0;
    cr_assert(took < 1500, "will published %lld ms after the restart", took);
    bye311(w);
    cr_assert_not(v5_visit("ranout", 2), "the session outlived its expiry");
    broker_stop(&b);
}

/* ---- server.shards changed ------------------------------------------------------------------ */

#define REHOMED 24

/* 1 -> 4 under RINGMQ_SHARDS=1, 4 -> 2 under RINGMQ_SHARDS=4: every session of
 * REHOMED client ids comes back with its subscriptions and queue. */
Test(persist, shards_changed_sessions_rehomed)
{
    setup();
    int before = env_shards(), after = before == 1 ? 4 : 2;
    start(before, NULL);
    char id[REHOMED][16], topic[REHOMED][32], payload[REHOMED][16];
    for (int i = 0; i < REHOMED; i++) {
        snprintf(id[i], sizeof(id[i]), "rh-%02d", i);
        snprintf(topic[i], sizeof(topic[i]), "rh/rh-%02d", i);
        snprintf(payload[i], sizeof(payload[i]), "q-rh-%02d", i);
        int fd = open311(id[i], false, NULL);
        raw_subscribe(fd, 1, topic[i], 1);
        raw_subscribe(fd, 2, "rh/all", 1);
        bye311(fd);
    }
    int pub = open311("rh-pub", true, NULL);
    pub311_q1(pub, "rh/all", "q-all", false, 1);
    for (int i = 0; i < REHOMED; i++)
        pub311_q1(pub, topic[i], payload[i], false, (uint16_t)(2 + i));
    bye311(pub);
    broker_stop(&b);

    start(after, NULL);
    int fds[REHOMED];
    for (int i = 0; i < REHOMED; i++) {
        bool sp = false;
        fds[i] = open311(id[i], false, &sp);
        cr_assert(sp, "%s: no session after %d -> %d shards", id[i], before, after);
        bool all = false, own = false;
        for (int k = 0; k < 2; k++) {
            raw_expect_publish(fds[i], &rp);
            all |= !strcmp(rp.topic, "rh/all") && !strcmp((char *)rp.payload, "q-all");
            own |= !strcmp(rp.topic, topic[i]) && !strcmp((char *)rp.payload, payload[i]);
            send_ack(fds[i], 0x40, rp.mid);
        }
        cr_assert(all && own, "%s: queued messages lost after %d -> %d shards", id[i], before,
                  after);
    }
    pub = open311("rh-pub", true, NULL);
    pub311_q1(pub, "rh/all", "live", false, 1);
    for (int i = 0; i < REHOMED; i++) {
        expect311_q1(fds[i], "rh/all", "live");
        bye311(fds[i]);
    }
    bye311(pub);
    broker_stop(&b);
}

/* ---- fsync = interval / never ------------------------------------------------------------------
 */

static void restore_after_sigterm(const char *fsync)
{
    setup();
    start(0, fsync);
    int sub = open311("fs-sub", false, NULL);
    raw_subscribe(sub, 1, "fs/t", 1);
    bye311(sub);
    int pub = open311("fs-pub", true, NULL);
    pub311_q1(pub, "fs/t", "queued", false, 1);
    pub311_q1(pub, "fs/r", "ret", true, 2);
    bye311(pub);
    broker_stop(&b);

    start(0, fsync);
    bool sp = false;
    sub = open311("fs-sub", false, &sp);
    cr_assert(sp, "fsync = %s: the session is gone", fsync);
    expect311_q1(sub, "fs/t", "queued");
    raw_subscribe(sub, 2, "fs/r", 1);
    raw_expect_publish(sub, &rp);
    cr_assert(rp.retain && !strcmp((char *)rp.payload, "ret"), "fsync = %s: retained lost", fsync);
    send_ack(sub, 0x40, rp.mid);
    bye311(sub);
    broker_stop(&b);
}

Test(persist, fsync_interval_restores_after_sigterm)
{
    restore_after_sigterm("interval");
}

Test(persist, fsync_never_restores_after_sigterm)
{
    restore_after_sigterm("never");
}

/* ---- compaction -------------------------------------------------------------------------------
 */

enum { CP_SESSIONS = 16, CP_EACH = 150, CP_BYTES = 2000 };

/* How many files named NAME (a shell pattern) the shard directories of data_dir hold. */
static int files_in_shards(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "ls %s/gen-*/shard-*/%s 2>/dev/null | wc -l", data_dir, name);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    int n = 0;
    cr_assert(fscanf(f, "%d", &n) == 1);
    pclose(f);
    return n;
}

/* CP_EACH messages of CP_BYTES for each session, pipelined: every PUBLISH
 * of a round sent, then their PUBACKs read. */
static void publish_compaction_load(void)
{
    static char payload[CP_BYTES + 1];
    int pub = open311("cp-pub", true, NULL);
    struct pkt p;
    for (int k = 0; k < CP_EACH; k++) {
        for (int i = 0; i < CP_SESSIONS; i++) {
            char topic[32];
            snprintf(topic, sizeof(topic), "cp/%d", i);
            memset(payload, 'x', CP_BYTES);
            snprintf(payload, sizeof(payload), "%d.", k);
            payload[strlen(payload)] = 'x';
            pkt_publish(&p, topic, payload, CP_BYTES, 1, false, false, (uint16_t)(1 + i));
            cr_assert(raw_send_pkt(pub, &p) == 0);
        }
        for (int i = 0; i < CP_SESSIONS; i++)
            raw_expect_ack(pub, 0x40, (uint16_t)(1 + i));
    }
    bye311(pub);
}

/* Each session's CP_EACH messages, in order. */
static void expect_compaction_load(void)
{
    for (int i = 0; i < CP_SESSIONS; i++) {
        char id[16];
        snprintf(id, sizeof(id), "cp-%d", i);
        bool sp = false;
        int fd = open311(id, false, &sp);
        cr_assert(sp, "%s: the session is gone", id);
        for (int k = 0; k < CP_EACH; k++) {
            raw_expect_publish(fd, &rp);
            int got = -1;
            cr_assert(sscanf((const char *)rp.payload, "%d.", &got) == 1 && got == k,
                      "%s: message %d of %d is %d", id, k, CP_EACH, got);
            send_ack(fd, 0x40, rp.mid);
        }
        bye311(fd);
    }
}

/* With max_log_bytes at its least (1 MiB), 4.8 MB of queued messages make
 * the shards write snapshots while they serve (persist/compact.c), put them
 * in force and delete the segments they cover; after a kill -9 every
 * queued message is there, in order. */
Test(persist, compaction_snapshots_while_serving_and_keeps_everything)
{
    setup();
    char dir[128], sh[64];
    snprintf(dir, sizeof(dir), "persistence.dir=%s", data_dir);
    snprintf(sh, sizeof(sh), "server.shards=%d", env_shards());
    broker_start(&b, "persistence.enabled=true", dir, sh, "persistence.max_log_bytes=1048576",
                 "limits.max_queued_messages=1000", NULL);
    for (int i = 0; i < CP_SESSIONS; i++) {
        char id[16], topic[32];
        snprintf(id, sizeof(id), "cp-%d", i);
        snprintf(topic, sizeof(topic), "cp/%d", i);
        int fd = open311(id, false, NULL);
        raw_subscribe(fd, 1, topic, 1);
        bye311(fd);
    }
    publish_compaction_load();
    broker_wait_log(&b, "in force", 1);
    cr_assert(files_in_shards("SNAPSHOT") >= 1, "no SNAPSHOT file after %d KB of records",
              CP_SESSIONS * CP_EACH * CP_BYTES / 1000);
    /* The covered segments go, through the shard's ring (pshard_unlink):
     * 4.8 MB in segments of about max_log_bytes would be 5 or more. */
    broker_wait_log(&b, "segments the snapshot covers deleted", 1);
    int segs = files_in_shards("log-*.rlog");
    cr_assert(segs <= 2 * env_shards() + 1, "%d log segments left after the snapshots", segs);
    broker_kill(&b);
    start(0, NULL);
    expect_compaction_load();
    broker_stop(&b);
}
