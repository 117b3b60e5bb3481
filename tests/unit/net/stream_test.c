/*
 * net/stream over a real io_uring and a socketpair: receives handed up,
 * batched sends, pause and re-arm, linger on close, and the transport
 * seam (input, seal, export/import) through a test transport.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/stream.h"

enum { TAG_IGNORE = 0, TAG_RECV = 1, TAG_SEND = 2, TAG_CLOSE = 3 };

/* The owner: a stream first, then what the test records. */
struct owner {
    struct stream st;
    uint8_t got[1 << 20];
    size_t ngot;
    int last_end; /* last on_recv_end res, 1 before any */
    int nsent, nrearm, nclosed, nflush;
    bool keep_listed;
    uint32_t xstate; /* the test transport's state (after the owner) */
};

static struct io_uring ring;
static struct bufring bufs;
static struct stream_loop loop;
static struct owner *o;
static int peer; /* the other end of the socketpair, non-blocking */

static void on_bytes(struct stream_loop *l, struct stream *st, const uint8_t *d, size_t n)
{
    (void)l;
    struct owner *w = (struct owner *)st;
    cr_assert_leq(w->ngot + n, sizeof(w->got));
    memcpy(w->got + w->ngot, d, n);
    w->ngot += n;
}
static void on_recv_end(struct stream_loop *l, struct stream *st, int res, bool more)
{
    ((struct owner *)st)->last_end = res;
    if (res > 0 && !more)
        stream_want_recv(l, st);
}
static void on_sent(struct stream_loop *l, struct stream *st, int res)
{
    (void)l;
    (void)res;
    ((struct owner *)st)->nsent++;
}
static bool on_rearm(struct stream_loop *l, struct stream *st)
{
    struct owner *w = (struct owner *)st;
    w->nrearm++;
    if (w->keep_listed)
        return true;
    if (!st->recv_armed && !st->shut)
        stream_arm_recv(l, st);
    return false;
}
static void on_flush(struct stream_loop *l, struct stream *st)
{
    (void)l;
    ((struct owner *)st)->nflush++;
}
static void on_closed(struct stream_loop *l, struct stream *st)
{
    (void)l;
    ((struct owner *)st)->nclosed++;
}

static const struct stream_events events = {on_bytes, on_recv_end, on_sent,
                                            on_rearm, on_flush,    on_closed};

/* Test transport: input flips bit 5 of every byte; seal prefixes the
 * output with a 2-byte length (so it changes the length); its state is a
 * counter of inputs, exported as 4 bytes. */
static int x_open(struct stream_loop *l, struct stream *st)
{
    *(uint32_t *)stream_state(l, st) = 7;
    return 0;
}
static int x_input(struct stream_loop *l, struct stream *st, const uint8_t *d, size_t n)
{
    uint8_t tmp[4096];
    cr_assert_leq(n, sizeof(tmp));
    for (size_t i = 0; i < n; i++)
        tmp[i] = d[i] ^ 0x20;
    (*(uint32_t *)stream_state(l, st))++;
    stream_deliver(l, st, tmp, n);
    return 0;
}
static int x_seal(struct stream_loop *l, struct stream *st)
{
    (void)l;
    struct iobuf *b = st->out;
    struct iobuf *nb = iobuf_create(b->len + 2);
    cr_assert_not_null(nb);
    nb->data[0] = (uint8_t)(b->len >> 8);
    nb->data[1] = (uint8_t)b->len;
    memcpy(nb->data + 2, b->data, b->len);
    nb->len = b->len + 2;
    free(b);
    st->out = nb;
    return 0;
}
static size_t x_export_size(const struct stream_loop *l, const struct stream *st)
{
    (void)l;
    (void)st;
    return 4;
}
static void x_export(const struct stream_loop *l, struct stream *st, uint8_t *to)
{
    memcpy(to, stream_state(l, st), 4);
}
static int x_import(struct stream_loop *l, struct stream *st, const uint8_t *from, size_t n)
{
    if (n != 4)
        return -EINVAL;
    memcpy(stream_state(l, st), from, 4);
    return 0;
}
/* A transport that fails: seal always, input when the byte is '!' (with
 * an error code that must not be read as "try again"). */
static int bad_seal(struct stream_loop *l, struct stream *st)
{
    (void)l;
    st->out->len = 1; /* half way through, as a real encoder may */
    return -EIO;
}
static int bad_input(struct stream_loop *l, struct stream *st, const uint8_t *d, size_t n)
{
    if (n && d[0] == '!')
        return -EAGAIN;
    stream_deliver(l, st, d, n);
    return 0;
}
/* A transport that answers by itself (as a WebSocket pong): input writes
 * "!" with stream_reserve/commit and hands the owner nothing. */
static int answering_input(struct stream_loop *l, struct stream *st, const uint8_t *d, size_t n)
{
    (void)d;
    (void)n;
    uint8_t *p = stream_reserve(l, st, 1);
    if (!p)
        return -ENOMEM;
    *p = '!';
    stream_commit(l, st, 1);
    return 0;
}
static const struct transport_ops answering_xprt = {
    .name = "answering", .input = answering_input, .seal = x_seal};

static const struct transport_ops failing_xprt = {
    .name = "failing", .input = bad_input, .seal = bad_seal};

/* A transport that answers on its own: each '?' received queues one 'A'
 * of its own output (as a TLS handshake does), with nothing for the
 * owner; seal puts those first, then the owner's bytes. */
static int ans_input(struct stream_loop *l, struct stream *st, const uint8_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (d[i] == '?') {
            (*(uint32_t *)stream_state(l, st))++;
            stream_xprt_output(l, st);
        }
    return 0;
}
static int ans_seal(struct stream_loop *l, struct stream *st)
{
    uint32_t *pending = stream_state(l, st);
    uint32_t plain = st->out ? st->out->len : 0;
    struct iobuf *nb = iobuf_create(*pending + plain);
    cr_assert_not_null(nb);
    memset(nb->data, 'A', *pending);
    if (plain)
        memcpy(nb->data + *pending, st->out->data, plain);
    nb->len = *pending + plain;
    *pending = 0;
    free(st->out);
    st->out = nb;
    return 0;
}
static const struct transport_ops pending_xprt = {
    .name = "pending", .state_size = 4, .input = ans_input, .seal = ans_seal};

static const struct transport_ops test_xprt = {
    .name = "test",
    .state_size = 4,
    .open = x_open,
    .input = x_input,
    .seal = x_seal,
    .export_size = x_export_size,
    .export_state = x_export,
    .import_state = x_import,
};

/* Handle completions until `done` or 2 s, draining the peer into `sink`
 * when given. */
static size_t peer_drain(uint8_t *sink, size_t cap, size_t have)
{
    for (;;) {
        ssize_t n = read(peer, sink + have, cap - have);
        if (n <= 0)
            return have;
        have += (size_t)n;
    }
}

/* Durable-output tests turn the loop themselves: no flush in pump. */
static bool pump_no_flush;
/* Turn-budget tests spend the budget themselves: pump keeps it spent. */
static bool pump_keep_budget;

static void pump(bool (*done)(void), uint8_t *sink, size_t cap, size_t *have)
{
    for (int i = 0; i < 2000 && !done(); i++) {
        if (!pump_no_flush)
            stream_flush(&loop);
        bufring_publish(&bufs);
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
        struct io_uring_cqe *cqe;
        io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
        if (!pump_keep_budget)
            stream_turn_begin(&loop); /* a turn starts, as the shard's loop does */
        unsigned head, n = 0;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            uint64_t ud = cqe->user_data;
            struct stream *st = (struct stream *)(uintptr_t)(ud & ~(uint64_t)15);
            switch (ud & 15) {
            case TAG_RECV:
                stream_on_recv(&loop, st, cqe->res, cqe->flags);
                break;
            case TAG_SEND:
                stream_on_send(&loop, st, cqe->res);
                break;
            case TAG_CLOSE:
                stream_on_close(&loop, st, cqe->res);
                break;
            }
            n++;
        }
        io_uring_cq_advance(&ring, n);
        if (sink)
            *have = peer_drain(sink, cap, *have);
    }
}

static void setup_with(const struct transport_ops *x)
{
    cr_assert_eq(io_uring_queue_init(64, &ring, 0), 0);
    cr_assert_eq(io_uring_register_files_sparse(&ring, 4), 0);
    cr_assert_eq(bufring_init(&bufs, &ring, 0, 8, 4096), 0);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(io_uring_register_files_update(&ring, 0, &sv[0], 1), 1);
    close(sv[0]);
    peer = sv[1];
    fcntl(peer, F_SETFL, O_NONBLOCK);
    memset(&loop, 0, sizeof(loop));
    loop.ring = &ring;
    loop.bufs = &bufs;
    loop.ev = &events;
    loop.xprt[0] = &transport_tcp;
    loop.xprt[1] = x;
    loop.tags = (struct stream_tags){TAG_RECV, TAG_SEND, TAG_CLOSE, TAG_IGNORE};
    loop.owner_size = offsetof(struct owner, xstate);
    o = calloc(1, sizeof(*o));
    o->last_end = 1;
}

static void setup(void)
{
    setup_with(&transport_tcp);
    cr_assert_eq(stream_open(&loop, &o->st, 0, 0, NULL), 0);
}

static void teardown_all(void)
{
    stream_release(&loop, &o->st);
    stream_barrier_fini(&loop);
    free(o);
    close(peer);
    bufring_fini(&bufs, &ring);
    io_uring_queue_exit(&ring);
}

static size_t want;
static bool got_want(void)
{
    return o->ngot >= want;
}

Test(stream, tcp_hands_up_bytes_multishot, .init = setup, .fini = teardown_all)
{
    o->st.multishot = true;
    stream_arm_recv(&loop, &o->st);
    cr_assert_eq(write(peer, "hello ", 6), 6);
    want = 6;
    pump(got_want, NULL, 0, NULL);
    cr_assert_eq(write(peer, "world", 5), 5);
    want = 11;
    pump(got_want, NULL, 0, NULL);
    cr_assert_eq(o->ngot, 11);
    cr_assert_arr_eq(o->got, "hello world", 11);
    cr_assert(o->st.recv_armed, "a multishot receive stays armed");
}

static size_t have;
static uint8_t sink[1 << 20];
static bool sent_all(void)
{
    return have >= want && o->st.backlog == 0 && !o->st.sending;
}

Test(stream, output_batched_per_turn_and_accounted, .init = setup, .fini = teardown_all)
{
    uint8_t *p = stream_reserve(&loop, &o->st, 3);
    memcpy(p, "abc", 3);
    stream_commit(&loop, &o->st, 3);
    p = stream_reserve(&loop, &o->st, 3);
    memcpy(p, "def", 3);
    stream_commit(&loop, &o->st, 3);
    cr_assert_eq(o->st.backlog, 6);
    cr_assert_eq(loop.out_bytes, 6);
    have = 0;
    want = 6;
    pump(sent_all, sink, sizeof(sink), &have);
    cr_assert_eq(have, 6);
    cr_assert_arr_eq(sink, "abcdef", 6);
    cr_assert_eq(o->nsent, 1, "two commits in one turn are one send");
    cr_assert_eq(o->nflush, 1);
    cr_assert_eq(loop.out_bytes, 0);
}

Test(stream, large_output_in_several_sends, .init = setup, .fini = teardown_all)
{
    size_t n = 3 * STREAM_SEND_MAX + 100;
    uint8_t *p = stream_reserve(&loop, &o->st, n);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 7);
    stream_commit(&loop, &o->st, n);
    have = 0;
    want = n;
    pump(sent_all, sink, sizeof(sink), &have);
    cr_assert_eq(have, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(sink[i], (uint8_t)(i * 7));
    cr_assert_geq(o->nsent, 4, "at most STREAM_SEND_MAX per send");
    cr_assert_eq(loop.out_bytes, 0);
}

static bool closed(void)
{
    return o->nclosed > 0;
}

Test(stream, close_lingers_until_output_is_sent, .init = setup, .fini = teardown_all)
{
    uint8_t *p = stream_reserve(&loop, &o->st, 4);
    memcpy(p, "bye!", 4);
    stream_commit(&loop, &o->st, 4);
    cr_assert(stream_close(&loop, &o->st), "output queued: the close waits for it");
    cr_assert_null(stream_reserve(&loop, &o->st, 1), "no output after close");
    have = 0;
    pump(closed, sink, sizeof(sink), &have);
    cr_assert_eq(o->nclosed, 1);
    have = peer_drain(sink, sizeof(sink), have);
    cr_assert_eq(have, 4);
    cr_assert_arr_eq(sink, "bye!", 4);
    char c;
    cr_assert_eq(read(peer, &c, 1), 0, "the peer sees the end of the stream");
}

static bool ended(void)
{
    return o->last_end <= 0;
}

Test(stream, pause_ends_receive_and_rearm_resumes, .init = setup, .fini = teardown_all)
{
    o->st.multishot = true;
    stream_arm_recv(&loop, &o->st);
    stream_pause_recv(&loop, &o->st);
    pump(ended, NULL, 0, NULL);
    cr_assert_eq(o->last_end, -EAGAIN, "a paused receive ends as try-again");
    cr_assert(!o->st.recv_armed);
    o->keep_listed = true;
    stream_want_recv(&loop, &o->st);
    stream_flush(&loop);
    cr_assert_eq(o->nrearm, 1);
    cr_assert(o->st.in_rearm, "kept listed while the owner says so");
    o->keep_listed = false;
    cr_assert_eq(write(peer, "x", 1), 1);
    want = 1;
    pump(got_want, NULL, 0, NULL);
    cr_assert_eq(o->ngot, 1);
    cr_assert(!o->st.in_rearm);
}

Test(stream, peer_close_is_end_of_file, .init = setup, .fini = teardown_all)
{
    stream_arm_recv(&loop, &o->st);
    shutdown(peer, SHUT_WR);
    pump(ended, NULL, 0, NULL);
    cr_assert_eq(o->last_end, 0);
}

static void setup_test_xprt(void)
{
    setup_with(&test_xprt);
    cr_assert_eq(stream_open(&loop, &o->st, 0, 1, NULL), 0);
}

Test(stream, transport_input_and_seal, .init = setup_test_xprt, .fini = teardown_all)
{
    cr_assert_eq(o->xstate, 7, "open set up the transport's state after the owner");
    stream_arm_recv(&loop, &o->st);
    cr_assert_eq(write(peer, "HI", 2), 2);
    want = 2;
    pump(got_want, NULL, 0, NULL);
    cr_assert_arr_eq(o->got, "hi", 2, "input decoded the bytes before the owner saw them");
    cr_assert_eq(o->xstate, 8);
    uint8_t *p = stream_reserve(&loop, &o->st, 3);
    memcpy(p, "out", 3);
    stream_commit(&loop, &o->st, 3);
    have = 0;
    want = 5;
    pump(sent_all, sink, sizeof(sink), &have);
    cr_assert_eq(have, 5);
    cr_assert_arr_eq(sink, "\0\3out", 5, "seal encoded the output");
    cr_assert_eq(loop.out_bytes, 0, "the backlog followed the sealed length");
}

static void setup_answering(void)
{
    setup_with(&answering_xprt);
    cr_assert_eq(stream_open(&loop, &o->st, 0, 1, NULL), 0);
}

/* Output that only the transport wrote is sent at the flush, through seal
 * like the owner's (the ws transport keeps its own bytes from being
 * framed twice itself). */
Test(stream, transport_only_output_is_sealed_and_sent, .init = setup_answering,
     .fini = teardown_all)
{
    stream_arm_recv(&loop, &o->st);
    cr_assert_eq(write(peer, "?", 1), 1);
    have = 0;
    want = 3;
    pump(sent_all, sink, sizeof(sink), &have);
    cr_assert_eq(o->ngot, 0);
    cr_assert_eq(have, 3);
    cr_assert_arr_eq(sink, "\0\1!", 3, "the flush sealed and sent the transport's bytes");
    cr_assert_eq(loop.out_bytes, 0);
}

Test(stream, transport_state_travels, .init = setup_test_xprt, .fini = teardown_all)
{
    o->xstate = 0x01020304;
    size_t n = stream_export_size(&loop, &o->st);
    cr_assert_eq(n, 4);
    uint8_t blob[4];
    stream_export(&loop, &o->st, blob);
    struct owner *o2 = calloc(1, sizeof(*o2));
    cr_assert_eq(stream_open(&loop, &o2->st, 1, 1, NULL), 0);
    cr_assert_eq(stream_import(&loop, &o2->st, blob, n), 0);
    cr_assert_eq(o2->xstate, 0x01020304);
    cr_assert_eq(stream_import(&loop, &o2->st, blob, 3), -EINVAL);
    free(o2);
    /* tcp keeps nothing: no state to export, and none accepted. */
    struct owner *o3 = calloc(1, sizeof(*o3));
    cr_assert_eq(stream_open(&loop, &o3->st, 2, 0, NULL), 0);
    cr_assert_eq(stream_export_size(&loop, &o3->st), 0);
    cr_assert_eq(stream_import(&loop, &o3->st, blob, 4), -EINVAL);
    cr_assert_null(stream_state(&loop, &o3->st));
    free(o3);
}

static void setup_failing(void)
{
    setup_with(&failing_xprt);
    cr_assert_eq(stream_open(&loop, &o->st, 0, 1, NULL), 0);
}

Test(stream, seal_failure_closes_once_and_accounts, .init = setup_failing, .fini = teardown_all)
{
    uint8_t *p = stream_reserve(&loop, &o->st, 4);
    memcpy(p, "data", 4);
    stream_commit(&loop, &o->st, 4);
    pump(closed, NULL, 0, NULL);
    cr_assert_eq(o->nclosed, 1, "a transport that cannot seal closes the stream");
    cr_assert_eq(o->nsent, 1, "the owner is told once");
    cr_assert(o->st.shut);
    cr_assert_eq(o->st.backlog, 0);
    cr_assert_eq(loop.out_bytes, 0, "the dropped output leaves the count");
    char c;
    cr_assert_eq(read(peer, &c, 1), 0, "nothing half-sealed was sent; the peer sees the end");
}

Test(stream, transport_input_error_is_not_try_again, .init = setup_failing, .fini = teardown_all)
{
    stream_arm_recv(&loop, &o->st);
    cr_assert_eq(write(peer, "!", 1), 1);
    pump(ended, NULL, 0, NULL);
    cr_assert_eq(o->last_end, -EPROTO);
}

static void setup_pending(void)
{
    setup_with(&pending_xprt);
    cr_assert_eq(stream_open(&loop, &o->st, 0, 1, NULL), 0);
}

Test(stream, transport_output_alone_is_sent, .init = setup_pending, .fini = teardown_all)
{
    /* Only the transport has output (the owner wrote nothing): the flush
     * still seals and sends it, and the backlog counts it until sent. */
    stream_arm_recv(&loop, &o->st);
    cr_assert_eq(write(peer, "??", 2), 2);
    have = 0;
    want = 2;
    pump(sent_all, sink, sizeof(sink), &have);
    cr_assert_eq(have, 2, "the transport's own output reached the peer");
    cr_assert_arr_eq(sink, "AA", 2);
    cr_assert_eq(o->ngot, 0, "the owner was handed nothing");
    cr_assert_eq(o->st.backlog, 0);
    cr_assert_eq(loop.out_bytes, 0);
    cr_assert_not(stream_sending(&o->st));
    /* With owner output too: the transport's bytes go first. */
    cr_assert_eq(write(peer, "?", 1), 1);
    want = 3;
    pump(sent_all, sink, sizeof(sink), &have);
    uint8_t *p = stream_reserve(&loop, &o->st, 2);
    memcpy(p, "hi", 2);
    stream_commit(&loop, &o->st, 2);
    want = 5;
    pump(sent_all, sink, sizeof(sink), &have);
    cr_assert_eq(have, 5);
    cr_assert_arr_eq(sink, "AAAhi", 5);
    cr_assert_eq(loop.out_bytes, 0);
}

/* ---- durable output: a gated loop's barriers (issue 13) ---- */

/* Output that promises something (an acknowledgement): a gated loop
 * holds it for its barrier. */
static void write_out(const char *text)
{
    size_t n = strlen(text);
    uint8_t *p = stream_reserve(&loop, &o->st, n);
    memcpy(p, text, n);
    stream_promise(&o->st);
    stream_commit(&loop, &o->st, n);
}

/* Output that promises nothing (a QoS 1 delivery). */
static void write_plain(const char *text)
{
    size_t n = strlen(text);
    uint8_t *p = stream_reserve(&loop, &o->st, n);
    memcpy(p, text, n);
    stream_commit(&loop, &o->st, n);
}

static int turns;
static bool twenty_turns(void)
{
    return ++turns > 20;
}

/* Turn the ring twenty times without flushing (sends complete well
 * within: a socketpair takes them at once); what reached the peer. */
static size_t settle(void)
{
    pump_no_flush = true;
    turns = 0;
    pump(twenty_turns, sink, sizeof(sink), &have);
    return have;
}

static void setup_gated(void)
{
    setup();
    loop.gated = true;
    pump_no_flush = true;
    have = 0;
}

Test(stream, gated_output_waits_for_its_barrier, .init = setup_gated, .fini = teardown_all)
{
    write_out("ack1");
    stream_barrier_begin(&loop, 0);
    cr_assert(loop.barrier);
    cr_assert_eq(settle(), 0, "covered output waits for the sync");
    write_out("next");
    stream_flush(&loop); /* a turn ends while the barrier is in flight */
    cr_assert_eq(settle(), 0, "output written meanwhile waits too");
    cr_assert(stream_sending(&o->st));
    stream_barrier_done(&loop);
    cr_assert_eq(settle(), 4, "the barrier releases what it covered, only that");
    cr_assert_arr_eq(sink, "ack1", 4);
    /* No record since: the next flush releases the rest. */
    stream_flush(&loop);
    cr_assert_eq(settle(), 8);
    cr_assert_arr_eq(sink, "ack1next", 8);
    cr_assert_eq(o->st.backlog, 0);
    cr_assert_eq(loop.out_bytes, 0);
    cr_assert_eq(o->st.ops, 0, "the barrier's hold on the stream is gone");
}

Test(stream, gated_barriers_release_in_order, .init = setup_gated, .fini = teardown_all)
{
    write_out("A");
    stream_barrier_begin(&loop, 0);
    write_out("B");
    stream_barrier_done(&loop); /* A goes; B was written after the barrier began */
    write_out("C");
    stream_barrier_begin(&loop, 0); /* covers B and C */
    write_out("D");
    cr_assert_eq(settle(), 1);
    stream_barrier_done(&loop);
    cr_assert_eq(settle(), 3);
    stream_barrier_begin(&loop, 0); /* covers D */
    cr_assert_eq(settle(), 3);
    stream_barrier_done(&loop);
    cr_assert_eq(settle(), 4);
    cr_assert_arr_eq(sink, "ABCD", 4);
    cr_assert_eq(loop.out_bytes, 0);
}

Test(stream, gated_close_lingers_for_held_output, .init = setup_gated, .fini = teardown_all)
{
    write_out("puback");
    stream_barrier_begin(&loop, 0);
    cr_assert(stream_close(&loop, &o->st), "held output: the close waits for it");
    cr_assert_eq(settle(), 0);
    cr_assert_eq(o->nclosed, 0);
    stream_barrier_done(&loop);
    pump(closed, sink, sizeof(sink), &have);
    cr_assert_eq(o->nclosed, 1);
    have = peer_drain(sink, sizeof(sink), have);
    cr_assert_eq(have, 6);
    cr_assert_arr_eq(sink, "puback", 6);
    char c;
    cr_assert_eq(read(peer, &c, 1), 0, "then the end of the stream");
}

Test(stream, gated_close_without_a_barrier_sends_at_the_flush, .init = setup_gated,
     .fini = teardown_all)
{
    /* A refusal (a CONNACK 0x97) written and closed at once, no record
     * behind it: stream_close finds nothing released yet; the turn's flush
     * releases it and the closing stream still sends it, then closes. */
    write_out("refused");
    cr_assert(stream_close(&loop, &o->st), "unreleased output: the close waits for it");
    stream_flush(&loop);
    pump(closed, sink, sizeof(sink), &have);
    cr_assert_eq(o->nclosed, 1);
    have = peer_drain(sink, sizeof(sink), have);
    cr_assert_eq(have, 7, "the refusal reached the peer");
    cr_assert_arr_eq(sink, "refused", 7);
}

Test(stream, gated_remote_dependency_waits_for_its_token_in_order, .init = setup_gated,
     .fini = teardown_all)
{
    /* A PUBACK of a message another loop records: its barrier is done,
     * it still waits for the token. */
    write_out("A");
    stream_depends(&o->st);
    stream_barrier_begin(&loop, 1);
    stream_barrier_done(&loop);
    cr_assert_eq(settle(), 0, "waits for token 1");
    cr_assert(o->st.rwait);
    /* Later output of the same stream, with no dependency of its own,
     * waits behind it (order), through the next turn's barrier... */
    write_out("B");
    stream_barrier_begin(&loop, 0);
    stream_barrier_done(&loop);
    cr_assert_eq(settle(), 0, "B does not pass A");
    /* ...and a turn with no record at all. */
    write_out("b");
    stream_flush(&loop);
    cr_assert_eq(settle(), 0, "b does not pass A");
    stream_barrier_remote(&loop, 1);
    cr_assert_eq(settle(), 2, "what the barriers covered goes");
    cr_assert_arr_eq(sink, "AB", 2);
    cr_assert(!o->st.rwait);
    cr_assert_eq(o->st.ops, 0, "the remote list's hold is gone");
    /* Free again: what came after goes at the next flush. */
    write_out("C");
    stream_flush(&loop);
    cr_assert_eq(settle(), 4);
    cr_assert_arr_eq(sink, "ABbC", 4);
}

Test(stream, gated_remote_failure_tears_down_what_waited, .init = setup_gated, .fini = teardown_all)
{
    write_out("puback");
    stream_depends(&o->st);
    stream_barrier_begin(&loop, 5);
    stream_barrier_done(&loop);
    cr_assert_eq(stream_barrier_remote_abort(&loop, 5), 1);
    pump(closed, sink, sizeof(sink), &have);
    cr_assert_eq(o->nclosed, 1);
    have = peer_drain(sink, sizeof(sink), have);
    cr_assert_eq(have, 0, "nothing the other loop could not store was acknowledged");
}

Test(stream, gated_output_without_a_promise_goes_unless_behind_one, .init = setup_gated,
     .fini = teardown_all)
{
    write_plain("p1");
    stream_barrier_begin(&loop, 0);
    cr_assert_eq(settle(), 2, "a delivery is not held by the barrier");
    write_plain("p2");
    stream_flush(&loop); /* a turn ends while the barrier is in flight */
    cr_assert_eq(settle(), 4, "nor by the barrier in flight");
    stream_barrier_done(&loop);
    write_out("ACK");
    write_plain("p3");
    stream_barrier_begin(&loop, 0);
    cr_assert_eq(settle(), 4, "the promise waits, and what follows it");
    write_plain("p4");
    stream_flush(&loop);
    cr_assert_eq(settle(), 4);
    stream_barrier_done(&loop);
    cr_assert_eq(settle(), 9);
    stream_flush(&loop); /* the next turn: nothing recorded */
    cr_assert_eq(settle(), 11);
    cr_assert_arr_eq(sink, "p1p2ACKp3p4", 11);
}

Test(stream, ungated_loop_ignores_marks, .init = setup, .fini = teardown_all)
{
    /* Without gating, output goes at the flush whatever the marks say. */
    write_out("now");
    have = 0;
    want = 3;
    pump(sent_all, sink, sizeof(sink), &have);
    cr_assert_eq(have, 3);
}

static void setup_gated_pending(void)
{
    setup_pending();
    loop.gated = true;
    pump_no_flush = true;
    have = 0;
}

Test(stream, gated_transport_output_is_never_held, .init = setup_gated_pending,
     .fini = teardown_all)
{
    write_out("hi");
    stream_barrier_begin(&loop, 0);
    stream_arm_recv(&loop, &o->st);
    cr_assert_eq(write(peer, "?", 1), 1); /* the transport answers by itself */
    for (int i = 0; i < 50 && have < 1; i++) {
        stream_flush(&loop);
        settle();
    }
    cr_assert_eq(have, 1, "the transport's own bytes went out during the barrier");
    cr_assert_arr_eq(sink, "A", 1);
    stream_barrier_done(&loop);
    cr_assert_eq(settle(), 3, "then the owner's, once released");
    cr_assert_arr_eq(sink, "Ahi", 3);
}

/* ---- a turn's send budget (issue 10) ---- */

/* A second stream, on fixed slot 1; its peer end in *peer2. */
static struct owner *open_second(int *peer2)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(io_uring_register_files_update(&ring, 1, &sv[0], 1), 1);
    close(sv[0]);
    *peer2 = sv[1];
    fcntl(*peer2, F_SETFL, O_NONBLOCK);
    struct owner *w = calloc(1, sizeof(*w));
    w->last_end = 1;
    cr_assert_eq(stream_open(&loop, &w->st, 1, 0, NULL), 0);
    return w;
}

static void put(struct stream *st, uint8_t byte, size_t n)
{
    uint8_t *p = stream_reserve(&loop, st, n);
    cr_assert_not_null(p);
    memset(p, byte, n);
    stream_commit(&loop, st, n);
}

static struct owner *second;
static bool both_sent(void)
{
    return !o->st.sending && !second->st.sending && !o->st.is_dirty && !second->st.is_dirty;
}

static void close_second(int peer2)
{
    pump_keep_budget = false;
    pump(both_sent, NULL, 0, NULL);
    stream_release(&loop, &second->st);
    free(second);
    close(peer2);
}

/* Once a turn's sends reach STREAM_TURN_SEND, a stream with more than
 * STREAM_SEND_SMALL to send waits for the next turn; a small one goes. */
Test(stream, spent_send_budget_holds_large_output_not_small, .init = setup, .fini = teardown_all)
{
    int peer2;
    second = open_second(&peer2);
    stream_turn_begin(&loop);
    loop.turn_sent = STREAM_TURN_SEND; /* as if 2 MiB of sends had started */
    put(&o->st, 'b', STREAM_SEND_SMALL + 1);
    put(&second->st, 's', 2);
    stream_flush(&loop);
    cr_assert_not_null(second->st.sending, "a small output goes whatever the budget");
    cr_assert_null(o->st.sending, "a large one waits for the next turn");
    cr_assert(o->st.is_dirty && stream_flush_left(&loop), "and stays listed");
    stream_turn_begin(&loop);
    stream_flush(&loop);
    cr_assert_not_null(o->st.sending, "the next turn sends it");
    cr_assert_not(stream_flush_left(&loop));
    have = 0;
    want = STREAM_SEND_SMALL + 1;
    pump(sent_all, sink, sizeof(sink), &have);
    cr_assert_eq(have, want);
    cr_assert_eq(sink[0], 'b');
    close_second(peer2);
}

/* Streams held by the budget keep their order: the one that became dirty
 * first is sent first (a stream held once is not held again and again
 * behind newer ones). */
Test(stream, held_streams_go_in_order, .init = setup, .fini = teardown_all)
{
    int peer2;
    second = open_second(&peer2);
    stream_turn_begin(&loop);
    loop.turn_sent = STREAM_TURN_SEND;
    put(&o->st, 'a', STREAM_SEND_SMALL * 2);
    put(&second->st, 'b', STREAM_SEND_SMALL * 2);
    stream_flush(&loop);
    cr_assert(o->st.is_dirty && second->st.is_dirty, "both held");
    stream_turn_begin(&loop);
    loop.turn_sent = STREAM_TURN_SEND - 1; /* room for one send */
    stream_flush(&loop);
    cr_assert_not_null(o->st.sending, "the first held goes first");
    cr_assert_null(second->st.sending, "the second waits again");
    cr_assert(second->st.is_dirty);
    close_second(peer2);
}

static bool one_sent(void)
{
    return o->nsent >= 1;
}

/* A send completing in a turn whose budget is spent does not start the
 * next large buffer from the completion: the stream is listed for a later
 * turn's flush. */
Test(stream, completion_respects_spent_budget, .init = setup, .fini = teardown_all)
{
    put(&o->st, 'x', 10);
    stream_turn_begin(&loop);
    stream_flush(&loop);
    cr_assert_not_null(o->st.sending);
    put(&o->st, 'y', STREAM_SEND_SMALL * 2); /* accumulates while sending */
    loop.turn_sent = STREAM_TURN_SEND;
    pump_no_flush = true;
    pump_keep_budget = true;
    have = 0;
    pump(one_sent, sink, sizeof(sink), &have);
    pump_no_flush = false;
    pump_keep_budget = false;
    cr_assert_null(o->st.sending, "not started from the completion");
    cr_assert(o->st.is_dirty, "listed for the flush");
    want = 10 + STREAM_SEND_SMALL * 2;
    pump(sent_all, sink, sizeof(sink), &have);
    cr_assert_eq(have, want);
    cr_assert_eq(sink[10], 'y');
}

/* A turn's share of work is also time: once it made STREAM_TURN_HEAVY bytes
 * of output, spent when STREAM_TURN_US have passed since it started (light
 * work never reads the clock); and it stays spent for the rest of the
 * turn. */
Test(stream, turn_spent_after_its_time, .init = setup, .fini = teardown_all)
{
    stream_turn_begin(&loop);
    loop.turn_start_us -= STREAM_TURN_US; /* as if it started 1 ms ago */
    cr_assert_not(stream_turn_spent(&loop), "light work is bounded by counts, not time");
    loop.out_written += STREAM_TURN_HEAVY;
    cr_assert(stream_turn_spent(&loop), "heavy work reads the clock");
    loop.out_written -= STREAM_TURN_HEAVY;
    cr_assert(stream_turn_spent(&loop) && stream_turn_over(&loop), "spent until the turn ends");
    stream_turn_begin(&loop);
    cr_assert_not(stream_turn_over(&loop), "a new turn has its whole share");
    loop.out_written += STREAM_TURN_HEAVY;
    cr_assert_not(stream_turn_spent(&loop), "heavy, but just started");
}
