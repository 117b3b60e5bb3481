/*
 * connack: the CONNACK that answers a CONNECT (see connack.h). Runs on the
 * connection's shard; writes only to the connection's output.
 */
#include "broker/connack.h"

#include <string.h>

#include "broker/alias.h"
#include "broker/conn.h"
#include "config/config.h"
#include "core/log.h"
#include "mqtt/codec.h"

size_t connack_user_props(const struct ringmq_kv *kv, size_t n, struct mqtt_user_prop *out)
{
    size_t kept = 0;
    for (size_t i = 0; i < n && kept < IDENTITY_KV_MAX; i++) {
        const char *k = kv[i].key ? kv[i].key : "", *v = kv[i].value ? kv[i].value : "";
        size_t kl = strlen(k), vl = strlen(v);
        if (kl > UINT16_MAX || vl > UINT16_MAX)
            continue;
        out[kept].name = (struct mqtt_bytes){(const uint8_t *)k, kl};
        out[kept].value = (struct mqtt_bytes){(const uint8_t *)v, vl};
        kept++;
    }
    return kept;
}

/* What the server allows (MQTT 5.0 3.2.2.3), stated when it is not the
 * protocol's default. */
static void connack_capabilities(const struct conn *c, const struct connack_info *ci,
                                 struct mqtt_props *pr)
{
    const struct tenant_settings *ts = ci->ts;
    if (ci->expiry_changed) {
        mqtt_props_set(pr, MQTT_PROP_SESSION_EXPIRY);
        pr->session_expiry = ci->expiry;
    }
    if (ts->receive_maximum < 65535) {
        mqtt_props_set(pr, MQTT_PROP_RECEIVE_MAXIMUM);
        pr->receive_maximum = (uint16_t)ts->receive_maximum;
    }
    if (ts->max_qos < 2) {
        mqtt_props_set(pr, MQTT_PROP_MAXIMUM_QOS);
        pr->maximum_qos = (uint8_t)ts->max_qos;
    }
    if (!ts->retain_available) {
        mqtt_props_set(pr, MQTT_PROP_RETAIN_AVAILABLE);
        pr->retain_available = 0;
    }
    mqtt_props_set(pr, MQTT_PROP_MAXIMUM_PACKET_SIZE);
    pr->maximum_packet_size = ts->max_packet_size;
    if (ci->assigned) {
        mqtt_props_set(pr, MQTT_PROP_ASSIGNED_CLIENT_ID);
        pr->assigned_client_id = (struct mqtt_bytes){ci->assigned, ci->assigned_len};
    }
    if (ts->topic_alias_maximum) {
        mqtt_props_set(pr, MQTT_PROP_TOPIC_ALIAS_MAXIMUM);
        pr->topic_alias_maximum = (uint16_t)ts->topic_alias_maximum;
    }
    if (!ts->wildcard_subscriptions) {
        mqtt_props_set(pr, MQTT_PROP_WILDCARD_SUB_AVAILABLE);
        pr->wildcard_sub_available = 0;
    }
    if (!ts->subscription_identifiers) {
        mqtt_props_set(pr, MQTT_PROP_SUB_ID_AVAILABLE);
        pr->sub_id_available = 0;
    }
    if (!ts->shared_subscriptions) {
        mqtt_props_set(pr, MQTT_PROP_SHARED_SUB_AVAILABLE);
        pr->shared_sub_available = 0;
    }
    if (ci->server_keepalive) {
        mqtt_props_set(pr, MQTT_PROP_SERVER_KEEPALIVE);
        pr->server_keepalive = ci->keepalive;
    }
    if (ci->auth && c->v5->auth_method) {
        mqtt_props_set(pr, MQTT_PROP_AUTH_METHOD);
        pr->auth_method = (struct mqtt_bytes){c->v5->auth_method, c->v5->auth_method_len};
    }
}

static size_t connack_size(const struct connack_props *cp)
{
    size_t rem = 2 + mqtt_props_size(&cp->pr, NULL, 0, cp->users, cp->n_users);
    return 1 + mqtt_varint_size((uint32_t)rem) + rem;
}

/* MQTT-3.1.2-24. Only what the client can do without is left out: the
 * Topic Alias Maximum's absence makes it more careful (it sends no aliases,
 * and the caller then accepts none). The rest must stay: an absent
 * capability means more than the server allows, an absent Session Expiry,
 * Server Keep Alive or Assigned Client Identifier leaves the client
 * believing what is not (MQTT-3.2.2-16/-21), and the method is required
 * (MQTT-4.12.0-5). */
bool connack_build(const struct conn *c, const struct connack_info *ci, struct connack_props *cp)
{
    memset(&cp->pr, 0, sizeof(cp->pr));
    cp->n_users = 0;
    if (ci->code == MQTT_RC_SUCCESS) {
        connack_capabilities(c, ci, &cp->pr);
        /* The auth plugin's User Properties for the client (3.2.2.3.17). */
        if (c->auth && c->auth->n_connack) {
            struct ringmq_kv kv[IDENTITY_KV_MAX];
            identity_kvs(c->auth->connack, c->auth->n_connack, kv);
            cp->n_users = connack_user_props(kv, c->auth->n_connack, cp->users);
        }
    } else if (ci->reason && c->v5->problem_info) {
        /* MQTT-3.1.2-29: no Reason String when the client said so. */
        mqtt_props_set(&cp->pr, MQTT_PROP_REASON_STRING);
        cp->pr.reason_string = (struct mqtt_bytes){(const uint8_t *)ci->reason, strlen(ci->reason)};
    }
    static const uint8_t optional[] = {MQTT_PROP_REASON_STRING, MQTT_PROP_TOPIC_ALIAS_MAXIMUM};
    size_t i = 0;
    while (!conn_fits(c, connack_size(cp))) {
        if (cp->n_users) {
            cp->n_users = 0;
        } else if (i < sizeof(optional)) {
            cp->pr.present &= ~((uint64_t)1 << optional[i++]);
        } else {
            log_ratelimited(LOG_LEVEL_INFO,
                            "connection %llu: a %zu-byte CONNACK exceeds the client's Maximum "
                            "Packet Size (%u), closing without it",
                            (unsigned long long)c->id, connack_size(cp), c->v5->max_packet_out);
            return false;
        }
    }
    return true;
}

void connack_write_built(struct shard *s, struct conn *c, const struct connack_info *ci,
                         const struct connack_props *cp)
{
    uint8_t head[2] = {ci->present && ci->code == 0 ? 1 : 0, ci->code};
    conn_write_v5_users(s, c, MQTT_CONNACK << 4, head, sizeof(head), &cp->pr, cp->users,
                        cp->n_users);
    if (c->auth)
        identity_connack_sent(c->auth);
}

void connack_write(struct shard *s, struct conn *c, const struct connack_info *ci)
{
    if (!c->v5) {
        uint8_t *p = conn_reserve(s, c, 4);
        if (p)
            conn_commit(s, c, mqtt_connack_encode(p, c->version, ci->present, ci->code));
        return;
    }
    struct connack_props cp;
    if (connack_build(c, ci, &cp))
        connack_write_built(s, c, ci, &cp);
}
