/*
 * auth_file: a ringmq auth plugin (RINGMQ_KIND_AUTH) backed by two files, a
 * password file written by ringmq-passwd (user -> tenant, user id, PBKDF2
 * hash) and an optional ACL file (see README.md).
 *
 * Threads. Every callback runs on a broker shard thread, except fini, init
 * and reload (main thread). A CONNECT with a user name costs one PBKDF2
 * (milliseconds), too long for a shard serving thousands of clients:
 * authenticate copies the user name and password into a job for a pool of
 * the plugin's own threads (pool.c), which verify and complete the call.
 * Everything else (no user name, enhanced auth, a full queue, ACL checks)
 * is answered at once on the shard thread, and so are credentials that
 * verified within cache_seconds (vcache.c: a keyed digest of successes
 * only, bound to the stored hash); a worker consults that cache too before
 * hashing, so a burst of CONNECTs by one user costs one PBKDF2 per worker
 * rather than one each. fini completes every job still
 * queued with an error and joins the threads before it returns: the host
 * forbids completing after fini.
 *
 * Owns one `struct tables` version at a time: users, ACL, the anonymous
 * tenant and the verification cache, immutable once built (the cache's
 * entries aside). Shard threads (authenticate, check) and worker threads (a
 * password check) take a reference to the current version (a mutex held for
 * a pointer copy and a refcount increment), so reload() and reconfigure
 * (ABI 5) on the thread that reloads can build a new version off to the
 * side, swap the pointer, and the old one is freed by whoever drops its
 * last reference. Calls in flight never see a half-loaded file; a file that
 * fails to load leaves the old version. `conf` (the keys) is read and
 * written on the init / reload thread only; the pool is resized there.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringmq/plugin.h>

#include "../common/strmap.h"
#include "acl.h"
#include "pool.h"
#include "pwhash.h"
#include "vcache.h"

#define DEFAULT_WORKERS   2u
#define MAX_WORKERS       64u
#define DEFAULT_MAX_QUEUE 1000u
#define MAX_MAX_QUEUE     1000000u
/* Two minutes: long enough for a fleet's reconnect wave or a benchmark's
 * connection ramp, short enough that a password is re-checked often. */
#define DEFAULT_CACHE_SECONDS 120u
#define MAX_CACHE_SECONDS     86400u
/* 4096 x 40 bytes: 160 KiB, as many distinct users as a busy minute sees. */
#define DEFAULT_CACHE_ENTRIES 4096u
#define MAX_CACHE_ENTRIES     1048576u
/* Overload warnings: at most one per this many milliseconds, since a
 * connect storm would otherwise turn into a log storm. */
#define OVERLOAD_LOG_MS 10000u

struct user {
    char *line; /* the file's line, split in place: the fields point into it */
    struct pwline f;
    /* A certificate identity line ($x509-...): its key in tables.certs
     * ("sha256$HEX" lowercase without colons, "subject$S", "cn$CN"), in
     * the line's buffer; NULL for a password line. */
    char *cert;
};

struct tables {
    atomic_uint refs;
    struct strmap users; /* user name -> struct user */
    struct strmap certs; /* certificate identity (struct user.cert) -> struct user */
    struct user *user_list;
    size_t n_users;
    struct acl *acl;      /* NULL: no acl_file, every authenticated client may do anything */
    char *anon_tenant;    /* may be NULL: clients without a user name are refused */
    struct vcache *cache; /* NULL: cache_seconds 0, every CONNECT is hashed */
    /* Checked for unknown users so that a refusal takes as long whether or
     * not the user exists: as many rounds as the costliest hash in the file. */
    char dummy_hash[PWHASH_ENCODED_MAX];
    uint32_t dummy_rounds;
};

/* The plugin's keys. */
struct conf {
    char *password_file;
    char *acl_file;    /* may be NULL */
    char *anon_tenant; /* may be NULL */
    unsigned long workers;
    unsigned long max_queue;
    unsigned long cache_seconds;
    unsigned long cache_entries;
};

struct auth_file {
    const struct ringmq_host *host;
    struct conf conf;     /* the keys in force: init / reload thread only */
    pthread_mutex_t lock; /* guards `cur` (the pointer, not the tables) */
    struct tables *cur;
    /* conf's workers and max_queue, for the overload warning of any thread. */
    atomic_ulong workers, max_queue;
    struct pool *pool;                    /* NULL until init has built everything it needs */
    atomic_uint_fast64_t queue_full;      /* CONNECTs refused for a full queue */
    atomic_uint_fast64_t gave_up;         /* abandoned by the host while queued */
    atomic_uint_fast64_t overload_log_ms; /* last warning; 0: none yet */
};

/* One CONNECT waiting for a worker: what authenticate borrowed, copied,
 * since the host's buffers are gone once the callback returns. */
struct auth_job {
    struct pool_job link; /* first: the pool hands back &link */
    struct ringmq_call *call;
    bool has_password;
    size_t user_len, pw_len;
    uint8_t bytes[]; /* user name then password, neither NUL-terminated */
};

static void tables_destroy(struct tables *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_users; i++)
        free(t->user_list[i].line);
    free(t->user_list);
    strmap_fini(&t->users);
    strmap_fini(&t->certs);
    acl_destroy(t->acl);
    free(t->anon_tenant);
    vcache_destroy(t->cache);
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

/* A certificate identity `$x509-KIND$VALUE` (after any '!') into u->cert,
 * normalised in place: "sha256$" + 64 lowercase hex digits (colons
 * dropped), "subject$..." or "cn$..." as written. 0, or -EINVAL. */
static int cert_parse(struct user *u)
{
    char *c = u->f.hash + (u->f.hash[0] == '!') + strlen(PWLINE_CERT_PREFIX);
    char *dollar = strchr(c, '$');
    if (!dollar || !dollar[1])
        return -EINVAL;
    size_t kind = (size_t)(dollar - c);
    if ((kind == 7 && !strncmp(c, "subject", 7)) || (kind == 2 && !strncmp(c, "cn", 2))) {
        u->cert = c;
        return 0;
    }
    if (kind != 6 || strncmp(c, "sha256", 6) != 0)
        return -EINVAL;
    char *w = dollar + 1;
    size_t digits = 0;
    for (const char *r = dollar + 1; *r; r++) {
        if (*r == ':')
            continue;
        if (!isxdigit((unsigned char)*r))
            return -EINVAL;
        *w++ = (char)tolower((unsigned char)*r);
        digits++;
    }
    *w = '\0';
    if (digits != 64)
        return -EINVAL;
    u->cert = c;
    return 0;
}

/* Whether the line's credential is a password hash (else a certificate). */
static bool is_password(const struct user *u)
{
    return u->cert == NULL;
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
        u->cert = NULL;
        const char *h = s != 0 ? "" : u->f.hash[0] == '!' ? u->f.hash + 1 : u->f.hash;
        bool cert = !strncmp(h, PWLINE_CERT_PREFIX, strlen(PWLINE_CERT_PREFIX));
        if ((cert && cert_parse(u) != 0) ||
            (!cert && strncmp(h, PWHASH_PREFIX, strlen(PWHASH_PREFIX)) != 0)) {
            rc = -EINVAL;
            snprintf(err, errlen,
                     "%s:%u: expected user:tenant:user_id:" PWHASH_PREFIX
                     "... or $x509-sha256$HEX, $x509-subject$SUBJECT, $x509-cn$CN",
                     path, lineno);
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
        if (rc == 0 && u->cert) {
            if (strmap_get(&t->certs, u->cert, strlen(u->cert)))
                return -EEXIST;
            rc = strmap_put(&t->certs, u->cert, strlen(u->cert), u);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Every file c names, its anonymous tenant and a new (empty) cache, as a
 * new version: 0 and *out, or -errno with err set. */
static int tables_load(const struct conf *c, struct tables **out, char *err, size_t errlen)
{
    struct tables *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    atomic_init(&t->refs, 1);
    strmap_init(&t->users);
    strmap_init(&t->certs);
    int rc = users_load(t, c->password_file, err, errlen);
    if (rc == 0) {
        rc = tables_index(t);
        if (rc != 0)
            snprintf(err, errlen, "%s: %s", c->password_file,
                     rc == -EEXIST ? "a certificate identity listed twice" : "out of memory");
    }
    if (rc == 0 && c->acl_file)
        rc = acl_load(c->acl_file, &t->acl, err, errlen);
    if (rc == 0 && c->anon_tenant && !(t->anon_tenant = strdup(c->anon_tenant))) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
    }
    if (rc == 0 && c->cache_seconds > 0) {
        rc = vcache_create(c->cache_entries, (uint64_t)c->cache_seconds * 1000u, &t->cache);
        if (rc != 0)
            snprintf(err, errlen, "cannot create the cache (cache_entries %lu): %s",
                     c->cache_entries, strerror(-rc));
    }
    if (rc != 0) {
        tables_destroy(t);
        return rc;
    }
    long rounds = 0;
    for (size_t i = 0; i < t->n_users; i++) {
        const char *h = t->user_list[i].f.hash;
        long n = pwhash_iterations(h[0] == '!' ? h + 1 : h);
        rounds = n > rounds ? n : rounds;
    }
    t->dummy_rounds = rounds ? (uint32_t)rounds : PWHASH_DEFAULT_ITERATIONS;
    /* Cannot fail: the rounds are in range and the buffer fits any encoding. */
    pwhash_dummy(t->dummy_rounds, t->dummy_hash, sizeof(t->dummy_hash));
    *out = t;
    return 0;
}

static void log_loaded(const struct auth_file *st, const struct tables *t, const char *what)
{
    st->host->log(RINGMQ_LOG_INFO, "%s %zu users%s; unknown users cost %u PBKDF2 rounds", what,
                  t->n_users, t->acl ? " and the ACL file" : "", t->dummy_rounds);
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

/* The hash a cache entry for `u` is bound to, or NULL where the cache must
 * not answer: no cache, unknown user (they keep paying the dummy hash),
 * locked account, no password. */
static const char *cache_hash(const struct tables *t, const struct user *u, bool has_password)
{
    if (!t->cache || !u || !has_password || u->f.hash[0] == '!' || !is_password(u))
        return NULL;
    return u->f.hash;
}

/* Shard or worker thread: when these credentials verified against `u`'s
 * current hash within cache_seconds, answer ALLOW and return true. `u` is
 * borrowed from tables the caller holds until this returns (tenant and user
 * id point into them and complete() copies them). */
static bool complete_from_cache(struct auth_file *st, const struct tables *t,
                                struct ringmq_call *call, const struct user *u, bool has_password,
                                const uint8_t *pw, size_t pw_len)
{
    const char *hash = cache_hash(t, u, has_password);
    if (!hash || !vcache_lookup(t->cache, hash, pw, pw_len, st->host->now_ms()))
        return false;
    complete_auth(st, call, RINGMQ_AUTH_ALLOW, u->f.tenant, u->f.user_id, NULL);
    return true;
}

/* Worker thread: one PBKDF2 (unless the cache answers), then the verdict.
 * Known or not, every user name costs a hash (the dummy one for strangers),
 * so the time to a refusal does not tell which users exist. */
static void verify_and_complete(struct auth_file *st, struct ringmq_call *call, const uint8_t *user,
                                size_t user_len, bool has_password, const uint8_t *pw,
                                size_t pw_len)
{
    /* The tables current now, when the job runs, not when it was queued: a
     * user removed or re-passworded by a reload while the job waited is
     * judged by the new file. The reference is held until complete()
     * returns, because tenant and user id point into the tables. */
    struct tables *t = tables_acquire(st);
    const struct user *u = strmap_get(&t->users, (const char *)user, user_len);
    /* Queued behind another CONNECT with the same credentials (a fleet or
     * a benchmark connecting at once), which a worker verified meanwhile. */
    if (complete_from_cache(st, t, call, u, has_password, pw, pw_len)) {
        tables_release(t);
        return;
    }
    /* A certificate line has no password: as an unknown user. */
    if (u && !is_password(u))
        u = NULL;
    const char *hash = u ? u->f.hash : t->dummy_hash;
    bool locked = hash[0] == '!';
    int v = pwhash_verify(locked ? hash + 1 : hash, has_password ? pw : NULL,
                          has_password ? pw_len : 0);
    if (v < 0) {
        st->host->log(RINGMQ_LOG_ERR, "user '%s': unreadable password hash (%s)",
                      u ? u->f.user : "-", strerror(-v));
        complete_auth(st, call, RINGMQ_AUTH_ERROR, NULL, NULL, "password check failed");
    } else if (!u || !has_password || v == 0) {
        complete_auth(st, call, RINGMQ_AUTH_BAD_CREDENTIALS, NULL, NULL, NULL);
    } else if (locked) {
        complete_auth(st, call, RINGMQ_AUTH_NOT_AUTHORIZED, NULL, NULL, "account locked");
    } else {
        /* Before complete(): the client's next CONNECT, or one queued
         * behind this, must find it. Only successes are cached, so every
         * wrong guess still costs a PBKDF2. */
        const char *h = cache_hash(t, u, has_password);
        if (h)
            vcache_insert(t->cache, h, pw, pw_len, st->host->now_ms());
        complete_auth(st, call, RINGMQ_AUTH_ALLOW, u->f.tenant, u->f.user_id, NULL);
    }
    tables_release(t);
}

static struct auth_job *job_create(struct ringmq_call *call, const struct ringmq_connect_info *info)
{
    size_t pw_len = info->has_password ? info->password.len : 0;
    struct auth_job *job = malloc(sizeof(*job) + info->username.len + pw_len);
    if (!job)
        return NULL;
    job->link.next = NULL;
    job->call = call;
    job->has_password = info->has_password;
    job->user_len = info->username.len;
    job->pw_len = pw_len;
    if (job->user_len)
        memcpy(job->bytes, info->username.p, job->user_len);
    if (pw_len)
        memcpy(job->bytes + job->user_len, info->password.p, pw_len);
    return job;
}

static void job_destroy(struct auth_job *job)
{
    /* A password must not linger in freed heap memory. */
    explicit_bzero(job->bytes, job->user_len + job->pw_len);
    free(job);
}

/* pool_run_fn: a worker thread. */
/* A CONNECT refused for a full queue (shard thread) or one the host gave up
 * on while it waited (worker): a warning now and then, with the running
 * counts, rather than one line per CONNECT of a storm. */
static void note_overload(struct auth_file *st, atomic_uint_fast64_t *counter)
{
    atomic_fetch_add(counter, 1);
    uint64_t now = st->host->now_ms();
    uint_fast64_t last = atomic_load(&st->overload_log_ms);
    if (last != 0 && now - last < OVERLOAD_LOG_MS)
        return;
    /* One thread wins the right to log for this period. */
    if (!atomic_compare_exchange_strong(&st->overload_log_ms, &last, now ? now : 1))
        return;
    st->host->log(RINGMQ_LOG_WARN,
                  "authentication overloaded (workers %lu, max_queue %lu): so far %" PRIuFAST64
                  " CONNECTs refused for a full queue, %" PRIuFAST64
                  " timed out waiting for a worker",
                  atomic_load(&st->workers), atomic_load(&st->max_queue),
                  atomic_load(&st->queue_full), atomic_load(&st->gave_up));
}

static void job_run(void *arg, struct pool_job *link)
{
    struct auth_file *st = arg;
    struct auth_job *job = (struct auth_job *)link;
    if (st->host->call_abandoned(job->call)) {
        /* The broker already refused this CONNECT (it waited longer than
         * the plugin timeout): a hash now would only delay the CONNECTs
         * queued behind it, which may still be in time. */
        note_overload(st, &st->gave_up);
        complete_auth(st, job->call, RINGMQ_AUTH_ERROR, NULL, NULL,
                      "timed out waiting for a worker");
    } else {
        verify_and_complete(st, job->call, job->bytes, job->user_len, job->has_password,
                            job->bytes + job->user_len, job->pw_len);
    }
    job_destroy(job);
}

/* pool_cancel_fn: fini's thread, for a job that never ran. Completing here is
 * legal: ringmqd destroys its ports before the plugins, so the host has
 * abandoned the call and only drops our reference. */
static void job_cancel(void *arg, struct pool_job *link)
{
    struct auth_job *job = (struct auth_job *)link;
    complete_auth(arg, job->call, RINGMQ_AUTH_ERROR, NULL, NULL, "shutting down");
    job_destroy(job);
}

static void conf_fini(struct conf *c)
{
    free(c->password_file);
    free(c->acl_file);
    free(c->anon_tenant);
    memset(c, 0, sizeof(*c));
}

static void auth_file_fini(void *state)
{
    struct auth_file *st = state;
    if (!st)
        return;
    /* First: queued jobs are completed with an error, running ones finish
     * (they hold table references and read dummy_hash), and then no thread
     * of ours is left to complete a call. */
    pool_destroy(st->pool);
    if (st->cur)
        tables_release(st->cur);
    pthread_mutex_destroy(&st->lock);
    conf_fini(&st->conf);
    free(st);
}

static int set_key(char **dst, const char *value)
{
    free(*dst);
    *dst = strdup(value);
    return *dst ? 0 : -ENOMEM;
}

/* A decimal number in [min, max] and nothing else: no sign, no blanks, no
 * unit, so that "2k" or "-1" is an error rather than 2 or a huge number. */
static int set_number(unsigned long *dst, const char *key, const char *value, unsigned long min,
                      unsigned long max, char *err, size_t errlen)
{
    char *end = NULL;
    errno = 0;
    unsigned long x = value[0] >= '0' && value[0] <= '9' ? strtoul(value, &end, 10) : 0;
    if (!end || *end || errno || x < min || x > max) {
        snprintf(err, errlen, "%s: expected a number from %lu to %lu, got '%s'", key, min, max,
                 value);
        return -EINVAL;
    }
    *dst = x;
    return 0;
}

/* One key into c: 0, or -errno with err set. */
static int conf_key(struct conf *c, const char *k, const char *v, char *err, size_t errlen)
{
    if (strcmp(k, "password_file") == 0)
        return set_key(&c->password_file, v);
    if (strcmp(k, "acl_file") == 0)
        return set_key(&c->acl_file, v);
    if (strcmp(k, "allow_anonymous_tenant") == 0) {
        if (*v)
            return set_key(&c->anon_tenant, v);
        snprintf(err, errlen, "allow_anonymous_tenant: empty tenant name");
        return -EINVAL;
    }
    if (strcmp(k, "workers") == 0)
        return set_number(&c->workers, k, v, 1, MAX_WORKERS, err, errlen);
    if (strcmp(k, "max_queue") == 0)
        return set_number(&c->max_queue, k, v, 1, MAX_MAX_QUEUE, err, errlen);
    if (strcmp(k, "cache_seconds") == 0)
        return set_number(&c->cache_seconds, k, v, 0, MAX_CACHE_SECONDS, err, errlen);
    if (strcmp(k, "cache_entries") == 0)
        return set_number(&c->cache_entries, k, v, 1, MAX_CACHE_ENTRIES, err, errlen);
    /* A typo in a security setting must not be silently ignored. */
    snprintf(err, errlen,
             "unknown key '%s' (known: password_file, acl_file, "
             "allow_anonymous_tenant, workers, max_queue, cache_seconds, "
             "cache_entries)",
             k);
    return -EINVAL;
}

/* The keys of a [plugin.NAME] section into *c (defaults for those not
 * given): 0, or -errno with err set and c emptied. */
static int conf_parse(struct conf *c, const struct ringmq_kv *config, size_t n, char *err,
                      size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->workers = DEFAULT_WORKERS;
    c->max_queue = DEFAULT_MAX_QUEUE;
    c->cache_seconds = DEFAULT_CACHE_SECONDS;
    c->cache_entries = DEFAULT_CACHE_ENTRIES;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = conf_key(c, config[i].key, config[i].value, err, errlen);
        if (rc == -ENOMEM)
            snprintf(err, errlen, "out of memory");
    }
    if (rc == 0 && !c->password_file) {
        snprintf(err, errlen, "password_file is required");
        rc = -EINVAL;
    }
    if (rc != 0)
        conf_fini(c);
    return rc;
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
    atomic_init(&st->queue_full, 0);
    atomic_init(&st->gave_up, 0);
    atomic_init(&st->overload_log_ms, 0);
    pthread_mutex_init(&st->lock, NULL);
    int rc = conf_parse(&st->conf, config, n, err, errlen);
    if (rc == 0)
        rc = tables_load(&st->conf, &st->cur, err, errlen);
    atomic_init(&st->workers, st->conf.workers);
    atomic_init(&st->max_queue, st->conf.max_queue);
    if (rc == 0) {
        /* Last: the workers read everything set up above. */
        rc = pool_create("auth_file", (unsigned)st->conf.workers, st->conf.max_queue, job_run,
                         job_cancel, st, &st->pool);
        if (rc != 0)
            snprintf(err, errlen, "cannot start %lu worker threads: %s", st->conf.workers,
                     strerror(-rc));
    }
    if (rc != 0) {
        auth_file_fini(st);
        return rc;
    }
    log_loaded(st, st->cur, "loaded");
    *state = st;
    return 0;
}

/* Put version t in force; the old one goes when its last holder lets go
 * (jobs verifying right now hold their own reference). A worker that
 * verified against the old version inserts into the old version's cache,
 * which goes with it: the new version starts with an empty cache. */
static void tables_swap(struct auth_file *st, struct tables *t)
{
    pthread_mutex_lock(&st->lock);
    struct tables *old = st->cur;
    st->cur = t;
    pthread_mutex_unlock(&st->lock);
    tables_release(old);
}

static void auth_file_reload(void *state)
{
    struct auth_file *st = state;
    struct tables *t;
    char err[512];
    if (tables_load(&st->conf, &t, err, sizeof(err)) != 0) {
        st->host->log(RINGMQ_LOG_ERR, "reload failed, keeping the previous files: %s", err);
        return;
    }
    tables_swap(st, t);
    log_loaded(st, t, "reloaded");
}

/* What a reconfigure prepared: the new keys and the version they load. */
struct auth_file_next {
    struct conf conf;
    struct tables *t;
};

/* ABI 5, the thread that reloads: every key checked and every file it
 * names loaded (a file that does not load refuses the reload, with the
 * same message as at start), nothing in force yet. */
static int auth_file_reconfigure(void *state, const struct ringmq_kv *config, size_t n, void **next,
                                 char *err, size_t errlen)
{
    (void)state;
    struct auth_file_next *nx = calloc(1, sizeof(*nx));
    if (!nx) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = conf_parse(&nx->conf, config, n, err, errlen);
    if (rc == 0)
        rc = tables_load(&nx->conf, &nx->t, err, errlen);
    if (rc != 0) {
        conf_fini(&nx->conf);
        free(nx);
        return rc;
    }
    *next = nx;
    return 0;
}

/* Apply: the new version for every call from now on (a CONNECT queued
 * for a worker is judged by it too), then the pool's size. */
static void auth_file_reconfigure_commit(void *state, void *next, bool apply)
{
    struct auth_file *st = state;
    struct auth_file_next *nx = next;
    if (!apply) {
        tables_release(nx->t);
        conf_fini(&nx->conf);
        free(nx);
        return;
    }
    tables_swap(st, nx->t);
    conf_fini(&st->conf);
    st->conf = nx->conf;
    free(nx);
    int rc = pool_resize(st->pool, (unsigned)st->conf.workers, st->conf.max_queue);
    if (rc != 0)
        st->host->log(RINGMQ_LOG_WARN, "cannot start %lu worker threads (%s): running %u",
                      st->conf.workers, strerror(-rc), pool_threads(st->pool));
    atomic_store(&st->workers, pool_threads(st->pool));
    atomic_store(&st->max_queue, st->conf.max_queue);
    log_loaded(st, st->cur, "reconfigured:");
}

/* The certificate line matching the client's verified certificate: by
 * SHA-256, then subject, then CN (from a proxy, the CN only). NULL: none. */
static const struct user *cert_user(const struct tables *t, const struct ringmq_connect_info *in)
{
    if (!in->client_cert_verified)
        return NULL;
    const char *const kinds[] = {"sha256$", "subject$", "cn$"};
    const char *const values[] = {in->client_cert_sha256, in->client_cert_subject,
                                  in->client_cert_cn};
    char key[1100];
    for (size_t i = 0; i < 3; i++) {
        int n = values[i] ? snprintf(key, sizeof(key), "%s%s", kinds[i], values[i]) : -1;
        if (n < 0 || (size_t)n >= sizeof(key))
            continue;
        const struct user *u = strmap_get(&t->certs, key, (size_t)n);
        if (u)
            return u;
    }
    return NULL;
}

/* A client whose verified certificate a line names, sending no user name
 * or that line's: answered here (allow, or not authorized when locked).
 * False when no line applies: user name and password decide. */
static bool complete_by_cert(struct auth_file *st, const struct tables *t, struct ringmq_call *call,
                             const struct ringmq_connect_info *in)
{
    const struct user *u = cert_user(t, in);
    bool mine = u && (!in->has_username || (in->username.len == strlen(u->f.user) &&
                                            !memcmp(in->username.p, u->f.user, in->username.len)));
    if (mine && u->f.hash[0] == '!')
        complete_auth(st, call, RINGMQ_AUTH_NOT_AUTHORIZED, NULL, NULL, "account locked");
    else if (mine)
        complete_auth(st, call, RINGMQ_AUTH_ALLOW, u->f.tenant, u->f.user_id, NULL);
    return mine;
}

/* What the shard answers at once, against version t: a certificate line,
 * no user name (the anonymous tenant or a refusal), credentials the cache
 * knows. False when a worker must hash. */
static bool complete_at_once(struct auth_file *st, const struct tables *t, struct ringmq_call *call,
                             const struct ringmq_connect_info *info)
{
    if (complete_by_cert(st, t, call, info))
        return true;
    if (!info->has_username) {
        if (t->anon_tenant)
            complete_auth(st, call, RINGMQ_AUTH_ALLOW, t->anon_tenant, NULL, NULL);
        else
            complete_auth(st, call, RINGMQ_AUTH_BAD_CREDENTIALS, NULL, NULL, "user name required");
        return true;
    }
    if (!t->cache)
        return false;
    const struct user *u =
        strmap_get(&t->users, (const char *)info->username.p, info->username.len);
    return complete_from_cache(st, t, call, u, info->has_password, info->password.p,
                               info->password.len);
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
    /* Held until complete() returned: the tenant strings point into it. */
    struct tables *t = tables_acquire(st);
    bool done = complete_at_once(st, t, call, info);
    tables_release(t);
    if (done)
        return;
    /* Unknown users are queued too: see verify_and_complete. */
    struct auth_job *job = job_create(call, info);
    if (!job) {
        complete_auth(st, call, RINGMQ_AUTH_ERROR, NULL, NULL, "out of memory");
        return;
    }
    int rc = pool_submit(st->pool, &job->link);
    if (rc == 0)
        return; /* a worker completes the call */
    job_destroy(job);
    if (rc == -EAGAIN) {
        /* Waiting for room would stall the shard: refuse, the client retries. */
        complete_auth(st, call, RINGMQ_AUTH_ERROR, NULL, NULL, "authentication queue full");
        note_overload(st, &st->queue_full);
    } else {
        complete_auth(st, call, RINGMQ_AUTH_ERROR, NULL, NULL, "shutting down");
    }
}

static void auth_file_auth_continue(void *state, struct ringmq_call *call,
                                    const struct ringmq_auth_step *step)
{
    (void)step;
    complete_auth(state, call, RINGMQ_AUTH_BAD_METHOD, NULL, NULL, "no enhanced authentication");
}

/* The verdict on one check, against the current tables. CONNECT was
 * decided by authenticate; UNSUBSCRIBE cannot leak data. */
static enum ringmq_verdict verdict(struct auth_file *st, const struct ringmq_check *c)
{
    if (c->action != RINGMQ_ACTION_PUBLISH && c->action != RINGMQ_ACTION_SUBSCRIBE &&
        c->action != RINGMQ_ACTION_RECEIVE)
        return RINGMQ_GRANTED;
    enum ringmq_verdict v = RINGMQ_GRANTED;
    struct tables *t = tables_acquire(st);
    const char *tenant = c->tenant ? c->tenant : "global";
    if (!t->acl) {
        /* No acl_file: everything is allowed. */
    } else if (c->action == RINGMQ_ACTION_PUBLISH) {
        if (!acl_may_publish(t->acl, tenant, c->user_id, c->client_id.p, c->client_id.len,
                             c->topic.p, c->topic.len))
            v = RINGMQ_DENIED;
    } else if (c->action == RINGMQ_ACTION_RECEIVE) {
        if (!acl_may_read(t->acl, tenant, c->user_id, c->client_id.p, c->client_id.len, c->topic.p,
                          c->topic.len))
            v = RINGMQ_DENIED;
    } else {
        enum acl_sub s = acl_may_subscribe(t->acl, tenant, c->user_id, c->client_id.p,
                                           c->client_id.len, c->topic.p, c->topic.len);
        v = s == ACL_SUB_GRANTED     ? RINGMQ_GRANTED
            : s == ACL_SUB_PER_TOPIC ? RINGMQ_GRANTED_PER_TOPIC
                                     : RINGMQ_DENIED;
    }
    tables_release(t);
    return v;
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
    res.check.verdict = verdict(st, c);
    st->host->complete(call, &res);
}

/* ABI 3: on the shard that delivers; no lock beyond the table reference,
 * no allocation unless a substituted rule is long. */
static void auth_file_check_read(void *state, const struct ringmq_check *c,
                                 struct ringmq_check_result *out)
{
    out->verdict = verdict(state, c);
    out->cacheable = true;
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
    .check_read = auth_file_check_read,
    .reconfigure = auth_file_reconfigure,
    .reconfigure_commit = auth_file_reconfigure_commit,
};

__attribute__((visibility("default"))) const struct ringmq_plugin *ringmq_plugin_entry(void);

const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &auth_file_plugin;
}
