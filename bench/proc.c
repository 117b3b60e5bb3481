/*
 * proc: "Key: N kB" lines of /proc files (see proc.h).
 */
#include "proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

long proc_kib(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtol(line + klen + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

long proc_rss_kib(int pid)
{
    char path[64];
    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    return proc_kib(path, "VmRSS");
}
