/*
 * body: the admin writes' JSON bodies into struct admin_publish and
 * struct admin_sub_add (body.h). jansson parses; it accepts only
 * well-formed UTF-8 and refuses \u0000 (no JSON_ALLOW_NUL), so every string
 * taken from a body is what MQTT calls a UTF-8 Encoded String
 * (MQTT-1.5.4-1, MQTT-1.5.4-2) and only its length is left to check here.
 * Runs on the admin server's thread; owns only what the parsed bodies hold.
 */
#include "admin/body.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A decoded payload's most bytes: no more than its body (http.h's
 * ADMIN_BODY_MAX) holds. */
#define PAYLOAD_MAX (256u * 1024u)

/* The largest Subscription Identifier (3.8.2.1.2; MQTT_SUB_ID_MAX below). */
#define SUB_ID_MAX 268435455

__attribute__((format(printf, 3, 4))) static int fail(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* The body as a JSON object (a new reference), or NULL with why. */
static json_t *load_object(const char *body, size_t len, char *why, size_t cap)
{
    json_error_t e;
    json_t *o = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &e) : NULL;
    if (!o) {
        fail(why, cap,
             "the body must be a JSON object, in UTF-8 without \\u0000 (MQTT-1.5.4-1, "
             "MQTT-1.5.4-2): %s",
             body ? e.text : "none");
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        fail(why, cap, "the body must be a JSON object");
        return NULL;
    }
    return o;
}

/* The first key of `o` not in `keys` (NULL-terminated), or NULL. */
static const char *key_unknown(json_t *o, const char *const *keys)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        size_t i = 0;
        while (keys[i] && strcmp(keys[i], k) != 0)
            i++;
        if (!keys[i])
            return k;
    }
    return NULL;
}

/* An optional integer field in [min, max] into *out (left when absent);
 * false when present and not such a number. */
static bool opt_int(json_t *o, const char *key, json_int_t min, json_int_t max, json_int_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return false;
    *out = json_integer_value(v);
    return true;
}

/* An optional boolean field into *out (left when absent); false when
 * present and not true or false. */
static bool opt_bool(json_t *o, const char *key, bool *out)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return true;
    if (!json_is_boolean(v))
        return false;
    *out = json_is_true(v);
    return true;
}

/* An optional string field of at most ADMIN_STRING_MAX bytes: *s NULL
 * when absent; false when present and not such a string. */
static bool opt_string(json_t *o, const char *key, const char **s, size_t *len)
{
    json_t *v = json_object_get(o, key);
    *s = NULL;
    *len = 0;
    if (!v)
        return true;
    if (!json_is_string(v) || json_string_length(v) > ADMIN_STRING_MAX)
        return false;
    *s = json_string_value(v);
    *len = json_string_length(v);
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

/* An optional base64 field decoded into *buf (malloc'd, non-NULL when
 * present, even empty) and *n. 0 (absent: *buf NULL), -EINVAL (not base64
 * text, or over `max` bytes decoded), -ENOMEM. */
static int opt_base64(json_t *o, const char *key, size_t max, uint8_t **buf, size_t *n)
{
    json_t *v = json_object_get(o, key);
    *buf = NULL;
    *n = 0;
    if (!v)
        return 0;
    if (!json_is_string(v))
        return -EINVAL;
    size_t len = json_string_length(v);
    if (len / 4 * 3 > max + 2)
        return -EINVAL; /* longer than max whatever its padding */
    if (!(*buf = malloc(len / 4 * 3 + 1)))
        return -ENOMEM;
    long k = base64_decode(json_string_value(v), len, *buf);
    if (k < 0 || (size_t)k > max)
        return -EINVAL;
    *n = (size_t)k;
    return 0;
}

/* user_properties: an array of {"name": S, "value": S}, in order
 * (MQTT-3.3.2-17, MQTT-3.3.2-18: kept as given; a name may repeat). */
static int users_parse(json_t *o, struct admin_publish_body *b, char *why, size_t cap)
{
    static const char *const keys[] = {"name", "value", NULL};
    json_t *arr = json_object_get(o, "user_properties");
    if (!arr)
        return 0;
    if (!json_is_array(arr) || json_array_size(arr) > ADMIN_USER_PROPS_MAX)
        return fail(why, cap, "user_properties must be an array of at most %u {name, value}",
                    ADMIN_USER_PROPS_MAX);
    size_t n = json_array_size(arr);
    if (n && !(b->users = calloc(n, sizeof(*b->users))))
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *pair = json_array_get(arr, i);
        struct admin_user_prop *u = &b->users[i];
        if (!json_is_object(pair) || key_unknown(pair, keys) ||
            !opt_string(pair, "name", &u->name, &u->name_len) ||
            !opt_string(pair, "value", &u->value, &u->value_len) || !u->name || !u->value)
            return fail(why, cap,
                        "user_properties[%zu] must be {\"name\": S, \"value\": S}, strings of "
                        "at most 65535 bytes (MQTT-1.5.7-1)",
                        i);
    }
    b->p.user = b->users;
    b->p.nuser = n;
    return 0;
}

/* topic, payload or payload_base64, qos, retain. */
static int message_parse(json_t *o, struct admin_publish_body *b, char *why, size_t cap)
{
    struct admin_publish *p = &b->p;
    json_t *text = json_object_get(o, "payload"), *b64 = json_object_get(o, "payload_base64");
    json_int_t qos = 0;
    if (!opt_string(o, "topic", &p->topic, &p->topic_len) || !p->topic)
        return fail(why, cap, "topic must be a string, a topic name");
    if ((text && !json_is_string(text)) || (b64 && !json_is_string(b64)) || (text && b64))
        return fail(why, cap, "payload (text) or payload_base64, a string, not both");
    if (!opt_int(o, "qos", 0, 2, &qos))
        return fail(why, cap, "qos must be 0, 1 or 2");
    p->qos = (uint8_t)qos;
    if (!opt_bool(o, "retain", &p->retain))
        return fail(why, cap, "retain must be true or false");
    if (text) {
        p->payload = (const uint8_t *)json_string_value(text);
        p->payload_len = json_string_length(text);
        return 0;
    }
    int rc = opt_base64(o, "payload_base64", PAYLOAD_MAX, &b->payload_buf, &p->payload_len);
    if (rc == -EINVAL)
        return fail(why, cap, "payload_base64 is not base64 (RFC 4648, padded)");
    p->payload = b->payload_buf;
    return rc;
}

/* The PUBLISH properties (MQTT 5.0 3.3.2.3). */
static int props_parse(json_t *o, struct admin_publish_body *b, char *why, size_t cap)
{
    struct admin_publish *p = &b->p;
    json_int_t expiry = 0, pfi = -1;
    if (!opt_int(o, "message_expiry", 0, UINT32_MAX, &expiry))
        return fail(why, cap, "message_expiry must be seconds, 0 to 4294967295");
    p->expiry_s = (uint32_t)expiry;
    if (!opt_int(o, "payload_format_indicator", 0, 1, &pfi))
        return fail(why, cap, "payload_format_indicator must be 0 (bytes) or 1 (UTF-8)");
    p->payload_format = (int)pfi;
    if (!opt_string(o, "content_type", &p->content_type, &p->content_type_len))
        return fail(why, cap, "content_type must be a string of at most 65535 bytes");
    if (!opt_string(o, "response_topic", &p->response_topic, &p->response_topic_len))
        return fail(why, cap, "response_topic must be a string of at most 65535 bytes");
    /* MQTT-3.3.2-14: a Topic Name, so no wildcards; MQTT-4.7.3-1: not empty. */
    if (p->response_topic && (!p->response_topic_len || strpbrk(p->response_topic, "+#")))
        return fail(why, cap,
                    "response_topic must be a topic name: not empty, no + or # "
                    "(MQTT-3.3.2-14, MQTT-4.7.3-1)");
    int rc = opt_base64(o, "correlation_data", ADMIN_STRING_MAX, &b->correlation_buf,
                        &p->correlation_len);
    if (rc == -EINVAL)
        return fail(why, cap,
                    "correlation_data must be base64 (RFC 4648, padded) of at most 65535 bytes");
    if (rc < 0)
        return rc;
    p->correlation = b->correlation_buf;
    return users_parse(o, b, why, cap);
}

int admin_publish_parse(const char *body, size_t len, struct admin_publish_body *out, char *why,
                        size_t cap)
{
    static const char *const keys[] = {
        "topic",          "payload",          "payload_base64",           "qos",
        "retain",         "message_expiry",   "payload_format_indicator", "content_type",
        "response_topic", "correlation_data", "user_properties",          NULL};
    memset(out, 0, sizeof(*out));
    out->p.payload_format = -1;
    if (!(out->json = load_object(body, len, why, cap)))
        return -EINVAL;
    const char *k = key_unknown(out->json, keys);
    if (k)
        return fail(why, cap,
                    "unknown field '%.64s'; known: topic, payload, payload_base64, qos, retain, "
                    "message_expiry, payload_format_indicator, content_type, response_topic, "
                    "correlation_data, user_properties",
                    k);
    int rc = message_parse(out->json, out, why, cap);
    return rc < 0 ? rc : props_parse(out->json, out, why, cap);
}

void admin_publish_body_fini(struct admin_publish_body *b)
{
    json_decref(b->json);
    free(b->payload_buf);
    free(b->correlation_buf);
    free(b->users);
    memset(b, 0, sizeof(*b));
}

/* True when f is a shared subscription's filter ($share/ or ringmq's
 * $oshare/): the broker checks the rest of it. */
static bool shared_filter(const char *f, size_t len)
{
    return (len > 7 && !memcmp(f, "$share/", 7)) || (len > 8 && !memcmp(f, "$oshare/", 8));
}

int admin_sub_parse(const char *body, size_t len, struct admin_sub_body *out, char *why, size_t cap)
{
    static const char *const keys[] = {"filter",
                                       "qos",
                                       "no_local",
                                       "retain_as_published",
                                       "retain_handling",
                                       "subscription_identifier",
                                       NULL};
    memset(out, 0, sizeof(*out));
    struct admin_sub_add *a = &out->a;
    json_int_t qos = 0, rh = 0, subid = 0;
    if (!(out->json = load_object(body, len, why, cap)))
        return -EINVAL;
    const char *k = key_unknown(out->json, keys);
    if (k)
        return fail(why, cap,
                    "unknown field '%.64s'; known: filter, qos, no_local, retain_as_published, "
                    "retain_handling, subscription_identifier",
                    k);
    if (!opt_string(out->json, "filter", &a->filter, &a->filter_len) || !a->filter)
        return fail(why, cap, "filter must be a string, a topic filter");
    if (!opt_int(out->json, "qos", 0, 2, &qos))
        return fail(why, cap, "qos must be 0, 1 or 2");
    if (!opt_bool(out->json, "no_local", &a->no_local) ||
        !opt_bool(out->json, "retain_as_published", &a->retain_as_published))
        return fail(why, cap, "no_local and retain_as_published must be true or false");
    if (!opt_int(out->json, "retain_handling", 0, 2, &rh))
        return fail(why, cap, "retain_handling must be 0, 1 or 2 (MQTT-3.8.3-5)");
    if (!opt_int(out->json, "subscription_identifier", 1, SUB_ID_MAX, &subid))
        return fail(why, cap, "subscription_identifier must be 1 to 268435455 (3.8.2.1.2)");
    if (a->no_local && shared_filter(a->filter, a->filter_len))
        return fail(why, cap, "no_local is not allowed on a shared subscription (MQTT-3.8.3-4)");
    a->qos = (uint8_t)qos;
    a->retain_handling = (uint8_t)rh;
    a->subid = (uint32_t)subid;
    return 0;
}

void admin_sub_body_fini(struct admin_sub_body *b)
{
    json_decref(b->json);
    memset(b, 0, sizeof(*b));
}
