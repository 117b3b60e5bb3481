/*
 * A small string-keyed hash map for the shipped plugins (compiled into each
 * plugin that uses it; not part of the ABI): open addressing, FNV-1a, built
 * once and then only read, so lookups need no lock.
 */
#ifndef RINGMQ_PLUGIN_STRMAP_H
#define RINGMQ_PLUGIN_STRMAP_H

#include <stddef.h>

struct strmap_slot {
    const char *key; /* borrowed: must outlive the map */
    size_t len;
    void *value;
};

struct strmap {
    struct strmap_slot *slots; /* NULL while empty */
    size_t cap;                /* a power of two, or 0 */
    size_t count;
};

/* An empty map (no allocation until the first put). */
void strmap_init(struct strmap *m);

/* Free the slots (not the keys or values). */
void strmap_fini(struct strmap *m);

/* Map `key` (len bytes, borrowed) to `value`, replacing an existing entry.
 * Returns 0 or -ENOMEM. */
int strmap_put(struct strmap *m, const char *key, size_t len, void *value);

/* The value mapped to `key`, or NULL. */
void *strmap_get(const struct strmap *m, const char *key, size_t len);

#endif
