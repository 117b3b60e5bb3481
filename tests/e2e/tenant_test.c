/* E2E, tenants: with the auth_file plugin, users of tenant acme and of tenant
 * globex use the same topics, client ids, retained topics and shared groups
 * and never see each other's messages, never take over each other's
 * sessions; bad credentials are refused (CONNACK 0x04). Each test starts its
 * own broker (with 1 or 4 shards). ringmqd only. */
#include "harness.h"
#include "harness_v5.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static struct broker b;
static char passwd[64];
static char set_path[300], set_file[160];

TestSuite(tenant, .fini = e2e_fini, .timeout = 60);

/* ringmq-passwd FILE add USER TENANT, the password on stdin. */
static void add_user(const char *user, const char *tenant, const char *password)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "printf '%%s\\n' '%s' | '%s' '%s' add '%s' '%s' >/dev/null 2>&1",
             password, getenv("RINGMQ_PASSWD_TOOL"), passwd, user, tenant);
    int rc = system(cmd);
    cr_assert(rc == 0, "ringmq-passwd add %s failed (%d)", user, rc);
}

static char acl[64];
static char set_acl[160];

static void start_with_acl_and(const char *rules, const char *set1, const char *set2);

static void start(void)
{
    start_with_acl_and(NULL, NULL, NULL);
}

static void start_with_acl(const char *rules)
{
    start_with_acl_and(rules, NULL, NULL);
}

/* An empty password file and the --set arguments naming it and auth_file
 * (ringmqd only). */
static void passwd_create(void)
{
    if (getenv("RINGMQ_E2E_BROKER") && !strcmp(getenv("RINGMQ_E2E_BROKER"), "mosquitto"))
        cr_skip_test("tenants are ringmq's");
    snprintf(passwd, sizeof(passwd), "/tmp/ringmq-tenant-XXXXXX");
    int fd = mkstemp(passwd);
    cr_assert(fd >= 0);
    close(fd);
    acl[0] = 0;
    snprintf(set_path, sizeof(set_path), "plugin.auth.path=%s", getenv("RINGMQ_AUTH_FILE"));
    snprintf(set_file, sizeof(set_file), "plugin.auth.password_file=%s", passwd);
}

/* The four users, the ACL file (NULL: none) and up to two more settings
 * (NULL: none). */
static void start_with_acl_and(const char *rules, const char *set1, const char *set2)
{
    passwd_create();
    add_user("alice", "acme", "a-secret");
    add_user("carol", "acme", "c-secret");
    add_user("bob", "globex", "b-secret");
    add_user("dave", "globex", "d-secret");
    if (!rules) {
        broker_start(&b, set_path, set_file, NULL);
        return;
    }
    snprintf(acl, sizeof(acl), "/tmp/ringmq-acl-XXXXXX");
    int afd = mkstemp(acl);
    cr_assert(afd >= 0);
    cr_assert(write(afd, rules, strlen(rules)) == (ssize_t)strlen(rules));
    close(afd);
    snprintf(set_acl, sizeof(set_acl), "plugin.auth.acl_file=%s", acl);
    broker_start(&b, set_path, set_file, set_acl, set1, set2, NULL);
}

static void stop(void)
{
    broker_stop(&b);
    unlink(passwd);
    if (acl[0])
        unlink(acl);
}

static struct client *user(const char *id, const char *name, const char *password, bool clean)
{
    struct client_opts o = {.id = id, .clean = clean, .username = name, .password = password};
    return client_connect(&b, &o);
}

Test(tenant, same_topic_never_crosses_tenants)
{
    start();
    struct client *a = user("sub-a", "alice", "a-secret", true);
    struct client *g = user("sub-g", "bob", "b-secret", true);
    cr_assert_eq(client_subscribe(a, "t/#", 1), 1);
    cr_assert_eq(client_subscribe(g, "t/#", 1), 1);
    struct client *pa = user("pub-a", "carol", "c-secret", true);
    client_publish(pa, "t/x", "acme-only", 9, 1, false);
    client_expect_message(a, "t/x", "acme-only", NULL, NULL);
    cr_assert(client_no_message(g, E2E_ABSENT_MS), "globex saw acme's message");
    struct client *pg = user("pub-g", "dave", "d-secret", true);
    client_publish(pg, "t/x", "globex-only", 11, 1, false);
    client_expect_message(g, "t/x", "globex-only", NULL, NULL);
    cr_assert(client_no_message(a, E2E_ABSENT_MS), "acme saw globex's message");
    client_disconnect(pa);
    client_disconnect(pg);
    client_disconnect(a);
    client_disconnect(g);
    stop();
}

Test(tenant, same_client_id_is_no_takeover_across_tenants)
{
    start();
    struct client *a = user("dev1", "alice", "a-secret", true);
    struct client *g = user("dev1", "bob", "b-secret", true);
    /* Both still connected: each still exchanges a message in its tenant. */
    cr_assert_eq(client_subscribe(a, "me", 1), 1);
    cr_assert_eq(client_subscribe(g, "me", 1), 1);
    client_publish(a, "me", "a", 1, 1, false);
    client_expect_message(a, "me", "a", NULL, NULL);
    client_publish(g, "me", "g", 1, 1, false);
    client_expect_message(g, "me", "g", NULL, NULL);
    /* MQTT-3.1.4-2 applies within a tenant: a second acme dev1 takes over. */
    struct client *a2 = user("dev1", "carol", "c-secret", true);
    cr_assert_eq(client_wait_closed(a, E2E_WAIT_MS), 0, "same tenant, same id: takeover");
    cr_assert(client_no_message(g, E2E_ABSENT_MS));
    client_publish(g, "me", "g2", 2, 1, false);
    client_expect_message(g, "me", "g2", NULL, NULL);
    client_destroy(a);
    client_disconnect(a2);
    client_disconnect(g);
    stop();
}

Test(tenant, retained_messages_stay_in_their_tenant)
{
    start();
    struct client *pa = user("pa", "alice", "a-secret", true);
    client_publish(pa, "r/1", "acme-retained", 13, 1, true);
    struct client *g = user("g", "bob", "b-secret", true);
    cr_assert_eq(client_subscribe(g, "r/#", 1), 1);
    cr_assert(client_no_message(g, E2E_ABSENT_MS), "globex got acme's retained message");
    struct client *a = user("a", "carol", "c-secret", true);
    cr_assert_eq(client_subscribe(a, "r/#", 1), 1);
    bool retain = false;
    client_expect_message(a, "r/1", "acme-retained", NULL, &retain);
    cr_assert(retain);
    client_disconnect(pa);
    client_disconnect(a);
    client_disconnect(g);
    stop();
}

Test(tenant, shared_groups_of_the_same_name_are_separate)
{
    start();
    struct client *a = user("ma", "alice", "a-secret", true);
    struct client *g = user("mg", "bob", "b-secret", true);
    cr_assert_eq(client_subscribe(a, "$share/grp/s/t", 1), 1);
    cr_assert_eq(client_subscribe(g, "$share/grp/s/t", 1), 1);
    struct client *pa = user("pa", "carol", "c-secret", true);
    for (int i = 0; i < 5; i++)
        client_publish(pa, "s/t", "x", 1, 1, false);
    for (int i = 0; i < 5; i++)
        client_expect_message(a, "s/t", "x", NULL, NULL);
    cr_assert(client_no_message(g, E2E_ABSENT_MS), "globex's group got acme's messages");
    client_disconnect(pa);
    client_disconnect(a);
    client_disconnect(g);
    stop();
}

Test(tenant, persistent_sessions_are_per_tenant)
{
    start();
    struct client *a = user("keep", "alice", "a-secret", false);
    cr_assert_eq(client_subscribe(a, "q", 1), 1);
    client_disconnect(a);
    /* bob's "keep" in globex finds no session; alice's in acme does. */
    struct client *g = user("keep", "bob", "b-secret", false);
    cr_assert(!client_session_present(g), "globex saw acme's session");
    client_disconnect(g);
    a = user("keep", "carol", "c-secret", false);
    cr_assert(client_session_present(a), "acme's session is gone");
    client_disconnect(a);
    stop();
}

Test(tenant, bad_credentials_are_refused)
{
    start();
    struct client *c = NULL;
    struct client_opts o = {.id = "x", .clean = true, .username = "alice", .password = "wrong"};
    cr_assert_eq(client_connect_rc(&b, &o, &c), 4, "wrong password: CONNACK 0x04");
    client_destroy(c);
    struct client_opts u = {.id = "y", .clean = true, .username = "nobody", .password = "pw"};
    cr_assert_eq(client_connect_rc(&b, &u, &c), 4, "unknown user: CONNACK 0x04");
    client_destroy(c);
    struct client_opts n = {.id = "z", .clean = true};
    cr_assert_eq(client_connect_rc(&b, &n, &c), 4, "anonymous: CONNACK 0x04");
    client_destroy(c);
    stop();
}

/* auth_file ACLs through the broker's permission checks: a denied PUBLISH is
 * not delivered (3.1.1 still gets its PUBACK), a denied SUBSCRIBE gets 0x80,
 * and what is allowed flows; %u is the user id. */
Test(tenant, acl_denies_publish_and_subscribe)
{
    start_with_acl("[tenant acme]\n"
                   "user alice\n"
                   "topic readwrite sensors/%u/#\n"
                   "user carol\n"
                   "topic read sensors/#\n"
                   "topic read other/#\n");
    struct client *reader = user("reader", "carol", "c-secret", true);
    cr_assert_eq(client_subscribe(reader, "sensors/#", 1), 1);
    cr_assert_eq(client_subscribe(reader, "other/#", 1), 1);
    cr_assert_eq(client_subscribe(reader, "secret/#", 1), 0x80, "not covered by a read rule");
    struct client *alice = user("writer", "alice", "a-secret", true);
    client_publish(alice, "sensors/alice/temp", "21", 2, 1, false);
    client_expect_message(reader, "sensors/alice/temp", "21", NULL, NULL);
    client_publish(alice, "sensors/bob/temp", "spoof", 5, 1, false); /* %u is alice */
    client_publish(alice, "other/x", "nope", 4, 1, false);
    cr_assert(client_no_message(reader, E2E_ABSENT_MS), "a denied PUBLISH was delivered");
    /* Cached verdicts: the same topic again, many times, still works. */
    for (int i = 0; i < 20; i++)
        client_publish(alice, "sensors/alice/temp", "22", 2, 1, false);
    for (int i = 0; i < 20; i++)
        client_expect_message(reader, "sensors/alice/temp", "22", NULL, NULL);
    client_disconnect(alice);
    client_disconnect(reader);
    stop();
}

/* ---- deny rules that overlap a wildcard subscription ----
 *
 * alice may read everything but secret/...; carol may publish anywhere. A
 * subscription a deny rule only overlaps is granted, and what it would
 * deliver from the denied topics is not delivered (counted as dropped,
 * reason "denied"); a filter wholly inside them is refused. Messages of one
 * publisher reach one subscriber in order, so a later message arriving
 * shows that the denied one before it was not delivered. */

static const char deny_acl[] = "[tenant acme]\n"
                               "user alice\n"
                               "topic readwrite #\n"
                               "topic read $share/+/#\n"
                               "topic deny secret/#\n"
                               "user carol\n"
                               "topic readwrite #\n";

/* carol publishes public/1, the denied topics secret and secret/x, then
 * public/2, each QoS 1. */
static void publish_around_secrets(struct client *carol)
{
    client_publish(carol, "public/1", "p1", 2, 1, false);
    client_publish(carol, "secret", "s0", 2, 1, false);
    client_publish(carol, "secret/x", "s1", 2, 1, false);
    client_publish(carol, "public/2", "p2", 2, 1, false);
}

/* The next messages are public/1 then public/2, and nothing more. */
static void expect_only_public(struct client *c)
{
    client_expect_message(c, "public/1", "p1", NULL, NULL);
    client_expect_message(c, "public/2", "p2", NULL, NULL);
    cr_assert(client_no_message(c, E2E_ABSENT_MS), "a denied topic was delivered");
}

struct reader_writer {
    struct client *alice, *carol;
};

/* alice subscribes to `filter`, which the deny rule overlaps (granted QoS
 * 1); carol publishes around the secrets; alice gets the public ones only. */
static struct reader_writer read_around_secrets(const char *filter)
{
    struct reader_writer rw;
    rw.alice = user("reader", "alice", "a-secret", true);
    cr_assert_eq(client_subscribe(rw.alice, filter, 1), 1, "%s overlaps the deny rule: granted",
                 filter);
    rw.carol = user("writer", "carol", "c-secret", true);
    publish_around_secrets(rw.carol);
    expect_only_public(rw.alice);
    return rw;
}

static void reader_writer_done(struct reader_writer rw)
{
    client_disconnect(rw.carol);
    client_disconnect(rw.alice);
    stop();
}

Test(tenant, deny_rule_filters_an_overlapping_wildcard_subscription_v311)
{
    start_with_acl(deny_acl);
    struct reader_writer rw = read_around_secrets("#");
    cr_assert_eq(client_subscribe(rw.alice, "+/+", 1), 1);
    cr_assert_eq(client_subscribe(rw.alice, "secret/#", 1), 0x80, "wholly denied");
    cr_assert_eq(client_subscribe(rw.alice, "secret/x", 1), 0x80);
    cr_assert_eq(client_subscribe(rw.alice, "secret/+", 1), 0x80);
    /* Two overlapping subscriptions, kept verdicts: still the public ones,
     * once each. */
    publish_around_secrets(rw.carol);
    expect_only_public(rw.alice);
    reader_writer_done(rw);
}

Test(tenant, deny_rule_filters_an_overlapping_wildcard_subscription_v5)
{
    start_with_acl(deny_acl);
    struct raw_connect o = {.flags = -1,
                            .clean = true,
                            .keepalive = 60,
                            .id = "reader5",
                            .username = "alice",
                            .password = "a-secret"};
    struct v5_pkt pk;
    int fd = v5_connect(&b, &o, NULL, NULL, &pk);
    cr_assert_eq(pk.type, T_CONNACK);
    cr_assert_eq(pk.reason, 0);
    v5_subscribe(fd, 1, "#", 1, NULL, 0x01);
    v5_subscribe(fd, 2, "secret/#", 1, NULL, 0x87);
    v5_subscribe(fd, 3, "secret/x", 1, NULL, 0x87);
    struct client *carol = user("writer", "carol", "c-secret", true);
    publish_around_secrets(carol);
    v5_expect_publish(fd, &pk);
    cr_assert_str_eq(pk.topic, "public/1");
    struct pkt ack;
    pkt_ack5(&ack, 0x40, pk.mid, 0, NULL);
    cr_assert(raw_send_pkt(fd, &ack) == 0);
    v5_expect_publish(fd, &pk);
    cr_assert_str_eq(pk.topic, "public/2", "a denied topic was delivered: %s", pk.topic);
    pkt_ack5(&ack, 0x40, pk.mid, 0, NULL);
    cr_assert(raw_send_pkt(fd, &ack) == 0);
    v5_expect_nothing(fd, E2E_ABSENT_MS);
    client_disconnect(carol);
    close(fd);
    stop();
}

/* Retained messages sent on SUBSCRIBE are read-checked too. */
Test(tenant, deny_rule_filters_retained_messages_of_a_wildcard_subscription)
{
    start_with_acl(deny_acl);
    struct client *carol = user("writer", "carol", "c-secret", true);
    client_publish(carol, "secret/r", "hidden", 6, 1, true);
    client_publish(carol, "public/r", "shown", 5, 1, true);
    struct client *alice = user("reader", "alice", "a-secret", true);
    cr_assert_eq(client_subscribe(alice, "#", 1), 1);
    bool retain = false;
    client_expect_message(alice, "public/r", "shown", NULL, &retain);
    cr_assert(retain);
    cr_assert(client_no_message(alice, E2E_ABSENT_MS), "a denied retained message was sent");
    client_disconnect(carol);
    client_disconnect(alice);
    stop();
}

/* What an offline session queues is checked as well, as the user who
 * subscribed (the session has no connection then). */
Test(tenant, deny_rule_filters_what_an_offline_session_queues)
{
    start_with_acl(deny_acl);
    struct client *alice = user("keeper", "alice", "a-secret", false);
    cr_assert_eq(client_subscribe(alice, "#", 1), 1);
    client_disconnect(alice);
    struct client *carol = user("writer", "carol", "c-secret", true);
    publish_around_secrets(carol);
    alice = user("keeper", "alice", "a-secret", false);
    cr_assert(client_session_present(alice));
    expect_only_public(alice);
    client_disconnect(carol);
    client_disconnect(alice);
    stop();
}

/* A shared subscription a deny rule overlaps: its member receives the
 * allowed topics only. */
Test(tenant, deny_rule_filters_an_overlapping_shared_subscription)
{
    start_with_acl(deny_acl);
    struct reader_writer rw = read_around_secrets("$share/g/#");
    cr_assert_eq(client_subscribe(rw.alice, "$share/g/secret/#", 1), 0x80);
    reader_writer_done(rw);
}

/* A message withheld for the subscriber's rights is a drop with reason
 * "denied", not an error, and the publisher's flow completes. */
Test(tenant, withheld_messages_are_counted_as_dropped_denied)
{
    start_with_acl_and(deny_acl, "metrics.enabled=true", "metrics.port=0");
    struct reader_writer rw = read_around_secrets("#");
    char *body = metrics_scrape(broker_metrics_port(&b));
    cr_assert_eq(metrics_sample(body, "ringmq_dropped_total{tenant=\"acme\",reason=\"denied\"} "),
                 2, "%s", body);
    free(body);
    reader_writer_done(rw);
}

/* The kept read verdicts are forgotten at a reload: once the deny rule is
 * gone, its topics reach the subscription granted under it. */
Test(tenant, reload_forgets_the_read_verdicts)
{
    start_with_acl(deny_acl);
    struct reader_writer rw = read_around_secrets("#");
    FILE *f = fopen(acl, "w");
    cr_assert_not_null(f);
    fputs("[tenant acme]\nuser alice\ntopic readwrite #\nuser carol\ntopic readwrite #\n", f);
    fclose(f);
    cr_assert_eq(kill(b.pid, SIGHUP), 0);
    broker_wait_log(&b, "reloaded", 1);
    client_publish(rw.carol, "secret/x", "s2", 2, 1, false);
    client_expect_message(rw.alice, "secret/x", "s2", NULL, NULL);
    reader_writer_done(rw);
}

/* A SIGHUP reload of the ACL file applies to clients already connected:
 * verdicts cached before it are forgotten (the broker's cache and the
 * plugin's tables both change). */
Test(tenant, acl_reload_applies_to_connected_clients)
{
    start_with_acl("[tenant acme]\n"
                   "user alice\n"
                   "topic readwrite sensors/#\n"
                   "user carol\n"
                   "topic read sensors/#\n");
    struct client *reader = user("reader", "carol", "c-secret", true);
    cr_assert_eq(client_subscribe(reader, "sensors/#", 1), 1);
    struct client *alice = user("writer", "alice", "a-secret", true);
    client_publish(alice, "sensors/a", "1", 1, 1, false);
    client_expect_message(reader, "sensors/a", "1", NULL, NULL);
    const char *rules = "[tenant acme]\n"
                        "user alice\n"
                        "topic read sensors/#\n"
                        "user carol\n"
                        "topic read sensors/#\n";
    FILE *f = fopen(acl, "w");
    cr_assert_not_null(f);
    fputs(rules, f);
    fclose(f);
    cr_assert_eq(kill(b.pid, SIGHUP), 0);
    broker_wait_log(&b, "reloaded", 1);
    client_publish(alice, "sensors/a", "2", 1, 1, false); /* cached "granted" before */
    cr_assert(client_no_message(reader, E2E_ABSENT_MS), "a revoked publish was delivered");
    client_disconnect(alice);
    client_disconnect(reader);
    stop();
}

/* A tenant name is one level of its $SYS topics, whatever bytes the auth
 * plugin put in it: '/', '+' and '#' (and anything but letters, digits and
 * "-._~") are written %XX, so the topic stays valid and names no other
 * tenant's levels. */
Test(tenant, sys_topics_escape_tenant_names)
{
    passwd_create();
    add_user("root", "global", "r-secret");
    add_user("eve", "a/b+c#", "e-secret");
    broker_start(&b, set_path, set_file, "metrics.sys_interval=1", NULL);
    struct client *root = user("root-c", "root", "r-secret", true);
    cr_assert_eq(client_subscribe(root, "$SYS/broker/tenants/+/clients/connected", 0), 0);
    struct client *eve = user("eve-c", "eve", "e-secret", true);
    bool seen = false;
    struct msg m;
    for (int i = 0; i < 20 && !seen && client_wait_message(root, &m, E2E_WAIT_MS) == 0; i++) {
        seen = !strcmp(m.topic, "$SYS/broker/tenants/a%2Fb%2Bc%23/clients/connected");
        cr_assert(strncmp(m.topic, "$SYS/broker/tenants/a/", 22) != 0, "unescaped: %s", m.topic);
        msg_free(&m);
    }
    cr_assert(seen, "no $SYS topic for the tenant a/b+c#");
    client_disconnect(eve);
    client_disconnect(root);
    stop();
}

/* CONNECT fields of user `name` (also the client id) asking for `keepalive`. */
static struct raw_connect as_user(const char *name, const char *password, int keepalive)
{
    return (struct raw_connect){.flags = -1,
                                .clean = true,
                                .id = name,
                                .keepalive = keepalive,
                                .username = name,
                                .password = password};
}

/* 3.1.1 CONNECT of `name` with `keepalive`: the CONNACK return code. */
static int keepalive_rc(const char *name, const char *password, int keepalive)
{
    struct raw_connect o = as_user(name, password, keepalive);
    int rc;
    bool present;
    close(raw_mqtt_connect(&b, &o, &rc, &present));
    return rc;
}

/* 5.0 CONNECT of `name` with `keepalive`: the Server Keep Alive (-1: none). */
static long keepalive_told(const char *name, const char *password, int keepalive)
{
    struct raw_connect o = as_user(name, password, keepalive);
    static struct v5_pkt pk;
    close(v5_connect(&b, &o, NULL, NULL, &pk));
    cr_assert(pk.type == T_CONNACK && pk.reason == 0, "CONNACK 0x%02x for %s", pk.reason, name);
    const struct v5_prop *ska = v5_prop(&pk, P_SERVER_KEEPALIVE, 0);
    return ska ? (long)ska->num : -1;
}

/* max_keepalive per tenant: [mqtt] caps every tenant at 30 s, [tenant.acme]
 * at 10 s, [tenant.globex] not at all (0). A 3.1.1 client over its tenant's
 * cap is refused with 0x02, a 5.0 client is told the cap. */
Test(tenant, max_keepalive_per_tenant)
{
    passwd_create();
    add_user("alice", "acme", "a-secret");
    add_user("bob", "globex", "b-secret");
    add_user("root", "global", "r-secret");
    broker_start(&b, set_path, set_file, "mqtt.max_keepalive=30", "tenant.acme.max_keepalive=10",
                 "tenant.globex.max_keepalive=0", NULL);
    cr_assert_eq(keepalive_rc("alice", "a-secret", 10), 0);
    cr_assert_eq(keepalive_rc("alice", "a-secret", 20), 2);
    cr_assert_eq(keepalive_rc("root", "r-secret", 20), 0);
    cr_assert_eq(keepalive_rc("root", "r-secret", 31), 2);
    cr_assert_eq(keepalive_rc("bob", "b-secret", 7200), 0);
    cr_assert_eq(keepalive_rc("bob", "b-secret", 0), 0);
    cr_assert_eq(keepalive_told("alice", "a-secret", 60), 10);
    cr_assert_eq(keepalive_told("root", "r-secret", 60), 30);
    cr_assert_eq(keepalive_told("bob", "b-secret", 7200), -1);
    cr_assert_eq(keepalive_told("bob", "b-secret", 0), -1);
    stop();
}
