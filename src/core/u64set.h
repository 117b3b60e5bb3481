/*
 * u64set: a set of non-zero 64-bit keys, each with a 64-bit value: open
 * addressing, linear probing, backward-shift deletion, a power-of-two
 * table at most half full. Keys are assumed well spread (hashes): the low
 * bits pick the slot. Not thread-safe.
 */
#ifndef RINGMQ_CORE_U64SET_H
#define RINGMQ_CORE_U64SET_H

#include <stdbool.h>
#include <stdint.h>

struct u64set_slot {
    uint64_t key; /* 0: empty */
    uint64_t value;
};

struct u64set {
    struct u64set_slot *v;
    uint32_t mask, n;
};

/* The value of key, or NULL. */
uint64_t *u64set_find(const struct u64set *s, uint64_t key);

/* Add key (not there yet) with value: 0, or -ENOMEM (the set unchanged). */
int u64set_put(struct u64set *s, uint64_t key, uint64_t value);

/* Remove key; true when it was there. */
bool u64set_del(struct u64set *s, uint64_t key);

/* Remove every entry for which drop(key, value, arg) is true, calling it
 * once per entry. */
void u64set_prune(struct u64set *s, bool (*drop)(uint64_t key, uint64_t value, void *arg),
                  void *arg);

/* Call fn for every entry; fn must not change the set. */
void u64set_walk(const struct u64set *s, void (*fn)(uint64_t key, uint64_t value, void *arg),
                 void *arg);

/* Free the table; the set is empty and usable again. */
void u64set_fini(struct u64set *s);

#endif
