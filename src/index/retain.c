/*
 * retain: the retained messages of one tenant on one shard, stored by
 * topic level (nodes and tables in level.c) so that a subscription's filter
 * walks only the branches it can match: an exact level is one hash probe,
 * '+' visits every child, '#' the whole subtree. Values (message
 * references) are owned by the caller. Runs on the owning shard's thread
 * only; never logs; iterative, allocation-free matching.
 */
#include "index/retain.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "index/level.h"

struct retain {
    struct level_node *root;
    uint64_t seed;
    size_t count;
};

struct retain *retain_create(void)
{
    struct retain *store = malloc(sizeof(*store));

    if (!store)
        return NULL;
    store->root = level_root_create();
    if (!store->root) {
        free(store);
        return NULL;
    }
    store->seed = level_seed();
    store->count = 0;
    return store;
}

void retain_destroy(struct retain *store, retain_value_fn free_value, void *arg)
{
    if (!store)
        return;
    level_tree_destroy(store->root, free_value, arg);
    free(store);
}

int retain_set(struct retain *store, const uint8_t *topic, size_t len, void *value, void **old)
{
    struct level_node *n = level_path_obtain(store->root, store->seed, topic, len);

    if (!n) {
        *old = NULL;
        return -ENOMEM;
    }
    *old = n->value;
    if (!n->value)
        store->count++;
    n->value = value;
    return 0;
}

void *retain_delete(struct retain *store, const uint8_t *topic, size_t len)
{
    struct level_node *n = level_path_find(store->root, store->seed, topic, len);

    if (!n || !n->value)
        return NULL;
    void *value = n->value;
    n->value = NULL;
    store->count--;
    level_prune(n);
    return value;
}

void *retain_get(const struct retain *store, const uint8_t *topic, size_t len)
{
    const struct level_node *n = level_path_find(store->root, store->seed, topic, len);

    return n ? n->value : NULL;
}

/* MQTT-4.7.2-1: a first-level wildcard skips the root's '$' children. */
static const struct level_node *next_child(const struct level_node *n,
                                           const struct level_node *from)
{
    const struct level_node *c = level_next_child(n, from);

    while (c && !n->parent && c->len && c->name[0] == '$')
        c = level_next_child(n, c);
    return c;
}

/*
 * Depth-first over the stored topics the filter can reach. At a node whose
 * filter level is start..end (start > len: all levels consumed): a plain
 * level descends into its one child, '+' into each child in turn (resumed
 * from the child we come back from), '#' reports the node's whole subtree,
 * the node included ("a/#" matches "a", MQTT-4.7.1-2).
 */
void retain_match(const struct retain *store, const uint8_t *filter, size_t len, retain_value_fn fn,
                  void *arg)
{
    const struct level_node *root = store->root;
    const struct level_node *n = root;
    const struct level_node *from = NULL;
    size_t start = 0;
    size_t end = level_end(filter, len, 0);

    for (;;) {
        const struct level_node *next = NULL;
        bool past = start > len;
        bool plus = !past && level_is(filter + start, end - start, '+');

        if (from) {
            if (plus)
                next = next_child(n, from);
        } else if (past) {
            if (n->value)
                fn(n->value, arg);
        } else if (plus) {
            next = next_child(n, NULL);
        } else if (level_is(filter + start, end - start, '#')) {
            level_walk(n, n == root, fn, arg);
        } else {
            next = level_find(n, filter + start, end - start,
                              level_hash(store->seed, filter + start, end - start));
        }
        if (next) {
            n = next;
            from = NULL;
            start = end + 1;
            end = start <= len ? level_end(filter, len, start) : start;
            continue;
        }
        if (n == root)
            return;
        from = n;
        n = n->parent;
        end = start - 1;
        start = level_begin(filter, end);
    }
}

size_t retain_count(const struct retain *store)
{
    return store->count;
}
