/*
 * Unit tests for src/metrics/counters.c through metrics/counters.h: every
 * field of struct tenant_counters is exposed under its family, drop reasons
 * follow enum ringmq_drop_reason, several tenants keep each family's samples
 * together with one HELP/TYPE, and shard copies sum.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/counters.h"
#include "ringmq/plugin.h"

struct tenants_arg {
    const char *const *tenants;
    const struct tenant_counters *sums;
    size_t n;
};

static void collect_tenants(struct metrics_writer *w, void *arg)
{
    struct tenants_arg *a = arg;
    metrics_write_tenants(w, a->tenants, a->sums, a->n);
}

static void collect_one(struct metrics_writer *w, void *arg)
{
    struct tenants_arg *a = arg;
    metrics_write_tenant(w, a->tenants[0], a->sums);
}

static char *render_tenants(const char *const *tenants, const struct tenant_counters *sums,
                            size_t n)
{
    struct tenants_arg a = {tenants, sums, n};
    char *got = metrics_render(collect_tenants, &a, NULL);
    cr_assert_not_null(got);
    return got;
}

static size_t count_substr(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void expect_line(const char *text, const char *line)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "\n%s\n", line);
    cr_assert_not_null(strstr(text, buf), "missing line: %s\nin:\n%s", line, text);
}

/* Fill every field with a distinct value: field i (in memory order) = 1000 + i. */
static void fill_distinct(struct tenant_counters *c, uint64_t base)
{
    uint64_t *f = (uint64_t *)c;
    for (size_t i = 0; i < sizeof(*c) / sizeof(uint64_t); i++)
        f[i] = base + i;
}

Test(counters, every_field_is_exposed_under_its_name)
{
    struct tenant_counters c;
    fill_distinct(&c, 1000);
    const char *t[] = {"global"};
    char *got = render_tenants(t, &c, 1);

    expect_line(got, "ringmq_connections{tenant=\"global\"} 1000");
    expect_line(got, "ringmq_sessions{tenant=\"global\"} 1001");
    expect_line(got, "ringmq_subscriptions{tenant=\"global\"} 1002");
    expect_line(got, "ringmq_shared_subscriptions{tenant=\"global\"} 1003");
    expect_line(got, "ringmq_messages_in_total{tenant=\"global\",qos=\"0\"} 1004");
    expect_line(got, "ringmq_messages_in_total{tenant=\"global\",qos=\"1\"} 1005");
    expect_line(got, "ringmq_messages_in_total{tenant=\"global\",qos=\"2\"} 1006");
    expect_line(got, "ringmq_messages_out_total{tenant=\"global\",qos=\"0\"} 1007");
    expect_line(got, "ringmq_messages_out_total{tenant=\"global\",qos=\"1\"} 1008");
    expect_line(got, "ringmq_messages_out_total{tenant=\"global\",qos=\"2\"} 1009");
    expect_line(got, "ringmq_bytes_in_total{tenant=\"global\",qos=\"0\"} 1010");
    expect_line(got, "ringmq_bytes_in_total{tenant=\"global\",qos=\"1\"} 1011");
    expect_line(got, "ringmq_bytes_in_total{tenant=\"global\",qos=\"2\"} 1012");
    expect_line(got, "ringmq_bytes_out_total{tenant=\"global\",qos=\"0\"} 1013");
    expect_line(got, "ringmq_bytes_out_total{tenant=\"global\",qos=\"1\"} 1014");
    expect_line(got, "ringmq_bytes_out_total{tenant=\"global\",qos=\"2\"} 1015");
    expect_line(got, "ringmq_dropped_total{tenant=\"global\",reason=\"queue_full\"} 1016");
    expect_line(got, "ringmq_dropped_total{tenant=\"global\",reason=\"too_large\"} 1017");
    expect_line(got, "ringmq_dropped_total{tenant=\"global\",reason=\"expired\"} 1018");
    expect_line(got, "ringmq_dropped_total{tenant=\"global\",reason=\"slow_consumer\"} 1019");
    expect_line(got, "ringmq_dropped_total{tenant=\"global\",reason=\"no_share_member\"} 1020");
    expect_line(got, "ringmq_dropped_total{tenant=\"global\",reason=\"throttled\"} 1021");
    expect_line(got, "ringmq_dropped_total{tenant=\"global\",reason=\"denied\"} 1022");
    expect_line(got, "ringmq_retained_messages{tenant=\"global\"} 1023");
    expect_line(got, "ringmq_retained_bytes{tenant=\"global\"} 1024");
    expect_line(got, "ringmq_auth_failures_total{tenant=\"global\"} 1025");
    expect_line(got, "ringmq_throttled_total{tenant=\"global\"} 1026");
    expect_line(got, "ringmq_permission_denied_total{tenant=\"global\"} 1027");

    /* 28 samples, 14 families, nothing else. */
    size_t lines = count_substr(got, "\n");
    size_t comments = count_substr(got, "# ");
    cr_assert_eq(lines - comments, sizeof(c) / sizeof(uint64_t));
    cr_assert_eq(count_substr(got, "# TYPE "), 14);
    cr_assert_eq(count_substr(got, "# HELP "), 14);
    free(got);
}

Test(counters, types_are_gauge_for_levels_counter_for_totals)
{
    struct tenant_counters c = {0};
    const char *t[] = {"x"};
    char *got = render_tenants(t, &c, 1);
    expect_line(got, "# TYPE ringmq_connections gauge");
    expect_line(got, "# TYPE ringmq_sessions gauge");
    expect_line(got, "# TYPE ringmq_subscriptions gauge");
    expect_line(got, "# TYPE ringmq_retained_messages gauge");
    expect_line(got, "# TYPE ringmq_retained_bytes gauge");
    /* Prometheus convention: counters and only counters end in _total. */
    for (const char *p = strstr(got, "# TYPE "); p; p = strstr(p + 1, "# TYPE ")) {
        const char *name = p + 7;
        const char *sp = strchr(name, ' ');
        const char *type = sp + 1;
        bool total = sp - name > 6 && strncmp(sp - 6, "_total", 6) == 0;
        bool counter = strncmp(type, "counter\n", 8) == 0;
        cr_assert_eq(total, counter, "%.*s", (int)(strchr(p, '\n') - p), p);
    }
    free(got);
}

Test(counters, drop_reasons_follow_the_plugin_enum)
{
    struct tenant_counters c = {0};
    c.dropped[RINGMQ_DROP_EXPIRED] = 9;
    c.dropped[RINGMQ_DROP_NO_SHARE_MEMBER] = 4;
    const char *t[] = {"a"};
    char *got = render_tenants(t, &c, 1);
    expect_line(got, "ringmq_dropped_total{tenant=\"a\",reason=\"expired\"} 9");
    expect_line(got, "ringmq_dropped_total{tenant=\"a\",reason=\"no_share_member\"} 4");
    expect_line(got, "ringmq_dropped_total{tenant=\"a\",reason=\"queue_full\"} 0");
    free(got);
}

/* Name of a sample line: up to '{' or ' '. */
static size_t sample_name(const char *line, char *out, size_t outlen)
{
    size_t n = strcspn(line, "{ ");
    cr_assert_lt(n, outlen);
    memcpy(out, line, n);
    out[n] = '\0';
    return n;
}

Test(counters, two_tenants_keep_each_family_together)
{
    struct tenant_counters sums[2];
    fill_distinct(&sums[0], 100);
    fill_distinct(&sums[1], 200);
    const char *t[] = {"alpha", "beta"};
    char *got = render_tenants(t, sums, 2);

    /* Walk the lines: a name, once left, never comes back; HELP/TYPE precede it. */
    char seen[32][64];
    size_t nseen = 0;
    char cur[64] = "";
    size_t samples = 0;
    for (char *line = got; *line; line = strchr(line, '\n') + 1) {
        if (line[0] == '#')
            continue;
        char name[64];
        sample_name(line, name, sizeof(name));
        samples++;
        if (strcmp(name, cur) == 0)
            continue;
        for (size_t i = 0; i < nseen; i++)
            cr_assert_str_neq(seen[i], name, "family %s split", name);
        cr_assert_lt(nseen, 32);
        strcpy(seen[nseen++], name);
        strcpy(cur, name);
        char type[96];
        snprintf(type, sizeof(type), "# TYPE %s ", name);
        cr_assert_eq(count_substr(got, type), 1, "%s", type);
        cr_assert(line - got > 0 && strstr(got, type) < line, "TYPE of %s after its samples", name);
    }
    cr_assert_eq(nseen, 14);
    cr_assert_eq(samples, 2 * 28);

    expect_line(got, "ringmq_connections{tenant=\"alpha\"} 100");
    expect_line(got, "ringmq_connections{tenant=\"beta\"} 200");
    expect_line(got, "ringmq_messages_in_total{tenant=\"alpha\",qos=\"1\"} 105");
    expect_line(got, "ringmq_messages_in_total{tenant=\"beta\",qos=\"1\"} 205");
    expect_line(got, "ringmq_permission_denied_total{tenant=\"beta\"} 227");
    free(got);
}

Test(counters, write_tenant_equals_write_tenants_of_one)
{
    struct tenant_counters c;
    fill_distinct(&c, 7);
    const char *t[] = {"solo"};
    struct tenants_arg a = {t, &c, 1};
    char *one = metrics_render(collect_one, &a, NULL);
    char *many = render_tenants(t, &c, 1);
    cr_assert_not_null(one);
    cr_assert_str_eq(one, many);
    free(one);
    free(many);
}

Test(counters, no_tenants_write_nothing)
{
    char *got = render_tenants(NULL, NULL, 0);
    cr_assert_str_eq(got, "");
    free(got);
}

Test(counters, tenant_ids_are_escaped)
{
    struct tenant_counters c = {.connections = 1};
    const char *t[] = {"we\"ird\\id\n"};
    char *got = render_tenants(t, &c, 1);
    expect_line(got, "ringmq_connections{tenant=\"we\\\"ird\\\\id\\n\"} 1");
    free(got);
}

Test(counters, add_sums_every_field)
{
    struct tenant_counters sum = {0}, a, b;
    fill_distinct(&a, 1);
    fill_distinct(&b, 100);
    tenant_counters_add(&sum, &a);
    tenant_counters_add(&sum, &b);
    const uint64_t *s = (const uint64_t *)&sum;
    for (size_t i = 0; i < sizeof(sum) / sizeof(uint64_t); i++)
        cr_assert_eq(s[i], 101 + 2 * i, "field %zu", i);
    cr_assert_eq(sum.denied, 101 + 2 * 27);
    cr_assert_eq(sum.msgs_out[2], 101 + 2 * 9);
}

Test(counters, values_beyond_2_pow_53_stay_close)
{
    struct tenant_counters c = {.bytes_in = {UINT64_MAX}};
    const char *t[] = {"big"};
    char *got = render_tenants(t, &c, 1);
    expect_line(got, "ringmq_bytes_in_total{tenant=\"big\",qos=\"0\"} 1.8446744073709552e+19");
    free(got);
}
