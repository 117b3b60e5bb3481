/*
 * Test plugin: an auth plugin as it was built for ABI 3, before
 * ringmq_connect_info told the transport (ABI 4). Its table has the ABI 3
 * layout (which ABI 4 did not change); it reads only the connect fields
 * ABI 3 had, and reports them to the probe: "auth(abi A,CLIENT_ID,LISTENER)".
 *
 * Config: probe.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"
#include "ringmq/plugin.h"

const struct ringmq_plugin *ringmq_plugin_entry(void);

static const struct ringmq_host *host;
static struct test_probe *probe;

static int v3_init(const struct ringmq_host *h, const struct ringmq_kv *config, size_t n,
                   void **state, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    host = h;
    probe = probe_from_config(config, n);
    *state = NULL;
    return 0;
}

static void v3_fini(void *state)
{
    (void)state;
}

static void v3_authenticate(void *state, struct ringmq_call *call,
                            const struct ringmq_connect_info *info)
{
    (void)state;
    char what[160];
    snprintf(what, sizeof(what), "auth(abi %u,%.*s,%s)", (unsigned)host->abi_version,
             (int)info->client_id.len, (const char *)info->client_id.p,
             info->listener ? info->listener : "-");
    probe_trace(probe, what, "v3");
    union ringmq_result r;
    memset(&r, 0, sizeof(r));
    r.auth.decision = RINGMQ_AUTH_ALLOW;
    r.auth.tenant = "t3";
    host->complete(call, &r);
}

static void v3_auth_continue(void *state, struct ringmq_call *call,
                             const struct ringmq_auth_step *step)
{
    (void)state;
    (void)step;
    union ringmq_result r;
    memset(&r, 0, sizeof(r));
    r.auth.decision = RINGMQ_AUTH_BAD_METHOD;
    host->complete(call, &r);
}

static void v3_check(void *state, struct ringmq_call *call, const struct ringmq_check *check)
{
    (void)state;
    (void)check;
    union ringmq_result r;
    memset(&r, 0, sizeof(r));
    r.check.verdict = RINGMQ_GRANTED;
    host->complete(call, &r);
}

static const struct ringmq_plugin table = {
    .abi_version = 3,
    .name = "abi3",
    .kinds = RINGMQ_KIND_AUTH,
    .init = v3_init,
    .fini = v3_fini,
    .authenticate = v3_authenticate,
    .auth_continue = v3_auth_continue,
    .check = v3_check,
};

const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &table;
}
