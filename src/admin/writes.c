/*
 * admin writes: the endpoints that take a JSON body and act on a tenant's
 * traffic: POST .../publish (a message published as the broker's own) and
 * a session's subscriptions (POST .../sessions/{id}/subscriptions, DELETE
 * ...?filter=). Admin role only. The body (at most ADMIN_BODY_MAX bytes,
 * gathered by server.c) is parsed by jansson; every field is checked
 * before the broker is asked, and each refusal is a 400 saying why. Runs
 * on the admin server's thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "admin/http.h"
#include "core/log.h"

static enum MHD_Result bad_request(struct MHD_Connection *conn, const char *why)
{
    return http_reply_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request", why);
}

/* The body as a JSON object (the caller's reference), or NULL and why. */
static json_t *body_object(const struct caller *c, const char **why)
{
    json_error_t e;
    json_t *o = c->body ? json_loadb(c->body, c->body_len, JSON_REJECT_DUPLICATES, &e) : NULL;
    if (!json_is_object(o)) {
        json_decref(o);
        *why = "the body must be a JSON object";
        return NULL;
    }
    return o;
}

/* Whether every key of `o` is one of `keys` (NULL-terminated). */
static bool keys_known(json_t *o, const char *const *keys)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        size_t i = 0;
        while (keys[i] && strcmp(keys[i], k) != 0)
            i++;
        if (!keys[i])
            return false;
    }
    return true;
}

/* An optional integer field in [0, max] into *out (left when absent);
 * false when present and not such a number. */
static bool opt_uint(json_t *o, const char *key, json_int_t max, json_int_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
        return false;
    *out = json_integer_value(v);
    return true;
}

/* One base64 digit's value (RFC 4648), -1 for any other byte. */
static int b64_digit(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* RFC 4648 base64 (padded) of s[0..n) into out (room for n / 4 * 3
 * bytes); the decoded length, or -1 when s is not such text. */
static long base64_decode(const char *s, size_t n, uint8_t *out)
{
    if (n % 4)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        int pad = (s[i + 3] == '=') + (s[i + 2] == '=' && s[i + 3] == '=');
        if (pad && i + 4 != n)
            return -1;
        uint32_t v = 0;
        for (int j = 0; j < 4; j++) {
            int d = j >= 4 - pad ? 0 : b64_digit((unsigned char)s[i + j]);
            if (d < 0)
                return -1;
            v = v << 6 | (uint32_t)d;
        }
        out[k++] = (uint8_t)(v >> 16);
        if (pad < 2)
            out[k++] = (uint8_t)(v >> 8);
        if (pad < 1)
            out[k++] = (uint8_t)v;
    }
    return (long)k;
}

/* The body's message into *p (its payload decoded into *buf, the
 * caller's to free); NULL, or why it is refused. */
static const char *publish_parse(json_t *o, struct admin_publish *p, uint8_t **buf)
{
    static const char *const keys[] = {
        "topic", "payload", "payload_base64", "qos", "retain", "message_expiry", NULL};
    json_t *topic = json_object_get(o, "topic"), *text = json_object_get(o, "payload");
    json_t *b64 = json_object_get(o, "payload_base64"), *retain = json_object_get(o, "retain");
    json_int_t qos = 0, expiry = 0;
    if (!keys_known(o, keys))
        return "known fields: topic, payload, payload_base64, qos, retain, message_expiry";
    if (!json_is_string(topic) || json_string_length(topic) > ADMIN_TOPIC_MAX)
        return "topic must be a string, a topic name";
    if ((text && !json_is_string(text)) || (b64 && !json_is_string(b64)) || (text && b64))
        return "payload (text) or payload_base64, a string, not both";
    if (!opt_uint(o, "qos", 2, &qos))
        return "qos must be 0, 1 or 2";
    if (retain && !json_is_boolean(retain))
        return "retain must be true or false";
    if (!opt_uint(o, "message_expiry", UINT32_MAX, &expiry))
        return "message_expiry must be seconds, 0 to 4294967295";
    *p = (struct admin_publish){.topic = json_string_value(topic),
                                .topic_len = json_string_length(topic),
                                .qos = (uint8_t)qos,
                                .retain = json_is_true(retain),
                                .expiry_s = (uint32_t)expiry};
    if (text) {
        p->payload = (const uint8_t *)json_string_value(text);
        p->payload_len = json_string_length(text);
    } else if (b64) {
        size_t n = json_string_length(b64);
        *buf = malloc(n / 4 * 3 + 1);
        long k = *buf ? base64_decode(json_string_value(b64), n, *buf) : -1;
        if (k < 0)
            return *buf ? "payload_base64 is not base64 (RFC 4648, padded)" : "out of memory";
        p->payload = *buf;
        p->payload_len = (size_t)k;
    }
    return NULL;
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
    const char *why = NULL;
    json_t *o = body_object(c, &why);
    struct admin_publish p;
    uint8_t *buf = NULL;
    if (o)
        why = publish_parse(o, &p, &buf);
    int err = why ? 0 : ops->publish(arg, tenant, &p);
    if (!why && err == 0)
        log_info("admin: published %zu bytes on %.*s in tenant %s (qos %u%s, from %s)",
                 p.payload_len, (int)p.topic_len, p.topic, tenant, (unsigned)p.qos,
                 p.retain ? ", retained" : "", c->peer);
    json_t *reply = why || err ? NULL
                               : json_pack("{s:s%,s:I,s:i,s:b}", "published", p.topic, p.topic_len,
                                           "payload_length", (json_int_t)p.payload_len, "qos",
                                           (int)p.qos, "retain", p.retain);
    json_decref(o);
    free(buf);
    if (why)
        return bad_request(conn, why);
    if (err == -EINVAL)
        return bad_request(conn, "not a valid topic name, a $SYS topic, or refused by the "
                                 "tenant's settings (topic limits, maximum QoS, retain)");
    if (err == -EIO)
        return http_reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                                "the store cannot write: QoS 0 without retain only");
    if (err < 0)
        return http_reply_errno(conn, err, "no such tenant");
    return http_reply_json(conn, MHD_HTTP_OK, reply);
}

/* POST {filter, qos}: the filter (borrowed from *o) and QoS; NULL or why
 * it is refused. */
static const char *sub_parse(json_t *o, const char **filter, size_t *flen, uint8_t *qos)
{
    static const char *const keys[] = {"filter", "qos", NULL};
    json_t *f = json_object_get(o, "filter");
    json_int_t q = 0;
    if (!keys_known(o, keys))
        return "known fields: filter, qos";
    if (!json_is_string(f) || json_string_length(f) > ADMIN_TOPIC_MAX)
        return "filter must be a string, a topic filter";
    if (!opt_uint(o, "qos", 2, &q))
        return "qos must be 0, 1 or 2";
    *filter = json_string_value(f);
    *flen = json_string_length(f);
    *qos = (uint8_t)q;
    return NULL;
}

/* POST: subscribe the session to the body's filter. */
static enum MHD_Result post_sub(const struct admin_ops *ops, void *arg, struct MHD_Connection *conn,
                                const struct caller *c, const char *tenant, const char *id,
                                size_t len)
{
    const char *why = NULL, *filter = NULL;
    size_t flen = 0;
    uint8_t qos = 0;
    bool existed = false;
    json_t *o = body_object(c, &why);
    if (o)
        why = sub_parse(o, &filter, &flen, &qos);
    int err = why ? 0 : ops->subscribe(arg, tenant, id, len, filter, flen, qos, &existed);
    json_t *reply = why || err ? NULL
                               : json_pack("{s:s%,s:s%,s:i,s:b}", "session", id, len, "filter",
                                           filter, flen, "qos", (int)qos, "replaced", existed);
    if (reply)
        log_info("admin: subscribed session %.*s of tenant %s to %.*s (from %s)", (int)len, id,
                 tenant, (int)flen, filter, c->peer);
    json_decref(o);
    if (why)
        return bad_request(conn, why);
    if (err == -EINVAL)
        return bad_request(conn, "not a valid topic filter, or refused by the tenant's settings");
    if (err == -ENOSPC)
        return http_reply_error(conn, MHD_HTTP_CONFLICT, "quota_exceeded",
                                "the session is at the tenant's max_subscriptions");
    if (err < 0)
        return http_reply_errno(conn, err, "no such session");
    return http_reply_json(conn, MHD_HTTP_OK, reply);
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
