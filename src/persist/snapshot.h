/*
 * snapshot: the records that recreate live state from nothing, for
 * compaction: a snapshot file holds them, and the log before it can go.
 *
 * A session is written as its put (expiry, will, will delay) followed by
 * its subscriptions, its in-flight window in send order with each entry's
 * state, its queue from head to tail and its inbound QoS 2 ids: the same
 * records the store hooks write as the state changes, so replay (replay.h)
 * has one way to read both, and a snapshot is a consistent cut: every
 * record about a session comes after its put.
 *
 * Reads the state it is given (borrowed), on the thread that owns it.
 */
#ifndef RINGMQ_PERSIST_SNAPSHOT_H
#define RINGMQ_PERSIST_SNAPSHOT_H

#include <stdbool.h>

#include "persist/record.h"

#include <stdbool.h>
#include <stdint.h>

struct tenant;
struct session_state;
struct msg;

/* The records of session st of tenant t; its queued QoS 0 messages only
 * when `qos0` (a store that does not keep them skips their pops too);
 * offline, its expiry and will run out at these monotonic deadlines (0:
 * none, record_session_put_at). 0, or the first error of record.h's
 * encoders (-ENOMEM, -EMSGSIZE). */
int snapshot_session(struct record_writer *w, const struct tenant *t,
                     const struct session_state *st, bool qos0, uint64_t expire_mono_ms,
                     uint64_t will_mono_ms);

/* A retained message m of tenant t (not a clear's tombstone: those only
 * order updates while the broker runs). 0 or -errno as above. */
int snapshot_retained(struct record_writer *w, const struct tenant *t, const struct msg *m);

#endif
