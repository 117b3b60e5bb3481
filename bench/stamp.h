/*
 * stamp: what ringmq-bench writes at the start of every payload, and the
 * per-publisher sequence tracker its receivers use to count lost,
 * duplicated and out-of-order messages.
 *
 * Stamp layout, STAMP_SIZE = 16 bytes, little-endian:
 *   [0..1]   run tag: a random number per run, so a message left over from
 *            another run (a persistent session, another generator on the same
 *            topics) is recognised and not counted;
 *   [2..7]   send time, nanoseconds since the run's epoch (48 bits: 78 hours);
 *   [8..11]  publisher number;
 *   [12..15] sequence number of the message for that publisher, from 0.
 * 16 bytes fit the smallest payload the comparison uses. Bytes after the
 * stamp are the caller's (filler).
 */
#ifndef RINGMQ_BENCH_STAMP_H
#define RINGMQ_BENCH_STAMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STAMP_SIZE     16
#define STAMP_TIME_MAX ((1ull << 48) - 1)

struct stamp {
    uint16_t run;
    uint64_t sent_ns; /* <= STAMP_TIME_MAX */
    uint32_t publisher;
    uint32_t seq;
};

/* Write s at the start of payload. 0; -EINVAL when len < STAMP_SIZE;
 * -ERANGE when s->sent_ns > STAMP_TIME_MAX (nothing written). */
int stamp_encode(uint8_t *payload, size_t len, const struct stamp *s);

/* Read the stamp of payload. 0; -EINVAL when len < STAMP_SIZE; -EBADMSG
 * when its run tag is not `run` (*out is filled anyway). */
int stamp_decode(const uint8_t *payload, size_t len, uint16_t run, struct stamp *out);

/*
 * Sequence tracker for one (receiver, publisher) pair. It remembers which of
 * the last SEQ_WINDOW sequence numbers (below the highest seen) arrived, so a
 * duplicate or a late arrival within that window is told apart exactly.
 * Plain data, zero-initialised by seqtrack_init; 40 bytes.
 */
#define SEQ_WINDOW 256

struct seqtrack {
    uint32_t base; /* lowest sequence number the window still covers */
    uint32_t top;  /* highest sequence number seen + 1; 0 before any */
    uint64_t bits[SEQ_WINDOW / 64];
};

enum seq_result {
    SEQ_NEW = 0, /* first arrival, in order (higher than any before) */
    SEQ_OOO,     /* first arrival, but after a higher one (out of order) */
    SEQ_DUP,     /* seen before: a duplicate */
    SEQ_OLD,     /* below the window: a duplicate or a very late arrival */
};

void seqtrack_init(struct seqtrack *t);

/* Record one arrival of seq and classify it. */
enum seq_result seqtrack_add(struct seqtrack *t, uint32_t seq);

#endif
