/* An auth plugin with MQTT 5.0 enhanced authentication, for the e2e tests:
 * method "plugin-chal": CONNECT data "hello" -> continue with "challenge";
 * AUTH data "response" -> allow (tenant "acme", user "chal-user"); anything
 * else -> bad credentials. Re-authentication: "hello" -> "challenge" ->
 * "response" -> allow. Without a method: allow. Every allow puts the client
 * in tenant "acme" with attributes role=limited, team=blue and CONNACK user
 * properties welcome=acme, plan=gold and, without a method, peer="<remote
 * address> <remote port>" as the broker gave them. Permission checks: CONNECT with
 * client id "banned-id", UNSUBSCRIBE from a filter under "locked/" and,
 * for role=limited, PUBLISH under "ro/" are denied, the rest granted;
 * PUBLISH under "flip/" is granted and denied in turn, never cacheable; PUBLISH
 * under "hold/" is answered late (see wait_release). Any check of a topic whose
 * first level is "rcHH", or a CONNECT with client id "rcHH", is denied with
 * the MQTT 5.0 reason code 0xHH (ABI 3), valid for the packet or not. Answers
 * come from a thread of the plugin's own, as a real provider's would. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ringmq/plugin.h"

static const struct ringmq_host *host;

struct job {
    struct ringmq_call *call;
    enum ringmq_auth_decision decision;
    const char *data;
    char peer[80];       /* "<remote_addr> <remote_port>" of a CONNECT */
    bool hold;           /* answer once released (see wait_release) */
    uint8_t reason_code; /* a check's refusal: the code asked for, 0: none */
};

static void *answer(void *arg)
{
    struct job *j = arg;
    union ringmq_result r;
    memset(&r, 0, sizeof(r));
    r.auth.decision = j->decision;
    static const struct ringmq_kv attrs[] = {{"role", "limited"}, {"team", "blue"}};
    const struct ringmq_kv users[] = {{"welcome", "acme"}, {"plan", "gold"}, {"peer", j->peer}};
    if (j->decision == RINGMQ_AUTH_ALLOW) {
        r.auth.tenant = "acme";
        r.auth.user_id = "chal-user";
        r.auth.attributes = attrs;
        r.auth.n_attributes = 2;
        r.auth.user_properties = users;
        r.auth.n_user_properties = j->peer[0] ? 3 : 2;
    }
    if (j->data)
        r.auth.auth_data = (struct ringmq_bytes){(const uint8_t *)j->data, strlen(j->data)};
    host->complete(j->call, &r);
    free(j);
    return NULL;
}

static void reply_peer(struct ringmq_call *call, enum ringmq_auth_decision d, const char *data,
                       const struct ringmq_connect_info *info)
{
    struct job *j = malloc(sizeof(*j));
    *j = (struct job){call, d, data, ""};
    if (info) /* borrowed: copied before the thread answers */
        snprintf(j->peer, sizeof(j->peer), "%s %u",
                 info->remote_addr ? info->remote_addr : "(null)", (unsigned)info->remote_port);
    pthread_t t;
    pthread_create(&t, NULL, answer, j);
    pthread_detach(t);
}

static void reply(struct ringmq_call *call, enum ringmq_auth_decision d, const char *data)
{
    reply_peer(call, d, data, NULL);
}

static bool is(struct ringmq_bytes b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.p, s, b.len) == 0;
}

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
    if (info->auth_method.len == 0)
        reply_peer(call, RINGMQ_AUTH_ALLOW, NULL, info);
    else if (!is(info->auth_method, "plugin-chal"))
        reply(call, RINGMQ_AUTH_BAD_METHOD, NULL);
    else if (is(info->auth_data, "hello"))
        reply(call, RINGMQ_AUTH_CONTINUE, "challenge");
    else
        reply(call, RINGMQ_AUTH_BAD_CREDENTIALS, NULL);
}

static void auth_continue(void *state, struct ringmq_call *call, const struct ringmq_auth_step *st)
{
    (void)state;
    if (st->reauth && is(st->auth_data, "hello"))
        reply(call, RINGMQ_AUTH_CONTINUE, "challenge");
    else if (is(st->auth_data, "response"))
        reply(call, RINGMQ_AUTH_ALLOW, NULL);
    else
        reply(call, RINGMQ_AUTH_BAD_CREDENTIALS, NULL);
}

/* A PUBLISH check under "hold/" is answered only once the file named by
 * RINGMQ_CHALLENGE_RELEASE exists (bounded: 20 s), like a slow database. */
static void wait_release(void)
{
    const char *path = getenv("RINGMQ_CHALLENGE_RELEASE");
    for (int i = 0; path && i < 2000 && access(path, F_OK) != 0; i++)
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000000}, NULL);
}

static void *answer_check(void *arg)
{
    struct job *j = arg;
    if (j->hold)
        wait_release();
    union ringmq_result r;
    memset(&r, 0, sizeof(r));
    r.check.verdict = j->decision == RINGMQ_AUTH_ALLOW ? RINGMQ_GRANTED : RINGMQ_DENIED;
    r.check.cacheable = j->data == NULL; /* data set: a "flip/" verdict, never cached */
    r.check.reason_code = j->reason_code;
    host->complete(j->call, &r);
    free(j);
    return NULL;
}

/* 0xHH for "rcHH" or "rcHH/...", else 0. */
static uint8_t asked_reason(struct ringmq_bytes b)
{
    if (b.len < 4 || memcmp(b.p, "rc", 2) != 0 || (b.len > 4 && b.p[4] != '/'))
        return 0;
    char hex[3] = {(char)b.p[2], (char)b.p[3], 0};
    return (uint8_t)strtoul(hex, NULL, 16);
}

static void check(void *state, struct ringmq_call *call, const struct ringmq_check *chk)
{
    (void)state;
    uint8_t rc = asked_reason(chk->action == RINGMQ_ACTION_CONNECT ? chk->client_id : chk->topic);
    bool limited = false;
    for (size_t i = 0; i < chk->n_attributes; i++)
        limited |=
            !strcmp(chk->attributes[i].key, "role") && !strcmp(chk->attributes[i].value, "limited");
    bool deny = (chk->action == RINGMQ_ACTION_CONNECT && is(chk->client_id, "banned-id")) ||
                (chk->action == RINGMQ_ACTION_PUBLISH && limited && chk->topic.len >= 3 &&
                 memcmp(chk->topic.p, "ro/", 3) == 0) ||
                (chk->action == RINGMQ_ACTION_UNSUBSCRIBE && chk->topic.len >= 7 &&
                 memcmp(chk->topic.p, "locked/", 7) == 0);
    bool flip = chk->action == RINGMQ_ACTION_PUBLISH && chk->topic.len >= 5 &&
                memcmp(chk->topic.p, "flip/", 5) == 0;
    static atomic_uint flips;
    if (flip) /* granted, denied, granted, ...: the host must ask every time */
        deny = atomic_fetch_add(&flips, 1) % 2 == 1;
    struct job *j = malloc(sizeof(*j));
    *j = (struct job){call, deny || rc ? RINGMQ_AUTH_NOT_AUTHORIZED : RINGMQ_AUTH_ALLOW,
                      flip ? "flip" : NULL, ""};
    j->reason_code = rc;
    j->hold = chk->action == RINGMQ_ACTION_PUBLISH && chk->topic.len >= 5 &&
              memcmp(chk->topic.p, "hold/", 5) == 0;
    pthread_t t;
    pthread_create(&t, NULL, answer_check, j);
    pthread_detach(t);
}

static const struct ringmq_plugin plugin = {
    .abi_version = RINGMQ_PLUGIN_ABI_VERSION,
    .name = "test_challenge",
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
