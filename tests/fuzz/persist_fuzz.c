/*
 * persist_fuzz: libFuzzer target for the durable records (src/persist):
 * record_decode and replay, the readers of bytes that come back from disk.
 *
 * An input is a sequence of records framed [u8 type][u16 LE length][body]
 * (a short last frame is cut to what is there). Each body is decoded from
 * an exact-size heap copy (ASan sees any read past it) and applied to one
 * replay, first as is, then behind a valid session put of the key the body
 * would carry if it were one ("t", "c"; number 1), so that the records of
 * a session reach the state they change. The input's size picks the
 * format: odd multiples of 2 read format 1 (keys), the rest format 2
 * (numbers). Every rc is 0, -EBADMSG or -ENOMEM; at the
 * end everything rebuilt is handed to a sink that checks the session
 * invariants of session.h and frees it.
 *
 * fuzz_driver.c runs this over its corpus as an ordinary test; the
 * libFuzzer build is in tests/fuzz/README.md.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "persist/record.h"
#include "persist/replay.h"
#include "session/msg.h"
#include "session/session.h"
#include "session/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The session put of tenant "t", client "c", expiry 1, no will: format 1,
 * and format 2 as number 1. */
static const uint8_t put_tc1[] = {1, 0, 1, 0, 't', 'c', 1, 0, 0, 0, 0, 0, 0, 0, 0};
static const uint8_t put_tc2[] = {1, 0, 0, 0, 1, 0, 1, 0, 't', 'c', 1, 0, 0, 0, 0, 0, 0, 0, 0};
static uint16_t format;

static int sink_session(struct shard *s, uint16_t tenant, struct session_state *st)
{
    (void)s;
    (void)tenant;
    CHECK(st->ninfl <= st->infl_cap && st->nqos2 <= st->qos2_cap && st->nsubs <= st->subs_cap);
    CHECK(st->qlen <= st->qcap && (st->qcap & (st->qcap - 1)) == 0);
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < st->qlen; i++)
        bytes += msg_size(st->q[(st->qhead + i) & (st->qcap - 1)].m);
    CHECK(bytes == st->qbytes);
    for (uint32_t i = 0; i < st->ninfl; i++)
        CHECK((st->infl[i].m != NULL) == (st->infl[i].state == INFL_WAIT_ACK));
    replay_state_fini(st);
    return 0;
}

static int sink_retained(struct shard *s, uint16_t tenant, struct msg *m)
{
    (void)s;
    (void)tenant;
    CHECK(m->payload_len > 0);
    msg_release(m);
    return 0;
}

static int tenant_zero(void *ctx, const char *name, size_t len)
{
    (void)ctx;
    CHECK(strlen(name) == len);
    return 0;
}

static void apply(struct replay *r, uint8_t type, const uint8_t *body, size_t len)
{
    uint8_t *c = malloc(len ? len : 1);
    if (!c)
        return;
    if (len)
        memcpy(c, body, len);
    struct record rec;
    int rc = record_decode(format, type, c, len, &rec);
    CHECK(rc == 0 || rc == -EBADMSG);
    rc = replay_apply(r, format, type, c, len);
    CHECK(rc == 0 || rc == -EBADMSG || rc == -ENOMEM);
    CHECK(rc != -EBADMSG || replay_error(r)[0]);
    free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct replay_opts o = {1000, 1700000000000ull, (size & 1) != 0};
    struct replay *r = replay_create(&o);
    if (!r)
        return 0;
    /* Formats 1, 2 and 3 in turn (2 and 3 share the put's layout). */
    format = (uint16_t)(RECORD_FORMAT_KEYED + (size >> 1) % 3);
    const uint8_t *put = format == RECORD_FORMAT_KEYED ? put_tc1 : put_tc2;
    size_t put_len = format == RECORD_FORMAT_KEYED ? sizeof(put_tc1) : sizeof(put_tc2);
    CHECK(replay_apply(r, format, RECORD_SESSION_PUT, put, put_len) == 0);
    for (size_t off = 0; off + 3 <= size;) {
        uint8_t type = data[off];
        size_t len = (size_t)data[off + 1] | (size_t)data[off + 2] << 8;
        off += 3;
        if (len > size - off)
            len = size - off;
        apply(r, type, data + off, len);
        apply(r, RECORD_SESSION_PUT, put, put_len);
        apply(r, type, data + off, len);
        off += len;
    }
    static const struct store_sink sink = {sink_session, sink_retained};
    CHECK(replay_finish(r, NULL, &sink, tenant_zero, NULL) == 0);
    replay_destroy(r);
    return 0;
}
