/*
 * ringmq-passwd: manages the password file of the auth_file plugin.
 *
 *   ringmq-passwd FILE add USER TENANT [USER_ID]   (password on stdin, or
 *                                                   prompted without echo)
 *   ringmq-passwd FILE delete USER
 *   ringmq-passwd FILE list
 *   ringmq-passwd token ROLE [TENANT,...]         (token on stdin, or
 *                                                   prompted without echo)
 *
 * Lines are `user:tenant:user_id:$pbkdf2-sha256$ITER$SALT$HASH`, hashed by
 * plugins/auth_file/pwhash.c, the plugin's own code. The file is rewritten
 * whole into a temporary file in the same directory (mode 0600), synced and
 * renamed over the old one, so a reader (the broker on SIGHUP) sees either
 * the old or the new file, never a half-written one. Single-threaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "admin/token.h"
#include "pwhash.h"

struct lines {
    char **v; /* raw lines without their newline */
    size_t n, cap;
};

static void usage(void)
{
    fprintf(stderr,
            "usage: ringmq-passwd FILE add USER TENANT [USER_ID]\n"
            "       ringmq-passwd FILE delete USER\n"
            "       ringmq-passwd FILE list\n"
            "       ringmq-passwd token ROLE [TENANT,...]\n"
            "add reads the password from stdin (one line), or prompts for it\n"
            "when stdin is a terminal; ITERATIONS in the environment variable\n"
            "RINGMQ_PASSWD_ITERATIONS (default %u, at least %u).\n"
            "token reads an admin API token the same way and prints its line\n"
            "for [admin] token_file: ROLE is read or admin; without tenants\n"
            "the token sees every tenant.\n",
            PWHASH_DEFAULT_ITERATIONS, PWHASH_MIN_ITERATIONS);
}

static int lines_push(struct lines *l, char *s)
{
    if (l->n == l->cap) {
        size_t c = l->cap ? l->cap * 2 : 16;
        char **v = realloc(l->v, c * sizeof(*v));
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = c;
    }
    l->v[l->n++] = s;
    return 0;
}

/* Read FILE; a missing file is an empty one when `may_be_missing`. */
static int lines_read(const char *path, struct lines *l, int may_be_missing)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT && may_be_missing)
            return 0;
        fprintf(stderr, "ringmq-passwd: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&buf, &cap, f)) >= 0) {
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            buf[--n] = '\0';
        char *s = strdup(buf);
        if (!s || lines_push(l, s) != 0) {
            free(s);
            fprintf(stderr, "ringmq-passwd: out of memory\n");
            rc = -1;
            break;
        }
    }
    free(buf);
    fclose(f);
    return rc;
}

/* Index of USER's line, or -1. */
static long lines_find(const struct lines *l, const char *user)
{
    size_t ul = strlen(user);
    for (size_t i = 0; i < l->n; i++)
        if (strncmp(l->v[i], user, ul) == 0 && l->v[i][ul] == ':')
            return (long)i;
    return -1;
}

static int lines_write(const char *path, const struct lines *l)
{
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp)
        return -1;
    snprintf(tmp, pl + 16, "%s.tmpXXXXXX", path);
    /* mkstemp creates the file with mode 0600 already; fchmod keeps that
     * true whatever the umask. */
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "ringmq-passwd: %s: %s\n", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    FILE *f = fdopen(fd, "w");
    int ok = f != NULL && fchmod(fd, 0600) == 0;
    for (size_t i = 0; ok && i < l->n; i++)
        ok = fprintf(f, "%s\n", l->v[i]) >= 0;
    ok = ok && fflush(f) == 0 && fsync(fd) == 0;
    if (f ? fclose(f) != 0 : close(fd) != 0)
        ok = 0;
    if (ok && rename(tmp, path) != 0)
        ok = 0;
    if (!ok) {
        fprintf(stderr, "ringmq-passwd: writing %s: %s\n", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return ok ? 0 : -1;
}

static void lines_free(struct lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

/* One line from stdin, or from the terminal with echo off. Returns the
 * length or -1. */
static ssize_t read_password(char *buf, size_t cap)
{
    int tty = isatty(STDIN_FILENO);
    struct termios old, quiet;
    if (tty) {
        fprintf(stderr, "Password: ");
        fflush(stderr);
        if (tcgetattr(STDIN_FILENO, &old) != 0)
            return -1;
        quiet = old;
        quiet.c_lflag &= (tcflag_t) ~(ECHO | ECHONL);
        quiet.c_lflag |= ICANON;
        if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0)
            return -1;
    }
    char *r = fgets(buf, (int)cap, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (!r)
        return -1;
    size_t n = strlen(buf);
    if (n == cap - 1 && buf[n - 1] != '\n') {
        fprintf(stderr, "ringmq-passwd: password longer than %zu bytes\n", cap - 2);
        return -1;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    return (ssize_t)n;
}

static int cmd_add(const char *path, const char *user, const char *tenant, const char *user_id)
{
    if (!pwline_field_ok(user) || !pwline_field_ok(tenant) || !pwline_field_ok(user_id)) {
        fprintf(stderr, "ringmq-passwd: user, tenant and user id must be non-empty, "
                        "without ':' or control characters\n");
        return 2;
    }
    if (user[0] == '#') {
        /* auth_file reads such a line as a comment: the user could never
         * log in. */
        fprintf(stderr, "ringmq-passwd: a user name must not start with '#'\n");
        return 2;
    }
    unsigned long iterations = PWHASH_DEFAULT_ITERATIONS;
    const char *env = getenv("RINGMQ_PASSWD_ITERATIONS");
    if (env) {
        char *end;
        iterations = strtoul(env, &end, 10);
        if (*end || iterations < PWHASH_MIN_ITERATIONS || iterations > PWHASH_MAX_ITERATIONS) {
            fprintf(stderr, "ringmq-passwd: RINGMQ_PASSWD_ITERATIONS: %u to %u\n",
                    PWHASH_MIN_ITERATIONS, PWHASH_MAX_ITERATIONS);
            return 2;
        }
    }
    char pw[1026];
    ssize_t pl = read_password(pw, sizeof(pw));
    if (pl <= 0) {
        fprintf(stderr, "ringmq-passwd: no password given\n");
        return 1;
    }
    char hash[PWHASH_ENCODED_MAX];
    int rc =
        pwhash_encode((const uint8_t *)pw, (size_t)pl, (uint32_t)iterations, hash, sizeof(hash));
    /* Do not leave the password in memory longer than needed. */
    explicit_bzero(pw, sizeof(pw));
    if (rc != 0) {
        fprintf(stderr, "ringmq-passwd: hashing failed: %s\n", strerror(-rc));
        return 1;
    }
    struct lines l = {0};
    if (lines_read(path, &l, 1) != 0) {
        lines_free(&l);
        return 1;
    }
    size_t need = strlen(user) + strlen(tenant) + strlen(user_id) + strlen(hash) + 4;
    char *line = malloc(need);
    if (!line) {
        lines_free(&l);
        return 1;
    }
    snprintf(line, need, "%s:%s:%s:%s", user, tenant, user_id, hash);
    long at = lines_find(&l, user);
    if (at >= 0) {
        free(l.v[at]); /* a new password (and tenant) for an existing user */
        l.v[at] = line;
    } else if (lines_push(&l, line) != 0) {
        free(line);
        lines_free(&l);
        return 1;
    }
    rc = lines_write(path, &l);
    lines_free(&l);
    return rc == 0 ? 0 : 1;
}

static int cmd_delete(const char *path, const char *user)
{
    struct lines l = {0};
    if (lines_read(path, &l, 0) != 0) {
        lines_free(&l);
        return 1;
    }
    long at = lines_find(&l, user);
    if (at < 0) {
        fprintf(stderr, "ringmq-passwd: %s: no user '%s'\n", path, user);
        lines_free(&l);
        return 1;
    }
    free(l.v[at]);
    memmove(&l.v[at], &l.v[at + 1], (l.n - (size_t)at - 1) * sizeof(*l.v));
    l.n--;
    int rc = lines_write(path, &l);
    lines_free(&l);
    return rc == 0 ? 0 : 1;
}

static int cmd_list(const char *path)
{
    struct lines l = {0};
    if (lines_read(path, &l, 0) != 0) {
        lines_free(&l);
        return 1;
    }
    for (size_t i = 0; i < l.n; i++) {
        struct pwline f;
        if (pwline_split(l.v[i], &f) == 0)
            printf("%s %s %s\n", f.user, f.tenant, f.user_id);
    }
    lines_free(&l);
    return 0;
}

/* A line of the admin API's token file for the token on stdin: its hash
 * (never the token), the role and the tenants, checked by the broker's own
 * parser before it is printed. */
static int cmd_token(const char *role, const char *tenants)
{
    char tok[ADMIN_TOKEN_MAX + 2];
    ssize_t tl = read_password(tok, sizeof(tok));
    if (tl <= 0) {
        fprintf(stderr, "ringmq-passwd: no token given\n");
        return 1;
    }
    char hex[ADMIN_TOKEN_HEX + 1];
    int rc = admin_token_hash_hex(tok, (size_t)tl, hex);
    explicit_bzero(tok, sizeof(tok));
    if (rc != 0) {
        fprintf(stderr, "ringmq-passwd: hashing failed\n");
        return 1;
    }
    char line[ADMIN_TOKEN_HEX + 16 + ADMIN_TOKEN_TENANTS * ADMIN_TENANT_MAX];
    int n = snprintf(line, sizeof(line), "%s:%s%s%s", hex, role, tenants ? ":" : "",
                     tenants ? tenants : "");
    struct admin_token t;
    char why[160];
    if (n < 0 || (size_t)n >= sizeof(line)) {
        fprintf(stderr, "ringmq-passwd: tenant list too long\n");
        return 2;
    }
    if (admin_token_parse_line(line, &t, why, sizeof(why)) != 0) {
        fprintf(stderr, "ringmq-passwd: %s\n", why);
        return 2;
    }
    printf("%s\n", line);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && argc <= 4 && strcmp(argv[1], "token") == 0)
        return cmd_token(argv[2], argc == 4 ? argv[3] : NULL);
    if (argc >= 5 && argc <= 6 && strcmp(argv[2], "add") == 0)
        return cmd_add(argv[1], argv[3], argv[4], argc == 6 ? argv[5] : argv[3]);
    if (argc == 4 && strcmp(argv[2], "delete") == 0)
        return cmd_delete(argv[1], argv[3]);
    if (argc == 3 && strcmp(argv[2], "list") == 0)
        return cmd_list(argv[1]);
    usage();
    return 2;
}
