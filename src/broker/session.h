/*
 * session: MQTT session state of one client id, homed on the shard chosen
 * by the hash of (tenant, client id), so takeover and resumption are always
 * local. Holds subscriptions, QoS 1/2 in-flight messages, the bounded
 * queue for offline or slow clients, inbound QoS 2 packet ids and the will.
 */
#ifndef RINGMQ_BROKER_SESSION_H
#define RINGMQ_BROKER_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/wheel.h"

struct shard;
struct tenant_settings;
struct tenant;
struct conn;
struct msg;

/* Subscription options besides QoS (MQTT 5.0 3.8.3.1). */
enum sub_opt {
    SUB_NO_LOCAL = 1u << 0,            /* not sent to the publishing session */
    SUB_RETAIN_AS_PUBLISHED = 1u << 1, /* keep the retain flag on live delivery */
    /* Granted RINGMQ_GRANTED_PER_TOPIC: each topic delivered through it
     * needs readcheck_allows (the session's read checks). */
    SUB_READ_CHECK = 1u << 2,
};

/* One subscriber of a filter on this shard (value of the trie). */
struct sub_entry {
    struct session *s;
    uint8_t qos;
    uint8_t opts;   /* enum sub_opt */
    uint32_t subid; /* Subscription Identifier, 0: none */
};

/* Trie value: this shard's subscribers of one filter, and the interest
 * mask of shards that have at least one (own bit set iff n > 0). */
struct sub_node {
    uint64_t mask;
    uint32_t n, cap;
    struct sub_entry *v;
    struct share_group *groups; /* shared subscriptions on this filter (share.c) */
};

/* A subscription as the session remembers it. */
struct sess_sub {
    uint8_t qos;
    uint8_t opts;
    uint16_t len;
    uint32_t subid;
    uint8_t filter[];
};

/* Options of one subscription request. */
struct sub_req {
    uint8_t qos;
    uint8_t opts;   /* enum sub_opt */
    uint32_t subid; /* 0: none */
};

enum inflight_state {
    INFL_WAIT_ACK = 1,  /* PUBLISH sent, waiting for PUBACK or PUBREC */
    INFL_WAIT_COMP = 2, /* PUBREL sent, waiting for PUBCOMP */
};

/* Subscription Identifiers of one delivery: ids[0] is the count. Heap,
 * owned by the in-flight or queue entry; NULL when there are none. */
typedef uint32_t *subids_t;

struct inflight {
    struct msg *m; /* NULL once PUBREC arrived */
    subids_t ids;
    struct xfilter *share; /* came through this $share filter, or NULL */
    uint16_t pid;
    uint8_t qos;
    uint8_t state;
    uint8_t retain;
    uint8_t held; /* not resent yet: over the Receive Maximum at reconnection */
};

struct qentry {
    struct msg *m;
    subids_t ids;
    struct xfilter *share;
    uint8_t qos;
    uint8_t retain;
    uint8_t paid; /* counted against the outbound bytes quota already */
};

struct session_timer;

struct pending_sub;
struct share_group;
struct xfilter;
struct readcheck;

/* Field order fills what alignment would leave empty: the struct is 176
 * bytes, a multiple of the slab's 16, and every connection has one (the
 * size is asserted in session.c). The match_* fields are route.c's scratch
 * for one publish. */
struct session {
    struct session *reg_next; /* tenant registry chain */
    uint64_t reg_hash;
    struct tenant *tenant;
    struct conn *conn; /* NULL while offline */
    uint8_t *client_id;
    uint16_t client_id_len;
    uint16_t next_pid;
    uint16_t window; /* in-flight limit: min(max_inflight, client's Receive Maximum) */
    uint8_t match_qos;
    uint8_t match_rap; /* a matching subscription keeps the retain flag */
    uint32_t expiry_s; /* Session Expiry Interval: 0 ends with the connection, ~0 never */
    uint32_t will_delay_s;
    struct session_timer *timer; /* while offline with a deadline */
    struct sess_sub **subs;
    uint32_t nsubs, subs_cap;
    struct inflight *infl; /* in send order */
    uint16_t ninfl, infl_cap;
    uint16_t nheld;       /* in-flight entries held back (inflight.held) */
    uint8_t match_denied; /* matched only through subscriptions refused the topic */
    bool out_throttled;   /* in shard->throttled: the queue waits for the quota */
    struct qentry *q;     /* ring buffer */
    uint32_t qhead, qlen, qcap;
    uint32_t match_ids; /* scratch: 1 + index of the first Subscription Identifier */
    uint64_t qbytes;
    uint16_t *qos2_in; /* inbound QoS 2 ids waiting for PUBREL */
    uint16_t nqos2, qos2_cap;
    bool slow; /* QoS 0 is being dropped for it: reported once (slow_subscriber) */
    struct msg *will;
    uint64_t match_epoch; /* 64-bit: never wraps (a wrap would skip sessions) */
    struct pending_sub *pending;
    struct readcheck *reads; /* per-topic read checks (readcheck.h), NULL: none */
};

#define SESSION_EXPIRY_NEVER UINT32_MAX

/* What a CONNECT asks of its session. */
struct session_opts {
    bool clean_start;      /* discard any previous state */
    uint32_t expiry_s;     /* Session Expiry Interval granted */
    uint32_t will_delay_s; /* Will Delay Interval */
    struct msg *will;      /* taken; may be NULL */
    uint16_t window;       /* in-flight limit for this connection */
};

/*
 * Attach connection `c` to the session of `client_id` in tenant `t`,
 * taking over a connected one (it is closed) and creating the session if
 * needed. *present says whether state was resumed. Takes ownership of
 * o->will. NULL on OOM.
 */
struct session *session_attach(struct shard *s, struct tenant *t, struct conn *c,
                               const uint8_t *client_id, size_t len, const struct session_opts *o,
                               bool *present);

/* True when tenant `t` holds a session for this client id here. */
bool session_exists(struct tenant *t, const uint8_t *id, size_t len);

/* The session of client id `id` in tenant t, or NULL (borrowed). */
struct session *session_find(struct tenant *t, const uint8_t *id, size_t len);

/* True when that session is held by a connection, which a CONNECT with the
 * same client id takes over (closes). */
bool session_connected(struct tenant *t, const uint8_t *id, size_t len);

/* After CONNACK: resend in-flight messages (DUP) and PUBRELs in order, then
 * move queued messages in (MQTT-4.4.0-1). */
void session_resume(struct shard *s, struct session *ss);

/* The connection is gone: publish the will when `send_will` (now, or after
 * the Will Delay Interval), then end the session if its expiry is 0 or
 * keep it offline until it expires. */
void session_detach(struct shard *s, struct session *ss, bool send_will);

/* Deliver `m` at `qos` (already the min of message and subscription QoS),
 * with `nids` Subscription Identifiers. */
void session_deliver(struct shard *s, struct session *ss, struct msg *m, uint8_t qos, bool retain,
                     const uint32_t *ids, size_t nids);

/* The same for a delivery through the shared subscription `share`: if the
 * session ends before the client acknowledges, the message goes to another
 * member of the group. */
void session_deliver_shared(struct shard *s, struct session *ss, struct msg *m, uint8_t qos,
                            bool retain, const uint32_t *ids, size_t nids, const uint8_t *share,
                            size_t share_len);

/* Send what sessions held back for the outbound bytes quota, as far as the
 * quota allows now (each shard tick). */
void session_drain_throttled(struct shard *s);

/* Publish the session's will now (its Message Expiry starts now). */
void session_publish_will(struct shard *s, struct session *ss);

/* Offline sessions' deadlines (will delay, expiry), from the shard's
 * session wheel. */
void session_on_timer(struct wheel_entry *e, void *shard);

/* Acknowledgements from the client. Return 0, or a reason code for a
 * protocol violation (the caller closes). */
int session_on_puback(struct shard *s, struct session *ss, uint16_t pid);
int session_on_pubrec(struct shard *s, struct session *ss, uint16_t pid, uint8_t reason);
int session_on_pubcomp(struct shard *s, struct session *ss, uint16_t pid);

/* Inbound QoS 2 ids: true when pid is waiting for PUBREL. */
bool session_qos2_has(const struct session *ss, uint16_t pid);
int session_qos2_add(struct shard *s, struct session *ss, uint16_t pid);
void session_qos2_remove(struct session *ss, uint16_t pid);

/* Add or replace a subscription; *is_new_interest says whether this shard
 * had no subscriber of the filter before, *existed whether the session
 * had this subscription already. 0 or -ENOMEM. */
int session_subscribe(struct shard *s, struct session *ss, const uint8_t *filter, size_t len,
                      const struct sub_req *req, bool *is_new_interest, bool *existed);

/* True when the session holds exactly this filter. */
bool session_has_sub(struct session *ss, const uint8_t *filter, size_t len);

/* Remove a subscription; returns true when it existed. */
bool session_unsubscribe(struct shard *s, struct session *ss, const uint8_t *filter, size_t len);

/* True when a topic or filter is within the tenant's length and level
 * limits. */
bool topic_within_limits(const struct tenant_settings *ts, const uint8_t *t, size_t len);

/* Free every session of the tenant (shutdown). */
void session_destroy_all(struct shard *s, struct tenant *t);

#endif
