/*
 * tenant: the namespaces of the broker. A tenant's subscriptions, retained
 * messages, sessions (client ids) and shared groups are invisible to every
 * other tenant; its settings, quotas and counters are its own.
 *
 * The directory (struct tenant_dir) maps names to ids, the same on every
 * shard; it is touched at CONNECT only (under its mutex), never per
 * message. Each shard keeps its own struct tenant per id it has seen: its
 * slice of the topic index, its replica of the retained store, the
 * sessions homed there, its share of the counters and rate windows.
 * Cross-shard messages name a tenant by id.
 */
#ifndef RINGMQ_TENANT_TENANT_H
#define RINGMQ_TENANT_TENANT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "metrics/counters.h"

struct trie;
struct retain;
struct avl_node;
struct session;

/* Tenant ids are below this (a shard's table of tenants has this many
 * slots). */
#define TENANT_MAX 4096u

/* Per-second usage a throttler is asked about. */
enum rate_kind { RATE_CONNECTS, RATE_BYTES_IN, RATE_BYTES_OUT, RATE_KINDS };

/* This shard's share of one per-second usage of a tenant. `second` and
 * `count` are written by the owning shard only and read by the others
 * (atomics); `others` is their sum as last read, at `others_ms`. */
struct rate_window {
    uint64_t second; /* now_ms / 1000 that count is for */
    uint64_t count;
    uint64_t others;
    uint64_t others_ms;
};

/* One tenant's state on one shard. */
struct tenant {
    struct tenant_counters ctr; /* this shard's share; the metrics thread reads it */
    struct rate_window rate[RATE_KINDS];
    uint16_t id;
    uint16_t name_len;                 /* strlen(name) */
    const char *name;                  /* the directory's copy, lives as long as the broker */
    const struct tenant_settings *set; /* config, or own_set from a setting provider */
    struct tenant_settings *own_set;   /* the provider's values (heap), or NULL */
    struct trie *subs;                 /* filter -> struct sub_node */
    struct retain *retained;           /* topic -> struct msg (replica on every shard) */
    struct session **reg;              /* client id registry: chained hash, homed sessions */
    uint32_t reg_mask;                 /* buckets - 1 */
    uint32_t reg_count;
    struct avl_node *reg_root; /* the same sessions in client id order (session/idtree.h) */
};

/* A tenant's state for a shard: empty index and retained store, the
 * settings `set` (borrowed). NULL when out of memory. The index's values
 * are freed by whoever fills them (route_tenant_fini) before
 * tenant_destroy. */
struct tenant *tenant_create(uint16_t id, const char *name, const struct tenant_settings *set);

/* Free the struct and its provider settings (not the index: see above). */
void tenant_destroy(struct tenant *t);

struct ringmq_kv;

/* A setting provider's answer for t: `n` values (keys as in [tenant.ID])
 * applied over `base`, the tenant's configured settings, become t's
 * settings (t->set, held in t->own_set; the previous copy is freed: the
 * caller is the only thread that reads t->set). 0; -EINVAL when a value is
 * refused (the reason in why, t keeps what it had); -ENOMEM. */
int tenant_settings_apply(struct tenant *t, const struct tenant_settings *base,
                          const struct ringmq_kv *kv, size_t n, char *why, size_t whylen);

/* Every tenant the broker has seen: name <-> id. names[0] = "global". */
struct tenant_dir {
    pthread_mutex_t mu;
    char **names; /* index: tenant id */
    uint32_t n, cap;
};

/* An empty directory, then "global" as id 0. 0 or -ENOMEM. */
int tenant_dir_init(struct tenant_dir *d);
void tenant_dir_fini(struct tenant_dir *d);

/* The id of tenant `name`, adding it when new; -ENOSPC beyond TENANT_MAX
 * tenants, -ENOMEM. Any thread. */
int tenant_dir_intern(struct tenant_dir *d, const char *name);

/* The name of tenant `id` (NULL if unknown), from any thread: the strings
 * never move or change, but the array holding them grows under the lock. */
const char *tenant_dir_name(struct tenant_dir *d, uint16_t id);

/* How many tenants the directory holds now (ids 0 .. n-1). Any thread. */
uint32_t tenant_dir_count(struct tenant_dir *d);

#endif
