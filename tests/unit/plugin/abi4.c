/*
 * Test plugin: a throttler built for ABI 4, before reconfigure (ABI 5).
 * Its table names ABI 4, and what lies past an ABI 4 table is garbage to
 * the host: here a reconfigure that aborts and no reconfigure_commit, which
 * the host must neither call nor check.
 *
 * Config: probe.
 */
#include <stdlib.h>

#include "probe.h"
#include "ringmq/plugin.h"

const struct ringmq_plugin *ringmq_plugin_entry(void);

static int v4_init(const struct ringmq_host *h, const struct ringmq_kv *config, size_t n,
                   void **state, char *err, size_t errlen)
{
    (void)h, (void)err, (void)errlen;
    *state = probe_from_config(config, n);
    probe_trace(*state, "init", "v4");
    return 0;
}

static void v4_fini(void *state)
{
    (void)state;
}

static bool v4_throttle(void *state, const char *tenant, enum ringmq_resource resource,
                        uint64_t current, uint64_t amount)
{
    (void)state, (void)tenant, (void)resource, (void)current, (void)amount;
    return true;
}

static int v4_garbage(void *state, const struct ringmq_kv *config, size_t n, void **next, char *err,
                      size_t errlen)
{
    (void)state, (void)config, (void)n, (void)next, (void)err, (void)errlen;
    abort();
}

static const struct ringmq_plugin table = {
    .abi_version = 4,
    .name = "abi4",
    .kinds = RINGMQ_KIND_THROTTLE,
    .init = v4_init,
    .fini = v4_fini,
    .throttle = v4_throttle,
    .reconfigure = v4_garbage,
};

const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &table;
}
