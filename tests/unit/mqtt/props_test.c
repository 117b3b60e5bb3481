/*
 * Unit tests for src/mqtt/props.c, through props.h.
 *
 * The property table (types and which packets may carry what) is written
 * out again here from MQTT 5.0 section 2.2.2.2 rather than read from the
 * module, and expected encodings are written by hand, so that the code and
 * its test cannot share a mistake. Every block is decoded from an
 * exact-size heap copy, so a read one byte too far is an ASan error, not a
 * silent pass.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/props.h"

/*
 * Keep a copy of n bytes in an exact-size heap buffer that outlives the
 * statement (decoded views point into it). The last KEEP_SLOTS copies stay
 * reachable, never leaked.
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
    if (p && n)
        memcpy(*slot, p, n);
    return *slot;
}

static int dec(uint8_t kind, const uint8_t *b, size_t n, struct mqtt_props *out)
{
    return mqtt_props_decode(kind, keep(b, n), n, out);
}

#define ARR(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})
/* Decode a block written as bytes, for `kind`, into *out. */
#define DEC(kind, out, ...) dec((kind), ARR(__VA_ARGS__), (out))

static void assert_bytes(struct mqtt_bytes b, const void *p, size_t n)
{
    cr_assert_eq(b.len, n, "length %zu, expected %zu", b.len, n);
    if (n)
        cr_assert(memcmp(b.p, p, n) == 0);
}

#define ASSERT_STR(b, lit) assert_bytes((b), (lit), sizeof(lit) - 1)
#define S(lit)             ((struct mqtt_bytes){(const uint8_t *)(lit), sizeof(lit) - 1})

/* ---- the table of MQTT 5.0 section 2.2.2.2, written out again ---- */

#define KW  (1u << MQTT_PROPS_WILL)
#define KC  (1u << MQTT_CONNECT)
#define KCA (1u << MQTT_CONNACK)
#define KP  (1u << MQTT_PUBLISH)
#define KACK                                                                                       \
    ((1u << MQTT_PUBACK) | (1u << MQTT_PUBREC) | (1u << MQTT_PUBREL) | (1u << MQTT_PUBCOMP))
#define KS  (1u << MQTT_SUBSCRIBE)
#define KSA (1u << MQTT_SUBACK)
#define KU  (1u << MQTT_UNSUBSCRIBE)
#define KUA (1u << MQTT_UNSUBACK)
#define KD  (1u << MQTT_DISCONNECT)
#define KAU (1u << MQTT_AUTH)

static const struct row {
    uint8_t id;
    enum mqtt_prop_type type;
    uint32_t kinds;
} spec[] = {
    {0x01, MQTT_PROP_T_BYTE, KP | KW},
    {0x02, MQTT_PROP_T_U32, KP | KW},
    {0x03, MQTT_PROP_T_UTF8, KP | KW},
    {0x08, MQTT_PROP_T_UTF8, KP | KW},
    {0x09, MQTT_PROP_T_BINARY, KP | KW},
    {0x0B, MQTT_PROP_T_VARINT, KP | KS},
    {0x11, MQTT_PROP_T_U32, KC | KCA | KD},
    {0x12, MQTT_PROP_T_UTF8, KCA},
    {0x13, MQTT_PROP_T_U16, KCA},
    {0x15, MQTT_PROP_T_UTF8, KC | KCA | KAU},
    {0x16, MQTT_PROP_T_BINARY, KC | KCA | KAU},
    {0x17, MQTT_PROP_T_BYTE, KC},
    {0x18, MQTT_PROP_T_U32, KW},
    {0x19, MQTT_PROP_T_BYTE, KC},
    {0x1A, MQTT_PROP_T_UTF8, KCA},
    {0x1C, MQTT_PROP_T_UTF8, KCA | KD},
    {0x1F, MQTT_PROP_T_UTF8, KCA | KACK | KSA | KUA | KD | KAU},
    {0x21, MQTT_PROP_T_U16, KC | KCA},
    {0x22, MQTT_PROP_T_U16, KC | KCA},
    {0x23, MQTT_PROP_T_U16, KP},
    {0x24, MQTT_PROP_T_BYTE, KCA},
    {0x25, MQTT_PROP_T_BYTE, KCA},
    {0x26, MQTT_PROP_T_PAIR, KC | KCA | KP | KW | KACK | KS | KSA | KU | KUA | KD | KAU},
    {0x27, MQTT_PROP_T_U32, KC | KCA},
    {0x28, MQTT_PROP_T_BYTE, KCA},
    {0x29, MQTT_PROP_T_BYTE, KCA},
    {0x2A, MQTT_PROP_T_BYTE, KCA},
};
#define NSPEC (sizeof(spec) / sizeof(spec[0]))

static const struct row *spec_row(uint8_t id)
{
    for (size_t i = 0; i < NSPEC; i++)
        if (spec[i].id == id)
            return &spec[i];
    return NULL;
}

/* A block being put together by a test. */
struct blk {
    uint8_t b[512];
    size_t n;
};

static void put(struct blk *k, const uint8_t *p, size_t n)
{
    cr_assert(k->n + n <= sizeof(k->b));
    memcpy(k->b + k->n, p, n);
    k->n += n;
}

#define PUT(k, ...) put((k), ARR(__VA_ARGS__))

/* A valid value of property `id` (identifier first): 1 for a Byte, a
 * non-zero integer, and a string that is also a valid topic name. */
static void put_sample(struct blk *k, uint8_t id)
{
    PUT(k, id);
    switch (spec_row(id)->type) {
    case MQTT_PROP_T_BYTE:
        PUT(k, 1);
        break;
    case MQTT_PROP_T_U16:
        PUT(k, 0x01, 0x02);
        break;
    case MQTT_PROP_T_U32:
        PUT(k, 0x01, 0x02, 0x03, 0x04);
        break;
    case MQTT_PROP_T_VARINT:
        PUT(k, 0x80, 0x01); /* 128 */
        break;
    case MQTT_PROP_T_UTF8:
        PUT(k, 0, 3, 'a', '/', 'b');
        break;
    case MQTT_PROP_T_BINARY:
        PUT(k, 0, 2, 0x00, 0xFF);
        break;
    default:
        PUT(k, 0, 1, 'k', 0, 1, 'v');
        break;
    }
}

static int dec_blk(uint8_t kind, const struct blk *k, struct mqtt_props *out)
{
    return dec(kind, k->b, k->n, out);
}

/* ---- the table ---- */

Test(props_table, every_identifier_has_its_type)
{
    for (unsigned id = 0; id < 256; id++) {
        const struct row *r = spec_row((uint8_t)id);
        enum mqtt_prop_type want = r ? r->type : MQTT_PROP_T_NONE;

        cr_assert_eq(mqtt_prop_type((uint8_t)id), want, "id 0x%02x", id);
    }
}

Test(props_table, allowed_per_packet)
{
    for (unsigned id = 0; id < 256; id++) {
        const struct row *r = spec_row((uint8_t)id);

        for (unsigned kind = 0; kind < 256; kind++) {
            bool want = r && kind < 32 && (r->kinds >> kind & 1u);

            cr_assert_eq(mqtt_prop_allowed((uint8_t)id, (uint8_t)kind), want, "id 0x%02x kind %u",
                         id, kind);
        }
    }
}

/*
 * 2.2.2.2: "A Control Packet which contains an Identifier which is not
 * valid for its packet type ... is a Malformed Packet." Every property on
 * every kind, decoded: allowed gives MQTT_OK, anything else MALFORMED.
 */
Test(props_decode, mqtt_2_2_2_2_identifier_valid_per_packet)
{
    for (size_t i = 0; i < NSPEC; i++) {
        for (unsigned kind = 0; kind <= 17; kind++) {
            struct mqtt_props p;
            struct blk k = {.n = 0};

            /* 3.1.2.11.10: Authentication Data needs a method on CONNECT. */
            if (spec[i].id == MQTT_PROP_AUTH_DATA && kind == MQTT_CONNECT)
                put_sample(&k, MQTT_PROP_AUTH_METHOD);
            put_sample(&k, spec[i].id);
            int want = (spec[i].kinds >> kind & 1u) ? MQTT_OK : MQTT_RC_MALFORMED;

            cr_assert_eq(dec_blk((uint8_t)kind, &k, &p), want, "id 0x%02x kind %u", spec[i].id,
                         kind);
            if (want == MQTT_OK)
                cr_assert(mqtt_props_has(&p, spec[i].id));
        }
    }
}

Test(props_decode, unknown_identifiers_are_malformed)
{
    struct mqtt_props p;

    for (unsigned id = 0; id < 256; id++) {
        if (spec_row((uint8_t)id))
            continue;
        /* A plausible value follows, so only the identifier is wrong. */
        cr_assert_eq(dec(MQTT_CONNACK, ARR((uint8_t)id, 0, 0, 0, 0), &p), MQTT_RC_MALFORMED,
                     "id 0x%02x", id);
    }
    /* An identifier as a non-minimal variable byte integer (MQTT-1.5.5-1). */
    cr_assert_eq(DEC(MQTT_CONNACK, &p, 0x93, 0x00, 0, 60), MQTT_RC_MALFORMED);
}

Test(props_decode, empty_block_for_every_kind)
{
    struct mqtt_props p;

    for (unsigned kind = 0; kind < 256; kind++) {
        cr_assert_eq(mqtt_props_decode((uint8_t)kind, keep(NULL, 0), 0, &p), MQTT_OK);
        cr_assert_eq(p.present, 0);
        cr_assert_eq(p.user_prop_count + p.sub_id_count, 0);
    }
    cr_assert_eq(mqtt_props_decode(MQTT_CONNECT, NULL, 0, &p), MQTT_OK);
}

Test(props_decode, ping_packets_carry_nothing)
{
    struct mqtt_props p;

    cr_assert_eq(DEC(MQTT_PINGREQ, &p, 0x26, 0, 1, 'k', 0, 1, 'v'), MQTT_RC_MALFORMED);
    cr_assert_eq(DEC(MQTT_PINGRESP, &p, 0x1F, 0, 0), MQTT_RC_MALFORMED);
}

/* ---- values of each type ---- */

Test(props_decode, connack_every_property)
{
    struct mqtt_props p;

    cr_assert_eq(DEC(MQTT_CONNACK, &p, 0x11, 0, 0, 0x0E, 0x10, /* session expiry 3600 */
                     0x12, 0, 3, 'c', 'i', 'd',                /* assigned client id */
                     0x13, 0, 60,                              /* server keep alive */
                     0x15, 0, 4, 'S', 'C', 'R', 'M',           /* auth method */
                     0x16, 0, 2, 0x00, 0xFF,                   /* auth data */
                     0x1A, 0, 2, 'r', 'i',                     /* response information */
                     0x1C, 0, 3, 's', 'r', 'v',                /* server reference */
                     0x1F, 0, 2, 'o', 'k',                     /* reason string */
                     0x21, 0x01, 0x00,                         /* receive maximum 256 */
                     0x22, 0, 10,                              /* topic alias maximum */
                     0x24, 1,                                  /* maximum QoS */
                     0x25, 0,                                  /* retain available */
                     0x26, 0, 1, 'a', 0, 1, '1',               /* user property */
                     0x27, 0xFF, 0xFF, 0xFF, 0xFF,             /* maximum packet size */
                     0x28, 1, 0x29, 0, 0x2A, 1),
                 MQTT_OK);
    cr_assert_eq(p.session_expiry, 3600);
    ASSERT_STR(p.assigned_client_id, "cid");
    cr_assert_eq(p.server_keepalive, 60);
    ASSERT_STR(p.auth_method, "SCRM");
    assert_bytes(p.auth_data, "\x00\xff", 2);
    ASSERT_STR(p.response_info, "ri");
    ASSERT_STR(p.server_reference, "srv");
    ASSERT_STR(p.reason_string, "ok");
    cr_assert_eq(p.receive_maximum, 256);
    cr_assert_eq(p.topic_alias_maximum, 10);
    cr_assert_eq(p.maximum_qos, 1);
    cr_assert_eq(p.retain_available, 0);
    cr_assert(mqtt_props_has(&p, MQTT_PROP_RETAIN_AVAILABLE));
    cr_assert_eq(p.user_prop_count, 1);
    cr_assert_eq(p.maximum_packet_size, 0xFFFFFFFFu);
    cr_assert_eq(p.wildcard_sub_available, 1);
    cr_assert_eq(p.sub_id_available, 0);
    cr_assert_eq(p.shared_sub_available, 1);
    cr_assert_not(mqtt_props_has(&p, MQTT_PROP_PAYLOAD_FORMAT));
    cr_assert_not(mqtt_props_has(&p, MQTT_PROP_TOPIC_ALIAS));
    cr_assert_eq(p.block.len, 70);
}

Test(props_decode, connect_every_property)
{
    struct mqtt_props p;

    cr_assert_eq(DEC(MQTT_CONNECT, &p, 0x11, 0xFF, 0xFF, 0xFF, 0xFF, /* session expiry max */
                     0x15, 0, 5, 'P', 'L', 'A', 'I', 'N', 0x16, 0, 1, 'x', 0x17, 0, 0x19, 1, 0x21,
                     0xFF, 0xFF, 0x22, 0, 0, 0x27, 0, 1, 0, 0, 0x26, 0, 0, 0, 0),
                 MQTT_OK);
    cr_assert_eq(p.session_expiry, 0xFFFFFFFFu);
    ASSERT_STR(p.auth_method, "PLAIN");
    ASSERT_STR(p.auth_data, "x");
    cr_assert(mqtt_props_has(&p, MQTT_PROP_REQUEST_PROBLEM_INFO));
    cr_assert_eq(p.request_problem_info, 0);
    cr_assert_eq(p.request_response_info, 1);
    cr_assert_eq(p.receive_maximum, 65535);
    cr_assert(mqtt_props_has(&p, MQTT_PROP_TOPIC_ALIAS_MAXIMUM));
    cr_assert_eq(p.topic_alias_maximum, 0); /* 0 is allowed: no aliases */
    cr_assert_eq(p.maximum_packet_size, 65536);
    cr_assert_eq(p.user_prop_count, 1); /* empty name and value are strings too */
}

Test(props_decode, publish_every_property)
{
    struct mqtt_props p;
    struct mqtt_props_iter it;
    uint32_t id;

    cr_assert_eq(DEC(MQTT_PUBLISH, &p, 0x01, 1, 0x02, 0, 0, 0, 100, 0x03, 0, 4, 't', 'e', 'x', 't',
                     0x08, 0, 5, 'r', 'e', 'p', '/', '1', 0x09, 0, 3, 1, 2, 3, 0x0B, 0x05, 0x23, 0,
                     7, 0x0B, 0xFF, 0xFF, 0xFF, 0x7F, /* the largest: 268,435,455 */
                     0x26, 0, 1, 'k', 0, 1, 'v'),
                 MQTT_OK);
    cr_assert_eq(p.payload_format, 1);
    cr_assert_eq(p.message_expiry, 100);
    ASSERT_STR(p.content_type, "text");
    ASSERT_STR(p.response_topic, "rep/1");
    assert_bytes(p.correlation_data, "\x01\x02\x03", 3);
    cr_assert_eq(p.topic_alias, 7);
    cr_assert_eq(p.sub_id_count, 2);
    cr_assert_eq(p.subscription_id, 5);
    mqtt_props_iter_init(&it, &p);
    cr_assert(mqtt_props_next_sub_id(&it, &id));
    cr_assert_eq(id, 5);
    cr_assert(mqtt_props_next_sub_id(&it, &id));
    cr_assert_eq(id, MQTT_SUB_ID_MAX);
    cr_assert_not(mqtt_props_next_sub_id(&it, &id));
    cr_assert_not(mqtt_props_next_sub_id(&it, &id)); /* stays at the end */
}

Test(props_decode, will_properties)
{
    struct mqtt_props p;

    cr_assert_eq(DEC(MQTT_PROPS_WILL, &p, 0x18, 0, 0, 1, 0, 0x01, 0, 0x02, 0, 0, 0, 9, 0x03, 0, 1,
                     'j', 0x08, 0, 1, 'r', 0x09, 0, 0, 0x26, 0, 1, 'n', 0, 1, 'v'),
                 MQTT_OK);
    cr_assert_eq(p.will_delay, 256);
    cr_assert_eq(p.payload_format, 0);
    cr_assert(mqtt_props_has(&p, MQTT_PROP_PAYLOAD_FORMAT));
    cr_assert_eq(p.message_expiry, 9);
    ASSERT_STR(p.content_type, "j");
    ASSERT_STR(p.response_topic, "r");
    cr_assert(mqtt_props_has(&p, MQTT_PROP_CORRELATION_DATA));
    cr_assert_eq(p.correlation_data.len, 0);
    /* Topic Alias and Subscription Identifier belong to PUBLISH only. */
    cr_assert_eq(DEC(MQTT_PROPS_WILL, &p, 0x23, 0, 1), MQTT_RC_MALFORMED);
    cr_assert_eq(DEC(MQTT_PROPS_WILL, &p, 0x0B, 1), MQTT_RC_MALFORMED);
}

Test(props_decode, disconnect_auth_subscribe_acks)
{
    struct mqtt_props p;

    cr_assert_eq(DEC(MQTT_DISCONNECT, &p, 0x11, 0, 0, 0, 0, 0x1C, 0, 1, 'h', 0x1F, 0, 1, 'x'),
                 MQTT_OK);
    cr_assert(mqtt_props_has(&p, MQTT_PROP_SESSION_EXPIRY));
    ASSERT_STR(p.server_reference, "h");
    ASSERT_STR(p.reason_string, "x");
    cr_assert_eq(DEC(MQTT_AUTH, &p, 0x15, 0, 1, 'm', 0x16, 0, 1, 0, 0x1F, 0, 0), MQTT_OK);
    ASSERT_STR(p.auth_method, "m");
    cr_assert_eq(DEC(MQTT_SUBSCRIBE, &p, 0x0B, 0x2A, 0x26, 0, 1, 'a', 0, 0), MQTT_OK);
    cr_assert_eq(p.subscription_id, 42);
    cr_assert_eq(p.sub_id_count, 1);
    cr_assert_eq(DEC(MQTT_UNSUBSCRIBE, &p, 0x26, 0, 1, 'a', 0, 0), MQTT_OK);
    for (uint8_t t = MQTT_PUBACK; t <= MQTT_PUBCOMP; t++)
        cr_assert_eq(DEC(t, &p, 0x1F, 0, 2, 'n', 'o'), MQTT_OK);
    cr_assert_eq(DEC(MQTT_SUBACK, &p, 0x1F, 0, 0), MQTT_OK);
    cr_assert_eq(DEC(MQTT_UNSUBACK, &p, 0x1F, 0, 0), MQTT_OK);
    /* Reason String is not a SUBSCRIBE/UNSUBSCRIBE/CONNECT property. */
    cr_assert_eq(DEC(MQTT_UNSUBSCRIBE, &p, 0x1F, 0, 0), MQTT_RC_MALFORMED);
    cr_assert_eq(DEC(MQTT_CONNECT, &p, 0x1F, 0, 0), MQTT_RC_MALFORMED);
}

/* ---- duplicates ---- */

/* 3.x for each single-valued property: "It is a Protocol Error to include
 * X more than once". Two copies, on every packet that may carry it. */
Test(props_dup, single_valued_twice_is_protocol_error)
{
    for (size_t i = 0; i < NSPEC; i++) {
        uint8_t id = spec[i].id;

        if (id == MQTT_PROP_USER_PROPERTY || id == MQTT_PROP_SUBSCRIPTION_ID)
            continue;
        for (unsigned kind = 0; kind < 16; kind++) {
            struct mqtt_props p;
            struct blk k = {.n = 0};

            if (!(spec[i].kinds >> kind & 1u))
                continue;
            put_sample(&k, id);
            put_sample(&k, MQTT_PROP_USER_PROPERTY); /* not adjacent */
            put_sample(&k, id);
            if (id == MQTT_PROP_AUTH_DATA)
                put_sample(&k, MQTT_PROP_AUTH_METHOD);
            cr_assert_eq(dec_blk((uint8_t)kind, &k, &p), MQTT_RC_PROTOCOL_ERROR,
                         "id 0x%02x kind %u", id, kind);
        }
    }
}

/* 3.3.2.3.7 and 2.2.2.2: User Property may appear any number of times,
 * the same name more than once. */
Test(props_dup, user_property_repeats)
{
    for (size_t i = 0; i < NSPEC; i++) {
        if (spec[i].id != MQTT_PROP_USER_PROPERTY)
            continue;
        for (unsigned kind = 0; kind < 16; kind++) {
            struct mqtt_props p;
            struct blk k = {.n = 0};

            if (!(spec[i].kinds >> kind & 1u))
                continue;
            for (int j = 0; j < 5; j++)
                put_sample(&k, MQTT_PROP_USER_PROPERTY);
            cr_assert_eq(dec_blk((uint8_t)kind, &k, &p), MQTT_OK, "kind %u", kind);
            cr_assert_eq(p.user_prop_count, 5);
        }
    }
}

/* MQTT-3.3.4-4: a PUBLISH may carry several Subscription Identifiers;
 * 3.8.2.1.2: on SUBSCRIBE "more than once" is a Protocol Error. */
Test(props_dup, mqtt_3_3_4_4_subscription_ids)
{
    struct mqtt_props p;

    cr_assert_eq(DEC(MQTT_PUBLISH, &p, 0x0B, 1, 0x0B, 2, 0x0B, 1), MQTT_OK);
    cr_assert_eq(p.sub_id_count, 3);
    cr_assert_eq(DEC(MQTT_SUBSCRIBE, &p, 0x0B, 1, 0x0B, 2), MQTT_RC_PROTOCOL_ERROR);
}

/* ---- value ranges ---- */

/* Every Byte property is 0 or 1: 3.1.2.11.6, 3.1.2.11.7, 3.2.2.3.4,
 * 3.2.2.3.5, 3.2.2.3.11..13 say "a value other than 0 or 1" is a Protocol
 * Error; 3.3.2.3.2 defines only 0 and 1 for the Payload Format Indicator. */
Test(props_range, byte_properties_are_0_or_1)
{
    static const uint8_t bad[] = {2, 3, 0x7F, 0x80, 0xFF};

    for (size_t i = 0; i < NSPEC; i++) {
        if (spec[i].type != MQTT_PROP_T_BYTE)
            continue;
        uint8_t kind = (spec[i].kinds & KCA)  ? MQTT_CONNACK
                       : (spec[i].kinds & KC) ? MQTT_CONNECT
                                              : MQTT_PUBLISH;
        struct mqtt_props p;

        cr_assert_eq(dec(kind, ARR(spec[i].id, 0), &p), MQTT_OK, "id 0x%02x", spec[i].id);
        cr_assert_eq(dec(kind, ARR(spec[i].id, 1), &p), MQTT_OK, "id 0x%02x", spec[i].id);
        for (size_t j = 0; j < sizeof(bad); j++)
            cr_assert_eq(dec(kind, ARR(spec[i].id, bad[j]), &p), MQTT_RC_PROTOCOL_ERROR,
                         "id 0x%02x value %u", spec[i].id, bad[j]);
    }
}

/* 3.2.2.3.4: Maximum QoS 2 is not a value the server may send. */
Test(props_range, maximum_qos_2)
{
    struct mqtt_props p;

    cr_assert_eq(DEC(MQTT_CONNACK, &p, 0x24, 2), MQTT_RC_PROTOCOL_ERROR);
}

/* 3.1.2.11.3 and 3.2.2.3.3: Receive Maximum 0 is a Protocol Error. */
Test(props_range, receive_maximum_zero)
{
    struct mqtt_props p;

    cr_assert_eq(DEC(MQTT_CONNECT, &p, 0x21, 0, 0), MQTT_RC_PROTOCOL_ERROR);
    cr_assert_eq(DEC(MQTT_CONNACK, &p, 0x21, 0, 0), MQTT_RC_PROTOCOL_ERROR);
    cr_assert_eq(DEC(MQTT_CONNECT, &p, 0x21, 0, 1), MQTT_OK);
    cr_assert_eq(p.receive_maximum, 1);
}

/* 3.1.2.11.4 and 3.2.2.3.6: Maximum Packet Size 0 is a Protocol Error. */
Test(props_range, maximum_packet_size_zero)
{
    struct mqtt_props p;

    cr_assert_eq(DEC(MQTT_CONNECT, &p, 0x27, 0, 0, 0, 0), MQTT_RC_PROTOCOL_ERROR);
    cr_assert_eq(DEC(MQTT_CONNACK, &p, 0x27, 0, 0, 0, 0), MQTT_RC_PROTOCOL_ERROR);
    cr_assert_eq(DEC(MQTT_CONNECT, &p, 0x27, 0, 0, 0, 1), MQTT_OK);
}

/* MQTT-3.3.2-8: a Topic Alias of 0 is not permitted. */
Test(props_range, mqtt_3_3_2_8_topic_alias_zero)
{
    struct mqtt_props p;

    cr_assert_eq(DEC(MQTT_PUBLISH, &p, 0x23, 0, 0), MQTT_RC_PROTOCOL_ERROR);
    cr_assert_eq(DEC(MQTT_PUBLISH, &p, 0x23, 0xFF, 0xFF), MQTT_OK);
    cr_assert_eq(p.topic_alias, 65535);
}

/* 3.8.2.1.2 and 3.3.2.3.8: a Subscription Identifier of 0 is a Protocol
 * Error; the largest is 268,435,455. */
Test(props_range, subscription_id_zero)
{
    struct mqtt_props p;

    cr_assert_eq(DEC(MQTT_SUBSCRIBE, &p, 0x0B, 0), MQTT_RC_PROTOCOL_ERROR);
    cr_assert_eq(DEC(MQTT_PUBLISH, &p, 0x0B, 3, 0x0B, 0), MQTT_RC_PROTOCOL_ERROR);
    cr_assert_eq(DEC(MQTT_SUBSCRIBE, &p, 0x0B, 0xFF, 0xFF, 0xFF, 0x7F), MQTT_OK);
    cr_assert_eq(p.subscription_id, MQTT_SUB_ID_MAX);
}

/* MQTT-1.5.5-1: a variable byte integer uses as few bytes as it can; more
 * than 4 bytes is no integer at all. */
Test(props_range, mqtt_1_5_5_1_subscription_id_encoding)
{
    struct mqtt_props p;

    cr_assert_eq(DEC(MQTT_SUBSCRIBE, &p, 0x0B, 0x81, 0x00), MQTT_RC_MALFORMED);
    cr_assert_eq(DEC(MQTT_SUBSCRIBE, &p, 0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01), MQTT_RC_MALFORMED);
    cr_assert_eq(DEC(MQTT_SUBSCRIBE, &p, 0x0B, 0x80, 0x80, 0x80, 0x01), MQTT_OK);
    cr_assert_eq(p.subscription_id, 1u << 21);
}

/* MQTT-3.3.2-14: a Response Topic is a topic name, without wildcards;
 * MQTT-4.7.3-1: and not empty. Both on PUBLISH and in a will. */
Test(props_range, mqtt_3_3_2_14_response_topic_wildcards)
{
    struct mqtt_props p;

    for (uint8_t kind = 0; kind <= MQTT_PUBLISH; kind += MQTT_PUBLISH) {
        cr_assert_eq(dec(kind, ARR(0x08, 0, 3, 'a', '/', '+'), &p), MQTT_RC_PROTOCOL_ERROR);
        cr_assert_eq(dec(kind, ARR(0x08, 0, 1, '#'), &p), MQTT_RC_PROTOCOL_ERROR);
        cr_assert_eq(dec(kind, ARR(0x08, 0, 0), &p), MQTT_RC_PROTOCOL_ERROR);
        cr_assert_eq(dec(kind, ARR(0x08, 0, 4, '$', 'a', '/', 'b'), &p), MQTT_OK);
    }
}

/* 3.1.2.11.10: Authentication Data without Authentication Method. */
Test(props_range, auth_data_without_method_on_connect)
{
    struct mqtt_props p;

    cr_assert_eq(DEC(MQTT_CONNECT, &p, 0x16, 0, 1, 'x'), MQTT_RC_PROTOCOL_ERROR);
    cr_assert_eq(DEC(MQTT_CONNECT, &p, 0x16, 0, 1, 'x', 0x15, 0, 1, 'm'), MQTT_OK);
    cr_assert_eq(DEC(MQTT_CONNECT, &p, 0x15, 0, 1, 'm'), MQTT_OK);
}

/* ---- strings ---- */

/* MQTT-1.5.4-1: ill-formed UTF-8 in a UTF-8 string is a Malformed Packet. */
Test(props_utf8, mqtt_1_5_4_1_ill_formed)
{
    for (size_t i = 0; i < NSPEC; i++) {
        if (spec[i].type != MQTT_PROP_T_UTF8)
            continue;
        uint8_t kind = (uint8_t)__builtin_ctz(spec[i].kinds);
        struct mqtt_props p;

        cr_assert_eq(dec(kind, ARR(spec[i].id, 0, 2, 0xC3, 0x28), &p), MQTT_RC_MALFORMED,
                     "id 0x%02x", spec[i].id);
        cr_assert_eq(dec(kind, ARR(spec[i].id, 0, 3, 0xED, 0xA0, 0x80), &p), MQTT_RC_MALFORMED,
                     "surrogate, id 0x%02x", spec[i].id);
        cr_assert_eq(dec(kind, ARR(spec[i].id, 0, 2, 0xC0, 0xAF), &p), MQTT_RC_MALFORMED,
                     "overlong, id 0x%02x", spec[i].id);
        cr_assert_eq(dec(kind, ARR(spec[i].id, 0, 2, 0xC3, 0xA9), &p), MQTT_OK, "id 0x%02x",
                     spec[i].id);
    }
}

/* MQTT-1.5.4-2: no U+0000 in a UTF-8 string. */
Test(props_utf8, mqtt_1_5_4_2_null_character)
{
    struct mqtt_props p;

    cr_assert_eq(DEC(MQTT_CONNACK, &p, 0x1F, 0, 3, 'a', 0, 'b'), MQTT_RC_MALFORMED);
    cr_assert_eq(DEC(MQTT_PUBLISH, &p, 0x03, 0, 1, 0), MQTT_RC_MALFORMED);
}

/* MQTT-1.5.7-1: both strings of a pair are UTF-8 strings. */
Test(props_utf8, mqtt_1_5_7_1_string_pair)
{
    struct mqtt_props p;

    cr_assert_eq(DEC(MQTT_PUBLISH, &p, 0x26, 0, 1, 0xFF, 0, 1, 'v'), MQTT_RC_MALFORMED);
    cr_assert_eq(DEC(MQTT_PUBLISH, &p, 0x26, 0, 1, 'k', 0, 1, 0x00), MQTT_RC_MALFORMED);
    cr_assert_eq(DEC(MQTT_PUBLISH, &p, 0x26, 0, 1, 'k', 0, 1, 0x80), MQTT_RC_MALFORMED);
}

/* Binary Data (1.5.6) is any bytes. */
Test(props_utf8, binary_data_any_bytes)
{
    struct mqtt_props p;

    cr_assert_eq(DEC(MQTT_PUBLISH, &p, 0x09, 0, 4, 0x00, 0xFF, 0xC0, 0xED), MQTT_OK);
    assert_bytes(p.correlation_data, "\x00\xff\xc0\xed", 4);
    cr_assert_eq(DEC(MQTT_AUTH, &p, 0x16, 0, 1, 0x00), MQTT_OK);
}

/* ---- which error wins ---- */

Test(props_decode, malformed_wins_over_protocol_error)
{
    struct mqtt_props p;

    /* A duplicate, then a truncated value. */
    cr_assert_eq(DEC(MQTT_CONNACK, &p, 0x13, 0, 1, 0x13, 0, 2, 0x11, 0, 0), MQTT_RC_MALFORMED);
    /* A bad range, then an identifier CONNACK may not carry. */
    cr_assert_eq(DEC(MQTT_CONNACK, &p, 0x24, 7, 0x23, 0, 1), MQTT_RC_MALFORMED);
    /* A bad range, then bad UTF-8. */
    cr_assert_eq(DEC(MQTT_PUBLISH, &p, 0x23, 0, 0, 0x03, 0, 1, 0xFF), MQTT_RC_MALFORMED);
    /* Protocol errors alone. */
    cr_assert_eq(DEC(MQTT_CONNACK, &p, 0x24, 7, 0x13, 0, 1), MQTT_RC_PROTOCOL_ERROR);
}

/* ---- truncation ---- */

/* The sample PUBLISH block, with the length of each of its properties. */
static const uint8_t pub_sample[] = {
    0x01, 1,                                            /* 2 */
    0x02, 0,    0,    1,    0,                          /* 5 */
    0x03, 0,    4,    't',  'e',  'x', 't',             /* 7 */
    0x08, 0,    5,    'r',  'e',  'p', '/', '1',        /* 8 */
    0x09, 0,    3,    1,    2,    3,                    /* 6 */
    0x0B, 0x80, 0x01,                                   /* 3 */
    0x0B, 0xFF, 0xFF, 0xFF, 0x7F,                       /* 5 */
    0x23, 0,    7,                                      /* 3 */
    0x26, 0,    2,    'k',  '1',  0,   2,   0xC3, 0xA9, /* 9 */
    0x26, 0,    0,    0,    0,                          /* 5 */
};
static const size_t pub_sample_lens[] = {2, 5, 7, 8, 6, 3, 5, 3, 9, 5};

static const uint8_t connack_sample[] = {
    0x11, 0,    0,    0,   5,    0x12, 0, 1, 'c',  0x13, 0,    9,    0x15, 0,    1,
    'm',  0x16, 0,    1,   0xAB, 0x1A, 0, 1, 'r',  0x1C, 0,    1,    's',  0x1F, 0,
    1,    'x',  0x21, 0,   1,    0x22, 0, 2, 0x24, 0,    0x25, 1,    0x26, 0,    1,
    'a',  0,    1,    'b', 0x27, 0,    0, 1, 0,    0x28, 1,    0x29, 1,    0x2A, 0,
};
static const size_t connack_sample_lens[] = {5, 4, 3, 4, 4, 4, 4, 4, 3, 3, 2, 2, 7, 5, 2, 2, 2};

/* Every prefix of the block decoded from an exact-size copy: a prefix that
 * ends between two properties decodes, any other is MALFORMED (2.2.2.2:
 * a value cut short is not of its data type). */
static void check_every_prefix(uint8_t kind, const uint8_t *b, size_t n, const size_t *lens,
                               size_t nlens)
{
    size_t total = 0;

    for (size_t i = 0; i < nlens; i++)
        total += lens[i];
    cr_assert_eq(total, n, "sample lengths %zu, sample %zu", total, n);
    for (size_t k = 0; k <= n; k++) {
        struct mqtt_props p;
        bool boundary = false;
        size_t at = 0;

        for (size_t i = 0; i <= nlens && !boundary; i++) {
            boundary = at == k;
            if (i < nlens)
                at += lens[i];
        }
        cr_assert_eq(dec(kind, b, k, &p), boundary ? MQTT_OK : MQTT_RC_MALFORMED, "prefix %zu", k);
        /* The iterator stops at the same place and never reads past. */
        struct mqtt_props_iter it;
        struct mqtt_prop pr;
        size_t walked = 0;
        const uint8_t *c = keep(b, k);

        mqtt_props_iter_init_raw(&it, c, k);
        while (mqtt_props_iter_next(&it, &pr))
            walked += pr.raw.len;
        cr_assert(walked <= k);
        if (boundary)
            cr_assert_eq(walked, k);
    }
}

Test(props_truncation, every_offset_of_a_publish_block)
{
    check_every_prefix(MQTT_PUBLISH, pub_sample, sizeof(pub_sample), pub_sample_lens,
                       sizeof(pub_sample_lens) / sizeof(pub_sample_lens[0]));
}

Test(props_truncation, every_offset_of_a_connack_block)
{
    check_every_prefix(MQTT_CONNACK, connack_sample, sizeof(connack_sample), connack_sample_lens,
                       sizeof(connack_sample_lens) / sizeof(connack_sample_lens[0]));
}

/* The same block behind its Property Length: every shorter buffer is
 * MALFORMED, the whole one decodes. */
Test(props_truncation, every_offset_with_length_prefix)
{
    uint8_t b[sizeof(pub_sample) + 1];
    struct mqtt_bytes content;
    size_t used;

    b[0] = (uint8_t)sizeof(pub_sample);
    memcpy(b + 1, pub_sample, sizeof(pub_sample));
    for (size_t k = 0; k < sizeof(b); k++)
        cr_assert_eq(mqtt_props_block_decode(keep(b, k), k, &content, &used), MQTT_RC_MALFORMED,
                     "prefix %zu", k);
    const uint8_t *c = keep(b, sizeof(b));

    cr_assert_eq(mqtt_props_block_decode(c, sizeof(b), &content, &used), MQTT_OK);
    cr_assert_eq(used, sizeof(b));
    cr_assert_eq(content.p, c + 1);
    cr_assert_eq(content.len, sizeof(pub_sample));
}

/* ---- iterators and user property order ---- */

/* MQTT-3.3.2-18: User Properties keep their order; the iterator gives them
 * in wire order, with the same name more than once, other properties in
 * between. */
Test(props_iter, mqtt_3_3_2_18_user_property_order)
{
    struct mqtt_props p;
    struct mqtt_props_iter it;
    struct mqtt_user_prop u;
    static const char *const want[][2] = {{"b", "1"}, {"a", "2"}, {"b", "3"}, {"b", "1"}};

    cr_assert_eq(DEC(MQTT_PUBLISH, &p, 0x26, 0, 1, 'b', 0, 1, '1', 0x01, 1, 0x26, 0, 1, 'a', 0, 1,
                     '2', 0x0B, 4, 0x26, 0, 1, 'b', 0, 1, '3', 0x03, 0, 1, 'c', 0x26, 0, 1, 'b', 0,
                     1, '1'),
                 MQTT_OK);
    cr_assert_eq(p.user_prop_count, 4);
    mqtt_props_iter_init(&it, &p);
    for (size_t i = 0; i < 4; i++) {
        cr_assert(mqtt_props_next_user(&it, &u), "entry %zu", i);
        assert_bytes(u.name, want[i][0], 1);
        assert_bytes(u.value, want[i][1], 1);
    }
    cr_assert_not(mqtt_props_next_user(&it, &u));
}

Test(props_iter, generic_iterator_gives_raw_bytes)
{
    struct mqtt_props p;
    struct mqtt_props_iter it;
    struct mqtt_prop pr;

    cr_assert_eq(DEC(MQTT_CONNACK, &p, 0x13, 0, 5, 0x26, 0, 1, 'k', 0, 2, 'v', 'w', 0x24, 0),
                 MQTT_OK);
    mqtt_props_iter_init(&it, &p);
    cr_assert(mqtt_props_iter_next(&it, &pr));
    cr_assert_eq(pr.id, MQTT_PROP_SERVER_KEEPALIVE);
    cr_assert_eq(pr.num, 5);
    assert_bytes(pr.raw, "\x13\x00\x05", 3);
    cr_assert_eq(pr.raw.p, p.block.p);
    cr_assert(mqtt_props_iter_next(&it, &pr));
    cr_assert_eq(pr.id, MQTT_PROP_USER_PROPERTY);
    ASSERT_STR(pr.str, "k");
    ASSERT_STR(pr.value, "vw");
    cr_assert_eq(pr.raw.len, 8);
    cr_assert(mqtt_props_iter_next(&it, &pr));
    cr_assert_eq(pr.id, MQTT_PROP_MAXIMUM_QOS);
    cr_assert_eq(pr.num, 0);
    cr_assert_not(mqtt_props_iter_next(&it, &pr));
}

Test(props_iter, stops_at_a_bad_property)
{
    struct mqtt_props_iter it;
    struct mqtt_prop pr;
    const uint8_t *b = keep(ARR(0x13, 0, 5, 0x04, 1, 0x13, 0, 6));

    mqtt_props_iter_init_raw(&it, b, 8);
    cr_assert(mqtt_props_iter_next(&it, &pr));
    cr_assert_not(mqtt_props_iter_next(&it, &pr)); /* 0x04 is no property */
    cr_assert_not(mqtt_props_iter_next(&it, &pr)); /* and it stays stopped */
}

/* ---- writing ---- */

Test(props_encode, block_length_prefix)
{
    uint8_t b[4];

    cr_assert_eq(mqtt_props_block_size(0), 1);
    cr_assert_eq(mqtt_props_block_size(127), 128);
    cr_assert_eq(mqtt_props_block_size(128), 130);
    cr_assert_eq(mqtt_props_block_size(16383), 16385);
    cr_assert_eq(mqtt_props_block_size(16384), 16387);
    cr_assert_eq(mqtt_props_block_size(2097152), 2097156);
    cr_assert_eq(mqtt_props_block_size(MQTT_MAX_REMAINING_LENGTH), MQTT_MAX_REMAINING_LENGTH + 4u);
    cr_assert_eq(mqtt_props_block_size((size_t)MQTT_MAX_REMAINING_LENGTH + 1), 0);
    cr_assert_eq(mqtt_props_len_encode(b, 0), 1);
    cr_assert_eq(b[0], 0);
    cr_assert_eq(mqtt_props_len_encode(b, 321), 2);
    cr_assert(memcmp(b, "\xc1\x02", 2) == 0);
}

/* MQTT-1.5.5-1 applies to the Property Length too. */
Test(props_encode, mqtt_1_5_5_1_block_decode_prefix)
{
    struct mqtt_bytes c;
    size_t used;

    cr_assert_eq(mqtt_props_block_decode(keep(ARR(0x80, 0x00)), 2, &c, &used), MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_props_block_decode(keep(ARR(0x80, 0x80, 0x80, 0x80, 0x01)), 5, &c, &used),
                 MQTT_RC_MALFORMED);
    cr_assert_eq(mqtt_props_block_decode(keep(ARR(0x00, 0xEE)), 2, &c, &used), MQTT_OK);
    cr_assert_eq(used, 1);
    cr_assert_eq(c.len, 0);
    cr_assert_eq(mqtt_props_block_decode(NULL, 0, &c, &used), MQTT_RC_MALFORMED);
}

/* MQTT-2.2.2-1: no properties is a Property Length of zero. */
Test(props_encode, mqtt_2_2_2_1_empty_block)
{
    struct mqtt_props p = {0};
    uint8_t b[2] = {0xEE, 0xEE};

    cr_assert_eq(mqtt_props_size(&p, NULL, 0, NULL, 0), 1);
    cr_assert_eq(mqtt_props_encode(b, &p, NULL, 0, NULL, 0), 1);
    cr_assert_eq(b[0], 0);
    cr_assert_eq(b[1], 0xEE);
}

/* Written by hand: identifier order, then the User Properties. */
Test(props_encode, exact_bytes)
{
    static const uint8_t want[] = {0x14, 0x11, 0,  0,    1, 0, 0x1F, 0, 2, 'n', 'o',
                                   0x21, 0,    10, 0x26, 0, 1, 'x',  0, 1, 'y'};
    struct mqtt_props p = {0};
    struct mqtt_user_prop u = {S("x"), S("y")};
    uint8_t b[sizeof(want) + 1];

    p.reason_string = S("no");
    mqtt_props_set(&p, MQTT_PROP_REASON_STRING);
    p.receive_maximum = 10;
    mqtt_props_set(&p, MQTT_PROP_RECEIVE_MAXIMUM);
    p.session_expiry = 256;
    mqtt_props_set(&p, MQTT_PROP_SESSION_EXPIRY);
    p.topic_alias = 3; /* not present: not written */
    memset(b, 0xEE, sizeof(b));
    cr_assert_eq(mqtt_props_size(&p, NULL, 0, &u, 1), sizeof(want));
    cr_assert_eq(mqtt_props_encode(b, &p, NULL, 0, &u, 1), sizeof(want));
    cr_assert(memcmp(b, want, sizeof(want)) == 0);
    cr_assert_eq(b[sizeof(want)], 0xEE);
}

/* What the encoder cannot write it refuses whole, writing nothing. */
Test(props_encode, refuses_what_does_not_fit)
{
    static uint8_t big[65536];
    struct mqtt_props p = {0};
    uint8_t b[16];
    uint32_t ids[2] = {1, 0};
    struct mqtt_user_prop u = {{big, 65536}, S("v")};

    memset(b, 0xEE, sizeof(b));
    p.content_type = (struct mqtt_bytes){big, 65536};
    mqtt_props_set(&p, MQTT_PROP_CONTENT_TYPE);
    cr_assert_eq(mqtt_props_size(&p, NULL, 0, NULL, 0), 0);
    cr_assert_eq(mqtt_props_encode(b, &p, NULL, 0, NULL, 0), 0);
    p.present = 0;
    cr_assert_eq(mqtt_props_size(&p, NULL, 0, &u, 1), 0);
    cr_assert_eq(mqtt_props_size(&p, ids, 2, NULL, 0), 0); /* id 0 */
    ids[1] = MQTT_SUB_ID_MAX + 1;
    cr_assert_eq(mqtt_props_size(&p, ids, 2, NULL, 0), 0);
    cr_assert_eq(mqtt_props_encode(b, &p, ids, 2, NULL, 0), 0);
    for (size_t i = 0; i < sizeof(b); i++)
        cr_assert_eq(b[i], 0xEE);
    /* 65535 bytes is the largest string. */
    p.content_type.len = 65535;
    mqtt_props_set(&p, MQTT_PROP_CONTENT_TYPE);
    cr_assert_eq(mqtt_props_size(&p, NULL, 0, NULL, 0), 3u + 1 + 2 + 65535);
}

/* Encode, read the block back with its prefix, decode for `kind`. */
static const uint8_t *round_trip(uint8_t kind, const struct mqtt_props *in, const uint32_t *ids,
                                 size_t n_ids, const struct mqtt_user_prop *u, size_t n_u,
                                 struct mqtt_props *out)
{
    static uint8_t b[1024];
    struct mqtt_bytes c;
    size_t used, n = mqtt_props_size(in, ids, n_ids, u, n_u);

    cr_assert(n > 0 && n <= sizeof(b));
    cr_assert_eq(mqtt_props_encode(b, in, ids, n_ids, u, n_u), n);
    const uint8_t *k = keep(b, n);

    cr_assert_eq(mqtt_props_block_decode(k, n, &c, &used), MQTT_OK);
    cr_assert_eq(used, n);
    cr_assert_eq(mqtt_props_decode(kind, c.p, c.len, out), MQTT_OK);
    cr_assert_eq(out->present, in->present | (n_ids ? 1ull << MQTT_PROP_SUBSCRIPTION_ID : 0) |
                                   (n_u ? 1ull << MQTT_PROP_USER_PROPERTY : 0));
    return k;
}

Test(props_encode, round_trip_connack)
{
    struct mqtt_props in = {0}, out;
    struct mqtt_user_prop u[] = {{S("z"), S("1")}, {S("a"), S("2")}, {S("z"), S("")}};
    struct mqtt_props_iter it;
    struct mqtt_user_prop got;

    in.session_expiry = 7200;
    in.assigned_client_id = S("auto-1");
    in.server_keepalive = 30;
    in.auth_method = S("SCRAM-SHA-1");
    in.auth_data = (struct mqtt_bytes){(const uint8_t *)"\x00\x01", 2};
    in.response_info = S("resp/");
    in.server_reference = S("other:1883");
    in.reason_string = S("\xc3\xa9");
    in.receive_maximum = 100;
    in.topic_alias_maximum = 16;
    in.maximum_qos = 1;
    in.retain_available = 0;
    in.maximum_packet_size = 1 << 20;
    in.wildcard_sub_available = 1;
    in.sub_id_available = 1;
    in.shared_sub_available = 0;
    for (size_t i = 0; i < NSPEC; i++)
        if ((spec[i].kinds & KCA) && spec[i].id != MQTT_PROP_USER_PROPERTY)
            mqtt_props_set(&in, spec[i].id);
    round_trip(MQTT_CONNACK, &in, NULL, 0, u, 3, &out);
    cr_assert_eq(out.session_expiry, 7200);
    ASSERT_STR(out.assigned_client_id, "auto-1");
    cr_assert_eq(out.server_keepalive, 30);
    ASSERT_STR(out.auth_method, "SCRAM-SHA-1");
    assert_bytes(out.auth_data, "\x00\x01", 2);
    ASSERT_STR(out.response_info, "resp/");
    ASSERT_STR(out.server_reference, "other:1883");
    ASSERT_STR(out.reason_string, "\xc3\xa9");
    cr_assert_eq(out.receive_maximum, 100);
    cr_assert_eq(out.topic_alias_maximum, 16);
    cr_assert_eq(out.maximum_qos, 1);
    cr_assert_eq(out.retain_available, 0);
    cr_assert_eq(out.maximum_packet_size, 1u << 20);
    cr_assert_eq(out.wildcard_sub_available, 1);
    cr_assert_eq(out.sub_id_available, 1);
    cr_assert_eq(out.shared_sub_available, 0);
    mqtt_props_iter_init(&it, &out);
    for (size_t i = 0; i < 3; i++) {
        cr_assert(mqtt_props_next_user(&it, &got));
        assert_bytes(got.name, u[i].name.p, u[i].name.len);
        assert_bytes(got.value, u[i].value.p, u[i].value.len);
    }
    cr_assert_not(mqtt_props_next_user(&it, &got));
}

Test(props_encode, round_trip_publish_and_will)
{
    struct mqtt_props in = {0}, out;
    uint32_t ids[] = {1, 127, 128, 16383, 16384, MQTT_SUB_ID_MAX};
    struct mqtt_props_iter it;
    uint32_t id;

    in.payload_format = 1;
    in.message_expiry = 0xFFFFFFFFu;
    in.content_type = S("application/json");
    in.response_topic = S("reply/to/me");
    in.correlation_data = (struct mqtt_bytes){(const uint8_t *)"\xff\x00", 2};
    in.topic_alias = 65535;
    mqtt_props_set(&in, MQTT_PROP_PAYLOAD_FORMAT);
    mqtt_props_set(&in, MQTT_PROP_MESSAGE_EXPIRY);
    mqtt_props_set(&in, MQTT_PROP_CONTENT_TYPE);
    mqtt_props_set(&in, MQTT_PROP_RESPONSE_TOPIC);
    mqtt_props_set(&in, MQTT_PROP_CORRELATION_DATA);
    mqtt_props_set(&in, MQTT_PROP_TOPIC_ALIAS);
    round_trip(MQTT_PUBLISH, &in, ids, 6, NULL, 0, &out);
    cr_assert_eq(out.payload_format, 1);
    cr_assert_eq(out.message_expiry, 0xFFFFFFFFu);
    ASSERT_STR(out.content_type, "application/json");
    ASSERT_STR(out.response_topic, "reply/to/me");
    assert_bytes(out.correlation_data, "\xff\x00", 2);
    cr_assert_eq(out.topic_alias, 65535);
    cr_assert_eq(out.sub_id_count, 6);
    mqtt_props_iter_init(&it, &out);
    for (size_t i = 0; i < 6; i++) {
        cr_assert(mqtt_props_next_sub_id(&it, &id));
        cr_assert_eq(id, ids[i]);
    }

    in.present &= ~(1ull << MQTT_PROP_TOPIC_ALIAS);
    in.will_delay = 60;
    mqtt_props_set(&in, MQTT_PROP_WILL_DELAY);
    round_trip(MQTT_PROPS_WILL, &in, NULL, 0, NULL, 0, &out);
    cr_assert_eq(out.will_delay, 60);
}

Test(props_encode, round_trip_connect_disconnect_auth)
{
    struct mqtt_props in = {0}, out;
    struct mqtt_user_prop u = {S("k"), S("v")};

    in.session_expiry = 1;
    in.auth_method = S("m");
    in.auth_data = S("d");
    in.request_problem_info = 0;
    in.request_response_info = 1;
    in.receive_maximum = 1;
    in.topic_alias_maximum = 0;
    in.maximum_packet_size = 1;
    for (size_t i = 0; i < NSPEC; i++)
        if ((spec[i].kinds & KC) && spec[i].id != MQTT_PROP_USER_PROPERTY)
            mqtt_props_set(&in, spec[i].id);
    round_trip(MQTT_CONNECT, &in, NULL, 0, &u, 1, &out);
    cr_assert_eq(out.request_response_info, 1);
    cr_assert_eq(out.maximum_packet_size, 1);

    memset(&in, 0, sizeof(in));
    in.reason_string = S("bye");
    in.server_reference = S("b2");
    mqtt_props_set(&in, MQTT_PROP_REASON_STRING);
    mqtt_props_set(&in, MQTT_PROP_SERVER_REFERENCE);
    round_trip(MQTT_DISCONNECT, &in, NULL, 0, &u, 1, &out);
    ASSERT_STR(out.server_reference, "b2");

    in.present = 0;
    in.auth_method = S("m");
    in.auth_data = S("");
    mqtt_props_set(&in, MQTT_PROP_AUTH_METHOD);
    mqtt_props_set(&in, MQTT_PROP_AUTH_DATA);
    mqtt_props_set(&in, MQTT_PROP_REASON_STRING);
    round_trip(MQTT_AUTH, &in, NULL, 0, NULL, 0, &out);
    ASSERT_STR(out.reason_string, "bye");
    cr_assert(mqtt_props_has(&out, MQTT_PROP_AUTH_DATA));

    in.present = 0;
    mqtt_props_set(&in, MQTT_PROP_REASON_STRING);
    for (uint8_t t = MQTT_PUBACK; t <= MQTT_UNSUBACK; t++)
        if (t != MQTT_SUBSCRIBE && t != MQTT_UNSUBSCRIBE)
            round_trip(t, &in, NULL, 0, &u, 1, &out);
}

/* ---- forwarding ---- */

static const uint8_t fwd_in[] = {
    0x01, 1,                          /* payload format */
    0x23, 0,    5,                    /* topic alias: dropped */
    0x02, 0,    0, 0,    100,         /* message expiry 100 */
    0x26, 0,    1, 'a',  0,   1, '1', /* user a=1 */
    0x0B, 0x07,                       /* subscription id: dropped */
    0x03, 0,    1, 't',               /* content type */
    0x26, 0,    1, 'b',  0,   1, '2', /* user b=2 */
    0x08, 0,    1, 'r',               /* response topic */
    0x09, 0,    1, 0xAA,              /* correlation data */
    0x26, 0,    1, 'a',  0,   1, '3', /* user a=3 */
};

/* MQTT-3.3.2-6: the expiry forwarded is the time left; MQTT-3.3.2-17/-18:
 * user properties unchanged and in order; MQTT-3.3.2-4, -15, -16, -20:
 * payload format, response topic, correlation data, content type
 * unaltered; MQTT-3.3.4-3/-4: the subscriber's identifiers appended. */
Test(props_forward, mqtt_3_3_2_6_rewrite_exact_bytes)
{
    static const uint8_t want[] = {
        48,  0x01, 1, 0x02, 0,   0,    0, 40,   0x26, 0,    1,    'a', 0,    1, '1', 0x03, 0,    1,
        't', 0x26, 0, 1,    'b', 0,    1, '2',  0x08, 0,    1,    'r', 0x09, 0, 1,   0xAA, 0x26, 0,
        1,   'a',  0, 1,    '3', 0x0B, 3, 0x0B, 0xC8, 0x01, 0x23, 0,   9,
    };
    uint32_t ids[] = {3, 200};
    struct mqtt_props_forward f = {
        .message_expiry = 40, .sub_ids = ids, .n_sub_ids = 2, .topic_alias = 9};
    const uint8_t *in = keep(fwd_in, sizeof(fwd_in));
    uint8_t b[sizeof(want) + 1];
    struct mqtt_props p;

    cr_assert_eq(mqtt_props_decode(MQTT_PUBLISH, in, sizeof(fwd_in), &p), MQTT_OK);
    memset(b, 0xEE, sizeof(b));
    cr_assert_eq(mqtt_props_forward_size(in, sizeof(fwd_in), &f), sizeof(want));
    cr_assert_eq(mqtt_props_forward_encode(b, in, sizeof(fwd_in), &f), sizeof(want));
    cr_assert(memcmp(b, want, sizeof(want)) == 0);
    cr_assert_eq(b[sizeof(want)], 0xEE);
    /* And the result is a valid PUBLISH block. */
    cr_assert_eq(dec(MQTT_PUBLISH, b + 1, sizeof(want) - 1, &p), MQTT_OK);
    cr_assert_eq(p.message_expiry, 40);
    cr_assert_eq(p.topic_alias, 9);
    cr_assert_eq(p.sub_id_count, 2);
    cr_assert_eq(p.user_prop_count, 3);
}

/* No expiry in, none out (the message does not expire); no alias, no ids:
 * the block is copied less its alias and subscription id. */
Test(props_forward, without_expiry_alias_or_ids)
{
    static const uint8_t in_b[] = {0x23, 0, 5, 0x26, 0, 1, 'a', 0, 1, '1', 0x0B, 9, 0x01, 0};
    static const uint8_t want[] = {9, 0x26, 0, 1, 'a', 0, 1, '1', 0x01, 0};
    struct mqtt_props_forward f = {.message_expiry = 77};
    const uint8_t *in = keep(in_b, sizeof(in_b));
    uint8_t b[sizeof(want)];

    cr_assert_eq(mqtt_props_forward_size(in, sizeof(in_b), &f), sizeof(want));
    cr_assert_eq(mqtt_props_forward_encode(b, in, sizeof(in_b), &f), sizeof(want));
    cr_assert(memcmp(b, want, sizeof(want)) == 0);
}

Test(props_forward, empty_block)
{
    uint32_t id = 1;
    struct mqtt_props_forward none = {0}, some = {.sub_ids = &id, .n_sub_ids = 1};
    uint8_t b[8];

    cr_assert_eq(mqtt_props_forward_size(NULL, 0, &none), 1);
    cr_assert_eq(mqtt_props_forward_encode(b, NULL, 0, &none), 1);
    cr_assert_eq(b[0], 0);
    cr_assert_eq(mqtt_props_forward_encode(b, keep(NULL, 0), 0, &some), 3);
    cr_assert(memcmp(b, "\x02\x0b\x01", 3) == 0);
}

Test(props_forward, refuses_bad_subscription_ids)
{
    uint32_t ids[] = {5, 0};
    struct mqtt_props_forward f = {.sub_ids = ids, .n_sub_ids = 2};
    uint8_t b[8] = {0xEE};

    cr_assert_eq(mqtt_props_forward_size(keep(NULL, 0), 0, &f), 0);
    cr_assert_eq(mqtt_props_forward_encode(b, keep(NULL, 0), 0, &f), 0);
    cr_assert_eq(b[0], 0xEE);
    ids[1] = MQTT_SUB_ID_MAX + 1;
    cr_assert_eq(mqtt_props_forward_size(keep(NULL, 0), 0, &f), 0);
}

/* A block that does not parse is copied up to its first bad property, and
 * never read past its end. */
Test(props_forward, bad_input_stops_early)
{
    static const uint8_t in_b[] = {0x01, 1, 0x03, 0, 9, 'x'};
    struct mqtt_props_forward f = {0};
    uint8_t b[8];

    for (size_t k = 0; k <= sizeof(in_b); k++) {
        const uint8_t *in = keep(in_b, k);
        size_t n = mqtt_props_forward_size(in, k, &f);

        cr_assert_eq(n, k >= 2 ? 3u : 1u, "prefix %zu", k);
        cr_assert_eq(mqtt_props_forward_encode(b, in, k, &f), n);
    }
}
