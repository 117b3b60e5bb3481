/*
 * auth_http: a ringmq auth plugin (RINGMQ_KIND_AUTH) that asks an HTTP
 * endpoint to authenticate clients (POST <url>/auth) and to authorize their
 * actions (POST <url>/acl), with a cache of decisions (see README.md).
 *
 * Threads. authenticate() and check() run on shard threads: they answer from
 * the decision cache synchronously when they can, otherwise they only append
 * a request to a mutex-protected queue and wake the plugin's own thread with
 * curl_multi_wakeup(). That thread owns the libcurl multi handle and every
 * easy handle: it starts the queued requests, drives them with
 * curl_multi_perform()/curl_multi_poll(), and calls host->complete() when a
 * transfer ends (or times out). fini() stops the thread; requests still
 * queued or in flight are completed with an error before fini() returns.
 *
 * Owns: the config strings, the queue, the cache (its own mutex, touched by
 * shard threads on lookup and by the plugin thread on insert), the thread.
 *
 * Reconfigure (ABI 5, the thread that reloads): new keys are checked and
 * built into a struct http_conf; the commit hands it to the plugin thread
 * (st->next_conf, under st->lock), which adopts it before it starts another
 * request (the URLs and timeout are its alone), sets max_in_flight under
 * st->lock, cache_seconds atomically, and empties the cache: decisions of
 * the old endpoint are not kept.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include <ringmq/plugin.h>

#include "../common/jsonstr.h"

#define DEFAULT_TIMEOUT_MS    2000
#define DEFAULT_CACHE_SECONDS 60
#define DEFAULT_MAX_IN_FLIGHT 256
#define MAX_RESPONSE_BYTES    65536 /* a decision is tiny: anything bigger is garbage */
#define MAX_FIELD             256   /* tenant / user id / result, NUL included */
#define CACHE_BUCKETS         1024
#define CACHE_MAX_ENTRIES     65536
#define IDLE_POLL_MS          1000 /* wakeups are explicit; this only bounds a lost one */

enum req_kind { REQ_AUTH, REQ_ACL };

/* One HTTP request, from the callback that queued it to its completion.
 * Created on a shard thread, then owned by the plugin thread. */
struct req {
    struct req *next, *prev; /* queue (next only) or the thread's active list */
    enum req_kind kind;
    struct ringmq_call *call;
    char *body; /* the JSON body; its first key_len bytes are the cache key */
    size_t body_len;
    size_t key_len;
    CURL *easy;
    char *resp;
    size_t resp_len;
};

/* A cached decision: the body of the request that got it, what it got, and
 * until when it holds (host monotonic ms). */
struct cache_entry {
    struct cache_entry *next;
    uint64_t hash;
    uint64_t expires_ms;
    enum req_kind kind;
    int decision; /* enum ringmq_auth_decision or enum ringmq_verdict */
    char tenant[MAX_FIELD];
    char user_id[MAX_FIELD];
    bool has_tenant, has_user_id;
    size_t key_len;
    char key[]; /* the request body */
};

/* The keys, as the plugin thread uses them. */
struct http_conf {
    char *auth_url, *acl_url;
    long timeout_ms;
    unsigned long cache_seconds;
    unsigned long max_in_flight;
};

struct auth_http {
    const struct ringmq_host *host;
    struct http_conf *conf;      /* the plugin thread's (and init's, fini's) */
    unsigned long cache_seconds; /* 0: no cache; atomic (shards read it) */

    CURLM *multi; /* plugin thread only, except curl_multi_wakeup() */
    pthread_t thread;
    struct curl_slist *headers; /* shared by every easy handle, read-only */

    /* Invariant: in_flight counts requests queued or active, not yet
     * completed; `stopping` is set once, by fini(). */
    pthread_mutex_t lock;
    struct req *queue_head, *queue_tail;
    unsigned long in_flight;
    unsigned long max_in_flight;
    struct http_conf *next_conf; /* committed, not yet adopted by the thread */
    bool stopping;

    pthread_mutex_t cache_lock;
    struct cache_entry *cache[CACHE_BUCKETS];
    size_t cache_entries;
};

/* ---- small helpers ---- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void conf_free(struct http_conf *c)
{
    if (!c)
        return;
    free(c->auth_url);
    free(c->acl_url);
    free(c);
}

static int parse_ulong(const char *s, unsigned long max, unsigned long *out)
{
    if (!s || *s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static uint64_t fnv1a(const char *p, size_t n, enum req_kind kind)
{
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)kind;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* ---- the server's answer (jansson) ---- */

/* What the server decided, as completed and cached. */
struct decision {
    int decision;
    char tenant[MAX_FIELD], user_id[MAX_FIELD];
    bool has_tenant, has_user_id;
};

/* A string field of the answer into out (cap bytes, NUL included): 1 when
 * it is there, 0 when absent or null (JSON's "none"), -EINVAL when it is
 * another type (a number, an object: a broken answer, not "no tenant",
 * which would put the client in `global`) or too long. jansson has checked
 * that it is UTF-8 without NUL (no JSON_ALLOW_NUL), so it is a C string. */
static int answer_field(json_t *obj, const char *name, char *out, size_t cap)
{
    json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) >= cap)
        return -EINVAL;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 1;
}

/* jansson's message quotes the text near the error, which the server
 * chose: keep the log line one line of printable ASCII. */
static void printable(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
}

/* Reads a 200 answer of n bytes: one JSON object (nothing after it), with
 * a string `result` and, for REQ_AUTH, optional `tenant` and `user_id`;
 * other members are ignored, whatever they hold. Duplicate names: the last
 * one wins (jansson's object semantics). Fills result, d->tenant/user_id and
 * has_*; returns 0, or -EINVAL with `why` saying what was wrong. */
static int answer_parse(const char *p, size_t n, enum req_kind kind, char *result, size_t cap,
                        struct decision *d, char *why, size_t whylen)
{
    json_error_t e;
    /* Numbers are never read: as doubles, a 64-bit id elsewhere in the
     * object is not "too big" (only one beyond a double's range is). */
    json_t *root = json_loadb(p, n, JSON_DECODE_INT_AS_REAL, &e);
    if (!root) {
        printable(e.text);
        set_err(why, whylen, "%s (byte %d)", e.text, e.position);
        return -EINVAL;
    }
    int rc = -EINVAL, t = 0, u = 0;
    if (!json_is_object(root))
        set_err(why, whylen, "not a JSON object");
    else if (answer_field(root, "result", result, cap) != 1)
        set_err(why, whylen, "no \"result\" string");
    else if (kind == REQ_AUTH &&
             ((t = answer_field(root, "tenant", d->tenant, sizeof(d->tenant))) < 0 ||
              (u = answer_field(root, "user_id", d->user_id, sizeof(d->user_id))) < 0))
        set_err(why, whylen, "\"tenant\" or \"user_id\" is not a string of at most %d bytes",
                MAX_FIELD - 1);
    else
        rc = 0;
    d->has_tenant = t == 1;
    d->has_user_id = u == 1;
    json_decref(root);
    return rc;
}

/* ---- the decision cache ---- */

static bool cache_lookup(struct auth_http *st, enum req_kind kind, const char *key, size_t len,
                         struct decision *d)
{
    if (!__atomic_load_n(&st->cache_seconds, __ATOMIC_RELAXED))
        return false;
    uint64_t h = fnv1a(key, len, kind);
    uint64_t now = st->host->now_ms();
    bool hit = false;
    pthread_mutex_lock(&st->cache_lock);
    for (struct cache_entry *e = st->cache[h % CACHE_BUCKETS]; e; e = e->next) {
        if (e->hash == h && e->kind == kind && e->key_len == len && !memcmp(e->key, key, len) &&
            e->expires_ms > now) {
            d->decision = e->decision;
            memcpy(d->tenant, e->tenant, sizeof(d->tenant));
            memcpy(d->user_id, e->user_id, sizeof(d->user_id));
            d->has_tenant = e->has_tenant;
            d->has_user_id = e->has_user_id;
            hit = true;
            break;
        }
    }
    pthread_mutex_unlock(&st->cache_lock);
    return hit;
}

/* Drops expired entries (all of them when `all`). Caller holds cache_lock. */
static void cache_sweep(struct auth_http *st, uint64_t now, bool all)
{
    for (size_t i = 0; i < CACHE_BUCKETS; i++) {
        struct cache_entry **pp = &st->cache[i];
        while (*pp) {
            struct cache_entry *e = *pp;
            if (all || e->expires_ms <= now) {
                *pp = e->next;
                free(e);
                st->cache_entries--;
            } else {
                pp = &e->next;
            }
        }
    }
}

/* Plugin thread: remembers a definite decision (never an error: the next
 * client should get another chance at the server). */
static void cache_insert(struct auth_http *st, const struct req *r, const struct decision *d)
{
    unsigned long seconds = __atomic_load_n(&st->cache_seconds, __ATOMIC_RELAXED);
    if (!seconds)
        return;
    uint64_t now = st->host->now_ms();
    struct cache_entry *e = malloc(sizeof(*e) + r->key_len);
    if (!e)
        return; /* a cache miss later, nothing worse */
    e->hash = fnv1a(r->body, r->key_len, r->kind);
    e->expires_ms = now + (uint64_t)seconds * 1000;
    e->kind = r->kind;
    e->decision = d->decision;
    memcpy(e->tenant, d->tenant, sizeof(e->tenant));
    memcpy(e->user_id, d->user_id, sizeof(e->user_id));
    e->has_tenant = d->has_tenant;
    e->has_user_id = d->has_user_id;
    e->key_len = r->key_len;
    memcpy(e->key, r->body, r->key_len);
    pthread_mutex_lock(&st->cache_lock);
    if (st->cache_entries >= CACHE_MAX_ENTRIES)
        cache_sweep(st, now, false);
    if (st->cache_entries >= CACHE_MAX_ENTRIES) {
        free(e); /* full of live entries: bounded memory matters more */
    } else {
        struct cache_entry **b = &st->cache[e->hash % CACHE_BUCKETS];
        e->next = *b;
        *b = e;
        st->cache_entries++;
    }
    pthread_mutex_unlock(&st->cache_lock);
}

/* ---- completions ---- */

static void complete_decision(struct auth_http *st, struct ringmq_call *call, enum req_kind kind,
                              const struct decision *d, const char *reason)
{
    union ringmq_result res;
    memset(&res, 0, sizeof(res));
    if (kind == REQ_AUTH) {
        res.auth.decision = (enum ringmq_auth_decision)d->decision;
        if (d->decision == RINGMQ_AUTH_ALLOW) {
            res.auth.tenant = d->has_tenant ? d->tenant : NULL;
            res.auth.user_id = d->has_user_id ? d->user_id : NULL;
        }
        res.auth.reason = reason;
    } else {
        res.check.verdict = (enum ringmq_verdict)d->decision;
        /* A verdict of the server holds for the connection; an error may
         * not hold for the next message. */
        res.check.cacheable = d->decision != RINGMQ_CHECK_ERROR;
    }
    st->host->complete(call, &res);
}

static void complete_error(struct auth_http *st, struct ringmq_call *call, enum req_kind kind,
                           const char *reason)
{
    struct decision d;
    memset(&d, 0, sizeof(d));
    d.decision = kind == REQ_AUTH ? (int)RINGMQ_AUTH_ERROR : (int)RINGMQ_CHECK_ERROR;
    complete_decision(st, call, kind, &d, reason);
}

static void req_free(struct req *r)
{
    if (!r)
        return;
    free(r->body);
    free(r->resp);
    free(r);
}

/* Plugin thread: a transfer ended with `rc`; turn the answer into a
 * decision, complete the call, cache a definite decision. */
static void req_finish(struct auth_http *st, struct req *r, CURLcode rc)
{
    long status = 0;
    struct decision d;
    memset(&d, 0, sizeof(d));
    bool definite = false;
    if (rc != CURLE_OK) {
        st->host->log(RINGMQ_LOG_WARN, "%s request failed: %s",
                      r->kind == REQ_AUTH ? "auth" : "acl", curl_easy_strerror(rc));
        complete_error(st, r->call, r->kind, "authorization service unavailable");
        return;
    }
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status == 200) {
        char result[MAX_FIELD], why[256];
        const char *what = r->kind == REQ_AUTH ? "auth" : "acl";
        if (answer_parse(r->resp ? r->resp : "", r->resp_len, r->kind, result, sizeof(result), &d,
                         why, sizeof(why)) == 0) {
            if (!strcmp(result, "allow")) {
                d.decision = r->kind == REQ_AUTH ? (int)RINGMQ_AUTH_ALLOW : (int)RINGMQ_GRANTED;
                definite = true;
            } else if (!strcmp(result, "deny")) {
                d.decision =
                    r->kind == REQ_AUTH ? (int)RINGMQ_AUTH_BAD_CREDENTIALS : (int)RINGMQ_DENIED;
                definite = true;
            } else {
                set_err(why, sizeof(why), "\"result\" is neither \"allow\" nor \"deny\"");
            }
        }
        if (!definite)
            st->host->log(RINGMQ_LOG_WARN, "%s: unreadable answer from the server: %s", what, why);
    } else if (status == 401 || status == 403) {
        d.decision = r->kind == REQ_AUTH ? (int)RINGMQ_AUTH_BAD_CREDENTIALS : (int)RINGMQ_DENIED;
        definite = true;
    } else {
        st->host->log(RINGMQ_LOG_WARN, "%s: HTTP status %ld", r->kind == REQ_AUTH ? "auth" : "acl",
                      status);
    }
    if (!definite) {
        complete_error(st, r->call, r->kind, "authorization service error");
        return;
    }
    /* Insert before completing: a client retrying at once, on completion,
     * then hits the cache. */
    cache_insert(st, r, &d);
    complete_decision(st, r->call, r->kind, &d, NULL);
}

/* ---- the plugin thread ---- */

static size_t on_data(char *p, size_t size, size_t nmemb, void *arg)
{
    struct req *r = arg;
    size_t n = size * nmemb;
    if (r->resp_len + n > MAX_RESPONSE_BYTES)
        return 0; /* libcurl aborts the transfer: an error */
    char *np = realloc(r->resp, r->resp_len + n + 1);
    if (!np)
        return 0;
    r->resp = np;
    memcpy(r->resp + r->resp_len, p, n);
    r->resp_len += n;
    r->resp[r->resp_len] = '\0';
    return n;
}

static int req_start(struct auth_http *st, struct req *r)
{
    r->easy = curl_easy_init();
    if (!r->easy)
        return -ENOMEM;
    CURL *e = r->easy;
    int bad = 0;
    const struct http_conf *c = st->conf;
    bad |= curl_easy_setopt(e, CURLOPT_URL, r->kind == REQ_AUTH ? c->auth_url : c->acl_url);
    bad |= curl_easy_setopt(e, CURLOPT_POST, 1L);
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)r->body_len);
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, st->headers);
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms);
    /* Signals would hit a random shard thread; timeouts come from the multi
     * handle's own timers. */
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    /* The endpoint is exactly the configured one: no proxy from the
     * environment, no redirect to somewhere else, no other protocol. */
    bad |= curl_easy_setopt(e, CURLOPT_PROXY, "");
    bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    if (bad || curl_multi_add_handle(st->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        r->easy = NULL;
        return -EINVAL;
    }
    return 0;
}

static void in_flight_done(struct auth_http *st)
{
    pthread_mutex_lock(&st->lock);
    st->in_flight--;
    pthread_mutex_unlock(&st->lock);
}

/* Removes an active request from the multi handle and the active list. */
static void req_detach(struct auth_http *st, struct req **active, struct req *r)
{
    curl_multi_remove_handle(st->multi, r->easy);
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
    if (r->prev)
        r->prev->next = r->next;
    else
        *active = r->next;
    if (r->next)
        r->next->prev = r->prev;
}

static void *thread_main(void *arg)
{
    struct auth_http *st = arg;
    struct req *active = NULL; /* this thread's only */
    for (;;) {
        pthread_mutex_lock(&st->lock);
        struct req *q = st->queue_head;
        st->queue_head = st->queue_tail = NULL;
        bool stop = st->stopping;
        struct http_conf *adopt = st->next_conf;
        st->next_conf = NULL;
        pthread_mutex_unlock(&st->lock);
        if (adopt) { /* a reconfigure: requests from now on use it */
            conf_free(st->conf);
            st->conf = adopt;
        }

        while (q) {
            struct req *r = q;
            q = q->next;
            r->next = r->prev = NULL;
            /* A request the broker no longer waits for (its plugin timeout
             * passed while this thread was busy) is not sent. */
            bool late = !stop && st->host->call_abandoned(r->call);
            if (stop || late || req_start(st, r)) {
                complete_error(st, r->call, r->kind,
                               stop   ? "plugin stopping"
                               : late ? "timed out before the request was sent"
                                      : "cannot start the request");
                req_free(r);
                in_flight_done(st);
                continue;
            }
            r->next = active;
            if (active)
                active->prev = r;
            active = r;
        }
        if (stop)
            break;

        int running = 0;
        curl_multi_perform(st->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(st->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct req *r = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            CURLcode rc = msg->data.result; /* msg is invalid after remove */
            req_finish(st, r, rc);
            req_detach(st, &active, r);
            req_free(r);
            in_flight_done(st);
        }
        /* Returns on socket activity, a libcurl timer, or
         * curl_multi_wakeup() from a callback or fini(). A wakeup sent while
         * this thread was busy above is not lost: it stays pending. */
        curl_multi_poll(st->multi, NULL, 0, IDLE_POLL_MS, NULL);
    }
    /* fini(): whatever is still in flight gets an error now, exactly once. */
    while (active) {
        struct req *r = active;
        req_detach(st, &active, r);
        complete_error(st, r->call, r->kind, "plugin stopping");
        req_free(r);
        in_flight_done(st);
    }
    return NULL;
}

/* ---- shard-thread side ---- */

/* Answers from the cache, or queues `body` (taking it: a string of len
 * bytes from json_dumps, NULL when it could not be made) for the thread.
 * Its first key_len bytes are the cache key. */
static void submit(struct auth_http *st, struct ringmq_call *call, enum req_kind kind, char *body,
                   size_t len, size_t key_len)
{
    if (!body) {
        complete_error(st, call, kind, "cannot encode the request");
        return;
    }
    struct decision d;
    if (cache_lookup(st, kind, body, key_len, &d)) {
        free(body);
        complete_decision(st, call, kind, &d, NULL);
        return;
    }
    struct req *r = calloc(1, sizeof(*r));
    if (!r) {
        free(body);
        complete_error(st, call, kind, "out of memory");
        return;
    }
    r->kind = kind;
    r->call = call;
    r->body = body;
    r->body_len = len;
    r->key_len = key_len;
    pthread_mutex_lock(&st->lock);
    const char *refuse = NULL;
    if (st->stopping)
        refuse = "plugin stopping";
    else if (st->in_flight >= st->max_in_flight)
        refuse = "too many requests in flight";
    if (!refuse) {
        st->in_flight++;
        if (st->queue_tail)
            st->queue_tail->next = r;
        else
            st->queue_head = r;
        st->queue_tail = r;
        /* Safe from any thread; under the lock so that fini(), which sets
         * `stopping` under it, cannot free the multi handle meanwhile. */
        curl_multi_wakeup(st->multi);
    }
    pthread_mutex_unlock(&st->lock);
    if (refuse) {
        req_free(r);
        complete_error(st, call, kind, refuse);
        return;
    }
}

/* Sets o[key] to v (taking it), a JSON string of the n UTF-8 bytes at p
 * (the broker has checked them; bytes that are not UTF-8 fail here rather
 * than reach the server as another name), or to null when p is absent.
 * Returns 0 or -1, as jansson does. */
static int set_text(json_t *o, const char *key, bool present, const uint8_t *p, size_t n)
{
    json_t *v = !present ? json_null() : json_stringn(n ? (const char *)p : "", n);
    return json_object_set_new(o, key, v);
}

static int set_cstr(json_t *o, const char *key, const char *s)
{
    return set_text(o, key, s != NULL, (const uint8_t *)s, s ? strlen(s) : 0);
}

/* The compact JSON of o (dropping it) into *body; its length, or 0 when o
 * is NULL or `bad` (an earlier set failed), or out of memory. */
static size_t dump_body(json_t *o, int bad, char **body)
{
    *body = o && !bad ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return *body ? strlen(*body) : 0; /* NUL is written \u0000: no NUL inside */
}

/* The verified client certificate (ABI 4), or null when none was shown
 * and verified. */
static json_t *cert_object(const struct ringmq_connect_info *info)
{
    if (!info->client_cert_verified)
        return json_null();
    json_t *c = json_object(), *san = json_array();
    int bad = !c || !san;
    for (size_t i = 0; !bad && i < info->n_client_cert_san; i++)
        bad |= json_array_append_new(san, json_string(info->client_cert_san[i]));
    if (!bad) {
        bad |= set_cstr(c, "subject", info->client_cert_subject);
        bad |= set_cstr(c, "cn", info->client_cert_cn);
        bad |= set_cstr(c, "sha256", info->client_cert_sha256);
        bad |= json_object_set_new(c, "san", san);
        san = NULL;
    }
    json_decref(san);
    if (bad) {
        json_decref(c);
        return NULL;
    }
    return c;
}

/* The connection's TLS (ended by the broker or, from_proxy, by a trusted
 * proxy), or null without TLS. NULL when it cannot be encoded. */
static json_t *tls_object(const struct ringmq_connect_info *info)
{
    if (!info->tls_version)
        return json_null();
    json_t *t = json_object(), *cert = cert_object(info);
    int bad = !t || !cert;
    if (!bad) {
        bad |= set_cstr(t, "version", info->tls_version);
        bad |= set_cstr(t, "cipher", info->tls_cipher);
        bad |= set_cstr(t, "sni", info->tls_sni);
        bad |= json_object_set_new(t, "from_proxy", json_boolean(info->tls_from_proxy));
        bad |= json_object_set_new(t, "client_cert", cert);
        cert = NULL;
    }
    json_decref(cert);
    if (bad) {
        json_decref(t);
        return NULL;
    }
    return t;
}

static void auth_http_authenticate(void *state, struct ringmq_call *call,
                                   const struct ringmq_connect_info *info)
{
    struct auth_http *st = state;
    json_t *o = json_object();
    int bad = !o;
    if (o) {
        bad |= set_text(o, "client_id", true, info->client_id.p, info->client_id.len);
        bad |= set_text(o, "username", info->has_username, info->username.p, info->username.len);
        /* Binary (MQTT allows any bytes): one code point 0..255 per byte. */
        bad |= json_object_set_new(o, "password",
                                   info->has_password
                                       ? jsonstr_latin1(info->password.p, info->password.len)
                                       : json_null());
        bad |= json_object_set_new(o, "protocol", json_integer(info->protocol_version));
        bad |= set_cstr(o, "listener", info->listener);
        bad |= set_cstr(o, "transport", info->transport);
        json_t *tls = tls_object(info);
        bad |= !tls || json_object_set_new(o, "tls", tls);
        bad |= set_cstr(o, "remote_addr", info->remote_addr);
        bad |= json_object_set_new(
            o, "remote_port", info->remote_addr ? json_integer(info->remote_port) : json_null());
    }
    char *body;
    size_t len = dump_body(o, bad, &body);
    if (!body)
        st->host->log(RINGMQ_LOG_WARN, "auth: cannot encode the request (not UTF-8?)");
    /* The client's port changes with every connection: keeping it out of
     * the cache key lets a reconnecting client hit the cache (a server
     * deciding by address still gets one request per address). It is the
     * last member and its value a number or null, so the last ',' starts
     * it (jansson keeps the members in insertion order). */
    const char *port = body ? strrchr(body, ',') : NULL;
    size_t key_len = port && !strncmp(port, ",\"remote_port\":", 15) ? (size_t)(port - body) : len;
    submit(st, call, REQ_AUTH, body, len, key_len);
}

static void auth_http_auth_continue(void *state, struct ringmq_call *call,
                                    const struct ringmq_auth_step *step)
{
    (void)step;
    struct decision d;
    memset(&d, 0, sizeof(d));
    d.decision = RINGMQ_AUTH_BAD_METHOD;
    complete_decision(state, call, REQ_AUTH, &d, "no enhanced authentication");
}

static const char *action_name(enum ringmq_action a)
{
    switch (a) {
    case RINGMQ_ACTION_CONNECT:
        return "connect";
    case RINGMQ_ACTION_PUBLISH:
        return "publish";
    case RINGMQ_ACTION_SUBSCRIBE:
        return "subscribe";
    case RINGMQ_ACTION_UNSUBSCRIBE:
        return "unsubscribe";
    case RINGMQ_ACTION_RECEIVE:
        /* Never asked: without check_read, no subscription is granted per
         * topic (its check is synchronous; an HTTP round trip is not). */
        return "receive";
    }
    return "unknown";
}

static void auth_http_check(void *state, struct ringmq_call *call, const struct ringmq_check *c)
{
    struct auth_http *st = state;
    json_t *o = json_object();
    int bad = !o;
    if (o) {
        bad |= set_cstr(o, "tenant", c->tenant);
        bad |= set_cstr(o, "user_id", c->user_id);
        bad |= set_text(o, "client_id", true, c->client_id.p, c->client_id.len);
        bad |= set_cstr(o, "action", action_name(c->action));
        bad |= set_text(o, "topic", true, c->topic.p, c->topic.len);
        bad |= json_object_set_new(o, "qos", json_integer(c->qos));
        bad |= json_object_set_new(o, "retain", json_boolean(c->retain));
    }
    char *body;
    size_t len = dump_body(o, bad, &body);
    if (!body)
        st->host->log(RINGMQ_LOG_WARN, "acl: cannot encode the request (not UTF-8?)");
    submit(st, call, REQ_ACL, body, len, len);
}

/* ---- init / fini ---- */

static void state_free(struct auth_http *st)
{
    if (!st)
        return;
    if (st->multi)
        curl_multi_cleanup(st->multi);
    curl_slist_free_all(st->headers);
    pthread_mutex_lock(&st->cache_lock);
    cache_sweep(st, 0, true);
    pthread_mutex_unlock(&st->cache_lock);
    pthread_mutex_destroy(&st->cache_lock);
    pthread_mutex_destroy(&st->lock);
    conf_free(st->conf);
    conf_free(st->next_conf);
    free(st);
    curl_global_cleanup();
}

static char *join_url(const char *base, size_t len, const char *suffix)
{
    size_t n = len + strlen(suffix) + 1;
    char *u = malloc(n);
    if (u)
        snprintf(u, n, "%.*s%s", (int)len, base, suffix);
    return u;
}

/* The keys into a new conf: 0 and *out, or -errno with err set. */
static int conf_parse(const struct ringmq_kv *config, size_t n, struct http_conf **out, char *err,
                      size_t errlen)
{
    const char *url = NULL;
    unsigned long timeout_ms = DEFAULT_TIMEOUT_MS, cache_seconds = DEFAULT_CACHE_SECONDS,
                  max_in_flight = DEFAULT_MAX_IN_FLIGHT;
    for (size_t i = 0; i < n; i++) {
        const char *k = config[i].key, *v = config[i].value;
        if (!strcmp(k, "url")) {
            url = v;
        } else if (!strcmp(k, "timeout_ms")) {
            if (parse_ulong(v, 600000, &timeout_ms) || timeout_ms == 0) {
                set_err(err, errlen, "timeout_ms: expected 1..600000, got '%s'", v);
                return -EINVAL;
            }
        } else if (!strcmp(k, "cache_seconds")) {
            if (parse_ulong(v, 86400, &cache_seconds)) {
                set_err(err, errlen, "cache_seconds: expected 0..86400, got '%s'", v);
                return -EINVAL;
            }
        } else if (!strcmp(k, "max_in_flight")) {
            if (parse_ulong(v, 1000000, &max_in_flight) || max_in_flight == 0) {
                set_err(err, errlen, "max_in_flight: expected 1..1000000, got '%s'", v);
                return -EINVAL;
            }
        } else {
            set_err(err, errlen, "unknown key '%s'", k);
            return -EINVAL;
        }
    }
    if (!url || !*url) {
        set_err(err, errlen, "url is required (e.g. http://127.0.0.1:8080/mqtt)");
        return -EINVAL;
    }
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
        set_err(err, errlen, "url must start with http:// or https://, got '%s'", url);
        return -EINVAL;
    }
    struct http_conf *c = calloc(1, sizeof(*c));
    size_t ulen = strlen(url);
    while (ulen > 0 && url[ulen - 1] == '/')
        ulen--; /* "http://h/x/" + "/auth" would double the slash */
    if (c) {
        c->auth_url = join_url(url, ulen, "/auth");
        c->acl_url = join_url(url, ulen, "/acl");
    }
    if (!c || !c->auth_url || !c->acl_url) {
        conf_free(c);
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    c->timeout_ms = (long)timeout_ms;
    c->cache_seconds = cache_seconds;
    c->max_in_flight = max_in_flight;
    *out = c;
    return 0;
}

static void log_conf(const struct auth_http *st, const struct http_conf *c)
{
    st->host->log(RINGMQ_LOG_INFO, "asking %s and %s (timeout %ld ms, cache %lu s)", c->auth_url,
                  c->acl_url, c->timeout_ms, c->cache_seconds);
}

static int auth_http_init(const struct ringmq_host *host, const struct ringmq_kv *config, size_t n,
                          void **state, char *err, size_t errlen)
{
    struct http_conf *c = NULL;
    int rc = conf_parse(config, n, &c, err, errlen);
    if (rc)
        return rc;
    if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
        conf_free(c);
        set_err(err, errlen, "curl_global_init failed");
        return -EIO;
    }
    struct auth_http *st = calloc(1, sizeof(*st));
    if (!st) {
        conf_free(c);
        curl_global_cleanup();
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&st->lock, NULL);
    pthread_mutex_init(&st->cache_lock, NULL);
    st->host = host;
    st->conf = c;
    st->cache_seconds = c->cache_seconds;
    st->max_in_flight = c->max_in_flight;
    st->headers = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *h2 = st->headers ? curl_slist_append(st->headers, "Expect:") : NULL;
    if (h2)
        st->headers = h2; /* Expect: empty: no 100-continue round trip */
    st->multi = curl_multi_init();
    if (!h2 || !st->multi) {
        state_free(st);
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    rc = pthread_create(&st->thread, NULL, thread_main, st);
    if (rc) {
        state_free(st);
        set_err(err, errlen, "pthread_create: %s", strerror(rc));
        return -rc;
    }
    log_conf(st, c);
    *state = st;
    return 0;
}

/* ABI 5: the new keys checked and built, not yet in force. */
static int auth_http_reconfigure(void *state, const struct ringmq_kv *config, size_t n, void **next,
                                 char *err, size_t errlen)
{
    (void)state;
    struct http_conf *c = NULL;
    int rc = conf_parse(config, n, &c, err, errlen);
    *next = c;
    return rc;
}

static void auth_http_reconfigure_commit(void *state, void *next, bool apply)
{
    struct auth_http *st = state;
    struct http_conf *c = next;
    if (!apply) {
        conf_free(c);
        return;
    }
    log_conf(st, c);
    __atomic_store_n(&st->cache_seconds, c->cache_seconds, __ATOMIC_RELAXED);
    pthread_mutex_lock(&st->lock);
    st->max_in_flight = c->max_in_flight;
    conf_free(st->next_conf); /* two commits before the thread woke */
    st->next_conf = c;
    curl_multi_wakeup(st->multi);
    pthread_mutex_unlock(&st->lock);
    pthread_mutex_lock(&st->cache_lock);
    cache_sweep(st, 0, true);
    pthread_mutex_unlock(&st->cache_lock);
}

static void auth_http_fini(void *state)
{
    struct auth_http *st = state;
    if (!st)
        return;
    pthread_mutex_lock(&st->lock);
    st->stopping = true;
    pthread_mutex_unlock(&st->lock);
    curl_multi_wakeup(st->multi);
    pthread_join(st->thread, NULL);
    state_free(st);
}

static const struct ringmq_plugin auth_http_plugin = {
    .abi_version = RINGMQ_PLUGIN_ABI_VERSION,
    .name = "auth_http",
    .kinds = RINGMQ_KIND_AUTH,
    .init = auth_http_init,
    .fini = auth_http_fini,
    .authenticate = auth_http_authenticate,
    .auth_continue = auth_http_auth_continue,
    .check = auth_http_check,
    .reconfigure = auth_http_reconfigure,
    .reconfigure_commit = auth_http_reconfigure_commit,
};

__attribute__((visibility("default"))) const struct ringmq_plugin *ringmq_plugin_entry(void);

const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &auth_http_plugin;
}
