/*
 * inspect: what a data directory holds, for an operator (ringmqd --inspect
 * DIR), read without changing a byte of it: no torn tail is cut, no file
 * removed or renamed, no lock taken (a broker starting on DIR meanwhile is
 * not refused; a running one may be writing the newest records, which then
 * show as a torn tail).
 *
 * It reads the generation CURRENT names, every shard-NNNN directory of it
 * whatever their number, each shard's log from its first segment (every
 * checksum is checked, also of records a snapshot made obsolete) and
 * rebuilds the state from the SNAPSHOT start as a start-up would
 * (replay.h), retained messages of all shards together (their stamps order
 * them). It prints, per shard: segments and bytes, the SNAPSHOT start, the
 * records; per tenant: sessions, subscriptions, queued messages and their
 * bytes, in-flight entries, inbound QoS 2 ids, retained topics; then
 * whether everything verifies. Each problem is a line naming the file and
 * the offset (or the record) where it is.
 *
 * A torn tail (the last flush cut short by a crash: never acknowledged) is
 * reported and is not a failure: the broker cuts it at start-up.
 */
#ifndef RINGMQ_PERSIST_INSPECT_H
#define RINGMQ_PERSIST_INSPECT_H

#include <stdio.h>

/*
 * Inspect data directory `dir`, the report to `out`. 0: everything
 * verifies, or there is no data (dir missing or empty: "no data");
 * -EBADMSG: a checksum, a header, a sequence number or the records' story
 * does not hold, or dir holds something other than a data directory;
 * -EPROTO / -EPROTONOSUPPORT: a foreign file, a newer format; other
 * -errno: a file could not be read. Every failure is also a line in out.
 */
int persist_inspect(const char *dir, FILE *out);

#endif
