/*
 * control: the broker's side of the admin API (admin/admin.h's struct
 * admin_ops), and the path its questions take to the shards.
 *
 * Counters (the tenant listing) are read with plain loads, as a metrics
 * scrape reads them. Everything else a shard owns (its connections and
 * sessions) only that shard's thread touches, so the admin thread asks,
 * without a lock on either side:
 *
 *   admin thread                               shard i (its own thread)
 *   r = a request, 2 refs, the query copied in
 *   old = exchange(shard->admin_req, r)
 *     (old: one the shard never took: drop
 *      the shard's ref for it)
 *   write(shard->admin_fd, 1)        ----->    UD_ADMIN: the read of admin_fd
 *                                              completes (one is always armed)
 *                                              r = exchange(admin_req, NULL)
 *                                              answer into r, in this handler
 *                                              store(r->done, true, release)
 *   poll(broker->admin_done_fd)      <-----    write(broker->admin_done_fd, 1)
 *   load(r->done, acquire) for each            drop its ref; re-arm the read
 *   merge the answers, drop its refs
 *
 * A shard answers a request whole within the loop turn that saw the wake:
 * a page of clients or sessions seeks in the tenant's sessions in id order
 * (session/idtree.h) and reads forward, at most ADMIN_PAGE_MAX taken and
 * [admin] page_budget looked at (control_walk: O(log n + page_budget)); a
 * shard that stopped says up to which id it looked, and the merge keeps
 * only what every shard has looked at (control_merge, keyset paging: a
 * page may be short, `next` then says where to go on). One client
 * and a kick go to the client id's home shard only, where its session and
 * connection live (shard_home); so do one session and its delete
 * (control_sessions.c). Retained messages are
 * asked of shard 0 alone, whose replica is whole (control_retained.c): a
 * page is one walk of the topics the filter matches, and a clear is
 * published there as the broker's own empty retained PUBLISH, which
 * route_publish carries to every replica and the store. The request
 * (control_req.h) is shared by those files. The admin thread waits at most
 * ADMIN_SHARD_WAIT_MS for every answer; past it the request fails
 * (-ETIMEDOUT, 503) and lives on until the shard drops its reference too
 * (whoever drops the last frees it), so a late answer writes into live
 * memory and is then thrown away. At most one request waits per shard.
 *
 * Ops run on the admin thread only, one at a time (libmicrohttpd's one
 * internal thread): the slots assume a single poster.
 */
#ifndef RINGMQ_BROKER_CONTROL_H
#define RINGMQ_BROKER_CONTROL_H

#include <liburing.h>

#include "admin/admin.h"

struct broker;
struct shard;

/* The ops the admin server is started with; `arg` is the broker. */
extern const struct admin_ops control_admin_ops;

/* The shards' eventfds and the broker's, when [admin] is enabled (before
 * the shard threads start). 0 or -errno. */
int control_init(struct broker *b);

/* Free a request left in a shard's slot and close the eventfds (the shard
 * threads have stopped, the admin server too). */
void control_fini(struct broker *b);

/* On the shard: arm the read of admin_fd (serve_start; nothing without
 * [admin]). */
void control_arm(struct shard *s);

/* On the shard: UD_ADMIN completed: answer the posted request, re-arm. */
void control_on_cqe(struct shard *s, const struct io_uring_cqe *cqe);

#endif
