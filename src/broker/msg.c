/*
 * msg: reference-counted immutable messages. Any shard may release the last
 * reference, so the memory comes from malloc (thread-safe), not a shard slab.
 */
#include "broker/msg.h"

#include <stdlib.h>
#include <string.h>

struct msg *msg_create(const uint8_t *topic, size_t topic_len, const uint8_t *payload,
                       size_t payload_len, uint8_t qos, uint8_t retain)
{
    struct msg *m = malloc(sizeof(*m) + topic_len + payload_len);
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    m->payload_len = (uint32_t)payload_len;
    m->topic_len = (uint16_t)topic_len;
    m->qos = qos;
    m->retain = retain;
    memcpy(m->data, topic, topic_len);
    if (payload_len)
        memcpy(m->data + topic_len, payload, payload_len);
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
