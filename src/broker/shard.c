/*
 * shard: the thread-per-core event loop, and the broker's start and stop.
 *
 * Each shard thread creates its own ring (so SINGLE_ISSUER holds), arms
 * SHARD_ACCEPTS single-shot accepts per listener, a periodic tick for the timing wheel and
 * a poll on its stop eventfd, then loops: submit and wait, dispatch
 * completions, drain the inbound SPSC rings, flush sends and cross-shard
 * slots (one MSG_RING wakeup per target per turn).
 */
#include "broker/broker.h"

#include <assert.h>
#include <errno.h>
#include <malloc.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include <xxhash.h>

#include "broker/acl.h"
#include "broker/conn.h"
#include "broker/msg.h"
#include "broker/observe.h"
#include "broker/protocol.h"
#include "broker/route.h"
#include "broker/session.h"
#include "broker/shard.h"
#include "core/affinity.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/vec.h"
#include "index/retain.h"
#include "index/trie.h"
#include "metrics/metrics.h"
#include "net/peer.h"
#include "plugin/host.h"

#define SHARD_SQ_ENTRIES  4096u
#define SHARD_XRING_SLOTS 1024u

/*
 * Back-pressure between shards: when a target shard stays behind, its
 * overflow queue here grows; above the high mark the target is congested
 * and every connection that publishes to it stops being read (its receive
 * ends and is not re-armed, so TCP pushes back on that publisher) until the
 * queue is below the low mark. Clients whose messages go elsewhere are read
 * as before: one shard's slow subscribers never stall the whole shard.
 */
#define SHARD_OVERFLOW_HIGH 8192u
#define SHARD_OVERFLOW_LOW  1024u
#define SHARD_TICK_MS       250u

static const struct __kernel_timespec tick_ts = {.tv_sec = 0, .tv_nsec = SHARD_TICK_MS * 1000000L};

uint32_t shard_home(const struct broker *b, uint16_t tenant, const uint8_t *id, size_t len)
{
    return (uint32_t)(XXH3_64bits_withSeed(id, len, tenant) % b->nshards);
}

/* Ask the setting provider for a tenant's settings (answered in
 * settings_done); nothing happens without a provider. */
static void settings_request(struct shard *s, struct tenant *t)
{
    if (s->port)
        plugin_settings(s->port, t->id, t->name);
}

struct tenant *shard_tenant(struct shard *s, uint16_t id)
{
    if (id >= TENANT_MAX)
        return NULL;
    if (s->tenants[id])
        return s->tenants[id];
    const char *name = tenant_dir_name(&s->broker->tenants, id);
    if (!name)
        return NULL;
    struct tenant *t = tenant_create(id, name, config_tenant_settings(s->cfg, name));
    if (!t)
        return NULL;
    /* Complete before it is visible to the metrics thread. */
    __atomic_store_n(&s->tenants[id], t, __ATOMIC_RELEASE);
    settings_request(s, t);
    return t;
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

/* ---- cross-shard messages ---- */

static int xqueue_push(struct xqueue *q, const struct xmsg *x)
{
    if (q->len == q->cap) {
        uint32_t cap = q->cap ? q->cap * 2 : 64;
        struct xmsg *v = malloc(cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        for (uint32_t i = 0; i < q->len; i++)
            v[i] = q->v[(q->head + i) & (q->cap - 1)];
        free(q->v);
        q->v = v;
        q->cap = cap;
        q->head = 0;
    }
    q->v[(q->head + q->len) & (q->cap - 1)] = *x;
    q->len++;
    return 0;
}

void shard_xmsg_discard(const struct xmsg *x)
{
    switch (x->type) {
    case XMSG_PUBLISH:
    case XMSG_RETAIN:
        msg_release(x->p);
        break;
    case XMSG_INTEREST_ADD:
    case XMSG_INTEREST_DEL:
        free(x->p);
        break;
    case XMSG_SHARE:
        msg_release(x->p);
        free((void *)(uintptr_t)x->token);
        break;
    default:
        break;
    }
}

void shard_xsend(struct shard *s, uint32_t target, const struct xmsg *x)
{
    struct xmsg copy = *x;
    copy.src = (uint8_t)s->id;
    struct xqueue *q = &s->overflow[target];
    if (q->len == 0) {
        struct xmsg *slot = spsc_reserve(s->out[target]);
        if (slot) {
            *slot = copy;
            s->wake_mask |= 1ull << target;
            return;
        }
    }
    /* A full ring never blocks the shard: keep the slot, in order. */
    if (!q->len)
        q->since_ms = s->now_ms;
    if (xqueue_push(q, &copy) < 0) {
        log_ratelimited(LOG_LEVEL_ERR, "out of memory queueing for shard %u", target);
        shard_xmsg_discard(&copy);
    }
    if (q->len > SHARD_OVERFLOW_HIGH && !(s->xcongested & (1ull << target))) {
        s->xcongested |= 1ull << target;
        log_ratelimited(LOG_LEVEL_WARN,
                        "shard %u is behind: pausing the clients that publish to it", target);
    }
    if (s->xcongested & (1ull << target))
        s->xhit = true;
}

static void xflush(struct shard *s)
{
    for (uint32_t t = 0; t < s->broker->nshards; t++) {
        struct xqueue *q = &s->overflow[t];
        while (q->len) {
            struct xmsg *slot = spsc_reserve(s->out[t]);
            if (!slot)
                break;
            *slot = q->v[q->head];
            q->head = (q->head + 1) & (q->cap - 1);
            q->len--;
            s->wake_mask |= 1ull << t;
        }
        if (!q->len && q->v) {
            free(q->v);
            q->v = NULL;
            q->cap = 0;
            q->head = 0;
        }
    }
    uint64_t mask = s->wake_mask;
    s->wake_mask = 0;
    while (mask) {
        uint32_t t = (uint32_t)__builtin_ctzll(mask);
        mask &= mask - 1;
        spsc_publish(s->out[t]);
        struct io_uring_sqe *sqe = shard_sqe(s);
        io_uring_prep_msg_ring(sqe, s->broker->shards[t]->ring_fd, 0, ud_make(UD_WAKE, NULL), 0);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(sqe, ud_make(UD_IGNORE, NULL));
    }
}

/* Whether any target has messages beyond its ring; a congested target
 * (shard_xsend) is released once its queue is below the low mark. */
static bool overflow_pending(struct shard *s)
{
    bool any = false;
    for (uint32_t t = 0; t < s->broker->nshards; t++) {
        uint32_t len = s->overflow[t].len;
        any |= len != 0;
        if (len < SHARD_OVERFLOW_LOW)
            s->xcongested &= ~(1ull << t);
    }
    return any;
}

/*
 * Handle up to `share` messages from each other shard's ring (0: all of
 * them); the rest waits for the next turn (s->inbound_left), so a turn of
 * a flood to a topic with many subscribers here is bounded and this
 * shard's own clients are served in between.
 */
#define SHARD_INBOUND_TURN 256u

static void drain_inbound(struct shard *s, uint32_t share)
{
    s->inbound_left = false;
    for (uint32_t i = 0; i < s->broker->nshards; i++) {
        struct spsc *r = s->in[i];
        if (!r)
            continue;
        uint32_t n = 0;
        struct xmsg *x;
        while ((!share || n < share) && (x = spsc_front(r))) {
            struct xmsg copy = *x;
            spsc_pop(r);
            n++;
            route_on_xmsg(s, &copy);
        }
        if (n)
            spsc_consumer_sync(r);
        if (share && n == share && spsc_front(r))
            s->inbound_left = true;
    }
}

/* ---- the loop ---- */

/* Arm accept slot `ai` (listener ai / SHARD_ACCEPTS) into a direct
 * descriptor the kernel picks. */
static void arm_accept(struct shard *s, uint32_t ai)
{
    struct accept_slot *a = &s->accepts[ai];
    a->len = sizeof(a->addr); /* in/out: the kernel writes the real length */
    struct io_uring_sqe *sqe = shard_sqe(s);
    /* liburing 2.3 stores file_index + 1 without the special case later
     * versions have, so IORING_FILE_INDEX_ALLOC itself would wrap to 0 and
     * make a normal descriptor; "- 1" (what its multishot variant passes)
     * means "allocate" with every version. */
    io_uring_prep_accept_direct(sqe, s->listen_fds[ai / SHARD_ACCEPTS], (struct sockaddr *)&a->addr,
                                &a->len, 0, IORING_FILE_INDEX_ALLOC - 1);
    io_uring_sqe_set_data64(sqe, ud_make(UD_ACCEPT, (void *)(uintptr_t)(ai << 4)));
}

static void on_accept(struct shard *s, uint32_t ai, int res)
{
    uint32_t li = ai / SHARD_ACCEPTS;
    if (res >= 0) {
        struct accept_slot *a = &s->accepts[ai];
        struct net_peer peer;
        /* Unknown address (not expected from TCP): serve the client anyway,
         * the plugins see no address. */
        net_peer_from_sockaddr(&peer, (struct sockaddr *)&a->addr, a->len);
        conn_accepted(s, (uint32_t)res, (uint8_t)li, &peer);
    } else if (res != -ECANCELED) {
        /* ENFILE (direct descriptor table full), EMFILE, ENOBUFS and the
         * like: that connection is lost, the next may fit. */
        log_ratelimited(LOG_LEVEL_WARN, "accept on %s: %s", s->cfg->listeners[li].name,
                        strerror(-res));
    }
    /* The slot is free again: keep SHARD_ACCEPTS armed until shutdown. */
    if (!s->stopping)
        arm_accept(s, ai);
}

static void arm_tick(struct shard *s)
{
    struct io_uring_sqe *sqe = shard_sqe(s);
    io_uring_prep_timeout(sqe, (struct __kernel_timespec *)&tick_ts, 0, 0);
    io_uring_sqe_set_data64(sqe, ud_make(UD_TICK, NULL));
}

/* Per-second quotas count in seconds of now_ms (observe.c): messages held
 * back for the outbound quota may go once the next one begins. A relative
 * timeout, since now_ms is CLOCK_MONOTONIC_COARSE, plus a margin for that
 * clock's resolution (a jiffy), so that now_ms has moved on when it fires. */
#define QUOTA_MARGIN_MS 10u

static void arm_quota(struct shard *s)
{
    uint64_t wait = 1000u - s->now_ms % 1000u + QUOTA_MARGIN_MS;
    s->quota_ts.tv_sec = (long long)(wait / 1000u);
    s->quota_ts.tv_nsec = (long long)(wait % 1000u) * 1000000LL;
    struct io_uring_sqe *sqe = shard_sqe(s);
    io_uring_prep_timeout(sqe, &s->quota_ts, 0, 0);
    io_uring_sqe_set_data64(sqe, ud_make(UD_QUOTA, NULL));
    s->quota_timer = true;
}

/* plugin_port's wake: any thread. */
static void plugin_wake(void *arg)
{
    struct shard *s = arg;
    uint64_t one = 1;
    if (write(s->plugin_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_ratelimited(LOG_LEVEL_ERR, "cannot wake shard %u: %s", s->id, strerror(errno));
}

static void arm_plugin(struct shard *s)
{
    struct io_uring_sqe *sqe = shard_sqe(s);
    io_uring_prep_read(sqe, s->plugin_fd, &s->plugin_val, sizeof(s->plugin_val), 0);
    io_uring_sqe_set_data64(sqe, ud_make(UD_PLUGIN, NULL));
}

/* The provider's values over the tenant's configured settings. Values the
 * broker cannot parse are logged and the tenant keeps what it had. */
static void settings_done(struct shard *s, const struct plugin_done *d)
{
    struct tenant *t = d->cookie < TENANT_MAX ? s->tenants[d->cookie] : NULL;
    const struct ringmq_settings_result *r = &d->r.settings;
    if (!t || !r->found || d->timed_out)
        return;
    struct tenant_settings *set = malloc(sizeof(*set));
    if (!set)
        return;
    *set = *config_tenant_settings(s->cfg, t->name);
    char why[200];
    for (size_t i = 0; i < r->n_settings; i++) {
        if (config_tenant_apply(set, r->settings[i].key, r->settings[i].value, why, sizeof(why)) <
            0) {
            log_ratelimited(LOG_LEVEL_WARN, "tenant %s: setting provider: %s", t->name, why);
            free(set);
            return;
        }
    }
    /* Readers take t->set afresh for each packet on this thread: the old
     * copy can go now. */
    free(t->own_set);
    t->own_set = set;
    t->set = set;
}

/* Every SETTINGS_REFRESH_MS each shard asks again for its tenants. */
#define SETTINGS_REFRESH_MS 30000u

static void settings_refresh(struct shard *s)
{
    if (!s->port || s->now_ms < s->settings_next_ms)
        return;
    s->settings_next_ms = s->now_ms + SETTINGS_REFRESH_MS;
    for (uint32_t i = 0; i < TENANT_MAX; i++)
        if (s->tenants[i])
            settings_request(s, s->tenants[i]);
}

/* Answers of the plugins (and calls they did not answer in time). */
static void plugin_poll(struct shard *s)
{
    struct plugin_done *d = plugin_port_poll(s->port, s->now_ms);
    while (d) {
        struct plugin_done *next = d->next;
        if (d->kind == PLUGIN_DONE_AUTH)
            conn_on_auth_done(s, (struct conn *)(uintptr_t)d->cookie, d);
        else if (d->kind == PLUGIN_DONE_CHECK)
            acl_on_done(s, (struct conn *)(uintptr_t)d->cookie, d);
        else if (d->kind == PLUGIN_DONE_SETTINGS)
            settings_done(s, d);
        plugin_done_free(d);
        d = next;
    }
}

static void arm_stop(struct shard *s)
{
    struct io_uring_sqe *sqe = shard_sqe(s);
    io_uring_prep_read(sqe, s->stop_fd, &s->stop_val, sizeof(s->stop_val), 0);
    io_uring_sqe_set_data64(sqe, ud_make(UD_STOP, NULL));
}

/*
 * Output buffers of clients that did not keep up (up to max_client_output
 * each) are freed when they catch up or leave; below the mmap threshold
 * they came from this thread's malloc arena, which gives pages back only
 * from its top. After a burst (SHARD_TRIM_AFTER bytes freed) the tick asks
 * malloc to return every free page, so the broker does not stay at its
 * peak size (issue 10: 1.2 GB stayed resident after 1000 slow subscribers
 * left).
 */
#define SHARD_TRIM_AFTER (16u << 20)

static void trim_freed_output(struct shard *s)
{
    if (s->streams.out_freed < SHARD_TRIM_AFTER)
        return;
    s->streams.out_freed = 0;
    malloc_trim(0);
}

/* The connections' streams: on this ring, every listener tcp. */
static void streams_init(struct shard *s)
{
    struct stream_loop *l = &s->streams;
    l->ring = &s->ring;
    l->bufs = &s->bufs;
    l->ev = &conn_stream_events;
    for (uint32_t i = 0; i < STREAM_MAX_LISTENERS; i++)
        l->xprt[i] = &transport_tcp;
    l->tags = (struct stream_tags){
        .recv = UD_RECV, .send = UD_SEND, .close = UD_CLOSE, .ignore = UD_IGNORE};
    l->owner_size = sizeof(struct conn);
}

static void dispatch(struct shard *s, struct io_uring_cqe *cqe)
{
    uint64_t ud = cqe->user_data;
    int res = cqe->res;
    switch (ud_tag(ud)) {
    case UD_ACCEPT:
        on_accept(s, (uint32_t)(ud >> 4), res);
        break;
    case UD_RECV:
        stream_on_recv(&s->streams, ud_ptr(ud), res, cqe->flags);
        break;
    case UD_SEND:
        stream_on_send(&s->streams, ud_ptr(ud), res);
        break;
    case UD_CLOSE:
        stream_on_close(&s->streams, ud_ptr(ud), res);
        break;
    case UD_FDSENT:
        conn_on_fdsent(s, ud_ptr(ud), res);
        break;
    case UD_HANDOVER:
        conn_adopt(s, (uint32_t)res, ud_ptr(ud));
        break;
    case UD_TICK:
        wheel_advance(s->wheel, s->now_ms, conn_on_timer, s);
        wheel_advance(s->session_wheel, s->now_ms, session_on_timer, s);
        if (s->port)
            plugin_poll(s); /* calls past their deadline */
        observe_sys_tick(s);
        settings_refresh(s);
        route_retain_gc(s);
        session_drain_throttled(s);
        trim_freed_output(s);
        arm_tick(s);
        break;
    case UD_QUOTA:
        s->quota_timer = false;
        session_drain_throttled(s); /* the shard loop re-arms if some are left */
        break;
    case UD_STOP:
        s->stopping = true;
        break;
    case UD_PLUGIN:
        if (s->port) {
            plugin_poll(s);
            arm_plugin(s);
        }
        break;
    case UD_WAKE:
    case UD_IGNORE:
        break;
    }
}

/* Submit this turn's requests and wait for completions: not at all while
 * work is left for the next turn (deferred input, inbound messages beyond
 * a turn's share), at most 1 ms while a target shard is behind (its queue
 * here must be retried), else until one arrives. */
static void submit_and_wait(struct shard *s)
{
    bool work_left = s->ndeferred || s->inbound_left;
    bool behind = overflow_pending(s);
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
        if (s->nthrottled && !s->quota_timer)
            arm_quota(s);
        route_replay_pump(s);
        conn_flush_all(s);
        xflush(s);
        bufring_publish(&s->bufs);
        s->turn++;
        submit_and_wait(s);
        s->now_ms = clock_now_ms();
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;
        io_uring_for_each_cqe(&s->ring, head, cqe)
        {
            dispatch(s, cqe);
            n++;
        }
        io_uring_cq_advance(&s->ring, n);
        drain_inbound(s, SHARD_INBOUND_TURN);
    }
}

/* ---- start-up and shutdown of one shard ---- */

static int shard_init(struct shard *s)
{
    struct rlimit rl;
    unsigned nfiles = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        nfiles = (unsigned)rl.rlim_cur;
    if (nfiles > (1u << 20))
        nfiles = 1u << 20;
    int ret = uring_init(&s->ring, SHARD_SQ_ENTRIES, nfiles, &s->ring_mode);
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
    s->now_ms = clock_now_ms();
    streams_init(s);
    s->conn_slab = slab_create(sizeof(struct conn), 0);
    s->session_slab = slab_create(sizeof(struct session), 0);
    s->wheel = wheel_create(SHARD_TICK_MS, 1024, s->now_ms);
    s->session_wheel = wheel_create(1000, 4096, s->now_ms);
    if (!s->conn_slab || !s->session_slab || !s->wheel || !s->session_wheel || route_init(s) < 0 ||
        !shard_tenant(s, 0)) {
        log_err("out of memory starting shard %u", s->id);
        return -ENOMEM;
    }
    if (s->broker->plugins) {
        s->port = plugin_port_create(s->broker->plugins, plugin_wake, s);
        if (!s->port) {
            log_err("out of memory starting shard %u", s->id);
            return -ENOMEM;
        }
        arm_plugin(s);
    }
    s->accepts = calloc((size_t)s->cfg->nlisteners * SHARD_ACCEPTS + 1, sizeof(*s->accepts));
    if (!s->accepts) {
        log_err("out of memory starting shard %u", s->id);
        return -ENOMEM;
    }
    for (uint32_t ai = 0; ai < s->cfg->nlisteners * SHARD_ACCEPTS; ai++)
        arm_accept(s, ai);
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
    free(s->accepts);
    s->accepts = NULL;
    /* Calls still pending are abandoned; the ops they held on connections
     * no longer matter since every connection is freed below. */
    plugin_port_destroy(s->port);
    s->port = NULL;
    if (s->conn_slab)
        conn_free_all(s);
    assert(s->streams.out_bytes == 0); /* every byte queued was sent or freed with its connection */
    for (uint32_t i = 0; s->tenants && i < TENANT_MAX; i++) {
        struct tenant *t = s->tenants[i];
        if (!t)
            continue;
        if (s->session_slab)
            session_destroy_all(s, t);
        route_tenant_fini(s, t);
    }
    route_fini(s);
    /* The tenant structs stay until broker_free: the metrics thread may be
     * reading them until it is stopped. */
    protocol_free_pending(s);
    /* Slots reserved during the shutdown become visible to the final drain
     * (broker_free), which releases what they hold. */
    for (uint32_t t = 0; t < s->broker->nshards; t++)
        if (s->out[t])
            spsc_publish(s->out[t]);
    for (uint32_t t = 0; t < CONFIG_MAX_SHARDS; t++) {
        struct xqueue *q = &s->overflow[t];
        for (uint32_t i = 0; i < q->len; i++)
            shard_xmsg_discard(&q->v[(q->head + i) & (q->cap - 1)]);
        free(q->v);
        memset(q, 0, sizeof(*q));
    }
    free(s->throttled);
    s->throttled = NULL;
    free(s->share_scratch);
    s->share_scratch = NULL;
    wheel_destroy(s->wheel);
    wheel_destroy(s->session_wheel);
    slab_destroy(s->conn_slab);
    slab_destroy(s->session_slab);
}

/*
 * Clean shutdown, phase by phase: publish the wills (when configured), wait
 * until every shard has, deliver what arrived from other shards, and give
 * queued output up to SHARD_LINGER_MS to reach the clients.
 */
#define SHARD_LINGER_MS 1000u

static void shard_quiesce(struct shard *s)
{
    conn_shutdown_notice(s);
    conn_flush_all(s);
    xflush(s);
    io_uring_submit(&s->ring);
    pthread_barrier_wait(&s->broker->stop_barrier);
    drain_inbound(s, 0);
    uint64_t deadline = clock_now_ms() + SHARD_LINGER_MS;
    for (;;) {
        conn_flush_all(s);
        bufring_publish(&s->bufs);
        if (!conn_any_sending(s) || clock_now_ms() >= deadline)
            break;
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000L};
        struct io_uring_cqe *cqe;
        io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
        s->now_ms = clock_now_ms();
        unsigned head, n = 0;
        io_uring_for_each_cqe(&s->ring, head, cqe)
        {
            dispatch(s, cqe);
            n++;
        }
        io_uring_cq_advance(&s->ring, n);
    }
}

static void *shard_thread(void *arg)
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
        shard_loop(s);
        shard_quiesce(s);
    }
    shard_fini(s);
    return NULL;
}

/* ---- the broker ---- */

static void broker_free(struct broker *b)
{
    for (uint32_t i = 0; i < b->nshards; i++) {
        struct shard *s = b->shards[i];
        if (!s)
            continue;
        for (uint32_t j = 0; j < b->nshards; j++) {
            struct spsc *r = s->in[j];
            if (!r)
                continue;
            struct xmsg *x;
            while ((x = spsc_front(r))) {
                shard_xmsg_discard(x);
                spsc_pop(r);
            }
            spsc_destroy(r);
        }
        for (uint32_t li = 0; li < CONFIG_MAX_LISTENERS; li++)
            if (s->listen_fds[li] > 0)
                close(s->listen_fds[li]);
        if (s->stop_fd > 0)
            close(s->stop_fd);
        if (s->plugin_fd > 0)
            close(s->plugin_fd);
        for (uint32_t t = 0; s->tenants && t < TENANT_MAX; t++)
            tenant_destroy(s->tenants[t]);
        free(s->tenants);
        free(s);
    }
    free(b->shards);
    free(b->cpus);
    tenant_dir_fini(&b->tenants);
    free(b);
}

static int open_listeners(struct broker *b)
{
    const struct config *cfg = b->cfg;
    /* Every fixed port first, before any of ours listens: two of our own
     * listeners may share a port on different addresses (0.0.0.0 and
     * 127.0.0.1), which a probe after the first had opened would refuse. */
    for (uint32_t li = 0; li < cfg->nlisteners; li++) {
        const struct config_listener *l = &cfg->listeners[li];
        int ret = l->port ? listener_probe(l->bind, l->port) : 0;
        if (ret < 0) {
            log_err("listener %s: cannot listen on %s:%u: %s%s", l->name, l->bind, l->port,
                    strerror(-ret), ret == -EADDRINUSE ? " (another process listens there)" : "");
            return ret;
        }
    }
    for (uint32_t li = 0; li < cfg->nlisteners; li++) {
        const struct config_listener *l = &cfg->listeners[li];
        uint16_t port = l->port;
        for (uint32_t i = 0; i < b->nshards; i++) {
            uint16_t bound = 0;
            int fd = listener_open(l->bind, port, (int)l->backlog, (int)l->send_buffer, &bound);
            if (fd < 0) {
                log_err("listener %s: cannot listen on %s:%u: %s", l->name, l->bind, port,
                        strerror(-fd));
                return fd;
            }
            b->shards[i]->listen_fds[li] = fd;
            port = bound; /* port 0: every shard binds the port the first got */
        }
        b->ports[li] = port;
    }
    return 0;
}

/*
 * How many shards (`auto`: one per CPU this process may run on, so a
 * cpuset or taskset of 4 CPUs gets 4, not one per CPU of the host) and on
 * which CPUs (core/affinity.h). Allocates b->shards and b->cpus.
 */
static int plan_shards(struct broker *b)
{
    struct cpu_bits allowed;
    unsigned online;
    char why[256];
    int ret = affinity_read_process(&allowed, &online);
    if (ret < 0) {
        log_err("cannot read the CPUs this process may use: %s", strerror(-ret));
        return ret;
    }
    uint32_t n = b->cfg->shards;
    if (n == 0) {
        n = cpu_bits_count(&allowed);
        n = n > 0 ? n : 1;
        n = n < CONFIG_MAX_SHARDS ? n : CONFIG_MAX_SHARDS;
    }
    b->shards = calloc(n, sizeof(*b->shards));
    b->cpus = calloc(n, sizeof(*b->cpus));
    if (!b->shards || !b->cpus)
        return -ENOMEM;
    b->nshards = n; /* broker_free walks b->shards[0..nshards) */
    ret = affinity_plan(&b->cfg->cpu_affinity, &allowed, online, b->nshards, b->cpus, why,
                        sizeof(why));
    if (ret < 0) {
        log_err("[server] cpu_affinity: %s", why);
        return ret;
    }
    log_info("%s", why);
    return 0;
}

/* One shard's state before its thread starts; 0 or -errno. */
static int shard_create(struct broker *b, uint32_t i)
{
    const struct config *cfg = b->cfg;
    struct shard *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    b->shards[i] = s;
    s->id = i;
    s->cpu = b->cpus[i];
    s->broker = b;
    s->cfg = cfg;
    s->slow_budget = cfg->max_slow_output_total / b->nshards;
    s->pending_tail = &s->pending;
    /* SO_REUSEPORT spreads accepts evenly: an even share each. */
    s->pending_max = (cfg->max_pending_connections + b->nshards - 1) / b->nshards;
    s->tenants = calloc(TENANT_MAX, sizeof(*s->tenants));
    if (!s->tenants)
        return -ENOMEM;
    s->stop_fd = eventfd(0, EFD_CLOEXEC);
    s->plugin_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->stop_fd < 0 || s->plugin_fd < 0) {
        log_err("cannot create an eventfd: %s", strerror(errno));
        return -errno;
    }
    return 0;
}

/* The SPSC ring of every ordered pair of shards: in[j] of shard i carries
 * j -> i. 0 or -ENOMEM. */
static int rings_create(struct broker *b)
{
    for (uint32_t i = 0; i < b->nshards; i++) {
        for (uint32_t j = 0; j < b->nshards; j++) {
            if (i == j)
                continue;
            struct spsc *r = spsc_create(sizeof(struct xmsg), SHARD_XRING_SLOTS);
            if (!r)
                return -ENOMEM;
            b->shards[i]->in[j] = r;
            b->shards[j]->out[i] = r;
        }
    }
    return 0;
}

/* Start the shard threads and wait until each has initialised; -EIO (the
 * threads joined) when one failed to. */
static int threads_start(struct broker *b)
{
    pthread_barrier_init(&b->start_barrier, NULL, b->nshards + 1);
    pthread_barrier_init(&b->stop_barrier, NULL, b->nshards);
    for (uint32_t i = 0; i < b->nshards; i++) {
        int ret = pthread_create(&b->shards[i]->thread, NULL, shard_thread, b->shards[i]);
        if (ret != 0) {
            /* Cannot run the barrier with fewer threads: fatal at start-up. */
            log_err("cannot start shard threads: %s", strerror(ret));
            exit(1);
        }
    }
    pthread_barrier_wait(&b->start_barrier);
    bool failed = b->start_failed;
    pthread_barrier_wait(&b->start_barrier);
    if (!failed)
        return 0;
    for (uint32_t i = 0; i < b->nshards; i++)
        pthread_join(b->shards[i]->thread, NULL);
    pthread_barrier_destroy(&b->start_barrier);
    pthread_barrier_destroy(&b->stop_barrier);
    return -EIO;
}

/* The metrics endpoint (when enabled) and the start-up log lines; -EIO
 * when the endpoint cannot start (the broker is then stopped). */
static int announce(struct broker *b)
{
    const struct config *cfg = b->cfg;
    if (cfg->metrics_enabled) {
        char err[256];
        uint16_t port = 0;
        b->metrics = metrics_server_start(cfg->metrics_bind, cfg->metrics_port, observe_collect, b,
                                          &port, err, sizeof(err));
        if (!b->metrics) {
            log_err("%s", err); /* the message starts with "metrics: " */
            return -EIO;
        }
        log_info("metrics on http://%s:%u/metrics", cfg->metrics_bind, port);
    }
    log_info("%u shard%s running", b->nshards, b->nshards == 1 ? "" : "s");
    for (uint32_t li = 0; li < cfg->nlisteners; li++) {
        const char *bind = cfg->listeners[li].bind;
        bool v6 = strchr(bind, ':') != NULL;
        log_info("listening on %s%s%s:%u", v6 ? "[" : "", bind, v6 ? "]" : "", b->ports[li]);
    }
    return 0;
}

int broker_start(const struct config *cfg, struct plugin_host *plugins, struct broker **out)
{
    struct broker *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->cfg = cfg;
    b->plugins = plugins;
    if (tenant_dir_init(&b->tenants) < 0) {
        tenant_dir_fini(&b->tenants);
        free(b);
        return -ENOMEM;
    }
    int ret = plan_shards(b);
    for (uint32_t i = 0; ret == 0 && i < b->nshards; i++)
        ret = shard_create(b, i);
    if (ret == 0)
        ret = rings_create(b);
    if (ret == 0)
        ret = open_listeners(b);
    if (ret == 0)
        ret = threads_start(b);
    if (ret < 0) {
        broker_free(b);
        return ret;
    }
    b->started_ms = clock_now_ms();
    if (announce(b) < 0) {
        broker_stop(b);
        return -EIO;
    }
    *out = b;
    return 0;
}

void broker_stop(struct broker *b)
{
    metrics_server_stop(b->metrics); /* no reader of shard counters after this */
    b->metrics = NULL;
    for (uint32_t i = 0; i < b->nshards; i++) {
        uint64_t one = 1;
        if (write(b->shards[i]->stop_fd, &one, sizeof(one)) < 0)
            log_err("cannot signal shard %u: %s", i, strerror(errno));
    }
    for (uint32_t i = 0; i < b->nshards; i++)
        pthread_join(b->shards[i]->thread, NULL);
    pthread_barrier_destroy(&b->start_barrier);
    pthread_barrier_destroy(&b->stop_barrier);
    broker_free(b);
}
