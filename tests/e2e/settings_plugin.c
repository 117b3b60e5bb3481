/* A setting provider for the e2e tests: tenant "global" gets max_qos = 0
 * (and whatever the plugin's `max_qos` key says instead, if set). */
#include <stdlib.h>
#include <string.h>

#include "ringmq/plugin.h"

static const struct ringmq_host *host;
static char max_qos[8] = "0";

static int init(const struct ringmq_host *h, const struct ringmq_kv *config, size_t n, void **state,
                char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    host = h;
    for (size_t i = 0; i < n; i++)
        if (strcmp(config[i].key, "max_qos") == 0)
            strncpy(max_qos, config[i].value, sizeof(max_qos) - 1);
    *state = NULL;
    return 0;
}

static void fini(void *state)
{
    (void)state;
}

static void settings(void *state, struct ringmq_call *call, const char *tenant)
{
    (void)state;
    struct ringmq_kv kv[] = {{"max_qos", max_qos}};
    union ringmq_result r;
    memset(&r, 0, sizeof(r));
    if (strcmp(tenant, "global") == 0) {
        r.settings.found = true;
        r.settings.settings = kv;
        r.settings.n_settings = 1;
    }
    host->complete(call, &r);
}

static const struct ringmq_plugin plugin = {
    .abi_version = RINGMQ_PLUGIN_ABI_VERSION,
    .name = "test_settings",
    .kinds = RINGMQ_KIND_SETTINGS,
    .init = init,
    .fini = fini,
    .settings = settings,
};

__attribute__((visibility("default"))) const struct ringmq_plugin *ringmq_plugin_entry(void);

__attribute__((visibility("default"))) const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &plugin;
}
