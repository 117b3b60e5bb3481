/*
 * Test plugin: an auth and settings provider that completes every call
 * inside the callback (on the shard's thread). Everything it answers is
 * built in stack buffers that it scribbles over right after complete(), so a
 * host that kept a pointer instead of copying reads garbage.
 *
 * Config: probe (see probe.h), id, complete_twice ("1": call complete a
 * second time, which the host must ignore).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"
#include "ringmq/plugin.h"

const struct ringmq_plugin *ringmq_plugin_entry(void);

struct sync_state {
    const struct ringmq_host *host;
    struct test_probe *probe;
    char id[32];
    bool twice;
};

static void finish(struct sync_state *s, struct ringmq_call *call, const union ringmq_result *res)
{
    s->host->complete(call, res);
    if (s->twice)
        s->host->complete(call, res);
}

static int sa_init(const struct ringmq_host *host, const struct ringmq_kv *config, size_t n,
                   void **state, char *err, size_t errlen)
{
    struct sync_state *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *id = probe_config(config, n, "id");
    const char *twice = probe_config(config, n, "complete_twice");
    s->host = host;
    s->probe = probe_from_config(config, n);
    snprintf(s->id, sizeof(s->id), "%s", id != NULL ? id : "sync");
    s->twice = twice != NULL && strcmp(twice, "1") == 0;
    probe_trace(s->probe, "init", s->id);
    host->log(RINGMQ_LOG_INFO, "ready (id %s)", s->id);
    *state = s;
    return 0;
}

static void sa_fini(void *state)
{
    struct sync_state *s = state;
    probe_trace(s->probe, "fini", s->id);
    free(s);
}

static void sa_reload(void *state)
{
    struct sync_state *s = state;
    probe_trace(s->probe, "reload", s->id);
}

/* Username "bad": bad credentials with a reason. Else allowed into tenant
 * "t-<username>", user id = client id, with attributes, user properties and
 * auth data (with a NUL inside, so it must be copied as bytes). */
static void sa_authenticate(void *state, struct ringmq_call *call,
                            const struct ringmq_connect_info *info)
{
    struct sync_state *s = state;
    char tenant[64], user[64], reason[32], role[16], prop[16];
    uint8_t data[4] = {1, 0, 2, 3};
    snprintf(tenant, sizeof(tenant), "t-%.*s", (int)info->username.len,
             (const char *)info->username.p);
    snprintf(user, sizeof(user), "%.*s", (int)info->client_id.len, (const char *)info->client_id.p);
    snprintf(reason, sizeof(reason), "wrong password");
    snprintf(role, sizeof(role), "admin");
    snprintf(prop, sizeof(prop), "hello");
    struct ringmq_kv attrs[2] = {{"role", role}, {"group", NULL}};
    struct ringmq_kv props[1] = {{"greeting", prop}};
    union ringmq_result r = {0};
    if (info->username.len == 3 && memcmp(info->username.p, "bad", 3) == 0) {
        r.auth.decision = RINGMQ_AUTH_BAD_CREDENTIALS;
        r.auth.reason = reason;
    } else {
        r.auth = (struct ringmq_auth_result){
            .decision = RINGMQ_AUTH_ALLOW,
            .tenant = tenant,
            .user_id = user,
            .attributes = attrs,
            .n_attributes = 2,
            .user_properties = props,
            .n_user_properties = 1,
            .auth_data = {data, sizeof(data)},
        };
    }
    finish(s, call, &r);
    memset(tenant, 'X', sizeof(tenant));
    memset(user, 'X', sizeof(user));
    memset(reason, 'X', sizeof(reason));
    memset(role, 'X', sizeof(role));
    memset(prop, 'X', sizeof(prop));
    memset(data, 0xee, sizeof(data));
    memset(attrs, 0, sizeof(attrs));
    memset(props, 0, sizeof(props));
}

/* Enhanced auth: a first step continues with "server-<data>", a
 * re-authentication is allowed back into its tenant. */
static void sa_auth_continue(void *state, struct ringmq_call *call,
                             const struct ringmq_auth_step *step)
{
    struct sync_state *s = state;
    char buf[64];
    int len = snprintf(buf, sizeof(buf), "server-%.*s", (int)step->auth_data.len,
                       (const char *)step->auth_data.p);
    union ringmq_result r = {0};
    if (step->reauth) {
        r.auth.decision = RINGMQ_AUTH_ALLOW;
        r.auth.tenant = step->tenant;
        r.auth.user_id = step->user_id;
    } else {
        r.auth.decision = RINGMQ_AUTH_CONTINUE;
        r.auth.auth_data = (struct ringmq_bytes){(const uint8_t *)buf, (size_t)len};
    }
    finish(s, call, &r);
    memset(buf, 'X', sizeof(buf));
}

static bool under(const struct ringmq_check *check, const char *prefix)
{
    size_t n = strlen(prefix);
    return check->topic.len >= n && memcmp(check->topic.p, prefix, n) == 0;
}

/* Topics under "ok/" are granted (cacheable); under "pt/" granted per topic
 * (ABI 3); under "rc/HH" denied with reason code 0xHH (ABI 3); everything
 * else denied. */
static void sa_check(void *state, struct ringmq_call *call, const struct ringmq_check *check)
{
    struct sync_state *s = state;
    union ringmq_result r = {0};
    bool ok = under(check, "ok/");
    r.check.verdict = ok ? RINGMQ_GRANTED : RINGMQ_DENIED;
    r.check.cacheable = ok;
    if (under(check, "pt/")) {
        r.check.verdict = RINGMQ_GRANTED_PER_TOPIC;
        r.check.cacheable = true;
    } else if (under(check, "rc/") && check->topic.len == 5) {
        char hex[3] = {(char)check->topic.p[3], (char)check->topic.p[4], 0};
        r.check.reason_code = (uint8_t)strtoul(hex, NULL, 16);
    }
    finish(s, call, &r);
}

/* ABI 3 read checks: topics under "pt/ok/" granted, the rest denied,
 * cacheable. */
static void sa_check_read(void *state, const struct ringmq_check *check,
                          struct ringmq_check_result *out)
{
    struct sync_state *s = state;
    char what[80];
    snprintf(what, sizeof(what), "check_read(%d,%.*s)", (int)check->action, (int)check->topic.len,
             (const char *)check->topic.p);
    probe_trace(s->probe, what, s->id);
    out->verdict = under(check, "pt/ok/") ? RINGMQ_GRANTED : RINGMQ_DENIED;
    out->cacheable = true;
}

/* Tenant "t1" has max_qos 1 and no retain; other tenants: not found. */
static void sa_settings(void *state, struct ringmq_call *call, const char *tenant)
{
    struct sync_state *s = state;
    char qos[4] = "1";
    struct ringmq_kv kv[2] = {{"max_qos", qos}, {"retain_available", "false"}};
    union ringmq_result r = {0};
    if (strcmp(tenant, "t1") == 0) {
        r.settings.found = true;
        r.settings.settings = kv;
        r.settings.n_settings = 2;
    }
    finish(s, call, &r);
    memset(qos, 'X', sizeof(qos));
    memset(kv, 0, sizeof(kv));
}

static const struct ringmq_plugin table = {
    .abi_version = RINGMQ_PLUGIN_ABI_VERSION,
    .name = "sync_allow",
    .kinds = RINGMQ_KIND_AUTH | RINGMQ_KIND_SETTINGS,
    .init = sa_init,
    .fini = sa_fini,
    .reload = sa_reload,
    .authenticate = sa_authenticate,
    .auth_continue = sa_auth_continue,
    .check = sa_check,
    .settings = sa_settings,
    .check_read = sa_check_read,
};

const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &table;
}
