/*
 * stream: the byte-level side of one accepted connection on one shard's
 * io_uring: its direct descriptor, receives from the shard's
 * provided-buffer ring, output batching and short writes, shutdown and
 * close, and the count of operations in flight that name it.
 *
 * A stream knows nothing of MQTT. Its owner (the layer above: broker/conn)
 * embeds it as the first member of its own struct and is told what happens
 * through the loop's `struct stream_events`: bytes arrived, output was
 * sent, a receive ended, the stream closed. Bytes pass through the
 * listener's transport (`struct transport_ops`): `tcp` is the identity,
 * handing up the kernel's buffer itself (no copy); TLS or WebSocket
 * transports decode in `input` and encode in `seal`.
 *
 * Output: everything written in one loop turn (stream_reserve/commit) is
 * sent with one send at the end of the turn (stream_flush), at most
 * STREAM_SEND_MAX per send; while a send is in flight, new output
 * accumulates in a fresh buffer. An idle stream holds no buffer.
 *
 * Closing: stream_close flushes what is queued, then shuts down and closes
 * the descriptor; the owner's on_closed runs once no operation that names
 * the stream is in flight and it is on no list, and only then may the
 * owner free it.
 *
 * One thread (the shard's) owns a loop and its streams; nothing here locks.
 */
#ifndef RINGMQ_NET_STREAM_H
#define RINGMQ_NET_STREAM_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "net/peer.h"
#include "net/uring.h"

/* A growable byte buffer (malloc'd header + data). */
struct iobuf {
    uint32_t len;
    uint32_t off; /* bytes already sent (send side) */
    uint32_t cap;
    /* A gated loop's output (see "Durable output" below): the first
     * `mark` bytes may be sent; the first `cover` are covered by the
     * barrier in flight and may be sent once it is done. */
    uint32_t mark, cover;
    uint8_t data[];
};

/* A buffer of `cap` bytes, empty; NULL when out of memory. */
struct iobuf *iobuf_create(size_t cap);

/*
 * At most this much per send, so at most this much per stream per loop
 * turn (the rest goes out from the completion, in the next turn): a turn
 * that starts sends to 1000 clients who do not read costs the kernel's copy
 * of 1000 x 64 KiB, not of 1000 socket buffers the kernel may grow to 4 MiB
 * each, and the other clients are served in between.
 */
#define STREAM_SEND_MAX (64u << 10)

/*
 * A loop turn's budget (issue 10): sends started in one turn stop at
 * STREAM_TURN_SEND bytes (streams with more than STREAM_SEND_SMALL to send
 * wait, in order, for the next turns; small ones always go), and an owner
 * asks stream_turn_spent before producing more output in the same turn
 * (STREAM_TURN_OUTPUT bytes committed). While 1000 fresh subscribers' socket
 * buffers and output buffers fill, each send and each delivery is a real
 * copy: without a bound, one turn copied hundreds of MiB, and every other
 * client of the shard waited for that turn to end.
 */
#define STREAM_TURN_SEND   (2u << 20)
#define STREAM_TURN_OUTPUT (2u << 20)
#define STREAM_TURN_HEAVY  (64u << 10)
#define STREAM_TURN_US     1000u
#define STREAM_SEND_SMALL  (4u << 10)

struct stream {
    struct iobuf *out;         /* being filled this turn */
    struct iobuf *sending;     /* handed to the kernel */
    struct stream *next_dirty; /* loop->dirty */
    struct stream *next_rearm; /* loop->rearm */
    uint32_t fi;               /* direct descriptor index */
    uint32_t backlog;          /* bytes in out and sending not yet sent */
    struct net_peer peer;      /* remote address (the transport may correct it) */
    uint8_t ops;               /* io_uring operations in flight naming it */
    uint8_t listener;          /* index of its transport in loop->xprt */
    bool recv_armed : 1;       /* a receive is in flight */
    bool recv_cancelled : 1;   /* that receive is being cancelled (paused) */
    bool multishot : 1;        /* re-arm as multishot (else single-shot) */
    bool is_dirty : 1;         /* on loop->dirty */
    bool in_rearm : 1;         /* on loop->rearm */
    bool shut : 1;             /* stream_close called: no more output */
    bool teardown_pending : 1; /* flush, then shut down */
    bool close_submitted : 1;  /* the close of the descriptor is queued */
    bool proxy_wait : 1;       /* its first bytes are a PROXY header (stream_proxy.c) */
    bool xprt_out : 1;         /* the transport has output of its own (stream_xprt_output) */
    bool held : 1;             /* in loop->held: output waits for the barrier in flight */
    bool dep : 1;              /* its output depends on other loops' records (stream_depends) */
    bool rwait : 1;            /* in loop->rheld: output waits for them too */
    bool promise : 1;          /* its unreleased output promises records (stream_promise) */
    uint8_t xprt_layer : 2;    /* the layer of a stacked transport running now (below), 0: none */
    uint16_t proxy_hold; /* 1 + its slot in loop->proxy_holds: header incomplete, or its TLVs */
};

struct stream_loop;
struct config_listener;
struct xprt_info;

/* What the owner is told. Every callback runs on the loop's thread, from a
 * stream_* call; none may free the stream (on_closed says when it can). */
struct stream_events {
    /* Bytes arrived (after the transport's input). */
    void (*on_bytes)(struct stream_loop *l, struct stream *st, const uint8_t *data, size_t len);
    /* A receive completion was handled: `res` > 0 (bytes), -EAGAIN (no
     * buffer was free, or the receive was paused: try again later), or
     * else 0 (end of file) or -errno (gone: close it); `more` says whether
     * the receive stays armed. The owner decides whether to pause
     * (stream_pause_recv), re-arm (stream_want_recv) or close. */
    void (*on_recv_end)(struct stream_loop *l, struct stream *st, int res, bool more);
    /* Output was sent (st->backlog went down) or failed (res < 0). */
    void (*on_sent)(struct stream_loop *l, struct stream *st, int res);
    /* The stream is on the re-arm list at the flush: arm a receive
     * (stream_arm_recv) if the owner wants one now. Return true to keep it
     * listed for the next turn's flush (still paused, input left). */
    bool (*on_rearm)(struct stream_loop *l, struct stream *st);
    /* The stream is on the dirty list at the flush, before its output is
     * sent (the owner closes it here if it must). */
    void (*on_flush)(struct stream_loop *l, struct stream *st);
    /* Closed, no operation in flight, on no list: the owner may free it. */
    void (*on_closed)(struct stream_loop *l, struct stream *st);
};

/*
 * A transport: what turns socket bytes into the bytes the owner reads and
 * back, one table per listener. NULL hooks are the identity, which is
 * what `tcp` is. A transport with per-stream state gets `state_size` bytes
 * placed after its owner's struct (stream_state); the owner allocates
 * them.
 */
struct transport_ops {
    const char *name;
    size_t state_size;
    /* A stream was accepted (or adopted): set up its state. 0 or -errno. */
    int (*open)(struct stream_loop *l, struct stream *st);
    /* Bytes read from the socket: hand what they carry to ev->on_bytes
     * (stream_deliver), send what the protocol needs (stream_reserve, or
     * its own output and stream_xprt_output). data NULL, len 0: hand up
     * what the transport holds (stream_resume). 0, or -errno to close the
     * stream. */
    int (*input)(struct stream_loop *l, struct stream *st, const uint8_t *data, size_t len);
    /* st->out is about to be sent: encode it in place or replace it (the
     * owner wrote plain bytes; st->backlog counts those), putting first
     * what the transport has to send of its own. st->out may be NULL or
     * empty when only the transport has output (st->xprt_out). 0 or
     * -errno. */
    int (*seal)(struct stream_loop *l, struct stream *st);
    /* State that travels with the stream when its descriptor moves to
     * another loop: its size, written to `to` (from then on the stream
     * here must not use it: the other loop may), read back there (after
     * open), or here again when the move failed. NULL: none. */
    size_t (*export_size)(const struct stream_loop *l, const struct stream *st);
    void (*export_state)(const struct stream_loop *l, struct stream *st, uint8_t *to);
    int (*import_state)(struct stream_loop *l, struct stream *st, const uint8_t *from, size_t len);
    /* The milliseconds the transport allows a new stream for an opening
     * of its own (a TLS handshake), so that the owner can bound it, and
     * in *open whether this stream is through it. NULL: no opening. */
    uint32_t (*opening)(const struct stream_loop *l, struct stream *st, bool *open);
    /* What the transport knows of the client (TLS version, server name,
     * certificate), or NULL: nothing yet, or nothing to say. NULL hook:
     * nothing (tcp). */
    const struct xprt_info *(*info)(const struct stream_loop *l, struct stream *st);
    /* The stream is going away: release its state. */
    void (*close)(struct stream_loop *l, struct stream *st);
};

/* The identity transport: bytes as the socket carries them. */
extern const struct transport_ops transport_tcp;

/* The completions a loop asks for, as io_uring user_data tags (the low
 * bits of user_data, the stream's address above): its owner dispatches
 * each tag back to stream_on_recv/on_send/on_close. */
struct stream_tags {
    uint8_t recv, send, close, ignore;
};

/* Listener indexes a loop knows: every listener the broker opens in its
 * life takes one (a live reload adds them; broker/listeners.c). */
#define STREAM_MAX_LISTENERS 64u

/* One thread's streams: its ring, buffers and per-turn lists. */
struct stream_loop {
    struct io_uring *ring;
    struct bufring *bufs;
    const struct stream_events *ev;
    const struct transport_ops *xprt[STREAM_MAX_LISTENERS]; /* by listener */
    void *xprt_ctx[STREAM_MAX_LISTENERS]; /* each listener's shared context (transport.h) */
    struct stream_tags tags;
    size_t owner_size;    /* the owner's struct, which starts with the stream */
    struct stream *dirty; /* streams with output to send, in order */
    struct stream *dirty_tail;
    struct stream *rearm; /* streams whose receive ended early */
    /* Durable output (below): set by the owner; the barrier in flight and
     * the streams whose output waits for it (each holds an op). */
    bool gated;
    bool barrier;
    uint32_t nheld, held_cap;
    struct stream **held;
    /* Streams whose output also waits for other loops' answers: each until
     * barrier k is done and every remote token up to `token` answered. */
    struct stream_rheld {
        struct stream *st;
        uint32_t token, k;
    } * rheld;
    uint32_t nrheld, rheld_cap;
    uint32_t barrier_k;   /* barriers begun */
    uint32_t remote_done; /* remote tokens answered up to (stream_barrier_remote) */
    uint64_t out_bytes;   /* sum of every stream's backlog */
    /* This turn's budget: bytes committed ever (out_written) and at the
     * turn's start, bytes of the sends started this turn. */
    uint64_t out_written, turn_written0, turn_sent;
    uint64_t turn_start_us; /* when this turn started (CLOCK_MONOTONIC) */
    bool turn_over;
    uint64_t out_freed; /* bytes of output buffers freed (the owner resets it) */
    /* PROXY protocol: each listener's configuration where it is on (NULL:
     * off), and the headers that arrived in part, by st->proxy_hold - 1
     * (the array exists only while one is held). */
    const struct config_listener *proxy[STREAM_MAX_LISTENERS];
    struct stream_proxy_holds {
        /* While st->proxy_wait: the header's start (struct iobuf *);
         * after: what its TLS TLVs said (struct xprt_info *). */
        void **slot;
        uint32_t cap, used, hint;
    } proxy_holds;
};

/* A submission queue entry, submitting first when the queue is full. */
struct io_uring_sqe *stream_sqe(struct stream_loop *l);

/*
 * Stacked transports (transport_stack.c): `wss` is `ws` running on `tls`.
 * A stack's listener context is a struct stream_layers, its layers lowest
 * first; its per-stream state holds its own few bytes, then each layer's
 * at off[i]. While the stack runs layer i's hook, st->xprt_layer is i + 1,
 * so that the three helpers below give that layer its own state and
 * context and take what it delivers to the layer above it (the owner, from
 * the top one). A layer is written as a transport of its own and cannot
 * tell that it is stacked.
 */
#define STREAM_MAX_LAYERS 3u

struct stream_layers {
    const struct transport_ops *ops[STREAM_MAX_LAYERS];
    void *ctx[STREAM_MAX_LAYERS];    /* each layer's listener context */
    uint32_t off[STREAM_MAX_LAYERS]; /* each layer's state, in the stack's */
    uint8_t n;
};

/* For stream_deliver: the bytes layer st->xprt_layer hands up go to the
 * layer above, or to the owner (transport_stack.c). */
void stream_layer_deliver(struct stream_loop *l, struct stream *st, const uint8_t *data,
                          size_t len);

/* Where the transport's state of stream st is, for a transport that keeps
 * one. */
static inline void *stream_state_at(const struct stream_loop *l, const struct stream *st)
{
    char *s = (char *)st + l->owner_size;
    if (__builtin_expect(st->xprt_layer != 0, 0))
        s += ((const struct stream_layers *)l->xprt_ctx[st->listener])->off[st->xprt_layer - 1];
    return s;
}

/* The transport's state of stream st (NULL when it keeps none). */
static inline void *stream_state(const struct stream_loop *l, struct stream *st)
{
    return l->xprt[st->listener]->state_size ? stream_state_at(l, st) : NULL;
}

/* The shared context of stream st's listener (transport.h; NULL: none). */
static inline void *stream_xprt_ctx(const struct stream_loop *l, const struct stream *st)
{
    void *ctx = l->xprt_ctx[st->listener];
    if (__builtin_expect(st->xprt_layer != 0, 0))
        return ((const struct stream_layers *)ctx)->ctx[st->xprt_layer - 1];
    return ctx;
}

/* A zeroed stream on descriptor `fi` of `listener`: its transport opens it
 * (0 or -errno; the owner then closes the descriptor with
 * stream_close_fixed). */
int stream_open(struct stream_loop *l, struct stream *st, uint32_t fi, uint8_t listener,
                const struct net_peer *peer);

/* Close descriptor `fi` that no stream holds. */
void stream_close_fixed(struct stream_loop *l, uint32_t fi);

/* Arm a receive now (single-shot or st->multishot). */
void stream_arm_recv(struct stream_loop *l, struct stream *st);

/* End a multishot receive: its last completion comes with -ECANCELED
 * (or data), and the owner re-arms it later via stream_want_recv. */
void stream_pause_recv(struct stream_loop *l, struct stream *st);

/* List the stream for the next flush's re-arm (ev->on_rearm decides
 * then). */
void stream_want_recv(struct stream_loop *l, struct stream *st);

/* Hand bytes to the owner (for transports' input). */
static inline void stream_deliver(struct stream_loop *l, struct stream *st, const uint8_t *data,
                                  size_t len)
{
    if (__builtin_expect(st->xprt_layer != 0, 0))
        stream_layer_deliver(l, st, data, len);
    else
        l->ev->on_bytes(l, st, data, len);
}

/* List the stream for the flush without output (ev->on_flush runs). */
void stream_mark_dirty(struct stream_loop *l, struct stream *st);

/* For transports: they have bytes of their own to send (a handshake
 * answer, an alert) whether or not the owner writes: the flush seals and
 * sends then. */
void stream_xprt_output(struct stream_loop *l, struct stream *st);

/* stream_reserve when the output buffer must be created or grown. */
uint8_t *stream_reserve_grow(struct stream *st, size_t n);

/* Space for `n` more bytes at the end of the output; NULL when the stream
 * is shut or out of memory (the caller then closes it). Commit what was
 * written with stream_commit. Inline: every packet to a client passes
 * here, most into a buffer that has room. */
static inline uint8_t *stream_reserve(struct stream_loop *l, struct stream *st, size_t n)
{
    (void)l;
    struct iobuf *b = st->out;
    if (__builtin_expect(b && b->cap - b->len >= n && !st->shut, 1))
        return b->data + b->len;
    return stream_reserve_grow(st, n);
}

static inline void stream_commit(struct stream_loop *l, struct stream *st, size_t n)
{
    st->out->len += (uint32_t)n;
    st->backlog += (uint32_t)n;
    l->out_bytes += n;
    l->out_written += n;
    if (!st->is_dirty)
        stream_mark_dirty(l, st);
}

/* No more output: send what is queued, then shut down and close. True
 * while that output is still being sent (the owner bounds the wait with a
 * timer of its own, then calls stream_teardown). Idempotent. */
bool stream_close(struct stream_loop *l, struct stream *st);

/* No more output, and close the descriptor now without shutting the
 * connection down: another loop holds a copy of it (a moved stream). */
void stream_drop(struct stream_loop *l, struct stream *st);

/* Shut down and close now, dropping unsent output. Idempotent. */
void stream_teardown(struct stream_loop *l, struct stream *st);

/* Whether output is queued or being sent. */
static inline bool stream_sending(const struct stream *st)
{
    return st->sending || (((st->out && st->out->len) || st->xprt_out) && !st->shut);
}

/* A loop turn starts: its budget is whole again. */
static inline void stream_turn_begin(struct stream_loop *l)
{
    l->turn_start_us = clock_now_us();
    l->turn_written0 = l->out_written;
    l->turn_sent = 0;
    l->turn_over = false;
}

/* One more unit of an owner's work this turn (a packet handled, a message
 * taken from another thread): whether the turn has had its share, that is
 * STREAM_TURN_OUTPUT bytes of output, or STREAM_TURN_US since it started
 * once it made STREAM_TURN_HEAVY bytes (the clock is read from then on, at
 * every unit). The owner then leaves what it can for the next turn (at
 * least one unit from each source). Bytes alone did not bound the time:
 * where fresh memory costs a page fault per 4 KiB (a virtual machine), a
 * byte of a burst's output costs ten times what it costs after it, and a
 * message to 500 subscribers took 3 ms. Light work is bounded by counts
 * (CONN_TURN_KIB, SHARD_INBOUND_TURN): timing it would read the clock per
 * packet, and would cut every turn short under valgrind. */
static inline bool stream_turn_spent(struct stream_loop *l)
{
    uint64_t made = l->out_written - l->turn_written0;
    if (l->turn_over || made >= STREAM_TURN_OUTPUT)
        return l->turn_over = true;
    if (made < STREAM_TURN_HEAVY)
        return false;
    return l->turn_over = clock_now_us() - l->turn_start_us >= STREAM_TURN_US;
}

/* Whether stream_turn_spent said so this turn (counts no unit). */
static inline bool stream_turn_over(const struct stream_loop *l)
{
    return l->turn_over;
}

/* Whether streams wait for the next turn's send budget (the loop must not
 * sleep then). Not those a barrier in flight holds: its end is a
 * completion, which wakes the loop (spinning until it came cost a core
 * while an fdatasync ran). */
static inline bool stream_flush_left(const struct stream_loop *l)
{
    return l->dirty != NULL && !(l->gated && l->barrier);
}

/* Forget every dirty stream (shutdown, the owner frees them all). */
static inline void stream_dirty_clear(struct stream_loop *l)
{
    l->dirty = l->dirty_tail = NULL;
}

/* Once per loop turn: send what each dirty stream has, re-arm receives.
 * A gated loop with a barrier in flight leaves its dirty streams waiting
 * (what they hold may depend on records the barrier does not cover yet);
 * without one, everything they hold is released and sent. */
void stream_flush(struct stream_loop *l);

/*
 * Durable output (issue 13). An owner whose acknowledgements promise that
 * records are on disk sets l->gated, and then output leaves only when the
 * records written before it are durable. At the end of a turn that wrote
 * records, with no barrier in flight, the owner submits the write and sync
 * of everything so far and calls stream_barrier_begin instead of
 * stream_flush: each dirty stream's output so far is covered by that
 * barrier (cover = len) and waits. Output written meanwhile waits too.
 * When the sync completes, stream_barrier_done releases what the barrier
 * covered and sends it; output written since (not covered) stays until the
 * next barrier's end, or until a flush when no record was written since.
 * One barrier is in flight at a time, so releases come in order.
 *
 * What only the transport wrote (stream_xprt_output: a TLS handshake, a
 * WebSocket pong) depends on no record and is never held. A closing
 * stream lingers while held output waits. Marks are offsets into st->out,
 * so a transport keeps its own bytes out of st->out (tls and ws do).
 */
void stream_barrier_begin(struct stream_loop *l, uint32_t token);
void stream_barrier_done(struct stream_loop *l);
/*
 * Output that depends on other loops' records too (a PUBACK of a message
 * routed to other shards): the owner calls stream_depends on the stream
 * that wrote it, before the barrier that covers it begins, and gives that
 * barrier a `token` (non-zero; tokens grow) that it will say answered with
 * stream_barrier_remote. Such a stream's output waits for its barrier and
 * for every token up to its own; other streams are not held behind it,
 * and later barriers begin without waiting for the answers. Once a stream
 * waits so, its later output waits behind it (order is kept).
 */
static inline void stream_depends(struct stream *st)
{
    st->dep = true;
}
/*
 * The output just written promises something its records must back (an
 * acknowledgement, a QoS 2 delivery): a gated loop holds it for its
 * barrier. Output without a promise (a QoS 0/1 delivery, a PINGRESP) is
 * not held, unless a promise before it on the same stream is: then it
 * waits behind it, in order.
 */
static inline void stream_promise(struct stream *st)
{
    st->promise = true;
}
/* Remote tokens up to `upto` are answered: release what waited for them. */
void stream_barrier_remote(struct stream_loop *l, uint32_t upto);
/* Remote token `token` failed (the other loop could not write): streams
 * waiting for it or a later one are torn down with their covered output
 * unsent. Returns how many. */
uint32_t stream_barrier_remote_abort(struct stream_loop *l, uint32_t token);
/* The records the barrier waits for cannot be made durable (the disk is
 * full): every stream it holds is torn down, its covered output dropped
 * unsent, so that no acknowledgement promises what is not on disk; the
 * barrier ends. Returns how many streams were torn down. */
uint32_t stream_barrier_abort(struct stream_loop *l);
/* At exit, after every stream was released: free the list. */
void stream_barrier_fini(struct stream_loop *l);

/* Completions, by tag. */
void stream_on_recv(struct stream_loop *l, struct stream *st, int res, unsigned flags);
void stream_on_send(struct stream_loop *l, struct stream *st, int res);
void stream_on_close(struct stream_loop *l, struct stream *st, int res);

/* An operation that held the stream (st->ops, counted by the owner for its
 * own requests naming it) ended: on_closed runs if that was the last. */
void stream_op_done(struct stream_loop *l, struct stream *st);

/* Run on_closed if the stream is closed and nothing names it any more. */
void stream_maybe_closed(struct stream_loop *l, struct stream *st);

/* Free the stream's buffers and the transport's state without I/O (the
 * owner frees the stream; at shutdown the ring's exit closes the
 * descriptors). */
void stream_release(struct stream_loop *l, struct stream *st);

/*
 * The PROXY protocol (net/proxy.h), below every transport: on a listener
 * with proxy_protocol on (l->proxy[listener]), a connection comes from a
 * proxy, which writes a header naming the client before the client's own
 * bytes. Kept here, under the transport, so tcp, TLS and WebSocket
 * listeners all take it the same way (stream_proxy.c).
 */

/* Whether a connection from `peer` may be accepted on `listener`: 0, or
 * -EPERM (logged) when the listener takes PROXY headers and peer is not in
 * its proxy_trusted. */
int stream_proxy_admit(const struct stream_loop *l, uint8_t listener, const struct net_peer *peer);

/* st was just accepted (not adopted from another loop): on a PROXY
 * listener its first bytes are the header. Once it is complete st->peer is
 * the address it names (unless LOCAL/UNKNOWN), before any byte reaches the
 * transport or the owner; a bad header fails the receive (-EPROTO,
 * logged), and the owner closes the stream. */
void stream_proxy_expect(const struct stream_loop *l, struct stream *st);

/* For stream.c: the header's share of `data`, the next bytes of st (all
 * of them while it is incomplete: kept until it is), or -EPROTO. */
long stream_proxy_input(struct stream_loop *l, struct stream *st, const uint8_t *data, size_t len);

/* For stream.c: what a complete header's TLS TLVs said, or NULL. */
const struct xprt_info *stream_proxy_info(const struct stream_loop *l, const struct stream *st);

/* For stream.c: free what st holds of a header (incomplete, or its TLVs). */
void stream_proxy_release(struct stream_loop *l, struct stream *st);

/* The transport state that travels with a moving stream: its size, and
 * written to `to` (the stream here no longer uses it, unless it is
 * imported back because the move failed). */
size_t stream_export_size(const struct stream_loop *l, const struct stream *st);
void stream_export(const struct stream_loop *l, struct stream *st, uint8_t *to);
/* Read it back on the new loop (after stream_open), or on this one when
 * the move failed. 0 or -errno. */
int stream_import(struct stream_loop *l, struct stream *st, const uint8_t *from, size_t len);

/* After the owner has re-read what a moved stream carried: input the
 * transport brought along (bytes received but not yet decoded when it
 * moved) is handed up now. 0, or -errno: the owner closes the stream. */
int stream_resume(struct stream_loop *l, struct stream *st);

/* The transport's name ("tcp", "tls", "ws", "wss") and what it knows of the
 * client: its own (a TLS handshake), else what a PROXY v2 header's TLS
 * TLVs said (from_proxy), else NULL. Borrowed: valid until the stream
 * closes or moves. A PROXY header's view stays on the loop that read it
 * (the broker reads it at CONNECT, before any move); the transport's own
 * travels with the stream. */
const char *stream_xprt_name(const struct stream_loop *l, const struct stream *st);
const struct xprt_info *stream_info(const struct stream_loop *l, struct stream *st);

/* The owner has read what it needs of stream_info (CONNECT is handled): a
 * PROXY header's view is freed now, so that it holds neither memory nor a
 * slot for the rest of the connection (the transport's own stays until
 * close). */
void stream_info_done(struct stream_loop *l, struct stream *st);

/* The transport's opening bound in ms (transport_ops.opening; 0: none)
 * and whether st is through its opening (always, with none). */
uint32_t stream_opening(const struct stream_loop *l, struct stream *st, bool *open);

#endif
