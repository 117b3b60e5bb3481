/*
 * admin sessions: the endpoints of sessions (offline ones listed, one
 * shown, one deleted) and of retained messages (listed under a filter, one
 * shown, one cleared, a filter's cleared a bounded batch at a time). Runs on the admin server's
 * thread (server.c routes here once the caller may see the tenant); the broker answers through
 * struct admin_ops. Query values MHD hands over are percent-decoded.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "admin/http.h"
#include "core/log.h"

void admin_session_fini(struct admin_session *s)
{
    for (uint32_t i = 0; s->subs && i < s->subscriptions; i++)
        free(s->subs[i].filter);
    free(s->subs);
    free(s->id);
    s->subs = NULL;
    s->id = NULL;
}

void admin_session_page_fini(struct admin_session_page *p)
{
    for (uint32_t i = 0; i < p->n; i++)
        admin_session_fini(&p->v[i]);
    free(p->v);
    free(p->next);
    p->v = NULL;
    p->next = NULL;
    p->n = 0;
}

void admin_retained_fini(struct admin_retained *r)
{
    free(r->topic);
    free(r->payload);
    r->topic = NULL;
    r->payload = NULL;
}

void admin_retained_page_fini(struct admin_retained_page *p)
{
    for (uint32_t i = 0; i < p->n; i++)
        admin_retained_fini(&p->v[i]);
    free(p->v);
    free(p->next);
    p->v = NULL;
    p->next = NULL;
    p->n = 0;
}

static enum MHD_Result reply_oom(struct MHD_Connection *conn)
{
    return http_reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "out of memory");
}

/* Writes are for admin tokens: true when the caller may, else the 403 was
 * sent (*ret). */
bool http_may_write(struct MHD_Connection *conn, const struct caller *c, const char *method,
                    const char *url, enum MHD_Result *ret)
{
    if (!c->token || c->token->role == ADMIN_ROLE_ADMIN)
        return true;
    *ret = http_refuse(conn, c, MHD_HTTP_FORBIDDEN, "forbidden", "a read token may only GET",
                       method, url);
    return false;
}

json_t *http_page_json(const char *key, json_t *entries, json_t *next)
{
    json_t *body = entries && next ? json_pack("{s:o,s:o}", key, entries, "next", next) : NULL;
    if (!body) {
        json_decref(entries);
        json_decref(next);
    }
    return body;
}

json_t *http_page_next(bool more, const char *next, size_t next_len, const char *last,
                       size_t last_len)
{
    if (more && next)
        return json_stringn(next, next_len);
    return more && last ? json_stringn(last, last_len) : json_null();
}

/* One session as JSON (with its subscriptions' filters when it has them);
 * NULL when out of memory. Ids and filters are valid UTF-8 (MQTT-1.5.3-1). */
static json_t *session_json(const struct admin_session *s)
{
    json_t *expiry = s->expiry_s == ADMIN_EXPIRY_NEVER ? json_null() : json_integer(s->expiry_s);
    json_t *left = s->expires_in_ms < 0 ? json_null() : json_integer(s->expires_in_ms / 1000);
    json_t *o = json_pack("{s:s%,s:b,s:o,s:o,s:I,s:I,s:I}", "id", s->id, (size_t)s->id_len,
                          "connected", s->connected, "expiry_interval", expiry, "expires_in", left,
                          "subscriptions", (json_int_t)s->subscriptions, "inflight",
                          (json_int_t)s->inflight, "queued", (json_int_t)s->queued);
    if (!o || !s->subs)
        return o;
    json_t *subs = json_array();
    for (uint32_t i = 0; subs && i < s->subscriptions; i++) {
        const struct admin_sub *sub = &s->subs[i];
        json_t *id = sub->subid ? json_integer(sub->subid) : json_null();
        json_t *one = json_pack("{s:s%,s:i,s:b,s:b,s:i,s:o}", "filter", sub->filter,
                                (size_t)sub->len, "qos", (int)sub->qos, "no_local", sub->no_local,
                                "retain_as_published", sub->retain_as_published, "retain_handling",
                                (int)sub->retain_handling, "subscription_identifier", id);
        if (json_array_append_new(subs, one) < 0) {
            json_decref(subs);
            subs = NULL;
        }
    }
    if (!subs || json_object_set_new(o, "filters", subs) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* GET .../sessions[?offline=1&prefix=&after=&limit=]. */
static enum MHD_Result get_sessions(const struct admin_ops *ops, void *arg,
                                    struct MHD_Connection *conn, const char *tenant)
{
    struct admin_session_query q = {0};
    const char *bad = http_page_query(conn, &q.q);
    const char *off = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "offline");
    if (!bad && off && strcmp(off, "0") != 0 && strcmp(off, "1") != 0)
        bad = "offline must be 0 or 1";
    if (bad)
        return http_reply_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request", bad);
    q.offline = off && !strcmp(off, "1");
    struct admin_session_page page = {0};
    int err = ops->sessions(arg, tenant, &q, &page);
    if (err < 0)
        return http_reply_errno(conn, err, "no such tenant");
    json_t *arr = json_array();
    for (uint32_t i = 0; arr && i < page.n; i++)
        if (json_array_append_new(arr, session_json(&page.v[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    json_t *next =
        http_page_next(page.more, page.next, page.next_len, page.n ? page.v[page.n - 1].id : NULL,
                       page.n ? page.v[page.n - 1].id_len : 0);
    admin_session_page_fini(&page);
    json_t *body = http_page_json("sessions", arr, next);
    return body ? http_reply_json(conn, MHD_HTTP_OK, body) : reply_oom(conn);
}

enum MHD_Result http_sessions(const struct admin_ops *ops, void *arg, struct MHD_Connection *conn,
                              const struct caller *c, const char *method, const char *tenant,
                              const char *id, const char *url)
{
    bool get = !strcmp(method, MHD_HTTP_METHOD_GET);
    if (!get && (!id || strcmp(method, MHD_HTTP_METHOD_DELETE) != 0))
        return http_reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                                "GET sessions, DELETE one");
    if (!id)
        return get_sessions(ops, arg, conn, tenant);
    size_t len = strlen(id);
    if (!len || len > ADMIN_CLIENT_ID_MAX)
        return http_reply_error(conn, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
    if (get) {
        struct admin_session s = {0};
        int err = ops->session(arg, tenant, id, len, &s);
        if (err < 0)
            return http_reply_errno(conn, err, "no such session");
        json_t *o = session_json(&s);
        admin_session_fini(&s);
        return o ? http_reply_json(conn, MHD_HTTP_OK, o) : reply_oom(conn);
    }
    enum MHD_Result ret;
    if (!http_may_write(conn, c, method, url, &ret))
        return ret;
    int err = ops->session_delete(arg, tenant, id, len);
    if (err < 0)
        return http_reply_errno(conn, err, "no such session");
    log_info("admin: deleted session %.*s of tenant %s (from %s)", (int)len, id, tenant, c->peer);
    return http_reply_json(conn, MHD_HTTP_OK, json_pack("{s:s%}", "deleted", id, len));
}

/* ---- retained --------------------------------------------------------------------- */

/* RFC 4648 base64 of p[0..n), NUL-terminated, malloc'd; NULL when out of
 * memory. */
static char *base64(const uint8_t *p, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        *o++ = abc[v >> 18 & 63];
        *o++ = abc[v >> 12 & 63];
        *o++ = i + 1 < n ? abc[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? abc[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

/* One retained message as JSON, its payload (base64) when it holds one;
 * NULL when out of memory. Topics are valid UTF-8 (MQTT-3.3.2-1). */
static json_t *retained_json(const struct admin_retained *r)
{
    json_t *o = json_pack("{s:s%,s:i,s:I,s:I}", "topic", r->topic, (size_t)r->topic_len, "qos",
                          (int)r->qos, "payload_length", (json_int_t)r->payload_len,
                          "properties_length", (json_int_t)r->props_len);
    if (!o || !r->payload)
        return o;
    char *b64 = base64(r->payload, r->payload_len);
    if (!b64 || json_object_set_new(o, "payload", json_string(b64)) < 0) {
        free(b64);
        json_decref(o);
        return NULL;
    }
    free(b64);
    return o;
}

/* GET .../retained?filter=&after=&limit= (filter "#" when absent). */
static enum MHD_Result get_retained_page(const struct admin_ops *ops, void *arg,
                                         struct MHD_Connection *conn, const char *tenant)
{
    struct admin_client_query pq;
    const char *bad = http_page_query(conn, &pq);
    const char *filter = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "filter");
    if (!filter)
        filter = "#";
    if (!bad && (pq.prefix || strlen(filter) > ADMIN_TOPIC_MAX))
        bad = "retained takes filter, after and limit";
    if (bad)
        return http_reply_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request", bad);
    struct admin_retained_query q = {filter, strlen(filter), pq.after, pq.after_len, pq.limit};
    struct admin_retained_page page = {0};
    int err = ops->retained(arg, tenant, &q, &page);
    if (err < 0)
        return http_reply_errno(conn, err, "no such tenant");
    json_t *arr = json_array();
    for (uint32_t i = 0; arr && i < page.n; i++)
        if (json_array_append_new(arr, retained_json(&page.v[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    json_t *next = http_page_next(page.more, page.next, page.next_len,
                                  page.n ? page.v[page.n - 1].topic : NULL,
                                  page.n ? page.v[page.n - 1].topic_len : 0);
    admin_retained_page_fini(&page);
    json_t *body = http_page_json("retained", arr, next);
    return body ? http_reply_json(conn, MHD_HTTP_OK, body) : reply_oom(conn);
}

/* DELETE .../retained?filter=[&after=][&limit=]: the matches of one page
 * read from `after` (at most `limit`, default and most
 * ADMIN_RETAINED_CLEAR_MAX) cleared; `next` is where to go on. */
static enum MHD_Result delete_retained_filter(const struct admin_ops *ops, void *arg,
                                              struct MHD_Connection *conn, const struct caller *c,
                                              const char *tenant, const char *filter)
{
    const char *lim = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
    const char *after = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "after");
    unsigned long limit = ADMIN_RETAINED_CLEAR_MAX;
    if (lim) {
        char *end;
        errno = 0;
        limit = strtoul(lim, &end, 10);
        if (!*lim || *end || errno || *lim == '-' || limit < 1 || limit > ADMIN_RETAINED_CLEAR_MAX)
            return http_reply_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request",
                                    "limit must be a number from 1 to 1000");
    }
    struct admin_retained_query q = {filter, strlen(filter), after, after ? strlen(after) : 0,
                                     (uint32_t)limit};
    if (q.filter_len > ADMIN_TOPIC_MAX || q.after_len > ADMIN_TOPIC_MAX)
        return http_reply_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request",
                                "filter must be a topic filter, after a topic");
    struct admin_retained_cleared done = {0};
    int err = ops->retained_clear(arg, tenant, &q, &done);
    if (err < 0)
        return http_reply_errno(conn, err, "no such tenant");
    log_info("admin: cleared %u retained message(s) under %s in tenant %s%s (from %s)",
             (unsigned)done.n, filter, tenant, done.more ? ", more left" : "", c->peer);
    json_t *next = http_page_next(done.more, done.next, done.next_len, NULL, 0);
    free(done.next);
    json_t *body = next ? json_pack("{s:I,s:b,s:o}", "deleted", (json_int_t)done.n, "more",
                                    done.more, "next", next)
                        : NULL;
    return body ? http_reply_json(conn, MHD_HTTP_OK, body) : reply_oom(conn);
}

enum MHD_Result http_retained(const struct admin_ops *ops, void *arg, struct MHD_Connection *conn,
                              const struct caller *c, const char *method, const char *tenant,
                              const char *url)
{
    bool get = !strcmp(method, MHD_HTTP_METHOD_GET);
    if (!get && strcmp(method, MHD_HTTP_METHOD_DELETE) != 0)
        return http_reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                                "GET retained messages, DELETE one or a filter's");
    enum MHD_Result ret;
    if (!get && !http_may_write(conn, c, method, url, &ret))
        return ret;
    const char *topic = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "topic");
    const char *filter = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "filter");
    if (get && !topic)
        return get_retained_page(ops, arg, conn, tenant);
    if (!get && filter && !topic)
        return delete_retained_filter(ops, arg, conn, c, tenant, filter);
    if (!topic || strlen(topic) > ADMIN_TOPIC_MAX || (!get && filter))
        return http_reply_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request",
                                "DELETE takes ?topic=, a topic name, or ?filter=, a topic filter");
    size_t len = strlen(topic);
    if (get) {
        struct admin_retained r = {0};
        int err = ops->retained_one(arg, tenant, topic, len, &r);
        if (err < 0)
            return http_reply_errno(conn, err, "no retained message on that topic");
        json_t *o = retained_json(&r);
        admin_retained_fini(&r);
        return o ? http_reply_json(conn, MHD_HTTP_OK, o) : reply_oom(conn);
    }
    int err = ops->retained_delete(arg, tenant, topic, len);
    if (err < 0)
        return http_reply_errno(conn, err, "no retained message on that topic");
    log_info("admin: cleared the retained message of %s in tenant %s (from %s)", topic, tenant,
             c->peer);
    return http_reply_json(conn, MHD_HTTP_OK, json_pack("{s:s%}", "cleared", topic, len));
}
