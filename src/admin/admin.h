/*
 * admin: the authenticated admin HTTP API ([admin] enabled, bind, port,
 * token_file, tls_cert, tls_key, tls_client_ca): JSON under /api/v1,
 * documented in docs/admin-api.md, over HTTPS when tls_cert is set.
 *
 * libmicrohttpd serves it on its own thread, never on a shard. This room
 * owns the HTTP side (routing, authentication against the token file,
 * JSON with jansson) and knows nothing of shards: the broker answers its
 * questions through struct admin_ops, on the admin thread, and gathers
 * shard-owned data its own way: counters by plain loads, as the metrics
 * collector reads them; clients by asking each shard, which answers on
 * its own thread within one loop turn (broker/control.h), the admin
 * thread waiting at most ADMIN_SHARD_WAIT_MS (then 503). Every refusal
 * (401, 403) is logged. Writes (POST, DELETE) need the admin role; a POST's
 * JSON body is bounded (http.h's ADMIN_BODY_MAX).
 *
 * Authentication: `Authorization: Bearer TOKEN`, checked against the
 * token file's hashes (admin/token.h). No token or an unknown one: 401; a
 * token limited to other tenants, or a read token on a write endpoint:
 * 403. Without a token file (config allows that on loopback only) every
 * caller is an admin of every tenant. With tls_client_ca every request
 * first needs a client certificate that verifies against it (else 403),
 * bearer token or not.
 */
#ifndef RINGMQ_ADMIN_ADMIN_H
#define RINGMQ_ADMIN_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "config/report.h"

/* One tenant as GET /tenants shows it. */
struct admin_tenant {
    const char *name; /* borrowed: lives as long as the broker */
    uint64_t connections, sessions;
};

/* The longest the broker waits for the shards' answers to one request:
 * past it the request fails with -ETIMEDOUT (503). */
#define ADMIN_SHARD_WAIT_MS 2000u

/* Clients per page: by default, and at most (GET .../clients?limit=). */
#define ADMIN_PAGE_DEFAULT 100u
#define ADMIN_PAGE_MAX     1000u

/* A client id's longest (MQTT's string limit). */
#define ADMIN_CLIENT_ID_MAX 65535u

/* The text of an IPv4 or IPv6 address, NUL included (INET6_ADDRSTRLEN). */
#define ADMIN_ADDR_MAX 46

/* One connected client (CONNECT accepted) as GET .../clients shows it. */
struct admin_client {
    char *id; /* malloc'd, id_len bytes and a NUL; owned by whoever holds the entry */
    uint16_t id_len;
    uint8_t version;    /* MQTT protocol level: 3 (3.1), 4 (3.1.1), 5 (5.0) */
    uint16_t keepalive; /* seconds, as granted */
    uint16_t port;
    char addr[ADMIN_ADDR_MAX]; /* "" when unknown */
    const char *listener;      /* borrowed: the configured listener's name */
    const char *transport;     /* borrowed: tcp, tls, ws, ... */
    int64_t connected_since;   /* Unix time (s) CONNECT was accepted */
    uint32_t subscriptions;    /* in its session */
    uint32_t inflight;         /* QoS 1/2 deliveries waiting for their acks */
    uint32_t queued;           /* messages queued behind them */
};

/* Which clients a page holds: ids in byte order (for UTF-8, code point
 * order) after `after` (NULL: from the first), starting with `prefix`
 * (NULL or empty: any), at most `limit` (1..ADMIN_PAGE_MAX). Borrowed. */
struct admin_client_query {
    const char *prefix;
    size_t prefix_len;
    const char *after;
    size_t after_len;
    uint32_t limit;
};

/*
 * A page of clients: v[0..n) in id order, each id owned by the page. Keyset
 * paging: `more` says the next page starts after `next` (malloc'd, next_len
 * bytes and a NUL, owned by the page; NULL: after v[n-1]). A page cut short
 * by the shards' work bound ([admin] page_budget) has fewer than `limit`
 * clients, possibly none, and `more` with `next` set past them.
 */
struct admin_client_page {
    struct admin_client *v;
    uint32_t n;
    bool more; /* more clients may match after next (or v[n-1]) */
    char *next;
    uint16_t next_len;
};

/* Free the page's entries, ids and next (the struct itself is the
 * caller's). */
void admin_client_page_fini(struct admin_client_page *p);

/* Free one entry's id. */
void admin_client_fini(struct admin_client *c);

/* One subscription of a session as GET .../sessions/{id} shows it: its
 * filter, granted QoS and options (MQTT 5.0 3.8.3.1; 3.1.1 sessions have
 * them all 0). */
struct admin_sub {
    char *filter; /* malloc'd, len bytes and a NUL */
    uint16_t len;
    uint8_t qos;
    bool no_local, retain_as_published;
    uint8_t retain_handling; /* as subscribed: 0, 1 or 2 */
    uint32_t subid;          /* Subscription Identifier; 0: none */
};

/* One session (connected or not) as GET .../sessions shows it. subs is
 * filled for one session only (GET .../sessions/{id}), NULL in a page. */
struct admin_session {
    char *id; /* malloc'd, id_len bytes and a NUL */
    uint16_t id_len;
    bool connected;
    uint32_t expiry_s;     /* Session Expiry Interval; ADMIN_EXPIRY_NEVER: never */
    int64_t expires_in_ms; /* offline: time left before it ends; -1: none (connected, never) */
    uint32_t subscriptions, inflight, queued;
    struct admin_sub *subs; /* [subscriptions] or NULL */
};

#define ADMIN_EXPIRY_NEVER UINT32_MAX

/* Which sessions a page holds: as struct admin_client_query (by client
 * id), and only the offline ones when `offline`. */
struct admin_session_query {
    struct admin_client_query q;
    bool offline;
};

/* A page of sessions: v[0..n) in id order, each owned by the page; more,
 * next and next_len as in struct admin_client_page. */
struct admin_session_page {
    struct admin_session *v;
    uint32_t n;
    bool more;
    char *next;
    uint16_t next_len;
};

/* Free one session's id and subscriptions; a page's entries, array and
 * next. */
void admin_session_fini(struct admin_session *s);
void admin_session_page_fini(struct admin_session_page *p);

/* A topic's longest (MQTT's string limit). */
#define ADMIN_TOPIC_MAX 65535u

/* One retained message. In a page payload is NULL (its length is given);
 * for one message it is the payload's copy. */
struct admin_retained {
    char *topic; /* malloc'd, topic_len bytes and a NUL */
    uint16_t topic_len;
    uint8_t qos;
    uint32_t payload_len, props_len;
    uint8_t *payload; /* malloc'd or NULL */
};

/* Which retained messages a page holds: topics matching `filter` (a valid
 * topic filter), in byte order after `after` (NULL: from the first), at
 * most `limit`. Borrowed. */
struct admin_retained_query {
    const char *filter;
    size_t filter_len;
    const char *after;
    size_t after_len;
    uint32_t limit;
};

/* v[0..n) in topic order; with `more`, the next page starts after next
 * (malloc'd, next_len bytes and a NUL: the last topic the shard looked at,
 * listed or not) or, when NULL, after v[n-1]. */
struct admin_retained_page {
    struct admin_retained *v;
    uint32_t n;
    bool more;
    char *next;
    uint16_t next_len;
};

void admin_retained_fini(struct admin_retained *r);
void admin_retained_page_fini(struct admin_retained_page *p);

/* Most User Properties one POST .../publish may carry. */
#define ADMIN_USER_PROPS_MAX 100u

/* An MQTT string's or binary value's longest (MQTT-1.5.4, 1.5.6). */
#define ADMIN_STRING_MAX 65535u

/* A User Property: two UTF-8 strings without U+0000. Borrowed. */
struct admin_user_prop {
    const char *name, *value;
    size_t name_len, value_len;
};

/* A message POST .../publish puts into a tenant, with its MQTT 5.0
 * properties (5.0 subscribers get them, 3.1/3.1.1 ones the message
 * alone). Borrowed. Strings are valid UTF-8 without U+0000, each at most
 * ADMIN_STRING_MAX bytes, as the body's parser (admin/body.h) leaves them;
 * the broker checks the MQTT rules again on the encoded block. */
struct admin_publish {
    const char *topic;
    size_t topic_len;
    const uint8_t *payload;
    size_t payload_len;
    uint8_t qos;
    bool retain;
    uint32_t expiry_s;        /* Message Expiry Interval; 0: none */
    int payload_format;       /* Payload Format Indicator: -1 none, 0 bytes, 1 UTF-8 */
    const char *content_type; /* NULL: none */
    size_t content_type_len;
    const char *response_topic; /* NULL: none; a topic name (MQTT-3.3.2-14) */
    size_t response_topic_len;
    const uint8_t *correlation; /* NULL: none (it may be empty) */
    size_t correlation_len;
    const struct admin_user_prop *user; /* [nuser], in order (MQTT-3.3.2-18) */
    size_t nuser;
};

/* A subscription POST .../sessions/{id}/subscriptions adds, with the
 * options of a 5.0 SUBSCRIBE (3.8.3.1). Borrowed. */
struct admin_sub_add {
    const char *filter;
    size_t filter_len;
    uint8_t qos;   /* requested: 0..2 */
    bool no_local; /* not on a shared subscription (MQTT-3.8.3-4) */
    bool retain_as_published;
    uint8_t retain_handling; /* 0, 1 or 2 (MQTT-3.3.1-9..11) */
    uint32_t subid;          /* 1..268435455; 0: none */
};

/* What adding a subscription did. */
struct admin_sub_result {
    bool existed; /* it held the filter already: replaced (MQTT-3.8.4-3) */
    uint8_t qos;  /* granted (the tenant's max_qos may lower it) */
};

/* Most retained messages one DELETE .../retained?filter= clears: each
 * other shard's ring (1024 slots) holds the clears it is sent. ([admin]
 * page_budget bounds the topics the request looks at.) */
#define ADMIN_RETAINED_CLEAR_MAX 1000u

/* What one clear of a filter's retained messages did: n cleared; with
 * `more`, matching ones may be left after `next` (malloc'd, next_len bytes
 * and a NUL, owned by the caller: the last topic shard 0 looked at,
 * cleared or not), where the next clear goes on (its `after`). */
struct admin_retained_cleared {
    uint32_t n;
    bool more;
    char *next;
    uint16_t next_len;
};

/* What the broker answers; each runs on the admin thread, one request at
 * a time. An op that asks the shards waits for them at most
 * ADMIN_SHARD_WAIT_MS (a slow answer delays only other admin requests).
 * Tenant names are borrowed, NUL-terminated; client ids are bytes. */
struct admin_ops {
    /* Every tenant the broker has seen, with its live counts: the first
     * `cap` into v; returns how many there are (more than cap: call
     * again with more room). */
    uint32_t (*tenants)(void *arg, struct admin_tenant *v, uint32_t cap);
    /* A page of tenant `tenant`'s connected clients (*out filled, its
     * entries owned by the caller). 0, -ENOENT (no such tenant),
     * -ETIMEDOUT (a shard did not answer in time), -ENOMEM. */
    int (*clients)(void *arg, const char *tenant, const struct admin_client_query *q,
                   struct admin_client_page *out);
    /* One connected client into *out (its id owned by the caller). 0,
     * -ENOENT (no such tenant or client connected), -ETIMEDOUT, -ENOMEM. */
    int (*client)(void *arg, const char *tenant, const char *id, size_t len,
                  struct admin_client *out);
    /* Close that client's connection (a 5.0 client first gets DISCONNECT
     * 0x98, Administrative action); with delete_session its session ends
     * with it. 0, -ENOENT, -ETIMEDOUT, -ENOMEM. */
    int (*kick)(void *arg, const char *tenant, const char *id, size_t len, bool delete_session);
    /* A page of tenant `tenant`'s sessions, gathered from every shard.
     * 0, -ENOENT (no such tenant), -ETIMEDOUT, -ENOMEM. */
    int (*sessions)(void *arg, const char *tenant, const struct admin_session_query *q,
                    struct admin_session_page *out);
    /* One session, connected or not, with its subscriptions. 0, -ENOENT
     * (no such tenant or session), -ETIMEDOUT, -ENOMEM. */
    int (*session)(void *arg, const char *tenant, const char *id, size_t len,
                   struct admin_session *out);
    /* End that session: a connected client is kicked (as kick with
     * delete_session), an offline session ends now. 0, -ENOENT,
     * -ETIMEDOUT, -ENOMEM. */
    int (*session_delete)(void *arg, const char *tenant, const char *id, size_t len);
    /* A page of the tenant's retained messages (no payloads). 0, -EINVAL
     * (not a valid filter), -ENOENT, -ETIMEDOUT, -ENOMEM. */
    int (*retained)(void *arg, const char *tenant, const struct admin_retained_query *q,
                    struct admin_retained_page *out);
    /* The retained message of exactly `topic`, payload copied. 0, -EINVAL
     * (not a valid topic name), -ENOENT, -ETIMEDOUT, -ENOMEM. */
    int (*retained_one)(void *arg, const char *tenant, const char *topic, size_t len,
                        struct admin_retained *out);
    /* Clear the retained message of `topic` as a retained PUBLISH with an
     * empty payload would. 0, -EINVAL, -ENOENT (none there), -ETIMEDOUT,
     * -ENOMEM. */
    int (*retained_delete)(void *arg, const char *tenant, const char *topic, size_t len);
    /* Clear the retained messages of the topics q->filter matches after
     * q->after (NULL: from the first), each as retained_delete does, read
     * as a page of `retained` is: at most q->limit of them
     * (1..ADMIN_RETAINED_CLEAR_MAX) and [admin] page_budget topics looked
     * at; *out says how many and where to go on. 0, -EINVAL (not a valid
     * filter or limit), -ENOENT (no such tenant), -ETIMEDOUT, -ENOMEM
     * (call again with the same query). */
    int (*retained_clear)(void *arg, const char *tenant, const struct admin_retained_query *q,
                          struct admin_retained_cleared *out);
    /* Publish `p` into the tenant as the broker's own PUBLISH (no session
     * sent it): retained, delivered and stored as a client's would be,
     * its properties with it. 0, -EINVAL (not a valid topic name, $SYS,
     * or over the tenant's limits), -EPROTO (properties MQTT refuses),
     * -EILSEQ (Payload Format Indicator 1 on a payload that is not
     * UTF-8), -EIO (QoS 1/2 or retain while the store cannot write),
     * -ENOENT (no such tenant), -ETIMEDOUT, -ENOMEM. */
    int (*publish)(void *arg, const char *tenant, const struct admin_publish *p);
    /* Subscribe session `id` (connected or not) as its SUBSCRIBE with
     * a's filter and options would (the ACL not asked: the caller is an
     * admin); the retained messages follow as Retain Handling says, sent
     * to a connected session, queued for an offline one (QoS 1/2 only, as
     * any message for it). 0, -EINVAL (not a valid filter, or refused by
     * the tenant's settings), -EOPNOTSUPP (a Subscription Identifier
     * where the tenant has them off), -ENOSPC (its max_subscriptions),
     * -ENOENT (no such tenant or session), -ETIMEDOUT, -ENOMEM. */
    int (*subscribe)(void *arg, const char *tenant, const char *id, size_t len,
                     const struct admin_sub_add *a, struct admin_sub_result *out);
    /* Remove that subscription as UNSUBSCRIBE would. 0, -EINVAL, -ENOENT
     * (no such tenant, session or subscription), -ETIMEDOUT. */
    int (*unsubscribe)(void *arg, const char *tenant, const char *id, size_t len,
                       const char *filter, size_t flen);
    /* The reload SIGHUP makes, done now (serialized with SIGHUP's), its
     * outcome into *out (the caller's, config_report_init'ed; the caller
     * frees it). 0; -EINVAL: refused, nothing changed (out->errors say
     * why); -EAGAIN: the broker is not ready to reload yet; -ENOMEM. */
    int (*reload)(void *arg, struct config_report *out);
};

struct admin_server;

/*
 * Load cfg->admin_token_file (when set) and listen on admin_bind:
 * admin_port (0 picks a port: *bound_port returns it, may be NULL). `ops`
 * and `arg` are borrowed and must outlive the server. NULL with a message
 * in err ("admin: ..." or the token file's "PATH:LINE: reason") on failure.
 */
struct admin_server *admin_server_start(const struct config *cfg, const struct admin_ops *ops,
                                        void *arg, uint16_t *bound_port, char *err, size_t errlen);

/*
 * What admin_server_start would read, read and checked without listening
 * (--check-config): the token file and the TLS files (admin/tls.h). 0, or
 * -1 with the same message in err that a start would give.
 */
int admin_check(const struct config *cfg, char *err, size_t errlen);

/*
 * Reload, first step: read and check the TLS files of cfg ([admin]
 * tls_cert, tls_key, tls_client_ca) again, into certificates not yet
 * served. Nothing to do without HTTPS (s NULL, or no tls_cert at start:
 * turning it on needs a restart). 0, or -errno with the reason in err
 * ("admin: tls_cert FILE: ..."): the ones served stay. One reload at a
 * time (the caller's lock).
 */
int admin_server_tls_reload(struct admin_server *s, const struct config *cfg, char *err,
                            size_t errlen);

/* Reload, second step: serve what admin_server_tls_reload read to every
 * new connection (serve), or drop it (the reload was refused). Open
 * connections keep theirs. Nothing pending: no-op. */
void admin_server_tls_commit(struct admin_server *s, bool serve);

/* Stop: joins the HTTP thread, so no op runs once this returns. NULL: no-op. */
void admin_server_stop(struct admin_server *s);

#endif
