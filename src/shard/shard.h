/*
 * shard: one thread, one io_uring, and everything it owns: connections
 * (their streams), sessions homed here, this shard's slice of each
 * tenant's topic index and its replica of the interest table and the
 * retained store.
 *
 * This room is the loop: it owns the ring, the provided buffers, the
 * accepts, the tick, the stop and the cross-shard rings (xshard.h), and
 * hands everything else to the broker through struct shard_hooks:
 * completions are dispatched by their user_data tag through a table of
 * handlers, not called by name, so the loop knows no MQTT. One turn of
 * the loop: the hooks' turn (retained replays, quota timer), the streams'
 * flush (sends, re-armed receives), cross-shard flush and wakeups, submit
 * and wait, every completion through its handler, then a bounded share of
 * each inbound ring.
 *
 * Connections move between shards only as io_uring direct descriptors
 * sent with MSG_RING (see broker/conn.c: a connection is served by the
 * home shard of its client id).
 */
#ifndef RINGMQ_SHARD_SHARD_H
#define RINGMQ_SHARD_SHARD_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"
#include "config/report.h"
#include "core/spsc.h"
#include "net/peer.h"
#include "net/stream.h"
#include "net/transport.h"
#include "net/uring.h"
#include "shard/xshard.h"
#include "tenant/tenant.h"
#include "tenant/usage.h"

struct conn;
struct session;
struct shard;
struct slab;
struct wheel;
struct pending_sub;
struct metrics_server;
struct admin_server;
struct plugin_host;
struct plugin_port;
struct share_group;
struct route_state;
struct ingress_table;
struct store_ops;
struct control_req;
struct session_ops;

/*
 * io_uring user_data layout: the low 4 bits are a tag, the rest a pointer
 * to a 16-byte-aligned object (slab objects, malloc'd records) or a small
 * index shifted left by 4. The shard handles ACCEPT, RECV, SEND, CLOSE,
 * TICK, WAKE, STOP and IGNORE; the hooks' on_cqe the others.
 */
enum ud_tag {
    UD_IGNORE = 0,   /* completions we do not need (failed shutdown, wake sends) */
    UD_ACCEPT = 1,   /* value: index in shard->accepts (listener * SHARD_ACCEPTS + n) */
    UD_RECV = 2,     /* struct stream */
    UD_SEND = 3,     /* struct stream */
    UD_CLOSE = 4,    /* struct stream */
    UD_TICK = 5,     /* the shard's periodic timeout */
    UD_WAKE = 6,     /* MSG_RING from another shard: inbound rings have slots */
    UD_HANDOVER = 7, /* MSG_RING SEND_FD arrived: struct iobuf of bytes, res = slot */
    UD_FDSENT = 8,   /* our MSG_RING SEND_FD completed: struct conn */
    UD_STOP = 9,     /* the stop eventfd became readable */
    UD_PLUGIN = 10,  /* the plugin eventfd: completions are waiting */
    UD_QUOTA = 11,   /* the outbound quota's next second began (s->throttled) */
    UD_ADMIN = 12,   /* the admin eventfd: a request was posted (broker/control.h) */
    UD_STORE = 13,   /* the store's own requests (session/store.h): value its own */
    UD_TAGS = 16,
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

/* The tick: timers and housekeeping run this often (and the connection
 * wheel's slots are this wide). */
#define SHARD_TICK_MS 250u

/* Loop turns, counted modulo 2^8: a connection remembers the turn its
 * input share is for in the same type (one byte of struct conn), so the
 * two always compare. */
typedef uint8_t shard_turn_t;

/* A completion handler. */
typedef void (*shard_cqe_fn)(struct shard *s, const struct io_uring_cqe *cqe);

/*
 * What the broker does on each shard. Every hook runs on the shard's
 * thread; none may be NULL except on_cqe entries (NULL: ignored).
 */
struct shard_hooks {
    /* Completions of the tags the shard does not handle, by tag. */
    shard_cqe_fn on_cqe[UD_TAGS];
    /* The shard's ring exists: create what the broker keeps on it (set
     * up s->streams' events and transports). 0 or -errno (logged). */
    int (*start)(struct shard *s);
    /* A connection was accepted on listener `li`: direct descriptor fi. */
    void (*accepted)(struct shard *s, uint32_t fi, uint8_t li, const struct net_peer *peer);
    /* Each loop turn, before the streams are flushed. */
    void (*turn)(struct shard *s);
    /* Every SHARD_TICK_MS (timers, housekeeping). */
    void (*tick)(struct shard *s);
    /* One message from another shard. */
    void (*xmsg)(struct shard *s, const struct xmsg *x);
    /* Release what a message carries: it will not be handled. Any thread
     * (the final drain runs on main). */
    void (*xdiscard)(const struct xmsg *x);
    /* Stopping, before every shard waits for the others: tell the clients,
     * publish wills. */
    void (*quiesce)(struct shard *s);
    /* Stopping: whether output is still being sent (the shard lingers). */
    bool (*lingering)(const struct shard *s);
    /* Stopping: whether writes to disk are in the ring. The shard waits
     * for them, past the linger deadline: they always complete. */
    bool (*writing)(const struct shard *s);
    /* The ring is gone: free what start and the loop created. */
    void (*stop)(struct shard *s);
};

/*
 * A listener as the shards serve it. Its index (a slot) is the listener
 * index of every stream accepted on it (stream_loop's xprt, xprt_ctx,
 * proxy). A live reload adds slots and closes them; a closed slot is
 * never used again (its connections still name it), so a broker opens at
 * most SHARD_MAX_LISTENERS listeners in its life. Main writes a slot and
 * each shard's listen_fds[slot] before it publishes it (nslots, `open`:
 * release); `open` then only goes from true to false.
 */
#define SHARD_MAX_LISTENERS STREAM_MAX_LISTENERS

struct listener_slot {
    const struct config *cfg; /* the configuration it was opened from (kept until exit) */
    uint32_t ci;              /* its index in cfg->listeners */
    struct transport_listener xprt;
    uint16_t port;     /* bound */
    _Atomic bool open; /* accepting; false: closed for good */
};

/* Every shard and what they share: built once by broker_start. */
struct broker {
    const struct config *cfg;
    const struct shard_hooks *hooks;
    struct plugin_host *plugins; /* NULL without plugins; borrowed */
    struct metrics_server *metrics;
    struct admin_server *admin; /* NULL unless [admin] enabled */
    int admin_done_fd;          /* the shards' answers are in (broker/control.h); -1: none */
    uint64_t started_ms;
    struct tenant_dir tenants;
    uint32_t nshards;
    struct shard **shards;
    struct tenant_shards tenant_shards; /* every shard's `tenants` table, for the sums */
    int *cpus;                          /* [nshards]: the CPU each shard is pinned to, -1: none */
    pthread_barrier_t start_barrier;    /* main + shards: initialised, then go */
    pthread_barrier_t stop_barrier;     /* shards: wills published before draining */
    atomic_bool start_failed;           /* any shard failed to initialise */
    atomic_uint settling;               /* shards still sending what their store restored */
    atomic_uint connections;            /* past the max_connections check (conn_count) */
    atomic_ullong pending_evicted;      /* closed for max_pending_connections */
    /* Live reload (broker_reload_config): the configuration in force and
     * its generation; each shard takes it on its next tick. */
    _Atomic(const struct config *) cfg_live;
    atomic_uint cfg_gen;
    /* Main's whole reload, for the admin API (broker_set_reload): arg is
     * written before fn is stored (release). */
    void *reload_arg;
    int (*_Atomic reload_fn)(void *arg, struct config_report *out);
    /* The listeners (broker/listeners.c): slots [0, nslots), and the room
     * each connection has for its transport's state (the largest of the
     * transports at start; set before the shards start). */
    struct listener_slot lslots[SHARD_MAX_LISTENERS];
    _Atomic uint32_t nslots;
    size_t xstate;
};

/*
 * Single-shot accepts in flight per listener per shard (UD_ACCEPT's value:
 * slot * SHARD_ACCEPTS + n). A multishot accept
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
    const struct shard_hooks *hooks;
    shard_cqe_fn on_cqe[UD_TAGS]; /* the shard's own handlers and the hooks' */
    struct io_uring ring;
    int ring_fd;
    int stop_fd;
    uint64_t stop_val;
    int plugin_fd; /* written by plugin_port's wake, from any thread */
    uint64_t plugin_val;
    struct plugin_port *port; /* NULL without plugins */
    /* The admin API's request to this shard (broker/control.h): posted by
     * the admin thread, which then writes admin_fd; taken here. */
    int admin_fd; /* -1 unless [admin] enabled */
    uint64_t admin_val;
    struct control_req *_Atomic admin_req;
    /* What answering them took this shard (metrics: written here only,
     * read whole by the metrics thread): answers, their nanoseconds in
     * all (microseconds), the longest one. */
    _Atomic uint64_t admin_answers, admin_answer_us, admin_answer_max_us;
    uint64_t settings_next_ms; /* next refresh from the setting provider */
    bool stopping;
    pthread_t thread;
    const char *ring_mode;
    /* Per listener slot: this shard's SO_REUSEPORT socket (opened by main
     * before the slot is published, closed here once no accept is armed
     * on it after the slot closed; -1 or 0: none), its accepts' slots
     * (NULL: none armed), how many are in flight, and whether the shard
     * keeps them armed (shard_listeners_sync). */
    int listen_fds[SHARD_MAX_LISTENERS];
    struct accept_slot *accepts[SHARD_MAX_LISTENERS];
    uint8_t accepts_armed[SHARD_MAX_LISTENERS];
    bool accepting[SHARD_MAX_LISTENERS];
    struct bufring bufs;
    struct slab *conn_slab;
    struct slab *session_slab;
    const struct session_ops *session_ops; /* the broker's side of the session room */
    struct wheel *wheel;                   /* connections: keepalive, connect and close timeouts */
    struct wheel *session_wheel;           /* offline sessions: will delay, expiry */
    uint64_t now_ms;
    /* Durable state's observer (session/store.h) and its context for this
     * shard; NULL: memory only. */
    const struct store_ops *store;
    void *store_ctx;
    /* Targets sent, this turn, messages whose records there an
     * acknowledgement here may depend on (QoS 1/2 publishes): the store
     * asks each to confirm they are durable (XMSG_SYNC). Bit per shard. */
    uint64_t store_xmask;
    uint32_t store_xsent; /* store_xmask set this often (shard_store_remote) */
    uint64_t next_conn_id;
    /* By id, TENANT_MAX slots, each set once (release store) on first use:
     * the metrics thread walks them while the shard runs. */
    struct tenant **tenants;

    /* cross-shard: in[i] carries i -> this shard; out[i] is shard i's in[id] */
    struct spsc *in[CONFIG_MAX_SHARDS];
    struct spsc *out[CONFIG_MAX_SHARDS];
    struct xqueue overflow[CONFIG_MAX_SHARDS];
    /* By source shard: how long the oldest message this shard took from
     * its ring in its last turn had waited there (ms), written here once
     * per turn and ring, read by the source (shard_target_behind). */
    _Alignas(64) _Atomic uint32_t lag_ms[CONFIG_MAX_SHARDS];
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
    shard_turn_t turn;
    uint32_t ndeferred;
    bool inbound_left;

    /* Connections that have not completed CONNECT, oldest first, linked
     * like `all` and not in it; at most pending_max, this shard's share of
     * limits.max_pending_connections (conn.c). */
    struct conn *pending;
    struct conn **pending_tail;
    uint32_t npending, pending_max;

    /* Every other connection, for shutdown. */
    struct conn *all;
    /* The connections' byte streams: per-turn lists (output to send,
     * receives to re-arm), bytes queued and not sent (out_bytes), output
     * buffers freed since the last malloc_trim (out_freed). */
    struct stream_loop streams;
    uint64_t out_peak; /* streams.out_bytes' peak since the last trim */
    unsigned cfg_gen;  /* the broker's cfg_gen that s->cfg is */

    /* SUBSCRIBEs waiting for acks from other shards (subscribe.c) */
    struct pending_sub *pending_subs;

    /* Routing: publish matching scratch, retained replays, the retained
     * clock and tombstones (route.c; opaque here). */
    struct route_state *route;
    /* Keys of the QoS 2 flows delivered here, with a store (broker/ingress.h). */
    struct ingress_table *ingress;
    /* Shared groups matched by the publish being routed (share.c). */
    struct share_group **share_scratch;
    uint32_t nshare, share_cap;
    uint8_t out_quota; /* enum out_quota (route.h): this publish's deliveries and the quota */
    /* This shard's share of limits.max_slow_output_total (0: no limit),
     * against streams.out_bytes. */
    uint64_t slow_budget;

    /* Sessions holding messages back for the outbound bytes quota: sent
     * when the quota's next second begins (a timeout armed while the list
     * is not empty), or from the tick, as the quota allows (session/outbox.c). */
    struct session **throttled;
    uint32_t nthrottled, throttled_cap;
    bool quota_timer; /* the UD_QUOTA timeout is armed */
    struct __kernel_timespec quota_ts;
};

/* The shard thread: pin, set up the ring, wait at the start barrier
 * (twice: initialised, then main's verdict), serve until stopped, linger,
 * free. `arg` is the struct shard. */
void *shard_run(void *arg);

/* Whether `target` is behind: its ring has been full, with messages
 * waiting beyond it, for SHARD_BEHIND_MS, or the messages it last took from
 * this shard's ring had waited there that long. One loop turn that produces
 * more than the ring holds does not make a target behind; a target that
 * did not drain its ring in that long is. QoS 0 publishes to it are then
 * dropped at the source (route.c) rather than queued in front of everybody
 * else's: a ring of 1024 fanned-out messages the target takes a few at a
 * time is seconds of wait for the QoS 1 message behind them. */
#define SHARD_BEHIND_MS 20u
static inline bool shard_target_behind(const struct shard *s, uint32_t target)
{
    const struct xqueue *q = &s->overflow[target];
    if (q->len && s->now_ms - q->since_ms >= SHARD_BEHIND_MS)
        return true;
    const struct shard *t = s->broker->shards[target];
    return atomic_load_explicit(&t->lag_ms[s->id], memory_order_relaxed) >= SHARD_BEHIND_MS;
}

/* A message whose records on shard `target` an acknowledgement here will
 * depend on was sent there (store_xmask). */
static inline void shard_store_remote(struct shard *s, uint32_t target)
{
    s->store_xmask |= 1ull << target;
    s->store_xsent++;
}

/* Arm the accepts of every listener slot that opened since the last call
 * and cancel those of every one that closed (its socket is closed once
 * they completed); a slot's stream tables are set before its first accept.
 * Shard thread: at start and on each tick. */
void shard_listeners_sync(struct shard *s);

/* Set slot li's stream tables (its transport, PROXY setting) on this
 * shard, accepting or not: a connection another shard accepted on a slot
 * this shard's tick has not reached yet (one a reload just added) is
 * handed over here with its transport's state. Shard thread. */
void shard_listener_tables(struct shard *s, uint32_t li);

/* The configuration of listener slot li (its name, transport, ...). */
static inline const struct config_listener *shard_listener(const struct broker *b, uint32_t li)
{
    return &b->lslots[li].cfg->listeners[b->lslots[li].ci];
}

/* A submission queue entry, submitting first when the queue is full. */
struct io_uring_sqe *shard_sqe(struct shard *s);

/* The shard that owns a stream loop (its `streams`). */
static inline struct shard *shard_of_streams(struct stream_loop *l)
{
    return (struct shard *)((char *)l - offsetof(struct shard, streams));
}

/* The home shard of a client id: where its session lives. */
uint32_t shard_home(const struct broker *b, uint16_t tenant, const uint8_t *id, size_t len);

#endif
