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

#include "broker/alias.h"
#include "broker/acl.h"
#include "broker/conn.h"
#include "broker/connack.h"
#include "broker/msg.h"
#include "broker/observe.h"
#include "broker/protocol.h"
#include "broker/route.h"
#include "broker/session.h"
#include "broker/shard.h"
#include "core/log.h"
#include "mqtt/codec.h"
#include "mqtt/props.h"
#include "mqtt/topic.h"
#include "plugin/host.h"

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

/* Refuse the CONNECT with `code` (a 3.1.1 return code for 3.x clients, a
 * 5.0 reason code for 5.0 clients), then close. */
static enum proto_result refuse(struct shard *s, struct conn *c, uint8_t code, const char *why)
{
    log_ratelimited(LOG_LEVEL_INFO, "connection %llu: CONNECT refused: %s",
                    (unsigned long long)c->id, why);
    struct connack_info ci = {.code = code, .reason = why};
    connack_write(s, c, &ci);
    conn_close(s, c, CLOSE_REFUSED);
    return PROTO_STOP;
}

static enum proto_result refuse_rc(struct shard *s, struct conn *c, uint8_t v3_code,
                                   uint8_t v5_code, const char *why)
{
    return refuse(s, c, c->v5 ? v5_code : v3_code, why);
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

/* Enhanced authentication with the built-in test method. PROTO_OK when
 * the CONNECT may proceed; PROTO_STOP when an AUTH exchange started or the
 * connection was refused. */
static enum proto_result connect_auth(struct shard *s, struct conn *c, const struct mqtt_props *pr,
                                      const uint8_t *pkt, size_t len)
{
    struct conn_v5 *v = c->v5;
    if (!mqtt_props_has(pr, MQTT_PROP_AUTH_METHOD) || v->auth == AUTH_DONE)
        return PROTO_OK;
    const char *method = s->cfg->test_auth_method;
    if (!method[0] || !bytes_eq(pr->auth_method, method))
        return refuse(s, c, 0x8C, "unsupported authentication method");
    if (!mqtt_props_has(pr, MQTT_PROP_AUTH_DATA) || !bytes_eq(pr->auth_data, auth_hello))
        return refuse(s, c, MQTT_RC_BAD_CREDENTIALS, "authentication failed");
    v->auth_method = malloc(pr->auth_method.len);
    c->stash = malloc(sizeof(*c->stash) + len);
    if (!v->auth_method || !c->stash)
        return refuse(s, c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
    memcpy(v->auth_method, pr->auth_method.p, pr->auth_method.len);
    v->auth_method_len = (uint16_t)pr->auth_method.len;
    /* Keep the CONNECT: it is handled again once the exchange succeeds. */
    c->stash->len = (uint32_t)len;
    c->stash->off = 0;
    c->stash->cap = (uint32_t)len;
    memcpy(c->stash->data, pkt, len);
    v->auth = AUTH_CONNECTING;
    write_auth(s, c, 0x18, auth_challenge);
    return PROTO_STOP;
}

/* ---- the auth plugin ---- */

/* Hand the CONNECT to the auth plugin: the connection stops reading until
 * it answers (conn_on_auth_done), keeping everything read so far. */
static enum proto_result start_auth(struct shard *s, struct conn *c, const struct mqtt_connect *ck,
                                    const struct mqtt_props *pr, const uint8_t *pkt, size_t avail)
{
    struct ringmq_kv users[32];
    size_t nusers = 0;
    char addr[NET_PEER_STRLEN];
    bool has_addr = net_peer_format(&c->peer, addr, sizeof(addr)) == 0;
    struct ringmq_connect_info info = {
        .protocol_version = ck->version,
        .client_id = {ck->client_id.p, ck->client_id.len},
        .has_username = ck->has_username,
        .username = {ck->username.p, ck->username.len},
        .has_password = ck->has_password,
        .password = {ck->password.p, ck->password.len},
        .remote_addr = has_addr ? addr : NULL,
        .remote_port = c->peer.port,
        .listener = s->cfg->listeners[c->listener].name,
    };
    /* User properties as NUL-terminated pairs: copied into one buffer. */
    char *ubuf = NULL;
    if (c->v5 && pr->user_prop_count) {
        struct mqtt_props_iter it;
        struct mqtt_user_prop up;
        size_t need = 0;
        mqtt_props_iter_init(&it, pr);
        while (mqtt_props_next_user(&it, &up))
            need += up.name.len + up.value.len + 2;
        ubuf = malloc(need);
        if (ubuf) {
            char *w = ubuf;
            mqtt_props_iter_init(&it, pr);
            while (nusers < 32 && mqtt_props_next_user(&it, &up)) {
                users[nusers].key = w;
                memcpy(w, up.name.p, up.name.len);
                w += up.name.len;
                *w++ = 0;
                users[nusers].value = w;
                memcpy(w, up.value.p, up.value.len);
                w += up.value.len;
                *w++ = 0;
                nusers++;
            }
        }
        info.user_properties = users;
        info.n_user_properties = nusers;
    }
    if (c->v5 && mqtt_props_has(pr, MQTT_PROP_AUTH_METHOD)) {
        info.auth_method = (struct ringmq_bytes){pr->auth_method.p, pr->auth_method.len};
        if (mqtt_props_has(pr, MQTT_PROP_AUTH_DATA))
            info.auth_data = (struct ringmq_bytes){pr->auth_data.p, pr->auth_data.len};
        /* Enhanced authentication: every later AUTH must name this method. */
        free(c->v5->auth_method);
        c->v5->auth_method = malloc(pr->auth_method.len ? pr->auth_method.len : 1);
        if (c->v5->auth_method) {
            memcpy(c->v5->auth_method, pr->auth_method.p, pr->auth_method.len);
            c->v5->auth_method_len = (uint16_t)pr->auth_method.len;
        }
    }
    c->stash = malloc(sizeof(*c->stash) + avail);
    if (!c->stash) {
        free(ubuf);
        return refuse_rc(s, c, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_SERVER_UNAVAILABLE,
                         "out of memory");
    }
    memcpy(c->stash->data, pkt, avail);
    c->stash->len = c->stash->cap = (uint32_t)avail;
    c->stash->off = 0;
    c->state = CONN_AUTHENTICATING;
    c->ops++; /* the call holds the connection until it is answered */
    int rc = plugin_authenticate(s->port, (uint64_t)(uintptr_t)c, &info);
    free(ubuf);
    if (rc < 0) {
        c->ops--;
        c->state = CONN_NEW;
        return refuse_rc(s, c, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_SERVER_UNAVAILABLE,
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
        c->ops--;
        conn_resume(s, c);
        return;
    }
    /* 3.1.1 return codes and 5.0 reason codes of each refusal. */
    static const struct {
        uint8_t v3, v5;
        const char *why;
    } refusals[] = {
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
    if (dec != RINGMQ_AUTH_ALLOW) {
        if ((size_t)dec >= sizeof(refusals) / sizeof(refusals[0]) || !refusals[dec].why)
            dec = RINGMQ_AUTH_ERROR;
        struct tenant *g = shard_tenant(s, 0);
        if (g) {
            g->ctr.auth_failures++;
            observe_event(s, RINGMQ_EV_AUTH_FAILED, g, NULL, refusals[dec].v5, 0, NULL, 0);
        }
        const char *why = d->timed_out ? "authentication timed out" : refusals[dec].why;
        refuse_rc(s, c, refusals[dec].v3, refusals[dec].v5, r->reason ? r->reason : why);
        conn_op_done(s, c);
        return;
    }
    int tenant = tenant_dir_intern(s->broker, r->tenant ? r->tenant : "global");
    if (tenant < 0 || conn_set_auth(c, (uint16_t)tenant, r) < 0) {
        refuse_rc(s, c, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_SERVER_UNAVAILABLE,
                  tenant == -ENOSPC ? "too many tenants"
                                    : "out of memory, or a user id over 65535 bytes");
        conn_op_done(s, c);
        return;
    }
    if (c->v5 && c->v5->auth_method)
        c->v5->auth = AUTH_DONE; /* CONNACK names the method (MQTT-4.12.0-5) */
    struct iobuf *h = c->stash;
    c->stash = NULL;
    c->ops--;
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

enum proto_result protocol_connect(struct shard *s, struct conn *c, const struct mqtt_frame *f,
                                   const uint8_t *pkt, size_t avail)
{
    const struct config *cfg = s->cfg;
    if (c->state != CONN_NEW) {
        protocol_violation(s, c, "second CONNECT", MQTT_RC_PROTOCOL_ERROR); /* MQTT-3.1.0-2 */
        return PROTO_STOP;
    }
    struct mqtt_connect ck;
    int rc = mqtt_connect_decode(f->flags, pkt + f->header_len, f->body_len, &ck);
    if (rc == MQTT_RC_UNSUPPORTED_VERSION) {
        /* MQTT-3.1.2-2: CONNACK 0x01, then close. */
        c->version = MQTT_V311;
        return refuse(s, c, MQTT_CONNACK_BAD_PROTOCOL, "unsupported protocol level");
    }
    c->version = ck.version;
    struct mqtt_props pr, wp;
    memset(&pr, 0, sizeof(pr));
    memset(&wp, 0, sizeof(wp));
    if (rc == MQTT_OK && ck.version == MQTT_V5) {
        rc = mqtt_props_decode(MQTT_CONNECT, ck.props.p, ck.props.len, &pr);
        if (rc == MQTT_OK && ck.will)
            rc = mqtt_props_decode(MQTT_PROPS_WILL, ck.will_props.p, ck.will_props.len, &wp);
        if (connect_v5_setup(c, &pr) < 0) {
            conn_close(s, c, CLOSE_PEER_GONE);
            return PROTO_STOP;
        }
    }
    if (rc != MQTT_OK) {
        if (c->v5)
            return refuse(s, c, (uint8_t)rc, "malformed CONNECT");
        protocol_violation(s, c, "malformed CONNECT", rc);
        return PROTO_STOP;
    }

    if (s->port && plugin_host_has_auth(s->broker->plugins) && !c->auth)
        return start_auth(s, c, &ck, &pr, pkt, avail);

    if (!conn_count(s, c))
        return refuse_rc(s, c, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_QUOTA_EXCEEDED,
                         "max_connections reached");

    struct tenant *t = shard_tenant(s, c->auth ? c->auth->tenant : 0);
    if (!t)
        return refuse_rc(s, c, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_SERVER_UNAVAILABLE,
                         "out of memory");
    char assigned[48];
    const uint8_t *id = ck.client_id.p;
    size_t id_len = ck.client_id.len;
    bool was_assigned = false;
    if (id_len == 0) {
        /* MQTT-3.1.3-7/-8: in 3.1.1 an empty id needs clean session; 3.1
         * has no empty ids; 5.0 allows it either way (MQTT-3.1.3-6). */
        if ((!ck.clean_start && ck.version == MQTT_V311) || ck.version == MQTT_V31)
            return refuse(s, c, MQTT_CONNACK_ID_REJECTED, "empty client id");
        id_len = assign_client_id(s, t, assigned, sizeof(assigned));
        id = (const uint8_t *)assigned;
        was_assigned = true;
    } else if (id_len > cfg->max_client_id_len) {
        return refuse_rc(s, c, MQTT_CONNACK_ID_REJECTED, MQTT_RC_CLIENT_ID_INVALID,
                         "client id too long");
    } else if (!c->relocated) {
        uint32_t home = shard_home(s->broker, t->id, id, id_len);
        if (home != s->id) {
            conn_relocate(s, c, home, pkt, avail);
            return PROTO_STOP;
        }
    }
    if (c->auth) {
        /* The auth plugin's CONNECT permission check, on the home shard
         * (once: the connection does not move again) and before any
         * session is touched, so a refused client takes nothing over. */
        uint8_t why;
        int v = acl_check_connect(s, c, t->name, ck.client_id.p, ck.client_id.len, &why);
        if (v == ACL_WAIT)
            return PROTO_WAIT;
        if (v != RINGMQ_GRANTED) {
            t->ctr.denied++;
            observe_event(s, RINGMQ_EV_PERMISSION_DENIED, t, NULL, RINGMQ_ACTION_CONNECT, 0, NULL,
                          0);
            /* 5.0: the plugin's reason code when it gave one (ABI 3). */
            if (v == RINGMQ_DENIED)
                return refuse_rc(s, c, MQTT_CONNACK_NOT_AUTHORIZED,
                                 why ? why : MQTT_RC_NOT_AUTHORIZED, "not authorized to connect");
            return refuse_rc(s, c, MQTT_CONNACK_UNAVAILABLE, why ? why : MQTT_RC_UNSPECIFIED,
                             "permission check failed");
        }
    }
    if (c->v5 && c->auth && mqtt_props_has(&pr, MQTT_PROP_AUTH_METHOD)) {
        /* An auth plugin authenticated it (perhaps on the shard it came
         * from): CONNACK names the method (MQTT-4.12.0-5). */
        if (!c->v5->auth_method) {
            c->v5->auth_method = malloc(pr.auth_method.len ? pr.auth_method.len : 1);
            if (c->v5->auth_method) {
                memcpy(c->v5->auth_method, pr.auth_method.p, pr.auth_method.len);
                c->v5->auth_method_len = (uint16_t)pr.auth_method.len;
            }
        }
        c->v5->auth = AUTH_DONE;
    } else if (c->v5) {
        if (connect_auth(s, c, &pr, pkt, f->total_len) != PROTO_OK)
            return PROTO_STOP;
    }
    const struct tenant_settings *ts = t->set;
    if (!(ts->mqtt_versions & (1u << ck.version)))
        return refuse_rc(s, c, MQTT_CONNACK_BAD_PROTOCOL, MQTT_RC_UNSUPPORTED_VERSION,
                         "protocol version not allowed for this tenant");
    if (ck.will && ck.will_qos > ts->max_qos)
        return refuse_rc(s, c, MQTT_CONNACK_UNAVAILABLE, 0x9B, "will QoS not supported");
    if (ck.will && ck.will_retain && !ts->retain_available)
        return refuse_rc(s, c, MQTT_CONNACK_UNAVAILABLE, 0x9A, "retain not supported");
    if (ck.will && ck.will_payload.len > ts->max_will_size)
        return refuse_rc(s, c, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_PACKET_TOO_LARGE,
                         "will too large");
    bool tell_keepalive;
    int keepalive = keepalive_choose(cfg, ts, c->v5 != NULL, ck.keepalive, &tell_keepalive);
    if (keepalive < 0)
        return refuse(s, c, MQTT_CONNACK_ID_REJECTED, "keepalive over max_keepalive");
    /* As a PUBLISH on it would be (publish.c); 3.1.1 has no closer code
     * than the one for every other will the server cannot take. */
    if (ck.will && !topic_within_limits(ts, ck.will_topic.p, ck.will_topic.len))
        return refuse_rc(s, c, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_TOPIC_NAME_INVALID,
                         "will topic too long or too deep");

    /* Quotas of the tenant (CONNACK 0x97 in 5.0, 0x03 in 3.1.1). A takeover
     * closes the connection it replaces (MQTT-3.1.4-2): no connection more. */
    if (!session_connected(t, id, id_len) &&
        !observe_throttle(s, t, RINGMQ_RES_CONNECTIONS, 1, NULL))
        return refuse_rc(s, c, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_QUOTA_EXCEEDED,
                         "connection quota exceeded");
    if (!observe_throttle(s, t, RINGMQ_RES_CONNECT_RATE, 1, NULL))
        return refuse_rc(s, c, MQTT_CONNACK_UNAVAILABLE, 0x9F, "connection rate exceeded");
    observe_rate_add(s, t, RATE_CONNECTS, 1);
    bool resumes = !ck.clean_start && session_exists(t, id, id_len);
    if (!resumes && !session_exists(t, id, id_len) &&
        !observe_throttle(s, t, RINGMQ_RES_SESSIONS, 1, NULL))
        return refuse_rc(s, c, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_QUOTA_EXCEEDED,
                         "session quota exceeded");
    struct session_opts o;
    bool expiry_changed = session_opts_for(c, cfg, ts, &ck, &pr, &wp, &o);
    struct connack_info ci = {
        .ts = ts,
        .code = 0,
        .expiry_changed = expiry_changed,
        .expiry = o.expiry_s,
        .assigned = was_assigned ? id : NULL,
        .assigned_len = id_len,
        .server_keepalive = tell_keepalive,
        .keepalive = (uint16_t)keepalive,
        .auth = c->v5 && c->v5->auth == AUTH_DONE,
    };
    struct connack_props cp;
    if (c->v5) {
        /* Before the session is touched: a CONNACK that cannot be sent
         * refuses the connection (MQTT-3.1.2-24), taking nothing over. */
        if (!connack_build(c, &ci, &cp)) {
            conn_close(s, c, CLOSE_REFUSED);
            return PROTO_STOP;
        }
        /* Aliases only when the client was told it may use them. */
        c->v5->alias_max_in =
            mqtt_props_has(&cp.pr, MQTT_PROP_TOPIC_ALIAS_MAXIMUM) ? cp.pr.topic_alias_maximum : 0;
    }
    if (ck.will) {
        o.will = will_create(&ck, c->v5 ? &wp : NULL, NULL);
        if (!o.will)
            return refuse_rc(s, c, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_SERVER_UNAVAILABLE,
                             "out of memory");
    }
    bool present = false;
    struct session *ss = session_attach(s, t, c, id, id_len, &o, &present);
    if (!ss)
        return refuse_rc(s, c, MQTT_CONNACK_UNAVAILABLE, MQTT_RC_SERVER_UNAVAILABLE,
                         "out of memory");
    if (ss->will)
        ss->will->origin = ss; /* sole owner: No Local applies to wills too */
    c->session = ss;
    c->state = CONN_ACTIVE;
    conn_pending_end(s, c);
    t->ctr.connections++;
    observe_event(s, RINGMQ_EV_CONNECTED, t, ss, 0, 0, NULL, 0);
    c->keepalive = (uint16_t)keepalive;
    /* MQTT-3.1.2-24: one and a half times the keepalive. */
    if (c->keepalive)
        wheel_add(s->wheel, &c->timer, s->now_ms + (uint64_t)c->keepalive * 1500u);
    else
        wheel_remove(&c->timer);
    free(c->stash);
    c->stash = NULL;
    ci.present = present;
    if (c->v5)
        connack_write_built(s, c, &ci, &cp); /* MQTT-3.2.2-1..3 */
    else
        connack_write(s, c, &ci);
    log_debug("client %.*s connected (level %u, clean %d, present %d)", (int)id_len, id, ck.version,
              ck.clean_start, present);
    session_resume(s, ss);
    return PROTO_OK;
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
    c->ops++;
    if (plugin_auth_continue(s->port, (uint64_t)(uintptr_t)c, &step) < 0) {
        c->ops--;
        if (!reauth)
            return refuse(s, c, MQTT_RC_UNSPECIFIED, "authentication unavailable");
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
    bool answer_ok =
        mqtt_props_has(&pr, MQTT_PROP_AUTH_DATA) && bytes_eq(pr.auth_data, auth_response);
    switch (v->auth) {
    case AUTH_CONNECTING: {
        if (reason != 0x18) {
            protocol_violation(s, c, "unexpected AUTH reason", MQTT_RC_PROTOCOL_ERROR);
            return PROTO_STOP;
        }
        if (!answer_ok)
            return refuse(s, c, MQTT_RC_BAD_CREDENTIALS, "authentication failed");
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
        if (!mqtt_props_has(&pr, MQTT_PROP_AUTH_DATA) || !bytes_eq(pr.auth_data, auth_hello)) {
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
        ss->expiry_s = ss->tenant->set->force_transient ? 0
                       : pr.session_expiry < max        ? pr.session_expiry
                                                        : max;
    }
    /* MQTT-3.14.4-3, MQTT-3.1.2-8: only 0x00 deletes the will; 0x04
     * (Disconnect with Will Message) and the error reasons keep it. */
    conn_close(s, c, reason == MQTT_RC_SUCCESS ? CLOSE_CLIENT_DISCONNECT : CLOSE_PEER_GONE);
    return PROTO_STOP;
}
