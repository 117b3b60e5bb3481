/*
 * session registry: client id -> session per tenant. The table alone, over
 * bare sessions (find, link, remove, growth, the id order kept with it),
 * then through the session life cycle on the store harness's shard
 * (attach, detach, two tenants).
 *
 * max_sessions is not the registry's: connect.c asks observe_throttle
 * (RINGMQ_RES_SESSIONS) before attaching, so it is not tested here.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/route.h"
#include "store_harness.h"
#include "tenant/tenant.h"

static void setup(void)
{
    harness_setup(NULL, NULL);
}

TestSuite(session_registry, .init = setup, .fini = harness_teardown);

/* A bare session with a client id, as session.c would register it. */
static struct session *bare(const char *id)
{
    struct session *ss = calloc(1, sizeof(*ss));
    cr_assert_not_null(ss);
    ss->st.client_id = (uint8_t *)strdup(id);
    ss->st.client_id_len = (uint16_t)strlen(id);
    return ss;
}

static void bare_free(struct session *ss)
{
    free(ss->st.client_id);
    free(ss);
}

static void link_bare(struct tenant *t, struct session *ss)
{
    cr_assert_eq(reg_reserve(t), 0);
    reg_link(t, ss, reg_hash(t, ss->st.client_id, ss->st.client_id_len));
}

static struct session *find(struct tenant *t, const char *id)
{
    return session_find(t, (const uint8_t *)id, strlen(id));
}

Test(session_registry, find_link_remove)
{
    struct tenant t = {.id = 7};
    cr_assert_null(find(&t, "a"), "an empty registry has no table");
    struct session *a = bare("a"), *ab = bare("ab"), *empty = bare("");
    link_bare(&t, a);
    link_bare(&t, ab);
    link_bare(&t, empty); /* a zero-length id is a client id too */
    cr_assert_eq(t.reg_count, 3);
    cr_assert_eq(find(&t, "a"), a);
    cr_assert_eq(find(&t, "ab"), ab, "a prefix is another id");
    cr_assert_eq(find(&t, ""), empty);
    cr_assert_null(find(&t, "b"));
    cr_assert(session_exists(&t, (const uint8_t *)"ab", 2));
    cr_assert_not(session_connected(&t, (const uint8_t *)"ab", 2), "no connection");

    reg_remove(&t, a);
    cr_assert_null(find(&t, "a"));
    cr_assert_eq(find(&t, "ab"), ab);
    cr_assert_eq(t.reg_count, 2);
    reg_remove(&t, a); /* not registered: nothing changes */
    cr_assert_eq(t.reg_count, 2);
    reg_remove(&t, ab);
    reg_remove(&t, empty);
    cr_assert_eq(t.reg_count, 0);
    cr_assert_null(find(&t, ""));
    free(t.reg);
    bare_free(a);
    bare_free(ab);
    bare_free(empty);
}

/* Ids whose hashes collide share a chain: the id decides (forged hash:
 * reg_link takes the hash it is given). */
Test(session_registry, colliding_hashes_compare_ids)
{
    struct tenant t = {.id = 0};
    struct session *x = bare("xx"), *y = bare("yy"), *z = bare("z");
    const uint64_t h = 42;
    cr_assert_eq(reg_reserve(&t), 0);
    reg_link(&t, x, h);
    cr_assert_eq(reg_reserve(&t), 0);
    reg_link(&t, y, h);
    cr_assert_eq(reg_reserve(&t), 0);
    reg_link(&t, z, h);
    struct session **px = reg_find(&t, h, (const uint8_t *)"xx", 2);
    struct session **py = reg_find(&t, h, (const uint8_t *)"yy", 2);
    cr_assert(px && *px == x);
    cr_assert(py && *py == y);
    cr_assert_null(reg_find(&t, h, (const uint8_t *)"zz", 2));
    reg_remove(&t, y);
    px = reg_find(&t, h, (const uint8_t *)"xx", 2);
    cr_assert(px && *px == x, "removing y kept x");
    cr_assert_null(reg_find(&t, h, (const uint8_t *)"yy", 2));
    struct session **pz = reg_find(&t, h, (const uint8_t *)"z", 1);
    cr_assert(pz && *pz == z);
    free(t.reg);
    bare_free(x);
    bare_free(y);
    bare_free(z);
}

/* Many ids: every doubling of the buckets keeps each one findable, and
 * removals in the grown table unlink only their own. */
Test(session_registry, growth_keeps_every_id)
{
    enum { N = 5000 };
    struct tenant t = {.id = 1};
    struct session **v = calloc(N, sizeof(*v));
    cr_assert_not_null(v);
    char id[32];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "client-%d", i);
        v[i] = bare(id);
        link_bare(&t, v[i]);
    }
    cr_assert_eq(t.reg_count, N);
    cr_assert_geq(t.reg_mask + 1, N, "the table grew with the sessions");
    size_t in_order;
    cr_assert(idtree_valid(t.reg_root, &in_order));
    cr_assert_eq(in_order, N, "every linked session is in the id order");
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "client-%d", i);
        cr_assert_eq(find(&t, id), v[i], "%s lost", id);
    }
    for (int i = 0; i < N; i += 2)
        reg_remove(&t, v[i]);
    cr_assert_eq(t.reg_count, N / 2);
    cr_assert(idtree_valid(t.reg_root, &in_order));
    cr_assert_eq(in_order, N / 2, "a removed session left the id order");
    reg_remove(&t, v[0]); /* not registered: the id order is not touched */
    cr_assert(idtree_valid(t.reg_root, &in_order));
    cr_assert_eq(in_order, N / 2);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "client-%d", i);
        if (i % 2)
            cr_assert_eq(find(&t, id), v[i], "%s lost", id);
        else
            cr_assert_null(find(&t, id), "%s still there", id);
    }
    for (int i = 0; i < N; i++)
        bare_free(v[i]);
    free(v);
    free(t.reg);
}

/* The same client id in two tenants: two registries, two sessions. */
Test(session_registry, same_id_two_tenants_bare)
{
    struct tenant t0 = {.id = 0}, t1 = {.id = 1};
    struct session *x0 = bare("dev"), *x1 = bare("dev");
    link_bare(&t0, x0);
    cr_assert_null(find(&t1, "dev"));
    link_bare(&t1, x1);
    cr_assert_eq(find(&t0, "dev"), x0);
    cr_assert_eq(find(&t1, "dev"), x1);
    reg_remove(&t1, x1);
    cr_assert_eq(find(&t0, "dev"), x0);
    cr_assert_null(find(&t1, "dev"));
    free(t0.reg);
    free(t1.reg);
    bare_free(x0);
    bare_free(x1);
}

/* Through the life cycle: attach registers, a connection is seen, an
 * ending session leaves, and the same client id connecting in another
 * tenant neither finds nor takes over the first tenant's session. */
Test(session_registry, attach_detach_and_tenants)
{
    struct tenant *t1 = tenant_create(1, "other", &set);
    cr_assert_not_null(t1);
    shard.tenants[1] = t1;
    struct conn *c0 = conn_new(), *c1 = conn_new(), *c2 = conn_new();
    struct session *s0 = connect_as(c0, "dev", true, 0, NULL, 0, NULL);
    cr_assert_eq(find(tenant0, "dev"), s0);
    cr_assert(session_connected(tenant0, (const uint8_t *)"dev", 3));
    cr_assert_null(find(t1, "dev"));

    struct session_opts o = {.clean_start = false, .window = 2};
    bool present = true;
    struct session *s1 =
        session_attach(&shard, t1, &c1->st, (const uint8_t *)"dev", 3, &o, &present);
    cr_assert_not_null(s1);
    c1->session = s1;
    cr_assert_not(present, "another tenant's session is not resumed");
    cr_assert_neq(s1, s0);
    cr_assert_eq(c0->state, CONN_ACTIVE, "no takeover across tenants");
    cr_assert_eq(find(t1, "dev"), s1);
    cr_assert_eq(find(tenant0, "dev"), s0);

    /* Many sessions through attach: the registry grows under them. */
    char id[32];
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof(id), "many-%d", i);
        struct session *ss =
            session_attach(&shard, tenant0, &c2->st, (const uint8_t *)id, strlen(id), &o, &present);
        cr_assert_not_null(ss);
        ss->client = NULL; /* c2 is only borrowed for the attach */
    }
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof(id), "many-%d", i);
        cr_assert_not_null(find(tenant0, id), "%s lost", id);
    }
    cr_assert_eq(find(tenant0, "dev"), s0);

    /* Expiry 0: the session ends with its connection, and leaves. */
    disconnect(c0, false);
    cr_assert_null(find(tenant0, "dev"));
    cr_assert_eq(find(t1, "dev"), s1);

    session_destroy_all(&shard, t1);
    route_tenant_fini(&shard, t1);
    shard.tenants[1] = NULL;
    tenant_destroy(t1);
    conn_free(c0);
    conn_free(c1);
    conn_free(c2);
}
