/*
 * level: the node and per-node level table shared by the subscription trie
 * (trie.c) and the retained store (retain.c). Internal to src/index: no
 * other layer includes it.
 *
 * A node is one topic level. Its bytes live inline after the struct (one
 * allocation per node), or, in a tree built with `borrow`, in memory the
 * caller keeps alive (the retained store points into its messages' topics,
 * so that N shard replicas do not hold N copies of a long topic; retain.c
 * keeps those pointers valid). Exact children are found by the level's XXH3 hash
 * in the node's own open-addressing table (linear probing, power-of-two
 * capacity, doubled at 3/4 load, backward-shift deletion so there are no
 * tombstones). The '+' and '#' children of the trie are kept in their own
 * pointers and never enter the table; the retained store, which holds topic
 * names only, has no such children and uses those two words for its own
 * order of topics (`ord`, retain.c).
 *
 * Every walk in this module and its users is iterative through the parent
 * pointers: a 65535-byte filter of empty levels ("///...") is 65536 levels
 * deep, too deep to recurse on a shard's stack.
 */
#ifndef RINGMQ_INDEX_LEVEL_H
#define RINGMQ_INDEX_LEVEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xxhash.h>

#include "core/avl.h"

/*
 * Invariants:
 *  - slots is NULL exactly when count == 0; otherwise it holds mask + 1
 *    entries, count of them non-NULL, count * 4 <= (mask + 1) * 3.
 *  - every child's parent is this node; hash is the child's level hashed
 *    with the owning tree's seed (level_hash, 31 bits).
 *  - wild is the same in every node of a tree (its root's, which the
 *    trie sets and the retained store does not): with it, plus and pound
 *    are the wildcard children; without, those two words are `ord`, which
 *    the tree's owner uses as it likes (retain.c: its topic order) and
 *    which level.c never reads.
 *  - off is where the node's level starts in every topic (filter) through
 *    it: 0 for the root's children, else the parent's off + len + 1.
 *  - a node other than the root that has no value and no children exists
 *    only transiently (trie_slot's caller has not stored yet); removal
 *    prunes such nodes.
 */
struct level_node {
    struct level_node *parent; /* NULL for the root */
    struct level_node **slots; /* exact children, open addressing */
    union {
        struct {
            struct level_node *plus;  /* the '+' child (wild trees: the trie) */
            struct level_node *pound; /* the '#' child (wild trees: the trie) */
        };
        struct avl_node ord; /* the owner's, in a tree without wild */
    };
    void *value;           /* owned by the caller, NULL when none */
    const uint8_t *name;   /* the level's len bytes: inline_name, or borrowed */
    uint32_t mask;         /* table capacity - 1 when slots != NULL */
    uint32_t count;        /* exact children in slots */
    uint32_t hash : 31;    /* of name, with the tree's seed */
    uint32_t wild : 1;     /* plus and pound in use (see above) */
    uint16_t len;          /* a level is at most 65535 bytes */
    uint16_t off;          /* the level's start in its topic: a topic is at most 65535 bytes */
    uint8_t inline_name[]; /* the name unless borrowed */
};

typedef void (*level_value_fn)(void *value, void *arg);
/* As level_value_fn; true stops the walk. */
typedef bool (*level_until_fn)(void *value, void *arg);

/* A seed for one tree's level hashes, random per tree so that a client
 * cannot pick levels that collide in a table it shares with others. */
uint64_t level_seed(void);

/* 31 bits of XXH3 (a node keeps 31). */
static inline uint32_t level_hash(uint64_t seed, const uint8_t *s, size_t len)
{
    return (uint32_t)(XXH3_64bits_withSeed(s, len, seed) >> 33);
}

/* End (index of the '/' or len) of the level starting at `start`. */
static inline size_t level_end(const uint8_t *s, size_t len, size_t start)
{
    size_t i = start;
    while (i < len && s[i] != '/')
        i++;
    return i;
}

/* Start of the level that ends at `end` (exclusive). */
static inline size_t level_begin(const uint8_t *s, size_t end)
{
    size_t i = end;
    while (i > 0 && s[i - 1] != '/')
        i--;
    return i;
}

static inline bool level_is(const uint8_t *s, size_t len, uint8_t c)
{
    return len == 1 && s[0] == c;
}

/* A root node (no level, no parent) of a tree with wildcard children
 * (`wild`: the trie) or with `ord` for its owner (the retained store).
 * Returns NULL on OOM. */
struct level_node *level_root_create(bool wild);

/* Free `root` and every node below it, bottom-up, calling
 * free_value(value, arg) for each non-NULL value when free_value is set. */
void level_tree_destroy(struct level_node *root, level_value_fn free_value, void *arg);

/* The exact (table) child named s[0..len), or NULL. Borrowed. */
struct level_node *level_find(const struct level_node *n, const uint8_t *s, size_t len,
                              uint32_t hash);

/*
 * The node of the path s[0..len) below root, where a level "+" or "#" is
 * the plus or pound child. level_path_find returns NULL when absent;
 * level_path_obtain creates the missing nodes and returns NULL on OOM, with
 * whatever it had created freed again. With borrow, the nodes it creates
 * point into s instead of copying their level (the caller keeps s alive or
 * moves the names elsewhere before it goes). *created (may be NULL) gets
 * the number of nodes created. s is at most 65535 bytes (an MQTT string):
 * obtain returns NULL for a longer one.
 */
struct level_node *level_path_find(const struct level_node *root, uint64_t seed, const uint8_t *s,
                                   size_t len);
struct level_node *level_path_obtain(struct level_node *root, uint64_t seed, const uint8_t *s,
                                     size_t len, bool borrow, size_t *created);

/* Iterate n's children: plus, pound, then the table in slot order. `from`
 * is the child returned last, NULL to start; returns NULL at the end. The
 * tree must not change during the iteration. */
struct level_node *level_next_child(const struct level_node *n, const struct level_node *from);

/* Free n and then each ancestor while it has no value and no children; the
 * root is never freed. Returns the first node kept (n itself, an ancestor
 * or the root); *freed (may be NULL) gets the number of nodes freed. */
struct level_node *level_prune(struct level_node *n, size_t *freed);

/* Call fn(value, arg) for every non-NULL value in the subtree of top, top
 * included. With skip_dollar, top's children whose level starts with '$'
 * are left out (the MQTT-4.7.2-1 rule when top is the root). */
void level_walk(const struct level_node *top, bool skip_dollar, level_value_fn fn, void *arg);

/* As level_walk until fn returns true: then it stops at once and returns
 * true (false: every value was seen). */
bool level_walk_until(const struct level_node *top, bool skip_dollar, level_until_fn fn, void *arg);

#endif
