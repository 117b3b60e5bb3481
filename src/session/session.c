/*
 * session: the life of a session, from the CONNECT that creates or resumes
 * it to the end of its expiry (see session.h). Its other jobs have their
 * own files: the registry (registry.c), the outbox
 * (outbox.c) and the subscriptions (subs.c).
 *
 * Runs on the owning shard's thread only. Owns the session object (slab),
 * its client id and will, and the timer of an offline session. A session
 * created, changed (expiry, will) or ended is told to the shard's store
 * (store.h); one freed at shutdown is not, since it has not ended.
 */
#include "session/session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/slab.h"
#include "session/msg.h"
#include "session/store.h"
#include "shard/shard.h"

/* One per connection: 16 more bytes here are 16 more per connection. It
 * was 176 until the id order's two links (idtree.h). */
_Static_assert(sizeof(struct session) <= 192, "struct session grew past 192 bytes");

/* Deadlines of an offline session: the will (after its delay) and the end
 * of the session (after its expiry). Exists only while one is pending. */
struct session_timer {
    struct wheel_entry e;
    struct session *ss;
    uint64_t will_at_ms;   /* 0: no will pending */
    uint64_t expire_at_ms; /* 0: never */
};

static void timer_drop(struct session *ss)
{
    if (ss->timer) {
        wheel_remove(&ss->timer->e);
        free(ss->timer);
        ss->timer = NULL;
    }
}

/* Free the session and all it holds (shutdown, or after session_end). */
static void session_destroy(struct shard *s, struct session *ss)
{
    reg_remove(ss->tenant, ss);
    ss->tenant->ctr.sessions--;
    s->session_ops->orphan(ss);
    timer_drop(ss);
    subs_release(s, ss);
    outbox_release(s, ss); /* after subs_release: see there */
    msg_release(ss->st.will);
    s->session_ops->free_reads(ss->reads);
    free(ss->st.client_id);
    slab_free(s->session_slab, ss);
}

/* The session ends (expiry, Clean Start, a connection ending a session of
 * expiry 0): the store forgets it. */
static void session_end(struct shard *s, struct session *ss)
{
    store_session_del(s, ss);
    session_destroy(s, ss);
}

/* A new, empty session of client_id (hash h), registered; NULL on OOM. */
static struct session *session_create(struct shard *s, struct tenant *t, const uint8_t *client_id,
                                      size_t len, uint32_t h)
{
    if (reg_reserve(t) < 0)
        return NULL;
    struct session *ss = slab_alloc(s->session_slab);
    if (!ss)
        return NULL;
    ss->st.client_id = malloc(len ? len : 1);
    if (!ss->st.client_id) {
        slab_free(s->session_slab, ss);
        return NULL;
    }
    memcpy(ss->st.client_id, client_id, len);
    ss->st.client_id_len = (uint16_t)len;
    ss->tenant = t;
    t->ctr.sessions++;
    s->session_ops->event(s, RINGMQ_EV_SESSION_CREATED, t, ss, 0, 0, NULL, 0);
    reg_link(t, ss, h);
    return ss;
}

struct session *session_attach(struct shard *s, struct tenant *t, struct stream *client,
                               const uint8_t *client_id, size_t len, const struct session_opts *o,
                               bool *present)
{
    uint32_t h = reg_hash(t, client_id, len);
    struct session **pp = reg_find(t, h, client_id, len);
    if (pp && (*pp)->client) {
        /* MQTT-3.1.4-2: the existing client is disconnected. Closing it
         * detaches (and, with expiry 0, destroys) its session. */
        s->session_ops->take_over(s, *pp);
        pp = reg_find(t, h, client_id, len);
    }
    struct session *ss = pp ? *pp : NULL;
    if (ss && o->clean_start) {
        /* MQTT-3.1.2-6 / MQTT-3.1.2-4: Clean Start discards any previous
         * state (a pending will is published first, as the session ends). */
        if (ss->st.will && ss->timer && ss->timer->will_at_ms)
            session_publish_will(s, ss);
        session_end(s, ss);
        ss = NULL;
    }
    *present = ss != NULL;
    if (!ss && !(ss = session_create(s, t, client_id, len, h))) {
        msg_release(o->will);
        return NULL;
    }
    /* A reconnection within the will delay cancels the old will
     * (MQTT-3.1.3-9): the new CONNECT's will replaces it. */
    timer_drop(ss);
    ss->st.expiry_s = o->expiry_s;
    ss->st.will_delay_s = o->will_delay_s;
    msg_release(ss->st.will);
    ss->st.will = o->will;
    store_session_put(s, ss);
    ss->window = o->window;
    ss->client = client;
    ss->slow = false; /* a new connection has nothing unsent */
    /* Reads through the subscriptions it resumes are judged as the client
     * now connected. */
    if (ss->reads)
        s->session_ops->bind_reads(s, ss);
    return ss;
}

void session_publish_will(struct shard *s, struct session *ss)
{
    struct msg *will = ss->st.will;
    ss->st.will = NULL;
    if (!will)
        return;
    /* Before the will changes below (store.h: read a will during the put
     * that names it). */
    store_session_put(s, ss);
    /* Sole owner until published: its expiry still holds the interval
     * and starts counting now (connect.c). */
    if (will->expires_at_ms)
        will->expires_at_ms += s->now_ms;
    s->session_ops->publish_will(s, ss, will);
}

static void timer_arm(struct shard *s, struct session *ss)
{
    struct session_timer *t = ss->timer;
    uint64_t at = t->expire_at_ms;
    if (t->will_at_ms && (!at || t->will_at_ms < at))
        at = t->will_at_ms;
    wheel_add(s->session_wheel, &t->e, at);
}

void session_on_timer(struct wheel_entry *e, void *arg)
{
    struct shard *s = arg;
    struct session_timer *t = (struct session_timer *)e;
    struct session *ss = t->ss;
    if (t->will_at_ms && s->now_ms >= t->will_at_ms) {
        t->will_at_ms = 0;
        session_publish_will(s, ss);
    }
    if (t->expire_at_ms && s->now_ms >= t->expire_at_ms) {
        /* MQTT-3.1.2-23 (5.0): the session ends when its interval passes,
         * and a will still waiting goes out then (MQTT-3.1.3-9). */
        session_publish_will(s, ss);
        s->session_ops->event(s, RINGMQ_EV_SESSION_EXPIRED, ss->tenant, ss, 0, 0, NULL, 0);
        session_end(s, ss);
        return;
    }
    if (t->will_at_ms || t->expire_at_ms)
        timer_arm(s, ss);
    else
        timer_drop(ss);
}

void session_end_with_connection(struct session *ss)
{
    ss->st.expiry_s = 0;
}

void session_delete(struct shard *s, struct session *ss)
{
    /* MQTT-3.1.3-9: a will still waiting is published as the session ends. */
    if (ss->st.will && ss->timer && ss->timer->will_at_ms)
        session_publish_will(s, ss);
    session_end(s, ss);
}

uint64_t session_expires_at_ms(const struct session *ss)
{
    return ss->timer ? ss->timer->expire_at_ms : 0;
}

uint64_t session_will_at_ms(const struct session *ss)
{
    return ss->timer ? ss->timer->will_at_ms : 0;
}

/* session_detach; `will_later`: a will without a delay waits for the
 * timers too (session_restore). */
static void detach(struct shard *s, struct session *ss, bool send_will, bool will_later)
{
    ss->client = NULL;
    outbox_trim(ss);
    s->session_ops->orphan(ss);
    /* MQTT-3.1.3-9: the will waits for its delay unless the session ends
     * first; with expiry 0 it ends now. Restored with expiry 0, it ran out
     * while the broker was down: it ends at the first tick, its will first. */
    bool ran_out = will_later && ss->st.expiry_s == 0;
    bool delay = ss->st.will && send_will && (ss->st.will_delay_s || will_later) &&
                 (ss->st.expiry_s || ran_out);
    if (send_will && !delay)
        session_publish_will(s, ss);
    if (!delay) {
        msg_release(ss->st.will);
        ss->st.will = NULL;
    }
    if (ss->st.expiry_s == 0 && !ran_out) {
        session_end(s, ss);
        return;
    }
    /* The will may be gone, and a DISCONNECT may have changed the expiry
     * (connect.c writes it): put after the timer, whose deadlines the
     * store keeps (the time the broker is down counts). */
    if (delay || ss->st.expiry_s != SESSION_EXPIRY_NEVER) {
        struct session_timer *t = calloc(1, sizeof(*t));
        if (!t) {
            /* Without a timer the session could never end: end it now. */
            if (delay)
                session_publish_will(s, ss);
            session_end(s, ss);
            return;
        }
        t->ss = ss;
        ss->timer = t;
        if (delay)
            t->will_at_ms = s->now_ms + (uint64_t)ss->st.will_delay_s * 1000u;
        if (ss->st.expiry_s != SESSION_EXPIRY_NEVER)
            t->expire_at_ms = s->now_ms + (uint64_t)ss->st.expiry_s * 1000u;
        timer_arm(s, ss);
    }
    store_session_put(s, ss);
}

void session_detach(struct shard *s, struct session *ss, bool send_will)
{
    detach(s, ss, send_will, false);
}

int session_restore(struct shard *s, struct tenant *t, struct session_state *st)
{
    uint32_t h = reg_hash(t, st->client_id, st->client_id_len);
    if (reg_find(t, h, st->client_id, st->client_id_len))
        return -EEXIST;
    if (reg_reserve(t) < 0)
        return -ENOMEM;
    struct session *ss = slab_alloc(s->session_slab);
    if (!ss)
        return -ENOMEM;
    ss->tenant = t;
    ss->st = *st;
    memset(st, 0, sizeof(*st)); /* the session's now */
    t->ctr.sessions++;
    reg_link(t, ss, h);
    if (subs_restore(s, ss) < 0)
        return -ENOMEM; /* start-up fails; the shard frees what is registered */
    /* As a connection lost now: the will waits for its delay, the expiry
     * counts from now. A will without a delay goes out at the first tick
     * after start-up: published while the shards load, it would miss the
     * sessions restored after it (MQTT-3.1.2-8). */
    detach(s, ss, true, true);
    return 0;
}

void session_destroy_all(struct shard *s, struct tenant *t)
{
    if (!t->reg)
        return;
    t->reg_root = NULL; /* every session goes: no rebalancing on the way */
    for (uint32_t i = 0; i <= t->reg_mask; i++) {
        while (t->reg[i])
            session_destroy(s, t->reg[i]);
    }
    free(t->reg);
    t->reg = NULL;
}
