/*
 * idtree: a tenant's sessions in client id order, an intrusive AVL tree
 * (see idtree.h). Owns nothing: the links are in the sessions, the root in
 * the tenant. Runs on the owning shard's thread only.
 *
 * Balance b(n) = height(right) - height(left), in {-1, 0, +1}, stored as
 * b + 1 in the low two bits of n->tree_left. Insert and remove recurse
 * down the path (at most IDTREE_DEPTH_MAX deep) and rebalance on the way
 * back with the classic rotations; no parent links are kept, which is
 * what lets a session pay only two words.
 */
#include "session/idtree.h"

#include <string.h>

#include "session/session.h"

#define BAL_MASK ((uintptr_t)3)

static struct session *left_of(const struct session *n)
{
    return (struct session *)(n->tree_left & ~BAL_MASK);
}

static int bal_of(const struct session *n)
{
    return (int)(n->tree_left & BAL_MASK) - 1;
}

static void set_left(struct session *n, struct session *l)
{
    n->tree_left = (uintptr_t)l | (n->tree_left & BAL_MASK);
}

static void set_bal(struct session *n, int b)
{
    n->tree_left = (n->tree_left & ~BAL_MASK) | (uintptr_t)(b + 1);
}

int idtree_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int d = memcmp(a, b, al < bl ? al : bl);
    return d ? d : (al > bl) - (al < bl);
}

static int node_cmp(const struct session *a, const struct session *b)
{
    return idtree_cmp(a->st.client_id, a->st.client_id_len, b->st.client_id, b->st.client_id_len);
}

/* n is two taller on the left: rotate; the new subtree root. *shorter:
 * the subtree is now one lower than it was with the imbalance (always
 * after an insert; after a remove unless the left child was balanced). */
static struct session *fix_left_heavy(struct session *n, bool *shorter)
{
    struct session *l = left_of(n);
    if (bal_of(l) <= 0) { /* single right rotation */
        bool even = bal_of(l) == 0;
        set_left(n, l->tree_right);
        l->tree_right = n;
        set_bal(n, even ? -1 : 0);
        set_bal(l, even ? 1 : 0);
        *shorter = !even;
        return l;
    }
    struct session *lr = l->tree_right; /* left-right: double rotation */
    int b = bal_of(lr);
    l->tree_right = left_of(lr);
    set_left(n, lr->tree_right);
    set_left(lr, l);
    lr->tree_right = n;
    set_bal(l, b > 0 ? -1 : 0);
    set_bal(n, b < 0 ? 1 : 0);
    set_bal(lr, 0);
    *shorter = true;
    return lr;
}

/* The mirror image of fix_left_heavy. */
static struct session *fix_right_heavy(struct session *n, bool *shorter)
{
    struct session *r = n->tree_right;
    if (bal_of(r) >= 0) { /* single left rotation */
        bool even = bal_of(r) == 0;
        n->tree_right = left_of(r);
        set_left(r, n);
        set_bal(n, even ? 1 : 0);
        set_bal(r, even ? -1 : 0);
        *shorter = !even;
        return r;
    }
    struct session *rl = left_of(r); /* right-left: double rotation */
    int b = bal_of(rl);
    set_left(r, rl->tree_right);
    n->tree_right = left_of(rl);
    rl->tree_right = r;
    set_left(rl, n);
    set_bal(r, b < 0 ? 1 : 0);
    set_bal(n, b > 0 ? -1 : 0);
    set_bal(rl, 0);
    *shorter = true;
    return rl;
}

/* Add x under *root; true when the subtree grew one taller. */
static bool insert_at(struct session **root, struct session *x)
{
    struct session *n = *root;
    if (!n) {
        x->tree_left = 0;
        x->tree_right = NULL;
        set_bal(x, 0);
        *root = x;
        return true;
    }
    bool unused;
    if (node_cmp(x, n) < 0) {
        struct session *l = left_of(n);
        bool grew = insert_at(&l, x);
        set_left(n, l);
        if (!grew || bal_of(n) == 1) {
            if (grew)
                set_bal(n, 0);
            return false;
        }
        if (bal_of(n) == 0) {
            set_bal(n, -1);
            return true;
        }
        *root = fix_left_heavy(n, &unused);
        return false;
    }
    bool grew = insert_at(&n->tree_right, x);
    if (!grew || bal_of(n) == -1) {
        if (grew)
            set_bal(n, 0);
        return false;
    }
    if (bal_of(n) == 0) {
        set_bal(n, 1);
        return true;
    }
    *root = fix_right_heavy(n, &unused);
    return false;
}

void idtree_insert(struct session **root, struct session *ss)
{
    insert_at(root, ss);
}

/* *root's left subtree got one lower: rebalance; true when *root's did. */
static bool left_shrank(struct session **root)
{
    struct session *n = *root;
    int b = bal_of(n);
    if (b < 1) {
        set_bal(n, b + 1);
        return b == -1;
    }
    bool shorter;
    *root = fix_right_heavy(n, &shorter);
    return shorter;
}

/* The mirror image of left_shrank. */
static bool right_shrank(struct session **root)
{
    struct session *n = *root;
    int b = bal_of(n);
    if (b > -1) {
        set_bal(n, b - 1);
        return b == 1;
    }
    bool shorter;
    *root = fix_left_heavy(n, &shorter);
    return shorter;
}

/* Take the smallest node out of *root (non-empty) into *min; true when
 * the subtree got one lower. */
static bool remove_min(struct session **root, struct session **min)
{
    struct session *n = *root;
    struct session *l = left_of(n);
    if (!l) {
        *min = n;
        *root = n->tree_right;
        return true;
    }
    bool shorter = remove_min(&l, min);
    set_left(n, l);
    return shorter && left_shrank(root);
}

/* Take x out of *root's subtree (nothing when its id is not there); true
 * when the subtree got lower. */
static bool remove_at(struct session **root, struct session *x)
{
    struct session *n = *root;
    if (!n)
        return false;
    int c = node_cmp(x, n);
    if (c < 0) {
        struct session *l = left_of(n);
        bool shorter = remove_at(&l, x);
        set_left(n, l);
        return shorter && left_shrank(root);
    }
    if (c > 0)
        return remove_at(&n->tree_right, x) && right_shrank(root);
    if (!left_of(n) || !n->tree_right) {
        *root = left_of(n) ? left_of(n) : n->tree_right;
        return true;
    }
    /* Two children: the successor takes n's place, links and balance. */
    struct session *r = n->tree_right, *succ;
    bool shorter = remove_min(&r, &succ);
    succ->tree_left = n->tree_left;
    succ->tree_right = r;
    *root = succ;
    return shorter && right_shrank(root);
}

void idtree_remove(struct session **root, struct session *ss)
{
    remove_at(root, ss);
    ss->tree_left = 0;
    ss->tree_right = NULL;
}

/* Push n and its chain of left children: the next ones, smallest on top. */
static void push_left_spine(struct idtree_iter *it, struct session *n)
{
    for (; n && it->n < IDTREE_DEPTH_MAX; n = left_of(n))
        it->path[it->n++] = n;
}

struct session *idtree_seek(struct idtree_iter *it, struct session *root, const uint8_t *key,
                            size_t len, bool strict)
{
    it->n = 0;
    for (struct session *n = root; n && it->n < IDTREE_DEPTH_MAX;) {
        int c = idtree_cmp(n->st.client_id, n->st.client_id_len, key, len);
        if (c > 0 || (c == 0 && !strict)) {
            it->path[it->n++] = n; /* n and its right side still to come */
            n = left_of(n);
        } else {
            n = n->tree_right;
        }
    }
    return it->n ? it->path[it->n - 1] : NULL;
}

struct session *idtree_next(struct idtree_iter *it)
{
    if (!it->n)
        return NULL;
    struct session *cur = it->path[--it->n];
    push_left_spine(it, cur->tree_right);
    return it->n ? it->path[it->n - 1] : NULL;
}

/* Height of n's subtree, or -1 when an invariant is broken in it; ids
 * within (lo, hi) (NULL: unbounded); nodes counted into *n. */
static int check(const struct session *s, const struct session *lo, const struct session *hi,
                 size_t *n)
{
    if (!s)
        return 0;
    if ((lo && node_cmp(s, lo) <= 0) || (hi && node_cmp(s, hi) >= 0) ||
        (s->tree_left & BAL_MASK) == BAL_MASK)
        return -1;
    int hl = check(left_of(s), lo, s, n), hr = check(s->tree_right, s, hi, n);
    if (hl < 0 || hr < 0 || hr - hl != bal_of(s))
        return -1;
    (*n)++;
    return 1 + (hl > hr ? hl : hr);
}

bool idtree_valid(const struct session *root, size_t *n)
{
    *n = 0;
    return check(root, NULL, NULL, n) >= 0;
}
