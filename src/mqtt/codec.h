/*
 * codec: MQTT 3.1, 3.1.1 and 5.0 packets to and from bytes.
 *
 * Pure functions over caller buffers: no I/O, no allocation, no logging.
 * Decoders return views (pointer + length) into the caller's input, valid as
 * long as that input is. Encoders write into a caller buffer whose size the
 * matching *_size() function gives.
 *
 * Return values never mix kinds: framing returns MQTT_OK, MQTT_INCOMPLETE
 * (need more bytes) or an MQTT reason code (> 0) saying why the bytes are bad;
 * packet decoders return MQTT_OK or a reason code. Reason codes use the MQTT
 * 5.0 numbering for every protocol version; the broker maps them to MQTT 3
 * behaviour (a CONNACK return code, or closing the connection).
 *
 * MQTT 5.0 property blocks are returned undecoded (struct mqtt_bytes: the
 * bytes after the Property Length) once that length has been checked to fit;
 * mqtt/props.h validates and decodes them for the packet they came in.
 */
#ifndef RINGMQ_MQTT_CODEC_H
#define RINGMQ_MQTT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mqtt_packet_type {
    MQTT_CONNECT = 1,
    MQTT_CONNACK = 2,
    MQTT_PUBLISH = 3,
    MQTT_PUBACK = 4,
    MQTT_PUBREC = 5,
    MQTT_PUBREL = 6,
    MQTT_PUBCOMP = 7,
    MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9,
    MQTT_UNSUBSCRIBE = 10,
    MQTT_UNSUBACK = 11,
    MQTT_PINGREQ = 12,
    MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14,
    MQTT_AUTH = 15,
};

/* Protocol levels (the CONNECT "protocol level" byte). */
enum mqtt_version {
    MQTT_V31 = 3,  /* protocol name "MQIsdp" */
    MQTT_V311 = 4, /* protocol name "MQTT" */
    MQTT_V5 = 5,   /* protocol name "MQTT" */
};

enum {
    MQTT_OK = 0,
    MQTT_INCOMPLETE = -1, /* not an error: more bytes are needed */
};

/* Reason codes (MQTT 5.0 section 2.4), used by every decoder. */
enum mqtt_reason {
    MQTT_RC_SUCCESS = 0x00,
    MQTT_RC_GRANTED_QOS1 = 0x01,
    MQTT_RC_GRANTED_QOS2 = 0x02,
    MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    MQTT_RC_UNSPECIFIED = 0x80,
    MQTT_RC_MALFORMED = 0x81,
    MQTT_RC_PROTOCOL_ERROR = 0x82,
    MQTT_RC_IMPL_SPECIFIC = 0x83,
    MQTT_RC_UNSUPPORTED_VERSION = 0x84,
    MQTT_RC_CLIENT_ID_INVALID = 0x85,
    MQTT_RC_BAD_CREDENTIALS = 0x86,
    MQTT_RC_NOT_AUTHORIZED = 0x87,
    MQTT_RC_SERVER_UNAVAILABLE = 0x88,
    MQTT_RC_SERVER_BUSY = 0x89,
    MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
    MQTT_RC_KEEPALIVE_TIMEOUT = 0x8D,
    MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
    MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
    MQTT_RC_TOPIC_NAME_INVALID = 0x90,
    MQTT_RC_PACKET_ID_IN_USE = 0x91,
    MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
    MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,
    MQTT_RC_PACKET_TOO_LARGE = 0x95,
    MQTT_RC_QUOTA_EXCEEDED = 0x97,
    MQTT_RC_ADMINISTRATIVE_ACTION = 0x98,
    MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
};

/* MQTT 3.1/3.1.1 CONNACK return codes. */
enum mqtt_connack_v3 {
    MQTT_CONNACK_ACCEPTED = 0,
    MQTT_CONNACK_BAD_PROTOCOL = 1,
    MQTT_CONNACK_ID_REJECTED = 2,
    MQTT_CONNACK_UNAVAILABLE = 3,
    MQTT_CONNACK_BAD_CREDENTIALS = 4,
    MQTT_CONNACK_NOT_AUTHORIZED = 5,
};

/* A borrowed view of a string or binary field. */
struct mqtt_bytes {
    const uint8_t *p;
    size_t len;
};

/* Largest remaining length the protocol can express (MQTT-2.2.3). */
#define MQTT_MAX_REMAINING_LENGTH 268435455u

/* The fixed header of one packet at the start of a buffer. */
struct mqtt_frame {
    uint8_t type;       /* enum mqtt_packet_type */
    uint8_t flags;      /* low nibble of the first byte */
    uint8_t header_len; /* 2..5: first byte + remaining-length bytes */
    uint32_t body_len;  /* the remaining length */
    size_t total_len;   /* header_len + body_len */
};

/*
 * Look at the start of buf. Returns MQTT_OK with *out filled when the fixed
 * header is complete and the whole packet (total_len) fits max_packet_size,
 * even if the body has not fully arrived (compare total_len with len);
 * MQTT_INCOMPLETE when the fixed header itself is not complete;
 * MQTT_RC_MALFORMED for type 0 or a remaining length longer than 4 bytes
 * or longer than its value needs (a last byte of 0, v5 MQTT-1.5.5-1);
 * MQTT_RC_PACKET_TOO_LARGE when total_len > max_packet_size.
 * max_packet_size 0 means the protocol maximum.
 */
int mqtt_frame_decode(const uint8_t *buf, size_t len, uint32_t max_packet_size,
                      struct mqtt_frame *out);

/*
 * The fixed-header flag rule for `type` (MQTT-2.2.2-1, MQTT-2.2.2-2): 0b0010
 * for PUBREL, SUBSCRIBE, UNSUBSCRIBE; any but QoS 3 for PUBLISH
 * (MQTT-3.3.1-4); 0 for the rest. The decoders that take `flags` check it
 * themselves; mqtt_connack_decode and mqtt_suback_decode take no flags, so
 * their callers check it here. False for type 0.
 */
bool mqtt_frame_flags_valid(uint8_t type, uint8_t flags);

struct mqtt_connect {
    uint8_t version; /* enum mqtt_version */
    bool clean_start;
    bool will;
    uint8_t will_qos;
    bool will_retain;
    bool has_username;
    bool has_password;
    uint16_t keepalive;
    struct mqtt_bytes props; /* v5 CONNECT properties, undecoded */
    struct mqtt_bytes client_id;
    struct mqtt_bytes will_props; /* v5 will properties, undecoded */
    struct mqtt_bytes will_topic;
    struct mqtt_bytes will_payload;
    struct mqtt_bytes username;
    struct mqtt_bytes password;
};

/*
 * Decode a CONNECT body (flags must be 0: checked here, MQTT-2.2.2-2).
 * Returns MQTT_OK;
 * MQTT_RC_UNSUPPORTED_VERSION when the protocol name is known but the level
 * is not (MQTT-3.1.2-2), *out->version is then the level seen;
 * MQTT_RC_MALFORMED for a bad protocol name (MQTT-3.1.2-1), the reserved
 * flag set (MQTT-3.1.2-3), will flag rules (MQTT-3.1.2-11, -13, -14, -15),
 * password without username in 3.1/3.1.1 (MQTT-3.1.2-22), invalid UTF-8 in
 * client id, will topic or username (MQTT-1.5.3-1, -2), truncated fields or
 * trailing bytes;
 * MQTT_RC_TOPIC_NAME_INVALID for a will topic with wildcards or empty.
 * Client id content rules (empty ids, length) are the caller's.
 */
int mqtt_connect_decode(uint8_t flags, const uint8_t *body, size_t len, struct mqtt_connect *out);

/*
 * The protocol level of a CONNECT of which only the first `len` bytes of
 * the body (variable header onward) have arrived, for answering a CONNECT
 * refused before it is read in the client's own protocol. Returns the
 * level once the protocol name ("MQTT" or "MQIsdp") and level are there;
 * MQTT_INCOMPLETE before; MQTT_RC_MALFORMED for another name.
 */
int mqtt_connect_peek_version(const uint8_t *body, size_t len);

struct mqtt_publish {
    uint8_t qos;
    bool dup;
    bool retain;
    struct mqtt_bytes topic;
    uint16_t packet_id;      /* 0 for QoS 0 */
    struct mqtt_bytes props; /* v5 only */
    struct mqtt_bytes payload;
};

/*
 * Decode a PUBLISH. Returns MQTT_OK; MQTT_RC_MALFORMED for QoS 3
 * (MQTT-3.3.1-4), DUP set on QoS 0 (MQTT-3.3.1-2), packet id 0 on QoS > 0
 * (MQTT-2.3.1-1), invalid UTF-8 topic, truncation; MQTT_RC_TOPIC_NAME_INVALID
 * for wildcards in the topic (MQTT-3.3.2-2) or an empty topic in 3.1/3.1.1
 * (MQTT-4.7.3-1; v5 allows empty with a topic alias, left to the caller).
 */
int mqtt_publish_decode(uint8_t flags, const uint8_t *body, size_t len, uint8_t version,
                        struct mqtt_publish *out);

/* PUBACK, PUBREC, PUBREL, PUBCOMP, and the v3 UNSUBACK shape. */
struct mqtt_ack {
    uint16_t packet_id;
    uint8_t reason;          /* v5 reason code, MQTT_RC_SUCCESS when absent */
    struct mqtt_bytes props; /* v5 only */
};

/*
 * Decode PUBACK/PUBREC/PUBREL/PUBCOMP of `type`, or in 3.1/3.1.1 an
 * UNSUBACK (the same shape). Flags must be 0b0010 for PUBREL (MQTT-3.6.1-1;
 * from a 3.1 client also 0b1010, DUP set on a resend as MQTT 3.1 §2.1 asks)
 * and 0 otherwise (MQTT-2.2.2-2); packet id non-zero. In 3.1/3.1.1 the body
 * is exactly 2 bytes; in 5.0 a reason code, then a property block that ends
 * the packet, may follow. Returns MQTT_OK or MQTT_RC_MALFORMED (also for
 * another type).
 */
int mqtt_ack_decode(uint8_t type, uint8_t flags, const uint8_t *body, size_t len, uint8_t version,
                    struct mqtt_ack *out);

/* SUBSCRIBE and UNSUBSCRIBE: the entries are walked with an iterator. */
struct mqtt_subscribe {
    uint16_t packet_id;
    struct mqtt_bytes props;   /* v5 only */
    struct mqtt_bytes entries; /* the payload, already validated */
    uint32_t count;            /* number of entries (>= 1) */
};

/*
 * Decode a SUBSCRIBE. Checks flags 0b0010 (MQTT-3.8.1-1; from a 3.1 client
 * also 0b1010, DUP set on a resend as MQTT 3.1 §2.1 asks), packet id
 * non-zero, at least one entry (MQTT-3.8.3-3), every filter non-empty valid
 * UTF-8 and every options byte: QoS <= 2 and reserved bits zero
 * (MQTT-3.8.3-4; in v5 bits 6-7 reserved and retain handling <= 2).
 * Wildcard placement is NOT checked here (mqtt_topic_filter_valid), so a v5
 * broker can answer 0x8F per filter. Returns MQTT_OK or MQTT_RC_MALFORMED.
 */
int mqtt_subscribe_decode(uint8_t flags, const uint8_t *body, size_t len, uint8_t version,
                          struct mqtt_subscribe *out);

/* Same for UNSUBSCRIBE (flags 0b0010, MQTT-3.10.1-1, 3.1 DUP as above; at least one filter,
 * MQTT-3.10.3-2). Entries carry no options byte. */
int mqtt_unsubscribe_decode(uint8_t flags, const uint8_t *body, size_t len, uint8_t version,
                            struct mqtt_subscribe *out);

struct mqtt_sub_iter {
    const uint8_t *p;
    const uint8_t *end;
    bool has_options;
};

/* Start iterating a decoded SUBSCRIBE (has_options true) or UNSUBSCRIBE. */
void mqtt_sub_iter_init(struct mqtt_sub_iter *it, const struct mqtt_subscribe *s, bool has_options);

/* Next entry: filter and options byte (0 for UNSUBSCRIBE). False at the end. */
bool mqtt_sub_iter_next(struct mqtt_sub_iter *it, struct mqtt_bytes *filter, uint8_t *options);

/*
 * PINGREQ, PINGRESP, DISCONNECT (v3): flags 0 and empty body; DISCONNECT v5
 * may carry a reason code and properties. Returns MQTT_OK or
 * MQTT_RC_MALFORMED. *reason is set for DISCONNECT (0 when absent).
 */
int mqtt_empty_decode(uint8_t type, uint8_t flags, const uint8_t *body, size_t len, uint8_t version,
                      uint8_t *reason);

/* Client side decoders (used by ringmq-bench and tests). */
struct mqtt_connack {
    bool session_present;
    uint8_t code; /* v3 return code or v5 reason code */
    struct mqtt_bytes props;
};
int mqtt_connack_decode(const uint8_t *body, size_t len, uint8_t version, struct mqtt_connack *out);

/* SUBACK / UNSUBACK (v5 has reason codes in UNSUBACK): codes view into body. */
struct mqtt_suback {
    uint16_t packet_id;
    struct mqtt_bytes props;
    struct mqtt_bytes codes;
};
int mqtt_suback_decode(uint8_t type, const uint8_t *body, size_t len, uint8_t version,
                       struct mqtt_suback *out);

/* ---- encoders ----
 * Each writes a whole packet at `out` and returns its length in bytes.
 * `out` must have room for the matching *_size() (fixed-size packets: at
 * most the number of bytes stated).
 * A *_size() returns 0, and its encoder writes nothing and returns 0, when
 * a field exceeds 65535 bytes or the remaining length would exceed
 * MQTT_MAX_REMAINING_LENGTH. */

/* Variable byte integer, 1..4 bytes (v must be <= MQTT_MAX_REMAINING_LENGTH). */
size_t mqtt_varint_encode(uint8_t *out, uint32_t v);
/* Bytes mqtt_varint_encode would write. */
size_t mqtt_varint_size(uint32_t v);

/* CONNACK: 4 bytes in v3 (session_present ignored unless code is 0,
 * MQTT-3.2.2-4, and always in 3.1, which has no such flag), and for v5 with
 * an empty property block: 5 bytes. */
size_t mqtt_connack_encode(uint8_t *out, uint8_t version, bool session_present, uint8_t code);

size_t mqtt_publish_size(uint8_t version, size_t topic_len, size_t payload_len, uint8_t qos);
size_t mqtt_publish_encode(uint8_t *out, uint8_t version, uint8_t qos, bool dup, bool retain,
                           const uint8_t *topic, size_t topic_len, uint16_t packet_id,
                           const uint8_t *payload, size_t payload_len);

/* PUBACK/PUBREC/PUBREL/PUBCOMP (PUBREL gets flags 0b0010), and v3 UNSUBACK:
 * 4 bytes; v5 with a non-success reason: 5 bytes (at most 5). */
size_t mqtt_ack_encode(uint8_t *out, uint8_t type, uint8_t version, uint16_t packet_id,
                       uint8_t reason);

/* SUBACK (and v5 UNSUBACK with type MQTT_UNSUBACK) with n return codes. */
size_t mqtt_suback_size(uint8_t version, size_t n);
size_t mqtt_suback_encode(uint8_t *out, uint8_t type, uint8_t version, uint16_t packet_id,
                          const uint8_t *codes, size_t n);

/* PINGREQ / PINGRESP / v3 DISCONNECT: 2 bytes. v5 DISCONNECT with a reason:
 * 4 bytes (reason + empty property block); at most 4. */
size_t mqtt_simple_encode(uint8_t *out, uint8_t type, uint8_t version, uint8_t reason);

/* Client side encoders (ringmq-bench, tests). */
struct mqtt_connect_opts {
    uint8_t version;
    bool clean_start;
    uint16_t keepalive;
    struct mqtt_bytes client_id;
    bool will;
    uint8_t will_qos;
    bool will_retain;
    struct mqtt_bytes will_topic;
    struct mqtt_bytes will_payload;
    bool has_username;
    struct mqtt_bytes username;
    bool has_password;
    struct mqtt_bytes password;
};
size_t mqtt_connect_size(const struct mqtt_connect_opts *o);
size_t mqtt_connect_encode(uint8_t *out, const struct mqtt_connect_opts *o);

/* SUBSCRIBE with n filters (options[i]: QoS and v5 option bits) and
 * UNSUBSCRIBE (options NULL). */
size_t mqtt_subscribe_size(uint8_t version, const struct mqtt_bytes *filters, size_t n,
                           bool unsubscribe);
size_t mqtt_subscribe_encode(uint8_t *out, uint8_t version, uint16_t packet_id,
                             const struct mqtt_bytes *filters, const uint8_t *options, size_t n,
                             bool unsubscribe);

#endif
