/*
 * idtree: a tenant's sessions in client id order, core/avl.h's tree typed
 * for sessions (see idtree.h). Owns nothing: the links are in the
 * sessions, the root in the tenant. Runs on the owning shard's thread only.
 */
#include "session/idtree.h"

#include <stddef.h>
#include <string.h>

#include "session/session.h"

static struct session *session_of(const struct avl_node *n)
{
    return n ? (struct session *)((const char *)n - offsetof(struct session, tree)) : NULL;
}

int idtree_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int d = memcmp(a, b, al < bl ? al : bl);
    return d ? d : (al > bl) - (al < bl);
}

static int node_cmp(const struct avl_node *a, const struct avl_node *b)
{
    const struct session_state *x = &session_of(a)->st, *y = &session_of(b)->st;
    return idtree_cmp(x->client_id, x->client_id_len, y->client_id, y->client_id_len);
}

/* The key of a seek: an id and its length. */
struct id_key {
    const uint8_t *id;
    size_t len;
};

static int key_cmp(const struct avl_node *n, const void *key)
{
    const struct session_state *x = &session_of(n)->st;
    const struct id_key *k = key;
    return idtree_cmp(x->client_id, x->client_id_len, k->id, k->len);
}

void idtree_insert(struct avl_node **root, struct session *ss)
{
    avl_insert(root, &ss->tree, node_cmp);
}

void idtree_remove(struct avl_node **root, struct session *ss)
{
    avl_remove(root, &ss->tree, node_cmp);
    ss->tree = (struct avl_node){0};
}

struct session *idtree_seek(struct idtree_iter *it, struct avl_node *root, const uint8_t *key,
                            size_t len, bool strict)
{
    struct id_key k = {key, len};
    return session_of(avl_seek(&it->it, root, key_cmp, &k, strict));
}

struct session *idtree_next(struct idtree_iter *it)
{
    return session_of(avl_next(&it->it));
}

bool idtree_valid(const struct avl_node *root, size_t *n)
{
    return avl_valid(root, node_cmp, n);
}
