/*
 * Unit tests for src/mqtt/codec.c, through codec.h.
 *
 * Packets are written out by hand from the specifications, not produced by
 * the encoders, so that an encoder and a decoder cannot agree on the same
 * mistake. Truncation tests decode exact-size heap copies, so a read past
 * the given length is an ASan error, not a silent pass.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/codec.h"

/*
 * Keep a copy of n bytes in an exact-size heap buffer that outlives the
 * statement (decoded views point into it), so that ASan reports any read
 * past the end. The last KEEP_SLOTS copies stay reachable, never leaked.
 */
#define KEEP_SLOTS 64
static uint8_t *kept[KEEP_SLOTS];
static size_t kept_next;

static const uint8_t *keep(const uint8_t *p, size_t n)
{
    uint8_t **slot = &kept[kept_next++ % KEEP_SLOTS];

    free(*slot);
    *slot = malloc(n ? n : 1);
    cr_assert_not_null(*slot);
    memcpy(*slot, p, n);
    return *slot;
}

/* An array literal as (pointer, length) arguments. */
#define BYTES(...)                                                                                 \
    keep((const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})),                  \
        sizeof((const uint8_t[]){__VA_ARGS__})

#define S(lit) ((struct mqtt_bytes){(const uint8_t *)(lit), sizeof(lit) - 1})

static void assert_bytes(struct mqtt_bytes b, const void *p, size_t n)
{
    cr_assert_eq(b.len, n, "length %zu, expected %zu", b.len, n);
    if (n)
        cr_assert(memcmp(b.p, p, n) == 0);
}

#define ASSERT_STR(b, lit) assert_bytes((b), (lit), sizeof(lit) - 1)

static uint8_t *copy(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);

    cr_assert_not_null(c);
    if (n)
        memcpy(c, p, n);
    return c;
}

/* Frame a whole packet produced by an encoder; returns the body. */
static const uint8_t *frame_whole(const uint8_t *buf, size_t n, uint8_t type, struct mqtt_frame *f)
{
    cr_assert_eq(mqtt_frame_decode(buf, n, 0, f), MQTT_OK);
    cr_assert_eq(f->type, type);
    cr_assert_eq(f->total_len, n);
    return buf + f->header_len;
}

/* ---- sample packets (bodies, without the fixed header) ---- */

static const uint8_t connect_v311[] = {
    0x00, 0x04, 'M',  'Q',  'T', 'T', /* protocol name */
    0x04,                             /* level */
    0xEE,                             /* user, pass, will retain, will QoS 1, will, clean */
    0x00, 0x3C,                       /* keepalive */
    0x00, 0x03, 'c',  'i',  'd',      /* client id */
    0x00, 0x03, 'w',  '/',  't',      /* will topic */
    0x00, 0x02, 0x01, 0x02,           /* will payload */
    0x00, 0x01, 'u',                  /* username */
    0x00, 0x01, 0xFF,                 /* password */
};

static const uint8_t connect_v5[] = {
    0x00, 0x04, 'M',  'Q',  'T',  'T',  0x05, 0xEE, 0x00,
    0x3C, 0x05, 0x11, 0x00, 0x00, 0x00, 0x0A,             /* properties: session expiry 10 */
    0x00, 0x03, 'c',  'i',  'd',                          /* client id */
    0x02, 0x01, 0x01,                                     /* will properties: payload format 1 */
    0x00, 0x03, 'w',  '/',  't',  0x00, 0x02, 0x01, 0x02, /* will topic, payload */
    0x00, 0x01, 'u',  0x00, 0x01, 0xFF,                   /* username, password */
};

static const uint8_t connect_v31[] = {
    0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03, 0x02, 0x00, 0x3C, 0x00, 0x03, 'c', 'i', 'd',
};

/* QoS 1, empty payload: every truncation cuts a length-checked field. */
static const uint8_t publish_v311_q1[] = {0x00, 0x03, 'a', '/', 'b', 0x12, 0x34};
static const uint8_t publish_v5_q1[] = {0x00, 0x03, 'a', '/', 'b', 0x12, 0x34, 0x02, 0x01, 0x01};

/* One entry, so no truncation is a shorter valid packet. */
static const uint8_t subscribe_v311[] = {0x00, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x01};
static const uint8_t subscribe_v5[] = {0x00, 0x0A, 0x02, 0x0B, 0x01, /* sub id 1 */
                                       0x00, 0x03, 'a',  '/',  'b',  0x2D};

/* ---- framing ---- */

Test(frame, incomplete_fixed_header)
{
    struct mqtt_frame f;

    cr_assert_eq(mqtt_frame_decode(NULL, 0, 0, &f), MQTT_INCOMPLETE);
    cr_assert_eq(mqtt_frame_decode(BYTES(0x30), 0, &f), MQTT_INCOMPLETE);
    cr_assert_eq(mqtt_frame_decode(BYTES(0x30, 0x80), 0, &f), MQTT_INCOMPLETE);
    cr_assert_eq(mqtt_frame_decode(BYTES(0x30, 0xFF, 0xFF), 0, &f), MQTT_INCOMPLETE);
    cr_assert_eq(mqtt_frame_decode(BYTES(0x30, 0xFF, 0xFF, 0xFF), 0, &f), MQTT_INCOMPLETE);
}

Test(frame, type_0_is_malformed)
{
    struct mqtt_frame f;

    cr_assert_eq(mqtt_frame_decode(BYTES(0x00, 0x00), 0, &f), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_frame_decode(BYTES(0x0F), 0, &f), MQTT_RC_MALFORMED);
}

/* MQTT 2.2.3: at most four bytes of remaining length. */
Test(frame, remaining_length_fifth_byte_is_malformed)
{
    struct mqtt_frame f;

    cr_assert_eq(mqtt_frame_decode(BYTES(0x30, 0xFF, 0xFF, 0xFF, 0xFF), 0, &f), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_frame_decode(BYTES(0x30, 0x80, 0x80, 0x80, 0x80, 0x01), 0, &f),
                 MQTT_RC_MALFORMED);
}

/* v5 MQTT-1.5.5-1: the minimum number of bytes. */
Test(frame, mqtt_1_5_5_1_non_minimal_remaining_length)
{
    struct mqtt_frame f;

    cr_assert_eq(mqtt_frame_decode(BYTES(0xC0, 0x80, 0x00), 0, &f), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_frame_decode(BYTES(0x30, 0xFF, 0x00), 0, &f), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_frame_decode(BYTES(0x30, 0x80, 0x80, 0x80, 0x00), 0, &f), MQTT_RC_MALFORMED);
}

struct rl_case {
    uint32_t value;
    uint8_t bytes[4];
    uint8_t n;
};

static const struct rl_case rl_cases[] = {
    {0, {0x00}, 1},
    {127, {0x7F}, 1},
    {128, {0x80, 0x01}, 2},
    {16383, {0xFF, 0x7F}, 2},
    {16384, {0x80, 0x80, 0x01}, 3},
    {2097151, {0xFF, 0xFF, 0x7F}, 3},
    {2097152, {0x80, 0x80, 0x80, 0x01}, 4},
    {268435455, {0xFF, 0xFF, 0xFF, 0x7F}, 4},
};

Test(frame, remaining_length_boundaries)
{
    for (size_t i = 0; i < sizeof(rl_cases) / sizeof(rl_cases[0]); i++) {
        const struct rl_case *c = &rl_cases[i];
        uint8_t *buf = malloc(1 + c->n);
        struct mqtt_frame f;

        buf[0] = 0x32;
        memcpy(buf + 1, c->bytes, c->n);
        /* The body has not arrived: still OK, total_len says how much. */
        cr_assert_eq(mqtt_frame_decode(buf, 1 + c->n, 0, &f), MQTT_OK, "value %u", c->value);
        cr_assert_eq(f.type, MQTT_PUBLISH);
        cr_assert_eq(f.flags, 0x2);
        cr_assert_eq(f.body_len, c->value);
        cr_assert_eq(f.header_len, 1 + c->n);
        cr_assert_eq(f.total_len, (size_t)1 + c->n + c->value);
        /* Every prefix of the header is incomplete, never malformed. */
        for (size_t k = 0; k < 1u + c->n; k++) {
            uint8_t *pre = copy(buf, k);

            cr_assert_eq(mqtt_frame_decode(pre, k, 0, &f), MQTT_INCOMPLETE);
            free(pre);
        }
        free(buf);

        uint8_t enc[4];
        cr_assert_eq(mqtt_varint_size(c->value), c->n);
        cr_assert_eq(mqtt_varint_encode(enc, c->value), c->n);
        cr_assert(memcmp(enc, c->bytes, c->n) == 0, "value %u", c->value);
    }
}

Test(frame, max_packet_size)
{
    struct mqtt_frame f;
    const uint8_t pkt[] = {0x30, 0x08, 0, 0, 0, 0, 0, 0, 0, 0};

    cr_assert_eq(mqtt_frame_decode(pkt, sizeof(pkt), 10, &f), MQTT_OK);
    cr_assert_eq(mqtt_frame_decode(pkt, sizeof(pkt), 9, &f), MQTT_RC_PACKET_TOO_LARGE);
    /* Known from the header alone, before the body arrives. */
    cr_assert_eq(mqtt_frame_decode(pkt, 2, 9, &f), MQTT_RC_PACKET_TOO_LARGE);
    cr_assert_eq(mqtt_frame_decode(BYTES(0x30, 0xFF, 0xFF, 0xFF, 0x7F), 0, &f), MQTT_OK);
    cr_assert_eq(f.total_len, 5 + (size_t)MQTT_MAX_REMAINING_LENGTH);
    cr_assert_eq(mqtt_frame_decode(BYTES(0x30, 0xFF, 0xFF, 0xFF, 0x7F), 0xFFFFFFFFu, &f), MQTT_OK);
    cr_assert_eq(mqtt_frame_decode(BYTES(0x30, 0xFF, 0xFF, 0xFF, 0x7F), 1000, &f),
                 MQTT_RC_PACKET_TOO_LARGE);
}

Test(frame, type_and_flags_fields)
{
    struct mqtt_frame f;

    cr_assert_eq(mqtt_frame_decode(BYTES(0x3D, 0x00), 0, &f), MQTT_OK);
    cr_assert_eq(f.type, MQTT_PUBLISH);
    cr_assert_eq(f.flags, 0xD);
    cr_assert_eq(mqtt_frame_decode(BYTES(0xF0, 0x00, 0x99), 0, &f), MQTT_OK);
    cr_assert_eq(f.type, MQTT_AUTH);
    cr_assert_eq(f.total_len, 2);
}

/* MQTT-2.2.2-1, MQTT-2.2.2-2: the fixed flags of every packet type. */
Test(frame, mqtt_2_2_2_2_flags_valid)
{
    for (unsigned t = 0; t < 16; t++) {
        for (unsigned fl = 0; fl < 16; fl++) {
            bool want;

            if (t == 0)
                want = false;
            else if (t == MQTT_PUBLISH)
                want = ((fl >> 1) & 3) != 3; /* MQTT-3.3.1-4 */
            else if (t == MQTT_PUBREL || t == MQTT_SUBSCRIBE || t == MQTT_UNSUBSCRIBE)
                want = fl == 2;
            else
                want = fl == 0;
            cr_assert_eq(mqtt_frame_flags_valid((uint8_t)t, (uint8_t)fl), want, "type %u flags %u",
                         t, fl);
        }
    }
}

/* ---- CONNECT ---- */

Test(connect, v311_all_fields)
{
    struct mqtt_connect c;

    cr_assert_eq(mqtt_connect_decode(0, connect_v311, sizeof(connect_v311), &c), MQTT_OK);
    cr_assert_eq(c.version, MQTT_V311);
    cr_assert(c.clean_start);
    cr_assert(c.will);
    cr_assert_eq(c.will_qos, 1);
    cr_assert(c.will_retain);
    cr_assert(c.has_username);
    cr_assert(c.has_password);
    cr_assert_eq(c.keepalive, 60);
    cr_assert_eq(c.props.len, 0);
    cr_assert_eq(c.will_props.len, 0);
    ASSERT_STR(c.client_id, "cid");
    ASSERT_STR(c.will_topic, "w/t");
    ASSERT_STR(c.will_payload, "\x01\x02");
    ASSERT_STR(c.username, "u");
    ASSERT_STR(c.password, "\xFF");
}

Test(connect, v5_all_fields_and_property_views)
{
    struct mqtt_connect c;

    cr_assert_eq(mqtt_connect_decode(0, connect_v5, sizeof(connect_v5), &c), MQTT_OK);
    cr_assert_eq(c.version, MQTT_V5);
    cr_assert_eq(c.keepalive, 60);
    ASSERT_STR(c.props, "\x11\x00\x00\x00\x0A");
    cr_assert_eq(c.props.p, connect_v5 + 11, "view into the input");
    ASSERT_STR(c.client_id, "cid");
    ASSERT_STR(c.will_props, "\x01\x01");
    ASSERT_STR(c.will_topic, "w/t");
    ASSERT_STR(c.will_payload, "\x01\x02");
    ASSERT_STR(c.username, "u");
    ASSERT_STR(c.password, "\xFF");
}

Test(connect, v31_mqisdp)
{
    struct mqtt_connect c;

    cr_assert_eq(mqtt_connect_decode(0, connect_v31, sizeof(connect_v31), &c), MQTT_OK);
    cr_assert_eq(c.version, MQTT_V31);
    cr_assert(c.clean_start);
    cr_assert_not(c.will);
    cr_assert_not(c.has_username);
    ASSERT_STR(c.client_id, "cid");
}

Test(connect, minimal_empty_client_id)
{
    struct mqtt_connect c;

    /* Empty client ids are the caller's to judge. */
    cr_assert_eq(mqtt_connect_decode(0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 4, 0, 0, 0, 0, 0), &c),
                 MQTT_OK);
    cr_assert_eq(c.client_id.len, 0);
    cr_assert_not(c.clean_start);
    cr_assert_eq(c.keepalive, 0);
    cr_assert_eq(mqtt_connect_decode(0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 0, 0, 0, 0), &c),
                 MQTT_OK);
    cr_assert_eq(c.version, MQTT_V5);
}

/* MQTT-2.2.2-2: CONNECT flags are reserved zero. */
Test(connect, mqtt_2_2_2_2_fixed_flags)
{
    struct mqtt_connect c;

    for (uint8_t fl = 1; fl < 16; fl++)
        cr_assert_eq(mqtt_connect_decode(fl, connect_v311, sizeof(connect_v311), &c),
                     MQTT_RC_MALFORMED);
}

/* MQTT-3.1.2-2: a known name with an unsupported level. */
Test(connect, mqtt_3_1_2_2_unsupported_level)
{
    struct mqtt_connect c;

    cr_assert_eq(mqtt_connect_decode(0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 3, 2, 0, 0, 0, 0), &c),
                 MQTT_RC_UNSUPPORTED_VERSION);
    cr_assert_eq(c.version, 3);
    cr_assert_eq(mqtt_connect_decode(0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 6, 2, 0, 0, 0, 0), &c),
                 MQTT_RC_UNSUPPORTED_VERSION);
    cr_assert_eq(c.version, 6);
    cr_assert_eq(
        mqtt_connect_decode(0, BYTES(0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 4, 2, 0, 0, 0, 0), &c),
        MQTT_RC_UNSUPPORTED_VERSION);
    cr_assert_eq(c.version, 4);
    /* Even with nothing after the level byte: the broker answers first. */
    cr_assert_eq(mqtt_connect_decode(0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 0xFF), &c),
                 MQTT_RC_UNSUPPORTED_VERSION);
}

/* MQTT-3.1.2-1: an unknown protocol name. */
Test(connect, mqtt_3_1_2_1_protocol_name)
{
    struct mqtt_connect c;

    cr_assert_eq(mqtt_connect_decode(0, BYTES(0, 4, 'M', 'Q', 'T', 'X', 4, 2, 0, 0, 0, 0), &c),
                 MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_connect_decode(0, BYTES(0, 4, 'm', 'q', 't', 't', 4, 2, 0, 0, 0, 0), &c),
                 MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_connect_decode(0, BYTES(0, 3, 'M', 'Q', 'T', 4, 2, 0, 0, 0, 0), &c),
                 MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_connect_decode(0, BYTES(0, 0, 4, 2, 0, 0, 0, 0), &c), MQTT_RC_MALFORMED);
}

/* The level of a CONNECT refused before its body is read (too large). */
Test(connect, peek_version_of_a_partial_connect)
{
    static const uint8_t v5[] = {0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60};
    for (size_t n = 0; n < 7; n++)
        cr_assert_eq(mqtt_connect_peek_version(v5, n), MQTT_INCOMPLETE, "%zu bytes", n);
    for (size_t n = 7; n <= sizeof(v5); n++)
        cr_assert_eq(mqtt_connect_peek_version(v5, n), MQTT_V5, "%zu bytes", n);
    cr_assert_eq(mqtt_connect_peek_version(BYTES(0, 4, 'M', 'Q', 'T', 'T', 4)), MQTT_V311);
    cr_assert_eq(mqtt_connect_peek_version(BYTES(0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3)), MQTT_V31);
    cr_assert_eq(mqtt_connect_peek_version(BYTES(0, 6, 'M', 'Q', 'I', 's', 'd', 'p')),
                 MQTT_INCOMPLETE);
    /* Any level is reported: the caller decides what it answers. */
    cr_assert_eq(mqtt_connect_peek_version(BYTES(0, 4, 'M', 'Q', 'T', 'T', 7)), 7);
    /* A wrong name is known as soon as a byte of it differs. */
    cr_assert_eq(mqtt_connect_peek_version(BYTES(0, 4, 'M', 'X')), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_connect_peek_version(BYTES(0, 4, 'm', 'q', 't', 't', 5)), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_connect_peek_version(BYTES(0, 5, 'M', 'Q', 'T', 'T', 'X', 5)),
                 MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_connect_peek_version(BYTES(0x10, 4)), MQTT_RC_MALFORMED);
}

/* MQTT-3.1.2-3: the reserved connect flag. */
Test(connect, mqtt_3_1_2_3_reserved_flag)
{
    struct mqtt_connect c;

    cr_assert_eq(mqtt_connect_decode(0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 4, 3, 0, 0, 0, 0), &c),
                 MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_connect_decode(0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 5, 1, 0, 0, 0, 0, 0), &c),
                 MQTT_RC_MALFORMED);
}

/* MQTT-3.1.2-11, -13: no will means will QoS 0 and no will fields. */
Test(connect, mqtt_3_1_2_13_will_qos_without_will)
{
    struct mqtt_connect c;

    cr_assert_eq(mqtt_connect_decode(0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 4, 0x0A, 0, 0, 0, 0), &c),
                 MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_connect_decode(0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 4, 0x12, 0, 0, 0, 0), &c),
                 MQTT_RC_MALFORMED);
}

Test(connect, mqtt_3_1_2_11_will_fields_without_will)
{
    struct mqtt_connect c;

    /* A will topic and payload after the client id without the will flag. */
    cr_assert_eq(mqtt_connect_decode(
                     0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0, 0, 0, 0, 1, 't', 0, 0), &c),
                 MQTT_RC_MALFORMED);
}

/* MQTT-3.1.2-14: will QoS 3. */
Test(connect, mqtt_3_1_2_14_will_qos_3)
{
    struct mqtt_connect c;

    cr_assert_eq(mqtt_connect_decode(
                     0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 4, 0x1E, 0, 0, 0, 0, 0, 1, 't', 0, 0), &c),
                 MQTT_RC_MALFORMED);
    /* The same with will QoS 2 is fine. */
    cr_assert_eq(mqtt_connect_decode(
                     0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 4, 0x16, 0, 0, 0, 0, 0, 1, 't', 0, 0), &c),
                 MQTT_OK);
    cr_assert_eq(c.will_qos, 2);
}

/* MQTT-3.1.2-15: will retain without will. */
Test(connect, mqtt_3_1_2_15_will_retain_without_will)
{
    struct mqtt_connect c;

    cr_assert_eq(mqtt_connect_decode(0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 4, 0x22, 0, 0, 0, 0), &c),
                 MQTT_RC_MALFORMED);
}

/* MQTT-3.1.2-22: password without username in 3.1.1 (allowed in v5). */
Test(connect, mqtt_3_1_2_22_password_without_username)
{
    struct mqtt_connect c;

    cr_assert_eq(
        mqtt_connect_decode(0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 4, 0x42, 0, 0, 0, 0, 0, 1, 'p'), &c),
        MQTT_RC_MALFORMED);
    cr_assert_eq(
        mqtt_connect_decode(
            0, BYTES(0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0x42, 0, 0, 0, 0, 0, 1, 'p'), &c),
        MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_connect_decode(
                     0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 5, 0x42, 0, 0, 0, 0, 0, 0, 1, 'p'), &c),
                 MQTT_OK);
    cr_assert(c.has_password);
    cr_assert_not(c.has_username);
    ASSERT_STR(c.password, "p");
}

/* MQTT-1.5.3-1, MQTT-1.5.3-2 in every string field of CONNECT. */
Test(connect, mqtt_1_5_3_1_invalid_utf8_fields)
{
    struct mqtt_connect c;

    /* client id with U+0000 */
    cr_assert_eq(
        mqtt_connect_decode(0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 2, 'a', 0), &c),
        MQTT_RC_MALFORMED);
    /* client id with a surrogate */
    cr_assert_eq(mqtt_connect_decode(
                     0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 3, 0xED, 0xA0, 0x80), &c),
                 MQTT_RC_MALFORMED);
    /* will topic truncated sequence */
    cr_assert_eq(mqtt_connect_decode(
                     0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 4, 6, 0, 0, 0, 0, 0, 1, 0xC3, 0, 0), &c),
                 MQTT_RC_MALFORMED);
    /* username overlong */
    cr_assert_eq(mqtt_connect_decode(
                     0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 4, 0x82, 0, 0, 0, 0, 0, 2, 0xC0, 0x80), &c),
                 MQTT_RC_MALFORMED);
    /* the password is binary: anything goes */
    cr_assert_eq(mqtt_connect_decode(0,
                                     BYTES(0, 4, 'M', 'Q', 'T', 'T', 4, 0xC2, 0, 0, 0, 0, 0, 0, 0,
                                           3, 0x00, 0xC0, 0xFF),
                                     &c),
                 MQTT_OK);
}

Test(connect, will_topic_invalid)
{
    struct mqtt_connect c;

    cr_assert_eq(
        mqtt_connect_decode(
            0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 4, 6, 0, 0, 0, 0, 0, 3, 'a', '/', '#', 0, 0), &c),
        MQTT_RC_TOPIC_NAME_INVALID);
    cr_assert_eq(mqtt_connect_decode(
                     0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 4, 6, 0, 0, 0, 0, 0, 1, '+', 0, 0), &c),
                 MQTT_RC_TOPIC_NAME_INVALID);
    cr_assert_eq(
        mqtt_connect_decode(0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 4, 6, 0, 0, 0, 0, 0, 0, 0, 0), &c),
        MQTT_RC_TOPIC_NAME_INVALID);
    /* A malformed packet is malformed first, whatever its will topic. */
    cr_assert_eq(
        mqtt_connect_decode(0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 4, 6, 0, 0, 0, 0, 0, 1, '+', 0), &c),
        MQTT_RC_MALFORMED);
}

Test(connect, trailing_bytes)
{
    uint8_t b[sizeof(connect_v311) + 1];
    struct mqtt_connect c;

    memcpy(b, connect_v311, sizeof(connect_v311));
    b[sizeof(connect_v311)] = 0;
    cr_assert_eq(mqtt_connect_decode(0, b, sizeof(b), &c), MQTT_RC_MALFORMED);
}

Test(connect, v5_property_length_checked)
{
    struct mqtt_connect c;

    /* property length 6 with 5 bytes before the end */
    cr_assert_eq(mqtt_connect_decode(
                     0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 0, 6, 0x11, 0, 0, 0, 0), &c),
                 MQTT_RC_MALFORMED);
    /* property length with five varint bytes */
    cr_assert_eq(
        mqtt_connect_decode(
            0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x00, 0, 0), &c),
        MQTT_RC_MALFORMED);
    /* will property block larger than the packet */
    cr_assert_eq(
        mqtt_connect_decode(
            0, BYTES(0, 4, 'M', 'Q', 'T', 'T', 5, 6, 0, 0, 0, 0, 0, 0x7F, 0, 1, 't', 0, 0), &c),
        MQTT_RC_MALFORMED);
}

static void truncations_malformed(const uint8_t *pkt, size_t n, int (*dec)(const uint8_t *, size_t))
{
    for (size_t k = 0; k < n; k++) {
        uint8_t *b = copy(pkt, k);

        cr_assert_eq(dec(b, k), MQTT_RC_MALFORMED, "truncated at %zu of %zu", k, n);
        free(b);
    }
    uint8_t *b = copy(pkt, n);
    cr_assert_eq(dec(b, n), MQTT_OK);
    free(b);
}

static int connect_dec(const uint8_t *b, size_t n)
{
    struct mqtt_connect c;

    return mqtt_connect_decode(0, b, n, &c);
}

Test(connect, truncated_at_every_offset)
{
    truncations_malformed(connect_v311, sizeof(connect_v311), connect_dec);
    truncations_malformed(connect_v5, sizeof(connect_v5), connect_dec);
    truncations_malformed(connect_v31, sizeof(connect_v31), connect_dec);
}

/* ---- PUBLISH ---- */

Test(publish, v311_qos0_payload)
{
    struct mqtt_publish p;

    cr_assert_eq(mqtt_publish_decode(0x1, BYTES(0, 3, 'a', '/', 'b', 'h', 'i'), MQTT_V311, &p),
                 MQTT_OK);
    cr_assert_eq(p.qos, 0);
    cr_assert(p.retain);
    cr_assert_not(p.dup);
    cr_assert_eq(p.packet_id, 0);
    ASSERT_STR(p.topic, "a/b");
    ASSERT_STR(p.payload, "hi");
}

Test(publish, v311_qos1_and_qos2)
{
    struct mqtt_publish p;

    cr_assert_eq(mqtt_publish_decode(0x2, publish_v311_q1, sizeof(publish_v311_q1), MQTT_V311, &p),
                 MQTT_OK);
    cr_assert_eq(p.qos, 1);
    cr_assert_eq(p.packet_id, 0x1234);
    cr_assert_eq(p.payload.len, 0);
    cr_assert_eq(mqtt_publish_decode(0xD, BYTES(0, 1, 't', 0xFF, 0xFF, 0, 1), MQTT_V31, &p),
                 MQTT_OK);
    cr_assert_eq(p.qos, 2);
    cr_assert(p.dup);
    cr_assert(p.retain);
    cr_assert_eq(p.packet_id, 0xFFFF);
    ASSERT_STR(p.payload, "\x00\x01");
}

Test(publish, v5_properties)
{
    struct mqtt_publish p;

    cr_assert_eq(mqtt_publish_decode(0x2, publish_v5_q1, sizeof(publish_v5_q1), MQTT_V5, &p),
                 MQTT_OK);
    ASSERT_STR(p.topic, "a/b");
    cr_assert_eq(p.packet_id, 0x1234);
    ASSERT_STR(p.props, "\x01\x01");
    cr_assert_eq(p.payload.len, 0);
    cr_assert_eq(mqtt_publish_decode(0, BYTES(0, 1, 't', 0, 'x', 'y'), MQTT_V5, &p), MQTT_OK);
    cr_assert_eq(p.props.len, 0);
    ASSERT_STR(p.payload, "xy");
    /* The same bytes read as 3.1.1: the 0 is payload. */
    cr_assert_eq(mqtt_publish_decode(0, BYTES(0, 1, 't', 0, 'x', 'y'), MQTT_V311, &p), MQTT_OK);
    ASSERT_STR(p.payload, "\0xy");
    /* Property block longer than what is left. */
    cr_assert_eq(mqtt_publish_decode(0, BYTES(0, 1, 't', 3, 1, 1), MQTT_V5, &p), MQTT_RC_MALFORMED);
}

/* MQTT-3.3.1-4: QoS 3. */
Test(publish, mqtt_3_3_1_4_qos_3)
{
    struct mqtt_publish p;

    cr_assert_eq(mqtt_publish_decode(0x6, publish_v311_q1, sizeof(publish_v311_q1), MQTT_V311, &p),
                 MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_publish_decode(0xF, publish_v5_q1, sizeof(publish_v5_q1), MQTT_V5, &p),
                 MQTT_RC_MALFORMED);
}

/* MQTT-3.3.1-2: DUP on QoS 0. */
Test(publish, mqtt_3_3_1_2_dup_on_qos0)
{
    struct mqtt_publish p;

    cr_assert_eq(mqtt_publish_decode(0x8, BYTES(0, 1, 't'), MQTT_V311, &p), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_publish_decode(0xA, BYTES(0, 1, 't', 0, 1), MQTT_V311, &p), MQTT_OK);
}

/* MQTT-2.3.1-1: packet id 0 with QoS > 0. */
Test(publish, mqtt_2_3_1_1_packet_id_zero)
{
    struct mqtt_publish p;

    cr_assert_eq(mqtt_publish_decode(0x2, BYTES(0, 1, 't', 0, 0), MQTT_V311, &p),
                 MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_publish_decode(0x4, BYTES(0, 1, 't', 0, 0, 0), MQTT_V5, &p),
                 MQTT_RC_MALFORMED);
}

/* MQTT-3.3.2-2: wildcards in the topic name. */
Test(publish, mqtt_3_3_2_2_wildcard_topic)
{
    struct mqtt_publish p;

    cr_assert_eq(mqtt_publish_decode(0, BYTES(0, 3, 'a', '/', '+'), MQTT_V311, &p),
                 MQTT_RC_TOPIC_NAME_INVALID);
    cr_assert_eq(mqtt_publish_decode(0, BYTES(0, 1, '#', 0), MQTT_V5, &p),
                 MQTT_RC_TOPIC_NAME_INVALID);
}

/* MQTT-4.7.3-1: empty topic in 3.1.1; v5 allows it (topic alias). */
Test(publish, mqtt_4_7_3_1_empty_topic)
{
    struct mqtt_publish p;

    cr_assert_eq(mqtt_publish_decode(0, BYTES(0, 0, 'x'), MQTT_V311, &p),
                 MQTT_RC_TOPIC_NAME_INVALID);
    cr_assert_eq(mqtt_publish_decode(0, BYTES(0, 0, 'x'), MQTT_V31, &p),
                 MQTT_RC_TOPIC_NAME_INVALID);
    cr_assert_eq(mqtt_publish_decode(0, BYTES(0, 0, 3, 0x23, 0, 1, 'x'), MQTT_V5, &p), MQTT_OK);
    cr_assert_eq(p.topic.len, 0);
    ASSERT_STR(p.props, "\x23\x00\x01");
    ASSERT_STR(p.payload, "x");
}

/* MQTT-1.5.3-1: the topic is a UTF-8 string. */
Test(publish, mqtt_1_5_3_1_invalid_utf8_topic)
{
    struct mqtt_publish p;

    cr_assert_eq(mqtt_publish_decode(0, BYTES(0, 2, 'a', 0xC3), MQTT_V311, &p), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_publish_decode(0, BYTES(0, 2, 'a', 0x00), MQTT_V311, &p), MQTT_RC_MALFORMED);
}

static int publish_dec_v311(const uint8_t *b, size_t n)
{
    struct mqtt_publish p;

    return mqtt_publish_decode(0x2, b, n, MQTT_V311, &p);
}

static int publish_dec_v5(const uint8_t *b, size_t n)
{
    struct mqtt_publish p;

    return mqtt_publish_decode(0x2, b, n, MQTT_V5, &p);
}

/* Truncation inside the payload cannot be seen: the samples have none. */
Test(publish, truncated_at_every_offset)
{
    truncations_malformed(publish_v311_q1, sizeof(publish_v311_q1), publish_dec_v311);
    truncations_malformed(publish_v5_q1, sizeof(publish_v5_q1), publish_dec_v5);
}

/* ---- PUBACK, PUBREC, PUBREL, PUBCOMP ---- */

Test(ack, v311_every_type)
{
    struct mqtt_ack a;

    for (uint8_t t = MQTT_PUBACK; t <= MQTT_PUBCOMP; t++) {
        uint8_t fl = t == MQTT_PUBREL ? 2 : 0;

        cr_assert_eq(mqtt_ack_decode(t, fl, BYTES(0xAB, 0xCD), MQTT_V311, &a), MQTT_OK);
        cr_assert_eq(a.packet_id, 0xABCD);
        cr_assert_eq(a.reason, 0);
        cr_assert_eq(mqtt_ack_decode(t, fl, BYTES(0xAB, 0xCD, 0), MQTT_V311, &a),
                     MQTT_RC_MALFORMED);
        cr_assert_eq(mqtt_ack_decode(t, fl, BYTES(0xAB), MQTT_V311, &a), MQTT_RC_MALFORMED);
        cr_assert_eq(mqtt_ack_decode(t, fl, NULL, 0, MQTT_V311, &a), MQTT_RC_MALFORMED);
        cr_assert_eq(mqtt_ack_decode(t, fl, BYTES(0, 0), MQTT_V311, &a), MQTT_RC_MALFORMED);
    }
}

/* MQTT-2.2.2-2 for PUBACK/PUBREC/PUBCOMP, MQTT-3.6.1-1 for PUBREL. */
Test(ack, mqtt_3_6_1_1_pubrel_flags)
{
    struct mqtt_ack a;

    for (uint8_t fl = 0; fl < 16; fl++) {
        cr_assert_eq(mqtt_ack_decode(MQTT_PUBREL, fl, BYTES(0, 1), MQTT_V311, &a),
                     fl == 2 ? MQTT_OK : MQTT_RC_MALFORMED);
        cr_assert_eq(mqtt_ack_decode(MQTT_PUBACK, fl, BYTES(0, 1), MQTT_V5, &a),
                     fl == 0 ? MQTT_OK : MQTT_RC_MALFORMED);
        cr_assert_eq(mqtt_ack_decode(MQTT_PUBREC, fl, BYTES(0, 1), MQTT_V311, &a),
                     fl == 0 ? MQTT_OK : MQTT_RC_MALFORMED);
        cr_assert_eq(mqtt_ack_decode(MQTT_PUBCOMP, fl, BYTES(0, 1), MQTT_V311, &a),
                     fl == 0 ? MQTT_OK : MQTT_RC_MALFORMED);
    }
}

/* MQTT 3.1 §2.1: a client re-delivering PUBREL, SUBSCRIBE or UNSUBSCRIBE sets
 * DUP (0b1010); 3.1.1 and 5.0 keep the fixed 0b0010 (MQTT-3.6.1-1,
 * MQTT-3.8.1-1, MQTT-3.10.1-1). DUP is the only extra bit 3.1 allows, and
 * the other acks (flags 0) get no such leeway. */
static void check_dup_rule(uint8_t v, const uint8_t *sub, size_t sub_len, const uint8_t *unsub,
                           size_t unsub_len)
{
    struct mqtt_ack a;
    struct mqtt_subscribe s;

    for (uint8_t fl = 0; fl < 16; fl++) {
        int want = fl == 2 || (fl == 0xA && v == MQTT_V31) ? MQTT_OK : MQTT_RC_MALFORMED;
        cr_assert_eq(mqtt_ack_decode(MQTT_PUBREL, fl, BYTES(0, 1), v, &a), want, "v%u %u", v, fl);
        cr_assert_eq(mqtt_subscribe_decode(fl, sub, sub_len, v, &s), want, "v%u %u", v, fl);
        cr_assert_eq(mqtt_unsubscribe_decode(fl, unsub, unsub_len, v, &s), want, "v%u %u", v, fl);
        cr_assert_eq(mqtt_ack_decode(MQTT_PUBACK, fl, BYTES(0, 1), v, &a),
                     fl == 0 ? MQTT_OK : MQTT_RC_MALFORMED, "v%u %u", v, fl);
    }
}

Test(ack, v31_dup_allowed_on_pubrel_subscribe_unsubscribe_only)
{
    check_dup_rule(MQTT_V31, BYTES(0, 1, 0, 1, 'a', 0), BYTES(0, 1, 0, 1, 'a'));
    check_dup_rule(MQTT_V311, BYTES(0, 1, 0, 1, 'a', 0), BYTES(0, 1, 0, 1, 'a'));
    check_dup_rule(MQTT_V5, BYTES(0, 1, 0, 0, 1, 'a', 0), BYTES(0, 1, 0, 0, 1, 'a'));
}

Test(ack, v5_reason_and_properties)
{
    struct mqtt_ack a;

    cr_assert_eq(mqtt_ack_decode(MQTT_PUBACK, 0, BYTES(0, 7), MQTT_V5, &a), MQTT_OK);
    cr_assert_eq(a.reason, 0);
    cr_assert_eq(a.props.len, 0);
    cr_assert_eq(mqtt_ack_decode(MQTT_PUBACK, 0, BYTES(0, 7, 0x10), MQTT_V5, &a), MQTT_OK);
    cr_assert_eq(a.reason, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
    cr_assert_eq(a.props.len, 0);
    cr_assert_eq(mqtt_ack_decode(MQTT_PUBREC, 0, BYTES(0, 7, 0x80, 0), MQTT_V5, &a), MQTT_OK);
    cr_assert_eq(a.reason, 0x80);
    cr_assert_eq(mqtt_ack_decode(MQTT_PUBREL, 2, BYTES(0, 7, 0x92, 3, 0x1F, 0, 0), MQTT_V5, &a),
                 MQTT_OK);
    cr_assert_eq(a.reason, MQTT_RC_PACKET_ID_NOT_FOUND);
    ASSERT_STR(a.props, "\x1F\x00\x00");
    /* property length past the end, bytes after the properties */
    cr_assert_eq(mqtt_ack_decode(MQTT_PUBCOMP, 0, BYTES(0, 7, 0, 4, 0x1F, 0, 0), MQTT_V5, &a),
                 MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_ack_decode(MQTT_PUBCOMP, 0, BYTES(0, 7, 0, 0, 0), MQTT_V5, &a),
                 MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_ack_decode(MQTT_PUBCOMP, 0, BYTES(0, 7, 0, 0x80), MQTT_V5, &a),
                 MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_ack_decode(MQTT_PUBACK, 0, BYTES(0, 0, 0), MQTT_V5, &a), MQTT_RC_MALFORMED);
}

Test(ack, wrong_type_and_v3_unsuback)
{
    struct mqtt_ack a;

    cr_assert_eq(mqtt_ack_decode(MQTT_PUBLISH, 0, BYTES(0, 1), MQTT_V311, &a), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_ack_decode(MQTT_SUBACK, 0, BYTES(0, 1), MQTT_V311, &a), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_ack_decode(MQTT_UNSUBACK, 0, BYTES(0, 9), MQTT_V311, &a), MQTT_OK);
    cr_assert_eq(a.packet_id, 9);
    cr_assert_eq(mqtt_ack_decode(MQTT_UNSUBACK, 2, BYTES(0, 9), MQTT_V311, &a), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_ack_decode(MQTT_UNSUBACK, 0, BYTES(0, 9), MQTT_V5, &a), MQTT_RC_MALFORMED);
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ---- */

Test(subscribe, v311_entries)
{
    struct mqtt_subscribe s;
    struct mqtt_sub_iter it;
    struct mqtt_bytes f;
    uint8_t opt;

    cr_assert_eq(mqtt_subscribe_decode(
                     2, BYTES(0, 10, 0, 3, 'a', '/', 'b', 1, 0, 3, 'c', '/', '#', 2, 0, 1, '+', 0),
                     MQTT_V311, &s),
                 MQTT_OK);
    cr_assert_eq(s.packet_id, 10);
    cr_assert_eq(s.count, 3);
    cr_assert_eq(s.props.len, 0);
    mqtt_sub_iter_init(&it, &s, true);
    cr_assert(mqtt_sub_iter_next(&it, &f, &opt));
    ASSERT_STR(f, "a/b");
    cr_assert_eq(opt, 1);
    cr_assert(mqtt_sub_iter_next(&it, &f, &opt));
    ASSERT_STR(f, "c/#");
    cr_assert_eq(opt, 2);
    cr_assert(mqtt_sub_iter_next(&it, &f, &opt));
    ASSERT_STR(f, "+");
    cr_assert_eq(opt, 0);
    cr_assert_not(mqtt_sub_iter_next(&it, &f, &opt));
    cr_assert_not(mqtt_sub_iter_next(&it, &f, &opt));
}

Test(subscribe, v5_properties_and_options)
{
    struct mqtt_subscribe s;
    struct mqtt_sub_iter it;
    struct mqtt_bytes f;
    uint8_t opt;

    cr_assert_eq(mqtt_subscribe_decode(2, subscribe_v5, sizeof(subscribe_v5), MQTT_V5, &s),
                 MQTT_OK);
    cr_assert_eq(s.packet_id, 10);
    ASSERT_STR(s.props, "\x0B\x01");
    cr_assert_eq(s.count, 1);
    mqtt_sub_iter_init(&it, &s, true);
    cr_assert(mqtt_sub_iter_next(&it, &f, &opt));
    ASSERT_STR(f, "a/b");
    cr_assert_eq(opt, 0x2D);
    cr_assert_not(mqtt_sub_iter_next(&it, &f, &opt));
}

/* Wildcard placement is left to mqtt_topic_filter_valid (v5 answers 0x8F). */
Test(subscribe, filter_placement_not_checked)
{
    struct mqtt_subscribe s;

    cr_assert_eq(
        mqtt_subscribe_decode(2, BYTES(0, 1, 0, 5, 'a', '/', '#', '/', 'b', 0), MQTT_V311, &s),
        MQTT_OK);
}

/* MQTT-3.8.1-1: SUBSCRIBE flags 0b0010. */
Test(subscribe, mqtt_3_8_1_1_flags)
{
    struct mqtt_subscribe s;

    for (uint8_t fl = 0; fl < 16; fl++)
        cr_assert_eq(
            mqtt_subscribe_decode(fl, subscribe_v311, sizeof(subscribe_v311), MQTT_V311, &s),
            fl == 2 ? MQTT_OK : MQTT_RC_MALFORMED);
}

/* MQTT-3.8.3-3: at least one filter. */
Test(subscribe, mqtt_3_8_3_3_no_entries)
{
    struct mqtt_subscribe s;

    cr_assert_eq(mqtt_subscribe_decode(2, BYTES(0, 1), MQTT_V311, &s), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_subscribe_decode(2, BYTES(0, 1, 0), MQTT_V5, &s), MQTT_RC_MALFORMED);
}

/* MQTT-3.8.3-4: QoS 3 and reserved option bits in 3.1.1. */
Test(subscribe, mqtt_3_8_3_4_options_v311)
{
    struct mqtt_subscribe s;

    for (unsigned o = 0; o < 256; o++) {
        bool ok = o <= 2;

        cr_assert_eq(mqtt_subscribe_decode(2, BYTES(0, 1, 0, 1, 'a', (uint8_t)o), MQTT_V311, &s),
                     ok ? MQTT_OK : MQTT_RC_MALFORMED, "options %#x", o);
        cr_assert_eq(mqtt_subscribe_decode(2, BYTES(0, 1, 0, 1, 'a', (uint8_t)o), MQTT_V31, &s),
                     ok ? MQTT_OK : MQTT_RC_MALFORMED, "options %#x", o);
    }
}

/* v5 MQTT-3.8.3-5: bits 6-7 reserved; QoS <= 2, retain handling <= 2. */
Test(subscribe, mqtt_3_8_3_5_options_v5)
{
    struct mqtt_subscribe s;

    for (unsigned o = 0; o < 256; o++) {
        bool ok = (o & 3) != 3 && ((o >> 4) & 3) != 3 && !(o & 0xC0);

        cr_assert_eq(mqtt_subscribe_decode(2, BYTES(0, 1, 0, 0, 1, 'a', (uint8_t)o), MQTT_V5, &s),
                     ok ? MQTT_OK : MQTT_RC_MALFORMED, "options %#x", o);
    }
}

Test(subscribe, bad_filters_and_ids)
{
    struct mqtt_subscribe s;

    /* MQTT-4.7.3-1: empty filter */
    cr_assert_eq(mqtt_subscribe_decode(2, BYTES(0, 1, 0, 0, 0), MQTT_V311, &s), MQTT_RC_MALFORMED);
    /* MQTT-1.5.3-1 */
    cr_assert_eq(mqtt_subscribe_decode(2, BYTES(0, 1, 0, 1, 0xFF, 0), MQTT_V311, &s),
                 MQTT_RC_MALFORMED);
    /* MQTT-2.3.1-1 */
    cr_assert_eq(mqtt_subscribe_decode(2, BYTES(0, 0, 0, 1, 'a', 0), MQTT_V311, &s),
                 MQTT_RC_MALFORMED);
    /* missing options byte of the second entry */
    cr_assert_eq(mqtt_subscribe_decode(2, BYTES(0, 1, 0, 1, 'a', 0, 0, 1, 'b'), MQTT_V311, &s),
                 MQTT_RC_MALFORMED);
    /* v5 property block past the end */
    cr_assert_eq(mqtt_subscribe_decode(2, BYTES(0, 1, 9, 0, 1, 'a', 0), MQTT_V5, &s),
                 MQTT_RC_MALFORMED);
}

static int subscribe_dec_v311(const uint8_t *b, size_t n)
{
    struct mqtt_subscribe s;

    return mqtt_subscribe_decode(2, b, n, MQTT_V311, &s);
}

static int subscribe_dec_v5(const uint8_t *b, size_t n)
{
    struct mqtt_subscribe s;

    return mqtt_subscribe_decode(2, b, n, MQTT_V5, &s);
}

Test(subscribe, truncated_at_every_offset)
{
    truncations_malformed(subscribe_v311, sizeof(subscribe_v311), subscribe_dec_v311);
    truncations_malformed(subscribe_v5, sizeof(subscribe_v5), subscribe_dec_v5);
}

Test(unsubscribe, v311_and_v5)
{
    struct mqtt_subscribe s;
    struct mqtt_sub_iter it;
    struct mqtt_bytes f;
    uint8_t opt = 0xAA;

    cr_assert_eq(
        mqtt_unsubscribe_decode(2, BYTES(0, 5, 0, 1, 'a', 0, 3, 'b', '/', '+'), MQTT_V311, &s),
        MQTT_OK);
    cr_assert_eq(s.packet_id, 5);
    cr_assert_eq(s.count, 2);
    mqtt_sub_iter_init(&it, &s, false);
    cr_assert(mqtt_sub_iter_next(&it, &f, &opt));
    ASSERT_STR(f, "a");
    cr_assert_eq(opt, 0);
    cr_assert(mqtt_sub_iter_next(&it, &f, NULL));
    ASSERT_STR(f, "b/+");
    cr_assert_not(mqtt_sub_iter_next(&it, &f, &opt));

    cr_assert_eq(mqtt_unsubscribe_decode(2, BYTES(0, 5, 3, 0x26, 0, 0, 1, 'a'), MQTT_V5, &s),
                 MQTT_RC_MALFORMED); /* the block swallows the filter's length */
    cr_assert_eq(mqtt_unsubscribe_decode(2, BYTES(0, 5, 1, 0x26, 0, 1, 'a'), MQTT_V5, &s),
                 MQTT_OK); /* the block is not decoded, only its length checked */
    ASSERT_STR(s.props, "\x26");
    cr_assert_eq(s.count, 1);
}

/* MQTT-3.10.1-1: UNSUBSCRIBE flags 0b0010. */
Test(unsubscribe, mqtt_3_10_1_1_flags)
{
    struct mqtt_subscribe s;

    for (uint8_t fl = 0; fl < 16; fl++)
        cr_assert_eq(mqtt_unsubscribe_decode(fl, BYTES(0, 1, 0, 1, 'a'), MQTT_V311, &s),
                     fl == 2 ? MQTT_OK : MQTT_RC_MALFORMED);
}

/* MQTT-3.10.3-2: at least one filter. */
Test(unsubscribe, mqtt_3_10_3_2_no_entries)
{
    struct mqtt_subscribe s;

    cr_assert_eq(mqtt_unsubscribe_decode(2, BYTES(0, 1), MQTT_V311, &s), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_unsubscribe_decode(2, BYTES(0, 1, 0), MQTT_V5, &s), MQTT_RC_MALFORMED);
    /* An options byte is not part of an UNSUBSCRIBE entry. */
    cr_assert_eq(mqtt_unsubscribe_decode(2, BYTES(0, 1, 0, 1, 'a', 0), MQTT_V311, &s),
                 MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_unsubscribe_decode(2, BYTES(0, 1, 0, 0), MQTT_V311, &s), MQTT_RC_MALFORMED);
}

/* ---- PINGREQ, PINGRESP, DISCONNECT ---- */

Test(empty, ping_and_v3_disconnect)
{
    const uint8_t types[] = {MQTT_PINGREQ, MQTT_PINGRESP, MQTT_DISCONNECT};
    uint8_t reason = 0x55;

    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(mqtt_empty_decode(types[i], 0, NULL, 0, MQTT_V311, &reason), MQTT_OK);
        cr_assert_eq(reason, 0);
        cr_assert_eq(mqtt_empty_decode(types[i], 0, BYTES(0), MQTT_V311, &reason),
                     MQTT_RC_MALFORMED);
        /* MQTT-2.2.2-2 */
        for (uint8_t fl = 1; fl < 16; fl++)
            cr_assert_eq(mqtt_empty_decode(types[i], fl, NULL, 0, MQTT_V5, &reason),
                         MQTT_RC_MALFORMED);
    }
    cr_assert_eq(mqtt_empty_decode(MQTT_PINGREQ, 0, BYTES(0), MQTT_V5, &reason), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_empty_decode(MQTT_CONNECT, 0, NULL, 0, MQTT_V311, &reason),
                 MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_empty_decode(MQTT_AUTH, 0, NULL, 0, MQTT_V5, &reason), MQTT_RC_MALFORMED);
}

Test(empty, v5_disconnect_reason_and_properties)
{
    uint8_t reason = 0x55;

    cr_assert_eq(mqtt_empty_decode(MQTT_DISCONNECT, 0, NULL, 0, MQTT_V5, &reason), MQTT_OK);
    cr_assert_eq(reason, 0);
    cr_assert_eq(mqtt_empty_decode(MQTT_DISCONNECT, 0, BYTES(0x04), MQTT_V5, &reason), MQTT_OK);
    cr_assert_eq(reason, 0x04);
    cr_assert_eq(mqtt_empty_decode(MQTT_DISCONNECT, 0, BYTES(0x8E, 0), MQTT_V5, &reason), MQTT_OK);
    cr_assert_eq(reason, MQTT_RC_SESSION_TAKEN_OVER);
    cr_assert_eq(
        mqtt_empty_decode(MQTT_DISCONNECT, 0, BYTES(0x8E, 5, 0x11, 0, 0, 0, 0), MQTT_V5, &reason),
        MQTT_OK);
    cr_assert_eq(
        mqtt_empty_decode(MQTT_DISCONNECT, 0, BYTES(0x8E, 5, 0x11, 0, 0, 0), MQTT_V5, &reason),
        MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_empty_decode(MQTT_DISCONNECT, 0, BYTES(0x8E, 0, 0), MQTT_V5, &reason),
                 MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_empty_decode(MQTT_DISCONNECT, 0, BYTES(0x8E, 0x80), MQTT_V5, &reason),
                 MQTT_RC_MALFORMED);
}

/* ---- CONNACK, SUBACK, UNSUBACK (client side) ---- */

Test(connack, v311_and_v5)
{
    struct mqtt_connack c;

    cr_assert_eq(mqtt_connack_decode(BYTES(1, 0), MQTT_V311, &c), MQTT_OK);
    cr_assert(c.session_present);
    cr_assert_eq(c.code, 0);
    cr_assert_eq(mqtt_connack_decode(BYTES(0, 5), MQTT_V311, &c), MQTT_OK);
    cr_assert_not(c.session_present);
    cr_assert_eq(c.code, MQTT_CONNACK_NOT_AUTHORIZED);
    cr_assert_eq(mqtt_connack_decode(BYTES(2, 0), MQTT_V311, &c), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_connack_decode(BYTES(0x80, 0), MQTT_V5, &c), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_connack_decode(BYTES(0, 0, 0), MQTT_V311, &c), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_connack_decode(BYTES(0), MQTT_V311, &c), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_connack_decode(BYTES(0, 0, 0), MQTT_V5, &c), MQTT_OK);
    cr_assert_eq(mqtt_connack_decode(BYTES(1, 0x86, 3, 0x21, 0, 10), MQTT_V5, &c), MQTT_OK);
    cr_assert(c.session_present);
    cr_assert_eq(c.code, MQTT_RC_BAD_CREDENTIALS);
    ASSERT_STR(c.props, "\x21\x00\x0A");
    cr_assert_eq(mqtt_connack_decode(BYTES(0, 0), MQTT_V5, &c), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_connack_decode(BYTES(0, 0, 2, 0x21), MQTT_V5, &c), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_connack_decode(BYTES(0, 0, 0, 0), MQTT_V5, &c), MQTT_RC_MALFORMED);
}

Test(suback, v311_codes)
{
    struct mqtt_suback s;

    cr_assert_eq(mqtt_suback_decode(MQTT_SUBACK, BYTES(0, 7, 0, 1, 2, 0x80), MQTT_V311, &s),
                 MQTT_OK);
    cr_assert_eq(s.packet_id, 7);
    ASSERT_STR(s.codes, "\x00\x01\x02\x80");
    cr_assert_eq(mqtt_suback_decode(MQTT_SUBACK, BYTES(0, 7), MQTT_V311, &s), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_suback_decode(MQTT_SUBACK, BYTES(0, 0, 0), MQTT_V311, &s), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_suback_decode(MQTT_PUBACK, BYTES(0, 7, 0), MQTT_V311, &s), MQTT_RC_MALFORMED);
}

/* MQTT-3.9.3-2: only 0x00, 0x01, 0x02 and 0x80 in a 3.1.1 SUBACK. */
Test(suback, mqtt_3_9_3_2_return_codes)
{
    struct mqtt_suback s;

    for (unsigned c = 0; c < 256; c++) {
        bool ok = c <= 2 || c == 0x80;

        cr_assert_eq(mqtt_suback_decode(MQTT_SUBACK, BYTES(0, 7, (uint8_t)c), MQTT_V311, &s),
                     ok ? MQTT_OK : MQTT_RC_MALFORMED, "code %#x", c);
    }
}

Test(suback, v5_and_unsuback)
{
    struct mqtt_suback s;

    cr_assert_eq(mqtt_suback_decode(MQTT_SUBACK, BYTES(0, 7, 0, 0x97), MQTT_V5, &s), MQTT_OK);
    ASSERT_STR(s.codes, "\x97");
    cr_assert_eq(mqtt_suback_decode(MQTT_UNSUBACK, BYTES(0, 7, 5, 0x1F, 0, 0x11), MQTT_V5, &s),
                 MQTT_RC_MALFORMED); /* property block past the end */
    cr_assert_eq(mqtt_suback_decode(MQTT_UNSUBACK, BYTES(0, 7, 3, 0x1F, 0, 0, 0x11), MQTT_V5, &s),
                 MQTT_OK);
    ASSERT_STR(s.props, "\x1F\x00\x00");
    ASSERT_STR(s.codes, "\x11");
    cr_assert_eq(mqtt_suback_decode(MQTT_UNSUBACK, BYTES(0, 7, 0), MQTT_V5, &s), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_suback_decode(MQTT_UNSUBACK, BYTES(0, 7), MQTT_V311, &s), MQTT_OK);
    cr_assert_eq(s.codes.len, 0);
    cr_assert_eq(mqtt_suback_decode(MQTT_UNSUBACK, BYTES(0, 7, 0), MQTT_V311, &s),
                 MQTT_RC_MALFORMED);
}

/* ---- encoders: exact bytes, size agreement, round trips ---- */

Test(encode, varint_every_length_round_trips)
{
    const uint32_t vals[] = {0, 1, 127, 128, 300, 16383, 16384, 2097151, 2097152, 268435455};

    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        uint8_t buf[5] = {0x30};
        struct mqtt_frame f;
        size_t n = mqtt_varint_encode(buf + 1, vals[i]);

        cr_assert_eq(n, mqtt_varint_size(vals[i]));
        cr_assert_eq(mqtt_frame_decode(buf, 1 + n, 0, &f), MQTT_OK);
        cr_assert_eq(f.body_len, vals[i]);
    }
}

/* MQTT-3.2.2-4: session present only with return code 0. */
Test(encode, mqtt_3_2_2_4_connack)
{
    uint8_t b[5];
    struct mqtt_connack c;

    cr_assert_eq(mqtt_connack_encode(b, MQTT_V311, true, 0), 4);
    cr_assert(memcmp(b, "\x20\x02\x01\x00", 4) == 0);
    cr_assert_eq(mqtt_connack_encode(b, MQTT_V311, true, MQTT_CONNACK_ID_REJECTED), 4);
    cr_assert(memcmp(b, "\x20\x02\x00\x02", 4) == 0);
    cr_assert_eq(mqtt_connack_encode(b, MQTT_V31, true, 0), 4);
    cr_assert(memcmp(b, "\x20\x02\x00\x00", 4) == 0);
    cr_assert_eq(mqtt_connack_encode(b, MQTT_V5, true, 0), 5);
    cr_assert(memcmp(b, "\x20\x03\x01\x00\x00", 5) == 0);
    cr_assert_eq(mqtt_connack_encode(b, MQTT_V5, true, MQTT_RC_NOT_AUTHORIZED), 5);
    cr_assert(memcmp(b, "\x20\x03\x00\x87\x00", 5) == 0);

    for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++) {
        struct mqtt_frame f;
        size_t n = mqtt_connack_encode(b, v, true, 0);
        const uint8_t *body = frame_whole(b, n, MQTT_CONNACK, &f);

        cr_assert(mqtt_frame_flags_valid(f.type, f.flags));
        cr_assert_eq(mqtt_connack_decode(body, f.body_len, v, &c), MQTT_OK);
        cr_assert_eq(c.session_present, v != MQTT_V31);
        cr_assert_eq(c.code, 0);
    }
}

Test(encode, publish_exact_bytes)
{
    uint8_t b[32];

    cr_assert_eq(mqtt_publish_size(MQTT_V311, 3, 2, 0), 9);
    cr_assert_eq(mqtt_publish_encode(b, MQTT_V311, 0, false, true, (const uint8_t *)"a/b", 3, 0,
                                     (const uint8_t *)"hi", 2),
                 9);
    cr_assert(memcmp(b,
                     "\x31\x07\x00\x03"
                     "a/bhi",
                     9) == 0);
    cr_assert_eq(mqtt_publish_size(MQTT_V5, 3, 0, 1), 10);
    cr_assert_eq(
        mqtt_publish_encode(b, MQTT_V5, 1, true, false, (const uint8_t *)"a/b", 3, 0x1234, NULL, 0),
        10);
    cr_assert(memcmp(b,
                     "\x3A\x08\x00\x03"
                     "a/b\x12\x34\x00",
                     10) == 0);
}

Test(encode, publish_round_trip)
{
    const struct mqtt_bytes topics[] = {S("t"), S("a/b/c"), S("caf\xc3\xa9/\xf0\x9f\x98\x80")};
    const struct mqtt_bytes payloads[] = {S(""), S("x"), S("\0\xff payload")};

    for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++)
        for (uint8_t qos = 0; qos <= 2; qos++)
            for (size_t ti = 0; ti < 3; ti++)
                for (size_t pi = 0; pi < 3; pi++)
                    for (int fl = 0; fl < 4; fl++) {
                        bool dup = (fl & 1) && qos > 0, retain = fl & 2;
                        uint8_t b[64];
                        struct mqtt_frame f;
                        struct mqtt_publish p;
                        size_t size = mqtt_publish_size(v, topics[ti].len, payloads[pi].len, qos);
                        size_t n = mqtt_publish_encode(b, v, qos, dup, retain, topics[ti].p,
                                                       topics[ti].len, 0xBEEF, payloads[pi].p,
                                                       payloads[pi].len);
                        const uint8_t *body;

                        cr_assert_eq(n, size);
                        body = frame_whole(b, n, MQTT_PUBLISH, &f);
                        cr_assert_eq(mqtt_publish_decode(f.flags, body, f.body_len, v, &p),
                                     MQTT_OK);
                        cr_assert_eq(p.qos, qos);
                        cr_assert_eq(p.dup, dup);
                        cr_assert_eq(p.retain, retain);
                        cr_assert_eq(p.packet_id, qos ? 0xBEEF : 0);
                        assert_bytes(p.topic, topics[ti].p, topics[ti].len);
                        assert_bytes(p.payload, payloads[pi].p, payloads[pi].len);
                        cr_assert_eq(p.props.len, 0);
                    }
}

/* Remaining lengths on both sides of every varint width. */
Test(encode, publish_size_at_remaining_length_boundaries)
{
    const uint32_t rls[] = {127, 128, 16383, 16384, 2097151, 2097152};

    for (size_t i = 0; i < sizeof(rls) / sizeof(rls[0]); i++) {
        size_t payload_len = rls[i] - 3; /* 2-byte length + "t" */
        size_t size = mqtt_publish_size(MQTT_V311, 1, payload_len, 0);
        uint8_t *payload = calloc(1, payload_len);
        uint8_t *b = malloc(size);
        struct mqtt_frame f;
        struct mqtt_publish p;

        cr_assert(payload && b);
        cr_assert_eq(size, 1 + mqtt_varint_size(rls[i]) + rls[i]);
        cr_assert_eq(mqtt_publish_encode(b, MQTT_V311, 0, false, false, (const uint8_t *)"t", 1, 0,
                                         payload, payload_len),
                     size);
        frame_whole(b, size, MQTT_PUBLISH, &f);
        cr_assert_eq(f.body_len, rls[i]);
        cr_assert_eq(mqtt_publish_decode(f.flags, b + f.header_len, f.body_len, MQTT_V311, &p),
                     MQTT_OK);
        cr_assert_eq(p.payload.len, payload_len);
        free(payload);
        free(b);
    }
    /* The largest expressible packet, and one byte more. */
    cr_assert_eq(mqtt_publish_size(MQTT_V311, 1, MQTT_MAX_REMAINING_LENGTH - 3, 0),
                 5 + (size_t)MQTT_MAX_REMAINING_LENGTH);
    cr_assert_eq(mqtt_publish_size(MQTT_V311, 1, MQTT_MAX_REMAINING_LENGTH - 2, 0), 0);
    cr_assert_eq(mqtt_publish_size(MQTT_V5, 1, MQTT_MAX_REMAINING_LENGTH - 3, 0), 0);
    cr_assert_eq(mqtt_publish_size(MQTT_V311, 65536, 0, 0), 0);
    cr_assert_eq(mqtt_publish_size(MQTT_V311, 65535, 0, 0), 4 + 65537);
    cr_assert_eq(mqtt_publish_size(MQTT_V311, 1, SIZE_MAX - 2, 0), 0);
}

Test(encode, ack_exact_bytes_and_round_trip)
{
    uint8_t b[5];

    cr_assert_eq(mqtt_ack_encode(b, MQTT_PUBACK, MQTT_V311, 0x0102, 0), 4);
    cr_assert(memcmp(b, "\x40\x02\x01\x02", 4) == 0);
    /* MQTT-3.6.1-1 */
    cr_assert_eq(mqtt_ack_encode(b, MQTT_PUBREL, MQTT_V311, 0x0102, 0), 4);
    cr_assert(memcmp(b, "\x62\x02\x01\x02", 4) == 0);
    cr_assert_eq(mqtt_ack_encode(b, MQTT_UNSUBACK, MQTT_V311, 0x0102, 0), 4);
    cr_assert(memcmp(b, "\xB0\x02\x01\x02", 4) == 0);
    /* A v3 ack never carries a reason. */
    cr_assert_eq(mqtt_ack_encode(b, MQTT_PUBREC, MQTT_V311, 0x0102, 0x80), 4);
    cr_assert(memcmp(b, "\x50\x02\x01\x02", 4) == 0);
    cr_assert_eq(mqtt_ack_encode(b, MQTT_PUBREC, MQTT_V5, 0x0102, 0), 4);
    cr_assert_eq(mqtt_ack_encode(b, MQTT_PUBREC, MQTT_V5, 0x0102, 0x10), 5);
    cr_assert(memcmp(b, "\x50\x03\x01\x02\x10", 5) == 0);

    const uint8_t reasons[] = {0, 0x10, 0x80, 0x92};
    for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++)
        for (uint8_t t = MQTT_PUBACK; t <= MQTT_PUBCOMP; t++)
            for (size_t r = 0; r < sizeof(reasons); r++) {
                struct mqtt_frame f;
                struct mqtt_ack a;
                size_t n = mqtt_ack_encode(b, t, v, 0xFEDC, reasons[r]);
                const uint8_t *body = frame_whole(b, n, t, &f);

                cr_assert_eq(mqtt_ack_decode(t, f.flags, body, f.body_len, v, &a), MQTT_OK);
                cr_assert_eq(a.packet_id, 0xFEDC);
                cr_assert_eq(a.reason, v == MQTT_V5 ? reasons[r] : 0);
            }
}

Test(encode, suback_exact_bytes_and_round_trip)
{
    uint8_t b[16];
    const uint8_t codes[] = {0, 1, 2, 0x80};
    struct mqtt_frame f;
    struct mqtt_suback s;
    const uint8_t *body;

    cr_assert_eq(mqtt_suback_size(MQTT_V311, 4), 8);
    cr_assert_eq(mqtt_suback_encode(b, MQTT_SUBACK, MQTT_V311, 7, codes, 4), 8);
    cr_assert(memcmp(b, "\x90\x06\x00\x07\x00\x01\x02\x80", 8) == 0);
    cr_assert_eq(mqtt_suback_size(MQTT_V5, 4), 9);
    cr_assert_eq(mqtt_suback_encode(b, MQTT_SUBACK, MQTT_V5, 7, codes, 4), 9);
    cr_assert(memcmp(b, "\x90\x07\x00\x07\x00\x00\x01\x02\x80", 9) == 0);

    for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++) {
        size_t n = mqtt_suback_encode(b, MQTT_SUBACK, v, 0x4242, codes, 4);

        cr_assert_eq(n, mqtt_suback_size(v, 4));
        body = frame_whole(b, n, MQTT_SUBACK, &f);
        cr_assert(mqtt_frame_flags_valid(f.type, f.flags));
        cr_assert_eq(mqtt_suback_decode(MQTT_SUBACK, body, f.body_len, v, &s), MQTT_OK);
        cr_assert_eq(s.packet_id, 0x4242);
        assert_bytes(s.codes, codes, 4);
    }
    const uint8_t ucodes[] = {0x00, 0x11};
    size_t n = mqtt_suback_encode(b, MQTT_UNSUBACK, MQTT_V5, 3, ucodes, 2);
    cr_assert_eq(n, mqtt_suback_size(MQTT_V5, 2));
    body = frame_whole(b, n, MQTT_UNSUBACK, &f);
    cr_assert_eq(mqtt_suback_decode(MQTT_UNSUBACK, body, f.body_len, MQTT_V5, &s), MQTT_OK);
    assert_bytes(s.codes, ucodes, 2);
}

Test(encode, simple_exact_bytes_and_round_trip)
{
    uint8_t b[4];
    uint8_t reason;
    struct mqtt_frame f;
    const uint8_t *body;

    cr_assert_eq(mqtt_simple_encode(b, MQTT_PINGREQ, MQTT_V311, 0), 2);
    cr_assert(memcmp(b, "\xC0\x00", 2) == 0);
    cr_assert_eq(mqtt_simple_encode(b, MQTT_PINGRESP, MQTT_V5, 0), 2);
    cr_assert(memcmp(b, "\xD0\x00", 2) == 0);
    cr_assert_eq(mqtt_simple_encode(b, MQTT_DISCONNECT, MQTT_V311, 0x8E), 2);
    cr_assert(memcmp(b, "\xE0\x00", 2) == 0);
    cr_assert_eq(mqtt_simple_encode(b, MQTT_DISCONNECT, MQTT_V5, 0), 2);
    cr_assert_eq(mqtt_simple_encode(b, MQTT_DISCONNECT, MQTT_V5, 0x8E), 4);
    cr_assert(memcmp(b, "\xE0\x02\x8E\x00", 4) == 0);

    /* Remaining length 0 through the whole path. */
    body = frame_whole(b, mqtt_simple_encode(b, MQTT_PINGREQ, MQTT_V5, 0), MQTT_PINGREQ, &f);
    cr_assert_eq(f.body_len, 0);
    cr_assert_eq(mqtt_empty_decode(f.type, f.flags, body, f.body_len, MQTT_V5, &reason), MQTT_OK);
    body =
        frame_whole(b, mqtt_simple_encode(b, MQTT_DISCONNECT, MQTT_V5, 0x8B), MQTT_DISCONNECT, &f);
    cr_assert_eq(mqtt_empty_decode(f.type, f.flags, body, f.body_len, MQTT_V5, &reason), MQTT_OK);
    cr_assert_eq(reason, MQTT_RC_SERVER_SHUTTING_DOWN);
}

static struct mqtt_connect_opts sample_opts(uint8_t version)
{
    return (struct mqtt_connect_opts){
        .version = version,
        .clean_start = true,
        .keepalive = 60,
        .client_id = S("cid"),
        .will = true,
        .will_qos = 1,
        .will_retain = true,
        .will_topic = S("w/t"),
        .will_payload = S("\x01\x02"),
        .has_username = true,
        .username = S("u"),
        .has_password = true,
        .password = S("\xFF"),
    };
}

Test(encode, connect_exact_bytes)
{
    struct mqtt_connect_opts o = sample_opts(MQTT_V311);
    uint8_t b[64];
    size_t n = mqtt_connect_encode(b, &o);

    cr_assert_eq(n, mqtt_connect_size(&o));
    cr_assert_eq(n, 2 + sizeof(connect_v311));
    cr_assert_eq(b[0], 0x10);
    cr_assert_eq(b[1], sizeof(connect_v311));
    cr_assert(memcmp(b + 2, connect_v311, sizeof(connect_v311)) == 0);

    o = (struct mqtt_connect_opts){
        .version = MQTT_V31, .clean_start = true, .keepalive = 60, .client_id = S("cid")};
    n = mqtt_connect_encode(b, &o);
    cr_assert_eq(n, mqtt_connect_size(&o));
    cr_assert_eq(n, 2 + sizeof(connect_v31));
    cr_assert(memcmp(b + 2, connect_v31, sizeof(connect_v31)) == 0);
}

Test(encode, connect_round_trip)
{
    for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++)
        for (unsigned mask = 0; mask < 16; mask++) {
            struct mqtt_connect_opts o = sample_opts(v);
            struct mqtt_connect c;
            struct mqtt_frame f;
            uint8_t b[64];
            const uint8_t *body;
            size_t n;

            o.will = mask & 1;
            o.has_username = mask & 2;
            o.has_password = mask & 4;
            o.clean_start = mask & 8;
            if (!o.will)
                o.will_qos = 0, o.will_retain = false;
            if (v != MQTT_V5 && o.has_password && !o.has_username)
                continue; /* MQTT-3.1.2-22 */
            n = mqtt_connect_encode(b, &o);
            cr_assert_eq(n, mqtt_connect_size(&o));
            body = frame_whole(b, n, MQTT_CONNECT, &f);
            cr_assert_eq(mqtt_connect_decode(f.flags, body, f.body_len, &c), MQTT_OK);
            cr_assert_eq(c.version, v);
            cr_assert_eq(c.clean_start, o.clean_start);
            cr_assert_eq(c.keepalive, 60);
            cr_assert_eq(c.will, o.will);
            cr_assert_eq(c.will_qos, o.will_qos);
            cr_assert_eq(c.will_retain, o.will_retain);
            cr_assert_eq(c.has_username, o.has_username);
            cr_assert_eq(c.has_password, o.has_password);
            ASSERT_STR(c.client_id, "cid");
            if (o.will) {
                ASSERT_STR(c.will_topic, "w/t");
                ASSERT_STR(c.will_payload, "\x01\x02");
            }
            if (o.has_username)
                ASSERT_STR(c.username, "u");
            if (o.has_password)
                ASSERT_STR(c.password, "\xFF");
        }
}

Test(encode, connect_oversized_field)
{
    struct mqtt_connect_opts o = sample_opts(MQTT_V311);
    static const uint8_t big[65536];

    o.client_id = (struct mqtt_bytes){big, 65536};
    cr_assert_eq(mqtt_connect_size(&o), 0);
    o.client_id = S("cid");
    o.password = (struct mqtt_bytes){big, 65536};
    cr_assert_eq(mqtt_connect_size(&o), 0);
    o.has_password = false;
    cr_assert_neq(mqtt_connect_size(&o), 0);
}

Test(encode, subscribe_exact_bytes_and_round_trip)
{
    const struct mqtt_bytes filters[] = {S("a/b"), S("c/#"), S("+")};
    const uint8_t opts[] = {1, 2, 0};
    uint8_t b[64];
    size_t n;

    n = mqtt_subscribe_encode(b, MQTT_V311, 10, filters, opts, 1, false);
    cr_assert_eq(n, mqtt_subscribe_size(MQTT_V311, filters, 1, false));
    cr_assert_eq(n, 2 + sizeof(subscribe_v311));
    cr_assert_eq(b[0], 0x82);
    cr_assert(memcmp(b + 2, subscribe_v311, sizeof(subscribe_v311)) == 0);
    n = mqtt_subscribe_encode(b, MQTT_V311, 10, filters, NULL, 1, true);
    cr_assert_eq(n, 9);
    cr_assert(memcmp(b,
                     "\xA2\x07\x00\x0A\x00\x03"
                     "a/b",
                     9) == 0);

    for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++)
        for (int unsub = 0; unsub < 2; unsub++) {
            struct mqtt_subscribe s;
            struct mqtt_sub_iter it;
            struct mqtt_bytes f;
            struct mqtt_frame fr;
            uint8_t o;
            const uint8_t *body;
            uint8_t type = unsub ? MQTT_UNSUBSCRIBE : MQTT_SUBSCRIBE;

            n = mqtt_subscribe_encode(b, v, 0x0102, filters, unsub ? NULL : opts, 3, unsub);
            cr_assert_eq(n, mqtt_subscribe_size(v, filters, 3, unsub));
            body = frame_whole(b, n, type, &fr);
            if (unsub)
                cr_assert_eq(mqtt_unsubscribe_decode(fr.flags, body, fr.body_len, v, &s), MQTT_OK);
            else
                cr_assert_eq(mqtt_subscribe_decode(fr.flags, body, fr.body_len, v, &s), MQTT_OK);
            cr_assert_eq(s.packet_id, 0x0102);
            cr_assert_eq(s.count, 3);
            mqtt_sub_iter_init(&it, &s, !unsub);
            for (size_t i = 0; i < 3; i++) {
                cr_assert(mqtt_sub_iter_next(&it, &f, &o));
                assert_bytes(f, filters[i].p, filters[i].len);
                cr_assert_eq(o, unsub ? 0 : opts[i]);
            }
            cr_assert_not(mqtt_sub_iter_next(&it, &f, &o));
        }
}
