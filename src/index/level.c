/*
 * level: topic-level nodes and their per-node hash tables, shared by the
 * subscription trie and the retained store. Owns the nodes it allocates;
 * values are opaque and owned by the caller. Runs on the owning shard's
 * thread only; never logs, never recurses (see level.h).
 */
#include "index/level.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

enum { LEVEL_TABLE_MIN = 2 };

uint64_t level_seed(void)
{
    uint64_t seed;

    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
        return seed;
    /* No entropy yet (early boot): a weaker seed still beats a fixed one. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return XXH3_64bits_withSeed(&ts, sizeof(ts), (uint64_t)(uintptr_t)&seed);
}

/* A node of parent's tree (its wild; NULL parent: a root of a wild tree
 * or not). */
static struct level_node *node_create(struct level_node *parent, const uint8_t *s, size_t len,
                                      uint32_t hash, bool borrow, bool wild)
{
    struct level_node *n = malloc(sizeof(*n) + (borrow ? 0 : len));

    if (!n)
        return NULL;
    memset(n, 0, sizeof(*n));
    n->parent = parent;
    n->hash = hash;
    n->wild = parent ? parent->wild : wild;
    n->len = (uint16_t)len;
    n->off = parent && parent->parent ? (uint16_t)(parent->off + parent->len + 1) : 0;
    n->name = borrow ? s : n->inline_name;
    if (len && !borrow)
        memcpy(n->inline_name, s, len);
    return n;
}

static void node_free(struct level_node *n)
{
    free(n->slots);
    free(n);
}

struct level_node *level_root_create(bool wild)
{
    return node_create(NULL, NULL, 0, 0, false, wild);
}

static bool node_empty(const struct level_node *n)
{
    return !n->value && !n->count && (!n->wild || (!n->plus && !n->pound));
}

struct level_node *level_find(const struct level_node *n, const uint8_t *s, size_t len,
                              uint32_t hash)
{
    if (!n->count)
        return NULL;
    for (uint32_t i = hash & n->mask;; i = (i + 1) & n->mask) {
        struct level_node *c = n->slots[i];
        if (!c)
            return NULL;
        if (c->hash == hash && c->len == len && memcmp(c->name, s, len) == 0)
            return c;
    }
}

/* Slot index of child c, which must be in n's table. */
static uint32_t table_index(const struct level_node *n, const struct level_node *c)
{
    uint32_t i = c->hash & n->mask;
    while (n->slots[i] != c)
        i = (i + 1) & n->mask;
    return i;
}

static void table_place(struct level_node **slots, uint32_t mask, struct level_node *c)
{
    uint32_t i = c->hash & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = c;
}

/* Move n's children into a table of `cap` slots; -ENOMEM leaves n as it was. */
static int table_resize(struct level_node *n, uint32_t cap)
{
    struct level_node **slots = calloc(cap, sizeof(*slots));

    if (!slots)
        return -ENOMEM;
    if (n->slots) {
        for (uint32_t i = 0; i <= n->mask; i++)
            if (n->slots[i])
                table_place(slots, cap - 1, n->slots[i]);
        free(n->slots);
    }
    n->slots = slots;
    n->mask = cap - 1;
    return 0;
}

static int table_insert(struct level_node *n, struct level_node *c)
{
    uint32_t cap = n->slots ? n->mask + 1 : 0;

    if ((uint64_t)(n->count + 1) * 4 > (uint64_t)cap * 3) {
        int err = table_resize(n, cap ? cap * 2 : LEVEL_TABLE_MIN);
        if (err)
            return err;
    }
    table_place(n->slots, n->mask, c);
    n->count++;
    return 0;
}

static void table_remove(struct level_node *n, struct level_node *c)
{
    uint32_t mask = n->mask;
    uint32_t hole = table_index(n, c);

    n->slots[hole] = NULL;
    n->count--;
    if (!n->count) {
        free(n->slots);
        n->slots = NULL;
        n->mask = 0;
        return;
    }
    /* Backward-shift: pull later entries of the probe run into the hole
     * unless their home slot lies cyclically in (hole, j]. */
    for (uint32_t j = (hole + 1) & mask; n->slots[j]; j = (j + 1) & mask) {
        uint32_t home = n->slots[j]->hash & mask;
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            n->slots[hole] = n->slots[j];
            n->slots[j] = NULL;
            hole = j;
        }
    }
    /* Give back a table left mostly empty by mass unsubscription: at 1/4
     * load halve it, which leaves it no bigger than inserting the remaining
     * children afresh would (and at 1/2 load, far from the 3/4 growth
     * point). Failing to shrink is harmless. */
    if (mask + 1 > LEVEL_TABLE_MIN && (uint64_t)n->count * 4 <= (uint64_t)mask + 1)
        (void)table_resize(n, (mask + 1) / 2);
}

static struct level_node *child_lookup(const struct level_node *n, uint64_t seed, const uint8_t *s,
                                       size_t len)
{
    if (n->wild && level_is(s, len, '+'))
        return n->plus;
    if (n->wild && level_is(s, len, '#'))
        return n->pound;
    return level_find(n, s, len, level_hash(seed, s, len));
}

static void child_detach(struct level_node *n, struct level_node *c)
{
    if (n->wild && n->plus == c)
        n->plus = NULL;
    else if (n->wild && n->pound == c)
        n->pound = NULL;
    else
        table_remove(n, c);
}

static int child_attach(struct level_node *n, struct level_node *c)
{
    if (n->wild && level_is(c->name, c->len, '+'))
        n->plus = c;
    else if (n->wild && level_is(c->name, c->len, '#'))
        n->pound = c;
    else
        return table_insert(n, c);
    return 0;
}

struct level_node *level_path_find(const struct level_node *root, uint64_t seed, const uint8_t *s,
                                   size_t len)
{
    const struct level_node *n = root;

    for (size_t start = 0;; start++) {
        size_t end = level_end(s, len, start);
        n = child_lookup(n, seed, s + start, end - start);
        if (!n || end == len)
            return (struct level_node *)n;
        start = end;
    }
}

struct level_node *level_path_obtain(struct level_node *root, uint64_t seed, const uint8_t *s,
                                     size_t len, bool borrow, size_t *created)
{
    struct level_node *n = root;
    struct level_node *first_new = NULL;
    size_t made = 0;

    if (len > UINT16_MAX)
        goto fail; /* no MQTT string is: len and off would not hold it */

    for (size_t start = 0;; start++) {
        size_t end = level_end(s, len, start);
        const uint8_t *lvl = s + start;
        size_t lvl_len = end - start;
        struct level_node *c = child_lookup(n, seed, lvl, lvl_len);

        if (!c) {
            c = node_create(n, lvl, lvl_len, level_hash(seed, lvl, lvl_len), borrow, false);
            if (!c)
                goto fail;
            if (child_attach(n, c)) {
                node_free(c);
                goto fail;
            }
            if (!first_new)
                first_new = c;
            made++;
        }
        n = c;
        if (end == len) {
            if (created)
                *created = made;
            return n;
        }
        start = end;
    }
fail:
    if (created)
        *created = 0;
    /* Only what this call created goes: a pre-existing node on the path may
     * have a NULL value whose slot a trie_slot caller still holds. */
    if (first_new) {
        child_detach(first_new->parent, first_new);
        first_new->parent = NULL;
        level_tree_destroy(first_new, NULL, NULL);
    }
    return NULL;
}

struct level_node *level_next_child(const struct level_node *n, const struct level_node *from)
{
    uint32_t i = 0;

    if (!n->wild) {
        if (from)
            i = table_index(n, from) + 1;
    } else if (!from && n->plus) {
        return n->plus;
    } else if (!from || from == n->plus) {
        if (n->pound)
            return n->pound;
    } else if (from != n->pound) {
        i = table_index(n, from) + 1;
    }
    if (!n->count)
        return NULL;
    for (; i <= n->mask; i++)
        if (n->slots[i])
            return n->slots[i];
    return NULL;
}

struct level_node *level_prune(struct level_node *n, size_t *freed)
{
    size_t k = 0;

    while (n->parent && node_empty(n)) {
        struct level_node *p = n->parent;
        child_detach(p, n);
        node_free(n);
        n = p;
        k++;
    }
    if (freed)
        *freed = k;
    return n;
}

/* Unlink and return any one child of n, NULL when it has none. Only for
 * destruction: the table is consumed from the top and mask shrinks with it,
 * which keeps the whole teardown linear but leaves no valid table. */
static struct level_node *child_take(struct level_node *n)
{
    struct level_node *c;

    if (n->wild && (c = n->plus)) {
        n->plus = NULL;
        return c;
    }
    if (n->wild && (c = n->pound)) {
        n->pound = NULL;
        return c;
    }
    if (!n->count)
        return NULL;
    for (uint32_t i = n->mask;; i--) {
        if ((c = n->slots[i])) {
            n->count--;
            n->mask = i - 1; /* count > 0 afterwards implies i > 0 */
            return c;
        }
    }
}

void level_tree_destroy(struct level_node *root, level_value_fn free_value, void *arg)
{
    struct level_node *n = root;

    while (n) {
        struct level_node *c = child_take(n);
        if (c) {
            n = c;
            continue;
        }
        if (n->value && free_value)
            free_value(n->value, arg);
        struct level_node *p = n == root ? NULL : n->parent;
        node_free(n);
        n = p;
    }
}

bool level_walk_until(const struct level_node *top, bool skip_dollar, level_until_fn fn, void *arg)
{
    const struct level_node *n = top;
    const struct level_node *from = NULL;

    for (;;) {
        if (!from && n->value && fn(n->value, arg))
            return true;
        const struct level_node *next = level_next_child(n, from);
        /* MQTT-4.7.2-1 */
        while (next && skip_dollar && n == top && next->len && next->name[0] == '$')
            next = level_next_child(n, next);
        if (next) {
            n = next;
            from = NULL;
            continue;
        }
        if (n == top)
            return false;
        from = n;
        n = n->parent;
    }
}

/* level_walk's fn and arg, called from level_walk_until. */
struct walk_all {
    level_value_fn fn;
    void *arg;
};

static bool walk_all_one(void *value, void *arg)
{
    const struct walk_all *w = arg;
    w->fn(value, w->arg);
    return false;
}

void level_walk(const struct level_node *top, bool skip_dollar, level_value_fn fn, void *arg)
{
    struct walk_all w = {fn, arg};
    level_walk_until(top, skip_dollar, walk_all_one, &w);
}
