/*
 * session: MQTT session state of one client id, homed on the shard chosen
 * by the hash of (tenant, client id), so takeover and resumption are always
 * local. Holds subscriptions, QoS 1/2 in-flight messages, the bounded
 * queue for offline or slow clients, inbound QoS 2 packet ids and the will.
 *
 * The session room, one file per job, each with its header:
 *   session.c           life cycle: attach, detach, will, expiry (below)
 *   session_registry.c  client id -> session, per tenant
 *   session_outbox.c    in-flight window, queue, delivery, acks, QoS 2 ids
 *   session_subs.c      subscriptions and their entries in the topic index
 * This header is the room's face: it defines the types and includes the
 * others, so a caller includes it alone. The durable part of a session is
 * struct session_state; its changes are told to a store (store.h).
 */
#ifndef RINGMQ_BROKER_SESSION_H
#define RINGMQ_BROKER_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/session_outbox.h"
#include "broker/session_registry.h"
#include "broker/session_subs.h"
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

/*
 * The fields of struct session_state, listed once (see struct session for
 * why a macro). What a store keeps of a session (store.h): all of it is
 * changed only in the session room (session*.c), and each change is told
 * to the store where it happens.
 *
 * Invariants: infl[0..ninfl) in send order, packet ids distinct; the queue
 * is the ring q[(qhead + i) & (qcap - 1)], i < qlen, qcap a power of two
 * (or 0 with q NULL), qbytes the msg_size sum of its messages; qos2_in
 * holds nqos2 distinct ids; subs[0..nsubs) distinct filters. The window and
 * the queue, read for every QoS 1/2 delivery, come first.
 */
/* The durable part of a session: client id, expiry, subscriptions, the
 * in-flight window, the queue, the will and its delay, inbound QoS 2 ids
 * (the `held` flag of an in-flight entry is the connection's, not state). */
struct session_state {
    struct inflight *infl; /* in send order */
    struct qentry *q;      /* ring buffer */
    uint32_t qhead, qlen;
    uint32_t qcap;
    uint16_t ninfl, infl_cap;
    uint64_t qbytes;
    struct sess_sub **subs;
    uint8_t *client_id;
    struct msg *will;  /* its own until published: see store.h */
    uint16_t *qos2_in; /* inbound QoS 2 ids waiting for PUBREL */
    uint32_t expiry_s; /* Session Expiry Interval: 0 ends with the connection, ~0 never */
    uint32_t will_delay_s;
    uint32_t nsubs, subs_cap;
    uint16_t client_id_len;
    uint16_t nqos2, qos2_cap;
};

/*
 * A session: what it has only while the broker runs (registry chain,
 * connection, timers, route.c's matching scratch, the throttled flag), then
 * its durable state. Field order fills what alignment would leave empty: the
 * struct is 176 bytes (80 + 96), a multiple of the slab's 16, and every
 * connection has one (the size is asserted in session.c). The fields read
 * for every delivery (tenant, conn, match_*, slow) come first, within one
 * byte's displacement of the pointer.
 *
 * Outside the session room the state is read through ss->st; the one write
 * there, connect.c's Session Expiry Interval at DISCONNECT, is told to the
 * store by the session_detach that follows.
 */
struct session {
    struct session *reg_next; /* tenant registry chain (session_registry.c) */
    uint64_t reg_hash;
    struct tenant *tenant;
    struct conn *conn;           /* NULL while offline */
    struct session_timer *timer; /* while offline with a deadline */
    uint64_t match_epoch;        /* 64-bit: never wraps (a wrap would skip sessions) */
    struct pending_sub *pending;
    struct readcheck *reads; /* per-topic read checks (readcheck.h), NULL: none */
    uint32_t match_ids;      /* scratch: 1 + index of the first Subscription Identifier */
    uint16_t next_pid;       /* ids in use are those of st.infl: nothing to keep */
    uint16_t window;         /* in-flight limit: min(max_inflight, client's Receive Maximum) */
    uint16_t nheld;          /* in-flight entries held back (inflight.held) */
    uint8_t match_qos;       /* route.c's scratch for one publish, as are match_* */
    uint8_t match_rap;       /* a matching subscription keeps the retain flag */
    uint8_t match_denied;    /* matched only through subscriptions refused the topic */
    bool out_throttled;      /* in shard->throttled: the queue waits for the quota */
    bool slow;               /* QoS 0 is being dropped for it: reported once (slow_subscriber) */
    struct session_state st;
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

/* The connection is gone: publish the will when `send_will` (now, or after
 * the Will Delay Interval), then end the session if its expiry is 0 or
 * keep it offline until it expires. */
void session_detach(struct shard *s, struct session *ss, bool send_will);

/* The session ends with its connection (the admin API's kick with
 * session=delete): its expiry becomes 0, which the session_detach of the
 * close that follows tells the store. */
void session_end_with_connection(struct session *ss);

/* Publish the session's will now (its Message Expiry starts now). */
void session_publish_will(struct shard *s, struct session *ss);

/* Offline sessions' deadlines (will delay, expiry), from the shard's
 * session wheel. */
void session_on_timer(struct wheel_entry *e, void *shard);

/* Free every session of the tenant (shutdown: the sessions have not ended,
 * and the store is not told). */
void session_destroy_all(struct shard *s, struct tenant *t);

#endif
