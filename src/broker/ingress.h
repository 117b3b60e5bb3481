/*
 * ingress: exactly once for QoS 2 across a restart, with a store.
 *
 * An inbound QoS 2 message is routed when its PUBLISH arrives (method B of
 * MQTT-4.3.3-2), and the shards it reaches keep their deliveries in their
 * own logs. No two logs are written together, so after a crash one may
 * hold the message and another not: the publisher, which got no PUBREC,
 * sends the PUBLISH again (MQTT-4.3.3-1), and it must reach each
 * subscriber once. So inbound QoS 2 ids are not kept across a restart
 * (a resend after one is routed again); instead each shard that delivered
 * the message keeps its key, (tenant, publisher's client id, packet id)
 * hashed, until the publisher's PUBREL ends the flow, and a message whose
 * key it holds is not delivered there again. The PUBREL tells every
 * shard (XMSG_FORGET) and its PUBCOMP waits until each has recorded it,
 * so the publisher cannot use the id again while a shard still holds the
 * key. Keys of flows a publisher never ended go after max_session_expiry.
 *
 * Without a store nothing here runs: keys are 0 and nothing is kept.
 * Runs on the shard's thread; the table is the shard's (route_state).
 */
#ifndef RINGMQ_BROKER_INGRESS_H
#define RINGMQ_BROKER_INGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct shard;
struct tenant;
struct session;

/* The key of pid's flow from session ss of tenant t: never 0. */
uint64_t ingress_key(const struct tenant *t, const struct session *ss, uint16_t pid);

/* May this shard deliver the message of `key`? True the first time (the
 * key is kept, and told to the store); false when it holds the key: this
 * shard delivered it before the restart. */
bool ingress_admit(struct shard *s, uint64_t key);

/* The flow of `key` ended: forget it here (told to the store). */
void ingress_forget(struct shard *s, uint64_t key);

/* The publisher's PUBREL for pid: every shard forgets the key (the other
 * shards through their rings; the PUBCOMP waits for their stores). */
void ingress_release(struct shard *s, const struct tenant *t, const struct session *ss,
                     uint16_t pid);

/* Start-up: a key the store kept. 0 or -ENOMEM. */
int ingress_restore(struct shard *s, uint64_t key);

/* Every key held (a store's snapshot). */
void ingress_walk(const struct shard *s, void (*fn)(uint64_t key, void *arg), void *arg);

/* From the tick: forget keys older than the longest a session may wait
 * (mqtt.max_session_expiry). */
void ingress_gc(struct shard *s);

/* Free the table (shutdown). */
void ingress_fini(struct shard *s);

#endif
