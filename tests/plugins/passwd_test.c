/*
 * Tests of tools/ringmq-passwd, run as a program (password on stdin), and of
 * the file it writes as read by the auth_file plugin (loaded through the
 * ABI): add / list / delete round trip, mode 0600, no plaintext, updates,
 * and refused input.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "fake_host.h"

static char pw_file[256];

static void setup(void)
{
    fake_path("passwd", pw_file, sizeof(pw_file));
}

TestSuite(passwd, .init = setup, .fini = fake_cleanup);

/* Run ringmq-passwd with `args` (shell words), `password` on stdin (NULL:
 * /dev/null); returns the exit status. Test data is shell-safe. */
static int run(const char *password, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s%s%s RINGMQ_PASSWD_ITERATIONS=10000 '%s' '%s' %s %s",
             password ? "printf '%s\\n' '" : "", password ? password : "", password ? "' |" : "",
             RINGMQ_PASSWD, pw_file, args, password ? "" : "</dev/null");
    int st = system(cmd);
    cr_assert(WIFEXITED(st), "%s", cmd);
    return WEXITSTATUS(st);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static char *list(void)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "'%s' '%s' list", RINGMQ_PASSWD, pw_file);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf) - 1, p);
    buf[n] = '\0';
    cr_assert_eq(pclose(p), 0);
    return buf;
}

static enum ringmq_auth_decision plugin_auth(const char *user, const char *pw)
{
    const struct ringmq_plugin *p = fake_load(AUTH_FILE_SO);
    struct ringmq_kv kv[] = {{"password_file", pw_file}};
    void *st;
    char err[256];
    cr_assert_eq(fake_init(p, kv, 1, &st, err, sizeof(err)), 0, "%s", err);
    struct ringmq_connect_info ci = {
        .protocol_version = 4,
        .has_username = true,
        .username = {(const uint8_t *)user, strlen(user)},
        .has_password = true,
        .password = {(const uint8_t *)pw, strlen(pw)},
    };
    fake_reset();
    p->authenticate(st, fake_call(0), &ci);
    /* Completed by one of the plugin's threads: wait before fini, which
     * would answer a call still queued with an error. */
    struct fake_call_rec r = fake_wait_call(0);
    p->fini(st);
    cr_assert_eq(fake_call_get(0).completions, 1);
    return r.decision;
}

Test(passwd, add_list_delete_round_trip)
{
    cr_assert_eq(run("s3cret-Pass", "add alice acme u-1"), 0);
    cr_assert_eq(run("other-pass", "add bob globex"), 0);
    cr_assert_str_eq(list(), "alice acme u-1\nbob globex bob\n");

    struct stat sb;
    cr_assert_eq(stat(pw_file, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600, "mode %o", sb.st_mode & 0777);
    const char *text = slurp(pw_file);
    cr_assert_null(strstr(text, "s3cret"), "plaintext stored: %s", text);
    cr_assert_null(strstr(text, "other-pass"), "plaintext stored: %s", text);
    cr_assert_not_null(strstr(text, "alice:acme:u-1:$pbkdf2-sha256$10000$"), "%s", text);

    /* What the tool wrote is what the plugin accepts. */
    cr_assert_eq(plugin_auth("alice", "s3cret-Pass"), RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(fake_last.tenant, "acme");
    cr_assert_str_eq(fake_last.user_id, "u-1");
    cr_assert_eq(plugin_auth("alice", "other-pass"), RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_eq(plugin_auth("bob", "other-pass"), RINGMQ_AUTH_ALLOW);

    cr_assert_eq(run(NULL, "delete alice"), 0);
    cr_assert_str_eq(list(), "bob globex bob\n");
    cr_assert_eq(plugin_auth("alice", "s3cret-Pass"), RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_neq(run(NULL, "delete alice"), 0, "deleting a missing user fails");
    cr_assert_str_eq(list(), "bob globex bob\n");
}

Test(passwd, same_password_gets_a_different_salt)
{
    cr_assert_eq(run("same", "add a t"), 0);
    cr_assert_eq(run("same", "add b t"), 0);
    char *text = strdup(slurp(pw_file));
    char *la = strstr(text, "a:t:a:"), *lb = strstr(text, "b:t:b:");
    cr_assert_not_null(la);
    cr_assert_not_null(lb);
    *strchr(la, '\n') = '\0';
    *strchr(lb, '\n') = '\0';
    cr_assert_str_neq(la + 6, lb + 6);
    free(text);
}

Test(passwd, add_again_replaces_password_and_tenant)
{
    cr_assert_eq(run("first", "add alice acme"), 0);
    cr_assert_eq(run("second", "add alice initech a"), 0);
    cr_assert_str_eq(list(), "alice initech a\n");
    cr_assert_eq(plugin_auth("alice", "first"), RINGMQ_AUTH_BAD_CREDENTIALS);
    cr_assert_eq(plugin_auth("alice", "second"), RINGMQ_AUTH_ALLOW);
    cr_assert_str_eq(fake_last.tenant, "initech");
}

Test(passwd, bad_input_is_refused_and_leaves_the_file_alone)
{
    cr_assert_eq(run("pw", "add alice acme"), 0);
    const char *before = strdup(slurp(pw_file));
    cr_assert_neq(run("pw", "add 'a:b' acme"), 0, "':' in a user name");
    cr_assert_neq(run("pw", "add bob 'ac:me'"), 0, "':' in a tenant");
    cr_assert_neq(run("pw", "add bob ''"), 0, "empty tenant");
    cr_assert_neq(run("", "add bob acme"), 0, "empty password");
    cr_assert_neq(run(NULL, "add bob acme"), 0, "no password at all");
    cr_assert_neq(run(NULL, "frobnicate"), 0);
    cr_assert_neq(run(NULL, "add"), 0);
    cr_assert_str_eq(slurp(pw_file), before);
    free((void *)before);
}

/* The plugin reads a line starting with '#' as a comment: a user added
 * under such a name could never log in, and the operator would not know. */
Test(passwd, user_name_starting_with_hash_is_refused)
{
    cr_assert_eq(run("pw", "add alice acme"), 0);
    const char *before = strdup(slurp(pw_file));
    cr_assert_neq(run("pw", "add '#bob' acme"), 0, "a user name the plugin reads as a comment");
    cr_assert_str_eq(slurp(pw_file), before);
    free((void *)before);
}

Test(passwd, list_of_a_missing_file_fails)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "'%s' '%s' list 2>/dev/null", RINGMQ_PASSWD, pw_file);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0);
}

/* Run `ringmq-passwd token ARGS` with `token` on stdin; its stdout into
 * out. Returns the exit status. */
static int run_token(const char *token, const char *args, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "printf '%%s\\n' '%s' | '%s' token %s 2>/dev/null", token,
             RINGMQ_PASSWD, args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    cr_assert(WIFEXITED(st), "%s", cmd);
    return WEXITSTATUS(st);
}

Test(passwd, token_line_holds_the_hash_role_and_tenants)
{
    char out[512];
    /* sha256("abc") (FIPS 180-2): the line holds the hash, never the token. */
    cr_assert_eq(run_token("abc", "read acme,beta", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
                          ":read:acme,beta\n");
    cr_assert_eq(run_token("abc", "admin", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
                          ":admin\n");
    cr_assert_eq(run_token("abc", "write", out, sizeof(out)), 2, "unknown role");
    cr_assert_str_eq(out, "");
    cr_assert_eq(run_token("abc", "read 'a b'", out, sizeof(out)), 2, "bad tenant name");
    cr_assert_eq(run_token("", "read", out, sizeof(out)), 1, "no token");
}
