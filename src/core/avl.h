/*
 * avl: an intrusive AVL tree for ordered pages (seek to a key, read
 * forward). The caller embeds a struct avl_node in its objects and keeps
 * the root (a struct avl_node *, NULL when empty); the tree allocates
 * nothing and holds no parent links, so a member costs two words: the left
 * link carries the node's balance in its two low bits (nodes must be at
 * least 4-byte aligned; any struct holding a pointer is).
 *
 * Order is the caller's: insert and remove take a compare of two nodes, a
 * seek one of a node against a key. Keys in one tree are distinct (the
 * caller's rule). Insert and remove are O(log n), recurse at most
 * AVL_DEPTH_MAX deep and never fail; a seek is O(log n) and each step after
 * it O(1) amortized (the path is kept in the iterator), so a page of k
 * nodes costs O(log n + k).
 *
 * Not thread-safe: the owner's thread only. An iterator is valid only
 * until the tree changes.
 */
#ifndef RINGMQ_CORE_AVL_H
#define RINGMQ_CORE_AVL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A tree's links in a member; contents are the tree's while it holds the
 * node, and meaningless otherwise. */
struct avl_node {
    uintptr_t left; /* the left child | (balance + 1) */
    struct avl_node *right;
};

/* An AVL tree of fewer than 2^32 nodes is at most 46 high. */
#define AVL_DEPTH_MAX 48

/* Two nodes' order (<0, 0, >0). */
typedef int (*avl_cmp_fn)(const struct avl_node *a, const struct avl_node *b);
/* A node's order against a key (<0: the node comes first). */
typedef int (*avl_key_fn)(const struct avl_node *n, const void *key);

/* A position in a tree: the nodes still to visit, the current one on top.
 * The caller's storage (about 400 bytes). */
struct avl_iter {
    struct avl_node *path[AVL_DEPTH_MAX];
    uint32_t n;
};

/* Add x (in no tree; no node of its key in this one) under *root. */
void avl_insert(struct avl_node **root, struct avl_node *x, avl_cmp_fn cmp);

/* Take x out of the tree under *root; nothing when x is not the tree's
 * node of its key. */
void avl_remove(struct avl_node **root, struct avl_node *x, avl_cmp_fn cmp);

/* Put `it` at the first node after `key` (`strict`) or at or after it;
 * that node, or NULL when there is none. key NULL: the first node (key_cmp
 * is then not called and may be NULL). */
struct avl_node *avl_seek(struct avl_iter *it, struct avl_node *root, avl_key_fn key_cmp,
                          const void *key, bool strict);

/* Step `it` to the next node in order; it, or NULL at the end. */
struct avl_node *avl_next(struct avl_iter *it);

/* The invariant checker (tests, assert): keys strictly ascending, every
 * balance in range and equal to the heights' difference. The node count
 * into *n; false when broken. O(n), recursive to the tree's height. */
bool avl_valid(const struct avl_node *root, avl_cmp_fn cmp, size_t *n);

#endif
