/*
 * connect: CONNECT (answered with the CONNACK of connack.c), enhanced
 * authentication (AUTH), and DISCONNECT from the client, for MQTT 3.1,
 * 3.1.1 and 5.0.
 *
 * Runs on the connection's shard. A CONNECT whose client id lives on
 * another shard moves the connection there first (conn_relocate), so
 * everything after that point, authentication included, happens on the
 * session's home shard.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/acl.h"
#include "broker/alias.h"
#include "broker/conn.h"
#include "broker/connack.h"
#include "broker/observe.h"
#include "broker/protocol.h"
#include "broker/route.h"
#include "broker/shard.h"
#include "core/log.h"
#include "mqtt/codec.h"
#include "mqtt/props.h"
#include "mqtt/topic.h"
#include "net/xprt_info.h"
#include "plugin/host.h"
#include "session/msg.h"
#include "session/session.h"
#include "session/store.h"
#include "tenant/usage.h"

/* The built-in test method's exchange (config mqtt.test_auth_method). */
static const char auth_hello[] = "hello";
static const char auth_challenge[] = "challenge";
static const char auth_response[] = "response";

static bool bytes_eq(struct mqtt_bytes b, const char *s)
{
    size_t n = strlen(s);
    return b.len == n && memcmp(b.p, s, n) == 0;
}

/* ---- refusing a CONNECT ---- */

/* Why a CONNECT is refused: the CONNACK's code for a 3.x client (a 3.1.1
 * return code) and for a 5.0 client (a reason code), and the text for the
 * log and the 5.0 Reason String (borrowed). */
struct refusal {
    uint8_t v3, v5;
    const char *why;
};

/* The one way a CONNECT is refused: log, CONNACK with the code for the
 * client's version, close. Returns PROTO_STOP. */
static enum proto_result connect_refuse(struct shard *s, struct conn *c, const struct refusal *no)
{
    log_ratelimited(LOG_LEVEL_INFO, "connection %llu: CONNECT refused: %s",
                    (unsigned long long)c->id, no->why);
    struct connack_info ci = {.code = c->v5 ? no->v5 : no->v3, .reason = no->why};
    connack_write(s, c, &ci);
    conn_close(s, c, CLOSE_REFUSED);
    return PROTO_STOP;
}

/* ---- AUTH ---- */

static void write_auth(struct shard *s, struct conn *c, uint8_t reason, const char *data)
{
    struct mqtt_props pr;
    memset(&pr, 0, sizeof(pr));
    mqtt_props_set(&pr, MQTT_PROP_AUTH_METHOD);
    pr.auth_method = (struct mqtt_bytes){c->v5->auth_method, c->v5->auth_method_len};
    if (data) {
        mqtt_props_set(&pr, MQTT_PROP_AUTH_DATA);
        pr.auth_data = (struct mqtt_bytes){(const uint8_t *)data, strlen(data)};
    }
    conn_write_v5(s, c, MQTT_AUTH << 4, &reason, 1, &pr);
}

/* AUTH with the method, the binary data (len 0: no data) and the User
 * Properties of a plugin's answer. */
static void write_auth_result(struct shard *s, struct conn *c, uint8_t reason,
                              const struct ringmq_auth_result *r)
{
    struct mqtt_props pr;
    memset(&pr, 0, sizeof(pr));
    mqtt_props_set(&pr, MQTT_PROP_AUTH_METHOD);
    pr.auth_method = (struct mqtt_bytes){c->v5->auth_method, c->v5->auth_method_len};
    if (r->auth_data.len) {
        mqtt_props_set(&pr, MQTT_PROP_AUTH_DATA);
        pr.auth_data = (struct mqtt_bytes){r->auth_data.p, r->auth_data.len};
    }
    /* MQTT-3.1.2-29: a client that asked for no problem information gets
     * User Properties only on PUBLISH, CONNACK and DISCONNECT. */
    struct mqtt_user_prop users[IDENTITY_KV_MAX];
    size_t n = c->v5->problem_info
                   ? connack_user_props(r->user_properties, r->n_user_properties, users)
                   : 0;
    conn_write_v5_users(s, c, MQTT_AUTH << 4, &reason, 1, &pr, users, n);
}

/* ---- CONNECT ---- */

/* An id unique on this broker whose home is this shard (so that an
 * assigned id never needs to move). */
static size_t assign_client_id(struct shard *s, struct tenant *t, char *buf, size_t cap)
{
    for (;;) {
        int n = snprintf(buf, cap, "ringmq-%u-%llx", s->id, (unsigned long long)++s->next_conn_id);
        if (shard_home(s->broker, t->id, (const uint8_t *)buf, (size_t)n) == s->id)
            return (size_t)n;
    }
}

/* The will as a message. Its properties are the Will Properties less the
 * Will Delay Interval, which is not a PUBLISH property; its Message Expiry
 * Interval counts from publication (protocol_publish_will), so until then
 * expires_at_ms holds the interval in milliseconds. */
static struct msg *will_create(const struct mqtt_connect *ck, const struct mqtt_props *wp,
                               const void *origin)
{
    uint8_t props[1024];
    size_t plen = 0;
    uint8_t *heap = NULL;
    const uint8_t *pp = props;
    if (ck->will_props.len) {
        if (ck->will_props.len > sizeof(props)) {
            heap = malloc(ck->will_props.len);
            if (!heap)
                return NULL;
            pp = heap;
        }
        uint8_t *w = heap ? heap : props;
        struct mqtt_props_iter it;
        struct mqtt_prop pr;
        mqtt_props_iter_init_raw(&it, ck->will_props.p, ck->will_props.len);
        while (mqtt_props_iter_next(&it, &pr)) {
            if (pr.id == MQTT_PROP_WILL_DELAY)
                continue;
            memcpy(w + plen, pr.raw.p, pr.raw.len);
            plen += pr.raw.len;
        }
    }
    struct msg_spec sp = {
        .topic = ck->will_topic.p,
        .topic_len = ck->will_topic.len,
        .payload = ck->will_payload.p,
        .payload_len = ck->will_payload.len,
        .props = pp,
        .props_len = plen,
        .qos = ck->will_qos,
        .retain = ck->will_retain,
        .origin = origin,
    };
    if (wp && mqtt_props_has(wp, MQTT_PROP_MESSAGE_EXPIRY))
        sp.expires_at_ms = (uint64_t)wp->message_expiry * 1000u;
    struct msg *m = msg_create(&sp);
    free(heap);
    return m;
}

static int connect_v5_setup(struct conn *c, const struct mqtt_props *pr)
{
    if (c->v5)
        return 0; /* second pass after enhanced authentication */
    struct conn_v5 *v = calloc(1, sizeof(*v));
    if (!v)
        return -1;
    c->v5 = v;
    v->problem_info =
        !mqtt_props_has(pr, MQTT_PROP_REQUEST_PROBLEM_INFO) || pr->request_problem_info;
    if (mqtt_props_has(pr, MQTT_PROP_MAXIMUM_PACKET_SIZE))
        v->max_packet_out = pr->maximum_packet_size;
    if (mqtt_props_has(pr, MQTT_PROP_TOPIC_ALIAS_MAXIMUM))
        v->alias_max_out =
            pr->topic_alias_maximum < ALIAS_OUT_LIMIT ? pr->topic_alias_maximum : ALIAS_OUT_LIMIT;
    v->expiry_at_connect = mqtt_props_has(pr, MQTT_PROP_SESSION_EXPIRY) ? pr->session_expiry : 0;
    return 0;
}

/*
 * The keepalive a client is held to, in seconds (0: none), or -1 when a
 * 3.x client must be refused. mqtt.server_keepalive replaces a 5.0
 * client's; otherwise the tenant's max_keepalive caps it, a keepalive of 0
 * (none) counting as over the cap; then min_keepalive raises it. A 5.0
 * client is told the result in Server Keep Alive (*tell, MQTT-3.2.2-21).
 * A 3.x client cannot be told: over the cap it is refused (as mosquitto
 * 2.0.12 and later do), under the minimum it is simply held to it.
 */
static int keepalive_choose(const struct config *cfg, const struct tenant_settings *ts, bool v5,
                            uint16_t asked, bool *tell)
{
    uint32_t ka = asked;
    *tell = false;
    if (v5 && cfg->server_keepalive) {
        ka = cfg->server_keepalive;
        *tell = true;
    } else if (ts->max_keepalive && (ka == 0 || ka > ts->max_keepalive)) {
        if (!v5)
            return -1;
        ka = ts->max_keepalive;
        *tell = true;
    }
    if (ts->min_keepalive && ka < ts->min_keepalive) {
        ka = ts->min_keepalive;
        *tell = v5;
    }
    return (int)ka;
}

/* The session options of an accepted CONNECT (the will aside); true when
 * the Session Expiry Interval granted differs from the one asked for. */
static bool session_opts_for(const struct conn *c, const struct config *cfg,
                             const struct tenant_settings *ts, const struct mqtt_connect *ck,
                             const struct mqtt_props *pr, const struct mqtt_props *wp,
                             struct session_opts *o)
{
    *o = (struct session_opts){.clean_start = ck->clean_start};
    o->window = (uint16_t)cfg->max_inflight;
    bool changed = false;
    if (c->v5) {
        o->expiry_s = c->v5->expiry_at_connect;
        if (o->expiry_s > ts->max_session_expiry) {
            o->expiry_s = ts->max_session_expiry;
            changed = true;
        }
        if (mqtt_props_has(pr, MQTT_PROP_RECEIVE_MAXIMUM) && pr->receive_maximum < o->window)
            o->window = pr->receive_maximum; /* MQTT-3.3.4-7 */
        if (ck->will && mqtt_props_has(wp, MQTT_PROP_WILL_DELAY))
            o->will_delay_s = wp->will_delay;
    } else {
        /* 3.1.1 sessions do not expire by the protocol; the operator's
         * max_session_expiry bounds how long an abandoned one is kept. */
        o->expiry_s = ck->clean_start ? 0 : ts->max_session_expiry;
    }
    if (ts->force_transient && o->expiry_s) {
        o->expiry_s = 0; /* the tenant keeps no sessions: say so (5.0) */
        changed = true;
    }
    return changed;
}

/*
 * A CONNECT on its way through protocol_connect's steps (decode, admit,
 * options, finish), each filling in its part. It lives on
 * protocol_connect's stack and borrows the packet's bytes.
 */
struct connect_req {
    const uint8_t *pkt; /* the CONNECT, `len` bytes */
    size_t len;
    size_t avail; /* bytes of input at pkt: the CONNECT and what followed */
    /* decode */
    struct mqtt_connect ck;
    struct mqtt_props pr, wp; /* CONNECT and Will Properties (5.0; else 0) */
    /* admit */
    struct tenant *t;
    const uint8_t *id; /* the client id, or the one assigned to it */
    size_t id_len;
    bool was_assigned;
    char assigned[48];
    uint16_t keepalive; /* held to, in seconds (0: none) */
    bool tell_keepalive;
    /* options */
    struct session_opts o;
    struct connack_info ci;
    struct connack_props cp; /* 5.0 only */
    /* Set by the step that refuses the CONNECT (which then returns
     * PROTO_STOP); protocol_connect sends the refusal. */
    struct refusal no;
};

/* Refuse rq (see connect_req.no): PROTO_STOP. */
static enum proto_result refused(struct connect_req *rq, uint8_t v3, uint8_t v5, const char *why)
{
    rq->no = (struct refusal){v3, v5, why};
    return PROTO_STOP;
}

/* Keep `len` bytes of input in c->stash, to be handled again (the CONNECT,
 * once authentication is done). False when out of memory. */
static bool stash_keep(struct conn *c, const uint8_t *bytes, size_t len)
{
    c->stash = malloc(sizeof(*c->stash) + len);
    if (!c->stash)
        return false;
    c->stash->len = (uint32_t)len;
    c->stash->off = 0;
    c->stash->cap = (uint32_t)len;
    memcpy(c->stash->data, bytes, len);
    return true;
}

/* Keep the authentication method the client named (every later AUTH must
 * name it, and CONNACK names it: MQTT-4.12.0-5); out of memory it is not
 * kept. */
static void auth_method_keep(struct conn_v5 *v, struct mqtt_bytes method)
{
    v->auth_method = malloc(method.len ? method.len : 1);
    if (v->auth_method) {
        memcpy(v->auth_method, method.p, method.len);
        v->auth_method_len = (uint16_t)method.len;
    }
}

/* Enhanced authentication with the built-in test method. PROTO_OK when
 * the CONNECT may proceed; PROTO_STOP when an AUTH exchange started (the
 * CONNECT kept in c->stash) or the connection is refused (rq->no). */
static enum proto_result connect_auth(struct shard *s, struct conn *c, struct connect_req *rq)
{
    struct conn_v5 *v = c->v5;
    const struct mqtt_props *pr = &rq->pr;
    if (!mqtt_props_has(pr, MQTT_PROP_AUTH_METHOD) || v->auth == AUTH_DONE)
        return PROTO_OK;
    const char *method = s->cfg->test_auth_method;
    if (!method[0] || !bytes_eq(pr->auth_method, method))
        return refused(rq, 0x8C, 0x8C, "unsupported authentication method");
    if (!mqtt_props_has(pr, MQTT_PROP_AUTH_DATA) || !bytes_eq(pr->auth_data, auth_hello))
        return refused(rq, MQTT_RC_BAD_CREDENTIALS, MQTT_RC_BAD_CREDENTIALS,
                       "authentication failed");
    v->auth_method = malloc(pr->auth_method.len);
    /* Keep the CONNECT: it is handled again once the exchange succeeds. */
    bool kept = stash_keep(c, rq->pkt, rq->len);
    if (!v->auth_method || !kept)
        return refused(rq, MQTT_RC_SERVER_UNAVAILABLE, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
    memcpy(v->auth_method, pr->auth_method.p, pr->auth_method.len);
    v->auth_method_len = (uint16_t)pr->auth_method.len;
    v->auth = AUTH_CONNECTING;
    write_auth(s, c, 0x18, auth_challenge);
    return PROTO_STOP;
}

/* ---- the auth plugin ---- */

/* The CONNECT's User Properties for the auth plugin: at most `max` pairs
 * of NUL-terminated strings in users[] (*n of them), copied into one
 * buffer, which is returned for the caller to free after the call. Out of
 * memory: NULL, no pairs. */
static char *auth_user_props(const struct mqtt_props *pr, struct ringmq_kv *users, size_t max,
                             size_t *n)
{
    struct mqtt_props_iter it;
    struct mqtt_user_prop up;
    size_t need = 0;
    *n = 0;
    mqtt_props_iter_init(&it, pr);
    while (mqtt_props_next_user(&it, &up))
        need += up.name.len + up.value.len + 2;
    char *ubuf = malloc(need);
    if (!ubuf)
        return NULL;
    char *w = ubuf;
    mqtt_props_iter_init(&it, pr);
    while (*n < max && mqtt_props_next_user(&it, &up)) {
        users[*n].key = w;
        memcpy(w, up.name.p, up.name.len);
        w += up.name.len;
        *w++ = 0;
        users[*n].value = w;
        memcpy(w, up.value.p, up.value.len);
        w += up.value.len;
        *w++ = 0;
        (*n)++;
    }
    return ubuf;
}

/* What the transport knows of the client (ABI 4 fields of info), borrowed
 * from the stream for the call. */
static void auth_xprt_info(struct shard *s, struct conn *c, struct ringmq_connect_info *info)
{
    info->transport = stream_xprt_name(&s->streams, &c->st);
    const struct xprt_info *x = stream_info(&s->streams, &c->st);
    if (!x)
        return;
    info->tls_from_proxy = x->from_proxy;
    info->tls_version = x->tls_version;
    info->tls_cipher = x->cipher;
    info->tls_sni = x->sni;
    if (!x->cert_verified)
        return;
    info->client_cert_verified = true;
    info->client_cert_subject = x->subject;
    info->client_cert_cn = x->cn;
    info->client_cert_sha256 = x->sha256;
    info->client_cert_san = x->sans;
    info->n_client_cert_san = x->n_sans;
}

/* The tenant the server name c's client asked for binds it to
 * ([listener.NAME] sni.HOST.tenant), or NULL. Only a name this broker's
 * TLS read: the certificate it showed was the one of that name. */
static const char *sni_tenant(struct shard *s, struct conn *c)
{
    const struct xprt_info *x = stream_info(&s->streams, &c->st);
    if (!x || x->from_proxy || !x->sni)
        return NULL;
    const struct listener_slot *ls = &s->broker->lslots[c->st.listener];
    return config_sni_tenant(ls->cfg, ls->ci, x->sni);
}

/* Hand the CONNECT to the auth plugin: the connection stops reading until
 * it answers (conn_on_auth_done), keeping everything read so far. Always
 * PROTO_STOP: handed on (CONN_AUTHENTICATING), or refused (rq->no). */
static enum proto_result start_auth(struct shard *s, struct conn *c, struct connect_req *rq)
{
    const struct mqtt_connect *ck = &rq->ck;
    const struct mqtt_props *pr = &rq->pr;
    struct ringmq_kv users[32];
    char addr[NET_PEER_STRLEN];
    bool has_addr = net_peer_format(&c->st.peer, addr, sizeof(addr)) == 0;
    struct ringmq_connect_info info = {
        .protocol_version = ck->version,
        .client_id = {ck->client_id.p, ck->client_id.len},
        .has_username = ck->has_username,
        .username = {ck->username.p, ck->username.len},
        .has_password = ck->has_password,
        .password = {ck->password.p, ck->password.len},
        .remote_addr = has_addr ? addr : NULL,
        .remote_port = c->st.peer.port,
        .listener = shard_listener(s->broker, c->st.listener)->name,
    };
    auth_xprt_info(s, c, &info);
    char *ubuf = NULL;
    if (c->v5 && pr->user_prop_count) {
        ubuf = auth_user_props(pr, users, 32, &info.n_user_properties);
        info.user_properties = users;
    }
    if (c->v5 && mqtt_props_has(pr, MQTT_PROP_AUTH_METHOD)) {
        info.auth_method = (struct ringmq_bytes){pr->auth_method.p, pr->auth_method.len};
        if (mqtt_props_has(pr, MQTT_PROP_AUTH_DATA))
            info.auth_data = (struct ringmq_bytes){pr->auth_data.p, pr->auth_data.len};
        /* Enhanced authentication: every later AUTH must name this method. */
        free(c->v5->auth_method);
        auth_method_keep(c->v5, pr->auth_method);
    }
    if (!stash_keep(c, rq->pkt, rq->avail)) {
        free(ubuf);
        return refused(rq, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
    }
    c->state = CONN_AUTHENTICATING;
    conn_hold(c); /* the call holds the connection until it is answered */
    int rc = plugin_authenticate(s->port, (uint64_t)(uintptr_t)c, &info);
    free(ubuf);
    if (rc < 0) {
        c->st.ops--;
        c->state = CONN_NEW;
        return refused(rq, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_SERVER_UNAVAILABLE,
                       "authentication unavailable");
    }
    return PROTO_STOP;
}

/* A re-authentication step answered (MQTT 5.0 4.12.1). */
static void reauth_done(struct shard *s, struct conn *c, const struct ringmq_auth_result *r,
                        bool timed_out)
{
    struct conn_v5 *v = c->v5;
    if (r->decision == RINGMQ_AUTH_CONTINUE && !timed_out) {
        write_auth_result(s, c, 0x18, r);
    } else if (r->decision == RINGMQ_AUTH_ALLOW && !timed_out) {
        v->auth = AUTH_DONE;
        write_auth_result(s, c, 0x00, r);
    } else {
        /* MQTT-4.12.1-2: a failed re-authentication ends the connection. */
        conn_close_reason(s, c, CLOSE_PROTOCOL, MQTT_RC_NOT_AUTHORIZED, "re-authentication failed");
    }
}

/* The refusal of a CONNECT the auth plugin did not allow (its Reason
 * String when it gave one), counted as an authentication failure of the
 * global tenant. */
static struct refusal auth_refusal(struct shard *s, const struct ringmq_auth_result *r,
                                   bool timed_out)
{
    /* 3.1.1 return codes and 5.0 reason codes of each refusal. */
    static const struct refusal refusals[] = {
        [RINGMQ_AUTH_BAD_CREDENTIALS] = {MQTT_CONNACK_BAD_CREDENTIALS, MQTT_RC_BAD_CREDENTIALS,
                                         "bad user name or password"},
        [RINGMQ_AUTH_NOT_AUTHORIZED] = {MQTT_CONNACK_NOT_AUTHORIZED, MQTT_RC_NOT_AUTHORIZED,
                                        "not authorized"},
        [RINGMQ_AUTH_BANNED] = {MQTT_CONNACK_NOT_AUTHORIZED, 0x8A, "banned"},
        [RINGMQ_AUTH_BAD_METHOD] = {MQTT_CONNACK_NOT_AUTHORIZED, 0x8C, "bad authentication method"},
        [RINGMQ_AUTH_ERROR] = {MQTT_CONNACK_UNAVAILABLE, MQTT_RC_UNSPECIFIED,
                               "authentication error"},
    };
    enum ringmq_auth_decision dec = r->decision;
    if (dec == RINGMQ_AUTH_CONTINUE)
        dec = RINGMQ_AUTH_BAD_METHOD; /* CONTINUE without a method to go on with */
    if ((size_t)dec >= sizeof(refusals) / sizeof(refusals[0]) || !refusals[dec].why)
        dec = RINGMQ_AUTH_ERROR;
    struct tenant *g = shard_tenant(s, 0);
    if (g) {
        g->ctr.auth_failures++;
        observe_event(s, RINGMQ_EV_AUTH_FAILED, g, NULL, refusals[dec].v5, 0, NULL, 0);
    }
    struct refusal no = refusals[dec];
    if (r->reason)
        no.why = r->reason;
    else if (timed_out)
        no.why = "authentication timed out";
    return no;
}

void conn_on_auth_done(struct shard *s, struct conn *c, const struct plugin_done *d)
{
    const struct ringmq_auth_result *r = &d->r.auth;
    if (c->state == CONN_ACTIVE && c->v5 && c->v5->auth == AUTH_REAUTHING) {
        reauth_done(s, c, r, d->timed_out);
        conn_op_done(s, c);
        return;
    }
    if (c->state != CONN_AUTHENTICATING) {
        conn_op_done(s, c); /* closed meanwhile */
        return;
    }
    c->state = CONN_NEW;
    if (r->decision == RINGMQ_AUTH_CONTINUE && c->v5 && c->v5->auth_method && !d->timed_out) {
        /* MQTT-4.12.0-2: the method goes on with AUTH 0x18; the CONNECT
         * stays in c->stash until the plugin allows. */
        c->v5->auth = AUTH_CONNECTING;
        write_auth_result(s, c, 0x18, r);
        c->st.ops--;
        conn_resume(s, c);
        return;
    }
    if (r->decision != RINGMQ_AUTH_ALLOW) {
        struct refusal no = auth_refusal(s, r, d->timed_out);
        connect_refuse(s, c, &no);
        conn_op_done(s, c);
        return;
    }
    const char *bound = sni_tenant(s, c);
    if (bound && strcmp(bound, r->tenant ? r->tenant : "global") != 0) {
        /* A client of acme.example.com never lands in another tenant,
         * whatever its credentials say. */
        struct ringmq_auth_result no_r = {.decision = RINGMQ_AUTH_NOT_AUTHORIZED,
                                          .reason = "tenant not served under this server name"};
        struct refusal no = auth_refusal(s, &no_r, false);
        connect_refuse(s, c, &no);
        conn_op_done(s, c);
        return;
    }
    int tenant = tenant_dir_intern(&s->broker->tenants, r->tenant ? r->tenant : "global");
    if (tenant < 0 || conn_set_auth(c, (uint16_t)tenant, r) < 0) {
        struct refusal no = {MQTT_CONNACK_UNAVAILABLE, MQTT_RC_SERVER_UNAVAILABLE,
                             tenant == -ENOSPC ? "too many tenants"
                                               : "out of memory, or a user id over 65535 bytes"};
        connect_refuse(s, c, &no);
        conn_op_done(s, c);
        return;
    }
    if (c->v5 && c->v5->auth_method)
        c->v5->auth = AUTH_DONE; /* CONNACK names the method (MQTT-4.12.0-5) */
    struct iobuf *h = c->stash;
    c->stash = NULL;
    c->st.ops--;
    conn_refeed(s, c, h->data, h->len); /* CONNECT again, now with its tenant */
    free(h);
}

void protocol_connect_too_large(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                                const uint8_t *pkt, size_t avail)
{
    /* MQTT 5.0 3.2.2.2: CONNACK 0x95, "the CONNECT packet exceeded the
     * maximum permissible size", only where the bytes at hand show a 5.0
     * client: with the fixed header alone the level is unknown, and 3.1.1
     * has no such code (a CONNACK it cannot parse helps nobody). Either
     * way the connection closes unread (MQTT-4.13.1-1). */
    if (!c->v5 && f->type == MQTT_CONNECT && avail > f->header_len &&
        mqtt_connect_peek_version(pkt + f->header_len, avail - f->header_len) == MQTT_V5) {
        uint8_t *p = conn_reserve(s, c, 5);
        if (p)
            conn_commit(s, c, mqtt_connack_encode(p, MQTT_V5, false, MQTT_RC_PACKET_TOO_LARGE));
    }
    /* A 5.0 client in enhanced authentication gets CONNACK 0x95 here. */
    protocol_violation(s, c, "packet larger than max_connect_size before CONNACK",
                       MQTT_RC_PACKET_TOO_LARGE);
}

/*
 * protocol_connect is four steps: decode (the bytes), admit (may this
 * client connect, here and now: a refusal is one value, rq->no), options
 * (what the client gets: session options, CONNACK, will) and finish
 * (session attached, connection active, CONNACK sent). Each step returns
 * PROTO_OK to go on; protocol_connect sends the refusing CONNACK.
 */

/* decode: the CONNECT's bytes, and from a 5.0 client its properties (its
 * conn_v5 made here; kept from the first pass when the CONNECT comes
 * back after enhanced authentication); sets c->version. PROTO_STOP: a
 * second CONNECT, an unsupported protocol level or a malformed 5.0
 * CONNECT (refused), a malformed 3.x one (closed unanswered), out of
 * memory. */
static enum proto_result connect_decode(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                                        struct connect_req *rq)
{
    if (c->state != CONN_NEW) {
        protocol_violation(s, c, "second CONNECT", MQTT_RC_PROTOCOL_ERROR); /* MQTT-3.1.0-2 */
        return PROTO_STOP;
    }
    struct mqtt_connect *ck = &rq->ck;
    int rc = mqtt_connect_decode(f->flags, rq->pkt + f->header_len, f->body_len, ck);
    if (rc == MQTT_RC_UNSUPPORTED_VERSION) {
        /* MQTT-3.1.2-2: CONNACK 0x01, then close. */
        c->version = MQTT_V311;
        return refused(rq, MQTT_CONNACK_BAD_PROTOCOL, MQTT_CONNACK_BAD_PROTOCOL,
                       "unsupported protocol level");
    }
    c->version = ck->version;
    if (rc == MQTT_OK && ck->version == MQTT_V5) {
        rc = mqtt_props_decode(MQTT_CONNECT, ck->props.p, ck->props.len, &rq->pr);
        if (rc == MQTT_OK && ck->will)
            rc = mqtt_props_decode(MQTT_PROPS_WILL, ck->will_props.p, ck->will_props.len, &rq->wp);
        if (connect_v5_setup(c, &rq->pr) < 0) {
            conn_close(s, c, CLOSE_PEER_GONE);
            return PROTO_STOP;
        }
    }
    if (rc != MQTT_OK) {
        if (c->v5)
            return refused(rq, (uint8_t)rc, (uint8_t)rc, "malformed CONNECT");
        protocol_violation(s, c, "malformed CONNECT", rc);
        return PROTO_STOP;
    }
    return PROTO_OK;
}

/* Which client, on which shard: the connection counted against
 * max_connections, its tenant (the auth plugin's, else the global one),
 * its client id (one assigned when it sent none). A CONNECT whose id lives
 * on another shard moves there with the input that followed it
 * (PROTO_STOP), and comes back to protocol_connect there (c->relocated). */
static enum proto_result connect_identify(struct shard *s, struct conn *c, struct connect_req *rq)
{
    const struct mqtt_connect *ck = &rq->ck;
    if (!conn_count(s, c))
        return refused(rq, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_QUOTA_EXCEEDED,
                       "max_connections reached");
    /* Without an auth plugin, the tenant of the server name it asked for
     * (the same on the home shard: the TLS state moves along). */
    const char *bound = c->auth ? NULL : sni_tenant(s, c);
    int tid = c->auth ? c->auth->tenant : bound ? tenant_dir_intern(&s->broker->tenants, bound) : 0;
    rq->t = tid >= 0 ? shard_tenant(s, (uint16_t)tid) : NULL;
    if (!rq->t)
        return refused(rq, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
    rq->id = ck->client_id.p;
    rq->id_len = ck->client_id.len;
    if (rq->id_len == 0) {
        /* MQTT-3.1.3-7/-8: in 3.1.1 an empty id needs clean session; 3.1
         * has no empty ids; 5.0 allows it either way (MQTT-3.1.3-6). */
        if ((!ck->clean_start && ck->version == MQTT_V311) || ck->version == MQTT_V31)
            return refused(rq, MQTT_CONNACK_ID_REJECTED, MQTT_CONNACK_ID_REJECTED,
                           "empty client id");
        rq->id_len = assign_client_id(s, rq->t, rq->assigned, sizeof(rq->assigned));
        rq->id = (const uint8_t *)rq->assigned;
        rq->was_assigned = true;
    } else if (rq->id_len > s->cfg->max_client_id_len) {
        return refused(rq, MQTT_CONNACK_ID_REJECTED, MQTT_RC_CLIENT_ID_INVALID,
                       "client id too long");
    } else if (!c->relocated) {
        uint32_t home = shard_home(s->broker, rq->t->id, rq->id, rq->id_len);
        if (home != s->id) {
            conn_relocate(s, c, home, rq->pkt, rq->avail);
            return PROTO_STOP;
        }
    }
    return PROTO_OK;
}

/* May it connect, now that its tenant and id are known: the auth plugin's
 * CONNECT permission check (PROTO_WAIT until it answers), then enhanced
 * authentication (the plugin's method named in CONNACK, or the built-in
 * test method's exchange). */
static enum proto_result connect_authorize(struct shard *s, struct conn *c, struct connect_req *rq)
{
    const struct mqtt_props *pr = &rq->pr;
    if (c->auth) {
        /* On the home shard (once: the connection does not move again) and
         * before any session is touched, so a refused client takes nothing
         * over. */
        uint8_t why;
        int v =
            acl_check_connect(s, c, rq->t->name, rq->ck.client_id.p, rq->ck.client_id.len, &why);
        if (v == ACL_WAIT)
            return PROTO_WAIT;
        if (v != RINGMQ_GRANTED) {
            rq->t->ctr.denied++;
            observe_event(s, RINGMQ_EV_PERMISSION_DENIED, rq->t, NULL, RINGMQ_ACTION_CONNECT, 0,
                          NULL, 0);
            /* 5.0: the plugin's reason code when it gave one (ABI 3). */
            if (v == RINGMQ_DENIED)
                return refused(rq, MQTT_CONNACK_NOT_AUTHORIZED, why ? why : MQTT_RC_NOT_AUTHORIZED,
                               "not authorized to connect");
            return refused(rq, MQTT_CONNACK_UNAVAILABLE, why ? why : MQTT_RC_UNSPECIFIED,
                           "permission check failed");
        }
    }
    if (c->v5 && c->auth && mqtt_props_has(pr, MQTT_PROP_AUTH_METHOD)) {
        /* An auth plugin authenticated it (perhaps on the shard it came
         * from): CONNACK names the method (MQTT-4.12.0-5). */
        if (!c->v5->auth_method)
            auth_method_keep(c->v5, pr->auth_method);
        c->v5->auth = AUTH_DONE;
    } else if (c->v5) {
        return connect_auth(s, c, rq);
    }
    return PROTO_OK;
}

/* What the client's tenant allows: its MQTT versions, the will's QoS,
 * retain flag, size and topic, the keepalive (rq->keepalive, and whether a
 * 5.0 client is told it). */
static enum proto_result connect_tenant_allows(struct shard *s, struct conn *c,
                                               struct connect_req *rq)
{
    const struct tenant_settings *ts = rq->t->set;
    const struct mqtt_connect *ck = &rq->ck;
    if (!(ts->mqtt_versions & (1u << ck->version)))
        return refused(rq, MQTT_CONNACK_BAD_PROTOCOL, MQTT_RC_UNSUPPORTED_VERSION,
                       "protocol version not allowed for this tenant");
    if (ck->will && ck->will_qos > ts->max_qos)
        return refused(rq, MQTT_CONNACK_UNAVAILABLE, 0x9B, "will QoS not supported");
    if (ck->will && ck->will_retain && !ts->retain_available)
        return refused(rq, MQTT_CONNACK_UNAVAILABLE, 0x9A, "retain not supported");
    if (ck->will && ck->will_payload.len > ts->max_will_size)
        return refused(rq, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_PACKET_TOO_LARGE, "will too large");
    int keepalive = keepalive_choose(s->cfg, ts, c->v5 != NULL, ck->keepalive, &rq->tell_keepalive);
    if (keepalive < 0)
        return refused(rq, MQTT_CONNACK_ID_REJECTED, MQTT_CONNACK_ID_REJECTED,
                       "keepalive over max_keepalive");
    rq->keepalive = (uint16_t)keepalive;
    /* As a PUBLISH on it would be (publish.c); 3.1.1 has no closer code
     * than the one for every other will the server cannot take. */
    if (ck->will && !topic_within_limits(ts, ck->will_topic.p, ck->will_topic.len))
        return refused(rq, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_TOPIC_NAME_INVALID,
                       "will topic too long or too deep");
    return PROTO_OK;
}

/* The tenant's quotas (CONNACK 0x97 in 5.0, 0x03 in 3.1.1): connections,
 * connection rate (counted here), sessions. A takeover closes the
 * connection it replaces (MQTT-3.1.4-2): no connection more. */
static enum proto_result connect_within_quotas(struct shard *s, struct connect_req *rq)
{
    struct tenant *t = rq->t;
    if (!session_connected(t, rq->id, rq->id_len) &&
        !observe_throttle(s, t, RINGMQ_RES_CONNECTIONS, 1, NULL))
        return refused(rq, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_QUOTA_EXCEEDED,
                       "connection quota exceeded");
    if (!observe_throttle(s, t, RINGMQ_RES_CONNECT_RATE, 1, NULL))
        return refused(rq, MQTT_CONNACK_UNAVAILABLE, 0x9F, "connection rate exceeded");
    tenant_rate_add(t, RATE_CONNECTS, s->now_ms, 1);
    bool resumes = !rq->ck.clean_start && session_exists(t, rq->id, rq->id_len);
    if (!resumes && !session_exists(t, rq->id, rq->id_len) &&
        !observe_throttle(s, t, RINGMQ_RES_SESSIONS, 1, NULL))
        return refused(rq, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_QUOTA_EXCEEDED,
                       "session quota exceeded");
    return PROTO_OK;
}

/*
 * admit: may this client connect, here and now? First the auth plugin
 * (the CONNECT comes back with c->auth set once it allows), then, in this
 * order: connect_identify, connect_authorize, connect_tenant_allows,
 * connect_within_quotas. PROTO_OK: admitted; PROTO_STOP: refused (rq->no),
 * or handed on (authenticating, moved to the home shard); PROTO_WAIT: the
 * plugin's CONNECT check is pending.
 */
static enum proto_result connect_admit(struct shard *s, struct conn *c, struct connect_req *rq)
{
    if (s->port && plugin_host_has_auth(s->broker->plugins) && !c->auth)
        return start_auth(s, c, rq);
    enum proto_result r = connect_identify(s, c, rq);
    if (r == PROTO_OK)
        r = connect_authorize(s, c, rq);
    if (r == PROTO_OK)
        r = connect_tenant_allows(s, c, rq);
    if (r == PROTO_OK)
        r = connect_within_quotas(s, rq);
    return r;
}

/* options: what the admitted client gets, decided before any session is
 * touched: its session options (rq->o), its CONNACK (rq->ci; a 5.0 one is
 * built now, and one that cannot be sent closes the connection unanswered,
 * MQTT-3.1.2-24), the topic aliases it may use, its will as a message. */
static enum proto_result connect_options(struct shard *s, struct conn *c, struct connect_req *rq)
{
    bool expiry_changed =
        session_opts_for(c, s->cfg, rq->t->set, &rq->ck, &rq->pr, &rq->wp, &rq->o);
    /* The store cannot write: no new session that would be kept (one that
     * exists is resumed; what it does next is refused as it comes). */
    if (rq->o.expiry_s && store_failing(s) &&
        (rq->ck.clean_start || !session_exists(rq->t, rq->id, rq->id_len)))
        return refused(rq, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_QUOTA_EXCEEDED,
                       "the broker cannot store sessions now");
    rq->ci = (struct connack_info){
        .ts = rq->t->set,
        .code = 0,
        .expiry_changed = expiry_changed,
        .expiry = rq->o.expiry_s,
        .assigned = rq->was_assigned ? rq->id : NULL,
        .assigned_len = rq->id_len,
        .server_keepalive = rq->tell_keepalive,
        .keepalive = rq->keepalive,
        .auth = c->v5 && c->v5->auth == AUTH_DONE,
    };
    if (c->v5) {
        if (!connack_build(c, &rq->ci, &rq->cp)) {
            conn_close(s, c, CLOSE_REFUSED);
            return PROTO_STOP;
        }
        /* Aliases only when the client was told it may use them. */
        c->v5->alias_max_in = mqtt_props_has(&rq->cp.pr, MQTT_PROP_TOPIC_ALIAS_MAXIMUM)
                                  ? rq->cp.pr.topic_alias_maximum
                                  : 0;
    }
    if (rq->ck.will) {
        rq->o.will = will_create(&rq->ck, c->v5 ? &rq->wp : NULL, NULL);
        if (!rq->o.will)
            return refused(rq, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_SERVER_UNAVAILABLE,
                           "out of memory");
    }
    return PROTO_OK;
}

/* finish: attach the session (taking over a connected one), make the
 * connection active under its keepalive, send the CONNACK, resume the
 * session's deliveries. */
static enum proto_result connect_finish(struct shard *s, struct conn *c, struct connect_req *rq)
{
    bool present = false;
    struct session *ss = session_attach(s, rq->t, &c->st, rq->id, rq->id_len, &rq->o, &present);
    if (!ss)
        return refused(rq, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
    if (ss->st.will)
        ss->st.will->origin = ss; /* sole owner: No Local applies to wills too */
    c->session = ss;
    c->state = CONN_ACTIVE;
    c->since_s = (uint32_t)(s->now_ms / 1000u);
    conn_pending_end(s, c);
    rq->t->ctr.connections++;
    observe_event(s, RINGMQ_EV_CONNECTED, rq->t, ss, 0, 0, NULL, 0);
    c->keepalive = rq->keepalive;
    /* MQTT-3.1.2-24: one and a half times the keepalive. */
    if (c->keepalive)
        wheel_add(s->wheel, &c->timer, s->now_ms + (uint64_t)c->keepalive * 1500u);
    else
        wheel_remove(&c->timer);
    free(c->stash);
    c->stash = NULL;
    rq->ci.present = present;
    if (c->v5)
        connack_write_built(s, c, &rq->ci, &rq->cp); /* MQTT-3.2.2-1..3 */
    else
        connack_write(s, c, &rq->ci);
    log_debug("client %.*s connected (level %u, clean %d, present %d)", (int)rq->id_len, rq->id,
              rq->ck.version, rq->ck.clean_start, present);
    session_resume(s, ss);
    return PROTO_OK;
}

enum proto_result protocol_connect(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                                   const uint8_t *pkt, size_t avail)
{
    /* Zeroed: a 3.x CONNECT has no properties, and no step has refused. */
    struct connect_req rq = {.pkt = pkt, .len = f->total_len, .avail = avail};
    enum proto_result r = connect_decode(s, c, f, &rq);
    if (r == PROTO_OK)
        r = connect_admit(s, c, &rq);
    if (r == PROTO_OK)
        r = connect_options(s, c, &rq);
    if (r == PROTO_OK)
        r = connect_finish(s, c, &rq);
    /* The auth plugin has seen it, if it was to. */
    stream_info_done(&s->streams, &c->st);
    if (rq.no.why)
        return connect_refuse(s, c, &rq.no);
    return r;
}

/* ---- AUTH (5.0 only) ---- */

static int auth_decode(const struct mqtt_frame *f, const uint8_t *body, uint8_t *reason,
                       struct mqtt_props *pr)
{
    memset(pr, 0, sizeof(*pr));
    *reason = 0;
    if (f->flags != 0)
        return MQTT_RC_MALFORMED; /* MQTT-2.2.2-2 */
    if (f->body_len == 0)
        return MQTT_OK; /* MQTT 5.0 3.15.2.1: success, no properties */
    *reason = body[0];
    if (f->body_len == 1)
        return MQTT_OK;
    struct mqtt_bytes content;
    size_t used;
    int rc = mqtt_props_block_decode(body + 1, f->body_len - 1, &content, &used);
    if (rc != MQTT_OK || used != f->body_len - 1)
        return MQTT_RC_MALFORMED;
    return mqtt_props_decode(MQTT_AUTH, content.p, content.len, pr);
}

/* An AUTH from the client when an auth plugin decides: pass the step on. */
static enum proto_result plugin_auth_step(struct shard *s, struct conn *c, uint8_t reason,
                                          const struct mqtt_props *pr)
{
    struct conn_v5 *v = c->v5;
    bool reauth;
    if (v->auth == AUTH_CONNECTING && reason == 0x18 && c->state == CONN_NEW)
        reauth = false;
    else if ((v->auth == AUTH_DONE && reason == 0x19) ||
             (v->auth == AUTH_REAUTHING && reason == 0x18))
        reauth = true;
    else {
        protocol_violation(s, c, "unexpected AUTH reason", MQTT_RC_PROTOCOL_ERROR);
        return PROTO_STOP;
    }
    struct ringmq_auth_step step = {
        .reauth = reauth,
        .auth_method = {v->auth_method, v->auth_method_len},
        .auth_data = {mqtt_props_has(pr, MQTT_PROP_AUTH_DATA) ? pr->auth_data.p : NULL,
                      mqtt_props_has(pr, MQTT_PROP_AUTH_DATA) ? pr->auth_data.len : 0},
        .tenant = reauth && c->session ? c->session->tenant->name : NULL,
        .user_id = reauth && c->auth ? c->auth->user_id : NULL,
    };
    conn_hold(c);
    if (plugin_auth_continue(s->port, (uint64_t)(uintptr_t)c, &step) < 0) {
        c->st.ops--;
        if (!reauth)
            return connect_refuse(s, c,
                                  &(struct refusal){MQTT_RC_UNSPECIFIED, MQTT_RC_UNSPECIFIED,
                                                    "authentication unavailable"});
        conn_close_reason(s, c, CLOSE_PROTOCOL, MQTT_RC_UNSPECIFIED, "authentication unavailable");
        return PROTO_STOP;
    }
    if (reauth) {
        v->auth = AUTH_REAUTHING; /* the connection keeps working meanwhile */
        return PROTO_OK;
    }
    c->state = CONN_AUTHENTICATING;
    return PROTO_STOP;
}

/* An AUTH step of the built-in test method (mqtt.test_auth_method): the
 * answer to our challenge after CONNECT (the kept CONNECT is then handled
 * again), or a re-authentication's start or answer. */
static enum proto_result test_auth_step(struct shard *s, struct conn *c, uint8_t reason,
                                        const struct mqtt_props *pr)
{
    struct conn_v5 *v = c->v5;
    bool answer_ok =
        mqtt_props_has(pr, MQTT_PROP_AUTH_DATA) && bytes_eq(pr->auth_data, auth_response);
    switch (v->auth) {
    case AUTH_CONNECTING: {
        if (reason != 0x18) {
            protocol_violation(s, c, "unexpected AUTH reason", MQTT_RC_PROTOCOL_ERROR);
            return PROTO_STOP;
        }
        if (!answer_ok)
            return connect_refuse(s, c,
                                  &(struct refusal){MQTT_RC_BAD_CREDENTIALS,
                                                    MQTT_RC_BAD_CREDENTIALS,
                                                    "authentication failed"});
        v->auth = AUTH_DONE;
        /* Handle the kept CONNECT again, now authenticated. It was handled
         * on this shard before, so it cannot move. */
        struct iobuf *h = c->stash;
        struct mqtt_frame cf;
        if (mqtt_frame_decode(h->data, h->len, 0, &cf) != MQTT_OK) {
            protocol_violation(s, c, "lost CONNECT", MQTT_RC_UNSPECIFIED);
            return PROTO_STOP;
        }
        c->relocated = true;
        return protocol_connect(s, c, &cf, h->data, h->len);
    }
    case AUTH_DONE:
        if (reason != 0x19) {
            protocol_violation(s, c, "unexpected AUTH reason", MQTT_RC_PROTOCOL_ERROR);
            return PROTO_STOP;
        }
        if (!mqtt_props_has(pr, MQTT_PROP_AUTH_DATA) || !bytes_eq(pr->auth_data, auth_hello)) {
            conn_close_reason(s, c, CLOSE_PROTOCOL, MQTT_RC_NOT_AUTHORIZED,
                              "re-authentication failed");
            return PROTO_STOP;
        }
        v->auth = AUTH_REAUTHING;
        write_auth(s, c, 0x18, auth_challenge);
        return PROTO_OK;
    case AUTH_REAUTHING:
        if (reason != 0x18) {
            protocol_violation(s, c, "unexpected AUTH reason", MQTT_RC_PROTOCOL_ERROR);
            return PROTO_STOP;
        }
        if (!answer_ok) {
            conn_close_reason(s, c, CLOSE_PROTOCOL, MQTT_RC_NOT_AUTHORIZED,
                              "re-authentication failed");
            return PROTO_STOP;
        }
        v->auth = AUTH_DONE;
        write_auth(s, c, 0x00, NULL);
        return PROTO_OK;
    }
    return PROTO_OK;
}

enum proto_result protocol_auth(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                                const uint8_t *body)
{
    struct conn_v5 *v = c->v5;
    uint8_t reason;
    struct mqtt_props pr;
    int rc = auth_decode(f, body, &reason, &pr);
    if (rc != MQTT_OK) {
        protocol_violation(s, c, "malformed AUTH", rc);
        return PROTO_STOP;
    }
    /* MQTT-4.12.0-7 (no AUTH without a method at CONNECT) and MQTT-4.12.0-5
     * (the method must stay the same). */
    bool same_method = mqtt_props_has(&pr, MQTT_PROP_AUTH_METHOD) && v->auth_method &&
                       pr.auth_method.len == v->auth_method_len &&
                       memcmp(pr.auth_method.p, v->auth_method, v->auth_method_len) == 0;
    if (v->auth == AUTH_NONE || !same_method) {
        protocol_violation(s, c, "unexpected AUTH", MQTT_RC_PROTOCOL_ERROR);
        return PROTO_STOP;
    }
    if (s->port && plugin_host_has_auth(s->broker->plugins))
        return plugin_auth_step(s, c, reason, &pr);
    return test_auth_step(s, c, reason, &pr);
}

/* ---- DISCONNECT ---- */

enum proto_result protocol_disconnect(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                                      const uint8_t *body)
{
    uint8_t reason = 0;
    int rc;
    if (!c->v5) {
        rc = mqtt_empty_decode(f->type, f->flags, body, f->body_len, c->version, &reason);
        if (rc != MQTT_OK) {
            protocol_violation(s, c, "malformed DISCONNECT", rc);
            return PROTO_STOP;
        }
        /* MQTT-3.14.4-3: a clean DISCONNECT discards the will. */
        conn_close(s, c, CLOSE_CLIENT_DISCONNECT);
        return PROTO_STOP;
    }
    struct mqtt_props pr;
    memset(&pr, 0, sizeof(pr));
    rc = f->flags ? MQTT_RC_MALFORMED : MQTT_OK;
    if (rc == MQTT_OK && f->body_len >= 1)
        reason = body[0];
    if (rc == MQTT_OK && f->body_len >= 2) {
        struct mqtt_bytes content;
        size_t used;
        rc = mqtt_props_block_decode(body + 1, f->body_len - 1, &content, &used);
        if (rc == MQTT_OK && used != f->body_len - 1)
            rc = MQTT_RC_MALFORMED;
        if (rc == MQTT_OK)
            rc = mqtt_props_decode(MQTT_DISCONNECT, content.p, content.len, &pr);
    }
    if (rc != MQTT_OK) {
        protocol_violation(s, c, "malformed DISCONNECT", rc);
        return PROTO_STOP;
    }
    struct session *ss = c->session;
    if (mqtt_props_has(&pr, MQTT_PROP_SESSION_EXPIRY)) {
        /* MQTT-3.14.2-2: a session that was to end with the connection
         * cannot be given an expiry now. */
        if (c->v5->expiry_at_connect == 0 && pr.session_expiry != 0) {
            protocol_violation(s, c, "session expiry set at DISCONNECT", MQTT_RC_PROTOCOL_ERROR);
            return PROTO_STOP;
        }
        uint32_t max = ss->tenant->set->max_session_expiry;
        ss->st.expiry_s = ss->tenant->set->force_transient ? 0
                          : pr.session_expiry < max        ? pr.session_expiry
                                                           : max;
    }
    /* MQTT-3.14.4-3, MQTT-3.1.2-8: only 0x00 deletes the will; 0x04
     * (Disconnect with Will Message) and the error reasons keep it. */
    conn_close(s, c, reason == MQTT_RC_SUCCESS ? CLOSE_CLIENT_DISCONNECT : CLOSE_PEER_GONE);
    return PROTO_STOP;
}
