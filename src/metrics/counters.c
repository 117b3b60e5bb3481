/*
 * counters: the table that names every field of struct tenant_counters as a
 * Prometheus family, and the writers that walk it.
 *
 * Owns nothing; runs on the collector's thread (the HTTP thread for a scrape)
 * and only reads the counters it is handed.
 */
#include "metrics/counters.h"

#include <stdbool.h>
#include <stddef.h>

#include "ringmq/plugin.h"

_Static_assert(TENANT_COUNTERS_DROP_REASONS == RINGMQ_DROP_DENIED + 1,
               "dropped[] must have one slot per enum ringmq_drop_reason");

static const char *const qos_values[] = {"0", "1", "2"};

/* Indexed by enum ringmq_drop_reason. */
static const char *const drop_values[TENANT_COUNTERS_DROP_REASONS] = {
    [RINGMQ_DROP_QUEUE_FULL] = "queue_full",
    [RINGMQ_DROP_TOO_LARGE] = "too_large",
    [RINGMQ_DROP_EXPIRED] = "expired",
    [RINGMQ_DROP_SLOW_CONSUMER] = "slow_consumer",
    [RINGMQ_DROP_NO_SHARE_MEMBER] = "no_share_member",
    [RINGMQ_DROP_THROTTLED] = "throttled",
    [RINGMQ_DROP_DENIED] = "denied",
};

/*
 * One family: a field (or an array of `count` fields, one per value of the
 * extra label `label`) of struct tenant_counters.
 */
struct family {
    const char *name;
    const char *type;
    const char *help;
    size_t offset;
    const char *label;               /* NULL: a plain field */
    const char *const *label_values; /* count of them */
    size_t count;
};

#define PLAIN(n, t, f, h)                                                                          \
    {                                                                                              \
        .name = n, .type = t, .help = h, .offset = offsetof(struct tenant_counters, f), .count = 1 \
    }
#define BY(n, t, f, l, v, h)                                                                       \
    {                                                                                              \
        .name = n, .type = t, .help = h, .offset = offsetof(struct tenant_counters, f),            \
        .label = l, .label_values = v, .count = sizeof(v) / sizeof(v[0])                           \
    }

static const struct family families[] = {
    PLAIN("ringmq_connections", "gauge", connections, "Client connections open."),
    PLAIN("ringmq_sessions", "gauge", sessions, "Sessions held, persistent and transient."),
    PLAIN("ringmq_subscriptions", "gauge", subscriptions,
          "Subscriptions held, shared subscriptions included."),
    PLAIN("ringmq_shared_subscriptions", "gauge", shared_subscriptions,
          "Shared subscriptions held ($share/GROUP/FILTER, $oshare)."),
    BY("ringmq_messages_in_total", "counter", msgs_in, "qos", qos_values,
       "PUBLISH packets received from clients, by QoS."),
    BY("ringmq_messages_out_total", "counter", msgs_out, "qos", qos_values,
       "PUBLISH packets sent to subscribers, by QoS of the delivery."),
    BY("ringmq_bytes_in_total", "counter", bytes_in, "qos", qos_values,
       "Bytes of PUBLISH packets received from clients, by QoS."),
    BY("ringmq_bytes_out_total", "counter", bytes_out, "qos", qos_values,
       "Bytes of PUBLISH packets sent to subscribers, by QoS of the delivery."),
    BY("ringmq_dropped_total", "counter", dropped, "reason", drop_values,
       "Messages not delivered to a subscriber, by reason."),
    PLAIN("ringmq_retained_messages", "gauge", retained, "Retained messages stored."),
    PLAIN("ringmq_retained_bytes", "gauge", retained_bytes,
          "Bytes the retained messages keep: messages and every shard's topic index."),
    PLAIN("ringmq_auth_failures_total", "counter", auth_failures,
          "CONNECT or AUTH refused by the auth provider."),
    PLAIN("ringmq_throttled_total", "counter", throttled,
          "Requests refused by the resource throttler (quota reached)."),
    PLAIN("ringmq_permission_denied_total", "counter", denied,
          "Connect, publish, subscribe or unsubscribe checks denied."),
};

/*
 * 28 uint64_t fields, every one named by a row above: a new field must get
 * its row (and this count), or it would silently never be exposed.
 */
_Static_assert(sizeof(struct tenant_counters) == 28 * sizeof(uint64_t),
               "struct tenant_counters changed: update families[] and this count");

static const uint64_t *family_field(const struct tenant_counters *c, const struct family *f)
{
    return (const uint64_t *)((const char *)c + f->offset);
}

void tenant_counters_add(struct tenant_counters *sum, const struct tenant_counters *shard)
{
    /* The struct is nothing but uint64_t, which the table above checks. */
    uint64_t *dst = (uint64_t *)sum;
    const uint64_t *src = (const uint64_t *)shard;
    for (size_t i = 0; i < sizeof(*sum) / sizeof(uint64_t); i++)
        dst[i] += __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

static void family_write(struct metrics_writer *w, const struct family *f, const char *tenant,
                         const struct tenant_counters *c)
{
    const uint64_t *v = family_field(c, f);
    const char *keys[] = {"tenant", f->label, NULL};
    for (size_t i = 0; i < f->count; i++) {
        const char *values[] = {tenant ? tenant : "", f->label ? f->label_values[i] : NULL, NULL};
        metrics_write(w, f->name, f->help, f->type, keys, values, (double)v[i]);
    }
}

void metrics_write_tenants(struct metrics_writer *w, const char *const *tenants,
                           const struct tenant_counters *sums, size_t n)
{
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
        for (size_t t = 0; t < n; t++)
            family_write(w, &families[i], tenants[t], &sums[t]);
}

void metrics_write_tenant(struct metrics_writer *w, const char *tenant,
                          const struct tenant_counters *sum)
{
    metrics_write_tenants(w, &tenant, sum, 1);
}
