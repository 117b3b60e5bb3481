/*
 * Tests for src/index/trie.c through trie.h: exact, '+', '#' and '$'
 * matching, one callback per matching filter, slots, removal and pruning,
 * and a randomized comparison against a brute-force reference matcher.
 */
#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "index/trie.h"

/* Hits of `topic`, sorted. */
static struct hits *match(const struct trie *trie, const char *topic)
{
    static struct hits h;
    h.n = 0;
    trie_match(trie, S(topic), hits_collect, &h);
    hits_sort(&h);
    return &h;
}

static void put(struct trie *trie, const char *filter, uintptr_t value)
{
    void **slot = trie_slot(trie, S(filter));
    cr_assert_not_null(slot, "trie_slot(%s)", filter);
    cr_assert_null(*slot, "%s already stored", filter);
    *slot = V(value);
}

#define EXPECT(trie, topic, ...) HITS_EXPECT(match(trie, topic), topic, __VA_ARGS__)
#define EXPECT_NONE(trie, topic) hits_expect(match(trie, topic), topic, NULL, 0)

Test(trie, reference_matcher_sanity)
{
    cr_assert(ref_matches("a/#", "a"));
    cr_assert(ref_matches("+/+", "/finance"));
    cr_assert(!ref_matches("+", "/finance"));
    cr_assert(!ref_matches("#", "$SYS/x"));
    cr_assert(ref_matches("a/+/c", "a//c"));
    cr_assert(!ref_matches("a/+", "a"));
    cr_assert(!ref_matches("a/b", "a/b/c"));
}

Test(trie, create_destroy_empty)
{
    struct trie *trie = trie_create();
    cr_assert_not_null(trie);
    cr_assert_eq(trie_count(trie), 0);
    cr_assert_null(trie_get(trie, S("a")));
    cr_assert_null(trie_remove(trie, S("a")));
    EXPECT_NONE(trie, "a");
    trie_destroy(trie, NULL, NULL);
    trie_destroy(NULL, NULL, NULL);
}

Test(trie, exact_levels)
{
    struct trie *trie = trie_create();
    put(trie, "a/b/c", 1);
    put(trie, "a/b", 2);
    put(trie, "a/bc", 3);
    EXPECT(trie, "a/b/c", 1);
    EXPECT(trie, "a/b", 2);
    EXPECT(trie, "a/bc", 3);
    EXPECT_NONE(trie, "a");
    EXPECT_NONE(trie, "a/b/c/d");
    EXPECT_NONE(trie, "a/b/");
    EXPECT_NONE(trie, "A/b");
    EXPECT_NONE(trie, "/a/b");
    trie_destroy(trie, NULL, NULL);
}

Test(trie, empty_levels_are_levels)
{
    struct trie *trie = trie_create();
    put(trie, "/", 1);
    put(trie, "a//b", 2);
    put(trie, "/a", 3);
    EXPECT(trie, "/", 1);
    EXPECT(trie, "a//b", 2);
    EXPECT(trie, "/a", 3);
    EXPECT_NONE(trie, "a/b");
    EXPECT_NONE(trie, "//");
    trie_destroy(trie, NULL, NULL);
}

/* MQTT-4.7.1-3: '+' matches exactly one level, the empty one included. */
Test(trie, plus_matches_one_level)
{
    struct trie *trie = trie_create();
    put(trie, "sport/tennis/+", 1);
    put(trie, "+/+", 2);
    put(trie, "/+", 3);
    put(trie, "+", 4);
    EXPECT(trie, "sport/tennis/player1", 1);
    EXPECT(trie, "sport/tennis/", 1);
    EXPECT_NONE(trie, "sport/tennis/player1/ranking");
    EXPECT(trie, "sport/tennis", 2);
    /* The specification's examples: "+/+" and "/+" match "/finance", "+"
     * does not. */
    EXPECT(trie, "/finance", 2, 3);
    EXPECT(trie, "sport", 4);
    EXPECT(trie, "/", 2, 3);
    trie_destroy(trie, NULL, NULL);
}

/* MQTT-4.7.1-2: '#' matches the parent and any number of child levels. */
Test(trie, pound_matches_parent_and_below)
{
    struct trie *trie = trie_create();
    put(trie, "sport/tennis/player1/#", 1);
    put(trie, "a/#", 2);
    put(trie, "+/#", 3);
    EXPECT(trie, "sport/tennis/player1", 1, 3);
    EXPECT(trie, "sport/tennis/player1/ranking", 1, 3);
    EXPECT(trie, "sport/tennis/player1/score/wimbledon", 1, 3);
    EXPECT(trie, "sport/tennis", 3);
    EXPECT(trie, "a", 2, 3);
    EXPECT(trie, "a/b/c", 2, 3);
    EXPECT(trie, "a/", 2, 3);
    EXPECT(trie, "ab", 3);
    trie_destroy(trie, NULL, NULL);
}

Test(trie, pound_alone_matches_everything_but_dollar)
{
    struct trie *trie = trie_create();
    put(trie, "#", 1);
    EXPECT(trie, "a", 1);
    EXPECT(trie, "/", 1);
    EXPECT(trie, "a/b/c/d/e", 1);
    EXPECT(trie, "x$", 1);
    EXPECT_NONE(trie, "$SYS");
    EXPECT_NONE(trie, "$SYS/broker/uptime");
    trie_destroy(trie, NULL, NULL);
}

/* MQTT-4.7.2-1: a topic starting with '$' is not matched by a first-level
 * wildcard, but is by an explicit first level; deeper wildcards apply. */
Test(trie, dollar_topics_mqtt_4_7_2_1)
{
    struct trie *trie = trie_create();
    put(trie, "#", 1);
    put(trie, "+/monitor/Clients", 2);
    put(trie, "$SYS/#", 3);
    put(trie, "$SYS/monitor/+", 4);
    put(trie, "+/#", 5);
    put(trie, "a/+", 6);
    EXPECT(trie, "$SYS/monitor/Clients", 3, 4);
    EXPECT(trie, "$SYS", 3);
    EXPECT(trie, "x/monitor/Clients", 1, 2, 5);
    EXPECT(trie, "a/$b", 1, 5, 6);
    trie_destroy(trie, NULL, NULL);
}

Test(trie, every_matching_filter_reported_exactly_once)
{
    static const char *filters[] = {"#",   "a/#",   "a/+",   "+/b",   "a/b", "+/+",
                                    "+/#", "a/b/#", "+/+/#", "a/b/c", "+",   "b/#"};
    enum { N = sizeof(filters) / sizeof(filters[0]) };
    struct trie *trie = trie_create();
    for (size_t i = 0; i < N; i++)
        put(trie, filters[i], i + 1);
    cr_assert_eq(trie_count(trie), N);
    /* "a/b": every filter but "a/b/c", "+" and "b/#", "+/+/#" matches
     * via its '#' parent rule. */
    EXPECT(trie, "a/b", 1, 2, 3, 4, 5, 6, 7, 8, 9);
    trie_destroy(trie, NULL, NULL);
}

Test(trie, slot_is_stable_and_get_finds_exact_filter)
{
    struct trie *trie = trie_create();
    void **slot = trie_slot(trie, S("a/+/#"));
    cr_assert_not_null(slot);
    cr_assert_null(*slot, "a new node has an empty slot");
    *slot = V(7);
    cr_assert_eq(trie_slot(trie, S("a/+/#")), slot);
    cr_assert_eq(trie_get(trie, S("a/+/#")), V(7));
    /* trie_get is exact: wildcards in the query are levels, not patterns. */
    cr_assert_null(trie_get(trie, S("a/x/#")));
    cr_assert_null(trie_get(trie, S("a/+")));
    cr_assert_null(trie_get(trie, S("a")));
    /* Growing the tables beside it must not move the slot. */
    char buf[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(buf, sizeof(buf), "a/%d", i);
        put(trie, buf, 100 + i);
    }
    cr_assert_eq(trie_slot(trie, S("a/+/#")), slot);
    cr_assert_eq(*slot, V(7));
    cr_assert_eq(trie_count(trie), 1001);
    trie_destroy(trie, NULL, NULL);
}

Test(trie, count_ignores_empty_slots)
{
    struct trie *trie = trie_create();
    cr_assert_not_null(trie_slot(trie, S("a/b")));
    cr_assert_eq(trie_count(trie), 0);
    EXPECT_NONE(trie, "a/b");
    cr_assert_null(trie_remove(trie, S("a/b")));
    cr_assert_eq(trie_count(trie), 0);
    trie_destroy(trie, NULL, NULL);
}

Test(trie, remove_returns_value_and_keeps_others)
{
    struct trie *trie = trie_create();
    put(trie, "a", 1);
    put(trie, "a/b", 2);
    put(trie, "a/b/c", 3);
    put(trie, "a/+", 4);
    put(trie, "a/#", 5);
    cr_assert_null(trie_remove(trie, S("a/b/c/d")), "absent filter");
    cr_assert_null(trie_remove(trie, S("x")), "absent filter");
    cr_assert_eq(trie_remove(trie, S("a/b")), V(2));
    cr_assert_null(trie_remove(trie, S("a/b")), "second removal");
    cr_assert_eq(trie_get(trie, S("a/b/c")), V(3));
    EXPECT(trie, "a/b", 4, 5);
    EXPECT(trie, "a/b/c", 3, 5);
    cr_assert_eq(trie_remove(trie, S("a")), V(1));
    EXPECT(trie, "a", 5);
    cr_assert_eq(trie_remove(trie, S("a/#")), V(5));
    cr_assert_eq(trie_remove(trie, S("a/+")), V(4));
    EXPECT_NONE(trie, "a/b");
    EXPECT(trie, "a/b/c", 3);
    cr_assert_eq(trie_count(trie), 1);
    cr_assert_eq(trie_remove(trie, S("a/b/c")), V(3));
    cr_assert_eq(trie_count(trie), 0);
    EXPECT_NONE(trie, "a/b/c");
    trie_destroy(trie, NULL, NULL);
}

/* Pruning: memory after adding and removing filters returns to (nearly)
 * where it was. Under ASan the allocator is not glibc's, mallinfo2 does not move,
 * and the test skips. */
Test(trie, remove_prunes_empty_nodes)
{
    struct trie *trie = trie_create();
    char buf[64];
    put(trie, "keep/me", 1);
    size_t before = heap_in_use();
    /* No Criterion assertion between the measurements: they allocate. */
    size_t wrong = 0;
    for (int i = 0; i < 500; i++) {
        snprintf(buf, sizeof(buf), "keep/%d/x/+/y/#", i);
        void **slot = trie_slot(trie, S(buf));
        wrong += !slot || (*slot = V(10 + i), false);
        snprintf(buf, sizeof(buf), "n%d/deep/er/still", i);
        slot = trie_slot(trie, S(buf));
        wrong += !slot || (*slot = V(1000 + i), false);
    }
    size_t during = heap_in_use();
    if (during == before && !wrong) {
        trie_destroy(trie, NULL, NULL);
        cr_skip_test("mallinfo2 does not see this allocator");
    }
    for (int i = 0; i < 500; i++) {
        snprintf(buf, sizeof(buf), "keep/%d/x/+/y/#", i);
        wrong += trie_remove(trie, S(buf)) != V(10 + i);
        snprintf(buf, sizeof(buf), "n%d/deep/er/still", i);
        wrong += trie_remove(trie, S(buf)) != V(1000 + i);
    }
    size_t after = heap_in_use();
    cr_assert_eq(wrong, 0);
    /* Freed chunks parked in glibc's per-thread cache still count as in
     * use, so allow a little: one unpruned node per filter would be far
     * more than this. */
    cr_assert_lt((ssize_t)(after - before) * 16, (ssize_t)(during - before),
                 "left behind %zd of %zd bytes", (ssize_t)(after - before),
                 (ssize_t)(during - before));
    cr_assert_eq(trie_count(trie), 1);
    EXPECT(trie, "keep/me", 1);
    trie_destroy(trie, NULL, NULL);
}

Test(trie, destroy_frees_every_value_once)
{
    struct trie *trie = trie_create();
    static const char *filters[] = {"#", "a", "a/b", "a/+", "a/#", "+/+/+", "$SYS/#", "/"};
    enum { N = sizeof(filters) / sizeof(filters[0]) };
    for (size_t i = 0; i < N; i++) {
        void **slot = trie_slot(trie, S(filters[i]));
        cr_assert_not_null(slot);
        *slot = malloc(16);
        cr_assert_not_null(*slot);
    }
    /* An empty slot is not a value and must not be passed to free_value. */
    cr_assert_not_null(trie_slot(trie, S("empty/slot")));
    size_t freed = 0;
    trie_destroy(trie, free_counted, &freed);
    cr_assert_eq(freed, N);
}

/* A 65535-byte filter of '+' levels, 32768 deep: matching, counting,
 * removing and destroying must not recurse per level. */
Test(trie, very_deep_filter)
{
    enum { LEN = 65535 };
    uint8_t *filter = malloc(LEN), *topic = malloc(LEN);
    cr_assert(filter && topic);
    for (size_t i = 0; i < LEN; i++) {
        filter[i] = i % 2 ? '/' : '+';
        topic[i] = '/';
    }
    struct trie *trie = trie_create();
    void **slot = trie_slot(trie, filter, LEN);
    cr_assert_not_null(slot);
    *slot = V(1);
    put(trie, "#", 2);
    struct hits h = {0};
    /* 32768 empty levels: 32767 slashes. */
    trie_match(trie, topic, LEN / 2, hits_collect, &h);
    hits_sort(&h);
    cr_assert_eq(h.n, 2);
    cr_assert_eq(h.v[0], 1);
    cr_assert_eq(h.v[1], 2);
    h.n = 0;
    trie_match(trie, topic, LEN / 2 - 1, hits_collect, &h);
    cr_assert_eq(h.n, 1, "one level short matches only '#'");
    cr_assert_eq(trie_count(trie), 2);
    cr_assert_eq(trie_remove(trie, filter, LEN), V(1));
    cr_assert_eq(trie_count(trie), 1);
    *trie_slot(trie, filter, LEN) = V(1);
    trie_destroy(trie, NULL, NULL);
    free(filter);
    free(topic);
}

static char rand_filters[RAND_FILTERS][NAME_CAP];
static bool rand_stored[RAND_FILTERS];

static void check_against_reference(const struct trie *trie, size_t nfilters)
{
    static unsigned seen[RAND_FILTERS];
    char topic[NAME_CAP];
    for (int t = 0; t < RAND_TOPICS; t++) {
        gen_topic(topic, sizeof(topic));
        struct hits *h = match(trie, topic);
        memset(seen, 0, sizeof(seen));
        for (size_t i = 0; i < h->n; i++) {
            cr_assert(h->v[i] >= 1 && h->v[i] <= nfilters);
            seen[h->v[i] - 1]++;
        }
        for (size_t i = 0; i < nfilters; i++) {
            unsigned want = rand_stored[i] && ref_matches(rand_filters[i], topic);
            cr_assert_eq(seen[i], want, "filter %s topic %s: %u calls, want %u", rand_filters[i],
                         topic, seen[i], want);
        }
    }
}

Test(trie, randomized_against_reference)
{
    rng_seed(0x9e3779b97f4a7c15ull);
    struct trie *trie = trie_create();
    size_t stored = 0;
    for (size_t i = 0; i < RAND_FILTERS; i++) {
        gen_filter(rand_filters[i], NAME_CAP);
        void **slot = trie_slot(trie, S(rand_filters[i]));
        cr_assert_not_null(slot);
        rand_stored[i] = *slot == NULL; /* duplicates keep the first */
        if (rand_stored[i]) {
            *slot = V(i + 1);
            stored++;
        }
    }
    cr_assert_eq(trie_count(trie), stored);
    check_against_reference(trie, RAND_FILTERS);

    for (size_t i = 0; i < RAND_FILTERS; i++) {
        if (!rand_stored[i] || rng(2))
            continue;
        cr_assert_eq(trie_remove(trie, S(rand_filters[i])), V(i + 1), "%s", rand_filters[i]);
        rand_stored[i] = false;
        stored--;
    }
    cr_assert_eq(trie_count(trie), stored);
    check_against_reference(trie, RAND_FILTERS);

    for (size_t i = 0; i < RAND_FILTERS; i++)
        if (rand_stored[i])
            cr_assert_eq(trie_remove(trie, S(rand_filters[i])), V(i + 1));
    cr_assert_eq(trie_count(trie), 0);
    trie_destroy(trie, NULL, NULL);
}
