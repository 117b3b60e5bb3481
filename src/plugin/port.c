/*
 * port: the asynchronous plugin calls of one shard (authenticate,
 * auth_continue, check, settings), their completion from any thread, their
 * timeouts, and the deep copy of what a plugin answers.
 *
 * Lifetimes. A call (struct ringmq_call) has two references: the plugin's,
 * dropped by its first complete(), and the port's, dropped when the shard
 * took the answer (poll), answered it itself (timeout) or abandoned it (port
 * destroyed). Every live call holds a reference on its port, so a plugin
 * completing late still finds the port's memory (marked dead) and drops its
 * answer; the port is freed with its last call. Which side answers is
 * decided once, by an atomic fetch-or on the call's state.
 *
 * Threads. The pending list and everything else not marked otherwise belong
 * to the port's shard. complete() runs on any thread: it touches the call's
 * atomics and, under the port mutex, the completion queue and the wake
 * count. `wake` is called outside the lock; destroy waits for running wakes
 * so that none runs after plugin_port_destroy returned.
 */
#include "plugin/host_priv.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"

/* Bits of ringmq_call.state: who answered. Both may end up set (a plugin
 * completing after the timeout); the first one set wins. */
enum {
    CALL_BY_PLUGIN = 1u << 0,
    CALL_BY_HOST = 1u << 1,
};

struct ringmq_call {
    atomic_uint state;
    atomic_uint refs;
    struct plugin_port *port;
    const struct plugin_loaded *plugin; /* for log lines */
    enum plugin_done_kind kind;
    uint64_t cookie;
    uint64_t deadline_ms;
    struct ringmq_call *prev, *next; /* port's pending list, deadline order; shard only */
};

/* A completion record: the public part first, so plugin_done_free can free
 * it; `call` is the call it answers, until poll took it off the pending list. */
struct done_rec {
    struct plugin_done d;
    struct ringmq_call *call;
};

struct plugin_port {
    struct plugin_host *host;
    void (*wake)(void *arg);
    void *wake_arg;
    atomic_uint refs; /* 1 for the shard until destroy, + 1 per live call */

    /* Shard only. Deadlines are start + the same timeout, so appending keeps
     * the list in deadline order. */
    struct ringmq_call *pending_head, *pending_tail;

    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t woken;
    struct done_rec *q_head, *q_tail;
    unsigned waking; /* complete() calls inside wake() now */
    bool dead;       /* destroyed: drop answers, do not wake */
};

/* ---- deep copy ----
 *
 * One allocation per record: the struct, then the kv arrays, then the
 * strings and bytes. The same walk runs twice, first measuring, then
 * copying, so the two can not disagree. */

struct copier {
    bool measure;
    size_t kv_n;  /* measuring: kv entries */
    size_t str_n; /* measuring: string bytes */
    struct ringmq_kv *kv_at;
    char *str_at;
};

static const char *copy_str(struct copier *c, const char *s)
{
    if (s == NULL)
        return NULL;
    size_t len = strlen(s) + 1;
    if (c->measure) {
        c->str_n += len;
        return NULL;
    }
    char *r = memcpy(c->str_at, s, len);
    c->str_at += len;
    return r;
}

static struct ringmq_bytes copy_bytes(struct copier *c, struct ringmq_bytes b)
{
    if (b.p == NULL || b.len == 0)
        return (struct ringmq_bytes){NULL, 0};
    if (c->measure) {
        c->str_n += b.len + 1;
        return b;
    }
    uint8_t *r = memcpy(c->str_at, b.p, b.len);
    r[b.len] = '\0';
    c->str_at += b.len + 1;
    return (struct ringmq_bytes){r, b.len};
}

static const struct ringmq_kv *copy_kvs(struct copier *c, const struct ringmq_kv *kv, size_t n,
                                        size_t *n_out)
{
    if (kv == NULL || n == 0) {
        *n_out = 0;
        return NULL;
    }
    *n_out = n;
    if (c->measure) {
        c->kv_n += n;
        for (size_t i = 0; i < n; i++) {
            copy_str(c, kv[i].key);
            copy_str(c, kv[i].value);
        }
        return NULL;
    }
    struct ringmq_kv *r = c->kv_at;
    c->kv_at += n;
    for (size_t i = 0; i < n; i++) {
        r[i].key = copy_str(c, kv[i].key);
        r[i].value = copy_str(c, kv[i].value);
    }
    return r;
}

static void copy_result(struct copier *c, enum plugin_done_kind kind,
                        const union ringmq_result *src, union ringmq_result *dst)
{
    switch (kind) {
    case PLUGIN_DONE_AUTH: {
        const struct ringmq_auth_result *s = &src->auth;
        struct ringmq_auth_result *d = &dst->auth;
        d->decision = s->decision;
        d->tenant = copy_str(c, s->tenant);
        d->user_id = copy_str(c, s->user_id);
        d->attributes = copy_kvs(c, s->attributes, s->n_attributes, &d->n_attributes);
        d->user_properties =
            copy_kvs(c, s->user_properties, s->n_user_properties, &d->n_user_properties);
        d->auth_data = copy_bytes(c, s->auth_data);
        d->reason = copy_str(c, s->reason);
        break;
    }
    case PLUGIN_DONE_CHECK:
        /* Field by field: an older plugin's padding is never read. */
        dst->check.verdict = src->check.verdict;
        dst->check.cacheable = src->check.cacheable;
        break;
    case PLUGIN_DONE_SETTINGS:
        dst->settings.found = src->settings.found;
        dst->settings.settings = copy_kvs(c, src->settings.settings, src->settings.n_settings,
                                          &dst->settings.n_settings);
        break;
    }
}

/* The answer given for a plugin: a refusal of the matching kind. */
static void error_result(enum plugin_done_kind kind, union ringmq_result *r)
{
    memset(r, 0, sizeof(*r));
    switch (kind) {
    case PLUGIN_DONE_AUTH:
        r->auth.decision = RINGMQ_AUTH_ERROR;
        break;
    case PLUGIN_DONE_CHECK:
        r->check.verdict = RINGMQ_CHECK_ERROR;
        break;
    case PLUGIN_DONE_SETTINGS:
        r->settings.found = false;
        break;
    }
}

/* What the plugin may say in its version: a verdict it cannot know of (or
 * PER_TOPIC without check_read to answer the reads) is a check error; the
 * reason code exists from ABI 3 on. */
static void check_from(const struct plugin_loaded *pl, const struct ringmq_check_result *src,
                       struct ringmq_check_result *dst)
{
    bool v3 = plugin_speaks(pl, 3);
    enum ringmq_verdict top = v3 && pl->check_read ? RINGMQ_GRANTED_PER_TOPIC : RINGMQ_CHECK_ERROR;
    if ((unsigned)dst->verdict > (unsigned)top)
        dst->verdict = RINGMQ_CHECK_ERROR;
    dst->reason_code = v3 ? src->reason_code : 0;
}

static struct done_rec *rec_new(const struct ringmq_call *call, const union ringmq_result *res)
{
    union ringmq_result err;
    if (res == NULL) {
        error_result(call->kind, &err);
        res = &err;
    }
    struct copier c = {.measure = true};
    union ringmq_result scratch;
    copy_result(&c, call->kind, res, &scratch);
    /* sizeof(struct done_rec) is a multiple of its alignment, which is at
     * least a pointer's: the kv array after it is aligned. */
    size_t kv_bytes = c.kv_n * sizeof(struct ringmq_kv);
    struct done_rec *r = malloc(sizeof(*r) + kv_bytes + c.str_n);
    if (r == NULL)
        return NULL;
    memset(r, 0, sizeof(*r));
    c.measure = false;
    c.kv_at = (struct ringmq_kv *)(r + 1);
    c.str_at = (char *)(r + 1) + kv_bytes;
    copy_result(&c, call->kind, res, &r->d.r);
    if (call->kind == PLUGIN_DONE_CHECK)
        check_from(call->plugin, &res->check, &r->d.r.check);
    r->d.cookie = call->cookie;
    r->d.kind = call->kind;
    r->call = (struct ringmq_call *)call;
    return r;
}

void plugin_done_free(struct plugin_done *d)
{
    free(d);
}

/* ---- references ---- */

static void port_release(struct plugin_port *p)
{
    if (atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    pthread_cond_destroy(&p->woken);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static void call_release(struct ringmq_call *call)
{
    if (atomic_fetch_sub(&call->refs, 1) != 1)
        return;
    struct plugin_port *p = call->port;
    free(call);
    port_release(p);
}

/* Shard only. */
static void pending_unlink(struct plugin_port *p, struct ringmq_call *call)
{
    if (call->prev != NULL)
        call->prev->next = call->next;
    else
        p->pending_head = call->next;
    if (call->next != NULL)
        call->next->prev = call->prev;
    else
        p->pending_tail = call->prev;
    call->prev = call->next = NULL;
}

/* ---- completion, any thread ---- */

void plugin_call_complete(struct ringmq_call *call, const union ringmq_result *res)
{
    if (call == NULL)
        return;
    unsigned before = atomic_fetch_or(&call->state, CALL_BY_PLUGIN);
    if (before & CALL_BY_PLUGIN) {
        /* A second complete: the plugin gave its reference away with the
         * first one, so touch nothing more. (Only safe while the port still
         * holds the call; the ABI makes this the plugin's bug.) */
        log_ratelimited(LOG_LEVEL_WARN, "plugin %s: call completed twice, ignored",
                        call->plugin->name);
        return;
    }
    if (before & CALL_BY_HOST) {
        /* Timed out or abandoned: the answer is no longer wanted. */
        call_release(call);
        return;
    }
    struct plugin_port *p = call->port; /* alive: the call holds a reference on it */
    struct done_rec *r = rec_new(call, res);
    if (r == NULL) {
        /* Answer with the refusal, which needs no allocation beyond the
         * record itself; if even that fails, the shard's timeout answers. */
        r = rec_new(call, NULL);
        if (r == NULL) {
            log_ratelimited(LOG_LEVEL_ERR, "plugin %s: out of memory for a completion",
                            call->plugin->name);
            atomic_fetch_and(&call->state, ~(unsigned)CALL_BY_PLUGIN);
            call_release(call);
            return;
        }
    }
    bool wake = false;
    pthread_mutex_lock(&p->mu);
    if (!p->dead) {
        r->d.next = NULL;
        if (p->q_tail != NULL)
            p->q_tail->d.next = &r->d;
        else
            p->q_head = r;
        p->q_tail = r;
        r = NULL;
        if (p->wake != NULL) {
            p->waking++;
            wake = true;
        }
    }
    pthread_mutex_unlock(&p->mu);
    free(r); /* the port was destroyed meanwhile: nobody wants it */
    if (wake) {
        p->wake(p->wake_arg);
        pthread_mutex_lock(&p->mu);
        if (--p->waking == 0 && p->dead)
            pthread_cond_broadcast(&p->woken);
        pthread_mutex_unlock(&p->mu);
    }
    call_release(call);
}

/* ---- the shard's side ---- */

struct plugin_port *plugin_port_create(struct plugin_host *h, void (*wake)(void *arg), void *arg)
{
    struct plugin_port *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->woken, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    p->host = h;
    p->wake = wake;
    p->wake_arg = arg;
    atomic_init(&p->refs, 1);
    return p;
}

void plugin_port_destroy(struct plugin_port *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->dead = true;
    while (p->waking > 0)
        pthread_cond_wait(&p->woken, &p->mu);
    struct done_rec *q = p->q_head;
    p->q_head = p->q_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    /* Queued answers nobody will read. Their calls are still pending below,
     * which is where their port reference is dropped. */
    while (q != NULL) {
        struct done_rec *next = (struct done_rec *)q->d.next;
        free(q);
        q = next;
    }
    /* Abandon what is pending: a later complete() sees CALL_BY_HOST and only
     * drops the plugin's reference. */
    struct ringmq_call *call = p->pending_head;
    while (call != NULL) {
        struct ringmq_call *next = call->next;
        atomic_fetch_or(&call->state, CALL_BY_HOST);
        call->prev = call->next = NULL;
        call_release(call);
        call = next;
    }
    p->pending_head = p->pending_tail = NULL;
    port_release(p);
}

bool plugin_call_abandoned(const struct ringmq_call *call)
{
    /* The deadline is written before the plugin sees the call and never
     * again; the shard marks a timed-out call only when it polls, so the
     * clock answers for the time in between. */
    if (call == NULL)
        return true;
    unsigned st = atomic_load(&call->state);
    return (st & CALL_BY_HOST) || clock_now_ms() >= call->deadline_ms;
}

/* A call with both references, on the pending list, before the plugin sees
 * it (it may complete inside the callback). */
static struct ringmq_call *call_start(struct plugin_port *p, const struct plugin_loaded *pl,
                                      enum plugin_done_kind kind, uint64_t cookie)
{
    struct ringmq_call *call = calloc(1, sizeof(*call));
    if (call == NULL)
        return NULL;
    atomic_init(&call->state, 0);
    atomic_init(&call->refs, 2);
    atomic_fetch_add(&p->refs, 1);
    call->port = p;
    call->plugin = pl;
    call->kind = kind;
    call->cookie = cookie;
    call->deadline_ms = clock_now_ms() + p->host->timeout_ms;
    call->prev = p->pending_tail;
    if (p->pending_tail != NULL)
        p->pending_tail->next = call;
    else
        p->pending_head = call;
    p->pending_tail = call;
    return call;
}

/* One asynchronous request: which callback, and its argument (borrowed for
 * the call only). */
struct call_req {
    enum { REQ_AUTHENTICATE, REQ_AUTH_CONTINUE, REQ_CHECK, REQ_SETTINGS } op;
    union {
        const struct ringmq_connect_info *info;
        const struct ringmq_auth_step *step;
        const struct ringmq_check *check;
        const char *tenant;
    };
};

/* The kind of answer each request gets. */
static const enum plugin_done_kind req_kind[] = {
    [REQ_AUTHENTICATE] = PLUGIN_DONE_AUTH,
    [REQ_AUTH_CONTINUE] = PLUGIN_DONE_AUTH,
    [REQ_CHECK] = PLUGIN_DONE_CHECK,
    [REQ_SETTINGS] = PLUGIN_DONE_SETTINGS,
};

/* Start the call and hand it to the plugin that serves req->op: the AUTH
 * plugin, or for settings the first SETTINGS plugin. 0, -ENOSYS (no such
 * plugin) or -ENOMEM; the plugin may complete inside its callback. */
static int call_submit(struct plugin_port *p, uint64_t cookie, const struct call_req *req)
{
    const struct plugin_loaded *pl = req->op == REQ_SETTINGS ? p->host->settings : p->host->auth;
    if (pl == NULL)
        return -ENOSYS;
    struct ringmq_call *call = call_start(p, pl, req_kind[req->op], cookie);
    if (call == NULL)
        return -ENOMEM;
    switch (req->op) {
    case REQ_AUTHENTICATE:
        pl->tab->authenticate(pl->state, call, req->info);
        break;
    case REQ_AUTH_CONTINUE:
        pl->tab->auth_continue(pl->state, call, req->step);
        break;
    case REQ_CHECK:
        pl->tab->check(pl->state, call, req->check);
        break;
    case REQ_SETTINGS:
        pl->tab->settings(pl->state, call, req->tenant);
        break;
    }
    return 0;
}

int plugin_authenticate(struct plugin_port *p, uint64_t cookie,
                        const struct ringmq_connect_info *info)
{
    return call_submit(p, cookie, &(struct call_req){.op = REQ_AUTHENTICATE, .info = info});
}

int plugin_auth_continue(struct plugin_port *p, uint64_t cookie,
                         const struct ringmq_auth_step *step)
{
    return call_submit(p, cookie, &(struct call_req){.op = REQ_AUTH_CONTINUE, .step = step});
}

int plugin_check(struct plugin_port *p, uint64_t cookie, const struct ringmq_check *check)
{
    return call_submit(p, cookie, &(struct call_req){.op = REQ_CHECK, .check = check});
}

int plugin_settings(struct plugin_port *p, uint64_t cookie, const char *tenant)
{
    return call_submit(p, cookie, &(struct call_req){.op = REQ_SETTINGS, .tenant = tenant});
}

struct plugin_done *plugin_port_poll(struct plugin_port *p, uint64_t now_ms)
{
    struct plugin_done *head = NULL, **tail = &head;

    pthread_mutex_lock(&p->mu);
    struct done_rec *q = p->q_head;
    p->q_head = p->q_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    while (q != NULL) {
        struct done_rec *next = (struct done_rec *)q->d.next;
        pending_unlink(p, q->call);
        call_release(q->call);
        q->call = NULL;
        q->d.next = NULL;
        *tail = &q->d;
        tail = &q->d.next;
        q = next;
    }

    struct ringmq_call *call = p->pending_head;
    while (call != NULL && call->deadline_ms <= now_ms) {
        struct ringmq_call *next = call->next;
        /* Allocated before deciding, so that running out of memory leaves the
         * call pending (answered by a later poll) rather than lost. */
        struct done_rec *r = rec_new(call, NULL);
        if (r == NULL)
            break;
        unsigned before = atomic_fetch_or(&call->state, CALL_BY_HOST);
        if (before & CALL_BY_PLUGIN) {
            /* The plugin answered in time; its record is on its way to the
             * queue (a later poll takes it). */
            free(r);
            call = next;
            continue;
        }
        r->d.timed_out = true;
        r->call = NULL;
        pending_unlink(p, call);
        call_release(call);
        *tail = &r->d;
        tail = &r->d.next;
        call = next;
    }
    return head;
}

uint64_t plugin_port_next_deadline(const struct plugin_port *p)
{
    /* Calls already answered by the plugin are skipped: their record, not
     * their deadline, will end the shard's wait. */
    for (const struct ringmq_call *c = p->pending_head; c != NULL; c = c->next) {
        if (!(atomic_load(&((struct ringmq_call *)c)->state) & CALL_BY_PLUGIN))
            return c->deadline_ms;
    }
    return 0;
}
