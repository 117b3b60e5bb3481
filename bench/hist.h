/*
 * hist: a log-bucketed histogram of unsigned 64-bit values (latencies in
 * nanoseconds), for ringmq-bench.
 *
 * Values below HIST_SUB are counted exactly; above, every power of two is
 * split into HIST_SUB linear sub-buckets, so a bucket is at most 1/HIST_SUB
 * (about 1.6 %) wider than its lower bound over the whole 64-bit range. The
 * struct is plain data (no allocation): one per thread, merged at the end.
 * Not thread-safe: one writer, read after the writer is done.
 */
#ifndef RINGMQ_BENCH_HIST_H
#define RINGMQ_BENCH_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_SUB_BITS 6
#define HIST_SUB      (1u << HIST_SUB_BITS)
/* Exact buckets 0..HIST_SUB-1, then HIST_SUB per exponent HIST_SUB_BITS..63. */
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
    uint64_t count;
    uint64_t min; /* UINT64_MAX when empty */
    uint64_t max;
    long double sum; /* for the mean; a long double does not overflow */
    uint64_t buckets[HIST_BUCKETS];
};

/* Empty the histogram (caller's storage). */
void hist_init(struct hist *h);

/* Index of the bucket that counts v. */
size_t hist_bucket_of(uint64_t v);

/* Smallest and largest value counted by bucket i (i < HIST_BUCKETS). */
uint64_t hist_bucket_low(size_t i);
uint64_t hist_bucket_high(size_t i);

/* Count v once, or n times. */
void hist_record(struct hist *h, uint64_t v);
void hist_record_n(struct hist *h, uint64_t v, uint64_t n);

/* Add every count of src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);

/*
 * The value at percentile p (0..100): the highest value of the bucket that
 * holds the ceil(p/100 * count)-th smallest value, capped by the largest
 * value recorded (so p = 100 gives max exactly); p = 0 gives the smallest
 * value recorded. 0 when empty or when p is outside 0..100.
 */
uint64_t hist_percentile(const struct hist *h, double p);

/* Mean of the recorded values; 0 when empty. */
double hist_mean(const struct hist *h);

#endif
