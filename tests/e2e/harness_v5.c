/* End-to-end harness, MQTT 5.0 part (see harness_v5.h): property blocks, raw v5
 * packet builders and a decoder for everything a server sends.
 *
 * Runs in the Criterion test process, on the test's thread. The decoder is strict
 * about framing (a server packet it cannot parse fails the test: that is a broker
 * bug too) but never interprets more than the test asks for. */
#include "harness_v5.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool e2e_mosquitto(void)
{
    const char *which = getenv("RINGMQ_E2E_BROKER");
    return which && !strcmp(which, "mosquitto");
}

/* ---- property blocks ---------------------------------------------------------- */

void props_init(struct props *pr)
{
    pr->len = 0;
}

void props_raw(struct props *pr, const void *data, size_t len)
{
    cr_assert(pr->len + len <= sizeof(pr->buf), "property block too large for the builder");
    memcpy(pr->buf + pr->len, data, len);
    pr->len += len;
}

void props_u8(struct props *pr, uint8_t id, uint8_t v)
{
    uint8_t b[2] = {id, v};
    props_raw(pr, b, 2);
}

void props_u16(struct props *pr, uint8_t id, uint16_t v)
{
    uint8_t b[3] = {id, (uint8_t)(v >> 8), (uint8_t)v};
    props_raw(pr, b, 3);
}

void props_u32(struct props *pr, uint8_t id, uint32_t v)
{
    uint8_t b[5] = {id, (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    props_raw(pr, b, 5);
}

void props_varint(struct props *pr, uint8_t id, uint32_t v)
{
    props_raw(pr, &id, 1);
    do {
        uint8_t byte = v % 128;
        v /= 128;
        if (v)
            byte |= 0x80;
        props_raw(pr, &byte, 1);
    } while (v);
}

static void props_field(struct props *pr, const void *data, size_t len)
{
    uint8_t b[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    props_raw(pr, b, 2);
    props_raw(pr, data, len);
}

void props_bin(struct props *pr, uint8_t id, const void *data, size_t len)
{
    props_raw(pr, &id, 1);
    props_field(pr, data, len);
}

void props_str(struct props *pr, uint8_t id, const char *s)
{
    props_bin(pr, id, s, strlen(s));
}

void props_pair(struct props *pr, const char *name, const char *value)
{
    uint8_t id = P_USER_PROPERTY;
    props_raw(pr, &id, 1);
    props_field(pr, name, strlen(name));
    props_field(pr, value, strlen(value));
}

void pkt_varint(struct pkt *p, uint32_t v)
{
    do {
        uint8_t byte = v % 128;
        v /= 128;
        pkt_u8(p, (uint8_t)(byte | (v ? 0x80 : 0)));
    } while (v);
}

void pkt_props(struct pkt *p, const struct props *pr)
{
    pkt_varint(p, pr ? (uint32_t)pr->len : 0);
    if (pr)
        pkt_raw(p, pr->buf, pr->len);
}

/* ---- builders ------------------------------------------------------------------ */

void pkt_connect5(struct pkt *p, const struct raw_connect *o, const struct props *props,
                  const struct props *will_props)
{
    pkt_init(p, 0x10);
    pkt_str(p, "MQTT");
    pkt_u8(p, 5);
    int flags = o->flags;
    if (flags < 0) {
        flags = (o->clean ? 0x02 : 0);
        if (o->will_topic)
            flags |= 0x04 | (o->will_qos << 3) | (o->will_retain ? 0x20 : 0);
        if (o->password)
            flags |= 0x40;
        if (o->username)
            flags |= 0x80;
    }
    pkt_u8(p, (uint8_t)flags);
    pkt_u16(p, (uint16_t)o->keepalive);
    pkt_props(p, props);
    pkt_str(p, o->id ? o->id : "");
    if (o->will_topic) {
        pkt_props(p, will_props);
        pkt_str(p, o->will_topic);
        pkt_str(p, o->will_payload ? o->will_payload : "");
    }
    if (o->username)
        pkt_str(p, o->username);
    if (o->password)
        pkt_str(p, o->password);
}

void pkt_publish5(struct pkt *p, const char *topic, const void *payload, size_t len, int qos,
                  bool retain, uint16_t mid, const struct props *props)
{
    pkt_init(p, (uint8_t)(0x30 | (qos << 1) | (retain ? 1 : 0)));
    pkt_str(p, topic);
    if (qos > 0)
        pkt_u16(p, mid);
    pkt_props(p, props);
    pkt_raw(p, payload, len);
}

void pkt_subscribe5(struct pkt *p, uint16_t mid, const char *filter, uint8_t options,
                    const struct props *props)
{
    pkt_init(p, 0x82);
    pkt_u16(p, mid);
    pkt_props(p, props);
    pkt_str(p, filter);
    pkt_u8(p, options);
}

void pkt_unsubscribe5(struct pkt *p, uint16_t mid, const char *filter)
{
    pkt_init(p, 0xa2);
    pkt_u16(p, mid);
    pkt_props(p, NULL);
    pkt_str(p, filter);
}

void pkt_ack5(struct pkt *p, uint8_t first, uint16_t mid, uint8_t reason, const struct props *props)
{
    pkt_init(p, first);
    pkt_u16(p, mid);
    pkt_u8(p, reason);
    pkt_props(p, props);
}

void pkt_reason5(struct pkt *p, uint8_t first, uint8_t reason, const struct props *props)
{
    pkt_init(p, first);
    pkt_u8(p, reason);
    pkt_props(p, props);
}

/* ---- decoder ------------------------------------------------------------------- */

/* A bounds-checked cursor over one packet's variable header and payload. */
struct cur {
    const uint8_t *at, *end;
};

static size_t cur_left(const struct cur *c)
{
    return (size_t)(c->end - c->at);
}

static uint32_t cur_u8(struct cur *c)
{
    cr_assert(cur_left(c) >= 1, "server packet truncated");
    return *c->at++;
}

static uint32_t cur_u16(struct cur *c)
{
    uint32_t hi = cur_u8(c);
    return hi << 8 | cur_u8(c);
}

static uint32_t cur_u32(struct cur *c)
{
    uint32_t hi = cur_u16(c);
    return hi << 16 | cur_u16(c);
}

static uint32_t cur_varint(struct cur *c)
{
    uint32_t v = 0, mult = 1;
    for (int i = 0; i < 4; i++) {
        uint32_t b = cur_u8(c);
        v += (b & 0x7f) * mult;
        if (!(b & 0x80))
            return v;
        mult *= 128;
    }
    cr_assert_fail("server sent a Variable Byte Integer longer than 4 bytes");
    return 0;
}

static const uint8_t *cur_field(struct cur *c, size_t *len)
{
    *len = cur_u16(c);
    cr_assert(cur_left(c) >= *len, "server string/binary field overruns its packet");
    const uint8_t *d = c->at;
    c->at += *len;
    return d;
}

static void decode_props(struct cur *c, struct v5_pkt *pk)
{
    uint32_t plen = cur_varint(c);
    cr_assert(cur_left(c) >= plen, "server property length %u overruns its packet", plen);
    struct cur pc = {c->at, c->at + plen};
    c->at += plen;
    while (cur_left(&pc)) {
        cr_assert(pk->nprops < (int)(sizeof(pk->props) / sizeof(pk->props[0])));
        struct v5_prop *pr = &pk->props[pk->nprops++];
        memset(pr, 0, sizeof(*pr));
        pr->id = (uint8_t)cur_varint(&pc);
        switch (pr->id) {
        case 0x01:
        case 0x17:
        case 0x19:
        case 0x24:
        case 0x25:
        case 0x28:
        case 0x29:
        case 0x2a:
            pr->num = cur_u8(&pc);
            break;
        case 0x13:
        case 0x21:
        case 0x22:
        case 0x23:
            pr->num = cur_u16(&pc);
            break;
        case 0x02:
        case 0x11:
        case 0x18:
        case 0x27:
            pr->num = cur_u32(&pc);
            break;
        case 0x0b:
            pr->num = cur_varint(&pc);
            break;
        case 0x03:
        case 0x08:
        case 0x09:
        case 0x12:
        case 0x15:
        case 0x16:
        case 0x1a:
        case 0x1c:
        case 0x1f:
            pr->data = cur_field(&pc, &pr->len);
            break;
        case 0x26:
            pr->data = cur_field(&pc, &pr->len);
            pr->data2 = cur_field(&pc, &pr->len2);
            break;
        default:
            cr_assert_fail("server sent unknown property 0x%02x", pr->id);
        }
    }
}

static void decode(struct v5_pkt *pk)
{
    size_t at = 1;
    while (pk->raw[at++] & 0x80) {
    }
    struct cur c = {pk->raw + at, pk->raw + pk->rawlen};
    pk->type = pk->raw[0] >> 4;
    pk->flags = pk->raw[0] & 15;
    pk->mid = 0;
    pk->reason = 0;
    pk->session_present = false;
    pk->ncodes = 0;
    pk->nprops = 0;
    pk->topic[0] = 0;
    pk->payload = NULL;
    pk->len = 0;
    switch (pk->type) {
    case T_CONNACK:
        pk->session_present = cur_u8(&c) & 1;
        pk->reason = (int)cur_u8(&c);
        if (cur_left(&c))
            decode_props(&c, pk);
        break;
    case T_PUBLISH: {
        pk->qos = (pk->flags >> 1) & 3;
        pk->dup = pk->flags & 8;
        pk->retain = pk->flags & 1;
        size_t tl;
        const uint8_t *t = cur_field(&c, &tl);
        cr_assert(tl < sizeof(pk->topic));
        memcpy(pk->topic, t, tl);
        pk->topic[tl] = 0;
        if (pk->qos)
            pk->mid = (uint16_t)cur_u16(&c);
        decode_props(&c, pk);
        pk->payload = c.at;
        pk->len = cur_left(&c);
        break;
    }
    case T_PUBACK:
    case T_PUBREC:
    case T_PUBREL:
    case T_PUBCOMP:
        pk->mid = (uint16_t)cur_u16(&c);
        if (cur_left(&c))
            pk->reason = (int)cur_u8(&c);
        if (cur_left(&c))
            decode_props(&c, pk);
        break;
    case T_SUBACK:
    case T_UNSUBACK:
        pk->mid = (uint16_t)cur_u16(&c);
        decode_props(&c, pk);
        while (cur_left(&c) && pk->ncodes < (int)sizeof(pk->codes))
            pk->codes[pk->ncodes++] = (uint8_t)cur_u8(&c);
        break;
    case T_DISCONNECT:
    case T_AUTH:
        if (cur_left(&c))
            pk->reason = (int)cur_u8(&c);
        if (cur_left(&c))
            decode_props(&c, pk);
        break;
    default:
        break;
    }
}

int v5_read(int fd, struct v5_pkt *out, int timeout_ms)
{
    int n = raw_read_packet(fd, out->raw, sizeof(out->raw), timeout_ms);
    if (n <= 0)
        return n;
    out->rawlen = (size_t)n;
    decode(out);
    return n;
}

static const char *type_name(int t)
{
    static const char *const names[16] = {"reserved",  "CONNECT",  "CONNACK",     "PUBLISH",
                                          "PUBACK",    "PUBREC",   "PUBREL",      "PUBCOMP",
                                          "SUBSCRIBE", "SUBACK",   "UNSUBSCRIBE", "UNSUBACK",
                                          "PINGREQ",   "PINGRESP", "DISCONNECT",  "AUTH"};
    return names[t & 15];
}

struct v5_pkt *v5_expect(int fd, int type, struct v5_pkt *out)
{
    int n = v5_read(fd, out, E2E_WAIT_MS);
    cr_assert(n > 0, "expected %s, got %s", type_name(type),
              n == 0 ? "a close" : (n == -ETIMEDOUT ? "nothing (timeout)" : "an error"));
    cr_assert(out->type == type, "expected %s, got %s (reason 0x%02x)", type_name(type),
              type_name(out->type), out->reason);
    return out;
}

void v5_expect_publish(int fd, struct v5_pkt *out)
{
    v5_expect(fd, T_PUBLISH, out);
}

void v5_expect_disconnect(int fd, int reason, int reason_string)
{
    struct v5_pkt *pk = malloc(sizeof(*pk));
    cr_assert(pk);
    int n = v5_read(fd, pk, E2E_WAIT_MS);
    int type = n > 0 ? pk->type : -1, got = pk->reason;
    int rs = n > 0 ? v5_prop_count(pk, P_REASON_STRING) : 0;
    free(pk);
    cr_assert(n > 0, "expected DISCONNECT 0x%02x, got %s", reason,
              n == 0 ? "a bare close" : "nothing");
    cr_assert(type == T_DISCONNECT, "expected DISCONNECT 0x%02x, got %s", reason, type_name(type));
    cr_assert(got == reason, "DISCONNECT reason 0x%02x, want 0x%02x", got, reason);
    if (reason_string >= 0)
        cr_assert(rs == reason_string, "DISCONNECT has %d Reason String(s), want %d", rs,
                  reason_string);
    cr_assert(raw_wait_close(fd, E2E_WAIT_MS) == 0, "no close after DISCONNECT");
}

void v5_expect_nothing(int fd, int ms)
{
    struct v5_pkt *pk = malloc(sizeof(*pk));
    cr_assert(pk);
    int n = v5_read(fd, pk, ms);
    int type = pk->type;
    char topic[64] = "";
    if (n > 0 && type == T_PUBLISH)
        snprintf(topic, sizeof(topic), " on %.50s", pk->topic);
    free(pk);
    cr_assert(n == -ETIMEDOUT, "unexpected %s%s", n > 0 ? type_name(type) : "close", topic);
}

const struct v5_prop *v5_prop(const struct v5_pkt *pk, uint8_t id, int nth)
{
    for (int i = 0; i < pk->nprops; i++)
        if (pk->props[i].id == id && nth-- == 0)
            return &pk->props[i];
    return NULL;
}

int v5_prop_count(const struct v5_pkt *pk, uint8_t id)
{
    int n = 0;
    for (int i = 0; i < pk->nprops; i++)
        n += pk->props[i].id == id;
    return n;
}

uint32_t v5_prop_num(const struct v5_pkt *pk, uint8_t id)
{
    const struct v5_prop *pr = v5_prop(pk, id, 0);
    cr_assert(pr, "property 0x%02x missing from %s", id, type_name(pk->type));
    return pr->num;
}

bool v5_prop_is(const struct v5_pkt *pk, uint8_t id, const char *s)
{
    const struct v5_prop *pr = v5_prop(pk, id, 0);
    return pr && pr->len == strlen(s) && !memcmp(pr->data, s, pr->len);
}

bool v5_payload_is(const struct v5_pkt *pk, const char *s)
{
    return pk->len == strlen(s) && !memcmp(pk->payload, s, pk->len);
}

/* ---- clients --------------------------------------------------------------------- */

int v5_connect(const struct broker *b, const struct raw_connect *o, const struct props *props,
               const struct props *will_props, struct v5_pkt *connack)
{
    struct pkt *p = malloc(sizeof(*p));
    cr_assert(p);
    pkt_connect5(p, o, props, will_props);
    int fd = raw_open(b);
    int rc = raw_send_pkt(fd, p);
    free(p);
    cr_assert(rc == 0, "send CONNECT: %s", strerror(-rc));
    int n = v5_read(fd, connack, E2E_WAIT_MS);
    cr_assert(n > 0, "no CONNACK (%s)", n == 0 ? "closed" : "timeout");
    cr_assert(connack->type == T_CONNACK || connack->type == T_AUTH, "expected CONNACK, got %s",
              type_name(connack->type));
    return fd;
}

int v5_open(const struct broker *b, const char *id, const struct props *props)
{
    struct raw_connect o = {.flags = -1, .clean = true, .id = id, .keepalive = 60};
    struct v5_pkt *ck = malloc(sizeof(*ck));
    cr_assert(ck);
    int fd = v5_connect(b, &o, props, NULL, ck);
    int type = ck->type, reason = ck->reason;
    free(ck);
    cr_assert(type == T_CONNACK && reason == 0, "CONNACK reason 0x%02x for %s", reason,
              id ? id : "(empty id)");
    return fd;
}

void v5_subscribe(int fd, uint16_t mid, const char *filter, uint8_t options,
                  const struct props *props, int want)
{
    struct pkt *p = malloc(sizeof(*p));
    struct v5_pkt *pk = malloc(sizeof(*pk));
    cr_assert(p && pk);
    pkt_subscribe5(p, mid, filter, options, props);
    cr_assert(raw_send_pkt(fd, p) == 0);
    free(p);
    v5_expect(fd, T_SUBACK, pk);
    int n = pk->ncodes, code = pk->codes[0], got_mid = pk->mid;
    free(pk);
    cr_assert(got_mid == mid, "SUBACK packet id %d, want %d", got_mid, mid);
    cr_assert(n == 1, "SUBACK has %d reason codes", n);
    cr_assert(code == want, "SUBACK 0x%02x for %s, want 0x%02x", code, filter, want);
}

int v5_publish(int fd, const char *topic, const char *payload, int qos, bool retain, uint16_t mid,
               const struct props *props)
{
    struct pkt *p = malloc(sizeof(*p));
    struct v5_pkt *pk = malloc(sizeof(*pk));
    cr_assert(p && pk);
    pkt_publish5(p, topic, payload, strlen(payload), qos, retain, mid, props);
    cr_assert(raw_send_pkt(fd, p) == 0);
    int reason = 0;
    if (qos > 0) {
        v5_expect(fd, qos == 1 ? T_PUBACK : T_PUBREC, pk);
        cr_assert(pk->mid == mid, "ack for packet id %d, want %d", pk->mid, mid);
        reason = pk->reason;
        if (qos == 2 && reason < 0x80) {
            pkt_ack5(p, 0x62, mid, 0, NULL);
            cr_assert(raw_send_pkt(fd, p) == 0);
            v5_expect(fd, T_PUBCOMP, pk);
            cr_assert(pk->mid == mid && pk->reason == 0, "PUBCOMP %d reason 0x%02x", pk->mid,
                      pk->reason);
        }
    }
    free(p);
    free(pk);
    return reason;
}

static void auth_props(struct props *pr, const char *method, const char *data)
{
    props_init(pr);
    props_str(pr, P_AUTH_METHOD, method);
    props_bin(pr, P_AUTH_DATA, data, strlen(data));
}

int v5_connect_auth(const struct broker *b, const char *id, const char *method, const char *data,
                    struct v5_pkt *out)
{
    struct raw_connect o = {.flags = -1, .clean = true, .id = id, .keepalive = 60};
    struct props pr;
    auth_props(&pr, method, data);
    return v5_connect(b, &o, &pr, NULL, out);
}

void v5_send_auth(int fd, uint8_t reason, const char *method, const char *data)
{
    struct props pr;
    auth_props(&pr, method, data);
    struct pkt p;
    pkt_reason5(&p, 0xf0, reason, &pr);
    cr_assert(raw_send_pkt(fd, &p) == 0);
}

void v5_disconnect(int fd, uint8_t reason, const struct props *props)
{
    struct pkt p;
    pkt_reason5(&p, 0xe0, reason, props);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    cr_assert(raw_wait_close(fd, E2E_WAIT_MS) == 0, "server kept the connection after DISCONNECT");
    close(fd);
}
