/* u64set: keys found after puts, gone after deletes, whatever the probe
 * runs (many keys share their low bits here), across growth and prunes. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/u64set.h"

/* Keys whose low 12 bits are equal: one long probe run in any table of
 * up to 4096 slots, where backward-shift deletion has the most to move. */
static uint64_t clash(uint32_t i)
{
    return ((uint64_t)(i + 1) << 32) | 0x5a5u;
}

Test(u64set, put_find_del_with_colliding_keys)
{
    struct u64set s = {0};
    for (uint32_t i = 0; i < 1000; i++)
        cr_assert_eq(u64set_put(&s, clash(i), i), 0);
    cr_assert_eq(s.n, 1000);
    for (uint32_t i = 0; i < 1000; i++) {
        uint64_t *v = u64set_find(&s, clash(i));
        cr_assert(v && *v == i, "key %u", i);
    }
    for (uint32_t i = 0; i < 1000; i += 3)
        cr_assert(u64set_del(&s, clash(i)));
    cr_assert(!u64set_del(&s, clash(0)), "deleted twice");
    for (uint32_t i = 0; i < 1000; i++)
        cr_assert_eq(u64set_find(&s, clash(i)) != NULL, i % 3 != 0, "key %u after deletes", i);
    u64set_fini(&s);
    cr_assert_null(u64set_find(&s, clash(1)));
}

static bool odd_value(uint64_t key, uint64_t value, void *arg)
{
    (void)key;
    (*(int *)arg)++;
    return value & 1;
}

static void count(uint64_t key, uint64_t value, void *arg)
{
    (void)key;
    (void)value;
    (*(int *)arg)++;
}

Test(u64set, prune_removes_what_it_is_asked_to_and_only_that)
{
    struct u64set s = {0};
    srand(7);
    uint64_t keys[5000];
    for (uint32_t i = 0; i < 5000; i++) {
        keys[i] = ((uint64_t)rand() << 33) ^ ((uint64_t)rand() << 2) ^ i ^ 1;
        cr_assert_eq(u64set_put(&s, keys[i], i), 0);
    }
    int asked = 0, left = 0;
    u64set_prune(&s, odd_value, &asked);
    cr_assert_eq(asked, 5000, "every entry asked once");
    u64set_walk(&s, count, &left);
    cr_assert_eq(left, 2500);
    cr_assert_eq(s.n, 2500);
    for (uint32_t i = 0; i < 5000; i++)
        cr_assert_eq(u64set_find(&s, keys[i]) != NULL, i % 2 == 0, "key %u", i);
    u64set_fini(&s);
}
