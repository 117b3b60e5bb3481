/* identity: the auth plugin's answer kept per connection and packed into the
 * handover bytes of a moving connection. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/identity.h"

static const struct ringmq_kv attrs[] = {{"role", "reader"}, {"team", ""}};
static const struct ringmq_kv users[] = {{"welcome", "acme"}};

Test(identity, pack_unpack_round_trip)
{
    struct conn_identity *a = identity_create(7, "alice", attrs, 2, users, 1);
    cr_assert_not_null(a);
    size_t n = identity_packed_size(a);
    uint8_t *buf = malloc(n + 3);
    cr_assert_eq(identity_pack(a, buf), n);
    memcpy(buf + n, "CON", 3); /* the bytes that follow in a handover */
    size_t used = 0;
    struct conn_identity *b = identity_unpack(buf, n + 3, &used);
    cr_assert_not_null(b);
    cr_assert_eq(used, n);
    cr_assert_eq(b->tenant, 7);
    cr_assert_str_eq(b->user_id, "alice");
    cr_assert_eq(b->n_attrs, 2);
    struct ringmq_kv kv[IDENTITY_KV_MAX];
    identity_kvs(b->attrs, b->n_attrs, kv);
    cr_assert_str_eq(kv[0].key, "role");
    cr_assert_str_eq(kv[0].value, "reader");
    cr_assert_str_eq(kv[1].key, "team");
    cr_assert_str_eq(kv[1].value, "");
    cr_assert_eq(b->n_connack, 1);
    identity_kvs(b->connack, b->n_connack, kv);
    cr_assert_str_eq(kv[0].key, "welcome");
    cr_assert_str_eq(kv[0].value, "acme");
    identity_free(a);
    identity_free(b);
    free(buf);
}

Test(identity, nothing_but_a_tenant)
{
    struct conn_identity *a = identity_create(0, NULL, NULL, 0, NULL, 0);
    cr_assert_not_null(a);
    cr_assert_null(a->user_id);
    cr_assert_null(a->attrs);
    uint8_t buf[64];
    size_t n = identity_pack(a, buf);
    cr_assert_eq(n, 16);
    size_t used;
    struct conn_identity *b = identity_unpack(buf, n, &used);
    cr_assert_not_null(b);
    cr_assert_null(b->user_id);
    cr_assert_eq(b->n_attrs + b->n_connack, 0);
    identity_free(a);
    identity_free(b);
}

Test(identity, at_most_kv_max_pairs_are_kept)
{
    struct ringmq_kv many[IDENTITY_KV_MAX + 5];
    char names[IDENTITY_KV_MAX + 5][8];
    for (size_t i = 0; i < IDENTITY_KV_MAX + 5; i++) {
        snprintf(names[i], sizeof(names[i]), "k%zu", i);
        many[i] = (struct ringmq_kv){names[i], "v"};
    }
    struct conn_identity *a = identity_create(1, "u", many, IDENTITY_KV_MAX + 5, NULL, 0);
    cr_assert_eq(a->n_attrs, IDENTITY_KV_MAX);
    struct ringmq_kv kv[IDENTITY_KV_MAX];
    identity_kvs(a->attrs, a->n_attrs, kv);
    cr_assert_str_eq(kv[IDENTITY_KV_MAX - 1].key, names[IDENTITY_KV_MAX - 1]);
    identity_free(a);
}

Test(identity, connack_properties_are_forgotten_once_sent)
{
    struct conn_identity *a = identity_create(1, "u", NULL, 0, users, 1);
    identity_connack_sent(a);
    cr_assert_null(a->connack);
    cr_assert_eq(a->n_connack, 0);
    cr_assert_eq(identity_packed_size(a), 4 + 1 + 6 + 6);
    identity_free(a);
}

/* Bytes that are not a packed identity are refused, never over-read. */
Test(identity, malformed_bytes_are_refused)
{
    struct conn_identity *a = identity_create(3, "bob", attrs, 2, users, 1);
    size_t n = identity_packed_size(a);
    uint8_t *buf = malloc(n);
    identity_pack(a, buf);
    size_t used;
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *part = malloc(cut ? cut : 1); /* exact size: ASan sees any over-read */
        memcpy(part, buf, cut);
        cr_assert_null(identity_unpack(part, cut, &used), "accepted %zu of %zu bytes", cut, n);
        free(part);
    }
    /* A count that does not match its strings. */
    uint8_t *bad = malloc(n);
    memcpy(bad, buf, n);
    bad[4 + 3 + 1] = 3; /* attributes: 3 pairs announced, 2 present */
    cr_assert_null(identity_unpack(bad, n, &used));
    /* A block whose last string is not terminated. */
    memcpy(bad, buf, n);
    bad[4 + 3 + 6 + a->attrs_len - 1] = 'x';
    cr_assert_null(identity_unpack(bad, n, &used));
    free(bad);
    free(buf);
    identity_free(a);
}

/* What cannot become an MQTT string (65,535 bytes at most) is not kept: a
 * pair with a longer key or value is dropped, a longer user id refused. */
Test(identity, over_long_strings_are_not_kept)
{
    size_t big = 65536;
    char *huge = malloc(big + 1);
    memset(huge, 'x', big);
    huge[big] = 0;
    struct ringmq_kv kv[] = {{"a", "1"}, {huge, "2"}, {"c", huge}, {"d", "4"}};
    struct conn_identity *a = identity_create(1, "u", kv, 4, kv, 4);
    cr_assert_not_null(a);
    cr_assert_eq(a->n_attrs, 2);
    cr_assert_eq(a->n_connack, 2);
    struct ringmq_kv got[IDENTITY_KV_MAX];
    identity_kvs(a->connack, a->n_connack, got);
    cr_assert_str_eq(got[0].key, "a");
    cr_assert_str_eq(got[1].key, "d");
    identity_free(a);
    cr_assert_null(identity_create(1, huge, NULL, 0, NULL, 0));
    huge[big - 1] = 0; /* 65,535 bytes: still fits */
    a = identity_create(1, huge, NULL, 0, NULL, 0);
    cr_assert_not_null(a);
    uint8_t *buf = malloc(identity_packed_size(a));
    size_t n = identity_pack(a, buf), used;
    cr_assert_eq(n, identity_packed_size(a));
    struct conn_identity *b = identity_unpack(buf, n, &used);
    cr_assert_not_null(b);
    cr_assert_eq(strlen(b->user_id), big - 1);
    identity_free(a);
    identity_free(b);
    free(buf);
    free(huge);
}

/* A session keeps a copy of the identity that outlives the connection: who it
 * is, not what its CONNACK still had to say. */
Test(identity, copy_keeps_tenant_user_and_attributes_only)
{
    struct conn_identity *a = identity_create(7, "alice", attrs, 2, users, 1);
    struct conn_identity *c = identity_copy(a);
    cr_assert_not_null(c);
    identity_free(a);
    cr_assert_eq(c->tenant, 7);
    cr_assert_str_eq(c->user_id, "alice");
    cr_assert_eq(c->n_attrs, 2);
    struct ringmq_kv kv[IDENTITY_KV_MAX];
    identity_kvs(c->attrs, c->n_attrs, kv);
    cr_assert_str_eq(kv[0].key, "role");
    cr_assert_str_eq(kv[1].key, "team");
    cr_assert_eq(c->n_connack, 0);
    cr_assert_null(c->connack);
    identity_free(c);
}
