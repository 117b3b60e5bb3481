/*
 * record: encoding and decoding of the record bodies (record.h). Each
 * encoder sizes its record, reserves exactly that in the writer's buffer and
 * writes it there; the decoder checks every length against what is left
 * and that nothing is left over, since a record read back from disk may be
 * corrupt even when its checksum holds (a bug that wrote it, a salvaged
 * file). Pure functions over bytes, any thread, no allocation, no logging.
 */
#include "persist/record.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "mqtt/codec.h"
#include "mqtt/props.h"
#include "mqtt/topic.h"
#include "session/msg.h"
#include "session/session.h"
#include "shard/xshard.h"
#include "tenant/tenant.h"

/* Fixed part of a message: flags, expiry, stamp, three lengths. */
/* Fixed part of a message: flags and three lengths; an expiry and a retain
 * stamp follow the flags only when not 0 (format 2; format 1 always has
 * both). */
#define MSG_FIXED (1 + 2 + 4 + 4)
/* Fixed part of a delivery: qos, retain, share length, id count. */
/* A delivery's flags: bits 0-1 its QoS, then these (format 2; format 1 has
 * u8 QoS, u8 retain, u16 share length, u32 id count). */
#define DLV_RETAIN_BIT 0x04u
#define DLV_IDS_BIT    0x08u /* u32 count (not 0), the Subscription Identifiers */
#define DLV_SHARE_BIT  0x10u /* u16 length (not 0), the $share filter */
#define MSG_RETAIN_BIT 0x04u
#define MSG_EXPIRY_BIT 0x08u /* format 2: a u64 expiry follows the flags */
#define MSG_STAMP_BIT  0x10u /* format 2: a u64 retain stamp follows (and the expiry) */

/* ---- writing ---- */

static uint8_t *put8(uint8_t *p, uint8_t v)
{
    *p = v;
    return p + 1;
}

/* Little-endian, each one store (a memcpy of a fixed size is one move;
 * the loops of shifts they replace showed in a profile of p2p). */
static uint8_t *put16(uint8_t *p, uint16_t v)
{
    v = htole16(v);
    memcpy(p, &v, 2);
    return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, 4);
    return p + 4;
}

static uint8_t *put64(uint8_t *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, 8);
    return p + 8;
}

static uint8_t *putb(uint8_t *p, const void *b, size_t n)
{
    if (n)
        memcpy(p, b, n);
    return p + n;
}

uint64_t record_deadline_to_wall(uint64_t mono_deadline, uint64_t mono_now, uint64_t wall_now)
{
    if (mono_deadline == 0)
        return 0;
    if (mono_deadline >= mono_now)
        return wall_now + (mono_deadline - mono_now);
    uint64_t ago = mono_now - mono_deadline;
    return ago < wall_now ? wall_now - ago : 1;
}

uint64_t record_deadline_to_mono(uint64_t wall_deadline, uint64_t mono_now, uint64_t wall_now)
{
    if (wall_deadline == 0)
        return 0;
    if (wall_deadline >= wall_now)
        return mono_now + (wall_deadline - wall_now);
    uint64_t ago = wall_now - wall_deadline;
    return ago < mono_now ? mono_now - ago : 1;
}

/* What names a record's session: its number, and in a put also its
 * tenant's name and client id. */
static size_t key_size(const struct tenant *t, const struct session_state *st, bool put)
{
    return put ? 8 + t->name_len + st->client_id_len : 4;
}

static uint8_t *put_key(uint8_t *p, const struct record_writer *w, const struct tenant *t,
                        const struct session_state *st, bool put)
{
    p = put32(p, w->number(w->ctx, t, st));
    if (!put)
        return p;
    p = put16(p, t->name_len);
    p = put16(p, st->client_id_len);
    p = putb(p, t->name, t->name_len);
    return putb(p, st->client_id, st->client_id_len);
}

/* A retained record's key: its tenant's name. */
static uint8_t *put_tenant(uint8_t *p, const struct tenant *t)
{
    p = put16(p, t->name_len);
    return putb(p, t->name, t->name_len);
}

/* A message's deadline maps to a wall-clock one that is 0 exactly when it
 * is (record_deadline_to_wall), and a will's is kept as it is: either way
 * the expiry is written when expires_at_ms is not 0. */
static size_t msg_bytes(const struct msg *m)
{
    return MSG_FIXED + (m->expires_at_ms ? 8 : 0) + (m->retain_stamp ? 8 : 0) +
           (size_t)m->topic_len + m->payload_len + m->props_len;
}

/* A message; its deadline converted to the wall clock unless `will`. */
static uint8_t *put_msg(uint8_t *p, const struct record_writer *w, const struct msg *m, bool will)
{
    uint64_t expiry = m->expires_at_ms;
    if (!will)
        expiry = record_deadline_to_wall(expiry, w->mono_ms, w->wall_ms);
    p = put8(p, (uint8_t)(m->qos | (m->retain ? MSG_RETAIN_BIT : 0) |
                          (expiry ? MSG_EXPIRY_BIT : 0) | (m->retain_stamp ? MSG_STAMP_BIT : 0)));
    if (expiry)
        p = put64(p, expiry);
    if (m->retain_stamp)
        p = put64(p, m->retain_stamp);
    p = put16(p, m->topic_len);
    p = put32(p, m->payload_len);
    p = put32(p, m->props_len);
    p = putb(p, msg_topic(m), m->topic_len);
    p = putb(p, msg_payload(m), m->payload_len);
    return putb(p, msg_props(m), m->props_len);
}

static size_t delivery_size(const subids_t ids, const struct xfilter *share, const struct msg *m)
{
    size_t n = 1 + (ids && ids[0] ? 4 + 4u * (size_t)ids[0] : 0) +
               (share && share->len ? 2 + (size_t)share->len : 0);
    return n + (m ? msg_bytes(m) : 0);
}

static uint8_t *put_delivery(uint8_t *p, const struct record_writer *w, uint8_t qos, uint8_t retain,
                             const subids_t ids, const struct xfilter *share, const struct msg *m)
{
    uint32_t nids = ids ? ids[0] : 0;
    uint16_t slen = share ? share->len : 0;
    p = put8(p, (uint8_t)(qos | (retain ? DLV_RETAIN_BIT : 0) | (nids ? DLV_IDS_BIT : 0) |
                          (slen ? DLV_SHARE_BIT : 0)));
    if (nids) {
        p = put32(p, nids);
        for (uint32_t i = 0; i < nids; i++)
            p = put32(p, ids[i + 1]);
    }
    if (slen) {
        p = put16(p, slen);
        p = putb(p, share->data, slen);
    }
    return m ? put_msg(p, w, m, false) : p;
}

/* Reserve a body of n bytes: NULL when the writer has no room or the
 * record could not be framed (*rc says which). */
static uint8_t *reserve(struct record_writer *w, size_t n, int *rc)
{
    if (n > UINT32_MAX) {
        *rc = -EMSGSIZE;
        return NULL;
    }
    uint8_t *p = w->reserve(w->ctx, n);
    *rc = p ? 0 : -ENOMEM;
    return p;
}

/* A session put, with the deadlines when `at` (type 19) or without (1). */
static int session_put(struct record_writer *w, const struct tenant *t,
                       const struct session_state *st, bool at, uint64_t expire_mono_ms,
                       uint64_t will_mono_ms)
{
    size_t n =
        key_size(t, st, true) + 4 + 4 + 1 + (st->will ? msg_bytes(st->will) : 0) + (at ? 16 : 0);
    int rc;
    uint8_t *p = reserve(w, n, &rc);
    if (!p)
        return rc;
    p = put_key(p, w, t, st, true);
    p = put32(p, st->expiry_s);
    p = put32(p, st->will_delay_s);
    p = put8(p, st->will != NULL);
    if (st->will)
        p = put_msg(p, w, st->will, true); /* its expiry is an interval (store.h) */
    if (at) {
        p = put64(p, record_deadline_to_wall(expire_mono_ms, w->mono_ms, w->wall_ms));
        put64(p, record_deadline_to_wall(will_mono_ms, w->mono_ms, w->wall_ms));
    }
    w->commit(w->ctx, at ? RECORD_SESSION_PUT_AT : RECORD_SESSION_PUT, n);
    return 0;
}

int record_session_put(struct record_writer *w, const struct tenant *t,
                       const struct session_state *st)
{
    return session_put(w, t, st, false, 0, 0);
}

int record_session_put_at(struct record_writer *w, const struct tenant *t,
                          const struct session_state *st, uint64_t expire_mono_ms,
                          uint64_t will_mono_ms)
{
    return session_put(w, t, st, true, expire_mono_ms, will_mono_ms);
}

int record_ingress(struct record_writer *w, uint8_t type, uint64_t key)
{
    int rc;
    uint8_t *p = reserve(w, 8, &rc);
    if (!p)
        return rc;
    put64(p, key);
    w->commit(w->ctx, type, 8);
    return 0;
}

/* A record that is its session's key alone. */
static int key_only(struct record_writer *w, uint8_t type, const struct tenant *t,
                    const struct session_state *st)
{
    size_t n = key_size(t, st, false);
    int rc;
    uint8_t *p = reserve(w, n, &rc);
    if (!p)
        return rc;
    put_key(p, w, t, st, false);
    w->commit(w->ctx, type, n);
    return 0;
}

int record_session_del(struct record_writer *w, const struct tenant *t,
                       const struct session_state *st)
{
    return key_only(w, RECORD_SESSION_DEL, t, st);
}

int record_sub_put(struct record_writer *w, const struct tenant *t, const struct session_state *st,
                   const struct sess_sub *sub)
{
    size_t n = key_size(t, st, false) + 1 + 1 + 4 + 2 + sub->len;
    int rc;
    uint8_t *p = reserve(w, n, &rc);
    if (!p)
        return rc;
    p = put_key(p, w, t, st, false);
    p = put8(p, sub->qos);
    p = put8(p, sub->opts);
    p = put32(p, sub->subid);
    p = put16(p, sub->len);
    putb(p, sub->filter, sub->len);
    w->commit(w->ctx, RECORD_SUB_PUT, n);
    return 0;
}

int record_sub_del(struct record_writer *w, const struct tenant *t, const struct session_state *st,
                   const uint8_t *filter, size_t len)
{
    size_t n = key_size(t, st, false) + 2 + len;
    int rc;
    uint8_t *p = reserve(w, n, &rc);
    if (!p)
        return rc;
    p = put_key(p, w, t, st, false);
    p = put16(p, (uint16_t)len);
    putb(p, filter, len);
    w->commit(w->ctx, RECORD_SUB_DEL, n);
    return 0;
}

int record_queue_push(struct record_writer *w, const struct tenant *t,
                      const struct session_state *st, const struct qentry *e)
{
    size_t n = key_size(t, st, false) + delivery_size(e->ids, e->share, e->m);
    int rc;
    uint8_t *p = reserve(w, n, &rc);
    if (!p)
        return rc;
    p = put_key(p, w, t, st, false);
    put_delivery(p, w, e->qos, e->retain, e->ids, e->share, e->m);
    w->commit(w->ctx, RECORD_QUEUE_PUSH, n);
    return 0;
}

int record_queue_pop(struct record_writer *w, const struct tenant *t,
                     const struct session_state *st)
{
    return key_only(w, RECORD_QUEUE_POP, t, st);
}

int record_infl_put(struct record_writer *w, const struct tenant *t, const struct session_state *st,
                    const struct inflight *e)
{
    /* After PUBREC the entry holds no message (MQTT-4.3.3-1): none is
     * written, and the state says so. */
    const struct msg *m = e->state == INFL_WAIT_ACK ? e->m : NULL;
    size_t n = key_size(t, st, false) + 2 + 1 + delivery_size(e->ids, e->share, m);
    int rc;
    uint8_t *p = reserve(w, n, &rc);
    if (!p)
        return rc;
    p = put_key(p, w, t, st, false);
    p = put16(p, e->pid);
    p = put8(p, e->state);
    put_delivery(p, w, e->qos, e->retain, e->ids, e->share, m);
    w->commit(w->ctx, RECORD_INFL_PUT, n);
    return 0;
}

int record_pid(struct record_writer *w, uint8_t type, const struct tenant *t,
               const struct session_state *st, uint16_t pid)
{
    size_t n = key_size(t, st, false) + 2;
    int rc;
    uint8_t *p = reserve(w, n, &rc);
    if (!p)
        return rc;
    p = put_key(p, w, t, st, false);
    put16(p, pid);
    w->commit(w->ctx, type, n);
    return 0;
}

void record_del_next(uint8_t *more, uint16_t pid2)
{
    put16(more, pid2);
}

int record_retained(struct record_writer *w, uint8_t type, const struct tenant *t,
                    const struct msg *m)
{
    size_t n = 2 + (size_t)t->name_len + msg_bytes(m);
    int rc;
    uint8_t *p = reserve(w, n, &rc);
    if (!p)
        return rc;
    p = put_tenant(p, t);
    put_msg(p, w, m, false);
    w->commit(w->ctx, type, n);
    return 0;
}

/* ---- reading ---- */

/* A cursor over untrusted bytes: a read past the end marks it bad and
 * yields zeros, so a decoder checks once, at the end. */
struct rd {
    const uint8_t *p, *end;
    bool bad;
    uint16_t format;
};

static bool need(struct rd *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return false;
    }
    return true;
}

static uint64_t get_le(struct rd *r, unsigned n)
{
    if (!need(r, n))
        return 0;
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    return v;
}

static const uint8_t *get_bytes(struct rd *r, size_t n)
{
    if (!need(r, n))
        return NULL;
    const uint8_t *b = r->p;
    r->p += n;
    return b;
}

/* A tenant's name and client id (format 1: the lengths first, together). */
static void get_names(struct rd *r, struct record *out, bool session)
{
    out->tenant_len = (uint16_t)get_le(r, 2);
    if (session)
        out->client_id_len = (uint16_t)get_le(r, 2);
    out->tenant = get_bytes(r, out->tenant_len);
    if (session)
        out->client_id = get_bytes(r, out->client_id_len);
    /* Every tenant has a name, and the directory takes it as a C string
     * (tenant_dir_intern): a NUL inside would name another tenant. */
    if (out->tenant_len == 0 || (out->tenant && memchr(out->tenant, 0, out->tenant_len)))
        r->bad = true;
}

static bool is_put(uint8_t type)
{
    return type == RECORD_SESSION_PUT || type == RECORD_SESSION_PUT_AT;
}

bool record_is_session(uint8_t type)
{
    switch (type) {
    case RECORD_RETAINED_PUT:
    case RECORD_RETAINED_CLEAR:
    case RECORD_SNAP_BEGIN:
    case RECORD_SNAP_END:
    case RECORD_INGRESS_PUT:
    case RECORD_INGRESS_DEL:
        return false;
    default:
        return type >= RECORD_SESSION_PUT && type <= RECORD_TYPE_MAX;
    }
}

/* A format this build reads, and one that has `type`. */
static bool format_known(uint16_t format, uint8_t type)
{
    if (format < RECORD_FORMAT_KEYED || format > RECORD_FORMAT)
        return false;
    return type != RECORD_INFL_DEL_NEXT || format >= RECORD_FORMAT;
}

/* The session's key: its number (format 2), and its names where held. */
static void get_key(struct rd *r, uint16_t format, uint8_t type, struct record *out)
{
    if (format == RECORD_FORMAT_KEYED) {
        get_names(r, out, true);
        return;
    }
    out->no = (uint32_t)get_le(r, 4);
    if (out->no == 0)
        r->bad = true;
    if (is_put(type))
        get_names(r, out, true);
}

int record_session_of(uint16_t format, uint8_t type, const uint8_t *p, size_t len,
                      struct record *out)
{
    memset(out, 0, sizeof(*out));
    if (!record_is_session(type) || !format_known(format, type))
        return -EBADMSG;
    struct rd r = {p, p + len, false, format};
    get_key(&r, format, type, out);
    return r.bad ? -EBADMSG : 0;
}

static void get_msg(struct rd *r, struct record_msg *m)
{
    uint8_t flags = (uint8_t)get_le(r, 1);
    bool keyed = r->format == RECORD_FORMAT_KEYED; /* format 1: always both u64s */
    uint8_t allowed = 3u | MSG_RETAIN_BIT | (keyed ? 0 : MSG_EXPIRY_BIT | MSG_STAMP_BIT);
    m->qos = flags & 3u;
    m->retain = (flags & MSG_RETAIN_BIT) != 0;
    if (m->qos > 2 || (flags & ~allowed))
        r->bad = true;
    bool has_expiry = keyed || (flags & MSG_EXPIRY_BIT),
         has_stamp = keyed || (flags & MSG_STAMP_BIT);
    m->expiry = has_expiry ? get_le(r, 8) : 0;
    m->retain_stamp = has_stamp ? get_le(r, 8) : 0;
    /* Format 2 writes either only when it is not 0: one encoding each. */
    if (!keyed && ((has_expiry && !m->expiry) || (has_stamp && !m->retain_stamp)))
        r->bad = true;
    m->topic_len = (uint16_t)get_le(r, 2);
    m->payload_len = (uint32_t)get_le(r, 4);
    m->props_len = (uint32_t)get_le(r, 4);
    m->topic = get_bytes(r, m->topic_len);
    m->payload = get_bytes(r, m->payload_len);
    m->props = get_bytes(r, m->props_len);
}

/* A delivery: qos, retain, ids, share and, when with_msg, the message. */
/* Subscription Identifiers: a count that fits what is left, then the ids. */
static void get_ids(struct rd *r, struct record *out)
{
    out->nids = (uint32_t)get_le(r, 4);
    /* Checked before multiplying: 4 * nids cannot wrap a size_t. */
    if (out->nids > (size_t)(r->end - r->p) / 4)
        r->bad = true;
    out->ids = get_bytes(r, 4u * (size_t)out->nids);
}

/* Format 1's delivery: u8 QoS, u8 retain, u16 share length, u32 count. */
static void get_delivery1(struct rd *r, struct record *out)
{
    out->qos = (uint8_t)get_le(r, 1);
    out->retain = (uint8_t)get_le(r, 1);
    out->share_len = (uint16_t)get_le(r, 2);
    get_ids(r, out);
    out->share = get_bytes(r, out->share_len);
    if (out->retain > 1)
        r->bad = true;
}

static void get_delivery(struct rd *r, struct record *out, bool with_msg)
{
    if (r->format == RECORD_FORMAT_KEYED) {
        get_delivery1(r, out);
    } else {
        uint8_t flags = (uint8_t)get_le(r, 1);
        out->qos = flags & 3u;
        out->retain = (flags & DLV_RETAIN_BIT) != 0;
        if (flags & ~(3u | DLV_RETAIN_BIT | DLV_IDS_BIT | DLV_SHARE_BIT))
            r->bad = true;
        if (flags & DLV_IDS_BIT) {
            get_ids(r, out);
            if (out->nids == 0)
                r->bad = true; /* one encoding: no ids, no bit */
        }
        if (flags & DLV_SHARE_BIT) {
            out->share_len = (uint16_t)get_le(r, 2);
            out->share = get_bytes(r, out->share_len);
            if (out->share_len == 0)
                r->bad = true;
        }
    }
    if (out->qos < 1 || out->qos > 2)
        r->bad = true; /* only QoS 1/2 deliveries are kept */
    out->has_msg = with_msg;
    if (with_msg)
        get_msg(r, &out->m);
}

static void get_body(struct rd *r, uint8_t type, struct record *out)
{
    switch (type) {
    case RECORD_SESSION_PUT:
    case RECORD_SESSION_PUT_AT: {
        out->expiry_s = (uint32_t)get_le(r, 4);
        out->will_delay_s = (uint32_t)get_le(r, 4);
        uint8_t has = (uint8_t)get_le(r, 1);
        if (has > 1)
            r->bad = true;
        out->has_msg = has == 1;
        if (out->has_msg)
            get_msg(r, &out->m);
        if (type == RECORD_SESSION_PUT_AT) {
            out->expire_wall_ms = get_le(r, 8);
            out->will_wall_ms = get_le(r, 8);
        }
        break;
    }
    case RECORD_SUB_PUT:
        out->qos = (uint8_t)get_le(r, 1);
        out->opts = (uint8_t)get_le(r, 1);
        out->subid = (uint32_t)get_le(r, 4);
        if (out->qos > 2)
            r->bad = true;
        __attribute__((fallthrough)); /* to the filter */
    case RECORD_SUB_DEL:
        out->filter_len = (uint16_t)get_le(r, 2);
        out->filter = get_bytes(r, out->filter_len);
        if (out->filter_len == 0)
            r->bad = true;
        break;
    case RECORD_QUEUE_PUSH:
        get_delivery(r, out, true);
        break;
    case RECORD_INFL_PUT:
        out->pid = (uint16_t)get_le(r, 2);
        out->state = (uint8_t)get_le(r, 1);
        if (out->state != INFL_WAIT_ACK && out->state != INFL_WAIT_COMP)
            r->bad = true;
        get_delivery(r, out, out->state == INFL_WAIT_ACK);
        if (out->state == INFL_WAIT_COMP && out->qos != 2)
            r->bad = true;
        break;
    case RECORD_INFL_REC:
    case RECORD_INFL_DEL:
    case RECORD_QOS2_ADD:
    case RECORD_QOS2_DEL:
    case RECORD_INFL_FROM_QUEUE:
        out->pid = (uint16_t)get_le(r, 2);
        break;
    case RECORD_INFL_DEL_NEXT:
        out->pid = (uint16_t)get_le(r, 2);
        out->pid2 = (uint16_t)get_le(r, 2);
        if (out->pid2 == 0)
            r->bad = true;
        break;
    default: /* SESSION_DEL, QUEUE_POP: the key alone */
        break;
    }
}

/* What the broker assumes of a message it holds: a topic name, properties
 * of a PUBLISH (checked when it was received, and again here since the
 * bytes come from disk). */
static bool msg_valid(const struct record_msg *m)
{
    struct mqtt_props pr;
    return mqtt_topic_name_valid(m->topic, m->topic_len) &&
           mqtt_props_decode(MQTT_PUBLISH, m->props, m->props_len, &pr) == MQTT_OK;
}

int record_decode(uint16_t format, uint8_t type, const uint8_t *p, size_t len, struct record *out)
{
    memset(out, 0, sizeof(*out));
    if (type == RECORD_SNAP_BEGIN || type == RECORD_SNAP_END) {
        out->type = type;
        return len ? -EBADMSG : 0;
    }
    if (type == RECORD_INGRESS_PUT || type == RECORD_INGRESS_DEL) {
        out->type = type;
        for (unsigned i = 0; len == 8 && i < 8; i++)
            out->key |= (uint64_t)p[i] << (8 * i);
        return len == 8 && out->key ? 0 : -EBADMSG;
    }
    if (type == 0 || type > RECORD_TYPE_MAX || !format_known(format, type))
        return -EBADMSG;
    out->type = type;
    struct rd r = {p, p + len, false, format};
    bool retained = type == RECORD_RETAINED_PUT || type == RECORD_RETAINED_CLEAR;
    if (retained)
        get_names(&r, out, false);
    else
        get_key(&r, format, type, out);
    if (retained) {
        out->has_msg = true;
        get_msg(&r, &out->m);
        if (out->m.topic_len == 0 || (type == RECORD_RETAINED_CLEAR && out->m.payload_len))
            r.bad = true; /* MQTT-3.3.1-10: a clear is an empty message */
    } else {
        get_body(&r, type, out);
    }
    bool has_pid = (type >= RECORD_INFL_PUT && type <= RECORD_QOS2_DEL) ||
                   type == RECORD_INFL_FROM_QUEUE || type == RECORD_INFL_DEL_NEXT;
    if (has_pid && out->pid == 0)
        r.bad = true; /* packet ids are never 0 (MQTT-2.2.1-3) */
    if (r.bad || r.p != r.end)
        return -EBADMSG;
    if (out->has_msg && !msg_valid(&out->m))
        return -EBADMSG;
    if (out->filter && !mqtt_topic_filter_valid(out->filter, out->filter_len))
        return -EBADMSG;
    return 0;
}
