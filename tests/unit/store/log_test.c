/*
 * Unit tests for src/store/log.c and log_replay.c through store/log.h: the
 * round trip, group commit and the durable watermark, segments, and fault
 * injection: a writer that runs out of space or writes short, a failing
 * sync, torn writes at every byte offset, a flipped bit in every byte of a
 * middle frame, a missing segment, short reads, foreign and newer files,
 * a segment of the older format 1, and random garbage. Each test works in its own temporary
 * directory.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "store/format.h" /* to forge frames that verify */
#include "store/log.h"

enum { HDR_FILE = FMT_FILE_HDR, HDR_FRAME = FMT_FRAME_HDR };

/* ---- a temporary data directory ---- */

static char dir[64];

static void dir_make(void)
{
    snprintf(dir, sizeof(dir), "/tmp/rlog-test-XXXXXX");
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

TestSuite(rlog, .init = dir_make, .fini = dir_remove);

static const char *seg_path(uint64_t first)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/shard-0003/log-%020" PRIu64 ".rlog", dir, first);
    return path;
}

static uint8_t *file_read(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n + 1);
    cr_assert_eq(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return p;
}

static void file_write(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* ---- an rlog_io with faults ---- */

struct fault {
    long write_budget; /* bytes pwrite may still write, then ENOSPC; < 0: unlimited */
    size_t write_max;  /* at most this many bytes per pwrite (0: all) */
    size_t read_max;   /* at most this many bytes per pread (0: all) */
    int sync_err;      /* every sync fails with this (0: none) */
    int read_err;      /* every pread fails with this (0: none) */
    unsigned writes, syncs;
};

static ssize_t f_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
    struct fault *f = ctx;
    f->writes++;
    if (f->write_budget == 0)
        return -ENOSPC;
    if (f->write_max && len > f->write_max)
        len = f->write_max;
    if (f->write_budget > 0 && len > (size_t)f->write_budget)
        len = (size_t)f->write_budget;
    ssize_t n = rlog_io_sync.pwrite(NULL, fd, buf, len, off);
    if (n > 0 && f->write_budget > 0)
        f->write_budget -= n;
    return n;
}

static ssize_t f_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
    struct fault *f = ctx;
    if (f->read_err)
        return -f->read_err;
    if (f->read_max && len > f->read_max)
        len = f->read_max;
    return rlog_io_sync.pread(NULL, fd, buf, len, off);
}

static int f_sync(void *ctx, int fd)
{
    struct fault *f = ctx;
    f->syncs++;
    return f->sync_err ? -f->sync_err : rlog_io_sync.sync(NULL, fd);
}

static int f_open(void *ctx, const char *path, int flags, mode_t mode)
{
    (void)ctx;
    return rlog_io_sync.open(NULL, path, flags, mode);
}

static int f_close(void *ctx, int fd)
{
    (void)ctx;
    return rlog_io_sync.close(NULL, fd);
}

static int f_ftruncate(void *ctx, int fd, off_t len)
{
    (void)ctx;
    return rlog_io_sync.ftruncate(NULL, fd, len);
}

static const struct rlog_io fault_io = {
    .open = f_open,
    .close = f_close,
    .pread = f_pread,
    .pwrite = f_pwrite,
    .sync = f_sync,
    .ftruncate = f_ftruncate,
};

static struct fault fault_none(void)
{
    return (struct fault){.write_budget = -1};
}

static struct rlog_config config(struct fault *f, uint64_t max_segment)
{
    return (struct rlog_config){
        .dir = dir,
        .shard = 3,
        .max_segment_bytes = max_segment,
        .io = f ? &fault_io : NULL,
        .io_ctx = f,
    };
}

/* ---- records: what is written, what comes back ---- */

/* Record i's payload: its length and bytes follow from i alone. */
static uint32_t rec_len(uint64_t i)
{
    return (uint32_t)((i * 37) % 61);
}

static uint8_t rec_byte(uint64_t i, uint32_t k)
{
    return (uint8_t)(i * 131 + k * 7);
}

static uint8_t rec_type(uint64_t i)
{
    return (uint8_t)(i % 5 + 1);
}

/* Record i's bytes in a frame: its header and payload. */
static size_t rec_size(uint64_t i)
{
    return fmt_rec_hdr(rec_len(i)) + rec_len(i);
}

/* Append record i (its sequence number must be i). */
static void put(struct rlog *log, uint64_t i)
{
    uint8_t p[64];
    for (uint32_t k = 0; k < rec_len(i); k++)
        p[k] = rec_byte(i, k);
    uint64_t seq = 0;
    cr_assert_eq(rlog_append(log, rec_type(i), p, rec_len(i), &seq), 0);
    cr_assert_eq(seq, i, "record %" PRIu64 " got sequence number %" PRIu64, i, seq);
}

struct got {
    uint64_t seqs[4096];
    uint16_t formats[4096]; /* each record's format version */
    size_t n;
};

/* Check each record against what put() wrote for its number. */
static int collect(void *arg, const struct rlog_record *r)
{
    struct got *g = arg;
    cr_assert_lt(g->n, 4096);
    cr_assert_eq(r->type, rec_type(r->seq), "type of %" PRIu64, r->seq);
    cr_assert_eq(r->len, rec_len(r->seq), "length of %" PRIu64, r->seq);
    for (uint32_t k = 0; k < r->len; k++)
        cr_assert_eq(r->payload[k], rec_byte(r->seq, k), "byte %u of %" PRIu64, k, r->seq);
    g->formats[g->n] = r->format;
    g->seqs[g->n++] = r->seq;
    return 0;
}

/* g holds exactly the records first..last, in order. */
static void expect_range(const struct got *g, uint64_t first, uint64_t last, const char *what)
{
    cr_assert_eq(g->n, last >= first ? last - first + 1 : 0, "%s: %zu records", what, g->n);
    for (size_t k = 0; k < g->n; k++)
        cr_assert_eq(g->seqs[k], first + k, "%s: record %zu", what, k);
}

static int replay(struct fault *f, uint64_t max_segment, unsigned flags, struct got *g,
                  struct rlog_recovery *rec)
{
    struct rlog_config cfg = config(f, max_segment);
    g->n = 0;
    return rlog_replay(&cfg, 1, flags, collect, g, rec);
}

static struct rlog *open_log(struct fault *f, uint64_t max_segment)
{
    struct rlog_config cfg = config(f, max_segment);
    struct rlog *log = NULL;
    cr_assert_eq(rlog_open(&cfg, NULL, &log), 0);
    return log;
}

/* One turn of records first..last, flushed. */
static void turn(struct rlog *log, uint64_t first, uint64_t last)
{
    for (uint64_t i = first; i <= last; i++)
        put(log, i);
    cr_assert_eq(rlog_flush(log), 0);
    cr_assert_eq(rlog_durable_seq(log), last);
}

/* ---- stderr, to check what the log lines name ---- */

static char *capture_begin(int *saved)
{
    static char path[sizeof(dir) + 16];
    snprintf(path, sizeof(path), "%s/stderr", dir);
    fflush(stderr);
    *saved = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    dup2(fd, 2);
    close(fd);
    return path;
}

static char *capture_end(int saved, const char *path)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    size_t n;
    char *s = (char *)file_read(path, &n);
    s[n] = '\0';
    unlink(path);
    return s;
}

/* ---- the round trip ---- */

Test(rlog, records_come_back_in_order_with_their_types_and_payloads)
{
    struct rlog *log = open_log(NULL, 0);
    turn(log, 1, 1);
    turn(log, 2, 40);
    /* reserve/commit writes in place; a zero-length record is a record. */
    uint8_t *p = rlog_reserve(log, rec_type(41), rec_len(41));
    cr_assert_not_null(p);
    for (uint32_t k = 0; k < rec_len(41); k++)
        p[k] = rec_byte(41, k);
    cr_assert_eq(rlog_commit(log), 41);
    cr_assert_eq(rec_len(61), 0);
    for (uint64_t i = 42; i <= 61; i++)
        put(log, i);
    cr_assert_eq(rlog_flush(log), 0);
    rlog_close(log);

    struct got g;
    struct rlog_recovery rec;
    cr_assert_eq(replay(NULL, 0, 0, &g, &rec), 0);
    expect_range(&g, 1, 61, "replay");
    cr_assert_eq(rec.last_seq, 61);
    cr_assert_eq(rec.torn_bytes, 0);

    /* Reopened, numbering goes on. */
    log = open_log(NULL, 0);
    cr_assert_eq(rlog_last_seq(log), 61);
    cr_assert_eq(rlog_durable_seq(log), 61);
    turn(log, 62, 64);
    rlog_close(log);
    cr_assert_eq(replay(NULL, 0, 0, &g, &rec), 0);
    expect_range(&g, 1, 64, "after reopening");
}

Test(rlog, no_directory_is_an_empty_log)
{
    struct got g;
    struct rlog_recovery rec;
    rmdir(dir);
    cr_assert_eq(replay(NULL, 0, 0, &g, &rec), 0);
    cr_assert_eq(g.n, 0);
    cr_assert_eq(rec.last_seq, 0);
    cr_assert_eq(rec.tail_first_seq, 0);
    /* Opening creates the directories; nothing is written before a flush. */
    struct rlog *log = open_log(NULL, 0);
    cr_assert_eq(rlog_flush(log), 0);
    cr_assert_eq(file_size(seg_path(1)), -1);
    turn(log, 1, 2);
    rlog_close(log);
    cr_assert_eq(replay(NULL, 0, 0, &g, &rec), 0);
    expect_range(&g, 1, 2, "fresh directory");
}

Test(rlog, a_turn_is_one_write_and_one_sync_and_moves_the_watermark)
{
    struct fault f = fault_none();
    struct rlog *log = open_log(&f, 0);
    turn(log, 1, 1); /* creates the segment: its header and syncs */
    f.writes = f.syncs = 0;
    for (uint64_t i = 2; i <= 50; i++)
        put(log, i);
    cr_assert_eq(f.writes, 0, "appending made a syscall");
    cr_assert_eq(rlog_durable_seq(log), 1, "records claimed durable before the flush");
    cr_assert_eq(rlog_last_seq(log), 50);
    cr_assert_gt(rlog_pending_bytes(log), 0);
    cr_assert_eq(rlog_flush(log), 0);
    cr_assert_eq(f.writes, 1, "group commit: one write per turn");
    cr_assert_eq(f.syncs, 1, "group commit: one sync per turn");
    cr_assert_eq(rlog_durable_seq(log), 50);
    cr_assert_eq(rlog_pending_bytes(log), 0);
    /* Nothing appended: nothing written. */
    cr_assert_eq(rlog_flush(log), 0);
    cr_assert_eq(f.writes, 1);
    rlog_close(log);
}

Test(rlog, flush_begin_and_done_let_the_caller_do_the_io)
{
    struct rlog *log = open_log(NULL, 0);
    turn(log, 1, 3);
    for (uint64_t i = 4; i <= 6; i++)
        put(log, i);
    struct rlog_flush fl, fl2;
    cr_assert_eq(rlog_flush_begin(log, &fl), 1);
    cr_assert_eq(fl.last_seq, 6);
    cr_assert_eq(fl.off, (uint64_t)file_size(seg_path(1)));
    cr_assert_eq(rlog_flush_begin(log, &fl2), -EBUSY, "two flushes in flight");
    /* Appending while the flush is in flight goes to the next one. */
    put(log, 7);
    cr_assert_eq(rlog_durable_seq(log), 3);
    cr_assert_eq(pwrite(fl.fd, fl.buf, fl.len, (off_t)fl.off), (ssize_t)fl.len);
    cr_assert_eq(fdatasync(fl.fd), 0);
    rlog_flush_done(log, 0);
    cr_assert_eq(rlog_durable_seq(log), 6);
    cr_assert_eq(rlog_flush_begin(log, &fl2), 1);
    cr_assert_eq(fl2.last_seq, 7);
    cr_assert_eq(fl2.off, fl.off + fl.len);
    /* The caller's write failed: nothing claimed, the error kept. */
    rlog_flush_done(log, -EIO);
    cr_assert_eq(rlog_durable_seq(log), 6);
    cr_assert_eq(rlog_error(log), -EIO);
    cr_assert_eq(rlog_flush(log), 0);
    cr_assert_eq(rlog_error(log), 0);
    cr_assert_eq(rlog_durable_seq(log), 7);
    rlog_close(log);
    struct got g;
    struct rlog_recovery rec;
    cr_assert_eq(replay(NULL, 0, 0, &g, &rec), 0);
    expect_range(&g, 1, 7, "caller's io");
}

/* ---- writer faults ---- */

Test(rlog, enospc_claims_nothing_is_sticky_and_the_retry_writes_it_all)
{
    struct fault f = fault_none();
    struct rlog *log = open_log(&f, 0);
    turn(log, 1, 5);
    for (uint64_t i = 6; i <= 20; i++)
        put(log, i);
    f.write_budget = 100; /* the disk fills in mid-turn */
    cr_assert_eq(rlog_flush(log), -ENOSPC);
    cr_assert_eq(rlog_error(log), -ENOSPC);
    cr_assert_eq(rlog_durable_seq(log), 5, "a failed flush claimed records durable");
    /* Appending goes on; flushing again while full fails again. */
    for (uint64_t i = 21; i <= 25; i++)
        put(log, i);
    cr_assert_eq(rlog_flush(log), -ENOSPC);
    cr_assert_eq(rlog_error(log), -ENOSPC, "the error is sticky");
    cr_assert_eq(rlog_durable_seq(log), 5);
    /* Space returns: the next flush writes everything, over the partial write. */
    f.write_budget = -1;
    cr_assert_eq(rlog_flush(log), 0);
    cr_assert_eq(rlog_error(log), 0);
    cr_assert_eq(rlog_durable_seq(log), 25);
    turn(log, 26, 27);
    rlog_close(log);
    struct got g;
    struct rlog_recovery rec;
    cr_assert_eq(replay(NULL, 0, 0, &g, &rec), 0);
    expect_range(&g, 1, 27, "after the disk had space again");
    cr_assert_eq(rec.torn_bytes, 0);
}

Test(rlog, a_crash_after_a_partial_write_loses_only_what_was_not_durable)
{
    struct fault f = fault_none();
    struct rlog *log = open_log(&f, 0);
    turn(log, 1, 5);
    for (uint64_t i = 6; i <= 20; i++)
        put(log, i);
    f.write_budget = 100;
    cr_assert_eq(rlog_flush(log), -ENOSPC);
    rlog_close(log); /* the process dies here */
    cr_assert_eq(file_size(seg_path(1)) > 0, true);
    struct got g;
    struct rlog_recovery rec;
    cr_assert_eq(replay(NULL, 0, 0, &g, &rec), 0);
    expect_range(&g, 1, 5, "after the crash");
    cr_assert_eq(rec.torn_bytes, 100, "the partial write is cut off");
}

Test(rlog, a_failing_sync_claims_nothing_and_the_retry_writes_again)
{
    struct fault f = fault_none();
    struct rlog *log = open_log(&f, 0);
    turn(log, 1, 2);
    put(log, 3);
    f.sync_err = EIO;
    cr_assert_eq(rlog_flush(log), -EIO);
    cr_assert_eq(rlog_error(log), -EIO);
    cr_assert_eq(rlog_durable_seq(log), 2);
    f.sync_err = 0;
    f.writes = 0;
    cr_assert_eq(rlog_flush(log), 0);
    /* The pages a failed sync dropped may be clean but not on disk: the
     * bytes are written again, not only synced. */
    cr_assert_eq(f.writes, 1);
    cr_assert_eq(rlog_durable_seq(log), 3);
    rlog_close(log);
}

Test(rlog, short_writes_are_continued)
{
    struct fault f = fault_none();
    f.write_max = 7;
    struct rlog *log = open_log(&f, 0);
    turn(log, 1, 30);
    turn(log, 31, 31);
    cr_assert_gt(f.writes, 10);
    rlog_close(log);
    struct got g;
    struct rlog_recovery rec;
    cr_assert_eq(replay(NULL, 0, 0, &g, &rec), 0);
    expect_range(&g, 1, 31, "short writes");
}

Test(rlog, a_writer_making_no_progress_is_an_error)
{
    struct fault f = fault_none();
    struct rlog *log = open_log(&f, 0);
    turn(log, 1, 1);
    put(log, 2);
    f.write_budget = 0;
    cr_assert_eq(rlog_flush(log), -ENOSPC);
    cr_assert_eq(rlog_durable_seq(log), 1);
    rlog_close(log);
}

/* ---- torn writes ---- */

/* Turns 1 | 2..4 | 5 | 6..7; ends[k]: the file's length after turn k. */
static size_t build_turns(size_t ends[4])
{
    static const uint64_t last[4] = {1, 4, 5, 7};
    struct rlog *log = open_log(NULL, 0);
    uint64_t first = 1;
    for (int k = 0; k < 4; k++) {
        turn(log, first, last[k]);
        first = last[k] + 1;
        ends[k] = (size_t)file_size(seg_path(1));
    }
    rlog_close(log);
    return ends[3];
}

Test(rlog, a_torn_write_at_every_byte_offset_is_cut_and_appending_goes_on)
{
    static const uint64_t last[4] = {1, 4, 5, 7};
    size_t ends[4], size;
    build_turns(ends);
    uint8_t *orig = file_read(seg_path(1), &size);
    for (size_t len = 0; len < size; len++) {
        file_write(seg_path(1), orig, len);
        /* What a crash leaves: the turns wholly before len. */
        uint64_t want = 0;
        size_t keep = HDR_FILE;
        for (int k = 0; k < 4; k++)
            if (ends[k] <= len) {
                want = last[k];
                keep = ends[k];
            }
        struct got g;
        struct rlog_recovery rec;
        int saved;
        char *path = capture_begin(&saved);
        cr_assert_eq(replay(NULL, 0, 0, &g, &rec), 0, "cut at %zu", len);
        char *err = capture_end(saved, path);
        expect_range(&g, 1, want, "torn");
        if (len < HDR_FILE) {
            /* Cut under the header: a torn creation, the file removed. */
            cr_assert_eq(file_size(seg_path(1)), -1, "cut at %zu", len);
            cr_assert_eq(rec.tail_first_seq, 0);
        } else {
            cr_assert_eq(file_size(seg_path(1)), (off_t)keep, "cut at %zu", len);
            cr_assert_eq(rec.torn_bytes, len - keep);
            if (len > keep) {
                char needle[64];
                snprintf(needle, sizeof(needle), "torn write at offset %zu", keep);
                cr_assert_not_null(strstr(err, needle), "cut at %zu: %s", len, err);
                cr_assert_not_null(strstr(err, seg_path(1)), "cut at %zu: %s", len, err);
            }
        }
        free(err);
        /* Appending afterwards works, and the next replay sees it all. */
        struct rlog *log = open_log(NULL, 0);
        turn(log, want + 1, want + 2);
        rlog_close(log);
        cr_assert_eq(replay(NULL, 0, 0, &g, &rec), 0, "cut at %zu, appended", len);
        expect_range(&g, 1, want + 2, "torn, then appended");
    }
    free(orig);
}

Test(rlog, a_torn_turn_with_a_hole_is_still_a_torn_write)
{
    /* A crash in mid-write may have put the turn's later pages on disk and
     * not an earlier one: garbage inside the last frame, valid records
     * after it. Nothing after that frame: torn, cut, no error. */
    size_t ends[4], size;
    build_turns(ends);
    uint8_t *p = file_read(seg_path(1), &size);
    memset(p + ends[2] + HDR_FRAME + 3, 0, 20); /* inside record 6 of the last turn */
    file_write(seg_path(1), p, size);
    struct got g;
    struct rlog_recovery rec;
    cr_assert_eq(replay(NULL, 0, 0, &g, &rec), 0);
    expect_range(&g, 1, 5, "hole in the last turn");
    cr_assert_eq(file_size(seg_path(1)), (off_t)ends[2]);
    free(p);
}

/* RLOG_READONLY (an inspection): the same torn tails are found and
 * reported with their segment and offset, and not a byte changes. */
Test(rlog, read_only_reports_a_torn_tail_at_every_offset_and_changes_nothing)
{
    static const uint64_t last[4] = {1, 4, 5, 7};
    size_t ends[4], size;
    build_turns(ends);
    uint8_t *orig = file_read(seg_path(1), &size);
    for (size_t len = 0; len < size; len++) {
        file_write(seg_path(1), orig, len);
        uint64_t want = 0;
        size_t keep = 0; /* under the header: a torn creation, reported at 0 */
        for (int k = 0; k < 4; k++)
            if (ends[k] <= len) {
                want = last[k];
                keep = ends[k];
            }
        if (len >= HDR_FILE && keep == 0)
            keep = HDR_FILE;
        struct got g;
        struct rlog_recovery rec;
        cr_assert_eq(replay(NULL, 0, RLOG_READONLY, &g, &rec), 0, "cut at %zu", len);
        expect_range(&g, 1, want, "read-only, torn");
        cr_assert_eq(rec.torn_bytes, len - keep, "cut at %zu", len);
        cr_assert_eq(rec.torn_segment, len > keep || len < HDR_FILE ? 1u : 0u, "cut at %zu", len);
        cr_assert_eq(rec.torn_offset, len > keep ? keep : 0, "cut at %zu", len);
        cr_assert_eq(rec.bad_segment, 0, "a torn tail is not corruption");
        size_t now;
        uint8_t *after = file_read(seg_path(1), &now);
        cr_assert_eq(now, len, "cut at %zu: the file changed size", len);
        cr_assert_eq(memcmp(after, orig, len), 0, "cut at %zu: the file changed", len);
        free(after);
    }
    free(orig);
}

/* ---- corruption ---- */

Test(rlog, a_flipped_bit_in_a_middle_frame_stops_replay_and_salvage_keeps_the_rest)
{
    /* Turns 1 | 2..4 | 5 | 6..7: turn 3 (record 5) is the middle one. One
     * checksum covers a frame's records: a flip anywhere in it, header or
     * record, loses the frame, and only it. */
    size_t ends[4], size;
    build_turns(ends);
    uint8_t *orig = file_read(seg_path(1), &size);
    size_t frame = ends[1];
    for (size_t at = frame; at < ends[2]; at++) {
        uint8_t *p = malloc(size);
        memcpy(p, orig, size);
        p[at] ^= (uint8_t)(1u << (at % 8));
        file_write(seg_path(1), p, size);
        struct got g;
        struct rlog_recovery rec;
        int saved;
        char *path = capture_begin(&saved);
        cr_assert_eq(replay(NULL, 0, 0, &g, &rec), -EBADMSG, "flip at %zu", at);
        char *err = capture_end(saved, path);
        char needle[64];
        snprintf(needle, sizeof(needle), "corrupt record at offset %zu", frame);
        cr_assert_not_null(strstr(err, needle), "flip at %zu: %s", at, err);
        cr_assert_not_null(strstr(err, seg_path(1)), "flip at %zu: %s", at, err);
        free(err);
        expect_range(&g, 1, 4, "before the corruption");
        cr_assert_eq(file_size(seg_path(1)), (off_t)size, "corruption is not cut off");

        cr_assert_eq(replay(NULL, 0, RLOG_SALVAGE, &g, &rec), 0, "salvage, flip at %zu", at);
        cr_assert(rec.damaged);
        cr_assert_eq(rec.dropped_bytes, ends[2] - frame, "flip at %zu", at);
        cr_assert_eq(g.n, 6, "flip at %zu: %zu salvaged", at, g.n);
        for (size_t k = 0; k < 6; k++)
            cr_assert_eq(g.seqs[k], k < 4 ? k + 1 : k + 2);
        cr_assert_eq(rec.missing_seqs, 1);
        cr_assert_eq(rec.last_seq, 7);
        free(p);
    }
    /* After a salvage the log appends to a new segment, not after garbage. */
    struct rlog_config cfg = config(NULL, 0);
    struct rlog_recovery rec;
    struct got g;
    cr_assert_eq(rlog_replay(&cfg, 1, RLOG_SALVAGE, NULL, NULL, &rec), 0);
    struct rlog *log;
    cr_assert_eq(rlog_open(&cfg, &rec, &log), 0);
    turn(log, 8, 8);
    rlog_close(log);
    cr_assert_eq(file_size(seg_path(8)) > HDR_FILE, true);
    cr_assert_eq(replay(NULL, 0, RLOG_SALVAGE, &g, &rec), 0);
    cr_assert_eq(g.seqs[g.n - 1], 8);
    free(orig);
}

/* Frames that verify but are not where they belong are corruption too. */

Test(rlog, a_frame_written_twice_is_corruption_not_records_twice)
{
    size_t ends[4], size;
    build_turns(ends);
    uint8_t *p = file_read(seg_path(1), &size);
    /* Turn 2 (records 2..4) again after itself, as a misdirected write would. */
    size_t t2 = ends[1] - ends[0];
    uint8_t *q = malloc(size + t2);
    memcpy(q, p, ends[1]);
    memcpy(q + ends[1], p + ends[0], t2);
    memcpy(q + ends[1] + t2, p + ends[1], size - ends[1]);
    file_write(seg_path(1), q, size + t2);
    struct got g;
    struct rlog_recovery rec;
    cr_assert_eq(replay(NULL, 0, 0, &g, &rec), -EBADMSG);
    expect_range(&g, 1, 4, "before the copy");
    cr_assert_eq(replay(NULL, 0, RLOG_SALVAGE, &g, &rec), 0);
    expect_range(&g, 1, 7, "salvage skips the copy");
    free(p);
    free(q);
}

Test(rlog, records_out_of_order_inside_a_frame_are_corruption)
{
    size_t ends[4], size;
    build_turns(ends);
    uint8_t *p = file_read(seg_path(1), &size);
    /* Swap records 3 and 4 inside turn 2: the frame header still verifies
     * (it covers its length, count and first number), its records' bytes
     * do not. */
    size_t r2 = ends[0] + HDR_FRAME, r3 = r2 + rec_size(2);
    size_t r4 = r3 + rec_size(3), end = r4 + rec_size(4);
    cr_assert_eq(end, ends[1]);
    uint8_t *q = malloc(size);
    memcpy(q, p, size);
    memcpy(q + r3, p + r4, end - r4);
    memcpy(q + r3 + (end - r4), p + r3, r4 - r3);
    file_write(seg_path(1), q, size);
    struct got g;
    struct rlog_recovery rec;
    cr_assert_eq(replay(NULL, 0, 0, &g, &rec), -EBADMSG);
    expect_range(&g, 1, 1, "before the frame");
    free(p);
    free(q);
}

Test(rlog, a_frame_holding_more_than_it_counts_is_not_delivered)
{
    size_t ends[4], size;
    build_turns(ends);
    uint8_t *p = file_read(seg_path(1), &size);
    /* The last frame (records 6, 7) resealed saying it holds one record. */
    uint8_t *h = p + ends[2];
    uint64_t seed = fmt_get64(p + 24);
    fmt_frame_seal(h, fmt_frame_len(h), 1, fmt_frame_first(h), seed);
    file_write(seg_path(1), p, size);
    struct got g;
    struct rlog_recovery rec;
    cr_assert_eq(replay(NULL, 0, 0, &g, &rec), 0);
    expect_range(&g, 1, 5, "the bad last frame is cut as torn");
    cr_assert_eq(file_size(seg_path(1)), (off_t)ends[2]);
    free(p);
}

/* Three segments of records 1..3 | 4..6 | 7..9 (a roll per turn). */
static void build_segments(void)
{
    struct rlog *log = open_log(NULL, 1);
    turn(log, 1, 3);
    turn(log, 4, 6);
    turn(log, 7, 9);
    rlog_close(log);
    for (uint64_t s = 1; s <= 7; s += 3)
        cr_assert_gt(file_size(seg_path(s)), HDR_FILE, "segment %" PRIu64, s);
}

Test(rlog, read_only_salvage_renames_nothing_and_names_the_corruption)
{
    build_segments();
    size_t size;
    uint8_t *p = file_read(seg_path(4), &size);
    p[40 + HDR_FRAME + 6] ^= 0x10; /* inside segment 4's first record */
    file_write(seg_path(4), p, size);
    struct got g;
    struct rlog_recovery rec;
    cr_assert_eq(replay(NULL, 0, RLOG_READONLY, &g, &rec), -EBADMSG);
    cr_assert_eq(rec.bad_segment, 4);
    cr_assert_eq(rec.bad_offset, 40, "the frame whose checksum covers the record");
    p[8] ^= 0x40; /* the header's version: unusable, salvage would set it aside */
    file_write(seg_path(4), p, size);
    cr_assert_eq(replay(NULL, 0, RLOG_READONLY | RLOG_SALVAGE, &g, &rec), -EPROTONOSUPPORT);
    p[8] ^= 0x40;
    p[20] ^= 1; /* its first sequence number: a corrupt header */
    file_write(seg_path(4), p, size);
    cr_assert_eq(replay(NULL, 0, RLOG_READONLY | RLOG_SALVAGE, &g, &rec), 0);
    cr_assert(rec.damaged);
    cr_assert_eq(rec.bad_segment, 4);
    cr_assert_eq(rec.bad_offset, 0);
    cr_assert_eq(file_size(seg_path(4)), (off_t)size, "set aside");
    free(p);
}

Test(rlog, corruption_at_the_end_of_a_segment_that_is_not_the_last_is_not_a_torn_write)
{
    build_segments();
    size_t size;
    uint8_t *p = file_read(seg_path(4), &size);
    p[size - 1] ^= 0x80; /* its last frame, nothing after it in the file */
    file_write(seg_path(4), p, size);
    struct got g;
    struct rlog_recovery rec;
    cr_assert_eq(replay(NULL, 0, 0, &g, &rec), -EBADMSG);
    expect_range(&g, 1, 3, "before");
    cr_assert_eq(file_size(seg_path(4)), (off_t)size, "a durable segment was cut");
    cr_assert_eq(replay(NULL, 0, RLOG_SALVAGE, &g, &rec), 0);
    cr_assert_eq(g.n, 6, "the frame of records 4..6 is lost whole");
    cr_assert_eq(rec.missing_seqs, 3);
    free(p);
}

Test(rlog, a_missing_segment_is_reported_and_salvage_goes_on)
{
    build_segments();
    cr_assert_eq(unlink(seg_path(4)), 0);
    struct got g;
    struct rlog_recovery rec;
    int saved;
    char *path = capture_begin(&saved);
    cr_assert_eq(replay(NULL, 0, 0, &g, &rec), -EBADMSG);
    char *err = capture_end(saved, path);
    cr_assert_not_null(strstr(err, "records 4..6 are missing"), "%s", err);
    cr_assert_not_null(strstr(err, seg_path(7)), "%s", err);
    free(err);
    expect_range(&g, 1, 3, "before the gap");
    cr_assert_eq(replay(NULL, 0, RLOG_SALVAGE, &g, &rec), 0);
    cr_assert_eq(g.n, 6);
    cr_assert_eq(g.seqs[3], 7);
    cr_assert_eq(rec.missing_seqs, 3);
    cr_assert_eq(rec.last_seq, 9);
}

Test(rlog, segments_roll_and_truncate_before_deletes_only_covered_ones)
{
    build_segments();
    struct got g;
    struct rlog_recovery rec;
    cr_assert_eq(replay(NULL, 0, 0, &g, &rec), 0);
    expect_range(&g, 1, 9, "three segments");
    cr_assert_eq(rec.segments, 3);

    struct rlog *log = open_log(NULL, 1);
    unsigned deleted = 99;
    cr_assert_eq(rlog_truncate_before(log, 6, &deleted), 0);
    cr_assert_eq(deleted, 1, "4..6 holds 6, not covered by a snapshot up to 5");
    cr_assert_eq(file_size(seg_path(1)), -1);
    cr_assert_gt(file_size(seg_path(4)), 0);
    cr_assert_eq(rlog_truncate_before(log, 100, &deleted), 0);
    cr_assert_eq(deleted, 1, "never the segment appended to");
    cr_assert_gt(file_size(seg_path(7)), 0);
    rlog_close(log);

    /* A replay from the snapshot's end works; one from 1 finds records missing. */
    struct rlog_config cfg = config(NULL, 1);
    g.n = 0;
    cr_assert_eq(rlog_replay(&cfg, 8, 0, collect, &g, &rec), 0);
    expect_range(&g, 8, 9, "from 8");
    cr_assert_eq(replay(NULL, 1, 0, &g, &rec), -EBADMSG);
}

/* rlog_covered names what rlog_truncate_before would delete, oldest first,
 * and deletes nothing itself (a shard removes them through its ring). */
Test(rlog, covered_lists_the_segments_a_snapshot_covers_and_keeps_them)
{
    build_segments();
    struct rlog *log = open_log(NULL, 1);
    char **paths = (char **)1;
    size_t n = 99;
    cr_assert_eq(rlog_covered(log, 3, &paths, &n), 0);
    cr_assert_eq(n, 0, "1..3 holds 3: nothing before 3 is a whole segment");
    cr_assert_null(paths);
    cr_assert_eq(rlog_covered(log, 6, &paths, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(paths[0], seg_path(1));
    free(paths);
    cr_assert_eq(rlog_covered(log, 100, &paths, &n), 0);
    cr_assert_eq(n, 2, "never the segment appended to");
    cr_assert_str_eq(paths[0], seg_path(1), "oldest first");
    cr_assert_str_eq(paths[1], seg_path(4));
    free(paths);
    cr_assert_gt(file_size(seg_path(1)), 0, "listed, not deleted");
    cr_assert_gt(file_size(seg_path(4)), 0);
    rlog_close(log);
}

struct seen {
    uint8_t types[8];
    uint32_t lens[8];
    uint8_t last[8]; /* each payload's last byte */
    size_t n;
};

static int seen_collect(void *arg, const struct rlog_record *r)
{
    struct seen *v = arg;
    cr_assert_lt(v->n, 8);
    v->types[v->n] = r->type;
    v->lens[v->n] = r->len;
    v->last[v->n++] = r->len ? r->payload[r->len - 1] : 0;
    return 0;
}

/* rlog_extend grows the last record of the turn, and only that one, and
 * only while its length's LEB128 stays as long (its payload cannot move). */
Test(rlog, extend_grows_the_last_record_of_the_turn_only)
{
    struct rlog *log = open_log(NULL, 0);
    uint8_t body[126];
    memset(body, 7, sizeof(body));
    uint64_t a, b;
    cr_assert_eq(rlog_append(log, 5, body, 4, &a), 0);
    cr_assert_null(rlog_extend(log, a - 1, 6, 2), "not a record of this log");
    uint8_t *more = rlog_extend(log, a, 6, 2);
    cr_assert_not_null(more);
    more[0] = 1;
    more[1] = 2;
    cr_assert_eq(rlog_append(log, 5, body, 126, &b), 0);
    cr_assert_null(rlog_extend(log, a, 6, 2), "no longer the last");
    cr_assert_null(rlog_extend(log, b, 6, 2), "128 bytes need a longer header than 126");
    more = rlog_extend(log, b, 6, 1);
    cr_assert_not_null(more, "127 does not");
    *more = 9;
    cr_assert_eq(rlog_flush(log), 0);
    cr_assert_null(rlog_extend(log, b, 6, 1), "written: not to be changed");
    rlog_close(log);
    struct rlog_config cfg = config(NULL, 0);
    struct seen v = {0};
    struct rlog_recovery rec;
    cr_assert_eq(rlog_replay(&cfg, 1, 0, seen_collect, &v, &rec), 0);
    cr_assert_eq(v.n, 2);
    cr_assert(v.types[0] == 6 && v.lens[0] == 6 && v.last[0] == 2, "%u %u %u", v.types[0],
              v.lens[0], v.last[0]);
    cr_assert(v.types[1] == 6 && v.lens[1] == 127 && v.last[1] == 9);
}

Test(rlog, roll_starts_a_new_segment_at_the_next_flush)
{
    struct rlog *log = open_log(NULL, 0);
    turn(log, 1, 2);
    rlog_roll(log);
    turn(log, 3, 3);
    turn(log, 4, 4);
    rlog_close(log);
    cr_assert_gt(file_size(seg_path(3)), HDR_FILE);
    cr_assert_eq(file_size(seg_path(4)), -1);
    struct got g;
    struct rlog_recovery rec;
    cr_assert_eq(replay(NULL, 0, 0, &g, &rec), 0);
    expect_range(&g, 1, 4, "rolled");
}

Test(rlog, a_failed_write_before_a_roll_leaves_no_garbage_in_the_older_segment)
{
    struct fault f = fault_none();
    struct rlog *log = open_log(&f, 0);
    turn(log, 1, 2);
    put(log, 3);
    f.write_budget = 30;
    cr_assert_eq(rlog_flush(log), -ENOSPC);
    f.write_budget = -1;
    rlog_roll(log);
    cr_assert_eq(rlog_flush(log), 0);
    turn(log, 4, 4);
    rlog_close(log);
    struct got g;
    struct rlog_recovery rec;
    cr_assert_eq(replay(NULL, 0, 0, &g, &rec), 0);
    expect_range(&g, 1, 4, "rolled after a failure");
}

/* ---- reading faults, foreign and newer files ---- */

Test(rlog, short_reads_are_continued_and_read_errors_reported)
{
    build_segments();
    struct fault f = fault_none();
    f.read_max = 5;
    struct got g;
    struct rlog_recovery rec;
    cr_assert_eq(replay(&f, 1, 0, &g, &rec), 0);
    expect_range(&g, 1, 9, "five bytes a read");
    f.read_err = EIO;
    cr_assert_eq(replay(&f, 1, 0, &g, &rec), -EIO);
}

Test(rlog, a_segment_cut_under_its_header_that_is_not_last_is_corrupt)
{
    build_segments();
    size_t size;
    uint8_t *p = file_read(seg_path(4), &size);
    file_write(seg_path(4), p, HDR_FILE - 1);
    struct got g;
    struct rlog_recovery rec;
    cr_assert_eq(replay(NULL, 0, 0, &g, &rec), -EBADMSG);
    cr_assert_eq(file_size(seg_path(4)), HDR_FILE - 1, "not removed");
    free(p);
}

/* Rewrite segment 1's header field at off (2 bytes) and its checksum. */
static void patch_header(size_t off, uint16_t v, const char *magic)
{
    size_t size;
    uint8_t *p = file_read(seg_path(1), &size);
    if (magic)
        memcpy(p, magic, 8);
    p[off] = (uint8_t)v;
    p[off + 1] = (uint8_t)(v >> 8);
    uint64_t sum = XXH3_64bits(p, 32);
    for (int i = 0; i < 8; i++)
        p[32 + i] = (uint8_t)(sum >> (8 * i));
    file_write(seg_path(1), p, size);
    free(p);
}

Test(rlog, a_newer_format_version_is_refused_naming_the_file)
{
    struct rlog *log = open_log(NULL, 0);
    turn(log, 1, 2);
    rlog_close(log);
    patch_header(8, FMT_VERSION + 1, NULL);
    struct got g;
    struct rlog_recovery rec;
    int saved;
    char *path = capture_begin(&saved);
    cr_assert_eq(replay(NULL, 0, RLOG_SALVAGE, &g, &rec), -EPROTONOSUPPORT);
    char *err = capture_end(saved, path);
    cr_assert_not_null(strstr(err, seg_path(1)), "%s", err);
    char needle[32];
    snprintf(needle, sizeof(needle), "version %d", FMT_VERSION + 1);
    cr_assert_not_null(strstr(err, needle), "%s", err);
    free(err);
    cr_assert_eq(g.n, 0);
    struct rlog_config cfg = config(NULL, 0);
    cr_assert_eq(rlog_open(&cfg, NULL, &log), -EPROTONOSUPPORT);
}

Test(rlog, a_foreign_file_is_refused)
{
    struct rlog *log = open_log(NULL, 0);
    turn(log, 1, 2);
    rlog_close(log);
    patch_header(8, 1, "SQLiteFo");
    struct got g;
    struct rlog_recovery rec;
    cr_assert_eq(replay(NULL, 0, RLOG_SALVAGE, &g, &rec), -EPROTO);
    cr_assert_eq(g.n, 0);
}

/* ---- garbage never crashes a replay (run it under ASan) ---- */

Test(rlog, random_garbage_and_mutations_never_crash_a_replay)
{
    size_t ends[4], size;
    build_turns(ends);
    uint8_t *orig = file_read(seg_path(1), &size);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 400; round++) {
        uint8_t *p = malloc(size + 64);
        memcpy(p, orig, size);
        size_t n = size;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (round % 4 == 0) { /* garbage behind a valid header */
            n = HDR_FILE + x % 200;
            for (size_t k = HDR_FILE; k < n; k++)
                x ^= x << 13, x ^= x >> 7, x ^= x << 17, p[k] = (uint8_t)x;
        } else { /* a few random bytes changed, maybe cut */
            for (int k = 0; k < 1 + round % 5; k++)
                x ^= x << 13, x ^= x >> 7, x ^= x << 17, p[x % size] = (uint8_t)(x >> 32);
            if (round % 3 == 0)
                n = (size_t)(x >> 40) % size;
        }
        file_write(seg_path(1), p, n);
        struct got g;
        struct rlog_recovery rec;
        int saved;
        char *path = capture_begin(&saved);
        int rc = replay(NULL, 0, round % 2 ? RLOG_SALVAGE : 0, &g, &rec);
        free(capture_end(saved, path));
        cr_assert(rc == 0 || rc == -EBADMSG || rc == -EPROTO || rc == -EPROTONOSUPPORT,
                  "round %d: %d", round, rc);
        free(p);
    }
    free(orig);
}

/* ---- format 1 (ringmq before the frame checksum) ---- */

/* A version 1 frame of records first..last at p: its size. */
static size_t v1_frame(uint8_t *p, uint64_t first, uint64_t last, uint64_t seed)
{
    size_t at = FMT1_FRAME_HDR;
    for (uint64_t i = first; i <= last; i++) {
        uint8_t *h = p + at;
        fmt_put32(h + 8, rec_len(i));
        h[12] = rec_type(i);
        h[13] = 0;
        fmt_put16(h + 14, 0);
        fmt_put64(h + 16, i);
        for (uint32_t k = 0; k < rec_len(i); k++)
            h[FMT1_REC_HDR + k] = rec_byte(i, k);
        fmt_put64(h, XXH3_64bits_withSeed(h + FMT_SUM, FMT1_REC_HDR - FMT_SUM + rec_len(i), seed));
        at += FMT1_REC_HDR + rec_len(i);
    }
    fmt_put32(p + 8, (uint32_t)(at - FMT1_FRAME_HDR));
    fmt_put32(p + 12, (uint32_t)(last - first + 1));
    fmt_put64(p + 16, first);
    fmt_put64(p,
              XXH3_64bits_withSeed(p + FMT_SUM, FMT1_FRAME_HDR - FMT_SUM, seed ^ FMT_FRAME_SALT));
    return at;
}

/* Segment 1 in format 1: records 1 | 2..5 | 6. */
static void v1_segment(void)
{
    static uint8_t p[4096];
    uint64_t seed = 0x1234567890abcdefull;
    fmt_file_encode(p, 3, 1, seed);
    fmt_put16(p + 8, 1);
    fmt_put64(p + 32, XXH3_64bits(p, 32));
    size_t n = HDR_FILE;
    n += v1_frame(p + n, 1, 1, seed);
    n += v1_frame(p + n, 2, 5, seed);
    n += v1_frame(p + n, 6, 6, seed);
    char d[256];
    snprintf(d, sizeof(d), "%s/shard-0003", dir);
    cr_assert_eq(mkdir(d, 0755), 0);
    file_write(seg_path(1), p, n);
}

Test(rlog, a_format_1_segment_is_read_and_appending_starts_a_new_one)
{
    v1_segment();
    struct got g;
    struct rlog_recovery rec;
    cr_assert_eq(replay(NULL, 0, 0, &g, &rec), 0);
    expect_range(&g, 1, 6, "format 1");
    cr_assert_eq(rec.tail_version, 1);
    struct rlog *log = open_log(NULL, 0);
    turn(log, 7, 8);
    rlog_close(log);
    cr_assert_gt(file_size(seg_path(7)), HDR_FILE, "a new segment for format 2");
    cr_assert_eq(replay(NULL, 0, 0, &g, &rec), 0);
    expect_range(&g, 1, 8, "format 1, then 2");
    for (size_t k = 0; k < g.n; k++)
        cr_assert_eq(g.formats[k], k < 6 ? 1 : FMT_VERSION, "record %zu's format", k + 1);
    cr_assert_eq(rec.tail_version, FMT_VERSION);
}

Test(rlog, a_format_1_segment_with_a_flipped_bit_salvages_record_by_record)
{
    v1_segment();
    size_t size;
    uint8_t *p = file_read(seg_path(1), &size);
    /* Record 3: after the file header, frame 1 (header and record 1), frame
     * 2's header and record 2. */
    size_t r3 = HDR_FILE + FMT1_FRAME_HDR + FMT1_REC_HDR + rec_len(1) + FMT1_FRAME_HDR +
                FMT1_REC_HDR + rec_len(2);
    p[r3 + 9] ^= 4;
    file_write(seg_path(1), p, size);
    struct got g;
    struct rlog_recovery rec;
    cr_assert_eq(replay(NULL, 0, 0, &g, &rec), -EBADMSG);
    expect_range(&g, 1, 1, "before the corrupt frame");
    cr_assert_eq(replay(NULL, 0, RLOG_SALVAGE, &g, &rec), 0);
    cr_assert_eq(g.n, 5, "every record but 3");
    cr_assert_eq(g.seqs[2], 4);
    cr_assert_eq(rec.missing_seqs, 1);
    free(p);
}
