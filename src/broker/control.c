/*
 * control: the admin API's answers (control.h has the request path). The
 * ops run on the admin thread and touch nothing a shard owns; the request
 * handler (control_on_cqe) runs on each shard's thread and touches only
 * that shard's connections and sessions, and the request it took.
 */
#include "broker/control.h"
#include "broker/broker.h"
#include "broker/control_req.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "broker/conn.h"
#include "broker/observe.h"
#include "session/session.h"
#include "tenant/usage.h"
#include "broker/shard.h"
#include "core/clock.h"
#include "core/log.h"
#include "mqtt/codec.h"
#include "metrics/counters.h"

void control_req_put(struct control_req *r)
{
    if (!r || atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (uint32_t i = 0; i < r->n; i++) {
        if (r->v)
            admin_client_fini(&r->v[i]);
        if (r->sv)
            admin_session_fini(&r->sv[i]);
        if (r->rv)
            admin_retained_fini(&r->rv[i]);
    }
    free(r->v);
    free(r->sv);
    free(r->rv);
    free(r->heap);
    free(r->upto);
    free(r);
}

/* Room for `cap` entries of the request's kind (and a page's heap): false
 * when out of memory. */
static bool req_room(struct control_req *r)
{
    if (!r->cap)
        return true;
    switch (r->kind) {
    case CONTROL_RET_CLEAR: /* the heap alone: it answers a count */
        r->heap = calloc(r->cap, sizeof(*r->heap));
        return r->heap != NULL;
    case CONTROL_PAGE:
    case CONTROL_ONE:
        r->v = calloc(r->cap, sizeof(*r->v));
        break;
    case CONTROL_SESS_PAGE:
    case CONTROL_SESS_ONE:
        r->sv = calloc(r->cap, sizeof(*r->sv));
        break;
    default:
        r->rv = calloc(r->cap, sizeof(*r->rv));
        break;
    }
    bool page =
        r->kind == CONTROL_PAGE || r->kind == CONTROL_SESS_PAGE || r->kind == CONTROL_RET_PAGE;
    r->heap = page ? calloc(r->cap, sizeof(*r->heap)) : NULL;
    return (r->v || r->sv || r->rv) && (!page || r->heap);
}

struct control_req *control_req_create(uint8_t kind, uint16_t tenant, uint32_t cap,
                                       const char *prefix, size_t prefix_len, const char *after,
                                       size_t after_len)
{
    struct control_req *r = calloc(1, sizeof(*r) + prefix_len + after_len);
    if (!r)
        return NULL;
    atomic_init(&r->refs, 1);
    r->kind = kind;
    r->tenant = tenant;
    r->cap = cap;
    if (!req_room(r)) {
        control_req_put(r);
        return NULL;
    }
    r->prefix_len = (uint32_t)prefix_len;
    r->after_len = (uint32_t)after_len;
    r->has_after = after != NULL;
    if (prefix_len)
        memcpy(r->key, prefix, prefix_len);
    if (after_len)
        memcpy(r->key + prefix_len, after, after_len);
    return r;
}

/* ---- on the shard --------------------------------------------------------------- */

void control_arm(struct shard *s)
{
    if (s->admin_fd <= 0)
        return;
    struct io_uring_sqe *sqe = shard_sqe(s);
    io_uring_prep_read(sqe, s->admin_fd, &s->admin_val, sizeof(s->admin_val), 0);
    io_uring_sqe_set_data64(sqe, ud_make(UD_ADMIN, NULL));
}

int control_key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int d = memcmp(a, b, al < bl ? al : bl);
    return d ? d : (al > bl) - (al < bl);
}

/* An id with the page's prefix (within its range in id order). */
static bool in_prefix(const struct session *ss, const struct control_req *r)
{
    return ss->st.client_id_len >= r->prefix_len &&
           memcmp(ss->st.client_id, r->key, r->prefix_len) == 0;
}

char *control_id_dup(const void *id, uint16_t len)
{
    char *d = malloc((size_t)len + 1);
    if (d) {
        memcpy(d, id, len);
        d[len] = '\0';
    }
    return d;
}

uint32_t control_walk(struct tenant *t, struct control_req *r, control_sel_fn sel, uint32_t budget)
{
    const uint8_t *after = r->key + r->prefix_len;
    struct idtree_iter it;
    struct session *ss, *upto = NULL;
    /* Ids with the prefix are one range from the prefix on: seek to its
     * start, or past `after` when that is further. */
    if (r->has_after && control_key_cmp(after, r->after_len, r->key, r->prefix_len) >= 0)
        ss = idtree_seek(&it, t->reg_root, after, r->after_len, true);
    else
        ss = idtree_seek(&it, t->reg_root, r->key, r->prefix_len, false);
    uint32_t n = 0, seen = 0;
    bool stopped = false;
    for (; ss && in_prefix(ss, r); ss = idtree_next(&it)) {
        bool take = seen < budget && sel(ss, r);
        if (seen == budget || (take && n == r->cap)) {
            stopped = true;
            break;
        }
        seen++;
        if (take)
            r->heap[n++] = ss;
        upto = ss;
    }
    r->more = stopped;
    if (stopped && upto) {
        r->upto_len = upto->st.client_id_len;
        if (!(r->upto = control_id_dup(upto->st.client_id, r->upto_len)))
            r->err = -ENOMEM;
    }
    return n;
}

/* A connected client (CONNECT accepted, not closing). */
static bool client_selects(const struct session *ss, const struct control_req *r)
{
    (void)r;
    return ss->client && conn_of_stream(ss->client)->state == CONN_ACTIVE;
}

/* One client's fields into *out (its id copied). 0 or -ENOMEM. */
static int client_fill(struct shard *s, const struct conn *c, struct admin_client *out)
{
    const struct session *ss = c->session;
    out->id = control_id_dup(ss->st.client_id, ss->st.client_id_len);
    if (!out->id)
        return -ENOMEM;
    out->id_len = ss->st.client_id_len;
    out->version = c->version;
    out->keepalive = c->keepalive;
    out->port = c->st.peer.port;
    if (net_peer_format(&c->st.peer, out->addr, sizeof(out->addr)) < 0)
        out->addr[0] = '\0';
    out->listener = shard_listener(s->broker, c->st.listener)->name;
    out->transport = s->streams.xprt[c->st.listener]->name;
    /* since_s is monotonic: its age, taken back from the wall clock. */
    int64_t age = (int64_t)(s->now_ms / 1000u) - (int64_t)c->since_s;
    out->connected_since = (int64_t)time(NULL) - (age > 0 ? age : 0);
    out->subscriptions = ss->st.nsubs;
    out->inflight = ss->st.ninfl;
    out->queued = ss->st.qlen;
    return 0;
}

/* The page's clients of this shard, in id order: at most `cap`, from
 * the tenant's sessions that have a connection (control_walk's bounds). */
static void answer_page(struct shard *s, struct tenant *t, struct control_req *r)
{
    uint32_t n = control_walk(t, r, client_selects, s->cfg->admin_page_budget);
    for (uint32_t i = 0; !r->err && i < n; i++) {
        const struct session *ss = r->heap[i];
        if (client_fill(s, conn_of_stream(ss->client), &r->v[i]) < 0) {
            r->err = -ENOMEM;
            break;
        }
        r->n = i + 1;
    }
}

/* ONE and KICK: the client's connection, on its home shard. */
static void answer_client(struct shard *s, struct tenant *t, struct control_req *r)
{
    struct session *ss = t ? session_find(t, r->key, r->prefix_len) : NULL;
    struct conn *c = ss && ss->client ? conn_of_stream(ss->client) : NULL;
    if (!c || c->state != CONN_ACTIVE) {
        r->err = -ENOENT;
        return;
    }
    if (r->kind == CONTROL_ONE) {
        r->err = client_fill(s, c, &r->v[0]);
        r->n = r->err ? 0 : 1;
        return;
    }
    if (r->delete_session)
        session_end_with_connection(ss);
    /* MQTT 5.0 4.13.2: 0x98 Administrative action; 3.1.1 has only the close. */
    conn_close_reason(s, c, CLOSE_ADMIN, MQTT_RC_ADMINISTRATIVE_ACTION, "administrative action");
}

/* An answer that took this shard `us` microseconds, counted for metrics
 * (single writer: plain adds, relaxed stores). */
static void answered(struct shard *s, uint64_t us)
{
    atomic_store_explicit(&s->admin_answers,
                          atomic_load_explicit(&s->admin_answers, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&s->admin_answer_us,
                          atomic_load_explicit(&s->admin_answer_us, memory_order_relaxed) + us,
                          memory_order_relaxed);
    if (us > atomic_load_explicit(&s->admin_answer_max_us, memory_order_relaxed))
        atomic_store_explicit(&s->admin_answer_max_us, us, memory_order_relaxed);
}

void control_on_cqe(struct shard *s, const struct io_uring_cqe *cqe)
{
    if (cqe->res == -ECANCELED)
        return; /* the ring is going away */
    struct control_req *r = atomic_exchange_explicit(&s->admin_req, NULL, memory_order_acquire);
    if (r) {
        uint64_t t0 = clock_now_us();
        struct tenant *t = r->tenant < TENANT_MAX ? s->tenants[r->tenant] : NULL;
        if (r->kind == CONTROL_PAGE) {
            if (t)
                answer_page(s, t, r);
        } else if (r->kind <= CONTROL_KICK) {
            answer_client(s, t, r);
        } else if (r->kind <= CONTROL_SESS_DEL) {
            control_answer_sessions(s, t, r);
        } else if (r->kind <= CONTROL_RET_DEL || r->kind == CONTROL_RET_CLEAR) {
            control_answer_retained(s, t, r);
        } else {
            control_answer_writes(s, r);
        }
        answered(s, clock_now_us() - t0);
        atomic_store_explicit(&r->done, true, memory_order_release);
        uint64_t one = 1;
        if (write(s->broker->admin_done_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_ratelimited(LOG_LEVEL_ERR, "shard %u: cannot wake the admin API: %s", s->id,
                            strerror(errno));
        control_req_put(r);
    }
    control_arm(s);
}

/* ---- on the admin thread ---------------------------------------------------- */

/* Post reqs[i] (NULL: none) to shard i, then wait until every one is done
 * or ADMIN_SHARD_WAIT_MS passed. 0 or -ETIMEDOUT. The caller keeps its
 * references either way. */
int control_ask(struct broker *b, struct control_req **reqs)
{
    for (uint32_t i = 0; i < b->nshards; i++) {
        if (!reqs[i])
            continue;
        struct shard *s = b->shards[i];
        atomic_fetch_add_explicit(&reqs[i]->refs, 1, memory_order_relaxed); /* the shard's */
        struct control_req *old =
            atomic_exchange_explicit(&s->admin_req, reqs[i], memory_order_acq_rel);
        control_req_put(old); /* posted earlier and never taken: the shard's ref is ours */
        uint64_t one = 1;
        if (write(s->admin_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_ratelimited(LOG_LEVEL_ERR, "admin: cannot wake shard %u: %s", i, strerror(errno));
    }
    uint64_t deadline = clock_now_ms() + ADMIN_SHARD_WAIT_MS;
    for (;;) {
        bool all = true;
        for (uint32_t i = 0; all && i < b->nshards; i++)
            all = !reqs[i] || atomic_load_explicit(&reqs[i]->done, memory_order_acquire);
        if (all)
            return 0;
        uint64_t now = clock_now_ms();
        if (now >= deadline) {
            log_ratelimited(LOG_LEVEL_WARN, "admin: a shard did not answer in %u ms",
                            ADMIN_SHARD_WAIT_MS);
            return -ETIMEDOUT;
        }
        /* Wakes from requests given up earlier come here too: the done
         * flags above decide. */
        struct pollfd p = {.fd = b->admin_done_fd, .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - now)) > 0) {
            uint64_t v;
            if (read(b->admin_done_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                return -EIO;
        }
    }
}

/* The id of tenant `name`, when some shard has seen it (as GET /tenants
 * lists it); -ENOENT otherwise. */
int control_tenant(struct broker *b, const char *name)
{
    uint32_t n = tenant_dir_count(&b->tenants);
    for (uint32_t id = 0; id < n && id < TENANT_MAX; id++) {
        const char *t = tenant_dir_name(&b->tenants, (uint16_t)id);
        struct tenant_counters sum;
        if (t && !strcmp(t, name))
            return tenant_sum(&b->tenant_shards, (uint16_t)id, &sum) ? (int)id : -ENOENT;
    }
    return -ENOENT;
}

static void client_entry_key(const void *e, const uint8_t **key, uint16_t *len)
{
    const struct admin_client *c = e;
    *key = (const uint8_t *)c->id;
    *len = c->id_len;
}

static int client_entry_cmp(const void *a, const void *b)
{
    const struct admin_client *x = a, *y = b;
    return control_key_cmp((const uint8_t *)x->id, x->id_len, (const uint8_t *)y->id, y->id_len);
}

/* The smallest upto of the shards that stopped (NULL: none stopped, or
 * one stopped without: the page's last id bounds it then). */
static const struct control_req *merge_bound(struct broker *b, struct control_req **reqs)
{
    const struct control_req *min = NULL;
    for (uint32_t i = 0; i < b->nshards; i++) {
        const struct control_req *r = reqs[i];
        if (r->more && r->upto &&
            (!min || control_key_cmp((const uint8_t *)r->upto, r->upto_len,
                                     (const uint8_t *)min->upto, min->upto_len) < 0))
            min = r;
    }
    return min;
}

/* How many of the sorted v[0..total) are at most the bound's upto. */
static uint32_t merge_known(const struct control_entries *k, const uint8_t *v, uint32_t total,
                            const struct control_req *bound)
{
    uint32_t n = total;
    while (bound && n > 0) {
        const uint8_t *key;
        uint16_t len;
        k->key(v + (size_t)(n - 1) * k->size, &key, &len);
        if (control_key_cmp(key, len, (const uint8_t *)bound->upto, bound->upto_len) <= 0)
            break;
        n--;
    }
    return n;
}

int control_merge(struct broker *b, struct control_req **reqs, const struct control_entries *k,
                  uint32_t limit, struct control_page *out)
{
    uint32_t total = 0;
    bool more = false;
    for (uint32_t i = 0; i < b->nshards; i++) {
        if (reqs[i]->err < 0)
            return reqs[i]->err;
        total += reqs[i]->n;
        more |= reqs[i]->more;
    }
    const struct control_req *bound = merge_bound(b, reqs);
    char *next = bound ? control_id_dup(bound->upto, bound->upto_len) : NULL;
    uint8_t *v = calloc(total ? total : 1, k->size);
    if (!v || (bound && !next)) {
        free(v);
        free(next);
        return -ENOMEM;
    }
    size_t at = 0;
    for (uint32_t i = 0; i < b->nshards; i++) {
        memcpy(v + at, k->of(reqs[i]), reqs[i]->n * k->size);
        at += reqs[i]->n * k->size;
        reqs[i]->n = 0; /* moved */
    }
    qsort(v, total, k->size, k->cmp);
    /* Past the bound another shard may hold ids not looked at yet: those
     * entries wait for a later page, as do those past the limit. */
    uint32_t known = merge_known(k, v, total, bound), n = known < limit ? known : limit;
    for (uint32_t i = n; i < total; i++)
        k->fini(v + (size_t)i * k->size);
    if (known > limit) { /* the page ends at its last entry */
        free(next);
        next = NULL;
    }
    *out = (struct control_page){v, n, more || known > limit, next, next ? bound->upto_len : 0};
    return 0;
}

static void *client_entries(struct control_req *r)
{
    return r->v;
}

static void client_entry_fini(void *e)
{
    admin_client_fini(e);
}

static const struct control_entries client_page = {sizeof(struct admin_client), client_entries,
                                                   client_entry_key, client_entry_cmp,
                                                   client_entry_fini};

/* The shards' pages (each in id order, answered) into one of at most
 * `limit`. 0 or -errno. */
static int merge_pages(struct broker *b, struct control_req **reqs, uint32_t limit,
                       struct admin_client_page *out)
{
    struct control_page p;
    int rc = control_merge(b, reqs, &client_page, limit, &p);
    if (rc == 0)
        *out = (struct admin_client_page){p.v, p.n, p.more, p.next, p.next_len};
    return rc;
}

static int control_clients(void *arg, const char *tenant, const struct admin_client_query *q,
                           struct admin_client_page *out)
{
    struct broker *b = arg;
    int id = control_tenant(b, tenant);
    if (id < 0)
        return id;
    struct control_req *reqs[CONFIG_MAX_SHARDS] = {0};
    int err = 0;
    for (uint32_t i = 0; !err && i < b->nshards; i++) {
        reqs[i] = control_req_create(CONTROL_PAGE, (uint16_t)id, q->limit, q->prefix, q->prefix_len,
                                     q->after, q->after_len);
        err = reqs[i] ? 0 : -ENOMEM;
    }
    if (!err)
        err = control_ask(b, reqs);
    if (!err)
        err = merge_pages(b, reqs, q->limit, out);
    for (uint32_t i = 0; i < b->nshards; i++)
        control_req_put(reqs[i]);
    return err;
}

int control_ask_home(struct broker *b, uint8_t kind, const char *tenant, const char *id, size_t len,
                     bool delete_session, struct control_req **out)
{
    int tid = control_tenant(b, tenant);
    if (tid < 0)
        return tid;
    struct control_req *r = control_req_create(
        kind, (uint16_t)tid, kind == CONTROL_ONE || kind == CONTROL_SESS_ONE ? 1 : 0, id, len, NULL,
        0);
    if (!r)
        return -ENOMEM;
    r->delete_session = delete_session;
    return control_ask_one(b, shard_home(b, (uint16_t)tid, (const uint8_t *)id, len), r, out);
}

int control_ask_one(struct broker *b, uint32_t shard, struct control_req *r,
                    struct control_req **out)
{
    struct control_req *reqs[CONFIG_MAX_SHARDS] = {0};
    reqs[shard] = r;
    int err = control_ask(b, reqs);
    if (err < 0 || r->err < 0) {
        err = err < 0 ? err : r->err;
        control_req_put(r);
        return err;
    }
    *out = r;
    return 0;
}

static int control_client(void *arg, const char *tenant, const char *id, size_t len,
                          struct admin_client *out)
{
    struct control_req *r;
    int err = control_ask_home(arg, CONTROL_ONE, tenant, id, len, false, &r);
    if (err < 0)
        return err;
    *out = r->v[0];
    r->n = 0; /* moved */
    control_req_put(r);
    return 0;
}

static int control_kick(void *arg, const char *tenant, const char *id, size_t len,
                        bool delete_session)
{
    struct control_req *r;
    int err = control_ask_home(arg, CONTROL_KICK, tenant, id, len, delete_session, &r);
    if (err == 0)
        control_req_put(r);
    return err;
}

/* The tenant directory and each tenant's counters summed over the shards
 * (plain loads, as a metrics scrape reads them: they may lag a few
 * increments). */
static uint32_t control_tenants(void *arg, struct admin_tenant *v, uint32_t cap)
{
    struct broker *b = arg;
    uint32_t n = tenant_dir_count(&b->tenants), k = 0;
    for (uint32_t id = 0; id < n; id++) {
        struct tenant_counters sum;
        const char *name = tenant_dir_name(&b->tenants, (uint16_t)id);
        if (!name || !tenant_sum(&b->tenant_shards, (uint16_t)id, &sum))
            continue; /* no shard has seen it yet */
        if (k < cap)
            v[k] = (struct admin_tenant){name, sum.connections, sum.sessions};
        k++;
    }
    return k;
}

/* POST /reload: main's reload, as SIGHUP's (broker_set_reload). */
static int control_reload(void *arg, struct config_report *out)
{
    return broker_reload(arg, out);
}

const struct admin_ops control_admin_ops = {
    .tenants = control_tenants,
    .clients = control_clients,
    .client = control_client,
    .kick = control_kick,
    .sessions = control_sessions,
    .session = control_session,
    .session_delete = control_session_delete,
    .retained = control_retained,
    .retained_one = control_retained_one,
    .retained_delete = control_retained_delete,
    .retained_clear = control_retained_clear,
    .publish = control_publish,
    .subscribe = control_subscribe,
    .unsubscribe = control_unsubscribe,
    .reload = control_reload,
};

int control_init(struct broker *b)
{
    if (!b->cfg->admin_enabled)
        return 0;
    b->admin_done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (b->admin_done_fd < 0)
        return -errno;
    for (uint32_t i = 0; i < b->nshards; i++) {
        b->shards[i]->admin_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (b->shards[i]->admin_fd < 0)
            return -errno;
    }
    return 0;
}

void control_fini(struct broker *b)
{
    for (uint32_t i = 0; i < b->nshards; i++) {
        struct shard *s = b->shards[i];
        if (!s)
            continue;
        control_req_put(atomic_exchange(&s->admin_req, NULL));
        if (s->admin_fd > 0)
            close(s->admin_fd);
        s->admin_fd = -1;
    }
    if (b->admin_done_fd > 0)
        close(b->admin_done_fd);
    b->admin_done_fd = -1;
}
