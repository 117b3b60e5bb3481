/*
 * The admin API's writes (issue 14) against the real broker, checked by
 * real libmosquitto clients through its MQTT 5.0 property API:
 * - POST .../publish with MQTT 5.0 properties: a 5.0 subscriber gets each
 *   exactly (User Properties in order), a 3.1.1 one the message without
 *   them; a retained one keeps them and its expiry counts down; bad
 *   properties are 400s saying why, and publish nothing.
 * - POST .../sessions/{id}/subscriptions with subscription options: No
 *   Local, Retain As Published, Retain Handling 0/1/2 (retained messages
 *   queued for an offline session), Subscription Identifier; shown by GET
 *   .../sessions/{id}, kept across a restart with persistence on.
 * - DELETE .../retained?filter=: a filter's retained messages cleared, a
 *   bounded batch per call ("more", and "next" to go on from: each call
 *   looks at no more than [admin] page_budget topics), exactly the matching
 *   ones, gone for a new subscriber and after a restart.
 */
#include <criterion/criterion.h>

#include <jansson.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin_http.h"
#include "harness.h"

static struct broker b;
static char tokens[64];
static char set_file[128];

TestSuite(admin_writes, .fini = e2e_fini, .timeout = 60);

#define PUBLISH "/api/v1/tenants/global/publish"

/* The broker with the four tokens (admin_http.h) and `extra` settings
 * (NULL-terminated, at most 2). */
static void start(const char *extra1, const char *extra2)
{
    admin_skip_mosquitto();
    if (!tokens[0])
        admin_tokens_make(tokens, sizeof(tokens), set_file, sizeof(set_file));
    broker_start(&b, "admin.enabled=true", "admin.port=0", set_file, extra1, extra2, NULL);
}

static void stop(void)
{
    broker_stop(&b);
}

static void finish(void)
{
    broker_stop(&b);
    unlink(tokens);
    tokens[0] = '\0';
}

/* The persistence directory of a test that restarts the broker. */
static char data[128], dir_set[160];

/* start() with persistence on, in a new directory. */
static void start_persistent(void)
{
    admin_skip_mosquitto();
    e2e_data_dir_create(data, sizeof(data));
    snprintf(dir_set, sizeof(dir_set), "persistence.dir=%s", data);
    start("persistence.enabled=true", dir_set);
}

/* POST/DELETE as the admin token, asserting `status`; the answer parsed. */
static json_t *call(const char *method, const char *path, const char *json, int status)
{
    return admin_call_json(&b, method, path, "admin-token", json, status);
}

static struct client *open_v(const char *id, int protocol, bool clean, uint32_t expiry)
{
    struct client_opts o = {
        .id = id, .clean = clean, .protocol = protocol, .session_expiry = expiry};
    return client_connect(&b, &o);
}

/* The next message, asserting its topic and payload; the caller frees it. */
static struct msg next_msg(struct client *c, const char *topic, const char *payload)
{
    struct msg m;
    cr_assert_eq(client_wait_message(c, &m, E2E_WAIT_MS), 0, "no message on %s", topic);
    cr_assert_str_eq(m.topic, topic);
    cr_assert(m.len == (int)strlen(payload) && !memcmp(m.payload, payload, (size_t)m.len),
              "%s: payload '%.*s', want '%s'", topic, m.len, (char *)m.payload, payload);
    return m;
}

/* String property `id` of m equals want (NULL: absent). */
static void expect_string(const struct msg *m, int id, const char *want)
{
    char *v = NULL;
    const mosquitto_property *p = mosquitto_property_read_string(m->props, id, &v, false);
    if (!want) {
        cr_assert_null(p, "property 0x%02x present", id);
        return;
    }
    cr_assert_not_null(p, "property 0x%02x missing", id);
    cr_assert_str_eq(v, want);
    free(v);
}

/* ---- publish with properties -------------------------------------------------------------- */

#define ALL_PROPS                                                                                  \
    "{\"topic\":\"props/a\",\"payload\":\"h\\u00e9llo\",\"qos\":1,"                                \
    "\"payload_format_indicator\":1,\"message_expiry\":120,\"content_type\":\"text/plain\","       \
    "\"response_topic\":\"reply/a\",\"correlation_data\":\"AAEC/w==\","                            \
    "\"user_properties\":[{\"name\":\"k\",\"value\":\"1\"},{\"name\":\"k\",\"value\":\"2\"},"      \
    "{\"name\":\"z\",\"value\":\"\"}]}"

/* Every property as given: MQTT-3.3.2-4 (Payload Format Indicator),
 * MQTT-3.3.2-6 (the expiry left), MQTT-3.3.2-15 (Response Topic),
 * MQTT-3.3.2-16 (Correlation Data), MQTT-3.3.2-17/-18 (User Properties,
 * in order), MQTT-3.3.2-20 (Content Type). */
static void expect_all_props(const struct msg *m)
{
    uint8_t pfi = 9;
    uint32_t expiry = 0;
    cr_assert_not_null(
        mosquitto_property_read_byte(m->props, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR, &pfi, false));
    cr_assert_eq(pfi, 1);
    cr_assert_not_null(
        mosquitto_property_read_int32(m->props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, &expiry, false));
    cr_assert(expiry >= 115 && expiry <= 120, "expiry %u", expiry);
    expect_string(m, MQTT_PROP_CONTENT_TYPE, "text/plain");
    expect_string(m, MQTT_PROP_RESPONSE_TOPIC, "reply/a");
    void *cd = NULL;
    uint16_t cdl = 0;
    cr_assert_not_null(
        mosquitto_property_read_binary(m->props, MQTT_PROP_CORRELATION_DATA, &cd, &cdl, false));
    cr_assert(cdl == 4 && !memcmp(cd, "\x00\x01\x02\xff", 4), "correlation data");
    free(cd);
    static const char *const want[][2] = {{"k", "1"}, {"k", "2"}, {"z", ""}};
    const mosquitto_property *p = m->props;
    for (int i = 0; i < 3; i++) {
        char *n = NULL, *v = NULL;
        p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &n, &v, i > 0);
        cr_assert_not_null(p, "user property %d missing", i);
        cr_assert_str_eq(n, want[i][0]);
        cr_assert_str_eq(v, want[i][1]);
        free(n);
        free(v);
    }
    char *n = NULL, *v = NULL;
    cr_assert_null(mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &n, &v, true),
                   "a fourth user property");
}

Test(admin_writes, publish_properties_reach_a_v5_subscriber_exactly_and_not_a_v311_one)
{
    start(NULL, NULL);
    struct client *v5 = open_v("props-v5", MQTT_PROTOCOL_V5, true, 0);
    struct client *v3 = open_v("props-v3", MQTT_PROTOCOL_V311, true, 0);
    client_subscribe(v5, "props/#", 1);
    client_subscribe(v3, "props/#", 1);
    json_t *r = call("POST", PUBLISH, ALL_PROPS, 200);
    cr_assert_eq(json_integer_value(json_object_get(r, "properties")), 8);
    json_decref(r);
    struct msg m = next_msg(v5, "props/a", "h\xc3\xa9llo");
    expect_all_props(&m);
    msg_free(&m);
    m = next_msg(v3, "props/a", "h\xc3\xa9llo");
    cr_assert_null(m.props, "a 3.1.1 subscriber got properties");
    msg_free(&m);
    /* No properties asked: none sent (none invented). */
    json_decref(call("POST", PUBLISH, "{\"topic\":\"props/b\",\"payload\":\"x\"}", 200));
    m = next_msg(v5, "props/b", "x");
    cr_assert_null(m.props, "properties on a message published without any");
    msg_free(&m);
    client_disconnect(v5);
    client_disconnect(v3);
    finish();
}

/* A bad property is a 400 that says why, and nothing is published. */
Test(admin_writes, publish_property_refusals_are_400_and_publish_nothing)
{
    start(NULL, NULL);
    struct client *v5 = open_v("refuse-v5", MQTT_PROTOCOL_V5, true, 0);
    client_subscribe(v5, "bad/#", 1);
    static const char *const bad[][2] = {
        {"{\"topic\":\"bad/a\",\"response_topic\":\"r/+\"}", "MQTT-3.3.2-14"},
        {"{\"topic\":\"bad/a\",\"response_topic\":\"r/#\"}", "MQTT-3.3.2-14"},
        {"{\"topic\":\"bad/a\",\"payload_format_indicator\":2}", "payload_format_indicator"},
        /* 0xff is no UTF-8 (MQTT 5.0 3.3.2.3.2). */
        {"{\"topic\":\"bad/a\",\"payload_base64\":\"/w==\",\"payload_format_indicator\":1}",
         "3.3.2.3.2"},
        {"{\"topic\":\"bad/a\",\"content_type\":\"a\\u0000b\"}", "MQTT-1.5.4-2"},
        {"{\"topic\":\"bad/a\",\"correlation_data\":\"***\"}", "correlation_data"},
        {"{\"topic\":\"bad/a\",\"user_properties\":[{\"name\":\"k\"}]}", "user_properties[0]"},
        {"{\"topic\":\"bad/a\",\"message_expiry\":-5}", "message_expiry"},
        {"{\"topic\":\"bad/a\",\"contenttype\":\"x\"}", "unknown field"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *r = call("POST", PUBLISH, bad[i][0], 400);
        json_t *e = json_object_get(r, "error");
        cr_assert_str_eq(json_string_value(json_object_get(e, "code")), "bad_request");
        const char *msg = json_string_value(json_object_get(e, "message"));
        cr_assert(msg && strstr(msg, bad[i][1]), "%s: '%s' does not say %s", bad[i][0], msg,
                  bad[i][1]);
        json_decref(r);
    }
    cr_assert(client_no_message(v5, E2E_ABSENT_MS), "a refused publish was delivered");
    client_disconnect(v5);
    finish();
}

/* A retained message keeps its properties for a later subscriber, with
 * the expiry it has left (MQTT-3.3.2-6); once expired it is not sent
 * (MQTT-3.3.2-5). */
Test(admin_writes, retained_publish_keeps_its_properties_and_expiry_counts_down)
{
    start(NULL, NULL);
    json_decref(call("POST", PUBLISH,
                     "{\"topic\":\"keep/a\",\"payload\":\"v\",\"qos\":1,\"retain\":true,"
                     "\"message_expiry\":10,\"content_type\":\"text/plain\","
                     "\"user_properties\":[{\"name\":\"u\",\"value\":\"1\"}]}",
                     200));
    json_decref(call("POST", PUBLISH,
                     "{\"topic\":\"keep/short\",\"payload\":\"w\",\"retain\":true,"
                     "\"message_expiry\":1}",
                     200));
    /* Waiting is the point: the expiry is counted in seconds. */
    struct timespec t = {1, 500 * 1000 * 1000};
    nanosleep(&t, NULL);
    struct client *v5 = open_v("keep-v5", MQTT_PROTOCOL_V5, true, 0);
    client_subscribe(v5, "keep/#", 1);
    struct msg m = next_msg(v5, "keep/a", "v");
    cr_assert(m.retain, "MQTT-3.3.1-6: retained on a new subscription");
    uint32_t expiry = 0;
    cr_assert_not_null(
        mosquitto_property_read_int32(m.props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, &expiry, false));
    cr_assert(expiry >= 1 && expiry <= 9, "expiry left %u of 10 after 1.5 s", expiry);
    expect_string(&m, MQTT_PROP_CONTENT_TYPE, "text/plain");
    char *n = NULL, *v = NULL;
    cr_assert_not_null(
        mosquitto_property_read_string_pair(m.props, MQTT_PROP_USER_PROPERTY, &n, &v, false));
    cr_assert(!strcmp(n, "u") && !strcmp(v, "1"));
    free(n);
    free(v);
    msg_free(&m);
    cr_assert(client_no_message(v5, E2E_ABSENT_MS), "an expired retained message was sent");
    struct client *v3 = open_v("keep-v3", MQTT_PROTOCOL_V311, true, 0);
    client_subscribe(v3, "keep/a", 1);
    m = next_msg(v3, "keep/a", "v");
    cr_assert_null(m.props);
    msg_free(&m);
    client_disconnect(v3);
    client_disconnect(v5);
    finish();
}

/* ---- subscription options ----------------------------------------------------------------- */

#define SESS "/api/v1/tenants/global/sessions/"

/* The subscription of `filter` in GET .../sessions/{id} (a new reference). */
static json_t *sub_of(const char *id, const char *filter)
{
    char path[128];
    snprintf(path, sizeof(path), SESS "%s", id);
    json_t *s = admin_get_json(&b, path, "admin-token", 200);
    json_t *arr = json_object_get(s, "filters"), *found = NULL;
    for (size_t i = 0; i < json_array_size(arr); i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(arr, i), "filter")), filter))
            found = json_incref(json_array_get(arr, i));
    json_decref(s);
    cr_assert_not_null(found, "session %s holds no %s", id, filter);
    return found;
}

static json_int_t int_of(json_t *o, const char *k)
{
    cr_assert(json_is_integer(json_object_get(o, k)), "%s is not an integer", k);
    return json_integer_value(json_object_get(o, k));
}

/* The options as GET shows them, after the admin set them. */
static void expect_options(const char *id, const char *filter, int qos, bool nl, bool rap, int rh,
                           json_int_t subid)
{
    json_t *s = sub_of(id, filter);
    cr_assert_eq(int_of(s, "qos"), qos);
    cr_assert_eq(json_is_true(json_object_get(s, "no_local")), nl);
    cr_assert_eq(json_is_true(json_object_get(s, "retain_as_published")), rap);
    cr_assert_eq(int_of(s, "retain_handling"), rh);
    if (subid)
        cr_assert_eq(int_of(s, "subscription_identifier"), subid);
    else
        cr_assert(json_is_null(json_object_get(s, "subscription_identifier")));
    json_decref(s);
}

static void expect_subid(const struct msg *m, uint32_t want)
{
    uint32_t id = 0;
    cr_assert_not_null(
        mosquitto_property_read_varint(m->props, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, &id, false),
        "no subscription identifier on %s", m->topic);
    cr_assert_eq(id, want);
}

/* An offline 5.0 session subscribed by the admin with every option:
 * Retain Handling 0 queues the retained QoS 1 message (MQTT-3.3.1-9; the
 * QoS 0 one is not kept for an offline session); back online, its own
 * publish does not come back (No Local, MQTT-3.8.3-3), another's keeps
 * its retain flag (Retain As Published, MQTT-3.3.1-12) and carries the
 * identifier (MQTT-3.3.4-3). */
Test(admin_writes, subscription_options_act_as_a_subscribe_s)
{
    start(NULL, NULL);
    struct client *pub = open_v("opt-pub", MQTT_PROTOCOL_V311, true, 0);
    client_publish(pub, "o/r1", "kept", 4, 1, true);
    client_publish(pub, "o/r0", "qos0", 4, 0, true);
    client_disconnect(open_v("opt-sess", MQTT_PROTOCOL_V5, false, 300));
    json_t *r = call("POST", SESS "opt-sess/subscriptions",
                     "{\"filter\":\"o/#\",\"qos\":1,\"no_local\":true,\"retain_as_published\":"
                     "true,\"retain_handling\":0,\"subscription_identifier\":42}",
                     200);
    cr_assert_eq(int_of(r, "qos"), 1);
    cr_assert(json_is_false(json_object_get(r, "replaced")));
    cr_assert_eq(int_of(r, "subscription_identifier"), 42);
    json_decref(r);
    expect_options("opt-sess", "o/#", 1, true, true, 0, 42);
    json_t *s = admin_get_json(&b, SESS "opt-sess", "admin-token", 200);
    cr_assert_eq(int_of(s, "queued"), 1, "the retained QoS 1 message is queued, the QoS 0 not");
    json_decref(s);
    struct client *c = open_v("opt-sess", MQTT_PROTOCOL_V5, false, 300);
    cr_assert(client_session_present(c));
    struct msg m = next_msg(c, "o/r1", "kept");
    cr_assert(m.retain);
    expect_subid(&m, 42);
    msg_free(&m);
    client_publish(c, "o/self", "mine", 4, 1, false);
    client_publish(pub, "o/other", "theirs", 6, 1, true);
    m = next_msg(c, "o/other", "theirs");
    cr_assert(m.retain, "Retain As Published: the flag as published");
    expect_subid(&m, 42);
    msg_free(&m);
    cr_assert(client_no_message(c, E2E_ABSENT_MS), "No Local: its own publish came back");
    client_disconnect(c);
    client_disconnect(pub);
    finish();
}

/* Retain Handling 1 sends only for a new subscription (MQTT-3.3.1-10),
 * 2 never (MQTT-3.3.1-11): to a connected session, at once. */
Test(admin_writes, retain_handling_1_and_2)
{
    start(NULL, NULL);
    struct client *pub = open_v("rh-pub", MQTT_PROTOCOL_V311, true, 0);
    client_publish(pub, "rh/a", "A", 1, 1, true);
    client_disconnect(pub);
    struct client *c = open_v("rh-sess", MQTT_PROTOCOL_V5, true, 0);
    const char *path = SESS "rh-sess/subscriptions";
    json_decref(call("POST", path, "{\"filter\":\"rh/#\",\"qos\":1,\"retain_handling\":1}", 200));
    struct msg m = next_msg(c, "rh/a", "A");
    msg_free(&m);
    json_t *r = call("POST", path, "{\"filter\":\"rh/#\",\"qos\":1,\"retain_handling\":1}", 200);
    cr_assert(json_is_true(json_object_get(r, "replaced")));
    json_decref(r);
    cr_assert(client_no_message(c, E2E_ABSENT_MS), "retain handling 1 sent on a replace");
    json_decref(call("POST", path, "{\"filter\":\"rh/+\",\"qos\":1,\"retain_handling\":2}", 200));
    cr_assert(client_no_message(c, E2E_ABSENT_MS), "retain handling 2 sent");
    expect_options("rh-sess", "rh/+", 1, false, false, 2, 0);
    json_decref(call("POST", path, "{\"filter\":\"rh/a\",\"retain_handling\":0}", 200));
    m = next_msg(c, "rh/a", "A");
    msg_free(&m);
    client_disconnect(c);
    finish();
}

Test(admin_writes, subscription_option_refusals_are_400)
{
    start(NULL, NULL);
    client_disconnect(open_v("bad-opts", MQTT_PROTOCOL_V5, false, 300));
    static const char *const bad[][2] = {
        {"{\"filter\":\"a\",\"retain_handling\":3}", "MQTT-3.8.3-5"},
        {"{\"filter\":\"a\",\"subscription_identifier\":0}", "268435455"},
        {"{\"filter\":\"a\",\"subscription_identifier\":268435456}", "268435455"},
        {"{\"filter\":\"$share/g/a\",\"no_local\":true}", "MQTT-3.8.3-4"},
        {"{\"filter\":\"a\",\"no_local\":\"yes\"}", "no_local"},
        {"{\"filter\":\"a\",\"qos\":3}", "qos"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *r = call("POST", SESS "bad-opts/subscriptions", bad[i][0], 400);
        const char *msg =
            json_string_value(json_object_get(json_object_get(r, "error"), "message"));
        cr_assert(msg && strstr(msg, bad[i][1]), "%s: '%s'", bad[i][0], msg);
        json_decref(r);
    }
    json_t *s = admin_get_json(&b, SESS "bad-opts", "admin-token", 200);
    cr_assert_eq(int_of(s, "subscriptions"), 0, "a refused subscription was added");
    json_decref(s);
    finish();
}

/* The options go through the store as a SUBSCRIBE's: after a restart GET
 * shows them and the identifier still comes with each message. */
Test(admin_writes, subscription_options_survive_a_restart)
{
    start_persistent();
    client_disconnect(open_v("keep-opts", MQTT_PROTOCOL_V5, false, 3600));
    json_decref(call("POST", SESS "keep-opts/subscriptions",
                     "{\"filter\":\"k/#\",\"qos\":2,\"no_local\":true,\"retain_as_published\":"
                     "true,\"retain_handling\":2,\"subscription_identifier\":268435455}",
                     200));
    stop();
    start("persistence.enabled=true", dir_set);
    expect_options("keep-opts", "k/#", 2, true, true, 2, 268435455);
    struct client *c = open_v("keep-opts", MQTT_PROTOCOL_V5, false, 3600);
    cr_assert(client_session_present(c));
    struct client *pub = open_v("keep-pub", MQTT_PROTOCOL_V311, true, 0);
    client_publish(pub, "k/1", "after", 5, 1, true);
    struct msg m = next_msg(c, "k/1", "after");
    cr_assert(m.retain, "Retain As Published lost in the restart");
    expect_subid(&m, 268435455);
    msg_free(&m);
    client_publish(c, "k/self", "mine", 4, 1, false);
    cr_assert(client_no_message(c, E2E_ABSENT_MS), "No Local lost in the restart");
    client_disconnect(pub);
    client_disconnect(c);
    finish();
    e2e_data_dir_remove(data);
    data[0] = '\0';
}

/* ---- DELETE .../retained?filter= ---------------------------------------------------------- */

#define RETAINED "/api/v1/tenants/global/retained"

static void retain(struct client *pub, const char *topic)
{
    client_publish(pub, topic, topic, (int)strlen(topic), 1, true);
}

/* DELETE ?filter= (and &limit=); the count cleared, *more. */
static json_int_t clear(const char *query, bool *more)
{
    char path[256];
    snprintf(path, sizeof(path), RETAINED "?%s", query);
    json_t *r = call("DELETE", path, NULL, 200);
    json_int_t n = int_of(r, "deleted");
    cr_assert(json_is_boolean(json_object_get(r, "more")));
    *more = json_is_true(json_object_get(r, "more"));
    json_t *next = json_object_get(r, "next"); /* a string exactly while more */
    cr_assert(*more ? json_is_string(next) : json_is_null(next));
    json_decref(r);
    return n;
}

static int topic_cmp(const void *a, const void *b2)
{
    return strcmp(a, b2);
}

/* The retained topics a new subscriber to '#' gets, sorted, joined by
 * spaces into out. */
static void retained_topics(const char *id, char *out, size_t cap)
{
    struct client *c = open_v(id, MQTT_PROTOCOL_V311, true, 0);
    client_subscribe(c, "#", 1);
    char topics[16][32];
    int n = 0;
    struct msg m;
    while (n < 16 && client_wait_message(c, &m, E2E_ABSENT_MS) == 0) {
        cr_assert(m.retain, "%s is not a retained message", m.topic);
        snprintf(topics[n++], 32, "%s", m.topic);
        msg_free(&m);
    }
    client_disconnect(c);
    qsort(topics, (size_t)n, sizeof(topics[0]), topic_cmp);
    out[0] = '\0';
    for (int i = 0; i < n; i++)
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? " " : "", topics[i]);
}

/* A filter's retained messages are cleared, the others kept; "more" says
 * a limit left some, and repeating clears them. */
Test(admin_writes, retained_delete_by_filter_clears_what_it_matches)
{
    start(NULL, NULL);
    struct client *pub = open_v("clr-pub", MQTT_PROTOCOL_V311, true, 0);
    static const char *const topics[] = {"a/1", "a/2", "a/b/3", "b/1", "b/a",
                                         "c/1", "c/2", "c/3",   "c/4", "c/5"};
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
        retain(pub, topics[i]);
    client_disconnect(pub);
    bool more;
    cr_assert_eq(clear("filter=a/%23", &more), 3);
    cr_assert_not(more);
    cr_assert_eq(clear("filter=%2B/a", &more), 1); /* b/a */
    cr_assert_not(more);
    cr_assert_eq(clear("filter=a/%23", &more), 0);
    cr_assert_not(more);
    /* Five under c/+, two per call. */
    cr_assert_eq(clear("filter=c/%2B&limit=2", &more), 2);
    cr_assert(more);
    cr_assert_eq(clear("filter=c/%2B&limit=2", &more), 2);
    cr_assert(more);
    cr_assert_eq(clear("filter=c/%2B&limit=2", &more), 1);
    cr_assert_not(more);
    char got[256];
    retained_topics("clr-sub", got, sizeof(got));
    cr_assert_str_eq(got, "b/1");
    json_decref(call("DELETE", RETAINED "?filter=a/%23/b", NULL, 400)); /* MQTT-4.7.1-2 */
    json_decref(call("DELETE", RETAINED "?filter=a&limit=0", NULL, 400));
    json_decref(call("DELETE", RETAINED "?filter=a&limit=1001", NULL, 400));
    json_decref(call("DELETE", "/api/v1/tenants/nobody/retained?filter=%23", NULL, 404));
    json_decref(admin_call_json(&b, "DELETE", RETAINED "?filter=%23", "any-reader", NULL, 403));
    broker_wait_log(&b, "admin: cleared 3 retained message(s) under a/# in tenant global", 1);
    finish();
}

/* The clears reach the store: after a restart they stay cleared. */
Test(admin_writes, retained_delete_by_filter_survives_a_restart)
{
    start_persistent();
    struct client *pub = open_v("clrp-pub", MQTT_PROTOCOL_V311, true, 0);
    retain(pub, "x/1");
    retain(pub, "x/2/y");
    retain(pub, "z/1");
    client_disconnect(pub);
    bool more;
    cr_assert_eq(clear("filter=x/%23", &more), 2);
    stop();
    start("persistence.enabled=true", dir_set);
    char got[256];
    retained_topics("clrp-sub", got, sizeof(got));
    cr_assert_str_eq(got, "z/1");
    finish();
    e2e_data_dir_remove(data);
    data[0] = '\0';
}

enum { TOPICS_MAX = 128, TOPIC_LEN = 32 };

/* Every retained message a new subscriber to '#' and '$c/#' gets, its
 * topic into out (sorted); returns how many. */
static int retained_now(const char *id, char (*out)[TOPIC_LEN])
{
    struct client *c = open_v(id, MQTT_PROTOCOL_V311, true, 0);
    client_subscribe(c, "#", 1);
    client_subscribe(c, "$c/#", 1);
    int n = 0;
    struct msg m;
    while (client_wait_message(c, &m, E2E_ABSENT_MS) == 0) {
        cr_assert(m.retain, "%s is not a retained message", m.topic);
        cr_assert_lt(n, TOPICS_MAX);
        snprintf(out[n++], TOPIC_LEN, "%s", m.topic);
        msg_free(&m);
    }
    client_disconnect(c);
    qsort(out, (size_t)n, sizeof(out[0]), topic_cmp);
    return n;
}

/* DELETE ?filter=query&limit= from the start, then from each answer's
 * `next` while "more"; the count cleared. *calls: how many it took;
 * *cut: answers with fewer than `limit` cleared and "more" (the budget
 * stopped them). */
static json_int_t clear_all(const char *query, int limit, int *calls, int *cut)
{
    char after[TOPIC_LEN + 8] = "", path[256];
    json_int_t total = 0;
    bool more = true;
    *cut = 0;
    for (*calls = 0; more; (*calls)++) {
        cr_assert_lt(*calls, 100, "%s: the clear does not end", query);
        snprintf(path, sizeof(path), RETAINED "?filter=%s&limit=%d%s", query, limit, after);
        json_t *r = call("DELETE", path, NULL, 200);
        json_int_t n = int_of(r, "deleted");
        more = json_is_true(json_object_get(r, "more"));
        json_t *next = json_object_get(r, "next");
        cr_assert(more ? json_is_string(next) : json_is_null(next), "%s: next", query);
        cr_assert_leq(n, limit);
        if (more)
            snprintf(after, sizeof(after), "&after=%s", json_string_value(next));
        *cut += more && n < limit;
        total += n;
        json_decref(r);
    }
    return total;
}

/* Topics under c (c/NNN, which c/+ matches, with deeper ones it does not
 * interleaved in topic order), "c" and "c-x" beside its range, '$'
 * topics, others, published scrambled, and a page budget of 16 topics
 * looked at per call. Each filter ('+' last, '+' first, '#', a '$' one) is
 * cleared by following `next`: calls come back short with "more", each
 * clears no more than its limit, and in all they clear exactly the topics
 * the filter matches: a new subscriber gets the others and none of those
 * (MQTT-3.3.1-10), the '$' ones kept by '#' and '+/+/x' (MQTT-4.7.2-1). */
Test(admin_writes, retained_clear_by_filter_goes_a_budget_at_a_time)
{
    start("admin.page_budget=16", NULL);
    static char kept[TOPICS_MAX][TOPIC_LEN], got[TOPICS_MAX][TOPIC_LEN];
    int nk = 0;
    for (int i = 0; i < 30; i++) {
        int k = (i * 7) % 30; /* scrambled */
        snprintf(kept[nk++], TOPIC_LEN, "c/%03d", k);
        snprintf(kept[nk++], TOPIC_LEN, "c/%03d/x", k);
        if (k % 3 == 0)
            snprintf(kept[nk++], TOPIC_LEN, "c/%03d/y/z", k);
    }
    for (int i = 0; i < 20; i++) /* '#' clears them: its range too is longer than 16 */
        snprintf(kept[nk++], TOPIC_LEN, "d/%02d/w", (i * 7) % 20);
    static const char *const others[] = {"c", "c-x", "$c/1", "$c/2/x", "d/1", "d/2/x"};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        snprintf(kept[nk++], TOPIC_LEN, "%s", others[i]);
    struct client *pub = open_v("clrb-pub", MQTT_PROTOCOL_V311, true, 0);
    for (int i = 0; i < nk; i++)
        retain(pub, kept[i]);
    client_disconnect(pub);
    qsort(kept, (size_t)nk, sizeof(kept[0]), topic_cmp);
    cr_assert_eq(retained_now("clrb-sub0", got), nk, "not every topic is retained yet");
    static const struct {
        const char *raw, *query;
        int limit;
    } filters[] = {{"c/+", "c/%2B", 1000},
                   {"+/+/x", "%2B/%2B/x", 7},
                   {"#", "%23", 1000},
                   {"$c/#", "$c/%23", 1000}};
    for (size_t f = 0; f < sizeof(filters) / sizeof(filters[0]); f++) {
        int matching = 0, left = 0, calls, cut;
        for (int i = 0; i < nk; i++) {
            if (admin_ref_matches(filters[f].raw, kept[i]))
                matching++;
            else
                memmove(kept[left++], kept[i], sizeof(kept[i]));
        }
        nk = left;
        json_int_t n = clear_all(filters[f].query, filters[f].limit, &calls, &cut);
        cr_assert_eq(n, matching, "%s: %d cleared, %d match", filters[f].raw, (int)n, matching);
        if (filters[f].limit < matching) /* the limit cut calls too */
            cr_assert_geq(calls, (matching + filters[f].limit - 1) / filters[f].limit);
        else if (f < 3) /* their ranges are longer than the budget */
            cr_assert(calls > 1 && cut > 0, "%s: %d call(s), none cut by the budget",
                      filters[f].raw, calls);
        char id[32];
        snprintf(id, sizeof(id), "clrb-sub%zu", f + 1);
        int ng = retained_now(id, got);
        for (int i = 0; i < ng && i < nk; i++)
            cr_assert_str_eq(got[i], kept[i], "after %s: position %d", filters[f].raw, i);
        cr_assert_eq(ng, nk, "after %s: %d retained, want %d", filters[f].raw, ng, nk);
    }
    cr_assert_eq(nk, 0);
    finish();
}
