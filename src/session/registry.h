/*
 * session registry: the sessions of one tenant homed on this shard, by
 * client id. A chained hash table whose buckets live in struct tenant (reg,
 * reg_mask, reg_count) and whose chain links live in the sessions
 * (reg_next, reg_hash), so a session costs no allocation here. Every
 * session linked here is also in the tenant's id order (idtree.h, root
 * t->reg_root), linked and removed with it.
 *
 * Runtime only: a store keys sessions by (tenant, client id) itself. Runs on
 * the owning shard's thread. Only the session room (session.c) adds and
 * removes; anyone on the shard may look up.
 */
#ifndef RINGMQ_SESSION_REGISTRY_H
#define RINGMQ_SESSION_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tenant;
struct session;

/* True when tenant `t` holds a session for this client id here. */
bool session_exists(struct tenant *t, const uint8_t *id, size_t len);

/* The session of client id `id` in tenant t, or NULL (borrowed). */
struct session *session_find(struct tenant *t, const uint8_t *id, size_t len);

/* True when that session is held by a connection, which a CONNECT with the
 * same client id takes over (closes). */
bool session_connected(struct tenant *t, const uint8_t *id, size_t len);

/* ---- for session.c ---- */

/* The hash that places client id `id` of tenant t (seeded by its id). */
uint32_t reg_hash(const struct tenant *t, const uint8_t *id, size_t len);

/* The link that points at the session of `id` (hash h), or NULL. */
struct session **reg_find(struct tenant *t, uint32_t h, const uint8_t *id, size_t len);

/* Make room for one more session (doubling the buckets when full), so that
 * reg_link cannot fail. 0 or -ENOMEM. */
int reg_reserve(struct tenant *t);

/* Add ss, whose client id hashes to h (to the id order too); after
 * reg_reserve. */
void reg_link(struct tenant *t, struct session *ss, uint32_t h);

/* Remove ss if it is registered (from the id order too). */
void reg_remove(struct tenant *t, struct session *ss);

#endif
