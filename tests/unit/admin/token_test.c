/* Unit tests of admin/token: the token file's lines, loading, look-up. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "admin/token.h"

static char path[64];

static const char *write_file(const char *text)
{
    snprintf(path, sizeof(path), "/tmp/ringmq_token_test_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    size_t n = strlen(text);
    cr_assert_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

Test(admin_token, hash_is_sha256_hex)
{
    char hex[ADMIN_TOKEN_HEX + 1];
    cr_assert_eq(admin_token_hash_hex("abc", 3, hex), 0);
    /* FIPS 180-2's example. */
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

Test(admin_token, line_with_role_and_tenants)
{
    struct admin_token t;
    char why[160];
    char line[256];
    char hex[ADMIN_TOKEN_HEX + 1];
    admin_token_hash_hex("abc", 3, hex);
    snprintf(line, sizeof(line), "%s:read:acme,beta.1", hex);
    cr_assert_eq(admin_token_parse_line(line, &t, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(t.role, ADMIN_ROLE_READ);
    cr_assert_eq(t.ntenants, 2);
    cr_assert(admin_token_allows_tenant(&t, "acme"));
    cr_assert(admin_token_allows_tenant(&t, "beta.1"));
    cr_assert_not(admin_token_allows_tenant(&t, "acm"));
    snprintf(line, sizeof(line), "%s:admin", hex);
    cr_assert_eq(admin_token_parse_line(line, &t, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(t.role, ADMIN_ROLE_ADMIN);
    cr_assert(admin_token_allows_tenant(&t, "anyone"), "no list: every tenant");
    cr_assert_eq(admin_token_parse_line("", &t, why, sizeof(why)), 1);
    cr_assert_eq(admin_token_parse_line("# note", &t, why, sizeof(why)), 1);
}

Test(admin_token, bad_lines_are_refused)
{
    struct admin_token t;
    char why[160];
    char hex[ADMIN_TOKEN_HEX + 1], line[256];
    admin_token_hash_hex("abc", 3, hex);
    const char *bad[] = {":read",    "abc:read",   "%s",          "%s:",        "%s:write",
                         "%s:read:", "%s:read:a,", "%s:read:a b", "%s:read:,a", "%sx:read"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(line, sizeof(line), bad[i], hex);
#pragma GCC diagnostic pop
        cr_assert_eq(admin_token_parse_line(line, &t, why, sizeof(why)), -EINVAL, "accepted %s",
                     line);
    }
    /* Upper-case hex is not what the tool writes: refused, not misread. */
    for (char *p = hex; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    snprintf(line, sizeof(line), "%s:read", hex);
    cr_assert_eq(admin_token_parse_line(line, &t, why, sizeof(why)), -EINVAL);
}

Test(admin_token, load_and_find)
{
    char hex1[ADMIN_TOKEN_HEX + 1], hex2[ADMIN_TOKEN_HEX + 1], text[512];
    admin_token_hash_hex("token-one", 9, hex1);
    admin_token_hash_hex("token-two", 9, hex2);
    snprintf(text, sizeof(text), "# admin tokens\n\n%s:admin\n%s:read:acme\n", hex1, hex2);
    struct admin_tokens set;
    char err[256];
    cr_assert_eq(admin_tokens_load(&set, write_file(text), err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(set.n, 2);
    const struct admin_token *t = admin_tokens_find(&set, "token-two", 9);
    cr_assert_not_null(t);
    cr_assert_eq(t->role, ADMIN_ROLE_READ);
    t = admin_tokens_find(&set, "token-one", 9);
    cr_assert_not_null(t);
    cr_assert_eq(t->role, ADMIN_ROLE_ADMIN);
    cr_assert_null(admin_tokens_find(&set, "token-on", 8));
    cr_assert_null(admin_tokens_find(&set, hex1, ADMIN_TOKEN_HEX), "the hash is not the token");
    cr_assert_null(admin_tokens_find(&set, "", 0));
    admin_tokens_fini(&set);
    unlink(path);
}

Test(admin_token, load_errors_name_the_line)
{
    struct admin_tokens set;
    char err[256], want[128];
    cr_assert_eq(admin_tokens_load(&set, write_file("# only\n\nnot-a-token\n"), err, sizeof(err)),
                 -EINVAL);
    snprintf(want, sizeof(want), "%s:3: expected HASH:ROLE", path);
    cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
    cr_assert_null(set.v);
    unlink(path);
    cr_assert_eq(admin_tokens_load(&set, write_file("# nothing\n"), err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, ": no token"), "%s", err);
    unlink(path);
    cr_assert_eq(admin_tokens_load(&set, "/nonexistent/tokens", err, sizeof(err)), -ENOENT);
    cr_assert_str_eq(err, "/nonexistent/tokens: No such file or directory");
}
