/*
 * props_fuzz: libFuzzer target for the MQTT 5.0 property layer
 * (src/mqtt/props.c).
 *
 * One input is read as a property block three ways: the whole input as
 * the bytes after a Property Length (what the codec hands over), the input
 * as a Property Length and its block, and the same at each of the first
 * SCAN_OFFSETS byte offsets, so that whole packets (the corpus of
 * fuzz_driver.c) reach the blocks inside them. Each block is decoded for
 * every packet kind (MQTT_PROPS_WILL and packet types 1..15, and one past
 * them). The input is also read as a recipe for a block of well-typed
 * properties (build_block), so that valid blocks of every kind are common. Whatever decodes is
 * checked and encoded again: the encoder's size matches its *_size(), the block is exactly as long
 * as the input's (every value has one encoding, MQTT-1.5.5-1), and it decodes to the same values
 * with the User Properties and Subscription Identifiers in the same order.
 * A PUBLISH block is also rewritten for forwarding and the result checked.
 * Blocks are decoded from exact-size heap copies so that ASan sees any
 * read past the end. A broken invariant aborts with the line that failed.
 *
 * fuzz_driver.c runs this over a fixed pseudo-random corpus as an ordinary
 * test. To build the real libFuzzer binary:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
 *       tests/fuzz/props_fuzz.c src/mqtt/props.c src/mqtt/codec.c \
 *       src/mqtt/topic.c -o props_fuzz
 *   mkdir -p corpus && ./props_fuzz -max_len=1024 corpus
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/props.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Offsets at which a Property Length is looked for. */
#define SCAN_OFFSETS 40
/* Repeatable properties gathered for the round trip; more skip it. */
#define MAX_REPEAT 128
/* The largest block whose round trip is tried. */
#define MAX_BLOCK 8192

static uint8_t enc_buf[MAX_BLOCK + 8];

static bool same(struct mqtt_bytes a, struct mqtt_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* Every single-valued field of two decodes is equal. */
static void check_same_values(const struct mqtt_props *a, const struct mqtt_props *b)
{
    CHECK(a->payload_format == b->payload_format);
    CHECK(a->message_expiry == b->message_expiry);
    CHECK(same(a->content_type, b->content_type));
    CHECK(same(a->response_topic, b->response_topic));
    CHECK(same(a->correlation_data, b->correlation_data));
    CHECK(a->session_expiry == b->session_expiry);
    CHECK(same(a->assigned_client_id, b->assigned_client_id));
    CHECK(a->server_keepalive == b->server_keepalive);
    CHECK(same(a->auth_method, b->auth_method));
    CHECK(same(a->auth_data, b->auth_data));
    CHECK(a->request_problem_info == b->request_problem_info);
    CHECK(a->will_delay == b->will_delay);
    CHECK(a->request_response_info == b->request_response_info);
    CHECK(same(a->response_info, b->response_info));
    CHECK(same(a->server_reference, b->server_reference));
    CHECK(same(a->reason_string, b->reason_string));
    CHECK(a->receive_maximum == b->receive_maximum);
    CHECK(a->topic_alias_maximum == b->topic_alias_maximum);
    CHECK(a->topic_alias == b->topic_alias);
    CHECK(a->maximum_qos == b->maximum_qos);
    CHECK(a->retain_available == b->retain_available);
    CHECK(a->maximum_packet_size == b->maximum_packet_size);
    CHECK(a->wildcard_sub_available == b->wildcard_sub_available);
    CHECK(a->sub_id_available == b->sub_id_available);
    CHECK(a->shared_sub_available == b->shared_sub_available);
}

/* The repeatables of a decoded block, in order; false when too many. */
struct repeats {
    struct mqtt_user_prop users[MAX_REPEAT];
    size_t n_users;
    uint32_t ids[MAX_REPEAT];
    size_t n_ids;
};

static bool gather(const struct mqtt_props *p, struct repeats *r)
{
    struct mqtt_props_iter it;

    if (p->user_prop_count > MAX_REPEAT || p->sub_id_count > MAX_REPEAT)
        return false;
    r->n_users = r->n_ids = 0;
    mqtt_props_iter_init(&it, p);
    while (mqtt_props_next_user(&it, &r->users[r->n_users]))
        r->n_users++;
    mqtt_props_iter_init(&it, p);
    while (mqtt_props_next_sub_id(&it, &r->ids[r->n_ids]))
        r->n_ids++;
    CHECK(r->n_users == p->user_prop_count);
    CHECK(r->n_ids == p->sub_id_count);
    return true;
}

static void check_same_repeats(const struct repeats *a, const struct repeats *b)
{
    CHECK(a->n_users == b->n_users);
    for (size_t i = 0; i < a->n_users; i++)
        CHECK(same(a->users[i].name, b->users[i].name) &&
              same(a->users[i].value, b->users[i].value));
    CHECK(a->n_ids == b->n_ids);
    for (size_t i = 0; i < a->n_ids; i++)
        CHECK(a->ids[i] == b->ids[i]);
}

/* What a block that decoded must look like. */
static void check_decoded(uint8_t kind, const uint8_t *b, size_t len, const struct mqtt_props *p)
{
    struct mqtt_props_iter it;
    struct mqtt_prop pr;
    size_t walked = 0;

    CHECK(p->block.len == len);
    mqtt_props_iter_init(&it, p);
    while (mqtt_props_iter_next(&it, &pr)) {
        CHECK(pr.raw.p == b + walked);
        CHECK(mqtt_prop_allowed(pr.id, kind));
        CHECK(mqtt_props_has(p, pr.id));
        walked += pr.raw.len;
    }
    CHECK(walked == len);
    if (mqtt_props_has(p, MQTT_PROP_SUBSCRIPTION_ID))
        CHECK(p->subscription_id >= 1 && p->subscription_id <= MQTT_SUB_ID_MAX);
    if (kind != MQTT_PUBLISH)
        CHECK(p->sub_id_count <= 1);
}

static void round_trip(uint8_t kind, size_t len, const struct mqtt_props *p)
{
    static struct repeats r1, r2;
    struct mqtt_props q;
    struct mqtt_bytes content;
    size_t used;

    if (!gather(p, &r1))
        return;
    size_t n = mqtt_props_size(p, r1.ids, r1.n_ids, r1.users, r1.n_users);

    CHECK(n > 0); /* whatever decoded is encodable */
    if (n > sizeof(enc_buf))
        return;
    CHECK(mqtt_props_encode(enc_buf, p, r1.ids, r1.n_ids, r1.users, r1.n_users) == n);
    CHECK(mqtt_props_block_decode(enc_buf, n, &content, &used) == MQTT_OK);
    CHECK(used == n);
    CHECK(content.len == len);
    CHECK(mqtt_props_decode(kind, content.p, content.len, &q) == MQTT_OK);
    CHECK(q.present == p->present);
    check_same_values(p, &q);
    CHECK(gather(&q, &r2));
    check_same_repeats(&r1, &r2);
}

/* Rewrite a PUBLISH block that decoded, and check the result. */
static void check_forward(const uint8_t *b, size_t len, const struct mqtt_props *p)
{
    static struct repeats r1, r2;
    static const uint32_t ids[] = {1, 300, MQTT_SUB_ID_MAX};
    struct mqtt_props_forward f = {
        .message_expiry = 12345, .sub_ids = ids, .n_sub_ids = 3, .topic_alias = 2};
    struct mqtt_props q;
    struct mqtt_bytes content;
    size_t used;

    if (!gather(p, &r1))
        return;
    size_t n = mqtt_props_forward_size(b, len, &f);

    CHECK(n > 0);
    if (n > sizeof(enc_buf))
        return;
    CHECK(mqtt_props_forward_encode(enc_buf, b, len, &f) == n);
    CHECK(mqtt_props_block_decode(enc_buf, n, &content, &used) == MQTT_OK && used == n);
    CHECK(mqtt_props_decode(MQTT_PUBLISH, content.p, content.len, &q) == MQTT_OK);
    CHECK(mqtt_props_has(&q, MQTT_PROP_MESSAGE_EXPIRY) ==
          mqtt_props_has(p, MQTT_PROP_MESSAGE_EXPIRY));
    if (mqtt_props_has(&q, MQTT_PROP_MESSAGE_EXPIRY))
        CHECK(q.message_expiry == 12345);
    CHECK(q.topic_alias == 2);
    CHECK(q.payload_format == p->payload_format);
    CHECK(same(q.content_type, p->content_type));
    CHECK(same(q.response_topic, p->response_topic));
    CHECK(same(q.correlation_data, p->correlation_data));
    CHECK(gather(&q, &r2));
    CHECK(r2.n_ids == 3 && r2.ids[0] == 1 && r2.ids[1] == 300 && r2.ids[2] == MQTT_SUB_ID_MAX);
    r1.n_ids = r2.n_ids = 0;
    check_same_repeats(&r1, &r2); /* MQTT-3.3.2-17, MQTT-3.3.2-18 */
}

/* One block (no prefix) for every kind, from an exact-size copy. */
static void decode_all(const uint8_t *data, size_t len)
{
    uint8_t *b = malloc(len ? len : 1);
    struct mqtt_props p;

    if (!b)
        return;
    if (len)
        memcpy(b, data, len);
    for (unsigned kind = 0; kind <= 16; kind++) {
        int rc = mqtt_props_decode((uint8_t)kind, b, len, &p);

        CHECK(rc == MQTT_OK || rc == MQTT_RC_MALFORMED || rc == MQTT_RC_PROTOCOL_ERROR);
        if (rc != MQTT_OK)
            continue;
        check_decoded((uint8_t)kind, b, len, &p);
        round_trip((uint8_t)kind, len, &p);
        if (kind == MQTT_PUBLISH)
            check_forward(b, len, &p);
    }
    /* Forwarding and walking whatever the bytes are stay inside them. */
    struct mqtt_props_forward none = {0};
    struct mqtt_props_iter it;
    struct mqtt_prop pr;

    mqtt_props_iter_init_raw(&it, b, len);
    while (mqtt_props_iter_next(&it, &pr))
        CHECK(pr.raw.p >= b && pr.raw.p + pr.raw.len <= b + len);
    size_t n = mqtt_props_forward_size(b, len, &none);
    CHECK(n >= 1 && n <= len + 4);
    if (n <= sizeof(enc_buf))
        CHECK(mqtt_props_forward_encode(enc_buf, b, len, &none) == n);
    free(b);
}

/* A Property Length and its block at data, from an exact-size copy. */
static void decode_prefixed(const uint8_t *data, size_t len)
{
    uint8_t *b = malloc(len ? len : 1);
    struct mqtt_bytes content;
    size_t used;

    if (!b)
        return;
    if (len)
        memcpy(b, data, len);
    int rc = mqtt_props_block_decode(b, len, &content, &used);

    CHECK(rc == MQTT_OK || rc == MQTT_RC_MALFORMED);
    if (rc == MQTT_OK) {
        CHECK(used <= len && content.p + content.len == b + used);
        CHECK(mqtt_props_block_size(content.len) == used);
        decode_all(content.p, content.len);
    }
    free(b);
}

/*
 * The input as a recipe for a block of well-typed properties: each step
 * takes a byte choosing an identifier, then the bytes of its value (short
 * strings, made printable unless the step asks for raw bytes). Byte-level
 * corpora rarely hold valid User Properties or several Subscription
 * Identifiers; this reaches them whatever the corpus is.
 */
static size_t build_block(const uint8_t *data, size_t size, uint8_t *out, size_t cap)
{
    size_t i = 0, n = 0;

    while (i < size && n + 2 * (3 + 16) + 1 < cap) {
        uint8_t id = (uint8_t)(data[i] % (MQTT_PROP_ID_MAX + 1)), c = data[i++];
        enum mqtt_prop_type t = mqtt_prop_type(id);

        if (t == MQTT_PROP_T_NONE) /* steer most steps to real ids */
            id = (c & 0x80) ? MQTT_PROP_USER_PROPERTY : MQTT_PROP_SUBSCRIPTION_ID;
        t = mqtt_prop_type(id);
        out[n++] = id;
        switch (t) {
        case MQTT_PROP_T_BYTE:
        case MQTT_PROP_T_U16:
        case MQTT_PROP_T_U32: {
            size_t w = t == MQTT_PROP_T_BYTE ? 1 : t == MQTT_PROP_T_U16 ? 2 : 4;

            for (size_t k = 0; k < w; k++)
                out[n++] = i < size ? data[i++] : 1;
            break;
        }
        case MQTT_PROP_T_VARINT: {
            uint32_t v = i < size ? data[i++] : 1;

            if (c & 0x40)
                v = v << 14 | 0x1234;
            n += mqtt_varint_encode(out + n, v);
            break;
        }
        default: {
            int strings = t == MQTT_PROP_T_PAIR ? 2 : 1;

            for (int s = 0; s < strings; s++) {
                size_t len = i < size ? data[i++] % 16 : 0;

                out[n++] = 0;
                out[n++] = (uint8_t)len;
                for (size_t k = 0; k < len; k++) {
                    uint8_t ch = i < size ? data[i++] : 'x';

                    out[n++] = (c & 0x20) ? ch : (uint8_t)('a' + ch % 26);
                }
            }
            break;
        }
        }
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t built[MAX_BLOCK];

    decode_all(data, size);
    decode_all(built, build_block(data, size, built, sizeof(built)));
    for (size_t off = 0; off < size && off < SCAN_OFFSETS; off++)
        decode_prefixed(data + off, size - off);
    return 0;
}
