/*
 * idtree: a tenant's sessions in client id order (an intrusive AVL tree),
 * over bare sessions. The order (bytes, a prefix first, bytes over 0x7f
 * unsigned), seeks strict and not, and randomized inserts and removes
 * checked against a reference (a sorted universe of ids and a present
 * flag each) with the invariant checker after every change: the order
 * read forward and every seek agree with the reference. Sorted inserts
 * and removes (every rotation) keep the tree balanced.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session/session.h"

TestSuite(session_idtree);

static struct session *bare(const char *id, size_t len)
{
    struct session *ss = calloc(1, sizeof(*ss));
    cr_assert_not_null(ss);
    ss->st.client_id = malloc(len ? len : 1);
    cr_assert_not_null(ss->st.client_id);
    memcpy(ss->st.client_id, id, len);
    ss->st.client_id_len = (uint16_t)len;
    return ss;
}

static void bare_free(struct session *ss)
{
    free(ss->st.client_id);
    free(ss);
}

static void assert_valid(struct avl_node *root, size_t want)
{
    size_t n;
    cr_assert(idtree_valid(root, &n), "an invariant is broken");
    cr_assert_eq(n, want, "%zu nodes, want %zu", n, want);
}

static bool id_is(const struct session *ss, const char *id, size_t len)
{
    return ss && ss->st.client_id_len == len && !memcmp(ss->st.client_id, id, len);
}

/* Byte order, a prefix first, "" first of all, 0x80.. after ASCII. */
Test(session_idtree, order_is_bytes_with_prefix_first)
{
    static const struct {
        const char *id;
        size_t len;
    } want[] = {{"", 0},  {"a", 1},    {"a\0", 2},  {"ab", 2},       {"b", 1},       {"ba", 2},
                {"z", 1}, {"\x7f", 1}, {"\x80", 1}, {"\xc3\xa9", 2}, {"\xff\xff", 2}};
    enum { N = sizeof(want) / sizeof(want[0]) };
    static const int order[N] = {5, 9, 0, 3, 10, 1, 7, 2, 8, 6, 4};
    struct avl_node *root = NULL;
    struct session *v[N];
    for (int i = 0; i < N; i++) {
        v[order[i]] = bare(want[order[i]].id, want[order[i]].len);
        idtree_insert(&root, v[order[i]]);
        assert_valid(root, (size_t)i + 1);
    }
    struct idtree_iter it;
    struct session *ss = idtree_seek(&it, root, (const uint8_t *)"", 0, false);
    for (int i = 0; i < N; i++, ss = idtree_next(&it))
        cr_assert_eq(ss, v[i], "position %d", i);
    cr_assert_null(ss, "the end");
    cr_assert_null(idtree_next(&it), "the end stays the end");
    for (int i = 0; i < N; i++) {
        idtree_remove(&root, v[i]);
        assert_valid(root, (size_t)(N - 1 - i));
        bare_free(v[i]);
    }
    cr_assert_null(root);
}

/* Seeks: at an id (strict: the one after), between ids, before the first
 * and past the last; an empty tree has nothing. Removing an id that is
 * not there changes nothing. */
Test(session_idtree, seek_strict_and_not)
{
    struct idtree_iter it;
    cr_assert_null(idtree_seek(&it, NULL, (const uint8_t *)"a", 1, false));
    cr_assert_null(idtree_next(&it));
    const char *ids[] = {"c", "e", "g", "ga", "i"};
    struct avl_node *root = NULL;
    struct session *v[5];
    for (int i = 0; i < 5; i++) {
        v[i] = bare(ids[i], strlen(ids[i]));
        idtree_insert(&root, v[i]);
    }
    cr_assert_eq(idtree_seek(&it, root, (const uint8_t *)"e", 1, false), v[1]);
    cr_assert_eq(idtree_seek(&it, root, (const uint8_t *)"e", 1, true), v[2]);
    cr_assert_eq(idtree_next(&it), v[3]);
    cr_assert_eq(idtree_seek(&it, root, (const uint8_t *)"d", 1, true), v[1]);
    cr_assert_eq(idtree_seek(&it, root, (const uint8_t *)"g", 1, true), v[3], "\"ga\" after \"g\"");
    cr_assert_eq(idtree_seek(&it, root, (const uint8_t *)"", 0, false), v[0]);
    cr_assert_eq(idtree_seek(&it, root, (const uint8_t *)"a", 1, true), v[0]);
    cr_assert_null(idtree_seek(&it, root, (const uint8_t *)"i", 1, true));
    cr_assert_null(idtree_seek(&it, root, (const uint8_t *)"j", 1, false));
    cr_assert_eq(idtree_seek(&it, root, (const uint8_t *)"i", 1, false), v[4]);
    cr_assert_null(idtree_next(&it));
    struct session *absent = bare("f", 1); /* not in the tree: nothing moves */
    idtree_remove(&root, absent);
    assert_valid(root, 5);
    bare_free(absent);
    for (int i = 0; i < 5; i++) {
        idtree_remove(&root, v[i]);
        bare_free(v[i]);
    }
    idtree_remove(&root, v[0] = bare("c", 1)); /* an empty tree stays empty */
    cr_assert_null(root);
    bare_free(v[0]);
}

/* Sorted runs in and out, both ways: every rotation; the tree stays
 * valid (AVL: at most 1.44 log2 n high, so seeks stay short). */
Test(session_idtree, sorted_inserts_and_removes_stay_balanced)
{
    enum { N = 4096 };
    struct session **v = calloc(N, sizeof(*v));
    cr_assert_not_null(v);
    char id[32];
    for (int i = 0; i < N; i++) {
        int len = snprintf(id, sizeof(id), "s%06d", i);
        v[i] = bare(id, (size_t)len);
    }
    for (int pass = 0; pass < 2; pass++) {
        struct avl_node *root = NULL;
        for (int i = 0; i < N; i++)
            idtree_insert(&root, v[pass ? N - 1 - i : i]);
        assert_valid(root, N);
        for (int i = 0; i < N; i++) { /* from the middle outwards */
            int k = i % 2 ? N / 2 + i / 2 : N / 2 - 1 - i / 2;
            idtree_remove(&root, v[k]);
            if (i % 512 == 0)
                assert_valid(root, (size_t)(N - 1 - i));
        }
        cr_assert_null(root);
    }
    for (int i = 0; i < N; i++)
        bare_free(v[i]);
    free(v);
}

static int sort_cmp(const void *a, const void *b)
{
    const struct session *x = *(struct session *const *)a, *y = *(struct session *const *)b;
    return idtree_cmp(x->st.client_id, x->st.client_id_len, y->st.client_id, y->st.client_id_len);
}

/* A universe of U distinct random ids (short, over a small alphabet, so
 * prefixes of one another are common), sorted. */
static struct session **universe(int u, unsigned *seed)
{
    struct session **v = calloc((size_t)u, sizeof(*v));
    cr_assert_not_null(v);
    for (int i = 0; i < u;) {
        char id[8];
        size_t len = (size_t)(rand_r(seed) % 7);
        for (size_t k = 0; k < len; k++)
            id[k] = "ab\x80z"[rand_r(seed) % 4];
        bool dup = false;
        for (int j = 0; j < i && !dup; j++)
            dup = id_is(v[j], id, len);
        if (!dup)
            v[i++] = bare(id, len);
    }
    qsort(v, (size_t)u, sizeof(*v), sort_cmp);
    return v;
}

/* The tree read forward from a random key against the reference: the
 * first present id at or after (or after) it, then the rest in order. */
static void check_seek(struct avl_node *root, struct session **v, const bool *in, int u,
                       unsigned *seed)
{
    struct session *key = v[rand_r(seed) % u];
    bool strict = rand_r(seed) % 2;
    struct idtree_iter it;
    struct session *ss = idtree_seek(&it, root, key->st.client_id, key->st.client_id_len, strict);
    for (int i = 0; i < u; i++) {
        int c = sort_cmp(&v[i], &key);
        if (!in[i] || c < 0 || (strict && c == 0))
            continue;
        cr_assert_eq(ss, v[i], "seek: position %d", i);
        ss = idtree_next(&it);
    }
    cr_assert_null(ss, "seek: nothing after the last");
}

/* Random inserts and removes against the reference. */
Test(session_idtree, random_changes_match_a_reference)
{
    enum { U = 1500, OPS = 30000 };
    unsigned seed = 20261207;
    struct session **v = universe(U, &seed);
    bool *in = calloc(U, sizeof(*in));
    cr_assert_not_null(in);
    struct avl_node *root = NULL;
    size_t count = 0;
    for (int op = 0; op < OPS; op++) {
        int i = rand_r(&seed) % U;
        if (in[i]) {
            idtree_remove(&root, v[i]);
            count--;
        } else {
            idtree_insert(&root, v[i]);
            count++;
        }
        in[i] = !in[i];
        if (op % 7 == 0)
            assert_valid(root, count);
        if (op % 97 == 0)
            check_seek(root, v, in, U, &seed);
    }
    assert_valid(root, count);
    for (int i = 0; i < U; i++) {
        if (in[i])
            idtree_remove(&root, v[i]);
        bare_free(v[i]);
    }
    cr_assert_null(root);
    free(in);
    free(v);
}
