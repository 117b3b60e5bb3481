/*
 * xshard: cross-shard messages on SPSC rings, their overflow queues and
 * wakeups (see xshard.h).
 */
#include "shard/xshard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/spsc.h"
#include "shard/shard.h"

/*
 * Back-pressure between shards: when a target shard stays behind, its
 * overflow queue here grows; above the high mark the target is congested
 * and every connection that publishes to it stops being read (its receive
 * ends and is not re-armed, so TCP pushes back on that publisher) until the
 * queue is below the low mark. Clients whose messages go elsewhere are read
 * as before: one shard's slow subscribers never stall the whole shard.
 */
#define SHARD_OVERFLOW_HIGH 8192u
#define SHARD_OVERFLOW_LOW  1024u

static int xqueue_push(struct xqueue *q, const struct xmsg *x)
{
    if (q->len == q->cap) {
        uint32_t cap = q->cap ? q->cap * 2 : 64;
        struct xmsg *v = malloc(cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        for (uint32_t i = 0; i < q->len; i++)
            v[i] = q->v[(q->head + i) & (q->cap - 1)];
        free(q->v);
        q->v = v;
        q->cap = cap;
        q->head = 0;
    }
    q->v[(q->head + q->len) & (q->cap - 1)] = *x;
    q->len++;
    return 0;
}

void shard_xsend(struct shard *s, uint32_t target, const struct xmsg *x)
{
    struct xmsg copy = *x;
    copy.src = (uint8_t)s->id;
    copy.sent_ms = (uint32_t)s->now_ms;
    struct xqueue *q = &s->overflow[target];
    if (q->len == 0) {
        struct xmsg *slot = spsc_reserve(s->out[target]);
        if (slot) {
            *slot = copy;
            s->wake_mask |= 1ull << target;
            return;
        }
    }
    /* A full ring never blocks the shard: keep the slot, in order. */
    if (!q->len)
        q->since_ms = s->now_ms;
    if (xqueue_push(q, &copy) < 0) {
        log_ratelimited(LOG_LEVEL_ERR, "out of memory queueing for shard %u", target);
        s->hooks->xdiscard(&copy);
    }
    if (q->len > SHARD_OVERFLOW_HIGH && !(s->xcongested & (1ull << target))) {
        s->xcongested |= 1ull << target;
        log_ratelimited(LOG_LEVEL_WARN,
                        "shard %u is behind: pausing the clients that publish to it", target);
    }
    if (s->xcongested & (1ull << target))
        s->xhit = true;
}

void xshard_flush(struct shard *s)
{
    for (uint32_t t = 0; t < s->broker->nshards; t++) {
        struct xqueue *q = &s->overflow[t];
        while (q->len) {
            struct xmsg *slot = spsc_reserve(s->out[t]);
            if (!slot)
                break;
            *slot = q->v[q->head];
            q->head = (q->head + 1) & (q->cap - 1);
            q->len--;
            s->wake_mask |= 1ull << t;
        }
        if (!q->len && q->v) {
            free(q->v);
            q->v = NULL;
            q->cap = 0;
            q->head = 0;
        }
    }
    uint64_t mask = s->wake_mask;
    s->wake_mask = 0;
    while (mask) {
        uint32_t t = (uint32_t)__builtin_ctzll(mask);
        mask &= mask - 1;
        spsc_publish(s->out[t]);
        struct io_uring_sqe *sqe = shard_sqe(s);
        io_uring_prep_msg_ring(sqe, s->broker->shards[t]->ring_fd, 0, ud_make(UD_WAKE, NULL), 0);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(sqe, ud_make(UD_IGNORE, NULL));
    }
}

bool xshard_overflowing(struct shard *s)
{
    bool any = false;
    for (uint32_t t = 0; t < s->broker->nshards; t++) {
        uint32_t len = s->overflow[t].len;
        any |= len != 0;
        if (len < SHARD_OVERFLOW_LOW)
            s->xcongested &= ~(1ull << t);
    }
    return any;
}

/* How long the oldest message from shard `src` waited, for the source to
 * see (shard_target_behind); stored only when it changes. 0 unless a
 * quarter of the ring waits: a few messages that waited because this
 * thread was not scheduled for a while do not make it a shard that cannot
 * keep up (QoS 0 would be dropped for clients that read). This turn may
 * have started before the source's (both read the same coarse clock at
 * their turn's start): a message from the future waited 0. */
static void note_lag(struct shard *s, uint32_t src, struct spsc *r)
{
    const struct xmsg *oldest = spsc_backlog(r) >= SHARD_LAG_BACKLOG ? spsc_front(r) : NULL;
    int32_t waited = oldest ? (int32_t)((uint32_t)s->now_ms - oldest->sent_ms) : 0;
    uint32_t lag = waited > 0 ? (uint32_t)waited : 0;
    if (atomic_load_explicit(&s->lag_ms[src], memory_order_relaxed) != lag)
        atomic_store_explicit(&s->lag_ms[src], lag, memory_order_relaxed);
}

void xshard_drain(struct shard *s, uint32_t share)
{
    s->inbound_left = false;
    for (uint32_t i = 0; i < s->broker->nshards; i++) {
        struct spsc *r = s->in[i];
        if (!r)
            continue;
        uint32_t n = 0;
        struct xmsg *x;
        note_lag(s, i, r);
        while ((!share || (n < share && !(n && stream_turn_spent(&s->streams)))) &&
               (x = spsc_front(r))) {
            struct xmsg copy = *x;
            spsc_pop(r);
            n++;
            s->hooks->xmsg(s, &copy);
        }
        if (n)
            spsc_consumer_sync(r);
        if (share && spsc_front(r))
            s->inbound_left = true;
    }
}

void xshard_fini(struct shard *s)
{
    /* Slots reserved during the shutdown become visible to the final drain
     * (broker_stop), which releases what they hold. */
    for (uint32_t t = 0; t < s->broker->nshards; t++)
        if (s->out[t])
            spsc_publish(s->out[t]);
    for (uint32_t t = 0; t < CONFIG_MAX_SHARDS; t++) {
        struct xqueue *q = &s->overflow[t];
        for (uint32_t i = 0; i < q->len; i++)
            s->hooks->xdiscard(&q->v[(q->head + i) & (q->cap - 1)]);
        free(q->v);
        memset(q, 0, sizeof(*q));
    }
}
