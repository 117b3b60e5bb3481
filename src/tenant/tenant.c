/*
 * tenant: the directory of tenant names and each shard's state of one
 * tenant (see tenant.h).
 */
#include "tenant/tenant.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/vec.h"
#include "index/retain.h"
#include "index/trie.h"
#include "ringmq/plugin.h"

struct tenant *tenant_create(uint16_t id, const char *name, const struct tenant_settings *set)
{
    struct tenant *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->id = id;
    t->name = name;
    t->name_len = (uint16_t)strlen(name);
    t->set = set;
    t->subs = trie_create();
    t->retained = retain_create();
    if (!t->subs || !t->retained) {
        trie_destroy(t->subs, NULL, NULL);
        retain_destroy(t->retained, NULL, NULL);
        free(t);
        return NULL;
    }
    return t;
}

void tenant_destroy(struct tenant *t)
{
    if (!t)
        return;
    free(t->own_set);
    free(t);
}

int tenant_settings_apply(struct tenant *t, const struct tenant_settings *base,
                          const struct ringmq_kv *kv, size_t n, char *why, size_t whylen)
{
    struct tenant_settings *set = malloc(sizeof(*set));
    if (!set)
        return -ENOMEM;
    *set = *base;
    for (size_t i = 0; i < n; i++) {
        if (config_tenant_apply(set, kv[i].key, kv[i].value, why, whylen) < 0) {
            free(set);
            return -EINVAL;
        }
    }
    /* Readers take t->set afresh for each packet on this thread: the old
     * copy can go now. */
    free(t->own_set);
    t->own_set = set;
    t->set = set;
    return 0;
}

int tenant_dir_init(struct tenant_dir *d)
{
    memset(d, 0, sizeof(*d));
    pthread_mutex_init(&d->mu, NULL);
    return tenant_dir_intern(d, "global") == 0 ? 0 : -ENOMEM;
}

void tenant_dir_fini(struct tenant_dir *d)
{
    for (uint32_t i = 0; i < d->n; i++)
        free(d->names[i]);
    free(d->names);
    pthread_mutex_destroy(&d->mu);
    memset(d, 0, sizeof(*d));
}

/* Add name as the next id; the caller holds the lock. */
static int dir_add(struct tenant_dir *d, const char *name)
{
    if (d->n >= TENANT_MAX)
        return -ENOSPC;
    if (d->n == d->cap) {
        /* Names never move: shards keep pointers to them. */
        char **v = vec_grow(d->names, &d->cap, sizeof(*v), 16);
        if (!v)
            return -ENOMEM;
        d->names = v;
    }
    char *copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    d->names[d->n] = copy;
    return (int)d->n++;
}

int tenant_dir_intern(struct tenant_dir *d, const char *name)
{
    pthread_mutex_lock(&d->mu);
    int id = -1;
    for (uint32_t i = 0; i < d->n && id < 0; i++)
        if (strcmp(d->names[i], name) == 0)
            id = (int)i;
    if (id < 0)
        id = dir_add(d, name);
    pthread_mutex_unlock(&d->mu);
    return id;
}

const char *tenant_dir_name(struct tenant_dir *d, uint16_t id)
{
    pthread_mutex_lock(&d->mu);
    const char *name = id < d->n ? d->names[id] : NULL;
    pthread_mutex_unlock(&d->mu);
    return name;
}

uint32_t tenant_dir_count(struct tenant_dir *d)
{
    pthread_mutex_lock(&d->mu);
    uint32_t n = d->n;
    pthread_mutex_unlock(&d->mu);
    return n;
}
