/*
 * counters: the vocabulary of tenant metrics, one struct per tenant per
 * shard that the broker embeds and bumps, and the writer that turns the
 * per-tenant sums into Prometheus families with a `tenant` label.
 *
 * Every metric the broker exposes is listed here, with its name, type and
 * labels; adding a field means adding its row in counters.c too.
 *
 * Threads: a shard increments its own copy with plain stores (no atomics on
 * the hot path); the collector on the HTTP thread reads every shard's copy
 * with tenant_counters_add() and writes the sums. A read may see a counter a
 * few increments old, never a torn value (aligned 64-bit loads on the
 * targets we build for), and gauges summed across shards may be off by the
 * in-flight moves between shards; both are fine for monitoring.
 */
#ifndef RINGMQ_METRICS_COUNTERS_H
#define RINGMQ_METRICS_COUNTERS_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/metrics.h"

/* Number of drop reasons, in enum ringmq_drop_reason order (plugin.h). */
enum { TENANT_COUNTERS_DROP_REASONS = 7 };

/*
 * Per tenant, per shard. Embedded by value (the broker keeps one per tenant
 * in each shard), hence public. Gauges are the shard's current contribution;
 * counters only grow. The comment on each field is its Prometheus family:
 * every family carries the label tenant="<tenant id>".
 */
struct tenant_counters {
    /* ringmq_connections (gauge): client connections open (after CONNACK). */
    uint64_t connections;
    /* ringmq_sessions (gauge): sessions held, persistent and transient. */
    uint64_t sessions;
    /* ringmq_subscriptions (gauge): subscriptions held (shared included). */
    uint64_t subscriptions;
    /* ringmq_shared_subscriptions (gauge): the shared ones among them. */
    uint64_t shared_subscriptions;
    /* ringmq_messages_in_total{qos="0|1|2"} (counter): PUBLISH packets
     * received from clients, by the QoS they were sent with. */
    uint64_t msgs_in[3];
    /* ringmq_messages_out_total{qos="0|1|2"} (counter): PUBLISH packets sent
     * to subscribers, by the QoS of the delivery (retransmissions excluded). */
    uint64_t msgs_out[3];
    /* ringmq_bytes_in_total{qos="0|1|2"} (counter): bytes of the PUBLISH
     * packets counted in msgs_in, whole packets as on the wire. */
    uint64_t bytes_in[3];
    /* ringmq_bytes_out_total{qos="0|1|2"} (counter): bytes of the PUBLISH
     * packets counted in msgs_out, whole packets as on the wire. */
    uint64_t bytes_out[3];
    /* ringmq_dropped_total{reason="queue_full|too_large|expired|
     * slow_consumer|no_share_member|throttled|denied"} (counter): messages not delivered to a
     * subscriber, by enum ringmq_drop_reason order. */
    uint64_t dropped[TENANT_COUNTERS_DROP_REASONS];
    /* ringmq_retained_messages (gauge): retained messages stored. */
    uint64_t retained;
    /* ringmq_retained_bytes (gauge): bytes the retained messages keep: each
     * message once (header, topic, payload, properties: the shards share
     * it) and every shard's replica of the topic index (its nodes, an upper
     * bound each; tombstones of recent clears included). What
     * max_retained_bytes and RINGMQ_RES_RETAINED_BYTES limit. */
    uint64_t retained_bytes;
    /* ringmq_auth_failures_total (counter): CONNECT or AUTH refused by the
     * auth provider. */
    uint64_t auth_failures;
    /* ringmq_throttled_total (counter): requests refused by the resource
     * throttler (a quota reached). */
    uint64_t throttled;
    /* ringmq_permission_denied_total (counter): connect, publish, subscribe
     * or unsubscribe checks answered "denied". */
    uint64_t denied;
};

/* sum += one shard's counters, field by field (relaxed loads of *shard). */
void tenant_counters_add(struct tenant_counters *sum, const struct tenant_counters *shard);

/*
 * Write every family for one tenant. Only for a scrape with a single tenant:
 * with several, use metrics_write_tenants(), which keeps each family's
 * samples together as the format requires.
 */
void metrics_write_tenant(struct metrics_writer *w, const char *tenant,
                          const struct tenant_counters *sum);

/*
 * Write each family for all n tenants in turn (tenants[i] goes with
 * sums[i]), so every family's samples are consecutive. Tenant ids are label
 * values and escaped as such. Both arrays are borrowed; n may be 0.
 */
void metrics_write_tenants(struct metrics_writer *w, const char *const *tenants,
                           const struct tenant_counters *sums, size_t n);

#endif
