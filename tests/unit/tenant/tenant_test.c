/*
 * tenant: a setting provider's answer applied over the configured
 * settings (tenant_settings_apply), through tenant.h.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ringmq/plugin.h"
#include "tenant/tenant.h"

/* What tenant_settings_apply reads and writes of a tenant. */
static struct tenant *tenant_new(const struct tenant_settings *base)
{
    struct tenant *t = calloc(1, sizeof(*t));
    cr_assert_not_null(t);
    t->name = "t";
    t->set = base;
    return t;
}

/* The provider's values go over the base, into a copy the tenant owns;
 * a second answer replaces the first copy (ASan: the first is freed). */
Test(tenant, settings_apply_over_base)
{
    struct tenant_settings base = {.max_qos = 2, .max_sessions = 7};
    struct tenant *t = tenant_new(&base);
    char why[200] = "";
    struct ringmq_kv kv[] = {{"max_qos", "1"}};
    cr_assert_eq(tenant_settings_apply(t, &base, kv, 1, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(t->set, t->own_set);
    cr_assert_eq(t->set->max_qos, 1);
    cr_assert_eq(t->set->max_sessions, 7, "what the provider did not name stays");
    cr_assert_eq(base.max_qos, 2, "the base is not written");
    struct ringmq_kv kv2[] = {{"max_sessions", "9"}};
    cr_assert_eq(tenant_settings_apply(t, &base, kv2, 1, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(t->set->max_qos, 2, "each answer starts again from the base");
    cr_assert_eq(t->set->max_sessions, 9);
    tenant_destroy(t);
}

/* A value the broker cannot take: refused with a reason, and the tenant
 * keeps the settings it had. */
Test(tenant, settings_apply_refused_keeps_settings)
{
    struct tenant_settings base = {.max_qos = 2};
    struct tenant *t = tenant_new(&base);
    char why[200] = "";
    struct ringmq_kv kv[] = {{"max_qos", "1"}, {"no_such_setting", "1"}};
    cr_assert_eq(tenant_settings_apply(t, &base, kv, 2, why, sizeof(why)), -EINVAL);
    cr_assert_neq(why[0], '\0');
    cr_assert_eq(t->set, &base);
    cr_assert_null(t->own_set);
    tenant_destroy(t);
}
