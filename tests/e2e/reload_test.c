/* E2E, live reload (issue 14): SIGHUP reads the configuration file again
 * (with the same --set overrides); limits take effect for new connections
 * while open ones stay, an invalid file changes nothing, a key that needs a
 * restart is reported and kept, and nothing is dropped by a reload under
 * load; a TLS listener's certificate read again is served only by a
 * reload that goes through, and one that does not load refuses it. Each
 * test writes its own copy of the configuration (RINGMQ_CONF
 * plus sections appended) and rewrites it before the SIGHUP. ringmqd only. */
#include "admin_http.h"
#include "certs.h"
#include "harness.h"
#include "tls_openssl.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct broker b;
static char conf_path[64];
static char *base_conf;
/* Sections appended as they are after write_conf's lines ([listener.NAME]
 * sections, whose keys the base file's [listener.default] also has). */
static const char *tail = "";

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
    fputs(tail, f);
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
    tail = "";
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

/* ---- listeners, live (issue 14) ---------------------------------------------------------- */

/* b as a client of another listener: the same broker, `port`. */
static struct broker on_port(int port)
{
    return broker_on_port(&b, port);
}

/* A loopback port nothing listens on now (bound, then closed). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* A client of `port` that subscribed to `topic` and gets its own
 * publish back: the connection works. */
static void round_trip(struct client *c, const char *topic, const char *payload)
{
    client_publish(c, topic, payload, (int)strlen(payload), 1, false);
    client_expect_message(c, topic, payload, NULL, NULL);
}

/* A [listener.NAME] added by a reload accepts MQTT clients on every shard
 * (several connections: with 4 shards SO_REUSEPORT spreads them). */
Test(reload, listener_added_accepts)
{
    start("");
    tail = "[listener.extra]\nport = 0\n";
    reload("", "reload: 1 change(s) in force");
    cr_assert_eq(broker_log_count(&b, "reload: [listener.extra] * added"), 1);
    int port = broker_listener_port(&b, 2);
    cr_assert_neq(port, b.port);
    struct broker extra = on_port(port);
    struct client *c[8];
    for (int i = 0; i < 8; i++) {
        char id[32];
        snprintf(id, sizeof(id), "added-%d", i);
        c[i] = client_open(&extra, id, true);
    }
    client_subscribe(c[0], "added/t", 1);
    round_trip(c[0], "added/t", "on the new listener");
    for (int i = 0; i < 8; i++)
        client_disconnect(c[i]);
    stop();
}

/* A removed listener stops accepting; a client connected through it stays
 * and goes on publishing and receiving; the other listener is untouched. */
Test(reload, listener_removed_stops_accepting_its_connections_stay)
{
    tail = "[listener.extra]\nport = 0\n";
    start("");
    int port = broker_listener_port(&b, 2);
    struct broker extra = on_port(port);
    struct client *old = client_open(&extra, "through-extra", true);
    client_subscribe(old, "removed/t", 1);
    struct client *other = client_open(&b, "through-default", true);
    tail = "";
    reload("", "reload: 1 change(s) in force");
    cr_assert_eq(broker_log_count(&b, "reload: [listener.extra] * removed"), 1);
    cr_assert_eq(broker_log_count(&b, "listener extra: no longer accepting"), 1);
    cr_assert(port_refuses_soon(port), "the removed listener still accepts");
    struct client *refused = NULL;
    cr_assert_lt(client_connect_rc(&extra, &(struct client_opts){.clean = true}, &refused), 0);
    client_destroy(refused);
    round_trip(old, "removed/t", "still connected");
    client_publish(other, "removed/t", "from the other", 14, 1, false);
    client_expect_message(old, "removed/t", "from the other", NULL, NULL);
    client_disconnect(old);
    client_disconnect(other);
    stop();
}

/* A changed port is the listener removed and added: the new port accepts,
 * the old one refuses. */
Test(reload, listener_port_changed)
{
    tail = "[listener.extra]\nport = 0\n";
    start("");
    int before = broker_listener_port(&b, 2);
    int after = free_port();
    char text[64];
    snprintf(text, sizeof(text), "[listener.extra]\nport = %d\n", after);
    tail = text;
    reload("", "reload: 1 change(s) in force");
    char line[96];
    snprintf(line, sizeof(line), "reload: [listener.extra] port changed: 0 -> %d", after);
    cr_assert_eq(broker_log_count(&b, line), 1);
    cr_assert_eq(broker_listener_port(&b, 3), after);
    struct broker moved = on_port(after);
    struct client *c = client_open(&moved, "moved", true);
    client_subscribe(c, "moved/t", 0);
    round_trip(c, "moved/t", "new port");
    cr_assert(port_refuses_soon(before), "the old port still accepts");
    client_disconnect(c);
    stop();
}

/* Listeners added and removed while QoS 1 messages flow through another
 * and through the one removed: every message arrives, in order, no
 * connection is dropped. */
Test(reload, listener_changes_under_load_drop_nothing)
{
    tail = "[listener.extra]\nport = 0\n";
    start("");
    struct broker extra = on_port(broker_listener_port(&b, 2));
    struct client *sub = client_open(&extra, "load-sub", true);
    client_subscribe(sub, "lload/t", 1);
    struct client *pub = client_open(&b, "load-pub", true);
    enum { N = 300 };
    for (int i = 0; i < N; i++) {
        char pl[16];
        snprintf(pl, sizeof(pl), "%d", i);
        client_publish_async(pub, "lload/t", pl, (int)strlen(pl), 1, false);
        if (i == N / 3) {
            tail = "[listener.extra]\nport = 0\n[listener.more]\nport = 0\n";
            reload("", "reload: 1 change(s) in force");
        }
        if (i == 2 * N / 3) {
            tail = "[listener.more]\nport = 0\n";
            reload("", "reload: 1 change(s) in force");
        }
    }
    client_wait_published(pub, N);
    for (int i = 0; i < N; i++) {
        char pl[16];
        snprintf(pl, sizeof(pl), "%d", i);
        client_expect_message(sub, "lload/t", pl, NULL, NULL);
    }
    client_publish(pub, "lload/t", "last", 4, 1, false);
    client_expect_message(sub, "lload/t", "last", NULL, NULL);
    client_destroy(pub);
    client_destroy(sub);
    stop();
}

/* ---- POST /api/v1/reload ----------------------------------------------------------------- */

static void start_admin(const char *extra)
{
    skip_mosquitto();
    write_conf(extra);
    setenv("RINGMQ_CONF", conf_path, 1);
    broker_start(&b, "admin.enabled=true", "admin.port=0", NULL);
}

/* POST /api/v1/reload (open mode: no token file, loopback); the status,
 * the answer's JSON into *out. */
static int post_reload(json_t **out)
{
    static char body[65536];
    int status = admin_http_send(&b, "POST", "/api/v1/reload", NULL, "", 0, body, sizeof(body));
    *out = json_loads(body, 0, NULL);
    cr_assert_not_null(*out, "%d %s", status, body);
    return status;
}

/* The entry of `key` in the answer's "changed", or NULL. */
static json_t *change_of(json_t *answer, const char *key)
{
    json_t *v;
    size_t i;
    json_array_foreach(json_object_get(answer, "changed"), i, v)
    {
        if (!strcmp(json_string_value(json_object_get(v, "key")), key))
            return v;
    }
    return NULL;
}

static bool str_is(json_t *v, const char *s)
{
    return json_is_string(v) && !strcmp(json_string_value(v), s);
}

/* The answer lists each change with its values, each key that needs a
 * restart, no error; and the change is in force when it returns (on the
 * next tick of each shard: MQTT-3.1.3-5 lets a server refuse a long id). */
Test(reload, api_answers_what_changed)
{
    start_admin("");
    tail = "[listener.extra]\nport = 0\n";
    write_conf("max_client_id_len = 24\nrecv_buffer_size = 8192\n");
    json_t *ans;
    cr_assert_eq(post_reload(&ans), 200);
    json_t *ch = change_of(ans, "limits.max_client_id_len");
    cr_assert_not_null(ch, "%s", json_dumps(ans, 0));
    cr_assert(str_is(json_object_get(ch, "what"), "changed"));
    cr_assert(str_is(json_object_get(ch, "from"), "256"));
    cr_assert(str_is(json_object_get(ch, "to"), "24"));
    json_t *added = change_of(ans, "listener.extra");
    cr_assert_not_null(added);
    cr_assert(str_is(json_object_get(added, "what"), "added"));
    json_t *restart = json_object_get(ans, "restart_required");
    cr_assert_eq(json_array_size(restart), 1, "%s", json_dumps(ans, 0));
    cr_assert(str_is(json_array_get(restart, 0), "server.recv_buffer_size"));
    cr_assert_eq(json_array_size(json_object_get(ans, "errors")), 0);
    json_decref(ans);
    /* Listeners are open when the answer comes; limits within a tick. */
    struct broker extra = on_port(broker_listener_port(&b, 2));
    client_disconnect(client_open(&extra, "via-api", true));
    cr_assert(rc_becomes(long_id, 2));
    /* The same file again: nothing changed. */
    cr_assert_eq(post_reload(&ans), 200);
    cr_assert_eq(json_array_size(json_object_get(ans, "changed")), 0);
    json_decref(ans);
    stop();
}

/* After a refused reload of max_client_id_len = 24 and a listener added:
 * a tick later (a shard that took a change would show it), the limit in
 * force stays and no listener was added. */
static void expect_nothing_changed(void)
{
    usleep(300 * 1000);
    cr_assert_eq(connect_rc(long_id), 0, "the limit in force stays");
    cr_assert_eq(broker_log_count(&b, "listening on"), 1, "no listener was added");
}

/* The line of `key` in this test's configuration (1-based). */
static int line_of(const char *key)
{
    FILE *f = fopen(conf_path, "r");
    cr_assert_not_null(f);
    char line[1024];
    int n = 0, at = 0;
    while (!at && fgets(line, sizeof(line), f)) {
        n++;
        if (!strncmp(line, key, strlen(key)))
            at = n;
    }
    fclose(f);
    return at;
}

/* Error e of an answer names this test's file and `line`, and its
 * message holds `what`. */
static void expect_error(json_t *e, int line, const char *what)
{
    cr_assert(str_is(json_object_get(e, "file"), conf_path), "%s", json_dumps(e, 0));
    cr_assert_neq(line, 0);
    cr_assert_eq(json_integer_value(json_object_get(e, "line")), line, "%s", json_dumps(e, 0));
    cr_assert(strstr(json_string_value(json_object_get(e, "message")), what), "%s",
              json_dumps(e, 0));
}

/* An invalid file: 422, the error with FILE and LINE, nothing changed
 * (neither the valid limit before the bad key nor a listener added). */
Test(reload, api_invalid_file_changes_nothing)
{
    start_admin("");
    tail = "[listener.extra]\nport = 0\n";
    write_conf("max_client_id_len = 24\nmax_connections = lots\n");
    json_t *ans;
    cr_assert_eq(post_reload(&ans), 422);
    json_t *errors = json_object_get(ans, "errors");
    cr_assert_eq(json_array_size(errors), 1, "%s", json_dumps(ans, 0));
    expect_error(json_array_get(errors, 0), line_of("max_connections = "), "max_connections");
    cr_assert_eq(json_array_size(json_object_get(ans, "changed")), 0);
    json_decref(ans);
    broker_wait_log(&b, "nothing changed", 1);
    expect_nothing_changed();
    stop();
}

/* A loopback port that another socket (returned, close it) listens on. */
static int port_taken(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, 1), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A listener that cannot open (its port taken by another process) refuses
 * the whole reload: 422 naming the listener, nothing changed. */
Test(reload, api_listener_that_cannot_open_changes_nothing)
{
    start_admin("");
    uint16_t port;
    int taken = port_taken(&port);
    char text[64];
    snprintf(text, sizeof(text), "[listener.busy]\nport = %u\n", port);
    tail = text;
    write_conf("max_client_id_len = 24\n");
    json_t *ans;
    cr_assert_eq(post_reload(&ans), 422);
    json_t *e = json_array_get(json_object_get(ans, "errors"), 0);
    cr_assert(strstr(json_string_value(json_object_get(e, "message")), "listener busy"), "%s",
              json_dumps(ans, 0));
    cr_assert_eq(json_array_size(json_object_get(ans, "changed")), 0);
    json_decref(ans);
    usleep(300 * 1000);
    cr_assert_eq(connect_rc(long_id), 0, "the limit in force stays");
    close(taken);
    stop();
}

/* Each connection's room for its transport's state is sized at start: a
 * broker with only tcp listeners refuses a ws listener added live (it
 * needs a restart), and nothing else of that reload changes. */
Test(reload, listener_of_a_transport_without_room_needs_a_restart)
{
    start("");
    tail = "[listener.w]\nport = 0\ntransport = ws\n";
    reload("max_client_id_len = 24\n", "nothing changed");
    cr_assert_eq(broker_log_count(&b, "listener w: transport = ws needs a restart"), 1);
    expect_nothing_changed();
    stop();
}

/* ---- plugin keys (plugin ABI 5 reconfigure) ---------------------------------------------- */

static char pw_a[64], pw_b[64];
static char plugin_text[1024];

/* ringmq-passwd FILE add USER acme, the password on stdin. */
static void add_user(const char *file, const char *user, const char *password)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "printf '%%s\\n' '%s' | '%s' '%s' add '%s' acme >/dev/null 2>&1",
             password, getenv("RINGMQ_PASSWD_TOOL"), file, user);
    int rc = system(cmd);
    cr_assert(rc == 0, "ringmq-passwd add %s failed (%d)", user, rc);
}

static void make_passwd(char *path, size_t cap, const char *user, const char *password)
{
    snprintf(path, cap, "/tmp/ringmq-reload-pw-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    add_user(path, user, password);
}

/* [plugin.auth] with auth_file at `path` (NULL: the built one) reading
 * `password_file`, as this test's tail. */
static void auth_section(const char *path, const char *password_file)
{
    snprintf(plugin_text, sizeof(plugin_text), "[plugin.auth]\npath = %s\npassword_file = %s\n",
             path ? path : getenv("RINGMQ_AUTH_FILE"), password_file);
    tail = plugin_text;
}

/* Password files a (anna, password pa) and b (ben, pb), tenant acme; the
 * broker with auth_file reading a, and the admin API. */
static void start_two_files(void)
{
    make_passwd(pw_a, sizeof(pw_a), "anna", "pa");
    make_passwd(pw_b, sizeof(pw_b), "ben", "pb");
    auth_section(NULL, pw_a);
    start_admin("");
}

static void stop_two_files(void)
{
    stop();
    unlink(pw_a);
    unlink(pw_b);
}

/* CONNACK return code for user/password with client id `id` (3.1.1). */
static int user_rc(const char *id, const char *user, const char *password)
{
    struct client_opts o = {.id = id, .clean = true, .username = user, .password = password};
    struct client *c = NULL;
    int rc = client_connect_rc(&b, &o, &c);
    client_destroy(c);
    return rc;
}

static struct client *user_open(const char *id, const char *user, const char *password)
{
    struct client_opts o = {.id = id, .clean = true, .username = user, .password = password};
    return client_connect(&b, &o);
}

/* auth_file's password_file switched to another file by POST
 * /api/v1/reload: reported as a live change (without values), the new
 * file's user connects, the old file's user no longer does (3.1.1 CONNACK
 * 0x04), and the connection opened under the old file stays and gets
 * messages. */
Test(reload, plugin_key_changes_live_and_connections_stay)
{
    start_two_files();
    struct client *anna = user_open("anna-1", "anna", "pa");
    client_subscribe(anna, "acme/t", 1);
    cr_assert_eq(user_rc("ben-1", "ben", "pb"), 4, "ben is not in the file in force");
    auth_section(NULL, pw_b);
    write_conf("");
    json_t *ans;
    cr_assert_eq(post_reload(&ans), 200);
    json_t *ch = change_of(ans, "plugin.auth.password_file");
    cr_assert_not_null(ch, "%s", json_dumps(ans, 0));
    cr_assert(str_is(json_object_get(ch, "what"), "changed"));
    cr_assert(json_is_null(json_object_get(ch, "to")), "a plugin's values are not shown");
    cr_assert_eq(json_array_size(json_object_get(ans, "restart_required")), 0);
    cr_assert_eq(json_array_size(json_object_get(ans, "errors")), 0);
    json_decref(ans);
    /* In force when the answer comes: the plugin swapped its tables. */
    struct client *ben = user_open("ben-1", "ben", "pb");
    cr_assert_eq(user_rc("anna-2", "anna", "pa"), 4, "anna is not in the new file");
    client_publish(ben, "acme/t", "hello", 5, 1, false);
    client_expect_message(anna, "acme/t", "hello", NULL, NULL);
    client_destroy(ben);
    client_destroy(anna);
    stop_two_files();
}

/* A key the plugin refuses (a password file that does not exist) refuses
 * the whole reload: 422 with the plugin's message, and nothing of the file
 * changes, the [limits] key beside it included. */
Test(reload, plugin_key_refused_changes_nothing)
{
    make_passwd(pw_a, sizeof(pw_a), "anna", "pa");
    auth_section(NULL, pw_a);
    start_admin("");
    auth_section(NULL, "/nonexistent/ringmq-passwd");
    write_conf("max_client_id_len = 24\n");
    json_t *ans;
    cr_assert_eq(post_reload(&ans), 422);
    json_t *e = json_array_get(json_object_get(ans, "errors"), 0);
    const char *msg = json_string_value(json_object_get(e, "message"));
    cr_assert(msg && strstr(msg, "plugin auth: ") && strstr(msg, "/nonexistent/ringmq-passwd"),
              "%s", json_dumps(ans, 0));
    cr_assert_eq(json_array_size(json_object_get(ans, "changed")), 0);
    json_decref(ans);
    broker_wait_log(&b, "nothing changed", 1);
    usleep(300 * 1000); /* a tick: a shard that took a change would show it */
    cr_assert_eq(user_rc(long_id, "anna", "pa"), 0, "the file and the limit in force stay");
    stop();
    unlink(pw_a);
}

/* Plugin keys a plugin accepted, in a reload that a listener which cannot
 * open refuses: the plugin discards them, nothing changed. */
Test(reload, plugin_keys_discarded_when_a_listener_cannot_open)
{
    start_two_files();
    uint16_t port;
    int taken = port_taken(&port);
    auth_section(NULL, pw_b);
    size_t n = strlen(plugin_text);
    snprintf(plugin_text + n, sizeof(plugin_text) - n, "[listener.busy]\nport = %u\n", port);
    write_conf("");
    json_t *ans;
    cr_assert_eq(post_reload(&ans), 422);
    cr_assert_eq(json_array_size(json_object_get(ans, "changed")), 0, "%s", json_dumps(ans, 0));
    json_decref(ans);
    cr_assert_eq(user_rc("ben-1", "ben", "pb"), 4, "the plugin kept its old file");
    cr_assert_eq(user_rc("anna-1", "anna", "pa"), 0);
    close(taken);
    stop_two_files();
}

/* A plugin's path changed needs a restart: reported as the whole section,
 * and the plugin keeps running with its keys. */
Test(reload, plugin_path_changed_needs_a_restart)
{
    start_two_files();
    auth_section("/nonexistent/other_auth.so", pw_b);
    write_conf("");
    json_t *ans;
    cr_assert_eq(post_reload(&ans), 200);
    json_t *restart = json_object_get(ans, "restart_required");
    cr_assert_eq(json_array_size(restart), 1, "%s", json_dumps(ans, 0));
    cr_assert(str_is(json_array_get(restart, 0), "plugin.auth"));
    cr_assert_eq(json_array_size(json_object_get(ans, "changed")), 0);
    json_decref(ans);
    cr_assert_eq(user_rc("anna-1", "anna", "pa"), 0, "the running plugin and its file stay");
    cr_assert_eq(user_rc("ben-1", "ben", "pb"), 4);
    stop_two_files();
}

/* quota_static's limit changed by SIGHUP: the tenant's next connection is
 * judged by the new limit (3.1.1 CONNACK 0x03 over it), the client
 * connected before stays; a bad value changes nothing. */
Test(reload, quota_limit_changes_live)
{
    snprintf(plugin_text, sizeof(plugin_text),
             "[plugin.quota]\npath = %s\nglobal.max_connections = 1\n", getenv("RINGMQ_QUOTA_SO"));
    tail = plugin_text;
    start("");
    struct client *one = client_open(&b, "quota-1", true);
    client_subscribe(one, "q/t", 1);
    cr_assert_eq(connect_rc("quota-2"), 3, "over the quota of 1");
    snprintf(plugin_text, sizeof(plugin_text),
             "[plugin.quota]\npath = %s\nglobal.max_connections = 2\n", getenv("RINGMQ_QUOTA_SO"));
    reload("", "reload: 1 change(s) in force");
    cr_assert_eq(broker_log_count(&b, "reload: [plugin.quota] global.max_connections changed"), 1);
    struct client *two = client_open(&b, "quota-2", true);
    cr_assert_eq(connect_rc("quota-3"), 3, "over the quota of 2");
    client_publish(two, "q/t", "both", 4, 1, false);
    client_expect_message(one, "q/t", "both", NULL, NULL);
    snprintf(plugin_text, sizeof(plugin_text),
             "[plugin.quota]\npath = %s\nglobal.max_connections = lots\n",
             getenv("RINGMQ_QUOTA_SO"));
    reload("", "nothing changed");
    cr_assert_eq(broker_log_count(&b, "plugin quota: key 'global.max_connections'"), 1);
    client_destroy(two);
    cr_assert(rc_becomes("quota-3", 0), "2 again: the limit in force stays");
    client_destroy(one);
    stop();
}

/* A file with three errors in three sections: 422 with the three, each
 * with its file and line, in the file's order; nothing of the file's
 * valid changes is put in force (the limit, the listener added). */
Test(reload, api_every_error_of_the_file_and_nothing_changed)
{
    start_admin("");
    tail = "[listener.extra]\nport = 0\nnokey = 1\n";
    write_conf("max_client_id_len = 24\nmax_connections = lots\nmaximum_qos = 3\n");
    json_t *ans;
    cr_assert_eq(post_reload(&ans), 422);
    json_t *errors = json_object_get(ans, "errors");
    cr_assert_eq(json_array_size(errors), 3, "%s", json_dumps(ans, 0));
    const struct {
        int line;
        const char *what;
    } want[] = {
        {line_of("max_connections = "), "[limits] max_connections: expected an integer"},
        {line_of("maximum_qos = "), "[mqtt] maximum_qos: expected an integer 0..2, got '3'"},
        {line_of("nokey = "), "[listener.extra] unknown key 'nokey'"},
    };
    for (size_t i = 0; i < 3; i++)
        expect_error(json_array_get(errors, i), want[i].line, want[i].what);
    cr_assert(json_is_false(json_object_get(ans, "truncated")));
    cr_assert_eq(json_array_size(json_object_get(ans, "changed")), 0);
    json_decref(ans);
    broker_wait_log(&b, "reload: 3 error(s); nothing changed", 1);
    expect_nothing_changed();
    stop();
}

/* More errors than an answer lists: the first CONFIG_MAX_ERRORS (32), and
 * truncated says that there were more. */
Test(reload, api_errors_past_the_cap_are_truncated)
{
    start_admin("");
    static char text[64 * 40];
    size_t off = (size_t)snprintf(text, sizeof(text), "[listener.extra]\nport = 0\n");
    for (int i = 0; i < 40; i++)
        off += (size_t)snprintf(text + off, sizeof(text) - off, "nokey%d = 1\n", i);
    tail = text;
    write_conf("");
    json_t *ans;
    cr_assert_eq(post_reload(&ans), 422);
    cr_assert_eq(json_array_size(json_object_get(ans, "errors")), 32, "%s", json_dumps(ans, 0));
    cr_assert(json_is_true(json_object_get(ans, "truncated")));
    json_decref(ans);
    broker_wait_log(&b, "reload: 8 more errors (the first 32 are listed)", 1);
    stop();
}

/* ---- a TLS listener's certificate (issue 14: an invalid file changes nothing) ------------- */

/* A CA, two server certificates of it (CN server, CN server2) for
 * localhost / 127.0.0.1; the listener's files are copies of them that
 * each test rewrites (certs.h: made by the openssl CLI). */
static char cdir[64], ca_crt[128], live_crt[128], live_key[128];

static const char tls_certs[] = "ca_new ca ringmq-test-ca\n"
                                "sign server ca 2 '-extfile san.ext'\n"
                                "sign server2 ca 2 '-extfile san.ext'\n";

/* The listener's file `to` (live.crt, live.key) becomes a copy of the
 * suite's file `from` (server2.key, ...). */
static void live_from(const char *to, const char *from)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "cp -f '%s/%s' '%s'", cdir, from, to);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* The admin API and a broker whose default listener speaks TLS with
 * live.crt / live.key (--set: the same on every reload). */
static void start_tls(void)
{
    skip_mosquitto();
    certs_make(cdir, sizeof(cdir), "reload", tls_certs);
    snprintf(ca_crt, sizeof(ca_crt), "%s/ca.crt", cdir);
    snprintf(live_crt, sizeof(live_crt), "%s/live.crt", cdir);
    snprintf(live_key, sizeof(live_key), "%s/live.key", cdir);
    live_from(live_crt, "server.crt");
    live_from(live_key, "server.key");
    char set_crt[200], set_key[200];
    snprintf(set_crt, sizeof(set_crt), "listener.default.tls_cert=%s", live_crt);
    snprintf(set_key, sizeof(set_key), "listener.default.tls_key=%s", live_key);
    write_conf("");
    setenv("RINGMQ_CONF", conf_path, 1);
    broker_start(&b, "admin.enabled=true", "admin.port=0", "listener.default.transport=tls",
                 set_crt, set_key, NULL);
}

static void stop_tls(void)
{
    stop();
    certs_remove(cdir);
    cdir[0] = 0;
}

/* A 3.1.1 client over TLS (OpenSSL, trusting the CA), its socket. */
struct tls_conn {
    int fd;
    struct ossl_client *c;
};

/* Handshake and CONNECT as `id`: the CONNACK's return code; the subject
 * of the certificate the broker showed into subject[cap]. */
static int tls_conn_open(struct tls_conn *t, const char *id, char *subject, size_t cap)
{
    t->fd = raw_open(&b);
    struct timeval tv = {.tv_sec = E2E_WAIT_MS / 1000, .tv_usec = (E2E_WAIT_MS % 1000) * 1000};
    cr_assert_eq(setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    t->c = ossl_connect(t->fd, ca_crt, 0, NULL, NULL);
    cr_assert(t->c, "%s: no TLS handshake", id);
    cr_assert(ossl_subject(t->c, subject, cap));
    struct pkt p;
    uint8_t out[256], in[4];
    struct raw_connect rc = {.flags = -1, .clean = true, .id = id, .keepalive = 60};
    pkt_connect(&p, &rc);
    cr_assert(ossl_write(t->c, out, pkt_encode(&p, out)));
    cr_assert(ossl_read(t->c, in, 4), "%s: no CONNACK", id);
    cr_assert_eq(in[0], 0x20, "%s: not a CONNACK", id);
    return in[3];
}

static void tls_conn_close(struct tls_conn *t)
{
    ossl_close(t->c);
    close(t->fd);
}

/* The subject a new connection is shown, and its CONNACK code for `id`. */
static int tls_look(const char *id, char *subject, size_t cap)
{
    struct tls_conn t;
    int rc = tls_conn_open(&t, id, subject, cap);
    tls_conn_close(&t);
    return rc;
}

/* MQTT-3.12.4-1: an open connection is answered a PINGRESP. */
static void tls_conn_still_works(struct tls_conn *t)
{
    static const uint8_t ping[] = {0xc0, 0x00};
    uint8_t in[2];
    cr_assert(ossl_write(t->c, ping, sizeof(ping)));
    cr_assert(ossl_read(t->c, in, sizeof(in)), "the open connection was lost");
    cr_assert(in[0] == 0xd0 && in[1] == 0x00, "no PINGRESP");
}

/* max_client_id_len = 24 in force on every shard (MQTT-3.1.3-5: the long
 * id refused with 0x02): poll, bounded, each on a new TLS connection. */
static bool tls_limit_in_force(void)
{
    char subject[256];
    for (int i = 0; i < 40; i++) {
        if (tls_look(long_id, subject, sizeof(subject)) == 2)
            return true;
        usleep(50 * 1000);
    }
    return false;
}

/* A new valid certificate in place and a reload: 200, new connections are
 * shown it, the connection open before goes on; the [limits] key changed
 * with it is in force. */
Test(reload, api_tls_certificate_replaced_is_served_open_connections_stay)
{
    start_tls();
    char subject[256];
    struct tls_conn old;
    cr_assert_eq(tls_conn_open(&old, "before", subject, sizeof(subject)), 0);
    cr_assert_str_eq(subject, "/CN=server");
    live_from(live_crt, "server2.crt");
    live_from(live_key, "server2.key");
    write_conf("max_client_id_len = 24\n");
    json_t *ans;
    cr_assert_eq(post_reload(&ans), 200);
    cr_assert_eq(json_array_size(json_object_get(ans, "errors")), 0, "%s", json_dumps(ans, 0));
    cr_assert_not_null(change_of(ans, "limits.max_client_id_len"));
    json_decref(ans);
    cr_assert_eq(tls_look("after", subject, sizeof(subject)), 0);
    cr_assert_str_eq(subject, "/CN=server2", "the new certificate is not served");
    tls_conn_still_works(&old);
    cr_assert(tls_limit_in_force());
    tls_conn_close(&old);
    stop_tls();
}

/* A reload whose listener file does not load: 422 naming the file, the
 * previous certificate still served, the open connection untouched, and
 * the [limits] key changed in the same file not in force. */
static void refused_for(const char *file, const char *why, struct tls_conn *old)
{
    json_t *ans;
    cr_assert_eq(post_reload(&ans), 422);
    json_t *errors = json_object_get(ans, "errors");
    cr_assert_eq(json_array_size(errors), 1, "%s", json_dumps(ans, 0));
    json_t *e = json_array_get(errors, 0);
    cr_assert(str_is(json_object_get(e, "file"), file), "%s", json_dumps(ans, 0));
    cr_assert(strstr(json_string_value(json_object_get(e, "message")), why), "%s",
              json_dumps(ans, 0));
    cr_assert_eq(json_array_size(json_object_get(ans, "changed")), 0);
    json_decref(ans);
    char subject[256], line[512];
    snprintf(line, sizeof(line), "reload: %s: %s", file, why);
    cr_assert_eq(broker_log_count(&b, line), 1, "the log names the file: %s", line);
    usleep(300 * 1000); /* a shard that took a change would show it by now */
    cr_assert_eq(tls_look(long_id, subject, sizeof(subject)), 0, "the limit in force stays");
    cr_assert_str_eq(subject, "/CN=server", "a refused reload replaced the certificate");
    tls_conn_still_works(old);
}

Test(reload, api_tls_certificate_that_does_not_load_changes_nothing)
{
    start_tls();
    char subject[256];
    struct tls_conn old;
    cr_assert_eq(tls_conn_open(&old, "before", subject, sizeof(subject)), 0);
    write_conf("max_client_id_len = 24\n");
    /* Not a certificate at all. */
    FILE *f = fopen(live_crt, "w");
    cr_assert_not_null(f);
    fputs("not a certificate\n", f);
    fclose(f);
    refused_for(live_crt, "not a PEM certificate chain", &old);
    /* A valid certificate with a key that is not its own. */
    live_from(live_crt, "server2.crt");
    refused_for(live_key, "does not match tls_cert", &old);
    /* Both right again: the reload goes through, nothing of the refused
     * ones left over. */
    live_from(live_key, "server2.key");
    json_t *ans;
    cr_assert_eq(post_reload(&ans), 200);
    json_decref(ans);
    cr_assert_eq(tls_look("after", subject, sizeof(subject)), 0);
    cr_assert_str_eq(subject, "/CN=server2");
    cr_assert(tls_limit_in_force());
    tls_conn_still_works(&old);
    tls_conn_close(&old);
    stop_tls();
}

/* A valid new certificate, but the reload refused for another reason (a
 * bad value in the file): 422, and the certificate read is not served. */
Test(reload, api_tls_certificate_not_served_when_the_reload_is_refused)
{
    start_tls();
    live_from(live_crt, "server2.crt");
    live_from(live_key, "server2.key");
    write_conf("max_client_id_len = 24\nmax_connections = lots\n");
    json_t *ans;
    cr_assert_eq(post_reload(&ans), 422);
    json_decref(ans);
    char subject[256];
    cr_assert_eq(tls_look(long_id, subject, sizeof(subject)), 0, "the limit in force stays");
    cr_assert_str_eq(subject, "/CN=server", "a refused reload served the new certificate");
    /* Refused after the certificates were read: a listener that cannot
     * open (its port taken by another process). */
    uint16_t port;
    int taken = port_taken(&port);
    char text[64];
    snprintf(text, sizeof(text), "[listener.busy]\nport = %u\n", port);
    tail = text;
    write_conf("max_client_id_len = 24\n");
    cr_assert_eq(post_reload(&ans), 422);
    json_decref(ans);
    close(taken);
    cr_assert_eq(tls_look("after", subject, sizeof(subject)), 0);
    cr_assert_str_eq(subject, "/CN=server", "a refused reload served the new certificate");
    stop_tls();
}

/* A TLS listener added with a key that is not its certificate's: 422, the
 * message names the file, nothing changed. */
Test(reload, api_tls_listener_added_with_a_wrong_key_is_named)
{
    start_tls();
    char text[512], key2[160], why[256];
    snprintf(key2, sizeof(key2), "%s/server2.key", cdir);
    snprintf(text, sizeof(text),
             "[listener.t2]\nport = 0\ntransport = tls\ntls_cert = %s\ntls_key = %s\n", live_crt,
             key2);
    tail = text;
    write_conf("max_client_id_len = 24\n");
    json_t *ans;
    cr_assert_eq(post_reload(&ans), 422);
    snprintf(why, sizeof(why), "%s: does not match tls_cert ([listener.t2] tls_key)", key2);
    json_t *e = json_array_get(json_object_get(ans, "errors"), 0);
    cr_assert(strstr(json_string_value(json_object_get(e, "message")), why), "%s",
              json_dumps(ans, 0));
    json_decref(ans);
    char subject[256];
    usleep(300 * 1000);
    cr_assert_eq(tls_look(long_id, subject, sizeof(subject)), 0, "the limit in force stays");
    cr_assert_eq(broker_log_count(&b, "listening on"), 1, "no listener was added");
    stop_tls();
}
