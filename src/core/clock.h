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

#endif
