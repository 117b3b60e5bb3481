/*
 * identity: a connection's authenticated identity and its handover bytes
 * (see identity.h). Runs on the connection's shard.
 *
 * Handover layout, big-endian: [u16 tenant][u16 user id length][user id]
 * [u16 attributes][u32 bytes][block][u16 CONNACK properties][u32 bytes]
 * [block]. A user id of length 0 is "none".
 */
#include "broker/identity.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "broker/acl.h"

/* A pair kept: both strings fit an MQTT UTF-8 string (65,535 bytes), the
 * limit of the User Properties they may become. */
static bool pair_fits(const struct ringmq_kv *kv)
{
    return strlen(kv->key ? kv->key : "") <= UINT16_MAX &&
           strlen(kv->value ? kv->value : "") <= UINT16_MAX;
}

/* Copy up to IDENTITY_KV_MAX pairs that fit into one block; 0 or -1 (out
 * of memory). */
static int block_make(const struct ringmq_kv *kv, size_t n, char **out, uint32_t *len,
                      uint16_t *count)
{
    *out = NULL;
    *len = 0;
    *count = 0;
    size_t need = 0, kept = 0;
    for (size_t i = 0; i < n && kept < IDENTITY_KV_MAX; i++)
        if (pair_fits(&kv[i])) {
            need += strlen(kv[i].key ? kv[i].key : "") + strlen(kv[i].value ? kv[i].value : "") + 2;
            kept++;
        }
    if (kept == 0)
        return 0;
    char *b = malloc(need);
    if (!b)
        return -1;
    char *w = b;
    kept = 0;
    for (size_t i = 0; i < n && kept < IDENTITY_KV_MAX; i++) {
        if (!pair_fits(&kv[i]))
            continue;
        const char *k = kv[i].key ? kv[i].key : "", *v = kv[i].value ? kv[i].value : "";
        size_t kl = strlen(k) + 1, vl = strlen(v) + 1;
        memcpy(w, k, kl);
        memcpy(w + kl, v, vl);
        w += kl + vl;
        kept++;
    }
    *out = b;
    *len = (uint32_t)need;
    *count = (uint16_t)kept;
    return 0;
}

struct conn_identity *identity_create(uint16_t tenant, const char *user_id,
                                      const struct ringmq_kv *attrs, size_t n_attrs,
                                      const struct ringmq_kv *connack, size_t n_connack)
{
    struct conn_identity *id = calloc(1, sizeof(*id));
    if (!id)
        return NULL;
    id->tenant = tenant;
    if (user_id && strlen(user_id) > UINT16_MAX) {
        identity_free(id); /* cannot travel to the home shard; never sensible */
        return NULL;
    }
    if ((user_id && user_id[0] && !(id->user_id = strdup(user_id))) ||
        block_make(attrs, n_attrs, &id->attrs, &id->attrs_len, &id->n_attrs) < 0 ||
        block_make(connack, n_connack, &id->connack, &id->connack_len, &id->n_connack) < 0) {
        identity_free(id);
        return NULL;
    }
    return id;
}

void identity_free(struct conn_identity *id)
{
    if (!id)
        return;
    acl_free(id);
    free(id->user_id);
    free(id->attrs);
    free(id->connack);
    free(id);
}

struct conn_identity *identity_copy(const struct conn_identity *id)
{
    struct ringmq_kv attrs[IDENTITY_KV_MAX];
    identity_kvs(id->attrs, id->n_attrs, attrs);
    return identity_create(id->tenant, id->user_id, attrs, id->n_attrs, NULL, 0);
}

void identity_connack_sent(struct conn_identity *id)
{
    free(id->connack);
    id->connack = NULL;
    id->connack_len = 0;
    id->n_connack = 0;
}

size_t identity_packed_size(const struct conn_identity *id)
{
    size_t ulen = id->user_id ? strlen(id->user_id) : 0;
    return 4 + ulen + 6 + id->attrs_len + 6 + id->connack_len;
}

static uint8_t *put16(uint8_t *w, uint32_t v)
{
    w[0] = (uint8_t)(v >> 8);
    w[1] = (uint8_t)v;
    return w + 2;
}

static uint8_t *put32(uint8_t *w, uint32_t v)
{
    return put16(put16(w, v >> 16), v & 0xffffu);
}

/* memcpy without the NULL source that an empty field has (undefined even
 * for 0 bytes). */
static void put_bytes(uint8_t *w, const void *p, size_t n)
{
    if (n)
        memcpy(w, p, n);
}

size_t identity_pack(const struct conn_identity *id, uint8_t *out)
{
    size_t ulen = id->user_id ? strlen(id->user_id) : 0; /* <= UINT16_MAX (create) */
    uint8_t *w = put16(put16(out, id->tenant), (uint32_t)ulen);
    put_bytes(w, id->user_id, ulen);
    w = put32(put16(w + ulen, id->n_attrs), id->attrs_len);
    put_bytes(w, id->attrs, id->attrs_len);
    w = put32(put16(w + id->attrs_len, id->n_connack), id->connack_len);
    put_bytes(w, id->connack, id->connack_len);
    return (size_t)(w + id->connack_len - out);
}

static uint32_t get16(const uint8_t *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t get32(const uint8_t *p)
{
    return get16(p) << 16 | get16(p + 2);
}

/* A block of exactly n NUL-terminated pairs in len bytes? */
static bool block_valid(const uint8_t *b, size_t len, size_t n)
{
    if (n > IDENTITY_KV_MAX || (n == 0) != (len == 0))
        return false;
    size_t strings = 0;
    for (size_t i = 0; i < len; i++)
        strings += b[i] == 0;
    return strings == 2 * n && (len == 0 || b[len - 1] == 0);
}

static int block_copy(const uint8_t **p, const uint8_t *end, char **out, uint32_t *len,
                      uint16_t *count)
{
    if (end - *p < 6)
        return -1;
    uint32_t n = get16(*p), l = get32(*p + 2);
    *p += 6;
    if ((size_t)(end - *p) < l || !block_valid(*p, l, n))
        return -1;
    if (l) {
        *out = malloc(l);
        if (!*out)
            return -1;
        memcpy(*out, *p, l);
    }
    *len = l;
    *count = (uint16_t)n;
    *p += l;
    return 0;
}

struct conn_identity *identity_unpack(const uint8_t *in, size_t len, size_t *used)
{
    const uint8_t *p = in, *end = in + len;
    if (len < 4 || len - 4 < get16(in + 2))
        return NULL;
    struct conn_identity *id = calloc(1, sizeof(*id));
    if (!id)
        return NULL;
    id->tenant = (uint16_t)get16(p);
    size_t ulen = get16(p + 2);
    p += 4;
    if (ulen) {
        id->user_id = malloc(ulen + 1);
        if (!id->user_id)
            goto fail;
        memcpy(id->user_id, p, ulen);
        id->user_id[ulen] = 0;
        p += ulen;
    }
    if (block_copy(&p, end, &id->attrs, &id->attrs_len, &id->n_attrs) < 0 ||
        block_copy(&p, end, &id->connack, &id->connack_len, &id->n_connack) < 0)
        goto fail;
    *used = (size_t)(p - in);
    return id;
fail:
    identity_free(id);
    return NULL;
}

void identity_kvs(const char *block, size_t n, struct ringmq_kv *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i].key = block;
        block += strlen(block) + 1;
        out[i].value = block;
        block += strlen(block) + 1;
    }
}
