/*
 * admin/token: parses the token file and checks a presented bearer token
 * against it (see token.h for the format). Hashes with wolfCrypt's SHA-256:
 * tokens are long random strings, so a plain hash (no salt, no stretching)
 * keeps a stolen file from being replayed without making every request pay
 * for a password hash. Runs on the main thread (load) and the admin HTTP
 * thread (find); logs nothing, it returns reasons.
 */
#include "admin/token.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>

static int token_sha256(const char *token, size_t len, uint8_t out[32])
{
    wc_Sha256 sha;
    if (wc_InitSha256(&sha) != 0)
        return -EIO;
    int rc = wc_Sha256Update(&sha, (const byte *)token, (word32)len);
    if (rc == 0)
        rc = wc_Sha256Final(&sha, out);
    wc_Sha256Free(&sha);
    return rc == 0 ? 0 : -EIO;
}

int admin_token_hash_hex(const char *token, size_t len, char *hex)
{
    uint8_t h[32];
    int rc = token_sha256(token, len, h);
    if (rc < 0)
        return rc;
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof(h); i++) {
        hex[2 * i] = digits[h[i] >> 4];
        hex[2 * i + 1] = digits[h[i] & 15];
    }
    hex[ADMIN_TOKEN_HEX] = '\0';
    return 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* upper case is refused: ringmq-passwd writes lower case */
}

static bool tenant_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

/* The comma-separated tenant list `s` (NUL-terminated) into t. */
static int parse_tenants(const char *s, struct admin_token *t, char *why, size_t whylen)
{
    while (*s) {
        size_t n = 0;
        while (s[n] && s[n] != ',' && tenant_char(s[n]))
            n++;
        if (n == 0 || n >= ADMIN_TENANT_MAX || (s[n] && s[n] != ',')) {
            snprintf(why, whylen,
                     "tenants: expected names of 1..%d of A-Z a-z 0-9 _ - . "
                     "separated by ','",
                     ADMIN_TENANT_MAX - 1);
            return -EINVAL;
        }
        if (t->ntenants == ADMIN_TOKEN_TENANTS) {
            snprintf(why, whylen, "tenants: at most %d", ADMIN_TOKEN_TENANTS);
            return -EINVAL;
        }
        memcpy(t->tenants[t->ntenants], s, n);
        t->tenants[t->ntenants++][n] = '\0';
        s += n;
        if (*s == ',' && !*++s) {
            snprintf(why, whylen, "tenants: empty name after ','");
            return -EINVAL;
        }
    }
    return 0;
}

int admin_token_parse_line(const char *line, struct admin_token *t, char *why, size_t whylen)
{
    memset(t, 0, sizeof(*t));
    if (!line[0] || line[0] == '#')
        return 1;
    for (size_t i = 0; i < 32; i++) {
        int hi = hex_digit(line[2 * i]), lo = hi < 0 ? -1 : hex_digit(line[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            snprintf(why, whylen,
                     "expected HASH:ROLE[:TENANTS] with HASH 64 lower-case hex "
                     "digits (ringmq-passwd token makes a line)");
            return -EINVAL;
        }
        t->hash[i] = (uint8_t)(hi << 4 | lo);
    }
    const char *p = line + ADMIN_TOKEN_HEX;
    if (*p++ != ':') {
        snprintf(why, whylen, "expected ':' after the hash");
        return -EINVAL;
    }
    size_t rl = strcspn(p, ":");
    if (rl == 4 && memcmp(p, "read", 4) == 0) {
        t->role = ADMIN_ROLE_READ;
    } else if (rl == 5 && memcmp(p, "admin", 5) == 0) {
        t->role = ADMIN_ROLE_ADMIN;
    } else {
        snprintf(why, whylen, "role: expected read or admin, got '%.*s'", (int)rl, p);
        return -EINVAL;
    }
    p += rl;
    if (*p == ':' && !p[1]) {
        snprintf(why, whylen, "tenants: empty list after ':' (leave it out for every tenant)");
        return -EINVAL;
    }
    return *p == ':' ? parse_tenants(p + 1, t, why, whylen) : 0;
}

static int tokens_push(struct admin_tokens *set, const struct admin_token *t, uint32_t *cap)
{
    if (set->n == *cap) {
        uint32_t c = *cap ? *cap * 2 : 8;
        struct admin_token *v = realloc(set->v, c * sizeof(*v));
        if (!v)
            return -ENOMEM;
        set->v = v;
        *cap = c;
    }
    set->v[set->n++] = *t;
    return 0;
}

/* Every line of f into set; 0 or -errno with the reason in err. */
static int tokens_read(struct admin_tokens *set, FILE *f, const char *path, char *err,
                       size_t errlen)
{
    char *buf = NULL;
    size_t bcap = 0;
    uint32_t cap = 0;
    int rc = 0, lineno = 0;
    ssize_t n;
    while (rc == 0 && (n = getline(&buf, &bcap, f)) >= 0) {
        lineno++;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            buf[--n] = '\0';
        struct admin_token t;
        char why[160];
        rc = admin_token_parse_line(buf, &t, why, sizeof(why));
        if (rc < 0)
            snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
        else if (rc == 0 && (rc = tokens_push(set, &t, &cap)) < 0)
            snprintf(err, errlen, "%s: out of memory", path);
        else
            rc = 0;
    }
    free(buf);
    if (rc == 0 && ferror(f)) {
        rc = -EIO;
        snprintf(err, errlen, "%s: read error", path);
    }
    return rc;
}

int admin_tokens_load(struct admin_tokens *set, const char *path, char *err, size_t errlen)
{
    set->v = NULL;
    set->n = 0;
    FILE *f = fopen(path, "re");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    int rc = tokens_read(set, f, path, err, errlen);
    fclose(f);
    if (rc == 0 && set->n == 0) {
        snprintf(err, errlen, "%s: no token (ringmq-passwd token makes a line)", path);
        rc = -EINVAL;
    }
    if (rc < 0)
        admin_tokens_fini(set);
    return rc;
}

void admin_tokens_fini(struct admin_tokens *set)
{
    free(set->v);
    set->v = NULL;
    set->n = 0;
}

const struct admin_token *admin_tokens_find(const struct admin_tokens *set, const char *token,
                                            size_t len)
{
    uint8_t h[32];
    if (len == 0 || len > ADMIN_TOKEN_MAX || token_sha256(token, len, h) < 0)
        return NULL;
    const struct admin_token *found = NULL;
    for (uint32_t i = 0; i < set->n; i++) {
        uint8_t diff = 0;
        for (size_t k = 0; k < sizeof(h); k++)
            diff |= (uint8_t)(h[k] ^ set->v[i].hash[k]);
        if (diff == 0 && !found)
            found = &set->v[i];
    }
    return found;
}

bool admin_token_allows_tenant(const struct admin_token *t, const char *name)
{
    if (t->ntenants == 0)
        return true;
    for (uint32_t i = 0; i < t->ntenants; i++)
        if (strcmp(t->tenants[i], name) == 0)
            return true;
    return false;
}
