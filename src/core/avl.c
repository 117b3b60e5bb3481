/*
 * avl: an intrusive AVL tree (see avl.h). Owns nothing: the links are in
 * the caller's objects, the root wherever the caller keeps it. Runs on the
 * owner's thread only.
 *
 * Balance b(n) = height(right) - height(left), in {-1, 0, +1}, stored as
 * b + 1 in the low two bits of n->left. Insert and remove recurse down the
 * path (at most AVL_DEPTH_MAX deep) and rebalance on the way back with the
 * classic rotations; no parent links are kept, which is what lets a member
 * pay only two words.
 */
#include "core/avl.h"

#define BAL_MASK ((uintptr_t)3)

static struct avl_node *left_of(const struct avl_node *n)
{
    return (struct avl_node *)(n->left & ~BAL_MASK);
}

static int bal_of(const struct avl_node *n)
{
    return (int)(n->left & BAL_MASK) - 1;
}

static void set_left(struct avl_node *n, struct avl_node *l)
{
    n->left = (uintptr_t)l | (n->left & BAL_MASK);
}

static void set_bal(struct avl_node *n, int b)
{
    n->left = (n->left & ~BAL_MASK) | (uintptr_t)(b + 1);
}

/* n is two taller on the left: rotate; the new subtree root. *shorter:
 * the subtree is now one lower than it was with the imbalance (always
 * after an insert; after a remove unless the left child was balanced). */
static struct avl_node *fix_left_heavy(struct avl_node *n, bool *shorter)
{
    struct avl_node *l = left_of(n);
    if (bal_of(l) <= 0) { /* single right rotation */
        bool even = bal_of(l) == 0;
        set_left(n, l->right);
        l->right = n;
        set_bal(n, even ? -1 : 0);
        set_bal(l, even ? 1 : 0);
        *shorter = !even;
        return l;
    }
    struct avl_node *lr = l->right; /* left-right: double rotation */
    int b = bal_of(lr);
    l->right = left_of(lr);
    set_left(n, lr->right);
    set_left(lr, l);
    lr->right = n;
    set_bal(l, b > 0 ? -1 : 0);
    set_bal(n, b < 0 ? 1 : 0);
    set_bal(lr, 0);
    *shorter = true;
    return lr;
}

/* The mirror image of fix_left_heavy. */
static struct avl_node *fix_right_heavy(struct avl_node *n, bool *shorter)
{
    struct avl_node *r = n->right;
    if (bal_of(r) >= 0) { /* single left rotation */
        bool even = bal_of(r) == 0;
        n->right = left_of(r);
        set_left(r, n);
        set_bal(n, even ? 1 : 0);
        set_bal(r, even ? -1 : 0);
        *shorter = !even;
        return r;
    }
    struct avl_node *rl = left_of(r); /* right-left: double rotation */
    int b = bal_of(rl);
    set_left(r, rl->right);
    n->right = left_of(rl);
    rl->right = r;
    set_left(rl, n);
    set_bal(r, b < 0 ? 1 : 0);
    set_bal(n, b > 0 ? -1 : 0);
    set_bal(rl, 0);
    *shorter = true;
    return rl;
}

/* *root's left subtree grew one taller: rebalance; true when *root's did. */
static bool left_grew(struct avl_node **root)
{
    struct avl_node *n = *root;
    int b = bal_of(n);
    if (b >= 0) {
        set_bal(n, b - 1);
        return b == 0;
    }
    bool unused;
    *root = fix_left_heavy(n, &unused);
    return false;
}

/* The mirror image of left_grew. */
static bool right_grew(struct avl_node **root)
{
    struct avl_node *n = *root;
    int b = bal_of(n);
    if (b <= 0) {
        set_bal(n, b + 1);
        return b == 0;
    }
    bool unused;
    *root = fix_right_heavy(n, &unused);
    return false;
}

/* Add x under *root; true when the subtree grew one taller. */
static bool insert_at(struct avl_node **root, struct avl_node *x, avl_cmp_fn cmp)
{
    struct avl_node *n = *root;
    if (!n) {
        x->left = 0;
        x->right = NULL;
        set_bal(x, 0);
        *root = x;
        return true;
    }
    if (cmp(x, n) < 0) {
        struct avl_node *l = left_of(n);
        bool grew = insert_at(&l, x, cmp);
        set_left(n, l);
        return grew && left_grew(root);
    }
    return insert_at(&n->right, x, cmp) && right_grew(root);
}

void avl_insert(struct avl_node **root, struct avl_node *x, avl_cmp_fn cmp)
{
    insert_at(root, x, cmp);
}

/* *root's left subtree got one lower: rebalance; true when *root's did. */
static bool left_shrank(struct avl_node **root)
{
    struct avl_node *n = *root;
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
static bool right_shrank(struct avl_node **root)
{
    struct avl_node *n = *root;
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
static bool remove_min(struct avl_node **root, struct avl_node **min)
{
    struct avl_node *n = *root;
    struct avl_node *l = left_of(n);
    if (!l) {
        *min = n;
        *root = n->right;
        return true;
    }
    bool shorter = remove_min(&l, min);
    set_left(n, l);
    return shorter && left_shrank(root);
}

/* Take x out of *root's subtree (nothing when it is not there); true when
 * the subtree got lower. */
static bool remove_at(struct avl_node **root, struct avl_node *x, avl_cmp_fn cmp)
{
    struct avl_node *n = *root;
    if (!n)
        return false;
    int c = cmp(x, n);
    if (c < 0) {
        struct avl_node *l = left_of(n);
        bool shorter = remove_at(&l, x, cmp);
        set_left(n, l);
        return shorter && left_shrank(root);
    }
    if (c > 0)
        return remove_at(&n->right, x, cmp) && right_shrank(root);
    if (n != x)
        return false; /* another node of x's key: x is in no tree here */
    if (!left_of(n) || !n->right) {
        *root = left_of(n) ? left_of(n) : n->right;
        return true;
    }
    /* Two children: the successor takes n's place, links and balance. */
    struct avl_node *r = n->right, *succ;
    bool shorter = remove_min(&r, &succ);
    succ->left = n->left;
    succ->right = r;
    *root = succ;
    return shorter && right_shrank(root);
}

void avl_remove(struct avl_node **root, struct avl_node *x, avl_cmp_fn cmp)
{
    remove_at(root, x, cmp);
}

struct avl_node *avl_seek(struct avl_iter *it, struct avl_node *root, avl_key_fn key_cmp,
                          const void *key, bool strict)
{
    it->n = 0;
    for (struct avl_node *n = root; n && it->n < AVL_DEPTH_MAX;) {
        int c = key ? key_cmp(n, key) : 1;
        if (c > 0 || (c == 0 && !strict)) {
            it->path[it->n++] = n; /* n and its right side still to come */
            n = left_of(n);
        } else {
            n = n->right;
        }
    }
    return it->n ? it->path[it->n - 1] : NULL;
}

struct avl_node *avl_next(struct avl_iter *it)
{
    if (!it->n)
        return NULL;
    struct avl_node *cur = it->path[--it->n];
    /* The successors in cur's right subtree: its chain of left children. */
    for (struct avl_node *n = cur->right; n && it->n < AVL_DEPTH_MAX; n = left_of(n))
        it->path[it->n++] = n;
    return it->n ? it->path[it->n - 1] : NULL;
}

/* Height of s's subtree, or -1 when an invariant is broken in it; keys
 * within (lo, hi) (NULL: unbounded); nodes counted into *n. */
static int check(const struct avl_node *s, const struct avl_node *lo, const struct avl_node *hi,
                 avl_cmp_fn cmp, size_t *n)
{
    if (!s)
        return 0;
    if ((lo && cmp(s, lo) <= 0) || (hi && cmp(s, hi) >= 0) || (s->left & BAL_MASK) == BAL_MASK)
        return -1;
    int hl = check(left_of(s), lo, s, cmp, n), hr = check(s->right, s, hi, cmp, n);
    if (hl < 0 || hr < 0 || hr - hl != bal_of(s))
        return -1;
    (*n)++;
    return 1 + (hl > hr ? hl : hr);
}

bool avl_valid(const struct avl_node *root, avl_cmp_fn cmp, size_t *n)
{
    *n = 0;
    return check(root, NULL, NULL, cmp, n) >= 0;
}
