/*
 * slab: a fixed-size object allocator. One per object type per shard; not
 * thread-safe (only the owning shard's thread may call it).
 *
 * Objects are carved from large chunks so that a million small objects cost
 * their size plus nothing, and freed objects are reused LIFO (warm in cache).
 * Chunks are returned to the system only by slab_destroy().
 */
#ifndef RINGMQ_CORE_SLAB_H
#define RINGMQ_CORE_SLAB_H

#include <stddef.h>

struct slab;

/* Create a slab of objects of `obj_size` bytes (rounded up to 16-byte
 * alignment), allocating `objs_per_chunk` objects at a time (0: a 64 KiB
 * chunk's worth). Returns NULL when out of memory. */
struct slab *slab_create(size_t obj_size, size_t objs_per_chunk);

/* Free every chunk. Objects still allocated become invalid. NULL is a no-op. */
void slab_destroy(struct slab *slab);

/* Returns a zero-filled object, or NULL when out of memory. */
void *slab_alloc(struct slab *slab);

/* Return `obj` (from this slab's slab_alloc) to the slab. NULL is a no-op. */
void slab_free(struct slab *slab, void *obj);

/* Number of objects currently allocated. */
size_t slab_in_use(const struct slab *slab);

/* Bytes held from the system (all chunks). */
size_t slab_footprint(const struct slab *slab);

#endif
