/*
 * config: loads the broker's INI file with inih, then the --set overrides,
 * then checks the result as a whole.
 *
 * Every key is one row of `directives` below (section kind, key, parser,
 * offset into struct config or struct config_listener, bounds), nginx style:
 * adding a key is adding a row, a default in config_defaults() and a
 * documented line in conf/ringmq.ini. Nothing here is global; a load builds a
 * private struct config and copies it out only when everything succeeded, so
 * a failed load never leaves a half-built configuration behind.
 *
 * Runs on the main thread at start-up, and on the thread that reloads (the
 * result is read-only after). It never logs: every error is one line handed
 * to the caller, and a load goes on past an error to find the others.
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "config/parse.h"

/* MQTT's largest Remaining Length (268435455) plus the 5-byte fixed header. */
#define CONFIG_PACKET_SIZE_MAX 268435460u

#define SERVER(key, fn, member, lo, hi)                                                            \
    {                                                                                              \
        CONFIG_SCOPE_SERVER, key, fn, offsetof(struct config, member), lo, hi,                     \
            sizeof(((struct config *)0)->member)                                                   \
    }
#define LIMITS(key, fn, member, lo, hi)                                                            \
    {                                                                                              \
        CONFIG_SCOPE_LIMITS, key, fn, offsetof(struct config, member), lo, hi,                     \
            sizeof(((struct config *)0)->member)                                                   \
    }
#define LOG(key, fn, member, lo, hi)                                                               \
    {                                                                                              \
        CONFIG_SCOPE_LOG, key, fn, offsetof(struct config, member), lo, hi,                        \
            sizeof(((struct config *)0)->member)                                                   \
    }
#define MQTT(key, fn, member, lo, hi)                                                              \
    {                                                                                              \
        CONFIG_SCOPE_MQTT, key, fn, offsetof(struct config, member), lo, hi,                       \
            sizeof(((struct config *)0)->member)                                                   \
    }
#define METRICS(key, fn, member, lo, hi)                                                           \
    {                                                                                              \
        CONFIG_SCOPE_METRICS, key, fn, offsetof(struct config, member), lo, hi,                    \
            sizeof(((struct config *)0)->member)                                                   \
    }
#define ADMIN(key, fn, member, lo, hi)                                                             \
    {                                                                                              \
        CONFIG_SCOPE_ADMIN, key, fn, offsetof(struct config, member), lo, hi,                      \
            sizeof(((struct config *)0)->member)                                                   \
    }
#define TENANT(key, fn, member, lo, hi)                                                            \
    {                                                                                              \
        CONFIG_SCOPE_TENANT, key, fn, offsetof(struct tenant_settings, member), lo, hi,            \
            sizeof(((struct tenant_settings *)0)->member)                                          \
    }
#define PERSIST(key, fn, member, lo, hi)                                                           \
    {                                                                                              \
        CONFIG_SCOPE_PERSIST, key, fn, offsetof(struct config, member), lo, hi,                    \
            sizeof(((struct config *)0)->member)                                                   \
    }
#define LISTENER(key, fn, member, lo, hi)                                                          \
    {                                                                                              \
        CONFIG_SCOPE_LISTENER, key, fn, offsetof(struct config_listener, member), lo, hi,          \
            sizeof(((struct config_listener *)0)->member)                                          \
    }

/* Every key the broker knows. conf/ringmq.ini must list each of them. */
static const struct directive directives[] = {
    SERVER("shards", parse_shards, shards, 1, CONFIG_MAX_SHARDS),
    SERVER("cpu_affinity", parse_affinity, cpu_affinity, 0, 0),
    SERVER("wills_on_shutdown", parse_bool, wills_on_shutdown, 0, 0),
    SERVER("recv_buffer_size", parse_u32, recv_buffer_size, 1024, 1048576),
    SERVER("recv_buffers", parse_pow2_u32, recv_buffers, 1, 32768),
    SERVER("plugin_timeout_ms", parse_u32, plugin_timeout_ms, 10, 600000),

    LISTENER("bind", parse_address, bind, 0, sizeof(((struct config_listener *)0)->bind)),
    LISTENER("port", parse_port, port, 0, 65535),
    LISTENER("allow_anonymous", parse_bool, allow_anonymous, 0, 0),
    LISTENER("backlog", parse_u32, backlog, 1, 65535),
    LISTENER("send_buffer", parse_u32, send_buffer, 0, 1u << 30),
    LISTENER("transport", parse_transport, transport, 0, 0),
    LISTENER("ws_path", parse_http_path, ws_path, 1,
             sizeof(((struct config_listener *)0)->ws_path)),
    LISTENER("ws_allowed_origins", parse_string, ws_allowed_origins, 0,
             sizeof(((struct config_listener *)0)->ws_allowed_origins)),
    LISTENER("ws_max_frame", parse_u32, ws_max_frame, 128, 1u << 28),
    LISTENER("proxy_protocol", parse_proxy, proxy_protocol, 0, 0),
    LISTENER("proxy_trusted", parse_cidrs, proxy_trusted, 0, 0),
    LISTENER("tls_cert", parse_string, tls_cert, 0, CONFIG_PATH_MAX),
    LISTENER("tls_key", parse_string, tls_key, 0, CONFIG_PATH_MAX),
    LISTENER("tls_ca", parse_string, tls_ca, 0, CONFIG_PATH_MAX),
    LISTENER("tls_crl", parse_string, tls_crl, 0, CONFIG_PATH_MAX),
    LISTENER("tls_verify_client", parse_tls_verify, tls_verify_client, 0, 0),
    LISTENER("tls_min_version", parse_tls_version, tls_min_version, 0, 0),
    LISTENER("tls_ciphers", parse_string, tls_ciphers, 0,
             sizeof(((struct config_listener *)0)->tls_ciphers)),
    LISTENER("tls_ciphersuites", parse_string, tls_ciphersuites, 0,
             sizeof(((struct config_listener *)0)->tls_ciphersuites)),
    LISTENER("tls_handshake_timeout", parse_u32, tls_handshake_timeout, 1, 3600),
    LISTENER("tls_resumption", parse_bool, tls_resumption, 0, 0),

    LIMITS("max_packet_size", parse_u32, max_packet_size, 16, CONFIG_PACKET_SIZE_MAX),
    LIMITS("max_connections", parse_u32, max_connections, 0, 100000000),
    LIMITS("max_pending_connections", parse_u32, max_pending_connections, 1, 100000000),
    LIMITS("connect_timeout", parse_u32, connect_timeout, 1, 3600),
    LIMITS("max_connect_size", parse_u32, max_connect_size, 128, CONFIG_PACKET_SIZE_MAX),
    LIMITS("max_inflight", parse_u32, max_inflight, 1, 65535),
    LIMITS("max_queued_messages", parse_u32, max_queued_messages, 0, 10000000),
    LIMITS("max_queued_bytes", parse_u64, max_queued_bytes, 0, UINT64_C(1) << 40),
    /* MQTT-3.1.3-5: ids of 1..23 bytes must be accepted. */
    LIMITS("max_client_id_len", parse_u32, max_client_id_len, 23, 65535),
    LIMITS("max_topic_length", parse_u32, max_topic_length, 1, 65535),
    LIMITS("max_subscriptions", parse_u32, max_subscriptions, 1, 10000000),
    LIMITS("max_sessions", parse_u32, max_sessions, 0, UINT32_MAX),
    LIMITS("max_retained_messages", parse_u32, max_retained_messages, 0, UINT32_MAX),
    LIMITS("max_retained_bytes", parse_u64, max_retained_bytes, 0, UINT64_C(1) << 40),
    LIMITS("max_client_output", parse_u32, max_client_output, 4096, 1u << 30),
    LIMITS("max_slow_output_total", parse_u64, max_slow_output_total, 0, UINT64_C(1) << 40),

    MQTT("receive_maximum", parse_u32, receive_maximum, 1, 65535),
    MQTT("topic_alias_maximum", parse_u32, topic_alias_maximum, 0, 65535),
    MQTT("maximum_qos", parse_u32, maximum_qos, 0, 2),
    MQTT("retain_available", parse_bool, retain_available, 0, 0),
    MQTT("wildcard_subscriptions", parse_bool, wildcard_subscriptions, 0, 0),
    MQTT("subscription_identifiers", parse_bool, subscription_identifiers, 0, 0),
    MQTT("shared_subscriptions", parse_bool, shared_subscriptions, 0, 0),
    MQTT("server_keepalive", parse_u32, server_keepalive, 0, 65535),
    MQTT("max_keepalive", parse_u32, max_keepalive, 0, 65535),
    MQTT("max_session_expiry", parse_u32, max_session_expiry, 0, UINT32_MAX),
    MQTT("validate_payload_format", parse_bool, validate_payload_format, 0, 0),
    MQTT("test_auth_method", parse_string, test_auth_method, 0,
         sizeof(((struct config *)0)->test_auth_method)),

    METRICS("enabled", parse_bool, metrics_enabled, 0, 0),
    METRICS("bind", parse_address, metrics_bind, 0, sizeof(((struct config *)0)->metrics_bind)),
    METRICS("port", parse_port, metrics_port, 0, 65535),
    METRICS("sys_topics", parse_bool, sys_topics, 0, 0),
    METRICS("sys_interval", parse_u32, sys_interval, 1, 3600),
    METRICS("sys_tenant", parse_string, sys_tenant, 1, CONFIG_TENANT_NAME_MAX),

    ADMIN("enabled", parse_bool, admin_enabled, 0, 0),
    ADMIN("bind", parse_address, admin_bind, 0, sizeof(((struct config *)0)->admin_bind)),
    ADMIN("port", parse_port, admin_port, 0, 65535),
    ADMIN("token_file", parse_string, admin_token_file, 0, CONFIG_PATH_MAX),
    ADMIN("tls_cert", parse_string, admin_tls_cert, 0, CONFIG_PATH_MAX),
    ADMIN("tls_key", parse_string, admin_tls_key, 0, CONFIG_PATH_MAX),
    ADMIN("tls_client_ca", parse_string, admin_tls_client_ca, 0, CONFIG_PATH_MAX),
    ADMIN("page_budget", parse_u32, admin_page_budget, 16, 1000000),

    PERSIST("enabled", parse_bool, persist_enabled, 0, 0),
    PERSIST("dir", parse_string, persist_dir, 1, CONFIG_PATH_MAX),
    PERSIST("fsync", parse_fsync, persist_fsync, 0, 0),
    PERSIST("fsync_interval_ms", parse_u32, persist_fsync_interval_ms, 1, 3600000),
    PERSIST("max_log_bytes", parse_u64, persist_max_log_bytes, 1u << 20, UINT64_C(1) << 40),

    TENANT("mqtt_versions", parse_versions, mqtt_versions, 0, 0),
    TENANT("max_qos", parse_u32, max_qos, 0, 2),
    TENANT("retain_available", parse_bool, retain_available, 0, 0),
    TENANT("wildcard_subscriptions", parse_bool, wildcard_subscriptions, 0, 0),
    TENANT("shared_subscriptions", parse_bool, shared_subscriptions, 0, 0),
    TENANT("subscription_identifiers", parse_bool, subscription_identifiers, 0, 0),
    TENANT("max_topic_length", parse_u32, max_topic_length, 1, 65535),
    TENANT("max_topic_levels", parse_u32, max_topic_levels, 1, 65535),
    TENANT("topic_alias_maximum", parse_u32, topic_alias_maximum, 0, 65535),
    TENANT("receive_maximum", parse_u32, receive_maximum, 1, 65535),
    TENANT("max_packet_size", parse_u32, max_packet_size, 16, CONFIG_PACKET_SIZE_MAX),
    TENANT("max_session_expiry", parse_u32, max_session_expiry, 0, UINT32_MAX),
    TENANT("max_queued_messages", parse_u32, max_queued_messages, 0, 10000000),
    TENANT("max_queued_bytes", parse_u64, max_queued_bytes, 0, UINT64_C(1) << 40),
    TENANT("queue_drop", parse_queue_drop, queue_drop_oldest, 0, 0),
    TENANT("max_subscriptions", parse_u32, max_subscriptions, 1, 10000000),
    TENANT("max_will_size", parse_u32, max_will_size, 0, CONFIG_PACKET_SIZE_MAX),
    TENANT("max_sessions", parse_u32, max_sessions, 0, UINT32_MAX),
    TENANT("max_retained_messages", parse_u32, max_retained_messages, 0, UINT32_MAX),
    TENANT("max_retained_bytes", parse_u64, max_retained_bytes, 0, UINT64_C(1) << 40),
    TENANT("max_client_output", parse_u32, max_client_output, 4096, 1u << 30),
    TENANT("min_keepalive", parse_u32, min_keepalive, 0, 65535),
    TENANT("max_keepalive", parse_u32, max_keepalive, 0, 65535),
    TENANT("force_transient", parse_bool, force_transient, 0, 0),
    TENANT("publish_rate", parse_u32, publish_rate, 0, 100000000),
    TENANT("publish_bandwidth", parse_u32, publish_bandwidth, 0, UINT32_MAX),
    TENANT("validate_payload_format", parse_bool, validate_payload_format, 0, 0),

    LOG("level", parse_log_level, log_level, 0, 0),
    LOG("format", parse_log_format, log_format, 0, 0),
    LOG("target", parse_log_target, log_target, 0, 0),
};

#define NDIRECTIVES ARRAY_LEN(directives)

const struct directive *config_directives(size_t *n)
{
    *n = NDIRECTIVES;
    return directives;
}

/* ---- sections and listeners ------------------------------------------ */

/* State of one config_load: the configuration being built, the cursor,
 * and where its errors go. */
struct load_state {
    struct config cfg;
    const char *path;
    enum config_scope scope; /* section of the lines being read */
    uint32_t listener;       /* index into cfg.listeners when scope is LISTENER */
    bool skip;               /* the section's header was refused: its keys are not read */
    int lineno;              /* line the reader handed to inih last */
    FILE *file;
    config_error_fn fn; /* each error's text, the first CONFIG_MAX_ERRORS of them */
    void *arg;
    size_t nerrors; /* found so far, reported or not */
    /* Line where each directive was set, to refuse a key repeated in a section. */
    int seen_global[NDIRECTIVES];
    int seen_listener[CONFIG_MAX_LISTENERS][NDIRECTIVES];
};

/*
 * One error: counted, and handed to st->fn while there have been at most
 * CONFIG_MAX_ERRORS. Control characters (a newline in a --set value, say)
 * become '?' so a caller can always print the text as exactly one line.
 */
static void load_error(struct load_state *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void load_error(struct load_state *st, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    if (++st->nerrors > CONFIG_MAX_ERRORS || !st->fn)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    for (char *p = text; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    }
    st->fn(st->arg, text);
}

static bool listener_name_valid(const char *name, size_t len)
{
    if (len == 0 || len >= CONFIG_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static void listener_defaults(struct config_listener *l, const char *name, size_t len)
{
    memset(l, 0, sizeof(*l));
    memcpy(l->name, name, len);
    l->name[len] = '\0';
    snprintf(l->bind, sizeof(l->bind), "127.0.0.1");
    l->port = 1883;
    l->allow_anonymous = false;
    l->backlog = 4096;
    l->send_buffer = 65536;
    l->transport = CONFIG_TRANSPORT_TCP;
    snprintf(l->ws_path, sizeof(l->ws_path), "/mqtt");
    l->ws_max_frame = (1u << 20) + (64u << 10);
    l->tls_verify_client = CONFIG_TLS_VERIFY_NONE;
    l->tls_min_version = 12;
    l->tls_handshake_timeout = 10;
    l->tls_resumption = true;
}

/*
 * Find listener `name` (len bytes, not terminated), or create it with the
 * listener defaults. Returns its index, or -1 with the reason in why.
 */
static int listener_find_or_create(struct config *cfg, const char *name, size_t len, char *why,
                                   size_t whylen)
{
    if (!listener_name_valid(name, len)) {
        snprintf(why, whylen, "listener name '%.*s' must be 1..%d characters of A-Z a-z 0-9 _ -",
                 (int)len, name, CONFIG_NAME_MAX - 1);
        return -1;
    }
    for (uint32_t i = 0; i < cfg->nlisteners; i++) {
        if (strlen(cfg->listeners[i].name) == len && memcmp(cfg->listeners[i].name, name, len) == 0)
            return (int)i;
    }
    if (cfg->nlisteners == CONFIG_MAX_LISTENERS) {
        snprintf(why, whylen, "too many listeners (at most %d)", CONFIG_MAX_LISTENERS);
        return -1;
    }
    listener_defaults(&cfg->listeners[cfg->nlisteners], name, len);
    return (int)cfg->nlisteners++;
}

static bool tenant_name_valid(const char *name, size_t len)
{
    if (len == 0 || len >= CONFIG_TENANT_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

static int tenant_find_or_create(struct config *cfg, const char *name, size_t len, char *why,
                                 size_t whylen)
{
    if (!tenant_name_valid(name, len)) {
        snprintf(why, whylen, "tenant name '%.*s' must be 1..%d characters of A-Z a-z 0-9 _ - .",
                 (int)len, name, CONFIG_TENANT_NAME_MAX - 1);
        return -1;
    }
    for (uint32_t i = 0; i < cfg->ntenants; i++)
        if (strlen(cfg->tenants[i].name) == len && memcmp(cfg->tenants[i].name, name, len) == 0)
            return (int)i;
    if (cfg->ntenants == CONFIG_MAX_TENANTS) {
        snprintf(why, whylen, "too many tenant sections (at most %d)", CONFIG_MAX_TENANTS);
        return -1;
    }
    struct config_tenant *t = &cfg->tenants[cfg->ntenants];
    memset(t, 0, sizeof(*t));
    memcpy(t->name, name, len);
    return (int)cfg->ntenants++;
}

static int plugin_find_or_create(struct config *cfg, const char *name, size_t len, char *why,
                                 size_t whylen)
{
    if (!listener_name_valid(name, len)) {
        snprintf(why, whylen, "plugin name '%.*s' must be 1..%d characters of A-Z a-z 0-9 _ -",
                 (int)len, name, CONFIG_NAME_MAX - 1);
        return -1;
    }
    for (uint32_t i = 0; i < cfg->nplugins; i++)
        if (strlen(cfg->plugins[i].name) == len && memcmp(cfg->plugins[i].name, name, len) == 0)
            return (int)i;
    if (cfg->nplugins == CONFIG_MAX_PLUGINS) {
        snprintf(why, whylen, "too many plugins (at most %d)", CONFIG_MAX_PLUGINS);
        return -1;
    }
    struct config_plugin *p = &cfg->plugins[cfg->nplugins];
    memset(p, 0, sizeof(*p));
    memcpy(p->name, name, len);
    return (int)cfg->nplugins++;
}

/*
 * Resolve a section name (len bytes) to its scope; for [listener.NAME] also
 * find or create the listener. Returns 0 or -1 with the reason in why.
 */
static int section_open(struct config *cfg, const char *name, size_t len, enum config_scope *scope,
                        uint32_t *listener, char *why, size_t whylen)
{
    static const struct {
        const char *name;
        enum config_scope scope;
    } plain[] = {
        {"server", CONFIG_SCOPE_SERVER},
        {"limits", CONFIG_SCOPE_LIMITS},
        {"log", CONFIG_SCOPE_LOG},
        {"mqtt", CONFIG_SCOPE_MQTT},
        {"metrics", CONFIG_SCOPE_METRICS},
        {"admin", CONFIG_SCOPE_ADMIN},
        {"persistence", CONFIG_SCOPE_PERSIST},
    };
    static const char prefix[] = "listener.";
    const size_t plen = sizeof(prefix) - 1;
    static const char tprefix[] = "tenant.", pprefix[] = "plugin.";
    if (len > 7 && memcmp(name, tprefix, 7) == 0) {
        int idx = tenant_find_or_create(cfg, name + 7, len - 7, why, whylen);
        if (idx < 0)
            return -1;
        *scope = CONFIG_SCOPE_TENANT;
        *listener = (uint32_t)idx;
        return 0;
    }
    if (len > 7 && memcmp(name, pprefix, 7) == 0) {
        int idx = plugin_find_or_create(cfg, name + 7, len - 7, why, whylen);
        if (idx < 0)
            return -1;
        *scope = CONFIG_SCOPE_PLUGIN;
        *listener = (uint32_t)idx;
        return 0;
    }

    for (size_t i = 0; i < ARRAY_LEN(plain); i++) {
        if (strlen(plain[i].name) == len && memcmp(plain[i].name, name, len) == 0) {
            *scope = plain[i].scope;
            return 0;
        }
    }
    if (len >= plen && memcmp(name, prefix, plen) == 0) {
        int idx = listener_find_or_create(cfg, name + plen, len - plen, why, whylen);
        if (idx < 0)
            return -1;
        *scope = CONFIG_SCOPE_LISTENER;
        *listener = (uint32_t)idx;
        return 0;
    }
    if (len == plen - 1 && memcmp(name, prefix, len) == 0)
        snprintf(why, whylen, "a listener section needs a name: [listener.NAME]");
    else
        snprintf(why, whylen, "unknown section [%.*s]", (int)len, name);
    return -1;
}

const char *config_scope_name(enum config_scope scope)
{
    switch (scope) {
    case CONFIG_SCOPE_SERVER:
        return "server";
    case CONFIG_SCOPE_LIMITS:
        return "limits";
    case CONFIG_SCOPE_LOG:
        return "log";
    case CONFIG_SCOPE_MQTT:
        return "mqtt";
    case CONFIG_SCOPE_METRICS:
        return "metrics";
    case CONFIG_SCOPE_ADMIN:
        return "admin";
    case CONFIG_SCOPE_PERSIST:
        return "persistence";
    default:
        return NULL;
    }
}

static const char *scope_label(const struct config *cfg, enum config_scope scope, uint32_t listener,
                               char *buf, size_t buflen)
{
    switch (scope) {
    case CONFIG_SCOPE_TENANT:
        snprintf(buf, buflen, "tenant.%s", cfg->tenants[listener].name);
        return buf;
    case CONFIG_SCOPE_PLUGIN:
        snprintf(buf, buflen, "plugin.%s", cfg->plugins[listener].name);
        return buf;
    case CONFIG_SCOPE_LISTENER:
        snprintf(buf, buflen, "listener.%s", cfg->listeners[listener].name);
        return buf;
    default: {
        const char *name = config_scope_name(scope);
        return name ? name : "";
    }
    }
}

/* Index of the first TENANT row: set_mask bits count from it. */
static size_t tenant_first_directive(void)
{
    for (size_t i = 0; i < NDIRECTIVES; i++)
        if (directives[i].scope == CONFIG_SCOPE_TENANT)
            return i;
    return 0;
}

/* A key of [plugin.NAME]: `path`, or one of the plugin's own keys. */
static int plugin_key(struct config_plugin *p, const char *sect, const char *key, const char *value,
                      bool check_dup, char *why, size_t whylen)
{
    if (strcmp(key, "path") == 0) {
        if (check_dup && p->path[0]) {
            snprintf(why, whylen, "[%s] path: duplicate key", sect);
            return -1;
        }
        if (strlen(value) == 0 || strlen(value) >= sizeof(p->path)) {
            snprintf(why, whylen, "[%s] path: expected a file name of 1..%zu bytes", sect,
                     sizeof(p->path) - 1);
            return -1;
        }
        snprintf(p->path, sizeof(p->path), "%s", value);
        return 0;
    }
    for (uint32_t i = 0; i < p->nkv; i++) {
        if (strcmp(p->kv[i].key, key) == 0) {
            if (check_dup) {
                snprintf(why, whylen, "[%s] %s: duplicate key", sect, key);
                return -1;
            }
            snprintf(p->kv[i].value, sizeof(p->kv[i].value), "%s", value);
            return 0;
        }
    }
    if (p->nkv == CONFIG_MAX_PLUGIN_KEYS || strlen(key) >= sizeof(p->kv[0].key) ||
        strlen(value) >= sizeof(p->kv[0].value)) {
        snprintf(why, whylen, "[%s] %s: too many keys, or key or value too long", sect, key);
        return -1;
    }
    snprintf(p->kv[p->nkv].key, sizeof(p->kv[0].key), "%s", key);
    snprintf(p->kv[p->nkv].value, sizeof(p->kv[0].value), "%s", value);
    p->nkv++;
    return 0;
}

/* ---- sni.HOST.FIELD keys of a listener ---------------------------------- */

/* A DNS name as a client sends it in SNI: letters, digits, '-' and '.',
 * no empty label at either end; at most CONFIG_SNI_HOST_MAX - 1. */
static bool sni_host_valid(const char *h, size_t len)
{
    if (len == 0 || len >= CONFIG_SNI_HOST_MAX || h[0] == '.' || h[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || (c == '.' && h[i + 1] != '.')))
            return false;
    }
    return true;
}

/* The entry of (listener, host), created when new; NULL with why set. */
static struct config_sni *sni_entry(struct config *cfg, uint32_t listener, const char *host,
                                    size_t len, char *why, size_t whylen)
{
    char lower[CONFIG_SNI_HOST_MAX];
    for (size_t i = 0; i < len; i++)
        lower[i] = (char)tolower((unsigned char)host[i]);
    lower[len] = '\0';
    for (uint32_t i = 0; i < cfg->nsni; i++)
        if (cfg->sni[i].listener == listener && strcmp(cfg->sni[i].host, lower) == 0)
            return &cfg->sni[i];
    if (cfg->nsni == CONFIG_MAX_SNI) {
        snprintf(why, whylen, "more than %d sni names", CONFIG_MAX_SNI);
        return NULL;
    }
    struct config_sni *e = &cfg->sni[cfg->nsni++];
    memset(e, 0, sizeof(*e));
    e->listener = listener;
    memcpy(e->host, lower, len + 1);
    return e;
}

/* `sni.HOST.cert`, `.key` or `.tenant` of [listener.NAME] (key is what
 * follows "sni."). In the file a key may be set once; an override
 * replaces it. 0, or -1 with why set. */
static int sni_key(struct config *cfg, uint32_t listener, const char *sect, const char *key,
                   const char *value, bool from_file, char *why, size_t whylen)
{
    const char *dot = strrchr(key, '.');
    char reason[120];
    if (!dot || !sni_host_valid(key, (size_t)(dot - key))) {
        snprintf(why, whylen, "[%s] sni.%s: expected sni.HOSTNAME.cert, .key or .tenant", sect,
                 key);
        return -1;
    }
    struct config_sni *e =
        sni_entry(cfg, listener, key, (size_t)(dot - key), reason, sizeof(reason));
    const char *field = dot + 1;
    char *dst = !e                             ? NULL
                : strcmp(field, "cert") == 0   ? e->cert
                : strcmp(field, "key") == 0    ? e->key
                : strcmp(field, "tenant") == 0 ? e->tenant
                                               : NULL;
    if (!e || !dst) {
        snprintf(why, whylen, "[%s] sni.%s: %s", sect, key,
                 e ? "expected sni.HOSTNAME.cert, .key or .tenant" : reason);
        return -1;
    }
    size_t cap = dst == e->tenant ? sizeof(e->tenant) : CONFIG_PATH_MAX;
    if (from_file && dst[0]) {
        snprintf(why, whylen, "[%s] sni.%s: duplicate key", sect, key);
        return -1;
    }
    if (!value[0] || strlen(value) >= cap) {
        snprintf(why, whylen, "[%s] sni.%s: %s", sect, key, value[0] ? "too long" : "empty");
        return -1;
    }
    memcpy(dst, value, strlen(value) + 1);
    return 0;
}

static const struct directive *directive_find(enum config_scope scope, const char *key)
{
    for (size_t i = 0; i < NDIRECTIVES; i++) {
        if (directives[i].scope == scope && strcmp(directives[i].key, key) == 0)
            return &directives[i];
    }
    return NULL;
}

/*
 * Set `key` = `value` in the current section. Returns 0, or -1 with
 * "[section] key: reason" in why. `seen` (may be NULL) holds the line each
 * directive was last set on, for the duplicate check; `lineno` is this one.
 */
static int directive_apply(struct config *cfg, enum config_scope scope, uint32_t listener,
                           const char *key, const char *value, int *seen, int lineno, char *why,
                           size_t whylen)
{
    char label[CONFIG_TENANT_NAME_MAX + 16];
    char reason[160];
    const char *sect = scope_label(cfg, scope, listener, label, sizeof(label));
    if (scope == CONFIG_SCOPE_PLUGIN)
        return plugin_key(&cfg->plugins[listener], sect, key, value, seen != NULL, why, whylen);
    if (scope == CONFIG_SCOPE_LISTENER && strncmp(key, "sni.", 4) == 0)
        return sni_key(cfg, listener, sect, key + 4, value, seen != NULL, why, whylen);
    const struct directive *d = directive_find(scope, key);

    if (d == NULL) {
        snprintf(why, whylen, "[%s] unknown key '%s'", sect, key);
        return -1;
    }
    size_t idx = (size_t)(d - directives);
    if (seen != NULL && scope != CONFIG_SCOPE_TENANT && seen[idx] != 0) {
        snprintf(why, whylen, "[%s] %s: duplicate key (first set on line %d)", sect, key,
                 seen[idx]);
        return -1;
    }
    char *base = scope == CONFIG_SCOPE_LISTENER ? (char *)&cfg->listeners[listener]
                 : scope == CONFIG_SCOPE_TENANT ? (char *)&cfg->tenants[listener].set
                                                : (char *)cfg;
    if (scope == CONFIG_SCOPE_TENANT && seen != NULL &&
        (cfg->tenants[listener].set_mask >> (idx - tenant_first_directive()) & 1u)) {
        snprintf(why, whylen, "[%s] %s: duplicate key", sect, key);
        return -1;
    }
    if (d->parse(d, value, base + d->offset, reason, sizeof(reason)) < 0) {
        snprintf(why, whylen, "[%s] %s: %s", sect, key, reason);
        return -1;
    }
    if (scope == CONFIG_SCOPE_TENANT) {
        cfg->tenants[listener].set_mask |= UINT64_C(1) << (idx - tenant_first_directive());
        return 0;
    }
    if (seen != NULL)
        seen[idx] = lineno;
    return 0;
}

const char *config_sni_tenant(const struct config *cfg, uint32_t listener, const char *host)
{
    for (uint32_t i = 0; host && i < cfg->nsni; i++) {
        const struct config_sni *e = &cfg->sni[i];
        if (e->listener == listener && e->tenant[0] && strcasecmp(e->host, host) == 0)
            return e->tenant;
    }
    return NULL;
}

/* ---- the file --------------------------------------------------------- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/*
 * Where inih ends a token that stops at one of `chars`: there, or at an
 * inline comment (';' after a space), or at the end (inih's own rule, so
 * that the reader refuses exactly the lines inih would).
 */
static const char *inih_stop(const char *s, const char *chars)
{
    bool was_space = false;
    for (; *s && !strchr(chars, *s) && !(was_space && *s == ';'); s++)
        was_space = is_space(*s);
    return s;
}

/*
 * Handle a "[name]" line (already left-trimmed). inih would report a
 * malformed header only as a line number, and this Debian build never tells
 * the handler that a section started, so an empty [listener.x] would be lost
 * and an empty [bogus] accepted: the reader parses headers itself. A header
 * refused skips its section's keys, which would only repeat the error.
 */
static void reader_section(struct load_state *st, const char *line)
{
    char why[200];
    const char *close = inih_stop(line + 1, "]");
    st->skip = true;
    if (*close != ']') {
        load_error(st, "%s:%d: missing ']' in section header", st->path, st->lineno);
        return;
    }
    for (const char *p = close + 1; *p && *p != ';' && *p != '#'; p++) {
        if (!is_space(*p)) {
            load_error(st, "%s:%d: unexpected text after ']'", st->path, st->lineno);
            return;
        }
    }
    const char *name = line + 1;
    while (name < close && is_space(*name))
        name++;
    const char *end = close;
    while (end > name && is_space(end[-1]))
        end--;
    if (section_open(&st->cfg, name, (size_t)(end - name), &st->scope, &st->listener, why,
                     sizeof(why)) < 0) {
        load_error(st, "%s:%d: %s", st->path, st->lineno, why);
        return;
    }
    st->skip = false;
}

/* Whether a left-trimmed line that is not a header is one inih refuses:
 * not blank, not a comment, and no '=' or ':' before any inline comment. */
static bool line_malformed(const char *line)
{
    if (line[0] == '\0' || line[0] == '\n' || line[0] == '\r' || line[0] == ';' || line[0] == '#')
        return false;
    const char *stop = inih_stop(line, "=:");
    return *stop != '=' && *stop != ':';
}

/*
 * inih's fgets-style reader. Besides counting lines (this inih has no line
 * number in the handler), it strips leading whitespace so inih never joins an
 * indented line onto the previous value (no key here takes several lines),
 * and it checks what inih would refuse itself: such a line is reported and
 * handed to inih blank, so the parse goes on and every error is found.
 */
static char *reader_next(char *str, int num, void *stream)
{
    struct load_state *st = stream;
    if (fgets(str, num, st->file) == NULL)
        return NULL;
    st->lineno++;

    size_t len = strlen(str);
    bool truncated = len == (size_t)num - 1 && str[len - 1] != '\n' && !feof(st->file);
    if (truncated) {
        int c;
        while ((c = fgetc(st->file)) != EOF && c != '\n')
            ;
    }

    char *start = str;
    if (st->lineno == 1 && strncmp(start, "\xEF\xBB\xBF", 3) == 0)
        start += 3;
    while (*start && is_space(*start) && *start != '\n')
        start++;
    memmove(str, start, strlen(start) + 1);

    bool comment = str[0] == ';' || str[0] == '#';
    if (truncated && !comment) {
        load_error(st, "%s:%d: line longer than %d characters", st->path, st->lineno, num - 3);
        str[0] = '\0';
    } else if (str[0] == '[') {
        reader_section(st, str);
        if (st->skip)
            str[0] = '\0';
    } else if (line_malformed(str)) {
        load_error(st, "%s:%d: expected [section] or key = value", st->path, st->lineno);
        str[0] = '\0';
    }
    return str;
}

/* Each key = value line; an error is reported and the parse goes on. */
static int ini_on_key(void *user, const char *section, const char *name, const char *value)
{
    struct load_state *st = user;
    char why[256];
    (void)section; /* inih truncates long names; the reader tracks the section itself */

    if (st->skip)
        return 1;
    if (st->scope == CONFIG_SCOPE_NONE) {
        load_error(st, "%s:%d: key '%s' outside any [section]", st->path, st->lineno, name);
        return 1;
    }
    int *seen =
        st->scope == CONFIG_SCOPE_LISTENER ? st->seen_listener[st->listener] : st->seen_global;
    if (directive_apply(&st->cfg, st->scope, st->listener, name, value, seen, st->lineno, why,
                        sizeof(why)) < 0)
        load_error(st, "%s:%d: %s", st->path, st->lineno, why);
    return 1;
}

/* Read the file; 0, or -1 when it could not be read through (each error
 * of its lines is reported, and the caller counts them). */
static int load_file(struct load_state *st)
{
    st->file = fopen(st->path, "r");
    if (st->file == NULL) {
        load_error(st, "%s: cannot open: %s", st->path, strerror(errno));
        return -1;
    }
    int rc = ini_parse_stream(reader_next, st, ini_on_key, st);
    /* fgets hides read errors as end of file; a half-read config must not pass. */
    bool read_error = ferror(st->file) != 0;
    int saved = errno;
    fclose(st->file);
    st->file = NULL;
    /* The reader hands inih no line it would refuse; should one get
     * through all the same, it is an error here too. */
    if (rc > 0)
        load_error(st, "%s:%d: expected [section] or key = value", st->path, rc);
    if (read_error) {
        load_error(st, "%s: cannot read: %s", st->path, strerror(saved));
        return -1;
    }
    if (rc < 0) {
        load_error(st, "%s: cannot parse (inih error %d)", st->path, rc);
        return -1;
    }
    return 0;
}

/* ---- overrides -------------------------------------------------------- */

static void trim(const char **s, const char **e)
{
    while (*s < *e && is_space(**s))
        (*s)++;
    while (*e > *s && is_space((*e)[-1]))
        (*e)--;
}

/* Apply one "section.key=value"; the section ends at the last '.' before '='. */
static void override_apply(struct load_state *st, const char *arg)
{
    char why[256];
    char key[CONFIG_SNI_HOST_MAX + 16]; /* sni.HOST.tenant */
    char value[256];
    const char *eq = strchr(arg, '=');
    const char *dot = NULL;

    if (eq != NULL) {
        for (const char *p = arg; p < eq; p++) {
            if (*p == '.')
                dot = p;
        }
        /* A plugin's own keys may hold dots (quota_static's TENANT.RESOURCE),
         * and so do a listener's sni.HOST.* keys: for [plugin.NAME] and
         * [listener.NAME] (whose names have no dot) the section ends at
         * the second dot. */
        size_t pre = strncmp(arg, "plugin.", 7) == 0     ? 7
                     : strncmp(arg, "listener.", 9) == 0 ? 9
                                                         : 0;
        const char *second = pre ? memchr(arg + pre, '.', (size_t)(eq - arg - pre)) : NULL;
        if (second)
            dot = second;
    }
    if (eq == NULL || dot == NULL) {
        load_error(st, "--set %s: expected section.key=value", arg);
        return;
    }
    const char *ss = arg, *se = dot, *ks = dot + 1, *ke = eq, *vs = eq + 1, *ve = eq + strlen(eq);
    trim(&ss, &se);
    trim(&ks, &ke);
    trim(&vs, &ve);
    if ((size_t)(ke - ks) >= sizeof(key) || (size_t)(ve - vs) >= sizeof(value)) {
        load_error(st, "--set %s: key or value too long", arg);
        return;
    }
    memcpy(key, ks, (size_t)(ke - ks));
    key[ke - ks] = '\0';
    memcpy(value, vs, (size_t)(ve - vs));
    value[ve - vs] = '\0';

    enum config_scope scope;
    uint32_t listener = 0;
    if (section_open(&st->cfg, ss, (size_t)(se - ss), &scope, &listener, why, sizeof(why)) < 0 ||
        directive_apply(&st->cfg, scope, listener, key, value, NULL, 0, why, sizeof(why)) < 0)
        load_error(st, "--set %s: %s", arg, why);
}

/* ---- whole-configuration checks -------------------------------------- */

static bool address_is_loopback(const char *bind)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, bind, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, bind, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

/* Same address, however it was spelled ("::1" and "0:0::1" are one). */
static bool address_equal(const char *a, const char *b)
{
    unsigned char x[sizeof(struct in6_addr)], y[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, a, x) == 1)
        return inet_pton(AF_INET, b, y) == 1 && memcmp(x, y, sizeof(struct in_addr)) == 0;
    if (inet_pton(AF_INET6, a, x) == 1)
        return inet_pton(AF_INET6, b, y) == 1 && memcmp(x, y, sizeof(struct in6_addr)) == 0;
    return strcmp(a, b) == 0;
}

/* Bytes of a directive's field, from its parser. */
static size_t field_size(const struct directive *d)
{
    if (d->parse == parse_bool)
        return sizeof(bool);
    if (d->parse == parse_u64)
        return sizeof(uint64_t);
    return sizeof(uint32_t);
}

/* Fill every tenant's settings: [tenant.default] over the [mqtt] and
 * [limits] values, [tenant.ID] over [tenant.default]. Returns -1 when there
 * is no room for the default entry. */
static int tenants_resolve(struct config *cfg)
{
    struct tenant_settings base = {
        .mqtt_versions = 1u << 3 | 1u << 4 | 1u << 5,
        .max_qos = cfg->maximum_qos,
        .retain_available = cfg->retain_available,
        .wildcard_subscriptions = cfg->wildcard_subscriptions,
        .shared_subscriptions = cfg->shared_subscriptions,
        .subscription_identifiers = cfg->subscription_identifiers,
        .max_topic_length = cfg->max_topic_length,
        .max_topic_levels = 1024,
        .topic_alias_maximum = cfg->topic_alias_maximum,
        .receive_maximum = cfg->receive_maximum,
        .max_packet_size = cfg->max_packet_size,
        .max_session_expiry = cfg->max_session_expiry,
        .max_queued_messages = cfg->max_queued_messages,
        .max_queued_bytes = cfg->max_queued_bytes,
        .max_subscriptions = cfg->max_subscriptions,
        .max_will_size = cfg->max_packet_size,
        .max_sessions = cfg->max_sessions,
        .max_retained_messages = cfg->max_retained_messages,
        .max_retained_bytes = cfg->max_retained_bytes,
        .max_client_output = cfg->max_client_output,
        .min_keepalive = 0,
        .max_keepalive = cfg->max_keepalive,
        .force_transient = false,
        .validate_payload_format = cfg->validate_payload_format,
    };
    char why[160];
    int def = tenant_find_or_create(cfg, "default", 7, why, sizeof(why));
    if (def < 0)
        return -1;
    size_t first = tenant_first_directive();
    /* default first, then the others over it */
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < cfg->ntenants; i++) {
            if ((pass == 0) != ((int)i == def))
                continue;
            struct config_tenant *t = &cfg->tenants[i];
            struct tenant_settings own = t->set;
            t->set = pass == 0 ? base : cfg->tenants[def].set;
            for (size_t k = first; k < NDIRECTIVES && directives[k].scope == CONFIG_SCOPE_TENANT;
                 k++) {
                if (t->set_mask >> (k - first) & 1u)
                    memcpy((char *)&t->set + directives[k].offset,
                           (const char *)&own + directives[k].offset, field_size(&directives[k]));
            }
        }
    }
    return 0;
}

int config_tenant_apply(struct tenant_settings *set, const char *key, const char *value, char *why,
                        size_t whylen)
{
    const struct directive *d = directive_find(CONFIG_SCOPE_TENANT, key);
    char reason[160];
    if (!d) {
        snprintf(why, whylen, "unknown tenant setting '%s'", key);
        return -1;
    }
    if (d->parse(d, value, (char *)set + d->offset, reason, sizeof(reason)) < 0) {
        snprintf(why, whylen, "%s: %s", key, reason);
        return -1;
    }
    return 0;
}

const struct tenant_settings *config_tenant_settings(const struct config *cfg, const char *name)
{
    const struct config_tenant *def = NULL;
    for (uint32_t i = 0; i < cfg->ntenants; i++) {
        if (strcmp(cfg->tenants[i].name, name) == 0)
            return &cfg->tenants[i].set;
        if (strcmp(cfg->tenants[i].name, "default") == 0)
            def = &cfg->tenants[i];
    }
    return def ? &def->set : NULL;
}

/* [admin] over TLS names its certificate and key, both; asking callers
 * for a certificate needs TLS. The files are read when the API starts
 * (admin/tls.c), which names a bad one (as --check-config does). */
static void admin_tls_check(struct load_state *st)
{
    const struct config *cfg = &st->cfg;
    if (!cfg->admin_tls_cert[0] != !cfg->admin_tls_key[0])
        load_error(st, "%s: [admin] tls_cert and tls_key go together: set both for HTTPS",
                   st->path);
    else if (cfg->admin_tls_client_ca[0] && !cfg->admin_tls_cert[0])
        load_error(st,
                   "%s: [admin] tls_client_ca asks callers for a certificate over TLS: set "
                   "tls_cert and tls_key too",
                   st->path);
}

/* One listener's problems that only the whole shows (i: its index). */
static void listener_check(struct load_state *st, uint32_t i)
{
    const struct config *cfg = &st->cfg;
    const struct config_listener *l = &cfg->listeners[i];
    /* Secure by default: with no auth plugin every client is anonymous
     * (with plugins, ringmqd checks again once it knows their kinds). */
    if (!address_is_loopback(l->bind) && !l->allow_anonymous && cfg->nplugins == 0)
        load_error(st,
                   "%s: [listener.%s] bind = %s is not a loopback address and there is no "
                   "authentication: set allow_anonymous = true in [listener.%s] to accept "
                   "anonymous clients there",
                   st->path, l->name, l->bind, l->name);
    /* A PROXY header names any address it likes: taken from anyone it
     * would let every client choose its own (no default list). */
    if (l->proxy_protocol != CONFIG_PROXY_OFF && l->proxy_trusted.n == 0)
        load_error(st,
                   "%s: [listener.%s] proxy_protocol is on but proxy_trusted is empty: list the "
                   "addresses of the proxies allowed to send PROXY headers",
                   st->path, l->name);
    /* Port 0 asks the kernel for a free port, so those never collide. */
    for (uint32_t j = 0; j < i && l->port != 0; j++) {
        const struct config_listener *o = &cfg->listeners[j];
        if (o->port == l->port && address_equal(o->bind, l->bind))
            load_error(st, "%s: [listener.%s] and [listener.%s] both bind %s port %u", st->path,
                       o->name, l->name, l->bind, (unsigned)l->port);
    }
}

/* The whole configuration's rules, each broken one reported. */
static void config_check(struct load_state *st)
{
    const struct config *cfg = &st->cfg;
    if (cfg->nlisteners == 0)
        load_error(st, "%s: no [listener.NAME] section", st->path);
    for (uint32_t i = 0; i < cfg->nplugins; i++) {
        if (!cfg->plugins[i].path[0])
            load_error(st, "%s: [plugin.%s] has no path", st->path, cfg->plugins[i].name);
    }
    /* Without tokens every caller of the admin API is an admin: only the
     * local host may be one. */
    if (cfg->admin_enabled && !cfg->admin_token_file[0] && !address_is_loopback(cfg->admin_bind))
        load_error(st,
                   "%s: [admin] bind = %s is not a loopback address and there is no token_file: "
                   "set token_file (see ringmq-passwd token) or bind to 127.0.0.1",
                   st->path, cfg->admin_bind);
    admin_tls_check(st);
    for (uint32_t i = 0; i < cfg->nlisteners; i++)
        listener_check(st, i);
}

/* Where a listener's problem is reported: the line of its `transport`
 * key when the file set it, else the file alone (an override). */
static void listener_err(struct load_state *st, uint32_t i, const char *what)
{
    size_t t = (size_t)(directive_find(CONFIG_SCOPE_LISTENER, "transport") - directives);
    int line = st->seen_listener[i][t];
    const char *name = st->cfg.listeners[i].name;
    if (line)
        load_error(st, "%s:%d: [listener.%s] %s", st->path, line, name, what);
    else
        load_error(st, "%s: [listener.%s] %s", st->path, name, what);
}

/* A listener on TLS (tls, wss) names its certificate and key; asking clients for a
 * certificate needs the CAs to check it against. The files themselves
 * are read when the listener starts (net/tls.c), which names a bad one. */
static void tls_check(struct load_state *st)
{
    for (uint32_t i = 0; i < st->cfg.nlisteners; i++) {
        const struct config_listener *l = &st->cfg.listeners[i];
        if (!config_transport_tls((enum config_transport)l->transport))
            continue;
        if (!l->tls_cert[0] || !l->tls_key[0]) {
            char what[64];
            snprintf(what, sizeof(what), "transport = %s needs tls_cert and tls_key",
                     config_transport_name((enum config_transport)l->transport));
            listener_err(st, i, what);
        }
        if (l->tls_verify_client != CONFIG_TLS_VERIFY_NONE && !l->tls_ca[0])
            listener_err(st, i, "tls_verify_client needs tls_ca");
    }
    for (uint32_t i = 0; i < st->cfg.nsni; i++) {
        const struct config_sni *e = &st->cfg.sni[i];
        char what[CONFIG_SNI_HOST_MAX + 80];
        if (!config_transport_tls(
                (enum config_transport)st->cfg.listeners[e->listener].transport)) {
            snprintf(what, sizeof(what),
                     "sni.%s: server names are a transport = tls or wss setting", e->host);
            listener_err(st, e->listener, what);
        } else if (!e->cert[0] != !e->key[0]) {
            snprintf(what, sizeof(what), "sni.%s: needs both cert and key (or neither)", e->host);
            listener_err(st, e->listener, what);
        }
    }
}

/* What only the resolved settings of each tenant can show. */
static void tenants_check(struct load_state *st)
{
    const struct config *cfg = &st->cfg;
    for (uint32_t i = 0; i < cfg->ntenants; i++) {
        const struct tenant_settings *t = &cfg->tenants[i].set;
        if (t->max_keepalive && t->min_keepalive > t->max_keepalive)
            load_error(st, "%s: [tenant.%s] min_keepalive (%u) is above max_keepalive (%u)",
                       st->path, cfg->tenants[i].name, t->min_keepalive, t->max_keepalive);
    }
}

/* ---- public ----------------------------------------------------------- */

void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->shards = 0;
    cfg->cpu_affinity.mode = AFFINITY_AUTO;
    cfg->wills_on_shutdown = false;
    cfg->recv_buffer_size = 16384;
    cfg->recv_buffers = 256;
    cfg->nlisteners = 0;
    cfg->max_packet_size = 1048576;
    cfg->max_connections = 0;
    cfg->max_pending_connections = 60000;
    cfg->connect_timeout = 10;
    cfg->max_connect_size = 65536;
    cfg->max_inflight = 32;
    cfg->max_queued_messages = 1000;
    cfg->max_queued_bytes = 16777216;
    cfg->max_client_id_len = 256;
    cfg->max_topic_length = 4096;
    cfg->max_subscriptions = 10000;
    cfg->max_sessions = 1000000;
    cfg->max_retained_messages = 1000000;
    cfg->max_retained_bytes = UINT64_C(1) << 30;
    cfg->max_client_output = 1u << 20;
    cfg->max_slow_output_total = UINT64_C(64) << 20;
    cfg->log_level = LOG_LEVEL_INFO;
    cfg->log_format = LOG_FORMAT_TEXT;
    cfg->log_target = LOG_TARGET_STDERR;
    cfg->receive_maximum = 1024;
    cfg->topic_alias_maximum = 64;
    cfg->maximum_qos = 2;
    cfg->retain_available = true;
    cfg->wildcard_subscriptions = true;
    cfg->subscription_identifiers = true;
    cfg->shared_subscriptions = true;
    cfg->server_keepalive = 0;
    cfg->max_keepalive = 0;
    cfg->max_session_expiry = 604800;
    cfg->validate_payload_format = false;
    cfg->test_auth_method[0] = '\0';
    cfg->plugin_timeout_ms = 5000;
    cfg->metrics_enabled = false;
    snprintf(cfg->metrics_bind, sizeof(cfg->metrics_bind), "127.0.0.1");
    cfg->metrics_port = 9883;
    cfg->sys_topics = true;
    cfg->sys_interval = 10;
    snprintf(cfg->sys_tenant, sizeof(cfg->sys_tenant), "global");
    cfg->admin_enabled = false;
    snprintf(cfg->admin_bind, sizeof(cfg->admin_bind), "127.0.0.1");
    cfg->admin_port = 9884;
    cfg->admin_token_file[0] = '\0';
    cfg->admin_tls_cert[0] = '\0';
    cfg->admin_tls_key[0] = '\0';
    cfg->admin_tls_client_ca[0] = '\0';
    cfg->admin_page_budget = 4096;
    cfg->persist_enabled = false;
    snprintf(cfg->persist_dir, sizeof(cfg->persist_dir), "/var/lib/ringmq");
    cfg->persist_fsync = PERSIST_FSYNC_ALWAYS;
    cfg->persist_fsync_interval_ms = 1000;
    cfg->persist_max_log_bytes = UINT64_C(64) << 20;
}

/*
 * The checks of the whole run once every line and override was taken: with
 * one refused, a part is missing (a listener, its transport), and they
 * would report what follows from that, not what the file says.
 */
static void load_all(struct load_state *st, bool file, const char *const *overrides, size_t n)
{
    if (file && load_file(st) < 0)
        return;
    for (size_t i = 0; i < n; i++)
        override_apply(st, overrides[i]);
    if (st->nerrors)
        return;
    config_check(st);
    tls_check(st);
    if (st->nerrors)
        return;
    if (tenants_resolve(&st->cfg) < 0) {
        load_error(st, "%s: too many tenant sections (at most %d with [tenant.default])", st->path,
                   CONFIG_MAX_TENANTS);
        return;
    }
    tenants_check(st);
}

int config_load_all(struct config *cfg, const char *path, const char *const *overrides, size_t n,
                    config_error_fn fn, void *arg, size_t *nerrors)
{
    struct load_state *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    config_defaults(&st->cfg);
    st->path = path != NULL ? path : "(no file)";
    st->fn = fn;
    st->arg = arg;
    load_all(st, path != NULL, overrides, n);
    if (nerrors)
        *nerrors = st->nerrors;
    int rc = st->nerrors ? -EINVAL : 0;
    if (rc == 0)
        *cfg = st->cfg;
    free(st);
    return rc;
}

/* config_load's error function: the first error into its buffer. */
struct first_error {
    char *err;
    size_t errlen;
    bool set;
};

static void keep_first(void *arg, const char *text)
{
    struct first_error *f = arg;
    if (!f->set && f->err && f->errlen)
        snprintf(f->err, f->errlen, "%s", text);
    f->set = true;
}

int config_load(struct config *cfg, const char *path, const char *const *overrides, size_t n,
                char *err, size_t errlen)
{
    struct first_error f = {err, errlen, false};
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    int rc = config_load_all(cfg, path, overrides, n, keep_first, &f, NULL);
    if (rc == -ENOMEM && err && errlen)
        snprintf(err, errlen, "%s: out of memory", path ? path : "(no file)");
    return rc < 0 ? -1 : 0;
}
