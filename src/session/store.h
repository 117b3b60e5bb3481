/*
 * store: the seam where durable sessions and retained messages will be
 * kept (issue 13). A store is an observer: the broker's memory stays the
 * truth while it runs, and the store is told every change to what must
 * survive a restart, where the change is made, plus a load hook that hands
 * it all back at start-up. No store: s->store is NULL, memory only, and
 * each call site below costs one predictable branch.
 *
 * What is told (all on the shard's thread, synchronously, right after the
 * change is made in memory, so the store may read the live state):
 *  - a session's struct session_state (session.h): put when created and
 *    when its expiry, will or will delay may have changed (at each CONNECT
 *    and disconnection: a put may repeat what the store has); deleted when
 *    it ends, before it is freed, with all it held;
 *  - its subscriptions, queue, in-flight window and inbound QoS 2 ids,
 *    entry by entry;
 *  - retained updates, every one of them by shard 0 (route.c): as it
 *    stamps them or takes them from the shard that did, so one store
 *    holds them all in the order shard 0 applied them, clears included
 *    (a topic cleared on one shard and put on another orders by stamp).
 * A session is named by its tenant and client id, unique on its home shard.
 * Sessions of expiry 0 are told too: the store decides what it keeps (an
 * expiry can go from non-zero to 0, never back, MQTT-3.14.2-2).
 *
 * Not told, because a store can derive it: which shards are interested in a
 * filter, shared-group membership (from the subscriptions), a message's or
 * a retained message's expiry (it has the deadline: expired ones are purged
 * without a call), retained tombstones ageing out, the in-flight `held`
 * flag and everything of the connection (window, aliases, read checks).
 *
 * Ownership: messages are immutable and reference counted (msg.h): a store
 * may keep one with msg_acquire and release it when done. The exception is
 * a session's will, the session's own until published: while it is a will
 * its expires_at_ms holds the Message Expiry Interval (ms), not a deadline,
 * and session_publish_will rewrites expires_at_ms and retain after the put
 * that drops it; read a will during the put that names it. Every other
 * pointer is borrowed for the call only.
 *
 * A hook cannot fail the change: many are made where nobody could be told
 * (a routed message queued, a PUBREC). A store that cannot write keeps the
 * failure and has the handlers refuse new durable work until it can.
 *
 * A store sets every hook above `load` but infl_from_queue and the ingress
 * ones, which may be NULL; the loop's hooks after `load` may be NULL too
 * (a store that writes synchronously needs none).
 *
 * A store may reach the struct session holding a state it is told about
 * (container_of on `st`) and use its `store_mark` byte and `store_no`
 * word, the fields of a session that are the store's: 0 when the session is
 * created or restored.
 */
#ifndef RINGMQ_SESSION_STORE_H
#define RINGMQ_SESSION_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <liburing.h>

#include "session/msg.h"
#include "session/session.h"
#include "shard/shard.h"

/* Start-up: what a store hands back through its load hook. Each takes
 * ownership of what it is given, and returns 0 or -errno (start-up fails).
 * The shard's side, written with the first store (issue 13); declared here
 * so that the load hook's contract is whole. */
struct store_sink {
    /* A session of tenant `tenant` as stored: its state, with every array
     * heap-allocated as the session room keeps them and one reference per
     * message. The shard registers it offline and indexes its
     * subscriptions. */
    int (*session)(struct shard *s, uint16_t tenant, struct session_state *st);
    /* A retained message (one reference), with its stamp. */
    int (*retained)(struct shard *s, uint16_t tenant, struct msg *m);
    /* The key of a QoS 2 flow delivered before the restart and not ended
     * (broker/ingress.h): every shard gets every key. */
    int (*ingress)(struct shard *s, uint64_t key);
};

/* One shard's store, as metrics show it. */
struct store_counters {
    uint64_t records; /* records written */
    uint64_t bytes;   /* bytes of records written */
    uint64_t fsyncs;  /* writes that reached the disk (fdatasync done) */
    uint64_t errors;  /* failed writes or syncs */
    bool failing;     /* the last one failed: durable work is refused */
};

struct store_ops {
    /* The session was created, or its expiry, will or will delay changed. */
    void (*session_put)(void *ctx, const struct tenant *t, const struct session_state *st);
    /* The session ended (expiry, Clean Start, shutdown), with what it held. */
    void (*session_del)(void *ctx, const struct tenant *t, const struct session_state *st);

    /* A subscription added, or replaced in place (MQTT-3.8.4-3). */
    void (*sub_put)(void *ctx, const struct tenant *t, const struct session_state *st,
                    const struct sess_sub *sub);
    void (*sub_del)(void *ctx, const struct tenant *t, const struct session_state *st,
                    const uint8_t *filter, size_t len);

    /* A message appended to the queue (e, now its tail) / the head taken
     * off (e, the entry removed: sent on, or dropped for a newcomer). */
    void (*queue_push)(void *ctx, const struct tenant *t, const struct session_state *st,
                       const struct qentry *e);
    void (*queue_pop)(void *ctx, const struct tenant *t, const struct session_state *st,
                      const struct qentry *e);

    /* A PUBLISH sent: e appended to the in-flight window. */
    void (*infl_put)(void *ctx, const struct tenant *t, const struct session_state *st,
                     const struct inflight *e);
    /* The queue's head (q, taken off) was sent: e appended to the window.
     * The queue_pop and infl_put it stands for, told as one. May be NULL:
     * those two are told instead. */
    void (*infl_from_queue)(void *ctx, const struct tenant *t, const struct session_state *st,
                            const struct inflight *e, const struct qentry *q);
    /* PUBREC received for pid: now INFL_WAIT_COMP, the message released
     * (MQTT-4.3.3-1); a resend is a PUBREL. */
    void (*infl_rec)(void *ctx, const struct tenant *t, const struct session_state *st,
                     uint16_t pid);
    /* The flow of pid ended (PUBACK, PUBCOMP, a failing PUBREC, too large
     * for the client to resend): the entry left the window. */
    void (*infl_del)(void *ctx, const struct tenant *t, const struct session_state *st,
                     uint16_t pid);

    /* An inbound QoS 2 id remembered until PUBREL (MQTT-4.3.3-2), or done. */
    void (*qos2_add)(void *ctx, const struct tenant *t, const struct session_state *st,
                     uint16_t pid);
    void (*qos2_del)(void *ctx, const struct tenant *t, const struct session_state *st,
                     uint16_t pid);

    /* A retained update, on shard 0 (m->retain_stamp orders the updates of
     * a topic): a message to keep, or a clear (empty payload,
     * MQTT-3.3.1-10). $SYS topics come too. */
    void (*retained_put)(void *ctx, const struct tenant *t, const struct msg *m);
    void (*retained_clear)(void *ctx, const struct tenant *t, const struct msg *m);

    /* The shard kept (put) or forgot the key of a QoS 2 flow it delivered
     * (broker/ingress.h). May be NULL (the key is then not kept). */
    void (*ingress_put)(void *ctx, uint64_t key);
    void (*ingress_del)(void *ctx, uint64_t key);

    /*
     * Start-up, on shard s's thread, after its tenants can be created and
     * before it serves a client or reads its rings: hand back, through
     * `sink`, the sessions homed on s and the retained messages s stamped.
     * The other shards' retained messages reach s through the rings as
     * usual. What is handed back is not told to the store again. 0 or
     * -errno (the broker does not start).
     */
    int (*load)(void *ctx, struct shard *s, const struct store_sink *sink);

    /* ---- the shard's loop (broker/serve.c), on the shard's thread ---- */
    /* The end of a loop turn, before its output is flushed: write what the
     * turn recorded, and hold the output that depends on it (a gated loop's
     * barrier, net/stream.h). */
    void (*turn)(void *ctx, struct shard *s);
    /* A completion tagged UD_STORE (the store's own requests). */
    void (*complete)(void *ctx, struct shard *s, const struct io_uring_cqe *cqe);
    /* Every SHARD_TICK_MS. */
    void (*tick)(void *ctx, struct shard *s);
    /* Shard `src` asks to be told (XMSG_SYNCED, `token`) once everything
     * this shard recorded for the messages src sent before the request is
     * durable (s->store_xmask on src's side). */
    void (*sync_request)(void *ctx, struct shard *s, uint32_t src, uint64_t token);
    /* The answer to this shard's request `token`, from shard `src`: ok,
     * or the records could not be written there (its store is failing). */
    void (*synced)(void *ctx, struct shard *s, uint32_t src, uint64_t token, bool ok);
    /* Whether new durable work must be refused (the store cannot write,
     * on this shard or, for a store whose shards share a disk, another):
     * the handlers answer with the MQTT outcome for it. */
    bool (*failing)(void *ctx);
    /* Stopping: whether the store's own requests are still in the ring. The
     * shard waits for them before it tears the ring down (a write the
     * kernel still held would land after `stop` rewrote and freed it). */
    bool (*writing)(const void *ctx);
    /* Stopping, after the last turn: write everything, release what is
     * held. Then the shard frees its sessions. */
    void (*stop)(void *ctx, struct shard *s);
    /* What the shard's store did, for metrics: any thread. */
    void (*counters)(const void *ctx, struct store_counters *out);
};

/* A store for every shard: `ops`, and one context per shard from
 * shard_ctx (NULL: start-up fails), called on the main thread before the
 * shards start. */
struct store_provider {
    const struct store_ops *ops;
    void *(*shard_ctx)(void *arg, uint32_t shard, uint32_t nshards);
    void *arg;
};

/*
 * The call sites' side: each tells s's store, if any, about session ss.
 * Without a store a call site costs one predicted branch; the call itself
 * is out of line (store.c, cold), so the functions that make the changes
 * stay small enough to be inlined where they were.
 */
__attribute__((cold)) void store_session_put_call(struct shard *s, const struct session *ss);
__attribute__((cold)) void store_session_del_call(struct shard *s, const struct session *ss);
__attribute__((cold)) void store_sub_put_call(struct shard *s, const struct session *ss,
                                              const struct sess_sub *sub);
__attribute__((cold)) void store_sub_del_call(struct shard *s, const struct session *ss,
                                              const uint8_t *filter, size_t len);
__attribute__((cold)) void store_queue_push_call(struct shard *s, const struct session *ss,
                                                 const struct qentry *e);
__attribute__((cold)) void store_queue_pop_call(struct shard *s, const struct session *ss,
                                                const struct qentry *e);
__attribute__((cold)) void store_infl_put_call(struct shard *s, const struct session *ss,
                                               const struct inflight *e);
__attribute__((cold)) void store_infl_from_queue_call(struct shard *s, const struct session *ss,
                                                      const struct inflight *e,
                                                      const struct qentry *q);
__attribute__((cold)) void store_infl_rec_call(struct shard *s, const struct session *ss,
                                               uint16_t pid);
__attribute__((cold)) void store_infl_del_call(struct shard *s, const struct session *ss,
                                               uint16_t pid);
__attribute__((cold)) void store_qos2_add_call(struct shard *s, const struct session *ss,
                                               uint16_t pid);
__attribute__((cold)) void store_qos2_del_call(struct shard *s, const struct session *ss,
                                               uint16_t pid);

static inline void store_session_put(struct shard *s, const struct session *ss)
{
    if (__builtin_expect(s->store != NULL, 0))
        store_session_put_call(s, ss);
}

static inline void store_session_del(struct shard *s, const struct session *ss)
{
    if (__builtin_expect(s->store != NULL, 0))
        store_session_del_call(s, ss);
}

static inline void store_sub_put(struct shard *s, const struct session *ss,
                                 const struct sess_sub *sub)
{
    if (__builtin_expect(s->store != NULL, 0))
        store_sub_put_call(s, ss, sub);
}

static inline void store_sub_del(struct shard *s, const struct session *ss, const uint8_t *filter,
                                 size_t len)
{
    if (__builtin_expect(s->store != NULL, 0))
        store_sub_del_call(s, ss, filter, len);
}

static inline void store_queue_push(struct shard *s, const struct session *ss,
                                    const struct qentry *e)
{
    if (__builtin_expect(s->store != NULL, 0))
        store_queue_push_call(s, ss, e);
}

static inline void store_queue_pop(struct shard *s, const struct session *ss,
                                   const struct qentry *e)
{
    if (__builtin_expect(s->store != NULL, 0))
        store_queue_pop_call(s, ss, e);
}

static inline void store_infl_put(struct shard *s, const struct session *ss,
                                  const struct inflight *e)
{
    if (__builtin_expect(s->store != NULL, 0))
        store_infl_put_call(s, ss, e);
}

static inline void store_infl_from_queue(struct shard *s, const struct session *ss,
                                         const struct inflight *e, const struct qentry *q)
{
    if (__builtin_expect(s->store != NULL, 0))
        store_infl_from_queue_call(s, ss, e, q);
}

static inline void store_infl_rec(struct shard *s, const struct session *ss, uint16_t pid)
{
    if (__builtin_expect(s->store != NULL, 0))
        store_infl_rec_call(s, ss, pid);
}

static inline void store_infl_del(struct shard *s, const struct session *ss, uint16_t pid)
{
    if (__builtin_expect(s->store != NULL, 0))
        store_infl_del_call(s, ss, pid);
}

static inline void store_qos2_add(struct shard *s, const struct session *ss, uint16_t pid)
{
    if (__builtin_expect(s->store != NULL, 0))
        store_qos2_add_call(s, ss, pid);
}

static inline void store_qos2_del(struct shard *s, const struct session *ss, uint16_t pid)
{
    if (__builtin_expect(s->store != NULL, 0))
        store_qos2_del_call(s, ss, pid);
}

/* A retained update m of tenant t, stamped here: a put, or a clear. */
__attribute__((cold)) void store_retained_call(struct shard *s, const struct tenant *t,
                                               const struct msg *m);
static inline void store_retained(struct shard *s, const struct tenant *t, const struct msg *m)
{
    if (__builtin_expect(s->store != NULL, 0))
        store_retained_call(s, t, m);
}

/* The key of a QoS 2 flow kept (put) or forgotten here. */
static inline void store_ingress(struct shard *s, uint64_t key, bool put)
{
    void (*fn)(void *, uint64_t) = !s->store ? NULL
                                   : put     ? s->store->ingress_put
                                             : s->store->ingress_del;
    if (fn)
        fn(s->store_ctx, key);
}

/* Whether new durable work must be refused now (the store cannot write). */
static inline bool store_failing(const struct shard *s)
{
    return s->store && s->store->failing && s->store->failing(s->store_ctx);
}

/* Start-up: the store's load hook, handing back through `sink`; without a
 * store nothing is loaded (0). For the shard, before it serves. */
static inline int store_load(struct shard *s, const struct store_sink *sink)
{
    return s->store ? s->store->load(s->store_ctx, s, sink) : 0;
}

#endif
