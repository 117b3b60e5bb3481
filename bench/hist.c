/*
 * hist: log-bucketed latency histogram (see hist.h). Plain arithmetic over a
 * caller-owned struct; used by one bench thread at a time, merged by main.
 */
#include "hist.h"

#include <string.h>

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

size_t hist_bucket_of(uint64_t v)
{
    if (v < HIST_SUB)
        return (size_t)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= HIST_SUB_BITS */
    unsigned shift = e - HIST_SUB_BITS;
    uint64_t mant = v >> shift; /* HIST_SUB .. 2*HIST_SUB-1 */
    return (size_t)(shift + 1) * HIST_SUB + (size_t)(mant - HIST_SUB);
}

uint64_t hist_bucket_low(size_t i)
{
    if (i < HIST_SUB)
        return i;
    unsigned shift = (unsigned)(i / HIST_SUB) - 1;
    uint64_t mant = HIST_SUB + i % HIST_SUB;
    return mant << shift;
}

uint64_t hist_bucket_high(size_t i)
{
    if (i < HIST_SUB)
        return i;
    unsigned shift = (unsigned)(i / HIST_SUB) - 1;
    uint64_t mant = HIST_SUB + i % HIST_SUB;
    /* The last bucket ends at UINT64_MAX: compute without overflowing. */
    return (mant << shift) + ((1ull << shift) - 1);
}

void hist_record_n(struct hist *h, uint64_t v, uint64_t n)
{
    if (n == 0)
        return;
    h->buckets[hist_bucket_of(v)] += n;
    h->count += n;
    h->sum += (long double)v * (long double)n;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void hist_record(struct hist *h, uint64_t v)
{
    hist_record_n(h, v, 1);
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    if (src->count == 0)
        return;
    for (size_t i = 0; i < HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
    if (h->count == 0 || !(p >= 0.0 && p <= 100.0))
        return 0;
    if (p == 0.0)
        return h->min;
    /* Rank of the wanted value, 1-based: ceil(p/100 * count), at least 1.
     * In integers, p taken to 1e-9: a decimal p such as 99.9 is not exact
     * in binary, and the product rounded in floating point can land just
     * above a whole rank (99.9% of 1000 gave 999.00000000000006, rank
     * 1000: the largest value instead of the 999th). */
    const uint64_t scale = 100000000000ull;  /* 100 % in units of 1e-9 % */
    uint64_t pn = (uint64_t)(p * 1e9 + 0.5); /* p >= 0: rounded */
    unsigned __int128 num = (unsigned __int128)pn * h->count;
    uint64_t rank = (uint64_t)(num / scale) + (num % scale ? 1 : 0);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = hist_bucket_high(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}

double hist_mean(const struct hist *h)
{
    return h->count ? (double)(h->sum / (long double)h->count) : 0.0;
}
