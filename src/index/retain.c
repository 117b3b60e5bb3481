/*
 * retain: the retained messages of one tenant on one shard, stored by
 * topic level (nodes and tables in level.c) so that a subscription's filter
 * walks only the branches it can match: an exact level is one hash probe,
 * '+' visits every child, '#' the whole subtree. Values (message
 * references) are owned by the caller. Runs on the owning shard's thread
 * only; never logs; iterative, allocation-free matching.
 *
 * Level names are borrowed from the stored topics (see "Names" below).
 */
#include "index/retain.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/avl.h"
#include "index/level.h"

struct retain {
    struct level_node *root;
    struct avl_node *ord; /* the nodes holding a value, in topic order */
    uint64_t seed;
    size_t count;
    size_t nodes; /* below the root */
};

/*
 * What one node costs at most: the node, malloc's header and rounding (16),
 * and its slots in its parent's table: an only child's table of 2 slots is
 * a 32-byte chunk, and a larger table is at least 1/4 full (it halves
 * below that), so at most 4 slots (32 bytes) per child.
 */
#define RETAIN_NODE_COST (sizeof(struct level_node) + 16u + 32u)

/*
 * Names. No node owns its level's bytes; each points into the topic of a
 * value stored at it or below it (every topic below a node has the node's
 * level at the same offset), and a node holding a value points into that
 * value's own topic. So a replaced or deleted value's topic may go once no
 * name points into it any more: replacing moves the path's names into the
 * new value's topic, deleting moves them into a surviving child's topic,
 * bottom-up (each node's remaining children already point elsewhere).
 */

/* Whether p points into topic[0..len], the end included (an empty last
 * level points there). As integers: the two are unrelated objects. */
static bool points_into(const uint8_t *p, const uint8_t *topic, size_t len)
{
    return (uintptr_t)p - (uintptr_t)topic <= len;
}

/* The path from n up: names in from[0..len] move to the same offset of
 * to[0..len] (the same topic, another copy). A node holding a value keeps
 * its own topic (which a caller may have carved from the same buffer). */
static void names_move(struct level_node *n, const uint8_t *from, const uint8_t *to, size_t len)
{
    for (; n->parent; n = n->parent)
        if (!n->value && points_into(n->name, from, len))
            n->name = to + ((uintptr_t)n->name - (uintptr_t)from);
}

/* The path from n up, after the value whose topic was gone[0..len] left:
 * a name pointing there moves into a child's topic (the level just before
 * the child's and its '/'). A node without a value is kept only for its
 * children, so it has one. */
static void names_rebase(struct level_node *n, const uint8_t *gone, size_t len)
{
    for (; n->parent; n = n->parent) {
        if (n->value || !points_into(n->name, gone, len))
            continue;
        const struct level_node *c = level_next_child(n, NULL);
        n->name = c->name - 1 - n->len;
    }
}

/*
 * Order. Each node holding a value is in store->ord, by its topic's bytes
 * (memcmp, a prefix first), its links in the node's `ord` (the two words a
 * trie node spends on its wildcard children, which topic names never
 * have): no allocation and no byte more per message. A node's topic is
 * found from the node alone: its name points into its value's own topic,
 * at off. A value that only replaces another keeps its node and place.
 */
static const struct level_node *ord_node(const struct avl_node *a)
{
    return (const struct level_node *)((const char *)a - offsetof(struct level_node, ord));
}

static const uint8_t *node_topic(const struct level_node *n, size_t *len)
{
    *len = (size_t)n->off + n->len;
    return n->name - n->off;
}

static int bytes_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int d = memcmp(a, b, al < bl ? al : bl);
    return d ? d : (al > bl) - (al < bl);
}

static int ord_cmp(const struct avl_node *a, const struct avl_node *b)
{
    size_t al, bl;
    const uint8_t *x = node_topic(ord_node(a), &al), *y = node_topic(ord_node(b), &bl);
    return bytes_cmp(x, al, y, bl);
}

/* A seek's key: bytes and their length. */
struct ord_key {
    const uint8_t *p;
    size_t len;
};

static int ord_key_cmp(const struct avl_node *a, const void *key)
{
    const struct ord_key *k = key;
    size_t al;
    const uint8_t *x = node_topic(ord_node(a), &al);
    return bytes_cmp(x, al, k->p, k->len);
}

struct retain *retain_create(void)
{
    struct retain *store = malloc(sizeof(*store));

    if (!store)
        return NULL;
    store->root = level_root_create(false);
    store->ord = NULL;
    if (!store->root) {
        free(store);
        return NULL;
    }
    store->seed = level_seed();
    store->count = 0;
    store->nodes = 0;
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
    size_t created;
    struct level_node *n = level_path_obtain(store->root, store->seed, topic, len, true, &created);

    if (!n) {
        *old = NULL;
        return -ENOMEM;
    }
    store->nodes += created;
    *old = n->value;
    if (n->value) /* n points into the old value's topic, at len - n->len */
        names_move(n->parent, n->name - (len - n->len), topic, len);
    else
        store->count++;
    n->name = topic + (len - n->len); /* a value's node: its own topic */
    if (!n->value)
        avl_insert(&store->ord, &n->ord, ord_cmp);
    n->value = value;
    return 0;
}

void *retain_delete(struct retain *store, const uint8_t *topic, size_t len)
{
    struct level_node *n = level_path_find(store->root, store->seed, topic, len);

    if (!n || !n->value)
        return NULL;
    void *value = n->value;
    const uint8_t *gone = n->name - (len - n->len);
    size_t freed;
    avl_remove(&store->ord, &n->ord, ord_cmp); /* while its topic is there */
    n->value = NULL;
    store->count--;
    names_rebase(level_prune(n, &freed), gone, len);
    store->nodes -= freed;
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

void retain_walk(const struct retain *store, retain_value_fn fn, void *arg)
{
    level_walk(store->root, false, fn, arg);
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

void *retain_seek(struct retain_iter *it, const struct retain *store, const uint8_t *key,
                  size_t len, bool strict, const uint8_t **topic, size_t *topic_len)
{
    struct ord_key k = {key, len};
    struct avl_node *a = avl_seek(&it->it, store->ord, ord_key_cmp, &k, strict);
    if (!a)
        return NULL;
    *topic = node_topic(ord_node(a), topic_len);
    return ord_node(a)->value;
}

void *retain_next(struct retain_iter *it, const uint8_t **topic, size_t *topic_len)
{
    struct avl_node *a = avl_next(&it->it);
    if (!a)
        return NULL;
    *topic = node_topic(ord_node(a), topic_len);
    return ord_node(a)->value;
}

bool retain_valid(const struct retain *store)
{
    size_t n;
    return avl_valid(store->ord, ord_cmp, &n) && n == store->count;
}

size_t retain_count(const struct retain *store)
{
    return store->count;
}

size_t retain_index_bytes(const struct retain *store)
{
    return store->nodes * RETAIN_NODE_COST;
}

size_t retain_index_growth(const struct retain *store, const uint8_t *topic, size_t len)
{
    const struct level_node *n = store->root;
    size_t start = 0;

    for (;;) {
        size_t end = level_end(topic, len, start);
        const struct level_node *c = level_find(
            n, topic + start, end - start, level_hash(store->seed, topic + start, end - start));
        if (!c)
            break;
        if (end == len)
            return 0;
        n = c;
        start = end + 1;
    }
    size_t missing = 1;
    for (size_t i = start; i < len; i++)
        missing += topic[i] == '/';
    return missing * RETAIN_NODE_COST;
}
