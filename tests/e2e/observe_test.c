/* E2E, what the broker tells: the Prometheus endpoint's numbers after a known
 * workload, $SYS topics, events written by the events_log plugin, and the
 * quota_static plugin's refusals (connections, subscriptions, shared
 * subscriptions, retained, bytes in and out). ringmqd only. */
#include "harness.h"
#include "harness_v5.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct broker b;

TestSuite(observe, .fini = e2e_fini, .timeout = 60);

static void ringmq_only(void)
{
    if (getenv("RINGMQ_E2E_BROKER") && !strcmp(getenv("RINGMQ_E2E_BROKER"), "mosquitto"))
        cr_skip_test("ringmq's own observability");
}

Test(observe, metrics_count_a_known_workload)
{
    ringmq_only();
    broker_start(&b, "metrics.enabled=true", "metrics.port=0", NULL);
    int port = broker_metrics_port(&b);
    struct client *sub = client_open(&b, "m-sub", true);
    cr_assert_eq(client_subscribe(sub, "m/t", 1), 1);
    struct client *pub = client_open(&b, "m-pub", true);
    for (int i = 0; i < 5; i++)
        client_publish(pub, "m/t", "12345", 5, 1, false);
    for (int i = 0; i < 5; i++)
        client_expect_message(sub, "m/t", "12345", NULL, NULL);
    char *body = metrics_scrape(port);
    cr_assert_eq(metrics_sample(body, "ringmq_connections{tenant=\"global\"} "), 2, "%s", body);
    cr_assert_eq(metrics_sample(body, "ringmq_sessions{tenant=\"global\"} "), 2);
    cr_assert_eq(metrics_sample(body, "ringmq_subscriptions{tenant=\"global\"} "), 1);
    cr_assert_eq(metrics_sample(body, "ringmq_messages_in_total{tenant=\"global\",qos=\"1\"} "), 5);
    cr_assert_eq(metrics_sample(body, "ringmq_messages_out_total{tenant=\"global\",qos=\"1\"} "),
                 5);
    /* 3.1.1 QoS 1 PUBLISH of "m/t", "12345": 2 + 2 + 3 + 2 + 5 = 14 bytes. */
    cr_assert_eq(metrics_sample(body, "ringmq_bytes_in_total{tenant=\"global\",qos=\"1\"} "),
                 5 * 14);
    cr_assert_eq(metrics_sample(body, "ringmq_bytes_out_total{tenant=\"global\",qos=\"1\"} "),
                 5 * 14);
    cr_assert_eq(metrics_sample(body, "ringmq_bytes_in_total{tenant=\"global\",qos=\"0\"} "), 0);
    cr_assert(strstr(body, "# TYPE ringmq_messages_in_total counter"));
    free(body);
    client_disconnect(pub);
    client_disconnect(sub);
    broker_stop(&b);
}

/* Milliseconds from a half-close after `req` to the metrics server's
 * close of port's connection (at most 5000: then it still held it). */
static long long half_closed_held_ms(int port, const char *req)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    cr_assert(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
    shutdown(fd, SHUT_WR);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char buf[512];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (poll(&p, 1, 5000) == 1 && read(fd, buf, sizeof(buf)) > 0)
        ;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    close(fd);
    return (t1.tv_sec - t0.tv_sec) * 1000LL + (t1.tv_nsec - t0.tv_nsec) / 1000000;
}

/* A request cut short and half-closed is closed at once, not after the
 * 10 s connection timeout (libmicrohttpd's edge-triggered epoll missed
 * the end of the stream). */
Test(observe, metrics_close_a_half_closed_request_at_once)
{
    ringmq_only();
    broker_start(&b, "metrics.enabled=true", "metrics.port=0", NULL);
    int port = broker_metrics_port(&b);
    static const char *const cut[] = {"GET /metr", "GET /metrics HTTP/1.1\r\nHost: x\r\n",
                                      "garbage"};
    for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
        long long ms = half_closed_held_ms(port, cut[i]);
        cr_assert_lt(ms, 1000, "request %zu held %lld ms after the half-close", i, ms);
    }
    broker_stop(&b);
}

/* ringmq_pending_closed_total counts the connections closed before their
 * CONNECT to stay within limits.max_pending_connections. */
Test(observe, pending_closed_total_counts_closed_pending_connections)
{
    ringmq_only();
    broker_start(&b, "metrics.enabled=true", "metrics.port=0", "server.shards=1",
                 "limits.max_pending_connections=2", NULL);
    int port = broker_metrics_port(&b);
    char *body = metrics_scrape(port);
    cr_assert_eq(metrics_sample(body, "ringmq_pending_closed_total "), 0, "%s", body);
    cr_assert(strstr(body, "# TYPE ringmq_pending_closed_total counter"));
    free(body);
    int fd[5];
    for (int i = 0; i < 5; i++)
        fd[i] = raw_open(&b); /* 3 more than the budget */
    /* The third closes the first, the fourth the second, the fifth the third. */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(raw_wait_close(fd[i], E2E_WAIT_MS), 0, "pending connection %d kept", i);
    body = metrics_scrape(port);
    cr_assert_eq(metrics_sample(body, "ringmq_pending_closed_total "), 3, "%s", body);
    free(body);
    for (int i = 0; i < 5; i++)
        close(fd[i]);
    broker_stop(&b);
}

/* MQTT-4.3.3-2 (method A): a QoS 2 PUBLISH resent before PUBREL (its
 * PUBREC was lost) is acknowledged again with PUBREC 0x00 but is one
 * message received: delivered once and counted once. */
Test(observe, mqtt_4_3_3_2_resent_qos2_publish_counts_once)
{
    ringmq_only();
    broker_start(&b, "metrics.enabled=true", "metrics.port=0", NULL);
    struct client *sub = client_open(&b, "q2-sub", true);
    cr_assert_eq(client_subscribe(sub, "q2/t", 2), 2);
    struct raw_connect o = {.flags = -1, .clean = true, .id = "q2-pub"};
    int fd = raw_mqtt_open(&b, &o);
    struct pkt p;
    pkt_publish(&p, "q2/t", "once", 4, 2, false, false, 9);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    raw_expect_ack(fd, 0x50, 9);
    pkt_publish(&p, "q2/t", "once", 4, 2, false, true, 9); /* DUP */
    cr_assert(raw_send_pkt(fd, &p) == 0);
    raw_expect_ack(fd, 0x50, 9);
    pkt_ack(&p, 0x62, 9);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    raw_expect_ack(fd, 0x70, 9);
    client_expect_message(sub, "q2/t", "once", NULL, NULL);
    cr_assert(client_no_message(sub, E2E_ABSENT_MS), "delivered twice");
    char *body = metrics_scrape(broker_metrics_port(&b));
    cr_assert_eq(metrics_sample(body, "ringmq_messages_in_total{tenant=\"global\",qos=\"2\"} "), 1,
                 "%s", body);
    free(body);
    close(fd);
    client_disconnect(sub);
    broker_stop(&b);
}

Test(observe, sys_topics_in_the_global_tenant)
{
    ringmq_only();
    broker_start(&b, "metrics.sys_interval=1", NULL);
    struct client *c = client_open(&b, "sys", true);
    cr_assert_eq(client_subscribe(c, "$SYS/broker/clients/connected", 0), 0);
    struct msg m;
    cr_assert_eq(client_wait_message(c, &m, E2E_WAIT_MS), 0, "no $SYS message");
    cr_assert_str_eq(m.topic, "$SYS/broker/clients/connected");
    msg_free(&m);
    client_disconnect(c);
    broker_stop(&b);
}

/* ringmqd with the events_log plugin writing to a new file named in log. */
static void start_events(char log[64])
{
    ringmq_only();
    char set_path[300], set_file[100];
    snprintf(log, 64, "/tmp/ringmq-events-XXXXXX");
    int fd = mkstemp(log);
    cr_assert(fd >= 0);
    close(fd);
    snprintf(set_path, sizeof(set_path), "plugin.events.path=%s", getenv("RINGMQ_EVENTS_SO"));
    snprintf(set_file, sizeof(set_file), "plugin.events.file=%s", log);
    broker_start(&b, set_path, set_file, NULL);
}

/* Lines of the events log containing every one of the NULL-terminated
 * needles (call after broker_stop, which flushes the log). */
static int events_count(const char *log, ...)
{
    FILE *f = fopen(log, "r");
    cr_assert_not_null(f);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof(line), f)) {
        va_list ap;
        va_start(ap, log);
        bool all = true;
        for (const char *needle; all && (needle = va_arg(ap, const char *));)
            all = strstr(line, needle) != NULL;
        va_end(ap);
        n += all;
    }
    fclose(f);
    return n;
}

/* Connects and disconnects are recorded, the connects with the client's
 * address (plain IPv4, not ::ffff:), also after a move to the client's home
 * shard (with four shards most of the eight clients move). */
Test(observe, events_log_records_connects_and_disconnects)
{
    char log[64];
    start_events(log);
    for (int i = 0; i < 8; i++) {
        char id[16];
        snprintf(id, sizeof(id), "ev-client-%d", i);
        client_disconnect(client_open(&b, id, true));
    }
    broker_stop(&b);
    cr_assert_eq(events_count(log, "\"ev-client-", "\"connected\"", NULL), 8);
    cr_assert_eq(events_count(log, "\"ev-client-", "\"disconnected\"", NULL), 8);
    cr_assert_eq(
        events_count(log, "\"ev-client-", "\"connected\"", "\"remote_addr\":\"127.0.0.1\"", NULL),
        8, "every connected event carries the client's address");
    unlink(log);
}

/* ringmqd with quota_static limiting the global tenant by `limit`
 * ("RESOURCE=N"), metrics on an ephemeral port, no $SYS traffic. */
static void start_quota(const char *limit)
{
    ringmq_only();
    char set_path[300], set_limit[100];
    snprintf(set_path, sizeof(set_path), "plugin.quota.path=%s", getenv("RINGMQ_QUOTA_SO"));
    snprintf(set_limit, sizeof(set_limit), "plugin.quota.global.%s", limit);
    broker_start(&b, set_path, set_limit, "metrics.enabled=true", "metrics.port=0",
                 "metrics.sys_topics=false", NULL);
}

/* start_quota(limit), then n QoS 1 publishes of 40 bytes to a subscriber
 * of QoS sub_qos: how many it gets (until none comes for E2E_ABSENT_MS). */
static int publish_under_quota(const char *limit, int sub_qos, int n)
{
    start_quota(limit);
    struct client *sub = client_open(&b, "q-sub", true);
    cr_assert_eq(client_subscribe(sub, "q", sub_qos), sub_qos);
    struct client *pub = client_open(&b, "q-pub", true);
    const char payload[] = "0123456789012345678901234567890123";
    for (int i = 0; i < n; i++)
        client_publish(pub, "q", payload, (int)strlen(payload), 1, false);
    int got = 0;
    struct msg m;
    while (client_wait_message(sub, &m, E2E_ABSENT_MS) == 0) {
        msg_free(&m);
        got++;
    }
    client_disconnect(pub);
    client_disconnect(sub);
    return got;
}

Test(observe, quota_static_refuses_connections_and_subscriptions)
{
    ringmq_only();
    char set_path[300];
    snprintf(set_path, sizeof(set_path), "plugin.quota.path=%s", getenv("RINGMQ_QUOTA_SO"));
    /* $SYS topics are retained messages of the same tenant, but the broker's,
     * not counted toward the tenant's retained quota. */
    broker_start(&b, set_path, "plugin.quota.global.max_connections=1",
                 "plugin.quota.global.max_subscriptions=1", "plugin.quota.global.max_retained=1",
                 "metrics.sys_interval=1", NULL);
    struct client *one = client_open(&b, "q1", true);
    struct client *two = NULL;
    struct client_opts o = {.id = "q2", .clean = true};
    cr_assert_eq(client_connect_rc(&b, &o, &two), 3, "connection quota: CONNACK 0x03");
    client_destroy(two);
    cr_assert_eq(client_subscribe(one, "a", 0), 0);
    cr_assert_eq(client_subscribe(one, "b", 0), 0x80, "subscription quota: SUBACK 0x80");
    /* Retained quota: the second retained topic is delivered but not kept. */
    client_publish(one, "a", "r1", 2, 1, true);
    client_expect_message(one, "a", "r1", NULL, NULL);
    client_publish(one, "r2", "r2", 2, 1, true);
    client_disconnect(one);
    /* The broker releases q1's connection when it has read the DISCONNECT,
     * which may be after q3's CONNECT reached another shard: a refusal until
     * then is right, so retry (bounded) as a real client would. */
    struct client *again = NULL;
    struct client_opts o3 = {.id = "q3", .clean = true};
    int rc = 3;
    for (int i = 0; i < 100 && rc == 3; i++) {
        if (i) {
            client_destroy(again);
            usleep(20 * 1000);
        }
        rc = client_connect_rc(&b, &o3, &again);
    }
    cr_assert_eq(rc, 0, "q3 still refused after q1 disconnected");
    cr_assert_eq(client_subscribe(again, "#", 0), 0);
    struct msg m;
    cr_assert_eq(client_wait_message(again, &m, E2E_WAIT_MS), 0);
    cr_assert_str_eq(m.topic, "a", "the retained message within the quota");
    msg_free(&m);
    cr_assert(client_no_message(again, E2E_ABSENT_MS), "a retained message beyond the quota");
    client_disconnect(again);
    broker_stop(&b);
}

/* A setting provider's values replace the tenant's configured ones at run
 * time: max_qos = 0 makes a QoS 1 subscription granted QoS 0. */
Test(observe, setting_provider_overrides_tenant_settings)
{
    ringmq_only();
    char set_path[300];
    snprintf(set_path, sizeof(set_path), "plugin.settings.path=%s", getenv("RINGMQ_SETTINGS_SO"));
    broker_start(&b, set_path, NULL);
    /* The first answer arrives within a tick (250 ms) of the start: ask
     * again every 50 ms until then, for 5 s at most. */
    int granted = -1;
    for (int i = 0; i < 100 && granted != 0; i++) {
        if (i)
            usleep(50 * 1000);
        char id[16];
        snprintf(id, sizeof(id), "set%d", i);
        struct client *c = client_open(&b, id, true);
        granted = client_subscribe(c, "s/t", 1);
        client_disconnect(c);
    }
    cr_assert_eq(granted, 0, "the provider's max_qos = 0 never applied");
    broker_stop(&b);
}

/* quota_static's max_connect_rate: at most 2 connects per second for the
 * tenant, so of 5 quick connects (spanning at most two seconds) at least one
 * is refused with CONNACK 0x03 (5.0: 0x9F). */
Test(observe, quota_static_refuses_a_connect_burst)
{
    ringmq_only();
    char set_path[300];
    snprintf(set_path, sizeof(set_path), "plugin.quota.path=%s", getenv("RINGMQ_QUOTA_SO"));
    broker_start(&b, set_path, "plugin.quota.global.max_connect_rate=2", NULL);
    int refused = 0, accepted = 0;
    struct client *c[5];
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof(id), "burst%d", i);
        struct client_opts o = {.id = id, .clean = true};
        int rc = client_connect_rc(&b, &o, &c[i]);
        refused += rc == 3;
        accepted += rc == 0;
    }
    for (int i = 0; i < 5; i++)
        client_destroy(c[i]);
    cr_assert(refused >= 1 && accepted >= 2, "accepted %d, refused %d", accepted, refused);
    broker_stop(&b);
}

/* quota_static's max_bytes_in_rate: 100 bytes per second of PUBLISH for the
 * tenant; of 10 quick 40-byte publishes (spanning at most two seconds) some
 * are not delivered, and the first is. */
Test(observe, quota_static_limits_inbound_bytes)
{
    int got = publish_under_quota("max_bytes_in_rate=100", 1, 10);
    cr_assert(got >= 1 && got < 10, "%d of 10 delivered under a 100 B/s quota", got);
    broker_stop(&b);
}

/* [tenant.default] publish_rate = 5: a client publishing 15 QoS 1 messages is
 * held back (not read) past its rate, so they take at least two more seconds,
 * and every one still arrives: back-pressure, not loss. */
Test(observe, publish_rate_holds_a_client_back_without_loss)
{
    ringmq_only();
    broker_start(&b, "tenant.default.publish_rate=5", NULL);
    struct client *sub = client_open(&b, "r-sub", true);
    cr_assert_eq(client_subscribe(sub, "rate", 1), 1);
    struct client *pub = client_open(&b, "r-pub", true);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 15; i++)
        client_publish(pub, "rate", "x", 1, 1, false);
    for (int i = 0; i < 15; i++)
        client_expect_message(sub, "rate", "x", NULL, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    /* Three seconds are touched at least: from inside one to the start of
     * the third is more than a second. */
    cr_assert(ms >= 1000, "15 messages at 5 per second took only %ld ms", ms);
    client_disconnect(pub);
    client_disconnect(sub);
    broker_stop(&b);
}

/* quota_static's max_shared_subscriptions: the second shared subscription
 * of the tenant is refused (SUBACK 0x80; 5.0: 0x97), other subscriptions are
 * not; the gauge counts the shared one. */
Test(observe, quota_static_limits_shared_subscriptions)
{
    start_quota("max_shared_subscriptions=1");
    struct client *one = client_open(&b, "sh1", true);
    cr_assert_eq(client_subscribe(one, "$share/g/a", 1), 1);
    cr_assert_eq(client_subscribe(one, "$share/g/a", 0), 0, "a replaced one is not a new one");
    struct client *two = client_open(&b, "sh2", true);
    cr_assert_eq(client_subscribe(two, "$share/g/b", 1), 0x80);
    cr_assert_eq(client_subscribe(two, "plain", 1), 1);
    int fd = v5_open(&b, "sh5", NULL);
    v5_subscribe(fd, 1, "$share/h/a", 1, NULL, 0x97);
    close(fd);
    char *body = metrics_scrape(broker_metrics_port(&b));
    cr_assert_eq(metrics_sample(body, "ringmq_shared_subscriptions{tenant=\"global\"} "), 1, "%s",
                 body);
    cr_assert_eq(metrics_sample(body, "ringmq_subscriptions{tenant=\"global\"} "), 2);
    free(body);
    client_unsubscribe(one, "$share/g/a");
    cr_assert_eq(client_subscribe(two, "$share/g/b", 1), 1, "the quota is free again");
    client_disconnect(one);
    client_disconnect(two);
    broker_stop(&b);
}

/* quota_static's max_bytes_out_rate, 300 bytes per second of deliveries for
 * the tenant: 20 QoS 1 messages of about 50 bytes (two seconds at most) go
 * over it; every one still arrives, in order (held back, not lost), and
 * the refusals are counted. */
Test(observe, quota_static_holds_qos1_back_for_outbound_bytes)
{
    start_quota("max_bytes_out_rate=300");
    struct client *sub = client_open(&b, "out-sub", true);
    cr_assert_eq(client_subscribe(sub, "bo", 1), 1);
    struct client *pub = client_open(&b, "out-pub", true);
    char payload[40];
    for (int i = 0; i < 20; i++) {
        snprintf(payload, sizeof(payload), "message %02d 0123456789012345678901", i);
        client_publish(pub, "bo", payload, (int)strlen(payload), 1, false);
    }
    for (int i = 0; i < 20; i++) {
        snprintf(payload, sizeof(payload), "message %02d 0123456789012345678901", i);
        client_expect_message(sub, "bo", payload, NULL, NULL);
    }
    char *body = metrics_scrape(broker_metrics_port(&b));
    cr_assert_gt(metrics_sample(body, "ringmq_throttled_total{tenant=\"global\"} "), 0, "%s", body);
    cr_assert_eq(
        metrics_sample(body, "ringmq_dropped_total{tenant=\"global\",reason=\"throttled\"} "), 0);
    free(body);
    client_disconnect(pub);
    client_disconnect(sub);
    broker_stop(&b);
}

/* The same quota for QoS 0 deliveries: over it they are dropped (at most
 * once), counted by reason; the first ones arrive. */
Test(observe, quota_static_drops_qos0_over_outbound_bytes)
{
    int got = publish_under_quota("max_bytes_out_rate=300", 0, 20);
    cr_assert(got >= 1 && got < 20, "%d of 20 delivered under a 300 B/s quota", got);
    char *body = metrics_scrape(broker_metrics_port(&b));
    cr_assert_eq(
        metrics_sample(body, "ringmq_dropped_total{tenant=\"global\",reason=\"throttled\"} "),
        20 - got, "%s", body);
    free(body);
    broker_stop(&b);
}

/* Retained messages sent on SUBSCRIBE are outbound bytes too: 20 retained
 * QoS 0 messages of about 45 bytes each, stored while nobody subscribed
 * (nothing sent, nothing counted), then a subscription to all of them
 * under a 300 B/s quota gets some, and the rest are dropped and counted. */
Test(observe, retained_messages_on_subscribe_count_toward_outbound_bytes)
{
    start_quota("max_bytes_out_rate=300");
    struct client *pub = client_open(&b, "ret-pub", true);
    char topic[16], payload[40];
    for (int i = 0; i < 20; i++) {
        snprintf(topic, sizeof(topic), "rq/%02d", i);
        snprintf(payload, sizeof(payload), "retained %02d 0123456789012345678901", i);
        client_publish(pub, topic, payload, (int)strlen(payload), 1, true);
    }
    struct client *sub = client_open(&b, "ret-sub", true);
    cr_assert_eq(client_subscribe(sub, "rq/#", 0), 0);
    int got = 0;
    struct msg m;
    while (client_wait_message(sub, &m, E2E_ABSENT_MS) == 0) {
        msg_free(&m);
        got++;
    }
    cr_assert(got >= 1 && got < 20, "%d of 20 retained messages under a 300 B/s quota", got);
    char *body = metrics_scrape(broker_metrics_port(&b));
    cr_assert_eq(
        metrics_sample(body, "ringmq_dropped_total{tenant=\"global\",reason=\"throttled\"} "),
        20 - got, "%s", body);
    free(body);
    client_disconnect(pub);
    client_disconnect(sub);
    broker_stop(&b);
}

/* Over the inbound bytes quota a 5.0 client's QoS 1 PUBLISH gets PUBACK
 * 0x97, and a QoS 0 one, which has no acknowledgement, a DISCONNECT 0x97. */
Test(observe, inbound_quota_is_0x97_in_puback_and_disconnect)
{
    start_quota("max_bytes_in_rate=100");
    int fd = v5_open(&b, "in5", NULL);
    const char payload[] = "0123456789012345678901234567890123";
    int refused = 0;
    for (int i = 0; i < 10; i++)
        refused += v5_publish(fd, "bi", payload, 1, false, (uint16_t)(i + 1), NULL) == 0x97;
    cr_assert(refused >= 1, "10 QoS 1 publishes of 40 bytes under 100 B/s: none refused");
    /* The broker closes once it refuses one: later sends may fail. */
    struct pkt p;
    pkt_publish5(&p, "bi", payload, strlen(payload), 0, false, 0, NULL);
    for (int i = 0; i < 10 && raw_send_pkt(fd, &p) == 0; i++)
        ;
    v5_expect_disconnect(fd, 0x97, -1);
    close(fd);
    broker_stop(&b);
}

/* Over the retained quota a 5.0 client's retained QoS 1 PUBLISH gets
 * PUBACK 0x97, and a QoS 0 one a DISCONNECT 0x97: it has no acknowledgement
 * to carry the reason, and a silent drop would leave the client believing
 * its state stored. */
Test(observe, retained_quota_is_0x97_in_puback_and_disconnect)
{
    start_quota("max_retained=1");
    int fd = v5_open(&b, "ret5", NULL);
    cr_assert_eq(v5_publish(fd, "ra", "1", 1, true, 1, NULL), 0);
    cr_assert_eq(v5_publish(fd, "ra", "2", 1, true, 2, NULL), 0, "a replacement is no new topic");
    cr_assert_eq(v5_publish(fd, "rb", "1", 1, true, 3, NULL), 0x97);
    cr_assert_eq(v5_publish(fd, "rb", "1", 1, false, 4, NULL), 0, "not retained: no quota");
    struct pkt p;
    pkt_publish5(&p, "rc", "1", 1, 0, true, 0, NULL);
    cr_assert_eq(raw_send_pkt(fd, &p), 0);
    v5_expect_disconnect(fd, 0x97, -1);
    close(fd);
    broker_stop(&b);
}

/* $SYS belongs to the broker: a client's PUBLISH there is not delivered
 * (5.0: PUBACK 0x87). */
Test(observe, clients_cannot_publish_to_sys)
{
    ringmq_only();
    broker_start(&b, "metrics.sys_topics=false", NULL);
    struct client *sub = client_open(&b, "sys-sub", true);
    cr_assert_eq(client_subscribe(sub, "$SYS/#", 0), 0);
    struct client *pub = client_open(&b, "sys-pub", true);
    client_publish(pub, "$SYS/broker/uptime", "0", 1, 1, false);
    cr_assert(client_no_message(sub, E2E_ABSENT_MS), "a client's $SYS message was delivered");
    int fd = v5_open(&b, "sys5", NULL);
    cr_assert_eq(v5_publish(fd, "$SYS/x", "1", 1, false, 1, NULL), 0x87);
    cr_assert_eq(v5_publish(fd, "$SYSTEM", "1", 1, false, 2, NULL), 0, "only $SYS itself");
    close(fd);
    client_disconnect(pub);
    client_disconnect(sub);
    broker_stop(&b);
}

/* Every drop reaches the event collectors with its reason: here a message
 * larger than the subscriber's Maximum Packet Size (MQTT-3.1.2-25). */
Test(observe, events_log_records_dropped_messages)
{
    char log[64];
    start_events(log);
    struct props pr;
    props_init(&pr);
    props_u32(&pr, P_MAXIMUM_PACKET_SIZE, 64);
    int sub = v5_open(&b, "small-sub", &pr);
    v5_subscribe(sub, 1, "big", 0, NULL, 0);
    struct client *pub = client_open(&b, "big-pub", true);
    char payload[200];
    memset(payload, 'x', sizeof(payload));
    client_publish(pub, "big", payload, sizeof(payload), 1, false);
    v5_expect_nothing(sub, E2E_ABSENT_MS);
    client_disconnect(pub);
    close(sub);
    broker_stop(&b);
    cr_assert_eq(
        events_count(log, "\"message_dropped\"", "\"too_large\"", "\"small-sub\"", "\"big\"", NULL),
        1);
    unlink(log);
}

/* A PUBLISH whose permission check the plugin answers later is handled
 * again once the answer is in: it is still one message received. The
 * challenge plugin answers from its own thread; "t/x" is asked once (then
 * cached), every "flip/x" is asked again (granted, denied, granted). */
Test(observe, messages_in_count_once_when_a_check_waits_for_the_plugin)
{
    ringmq_only();
    char set_path[300];
    snprintf(set_path, sizeof(set_path), "plugin.chal.path=%s", getenv("RINGMQ_CHALLENGE_SO"));
    broker_start(&b, set_path, "metrics.enabled=true", "metrics.port=0", NULL);
    int port = broker_metrics_port(&b);
    int fd = v5_open(&b, "waiter", NULL);
    cr_assert_eq(v5_publish(fd, "t/x", "1", 1, false, 1, NULL), 0);
    cr_assert_eq(v5_publish(fd, "t/x", "1", 1, false, 2, NULL), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(v5_publish(fd, "flip/x", "1", 1, false, (uint16_t)(3 + i), NULL),
                     i % 2 ? 0x87 : 0, "publish %d", i);
    char *body = metrics_scrape(port);
    cr_assert_eq(metrics_sample(body, "ringmq_messages_in_total{tenant=\"acme\",qos=\"1\"} "), 5,
                 "%s", body);
    /* 5.0 QoS 1 PUBLISH: 2 + 2 + topic + 2 + 1 (no properties) + 1 byte. */
    cr_assert_eq(metrics_sample(body, "ringmq_bytes_in_total{tenant=\"acme\",qos=\"1\"} "),
                 2 * (8 + 3) + 3 * (8 + 6), "%s", body);
    cr_assert_eq(metrics_sample(body, "ringmq_permission_denied_total{tenant=\"acme\"} "), 1, "%s",
                 body);
    free(body);
    close(fd);
    broker_stop(&b);
}

/* A CONNECT that takes over a connected session closes that connection: it
 * does not add one, so a tenant at its connection quota still lets a client
 * reconnect over its own (half-open, say) connection (MQTT-3.1.4-2). */
Test(observe, connection_quota_lets_a_takeover_through)
{
    ringmq_only();
    char set_path[300];
    snprintf(set_path, sizeof(set_path), "plugin.quota.path=%s", getenv("RINGMQ_QUOTA_SO"));
    broker_start(&b, set_path, "plugin.quota.global.max_connections=1", "metrics.enabled=true",
                 "metrics.port=0", NULL);
    int port = broker_metrics_port(&b);
    struct client *first = client_open(&b, "same", true);
    struct client *second = NULL;
    struct client_opts o = {.id = "same", .clean = true};
    cr_assert_eq(client_connect_rc(&b, &o, &second), 0, "the takeover was refused");
    cr_assert(client_wait_closed(first, E2E_WAIT_MS) == 0, "MQTT-3.1.4-2: first not closed");
    char *body = metrics_scrape(port);
    cr_assert_eq(metrics_sample(body, "ringmq_connections{tenant=\"global\"} "), 1, "%s", body);
    cr_assert_eq(metrics_sample(body, "ringmq_throttled_total{tenant=\"global\"} "), 0, "%s", body);
    free(body);
    client_disconnect(second);
    client_destroy(first);
    broker_stop(&b);
}

/* A retained message that replaces the one of its topic adds no retained
 * topic: at quota_static's max_retained = 1 the one topic can still be
 * updated, and under max_retained_bytes (1000: a small message costs its
 * header, topic, payload and its index node on every shard, under 500
 * bytes with 4 shards) a replacement counts only the bytes it adds. */
Test(observe, retained_quota_lets_a_topic_be_replaced)
{
    ringmq_only();
    char set_path[300];
    snprintf(set_path, sizeof(set_path), "plugin.quota.path=%s", getenv("RINGMQ_QUOTA_SO"));
    broker_start(&b, set_path, "plugin.quota.global.max_retained=1",
                 "plugin.quota.global.max_retained_bytes=1000", NULL);
    struct client *c = client_open(&b, "rr", true);
    client_publish(c, "keep", "r1", 2, 1, true);
    client_publish(c, "keep", "r2", 2, 1, true);
    client_publish(c, "keep", "r3r3", 4, 1, true);
    client_publish(c, "keep", "r4", 2, 1, true);
    client_publish(c, "other", "no", 2, 1, true); /* a second topic: over the quota */
    cr_assert_eq(client_subscribe(c, "#", 1), 1);
    struct msg m;
    cr_assert_eq(client_wait_message(c, &m, E2E_WAIT_MS), 0);
    cr_assert_str_eq(m.topic, "keep");
    cr_assert_str_eq((char *)m.payload, "r4", "the replacement was not retained");
    msg_free(&m);
    cr_assert(client_no_message(c, E2E_ABSENT_MS), "a retained message beyond the quota");
    client_disconnect(c);
    broker_stop(&b);
}
