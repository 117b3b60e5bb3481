/*
 * config: the broker's INI configuration (parsed with inih), as data.
 *
 * Keys are described by one directive table in config.c (section, key,
 * parser, offset into struct config); conf/ringmq.ini documents every key
 * with its default. An unknown section or key, or a bad value, is an error
 * naming FILE:LINE (or the --set argument) and the reason; a load reports
 * every error of the file, not only the first (config_load_all).
 *
 * Loaded by main at start-up and on each reload; a configuration put in
 * force is read-only afterwards, shared by all shards, and kept until exit.
 */
#ifndef RINGMQ_CONFIG_CONFIG_H
#define RINGMQ_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/affinity.h"
#include "core/cidr.h"
#include "core/log.h"

#define CONFIG_MAX_LISTENERS   16
#define CONFIG_MAX_SHARDS      64
#define CONFIG_NAME_MAX        32
#define CONFIG_MAX_PLUGINS     8
#define CONFIG_MAX_PLUGIN_KEYS 32
#define CONFIG_MAX_TENANTS     64
#define CONFIG_TENANT_NAME_MAX 64
#define CONFIG_MAX_CIDRS       32
#define CONFIG_MAX_SNI         64  /* sni.HOST names, all listeners together */
#define CONFIG_SNI_HOST_MAX    254 /* a DNS name's 253 characters and the NUL */

/* What a listener speaks on its sockets (net/transport.h has each one). */
enum config_transport {
    CONFIG_TRANSPORT_TCP, /* MQTT over plain TCP */
    CONFIG_TRANSPORT_WS,  /* MQTT over WebSocket (RFC 6455) over TCP: net/ws.h */
    CONFIG_TRANSPORT_TLS, /* MQTT over TLS 1.2/1.3 (net/tls.c) */
    CONFIG_TRANSPORT_WSS, /* MQTT over WebSocket over TLS: net/wss.h */
    CONFIG_TRANSPORT_COUNT
};

/* The name `transport =` gives transport t ("tcp", ...). */
const char *config_transport_name(enum config_transport t);

/* Whether transport t runs on TLS (tls, wss): its listener needs tls_cert
 * and tls_key, and may have sni.* names. */
bool config_transport_tls(enum config_transport t);

/* Which PROXY protocol headers a listener expects first on every
 * connection (net/proxy.h); the values are bit masks of the versions. */
enum config_proxy {
    CONFIG_PROXY_OFF = 0,
    CONFIG_PROXY_V1 = 1,
    CONFIG_PROXY_V2 = 2,
    CONFIG_PROXY_ANY = 3, /* either, told apart by their first bytes */
};

/* A list of address ranges ("10.0.0.0/8, ::1"). */
struct config_cidrs {
    uint32_t n;
    struct cidr v[CONFIG_MAX_CIDRS];
};
/* tls_verify_client: whether a TLS client must show a certificate. */
enum config_tls_verify {
    CONFIG_TLS_VERIFY_NONE,     /* none is asked for */
    CONFIG_TLS_VERIFY_OPTIONAL, /* asked for; one that is shown must verify */
    CONFIG_TLS_VERIFY_REQUIRED, /* no verified certificate, no connection */
};

#define CONFIG_PATH_MAX 256

struct config_listener {
    char name[CONFIG_NAME_MAX]; /* the NAME of [listener.NAME] */
    uint8_t transport;          /* enum config_transport, default tcp */
    char bind[64];              /* IPv4 or IPv6 literal, default 127.0.0.1 */
    uint16_t port;              /* default 1883; 0 picks a free port */
    bool allow_anonymous;       /* needed to bind a non-loopback address without auth */
    uint32_t backlog;           /* listen(2) backlog, default 4096 */
    uint32_t send_buffer;       /* SO_SNDBUF of its connections, 0: the kernel's; default 65536 */
    /* transport = ws: the path the Upgrade must name (default /mqtt), the
     * Origin values a browser may come from (comma list; empty: any), the
     * largest frame payload read (bytes, default 1 MiB + 64 KiB). */
    char ws_path[128];
    char ws_allowed_origins[512];
    uint32_t ws_max_frame;
    uint8_t proxy_protocol;            /* enum config_proxy, default off */
    struct config_cidrs proxy_trusted; /* who may send a PROXY header; needed unless off */
    /* transport = tls: PEM files (empty: not set), options, handshake bound */
    char tls_cert[CONFIG_PATH_MAX]; /* certificate chain, required */
    char tls_key[CONFIG_PATH_MAX];  /* its private key, required */
    char tls_ca[CONFIG_PATH_MAX];   /* CAs client certificates must chain to */
    char tls_crl[CONFIG_PATH_MAX];  /* revoked client certificates */
    char tls_ciphers[512];          /* TLS 1.2 cipher list, empty: wolfSSL's */
    char tls_ciphersuites[256];     /* TLS 1.3 suites, empty: wolfSSL's */
    uint8_t tls_verify_client;      /* enum config_tls_verify, default none */
    uint8_t tls_min_version;        /* 12 or 13 (TLS 1.2 / 1.3), default 12 */
    uint32_t tls_handshake_timeout; /* seconds, default 10 */
    bool tls_resumption;            /* session tickets and cache, default true */
};

/* [listener.NAME] sni.HOST.cert / .key / .tenant: the certificate a TLS
 * listener shows a client that asks for HOST (server name indication),
 * and the tenant such a client must belong to. */
struct config_sni {
    uint32_t listener;                   /* index into cfg.listeners */
    char host[CONFIG_SNI_HOST_MAX];      /* lower case */
    char cert[CONFIG_PATH_MAX];          /* empty: the listener's tls_cert */
    char key[CONFIG_PATH_MAX];           /* set exactly when cert is */
    char tenant[CONFIG_TENANT_NAME_MAX]; /* empty: any tenant */
};

/* [plugin.NAME]: the shared object and its own keys, handed to its init. */
struct config_plugin {
    char name[CONFIG_NAME_MAX];
    char path[256];
    uint32_t nkv;
    struct {
        char key[64];
        char value[256];
    } kv[CONFIG_MAX_PLUGIN_KEYS];
};

/* Per-tenant settings: [tenant.default] (whose defaults are the [mqtt] and
 * [limits] values) and [tenant.ID] (whose defaults are [tenant.default]).
 * A setting provider plugin may override them at run time. */
struct tenant_settings {
    uint32_t mqtt_versions; /* bit (1 << level): 3 = 3.1, 4 = 3.1.1, 5 = 5.0 */
    uint32_t max_qos;       /* 0..2 */
    bool retain_available;
    bool wildcard_subscriptions;
    bool shared_subscriptions;
    bool subscription_identifiers;
    uint32_t max_topic_length; /* bytes of a topic name or filter */
    uint32_t max_topic_levels;
    uint32_t topic_alias_maximum;
    uint32_t receive_maximum;
    uint32_t max_packet_size;
    uint32_t max_session_expiry;    /* seconds */
    uint32_t max_queued_messages;   /* per session */
    uint64_t max_queued_bytes;      /* per session */
    bool queue_drop_oldest;         /* a full queue drops its oldest message, not the newest */
    uint32_t max_subscriptions;     /* per session */
    uint32_t max_will_size;         /* will payload bytes */
    uint32_t max_sessions;          /* whole tenant, connected or not; 0: no limit */
    uint32_t max_retained_messages; /* whole tenant; 0: no limit */
    uint64_t max_retained_bytes;    /* whole tenant, bytes kept (route.c); 0: no limit */
    uint32_t max_client_output;     /* unsent bytes per connection before QoS 0 is dropped */
    uint32_t min_keepalive;         /* seconds; 0 = none (a 0 keepalive is allowed) */
    uint32_t max_keepalive;         /* seconds; 0 = none (see [mqtt] max_keepalive) */
    bool force_transient;           /* every session ends with its connection */
    uint32_t publish_rate;          /* PUBLISH per second per connection, 0: no limit */
    uint32_t publish_bandwidth;     /* PUBLISH bytes per second per connection, 0: no limit */
    bool validate_payload_format;
};

struct config_tenant {
    char name[CONFIG_TENANT_NAME_MAX]; /* "default" or a tenant id */
    struct tenant_settings set;
    uint64_t set_mask; /* which keys the section set itself */
};

/* [persistence] fsync: when records reach the disk, and what an
 * acknowledgement waits for (persist/persist.h). */
enum persist_fsync {
    PERSIST_FSYNC_ALWAYS = 0,   /* acks wait for write + fdatasync; one per shard per turn */
    PERSIST_FSYNC_INTERVAL = 1, /* written and synced every fsync_interval_ms; acks at once */
    PERSIST_FSYNC_NEVER = 2,    /* written each turn, never synced: the OS decides */
};

struct config {
    /* [server] */
    uint32_t shards;              /* 0 = auto (one per CPU the process may run on) */
    struct affinity cpu_affinity; /* which CPU each shard is pinned to; default auto */
    bool wills_on_shutdown;       /* send wills of connected clients on clean shutdown */
    uint32_t recv_buffer_size;    /* bytes per provided receive buffer, default 16384 */
    uint32_t recv_buffers;        /* provided buffers per shard (power of two), default 256 */

    /* [listener.NAME], in file order */
    struct config_listener listeners[CONFIG_MAX_LISTENERS];
    uint32_t nlisteners;
    struct config_sni sni[CONFIG_MAX_SNI]; /* every listener's sni.HOST keys */
    uint32_t nsni;

    /* [limits] */
    uint32_t max_packet_size;     /* default 1048576 */
    uint32_t max_connections;     /* whole broker, 0 = unlimited; default 0 */
    uint32_t max_inflight;        /* per session, QoS 1/2 unacknowledged, default 32 */
    uint32_t max_queued_messages; /* per session, default 1000 */
    uint64_t max_queued_bytes;    /* per session, default 16777216 */
    uint32_t max_client_id_len;   /* default 256 */
    uint32_t max_topic_length;    /* topic name or filter bytes, default 4096 (per tenant too) */
    uint32_t max_subscriptions;   /* per session, default 10000 */
    /* Per tenant, without a quota plugin too (0 = no limit): sessions
     * (offline ones with a long expiry included) and retained messages. */
    uint32_t max_sessions;          /* default 1000000 */
    uint32_t max_retained_messages; /* default 1000000 */
    uint64_t max_retained_bytes;    /* bytes kept (route.c), default 1073741824 */
    /* Output held for clients that do not keep up: per connection (QoS 0
     * beyond it is dropped, and the client is not read until it catches
     * up), and for the whole broker (beyond it QoS 0 is dropped for every
     * client with SLOW_MIN unsent bytes, the slowest first). */
    uint32_t max_client_output;     /* default 1048576 */
    uint64_t max_slow_output_total; /* default 67108864; 0: no limit */

    /* Before CONNECT completes: how many connections may wait for it (split
     * evenly between shards; beyond, the oldest is closed), how long each
     * may wait, and the largest CONNECT (or AUTH) read from them. */
    uint32_t max_pending_connections; /* default 60000 */
    uint32_t connect_timeout;         /* seconds, default 10 */
    uint32_t max_connect_size;        /* bytes, whole packet, default 65536 */

    /* [mqtt]: capabilities the server announces and enforces (MQTT 5.0
     * properties in CONNACK; the limits apply to every protocol version
     * where they have a meaning there) */
    uint32_t receive_maximum;      /* inbound QoS 1/2 unacknowledged, default 1024 */
    uint32_t topic_alias_maximum;  /* client -> server aliases, default 64 (0 = none) */
    uint32_t maximum_qos;          /* 0..2, default 2 */
    bool retain_available;         /* default true */
    bool wildcard_subscriptions;   /* default true */
    bool subscription_identifiers; /* default true */
    bool shared_subscriptions;     /* default true */
    uint32_t server_keepalive;     /* 0: the client's; else imposed on 5.0 clients */
    uint32_t max_keepalive;        /* 0: no cap; else the largest keepalive (0 counts as over) */
    uint32_t max_session_expiry;   /* seconds, default 604800 (7 days) */
    bool validate_payload_format;  /* 0x99 for a payload marked UTF-8 that is not */
    char test_auth_method[64];     /* enhanced-auth test method name, empty = off */

    /* [plugin.NAME], in file order */
    struct config_plugin plugins[CONFIG_MAX_PLUGINS];
    uint32_t nplugins;
    uint32_t plugin_timeout_ms; /* [server], default 5000 */

    /* [tenant.default] and [tenant.ID]: resolved after loading, so that
     * every entry holds complete settings; tenants[0] is "default". */
    struct config_tenant tenants[CONFIG_MAX_TENANTS];
    uint32_t ntenants;

    /* [metrics] */
    bool metrics_enabled;                    /* default false */
    char metrics_bind[64];                   /* default 127.0.0.1 */
    uint16_t metrics_port;                   /* default 9883; 0 picks one */
    bool sys_topics;                         /* $SYS/... for sys_tenant, default true */
    uint32_t sys_interval;                   /* seconds between $SYS updates, default 10 */
    char sys_tenant[CONFIG_TENANT_NAME_MAX]; /* default "global" */

    /* [admin]: the admin HTTP API (admin/admin.h). Without a token file
     * it serves loopback only, and every caller is an admin (config_check
     * refuses any other bind), with or without TLS. tls_cert and tls_key
     * (PEM) turn on HTTPS, both or neither; tls_client_ca (PEM) needs them
     * and asks every caller for a certificate of those CAs. The files are
     * read when the API starts (admin/tls.c), which names a bad one. */
    bool admin_enabled;                        /* default false */
    char admin_bind[64];                       /* default 127.0.0.1 */
    uint16_t admin_port;                       /* default 9884; 0 picks one */
    char admin_token_file[CONFIG_PATH_MAX];    /* default "": no tokens */
    char admin_tls_cert[CONFIG_PATH_MAX];      /* default "": plain HTTP */
    char admin_tls_key[CONFIG_PATH_MAX];       /* default "" */
    char admin_tls_client_ca[CONFIG_PATH_MAX]; /* default "": no client certificates */
    /* Sessions one shard looks at for one page of clients or sessions,
     * and retained topics shard 0 looks at for one page of retained
     * messages, selected or not (16..1000000, default 4096): the bound on a
     * page's work in a shard's loop turn (broker/control_req.h,
     * control_retained.c). */
    uint32_t admin_page_budget;

    /* [persistence]: durable sessions and retained messages (persist/). */
    bool persist_enabled;               /* default false (conf/ringmq.ini turns it on) */
    char persist_dir[CONFIG_PATH_MAX];  /* default /var/lib/ringmq */
    enum persist_fsync persist_fsync;   /* default always */
    uint32_t persist_fsync_interval_ms; /* interval: how often; default 1000 */
    uint64_t persist_max_log_bytes;     /* per shard, what starts a compaction; 64 MiB */

    /* [log] */
    enum log_level log_level;   /* default info */
    enum log_format log_format; /* text (default) or json */
    enum log_target log_target; /* stderr (default) or syslog */
};

/* Fill *cfg with every default (and no listener). */
void config_defaults(struct config *cfg);

/*
 * Load `path` over the defaults, then apply `overrides` (n strings of the
 * form "section.key=value"; the section may itself contain dots, as in
 * "listener.default.port=0"; an override may create a listener), then check
 * the whole: at least one listener; every [plugin.NAME] has a path; a
 * non-loopback bind needs allow_anonymous = true when no plugin is
 * configured (with plugins, ringmqd checks once it knows whether one is an
 * auth plugin); [admin] tls_cert and tls_key both or neither, tls_client_ca
 * only with them; no two listeners on the same address and port (port 0
 * excepted); at most CONFIG_MAX_TENANTS tenant sections, [tenant.default]
 * included; no tenant with min_keepalive above max_keepalive.
 * Returns 0, or -1 with the first error's one-line message in err:
 * "FILE:LINE: reason" for the file, "--set ARG: reason" for an override,
 * "FILE: reason" otherwise. path may be NULL: no file, only defaults and
 * overrides ("(no file)" then stands for FILE). *cfg is written only on
 * success. err may be NULL. config_load_all has every error.
 */
int config_load(struct config *cfg, const char *path, const char *const *overrides, size_t n,
                char *err, size_t errlen);

/* The most errors one load hands to its config_error_fn; the others are
 * only counted. */
#define CONFIG_MAX_ERRORS 32

/* One error of a load, as config_load's err has it (one line, borrowed
 * for the call). */
typedef void (*config_error_fn)(void *arg, const char *text);

/*
 * config_load, reporting every error instead of the first: each line of
 * the file and each override is read, a refused one reported and left
 * out (a refused section header leaves out its keys too), and fn(arg,
 * text) is called for each of the first CONFIG_MAX_ERRORS errors in the
 * order found (the file's in line order, then the overrides'). The checks
 * of the whole (listeners, TLS, tenants) run only when every line and
 * override was taken, each broken rule reported. *nerrors (may be NULL):
 * how many errors there were, those past CONFIG_MAX_ERRORS included.
 * 0 with *cfg written; -EINVAL (errors) or -ENOMEM, *cfg untouched.
 */
int config_load_all(struct config *cfg, const char *path, const char *const *overrides, size_t n,
                    config_error_fn fn, void *arg, size_t *nerrors);

/* The longest text of one value in a change (ws_allowed_origins' 511). */
#define CONFIG_VALUE_TEXT_MAX 520

/*
 * Live reload: one difference between the configuration in force and a
 * newly loaded one. `section` is "limits", "listener.NAME", "tenant.ID",
 * "plugin.NAME"...; `key` the key, or "*" for a whole section added or
 * removed (`what` says which). `from` and `to`: the key's old and new
 * values as text, NULL for a section added or removed, and for values
 * without a short text (address lists, CPU sets, a few enums); borrowed
 * for the call only. `live`: a running broker applies it ([log],
 * [limits], [mqtt], [tenant.*], [listener.*] with their sni.* names, the
 * keys of a plugin that takes them live);
 * otherwise it needs a restart and is kept.
 */
struct config_change {
    char section[CONFIG_TENANT_NAME_MAX + 16];
    const char *key;
    const char *what; /* "changed", "added", "removed" */
    const char *from, *to;
    bool live;
};

/*
 * Compare `next` with `cur`, key by key, calling fn for each difference;
 * every difference that needs a restart gets cur's value back in `next`
 * (whole sections for plugins), so that `next` can be put in force as it
 * is. Listeners stay as `next` has them, in its order: the broker matches
 * them with the running ones by name (config_listener_same). A plugin
 * section with the same name and path whose keys differ is reported key by
 * key, without values; those keys are live, and stay in `next` for the
 * caller to hand to the plugin, when plugin_live (may be NULL: none) says
 * the plugin takes them; a plugin added, removed, renamed or with another
 * path needs a restart (key "*"). Returns the number of live differences.
 */
size_t config_reconcile(const struct config *cur, struct config *next,
                        void (*fn)(void *arg, const struct config_change *ch),
                        bool (*plugin_live)(void *arg, const char *name), void *arg);

/* Whether listener ai of a and listener bi of b are the same: the same
 * name, every key equal, the same sni.* names in the same order. */
bool config_listener_same(const struct config *a, uint32_t ai, const struct config *b, uint32_t bi);

/* Set one tenant setting by its [tenant.ID] key (e.g. "max_qos" = "1"), as
 * a setting provider plugin names it. 0, or -1 with the reason in why. */
int config_tenant_apply(struct tenant_settings *set, const char *key, const char *value, char *why,
                        size_t whylen);

/* The settings of tenant `name` (its [tenant.ID] section, else
 * [tenant.default]). Never NULL after a successful config_load. */
const struct tenant_settings *config_tenant_settings(const struct config *cfg, const char *name);

/* The tenant a client of `listener` that asked for server name `host`
 * (any case; NULL: none) must belong to ([listener.NAME]
 * sni.HOST.tenant), or NULL when that name binds none. */
const char *config_sni_tenant(const struct config *cfg, uint32_t listener, const char *host);

#endif
