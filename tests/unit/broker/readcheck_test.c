/* readcheck: per-topic read checks of a session, asked of the auth plugin's
 * check_read once per topic and kept until a reload or a new identity. The
 * plugin is tests/unit/plugin/sync_allow (topics under pt/ok/ readable), which
 * writes each check_read it answers to the probe. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/identity.h"
#include "broker/readcheck.h"
#include "broker/shard.h"
#include "plugin/host.h"
#include "session/session.h"
#include "probe.h"

static struct test_probe probe = {.mu = PTHREAD_MUTEX_INITIALIZER};
static struct plugin_host *host;
static struct broker broker;
static struct shard shard;
static struct tenant tenant = {.name = "acme"};
static struct session ss;
static uint8_t client_id[] = "dev-1";

static void setup(void)
{
    char addr[32];
    snprintf(addr, sizeof(addr), "%p", (void *)&probe);
    struct ringmq_kv kv[] = {{"probe", addr}, {"id", "s"}};
    struct plugin_spec spec = {"auth", TEST_PLUGIN_DIR "/sync_allow.so", kv, 2};
    char err[256];
    cr_assert_eq(plugin_host_create(&spec, 1, 1000, &host, err, sizeof(err)), 0, "%s", err);
    broker.plugins = host;
    shard.broker = &broker;
    ss.tenant = &tenant;
    ss.st.client_id = client_id;
    ss.st.client_id_len = 5;
    probe.trace[0] = '\0';
}

static void teardown(void)
{
    readcheck_free(ss.reads);
    ss.reads = NULL;
    plugin_host_destroy(host);
}

TestSuite(readcheck, .init = setup, .fini = teardown);

static bool allows(const char *topic)
{
    uint64_t hash = 0;
    bool ok = readcheck_allows(&shard, &ss, (const uint8_t *)topic, strlen(topic), &hash);
    if (ss.reads)
        cr_assert_neq(hash, 0, "the topic's hash is handed back for the next session");
    return ok;
}

static void bind_user(const char *user_id)
{
    struct ringmq_kv attrs[] = {{"role", "reader"}};
    struct conn_identity *id = identity_create(0, user_id, attrs, 1, NULL, 0);
    cr_assert_not_null(id);
    cr_assert_eq(readcheck_bind(&ss, id), 0);
    identity_free(id); /* the session keeps its own copy */
}

Test(readcheck, without_read_checks_nothing_is_readable)
{
    cr_assert_not(allows("pt/ok/a"));
    cr_assert_str_eq(probe.trace, "", "the plugin was asked without an identity");
}

Test(readcheck, each_topic_is_asked_once_then_kept)
{
    bind_user("u-1");
    cr_assert(allows("pt/ok/a"));
    cr_assert_not(allows("pt/secret"));
    for (int i = 0; i < 3; i++) {
        cr_assert(allows("pt/ok/a"));
        cr_assert_not(allows("pt/secret"));
    }
    cr_assert_str_eq(probe.trace, "check_read(4,pt/ok/a):s;check_read(4,pt/secret):s;");
}

Test(readcheck, many_topics_keep_their_own_verdicts)
{
    bind_user("u-1");
    char topic[32];
    for (int i = 0; i < 2000; i++) { /* past the largest table: it starts over */
        snprintf(topic, sizeof(topic), i % 2 ? "pt/ok/%d" : "pt/no/%d", i);
        cr_assert_eq(allows(topic), i % 2 == 1, "%s", topic);
    }
    for (int i = 0; i < 2000; i++) {
        snprintf(topic, sizeof(topic), i % 2 ? "pt/ok/%d" : "pt/no/%d", i);
        cr_assert_eq(allows(topic), i % 2 == 1, "%s", topic);
    }
}

Test(readcheck, a_reload_or_a_new_identity_asks_again)
{
    bind_user("u-1");
    cr_assert(allows("pt/ok/a"));
    plugin_host_reload(host);
    probe.trace[0] = '\0';
    cr_assert(allows("pt/ok/a"));
    cr_assert(allows("pt/ok/a"));
    cr_assert_str_eq(probe.trace, "check_read(4,pt/ok/a):s;", "not asked again after a reload");
    bind_user("u-2");
    probe.trace[0] = '\0';
    cr_assert(allows("pt/ok/a"));
    cr_assert_str_eq(probe.trace, "check_read(4,pt/ok/a):s;", "not asked for the new identity");
}
