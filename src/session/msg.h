/*
 * msg: an application message as the broker routes it: topic, payload, QoS
 * and retain flag, immutable once created and shared by pointer between
 * subscribers and shards, never copied per subscriber.
 *
 * The reference count is the only shared mutable state: any shard may
 * acquire or release a reference it owns; the last release frees it.
 */
#ifndef RINGMQ_SESSION_MSG_H
#define RINGMQ_SESSION_MSG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct msg {
    atomic_uint refs;
    uint32_t payload_len;
    uint16_t topic_len;
    uint8_t qos;            /* QoS as published */
    uint8_t retain;         /* retain flag as published */
    uint32_t props_len;     /* MQTT 5.0 PUBLISH properties as received (validated) */
    uint64_t expires_at_ms; /* Message Expiry Interval as a deadline; 0: never */
    const void *origin;     /* publishing session, only compared (No Local) */
    uint64_t retain_stamp;  /* retained updates: Lamport stamp set by route_publish */
    uint64_t ingress;       /* QoS 2 with a store: its flow's key (broker/ingress.h); 0: none */
    uint8_t data[];         /* topic, payload, properties */
};

/* What a message is made of; the bytes are copied. */
struct msg_spec {
    const uint8_t *topic;
    size_t topic_len;
    const uint8_t *payload;
    size_t payload_len;
    const uint8_t *props; /* a PUBLISH property block without its length */
    size_t props_len;
    uint8_t qos;
    uint8_t retain;
    uint64_t expires_at_ms;
    const void *origin;
    uint64_t ingress;
};

/* A new message with one reference (the caller's). NULL on OOM. */
struct msg *msg_create(const struct msg_spec *spec);

static inline const uint8_t *msg_props(const struct msg *m)
{
    return m->data + m->topic_len + m->payload_len;
}

/* True when the message has expired at now_ms (MQTT-3.3.2-5). */
static inline int msg_expired(const struct msg *m, uint64_t now_ms)
{
    return m->expires_at_ms && now_ms >= m->expires_at_ms;
}

static inline const uint8_t *msg_topic(const struct msg *m)
{
    return m->data;
}

static inline const uint8_t *msg_payload(const struct msg *m)
{
    return m->data + m->topic_len;
}

/* Bytes a message of these parts takes (msg_size before it exists). */
static inline size_t msg_size_for(size_t topic_len, size_t payload_len, size_t props_len)
{
    return sizeof(struct msg) + topic_len + payload_len + props_len;
}

/* Bytes the message accounts for in queue and retained limits. */
static inline size_t msg_size(const struct msg *m)
{
    return msg_size_for(m->topic_len, m->payload_len, m->props_len);
}

/* About the bytes of one PUBLISH of m on the wire (what the outbound
 * quota counts): fixed header (<= 5), topic length, packet id and
 * properties length (<= 4) around topic, properties and payload. */
static inline size_t msg_publish_estimate(const struct msg *m)
{
    return 13u + m->topic_len + m->props_len + m->payload_len;
}

static inline struct msg *msg_acquire(struct msg *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

/* Drop one reference; frees the message on the last. NULL is a no-op. */
void msg_release(struct msg *m);

#endif
