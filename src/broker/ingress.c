/*
 * ingress: the keys of the QoS 2 flows this shard delivered (ingress.h),
 * each with when it was kept, in a core/u64set.
 */
#include "broker/ingress.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "broker/shard.h"
#include "core/u64set.h"
#include "session/session.h"
#include "session/store.h"

struct ingress_table {
    struct u64set keys; /* key -> when it was kept (now_ms) */
};

uint64_t ingress_key(const struct tenant *t, const struct session *ss, uint16_t pid)
{
    uint64_t seed = XXH3_64bits(t->name, strlen(t->name)) ^ pid;
    uint64_t k = XXH3_64bits_withSeed(ss->st.client_id, ss->st.client_id_len, seed);
    return k ? k : 1;
}

static struct u64set *keys(struct shard *s)
{
    if (!s->ingress)
        s->ingress = calloc(1, sizeof(*s->ingress));
    return s->ingress ? &s->ingress->keys : NULL;
}

bool ingress_admit(struct shard *s, uint64_t key)
{
    struct u64set *k = keys(s);
    if (k && u64set_find(k, key))
        return false;
    /* Out of memory: delivered without its key (at worst a second time
     * after a crash). */
    if (k && u64set_put(k, key, s->now_ms) == 0)
        store_ingress(s, key, true);
    return true;
}

void ingress_forget(struct shard *s, uint64_t key)
{
    if (s->ingress && u64set_del(&s->ingress->keys, key))
        store_ingress(s, key, false);
}

void ingress_release(struct shard *s, const struct tenant *t, const struct session *ss,
                     uint16_t pid)
{
    if (!s->store)
        return;
    uint64_t key = ingress_key(t, ss, pid);
    ingress_forget(s, key);
    for (uint32_t i = 0; i < s->broker->nshards; i++) {
        if (i == s->id)
            continue;
        struct xmsg x = {.type = XMSG_FORGET, .token = key};
        shard_store_remote(s, i); /* the PUBCOMP waits for their records */
        shard_xsend(s, i, &x);
    }
}

int ingress_restore(struct shard *s, uint64_t key)
{
    struct u64set *k = keys(s);
    if (!k)
        return -ENOMEM;
    return u64set_find(k, key) ? 0 : u64set_put(k, key, s->now_ms);
}

struct walk {
    void (*fn)(uint64_t key, void *arg);
    void *arg;
};

static void walk_one(uint64_t key, uint64_t at_ms, void *arg)
{
    struct walk *w = arg;
    (void)at_ms;
    w->fn(key, w->arg);
}

void ingress_walk(const struct shard *s, void (*fn)(uint64_t key, void *arg), void *arg)
{
    struct walk w = {fn, arg};
    if (s->ingress)
        u64set_walk(&s->ingress->keys, walk_one, &w);
}

struct gc {
    struct shard *s;
    uint64_t keep_ms;
};

static bool too_old(uint64_t key, uint64_t at_ms, void *arg)
{
    struct gc *g = arg;
    if (g->s->now_ms - at_ms <= g->keep_ms)
        return false;
    store_ingress(g->s, key, false);
    return true;
}

void ingress_gc(struct shard *s)
{
    struct gc g = {s, (uint64_t)s->cfg->max_session_expiry * 1000u};
    if (s->ingress && s->ingress->keys.n && s->now_ms > g.keep_ms)
        u64set_prune(&s->ingress->keys, too_old, &g);
}

void ingress_fini(struct shard *s)
{
    if (s->ingress)
        u64set_fini(&s->ingress->keys);
    free(s->ingress);
    s->ingress = NULL;
}
