/*
 * control_writes: the admin API's writes into a tenant's traffic: POST
 * .../publish (the broker's own PUBLISH, published on shard 0 as the
 * retained clear is, which route_publish carries to every interested
 * shard, the retained replicas and the store) and a session's
 * subscriptions added or removed on its home shard, with SUBSCRIBE's
 * semantics less the ACL (the caller is an admin): a filter new to the
 * shard is told to the other shards (route_interest_add, nothing waiting
 * for their acks, as for a restored subscription), retained messages
 * follow a new subscription. The answers run on the shard's thread; the
 * ops on the admin thread (control.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/control.h"
#include "broker/control_req.h"
#include "broker/route.h"
#include "broker/shard.h"
#include "mqtt/codec.h"
#include "mqtt/props.h"
#include "mqtt/topic.h"
#include "session/msg.h"
#include "session/registry.h"
#include "session/session.h"
#include "session/store.h"
#include "session/subs.h"

/* The shard that publishes: any would do; shard 0 as for retained. */
#define PUBLISH_SHARD 0u

/* The broker's PUBLISH of the request's topic and payload; -EINVAL when
 * the tenant's settings refuse it (topic limits, QoS, retain) or the
 * topic is $SYS (fed by the broker's statistics alone, as publish.c
 * keeps it), -EIO when the store cannot keep a QoS 1/2 or retained one. */
static int answer_publish(struct shard *s, struct tenant *t, struct control_req *r)
{
    const uint8_t *topic = r->key, *payload = r->key + r->prefix_len;
    const struct tenant_settings *ts = t->set;
    if ((r->qos || r->retain) && store_failing(s))
        return -EIO;
    if (route_is_sys_topic(topic, r->prefix_len) ||
        !topic_within_limits(ts, topic, r->prefix_len) || r->qos > ts->max_qos ||
        (r->retain && (!ts->retain_available ||
                       !route_retain_allowed(s, t, topic, r->prefix_len, r->after_len, 0, NULL))))
        return -EINVAL;
    /* MQTT-3.3.2-6: a 5.0 subscriber gets the interval left, from the
     * property as a client's PUBLISH carries it. */
    uint8_t props[5] = {MQTT_PROP_MESSAGE_EXPIRY, (uint8_t)(r->expiry_s >> 24),
                        (uint8_t)(r->expiry_s >> 16), (uint8_t)(r->expiry_s >> 8),
                        (uint8_t)r->expiry_s};
    struct msg_spec sp = {.topic = topic,
                          .topic_len = r->prefix_len,
                          .payload = payload,
                          .payload_len = r->after_len,
                          .qos = r->qos,
                          .retain = r->retain};
    if (r->expiry_s) {
        sp.props = props;
        sp.props_len = sizeof(props);
        sp.expires_at_ms = s->now_ms + (uint64_t)r->expiry_s * 1000u;
    }
    struct msg *m = msg_create(&sp);
    if (!m)
        return -ENOMEM;
    route_publish(s, t, m);
    return 0;
}

/* Subscribe the session as subscribe.c's subscribe_add does, less the
 * ACL and the SUBACK: -EINVAL when the tenant's settings refuse the
 * filter. n (0 or 1) says whether it existed. */
static int answer_sub(struct shard *s, struct session *ss, struct control_req *r)
{
    const struct tenant_settings *ts = ss->tenant->set;
    const uint8_t *f = r->key + r->prefix_len;
    size_t len = r->after_len;
    struct mqtt_share_spec sp;
    int share = mqtt_share_parse(f, len, &sp);
    if (!topic_within_limits(ts, f, len) || share < 0 || (share > 0 && !ts->shared_subscriptions) ||
        (!ts->wildcard_subscriptions && mqtt_topic_has_wildcard(f, len)))
        return -EINVAL;
    struct sub_req req = {.qos = r->qos};
    if (req.qos > ts->max_qos)
        req.qos = (uint8_t)ts->max_qos; /* MQTT-3.2.2-10: downgrade */
    bool fresh = false, existed = false;
    int err = session_subscribe(s, ss, f, len, &req, &fresh, &existed);
    if (err < 0)
        return err;
    r->n = existed;
    if (fresh)
        (void)route_interest_add(s, ss->tenant, f, len, 0); /* 0: nobody waits */
    if (share == MQTT_SHARE_NONE)
        route_send_retained(s, ss, f, len, req.qos, 0, false); /* Retain Handling 0 */
    return 0;
}

void control_answer_writes(struct shard *s, struct control_req *r)
{
    if (r->kind == CONTROL_PUBLISH) {
        struct tenant *t = shard_tenant(s, r->tenant); /* made here when new */
        r->err = t ? answer_publish(s, t, r) : -ENOMEM;
        return;
    }
    struct tenant *t = r->tenant < TENANT_MAX ? s->tenants[r->tenant] : NULL;
    struct session *ss = t ? session_find(t, r->key, r->prefix_len) : NULL;
    if (!ss) {
        r->err = -ENOENT;
        return;
    }
    if (r->kind == CONTROL_SUB)
        r->err = answer_sub(s, ss, r);
    else if (!session_unsubscribe(s, ss, r->key + r->prefix_len, r->after_len))
        r->err = -ENOENT;
}

/* ---- on the admin thread ---------------------------------------------------- */

/* Post `r` to shard `to` and wait; the shard's answer (*n: its n when
 * answered, n may be NULL). The caller's reference is dropped. */
static int ask_one(struct broker *b, uint32_t to, struct control_req *r, uint32_t *n)
{
    struct control_req *reqs[CONFIG_MAX_SHARDS] = {0};
    reqs[to] = r;
    int err = control_ask(b, reqs);
    if (err == 0)
        err = r->err;
    if (err == 0 && n)
        *n = r->n; /* a count: the request holds no entries to free */
    control_req_put(r);
    return err;
}

int control_publish(void *arg, const char *tenant, const struct admin_publish *p)
{
    if (!mqtt_topic_name_valid((const uint8_t *)p->topic, p->topic_len) || p->qos > 2)
        return -EINVAL;
    int tid = control_tenant(arg, tenant);
    if (tid < 0)
        return tid;
    struct control_req *r =
        control_req_create(CONTROL_PUBLISH, (uint16_t)tid, 0, p->topic, p->topic_len,
                           (const char *)p->payload, p->payload_len);
    if (!r)
        return -ENOMEM;
    r->qos = p->qos;
    r->retain = p->retain;
    r->expiry_s = p->expiry_s;
    return ask_one(arg, PUBLISH_SHARD, r, NULL);
}

/* SUB or UNSUB of `filter` for session `id`, asked of its home shard;
 * *existed (SUB): it held the filter already. */
static int ask_sub(struct broker *b, uint8_t kind, const char *tenant, const char *id, size_t len,
                   const char *filter, size_t flen, uint8_t qos, bool *existed)
{
    if (!mqtt_topic_filter_valid((const uint8_t *)filter, flen) || qos > 2)
        return -EINVAL;
    int tid = control_tenant(b, tenant);
    if (tid < 0)
        return tid;
    struct control_req *r = control_req_create(kind, (uint16_t)tid, 0, id, len, filter, flen);
    if (!r)
        return -ENOMEM;
    r->qos = qos;
    uint32_t n = 0;
    int err = ask_one(b, shard_home(b, (uint16_t)tid, (const uint8_t *)id, len), r, &n);
    if (existed)
        *existed = n != 0;
    return err;
}

int control_subscribe(void *arg, const char *tenant, const char *id, size_t len, const char *filter,
                      size_t flen, uint8_t qos, bool *existed)
{
    return ask_sub(arg, CONTROL_SUB, tenant, id, len, filter, flen, qos, existed);
}

int control_unsubscribe(void *arg, const char *tenant, const char *id, size_t len,
                        const char *filter, size_t flen)
{
    return ask_sub(arg, CONTROL_UNSUB, tenant, id, len, filter, flen, 0, NULL);
}
