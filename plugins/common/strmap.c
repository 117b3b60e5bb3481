/*
 * String-keyed open-addressing hash map (see strmap.h). The plugins build a
 * map at init or reload and then only read it, from any number of threads.
 */
#include "strmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t strmap_hash(const char *key, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

void strmap_init(struct strmap *m)
{
    m->slots = NULL;
    m->cap = 0;
    m->count = 0;
}

void strmap_fini(struct strmap *m)
{
    free(m->slots);
    strmap_init(m);
}

static struct strmap_slot *strmap_find(const struct strmap *m, const char *key, size_t len)
{
    size_t mask = m->cap - 1;
    for (size_t i = strmap_hash(key, len) & mask;; i = (i + 1) & mask) {
        struct strmap_slot *s = &m->slots[i];
        if (!s->key || (s->len == len && memcmp(s->key, key, len) == 0))
            return s;
    }
}

static int strmap_grow(struct strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    struct strmap_slot *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    struct strmap old = *m;
    m->slots = slots;
    m->cap = cap;
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].key)
            *strmap_find(m, old.slots[i].key, old.slots[i].len) = old.slots[i];
    free(old.slots);
    return 0;
}

int strmap_put(struct strmap *m, const char *key, size_t len, void *value)
{
    /* Keep the load at most 1/2 so probe sequences stay short. */
    if ((m->count + 1) * 2 > m->cap) {
        int rc = strmap_grow(m);
        if (rc != 0)
            return rc;
    }
    struct strmap_slot *s = strmap_find(m, key, len);
    if (!s->key) {
        s->key = key;
        s->len = len;
        m->count++;
    }
    s->value = value;
    return 0;
}

void *strmap_get(const struct strmap *m, const char *key, size_t len)
{
    if (m->count == 0)
        return NULL;
    return strmap_find(m, key, len)->value;
}
