/* An auth plugin for the e2e tests of the client address: it answers
 * every CONNECT with "not authorized" and the reason string
 * "<remote_addr> <remote_port>" as the broker gave them (an unknown
 * address reads "(null) 0"), so a test reads them back from the CONNACK
 * and compares them with its socket's own address and port.
 *
 * A refusal rather than an ALLOW with a CONNACK user property: the broker
 * does not yet put an auth result's user_properties into CONNACK, while a
 * refusal's reason string reaches a 5.0 client today. */
#include <stdio.h>
#include <string.h>

#include "ringmq/plugin.h"

static const struct ringmq_host *host;

static int init(const struct ringmq_host *h, const struct ringmq_kv *config, size_t n, void **state,
                char *err, size_t errlen)
{
    (void)config;
    (void)n;
    (void)err;
    (void)errlen;
    host = h;
    *state = NULL;
    return 0;
}

static void fini(void *state)
{
    (void)state;
}

static void authenticate(void *state, struct ringmq_call *call,
                         const struct ringmq_connect_info *info)
{
    (void)state;
    char peer[80];
    snprintf(peer, sizeof(peer), "%s %u", info->remote_addr ? info->remote_addr : "(null)",
             (unsigned)info->remote_port);
    union ringmq_result r;
    memset(&r, 0, sizeof(r));
    r.auth.decision = RINGMQ_AUTH_NOT_AUTHORIZED;
    r.auth.reason = peer;
    /* Synchronously: the host copies what it keeps. */
    host->complete(call, &r);
}

static void auth_continue(void *state, struct ringmq_call *call, const struct ringmq_auth_step *st)
{
    (void)state;
    (void)st;
    union ringmq_result r;
    memset(&r, 0, sizeof(r));
    r.auth.decision = RINGMQ_AUTH_BAD_METHOD;
    host->complete(call, &r);
}

static void check(void *state, struct ringmq_call *call, const struct ringmq_check *chk)
{
    (void)state;
    (void)chk;
    union ringmq_result r;
    memset(&r, 0, sizeof(r));
    r.check.verdict = RINGMQ_GRANTED;
    r.check.cacheable = true;
    host->complete(call, &r);
}

static const struct ringmq_plugin plugin = {
    .abi_version = RINGMQ_PLUGIN_ABI_VERSION,
    .name = "test_peer",
    .kinds = RINGMQ_KIND_AUTH,
    .init = init,
    .fini = fini,
    .authenticate = authenticate,
    .auth_continue = auth_continue,
    .check = check,
};

__attribute__((visibility("default"))) const struct ringmq_plugin *ringmq_plugin_entry(void);

__attribute__((visibility("default"))) const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &plugin;
}
