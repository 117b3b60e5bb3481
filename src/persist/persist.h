/*
 * persist: the durable store. Implements session/store.h's store_ops over
 * a data directory ([persistence] dir): each shard appends the records of
 * its changes (record.h) to its own log (store/log.h), writes them once
 * per loop turn through its ring, and, with fsync = always, holds the
 * turn's output until they are on disk (net/stream.h's barrier), so an
 * acknowledgement never leaves before what it promises is durable.
 *
 * The directory (docs/DESIGN.md, "Durability"):
 *   DIR/LOCK                     flock'd while a broker uses DIR
 *   DIR/CURRENT                  the generation in force: "gen-NNNNNNNN\n"
 *   DIR/gen-NNNNNNNN/shard-NNNN/ one shard's log segments
 * At start-up every shard replays every log of the generation in force and
 * keeps the sessions homed on it now (the shard count, and tenant ids,
 * may differ from the last run's) and, on shard 0, every retained message;
 * it writes what it keeps as the first records of the next generation.
 * Once every shard has, CURRENT names the new generation and the old one
 * is deleted: a crash before that leaves the old one whole.
 *
 * What is durable: sessions with a non-zero expiry and everything they
 * hold (a queue holds QoS 1/2 only: QoS 0 is not queued for an offline
 * client, session_deliver_shared), retained messages.
 * A session's store_mark (session.h) says whether its records are in the
 * log: set by its first durable put, which writes the whole session.
 *
 * Cross-shard: a QoS 1/2 message published here and queued for a session
 * on shard B is recorded in B's log. The turn that sent it asks B
 * (XMSG_SYNC) to say when what it recorded is durable (XMSG_SYNCED), and
 * the turn's barrier waits for that answer as for its own sync: so the
 * publisher's PUBACK waits for every shard it was routed to.
 *
 * Threads: persist_open and persist_close on the main thread; each
 * shard's context on its shard's thread, but its counters hook, which
 * any thread may call (relaxed loads).
 */
#ifndef RINGMQ_PERSIST_PERSIST_H
#define RINGMQ_PERSIST_PERSIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct store_provider;
struct persist;

/*
 * Open cfg's data directory (creating it): lock it, read CURRENT, remove
 * the generations a crash during a start-up left behind. `salvage`: keep
 * every record whose checksum holds past corruption (ringmqd --salvage).
 * NULL on failure, with a one-line reason in err.
 */
struct persist *persist_open(const struct config *cfg, bool salvage, char *err, size_t errlen);

/* The store to give broker_start; lives as long as p. */
const struct store_provider *persist_provider(struct persist *p);

/* After broker_stop: free every shard's context, unlock. NULL: no-op. */
void persist_close(struct persist *p);

#endif
