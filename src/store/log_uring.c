/*
 * log_uring: the linked write + fdatasync of a log flush on a caller's ring
 * (log_uring.h). Runs on the log's thread; owns nothing but the pair's
 * results until both completions are in.
 */
#include "store/log_uring.h"

#include <errno.h>
#include <limits.h>

void rlog_uring_init(struct rlog_uring *u, struct rlog *log)
{
    *u = (struct rlog_uring){.log = log};
}

int rlog_uring_prep(struct rlog_uring *u, struct io_uring *ring, uint64_t write_user_data,
                    uint64_t sync_user_data)
{
    if (u->outstanding)
        return 0;
    if (io_uring_sq_space_left(ring) < 2)
        return -EAGAIN;
    int rc = rlog_flush_begin(u->log, &u->f);
    if (rc <= 0)
        return rc;
    if (u->f.len > INT_MAX) { /* a CQE's res could not say it was all written */
        rlog_flush_done(u->log, -EFBIG);
        return -EFBIG;
    }
    struct io_uring_sqe *w = io_uring_get_sqe(ring);
    io_uring_prep_write(w, u->f.fd, u->f.buf, (unsigned)u->f.len, u->f.off);
    io_uring_sqe_set_data64(w, write_user_data);
    u->sync_res = 0;
    if (u->no_sync) {
        u->outstanding = 1;
        return 1;
    }
    w->flags |= IOSQE_IO_LINK;
    struct io_uring_sqe *s = io_uring_get_sqe(ring);
    io_uring_prep_fsync(s, u->f.fd, IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data64(s, sync_user_data);
    u->outstanding = 2;
    return 1;
}

bool rlog_uring_complete(struct rlog_uring *u, bool is_sync, int res)
{
    if (!u->outstanding)
        return false;
    if (is_sync)
        u->sync_res = res;
    else
        u->write_res = res;
    if (--u->outstanding)
        return false;
    int rc = 0;
    if (u->write_res < 0)
        rc = u->write_res;
    else if ((size_t)u->write_res != u->f.len)
        rc = -EIO;
    else if (u->sync_res < 0)
        rc = u->sync_res;
    rlog_flush_done(u->log, rc);
    return true;
}
