/*
 * proc: numbers from /proc for the bench tools (the broker's resident
 * memory, the kernel's slab, the generator's own), read as text.
 */
#ifndef RINGMQ_BENCH_PROC_H
#define RINGMQ_BENCH_PROC_H

/* The N of a "Key: N kB" line of a /proc file; -1 when absent. */
long proc_kib(const char *path, const char *key);

/* VmRSS of process pid in KiB; -1 when unknown (pid <= 0 included). */
long proc_rss_kib(int pid);

/* The user + system CPU seconds process pid has used so far (/proc/PID/stat
 * fields 14 and 15); -1 when unknown (pid <= 0 included). Steal time on a
 * shared host is not in it, which makes CPU per message steadier than a
 * rate. */
double proc_cpu_s(int pid);

#endif
