/*
 * Tests for src/index/retain.c through retain.h: set, replace, get, delete,
 * count, wildcard matching with the '$' rule, destruction, and a
 * randomized comparison against a brute-force reference matcher.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "index/level.h"
#include "index/retain.h"

/* Hits of `filter`, sorted. */
static struct hits *match(const struct retain *store, const char *filter)
{
    static struct hits h;
    h.n = 0;
    retain_match(store, S(filter), hits_collect, &h);
    hits_sort(&h);
    return &h;
}

static void put(struct retain *store, const char *topic, uintptr_t value)
{
    void *old = V(0xdead);
    cr_assert_eq(retain_set(store, S(topic), V(value), &old), 0, "retain_set(%s)", topic);
    cr_assert_null(old, "%s already stored", topic);
}

#define EXPECT(store, filter, ...) HITS_EXPECT(match(store, filter), filter, __VA_ARGS__)
#define EXPECT_NONE(store, filter) hits_expect(match(store, filter), filter, NULL, 0)

Test(retain, create_destroy_empty)
{
    struct retain *store = retain_create();
    cr_assert_not_null(store);
    cr_assert_eq(retain_count(store), 0);
    cr_assert_null(retain_get(store, S("a")));
    cr_assert_null(retain_delete(store, S("a")));
    EXPECT_NONE(store, "#");
    retain_destroy(store, NULL, NULL);
    retain_destroy(NULL, NULL, NULL);
}

Test(retain, set_replace_get_delete)
{
    struct retain *store = retain_create();
    void *old = V(0xdead);
    cr_assert_eq(retain_set(store, S("a/b"), V(1), &old), 0);
    cr_assert_null(old);
    cr_assert_eq(retain_count(store), 1);
    cr_assert_eq(retain_get(store, S("a/b")), V(1));
    cr_assert_null(retain_get(store, S("a")), "an inner level holds no value");
    cr_assert_null(retain_get(store, S("a/b/c")));

    cr_assert_eq(retain_set(store, S("a/b"), V(2), &old), 0);
    cr_assert_eq(old, V(1), "replacing hands back the old value");
    cr_assert_eq(retain_count(store), 1, "replacing does not count twice");
    cr_assert_eq(retain_get(store, S("a/b")), V(2));

    put(store, "a", 3);
    cr_assert_eq(retain_count(store), 2);
    cr_assert_null(retain_delete(store, S("a/b/c")), "absent below a stored topic");
    cr_assert_null(retain_delete(store, S("x")), "absent");
    cr_assert_eq(retain_delete(store, S("a")), V(3));
    cr_assert_null(retain_delete(store, S("a")), "second delete");
    cr_assert_eq(retain_count(store), 1);
    cr_assert_eq(retain_get(store, S("a/b")), V(2), "a child survives its parent's delete");
    cr_assert_eq(retain_delete(store, S("a/b")), V(2));
    cr_assert_eq(retain_count(store), 0);
    EXPECT_NONE(store, "#");
    retain_destroy(store, NULL, NULL);
}

Test(retain, empty_levels_and_dollar_are_plain_names)
{
    struct retain *store = retain_create();
    put(store, "/", 1);
    put(store, "//", 2);
    put(store, "a//b", 3);
    put(store, "$SYS/x", 4);
    cr_assert_eq(retain_get(store, S("/")), V(1));
    cr_assert_eq(retain_get(store, S("//")), V(2));
    cr_assert_eq(retain_get(store, S("a//b")), V(3));
    cr_assert_eq(retain_get(store, S("$SYS/x")), V(4));
    cr_assert_null(retain_get(store, S("a/b")));
    EXPECT(store, "/", 1);
    EXPECT(store, "a//b", 3);
    retain_destroy(store, NULL, NULL);
}

/* MQTT-4.7.1-3: '+' matches exactly one level, the empty one included. */
Test(retain, plus_visits_every_child)
{
    struct retain *store = retain_create();
    put(store, "sport/tennis/player1", 1);
    put(store, "sport/tennis/player2", 2);
    put(store, "sport/tennis/player1/ranking", 3);
    put(store, "sport/tennis/", 4);
    put(store, "sport/golf/player1", 5);
    put(store, "/finance", 6);
    put(store, "sport", 7);
    EXPECT(store, "sport/tennis/+", 1, 2, 4);
    EXPECT(store, "sport/+/player1", 1, 5);
    EXPECT(store, "+/+/+/+", 3);
    EXPECT(store, "+/+", 6);
    EXPECT(store, "/+", 6);
    EXPECT(store, "+", 7);
    EXPECT_NONE(store, "sport/+");
    EXPECT_NONE(store, "+/tennis");
    retain_destroy(store, NULL, NULL);
}

/* MQTT-4.7.1-2: '#' matches the parent level and everything below. */
Test(retain, pound_visits_subtree_and_parent)
{
    struct retain *store = retain_create();
    put(store, "sport/tennis/player1", 1);
    put(store, "sport/tennis/player1/ranking", 2);
    put(store, "sport/tennis/player1/score/wimbledon", 3);
    put(store, "sport", 4);
    put(store, "sports", 5);
    put(store, "a/b", 6);
    EXPECT(store, "sport/tennis/player1/#", 1, 2, 3);
    EXPECT(store, "sport/#", 1, 2, 3, 4);
    EXPECT(store, "#", 1, 2, 3, 4, 5, 6);
    EXPECT(store, "+/#", 1, 2, 3, 4, 5, 6);
    EXPECT(store, "+/tennis/#", 1, 2, 3);
    EXPECT(store, "a/b/#", 6);
    EXPECT_NONE(store, "a/b/c/#");
    EXPECT_NONE(store, "x/#");
    retain_destroy(store, NULL, NULL);
}

/* MQTT-4.7.2-1: a first-level wildcard does not match topics starting with
 * '$'; an explicit first level does, and deeper wildcards then apply. */
Test(retain, dollar_topics_mqtt_4_7_2_1)
{
    struct retain *store = retain_create();
    put(store, "$SYS/monitor/Clients", 1);
    put(store, "$SYS", 2);
    put(store, "x/monitor/Clients", 3);
    put(store, "a/$b", 4);
    put(store, "$", 5);
    EXPECT(store, "#", 3, 4);
    EXPECT(store, "+/monitor/Clients", 3);
    EXPECT_NONE(store, "+");
    EXPECT(store, "$SYS/#", 1, 2);
    EXPECT(store, "$SYS/monitor/+", 1);
    EXPECT(store, "$SYS/+/Clients", 1);
    EXPECT(store, "a/+", 4);
    EXPECT(store, "$", 5);
    EXPECT(store, "$/#", 5);
    retain_destroy(store, NULL, NULL);
}

Test(retain, match_reports_each_topic_once)
{
    struct retain *store = retain_create();
    put(store, "a", 1);
    put(store, "a/b", 2);
    put(store, "a/b/c", 3);
    put(store, "b", 4);
    /* Several paths of the filter could reach "a/b/c" only if the walk
     * were wrong; each stored topic is one node. */
    EXPECT(store, "a/#", 1, 2, 3);
    EXPECT(store, "+/+/#", 2, 3);
    EXPECT(store, "+/#", 1, 2, 3, 4);
    retain_destroy(store, NULL, NULL);
}

Test(retain, destroy_frees_every_value_once)
{
    struct retain *store = retain_create();
    static const char *topics[] = {"a", "a/b", "a/b/c", "$SYS/x", "/", "b//c", "zz"};
    enum { N = sizeof(topics) / sizeof(topics[0]) };
    void *old;
    for (size_t i = 0; i < N; i++) {
        void *v = malloc(16);
        cr_assert_not_null(v);
        cr_assert_eq(retain_set(store, S(topics[i]), v, &old), 0);
    }
    /* A replaced value goes back to the caller, not to free_value. */
    void *v = malloc(16);
    cr_assert_eq(retain_set(store, S("a"), v, &old), 0);
    cr_assert_not_null(old);
    free(old);
    size_t freed = 0;
    retain_destroy(store, free_counted, &freed);
    cr_assert_eq(freed, N);
}

/* Many siblings (tables grow, then shrink) and deep chains: after deleting
 * them all, memory returns to (nearly) where it was: inner levels left
 * without values or children were pruned. Under ASan the allocator is not
 * glibc's, mallinfo2 does not move, and the test skips. */
Test(retain, delete_prunes_and_tables_shrink)
{
    struct retain *store = retain_create();
    /* The store borrows each topic while its value is stored. */
    static char keep[2000][32], deep[2000][32];
    void *old;
    for (int i = 0; i < 2000; i++) {
        snprintf(keep[i], sizeof(keep[i]), "keep/%d", i);
        snprintf(deep[i], sizeof(deep[i]), "t%d/deep/er/still", i);
    }
    put(store, "keep", 1);
    size_t before = heap_in_use();
    /* No Criterion assertion between the measurements: they allocate. */
    size_t wrong = 0;
    for (int i = 0; i < 2000; i++) {
        wrong += retain_set(store, S(keep[i]), V(10 + i), &old) != 0;
        wrong += retain_set(store, S(deep[i]), V(10000 + i), &old) != 0;
    }
    size_t during = heap_in_use();
    size_t count = retain_count(store);
    for (int i = 0; i < 2000; i++) {
        wrong += retain_delete(store, S(keep[i])) != V(10 + i);
        wrong += retain_delete(store, S(deep[i])) != V(10000 + i);
    }
    size_t after = heap_in_use();
    cr_assert_eq(wrong, 0);
    cr_assert_eq(count, 4001);
    cr_assert_eq(retain_count(store), 1);
    EXPECT(store, "#", 1);
    if (during == before) {
        retain_destroy(store, NULL, NULL);
        cr_skip_test("mallinfo2 does not see this allocator");
    }
    /* Freed chunks parked in glibc's per-thread cache still count as in
     * use, so allow a little. */
    cr_assert_lt((ssize_t)(after - before) * 16, (ssize_t)(during - before),
                 "left behind %zd of %zd bytes", (ssize_t)(after - before),
                 (ssize_t)(during - before));
    retain_destroy(store, NULL, NULL);
}

Test(retain, many_siblings_all_found)
{
    struct retain *store = retain_create();
    static char topics[5000][16]; /* borrowed by the store */
    char buf[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(topics[i], sizeof(topics[i]), "s/%d", i);
        put(store, topics[i], i + 1);
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(buf, sizeof(buf), "s/%d", i);
        cr_assert_eq(retain_get(store, S(buf)), V(i + 1));
    }
    struct hits *h = match(store, "s/+");
    cr_assert_eq(h->n, 5000);
    /* Delete every other one: backward-shift deletion must keep the rest
     * reachable. */
    for (int i = 0; i < 5000; i += 2) {
        snprintf(buf, sizeof(buf), "s/%d", i);
        cr_assert_eq(retain_delete(store, S(buf)), V(i + 1));
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(buf, sizeof(buf), "s/%d", i);
        cr_assert_eq(retain_get(store, S(buf)), i % 2 ? V(i + 1) : NULL, "%s", buf);
    }
    h = match(store, "s/#");
    cr_assert_eq(h->n, 2500);
    for (size_t i = 0; i < h->n; i++)
        cr_assert_eq(h->v[i], 2 * (i + 1));
    cr_assert_eq(retain_count(store), 2500);
    retain_destroy(store, NULL, NULL);
}

/* A 65535-byte topic of empty levels, 65536 deep: matching and deleting
 * must not recurse per level. */
Test(retain, very_deep_topic)
{
    enum { LEN = 65535 };
    uint8_t *topic = malloc(LEN), *filter = malloc(LEN);
    cr_assert(topic && filter);
    memset(topic, '/', LEN);
    void *old;
    struct retain *store = retain_create();
    cr_assert_eq(retain_set(store, topic, LEN, V(1), &old), 0);
    cr_assert_eq(retain_set(store, topic, 10, V(2), &old), 0);
    cr_assert_eq(retain_get(store, topic, LEN), V(1));
    struct hits h = {0};
    retain_match(store, S("#"), hits_collect, &h);
    cr_assert_eq(h.n, 2);
    /* "+/+/.../+" of 32768 levels matches neither stored topic. */
    for (size_t i = 0; i < LEN; i++)
        filter[i] = i % 2 ? '/' : '+';
    h.n = 0;
    retain_match(store, filter, LEN, hits_collect, &h);
    cr_assert_eq(h.n, 0);
    /* The 11-level one: "+/" x 10 then "+". */
    h.n = 0;
    retain_match(store, filter, 21, hits_collect, &h);
    cr_assert_eq(h.n, 1);
    cr_assert_eq(h.v[0], 2);
    cr_assert_eq(retain_delete(store, topic, LEN), V(1));
    cr_assert_eq(retain_get(store, topic, 10), V(2));
    cr_assert_eq(retain_count(store), 1);
    cr_assert_eq(retain_set(store, topic, LEN, V(1), &old), 0);
    retain_destroy(store, NULL, NULL);
    free(topic);
    free(filter);
}

static char rand_topics[RAND_TOPICS][NAME_CAP];
static bool rand_stored[RAND_TOPICS];

static void check_against_reference(const struct retain *store)
{
    static unsigned seen[RAND_TOPICS];
    char filter[NAME_CAP];
    for (int f = 0; f < RAND_FILTERS; f++) {
        gen_filter(filter, sizeof(filter));
        struct hits *h = match(store, filter);
        memset(seen, 0, sizeof(seen));
        for (size_t i = 0; i < h->n; i++) {
            cr_assert(h->v[i] >= 1 && h->v[i] <= RAND_TOPICS);
            seen[h->v[i] - 1]++;
        }
        for (size_t i = 0; i < RAND_TOPICS; i++) {
            unsigned want = rand_stored[i] && ref_matches(filter, rand_topics[i]);
            cr_assert_eq(seen[i], want, "filter %s topic %s: %u calls, want %u", filter,
                         rand_topics[i], seen[i], want);
        }
    }
}

Test(retain, randomized_against_reference)
{
    rng_seed(0x2545f4914f6cdd1dull);
    struct retain *store = retain_create();
    size_t stored = 0;
    for (size_t i = 0; i < RAND_TOPICS; i++) {
        gen_topic(rand_topics[i], NAME_CAP);
        /* Duplicates keep the first. */
        rand_stored[i] = retain_get(store, S(rand_topics[i])) == NULL;
        if (rand_stored[i]) {
            put(store, rand_topics[i], i + 1);
            stored++;
        }
    }
    cr_assert_eq(retain_count(store), stored);
    check_against_reference(store);

    for (size_t i = 0; i < RAND_TOPICS; i++) {
        if (!rand_stored[i] || rng(2))
            continue;
        cr_assert_eq(retain_delete(store, S(rand_topics[i])), V(i + 1), "%s", rand_topics[i]);
        rand_stored[i] = false;
        stored--;
    }
    cr_assert_eq(retain_count(store), stored);
    check_against_reference(store);
    retain_destroy(store, NULL, NULL);
}

/* What one level node costs in retain_index_bytes: what a first one-level
 * topic would add. */
static size_t node_cost(void)
{
    struct retain *store = retain_create();
    size_t cost = retain_index_growth(store, S("a"));
    retain_destroy(store, NULL, NULL);
    return cost;
}

/* retain_index_bytes counts the index's nodes (one per distinct level
 * prefix), retain_index_growth the ones a topic would add. */
Test(retain, index_bytes_count_levels_not_topic_bytes)
{
    size_t node = node_cost();
    cr_assert_gt(node, 0);
    struct retain *store = retain_create();
    cr_assert_eq(retain_index_bytes(store), 0);
    cr_assert_eq(retain_index_growth(store, S("a/b/c")), 3 * node);
    cr_assert_eq(retain_index_growth(store, S("x//")), 3 * node, "empty levels are levels");
    put(store, "a/b/c", 1);
    cr_assert_eq(retain_index_bytes(store), 3 * node);
    cr_assert_eq(retain_index_growth(store, S("a/b/c")), 0);
    cr_assert_eq(retain_index_growth(store, S("a/b")), 0, "an inner level exists already");
    cr_assert_eq(retain_index_growth(store, S("a/b/d")), node);
    cr_assert_eq(retain_index_growth(store, S("a/b/c/d/e")), 2 * node);
    put(store, "a/b/d", 2);
    put(store, "a", 3);
    cr_assert_eq(retain_index_bytes(store), 4 * node);
    /* A long level costs a node like a short one: its bytes are the
     * value's, borrowed. */
    static char longer[4001];
    memset(longer, 'x', sizeof(longer) - 1);
    cr_assert_eq(retain_index_growth(store, S(longer)), node);
    cr_assert_eq(retain_delete(store, S("a/b/c")), V(1));
    cr_assert_eq(retain_index_bytes(store), 3 * node);
    cr_assert_eq(retain_delete(store, S("a")), V(3));
    cr_assert_eq(retain_index_bytes(store), 3 * node, "a/b/d still needs a");
    cr_assert_eq(retain_delete(store, S("a/b/d")), V(2));
    cr_assert_eq(retain_index_bytes(store), 0);
    retain_destroy(store, NULL, NULL);
}

/* A value as the broker stores one: it owns the topic bytes the store
 * borrows (a message and its topic). */
static char *owned_topic(const char *topic)
{
    char *t = strdup(topic);
    cr_assert_not_null(t);
    return t;
}

/* Scribble over a value's topic before freeing it, so that a name still
 * pointing there no longer matches (and under ASan, is a use after free). */
static void owned_release(char *t)
{
    memset(t, 'Z', strlen(t));
    free(t);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Index nodes the stored topics need: their distinct level prefixes. */
static size_t prefixes_of(char *const *stored, size_t n)
{
    static char pre[RAND_TOPICS * 6][NAME_CAP];
    static char *v[RAND_TOPICS * 6];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *t = stored[i];
        for (size_t j = 0;; j++) {
            if (t[j] == '/' || t[j] == '\0') {
                memcpy(pre[k], t, j);
                pre[k][j] = '\0';
                v[k] = pre[k];
                k++;
            }
            if (t[j] == '\0')
                break;
        }
    }
    qsort(v, k, sizeof(v[0]), cmp_str);
    size_t distinct = 0;
    for (size_t i = 0; i < k; i++)
        distinct += i == 0 || strcmp(v[i], v[i - 1]) != 0;
    return distinct;
}

/* One random change to one of rand_topics[0..u): a set with its own new
 * copy of the topic (new, or replacing), or a delete (as a clear or an
 * expiry). held[i] is topic i's stored value (every i of the same topic
 * shares one), checked against what the store hands back and kept; the
 * value that went is scribbled over and freed. */
static void random_change(struct retain *store, char **held, size_t u)
{
    size_t i = rng((uint32_t)u);
    char *v = NULL;
    void *old = NULL;
    if (rng(3) == 0) {
        old = retain_delete(store, S(rand_topics[i]));
    } else {
        v = owned_topic(rand_topics[i]);
        cr_assert_eq(retain_set(store, S(v), v, &old), 0);
    }
    cr_assert_eq(old, held[i], "%s", rand_topics[i]);
    for (size_t j = 0; j < u; j++)
        if (strcmp(rand_topics[j], rand_topics[i]) == 0)
            held[j] = v;
    if (old)
        owned_release(old);
}

/*
 * The store keeps no copy of a topic: it points into the topics of its
 * values. Replacing a value by one with its own copy of the topic, or
 * deleting it, and then destroying the old copy must leave every other
 * topic findable and matchable: the names that pointed into the old copy
 * moved (to the new copy, or to a sibling's topic). Random sets, replaces
 * and deletes over topics with shared prefixes, checked against the
 * reference matcher and the node count.
 */
Test(retain, borrowed_topics_move_when_their_value_goes)
{
    /* Topic i's stored value, or NULL; the topics repeat, so every i with
     * the same topic shares one. */
    static char *held[RAND_TOPICS];
    rng_seed(0x2545f4914f6cdd1dull);
    size_t node = node_cost();
    struct retain *store = retain_create();
    for (size_t i = 0; i < RAND_TOPICS; i++) {
        gen_topic(rand_topics[i], NAME_CAP);
        held[i] = NULL;
    }
    for (int op = 0; op < 30000; op++)
        random_change(store, held, RAND_TOPICS);
    /* Every stored topic is found with its value, and matched as the
     * reference matcher says. */
    static char *stored[RAND_TOPICS];
    size_t n = 0;
    for (size_t i = 0; i < RAND_TOPICS; i++) {
        cr_assert_eq(retain_get(store, S(rand_topics[i])), held[i], "%s", rand_topics[i]);
        bool first = held[i] != NULL;
        for (size_t k = 0; k < n && first; k++)
            first = stored[k] != held[i];
        if (first)
            stored[n++] = held[i];
    }
    cr_assert_eq(retain_count(store), n);
    cr_assert_eq(retain_index_bytes(store), prefixes_of(stored, n) * node);
    char filter[NAME_CAP];
    for (int f = 0; f < 500; f++) {
        gen_filter(filter, sizeof(filter));
        size_t want = 0;
        for (size_t k = 0; k < n; k++)
            want += ref_matches(filter, stored[k]);
        cr_assert_eq(match(store, filter)->n, want, "filter %s", filter);
    }
    for (size_t k = 0; k < n; k++)
        owned_release(retain_delete(store, S(stored[k])));
    cr_assert_eq(retain_index_bytes(store), 0);
    retain_destroy(store, NULL, NULL);
}

/* ---- the topic order (retain_seek, retain_next) ------------------------------------ */

/* Read the order from `key` (NULL: from the first, "") into out (the topics
 * as strings); their count. Each topic read is its value's own. */
static size_t read_order(const struct retain *store, const char *key, bool strict, char **out,
                         size_t cap)
{
    struct retain_iter it;
    const uint8_t *t;
    size_t tl, n = 0;
    void *v = retain_seek(&it, store, S(key ? key : ""), key && strict, &t, &tl);
    for (; v; v = retain_next(&it, &t, &tl)) {
        cr_assert_lt(n, cap);
        cr_assert_eq(tl, strlen(v), "topic length of %s", (char *)v);
        cr_assert(memcmp(t, v, tl) == 0, "topic %.*s for the value of %s", (int)tl, t, (char *)v);
        out[n++] = v;
    }
    cr_assert_null(retain_next(&it, &t, &tl), "the end stays the end");
    return n;
}

/* Byte order, a prefix first ("a" before "a/" before "a/b"), '$' and
 * empty levels as plain bytes, 0x80.. after ASCII; seeks strict and not,
 * from stored topics and others. */
Test(retain, order_is_bytes_with_prefix_first)
{
    static const char *const want[] = {"$SYS/x", "/",     "/a", "a", "a/",
                                       "a/b",    "a/b/c", "ab", "b", "\xc3\xa9"};
    enum { N = sizeof(want) / sizeof(want[0]) };
    static const int order[N] = {6, 2, 9, 0, 4, 8, 1, 7, 3, 5};
    struct retain *store = retain_create();
    char *v[N];
    for (int i = 0; i < N; i++) {
        v[order[i]] = owned_topic(want[order[i]]);
        void *old;
        cr_assert_eq(retain_set(store, S(v[order[i]]), v[order[i]], &old), 0);
    }
    cr_assert(retain_valid(store));
    char *got[N + 1];
    cr_assert_eq(read_order(store, NULL, false, got, N + 1), N);
    for (int i = 0; i < N; i++)
        cr_assert_str_eq(got[i], want[i], "position %d", i);
    cr_assert_eq(read_order(store, "a/", false, got, N), N - 4);
    cr_assert_str_eq(got[0], "a/");
    cr_assert_eq(read_order(store, "a/", true, got, N), N - 5);
    cr_assert_str_eq(got[0], "a/b");
    cr_assert_eq(read_order(store, "a/a", false, got, N), N - 5, "absent: the next one");
    cr_assert_eq(read_order(store, "%", false, got, N), N - 1, "past every '$' topic");
    cr_assert_str_eq(got[0], "/");
    cr_assert_eq(read_order(store, "\xff", true, got, N), 0);
    for (int i = 0; i < N; i++)
        owned_release(retain_delete(store, S(want[i])));
    cr_assert(retain_valid(store));
    cr_assert_eq(read_order(store, NULL, false, got, N), 0);
    retain_destroy(store, NULL, NULL);
}

/* The stored topics, sorted and each once, against the order read from a
 * random one of rand_topics (strict or not). */
static void check_order(const struct retain *store, char **held, size_t u)
{
    static char *ref[RAND_TOPICS], *got[RAND_TOPICS + 1];
    size_t n = 0;
    for (size_t i = 0; i < u; i++) {
        bool first = held[i] != NULL;
        for (size_t k = 0; k < n && first; k++)
            first = ref[k] != held[i];
        if (first)
            ref[n++] = held[i];
    }
    qsort(ref, n, sizeof(ref[0]), cmp_str);
    cr_assert(retain_valid(store), "the order is broken");
    const char *key = rand_topics[rng((uint32_t)u)];
    bool strict = rng(2);
    size_t from = 0;
    while (from < n && (strcmp(ref[from], key) < 0 || (strict && !strcmp(ref[from], key))))
        from++;
    size_t got_n = read_order(store, key, strict, got, RAND_TOPICS + 1);
    cr_assert_eq(got_n, n - from, "from %s%s: %zu topics, want %zu", key, strict ? " (strict)" : "",
                 got_n, n - from);
    for (size_t k = 0; k < got_n; k++)
        cr_assert_eq(got[k], ref[from + k], "from %s: position %zu is %s, want %s", key, k, got[k],
                     ref[from + k]);
}

/*
 * Random sets (new topics), replaces (another copy of a stored topic: it
 * keeps its place, and the old copy is scribbled over and freed) and
 * deletes (as a clear or an expiry does) keep the order right: a valid
 * tree of exactly the stored topics, read forward from any seek in byte
 * order, each topic its value's own (under ASan, a node still reading a
 * freed copy is a use after free).
 */
Test(retain, order_follows_set_replace_delete)
{
    static char *held[RAND_TOPICS];
    enum { U = 600 };
    rng_seed(0x9e3779b97f4a7c15ull);
    struct retain *store = retain_create();
    for (size_t i = 0; i < U; i++) {
        gen_topic(rand_topics[i], NAME_CAP);
        held[i] = NULL;
    }
    for (int op = 0; op < 20000; op++) {
        random_change(store, held, U);
        if (op % 97 == 0)
            check_order(store, held, U);
    }
    check_order(store, held, U);
    for (size_t i = 0; i < U; i++)
        if (held[i]) {
            char *v = held[i];
            owned_release(retain_delete(store, S(rand_topics[i])));
            for (size_t j = i; j < U; j++)
                if (held[j] == v)
                    held[j] = NULL;
        }
    cr_assert_eq(retain_count(store), 0);
    cr_assert(retain_valid(store));
    retain_destroy(store, NULL, NULL);
}

/* The order lives in the words a trie node spends on its wildcard
 * children: an index node is no bigger for it (six pointers and four
 * 32-bit fields, as before), so a stored topic costs no byte more. */
Test(retain, order_costs_no_byte_per_topic)
{
    cr_assert_eq(sizeof(struct level_node), 6 * sizeof(void *) + 16);
    cr_assert_eq(sizeof(struct avl_node), 2 * sizeof(void *));
}
