/*
 * session outbox: a session's messages on their way to its client, and the
 * client's QoS 2 flows on their way in.
 *
 * Out: a delivery at QoS 0 is written to the connection or dropped (offline,
 * over the outbound quota, or shed for a subscriber that does not keep up);
 * at QoS 1/2 it takes a packet id in the in-flight window (st.infl, at most
 * `window` entries: the client's Receive Maximum) or waits in the bounded
 * queue (st.q, in order), which the window pulls from as acknowledgements
 * come. Sessions over the tenant's outbound bytes quota wait on the shard's
 * throttled list. In: the ids of QoS 2 PUBLISHes delivered and waiting for
 * their PUBREL (st.qos2_in, MQTT-4.3.3-2 method A).
 *
 * Every change to the window, the queue and the QoS 2 ids is told to the
 * shard's store (store.h) where it is made. Runs on the owning shard's
 * thread; messages are borrowed from the caller unless said otherwise.
 */
#ifndef RINGMQ_SESSION_OUTBOX_H
#define RINGMQ_SESSION_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct shard;
struct session;
struct msg;

/* Where the deliveries being made stand with the tenant's outbound bytes
 * quota (route.c asks once per message and shard). */
enum out_quota {
    OUT_UNASKED = 0, /* not a routed publish (redispatch): not counted */
    OUT_GRANTED = 1, /* counted already */
    OUT_OVER = 2,    /* refused: QoS 0 dropped, QoS 1/2 held back */
};

/* A session whose QoS 0 output is dropped (slow) is told it caught up (by
 * the broker's connection) once its backlog is below the smaller of a
 * quarter of max_client_output and half of SESSION_SLOW_MIN; with the
 * broker over limits.max_slow_output_total, clients with SESSION_SLOW_MIN
 * unsent are slow. */
#define SESSION_SLOW_MIN (64u << 10)

/* Deliver `m` at `qos` (already the min of message and subscription QoS),
 * with `nids` Subscription Identifiers; QoS 1/2 take a reference to m. */
void session_deliver(struct shard *s, struct session *ss, struct msg *m, uint8_t qos, bool retain,
                     const uint32_t *ids, size_t nids);

/* The same for a delivery through the shared subscription `share`: if the
 * session ends before the client acknowledges, the message goes to another
 * member of the group. */
void session_deliver_shared(struct shard *s, struct session *ss, struct msg *m, uint8_t qos,
                            bool retain, const uint32_t *ids, size_t nids, const uint8_t *share,
                            size_t share_len);

/* Send what sessions held back for the outbound bytes quota, as far as the
 * quota allows now (each shard tick). */
void session_drain_throttled(struct shard *s);

/* After CONNACK: resend in-flight messages (DUP) and PUBRELs in order, then
 * move queued messages in (MQTT-4.4.0-1). */
void session_resume(struct shard *s, struct session *ss);

/* Acknowledgements from the client. Return 0, or a reason code for a
 * protocol violation (the caller closes). */
int session_on_puback(struct shard *s, struct session *ss, uint16_t pid);
int session_on_pubrec(struct shard *s, struct session *ss, uint16_t pid, uint8_t reason);
int session_on_pubcomp(struct shard *s, struct session *ss, uint16_t pid);

/* Inbound QoS 2 ids: true when pid is waiting for PUBREL. */
bool session_qos2_has(const struct session *ss, uint16_t pid);

/* Remember pid until its PUBREL: 0, -ENOSPC beyond our Receive Maximum
 * (MQTT-3.3.4-7), -ENOMEM. */
int session_qos2_add(struct shard *s, struct session *ss, uint16_t pid);

/* PUBREL (or a failing PUBREC) ended the flow of pid; an unknown pid is
 * ignored. */
void session_qos2_del(struct shard *s, struct session *ss, uint16_t pid);

/* ---- for session.c ---- */

/* The session ends: leave the throttled list, hand unacknowledged shared
 * deliveries to another member of their group (unless the shard stops),
 * release the window, the queue and the QoS 2 ids. */
void outbox_release(struct shard *s, struct session *ss);

/* The connection is gone: free the window and id arrays if empty, so an
 * offline session holds none. */
void outbox_trim(struct session *ss);

#endif
