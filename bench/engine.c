/*
 * engine: one ringmq-bench worker thread: its io_uring, its connections (as
 * direct descriptors), the MQTT client state machine, publishing on schedule
 * and receiving with latency and sequence accounting.
 *
 * Runs on the worker's own thread and touches only its own struct worker and
 * the read-only run (plus the run's phase). It never blocks except in
 * io_uring_submit_and_wait_timeout, and never formats on the message path.
 *
 * Techniques: sockets are created with socket(2), bound to a loopback source
 * address with IP_BIND_ADDRESS_NO_PORT, registered into the ring's sparse
 * fixed-file table with io_uring_register_files_update and closed again, so
 * the process file table never holds more than a batch; connect, send and a
 * multishot recv with a provided-buffer ring then run on the fixed file.
 * Everything queued for one connection in a loop turn goes out in one send.
 * With --tls or --ws, xport.c turns the MQTT bytes of that send into TLS
 * records and/or WebSocket frames (and back on receipt) in memory, so
 * every transport runs in this same loop with the same accounting.
 *
 * user_data layout: bits 32..39 the operation (enum op), bits 0..31 the
 * connection's index in this worker (which is also its fixed-file slot).
 */
#include "bench.h"
#include "stamp.h"
#include "xport.h"

#include "core/log.h"
#include "mqtt/codec.h"
#include "mqtt/props.h"
#include "net/uring.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RING_ENTRIES    4096
#define BUF_COUNT       2048
#define BUF_SIZE        16384
#define OPEN_BATCH      64
#define MAX_OPENING     512 /* connections between socket() and CONNACK, per worker */
#define MAX_WAIT_NS     5000000ull
#define STOP_WAIT_NS    1000000000ull
#define PID_BITMAP_SIZE (65536 / 64)

enum op {
    OP_CONNECT = 1,
    OP_RECV,
    OP_SEND,
    OP_CLOSE,
    OP_SHUT,
};

static uint64_t ud_make(enum op op, uint32_t idx)
{
    return (uint64_t)op << 32 | idx;
}

static enum op ud_op(uint64_t ud)
{
    return (enum op)(ud >> 32);
}

static uint32_t ud_idx(uint64_t ud)
{
    return (uint32_t)ud;
}

enum role {
    ROLE_IDLE = 0, /* conn scenario */
    ROLE_PUB,
    ROLE_SUB,
    ROLE_HS, /* handshake scenario: connect, CONNACK, close, again */
};

enum cstate {
    CS_NEW = 0, /* not opened yet */
    CS_TCP,     /* connect submitted */
    CS_CONNACK, /* CONNECT sent, waiting for CONNACK */
    CS_SUBACK,  /* SUBSCRIBE sent */
    CS_READY,   /* usable */
    CS_DEAD,    /* failed or closed */
};

/*
 * One client connection. Invariants: `tx` is owned by the kernel while
 * send_busy (nothing writes it); new output goes to `out` and moves to `tx`
 * only when no send is in flight; `rx` holds a partial packet only (it is
 * empty between packets and freed when a connection is idle). With a
 * transport (x), `out` holds MQTT bytes until the transport is ready and
 * flush seals them into x->wire, which then takes `out`'s place.
 */
struct bconn {
    uint32_t gid; /* publisher, subscriber or idle connection number */
    uint8_t role, state, qos;
    bool send_busy, dirty, recv_armed;
    bool recycle, close_done; /* handshake scenario: open again once closed */
    uint16_t next_pid;
    uint16_t recv_max; /* the server's Receive Maximum (v5 CONNACK), 65535 otherwise */
    uint32_t inflight;
    uint64_t t_open, last_tx;
    struct xbuf out, tx;
    struct xconn *x; /* TLS / WebSocket state, NULL for plain TCP */
    uint32_t tx_off;
    uint8_t *rx;
    uint32_t rx_len, rx_cap;
    /* publisher */
    uint32_t seq;
    uint64_t written_off; /* deliveries given up on (see window_full) */
    uint64_t stall_mark;  /* delivered count when the window was first seen full */
    uint64_t stall_since;
    uint64_t *pids; /* QoS 1/2: packet ids in flight; QoS 2: then PUBREC seen */
    uint64_t *rel;
    char *topic;
    uint16_t topic_len;
    /* subscriber: one tracker per publisher it expects (p2p: one) */
    struct seqtrack *tr;
};

struct engine {
    struct io_uring ring;
    struct bufring br;
    uint32_t *dirty;
    uint32_t ndirty;
    uint32_t next_open, opening, opened;
    uint64_t open_start;
    uint32_t npubs_here;
    uint8_t *filler;
    uint64_t next_ping_scan;
    bool stopping;
    uint64_t stop_deadline;
    /* Deliveries counted here and not yet added to run->delivered. */
    uint32_t *credit;
    uint32_t *credit_touched;
    uint32_t ncredit_touched;
};

uint64_t bench_now(const struct run *r)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec - r->epoch;
}

static uint8_t qos_of_pub(const struct bench_opts *o, uint32_t p)
{
    return o->qos[p % o->nqos];
}

/* QoS a subscriber receives publisher p's messages with. */
static uint8_t delivered_qos(const struct bench_opts *o, uint32_t p)
{
    uint8_t q = qos_of_pub(o, p);
    return q < o->sub_qos ? q : o->sub_qos;
}

/* ---- output ---------------------------------------------------------------- */

static struct io_uring_sqe *get_sqe(struct engine *e)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);
    if (!sqe) {
        io_uring_submit(&e->ring);
        sqe = io_uring_get_sqe(&e->ring);
    }
    return sqe; /* never NULL after a submit emptied the SQ */
}

static void mark_dirty(struct engine *e, struct worker *w, struct bconn *c)
{
    if (!c->dirty) {
        c->dirty = true;
        e->dirty[e->ndirty++] = (uint32_t)(c - w->conns);
    }
}

/* Room for n more bytes in c->out; NULL when out of memory. */
static uint8_t *out_reserve(struct bconn *c, size_t n)
{
    return xbuf_reserve(&c->out, n);
}

static void conn_kill(struct engine *e, struct worker *w, struct bconn *c, uint64_t *counter)
{
    if (c->state == CS_DEAD)
        return;
    if (c->state == CS_TCP || c->state == CS_CONNACK || c->state == CS_SUBACK)
        e->opening--;
    c->state = CS_DEAD;
    if (counter)
        (*counter)++;
    /* Shut the socket down first: that ends its multishot recv, which holds
     * the file and would otherwise keep the connection open. */
    struct io_uring_sqe *sqe = get_sqe(e);
    io_uring_prep_shutdown(sqe, (int)(c - w->conns), SHUT_RDWR);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_LINK;
    io_uring_sqe_set_data64(sqe, ud_make(OP_SHUT, (uint32_t)(c - w->conns)));
    c->close_done = false;
    sqe = get_sqe(e);
    io_uring_prep_close_direct(sqe, (unsigned)(c - w->conns));
    io_uring_sqe_set_data64(sqe, ud_make(OP_CLOSE, (uint32_t)(c - w->conns)));
    free(c->rx);
    c->rx = NULL;
    c->rx_len = c->rx_cap = 0;
}

static void queue_ack(struct engine *e, struct worker *w, struct bconn *c, uint8_t type,
                      uint16_t pid)
{
    uint8_t *p = out_reserve(c, 5);
    if (!p) {
        conn_kill(e, w, c, &w->st.proto_err);
        return;
    }
    c->out.len += (uint32_t)mqtt_ack_encode(p, type, w->run->o->version, pid, MQTT_RC_SUCCESS);
    mark_dirty(e, w, c);
}

static void queue_simple(struct engine *e, struct worker *w, struct bconn *c, uint8_t type)
{
    uint8_t *p = out_reserve(c, 4);
    if (!p)
        return;
    c->out.len += (uint32_t)mqtt_simple_encode(p, type, w->run->o->version, 0);
    mark_dirty(e, w, c);
}

/* The transport's bytes for the socket, with what is queued in c->out
 * sealed into them once the transport is ready; NULL after a failure. */
static struct xbuf *seal(struct engine *e, struct worker *w, struct bconn *c)
{
    if (c->out.len && xport_ready(c->x)) {
        if (xport_seal(w->run->xp, c->x, c->out.p, c->out.len) != 0) {
            conn_kill(e, w, c, &w->st.proto_err);
            return NULL;
        }
        c->out.len = 0;
    }
    return &c->x->wire;
}

static void flush(struct engine *e, struct worker *w, uint64_t now)
{
    for (uint32_t i = 0; i < e->ndirty; i++) {
        struct bconn *c = &w->conns[e->dirty[i]];
        c->dirty = false;
        if (c->send_busy || c->state == CS_DEAD || c->state == CS_NEW || c->state == CS_TCP)
            continue;
        struct xbuf *src = c->x ? seal(e, w, c) : &c->out;
        if (!src || src->len == 0)
            continue;
        struct xbuf t = c->tx;
        c->tx = *src;
        *src = t;
        src->len = 0;
        c->tx_off = 0;
        c->send_busy = true;
        c->last_tx = now;
        struct io_uring_sqe *sqe = get_sqe(e);
        io_uring_prep_send(sqe, (int)e->dirty[i], c->tx.p, c->tx.len, MSG_NOSIGNAL);
        sqe->flags |= IOSQE_FIXED_FILE;
        io_uring_sqe_set_data64(sqe, ud_make(OP_SEND, e->dirty[i]));
    }
    e->ndirty = 0;
}

static void arm_recv(struct engine *e, struct worker *w, struct bconn *c)
{
    uint32_t idx = (uint32_t)(c - w->conns);
    struct io_uring_sqe *sqe = get_sqe(e);
    io_uring_prep_recv_multishot(sqe, (int)idx, NULL, 0, 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = e->br.bgid;
    io_uring_sqe_set_data64(sqe, ud_make(OP_RECV, idx));
    c->recv_armed = true;
}

/* ---- opening connections ------------------------------------------------------ */

static void client_id(const struct worker *w, const struct bconn *c, char *buf, size_t cap)
{
    static const char role_ch[] = {'c', 'p', 's', 'h'}; /* by enum role */
    snprintf(buf, cap, "%s-%c%u", w->run->o->id_prefix, role_ch[c->role], c->gid);
}

static void queue_connect(struct engine *e, struct worker *w, struct bconn *c)
{
    const struct bench_opts *o = w->run->o;
    char id[96];
    client_id(w, c, id, sizeof(id));
    struct mqtt_connect_opts co = {
        .version = o->version,
        .clean_start = o->clean,
        .keepalive = o->keepalive,
        .client_id = {(const uint8_t *)id, strlen(id)},
    };
    if (o->username) {
        co.has_username = true;
        co.username = (struct mqtt_bytes){(const uint8_t *)o->username, strlen(o->username)};
    }
    if (o->password) {
        co.has_password = true;
        co.password = (struct mqtt_bytes){(const uint8_t *)o->password, strlen(o->password)};
    }
    size_t n = mqtt_connect_size(&co);
    uint8_t *p = n ? out_reserve(c, n) : NULL;
    if (!p) {
        conn_kill(e, w, c, &w->st.conn_failed);
        return;
    }
    c->out.len += (uint32_t)mqtt_connect_encode(p, &co);
    mark_dirty(e, w, c);
}

/* socket(), options, source address. Returns the fd or -errno. */
static int make_socket(const struct run *r, uint32_t gidx)
{
    int fd = socket(r->target.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    /* Our sends are batched per loop turn: Nagle would only add delay. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (r->bind_sources) {
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl((127u << 24) | (2u + gidx % r->sources));
        /* Let connect() pick the port by the whole 4-tuple: a port chosen at
         * bind time must be free for every peer, a search that crawls once
         * tens of thousands of ports are taken. */
        if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
            int err = -errno;
            close(fd);
            return err;
        }
    }
    return fd;
}

static void open_more(struct engine *e, struct worker *w, uint64_t now)
{
    const struct run *r = w->run;
    if (e->next_open >= w->nconns)
        return;
    uint64_t allowed = UINT64_MAX;
    if (r->o->conn_rate > 0) {
        double per_worker = r->o->conn_rate / r->o->threads;
        uint64_t due = (uint64_t)((double)(now - e->open_start) / 1e9 * per_worker) + 1;
        allowed = due > e->opened ? due - e->opened : 0;
    }
    while (allowed > 0 && e->next_open < w->nconns && e->opening < MAX_OPENING) {
        uint32_t n = w->nconns - e->next_open;
        if (n > OPEN_BATCH)
            n = OPEN_BATCH;
        if (n > MAX_OPENING - e->opening)
            n = MAX_OPENING - e->opening;
        if (n > allowed)
            n = (uint32_t)allowed;
        int fds[OPEN_BATCH];
        uint32_t first = e->next_open;
        for (uint32_t i = 0; i < n; i++) {
            struct bconn *c = &w->conns[first + i];
            fds[i] = make_socket(r, c->gid + (c->role == ROLE_SUB ? r->npub : 0));
            c->t_open = now;
        }
        /* -1 leaves a slot empty: a socket that failed is not registered. */
        int fdsreg[OPEN_BATCH];
        for (uint32_t i = 0; i < n; i++)
            fdsreg[i] = fds[i] >= 0 ? fds[i] : -1;
        int ret = io_uring_register_files_update(&e->ring, first, fdsreg, n);
        for (uint32_t i = 0; i < n; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        for (uint32_t i = 0; i < n; i++) {
            struct bconn *c = &w->conns[first + i];
            e->opened++;
            if (fds[i] < 0 || ret < 0) {
                c->state = CS_DEAD;
                w->st.conn_failed++;
                continue;
            }
            c->state = CS_TCP;
            e->opening++;
            struct io_uring_sqe *sqe = get_sqe(e);
            io_uring_prep_connect(sqe, (int)(first + i), (struct sockaddr *)&r->target,
                                  r->target_len);
            sqe->flags |= IOSQE_FIXED_FILE;
            io_uring_sqe_set_data64(sqe, ud_make(OP_CONNECT, first + i));
        }
        e->next_open += n;
        allowed -= n;
    }
    /* connect() reads the address while the SQE is submitted: submit now. */
    io_uring_submit(&e->ring);
}

static void queue_subscribe(struct engine *e, struct worker *w, struct bconn *c)
{
    const struct bench_opts *o = w->run->o;
    char filter[512];
    int n;
    if (o->scenario == SC_P2P)
        n = snprintf(filter, sizeof(filter), "%s/%u", o->prefix, c->gid);
    else if (o->scenario == SC_FANOUT)
        n = snprintf(filter, sizeof(filter), "%s/all", o->prefix);
    else if (o->shared)
        n = snprintf(filter, sizeof(filter), "$share/%s/%s/+", o->group, o->prefix);
    else
        n = snprintf(filter, sizeof(filter), "%s/+", o->prefix);
    struct mqtt_bytes f = {(const uint8_t *)filter, (size_t)n};
    uint8_t opt = o->sub_qos;
    size_t sz = mqtt_subscribe_size(o->version, &f, 1, false);
    uint8_t *p = sz ? out_reserve(c, sz) : NULL;
    if (!p) {
        conn_kill(e, w, c, &w->st.proto_err);
        return;
    }
    c->out.len += (uint32_t)mqtt_subscribe_encode(p, o->version, 1, &f, &opt, 1, false);
    mark_dirty(e, w, c);
    c->state = CS_SUBACK;
}

static void conn_up(struct engine *e, struct worker *w, struct bconn *c, uint64_t now)
{
    const struct run *r = w->run;
    c->state = CS_READY;
    e->opening--;
    if (w->st.first_up_ns == 0)
        w->st.first_up_ns = now;
    w->st.last_up_ns = now;
    /* The handshake scenario counts connections that came up (TLS
     * handshake, then CONNACK) inside the measurement window. */
    if (c->role == ROLE_HS && now >= r->t_measure && now < r->t_end &&
        atomic_load_explicit(&r->phase, memory_order_relaxed) == PH_RUN) {
        w->st.handshakes++;
        if (c->x && c->x->resumed)
            w->st.resumed++;
    }
}

/* ---- input ------------------------------------------------------------------ */

static void on_publish(struct engine *e, struct worker *w, struct bconn *c,
                       const struct mqtt_frame *f, const uint8_t *body, uint64_t now)
{
    const struct run *r = w->run;
    const struct bench_opts *o = r->o;
    struct mqtt_publish pb;
    if (mqtt_publish_decode(f->flags, body, f->body_len, o->version, &pb) != MQTT_OK) {
        conn_kill(e, w, c, &w->st.proto_err);
        return;
    }
    if (pb.qos == 1)
        queue_ack(e, w, c, MQTT_PUBACK, pb.packet_id);
    else if (pb.qos == 2)
        queue_ack(e, w, c, MQTT_PUBREC, pb.packet_id);
    w->st.recv_all++;
    struct stamp s;
    if (c->role != ROLE_SUB || stamp_decode(pb.payload.p, pb.payload.len, r->tag, &s) != 0 ||
        s.publisher >= r->npub) {
        w->st.foreign++;
        return;
    }
    struct seqtrack *t;
    if (o->scenario == SC_P2P) {
        if (s.publisher != c->gid) {
            w->st.foreign++;
            return;
        }
        t = &c->tr[0];
    } else {
        t = &c->tr[s.publisher];
    }
    uint8_t dq = delivered_qos(o, s.publisher);
    if (pb.qos != dq)
        w->st.wrong_qos++;
    enum seq_result res = seqtrack_add(t, s.seq);
    if (res == SEQ_NEW || res == SEQ_OOO) {
        if (e->credit[s.publisher]++ == 0)
            e->credit_touched[e->ncredit_touched++] = s.publisher;
    }
    if (s.sent_ns < r->t_measure || s.sent_ns >= r->t_end)
        return;
    switch (res) {
    case SEQ_OOO:
        w->st.ooo[dq]++;
        /* fall through */
    case SEQ_NEW:
        w->st.recv[dq]++;
        hist_record(&w->st.lat, now > s.sent_ns ? now - s.sent_ns : 0);
        if (r->interval_ns) {
            uint64_t t0 = r->t_start + (uint64_t)s.publisher * r->interval_ns / r->npub;
            uint64_t intended = t0 + (uint64_t)s.seq * r->interval_ns;
            hist_record(&w->st.lat_co, now > intended ? now - intended : 0);
        }
        break;
    case SEQ_DUP:
        w->st.dup[dq]++;
        break;
    case SEQ_OLD:
        w->st.old[dq]++;
        break;
    }
}

static bool pid_test(const uint64_t *bm, uint16_t pid)
{
    return (bm[pid / 64] >> (pid % 64)) & 1;
}

static void pid_set(uint64_t *bm, uint16_t pid, bool on)
{
    if (on)
        bm[pid / 64] |= 1ull << (pid % 64);
    else
        bm[pid / 64] &= ~(1ull << (pid % 64));
}

static void on_pub_ack(struct engine *e, struct worker *w, struct bconn *c,
                       const struct mqtt_frame *f, const uint8_t *body)
{
    struct mqtt_ack a;
    if (mqtt_ack_decode(f->type, f->flags, body, f->body_len, w->run->o->version, &a) != MQTT_OK) {
        conn_kill(e, w, c, &w->st.proto_err);
        return;
    }
    if (a.reason >= 0x80)
        w->st.ack_err++;
    switch (f->type) {
    case MQTT_PUBACK:
    case MQTT_PUBCOMP:
        if (c->role != ROLE_PUB || !c->pids || !pid_test(c->pids, a.packet_id) ||
            (c->qos == 2) != (f->type == MQTT_PUBCOMP) ||
            (c->qos == 2 && !pid_test(c->rel, a.packet_id))) {
            w->st.ack_err++;
            return;
        }
        pid_set(c->pids, a.packet_id, false);
        if (c->rel)
            pid_set(c->rel, a.packet_id, false);
        c->inflight--;
        break;
    case MQTT_PUBREC:
        if (c->role != ROLE_PUB || c->qos != 2 || !pid_test(c->pids, a.packet_id)) {
            w->st.ack_err++;
            return;
        }
        pid_set(c->rel, a.packet_id, true);
        queue_ack(e, w, c, MQTT_PUBREL, a.packet_id);
        break;
    case MQTT_PUBREL:
        queue_ack(e, w, c, MQTT_PUBCOMP, a.packet_id);
        break;
    }
}

static void on_packet(struct engine *e, struct worker *w, struct bconn *c,
                      const struct mqtt_frame *f, const uint8_t *body, uint64_t now)
{
    uint8_t v = w->run->o->version;
    switch (f->type) {
    case MQTT_PUBLISH:
        on_publish(e, w, c, f, body, now);
        return;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        on_pub_ack(e, w, c, f, body);
        return;
    case MQTT_CONNACK: {
        struct mqtt_connack ca;
        if (c->state != CS_CONNACK || !mqtt_frame_flags_valid(f->type, f->flags) ||
            mqtt_connack_decode(body, f->body_len, v, &ca) != MQTT_OK) {
            conn_kill(e, w, c, &w->st.proto_err);
            return;
        }
        if (ca.code != 0) {
            conn_kill(e, w, c, &w->st.refused);
            return;
        }
        c->recv_max = 65535;
        if (v == MQTT_V5) {
            struct mqtt_props pr;
            if (mqtt_props_decode(MQTT_CONNACK, ca.props.p, ca.props.len, &pr) != MQTT_OK) {
                conn_kill(e, w, c, &w->st.proto_err);
                return;
            }
            if (mqtt_props_has(&pr, MQTT_PROP_RECEIVE_MAXIMUM))
                c->recv_max = pr.receive_maximum;
        }
        hist_record(&w->st.connack, now - c->t_open);
        w->st.conns_up++;
        if (c->role == ROLE_SUB)
            queue_subscribe(e, w, c);
        else
            conn_up(e, w, c, now);
        return;
    }
    case MQTT_SUBACK: {
        struct mqtt_suback sa;
        if (c->state != CS_SUBACK || !mqtt_frame_flags_valid(f->type, f->flags) ||
            mqtt_suback_decode(f->type, body, f->body_len, v, &sa) != MQTT_OK ||
            sa.codes.len != 1) {
            conn_kill(e, w, c, &w->st.proto_err);
            return;
        }
        if (sa.codes.p[0] >= 0x80) {
            conn_kill(e, w, c, &w->st.refused);
            return;
        }
        conn_up(e, w, c, now);
        return;
    }
    case MQTT_PINGRESP:
        return;
    default:
        /* DISCONNECT from a v5 server, or anything a client must not get. */
        conn_kill(e, w, c, f->type == MQTT_DISCONNECT ? &w->st.closed : &w->st.proto_err);
        return;
    }
}

/* Parse whole packets from data; keep a partial one in c->rx. */
static void mqtt_input(struct engine *e, struct worker *w, struct bconn *c, const uint8_t *data,
                       size_t n, uint64_t now)
{
    if (c->rx_len) {
        if (c->rx_len + n > c->rx_cap) {
            size_t cap = c->rx_cap * 2;
            while (cap < c->rx_len + n)
                cap *= 2;
            uint8_t *p = realloc(c->rx, cap);
            if (!p) {
                conn_kill(e, w, c, &w->st.proto_err);
                return;
            }
            c->rx = p;
            c->rx_cap = (uint32_t)cap;
        }
        memcpy(c->rx + c->rx_len, data, n);
        c->rx_len += (uint32_t)n;
        data = c->rx;
        n = c->rx_len;
    }
    size_t off = 0;
    while (off < n && c->state != CS_DEAD) {
        struct mqtt_frame f;
        int rc = mqtt_frame_decode(data + off, n - off, 0, &f);
        if (rc == MQTT_INCOMPLETE || (rc == MQTT_OK && f.total_len > n - off))
            break;
        if (rc != MQTT_OK) {
            conn_kill(e, w, c, &w->st.proto_err);
            return;
        }
        on_packet(e, w, c, &f, data + off + f.header_len, now);
        off += f.total_len;
    }
    if (c->state == CS_DEAD)
        return;
    size_t left = n - off;
    if (left == 0) {
        c->rx_len = 0;
        return;
    }
    if (data == c->rx) {
        memmove(c->rx, c->rx + off, left);
    } else {
        if (left > c->rx_cap) {
            size_t cap = 256;
            while (cap < left)
                cap *= 2;
            uint8_t *p = realloc(c->rx, cap);
            if (!p) {
                conn_kill(e, w, c, &w->st.proto_err);
                return;
            }
            c->rx = p;
            c->rx_cap = (uint32_t)cap;
        }
        memcpy(c->rx, data + off, left);
    }
    c->rx_len = (uint32_t)left;
}

struct input_ctx {
    struct engine *e;
    struct worker *w;
    struct bconn *c;
    uint64_t now;
};

static void on_plain(void *arg, const uint8_t *p, size_t n)
{
    struct input_ctx *in = arg;
    if (in->c->state != CS_DEAD)
        mqtt_input(in->e, in->w, in->c, p, n, in->now);
}

/* Bytes from the socket, through the transport when there is one. A
 * connection that dies here keeps its transport state until it is reset
 * (xport_reset) after the transport returned: wolfSSL is still in use. */
static void conn_input(struct engine *e, struct worker *w, struct bconn *c, const uint8_t *data,
                       size_t n, uint64_t now)
{
    if (!c->x) {
        mqtt_input(e, w, c, data, n, now);
        return;
    }
    struct input_ctx in = {e, w, c, now};
    bool was_ready = xport_ready(c->x);
    int rc = xport_input(w->run->xp, c->x, data, n, on_plain, &in);
    if (rc < 0 && c->state != CS_DEAD)
        conn_kill(e, w, c,
                  e->stopping         ? NULL
                  : rc == -ECONNRESET ? &w->st.closed
                                      : &w->st.proto_err);
    if (c->state == CS_DEAD)
        return;
    /* Handshake bytes to send, or MQTT bytes that waited for the handshake. */
    if (c->x->wire.len || (!was_ready && xport_ready(c->x)))
        mark_dirty(e, w, c);
}

/* Handshake scenario: a closed connection is opened again once every
 * operation of its previous life has completed (a late completion would
 * otherwise be taken for the new one's). */
static void maybe_reopen(struct engine *e, struct worker *w, struct bconn *c, uint64_t now)
{
    if (c->state != CS_DEAD || !c->recycle || !c->close_done || c->send_busy || c->recv_armed ||
        e->stopping || atomic_load_explicit(&w->run->phase, memory_order_relaxed) != PH_RUN)
        return;
    c->recycle = false;
    if (c->x)
        xport_reset(w->run->xp, c->x);
    c->out.len = c->tx.len = 0;
    c->rx_len = 0;
    uint32_t idx = (uint32_t)(c - w->conns);
    int fd = make_socket(w->run, c->gid);
    int ret = fd >= 0 ? io_uring_register_files_update(&e->ring, idx, &fd, 1) : fd;
    if (fd >= 0)
        close(fd);
    c->t_open = now;
    if (ret < 0) {
        w->st.conn_failed++;
        return;
    }
    c->state = CS_TCP;
    e->opening++;
    struct io_uring_sqe *sqe = get_sqe(e);
    io_uring_prep_connect(sqe, (int)idx, (struct sockaddr *)&w->run->target, w->run->target_len);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, ud_make(OP_CONNECT, idx));
}

/* Handshake scenario, while running: close every connection that is up
 * (it counted at its CONNACK) so that it opens again. */
static void handshake_cycle(struct engine *e, struct worker *w)
{
    for (uint32_t i = 0; i < w->nconns; i++) {
        struct bconn *c = &w->conns[i];
        if (c->role == ROLE_HS && c->state == CS_READY) {
            c->recycle = true;
            conn_kill(e, w, c, NULL);
        }
    }
}

/* ---- completions ---------------------------------------------------------------- */

static void on_recv(struct engine *e, struct worker *w, struct bconn *c,
                    const struct io_uring_cqe *cqe, uint64_t now)
{
    int res = cqe->res;
    if (res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
        uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        if (c->state != CS_DEAD)
            conn_input(e, w, c, bufring_buf(&e->br, bid), (size_t)res, now);
        bufring_recycle(&e->br, bid);
    }
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        c->recv_armed = false;
        if (c->state == CS_DEAD) {
            maybe_reopen(e, w, c, now);
            return;
        }
        if (res > 0 || res == -ENOBUFS)
            arm_recv(e, w, c);
        else if (!e->stopping)
            conn_kill(e, w, c, &w->st.closed);
        else
            conn_kill(e, w, c, NULL);
    }
}

static void on_send(struct engine *e, struct worker *w, struct bconn *c, int res)
{
    uint32_t idx = (uint32_t)(c - w->conns);
    if (res < 0) {
        c->send_busy = false;
        conn_kill(e, w, c, e->stopping ? NULL : &w->st.closed);
        return;
    }
    c->tx_off += (uint32_t)res;
    if (c->tx_off < c->tx.len && c->state != CS_DEAD) {
        struct io_uring_sqe *sqe = get_sqe(e);
        io_uring_prep_send(sqe, (int)idx, c->tx.p + c->tx_off, c->tx.len - c->tx_off, MSG_NOSIGNAL);
        sqe->flags |= IOSQE_FIXED_FILE;
        io_uring_sqe_set_data64(sqe, ud_make(OP_SEND, idx));
        return;
    }
    c->send_busy = false;
    c->tx.len = 0;
    if (c->out.len || (c->x && c->x->wire.len))
        mark_dirty(e, w, c);
    else if (c->role == ROLE_IDLE) {
        /* An idle connection holds no buffers. */
        xbuf_fini(&c->tx);
        xbuf_fini(&c->out);
        if (c->x)
            xbuf_fini(&c->x->wire);
    }
}

static void on_cqe(struct engine *e, struct worker *w, const struct io_uring_cqe *cqe, uint64_t now)
{
    uint32_t idx = ud_idx(cqe->user_data);
    struct bconn *c = &w->conns[idx];
    int res = cqe->res;
    switch (ud_op(cqe->user_data)) {
    case OP_CONNECT:
        if (c->state != CS_TCP)
            return;
        if (res < 0) {
            conn_kill(e, w, c, &w->st.conn_failed);
            return;
        }
        c->state = CS_CONNACK;
        queue_connect(e, w, c);
        if (c->x && xport_start(w->run->xp, c->x, c->gid * 2654435761u + (uint32_t)now) != 0) {
            conn_kill(e, w, c, &w->st.conn_failed);
            return;
        }
        arm_recv(e, w, c);
        return;
    case OP_RECV:
        on_recv(e, w, c, cqe, now);
        return;
    case OP_SEND:
        on_send(e, w, c, res);
        maybe_reopen(e, w, c, now);
        return;
    case OP_CLOSE:
        c->close_done = true;
        maybe_reopen(e, w, c, now);
        return;
    case OP_SHUT:
        return;
    }
}

/* ---- publishing ------------------------------------------------------------------ */

static bool publish_one(struct engine *e, struct worker *w, struct bconn *c, uint64_t now)
{
    const struct run *r = w->run;
    const struct bench_opts *o = r->o;
    uint16_t pid = 0;
    if (c->qos) {
        /* MQTT-3.3.4-9: never more unacknowledged QoS 1/2 PUBLISH than the
         * server's Receive Maximum; a broker announcing a smaller one than
         * the window refused the excess (or closed the connection), which
         * was then measured as the broker's loss or latency. */
        if (c->inflight >= o->window || c->inflight >= c->recv_max)
            return false;
        do {
            c->next_pid++;
            if (c->next_pid == 0)
                c->next_pid = 1;
        } while (pid_test(c->pids, c->next_pid));
        pid = c->next_pid;
    }
    size_t n = mqtt_publish_size(o->version, c->topic_len, o->payload, c->qos);
    uint8_t *p = out_reserve(c, n);
    if (!p)
        return false;
    size_t len = mqtt_publish_encode(p, o->version, c->qos, false, false, (const uint8_t *)c->topic,
                                     c->topic_len, pid, e->filler, o->payload);
    struct stamp s = {.run = r->tag, .sent_ns = now, .publisher = c->gid, .seq = c->seq};
    stamp_encode(p + len - o->payload, o->payload, &s);
    c->out.len += (uint32_t)len;
    if (c->qos) {
        pid_set(c->pids, pid, true);
        c->inflight++;
    }
    c->seq++;
    w->st.sent_all++;
    if (now >= r->t_measure && now < r->t_end)
        w->st.sent[delivered_qos(o, c->gid)]++;
    mark_dirty(e, w, c);
    return true;
}

/* Hand this turn's deliveries to the publishers' counters: one atomic add
 * per publisher per loop turn, not one per message. */
static void credit_flush(struct engine *e, struct worker *w)
{
    for (uint32_t i = 0; i < e->ncredit_touched; i++) {
        uint32_t p = e->credit_touched[i];
        atomic_fetch_add_explicit(&w->run->delivered[p], e->credit[p], memory_order_relaxed);
        e->credit[p] = 0;
    }
    e->ncredit_touched = 0;
}

/*
 * Unlimited runs: true when `window` messages of this publisher are between
 * its send and their last receipt. A message that never arrives (QoS 0
 * dropped by the broker) would hold its place for ever: when nothing has
 * been delivered for STALL_NS while full, the missing deliveries are written
 * off (and counted) so the run goes on; the loss is reported anyway.
 */
#define STALL_NS 500000000ull
static bool window_full(struct worker *w, struct bconn *c, uint64_t now)
{
    const struct run *r = w->run;
    uint64_t delivered =
        atomic_load_explicit(&r->delivered[c->gid], memory_order_relaxed) + c->written_off;
    uint64_t owed = (uint64_t)c->seq * r->fan;
    if (owed < delivered + (uint64_t)r->o->window * r->fan) {
        c->stall_since = 0;
        return false;
    }
    if (c->stall_since == 0 || delivered != c->stall_mark) {
        c->stall_since = now;
        c->stall_mark = delivered;
        return true;
    }
    if (now - c->stall_since < STALL_NS)
        return true;
    c->written_off += owed - delivered;
    w->st.written_off += owed - delivered;
    c->stall_since = 0;
    return false;
}

/* Produce what is due; returns the earliest time something more is due
 * (UINT64_MAX when only a completion can unblock it). */
static uint64_t publish_due(struct engine *e, struct worker *w, uint64_t now)
{
    const struct run *r = w->run;
    const struct bench_opts *o = r->o;
    uint64_t next = UINT64_MAX;
    if (now < r->t_start)
        return r->t_start;
    for (uint32_t i = 0; i < w->nconns; i++) {
        struct bconn *c = &w->conns[i];
        if (c->role != ROLE_PUB || c->state != CS_READY)
            continue;
        uint32_t budget = o->window;
        if (r->interval_ns == 0) {
            /* Unlimited: QoS 0 refills once the previous batch is on its way;
             * QoS 1/2 keep `window` unacknowledged. */
            if (c->qos == 0 && c->out.len)
                continue;
            while (budget-- && (!o->count || c->seq < o->count) && !window_full(w, c, now) &&
                   publish_one(e, w, c, now))
                ;
            if (c->stall_since)
                next = now + 1000000; /* look at the stall again in 1 ms */
            continue;
        }
        /* Publishers are spread evenly over one interval. */
        uint64_t t0 = r->t_start + (uint64_t)c->gid * r->interval_ns / r->npub;
        uint64_t due = t0 + (uint64_t)c->seq * r->interval_ns;
        while (due <= now && budget-- && (!o->count || c->seq < o->count) &&
               publish_one(e, w, c, now))
            due += r->interval_ns;
        if (due < next && (!o->count || c->seq < o->count))
            next = due;
    }
    return next;
}

/* ---- set-up --------------------------------------------------------------------- */

static int setup(struct engine *e, struct worker *w)
{
    const struct run *r = w->run;
    const struct bench_opts *o = r->o;
    int ret = uring_init(&e->ring, RING_ENTRIES, w->nconns + 1, &w->ring_mode);
    if (ret < 0)
        return ret;
    ret = bufring_init(&e->br, &e->ring, 0, BUF_COUNT, BUF_SIZE);
    if (ret < 0)
        return ret;
    e->dirty = calloc(w->nconns + 1, sizeof(*e->dirty));
    e->filler = malloc(o->payload + 1);
    e->credit = calloc(r->npub + 1, sizeof(*e->credit));
    e->credit_touched = calloc(r->npub + 1, sizeof(*e->credit_touched));
    if (!e->dirty || !e->filler || !e->credit || !e->credit_touched)
        return -ENOMEM;
    memset(e->filler, 'x', o->payload);
    for (uint32_t i = 0; i < w->nconns; i++) {
        struct bconn *c = &w->conns[i];
        if (r->xp && !(c->x = calloc(1, sizeof(*c->x))))
            return -ENOMEM;
        if (c->role == ROLE_PUB) {
            c->qos = qos_of_pub(o, c->gid);
            char topic[512];
            int n = o->scenario == SC_FANOUT
                        ? snprintf(topic, sizeof(topic), "%s/all", o->prefix)
                        : snprintf(topic, sizeof(topic), "%s/%u", o->prefix, c->gid);
            c->topic = strdup(topic);
            c->topic_len = (uint16_t)n;
            if (c->qos) {
                c->pids = calloc(PID_BITMAP_SIZE, sizeof(uint64_t));
                if (c->qos == 2)
                    c->rel = calloc(PID_BITMAP_SIZE, sizeof(uint64_t));
                if (!c->pids || (c->qos == 2 && !c->rel))
                    return -ENOMEM;
            }
            if (!c->topic)
                return -ENOMEM;
        } else if (c->role == ROLE_SUB) {
            uint32_t ntr = o->scenario == SC_P2P ? 1 : r->npub;
            c->tr = calloc(ntr, sizeof(*c->tr));
            if (!c->tr)
                return -ENOMEM;
        }
    }
    return 0;
}

static void teardown(struct engine *e, struct worker *w)
{
    for (uint32_t i = 0; i < w->nconns; i++) {
        struct bconn *c = &w->conns[i];
        free(c->out.p);
        free(c->tx.p);
        free(c->rx);
        free(c->pids);
        free(c->rel);
        free(c->topic);
        free(c->tr);
        if (c->x)
            xport_fini(w->run->xp, c->x);
        free(c->x);
    }
    bufring_fini(&e->br, &e->ring);
    if (e->ring.ring_fd >= 0)
        io_uring_queue_exit(&e->ring);
    free(e->dirty);
    free(e->filler);
    free(e->credit);
    free(e->credit_touched);
}

/* Once a second: PINGREQ on connections that have sent nothing for half
 * the keepalive (MQTT-3.1.2-23 lets the broker close them after 1.5x). */
static void keepalive_scan(struct engine *e, struct worker *w, uint64_t now)
{
    uint64_t ka = (uint64_t)w->run->o->keepalive * 1000000000ull;
    if (ka == 0 || now < e->next_ping_scan)
        return;
    e->next_ping_scan = now + 1000000000ull;
    for (uint32_t i = 0; i < w->nconns; i++) {
        struct bconn *c = &w->conns[i];
        if (c->state == CS_READY && !c->send_busy && now - c->last_tx >= ka / 2) {
            queue_simple(e, w, c, MQTT_PINGREQ);
            c->last_tx = now;
        }
    }
}

static void publish_progress(struct worker *w)
{
    uint64_t inflight = 0, ready = 0, delivered = 0;
    for (uint32_t i = 0; i < w->nconns; i++) {
        const struct bconn *c = &w->conns[i];
        if (c->state == CS_READY) {
            ready++;
            inflight += c->inflight;
        }
    }
    for (int q = 0; q < 3; q++)
        delivered += w->st.recv[q];
    atomic_store_explicit(&w->p_sent, w->st.sent_all, memory_order_relaxed);
    atomic_store_explicit(&w->p_recv, w->st.recv_all, memory_order_relaxed);
    atomic_store_explicit(&w->p_up, ready, memory_order_relaxed);
    atomic_store_explicit(&w->p_err,
                          w->st.conn_failed + w->st.refused + w->st.closed + w->st.proto_err +
                              w->st.ack_err,
                          memory_order_relaxed);
    atomic_store_explicit(&w->p_inflight, inflight, memory_order_relaxed);
    atomic_store_explicit(&w->p_delivered, delivered, memory_order_relaxed);
}

/* Every connection is either ready or dead. */
static bool all_settled(const struct engine *e, const struct worker *w)
{
    return e->next_open >= w->nconns && e->opening == 0;
}

static void begin_stop(struct engine *e, struct worker *w, uint64_t now)
{
    e->stopping = true;
    e->stop_deadline = now + STOP_WAIT_NS;
    for (uint32_t i = 0; i < w->nconns; i++) {
        struct bconn *c = &w->conns[i];
        if (c->state == CS_READY || c->state == CS_SUBACK || c->state == CS_CONNACK)
            queue_simple(e, w, c, MQTT_DISCONNECT);
    }
}

static bool sends_pending(const struct worker *w)
{
    for (uint32_t i = 0; i < w->nconns; i++)
        if (w->conns[i].send_busy)
            return true;
    return false;
}

static void loop(struct engine *e, struct worker *w)
{
    struct run *r = w->run;
    const struct bench_opts *o = r->o;
    e->open_start = bench_now(r);
    uint64_t progress_at = 0;
    for (;;) {
        uint64_t now = bench_now(r);
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&e->ring, head, cqe)
        {
            on_cqe(e, w, cqe, now);
            seen++;
        }
        io_uring_cq_advance(&e->ring, seen);
        bufring_publish(&e->br);
        credit_flush(e, w);

        int phase = atomic_load_explicit(&r->phase, memory_order_acquire);
        uint64_t wake = now + MAX_WAIT_NS;
        if (!e->stopping && e->next_open < w->nconns) {
            open_more(e, w, now);
            if (o->conn_rate > 0)
                wake = now + 1000000; /* pace in 1 ms steps */
        }
        if (!atomic_load_explicit(&w->p_ready, memory_order_relaxed) && all_settled(e, w)) {
            publish_progress(w); /* main reads the count of ready connections next */
            atomic_store_explicit(&w->p_ready, true, memory_order_release);
        }
        if (phase == PH_RUN && !e->stopping && o->scenario == SC_HANDSHAKE)
            handshake_cycle(e, w);
        if (phase == PH_RUN && !e->stopping) {
            uint64_t next = publish_due(e, w, now);
            if (next < wake)
                wake = next;
        }
        if (phase == PH_DRAIN && !atomic_load_explicit(&w->p_drained, memory_order_relaxed)) {
            uint64_t expected = 0;
            for (int q = 0; q < 3; q++)
                expected += w->st.sent[q] * r->fan;
            atomic_store_explicit(&w->p_expected, expected, memory_order_relaxed);
            atomic_store_explicit(&w->p_drained, true, memory_order_release);
        }
        if (phase == PH_STOP && !e->stopping)
            begin_stop(e, w, now);
        keepalive_scan(e, w, now);
        flush(e, w, now);
        if (now >= progress_at || e->stopping) {
            publish_progress(w);
            progress_at = now + 50000000ull;
        }
        if (e->stopping && (!sends_pending(w) || now >= e->stop_deadline))
            break;
        uint64_t wait = wake > now ? wake - now : 0;
        struct __kernel_timespec ts = {.tv_sec = (long long)(wait / 1000000000ull),
                                       .tv_nsec = (long long)(wait % 1000000000ull)};
        if (wait == 0)
            io_uring_submit(&e->ring);
        else
            io_uring_submit_and_wait_timeout(&e->ring, &cqe, 1, &ts, NULL);
    }
}

int engine_assign(struct worker *w)
{
    const struct run *r = w->run;
    const struct bench_opts *o = r->o;
    uint64_t total = o->scenario == SC_CONN || o->scenario == SC_HANDSHAKE
                         ? o->conns
                         : (uint64_t)r->npub + r->nsub;
    unsigned t = o->threads;
    w->nconns = (uint32_t)(total / t + (w->id < total % t ? 1 : 0));
    w->conns = calloc(w->nconns ? w->nconns : 1, sizeof(*w->conns));
    if (!w->conns)
        return -ENOMEM;
    for (uint32_t j = 0; j < w->nconns; j++) {
        uint64_t k = w->id + (uint64_t)j * t; /* global connection number */
        struct bconn *c = &w->conns[j];
        if (o->scenario == SC_CONN || o->scenario == SC_HANDSHAKE) {
            c->role = o->scenario == SC_CONN ? ROLE_IDLE : ROLE_HS;
            c->gid = (uint32_t)k;
        } else if (k < r->npub) {
            c->role = ROLE_PUB;
            c->gid = (uint32_t)k;
        } else {
            c->role = ROLE_SUB;
            c->gid = (uint32_t)(k - r->npub);
        }
    }
    return 0;
}

void engine_release(struct worker *w)
{
    free(w->conns);
    w->conns = NULL;
}

void *engine_worker_main(void *arg)
{
    struct worker *w = arg;
    struct engine e;
    memset(&e, 0, sizeof(e));
    e.ring.ring_fd = -1;
    char name[32];
    snprintf(name, sizeof(name), "bench %u", w->id);
    log_set_thread_name(name);
    hist_init(&w->st.lat);
    hist_init(&w->st.lat_co);
    hist_init(&w->st.connack);
    w->rc = setup(&e, w);
    if (w->rc == 0) {
        loop(&e, w);
    } else {
        log_err("worker start-up failed: %s", strerror(-w->rc));
        atomic_store_explicit(&w->p_ready, true, memory_order_release);
    }
    teardown(&e, w);
    xport_thread_fini(w->run->xp);
    atomic_store_explicit(&w->p_done, true, memory_order_release);
    return NULL;
}
