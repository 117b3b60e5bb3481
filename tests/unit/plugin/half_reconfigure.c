/* Test plugin: ABI 5 with reconfigure but no reconfigure_commit (the two
 * come together): refused at load. */
#include <stdlib.h>

#include "ringmq/plugin.h"

const struct ringmq_plugin *ringmq_plugin_entry(void);

static int hr_init(const struct ringmq_host *host, const struct ringmq_kv *config, size_t n,
                   void **state, char *err, size_t errlen)
{
    (void)host, (void)config, (void)n, (void)state, (void)err, (void)errlen;
    abort(); /* never called: the callback check comes first */
}

static void hr_fini(void *state)
{
    (void)state;
}

static int hr_reconfigure(void *state, const struct ringmq_kv *config, size_t n, void **next,
                          char *err, size_t errlen)
{
    (void)state, (void)config, (void)n, (void)next, (void)err, (void)errlen;
    return 0;
}

static const struct ringmq_plugin table = {
    .abi_version = RINGMQ_PLUGIN_ABI_VERSION,
    .name = "half_reconfigure",
    .init = hr_init,
    .fini = hr_fini,
    .reconfigure = hr_reconfigure,
};

const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &table;
}
