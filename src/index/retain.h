/*
 * retain: retained messages of one tenant on one shard: topic name -> one
 * opaque value (a message reference owned by the caller).
 *
 * Stored by topic levels so that a subscription's filter walks only the
 * branches it can match. The store copies no topic bytes: it points into
 * the topic handed to retain_set, which must stay valid while that value
 * is stored (a message's own topic), so that a replica of the store on
 * each shard costs its index nodes, not another copy of every topic. Not
 * thread-safe: owned by one shard. Never logs.
 *
 * The stored topics are also kept in byte order (memcmp, a prefix first),
 * for pages that seek to a topic and read forward (retain_seek/next):
 * O(log n) a seek, O(1) amortized a step. That order lives in two words of
 * the index node that holds the value, words the store has no other use
 * for: it adds no byte per topic. Set, replace and delete keep it in step;
 * a replace keeps the topic's place.
 */
#ifndef RINGMQ_INDEX_RETAIN_H
#define RINGMQ_INDEX_RETAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/avl.h"

struct retain;

/* Returns NULL on OOM. */
struct retain *retain_create(void);

typedef void (*retain_value_fn)(void *value, void *arg);

/* Free the store; calls free_value(value, arg) for each stored value when
 * free_value is not NULL. NULL is a no-op. */
void retain_destroy(struct retain *store, retain_value_fn free_value, void *arg);

/*
 * Store `value` (non-NULL) for `topic` (a valid topic name), replacing any
 * value there. Borrows topic[0..len) until this value is replaced or
 * deleted (the store stops pointing into it before handing the value
 * back). *old receives the replaced value or NULL (the caller frees it).
 * Returns 0 or -ENOMEM (then nothing changed and *old is NULL).
 */
int retain_set(struct retain *store, const uint8_t *topic, size_t len, void *value, void **old);

/* Remove the value of `topic`; returns it (NULL when absent). */
void *retain_delete(struct retain *store, const uint8_t *topic, size_t len);

/* The value of exactly `topic`, or NULL. */
void *retain_get(const struct retain *store, const uint8_t *topic, size_t len);

/*
 * Call fn(value, arg) for every stored topic that `filter` (a valid filter)
 * matches, with the same rules as mqtt_topic_matches() including the '$'
 * rule. fn must not modify the store.
 */
void retain_match(const struct retain *store, const uint8_t *filter, size_t len, retain_value_fn fn,
                  void *arg);

/* Call fn(value, arg) for every stored topic, '$' ones included. fn must
 * not modify the store. */
void retain_walk(const struct retain *store, retain_value_fn fn, void *arg);

/* A position in the topic order (the caller's storage, about 400 bytes);
 * valid only until the store changes. */
struct retain_iter {
    struct avl_iter it;
};

/* Put `it` at the first stored topic after key[0..len) (`strict`) or at or
 * after it ('$' topics included); its value, and its topic into *topic and
 * *topic_len (borrowed: valid while that value is stored); NULL when there
 * is none. */
void *retain_seek(struct retain_iter *it, const struct retain *store, const uint8_t *key,
                  size_t len, bool strict, const uint8_t **topic, size_t *topic_len);

/* Step `it` to the next stored topic in byte order; as retain_seek. */
void *retain_next(struct retain_iter *it, const uint8_t **topic, size_t *topic_len);

/* The invariant checker (tests, assert): the topic order is a valid tree
 * of every stored topic. O(n). */
bool retain_valid(const struct retain *store);

/* Number of stored topics. */
size_t retain_count(const struct retain *store);

/* Bytes of heap the store's index takes (topic bytes, being borrowed, are
 * not included): each level node with its allocator overhead and its share
 * of its parent's table, an upper bound per node. */
size_t retain_index_bytes(const struct retain *store);

/* What storing a value for `topic` would add to retain_index_bytes: the
 * nodes of the levels not in the store yet. */
size_t retain_index_growth(const struct retain *store, const uint8_t *topic, size_t len);

#endif
