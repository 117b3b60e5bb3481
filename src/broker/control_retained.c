/*
 * control_retained: the admin API's retained messages (GET .../retained
 * under a filter, one topic, DELETE one). Every shard holds a full replica
 * of a tenant's retained store (route.c), so shard 0 answers alone: a page
 * seeks in the store's topic order and reads forward through the filter's
 * range, at most [admin] page_budget topics (retained_walk), and a clear is
 * published there as the broker's own retained PUBLISH with an empty
 * payload (MQTT-3.3.1-10), which route_publish applies to every replica and
 * to the store. A filter's clear is that for each match of a page read as
 * a page is (the caller goes on from its cursor while "more"). The answers
 * run on shard 0's thread; the ops on the admin thread (control.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/control.h"
#include "broker/control_req.h"
#include "broker/route.h"
#include "broker/shard.h"
#include "index/retain.h"
#include "mqtt/topic.h"
#include "session/msg.h"

/* The shard that answers: any replica would do. */
#define RETAINED_SHARD 0u

/*
 * Where a filter's matches lie in topic order. The filter's bytes before
 * its first wildcard (its literal prefix, plen bytes) start every topic it
 * can match, but two: a filter ending in "/#" right after its prefix also
 * matches the parent topic, the prefix less its '/' ("a/#" matches "a",
 * MQTT-4.7.1-2), which comes just before the prefix's range; and a filter
 * whose first level is a wildcard matches no '$' topic (MQTT-4.7.2-1),
 * which are the range from "$" to "%". A filter without wildcards matches
 * only itself: the first topic at or after it.
 */
struct page_range {
    const uint8_t *f;
    size_t flen, plen;
    bool exact, parent, no_dollar;
};

static struct page_range page_range(const uint8_t *f, size_t flen)
{
    struct page_range g = {.f = f, .flen = flen};
    while (g.plen < flen && f[g.plen] != '+' && f[g.plen] != '#')
        g.plen++;
    g.exact = g.plen == flen;
    g.parent = g.plen > 0 && g.plen + 1 == flen && f[g.plen] == '#';
    g.no_dollar = flen && (f[0] == '+' || f[0] == '#');
    return g;
}

enum page_where { PAGE_IN, PAGE_SKIP, PAGE_PAST };

/* Where `topic` lies: in the range, before a part of it (PAGE_SKIP: seek
 * to *key, *klen, which is past the topic), or past its end. */
static enum page_where page_where(const struct page_range *g, const uint8_t *topic, size_t tl,
                                  const uint8_t **key, size_t *klen)
{
    if (g->no_dollar && tl && topic[0] == '$') {
        *key = (const uint8_t *)"%";
        *klen = 1;
        return PAGE_SKIP;
    }
    if (tl >= g->plen && !memcmp(topic, g->f, g->plen))
        return PAGE_IN;
    size_t pl = g->plen - 1; /* the parent, when g->parent */
    if (!g->parent || tl < pl || memcmp(topic, g->f, pl) != 0 ||
        control_key_cmp(topic, tl, g->f, g->plen) > 0)
        return PAGE_PAST;
    if (tl == pl)
        return PAGE_IN;
    *key = g->f; /* between the parent and the prefix's range ("a-b") */
    *klen = g->plen;
    return PAGE_SKIP;
}

/* The page's first stored topic: after `after` when that lies at or past
 * the range's start (the parent, or the prefix), else the start. */
static const struct msg *page_seek(struct retain_iter *it, const struct tenant *t,
                                   const struct control_req *r, const struct page_range *g,
                                   const uint8_t **topic, size_t *tl)
{
    const uint8_t *after = r->key + r->prefix_len;
    size_t start = g->parent ? g->plen - 1 : g->plen;
    if (r->has_after && control_key_cmp(after, r->after_len, r->key, start) >= 0)
        return retain_seek(it, t->retained, after, r->after_len, true, topic, tl);
    return retain_seek(it, t->retained, r->key, start, false, topic, tl);
}

/*
 * The page's retained messages (r->key's filter, after r's `after`) into
 * r->heap[0..n) (returns n <= r->cap), read forward in topic order through
 * the filter's range (page_range): O(log topics + looked at). Stops at the
 * end of the range, or (r->more, r->upto the last topic looked at) before
 * a match past r->cap or after `budget` (>= 1) topics looked at, matching
 * or not, a clear's tombstone (route.c) included: that, not the store's
 * size, bounds the work of a page in the shard's loop turn ([admin]
 * page_budget), as control_walk's for sessions. -ENOMEM in r->err when
 * upto cannot be copied.
 */
static uint32_t retained_walk(struct tenant *t, struct control_req *r, uint32_t budget)
{
    struct page_range g = page_range(r->key, r->prefix_len);
    const uint8_t *topic, *upto = NULL, *key;
    size_t tl, upto_len = 0, klen;
    bool stopped = false;
    struct retain_iter it;
    const struct msg *m = page_seek(&it, t, r, &g, &topic, &tl);
    uint32_t n = 0, seen = 0;
    while (m) {
        enum page_where w = page_where(&g, topic, tl, &key, &klen);
        if (w == PAGE_PAST)
            break;
        if (w == PAGE_SKIP) { /* at most twice a page: nothing to count */
            m = retain_seek(&it, t->retained, key, klen, false, &topic, &tl);
            continue;
        }
        /* A tombstone (empty payload) is no retained message. */
        bool take = seen < budget && m->payload_len && mqtt_topic_matches(g.f, g.flen, topic, tl);
        if (seen == budget || (take && n == r->cap)) {
            stopped = true;
            break;
        }
        seen++;
        if (take)
            r->heap[n++] = m;
        upto = topic;
        upto_len = tl;
        if (g.exact)
            break;
        m = retain_next(&it, &topic, &tl);
    }
    r->more = stopped;
    if (stopped && upto && !(r->upto = control_id_dup(upto, (uint16_t)upto_len)))
        r->err = -ENOMEM;
    r->upto_len = (uint16_t)upto_len;
    return n;
}

/* One message's fields into *out (topic copied, payload too when
 * `payload`). 0 or -ENOMEM (out is then left for admin_retained_fini). */
static int retained_fill(const struct msg *m, bool payload, struct admin_retained *out)
{
    out->topic = malloc((size_t)m->topic_len + 1);
    if (!out->topic)
        return -ENOMEM;
    memcpy(out->topic, msg_topic(m), m->topic_len);
    out->topic[m->topic_len] = '\0';
    out->topic_len = m->topic_len;
    out->qos = m->qos;
    out->payload_len = m->payload_len;
    out->props_len = m->props_len;
    if (!payload)
        return 0;
    out->payload = malloc(m->payload_len ? m->payload_len : 1);
    if (!out->payload)
        return -ENOMEM;
    memcpy(out->payload, msg_payload(m), m->payload_len);
    return 0;
}

static void answer_page(struct shard *s, struct tenant *t, struct control_req *r)
{
    uint32_t n = retained_walk(t, r, s->cfg->admin_page_budget);
    for (uint32_t i = 0; !r->err && i < n; i++) {
        r->n = i + 1;
        if (retained_fill(r->heap[i], false, &r->rv[i]) < 0) {
            r->err = -ENOMEM;
            break;
        }
    }
}

/* Clear topic's retained message: the broker's own retained PUBLISH with
 * an empty payload, routed as a client's would be (MQTT-3.3.1-10: the
 * topic's retained message is removed on every replica and in the store;
 * subscribers get it as any such PUBLISH). */
static void answer_clear(struct shard *s, struct tenant *t, struct control_req *r)
{
    struct msg_spec sp = {.topic = r->key, .topic_len = r->prefix_len, .retain = 1};
    struct msg *m = msg_create(&sp);
    if (!m) {
        r->err = -ENOMEM;
        return;
    }
    route_publish(s, t, m);
}

/*
 * A filter's clear: retained_walk's page (r->cap, the request's limit, is
 * the most it takes), each message cleared as answer_clear clears one. So
 * a request looks at no more than [admin] page_budget topics, whatever the
 * tenant holds, and says where it stopped (r->more, r->upto) for the next
 * request to go on from. Out of memory clears nothing more (-ENOMEM): the
 * caller repeats the same request, which skips what was cleared.
 */
static void answer_clear_filter(struct shard *s, struct tenant *t, struct control_req *r)
{
    uint32_t n = retained_walk(t, r, s->cfg->admin_page_budget);
    /* Referenced first: a clear changes the store the walk read. */
    for (uint32_t i = 0; i < n; i++)
        msg_acquire((struct msg *)r->heap[i]);
    for (uint32_t i = 0; i < n; i++) {
        struct msg *old = (struct msg *)r->heap[i];
        struct msg_spec sp = {.topic = msg_topic(old), .topic_len = old->topic_len, .retain = 1};
        struct msg *m = r->err ? NULL : msg_create(&sp);
        if (m) {
            route_publish(s, t, m); /* MQTT-3.3.1-10, as answer_clear */
            r->n++;
        } else {
            r->err = -ENOMEM;
        }
        msg_release(old);
    }
}

void control_answer_retained(struct shard *s, struct tenant *t, struct control_req *r)
{
    if (!t || !t->retained) {
        r->err = r->kind == CONTROL_RET_PAGE || r->kind == CONTROL_RET_CLEAR ? 0 : -ENOENT;
        return;
    }
    if (r->kind == CONTROL_RET_PAGE) {
        answer_page(s, t, r);
        return;
    }
    if (r->kind == CONTROL_RET_CLEAR) {
        answer_clear_filter(s, t, r);
        return;
    }
    const struct msg *m = retain_get(t->retained, r->key, r->prefix_len);
    if (!m || m->payload_len == 0) {
        r->err = -ENOENT;
        return;
    }
    if (r->kind == CONTROL_RET_DEL) {
        answer_clear(s, t, r);
        return;
    }
    r->n = 1;
    r->err = retained_fill(m, true, &r->rv[0]);
}

/* ---- on the admin thread ---------------------------------------------------- */

/* Ask shard RETAINED_SHARD `kind` about key (a filter, then `after`, for
 * a page; a topic otherwise); the answered request into *out. 0 or -errno. */
static int ask_retained(struct broker *b, uint8_t kind, const char *tenant, uint32_t cap,
                        const char *key, size_t len, const char *after, size_t after_len,
                        struct control_req **out)
{
    int tid = control_tenant(b, tenant);
    if (tid < 0)
        return tid;
    struct control_req *r =
        control_req_create(kind, (uint16_t)tid, cap, key, len, after, after_len);
    if (!r)
        return -ENOMEM;
    return control_ask_one(b, RETAINED_SHARD, r, out);
}

int control_retained(void *arg, const char *tenant, const struct admin_retained_query *q,
                     struct admin_retained_page *out)
{
    if (!mqtt_topic_filter_valid((const uint8_t *)q->filter, q->filter_len))
        return -EINVAL;
    struct control_req *r;
    int err = ask_retained(arg, CONTROL_RET_PAGE, tenant, q->limit, q->filter, q->filter_len,
                           q->after, q->after_len, &r);
    if (err < 0)
        return err;
    *out = (struct admin_retained_page){r->rv, r->n, r->more, r->upto, r->upto_len};
    r->rv = NULL; /* moved */
    r->upto = NULL;
    r->n = 0;
    control_req_put(r);
    return 0;
}

int control_retained_one(void *arg, const char *tenant, const char *topic, size_t len,
                         struct admin_retained *out)
{
    if (!mqtt_topic_name_valid((const uint8_t *)topic, len))
        return -EINVAL;
    struct control_req *r;
    int err = ask_retained(arg, CONTROL_RET_ONE, tenant, 1, topic, len, NULL, 0, &r);
    if (err < 0)
        return err;
    *out = r->rv[0];
    r->n = 0; /* moved */
    control_req_put(r);
    return 0;
}

int control_retained_delete(void *arg, const char *tenant, const char *topic, size_t len)
{
    if (!mqtt_topic_name_valid((const uint8_t *)topic, len))
        return -EINVAL;
    struct control_req *r;
    int err = ask_retained(arg, CONTROL_RET_DEL, tenant, 0, topic, len, NULL, 0, &r);
    if (err == 0)
        control_req_put(r);
    return err;
}

int control_retained_clear(void *arg, const char *tenant, const struct admin_retained_query *q,
                           struct admin_retained_cleared *out)
{
    if (!mqtt_topic_filter_valid((const uint8_t *)q->filter, q->filter_len) || !q->limit ||
        q->limit > ADMIN_RETAINED_CLEAR_MAX)
        return -EINVAL;
    struct control_req *r;
    int err = ask_retained(arg, CONTROL_RET_CLEAR, tenant, q->limit, q->filter, q->filter_len,
                           q->after, q->after_len, &r);
    if (err < 0)
        return err;
    /* A count: the request holds no entries to free. */
    *out = (struct admin_retained_cleared){r->n, r->more, r->upto, r->upto_len};
    r->upto = NULL; /* moved */
    r->n = 0;
    control_req_put(r);
    return 0;
}
