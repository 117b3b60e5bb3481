/* E2E, what the broker tells: the Prometheus endpoint's numbers after a known
 * workload, $SYS topics, events written by the events_log plugin, and the
 * quota_static plugin's refusals (connections, subscriptions). ringmqd only. */
#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct broker b;

TestSuite(observe, .fini = e2e_fini, .timeout = 60);

static void ringmq_only(void)
{
    if (getenv("RINGMQ_E2E_BROKER") && !strcmp(getenv("RINGMQ_E2E_BROKER"), "mosquitto"))
        cr_skip_test("ringmq's own observability");
}

/* The port from "metrics on http://127.0.0.1:PORT/metrics" in the log. */
static int metrics_port(void)
{
    char path[128], line[512];
    snprintf(path, sizeof(path), "%s/broker.log", b.dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    int port = 0;
    while (!port && fgets(line, sizeof(line), f)) {
        char *p = strstr(line, "metrics on http://127.0.0.1:");
        if (p)
            port = atoi(p + strlen("metrics on http://127.0.0.1:"));
    }
    fclose(f);
    cr_assert(port > 0, "no metrics line in the broker log");
    return port;
}

/* GET /metrics over loopback; returns a malloc'd body. */
static char *scrape(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
    cr_assert(write(fd, req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        cr_assert(poll(&p, 1, E2E_WAIT_MS) == 1, "metrics endpoint did not answer");
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    close(fd);
    cr_assert(strstr(buf, "200 OK"), "%s", buf);
    return buf;
}

/* The value of the sample whose line starts with `prefix` (labels included). */
static long sample(const char *body, const char *prefix)
{
    for (const char *p = body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, prefix, strlen(prefix)) == 0)
            return atol(p + strlen(prefix));
    return -1;
}

Test(observe, metrics_count_a_known_workload)
{
    ringmq_only();
    broker_start(&b, "metrics.enabled=true", "metrics.port=0", NULL);
    int port = metrics_port();
    struct client *sub = client_open(&b, "m-sub", true);
    cr_assert_eq(client_subscribe(sub, "m/t", 1), 1);
    struct client *pub = client_open(&b, "m-pub", true);
    for (int i = 0; i < 5; i++)
        client_publish(pub, "m/t", "12345", 5, 1, false);
    for (int i = 0; i < 5; i++)
        client_expect_message(sub, "m/t", "12345", NULL, NULL);
    char *body = scrape(port);
    cr_assert_eq(sample(body, "ringmq_connections{tenant=\"global\"} "), 2, "%s", body);
    cr_assert_eq(sample(body, "ringmq_sessions{tenant=\"global\"} "), 2);
    cr_assert_eq(sample(body, "ringmq_subscriptions{tenant=\"global\"} "), 1);
    cr_assert_eq(sample(body, "ringmq_messages_in_total{tenant=\"global\",qos=\"1\"} "), 5);
    cr_assert_eq(sample(body, "ringmq_messages_out_total{tenant=\"global\",qos=\"1\"} "), 5);
    cr_assert(strstr(body, "# TYPE ringmq_messages_in_total counter"));
    free(body);
    client_disconnect(pub);
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

Test(observe, events_log_records_connects_and_disconnects)
{
    ringmq_only();
    char log[64], set_path[300], set_file[100];
    snprintf(log, sizeof(log), "/tmp/ringmq-events-XXXXXX");
    int fd = mkstemp(log);
    close(fd);
    snprintf(set_path, sizeof(set_path), "plugin.events.path=%s", getenv("RINGMQ_EVENTS_SO"));
    snprintf(set_file, sizeof(set_file), "plugin.events.file=%s", log);
    broker_start(&b, set_path, set_file, NULL);
    struct client *c = client_open(&b, "ev-client", true);
    client_disconnect(c);
    broker_stop(&b); /* flushes and closes the log */
    FILE *f = fopen(log, "r");
    cr_assert_not_null(f);
    char line[1024];
    int connected = 0, disconnected = 0, with_addr = 0;
    while (fgets(line, sizeof(line), f)) {
        if (!strstr(line, "\"ev-client\""))
            continue;
        bool is_connected = strstr(line, "\"connected\"") != NULL;
        connected += is_connected;
        disconnected += strstr(line, "\"disconnected\"") != NULL;
        /* The client connects from 127.0.0.1: plain IPv4, not ::ffff:. */
        with_addr += is_connected && strstr(line, "\"remote_addr\":\"127.0.0.1\"") != NULL;
    }
    fclose(f);
    unlink(log);
    cr_assert_eq(connected, 1);
    cr_assert_eq(disconnected, 1);
    cr_assert_eq(with_addr, 1, "the connected event carries the client's address");
}

Test(observe, quota_static_refuses_connections_and_subscriptions)
{
    ringmq_only();
    char set_path[300];
    snprintf(set_path, sizeof(set_path), "plugin.quota.path=%s", getenv("RINGMQ_QUOTA_SO"));
    broker_start(&b, set_path, "plugin.quota.global.max_connections=1",
                 "plugin.quota.global.max_subscriptions=1", "plugin.quota.global.max_retained=1",
                 "metrics.sys_topics=false", NULL); /* $SYS topics are retained messages too */
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
    struct client *again = client_open(&b, "q3", true);
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
    ringmq_only();
    char set_path[300];
    snprintf(set_path, sizeof(set_path), "plugin.quota.path=%s", getenv("RINGMQ_QUOTA_SO"));
    broker_start(&b, set_path, "plugin.quota.global.max_bytes_in_rate=100",
                 "metrics.sys_topics=false", NULL);
    struct client *sub = client_open(&b, "bw-sub", true);
    cr_assert_eq(client_subscribe(sub, "bw", 1), 1);
    struct client *pub = client_open(&b, "bw-pub", true);
    const char payload[] = "0123456789012345678901234567890123";
    for (int i = 0; i < 10; i++)
        client_publish(pub, "bw", payload, (int)strlen(payload), 1, false);
    int got = 0;
    struct msg m;
    while (client_wait_message(sub, &m, E2E_ABSENT_MS) == 0) {
        msg_free(&m);
        got++;
    }
    cr_assert(got >= 1 && got < 10, "%d of 10 delivered under a 100 B/s quota", got);
    client_disconnect(pub);
    client_disconnect(sub);
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
