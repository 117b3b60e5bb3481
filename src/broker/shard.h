/*
 * broker/shard.h: what the broker adds to a shard (shard/shard.h): its
 * hooks (serve.c), its tenants, and what cross-shard messages carry.
 */
#ifndef RINGMQ_BROKER_SHARD_H
#define RINGMQ_BROKER_SHARD_H

#include "core/slab.h"
#include "core/wheel.h"
#include "metrics/counters.h"
#include "shard/shard.h"

/* The broker's side of every shard's loop (serve.c). */
extern const struct shard_hooks serve_hooks;

/* Release what a cross-shard message carries (it will not be handled). */
void shard_xmsg_discard(const struct xmsg *x);

/* The shard's state of tenant `id` (a directory id), created on first use;
 * NULL only when out of memory. */
struct tenant *shard_tenant(struct shard *s, uint16_t id);

#endif
