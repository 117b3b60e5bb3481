/* End-to-end harness, MQTT 5.0 part: a property-block builder, raw v5 packet
 * builders (CONNECT with properties, PUBLISH, SUBSCRIBE with options, acks with
 * reason codes, DISCONNECT, AUTH) and a decoder that reads any server packet into
 * its reason code(s) and properties, so tests can assert exact bytes where the
 * specification fixes them. Builds on harness.h (broker control, struct pkt, raw
 * sockets); like it, every wait is bounded and failures are Criterion asserts. */
#ifndef RINGMQ_E2E_HARNESS_V5_H
#define RINGMQ_E2E_HARNESS_V5_H

#include "harness.h"

/* MQTT 5.0 property identifiers (section 2.2.2.2). */
enum {
    P_PAYLOAD_FORMAT = 0x01,
    P_MESSAGE_EXPIRY = 0x02,
    P_CONTENT_TYPE = 0x03,
    P_RESPONSE_TOPIC = 0x08,
    P_CORRELATION_DATA = 0x09,
    P_SUBSCRIPTION_ID = 0x0b,
    P_SESSION_EXPIRY = 0x11,
    P_ASSIGNED_CLIENT_ID = 0x12,
    P_SERVER_KEEPALIVE = 0x13,
    P_AUTH_METHOD = 0x15,
    P_AUTH_DATA = 0x16,
    P_REQUEST_PROBLEM_INFO = 0x17,
    P_WILL_DELAY = 0x18,
    P_REQUEST_RESPONSE_INFO = 0x19,
    P_RESPONSE_INFO = 0x1a,
    P_SERVER_REFERENCE = 0x1c,
    P_REASON_STRING = 0x1f,
    P_RECEIVE_MAXIMUM = 0x21,
    P_TOPIC_ALIAS_MAXIMUM = 0x22,
    P_TOPIC_ALIAS = 0x23,
    P_MAXIMUM_QOS = 0x24,
    P_RETAIN_AVAILABLE = 0x25,
    P_USER_PROPERTY = 0x26,
    P_MAXIMUM_PACKET_SIZE = 0x27,
    P_WILDCARD_SUB_AVAILABLE = 0x28,
    P_SUB_ID_AVAILABLE = 0x29,
    P_SHARED_SUB_AVAILABLE = 0x2a,
};

/* Packet types (first byte >> 4). */
enum {
    T_CONNACK = 2,
    T_PUBLISH = 3,
    T_PUBACK = 4,
    T_PUBREC = 5,
    T_PUBREL = 6,
    T_PUBCOMP = 7,
    T_SUBACK = 9,
    T_UNSUBACK = 11,
    T_PINGRESP = 13,
    T_DISCONNECT = 14,
    T_AUTH = 15,
};

/* True when RINGMQ_E2E_BROKER selects mosquitto (usable before broker_start, so a
 * test can skip without starting anything). */
bool e2e_mosquitto(void);

/* ---- property blocks ---------------------------------------------------------- */

/* The properties of one packet, in the order added (the builder never sorts or
 * deduplicates: tests send duplicates on purpose). */
struct props {
    size_t len;
    uint8_t buf[8192];
};

void props_init(struct props *pr);
void props_u8(struct props *pr, uint8_t id, uint8_t v);
void props_u16(struct props *pr, uint8_t id, uint16_t v);
void props_u32(struct props *pr, uint8_t id, uint32_t v);
void props_varint(struct props *pr, uint8_t id, uint32_t v);
void props_str(struct props *pr, uint8_t id, const char *s);
void props_bin(struct props *pr, uint8_t id, const void *data, size_t len);
/* User Property (0x26): a name/value string pair. */
void props_pair(struct props *pr, const char *name, const char *value);
/* Raw bytes (for malformed property blocks). */
void props_raw(struct props *pr, const void *data, size_t len);

/* Variable Byte Integer and a property block (length + bytes; NULL = empty). */
void pkt_varint(struct pkt *p, uint32_t v);
void pkt_props(struct pkt *p, const struct props *pr);

/* ---- v5 packet builders -------------------------------------------------------- */

/* CONNECT at protocol level 5 from the struct raw_connect fields (level and
 * proto_name are ignored), with CONNECT and will properties (NULL = none). */
void pkt_connect5(struct pkt *p, const struct raw_connect *o, const struct props *props,
                  const struct props *will_props);
void pkt_publish5(struct pkt *p, const char *topic, const void *payload, size_t len, int qos,
                  bool retain, uint16_t mid, const struct props *props);
/* SUBSCRIBE one filter; options = QoS | No Local 0x04 | RAP 0x08 | Retain Handling << 4. */
void pkt_subscribe5(struct pkt *p, uint16_t mid, const char *filter, uint8_t options,
                    const struct props *props);
void pkt_unsubscribe5(struct pkt *p, uint16_t mid, const char *filter);
/* PUBACK/PUBREC/PUBREL/PUBCOMP with a reason code (and properties). */
void pkt_ack5(struct pkt *p, uint8_t first, uint16_t mid, uint8_t reason,
              const struct props *props);
/* DISCONNECT (0xe0) or AUTH (0xf0) with a reason code and properties. */
void pkt_reason5(struct pkt *p, uint8_t first, uint8_t reason, const struct props *props);

#define SUB_NO_LOCAL 0x04
#define SUB_RAP      0x08
#define SUB_RH(n)    ((uint8_t)((n) << 4))

/* ---- v5 packet decoder --------------------------------------------------------- */

struct v5_prop {
    uint8_t id;
    uint32_t num;        /* byte, two byte, four byte and varint properties */
    const uint8_t *data; /* string/binary (User Property: the name) */
    size_t len;
    const uint8_t *data2; /* User Property: the value */
    size_t len2;
};

/* One packet from the server, decoded. Pointers point into raw. */
struct v5_pkt {
    int type;  /* first byte >> 4 */
    int flags; /* first byte & 15 */
    size_t rawlen;
    uint8_t raw[70000];
    uint16_t mid;
    int reason; /* CONNACK, acks, DISCONNECT, AUTH: the reason code (0 when omitted) */
    bool session_present;
    int ncodes; /* SUBACK/UNSUBACK reason codes */
    uint8_t codes[64];
    int nprops;
    struct v5_prop props[128];
    /* PUBLISH */
    int qos;
    bool dup, retain;
    char topic[1024];
    const uint8_t *payload;
    size_t len;
};

/* Reads and decodes one packet. Returns its length, 0 when the peer closed,
 * -ETIMEDOUT, or -EMSGSIZE; a malformed packet from the server fails the test. */
int v5_read(int fd, struct v5_pkt *out, int timeout_ms);
/* Reads one packet and asserts its type; returns out for chaining. */
struct v5_pkt *v5_expect(int fd, int type, struct v5_pkt *out);
/* Reads until a PUBLISH arrives, answering nothing; asserts one comes. */
void v5_expect_publish(int fd, struct v5_pkt *out);
/* Asserts that the server sends DISCONNECT with `reason` and then closes. When
 * reason_string is 1 a Reason String must be present, 0 absent, -1 either. */
void v5_expect_disconnect(int fd, int reason, int reason_string);
/* Asserts nothing arrives within ms (only to show absence). */
void v5_expect_nothing(int fd, int ms);

/* The n-th (0-based) property `id` of a packet, or NULL. */
const struct v5_prop *v5_prop(const struct v5_pkt *pk, uint8_t id, int nth);
int v5_prop_count(const struct v5_pkt *pk, uint8_t id);
/* Numeric value of property id (asserting it is present). */
uint32_t v5_prop_num(const struct v5_pkt *pk, uint8_t id);
/* True when string/binary property id is present and equals s. */
bool v5_prop_is(const struct v5_pkt *pk, uint8_t id, const char *s);
/* True when the payload of a PUBLISH equals s. */
bool v5_payload_is(const struct v5_pkt *pk, const char *s);

/* ---- v5 raw clients -------------------------------------------------------------- */

/* TCP connect + v5 CONNECT; fills *connack (asserting a CONNACK arrives; an AUTH
 * instead is left in *connack for the caller). Returns the fd. */
int v5_connect(const struct broker *b, const struct raw_connect *o, const struct props *props,
               const struct props *will_props, struct v5_pkt *connack);
/* Clean start, keepalive 60, the given id, CONNECT properties; asserts CONNACK 0. */
int v5_open(const struct broker *b, const char *id, const struct props *props);
/* SUBSCRIBE one filter and assert the SUBACK reason code. */
void v5_subscribe(int fd, uint16_t mid, const char *filter, uint8_t options,
                  const struct props *props, int want);
/* PUBLISH; for QoS 1 reads the PUBACK and returns its reason, for QoS 2 the PUBREC's
 * (then completes with PUBREL/PUBCOMP when it was a success); QoS 0 returns 0. */
int v5_publish(int fd, const char *topic, const char *payload, int qos, bool retain, uint16_t mid,
               const struct props *props);
/* Enhanced authentication: CONNECT with client id `id`, Authentication Method
 * and Data (the first answer in *out, as v5_connect), and an AUTH packet with
 * `reason`, the method and data. */
int v5_connect_auth(const struct broker *b, const char *id, const char *method, const char *data,
                    struct v5_pkt *out);
void v5_send_auth(int fd, uint8_t reason, const char *method, const char *data);
/* Sends DISCONNECT (reason, properties) and waits for the close. */
void v5_disconnect(int fd, uint8_t reason, const struct props *props);

#endif
