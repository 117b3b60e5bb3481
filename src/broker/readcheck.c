/*
 * readcheck: per-topic read checks of one session (see readcheck.h).
 *
 * Owns the identity copy and the verdict table of its session, on the
 * session's shard. The table is open addressing over 64-bit slots (the
 * topic's XXH3 above bit 1, so a collision reuses another topic's verdict
 * with probability 2^-62 per pair, out of reach of a client choosing the
 * topics it publishes to; bit 1 always set, so a slot is never 0; bit 0 the
 * verdict). It starts small, doubles up to READCHECK_MAX_SLOTS and
 * is emptied, rather than grown further, when that fills: a subscriber
 * reading more distinct topics than that asks the plugin again, which is
 * cheap (check_read is synchronous and must be). Nothing here runs unless
 * a subscription was granted per topic.
 */
#include "broker/readcheck.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "broker/identity.h"
#include "broker/shard.h"
#include "plugin/host.h"
#include "session/session.h"

#define READCHECK_MIN_SLOTS 16u
#define READCHECK_MAX_SLOTS 1024u /* 8 KiB per session at most */

#define SLOT_KEY_MASK (~UINT64_C(3))
#define SLOT_USED     UINT64_C(2)
#define SLOT_ALLOWED  UINT64_C(1)

struct readcheck {
    struct conn_identity *id; /* NULL: every read refused */
    uint32_t generation;      /* plugin_host_generation() the slots were filled under */
    uint32_t used, cap;       /* cap: 0 or a power of two */
    uint64_t *slots;
};

void readcheck_free(struct readcheck *r)
{
    if (!r)
        return;
    identity_free(r->id);
    free(r->slots);
    free(r);
}

int readcheck_bind(struct session *ss, const struct conn_identity *id)
{
    struct conn_identity *copy = NULL;
    if (id && !(copy = identity_copy(id)))
        goto oom;
    struct readcheck *r = ss->reads;
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            goto oom;
        ss->reads = r;
    }
    identity_free(r->id);
    r->id = copy;
    /* Verdicts were the old identity's. */
    if (r->slots)
        memset(r->slots, 0, r->cap * sizeof(*r->slots));
    r->used = 0;
    return 0;
oom:
    identity_free(copy);
    readcheck_free(ss->reads);
    ss->reads = NULL;
    return -ENOMEM;
}

/* The verdict kept for key: 1 allowed, 0 refused, -1 none. */
static int lookup(const struct readcheck *r, uint64_t key)
{
    uint32_t mask = r->cap - 1;
    for (uint32_t i = (uint32_t)(key >> 2) & mask, n = 0; r->cap && n < r->cap;
         i = (i + 1) & mask, n++) {
        if (r->slots[i] == 0)
            return -1;
        if ((r->slots[i] & SLOT_KEY_MASK) == key)
            return (int)(r->slots[i] & SLOT_ALLOWED);
    }
    return -1;
}

static void put(uint64_t *slots, uint32_t cap, uint64_t slot)
{
    uint32_t mask = cap - 1;
    uint32_t i = (uint32_t)((slot & SLOT_KEY_MASK) >> 2) & mask;
    while (slots[i] != 0)
        i = (i + 1) & mask;
    slots[i] = slot;
}

/* Keep a verdict; out of memory only means asking again next time. */
static void insert(struct readcheck *r, uint64_t key, bool allowed)
{
    if (r->used >= r->cap * 3 / 4) {
        if (r->cap >= READCHECK_MAX_SLOTS) {
            memset(r->slots, 0, r->cap * sizeof(*r->slots));
            r->used = 0;
        } else {
            uint32_t cap = r->cap ? r->cap * 2 : READCHECK_MIN_SLOTS;
            uint64_t *v = calloc(cap, sizeof(*v));
            if (!v)
                return;
            for (uint32_t i = 0; i < r->cap; i++)
                if (r->slots[i])
                    put(v, cap, r->slots[i]);
            free(r->slots);
            r->slots = v;
            r->cap = cap;
        }
    }
    put(r->slots, r->cap, key | SLOT_USED | (allowed ? SLOT_ALLOWED : 0));
    r->used++;
}

bool readcheck_allows(struct shard *s, struct session *ss, const uint8_t *topic, size_t len,
                      uint64_t *hash)
{
    struct readcheck *r = ss->reads;
    if (!r || !r->id)
        return false;
    struct plugin_host *h = s->broker->plugins;
    uint32_t gen = plugin_host_generation(h);
    if (r->generation != gen) {
        /* A reload: the rules may have changed. */
        if (r->slots)
            memset(r->slots, 0, r->cap * sizeof(*r->slots));
        r->used = 0;
        r->generation = gen;
    }
    if (*hash == 0)
        *hash = XXH3_64bits(topic, len) | 1u; /* never 0: computed */
    uint64_t key = *hash & SLOT_KEY_MASK;
    int v = lookup(r, key);
    if (v >= 0)
        return v == 1;
    struct ringmq_kv attrs[IDENTITY_KV_MAX];
    identity_kvs(r->id->attrs, r->id->n_attrs, attrs);
    struct ringmq_check chk = {
        .action = RINGMQ_ACTION_RECEIVE,
        .tenant = ss->tenant->name,
        .user_id = r->id->user_id,
        .client_id = {ss->st.client_id, ss->st.client_id_len},
        .topic = {topic, len},
        .attributes = attrs,
        .n_attributes = r->id->n_attrs,
    };
    bool cacheable;
    bool allowed = plugin_check_read(h, &chk, &cacheable) == RINGMQ_GRANTED;
    if (cacheable)
        insert(r, key, allowed);
    return allowed;
}
