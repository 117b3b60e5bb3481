/*
 * session: MQTT session state of one client id, homed on the shard chosen
 * by the hash of (tenant, client id), so takeover and resumption are always
 * local. Holds subscriptions, QoS 1/2 in-flight messages, the bounded
 * queue for offline or slow clients, inbound QoS 2 packet ids and the will.
 *
 * The session room (src/session), one file per job, each with its header:
 *   session.c   life cycle: attach, detach, will, expiry (below)
 *   registry.c  client id -> session, per tenant
 *   idtree.c    the same sessions in client id order (the admin API's pages)
 *   outbox.c    in-flight window, queue, delivery, acks, QoS 2 ids
 *   subs.c      subscriptions and their entries in the topic index
 *   store.c     the store seam: every change of durable state told (store.h)
 *   msg.c       the immutable, refcounted messages sessions hold
 * This header is the room's face: it defines the types and includes the
 * others, so a caller includes it alone. The durable part of a session is
 * struct session_state; its changes are told to a store (store.h).
 *
 * The room's contract with the rooms around it:
 *  - It sits below src/broker and includes only core, mqtt, index, net,
 *    tenant and shard (tools/check-layers.sh). What it needs from the
 *    broker (writing packets to a client, routing a will, shared
 *    subscriptions, the other shards' interest, read checks, events and
 *    quotas) it calls through struct session_ops (below), which the
 *    broker puts in each shard's session_ops before the shard serves.
 *  - It knows a client only as its connection's byte stream (net/stream.h):
 *    set by session_attach when CONNECT completes, cleared by
 *    session_detach when the connection closes.
 *  - Everything runs on the owning shard's thread; a session and all it
 *    holds belong to that shard. Messages cross shards by reference
 *    (msg.h), never sessions.
 */
#ifndef RINGMQ_SESSION_SESSION_H
#define RINGMQ_SESSION_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/wheel.h"
#include "ringmq/plugin.h"
#include "session/outbox.h"
#include "session/idtree.h"
#include "session/registry.h"
#include "session/subs.h"

struct shard;
struct tenant_settings;
struct tenant;
struct stream;
struct msg;
struct mqtt_share_spec;

/* Subscription options besides QoS (MQTT 5.0 3.8.3.1). */
enum sub_opt {
    SUB_NO_LOCAL = 1u << 0,            /* not sent to the publishing session */
    SUB_RETAIN_AS_PUBLISHED = 1u << 1, /* keep the retain flag on live delivery */
    /* Granted RINGMQ_GRANTED_PER_TOPIC: each topic delivered through it
     * needs readcheck_allows (the session's read checks). */
    SUB_READ_CHECK = 1u << 2,
};

/* Retain Handling as subscribed (0..2, MQTT 5.0 3.8.3.1), in bits 3-4 of
 * the options: it acted when the subscription was made (which retained
 * messages went), so it is only kept (in the store with the rest) and
 * shown (the admin API's GET of a session). */
#define SUB_RH_SHIFT 3
#define SUB_RH_MASK  (3u << SUB_RH_SHIFT)

static inline uint8_t sub_opts_retain_handling(uint8_t opts)
{
    return (uint8_t)((opts & SUB_RH_MASK) >> SUB_RH_SHIFT);
}

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

/* True when the node holds nothing: no local subscriber, no interest from
 * other shards, no group (it can leave the trie). */
static inline bool sub_node_empty(const struct sub_node *n)
{
    return n->n == 0 && n->mask == 0 && n->groups == NULL;
}

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

static inline void sub_req_set_retain_handling(struct sub_req *r, uint8_t rh)
{
    r->opts = (uint8_t)((r->opts & ~SUB_RH_MASK) | ((unsigned)rh << SUB_RH_SHIFT & SUB_RH_MASK));
}

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
 * changed only in the session room (src/session), and each change is told
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
 * client stream, timers, route.c's matching scratch, the throttled flag), then
 * its durable state, then the links of the tenant's id order (idtree.h),
 * last because only a new or ending session and the admin API's pages read
 * them. Field order fills what alignment would leave empty: the struct is
 * 192 bytes (80 + 96 + 16), a multiple of the slab's 16, and every
 * connection has one (the size is asserted in session.c). The fields read
 * for every delivery (tenant, conn, match_*, slow) come first, within one
 * byte's displacement of the pointer.
 *
 * The client is the byte stream (net/stream.h) of the connection holding
 * the session: the room reads its backlog and has the broker write to it
 * (session_ops); the broker's struct conn begins with it (conn_of_stream).
 * It is set exactly while that connection is active: from session_attach,
 * as CONNECT completes, to session_detach, as the connection closes.
 *
 * Outside the session room the state is read through ss->st; the one write
 * there, connect.c's Session Expiry Interval at DISCONNECT, is told to the
 * store by the session_detach that follows.
 */
struct session {
    struct session *reg_next; /* tenant registry chain (registry.c) */
    uint32_t reg_hash;
    uint32_t store_no; /* the store's own (store.h): the number its log knows it by */
    struct tenant *tenant;
    struct stream *client;       /* NULL while offline */
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
    uint8_t store_mark;      /* the store's own (store.h) */
    struct session_state st;
    struct avl_node tree; /* the tenant's id order (idtree.h) */
};

/*
 * What the session room needs from the broker above it, one table per
 * shard (s->session_ops, set before the shard serves): writing a session's
 * packets to its connection, the routing of a will, shared subscriptions
 * and the other shards' interest, the broker's per-session extras (pending
 * SUBSCRIBEs, read checks), and what metrics and event plugins are told.
 * The room calls these, never a broker function by name; the price is one
 * indirect call per packet written. Every hook runs on the shard's thread;
 * none may be NULL.
 */
struct session_ops {
    /* Write a PUBLISH of m to ss's client (ss->client set): packet id
     * `pid` when qos > 0, the DUP flag, `nids` Subscription Identifiers.
     * False when the client cannot take it at all (over its Maximum Packet
     * Size, MQTT-3.1.2-25: dropped for it alone, counted); true when it was
     * written, or when the connection takes no more output (closing). */
    bool (*write_publish)(struct shard *s, struct session *ss, const struct msg *m, uint8_t qos,
                          bool dup, bool retain, uint16_t pid, const uint32_t *ids, size_t nids);
    /* Write a PUBREL for pid to ss's client. */
    void (*write_pubrel)(struct shard *s, struct session *ss, uint16_t pid);
    /* Close ss's connection: a new one takes the session over
     * (MQTT-3.1.4-2). Detaches the session (session_detach) before it
     * returns. */
    void (*take_over)(struct shard *s, struct session *ss);
    /* ss, which has read checks (ss->reads), has a new client: judge its
     * reads as that client. */
    void (*bind_reads)(struct shard *s, struct session *ss);
    /* ss lost its client or ends: requests that name it (SUBSCRIBEs
     * waiting for other shards) forget it. */
    void (*orphan)(struct session *ss);
    /* ss is freed: free its read checks (NULL: none). */
    void (*free_reads)(struct readcheck *r);
    /* Publish ss's will (takes the reference) as the client's own PUBLISH:
     * the tenant's retained limits apply to a retained will. */
    void (*publish_will)(struct shard *s, struct session *ss, struct msg *will);
    /* Shared subscriptions (broker/share.h): join or update, leave, and
     * hand a message an ending member never acknowledged to the group. */
    int (*share_add)(struct shard *s, struct tenant *t, const struct mqtt_share_spec *sp,
                     struct session *ss, const struct sub_req *req, bool *first);
    void (*share_drop)(struct shard *s, struct tenant *t, const struct mqtt_share_spec *sp,
                       const uint8_t *full, size_t full_len, struct session *ss);
    void (*share_redispatch)(struct shard *s, struct tenant *t, const uint8_t *full,
                             size_t full_len, struct msg *m);
    /* This shard's first subscriber of the plain filter came back from
     * the store (the other shards are told; nothing waits for them). */
    void (*interest_add)(struct shard *s, struct tenant *t, const uint8_t *filter, size_t len);
    /* This shard's last subscriber of the plain filter left (the other
     * shards are told). */
    void (*interest_del)(struct shard *s, struct tenant *t, const uint8_t *filter, size_t len);
    /* An event for the event plugins (ss, topic may be NULL). */
    void (*event)(struct shard *s, enum ringmq_event_type type, const struct tenant *t,
                  const struct session *ss, uint32_t reason, enum ringmq_resource resource,
                  const uint8_t *topic, size_t topic_len);
    /* n messages (m, when known) not delivered for `why`: counted, told. */
    void (*drop)(struct shard *s, struct tenant *t, const struct session *ss,
                 enum ringmq_drop_reason why, const struct msg *m, uint64_t n);
    /* May tenant t use `amount` more of r (the throttle plugins, the
     * tenant's limits)? A refusal is counted and told. */
    bool (*throttle)(struct shard *s, struct tenant *t, enum ringmq_resource r, uint64_t amount,
                     const struct session *ss);
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
 * Attach the connection whose stream is `client` to the session of
 * `client_id` in tenant `t`,
 * taking over a connected one (it is closed) and creating the session if
 * needed. *present says whether state was resumed. Takes ownership of
 * o->will. NULL on OOM.
 */
struct session *session_attach(struct shard *s, struct tenant *t, struct stream *client,
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

/* An offline session ends now (the admin API's delete): a will waiting for
 * its delay goes out first, as when its expiry ends it; the store forgets
 * it and ss is freed. */
void session_delete(struct shard *s, struct session *ss);

/* When an offline session ends (shard clock, ms); 0 when it never does or
 * is connected. */
uint64_t session_expires_at_ms(const struct session *ss);

/* When the will of an offline session is due (monotonic ms), 0 when none
 * waits. */
uint64_t session_will_at_ms(const struct session *ss);

/* Publish the session's will now (its Message Expiry starts now). */
void session_publish_will(struct shard *s, struct session *ss);

/* Offline sessions' deadlines (will delay, expiry), from the shard's
 * session wheel. */
void session_on_timer(struct wheel_entry *e, void *shard);

/*
 * Start-up: register the session a store kept (store.h's sink), offline:
 * takes what st holds (arrays, client id, subscriptions, messages, the
 * will) and indexes its subscriptions (the other shards are told through
 * session_ops' interest_add). As a connection lost now, with st's expiry
 * and will delay (what the store says was left of them): a kept will goes
 * out after that delay, or at the first tick when none is left (never
 * while the shards load); expiry 0 means it ran out while the broker was
 * down: it ends at the first tick, its will first. 0, or -ENOMEM / -EEXIST
 * (st is then left to the caller).
 */
int session_restore(struct shard *s, struct tenant *t, struct session_state *st);

/* Free every session of the tenant (shutdown: the sessions have not ended,
 * and the store is not told). */
void session_destroy_all(struct shard *s, struct tenant *t);

#endif
