/*
 * codec: MQTT 3.1, 3.1.1 and 5.0 packets to and from bytes.
 *
 * Owns nothing: every function works on caller buffers, decoders return
 * views into their input. Called from shard threads (broker) and from the
 * bench/test clients; no state, so any thread may call it. It must not
 * allocate, do I/O or log, and must never read outside the buffer it was
 * given whatever the bytes are: all reads go through struct rd, which
 * checks the remaining length before every access.
 *
 * Conformance ids are MQTT 3.1.1's unless marked "v5".
 */
#include "mqtt/codec.h"

#include <string.h>

#include "mqtt/topic.h"

/* ---- reading ---- */

/* A bounds-checked cursor over a packet body. */
struct rd {
    const uint8_t *p;
    size_t left;
};

static bool is_v5(uint8_t version)
{
    return version == MQTT_V5;
}

/*
 * Variable byte integer at p. MQTT_INCOMPLETE when the bytes end before its
 * last byte; MQTT_RC_MALFORMED when a fourth byte still has the continuation
 * bit, or when the encoding is longer than needed (v5 MQTT-1.5.5-1: a
 * trailing 0x00 byte adds nothing). Rejecting non-minimal forms in every
 * version keeps one canonical encoding per value.
 */
static int varint_parse(const uint8_t *p, size_t len, uint32_t *v, size_t *used)
{
    uint32_t value = 0;

    for (size_t i = 0; i < 4; i++) {
        if (i == len)
            return MQTT_INCOMPLETE;
        value |= (uint32_t)(p[i] & 0x7F) << (7 * i);
        if (!(p[i] & 0x80)) {
            if (i > 0 && p[i] == 0)
                return MQTT_RC_MALFORMED;
            *v = value;
            *used = i + 1;
            return MQTT_OK;
        }
    }
    return MQTT_RC_MALFORMED;
}

static bool rd_u8(struct rd *r, uint8_t *v)
{
    if (r->left < 1)
        return false;
    *v = r->p[0];
    r->p++;
    r->left--;
    return true;
}

static bool rd_u16(struct rd *r, uint16_t *v)
{
    if (r->left < 2)
        return false;
    *v = (uint16_t)(r->p[0] << 8 | r->p[1]);
    r->p += 2;
    r->left -= 2;
    return true;
}

static bool rd_take(struct rd *r, size_t n, struct mqtt_bytes *b)
{
    if (r->left < n)
        return false;
    b->p = r->p;
    b->len = n;
    r->p += n;
    r->left -= n;
    return true;
}

/* A packet identifier, which is never 0 where one is present (MQTT-2.3.1-1). */
static bool rd_packet_id(struct rd *r, uint16_t *id)
{
    return rd_u16(r, id) && *id != 0;
}

/* Binary data: a two-byte length and that many bytes (MQTT 1.5.6). */
static bool rd_bin(struct rd *r, struct mqtt_bytes *b)
{
    uint16_t n;

    return rd_u16(r, &n) && rd_take(r, n, b);
}

/* UTF-8 string: binary data that must be valid UTF-8 (MQTT-1.5.3-1, -2). */
static bool rd_str(struct rd *r, struct mqtt_bytes *b)
{
    return rd_bin(r, b) && mqtt_utf8_valid(b->p, b->len);
}

/* A v5 property block: varint length that must fit, bytes left undecoded. */
static bool rd_props(struct rd *r, struct mqtt_bytes *b)
{
    uint32_t n;
    size_t used;

    if (varint_parse(r->p, r->left, &n, &used) != MQTT_OK)
        return false;
    r->p += used;
    r->left -= used;
    return rd_take(r, n, b);
}

static void rd_init(struct rd *r, const uint8_t *body, size_t len)
{
    r->p = body;
    r->left = body ? len : 0;
}

/* ---- framing ---- */

bool mqtt_frame_flags_valid(uint8_t type, uint8_t flags)
{
    switch (type) {
    case MQTT_PUBLISH:
        return ((flags >> 1) & 3) != 3; /* MQTT-3.3.1-4 */
    case MQTT_PUBREL:
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return flags == 0x2; /* MQTT-3.6.1-1, MQTT-3.8.1-1, MQTT-3.10.1-1 */
    case MQTT_CONNECT:
    case MQTT_CONNACK:
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        return flags == 0; /* MQTT-2.2.2-1, MQTT-2.2.2-2 */
    default:
        return false;
    }
}

/*
 * MQTT 3.1 (§2.1) has a client that re-delivers a PUBREL, SUBSCRIBE or
 * UNSUBSCRIBE set DUP on it; 3.1.1 fixed those flags at 0b0010
 * (MQTT-3.6.1-1, MQTT-3.8.1-1, MQTT-3.10.1-1). For a 3.1 client the DUP bit
 * of those three is dropped before the 3.1.1 rule is applied.
 */
static uint8_t v31_without_dup(uint8_t type, uint8_t flags, uint8_t version)
{
    if (version == MQTT_V31 &&
        (type == MQTT_PUBREL || type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE))
        return flags & (uint8_t)~0x08;
    return flags;
}

int mqtt_frame_decode(const uint8_t *buf, size_t len, uint32_t max_packet_size,
                      struct mqtt_frame *out)
{
    uint32_t body_len;
    size_t used;
    int rc;

    if (!buf || len < 1)
        return MQTT_INCOMPLETE;
    if ((buf[0] >> 4) == 0)
        return MQTT_RC_MALFORMED; /* type 0 is reserved */
    rc = varint_parse(buf + 1, len - 1, &body_len, &used);
    if (rc != MQTT_OK)
        return rc;
    out->type = buf[0] >> 4;
    out->flags = buf[0] & 0x0F;
    out->header_len = (uint8_t)(1 + used);
    out->body_len = body_len;
    out->total_len = out->header_len + (size_t)body_len;
    if (max_packet_size != 0 && out->total_len > max_packet_size)
        return MQTT_RC_PACKET_TOO_LARGE;
    return MQTT_OK;
}

/* ---- server side decoders ---- */

/*
 * Protocol name and level. A known name with another level is
 * UNSUPPORTED_VERSION (MQTT-3.1.2-2) so the broker can still answer in the
 * client's protocol; an unknown name is malformed (MQTT-3.1.2-1).
 */
static int connect_decode_protocol(struct rd *r, uint8_t *version)
{
    struct mqtt_bytes name;

    if (!rd_bin(r, &name) || !rd_u8(r, version))
        return MQTT_RC_MALFORMED;
    if (name.len == 4 && memcmp(name.p, "MQTT", 4) == 0)
        return *version == MQTT_V311 || *version == MQTT_V5 ? MQTT_OK : MQTT_RC_UNSUPPORTED_VERSION;
    if (name.len == 6 && memcmp(name.p, "MQIsdp", 6) == 0)
        return *version == MQTT_V31 ? MQTT_OK : MQTT_RC_UNSUPPORTED_VERSION;
    return MQTT_RC_MALFORMED;
}

int mqtt_connect_peek_version(const uint8_t *body, size_t len)
{
    if (len < 2)
        return MQTT_INCOMPLETE;
    size_t name_len = (size_t)body[0] << 8 | body[1];
    bool mqtt = name_len == 4, mqisdp = name_len == 6;
    if (!mqtt && !mqisdp)
        return MQTT_RC_MALFORMED;
    /* Compare what is there: a wrong name is known before it is whole. */
    size_t have = len - 2 < name_len ? len - 2 : name_len;
    if (memcmp(body + 2, mqtt ? "MQTT" : "MQIsdp", have) != 0)
        return MQTT_RC_MALFORMED;
    if (len < 2 + name_len + 1)
        return MQTT_INCOMPLETE;
    return body[2 + name_len];
}

static int connect_decode_flags(uint8_t f, struct mqtt_connect *out)
{
    if (f & 0x01) /* MQTT-3.1.2-3 */
        return MQTT_RC_MALFORMED;
    out->clean_start = f & 0x02;
    out->will = f & 0x04;
    out->will_qos = (f >> 3) & 3;
    out->will_retain = f & 0x20;
    out->has_password = f & 0x40;
    out->has_username = f & 0x80;
    if (out->will && out->will_qos == 3) /* MQTT-3.1.2-14 */
        return MQTT_RC_MALFORMED;
    /* MQTT-3.1.2-11, MQTT-3.1.2-13, MQTT-3.1.2-15 */
    if (!out->will && (out->will_qos != 0 || out->will_retain))
        return MQTT_RC_MALFORMED;
    if (out->version != MQTT_V5 && out->has_password && !out->has_username)
        return MQTT_RC_MALFORMED; /* MQTT-3.1.2-22; v5 allows it */
    return MQTT_OK;
}

int mqtt_connect_decode(uint8_t flags, const uint8_t *body, size_t len, struct mqtt_connect *out)
{
    bool v5;
    int rc, topic_rc = MQTT_OK;
    struct rd r;
    uint8_t cflags;

    memset(out, 0, sizeof(*out));
    if (flags != 0) /* MQTT-2.2.2-2 */
        return MQTT_RC_MALFORMED;
    rd_init(&r, body, len);
    rc = connect_decode_protocol(&r, &out->version);
    if (rc != MQTT_OK)
        return rc;
    v5 = is_v5(out->version);
    if (!rd_u8(&r, &cflags))
        return MQTT_RC_MALFORMED;
    rc = connect_decode_flags(cflags, out);
    if (rc != MQTT_OK)
        return rc;
    if (!rd_u16(&r, &out->keepalive))
        return MQTT_RC_MALFORMED;
    if (v5 && !rd_props(&r, &out->props))
        return MQTT_RC_MALFORMED;

    /* Payload order is fixed: MQTT-3.1.3-1. */
    if (!rd_str(&r, &out->client_id))
        return MQTT_RC_MALFORMED;
    if (out->will) {
        if (v5 && !rd_props(&r, &out->will_props))
            return MQTT_RC_MALFORMED;
        if (!rd_str(&r, &out->will_topic))
            return MQTT_RC_MALFORMED;
        /* Reported only once the packet is known to be well-formed. */
        if (!mqtt_topic_name_valid(out->will_topic.p, out->will_topic.len))
            topic_rc = MQTT_RC_TOPIC_NAME_INVALID;
        if (!rd_bin(&r, &out->will_payload))
            return MQTT_RC_MALFORMED;
    }
    if (out->has_username && !rd_str(&r, &out->username))
        return MQTT_RC_MALFORMED;
    if (out->has_password && !rd_bin(&r, &out->password))
        return MQTT_RC_MALFORMED;
    if (r.left != 0)
        return MQTT_RC_MALFORMED;
    return topic_rc;
}

int mqtt_publish_decode(uint8_t flags, const uint8_t *body, size_t len, uint8_t version,
                        struct mqtt_publish *out)
{
    struct rd r;

    memset(out, 0, sizeof(*out));
    out->qos = (flags >> 1) & 3;
    out->dup = flags & 0x08;
    out->retain = flags & 0x01;
    if (out->qos == 3) /* MQTT-3.3.1-4 */
        return MQTT_RC_MALFORMED;
    if (out->qos == 0 && out->dup) /* MQTT-3.3.1-2 */
        return MQTT_RC_MALFORMED;
    rd_init(&r, body, len);
    if (!rd_str(&r, &out->topic))
        return MQTT_RC_MALFORMED;
    if (out->qos > 0) {
        if (!rd_packet_id(&r, &out->packet_id))
            return MQTT_RC_MALFORMED;
    }
    if (is_v5(version) && !rd_props(&r, &out->props))
        return MQTT_RC_MALFORMED;
    out->payload.p = r.p;
    out->payload.len = r.left;
    if (mqtt_topic_has_wildcard(out->topic.p, out->topic.len)) /* MQTT-3.3.2-2 */
        return MQTT_RC_TOPIC_NAME_INVALID;
    if (out->topic.len == 0 && !is_v5(version)) /* MQTT-4.7.3-1 */
        return MQTT_RC_TOPIC_NAME_INVALID;
    return MQTT_OK;
}

/*
 * The v5 shape shared by PUBACK..PUBCOMP and DISCONNECT: after what came
 * before, nothing (reason 0), one reason byte, or a reason byte and a
 * property block that must end the packet (v5 3.4.2.1).
 */
static int reason_props_decode(struct rd *r, uint8_t *reason, struct mqtt_bytes *props)
{
    *reason = MQTT_RC_SUCCESS;
    if (r->left == 0)
        return MQTT_OK;
    rd_u8(r, reason);
    if (r->left == 0)
        return MQTT_OK;
    if (!rd_props(r, props) || r->left != 0)
        return MQTT_RC_MALFORMED;
    return MQTT_OK;
}

int mqtt_ack_decode(uint8_t type, uint8_t flags, const uint8_t *body, size_t len, uint8_t version,
                    struct mqtt_ack *out)
{
    struct rd r;

    memset(out, 0, sizeof(*out));
    /* The v3 UNSUBACK has the same two-byte shape; the v5 one does not. */
    if (!(type >= MQTT_PUBACK && type <= MQTT_PUBCOMP) &&
        !(type == MQTT_UNSUBACK && !is_v5(version)))
        return MQTT_RC_MALFORMED;
    /* MQTT-3.6.1-1, MQTT-2.2.2-2 */
    if (!mqtt_frame_flags_valid(type, v31_without_dup(type, flags, version)))
        return MQTT_RC_MALFORMED;
    rd_init(&r, body, len);
    if (!rd_packet_id(&r, &out->packet_id))
        return MQTT_RC_MALFORMED;
    if (!is_v5(version))
        return r.left == 0 ? MQTT_OK : MQTT_RC_MALFORMED;
    return reason_props_decode(&r, &out->reason, &out->props);
}

/*
 * Common to SUBSCRIBE and UNSUBSCRIBE: walk the entries once so that the
 * iterator can trust them later.
 */
static int sub_decode(uint8_t flags, const uint8_t *body, size_t len, uint8_t version,
                      bool has_options, struct mqtt_subscribe *out)
{
    struct rd r;

    memset(out, 0, sizeof(*out));
    uint8_t type = has_options ? MQTT_SUBSCRIBE : MQTT_UNSUBSCRIBE;
    if (v31_without_dup(type, flags, version) != 0x2) /* MQTT-3.8.1-1, MQTT-3.10.1-1 */
        return MQTT_RC_MALFORMED;
    rd_init(&r, body, len);
    if (!rd_packet_id(&r, &out->packet_id))
        return MQTT_RC_MALFORMED;
    if (is_v5(version) && !rd_props(&r, &out->props))
        return MQTT_RC_MALFORMED;
    out->entries.p = r.p;
    out->entries.len = r.left;
    while (r.left > 0) {
        struct mqtt_bytes filter;
        uint8_t opt;

        /* MQTT-4.7.3-1: a filter is at least one character. */
        if (!rd_str(&r, &filter) || filter.len == 0)
            return MQTT_RC_MALFORMED;
        if (has_options) {
            if (!rd_u8(&r, &opt))
                return MQTT_RC_MALFORMED;
            if ((opt & 3) == 3) /* MQTT-3.8.3-4 */
                return MQTT_RC_MALFORMED;
            if (is_v5(version) ? (opt & 0xC0) || ((opt >> 4) & 3) == 3 : (opt & 0xFC))
                return MQTT_RC_MALFORMED; /* MQTT-3.8.3-4; v5 MQTT-3.8.3-5 */
        }
        out->count++;
    }
    if (out->count == 0) /* MQTT-3.8.3-3, MQTT-3.10.3-2 */
        return MQTT_RC_MALFORMED;
    return MQTT_OK;
}

int mqtt_subscribe_decode(uint8_t flags, const uint8_t *body, size_t len, uint8_t version,
                          struct mqtt_subscribe *out)
{
    return sub_decode(flags, body, len, version, true, out);
}

int mqtt_unsubscribe_decode(uint8_t flags, const uint8_t *body, size_t len, uint8_t version,
                            struct mqtt_subscribe *out)
{
    return sub_decode(flags, body, len, version, false, out);
}

void mqtt_sub_iter_init(struct mqtt_sub_iter *it, const struct mqtt_subscribe *s, bool has_options)
{
    it->p = s->entries.p;
    it->end = s->entries.p ? s->entries.p + s->entries.len : NULL;
    it->has_options = has_options;
}

bool mqtt_sub_iter_next(struct mqtt_sub_iter *it, struct mqtt_bytes *filter, uint8_t *options)
{
    struct rd r;
    uint8_t opt = 0;

    if (!it->p || it->p >= it->end)
        return false;
    rd_init(&r, it->p, (size_t)(it->end - it->p));
    /* Validated by the decoder; checked again so a misuse cannot overread. */
    if (!rd_bin(&r, filter) || (it->has_options && !rd_u8(&r, &opt))) {
        it->p = it->end;
        return false;
    }
    it->p = r.p;
    if (options)
        *options = opt;
    return true;
}

int mqtt_empty_decode(uint8_t type, uint8_t flags, const uint8_t *body, size_t len, uint8_t version,
                      uint8_t *reason)
{
    struct rd r;
    struct mqtt_bytes props;
    uint8_t rc;

    if (reason)
        *reason = MQTT_RC_SUCCESS;
    if (type != MQTT_PINGREQ && type != MQTT_PINGRESP && type != MQTT_DISCONNECT)
        return MQTT_RC_MALFORMED;
    if (flags != 0) /* MQTT-2.2.2-2 */
        return MQTT_RC_MALFORMED;
    if (type != MQTT_DISCONNECT || !is_v5(version))
        return len == 0 ? MQTT_OK : MQTT_RC_MALFORMED;
    rd_init(&r, body, len);
    if (reason_props_decode(&r, &rc, &props) != MQTT_OK)
        return MQTT_RC_MALFORMED;
    if (reason)
        *reason = rc;
    return MQTT_OK;
}

/* ---- client side decoders ---- */

int mqtt_connack_decode(const uint8_t *body, size_t len, uint8_t version, struct mqtt_connack *out)
{
    struct rd r;
    uint8_t ack_flags;

    memset(out, 0, sizeof(*out));
    rd_init(&r, body, len);
    if (!rd_u8(&r, &ack_flags) || !rd_u8(&r, &out->code))
        return MQTT_RC_MALFORMED;
    if (ack_flags & 0xFE) /* reserved bits: MQTT 3.2.2.1, v5 MQTT-3.2.2-1 */
        return MQTT_RC_MALFORMED;
    out->session_present = ack_flags & 1;
    if (is_v5(version) && !rd_props(&r, &out->props))
        return MQTT_RC_MALFORMED;
    return r.left == 0 ? MQTT_OK : MQTT_RC_MALFORMED;
}

int mqtt_suback_decode(uint8_t type, const uint8_t *body, size_t len, uint8_t version,
                       struct mqtt_suback *out)
{
    struct rd r;

    memset(out, 0, sizeof(*out));
    if (type != MQTT_SUBACK && type != MQTT_UNSUBACK)
        return MQTT_RC_MALFORMED;
    rd_init(&r, body, len);
    if (!rd_packet_id(&r, &out->packet_id))
        return MQTT_RC_MALFORMED;
    if (type == MQTT_UNSUBACK && !is_v5(version))
        return r.left == 0 ? MQTT_OK : MQTT_RC_MALFORMED; /* no payload in v3 */
    if (is_v5(version) && !rd_props(&r, &out->props))
        return MQTT_RC_MALFORMED;
    rd_take(&r, r.left, &out->codes);
    if (out->codes.len == 0) /* one code per filter, and there was one */
        return MQTT_RC_MALFORMED;
    if (!is_v5(version)) {
        for (size_t i = 0; i < out->codes.len; i++) {
            uint8_t c = out->codes.p[i];

            if (c > 2 && c != 0x80) /* MQTT-3.9.3-2 */
                return MQTT_RC_MALFORMED;
        }
    }
    return MQTT_OK;
}

/* ---- encoders ---- */

size_t mqtt_varint_size(uint32_t v)
{
    if (v < 128u)
        return 1;
    if (v < 16384u)
        return 2;
    if (v < 2097152u)
        return 3;
    return 4;
}

size_t mqtt_varint_encode(uint8_t *out, uint32_t v)
{
    size_t n = 0;

    do {
        uint8_t b = v & 0x7F;

        v >>= 7;
        out[n++] = v ? (uint8_t)(b | 0x80) : b;
    } while (v && n < 4);
    return n;
}

static uint8_t *put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static uint8_t *put_bin(uint8_t *p, const uint8_t *s, size_t len)
{
    p = put_u16(p, (uint16_t)len);
    if (len)
        memcpy(p, s, len);
    return p + len;
}

/* Whole packet size for a body of `body` bytes, 0 when it cannot be sent. */
static size_t packet_size(size_t body)
{
    if (body > MQTT_MAX_REMAINING_LENGTH)
        return 0;
    return 1 + mqtt_varint_size((uint32_t)body) + body;
}

static uint8_t *put_header(uint8_t *p, uint8_t first, size_t body)
{
    *p++ = first;
    return p + mqtt_varint_encode(p, (uint32_t)body);
}

size_t mqtt_connack_encode(uint8_t *out, uint8_t version, bool session_present, uint8_t code)
{
    bool v5 = is_v5(version);

    out[0] = MQTT_CONNACK << 4;
    out[1] = v5 ? 3 : 2;
    /* MQTT-3.2.2-4 (v5 MQTT-3.2.2-6); 3.1 has no session present flag. */
    out[2] = session_present && code == 0 && version != MQTT_V31;
    out[3] = code;
    if (!v5)
        return 4;
    out[4] = 0; /* empty property block */
    return 5;
}

static size_t publish_body(uint8_t version, size_t topic_len, size_t payload_len, uint8_t qos)
{
    return 2 + topic_len + (qos ? 2 : 0) + (is_v5(version) ? 1 : 0) + payload_len;
}

size_t mqtt_publish_size(uint8_t version, size_t topic_len, size_t payload_len, uint8_t qos)
{
    if (topic_len > 0xFFFF || payload_len > MQTT_MAX_REMAINING_LENGTH)
        return 0;
    return packet_size(publish_body(version, topic_len, payload_len, qos));
}

size_t mqtt_publish_encode(uint8_t *out, uint8_t version, uint8_t qos, bool dup, bool retain,
                           const uint8_t *topic, size_t topic_len, uint16_t packet_id,
                           const uint8_t *payload, size_t payload_len)
{
    size_t total = mqtt_publish_size(version, topic_len, payload_len, qos);
    uint8_t *p = out;

    if (total == 0)
        return 0;
    p = put_header(p, (uint8_t)(MQTT_PUBLISH << 4 | dup << 3 | (qos & 3) << 1 | retain),
                   publish_body(version, topic_len, payload_len, qos));
    p = put_bin(p, topic, topic_len);
    if (qos)
        p = put_u16(p, packet_id);
    if (is_v5(version))
        *p++ = 0;
    if (payload_len)
        memcpy(p, payload, payload_len);
    return total;
}

size_t mqtt_ack_encode(uint8_t *out, uint8_t type, uint8_t version, uint16_t packet_id,
                       uint8_t reason)
{
    bool with_reason = is_v5(version) && reason != MQTT_RC_SUCCESS;

    out[0] = (uint8_t)(type << 4 | (type == MQTT_PUBREL ? 0x2 : 0)); /* MQTT-3.6.1-1 */
    out[1] = with_reason ? 3 : 2;
    put_u16(out + 2, packet_id);
    if (!with_reason)
        return 4;
    out[4] = reason; /* remaining length 3: no property block (v5 3.4.2.2.1) */
    return 5;
}

static size_t suback_body(uint8_t version, size_t n)
{
    return 2 + (is_v5(version) ? 1 : 0) + n;
}

size_t mqtt_suback_size(uint8_t version, size_t n)
{
    if (n > MQTT_MAX_REMAINING_LENGTH)
        return 0;
    return packet_size(suback_body(version, n));
}

size_t mqtt_suback_encode(uint8_t *out, uint8_t type, uint8_t version, uint16_t packet_id,
                          const uint8_t *codes, size_t n)
{
    size_t total = mqtt_suback_size(version, n);
    uint8_t *p = out;

    if (total == 0)
        return 0;
    p = put_header(p, (uint8_t)(type << 4), suback_body(version, n));
    p = put_u16(p, packet_id);
    if (is_v5(version))
        *p++ = 0;
    if (n)
        memcpy(p, codes, n);
    return total;
}

size_t mqtt_simple_encode(uint8_t *out, uint8_t type, uint8_t version, uint8_t reason)
{
    out[0] = (uint8_t)(type << 4);
    /* v5 3.14.2.1: reason 0 and no properties may be left out entirely. */
    if (!is_v5(version) || type != MQTT_DISCONNECT || reason == MQTT_RC_SUCCESS) {
        out[1] = 0;
        return 2;
    }
    out[1] = 2;
    out[2] = reason;
    out[3] = 0;
    return 4;
}

static size_t connect_body(const struct mqtt_connect_opts *o)
{
    bool v5 = is_v5(o->version);
    size_t n = 2 + (o->version == MQTT_V31 ? 6 : 4) + 1 + 1 + 2 + (v5 ? 1 : 0);

    n += 2 + o->client_id.len;
    if (o->will)
        n += (v5 ? 1 : 0) + 2 + o->will_topic.len + 2 + o->will_payload.len;
    if (o->has_username)
        n += 2 + o->username.len;
    if (o->has_password)
        n += 2 + o->password.len;
    return n;
}

size_t mqtt_connect_size(const struct mqtt_connect_opts *o)
{
    if (o->client_id.len > 0xFFFF)
        return 0;
    if (o->will && (o->will_topic.len > 0xFFFF || o->will_payload.len > 0xFFFF))
        return 0;
    if ((o->has_username && o->username.len > 0xFFFF) ||
        (o->has_password && o->password.len > 0xFFFF))
        return 0;
    return packet_size(connect_body(o));
}

size_t mqtt_connect_encode(uint8_t *out, const struct mqtt_connect_opts *o)
{
    size_t total = mqtt_connect_size(o);
    bool v5 = is_v5(o->version);
    uint8_t *p = out;
    uint8_t flags = 0;

    if (total == 0)
        return 0;
    p = put_header(p, MQTT_CONNECT << 4, connect_body(o));
    if (o->version == MQTT_V31)
        p = put_bin(p, (const uint8_t *)"MQIsdp", 6);
    else
        p = put_bin(p, (const uint8_t *)"MQTT", 4);
    *p++ = o->version;
    if (o->clean_start)
        flags |= 0x02;
    if (o->will)
        flags |= (uint8_t)(0x04 | (o->will_qos & 3) << 3 | (o->will_retain ? 0x20 : 0));
    if (o->has_password)
        flags |= 0x40;
    if (o->has_username)
        flags |= 0x80;
    *p++ = flags;
    p = put_u16(p, o->keepalive);
    if (v5)
        *p++ = 0;
    p = put_bin(p, o->client_id.p, o->client_id.len);
    if (o->will) {
        if (v5)
            *p++ = 0;
        p = put_bin(p, o->will_topic.p, o->will_topic.len);
        p = put_bin(p, o->will_payload.p, o->will_payload.len);
    }
    if (o->has_username)
        p = put_bin(p, o->username.p, o->username.len);
    if (o->has_password)
        put_bin(p, o->password.p, o->password.len);
    return total;
}

static size_t subscribe_body(uint8_t version, const struct mqtt_bytes *filters, size_t n,
                             bool unsubscribe)
{
    size_t body = 2 + (is_v5(version) ? 1 : 0);

    for (size_t i = 0; i < n; i++) {
        if (filters[i].len > 0xFFFF)
            return SIZE_MAX;
        body += 2 + filters[i].len + (unsubscribe ? 0 : 1);
        if (body > MQTT_MAX_REMAINING_LENGTH)
            return SIZE_MAX;
    }
    return body;
}

size_t mqtt_subscribe_size(uint8_t version, const struct mqtt_bytes *filters, size_t n,
                           bool unsubscribe)
{
    return packet_size(subscribe_body(version, filters, n, unsubscribe));
}

size_t mqtt_subscribe_encode(uint8_t *out, uint8_t version, uint16_t packet_id,
                             const struct mqtt_bytes *filters, const uint8_t *options, size_t n,
                             bool unsubscribe)
{
    size_t total = mqtt_subscribe_size(version, filters, n, unsubscribe);
    uint8_t type = unsubscribe ? MQTT_UNSUBSCRIBE : MQTT_SUBSCRIBE;
    uint8_t *p = out;

    if (total == 0)
        return 0;
    /* MQTT-3.8.1-1, MQTT-3.10.1-1: flags 0b0010. */
    p = put_header(p, (uint8_t)(type << 4 | 0x2), subscribe_body(version, filters, n, unsubscribe));
    p = put_u16(p, packet_id);
    if (is_v5(version))
        *p++ = 0;
    for (size_t i = 0; i < n; i++) {
        p = put_bin(p, filters[i].p, filters[i].len);
        if (!unsubscribe)
            *p++ = options ? options[i] : 0;
    }
    return total;
}
