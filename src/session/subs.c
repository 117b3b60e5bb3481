/*
 * session subscriptions: a session's list of subscriptions and its entries
 * in the shard's topic index (see subs.h). Owns st.subs and each
 * struct sess_sub; shares each filter's struct sub_node in the tenant's
 * trie with the other subscribers on this shard.
 *
 * Runs on the owning shard's thread only. Changing the list tells the store
 * (store.h); the index follows the list and is not told.
 */
#include "session/subs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/vec.h"
#include "index/trie.h"
#include "mqtt/topic.h"
#include "session/session.h"
#include "session/store.h"
#include "shard/shard.h"

bool topic_within_limits(const struct tenant_settings *ts, const uint8_t *t, size_t len)
{
    if (len > ts->max_topic_length)
        return false;
    uint32_t levels = 1;
    for (size_t i = 0; i < len; i++)
        levels += t[i] == '/';
    return levels <= ts->max_topic_levels;
}

static struct sess_sub **sub_find(struct session *ss, const uint8_t *filter, size_t len)
{
    for (uint32_t i = 0; i < ss->st.nsubs; i++)
        if (ss->st.subs[i]->len == len && memcmp(ss->st.subs[i]->filter, filter, len) == 0)
            return &ss->st.subs[i];
    return NULL;
}

bool session_has_sub(struct session *ss, const uint8_t *filter, size_t len)
{
    return sub_find(ss, filter, len) != NULL;
}

static struct sub_entry *node_find(struct sub_node *n, const struct session *ss)
{
    for (uint32_t i = 0; i < n->n; i++)
        if (n->v[i].s == ss)
            return &n->v[i];
    return NULL;
}

/* Index ss under the filter (not a $share one) in the shard's trie;
 * *is_new_interest when it is the filter's first subscriber here. 0, or
 * -ENOMEM with the trie as it was. */
static int node_add(struct shard *s, struct session *ss, const uint8_t *filter, size_t len,
                    const struct sub_req *req, bool *is_new_interest)
{
    struct tenant *t = ss->tenant;
    void **slot = trie_slot(t->subs, filter, len);
    if (!slot)
        return -ENOMEM;
    struct sub_node *n = *slot;
    if (!n) {
        n = calloc(1, sizeof(*n));
        if (!n) {
            trie_remove(t->subs, filter, len);
            return -ENOMEM;
        }
        *slot = n;
    }
    if (n->n == n->cap) {
        struct sub_entry *v = vec_grow(n->v, &n->cap, sizeof(*v), 2);
        if (!v) {
            if (sub_node_empty(n)) {
                trie_remove(t->subs, filter, len);
                free(n);
            }
            return -ENOMEM;
        }
        n->v = v;
    }
    n->v[n->n++] = (struct sub_entry){ss, req->qos, req->opts, req->subid};
    if (n->n == 1) {
        n->mask |= 1ull << s->id;
        *is_new_interest = true;
    }
    return 0;
}

/* MQTT-3.8.4-3: a repeated filter replaces the subscription, in the
 * session's list and in the index. */
static int sub_replace(struct shard *s, struct session *ss, struct sess_sub *sub,
                       const struct sub_req *req)
{
    sub->qos = req->qos;
    sub->opts = req->opts;
    sub->subid = req->subid;
    store_sub_put(s, ss, sub);
    struct mqtt_share_spec sp;
    if (mqtt_share_parse(sub->filter, sub->len, &sp) > 0) {
        bool first;
        return s->session_ops->share_add(s, ss->tenant, &sp, ss, req, &first);
    }
    struct sub_node *n = trie_get(ss->tenant->subs, sub->filter, sub->len);
    struct sub_entry *e = n ? node_find(n, ss) : NULL;
    if (e) {
        e->qos = req->qos;
        e->opts = req->opts;
        e->subid = req->subid;
    }
    return 0;
}

int session_subscribe(struct shard *s, struct session *ss, const uint8_t *filter, size_t len,
                      const struct sub_req *req, bool *is_new_interest, bool *existed)
{
    struct tenant *t = ss->tenant;
    *is_new_interest = false;
    struct sess_sub **have = sub_find(ss, filter, len);
    *existed = have != NULL;
    if (have)
        return sub_replace(s, ss, *have, req);
    if (ss->st.nsubs >= t->set->max_subscriptions)
        return -ENOSPC;
    if (ss->st.nsubs == ss->st.subs_cap) {
        struct sess_sub **v = vec_grow(ss->st.subs, &ss->st.subs_cap, sizeof(*v), 4);
        if (!v)
            return -ENOMEM;
        ss->st.subs = v;
    }
    struct sess_sub *sub = malloc(sizeof(*sub) + len);
    if (!sub)
        return -ENOMEM;
    sub->qos = req->qos;
    sub->opts = req->opts;
    sub->subid = req->subid;
    sub->len = (uint16_t)len;
    memcpy(sub->filter, filter, len);
    struct mqtt_share_spec sp;
    bool shared = mqtt_share_parse(filter, len, &sp) > 0;
    int rc = shared ? s->session_ops->share_add(s, t, &sp, ss, req, is_new_interest)
                    : node_add(s, ss, filter, len, req, is_new_interest);
    if (rc < 0) {
        free(sub);
        return -ENOMEM;
    }
    ss->st.subs[ss->st.nsubs++] = sub;
    t->ctr.subscriptions++;
    if (shared)
        t->ctr.shared_subscriptions++;
    store_sub_put(s, ss, sub);
    return 0;
}

int subs_restore(struct shard *s, struct session *ss)
{
    struct tenant *t = ss->tenant;
    for (uint32_t i = 0; i < ss->st.nsubs; i++) {
        const struct sess_sub *sub = ss->st.subs[i];
        struct sub_req req = {sub->qos, sub->opts, sub->subid};
        struct mqtt_share_spec sp;
        bool shared = mqtt_share_parse(sub->filter, sub->len, &sp) > 0, fresh = false;
        int rc = shared ? s->session_ops->share_add(s, t, &sp, ss, &req, &fresh)
                        : node_add(s, ss, sub->filter, sub->len, &req, &fresh);
        if (rc < 0)
            return -ENOMEM;
        t->ctr.subscriptions++;
        if (shared)
            t->ctr.shared_subscriptions++;
        else if (fresh)
            s->session_ops->interest_add(s, t, sub->filter, sub->len);
    }
    return 0;
}

static void node_drop(struct shard *s, struct tenant *t, const uint8_t *filter, size_t len,
                      struct session *ss)
{
    struct mqtt_share_spec sp;
    if (mqtt_share_parse(filter, len, &sp) > 0) {
        s->session_ops->share_drop(s, t, &sp, filter, len, ss);
        return;
    }
    struct sub_node *n = trie_get(t->subs, filter, len);
    if (!n)
        return;
    struct sub_entry *e = node_find(n, ss);
    if (!e)
        return;
    *e = n->v[--n->n];
    if (n->n)
        return;
    free(n->v);
    n->v = NULL;
    n->cap = 0;
    n->mask &= ~(1ull << s->id);
    s->session_ops->interest_del(s, t, filter, len);
    if (sub_node_empty(n)) {
        trie_remove(t->subs, filter, len);
        free(n);
    }
}

/* Take sub out of the counters and the index (not out of the list). */
static void sub_unindex(struct shard *s, struct session *ss, const struct sess_sub *sub)
{
    ss->tenant->ctr.subscriptions--;
    if (mqtt_share_parse(sub->filter, sub->len, &(struct mqtt_share_spec){0}) > 0)
        ss->tenant->ctr.shared_subscriptions--;
    node_drop(s, ss->tenant, sub->filter, sub->len, ss);
}

bool session_unsubscribe(struct shard *s, struct session *ss, const uint8_t *filter, size_t len)
{
    struct sess_sub **have = sub_find(ss, filter, len);
    if (!have)
        return false;
    struct sess_sub *sub = *have;
    *have = ss->st.subs[--ss->st.nsubs];
    sub_unindex(s, ss, sub);
    store_sub_del(s, ss, sub->filter, sub->len);
    free(sub);
    return true;
}

void subs_release(struct shard *s, struct session *ss)
{
    for (uint32_t i = 0; i < ss->st.nsubs; i++) {
        sub_unindex(s, ss, ss->st.subs[i]);
        free(ss->st.subs[i]);
    }
    free(ss->st.subs);
}
