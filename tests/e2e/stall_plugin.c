/* A test plugin standing in for a shard made slow by one tenant's traffic
 * (issue 10: 1000 subscribers that never read). Auth: every client is
 * allowed, in the tenant named by its user name (none: "global"); every
 * permission check is granted. Throttle: the outbound-bytes question the
 * broker asks once per message and shard before delivering is answered
 * after `stall_us` microseconds (default 2000) for tenant "stall", so the
 * shard delivering that tenant's messages falls behind whoever publishes
 * them. SIGHUP (reload) ends the stalling, so the broker can drain and stop.
 * Everything is answered synchronously, from the calling shard. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringmq/plugin.h"

static atomic_long stall_us = 2000;
static const struct ringmq_host *host;

static int init(const struct ringmq_host *h, const struct ringmq_kv *config, size_t n, void **state,
                char *err, size_t errlen)
{
    (void)err, (void)errlen;
    host = h;
    for (size_t i = 0; i < n; i++)
        if (strcmp(config[i].key, "stall_us") == 0)
            atomic_store(&stall_us, atol(config[i].value));
    *state = NULL;
    return 0;
}

static void fini(void *state)
{
    (void)state;
}

static void reload(void *state)
{
    (void)state;
    atomic_store(&stall_us, 0);
}

static void authenticate(void *state, struct ringmq_call *call,
                         const struct ringmq_connect_info *info)
{
    (void)state;
    char tenant[64] = "";
    if (info->has_username && info->username.len < sizeof(tenant))
        memcpy(tenant, info->username.p, info->username.len);
    union ringmq_result r;
    memset(&r, 0, sizeof(r));
    r.auth.decision = RINGMQ_AUTH_ALLOW;
    r.auth.tenant = tenant[0] ? tenant : NULL;
    host->complete(call, &r);
}

static void auth_continue(void *state, struct ringmq_call *call, const struct ringmq_auth_step *st)
{
    (void)state, (void)st;
    union ringmq_result r;
    memset(&r, 0, sizeof(r));
    r.auth.decision = RINGMQ_AUTH_BAD_METHOD;
    host->complete(call, &r);
}

static void check(void *state, struct ringmq_call *call, const struct ringmq_check *c)
{
    (void)state, (void)c;
    union ringmq_result r;
    memset(&r, 0, sizeof(r));
    r.check.verdict = RINGMQ_GRANTED;
    r.check.cacheable = true;
    host->complete(call, &r);
}

static bool throttle(void *state, const char *tenant, enum ringmq_resource res, uint64_t current,
                     uint64_t amount)
{
    (void)state, (void)current, (void)amount;
    long us = atomic_load(&stall_us);
    if (res == RINGMQ_RES_BYTES_OUT_RATE && us > 0 && strcmp(tenant, "stall") == 0) {
        struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
    return true;
}

static const struct ringmq_plugin plugin = {
    .abi_version = RINGMQ_PLUGIN_ABI_VERSION,
    .name = "test_stall",
    .kinds = RINGMQ_KIND_AUTH | RINGMQ_KIND_THROTTLE,
    .init = init,
    .fini = fini,
    .reload = reload,
    .authenticate = authenticate,
    .auth_continue = auth_continue,
    .check = check,
    .throttle = throttle,
};

__attribute__((visibility("default"))) const struct ringmq_plugin *ringmq_plugin_entry(void);

__attribute__((visibility("default"))) const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &plugin;
}
