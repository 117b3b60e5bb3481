/*
 * compact: a shard's snapshot, taken while it serves, so that its log
 * stays within what it holds plus max_log_bytes (persist.h).
 *
 * A snapshot starts a new segment with a SNAP_BEGIN record, then writes
 * every kept session whole (and, on shard 0, every retained message) as
 * the records that recreate it, a bounded share per loop turn, and ends
 * with SNAP_END. Changes go on meanwhile: a session the walk has written
 * writes its changes as usual; one it has not reached is written whole at
 * its first change (persist.c, `kept`), and skipped by the walk; a session
 * that ends before the walk reached it writes nothing. So the records from
 * SNAP_BEGIN on tell the whole story by themselves. Once SNAP_END is
 * durable, the shard's SNAPSHOT file names SNAP_BEGIN's sequence number
 * (where a start-up replays from) and the segments before it go.
 *
 * Which sessions the walk has written: a session's store_mark is the mark
 * of the snapshot that last wrote it whole (1 or 2); a snapshot flips the
 * shard's mark as it starts, and the walk writes those still holding the
 * old one. It walks each tenant's registry bucket by bucket; a registry
 * that grew meanwhile (rehashed) is walked again from its start, which
 * only costs a compare per session already written.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "broker/ingress.h"
#include "broker/route.h"
#include "core/log.h"
#include "index/retain.h"
#include "persist/pshard.h"
#include "persist/snapshot.h"
#include "session/msg.h"
#include "session/session.h"
#include "shard/shard.h"

/* A turn writes sessions until it has written this much. */
#define COMPACT_TURN_BYTES (256u << 10)

static void write_retained(void *value, void *arg)
{
    struct pshard *ps = arg;
    const struct msg *m = value;
    const struct tenant *t = ps->walk_tenant;
    if (m->payload_len && !route_is_sys_topic(msg_topic(m), m->topic_len) &&
        snapshot_retained(&ps->w, t, m) < 0)
        log_ratelimited(LOG_LEVEL_ERR, "store: shard %u: out of memory writing a snapshot", ps->id);
}

static void write_key(uint64_t key, void *arg)
{
    struct pshard *ps = arg;
    if (record_ingress(&ps->w, RECORD_INGRESS_PUT, key) < 0)
        log_ratelimited(LOG_LEVEL_ERR, "store: shard %u: out of memory writing a snapshot", ps->id);
}

/* Start: a new segment, SNAP_BEGIN, the keys of QoS 2 flows, and shard
 * 0's retained messages. */
static void snap_begin(struct pshard *ps, struct shard *s)
{
    rlog_roll(ps->log);
    if (rlog_append(ps->log, RECORD_SNAP_BEGIN, NULL, 0, &ps->snap_seq) < 0)
        return; /* out of memory: the next turn tries again, nothing changed */
    ps->mark = ps->mark == 1 ? 2 : 1;
    ps->next_no = 0; /* numbers of the other parity from here (persist.c) */
    ps->compacting = true;
    ps->cur_tenant = ps->cur_bucket = ps->cur_mask = 0;
    log_info("store: shard %u: snapshot from record %" PRIu64, ps->id, ps->snap_seq);
    ingress_walk(s, write_key, ps);
    for (uint32_t i = 0; s->id == 0 && i < TENANT_MAX; i++) {
        struct tenant *t = s->tenants[i];
        if (t && t->retained) {
            ps->walk_tenant = t;
            retain_walk(t->retained, write_retained, ps);
        }
    }
}

/* The sessions of one registry bucket the snapshot has not written. */
static void write_bucket(struct pshard *ps, const struct tenant *t, uint32_t b)
{
    for (struct session *ss = t->reg[b]; ss; ss = ss->reg_next)
        if (ss->store_mark && ss->store_mark != ps->mark)
            pshard_write_session(ps, t, &ss->st);
}

/* Walk on until this turn's share is written; true when every session is. */
static bool snap_walk(struct pshard *ps, struct shard *s)
{
    uint64_t until = atomic_load_explicit(&ps->bytes, memory_order_relaxed) + COMPACT_TURN_BYTES;
    for (; ps->cur_tenant < TENANT_MAX; ps->cur_tenant++, ps->cur_bucket = 0) {
        const struct tenant *t = s->tenants[ps->cur_tenant];
        if (!t || !t->reg)
            continue;
        if (ps->cur_bucket && ps->cur_mask != t->reg_mask)
            ps->cur_bucket = 0; /* rehashed meanwhile: again from the start */
        ps->cur_mask = t->reg_mask;
        for (; ps->cur_bucket <= t->reg_mask; ps->cur_bucket++) {
            if (atomic_load_explicit(&ps->bytes, memory_order_relaxed) >= until)
                return false;
            write_bucket(ps, t, ps->cur_bucket);
        }
    }
    return true;
}

/* DIR/gen/shard-NNNN/SNAPSHOT names seq. */
static int write_pointer(struct pshard *ps, uint64_t seq)
{
    char dir[CONFIG_PATH_MAX + 64], line[32];
    snprintf(dir, sizeof(dir), "%s/shard-%04" PRIu32, ps->p->new_dir, ps->id);
    snprintf(line, sizeof(line), "%" PRIu64 "\n", seq);
    return persist_write_file(dir, "SNAPSHOT", line);
}

/* SNAP_END is durable: point at the snapshot, drop what it covers. */
static void snap_finish(struct pshard *ps, struct shard *s)
{
    ps->snap_closing = false;
    int rc = write_pointer(ps, ps->snap_seq);
    if (rc < 0) {
        log_err("store: shard %u: the snapshot could not be put in force: %s", ps->id,
                strerror(-rc));
        return;
    }
    log_info("store: shard %u: snapshot from record %" PRIu64 " in force", ps->id, ps->snap_seq);
    pshard_unlink(ps, s, ps->snap_seq);
}

void compact_turn(struct pshard *ps, struct shard *s)
{
    if (ps->snap_closing) {
        if (rlog_durable_seq(ps->log) >= ps->snap_end_seq)
            snap_finish(ps, s);
        return;
    }
    if (!ps->compacting) {
        uint64_t grown = atomic_load_explicit(&ps->bytes, memory_order_relaxed) - ps->snap_bytes;
        bool numbers = ps->next_no > PSHARD_NO_MAX / 2;
        if ((grown < ps->p->cfg->persist_max_log_bytes && !numbers) ||
            atomic_load_explicit(&ps->failing, memory_order_relaxed))
            return;
        snap_begin(ps, s);
        return;
    }
    if (!snap_walk(ps, s))
        return;
    ps->compacting = false;
    /* The log grows from here: what the snapshot itself wrote does not
     * count toward the next (live state larger than max_log_bytes would
     * otherwise start one snapshot after another). */
    ps->snap_bytes = atomic_load_explicit(&ps->bytes, memory_order_relaxed);
    if (rlog_append(ps->log, RECORD_SNAP_END, NULL, 0, &ps->snap_end_seq) == 0)
        ps->snap_closing = true;
}
