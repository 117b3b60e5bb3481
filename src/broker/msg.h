/*
 * msg: an application message as the broker routes it: topic, payload, QoS
 * and retain flag, immutable once created and shared by pointer between
 * subscribers and shards, never copied per subscriber.
 *
 * The reference count is the only shared mutable state: any shard may
 * acquire or release a reference it owns; the last release frees it.
 */
#ifndef RINGMQ_BROKER_MSG_H
#define RINGMQ_BROKER_MSG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct msg {
    atomic_uint refs;
    uint32_t payload_len;
    uint16_t topic_len;
    uint8_t qos;    /* QoS as published */
    uint8_t retain; /* retain flag as published */
    uint8_t data[]; /* topic, then payload */
};

/* A new message with one reference (the caller's). NULL on OOM. */
struct msg *msg_create(const uint8_t *topic, size_t topic_len, const uint8_t *payload,
                       size_t payload_len, uint8_t qos, uint8_t retain);

static inline const uint8_t *msg_topic(const struct msg *m)
{
    return m->data;
}

static inline const uint8_t *msg_payload(const struct msg *m)
{
    return m->data + m->topic_len;
}

/* Bytes the message accounts for in queue limits. */
static inline size_t msg_size(const struct msg *m)
{
    return sizeof(*m) + m->topic_len + m->payload_len;
}

static inline struct msg *msg_acquire(struct msg *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

/* Drop one reference; frees the message on the last. NULL is a no-op. */
void msg_release(struct msg *m);

#endif
