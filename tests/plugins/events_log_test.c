/*
 * Tests of plugins/events_log through the plugin ABI (dlopen by a fake
 * host): one JSON object per line with every key, JSON escaping of client
 * ids and topics (invalid UTF-8 included), and reopening on reload.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "fake_host.h"

static const struct ringmq_plugin *plug;
static void *state;
static char log_path[256];

static void setup(void)
{
    plug = fake_load(EVENTS_LOG_SO);
    cr_assert_eq(plug->kinds, RINGMQ_KIND_EVENTS);
    fake_path("events.jsonl", log_path, sizeof(log_path));
    struct ringmq_kv kv[] = {{"file", log_path}};
    char err[256];
    cr_assert_eq(fake_init(plug, kv, 1, &state, err, sizeof(err)), 0, "%s", err);
}

static void teardown(void)
{
    plug->fini(state);
    fake_cleanup();
}

TestSuite(events_log, .init = setup, .fini = teardown);

/* The n-th line (0-based) of `path`, malloc'd, or NULL. */
static char *read_line(const char *path, int n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len = 0;
    for (int i = 0; i <= n; i++)
        if ((len = getline(&buf, &cap, f)) < 0) {
            free(buf);
            fclose(f);
            return NULL;
        }
    fclose(f);
    cr_assert_eq(buf[len - 1], '\n', "each event ends its line");
    buf[len - 1] = '\0';
    return buf;
}

static int count_lines(const char *path)
{
    int n = 0;
    while (true) {
        char *l = read_line(path, n);
        if (!l)
            return n;
        free(l);
        n++;
    }
}

/* One line parsed strictly by jansson (no duplicate names, nothing after
 * the object; \u0000 allowed, a topic may hold it): the object, which the
 * caller releases. */
static json_t *parse_line(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
    cr_assert(json_is_object(j), "%s: %s", s, j ? "not an object" : e.text);
    return j;
}

static void assert_json_object(const char *s)
{
    json_decref(parse_line(s));
}

static struct ringmq_bytes B(const char *s) {
    return (struct ringmq_bytes){(const uint8_t *)s, strlen(s)};
}

Test(events_log, connected_event_has_every_key)
{
    struct ringmq_event ev = {
        .type = RINGMQ_EV_CONNECTED,
        .time_ms = 1700000000123ull,
        .tenant = "acme",
        .user_id = "u-1",
        .client_id = B("dev-1"),
        .remote_addr = "127.0.0.1",
        .shard = 3,
    };
    plug->event(state, &ev);
    char *l = read_line(log_path, 0);
    cr_assert_not_null(l);
    assert_json_object(l);
    cr_assert_str_eq(l, "{\"type\":\"connected\",\"time_ms\":1700000000123,\"tenant\":\"acme\","
                        "\"user_id\":\"u-1\",\"client_id\":\"dev-1\",\"remote_addr\":"
                        "\"127.0.0.1\",\"reason\":0,\"resource\":null,\"topic\":null,"
                        "\"shard\":3}");
    free(l);
}

Test(events_log, throttled_and_dropped_name_resource_and_reason)
{
    struct ringmq_event ev = {
        .type = RINGMQ_EV_THROTTLED,
        .tenant = "acme",
        .client_id = B("c"),
        .resource = RINGMQ_RES_SHARED_SUBSCRIPTIONS,
    };
    plug->event(state, &ev);
    ev = (struct ringmq_event){
        .type = RINGMQ_EV_MESSAGE_DROPPED,
        .tenant = "acme",
        .reason = RINGMQ_DROP_QUEUE_FULL,
        .topic = B("a/b"),
    };
    plug->event(state, &ev);
    char *l0 = read_line(log_path, 0), *l1 = read_line(log_path, 1);
    cr_assert_not_null(l0);
    cr_assert_not_null(l1);
    assert_json_object(l0);
    assert_json_object(l1);
    cr_assert_not_null(strstr(l0, "\"type\":\"throttled\""), "%s", l0);
    cr_assert_not_null(strstr(l0, "\"resource\":\"shared_subscriptions\""), "%s", l0);
    cr_assert_not_null(strstr(l0, "\"user_id\":null"), "%s", l0);
    cr_assert_not_null(strstr(l0, "\"remote_addr\":null"), "%s", l0);
    cr_assert_not_null(strstr(l1, "\"type\":\"message_dropped\""), "%s", l1);
    cr_assert_not_null(strstr(l1, "\"reason_name\":\"queue_full\""), "%s", l1);
    cr_assert_not_null(strstr(l1, "\"topic\":\"a/b\""), "%s", l1);
    free(l0);
    free(l1);
}

Test(events_log, client_id_and_topic_are_json_escaped)
{
    /* quote, backslash, newline, tab, DEL, valid 2- and 3-byte UTF-8, an
     * invalid byte 0xff, a truncated sequence 0xe2 0x82, and an overlong
     * encoding of '/' (0xc0 0xaf). */
    static const char cid[] = "a\"b\\c\nd\te\x7f"
                              "\xc3\xa9\xe2\x82\xac\xff\xe2\x82"
                              "\xc0\xafz";
    struct ringmq_event ev = {
        .type = RINGMQ_EV_PERMISSION_DENIED,
        .tenant = "t\"x",
        .client_id = {(const uint8_t *)cid, sizeof(cid) - 1},
        .topic = {(const uint8_t *)"n\0ul", 4},
    };
    plug->event(state, &ev);
    char *l = read_line(log_path, 0);
    cr_assert_not_null(l);
    json_t *o = parse_line(l);
    /* Decoded: valid UTF-8 kept, every other byte as U+00XX. */
    static const char want[] = "a\"b\\c\nd\te\x7f"
                               "\xc3\xa9\xe2\x82\xac"
                               "\xc3\xbf\xc3\xa2\xc2\x82"
                               "\xc3\x80\xc2\xafz";
    cr_assert_str_eq(json_string_value(json_object_get(o, "client_id")), want, "%s", l);
    cr_assert_str_eq(json_string_value(json_object_get(o, "tenant")), "t\"x", "%s", l);
    json_t *topic = json_object_get(o, "topic");
    cr_assert_eq(json_string_length(topic), 4, "%s", l);
    cr_assert_eq(memcmp(json_string_value(topic), "n\0ul", 4), 0, "%s", l);
    /* As written: control characters escaped, the line one line. */
    cr_assert_not_null(strstr(l, "\"client_id\":\"a\\\"b\\\\c\\nd"), "%s", l);
    cr_assert_not_null(strstr(l, "\"topic\":\"n\\u0000ul\""), "%s", l);
    json_decref(o);
    free(l);
}

/* Pins the format: every key, in order, with its type, for every event
 * type; reason_name only for drops, resource only for throttling. */
Test(events_log, every_type_has_every_key_in_order)
{
    static const char *const keys[] = {"type",        "time_ms", "tenant",   "user_id", "client_id",
                                       "remote_addr", "reason",  "resource", "topic",   "shard"};
    for (int t = RINGMQ_EV_CONNECTED; t <= RINGMQ_EV_SLOW_SUBSCRIBER + 1; t++) {
        struct ringmq_event ev = {.type = (enum ringmq_event_type)t,
                                  .time_ms = 1,
                                  .client_id = B("c"),
                                  .reason = RINGMQ_DROP_DENIED,
                                  .resource = RINGMQ_RES_RETAINED};
        plug->event(state, &ev);
        char *l = read_line(log_path, t - RINGMQ_EV_CONNECTED);
        cr_assert_not_null(l);
        json_t *o = parse_line(l);
        bool dropped = t == RINGMQ_EV_MESSAGE_DROPPED;
        cr_assert_eq(json_object_size(o), 10 + dropped, "%s", l);
        size_t k = 0;
        const char *key;
        json_t *v;
        json_object_foreach(o, key, v)
        {
            if (dropped && !strcmp(key, "reason_name")) {
                cr_assert_str_eq(json_string_value(v), "denied");
                continue;
            }
            cr_assert_str_eq(key, keys[k], "%s", l);
            k++;
        }
        cr_assert(json_is_integer(json_object_get(o, "time_ms")));
        cr_assert(json_is_integer(json_object_get(o, "reason")));
        cr_assert(json_is_integer(json_object_get(o, "shard")));
        cr_assert(json_is_null(json_object_get(o, "tenant")));
        cr_assert(json_is_null(json_object_get(o, "topic")));
        json_t *res = json_object_get(o, "resource");
        if (t == RINGMQ_EV_THROTTLED)
            cr_assert_str_eq(json_string_value(res), "retained");
        else
            cr_assert(json_is_null(res), "%s", l);
        if (t > RINGMQ_EV_SLOW_SUBSCRIBER)
            cr_assert_str_eq(json_string_value(json_object_get(o, "type")), "unknown_9");
        json_decref(o);
        free(l);
    }
}

Test(events_log, long_topics_are_written_whole)
{
    size_t n = 70000;
    char *topic = malloc(n);
    cr_assert_not_null(topic);
    memset(topic, 'x', n);
    struct ringmq_event ev = {.type = RINGMQ_EV_SLOW_SUBSCRIBER, .topic = {(uint8_t *)topic, n}};
    plug->event(state, &ev);
    char *l = read_line(log_path, 0);
    cr_assert_not_null(l);
    assert_json_object(l);
    cr_assert_gt(strlen(l), n);
    free(l);
    free(topic);
}

Test(events_log, reload_reopens_the_file_after_rotation)
{
    struct ringmq_event ev = {.type = RINGMQ_EV_SESSION_CREATED, .tenant = "a"};
    plug->event(state, &ev);
    char rotated[300];
    snprintf(rotated, sizeof(rotated), "%s.1", log_path);
    cr_assert_eq(rename(log_path, rotated), 0);
    ev.type = RINGMQ_EV_SESSION_EXPIRED;
    plug->event(state, &ev); /* still the old (renamed) file */
    plug->reload(state);
    ev.type = RINGMQ_EV_DISCONNECTED;
    ev.reason = 0x8e;
    plug->event(state, &ev);
    cr_assert_eq(count_lines(rotated), 2);
    cr_assert_eq(count_lines(log_path), 1);
    char *l = read_line(log_path, 0);
    cr_assert_not_null(strstr(l, "\"type\":\"disconnected\""), "%s", l);
    cr_assert_not_null(strstr(l, "\"reason\":142"), "%s", l);
    free(l);
}

Test(events_log_init, file_is_required_and_must_open)
{
    const struct ringmq_plugin *p = fake_load(EVENTS_LOG_SO);
    void *st;
    char err[256];
    cr_assert_neq(fake_init(p, NULL, 0, &st, err, sizeof(err)), 0);
    cr_assert_not_null(strstr(err, "file is required"), "%s", err);
    struct ringmq_kv bad[] = {{"file", "/nonexistent-dir/x.log"}};
    cr_assert_neq(fake_init(p, bad, 1, &st, err, sizeof(err)), 0);
    cr_assert_not_null(strstr(err, "/nonexistent-dir/x.log"), "%s", err);
    struct ringmq_kv typo[] = {{"fiel", "/tmp/x"}};
    cr_assert_neq(fake_init(p, typo, 1, &st, err, sizeof(err)), 0);
    cr_assert_not_null(strstr(err, "fiel"), "%s", err);
}

/* ABI 5: another `file` is opened at reconfigure, written to from the
 * commit on; one that cannot open, or an unknown key, is refused and the
 * old file goes on; a discarded one is never written. */
Test(events_log, reconfigure_switches_the_file_at_commit)
{
    char other[256], err[256];
    fake_path("other.jsonl", other, sizeof(other));
    struct ringmq_event ev = {.type = RINGMQ_EV_CONNECTED, .tenant = "t", .client_id = B("c")};
    void *next = NULL;
    struct ringmq_kv bad[] = {{"file", "/nonexistent/dir/x.jsonl"}};
    cr_assert_neq(plug->reconfigure(state, bad, 1, &next, err, sizeof(err)), 0);
    cr_assert(strstr(err, "/nonexistent/dir/x.jsonl"), "%s", err);
    struct ringmq_kv typo[] = {{"flie", other}};
    cr_assert_neq(plug->reconfigure(state, typo, 1, &next, err, sizeof(err)), 0);
    cr_assert(strstr(err, "flie"), "%s", err);
    struct ringmq_kv kv[] = {{"file", other}};
    cr_assert_eq(plug->reconfigure(state, kv, 1, &next, err, sizeof(err)), 0, "%s", err);
    plug->reconfigure_commit(state, next, false);
    plug->event(state, &ev);
    cr_assert_eq(count_lines(log_path), 1);
    cr_assert_eq(plug->reconfigure(state, kv, 1, &next, err, sizeof(err)), 0, "%s", err);
    plug->event(state, &ev);
    cr_assert_eq(count_lines(log_path), 2, "not before the commit");
    plug->reconfigure_commit(state, next, true);
    plug->event(state, &ev);
    cr_assert_eq(count_lines(log_path), 2);
    cr_assert_eq(count_lines(other), 1);
    plug->reload(state); /* reopens the new file */
    plug->event(state, &ev);
    cr_assert_eq(count_lines(other), 2);
}
