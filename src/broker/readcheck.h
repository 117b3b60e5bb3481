/*
 * readcheck: the per-topic read checks of a session whose subscriptions the
 * auth plugin granted RINGMQ_GRANTED_PER_TOPIC (a deny rule overlaps the
 * filter without covering it). Such a subscription carries SUB_READ_CHECK;
 * a message matched through it is delivered only when the plugin's
 * check_read grants its topic. Subscriptions without the flag never come
 * here, so deliveries that no deny rule can touch cost nothing.
 *
 * The session keeps a copy of the identity of the connection that
 * subscribed (and of every later connection to it), so that queued
 * deliveries to an offline session are judged too, and the verdicts per
 * topic, asked once while cacheable and forgotten after a plugin reload.
 * Runs on the session's shard; the plugin is called synchronously.
 */
#ifndef RINGMQ_BROKER_READCHECK_H
#define RINGMQ_BROKER_READCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct shard;
struct session;
struct conn_identity;
struct readcheck;

/*
 * Judge ss's reads as identity `id` (copied; NULL: none, every read is
 * refused), forgetting the verdicts kept for an earlier one. Called when a
 * SUBSCRIBE is granted per topic and when a connection attaches to a
 * session that has read checks. 0, or -ENOMEM: the session then has no
 * read checks, and its SUB_READ_CHECK subscriptions deliver nothing (fail
 * closed).
 */
int readcheck_bind(struct session *ss, const struct conn_identity *id);

/*
 * May ss receive a message on `topic`? *hash is the topic's XXH3 hash, 0
 * until the first call for this message computes it (so one message checked
 * for many sessions is hashed once). False when ss has no read checks.
 */
bool readcheck_allows(struct shard *s, struct session *ss, const uint8_t *topic, size_t len,
                      uint64_t *hash);

/* Free a session's read checks. NULL is a no-op. */
void readcheck_free(struct readcheck *r);

#endif
