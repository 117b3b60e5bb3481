/*
 * admin/token: the admin API's bearer tokens, read from [admin] token_file.
 *
 * One token per line, `SHA256HEX:ROLE[:TENANT,TENANT...]`: the token's
 * SHA-256 (wolfCrypt) in lower-case hex, so that the file never holds a
 * token itself; the role `read` (GET only) or `admin` (everything); the
 * tenants the token may see (none: every tenant). Blank lines and lines
 * starting with '#' are skipped. `ringmq-passwd token` makes a line.
 *
 * Self-contained (libc and wolfCrypt only): tools/ringmq-passwd builds this
 * file too, so the tool and the broker hash the same way. Not thread-safe
 * while loading; a loaded set is read-only and may be read from any thread.
 */
#ifndef RINGMQ_ADMIN_TOKEN_H
#define RINGMQ_ADMIN_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ADMIN_TOKEN_HEX     64   /* hex digits of a SHA-256 */
#define ADMIN_TOKEN_MAX     1024 /* longest token accepted, bytes */
#define ADMIN_TENANT_MAX    64   /* a tenant name's buffer (config's limit) */
#define ADMIN_TOKEN_TENANTS 32   /* most tenants one token may name */

enum admin_role {
    ADMIN_ROLE_READ = 1,  /* GET endpoints */
    ADMIN_ROLE_ADMIN = 2, /* every endpoint */
};

struct admin_token {
    uint8_t hash[32];
    enum admin_role role;
    uint32_t ntenants; /* 0: every tenant */
    char tenants[ADMIN_TOKEN_TENANTS][ADMIN_TENANT_MAX];
};

struct admin_tokens {
    struct admin_token *v;
    uint32_t n;
};

/* SHA-256 of `token` (len bytes) as 64 lower-case hex digits and a NUL
 * into hex[ADMIN_TOKEN_HEX + 1]. 0 or -EIO (wolfCrypt failed). */
int admin_token_hash_hex(const char *token, size_t len, char *hex);

/* One line of the file (no newline) into *t. 0, 1 for a blank or comment
 * line (nothing read), or -EINVAL with the reason in why. */
int admin_token_parse_line(const char *line, struct admin_token *t, char *why, size_t whylen);

/* Read the file at `path` into *set (replacing nothing: *set must be
 * empty). 0, or -errno with "PATH:LINE: reason" or "PATH: reason" in err;
 * nothing is left allocated on failure. A file without any token is an
 * error (nobody could call the API). */
int admin_tokens_load(struct admin_tokens *set, const char *path, char *err, size_t errlen);

void admin_tokens_fini(struct admin_tokens *set);

/* The entry whose hash is the token's (len bytes), or NULL. Compares every
 * entry in constant time, so the time taken says nothing of how close a
 * guess came. */
const struct admin_token *admin_tokens_find(const struct admin_tokens *set, const char *token,
                                            size_t len);

/* May `t` see tenant `name`? */
bool admin_token_allows_tenant(const struct admin_token *t, const char *name);

#endif
