/*
 * props: MQTT 5.0 property blocks, validated, built and rewritten.
 *
 * Owns nothing: every function works on caller buffers and returns views
 * into its input. No state, so any thread may call it (shard threads for
 * the broker, the bench and test clients). It must not allocate, do I/O or
 * log, and must never read outside the block it was given whatever the
 * bytes are: one parser (prop_parse) checks the bytes left before every
 * read, and everything else walks blocks through it.
 *
 * What each property is, and where it may appear, is data: the table
 * `defs` (MQTT 5.0 section 2.2.2.2), with the offset of its field in
 * struct mqtt_props so decode and encode need no per-property code.
 * Conformance ids are MQTT 5.0's. The spec states most property rules in
 * prose without an id ("It is a Protocol Error to include X more than
 * once"); those are tagged with their section number.
 */
#include "mqtt/props.h"

#include <string.h>

#include "mqtt/topic.h"

/* ---- the property table ---- */

/* Kinds as bits: a packet type, or MQTT_PROPS_WILL (bit 0). */
#define K(kind) (1u << (kind))
#define K_MSG   (K(MQTT_PUBLISH) | K(MQTT_PROPS_WILL))
#define K_ACKS  (K(MQTT_PUBACK) | K(MQTT_PUBREC) | K(MQTT_PUBREL) | K(MQTT_PUBCOMP))
#define K_USER                                                                                     \
    (K(MQTT_CONNECT) | K(MQTT_CONNACK) | K_MSG | K_ACKS | K(MQTT_SUBSCRIBE) | K(MQTT_SUBACK) |     \
     K(MQTT_UNSUBSCRIBE) | K(MQTT_UNSUBACK) | K(MQTT_DISCONNECT) | K(MQTT_AUTH))
#define K_REASON                                                                                   \
    (K(MQTT_CONNACK) | K_ACKS | K(MQTT_SUBACK) | K(MQTT_UNSUBACK) | K(MQTT_DISCONNECT) |           \
     K(MQTT_AUTH))

/* Value rules beyond the data type; breaking one is a Protocol Error. */
enum {
    F_BOOL = 1u << 0,    /* 0 or 1 */
    F_NONZERO = 1u << 1, /* not 0 */
    F_TOPIC = 1u << 2,   /* a valid topic name: no wildcards, not empty */
};

struct prop_def {
    uint8_t type;  /* enum mqtt_prop_type; 0 for a hole in the numbering */
    uint8_t flags; /* F_* */
    uint16_t off;  /* offset of the value in struct mqtt_props */
    uint32_t kinds;
};

#define OFF(field) ((uint16_t)offsetof(struct mqtt_props, field))

static const struct prop_def defs[MQTT_PROP_ID_MAX + 1] = {
    /* 3.3.2.3.2: "0 (0x00) Byte Indicates that the Payload is unspecified
     * bytes ... 1 (0x01) Byte Indicates that the Payload is UTF-8"; no
     * other value is defined, so anything else is refused like the other
     * 0-or-1 properties. */
    [MQTT_PROP_PAYLOAD_FORMAT] = {MQTT_PROP_T_BYTE, F_BOOL, OFF(payload_format), K_MSG},
    [MQTT_PROP_MESSAGE_EXPIRY] = {MQTT_PROP_T_U32, 0, OFF(message_expiry), K_MSG},
    [MQTT_PROP_CONTENT_TYPE] = {MQTT_PROP_T_UTF8, 0, OFF(content_type), K_MSG},
    /* MQTT-3.3.2-13: a UTF-8 string; MQTT-3.3.2-14: no wildcards. */
    [MQTT_PROP_RESPONSE_TOPIC] = {MQTT_PROP_T_UTF8, F_TOPIC, OFF(response_topic), K_MSG},
    [MQTT_PROP_CORRELATION_DATA] = {MQTT_PROP_T_BINARY, 0, OFF(correlation_data), K_MSG},
    /* 3.8.2.1.2, 3.3.2.3.8: 1..268,435,455; 0 is a Protocol Error.
     * Repeatable on PUBLISH only, handled in prop_store(). */
    [MQTT_PROP_SUBSCRIPTION_ID] = {MQTT_PROP_T_VARINT, F_NONZERO, OFF(subscription_id),
                                   K(MQTT_PUBLISH) | K(MQTT_SUBSCRIBE)},
    [MQTT_PROP_SESSION_EXPIRY] = {MQTT_PROP_T_U32, 0, OFF(session_expiry),
                                  K(MQTT_CONNECT) | K(MQTT_CONNACK) | K(MQTT_DISCONNECT)},
    [MQTT_PROP_ASSIGNED_CLIENT_ID] = {MQTT_PROP_T_UTF8, 0, OFF(assigned_client_id),
                                      K(MQTT_CONNACK)},
    [MQTT_PROP_SERVER_KEEPALIVE] = {MQTT_PROP_T_U16, 0, OFF(server_keepalive), K(MQTT_CONNACK)},
    [MQTT_PROP_AUTH_METHOD] = {MQTT_PROP_T_UTF8, 0, OFF(auth_method),
                               K(MQTT_CONNECT) | K(MQTT_CONNACK) | K(MQTT_AUTH)},
    [MQTT_PROP_AUTH_DATA] = {MQTT_PROP_T_BINARY, 0, OFF(auth_data),
                             K(MQTT_CONNECT) | K(MQTT_CONNACK) | K(MQTT_AUTH)},
    /* 3.1.2.11.7: "a value other than 0 or 1" is a Protocol Error. */
    [MQTT_PROP_REQUEST_PROBLEM_INFO] = {MQTT_PROP_T_BYTE, F_BOOL, OFF(request_problem_info),
                                        K(MQTT_CONNECT)},
    [MQTT_PROP_WILL_DELAY] = {MQTT_PROP_T_U32, 0, OFF(will_delay), K(MQTT_PROPS_WILL)},
    /* 3.1.2.11.6: "a value other than 0 or 1" is a Protocol Error. */
    [MQTT_PROP_REQUEST_RESPONSE_INFO] = {MQTT_PROP_T_BYTE, F_BOOL, OFF(request_response_info),
                                         K(MQTT_CONNECT)},
    [MQTT_PROP_RESPONSE_INFO] = {MQTT_PROP_T_UTF8, 0, OFF(response_info), K(MQTT_CONNACK)},
    [MQTT_PROP_SERVER_REFERENCE] = {MQTT_PROP_T_UTF8, 0, OFF(server_reference),
                                    K(MQTT_CONNACK) | K(MQTT_DISCONNECT)},
    [MQTT_PROP_REASON_STRING] = {MQTT_PROP_T_UTF8, 0, OFF(reason_string), K_REASON},
    /* 3.1.2.11.3, 3.2.2.3.3: Receive Maximum 0 is a Protocol Error. */
    [MQTT_PROP_RECEIVE_MAXIMUM] = {MQTT_PROP_T_U16, F_NONZERO, OFF(receive_maximum),
                                   K(MQTT_CONNECT) | K(MQTT_CONNACK)},
    [MQTT_PROP_TOPIC_ALIAS_MAXIMUM] = {MQTT_PROP_T_U16, 0, OFF(topic_alias_maximum),
                                       K(MQTT_CONNECT) | K(MQTT_CONNACK)},
    /* MQTT-3.3.2-8: a Topic Alias of 0 is not permitted. */
    [MQTT_PROP_TOPIC_ALIAS] = {MQTT_PROP_T_U16, F_NONZERO, OFF(topic_alias), K(MQTT_PUBLISH)},
    /* 3.2.2.3.4: "a value other than 0 or 1" is a Protocol Error. */
    [MQTT_PROP_MAXIMUM_QOS] = {MQTT_PROP_T_BYTE, F_BOOL, OFF(maximum_qos), K(MQTT_CONNACK)},
    /* 3.2.2.3.5: "a value other than 0 or 1" is a Protocol Error. */
    [MQTT_PROP_RETAIN_AVAILABLE] = {MQTT_PROP_T_BYTE, F_BOOL, OFF(retain_available),
                                    K(MQTT_CONNACK)},
    /* 2.2.2.2, 3.x "User Property": allowed everywhere, any number of
     * times, the same name more than once. */
    [MQTT_PROP_USER_PROPERTY] = {MQTT_PROP_T_PAIR, 0, 0, K_USER},
    /* 3.1.2.11.4, 3.2.2.3.6: Maximum Packet Size 0 is a Protocol Error. */
    [MQTT_PROP_MAXIMUM_PACKET_SIZE] = {MQTT_PROP_T_U32, F_NONZERO, OFF(maximum_packet_size),
                                       K(MQTT_CONNECT) | K(MQTT_CONNACK)},
    /* 3.2.2.3.11..13: "a value other than 0 or 1" is a Protocol Error. */
    [MQTT_PROP_WILDCARD_SUB_AVAILABLE] = {MQTT_PROP_T_BYTE, F_BOOL, OFF(wildcard_sub_available),
                                          K(MQTT_CONNACK)},
    [MQTT_PROP_SUB_ID_AVAILABLE] = {MQTT_PROP_T_BYTE, F_BOOL, OFF(sub_id_available),
                                    K(MQTT_CONNACK)},
    [MQTT_PROP_SHARED_SUB_AVAILABLE] = {MQTT_PROP_T_BYTE, F_BOOL, OFF(shared_sub_available),
                                        K(MQTT_CONNACK)},
};

enum mqtt_prop_type mqtt_prop_type(uint8_t id)
{
    return id <= MQTT_PROP_ID_MAX ? (enum mqtt_prop_type)defs[id].type : MQTT_PROP_T_NONE;
}

bool mqtt_prop_allowed(uint8_t id, uint8_t kind)
{
    return mqtt_prop_type(id) != MQTT_PROP_T_NONE && kind < 32 && (defs[id].kinds & K(kind));
}

/* ---- reading ---- */

/* Bounds-checked reads: each takes from *p only when end - *p allows. */
static bool take_u8(const uint8_t **p, const uint8_t *end, uint32_t *v)
{
    if (end - *p < 1)
        return false;
    *v = (*p)[0];
    *p += 1;
    return true;
}

static bool take_u16(const uint8_t **p, const uint8_t *end, uint32_t *v)
{
    if (end - *p < 2)
        return false;
    *v = (uint32_t)(*p)[0] << 8 | (*p)[1];
    *p += 2;
    return true;
}

static bool take_u32(const uint8_t **p, const uint8_t *end, uint32_t *v)
{
    if (end - *p < 4)
        return false;
    *v = (uint32_t)(*p)[0] << 24 | (uint32_t)(*p)[1] << 16 | (uint32_t)(*p)[2] << 8 | (*p)[3];
    *p += 4;
    return true;
}

/*
 * Variable byte integer: at most 4 bytes, and no longer than needed
 * (MQTT-1.5.5-1: a last byte of 0 after the first adds nothing), so that
 * each value has one encoding and a forwarded block is canonical.
 */
static bool take_varint(const uint8_t **p, const uint8_t *end, uint32_t *v)
{
    uint32_t value = 0;

    for (int i = 0; i < 4; i++) {
        if (end - *p <= i)
            return false;
        uint8_t b = (*p)[i];

        value |= (uint32_t)(b & 0x7F) << (7 * i);
        if (!(b & 0x80)) {
            if (i > 0 && b == 0)
                return false;
            *v = value;
            *p += i + 1;
            return true;
        }
    }
    return false;
}

/* Two-byte length and that many bytes (Binary Data, 1.5.6). */
static bool take_bin(const uint8_t **p, const uint8_t *end, struct mqtt_bytes *b)
{
    uint32_t n;

    if (!take_u16(p, end, &n) || end - *p < (ptrdiff_t)n)
        return false;
    b->p = *p;
    b->len = n;
    *p += n;
    return true;
}

/* UTF-8 Encoded String: binary data that is well-formed UTF-8 without
 * U+0000 (MQTT-1.5.4-1, MQTT-1.5.4-2); anything else is malformed. */
static bool take_str(const uint8_t **p, const uint8_t *end, struct mqtt_bytes *b)
{
    return take_bin(p, end, b) && mqtt_utf8_valid(b->p, b->len);
}

/*
 * One property at it->p, whatever its identifier, into *out. False (and
 * the iterator parked at the end) when the bytes are not a property: an
 * identifier that is not one (a byte >= 0x80 would start a multi-byte
 * variable byte integer, which for identifiers that all fit 7 bits is
 * either not minimal or not an identifier), or a value of the wrong type
 * or cut short (2.2.2.2: "a value not of the specified data type" is a
 * Malformed Packet).
 */
static bool prop_parse(struct mqtt_props_iter *it, struct mqtt_prop *out)
{
    const uint8_t *p = it->p, *end = it->end;
    uint32_t id;
    bool ok;

    memset(out, 0, sizeof(*out));
    if (!take_u8(&p, end, &id) || mqtt_prop_type((uint8_t)id) == MQTT_PROP_T_NONE)
        goto bad;
    out->id = (uint8_t)id;
    switch (defs[id].type) {
    case MQTT_PROP_T_BYTE:
        ok = take_u8(&p, end, &out->num);
        break;
    case MQTT_PROP_T_U16:
        ok = take_u16(&p, end, &out->num);
        break;
    case MQTT_PROP_T_U32:
        ok = take_u32(&p, end, &out->num);
        break;
    case MQTT_PROP_T_VARINT:
        ok = take_varint(&p, end, &out->num);
        break;
    case MQTT_PROP_T_UTF8:
        ok = take_str(&p, end, &out->str);
        break;
    case MQTT_PROP_T_BINARY:
        ok = take_bin(&p, end, &out->str);
        break;
    default: /* MQTT-1.5.7-1: both strings of a pair are UTF-8 strings */
        ok = take_str(&p, end, &out->str) && take_str(&p, end, &out->value);
        break;
    }
    if (!ok)
        goto bad;
    out->raw.p = it->p;
    out->raw.len = (size_t)(p - it->p);
    it->p = p;
    return true;
bad:
    it->p = it->end;
    return false;
}

void mqtt_props_iter_init_raw(struct mqtt_props_iter *it, const uint8_t *buf, size_t len)
{
    it->p = buf;
    it->end = buf ? buf + len : buf;
}

void mqtt_props_iter_init(struct mqtt_props_iter *it, const struct mqtt_props *props)
{
    mqtt_props_iter_init_raw(it, props->block.p, props->block.len);
}

bool mqtt_props_iter_next(struct mqtt_props_iter *it, struct mqtt_prop *out)
{
    return it->p != it->end && prop_parse(it, out);
}

bool mqtt_props_next_user(struct mqtt_props_iter *it, struct mqtt_user_prop *out)
{
    struct mqtt_prop pr;

    while (mqtt_props_iter_next(it, &pr)) {
        if (pr.id == MQTT_PROP_USER_PROPERTY) {
            out->name = pr.str;
            out->value = pr.value;
            return true;
        }
    }
    return false;
}

bool mqtt_props_next_sub_id(struct mqtt_props_iter *it, uint32_t *out)
{
    struct mqtt_prop pr;

    while (mqtt_props_iter_next(it, &pr)) {
        if (pr.id == MQTT_PROP_SUBSCRIPTION_ID) {
            *out = pr.num;
            return true;
        }
    }
    return false;
}

/* Where the value of single-valued property d lives in *p. */
static void *field(struct mqtt_props *p, const struct prop_def *d)
{
    return (char *)p + d->off;
}

static const void *cfield(const struct mqtt_props *p, const struct prop_def *d)
{
    return (const char *)p + d->off;
}

/*
 * Record a parsed property that is allowed for `kind`. Returns MQTT_OK or
 * MQTT_RC_PROTOCOL_ERROR; the value is stored either way, the caller keeps
 * parsing so that a later malformed property still wins.
 */
static int prop_store(uint8_t kind, const struct mqtt_prop *pr, struct mqtt_props *out)
{
    const struct prop_def *d = &defs[pr->id];
    bool seen = mqtt_props_has(out, pr->id);
    int rc = MQTT_OK;

    mqtt_props_set(out, pr->id);
    switch (d->type) {
    case MQTT_PROP_T_BYTE:
        *(uint8_t *)field(out, d) = (uint8_t)pr->num;
        break;
    case MQTT_PROP_T_U16:
        *(uint16_t *)field(out, d) = (uint16_t)pr->num;
        break;
    case MQTT_PROP_T_U32:
        *(uint32_t *)field(out, d) = pr->num;
        break;
    case MQTT_PROP_T_VARINT:
        /* Subscription Identifier, the only one: keep the first. */
        if (out->sub_id_count++ == 0)
            out->subscription_id = pr->num;
        break;
    case MQTT_PROP_T_UTF8:
    case MQTT_PROP_T_BINARY:
        *(struct mqtt_bytes *)field(out, d) = pr->str;
        break;
    default:
        out->user_prop_count++;
        return MQTT_OK;
    }
    /* 3.x, each single-valued property: "It is a Protocol Error to include
     * X more than once". PUBLISH may carry several Subscription Identifiers
     * (3.3.2.3.8, MQTT-3.3.4-4); SUBSCRIBE at most one (3.8.2.1.2). */
    if (seen && !(pr->id == MQTT_PROP_SUBSCRIPTION_ID && kind == MQTT_PUBLISH))
        rc = MQTT_RC_PROTOCOL_ERROR;
    if ((d->flags & F_BOOL) && pr->num > 1)
        rc = MQTT_RC_PROTOCOL_ERROR;
    if ((d->flags & F_NONZERO) && pr->num == 0)
        rc = MQTT_RC_PROTOCOL_ERROR;
    if ((d->flags & F_TOPIC) && !mqtt_topic_name_valid(pr->str.p, pr->str.len))
        rc = MQTT_RC_PROTOCOL_ERROR; /* MQTT-3.3.2-14, MQTT-4.7.3-1 */
    return rc;
}

int mqtt_props_decode(uint8_t kind, const uint8_t *buf, size_t len, struct mqtt_props *out)
{
    struct mqtt_props_iter it;
    struct mqtt_prop pr;
    int verdict = MQTT_OK;

    memset(out, 0, sizeof(*out));
    mqtt_props_iter_init_raw(&it, buf, len);
    out->block.p = it.p;
    out->block.len = (size_t)(it.end - it.p);
    while (it.p != it.end) {
        if (!prop_parse(&it, &pr))
            return MQTT_RC_MALFORMED;
        /* 2.2.2.2: "A Control Packet which contains an Identifier which is
         * not valid for its packet type ... is a Malformed Packet." */
        if (!mqtt_prop_allowed(pr.id, kind))
            return MQTT_RC_MALFORMED;
        int rc = prop_store(kind, &pr, out);

        if (verdict == MQTT_OK)
            verdict = rc;
    }
    /* 3.1.2.11.10: "It is a Protocol Error to include Authentication Data
     * if there is no Authentication Method." */
    if (verdict == MQTT_OK && kind == MQTT_CONNECT && mqtt_props_has(out, MQTT_PROP_AUTH_DATA) &&
        !mqtt_props_has(out, MQTT_PROP_AUTH_METHOD))
        verdict = MQTT_RC_PROTOCOL_ERROR;
    return verdict;
}

int mqtt_props_block_decode(const uint8_t *buf, size_t len, struct mqtt_bytes *content,
                            size_t *used)
{
    const uint8_t *p = buf, *end = buf ? buf + len : buf;
    uint32_t n;

    if (!take_varint(&p, end, &n) || (size_t)(end - p) < n)
        return MQTT_RC_MALFORMED;
    content->p = p;
    content->len = n;
    *used = (size_t)(p - buf) + n;
    return MQTT_OK;
}

/* ---- writing ---- */

/*
 * A writer that only counts when p is NULL, so that each *_size() and its
 * encoder run the same code and cannot disagree.
 */
struct wr {
    uint8_t *p;
    size_t n;
};

static void put_u8(struct wr *w, uint8_t v)
{
    if (w->p)
        w->p[w->n] = v;
    w->n++;
}

static void put_u16(struct wr *w, uint16_t v)
{
    put_u8(w, (uint8_t)(v >> 8));
    put_u8(w, (uint8_t)v);
}

static void put_u32(struct wr *w, uint32_t v)
{
    put_u16(w, (uint16_t)(v >> 16));
    put_u16(w, (uint16_t)v);
}

static void put_raw(struct wr *w, const uint8_t *s, size_t len)
{
    if (w->p && len)
        memcpy(w->p + w->n, s, len);
    w->n += len;
}

/* False when len does not fit the two-byte length (1.5.6). */
static bool put_bin(struct wr *w, struct mqtt_bytes b)
{
    if (b.len > 0xFFFF)
        return false;
    put_u16(w, (uint16_t)b.len);
    put_raw(w, b.p, b.len);
    return true;
}

static bool put_sub_id(struct wr *w, uint32_t id)
{
    if (id == 0 || id > MQTT_SUB_ID_MAX)
        return false;
    put_u8(w, MQTT_PROP_SUBSCRIPTION_ID);
    if (w->p)
        mqtt_varint_encode(w->p + w->n, id);
    w->n += mqtt_varint_size(id);
    return true;
}

static bool put_sub_ids(struct wr *w, const uint32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!put_sub_id(w, ids[i]))
            return false;
    return true;
}

/* One single-valued property from its field in *p. */
static bool put_prop(struct wr *w, uint8_t id, const struct mqtt_props *p)
{
    const struct prop_def *d = &defs[id];
    const void *v = cfield(p, d);

    put_u8(w, id);
    switch (d->type) {
    case MQTT_PROP_T_BYTE:
        put_u8(w, *(const uint8_t *)v);
        return true;
    case MQTT_PROP_T_U16:
        put_u16(w, *(const uint16_t *)v);
        return true;
    case MQTT_PROP_T_U32:
        put_u32(w, *(const uint32_t *)v);
        return true;
    default: /* UTF8, BINARY */
        return put_bin(w, *(const struct mqtt_bytes *)v);
    }
}

static bool props_content(struct wr *w, const struct mqtt_props *p, const uint32_t *sub_ids,
                          size_t n_sub, const struct mqtt_user_prop *users, size_t n_user)
{
    for (uint8_t id = 1; id <= MQTT_PROP_ID_MAX; id++) {
        uint8_t t = defs[id].type;

        /* The repeatables come from the arrays, not from `present`. */
        if (t == MQTT_PROP_T_NONE || t == MQTT_PROP_T_VARINT || t == MQTT_PROP_T_PAIR)
            continue;
        if (mqtt_props_has(p, id) && !put_prop(w, id, p))
            return false;
    }
    if (!put_sub_ids(w, sub_ids, n_sub))
        return false;
    for (size_t i = 0; i < n_user; i++) {
        put_u8(w, MQTT_PROP_USER_PROPERTY);
        if (!put_bin(w, users[i].name) || !put_bin(w, users[i].value))
            return false;
    }
    return true;
}

static bool forward_content(struct wr *w, const uint8_t *in, size_t len,
                            const struct mqtt_props_forward *f)
{
    struct mqtt_props_iter it;
    struct mqtt_prop pr;

    mqtt_props_iter_init_raw(&it, in, len);
    while (mqtt_props_iter_next(&it, &pr)) {
        switch (pr.id) {
        case MQTT_PROP_TOPIC_ALIAS:     /* the inbound connection's alias */
        case MQTT_PROP_SUBSCRIPTION_ID: /* not the subscriber's ids */
            break;
        case MQTT_PROP_MESSAGE_EXPIRY: /* MQTT-3.3.2-6: the time left */
            put_u8(w, MQTT_PROP_MESSAGE_EXPIRY);
            put_u32(w, f->message_expiry);
            break;
        default: /* MQTT-3.3.2-4, -15, -16, -17, -18, -20: unaltered */
            put_raw(w, pr.raw.p, pr.raw.len);
            break;
        }
    }
    if (!put_sub_ids(w, f->sub_ids, f->n_sub_ids))
        return false;
    if (f->topic_alias) {
        put_u8(w, MQTT_PROP_TOPIC_ALIAS);
        put_u16(w, f->topic_alias);
    }
    return true;
}

size_t mqtt_props_block_size(size_t content_len)
{
    if (content_len > MQTT_MAX_REMAINING_LENGTH)
        return 0;
    return mqtt_varint_size((uint32_t)content_len) + content_len;
}

size_t mqtt_props_len_encode(uint8_t *out, uint32_t content_len)
{
    return mqtt_varint_encode(out, content_len);
}

/* The prefix, then the content again, this time written. */
static size_t block_write(uint8_t *out, size_t content_len, struct wr *w)
{
    size_t total = mqtt_props_block_size(content_len);

    if (total == 0)
        return 0;
    size_t h = mqtt_props_len_encode(out, (uint32_t)content_len);

    w->p = out + h;
    w->n = 0;
    return total;
}

size_t mqtt_props_size(const struct mqtt_props *p, const uint32_t *sub_ids, size_t n_sub,
                       const struct mqtt_user_prop *users, size_t n_user)
{
    struct wr w = {NULL, 0};

    if (!props_content(&w, p, sub_ids, n_sub, users, n_user))
        return 0;
    return mqtt_props_block_size(w.n);
}

size_t mqtt_props_encode(uint8_t *out, const struct mqtt_props *p, const uint32_t *sub_ids,
                         size_t n_sub, const struct mqtt_user_prop *users, size_t n_user)
{
    struct wr w = {NULL, 0};

    if (!props_content(&w, p, sub_ids, n_sub, users, n_user))
        return 0;
    size_t total = block_write(out, w.n, &w);

    if (total)
        props_content(&w, p, sub_ids, n_sub, users, n_user);
    return total;
}

size_t mqtt_props_forward_size(const uint8_t *in, size_t len, const struct mqtt_props_forward *f)
{
    struct wr w = {NULL, 0};

    if (!forward_content(&w, in, len, f))
        return 0;
    return mqtt_props_block_size(w.n);
}

size_t mqtt_props_forward_encode(uint8_t *out, const uint8_t *in, size_t len,
                                 const struct mqtt_props_forward *f)
{
    struct wr w = {NULL, 0};

    if (!forward_content(&w, in, len, f))
        return 0;
    size_t total = block_write(out, w.n, &w);

    if (total)
        forward_content(&w, in, len, f);
    return total;
}
