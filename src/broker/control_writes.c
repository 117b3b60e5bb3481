/*
 * control_writes: the admin API's writes into a tenant's traffic: POST
 * .../publish (the broker's own PUBLISH with its MQTT 5.0 properties,
 * encoded and checked on the admin thread as a client's PUBLISH block is,
 * then published on shard 0 as the retained clear is, which route_publish
 * carries to every interested shard, the retained replicas and the store)
 * and a session's subscriptions added (with the options of a 5.0
 * SUBSCRIBE) or removed on its home shard, with SUBSCRIBE's semantics less
 * the ACL (the caller is an admin): a filter new to the shard is told to
 * the other shards (route_interest_add, nothing waiting for their acks, as
 * for a restored subscription), retained messages follow a new
 * subscription as its Retain Handling says (queued for an offline
 * session). The answers run on the shard's thread; the ops on the admin
 * thread (control.h).
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

/* The broker's PUBLISH of the request's topic, payload and properties;
 * -EINVAL when the tenant's settings refuse it (topic limits, QoS,
 * retain) or the topic is $SYS (fed by the broker's statistics alone, as
 * publish.c keeps it), -EIO when the store cannot keep a QoS 1/2 or
 * retained one. */
static int answer_publish(struct shard *s, struct tenant *t, struct control_req *r)
{
    const uint8_t *topic = r->key, *payload = r->key + r->prefix_len;
    size_t payload_len = r->after_len - r->props_len;
    const struct tenant_settings *ts = t->set;
    if ((r->qos || r->retain) && store_failing(s))
        return -EIO;
    if (route_is_sys_topic(topic, r->prefix_len) ||
        !topic_within_limits(ts, topic, r->prefix_len) || r->qos > ts->max_qos ||
        (r->retain &&
         (!ts->retain_available ||
          !route_retain_allowed(s, t, topic, r->prefix_len, payload_len, r->props_len, NULL))))
        return -EINVAL;
    struct msg_spec sp = {.topic = topic,
                          .topic_len = r->prefix_len,
                          .payload = payload,
                          .payload_len = payload_len,
                          .props = payload + payload_len,
                          .props_len = r->props_len,
                          .qos = r->qos,
                          .retain = r->retain};
    /* MQTT-3.3.2-6: a 5.0 subscriber gets the interval left, rewritten
     * from the block's property as for a client's PUBLISH. */
    if (r->expiry_s)
        sp.expires_at_ms = s->now_ms + (uint64_t)r->expiry_s * 1000u;
    struct msg *m = msg_create(&sp);
    if (!m)
        return -ENOMEM;
    route_publish(s, t, m);
    return 0;
}

/* Subscribe the session as subscribe.c's subscribe_add does, less the
 * ACL and the SUBACK: -EINVAL when the tenant's settings refuse the
 * filter, -EOPNOTSUPP an identifier. n (0 or 1) says whether it existed;
 * qos becomes the QoS granted. */
static int answer_sub(struct shard *s, struct session *ss, struct control_req *r)
{
    const struct tenant_settings *ts = ss->tenant->set;
    const uint8_t *f = r->key + r->prefix_len;
    size_t len = r->after_len;
    struct mqtt_share_spec sp;
    int share = mqtt_share_parse(f, len, &sp);
    if (!topic_within_limits(ts, f, len) || share < 0 || (share > 0 && !ts->shared_subscriptions) ||
        (share > 0 && (r->sub_opts & SUB_NO_LOCAL)) || /* MQTT-3.8.3-4 */
        (!ts->wildcard_subscriptions && mqtt_topic_has_wildcard(f, len)))
        return -EINVAL;
    if (r->subid && !ts->subscription_identifiers)
        return -EOPNOTSUPP;
    struct sub_req req = {.qos = r->qos, .opts = r->sub_opts, .subid = r->subid};
    sub_req_set_retain_handling(&req, r->retain_handling);
    if (req.qos > ts->max_qos)
        req.qos = (uint8_t)ts->max_qos; /* MQTT-3.2.2-10: downgrade */
    bool fresh = false, existed = false;
    int err = session_subscribe(s, ss, f, len, &req, &fresh, &existed);
    if (err < 0)
        return err;
    r->n = existed;
    r->qos = req.qos;
    if (fresh)
        (void)route_interest_add(s, ss->tenant, f, len, 0); /* 0: nobody waits */
    /* MQTT-3.3.1-9..11: Retain Handling 0 sends, 1 only for a new
     * subscription, 2 never; none on a shared one (MQTT 5.0 4.8.2). An
     * offline session gets them queued (route_send_retained). */
    if (share == MQTT_SHARE_NONE &&
        (r->retain_handling == 0 || (r->retain_handling == 1 && !existed)))
        route_send_retained(s, ss, f, len, req.qos, r->subid, false);
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

/* Post `r` to shard `to` and wait; the shard's answer. The caller's
 * reference is dropped. */
static int ask_one(struct broker *b, uint32_t to, struct control_req *r)
{
    struct control_req *reqs[CONFIG_MAX_SHARDS] = {0};
    reqs[to] = r;
    int err = control_ask(b, reqs);
    if (err == 0)
        err = r->err;
    control_req_put(r);
    return err;
}

/* pr and users[0..n) as a PUBLISH property block without its length
 * prefix, malloc'd into *block (*len bytes), checked as a client's
 * PUBLISH is (mqtt_props_decode: UTF-8 strings without U+0000,
 * MQTT-1.5.4-1/-2; a Response Topic without wildcards, MQTT-3.3.2-14).
 * 0, -EPROTO (too long to encode, or refused), -ENOMEM. */
static int props_block(const struct mqtt_props *pr, const struct mqtt_user_prop *users, size_t n,
                       uint8_t **block, size_t *len)
{
    size_t size = mqtt_props_size(pr, NULL, 0, users, n);
    if (!size)
        return -EPROTO;
    uint8_t *buf = malloc(size);
    if (!buf)
        return -ENOMEM;
    mqtt_props_encode(buf, pr, NULL, 0, users, n);
    struct mqtt_bytes content;
    size_t used;
    struct mqtt_props check;
    if (mqtt_props_block_decode(buf, size, &content, &used) != MQTT_OK ||
        mqtt_props_decode(MQTT_PUBLISH, content.p, content.len, &check) != MQTT_OK) {
        free(buf);
        return -EPROTO;
    }
    memmove(buf, content.p, content.len);
    *block = buf;
    *len = content.len;
    return 0;
}

/* p's properties as a PUBLISH property block (no length prefix) into
 * *block (malloc'd; *len 0 and NULL when there are none): 0, -EPROTO
 * when MQTT refuses them (mqtt_props_decode: UTF-8, MQTT-3.3.2-14 ...),
 * -ENOMEM. */
static int publish_props(const struct admin_publish *p, uint8_t **block, size_t *len)
{
    struct mqtt_props pr = {0};
    struct mqtt_user_prop users[ADMIN_USER_PROPS_MAX];
    *block = NULL;
    *len = 0;
    if (p->nuser > ADMIN_USER_PROPS_MAX)
        return -EPROTO;
    if (p->expiry_s) {
        mqtt_props_set(&pr, MQTT_PROP_MESSAGE_EXPIRY);
        pr.message_expiry = p->expiry_s;
    }
    if (p->payload_format >= 0) {
        mqtt_props_set(&pr, MQTT_PROP_PAYLOAD_FORMAT);
        pr.payload_format = (uint8_t)p->payload_format;
    }
    if (p->content_type) {
        mqtt_props_set(&pr, MQTT_PROP_CONTENT_TYPE);
        pr.content_type =
            (struct mqtt_bytes){(const uint8_t *)p->content_type, p->content_type_len};
    }
    if (p->response_topic) {
        mqtt_props_set(&pr, MQTT_PROP_RESPONSE_TOPIC);
        pr.response_topic =
            (struct mqtt_bytes){(const uint8_t *)p->response_topic, p->response_topic_len};
    }
    if (p->correlation) {
        mqtt_props_set(&pr, MQTT_PROP_CORRELATION_DATA);
        pr.correlation_data = (struct mqtt_bytes){p->correlation, p->correlation_len};
    }
    for (size_t i = 0; i < p->nuser; i++)
        users[i] =
            (struct mqtt_user_prop){{(const uint8_t *)p->user[i].name, p->user[i].name_len},
                                    {(const uint8_t *)p->user[i].value, p->user[i].value_len}};
    if (!pr.present && !p->nuser)
        return 0;
    return props_block(&pr, users, p->nuser, block, len);
}

int control_publish(void *arg, const char *tenant, const struct admin_publish *p)
{
    if (!mqtt_topic_name_valid((const uint8_t *)p->topic, p->topic_len) || p->qos > 2)
        return -EINVAL;
    /* MQTT 5.0 3.3.2.3.2: a payload said to be UTF-8 must be. */
    if (p->payload_format == 1 && !mqtt_utf8_valid(p->payload, p->payload_len))
        return -EILSEQ;
    uint8_t *props;
    size_t props_len;
    int err = publish_props(p, &props, &props_len);
    if (err < 0)
        return err;
    int tid = control_tenant(arg, tenant);
    /* The request's key: the topic, then the payload and its properties. */
    uint8_t *body = tid >= 0 ? malloc(p->payload_len + props_len + 1) : NULL;
    struct control_req *r = NULL;
    if (body) {
        if (p->payload_len)
            memcpy(body, p->payload, p->payload_len);
        if (props_len)
            memcpy(body + p->payload_len, props, props_len);
        r = control_req_create(CONTROL_PUBLISH, (uint16_t)tid, 0, p->topic, p->topic_len,
                               (const char *)body, p->payload_len + props_len);
    }
    free(body);
    free(props);
    if (tid < 0)
        return tid;
    if (!r)
        return -ENOMEM;
    r->qos = p->qos;
    r->retain = p->retain;
    r->expiry_s = p->expiry_s;
    r->props_len = (uint32_t)props_len;
    return ask_one(arg, PUBLISH_SHARD, r);
}

/* SUB or UNSUB of `filter` for session `id`, asked of its home shard;
 * the request answered (the caller's reference) into *out. */
static int ask_sub(struct broker *b, struct control_req *r, const char *id, size_t len,
                   struct control_req **out)
{
    struct control_req *reqs[CONFIG_MAX_SHARDS] = {0};
    reqs[shard_home(b, r->tenant, (const uint8_t *)id, len)] = r;
    int err = control_ask(b, reqs);
    if (err == 0)
        err = r->err;
    if (err < 0) {
        control_req_put(r);
        return err;
    }
    *out = r;
    return 0;
}

/* A SUB or UNSUB request of `filter` for session `id`; NULL with *err. */
static struct control_req *sub_req_create(struct broker *b, uint8_t kind, const char *tenant,
                                          const char *id, size_t len, const char *filter,
                                          size_t flen, int *err)
{
    *err = mqtt_topic_filter_valid((const uint8_t *)filter, flen) ? control_tenant(b, tenant)
                                                                  : -EINVAL;
    if (*err < 0)
        return NULL;
    struct control_req *r = control_req_create(kind, (uint16_t)*err, 0, id, len, filter, flen);
    *err = r ? 0 : -ENOMEM;
    return r;
}

int control_subscribe(void *arg, const char *tenant, const char *id, size_t len,
                      const struct admin_sub_add *a, struct admin_sub_result *out)
{
    int err;
    if (a->qos > 2 || a->retain_handling > 2 || a->subid > MQTT_SUB_ID_MAX)
        return -EINVAL;
    struct control_req *r =
        sub_req_create(arg, CONTROL_SUB, tenant, id, len, a->filter, a->filter_len, &err);
    if (!r)
        return err;
    r->qos = a->qos;
    r->sub_opts = (uint8_t)((a->no_local ? SUB_NO_LOCAL : 0) |
                            (a->retain_as_published ? SUB_RETAIN_AS_PUBLISHED : 0));
    r->retain_handling = a->retain_handling;
    r->subid = a->subid;
    if ((err = ask_sub(arg, r, id, len, &r)) < 0)
        return err;
    *out = (struct admin_sub_result){.existed = r->n != 0, .qos = r->qos};
    r->n = 0; /* a count: the request holds no entries to free */
    control_req_put(r);
    return 0;
}

int control_unsubscribe(void *arg, const char *tenant, const char *id, size_t len,
                        const char *filter, size_t flen)
{
    int err;
    struct control_req *r = sub_req_create(arg, CONTROL_UNSUB, tenant, id, len, filter, flen, &err);
    if (!r)
        return err;
    if ((err = ask_sub(arg, r, id, len, &r)) < 0)
        return err;
    r->n = 0;
    control_req_put(r);
    return 0;
}
