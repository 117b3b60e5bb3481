/*
 * serve: what the broker does on each shard, as the shard's hooks
 * (shard/shard.h): the connections' streams, the completions of its own
 * requests (moved descriptors, plugin answers, the quota timer), each
 * turn's and each tick's work, cross-shard messages, and the shard's
 * tenants with their settings from a setting provider.
 */
#include "broker/shard.h"

#include <assert.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/acl.h"
#include "broker/conn.h"
#include "broker/control.h"
#include "broker/ingress.h"
#include "broker/observe.h"
#include "broker/protocol.h"
#include "broker/route.h"
#include "broker/session_ops.h"
#include "core/log.h"
#include "core/slab.h"
#include "core/wheel.h"
#include "plugin/host.h"
#include "session/msg.h"
#include "session/session.h"
#include "session/store.h"

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
    char why[200];
    if (tenant_settings_apply(t, config_tenant_settings(s->cfg, t->name), r->settings,
                              r->n_settings, why, sizeof(why)) == -EINVAL)
        log_ratelimited(LOG_LEVEL_WARN, "tenant %s: setting provider: %s", t->name, why);
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

/*
 * Output buffers of clients that did not keep up (up to max_client_output
 * each) are freed when they catch up or leave; they came from this
 * thread's malloc arena, which gives pages back only from its top. After a
 * burst (SHARD_TRIM_AFTER bytes freed, and the output still queued down to
 * a quarter of its peak since the last trim) the tick asks malloc to
 * return every free page, so the broker does not stay at its peak size
 * (issue 10: 1.2 GB stayed resident after 1000 slow subscribers left).
 * Not while the burst lasts: a trim then only makes the next buffers
 * fault their pages in again.
 */
#define SHARD_TRIM_AFTER (16u << 20)

static void trim_freed_output(struct shard *s)
{
    if (s->streams.out_bytes > s->out_peak)
        s->out_peak = s->streams.out_bytes;
    if (s->streams.out_freed < SHARD_TRIM_AFTER || s->streams.out_bytes > s->out_peak / 4)
        return;
    s->streams.out_freed = 0;
    s->out_peak = s->streams.out_bytes;
    malloc_trim(0);
}

/* ---- the store (session/store.h) ---- */

/* Start-up: a session the store kept, registered offline here. */
static int restore_session(struct shard *s, uint16_t tenant, struct session_state *st)
{
    struct tenant *t = shard_tenant(s, tenant);
    if (!t)
        return -ENOMEM;
    int rc = session_restore(s, t, st);
    if (rc == -EEXIST)
        log_err("store: session %.*s of tenant %s kept twice", (int)st->client_id_len,
                (const char *)st->client_id, t->name);
    return rc;
}

/* Start-up: a retained message the store kept, here and on every shard. */
static int restore_retained(struct shard *s, uint16_t tenant, struct msg *m)
{
    struct tenant *t = shard_tenant(s, tenant);
    if (!t) {
        msg_release(m);
        return -ENOMEM;
    }
    return route_retain_restore(s, t, m);
}

static const struct store_sink restore_sink = {restore_session, restore_retained, ingress_restore};

static void on_store(struct shard *s, const struct io_uring_cqe *cqe)
{
    if (s->store && s->store->complete)
        s->store->complete(s->store_ctx, s, cqe);
}

/* The shard's ring exists: the connections' streams, slabs, timers, routing state, the global
 * tenant, and the plugin port. */
static int serve_start(struct shard *s)
{
    struct stream_loop *l = &s->streams;
    l->ev = &conn_stream_events;
    /* Each listener's transport and PROXY setting are set as the shard
     * starts accepting on it (shard_listeners_sync). */
    for (uint32_t i = 0; i < STREAM_MAX_LISTENERS; i++) {
        l->xprt[i] = &transport_tcp;
        l->xprt_ctx[i] = NULL;
        l->proxy[i] = NULL;
    }
    l->owner_size = sizeof(struct conn);
    /* A transport's per-stream state goes after the connection
     * (stream_state): room for the largest of the listeners' at start (a
     * reload may add only listeners whose state fits, listeners.c). */
    size_t xstate = s->broker->xstate;
    s->conn_slab = slab_create(sizeof(struct conn) + xstate, 0);
    s->session_slab = slab_create(sizeof(struct session), 0);
    s->session_ops = &broker_session_ops;
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
    control_arm(s); /* the admin API's requests (nothing without [admin]) */
    int rc = store_load(s, &restore_sink);
    if (rc < 0)
        log_err("shard %u: the store could not be loaded: %s", s->id, strerror(-rc));
    return rc;
}

static void serve_turn(struct shard *s)
{
    if (s->nthrottled && !s->quota_timer)
        arm_quota(s);
    route_replay_pump(s);
    if (s->store && s->store->turn)
        s->store->turn(s->store_ctx, s); /* last: the turn's records are all in */
}

/* A reload put another configuration in force (broker_reload_config):
 * take it, with what the shard derived from it, and the tenants' settings
 * (a setting provider is asked again, its values over the new file's). */
static void config_take(struct shard *s)
{
    unsigned gen = atomic_load_explicit(&s->broker->cfg_gen, memory_order_acquire);
    if (gen == s->cfg_gen)
        return;
    s->cfg_gen = gen;
    const struct config *cfg = atomic_load_explicit(&s->broker->cfg_live, memory_order_acquire);
    uint32_t n = s->broker->nshards;
    s->cfg = cfg;
    s->slow_budget = cfg->max_slow_output_total / n;
    s->pending_max = (cfg->max_pending_connections + n - 1) / n;
    for (uint32_t i = 0; i < TENANT_MAX; i++) {
        struct tenant *t = s->tenants[i];
        if (!t)
            continue;
        if (!t->own_set)
            t->set = config_tenant_settings(cfg, t->name);
        settings_request(s, t);
    }
}

static void serve_tick(struct shard *s)
{
    config_take(s);
    wheel_advance(s->wheel, s->now_ms, conn_on_timer, s);
    wheel_advance(s->session_wheel, s->now_ms, session_on_timer, s);
    if (s->port)
        plugin_poll(s); /* calls past their deadline */
    observe_sys_tick(s);
    settings_refresh(s);
    route_retain_gc(s);
    ingress_gc(s);
    session_drain_throttled(s);
    trim_freed_output(s);
    if (s->store && s->store->tick)
        s->store->tick(s->store_ctx, s);
}

static void on_fdsent(struct shard *s, const struct io_uring_cqe *cqe)
{
    conn_on_fdsent(s, ud_ptr(cqe->user_data), cqe->res);
}

static void on_handover(struct shard *s, const struct io_uring_cqe *cqe)
{
    conn_adopt(s, (uint32_t)cqe->res, ud_ptr(cqe->user_data));
}

static void on_plugin(struct shard *s, const struct io_uring_cqe *cqe)
{
    (void)cqe;
    if (s->port) {
        plugin_poll(s);
        arm_plugin(s);
    }
}

static void on_quota(struct shard *s, const struct io_uring_cqe *cqe)
{
    (void)cqe;
    s->quota_timer = false;
    session_drain_throttled(s); /* serve_turn re-arms if some are left */
}

static void serve_quiesce(struct shard *s)
{
    conn_shutdown_notice(s);
    if (s->store && s->store->turn)
        s->store->turn(s->store_ctx, s); /* what the last turns recorded goes to disk */
}

static bool serve_writing(const struct shard *s)
{
    return s->store && s->store->writing && s->store->writing(s->store_ctx);
}

static bool serve_lingering(const struct shard *s)
{
    return conn_any_sending(s) || serve_writing(s);
}

/* The ring is gone: free connections, sessions, each tenant's index and
 * retained replica, routing state and the rest (whatever serve_start got
 * to create). The tenant structs stay until broker_stop: the metrics
 * thread may be reading them until it is stopped. */
static void serve_stop(struct shard *s)
{
    if (s->store && s->store->stop)
        s->store->stop(s->store_ctx, s); /* before the sessions are freed */
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
    ingress_fini(s);
    protocol_free_pending(s);
    free(s->throttled);
    s->throttled = NULL;
    free(s->share_scratch);
    s->share_scratch = NULL;
    wheel_destroy(s->wheel);
    wheel_destroy(s->session_wheel);
    slab_destroy(s->conn_slab);
    slab_destroy(s->session_slab);
    uint32_t n = atomic_load_explicit(&s->broker->nslots, memory_order_acquire);
    for (uint32_t i = 0; i < n; i++)
        if (s->broker->lslots[i].xprt.kind->thread_fini)
            s->broker->lslots[i].xprt.kind->thread_fini(); /* the library's per-thread caches */
}

const struct shard_hooks serve_hooks = {
    .on_cqe =
        {
            [UD_FDSENT] = on_fdsent,
            [UD_HANDOVER] = on_handover,
            [UD_PLUGIN] = on_plugin,
            [UD_QUOTA] = on_quota,
            [UD_ADMIN] = control_on_cqe,
            [UD_STORE] = on_store,
        },
    .start = serve_start,
    .accepted = conn_accepted,
    .turn = serve_turn,
    .tick = serve_tick,
    .xmsg = route_on_xmsg,
    .xdiscard = shard_xmsg_discard,
    .quiesce = serve_quiesce,
    .lingering = serve_lingering,
    .writing = serve_writing,
    .stop = serve_stop,
};
