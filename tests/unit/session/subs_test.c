/*
 * session subscriptions: the session's list and its entries in the topic
 * index, checked through the index (trie nodes) and through what a publish
 * delivers (the bytes a connection collects, decoded).
 *
 * The shard (real, without a loop) and the client's side are
 * store_harness.c's; no store (memory only).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "index/trie.h"
#include "mqtt/codec.h"
#include "store_harness.h"

static void setup(void)
{
    harness_setup(NULL, NULL);
}

/* As at shutdown (shard.c): unacknowledged shared deliveries of the
 * sessions destroyed are not handed to another member being destroyed. */
static void teardown(void)
{
    shard.stopping = true;
    harness_teardown();
}

TestSuite(session_subs, .init = setup, .fini = teardown);

static int sub_rc(struct session *ss, const char *filter, uint8_t qos, bool *existed)
{
    struct sub_req req = {.qos = qos};
    bool fresh, ex;
    return session_subscribe(&shard, ss, (const uint8_t *)filter, strlen(filter), &req, &fresh,
                             existed ? existed : &ex);
}

/* The index entry of ss under `filter`, or NULL. */
static struct sub_entry *entry_of(struct session *ss, const char *filter)
{
    struct sub_node *n = trie_get(tenant0->subs, (const uint8_t *)filter, strlen(filter));
    for (uint32_t i = 0; n && i < n->n; i++)
        if (n->v[i].s == ss)
            return &n->v[i];
    return NULL;
}

static struct session *online(struct conn *c, const char *id)
{
    struct session *ss = connect_as(c, id, true, 0, NULL, 0, NULL);
    ss->window = 16;
    return ss;
}

Test(session_subs, subscribe_indexes_and_delivers)
{
    struct out_pkt p[OUT_PKT_MAX];
    struct conn *c = conn_new();
    struct session *ss = online(c, "s1");
    bool fresh = false, existed = true;
    struct sub_req req = {.qos = 1, .subid = 5};
    cr_assert_eq(session_subscribe(&shard, ss, (const uint8_t *)"a/+", 3, &req, &fresh, &existed),
                 0);
    cr_assert(fresh, "the shard's first subscriber of the filter");
    cr_assert_not(existed);
    cr_assert(session_has_sub(ss, (const uint8_t *)"a/+", 3));
    struct sub_entry *e = entry_of(ss, "a/+");
    cr_assert_not_null(e);
    cr_assert_eq(e->qos, 1);
    cr_assert_eq(e->subid, 5);
    cr_assert_eq(tenant0->ctr.subscriptions, 1);

    publish("a/b", "hit", 1, false);
    publish("b/b", "miss", 1, false);
    cr_assert_eq(take_output(c, p), 1);
    cr_assert_eq(p[0].type, MQTT_PUBLISH);
    cr_assert_str_eq(p[0].topic, "a/b");
    cr_assert_eq(p[0].qos, 1);

    /* A second subscriber of the filter is no new interest. */
    struct conn *c2 = conn_new();
    struct session *ss2 = online(c2, "s2");
    cr_assert_eq(session_subscribe(&shard, ss2, (const uint8_t *)"a/+", 3, &req, &fresh, &existed),
                 0);
    cr_assert_not(fresh);
    conn_free(c);
    conn_free(c2);
}

/* MQTT-3.8.4-3: a repeated filter replaces the subscription's options; it
 * is still one subscription and one delivery. */
Test(session_subs, repeated_filter_replaces_options)
{
    struct out_pkt p[OUT_PKT_MAX];
    struct conn *c = conn_new();
    struct session *ss = online(c, "s1");
    bool existed = false;
    cr_assert_eq(sub_rc(ss, "t/#", 2, &existed), 0);
    cr_assert_not(existed);
    cr_assert_eq(sub_rc(ss, "t/#", 0, &existed), 0);
    cr_assert(existed);
    cr_assert_eq(ss->st.nsubs, 1);
    cr_assert_eq(ss->st.subs[0]->qos, 0);
    struct sub_node *n = trie_get(tenant0->subs, (const uint8_t *)"t/#", 3);
    cr_assert_not_null(n);
    cr_assert_eq(n->n, 1, "replaced, not added");
    cr_assert_eq(entry_of(ss, "t/#")->qos, 0);
    cr_assert_eq(tenant0->ctr.subscriptions, 1);

    publish("t/x", "once", 2, false);
    cr_assert_eq(take_output(c, p), 1);
    cr_assert_eq(p[0].qos, 0, "the new QoS");
    conn_free(c);
}

Test(session_subs, unsubscribe_removes)
{
    struct out_pkt p[OUT_PKT_MAX];
    struct conn *c = conn_new();
    struct session *ss = online(c, "s1");
    cr_assert_eq(sub_rc(ss, "u/+", 1, NULL), 0);
    cr_assert_eq(sub_rc(ss, "v", 1, NULL), 0);
    cr_assert(session_unsubscribe(&shard, ss, (const uint8_t *)"u/+", 3));
    cr_assert_not(session_unsubscribe(&shard, ss, (const uint8_t *)"u/+", 3), "gone already");
    cr_assert_not(session_has_sub(ss, (const uint8_t *)"u/+", 3));
    cr_assert_null(trie_get(tenant0->subs, (const uint8_t *)"u/+", 3), "the empty node freed");
    cr_assert_eq(ss->st.nsubs, 1);
    cr_assert_eq(tenant0->ctr.subscriptions, 1);

    publish("u/1", "gone", 1, false);
    publish("v", "kept", 1, false);
    cr_assert_eq(take_output(c, p), 1);
    cr_assert_str_eq(p[0].payload, "kept");
    conn_free(c);
}

/* MQTT-3.3.4-2: overlapping subscriptions of one session deliver one copy,
 * at the highest QoS of those that match (the broker's documented choice,
 * route.c), capped by the message's QoS. */
Test(session_subs, overlapping_deliver_once_at_highest_qos)
{
    struct out_pkt p[OUT_PKT_MAX];
    struct conn *c = conn_new();
    struct session *ss = online(c, "s1");
    cr_assert_eq(sub_rc(ss, "o/#", 0, NULL), 0);
    cr_assert_eq(sub_rc(ss, "o/+", 2, NULL), 0);
    cr_assert_eq(sub_rc(ss, "o/x", 1, NULL), 0);
    publish("o/x", "q2", 2, false);
    cr_assert_eq(take_output(c, p), 1);
    cr_assert_eq(p[0].qos, 2);
    publish("o/x", "q1", 1, false);
    cr_assert_eq(take_output(c, p), 1);
    cr_assert_eq(p[0].qos, 1);
    publish("o/y/z", "only #", 2, false);
    cr_assert_eq(take_output(c, p), 1);
    cr_assert_eq(p[0].qos, 0);
    conn_free(c);
}

/* max_subscriptions: a new filter beyond it is refused with -ENOSPC and
 * leaves nothing behind; replacing one the session holds is not a new one. */
Test(session_subs, max_subscriptions_enospc)
{
    struct conn *c = conn_new();
    struct session *ss = online(c, "s1");
    set.max_subscriptions = 2;
    cr_assert_eq(sub_rc(ss, "m/1", 1, NULL), 0);
    cr_assert_eq(sub_rc(ss, "m/2", 1, NULL), 0);
    cr_assert_eq(sub_rc(ss, "m/3", 1, NULL), -ENOSPC);
    cr_assert_eq(ss->st.nsubs, 2);
    cr_assert_null(trie_get(tenant0->subs, (const uint8_t *)"m/3", 3));
    cr_assert_eq(tenant0->ctr.subscriptions, 2);
    bool existed = false;
    cr_assert_eq(sub_rc(ss, "m/2", 2, &existed), 0);
    cr_assert(existed);
    cr_assert(session_unsubscribe(&shard, ss, (const uint8_t *)"m/1", 3));
    cr_assert_eq(sub_rc(ss, "m/3", 1, NULL), 0, "room again");
    conn_free(c);
}

/* A $share filter joins its group (not a plain entry of the filter), and
 * each message goes to one member of the group (MQTT 5.0 4.8.2). */
Test(session_subs, share_filter_joins_group)
{
    struct out_pkt p[OUT_PKT_MAX];
    struct conn *c1 = conn_new(), *c2 = conn_new();
    struct session *a = online(c1, "a"), *b = online(c2, "b");
    cr_assert_eq(sub_rc(a, "$share/g/s/+", 1, NULL), 0);
    cr_assert_eq(sub_rc(b, "$share/g/s/+", 1, NULL), 0);
    cr_assert_eq(tenant0->ctr.shared_subscriptions, 2);
    struct sub_node *n = trie_get(tenant0->subs, (const uint8_t *)"s/+", 3);
    cr_assert_not_null(n);
    cr_assert_eq(n->n, 0, "no plain subscriber of s/+");
    cr_assert_not_null(n->groups);

    for (int i = 0; i < 4; i++)
        publish("s/1", "m", 1, false);
    size_t na = take_output(c1, p), nb = take_output(c2, p);
    cr_assert_eq(na + nb, 4, "each message to exactly one member (%zu + %zu)", na, nb);

    cr_assert(session_unsubscribe(&shard, a, (const uint8_t *)"$share/g/s/+", 12));
    cr_assert_eq(tenant0->ctr.shared_subscriptions, 1);
    publish("s/1", "m", 1, false);
    cr_assert_eq(take_output(c1, p), 0);
    cr_assert_eq(take_output(c2, p), 1, "the member left gets it");
    conn_free(c1);
    conn_free(c2);
}
