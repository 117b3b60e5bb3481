/* Test plugin: init fails with a message, as a plugin whose users file is
 * missing would. fini must not be called (init did not succeed). */
#include <stdio.h>
#include <stdlib.h>

#include "ringmq/plugin.h"

const struct ringmq_plugin *ringmq_plugin_entry(void);

static int fi_init(const struct ringmq_host *host, const struct ringmq_kv *config, size_t n,
                   void **state, char *err, size_t errlen)
{
    (void)host, (void)config, (void)n, (void)state;
    snprintf(err, errlen, "cannot open users file /nonexistent/users: No such file or directory");
    return -1;
}

static void fi_fini(void *state)
{
    (void)state;
    abort();
}

static const struct ringmq_plugin table = {
    .abi_version = RINGMQ_PLUGIN_ABI_VERSION,
    .name = "failing_init",
    .kinds = 0,
    .init = fi_init,
    .fini = fi_fini,
};

const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &table;
}
