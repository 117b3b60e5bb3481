/*
 * log_uring: a log's flush (log.h) submitted on the caller's io_uring as a
 * linked pair, IORING_OP_WRITE then IORING_OP_FSYNC with
 * IORING_FSYNC_DATASYNC, so that a shard never blocks on the disk: it preps
 * the pair at the end of a loop turn, submits it with everything else, and
 * feeds the two completions back; when both are in, the log's watermark
 * (rlog_durable_seq) has moved, or the error is kept (rlog_error).
 *
 * Kernel: IORING_OP_WRITE needs 5.6 (the ring's other users need more).
 * With IOSQE_IO_LINK a failed or short write cancels the sync (-ECANCELED):
 * both completions always arrive, and a short write counts as -EIO (the
 * next flush writes the whole turn again).
 *
 * The caller owns struct rlog_uring (embed it) and the user_data values,
 * which it tells apart itself. Same thread as the log.
 */
#ifndef RINGMQ_STORE_LOG_URING_H
#define RINGMQ_STORE_LOG_URING_H

#include <stdbool.h>
#include <stdint.h>

#include <liburing.h>

#include "store/log.h"

struct rlog_uring {
    struct rlog *log; /* borrowed */
    struct rlog_flush f;
    int write_res;
    int sync_res;
    unsigned outstanding; /* completions still to come; 0: idle */
    bool no_sync;         /* the write alone: durable once the OS has it (fsync never) */
};

/* Borrow `log`; nothing in flight. */
void rlog_uring_init(struct rlog_uring *u, struct rlog *log);

/*
 * Prep the pair (the write alone with u->no_sync) for everything appended and not yet durable (the
 * caller submits): 1 when prepped, 0 when there is nothing to write or a flush is already in flight
 * (the records wait for the next turn), -EAGAIN when the submission queue lacks two free entries,
 * -EFBIG for a turn over 2 GiB, or rlog_flush_begin's -errno.
 */
int rlog_uring_prep(struct rlog_uring *u, struct io_uring *ring, uint64_t write_user_data,
                    uint64_t sync_user_data);

/* One of the pair's completions (is_sync: the fsync's), with its res.
 * True when it was the last one and the flush has ended. */
bool rlog_uring_complete(struct rlog_uring *u, bool is_sync, int res);

#endif
