/*
 * observe: what the broker tells the outside about itself: the Prometheus
 * collector (summing each tenant's shard-local counters when read), the
 * $SYS topics, and events for the event collector plugins.
 */
#ifndef RINGMQ_BROKER_OBSERVE_H
#define RINGMQ_BROKER_OBSERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/shard.h"
#include "ringmq/plugin.h"

struct metrics_writer;
struct shard;
struct tenant;
struct conn;
struct session;

struct msg;

/* May tenant `t` use `amount` more of `r`? Checks the tenant's own limit
 * and asks the throttle plugins with its current use over every shard
 * (tenant/usage.h); counts and reports a refusal.
 * For the per-second resources (connect rate, bytes in and out) `current`
 * is this second's use, and an allowed amount of bytes is counted as used.
 * True without throttle plugins. */
bool observe_throttle(struct shard *s, struct tenant *t, enum ringmq_resource r, uint64_t amount,
                      const struct session *ss);

/* n messages (m, when known, for its topic) not delivered for `why`:
 * counted, and one MESSAGE_DROPPED event (ss: the subscriber, or NULL). */
void observe_drop(struct shard *s, struct tenant *t, const struct session *ss,
                  enum ringmq_drop_reason why, const struct msg *m, uint64_t n);

/* metrics_collect_fn: runs on the metrics HTTP thread; `arg` is the broker. */
void observe_collect(struct metrics_writer *w, void *arg);

/* Called on every tick of shard 0: publishes the $SYS topics every
 * cfg->sys_interval seconds into cfg->sys_tenant. */
void observe_sys_tick(struct shard *s);

/* One event to every event collector plugin (nothing without plugins).
 * `ss` may be NULL; `topic` may be NULL. */
void observe_event(struct shard *s, enum ringmq_event_type type, const struct tenant *t,
                   const struct session *ss, uint32_t reason, enum ringmq_resource resource,
                   const uint8_t *topic, size_t topic_len);

#endif
