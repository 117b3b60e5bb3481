/*
 * codec_fuzz: libFuzzer target for the MQTT codec (src/mqtt/codec.c) and
 * the topic rules (src/mqtt/topic.c).
 *
 * One input is framed with mqtt_frame_decode(), and its body is handed to
 * every packet decoder for protocol levels 3, 4 and 5 (not only the one its
 * type names), and so is the input read as "flags byte + body" without
 * framing. Whatever decodes is encoded again and checked: the encoder's
 * size matches its *_size(), the result frames and decodes to the same
 * fields, and where the encoding is canonical (no v5 properties, which the
 * encoders never write) it is byte for byte the input. Bodies are copied
 * into exact-size heap buffers so that ASan sees any read past the end.
 * A broken invariant aborts with the line that failed.
 *
 * In CI, tests/fuzz/fuzz_driver.c runs this over a fixed pseudo-random
 * corpus (meson test 'fuzz/codec'). To build the real libFuzzer binary:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
 *       tests/fuzz/codec_fuzz.c src/mqtt/codec.c src/mqtt/topic.c -o codec_fuzz
 *   mkdir -p corpus && ./codec_fuzz -max_len=4096 corpus
 *
 * and replay a crash with ./codec_fuzz crash-<hash>, or with the driver:
 * build/tests/fuzz/codec_fuzz_driver crash-<hash>.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/codec.h"
#include "mqtt/topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Entries a SUBSCRIBE may have for its round trip to be tried. */
#define MAX_ENTRIES 256

/* What was framed, when the body being decoded is that packet's body. */
struct whole {
    uint8_t type;
    const uint8_t *p; /* NULL when the body did not come from a frame */
    size_t len;
};

static uint8_t enc_buf[1 << 17];

static bool same(struct mqtt_bytes a, struct mqtt_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* Frame what an encoder wrote; returns the body. */
static const uint8_t *reframe(const uint8_t *buf, size_t n, uint8_t type, struct mqtt_frame *f)
{
    CHECK(n > 0);
    CHECK(mqtt_frame_decode(buf, n, 0, f) == MQTT_OK);
    CHECK(f->type == type);
    CHECK(f->total_len == n);
    CHECK(mqtt_frame_flags_valid(f->type, f->flags));
    return buf + f->header_len;
}

/* Whether the input was a frame of `type` with valid flags: then an encoder
 * writing the decoded fields back must reproduce it exactly (where the
 * caller also knows no properties were dropped). */
static bool canonical(const struct whole *w, uint8_t type)
{
    return w->p && w->type == type && mqtt_frame_flags_valid(type, w->p[0] & 0x0F);
}

static void check_topic_rules(struct mqtt_bytes filter, struct mqtt_bytes topic)
{
    bool fv = mqtt_topic_filter_valid(filter.p, filter.len);
    bool tv = mqtt_topic_name_valid(topic.p, topic.len);

    if (tv) /* every valid name is a valid filter */
        CHECK(mqtt_topic_filter_valid(topic.p, topic.len));
    if (!fv || !tv)
        return;
    bool m = mqtt_topic_matches(filter.p, filter.len, topic.p, topic.len);
    if (!mqtt_topic_has_wildcard(filter.p, filter.len))
        CHECK(m == same(filter, topic));
    if (filter.len == 1 && filter.p[0] == '#')
        CHECK(m == (topic.p[0] != '$')); /* MQTT-4.7.2-1 */
    CHECK(mqtt_topic_matches(topic.p, topic.len, topic.p, topic.len));
}

static void fuzz_connect(uint8_t flags, const uint8_t *body, size_t len, const struct whole *w)
{
    struct mqtt_connect c, d;
    struct mqtt_frame f;
    const uint8_t *b;

    if (mqtt_connect_decode(flags, body, len, &c) != MQTT_OK)
        return;
    CHECK(mqtt_utf8_valid(c.client_id.p, c.client_id.len));
    if (c.will)
        CHECK(mqtt_topic_name_valid(c.will_topic.p, c.will_topic.len));
    struct mqtt_connect_opts o = {
        .version = c.version,
        .clean_start = c.clean_start,
        .keepalive = c.keepalive,
        .client_id = c.client_id,
        .will = c.will,
        .will_qos = c.will_qos,
        .will_retain = c.will_retain,
        .will_topic = c.will_topic,
        .will_payload = c.will_payload,
        .has_username = c.has_username,
        .username = c.username,
        .has_password = c.has_password,
        .password = c.password,
    };
    size_t size = mqtt_connect_size(&o);
    CHECK(size > 0);
    if (size > sizeof(enc_buf))
        return;
    CHECK(mqtt_connect_encode(enc_buf, &o) == size);
    b = reframe(enc_buf, size, MQTT_CONNECT, &f);
    CHECK(mqtt_connect_decode(f.flags, b, f.body_len, &d) == MQTT_OK);
    CHECK(d.version == c.version && d.clean_start == c.clean_start);
    CHECK(d.will == c.will && d.will_qos == c.will_qos && d.will_retain == c.will_retain);
    CHECK(d.has_username == c.has_username && d.has_password == c.has_password);
    CHECK(d.keepalive == c.keepalive);
    CHECK(same(d.client_id, c.client_id) && same(d.will_topic, c.will_topic));
    CHECK(same(d.will_payload, c.will_payload));
    CHECK(same(d.username, c.username) && same(d.password, c.password));
    if (canonical(w, MQTT_CONNECT) && c.props.len == 0 && c.will_props.len == 0)
        CHECK(size == w->len && memcmp(enc_buf, w->p, size) == 0);
}

static void fuzz_publish(uint8_t flags, const uint8_t *body, size_t len, uint8_t v,
                         const struct whole *w)
{
    struct mqtt_publish p, q;
    struct mqtt_frame f;
    const uint8_t *b;

    if (mqtt_publish_decode(flags, body, len, v, &p) != MQTT_OK)
        return;
    CHECK(p.qos <= 2 && (p.qos == 0) == (p.packet_id == 0));
    CHECK(!mqtt_topic_has_wildcard(p.topic.p, p.topic.len));
    size_t size = mqtt_publish_size(v, p.topic.len, p.payload.len, p.qos);
    CHECK(size > 0);
    if (size > sizeof(enc_buf))
        return;
    CHECK(mqtt_publish_encode(enc_buf, v, p.qos, p.dup, p.retain, p.topic.p, p.topic.len,
                              p.packet_id, p.payload.p, p.payload.len) == size);
    b = reframe(enc_buf, size, MQTT_PUBLISH, &f);
    CHECK(mqtt_publish_decode(f.flags, b, f.body_len, v, &q) == MQTT_OK);
    CHECK(q.qos == p.qos && q.dup == p.dup && q.retain == p.retain);
    CHECK(q.packet_id == p.packet_id && q.props.len == 0);
    CHECK(same(q.topic, p.topic) && same(q.payload, p.payload));
    if (canonical(w, MQTT_PUBLISH) && p.props.len == 0)
        CHECK(size == w->len && memcmp(enc_buf, w->p, size) == 0);
}

static void fuzz_ack(uint8_t type, uint8_t flags, const uint8_t *body, size_t len, uint8_t v,
                     const struct whole *w)
{
    struct mqtt_ack a, c;
    struct mqtt_frame f;
    const uint8_t *b;
    uint8_t buf[5];

    if (mqtt_ack_decode(type, flags, body, len, v, &a) != MQTT_OK)
        return;
    CHECK(a.packet_id != 0);
    size_t n = mqtt_ack_encode(buf, type, v, a.packet_id, a.reason);
    CHECK(n == 4 || n == 5);
    b = reframe(buf, n, type, &f);
    CHECK(mqtt_ack_decode(type, f.flags, b, f.body_len, v, &c) == MQTT_OK);
    CHECK(c.packet_id == a.packet_id && c.reason == a.reason);
    if (canonical(w, type) && v != MQTT_V5)
        CHECK(n == w->len && memcmp(buf, w->p, n) == 0);
}

static void fuzz_sub(uint8_t flags, const uint8_t *body, size_t len, uint8_t v, bool unsub,
                     const struct whole *w)
{
    static struct mqtt_bytes filters[MAX_ENTRIES];
    static uint8_t opts[MAX_ENTRIES];
    struct mqtt_subscribe s, t;
    struct mqtt_sub_iter it;
    struct mqtt_frame f;
    uint8_t type = unsub ? MQTT_UNSUBSCRIBE : MQTT_SUBSCRIBE;
    size_t n = 0;
    int rc = unsub ? mqtt_unsubscribe_decode(flags, body, len, v, &s)
                   : mqtt_subscribe_decode(flags, body, len, v, &s);

    if (rc != MQTT_OK)
        return;
    CHECK(s.count >= 1 && s.packet_id != 0);
    mqtt_sub_iter_init(&it, &s, !unsub);
    for (struct mqtt_bytes fl; mqtt_sub_iter_next(&it, &fl, &opts[n % MAX_ENTRIES]);) {
        CHECK(fl.len > 0 && mqtt_utf8_valid(fl.p, fl.len));
        CHECK((opts[n % MAX_ENTRIES] & 3) != 3);
        filters[n % MAX_ENTRIES] = fl;
        n++;
    }
    CHECK(n == s.count);
    if (n > MAX_ENTRIES)
        return;
    size_t size = mqtt_subscribe_size(v, filters, n, unsub);
    CHECK(size > 0);
    if (size > sizeof(enc_buf))
        return;
    CHECK(mqtt_subscribe_encode(enc_buf, v, s.packet_id, filters, unsub ? NULL : opts, n, unsub) ==
          size);
    const uint8_t *b = reframe(enc_buf, size, type, &f);
    rc = unsub ? mqtt_unsubscribe_decode(f.flags, b, f.body_len, v, &t)
               : mqtt_subscribe_decode(f.flags, b, f.body_len, v, &t);
    CHECK(rc == MQTT_OK);
    CHECK(t.count == s.count && t.packet_id == s.packet_id && t.props.len == 0);
    CHECK(same(t.entries, s.entries));
    if (canonical(w, type) && s.props.len == 0)
        CHECK(size == w->len && memcmp(enc_buf, w->p, size) == 0);
    /* The filters against each other, and against themselves as topics. */
    for (size_t i = 0; i < n && i < 8; i++)
        for (size_t j = 0; j < n && j < 8; j++)
            check_topic_rules(filters[i], filters[j]);
}

static void fuzz_empty(uint8_t type, uint8_t flags, const uint8_t *body, size_t len, uint8_t v,
                       const struct whole *w)
{
    uint8_t reason, again, buf[4];
    struct mqtt_frame f;

    if (mqtt_empty_decode(type, flags, body, len, v, &reason) != MQTT_OK)
        return;
    size_t n = mqtt_simple_encode(buf, type, v, reason);
    CHECK(n == 2 || n == 4);
    const uint8_t *b = reframe(buf, n, type, &f);
    CHECK(mqtt_empty_decode(type, f.flags, b, f.body_len, v, &again) == MQTT_OK);
    CHECK(again == reason);
    if (canonical(w, type) && v != MQTT_V5)
        CHECK(n == w->len && memcmp(buf, w->p, n) == 0);
}

static void fuzz_connack(const uint8_t *body, size_t len, uint8_t v)
{
    struct mqtt_connack c, d;
    struct mqtt_frame f;
    uint8_t buf[5];

    if (mqtt_connack_decode(body, len, v, &c) != MQTT_OK)
        return;
    size_t n = mqtt_connack_encode(buf, v, c.session_present, c.code);
    CHECK(n == (v == MQTT_V5 ? 5u : 4u));
    const uint8_t *b = reframe(buf, n, MQTT_CONNACK, &f);
    CHECK(mqtt_connack_decode(b, f.body_len, v, &d) == MQTT_OK);
    CHECK(d.code == c.code);
    CHECK(d.session_present == (c.session_present && c.code == 0 && v != MQTT_V31));
}

static void fuzz_suback(uint8_t type, const uint8_t *body, size_t len, uint8_t v,
                        const struct whole *w)
{
    struct mqtt_suback s, t;
    struct mqtt_frame f;
    size_t n;

    if (mqtt_suback_decode(type, body, len, v, &s) != MQTT_OK)
        return;
    if (type == MQTT_UNSUBACK && v != MQTT_V5) {
        n = mqtt_ack_encode(enc_buf, type, v, s.packet_id, 0);
    } else {
        n = mqtt_suback_size(v, s.codes.len);
        CHECK(n > 0);
        if (n > sizeof(enc_buf))
            return;
        CHECK(mqtt_suback_encode(enc_buf, type, v, s.packet_id, s.codes.p, s.codes.len) == n);
    }
    const uint8_t *b = reframe(enc_buf, n, type, &f);
    CHECK(mqtt_suback_decode(type, b, f.body_len, v, &t) == MQTT_OK);
    CHECK(t.packet_id == s.packet_id && same(t.codes, s.codes));
    if (canonical(w, type) && s.props.len == 0)
        CHECK(n == w->len && memcmp(enc_buf, w->p, n) == 0);
}

/* Every decoder, at every protocol level, on one body. */
static void decode_all(uint8_t flags, const uint8_t *body, size_t len, const struct whole *w)
{
    static const uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};

    fuzz_connect(flags, body, len, w);
    for (size_t i = 0; i < sizeof(versions); i++) {
        uint8_t v = versions[i];

        fuzz_publish(flags, body, len, v, w);
        for (uint8_t t = MQTT_PUBACK; t <= MQTT_PUBCOMP; t++)
            fuzz_ack(t, flags, body, len, v, w);
        fuzz_ack(MQTT_UNSUBACK, flags, body, len, v, w);
        fuzz_sub(flags, body, len, v, false, w);
        fuzz_sub(flags, body, len, v, true, w);
        fuzz_empty(MQTT_PINGREQ, flags, body, len, v, w);
        fuzz_empty(MQTT_PINGRESP, flags, body, len, v, w);
        fuzz_empty(MQTT_DISCONNECT, flags, body, len, v, w);
        fuzz_connack(body, len, v);
        fuzz_suback(MQTT_SUBACK, body, len, v, w);
        fuzz_suback(MQTT_UNSUBACK, body, len, v, w);
    }
}

/* Decode from an exact-size copy so that ASan sees a read past `len`. */
static void decode_all_copy(uint8_t flags, const uint8_t *body, size_t len, const struct whole *w)
{
    uint8_t *c = malloc(len ? len : 1);

    if (!c)
        return;
    if (len)
        memcpy(c, body, len);
    decode_all(flags, len ? c : NULL, len, w);
    free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mqtt_frame f;
    int rc = mqtt_frame_decode(data, size, 0, &f);

    CHECK(rc == MQTT_OK || rc == MQTT_INCOMPLETE || rc == MQTT_RC_MALFORMED);
    if (rc == MQTT_OK) {
        CHECK(f.type != 0 && f.header_len >= 2 && f.header_len <= 5);
        CHECK(f.body_len <= MQTT_MAX_REMAINING_LENGTH);
        CHECK(f.total_len == f.header_len + (size_t)f.body_len);
        CHECK(mqtt_varint_size(f.body_len) == f.header_len - 1u);
        CHECK(mqtt_frame_decode(data, size, (uint32_t)f.total_len, &f) == MQTT_OK);
        if (f.total_len > 1)
            CHECK(mqtt_frame_decode(data, size, (uint32_t)f.total_len - 1, &f) ==
                  MQTT_RC_PACKET_TOO_LARGE);
        if (f.total_len <= size) {
            struct whole w = {f.type, data, f.total_len};

            decode_all_copy(f.flags, data + f.header_len, f.body_len, &w);
        }
    }
    if (size > 0) {
        struct whole none = {0, NULL, 0};

        decode_all_copy(data[0] & 0x0F, data + 1, size - 1, &none);

        /* The input split in two, as a filter and a topic. */
        size_t k = data[0] % size;
        check_topic_rules((struct mqtt_bytes){data + 1, k ? k - 1 : 0},
                          (struct mqtt_bytes){data + k, size - k});
    }
    return 0;
}
