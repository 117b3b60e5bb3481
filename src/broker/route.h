/*
 * route: where a published message goes. Matches the shard's slice of the
 * tenant's index (local subscribers, and the interest mask of the other
 * shards), keeps the retained store replicas in step, and maintains the
 * interest table across shards.
 */
#ifndef RINGMQ_BROKER_ROUTE_H
#define RINGMQ_BROKER_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct shard;
struct tenant;
struct msg;
struct session;
struct xmsg;

/* True for "$SYS" and "$SYS/...": the broker's own topics. */
bool route_is_sys_topic(const uint8_t *topic, size_t len);

/* A message published on this shard (by a client or a will). Updates the
 * retained store when m->retain, delivers locally and forwards one
 * reference to each other interested shard. Takes the caller's reference. */
void route_publish(struct shard *s, struct tenant *t, struct msg *m);

/* May a retained message of `payload_len` bytes and `props_len` bytes of
 * properties on `topic` be stored for tenant t (session ss, may be NULL,
 * for the event)? Asks the tenant's retained limits and quota for what it
 * adds: a topic when it has no retained message yet, and the bytes beyond
 * the one it replaces, counted as the retained bytes gauge counts them
 * (the message once, the topic's index nodes on every shard). */
bool route_retain_allowed(struct shard *s, struct tenant *t, const uint8_t *topic, size_t len,
                          size_t payload_len, size_t props_len, const struct session *ss);

/* This shard's first subscriber of `filter` appeared: tell every other
 * shard; each answers XMSG_ACK with `token`. Returns how many acks to wait
 * for. */
uint32_t route_interest_add(struct shard *s, struct tenant *t, const uint8_t *filter, size_t len,
                            uint64_t token);

/* This shard's last subscriber of `filter` left. */
/* A restored subscription's filter is new on this shard: the other shards
 * are told, with nothing waiting for their acks (store.h). */
void route_interest_restored(struct shard *s, struct tenant *t, const uint8_t *filter, size_t len);

/* A retained message a store kept (one reference, taken), at start-up:
 * applied here and sent to every other shard; the retained clock moves
 * past its stamp. 0. */
int route_retain_restore(struct shard *s, struct tenant *t, struct msg *m);

void route_interest_del(struct shard *s, struct tenant *t, const uint8_t *filter, size_t len);

/* Ask every other shard for an XMSG_ACK (a barrier behind earlier
 * messages). Returns how many acks to wait for. */
uint32_t route_ping_all(struct shard *s, uint64_t token);

/* Send the retained messages matching `filter` to `ss` at most at `qos`,
 * with the subscription's identifier (0: none); with `read_check` (a
 * subscription granted per topic) only those whose topic readcheck_allows,
 * the others counted as dropped (RINGMQ_DROP_DENIED).
 *
 * The matching messages are taken (referenced) now and sent as the client
 * takes them: route_replay_pump produces more while less than 64 KiB waits
 * for its socket and nothing waits in its session queue, so a subscriber
 * that reads gets every one of any number (one loop turn used to produce
 * them all, and the QoS 0 output cap dropped what did not fit). A message
 * whose topic was given another retained message (or cleared) since is
 * skipped: the newer one went out live. If the connection goes, the QoS
 * 1/2 ones left are queued in its session as before; the rest are dropped,
 * as are those of a filter unsubscribed meanwhile. A session without a
 * connection (a subscription the admin API added) gets them all at once
 * that way: the QoS 1/2 ones queued, the QoS 0 ones not (never stored for
 * an offline session). */
void route_send_retained(struct shard *s, struct session *ss, const uint8_t *filter, size_t len,
                         uint8_t qos, uint32_t subid, bool read_check);

/* Once per loop turn: let every retained replay in progress send what its
 * client can take (see route_send_retained). */
void route_replay_pump(struct shard *s);

/* Handle one message from another shard. */
void route_on_xmsg(struct shard *s, const struct xmsg *x);

/* Forget the retained clears kept long enough (from the shard's tick). */
void route_retain_gc(struct shard *s);

/* Free a sub_node (trie value) and the retained references (shutdown). */
void route_tenant_fini(struct shard *s, struct tenant *t);

/* The shard's routing state (struct route_state, opaque outside route.c:
 * publish matching scratch, retained replays in progress, the retained
 * clock and tombstones) in s->route. 0 or -ENOMEM. */
int route_init(struct shard *s);

/* Free the replays still in progress, the retained clears still kept and
 * the state (shutdown, after every tenant's route_tenant_fini). */
void route_fini(struct shard *s);

#endif
