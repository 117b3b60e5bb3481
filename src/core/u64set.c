/*
 * u64set: see u64set.h.
 */
#include "core/u64set.h"

#include <errno.h>
#include <stdlib.h>

static struct u64set_slot *slot_of(const struct u64set *s, uint64_t key)
{
    if (!s->v)
        return NULL;
    for (uint32_t i = (uint32_t)key & s->mask;; i = (i + 1) & s->mask) {
        if (s->v[i].key == key)
            return &s->v[i];
        if (!s->v[i].key)
            return NULL;
    }
}

uint64_t *u64set_find(const struct u64set *s, uint64_t key)
{
    struct u64set_slot *e = slot_of(s, key);
    return e ? &e->value : NULL;
}

static void place(struct u64set *s, uint64_t key, uint64_t value)
{
    uint32_t i = (uint32_t)key & s->mask;
    while (s->v[i].key)
        i = (i + 1) & s->mask;
    s->v[i] = (struct u64set_slot){key, value};
    s->n++;
}

static int grow(struct u64set *s)
{
    uint32_t old_cap = s->v ? s->mask + 1 : 0, cap = old_cap ? old_cap * 2 : 64;
    struct u64set_slot *old = s->v, *v = calloc(cap, sizeof(*v));
    if (!v)
        return -ENOMEM;
    s->v = v;
    s->mask = cap - 1;
    s->n = 0;
    for (uint32_t i = 0; i < old_cap; i++)
        if (old[i].key)
            place(s, old[i].key, old[i].value);
    free(old);
    return 0;
}

int u64set_put(struct u64set *s, uint64_t key, uint64_t value)
{
    if ((!s->v || (s->n + 1) * 2 > s->mask + 1) && grow(s) < 0)
        return -ENOMEM;
    place(s, key, value);
    return 0;
}

/* Empty slot i, moving back the entries of its probe run behind it. */
static void erase(struct u64set *s, uint32_t i)
{
    s->n--;
    for (uint32_t j = (i + 1) & s->mask; s->v[j].key; j = (j + 1) & s->mask) {
        uint32_t home = (uint32_t)s->v[j].key & s->mask;
        /* The entry at j may fill i when i lies between its home and j. */
        if (((j - home) & s->mask) >= ((j - i) & s->mask)) {
            s->v[i] = s->v[j];
            i = j;
        }
    }
    s->v[i].key = 0;
}

bool u64set_del(struct u64set *s, uint64_t key)
{
    struct u64set_slot *e = slot_of(s, key);
    if (!e)
        return false;
    erase(s, (uint32_t)(e - s->v));
    return true;
}

void u64set_prune(struct u64set *s, bool (*drop)(uint64_t key, uint64_t value, void *arg),
                  void *arg)
{
    /* Collected first: a deletion moves entries, which a scan in place
     * could see twice or not at all. */
    uint32_t n = 0;
    uint64_t *gone = s->n ? malloc(s->n * sizeof(*gone)) : NULL;
    for (uint32_t i = 0; gone && i <= s->mask; i++)
        if (s->v[i].key && drop(s->v[i].key, s->v[i].value, arg))
            gone[n++] = s->v[i].key;
    for (uint32_t i = 0; i < n; i++)
        u64set_del(s, gone[i]);
    free(gone);
}

void u64set_walk(const struct u64set *s, void (*fn)(uint64_t key, uint64_t value, void *arg),
                 void *arg)
{
    for (uint32_t i = 0; s->v && i <= s->mask; i++)
        if (s->v[i].key)
            fn(s->v[i].key, s->v[i].value, arg);
}

void u64set_fini(struct u64set *s)
{
    free(s->v);
    *s = (struct u64set){0};
}
