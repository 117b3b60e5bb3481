/*
 * probe: how the test plugins report to host_test.c. The test owns a struct
 * test_probe and hands its address to a plugin as the config key "probe"
 * (printed with %p; plugin and test share the process). Plugins append
 * "what:id;" to the trace, so a test can check which plugin was called, in
 * which order.
 */
#ifndef RINGMQ_TESTS_PLUGIN_PROBE_H
#define RINGMQ_TESTS_PLUGIN_PROBE_H

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "ringmq/plugin.h"

struct test_probe {
    pthread_mutex_t mu;
    char trace[1024];
};

static inline const char *probe_config(const struct ringmq_kv *config, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(config[i].key, key) == 0)
            return config[i].value;
    }
    return NULL;
}

static inline struct test_probe *probe_from_config(const struct ringmq_kv *config, size_t n)
{
    const char *s = probe_config(config, n, "probe");
    void *p = NULL;
    if (s == NULL || sscanf(s, "%p", &p) != 1)
        return NULL;
    return p;
}

static inline void probe_trace(struct test_probe *pr, const char *what, const char *id)
{
    if (pr == NULL)
        return;
    pthread_mutex_lock(&pr->mu);
    size_t len = strlen(pr->trace);
    snprintf(pr->trace + len, sizeof(pr->trace) - len, "%s:%s;", what, id);
    pthread_mutex_unlock(&pr->mu);
}

#endif
