/*
 * xshard: messages between shards. Shards talk only through struct xmsg
 * slots on SPSC rings (one ring per ordered pair: shard i's out[j] is shard
 * j's in[i]) followed by one IORING_OP_MSG_RING wakeup per target per loop
 * turn. A full ring never blocks the sender: the message waits in that
 * target's overflow queue, in order, and is retried every turn.
 *
 * What a message carries is the broker's (the types below); this room
 * moves them, keeps their order per pair, and tells the sender when a
 * target falls behind. The receiving shard hands each one to its hooks'
 * xmsg; one that will not be handled goes to xdiscard.
 */
#ifndef RINGMQ_SHARD_XSHARD_H
#define RINGMQ_SHARD_XSHARD_H

#include <stdbool.h>
#include <stdint.h>

struct shard;

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
    XMSG_SYNC = 8,         /* token: reply XMSG_SYNCED once what the messages sent
                              before it were recorded as is durable (store.h) */
    XMSG_SYNCED = 9,       /* token echoed; pad 1: they could not be written */
};

struct xmsg {
    uint8_t type;
    uint8_t src; /* sending shard */
    uint16_t tenant;
    uint32_t pad;
    uint32_t sent_ms; /* the sender's now_ms when queued (truncated): the receiver's lag */
    void *p;
    uint64_t token;
};

/* A topic filter crossing shards for the interest table. */
struct xfilter {
    uint16_t len;
    uint8_t data[];
};

/* Overflow of a full SPSC ring, kept in order and retried every turn. */
struct xqueue {
    struct xmsg *v;
    uint32_t head, len, cap;
    uint64_t since_ms; /* when it last became non-empty (the ring was full) */
};

/* Queue a cross-shard message to `target` (never blocks: overflows are kept
 * in order and retried). Ownership of x->p passes to the target. Sets
 * s->xhit when the target is congested. */
void shard_xsend(struct shard *s, uint32_t target, const struct xmsg *x);

/* Once per loop turn: move overflow into rings that have room, publish the
 * slots and wake each target that got some. */
void xshard_flush(struct shard *s);

/* Whether any target has messages beyond its ring; a congested target is
 * released once its queue is below the low mark. */
bool xshard_overflowing(struct shard *s);

/*
 * Handle up to `share` messages from each other shard's ring (0: all of
 * them), and from each at least one but no more once the turn has made its
 * share of output (stream_turn_spent); the rest waits for the next turn
 * (s->inbound_left), so a turn of a flood to a topic with many subscribers
 * here is bounded and this shard's own clients are served in between.
 * SHARD_INBOUND_TURN is the loop's share.
 */
#define SHARD_INBOUND_TURN 256u
/* Messages waiting in a ring (of SHARD_XRING_SLOTS, 1024) from which their
 * age counts as the target falling behind (note_lag in xshard.c). */
#define SHARD_LAG_BACKLOG 256u
void xshard_drain(struct shard *s, uint32_t share);

/* Shutdown: publish what was reserved, discard the overflow queues. */
void xshard_fini(struct shard *s);

#endif
