/*
 * Tests of plugins/auth_file through the plugin ABI only: the .so is loaded
 * with dlopen by a fake host, as ringmqd loads it. Password hashes below were
 * computed independently (Python's hashlib.pbkdf2_hmac) so the test also
 * checks the stored format against another PBKDF2-SHA256.
 *
 * authenticate with a user name is answered by the plugin's worker threads:
 * tests wait for the completion (fake_wait_call), and the tests of the
 * queue, fini and reload hold a worker inside complete() (fake_hold) so that
 * what is queued behind it is certain, never a matter of timing.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "fake_host.h"

#define H_ALICE_SECRET                                                                             \
    "$pbkdf2-sha256$10000$MDEyMzQ1Njc4OWFiY2RlZg==$6umsHhz0yhb+YIJ/FUgCrsOB+tK+gGdB+tvI2KPIHns="
#define H_BOB_HUNTER2                                                                              \
    "$pbkdf2-sha256$10000$ZmVkY2JhOTg3NjU0MzIxMA==$lsvg86kSuYxx4tJ5ff4oogBbhtwq7fVdoYDFABUy2Z8="
#define H_LOCKED_PW                                                                                \
    "$pbkdf2-sha256$10000$c2FsdC1zYWx0LXNhbHQtcw==$ZI11yZL7DorNEMnlT9ubURZkSLI5XzxmqTP89aV7yLU="
#define H_WEAK_9999                                                                                \
    "$pbkdf2-sha256$9999$c2FsdC1zYWx0LXNhbHQtcw==$YV0vWcfnt1wKYfpqpl4j/fi4DgmafK+X9pkEmg8kCC0="
/* The empty password: a CONNECT with a password flag and no bytes. */
#define H_EMPTY_PW                                                                                 \
    "$pbkdf2-sha256$10000$ZW1wdHktcHctc2FsdC0xNg==$Ku/LLZBWnT+H+IblAVkwjZnQPRk+kffttnMftTOCMHc="
#define H_NEW_SECRET                                                                               \
    "$pbkdf2-sha256$10000$YW5vdGhlci1zYWx0LTEyMw==$scAKjQFEtKFHzB5GrikiFh6hUki5XPaH0lRST4MvZzU="

static const char users[] = "# test users\n"
                            "alice:acme:u-alice:" H_ALICE_SECRET "\n"
                            "\n"
                            "bob:globex::" H_BOB_HUNTER2 "\n"
                            "carol:acme:carol:!" H_LOCKED_PW "\n"
                            "weak:acme:weak:" H_WEAK_9999 "\n"
                            "empty:acme:empty:" H_EMPTY_PW "\n";

static const char acl[] = "[tenant acme]\n"
                          "topic read public/#\n"
                          "pattern write devices/%c/status\n"
                          "topic deny public/secret/#\n"
                          "user u-alice\n"
                          "topic readwrite sensors/%u/#\n"
                          "topic write +/alarm\n"
                          "topic read $SYS/broker/load\n"
                          "\n"
                          "[tenant globex]\n"
                          "topic readwrite #\n";

static const struct ringmq_plugin *plug;
static void *state;
static char pw_path[256], acl_path[256];
/* fake_call number for the next auth(); tests that number their own calls
 * use those below AUTH_FIRST_CALL. */
#define AUTH_FIRST_CALL 512
static int next_call;

/* `extra`: keys after password_file (workers, max_queue, cache_*), n_extra
 * of them; the plugin's defaults for the rest. */
static void start_with(const char *acl_content, const char *anon, const struct ringmq_kv *extra,
                       size_t n_extra)
{
    fake_reset();
    next_call = AUTH_FIRST_CALL;
    plug = fake_load(AUTH_FILE_SO);
    cr_assert_eq(plug->kinds, RINGMQ_KIND_AUTH);
    fake_path("passwd", pw_path, sizeof(pw_path));
    fake_write_file(pw_path, users);
    struct ringmq_kv kv[8] = {{"password_file", pw_path}};
    size_t n = 1;
    cr_assert_leq(n_extra, 5);
    for (size_t i = 0; i < n_extra; i++)
        kv[n++] = extra[i];
    if (acl_content) {
        fake_path("acl", acl_path, sizeof(acl_path));
        fake_write_file(acl_path, acl_content);
        kv[n++] = (struct ringmq_kv){"acl_file", acl_path};
    }
    if (anon)
        kv[n++] = (struct ringmq_kv){"allow_anonymous_tenant", anon};
    char err[256];
    cr_assert_eq(fake_init(plug, kv, n, &state, err, sizeof(err)), 0, "init: %s", err);
    cr_assert_not_null(state);
}

static void start(const char *acl_content, const char *anon)
{
    start_with(acl_content, anon, NULL, 0);
}

static void stop(void)
{
    /* A test that failed while a worker waited at the gate would otherwise
     * hang in fini, joining it. */
    fake_open_gate();
    if (plug && state)
        plug->fini(state);
    state = NULL;
    fake_cleanup();
}

static void setup_acl(void)
{
    start(acl, NULL);
}

static void setup_no_acl(void)
{
    start(NULL, NULL);
}

static void setup_anon(void)
{
    start(acl, "acme");
}

/* Deny rules an ACL writes per user and per client. */
static void setup_deny_subst(void)
{
    start("[tenant acme]\n"
          "topic read #\n"
          "pattern deny inbox/%u/#\n"
          "pattern deny cfg/%c\n",
          NULL);
}

static struct ringmq_bytes B(const char *s) {
    return (struct ringmq_bytes){(const uint8_t *)s, strlen(s)};
}

static struct ringmq_connect_info
connect_info(const char *user, const char *pw)
{
    return (struct ringmq_connect_info){
        .protocol_version = 5,
        .client_id = B("cid-1"),
        .has_username = user != NULL,
        .username = user ? B(user) : B(""),
        .has_password = pw != NULL,
        .password = pw ? B(pw) : B(""),
        .remote_addr = "127.0.0.1",
        .remote_port = 40000,
        .listener = "default",
    };
}

/* Start CONNECT number `i` with user name / password (NULL: absent). */
static void auth_start(int i, const char *user, const char *pw)
{
    struct ringmq_connect_info ci = connect_info(user, pw);
    plug->authenticate(state, fake_call(i), &ci);
}

/* CONNECT and wait for its verdict (fake_last holds the rest of it). */
static enum ringmq_auth_decision auth(const char *user, const char *pw)
{
    int i = next_call++;
    auth_start(i, user, pw);
    struct fake_call_rec r = fake_wait_call(i);
    cr_assert_eq(r.completions, 1, "complete() called %d times", r.completions);
    cr_assert_eq(fake_last.call, fake_call(i));
    return r.decision;
}

static enum ringmq_verdict check(enum ringmq_action action, const char *tenant, const char *user_id,
                                 const char *client_id, const char *topic)
{
    struct ringmq_check c = {
        .action = action,
        .tenant = tenant,
        .user_id = user_id,
        .client_id = B(client_id),
        .topic = B(topic),
        .qos = 1,
    };
    struct ringmq_call *call = (struct ringmq_call *)&c;
    memset(&fake_last, 0, sizeof(fake_last));
    plug->check(state, call, &c);
    cr_assert_eq(fake_last.completions, 1);
    cr_assert_eq(fake_last.call, call);
    cr_assert(fake_last.cacheable, "auth_file verdicts are cacheable");
    return fake_last.verdict;
}

/* ABI 3 check_read: answered synchronously, into the host's result. */
static enum ringmq_verdict check_read(const char *tenant, const char *user_id,
                                      const char *client_id, const char *topic)
{
    struct ringmq_check c = {
        .action = RINGMQ_ACTION_RECEIVE,
        .tenant = tenant,
        .user_id = user_id,
        .client_id = B(client_id),
        .topic = B(topic),
    };
    struct ringmq_check_result out = {0};
    cr_assert_not_null(plug->check_read, "auth_file answers read checks");
    plug->check_read(state, &c, &out);
    cr_assert(out.cacheable, "auth_file verdicts are cacheable");
    return out.verdict;
}

#define PUB(u, c, t)  check(RINGMQ_ACTION_PUBLISH, "acme", u, c, t)
#define SUB(u, c, t)  check(RINGMQ_ACTION_SUBSCRIBE, "acme", u, c, t)
#define READ(u, c, t) check_read("acme", u, c, t)

TestSuite(auth_file, .init = setup_acl, .fini = stop);

Test(auth_file, right_password_allows_with_tenant_and_user_id)
{
    cr_assert_eq(auth("alice", "secret"), RINGMQ_AUTH_ALLOW);
    cr_assert(fake_last.has_tenant);
    cr_assert_str_eq(fake_last.tenant, "acme");
    cr_assert_str_eq(fake_last.user_id, "u-alice");
}

Test(auth_file, empty_user_id_field_means_the_user_name)
{
    cr_assert_eq(auth("bob", "hunter2"), RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(fake_last.tenant, "globex");
    cr_assert_str_eq(fake_last.user_id, "bob");
}

Test(auth_file, wrong_password_unknown_user_and_missing_password_are_bad_credentials)
{
    cr_assert_eq(auth("alice", "Secret"), RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_eq(auth("alice", "secret "), RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_eq(auth("alice", ""), RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_eq(auth("alice", NULL), RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_eq(auth("alice", "hunter2"), RINGMQ_AUTH_BAD_CREDENTIALS); /* bob's */
    cr_assert_eq(auth("mallory", "secret"), RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_eq(auth("alic", "secret"), RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_eq(auth("", "secret"), RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_not(fake_last.has_tenant, "no tenant on a refusal");
}

Test(auth_file, user_name_with_embedded_nul_is_not_a_prefix_match)
{
    static const char u[] = "alice\0x";
    struct ringmq_connect_info ci = {
        .protocol_version = 4,
        .has_username = true,
        .username = {(const uint8_t *)u, sizeof(u) - 1},
        .has_password = true,
        .password = B("secret"),
    };
    plug->authenticate(state, fake_call(0), &ci);
    struct fake_call_rec r = fake_wait_call(0);
    cr_assert_eq(r.completions, 1);
    cr_assert_eq(r.decision, RINGMQ_AUTH_BAD_CREDENTIALS);
}

Test(auth_file, anonymous_refused_without_allow_anonymous_tenant)
{
    cr_assert_eq(auth(NULL, NULL), RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_eq(auth(NULL, "secret"), RINGMQ_AUTH_BAD_CREDENTIALS);
}

Test(auth_file, locked_account_right_password_is_not_authorized)
{
    cr_assert_eq(auth("carol", "locked-pw"), RINGMQ_AUTH_NOT_AUTHORIZED);
    cr_assert_eq(auth("carol", "wrong"), RINGMQ_AUTH_BAD_CREDENTIALS);
}

Test(auth_file, hash_below_10000_iterations_is_refused)
{
    cr_assert_eq(auth("weak", "weak"), RINGMQ_AUTH_ERROR);
}

Test(auth_file, enhanced_auth_is_bad_method)
{
    struct ringmq_connect_info ci = {
        .protocol_version = 5,
        .has_username = true,
        .username = B("alice"),
        .has_password = true,
        .password = B("secret"),
        .auth_method = B("SCRAM-SHA-256"),
    };
    memset(&fake_last, 0, sizeof(fake_last));
    plug->authenticate(state, (struct ringmq_call *)&ci, &ci);
    cr_assert_eq(fake_last.completions, 1);
    cr_assert_eq(fake_last.decision, RINGMQ_AUTH_BAD_METHOD);

    struct ringmq_auth_step step = {.auth_method = B("SCRAM-SHA-256"), .auth_data = B("x")};
    memset(&fake_last, 0, sizeof(fake_last));
    plug->auth_continue(state, (struct ringmq_call *)&step, &step);
    cr_assert_eq(fake_last.completions, 1);
    cr_assert_eq(fake_last.decision, RINGMQ_AUTH_BAD_METHOD);
}

Test(auth_file, user_rule_with_user_id_substitution)
{
    cr_assert_eq(PUB("u-alice", "c1", "sensors/u-alice/temp"), RINGMQ_GRANTED);
    cr_assert_eq(PUB("u-alice", "c1", "sensors/u-alice"), RINGMQ_GRANTED); /* '#' covers parent */
    cr_assert_eq(SUB("u-alice", "c1", "sensors/u-alice/#"), RINGMQ_GRANTED);
    cr_assert_eq(PUB("u-alice", "c1", "sensors/u-bob/temp"), RINGMQ_DENIED);
    cr_assert_eq(SUB("u-alice", "c1", "sensors/+/temp"), RINGMQ_DENIED);
    /* Another user of the tenant does not get alice's block. */
    cr_assert_eq(PUB("u-bob", "c1", "sensors/u-bob/temp"), RINGMQ_DENIED);
}

Test(auth_file, pattern_with_client_id_is_for_everyone_in_the_tenant)
{
    cr_assert_eq(PUB("u-alice", "dev-7", "devices/dev-7/status"), RINGMQ_GRANTED);
    cr_assert_eq(PUB("someone", "dev-8", "devices/dev-8/status"), RINGMQ_GRANTED);
    cr_assert_eq(PUB(NULL, "dev-8", "devices/dev-8/status"), RINGMQ_GRANTED);
    cr_assert_eq(PUB("someone", "dev-8", "devices/dev-7/status"), RINGMQ_DENIED);
    /* write only: no read */
    cr_assert_eq(SUB("someone", "dev-8", "devices/dev-8/status"), RINGMQ_DENIED);
}

Test(auth_file, substituted_value_cannot_become_a_wildcard_or_add_levels)
{
    cr_assert_eq(PUB("x", "+", "devices/+/status"), RINGMQ_DENIED);
    cr_assert_eq(PUB("x", "#", "devices/#"), RINGMQ_DENIED);
    cr_assert_eq(PUB("x", "a/b", "devices/a/b/status"), RINGMQ_DENIED);
    cr_assert_eq(PUB("x", "", "devices//status"), RINGMQ_DENIED);
    /* A user id with '/' must not reach another user's tree. */
    cr_assert_eq(PUB("u-alice/../x", "c", "sensors/u-alice/../x/t"), RINGMQ_DENIED);
}

Test(auth_file, read_rule_and_wildcard_subscribe_filters)
{
    cr_assert_eq(SUB(NULL, "c", "public/news"), RINGMQ_GRANTED);
    cr_assert_eq(SUB(NULL, "c", "public/news/#"), RINGMQ_GRANTED);
    cr_assert_eq(SUB(NULL, "c", "public/news/+"), RINGMQ_GRANTED);
    cr_assert_eq(SUB(NULL, "c", "public"), RINGMQ_GRANTED); /* public/# matches public */
    /* Not covered: wider than the rule. */
    cr_assert_eq(SUB(NULL, "c", "#"), RINGMQ_DENIED);
    cr_assert_eq(SUB(NULL, "c", "+/news"), RINGMQ_DENIED);
    cr_assert_eq(SUB(NULL, "c", "publicity"), RINGMQ_DENIED);
    /* read only: no write */
    cr_assert_eq(PUB(NULL, "c", "public/news"), RINGMQ_DENIED);
}

Test(auth_file, single_level_wildcard_rule)
{
    cr_assert_eq(PUB("u-alice", "c", "kitchen/alarm"), RINGMQ_GRANTED);
    cr_assert_eq(PUB("u-alice", "c", "a/b/alarm"), RINGMQ_DENIED);
    cr_assert_eq(PUB("u-alice", "c", "alarm"), RINGMQ_DENIED);
    cr_assert_eq(PUB("u-alice", "c", "/alarm"), RINGMQ_GRANTED); /* empty first level */
}

/* A filter wholly inside denied topics is refused; one a deny rule only
 * overlaps is granted per topic, and each topic is then read-checked. */
Test(auth_file, deny_refuses_covered_filters_and_overlapping_ones_are_checked_per_topic)
{
    cr_assert_eq(SUB(NULL, "c", "public/secret/plans"), RINGMQ_DENIED);
    cr_assert_eq(SUB(NULL, "c", "public/secret"), RINGMQ_DENIED); /* secret/# covers secret */
    cr_assert_eq(SUB(NULL, "c", "public/secret/+"), RINGMQ_DENIED);
    cr_assert_eq(SUB(NULL, "c", "public/secret/#"), RINGMQ_DENIED);
    /* public/# also delivers public/secret/...: the deny rule overlaps it. */
    cr_assert_eq(SUB(NULL, "c", "public/#"), RINGMQ_GRANTED_PER_TOPIC);
    cr_assert_eq(SUB(NULL, "c", "public/+/plans"), RINGMQ_GRANTED_PER_TOPIC);
    cr_assert_eq(SUB(NULL, "c", "public/+"), RINGMQ_GRANTED_PER_TOPIC); /* public/secret */
    cr_assert_eq(SUB(NULL, "c", "public/other/#"), RINGMQ_GRANTED);
    cr_assert_eq(READ(NULL, "c", "public/news"), RINGMQ_GRANTED);
    cr_assert_eq(READ(NULL, "c", "public/secret"), RINGMQ_DENIED);
    cr_assert_eq(READ(NULL, "c", "public/secret/plans"), RINGMQ_DENIED);
    cr_assert_eq(READ(NULL, "c", "public/secretary"), RINGMQ_GRANTED);
    /* Publishing there is refused as before. */
    cr_assert_eq(PUB("u-alice", "c", "public/secret/alarm"), RINGMQ_DENIED);
}

/* Deny rules with %u / %c apply per client, to subscriptions and reads. */
Test(auth_file, substituted_deny_rules_apply_per_client, .init = setup_deny_subst)
{
    cr_assert_eq(SUB("u-1", "dev-1", "#"), RINGMQ_GRANTED_PER_TOPIC);
    cr_assert_eq(SUB("u-1", "dev-1", "inbox/u-1/#"), RINGMQ_DENIED);
    cr_assert_eq(SUB("u-1", "dev-1", "inbox/u-2/#"), RINGMQ_GRANTED);
    cr_assert_eq(SUB("u-1", "dev-1", "cfg/+"), RINGMQ_GRANTED_PER_TOPIC);
    cr_assert_eq(READ("u-1", "dev-1", "inbox/u-1/x"), RINGMQ_DENIED);
    cr_assert_eq(READ("u-2", "dev-2", "inbox/u-1/x"), RINGMQ_GRANTED);
    cr_assert_eq(READ("u-1", "dev-1", "cfg/dev-1"), RINGMQ_DENIED);
    cr_assert_eq(READ("u-1", "dev-1", "cfg/dev-2"), RINGMQ_GRANTED);
    /* Anonymous: a %u deny rule does not apply, so nothing is denied. */
    cr_assert_eq(SUB(NULL, "dev-1", "inbox/#"), RINGMQ_GRANTED);
}

/* MQTT-4.7.2-1: filters starting with a wildcard do not match '$' topics. */
Test(auth_file, wildcard_rules_do_not_reach_dollar_topics_MQTT_4_7_2_1)
{
    cr_assert_eq(check(RINGMQ_ACTION_PUBLISH, "globex", "bob", "c", "any/thing"), RINGMQ_GRANTED);
    cr_assert_eq(check(RINGMQ_ACTION_PUBLISH, "globex", "bob", "c", "$SYS/x"), RINGMQ_DENIED);
    cr_assert_eq(check(RINGMQ_ACTION_SUBSCRIBE, "globex", "bob", "c", "$SYS/#"), RINGMQ_DENIED);
    cr_assert_eq(SUB("u-alice", "c", "$SYS/broker/load"), RINGMQ_GRANTED);
}

Test(auth_file, tenant_without_section_gets_nothing_and_tenants_do_not_mix)
{
    cr_assert_eq(check(RINGMQ_ACTION_SUBSCRIBE, "initech", NULL, "c", "public/x"), RINGMQ_DENIED);
    cr_assert_eq(check(RINGMQ_ACTION_PUBLISH, "globex", "u-alice", "c", "sensors/u-alice/t"),
                 RINGMQ_GRANTED);                              /* globex's own readwrite # */
    cr_assert_eq(PUB("bob", "c", "any/thing"), RINGMQ_DENIED); /* globex's rule not in acme */
}

Test(auth_file, connect_and_unsubscribe_are_granted)
{
    cr_assert_eq(check(RINGMQ_ACTION_CONNECT, "initech", NULL, "c", ""), RINGMQ_GRANTED);
    cr_assert_eq(check(RINGMQ_ACTION_UNSUBSCRIBE, "initech", NULL, "c", "#"), RINGMQ_GRANTED);
}

Test(auth_file, reload_picks_up_changed_files)
{
    cr_assert_eq(auth("alice", "secret"), RINGMQ_AUTH_ALLOW);
    cr_assert_eq(PUB("u-alice", "c", "new/topic"), RINGMQ_DENIED);
    fake_write_file(pw_path, "alice:initech:a2:" H_NEW_SECRET "\n");
    fake_write_file(acl_path, "[tenant initech]\nuser a2\ntopic write new/%u\n");
    /* Nothing changes before reload. */
    cr_assert_eq(auth("alice", "secret"), RINGMQ_AUTH_ALLOW);
    plug->reload(state);
    cr_assert_eq(auth("alice", "secret"), RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_eq(auth("bob", "hunter2"), RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_eq(auth("alice", "new-secret"), RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(fake_last.tenant, "initech");
    cr_assert_str_eq(fake_last.user_id, "a2");
    cr_assert_eq(check(RINGMQ_ACTION_PUBLISH, "initech", "a2", "c", "new/a2"), RINGMQ_GRANTED);
    cr_assert_eq(PUB(NULL, "c", "public/x"), RINGMQ_DENIED);
}

/* An unknown user is checked against a hash of as many rounds as the
 * costliest one in the file, so that the time to a refusal does not tell
 * whether the user exists whatever rounds the operator chose (the fixture's
 * hashes have 10000, the default is 50000); a reload recomputes it. The
 * unknown user is still refused (a malformed dummy would be an error). */
Test(auth_file, unknown_users_cost_the_rounds_of_the_file)
{
    cr_assert(strstr(fake_last_log, "unknown users cost 10000 PBKDF2 rounds"), "%s", fake_last_log);
    cr_assert_eq(auth("mallory", "secret"), RINGMQ_AUTH_BAD_CREDENTIALS);
    /* Only the round count matters here: the key need not match anything. */
    fake_write_file(pw_path, "alice:acme:u-alice:" H_ALICE_SECRET "\n"
                             "slow:acme:slow:!$pbkdf2-sha256$20000$c2FsdC1zYWx0LXNhbHQtcw==$"
                             "ZI11yZL7DorNEMnlT9ubURZkSLI5XzxmqTP89aV7yLU=\n");
    plug->reload(state);
    cr_assert(strstr(fake_last_log, "reloaded 2 users"), "%s", fake_last_log);
    cr_assert(strstr(fake_last_log, "unknown users cost 20000 PBKDF2 rounds"), "%s", fake_last_log);
    cr_assert_eq(auth("mallory", "secret"), RINGMQ_AUTH_BAD_CREDENTIALS);
    /* No user to match: the default. */
    fake_write_file(pw_path, "# nobody yet\n");
    plug->reload(state);
    cr_assert(strstr(fake_last_log, "unknown users cost 50000 PBKDF2 rounds"), "%s", fake_last_log);
    cr_assert_eq(auth("alice", "secret"), RINGMQ_AUTH_BAD_CREDENTIALS);
}

Test(auth_file, reload_with_a_broken_file_keeps_the_old_tables)
{
    fake_write_file(acl_path, "[tenant acme]\ntopic sometimes x\n");
    int logged = fake_log_lines;
    plug->reload(state);
    cr_assert_gt(fake_log_lines, logged, "the failure is logged");
    cr_assert_eq(auth("alice", "secret"), RINGMQ_AUTH_ALLOW);
    cr_assert_eq(SUB(NULL, "c", "public/news"), RINGMQ_GRANTED);
}

Test(auth_file_no_acl, everything_allowed_for_authenticated_users, .init = setup_no_acl,
     .fini = stop)
{
    cr_assert_eq(auth("alice", "secret"), RINGMQ_AUTH_ALLOW);
    cr_assert_eq(PUB("u-alice", "c", "anything/at/all"), RINGMQ_GRANTED);
    cr_assert_eq(SUB("u-alice", "c", "#"), RINGMQ_GRANTED);
    cr_assert_eq(auth(NULL, NULL), RINGMQ_AUTH_BAD_CREDENTIALS);
}

Test(auth_file_anon, anonymous_clients_go_to_the_configured_tenant, .init = setup_anon,
     .fini = stop)
{
    cr_assert_eq(auth(NULL, NULL), RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(fake_last.tenant, "acme");
    cr_assert_not(fake_last.has_user_id);
    /* A user name still needs the right password. */
    cr_assert_eq(auth("alice", "nope"), RINGMQ_AUTH_BAD_CREDENTIALS);
    /* Anonymous gets tenant-wide rules, none with %u. */
    cr_assert_eq(SUB(NULL, "c", "public/a"), RINGMQ_GRANTED);
}

/* ---- init errors ---- */

static void init_fails(const struct ringmq_kv *kv, size_t n, const char *want_in_err)
{
    const struct ringmq_plugin *p = fake_load(AUTH_FILE_SO);
    void *st;
    char err[256];
    cr_assert_neq(fake_init(p, kv, n, &st, err, sizeof(err)), 0);
    cr_assert_not_null(strstr(err, want_in_err), "error '%s' lacks '%s'", err, want_in_err);
}

Test(auth_file_init, errors_name_the_problem, .fini = fake_cleanup)
{
    char pw[256], bad[256], acl_bad[256];
    fake_write_file(fake_path("pw", pw, sizeof(pw)), users);
    fake_write_file(fake_path("bad", bad, sizeof(bad)), "alice:acme:plain-text-password\n");
    fake_write_file(fake_path("aclbad", acl_bad, sizeof(acl_bad)), "topic read x\n");

    init_fails(NULL, 0, "password_file is required");
    struct ringmq_kv missing[] = {{"password_file", "/nonexistent/passwd"}};
    init_fails(missing, 1, "/nonexistent/passwd");
    struct ringmq_kv typo[] = {{"password_file", pw}, {"acl_fle", pw}};
    init_fails(typo, 2, "acl_fle");
    struct ringmq_kv plain[] = {{"password_file", bad}};
    init_fails(plain, 1, ":1:");
    struct ringmq_kv acl_outside[] = {{"password_file", pw}, {"acl_file", acl_bad}};
    init_fails(acl_outside, 2, "outside a [tenant NAME] section");
    char dup[256];
    fake_write_file(fake_path("dup", dup, sizeof(dup)),
                    "alice:a::" H_ALICE_SECRET "\nalice:b::" H_ALICE_SECRET "\n");
    struct ringmq_kv twice[] = {{"password_file", dup}};
    init_fails(twice, 1, "listed twice");
    char wild[256];
    fake_write_file(fake_path("wild", wild, sizeof(wild)), "[tenant a]\ntopic read a/#/b\n");
    struct ringmq_kv bad_filter[] = {{"password_file", pw}, {"acl_file", wild}};
    init_fails(bad_filter, 2, "not a valid topic filter");
}

/* ---- worker threads ---- */

Test(auth_file_workers, verdict_comes_from_another_thread_after_authenticate_returned,
     .init = setup_acl, .fini = stop)
{
    /* Held: if the plugin answered from a worker, the answer waits at the
     * gate; if it answered inside the call, it is already recorded. */
    fake_hold(0);
    auth_start(0, "alice", "secret");
    cr_assert_eq(fake_call_get(0).completions, 0, "answered before authenticate returned");
    fake_wait_held(1);
    fake_open_gate();
    struct fake_call_rec r = fake_wait_call(0);
    cr_assert_eq(r.decision, RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(r.tenant, "acme");
    cr_assert_str_eq(r.user_id, "u-alice");
    cr_assert_not(pthread_equal(r.thread, pthread_self()), "completed on the caller's thread");

    /* An unknown user pays for a (dummy) hash on a worker too. */
    auth_start(1, "mallory", "secret");
    r = fake_wait_call(1);
    cr_assert_eq(r.decision, RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_not(pthread_equal(r.thread, pthread_self()));

    /* Nothing to hash: answered at once, inside the call. */
    auth_start(2, NULL, NULL);
    r = fake_call_get(2);
    cr_assert_eq(r.completions, 1);
    cr_assert_eq(r.decision, RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert(pthread_equal(r.thread, pthread_self()));
}

#define CALLERS          4
#define CALLS_PER_CALLER 50

static const struct {
    const char *user, *pw;
    enum ringmq_auth_decision want;
    const char *tenant; /* ALLOW only */
} mix[] = {
    {"alice", "secret", RINGMQ_AUTH_ALLOW, "acme"},
    {"alice", "Secret", RINGMQ_AUTH_BAD_CREDENTIALS, NULL},
    {"bob", "hunter2", RINGMQ_AUTH_ALLOW, "globex"},
    {"bob", NULL, RINGMQ_AUTH_BAD_CREDENTIALS, NULL},
    {"mallory", "secret", RINGMQ_AUTH_BAD_CREDENTIALS, NULL},
    {"carol", "locked-pw", RINGMQ_AUTH_NOT_AUTHORIZED, NULL},
    {"bob", "secret", RINGMQ_AUTH_BAD_CREDENTIALS, NULL},
};
#define N_MIX (sizeof(mix) / sizeof(mix[0]))

static pthread_barrier_t callers_ready;

/* A shard: CALLS_PER_CALLER CONNECTs, calls numbered from `first`. The user
 * name and password live in buffers scribbled over after each call, as the
 * host's receive buffer would be: a plugin that kept the borrowed pointers
 * would check garbage. No asserts here (not the test's thread). */
static void *caller_main(void *arg)
{
    int first = (int)(intptr_t)arg;
    pthread_barrier_wait(&callers_ready);
    for (int j = 0; j < CALLS_PER_CALLER; j++) {
        int i = first + j;
        char user[32], pw[32];
        snprintf(user, sizeof(user), "%s", mix[i % N_MIX].user);
        snprintf(pw, sizeof(pw), "%s", mix[i % N_MIX].pw ? mix[i % N_MIX].pw : "");
        struct ringmq_connect_info ci = connect_info(user, mix[i % N_MIX].pw ? pw : NULL);
        plug->authenticate(state, fake_call(i), &ci);
        memset(user, 'X', sizeof(user));
        memset(pw, 'X', sizeof(pw));
    }
    return NULL;
}

static void setup_three_workers(void)
{
    static const struct ringmq_kv kv[] = {{"workers", "3"}};
    start_with(acl, NULL, kv, 1);
}

Test(auth_file_workers, concurrent_callers_each_get_their_verdict_exactly_once,
     .init = setup_three_workers, .fini = stop)
{
    pthread_t t[CALLERS];
    cr_assert_eq(pthread_barrier_init(&callers_ready, NULL, CALLERS), 0);
    for (int k = 0; k < CALLERS; k++)
        cr_assert_eq(
            pthread_create(&t[k], NULL, caller_main, (void *)(intptr_t)(k * CALLS_PER_CALLER)), 0);
    for (int k = 0; k < CALLERS; k++)
        pthread_join(t[k], NULL);
    pthread_barrier_destroy(&callers_ready);
    fake_wait_completions(CALLERS * CALLS_PER_CALLER);
    /* After fini no thread of the plugin is left: a second completion of
     * any call would have been counted by now. */
    plug->fini(state);
    state = NULL;
    cr_assert_eq(fake_completions(), CALLERS * CALLS_PER_CALLER);
    for (int i = 0; i < CALLERS * CALLS_PER_CALLER; i++) {
        struct fake_call_rec r = fake_call_get(i);
        cr_assert_eq(r.completions, 1, "call %d completed %d times", i, r.completions);
        cr_assert_eq(r.decision, mix[i % N_MIX].want, "call %d (%s): %d", i, mix[i % N_MIX].user,
                     r.decision);
        if (mix[i % N_MIX].tenant)
            cr_assert_str_eq(r.tenant, mix[i % N_MIX].tenant, "call %d", i);
        else
            cr_assert_not(r.has_tenant, "call %d", i);
    }
    fake_assert_no_leaks();
}

/* Call 0 (alice) is being answered by the only worker, which waits inside
 * complete() until the gate opens: what is queued now stays queued. */
static void occupy_the_worker(void)
{
    fake_hold(0);
    auth_start(0, "alice", "secret");
    fake_wait_held(1);
}

/* These tests queue the same credentials behind a held worker, which has
 * already cached them: without cache_seconds 0 the CONNECTs meant to wait
 * in the queue would be answered from the cache. */
static void setup_one_worker_queue_two(void)
{
    static const struct ringmq_kv kv[] = {
        {"workers", "1"}, {"max_queue", "2"}, {"cache_seconds", "0"}};
    start_with(acl, NULL, kv, 3);
}

Test(auth_file_workers, full_queue_is_refused_at_once_without_blocking,
     .init = setup_one_worker_queue_two, .fini = stop)
{
    occupy_the_worker();
    auth_start(1, "bob", "hunter2");
    auth_start(2, "alice", "wrong");
    cr_assert_eq(fake_call_get(1).completions, 0, "queued, not answered");
    cr_assert_eq(fake_call_get(2).completions, 0, "queued, not answered");
    auth_start(3, "alice", "secret");
    struct fake_call_rec r = fake_call_get(3);
    cr_assert_eq(r.completions, 1, "a full queue is answered inside the call");
    cr_assert_eq(r.decision, RINGMQ_AUTH_ERROR);
    cr_assert_str_eq(r.reason, "authentication queue full");
    cr_assert(pthread_equal(r.thread, pthread_self()));

    fake_open_gate();
    fake_wait_completions(4);
    cr_assert_eq(fake_wait_call(0).decision, RINGMQ_AUTH_ALLOW);
    cr_assert_eq(fake_wait_call(1).decision, RINGMQ_AUTH_ALLOW);
    cr_assert_eq(fake_wait_call(2).decision, RINGMQ_AUTH_BAD_CREDENTIALS);
    /* Room again once the worker drained the queue. */
    cr_assert_eq(auth("bob", "hunter2"), RINGMQ_AUTH_ALLOW);
}

/* A CONNECT the broker gave up on while it waited in the queue (its plugin
 * timeout passed) is answered without a hash, so that a backlog after a
 * connect storm does not keep the workers busy with answers nobody reads
 * while the CONNECTs behind it time out too. */
Test(auth_file_workers, queued_calls_the_host_abandoned_are_not_hashed,
     .init = setup_one_worker_queue_two, .fini = stop)
{
    occupy_the_worker();
    auth_start(1, "bob", "hunter2");
    auth_start(2, "alice", "secret");
    fake_abandon(1);
    int logged = fake_log_lines;
    fake_open_gate();
    fake_wait_completions(3);
    struct fake_call_rec r = fake_wait_call(1);
    cr_assert_eq(r.decision, RINGMQ_AUTH_ERROR);
    cr_assert_str_eq(r.reason, "timed out waiting for a worker");
    cr_assert_eq(fake_wait_call(0).decision, RINGMQ_AUTH_ALLOW);
    cr_assert_eq(fake_wait_call(2).decision, RINGMQ_AUTH_ALLOW, "not abandoned: verified");
    cr_assert_gt(fake_log_lines, logged, "the overload is logged");
    cr_assert(strstr(fake_last_log, "1 timed out waiting for a worker"), "%s", fake_last_log);
}

static void *fini_main(void *st)
{
    plug->fini(st);
    return NULL;
}

static void setup_one_worker(void)
{
    static const struct ringmq_kv kv[] = {{"workers", "1"}, {"cache_seconds", "0"}};
    start_with(acl, NULL, kv, 2);
}

Test(auth_file_workers, fini_answers_queued_calls_and_waits_for_the_running_one,
     .init = setup_one_worker, .fini = stop)
{
    occupy_the_worker();
    for (int i = 1; i <= 5; i++)
        auth_start(i, i % 2 ? "alice" : "mallory", "secret");
    /* fini joins the worker, which waits at the gate: run it aside. */
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, fini_main, state), 0);
    state = NULL;
    fake_wait_completions(5);
    for (int i = 1; i <= 5; i++) {
        struct fake_call_rec r = fake_call_get(i);
        cr_assert_eq(r.completions, 1, "call %d", i);
        cr_assert_eq(r.decision, RINGMQ_AUTH_ERROR, "call %d", i);
        cr_assert_str_eq(r.reason, "shutting down", "call %d", i);
    }
    cr_assert_eq(fake_call_get(0).completions, 0, "still held");
    fake_open_gate();
    pthread_join(t, NULL);
    /* The job that was running finished with its real verdict; fini
     * returned only after it (ASan/LSan: nothing freed too early or leaked). */
    struct fake_call_rec r = fake_call_get(0);
    cr_assert_eq(r.completions, 1);
    cr_assert_eq(r.decision, RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(r.tenant, "acme");
    cr_assert_eq(fake_completions(), 6);
    fake_assert_no_leaks();
}

Test(auth_file_workers, reload_while_jobs_wait_judges_them_by_the_new_files,
     .init = setup_one_worker, .fini = stop)
{
    /* Call 0 is being answered with the old tables when the reload swaps
     * them: its tenant and user id point into those tables, copied by the
     * host only after the reload (fake_hold), so they must still be alive. */
    occupy_the_worker();
    auth_start(1, "alice", "secret");
    auth_start(2, "alice", "new-secret");
    auth_start(3, "bob", "hunter2");
    fake_write_file(pw_path, "alice:initech:a2:" H_NEW_SECRET "\n");
    plug->reload(state);
    fake_open_gate();
    fake_wait_completions(4);

    struct fake_call_rec r = fake_call_get(0);
    cr_assert_eq(r.decision, RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(r.tenant, "acme");
    cr_assert_str_eq(r.user_id, "u-alice");
    /* Queued before the reload, verified after it: the new file decides. */
    cr_assert_eq(fake_call_get(1).decision, RINGMQ_AUTH_BAD_CREDENTIALS);
    r = fake_call_get(2);
    cr_assert_eq(r.decision, RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(r.tenant, "initech");
    cr_assert_str_eq(r.user_id, "a2");
    cr_assert_eq(fake_call_get(3).decision, RINGMQ_AUTH_BAD_CREDENTIALS);
}

Test(auth_file_init, bad_workers_and_max_queue_values_fail_with_a_message, .fini = fake_cleanup)
{
    char pw[256];
    fake_write_file(fake_path("pw", pw, sizeof(pw)), users);
    static const char *const bad_workers[] = {"0",  "65", "",   "two", "-1",
                                              "+2", " 2", "2 ", "2k",  "18446744073709551617"};
    for (size_t i = 0; i < sizeof(bad_workers) / sizeof(bad_workers[0]); i++) {
        struct ringmq_kv kv[] = {{"password_file", pw}, {"workers", bad_workers[i]}};
        char want[128];
        snprintf(want, sizeof(want), "workers: expected a number from 1 to 64, got '%s'",
                 bad_workers[i]);
        init_fails(kv, 2, want);
    }
    static const char *const bad_queue[] = {"0", "1000001", "", "-5", "1e4", "10000x"};
    for (size_t i = 0; i < sizeof(bad_queue) / sizeof(bad_queue[0]); i++) {
        struct ringmq_kv kv[] = {{"password_file", pw}, {"max_queue", bad_queue[i]}};
        char want[128];
        snprintf(want, sizeof(want), "max_queue: expected a number from 1 to 1000000, got '%s'",
                 bad_queue[i]);
        init_fails(kv, 2, want);
    }
    /* The bounds themselves are accepted (64 threads start and stop). */
    const struct ringmq_plugin *p = fake_load(AUTH_FILE_SO);
    struct ringmq_kv edge[] = {{"password_file", pw}, {"workers", "64"}, {"max_queue", "1"}};
    void *st;
    char err[256];
    cr_assert_eq(fake_init(p, edge, 3, &st, err, sizeof(err)), 0, "%s", err);
    p->fini(st);
}

/* ---- the cache of verified credentials ----
 *
 * Where a verdict came from is told by the thread that completed the call,
 * never by timing: a cache hit completes inside authenticate, on the
 * caller's thread; a worker completes on its own thread. Call numbers from
 * 0 are used directly (auth() numbers its own from AUTH_FIRST_CALL). */

/* CONNECT `i` and return what it got, insisting it was answered inside the
 * call, on this thread: the cache. */
static struct fake_call_rec auth_inline(int i, const char *user, const char *pw)
{
    auth_start(i, user, pw);
    struct fake_call_rec r = fake_call_get(i);
    cr_assert_eq(r.completions, 1, "call %d (%s) not answered before authenticate returned", i,
                 user);
    cr_assert(pthread_equal(r.thread, pthread_self()), "call %d answered on another thread", i);
    return r;
}

/* CONNECT `i`, wait, and insist a worker answered it: no cache. */
static struct fake_call_rec auth_worker(int i, const char *user, const char *pw)
{
    auth_start(i, user, pw);
    struct fake_call_rec r = fake_wait_call(i);
    cr_assert_eq(r.completions, 1, "call %d completed %d times", i, r.completions);
    cr_assert_not(pthread_equal(r.thread, pthread_self()),
                  "call %d (%s) answered on the caller's thread", i, user);
    return r;
}

/* Ten minutes: the expiry test's hits keep a minute of real time in hand. */
static void setup_cache_600s(void)
{
    static const struct ringmq_kv kv[] = {{"cache_seconds", "600"}};
    start_with(acl, NULL, kv, 1);
}

TestSuite(auth_file_cache, .init = setup_cache_600s, .fini = stop);

Test(auth_file_cache, second_connect_is_answered_on_the_calling_thread)
{
    /* Held: a first CONNECT answered inside the call would be recorded at
     * once; from a worker it waits at the gate. */
    fake_hold(0);
    auth_start(0, "alice", "secret");
    cr_assert_eq(fake_call_get(0).completions, 0, "first CONNECT answered from nothing");
    fake_wait_held(1);
    fake_open_gate();
    struct fake_call_rec r = fake_wait_call(0);
    cr_assert_eq(r.decision, RINGMQ_AUTH_ALLOW);
    cr_assert_not(pthread_equal(r.thread, pthread_self()));

    r = auth_inline(1, "alice", "secret");
    cr_assert_eq(r.decision, RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(r.tenant, "acme");
    cr_assert_str_eq(r.user_id, "u-alice");
    cr_assert_not(r.has_reason);

    /* A second user has an entry of its own, with its own tenant and the
     * user name as user id. */
    r = auth_worker(2, "bob", "hunter2");
    cr_assert_eq(r.decision, RINGMQ_AUTH_ALLOW);
    r = auth_inline(3, "bob", "hunter2");
    cr_assert_eq(r.decision, RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(r.tenant, "globex");
    cr_assert_str_eq(r.user_id, "bob");
    r = auth_inline(4, "alice", "secret");
    cr_assert_str_eq(r.tenant, "acme");
}

Test(auth_file_cache, failures_are_never_answered_from_the_cache)
{
    cr_assert_eq(auth_worker(0, "alice", "secret").decision, RINGMQ_AUTH_ALLOW);
    cr_assert_eq(auth_inline(1, "alice", "secret").decision, RINGMQ_AUTH_ALLOW);
    /* Wrong, twice: each costs a PBKDF2 on a worker. */
    for (int i = 2; i <= 3; i++) {
        struct fake_call_rec r = auth_worker(i, "alice", "Secret");
        cr_assert_eq(r.decision, RINGMQ_AUTH_BAD_CREDENTIALS);
        cr_assert_not(r.has_tenant);
    }
    /* Prefixes and extensions of the cached password, no password, and
     * another user presenting alice's password. */
    cr_assert_eq(auth_worker(4, "alice", "secre").decision, RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_eq(auth_worker(5, "alice", "secret\n").decision, RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_eq(auth_worker(6, "alice", NULL).decision, RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_eq(auth_worker(7, "bob", "secret").decision, RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_eq(auth_worker(8, "mallory", "secret").decision, RINGMQ_AUTH_BAD_CREDENTIALS);
    /* A locked account is never cached, even with its right password. */
    for (int i = 9; i <= 10; i++)
        cr_assert_eq(auth_worker(i, "carol", "locked-pw").decision, RINGMQ_AUTH_NOT_AUTHORIZED);
    /* An empty password, once verified, is not the same as none. */
    cr_assert_eq(auth_worker(11, "empty", "").decision, RINGMQ_AUTH_ALLOW);
    cr_assert_eq(auth_inline(12, "empty", "").decision, RINGMQ_AUTH_ALLOW);
    cr_assert_eq(auth_worker(13, "empty", NULL).decision, RINGMQ_AUTH_BAD_CREDENTIALS);
    /* The failures evicted nothing. */
    cr_assert_eq(auth_inline(14, "alice", "secret").decision, RINGMQ_AUTH_ALLOW);
}

static void setup_cache_off(void)
{
    static const struct ringmq_kv kv[] = {{"cache_seconds", "0"}};
    start_with(acl, NULL, kv, 1);
}

Test(auth_file_cache, cache_seconds_0_hashes_every_connect, .init = setup_cache_off)
{
    for (int i = 0; i < 4; i++) {
        struct fake_call_rec r = auth_worker(i, "alice", "secret");
        cr_assert_eq(r.decision, RINGMQ_AUTH_ALLOW);
        cr_assert_str_eq(r.tenant, "acme");
    }
}

Test(auth_file_cache, reload_empties_it_and_a_new_password_replaces_the_old)
{
    cr_assert_eq(auth_worker(0, "alice", "secret").decision, RINGMQ_AUTH_ALLOW);
    cr_assert_eq(auth_inline(1, "alice", "secret").decision, RINGMQ_AUTH_ALLOW);
    /* The same file again: nothing changed, the cache is emptied anyway. */
    plug->reload(state);
    cr_assert_eq(auth_worker(2, "alice", "secret").decision, RINGMQ_AUTH_ALLOW);
    cr_assert_eq(auth_inline(3, "alice", "secret").decision, RINGMQ_AUTH_ALLOW);

    fake_write_file(pw_path, "alice:initech:a2:" H_NEW_SECRET "\n");
    plug->reload(state);
    cr_assert_eq(auth_worker(4, "alice", "secret").decision, RINGMQ_AUTH_BAD_CREDENTIALS);
    struct fake_call_rec r = auth_worker(5, "alice", "new-secret");
    cr_assert_eq(r.decision, RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(r.tenant, "initech");
    r = auth_inline(6, "alice", "new-secret");
    cr_assert_eq(r.decision, RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(r.tenant, "initech");
    cr_assert_str_eq(r.user_id, "a2");
    cr_assert_eq(auth_worker(7, "alice", "secret").decision, RINGMQ_AUTH_BAD_CREDENTIALS);

    /* Locked by a reload: refused at once, whatever was cached. */
    fake_write_file(pw_path, "alice:initech:a2:!" H_NEW_SECRET "\n");
    plug->reload(state);
    cr_assert_eq(auth_worker(8, "alice", "new-secret").decision, RINGMQ_AUTH_NOT_AUTHORIZED);
}

Test(auth_file_cache, entries_expire_after_cache_seconds)
{
    cr_assert_eq(auth_worker(0, "alice", "secret").decision, RINGMQ_AUTH_ALLOW);
    fake_clock_advance_ms(540000);
    cr_assert_eq(auth_inline(1, "alice", "secret").decision, RINGMQ_AUTH_ALLOW);
    /* 600 s after the verification (and then some real time): expired; the
     * hit above did not extend it. */
    fake_clock_advance_ms(60000);
    cr_assert_eq(auth_worker(2, "alice", "secret").decision, RINGMQ_AUTH_ALLOW);
    /* Verified again: cached again, for another 600 s. */
    fake_clock_advance_ms(540000);
    cr_assert_eq(auth_inline(3, "alice", "secret").decision, RINGMQ_AUTH_ALLOW);
    fake_clock_advance_ms(60000);
    cr_assert_eq(auth_worker(4, "alice", "secret").decision, RINGMQ_AUTH_ALLOW);
}

static void setup_cache_one_entry(void)
{
    static const struct ringmq_kv kv[] = {{"cache_entries", "1"}};
    start_with(acl, NULL, kv, 1);
}

Test(auth_file_cache, one_entry_shared_by_two_users_evicts_but_never_confuses,
     .init = setup_cache_one_entry)
{
    cr_assert_eq(auth_worker(0, "alice", "secret").decision, RINGMQ_AUTH_ALLOW);
    cr_assert_eq(auth_inline(1, "alice", "secret").decision, RINGMQ_AUTH_ALLOW);
    struct fake_call_rec r = auth_worker(2, "bob", "hunter2");
    cr_assert_eq(r.decision, RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(r.tenant, "globex");
    r = auth_inline(3, "bob", "hunter2");
    cr_assert_str_eq(r.tenant, "globex");
    /* The only slot is bob's now: alice pays a hash again, and takes it. */
    r = auth_worker(4, "alice", "secret");
    cr_assert_eq(r.decision, RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(r.tenant, "acme");
    r = auth_inline(5, "alice", "secret");
    cr_assert_str_eq(r.tenant, "acme");
    cr_assert_str_eq(r.user_id, "u-alice");
    /* Neither user gets in with the other's password. */
    cr_assert_eq(auth_worker(6, "bob", "secret").decision, RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_eq(auth_worker(7, "alice", "hunter2").decision, RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_eq(auth_inline(8, "alice", "secret").decision, RINGMQ_AUTH_ALLOW);
}

Test(auth_file_init, bad_cache_values_fail_with_a_message, .fini = fake_cleanup)
{
    char pw[256];
    fake_write_file(fake_path("pw", pw, sizeof(pw)), users);
    static const char *const bad_seconds[] = {"86401", "", "-1", "60s", "1.5", " 60"};
    for (size_t i = 0; i < sizeof(bad_seconds) / sizeof(bad_seconds[0]); i++) {
        struct ringmq_kv kv[] = {{"password_file", pw}, {"cache_seconds", bad_seconds[i]}};
        char want[128];
        snprintf(want, sizeof(want), "cache_seconds: expected a number from 0 to 86400, got '%s'",
                 bad_seconds[i]);
        init_fails(kv, 2, want);
    }
    static const char *const bad_entries[] = {"0",  "1048577", "",
                                              "-4", "4k",      "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad_entries) / sizeof(bad_entries[0]); i++) {
        struct ringmq_kv kv[] = {{"password_file", pw}, {"cache_entries", bad_entries[i]}};
        char want[128];
        snprintf(want, sizeof(want), "cache_entries: expected a number from 1 to 1048576, got '%s'",
                 bad_entries[i]);
        init_fails(kv, 2, want);
    }
    /* The bounds themselves are accepted. */
    const struct ringmq_plugin *p = fake_load(AUTH_FILE_SO);
    struct ringmq_kv edge[] = {
        {"password_file", pw}, {"cache_seconds", "86400"}, {"cache_entries", "1048576"}};
    void *st;
    char err[256];
    cr_assert_eq(fake_init(p, edge, 3, &st, err, sizeof(err)), 0, "%s", err);
    p->fini(st);
    struct ringmq_kv off[] = {{"password_file", pw}, {"cache_seconds", "0"}};
    cr_assert_eq(fake_init(p, off, 2, &st, err, sizeof(err)), 0, "%s", err);
    p->fini(st);
}

/* ---- shared subscriptions and '$' in substituted values ---- */

static const char acl_shares[] = "[tenant acme]\n"
                                 "topic read $share/+/#\n"
                                 "topic read $oshare/+/#\n"
                                 "topic read public/#\n"
                                 "topic deny public/secret/#\n"
                                 "[tenant globex]\n"
                                 "pattern readwrite %c/#\n"
                                 "pattern write devices/%c/status\n";

static void setup_acl_shares(void)
{
    start(acl_shares, NULL);
}

/* A shared subscription delivers the topics of its inner filter: a deny
 * rule on those applies to it too, whatever grants "$share/...". */
Test(auth_file_shares, deny_applies_to_the_filter_inside_a_shared_subscription,
     .init = setup_acl_shares, .fini = stop)
{
    cr_assert_eq(SUB(NULL, "c", "$share/g/public/news"), RINGMQ_GRANTED);
    cr_assert_eq(SUB(NULL, "c", "$oshare/g/public/news/#"), RINGMQ_GRANTED);
    cr_assert_eq(SUB(NULL, "c", "$share/g/public/secret/plans"), RINGMQ_DENIED);
    cr_assert_eq(SUB(NULL, "c", "$share/g/public/#"), RINGMQ_GRANTED_PER_TOPIC);
    cr_assert_eq(SUB(NULL, "c", "$share/g/public/+/plans"), RINGMQ_GRANTED_PER_TOPIC);
    cr_assert_eq(SUB(NULL, "c", "$oshare/g/public/secret/#"), RINGMQ_DENIED);
    /* The topics it delivers are read-checked like any others. */
    cr_assert_eq(READ(NULL, "c", "public/secret/plans"), RINGMQ_DENIED);
    cr_assert_eq(READ(NULL, "c", "public/news"), RINGMQ_GRANTED);
}

/* A client id starting with '$' put first in a rule would give the client
 * "$share/G/#" (every message of the tenant) or "$SYS/#". */
Test(auth_file_shares, client_id_with_dollar_cannot_reach_shares_or_sys_through_c,
     .init = setup_acl_shares, .fini = stop)
{
    cr_assert_eq(check(RINGMQ_ACTION_SUBSCRIBE, "globex", NULL, "dev-1", "dev-1/#"),
                 RINGMQ_GRANTED);
    cr_assert_eq(check(RINGMQ_ACTION_SUBSCRIBE, "globex", NULL, "$share", "$share/g/#"),
                 RINGMQ_DENIED);
    cr_assert_eq(check(RINGMQ_ACTION_SUBSCRIBE, "globex", NULL, "$oshare", "$oshare/g/#"),
                 RINGMQ_DENIED);
    cr_assert_eq(check(RINGMQ_ACTION_PUBLISH, "globex", NULL, "$SYS", "$SYS/x"), RINGMQ_DENIED);
    /* Not first in the rule: an ordinary literal level. */
    cr_assert_eq(check(RINGMQ_ACTION_PUBLISH, "globex", NULL, "$dev", "devices/$dev/status"),
                 RINGMQ_GRANTED);
}

/* ---- reconfigure (ABI 5): new keys on a live reload ---- */

/* Prepare new keys: 0, or the plugin's refusal with its message in err. */
static int reconfigure(const struct ringmq_kv *kv, size_t n, void **next, char *err, size_t errlen)
{
    cr_assert_not_null(plug->reconfigure);
    cr_assert_not_null(plug->reconfigure_commit);
    err[0] = '\0';
    return plug->reconfigure(state, kv, n, next, err, errlen);
}

/* Another password file: prepared, nothing changes; committed, the new
 * users are in and the old ones out; the ACL file named again stays. */
Test(auth_file, reconfigure_switches_the_password_file_on_commit)
{
    char pw2[256], err[256];
    fake_write_file(fake_path("passwd2", pw2, sizeof(pw2)),
                    "dave:acme:u-dave:" H_ALICE_SECRET "\n");
    struct ringmq_kv kv[] = {{"password_file", pw2}, {"acl_file", acl_path}};
    void *next = NULL;
    cr_assert_eq(reconfigure(kv, 2, &next, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(auth("dave", "secret"), RINGMQ_AUTH_BAD_CREDENTIALS, "not in force yet");
    cr_assert_eq(auth("alice", "secret"), RINGMQ_AUTH_ALLOW);
    plug->reconfigure_commit(state, next, true);
    cr_assert_eq(auth("dave", "secret"), RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(fake_last.user_id, "u-dave");
    cr_assert_eq(auth("alice", "secret"), RINGMQ_AUTH_BAD_CREDENTIALS, "the old file is gone");
    /* A SIGHUP reload re-reads the new file, not the old one. */
    plug->reload(state);
    cr_assert_eq(auth("dave", "secret"), RINGMQ_AUTH_ALLOW);
    cr_assert_eq(SUB(NULL, "c", "public/news"), RINGMQ_GRANTED, "acl_file kept");
}

/* A file that does not load, a bad number, an unknown key: refused with a
 * message, and the keys in force stay. */
Test(auth_file, reconfigure_refuses_bad_keys_and_keeps_the_old_ones)
{
    char err[256];
    void *next = NULL;
    struct ringmq_kv missing[] = {{"password_file", "/nonexistent/passwd2"}};
    cr_assert_neq(reconfigure(missing, 1, &next, err, sizeof(err)), 0);
    cr_assert(strstr(err, "/nonexistent/passwd2"), "%s", err);
    struct ringmq_kv zero[] = {{"password_file", pw_path}, {"workers", "0"}};
    cr_assert_neq(reconfigure(zero, 2, &next, err, sizeof(err)), 0);
    cr_assert(strstr(err, "workers"), "%s", err);
    struct ringmq_kv typo[] = {{"password_file", pw_path}, {"acl_fle", acl_path}};
    cr_assert_neq(reconfigure(typo, 2, &next, err, sizeof(err)), 0);
    cr_assert(strstr(err, "acl_fle"), "%s", err);
    char aclbad[256];
    fake_write_file(fake_path("aclbad", aclbad, sizeof(aclbad)), "topic read x\n");
    struct ringmq_kv badacl[] = {{"password_file", pw_path}, {"acl_file", aclbad}};
    cr_assert_neq(reconfigure(badacl, 2, &next, err, sizeof(err)), 0);
    cr_assert_eq(auth("alice", "secret"), RINGMQ_AUTH_ALLOW);
    cr_assert_eq(SUB(NULL, "c", "public/news"), RINGMQ_GRANTED);
}

/* Discarded (another plugin refused the reload): nothing changes. */
Test(auth_file, reconfigure_discarded_changes_nothing)
{
    char err[256];
    void *next = NULL;
    struct ringmq_kv kv[] = {{"password_file", pw_path}, {"allow_anonymous_tenant", "acme"}};
    cr_assert_eq(reconfigure(kv, 2, &next, err, sizeof(err)), 0, "%s", err);
    plug->reconfigure_commit(state, next, false);
    cr_assert_eq(auth(NULL, NULL), RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_eq(SUB(NULL, "c", "public/news"), RINGMQ_GRANTED, "acl_file still in force");
}

/* The anonymous tenant, the ACL file dropped, more workers then fewer, no
 * cache: each takes effect at the commit. */
Test(auth_file, reconfigure_anonymous_tenant_acl_workers_and_cache)
{
    char err[256];
    void *next = NULL;
    struct ringmq_kv kv[] = {{"password_file", pw_path},
                             {"allow_anonymous_tenant", "globex"},
                             {"workers", "4"},
                             {"max_queue", "3"},
                             {"cache_seconds", "0"}};
    cr_assert_eq(reconfigure(kv, 5, &next, err, sizeof(err)), 0, "%s", err);
    plug->reconfigure_commit(state, next, true);
    cr_assert(strstr(fake_last_log, "reconfigured: 5 users"), "%s", fake_last_log);
    cr_assert_eq(auth(NULL, NULL), RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(fake_last.tenant, "globex");
    cr_assert_eq(PUB("u-alice", "c", "anything"), RINGMQ_GRANTED, "no acl_file: all allowed");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(auth("alice", "secret"), RINGMQ_AUTH_ALLOW);
    kv[2].value = "1";
    cr_assert_eq(reconfigure(kv, 5, &next, err, sizeof(err)), 0, "%s", err);
    plug->reconfigure_commit(state, next, true);
    cr_assert_eq(auth("bob", "hunter2"), RINGMQ_AUTH_ALLOW);
}
