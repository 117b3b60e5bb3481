/*
 * session subscriptions: what a session subscribed to (st.subs, the durable
 * list: filter, QoS, options, Subscription Identifier) and its entries in
 * the shard's topic index, through which route.c finds it: one struct
 * sub_entry in the filter's struct sub_node of the tenant's trie, or a
 * membership of a $share group (share.c).
 *
 * The list is the truth; the index follows it and is rebuilt from it. Every
 * change to the list is told to the shard's store (store.h). Runs on the
 * owning shard's thread.
 */
#ifndef RINGMQ_SESSION_SUBS_H
#define RINGMQ_SESSION_SUBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct shard;
struct session;
struct sub_req;
struct tenant_settings;

/* Add or replace (MQTT-3.8.4-3) a subscription; *is_new_interest says
 * whether this shard had no subscriber of the filter before (the caller
 * tells the other shards), *existed whether the session had this
 * subscription already. 0, -ENOSPC over the tenant's max_subscriptions or
 * -ENOMEM (the session as it was, except that a replaced subscription keeps
 * its new options). */
int session_subscribe(struct shard *s, struct session *ss, const uint8_t *filter, size_t len,
                      const struct sub_req *req, bool *is_new_interest, bool *existed);

/* True when the session holds exactly this filter. */
bool session_has_sub(struct session *ss, const uint8_t *filter, size_t len);

/* Remove a subscription; returns true when it existed. */
bool session_unsubscribe(struct shard *s, struct session *ss, const uint8_t *filter, size_t len);

/* True when a topic or filter is within the tenant's length and level
 * limits. */
bool topic_within_limits(const struct tenant_settings *ts, const uint8_t *t, size_t len);

/* ---- for session.c ---- */

/* A restored session (session_restore): index every subscription of its
 * list and count them; the other shards are told of each filter that is
 * new here (session_ops' interest_add). 0 or -ENOMEM. */
int subs_restore(struct shard *s, struct session *ss);

/* The session ends: out of the index and the counters, the list freed
 * (the store is told by the session's deletion). */
void subs_release(struct shard *s, struct session *ss);

#endif
