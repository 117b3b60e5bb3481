/*
 * shard: one thread, one io_uring, and everything it owns: connections,
 * sessions homed here, this shard's slice of each tenant's topic index and
 * its replica of the interest table and the retained store.
 *
 * Shards talk only through struct xmsg slots on SPSC rings (one ring per
 * ordered pair) followed by one IORING_OP_MSG_RING wakeup per target per
 * loop turn. Connections move between shards only as io_uring direct
 * descriptors sent with MSG_RING (see conn.c: a connection is served by the
 * home shard of its client id).
 */
#ifndef RINGMQ_BROKER_SHARD_H
#define RINGMQ_BROKER_SHARD_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"
#include "core/slab.h"
#include "core/spsc.h"
#include "core/wheel.h"
#include "metrics/counters.h"
#include "net/uring.h"

struct conn;
struct session;
struct msg;
struct shard;
struct pending_sub;
struct metrics_server;
struct plugin_host;
struct plugin_port;
struct share_group;
struct retain_tomb;
struct store_ops;

/*
 * io_uring user_data layout: the low 4 bits are a tag, the rest a pointer
 * to a 16-byte-aligned object (slab objects, malloc'd records) or a small
 * index shifted left by 4.
 */
enum ud_tag {
    UD_IGNORE = 0,   /* completions we do not need (failed shutdown, wake sends) */
    UD_ACCEPT = 1,   /* value: index in shard->accepts (listener * SHARD_ACCEPTS + n) */
    UD_RECV = 2,     /* struct conn */
    UD_SEND = 3,     /* struct conn */
    UD_CLOSE = 4,    /* struct conn */
    UD_TICK = 5,     /* the shard's periodic timeout */
    UD_WAKE = 6,     /* MSG_RING from another shard: inbound rings have slots */
    UD_HANDOVER = 7, /* MSG_RING SEND_FD arrived: struct iobuf of bytes, res = slot */
    UD_FDSENT = 8,   /* our MSG_RING SEND_FD completed: struct conn */
    UD_STOP = 9,     /* the stop eventfd became readable */
    UD_PLUGIN = 10,  /* the plugin eventfd: completions are waiting */
    UD_QUOTA = 11,   /* the outbound quota's next second began (s->throttled) */
};

static inline uint64_t ud_make(enum ud_tag tag, const void *p)
{
    return (uint64_t)(uintptr_t)p | (uint64_t)tag;
}
static inline enum ud_tag ud_tag(uint64_t ud)
{
    return (enum ud_tag)(ud & 15u);
}
static inline void *ud_ptr(uint64_t ud)
{
    return (void *)(uintptr_t)(ud & ~(uint64_t)15u);
}

/* Cross-shard message types. */
enum xmsg_type {
    XMSG_PUBLISH = 1,      /* p: struct msg (one reference given) */
    XMSG_RETAIN = 2,       /* p: struct msg (one reference given) */
    XMSG_INTEREST_ADD = 3, /* p: struct xfilter (given), token: reply XMSG_ACK */
    XMSG_INTEREST_DEL = 4, /* p: struct xfilter (given) */
    XMSG_PING = 5,         /* token: reply XMSG_ACK */
    XMSG_ACK = 6,          /* token echoed */
    XMSG_SHARE = 7,        /* p: struct msg (one reference given), token: struct
                              xfilter of the $share filter (given), pad: hops */
};

struct xmsg {
    uint8_t type;
    uint8_t src; /* sending shard */
    uint16_t tenant;
    uint32_t pad;
    void *p;
    uint64_t token;
};

/* One Subscription Identifier collected while matching a publish. */
struct match_id {
    uint32_t id;
    uint32_t next; /* 1 + index of the session's next one, 0: end */
};

/* A topic filter crossing shards for the interest table. */
struct xfilter {
    uint16_t len;
    uint8_t data[];
};

/*
 * One tenant's state on one shard: a namespace. Its subscriptions, retained
 * messages, sessions (client ids) and shared groups are invisible to every
 * other tenant; cross-shard messages name it by id. Created on a shard the
 * first time that shard sees the tenant; ids come from the broker's tenant
 * directory, the same on every shard.
 */
/* Where the deliveries being made stand with the tenant's outbound bytes
 * quota (route.c asks once per message and shard). */
enum out_quota {
    OUT_UNASKED = 0, /* not a routed publish (redispatch): not counted */
    OUT_GRANTED = 1, /* counted already */
    OUT_OVER = 2,    /* refused: QoS 0 dropped, QoS 1/2 held back */
};

/* Per-second usage a throttler is asked about (enum rate_kind). */
enum rate_kind { RATE_CONNECTS, RATE_BYTES_IN, RATE_BYTES_OUT, RATE_KINDS };

/* This shard's share of one per-second usage of a tenant. `second` and
 * `count` are written by the owning shard only and read by the others
 * (atomics); `others` is their sum as last read, at `others_ms`. */
struct rate_window {
    uint64_t second; /* now_ms / 1000 that count is for */
    uint64_t count;
    uint64_t others;
    uint64_t others_ms;
};

struct tenant {
    struct tenant_counters ctr; /* this shard's share; the metrics thread reads it */
    struct rate_window rate[RATE_KINDS];
    uint16_t id;
    const char *name;                  /* the directory's copy, lives as long as the broker */
    const struct tenant_settings *set; /* config, or own_set from a setting provider */
    struct tenant_settings *own_set;   /* the provider's values (heap), or NULL */
    struct trie *subs;                 /* filter -> struct sub_node */
    struct retain *retained;           /* topic -> struct msg (replica on every shard) */
    struct session **reg;              /* client id registry: chained hash, homed sessions */
    uint32_t reg_mask;                 /* buckets - 1 */
    uint32_t reg_count;
};

/* Overflow of a full SPSC ring, kept in order and retried every turn. */
struct xqueue {
    struct xmsg *v;
    uint32_t head, len, cap;
    uint64_t since_ms; /* when it last became non-empty (the ring was full) */
};

/* Every tenant the broker has seen: name <-> id, the same on all shards.
 * Touched at CONNECT only (under its mutex), never per message. */
struct tenant_dir {
    pthread_mutex_t mu;
    char **names; /* index: tenant id; names[0] = "global" */
    uint32_t n, cap;
};

#define TENANT_MAX 4096u

struct broker {
    const struct config *cfg;
    struct plugin_host *plugins; /* NULL without plugins; borrowed */
    struct metrics_server *metrics;
    uint64_t started_ms;
    struct tenant_dir tenants;
    uint32_t nshards;
    struct shard **shards;
    int *cpus;                       /* [nshards]: the CPU each shard is pinned to, -1: none */
    pthread_barrier_t start_barrier; /* main + shards: initialised, then go */
    pthread_barrier_t stop_barrier;  /* shards: wills published before draining */
    atomic_bool start_failed;        /* any shard failed to initialise */
    atomic_uint connections;         /* past the max_connections check (conn_count) */
    atomic_ullong pending_evicted;   /* closed for max_pending_connections */
    uint16_t ports[CONFIG_MAX_LISTENERS];
};

/*
 * Single-shot accepts in flight per listener per shard. A multishot accept
 * has one address buffer that each completion overwrites before we can
 * read it, so each accept here has its own slot and the peer address of
 * every connection is known (direct descriptors leave nothing to call
 * getpeername() on). Several stay armed so that a burst is taken without
 * waiting a loop turn for each re-arm. Measured with 16 (ringmq-bench conn,
 * 20,000 connections at 10,000/s, 2 shards, 2 cores): the same connect rate
 * and CONNACK latency as the multishot accept, within run-to-run noise.
 */
#define SHARD_ACCEPTS 16u

/* Where the kernel writes one accept's peer address; owned by the shard,
 * in use while that accept is in flight. */
struct accept_slot {
    struct sockaddr_storage addr;
    socklen_t len;
};

struct shard {
    uint32_t id;
    int cpu; /* the CPU this shard's thread is pinned to, -1: not pinned */
    struct broker *broker;
    const struct config *cfg;
    struct io_uring ring;
    int ring_fd;
    int stop_fd;
    uint64_t stop_val;
    int plugin_fd; /* written by plugin_port's wake, from any thread */
    uint64_t plugin_val;
    struct plugin_port *port;  /* NULL without plugins */
    uint64_t settings_next_ms; /* next refresh from the setting provider */
    bool stopping;
    pthread_t thread;
    const char *ring_mode;
    int listen_fds[CONFIG_MAX_LISTENERS];
    struct accept_slot *accepts; /* nlisteners * SHARD_ACCEPTS */
    struct bufring bufs;
    struct slab *conn_slab;
    struct slab *session_slab;
    struct wheel *wheel;         /* connections: keepalive, connect and close timeouts */
    struct wheel *session_wheel; /* offline sessions: will delay, expiry */
    uint64_t now_ms;
    /* Durable state's observer (store.h) and its context for this shard;
     * NULL: memory only. */
    const struct store_ops *store;
    void *store_ctx;
    uint64_t next_conn_id;
    /* By id, TENANT_MAX slots, each set once (release store) on first use:
     * the metrics thread walks them while the shard runs. */
    struct tenant **tenants;

    /* cross-shard: in[i] carries i -> this shard; out[i] is shard i's in[id] */
    struct spsc *in[CONFIG_MAX_SHARDS];
    struct spsc *out[CONFIG_MAX_SHARDS];
    struct xqueue overflow[CONFIG_MAX_SHARDS];
    uint64_t wake_mask; /* targets that got slots this turn */
    /* Back-pressure aimed at the cause: targets whose overflow queue is far
     * behind (bit per shard), and whether the packets handled since the
     * last reset sent a message to one of them (the connection that sent
     * them is then not read until every target caught up). */
    uint64_t xcongested;
    bool xhit;
    /* Loop turns (for each connection's share of one, conn.c), connections
     * with input deferred to a later turn, and whether a cross-shard ring
     * still holds messages beyond one turn's share: the loop does not sleep
     * while there is either. */
    uint16_t turn;
    uint32_t ndeferred;
    bool inbound_left;
    struct replay *replays; /* retained replays in progress (route.c) */

    /* Connections that have not completed CONNECT, oldest first, linked
     * like `all` and not in it; at most pending_max, this shard's share of
     * limits.max_pending_connections (conn.c). */
    struct conn *pending;
    struct conn **pending_tail;
    uint32_t npending, pending_max;

    /* per loop turn work lists */
    struct conn *all;   /* every other connection, for shutdown */
    struct conn *dirty; /* connections with output to send */
    struct conn *rearm; /* connections whose multishot recv ended early */

    /* SUBSCRIBEs waiting for acks from other shards (protocol.c) */
    struct pending_sub *pending_subs;

    /* publish matching scratch */
    uint64_t match_epoch;
    struct match_id *match_idv;         /* Subscription Identifiers, chained per session */
    struct share_group **share_scratch; /* groups matched by this publish */
    uint32_t nshare, share_cap;
    uint32_t nmatch_ids, match_ids_cap;
    struct session **match;
    uint32_t nmatch, match_cap;
    uint32_t nmatch_denied; /* of match[]: sessions with match_denied set */
    uint64_t match_mask;
    uint8_t out_quota; /* enum out_quota: this publish's deliveries and the outbound quota */
    /* Bytes queued for sending and not yet sent, over every connection, and
     * this shard's share of limits.max_slow_output_total (0: no limit). */
    uint64_t out_bytes;
    uint64_t slow_budget;
    /* Bytes of output buffers freed since the last malloc_trim. */
    uint64_t out_freed;

    /* Sessions holding messages back for the outbound bytes quota: sent
     * when the quota's next second begins (a timeout armed while the list
     * is not empty), or from the tick, as the quota allows (session.c). */
    struct session **throttled;
    uint32_t nthrottled, throttled_cap;
    bool quota_timer; /* the UD_QUOTA timeout is armed */
    struct __kernel_timespec quota_ts;

    /* Retained replicas (route.c): the Lamport clock that stamps this
     * shard's retained updates, and the clears kept as tombstones for a
     * while, oldest first. */
    uint64_t retain_clock;
    struct retain_tomb *tombs, *tombs_tail;
};

/* Queue a cross-shard message to `target` (never blocks: overflows are kept
 * in order and retried). Ownership of x->p passes to the target. Sets
 * s->xhit when the target is congested. */
void shard_xsend(struct shard *s, uint32_t target, const struct xmsg *x);

/* Whether `target` is behind: its ring has been full, with messages
 * waiting beyond it, for SHARD_BEHIND_MS. One loop turn that produces more
 * than the ring holds does not make a target behind; a target that did not
 * drain its ring in that long is. QoS 0 publishes to it are then dropped
 * at the source (route.c) rather than queued in front of everybody else's. */
#define SHARD_BEHIND_MS 20u
static inline bool shard_target_behind(const struct shard *s, uint32_t target)
{
    const struct xqueue *q = &s->overflow[target];
    return q->len && s->now_ms - q->since_ms >= SHARD_BEHIND_MS;
}

/* Release what a cross-shard message carries (it will not be handled). */
void shard_xmsg_discard(const struct xmsg *x);

/* The shard's state of tenant `id` (a directory id), created on first use;
 * NULL only when out of memory. */
struct tenant *shard_tenant(struct shard *s, uint16_t id);

/* The directory id of tenant `name`, adding it when new; -ENOSPC beyond
 * TENANT_MAX tenants, -ENOMEM. Any thread. */
int tenant_dir_intern(struct broker *b, const char *name);
/* The name of tenant `id` (NULL if unknown), from any thread: the strings
 * never move or change, but the array holding them grows under the lock. */
const char *tenant_dir_name(struct broker *b, uint16_t id);

/* A submission queue entry, submitting first when the queue is full. */
struct io_uring_sqe *shard_sqe(struct shard *s);

/* The home shard of a client id: where its session lives. */
uint32_t shard_home(const struct broker *b, uint16_t tenant, const uint8_t *id, size_t len);

#endif
