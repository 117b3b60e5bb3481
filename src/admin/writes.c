/*
 * admin writes: the endpoints that take a JSON body and act on a tenant's
 * traffic: POST .../publish (a message published as the broker's own) and
 * a session's subscriptions (POST .../sessions/{id}/subscriptions, DELETE
 * ...?filter=). Admin role only. The body (at most ADMIN_BODY_MAX bytes,
 * gathered by server.c) is parsed and checked by body.c before the broker
 * is asked, and each refusal is a 400 saying why. Runs on the admin
 * server's thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "admin/body.h"
#include "admin/http.h"
#include "core/log.h"

static enum MHD_Result bad_request(struct MHD_Connection *conn, const char *why)
{
    return http_reply_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request", why);
}

/* The broker's refusal of a publish as the answer. */
static enum MHD_Result publish_refused(struct MHD_Connection *conn, int err)
{
    if (err == -EINVAL)
        return bad_request(conn, "not a valid topic name, a $SYS topic, or refused by the "
                                 "tenant's settings (topic limits, maximum QoS, retain)");
    if (err == -EPROTO)
        return bad_request(conn, "the properties are not valid MQTT 5.0 PUBLISH properties");
    if (err == -EILSEQ)
        return bad_request(conn, "payload_format_indicator 1 says the payload is UTF-8, and "
                                 "it is not (MQTT 5.0 3.3.2.3.2)");
    if (err == -EIO)
        return http_reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                                "the store cannot write: QoS 0 without retain only");
    return http_reply_errno(conn, err, "no such tenant");
}

/* The answer to a publish done: what was published. */
static json_t *publish_reply(const struct admin_publish *p)
{
    json_t *o =
        json_pack("{s:s%,s:I,s:i,s:b}", "published", p->topic, p->topic_len, "payload_length",
                  (json_int_t)p->payload_len, "qos", (int)p->qos, "retain", p->retain);
    size_t nprops = (p->expiry_s != 0) + (p->payload_format >= 0) + (p->content_type != NULL) +
                    (p->response_topic != NULL) + (p->correlation != NULL) + p->nuser;
    if (o && json_object_set_new(o, "properties", json_integer((json_int_t)nprops)) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

enum MHD_Result http_publish(const struct admin_ops *ops, void *arg, struct MHD_Connection *conn,
                             const struct caller *c, const char *method, const char *tenant,
                             const char *url)
{
    enum MHD_Result ret;
    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
        return http_reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                                "POST a message");
    if (!http_may_write(conn, c, method, url, &ret))
        return ret;
    char why[256];
    struct admin_publish_body b;
    int err = admin_publish_parse(c->body, c->body_len, &b, why, sizeof(why));
    if (err == -EINVAL) {
        admin_publish_body_fini(&b);
        return bad_request(conn, why);
    }
    const struct admin_publish *p = &b.p;
    if (err == 0)
        err = ops->publish(arg, tenant, p);
    if (err == 0)
        log_info("admin: published %zu bytes on %.*s in tenant %s (qos %u%s, from %s)",
                 p->payload_len, (int)p->topic_len, p->topic, tenant, (unsigned)p->qos,
                 p->retain ? ", retained" : "", c->peer);
    json_t *reply = err ? NULL : publish_reply(p);
    admin_publish_body_fini(&b);
    if (err < 0)
        return publish_refused(conn, err);
    return reply ? http_reply_json(conn, MHD_HTTP_OK, reply)
                 : http_reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
                                    "out of memory");
}

/* The broker's refusal of a subscription as the answer. */
static enum MHD_Result sub_refused(struct MHD_Connection *conn, int err)
{
    if (err == -EINVAL)
        return bad_request(conn, "not a valid topic filter, or refused by the tenant's settings");
    if (err == -EOPNOTSUPP)
        return bad_request(conn, "the tenant does not allow subscription identifiers");
    if (err == -ENOSPC)
        return http_reply_error(conn, MHD_HTTP_CONFLICT, "quota_exceeded",
                                "the session is at the tenant's max_subscriptions");
    return http_reply_errno(conn, err, "no such session");
}

/* What was subscribed, as the answer says it. */
static json_t *sub_reply(const char *id, size_t len, const struct admin_sub_add *a,
                         const struct admin_sub_result *res)
{
    json_t *subid = a->subid ? json_integer(a->subid) : json_null();
    return json_pack("{s:s%,s:s%,s:i,s:b,s:b,s:i,s:o,s:b}", "session", id, len, "filter", a->filter,
                     a->filter_len, "qos", (int)res->qos, "no_local", a->no_local,
                     "retain_as_published", a->retain_as_published, "retain_handling",
                     (int)a->retain_handling, "subscription_identifier", subid, "replaced",
                     res->existed);
}

/* POST: subscribe the session to the body's filter, with its options. */
static enum MHD_Result post_sub(const struct admin_ops *ops, void *arg, struct MHD_Connection *conn,
                                const struct caller *c, const char *tenant, const char *id,
                                size_t len)
{
    char why[256];
    struct admin_sub_body b;
    struct admin_sub_result res = {0};
    int err = admin_sub_parse(c->body, c->body_len, &b, why, sizeof(why));
    if (err == -EINVAL) {
        admin_sub_body_fini(&b);
        return bad_request(conn, why);
    }
    if (err == 0)
        err = ops->subscribe(arg, tenant, id, len, &b.a, &res);
    json_t *reply = err ? NULL : sub_reply(id, len, &b.a, &res);
    if (reply)
        log_info("admin: subscribed session %.*s of tenant %s to %.*s (from %s)", (int)len, id,
                 tenant, (int)b.a.filter_len, b.a.filter, c->peer);
    admin_sub_body_fini(&b);
    if (err < 0)
        return sub_refused(conn, err);
    return reply ? http_reply_json(conn, MHD_HTTP_OK, reply)
                 : http_reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
                                    "out of memory");
}

enum MHD_Result http_subscriptions(const struct admin_ops *ops, void *arg,
                                   struct MHD_Connection *conn, const struct caller *c,
                                   const char *method, const char *tenant, const char *id,
                                   size_t id_len, const char *url)
{
    enum MHD_Result ret;
    bool post = !strcmp(method, MHD_HTTP_METHOD_POST);
    if (!post && strcmp(method, MHD_HTTP_METHOD_DELETE) != 0)
        return http_reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                                "POST a subscription, DELETE one");
    if (!id_len || id_len > ADMIN_CLIENT_ID_MAX)
        return http_reply_error(conn, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
    if (!http_may_write(conn, c, method, url, &ret))
        return ret;
    if (post)
        return post_sub(ops, arg, conn, c, tenant, id, id_len);
    const char *filter = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "filter");
    if (!filter || strlen(filter) > ADMIN_TOPIC_MAX)
        return bad_request(conn, "DELETE takes ?filter=, a topic filter");
    size_t flen = strlen(filter);
    int err = ops->unsubscribe(arg, tenant, id, id_len, filter, flen);
    if (err < 0)
        return http_reply_errno(conn, err, "no such session or subscription");
    log_info("admin: unsubscribed session %.*s of tenant %s from %s (from %s)", (int)id_len, id,
             tenant, filter, c->peer);
    return http_reply_json(
        conn, MHD_HTTP_OK,
        json_pack("{s:s%,s:s%}", "session", id, id_len, "removed", filter, flen));
}
