/*
 * usage: how much of what its quotas limit a tenant uses, over every
 * shard: the per-second rate windows (connects, bytes in, bytes out), its
 * counters summed, and the largest of its retained replicas.
 *
 * A shard writes only its own struct tenant (its share); it reads the
 * other shards' through struct tenant_shards, with atomics, never a lock.
 * Sums may lag a few increments; the rate totals are read at most once per
 * loop turn (now_ms). What a quota decides with these numbers (the
 * tenant's limits, then the throttle plugins) is the broker's
 * (observe_throttle).
 */
#ifndef RINGMQ_TENANT_USAGE_H
#define RINGMQ_TENANT_USAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "ringmq/plugin.h"
#include "tenant/tenant.h"

/* Every shard's table of tenants by id: tables[i] is shard i's, TENANT_MAX
 * slots, each set once with a release store (read with an acquire load).
 * Filled before the shards start; the tables outlive every reader. */
struct tenant_shards {
    struct tenant **tables[CONFIG_MAX_SHARDS];
    uint32_t n;
};

/* Count n more of kind k on this shard's share at now_ms (the window rolls
 * over to the current second first). */
void tenant_rate_add(struct tenant *t, enum rate_kind k, uint64_t now_ms, uint64_t n);

/* The tenant's use of kind k this second over every shard: this shard's
 * (`self`) share now, the others' as read at most once per now_ms. */
uint64_t tenant_rate_total(struct tenant *t, enum rate_kind k, uint64_t now_ms,
                           const struct tenant_shards *all, uint32_t self);

/* Tenant `id`'s counters summed over every shard, its retained gauges taken
 * from shard 0's replica (each shard holds all of them). False when no
 * shard has seen the tenant. Any thread (the metrics thread too). */
bool tenant_sum(const struct tenant_shards *all, uint16_t id, struct tenant_counters *sum);

/* The largest replica's retained count (or bytes): every shard holds all
 * of the tenant's retained messages, each a few behind the shards that
 * published them, so the largest is the best guess of its use. */
uint64_t tenant_retained_max(const struct tenant_shards *all, uint16_t id, bool bytes);

/* The rate window a per-second resource counts in, or RATE_KINDS for the
 * others. */
static inline enum rate_kind tenant_rate_of(enum ringmq_resource r)
{
    return r == RINGMQ_RES_CONNECT_RATE     ? RATE_CONNECTS
           : r == RINGMQ_RES_BYTES_IN_RATE  ? RATE_BYTES_IN
           : r == RINGMQ_RES_BYTES_OUT_RATE ? RATE_BYTES_OUT
                                            : RATE_KINDS;
}

/* The tenant's own limit on resource r (0: none): sessions, retained
 * messages and bytes hold with or without a quota plugin. Inline: every
 * PUBLISH asks about its bytes in and out. */
static inline uint64_t tenant_limit(const struct tenant_settings *ts, enum ringmq_resource r)
{
    return r == RINGMQ_RES_SESSIONS         ? ts->max_sessions
           : r == RINGMQ_RES_RETAINED       ? ts->max_retained_messages
           : r == RINGMQ_RES_RETAINED_BYTES ? ts->max_retained_bytes
                                            : 0;
}

/* The tenant's use of r over every shard, as a throttle plugin is told. */
uint64_t tenant_usage(struct tenant *t, enum ringmq_resource r, uint64_t now_ms,
                      const struct tenant_shards *all, uint32_t self);

#endif
