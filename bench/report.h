/*
 * report: the results of a run, merged from every worker, printed as a
 * human table and written as JSON.
 */
#ifndef RINGMQ_BENCH_REPORT_H
#define RINGMQ_BENCH_REPORT_H

#include "bench.h"

#include <stdio.h>

struct results {
    struct wstats st;  /* every worker's, merged */
    double measured_s; /* length of the measurement window */
    uint64_t expected[3], lost[3];
    uint64_t conns_target;
    double cpu_pct, cpu_user_s, cpu_sys_s; /* bench, during the measurement window */
    long bench_rss_kib, bench_hwm_kib;
    long broker_rss_before_kib, broker_rss_after_kib; /* -1 when unknown */
    double broker_cpu_s; /* broker user + sys during the measurement window, -1: unknown */
    long slab_before_kib, slab_after_kib; /* /proc/meminfo Slab */
    const char *ring_mode;
    bool complete; /* the drain saw every expected message */
    bool ok;       /* no loss at QoS 1/2, no duplicate at QoS 2, no failure */
};

/* Merge src into dst (dst initialised by report_init). */
void report_init(struct results *r);
void report_merge(struct results *r, const struct wstats *src);

/* Compute expected / lost / ok from the merged counts. */
void report_finish(struct results *r, const struct run *run);

void report_print(FILE *f, const struct run *run, const struct results *r);

/* 0 or -errno. */
int report_json(const char *path, const struct run *run, const struct results *r);

#endif
