/*
 * Unit tests for src/core/slab.c through core/slab.h: reuse, zeroing,
 * alignment, accounting, growth across chunks and the no-header promise.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/slab.h"

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

Test(slab, create_rejects_overflowing_sizes)
{
    cr_assert_null(slab_create(SIZE_MAX, 1));
    cr_assert_null(slab_create(SIZE_MAX - 8, 1));
    cr_assert_null(slab_create(1u << 20, SIZE_MAX / 1024));
}

Test(slab, destroy_and_free_accept_null)
{
    slab_destroy(NULL);
    struct slab *s = slab_create(32, 4);
    cr_assert_not_null(s);
    slab_free(s, NULL);
    cr_assert_eq(slab_in_use(s), 0);
    slab_destroy(s);
}

Test(slab, fresh_slab_holds_nothing)
{
    struct slab *s = slab_create(48, 0);
    cr_assert_not_null(s);
    cr_assert_eq(slab_in_use(s), 0);
    cr_assert_eq(slab_footprint(s), 0, "chunks are obtained on first alloc");
    slab_destroy(s);
}

Test(slab, free_then_alloc_reuses_lifo)
{
    struct slab *s = slab_create(64, 8);
    void *a = slab_alloc(s);
    void *b = slab_alloc(s);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    cr_assert_neq(a, b);
    slab_free(s, a);
    slab_free(s, b);
    cr_assert_eq(slab_alloc(s), b, "last freed comes back first");
    cr_assert_eq(slab_alloc(s), a);
    slab_destroy(s);
}

Test(slab, alloc_returns_zeroed_memory_even_when_reused)
{
    struct slab *s = slab_create(100, 4);
    unsigned char *p = slab_alloc(s);
    cr_assert_not_null(p);
    cr_assert(all_zero(p, 100));
    /* Dirty every byte, including the free-list link area. */
    memset(p, 0xa5, 100);
    slab_free(s, p);
    unsigned char *q = slab_alloc(s);
    cr_assert_eq(q, p);
    cr_assert(all_zero(q, 100), "reused object must be zeroed");
    slab_destroy(s);
}

Test(slab, objects_are_16_byte_aligned_for_any_size)
{
    static const size_t sizes[] = {1, 7, 8, 15, 16, 17, 24, 33, 100, 255, 4096, 70000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct slab *s = slab_create(sizes[i], 3);
        cr_assert_not_null(s, "size %zu", sizes[i]);
        for (int k = 0; k < 10; k++) {
            void *p = slab_alloc(s);
            cr_assert_not_null(p);
            cr_assert_eq((uintptr_t)p % 16, 0, "size %zu object %d misaligned", sizes[i], k);
            /* Writing the full requested size must be fine (ASan checks). */
            memset(p, 0xff, sizes[i]);
        }
        slab_destroy(s);
    }
}

Test(slab, in_use_and_footprint_track_allocations)
{
    struct slab *s = slab_create(32, 4);
    void *p[9];
    p[0] = slab_alloc(s);
    cr_assert_eq(slab_in_use(s), 1);
    size_t one_chunk = slab_footprint(s);
    cr_assert_geq(one_chunk, 4 * 32, "a chunk holds 4 objects of 32 bytes");

    for (int i = 1; i < 4; i++)
        p[i] = slab_alloc(s);
    cr_assert_eq(slab_in_use(s), 4);
    cr_assert_eq(slab_footprint(s), one_chunk, "4 objects fit in the first chunk");

    p[4] = slab_alloc(s);
    cr_assert_eq(slab_footprint(s), 2 * one_chunk, "the fifth needs a second chunk");

    for (int i = 5; i < 9; i++)
        p[i] = slab_alloc(s);
    cr_assert_eq(slab_in_use(s), 9);
    cr_assert_eq(slab_footprint(s), 3 * one_chunk);

    for (int i = 0; i < 9; i++)
        slab_free(s, p[i]);
    cr_assert_eq(slab_in_use(s), 0);
    cr_assert_eq(slab_footprint(s), 3 * one_chunk, "chunks are kept until destroy");

    /* Reuse does not grow. */
    for (int i = 0; i < 9; i++)
        p[i] = slab_alloc(s);
    cr_assert_eq(slab_footprint(s), 3 * one_chunk);
    slab_destroy(s);
}

Test(slab, no_per_object_header)
{
    /* 10000 objects of 32 bytes in 1000-object chunks: the footprint may
     * exceed 32 bytes per object only by per-chunk overhead (header and,
     * for mmap'd chunks, page rounding). */
    enum { N = 10000, PER_CHUNK = 1000, SIZE = 32 };
    struct slab *s = slab_create(SIZE, PER_CHUNK);
    for (int i = 0; i < N; i++)
        cr_assert_not_null(slab_alloc(s));
    size_t chunks = N / PER_CHUNK;
    cr_assert_leq(slab_footprint(s), (size_t)N * SIZE + chunks * 4096, "footprint %zu",
                  slab_footprint(s));
    cr_assert_geq(slab_footprint(s), (size_t)N * SIZE);
    slab_destroy(s);
}

Test(slab, odd_size_rounds_up_to_16)
{
    /* 17 bytes rounds to 32: 100 objects in one chunk need >= 3200 bytes
     * and, allocated in order from a fresh chunk, sit 32 bytes apart. */
    struct slab *s = slab_create(17, 100);
    char *first = slab_alloc(s);
    char *second = slab_alloc(s);
    cr_assert_eq(second - first, 32);
    cr_assert_geq(slab_footprint(s), 100 * 32);
    slab_destroy(s);
}

Test(slab, many_objects_across_chunks_are_distinct_and_intact)
{
    enum { N = 5000, SIZE = 40 };
    struct slab *s = slab_create(SIZE, 7);
    uint32_t **objs = calloc(N, sizeof(*objs));
    cr_assert_not_null(objs);

    for (uint32_t i = 0; i < N; i++) {
        objs[i] = slab_alloc(s);
        cr_assert_not_null(objs[i]);
        cr_assert(all_zero(objs[i], SIZE));
        for (size_t w = 0; w < SIZE / sizeof(uint32_t); w++)
            objs[i][w] = i;
    }
    cr_assert_eq(slab_in_use(s), N);

    /* Free every other one, then reallocate: the survivors must be untouched
     * (no overlap, free-list links only written into freed objects). */
    for (uint32_t i = 0; i < N; i += 2)
        slab_free(s, objs[i]);
    cr_assert_eq(slab_in_use(s), N / 2);
    size_t footprint = slab_footprint(s);
    for (uint32_t i = 0; i < N; i += 2) {
        objs[i] = slab_alloc(s);
        cr_assert(all_zero(objs[i], SIZE));
        for (size_t w = 0; w < SIZE / sizeof(uint32_t); w++)
            objs[i][w] = i;
    }
    cr_assert_eq(slab_footprint(s), footprint, "freed objects must be reused before growing");
    for (uint32_t i = 0; i < N; i++)
        for (size_t w = 0; w < SIZE / sizeof(uint32_t); w++)
            cr_assert_eq(objs[i][w], i, "object %u word %zu clobbered", i, w);
    free(objs);
    slab_destroy(s);
}

Test(slab, default_chunk_and_large_objects)
{
    struct slab *s = slab_create(200, 0);
    void *p = slab_alloc(s);
    cr_assert_not_null(p);
    cr_assert_geq(slab_footprint(s), 200);
    cr_assert_leq(slab_footprint(s), 128 * 1024, "default chunk is about 64 KiB");

    /* An object bigger than the default chunk still works (one per chunk). */
    struct slab *big = slab_create(100000, 0);
    char *a = slab_alloc(big);
    char *b = slab_alloc(big);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    memset(a, 1, 100000);
    memset(b, 2, 100000);
    cr_assert_eq(a[99999], 1);
    cr_assert_eq(slab_in_use(big), 2);
    slab_destroy(big);
    slab_destroy(s);
}
