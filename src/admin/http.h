/*
 * http: what the admin room's endpoint files share (server.c: routing,
 * authentication, tenants and clients; sessions.c: sessions and retained
 * messages). Private to src/admin; every function runs on the admin
 * server's one libmicrohttpd thread.
 */
#ifndef RINGMQ_ADMIN_HTTP_H
#define RINGMQ_ADMIN_HTTP_H

#include <arpa/inet.h>

#include <jansson.h>
#include <microhttpd.h>

#include "admin/admin.h"
#include "admin/token.h"

/* Who is asking: the token's rights (or every right without tokens). */
struct caller {
    const struct admin_token *token; /* NULL: open (no token file) */
    char peer[INET6_ADDRSTRLEN];
    const char *body; /* a POST's body (body_len bytes, not NUL-terminated); NULL: none */
    size_t body_len;
};

/* A request body's most bytes (a POST's JSON): past it, 413. */
#define ADMIN_BODY_MAX (256u * 1024u)

/* Send `body` (taken: freed here) as JSON with `status`. */
enum MHD_Result http_reply_json(struct MHD_Connection *conn, unsigned int status, json_t *body);

/* A page: `entries` (an array) and `next` (a string or null) as {KEY:
 * entries, "next": next}, both taken (NULL ones too). NULL when out of
 * memory. */
json_t *http_page_json(const char *key, json_t *entries, json_t *next);

/* A clients or sessions page's `next` (new reference, NULL when out of
 * memory): null without `more`, else the page's own cursor `next` when it
 * has one (a page cut short by the shards' work bound), else its last id
 * `last` (NULL: none, then null). */
json_t *http_page_next(bool more, const char *next, size_t next_len, const char *last,
                       size_t last_len);

/* An error: {"error": {"code": CODE, "message": MESSAGE}}. */
enum MHD_Result http_reply_error(struct MHD_Connection *conn, unsigned int status, const char *code,
                                 const char *message);

/* An op's -errno as the answer (-ENOENT: 404 with `missing`). */
enum MHD_Result http_reply_errno(struct MHD_Connection *conn, int err, const char *missing);

/* A refusal (401, 403): logged, rate-limited, then answered. */
enum MHD_Result http_refuse(struct MHD_Connection *conn, const struct caller *c,
                            unsigned int status, const char *code, const char *message,
                            const char *method, const char *url);

/* ?prefix=&after=&limit= into *q; NULL, or why the query is refused. */
const char *http_page_query(struct MHD_Connection *conn, struct admin_client_query *q);

/* .../sessions[/{id}] (`id` NULL: the listing): GET, and DELETE of one
 * (admin role). The tenant is one the caller may see. */
enum MHD_Result http_sessions(const struct admin_ops *ops, void *arg, struct MHD_Connection *conn,
                              const struct caller *c, const char *method, const char *tenant,
                              const char *id, const char *url);

/* .../retained: GET ?filter= (a page) or ?topic= (one), DELETE ?topic=
 * or ?filter=[&after=][&limit=] (admin role). */
enum MHD_Result http_retained(const struct admin_ops *ops, void *arg, struct MHD_Connection *conn,
                              const struct caller *c, const char *method, const char *tenant,
                              const char *url);

/* POST .../publish (admin role): the body's message into the tenant. */
enum MHD_Result http_publish(const struct admin_ops *ops, void *arg, struct MHD_Connection *conn,
                             const struct caller *c, const char *method, const char *tenant,
                             const char *url);

/* POST .../sessions/{id}/subscriptions {filter, qos, options} and DELETE
 * ...?filter= (admin role), `id` id_len bytes. */
enum MHD_Result http_subscriptions(const struct admin_ops *ops, void *arg,
                                   struct MHD_Connection *conn, const struct caller *c,
                                   const char *method, const char *tenant, const char *id,
                                   size_t id_len, const char *url);

/* POST /reload (admin role, every tenant): the reload SIGHUP makes, done
 * now; its outcome as JSON (admin/reload.c). */
enum MHD_Result http_reload(const struct admin_ops *ops, void *arg, struct MHD_Connection *conn,
                            const struct caller *c, const char *method, const char *url);

/* Writes are for admin tokens: true when the caller may, else the 403 was
 * sent (*ret). */
bool http_may_write(struct MHD_Connection *conn, const struct caller *c, const char *method,
                    const char *url, enum MHD_Result *ret);

#endif
