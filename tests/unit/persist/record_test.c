/*
 * persist/record: every record type round-trips through its encoder and
 * record_decode; every truncation, every extra byte and every corrupted
 * length field of every record is -EBADMSG; any single flipped bit decodes
 * or is -EBADMSG and replays without a crash (run under ASan: bodies sit in
 * heap blocks of exactly their size).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "persist/record.h"
#include "persist/replay.h"
#include "session/msg.h"
#include "session/session.h"
#include "records.h"
#include "shard/xshard.h"
#include "tenant/tenant.h"

#define MONO 1000000ull
#define WALL 1700000000000ull

static struct tenant tn = {.name = "tenant-a", .name_len = 8};
/* Payload Format Indicator 1, Content Type "text": a valid PUBLISH block. */
static const uint8_t props[] = {0x01, 0x01, 0x03, 0x00, 0x04, 't', 'e', 'x', 't'};
static uint32_t ids[] = {3, 7, 300000, 1};

static struct msg *mk(const char *topic, const char *payload, uint8_t qos, bool retain,
                      uint64_t expires)
{
    struct msg_spec sp = {
        .topic = (const uint8_t *)topic,
        .topic_len = strlen(topic),
        .payload = (const uint8_t *)payload,
        .payload_len = strlen(payload),
        .props = props,
        .props_len = sizeof(props),
        .qos = qos,
        .retain = retain,
        .expires_at_ms = expires,
    };
    struct msg *m = msg_create(&sp);
    cr_assert_not_null(m);
    return m;
}

static struct xfilter *share_new(const char *f)
{
    struct xfilter *x = malloc(sizeof(*x) + strlen(f));
    x->len = (uint16_t)strlen(f);
    memcpy(x->data, f, x->len);
    return x;
}

/* The session every record is about; its will's expiry is an interval. */
static struct session_state st = {.client_id = (uint8_t *)"dev-1", .client_id_len = 5};

/* Decode the only record of b. */
static struct record decode_one(const struct buf *b, uint8_t want)
{
    size_t off = 0, len;
    uint8_t type;
    const uint8_t *body;
    cr_assert(buf_next(b, &off, &type, &body, &len));
    cr_assert_eq(off, b->n, "one record");
    cr_assert_eq(type, want);
    struct record r;
    cr_assert_eq(record_decode(RECORD_FORMAT, type, body, len, &r), 0);
    bool retained = type == RECORD_RETAINED_PUT || type == RECORD_RETAINED_CLEAR;
    if (retained || type == RECORD_SESSION_PUT || type == RECORD_SESSION_PUT_AT) {
        cr_assert_eq(r.tenant_len, 8);
        cr_assert_eq(memcmp(r.tenant, "tenant-a", 8), 0);
    } else {
        cr_assert_null(r.tenant, "only a put names the tenant");
        cr_assert_null(r.client_id, "only a put names the client");
    }
    if (!retained)
        cr_assert_eq(r.no, 1, "the number the writer gave");
    return r;
}

/* A put: the client id; any other session record: the number alone. */
static void same_key(const struct record *r)
{
    cr_assert_eq(r->no, 1);
    if (r->type != RECORD_SESSION_PUT && r->type != RECORD_SESSION_PUT_AT)
        return;
    cr_assert_eq(r->client_id_len, 5);
    cr_assert_eq(memcmp(r->client_id, "dev-1", 5), 0);
}

static void same_msg(const struct record_msg *r, const struct msg *m, uint64_t expiry)
{
    cr_assert_eq(r->qos, m->qos);
    cr_assert_eq(r->retain, m->retain);
    cr_assert_eq(r->expiry, expiry);
    cr_assert_eq(r->retain_stamp, m->retain_stamp);
    cr_assert(r->topic_len == m->topic_len && !memcmp(r->topic, msg_topic(m), m->topic_len));
    cr_assert(r->payload_len == m->payload_len &&
              !memcmp(r->payload, msg_payload(m), m->payload_len));
    cr_assert(r->props_len == m->props_len && !memcmp(r->props, msg_props(m), m->props_len));
}

Test(record, session_put_and_del_round_trip)
{
    struct buf b = {0};
    struct record_writer w = buf_writer(&b, MONO, WALL);
    struct session_state s = st;
    s.expiry_s = 3600;
    s.will_delay_s = 5;
    s.will = mk("dev/1/status", "gone", 1, true, 30000); /* MEI 30 s, as store.h says */
    cr_assert_eq(record_session_put(&w, &tn, &s), 0);
    struct record r = decode_one(&b, RECORD_SESSION_PUT);
    same_key(&r);
    cr_assert_eq(r.expiry_s, 3600);
    cr_assert_eq(r.will_delay_s, 5);
    cr_assert(r.has_msg);
    same_msg(&r.m, s.will, 30000); /* an interval: not converted */
    buf_fini(&b);

    w = buf_writer(&b, MONO, WALL);
    msg_release(s.will);
    s.will = NULL;
    cr_assert_eq(record_session_put(&w, &tn, &s), 0);
    r = decode_one(&b, RECORD_SESSION_PUT);
    cr_assert_not(r.has_msg);
    buf_fini(&b);

    /* With the deadlines of an offline session, on the wall clock. */
    w = buf_writer(&b, MONO, WALL);
    cr_assert_eq(record_session_put_at(&w, &tn, &s, MONO + 60000, MONO + 5000), 0);
    r = decode_one(&b, RECORD_SESSION_PUT_AT);
    same_key(&r);
    cr_assert_eq(r.expiry_s, 3600);
    cr_assert(r.expire_wall_ms == WALL + 60000 && r.will_wall_ms == WALL + 5000);
    buf_fini(&b);
    w = buf_writer(&b, MONO, WALL);
    cr_assert_eq(record_session_put_at(&w, &tn, &s, 0, 0), 0);
    r = decode_one(&b, RECORD_SESSION_PUT_AT);
    cr_assert(r.expire_wall_ms == 0 && r.will_wall_ms == 0, "connected: not counting");
    buf_fini(&b);

    w = buf_writer(&b, MONO, WALL);
    cr_assert_eq(record_session_del(&w, &tn, &s), 0);
    same_key((r = decode_one(&b, RECORD_SESSION_DEL), &r));
    buf_fini(&b);
}

Test(record, subscriptions_round_trip)
{
    struct buf b = {0};
    struct record_writer w = buf_writer(&b, MONO, WALL);
    const char *f = "$share/g/a/+";
    struct sess_sub *sub = malloc(sizeof(*sub) + strlen(f));
    *sub = (struct sess_sub){2, SUB_NO_LOCAL | SUB_RETAIN_AS_PUBLISHED, (uint16_t)strlen(f), 77};
    memcpy(sub->filter, f, sub->len);
    cr_assert_eq(record_sub_put(&w, &tn, &st, sub), 0);
    struct record r = decode_one(&b, RECORD_SUB_PUT);
    same_key(&r);
    cr_assert(r.qos == 2 && r.opts == sub->opts && r.subid == 77);
    cr_assert(r.filter_len == sub->len && !memcmp(r.filter, f, sub->len));
    buf_fini(&b);

    w = buf_writer(&b, MONO, WALL);
    cr_assert_eq(record_sub_del(&w, &tn, &st, sub->filter, sub->len), 0);
    r = decode_one(&b, RECORD_SUB_DEL);
    cr_assert(r.filter_len == sub->len && !memcmp(r.filter, f, sub->len));
    buf_fini(&b);
    free(sub);
}

/* The delivery fields of r against ids[] and share "$share/g/s". */
static void same_delivery(const struct record *r)
{
    cr_assert_eq(r->nids, ids[0]);
    for (uint32_t i = 0; i < ids[0]; i++)
        cr_assert_eq(record_id(r, i), ids[i + 1]);
    cr_assert(r->share_len == 10 && !memcmp(r->share, "$share/g/s", 10));
}

Test(record, queue_round_trips_with_the_deadline_on_the_wall_clock)
{
    struct buf b = {0};
    struct record_writer w = buf_writer(&b, MONO, WALL);
    struct qentry e = {
        mk("s", "payload", 2, false, MONO + 10000), ids, share_new("$share/g/s"), 1, 1, 0};
    e.m->retain_stamp = 99;
    cr_assert_eq(record_queue_push(&w, &tn, &st, &e), 0);
    struct record r = decode_one(&b, RECORD_QUEUE_PUSH);
    same_key(&r);
    cr_assert(r.qos == 1 && r.retain == 1 && r.has_msg);
    same_delivery(&r);
    same_msg(&r.m, e.m, WALL + 10000);
    buf_fini(&b);

    w = buf_writer(&b, MONO, WALL);
    cr_assert_eq(record_queue_pop(&w, &tn, &st), 0);
    same_key((r = decode_one(&b, RECORD_QUEUE_POP), &r));
    buf_fini(&b);
    msg_release(e.m);
    free(e.share);
}

Test(record, in_flight_in_both_states_round_trips)
{
    struct buf b = {0};
    struct record_writer w = buf_writer(&b, MONO, WALL);
    struct inflight e = {
        mk("a/x", "1", 2, false, 0), ids, share_new("$share/g/s"), 42, 2, INFL_WAIT_ACK, 1, 0};
    cr_assert_eq(record_infl_put(&w, &tn, &st, &e), 0);
    struct record r = decode_one(&b, RECORD_INFL_PUT);
    cr_assert(r.pid == 42 && r.state == INFL_WAIT_ACK && r.qos == 2 && r.retain == 1);
    cr_assert(r.has_msg);
    same_delivery(&r);
    same_msg(&r.m, e.m, 0); /* no expiry stays none */
    buf_fini(&b);

    /* MQTT-4.3.3-1: after PUBREC no message, ids or share are kept. */
    w = buf_writer(&b, MONO, WALL);
    struct inflight c = {NULL, NULL, NULL, 43, 2, INFL_WAIT_COMP, 0, 0};
    cr_assert_eq(record_infl_put(&w, &tn, &st, &c), 0);
    r = decode_one(&b, RECORD_INFL_PUT);
    cr_assert(r.pid == 43 && r.state == INFL_WAIT_COMP && r.qos == 2 && !r.has_msg);
    buf_fini(&b);
    msg_release(e.m);
    free(e.share);

    const uint8_t pid_types[] = {RECORD_INFL_REC, RECORD_INFL_DEL, RECORD_QOS2_ADD,
                                 RECORD_QOS2_DEL};
    for (size_t i = 0; i < sizeof(pid_types); i++) {
        w = buf_writer(&b, MONO, WALL);
        cr_assert_eq(record_pid(&w, pid_types[i], &tn, &st, 65535), 0);
        r = decode_one(&b, pid_types[i]);
        same_key(&r);
        cr_assert_eq(r.pid, 65535);
        buf_fini(&b);
    }
}

Test(record, retained_put_and_clear_round_trip)
{
    struct buf b = {0};
    struct record_writer w = buf_writer(&b, MONO, WALL);
    struct msg *m = mk("r/1", "state", 1, true, MONO + 500);
    m->retain_stamp = 0x123450000003ull;
    cr_assert_eq(record_retained(&w, RECORD_RETAINED_PUT, &tn, m), 0);
    struct record r = decode_one(&b, RECORD_RETAINED_PUT);
    cr_assert(r.has_msg && r.client_id_len == 0);
    same_msg(&r.m, m, WALL + 500);
    buf_fini(&b);
    msg_release(m);

    w = buf_writer(&b, MONO, WALL);
    m = mk("r/1", "", 0, true, 0); /* MQTT-3.3.1-10: a clear */
    m->retain_stamp = 0x123460000003ull;
    cr_assert_eq(record_retained(&w, RECORD_RETAINED_CLEAR, &tn, m), 0);
    r = decode_one(&b, RECORD_RETAINED_CLEAR);
    same_msg(&r.m, m, 0);
    buf_fini(&b);
    msg_release(m);
}

Test(record, deadlines_cross_a_reboot_on_the_wall_clock)
{
    /* 10 s left at the write; 4 s of wall time later the monotonic clock
     * restarted near 0: 6 s are left. */
    uint64_t wall = record_deadline_to_wall(MONO + 10000, MONO, WALL);
    cr_assert_eq(wall, WALL + 10000);
    cr_assert_eq(record_deadline_to_mono(wall, 50, WALL + 4000), 50 + 6000);
    /* Expired meanwhile: a deadline passed, never 0 ("never"). */
    uint64_t mono = record_deadline_to_mono(wall, 50, WALL + 20000);
    cr_assert(mono != 0 && mono <= 50);
    cr_assert_eq(record_deadline_to_mono(wall, 20000, WALL + 20000), 10000);
    cr_assert_eq(record_deadline_to_wall(0, MONO, WALL), 0);
    cr_assert_eq(record_deadline_to_mono(0, MONO, WALL), 0);
    cr_assert_eq(record_deadline_to_wall(MONO - 10, MONO, WALL), WALL - 10);
}

static uint8_t *no_room(void *ctx, size_t len)
{
    (void)ctx;
    (void)len;
    return NULL;
}

static void no_commit(void *ctx, uint8_t type, size_t len)
{
    (void)ctx;
    cr_assert_fail("commit of a type %u record of %zu bytes without room", type, len);
}

Test(record, without_room_nothing_is_committed)
{
    struct record_writer w = {no_room, no_commit, NULL, MONO, WALL, buf_number};
    cr_assert_eq(record_session_put(&w, &tn, &st), -ENOMEM);
    cr_assert_eq(record_queue_pop(&w, &tn, &st), -ENOMEM);
    cr_assert_eq(record_pid(&w, RECORD_QOS2_ADD, &tn, &st, 1), -ENOMEM);
}

/* ---- corrupt records ---- */

/* One record of every type, and of both shapes where a type has two. */
static void write_all(struct buf *b)
{
    struct record_writer w = buf_writer(b, MONO, WALL);
    struct session_state s = st;
    s.expiry_s = 60;
    s.will = mk("dev/1/status", "gone", 1, true, 30000);
    struct sess_sub *sub = malloc(sizeof(*sub) + 3);
    *sub = (struct sess_sub){1, 0, 3, 5};
    memcpy(sub->filter, "a/#", 3);
    struct xfilter *sh = share_new("$share/g/s");
    struct qentry q = {mk("a/b", "xy", 1, false, MONO + 1), ids, sh, 1, 0, 0};
    struct inflight ia = {q.m, ids, sh, 7, 2, INFL_WAIT_ACK, 0, 0};
    struct inflight ic = {NULL, NULL, NULL, 8, 2, INFL_WAIT_COMP, 0, 0};
    struct msg *clear = mk("r/1", "", 0, true, 0);
    cr_assert_eq(record_session_put(&w, &tn, &s), 0);
    cr_assert_eq(record_sub_put(&w, &tn, &s, sub), 0);
    cr_assert_eq(record_queue_push(&w, &tn, &s, &q), 0);
    cr_assert_eq(record_infl_put(&w, &tn, &s, &ia), 0);
    cr_assert_eq(record_infl_put(&w, &tn, &s, &ic), 0);
    cr_assert_eq(record_pid(&w, RECORD_INFL_REC, &tn, &s, 7), 0);
    cr_assert_eq(record_pid(&w, RECORD_INFL_DEL, &tn, &s, 8), 0);
    cr_assert_eq(record_pid(&w, RECORD_QOS2_ADD, &tn, &s, 9), 0);
    cr_assert_eq(record_pid(&w, RECORD_QOS2_DEL, &tn, &s, 9), 0);
    cr_assert_eq(record_queue_pop(&w, &tn, &s), 0);
    cr_assert_eq(record_sub_del(&w, &tn, &s, sub->filter, sub->len), 0);
    cr_assert_eq(record_retained(&w, RECORD_RETAINED_PUT, &tn, q.m), 0);
    cr_assert_eq(record_retained(&w, RECORD_RETAINED_CLEAR, &tn, clear), 0);
    cr_assert_eq(record_session_del(&w, &tn, &s), 0);
    cr_assert_eq(record_session_put_at(&w, &tn, &s, MONO + 5000, MONO + 2000), 0);
    msg_release(s.will);
    msg_release(q.m);
    msg_release(clear);
    free(sub);
    free(sh);
}

/* Decode p[0..len) from a heap block of exactly len bytes (ASan sees any
 * read past it). */
static int decode_exact(uint8_t type, const uint8_t *p, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, p, len);
    struct record r;
    int rc = record_decode(RECORD_FORMAT, type, copy, len, &r);
    free(copy);
    return rc;
}

Test(record, snapshot_markers_have_empty_bodies)
{
    static const uint8_t one[1] = {0};
    struct record r;
    cr_assert_eq(record_decode(RECORD_FORMAT, RECORD_SNAP_BEGIN, one, 0, &r), 0);
    cr_assert_eq(r.type, RECORD_SNAP_BEGIN);
    cr_assert_eq(record_decode(RECORD_FORMAT, RECORD_SNAP_END, one, 0, &r), 0);
    cr_assert_eq(r.type, RECORD_SNAP_END);
    cr_assert_eq(decode_exact(RECORD_SNAP_BEGIN, one, 1), -EBADMSG, "a byte more");
    cr_assert_eq(decode_exact(RECORD_SNAP_END, one, 1), -EBADMSG, "a byte more");
}

Test(record, every_truncation_and_extra_byte_is_rejected)
{
    struct buf b = {0};
    write_all(&b);
    size_t off = 0, len;
    uint8_t type;
    const uint8_t *body;
    unsigned seen = 0;
    while (buf_next(&b, &off, &type, &body, &len)) {
        seen |= 1u << type;
        cr_assert_eq(decode_exact(type, body, len), 0, "type %u as written", type);
        for (size_t cut = 0; cut < len; cut++)
            cr_assert_eq(decode_exact(type, body, cut), -EBADMSG, "type %u cut to %zu of %zu", type,
                         cut, len);
        uint8_t *more = malloc(len + 1);
        memcpy(more, body, len);
        more[len] = 0;
        cr_assert_eq(decode_exact(type, more, len + 1), -EBADMSG, "type %u with a byte more", type);
        free(more);
        cr_assert_eq(decode_exact(0, body, len), -EBADMSG);
        cr_assert_eq(decode_exact(RECORD_TYPE_MAX + 1, body, len), -EBADMSG);
    }
    /* Every type with a body; the markers have none (below). */
    cr_assert_eq(seen, (((1u << RECORD_SNAP_BEGIN) - 1) & ~1u) | 1u << RECORD_SESSION_PUT_AT,
                 "every type written");
    buf_fini(&b);
}

/* Where the length fields of a record are: offsets and widths (2 or 4). */
struct lenfield {
    size_t off;
    unsigned width;
};

static uint64_t le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* The lengths of the message at p + at (record.h's layout): after its
 * flags, an expiry and a retain stamp when their bits say so. */
static size_t msg_fields(const uint8_t *p, size_t at, struct lenfield *f, size_t n)
{
    size_t l = at + 1 + (p[at] & 0x08 ? 8 : 0) + (p[at] & 0x10 ? 8 : 0);
    f[n++] = (struct lenfield){l, 2};
    f[n++] = (struct lenfield){l + 2, 4};
    f[n++] = (struct lenfield){l + 6, 4};
    return n;
}

/* Every length field of a valid record of `type`, from the layout in
 * docs/DESIGN.md; returns how many. */
static size_t length_fields(uint8_t type, const uint8_t *p, struct lenfield *f)
{
    size_t n = 0;
    if (type == RECORD_RETAINED_PUT || type == RECORD_RETAINED_CLEAR) {
        f[n++] = (struct lenfield){0, 2};
        return msg_fields(p, 2 + le(p, 2), f, n);
    }
    size_t k = 4; /* the key's end: a number, and in a put the names */
    if (type == RECORD_SESSION_PUT || type == RECORD_SESSION_PUT_AT) {
        f[n++] = (struct lenfield){4, 2};
        f[n++] = (struct lenfield){6, 2};
        k = 8 + le(p + 4, 2) + le(p + 6, 2);
    }
    size_t d;
    switch (type) {
    case RECORD_SESSION_PUT:
    case RECORD_SESSION_PUT_AT:
        return p[k + 8] ? msg_fields(p, k + 9, f, n) : n;
    case RECORD_SUB_PUT:
        f[n++] = (struct lenfield){k + 6, 2};
        return n;
    case RECORD_SUB_DEL:
        f[n++] = (struct lenfield){k, 2};
        return n;
    case RECORD_QUEUE_PUSH:
    case RECORD_INFL_PUT:
        /* The delivery: flags, [ids: u32 count, ids], [share: u16, text]. */
        d = type == RECORD_INFL_PUT ? k + 3 : k;
        size_t at = d + 1;
        if (p[d] & 0x08) {
            f[n++] = (struct lenfield){at, 4};
            at += 4 + 4 * le(p + at, 4);
        }
        if (p[d] & 0x10) {
            f[n++] = (struct lenfield){at, 2};
            at += 2 + le(p + at, 2);
        }
        if (type == RECORD_INFL_PUT && p[k + 2] != INFL_WAIT_ACK)
            return n;
        return msg_fields(p, at, f, n);
    default:
        return n;
    }
}

static void set_le(uint8_t *p, unsigned n, uint64_t v)
{
    for (unsigned i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

Test(record, every_corrupted_length_field_is_rejected)
{
    struct buf b = {0};
    write_all(&b);
    size_t off = 0, len;
    uint8_t type;
    const uint8_t *body;
    while (buf_next(&b, &off, &type, &body, &len)) {
        struct lenfield f[16];
        size_t nf = length_fields(type, body, f);
        bool none =
            type == RECORD_SESSION_DEL || type == RECORD_QUEUE_POP ||
            (type >= RECORD_INFL_REC && type <= RECORD_QOS2_DEL && type != RECORD_INFL_PUT) ||
            type == RECORD_INFL_FROM_QUEUE ||
            (type == RECORD_INFL_PUT && body[4 + 2] != INFL_WAIT_ACK); /* no message */
        cr_assert(none || nf >= 1, "type %u has length fields", type);
        for (size_t i = 0; i < nf; i++) {
            uint64_t v = le(body + f[i].off, f[i].width);
            uint64_t max = f[i].width == 2 ? 0xffff : 0xffffffff;
            uint64_t bad[] = {v + 1, v ? v - 1 : max, max, v ^ 0x100, v ^ 0x80};
            for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
                uint8_t *c = malloc(len);
                memcpy(c, body, len);
                set_le(c + f[i].off, f[i].width, bad[k] & max);
                cr_assert_eq(decode_exact(type, c, len), -EBADMSG,
                             "type %u, length at %zu: %llu instead of %llu", type, f[i].off,
                             (unsigned long long)(bad[k] & max), (unsigned long long)v);
                free(c);
            }
        }
    }
    buf_fini(&b);
}

/* Any one bit flipped: decoded or -EBADMSG, and a replay that knows the
 * session takes it or refuses it, never crashes. */
Test(record, any_flipped_bit_is_decoded_or_rejected_never_a_crash)
{
    struct buf b = {0};
    write_all(&b);
    size_t off = 0, len, first_len = 0;
    uint8_t type;
    const uint8_t *body, *first = NULL;
    struct replay_opts o = {MONO, WALL, false};
    while (buf_next(&b, &off, &type, &body, &len)) {
        if (!first) {
            first = body; /* the session put */
            first_len = len;
        }
        for (size_t i = 0; i < len * 8; i++) {
            uint8_t *c = malloc(len);
            memcpy(c, body, len);
            c[i / 8] ^= (uint8_t)(1u << (i % 8));
            struct record r;
            int rc = record_decode(RECORD_FORMAT, type, c, len, &r);
            cr_assert(rc == 0 || rc == -EBADMSG);
            struct replay *rp = replay_create(&o);
            cr_assert_eq(replay_apply(rp, RECORD_FORMAT, RECORD_SESSION_PUT, first, first_len), 0);
            rc = replay_apply(rp, RECORD_FORMAT, type, c, len);
            cr_assert(rc == 0 || rc == -EBADMSG, "rc %d", rc);
            replay_destroy(rp);
            free(c);
        }
    }
    buf_fini(&b);
}

/* Found by the libFuzzer build of tests/fuzz/persist_fuzz.c: a tenant name
 * is handed to the tenant directory as a C string, so a NUL inside it would
 * name another tenant. */
Test(record, a_tenant_name_with_a_nul_is_rejected)
{
    struct buf b = {0};
    struct record_writer w = buf_writer(&b, MONO, WALL);
    cr_assert_eq(record_session_put(&w, &tn, &st), 0);
    (void)decode_one(&b, RECORD_SESSION_PUT); /* valid as written */
    b.p[FRAME + 8 + 3] = 0;                   /* "ten\0nt-a" */
    cr_assert_eq(decode_exact(RECORD_SESSION_PUT, b.p + FRAME, b.n - FRAME), -EBADMSG);
    buf_fini(&b);
}

/* Format 2 names a session by a number that is never 0. */
Test(record, a_session_number_0_is_rejected)
{
    struct buf b = {0};
    struct record_writer w = buf_writer(&b, MONO, WALL);
    cr_assert_eq(record_queue_pop(&w, &tn, &st), 0);
    (void)decode_one(&b, RECORD_QUEUE_POP);
    memset(b.p + FRAME, 0, 4);
    cr_assert_eq(decode_exact(RECORD_QUEUE_POP, b.p + FRAME, b.n - FRAME), -EBADMSG);
    buf_fini(&b);
}

Test(record, ingress_keys_and_infl_from_queue)
{
    struct buf b = {0};
    struct record_writer w = buf_writer(&b, 1000, 5000);
    cr_assert_eq(record_ingress(&w, RECORD_INGRESS_PUT, 0x0102030405060708ull), 0);
    size_t off = 0, len;
    uint8_t type;
    const uint8_t *body;
    cr_assert(buf_next(&b, &off, &type, &body, &len));
    cr_assert(type == RECORD_INGRESS_PUT && len == 8);
    struct record r;
    cr_assert_eq(record_decode(RECORD_FORMAT, type, body, len, &r), 0);
    cr_assert_eq(r.key, 0x0102030405060708ull);
    buf_fini(&b);
    w = buf_writer(&b, 1000, 5000);
    cr_assert_eq(record_pid(&w, RECORD_INFL_FROM_QUEUE, &tn, &st, 77), 0);
    r = decode_one(&b, RECORD_INFL_FROM_QUEUE);
    same_key(&r);
    cr_assert_eq(r.pid, 77);
    buf_fini(&b);
    /* A key is 8 bytes and never 0 (ingress.h); a packet id never 0. */
    static const uint8_t zero[9] = {0}, some[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    cr_assert_eq(decode_exact(RECORD_INGRESS_PUT, zero, 8), -EBADMSG);
    cr_assert_eq(decode_exact(RECORD_INGRESS_DEL, some, 7), -EBADMSG);
    cr_assert_eq(decode_exact(RECORD_INGRESS_DEL, some, 9), -EBADMSG);
    cr_assert_eq(decode_exact(RECORD_INGRESS_DEL, some, 8), 0);
}

/* Format 3: an INFL_DEL grown by record_del_next reads as both packet
 * ids; format 2 has no such record; the second id is never 0 either. */
Test(record, infl_del_next_is_a_del_and_the_next_delivery)
{
    struct buf b = {0};
    struct record_writer w = buf_writer(&b, 1000, 5000);
    cr_assert_eq(record_pid(&w, RECORD_INFL_DEL, &tn, &st, 77), 0);
    record_del_next(buf_extend_last(&b, RECORD_INFL_DEL_NEXT, RECORD_DEL_NEXT_MORE), 78);
    struct record r = decode_one(&b, RECORD_INFL_DEL_NEXT);
    same_key(&r);
    cr_assert(r.pid == 77 && r.pid2 == 78);
    size_t off = 0, len;
    uint8_t type;
    const uint8_t *body;
    cr_assert(buf_next(&b, &off, &type, &body, &len));
    cr_assert_eq(record_decode(RECORD_FORMAT_NUMBERED, type, body, len, &r), -EBADMSG);
    uint8_t copy[16];
    memcpy(copy, body, len);
    copy[len - 2] = copy[len - 1] = 0;
    cr_assert_eq(record_decode(RECORD_FORMAT, type, copy, len, &r), -EBADMSG);
    cr_assert_eq(record_decode(RECORD_FORMAT, type, copy, len - 2, &r), -EBADMSG);
    buf_fini(&b);
}

/* A message's expiry and retain stamp are written only when not 0 (their
 * flag bits say which); a bit set over a 0 is not an encoding this writes. */
Test(record, a_message_without_expiry_or_stamp_is_16_bytes_shorter)
{
    struct buf b = {0}, c = {0};
    struct record_writer w = buf_writer(&b, MONO, WALL), v = buf_writer(&c, MONO, WALL);
    struct qentry e = {mk("s", "payload", 1, false, 0), NULL, NULL, 1, 0, 0};
    cr_assert_eq(record_queue_push(&w, &tn, &st, &e), 0);
    e.m->expires_at_ms = MONO + 5;
    e.m->retain_stamp = 7;
    cr_assert_eq(record_queue_push(&v, &tn, &st, &e), 0);
    cr_assert_eq(b.n + 16, c.n);
    struct record r = decode_one(&b, RECORD_QUEUE_PUSH);
    cr_assert(r.m.expiry == 0 && r.m.retain_stamp == 0);
    r = decode_one(&c, RECORD_QUEUE_PUSH);
    cr_assert(r.m.expiry == WALL + 5 && r.m.retain_stamp == 7);
    /* The flags follow the number (4) and the delivery's flags (1). */
    size_t flags = FRAME + 4 + 1;
    cr_assert_eq(b.p[flags], 1);
    b.p[flags] |= 0x08; /* an expiry said to follow: the lengths are read as one */
    cr_assert_eq(decode_exact(RECORD_QUEUE_PUSH, b.p + FRAME, b.n - FRAME), -EBADMSG);
    memset(c.p + flags + 1, 0, 8); /* an expiry of 0 written out */
    cr_assert_eq(decode_exact(RECORD_QUEUE_PUSH, c.p + FRAME, c.n - FRAME), -EBADMSG);
    buf_fini(&b);
    buf_fini(&c);
    msg_release(e.m);
}
