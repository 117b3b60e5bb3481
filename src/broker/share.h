/*
 * share: shared subscriptions, $share/GROUP/FILTER (MQTT 5.0 4.8.2, also
 * offered to 3.1.1 clients) and ringmq's ordered share $oshare/GROUP/FILTER.
 *
 * A group lives under its FILTER's trie node on every shard that knows of
 * it: the local members, and the mask of shards that have members (kept in
 * step with the interest messages, like plain subscriptions). Each message
 * goes to exactly one member: the publishing shard picks a shard from the
 * mask (round robin; for $oshare a hash of publisher and topic, so one
 * publisher's topic stays with one member), and that shard picks a member,
 * preferring connected ones. A shard that finds no member passes the
 * message on to another shard of its mask, a bounded number of times.
 */
#ifndef RINGMQ_BROKER_SHARE_H
#define RINGMQ_BROKER_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt/topic.h"

struct shard;
struct tenant;
struct session;
struct msg;
struct sub_node;
struct sub_req;
struct xmsg;

/* Add `ss` to the group (creating node and group as needed); *first says
 * whether it is this shard's first member (the caller tells the others).
 * 0 or -ENOMEM. Updates QoS and options when already a member. */
int share_member_add(struct shard *s, struct tenant *t, const struct mqtt_share_spec *sp,
                     struct session *ss, const struct sub_req *req, bool *first);

/* Remove `ss` from the group; tells the other shards when it was this
 * shard's last member, and frees what is left empty. */
void share_member_drop(struct shard *s, struct tenant *t, const struct mqtt_share_spec *sp,
                       const uint8_t *full, size_t full_len, struct session *ss);

/* Interest from shard `src`: it gained its first, or lost its last, member. */
void share_interest(struct tenant *t, uint32_t src, const struct mqtt_share_spec *sp, bool add);

/* While matching a publish on its own shard: remember the node's groups. */
void share_collect(struct shard *s, struct sub_node *n);

/* After matching: one member of every remembered group gets `m`. */
void share_deliver_collected(struct shard *s, struct tenant *t, struct msg *m);

/* XMSG_SHARE from another shard: deliver to a local member or pass on. */
void share_on_xmsg(struct shard *s, const struct xmsg *x);

/* A message a departing member never acknowledged goes to the group again
 * (`full` is the whole $share/... filter). Takes a reference of its own. */
void share_redispatch(struct shard *s, struct tenant *t, const uint8_t *full, size_t full_len,
                      struct msg *m);

/* Free a node's groups (shutdown). */
void share_groups_free(struct sub_node *n);

#endif
