/*
 * ringmq plugin ABI: the only installed header of ringmq.
 *
 * A plugin is a shared object exporting one symbol, RINGMQ_PLUGIN_ENTRY,
 * a function returning a table (struct ringmq_plugin) that names the ABI
 * version it was built for, its name, the kinds it implements and their
 * callbacks. ringmqd refuses a plugin built for another ABI version, or one
 * missing a callback its kinds require, with an error naming the file.
 *
 * Threads. Every callback is called on a broker shard thread, several shards
 * at once: a plugin's state must be safe for concurrent calls (or guard
 * itself). init and fini run alone; reload, reconfigure and
 * reconfigure_commit run on the thread that reloads, concurrently with the
 * shards' calls (see each). Calls that may take time (authenticate, auth_continue, check,
 * settings) are asynchronous: the plugin gets a struct ringmq_call and
 * finishes it exactly once with host->complete(), from any thread, before
 * or after the callback returns. The shard keeps serving other clients
 * meanwhile. A call not completed within the host's timeout is answered for
 * the plugin (a refusal) and its later completion is ignored.
 *
 * Memory. Everything the host passes is borrowed for the duration of the
 * callback only (copy what you keep). Everything a plugin passes to
 * complete() or returns is borrowed for the duration of that call: the host
 * copies what it keeps.
 *
 * Versioning. RINGMQ_PLUGIN_ABI_VERSION changes whenever a struct below
 * changes in an incompatible way, and whenever a plugin may fill something
 * new: structs only ever grow at their end, and a field or callback marked
 * "ABI N" exists only between a host and a plugin that both speak N. The
 * host reads what a plugin fills (its table, the results it completes
 * with) only up to the version the plugin's table names, so an older
 * plugin's shorter table and uninitialised padding are never read; it
 * tells each plugin, in host->abi_version, the version it speaks to it
 * (the plugin's own). ringmqd loads plugins built for ABI
 * RINGMQ_PLUGIN_ABI_OLDEST up to RINGMQ_PLUGIN_ABI_VERSION.
 *
 * ABI 3 (over 2): a permission verdict may carry the MQTT 5.0 reason code
 * of the refusal (ringmq_check_result.reason_code); a SUBSCRIBE may be
 * granted with a read check per delivered topic (RINGMQ_GRANTED_PER_TOPIC
 * and the check_read callback).
 *
 * ABI 4 (over 3): ringmq_connect_info tells the transport the client came
 * over and what its TLS showed (version, cipher, server name, the verified
 * client certificate's subject, CN, SANs and SHA-256), also when a proxy
 * ended the TLS and said so in PROXY v2 TLVs; ringmq_event names the
 * transport. A plugin built for ABI 2 or 3 is handed the same structs and
 * never reads past the fields it knows.
 *
 * ABI 5 (over 4): a live reload may hand a plugin its changed keys
 * (reconfigure, reconfigure_commit) instead of asking for a restart. The
 * rest of the table and every struct are as in ABI 4: a plugin built for
 * ABI 2 to 4 loads as before, and its changed keys still need a restart.
 */
#ifndef RINGMQ_PLUGIN_H
#define RINGMQ_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RINGMQ_PLUGIN_ABI_VERSION 5u
#define RINGMQ_PLUGIN_ABI_OLDEST  2u /* the oldest ABI ringmqd still loads */
#define RINGMQ_PLUGIN_ENTRY       "ringmq_plugin_entry"

/* ---- common types ---- */

/* A borrowed byte string (not NUL-terminated unless stated). */
struct ringmq_bytes {
    const uint8_t *p;
    size_t len;
};

/* A key/value pair of NUL-terminated strings (configuration, attributes,
 * user properties). */
struct ringmq_kv {
    const char *key;
    const char *value;
};

enum ringmq_log_level {
    RINGMQ_LOG_ERR = 0,
    RINGMQ_LOG_WARN = 1,
    RINGMQ_LOG_INFO = 2,
    RINGMQ_LOG_DEBUG = 3,
};

/* Kinds a plugin implements (bits of struct ringmq_plugin.kinds). */
enum ringmq_kind {
    RINGMQ_KIND_AUTH = 1u << 0,     /* authenticate (+ auth_continue) and check */
    RINGMQ_KIND_THROTTLE = 1u << 1, /* throttle */
    RINGMQ_KIND_SETTINGS = 1u << 2, /* settings */
    RINGMQ_KIND_EVENTS = 1u << 3,   /* event */
};

/* One asynchronous request; finish it with host->complete() exactly once. */
struct ringmq_call;

/* ---- authentication ---- */

/* What a client presented in CONNECT (MQTT 3.1, 3.1.1 or 5.0). */
struct ringmq_connect_info {
    uint8_t protocol_version; /* 3, 4 or 5 */
    struct ringmq_bytes client_id;
    bool has_username;
    struct ringmq_bytes username;
    bool has_password;
    struct ringmq_bytes password;
    /* The client's address, NUL-terminated: "127.0.0.1" (an IPv4 client
     * never as "::ffff:..."), "::1"; NULL if unknown. */
    const char *remote_addr;
    uint16_t remote_port;                    /* the client's TCP port; 0 if unknown */
    const char *listener;                    /* [listener.NAME] */
    const struct ringmq_kv *user_properties; /* MQTT 5.0, in order */
    size_t n_user_properties;
    struct ringmq_bytes auth_method; /* MQTT 5.0 enhanced auth; len 0 if none */
    struct ringmq_bytes auth_data;
    struct ringmq_bytes client_cert_der; /* not filled (len 0): see client_cert_sha256 */

    /* ABI 4: the transport and its TLS. Strings are NUL-terminated, NULL
     * when unknown or absent. */
    const char *transport; /* the listener's: "tcp", "tls", "ws" */
    /* TLS ended by the broker (transport "tls"), or, tls_from_proxy, by a
     * trusted proxy that sent PROXY v2 TLS TLVs (PP2_TYPE_SSL; its
     * PP2_TYPE_AUTHORITY is the server name). */
    bool tls_from_proxy;
    const char *tls_version; /* "TLSv1.2", "TLSv1.3" (from a proxy: its text); NULL: no TLS */
    const char *tls_cipher;  /* wolfSSL's suite name; NULL from a proxy */
    const char *tls_sni;     /* the server name the client asked for (SNI) */
    /* The client certificate, only when one was shown and verified
     * against the listener's tls_ca (from a proxy: its "verified" bit and
     * CN; subject is then the CN alone, SANs and SHA-256 are absent). */
    bool client_cert_verified;
    const char *client_cert_subject; /* one line: "/C=DE/O=Acme/CN=dev-1" */
    const char *client_cert_cn;      /* its commonName */
    /* SHA-256 of the certificate's DER, 64 lowercase hex digits (what
     * `openssl x509 -fingerprint -sha256` prints, without the colons). */
    const char *client_cert_sha256;
    /* subjectAltName entries, "DNS:name", "email:addr", "URI:uri", 16 at
     * most, in no particular order (a set: wolfSSL groups them by kind). */
    const char *const *client_cert_san;
    size_t n_client_cert_san;
};

/* One step of MQTT 5.0 enhanced authentication after CONNECT (AUTH with
 * reason 0x18 continue), or a re-authentication (reason 0x19). */
struct ringmq_auth_step {
    bool reauth;
    struct ringmq_bytes auth_method;
    struct ringmq_bytes auth_data;
    const char *tenant;  /* set for a re-authentication, else NULL */
    const char *user_id; /* set for a re-authentication, else NULL */
};

enum ringmq_auth_decision {
    RINGMQ_AUTH_ALLOW = 0,
    RINGMQ_AUTH_CONTINUE = 1,        /* enhanced auth: send auth_data, wait for the client */
    RINGMQ_AUTH_BAD_CREDENTIALS = 2, /* CONNACK 0x04 / 0x86 */
    RINGMQ_AUTH_NOT_AUTHORIZED = 3,  /* CONNACK 0x05 / 0x87 */
    RINGMQ_AUTH_BANNED = 4,          /* CONNACK 0x05 / 0x8A */
    RINGMQ_AUTH_BAD_METHOD = 5,      /* CONNACK 0x05 / 0x8C */
    RINGMQ_AUTH_ERROR = 6,           /* CONNACK 0x03 / 0x80 */
};

struct ringmq_auth_result {
    enum ringmq_auth_decision decision;
    const char *tenant;                 /* ALLOW: the client's tenant (NULL: "global") */
    const char *user_id;                /* ALLOW: who it is, for ACLs and events (may be NULL) */
    const struct ringmq_kv *attributes; /* kept with the session, given to check() */
    size_t n_attributes;
    const struct ringmq_kv *user_properties; /* MQTT 5.0: added to CONNACK / AUTH */
    size_t n_user_properties;
    struct ringmq_bytes auth_data; /* MQTT 5.0 enhanced auth data to send */
    const char *reason;            /* reason string for a refusal (may be NULL) */
};

/* ---- permission checks ---- */

enum ringmq_action {
    RINGMQ_ACTION_CONNECT = 0,
    RINGMQ_ACTION_PUBLISH = 1,
    RINGMQ_ACTION_SUBSCRIBE = 2,
    RINGMQ_ACTION_UNSUBSCRIBE = 3,
    /* ABI 3, check_read only: may the client receive a message on `topic`
     * (a topic name) through a subscription granted
     * RINGMQ_GRANTED_PER_TOPIC? qos and retain are 0. */
    RINGMQ_ACTION_RECEIVE = 4,
};

/* CONNECT is checked once the client's tenant is known, before its session
 * is touched; client_id is the one the client sent (empty when it asks the
 * server to assign one) and topic is empty. A RECEIVE check names the
 * session's client id and the identity of its latest connection (which may
 * be offline now: messages are queued for it). */
struct ringmq_check {
    enum ringmq_action action;
    const char *tenant;
    const char *user_id; /* may be NULL */
    struct ringmq_bytes client_id;
    struct ringmq_bytes topic; /* topic name (publish), filter (subscribe, unsubscribe) */
    uint8_t qos;
    bool retain;
    const struct ringmq_kv *attributes; /* from the auth result */
    size_t n_attributes;
};

enum ringmq_verdict {
    RINGMQ_GRANTED = 0,
    RINGMQ_DENIED = 1,
    RINGMQ_CHECK_ERROR = 2,
    /* ABI 3, SUBSCRIBE only, from a plugin with check_read: granted, but
     * some topics the filter matches may not be read (a deny rule overlaps
     * it without covering it). Each topic delivered through this
     * subscription is then checked with check_read, once per session and
     * topic while the verdict is cacheable; a denied topic is not delivered
     * (counted as dropped, reason RINGMQ_DROP_DENIED). Subscriptions
     * granted plainly cost nothing per delivery. For any other action, or
     * from a plugin without check_read, the host takes it as
     * RINGMQ_CHECK_ERROR. */
    RINGMQ_GRANTED_PER_TOPIC = 3,
};

struct ringmq_check_result {
    enum ringmq_verdict verdict;
    /* The same check (action, topic, QoS, retain) gets the same verdict for
     * the rest of this connection, or until the next reload (SIGHUP): the
     * host need not ask again. */
    bool cacheable;
    /* ABI 3: for DENIED and CHECK_ERROR, the MQTT 5.0 reason code the
     * client is sent; 0: the host's default (0x87 Not authorized; 0x80
     * Unspecified error for a CONNECT check error). Only codes the
     * specification allows in that packet are used, anything else falls
     * back to 0x87: SUBACK 0x80 0x83 0x87 0x8F 0x91 0x97 0x9E 0xA1 0xA2;
     * PUBACK / PUBREC 0x80 0x83 0x87 0x90 0x91 0x97 0x99; UNSUBACK 0x80
     * 0x83 0x87 0x8F 0x91; CONNACK 0x80 to 0x9F as MQTT 5.0 3.2.2.2 lists
     * them. MQTT 3.1 and 3.1.1 clients get their protocol's code (SUBACK
     * 0x80, CONNACK 0x05). */
    uint8_t reason_code;
};

/* ---- resource throttling ---- */

/* `current` is the tenant's use over the whole broker; for the per-second
 * resources, its use in the current second of the broker's monotonic
 * clock. The host asks once per request: once per CONNECT,
 * SUBSCRIBE filter or inbound PUBLISH, and for outbound bytes once per
 * message and shard, with `amount` covering all of that shard's deliveries
 * of it. */

enum ringmq_resource {
    RINGMQ_RES_CONNECTIONS = 0,   /* current: connections of the tenant */
    RINGMQ_RES_CONNECT_RATE = 1,  /* current: connects in the last second */
    RINGMQ_RES_SESSIONS = 2,      /* current: sessions (persistent and transient) */
    RINGMQ_RES_SUBSCRIPTIONS = 3, /* current: subscriptions */
    RINGMQ_RES_SHARED_SUBSCRIPTIONS = 4,
    RINGMQ_RES_BYTES_IN_RATE = 5,  /* current: inbound bytes in the last second */
    RINGMQ_RES_BYTES_OUT_RATE = 6, /* current: outbound (fan-out) bytes, last second */
    RINGMQ_RES_RETAINED = 7,       /* current: retained topics */
    /* current: the bytes the tenant's retained messages keep: each message
     * once (a ~40-byte header, topic, payload, properties; shards share
     * it), plus every shard's index of their topics (~112 bytes per topic
     * level per shard); amount: what the message adds beyond the one it
     * replaces. */
    RINGMQ_RES_RETAINED_BYTES = 8,
    RINGMQ_RES_COUNT
};

/* ---- per-tenant settings ---- */

/* Settings are key/value pairs named like the keys of [tenant.ID] in the
 * configuration file (e.g. "max_qos" = "1"). */
struct ringmq_settings_result {
    bool found; /* false: the tenant keeps its configured settings */
    const struct ringmq_kv *settings;
    size_t n_settings;
};

/* ---- events ---- */

enum ringmq_event_type {
    RINGMQ_EV_CONNECTED = 0,
    RINGMQ_EV_DISCONNECTED = 1, /* reason: MQTT reason code of the close */
    RINGMQ_EV_AUTH_FAILED = 2,
    RINGMQ_EV_PERMISSION_DENIED = 3,
    RINGMQ_EV_THROTTLED = 4,       /* resource: which one */
    RINGMQ_EV_MESSAGE_DROPPED = 5, /* reason: why (enum ringmq_drop_reason) */
    RINGMQ_EV_SESSION_CREATED = 6,
    RINGMQ_EV_SESSION_EXPIRED = 7,
    RINGMQ_EV_SLOW_SUBSCRIBER = 8,
};

enum ringmq_drop_reason {
    RINGMQ_DROP_QUEUE_FULL = 0,
    RINGMQ_DROP_TOO_LARGE = 1,
    RINGMQ_DROP_EXPIRED = 2,
    /* QoS 0 for a subscriber that does not read fast enough (over
     * limits.max_client_output or the broker-wide max_slow_output_total). */
    RINGMQ_DROP_SLOW_CONSUMER = 3,
    RINGMQ_DROP_NO_SHARE_MEMBER = 4,
    RINGMQ_DROP_THROTTLED = 5, /* QoS 0 over the tenant's outbound bytes quota */
    RINGMQ_DROP_DENIED = 6,    /* ABI 3: check_read refused the topic to this subscriber */
};

/* The name RINGMQ_DROP_SLOW_CONSUMER had before. */
#define RINGMQ_DROP_QOS0_BACKLOG RINGMQ_DROP_SLOW_CONSUMER

struct ringmq_event {
    enum ringmq_event_type type;
    uint64_t time_ms; /* wall clock, milliseconds since the epoch */
    const char *tenant;
    const char *user_id; /* may be NULL */
    struct ringmq_bytes client_id;
    /* As in ringmq_connect_info; NULL when the event has no live
     * connection (a session expiring, a will sent later). */
    const char *remote_addr;
    uint32_t reason; /* type-specific, see above */
    enum ringmq_resource resource;
    struct ringmq_bytes topic; /* dropped / denied: the topic or filter */
    uint32_t shard;
    /* ABI 4: the transport of the client's connection ("tcp", "tls", "ws"), as
     * ringmq_connect_info.transport; NULL with no live connection. */
    const char *transport;
};

/* ---- host services ---- */

union ringmq_result {
    struct ringmq_auth_result auth;
    struct ringmq_check_result check;
    struct ringmq_settings_result settings;
};

struct ringmq_host {
    uint32_t abi_version; /* the version spoken to this plugin: its own */
    /* Write one log line with the plugin's name in the prefix. */
    void (*log)(enum ringmq_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
    /* Monotonic milliseconds. */
    uint64_t (*now_ms)(void);
    /* Finish an asynchronous call, from any thread, exactly once. `res` is
     * the member of the union that matches the call (auth for authenticate
     * and auth_continue, check for check, settings for settings). */
    void (*complete)(struct ringmq_call *call, const union ringmq_result *res);
    /* Whether the host has stopped waiting for `call` (its timeout passed,
     * or the broker is shutting down): its answer will be ignored, so work
     * not yet started for it (a queued password hash, an HTTP request not
     * yet sent) may be skipped. The call must still be completed. Any
     * thread; valid until the plugin's complete() of that call. */
    bool (*call_abandoned)(const struct ringmq_call *call);
};

/* ---- the table a plugin exports ---- */

struct ringmq_plugin {
    uint32_t abi_version; /* RINGMQ_PLUGIN_ABI_VERSION when it was built */
    const char *name;
    uint32_t kinds; /* enum ringmq_kind bits */

    /* Required. `config` holds the keys of the plugin's [plugin.NAME]
     * section (except `path`). Return 0 and set *state, or non-zero with a
     * NUL-terminated message in err: ringmqd does not start. */
    int (*init)(const struct ringmq_host *host, const struct ringmq_kv *config, size_t n,
                void **state, char *err, size_t errlen);
    /* Required. */
    void (*fini)(void *state);
    /* Optional: SIGHUP (reload files) without dropping connections. Called
     * on the thread that reloads (the main thread for SIGHUP, the admin
     * API's for POST /api/v1/reload; one reload at a time, never beside
     * init, fini or reconfigure) while every shard goes on calling the
     * plugin: build the new state off to the side and swap it in. */
    void (*reload)(void *state);

    /* RINGMQ_KIND_AUTH: all three required. */
    void (*authenticate)(void *state, struct ringmq_call *call,
                         const struct ringmq_connect_info *info);
    void (*auth_continue)(void *state, struct ringmq_call *call,
                          const struct ringmq_auth_step *step);
    void (*check)(void *state, struct ringmq_call *call, const struct ringmq_check *check);

    /* RINGMQ_KIND_THROTTLE: called on the hot path, synchronously: must be
     * cheap. May tenant use `amount` more of `resource`, given `current`?
     * Return true to allow. */
    bool (*throttle)(void *state, const char *tenant, enum ringmq_resource resource,
                     uint64_t current, uint64_t amount);

    /* RINGMQ_KIND_SETTINGS: per-tenant settings, refreshed periodically. */
    void (*settings)(void *state, struct ringmq_call *call, const char *tenant);

    /* RINGMQ_KIND_EVENTS: one event, borrowed for the call; must not block. */
    void (*event)(void *state, const struct ringmq_event *ev);

    /* ABI 3, RINGMQ_KIND_AUTH, optional (required to grant
     * RINGMQ_GRANTED_PER_TOPIC): a RINGMQ_ACTION_RECEIVE check, answered
     * synchronously into *out (zeroed by the host; GRANTED or DENIED,
     * anything else is DENIED). Called on the subscriber's shard while it
     * delivers, so it must be cheap and must not block, like throttle; the
     * host keeps a cacheable answer per session and topic until the next
     * reload, so it is asked once per topic, not per message. */
    void (*check_read)(void *state, const struct ringmq_check *check,
                       struct ringmq_check_result *out);

    /* ABI 5, optional (both or neither): take changed keys of the plugin's
     * [plugin.NAME] section on a live reload, in two steps, so that a key
     * one plugin refuses, or a listener that cannot open, changes nothing
     * anywhere.
     *
     * reconfigure: `config` is the section's whole new key set (except
     * `path`, as for init). Check every key and build what they need (read
     * files, open them, allocate), but put nothing in force: return 0 and
     * set *next to what was built (any pointer, NULL included), or non-zero
     * with a NUL-terminated message in err, having kept nothing (the reload
     * is then refused with that message).
     *
     * reconfigure_commit: exactly once after a reconfigure that returned 0,
     * with its *next: apply true puts it in force (calls from then on use
     * the new keys), false discards it (another plugin or the broker
     * refused the reload). Must not fail: what could fail belongs in
     * reconfigure.
     *
     * Threads: both run on the thread that reloads, like reload (one
     * reload at a time, never beside init, fini or reload), while every
     * shard, and the plugin's own threads, go on calling its callbacks:
     * what those read must be swapped safely (a lock, or an atomic pointer
     * to an immutable version freed only once no call can hold it). Calls
     * in flight may finish under the old keys. After a commit the host
     * drops the verdicts it cached (as after reload). Unchanged keys do
     * not call it; a changed `path` needs a restart. */
    int (*reconfigure)(void *state, const struct ringmq_kv *config, size_t n, void **next,
                       char *err, size_t errlen);
    void (*reconfigure_commit)(void *state, void *next, bool apply);
};

/* The entry point: `const struct ringmq_plugin *ringmq_plugin_entry(void)`. */
typedef const struct ringmq_plugin *(*ringmq_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif
