/*
 * usage: a tenant's use of what its quotas limit, over every shard (see
 * usage.h). Runs on any shard's thread (tenant_sum on the metrics thread
 * too); writes only the calling shard's own struct tenant.
 */
#include "tenant/usage.h"

#include <string.h>

/* Shard i's state of tenant id, or NULL (not seen there yet). */
static struct tenant *on_shard(const struct tenant_shards *all, uint32_t i, uint16_t id)
{
    struct tenant **table = all->tables[i];
    return table ? __atomic_load_n(&table[id], __ATOMIC_ACQUIRE) : NULL;
}

/* Roll this shard's window of kind k over to the current second. */
static struct rate_window *rate_now(struct tenant *t, enum rate_kind k, uint64_t now_ms)
{
    struct rate_window *w = &t->rate[k];
    uint64_t second = now_ms / 1000u;
    if (w->second != second) {
        /* count first: a reader that sees the new second sees count 0. */
        __atomic_store_n(&w->count, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&w->second, second, __ATOMIC_RELEASE);
    }
    return w;
}

void tenant_rate_add(struct tenant *t, enum rate_kind k, uint64_t now_ms, uint64_t n)
{
    struct rate_window *w = rate_now(t, k, now_ms);
    __atomic_store_n(&w->count, w->count + n, __ATOMIC_RELAXED);
}

uint64_t tenant_rate_total(struct tenant *t, enum rate_kind k, uint64_t now_ms,
                           const struct tenant_shards *all, uint32_t self)
{
    struct rate_window *w = rate_now(t, k, now_ms);
    /* Other shards' shares are read at most once per loop turn (now_ms):
     * a hot tenant's publishes do not each touch every shard's cache
     * lines, and the total is at most one turn behind. */
    if (w->others_ms != now_ms) {
        uint64_t sum = 0;
        for (uint32_t i = 0; i < all->n; i++) {
            struct tenant *o = i == self ? NULL : on_shard(all, i, t->id);
            if (o && __atomic_load_n(&o->rate[k].second, __ATOMIC_ACQUIRE) == w->second)
                sum += __atomic_load_n(&o->rate[k].count, __ATOMIC_RELAXED);
        }
        w->others = sum;
        w->others_ms = now_ms;
    }
    return w->count + w->others;
}

bool tenant_sum(const struct tenant_shards *all, uint16_t id, struct tenant_counters *sum)
{
    memset(sum, 0, sizeof(*sum));
    bool seen = false;
    for (uint32_t i = 0; i < all->n; i++) {
        struct tenant *t = on_shard(all, i, id);
        if (!t)
            continue;
        seen = true;
        uint64_t retained = sum->retained, retained_bytes = sum->retained_bytes;
        tenant_counters_add(sum, &t->ctr);
        if (i != 0) {
            sum->retained = retained;
            sum->retained_bytes = retained_bytes;
        }
    }
    return seen;
}

uint64_t tenant_retained_max(const struct tenant_shards *all, uint16_t id, bool bytes)
{
    uint64_t most = 0;
    for (uint32_t i = 0; i < all->n; i++) {
        struct tenant *o = on_shard(all, i, id);
        if (!o)
            continue;
        uint64_t v =
            __atomic_load_n(bytes ? &o->ctr.retained_bytes : &o->ctr.retained, __ATOMIC_RELAXED);
        if (v > most)
            most = v;
    }
    return most;
}

uint64_t tenant_usage(struct tenant *t, enum ringmq_resource r, uint64_t now_ms,
                      const struct tenant_shards *all, uint32_t self)
{
    enum rate_kind k = tenant_rate_of(r);
    if (k != RATE_KINDS)
        return tenant_rate_total(t, k, now_ms, all, self);
    if (r == RINGMQ_RES_RETAINED || r == RINGMQ_RES_RETAINED_BYTES)
        return tenant_retained_max(all, t->id, r == RINGMQ_RES_RETAINED_BYTES);
    struct tenant_counters sum;
    tenant_sum(all, t->id, &sum);
    switch (r) {
    case RINGMQ_RES_CONNECTIONS:
        return sum.connections;
    case RINGMQ_RES_SESSIONS:
        return sum.sessions;
    case RINGMQ_RES_SUBSCRIPTIONS:
        return sum.subscriptions;
    case RINGMQ_RES_SHARED_SUBSCRIPTIONS:
        return sum.shared_subscriptions;
    default:
        return 0;
    }
}
