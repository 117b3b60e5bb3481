/*
 * auth_file: a ringmq auth plugin (RINGMQ_KIND_AUTH) backed by two files, a
 * password file written by ringmq-passwd (user -> tenant, user id, PBKDF2
 * hash) and an optional ACL file (see README.md). Every call completes
 * synchronously, inside the callback, on the calling shard thread.
 *
 * Owns one `struct tables` version at a time: users and ACL, immutable once
 * built. Shard threads take a reference to the current version (a mutex held
 * for a pointer copy and a refcount increment), so reload() on the SIGHUP
 * thread can build a new version off to the side, swap the pointer, and the
 * old one is freed by whoever drops its last reference. Calls in flight never
 * see a half-loaded file; a file that fails to load leaves the old version.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringmq/plugin.h>

#include "../common/strmap.h"
#include "acl.h"
#include "pwhash.h"

struct user {
    char *line; /* the file's line, split in place: the fields point into it */
    struct pwline f;
};

struct tables {
    atomic_uint refs;
    struct strmap users; /* user name -> struct user */
    struct user *user_list;
    size_t n_users;
    struct acl *acl; /* NULL: no acl_file, every authenticated client may do anything */
};

struct auth_file {
    const struct ringmq_host *host;
    char *password_file;
    char *acl_file;    /* may be NULL */
    char *anon_tenant; /* may be NULL: clients without a user name are refused */
    /* Checked for unknown users so that a refusal takes as long whether or
     * not the user exists. */
    char dummy_hash[PWHASH_ENCODED_MAX];
    pthread_mutex_t lock; /* guards `cur` (the pointer, not the tables) */
    struct tables *cur;
};

static void tables_destroy(struct tables *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_users; i++)
        free(t->user_list[i].line);
    free(t->user_list);
    strmap_fini(&t->users);
    acl_destroy(t->acl);
    free(t);
}

static void tables_release(struct tables *t)
{
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        tables_destroy(t);
}

static struct tables *tables_acquire(struct auth_file *st)
{
    pthread_mutex_lock(&st->lock);
    struct tables *t = st->cur;
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&st->lock);
    return t;
}

static int users_load(struct tables *t, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    size_t cap = 0;
    char *buf = NULL;
    size_t bufcap = 0;
    unsigned lineno = 0;
    int rc = 0;
    while (getline(&buf, &bufcap, f) >= 0) {
        lineno++;
        if (t->n_users == cap) {
            size_t c = cap ? cap * 2 : 16;
            struct user *v = realloc(t->user_list, c * sizeof(*v));
            if (!v) {
                rc = -ENOMEM;
                snprintf(err, errlen, "%s: out of memory", path);
                break;
            }
            t->user_list = v;
            cap = c;
        }
        struct user *u = &t->user_list[t->n_users];
        u->line = strdup(buf);
        if (!u->line) {
            rc = -ENOMEM;
            snprintf(err, errlen, "%s: out of memory", path);
            break;
        }
        int s = pwline_split(u->line, &u->f);
        if (s == 1) {
            free(u->line);
            continue;
        }
        t->n_users++; /* owned by the table from here on, for cleanup */
        const char *h = s != 0 ? "" : u->f.hash[0] == '!' ? u->f.hash + 1 : u->f.hash;
        if (strncmp(h, PWHASH_PREFIX, strlen(PWHASH_PREFIX)) != 0) {
            rc = -EINVAL;
            snprintf(err, errlen, "%s:%u: expected user:tenant:user_id:" PWHASH_PREFIX "...", path,
                     lineno);
            break;
        }
        if (strmap_get(&t->users, u->f.user, strlen(u->f.user))) {
            rc = -EINVAL;
            snprintf(err, errlen, "%s:%u: user '%s' listed twice", path, lineno, u->f.user);
            break;
        }
        rc = strmap_put(&t->users, u->f.user, strlen(u->f.user), u);
        if (rc != 0) {
            snprintf(err, errlen, "%s: out of memory", path);
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        rc = -EIO;
        snprintf(err, errlen, "%s: read error", path);
    }
    free(buf);
    fclose(f);
    return rc;
}

/* The user map points into user_list, which may move while the file is
 * read: index it once the list is complete. */
static int tables_index(struct tables *t)
{
    strmap_fini(&t->users);
    strmap_init(&t->users);
    for (size_t i = 0; i < t->n_users; i++) {
        struct user *u = &t->user_list[i];
        int rc = strmap_put(&t->users, u->f.user, strlen(u->f.user), u);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int tables_load(const struct auth_file *st, struct tables **out, char *err, size_t errlen)
{
    struct tables *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    atomic_init(&t->refs, 1);
    strmap_init(&t->users);
    int rc = users_load(t, st->password_file, err, errlen);
    if (rc == 0) {
        rc = tables_index(t);
        if (rc != 0)
            snprintf(err, errlen, "out of memory");
    }
    if (rc == 0 && st->acl_file)
        rc = acl_load(st->acl_file, &t->acl, err, errlen);
    if (rc != 0) {
        tables_destroy(t);
        return rc;
    }
    *out = t;
    return 0;
}

static void auth_file_fini(void *state)
{
    struct auth_file *st = state;
    if (!st)
        return;
    if (st->cur)
        tables_release(st->cur);
    pthread_mutex_destroy(&st->lock);
    free(st->password_file);
    free(st->acl_file);
    free(st->anon_tenant);
    free(st);
}

static int set_key(char **dst, const char *value)
{
    free(*dst);
    *dst = strdup(value);
    return *dst ? 0 : -ENOMEM;
}

static int auth_file_init(const struct ringmq_host *host, const struct ringmq_kv *config, size_t n,
                          void **state, char *err, size_t errlen)
{
    struct auth_file *st = calloc(1, sizeof(*st));
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    st->host = host;
    pthread_mutex_init(&st->lock, NULL);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *k = config[i].key, *v = config[i].value;
        if (strcmp(k, "password_file") == 0) {
            rc = set_key(&st->password_file, v);
        } else if (strcmp(k, "acl_file") == 0) {
            rc = set_key(&st->acl_file, v);
        } else if (strcmp(k, "allow_anonymous_tenant") == 0) {
            if (!*v) {
                snprintf(err, errlen, "allow_anonymous_tenant: empty tenant name");
                rc = -EINVAL;
            } else {
                rc = set_key(&st->anon_tenant, v);
            }
        } else {
            /* A typo in a security setting must not be silently ignored. */
            snprintf(err, errlen,
                     "unknown key '%s' (known: password_file, acl_file, "
                     "allow_anonymous_tenant)",
                     k);
            rc = -EINVAL;
        }
        if (rc == -ENOMEM)
            snprintf(err, errlen, "out of memory");
    }
    if (rc == 0 && !st->password_file) {
        snprintf(err, errlen, "password_file is required");
        rc = -EINVAL;
    }
    if (rc == 0) {
        static const uint8_t salt[PWHASH_SALT_LEN] = {0};
        rc = pwhash_encode_salted((const uint8_t *)"-", 1, PWHASH_DEFAULT_ITERATIONS, salt,
                                  sizeof(salt), st->dummy_hash, sizeof(st->dummy_hash));
        if (rc != 0)
            snprintf(err, errlen, "PBKDF2-SHA256 from wolfCrypt failed");
    }
    if (rc == 0)
        rc = tables_load(st, &st->cur, err, errlen);
    if (rc != 0) {
        auth_file_fini(st);
        return rc;
    }
    *state = st;
    return 0;
}

static void auth_file_reload(void *state)
{
    struct auth_file *st = state;
    struct tables *t;
    char err[512];
    if (tables_load(st, &t, err, sizeof(err)) != 0) {
        st->host->log(RINGMQ_LOG_ERR, "reload failed, keeping the previous files: %s", err);
        return;
    }
    pthread_mutex_lock(&st->lock);
    struct tables *old = st->cur;
    st->cur = t;
    pthread_mutex_unlock(&st->lock);
    tables_release(old);
    st->host->log(RINGMQ_LOG_INFO, "reloaded %zu users%s", t->n_users,
                  t->acl ? " and the ACL file" : "");
}

static void complete_auth(const struct auth_file *st, struct ringmq_call *call,
                          enum ringmq_auth_decision d, const char *tenant, const char *user_id,
                          const char *reason)
{
    union ringmq_result res;
    memset(&res, 0, sizeof(res));
    res.auth.decision = d;
    res.auth.tenant = tenant;
    res.auth.user_id = user_id;
    res.auth.reason = reason;
    st->host->complete(call, &res);
}

static void auth_file_authenticate(void *state, struct ringmq_call *call,
                                   const struct ringmq_connect_info *info)
{
    struct auth_file *st = state;
    if (info->auth_method.len > 0) {
        /* Only CONNECT user name and password; no enhanced auth method. */
        complete_auth(st, call, RINGMQ_AUTH_BAD_METHOD, NULL, NULL, "no enhanced authentication");
        return;
    }
    if (!info->has_username) {
        if (st->anon_tenant)
            complete_auth(st, call, RINGMQ_AUTH_ALLOW, st->anon_tenant, NULL, NULL);
        else
            complete_auth(st, call, RINGMQ_AUTH_BAD_CREDENTIALS, NULL, NULL, "user name required");
        return;
    }
    struct tables *t = tables_acquire(st);
    const struct user *u =
        strmap_get(&t->users, (const char *)info->username.p, info->username.len);
    const uint8_t *pw = info->has_password ? info->password.p : NULL;
    size_t pw_len = info->has_password ? info->password.len : 0;
    const char *hash = u ? u->f.hash : st->dummy_hash;
    bool locked = hash[0] == '!';
    int v = pwhash_verify(locked ? hash + 1 : hash, pw, pw_len);
    if (v < 0) {
        st->host->log(RINGMQ_LOG_ERR, "user '%s': unreadable password hash (%s)",
                      u ? u->f.user : "-", strerror(-v));
        complete_auth(st, call, RINGMQ_AUTH_ERROR, NULL, NULL, "password check failed");
    } else if (!u || !info->has_password || v == 0) {
        complete_auth(st, call, RINGMQ_AUTH_BAD_CREDENTIALS, NULL, NULL, NULL);
    } else if (locked) {
        complete_auth(st, call, RINGMQ_AUTH_NOT_AUTHORIZED, NULL, NULL, "account locked");
    } else {
        complete_auth(st, call, RINGMQ_AUTH_ALLOW, u->f.tenant, u->f.user_id, NULL);
    }
    tables_release(t);
}

static void auth_file_auth_continue(void *state, struct ringmq_call *call,
                                    const struct ringmq_auth_step *step)
{
    (void)step;
    complete_auth(state, call, RINGMQ_AUTH_BAD_METHOD, NULL, NULL, "no enhanced authentication");
}

static void auth_file_check(void *state, struct ringmq_call *call, const struct ringmq_check *c)
{
    struct auth_file *st = state;
    union ringmq_result res;
    memset(&res, 0, sizeof(res));
    /* The verdict depends only on (tenant, user id, client id, action,
     * topic), all fixed for a connection: the host may cache it. A reload
     * applies to checks not cached yet and to new connections. */
    res.check.cacheable = true;
    res.check.verdict = RINGMQ_GRANTED;
    if (c->action == RINGMQ_ACTION_PUBLISH || c->action == RINGMQ_ACTION_SUBSCRIBE) {
        struct tables *t = tables_acquire(st);
        if (t->acl && !acl_allows(t->acl, c->tenant ? c->tenant : "global", c->user_id,
                                  c->client_id.p, c->client_id.len,
                                  c->action == RINGMQ_ACTION_SUBSCRIBE, c->topic.p, c->topic.len))
            res.check.verdict = RINGMQ_DENIED;
        tables_release(t);
    }
    /* CONNECT was decided by authenticate; UNSUBSCRIBE cannot leak data. */
    st->host->complete(call, &res);
}

static const struct ringmq_plugin auth_file_plugin = {
    .abi_version = RINGMQ_PLUGIN_ABI_VERSION,
    .name = "auth_file",
    .kinds = RINGMQ_KIND_AUTH,
    .init = auth_file_init,
    .fini = auth_file_fini,
    .reload = auth_file_reload,
    .authenticate = auth_file_authenticate,
    .auth_continue = auth_file_auth_continue,
    .check = auth_file_check,
};

__attribute__((visibility("default"))) const struct ringmq_plugin *ringmq_plugin_entry(void);

const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &auth_file_plugin;
}
