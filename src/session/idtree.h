/*
 * idtree: the sessions of one tenant homed on this shard, in client id
 * order, for the admin API's pages (seek to `after`, read forward). A typed
 * face of core/avl.h: the links live in the sessions (session->tree, 16
 * bytes) and the root in struct tenant (reg_root), so a session costs no
 * allocation here.
 *
 * Order: the bytes of the id as memcmp sees them, a prefix first (the
 * admin API's order). Ids in one tree are distinct (the registry's rule).
 * Insert and remove are O(log n) and never fail; a page of k ids costs
 * O(log n + k) (avl.h).
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

#include "core/avl.h"

struct session;

/* A position in a tree (the caller's storage). */
struct idtree_iter {
    struct avl_iter it;
};

/* Byte order of ids: memcmp, a prefix first (<0, 0, >0). */
int idtree_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl);

/* Add ss (not in any tree; its st.client_id set) under *root. */
void idtree_insert(struct avl_node **root, struct session *ss);

/* Take ss out of the tree under *root; nothing when it is not there. */
void idtree_remove(struct avl_node **root, struct session *ss);

/* Put `it` at the first session whose id is after `key` (`strict`) or
 * at or after it; that session (borrowed), or NULL when there is none. */
struct session *idtree_seek(struct idtree_iter *it, struct avl_node *root, const uint8_t *key,
                            size_t len, bool strict);

/* Step `it` to the next session in id order; it, or NULL at the end. */
struct session *idtree_next(struct idtree_iter *it);

/* The invariant checker (tests, assert): avl_valid in id order. The node
 * count into *n; false when broken. O(n). */
bool idtree_valid(const struct avl_node *root, size_t *n);

#endif
