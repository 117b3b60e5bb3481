/*
 * Unit tests for src/core/affinity.c through core/affinity.h: parsing
 * server.cpu_affinity, formatting CPU lists, and the shard-to-CPU plan
 * (pinned only inside a reserved CPU set under auto, never under none, the
 * list's CPUs under a list).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "core/affinity.h"

static struct cpu_bits bits(const char *list)
{
    struct affinity a;
    char why[128];
    cr_assert_eq(affinity_parse(list, &a, why, sizeof(why)), 0, "%s: %s", list, why);
    cr_assert_eq(a.mode, AFFINITY_LIST);
    return a.list;
}

static const char *fmt(const struct cpu_bits *s)
{
    static char buf[256];
    return cpu_bits_format(s, buf, sizeof(buf));
}

Test(affinity, parses_modes_and_lists)
{
    struct affinity a;
    char why[128];
    cr_assert_eq(affinity_parse("auto", &a, why, sizeof(why)), 0);
    cr_assert_eq(a.mode, AFFINITY_AUTO);
    cr_assert_eq(affinity_parse("none", &a, why, sizeof(why)), 0);
    cr_assert_eq(a.mode, AFFINITY_NONE);
    struct cpu_bits s = bits("0-3,8, 10-11,3");
    cr_assert_str_eq(fmt(&s), "0-3,8,10-11");
    cr_assert_eq(cpu_bits_count(&s), 7);
    cr_assert_eq(cpu_bits_nth(&s, 4), 8);
    cr_assert_eq(cpu_bits_nth(&s, 7), -1);
    s = bits("1023");
    cr_assert_str_eq(fmt(&s), "1023");
    s = bits("63-64");
    cr_assert_str_eq(fmt(&s), "63-64");
}

Test(affinity, refuses_garbage_with_a_reason)
{
    static const char *const bad[] = {"",     "Auto",   "1,", ",1",  "1-",  "-1",         "3-1",
                                      "1024", "0-1024", "a",  "1 2", "1;2", "99999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct affinity a = {.mode = AFFINITY_NONE};
        char why[128] = "";
        cr_assert_eq(affinity_parse(bad[i], &a, why, sizeof(why)), -EINVAL, "'%s'", bad[i]);
        cr_assert_neq(why[0], '\0', "'%s' has no reason", bad[i]);
        cr_assert_eq(a.mode, AFFINITY_NONE, "'%s' changed the output", bad[i]);
    }
}

Test(affinity, format_cuts_at_a_whole_entry)
{
    struct cpu_bits s = bits("0,2,4,6,8,10");
    char buf[8];
    cr_assert_str_eq(cpu_bits_format(&s, buf, sizeof(buf)), "0,2,4,6");
    cr_assert_str_eq(cpu_bits_format(&(struct cpu_bits){{0}}, buf, sizeof(buf)), "");
}

static void plan(const char *mode, const char *allowed, unsigned online, uint32_t nshards, int *cpu,
                 int want_rc)
{
    struct affinity a;
    char why[256];
    cr_assert_eq(affinity_parse(mode, &a, why, sizeof(why)), 0);
    struct cpu_bits al = bits(allowed);
    cr_assert_eq(affinity_plan(&a, &al, online, nshards, cpu, why, sizeof(why)), want_rc, "%s",
                 why);
    cr_assert_neq(why[0], '\0');
}

/* The default on a host whose every CPU the process may use: not pinned,
 * so a shard can leave a CPU another process keeps busy. */
Test(affinity, auto_leaves_a_shared_host_to_the_scheduler)
{
    int cpu[4];
    plan("auto", "0-1", 2, 2, cpu, 0);
    cr_assert(cpu[0] == -1 && cpu[1] == -1);
    plan("auto", "0-15", 16, 4, cpu, 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(cpu[i], -1);
}

/* Started inside a smaller set (taskset, cpuset) with no more CPUs than
 * shards: those CPUs are the broker's, pin within them. */
Test(affinity, auto_pins_inside_a_reserved_set)
{
    int cpu[4];
    plan("auto", "1", 2, 2, cpu, 0);
    cr_assert(cpu[0] == 1 && cpu[1] == 1);
    plan("auto", "4-5", 16, 4, cpu, 0);
    cr_assert(cpu[0] == 4 && cpu[1] == 5 && cpu[2] == 4 && cpu[3] == 5);
    /* More CPUs than shards in the set: still shared, not pinned. */
    plan("auto", "4-7", 16, 2, cpu, 0);
    cr_assert(cpu[0] == -1 && cpu[1] == -1);
}

Test(affinity, none_never_pins)
{
    int cpu[2];
    plan("none", "1", 2, 2, cpu, 0);
    cr_assert(cpu[0] == -1 && cpu[1] == -1);
}

Test(affinity, list_pins_round_robin_and_refuses_foreign_cpus)
{
    int cpu[3];
    plan("2,5", "0-7", 8, 3, cpu, 0);
    cr_assert(cpu[0] == 2 && cpu[1] == 5 && cpu[2] == 2);
    plan("1-2", "0-1", 2, 2, cpu, -EINVAL);
}
