/*
 * shard: the thread-per-core event loop (see shard.h).
 *
 * Each shard thread creates its own ring (so SINGLE_ISSUER holds), arms
 * SHARD_ACCEPTS single-shot accepts per listener (and, after a live
 * reload, on listeners added; cancels those of listeners removed), a periodic tick and a
 * read on its stop eventfd, then loops: the hooks' turn, flush the
 * streams and the cross-shard slots (one MSG_RING wakeup per target per
 * turn), submit and wait, dispatch completions by tag, drain a share of
 * the inbound SPSC rings.
 */
#include "shard/shard.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/affinity.h"
#include "core/clock.h"
#include "core/log.h"

#define SHARD_SQ_ENTRIES 4096u

static const struct __kernel_timespec tick_ts = {.tv_sec = 0, .tv_nsec = SHARD_TICK_MS * 1000000L};

uint32_t shard_home(const struct broker *b, uint16_t tenant, const uint8_t *id, size_t len)
{
    return (uint32_t)(XXH3_64bits_withSeed(id, len, tenant) % b->nshards);
}

struct io_uring_sqe *shard_sqe(struct shard *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    while (!sqe) {
        io_uring_submit(&s->ring);
        sqe = io_uring_get_sqe(&s->ring);
    }
    return sqe;
}

/* Arm accept slot `ai` (listener ai / SHARD_ACCEPTS) into a direct
 * descriptor the kernel picks. */
static void arm_accept(struct shard *s, uint32_t ai)
{
    uint32_t li = ai / SHARD_ACCEPTS;
    struct accept_slot *a = &s->accepts[li][ai % SHARD_ACCEPTS];
    a->len = sizeof(a->addr); /* in/out: the kernel writes the real length */
    struct io_uring_sqe *sqe = shard_sqe(s);
    /* liburing 2.3 stores file_index + 1 without the special case later
     * versions have, so IORING_FILE_INDEX_ALLOC itself would wrap to 0 and
     * make a normal descriptor; "- 1" (what its multishot variant passes)
     * means "allocate" with every version. */
    io_uring_prep_accept_direct(sqe, s->listen_fds[li], (struct sockaddr *)&a->addr, &a->len, 0,
                                IORING_FILE_INDEX_ALLOC - 1);
    io_uring_sqe_set_data64(sqe, ud_make(UD_ACCEPT, (void *)(uintptr_t)(ai << 4)));
    s->accepts_armed[li]++;
}

/* A closed slot's socket, once nothing of this shard's ring uses it: an
 * accept in flight holds the socket's file, so a close before the last
 * one completed would leave it listening (and taking connections into its
 * backlog) until then. */
static void listener_release(struct shard *s, uint32_t li)
{
    if (s->accepting[li] || s->accepts_armed[li])
        return;
    free(s->accepts[li]);
    s->accepts[li] = NULL;
    if (s->listen_fds[li] > 0)
        close(s->listen_fds[li]);
    s->listen_fds[li] = -1;
}

static void on_accept(struct shard *s, const struct io_uring_cqe *cqe)
{
    uint32_t ai = (uint32_t)(cqe->user_data >> 4);
    int res = cqe->res;
    uint32_t li = ai / SHARD_ACCEPTS;
    s->accepts_armed[li]--;
    if (res >= 0) {
        struct accept_slot *a = &s->accepts[li][ai % SHARD_ACCEPTS];
        struct net_peer peer;
        /* Unknown address (not expected from TCP): serve the client anyway,
         * the plugins see no address. */
        net_peer_from_sockaddr(&peer, (struct sockaddr *)&a->addr, a->len);
        s->hooks->accepted(s, (uint32_t)res, (uint8_t)li, &peer);
    } else if (res != -ECANCELED) {
        /* ENFILE (direct descriptor table full), EMFILE, ENOBUFS and the
         * like: that connection is lost, the next may fit. */
        log_ratelimited(LOG_LEVEL_WARN, "accept on %s: %s", shard_listener(s->broker, li)->name,
                        strerror(-res));
    }
    /* The slot is free again: keep SHARD_ACCEPTS armed until shutdown or
     * until the listener closes. */
    if (s->stopping)
        return;
    if (s->accepting[li])
        arm_accept(s, ai);
    else
        listener_release(s, li);
}

void shard_listener_tables(struct shard *s, uint32_t li)
{
    const struct listener_slot *ls = &s->broker->lslots[li];
    const struct config_listener *cl = shard_listener(s->broker, li);
    s->streams.xprt[li] = ls->xprt.kind->ops;
    s->streams.xprt_ctx[li] = ls->xprt.ctx;
    s->streams.proxy[li] = cl->proxy_protocol != CONFIG_PROXY_OFF ? cl : NULL;
}

/* Start accepting on slot li: its stream tables, then its accepts. */
static void listener_start(struct shard *s, uint32_t li)
{
    const struct config_listener *cl = shard_listener(s->broker, li);
    struct accept_slot *a = calloc(SHARD_ACCEPTS, sizeof(*a));
    if (!a) {
        log_ratelimited(LOG_LEVEL_ERR, "listener %s: out of memory: not accepting on shard %u",
                        cl->name, s->id);
        return; /* the next tick tries again */
    }
    shard_listener_tables(s, li);
    s->accepts[li] = a;
    s->accepting[li] = true;
    for (uint32_t n = 0; n < SHARD_ACCEPTS; n++)
        arm_accept(s, li * SHARD_ACCEPTS + n);
}

/* Stop accepting on slot li: cancel its accepts (each completes, with
 * -ECANCELED or a connection that was just accepted); the last one
 * releases the socket. */
static void listener_stop(struct shard *s, uint32_t li)
{
    s->accepting[li] = false;
    for (uint32_t n = 0; n < SHARD_ACCEPTS; n++) {
        struct io_uring_sqe *sqe = shard_sqe(s);
        uint64_t ai = li * SHARD_ACCEPTS + n;
        io_uring_prep_cancel64(sqe, ud_make(UD_ACCEPT, (void *)(uintptr_t)(ai << 4)), 0);
        io_uring_sqe_set_data64(sqe, ud_make(UD_IGNORE, NULL));
    }
    listener_release(s, li); /* none was armed: now */
}

void shard_listeners_sync(struct shard *s)
{
    struct broker *b = s->broker;
    uint32_t n = atomic_load_explicit(&b->nslots, memory_order_acquire);
    for (uint32_t li = 0; li < n; li++) {
        bool open = atomic_load_explicit(&b->lslots[li].open, memory_order_acquire);
        if (open && !s->accepting[li] && !s->accepts[li])
            listener_start(s, li);
        else if (!open && s->accepting[li])
            listener_stop(s, li);
        else if (!open && !s->accepts[li] && s->listen_fds[li] > 0)
            listener_release(s, li); /* closed before this shard took it */
    }
}

static void arm_tick(struct shard *s)
{
    struct io_uring_sqe *sqe = shard_sqe(s);
    io_uring_prep_timeout(sqe, (struct __kernel_timespec *)&tick_ts, 0, 0);
    io_uring_sqe_set_data64(sqe, ud_make(UD_TICK, NULL));
}

static void on_tick(struct shard *s, const struct io_uring_cqe *cqe)
{
    (void)cqe;
    shard_listeners_sync(s);
    s->hooks->tick(s);
    arm_tick(s);
}

static void arm_stop(struct shard *s)
{
    struct io_uring_sqe *sqe = shard_sqe(s);
    io_uring_prep_read(sqe, s->stop_fd, &s->stop_val, sizeof(s->stop_val), 0);
    io_uring_sqe_set_data64(sqe, ud_make(UD_STOP, NULL));
}

static void on_stop(struct shard *s, const struct io_uring_cqe *cqe)
{
    (void)cqe;
    s->stopping = true;
}

static void on_recv(struct shard *s, const struct io_uring_cqe *cqe)
{
    stream_on_recv(&s->streams, ud_ptr(cqe->user_data), cqe->res, cqe->flags);
}

static void on_send(struct shard *s, const struct io_uring_cqe *cqe)
{
    stream_on_send(&s->streams, ud_ptr(cqe->user_data), cqe->res);
}

static void on_close(struct shard *s, const struct io_uring_cqe *cqe)
{
    stream_on_close(&s->streams, ud_ptr(cqe->user_data), cqe->res);
}

/* The table of completion handlers: the shard's own tags, then the
 * hooks'. UD_WAKE and UD_IGNORE need nothing (the wakeup's work is the
 * drain after the completions). */
static void handlers_init(struct shard *s)
{
    for (uint32_t t = 0; t < UD_TAGS; t++)
        s->on_cqe[t] = s->hooks->on_cqe[t];
    s->on_cqe[UD_ACCEPT] = on_accept;
    s->on_cqe[UD_RECV] = on_recv;
    s->on_cqe[UD_SEND] = on_send;
    s->on_cqe[UD_CLOSE] = on_close;
    s->on_cqe[UD_TICK] = on_tick;
    s->on_cqe[UD_STOP] = on_stop;
    s->on_cqe[UD_WAKE] = NULL;
    s->on_cqe[UD_IGNORE] = NULL;
}

/* Every completion waiting, each through its handler. */
static void dispatch_all(struct shard *s)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&s->ring, head, cqe)
    {
        shard_cqe_fn fn = s->on_cqe[ud_tag(cqe->user_data)];
        if (fn)
            fn(s, cqe);
        n++;
    }
    io_uring_cq_advance(&s->ring, n);
}

/* Submit this turn's requests and wait for completions: not at all while
 * work is left for the next turn (deferred input, inbound messages beyond
 * a turn's share), at most 1 ms while a target shard is behind (its queue
 * here must be retried), else until one arrives. */
static void submit_and_wait(struct shard *s)
{
    bool work_left = s->ndeferred || s->inbound_left || stream_flush_left(&s->streams);
    bool behind = xshard_overflowing(s);
    int ret;
    if (work_left || behind) {
        struct __kernel_timespec ts = {0, work_left ? 0 : 1000000};
        struct io_uring_cqe *cqe;
        ret = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
    } else {
        ret = io_uring_submit_and_wait(&s->ring, 1);
    }
    if (ret < 0 && ret != -EINTR && ret != -ETIME && ret != -EBUSY && ret != -EAGAIN)
        log_ratelimited(LOG_LEVEL_ERR, "io_uring_submit_and_wait: %s", strerror(-ret));
}

static void shard_loop(struct shard *s)
{
    while (!s->stopping) {
        s->hooks->turn(s);
        stream_flush(&s->streams);
        xshard_flush(s);
        bufring_publish(&s->bufs);
        s->turn++;
        submit_and_wait(s);
        s->now_ms = clock_now_ms();
        stream_turn_begin(&s->streams);
        dispatch_all(s);
        xshard_drain(s, SHARD_INBOUND_TURN);
    }
}

/* ---- start-up and shutdown of one shard ---- */

/* The ring (with a direct descriptor table as large as the open-file
 * limit) and its provided buffers. 0 or -errno (logged). */
static int ring_init(struct shard *s, unsigned *nfiles)
{
    struct rlimit rl;
    *nfiles = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        *nfiles = (unsigned)rl.rlim_cur;
    if (*nfiles > (1u << 20))
        *nfiles = 1u << 20;
    int ret = uring_init(&s->ring, SHARD_SQ_ENTRIES, *nfiles, &s->ring_mode);
    if (ret < 0) {
        log_err("io_uring set-up failed: %s", strerror(-ret));
        return ret;
    }
    s->ring_fd = s->ring.ring_fd;
    ret = bufring_init(&s->bufs, &s->ring, 0, s->cfg->recv_buffers, s->cfg->recv_buffer_size);
    if (ret < 0) {
        log_err("provided buffer ring set-up failed (kernel 5.19+ needed): %s", strerror(-ret));
        return ret;
    }
    s->streams.ring = &s->ring;
    s->streams.bufs = &s->bufs;
    s->streams.tags = (struct stream_tags){
        .recv = UD_RECV, .send = UD_SEND, .close = UD_CLOSE, .ignore = UD_IGNORE};
    return 0;
}

static int shard_init(struct shard *s)
{
    unsigned nfiles;
    int ret = ring_init(s, &nfiles);
    if (ret < 0)
        return ret;
    s->now_ms = clock_now_ms();
    handlers_init(s);
    ret = s->hooks->start(s);
    if (ret < 0)
        return ret;
    shard_listeners_sync(s);
    arm_tick(s);
    arm_stop(s);
    io_uring_submit(&s->ring);
    log_info("shard %u: io_uring %s, %u direct descriptors, %u x %u B receive buffers", s->id,
             s->ring_mode, nfiles, s->cfg->recv_buffers, s->cfg->recv_buffer_size);
    return 0;
}

static void shard_fini(struct shard *s)
{
    s->stopping = true;
    /* Leaving the ring cancels every request and closes every descriptor,
     * so nothing below races with the kernel still writing into buffers. */
    if (s->ring_fd > 0) {
        io_uring_queue_exit(&s->ring);
        if (s->bufs.br) {
            munmap(s->bufs.base, (size_t)s->bufs.count * s->bufs.size);
            munmap(s->bufs.br, (size_t)s->bufs.count * sizeof(struct io_uring_buf));
            memset(&s->bufs, 0, sizeof(s->bufs));
        }
    }
    /* The ring is gone: no accept can write into a slot any more. */
    for (uint32_t li = 0; li < SHARD_MAX_LISTENERS; li++) {
        free(s->accepts[li]);
        s->accepts[li] = NULL;
    }
    s->hooks->stop(s);
    xshard_fini(s);
}

/*
 * Clean shutdown, phase by phase: publish the wills (when configured), wait
 * until every shard has, deliver what arrived from other shards, and give
 * queued output up to SHARD_LINGER_MS to reach the clients.
 */
#define SHARD_LINGER_MS 1000u

static void shard_quiesce(struct shard *s)
{
    s->hooks->quiesce(s);
    stream_flush(&s->streams);
    xshard_flush(s);
    io_uring_submit(&s->ring);
    pthread_barrier_wait(&s->broker->stop_barrier);
    xshard_drain(s, 0);
    uint64_t deadline = clock_now_ms() + SHARD_LINGER_MS;
    for (;;) {
        stream_flush(&s->streams);
        bufring_publish(&s->bufs);
        if (!s->hooks->lingering(s) || clock_now_ms() >= deadline)
            break;
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000L};
        struct io_uring_cqe *cqe;
        io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
        s->now_ms = clock_now_ms();
        dispatch_all(s);
    }
    while (s->hooks->writing(s)) {
        struct io_uring_cqe *cqe;
        if (io_uring_submit_and_wait(&s->ring, 1) < 0 && io_uring_peek_cqe(&s->ring, &cqe) < 0)
            break; /* the ring itself failed: nothing more will complete */
        s->now_ms = clock_now_ms();
        dispatch_all(s);
    }
}

/*
 * With a store, what start-up restored was sent to the other shards
 * (subscriptions' interest, retained messages): every shard takes all of it
 * before any serves, so that a publish in the first turn finds every
 * restored subscriber. Each sends what its rings take and drains its own
 * until every shard has sent everything (taking those messages sends
 * nothing), then drains once more.
 */
static void shard_settle(struct shard *s)
{
    struct broker *b = s->broker;
    bool sent = false;
    for (;;) {
        xshard_flush(s);
        xshard_drain(s, 0);
        bool left = false;
        for (uint32_t t = 0; t < b->nshards; t++)
            left |= s->overflow[t].len != 0;
        if (!left && !sent) {
            sent = true;
            atomic_fetch_sub(&b->settling, 1);
        }
        if (sent && atomic_load(&b->settling) == 0)
            break;
        sched_yield();
    }
    xshard_drain(s, 0);
}

void *shard_run(void *arg)
{
    struct shard *s = arg;
    char name[32];
    snprintf(name, sizeof(name), "shard %u", s->id);
    log_set_thread_name(name);
    char comm[16]; /* top -H, /proc/PID/task/TID/comm: 15 bytes at most */
    snprintf(comm, sizeof(comm), "ringmq-shard%u", s->id);
    pthread_setname_np(pthread_self(), comm);
    int pinned = affinity_pin_self(s->cpu);
    if (pinned < 0)
        log_warn("cannot pin to CPU %d: %s", s->cpu, strerror(-pinned));
    struct broker *b = s->broker;
    int ret = shard_init(s);
    if (ret < 0)
        b->start_failed = true;
    pthread_barrier_wait(&b->start_barrier); /* every shard initialised */
    pthread_barrier_wait(&b->start_barrier); /* main checked start_failed */
    if (!b->start_failed) {
        if (s->store)
            shard_settle(s);
        shard_loop(s);
        shard_quiesce(s);
    }
    shard_fini(s);
    return NULL;
}
