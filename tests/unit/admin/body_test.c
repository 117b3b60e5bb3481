/* Unit tests of admin/body: the publish and subscription bodies of the
 * admin API's writes, parsed and checked through the header. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "admin/body.h"

static char why[256];

static int pub(const char *json, struct admin_publish_body *b)
{
    why[0] = '\0';
    return admin_publish_parse(json, strlen(json), b, why, sizeof(why));
}

/* The body is refused (400) with a reason that contains `says`. */
static void pub_refused(const char *json, const char *says)
{
    struct admin_publish_body b;
    cr_assert_eq(pub(json, &b), -EINVAL, "%s accepted", json);
    cr_assert(strstr(why, says), "%s: '%s' does not say '%s'", json, why, says);
    admin_publish_body_fini(&b);
}

Test(admin_body, publish_without_properties)
{
    struct admin_publish_body b;
    cr_assert_eq(pub("{\"topic\":\"a/b\",\"payload\":\"hi\",\"qos\":1,\"retain\":true}", &b), 0,
                 "%s", why);
    cr_assert_eq(b.p.topic_len, 3);
    cr_assert_eq(memcmp(b.p.topic, "a/b", 3), 0);
    cr_assert_eq(b.p.payload_len, 2);
    cr_assert_eq(b.p.qos, 1);
    cr_assert(b.p.retain);
    cr_assert_eq(b.p.payload_format, -1);
    cr_assert_null(b.p.content_type);
    cr_assert_null(b.p.response_topic);
    cr_assert_null(b.p.correlation);
    cr_assert_eq(b.p.nuser, 0);
    cr_assert_eq(b.p.expiry_s, 0);
    admin_publish_body_fini(&b);
}

Test(admin_body, publish_with_every_property)
{
    struct admin_publish_body b;
    const char *json =
        "{\"topic\":\"req/1\",\"payload_base64\":\"AAEC\",\"message_expiry\":30,"
        "\"payload_format_indicator\":0,\"content_type\":\"application/x\","
        "\"response_topic\":\"resp/1\",\"correlation_data\":\"aWQtNw==\","
        "\"user_properties\":[{\"name\":\"k\",\"value\":\"1\"},{\"name\":\"k\",\"value\":\"2\"},"
        "{\"name\":\"\\u00e9\",\"value\":\"\"}]}";
    cr_assert_eq(pub(json, &b), 0, "%s", why);
    cr_assert_eq(b.p.payload_len, 3);
    cr_assert_eq(memcmp(b.p.payload, "\0\1\2", 3), 0);
    cr_assert_eq(b.p.expiry_s, 30);
    cr_assert_eq(b.p.payload_format, 0);
    cr_assert_eq(b.p.content_type_len, 13);
    cr_assert_eq(memcmp(b.p.content_type, "application/x", 13), 0);
    cr_assert_eq(b.p.response_topic_len, 6);
    cr_assert_eq(b.p.correlation_len, 4);
    cr_assert_eq(memcmp(b.p.correlation, "id-7", 4), 0);
    /* MQTT-3.3.2-18: in order, a name repeated. */
    cr_assert_eq(b.p.nuser, 3);
    cr_assert_eq(memcmp(b.p.user[0].value, "1", 1), 0);
    cr_assert_eq(memcmp(b.p.user[1].value, "2", 1), 0);
    cr_assert_eq(b.p.user[2].name_len, 2); /* U+00E9 in UTF-8 */
    cr_assert_eq(b.p.user[2].value_len, 0);
    admin_publish_body_fini(&b);
}

Test(admin_body, empty_correlation_data_is_present)
{
    struct admin_publish_body b;
    cr_assert_eq(pub("{\"topic\":\"a\",\"correlation_data\":\"\"}", &b), 0, "%s", why);
    cr_assert_not_null(b.p.correlation);
    cr_assert_eq(b.p.correlation_len, 0);
    admin_publish_body_fini(&b);
}

Test(admin_body, publish_refusals_say_why)
{
    pub_refused("{\"topic\":\"a\",\"payload_format_indicator\":2}", "payload_format_indicator");
    pub_refused("{\"topic\":\"a\",\"payload_format_indicator\":true}", "payload_format_indicator");
    pub_refused("{\"topic\":\"a\",\"message_expiry\":-1}", "message_expiry");
    pub_refused("{\"topic\":\"a\",\"message_expiry\":4294967296}", "message_expiry");
    pub_refused("{\"topic\":\"a\",\"content_type\":7}", "content_type");
    /* MQTT-3.3.2-14: a Response Topic is a topic name, no wildcards. */
    pub_refused("{\"topic\":\"a\",\"response_topic\":\"r/+\"}", "MQTT-3.3.2-14");
    pub_refused("{\"topic\":\"a\",\"response_topic\":\"r/#\"}", "MQTT-3.3.2-14");
    pub_refused("{\"topic\":\"a\",\"response_topic\":\"\"}", "MQTT-4.7.3-1");
    pub_refused("{\"topic\":\"a\",\"correlation_data\":\"%%%%\"}", "correlation_data");
    pub_refused("{\"topic\":\"a\",\"correlation_data\":\"abc\"}", "correlation_data");
    pub_refused("{\"topic\":\"a\",\"user_properties\":{}}", "user_properties");
    pub_refused("{\"topic\":\"a\",\"user_properties\":[{\"name\":\"k\"}]}", "user_properties[0]");
    pub_refused("{\"topic\":\"a\",\"user_properties\":[{\"name\":\"k\",\"value\":\"v\"},"
                "{\"name\":\"k\",\"value\":1}]}",
                "user_properties[1]");
    pub_refused("{\"topic\":\"a\",\"user_properties\":[{\"name\":\"k\",\"value\":\"v\",\"x\":1}]}",
                "user_properties[0]");
    pub_refused("{\"topic\":\"a\",\"colour\":\"red\"}", "unknown field 'colour'");
    pub_refused("{\"payload\":\"x\"}", "topic");
    pub_refused("[1]", "JSON object");
}

/* MQTT-1.5.4-1, MQTT-1.5.4-2: a UTF-8 string is well-formed and holds no
 * U+0000; jansson refuses both, and the reason names the rules. */
Test(admin_body, strings_are_well_formed_utf8_without_nul)
{
    pub_refused("{\"topic\":\"a\",\"content_type\":\"x\\u0000y\"}", "MQTT-1.5.4-2");
    pub_refused("{\"topic\":\"a\",\"content_type\":\"\xc3\x28\"}", "MQTT-1.5.4-1");
    pub_refused("{\"topic\":\"a\",\"content_type\":\"\\ud800\"}", "MQTT-1.5.4-1");
}

/* Strings and binary data are at most 65535 bytes (MQTT 1.5.4, 1.5.6);
 * User Properties at most ADMIN_USER_PROPS_MAX. */
Test(admin_body, sizes_are_bounded)
{
    size_t n = 65536;
    char *json = malloc(n + 64);
    cr_assert_not_null(json);
    int k = sprintf(json, "{\"topic\":\"a\",\"content_type\":\"");
    memset(json + k, 'x', n);
    strcpy(json + k + n, "\"}");
    pub_refused(json, "content_type");
    json[k + n - 1] = '\0';
    strcat(json + k, "\"}"); /* 65535 bytes: the most */
    struct admin_publish_body b;
    cr_assert_eq(pub(json, &b), 0, "%s", why);
    admin_publish_body_fini(&b);
    /* 65536 bytes of correlation data: 87384 base64 digits. */
    free(json);
    size_t digits = (65536 + 2) / 3 * 4;
    json = malloc(digits + 64);
    cr_assert_not_null(json);
    k = sprintf(json, "{\"topic\":\"a\",\"correlation_data\":\"");
    memset(json + k, 'A', digits);
    strcpy(json + k + digits - 2, "==\"}");
    pub_refused(json, "correlation_data");
    free(json);
    char users[8192] = "{\"topic\":\"a\",\"user_properties\":[";
    for (unsigned i = 0; i <= ADMIN_USER_PROPS_MAX; i++)
        strcat(users, i ? ",{\"name\":\"n\",\"value\":\"v\"}" : "{\"name\":\"n\",\"value\":\"v\"}");
    strcat(users, "]}");
    pub_refused(users, "at most 100");
}

static int sub(const char *json, struct admin_sub_body *b)
{
    why[0] = '\0';
    return admin_sub_parse(json, strlen(json), b, why, sizeof(why));
}

static void sub_refused(const char *json, const char *says)
{
    struct admin_sub_body b;
    cr_assert_eq(sub(json, &b), -EINVAL, "%s accepted", json);
    cr_assert(strstr(why, says), "%s: '%s' does not say '%s'", json, why, says);
    admin_sub_body_fini(&b);
}

Test(admin_body, subscription_options)
{
    struct admin_sub_body b;
    cr_assert_eq(sub("{\"filter\":\"a/#\"}", &b), 0, "%s", why);
    cr_assert_eq(b.a.filter_len, 3);
    cr_assert_eq(b.a.qos, 0);
    cr_assert_not(b.a.no_local);
    cr_assert_not(b.a.retain_as_published);
    cr_assert_eq(b.a.retain_handling, 0);
    cr_assert_eq(b.a.subid, 0);
    admin_sub_body_fini(&b);
    cr_assert_eq(sub("{\"filter\":\"a/+\",\"qos\":2,\"no_local\":true,\"retain_as_published\":"
                     "true,\"retain_handling\":2,\"subscription_identifier\":268435455}",
                     &b),
                 0, "%s", why);
    cr_assert_eq(b.a.qos, 2);
    cr_assert(b.a.no_local);
    cr_assert(b.a.retain_as_published);
    cr_assert_eq(b.a.retain_handling, 2);
    cr_assert_eq(b.a.subid, 268435455);
    admin_sub_body_fini(&b);
}

Test(admin_body, subscription_refusals_say_why)
{
    sub_refused("{\"filter\":\"a\",\"qos\":3}", "qos");
    sub_refused("{\"filter\":\"a\",\"retain_handling\":3}", "MQTT-3.8.3-5");
    sub_refused("{\"filter\":\"a\",\"subscription_identifier\":0}", "268435455");
    sub_refused("{\"filter\":\"a\",\"subscription_identifier\":268435456}", "268435455");
    sub_refused("{\"filter\":\"a\",\"no_local\":1}", "no_local");
    sub_refused("{\"filter\":\"$share/g/a\",\"no_local\":true}", "MQTT-3.8.3-4");
    sub_refused("{\"filter\":\"$oshare/g/a\",\"no_local\":true}", "MQTT-3.8.3-4");
    sub_refused("{\"qos\":1}", "filter");
    sub_refused("{\"filter\":\"a\",\"nolocal\":true}", "unknown field 'nolocal'");
    sub_refused("", "JSON object");
}
