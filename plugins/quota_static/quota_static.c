/*
 * quota_static: a ringmq resource throttler (RINGMQ_KIND_THROTTLE) with fixed
 * per-tenant limits from the plugin's configuration keys, TENANT.RESOURCE =
 * N, where TENANT `default` applies to every tenant for the resources it does
 * not set itself (see README.md).
 *
 * Owns tables built at init and by reconfigure (ABI 5), each never changed
 * once built, so throttle(), called on every shard's hot path at once,
 * reads the current one without any lock: an acquire load of its pointer,
 * one hash lookup of the tenant and one comparison. A reconfigure builds a
 * new table off to the side and swaps the pointer (release); the old one
 * is kept until fini, since a shard may still be reading it and the hot
 * path takes no reference (a table is a few hundred bytes a tenant, and
 * reloads are rare).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringmq/plugin.h>

#include "../common/strmap.h"

#define QUOTA_UNSET     UINT64_MAX       /* while parsing: the tenant did not name it */
#define QUOTA_UNLIMITED (UINT64_MAX - 1) /* no limit (configured, or nothing set) */

static const char *const resource_keys[RINGMQ_RES_COUNT] = {
    [RINGMQ_RES_CONNECTIONS] = "max_connections",
    [RINGMQ_RES_CONNECT_RATE] = "max_connect_rate",
    [RINGMQ_RES_SESSIONS] = "max_sessions",
    [RINGMQ_RES_SUBSCRIPTIONS] = "max_subscriptions",
    [RINGMQ_RES_SHARED_SUBSCRIPTIONS] = "max_shared_subscriptions",
    [RINGMQ_RES_BYTES_IN_RATE] = "max_bytes_in_rate",
    [RINGMQ_RES_BYTES_OUT_RATE] = "max_bytes_out_rate",
    [RINGMQ_RES_RETAINED] = "max_retained",
    [RINGMQ_RES_RETAINED_BYTES] = "max_retained_bytes",
};

struct quota_tenant {
    char *name;
    uint64_t limit[RINGMQ_RES_COUNT];
};

/* One version of the limits: immutable once built. */
struct quota_table {
    struct strmap tenants; /* name -> struct quota_tenant, `default` excluded */
    struct quota_tenant **list;
    size_t n, cap;
    struct quota_tenant fallback; /* the `default.*` keys: tenants not listed */
    struct quota_table *older;    /* retired versions, freed at fini */
};

struct quota_static {
    struct quota_table *cur; /* atomic: shards load it, reconfigure swaps it */
};

static void table_free(struct quota_table *q)
{
    while (q) {
        struct quota_table *older = q->older;
        for (size_t i = 0; i < q->n; i++) {
            free(q->list[i]->name);
            free(q->list[i]);
        }
        free(q->list);
        strmap_fini(&q->tenants);
        free(q);
        q = older;
    }
}

static void quota_fini(void *state)
{
    struct quota_static *st = state;
    if (!st)
        return;
    table_free(st->cur);
    free(st);
}

static struct quota_tenant *quota_tenant_get(struct quota_table *q, const char *name, size_t len)
{
    if (len == 7 && memcmp(name, "default", 7) == 0)
        return &q->fallback;
    struct quota_tenant *t = strmap_get(&q->tenants, name, len);
    if (t)
        return t;
    if (q->n == q->cap) {
        size_t c = q->cap ? q->cap * 2 : 8;
        struct quota_tenant **v = realloc(q->list, c * sizeof(*v));
        if (!v)
            return NULL;
        q->list = v;
        q->cap = c;
    }
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->name = strndup(name, len);
    if (!t->name || strmap_put(&q->tenants, t->name, len, t) != 0) {
        free(t->name);
        free(t);
        return NULL;
    }
    for (int r = 0; r < RINGMQ_RES_COUNT; r++)
        t->limit[r] = QUOTA_UNSET;
    q->list[q->n++] = t;
    return t;
}

static int parse_limit(const char *v, uint64_t *out)
{
    if (strcmp(v, "unlimited") == 0) {
        *out = QUOTA_UNLIMITED;
        return 0;
    }
    if (*v < '0' || *v > '9')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0' || n >= QUOTA_UNLIMITED)
        return -EINVAL;
    *out = n;
    return 0;
}

/* The limits of `config` as a new table: 0 and *out, or -errno with err. */
static int table_build(const struct ringmq_kv *config, size_t n, struct quota_table **out,
                       char *err, size_t errlen)
{
    struct quota_table *q = calloc(1, sizeof(*q));
    if (!q) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    strmap_init(&q->tenants);
    for (int r = 0; r < RINGMQ_RES_COUNT; r++)
        q->fallback.limit[r] = QUOTA_UNSET;
    for (size_t i = 0; i < n; i++) {
        const char *k = config[i].key;
        const char *dot = strrchr(k, '.');
        int res = -1;
        for (int r = 0; dot && r < RINGMQ_RES_COUNT; r++)
            if (strcmp(dot + 1, resource_keys[r]) == 0)
                res = r;
        if (!dot || dot == k || res < 0) {
            snprintf(err, errlen,
                     "key '%s': expected TENANT.RESOURCE, RESOURCE one of "
                     "max_connections, max_connect_rate, max_sessions, "
                     "max_subscriptions, max_shared_subscriptions, "
                     "max_bytes_in_rate, max_bytes_out_rate, max_retained, "
                     "max_retained_bytes",
                     k);
            table_free(q);
            return -EINVAL;
        }
        uint64_t limit;
        if (parse_limit(config[i].value, &limit) != 0) {
            snprintf(err, errlen, "key '%s': '%s' is not a number or 'unlimited'", k,
                     config[i].value);
            table_free(q);
            return -EINVAL;
        }
        struct quota_tenant *t = quota_tenant_get(q, k, (size_t)(dot - k));
        if (!t) {
            snprintf(err, errlen, "out of memory");
            table_free(q);
            return -ENOMEM;
        }
        t->limit[res] = limit;
    }
    /* Fill in `default` where a tenant named nothing, once every key is
     * read (keys come in any order), so throttle() does one lookup. */
    for (int r = 0; r < RINGMQ_RES_COUNT; r++) {
        if (q->fallback.limit[r] == QUOTA_UNSET)
            q->fallback.limit[r] = QUOTA_UNLIMITED;
        for (size_t i = 0; i < q->n; i++)
            if (q->list[i]->limit[r] == QUOTA_UNSET)
                q->list[i]->limit[r] = q->fallback.limit[r];
    }
    *out = q;
    return 0;
}

static int quota_init(const struct ringmq_host *host, const struct ringmq_kv *config, size_t n,
                      void **state, char *err, size_t errlen)
{
    (void)host;
    struct quota_static *st = calloc(1, sizeof(*st));
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = table_build(config, n, &st->cur, err, errlen);
    if (rc != 0) {
        free(st);
        return rc;
    }
    *state = st;
    return 0;
}

/* ABI 5, the thread that reloads: the new keys as a table, checked whole
 * (a bad key or value refuses them all), not yet in force. */
static int quota_reconfigure(void *state, const struct ringmq_kv *config, size_t n, void **next,
                             char *err, size_t errlen)
{
    (void)state;
    struct quota_table *q = NULL;
    int rc = table_build(config, n, &q, err, errlen);
    *next = q;
    return rc;
}

static void quota_reconfigure_commit(void *state, void *next, bool apply)
{
    struct quota_static *st = state;
    struct quota_table *q = next;
    if (!apply) {
        table_free(q);
        return;
    }
    /* Only this thread writes cur: the old table goes behind the new one,
     * where a shard still reading it finds it intact. */
    q->older = st->cur;
    __atomic_store_n(&st->cur, q, __ATOMIC_RELEASE);
}

static bool quota_throttle(void *state, const char *tenant, enum ringmq_resource resource,
                           uint64_t current, uint64_t amount)
{
    const struct quota_static *st = state;
    const struct quota_table *q = __atomic_load_n(&st->cur, __ATOMIC_ACQUIRE);
    if ((unsigned)resource >= RINGMQ_RES_COUNT)
        return true; /* a resource newer than this plugin: not ours to limit */
    const struct quota_tenant *t = tenant ? strmap_get(&q->tenants, tenant, strlen(tenant)) : NULL;
    uint64_t limit = t ? t->limit[resource] : q->fallback.limit[resource];
    if (limit == QUOTA_UNLIMITED)
        return true;
    /* current + amount <= limit, without overflow. */
    return amount <= limit && current <= limit - amount;
}

static const struct ringmq_plugin quota_plugin = {
    .abi_version = RINGMQ_PLUGIN_ABI_VERSION,
    .name = "quota_static",
    .kinds = RINGMQ_KIND_THROTTLE,
    .init = quota_init,
    .fini = quota_fini,
    .throttle = quota_throttle,
    .reconfigure = quota_reconfigure,
    .reconfigure_commit = quota_reconfigure_commit,
};

__attribute__((visibility("default"))) const struct ringmq_plugin *ringmq_plugin_entry(void);

const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &quota_plugin;
}
