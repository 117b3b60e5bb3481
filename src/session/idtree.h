/*
 * idtree: the sessions of one tenant homed on this shard, in client id
 * order, for the admin API's pages (seek to `after`, read forward). An
 * intrusive AVL tree whose links live in the sessions (tree_left,
 * tree_right) and whose root lives in struct tenant (reg_root), so a
 * session costs no allocation here and 16 bytes in its struct: the left
 * link carries the node's balance in its two low bits (sessions are at
 * least 4-byte aligned: slab objects are 16).
 *
 * Order: the bytes of the id as memcmp sees them, a prefix first (the
 * admin API's order). Ids in one tree are distinct (the registry's
 * rule). Insert and remove are O(log n) and never fail; a seek is
 * O(log n) and each step after it O(1) amortized, with the path kept in
 * the iterator, so a page of k ids costs O(log n + k).
 *
 * Runs on the owning shard's thread. The registry (registry.c) inserts and
 * removes together with its hash table; anyone on the shard may read. An
 * iterator is valid only until the tree changes (within one loop turn).
 */
#ifndef RINGMQ_SESSION_IDTREE_H
#define RINGMQ_SESSION_IDTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct session;

/* An AVL tree of fewer than 2^32 nodes is at most 46 high. */
#define IDTREE_DEPTH_MAX 48

/* A position in a tree: the path of the nodes still to visit, the
 * current one on top. The caller's storage (about 400 bytes). */
struct idtree_iter {
    struct session *path[IDTREE_DEPTH_MAX];
    uint32_t n;
};

/* Byte order of ids: memcmp, a prefix first (<0, 0, >0). */
int idtree_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl);

/* Add ss (not in any tree; its st.client_id set) under *root. */
void idtree_insert(struct session **root, struct session *ss);

/* Take ss out of the tree under *root; nothing when no session of its id
 * is there (none other can be: ids are distinct). */
void idtree_remove(struct session **root, struct session *ss);

/* Put `it` at the first session whose id is after `key` (`strict`) or
 * at or after it; that session (borrowed), or NULL when there is none. */
struct session *idtree_seek(struct idtree_iter *it, struct session *root, const uint8_t *key,
                            size_t len, bool strict);

/* Step `it` to the next session in id order; it, or NULL at the end. */
struct session *idtree_next(struct idtree_iter *it);

/* The invariant checker (tests, assert): ids strictly ascending, every
 * balance right and equal to the heights' difference. The node count
 * into *n; false when broken. O(n). */
bool idtree_valid(const struct session *root, size_t *n);

#endif
