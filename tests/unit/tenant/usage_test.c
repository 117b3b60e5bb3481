/*
 * tenant usage: rate windows, sums and retained maxima over every shard,
 * through usage.h, on tenant tables built by hand (no shard, no loop).
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "tenant/usage.h"

static struct tenant *tables[3][TENANT_MAX];
static struct tenant_shards all;

/* Tenant 7's state on shard i. */
static struct tenant *on(uint32_t i)
{
    if (!tables[i][7]) {
        /* What usage reads of a tenant: id, counters, rate windows. */
        tables[i][7] = calloc(1, sizeof(struct tenant));
        cr_assert_not_null(tables[i][7]);
        tables[i][7]->id = 7;
    }
    return tables[i][7];
}

static void setup(void)
{
    all = (struct tenant_shards){.tables = {tables[0], tables[1], tables[2]}, .n = 3};
}

static void teardown(void)
{
    for (uint32_t i = 0; i < 3; i++)
        if (tables[i][7]) {
            free(tables[i][7]);
            tables[i][7] = NULL;
        }
}

TestSuite(tenant_usage, .init = setup, .fini = teardown);

/* A shard's count starts again with each second; the total adds the
 * other shards' counts of the same second only. */
Test(tenant_usage, rate_windows_per_second_over_shards)
{
    tenant_rate_add(on(0), RATE_BYTES_IN, 5000, 10);
    tenant_rate_add(on(0), RATE_BYTES_IN, 5999, 5);
    tenant_rate_add(on(1), RATE_BYTES_IN, 5500, 100);
    tenant_rate_add(on(2), RATE_BYTES_IN, 4999, 1000); /* the second before */
    cr_assert_eq(tenant_rate_total(on(0), RATE_BYTES_IN, 5999, &all, 0), 115);
    cr_assert_eq(tenant_rate_total(on(0), RATE_CONNECTS, 5999, &all, 0), 0);
    /* The next second: shard 0's own count starts at 0 again. */
    cr_assert_eq(tenant_rate_total(on(0), RATE_BYTES_IN, 6000, &all, 0), 0);
    tenant_rate_add(on(0), RATE_BYTES_IN, 6000, 3);
    cr_assert_eq(tenant_rate_total(on(0), RATE_BYTES_IN, 6000, &all, 0), 3);
}

/* The other shards are read once per now_ms: later counts of theirs in
 * the same loop turn show up only in the next one; one's own at once. */
Test(tenant_usage, others_read_once_per_turn)
{
    tenant_rate_add(on(1), RATE_CONNECTS, 7000, 1);
    cr_assert_eq(tenant_rate_total(on(0), RATE_CONNECTS, 7000, &all, 0), 1);
    tenant_rate_add(on(1), RATE_CONNECTS, 7000, 1);
    tenant_rate_add(on(0), RATE_CONNECTS, 7000, 1);
    cr_assert_eq(tenant_rate_total(on(0), RATE_CONNECTS, 7000, &all, 0), 2);
    cr_assert_eq(tenant_rate_total(on(0), RATE_CONNECTS, 7001, &all, 0), 3);
}

/* Counters are summed over the shards that have seen the tenant; the
 * retained gauges are shard 0's replica, not a sum of replicas. */
Test(tenant_usage, sums_and_retained)
{
    struct tenant_counters sum;
    cr_assert_not(tenant_sum(&all, 7, &sum), "no shard has seen tenant 7");
    on(0)->ctr.sessions = 2;
    on(0)->ctr.retained = 4;
    on(2)->ctr.sessions = 3;
    on(2)->ctr.subscriptions = 9;
    on(2)->ctr.retained = 5; /* a replica ahead of shard 0's */
    cr_assert(tenant_sum(&all, 7, &sum));
    cr_assert_eq(sum.sessions, 5);
    cr_assert_eq(sum.subscriptions, 9);
    cr_assert_eq(sum.retained, 4);
    cr_assert_eq(tenant_retained_max(&all, 7, false), 5);
    cr_assert_eq(tenant_usage(on(1), RINGMQ_RES_SESSIONS, 1000, &all, 1), 5);
    cr_assert_eq(tenant_usage(on(1), RINGMQ_RES_RETAINED, 1000, &all, 1), 5);
    cr_assert_eq(tenant_usage(on(1), RINGMQ_RES_SUBSCRIPTIONS, 1000, &all, 1), 9);
}

/* The tenant's own limits: sessions and retained messages and bytes; the
 * rates and the rest are the plugins' to limit. */
Test(tenant_usage, own_limits_and_rate_kinds)
{
    struct tenant_settings ts = {
        .max_sessions = 10, .max_retained_messages = 20, .max_retained_bytes = 30};
    cr_assert_eq(tenant_limit(&ts, RINGMQ_RES_SESSIONS), 10);
    cr_assert_eq(tenant_limit(&ts, RINGMQ_RES_RETAINED), 20);
    cr_assert_eq(tenant_limit(&ts, RINGMQ_RES_RETAINED_BYTES), 30);
    cr_assert_eq(tenant_limit(&ts, RINGMQ_RES_CONNECTIONS), 0);
    cr_assert_eq(tenant_rate_of(RINGMQ_RES_BYTES_OUT_RATE), RATE_BYTES_OUT);
    cr_assert_eq(tenant_rate_of(RINGMQ_RES_SESSIONS), RATE_KINDS);
}
