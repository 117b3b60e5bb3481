/*
 * persist: the store hooks (what each change writes) and the loop's side
 * (flushes, barriers, cross-shard confirmations), per shard; see
 * persist.h. The directory and the start-up are recover.c's.
 */
#include "persist/persist.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/route.h"
#include "core/log.h"
#include "persist/pshard.h"
#include "persist/snapshot.h"
#include "session/msg.h"
#include "session/session.h"
#include "shard/shard.h"

/* ---- the record writer: straight into the log's turn buffer ---- */

static uint8_t *w_reserve(void *ctx, size_t len)
{
    struct pshard *ps = ctx;
    if (len > RLOG_RECORD_MAX)
        return NULL;
    return rlog_reserve(ps->log, 0, (uint32_t)len);
}

/* A counter only this shard writes: a plain add (no locked instruction),
 * a relaxed store the metrics thread reads whole. */
static inline void count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static void w_commit(void *ctx, uint8_t type, size_t len)
{
    struct pshard *ps = ctx;
    rlog_commit_as(ps->log, type);
    count(&ps->records, 1);
    count(&ps->bytes, len);
}

static struct session *session_of(const struct session_state *st)
{
    return (struct session *)((char *)st - offsetof(struct session, st));
}

static uint32_t w_number(void *ctx, const struct tenant *t, const struct session_state *st)
{
    (void)ctx, (void)t;
    return session_of(st)->store_no;
}

void pshard_writer_init(struct pshard *ps)
{
    ps->w = (struct record_writer){
        .reserve = w_reserve, .commit = w_commit, .ctx = ps, .number = w_number};
}

/* This shard's log cannot be written (on), or is written again (off).
 * Every shard's log is in the same directory, on the same file system:
 * while one cannot write, every shard refuses new durable work
 * (p_failing), so a publisher on a healthy shard whose message would go
 * to the failing one's sessions gets its refusal at once, not after its
 * message was routed there and failed. Only this shard writes its flag. */
static void set_failing(struct pshard *ps, bool on)
{
    if (atomic_load_explicit(&ps->failing, memory_order_relaxed) == on)
        return;
    atomic_store_explicit(&ps->failing, on, memory_order_relaxed);
    if (on)
        atomic_fetch_add_explicit(&ps->p->failing, 1, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&ps->p->failing, 1, memory_order_relaxed);
}

/* A record that could not be encoded (out of memory) is a hole the
 * replay would stumble on: said loudly, and the store fails. */
static void written(struct pshard *ps, int rc)
{
    if (rc == 0)
        return;
    log_ratelimited(LOG_LEVEL_ERR, "store: shard %u: a record could not be written: %s", ps->id,
                    strerror(-rc));
    set_failing(ps, true);
}

/* ---- the hooks: which changes are written ---- */

/* A session written whole gets a new number: the snapshot's parity (its
 * mark) in the top bit, then a count that each snapshot starts again. So a
 * number never names two live sessions: those of the snapshot before have
 * the other parity, and all of them are written whole again, with new
 * numbers, before the next snapshot starts (compact.c). */
static uint32_t number_new(struct pshard *ps)
{
    if (ps->next_no >= PSHARD_NO_MAX) {
        /* 2^31 sessions written whole within one snapshot: never seen,
         * but numbers must not wrap. */
        log_ratelimited(LOG_LEVEL_ERR, "store: shard %u: out of session numbers", ps->id);
        set_failing(ps, true);
        return 0;
    }
    return (ps->mark == 2 ? 1u << 31 : 0) | ++ps->next_no;
}

void pshard_write_session(struct pshard *ps, const struct tenant *t, const struct session_state *st)
{
    struct session *ss = session_of(st);
    ss->store_no = number_new(ps);
    if (!ss->store_no)
        return;
    written(ps, snapshot_session(&ps->w, t, st, ps->qos0, session_expires_at_ms(ss),
                                 session_will_at_ms(ss)));
    ss->store_mark = ps->mark;
}

/*
 * Whether a change of session st is to be written as its record: the
 * session is kept and the snapshot under way (if any) has written it.
 * One the snapshot has not reached yet is written whole now, as it is
 * after the change, which the record would repeat (compact.c).
 */
static bool kept(struct pshard *ps, const struct tenant *t, const struct session_state *st)
{
    uint8_t m = session_of(st)->store_mark;
    if (m == 0 || m == ps->mark)
        return m != 0;
    pshard_write_session(ps, t, st);
    return false;
}

static void p_session_put(void *ctx, const struct tenant *t, const struct session_state *st)
{
    struct pshard *ps = ctx;
    struct session *ss = session_of(st);
    if (st->expiry_s == 0) { /* ends with its connection: not durable any more */
        if (ss->store_mark)  /* a replay from before a snapshot knows of it */
            written(ps, record_session_del(&ps->w, t, st));
        ss->store_mark = 0;
        return;
    }
    if (ss->store_mark == ps->mark) {
        written(ps, record_session_put_at(&ps->w, t, st, session_expires_at_ms(ss),
                                          session_will_at_ms(ss)));
        return;
    }
    /* Its first durable put (or the snapshot under way has not reached
     * it): everything it holds. */
    pshard_write_session(ps, t, st);
}

static void p_session_del(void *ctx, const struct tenant *t, const struct session_state *st)
{
    struct pshard *ps = ctx;
    if (session_of(st)->store_mark) /* a replay from before a snapshot knows of it */
        written(ps, record_session_del(&ps->w, t, st));
    session_of(st)->store_mark = 0;
}

static void p_sub_put(void *ctx, const struct tenant *t, const struct session_state *st,
                      const struct sess_sub *sub)
{
    struct pshard *ps = ctx;
    if (kept(ps, t, st))
        written(ps, record_sub_put(&ps->w, t, st, sub));
}

static void p_sub_del(void *ctx, const struct tenant *t, const struct session_state *st,
                      const uint8_t *filter, size_t len)
{
    struct pshard *ps = ctx;
    if (kept(ps, t, st))
        written(ps, record_sub_del(&ps->w, t, st, filter, len));
}

static void p_queue_push(void *ctx, const struct tenant *t, const struct session_state *st,
                         const struct qentry *e)
{
    struct pshard *ps = ctx;
    if ((e->qos || ps->qos0) && kept(ps, t, st))
        written(ps, record_queue_push(&ps->w, t, st, e));
}

static void p_queue_pop(void *ctx, const struct tenant *t, const struct session_state *st,
                        const struct qentry *e)
{
    struct pshard *ps = ctx;
    if ((e->qos || ps->qos0) && kept(ps, t, st))
        written(ps, record_queue_pop(&ps->w, t, st));
}

static void p_infl_put(void *ctx, const struct tenant *t, const struct session_state *st,
                       const struct inflight *e)
{
    struct pshard *ps = ctx;
    if (kept(ps, t, st))
        written(ps, record_infl_put(&ps->w, t, st, e));
}

/* An acknowledgement frees a window slot and the queue's head takes it
 * (session/outbox.c: infl_remove, then pump): when the INFL_DEL is still
 * the last record, it becomes an INFL_DEL_NEXT, 2 bytes longer, rather
 * than a record of 8 more following it. */
static bool del_next(struct pshard *ps, const struct session_state *st, uint16_t pid)
{
    /* rlog_extend checks that the INFL_DEL is still the last record. */
    if (ps->del_st != st || ps->del_no != session_of(st)->store_no)
        return false;
    uint8_t *more = rlog_extend(ps->log, ps->del_seq, RECORD_INFL_DEL_NEXT, RECORD_DEL_NEXT_MORE);
    if (!more)
        return false;
    record_del_next(more, pid);
    count(&ps->bytes, RECORD_DEL_NEXT_MORE);
    ps->del_st = NULL;
    return true;
}

static void p_infl_from_queue(void *ctx, const struct tenant *t, const struct session_state *st,
                              const struct inflight *e, const struct qentry *q)
{
    struct pshard *ps = ctx;
    if ((q->qos || ps->qos0) && kept(ps, t, st) && !del_next(ps, st, e->pid))
        written(ps, record_pid(&ps->w, RECORD_INFL_FROM_QUEUE, t, st, e->pid));
}

static void pid_record(struct pshard *ps, uint8_t type, const struct tenant *t,
                       const struct session_state *st, uint16_t pid)
{
    if (kept(ps, t, st))
        written(ps, record_pid(&ps->w, type, t, st, pid));
}

static void p_infl_rec(void *ctx, const struct tenant *t, const struct session_state *st,
                       uint16_t pid)
{
    pid_record(ctx, RECORD_INFL_REC, t, st, pid);
}

static void p_infl_del(void *ctx, const struct tenant *t, const struct session_state *st,
                       uint16_t pid)
{
    struct pshard *ps = ctx;
    if (!kept(ps, t, st))
        return;
    int rc = record_pid(&ps->w, RECORD_INFL_DEL, t, st, pid);
    written(ps, rc);
    if (rc == 0) { /* the next delivery may join it (del_next) */
        ps->del_st = st;
        ps->del_no = session_of(st)->store_no;
        ps->del_seq = rlog_last_seq(ps->log);
    }
}

/* Inbound QoS 2 ids are not kept: after a restart a resent PUBLISH is
 * routed again, and the shards that delivered it before know its key
 * (broker/ingress.h). Kept, an id would have its resend acknowledged
 * without being routed, and a shard that had not written its copy before
 * the crash would never get it. */
static void p_qos2_add(void *ctx, const struct tenant *t, const struct session_state *st,
                       uint16_t pid)
{
    (void)ctx, (void)t, (void)st, (void)pid;
}

static void p_qos2_del(void *ctx, const struct tenant *t, const struct session_state *st,
                       uint16_t pid)
{
    (void)ctx, (void)t, (void)st, (void)pid;
}

static void p_ingress_put(void *ctx, uint64_t key)
{
    struct pshard *ps = ctx;
    written(ps, record_ingress(&ps->w, RECORD_INGRESS_PUT, key));
}

static void p_ingress_del(void *ctx, uint64_t key)
{
    struct pshard *ps = ctx;
    written(ps, record_ingress(&ps->w, RECORD_INGRESS_DEL, key));
}

/* $SYS topics are the broker's, published again as it runs: not kept. */
static void p_retained_put(void *ctx, const struct tenant *t, const struct msg *m)
{
    struct pshard *ps = ctx;
    if (!route_is_sys_topic(msg_topic(m), m->topic_len))
        written(ps, record_retained(&ps->w, RECORD_RETAINED_PUT, t, m));
}

static void p_retained_clear(void *ctx, const struct tenant *t, const struct msg *m)
{
    struct pshard *ps = ctx;
    if (!route_is_sys_topic(msg_topic(m), m->topic_len))
        written(ps, record_retained(&ps->w, RECORD_RETAINED_CLEAR, t, m));
}

/* ---- the loop: flushes ---- */

/* A flush's two completions: the write's and the sync's; a segment's
 * removal (pshard_unlink). */
enum { UD_STORE_WRITE = 1, UD_STORE_SYNC = 2, UD_STORE_UNLINK = 3 };

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* After a failed flush the next one waits this long (a full disk is not
 * tried again every turn). */
#define PERSIST_RETRY_MS 100u

/* Start writing what is pending. Every mode writes each turn (a turn's
 * records are small, and a crash of the process then loses nothing
 * written); `interval` syncs only every fsync_interval_ms, `never` not at
 * all. */
static void flush_start(struct pshard *ps, struct shard *s)
{
    if (ps->u.outstanding || rlog_pending_bytes(ps->log) == 0 || s->now_ms < ps->retry_ms)
        return;
    const struct config *cfg = ps->p->cfg;
    if (cfg->persist_fsync == PERSIST_FSYNC_INTERVAL) {
        ps->u.no_sync = s->now_ms < ps->next_sync_ms;
        if (!ps->u.no_sync)
            ps->next_sync_ms = s->now_ms + cfg->persist_fsync_interval_ms;
    }
    int rc = rlog_uring_prep(&ps->u, &s->ring, ud_make(UD_STORE, (void *)(UD_STORE_WRITE << 4)),
                             ud_make(UD_STORE, (void *)(UD_STORE_SYNC << 4)));
    if (rc == -EAGAIN) {
        io_uring_submit(&s->ring); /* room for the pair next turn */
    } else if (rc < 0) {
        log_ratelimited(LOG_LEVEL_ERR, "store: shard %u: cannot write the log: %s", ps->id,
                        strerror(-rc));
        set_failing(ps, true);
        count(&ps->errors, 1);
        ps->retry_ms = s->now_ms + PERSIST_RETRY_MS;
    }
}

/* The barrier is released once its records are durable (what waits for
 * other shards too waits on in the stream loop). */
static void barrier_check(struct pshard *ps, struct shard *s)
{
    if (!ps->barrier || rlog_durable_seq(ps->log) < ps->barrier_seq)
        return;
    ps->barrier = false;
    stream_barrier_done(&s->streams);
}

static void answer(struct shard *s, uint32_t src, uint64_t token, bool ok)
{
    struct xmsg x = {.type = XMSG_SYNCED, .pad = ok ? 0 : 1, .token = token};
    shard_xsend(s, src, &x);
}

/* The barrier in flight waits for what cannot be written: its clients
 * are cut off rather than told what is not true. */
static void barrier_abort(struct pshard *ps, struct shard *s)
{
    ps->barrier = false;
    uint32_t n = stream_barrier_abort(&s->streams);
    if (n)
        log_ratelimited(LOG_LEVEL_ERR,
                        "store: shard %u: %u connections closed: what they were to be told "
                        "could not be stored",
                        ps->id, n);
}

/* The other shards' requests that the log now covers. */
static void requests_check(struct pshard *ps, struct shard *s)
{
    uint64_t durable = rlog_durable_seq(ps->log), mask = ps->req_mask;
    while (mask) {
        uint32_t src = (uint32_t)__builtin_ctzll(mask);
        mask &= mask - 1;
        if (ps->req_seq[src] <= durable) {
            ps->req_mask &= ~(1ull << src);
            answer(s, src, ps->req_token[src], true);
        }
    }
}

/* A token for the shards of `mask`, asked to say when what this shard
 * sent them is durable; 0 when out of memory (the streams that depend on
 * it then wait for the next one). */
static uint32_t token_ask(struct pshard *ps, struct shard *s, uint64_t mask)
{
    if (ps->ntokens == ps->tokens_cap) {
        uint32_t cap = ps->tokens_cap ? 2 * ps->tokens_cap : 16;
        struct ptoken *v = realloc(ps->tokens, cap * sizeof(*v));
        if (!v)
            return 0;
        ps->tokens = v;
        ps->tokens_cap = cap;
    }
    uint32_t token = ++ps->token_next;
    ps->tokens[ps->ntokens++] = (struct ptoken){token, mask};
    while (mask) {
        uint32_t target = (uint32_t)__builtin_ctzll(mask);
        mask &= mask - 1;
        struct xmsg x = {.type = XMSG_SYNC, .token = token};
        shard_xsend(s, target, &x);
    }
    return token;
}

/* Hold the output so far until its records are durable; the streams that
 * sent QoS 1/2 messages to other shards (stream_depends) until those said
 * theirs are too. */
static void barrier_begin(struct pshard *ps, struct shard *s)
{
    uint32_t token = s->store_xmask ? token_ask(ps, s, s->store_xmask) : 0;
    if (s->store_xmask && !token)
        return; /* out of memory: the next turn asks again */
    s->store_xmask = 0;
    ps->barrier = true;
    ps->barrier_seq = ps->covered_seq = rlog_last_seq(ps->log);
    stream_barrier_begin(&s->streams, token);
    barrier_check(ps, s);
}

static void p_turn(void *ctx, struct shard *s)
{
    struct pshard *ps = ctx;
    ps->w.mono_ms = s->now_ms;
    ps->w.wall_ms = wall_ms();
    compact_turn(ps, s);
    flush_start(ps, s);
    if (!ps->gated) {
        s->store_xmask = 0;
        return;
    }
    if (!ps->barrier && (rlog_last_seq(ps->log) > ps->covered_seq || s->store_xmask))
        barrier_begin(ps, s);
}

/* The SNAPSHOT file that makes the segments unneeded is durable already
 * (compact.c): a crash before or during their removal replays from it and
 * skips them, so the removals need neither an order nor a directory sync. */
void pshard_unlink(struct pshard *ps, struct shard *s, uint64_t seq)
{
    size_t n;
    if (ps->unlinks)
        return;
    int rc = rlog_covered(ps->log, seq, &ps->unlinking, &n);
    if (rc < 0)
        log_err("store: shard %u: cannot list the segments to delete: %s", ps->id, strerror(-rc));
    for (size_t i = 0; i < n; i++) {
        struct io_uring_sqe *sqe = shard_sqe(s);
        io_uring_prep_unlinkat(sqe, AT_FDCWD, ps->unlinking[i], 0);
        io_uring_sqe_set_data64(sqe, ud_make(UD_STORE, (void *)(UD_STORE_UNLINK << 4)));
    }
    ps->unlinks = (uint32_t)n;
    ps->unlinked = 0;
    if (n == 0) {
        free(ps->unlinking);
        ps->unlinking = NULL;
    }
}

static void unlinked(struct pshard *ps, int res)
{
    if (res < 0 && res != -ENOENT)
        log_err("store: shard %u: cannot delete a segment a snapshot covers: %s", ps->id,
                strerror(-res));
    else
        ps->unlinked++;
    if (ps->unlinks == 0 || --ps->unlinks) /* 0: after p_fini */
        return;
    log_info("store: shard %u: %u segments the snapshot covers deleted", ps->id, ps->unlinked);
    free(ps->unlinking);
    ps->unlinking = NULL;
}

static void p_complete(void *ctx, struct shard *s, const struct io_uring_cqe *cqe)
{
    struct pshard *ps = ctx;
    if ((cqe->user_data >> 4) == UD_STORE_UNLINK) {
        unlinked(ps, cqe->res);
        return;
    }
    bool is_sync = (cqe->user_data >> 4) == UD_STORE_SYNC;
    if (!rlog_uring_complete(&ps->u, is_sync, cqe->res))
        return;
    int err = rlog_error(ps->log);
    if (err) {
        log_ratelimited(LOG_LEVEL_ERR, "store: shard %u: writing the log failed: %s", ps->id,
                        strerror(-err));
        count(&ps->errors, 1);
        set_failing(ps, true);
        ps->retry_ms = s->now_ms + PERSIST_RETRY_MS;
        if (ps->barrier && rlog_durable_seq(ps->log) < ps->barrier_seq)
            barrier_abort(ps, s);
        for (uint64_t m = ps->req_mask; m; m &= m - 1) { /* the shards that asked */
            uint32_t src = (uint32_t)__builtin_ctzll(m);
            answer(s, src, ps->req_token[src], false);
        }
        ps->req_mask = 0;
        return;
    }
    if (!ps->u.no_sync)
        count(&ps->fsyncs, 1);
    if (atomic_load_explicit(&ps->failing, memory_order_relaxed)) {
        log_warn("store: shard %u: the log is written again", ps->id);
        set_failing(ps, false);
    }
    barrier_check(ps, s);
    requests_check(ps, s);
}

static void p_tick(void *ctx, struct shard *s)
{
    (void)ctx;
    (void)s;
}

static void p_sync_request(void *ctx, struct shard *s, uint32_t src, uint64_t token)
{
    struct pshard *ps = ctx;
    ps->req_seq[src] = rlog_last_seq(ps->log);
    ps->req_token[src] = token;
    ps->req_mask |= 1ull << src;
    requests_check(ps, s);
}

/* Shard src answered every token up to `token`: those whose shards have
 * all answered release what waited for them, in order. Failed: the
 * streams waiting for the first of them src had to answer are cut off. */
static void p_synced(void *ctx, struct shard *s, uint32_t src, uint64_t token, bool ok)
{
    struct pshard *ps = ctx;
    uint64_t bit = 1ull << src;
    uint32_t failed = 0;
    for (uint32_t i = 0; i < ps->ntokens && ps->tokens[i].token <= token; i++) {
        if (!ok && !failed && (ps->tokens[i].wait & bit))
            failed = ps->tokens[i].token;
        ps->tokens[i].wait &= ~bit;
    }
    if (failed) {
        uint32_t n = stream_barrier_remote_abort(&s->streams, failed);
        if (n)
            log_ratelimited(LOG_LEVEL_ERR,
                            "store: shard %u: %u connections closed: shard %u could not store "
                            "what they were to be told of",
                            ps->id, n, src);
    }
    uint32_t done = 0;
    while (done < ps->ntokens && ps->tokens[done].wait == 0)
        ps->remote_done = ps->tokens[done++].token;
    memmove(ps->tokens, ps->tokens + done, (ps->ntokens - done) * sizeof(*ps->tokens));
    ps->ntokens -= done;
    if (done)
        stream_barrier_remote(&s->streams, ps->remote_done);
}

static bool p_failing(void *ctx)
{
    struct pshard *ps = ctx;
    return atomic_load_explicit(&ps->p->failing, memory_order_relaxed) != 0;
}

static bool p_writing(const void *ctx)
{
    const struct pshard *ps = ctx;
    return ps->log &&
           (ps->u.outstanding || ps->unlinks); /* unlinks: the kernel reads their paths */
}

/* Stopping (the ring is gone, and with it nothing of ours: the shard
 * waited while p_writing): the rest is written synchronously. A flush
 * still in flight here means the ring failed; it is written again. */
static void p_stop(void *ctx, struct shard *s)
{
    struct pshard *ps = ctx;
    if (!ps->log)
        return;
    if (ps->u.outstanding) {
        ps->u.outstanding = 0;
        rlog_flush_done(ps->log, -ECANCELED);
    }
    int rc = rlog_flush(ps->log);
    if (rc < 0)
        log_err("store: shard %u: the last records could not be written: %s", ps->id,
                strerror(-rc));
    /* What a barrier still held is freed with the connections (the ring is
     * gone: nothing can be sent). */
    ps->barrier = false;
    stream_barrier_fini(&s->streams);
    free(ps->tokens);
    ps->tokens = NULL;
    free(ps->unlinking); /* none under way: the shard waited for them (p_writing) */
    ps->unlinking = NULL;
    ps->unlinks = 0;
    ps->ntokens = ps->tokens_cap = 0;
    rlog_close(ps->log);
    ps->log = NULL;
}

static void p_counters(const void *ctx, struct store_counters *out)
{
    const struct pshard *ps = ctx;
    out->records = atomic_load_explicit(&ps->records, memory_order_relaxed);
    out->bytes = atomic_load_explicit(&ps->bytes, memory_order_relaxed);
    out->fsyncs = atomic_load_explicit(&ps->fsyncs, memory_order_relaxed);
    out->errors = atomic_load_explicit(&ps->errors, memory_order_relaxed);
    out->failing = atomic_load_explicit(&ps->failing, memory_order_relaxed);
}

const struct store_ops persist_store_ops = {
    .session_put = p_session_put,
    .session_del = p_session_del,
    .sub_put = p_sub_put,
    .sub_del = p_sub_del,
    .queue_push = p_queue_push,
    .queue_pop = p_queue_pop,
    .infl_put = p_infl_put,
    .infl_from_queue = p_infl_from_queue,
    .infl_rec = p_infl_rec,
    .infl_del = p_infl_del,
    .qos2_add = p_qos2_add,
    .qos2_del = p_qos2_del,
    .retained_put = p_retained_put,
    .retained_clear = p_retained_clear,
    .ingress_put = p_ingress_put,
    .ingress_del = p_ingress_del,
    .load = pshard_load,
    .turn = p_turn,
    .complete = p_complete,
    .tick = p_tick,
    .sync_request = p_sync_request,
    .synced = p_synced,
    .failing = p_failing,
    .writing = p_writing,
    .stop = p_stop,
    .counters = p_counters,
};
