/*
 * shard/xshard: what a shard's drain tells the shards that send to it
 * (lag_ms, read by shard_target_behind), and the drain's turn budget. Two
 * shards without rings or threads: shard 1 sends to shard 0 through a real
 * SPSC ring; a test hook counts what shard 0 handles.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "core/spsc.h"
#include "shard/shard.h"
#include "shard/xshard.h"

static struct broker broker;
static struct shard s0, s1;
static struct shard *shards[2] = {&s0, &s1};
static int handled;

static void count_xmsg(struct shard *s, const struct xmsg *x)
{
    (void)s;
    (void)x;
    handled++;
}
static void no_discard(const struct xmsg *x)
{
    (void)x;
}
static const struct shard_hooks hooks = {.xmsg = count_xmsg, .xdiscard = no_discard};

static void setup(void)
{
    broker = (struct broker){.hooks = &hooks, .nshards = 2, .shards = shards};
    s0 = (struct shard){.id = 0, .broker = &broker, .hooks = &hooks, .now_ms = 5000};
    s1 = (struct shard){.id = 1, .broker = &broker, .hooks = &hooks, .now_ms = 5000};
    struct spsc *r = spsc_create(sizeof(struct xmsg), 1024);
    cr_assert_not_null(r);
    s1.out[0] = r;
    s0.in[1] = r;
    handled = 0;
}

static void teardown(void)
{
    xshard_fini(&s1);
    spsc_destroy(s0.in[1]);
}

TestSuite(xshard, .init = setup, .fini = teardown);

static void send_from1(int n)
{
    for (int i = 0; i < n; i++) {
        struct xmsg x = {.type = XMSG_PING};
        shard_xsend(&s1, 0, &x);
    }
    spsc_publish(s1.out[0]); /* xshard_flush, without its wakeup (no ring here) */
}

/* The lag shard 0 reports for shard 1's ring is the age of the oldest
 * message it found there, once SHARD_LAG_BACKLOG wait, and 0 once the ring
 * is empty; shard 1 then treats shard 0 as behind (QoS 0 is shed at the
 * source) from SHARD_BEHIND_MS on. */
Test(xshard, drain_reports_how_long_messages_waited)
{
    send_from1(SHARD_LAG_BACKLOG);
    s0.now_ms += SHARD_BEHIND_MS - 1;
    xshard_drain(&s0, 0);
    cr_assert_eq(handled, SHARD_LAG_BACKLOG);
    cr_assert_eq(atomic_load(&s0.lag_ms[1]), SHARD_BEHIND_MS - 1);
    cr_assert_not(shard_target_behind(&s1, 0));
    s1.now_ms = s0.now_ms;
    send_from1(SHARD_LAG_BACKLOG);
    s0.now_ms += SHARD_BEHIND_MS; /* waited SHARD_BEHIND_MS */
    xshard_drain(&s0, 0);
    cr_assert_eq(atomic_load(&s0.lag_ms[1]), SHARD_BEHIND_MS);
    cr_assert(shard_target_behind(&s1, 0), "a target that lets messages wait is behind");
    xshard_drain(&s0, 0);
    cr_assert_eq(atomic_load(&s0.lag_ms[1]), 0, "an empty ring waited for nothing");
    cr_assert_not(shard_target_behind(&s1, 0));
}

/* A few messages that waited long (this thread was not scheduled) do not
 * make shard 0 a target that cannot keep up: QoS 0 would be dropped for
 * clients that read (e2e isolation output_budget_leaves_no_packet_behind
 * lost messages that way on a loaded machine). */
Test(xshard, few_messages_waiting_are_no_lag)
{
    send_from1(SHARD_LAG_BACKLOG - 1);
    s0.now_ms += 10 * SHARD_BEHIND_MS;
    xshard_drain(&s0, 0);
    cr_assert_eq(atomic_load(&s0.lag_ms[1]), 0);
    cr_assert_not(shard_target_behind(&s1, 0));
}

/* Both shards read the coarse clock at their turn's start: a message
 * queued in a turn that started after the receiver's did not wait "minus
 * 4 ms", read as 4 billion. */
Test(xshard, message_from_a_later_turn_waited_nothing)
{
    s1.now_ms = s0.now_ms + 4;
    send_from1(SHARD_LAG_BACKLOG);
    xshard_drain(&s0, 0);
    cr_assert_eq(handled, SHARD_LAG_BACKLOG);
    cr_assert_eq(atomic_load(&s0.lag_ms[1]), 0);
    cr_assert_not(shard_target_behind(&s1, 0));
}

/* A turn whose share of work is spent takes one message from each ring,
 * and says more is left (the loop then does not sleep). */
Test(xshard, spent_turn_takes_one_message_per_ring)
{
    send_from1(5);
    stream_turn_begin(&s0.streams);
    s0.streams.out_written += STREAM_TURN_OUTPUT; /* as if 2 MiB were written */
    xshard_drain(&s0, SHARD_INBOUND_TURN);
    cr_assert_eq(handled, 1);
    cr_assert(s0.inbound_left);
    stream_turn_begin(&s0.streams);
    xshard_drain(&s0, SHARD_INBOUND_TURN);
    cr_assert_eq(handled, 5);
    cr_assert_not(s0.inbound_left);
}
