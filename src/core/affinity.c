/*
 * affinity: the shard-to-CPU plan (see affinity.h). Pure functions over
 * struct cpu_bits, and two thin wrappers over sched_getaffinity and
 * pthread_setaffinity_np. Called by the main thread at start-up and by each
 * shard thread once, before its loop; nothing here runs per message.
 */
#include "core/affinity.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

unsigned cpu_bits_count(const struct cpu_bits *s)
{
    unsigned n = 0;
    for (unsigned i = 0; i < AFFINITY_WORDS; i++)
        n += (unsigned)__builtin_popcountll(s->w[i]);
    return n;
}

int cpu_bits_nth(const struct cpu_bits *s, unsigned k)
{
    for (unsigned cpu = 0; cpu < AFFINITY_MAX_CPUS; cpu++)
        if (cpu_bits_has(s, cpu) && k-- == 0)
            return (int)cpu;
    return -1;
}

char *cpu_bits_format(const struct cpu_bits *s, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap == 0)
        return buf;
    buf[0] = '\0';
    for (unsigned cpu = 0; cpu < AFFINITY_MAX_CPUS; cpu++) {
        if (!cpu_bits_has(s, cpu))
            continue;
        unsigned last = cpu;
        while (last + 1 < AFFINITY_MAX_CPUS && cpu_bits_has(s, last + 1))
            last++;
        int n = last == cpu ? snprintf(buf + len, cap - len, "%s%u", len ? "," : "", cpu)
                            : snprintf(buf + len, cap - len, "%s%u-%u", len ? "," : "", cpu, last);
        if (n < 0 || (size_t)n >= cap - len) {
            buf[len] = '\0'; /* cut at the last whole entry */
            break;
        }
        len += (size_t)n;
        cpu = last;
    }
    return buf;
}

/* One decimal CPU number at *p, advancing it. */
static int parse_cpu(const char **p, unsigned *out)
{
    const char *s = *p;
    unsigned v = 0;
    if (!isdigit((unsigned char)*s))
        return -EINVAL;
    while (isdigit((unsigned char)*s)) {
        v = v * 10 + (unsigned)(*s++ - '0');
        if (v >= AFFINITY_MAX_CPUS)
            return -ERANGE;
    }
    *p = s;
    *out = v;
    return 0;
}

static const char *skip_spaces(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* One entry "a" or "a-b" at *p, into set. */
static int parse_entry(const char **p, struct cpu_bits *set, char *why, size_t whylen)
{
    unsigned lo, hi;
    const char *s = skip_spaces(*p);
    int rc = parse_cpu(&s, &lo);
    hi = lo;
    if (rc == 0 && *s == '-') {
        s++;
        rc = parse_cpu(&s, &hi);
    }
    if (rc == -ERANGE) {
        snprintf(why, whylen, "CPU numbers go up to %u", AFFINITY_MAX_CPUS - 1);
        return -EINVAL;
    }
    if (rc < 0) {
        snprintf(why, whylen, "expected auto, none or a CPU list like 0-3,8");
        return -EINVAL;
    }
    if (hi < lo) {
        snprintf(why, whylen, "range %u-%u runs backwards", lo, hi);
        return -EINVAL;
    }
    for (unsigned c = lo; c <= hi; c++)
        cpu_bits_set(set, c);
    *p = skip_spaces(s);
    return 0;
}

int affinity_parse(const char *text, struct affinity *out, char *why, size_t whylen)
{
    struct affinity a;
    memset(&a, 0, sizeof(a));
    if (strcmp(text, "auto") == 0) {
        a.mode = AFFINITY_AUTO;
    } else if (strcmp(text, "none") == 0) {
        a.mode = AFFINITY_NONE;
    } else {
        a.mode = AFFINITY_LIST;
        const char *p = text;
        for (;;) {
            if (parse_entry(&p, &a.list, why, whylen) < 0)
                return -EINVAL;
            if (*p == '\0')
                break;
            if (*p++ != ',') {
                snprintf(why, whylen, "expected auto, none or a CPU list like 0-3,8");
                return -EINVAL;
            }
        }
    }
    *out = a;
    return 0;
}

/* Shard i on the (i mod n)-th CPU of set. */
static void spread(const struct cpu_bits *set, uint32_t nshards, int *cpu)
{
    unsigned n = cpu_bits_count(set);
    for (uint32_t i = 0; i < nshards; i++)
        cpu[i] = cpu_bits_nth(set, i % n);
}

static int plan_list(const struct affinity *a, const struct cpu_bits *allowed, uint32_t nshards,
                     int *cpu, char *why, size_t whylen)
{
    char buf[128];
    for (unsigned c = 0; c < AFFINITY_MAX_CPUS; c++) {
        if (cpu_bits_has(&a->list, c) && !cpu_bits_has(allowed, c)) {
            snprintf(why, whylen, "CPU %u is not one this process may run on (%s)", c,
                     cpu_bits_format(allowed, buf, sizeof(buf)));
            return -EINVAL;
        }
    }
    spread(&a->list, nshards, cpu);
    snprintf(why, whylen, "shards pinned to CPUs %s (server.cpu_affinity)",
             cpu_bits_format(&a->list, buf, sizeof(buf)));
    return 0;
}

int affinity_plan(const struct affinity *a, const struct cpu_bits *allowed, unsigned online,
                  uint32_t nshards, int *cpu, char *why, size_t whylen)
{
    char buf[128];
    unsigned n = cpu_bits_count(allowed);
    for (uint32_t i = 0; i < nshards; i++)
        cpu[i] = -1;
    if (a->mode == AFFINITY_LIST)
        return plan_list(a, allowed, nshards, cpu, why, whylen);
    if (a->mode == AFFINITY_NONE) {
        snprintf(why, whylen, "shards not pinned (server.cpu_affinity = none)");
        return 0;
    }
    cpu_bits_format(allowed, buf, sizeof(buf));
    if (n == 0 || n >= online) {
        snprintf(why, whylen,
                 "shards not pinned: this process may run on every CPU (%s), which other "
                 "processes may share (server.cpu_affinity = auto)",
                 buf);
    } else if (n > nshards) {
        snprintf(why, whylen,
                 "shards not pinned: %u shard%s in a set of %u CPUs (%s) "
                 "(server.cpu_affinity = auto)",
                 nshards, nshards == 1 ? "" : "s", n, buf);
    } else {
        spread(allowed, nshards, cpu);
        snprintf(why, whylen,
                 "shards pinned within the reserved CPU set %s (server.cpu_affinity = auto)", buf);
    }
    return 0;
}

int affinity_read_process(struct cpu_bits *allowed, unsigned *online)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return -errno;
    memset(allowed, 0, sizeof(*allowed));
    for (unsigned c = 0; c < AFFINITY_MAX_CPUS && c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set))
            cpu_bits_set(allowed, c);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    *online = n > 0 ? (unsigned)n : cpu_bits_count(allowed);
    return 0;
}

int affinity_pin_self(int cpu)
{
    cpu_set_t set;
    if (cpu < 0)
        return 0;
    if (cpu >= CPU_SETSIZE)
        return -EINVAL;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return -pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}
