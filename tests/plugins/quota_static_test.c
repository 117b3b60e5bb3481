/*
 * Tests of plugins/quota_static through the plugin ABI (dlopen by a fake
 * host): per-tenant limits, the `default` tenant, `unlimited`, boundaries
 * (current + amount == limit is allowed) and configuration errors.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <string.h>

#include "fake_host.h"

static const struct ringmq_plugin *plug;
static void *state;

static void setup(void)
{
    plug = fake_load(QUOTA_STATIC_SO);
    cr_assert_eq(plug->kinds, RINGMQ_KIND_THROTTLE);
    /* `default` after a tenant on purpose: order must not matter. */
    static const struct ringmq_kv kv[] = {
        {"acme.max_connections", "2"},
        {"acme.max_subscriptions", "10"},
        {"default.max_connections", "1000"},
        {"default.max_retained_bytes", "4096"},
        {"big.corp.max_connections", "unlimited"},
        {"acme.max_bytes_in_rate", "0"},
    };
    char err[256];
    cr_assert_eq(fake_init(plug, kv, sizeof(kv) / sizeof(kv[0]), &state, err, sizeof(err)), 0, "%s",
                 err);
}

static void teardown(void)
{
    plug->fini(state);
}

TestSuite(quota_static, .init = setup, .fini = teardown);

static bool T(const char *tenant, enum ringmq_resource r, uint64_t cur, uint64_t amount)
{
    return plug->throttle(state, tenant, r, cur, amount);
}

Test(quota_static, tenant_limit_allows_up_to_and_including_the_limit)
{
    cr_assert(T("acme", RINGMQ_RES_CONNECTIONS, 0, 1));
    cr_assert(T("acme", RINGMQ_RES_CONNECTIONS, 1, 1));
    cr_assert_not(T("acme", RINGMQ_RES_CONNECTIONS, 2, 1));
    cr_assert_not(T("acme", RINGMQ_RES_CONNECTIONS, 0, 3));
    cr_assert(T("acme", RINGMQ_RES_SUBSCRIPTIONS, 7, 3));
    cr_assert_not(T("acme", RINGMQ_RES_SUBSCRIPTIONS, 7, 4));
}

Test(quota_static, zero_limit_refuses_any_use)
{
    cr_assert_not(T("acme", RINGMQ_RES_BYTES_IN_RATE, 0, 1));
    cr_assert(T("acme", RINGMQ_RES_BYTES_IN_RATE, 0, 0));
}

Test(quota_static, default_applies_where_the_tenant_sets_nothing)
{
    cr_assert(T("other", RINGMQ_RES_CONNECTIONS, 999, 1));
    cr_assert_not(T("other", RINGMQ_RES_CONNECTIONS, 1000, 1));
    /* acme sets connections itself (2), but not retained bytes. */
    cr_assert(T("acme", RINGMQ_RES_RETAINED_BYTES, 4000, 96));
    cr_assert_not(T("acme", RINGMQ_RES_RETAINED_BYTES, 4000, 97));
    cr_assert_not(T(NULL, RINGMQ_RES_CONNECTIONS, 1000, 1));
}

Test(quota_static, no_limit_anywhere_allows_everything)
{
    cr_assert(T("acme", RINGMQ_RES_SESSIONS, UINT64_MAX - 1, 1));
    cr_assert(T("other", RINGMQ_RES_RETAINED, 123456789, 987654321));
}

Test(quota_static, unlimited_overrides_default_and_dotted_tenant_names_work)
{
    cr_assert(T("big.corp", RINGMQ_RES_CONNECTIONS, 5000000, 1));
    cr_assert(T("big.corp", RINGMQ_RES_RETAINED_BYTES, 4096, 0));
    cr_assert_not(T("big.corp", RINGMQ_RES_RETAINED_BYTES, 4096, 1));
}

Test(quota_static, huge_amounts_do_not_overflow)
{
    cr_assert_not(T("acme", RINGMQ_RES_SUBSCRIPTIONS, UINT64_MAX, 2));
    cr_assert_not(T("acme", RINGMQ_RES_SUBSCRIPTIONS, 2, UINT64_MAX));
}

Test(quota_static, tenant_names_are_compared_exactly)
{
    cr_assert(T("acm", RINGMQ_RES_CONNECTIONS, 2, 1));   /* default: 1000 */
    cr_assert(T("acme2", RINGMQ_RES_CONNECTIONS, 2, 1)); /* default: 1000 */
    cr_assert(T("ACME", RINGMQ_RES_CONNECTIONS, 2, 1));
}

static void init_fails(const char *key, const char *value, const char *want)
{
    const struct ringmq_plugin *p = fake_load(QUOTA_STATIC_SO);
    struct ringmq_kv kv[] = {{key, value}};
    void *st;
    char err[512];
    cr_assert_neq(fake_init(p, kv, 1, &st, err, sizeof(err)), 0, "%s=%s accepted", key, value);
    cr_assert_not_null(strstr(err, want), "'%s' lacks '%s'", err, want);
}

Test(quota_static_init, bad_keys_and_values_are_refused)
{
    init_fails("acme.max_conections", "1", "acme.max_conections");
    init_fails("max_connections", "1", "TENANT.RESOURCE");
    init_fails(".max_connections", "1", "TENANT.RESOURCE");
    init_fails("acme.max_connections", "-1", "not a number");
    init_fails("acme.max_connections", "10k", "not a number");
    init_fails("acme.max_connections", "", "not a number");
    init_fails("acme.max_connections", "99999999999999999999999", "not a number");
}

Test(quota_static_init, every_resource_has_a_key)
{
    static const char *const keys[RINGMQ_RES_COUNT] = {
        "t.max_connections",
        "t.max_connect_rate",
        "t.max_sessions",
        "t.max_subscriptions",
        "t.max_shared_subscriptions",
        "t.max_bytes_in_rate",
        "t.max_bytes_out_rate",
        "t.max_retained",
        "t.max_retained_bytes",
    };
    const struct ringmq_plugin *p = fake_load(QUOTA_STATIC_SO);
    for (int r = 0; r < RINGMQ_RES_COUNT; r++) {
        struct ringmq_kv kv[] = {{keys[r], "5"}};
        void *st;
        char err[512];
        cr_assert_eq(fake_init(p, kv, 1, &st, err, sizeof(err)), 0, "%s", err);
        for (int o = 0; o < RINGMQ_RES_COUNT; o++)
            cr_assert_eq(p->throttle(st, "t", (enum ringmq_resource)o, 5, 1), o != r,
                         "key %s, resource %d", keys[r], o);
        p->fini(st);
    }
}

/* ABI 5: new limits are checked whole (one bad key refuses them all and
 * nothing changes), in force at the commit, the whole set (a key removed
 * is no longer a limit), and a discarded set changes nothing. */
Test(quota_static, reconfigure_replaces_the_limits_at_commit)
{
    char err[256];
    void *next = NULL;
    static const struct ringmq_kv bad[] = {{"acme.max_connections", "5"},
                                           {"acme.max_connections_typo", "1"}};
    cr_assert_neq(plug->reconfigure(state, bad, 2, &next, err, sizeof(err)), 0);
    cr_assert(strstr(err, "max_connections_typo"), "%s", err);
    static const struct ringmq_kv kv[] = {{"acme.max_connections", "5"}};
    cr_assert_eq(plug->reconfigure(state, kv, 1, &next, err, sizeof(err)), 0, "%s", err);
    plug->reconfigure_commit(state, next, false);
    cr_assert_not(T("acme", RINGMQ_RES_CONNECTIONS, 2, 1), "discarded: still 2");
    cr_assert_eq(plug->reconfigure(state, kv, 1, &next, err, sizeof(err)), 0, "%s", err);
    cr_assert_not(T("acme", RINGMQ_RES_CONNECTIONS, 2, 1), "not in force before the commit");
    plug->reconfigure_commit(state, next, true);
    cr_assert(T("acme", RINGMQ_RES_CONNECTIONS, 4, 1));
    cr_assert_not(T("acme", RINGMQ_RES_CONNECTIONS, 5, 1));
    cr_assert(T("acme", RINGMQ_RES_SUBSCRIPTIONS, 100, 1), "a key removed: no limit");
    cr_assert(T("other", RINGMQ_RES_CONNECTIONS, 5000, 1), "default removed too");
}
