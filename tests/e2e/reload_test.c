/* E2E, live reload (issue 14): SIGHUP reads the configuration file again
 * (with the same --set overrides); limits take effect for new connections
 * while open ones stay, an invalid file changes nothing, a key that needs a
 * restart is reported and kept, and nothing is dropped by a reload under
 * load. Each test writes its own copy of the configuration (RINGMQ_CONF
 * plus sections appended) and rewrites it before the SIGHUP. ringmqd only. */
#include "harness.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct broker b;
static char conf_path[64];
static char *base_conf;

TestSuite(reload, .fini = e2e_fini, .timeout = 60);

static void skip_mosquitto(void)
{
    if (getenv("RINGMQ_E2E_BROKER") && !strcmp(getenv("RINGMQ_E2E_BROKER"), "mosquitto"))
        cr_skip_test("ringmqd's reload");
}

/* RINGMQ_CONF's text, once. */
static const char *base_text(void)
{
    if (!base_conf) {
        FILE *f = fopen(getenv("RINGMQ_CONF"), "r");
        cr_assert_not_null(f);
        base_conf = calloc(1, 1 << 20);
        cr_assert_not_null(base_conf);
        size_t n = fread(base_conf, 1, (1 << 20) - 1, f);
        base_conf[n] = 0;
        fclose(f);
    }
    return base_conf;
}

/* Whether line is "key = ..." for the key of set's line at p. */
static bool same_key(const char *line, const char *p)
{
    const char *eq = strstr(p, " = ");
    const char *end = strchr(p, '\n');
    if (!eq || (end && eq > end))
        return false;
    size_t klen = (size_t)(eq - p);
    return !strncmp(line, p, klen) && !strncmp(line + klen, " = ", 3);
}

/* Write RINGMQ_CONF's text to this test's configuration, with the lines
 * "key = value" of `set` in place of that key's line (the file refuses a
 * key set twice in a section); set's other lines ("[tenant.default]", a
 * key the file does not set) are appended. */
static void write_conf(const char *set)
{
    if (!conf_path[0]) {
        snprintf(conf_path, sizeof(conf_path), "/tmp/ringmq_reload_XXXXXX");
        int fd = mkstemp(conf_path);
        cr_assert_geq(fd, 0);
        close(fd);
    }
    char *text = strdup(base_text());
    bool used[16] = {0};
    cr_assert_not_null(text);
    FILE *f = fopen(conf_path, "w");
    cr_assert_not_null(f);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        const char *with = NULL;
        int i = 0;
        for (const char *p = set; p && *p && i < 16; i++, p = strchr(p, '\n') + 1)
            if (same_key(line, p)) {
                with = p;
                used[i] = true;
            }
        if (with)
            fprintf(f, "%.*s\n", (int)(strchr(with, '\n') - with), with);
        else
            fprintf(f, "%s\n", line);
    }
    int i = 0;
    for (const char *p = set; p && *p && i < 16; i++, p = strchr(p, '\n') + 1)
        if (!used[i])
            fprintf(f, "%.*s\n", (int)(strchr(p, '\n') - p), p);
    fclose(f);
    free(text);
}

static void start(const char *extra)
{
    skip_mosquitto();
    write_conf(extra);
    setenv("RINGMQ_CONF", conf_path, 1);
    broker_start(&b, NULL);
}

static void reload(const char *extra, const char *wait_for)
{
    int before = broker_log_count(&b, wait_for);
    write_conf(extra);
    cr_assert_eq(kill(b.pid, SIGHUP), 0);
    broker_wait_log(&b, wait_for, before + 1);
}

static void stop(void)
{
    broker_stop(&b);
    unlink(conf_path);
    conf_path[0] = 0;
}

static const char long_id[] = "client-id-of-thirty-bytes-long";

/* CONNACK return code for a 3.1.1 client with id `id`. */
static int connect_rc(const char *id)
{
    struct raw_connect o = {.flags = -1, .clean = true, .keepalive = 60, .id = id};
    int rc = -1;
    int fd = raw_mqtt_connect(&b, &o, &rc, NULL);
    close(fd);
    return rc;
}

/* Each shard takes a reload on its tick (250 ms): poll, bounded. */
static bool rc_becomes(const char *id, int want)
{
    for (int i = 0; i < 40; i++) {
        if (connect_rc(id) == want)
            return true;
        usleep(50 * 1000);
    }
    return false;
}

/* MQTT-3.1.3-5 lets a server refuse long ids (3.1.1: CONNACK 0x02): after
 * the reload a new connection gets the new limit; a client connected
 * before keeps its session and exchanges messages as before. */
Test(reload, limit_takes_effect_for_new_connections_open_ones_stay)
{
    start("");
    struct client *old = client_open(&b, long_id, true);
    client_subscribe(old, "reload/t", 1);
    cr_assert_eq(connect_rc("another-thirty-byte-long-id-01"), 0);
    reload("max_client_id_len = 24\n", "reload: 1 change(s) in force");
    cr_assert_eq(broker_log_count(&b, "reload: [limits] max_client_id_len changed"), 1);
    cr_assert(rc_becomes("another-thirty-byte-long-id-01", 2), "the new limit is in force");
    cr_assert_eq(connect_rc("short"), 0);
    client_publish(old, "reload/t", "still here", 10, 1, false);
    client_expect_message(old, "reload/t", "still here", NULL, NULL);
    client_destroy(old);
    stop();
}

/* An invalid file changes nothing: the error names the file and line. */
Test(reload, invalid_file_changes_nothing)
{
    start("max_client_id_len = 24\n");
    reload("max_client_id_len = many\n", "nothing changed");
    cr_assert_eq(broker_log_count(&b, conf_path), 1, "the reason names the file");
    cr_assert_eq(connect_rc("another-thirty-byte-long-id-01"), 2, "the limit in force stays");
    cr_assert_eq(connect_rc("short"), 0);
    stop();
}

/* A key read only at start is reported and keeps its running value; the
 * live keys of the same file are put in force. */
Test(reload, restart_only_key_is_reported_and_kept)
{
    start("");
    reload("recv_buffer_size = 8192\nmax_client_id_len = 24\n", "reload: 1 change(s) in force");
    cr_assert_eq(broker_log_count(&b, "reload: [server] recv_buffer_size changed: needs a "
                                      "restart, the running value stays"),
                 1);
    cr_assert(rc_becomes("another-thirty-byte-long-id-01", 2));
    stop();
}

/* Reloads while QoS 1 messages flow: every message arrives, in order, and
 * no connection is dropped. */
Test(reload, nothing_dropped_under_load)
{
    start("");
    struct client *sub = client_open(&b, "reload-sub", true);
    client_subscribe(sub, "load/t", 1);
    struct client *pub = client_open(&b, "reload-pub", true);
    enum { N = 300 };
    for (int i = 0; i < N; i++) {
        char pl[16];
        snprintf(pl, sizeof(pl), "%d", i);
        client_publish_async(pub, "load/t", pl, (int)strlen(pl), 1, false);
        if (i == N / 3)
            reload("max_client_id_len = 100\n", "reload: 1 change(s) in force");
        if (i == 2 * N / 3)
            reload("max_client_id_len = 50\n", "reload: 1 change(s) in force");
    }
    client_wait_published(pub, N);
    for (int i = 0; i < N; i++) {
        char pl[16];
        snprintf(pl, sizeof(pl), "%d", i);
        client_expect_message(sub, "load/t", pl, NULL, NULL);
    }
    client_publish(pub, "load/t", "last", 4, 1, false); /* both still connected */
    client_expect_message(sub, "load/t", "last", NULL, NULL);
    client_destroy(pub);
    client_destroy(sub);
    stop();
}

/* [tenant.*] settings are live for every connection's next packet: the
 * QoS a SUBSCRIBE is granted follows max_qos (MQTT-3.9.3-2 allows a lower
 * grant than asked). A section added by the reload counts. */
Test(reload, tenant_settings_take_effect)
{
    start("");
    struct client *c = client_open(&b, "reload-tenant", true);
    cr_assert_eq(client_subscribe(c, "a/#", 2), 2);
    reload("[tenant.global]\nmax_qos = 1\n", "change(s) in force");
    cr_assert_eq(broker_log_count(&b, "reload: [tenant.global] * added"), 1);
    int granted = 2;
    for (int i = 0; i < 40 && granted == 2; i++) {
        usleep(50 * 1000);
        granted = client_subscribe(c, "b/#", 2);
    }
    cr_assert_eq(granted, 1, "the open connection's next SUBSCRIBE gets the new maximum");
    client_destroy(c);
    stop();
}

/* [log] level is live: debug lines appear after the reload. */
Test(reload, log_level_takes_effect)
{
    start("");
    cr_assert_eq(broker_log_count(&b, "debug ["), 0);
    reload("level = debug\n", "reload: 1 change(s) in force");
    for (int i = 0; i < 40 && !broker_log_count(&b, "debug ["); i++)
        cr_assert_eq(connect_rc("short"), 0);
    cr_assert_gt(broker_log_count(&b, "debug ["), 0);
    stop();
}

/* [mqtt] values are live too, through the tenants' settings they are the
 * defaults of: maximum_qos = 1 lowers what the next SUBSCRIBE is granted
 * (MQTT-3.9.3-2), with no [tenant.*] section involved. */
Test(reload, mqtt_values_take_effect)
{
    start("");
    struct client *c = client_open(&b, "reload-mqtt", true);
    cr_assert_eq(client_subscribe(c, "a/#", 2), 2);
    reload("maximum_qos = 1\n", "change(s) in force");
    cr_assert_eq(broker_log_count(&b, "reload: [mqtt] maximum_qos changed"), 1);
    int granted = 2;
    for (int i = 0; i < 40 && granted == 2; i++) {
        usleep(50 * 1000);
        granted = client_subscribe(c, "b/#", 2);
    }
    cr_assert_eq(granted, 1);
    client_destroy(c);
    stop();
}
