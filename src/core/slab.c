/*
 * slab: fixed-size object allocator, one per object type per shard.
 *
 * Owns its chunks (obtained with mmap, or aligned_alloc for small ones) and
 * nothing else. Runs on the owning shard's thread only; no locks, no atomics.
 *
 * Layout: each chunk starts with a 16-byte header linking it to the slab's
 * chunk list, followed by objects packed at obj_size (a multiple of 16), so an
 * object costs exactly obj_size: no per-object header. A free object holds
 * the next pointer of the intrusive free list in its first bytes.
 *
 * Objects are carved from the newest chunk with a bump pointer rather than
 * threading the whole chunk onto the free list up front: writing a free-list
 * link into every object would fault in every page of an mmap'd chunk at
 * once, and idle-connection resident memory is what we are optimising.
 */
#include "core/slab.h"

#include <assert.h>
#include <errno.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum {
    SLAB_ALIGN = 16,
    SLAB_DEFAULT_CHUNK = 64 * 1024,
    /* Chunks at least this big come from mmap: page-aligned, faulted in
     * lazily, and given back to the kernel exactly by slab_destroy(). */
    SLAB_MMAP_MIN = 64 * 1024,
};

/* Header at the start of every chunk. Its size keeps objects 16-aligned. */
struct slab_chunk {
    alignas(SLAB_ALIGN) struct slab_chunk *next;
    size_t bytes; /* what was obtained from the system, for footprint/munmap */
    bool mapped;
};

_Static_assert(sizeof(struct slab_chunk) % SLAB_ALIGN == 0, "chunk header breaks alignment");

/* A free object's first bytes. */
struct slab_free_obj {
    struct slab_free_obj *next;
};

/*
 * Invariants:
 *  - obj_size is a multiple of SLAB_ALIGN and >= sizeof(struct slab_free_obj);
 *  - [bump, bump_end) is the never-handed-out tail of the newest chunk;
 *  - every object is either in use, on free_list, or in [bump, bump_end);
 *  - footprint is the sum of chunk->bytes over the chunk list.
 */
struct slab {
    size_t obj_size;
    size_t chunk_bytes; /* header + objs_per_chunk * obj_size */
    struct slab_free_obj *free_list;
    char *bump;
    char *bump_end;
    struct slab_chunk *chunks;
    size_t in_use;
    size_t footprint;
};

struct slab *slab_create(size_t obj_size, size_t objs_per_chunk)
{
    if (obj_size > SIZE_MAX - SLAB_ALIGN)
        return NULL;
    if (obj_size < sizeof(struct slab_free_obj))
        obj_size = sizeof(struct slab_free_obj);
    obj_size = (obj_size + SLAB_ALIGN - 1) & ~(size_t)(SLAB_ALIGN - 1);

    size_t header = sizeof(struct slab_chunk);
    if (objs_per_chunk == 0) {
        objs_per_chunk =
            obj_size < SLAB_DEFAULT_CHUNK - header ? (SLAB_DEFAULT_CHUNK - header) / obj_size : 1;
    }
    if (objs_per_chunk > (SIZE_MAX - header) / obj_size)
        return NULL;

    struct slab *slab = calloc(1, sizeof(*slab));
    if (!slab)
        return NULL;
    slab->obj_size = obj_size;
    slab->chunk_bytes = header + objs_per_chunk * obj_size;
    return slab;
}

static void slab_chunk_release(struct slab_chunk *chunk)
{
    if (chunk->mapped)
        munmap(chunk, chunk->bytes);
    else
        free(chunk);
}

void slab_destroy(struct slab *slab)
{
    if (!slab)
        return;
    struct slab_chunk *chunk = slab->chunks;
    while (chunk) {
        struct slab_chunk *next = chunk->next;
        slab_chunk_release(chunk);
        chunk = next;
    }
    free(slab);
}

/* Obtain a new chunk and make it the bump region. Returns 0 or -ENOMEM. */
static int slab_grow(struct slab *slab)
{
    struct slab_chunk *chunk;
    size_t bytes = slab->chunk_bytes;
    bool mapped = bytes >= SLAB_MMAP_MIN;

    if (mapped) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        bytes = (bytes + page - 1) & ~(page - 1);
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return -ENOMEM;
        chunk = p;
    } else {
        /* chunk_bytes is a multiple of 16 (header and obj_size both are),
         * as aligned_alloc requires. */
        chunk = aligned_alloc(SLAB_ALIGN, bytes);
        if (!chunk)
            return -ENOMEM;
    }
    chunk->next = slab->chunks;
    chunk->bytes = bytes;
    chunk->mapped = mapped;
    slab->chunks = chunk;
    slab->footprint += bytes;
    slab->bump = (char *)(chunk + 1);
    /* Only whole objects; page rounding slack after them stays unused. */
    slab->bump_end = (char *)chunk + slab->chunk_bytes;
    return 0;
}

void *slab_alloc(struct slab *slab)
{
    void *obj;

    if (slab->free_list) {
        struct slab_free_obj *f = slab->free_list;
        slab->free_list = f->next;
        obj = f;
    } else {
        if (slab->bump == slab->bump_end && slab_grow(slab) != 0)
            return NULL;
        obj = slab->bump;
        slab->bump += slab->obj_size;
    }
    slab->in_use++;
    /* Fresh mmap memory is already zero, but malloc'd chunks and reused
     * objects are not; one memset keeps the rule simple. */
    memset(obj, 0, slab->obj_size);
    return obj;
}

void slab_free(struct slab *slab, void *obj)
{
    if (!obj)
        return;
    assert(slab->in_use > 0);
    assert(((uintptr_t)obj & (SLAB_ALIGN - 1)) == 0);
    /* LIFO: the next allocation gets the object most likely still in cache. */
    struct slab_free_obj *f = obj;
    f->next = slab->free_list;
    slab->free_list = f;
    slab->in_use--;
}

size_t slab_in_use(const struct slab *slab)
{
    return slab->in_use;
}

size_t slab_footprint(const struct slab *slab)
{
    return slab->footprint;
}
