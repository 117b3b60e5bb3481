/*
 * broker: start and stop. Plans the shards and their CPUs, opens every
 * listener (one SO_REUSEPORT socket per shard, broker/listeners.c), creates the cross-shard
 * rings, starts the shard threads (shard_run with the broker's hooks,
 * serve.c) and waits at the start barrier until each is ready; stops them
 * and frees everything.
 */
#include "broker/broker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "admin/admin.h"
#include "broker/control.h"
#include "broker/listeners.h"
#include "broker/observe.h"
#include "broker/shard.h"
#include "core/affinity.h"
#include "core/clock.h"
#include "core/log.h"
#include "session/store.h"
#include "core/spsc.h"
#include "metrics/metrics.h"

#define SHARD_XRING_SLOTS 1024u

static void broker_free(struct broker *b)
{
    control_fini(b); /* a request left in a shard's slot, the eventfds */
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
                serve_hooks.xdiscard(x);
                spsc_pop(r);
            }
            spsc_destroy(r);
        }
        if (s->stop_fd > 0)
            close(s->stop_fd);
        if (s->plugin_fd > 0)
            close(s->plugin_fd);
        for (uint32_t t = 0; s->tenants && t < TENANT_MAX; t++)
            tenant_destroy(s->tenants[t]);
        free(s->tenants);
    }
    listeners_fini(b); /* the sockets shards left, before b->shards goes */
    for (uint32_t i = 0; i < b->nshards; i++)
        free(b->shards[i]);
    free(b->shards);
    free(b->cpus);
    tenant_dir_fini(&b->tenants);
    free(b);
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
    b->tenant_shards.n = n;
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
    s->hooks = b->hooks;
    s->slow_budget = cfg->max_slow_output_total / b->nshards;
    s->pending_tail = &s->pending;
    /* SO_REUSEPORT spreads accepts evenly: an even share each. */
    s->pending_max = (cfg->max_pending_connections + b->nshards - 1) / b->nshards;
    s->tenants = calloc(TENANT_MAX, sizeof(*s->tenants));
    if (!s->tenants)
        return -ENOMEM;
    b->tenant_shards.tables[i] = s->tenants;
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
        int ret = pthread_create(&b->shards[i]->thread, NULL, shard_run, b->shards[i]);
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

/* The admin API (when enabled); -EIO when it cannot start. */
static int announce_admin(struct broker *b)
{
    const struct config *cfg = b->cfg;
    if (!cfg->admin_enabled)
        return 0;
    char err[512];
    uint16_t port = 0;
    b->admin = admin_server_start(cfg, &control_admin_ops, b, &port, err, sizeof(err));
    if (!b->admin) {
        log_err("%s", err);
        return -EIO;
    }
    bool v6 = strchr(cfg->admin_bind, ':') != NULL;
    log_info("admin API on %s://%s%s%s:%u/api/v1/%s%s", cfg->admin_tls_cert[0] ? "https" : "http",
             v6 ? "[" : "", cfg->admin_bind, v6 ? "]" : "", port,
             cfg->admin_tls_client_ca[0] ? " (client certificates required)" : "",
             cfg->admin_token_file[0] ? "" : " (no token_file: every local caller is an admin)");
    return 0;
}

/* The metrics endpoint and the admin API (when enabled) and the start-up
 * log lines; -EIO when an endpoint cannot start (the broker is then
 * stopped). */
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
    if (announce_admin(b) < 0)
        return -EIO;
    log_info("%u shard%s running", b->nshards, b->nshards == 1 ? "" : "s");
    listeners_announce(b);
    return 0;
}

/* Each shard's store context (none without a store). 0 or -ENOMEM. */
static int stores_create(struct broker *b, const struct store_provider *store)
{
    atomic_store(&b->settling, b->nshards);
    for (uint32_t i = 0; store && i < b->nshards; i++) {
        struct shard *s = b->shards[i];
        s->store_ctx = store->shard_ctx(store->arg, i, b->nshards);
        if (!s->store_ctx)
            return -ENOMEM;
        s->store = store->ops;
    }
    return 0;
}

int broker_start(const struct config *cfg, struct plugin_host *plugins,
                 const struct store_provider *store, struct broker **out)
{
    struct broker *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->cfg = cfg;
    b->hooks = &serve_hooks;
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
        ret = stores_create(b, store);
    if (ret == 0)
        ret = rings_create(b);
    if (ret == 0)
        ret = control_init(b);
    if (ret == 0)
        ret = listeners_open(b);
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

int broker_reload_config(struct broker *b, const struct config *next, char *err, size_t errlen)
{
    int ret = listeners_reload(b, next, err, errlen);
    if (ret < 0)
        return ret;
    atomic_store_explicit(&b->cfg_live, next, memory_order_release);
    atomic_fetch_add_explicit(&b->cfg_gen, 1, memory_order_release);
    return 0;
}

void broker_set_reload(struct broker *b, broker_reload_fn fn, void *arg)
{
    b->reload_arg = arg;
    atomic_store_explicit(&b->reload_fn, fn, memory_order_release);
}

/* The listeners open (and say so) inside broker_start, and main sets the
 * reload right after it returns: a request in between waits for it, up to
 * RELOAD_WAIT_MS, rather than being turned away. */
#define RELOAD_WAIT_MS 5000

int broker_reload(struct broker *b, struct config_report *out)
{
    broker_reload_fn fn = atomic_load_explicit(&b->reload_fn, memory_order_acquire);
    for (int waited = 0; !fn && waited < RELOAD_WAIT_MS; waited += 10) {
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
        fn = atomic_load_explicit(&b->reload_fn, memory_order_acquire);
    }
    return fn ? fn(b->reload_arg, out) : -EAGAIN;
}

int broker_reload_admin_tls(struct broker *b, char *err, size_t errlen)
{
    return admin_server_tls_reload(b->admin, b->cfg, err, errlen);
}

void broker_reload_admin_tls_commit(struct broker *b, bool serve)
{
    admin_server_tls_commit(b->admin, serve);
}

int broker_reload_transports(struct broker *b, const struct config *next,
                             broker_file_error_fn on_error, void *arg)
{
    return listeners_prepare_files(b, next, on_error, arg);
}

void broker_reload_transports_commit(struct broker *b, bool serve)
{
    listeners_commit_files(b, serve);
}

void broker_stop(struct broker *b)
{
    admin_server_stop(b->admin); /* no admin op after this */
    b->admin = NULL;
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
