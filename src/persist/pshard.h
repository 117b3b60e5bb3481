/*
 * pshard: one shard's side of the durable store (persist.h), shared by the
 * files of this room: persist.c (the store hooks and the loop's flushes,
 * barriers and cross-shard confirmations) and recover.c (the directory,
 * generations and start-up replay). Not for other rooms.
 */
#ifndef RINGMQ_PERSIST_PSHARD_H
#define RINGMQ_PERSIST_PSHARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "persist/record.h"
#include "session/store.h"
#include "store/log.h"
#include "store/log_uring.h"

/* The whole broker's store: the directory and the generations. */
struct persist {
    const struct config *cfg;
    bool salvage;
    int lock_fd;
    uint32_t old_gen; /* the generation in force at start-up (0: none) */
    uint32_t old_shards;
    char old_dir[CONFIG_PATH_MAX + 32]; /* DIR/gen-NNNNNNNN of old_gen ("" when none) */
    char new_dir[CONFIG_PATH_MAX + 32]; /* DIR/gen-NNNNNNNN of old_gen + 1 */
    struct store_provider provider;
    uint32_t nshards;
    struct pshard **shards;
    atomic_uint loading; /* shards still loading; the last one switches CURRENT */
    atomic_bool load_failed;
    atomic_uint failing; /* shards whose `failing` is set (persist.c, set_failing) */
};

/* One shard's. */
struct pshard {
    struct persist *p;
    uint32_t id;
    bool gated; /* fsync = always: output waits for its records */
    bool qos0;  /* QoS 0 queue entries are durable */
    struct rlog *log;
    struct rlog_uring u;
    struct record_writer w;
    uint64_t next_sync_ms; /* fsync = interval: the next flush */
    uint64_t retry_ms;     /* after a failed flush: not before */
    /* The last INFL_DEL written: its session, number and sequence number
     * (persist.c, del_next). */
    const struct session_state *del_st;
    uint32_t del_no;
    uint64_t del_seq;
    /* The barrier in flight: released once the log is durable up to seq
     * (the streams that also wait for other shards wait on, net/stream.h). */
    bool barrier;
    uint64_t barrier_seq;
    uint64_t covered_seq; /* records up to this were covered by a barrier */
    /* Remote tokens: one per barrier that sent QoS 1/2 to other shards,
     * with the shards yet to answer, oldest first; answered up to
     * remote_done. An answer for token t answers every earlier one of
     * that shard (each answers its requests in order). */
    struct ptoken {
        uint32_t token;
        uint64_t wait; /* shards yet to answer */
    } * tokens;
    uint32_t ntokens, tokens_cap;
    uint32_t token_next, remote_done;
    /* Other shards' XMSG_SYNC waiting for this log to be durable up to
     * req_seq[src] (one per source: each has one barrier in flight). */
    uint64_t req_mask;
    uint64_t req_seq[CONFIG_MAX_SHARDS];
    uint64_t req_token[CONFIG_MAX_SHARDS];
    const struct store_sink *sink; /* the broker's, while loading */
    /* Compaction (compact.c). A kept session's store_mark is the mark of
     * the last snapshot that wrote it whole: `mark` (1 or 2) once every
     * kept session has been, the other value while a snapshot is under
     * way and has not reached it. */
    uint8_t mark;
    uint32_t next_no; /* the last session number given in this snapshot (persist.c) */
    bool compacting;
    bool snap_closing;     /* SNAP_END written: finish once it is durable */
    uint64_t snap_seq;     /* the SNAP_BEGIN of the snapshot under way */
    uint64_t snap_end_seq; /* its SNAP_END */
    uint64_t snap_bytes;   /* `bytes` when the last snapshot was written */
    char **unlinking;      /* segments a snapshot covers, being removed through */
    uint32_t unlinks;      /* the ring (pshard_unlink): their paths, how many left, */
    uint32_t unlinked;     /* how many are gone */
    uint32_t cur_tenant;   /* the walk: tenant id, registry bucket, */
    uint32_t cur_bucket;   /* and the bucket count it was counted in */
    uint32_t cur_mask;
    const struct tenant *walk_tenant; /* the retained walk's */
    /* Counters: written here, read by the metrics thread. */
    _Atomic uint64_t records, bytes, fsyncs, errors;
    atomic_bool failing;
};

/* Session numbers (record.h) a snapshot gives at most; past half of it a
 * snapshot starts whatever the log's size (compact.c). */
#define PSHARD_NO_MAX ((1u << 31) - 1)

/* The store hooks of persist.c (the provider's ops). */
extern const struct store_ops persist_store_ops;

/* recover.c: the load hook (shard s's part of the start-up). */
int pshard_load(void *ctx, struct shard *s, const struct store_sink *sink);

/* recover.c: dir/name holds `text`: written aside as name.tmp, synced,
 * renamed into place, the directory synced. 0 or -errno. */
int persist_write_file(const char *dir, const char *name, const char *text);

/* persist.c: the record writer over ps's log. */
void pshard_writer_init(struct pshard *ps);

/* persist.c: write session st of t whole (its current state) and mark it. */
void pshard_write_session(struct pshard *ps, const struct tenant *t,
                          const struct session_state *st);

/* persist.c: remove the segments before seq through s's ring, so that the
 * shard does not wait for the file system; none while the last removal is
 * under way (the next snapshot's takes them). Logs what it did. */
void pshard_unlink(struct pshard *ps, struct shard *s, uint64_t seq);

/* compact.c: each turn, before the flush: start a snapshot when the log
 * has grown by max_log_bytes since the last one, write the next sessions
 * of one under way, finish one whose end is durable. */
void compact_turn(struct pshard *ps, struct shard *s);

#endif
