/*
 * clock: monotonic milliseconds, the one time base of the broker (keepalive,
 * expiry, rates). Inline because every loop turn reads it once.
 */
#ifndef RINGMQ_CORE_CLOCK_H
#define RINGMQ_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Monotonic microseconds, precise (not coarse): for ordering events of
 * different threads, not for the per-message path. */
static inline uint64_t clock_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

#endif
