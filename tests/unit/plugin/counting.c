/*
 * Test plugin: a throttler and event collector that records every call in
 * the test's probe. throttle allows while current + amount <= limit.
 *
 * Config: probe, id, limit. ABI 5 reconfigure takes a new limit ("bad" is
 * refused with the message "limit: bad"); traces "reconfigure" and
 * "commit" or "discard".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"
#include "ringmq/plugin.h"

const struct ringmq_plugin *ringmq_plugin_entry(void);

struct counting_state {
    struct test_probe *probe;
    char id[32];
    unsigned long long limit;
};

static int ct_init(const struct ringmq_host *host, const struct ringmq_kv *config, size_t n,
                   void **state, char *err, size_t errlen)
{
    (void)host;
    struct counting_state *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *id = probe_config(config, n, "id");
    const char *limit = probe_config(config, n, "limit");
    s->probe = probe_from_config(config, n);
    snprintf(s->id, sizeof(s->id), "%s", id != NULL ? id : "counting");
    s->limit = limit != NULL ? strtoull(limit, NULL, 10) : 0;
    probe_trace(s->probe, "init", s->id);
    *state = s;
    return 0;
}

static void ct_fini(void *state)
{
    struct counting_state *s = state;
    probe_trace(s->probe, "fini", s->id);
    free(s);
}

static void ct_reload(void *state)
{
    struct counting_state *s = state;
    probe_trace(s->probe, "reload", s->id);
}

static bool ct_throttle(void *state, const char *tenant, enum ringmq_resource resource,
                        uint64_t current, uint64_t amount)
{
    struct counting_state *s = state;
    char what[64];
    snprintf(what, sizeof(what), "throttle(%s,%d)", tenant, (int)resource);
    probe_trace(s->probe, what, s->id);
    return current + amount <= __atomic_load_n(&s->limit, __ATOMIC_RELAXED);
}

static void ct_event(void *state, const struct ringmq_event *ev)
{
    struct counting_state *s = state;
    char what[64];
    snprintf(what, sizeof(what), "event(%d,%s)", (int)ev->type, ev->tenant);
    probe_trace(s->probe, what, s->id);
}

static int ct_reconfigure(void *state, const struct ringmq_kv *config, size_t n, void **next,
                          char *err, size_t errlen)
{
    struct counting_state *s = state;
    const char *limit = probe_config(config, n, "limit");
    if (limit != NULL && strcmp(limit, "bad") == 0) {
        snprintf(err, errlen, "limit: bad");
        return -1;
    }
    unsigned long long *v = malloc(sizeof(*v));
    if (v == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *v = limit != NULL ? strtoull(limit, NULL, 10) : 0;
    probe_trace(s->probe, "reconfigure", s->id);
    *next = v;
    return 0;
}

static void ct_reconfigure_commit(void *state, void *next, bool apply)
{
    struct counting_state *s = state;
    unsigned long long *v = next;
    if (apply)
        __atomic_store_n(&s->limit, *v, __ATOMIC_RELAXED);
    probe_trace(s->probe, apply ? "commit" : "discard", s->id);
    free(v);
}

static const struct ringmq_plugin table = {
    .abi_version = RINGMQ_PLUGIN_ABI_VERSION,
    .name = "counting",
    .kinds = RINGMQ_KIND_THROTTLE | RINGMQ_KIND_EVENTS,
    .init = ct_init,
    .fini = ct_fini,
    .reload = ct_reload,
    .throttle = ct_throttle,
    .event = ct_event,
    .reconfigure = ct_reconfigure,
    .reconfigure_commit = ct_reconfigure_commit,
};

const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &table;
}
