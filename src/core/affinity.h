/*
 * affinity: which CPU, if any, each shard thread is pinned to.
 *
 * Pinning a shard to one CPU pays where that CPU is the broker's alone: no
 * migrations, warm caches. On a host whose CPUs are shared with other busy
 * processes it costs: a pinned thread cannot leave a CPU another process
 * keeps busy, so the scheduler's time slice (milliseconds) becomes the
 * broker's latency. So by default (`auto`) shards are pinned only where
 * the CPUs look reserved for the broker: the process was started inside a
 * CPU set smaller than the machine (taskset, a cgroup cpuset, a container's
 * --cpuset-cpus) that holds no more CPUs than there are shards. `none`
 * never pins, a list pins shard i to the list's (i mod n)-th CPU.
 *
 * Parsing and planning are pure functions over bit sets (unit-tested
 * without touching the process); affinity_pin_self is the one syscall.
 */
#ifndef RINGMQ_CORE_AFFINITY_H
#define RINGMQ_CORE_AFFINITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AFFINITY_MAX_CPUS 1024 /* CPU numbers 0..1023, as glibc's cpu_set_t */
#define AFFINITY_WORDS    (AFFINITY_MAX_CPUS / 64)

/* A set of CPU numbers. */
struct cpu_bits {
    uint64_t w[AFFINITY_WORDS];
};

enum affinity_mode {
    AFFINITY_AUTO = 0, /* pin only inside a reserved CPU set (see above) */
    AFFINITY_NONE,     /* never pin: the scheduler places the threads */
    AFFINITY_LIST,     /* pin to the CPUs listed */
};

struct affinity {
    enum affinity_mode mode;
    struct cpu_bits list; /* AFFINITY_LIST: the CPUs named (at least one) */
};

static inline void cpu_bits_set(struct cpu_bits *s, unsigned cpu)
{
    s->w[cpu / 64] |= UINT64_C(1) << (cpu % 64);
}

static inline bool cpu_bits_has(const struct cpu_bits *s, unsigned cpu)
{
    return (s->w[cpu / 64] >> (cpu % 64)) & 1;
}

/* Number of CPUs in the set. */
unsigned cpu_bits_count(const struct cpu_bits *s);

/* The k-th (from 0) CPU of the set in ascending order, or -1. */
int cpu_bits_nth(const struct cpu_bits *s, unsigned k);

/* Writes the set as a CPU list ("0-3,8"; "" when empty) into buf, always
 * NUL-terminated; returns buf. */
char *cpu_bits_format(const struct cpu_bits *s, char *buf, size_t cap);

/* "auto", "none", or a CPU list: numbers and ranges a-b (a <= b) separated
 * by commas, each below AFFINITY_MAX_CPUS. 0 or -EINVAL with the reason in
 * why. */
int affinity_parse(const char *text, struct affinity *out, char *why, size_t whylen);

/*
 * Decide the CPU of each of nshards shards: cpu[i] gets a CPU number, or -1
 * for "not pinned". `allowed` is the set the process may run on
 * (sched_getaffinity), `online` the machine's online CPU count. A list
 * naming a CPU outside `allowed` is refused (-EINVAL, why says which). On
 * success why gets one line for the log saying what was decided and why.
 */
int affinity_plan(const struct affinity *a, const struct cpu_bits *allowed, unsigned online,
                  uint32_t nshards, int *cpu, char *why, size_t whylen);

/* The calling process's allowed set and the online CPU count, from the
 * kernel. 0 or -errno. */
int affinity_read_process(struct cpu_bits *allowed, unsigned *online);

/* Pins the calling thread to `cpu` (nothing for -1). 0 or -errno. */
int affinity_pin_self(int cpu);

#endif
