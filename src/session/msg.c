/*
 * msg: reference-counted immutable messages. Any shard may release the last
 * reference, so the memory comes from malloc (thread-safe), not a shard slab.
 */
#include "session/msg.h"

#include <stdlib.h>
#include <string.h>

struct msg *msg_create(const struct msg_spec *sp)
{
    struct msg *m = malloc(sizeof(*m) + sp->topic_len + sp->payload_len + sp->props_len);
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    m->payload_len = (uint32_t)sp->payload_len;
    m->topic_len = (uint16_t)sp->topic_len;
    m->qos = sp->qos;
    m->retain = sp->retain;
    m->props_len = (uint32_t)sp->props_len;
    m->expires_at_ms = sp->expires_at_ms;
    m->origin = sp->origin;
    m->retain_stamp = 0;
    m->ingress = sp->ingress;
    memcpy(m->data, sp->topic, sp->topic_len);
    if (sp->payload_len)
        memcpy(m->data + sp->topic_len, sp->payload, sp->payload_len);
    if (sp->props_len)
        memcpy(m->data + sp->topic_len + sp->payload_len, sp->props, sp->props_len);
    return m;
}

void msg_release(struct msg *m)
{
    if (!m)
        return;
    /* acq_rel: the freeing thread must see every write made under other refs. */
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        free(m);
}
