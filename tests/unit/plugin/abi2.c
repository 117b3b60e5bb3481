/*
 * Test plugin: an auth and event plugin as it was built for ABI 2, before
 * check results had a reason code and the table had check_read. Its table is
 * the ABI 2 layout, followed in memory by a check_read that records being
 * called: a host reading past the ABI 2 table would find it. Its check
 * results have every byte set, the padding where ABI 3 keeps reason_code
 * included, as a plugin that fills only the fields it knows may leave them.
 *
 * check: "pt/..." answers 3 (a value ABI 2 does not have), anything else
 * DENIED, cacheable. init and event report to the probe (the ABI version
 * the host speaks to it; the event's type and reason).
 *
 * Config: probe.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"
#include "ringmq/plugin.h"

const struct ringmq_plugin *ringmq_plugin_entry(void);

/* struct ringmq_plugin as ABI 2 laid it out. */
struct plugin_v2 {
    uint32_t abi_version;
    const char *name;
    uint32_t kinds;
    int (*init)(const struct ringmq_host *host, const struct ringmq_kv *config, size_t n,
                void **state, char *err, size_t errlen);
    void (*fini)(void *state);
    void (*reload)(void *state);
    void (*authenticate)(void *state, struct ringmq_call *call,
                         const struct ringmq_connect_info *info);
    void (*auth_continue)(void *state, struct ringmq_call *call,
                          const struct ringmq_auth_step *step);
    void (*check)(void *state, struct ringmq_call *call, const struct ringmq_check *check);
    bool (*throttle)(void *state, const char *tenant, enum ringmq_resource resource,
                     uint64_t current, uint64_t amount);
    void (*settings)(void *state, struct ringmq_call *call, const char *tenant);
    void (*event)(void *state, const struct ringmq_event *ev);
};

struct v2_state {
    const struct ringmq_host *host;
    struct test_probe *probe;
};

static int v2_init(const struct ringmq_host *host, const struct ringmq_kv *config, size_t n,
                   void **state, char *err, size_t errlen)
{
    struct v2_state *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->host = host;
    s->probe = probe_from_config(config, n);
    char what[32];
    snprintf(what, sizeof(what), "init(abi %u)", (unsigned)host->abi_version);
    probe_trace(s->probe, what, "v2");
    *state = s;
    return 0;
}

static void v2_fini(void *state)
{
    free(state);
}

static void v2_authenticate(void *state, struct ringmq_call *call,
                            const struct ringmq_connect_info *info)
{
    struct v2_state *s = state;
    (void)info;
    union ringmq_result r;
    memset(&r, 0, sizeof(r));
    r.auth.decision = RINGMQ_AUTH_ALLOW;
    s->host->complete(call, &r);
}

static void v2_auth_continue(void *state, struct ringmq_call *call,
                             const struct ringmq_auth_step *step)
{
    struct v2_state *s = state;
    (void)step;
    union ringmq_result r;
    memset(&r, 0, sizeof(r));
    r.auth.decision = RINGMQ_AUTH_BAD_METHOD;
    s->host->complete(call, &r);
}

static void v2_check(void *state, struct ringmq_call *call, const struct ringmq_check *check)
{
    struct v2_state *s = state;
    union ringmq_result r;
    memset(&r, 0x97, sizeof(r)); /* 0x97: a reason code SUBACK and PUBACK allow */
    bool pt = check->topic.len >= 3 && memcmp(check->topic.p, "pt/", 3) == 0;
    r.check.verdict = pt ? (enum ringmq_verdict)3 : RINGMQ_DENIED;
    r.check.cacheable = true;
    s->host->complete(call, &r);
}

static void v2_event(void *state, const struct ringmq_event *ev)
{
    struct v2_state *s = state;
    char what[48];
    snprintf(what, sizeof(what), "event(%d,%u)", (int)ev->type, (unsigned)ev->reason);
    probe_trace(s->probe, what, "v2");
}

static void v2_check_read(void *state, const struct ringmq_check *check,
                          struct ringmq_check_result *out)
{
    struct v2_state *s = state;
    (void)check;
    probe_trace(s->probe, "check_read", "v2");
    out->verdict = RINGMQ_GRANTED;
}

/* The ABI 2 table, and right after it what ABI 3 would read as check_read. */
static const struct {
    struct plugin_v2 table;
    void (*after)(void *state, const struct ringmq_check *check, struct ringmq_check_result *out);
} image = {
    .table =
        {
            .abi_version = 2,
            .name = "abi2",
            .kinds = RINGMQ_KIND_AUTH | RINGMQ_KIND_EVENTS,
            .init = v2_init,
            .fini = v2_fini,
            .authenticate = v2_authenticate,
            .auth_continue = v2_auth_continue,
            .check = v2_check,
            .event = v2_event,
        },
    .after = v2_check_read,
};

const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    /* The host reads only the ABI 2 prefix of struct ringmq_plugin, which
     * struct plugin_v2 lays out identically. */
    return (const struct ringmq_plugin *)(const void *)&image.table;
}
