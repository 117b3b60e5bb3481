/*
 * Tests for src/config/config.c through config.h: defaults, the shipped
 * conf/ringmq.ini, every error with its exact "FILE:LINE: reason" text,
 * --set overrides, value parsers at their bounds and the whole-config checks.
 * Each test writes its INI text to a mkstemp file under /tmp and removes it.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

/* A listener every file needs to pass the final check. */
#define LISTENER_OK "[listener.default]\n"

static char tmp_path[64];

static const char *write_tmp(const char *text)
{
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/ringmq_config_test_XXXXXX");
    int fd = mkstemp(tmp_path);
    cr_assert(fd >= 0, "mkstemp: %s", strerror(errno));
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return tmp_path;
}

static void remove_tmp(void)
{
    if (tmp_path[0] != '\0')
        unlink(tmp_path);
    tmp_path[0] = '\0';
}

TestSuite(config, .fini = remove_tmp);

/* Load `text` with overrides; returns config_load's result, err filled. */
static int load_text(struct config *cfg, const char *text, const char *const *ov, size_t n,
                     char *err, size_t errlen)
{
    return config_load(cfg, write_tmp(text), ov, n, err, errlen);
}

/* Expect failure with exactly "TMPFILE<suffix>" in err. */
static void expect_file_error(const char *text, const char *suffix)
{
    struct config cfg;
    char err[512], want[512];
    int rc = load_text(&cfg, text, NULL, 0, err, sizeof(err));
    cr_assert_eq(rc, -1, "expected failure for:\n%s", text);
    snprintf(want, sizeof(want), "%s%s", tmp_path, suffix);
    cr_assert_str_eq(err, want);
    cr_assert_null(strchr(err, '\n'));
}

/* Expect a --set failure with exactly `want` in err. */
static void expect_override_error(const char *text, const char *arg, const char *want)
{
    struct config cfg;
    char err[512];
    const char *ov[] = {arg};
    cr_assert_eq(load_text(&cfg, text, ov, 1, err, sizeof(err)), -1, "accepted --set %s", arg);
    cr_assert_str_eq(err, want);
}

static void load_ok(struct config *cfg, const char *text, const char *const *ov, size_t n)
{
    char err[512] = "";
    int rc = load_text(cfg, text, ov, n, err, sizeof(err));
    cr_assert_eq(rc, 0, "load failed: %s", err);
    cr_assert_str_eq(err, "");
}

/* Apply one override to a minimal valid file; returns config_load's result. */
static int set_one(struct config *cfg, const char *arg, char *err, size_t errlen)
{
    const char *ov[] = {arg};
    return load_text(cfg, LISTENER_OK, ov, 1, err, errlen);
}

/*
 * conf/ringmq.ini relative to this file. Meson compiles it under a path that
 * is absolute or relative to the build root, and runs tests from the build
 * root; when run by hand from elsewhere, resolve against the build root found
 * from the executable (BUILD/tests/config_config_test).
 */
static void shipped_conf(char *buf, size_t len)
{
    static const char suffix[] = "tests/unit/config/config_test.c";
    const char *f = __FILE__;
    size_t fl = strlen(f), sl = strlen(suffix);
    cr_assert(fl >= sl && strcmp(f + fl - sl, suffix) == 0, "unexpected __FILE__ %s", f);
    snprintf(buf, len, "%.*sconf/ringmq.ini", (int)(fl - sl), f);
    if (f[0] == '/' || access(buf, R_OK) == 0)
        return;

    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    cr_assert(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
    exe[n] = '\0';
    char *root = dirname(dirname(exe));
    snprintf(buf, len, "%s/%.*sconf/ringmq.ini", root, (int)(fl - sl), f);
}

Test(config, defaults)
{
    struct config cfg;
    memset(&cfg, 0xAB, sizeof(cfg));
    config_defaults(&cfg);
    cr_assert_eq(cfg.shards, 0);
    cr_assert_eq(cfg.cpu_affinity.mode, AFFINITY_AUTO);
    cr_assert_eq(cfg.wills_on_shutdown, false);
    cr_assert_eq(cfg.recv_buffer_size, 16384);
    cr_assert_eq(cfg.recv_buffers, 256);
    cr_assert_eq(cfg.nlisteners, 0);
    cr_assert_eq(cfg.max_packet_size, 1048576);
    cr_assert_eq(cfg.max_connections, 0);
    cr_assert_eq(cfg.max_pending_connections, 60000);
    cr_assert_eq(cfg.connect_timeout, 10);
    cr_assert_eq(cfg.max_connect_size, 65536);
    cr_assert_eq(cfg.max_inflight, 32);
    cr_assert_eq(cfg.max_queued_messages, 1000);
    cr_assert_eq(cfg.max_queued_bytes, 16777216);
    cr_assert_eq(cfg.max_client_id_len, 256);
    cr_assert_eq(cfg.max_keepalive, 0, "no keepalive cap unless asked for");
    cr_assert_eq(cfg.max_topic_length, 4096);
    cr_assert_eq(cfg.log_level, LOG_LEVEL_INFO);
}

Test(config, minimal_file_gets_defaults_and_listener_defaults)
{
    struct config cfg, def;
    load_ok(&cfg, LISTENER_OK, NULL, 0);
    config_defaults(&def);
    cr_assert_eq(cfg.nlisteners, 1);
    cr_assert_str_eq(cfg.listeners[0].name, "default");
    cr_assert_str_eq(cfg.listeners[0].bind, "127.0.0.1");
    cr_assert_eq(cfg.listeners[0].port, 1883);
    cr_assert_eq(cfg.listeners[0].allow_anonymous, false);
    cr_assert_eq(cfg.listeners[0].backlog, 4096);
    cr_assert_eq(cfg.listeners[0].send_buffer, 65536);
    cr_assert_str_eq(cfg.listeners[0].ws_path, "/mqtt");
    cr_assert_str_eq(cfg.listeners[0].ws_allowed_origins, "");
    cr_assert_eq(cfg.listeners[0].ws_max_frame, (1u << 20) + (64u << 10));
    cr_assert_eq(cfg.max_inflight, def.max_inflight);
    cr_assert_eq(cfg.max_queued_bytes, def.max_queued_bytes);
    cr_assert_eq(cfg.log_level, def.log_level);
}

Test(config, shipped_file_loads_and_documents_the_defaults)
{
    char path[1024], err[512] = "";
    struct config cfg, def;
    shipped_conf(path, sizeof(path));
    cr_assert_eq(config_load(&cfg, path, NULL, 0, err, sizeof(err)), 0, "%s: %s", path, err);
    cr_assert_str_eq(err, "");

    /* The file states every default: loading it must change nothing. */
    config_defaults(&def);
    cr_assert_eq(cfg.shards, def.shards);
    cr_assert_eq(cfg.cpu_affinity.mode, def.cpu_affinity.mode);
    cr_assert_eq(cfg.wills_on_shutdown, def.wills_on_shutdown);
    cr_assert_eq(cfg.recv_buffer_size, def.recv_buffer_size);
    cr_assert_eq(cfg.recv_buffers, def.recv_buffers);
    cr_assert_eq(cfg.max_packet_size, def.max_packet_size);
    cr_assert_eq(cfg.max_connections, def.max_connections);
    cr_assert_eq(cfg.max_pending_connections, def.max_pending_connections);
    cr_assert_eq(cfg.connect_timeout, def.connect_timeout);
    cr_assert_eq(cfg.max_connect_size, def.max_connect_size);
    cr_assert_eq(cfg.max_inflight, def.max_inflight);
    cr_assert_eq(cfg.max_queued_messages, def.max_queued_messages);
    cr_assert_eq(cfg.max_queued_bytes, def.max_queued_bytes);
    cr_assert_eq(cfg.max_client_id_len, def.max_client_id_len);
    cr_assert_eq(cfg.max_client_output, def.max_client_output);
    cr_assert_eq(cfg.max_slow_output_total, def.max_slow_output_total);
    cr_assert_eq(cfg.max_topic_length, def.max_topic_length);
    cr_assert_eq(config_tenant_settings(&cfg, "default")->max_topic_length, def.max_topic_length,
                 "[tenant.default] takes max_topic_length from [limits]");
    cr_assert_eq(cfg.log_level, def.log_level);
    cr_assert_eq(cfg.server_keepalive, def.server_keepalive);
    cr_assert_eq(cfg.max_keepalive, def.max_keepalive);
    cr_assert_eq(cfg.nlisteners, 1);
    cr_assert_str_eq(cfg.listeners[0].name, "default");
    cr_assert_str_eq(cfg.listeners[0].bind, "127.0.0.1");
    cr_assert_eq(cfg.listeners[0].port, 1883);
    cr_assert_eq(cfg.listeners[0].allow_anonymous, false);
    cr_assert_eq(cfg.listeners[0].backlog, 4096);
    cr_assert_eq(cfg.listeners[0].send_buffer, 65536);
}

Test(config, shipped_file_lists_every_key)
{
    /* Every key the parser knows (each is also exercised by set_every_key). */
    static const char *const keys[] = {
        "shards",
        "cpu_affinity",
        "wills_on_shutdown",
        "recv_buffer_size",
        "recv_buffers",
        "bind",
        "port",
        "allow_anonymous",
        "backlog",
        "send_buffer",
        "transport",
        "ws_path",
        "ws_allowed_origins",
        "ws_max_frame",
        "proxy_protocol",
        "proxy_trusted",
        "tls_cert",
        "tls_key",
        "tls_ca",
        "tls_verify_client",
        "tls_crl",
        "tls_min_version",
        "tls_ciphers",
        "tls_ciphersuites",
        "tls_handshake_timeout",
        "max_packet_size",
        "max_connections",
        "max_pending_connections",
        "connect_timeout",
        "max_connect_size",
        "max_inflight",
        "max_queued_messages",
        "max_queued_bytes",
        "max_client_id_len",
        "max_topic_length",
        "max_subscriptions",
        "max_client_output",
        "max_slow_output_total",
        "receive_maximum",
        "topic_alias_maximum",
        "maximum_qos",
        "retain_available",
        "wildcard_subscriptions",
        "subscription_identifiers",
        "shared_subscriptions",
        "server_keepalive",
        "max_keepalive",
        "max_session_expiry",
        "validate_payload_format",
        "test_auth_method",
        "level",
        "format",
        "target",
    };
    char path[1024], line[512];
    shipped_conf(path, sizeof(path));
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f, "%s: %s", path, strerror(errno));
        bool found = false;
        size_t kl = strlen(keys[i]);
        while (!found && fgets(line, sizeof(line), f) != NULL)
            found = strncmp(line, keys[i], kl) == 0 &&
                    (strncmp(line + kl, " = ", 3) == 0 || strcmp(line + kl, " =\n") == 0);
        fclose(f);
        cr_assert(found, "conf/ringmq.ini lacks '%s = '", keys[i]);
    }
}

Test(config, set_every_key)
{
    /* Overrides accept every key the file does. */
    const char *ov[] = {
        "server.shards=4",
        "server.cpu_affinity=0-1,5",
        "server.wills_on_shutdown=true",
        "server.recv_buffer_size=4096",
        "server.recv_buffers=64",
        "listener.default.bind=::1",
        "listener.default.port=0",
        "listener.default.allow_anonymous=yes",
        "listener.default.backlog=128",
        "listener.default.send_buffer=0",
        "listener.default.transport=ws",
        "listener.default.ws_path=/ws/mqtt",
        "listener.default.ws_allowed_origins=https://a.example,https://b.example",
        "listener.default.ws_max_frame=4096",
        "listener.default.proxy_protocol=any",
        "listener.default.proxy_trusted=10.0.0.0/8, ::1",
        "limits.max_packet_size=65536",
        "limits.max_connections=1000",
        "limits.max_pending_connections=500",
        "limits.connect_timeout=3",
        "limits.max_connect_size=4096",
        "limits.max_inflight=10",
        "limits.max_queued_messages=5",
        "limits.max_queued_bytes=5000000000",
        "limits.max_client_id_len=23",
        "limits.max_topic_length=100",
        "limits.max_subscriptions=7",
        "limits.max_client_output=65536",
        "limits.max_slow_output_total=0",
        "mqtt.receive_maximum=10",
        "mqtt.topic_alias_maximum=0",
        "mqtt.maximum_qos=1",
        "mqtt.retain_available=false",
        "mqtt.wildcard_subscriptions=false",
        "mqtt.subscription_identifiers=false",
        "mqtt.shared_subscriptions=false",
        "mqtt.server_keepalive=30",
        "mqtt.max_keepalive=120",
        "mqtt.max_session_expiry=4294967295",
        "mqtt.validate_payload_format=true",
        "mqtt.test_auth_method=RINGMQ-TEST",
        "log.level=debug",
        "log.format=json",
        "log.target=syslog",
    };
    struct config cfg;
    load_ok(&cfg, LISTENER_OK, ov, sizeof(ov) / sizeof(ov[0]));
    cr_assert_eq(cfg.shards, 4);
    cr_assert_eq(cfg.cpu_affinity.mode, AFFINITY_LIST);
    cr_assert_eq(cpu_bits_count(&cfg.cpu_affinity.list), 3);
    cr_assert(cpu_bits_has(&cfg.cpu_affinity.list, 5));
    cr_assert_eq(cfg.wills_on_shutdown, true);
    cr_assert_eq(cfg.recv_buffer_size, 4096);
    cr_assert_eq(cfg.recv_buffers, 64);
    cr_assert_str_eq(cfg.listeners[0].bind, "::1");
    cr_assert_eq(cfg.listeners[0].port, 0);
    cr_assert_eq(cfg.listeners[0].allow_anonymous, true);
    cr_assert_eq(cfg.listeners[0].backlog, 128);
    cr_assert_eq(cfg.listeners[0].send_buffer, 0);
    cr_assert_eq(cfg.listeners[0].transport, CONFIG_TRANSPORT_WS);
    cr_assert_str_eq(cfg.listeners[0].ws_path, "/ws/mqtt");
    cr_assert_str_eq(cfg.listeners[0].ws_allowed_origins, "https://a.example,https://b.example");
    cr_assert_eq(cfg.listeners[0].ws_max_frame, 4096);
    cr_assert_str_eq(config_transport_name(cfg.listeners[0].transport), "ws");
    cr_assert_eq(cfg.listeners[0].proxy_protocol, CONFIG_PROXY_ANY);
    cr_assert_eq(cfg.listeners[0].proxy_trusted.n, 2);
    cr_assert_eq(cfg.max_packet_size, 65536);
    cr_assert_eq(cfg.max_connections, 1000);
    cr_assert_eq(cfg.max_pending_connections, 500);
    cr_assert_eq(cfg.connect_timeout, 3);
    cr_assert_eq(cfg.max_connect_size, 4096);
    cr_assert_eq(cfg.max_inflight, 10);
    cr_assert_eq(cfg.max_queued_messages, 5);
    cr_assert_eq(cfg.max_queued_bytes, 5000000000ull);
    cr_assert_eq(cfg.max_client_id_len, 23);
    cr_assert_eq(cfg.max_topic_length, 100);
    cr_assert_eq(cfg.max_subscriptions, 7);
    cr_assert_eq(cfg.max_client_output, 65536);
    cr_assert_eq(cfg.max_slow_output_total, 0);
    cr_assert_eq(cfg.receive_maximum, 10);
    cr_assert_eq(cfg.topic_alias_maximum, 0);
    cr_assert_eq(cfg.maximum_qos, 1);
    cr_assert_eq(cfg.retain_available, false);
    cr_assert_eq(cfg.wildcard_subscriptions, false);
    cr_assert_eq(cfg.subscription_identifiers, false);
    cr_assert_eq(cfg.shared_subscriptions, false);
    cr_assert_eq(cfg.server_keepalive, 30);
    cr_assert_eq(cfg.max_keepalive, 120);
    cr_assert_eq(cfg.max_session_expiry, 4294967295u);
    cr_assert_eq(cfg.validate_payload_format, true);
    cr_assert_str_eq(cfg.test_auth_method, "RINGMQ-TEST");
    cr_assert_eq(cfg.log_format, LOG_FORMAT_JSON);
    cr_assert_eq(cfg.log_target, LOG_TARGET_SYSLOG);
    cr_assert_eq(cfg.log_level, LOG_LEVEL_DEBUG);
}

Test(config, file_values_and_syntax)
{
    /* BOM, indentation, inline comments, ':' separators, several listeners in order. */
    struct config cfg;
    load_ok(&cfg,
            "\xEF\xBB\xBF; comment\n"
            "# other comment\n"
            "[server]\n"
            "  shards = 8 ; inline comment\n"
            "    recv_buffers = 1024\n"
            "[ limits ]\n"
            "max_inflight: 100\n"
            "\n"
            "[listener.b-2]\n"
            "port = 2000\n"
            "[listener.A_1]\n"
            "bind = 127.1.2.3\n"
            "port = 2001\n"
            "[log]\n"
            "level = warning\n",
            NULL, 0);
    cr_assert_eq(cfg.shards, 8);
    cr_assert_eq(cfg.recv_buffers, 1024);
    cr_assert_eq(cfg.max_inflight, 100);
    cr_assert_eq(cfg.nlisteners, 2);
    cr_assert_str_eq(cfg.listeners[0].name, "b-2");
    cr_assert_eq(cfg.listeners[0].port, 2000);
    cr_assert_str_eq(cfg.listeners[1].name, "A_1");
    cr_assert_str_eq(cfg.listeners[1].bind, "127.1.2.3");
    cr_assert_eq(cfg.listeners[1].port, 2001);
    cr_assert_eq(cfg.log_level, LOG_LEVEL_WARN);
}

Test(config, empty_listener_section_creates_listener)
{
    struct config cfg;
    load_ok(&cfg, "[listener.x]\n[listener.y]\nport = 1884\n", NULL, 0);
    cr_assert_eq(cfg.nlisteners, 2);
    cr_assert_str_eq(cfg.listeners[0].name, "x");
    cr_assert_eq(cfg.listeners[0].port, 1883);
}

Test(config, reopened_section_merges)
{
    struct config cfg;
    load_ok(&cfg, "[listener.a]\nport = 1\n[limits]\n[listener.a]\nbacklog = 7\n", NULL, 0);
    cr_assert_eq(cfg.nlisteners, 1);
    cr_assert_eq(cfg.listeners[0].port, 1);
    cr_assert_eq(cfg.listeners[0].backlog, 7);
}

/* ---- file errors ------------------------------------------------------ */

Test(config, error_unknown_section)
{
    expect_file_error(LISTENER_OK "\n[bogus]\n", ":3: unknown section [bogus]");
    expect_file_error("[listener]\n", ":1: a listener section needs a name: [listener.NAME]");
}

Test(config, error_unknown_key)
{
    expect_file_error(LISTENER_OK "[limits]\nmax_inflight = 5\nmax_inflite = 5\n",
                      ":4: [limits] unknown key 'max_inflite'");
    /* A key of another section is unknown here. */
    expect_file_error("[listener.main]\nshards = 2\n", ":2: [listener.main] unknown key 'shards'");
}

Test(config, error_bad_value)
{
    expect_file_error("[listener.default]\n[limits]\nmax_inflight = abc\n",
                      ":3: [limits] max_inflight: expected an integer 1..65535, got 'abc'");
    expect_file_error("[listener.web]\nport = 70000\n",
                      ":2: [listener.web] port: expected a port 0..65535, got '70000'");
    expect_file_error(LISTENER_OK "[log]\nlevel = loud\n",
                      ":3: [log] level: expected error, warning, info or debug, got 'loud'");
    expect_file_error(LISTENER_OK "[server]\nshards =\n",
                      ":3: [server] shards: expected auto or an integer 1..64, got ''");
    expect_file_error("[listener.web]\nws_path = mqtt\n",
                      ":2: [listener.web] ws_path: expected a path such as /mqtt, got 'mqtt'");
    expect_file_error("[listener.web]\nws_path = /mq tt\n",
                      ":2: [listener.web] ws_path: expected a path such as /mqtt, got '/mq tt'");
    expect_file_error("[listener.web]\nws_path = /mqtt?x=1\n",
                      ":2: [listener.web] ws_path: expected a path such as /mqtt, got '/mqtt?x=1'");
    expect_file_error(LISTENER_OK "[log]\nformat = xml\n",
                      ":3: [log] format: expected text or json, got 'xml'");
    expect_file_error(LISTENER_OK "[log]\ntarget = file\n",
                      ":3: [log] target: expected stderr or syslog, got 'file'");
    expect_file_error("[listener.web]\ntransport = quic\n",
                      ":2: [listener.web] transport: expected tcp, tls, ws or wss, got 'quic'");
}

Test(config, tls_keys)
{
    const char *ov[] = {
        "listener.s.port=8883",
        "listener.s.transport=tls",
        "listener.s.tls_cert=/c.pem",
        "listener.s.tls_key=/k.pem",
        "listener.s.tls_ca=/ca.pem",
        "listener.s.tls_crl=/crl.pem",
        "listener.s.tls_verify_client=required",
        "listener.s.tls_min_version=1.3",
        "listener.s.tls_ciphers=ECDHE-ECDSA-AES128-GCM-SHA256",
        "listener.s.tls_ciphersuites=TLS13-AES128-GCM-SHA256",
        "listener.s.tls_handshake_timeout=3",
    };
    struct config cfg;
    load_ok(&cfg, LISTENER_OK, ov, sizeof(ov) / sizeof(ov[0]));
    const struct config_listener *l = &cfg.listeners[1];
    cr_assert_eq(l->transport, CONFIG_TRANSPORT_TLS);
    cr_assert_str_eq(config_transport_name(l->transport), "tls");
    cr_assert_str_eq(l->tls_cert, "/c.pem");
    cr_assert_str_eq(l->tls_key, "/k.pem");
    cr_assert_str_eq(l->tls_ca, "/ca.pem");
    cr_assert_str_eq(l->tls_crl, "/crl.pem");
    cr_assert_eq(l->tls_verify_client, CONFIG_TLS_VERIFY_REQUIRED);
    cr_assert_eq(l->tls_min_version, 13);
    cr_assert_str_eq(l->tls_ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256");
    cr_assert_str_eq(l->tls_ciphersuites, "TLS13-AES128-GCM-SHA256");
    cr_assert_eq(l->tls_handshake_timeout, 3);
    /* The defaults: no client certificate, TLS 1.2 and up, 10 s. */
    cr_assert_eq(cfg.listeners[0].tls_verify_client, CONFIG_TLS_VERIFY_NONE);
    cr_assert_eq(cfg.listeners[0].tls_min_version, 12);
    cr_assert_eq(cfg.listeners[0].tls_handshake_timeout, 10);
}

Test(config, tls_errors)
{
    expect_file_error("[listener.s]\ntransport = tls\n",
                      ":2: [listener.s] transport = tls needs tls_cert and tls_key");
    expect_file_error("[listener.s]\ntls_cert = /c\ntransport = tls\n",
                      ":3: [listener.s] transport = tls needs tls_cert and tls_key");
    expect_file_error("[listener.s]\ntransport = tls\ntls_cert = /c\ntls_key = /k\n"
                      "tls_verify_client = required\n",
                      ":2: [listener.s] tls_verify_client needs tls_ca");
    expect_file_error("[listener.s]\ntls_min_version = 1.1\n",
                      ":2: [listener.s] tls_min_version: expected 1.2 or 1.3 (TLS 1.0 and 1.1 "
                      "are not supported), got '1.1'");
    expect_file_error("[listener.s]\ntls_verify_client = yes\n",
                      ":2: [listener.s] tls_verify_client: expected none, optional or required, "
                      "got 'yes'");
    expect_file_error(
        "[listener.s]\ntls_handshake_timeout = 0\n",
        ":2: [listener.s] tls_handshake_timeout: expected an integer 1..3600, got '0'");
    /* From an override there is no line to name. */
    struct config cfg;
    char err[512];
    const char *ov[] = {"listener.default.transport=tls"};
    cr_assert_eq(load_text(&cfg, LISTENER_OK, ov, 1, err, sizeof(err)), -1);
    char want[600];
    snprintf(want, sizeof(want),
             "%s: [listener.default] transport = tls needs tls_cert and tls_key", tmp_path);
    cr_assert_str_eq(err, want);
}

/* wss takes both transports' options: TLS's and WebSocket's. */
Test(config, wss_keys)
{
    const char *ov[] = {
        "listener.s.port=8084",
        "listener.s.transport=wss",
        "listener.s.tls_cert=/c.pem",
        "listener.s.tls_key=/k.pem",
        "listener.s.tls_ca=/ca.pem",
        "listener.s.tls_crl=/crl.pem",
        "listener.s.tls_verify_client=optional",
        "listener.s.tls_min_version=1.3",
        "listener.s.tls_ciphers=ECDHE-ECDSA-AES128-GCM-SHA256",
        "listener.s.tls_handshake_timeout=4",
        "listener.s.ws_path=/wss",
        "listener.s.ws_allowed_origins=https://a.example",
        "listener.s.ws_max_frame=8192",
        "listener.s.sni.acme.example.com.cert=/acme.pem",
        "listener.s.sni.acme.example.com.key=/acme.key",
    };
    struct config cfg;
    load_ok(&cfg, LISTENER_OK, ov, sizeof(ov) / sizeof(ov[0]));
    const struct config_listener *l = &cfg.listeners[1];
    cr_assert_eq(l->transport, CONFIG_TRANSPORT_WSS);
    cr_assert_str_eq(config_transport_name(l->transport), "wss");
    cr_assert(config_transport_tls(CONFIG_TRANSPORT_WSS));
    cr_assert(config_transport_tls(CONFIG_TRANSPORT_TLS));
    cr_assert(!config_transport_tls(CONFIG_TRANSPORT_WS));
    cr_assert(!config_transport_tls(CONFIG_TRANSPORT_TCP));
    cr_assert_str_eq(l->tls_cert, "/c.pem");
    cr_assert_str_eq(l->tls_key, "/k.pem");
    cr_assert_str_eq(l->tls_ca, "/ca.pem");
    cr_assert_str_eq(l->tls_crl, "/crl.pem");
    cr_assert_eq(l->tls_verify_client, CONFIG_TLS_VERIFY_OPTIONAL);
    cr_assert_eq(l->tls_min_version, 13);
    cr_assert_str_eq(l->tls_ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256");
    cr_assert_eq(l->tls_handshake_timeout, 4);
    cr_assert_str_eq(l->ws_path, "/wss");
    cr_assert_str_eq(l->ws_allowed_origins, "https://a.example");
    cr_assert_eq(l->ws_max_frame, 8192);
    cr_assert_eq(cfg.nsni, 1);
    cr_assert_str_eq(cfg.sni[0].host, "acme.example.com");
    cr_assert_eq(cfg.sni[0].listener, 1);
}

Test(config, wss_errors)
{
    expect_file_error("[listener.s]\ntransport = wss\n",
                      ":2: [listener.s] transport = wss needs tls_cert and tls_key");
    expect_file_error("[listener.s]\ntransport = wss\ntls_key = /k\n",
                      ":2: [listener.s] transport = wss needs tls_cert and tls_key");
    expect_file_error("[listener.s]\ntransport = wss\ntls_cert = /c\ntls_key = /k\n"
                      "tls_verify_client = required\n",
                      ":2: [listener.s] tls_verify_client needs tls_ca");
    expect_file_error("[listener.s]\ntransport = wss\ntls_cert = /c\ntls_key = /k\n"
                      "ws_path = mqtt\n",
                      ":5: [listener.s] ws_path: expected a path such as /mqtt, got 'mqtt'");
    /* Server names belong to listeners on TLS, wss among them. */
    expect_file_error("[listener.s]\ntransport = ws\nsni.a.example.cert = /c\n"
                      "sni.a.example.key = /k\n",
                      ":2: [listener.s] sni.a.example: server names are a transport = tls or "
                      "wss setting");
    struct config cfg;
    char err[512];
    const char *ov[] = {"listener.default.transport=wss"};
    cr_assert_eq(load_text(&cfg, LISTENER_OK, ov, 1, err, sizeof(err)), -1);
    char want[600];
    snprintf(want, sizeof(want),
             "%s: [listener.default] transport = wss needs tls_cert and tls_key", tmp_path);
    cr_assert_str_eq(err, want);
}

Test(config, error_duplicate_key)
{
    expect_file_error(LISTENER_OK "[server]\nshards = 2\n\nshards = 3\n",
                      ":5: [server] shards: duplicate key (first set on line 3)");
    expect_file_error("[listener.a]\nport = 1\n[listener.a]\nport = 2\n",
                      ":4: [listener.a] port: duplicate key (first set on line 2)");
}

Test(config, same_key_in_two_listeners_is_not_duplicate)
{
    struct config cfg;
    load_ok(&cfg, "[listener.a]\nport = 1\n[listener.b]\nport = 2\n", NULL, 0);
    cr_assert_eq(cfg.listeners[1].port, 2);
}

Test(config, error_too_many_listeners)
{
    char text[2048] = "";
    size_t off = 0;
    for (int i = 0; i <= CONFIG_MAX_LISTENERS; i++)
        off += (size_t)snprintf(text + off, sizeof(text) - off, "[listener.l%d]\nport = %d\n", i,
                                2000 + i);
    char want[128];
    snprintf(want, sizeof(want), ":%d: too many listeners (at most %d)",
             2 * CONFIG_MAX_LISTENERS + 1, CONFIG_MAX_LISTENERS);
    expect_file_error(text, want);

    /* Exactly the maximum is fine. */
    struct config cfg;
    text[0] = '\0';
    off = 0;
    for (int i = 0; i < CONFIG_MAX_LISTENERS; i++)
        off += (size_t)snprintf(text + off, sizeof(text) - off, "[listener.l%d]\nport = %d\n", i,
                                2000 + i);
    load_ok(&cfg, text, NULL, 0);
    cr_assert_eq(cfg.nlisteners, CONFIG_MAX_LISTENERS);
}

Test(config, error_listener_name)
{
    /* 31 characters is the longest name that fits name[CONFIG_NAME_MAX]. */
    struct config cfg;
    load_ok(&cfg, "[listener.abcdefghijklmnopqrstuvwxyz01234]\n", NULL, 0);
    cr_assert_str_eq(cfg.listeners[0].name, "abcdefghijklmnopqrstuvwxyz01234");

    expect_file_error("[listener.abcdefghijklmnopqrstuvwxyz012345]\n",
                      ":1: listener name 'abcdefghijklmnopqrstuvwxyz012345' must be 1..31 "
                      "characters of A-Z a-z 0-9 _ -");
    expect_file_error("[listener.a.b]\n",
                      ":1: listener name 'a.b' must be 1..31 characters of A-Z a-z 0-9 _ -");
    expect_file_error("[listener.]\n",
                      ":1: listener name '' must be 1..31 characters of A-Z a-z 0-9 _ -");
    expect_file_error("[listener.a b]\n",
                      ":1: listener name 'a b' must be 1..31 characters of A-Z a-z 0-9 _ -");
}

Test(config, error_syntax)
{
    expect_file_error("[listener.a]\nport 1883\n", ":2: expected [section] or key = value");
    expect_file_error("[listener.a\n", ":1: missing ']' in section header");
    expect_file_error("[listener.a] port = 1\n", ":1: unexpected text after ']'");
    expect_file_error("port = 1\n[listener.a]\n", ":1: key 'port' outside any [section]");
}

Test(config, first_error_wins)
{
    /* inih keeps going after a syntax error; the report is still the first line. */
    expect_file_error("[listener.a]\ngarbage\n[limits]\nmax_inflight = 0\n",
                      ":2: expected [section] or key = value");
}

Test(config, long_lines)
{
    char text[1024];
    char comment[400];
    memset(comment, 'x', sizeof(comment) - 1);
    comment[sizeof(comment) - 1] = '\0';

    /* A long comment is fine, and line numbers stay right after it. */
    snprintf(text, sizeof(text), "; %s\n[listener.a]\nport = x\n", comment);
    expect_file_error(text, ":3: [listener.a] port: expected a port 0..65535, got 'x'");

    snprintf(text, sizeof(text), "[listener.a]\nbind = %s\n", comment);
    struct config cfg;
    char err[512];
    cr_assert_eq(load_text(&cfg, text, NULL, 0, err, sizeof(err)), -1);
    char want[128];
    snprintf(want, sizeof(want), "%s:2: line longer than ", tmp_path);
    cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
}

Test(config, error_missing_file)
{
    struct config cfg;
    char err[512];
    cr_assert_eq(config_load(&cfg, "/nonexistent/ringmq.ini", NULL, 0, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "/nonexistent/ringmq.ini: cannot open: No such file or directory");
}

Test(config, error_unreadable_file)
{
    /* A directory opens for reading but cannot be read. */
    struct config cfg;
    char err[512];
    cr_assert_eq(config_load(&cfg, "/tmp", NULL, 0, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "/tmp: cannot read: Is a directory");
}

Test(config, error_no_listener)
{
    expect_file_error("[limits]\nmax_inflight = 5\n", ": no [listener.NAME] section");
    expect_file_error("", ": no [listener.NAME] section");
}

Test(config, failure_leaves_cfg_untouched)
{
    struct config cfg;
    char err[512];
    memset(&cfg, 0x5A, sizeof(cfg));
    cr_assert_eq(load_text(&cfg, "[listener.a]\nport = 1\n[limits]\nmax_inflight = 0\n", NULL, 0,
                           err, sizeof(err)),
                 -1);
    const unsigned char *p = (const unsigned char *)&cfg;
    for (size_t i = 0; i < sizeof(cfg); i++)
        cr_assert_eq(p[i], 0x5A, "byte %zu changed", i);
}

Test(config, null_err_buffer_is_allowed)
{
    struct config cfg;
    cr_assert_eq(load_text(&cfg, "[nope]\n", NULL, 0, NULL, 0), -1);
    cr_assert_eq(load_text(&cfg, LISTENER_OK, NULL, 0, NULL, 0), 0);
}

Test(config, err_is_truncated_to_errlen)
{
    struct config cfg;
    char err[8];
    memset(err, 'Z', sizeof(err));
    cr_assert_eq(load_text(&cfg, "[nope]\n", NULL, 0, err, sizeof(err)), -1);
    cr_assert_eq(strlen(err), sizeof(err) - 1);
}

/* ---- overrides --------------------------------------------------------- */

Test(config, override_beats_file)
{
    struct config cfg;
    const char *ov[] = {"limits.max_inflight=7", "listener.default.port=0", "server.shards=auto"};
    load_ok(&cfg, LISTENER_OK "port = 1234\n[limits]\nmax_inflight = 99\n[server]\nshards = 3\n",
            ov, 3);
    cr_assert_eq(cfg.max_inflight, 7);
    cr_assert_eq(cfg.listeners[0].port, 0);
    cr_assert_eq(cfg.shards, 0);
}

Test(config, override_later_wins_and_spaces_are_trimmed)
{
    struct config cfg;
    const char *ov[] = {"limits.max_inflight=7", " limits . max_inflight = 8 "};
    load_ok(&cfg, LISTENER_OK, ov, 2);
    cr_assert_eq(cfg.max_inflight, 8);
}

Test(config, override_creates_listener)
{
    struct config cfg;
    const char *ov[] = {"listener.extra.port=0"};
    load_ok(&cfg, LISTENER_OK, ov, 1);
    cr_assert_eq(cfg.nlisteners, 2);
    cr_assert_str_eq(cfg.listeners[1].name, "extra");
    cr_assert_eq(cfg.listeners[1].port, 0);
    cr_assert_str_eq(cfg.listeners[1].bind, "127.0.0.1");
    cr_assert_eq(cfg.listeners[1].backlog, 4096);

    /* A file without any listener passes once an override adds one. */
    load_ok(&cfg, "[limits]\n", ov, 1);
    cr_assert_eq(cfg.nlisteners, 1);
    cr_assert_str_eq(cfg.listeners[0].name, "extra");
}

Test(config, override_errors)
{
    expect_override_error(LISTENER_OK, "limits.max_inflight=abc",
                          "--set limits.max_inflight=abc: [limits] max_inflight: expected an "
                          "integer 1..65535, got 'abc'");
    expect_override_error(LISTENER_OK, "limits.max_inflight",
                          "--set limits.max_inflight: expected section.key=value");
    expect_override_error(LISTENER_OK, "shards=2", "--set shards=2: expected section.key=value");
    expect_override_error(LISTENER_OK, "x=1.2.3.4", "--set x=1.2.3.4: expected section.key=value");
    expect_override_error(LISTENER_OK, "bogus.key=1", "--set bogus.key=1: unknown section [bogus]");
    expect_override_error(LISTENER_OK, "server.nope=1",
                          "--set server.nope=1: [server] unknown key 'nope'");
    expect_override_error(LISTENER_OK, "listener.port=1",
                          "--set listener.port=1: a listener section needs a name: "
                          "[listener.NAME]");
    expect_override_error(LISTENER_OK, "listener.a/b.port=1",
                          "--set listener.a/b.port=1: listener name 'a/b' must be 1..31 "
                          "characters of A-Z a-z 0-9 _ -");
    expect_override_error(LISTENER_OK, "listener.default.bind=example.com",
                          "--set listener.default.bind=example.com: [listener.default] bind: "
                          "expected an IPv4 or IPv6 address literal, got 'example.com'");
}

Test(config, override_too_many_listeners)
{
    char text[2048] = "";
    size_t off = 0;
    for (int i = 0; i < CONFIG_MAX_LISTENERS; i++)
        off += (size_t)snprintf(text + off, sizeof(text) - off, "[listener.l%d]\nport = 0\n", i);
    expect_override_error(text, "listener.more.port=0",
                          "--set listener.more.port=0: too many listeners (at most 16)");
}

Test(config, override_error_is_one_line)
{
    struct config cfg;
    char err[512];
    cr_assert_eq(set_one(&cfg, "limits.max_inflight=1\n2", err, sizeof(err)), -1);
    cr_assert_null(strchr(err, '\n'), "%s", err);
    cr_assert_str_eq(err, "--set limits.max_inflight=1?2: [limits] max_inflight: expected an "
                          "integer 1..65535, got '1?2'");
}

Test(config, no_file_uses_defaults_and_overrides)
{
    struct config cfg;
    char err[256];
    const char *ov[] = {"listener.t.port=0"};
    cr_assert_eq(config_load(&cfg, NULL, ov, 1, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.nlisteners, 1);
    cr_assert_eq(config_load(&cfg, NULL, NULL, 0, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "(no file): no [listener.NAME] section");
}

/* ---- value parsers ----------------------------------------------------- */

Test(config, booleans)
{
    static const struct {
        const char *text;
        bool value;
    } cases[] = {
        {"true", true}, {"false", false}, {"yes", true}, {"no", false},
        {"on", true},   {"off", false},   {"1", true},   {"0", false},
        {"TRUE", true}, {"Off", false},   {"Yes", true},
    };
    char arg[64], err[256];
    struct config cfg;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(arg, sizeof(arg), "server.wills_on_shutdown=%s", cases[i].text);
        cr_assert_eq(set_one(&cfg, arg, err, sizeof(err)), 0, "%s: %s", arg, err);
        cr_assert_eq(cfg.wills_on_shutdown, cases[i].value, "%s", arg);
    }
    static const char *const bad[] = {"", "2", "y", "enable", "truee", " "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(arg, sizeof(arg), "server.wills_on_shutdown=%s", bad[i]);
        cr_assert_eq(set_one(&cfg, arg, err, sizeof(err)), -1, "accepted %s", arg);
    }
    cr_assert_eq(set_one(&cfg, "server.wills_on_shutdown=maybe", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "--set server.wills_on_shutdown=maybe: [server] wills_on_shutdown: "
                          "expected true/false, yes/no, on/off or 1/0, got 'maybe'");
}

Test(config, cpu_affinity_modes_and_errors)
{
    struct config cfg;
    char err[256];
    cr_assert_eq(set_one(&cfg, "server.cpu_affinity=none", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.cpu_affinity.mode, AFFINITY_NONE);
    cr_assert_eq(set_one(&cfg, "server.cpu_affinity=auto", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.cpu_affinity.mode, AFFINITY_AUTO);
    cr_assert_eq(set_one(&cfg, "server.cpu_affinity=2-1", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "--set server.cpu_affinity=2-1: [server] cpu_affinity: range 2-1 runs "
                          "backwards");
    cr_assert_eq(set_one(&cfg, "server.cpu_affinity=pinned", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "--set server.cpu_affinity=pinned: [server] cpu_affinity: expected auto, "
                          "none or a CPU list like 0-3,8");
}

/* Every numeric key at and just past each bound. */
Test(config, integer_bounds)
{
    static const struct {
        const char *key;
        const char *ok[3];
        const char *bad[4];
    } cases[] = {
        {"server.shards", {"1", "64", "auto"}, {"0", "65", "-1", "AUTO"}},
        {"server.recv_buffer_size", {"1024", "1048576"}, {"1023", "1048577", "16k"}},
        {"server.recv_buffers", {"1", "32768", "2"}, {"0", "65536", "3", "100"}},
        {"listener.default.port", {"0", "65535"}, {"65536", "-1", "0x10"}},
        {"listener.default.backlog", {"1", "65535"}, {"0", "65536"}},
        {"listener.default.send_buffer", {"0", "1073741824"}, {"1073741825", "-1"}},
        {"limits.max_packet_size", {"16", "268435460"}, {"15", "268435461"}},
        {"limits.max_connections", {"0", "100000000"}, {"100000001", "4294967296"}},
        /* 0 would be no budget at all: every connection refused. */
        {"limits.max_pending_connections", {"1", "100000000"}, {"0", "100000001", "-1"}},
        {"limits.connect_timeout", {"1", "3600"}, {"0", "3601", "10s"}},
        /* Below 128 bytes ordinary CONNECTs (a 23-byte id, credentials) fail. */
        {"limits.max_connect_size", {"128", "268435460"}, {"127", "268435461", "64k"}},
        {"limits.max_inflight", {"1", "65535"}, {"0", "65536", "1.5", "+1"}},
        {"limits.max_queued_messages", {"0", "10000000"}, {"10000001"}},
        {"limits.max_queued_bytes",
         {"0", "1099511627776"},
         {"1099511627777", "18446744073709551616"}},
        /* MQTT-3.1.3-5: a server must allow client ids of 1..23 bytes, so a
         * limit below 23 is refused (it was accepted down to 1). */
        {"limits.max_client_id_len", {"23", "65535"}, {"22", "0", "65536", "1 2"}},
        {"limits.max_client_output", {"4096", "1073741824"}, {"4095", "1073741825"}},
        {"limits.max_slow_output_total", {"0", "1099511627776"}, {"1099511627777", "-1"}},
        {"limits.max_topic_length", {"1", "65535"}, {"0", "65536"}},
        {"mqtt.receive_maximum", {"1", "65535"}, {"0", "65536"}},
        {"mqtt.topic_alias_maximum", {"0", "65535"}, {"65536", "-1"}},
        {"mqtt.maximum_qos", {"0", "2"}, {"3"}},
        {"mqtt.server_keepalive", {"0", "65535"}, {"65536"}},
        {"mqtt.max_keepalive", {"0", "65535"}, {"65536", "-1"}},
        {"tenant.a.max_keepalive", {"0", "65535"}, {"65536", "x"}},
        {"mqtt.max_session_expiry", {"0", "4294967295"}, {"4294967296"}},
    };
    char arg[128], err[256];
    struct config cfg;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (size_t j = 0; j < 3 && cases[i].ok[j]; j++) {
            snprintf(arg, sizeof(arg), "%s=%s", cases[i].key, cases[i].ok[j]);
            cr_assert_eq(set_one(&cfg, arg, err, sizeof(err)), 0, "%s: %s", arg, err);
        }
        for (size_t j = 0; j < 4 && cases[i].bad[j]; j++) {
            /* In the file, where inih has already trimmed the value. */
            char text[256];
            snprintf(text, sizeof(text), LISTENER_OK "[%.*s]\n%s = %s\n",
                     (int)(strrchr(cases[i].key, '.') - cases[i].key), cases[i].key,
                     strrchr(cases[i].key, '.') + 1, cases[i].bad[j]);
            cr_assert_eq(load_text(&cfg, text, NULL, 0, err, sizeof(err)), -1, "accepted %s", text);
        }
    }
}

Test(config, integer_values_land_in_their_fields)
{
    struct config cfg;
    load_ok(&cfg,
            LISTENER_OK "port = 65535\nbacklog = 1\n[limits]\nmax_packet_size = 268435460\n"
                        "max_queued_bytes = 1099511627776\n[server]\nshards = 64\n",
            NULL, 0);
    cr_assert_eq(cfg.listeners[0].port, 65535);
    cr_assert_eq(cfg.listeners[0].backlog, 1);
    cr_assert_eq(cfg.max_packet_size, 268435460u);
    cr_assert_eq(cfg.max_queued_bytes, 1099511627776ull);
    cr_assert_eq(cfg.shards, 64);
}

Test(config, recv_buffers_message)
{
    struct config cfg;
    char err[256];
    cr_assert_eq(set_one(&cfg, "server.recv_buffers=100", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "--set server.recv_buffers=100: [server] recv_buffers: expected a power "
                          "of two 1..32768, got '100'");
}

Test(config, log_levels)
{
    static const struct {
        const char *text;
        enum log_level level;
    } cases[] = {
        {"error", LOG_LEVEL_ERR},
        {"warning", LOG_LEVEL_WARN},
        {"info", LOG_LEVEL_INFO},
        {"debug", LOG_LEVEL_DEBUG},
    };
    char arg[64], err[256];
    struct config cfg;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(arg, sizeof(arg), "log.level=%s", cases[i].text);
        cr_assert_eq(set_one(&cfg, arg, err, sizeof(err)), 0, "%s: %s", arg, err);
        cr_assert_eq(cfg.log_level, cases[i].level);
    }
    cr_assert_eq(set_one(&cfg, "log.level=warn", err, sizeof(err)), -1);
}

Test(config, addresses)
{
    static const char *const ok[] = {"127.0.0.1", "127.255.0.9", "::1", "0:0:0:0:0:0:0:1"};
    static const char *const bad[] = {"localhost", "1.2.3", "256.0.0.1",     "fe80::1%eth0",
                                      "",          "[::1]", "127.0.0.1:1883"};
    char arg[128], err[256];
    struct config cfg;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(arg, sizeof(arg), "listener.default.bind=%s", ok[i]);
        cr_assert_eq(set_one(&cfg, arg, err, sizeof(err)), 0, "%s: %s", arg, err);
        cr_assert_str_eq(cfg.listeners[0].bind, ok[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(arg, sizeof(arg), "listener.default.bind=%s", bad[i]);
        cr_assert_eq(set_one(&cfg, arg, err, sizeof(err)), -1, "accepted %s", arg);
    }
}

/* ---- whole-configuration checks ------------------------------------- */

Test(config, non_loopback_needs_allow_anonymous)
{
    expect_file_error("[listener.pub]\nbind = 0.0.0.0\n",
                      ": [listener.pub] bind = 0.0.0.0 is not a loopback address and there is no "
                      "authentication: set allow_anonymous = true in [listener.pub] to accept "
                      "anonymous clients there");
    expect_file_error("[listener.v6]\nbind = ::\n",
                      ": [listener.v6] bind = :: is not a loopback address and there is no "
                      "authentication: set allow_anonymous = true in [listener.v6] to accept "
                      "anonymous clients there");
    /* Mapped IPv4 loopback is not on the list: refused like any other address. */
    struct config cfg;
    char err[512];
    cr_assert_eq(
        load_text(&cfg, "[listener.m]\nbind = ::ffff:127.0.0.1\n", NULL, 0, err, sizeof(err)), -1);

    load_ok(&cfg, "[listener.pub]\nbind = 0.0.0.0\nallow_anonymous = true\n", NULL, 0);
    cr_assert_eq(cfg.listeners[0].allow_anonymous, true);
    load_ok(&cfg, "[listener.lo]\nbind = 127.9.9.9\n[listener.lo6]\nbind = ::1\n", NULL, 0);

    /* The rule applies to listeners created or changed by --set as well. */
    const char *ov[] = {"listener.default.bind=10.0.0.1"};
    cr_assert_eq(load_text(&cfg, LISTENER_OK, ov, 1, err, sizeof(err)), -1);
    const char *ov2[] = {"listener.default.bind=10.0.0.1", "listener.default.allow_anonymous=on"};
    load_ok(&cfg, LISTENER_OK, ov2, 2);
}

Test(config, duplicate_bind_and_port)
{
    expect_file_error("[listener.a]\nport = 1900\n[listener.b]\nport = 1900\n",
                      ": [listener.a] and [listener.b] both bind 127.0.0.1 port 1900");
    /* The same address spelled two ways is still the same. */
    expect_file_error("[listener.a]\nbind = ::1\n[listener.b]\nbind = 0:0::1\n",
                      ": [listener.a] and [listener.b] both bind 0:0::1 port 1883");

    struct config cfg;
    /* Port 0 lets the kernel pick, so two of those never clash. */
    load_ok(&cfg, "[listener.a]\nport = 0\n[listener.b]\nport = 0\n", NULL, 0);
    load_ok(&cfg, "[listener.a]\nport = 1900\n[listener.b]\nport = 1901\n", NULL, 0);
    load_ok(&cfg, "[listener.a]\n[listener.b]\nbind = 127.0.0.2\n", NULL, 0);
    load_ok(&cfg, "[listener.a]\n[listener.b]\nbind = ::1\n", NULL, 0);
}

/* [tenant.default] takes its defaults from [mqtt]/[limits]; [tenant.ID]
 * from [tenant.default]; each section's own keys win. */
Test(config, tenant_settings_resolve_in_layers)
{
    struct config cfg;
    load_ok(&cfg,
            LISTENER_OK "[mqtt]\nmaximum_qos = 1\n[limits]\nmax_subscriptions = 50\n"
                        "max_client_output = 8192\n"
                        "[tenant.acme]\nmax_subscriptions = 5\nmqtt_versions = 5\n"
                        "max_client_output = 4096\n"
                        "[tenant.default]\nmax_topic_levels = 8\nforce_transient = true\n",
            NULL, 0);
    const struct tenant_settings *d = config_tenant_settings(&cfg, "nobody");
    const struct tenant_settings *a = config_tenant_settings(&cfg, "acme");
    cr_assert_not_null(d);
    cr_assert_not_null(a);
    cr_assert_eq(d->max_qos, 1);
    cr_assert_eq(d->max_subscriptions, 50);
    cr_assert_eq(d->max_topic_levels, 8);
    cr_assert_eq(d->force_transient, true);
    cr_assert_eq(d->mqtt_versions, 1u << 3 | 1u << 4 | 1u << 5);
    cr_assert_eq(a->max_subscriptions, 5);
    cr_assert_eq(a->mqtt_versions, 1u << 5);
    cr_assert_eq(a->max_topic_levels, 8, "acme inherits [tenant.default]");
    cr_assert_eq(a->max_qos, 1, "acme inherits [mqtt] through [tenant.default]");
    cr_assert_eq(d->max_client_output, 8192);
    cr_assert_eq(a->max_client_output, 4096);
}

/* [limits] max_topic_length is every tenant's default; [tenant.ID] may
 * set its own, either way. */
Test(config, max_topic_length_per_tenant)
{
    struct config cfg;
    load_ok(&cfg,
            LISTENER_OK "[limits]\nmax_topic_length = 100\n[tenant.acme]\nmax_topic_length = 50\n"
                        "[tenant.big]\nmax_topic_length = 65535\n",
            NULL, 0);
    cr_assert_eq(cfg.max_topic_length, 100);
    cr_assert_eq(config_tenant_settings(&cfg, "nobody")->max_topic_length, 100);
    cr_assert_eq(config_tenant_settings(&cfg, "acme")->max_topic_length, 50);
    cr_assert_eq(config_tenant_settings(&cfg, "big")->max_topic_length, 65535);
}

Test(config, tenant_errors)
{
    struct config cfg;
    char err[256];
    cr_assert_eq(load_text(&cfg, LISTENER_OK "[tenant.a]\nmax_qos = 1\nmax_qos = 2\n", NULL, 0, err,
                           sizeof(err)),
                 -1);
    cr_assert(strstr(err, ":4: [tenant.a] max_qos: duplicate key"), "%s", err);
    cr_assert_eq(
        load_text(&cfg, LISTENER_OK "[tenant.a]\nmqtt_versions = 4\n", NULL, 0, err, sizeof(err)),
        -1);
    cr_assert(strstr(err, "expected a list of 3.1, 3.1.1, 5"), "%s", err);
    cr_assert_eq(
        load_text(&cfg, LISTENER_OK "[tenant.a]\nqueue_drop = random\n", NULL, 0, err, sizeof(err)),
        -1);
    cr_assert(strstr(err, "expected newest or oldest"), "%s", err);
    cr_assert_eq(load_text(&cfg, LISTENER_OK "[tenant.bad/name]\n", NULL, 0, err, sizeof(err)), -1);
    /* The same key in two tenants is no duplicate. */
    load_ok(&cfg, LISTENER_OK "[tenant.a]\nmax_qos = 1\n[tenant.b]\nmax_qos = 0\n", NULL, 0);
    cr_assert_eq(config_tenant_settings(&cfg, "b")->max_qos, 0);
    load_ok(&cfg, LISTENER_OK "[tenant.a]\nqueue_drop = oldest\n", NULL, 0);
    cr_assert(config_tenant_settings(&cfg, "a")->queue_drop_oldest);
    cr_assert(!config_tenant_settings(&cfg, "b")->queue_drop_oldest, "default: newest");
}

/* max_keepalive: [mqtt] gives every tenant's default, [tenant.ID] its own
 * (0 lifts the cap for that tenant); a minimum above the cap is refused. */
Test(config, tenant_max_keepalive)
{
    struct config cfg;
    char err[256];
    load_ok(&cfg,
            LISTENER_OK "[mqtt]\nmax_keepalive = 300\n[tenant.acme]\nmax_keepalive = 30\n"
                        "[tenant.open]\nmax_keepalive = 0\n",
            NULL, 0);
    cr_assert_eq(cfg.max_keepalive, 300);
    cr_assert_eq(config_tenant_settings(&cfg, "nobody")->max_keepalive, 300);
    cr_assert_eq(config_tenant_settings(&cfg, "acme")->max_keepalive, 30);
    cr_assert_eq(config_tenant_settings(&cfg, "open")->max_keepalive, 0);
    /* Unset, no tenant is capped. */
    load_ok(&cfg, LISTENER_OK, NULL, 0);
    cr_assert_eq(config_tenant_settings(&cfg, "nobody")->max_keepalive, 0);
    /* A setting provider names it like the file. */
    struct tenant_settings set = *config_tenant_settings(&cfg, "nobody");
    cr_assert_eq(config_tenant_apply(&set, "max_keepalive", "45", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(set.max_keepalive, 45);
    /* min_keepalive above max_keepalive, however the layers combine. */
    cr_assert_eq(
        load_text(&cfg, LISTENER_OK "[mqtt]\nmax_keepalive = 30\n[tenant.a]\nmin_keepalive = 60\n",
                  NULL, 0, err, sizeof(err)),
        -1);
    cr_assert(strstr(err, "[tenant.a] min_keepalive (60) is above max_keepalive (30)"), "%s", err);
    load_ok(&cfg, LISTENER_OK "[tenant.a]\nmin_keepalive = 60\nmax_keepalive = 60\n", NULL, 0);
    load_ok(&cfg, LISTENER_OK "[tenant.a]\nmin_keepalive = 60\n", NULL, 0); /* no cap */
}

Test(config, plugin_sections_keep_their_keys)
{
    struct config cfg;
    const char *ov[] = {"plugin.auth.extra=yes", "plugin.auth.acme.max_x=2"};
    load_ok(&cfg,
            LISTENER_OK "[plugin.auth]\npath = /x/auth.so\npassword_file = /etc/p\n"
                        "[plugin.ev]\npath = ev.so\n",
            ov, 2);
    cr_assert_eq(cfg.nplugins, 2);
    cr_assert_str_eq(cfg.plugins[0].name, "auth");
    cr_assert_str_eq(cfg.plugins[0].path, "/x/auth.so");
    cr_assert_eq(cfg.plugins[0].nkv, 3);
    cr_assert_str_eq(cfg.plugins[0].kv[2].key, "acme.max_x", "a plugin key may hold dots");
    cr_assert_str_eq(cfg.plugins[0].kv[0].key, "password_file");
    cr_assert_str_eq(cfg.plugins[0].kv[0].value, "/etc/p");
    cr_assert_str_eq(cfg.plugins[0].kv[1].key, "extra");
    char err[256];
    cr_assert_eq(load_text(&cfg, LISTENER_OK "[plugin.x]\nkey = 1\n", NULL, 0, err, sizeof(err)),
                 -1);
    cr_assert(strstr(err, "[plugin.x] has no path"), "%s", err);
    cr_assert_eq(load_text(&cfg, LISTENER_OK "[plugin.x]\npath = a\nk = 1\nk = 2\n", NULL, 0, err,
                           sizeof(err)),
                 -1);
    cr_assert(strstr(err, ":5: [plugin.x] k: duplicate key"), "%s", err);
}

Test(config, metrics_section)
{
    struct config cfg;
    load_ok(&cfg, LISTENER_OK "[metrics]\nenabled = true\nport = 0\nsys_tenant = ops\n", NULL, 0);
    cr_assert_eq(cfg.metrics_enabled, true);
    cr_assert_eq(cfg.metrics_port, 0);
    cr_assert_str_eq(cfg.sys_tenant, "ops");
    cr_assert_str_eq(cfg.metrics_bind, "127.0.0.1");
}

Test(config, long_version_list_is_checked_whole)
{
    /* Found in review: the list was copied into a 64-byte buffer and only
     * the copy checked, so garbage past byte 63 was accepted silently. */
    struct config cfg;
    char err[256];
    const char *text =
        LISTENER_OK "[tenant.a]\nmqtt_versions = "
                    "5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,"
                    "bogus\n";
    cr_assert_eq(load_text(&cfg, text, NULL, 0, err, sizeof(err)), -1, "accepted a bad list");
    cr_assert(strstr(err, ":3: [tenant.a] mqtt_versions: expected a list of 3.1, 3.1.1, 5"), "%s",
              err);
    struct tenant_settings set = {.mqtt_versions = 1u << 4};
    char why[160];
    cr_assert_eq(config_tenant_apply(&set, "mqtt_versions",
                                     "3.1.1,3.1.1,3.1.1,3.1.1,3.1.1,3.1.1,3.1.1,3.1.1,3.1.1,3.1.1,"
                                     "3.1.1,junk",
                                     why, sizeof(why)),
                 -1, "a setting provider's long list is checked whole too");
    cr_assert_eq(set.mqtt_versions, 1u << 4, "unchanged on failure");
    /* Long lists of valid versions, spaces included, still pass. */
    load_ok(&cfg,
            LISTENER_OK "[tenant.a]\nmqtt_versions = 3.1, 3.1.1, 5, 3.1, 3.1.1, 5, 3.1, 3.1.1, 5, "
                        "3.1, 3.1.1, 5, 3.1.1\n",
            NULL, 0);
    cr_assert_eq(config_tenant_settings(&cfg, "a")->mqtt_versions, 1u << 3 | 1u << 4 | 1u << 5);
}

Test(config, empty_sys_tenant_is_refused)
{
    /* Found in review: "sys_tenant =" was accepted and $SYS went to a tenant
     * named "" that no client is in. */
    expect_file_error(LISTENER_OK "[metrics]\nsys_tenant =\n",
                      ":3: [metrics] sys_tenant: expected 1..63 bytes, got ''");
    expect_override_error(LISTENER_OK, "metrics.sys_tenant=",
                          "--set metrics.sys_tenant=: [metrics] sys_tenant: expected 1..63 bytes, "
                          "got ''");
    /* test_auth_method stays optional: empty turns it off. */
    struct config cfg;
    load_ok(&cfg, LISTENER_OK "[mqtt]\ntest_auth_method =\n", NULL, 0);
    cr_assert_str_eq(cfg.test_auth_method, "");
}

Test(config, proxy_protocol_values_and_trusted_ranges)
{
    struct config cfg;
    load_ok(&cfg, LISTENER_OK, NULL, 0);
    cr_assert_eq(cfg.listeners[0].proxy_protocol, CONFIG_PROXY_OFF);
    cr_assert_eq(cfg.listeners[0].proxy_trusted.n, 0);
    static const struct {
        const char *name;
        enum config_proxy want;
    } modes[] = {{"off", CONFIG_PROXY_OFF},
                 {"v1", CONFIG_PROXY_V1},
                 {"v2", CONFIG_PROXY_V2},
                 {"any", CONFIG_PROXY_ANY}};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text),
                 "[listener.p]\nproxy_protocol = %s\nproxy_trusted = 127.0.0.1, 10.0.0.0/8 "
                 "2001:db8::/32,,::1\n",
                 modes[i].name);
        load_ok(&cfg, text, NULL, 0);
        cr_assert_eq(cfg.listeners[0].proxy_protocol, modes[i].want, "%s", modes[i].name);
        const struct config_cidrs *t = &cfg.listeners[0].proxy_trusted;
        cr_assert_eq(t->n, 4);
        cr_assert_eq(t->v[0].bits, 128);
        cr_assert_eq(t->v[1].bits, 96 + 8);
        cr_assert_eq(t->v[2].bits, 32);
        cr_assert_eq(t->v[3].bits, 128);
    }
    /* Off with a list is fine (the list is kept for when it is turned on). */
    load_ok(&cfg, "[listener.p]\nproxy_trusted = 10.0.0.0/8\n", NULL, 0);
}

Test(config, proxy_protocol_errors)
{
    expect_file_error("[listener.p]\nproxy_protocol = v3\n",
                      ":2: [listener.p] proxy_protocol: expected off, v1, v2 or any, got 'v3'");
    expect_file_error("[listener.p]\nproxy_trusted = 10.0.0.0/8, 10.0.0.0/33\n",
                      ":2: [listener.p] proxy_trusted: expected address ranges such as "
                      "10.0.0.0/8 or ::1, got '10.0.0.0/33'");
    expect_file_error("[listener.p]\nproxy_trusted = proxy.example\n",
                      ":2: [listener.p] proxy_trusted: expected address ranges such as "
                      "10.0.0.0/8 or ::1, got 'proxy.example'");
    /* Without a list, any client could claim any address. */
    const char *empty = ": [listener.p] proxy_protocol is on but proxy_trusted is empty: list the "
                        "addresses of the proxies allowed to send PROXY headers";
    expect_file_error("[listener.p]\nproxy_protocol = v1\n", empty);
    expect_file_error("[listener.p]\nproxy_protocol = any\nproxy_trusted = , \n", empty);
    /* The same for a listener turned on by --set. */
    struct config cfg;
    char err[512];
    const char *ov[] = {"listener.default.proxy_protocol=v2"};
    cr_assert_eq(load_text(&cfg, LISTENER_OK, ov, 1, err, sizeof(err)), -1);
    cr_assert(strstr(err, ": [listener.default] proxy_protocol is on but proxy_trusted is empty"),
              "%s", err);
    const char *ov2[] = {"listener.default.proxy_protocol=v2",
                         "listener.default.proxy_trusted=127.0.0.1"};
    load_ok(&cfg, LISTENER_OK, ov2, 2);
}

/* A refused load whose message contains `part`. */
static void expect_error_with(const char *text, const char *arg, const char *part)
{
    struct config cfg;
    char err[512];
    const char *ov[] = {arg};
    cr_assert_eq(load_text(&cfg, text, ov, arg ? 1 : 0, err, sizeof(err)), -1, "accepted:\n%s",
                 text);
    cr_assert(strstr(err, part), "'%s' has no '%s'", err, part);
}

Test(config, admin_section)
{
    struct config cfg;
    load_ok(&cfg, LISTENER_OK, NULL, 0);
    cr_assert_eq(cfg.admin_enabled, false, "off by default");
    cr_assert_str_eq(cfg.admin_bind, "127.0.0.1");
    cr_assert_eq(cfg.admin_port, 9884);
    cr_assert_str_eq(cfg.admin_token_file, "");
    cr_assert_eq(cfg.admin_page_budget, 4096);
    load_ok(&cfg,
            LISTENER_OK "[admin]\nenabled = true\nbind = 0.0.0.0\nport = 0\n"
                        "token_file = /etc/ringmq/admin.tokens\npage_budget = 16\n",
            NULL, 0);
    cr_assert_eq(cfg.admin_page_budget, 16);
    cr_assert_eq(cfg.admin_enabled, true);
    cr_assert_str_eq(cfg.admin_bind, "0.0.0.0");
    cr_assert_eq(cfg.admin_port, 0);
    cr_assert_str_eq(cfg.admin_token_file, "/etc/ringmq/admin.tokens");
    /* Loopback needs no tokens. */
    load_ok(&cfg, LISTENER_OK "[admin]\nenabled = true\nbind = ::1\n", NULL, 0);
    expect_error_with(LISTENER_OK "[admin]\nport = 70000\n", NULL, ":3: [admin] port:");
    expect_error_with(LISTENER_OK "[admin]\nbind = nowhere\n", NULL, ":3: [admin] bind:");
    /* A page must look at something, and not hold a shard for ever. */
    expect_error_with(LISTENER_OK "[admin]\npage_budget = 15\n", NULL, ":3: [admin] page_budget:");
    expect_error_with(LISTENER_OK "[admin]\npage_budget = 1000001\n", NULL,
                      ":3: [admin] page_budget:");
    expect_error_with(LISTENER_OK "[admin]\nsecret = 1\n", NULL,
                      ":3: [admin] unknown key 'secret'");
}

Test(config, admin_off_loopback_needs_tokens)
{
    /* Without tokens every caller is an admin: another host must not be. */
    expect_error_with(LISTENER_OK "[admin]\nenabled = true\nbind = 0.0.0.0\n", NULL,
                      "[admin] bind = 0.0.0.0 is not a loopback address and there is no "
                      "token_file");
    expect_error_with(LISTENER_OK "[admin]\nenabled = true\n", "admin.bind=10.0.0.1",
                      "[admin] bind = 10.0.0.1 is not a loopback address");
    /* Disabled, the bind does not matter. */
    struct config cfg;
    load_ok(&cfg, LISTENER_OK "[admin]\nbind = 0.0.0.0\n", NULL, 0);
}

Test(config, admin_tls_keys)
{
    struct config cfg;
    load_ok(&cfg, LISTENER_OK, NULL, 0);
    cr_assert_str_eq(cfg.admin_tls_cert, "", "plain HTTP by default");
    cr_assert_str_eq(cfg.admin_tls_key, "");
    cr_assert_str_eq(cfg.admin_tls_client_ca, "");
    load_ok(&cfg,
            LISTENER_OK "[admin]\nenabled = true\ntls_cert = /c.pem\ntls_key = /k.pem\n"
                        "tls_client_ca = /ca.pem\n",
            NULL, 0);
    cr_assert_str_eq(cfg.admin_tls_cert, "/c.pem");
    cr_assert_str_eq(cfg.admin_tls_key, "/k.pem");
    cr_assert_str_eq(cfg.admin_tls_client_ca, "/ca.pem");
    /* Both or neither; client certificates only over TLS. Checked whether
     * the API is on or not, as every other key is. */
    expect_error_with(LISTENER_OK "[admin]\ntls_cert = /c.pem\n", NULL,
                      "[admin] tls_cert and tls_key go together");
    expect_error_with(LISTENER_OK "[admin]\n", "admin.tls_key=/k.pem",
                      "[admin] tls_cert and tls_key go together");
    expect_error_with(LISTENER_OK "[admin]\ntls_client_ca = /ca.pem\n", NULL,
                      "[admin] tls_client_ca asks callers for a certificate over TLS");
    /* TLS is no token: another host still needs a token file. */
    expect_error_with(LISTENER_OK "[admin]\nenabled = true\nbind = 0.0.0.0\ntls_cert = /c.pem\n"
                                  "tls_key = /k.pem\ntls_client_ca = /ca.pem\n",
                      NULL,
                      "[admin] bind = 0.0.0.0 is not a loopback address and there is no "
                      "token_file");
}

/* ---- live reload: config_reconcile ---- */

static char changes[16][128];
static int nchanges;

static void note_change(void *arg, const struct config_change *ch)
{
    (void)arg;
    if (nchanges < 16)
        snprintf(changes[nchanges++], sizeof(changes[0]), "[%s] %s %s%s", ch->section, ch->key,
                 ch->what, ch->live ? "" : " (restart)");
}

static bool changed(const char *line)
{
    for (int i = 0; i < nchanges; i++)
        if (!strcmp(changes[i], line))
            return true;
    return false;
}

static const char reload_base[] =
    "[listener.default]\nport = 1883\n[limits]\nmax_connections = 10\n"
    "[tenant.acme]\nmax_qos = 1\n";

static void reconcile(const char *before, const char *after, size_t *live, struct config *next)
{
    static struct config cur;
    char err[512];
    cr_assert_eq(load_text(&cur, before, NULL, 0, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(load_text(next, after, NULL, 0, err, sizeof(err)), 0, "%s", err);
    nchanges = 0;
    *live = config_reconcile(&cur, next, note_change, NULL, NULL);
}

/* The same file: nothing to report. */
Test(config, reload_of_the_same_file_changes_nothing)
{
    static struct config next;
    size_t live;
    reconcile(reload_base, reload_base, &live, &next);
    cr_assert_eq(nchanges, 0, "%s", changes[0]);
    cr_assert_eq(live, 0);
}

/* [limits], [log], tenant settings and listeners are taken live and stay
 * in next; [server] keys need a restart: reported, and next keeps the
 * values in force. */
Test(config, reload_takes_live_keys_and_keeps_restart_ones)
{
    static struct config next;
    size_t live;
    reconcile(reload_base,
              "[server]\nshards = 3\n[listener.default]\nport = 1883\n[listener.tls]\nport = 8883\n"
              "[limits]\nmax_connections = 20\n[log]\nlevel = debug\n"
              "[tenant.acme]\nmax_qos = 0\n[tenant.beta]\n",
              &live, &next);
    cr_assert(changed("[limits] max_connections changed"), "%s", changes[0]);
    cr_assert(changed("[log] level changed"));
    cr_assert(changed("[tenant.acme] max_qos changed"));
    cr_assert(changed("[tenant.beta] * added"));
    cr_assert(changed("[server] shards changed (restart)"));
    cr_assert(changed("[listener.tls] * added"));
    cr_assert_eq(live, 5);
    cr_assert_eq(next.max_connections, 20, "live: the new value");
    cr_assert_eq(next.log_level, LOG_LEVEL_DEBUG);
    cr_assert_eq(next.shards, 0, "restart: the value in force");
    cr_assert_eq(next.nlisteners, 2, "listeners as the file has them");
    cr_assert_str_eq(next.listeners[1].name, "tls");
}

/* A listener's key, a removed listener, a removed tenant and a changed
 * key of a plugin that does not take keys live (restart, key by key). */
Test(config, reload_reports_listener_keys_removed_tenants_and_plugins)
{
    static struct config next;
    size_t live;
    reconcile("[listener.default]\nport = 1883\n[listener.old]\nport = 1999\n[tenant.acme]\n"
              "[plugin.a]\npath = /x.so\nk = 1\n",
              "[listener.default]\nport = 1884\n[plugin.a]\npath = /x.so\nk = 2\n", &live, &next);
    cr_assert(changed("[listener.default] port changed"), "%s", changes[0]);
    cr_assert(changed("[listener.old] * removed"));
    cr_assert(changed("[tenant.acme] * removed"));
    cr_assert(changed("[plugin.a] k changed (restart)"));
    cr_assert_eq(live, 3);
    cr_assert_eq(next.nlisteners, 1);
    cr_assert_eq(next.listeners[0].port, 1884, "listeners: the new file's");
    cr_assert_str_eq(next.plugins[0].kv[0].value, "1");
}

static char from_to[2][CONFIG_VALUE_TEXT_MAX];

static void note_values(void *arg, const struct config_change *ch)
{
    (void)arg;
    if (!strcmp(ch->key, (const char *)arg ? (const char *)arg : ch->key)) {
        snprintf(from_to[0], sizeof(from_to[0]), "%s", ch->from ? ch->from : "(null)");
        snprintf(from_to[1], sizeof(from_to[1]), "%s", ch->to ? ch->to : "(null)");
    }
}

static bool plugin_a_live(void *arg, const char *name)
{
    (void)arg;
    return !strcmp(name, "a");
}

/* A plugin that takes keys live (plugin_live): its changed, added and
 * removed keys are live and stay in next; another plugin's keys, a changed
 * path, an added and a removed plugin need a restart and keep cur's. */
Test(config, reload_plugin_keys_live_when_the_plugin_takes_them)
{
    static struct config cur, next;
    char err[512];
    cr_assert_eq(load_text(&cur,
                           "[listener.default]\n[plugin.a]\npath = /a.so\nk = 1\nold = x\n"
                           "[plugin.b]\npath = /b.so\nk = 1\n[plugin.c]\npath = /c.so\n"
                           "[plugin.d]\npath = /d.so\n",
                           NULL, 0, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(load_text(&next,
                           "[listener.default]\n[plugin.a]\npath = /a.so\nk = 2\nnew = y\n"
                           "[plugin.b]\npath = /b.so\nk = 2\n[plugin.c]\npath = /c2.so\n"
                           "[plugin.e]\npath = /e.so\n",
                           NULL, 0, err, sizeof(err)),
                 0, "%s", err);
    nchanges = 0;
    size_t live = config_reconcile(&cur, &next, note_change, plugin_a_live, NULL);
    cr_assert(changed("[plugin.a] k changed"), "%s", changes[0]);
    cr_assert(changed("[plugin.a] new added"));
    cr_assert(changed("[plugin.a] old removed"));
    cr_assert(changed("[plugin.b] k changed (restart)"));
    cr_assert(changed("[plugin.c] * changed (restart)"));
    cr_assert(changed("[plugin.e] * changed (restart)"), "d renamed e at the same place");
    cr_assert_eq(nchanges, 6);
    cr_assert_eq(live, 3);
    cr_assert_eq(next.nplugins, 4);
    cr_assert_str_eq(next.plugins[0].kv[0].value, "2", "a: the new keys");
    cr_assert_str_eq(next.plugins[0].kv[1].key, "new");
    cr_assert_str_eq(next.plugins[1].kv[0].value, "1", "b: the keys in force");
    cr_assert_str_eq(next.plugins[2].path, "/c.so", "c: the path in force");
    cr_assert_str_eq(next.plugins[3].name, "d", "d: still loaded");
}

/* Plugin values are not reported: a key may be a secret. */
Test(config, reload_plugin_keys_reported_without_values)
{
    static struct config cur, next;
    char err[512];
    cr_assert_eq(load_text(&cur, "[listener.default]\n[plugin.a]\npath = /a.so\nk = old\n", NULL, 0,
                           err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(load_text(&next, "[listener.default]\n[plugin.a]\npath = /a.so\nk = new\n", NULL,
                           0, err, sizeof(err)),
                 0, "%s", err);
    from_to[0][0] = from_to[1][0] = 0;
    cr_assert_eq(config_reconcile(&cur, &next, note_values, plugin_a_live, (void *)"k"), 1);
    cr_assert_str_eq(from_to[0], "(null)");
    cr_assert_str_eq(from_to[1], "(null)");
}

/* Each change carries its old and new value as the file writes them. */
Test(config, reload_reports_values_as_text)
{
    static struct config cur, next;
    char err[512];
    struct {
        const char *key, *before, *after, *from, *to;
    } cases[] = {
        {"max_connections", "[limits]\nmax_connections = 10\n", "[limits]\nmax_connections = 20\n",
         "10", "20"},
        {"level", "[log]\nlevel = info\n", "[log]\nlevel = debug\n", "info", "debug"},
        {"retain_available", "[mqtt]\nretain_available = true\n",
         "[mqtt]\nretain_available = false\n", "true", "false"},
        {"max_queued_bytes", "[limits]\nmax_queued_bytes = 1\n",
         "[limits]\nmax_queued_bytes = 17179869184\n", "1", "17179869184"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char before[256], after[256];
        snprintf(before, sizeof(before), "[listener.default]\n%s", cases[i].before);
        snprintf(after, sizeof(after), "[listener.default]\n%s", cases[i].after);
        cr_assert_eq(load_text(&cur, before, NULL, 0, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(load_text(&next, after, NULL, 0, err, sizeof(err)), 0, "%s", err);
        from_to[0][0] = from_to[1][0] = 0;
        cr_assert_geq(config_reconcile(&cur, &next, note_values, NULL, (void *)cases[i].key), 1);
        cr_assert_str_eq(from_to[0], cases[i].from, "%s", cases[i].key);
        cr_assert_str_eq(from_to[1], cases[i].to, "%s", cases[i].key);
    }
}

/* config_listener_same: by name, every key, and the sni.* names. */
Test(config, listener_same_compares_keys_and_sni)
{
    static struct config a, b;
    char err[512];
    const char *base = "[listener.default]\nport = 1883\n[listener.x]\nport = 1884\n";
    cr_assert_eq(load_text(&a, base, NULL, 0, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(load_text(&b, "[listener.x]\nport = 1884\n[listener.default]\nport = 1883\n", NULL,
                           0, err, sizeof(err)),
                 0, "%s", err);
    cr_assert(config_listener_same(&a, 0, &b, 1), "the order does not matter");
    cr_assert(!config_listener_same(&a, 0, &b, 0), "another name");
    cr_assert_eq(
        load_text(&b, "[listener.default]\nport = 1883\nbacklog = 10\n", NULL, 0, err, sizeof(err)),
        0, "%s", err);
    cr_assert(!config_listener_same(&a, 0, &b, 0), "a key changed");
}

/* ---- every error of a file (config_load_all) ---------------------------- */

/* The errors config_load_all handed over, in order. */
struct error_list {
    char text[CONFIG_MAX_ERRORS + 1][512];
    size_t n;
};

static void collect(void *arg, const char *text)
{
    struct error_list *l = arg;
    cr_assert_lt(l->n, CONFIG_MAX_ERRORS, "more than CONFIG_MAX_ERRORS handed over");
    cr_assert_null(strchr(text, '\n'));
    snprintf(l->text[l->n++], sizeof(l->text[0]), "%s", text);
}

/* Load text expecting failure; the errors into *l, their count returned. */
static size_t load_all_errors(const char *text, const char *const *ov, size_t n,
                              struct error_list *l)
{
    struct config cfg;
    memset(&cfg, 0xa5, sizeof(cfg));
    memset(l, 0, sizeof(*l));
    size_t nerrors = 0;
    int rc = config_load_all(&cfg, write_tmp(text), ov, n, collect, l, &nerrors);
    cr_assert_eq(rc, -EINVAL, "expected failure for:\n%s", text);
    cr_assert_eq(((unsigned char *)&cfg)[0], 0xa5, "*cfg written on failure");
    return nerrors;
}

static void expect_nth(const struct error_list *l, size_t i, const char *suffix)
{
    char want[512];
    snprintf(want, sizeof(want), "%s%s", tmp_path, suffix);
    cr_assert_lt(i, l->n);
    cr_assert_str_eq(l->text[i], want);
}

/* Exactly the errors "TMPFILE<suffix>" of `suffixes` (NULL-terminated), in order. */
static void expect_errors(const struct error_list *l, size_t nerrors, const char *const *suffixes)
{
    size_t n = 0;
    while (suffixes[n])
        n++;
    cr_assert_eq(nerrors, n);
    cr_assert_eq(l->n, n);
    for (size_t i = 0; i < n; i++)
        expect_nth(l, i, suffixes[i]);
}

Test(config, every_error_of_a_file_with_its_line)
{
    struct error_list l;
    size_t n = load_all_errors("[server]\n"
                               "shards = x\n"         /* 2 */
                               "[listener.a]\n"       /* 3 */
                               "port = 99999\n"       /* 4 */
                               "bogus line\n"         /* 5 */
                               "[limits]\n"           /* 6 */
                               "max_inflight = abc\n" /* 7 */
                               "nokey = 1\n"          /* 8 */
                               "[mqtt]\n"             /* 9 */
                               "maximum_qos = 3\n"    /* 10 */
                               "maximum_qos = 1\n"    /* 11: the refused one set nothing */
                               "[log]\n"              /* 12 */
                               "level = loud\n",      /* 13 */
                               NULL, 0, &l);
    expect_errors(&l, n,
                  (const char *const[]){
                      ":2: [server] shards: expected auto or an integer 1..64, got 'x'",
                      ":4: [listener.a] port: expected a port 0..65535, got '99999'",
                      ":5: expected [section] or key = value",
                      ":7: [limits] max_inflight: expected an integer 1..65535, got 'abc'",
                      ":8: [limits] unknown key 'nokey'",
                      ":10: [mqtt] maximum_qos: expected an integer 0..2, got '3'",
                      ":13: [log] level: expected error, warning, info or debug, got 'loud'",
                      NULL});
}

/* A section whose header is refused leaves its keys out: they would each
 * be one more "unknown key" of the same mistake. The sections after it
 * are read. */
Test(config, refused_section_skips_its_keys_and_reading_goes_on)
{
    struct error_list l;
    size_t n = load_all_errors(LISTENER_OK "[nosuch]\n"         /* 2 */
                                           "a = 1\n"            /* 3 */
                                           "b = 2\n"            /* 4 */
                                           "[limits\n"          /* 5 */
                                           "c = 3\n"            /* 6 */
                                           "[limits]\n"         /* 7 */
                                           "max_inflight = 0\n" /* 8 */
                                           "key outside\n"      /* 9 */
                                           "[log] x\n",         /* 10 */
                               NULL, 0, &l);
    expect_errors(
        &l, n,
        (const char *const[]){":2: unknown section [nosuch]", ":5: missing ']' in section header",
                              ":8: [limits] max_inflight: expected an integer 1..65535, got '0'",
                              ":9: expected [section] or key = value",
                              ":10: unexpected text after ']'", NULL});
}

/* Keys before any section, an over-long line, a duplicate: each one line
 * of its own, and the overrides' errors after the file's. */
Test(config, line_errors_then_override_errors)
{
    char text[600];
    char long_value[300];
    memset(long_value, 'x', sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = '\0';
    snprintf(text, sizeof(text),
             "early = 1\n"     /* 1 */
             LISTENER_OK       /* 2 */
             "port = 1\n"      /* 3 */
             "port = 2\n"      /* 4 */
             "ws_path = %s\n", /* 5 */
             long_value);
    const char *ov[] = {"limits.nokey=1", "listener.default.bind=nowhere"};
    struct error_list l;
    size_t n = load_all_errors(text, ov, 2, &l);
    cr_assert_eq(n, 5);
    expect_nth(&l, 0, ":1: key 'early' outside any [section]");
    expect_nth(&l, 1, ":4: [listener.default] port: duplicate key (first set on line 3)");
    expect_nth(&l, 2, ":5: line longer than 197 characters");
    cr_assert_str_eq(l.text[3], "--set limits.nokey=1: [limits] unknown key 'nokey'");
    cr_assert_str_eq(l.text[4],
                     "--set listener.default.bind=nowhere: [listener.default] bind: expected an "
                     "IPv4 or IPv6 address literal, got 'nowhere'");
}

/* The checks of the whole report every rule broken, and run only when the
 * lines were all taken (a refused line leaves a part missing). */
Test(config, whole_config_checks_report_each_rule_broken)
{
    struct error_list l;
    size_t n = load_all_errors("[listener.a]\nport = 1884\n"
                               "[listener.b]\nport = 1884\n"
                               "[listener.c]\ntransport = tls\n" /* 6 */
                               "[admin]\ntls_cert = /x.pem\n",
                               NULL, 0, &l);
    cr_assert_eq(n, 3);
    expect_nth(&l, 0, ": [admin] tls_cert and tls_key go together: set both for HTTPS");
    expect_nth(&l, 1, ": [listener.a] and [listener.b] both bind 127.0.0.1 port 1884");
    expect_nth(&l, 2, ":6: [listener.c] transport = tls needs tls_cert and tls_key");

    n = load_all_errors("[listener.c]\ntransport = tls\nport = x\n", NULL, 0, &l);
    cr_assert_eq(n, 1, "the TLS check ran after a refused line: %s", l.text[1]);
    expect_nth(&l, 0, ":3: [listener.c] port: expected a port 0..65535, got 'x'");
}

/* At most CONFIG_MAX_ERRORS are handed over; the rest are counted. */
Test(config, errors_past_the_cap_are_counted)
{
    static char text[64 * (CONFIG_MAX_ERRORS + 8)];
    size_t off = (size_t)snprintf(text, sizeof(text), "[limits]\n");
    for (int i = 0; i < CONFIG_MAX_ERRORS + 8; i++)
        off += (size_t)snprintf(text + off, sizeof(text) - off, "nokey%d = 1\n", i);
    struct error_list l;
    size_t n = load_all_errors(text, NULL, 0, &l);
    cr_assert_eq(n, CONFIG_MAX_ERRORS + 8);
    cr_assert_eq(l.n, CONFIG_MAX_ERRORS);
    expect_nth(&l, CONFIG_MAX_ERRORS - 1, ":33: [limits] unknown key 'nokey31'");
}

/* config_load keeps the first error only, as before. */
Test(config, config_load_keeps_the_first_error)
{
    expect_file_error(LISTENER_OK "[limits]\nmax_inflight = a\nmax_connections = b\n",
                      ":3: [limits] max_inflight: expected an integer 1..65535, got 'a'");
}
