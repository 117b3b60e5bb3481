/*
 * trie: the subscription index of one tenant on one shard: topic filters,
 * level by level, each mapping to one opaque value owned by the caller.
 *
 * A level is found by its XXH3 hash in the node's open-addressing table;
 * the '+' and '#' children are kept apart so a match walks only branches
 * that can match. Not thread-safe: owned by one shard. Never logs.
 */
#ifndef RINGMQ_INDEX_TRIE_H
#define RINGMQ_INDEX_TRIE_H

#include <stddef.h>
#include <stdint.h>

struct trie;

/* Returns NULL on OOM. */
struct trie *trie_create(void);

typedef void (*trie_value_fn)(void *value, void *arg);

/* Free the trie; calls free_value(value, arg) for every non-NULL value when
 * free_value is not NULL. NULL trie is a no-op. */
void trie_destroy(struct trie *trie, trie_value_fn free_value, void *arg);

/*
 * Find or create the node of `filter` (a valid filter, see
 * mqtt_topic_filter_valid) and return the address of its value slot, which
 * holds NULL for a new node. The caller stores its value there; the address
 * stays valid until that filter is removed. Returns NULL on OOM (nothing
 * created).
 */
void **trie_slot(struct trie *trie, const uint8_t *filter, size_t len);

/* The value stored for exactly `filter`, or NULL. */
void *trie_get(const struct trie *trie, const uint8_t *filter, size_t len);

/* Forget `filter`: clear its value and free nodes left with no value and no
 * children. Returns the old value (NULL when absent); the caller frees it. */
void *trie_remove(struct trie *trie, const uint8_t *filter, size_t len);

/*
 * Call fn(value, arg) once for every stored filter (non-NULL value) that
 * matches `topic` (a valid topic name): exact levels, '+', '#' (which also
 * matches the parent level, "a/#" matches "a"), and the '$' rule: a topic
 * starting with '$' is not matched by a first-level '+' or '#'
 * (MQTT-4.7.2-1). fn must not modify the trie.
 */
void trie_match(const struct trie *trie, const uint8_t *topic, size_t len, trie_value_fn fn,
                void *arg);

/* Number of stored filters (non-NULL values). */
size_t trie_count(const struct trie *trie);

#endif
