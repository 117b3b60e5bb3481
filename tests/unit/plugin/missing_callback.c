/* Test plugin: claims RINGMQ_KIND_AUTH but has no check callback. */
#include <stdlib.h>

#include "ringmq/plugin.h"

const struct ringmq_plugin *ringmq_plugin_entry(void);

static int mc_init(const struct ringmq_host *host, const struct ringmq_kv *config, size_t n,
                   void **state, char *err, size_t errlen)
{
    (void)host, (void)config, (void)n, (void)state, (void)err, (void)errlen;
    abort(); /* never called: the callback check comes first */
}

static void mc_fini(void *state)
{
    (void)state;
}

static void mc_authenticate(void *state, struct ringmq_call *call,
                            const struct ringmq_connect_info *info)
{
    (void)state, (void)call, (void)info;
}

static void mc_auth_continue(void *state, struct ringmq_call *call,
                             const struct ringmq_auth_step *step)
{
    (void)state, (void)call, (void)step;
}

static const struct ringmq_plugin table = {
    .abi_version = RINGMQ_PLUGIN_ABI_VERSION,
    .name = "missing_callback",
    .kinds = RINGMQ_KIND_AUTH,
    .init = mc_init,
    .fini = mc_fini,
    .authenticate = mc_authenticate,
    .auth_continue = mc_auth_continue,
};

const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &table;
}
