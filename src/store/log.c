/*
 * log: appending and group commit for one shard's log (log.h); recovery is
 * log_replay.c. Owned by one shard's thread.
 *
 * Two buffers: `fill` takes this turn's records; at flush_begin it becomes
 * `flight`, whose bytes the writer reads until flush_done, and the emptied
 * `flight` becomes `fill`. No record is copied on the way to the disk.
 * After a failed flush the failed bytes stay in `flight` and the next flush
 * writes them again at the same offset, with the newer records copied
 * behind them (a copy only on the error path): the file then holds exactly
 * what the first write should have put there, whatever part of the failed
 * one reached it.
 */
#include "store/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "store/format.h"

#define NO_FRAME SIZE_MAX
/* A buffer that grew past SHRINK_ABOVE is freed once SHRINK_AFTER flushes
 * in a row used less than a quarter of it: a burst's memory goes back, a
 * steady rate keeps its buffers (freed after every flush, they were grown
 * again by doubling, a copy each time, under a turn's load). */
enum { SHRINK_ABOVE = 1 << 20, SHRINK_AFTER = 256 };

struct buf {
    uint8_t *p;
    size_t len, cap;
};

struct rlog {
    const struct rlog_io *io;
    void *io_ctx;
    char *dir;
    uint32_t shard;
    uint64_t max_segment_bytes;
    uint64_t seed;

    int fd;             /* the segment appended to; -1: none, create one at the next flush */
    uint64_t seg_first; /* its first sequence number */
    uint64_t seg_size;  /* its durable length: where the next flush writes */
    bool roll;          /* start a new segment at the next flush */
    bool tail_dirty;    /* a failed write may have left bytes past seg_size */

    struct buf fill;      /* appended since the last flush_begin */
    size_t frame;         /* offset in fill of the open frame's header, or NO_FRAME */
    uint32_t frame_count; /* its records so far */
    uint64_t frame_first; /* its first sequence number */
    size_t res_at;        /* the reserved record's header, in fill */
    uint32_t res_len;     /* and its payload's length */

    struct buf flight; /* the flush in flight, or the bytes of a failed one */
    uint32_t small;    /* flushes in a row that used under a quarter of flight.cap */
    bool in_flight;
    uint64_t flight_last;

    uint64_t next_seq;
    uint64_t durable_seq;
    int error;
};

static int buf_reserve(struct buf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < more)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int mkdir_synced(const struct rlog *log, const char *path, const char *parent)
{
    if (mkdir(path, 0755) == 0) {
        /* The new name must be on disk before files in it count. */
        int fd = log->io->open(log->io_ctx, parent, O_RDONLY | O_DIRECTORY, 0);
        if (fd < 0)
            return fd;
        int rc = log->io->sync(log->io_ctx, fd);
        log->io->close(log->io_ctx, fd);
        return rc;
    }
    return errno == EEXIST ? 0 : -errno;
}

static int write_all(const struct rlog *log, int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = log->io->pwrite(log->io_ctx, fd, p, len, (off_t)off);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return -EIO;
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

static int sync_dir(const struct rlog *log)
{
    char path[4096];
    int rc = fmt_shard_dir(path, sizeof(path), log->dir, log->shard);
    if (rc < 0)
        return rc;
    int fd = log->io->open(log->io_ctx, path, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return fd;
    rc = log->io->sync(log->io_ctx, fd);
    log->io->close(log->io_ctx, fd);
    return rc;
}

/* Leave the current segment exactly as long as what is durable in it: a
 * failed write's leftovers would read as corruption once it is not last. */
static int segment_leave(struct rlog *log)
{
    if (log->fd < 0)
        return 0;
    if (log->tail_dirty) {
        int rc = log->io->ftruncate(log->io_ctx, log->fd, (off_t)log->seg_size);
        if (rc == 0)
            rc = log->io->sync(log->io_ctx, log->fd);
        if (rc < 0)
            return rc;
        log->tail_dirty = false;
    }
    log->io->close(log->io_ctx, log->fd);
    log->fd = -1;
    return 0;
}

/* Start the segment whose first record is first_seq: its header and its
 * name durable before any record goes in. */
static int segment_create(struct rlog *log, uint64_t first_seq)
{
    char path[4096];
    int rc = fmt_segment_path(path, sizeof(path), log->dir, log->shard, first_seq);
    if (rc < 0)
        return rc;
    rc = segment_leave(log);
    if (rc < 0)
        return rc;
    /* O_TRUNC: a file of this name is an earlier failed try of this roll. */
    int fd = log->io->open(log->io_ctx, path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return fd;
    uint8_t h[FMT_FILE_HDR];
    fmt_file_encode(h, log->shard, first_seq, log->seed);
    rc = write_all(log, fd, h, sizeof(h), 0);
    if (rc == 0)
        rc = log->io->sync(log->io_ctx, fd);
    if (rc == 0)
        rc = sync_dir(log);
    if (rc < 0) {
        log->io->close(log->io_ctx, fd);
        return rc;
    }
    log->fd = fd;
    log->seg_first = first_seq;
    log->seg_size = FMT_FILE_HDR;
    log->roll = false;
    return 0;
}

static int open_dirs(struct rlog *log)
{
    char path[4096], parent[4096];
    /* The data directory's parent, where its name is written. */
    int n = snprintf(parent, sizeof(parent), "%s", log->dir);
    if (n < 0 || (size_t)n >= sizeof(parent))
        return -ENAMETOOLONG;
    char *slash = strrchr(parent, '/');
    if (!slash)
        strcpy(parent, ".");
    else
        slash[slash == parent] = '\0';
    int rc = mkdir_synced(log, log->dir, parent);
    if (rc == 0)
        rc = fmt_shard_dir(path, sizeof(path), log->dir, log->shard);
    if (rc == 0)
        rc = mkdir_synced(log, path, log->dir);
    return rc;
}

/* Continue the segment the replay ended in, or start afresh. */
static int open_tail(struct rlog *log, const struct rlog_recovery *rec)
{
    log->next_seq = rec->last_seq + 1;
    if (rec->tail_first_seq > log->next_seq)
        log->next_seq = rec->tail_first_seq;
    log->durable_seq = log->next_seq - 1;
    if (rec->tail_first_seq == 0 || rec->damaged || rec->tail_version != FMT_VERSION) {
        if (rec->tail_first_seq)
            log->seed = rec->seed;
        else if (getrandom(&log->seed, sizeof(log->seed), 0) != sizeof(log->seed))
            return -errno;
        return 0; /* the first flush creates a segment */
    }
    char path[4096];
    int rc = fmt_segment_path(path, sizeof(path), log->dir, log->shard, rec->tail_first_seq);
    if (rc < 0)
        return rc;
    int fd = log->io->open(log->io_ctx, path, O_RDWR, 0);
    if (fd < 0)
        return fd;
    log->fd = fd;
    log->seed = rec->seed;
    log->seg_first = rec->tail_first_seq;
    log->seg_size = rec->tail_bytes;
    return 0;
}

int rlog_open(const struct rlog_config *cfg, const struct rlog_recovery *rec, struct rlog **out)
{
    struct rlog_recovery own;
    if (!rec) {
        int rc = rlog_replay(cfg, 1, 0, NULL, NULL, &own);
        if (rc < 0)
            return rc;
        rec = &own;
    }
    struct rlog *log = calloc(1, sizeof(*log));
    if (!log)
        return -ENOMEM;
    log->io = cfg->io ? cfg->io : &rlog_io_sync;
    log->io_ctx = cfg->io_ctx;
    log->shard = cfg->shard;
    log->max_segment_bytes = cfg->max_segment_bytes ? cfg->max_segment_bytes : 64u << 20;
    log->fd = -1;
    log->frame = NO_FRAME;
    log->dir = strdup(cfg->dir);
    int rc = log->dir ? open_dirs(log) : -ENOMEM;
    if (rc == 0)
        rc = open_tail(log, rec);
    if (rc < 0) {
        rlog_close(log);
        return rc;
    }
    if (rec->damaged)
        log_warn("store: shard %" PRIu32 ": salvaged log, appending to a new segment", log->shard);
    *out = log;
    return 0;
}

void rlog_close(struct rlog *log)
{
    if (!log)
        return;
    if (log->fd >= 0)
        log->io->close(log->io_ctx, log->fd);
    free(log->fill.p);
    free(log->flight.p);
    free(log->dir);
    free(log);
}

static void frame_seal(struct rlog *log)
{
    if (log->frame == NO_FRAME)
        return;
    size_t len = log->fill.len - log->frame - FMT_FRAME_HDR;
    fmt_frame_seal(log->fill.p + log->frame, (uint32_t)len, log->frame_count, log->frame_first,
                   log->seed);
    log->frame = NO_FRAME;
}

void *rlog_reserve(struct rlog *log, uint8_t type, uint32_t len)
{
    if (len > RLOG_RECORD_MAX)
        return NULL;
    size_t hdr = fmt_rec_hdr(len), rec = hdr + (size_t)len;
    if (log->frame != NO_FRAME && log->fill.len - log->frame + rec > FMT_FRAME_MAX)
        frame_seal(log);
    size_t need = rec + (log->frame == NO_FRAME ? FMT_FRAME_HDR : 0);
    if (buf_reserve(&log->fill, need) < 0)
        return NULL;
    if (log->frame == NO_FRAME) {
        log->frame = log->fill.len;
        log->frame_count = 0;
        log->frame_first = log->next_seq;
        log->fill.len += FMT_FRAME_HDR;
    }
    log->res_at = log->fill.len;
    log->res_len = len;
    log->fill.len += rec;
    return fmt_rec_put(log->fill.p + log->res_at, type, len);
}

void *rlog_extend(struct rlog *log, uint64_t seq, uint8_t type, uint32_t more)
{
    /* Still the last record, in this turn's open frame, and the length's
     * LEB128 as long as it was (the payload cannot move). */
    if (seq != log->next_seq - 1 || log->frame == NO_FRAME || log->res_at < log->frame)
        return NULL;
    uint32_t len = log->res_len + more;
    if (more > RLOG_RECORD_MAX - log->res_len || fmt_rec_hdr(len) != fmt_rec_hdr(log->res_len) ||
        log->fill.len - log->frame + more > FMT_FRAME_MAX)
        return NULL;
    if (buf_reserve(&log->fill, more) < 0)
        return NULL;
    fmt_rec_put(log->fill.p + log->res_at, type, len);
    log->res_len = len;
    void *p = log->fill.p + log->fill.len;
    log->fill.len += more;
    return p;
}

/* The checksum is the frame's, at the flush: a commit only counts. */
uint64_t rlog_commit(struct rlog *log)
{
    log->frame_count++;
    return log->next_seq++;
}

uint64_t rlog_commit_as(struct rlog *log, uint8_t type)
{
    log->fill.p[log->res_at] = type;
    return rlog_commit(log);
}

int rlog_append(struct rlog *log, uint8_t type, const void *payload, uint32_t len, uint64_t *seq)
{
    if (len > RLOG_RECORD_MAX)
        return -EMSGSIZE;
    void *p = rlog_reserve(log, type, len);
    if (!p)
        return -ENOMEM;
    if (len)
        memcpy(p, payload, len);
    uint64_t s = rlog_commit(log);
    if (seq)
        *seq = s;
    return 0;
}

/* Everything not durable into `flight`, framed. */
static int gather(struct rlog *log)
{
    frame_seal(log);
    if (log->fill.len == 0)
        return 0;
    if (log->flight.len == 0) {
        struct buf t = log->flight;
        log->flight = log->fill;
        log->fill = t;
    } else {
        /* Behind a failed flush's bytes, which must go first. */
        if (buf_reserve(&log->flight, log->fill.len) < 0)
            return -ENOMEM;
        memcpy(log->flight.p + log->flight.len, log->fill.p, log->fill.len);
        log->flight.len += log->fill.len;
    }
    log->fill.len = 0;
    return 0;
}

static bool roll_due(const struct rlog *log)
{
    return log->fd < 0 || log->roll ||
           (log->seg_size >= log->max_segment_bytes && log->seg_size > FMT_FILE_HDR);
}

int rlog_flush_begin(struct rlog *log, struct rlog_flush *f)
{
    if (log->in_flight)
        return -EBUSY;
    int rc = gather(log);
    if (rc < 0)
        return rc;
    if (log->flight.len == 0)
        return 0;
    if (roll_due(log)) {
        /* The first frame's first record opens the new segment. */
        rc = segment_create(log, fmt_frame_first(log->flight.p));
        if (rc < 0) {
            log->error = rc;
            return rc;
        }
    }
    log->in_flight = true;
    log->flight_last = log->next_seq - 1;
    *f = (struct rlog_flush){
        .fd = log->fd,
        .buf = log->flight.p,
        .len = log->flight.len,
        .off = log->seg_size,
        .last_seq = log->flight_last,
    };
    return 1;
}

void rlog_flush_done(struct rlog *log, int res)
{
    if (!log->in_flight)
        return;
    log->in_flight = false;
    if (res < 0) {
        log->error = res;
        log->tail_dirty = true;
        return;
    }
    size_t used = log->flight.len;
    log->seg_size += used;
    log->durable_seq = log->flight_last;
    log->flight.len = 0;
    log->error = 0;
    log->tail_dirty = false;
    if (log->flight.cap <= SHRINK_ABOVE || used >= log->flight.cap / 4) {
        log->small = 0;
    } else if (++log->small >= SHRINK_AFTER) {
        free(log->flight.p);
        log->flight = (struct buf){0};
        log->small = 0;
    }
}

int rlog_flush(struct rlog *log)
{
    struct rlog_flush f;
    int rc = rlog_flush_begin(log, &f);
    if (rc <= 0)
        return rc;
    rc = write_all(log, f.fd, f.buf, f.len, f.off);
    if (rc == 0)
        rc = log->io->sync(log->io_ctx, f.fd);
    rlog_flush_done(log, rc);
    return rc;
}

uint64_t rlog_durable_seq(const struct rlog *log)
{
    return log->durable_seq;
}

uint64_t rlog_last_seq(const struct rlog *log)
{
    return log->next_seq - 1;
}

int rlog_error(const struct rlog *log)
{
    return log->error;
}

size_t rlog_pending_bytes(const struct rlog *log)
{
    return log->fill.len + log->flight.len;
}

void rlog_roll(struct rlog *log)
{
    log->roll = true;
}

int rlog_covered(struct rlog *log, uint64_t seq, char ***paths, size_t *count)
{
    uint64_t *segs;
    size_t n, k = 0;
    *paths = NULL;
    *count = 0;
    int rc = fmt_list_segments(log->dir, log->shard, &segs, &n);
    if (rc < 0)
        return rc;
    /* A segment goes when the next one starts at or before seq. */
    while (k + 1 < n && segs[k + 1] <= seq && segs[k] != log->seg_first)
        k++;
    char path[4096];
    size_t bytes = 0;
    for (size_t i = 0; i < k && rc == 0; i++) {
        rc = fmt_segment_path(path, sizeof(path), log->dir, log->shard, segs[i]);
        bytes += strlen(path) + 1;
    }
    char **v = rc == 0 && k ? malloc(k * sizeof(*v) + bytes) : NULL;
    if (rc == 0 && k && !v)
        rc = -ENOMEM;
    char *at = v ? (char *)(v + k) : NULL;
    for (size_t i = 0; v && i < k; i++) {
        fmt_segment_path(at, bytes, log->dir, log->shard, segs[i]);
        v[i] = at;
        bytes -= strlen(at) + 1;
        at += strlen(at) + 1;
    }
    free(segs);
    if (rc == 0) {
        *paths = v;
        *count = k;
    }
    return rc;
}

int rlog_truncate_before(struct rlog *log, uint64_t seq, unsigned *deleted)
{
    char **paths;
    size_t n;
    unsigned count = 0;
    int rc = rlog_covered(log, seq, &paths, &n);
    /* Oldest first, so that a crash half-way leaves a log without holes. */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (unlink(paths[i]) < 0)
            rc = -errno;
        else
            count++;
    }
    free(paths);
    if (count) {
        int src = sync_dir(log);
        if (rc == 0)
            rc = src;
    }
    if (deleted)
        *deleted = count;
    return rc;
}
