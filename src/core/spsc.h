/*
 * spsc: a bounded single-producer single-consumer ring of fixed-size slots,
 * the only channel between two shards.
 *
 * One producer thread and one consumer thread. Head and tail live on their
 * own cache lines, and each side caches the other's index so that a batch
 * touches the shared lines once: the producer reserves and fills slots, then
 * publishes them all with one release store; the consumer reads slots and
 * gives them back with one release store per batch.
 */
#ifndef RINGMQ_CORE_SPSC_H
#define RINGMQ_CORE_SPSC_H

#include <stdbool.h>
#include <stdint.h>

struct spsc;

/* Create a ring of `capacity` (a power of two, 2..2^31) slots of `slot_size`
 * bytes each (rounded up to 8). Returns NULL on bad arguments or OOM. */
struct spsc *spsc_create(uint32_t slot_size, uint32_t capacity);

/* Free the ring. Slots not consumed are dropped (the caller drains first). */
void spsc_destroy(struct spsc *ring);

/* Producer: the next free slot, or NULL when the ring is full. The slot is
 * invisible to the consumer until spsc_publish(). Calling it again without
 * publishing reserves the following slot. */
void *spsc_reserve(struct spsc *ring);

/* Producer: make every reserved slot visible (one release store).
 * Returns true when anything was published since the last call. */
bool spsc_publish(struct spsc *ring);

/* Consumer: the oldest published slot not yet popped, or NULL when empty. */
void *spsc_front(struct spsc *ring);

/* Consumer: how many published slots are not yet popped (refreshes the
 * producer's tail). */
uint32_t spsc_backlog(struct spsc *ring);

/* Consumer: done with the slot spsc_front() returned; it may be reused
 * by the producer after the next spsc_consumer_sync(). */
void spsc_pop(struct spsc *ring);

/* Consumer: hand popped slots back to the producer (one release store). */
void spsc_consumer_sync(struct spsc *ring);

#endif
