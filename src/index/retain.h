/*
 * retain: retained messages of one tenant on one shard: topic name -> one
 * opaque value (a message reference owned by the caller).
 *
 * Stored by topic levels so that a subscription's filter walks only the
 * branches it can match. Not thread-safe: owned by one shard. Never logs.
 */
#ifndef RINGMQ_INDEX_RETAIN_H
#define RINGMQ_INDEX_RETAIN_H

#include <stddef.h>
#include <stdint.h>

struct retain;

/* Returns NULL on OOM. */
struct retain *retain_create(void);

typedef void (*retain_value_fn)(void *value, void *arg);

/* Free the store; calls free_value(value, arg) for each stored value when
 * free_value is not NULL. NULL is a no-op. */
void retain_destroy(struct retain *store, retain_value_fn free_value, void *arg);

/*
 * Store `value` (non-NULL) for `topic` (a valid topic name), replacing any
 * value there. *old receives the replaced value or NULL (the caller frees
 * it). Returns 0 or -ENOMEM (then nothing changed and *old is NULL).
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

/* Number of stored topics. */
size_t retain_count(const struct retain *store);

#endif
