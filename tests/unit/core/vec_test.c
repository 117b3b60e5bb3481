/*
 * Unit tests for src/core/vec.c through core/vec.h: doubling from `first`,
 * contents kept, and nothing changed on overflow.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>

#include "core/vec.h"

Test(vec, doubles_from_first_and_keeps_contents)
{
    uint32_t cap = 0, n = 0;
    int *v = NULL;
    for (int i = 0; i < 1000; i++) {
        if (n == cap) {
            uint32_t before = cap;
            int *nv = vec_grow(v, &cap, sizeof(*nv), 4);
            cr_assert_not_null(nv);
            cr_assert_eq(cap, before ? before * 2 : 4);
            v = nv;
        }
        v[n++] = i;
    }
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(v[i], i);
    cr_assert_eq(cap, 1024);
    free(v);
}

Test(vec, overflow_changes_nothing)
{
    uint32_t cap = UINT32_MAX / 2 + 1;
    char *v = malloc(1);
    cr_assert_null(vec_grow(v, &cap, 1, 4));
    cr_assert_eq(cap, UINT32_MAX / 2 + 1);
    cap = 1u << 30;
    cr_assert_null(vec_grow(v, &cap, SIZE_MAX / 2, 4), "count x size overflows");
    cr_assert_eq(cap, 1u << 30);
    free(v);
}

Test(vec, first_zero_means_one)
{
    uint32_t cap = 0;
    long *v = vec_grow(NULL, &cap, sizeof(long), 0);
    cr_assert_not_null(v);
    cr_assert_eq(cap, 1);
    free(v);
}
