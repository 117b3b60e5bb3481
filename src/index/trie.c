/*
 * trie: the subscription index of one tenant on one shard. Filters are
 * stored level by level (nodes and tables in level.c); a filter's value is
 * the caller's, stored through the slot trie_slot hands out.
 *
 * A match walks, at each level, only the exact child (one hash probe), the
 * '+' child and the '#' child, so its cost follows the number of filters
 * that can match rather than the number stored. The walk is iterative
 * (parent pointers, level bounds recomputed on the way up) and allocates
 * nothing. Runs on the owning shard's thread only; never logs.
 */
#include "index/trie.h"

#include <stdbool.h>
#include <stdlib.h>

#include "index/level.h"

struct trie {
    struct level_node *root;
    uint64_t seed;
};

struct trie *trie_create(void)
{
    struct trie *trie = malloc(sizeof(*trie));

    if (!trie)
        return NULL;
    trie->root = level_root_create(true);
    if (!trie->root) {
        free(trie);
        return NULL;
    }
    trie->seed = level_seed();
    return trie;
}

void trie_destroy(struct trie *trie, trie_value_fn free_value, void *arg)
{
    if (!trie)
        return;
    level_tree_destroy(trie->root, free_value, arg);
    free(trie);
}

void **trie_slot(struct trie *trie, const uint8_t *filter, size_t len)
{
    struct level_node *n = level_path_obtain(trie->root, trie->seed, filter, len, false, NULL);

    return n ? &n->value : NULL;
}

void *trie_get(const struct trie *trie, const uint8_t *filter, size_t len)
{
    const struct level_node *n = level_path_find(trie->root, trie->seed, filter, len);

    return n ? n->value : NULL;
}

void *trie_remove(struct trie *trie, const uint8_t *filter, size_t len)
{
    struct level_node *n = level_path_find(trie->root, trie->seed, filter, len);

    if (!n)
        return NULL;
    void *value = n->value;
    n->value = NULL;
    level_prune(n, NULL);
    return value;
}

static void report(const struct level_node *n, trie_value_fn fn, void *arg)
{
    if (n && n->value)
        fn(n->value, arg);
}

/*
 * Depth-first over the nodes the topic can reach. At a node whose level
 * index is `start..end` of the topic (start > len: every level consumed):
 * the '#' child matches the rest, then the exact child and the '+' child
 * are descended in turn. Coming back up from a child tells which one was
 * done: the '+' child is last. Each node is entered at most once (its depth
 * fixes the topic level it is entered with), so each filter is reported at
 * most once.
 */
void trie_match(const struct trie *trie, const uint8_t *topic, size_t len, trie_value_fn fn,
                void *arg)
{
    const struct level_node *root = trie->root;
    const struct level_node *n = root;
    const struct level_node *from = NULL;
    /* MQTT-4.7.2-1: no '+' or '#' at the first level for a '$' topic. */
    bool dollar = len > 0 && topic[0] == '$';
    size_t start = 0;
    size_t end = level_end(topic, len, 0);

    for (;;) {
        const struct level_node *next = NULL;
        bool wild_ok = !(dollar && n == root);

        if (from) {
            if (from != n->plus && wild_ok)
                next = n->plus;
        } else if (start > len) {
            report(n, fn, arg);
            /* "a/#" matches "a" (MQTT-4.7.1-2); never reached at the root. */
            report(n->pound, fn, arg);
        } else {
            if (wild_ok)
                report(n->pound, fn, arg);
            next = level_find(n, topic + start, end - start,
                              level_hash(trie->seed, topic + start, end - start));
            if (!next && wild_ok)
                next = n->plus;
        }
        if (next) {
            n = next;
            from = NULL;
            start = end + 1;
            end = start <= len ? level_end(topic, len, start) : start;
            continue;
        }
        if (n == root)
            return;
        from = n;
        n = n->parent;
        end = start - 1;
        start = level_begin(topic, end);
    }
}

static void count_one(void *value, void *arg)
{
    (void)value;
    (*(size_t *)arg)++;
}

size_t trie_count(const struct trie *trie)
{
    size_t count = 0;

    /* Walked, not kept: callers store through the slot without telling us. */
    level_walk(trie->root, false, count_one, &count);
    return count;
}
