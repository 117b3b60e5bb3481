/*
 * share: shared subscription groups (see share.h). Runs on one shard's
 * thread; groups cross shards only as interest messages (a mask bit per
 * shard with members) and as XMSG_SHARE carrying one message for one
 * group.
 */
#include "broker/share.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "broker/conn.h"
#include "broker/observe.h"
#include "broker/readcheck.h"
#include "broker/route.h"
#include "broker/shard.h"
#include "core/log.h"
#include "core/vec.h"
#include "index/trie.h"
#include "ringmq/plugin.h"
#include "session/msg.h"
#include "session/session.h"

struct share_group {
    struct share_group *next;
    uint64_t mask; /* shards with members, own bit iff n > 0 */
    uint32_t n, cap;
    uint32_t rr_member, rr_shard;
    struct sub_entry *v;
    uint8_t kind;
    uint16_t full_len;
    uint8_t full[]; /* the whole $share/GROUP/FILTER */
};

static bool same_group(const struct share_group *g, const struct mqtt_share_spec *sp)
{
    size_t pre = sp->kind == MQTT_SHARE_ORDERED ? 8 : 7;
    return g->kind == sp->kind && g->full_len == pre + sp->group_len + 1 + sp->filter_len &&
           memcmp(g->full + pre, sp->group, sp->group_len) == 0;
}

static struct share_group **group_find(struct sub_node *n, const struct mqtt_share_spec *sp)
{
    for (struct share_group **pp = &n->groups; *pp; pp = &(*pp)->next)
        if (same_group(*pp, sp))
            return pp;
    return NULL;
}

static struct share_group *group_create(struct sub_node *n, const struct mqtt_share_spec *sp)
{
    size_t pre = sp->kind == MQTT_SHARE_ORDERED ? 8 : 7;
    size_t len = pre + sp->group_len + 1 + sp->filter_len;
    struct share_group *g = calloc(1, sizeof(*g) + len);
    if (!g)
        return NULL;
    g->kind = sp->kind;
    g->full_len = (uint16_t)len;
    memcpy(g->full, sp->kind == MQTT_SHARE_ORDERED ? "$oshare/" : "$share/", pre);
    memcpy(g->full + pre, sp->group, sp->group_len);
    g->full[pre + sp->group_len] = '/';
    memcpy(g->full + pre + sp->group_len + 1, sp->filter, sp->filter_len);
    g->next = n->groups;
    n->groups = g;
    return g;
}

/* Unlink and free `*pp` when nothing refers to it any more, then the node
 * when it is empty. */
static void group_maybe_free(struct tenant *t, const struct mqtt_share_spec *sp, struct sub_node *n,
                             struct share_group **pp)
{
    struct share_group *g = *pp;
    if (g->mask == 0 && g->n == 0) {
        *pp = g->next;
        free(g->v);
        free(g);
    }
    if (sub_node_empty(n)) {
        trie_remove(t->subs, sp->filter, sp->filter_len);
        free(n->v);
        free(n);
    }
}

int share_member_add(struct shard *s, struct tenant *t, const struct mqtt_share_spec *sp,
                     struct session *ss, const struct sub_req *req, bool *first)
{
    *first = false;
    void **slot = trie_slot(t->subs, sp->filter, sp->filter_len);
    if (!slot)
        return -ENOMEM;
    struct sub_node *n = *slot;
    if (!n) {
        n = calloc(1, sizeof(*n));
        if (!n) {
            trie_remove(t->subs, sp->filter, sp->filter_len);
            return -ENOMEM;
        }
        *slot = n;
    }
    struct share_group **pp = group_find(n, sp);
    struct share_group *g = pp ? *pp : group_create(n, sp);
    if (!g) {
        if (sub_node_empty(n)) {
            trie_remove(t->subs, sp->filter, sp->filter_len);
            free(n);
        }
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < g->n; i++) {
        if (g->v[i].s == ss) {
            g->v[i] = (struct sub_entry){ss, req->qos, req->opts, req->subid};
            return 0;
        }
    }
    if (g->n == g->cap) {
        struct sub_entry *v = vec_grow(g->v, &g->cap, sizeof(*v), 2);
        if (!v) {
            group_maybe_free(t, sp, n, group_find(n, sp));
            return -ENOMEM;
        }
        g->v = v;
    }
    g->v[g->n++] = (struct sub_entry){ss, req->qos, req->opts, req->subid};
    if (g->n == 1) {
        g->mask |= 1ull << s->id;
        *first = true;
    }
    return 0;
}

void share_member_drop(struct shard *s, struct tenant *t, const struct mqtt_share_spec *sp,
                       const uint8_t *full, size_t full_len, struct session *ss)
{
    struct sub_node *n = trie_get(t->subs, sp->filter, sp->filter_len);
    struct share_group **pp = n ? group_find(n, sp) : NULL;
    if (!pp)
        return;
    struct share_group *g = *pp;
    for (uint32_t i = 0; i < g->n; i++) {
        if (g->v[i].s == ss) {
            g->v[i] = g->v[--g->n];
            break;
        }
    }
    if (g->n == 0 && (g->mask & (1ull << s->id))) {
        g->mask &= ~(1ull << s->id);
        route_interest_del(s, t, full, full_len);
    }
    group_maybe_free(t, sp, n, pp);
}

void share_interest(struct tenant *t, uint32_t src, const struct mqtt_share_spec *sp, bool add)
{
    if (add) {
        void **slot = trie_slot(t->subs, sp->filter, sp->filter_len);
        if (!slot)
            return;
        struct sub_node *n = *slot;
        if (!n) {
            n = calloc(1, sizeof(*n));
            if (!n) {
                trie_remove(t->subs, sp->filter, sp->filter_len);
                return;
            }
            *slot = n;
        }
        struct share_group **pp = group_find(n, sp);
        struct share_group *g = pp ? *pp : group_create(n, sp);
        if (g)
            g->mask |= 1ull << src;
        else if (sub_node_empty(n)) {
            trie_remove(t->subs, sp->filter, sp->filter_len);
            free(n);
        }
        return;
    }
    struct sub_node *n = trie_get(t->subs, sp->filter, sp->filter_len);
    struct share_group **pp = n ? group_find(n, sp) : NULL;
    if (!pp)
        return;
    (*pp)->mask &= ~(1ull << src);
    group_maybe_free(t, sp, n, pp);
}

void share_collect(struct shard *s, struct sub_node *n)
{
    for (struct share_group *g = n->groups; g; g = g->next) {
        if (s->nshare == s->share_cap) {
            struct share_group **v = vec_grow(s->share_scratch, &s->share_cap, sizeof(*v), 16);
            if (!v)
                return;
            s->share_scratch = v;
        }
        s->share_scratch[s->nshare++] = g;
    }
}

static uint32_t nth_shard(uint64_t mask, uint32_t k)
{
    while (k--)
        mask &= mask - 1;
    return (uint32_t)__builtin_ctzll(mask);
}

static uint64_t ordered_hash(const struct msg *m)
{
    /* One publisher (its session, never dereferenced) and one topic. */
    return XXH3_64bits_withSeed(msg_topic(m), m->topic_len, (uint64_t)(uintptr_t)m->origin);
}

static void forward(struct shard *s, struct share_group *g, struct tenant *t, uint32_t target,
                    struct msg *m, uint32_t hops)
{
    struct xfilter *f = malloc(sizeof(*f) + g->full_len);
    if (!f) {
        observe_drop(s, t, NULL, RINGMQ_DROP_NO_SHARE_MEMBER, m, 1);
        return;
    }
    f->len = g->full_len;
    memcpy(f->data, g->full, g->full_len);
    struct xmsg x = {.type = XMSG_SHARE,
                     .tenant = t->id,
                     .pad = hops,
                     .p = msg_acquire(m),
                     .token = (uint64_t)(uintptr_t)f};
    if (m->qos)
        shard_store_remote(s, target); /* its records there: store.h */
    shard_xsend(s, target, &x);
}

static bool member_online(const struct sub_entry *e)
{
    return e->s->client && conn_of_session(e->s)->state == CONN_ACTIVE;
}

/* One local member of g gets m, or another shard of g's mask does. */
static void deliver_group(struct shard *s, struct tenant *t, struct share_group *g, struct msg *m,
                          uint32_t hops)
{
    const struct sub_entry *e = NULL;
    if (g->n && g->kind == MQTT_SHARE_ORDERED) {
        e = &g->v[ordered_hash(m) % g->n];
    } else {
        /* Round robin over the connected members first. */
        for (uint32_t i = 0; i < g->n && !e; i++) {
            uint32_t j = (g->rr_member + i) % g->n;
            if (member_online(&g->v[j])) {
                e = &g->v[j];
                g->rr_member = j + 1;
            }
        }
    }
    uint64_t others = g->mask & ~(1ull << s->id);
    if (!e && others && hops + 1 < s->broker->nshards) {
        /* Nobody connected here: a member elsewhere may be. */
        uint32_t k = g->rr_shard++ % (uint32_t)__builtin_popcountll(others);
        forward(s, g, t, nth_shard(others, k), m, hops + 1);
        return;
    }
    if (!e && g->n)
        e = &g->v[g->rr_member++ % g->n]; /* a persistent member's queue */
    if (!e) {
        observe_drop(s, t, NULL, RINGMQ_DROP_NO_SHARE_MEMBER, m, 1);
        return;
    }
    uint64_t thash = 0;
    if ((e->opts & SUB_READ_CHECK) &&
        !readcheck_allows(s, e->s, msg_topic(m), m->topic_len, &thash)) {
        /* The member chosen may not read the topic. Members of one group
         * normally share their rights (one service's instances), so the
         * message is not offered to another one. */
        observe_drop(s, t, e->s, RINGMQ_DROP_DENIED, m, 1);
        return;
    }
    uint8_t qos = e->qos < m->qos ? e->qos : m->qos;
    uint32_t id = e->subid;
    session_deliver_shared(s, e->s, m, qos, (e->opts & SUB_RETAIN_AS_PUBLISHED) && m->retain, &id,
                           id ? 1 : 0, g->full, g->full_len);
}

/* The publishing shard's choice: one shard of the group's mask. */
static void dispatch(struct shard *s, struct tenant *t, struct share_group *g, struct msg *m)
{
    uint32_t count = (uint32_t)__builtin_popcountll(g->mask);
    if (count == 0) {
        observe_drop(s, t, NULL, RINGMQ_DROP_NO_SHARE_MEMBER, m, 1);
        return;
    }
    uint32_t k =
        g->kind == MQTT_SHARE_ORDERED ? (uint32_t)(ordered_hash(m) % count) : g->rr_shard++ % count;
    uint32_t target = nth_shard(g->mask, k);
    if (target == s->id)
        deliver_group(s, t, g, m, 0);
    else
        forward(s, g, t, target, m, 0);
}

void share_deliver_collected(struct shard *s, struct tenant *t, struct msg *m)
{
    /* Taken out first: a delivery may match again (a will, say). */
    uint32_t n = s->nshare;
    struct share_group *small[16];
    struct share_group **v = n <= 16 ? small : malloc(n * sizeof(*v));
    if (!v) {
        observe_drop(s, t, NULL, RINGMQ_DROP_NO_SHARE_MEMBER, m, n);
        s->nshare = 0;
        return;
    }
    memcpy(v, s->share_scratch, n * sizeof(*v));
    s->nshare = 0;
    for (uint32_t i = 0; i < n; i++)
        dispatch(s, t, v[i], m);
    if (v != small)
        free(v);
}

static struct share_group *group_lookup(struct tenant *t, const uint8_t *full, size_t len)
{
    struct mqtt_share_spec sp;
    if (mqtt_share_parse(full, len, &sp) <= 0)
        return NULL;
    struct sub_node *n = trie_get(t->subs, sp.filter, sp.filter_len);
    struct share_group **pp = n ? group_find(n, &sp) : NULL;
    return pp ? *pp : NULL;
}

void share_on_xmsg(struct shard *s, const struct xmsg *x)
{
    struct tenant *t = shard_tenant(s, x->tenant);
    struct xfilter *f = (struct xfilter *)(uintptr_t)x->token;
    struct share_group *g = t ? group_lookup(t, f->data, f->len) : NULL;
    if (g)
        deliver_group(s, t, g, x->p, x->pad);
    else if (t)
        observe_drop(s, t, NULL, RINGMQ_DROP_NO_SHARE_MEMBER, x->p,
                     1); /* the group left meanwhile */
    free(f);
    msg_release(x->p);
}

void share_redispatch(struct shard *s, struct tenant *t, const uint8_t *full, size_t full_len,
                      struct msg *m)
{
    struct share_group *g = group_lookup(t, full, full_len);
    if (g)
        dispatch(s, t, g, m);
    else
        observe_drop(s, t, NULL, RINGMQ_DROP_NO_SHARE_MEMBER, m, 1);
}

void share_groups_free(struct sub_node *n)
{
    while (n->groups) {
        struct share_group *g = n->groups;
        n->groups = g->next;
        free(g->v);
        free(g);
    }
}
