/*
 * control_sessions: the admin API's sessions (GET .../sessions, one
 * session, DELETE one). A page is gathered from every shard, each reading
 * its tenant's sessions in id order from `after` (control_walk: at most
 * [admin] page_budget looked at); one session and a delete go to the
 * client id's home shard, where its session lives. The answers run on the shard's thread and touch
 * only that shard's sessions; the ops run on the admin thread (control.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/conn.h"
#include "broker/control.h"
#include "broker/control_req.h"
#include "broker/shard.h"
#include "mqtt/codec.h"
#include "session/session.h"

/* A session the page's query selects (its range is control_walk's). */
static bool sess_selects(const struct session *ss, const struct control_req *r)
{
    return !r->offline || !ss->client;
}

/* A session's subscriptions (filter, QoS, options) into out->subs. 0 or
 * -ENOMEM. */
static int subs_fill(const struct session *ss, struct admin_session *out)
{
    if (!ss->st.nsubs)
        return 0;
    out->subs = calloc(ss->st.nsubs, sizeof(*out->subs));
    if (!out->subs)
        return -ENOMEM;
    for (uint32_t i = 0; i < ss->st.nsubs; i++) {
        const struct sess_sub *sub = ss->st.subs[i];
        char *f = malloc((size_t)sub->len + 1);
        if (!f)
            return -ENOMEM; /* the entries so far are freed with out */
        memcpy(f, sub->filter, sub->len);
        f[sub->len] = '\0';
        out->subs[i] = (struct admin_sub){
            .filter = f,
            .len = sub->len,
            .qos = sub->qos,
            .no_local = (sub->opts & SUB_NO_LOCAL) != 0,
            .retain_as_published = (sub->opts & SUB_RETAIN_AS_PUBLISHED) != 0,
            .retain_handling = sub_opts_retain_handling(sub->opts),
            .subid = sub->subid,
        };
    }
    return 0;
}

/* One session's fields into *out (its id copied; subscriptions too when
 * `subs`). 0 or -ENOMEM (out is then left for admin_session_fini). */
static int session_fill(struct shard *s, const struct session *ss, bool subs,
                        struct admin_session *out)
{
    const struct session_state *st = &ss->st;
    out->id = control_id_dup(st->client_id, st->client_id_len);
    if (!out->id)
        return -ENOMEM;
    out->id_len = st->client_id_len;
    out->connected = ss->client != NULL;
    out->expiry_s = st->expiry_s == SESSION_EXPIRY_NEVER ? ADMIN_EXPIRY_NEVER : st->expiry_s;
    uint64_t at = ss->client ? 0 : session_expires_at_ms(ss);
    out->expires_in_ms = !at ? -1 : at > s->now_ms ? (int64_t)(at - s->now_ms) : 0;
    out->subscriptions = st->nsubs;
    out->inflight = st->ninfl;
    out->queued = st->qlen;
    return subs ? subs_fill(ss, out) : 0;
}

/* The page's sessions of this shard, in id order: at most `cap`
 * (control_walk's bounds). */
static void answer_page(struct shard *s, struct tenant *t, struct control_req *r)
{
    uint32_t n = control_walk(t, r, sess_selects, s->cfg->admin_page_budget);
    for (uint32_t i = 0; !r->err && i < n; i++) {
        r->n = i + 1; /* counted before filled: a half-filled entry is freed too */
        if (session_fill(s, r->heap[i], false, &r->sv[i]) < 0) {
            r->err = -ENOMEM;
            break;
        }
    }
}

/* End the session: a connected one with its connection, as the kick with
 * session=delete does (MQTT 5.0 4.13.2: DISCONNECT 0x98 first), an
 * offline one now. */
static void session_del(struct shard *s, struct session *ss)
{
    struct conn *c = ss->client ? conn_of_stream(ss->client) : NULL;
    if (!c) {
        session_delete(s, ss);
        return;
    }
    session_end_with_connection(ss);
    conn_close_reason(s, c, CLOSE_ADMIN, MQTT_RC_ADMINISTRATIVE_ACTION, "administrative action");
}

void control_answer_sessions(struct shard *s, struct tenant *t, struct control_req *r)
{
    if (r->kind == CONTROL_SESS_PAGE) {
        if (t)
            answer_page(s, t, r);
        return;
    }
    struct session *ss = t ? session_find(t, r->key, r->prefix_len) : NULL;
    if (!ss) {
        r->err = -ENOENT;
        return;
    }
    if (r->kind == CONTROL_SESS_DEL) {
        session_del(s, ss);
        return;
    }
    r->n = 1;
    r->err = session_fill(s, ss, true, &r->sv[0]);
}

/* ---- on the admin thread ---------------------------------------------------- */

static void session_entry_key(const void *e, const uint8_t **key, uint16_t *len)
{
    const struct admin_session *x = e;
    *key = (const uint8_t *)x->id;
    *len = x->id_len;
}

static int session_entry_cmp(const void *a, const void *b)
{
    const struct admin_session *x = a, *y = b;
    return control_key_cmp((const uint8_t *)x->id, x->id_len, (const uint8_t *)y->id, y->id_len);
}

static void *session_entries(struct control_req *r)
{
    return r->sv;
}

static void session_entry_fini(void *e)
{
    admin_session_fini(e);
}

static const struct control_entries session_page = {sizeof(struct admin_session), session_entries,
                                                    session_entry_key, session_entry_cmp,
                                                    session_entry_fini};

/* The shards' pages into one of at most `limit`. 0 or -errno. */
static int merge(struct broker *b, struct control_req **reqs, uint32_t limit,
                 struct admin_session_page *out)
{
    struct control_page p;
    int rc = control_merge(b, reqs, &session_page, limit, &p);
    if (rc == 0)
        *out = (struct admin_session_page){p.v, p.n, p.more, p.next, p.next_len};
    return rc;
}

int control_sessions(void *arg, const char *tenant, const struct admin_session_query *sq,
                     struct admin_session_page *out)
{
    struct broker *b = arg;
    const struct admin_client_query *q = &sq->q;
    int id = control_tenant(b, tenant);
    if (id < 0)
        return id;
    struct control_req *reqs[CONFIG_MAX_SHARDS] = {0};
    int err = 0;
    for (uint32_t i = 0; !err && i < b->nshards; i++) {
        reqs[i] = control_req_create(CONTROL_SESS_PAGE, (uint16_t)id, q->limit, q->prefix,
                                     q->prefix_len, q->after, q->after_len);
        err = reqs[i] ? 0 : -ENOMEM;
        if (reqs[i])
            reqs[i]->offline = sq->offline;
    }
    if (!err)
        err = control_ask(b, reqs);
    if (!err)
        err = merge(b, reqs, q->limit, out);
    for (uint32_t i = 0; i < b->nshards; i++)
        control_req_put(reqs[i]);
    return err;
}

int control_session(void *arg, const char *tenant, const char *id, size_t len,
                    struct admin_session *out)
{
    struct control_req *r;
    int err = control_ask_home(arg, CONTROL_SESS_ONE, tenant, id, len, false, &r);
    if (err < 0)
        return err;
    *out = r->sv[0];
    r->n = 0; /* moved */
    control_req_put(r);
    return 0;
}

int control_session_delete(void *arg, const char *tenant, const char *id, size_t len)
{
    struct control_req *r;
    int err = control_ask_home(arg, CONTROL_SESS_DEL, tenant, id, len, false, &r);
    if (err == 0)
        control_req_put(r);
    return err;
}
