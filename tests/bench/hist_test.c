/* Unit tests for bench/hist.c: bucket boundaries, percentiles, merge. */
#include "hist.h"

#include <criterion/criterion.h>
#include <stdlib.h>

static struct hist *new_hist(void)
{
    struct hist *h = malloc(sizeof(*h));
    cr_assert(h);
    hist_init(h);
    return h;
}

Test(hist, empty_reports_zero)
{
    struct hist *h = new_hist();
    cr_expect_eq(h->count, 0);
    cr_expect_eq(hist_percentile(h, 50), 0);
    cr_expect_eq(hist_percentile(h, 100), 0);
    cr_expect_eq(hist_mean(h), 0.0);
    free(h);
}

Test(hist, small_values_are_exact)
{
    for (uint64_t v = 0; v < HIST_SUB; v++) {
        cr_expect_eq(hist_bucket_of(v), v);
        cr_expect_eq(hist_bucket_low(v), v);
        cr_expect_eq(hist_bucket_high(v), v);
    }
}

Test(hist, buckets_are_contiguous_and_contain_their_values)
{
    /* Every bucket starts right after the previous one ends, up to the last
     * one, which ends at UINT64_MAX. */
    for (size_t i = 1; i < HIST_BUCKETS; i++)
        cr_assert_eq(hist_bucket_low(i), hist_bucket_high(i - 1) + 1, "bucket %zu", i);
    cr_expect_eq(hist_bucket_high(HIST_BUCKETS - 1), UINT64_MAX);
    cr_expect_eq(hist_bucket_of(UINT64_MAX), HIST_BUCKETS - 1);
    uint64_t probes[] = {
        HIST_SUB, HIST_SUB + 1, 2 * HIST_SUB - 1, 2 * HIST_SUB,     1000,          1023, 1024,
        1025,     123456789,    1ull << 40,       (1ull << 40) - 1, UINT64_MAX - 1};
    for (size_t k = 0; k < sizeof(probes) / sizeof(probes[0]); k++) {
        size_t i = hist_bucket_of(probes[k]);
        cr_expect(hist_bucket_low(i) <= probes[k] && probes[k] <= hist_bucket_high(i),
                  "value %llu bucket %zu", (unsigned long long)probes[k], i);
    }
}

Test(hist, relative_bucket_width_is_bounded)
{
    for (size_t i = HIST_SUB; i < HIST_BUCKETS; i++) {
        uint64_t lo = hist_bucket_low(i), hi = hist_bucket_high(i);
        cr_assert((double)(hi - lo) <= (double)lo / HIST_SUB, "bucket %zu", i);
    }
}

Test(hist, percentiles_of_one_to_thousand)
{
    struct hist *h = new_hist();
    for (uint64_t v = 1; v <= 1000; v++)
        hist_record(h, v * 1000); /* 1 us .. 1 ms in ns */
    cr_expect_eq(h->count, 1000);
    cr_expect_eq(h->min, 1000);
    cr_expect_eq(h->max, 1000000);
    cr_expect_eq(hist_percentile(h, 0), 1000);
    cr_expect_eq(hist_percentile(h, 100), 1000000);
    struct {
        double p;
        uint64_t exact;
    } cases[] = {{50, 500000}, {90, 900000}, {99, 990000}, {99.9, 999000}};
    for (size_t k = 0; k < 4; k++) {
        uint64_t got = hist_percentile(h, cases[k].p);
        /* Never below the exact value, at most one bucket width above it. */
        cr_expect(got >= cases[k].exact, "p%g: %llu", cases[k].p, (unsigned long long)got);
        cr_expect(got <= cases[k].exact + cases[k].exact / HIST_SUB, "p%g: %llu", cases[k].p,
                  (unsigned long long)got);
    }
    cr_expect_float_eq(hist_mean(h), 500500.0, 1e-6);
    free(h);
}

Test(hist, percentile_rank_boundaries)
{
    struct hist *h = new_hist();
    hist_record_n(h, 10, 99);
    hist_record(h, 5000);
    cr_expect_eq(hist_percentile(h, 99), 10);      /* rank 99 of 100 */
    cr_expect_eq(hist_percentile(h, 99.01), 5000); /* rank 100 */
    cr_expect_eq(hist_percentile(h, -1), 0);
    cr_expect_eq(hist_percentile(h, 100.5), 0);
    free(h);
}

Test(hist, record_n_zero_is_nothing)
{
    struct hist *h = new_hist();
    hist_record_n(h, 77, 0);
    cr_expect_eq(h->count, 0);
    cr_expect_eq(h->min, UINT64_MAX);
    free(h);
}

Test(hist, merge_adds_counts_and_extremes)
{
    struct hist *a = new_hist(), *b = new_hist(), *e = new_hist();
    hist_record(a, 3);
    hist_record(a, 100000);
    hist_record(b, 1);
    hist_record(b, 7000000);
    hist_merge(a, b);
    hist_merge(a, e); /* merging an empty one changes nothing */
    cr_expect_eq(a->count, 4);
    cr_expect_eq(a->min, 1);
    cr_expect_eq(a->max, 7000000);
    cr_expect_eq(a->buckets[hist_bucket_of(7000000)], 1);
    cr_expect_eq(hist_percentile(a, 100), 7000000);
    free(a);
    free(b);
    free(e);
}

Test(hist, percentile_rank_is_exact_for_decimal_percentiles)
{
    /* 99.9 is not exact in binary: 99.9 / 100 * 1000 came out as
     * 999.0000000000000568, rounded up to rank 1000, so p99.9 of 1000
     * samples reported the largest one. The 999th of 1000 is 10 here. */
    struct hist *h = new_hist();
    hist_record_n(h, 10, 999);
    hist_record(h, 5000);
    cr_expect_eq(hist_percentile(h, 99.9), 10);
    hist_record_n(h, 10, 9000); /* 9999 x 10, one 5000: rank 9990 */
    cr_expect_eq(hist_percentile(h, 99.9), 10);
    cr_expect_eq(hist_percentile(h, 99.99), 10); /* rank 9999 */
    cr_expect_eq(hist_percentile(h, 99.991), 5000);
    struct hist *g = new_hist();
    hist_record_n(g, 1, 9); /* 10 samples: p90 is rank 9, p99 rank 10 */
    hist_record(g, 1000);
    cr_expect_eq(hist_percentile(g, 90), 1);
    cr_expect_eq(hist_percentile(g, 99), 1000);
    cr_expect_eq(hist_percentile(g, 0.001), 1); /* rank 1, never 0 */
    free(h);
    free(g);
}
