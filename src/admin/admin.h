/*
 * admin: the authenticated admin HTTP API ([admin] enabled, bind, port,
 * token_file): JSON under /api/v1, documented in docs/admin-api.md.
 *
 * libmicrohttpd serves it on its own thread, never on a shard. This room
 * owns the HTTP side (routing, authentication against the token file,
 * JSON with jansson) and knows nothing of shards: the broker answers its
 * questions through struct admin_ops, on the admin thread, and gathers
 * shard-owned data its own way (plain loads of the shard-local counters,
 * as the metrics collector does). Every refusal (401, 403) is logged.
 *
 * Authentication: `Authorization: Bearer TOKEN`, checked against the
 * token file's hashes (admin/token.h). No token or an unknown one: 401; a
 * token limited to other tenants, or a read token on a write endpoint:
 * 403. Without a token file (config allows that on loopback only) every
 * caller is an admin of every tenant.
 */
#ifndef RINGMQ_ADMIN_ADMIN_H
#define RINGMQ_ADMIN_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/* One tenant as GET /tenants shows it. */
struct admin_tenant {
    const char *name; /* borrowed: lives as long as the broker */
    uint64_t connections, sessions;
};

/* What the broker answers; each runs on the admin thread, one request at
 * a time, and must not block for long (a slow answer delays only other
 * admin requests). */
struct admin_ops {
    /* Every tenant the broker has seen, with its live counts: the first
     * `cap` into v; returns how many there are (more than cap: call
     * again with more room). */
    uint32_t (*tenants)(void *arg, struct admin_tenant *v, uint32_t cap);
};

struct admin_server;

/*
 * Load cfg->admin_token_file (when set) and listen on admin_bind:
 * admin_port (0 picks a port: *bound_port returns it, may be NULL). `ops`
 * and `arg` are borrowed and must outlive the server. NULL with a message
 * in err ("admin: ..." or the token file's "PATH:LINE: reason") on failure.
 */
struct admin_server *admin_server_start(const struct config *cfg, const struct admin_ops *ops,
                                        void *arg, uint16_t *bound_port, char *err, size_t errlen);

/* Stop: joins the HTTP thread, so no op runs once this returns. NULL: no-op. */
void admin_server_stop(struct admin_server *s);

#endif
