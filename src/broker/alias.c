/*
 * alias: topic alias tables of one MQTT 5.0 connection. The inbound table
 * is indexed by alias; the outbound one is a small open-addressing hash of
 * topic -> alias that only grows (aliases are never reassigned, so a client
 * never sees one change meaning mid-stream).
 */
#include "broker/alias.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

void conn_v5_destroy(struct conn_v5 *v)
{
    if (!v)
        return;
    if (v->alias_in) {
        for (uint32_t i = 0; i <= v->alias_max_in; i++)
            free(v->alias_in[i].topic);
        free(v->alias_in);
    }
    if (v->alias_out) {
        for (uint32_t i = 0; i < v->alias_out_cap; i++)
            free(v->alias_out[i].topic);
        free(v->alias_out);
    }
    free(v->auth_method);
    free(v);
}

int alias_in_set(struct conn_v5 *v, uint16_t alias, const uint8_t *topic, size_t len)
{
    if (!v->alias_in) {
        v->alias_in = calloc((size_t)v->alias_max_in + 1, sizeof(*v->alias_in));
        if (!v->alias_in)
            return -ENOMEM;
    }
    struct alias_in_entry *e = &v->alias_in[alias];
    if (e->topic && e->len == len && memcmp(e->topic, topic, len) == 0)
        return 0;
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, topic, len);
    free(e->topic);
    e->topic = copy;
    e->len = (uint16_t)len;
    return 0;
}

const uint8_t *alias_in_get(const struct conn_v5 *v, uint16_t alias, size_t *len)
{
    if (!v->alias_in || alias > v->alias_max_in || !v->alias_in[alias].topic)
        return NULL;
    *len = v->alias_in[alias].len;
    return v->alias_in[alias].topic;
}

uint16_t alias_out_get(struct conn_v5 *v, const uint8_t *topic, size_t len, bool *known)
{
    *known = false;
    if (v->alias_max_out == 0)
        return 0;
    if (!v->alias_out) {
        /* Twice the aliases we may hand out keeps probes short. */
        uint32_t cap = 16;
        while (cap < 2u * v->alias_max_out)
            cap *= 2;
        v->alias_out = calloc(cap, sizeof(*v->alias_out));
        if (!v->alias_out)
            return 0;
        v->alias_out_cap = cap;
    }
    uint64_t h = XXH3_64bits(topic, len);
    uint32_t mask = v->alias_out_cap - 1;
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        struct alias_out_entry *e = &v->alias_out[i];
        if (e->alias == 0) {
            if (v->alias_used_out >= v->alias_max_out)
                return 0;
            uint8_t *copy = malloc(len ? len : 1);
            if (!copy)
                return 0;
            memcpy(copy, topic, len);
            e->hash = h;
            e->len = (uint16_t)len;
            e->topic = copy;
            e->alias = ++v->alias_used_out;
            return e->alias;
        }
        if (e->hash == h && e->len == len && memcmp(e->topic, topic, len) == 0) {
            *known = true;
            return e->alias;
        }
    }
}

void alias_out_undo(struct conn_v5 *v, uint16_t alias, const uint8_t *topic, size_t len)
{
    if (alias == 0 || alias != v->alias_used_out || !v->alias_out)
        return;
    /* The newest entry: every other one was placed while its slot was
     * free, so no probe sequence passes through it and emptying the slot
     * breaks no lookup. */
    uint64_t h = XXH3_64bits(topic, len);
    uint32_t mask = v->alias_out_cap - 1;
    for (uint32_t i = (uint32_t)h & mask; v->alias_out[i].alias; i = (i + 1) & mask) {
        struct alias_out_entry *e = &v->alias_out[i];
        if (e->alias == alias) {
            free(e->topic);
            *e = (struct alias_out_entry){0};
            v->alias_used_out--;
            return;
        }
    }
}
