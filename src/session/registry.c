/*
 * session registry: (tenant, client id) -> session, a chained hash table
 * (see registry.h), and the same sessions in id order (idtree.h), kept
 * together here. Runs on the owning shard's thread only; owns the bucket
 * array, not the sessions.
 */
#include "session/registry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "session/session.h"
#include "tenant/tenant.h"

uint32_t reg_hash(const struct tenant *t, const uint8_t *id, size_t len)
{
    return (uint32_t)XXH3_64bits_withSeed(id, len, t->id);
}

struct session **reg_find(struct tenant *t, uint32_t h, const uint8_t *id, size_t len)
{
    if (!t->reg)
        return NULL;
    struct session **pp = &t->reg[h & t->reg_mask];
    for (; *pp; pp = &(*pp)->reg_next) {
        struct session *ss = *pp;
        if (ss->reg_hash == h && ss->st.client_id_len == len &&
            memcmp(ss->st.client_id, id, len) == 0)
            return pp;
    }
    return NULL;
}

int reg_reserve(struct tenant *t)
{
    if (t->reg_count < (t->reg ? t->reg_mask + 1 : 0))
        return 0;
    uint32_t n = t->reg ? (t->reg_mask + 1) * 2 : 64;
    struct session **v = calloc(n, sizeof(*v));
    if (!v)
        return -ENOMEM;
    if (t->reg) {
        for (uint32_t i = 0; i <= t->reg_mask; i++) {
            struct session *ss = t->reg[i];
            while (ss) {
                struct session *next = ss->reg_next;
                ss->reg_next = v[ss->reg_hash & (n - 1)];
                v[ss->reg_hash & (n - 1)] = ss;
                ss = next;
            }
        }
        free(t->reg);
    }
    t->reg = v;
    t->reg_mask = n - 1;
    return 0;
}

void reg_link(struct tenant *t, struct session *ss, uint32_t h)
{
    ss->reg_hash = h;
    struct session **bucket = &t->reg[h & t->reg_mask];
    ss->reg_next = *bucket;
    *bucket = ss;
    t->reg_count++;
    idtree_insert(&t->reg_root, ss);
}

void reg_remove(struct tenant *t, struct session *ss)
{
    struct session **pp = reg_find(t, ss->reg_hash, ss->st.client_id, ss->st.client_id_len);
    if (pp && *pp == ss) {
        *pp = ss->reg_next;
        t->reg_count--;
        idtree_remove(&t->reg_root, ss);
    }
}

bool session_exists(struct tenant *t, const uint8_t *id, size_t len)
{
    return reg_find(t, reg_hash(t, id, len), id, len) != NULL;
}

struct session *session_find(struct tenant *t, const uint8_t *id, size_t len)
{
    struct session **pp = reg_find(t, reg_hash(t, id, len), id, len);
    return pp ? *pp : NULL;
}

bool session_connected(struct tenant *t, const uint8_t *id, size_t len)
{
    struct session **pp = reg_find(t, reg_hash(t, id, len), id, len);
    return pp && (*pp)->client;
}
