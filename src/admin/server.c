/*
 * admin server: the admin API's HTTP listener, libmicrohttpd on its own
 * internal polling thread (like metrics/server.c), JSON with jansson;
 * HTTPS (and client certificates) when [admin] tls_* say so (admin/tls.h).
 *
 * Owns the MHD daemon, the loaded tokens and the PEM text (read-only once
 * started); a reload reads the TLS files again and serves them to new
 * connections (admin/tls.h's generations). Every request is answered on that one thread: the client
 * certificate, the request target, authentication, routing, then the
 * broker's op. It never touches broker state itself, and never runs on a
 * shard. HTTP parsing is libmicrohttpd's; this file only checks the raw
 * request target (before libmicrohttpd decodes it) and splits the path,
 * which it bounds before looking at it.
 */
#include "admin/admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>

#include "admin/http.h"
#include "admin/tls.h"
#include "admin/token.h"
#include "core/log.h"

enum { ADMIN_CONNECTION_LIMIT = 32, ADMIN_CONNECTION_TIMEOUT_S = 10, ADMIN_PATH_MAX = 512 };

#define API_PREFIX "/api/v1"

struct admin_server {
    struct MHD_Daemon *daemon;
    const struct admin_ops *ops;
    void *arg;
    bool open; /* no token file: every caller is an admin */
    struct admin_tokens tokens;
    struct admin_tls tls; /* PEM text MHD points at: freed after the daemon stops */
    /* A reload's certificates, read and checked, not yet served
     * (admin_server_tls_reload, admin_server_tls_commit). */
    struct admin_tls_creds *tls_pending;
};

static void admin_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[256];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    log_ratelimited(LOG_LEVEL_WARN, "admin: http: %s", line);
}

/* Send `body` (taken: freed here) as JSON with `status`. */
enum MHD_Result http_reply_json(struct MHD_Connection *conn, unsigned int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return MHD_NO; /* out of memory: MHD closes the connection */
    size_t len = strlen(text);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"ringmq\"");
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* An error: {"error": {"code": CODE, "message": MESSAGE}}. */
enum MHD_Result http_reply_error(struct MHD_Connection *conn, unsigned int status, const char *code,
                                 const char *message)
{
    return http_reply_json(conn, status,
                           json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message));
}

static void peer_name(struct MHD_Connection *conn, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, cap, "?");
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
}

/* A refusal: logged (rate-limited: a scanner must not flood the log), then
 * answered. */
enum MHD_Result http_refuse(struct MHD_Connection *conn, const struct caller *c,
                            unsigned int status, const char *code, const char *message,
                            const char *method, const char *url)
{
    log_ratelimited(LOG_LEVEL_WARN, "admin: %u %s: %s %s from %s", status, code, method, url,
                    c->peer);
    return http_reply_error(conn, status, code, message);
}

/* Authenticate (c->peer already set): 0 (c->token set unless open) or
 * the refusal was sent (*ret holds MHD's answer). */
static int authenticate(struct admin_server *s, struct MHD_Connection *conn, struct caller *c,
                        const char *method, const char *url, enum MHD_Result *ret)
{
    c->token = NULL;
    if (s->open)
        return 0;
    const char *h =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    static const char bearer[] = "Bearer ";
    if (!h || strncasecmp(h, bearer, sizeof(bearer) - 1) != 0) {
        *ret = http_refuse(conn, c, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                           "an Authorization: Bearer token is required", method, url);
        return -1;
    }
    const char *tok = h + sizeof(bearer) - 1;
    c->token = admin_tokens_find(&s->tokens, tok, strlen(tok));
    if (!c->token) {
        *ret = http_refuse(conn, c, MHD_HTTP_UNAUTHORIZED, "unauthorized", "unknown token", method,
                           url);
        return -1;
    }
    return 0;
}

static bool caller_sees(const struct caller *c, const char *tenant)
{
    return !c->token || admin_token_allows_tenant(c->token, tenant);
}

/* Every tenant (or the one named: `only`, NULL for all) the broker has
 * seen, as JSON objects; NULL when out of memory. *found: `only` exists. */
static json_t *tenants_json(struct admin_server *s, const struct caller *c, const char *only,
                            bool *found)
{
    uint32_t cap = 64, n;
    struct admin_tenant *v = NULL;
    for (;;) {
        struct admin_tenant *nv = realloc(v, cap * sizeof(*v));
        if (!nv) {
            free(v);
            return NULL;
        }
        v = nv;
        n = s->ops->tenants(s->arg, v, cap);
        if (n <= cap)
            break;
        cap = n;
    }
    json_t *arr = json_array();
    *found = false;
    for (uint32_t i = 0; arr && i < n; i++) {
        if (only ? strcmp(v[i].name, only) != 0 : !caller_sees(c, v[i].name))
            continue;
        *found = true;
        json_t *o = json_pack("{s:s,s:I,s:I}", "name", v[i].name, "connections",
                              (json_int_t)v[i].connections, "sessions", (json_int_t)v[i].sessions);
        if (!o || json_array_append_new(arr, o) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    free(v);
    return arr;
}

/* GET /tenants and GET /tenants/{t} (one the caller may see). */
static enum MHD_Result get_tenants(struct admin_server *s, struct MHD_Connection *conn,
                                   const struct caller *c, const char *one)
{
    bool found;
    json_t *arr = tenants_json(s, c, one, &found);
    if (!arr)
        return http_reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "out of memory");
    if (!one)
        return http_reply_json(conn, MHD_HTTP_OK, json_pack("{s:o}", "tenants", arr));
    if (!found) {
        json_decref(arr);
        return http_reply_error(conn, MHD_HTTP_NOT_FOUND, "not_found", "no such tenant");
    }
    json_t *t = json_incref(json_array_get(arr, 0));
    json_decref(arr);
    return http_reply_json(conn, MHD_HTTP_OK, t);
}

/* An op's -errno as the answer. */
enum MHD_Result http_reply_errno(struct MHD_Connection *conn, int err, const char *missing)
{
    if (err == -ENOENT)
        return http_reply_error(conn, MHD_HTTP_NOT_FOUND, "not_found", missing);
    if (err == -EINVAL)
        return http_reply_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request",
                                "not a valid topic name or filter");
    if (err == -ETIMEDOUT)
        return http_reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                                "the broker's shards did not answer in time");
    return http_reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "out of memory");
}

/* "5.0", "3.1.1", "3.1" for a protocol level. */
static const char *protocol_name(uint8_t level)
{
    return level == 5 ? "5.0" : level == 4 ? "3.1.1" : "3.1";
}

/* One client as JSON; NULL when out of memory. Client ids are valid UTF-8
 * (the codec checks them, MQTT-1.5.3-1), as jansson requires. */
static json_t *client_json(const struct admin_client *c)
{
    char since[32];
    time_t t = (time_t)c->connected_since;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(since, sizeof(since), "?");
    return json_pack("{s:s%,s:s,s:i,s:s,s:i,s:s,s:s,s:s,s:i,s:I,s:I,s:I}", "id", c->id,
                     (size_t)c->id_len, "protocol", protocol_name(c->version), "protocol_level",
                     (int)c->version, "address", c->addr, "port", (int)c->port, "listener",
                     c->listener ? c->listener : "", "transport", c->transport ? c->transport : "",
                     "connected_since", since, "keepalive", (int)c->keepalive, "subscriptions",
                     (json_int_t)c->subscriptions, "inflight", (json_int_t)c->inflight, "queued",
                     (json_int_t)c->queued);
}

void admin_client_fini(struct admin_client *c)
{
    free(c->id);
    c->id = NULL;
}

void admin_client_page_fini(struct admin_client_page *p)
{
    for (uint32_t i = 0; i < p->n; i++)
        admin_client_fini(&p->v[i]);
    free(p->v);
    free(p->next);
    p->v = NULL;
    p->next = NULL;
    p->n = 0;
}

/* ?prefix=&after=&limit= into *q; NULL, or why the query is refused. */
const char *http_page_query(struct MHD_Connection *conn, struct admin_client_query *q)
{
    memset(q, 0, sizeof(*q));
    q->limit = ADMIN_PAGE_DEFAULT;
    q->prefix = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "prefix");
    q->after = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "after");
    q->prefix_len = q->prefix ? strlen(q->prefix) : 0;
    q->after_len = q->after ? strlen(q->after) : 0;
    if (q->prefix_len > ADMIN_CLIENT_ID_MAX || q->after_len > ADMIN_CLIENT_ID_MAX)
        return "prefix and after are client ids: at most 65535 bytes";
    const char *limit = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
    if (limit) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(limit, &end, 10);
        if (!*limit || *end || errno || *limit == '-' || v < 1 || v > ADMIN_PAGE_MAX)
            return "limit must be a number from 1 to 1000";
        q->limit = (uint32_t)v;
    }
    return NULL;
}

/* GET /tenants/{t}/clients: one page, and the `after` of the next. */
static enum MHD_Result get_clients(struct admin_server *s, struct MHD_Connection *conn,
                                   const char *tenant)
{
    struct admin_client_query q;
    const char *bad = http_page_query(conn, &q);
    if (bad)
        return http_reply_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request", bad);
    struct admin_client_page page = {0};
    int err = s->ops->clients(s->arg, tenant, &q, &page);
    if (err < 0)
        return http_reply_errno(conn, err, "no such tenant");
    json_t *arr = json_array();
    for (uint32_t i = 0; arr && i < page.n; i++)
        if (json_array_append_new(arr, client_json(&page.v[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    json_t *next =
        http_page_next(page.more, page.next, page.next_len, page.n ? page.v[page.n - 1].id : NULL,
                       page.n ? page.v[page.n - 1].id_len : 0);
    admin_client_page_fini(&page);
    json_t *body = http_page_json("clients", arr, next);
    if (!body)
        return http_reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "out of memory");
    return http_reply_json(conn, MHD_HTTP_OK, body);
}

/* GET /tenants/{t}/clients/{id}. */
static enum MHD_Result get_client(struct admin_server *s, struct MHD_Connection *conn,
                                  const char *tenant, const char *id, size_t len)
{
    struct admin_client c = {0};
    int err = s->ops->client(s->arg, tenant, id, len, &c);
    if (err < 0)
        return http_reply_errno(conn, err, "no such client connected");
    json_t *o = client_json(&c);
    admin_client_fini(&c);
    if (!o)
        return http_reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "out of memory");
    return http_reply_json(conn, MHD_HTTP_OK, o);
}

/* POST /tenants/{t}/clients/{id}/kick[?session=delete]: admin role only. */
static enum MHD_Result post_kick(struct admin_server *s, struct MHD_Connection *conn,
                                 const struct caller *c, const char *tenant, const char *id,
                                 size_t len, const char *url)
{
    if (c->token && c->token->role != ADMIN_ROLE_ADMIN)
        return http_refuse(conn, c, MHD_HTTP_FORBIDDEN, "forbidden", "a read token may only GET",
                           "POST", url);
    const char *session = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "session");
    if (session && strcmp(session, "delete") != 0 && strcmp(session, "keep") != 0)
        return http_reply_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request",
                                "session must be delete or keep");
    bool drop = session && !strcmp(session, "delete");
    int err = s->ops->kick(s->arg, tenant, id, len, drop);
    if (err < 0)
        return http_reply_errno(conn, err, "no such client connected");
    log_info("admin: kicked client %.*s of tenant %s%s (from %s)", (int)len, id, tenant,
             drop ? ", session deleted" : "", c->peer);
    return http_reply_json(conn, MHD_HTTP_OK,
                           json_pack("{s:s%,s:b}", "kicked", id, len, "session_deleted", drop));
}

/* .../clients/{rest}: GET {id} (the rest, slashes and all), POST {id}/kick. */
static enum MHD_Result route_client(struct admin_server *s, struct MHD_Connection *conn,
                                    const struct caller *c, const char *method, const char *tenant,
                                    const char *rest, const char *url)
{
    static const char kick[] = "/kick";
    size_t len = strlen(rest), kl = sizeof(kick) - 1;
    if (!strcmp(method, MHD_HTTP_METHOD_GET))
        return len ? get_client(s, conn, tenant, rest, len)
                   : http_reply_error(conn, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
        return http_reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                                "GET a client, POST its kick");
    if (len <= kl || strcmp(rest + len - kl, kick) != 0)
        return http_reply_error(conn, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
    return post_kick(s, conn, c, tenant, rest, len - kl, url);
}

/* The part of the path after /tenants/{t} that names `what` ("/clients"):
 * NULL when it does not, else what follows it ("" or "/..."). */
static const char *sub_after(const char *sub, const char *what)
{
    size_t n = strlen(what);
    return sub && !strncmp(sub, what, n) && (sub[n] == '\0' || sub[n] == '/') ? sub + n : NULL;
}

/* Below /tenants/{t}: clients, sessions (POST or DELETE of .../{id}
 * /subscriptions: a session's subscription; a GET of that path is the
 * session of that id, slashes and all), retained, publish (the tenant one
 * the caller may see). */
static enum MHD_Result route_tenant(struct admin_server *s, struct MHD_Connection *conn,
                                    const struct caller *c, const char *method, const char *tenant,
                                    const char *sub, const char *url)
{
    const char *rest;
    static const char subs[] = "/subscriptions";
    size_t rl, sl = sizeof(subs) - 1;
    if ((rest = sub_after(sub, "/sessions")) && (rl = strlen(rest)) > sl + 1 &&
        !strcmp(rest + rl - sl, subs) && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
        return http_subscriptions(s->ops, s->arg, conn, c, method, tenant, rest + 1, rl - sl - 1,
                                  url);
    if ((rest = sub_after(sub, "/publish")) && !*rest)
        return http_publish(s->ops, s->arg, conn, c, method, tenant, url);
    if ((rest = sub_after(sub, "/sessions")))
        return http_sessions(s->ops, s->arg, conn, c, method, tenant, *rest ? rest + 1 : NULL, url);
    if ((rest = sub_after(sub, "/retained")) && !*rest)
        return http_retained(s->ops, s->arg, conn, c, method, tenant, url);
    if (!(rest = sub_after(sub, "/clients")))
        return http_reply_error(conn, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
    if (*rest)
        return route_client(s, conn, c, method, tenant, rest + 1, url);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
        return http_reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                                "only GET is served here");
    return get_clients(s, conn, tenant);
}

/* Route an authenticated request. Paths: /api/v1/reload, /api/v1/tenants[/{t}[/clients
 * [/{id}[/kick]] | /sessions[/{id}[/subscriptions]] | /retained |
 * /publish]]. The tenant must be one the token may see. */
static enum MHD_Result route(struct admin_server *s, struct MHD_Connection *conn,
                             const struct caller *c, const char *method, const char *url)
{
    static const char tenants[] = API_PREFIX "/tenants";
    const size_t tl = sizeof(tenants) - 1;
    if (!strcmp(url, API_PREFIX "/reload"))
        return http_reload(s->ops, s->arg, conn, c, method, url);
    if (strncmp(url, tenants, tl) != 0 || (url[tl] != '\0' && url[tl] != '/'))
        return http_reply_error(conn, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
    char tenant[ADMIN_TENANT_MAX];
    const char *one = url[tl] == '/' ? url + tl + 1 : NULL;
    const char *sub = one ? one + strcspn(one, "/") : NULL;
    if (one && (sub == one || (size_t)(sub - one) >= sizeof(tenant)))
        return http_reply_error(conn, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
    if (one) {
        snprintf(tenant, sizeof(tenant), "%.*s", (int)(sub - one), one);
        one = tenant;
    }
    if (one && !caller_sees(c, one))
        return http_refuse(conn, c, MHD_HTTP_FORBIDDEN, "forbidden",
                           "this token may not see that tenant", method, url);
    if (sub && *sub)
        return route_tenant(s, conn, c, method, one, sub, url);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
        return http_reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                                "only GET is served here");
    return get_tenants(s, conn, c, one);
}

/* One request, from its request line (admin_target_seen) to MHD's end
 * of it (admin_completed): what the raw target showed, who is asking, a
 * POST's body as it arrives. */
struct request {
    const char *target; /* the raw target as MHD first showed it (its buffer) */
    size_t target_len;  /* strlen(target): up to a NUL byte, if any */
    bool target_ctl;    /* the target holds a control byte, raw or %-encoded */
    bool started;       /* the handler has seen it */
    bool post;
    struct caller c;
    char *data;
    size_t len, cap;
    bool too_large; /* over ADMIN_BODY_MAX: the rest is read and dropped */
};

/* A control byte (0x00-0x1F, 0x7F) as the decoder would make it. */
static bool ctl_byte(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

/* Whether the raw target (path and query) holds a control byte, raw or
 * %-encoded: MHD decodes both in place, and a %00 then ends the path or a
 * query key early (/tenants%00/x would be /tenants). */
static bool target_has_ctl(const char *t)
{
    for (; *t; t++) {
        if (ctl_byte((unsigned char)*t))
            return true;
        int hi, lo;
        if (*t == '%' && (hi = hex_value(t[1])) >= 0 && (lo = hex_value(t[2])) >= 0 &&
            ctl_byte((unsigned char)(hi << 4 | lo)))
            return true;
    }
    return false;
}

/*
 * MHD's URI log callback: the request target as it came, before MHD
 * splits off the query and decodes either. Its answer is the request's
 * state (*req_cls); NULL (out of memory) makes the handler close.
 */
static void *admin_target_seen(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    struct request *rq = calloc(1, sizeof(*rq));
    if (rq && uri) {
        rq->target = uri;
        rq->target_len = strlen(uri);
        rq->target_ctl = target_has_ctl(uri);
    }
    return rq;
}

/* Whether a raw NUL byte cut the target short. MHD 0.9 splits the request
 * line in place: the URI, a NUL where the space before the version was,
 * then the version; the path handed to the handler is the same buffer,
 * decoded in place. A NUL inside the target ends the string MHD showed
 * before the version's place; a target string that reaches it is whole.
 * Only asked when MHD handed over the very buffer it showed (url ==
 * target), so another layout never refuses a good request. */
static bool target_cut(const struct request *rq, const char *url, const char *version)
{
    return rq->target && version && url == rq->target && version > rq->target + rq->target_len + 1;
}

/* Append p[0..n) to the body; false when out of memory. */
static bool upload_add(struct request *u, const char *p, size_t n)
{
    if (u->too_large || n > ADMIN_BODY_MAX - u->len) {
        u->too_large = true;
        return true;
    }
    if (u->len + n > u->cap) {
        size_t cap = u->cap ? u->cap : 4096;
        while (cap < u->len + n)
            cap *= 2;
        char *d = realloc(u->data, cap);
        if (!d)
            return false;
        u->data = d;
        u->cap = cap;
    }
    memcpy(u->data + u->len, p, n);
    u->len += n;
    return true;
}

/* MHD's end of a request: free its state. */
static void admin_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                            enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct request *u = *req_cls;
    if (u)
        free(u->data);
    free(u);
    *req_cls = NULL;
}

/* With tls_client_ca: the caller's certificate verifies against it; else
 * the 403 was sent (*ret). */
static bool client_cert_ok(struct admin_server *s, struct MHD_Connection *conn,
                           const struct caller *c, const char *method, const char *url,
                           enum MHD_Result *ret)
{
    if (!s->tls.client_ca)
        return true;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    char why[256];
    if (ci && ci->tls_session && admin_tls_peer_check(ci->tls_session, why, sizeof(why)))
        return true;
    if (!ci || !ci->tls_session)
        snprintf(why, sizeof(why), "no TLS session");
    *ret = http_refuse(conn, c, MHD_HTTP_FORBIDDEN, "forbidden", why, method, url);
    return false;
}

/* The first call for a request: the client certificate, the target, the
 * caller; GET and DELETE answered, a POST's body awaited. */
static enum MHD_Result request_start(struct admin_server *s, struct request *rq,
                                     struct MHD_Connection *conn, const char *url,
                                     const char *method, const char *version)
{
    enum MHD_Result ret = MHD_NO;
    struct caller c = {0};
    rq->started = true;
    peer_name(conn, c.peer, sizeof(c.peer));
    if (!client_cert_ok(s, conn, &c, method, url, &ret))
        return ret;
    if (rq->target_ctl || target_cut(rq, url, version))
        return http_reply_error(conn, MHD_HTTP_BAD_REQUEST, "bad_request",
                                "the path or query holds a control character (a byte 0x00-0x1F "
                                "or 0x7F, raw or %-encoded)");
    if (strlen(url) > ADMIN_PATH_MAX)
        return http_reply_error(conn, MHD_HTTP_URI_TOO_LONG, "uri_too_long", "path too long");
    if (authenticate(s, conn, &c, method, url, &ret) < 0)
        return ret;
    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
        return route(s, conn, &c, method, url);
    rq->post = true;
    rq->c = c;
    return MHD_YES;
}

/*
 * GET and DELETE are answered on the first call for the request (they
 * take no body; MHD closes a connection whose upload was refused). A POST
 * is authenticated on the first call, its body gathered (at most
 * ADMIN_BODY_MAX bytes, past it 413) and answered on the last. The path
 * MHD hands over is percent-decoded, so a client id with '/' or spaces is
 * sent encoded (a control byte is refused before: request_start).
 */
static enum MHD_Result admin_request(void *cls, struct MHD_Connection *conn, const char *url,
                                     const char *method, const char *version,
                                     const char *upload_data, size_t *upload_data_size,
                                     void **req_cls)
{
    struct admin_server *s = cls;
    struct request *u = *req_cls;
    if (!u)
        return MHD_NO; /* out of memory in admin_target_seen: MHD closes */
    if (!u->started)
        return request_start(s, u, conn, url, method, version);
    if (!u->post) { /* answered already: a body MHD still passes is dropped */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        bool ok = upload_add(u, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return ok ? MHD_YES : MHD_NO;
    }
    if (u->too_large)
        return http_reply_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
                                "the body is over 256 KiB");
    u->c.body = u->data ? u->data : "";
    u->c.body_len = u->len;
    return route(s, conn, &u->c, method, url);
}

/* Parse an IPv4 or IPv6 literal (IPv6 optionally in brackets). */
static int parse_addr(const char *bind_addr, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, bind_addr, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        return AF_INET;
    }
    char v6[sizeof(((struct config *)0)->admin_bind)];
    size_t n = strlen(bind_addr);
    if (n >= 2 && bind_addr[0] == '[' && bind_addr[n - 1] == ']')
        snprintf(v6, sizeof(v6), "%.*s", (int)(n - 2), bind_addr + 1);
    else
        snprintf(v6, sizeof(v6), "%s", bind_addr);
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, v6, &sin6->sin6_addr) != 1)
        return -1;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    return AF_INET6;
}

/* GnuTLS's protocol versions for the admin API: TLS 1.2 and 1.3, as the
 * MQTT listeners' default (tls_min_version). */
#define ADMIN_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* The TLS options (none without TLS) into o[4]; the flags they need. The
 * certificate and key come from admin/tls.c's callback in each handshake,
 * so that a reload can serve new ones (admin_server_tls_reload). */
static unsigned int tls_options(const struct admin_tls *t, struct MHD_OptionItem *o)
{
    size_t n = 0;
    if (t->cert) {
        o[n++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0, admin_tls_cert_callback()};
        o[n++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)ADMIN_TLS_PRIORITIES};
    }
    /* MHD then asks every caller for a certificate (GnuTLS's "request",
     * not "require": the handshake goes on without one), and its trust
     * list is the one admin_tls_peer_check verifies against. */
    if (t->client_ca)
        o[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, t->client_ca};
    o[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    return t->cert ? MHD_USE_TLS : 0;
}

/*
 * MHD's daemon on the configured address; 0 or -1 with err set.
 *
 * poll(), not MHD_USE_AUTO's epoll: MHD 0.9.75 registers sockets
 * edge-triggered and, after a read shorter than its buffer, waits for the
 * next edge; bytes and a half-close (shutdown(SHUT_WR)) arriving together
 * are one edge, so the end of the stream was not seen until the 10 s
 * timeout. poll() reports it on the next turn and MHD closes at once.
 * 32 connections at most: poll costs nothing here.
 */
static int admin_listen(struct admin_server *s, const struct config *cfg, uint16_t *bound_port,
                        char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int family = parse_addr(cfg->admin_bind, cfg->admin_port, &ss);
    if (family < 0) {
        snprintf(err, errlen, "admin: bind address '%s' is not an IPv4 or IPv6 literal",
                 cfg->admin_bind);
        return -1;
    }
    struct MHD_OptionItem tls[5];
    unsigned int flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    flags |= tls_options(&s->tls, tls);
    if (family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(
        flags, cfg->admin_port, NULL, NULL, admin_request, s, MHD_OPTION_EXTERNAL_LOGGER, admin_log,
        s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)ADMIN_CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)ADMIN_CONNECTION_TIMEOUT_S, MHD_OPTION_URI_LOG_CALLBACK, admin_target_seen, s,
        MHD_OPTION_NOTIFY_COMPLETED, admin_completed, s, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, errlen, "admin: cannot listen on %s port %u%s", cfg->admin_bind,
                 (unsigned)cfg->admin_port, s->tls.cert ? " with TLS" : "");
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || !info->port) {
        snprintf(err, errlen, "admin: cannot learn the port bound on %s", cfg->admin_bind);
        MHD_stop_daemon(s->daemon);
        return -1;
    }
    if (bound_port)
        *bound_port = info->port;
    return 0;
}

/* With TLS: the certificates of s->tls served from the first handshake. */
static int tls_serve(struct admin_server *s, const struct config *cfg, char *err, size_t errlen)
{
    struct admin_tls_creds *c;
    if (!s->tls.cert)
        return 0;
    int rc = admin_tls_creds_create(&s->tls, cfg, &c, err, errlen);
    if (rc == 0)
        admin_tls_creds_publish(c);
    return rc;
}

int admin_server_tls_reload(struct admin_server *s, const struct config *cfg, char *err,
                            size_t errlen)
{
    if (!s || !s->tls.cert)
        return 0;
    struct admin_tls fresh;
    struct admin_tls_creds *c = NULL;
    int rc = admin_tls_load(&fresh, cfg, err, errlen);
    if (rc == 0 && !fresh.cert) {
        snprintf(err, errlen, "admin: tls_cert is no longer set: HTTPS stays until a restart");
        rc = -EINVAL;
    }
    if (rc == 0)
        rc = admin_tls_creds_create(&fresh, cfg, &c, err, errlen);
    admin_tls_fini(&fresh); /* the generation holds what it needs */
    admin_tls_creds_destroy(s->tls_pending);
    s->tls_pending = c;
    return rc;
}

void admin_server_tls_commit(struct admin_server *s, bool serve)
{
    if (!s || !s->tls_pending)
        return;
    if (serve)
        admin_tls_creds_publish(s->tls_pending);
    else
        admin_tls_creds_destroy(s->tls_pending);
    s->tls_pending = NULL;
}

int admin_check(const struct config *cfg, char *err, size_t errlen)
{
    struct admin_tokens tokens = {0};
    struct admin_tls tls;
    if (cfg->admin_token_file[0] &&
        admin_tokens_load(&tokens, cfg->admin_token_file, err, errlen) < 0)
        return -1;
    admin_tokens_fini(&tokens);
    if (admin_tls_load(&tls, cfg, err, errlen) < 0)
        return -1;
    admin_tls_fini(&tls);
    return 0;
}

struct admin_server *admin_server_start(const struct config *cfg, const struct admin_ops *ops,
                                        void *arg, uint16_t *bound_port, char *err, size_t errlen)
{
    struct admin_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "admin: out of memory");
        return NULL;
    }
    s->ops = ops;
    s->arg = arg;
    s->open = !cfg->admin_token_file[0];
    if (!s->open && admin_tokens_load(&s->tokens, cfg->admin_token_file, err, errlen) < 0)
        goto fail;
    if (admin_tls_load(&s->tls, cfg, err, errlen) < 0 || tls_serve(s, cfg, err, errlen) < 0 ||
        admin_listen(s, cfg, bound_port, err, errlen) < 0)
        goto fail;
    return s;
fail: /* each fini is a no-op on the zeroed (calloc) or failed part */
    admin_tls_creds_free_all();
    admin_tls_fini(&s->tls);
    admin_tokens_fini(&s->tokens);
    free(s);
    return NULL;
}

void admin_server_stop(struct admin_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->daemon); /* joins the thread: no op after this */
    admin_tls_creds_free_all(); /* no handshake after this */
    admin_tls_creds_destroy(s->tls_pending);
    admin_tls_fini(&s->tls); /* MHD pointed at it until now */
    admin_tokens_fini(&s->tokens);
    free(s);
}
