/*
 * replay: durable state rebuilt from records (replay.h). Owns, until
 * replay_finish hands them on, the rebuilt session states (hashed by tenant
 * name and client id), the retained messages and clears (hashed by tenant
 * name and topic) and the tenant names seen. Each record is decoded and
 * checked against the state before anything changes, so a failing record
 * leaves the replay as it was. One thread; logs nothing (the caller reports
 * replay_error with the file and offset it knows).
 */
#include "persist/replay.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/u64set.h"
#include "core/vec.h"
#include "persist/record.h"
#include "session/msg.h"
#include "session/session.h"
#include "session/store.h"
#include "shard/xshard.h"

/* A chained hash table of nodes that begin with struct rnode. */
struct rnode {
    struct rnode *next;
    uint64_t hash;
};

struct rtab {
    struct rnode **b;
    uint32_t mask, n; /* buckets - 1 (b NULL: none yet), entries */
};

struct rtenant {
    char *name;
    uint16_t len;
    int id; /* run-time id, -1 until replay_finish asks */
};

struct rsess {
    struct rnode node;
    uint32_t no;     /* its number in the log being read (format 2; 0: none) */
    uint32_t tenant; /* index in replay.tenants */
    uint32_t epoch;  /* replay.epoch when it was last written whole */
    bool ran_out;    /* its expiry ran out while the broker was down */
    struct session_state st;
};

/* A topic's latest retained update: a message, or a clear (m NULL). */
struct rret {
    struct rnode node;
    uint32_t tenant;
    uint64_t stamp;
    struct msg *m;
    uint16_t topic_len;
    uint8_t topic[];
};

struct replay {
    struct replay_opts o;
    struct rtab sessions, retained;
    struct rtenant *tenants;
    uint32_t ntenants, tenants_cap;
    uint32_t nretained;    /* entries of `retained` holding a message */
    struct u64set ingress; /* keys of QoS 2 flows kept (broker/ingress.h) */
    struct u64set nos;     /* the log's session numbers -> struct rsess * */
    uint64_t skipped;
    /* Compaction snapshots begun (SNAP_BEGIN records) so far: within one,
     * a session's first record is its whole state (persist/compact.c). */
    uint32_t epoch;
    char err[192];
};

static const char *const type_names[RECORD_TYPE_MAX + 1] = {
    [RECORD_SESSION_PUT] = "session put",
    [RECORD_SESSION_DEL] = "session del",
    [RECORD_SUB_PUT] = "sub put",
    [RECORD_SUB_DEL] = "sub del",
    [RECORD_QUEUE_PUSH] = "queue push",
    [RECORD_QUEUE_POP] = "queue pop",
    [RECORD_INFL_PUT] = "infl put",
    [RECORD_INFL_REC] = "infl rec",
    [RECORD_INFL_DEL] = "infl del",
    [RECORD_QOS2_ADD] = "qos2 add",
    [RECORD_QOS2_DEL] = "qos2 del",
    [RECORD_RETAINED_PUT] = "retained put",
    [RECORD_RETAINED_CLEAR] = "retained clear",
    [RECORD_SNAP_BEGIN] = "snapshot begin",
    [RECORD_SNAP_END] = "snapshot end",
    [RECORD_INGRESS_PUT] = "ingress put",
    [RECORD_INGRESS_DEL] = "ingress del",
    [RECORD_INFL_FROM_QUEUE] = "infl from queue",
    [RECORD_SESSION_PUT_AT] = "session put",
    [RECORD_INFL_DEL_NEXT] = "infl del next",
};

__attribute__((format(printf, 2, 3))) static int fail(struct replay *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof(r->err), fmt, ap);
    va_end(ap);
    return -EBADMSG;
}

/* ---- hash tables ---- */

static int tab_insert(struct rtab *t, struct rnode *n)
{
    if (!t->b || t->n > t->mask) {
        uint32_t nb = t->b ? 2 * (t->mask + 1) : 64;
        struct rnode **b = calloc(nb, sizeof(*b));
        if (!b)
            return -ENOMEM;
        for (uint32_t i = 0; t->b && i <= t->mask; i++) {
            while (t->b[i]) {
                struct rnode *x = t->b[i];
                t->b[i] = x->next;
                x->next = b[x->hash & (nb - 1)];
                b[x->hash & (nb - 1)] = x;
            }
        }
        free(t->b);
        t->b = b;
        t->mask = nb - 1;
    }
    struct rnode **head = &t->b[n->hash & t->mask];
    n->next = *head;
    *head = n;
    t->n++;
    return 0;
}

static void tab_unlink(struct rtab *t, struct rnode *n)
{
    struct rnode **pp = &t->b[n->hash & t->mask];
    while (*pp != n)
        pp = &(*pp)->next;
    *pp = n->next;
    t->n--;
}

/* The first node of t's bucket for hash h (NULL: none). */
static struct rnode *tab_bucket(const struct rtab *t, uint64_t h)
{
    return t->b ? t->b[h & t->mask] : NULL;
}

static uint64_t key_hash(const uint8_t *tenant, size_t tlen, const uint8_t *k, size_t klen)
{
    return XXH3_64bits_withSeed(k, klen, XXH3_64bits(tenant, tlen));
}

/* The index of the tenant named name[0..len): -1 when unknown and not
 * `create`, -ENOMEM. Tenants are few: a linear search. */
static long tenant_find(struct replay *r, const uint8_t *name, uint16_t len, bool create)
{
    for (uint32_t i = 0; i < r->ntenants; i++)
        if (r->tenants[i].len == len && memcmp(r->tenants[i].name, name, len) == 0)
            return i;
    if (!create)
        return -1;
    if (r->ntenants == r->tenants_cap) {
        struct rtenant *v = vec_grow(r->tenants, &r->tenants_cap, sizeof(*v), 4);
        if (!v)
            return -ENOMEM;
        r->tenants = v;
    }
    char *copy = malloc((size_t)len + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, name, len);
    copy[len] = '\0';
    r->tenants[r->ntenants] = (struct rtenant){copy, len, -1};
    return r->ntenants++;
}

static struct rsess *rsess_find(struct replay *r, const struct record *rec)
{
    long ti = tenant_find(r, rec->tenant, rec->tenant_len, false);
    if (ti < 0)
        return NULL;
    uint64_t h = key_hash(rec->tenant, rec->tenant_len, rec->client_id, rec->client_id_len);
    for (struct rnode *n = tab_bucket(&r->sessions, h); n; n = n->next) {
        struct rsess *rs = (struct rsess *)n;
        if (n->hash == h && rs->tenant == (uint32_t)ti &&
            rs->st.client_id_len == rec->client_id_len &&
            memcmp(rs->st.client_id, rec->client_id, rec->client_id_len) == 0)
            return rs;
    }
    return NULL;
}

static struct rret *retained_find(struct replay *r, uint32_t ti, const struct record *rec,
                                  uint64_t h)
{
    for (struct rnode *n = tab_bucket(&r->retained, h); n; n = n->next) {
        struct rret *x = (struct rret *)n;
        if (n->hash == h && x->tenant == ti && x->topic_len == rec->m.topic_len &&
            memcmp(x->topic, rec->m.topic, x->topic_len) == 0)
            return x;
    }
    return NULL;
}

/* ---- building the parts of a state ---- */

/* The message of a record, with one reference; a will keeps its interval
 * (record.h), any other deadline comes back to the monotonic clock. */
static struct msg *msg_from(const struct replay *r, const struct record_msg *m, bool will)
{
    struct msg_spec sp = {
        .topic = m->topic,
        .topic_len = m->topic_len,
        .payload = m->payload,
        .payload_len = m->payload_len,
        .props = m->props,
        .props_len = m->props_len,
        .qos = m->qos,
        .retain = m->retain,
        .expires_at_ms =
            will ? m->expiry : record_deadline_to_mono(m->expiry, r->o.mono_ms, r->o.wall_ms),
    };
    struct msg *x = msg_create(&sp);
    if (x)
        x->retain_stamp = m->retain_stamp;
    return x;
}

/* The Subscription Identifiers and $share filter of a delivery (heap, as
 * the outbox keeps them; NULL when none). -ENOMEM. */
static int delivery_parts(const struct record *rec, subids_t *ids, struct xfilter **share)
{
    *ids = NULL;
    *share = NULL;
    if (rec->nids) {
        *ids = malloc(((size_t)rec->nids + 1) * sizeof(**ids));
        if (!*ids)
            return -ENOMEM;
        (*ids)[0] = rec->nids;
        for (uint32_t i = 0; i < rec->nids; i++)
            (*ids)[i + 1] = record_id(rec, i);
    }
    if (rec->share_len) {
        *share = malloc(sizeof(**share) + rec->share_len);
        if (!*share) {
            free(*ids);
            *ids = NULL;
            return -ENOMEM;
        }
        (*share)->len = rec->share_len;
        memcpy((*share)->data, rec->share, rec->share_len);
    }
    return 0;
}

void replay_state_fini(struct session_state *st)
{
    for (uint32_t i = 0; i < st->ninfl; i++) {
        msg_release(st->infl[i].m);
        free(st->infl[i].ids);
        free(st->infl[i].share);
    }
    free(st->infl);
    for (uint32_t i = 0; i < st->qlen; i++) {
        struct qentry *e = &st->q[(st->qhead + i) & (st->qcap - 1)];
        msg_release(e->m);
        free(e->ids);
        free(e->share);
    }
    free(st->q);
    for (uint32_t i = 0; i < st->nsubs; i++)
        free(st->subs[i]);
    free(st->subs);
    free(st->qos2_in);
    free(st->client_id);
    msg_release(st->will);
    memset(st, 0, sizeof(*st));
}

/* ---- the records of a session ---- */

/* Whole seconds (rounded up) of `full` left at now_wall when it runs out
 * at at_wall (wall clock, ms; 0: not counting, all of it is left). */
static uint32_t left_s(uint32_t full, uint64_t at_wall, uint64_t now_wall)
{
    if (at_wall == 0)
        return full;
    if (at_wall <= now_wall)
        return 0;
    uint64_t left = (at_wall - now_wall + 999) / 1000;
    return left < full ? (uint32_t)left : full;
}

/* The session numbered no in the log being read, or NULL. */
static struct rsess *numbered(const struct replay *r, uint32_t no)
{
    uint64_t *v = no ? u64set_find(&r->nos, no) : NULL;
    return v ? (struct rsess *)(uintptr_t)*v : NULL;
}

/* rs is numbered rec->no from here (a put may give it a new number). */
static int number(struct replay *r, struct rsess *rs, const struct record *rec)
{
    if (rs->no == rec->no)
        return 0;
    if (u64set_put(&r->nos, rec->no, (uintptr_t)rs) < 0)
        return -ENOMEM;
    if (rs->no)
        u64set_del(&r->nos, rs->no);
    rs->no = rec->no;
    return 0;
}

static void session_del(struct replay *r, struct rsess *rs);

static int session_put(struct replay *r, const struct record *rec)
{
    struct rsess *rs = rsess_find(r, rec), *other = numbered(r, rec->no);
    if (other && other != rs && r->o.skip_unknown) {
        u64set_del(&r->nos, other->no); /* salvaging: its del was lost */
        other->no = 0;
        r->skipped++;
    } else if (other && other != rs)
        return fail(r, "session put of %.*s of tenant %.*s: its number %u is another session's",
                    (int)rec->client_id_len, rec->client_id, (int)rec->tenant_len, rec->tenant,
                    rec->no);
    struct msg *will = NULL;
    if (rec->has_msg && !(will = msg_from(r, &rec->m, true)))
        return -ENOMEM;
    bool fresh = !rs;
    if (!rs) {
        long ti = tenant_find(r, rec->tenant, rec->tenant_len, true);
        rs = ti < 0 ? NULL : calloc(1, sizeof(*rs));
        if (rs)
            rs->st.client_id = malloc(rec->client_id_len ? rec->client_id_len : 1);
        if (!rs || !rs->st.client_id) {
            free(rs);
            msg_release(will);
            return -ENOMEM;
        }
        rs->tenant = (uint32_t)ti;
        rs->epoch = r->epoch;
        memcpy(rs->st.client_id, rec->client_id, rec->client_id_len);
        rs->st.client_id_len = rec->client_id_len;
        rs->node.hash = key_hash(rec->tenant, rec->tenant_len, rec->client_id, rec->client_id_len);
        if (tab_insert(&r->sessions, &rs->node) < 0) {
            replay_state_fini(&rs->st);
            free(rs);
            msg_release(will);
            return -ENOMEM;
        }
    }
    if (rec->no && number(r, rs, rec) < 0) {
        if (fresh)
            session_del(r, rs);
        msg_release(will);
        return -ENOMEM;
    }
    if (rs->epoch != r->epoch) {
        /* The first put since a snapshot began: the session written whole
         * again (what the log before said of it is replaced). */
        uint8_t *id = rs->st.client_id;
        uint16_t id_len = rs->st.client_id_len;
        rs->st.client_id = NULL;
        replay_state_fini(&rs->st);
        rs->st.client_id = id;
        rs->st.client_id_len = id_len;
        rs->epoch = r->epoch;
    }
    /* A put of a known session repeats or replaces these (store.h). What
     * an offline session had left of them when the broker went down, less
     * the time it was down. A session whose expiry ran out meanwhile is
     * left with 0: not handed over (hand_session), unless its will is
     * still to go (session_restore then ends it at the first tick). */
    rs->st.expiry_s = rec->expiry_s;
    if (rec->expire_wall_ms && rec->expiry_s != SESSION_EXPIRY_NEVER)
        rs->st.expiry_s = left_s(rec->expiry_s, rec->expire_wall_ms, r->o.wall_ms);
    rs->ran_out = rec->expire_wall_ms && rs->st.expiry_s == 0;
    rs->st.will_delay_s = left_s(rec->will_delay_s, rec->will_wall_ms, r->o.wall_ms);
    msg_release(rs->st.will);
    rs->st.will = will;
    return 0;
}

static int sub_put(struct replay *r, struct session_state *st, const struct record *rec)
{
    (void)r;
    struct sess_sub *sub = malloc(sizeof(*sub) + rec->filter_len);
    if (!sub)
        return -ENOMEM;
    *sub = (struct sess_sub){rec->qos, rec->opts, rec->filter_len, rec->subid};
    memcpy(sub->filter, rec->filter, rec->filter_len);
    for (uint32_t i = 0; i < st->nsubs; i++) {
        if (st->subs[i]->len == rec->filter_len &&
            memcmp(st->subs[i]->filter, rec->filter, rec->filter_len) == 0) {
            free(st->subs[i]); /* MQTT-3.8.4-3: replaced in place */
            st->subs[i] = sub;
            return 0;
        }
    }
    if (st->nsubs == st->subs_cap) {
        struct sess_sub **v = vec_grow(st->subs, &st->subs_cap, sizeof(*v), 4);
        if (!v) {
            free(sub);
            return -ENOMEM;
        }
        st->subs = v;
    }
    st->subs[st->nsubs++] = sub;
    return 0;
}

static int sub_del(struct replay *r, struct session_state *st, const struct record *rec)
{
    for (uint32_t i = 0; i < st->nsubs; i++) {
        if (st->subs[i]->len == rec->filter_len &&
            memcmp(st->subs[i]->filter, rec->filter, rec->filter_len) == 0) {
            free(st->subs[i]);
            st->subs[i] = st->subs[--st->nsubs]; /* as session_unsubscribe does */
            return 0;
        }
    }
    return fail(r, "sub del of %.*s, not subscribed", (int)rec->filter_len, rec->filter);
}

static int queue_push(struct replay *r, struct session_state *st, const struct record *rec)
{
    if (st->qlen == st->qcap) {
        if (st->qcap >= 1u << 30)
            return -ENOMEM;
        uint32_t cap = st->qcap ? st->qcap * 2 : 8;
        struct qentry *v = malloc(cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        for (uint32_t i = 0; i < st->qlen; i++)
            v[i] = st->q[(st->qhead + i) & (st->qcap - 1)];
        free(st->q);
        st->q = v;
        st->qcap = cap;
        st->qhead = 0;
    }
    struct qentry e = {.qos = rec->qos, .retain = rec->retain};
    if (delivery_parts(rec, &e.ids, &e.share) < 0)
        return -ENOMEM;
    if (!(e.m = msg_from(r, &rec->m, false))) {
        free(e.ids);
        free(e.share);
        return -ENOMEM;
    }
    st->q[(st->qhead + st->qlen) & (st->qcap - 1)] = e;
    st->qlen++;
    st->qbytes += msg_size(e.m);
    return 0;
}

static int queue_pop(struct replay *r, struct session_state *st)
{
    if (st->qlen == 0)
        return fail(r, "queue pop from an empty queue");
    struct qentry *e = &st->q[st->qhead];
    st->qbytes -= msg_size(e->m);
    msg_release(e->m);
    free(e->ids);
    free(e->share);
    st->qhead = (st->qhead + 1) & (st->qcap - 1);
    st->qlen--;
    return 0;
}

static struct inflight *infl_find(struct session_state *st, uint16_t pid)
{
    for (uint32_t i = 0; i < st->ninfl; i++)
        if (st->infl[i].pid == pid)
            return &st->infl[i];
    return NULL;
}

/* Room for one more entry in the window: 0 or -ENOMEM. */
static int infl_room(struct session_state *st)
{
    if (st->ninfl == st->infl_cap) {
        /* Distinct non-zero ids: at most 65535 entries, the cap's range. */
        uint32_t cap = st->infl_cap ? 2u * st->infl_cap : 8u;
        if (cap > UINT16_MAX)
            cap = UINT16_MAX;
        struct inflight *v = realloc(st->infl, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        st->infl = v;
        st->infl_cap = (uint16_t)cap;
    }
    return 0;
}

static int infl_put(struct replay *r, struct session_state *st, const struct record *rec)
{
    if (infl_find(st, rec->pid))
        return fail(r, "infl put of packet id %u, already in flight", rec->pid);
    if (infl_room(st) < 0)
        return -ENOMEM;
    struct inflight e = {.pid = rec->pid, .qos = rec->qos, .state = rec->state};
    e.retain = rec->retain;
    if (delivery_parts(rec, &e.ids, &e.share) < 0)
        return -ENOMEM;
    if (rec->has_msg && !(e.m = msg_from(r, &rec->m, false))) {
        free(e.ids);
        free(e.share);
        return -ENOMEM;
    }
    st->infl[st->ninfl++] = e;
    return 0;
}

/* The queue's head, sent with rec->pid: it moves to the window as is. */
static int infl_from_queue(struct replay *r, struct session_state *st, const struct record *rec)
{
    if (st->qlen == 0)
        return fail(r, "infl from queue of packet id %u, the queue empty", rec->pid);
    if (infl_find(st, rec->pid))
        return fail(r, "infl from queue of packet id %u, already in flight", rec->pid);
    if (infl_room(st) < 0)
        return -ENOMEM;
    struct qentry *q = &st->q[st->qhead];
    st->qbytes -= msg_size(q->m);
    st->infl[st->ninfl++] = (struct inflight){.m = q->m,
                                              .ids = q->ids,
                                              .share = q->share,
                                              .pid = rec->pid,
                                              .qos = q->qos,
                                              .state = INFL_WAIT_ACK,
                                              .retain = q->retain};
    st->qhead = (st->qhead + 1) & (st->qcap - 1);
    st->qlen--;
    return 0;
}

static int infl_end(struct replay *r, struct session_state *st, const struct record *rec)
{
    struct inflight *e = infl_find(st, rec->pid);
    if (!e)
        return fail(r, "%s of packet id %u, not in flight", type_names[rec->type], rec->pid);
    if (rec->type == RECORD_INFL_REC && (e->qos != 2 || e->state != INFL_WAIT_ACK))
        return fail(r, "infl rec of packet id %u, not a QoS 2 PUBLISH awaiting PUBREC", e->pid);
    msg_release(e->m);
    free(e->ids);
    free(e->share);
    if (rec->type == RECORD_INFL_REC) {
        /* MQTT-4.3.3-1: the message is released, as the outbox does. */
        *e = (struct inflight){
            .pid = e->pid, .qos = 2, .state = INFL_WAIT_COMP, .retain = e->retain};
        return 0;
    }
    size_t i = (size_t)(e - st->infl);
    memmove(e, e + 1, (st->ninfl - i - 1) * sizeof(*e));
    st->ninfl--;
    return 0;
}

static int qos2(struct replay *r, struct session_state *st, const struct record *rec)
{
    uint32_t i = 0;
    while (i < st->nqos2 && st->qos2_in[i] != rec->pid)
        i++;
    if (rec->type == RECORD_QOS2_DEL) {
        if (i == st->nqos2)
            return fail(r, "qos2 del of packet id %u, not held", rec->pid);
        st->qos2_in[i] = st->qos2_in[--st->nqos2]; /* as the outbox does */
        return 0;
    }
    if (i < st->nqos2)
        return fail(r, "qos2 add of packet id %u, already held", rec->pid);
    if (st->nqos2 == st->qos2_cap) {
        uint32_t cap = st->qos2_cap ? 2u * st->qos2_cap : 4u;
        if (cap > UINT16_MAX)
            cap = UINT16_MAX;
        uint16_t *v = realloc(st->qos2_in, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        st->qos2_in = v;
        st->qos2_cap = (uint16_t)cap;
    }
    st->qos2_in[st->nqos2++] = rec->pid;
    return 0;
}

/* An INFL_DEL of rec->pid, then an INFL_FROM_QUEUE of rec->pid2. */
static int infl_del_next(struct replay *r, struct session_state *st, const struct record *rec)
{
    struct record one = *rec;
    one.type = RECORD_INFL_DEL;
    int rc = infl_end(r, st, &one);
    if (rc)
        return rc;
    one.type = RECORD_INFL_FROM_QUEUE;
    one.pid = rec->pid2;
    return infl_from_queue(r, st, &one);
}

static void session_del(struct replay *r, struct rsess *rs)
{
    if (rs->no)
        u64set_del(&r->nos, rs->no);
    tab_unlink(&r->sessions, &rs->node);
    replay_state_fini(&rs->st);
    free(rs);
}

static int session_record(struct replay *r, struct rsess *rs, const struct record *rec)
{
    struct session_state *st = &rs->st;
    switch (rec->type) {
    case RECORD_SESSION_DEL:
        session_del(r, rs);
        return 0;
    case RECORD_SUB_PUT:
        return sub_put(r, st, rec);
    case RECORD_SUB_DEL:
        return sub_del(r, st, rec);
    case RECORD_QUEUE_PUSH:
        return queue_push(r, st, rec);
    case RECORD_QUEUE_POP:
        return queue_pop(r, st);
    case RECORD_INFL_PUT:
        return infl_put(r, st, rec);
    case RECORD_INFL_FROM_QUEUE:
        return infl_from_queue(r, st, rec);
    case RECORD_INFL_REC:
    case RECORD_INFL_DEL:
        return infl_end(r, st, rec);
    case RECORD_INFL_DEL_NEXT:
        return infl_del_next(r, st, rec);
    default: /* QOS2_ADD, QOS2_DEL */
        return qos2(r, st, rec);
    }
}

/* ---- retained ---- */

static int retained_record(struct replay *r, const struct record *rec)
{
    long ti = tenant_find(r, rec->tenant, rec->tenant_len, true);
    if (ti < 0)
        return -ENOMEM;
    uint64_t h = key_hash(rec->tenant, rec->tenant_len, rec->m.topic, rec->m.topic_len);
    struct rret *x = retained_find(r, (uint32_t)ti, rec, h);
    if (x && x->stamp > rec->m.retain_stamp)
        return 0; /* a later update of the topic is already here */
    struct msg *m = NULL;
    if (rec->type == RECORD_RETAINED_PUT && !(m = msg_from(r, &rec->m, false)))
        return -ENOMEM;
    if (!x) {
        x = malloc(sizeof(*x) + rec->m.topic_len);
        if (!x) {
            msg_release(m);
            return -ENOMEM;
        }
        *x = (struct rret){.node.hash = h, .tenant = (uint32_t)ti, .topic_len = rec->m.topic_len};
        memcpy(x->topic, rec->m.topic, rec->m.topic_len);
        if (tab_insert(&r->retained, &x->node) < 0) {
            free(x);
            msg_release(m);
            return -ENOMEM;
        }
    }
    r->nretained += (m != NULL) - (x->m != NULL);
    msg_release(x->m);
    x->m = m; /* a clear stays as a tombstone: an older put must not revive the topic */
    x->stamp = rec->m.retain_stamp;
    return 0;
}

/* ---- the replay ---- */

struct replay *replay_create(const struct replay_opts *o)
{
    struct replay *r = calloc(1, sizeof(*r));
    if (r)
        r->o = *o;
    return r;
}

/* Free every node of t with free_node. */
static void tab_clear(struct rtab *t, void (*free_node)(struct rnode *))
{
    for (uint32_t i = 0; t->b && i <= t->mask; i++) {
        while (t->b[i]) {
            struct rnode *n = t->b[i];
            t->b[i] = n->next;
            free_node(n);
        }
    }
    free(t->b);
    *t = (struct rtab){0};
}

static void rsess_free(struct rnode *n)
{
    struct rsess *rs = (struct rsess *)n;
    replay_state_fini(&rs->st);
    free(rs);
}

static void rret_free(struct rnode *n)
{
    struct rret *x = (struct rret *)n;
    msg_release(x->m);
    free(x);
}

void replay_destroy(struct replay *r)
{
    if (!r)
        return;
    tab_clear(&r->sessions, rsess_free);
    tab_clear(&r->retained, rret_free);
    u64set_fini(&r->ingress);
    u64set_fini(&r->nos);
    for (uint32_t i = 0; i < r->ntenants; i++)
        free(r->tenants[i].name);
    free(r->tenants);
    free(r);
}

/* Keys are kept by every shard that delivered the flow's message, each in
 * its own log: a put repeated (several logs replayed into one) or a del
 * of a key not put (its put compacted away elsewhere) is no contradiction. */
static int ingress_record(struct replay *r, const struct record *rec)
{
    if (rec->type == RECORD_INGRESS_DEL) {
        u64set_del(&r->ingress, rec->key);
        return 0;
    }
    if (u64set_find(&r->ingress, rec->key))
        return 0;
    return u64set_put(&r->ingress, rec->key, 0) < 0 ? -ENOMEM : 0;
}

void replay_next_log(struct replay *r)
{
    u64set_fini(&r->nos);
    for (uint32_t i = 0; r->sessions.b && i <= r->sessions.mask; i++)
        for (struct rnode *n = r->sessions.b[i]; n; n = n->next)
            ((struct rsess *)n)->no = 0;
}

/* The session a record other than a put is about, or NULL. */
static struct rsess *session_named(struct replay *r, const struct record *rec)
{
    return rec->no ? numbered(r, rec->no) : rsess_find(r, rec);
}

int replay_apply(struct replay *r, uint16_t format, uint8_t type, const void *bytes, size_t len)
{
    r->err[0] = '\0';
    if (type == 0 || type > RECORD_TYPE_MAX)
        return fail(r, "unknown record type %u (%zu bytes)", type, len);
    struct record rec;
    if (record_decode(format, type, bytes, len, &rec) < 0)
        return fail(r, "malformed %s record (%zu bytes)", type_names[type], len);
    if (type == RECORD_SNAP_BEGIN)
        r->epoch++; /* sessions are written whole again from here */
    if (type == RECORD_SNAP_BEGIN || type == RECORD_SNAP_END)
        return 0;
    if (type == RECORD_INGRESS_PUT || type == RECORD_INGRESS_DEL)
        return ingress_record(r, &rec);
    if (type == RECORD_RETAINED_PUT || type == RECORD_RETAINED_CLEAR)
        return retained_record(r, &rec);
    if (type == RECORD_SESSION_PUT || type == RECORD_SESSION_PUT_AT)
        return session_put(r, &rec);
    struct rsess *rs = session_named(r, &rec);
    if (!rs && type == RECORD_SESSION_DEL && r->epoch) {
        /* The end of a session the snapshot had not reached (its records
         * are before SNAP_BEGIN, where this replay did not start). */
        return 0;
    }
    if (!rs) {
        if (r->o.skip_unknown) {
            r->skipped++;
            return 0;
        }
        if (rec.no)
            return fail(r, "%s record for session number %u, never put", type_names[type], rec.no);
        return fail(r, "%s record for session %.*s of tenant %.*s, never put", type_names[type],
                    (int)rec.client_id_len, rec.client_id, (int)rec.tenant_len, rec.tenant);
    }
    return session_record(r, rs, &rec);
}

uint32_t replay_ingress(const struct replay *r)
{
    return r->ingress.n;
}

const char *replay_error(const struct replay *r)
{
    return r->err;
}

uint64_t replay_skipped(const struct replay *r)
{
    return r->skipped;
}

uint32_t replay_sessions(const struct replay *r)
{
    return r->sessions.n;
}

uint32_t replay_retained(const struct replay *r)
{
    return r->nretained;
}

/* The run-time id of tenant index ti, asked once. */
static int tenant_id(struct replay *r, uint32_t ti, replay_tenant_fn tenant, void *ctx)
{
    struct rtenant *rt = &r->tenants[ti];
    if (rt->id < 0)
        rt->id = tenant(ctx, rt->name, rt->len);
    return rt->id;
}

/* Hand on and free every node of t (hand returns 0 or -errno; after the
 * first error the rest are only freed). */
static int tab_drain(struct replay *r, struct rtab *t,
                     int (*hand)(struct replay *, struct rnode *, void *), void *arg,
                     void (*free_node)(struct rnode *))
{
    int rc = 0;
    for (uint32_t i = 0; t->b && i <= t->mask; i++) {
        while (t->b[i]) {
            struct rnode *n = t->b[i];
            t->b[i] = n->next;
            t->n--;
            if (rc == 0 && hand)
                rc = hand(r, n, arg);
            free_node(n);
        }
    }
    free(t->b);
    *t = (struct rtab){0};
    return rc;
}

struct finish {
    struct shard *s;
    const struct store_sink *sink;
    replay_tenant_fn tenant;
    void *ctx;
};

static int hand_session(struct replay *r, struct rnode *n, void *arg)
{
    struct finish *f = arg;
    struct rsess *rs = (struct rsess *)n;
    int id = tenant_id(r, rs->tenant, f->tenant, f->ctx);
    if (id < 0)
        return id;
    if (rs->ran_out && !rs->st.will)
        return 0; /* it ended while the broker was down (session_put) */
    struct session_state st = rs->st;
    memset(&rs->st, 0, sizeof(rs->st)); /* the sink's now */
    return f->sink->session(f->s, (uint16_t)id, &st);
}

static int hand_retained(struct replay *r, struct rnode *n, void *arg)
{
    struct finish *f = arg;
    struct rret *x = (struct rret *)n;
    if (!x->m)
        return 0; /* a clear: nothing to hand */
    int id = tenant_id(r, x->tenant, f->tenant, f->ctx);
    if (id < 0)
        return id;
    struct msg *m = x->m;
    x->m = NULL;
    r->nretained--;
    return f->sink->retained(f->s, (uint16_t)id, m);
}

struct hand_key {
    struct shard *s;
    const struct store_sink *sink;
    int rc;
};

static void hand_ingress(uint64_t key, uint64_t value, void *arg)
{
    struct hand_key *h = arg;
    (void)value;
    if (h->rc == 0 && h->sink->ingress)
        h->rc = h->sink->ingress(h->s, key);
}

int replay_finish(struct replay *r, struct shard *s, const struct store_sink *sink,
                  replay_tenant_fn tenant, void *ctx)
{
    struct hand_key h = {s, sink, 0};
    u64set_walk(&r->ingress, hand_ingress, &h);
    u64set_fini(&r->ingress);
    if (h.rc < 0)
        return h.rc;
    struct finish f = {s, sink, tenant, ctx};
    u64set_fini(&r->nos);
    int rc = tab_drain(r, &r->sessions, hand_session, &f, rsess_free);
    int rc2 = tab_drain(r, &r->retained, rc ? NULL : hand_retained, &f, rret_free);
    r->nretained = 0;
    return rc ? rc : rc2;
}
