/* Test plugin: built for ABI 999, otherwise complete; the host must refuse it
 * before calling anything. */
#include <stdlib.h>

#include "ringmq/plugin.h"

const struct ringmq_plugin *ringmq_plugin_entry(void);

static int bad_init(const struct ringmq_host *host, const struct ringmq_kv *config, size_t n,
                    void **state, char *err, size_t errlen)
{
    (void)host, (void)config, (void)n, (void)state, (void)err, (void)errlen;
    abort(); /* never called: the ABI check comes first */
}

static void bad_fini(void *state)
{
    (void)state;
    abort();
}

static const struct ringmq_plugin table = {
    .abi_version = 999,
    .name = "bad_abi",
    .kinds = 0,
    .init = bad_init,
    .fini = bad_fini,
};

const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &table;
}
