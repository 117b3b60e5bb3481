/*
 * avl: the intrusive AVL tree over integer keys. Randomized inserts and
 * removes checked against a reference (a sorted universe of keys and a
 * present flag each) with the invariant checker after changes; seeks
 * (strict and not, from keys present and absent) and reading forward agree
 * with the reference; sorted runs (every rotation) stay balanced; removing
 * a node that is not the tree's node of its key changes nothing.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "core/avl.h"

TestSuite(core_avl);

struct item {
    long key;
    struct avl_node node;
};

static const struct item *item_of(const struct avl_node *n)
{
    return n ? (const struct item *)((const char *)n - offsetof(struct item, node)) : NULL;
}

static int node_cmp(const struct avl_node *a, const struct avl_node *b)
{
    long x = item_of(a)->key, y = item_of(b)->key;
    return (x > y) - (x < y);
}

static int key_cmp(const struct avl_node *n, const void *key)
{
    long x = item_of(n)->key, y = *(const long *)key;
    return (x > y) - (x < y);
}

static void assert_valid(const struct avl_node *root, size_t want)
{
    size_t n;
    cr_assert(avl_valid(root, node_cmp, &n), "an invariant is broken");
    cr_assert_eq(n, want, "%zu nodes, want %zu", n, want);
}

/* Height of the tree (for the balance bound). */
static int height(const struct avl_node *n)
{
    if (!n)
        return 0;
    int l = height((const struct avl_node *)(n->left & ~(uintptr_t)3)), r = height(n->right);
    return 1 + (l > r ? l : r);
}

/* Seek from `key` against the reference v[0..u) (keys 2i: odd keys are
 * absent ones), then read forward to the end. */
static void check_seek(struct avl_node *root, const struct item *v, const bool *in, int u, long key,
                       bool strict)
{
    struct avl_iter it;
    const struct item *got = item_of(avl_seek(&it, root, key_cmp, &key, strict));
    for (int i = 0; i < u; i++) {
        if (!in[i] || v[i].key < key || (strict && v[i].key == key))
            continue;
        cr_assert_eq(got, &v[i], "seek %ld%s: at key %ld, got %ld", key, strict ? " strict" : "",
                     v[i].key, got ? got->key : -1);
        got = item_of(avl_next(&it));
    }
    cr_assert_null(got, "seek %ld: nothing after the last", key);
    cr_assert_null(avl_next(&it), "the end stays the end");
}

Test(core_avl, random_changes_match_a_reference)
{
    enum { U = 2000, OPS = 40000 };
    unsigned seed = 20261207;
    struct item *v = calloc(U, sizeof(*v));
    bool *in = calloc(U, sizeof(*in));
    cr_assert(v && in);
    for (int i = 0; i < U; i++)
        v[i].key = 2L * i;
    struct avl_node *root = NULL;
    size_t count = 0;
    for (int op = 0; op < OPS; op++) {
        int i = rand_r(&seed) % U;
        if (in[i]) {
            avl_remove(&root, &v[i].node, node_cmp);
            count--;
        } else {
            avl_insert(&root, &v[i].node, node_cmp);
            count++;
        }
        in[i] = !in[i];
        if (op % 7 == 0)
            assert_valid(root, count);
        if (op % 97 == 0)
            check_seek(root, v, in, U, rand_r(&seed) % (2 * U + 2) - 1, rand_r(&seed) % 2);
    }
    assert_valid(root, count);
    check_seek(root, v, in, U, -5, false);
    struct avl_iter it;
    const struct item *first = item_of(avl_seek(&it, root, NULL, NULL, false));
    for (int i = 0; i < U; i++)
        if (in[i]) {
            cr_assert_eq(first, &v[i], "a NULL key seeks the first");
            break;
        }
    for (int i = 0; i < U; i++)
        if (in[i])
            avl_remove(&root, &v[i].node, node_cmp);
    cr_assert_null(root);
    free(in);
    free(v);
}

Test(core_avl, sorted_runs_stay_balanced)
{
    enum { N = 4095 };
    struct item *v = calloc(N, sizeof(*v));
    cr_assert_not_null(v);
    for (int pass = 0; pass < 2; pass++) {
        struct avl_node *root = NULL;
        for (int i = 0; i < N; i++) {
            int k = pass ? N - 1 - i : i;
            v[k].key = k;
            avl_insert(&root, &v[k].node, node_cmp);
        }
        assert_valid(root, N);
        /* AVL: height < 1.44 log2(n + 2); 4095 nodes stay within 17. */
        cr_assert_leq(height(root), 17, "height %d", height(root));
        for (int i = 0; i < N; i++) {
            avl_remove(&root, &v[pass ? i : N - 1 - i].node, node_cmp);
            if (i % 101 == 0)
                assert_valid(root, (size_t)(N - 1 - i));
        }
        cr_assert_null(root);
    }
    free(v);
}

Test(core_avl, removing_a_stranger_changes_nothing)
{
    struct item v[3] = {{1, {0}}, {2, {0}}, {3, {0}}}, twin = {2, {0}}, absent = {9, {0}};
    struct avl_node *root = NULL;
    for (int i = 0; i < 3; i++)
        avl_insert(&root, &v[i].node, node_cmp);
    avl_remove(&root, &twin.node, node_cmp); /* same key, not the tree's node */
    avl_remove(&root, &absent.node, node_cmp);
    assert_valid(root, 3);
    struct avl_iter it;
    cr_assert_null(avl_seek(&it, NULL, key_cmp, &v[0].key, false), "an empty tree");
    cr_assert_null(avl_next(&it));
    avl_remove(&root, &v[1].node, node_cmp);
    assert_valid(root, 2);
}
