/*
 * vec: growing an array that its owner keeps as three fields of its own
 * struct (pointer, count, capacity), the pattern of every append-only list
 * of the broker (matched sessions, subscriptions, group members...).
 */
#ifndef RINGMQ_CORE_VEC_H
#define RINGMQ_CORE_VEC_H

#include <stddef.h>
#include <stdint.h>

/*
 * Room for more elements of `elem` bytes in the array `v` of *cap
 * elements: returns the array reallocated to twice *cap (`first`, or 1 when
 * first is 0, when *cap is 0), and sets *cap to that. On overflow, elem 0
 * or out of memory returns NULL and leaves v (still valid, owned by the
 * caller) and *cap as they were.
 * Typical use, when count == cap:
 *
 *     struct x *nv = vec_grow(o->v, &o->cap, sizeof(*nv), 16);
 *     if (!nv)
 *         return -ENOMEM;
 *     o->v = nv;
 */
void *vec_grow(void *v, uint32_t *cap, size_t elem, uint32_t first);

#endif
