/*
 * props: MQTT 5.0 properties (section 2.2.2) to and from bytes.
 *
 * Pure functions over caller buffers, like the codec: no I/O, no
 * allocation, no logging. The codec hands property blocks over undecoded
 * (struct mqtt_bytes: the bytes after the Property Length); this module
 * validates one for a given packet kind and gives views into it, builds new
 * blocks, and rewrites a PUBLISH block for forwarding.
 *
 * Blocks written here always start with their Property Length (a variable
 * byte integer), because that is what a packet needs; blocks read here are
 * the bytes after it, because that is what the codec returns.
 */
#ifndef RINGMQ_MQTT_PROPS_H
#define RINGMQ_MQTT_PROPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt/codec.h"

/* Property identifiers (MQTT 5.0 section 2.2.2.2). */
enum mqtt_prop_id {
    MQTT_PROP_PAYLOAD_FORMAT = 0x01,
    MQTT_PROP_MESSAGE_EXPIRY = 0x02,
    MQTT_PROP_CONTENT_TYPE = 0x03,
    MQTT_PROP_RESPONSE_TOPIC = 0x08,
    MQTT_PROP_CORRELATION_DATA = 0x09,
    MQTT_PROP_SUBSCRIPTION_ID = 0x0B,
    MQTT_PROP_SESSION_EXPIRY = 0x11,
    MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,
    MQTT_PROP_SERVER_KEEPALIVE = 0x13,
    MQTT_PROP_AUTH_METHOD = 0x15,
    MQTT_PROP_AUTH_DATA = 0x16,
    MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,
    MQTT_PROP_WILL_DELAY = 0x18,
    MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,
    MQTT_PROP_RESPONSE_INFO = 0x1A,
    MQTT_PROP_SERVER_REFERENCE = 0x1C,
    MQTT_PROP_REASON_STRING = 0x1F,
    MQTT_PROP_RECEIVE_MAXIMUM = 0x21,
    MQTT_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,
    MQTT_PROP_TOPIC_ALIAS = 0x23,
    MQTT_PROP_MAXIMUM_QOS = 0x24,
    MQTT_PROP_RETAIN_AVAILABLE = 0x25,
    MQTT_PROP_USER_PROPERTY = 0x26,
    MQTT_PROP_MAXIMUM_PACKET_SIZE = 0x27,
    MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
    MQTT_PROP_SUB_ID_AVAILABLE = 0x29,
    MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

/* Largest property identifier; every identifier fits one byte. */
#define MQTT_PROP_ID_MAX 0x2A

/* Data types (MQTT 5.0 section 1.5). */
enum mqtt_prop_type {
    MQTT_PROP_T_NONE = 0, /* not a property identifier */
    MQTT_PROP_T_BYTE,
    MQTT_PROP_T_U16,    /* Two Byte Integer */
    MQTT_PROP_T_U32,    /* Four Byte Integer */
    MQTT_PROP_T_VARINT, /* Variable Byte Integer */
    MQTT_PROP_T_UTF8,   /* UTF-8 Encoded String */
    MQTT_PROP_T_BINARY, /* Binary Data */
    MQTT_PROP_T_PAIR,   /* UTF-8 String Pair */
};

/*
 * Where a block comes from: a value of enum mqtt_packet_type, or
 * MQTT_PROPS_WILL for the Will Properties of a CONNECT (packet type 0 is
 * reserved, so it cannot clash). PINGREQ and PINGRESP carry no properties.
 */
enum { MQTT_PROPS_WILL = 0 };

/* Largest Subscription Identifier (a variable byte integer, 3.8.2.1.2). */
#define MQTT_SUB_ID_MAX 268435455u

/* A User Property: two borrowed UTF-8 strings. */
struct mqtt_user_prop {
    struct mqtt_bytes name;
    struct mqtt_bytes value;
};

/*
 * The properties of one block. `present` has bit (1 << id) set for each
 * property that appeared (mqtt_props_has()); a value is meaningful only
 * when its bit is set. Strings and binary data are views into the decoded
 * block. The repeatable properties (User Property, Subscription Identifier)
 * are walked with the iterators below over `block`, in wire order; their
 * counts are here.
 *
 * For mqtt_props_size()/_encode() fill `present` and the values; `block`
 * and the counts are ignored there (repeatables come as arrays).
 */
struct mqtt_props {
    uint64_t present;

    uint8_t payload_format;               /* 0x01: 0 bytes, 1 UTF-8 */
    uint32_t message_expiry;              /* 0x02: seconds */
    struct mqtt_bytes content_type;       /* 0x03 */
    struct mqtt_bytes response_topic;     /* 0x08: a topic name */
    struct mqtt_bytes correlation_data;   /* 0x09 */
    uint32_t session_expiry;              /* 0x11: seconds */
    struct mqtt_bytes assigned_client_id; /* 0x12 */
    uint16_t server_keepalive;            /* 0x13: seconds */
    struct mqtt_bytes auth_method;        /* 0x15 */
    struct mqtt_bytes auth_data;          /* 0x16 */
    uint8_t request_problem_info;         /* 0x17: 0 or 1 */
    uint32_t will_delay;                  /* 0x18: seconds */
    uint8_t request_response_info;        /* 0x19: 0 or 1 */
    struct mqtt_bytes response_info;      /* 0x1A */
    struct mqtt_bytes server_reference;   /* 0x1C */
    struct mqtt_bytes reason_string;      /* 0x1F */
    uint16_t receive_maximum;             /* 0x21: 1..65535 */
    uint16_t topic_alias_maximum;         /* 0x22 */
    uint16_t topic_alias;                 /* 0x23: 1..65535 */
    uint8_t maximum_qos;                  /* 0x24: 0 or 1 */
    uint8_t retain_available;             /* 0x25: 0 or 1 */
    uint32_t maximum_packet_size;         /* 0x27: 1.. */
    uint8_t wildcard_sub_available;       /* 0x28: 0 or 1 */
    uint8_t sub_id_available;             /* 0x29: 0 or 1 */
    uint8_t shared_sub_available;         /* 0x2A: 0 or 1 */

    uint32_t subscription_id; /* 0x0B: the first one (SUBSCRIBE has at most one) */
    uint32_t sub_id_count;    /* 0x0B occurrences */
    uint32_t user_prop_count; /* 0x26 occurrences */
    struct mqtt_bytes block;  /* the decoded block, for the iterators */
};

/* True when property `id` appeared in (or is to be written from) p. */
static inline bool mqtt_props_has(const struct mqtt_props *p, uint8_t id)
{
    return id <= MQTT_PROP_ID_MAX && (p->present >> id & 1u);
}

/* Mark property `id` present (for building a block). */
static inline void mqtt_props_set(struct mqtt_props *p, uint8_t id)
{
    if (id <= MQTT_PROP_ID_MAX)
        p->present |= (uint64_t)1 << id;
}

/* The data type of property `id`; MQTT_PROP_T_NONE when it is not one. */
enum mqtt_prop_type mqtt_prop_type(uint8_t id);

/* True when property `id` may appear in a block of `kind` (a packet type
 * or MQTT_PROPS_WILL), as the table in MQTT 5.0 section 2.2.2.2 says. */
bool mqtt_prop_allowed(uint8_t id, uint8_t kind);

/*
 * Validate the property block at buf (the len bytes after the Property
 * Length) for a packet of `kind` and fill *out (zeroed first; views point
 * into buf). Returns:
 * MQTT_OK;
 * MQTT_RC_MALFORMED for an identifier that is unknown or not valid for the
 * kind (2.2.2.2), a value cut short by the end of the block, a variable
 * byte integer longer than needed (MQTT-1.5.5-1), or a string that is not
 * well-formed UTF-8 or contains U+0000 (MQTT-1.5.4-1, MQTT-1.5.4-2,
 * MQTT-1.5.7-1);
 * MQTT_RC_PROTOCOL_ERROR for a single-valued property that appears twice
 * (including a second Subscription Identifier on SUBSCRIBE), a byte
 * property other than 0 or 1, Receive Maximum, Maximum Packet Size, Topic
 * Alias (MQTT-3.3.2-8) or Subscription Identifier of 0, a Response Topic
 * that is not a valid topic name (MQTT-3.3.2-14), or Authentication Data
 * without Authentication Method on CONNECT (3.1.2.11.10).
 * The whole block is checked: when it holds both, MQTT_RC_MALFORMED wins.
 * On an error *out is partly filled and must not be used.
 *
 * Rules that need more than the block are the caller's: a Subscription
 * Identifier on a PUBLISH from a client (MQTT-3.3.4-6), a Topic Alias above
 * the maximum (MQTT-3.3.2-9..12), Session Expiry on DISCONNECT (3.14.2.2.2,
 * MQTT-3.14.2-2), an AUTH without Authentication Method (3.15.2.2.2).
 */
int mqtt_props_decode(uint8_t kind, const uint8_t *buf, size_t len, struct mqtt_props *out);

/* One property as the iterators see it. */
struct mqtt_prop {
    uint8_t id;
    uint32_t num;            /* BYTE, U16, U32 and VARINT values */
    struct mqtt_bytes str;   /* UTF8 and BINARY values; a PAIR's name */
    struct mqtt_bytes value; /* a PAIR's value */
    struct mqtt_bytes raw;   /* the whole encoded property, identifier first */
};

/* Walks a block in wire order. Plain data: copy it to restart. */
struct mqtt_props_iter {
    const uint8_t *p;
    const uint8_t *end;
};

/* Start at the first property of a block decoded into *props. */
void mqtt_props_iter_init(struct mqtt_props_iter *it, const struct mqtt_props *props);

/* Start at the first property of the raw block at buf (no length prefix). */
void mqtt_props_iter_init_raw(struct mqtt_props_iter *it, const uint8_t *buf, size_t len);

/* The next property of any identifier. False at the end of the block, and
 * at a property that does not parse (never on a block mqtt_props_decode
 * accepted); reads never leave the block. */
bool mqtt_props_iter_next(struct mqtt_props_iter *it, struct mqtt_prop *out);

/* The next User Property, in wire order (MQTT-3.3.2-18). False at the end. */
bool mqtt_props_next_user(struct mqtt_props_iter *it, struct mqtt_user_prop *out);

/* The next Subscription Identifier, in wire order. False at the end. */
bool mqtt_props_next_sub_id(struct mqtt_props_iter *it, uint32_t *out);

/* ---- writing ----
 * Every *_size() gives the whole block including its Property Length
 * prefix, so it is at least 1 (an empty block is the single byte 0,
 * MQTT-2.2.2-1). It returns 0, and its encoder writes nothing and returns
 * 0, when the block cannot be encoded: a string or binary value over 65535
 * bytes, a Subscription Identifier outside 1..MQTT_SUB_ID_MAX, or a block
 * longer than MQTT_MAX_REMAINING_LENGTH. `out` must have room for *_size()
 * bytes; the encoder returns the bytes written, equal to *_size(). */

/* Bytes of a block whose properties take content_len bytes: the Property
 * Length prefix plus content_len; 0 when content_len is too long. */
size_t mqtt_props_block_size(size_t content_len);

/* Write the Property Length prefix for content_len bytes of properties
 * (1..4 bytes, content_len <= MQTT_MAX_REMAINING_LENGTH); returns its
 * length. */
size_t mqtt_props_len_encode(uint8_t *out, uint32_t content_len);

/*
 * Read a Property Length and its block at buf: *content is the properties
 * (a view into buf), *used the prefix plus the block. Returns MQTT_OK, or
 * MQTT_RC_MALFORMED when the prefix is not a minimal variable byte integer
 * (MQTT-1.5.5-1) or the block runs past len.
 */
int mqtt_props_block_decode(const uint8_t *buf, size_t len, struct mqtt_bytes *content,
                            size_t *used);

/*
 * A block with every single-valued property present in *p, in identifier
 * order, then the n_sub Subscription Identifiers, then the n_user User
 * Properties in array order (so their order survives, MQTT-3.3.2-18).
 * The values are written as given: which properties suit which packet is
 * the caller's choice (mqtt_prop_allowed() says).
 */
size_t mqtt_props_size(const struct mqtt_props *p, const uint32_t *sub_ids, size_t n_sub,
                       const struct mqtt_user_prop *users, size_t n_user);
size_t mqtt_props_encode(uint8_t *out, const struct mqtt_props *p, const uint32_t *sub_ids,
                         size_t n_sub, const struct mqtt_user_prop *users, size_t n_user);

/* How to rewrite a PUBLISH block for one subscriber. */
struct mqtt_props_forward {
    uint32_t message_expiry; /* written in place of the received value when
                                the block has one (MQTT-3.3.2-6) */
    const uint32_t *sub_ids; /* the matching subscriptions' identifiers */
    size_t n_sub_ids;        /* (MQTT-3.3.4-3, MQTT-3.3.4-4) */
    uint16_t topic_alias;    /* 0: none (MQTT-3.3.2-8) */
};

/*
 * Rewrite the PUBLISH block at in (len bytes, no prefix; it must have
 * passed mqtt_props_decode for MQTT_PUBLISH) for forwarding: every property
 * is copied unchanged and in order (MQTT-3.3.2-4, MQTT-3.3.2-15,
 * MQTT-3.3.2-16, MQTT-3.3.2-17, MQTT-3.3.2-18, MQTT-3.3.2-20) except Topic
 * Alias and Subscription Identifier, which are dropped (they belong to the
 * inbound connection and subscription), and Message Expiry Interval, whose
 * value becomes f->message_expiry; then f's Subscription Identifiers and
 * topic alias are appended. A block that does not parse is copied up to
 * the first bad property only.
 */
size_t mqtt_props_forward_size(const uint8_t *in, size_t len, const struct mqtt_props_forward *f);
size_t mqtt_props_forward_encode(uint8_t *out, const uint8_t *in, size_t len,
                                 const struct mqtt_props_forward *f);

#endif
