/*
 * Unit tests for src/store/log_uring.c through store/log_uring.h: a log's
 * flush as a linked write + fdatasync on a real ring over a temporary file,
 * and the pair's failures (fed as completions) claiming nothing.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/log_uring.h"

static char dir[64];

static void dir_make(void)
{
    snprintf(dir, sizeof(dir), "/tmp/rlog-uring-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void dir_remove(void)
{
    nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(rlog_uring, .init = dir_make, .fini = dir_remove);

enum { UD_WRITE = 7, UD_SYNC = 8 };

static struct rlog *open_log(void)
{
    struct rlog_config cfg = {.dir = dir, .shard = 0};
    struct rlog *log = NULL;
    cr_assert_eq(rlog_open(&cfg, NULL, &log), 0);
    return log;
}

static void ring_init(struct io_uring *ring)
{
    int rc = io_uring_queue_init(8, ring, 0);
    if (rc == -ENOSYS || rc == -EPERM)
        cr_skip_test("io_uring unavailable: %s", strerror(-rc));
    cr_assert_eq(rc, 0, "%s", strerror(-rc));
}

/* Submit what is prepped and feed both completions back. */
static void run_pair(struct io_uring *ring, struct rlog_uring *u)
{
    cr_assert_eq(io_uring_submit(ring), 2);
    for (int k = 0; k < 2; k++) {
        struct io_uring_cqe *cqe;
        cr_assert_eq(io_uring_wait_cqe(ring, &cqe), 0);
        uint64_t ud = io_uring_cqe_get_data64(cqe);
        cr_assert(ud == UD_WRITE || ud == UD_SYNC);
        bool done = rlog_uring_complete(u, ud == UD_SYNC, cqe->res);
        cr_assert_eq(done, k == 1);
        io_uring_cqe_seen(ring, cqe);
    }
}

static int count(void *arg, const struct rlog_record *r)
{
    uint64_t *n = arg;
    cr_assert_eq(r->seq, *n + 1);
    cr_assert_eq(r->len, 8);
    cr_assert_eq(memcmp(r->payload, &r->seq, 8), 0);
    (*n)++;
    return 0;
}

static void put(struct rlog *log, uint64_t i)
{
    uint64_t seq;
    cr_assert_eq(rlog_append(log, 1, &i, sizeof(i), &seq), 0);
    cr_assert_eq(seq, i);
}

Test(rlog_uring, a_turn_becomes_durable_through_the_ring)
{
    struct io_uring ring;
    ring_init(&ring);
    struct rlog *log = open_log();
    struct rlog_uring u;
    rlog_uring_init(&u, log);
    cr_assert_eq(rlog_uring_prep(&u, &ring, UD_WRITE, UD_SYNC), 0, "nothing to write");
    for (uint64_t turn = 0; turn < 3; turn++) {
        for (uint64_t i = turn * 10 + 1; i <= turn * 10 + 10; i++)
            put(log, i);
        cr_assert_eq(rlog_uring_prep(&u, &ring, UD_WRITE, UD_SYNC), 1);
        cr_assert_eq(rlog_uring_prep(&u, &ring, UD_WRITE, UD_SYNC), 0, "one pair in flight");
        cr_assert_eq(rlog_durable_seq(log), turn * 10, "durable before the sync completed");
        run_pair(&ring, &u);
        cr_assert_eq(rlog_error(log), 0);
        cr_assert_eq(rlog_durable_seq(log), turn * 10 + 10);
    }
    rlog_close(log);
    io_uring_queue_exit(&ring);
    struct rlog_config cfg = {.dir = dir, .shard = 0};
    struct rlog_recovery rec;
    uint64_t n = 0;
    cr_assert_eq(rlog_replay(&cfg, 1, 0, count, &n, &rec), 0);
    cr_assert_eq(n, 30);
}

Test(rlog_uring, a_short_write_or_a_failed_sync_claims_nothing)
{
    struct io_uring ring;
    ring_init(&ring);
    struct rlog *log = open_log();
    struct rlog_uring u;
    rlog_uring_init(&u, log);
    put(log, 1);
    /* Prepped, never submitted: the completions are made up. */
    cr_assert_eq(rlog_uring_prep(&u, &ring, UD_WRITE, UD_SYNC), 1);
    io_uring_queue_exit(&ring);
    cr_assert_not(rlog_uring_complete(&u, false, (int)u.f.len - 1));
    cr_assert(rlog_uring_complete(&u, true, -ECANCELED));
    cr_assert_eq(rlog_error(log), -EIO, "a short write");
    cr_assert_eq(rlog_durable_seq(log), 0);

    ring_init(&ring);
    cr_assert_eq(rlog_uring_prep(&u, &ring, UD_WRITE, UD_SYNC), 1);
    io_uring_queue_exit(&ring);
    cr_assert_not(rlog_uring_complete(&u, true, -EIO)); /* order does not matter */
    cr_assert(rlog_uring_complete(&u, false, (int)u.f.len));
    cr_assert_eq(rlog_error(log), -EIO, "a failed sync");
    cr_assert_eq(rlog_durable_seq(log), 0);

    /* The next pair, for real, writes it. */
    ring_init(&ring);
    put(log, 2);
    cr_assert_eq(rlog_uring_prep(&u, &ring, UD_WRITE, UD_SYNC), 1);
    run_pair(&ring, &u);
    cr_assert_eq(rlog_error(log), 0);
    cr_assert_eq(rlog_durable_seq(log), 2);
    rlog_close(log);
    io_uring_queue_exit(&ring);
    struct rlog_config cfg = {.dir = dir, .shard = 0};
    struct rlog_recovery rec;
    uint64_t n = 0;
    cr_assert_eq(rlog_replay(&cfg, 1, 0, count, &n, &rec), 0);
    cr_assert_eq(n, 2);
}
