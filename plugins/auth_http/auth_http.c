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
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include <ringmq/plugin.h>

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

struct auth_http {
    const struct ringmq_host *host;
    char *auth_url, *acl_url;
    long timeout_ms;
    unsigned long cache_seconds; /* 0: no cache */
    unsigned long max_in_flight;

    CURLM *multi; /* plugin thread only, except curl_multi_wakeup() */
    pthread_t thread;
    struct curl_slist *headers; /* shared by every easy handle, read-only */

    /* Invariant: in_flight counts requests queued or active, not yet
     * completed; `stopping` is set once, by fini(). */
    pthread_mutex_t lock;
    struct req *queue_head, *queue_tail;
    unsigned long in_flight;
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

/* ---- JSON out: a growable buffer ---- */

struct buf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/* A JSON string of `n` bytes. UTF-8 text (client id, user name, topic: the
 * broker has validated them) keeps its bytes >= 0x80 as they are; binary data
 * (the password) escapes every byte outside printable ASCII as \u00XX, so the
 * server reads one code point 0..255 per byte. */
static void buf_json_bytes(struct buf *b, const uint8_t *p, size_t n, bool binary)
{
    buf_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            buf_add(b, esc, 2);
        } else if (c < 0x20 || c == 0x7f || (binary && c >= 0x80)) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            buf_add(b, esc, 6);
        } else {
            buf_add(b, (const char *)&c, 1);
        }
    }
    buf_add(b, "\"", 1);
}

static void buf_json_cstr(struct buf *b, const char *s)
{
    if (s)
        buf_json_bytes(b, (const uint8_t *)s, strlen(s), false);
    else
        buf_str(b, "null");
}

/* ---- JSON in: a tiny scanner for one flat object of string fields ---- */

struct json_field {
    const char *name;
    char *out; /* NUL-terminated value when found */
    size_t cap;
    bool found;
};

struct scan {
    const char *p, *end;
};

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Four hex digits at p (at least 4 bytes before the end): the value, or -1. */
static long hex4(const char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Reads a string at s->p (the opening quote) into out (NULL: skip it),
 * decoding escapes into UTF-8: a character outside the BMP arrives as a
 * \uD8xx\uDCxx surrogate pair (RFC 8259 section 7); a lone or reversed
 * surrogate, \u0000, and a value that does not fit are refused. */
static int scan_string(struct scan *s, char *out, size_t cap)
{
    size_t n = 0;
    if (s->p >= s->end || *s->p != '"')
        return -EINVAL;
    s->p++;
    while (s->p < s->end && *s->p != '"') {
        unsigned char c = (unsigned char)*s->p++;
        char tmp[4];
        size_t tn = 1;
        tmp[0] = (char)c;
        if (c < 0x20)
            return -EINVAL;
        if (c == '\\') {
            if (s->p >= s->end)
                return -EINVAL;
            char e = *s->p++;
            switch (e) {
            case '"':
            case '\\':
            case '/':
                tmp[0] = e;
                break;
            case 'b':
                tmp[0] = '\b';
                break;
            case 'f':
                tmp[0] = '\f';
                break;
            case 'n':
                tmp[0] = '\n';
                break;
            case 'r':
                tmp[0] = '\r';
                break;
            case 't':
                tmp[0] = '\t';
                break;
            case 'u': {
                long v = s->end - s->p >= 4 ? hex4(s->p) : -1;
                if (v < 0)
                    return -EINVAL;
                unsigned cp = (unsigned)v;
                s->p += 4;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    /* A high surrogate: only with a low one right after. */
                    long lo = s->end - s->p >= 6 && s->p[0] == '\\' && s->p[1] == 'u'
                                  ? hex4(s->p + 2)
                                  : -1;
                    if (lo < 0xdc00 || lo > 0xdfff)
                        return -EINVAL;
                    s->p += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + ((unsigned)lo - 0xdc00);
                }
                if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff))
                    return -EINVAL; /* a NUL would cut the C string */
                if (cp >= 0x10000) {
                    tmp[0] = (char)(0xf0 | (cp >> 18));
                    tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
                    tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
                    tmp[3] = (char)(0x80 | (cp & 0x3f));
                    tn = 4;
                } else if (cp < 0x80) {
                    tmp[0] = (char)cp;
                } else if (cp < 0x800) {
                    tmp[0] = (char)(0xc0 | (cp >> 6));
                    tmp[1] = (char)(0x80 | (cp & 0x3f));
                    tn = 2;
                } else {
                    tmp[0] = (char)(0xe0 | (cp >> 12));
                    tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
                    tmp[2] = (char)(0x80 | (cp & 0x3f));
                    tn = 3;
                }
                break;
            }
            default:
                return -EINVAL;
            }
        }
        if (out) {
            if (n + tn >= cap)
                return -ENAMETOOLONG;
            memcpy(out + n, tmp, tn);
        }
        n += tn;
    }
    if (s->p >= s->end)
        return -EINVAL;
    s->p++;
    if (out)
        out[n] = '\0';
    return 0;
}

/* Skips any value other than a string: a scalar (not validated further),
 * or a nested object or array (brackets counted, strings inside skipped
 * properly). */
static int skip_value(struct scan *s)
{
    const char *start = s->p;
    int depth = 0;
    while (s->p < s->end) {
        char c = *s->p;
        if (c == '"') {
            if (depth == 0 || scan_string(s, NULL, 0))
                return -EINVAL;
            continue;
        }
        if (depth == 0 &&
            (c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\r' || c == '\n'))
            break;
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0) {
                s->p++;
                return 0;
            }
        }
        s->p++;
    }
    return depth || s->p == start ? -EINVAL : 0;
}

/* Parses one JSON object, filling the named string fields. Returns 0, or
 * -EINVAL for anything that is not a well-formed object (or a named field
 * that is not a string). */
static int json_scan_object(const char *p, size_t n, struct json_field *f, size_t nf)
{
    struct scan s = {p, p + n};
    skip_ws(&s);
    if (s.p >= s.end || *s.p != '{')
        return -EINVAL;
    s.p++;
    skip_ws(&s);
    if (s.p < s.end && *s.p == '}') {
        s.p++;
    } else {
        for (;;) {
            char key[64];
            skip_ws(&s);
            const char *key_at = s.p;
            int r = scan_string(&s, key, sizeof(key));
            if (r == -ENAMETOOLONG) {
                s.p = key_at; /* a long key is none of ours: skip it */
                r = scan_string(&s, NULL, 0);
                key[0] = '\0';
            }
            if (r)
                return -EINVAL;
            skip_ws(&s);
            if (s.p >= s.end || *s.p != ':')
                return -EINVAL;
            s.p++;
            skip_ws(&s);
            struct json_field *want = NULL;
            for (size_t i = 0; i < nf; i++)
                if (!strcmp(f[i].name, key))
                    want = &f[i];
            if (want && s.p < s.end && *s.p == '"') {
                if (scan_string(&s, want->out, want->cap))
                    return -EINVAL;
                want->found = true;
            } else if (want) {
                /* Ours but not a string: null is "absent"; anything else
                 * (a number, an object) is a broken answer, not "no
                 * tenant", which would put the client in `global`. */
                if (s.end - s.p < 4 || memcmp(s.p, "null", 4) != 0)
                    return -EINVAL;
                s.p += 4;
                want->found = false;
            } else if (s.p < s.end && *s.p == '"') {
                if (scan_string(&s, NULL, 0))
                    return -EINVAL;
            } else if (skip_value(&s)) {
                return -EINVAL;
            }
            skip_ws(&s);
            if (s.p < s.end && *s.p == ',') {
                s.p++;
                continue;
            }
            if (s.p < s.end && *s.p == '}') {
                s.p++;
                break;
            }
            return -EINVAL;
        }
    }
    skip_ws(&s);
    return s.p == s.end ? 0 : -EINVAL;
}

/* ---- the decision cache ---- */

struct decision {
    int decision;
    char tenant[MAX_FIELD], user_id[MAX_FIELD];
    bool has_tenant, has_user_id;
};

static bool cache_lookup(struct auth_http *st, enum req_kind kind, const char *key, size_t len,
                         struct decision *d)
{
    if (!st->cache_seconds)
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
    if (!st->cache_seconds)
        return;
    uint64_t now = st->host->now_ms();
    struct cache_entry *e = malloc(sizeof(*e) + r->key_len);
    if (!e)
        return; /* a cache miss later, nothing worse */
    e->hash = fnv1a(r->body, r->key_len, r->kind);
    e->expires_ms = now + (uint64_t)st->cache_seconds * 1000;
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
        char result[MAX_FIELD];
        struct json_field f[] = {
            {"result", result, sizeof(result), false},
            {"tenant", d.tenant, sizeof(d.tenant), false},
            {"user_id", d.user_id, sizeof(d.user_id), false},
        };
        size_t nf = r->kind == REQ_AUTH ? 3 : 1;
        if (json_scan_object(r->resp ? r->resp : "", r->resp_len, f, nf) == 0 && f[0].found) {
            d.has_tenant = f[1].found;
            d.has_user_id = f[2].found;
            if (!strcmp(result, "allow")) {
                d.decision = r->kind == REQ_AUTH ? (int)RINGMQ_AUTH_ALLOW : (int)RINGMQ_GRANTED;
                definite = true;
            } else if (!strcmp(result, "deny")) {
                d.decision =
                    r->kind == REQ_AUTH ? (int)RINGMQ_AUTH_BAD_CREDENTIALS : (int)RINGMQ_DENIED;
                definite = true;
            }
        }
        if (!definite)
            st->host->log(RINGMQ_LOG_WARN, "%s: unreadable answer from the server",
                          r->kind == REQ_AUTH ? "auth" : "acl");
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
    bad |= curl_easy_setopt(e, CURLOPT_URL, r->kind == REQ_AUTH ? st->auth_url : st->acl_url);
    bad |= curl_easy_setopt(e, CURLOPT_POST, 1L);
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)r->body_len);
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, st->headers);
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, st->timeout_ms);
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, st->timeout_ms);
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
        pthread_mutex_unlock(&st->lock);

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

/* Answers from the cache, or queues `body` (taking it) for the thread. Its
 * first key_len bytes are the cache key. */
static void submit(struct auth_http *st, struct ringmq_call *call, enum req_kind kind,
                   struct buf *body, size_t key_len)
{
    if (body->oom) {
        free(body->p);
        complete_error(st, call, kind, "out of memory");
        return;
    }
    struct decision d;
    if (cache_lookup(st, kind, body->p, key_len, &d)) {
        free(body->p);
        complete_decision(st, call, kind, &d, NULL);
        return;
    }
    struct req *r = calloc(1, sizeof(*r));
    if (!r) {
        free(body->p);
        complete_error(st, call, kind, "out of memory");
        return;
    }
    r->kind = kind;
    r->call = call;
    r->body = body->p;
    r->body_len = body->len;
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

static void auth_http_authenticate(void *state, struct ringmq_call *call,
                                   const struct ringmq_connect_info *info)
{
    struct auth_http *st = state;
    struct buf b = {0};
    char num[16];
    buf_str(&b, "{\"client_id\":");
    buf_json_bytes(&b, info->client_id.p, info->client_id.len, false);
    buf_str(&b, ",\"username\":");
    if (info->has_username)
        buf_json_bytes(&b, info->username.p, info->username.len, false);
    else
        buf_str(&b, "null");
    buf_str(&b, ",\"password\":");
    if (info->has_password)
        buf_json_bytes(&b, info->password.p, info->password.len, true);
    else
        buf_str(&b, "null");
    snprintf(num, sizeof(num), "%u", (unsigned)info->protocol_version);
    buf_str(&b, ",\"protocol\":");
    buf_str(&b, num);
    buf_str(&b, ",\"listener\":");
    buf_json_cstr(&b, info->listener);
    buf_str(&b, ",\"remote_addr\":");
    buf_json_cstr(&b, info->remote_addr);
    /* The client's port changes with every connection: keeping it out of
     * the cache key lets a reconnecting client hit the cache (a server
     * deciding by address still gets one request per address). */
    size_t key_len = b.len;
    snprintf(num, sizeof(num), "%u", (unsigned)info->remote_port);
    buf_str(&b, ",\"remote_port\":");
    buf_str(&b, info->remote_addr ? num : "null");
    buf_str(&b, "}");
    submit(st, call, REQ_AUTH, &b, key_len);
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
    struct buf b = {0};
    char num[16];
    buf_str(&b, "{\"tenant\":");
    buf_json_cstr(&b, c->tenant);
    buf_str(&b, ",\"user_id\":");
    buf_json_cstr(&b, c->user_id);
    buf_str(&b, ",\"client_id\":");
    buf_json_bytes(&b, c->client_id.p, c->client_id.len, false);
    buf_str(&b, ",\"action\":");
    buf_json_cstr(&b, action_name(c->action));
    buf_str(&b, ",\"topic\":");
    buf_json_bytes(&b, c->topic.p, c->topic.len, false);
    snprintf(num, sizeof(num), "%u", (unsigned)c->qos);
    buf_str(&b, ",\"qos\":");
    buf_str(&b, num);
    buf_str(&b, c->retain ? ",\"retain\":true}" : ",\"retain\":false}");
    submit(st, call, REQ_ACL, &b, b.len);
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
    free(st->auth_url);
    free(st->acl_url);
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

static int auth_http_init(const struct ringmq_host *host, const struct ringmq_kv *config, size_t n,
                          void **state, char *err, size_t errlen)
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
    if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
        set_err(err, errlen, "curl_global_init failed");
        return -EIO;
    }
    struct auth_http *st = calloc(1, sizeof(*st));
    if (!st) {
        curl_global_cleanup();
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&st->lock, NULL);
    pthread_mutex_init(&st->cache_lock, NULL);
    st->host = host;
    st->timeout_ms = (long)timeout_ms;
    st->cache_seconds = cache_seconds;
    st->max_in_flight = max_in_flight;
    size_t ulen = strlen(url);
    while (ulen > 0 && url[ulen - 1] == '/')
        ulen--; /* "http://h/x/" + "/auth" would double the slash */
    st->auth_url = join_url(url, ulen, "/auth");
    st->acl_url = join_url(url, ulen, "/acl");
    st->headers = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *h2 = st->headers ? curl_slist_append(st->headers, "Expect:") : NULL;
    if (h2)
        st->headers = h2; /* Expect: empty: no 100-continue round trip */
    st->multi = curl_multi_init();
    if (!st->auth_url || !st->acl_url || !h2 || !st->multi) {
        state_free(st);
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = pthread_create(&st->thread, NULL, thread_main, st);
    if (rc) {
        state_free(st);
        set_err(err, errlen, "pthread_create: %s", strerror(rc));
        return -rc;
    }
    host->log(RINGMQ_LOG_INFO, "asking %s and %s (timeout %lu ms, cache %lu s)", st->auth_url,
              st->acl_url, timeout_ms, cache_seconds);
    *state = st;
    return 0;
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
};

__attribute__((visibility("default"))) const struct ringmq_plugin *ringmq_plugin_entry(void);

const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &auth_http_plugin;
}
