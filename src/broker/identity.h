/*
 * identity: what the auth plugin said of a connection — its tenant, user id,
 * attributes (given back to every permission check) and the user properties
 * for its CONNACK (MQTT 5.0) — and the bytes that carry it when the
 * connection moves to its home shard.
 *
 * Owned by one connection, on its shard; packed into the handover buffer
 * and unpacked by the home shard.
 */
#ifndef RINGMQ_BROKER_IDENTITY_H
#define RINGMQ_BROKER_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "ringmq/plugin.h"

struct acl_cache;

/* Key/value pairs are kept as one block of NUL-terminated strings,
 * "key\0value\0key\0value\0...". At most IDENTITY_KV_MAX pairs are kept. */
#define IDENTITY_KV_MAX 32u

struct conn_identity {
    uint16_t tenant;
    uint16_t n_attrs;
    uint16_t n_connack;
    char *user_id;         /* NULL when none */
    char *attrs;           /* n_attrs pairs, NULL when none */
    uint32_t attrs_len;    /* bytes of attrs */
    uint32_t connack_len;  /* bytes of connack */
    char *connack;         /* CONNACK user properties, NULL when none or sent */
    struct acl_cache *acl; /* cached verdicts (acl.c), NULL until the first */
};

/* A new identity with copies of everything given; pairs with a string over
 * 65,535 bytes, and pairs beyond IDENTITY_KV_MAX, are dropped. NULL when
 * out of memory or the user id is over 65,535 bytes. */
struct conn_identity *identity_create(uint16_t tenant, const char *user_id,
                                      const struct ringmq_kv *attrs, size_t n_attrs,
                                      const struct ringmq_kv *connack, size_t n_connack);

/* A copy of tenant, user id and attributes (no CONNACK properties, no
 * verdicts), to outlive the connection. NULL when out of memory. */
struct conn_identity *identity_copy(const struct conn_identity *id);

/* Free it and its verdict cache. NULL is a no-op. */
void identity_free(struct conn_identity *id);

/* Bytes identity_pack writes. */
size_t identity_packed_size(const struct conn_identity *id);

/* Write the identity (verdicts excluded) to out; returns the bytes written. */
size_t identity_pack(const struct conn_identity *id, uint8_t *out);

/* Read one identity_pack()ed identity from the len bytes at in; *used gets
 * its size. NULL when out of memory or the bytes are not one. */
struct conn_identity *identity_unpack(const uint8_t *in, size_t len, size_t *used);

/* Point out[0..n) at the n pairs of a block (n <= IDENTITY_KV_MAX). */
void identity_kvs(const char *block, size_t n, struct ringmq_kv *out);

/* The CONNACK user properties have been sent: forget them. */
void identity_connack_sent(struct conn_identity *id);

#endif
