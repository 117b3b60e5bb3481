/*
 * The admin API (issue 14) against the real broker: authentication (401
 * without or with an unknown token, 403 for a token limited to another
 * tenant, every refusal logged), GET /api/v1/tenants with live counts of
 * real libmosquitto clients, and the open mode of a loopback API without a
 * token file. Tokens are made with ringmq-passwd token, as an operator
 * would. HTTP/1.0 over a loopback socket, read until the server closes.
 * Clients (issue 14's second slice): pages across the shards, the prefix
 * filter, one client's fields, kick (5.0 DISCONNECT 0x98, 3.1.1 close,
 * session=delete), refused to a read token. Sessions: offline ones paged
 * across the shards, one session's subscriptions and queue, DELETE (an
 * offline session gone, a connected one kicked with 0x98). Retained:
 * paged under a filter, one with its payload, DELETE clearing it on every
 * shard's replica. Each write refused to a read token. Publish: the
 * broker's own PUBLISH received by real subscribers (retained too), every
 * malformed body a 400, a huge one 413. A session's subscriptions added
 * and removed, seen by its real client. Reload: a changed file in force.
 * Paging under a small page budget: shards stop early at different ids,
 * and every client and session is still listed once, in id order.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "admin_http.h"
#include "harness.h"

static struct broker b;
static char tokens[64];
static char set_file[128];

TestSuite(admin, .fini = e2e_fini, .timeout = 60);

static void skip_mosquitto(void)
{
    admin_skip_mosquitto();
}

/* Four tokens (admin_http.h) into a new token file. */
static void make_tokens(void)
{
    skip_mosquitto();
    admin_tokens_make(tokens, sizeof(tokens), set_file, sizeof(set_file));
}

/* The broker started with make_tokens' tokens. */
static void start_with_tokens(void)
{
    make_tokens();
    broker_start(&b, "admin.enabled=true", "admin.port=0", set_file, NULL);
}

static int http_send(const char *method, const char *path, const char *token, const char *out,
                     size_t out_len, char *body, size_t cap)
{
    return admin_http_send(&b, method, path, token, out, out_len, body, cap);
}

static int http(const char *method, const char *path, const char *token, char *body, size_t cap)
{
    return http_send(method, path, token, NULL, 0, body, cap);
}

Test(admin, no_or_unknown_token_is_401_and_logged)
{
    start_with_tokens();
    char body[4096];
    cr_assert_eq(http("GET", "/api/v1/tenants", NULL, body, sizeof(body)), 401, "%s", body);
    cr_assert(strstr(body, "\"code\":\"unauthorized\""), "%s", body);
    cr_assert_eq(http("GET", "/api/v1/tenants", "admin-tokem", body, sizeof(body)), 401);
    /* The hash in the file is not a token. */
    cr_assert_eq(http("GET", "/api/v1/tenants", "", body, sizeof(body)), 401);
    broker_wait_log(&b, "admin: 401 unauthorized: GET /api/v1/tenants from 127.0.0.1", 3);
    broker_stop(&b);
    unlink(tokens);
}

Test(admin, tenant_limited_token_is_403_elsewhere_and_sees_only_its_tenants)
{
    start_with_tokens();
    struct client *c = client_open(&b, "admin-seen", true); /* tenant global exists */
    char body[4096];
    cr_assert_eq(http("GET", "/api/v1/tenants/global", "acme-reader", body, sizeof(body)), 403,
                 "%s", body);
    cr_assert(strstr(body, "\"code\":\"forbidden\""), "%s", body);
    broker_wait_log(&b, "admin: 403 forbidden: GET /api/v1/tenants/global", 1);
    cr_assert_eq(http("GET", "/api/v1/tenants", "acme-reader", body, sizeof(body)), 200);
    cr_assert_str_eq(body, "{\"tenants\":[]}");
    cr_assert_eq(http("GET", "/api/v1/tenants/global", "any-reader", body, sizeof(body)), 200, "%s",
                 body);
    client_disconnect(c);
    broker_stop(&b);
    unlink(tokens);
}

/* Connections and sessions as the shards count them, summed: two clients
 * (on different shards when there are several: the ids hash apart). */
Test(admin, tenants_lists_live_counts)
{
    start_with_tokens();
    struct client *c1 = client_open(&b, "admin-c1", true);
    struct client *c2 = client_open(&b, "admin-c2", true);
    char body[4096];
    cr_assert_eq(http("GET", "/api/v1/tenants", "admin-token", body, sizeof(body)), 200);
    cr_assert_str_eq(body,
                     "{\"tenants\":[{\"name\":\"global\",\"connections\":2,\"sessions\":2}]}");
    cr_assert_eq(http("GET", "/api/v1/tenants/global", "any-reader", body, sizeof(body)), 200);
    cr_assert_str_eq(body, "{\"name\":\"global\",\"connections\":2,\"sessions\":2}");
    cr_assert_eq(http("GET", "/api/v1/tenants/nobody", "admin-token", body, sizeof(body)), 404);
    cr_assert_eq(http("GET", "/api/v1/nothing", "admin-token", body, sizeof(body)), 404);
    cr_assert_eq(http("DELETE", "/api/v1/tenants", "admin-token", body, sizeof(body)), 405);
    client_disconnect(c1);
    client_disconnect(c2);
    broker_stop(&b);
    unlink(tokens);
}

Test(admin, loopback_without_token_file_is_open)
{
    skip_mosquitto();
    broker_start(&b, "admin.enabled=true", "admin.port=0", NULL);
    broker_wait_log(&b, "every local caller is an admin", 1);
    char body[4096];
    cr_assert_eq(http("GET", "/api/v1/tenants", NULL, body, sizeof(body)), 200, "%s", body);
    broker_stop(&b);
}

/* ---- clients: paging, one client, kick ---------------------------------------------- */

/* GET `path` with `token`, asserting `status`; the body parsed (NULL for a
 * body that is not JSON). */
static json_t *get_json(const char *path, const char *token, int status)
{
    return admin_get_json(&b, path, token, status);
}

/* The ids of a page into ids[*n...], and its `next` (copied into next,
 * "" when null). */
static void page_ids(json_t *page, char ids[][32], int *n, char *next, size_t cap)
{
    json_t *arr = json_object_get(page, "clients");
    cr_assert(json_is_array(arr));
    for (size_t i = 0; i < json_array_size(arr); i++)
        snprintf(ids[(*n)++], 32, "%s",
                 json_string_value(json_object_get(json_array_get(arr, i), "id")));
    json_t *nx = json_object_get(page, "next");
    cr_assert(json_is_null(nx) || json_is_string(nx));
    snprintf(next, cap, "%s", json_is_string(nx) ? json_string_value(nx) : "");
}

/* Twelve clients connected in a scrambled order (with 4 shards their ids
 * hash onto every shard), and others outside the prefix: pages of 5 walk
 * them all, each exactly once and in id order, and the last page says
 * there is nothing after it. */
Test(admin, clients_pages_every_client_once_in_id_order)
{
    start_with_tokens();
    enum { N = 12 };
    static const int order[N] = {7, 2, 11, 0, 5, 9, 3, 10, 1, 8, 6, 4};
    struct client *c[N], *other[3];
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof(id), "page-%02d", order[i]);
        c[i] = client_open(&b, id, true);
    }
    other[0] = client_open(&b, "pag", true); /* shorter than the prefix */
    other[1] = client_open(&b, "page", true);
    other[2] = client_open(&b, "zz-other", true);
    char ids[64][32], next[64] = "", path[256];
    int n = 0, pages = 0;
    do {
        snprintf(path, sizeof(path), "/api/v1/tenants/global/clients?prefix=page-&limit=5%s%s",
                 next[0] ? "&after=" : "", next);
        json_t *page = get_json(path, "any-reader", 200);
        cr_assert_not_null(page);
        page_ids(page, ids, &n, next, sizeof(next));
        json_decref(page);
        cr_assert(++pages <= 4, "paging does not end");
    } while (next[0]);
    cr_assert_eq(pages, 3);
    cr_assert_eq(n, N);
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof(want), "page-%02d", i);
        cr_assert_str_eq(ids[i], want, "position %d", i);
    }
    /* Without a prefix: every client, the default limit holds them all. */
    json_t *all = get_json("/api/v1/tenants/global/clients", "admin-token", 200);
    n = 0;
    page_ids(all, ids, &n, next, sizeof(next));
    json_decref(all);
    cr_assert_eq(n, N + 3);
    cr_assert_str_eq(ids[0], "pag");
    cr_assert_str_eq(ids[1], "page");
    cr_assert_str_eq(ids[N + 2], "zz-other");
    cr_assert_str_eq(next, "");
    for (int i = 0; i < N; i++)
        client_disconnect(c[i]);
    for (int i = 0; i < 3; i++)
        client_disconnect(other[i]);
    broker_stop(&b);
    unlink(tokens);
}

Test(admin, clients_prefix_filter_and_bad_queries)
{
    start_with_tokens();
    struct client *a1 = client_open(&b, "alpha-1", true);
    struct client *a2 = client_open(&b, "alpha-2", true);
    struct client *b1 = client_open(&b, "beta-1", true);
    char ids[8][32], next[64];
    int n = 0;
    json_t *page = get_json("/api/v1/tenants/global/clients?prefix=alpha-", "admin-token", 200);
    page_ids(page, ids, &n, next, sizeof(next));
    json_decref(page);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(ids[0], "alpha-1");
    cr_assert_str_eq(ids[1], "alpha-2");
    n = 0;
    page = get_json("/api/v1/tenants/global/clients?prefix=gamma", "admin-token", 200);
    page_ids(page, ids, &n, next, sizeof(next));
    json_decref(page);
    cr_assert_eq(n, 0);
    json_decref(get_json("/api/v1/tenants/global/clients?limit=0", "admin-token", 400));
    json_decref(get_json("/api/v1/tenants/global/clients?limit=1001", "admin-token", 400));
    json_decref(get_json("/api/v1/tenants/global/clients?limit=5x", "admin-token", 400));
    json_decref(get_json("/api/v1/tenants/nobody/clients", "admin-token", 404));
    json_decref(get_json("/api/v1/tenants/global/clients", "acme-reader", 403));
    client_disconnect(a1);
    client_disconnect(a2);
    client_disconnect(b1);
    broker_stop(&b);
    unlink(tokens);
}

/* One client's fields as the broker holds them; an unknown one is 404. */
Test(admin, one_client_shows_its_fields)
{
    start_with_tokens();
    struct client_opts o = {.id = "fields-1", .clean = true, .keepalive = 42};
    struct client *c = client_connect(&b, &o);
    client_subscribe(c, "a/b", 1);
    client_subscribe(c, "c/#", 0);
    time_t before = time(NULL);
    json_t *j = get_json("/api/v1/tenants/global/clients/fields-1", "any-reader", 200);
    cr_assert_not_null(j);
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "fields-1");
    cr_assert_str_eq(json_string_value(json_object_get(j, "protocol")), "3.1.1");
    cr_assert_eq(json_integer_value(json_object_get(j, "protocol_level")), 4);
    cr_assert_str_eq(json_string_value(json_object_get(j, "address")), "127.0.0.1");
    cr_assert_gt(json_integer_value(json_object_get(j, "port")), 0);
    cr_assert_str_eq(json_string_value(json_object_get(j, "transport")), "tcp");
    cr_assert_eq(json_integer_value(json_object_get(j, "keepalive")), 42);
    cr_assert_eq(json_integer_value(json_object_get(j, "subscriptions")), 2);
    cr_assert_eq(json_integer_value(json_object_get(j, "inflight")), 0);
    cr_assert_eq(json_integer_value(json_object_get(j, "queued")), 0);
    struct tm tm = {0};
    const char *since = json_string_value(json_object_get(j, "connected_since"));
    cr_assert_not_null(since);
    cr_assert_not_null(strptime(since, "%Y-%m-%dT%H:%M:%SZ", &tm), "%s", since);
    time_t t = timegm(&tm);
    cr_assert(t <= before + 1 && t >= before - 60, "connected_since %s", since);
    json_decref(j);
    json_decref(get_json("/api/v1/tenants/global/clients/nobody-here", "any-reader", 404));
    json_decref(get_json("/api/v1/tenants/global/clients/fields-1", "acme-reader", 403));
    client_disconnect(c);
    json_decref(get_json("/api/v1/tenants/global/clients/fields-1", "any-reader", 404));
    broker_stop(&b);
    unlink(tokens);
}

/* POST `path` as `token`; the status. */
static int post(const char *path, const char *token)
{
    char body[4096];
    return http("POST", path, token, body, sizeof(body));
}

/* MQTT 5.0 4.13.2: a server that closes a 5.0 connection sends DISCONNECT
 * first; the admin API's kick gives 0x98 (Administrative action). */
Test(admin, kick_sends_a_v5_client_disconnect_0x98)
{
    start_with_tokens();
    struct client_opts o = {.id = "kick-v5", .clean = true, .protocol = MQTT_PROTOCOL_V5};
    struct client *c = client_connect(&b, &o);
    cr_assert_eq(post("/api/v1/tenants/global/clients/kick-v5/kick", "admin-token"), 200);
    int rc = client_wait_v5_disconnect(c, E2E_WAIT_MS);
    cr_assert_eq(rc, 0x98, "the 5.0 disconnect callback gave %d", rc);
    broker_wait_log(&b, "admin: kicked client kick-v5 of tenant global", 1);
    json_decref(get_json("/api/v1/tenants/global/clients/kick-v5", "admin-token", 404));
    client_destroy(c);
    broker_stop(&b);
    unlink(tokens);
}

/* A 3.1.1 client is closed; its session stays unless session=delete. */
Test(admin, kick_closes_a_v311_client_and_may_delete_its_session)
{
    start_with_tokens();
    struct client *c = client_open(&b, "kick-311", false);
    cr_assert_eq(post("/api/v1/tenants/global/clients/kick-311/kick", "admin-token"), 200);
    cr_assert_eq(client_wait_closed(c, E2E_WAIT_MS), 0);
    client_destroy(c);
    c = client_open(&b, "kick-311", false);
    cr_assert(client_session_present(c), "kick without session=delete kept the session");
    cr_assert_eq(post("/api/v1/tenants/global/clients/kick-311/kick?session=delete", "admin-token"),
                 200);
    cr_assert_eq(client_wait_closed(c, E2E_WAIT_MS), 0);
    client_destroy(c);
    c = client_open(&b, "kick-311", false);
    cr_assert_not(client_session_present(c), "session=delete left the session");
    client_disconnect(c);
    broker_stop(&b);
    unlink(tokens);
}

/* Kick is for admin tokens: a read token gets 403 (logged) and the client
 * stays; an unknown client is 404. */
Test(admin, kick_refused_to_a_read_token_and_404_for_an_unknown_client)
{
    start_with_tokens();
    struct client *c = client_open(&b, "kick-stays", true);
    cr_assert_eq(post("/api/v1/tenants/global/clients/kick-stays/kick", "any-reader"), 403);
    broker_wait_log(&b, "admin: 403 forbidden: POST /api/v1/tenants/global/clients/kick-stays", 1);
    cr_assert_eq(post("/api/v1/tenants/global/clients/kick-stays/kick", "acme-reader"), 403);
    cr_assert_eq(post("/api/v1/tenants/global/clients/nobody-here/kick", "admin-token"), 404);
    cr_assert_eq(post("/api/v1/tenants/nobody/clients/kick-stays/kick", "admin-token"), 404);
    cr_assert_eq(
        post("/api/v1/tenants/global/clients/kick-stays/kick?session=maybe", "admin-token"), 400);
    json_decref(get_json("/api/v1/tenants/global/clients/kick-stays", "admin-token", 200));
    cr_assert_eq(client_wait_closed(c, 0), -ETIMEDOUT, "a refused kick closed the client");
    client_disconnect(c);
    broker_stop(&b);
    unlink(tokens);
}

/* ---- sessions: offline ones listed, one shown, one deleted ----------------------------- */

/* DELETE `path` as `token`; the status. */
static int del(const char *path, const char *token)
{
    char body[4096];
    return http("DELETE", path, token, body, sizeof(body));
}

/* The `key` entries' `field` strings of a page into out[*n...], and its
 * `next` ("" when null). */
static void page_field(json_t *page, const char *key, const char *field, char out[][32], int *n,
                       char *next, size_t cap)
{
    json_t *arr = json_object_get(page, key);
    cr_assert(json_is_array(arr), "no %s array", key);
    for (size_t i = 0; i < json_array_size(arr); i++)
        snprintf(out[(*n)++], 32, "%s",
                 json_string_value(json_object_get(json_array_get(arr, i), field)));
    json_t *nx = json_object_get(page, "next");
    cr_assert(json_is_null(nx) || json_is_string(nx));
    snprintf(next, cap, "%s", json_is_string(nx) ? json_string_value(nx) : "");
}

/* An offline session of `id` (clean session 0) subscribed to `filter`
 * at QoS 1 (NULL: none). */
static void leave_session(const char *id, const char *filter)
{
    struct client *c = client_open(&b, id, false);
    if (filter)
        client_subscribe(c, filter, 1);
    client_disconnect(c);
}

/* GET one session until `field` is `want` (a message crosses shards
 * before it is queued); the last answer, parsed. */
static json_t *session_until(const char *path, const char *field, json_int_t want)
{
    for (int i = 0;; i++) {
        json_t *j = get_json(path, "admin-token", 200);
        if (json_integer_value(json_object_get(j, field)) == want || i == 200)
            return j;
        json_decref(j);
        usleep(10000);
    }
}

/* Seven offline sessions (their ids hash onto every shard with 4) and a
 * connected one: ?offline=1 pages of 3 walk the offline ones once each
 * in id order; without it the connected one is listed too. */
Test(admin, sessions_pages_offline_sessions_once_in_id_order)
{
    start_with_tokens();
    enum { N = 7 };
    static const int order[N] = {4, 0, 6, 2, 5, 1, 3};
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof(id), "off-%d", order[i]);
        leave_session(id, NULL);
    }
    struct client *on = client_open(&b, "off-9-online", false);
    char ids[32][32], next[64] = "", path[256];
    int n = 0, pages = 0;
    do {
        snprintf(path, sizeof(path), "/api/v1/tenants/global/sessions?offline=1&limit=3%s%s",
                 next[0] ? "&after=" : "", next);
        json_t *page = get_json(path, "any-reader", 200);
        cr_assert_not_null(page);
        page_field(page, "sessions", "id", ids, &n, next, sizeof(next));
        json_decref(page);
        cr_assert(++pages <= 4, "paging does not end");
    } while (next[0]);
    cr_assert_eq(pages, 3);
    cr_assert_eq(n, N);
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof(want), "off-%d", i);
        cr_assert_str_eq(ids[i], want, "position %d", i);
    }
    json_t *all = get_json("/api/v1/tenants/global/sessions", "admin-token", 200);
    json_t *arr = json_object_get(all, "sessions");
    cr_assert_eq(json_array_size(arr), N + 1);
    json_t *last = json_array_get(arr, N);
    cr_assert_str_eq(json_string_value(json_object_get(last, "id")), "off-9-online");
    cr_assert(json_is_true(json_object_get(last, "connected")));
    cr_assert(json_is_false(json_object_get(json_array_get(arr, 0), "connected")));
    json_decref(all);
    json_decref(get_json("/api/v1/tenants/global/sessions?offline=2", "admin-token", 400));
    json_decref(get_json("/api/v1/tenants/global/sessions?limit=0", "admin-token", 400));
    json_decref(get_json("/api/v1/tenants/nobody/sessions", "admin-token", 404));
    json_decref(get_json("/api/v1/tenants/global/sessions", "acme-reader", 403));
    client_disconnect(on);
    broker_stop(&b);
    unlink(tokens);
}

/* Follow `next` from the first page of `query` (limit `limit`) to the
 * last; the ids (each entry's `field`), each in seen[] once, strictly ascending across pages (so
 * none twice, none out of order), their count returned. *short_pages:
 * pages with fewer than `limit` ids whose `next` was set (a shard stopped
 * at its budget). */
static int page_all(const char *query, const char *key, const char *field, int limit,
                    char seen[][32], int cap, int *short_pages)
{
    char next[64] = "", path[256], ids[1000][32];
    int total = 0;
    *short_pages = 0;
    for (int pages = 0;; pages++) {
        cr_assert(pages < 400, "paging does not end: %s", query);
        snprintf(path, sizeof(path), "%s&limit=%d%s%s", query, limit, next[0] ? "&after=" : "",
                 next);
        json_t *page = get_json(path, "admin-token", 200);
        cr_assert_not_null(page);
        int n = 0;
        page_field(page, key, field, ids, &n, next, sizeof(next));
        json_decref(page);
        cr_assert_leq(n, limit);
        if (n < limit && next[0])
            (*short_pages)++;
        for (int i = 0; i < n; i++) {
            cr_assert(total == 0 || strcmp(seen[total - 1], ids[i]) < 0,
                      "%s: %s after %s: seen twice or out of order", query, ids[i],
                      seen[total - 1]);
            cr_assert_lt(total, cap);
            snprintf(seen[total++], 32, "%.31s", ids[i]);
        }
        if (!next[0])
            return total;
    }
}

/* Connected clients and offline sessions interleaved by id (with 4 shards
 * on every shard), and a page budget of 16 sessions looked at per shard:
 * clients pages pass over the offline sessions and ?offline=1 pages over
 * the connected ones, so shards stop early, at different ids. Each listing
 * still yields every id it should exactly once, in id order, and nothing
 * else; pages cut short say so with `next`, and the last says null. */
Test(admin, pages_cut_short_by_the_budget_list_every_id_once)
{
    make_tokens();
    broker_start(&b, "admin.enabled=true", "admin.port=0", "admin.page_budget=16", set_file, NULL);
    enum { N = 120, ON_EVERY = 4 };
    struct client *on[N / ON_EVERY];
    int non = 0;
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof(id), "bud-%03d", (i * 37) % N); /* scrambled */
        if ((i * 37) % N % ON_EVERY == 0)
            on[non++] = client_open(&b, id, false);
        else
            leave_session(id, NULL);
    }
    struct client *outside = client_open(&b, "buc", true); /* before the prefix */
    static char seen[N + 8][32];
    int shorts, n;
    static const int limits[] = {7, 1000};
    for (int l = 0; l < 2; l++) {
        n = page_all("/api/v1/tenants/global/clients?prefix=bud-", "clients", "id", limits[l], seen,
                     N + 8, &shorts);
        cr_assert_eq(n, N / ON_EVERY, "limit %d: %d clients", limits[l], n);
        for (int i = 0; i < n; i++) {
            char want[32];
            snprintf(want, sizeof(want), "bud-%03d", i * ON_EVERY);
            cr_assert_str_eq(seen[i], want);
        }
        /* 120 ids fit one page of 1000: more pages are budget stops. */
        cr_assert(limits[l] < N || shorts > 0, "the budget never cut a clients page");

        n = page_all("/api/v1/tenants/global/sessions?offline=1&prefix=bud-", "sessions", "id",
                     limits[l], seen, N + 8, &shorts);
        cr_assert_eq(n, N - N / ON_EVERY, "limit %d: %d offline sessions", limits[l], n);
        for (int i = 0, k = 0; i < N; i++) {
            char want[32];
            snprintf(want, sizeof(want), "bud-%03d", i);
            if (i % ON_EVERY)
                cr_assert_str_eq(seen[k++], want);
        }
        /* 120 ids fit one page of 1000: more pages are budget stops. */
        cr_assert(limits[l] < N || shorts > 0, "the budget never cut a sessions page");

        /* Every session, no prefix: only the page limit and the budget cut. */
        n = page_all("/api/v1/tenants/global/sessions?offline=0", "sessions", "id", limits[l], seen,
                     N + 8, &shorts);
        cr_assert_eq(n, N + 1, "limit %d: %d sessions", limits[l], n);
        cr_assert_str_eq(seen[0], "buc");
        cr_assert(limits[l] < N || shorts > 0, "the budget never cut a page of all sessions");
    }
    for (int i = 0; i < non; i++)
        client_disconnect(on[i]);
    client_disconnect(outside);
    broker_stop(&b);
    unlink(tokens);
}

/* What answering took each shard is in the metrics: every shard answers a
 * page (so each counts it), and the longest answer is there. */
Test(admin, answers_are_counted_per_shard_in_metrics)
{
    make_tokens();
    broker_start(&b, "admin.enabled=true", "admin.port=0", "metrics.enabled=true", "metrics.port=0",
                 set_file, NULL);
    char body[4096];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(http("GET", "/api/v1/tenants/global/sessions?limit=10", "admin-token", body,
                          sizeof(body)),
                     200, "%s", body);
    char *m = metrics_scrape(broker_metrics_port(&b));
    long shards = metrics_sample(m, "ringmq_shards");
    cr_assert_geq(shards, 1);
    for (long i = 0; i < shards; i++) {
        char key[96];
        snprintf(key, sizeof(key), "ringmq_admin_answers_total{shard=\"%ld\"}", i);
        cr_assert_geq(metrics_sample(m, key), 3, "%s", key);
        snprintf(key, sizeof(key), "ringmq_admin_answer_seconds_max{shard=\"%ld\"}", i);
        cr_assert_geq(metrics_sample(m, key), 0, "%s missing", key);
    }
    free(m);
    broker_stop(&b);
    unlink(tokens);
}

/* One session, offline: its subscriptions (filter, QoS), the message
 * queued for it, its expiry and the time left; a connected one says so
 * (no time left counts); none: 404. */
Test(admin, one_session_shows_subscriptions_and_queue)
{
    start_with_tokens();
    struct client *c = client_open(&b, "sess-1", false);
    client_subscribe(c, "a/b", 1);
    client_subscribe(c, "c/#", 0);
    client_disconnect(c);
    struct client *pub = client_open(&b, "sess-pub", true);
    client_publish(pub, "a/b", "x", 1, 1, false);
    json_t *j = session_until("/api/v1/tenants/global/sessions/sess-1", "queued", 1);
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "sess-1");
    cr_assert(json_is_false(json_object_get(j, "connected")));
    /* 3.1.1 clean session 0: the broker's max_session_expiry (604800). */
    cr_assert_eq(json_integer_value(json_object_get(j, "expiry_interval")), 604800);
    json_int_t left = json_integer_value(json_object_get(j, "expires_in"));
    cr_assert(left > 604800 - 60 && left <= 604800, "expires_in %lld", (long long)left);
    cr_assert_eq(json_integer_value(json_object_get(j, "subscriptions")), 2);
    cr_assert_eq(json_integer_value(json_object_get(j, "queued")), 1);
    cr_assert_eq(json_integer_value(json_object_get(j, "inflight")), 0);
    json_t *f = json_object_get(j, "filters");
    cr_assert_eq(json_array_size(f), 2);
    bool ab = false, c_all = false;
    for (size_t i = 0; i < 2; i++) {
        const char *filter = json_string_value(json_object_get(json_array_get(f, i), "filter"));
        json_int_t qos = json_integer_value(json_object_get(json_array_get(f, i), "qos"));
        ab |= !strcmp(filter, "a/b") && qos == 1;
        c_all |= !strcmp(filter, "c/#") && qos == 0;
    }
    cr_assert(ab && c_all, "filters and their QoS");
    json_decref(j);
    j = get_json("/api/v1/tenants/global/sessions/sess-pub", "any-reader", 200);
    cr_assert(json_is_true(json_object_get(j, "connected")));
    cr_assert(json_is_null(json_object_get(j, "expires_in")));
    json_decref(j);
    json_decref(get_json("/api/v1/tenants/global/sessions/nobody-here", "any-reader", 404));
    json_decref(get_json("/api/v1/tenants/global/sessions/sess-1", "acme-reader", 403));
    client_disconnect(pub);
    broker_stop(&b);
    unlink(tokens);
}

/* DELETE ends an offline session: the client reconnecting with clean
 * session 0 gets session present 0 (MQTT-3.2.2-3: no session, so 0). A
 * read token is refused (403) and the session stays. */
Test(admin, delete_ends_an_offline_session)
{
    start_with_tokens();
    leave_session("del-off", "d/#");
    cr_assert_eq(del("/api/v1/tenants/global/sessions/del-off", "any-reader"), 403);
    broker_wait_log(&b, "admin: 403 forbidden: DELETE /api/v1/tenants/global/sessions/del-off", 1);
    json_decref(get_json("/api/v1/tenants/global/sessions/del-off", "admin-token", 200));
    cr_assert_eq(del("/api/v1/tenants/global/sessions/del-off", "admin-token"), 200);
    broker_wait_log(&b, "admin: deleted session del-off of tenant global", 1);
    json_decref(get_json("/api/v1/tenants/global/sessions/del-off", "admin-token", 404));
    cr_assert_eq(del("/api/v1/tenants/global/sessions/del-off", "admin-token"), 404);
    cr_assert_eq(del("/api/v1/tenants/global/sessions", "admin-token"), 405);
    struct client *c = client_open(&b, "del-off", false);
    cr_assert_not(client_session_present(c), "the deleted session came back");
    client_disconnect(c);
    broker_stop(&b);
    unlink(tokens);
}

/* DELETE of a connected 5.0 client's session: DISCONNECT 0x98 (MQTT 5.0
 * 4.13.2), then the session is gone. */
Test(admin, delete_kicks_a_connected_session_and_ends_it)
{
    start_with_tokens();
    struct client_opts o = {.id = "del-on", .clean = false, .protocol = MQTT_PROTOCOL_V5};
    struct client *c = client_connect(&b, &o);
    cr_assert_eq(del("/api/v1/tenants/global/sessions/del-on", "admin-token"), 200);
    int rc = client_wait_v5_disconnect(c, E2E_WAIT_MS);
    cr_assert_eq(rc, 0x98, "the 5.0 disconnect callback gave %d", rc);
    client_destroy(c);
    c = client_open(&b, "del-on", false);
    cr_assert_not(client_session_present(c), "the deleted session came back");
    client_disconnect(c);
    broker_stop(&b);
    unlink(tokens);
}

/* ---- retained: listed under a filter, one shown, one cleared --------------------------- */

/* Retained messages on a/1/c, a/2/c, a/3/c, a/x/c and a/1/d: the filter
 * a/+/c pages (limit 2) through four in topic order; one is shown with
 * its payload in base64. */
Test(admin, retained_pages_under_a_filter_and_shows_one)
{
    start_with_tokens();
    struct client *pub = client_open(&b, "ret-pub", true);
    static const char *const topics[] = {"a/x/c", "a/2/c", "a/1/d", "a/1/c", "a/3/c"};
    for (int i = 0; i < 5; i++)
        client_publish(pub, topics[i], "hello", 5, 1, true);
    char got[16][32], next[64] = "", path[256];
    int n = 0, pages = 0;
    do {
        snprintf(path, sizeof(path), "/api/v1/tenants/global/retained?filter=a/%%2B/c&limit=2%s%s",
                 next[0] ? "&after=" : "", next);
        json_t *page = get_json(path, "any-reader", 200);
        cr_assert_not_null(page);
        page_field(page, "retained", "topic", got, &n, next, sizeof(next));
        json_decref(page);
        cr_assert(++pages <= 3, "paging does not end");
    } while (next[0]);
    cr_assert_eq(n, 4);
    cr_assert_str_eq(got[0], "a/1/c");
    cr_assert_str_eq(got[1], "a/2/c");
    cr_assert_str_eq(got[2], "a/3/c");
    cr_assert_str_eq(got[3], "a/x/c");
    json_t *j = get_json("/api/v1/tenants/global/retained?topic=a/1/d", "any-reader", 200);
    cr_assert_str_eq(json_string_value(json_object_get(j, "topic")), "a/1/d");
    cr_assert_str_eq(json_string_value(json_object_get(j, "payload")), "aGVsbG8=");
    cr_assert_eq(json_integer_value(json_object_get(j, "qos")), 1);
    cr_assert_eq(json_integer_value(json_object_get(j, "properties_length")), 0);
    json_decref(j);
    json_decref(get_json("/api/v1/tenants/global/retained?topic=a/9/d", "any-reader", 404));
    json_decref(get_json("/api/v1/tenants/global/retained?topic=a/%2B", "any-reader", 400));
    json_decref(get_json("/api/v1/tenants/global/retained?filter=a/%23/b", "any-reader", 400));
    json_decref(get_json("/api/v1/tenants/global/retained", "acme-reader", 403));
    client_disconnect(pub);
    broker_stop(&b);
    unlink(tokens);
}

static int str_cmp(const void *x, const void *y)
{
    return strcmp(x, y);
}

/* Retained topics under "s" (with and without a third level, a run of 20
 * deeper ones that s/+/t does not match, "s" itself, "s-x" between "s" and
 * the range of "s/", "sa/..." just past it), '$' topics, others, published
 * scrambled, one cleared (a tombstone, on several shards). A page budget
 * of 16 topics looked at: each filter ('+' in the middle, '#', leading
 * wildcards, a '$' one) pages through topic ranges longer than the budget,
 * so pages come back short with `next` set, and following `next` lists
 * every match once, in byte order, and nothing else: no '$' topic under
 * a leading wildcard (MQTT-4.7.2-1), "s" under "s/#" (MQTT-4.7.1-2), not
 * the cleared one (MQTT-3.3.1-10). */
Test(admin, retained_pages_cut_short_by_the_budget_list_every_match_once)
{
    make_tokens();
    broker_start(&b, "admin.enabled=true", "admin.port=0", "admin.page_budget=16", set_file, NULL);
    enum { S = 30, CAP = 128 };
    static char topics[CAP][32];
    int nt = 0;
    for (int i = 0; i < S; i++) {
        int k = (i * 7) % S; /* scrambled */
        snprintf(topics[nt++], 32, "s/%03d/t", k);
        snprintf(topics[nt++], 32, "s/%03d/u", k);
        if (k % 3 == 0)
            snprintf(topics[nt++], 32, "s/%03d", k);
    }
    for (int i = 0; i < 20; i++) /* a run longer than the budget that s/+/t skips */
        snprintf(topics[nt++], 32, "s/015/x/%02d", i);
    static const char *const more[] = {"s",    "s-x",   "sa/1/t", "$s/1/t",
                                       "$s/2", "r/1/t", "t/2/t",  "s/"};
    for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
        snprintf(topics[nt++], 32, "%s", more[i]);
    struct client *pub = client_open(&b, "ret-budget-pub", true);
    for (int i = 0; i < nt; i++)
        client_publish(pub, topics[i], "v", 1, 1, true);
    /* One publisher, one ring to shard 0: the last there means all are. */
    char body[4096];
    for (int i = 0; i < 200 && http("GET", "/api/v1/tenants/global/retained?topic=s/",
                                    "admin-token", body, sizeof(body)) != 200;
         i++)
        usleep(10000);
    cr_assert_eq(del("/api/v1/tenants/global/retained?topic=s/005/t", "admin-token"), 200);
    int kept = 0; /* the cleared one is gone */
    for (int i = 0; i < nt; i++)
        if (strcmp(topics[i], "s/005/t") != 0)
            memmove(topics[kept++], topics[i], sizeof(topics[i]));
    nt = kept;
    qsort(topics, (size_t)nt, sizeof(topics[0]), str_cmp);
    static const struct {
        const char *raw, *query;
    } filters[] = {{"s/+/t", "s/%2B/t"}, {"#", "%23"},       {"+/+/t", "%2B/%2B/t"},
                   {"s/#", "s/%23"},     {"$s/#", "$s/%23"}, {"s/+", "s/%2B"}};
    static char seen[CAP][32];
    for (size_t f = 0; f < sizeof(filters) / sizeof(filters[0]); f++) {
        char query[128], want[CAP][32];
        int nw = 0, shorts;
        for (int i = 0; i < nt; i++)
            if (admin_ref_matches(filters[f].raw, topics[i]))
                memcpy(want[nw++], topics[i], sizeof(want[0]));
        snprintf(query, sizeof(query), "/api/v1/tenants/global/retained?filter=%s",
                 filters[f].query);
        static const int limits[] = {7, 1000};
        for (int l = 0; l < 2; l++) {
            int n = page_all(query, "retained", "topic", limits[l], seen, CAP, &shorts);
            cr_assert_eq(n, nw, "%s, limit %d: %d topics, want %d", filters[f].raw, limits[l], n,
                         nw);
            for (int i = 0; i < n; i++)
                cr_assert_str_eq(seen[i], want[i], "%s: position %d", filters[f].raw, i);
            if (filters[f].raw[0] != '$') /* its range holds 2 topics: one page */
                cr_assert(limits[l] < nw || shorts > 0, "%s: the budget never cut a page",
                          filters[f].raw);
        }
    }
    client_disconnect(pub);
    broker_stop(&b);
    unlink(tokens);
}

/* DELETE ?topic= clears the retained message as an empty retained
 * PUBLISH would (MQTT-3.3.1-10): a client subscribing afterwards, on
 * whichever shard, gets none for that topic, and the other stays. A read
 * token is refused. */
Test(admin, retained_delete_clears_it_for_every_subscriber)
{
    start_with_tokens();
    struct client *pub = client_open(&b, "ret-pub", true);
    client_publish(pub, "k/gone", "old", 3, 0, true);
    client_publish(pub, "k/kept", "new", 3, 0, true);
    /* Shard 0 answers: the message reaches its replica a moment later. */
    char body[4096];
    for (int i = 0; i < 200 && http("GET", "/api/v1/tenants/global/retained?topic=k/kept",
                                    "admin-token", body, sizeof(body)) != 200;
         i++)
        usleep(10000);
    json_decref(get_json("/api/v1/tenants/global/retained?topic=k/gone", "admin-token", 200));
    cr_assert_eq(del("/api/v1/tenants/global/retained?topic=k/gone", "any-reader"), 403);
    cr_assert_eq(del("/api/v1/tenants/global/retained?topic=k/gone", "admin-token"), 200);
    broker_wait_log(&b, "admin: cleared the retained message of k/gone in tenant global", 1);
    cr_assert_eq(del("/api/v1/tenants/global/retained?topic=k/gone", "admin-token"), 404);
    cr_assert_eq(del("/api/v1/tenants/global/retained", "admin-token"), 400);
    json_decref(get_json("/api/v1/tenants/global/retained?topic=k/gone", "admin-token", 404));
    for (int i = 0; i < 4; i++) { /* with 4 shards: ids on several of them */
        char id[32];
        snprintf(id, sizeof(id), "ret-sub-%d", i);
        struct client *sub = client_open(&b, id, true);
        client_subscribe(sub, "k/#", 0);
        client_expect_message(sub, "k/kept", "new", NULL, NULL);
        cr_assert(client_no_message(sub, 100), "%s got a cleared retained message", id);
        client_disconnect(sub);
    }
    client_disconnect(pub);
    broker_stop(&b);
    unlink(tokens);
}

/* What the API deletes, the store forgets: after a restart on the same
 * directory the deleted session and the cleared retained message stay
 * gone, the others come back. */
Test(admin, deletes_reach_the_store)
{
    if (getenv("RINGMQ_E2E_BROKER") && !strcmp(getenv("RINGMQ_E2E_BROKER"), "mosquitto"))
        cr_skip_test("the admin API is ringmq's");
    char data[128], dir_set[160];
    e2e_data_dir_create(data, sizeof(data));
    snprintf(dir_set, sizeof(dir_set), "persistence.dir=%s", data);
    make_tokens();
    broker_start(&b, "admin.enabled=true", "admin.port=0", set_file, "persistence.enabled=true",
                 dir_set, NULL);
    leave_session("store-gone", "x/1");
    leave_session("store-kept", "x/2");
    struct client *pub = client_open(&b, "store-pub", true);
    client_publish(pub, "r/gone", "1", 1, 1, true);
    client_publish(pub, "r/kept", "2", 1, 1, true);
    client_disconnect(pub);
    cr_assert_eq(del("/api/v1/tenants/global/sessions/store-gone", "admin-token"), 200);
    cr_assert_eq(del("/api/v1/tenants/global/retained?topic=r/gone", "admin-token"), 200);
    broker_stop(&b);
    broker_start(&b, "admin.enabled=true", "admin.port=0", set_file, "persistence.enabled=true",
                 dir_set, NULL);
    json_decref(get_json("/api/v1/tenants/global/sessions/store-kept", "admin-token", 200));
    json_decref(get_json("/api/v1/tenants/global/sessions/store-gone", "admin-token", 404));
    json_decref(get_json("/api/v1/tenants/global/retained?topic=r/kept", "admin-token", 200));
    json_decref(get_json("/api/v1/tenants/global/retained?topic=r/gone", "admin-token", 404));
    /* Restored messages are in shard 0's topic order too: a page finds them. */
    json_t *pg = get_json("/api/v1/tenants/global/retained?filter=r/%23", "admin-token", 200);
    json_t *arr = json_object_get(pg, "retained");
    cr_assert_eq(json_array_size(arr), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "topic")), "r/kept");
    cr_assert(json_is_null(json_object_get(pg, "next")));
    json_decref(pg);
    struct client *c = client_open(&b, "store-gone", false);
    cr_assert_not(client_session_present(c), "the deleted session came back from the store");
    client_disconnect(c);
    broker_stop(&b);
    unlink(tokens);
    e2e_data_dir_remove(data);
}

/* ---- writes: publish, a session's subscriptions ---------------------------------------- */

/* POST `json` to `path` as `token`; the status. */
static int post_json(const char *path, const char *token, const char *json)
{
    char body[4096];
    return http_send("POST", path, token, json, strlen(json), body, sizeof(body));
}

/* The broker's own PUBLISH reaches a real subscriber, as text and base64,
 * retained for a later one; refused to read tokens and to tokens of other
 * tenants; every malformed body is a 400 (a huge one 413) and publishes
 * nothing. */
Test(admin, publish_reaches_a_subscriber_and_bad_bodies_are_400)
{
    start_with_tokens();
    const char *path = "/api/v1/tenants/global/publish";
    struct client *sub = client_open(&b, "pub-sub", true);
    client_subscribe(sub, "adm/#", 1);
    cr_assert_eq(
        post_json(path, "admin-token", "{\"topic\":\"adm/a\",\"payload\":\"hello\",\"qos\":1}"),
        200);
    client_expect_message(sub, "adm/a", "hello", NULL, NULL);
    broker_wait_log(&b, "admin: published 5 bytes on adm/a in tenant global", 1);
    cr_assert_eq(post_json(path, "admin-token",
                           "{\"topic\":\"adm/b\",\"payload_base64\":\"aGk=\",\"retain\":true,"
                           "\"message_expiry\":60}"),
                 200);
    client_expect_message(sub, "adm/b", "hi", NULL, NULL);
    cr_assert_eq(post_json(path, "any-reader", "{\"topic\":\"adm/a\",\"payload\":\"no\"}"), 403);
    cr_assert_eq(post_json(path, "acme-reader", "{\"topic\":\"adm/a\",\"payload\":\"no\"}"), 403);
    cr_assert_eq(post_json(path, "acme-admin", "{\"topic\":\"adm/a\",\"payload\":\"no\"}"), 403);
    cr_assert_eq(post_json(path, NULL, "{\"topic\":\"adm/a\",\"payload\":\"no\"}"), 401);
    static const char *const bad[] = {
        "{\"topic\":\"adm/+\",\"payload\":\"no\"}", /* MQTT-3.3.2-2: no wildcards */
        "{\"topic\":\"\",\"payload\":\"no\"}",      /* MQTT-4.7.3-1: at least one character */
        "{\"topic\":\"$SYS/broker/uptime\",\"payload\":\"0\"}", /* the broker's own */
        "{\"topic\":\"adm/a\",\"qos\":3}",
        "{\"topic\":\"adm/a\",\"qos\":\"1\"}",
        "{\"topic\":\"adm/a\",\"payload\":\"x\",\"payload_base64\":\"eA==\"}",
        "{\"topic\":\"adm/a\",\"payload_base64\":\"not base64\"}",
        "{\"topic\":\"adm/a\",\"retain\":1}",
        "{\"topic\":\"adm/a\",\"colour\":\"red\"}",
        "not json",
        "[1,2]",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(post_json(path, "admin-token", bad[i]), 400, "%s", bad[i]);
    size_t big = 300 * 1024;
    char *huge = malloc(big);
    cr_assert_not_null(huge);
    memset(huge, ' ', big);
    char reply[4096];
    cr_assert_eq(http_send("POST", path, "admin-token", huge, big, reply, sizeof(reply)), 413);
    free(huge);
    cr_assert_eq(post_json("/api/v1/tenants/nobody/publish", "admin-token", "{\"topic\":\"a\"}"),
                 404);
    cr_assert(client_no_message(sub, 200), "a refused publish was delivered");
    struct client *late = client_open(&b, "pub-late", true);
    client_subscribe(late, "adm/b", 0);
    client_expect_message(late, "adm/b", "hi", NULL, NULL); /* retained */
    client_disconnect(late);
    client_disconnect(sub);
    broker_stop(&b);
    unlink(tokens);
}

/* A session's subscriptions changed by the API as its SUBSCRIBE and
 * UNSUBSCRIBE would: an offline session, back online, gets messages on
 * the added filter, and none after the filter is removed; with 4 shards
 * the publisher's shard learns the interest from the session's home. */
Test(admin, subscriptions_added_and_removed_for_a_session)
{
    start_with_tokens();
    const char *path = "/api/v1/tenants/global/sessions/adm-sess/subscriptions";
    leave_session("adm-sess", NULL);
    cr_assert_eq(post_json(path, "any-reader", "{\"filter\":\"s/#\",\"qos\":1}"), 403);
    cr_assert_eq(post_json(path, "acme-admin", "{\"filter\":\"s/#\",\"qos\":1}"), 403);
    cr_assert_eq(post_json(path, "admin-token", "{\"filter\":\"s/#\",\"qos\":3}"), 400);
    cr_assert_eq(post_json(path, "admin-token", "{\"filter\":\"s/#/x\"}"), 400); /* MQTT-4.7.1-2 */
    cr_assert_eq(post_json("/api/v1/tenants/global/sessions/nobody/subscriptions", "admin-token",
                           "{\"filter\":\"s/#\"}"),
                 404);
    cr_assert_eq(post_json(path, "admin-token", "{\"filter\":\"s/#\",\"qos\":1}"), 200);
    broker_wait_log(&b, "admin: subscribed session adm-sess of tenant global to s/#", 1);
    json_t *one = get_json("/api/v1/tenants/global/sessions/adm-sess", "admin-token", 200);
    cr_assert_eq(json_integer_value(json_object_get(one, "subscriptions")), 1);
    json_decref(one);
    struct client *c = client_open(&b, "adm-sess", false);
    struct client *pub = client_open(&b, "adm-pub", true);
    for (int i = 0; i < 8; i++) { /* publishers on several shards */
        char id[32];
        snprintf(id, sizeof(id), "adm-pub-%d", i);
        struct client *p = client_open(&b, id, true);
        client_publish(p, "s/1", "one", 3, 1, false);
        client_expect_message(c, "s/1", "one", NULL, NULL);
        client_disconnect(p);
    }
    cr_assert_eq(
        del("/api/v1/tenants/global/sessions/adm-sess/subscriptions?filter=s/%23", "any-reader"),
        403);
    cr_assert_eq(
        del("/api/v1/tenants/global/sessions/adm-sess/subscriptions?filter=s/%23", "admin-token"),
        200);
    cr_assert_eq(
        del("/api/v1/tenants/global/sessions/adm-sess/subscriptions?filter=s/%23", "admin-token"),
        404);
    client_publish(pub, "s/2", "two", 3, 1, false);
    cr_assert(client_no_message(c, 300), "a removed subscription still delivered");
    client_disconnect(pub);
    client_disconnect(c);
    broker_stop(&b);
    unlink(tokens);
}

/* ---- reload ------------------------------------------------------------------------------ */

/* CONNACK return code for a 3.1.1 client with id `id`. */
static int connect_rc(const char *id)
{
    struct raw_connect o = {.flags = -1, .clean = true, .keepalive = 60, .id = id};
    int rc = -1;
    int fd = raw_mqtt_connect(&b, &o, &rc, NULL);
    close(fd);
    return rc;
}

/* RINGMQ_CONF's text into `path` with max_client_id_len = `len`. */
static void write_conf(const char *path, int len)
{
    FILE *in = fopen(getenv("RINGMQ_BASE_CONF"), "r"), *out = fopen(path, "w");
    cr_assert(in && out);
    char line[1024];
    while (fgets(line, sizeof(line), in))
        if (!strncmp(line, "max_client_id_len = ", 20))
            fprintf(out, "max_client_id_len = %d\n", len);
        else
            fputs(line, out);
    fclose(in);
    fclose(out);
}

/* POST /reload does what SIGHUP does: a value changed in the file is in
 * force for new connections (MQTT-3.1.3-5 lets a server refuse long ids:
 * 3.1.1 CONNACK 0x02). Admin tokens only. */
Test(admin, reload_puts_a_changed_file_in_force)
{
    make_tokens();
    char conf[64] = "/tmp/ringmq-admin-conf-XXXXXX";
    int fd = mkstemp(conf);
    cr_assert(fd >= 0);
    close(fd);
    setenv("RINGMQ_BASE_CONF", getenv("RINGMQ_CONF"), 1);
    write_conf(conf, 256);
    setenv("RINGMQ_CONF", conf, 1);
    broker_start(&b, "admin.enabled=true", "admin.port=0", set_file, NULL);
    const char *id = "another-thirty-byte-long-id-01";
    cr_assert_eq(connect_rc(id), 0);
    write_conf(conf, 24);
    cr_assert_eq(post("/api/v1/reload", "any-reader"), 403);
    cr_assert_eq(post("/api/v1/reload", NULL), 401);
    cr_assert_eq(post("/api/v1/reload", "acme-admin"), 403); /* limited to a tenant */
    cr_assert_eq(del("/api/v1/reload", "admin-token"), 405);
    usleep(300 * 1000); /* a shard takes a reload on its tick: none may have */
    cr_assert_eq(connect_rc(id), 0, "a refused reload changed the limit");
    cr_assert_eq(post("/api/v1/reload", "admin-token"), 200);
    broker_wait_log(&b, "reload: [limits] max_client_id_len changed", 1);
    int rc = -1;
    for (int i = 0; i < 40 && rc != 2; i++) { /* each shard on its tick (250 ms) */
        rc = connect_rc(id);
        if (rc != 2)
            usleep(50 * 1000);
    }
    cr_assert_eq(rc, 2, "the reloaded limit is not in force");
    cr_assert_eq(connect_rc("short"), 0);
    broker_stop(&b);
    unlink(conf);
    unlink(tokens);
}
