/*
 * log: one shard's append-only log of opaque records, the lowest piece of
 * the durable store (issue 13). A record is (sequence number, type byte,
 * payload); what the bytes mean is the caller's (the session and retained
 * encoders above). The on-disk format is in docs/DESIGN.md, "Durable
 * store: log format", and in format.h.
 *
 * Names are rlog_*: log_* is core/log.h's logger.
 *
 * Life cycle, all on the owning shard's thread (nothing here locks):
 *  1. rlog_replay: read the shard's segments in order, hand every valid
 *     record to a callback, cut a torn tail (a crash in mid-write) off the
 *     last segment, refuse corruption elsewhere (-EBADMSG) unless salvaging.
 *  2. rlog_open with what the replay found: ready to append after it.
 *  3. Each loop turn: rlog_append / rlog_reserve+rlog_commit put records in
 *     memory (a copy and a checksum, no syscall); at the end of the turn one
 *     flush writes everything appended since the last one with ONE write
 *     followed by ONE fdatasync (group commit). Synchronously (rlog_flush)
 *     or as a pair the caller submits on its own ring (rlog_flush_begin /
 *     rlog_flush_done, or log_uring.h).
 *  4. rlog_durable_seq says up to which sequence number records are on disk:
 *     the caller holds back an acknowledgement until the records it depends
 *     on are at or below it.
 *
 * A turn is all or nothing on disk: its records are framed together, and a
 * recovery keeps the whole frame or drops it.
 *
 * Errors of the writer (ENOSPC, EIO, a short write) claim nothing: the
 * watermark does not move, the error is kept (rlog_error) until a flush
 * succeeds, and the records stay in memory to be written again, in full and
 * at the same place, by the next flush. Appending keeps working meanwhile
 * (a store hook cannot fail its change); the caller refuses new durable work
 * while rlog_error is set.
 *
 * Every file operation goes through a struct rlog_io, so that tests inject
 * faults and a shard may bring its own.
 */
#ifndef RINGMQ_STORE_LOG_H
#define RINGMQ_STORE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* File operations, each 0 (or a count, or an fd) or -errno, like the
 * syscalls they stand for. ctx is rlog_config's io_ctx. */
struct rlog_io {
    int (*open)(void *ctx, const char *path, int flags, mode_t mode);
    int (*close)(void *ctx, int fd);
    /* May return fewer bytes than asked; 0 at the end of the file. */
    ssize_t (*pread)(void *ctx, int fd, void *buf, size_t len, off_t off);
    /* May write fewer bytes than asked. */
    ssize_t (*pwrite)(void *ctx, int fd, const void *buf, size_t len, off_t off);
    /* fdatasync; also called on a directory's fd after a file in it was
     * created, renamed or removed. */
    int (*sync)(void *ctx, int fd);
    int (*ftruncate)(void *ctx, int fd, off_t len);
};

/* The plain syscalls. */
extern const struct rlog_io rlog_io_sync;

struct rlog_config {
    const char *dir;            /* the data directory; segments go in dir/shard-NNNN/ */
    uint32_t shard;             /* whose log */
    uint64_t max_segment_bytes; /* roll to a new segment past this (0: 64 MiB) */
    const struct rlog_io *io;   /* NULL: rlog_io_sync */
    void *io_ctx;
};

/* A record handed to a replay callback; payload is borrowed for the call. */
struct rlog_record {
    uint64_t seq;
    uint8_t type;
    uint32_t len;
    const uint8_t *payload;
    uint16_t format; /* its segment's format version (format.h): how the payload reads */
};

/* Return 0 to go on; anything else stops the replay, which returns it. */
typedef int (*rlog_record_fn)(void *arg, const struct rlog_record *r);

enum {
    RLOG_SALVAGE = 1u << 0, /* skip corrupt data and missing segments, report it */
    /* Change nothing on disk (an inspection): a torn tail or a torn
     * creation is reported in rlog_recovery and left as it is, a salvaged
     * segment is not renamed. Not for a log about to be opened. */
    RLOG_READONLY = 1u << 1,
};

/* What a replay found; rlog_open continues from it. */
struct rlog_recovery {
    uint64_t records;       /* handed to the callback */
    uint64_t last_seq;      /* the highest sequence number on disk, 0: none */
    uint32_t segments;      /* segment files read */
    uint64_t torn_bytes;    /* cut off the last segment's tail */
    uint64_t dropped_bytes; /* salvage: corrupt bytes skipped */
    uint64_t missing_seqs;  /* salvage: sequence numbers not found */
    bool damaged;           /* salvage skipped something: append to a new segment */
    /* For rlog_open: the last segment (first_seq 0: none) and its valid
     * length, and the shard's checksum seed. */
    uint64_t tail_first_seq;
    uint64_t tail_bytes;
    uint64_t seed;
    uint16_t tail_version; /* older than this build writes: append to a new segment */
    /* Where, for a report: the segment (its first sequence number; 0:
     * none) and the offset in it of the torn tail (torn_bytes from there,
     * or a torn creation at offset 0), and of the first corruption, gap or
     * unusable header (what failed the replay, or the first thing a
     * salvage skipped). */
    uint64_t torn_segment, torn_offset;
    uint64_t bad_segment, bad_offset;
};

/*
 * Replay the records of cfg's shard with a sequence number >= from_seq (1:
 * all; a snapshot covering up to S passes S + 1), in order, to fn (NULL:
 * only check). Segments wholly below from_seq are not read. No directory
 * or no segment: 0 records, success.
 *
 * A torn tail of the last segment (a frame cut short, or corrupt with no
 * valid frame after it) is cut off the file and logged with the file and
 * offset. Any other corruption, a segment that does not follow its
 * predecessor, or one that starts after from_seq, is logged with the file
 * and offset and returns -EBADMSG; with RLOG_SALVAGE every record whose
 * checksum verifies is delivered instead and what was dropped is counted
 * in *out and logged (a segment whose header is unusable is renamed to
 * NAME.damaged). A last segment shorter than its header (a crash while
 * creating it) is removed. With RLOG_READONLY nothing is cut, removed or
 * renamed: the torn tail or creation is only logged and reported in *out
 * (torn_*), and the replay goes on as if it had been cut. A format version
 * this build does not read (a newer ringmq's): -EPROTONOSUPPORT; a
 * foreign file (unknown magic): -EPROTO; both logged with the file name
 * and never salvaged. Otherwise 0, fn's non-zero value, or -errno. out (required) is filled in
 * every case.
 */
int rlog_replay(const struct rlog_config *cfg, uint64_t from_seq, unsigned flags, rlog_record_fn fn,
                void *arg, struct rlog_recovery *out);

struct rlog;

/*
 * Open cfg's log for appending after what `rec` (from rlog_replay of the
 * same cfg) found; rec NULL replays first, discarding the records. Creates
 * the directories when absent. Takes nothing; cfg->dir is copied.
 * 0 or -errno (-EBADMSG etc. from the replay).
 */
int rlog_open(const struct rlog_config *cfg, const struct rlog_recovery *rec, struct rlog **out);

/* Close the files and free the log. Records not flushed are dropped (they
 * were never claimed durable). NULL is a no-op. */
void rlog_close(struct rlog *log);

/*
 * Make room for a record of `len` payload bytes of `type` in this turn and
 * return where the caller writes the payload, or NULL (out of memory, or len
 * over RLOG_RECORD_MAX). The pointer is valid until rlog_commit, which must
 * come before any other rlog_* call on this log.
 */
void *rlog_reserve(struct rlog *log, uint8_t type, uint32_t len);

/* Seal the reserved record (its checksum) and return its sequence number. */
uint64_t rlog_commit(struct rlog *log);

/* rlog_commit, sealing the record as `type` instead of the type given to
 * rlog_reserve (for a writer that knows it only once the body is written). */
uint64_t rlog_commit_as(struct rlog *log, uint8_t type);

/*
 * Grow the record numbered `seq` by `more` payload bytes and make its type
 * `type`, when it is still the last one appended and not yet handed to a
 * flush: where the caller writes those bytes (until the next rlog_* call),
 * or NULL (it is not, or no room, or its header would grow): the caller
 * then writes a record of its own. For a writer that finds the record it
 * is about to write follows on the last one (persist: an acknowledgement
 * and the next delivery of the same session).
 */
void *rlog_extend(struct rlog *log, uint64_t seq, uint8_t type, uint32_t more);

/* rlog_reserve + memcpy + rlog_commit: 0 and *seq (may be NULL), or -ENOMEM
 * / -EMSGSIZE. */
int rlog_append(struct rlog *log, uint8_t type, const void *payload, uint32_t len, uint64_t *seq);

enum { RLOG_RECORD_MAX = 256u << 20 };

/*
 * A flush the caller performs: write len bytes of buf to fd at off, then
 * fdatasync fd; buf stays valid and unchanged until rlog_flush_done.
 * Records up to last_seq are durable once both succeeded.
 */
struct rlog_flush {
    int fd;
    const void *buf;
    size_t len;
    uint64_t off;
    uint64_t last_seq;
};

/*
 * Start a flush of everything appended and not yet durable: 1 and *f
 * filled (call rlog_flush_done when the write and the sync completed), 0
 * when there is nothing to write, -EBUSY while a flush is in flight, or
 * -errno when a new segment could not be started (kept as rlog_error).
 * Rolling to a new segment (past max_segment_bytes, or after a salvage) is
 * done here, synchronously: a create, a header write and two syncs, once
 * per segment. Appending stays allowed while the flush is in flight.
 */
int rlog_flush_begin(struct rlog *log, struct rlog_flush *f);

/*
 * End the flush started last: res 0 when the whole write and the sync
 * succeeded (the watermark moves to f->last_seq and the error clears), else
 * -errno (a short write is the caller's -EIO): nothing is claimed, the
 * error is kept, and the next flush writes the same bytes again.
 */
void rlog_flush_done(struct rlog *log, int res);

/* Begin, write (short writes continued), sync and done, through cfg->io.
 * 0 (also when there was nothing to write) or -errno. */
int rlog_flush(struct rlog *log);

/* Records with a sequence number <= this are on disk (0: none yet). */
uint64_t rlog_durable_seq(const struct rlog *log);

/* The sequence number of the last record appended (0: none ever). */
uint64_t rlog_last_seq(const struct rlog *log);

/* The last flush's error, kept until a flush succeeds; 0 when none. */
int rlog_error(const struct rlog *log);

/* Bytes appended and not yet durable (what the next flush writes). */
size_t rlog_pending_bytes(const struct rlog *log);

/*
 * Snapshot hook: start a new segment at the next flush, so that a snapshot
 * taken now covers whole segments.
 */
void rlog_roll(struct rlog *log);

/*
 * Delete every segment all of whose records have a sequence number < seq
 * (a snapshot covers them); never the segment being appended to. 0 or
 * -errno; the number deleted in *deleted (may be NULL).
 */
int rlog_truncate_before(struct rlog *log, uint64_t seq, unsigned *deleted);

/*
 * The segments rlog_truncate_before(seq) would delete, for a caller that
 * removes them itself (a shard, through its ring, so as not to wait for
 * the file system: removing a 64 MiB segment took 17-20 ms on a disk
 * mounted with `discard`). Their paths, oldest first, in *paths: one
 * allocation (free(*paths)), NULL when *n is 0. 0 or -errno.
 */
int rlog_covered(struct rlog *log, uint64_t seq, char ***paths, size_t *n);

#endif
