/*
 * reconf: live reload of plugin keys (plugin_host_reconfigure and
 * plugin_host_reconfigure_finish in host.h). Each plugin keeps a copy of
 * the keys in force, so the host itself tells which plugins' keys changed;
 * a change is prepared by every plugin concerned before any is put in
 * force, so one refusal changes nothing.
 *
 * Runs on the thread that reloads, one reload at a time, while shards call
 * the plugins: it touches only the plugin_loaded fields no shard reads
 * (config, pending, next) and the generation (atomic).
 */
#include "plugin/host_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ringmq_kv *plugin_kv_copy(const struct ringmq_kv *kv, size_t n, bool *ok)
{
    *ok = true;
    if (n == 0)
        return NULL;
    size_t size = n * sizeof(*kv);
    for (size_t i = 0; i < n; i++)
        size += strlen(kv[i].key) + strlen(kv[i].value) + 2;
    struct ringmq_kv *out = malloc(size);
    if (out == NULL) {
        *ok = false;
        return NULL;
    }
    char *p = (char *)(out + n);
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(kv[i].key) + 1, v = strlen(kv[i].value) + 1;
        out[i].key = memcpy(p, kv[i].key, k);
        out[i].value = memcpy(p + k, kv[i].value, v);
        p += k + v;
    }
    return out;
}

/* The value of `key` in kv, or NULL. */
static const char *kv_find(const struct ringmq_kv *kv, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kv[i].key, key) == 0)
            return kv[i].value;
    return NULL;
}

/* Whether every pair of a is in b with the same value (the file gives each
 * key once, so with equal counts the two are the same set). */
static bool kv_same(const struct ringmq_kv *a, size_t na, const struct ringmq_kv *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++) {
        const char *v = kv_find(b, nb, a[i].key);
        if (v == NULL || strcmp(v, a[i].value) != 0)
            return false;
    }
    return true;
}

static struct plugin_loaded *loaded_named(struct plugin_host *h, const char *name)
{
    for (size_t i = 0; name != NULL && i < h->n; i++)
        if (strcmp(h->v[i].name, name) == 0)
            return &h->v[i];
    return NULL;
}

bool plugin_host_can_reconfigure(const struct plugin_host *h, const char *name)
{
    const struct plugin_loaded *pl = loaded_named((struct plugin_host *)h, name);
    return pl != NULL && pl->reconfigure != NULL;
}

/* Step one for one plugin whose keys changed: 0 and pl->pending, or -1
 * with err set and nothing kept. */
static int prepare_one(struct plugin_loaded *pl, const struct plugin_spec *s, char *err,
                       size_t errlen)
{
    size_t n = s->config != NULL ? s->n : 0;
    bool ok;
    struct ringmq_kv *copy = plugin_kv_copy(s->config, n, &ok);
    if (!ok) {
        snprintf(err, errlen, "plugin %s: out of memory", pl->name);
        return -1;
    }
    char perr[512] = "";
    void *next = NULL;
    if (pl->reconfigure(pl->state, s->config, n, &next, perr, sizeof(perr)) != 0) {
        perr[sizeof(perr) - 1] = '\0';
        snprintf(err, errlen, "plugin %s: %s", pl->name, perr[0] ? perr : "keys refused");
        free(copy);
        return -1;
    }
    pl->pending = true;
    pl->next = next;
    pl->next_config = copy;
    pl->next_nconfig = n;
    return 0;
}

int plugin_host_reconfigure(struct plugin_host *h, const struct plugin_spec *specs, size_t n,
                            char *err, size_t errlen)
{
    char dummy[1];
    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    for (size_t i = 0; i < h->n; i++)
        if (h->v[i].pending) {
            snprintf(err, errlen, "plugins: a reconfigure is already pending");
            return -1;
        }
    int prepared = 0;
    for (size_t i = 0; i < n; i++) {
        const struct plugin_spec *s = &specs[i];
        struct plugin_loaded *pl = loaded_named(h, s->name);
        if (pl == NULL || pl->reconfigure == NULL || pl->pending || s->path == NULL ||
            strcmp(s->path, pl->path) != 0 ||
            kv_same(pl->config, pl->nconfig, s->config, s->config != NULL ? s->n : 0))
            continue;
        if (prepare_one(pl, s, err, errlen) != 0) {
            plugin_host_reconfigure_finish(h, false);
            return -1;
        }
        prepared++;
    }
    return prepared;
}

void plugin_host_reconfigure_finish(struct plugin_host *h, bool apply)
{
    bool any = false;
    for (size_t i = 0; i < h->n; i++) {
        struct plugin_loaded *pl = &h->v[i];
        if (!pl->pending)
            continue;
        pl->reconfigure_commit(pl->state, pl->next, apply);
        if (apply) {
            free(pl->config);
            pl->config = pl->next_config;
            pl->nconfig = pl->next_nconfig;
        } else {
            free(pl->next_config);
        }
        pl->pending = false;
        pl->next = NULL;
        pl->next_config = NULL;
        pl->next_nconfig = 0;
        any = true;
    }
    /* Verdicts cached under the old keys (an ACL file switched) are stale. */
    if (apply && any)
        __atomic_add_fetch(&h->generation, 1, __ATOMIC_RELEASE);
}
