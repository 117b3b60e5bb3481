/*
 * replay: rebuilds durable state from records (record.h) read in the order
 * they were written, and hands it to the shard through a struct store_sink
 * (session/store.h) at the end.
 *
 * What it rebuilds: per (tenant name, client id) a struct session_state
 * kept as the session room keeps one (heap arrays, the queue a ring of a
 * power-of-two capacity, one reference per message, qbytes summed), and per
 * (tenant name, topic) the latest retained message: the update with the
 * highest retain stamp wins, whatever the order of the records, and a
 * clear removes (the broker's stamps order updates made on different
 * shards, route.c).
 *
 * Records must tell a consistent story: a record about a session that was
 * never put (or was deleted), a pop from an empty queue, a PUBREC or an end
 * of flow for a packet id not in flight, a packet id put twice, a
 * subscription or QoS 2 id removed that was not there: each is -EBADMSG.
 * Such a record means records were lost before it, and what is rebuilt
 * after it would be wrong without anyone knowing. Snapshots keep this
 * strictness possible: a snapshot is a consistent cut (it opens each
 * session with its put, snapshot.h), and the log replayed after it holds
 * only records written after the cut. skip_unknown (for salvaging a
 * damaged directory) instead skips records about unknown sessions and
 * counts them.
 *
 * Message deadlines come back on the monotonic clock from the wall-clock
 * deadlines of the records (record.h); an expired message is kept with a
 * passed deadline, since later records (a pop) count on it being there: the
 * broker drops it as it would any expired message (MQTT-3.3.2-5).
 *
 * Single-threaded: one replay per shard's records, on any one thread.
 */
#ifndef RINGMQ_PERSIST_REPLAY_H
#define RINGMQ_PERSIST_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct shard;
struct store_sink;
struct session_state;

struct replay;

struct replay_opts {
    uint64_t mono_ms, wall_ms; /* now, on the broker's clock and on CLOCK_REALTIME */
    bool skip_unknown;         /* skip records of unknown sessions (salvage) */
};

/* An empty replay; NULL on OOM. */
struct replay *replay_create(const struct replay_opts *o);

/* Free the replay and everything it rebuilt and has not handed on. NULL is
 * a no-op. */
void replay_destroy(struct replay *r);

/*
 * Apply the next record: its format (the version of the segment it is in,
 * record.h), type and body as the log stored them (borrowed). 0; -EBADMSG
 * when the record is malformed, of an unknown type or at odds with those
 * before it (replay_error says which and why; the replay is unchanged by
 * the record); -ENOMEM.
 */
int replay_apply(struct replay *r, uint16_t format, uint8_t type, const void *bytes, size_t len);

/* The records that follow are another log's: session numbers (record.h)
 * are each log's own, so those of the log before are forgotten (the
 * sessions stay). */
void replay_next_log(struct replay *r);

/* What the last failing replay_apply found wrong ("" when none). */
const char *replay_error(const struct replay *r);

/* Records skipped under skip_unknown. */
uint64_t replay_skipped(const struct replay *r);

/* Keys of QoS 2 flows kept (broker/ingress.h), rebuilt so far. */
uint32_t replay_ingress(const struct replay *r);

/* Sessions and retained messages rebuilt so far. */
uint32_t replay_sessions(const struct replay *r);
uint32_t replay_retained(const struct replay *r);

/* The run-time id of the tenant named name[0..len): >= 0, or -errno. */
typedef int (*replay_tenant_fn)(void *ctx, const char *name, size_t len);

/*
 * Hand every rebuilt session and retained message to sink (for shard s),
 * naming tenants by the ids `tenant` gives. A session is handed as a
 * struct session_state the replay owns for the call only: the sink takes
 * what it holds (arrays, client id, subscriptions, messages, the will) and
 * copies the struct. The replay is empty afterwards. 0, or the first error
 * of `tenant` or the sink (what was not handed yet is freed).
 */
int replay_finish(struct replay *r, struct shard *s, const struct store_sink *sink,
                  replay_tenant_fn tenant, void *ctx);

/* Free what a session state handed on by replay_finish holds (for a sink
 * that cannot keep it), leaving it empty. */
void replay_state_fini(struct session_state *st);

#endif
