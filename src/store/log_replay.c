/*
 * log_replay: recovery of one shard's log (rlog_replay in log.h). Runs at
 * start-up on the shard's thread, before the log is opened for appending.
 *
 * Each segment is read whole and walked frame by frame. A frame (one
 * flush) is delivered only when its header and every record in it verify,
 * so a turn comes back whole or not at all.
 *
 * Torn or corrupt? Only the last flush before a crash can be incomplete,
 * and it is the last frame of the last segment; a crash in mid-write may
 * have put any of its pages on disk and not others. So a bad frame of the
 * last segment with no verifying frame header anywhere after it is a torn
 * write, cut off. Anything else bad was durable once: corruption, which
 * stops the replay (or, salvaging, is skipped record by record).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "store/format.h"
#include "store/log.h"

struct replay {
    const struct rlog_io *io;
    void *io_ctx;
    const struct rlog_config *cfg;
    unsigned flags;
    rlog_record_fn fn;
    void *arg;
    uint64_t from_seq;
    uint64_t expect; /* the next sequence number; 0 until the first segment */
    struct rlog_recovery *out;

    char path[4096]; /* the segment being read */
    uint64_t first;  /* its first sequence number, from its name */
    uint64_t seed;
    uint16_t version; /* its format's */
    uint8_t *data;
    size_t size;
};

enum { READ_CHUNK = 1 << 20 };

static bool salvaging(const struct replay *rp)
{
    return rp->flags & RLOG_SALVAGE;
}

static bool readonly(const struct replay *rp)
{
    return rp->flags & RLOG_READONLY;
}

/* Where the first damage is, for the caller's report. */
static void note_bad(struct replay *rp, size_t off)
{
    if (rp->out->bad_segment == 0) {
        rp->out->bad_segment = rp->first;
        rp->out->bad_offset = off;
    }
}

/* The whole file into rp->data; short reads are continued. */
static int segment_read(struct replay *rp)
{
    int fd = rp->io->open(rp->io_ctx, rp->path, O_RDONLY, 0);
    if (fd < 0) {
        log_err("store: %s: cannot open: %s", rp->path, strerror(-fd));
        return fd;
    }
    size_t cap = 0;
    rp->size = 0;
    int rc = 0;
    for (;;) {
        if (cap - rp->size < READ_CHUNK) {
            uint8_t *p = realloc(rp->data, cap + READ_CHUNK);
            if (!p) {
                rc = -ENOMEM;
                break;
            }
            rp->data = p;
            cap += READ_CHUNK;
        }
        ssize_t n =
            rp->io->pread(rp->io_ctx, fd, rp->data + rp->size, cap - rp->size, (off_t)rp->size);
        if (n <= 0) {
            rc = (int)n;
            break;
        }
        rp->size += (size_t)n;
    }
    rp->io->close(rp->io_ctx, fd);
    if (rc < 0)
        log_err("store: %s: read at offset %zu: %s", rp->path, rp->size, strerror(-rc));
    return rc;
}

/* Cut the file at `off` (a torn tail), durably. */
static int segment_cut(struct replay *rp, size_t off)
{
    int fd = rp->io->open(rp->io_ctx, rp->path, O_RDWR, 0);
    if (fd < 0)
        return fd;
    int rc = rp->io->ftruncate(rp->io_ctx, fd, (off_t)off);
    if (rc == 0)
        rc = rp->io->sync(rp->io_ctx, fd);
    rp->io->close(rp->io_ctx, fd);
    if (rc < 0)
        log_err("store: %s: cannot cut the torn tail at offset %zu: %s", rp->path, off,
                strerror(-rc));
    return rc;
}

/* A gap between what came before and `first`: missing records. */
static int check_follows(struct replay *rp, uint64_t first, const char *what)
{
    if (rp->expect == 0 || first == rp->expect)
        return 0;
    if (first > rp->expect)
        log_err("store: %s: %s: records %" PRIu64 "..%" PRIu64 " are missing (a segment file "
                "lost?)",
                rp->path, what, rp->expect, first - 1);
    else
        log_err("store: %s: %s: starts at record %" PRIu64 ", overlapping what came before "
                "(up to %" PRIu64 ")",
                rp->path, what, first, rp->expect - 1);
    note_bad(rp, 0);
    if (!salvaging(rp))
        return -EBADMSG;
    if (first > rp->expect) {
        rp->out->missing_seqs += first - rp->expect;
        rp->expect = first;
    }
    rp->out->damaged = true;
    return 0;
}

/* The file header: 0; 1 when the file is shorter than it (not logged: the
 * caller knows whether that is a torn creation); -EPROTO/-EPROTONOSUPPORT
 * (never salvaged: not our data, or a newer build's); -EBADMSG. */
static int header_check(struct replay *rp)
{
    const uint8_t *h = rp->data;
    if (rp->size < 10 || memcmp(h, FMT_MAGIC, 8) != 0) {
        if (rp->size < 8 || memcmp(h, FMT_MAGIC, 8) == 0)
            goto short_header;
        log_err("store: %s: not a ringmq log segment (unknown magic)", rp->path);
        return -EPROTO;
    }
    uint16_t version = fmt_get16(h + 8);
    if (version < FMT_VERSION_OLDEST || version > FMT_VERSION) {
        log_err("store: %s: log format version %u, this build reads versions %u to %u%s", rp->path,
                version, FMT_VERSION_OLDEST, FMT_VERSION,
                version > FMT_VERSION ? " (written by a newer ringmq)" : "");
        return -EPROTONOSUPPORT;
    }
    rp->version = version;
    if (rp->size < FMT_FILE_HDR)
        goto short_header;
    if (fmt_get64(h + 32) != XXH3_64bits(h, 32) || fmt_get32(h + 12) != rp->cfg->shard ||
        fmt_get64(h + 16) != rp->first) {
        log_err("store: %s: corrupt file header (checksum, shard or first record does not "
                "match the name)",
                rp->path);
        return -EBADMSG;
    }
    rp->seed = fmt_get64(h + 24);
    return 0;
short_header:
    return 1;
}

/* ---- the frame layout of rp's segment (format.h: version 1 or 2) ---- */

static size_t frame_hdr(const struct replay *rp)
{
    return rp->version == 1 ? FMT1_FRAME_HDR : FMT_FRAME_HDR;
}

static bool frame_hdr_verifies(const struct replay *rp, const uint8_t *h)
{
    return rp->version == 1 ? fmt1_frame_verifies(h, rp->seed) : fmt_frame_verifies(h, rp->seed);
}

static uint32_t frame_len(const struct replay *rp, const uint8_t *h)
{
    return rp->version == 1 ? fmt_get32(h + 8) : fmt_frame_len(h);
}

static uint32_t frame_count(const struct replay *rp, const uint8_t *h)
{
    return rp->version == 1 ? fmt_get32(h + 12) : fmt_frame_count(h);
}

static uint64_t frame_first(const struct replay *rp, const uint8_t *h)
{
    return rp->version == 1 ? fmt_get64(h + 16) : fmt_frame_first(h);
}

/* The record at p (verified): *r, and the offset after it. */
static size_t record_at(const struct replay *rp, size_t p, uint64_t seq, struct rlog_record *r)
{
    const uint8_t *h = rp->data + p;
    if (rp->version == 1) {
        *r = (struct rlog_record){fmt_get64(h + 16), h[12], fmt_get32(h + 8), h + FMT1_REC_HDR, 1};
        return p + FMT1_REC_HDR + r->len;
    }
    *r = (struct rlog_record){0};
    size_t hdr = fmt_rec_get(h, rp->size - p, &r->type, &r->len);
    r->seq = seq;
    r->payload = h + hdr;
    r->format = rp->version;
    return p + hdr + r->len;
}

/* Hand `count` verified records, the first at off with sequence number
 * `seq`, to the callback: those at or after from_seq and `min`. */
static int records_deliver(struct replay *rp, size_t off, uint32_t count, uint64_t seq,
                           uint64_t min)
{
    size_t p = off;
    for (uint32_t k = 0; k < count; k++, seq++) {
        struct rlog_record r;
        p = record_at(rp, p, seq, &r);
        if (r.seq < rp->from_seq || r.seq < min)
            continue;
        if (rp->fn) {
            int rc = rp->fn(rp->arg, &r);
            if (rc)
                return rc;
        }
        rp->out->records++;
    }
    return 0;
}

/* Version 1: each record of the frame verifies and is next in turn. */
static int records_check1(const struct replay *rp, size_t p, size_t fend, uint32_t count,
                          uint64_t seq, size_t *bad)
{
    for (uint32_t k = 0; k < count; k++, seq++) {
        *bad = p;
        if (!fmt1_record_verifies(rp->data + p, fend - p, rp->seed) ||
            fmt_get64(rp->data + p + 16) != seq)
            return 1;
        p += FMT1_REC_HDR + fmt_get32(rp->data + p + 8);
    }
    *bad = p;
    return p != fend;
}

/* Version 2: the frame's checksum holds and its records fill it exactly. */
static int records_check2(const struct replay *rp, size_t off, size_t fend, uint32_t count,
                          size_t *bad)
{
    if (!fmt_frame_body_verifies(rp->data + off, rp->seed))
        return 1;
    size_t p = off + FMT_FRAME_HDR;
    for (uint32_t k = 0; k < count; k++) {
        *bad = p;
        uint8_t type;
        uint32_t len;
        size_t hdr = fmt_rec_get(rp->data + p, fend - p, &type, &len);
        if (!hdr || len > fend - p - hdr)
            return 1;
        p += hdr + len;
    }
    *bad = p;
    return p != fend;
}

/* The frame at off verifies whole and comes next (or, `any`, at least
 * verifies: a salvage): 0 and *end; else 1 and *bad, the offset of the
 * first thing wrong in it. */
static int frame_check(const struct replay *rp, size_t off, bool any, size_t *end, size_t *bad)
{
    *bad = off;
    size_t hdr = frame_hdr(rp);
    const uint8_t *h = rp->data + off;
    if (rp->size - off < hdr || !frame_hdr_verifies(rp, h))
        return 1;
    uint32_t len = frame_len(rp, h), count = frame_count(rp, h);
    uint64_t seq = frame_first(rp, h);
    if ((!any && seq != rp->expect) || len > rp->size - off - hdr)
        return 1;
    size_t fend = off + hdr + len;
    int rc = rp->version == 1 ? records_check1(rp, off + hdr, fend, count, seq, bad)
                              : records_check2(rp, off, fend, count, bad);
    if (rc == 0)
        *end = fend;
    return rc;
}

static bool frame_follows(const struct replay *rp, size_t off)
{
    for (size_t q = off + 1; q + frame_hdr(rp) <= rp->size; q++)
        if (frame_hdr_verifies(rp, rp->data + q))
            return true;
    return false;
}

/* Deliver what is not behind what was delivered of the unit (a frame, or
 * a version 1 record) of `count` records from `seq`, at p. */
static int salvage_deliver(struct replay *rp, size_t p, uint32_t count, uint64_t seq)
{
    if (seq + count <= rp->expect)
        return 0; /* a copy of what was delivered */
    if (seq > rp->expect)
        rp->out->missing_seqs += seq - rp->expect;
    int rc = records_deliver(rp, p, count, seq, rp->expect);
    rp->expect = seq + count;
    return rc;
}

/* Salvage from off to the end of the segment: every frame (version 1:
 * every record) that verifies and is not behind what was delivered; the
 * rest is counted as dropped. */
static int salvage_scan(struct replay *rp, size_t off)
{
    size_t p = off, dropped = 0, end, bad;
    int rc = 0;
    while (p < rp->size && rc == 0) {
        const uint8_t *h = rp->data + p;
        if (frame_check(rp, p, true, &end, &bad) == 0) {
            if (rp->version == 1) {
                p += FMT1_FRAME_HDR; /* its records, one by one below */
                continue;
            }
            rc = salvage_deliver(rp, p + FMT_FRAME_HDR, fmt_frame_count(h), fmt_frame_first(h));
            p = end;
        } else if (rp->version == 1 && fmt1_record_verifies(h, rp->size - p, rp->seed)) {
            rc = salvage_deliver(rp, p, 1, fmt_get64(h + 16));
            p += FMT1_REC_HDR + fmt_get32(h + 8);
        } else if (rp->version == 1 && rp->size - p >= FMT1_FRAME_HDR &&
                   fmt1_frame_verifies(h, rp->seed)) {
            p += FMT1_FRAME_HDR;
        } else {
            p++;
            dropped++;
        }
    }
    rp->out->dropped_bytes += dropped;
    rp->out->damaged = true;
    log_warn("store: %s: salvage: %zu corrupt bytes from offset %zu on skipped", rp->path, dropped,
             off);
    return rc;
}

/* Walk the frames of the segment in rp->data. */
static int segment_walk(struct replay *rp, bool last)
{
    size_t off = FMT_FILE_HDR, end, bad;
    while (off < rp->size) {
        if (frame_check(rp, off, false, &end, &bad) == 0) {
            uint32_t count = frame_count(rp, rp->data + off);
            int rc = records_deliver(rp, off + frame_hdr(rp), count, rp->expect, 0);
            if (rc)
                return rc;
            rp->expect += count;
            off = end;
            continue;
        }
        if (last && !frame_follows(rp, off)) {
            log_warn("store: %s: torn write at offset %zu (a crash in mid-write): %zu bytes "
                     "%s",
                     rp->path, off, rp->size - off, readonly(rp) ? "left in place" : "cut off");
            rp->out->torn_bytes += rp->size - off;
            rp->out->torn_segment = rp->first;
            rp->out->torn_offset = off;
            int rc = readonly(rp) ? 0 : segment_cut(rp, off);
            rp->size = off;
            return rc;
        }
        note_bad(rp, bad);
        log_err("store: %s: corrupt record at offset %zu (frame at %zu)%s", rp->path, bad, off,
                salvaging(rp) ? "; salvaging" : "; start with salvage to keep the rest");
        if (!salvaging(rp))
            return -EBADMSG;
        return salvage_scan(rp, off);
    }
    return 0;
}

/* Remove the segment being read, durably. */
static int segment_unlink(struct replay *rp)
{
    if (unlink(rp->path) < 0)
        return -errno;
    char dir[4096];
    int rc = fmt_shard_dir(dir, sizeof(dir), rp->cfg->dir, rp->cfg->shard);
    int fd = rc < 0 ? rc : rp->io->open(rp->io_ctx, dir, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return fd;
    rc = rp->io->sync(rp->io_ctx, fd);
    rp->io->close(rp->io_ctx, fd);
    return rc;
}

/* The last segment is shorter than its header: a crash while it was being
 * created (its header is synced before any record goes in), so it held
 * nothing. Remove it; the next flush creates it again. */
static int segment_drop(struct replay *rp)
{
    log_warn("store: %s: %zu bytes, shorter than its header: a torn creation, %s", rp->path,
             rp->size, readonly(rp) ? "left in place" : "removed");
    rp->out->torn_bytes += rp->size;
    rp->out->torn_segment = rp->first;
    rp->out->torn_offset = 0;
    int rc = readonly(rp) ? 0 : segment_unlink(rp);
    /* Its number is taken: appending goes on from there. */
    if (rp->expect < rp->first)
        rp->expect = rp->first;
    return rc;
}

/* A segment whose header is unusable, salvaging: all of it is dropped, and
 * the file renamed aside (kept for a post-mortem, and its name free for the
 * segment that the next flush starts). */
static int segment_skip(struct replay *rp)
{
    char aside[4096 + 16];
    snprintf(aside, sizeof(aside), "%s.damaged", rp->path);
    log_warn("store: %s: salvage: the whole file (%zu bytes) skipped%s%s", rp->path, rp->size,
             readonly(rp) ? "" : ", renamed to ", readonly(rp) ? "" : aside);
    if (!readonly(rp) && rename(rp->path, aside) < 0)
        return -errno;
    rp->out->dropped_bytes += rp->size;
    rp->out->damaged = true;
    return 0;
}

static int segment_replay(struct replay *rp, uint64_t first, bool last)
{
    int rc = fmt_segment_path(rp->path, sizeof(rp->path), rp->cfg->dir, rp->cfg->shard, first);
    if (rc < 0)
        return rc;
    rp->first = first;
    rc = segment_read(rp);
    if (rc < 0)
        return rc;
    rp->out->segments++;
    rc = check_follows(rp, first, "segment");
    if (rc < 0)
        return rc;
    rc = header_check(rp);
    if (rc == 1 && last)
        return segment_drop(rp);
    if (rc == 1) {
        log_err("store: %s: %zu bytes, shorter than its header (%d)", rp->path, rp->size,
                FMT_FILE_HDR);
        rc = -EBADMSG;
    }
    if (rc < 0)
        note_bad(rp, 0);
    if (rc == -EBADMSG && salvaging(rp))
        return segment_skip(rp);
    if (rc < 0)
        return rc;
    if (rp->expect == 0)
        rp->expect = first;
    rc = segment_walk(rp, last);
    if (rc)
        return rc;
    rp->out->tail_first_seq = first;
    rp->out->tail_bytes = rp->size;
    rp->out->seed = rp->seed;
    rp->out->tail_version = rp->version;
    return 0;
}

int rlog_replay(const struct rlog_config *cfg, uint64_t from_seq, unsigned flags, rlog_record_fn fn,
                void *arg, struct rlog_recovery *out)
{
    memset(out, 0, sizeof(*out));
    struct replay rp = {
        .io = cfg->io ? cfg->io : &rlog_io_sync,
        .io_ctx = cfg->io_ctx,
        .cfg = cfg,
        .flags = flags,
        .fn = fn,
        .arg = arg,
        .from_seq = from_seq ? from_seq : 1,
        .out = out,
    };
    uint64_t *segs;
    size_t n;
    int rc = fmt_list_segments(cfg->dir, cfg->shard, &segs, &n);
    if (rc < 0)
        return rc;
    /* Skip the segments wholly below from_seq. */
    size_t i = 0;
    while (i + 1 < n && segs[i + 1] <= rp.from_seq)
        i++;
    if (i < n && segs[i] > rp.from_seq)
        rp.expect = rp.from_seq; /* what comes first must be from_seq */
    for (; i < n && rc == 0; i++)
        rc = segment_replay(&rp, segs[i], i + 1 == n);
    out->last_seq = rp.expect ? rp.expect - 1 : 0;
    if (out->damaged)
        log_warn("store: shard %" PRIu32 ": salvage dropped %" PRIu64 " bytes, %" PRIu64
                 " records missing",
                 cfg->shard, out->dropped_bytes, out->missing_seqs);
    free(segs);
    free(rp.data);
    return rc;
}
