/*
 * stream: receives, batched sends and close of one connection's direct
 * descriptor (see stream.h).
 */
#include "net/stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define STREAM_OUT_MIN 512u

const struct transport_ops transport_tcp = {.name = "tcp"};

struct iobuf *iobuf_create(size_t cap)
{
    struct iobuf *b = malloc(sizeof(*b) + cap);
    if (b) {
        b->len = 0;
        b->off = 0;
        b->cap = (uint32_t)cap;
        b->mark = b->cover = 0;
    }
    return b;
}

static void teardown(struct stream_loop *l, struct stream *st, bool shutdown_first);

static uint64_t ud(const struct stream *st, uint8_t tag)
{
    return (uint64_t)(uintptr_t)st | tag;
}

static const struct transport_ops *xprt(const struct stream_loop *l, const struct stream *st)
{
    return l->xprt[st->listener];
}

struct io_uring_sqe *stream_sqe(struct stream_loop *l)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(l->ring);
    while (!sqe) {
        io_uring_submit(l->ring);
        sqe = io_uring_get_sqe(l->ring);
    }
    return sqe;
}

int stream_open(struct stream_loop *l, struct stream *st, uint32_t fi, uint8_t listener,
                const struct net_peer *peer)
{
    st->fi = fi;
    st->listener = listener;
    if (peer)
        st->peer = *peer;
    const struct transport_ops *x = xprt(l, st);
    return x->open ? x->open(l, st) : 0;
}

void stream_close_fixed(struct stream_loop *l, uint32_t fi)
{
    struct io_uring_sqe *sqe = stream_sqe(l);
    io_uring_prep_close_direct(sqe, fi);
    io_uring_sqe_set_data64(sqe, l->tags.ignore);
}

void stream_arm_recv(struct stream_loop *l, struct stream *st)
{
    struct io_uring_sqe *sqe = stream_sqe(l);
    if (st->multishot)
        io_uring_prep_recv_multishot(sqe, (int)st->fi, NULL, 0, 0);
    else
        io_uring_prep_recv(sqe, (int)st->fi, NULL, 0, 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = l->bufs->bgid;
    io_uring_sqe_set_data64(sqe, ud(st, l->tags.recv));
    st->recv_armed = true;
    st->ops++;
}

void stream_pause_recv(struct stream_loop *l, struct stream *st)
{
    if (!st->recv_armed || st->recv_cancelled)
        return;
    struct io_uring_sqe *sqe = stream_sqe(l);
    io_uring_prep_cancel64(sqe, ud(st, l->tags.recv), 0);
    io_uring_sqe_set_data64(sqe, l->tags.ignore);
    st->recv_cancelled = true;
}

void stream_want_recv(struct stream_loop *l, struct stream *st)
{
    if (!st->in_rearm) {
        st->in_rearm = true;
        st->next_rearm = l->rearm;
        l->rearm = st;
    }
}

static void submit_send(struct stream_loop *l, struct stream *st)
{
    struct iobuf *b = st->sending;
    struct io_uring_sqe *sqe = stream_sqe(l);
    size_t len = b->len - b->off;
    if (len > STREAM_SEND_MAX)
        len = STREAM_SEND_MAX;
    l->turn_sent += len;
    io_uring_prep_send(sqe, (int)st->fi, b->data + b->off, len, MSG_NOSIGNAL);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, ud(st, l->tags.send));
    st->ops++;
}

/* The transport encodes st->out (its length may change: the backlog
 * follows, so that it counts bytes the kernel is yet to take, even when
 * the transport fails half way). */
static int seal(struct stream_loop *l, struct stream *st)
{
    const struct transport_ops *x = xprt(l, st);
    st->xprt_out = false;
    if (!x->seal)
        return 0;
    uint32_t before = st->out ? st->out->len : 0;
    int rc = x->seal(l, st);
    uint32_t after = st->out ? st->out->len : 0;
    st->backlog += after - before;
    l->out_bytes += (uint64_t)after - before;
    return rc;
}

/* Bytes of st->out that may be sent now (a gated loop holds the rest). */
static uint32_t released(const struct stream_loop *l, const struct stream *st)
{
    if (!st->out)
        return 0;
    return l->gated ? st->out->mark : st->out->len;
}

/* Whether st waits for the next turn's send budget: this turn's is spent
 * and st has more than a few packets to send (a client that keeps up is
 * never held behind those that do not). */
static bool over_turn_budget(const struct stream_loop *l, const struct stream *st)
{
    return l->turn_sent >= STREAM_TURN_SEND && released(l, st) > STREAM_SEND_SMALL;
}

/* What the flush has to send: the owner's released bytes, or the
 * transport's. */
static bool has_output(const struct stream_loop *l, const struct stream *st)
{
    return released(l, st) || st->xprt_out;
}

/* Gated: take what st->out holds past its mark off into a buffer of its
 * own (returned; NULL when out of memory), leaving st->out the released
 * bytes (NULL when there are none). The backlog does not change. */
static struct iobuf *take_unreleased(struct stream *st)
{
    struct iobuf *b = st->out;
    if (b->mark == 0) {
        st->out = NULL;
        return b;
    }
    uint32_t n = b->len - b->mark;
    struct iobuf *t = iobuf_create(n > STREAM_OUT_MIN ? n : STREAM_OUT_MIN);
    if (!t)
        return NULL;
    memcpy(t->data, b->data + b->mark, n);
    t->len = n;
    t->cover = b->cover > b->mark ? b->cover - b->mark : 0;
    b->len = b->mark;
    return t;
}

/* The transport failed to seal: drop the output (and what waited behind
 * it), shut and close the stream, tell the owner once. */
static void seal_failed(struct stream_loop *l, struct stream *st, struct iobuf *later)
{
    bool was_shut = st->shut;
    struct iobuf *bufs[2] = {st->out, later};
    for (int i = 0; i < 2; i++) {
        if (!bufs[i])
            continue;
        st->backlog -= bufs[i]->len;
        l->out_bytes -= bufs[i]->len;
        l->out_freed += bufs[i]->cap;
        free(bufs[i]);
    }
    st->out = NULL;
    st->shut = true; /* nothing more to seal: the owner's close does not come back */
    if (!was_shut)
        l->ev->on_sent(l, st, -EPROTO);
    teardown(l, st, true);
}

/* Hand st->out (its released bytes) to the kernel; false when nothing was
 * sent: nothing was released, the transport had nothing to send, or it
 * failed (then seal_failed). */
static bool start_send(struct stream_loop *l, struct stream *st)
{
    struct iobuf *later = NULL;
    if (l->gated && st->out && st->out->mark < st->out->len) {
        if (st->out->mark == 0 && !st->xprt_out)
            return false;
        if (!(later = take_unreleased(st)))
            return false; /* out of memory: the next send tries again */
    }
    if (seal(l, st) < 0) {
        seal_failed(l, st, later);
        return false;
    }
    if (!st->out || !st->out->len) {
        if (later) {
            free(st->out);
            st->out = later;
        }
        return false;
    }
    st->sending = st->out;
    st->out = later;
    submit_send(l, st);
    return true;
}

void stream_xprt_output(struct stream_loop *l, struct stream *st)
{
    st->xprt_out = true;
    stream_mark_dirty(l, st);
}

void stream_mark_dirty(struct stream_loop *l, struct stream *st)
{
    if (!st->is_dirty) {
        st->is_dirty = true;
        st->next_dirty = NULL;
        if (l->dirty)
            l->dirty_tail->next_dirty = st;
        else
            l->dirty = st;
        l->dirty_tail = st;
    }
}

uint8_t *stream_reserve_grow(struct stream *st, size_t n)
{
    if (st->shut)
        return NULL;
    struct iobuf *b = st->out;
    size_t cap = b ? (size_t)b->cap * 2 : STREAM_OUT_MIN;
    while (cap < (b ? b->len : 0) + n)
        cap *= 2;
    struct iobuf *nb = realloc(b, sizeof(*nb) + cap);
    if (!nb)
        return NULL;
    if (!b) {
        nb->len = 0;
        nb->off = 0;
        nb->mark = nb->cover = 0;
    }
    nb->cap = (uint32_t)cap;
    st->out = nb;
    return nb->data + nb->len;
}

static void teardown(struct stream_loop *l, struct stream *st, bool shutdown_first)
{
    st->shut = true;
    if (st->close_submitted)
        return;
    st->close_submitted = true;
    st->teardown_pending = false;
    struct io_uring_sqe *sqe;
    if (shutdown_first) {
        /* Shutdown ends a pending receive; the hard link closes even if the
         * shutdown fails (peer already gone). */
        sqe = stream_sqe(l);
        io_uring_prep_shutdown(sqe, (int)st->fi, SHUT_RDWR);
        sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(sqe, l->tags.ignore);
    }
    sqe = stream_sqe(l);
    io_uring_prep_close_direct(sqe, st->fi);
    io_uring_sqe_set_data64(sqe, ud(st, l->tags.close));
    st->ops++;
}

void stream_teardown(struct stream_loop *l, struct stream *st)
{
    teardown(l, st, true);
}

void stream_drop(struct stream_loop *l, struct stream *st)
{
    teardown(l, st, false);
}

bool stream_close(struct stream_loop *l, struct stream *st)
{
    if (st->shut)
        return st->teardown_pending;
    if (!st->sending && has_output(l, st))
        start_send(l, st);
    st->shut = true;
    if (st->sending || (st->out && st->out->len)) {
        /* Flush first (a CONNACK refusal must reach the client), and
         * output a barrier holds once it is released. */
        st->teardown_pending = true;
        return true;
    }
    teardown(l, st, true);
    return false;
}

void stream_maybe_closed(struct stream_loop *l, struct stream *st)
{
    if (st->shut && st->ops == 0 && st->close_submitted && !st->is_dirty && !st->in_rearm)
        l->ev->on_closed(l, st);
}

void stream_op_done(struct stream_loop *l, struct stream *st)
{
    st->ops--;
    stream_maybe_closed(l, st);
}

/* Bytes read: through the transport to the owner. */
static void input(struct stream_loop *l, struct stream *st, const uint8_t *data, size_t len,
                  int *res)
{
    if (__builtin_expect(st->proxy_wait, 0)) {
        long used = stream_proxy_input(l, st, data, len);
        if (used < 0) {
            *res = (int)used;
            return;
        }
        data += used;
        len -= (size_t)used;
        if (!len)
            return;
    }
    const struct transport_ops *x = xprt(l, st);
    if (!x->input) {
        l->ev->on_bytes(l, st, data, len); /* identity: the kernel's buffer itself */
        return;
    }
    int rc = x->input(l, st, data, len);
    if (rc < 0) /* the owner closes it (never read as "try again") */
        *res = rc == -EAGAIN || rc == -ENOBUFS || rc == -ECANCELED ? -EPROTO : rc;
}

void stream_on_recv(struct stream_loop *l, struct stream *st, int res, unsigned flags)
{
    bool more = flags & IORING_CQE_F_MORE;
    bool cancelled = st->recv_cancelled;
    if (!more) {
        st->recv_armed = false;
        st->recv_cancelled = false;
        st->ops--;
    }
    if (flags & IORING_CQE_F_BUFFER) {
        uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
        if (res > 0 && !st->shut)
            input(l, st, bufring_buf(l->bufs, bid), (size_t)res, &res);
        bufring_recycle(l->bufs, bid);
    }
    if (res == -ENOBUFS || (res == -ECANCELED && cancelled))
        res = -EAGAIN; /* every buffer is in use this turn, or paused */
    l->ev->on_recv_end(l, st, res, more);
    stream_maybe_closed(l, st);
}

static void backlog_sub(struct stream_loop *l, struct stream *st, size_t n)
{
    st->backlog -= (uint32_t)n;
    l->out_bytes -= n;
}

static void sending_done(struct stream_loop *l, struct stream *st)
{
    struct iobuf *b = st->sending;
    backlog_sub(l, st, b->len - b->off);
    l->out_freed += b->cap;
    free(b);
    st->sending = NULL;
}

void stream_on_send(struct stream_loop *l, struct stream *st, int res)
{
    st->ops--;
    if (res < 0) {
        sending_done(l, st);
        if (!st->shut)
            l->ev->on_sent(l, st, res); /* the owner closes it */
        else if (st->teardown_pending)
            teardown(l, st, true);
        stream_maybe_closed(l, st);
        return;
    }
    struct iobuf *b = st->sending;
    b->off += (uint32_t)res;
    backlog_sub(l, st, (uint32_t)res);
    if (b->off < b->len && !st->close_submitted) {
        submit_send(l, st); /* short write: send the rest */
        l->ev->on_sent(l, st, res);
        return;
    }
    /* After the descriptor is closed its slot may be another client's:
     * the rest of a short write is dropped, never sent there. */
    sending_done(l, st);
    bool sent = false;
    if (!st->shut && over_turn_budget(l, st))
        stream_mark_dirty(l, st); /* a later turn's flush sends it */
    else if (has_output(l, st) && (!st->shut || st->teardown_pending) && !st->close_submitted)
        sent = start_send(l, st);
    if (!sent && st->shut && st->teardown_pending && !(st->out && st->out->len))
        teardown(l, st, true);
    l->ev->on_sent(l, st, res);
    stream_maybe_closed(l, st);
}

void stream_on_close(struct stream_loop *l, struct stream *st, int res)
{
    (void)res;
    stream_op_done(l, st);
}

/* A dirty stream at a flush: the owner's last word, then its released
 * output goes out. */
/* A closing stream still sends what it holds (teardown_pending): in a
 * gated loop what it wrote last (a CONNACK refusal) is released only by
 * this flush, after stream_close found nothing it could send yet. */
static void flush_one(struct stream_loop *l, struct stream *st)
{
    st->is_dirty = false;
    l->ev->on_flush(l, st);
    bool may_send = !st->close_submitted && (!st->shut || st->teardown_pending);
    if (may_send && !st->sending && has_output(l, st))
        start_send(l, st);
    stream_maybe_closed(l, st);
}

static void rearm_all(struct stream_loop *l)
{
    struct stream *wait = NULL;
    while (l->rearm) {
        struct stream *st = l->rearm;
        l->rearm = st->next_rearm;
        if (l->ev->on_rearm(l, st)) {
            st->next_rearm = wait; /* still paused, or input left */
            wait = st;
            continue;
        }
        st->in_rearm = false;
        stream_maybe_closed(l, st);
    }
    l->rearm = wait;
}

/* A barrier is in flight: dirty streams wait for it, but what only the
 * transport wrote (and what an earlier barrier released) goes out. */
/* Whether all of st's output may go now: nothing of it waits for a
 * barrier, and none of what it wrote since promises anything. */
static bool unbound(const struct stream *st)
{
    return !st->held && !st->rwait && !st->promise && !st->dep;
}

static void flush_during_barrier(struct stream_loop *l)
{
    struct stream *st = l->dirty;
    l->dirty = l->dirty_tail = NULL;
    while (st) {
        struct stream *next = st->next_dirty;
        if (unbound(st)) {
            if (st->out)
                st->out->mark = st->out->len;
            flush_one(l, st);
        } else {
            if (st->xprt_out && !st->sending && !st->close_submitted &&
                (!st->shut || st->teardown_pending))
                start_send(l, st);
            st->is_dirty = false;
            stream_mark_dirty(l, st); /* the next barrier's */
        }
        st = next;
    }
}

/* Flush every dirty stream the turn's send budget allows; the others stay
 * dirty, first in line for the next turn. */
static void flush_dirty(struct stream_loop *l)
{
    struct stream *st = l->dirty, *keep = NULL, *keep_tail = NULL;
    l->dirty = l->dirty_tail = NULL;
    while (st) {
        struct stream *next = st->next_dirty;
        /* No record since the last barrier's: all of it may go, but what
         * waits for other loops (and what came after it) stays. */
        if (l->gated && st->out && !st->rwait && !st->dep)
            st->out->mark = st->out->len;
        if (!st->shut && !st->sending && over_turn_budget(l, st)) {
            st->next_dirty = NULL;
            if (keep_tail)
                keep_tail->next_dirty = st;
            else
                keep = st;
            keep_tail = st;
        } else {
            flush_one(l, st);
        }
        st = next;
    }
    if (keep) { /* before the streams that became dirty meanwhile */
        keep_tail->next_dirty = l->dirty;
        if (!l->dirty)
            l->dirty_tail = keep_tail;
        l->dirty = keep;
    }
}

void stream_flush(struct stream_loop *l)
{
    if (l->gated && l->barrier)
        flush_during_barrier(l);
    else
        flush_dirty(l);
    rearm_all(l);
}

/* Put st on the barrier's list; false when the list cannot grow. */
static bool hold(struct stream_loop *l, struct stream *st)
{
    if (st->held)
        return true;
    if (l->nheld == l->held_cap) {
        uint32_t cap = l->held_cap ? l->held_cap * 2 : 64;
        struct stream **v = realloc(l->held, cap * sizeof(*v));
        if (!v)
            return false;
        l->held = v;
        l->held_cap = cap;
    }
    l->held[l->nheld++] = st;
    st->held = true;
    st->ops++; /* named by the list until the barrier is done */
    return true;
}

/* st's entry in l->rheld (st->rwait), or NULL. */
static struct stream_rheld *rheld_find(struct stream_loop *l, const struct stream *st)
{
    for (uint32_t i = 0; i < l->nrheld; i++)
        if (l->rheld[i].st == st)
            return &l->rheld[i];
    return NULL;
}

/* Put st on the remote list, or move its entry on: it waits for the
 * barrier begun now and for `token` (0: no new one); false when the list
 * cannot grow. */
static bool rhold(struct stream_loop *l, struct stream *st, uint32_t token)
{
    struct stream_rheld *e = st->rwait ? rheld_find(l, st) : NULL;
    if (!e) {
        if (l->nrheld == l->rheld_cap) {
            uint32_t cap = l->rheld_cap ? l->rheld_cap * 2 : 64;
            struct stream_rheld *v = realloc(l->rheld, cap * sizeof(*v));
            if (!v)
                return false;
            l->rheld = v;
            l->rheld_cap = cap;
        }
        e = &l->rheld[l->nrheld++];
        *e = (struct stream_rheld){st, 0, 0};
        st->rwait = true;
        st->ops++; /* named by the list until it is released */
    }
    if (token > e->token)
        e->token = token;
    e->k = l->barrier_k;
    return true;
}

/* Cover st's output so far, locally or with what it waits for remotely
 * (output that promises nothing goes at once); false when out of memory
 * (it waits for the next barrier). */
static bool cover(struct stream_loop *l, struct stream *st, uint32_t token)
{
    if (unbound(st)) {
        st->out->mark = st->out->len;
        return true;
    }
    bool remote = st->dep || st->rwait;
    if (!(remote ? rhold(l, st, st->dep ? token : 0) : hold(l, st)))
        return false;
    st->dep = st->promise = false;
    st->out->cover = st->out->len;
    return true;
}

void stream_barrier_begin(struct stream_loop *l, uint32_t token)
{
    struct stream *st = l->dirty, *keep = NULL;
    l->dirty = l->dirty_tail = NULL;
    l->barrier_k++;
    while (st) {
        struct stream *next = st->next_dirty;
        struct iobuf *b = st->out;
        if (b && b->len > b->mark && !st->close_submitted && !cover(l, st, token)) {
            st->next_dirty = keep; /* out of memory: the next barrier's */
            keep = st;
            st = next;
            continue;
        }
        flush_one(l, st); /* what was released before, and the transport's own */
        st = next;
    }
    while (keep) { /* back on the list, with what became dirty meanwhile */
        struct stream *next = keep->next_dirty;
        keep->is_dirty = false;
        stream_mark_dirty(l, keep);
        keep = next;
    }
    l->barrier = true;
    rearm_all(l);
}

/* What covered st's output may go now: send it (a closing stream closes
 * once it is sent); what came after waits for the next flush or barrier. */
static void release(struct stream_loop *l, struct stream *st)
{
    if (st->out && st->out->cover > st->out->mark)
        st->out->mark = st->out->cover;
    bool may_send = !st->close_submitted && (!st->shut || st->teardown_pending);
    bool sent = may_send && !st->sending && has_output(l, st) && start_send(l, st);
    if (!sent && !st->sending && st->shut && st->teardown_pending && !(st->out && st->out->len))
        teardown(l, st, true);
    if (st->out && st->out->len > st->out->mark && !st->close_submitted)
        stream_mark_dirty(l, st);
    stream_op_done(l, st);
}

/* Release the remote list's streams whose barrier is done and whose
 * tokens are all answered; `drop`: tear down those waiting for a token
 * from `drop` on instead (0: none). Returns how many were torn down. */
static uint32_t release_remote(struct stream_loop *l, uint32_t drop)
{
    uint32_t local = l->barrier ? l->barrier_k - 1 : l->barrier_k, n = 0, dropped = 0;
    for (uint32_t i = 0; i < l->nrheld; i++) {
        struct stream_rheld e = l->rheld[i];
        bool gone = drop && e.token >= drop;
        if (!gone && (e.k > local || e.token > l->remote_done)) {
            l->rheld[n++] = e;
            continue;
        }
        e.st->rwait = false;
        if (gone) {
            if (e.st->out)
                e.st->out->cover = e.st->out->mark; /* nothing it covered goes */
            teardown(l, e.st, true);
            dropped++;
        }
        release(l, e.st);
    }
    l->nrheld = n;
    return dropped;
}

void stream_barrier_done(struct stream_loop *l)
{
    l->barrier = false;
    for (uint32_t i = 0; i < l->nheld; i++) {
        l->held[i]->held = false;
        release(l, l->held[i]);
    }
    l->nheld = 0;
    release_remote(l, 0);
}

void stream_barrier_remote(struct stream_loop *l, uint32_t upto)
{
    if (upto > l->remote_done)
        l->remote_done = upto;
    release_remote(l, 0);
}

uint32_t stream_barrier_remote_abort(struct stream_loop *l, uint32_t token)
{
    return release_remote(l, token);
}

uint32_t stream_barrier_abort(struct stream_loop *l)
{
    uint32_t n = l->nheld;
    for (uint32_t i = 0; i < n; i++) {
        struct stream *st = l->held[i];
        if (st->out)
            st->out->cover = st->out->mark; /* nothing it covered goes */
        teardown(l, st, true);
    }
    /* Those waiting remotely whose last barrier is this one, too. */
    for (uint32_t i = 0; i < l->nrheld; i++) {
        struct stream *st = l->rheld[i].st;
        if (l->rheld[i].k == l->barrier_k && !st->close_submitted) {
            if (st->out)
                st->out->cover = st->out->mark;
            teardown(l, st, true);
            n++;
        }
    }
    stream_barrier_done(l);
    return n;
}

void stream_barrier_fini(struct stream_loop *l)
{
    free(l->held);
    l->held = NULL;
    l->nheld = l->held_cap = 0;
    free(l->rheld);
    l->rheld = NULL;
    l->nrheld = l->rheld_cap = 0;
}

void stream_release(struct stream_loop *l, struct stream *st)
{
    l->out_bytes -= st->backlog;
    st->backlog = 0;
    l->out_freed += (st->out ? st->out->cap : 0) + (st->sending ? st->sending->cap : 0);
    free(st->out);
    free(st->sending);
    st->out = st->sending = NULL;
    if (st->proxy_hold)
        stream_proxy_release(l, st);
    const struct transport_ops *x = xprt(l, st);
    if (x->close)
        x->close(l, st);
}

size_t stream_export_size(const struct stream_loop *l, const struct stream *st)
{
    const struct transport_ops *x = xprt(l, st);
    return x->export_size ? x->export_size(l, st) : 0;
}

void stream_export(const struct stream_loop *l, struct stream *st, uint8_t *to)
{
    const struct transport_ops *x = xprt(l, st);
    if (x->export_state)
        x->export_state(l, st, to);
}

int stream_import(struct stream_loop *l, struct stream *st, const uint8_t *from, size_t len)
{
    const struct transport_ops *x = xprt(l, st);
    if (!x->import_state)
        return len ? -EINVAL : 0;
    return x->import_state(l, st, from, len);
}

int stream_resume(struct stream_loop *l, struct stream *st)
{
    const struct transport_ops *x = xprt(l, st);
    if (!x->input || st->shut)
        return 0;
    int rc = x->input(l, st, NULL, 0);
    return rc < 0 && (rc == -EAGAIN || rc == -ENOBUFS || rc == -ECANCELED) ? -EPROTO : rc;
}

const char *stream_xprt_name(const struct stream_loop *l, const struct stream *st)
{
    return xprt(l, st)->name;
}

const struct xprt_info *stream_info(const struct stream_loop *l, struct stream *st)
{
    const struct transport_ops *x = xprt(l, st);
    const struct xprt_info *own = x->info ? x->info(l, st) : NULL;
    return own ? own : stream_proxy_info(l, st);
}

void stream_info_done(struct stream_loop *l, struct stream *st)
{
    if (st->proxy_hold && !st->proxy_wait)
        stream_proxy_release(l, st);
}

uint32_t stream_opening(const struct stream_loop *l, struct stream *st, bool *open)
{
    const struct transport_ops *x = xprt(l, st);
    *open = true;
    return x->opening ? x->opening(l, st, open) : 0;
}
