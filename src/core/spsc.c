/*
 * spsc: bounded single-producer single-consumer ring, the only channel
 * between two shards.
 *
 * Owns its slot array. Exactly two threads touch a ring: the producer calls
 * spsc_reserve/spsc_publish, the consumer spsc_front/spsc_pop/
 * spsc_consumer_sync; create and destroy happen while neither runs.
 *
 * Indices are free-running uint32_t counters masked on use, so full and empty
 * are told apart without a wasted slot (tail - head == capacity is full) and
 * wraparound of the counters themselves is plain unsigned arithmetic.
 *
 * Synchronisation: the producer fills slots then release-stores `tail`; the
 * consumer acquire-loads `tail` before reading slots. The consumer
 * release-stores `head` after it is done reading; the producer acquire-loads
 * `head` before overwriting slots. Everything else is private to one side.
 */
#include "core/spsc.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>

enum { SPSC_CACHE_LINE = 64 };

/*
 * Invariants (with unsigned 32-bit arithmetic):
 *   head <= read <= tail_cache <= tail <= reserved <= head_cache + capacity
 *   head_cache <= head
 * where `head` and `tail` are the shared atomics, and
 *   - [head, read)      popped by the consumer, not yet given back;
 *   - [read, tail)      published, not yet popped;
 *   - [tail, reserved)  reserved by the producer, invisible to the consumer.
 * Each group below sits on its own cache line so that the producer's stores
 * never invalidate the line the consumer is polling, and the other side's
 * shared index is only read on a refresh, when the cached copy says the ring
 * looks full (producer) or empty (consumer).
 */
struct spsc {
    /* Read-only after create; shared by both sides without contention. */
    alignas(SPSC_CACHE_LINE) unsigned char *slots;
    uint32_t slot_size;
    uint32_t mask;

    /* Producer side. */
    alignas(SPSC_CACHE_LINE) _Atomic uint32_t tail; /* published */
    uint32_t reserved;                              /* next slot spsc_reserve() hands out */
    uint32_t head_cache;                            /* the consumer's head, last time we looked */

    /* Consumer side. */
    alignas(SPSC_CACHE_LINE) _Atomic uint32_t head; /* given back to the producer */
    uint32_t read;                                  /* next slot spsc_front() returns */
    uint32_t tail_cache;                            /* the producer's tail, last time we looked */
};

struct spsc *spsc_create(uint32_t slot_size, uint32_t capacity)
{
    /* Capacity above 2^31 would make tail - head ambiguous. */
    if (slot_size == 0 || slot_size > UINT32_MAX - 7 || capacity < 2 || capacity > (1u << 31) ||
        (capacity & (capacity - 1)) != 0)
        return NULL;
    slot_size = (slot_size + 7) & ~7u;

    size_t bytes = (size_t)slot_size * capacity;
    if (bytes / capacity != slot_size)
        return NULL;
    /* aligned_alloc wants a multiple of the alignment. */
    bytes = (bytes + SPSC_CACHE_LINE - 1) & ~(size_t)(SPSC_CACHE_LINE - 1);
    if (bytes == 0)
        return NULL;

    struct spsc *ring = aligned_alloc(SPSC_CACHE_LINE, sizeof(*ring));
    if (!ring)
        return NULL;
    /* Slots start on a cache line so that slot i and the ring struct never
     * share one. */
    ring->slots = aligned_alloc(SPSC_CACHE_LINE, bytes);
    if (!ring->slots) {
        free(ring);
        return NULL;
    }
    ring->slot_size = slot_size;
    ring->mask = capacity - 1;
    atomic_init(&ring->tail, 0);
    ring->reserved = 0;
    ring->head_cache = 0;
    atomic_init(&ring->head, 0);
    ring->read = 0;
    ring->tail_cache = 0;
    return ring;
}

void spsc_destroy(struct spsc *ring)
{
    if (!ring)
        return;
    free(ring->slots);
    free(ring);
}

static void *spsc_slot(struct spsc *ring, uint32_t index)
{
    return ring->slots + (size_t)(index & ring->mask) * ring->slot_size;
}

void *spsc_reserve(struct spsc *ring)
{
    uint32_t capacity = ring->mask + 1;
    if (ring->reserved - ring->head_cache == capacity) {
        /* Looks full: refresh. Acquire pairs with the consumer's release in
         * spsc_consumer_sync(), so its reads of these slots are done before
         * we overwrite them. */
        ring->head_cache = atomic_load_explicit(&ring->head, memory_order_acquire);
        if (ring->reserved - ring->head_cache == capacity)
            return NULL;
    }
    return spsc_slot(ring, ring->reserved++);
}

bool spsc_publish(struct spsc *ring)
{
    /* Only this thread writes tail, so a relaxed read of our own value. */
    uint32_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    if (tail == ring->reserved)
        return false;
    /* Release: the slot contents written since reserve become visible
     * before the new tail does. */
    atomic_store_explicit(&ring->tail, ring->reserved, memory_order_release);
    return true;
}

void *spsc_front(struct spsc *ring)
{
    if (ring->read == ring->tail_cache) {
        /* Looks empty: refresh. Acquire pairs with spsc_publish(). */
        ring->tail_cache = atomic_load_explicit(&ring->tail, memory_order_acquire);
        if (ring->read == ring->tail_cache)
            return NULL;
    }
    return spsc_slot(ring, ring->read);
}

uint32_t spsc_backlog(struct spsc *ring)
{
    ring->tail_cache = atomic_load_explicit(&ring->tail, memory_order_acquire);
    return ring->tail_cache - ring->read;
}

void spsc_pop(struct spsc *ring)
{
    /* Popping without a slot from spsc_front() would hand the producer a
     * slot it has not published; make that a no-op rather than corrupt. */
    if (ring->read == ring->tail_cache)
        return;
    ring->read++;
}

void spsc_consumer_sync(struct spsc *ring)
{
    /* Only this thread writes head, so a relaxed read of our own value. */
    uint32_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    if (head == ring->read)
        return;
    /* Release: our reads of the popped slots happen before the producer
     * may see them as free. */
    atomic_store_explicit(&ring->head, ring->read, memory_order_release);
}
