/*
 * wheel: a timing wheel for coarse per-connection deadlines (keepalive),
 * one per shard, driven by a single periodic timeout of the shard's ring.
 *
 * Entries are intrusive (embedded in the connection), so adding and removing
 * allocate nothing and cost O(1). Not thread-safe: owned by one shard.
 */
#ifndef RINGMQ_CORE_WHEEL_H
#define RINGMQ_CORE_WHEEL_H

#include <stdbool.h>
#include <stdint.h>

/* Embed in the object that owns the deadline. Zero-initialised == unlinked. */
struct wheel_entry {
    struct wheel_entry *next;
    struct wheel_entry **pprev;
    uint64_t deadline_ms;
};

struct wheel;

/* Create a wheel with `slots` buckets of `tick_ms` each, starting at now_ms.
 * Deadlines beyond slots*tick_ms are allowed (they wait extra rounds).
 * Returns NULL on OOM or bad arguments. */
struct wheel *wheel_create(uint32_t tick_ms, uint32_t slots, uint64_t now_ms);

/* Free the wheel. Linked entries are simply forgotten (not touched). */
void wheel_destroy(struct wheel *wheel);

/* Link `e` to expire at `deadline_ms` (unlinks first if already linked).
 * A deadline in the past expires at the next wheel_advance(). */
void wheel_add(struct wheel *wheel, struct wheel_entry *e, uint64_t deadline_ms);

/* Unlink `e`; a no-op when it is not linked. */
void wheel_remove(struct wheel_entry *e);

/* True when `e` is linked in a wheel. */
bool wheel_linked(const struct wheel_entry *e);

typedef void (*wheel_expire_fn)(struct wheel_entry *e, void *arg);

/* Advance time to now_ms and call fn for every entry whose deadline is
 * <= now_ms, in no particular order. Each entry is unlinked before fn is
 * called, and fn may add or remove any entries (including re-adding e). */
void wheel_advance(struct wheel *wheel, uint64_t now_ms, wheel_expire_fn fn, void *arg);

/* Number of linked entries. */
uint32_t wheel_count(const struct wheel *wheel);

#endif
