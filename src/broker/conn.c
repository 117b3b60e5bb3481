/*
 * conn: MQTT connections over the shard's streams (net/stream.h).
 *
 * Reading: a new connection gets single-shot receives until its CONNECT is
 * handled (so that it can still move to its client id's home shard without
 * cancelling anything), then one multishot receive from the shard's
 * provided-buffer ring. Complete packets are handled straight from the
 * bytes the stream hands up (the kernel's buffer, over tcp); only a split
 * packet is copied into `rx`, which is freed as soon as it is consumed.
 *
 * Writing: packets are appended to the stream's output, sent once a turn.
 *
 * Closing: the stream flushes, shuts down and closes the descriptor; the
 * struct is freed when no operation that names it is still in flight.
 *
 * Before CONNECT: a connection is pending until its CONNECT is accepted.
 * Pending connections do not count against max_connections (sockets that
 * never speak MQTT would lock real clients out); each shard keeps its own,
 * oldest first, up to its share of max_pending_connections, closing the
 * oldest to admit a new one, and reads at most max_connect_size of each.
 */
#include "broker/conn.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "broker/acl.h"
#include "broker/alias.h"
#include "broker/observe.h"
#include "broker/protocol.h"
#include "broker/route.h"
#include "broker/shard.h"
#include "core/log.h"
#include "mqtt/codec.h"
#include "mqtt/props.h"
#include "net/stream.h"
#include "session/msg.h"
#include "session/session.h"

#define CONN_CLOSE_TIMEOUT_MS 5000u
#define CONN_RX_MIN           512u

/* Output a client may leave unread (limits.max_client_output, or its
 * tenant's) before we stop reading its input; we read again below a
 * quarter of it. */
static size_t out_cap(const struct shard *s, const struct conn *c)
{
    return c->session ? c->session->tenant->set->max_client_output : s->cfg->max_client_output;
}

static void mark_dirty(struct shard *s, struct conn *c)
{
    stream_mark_dirty(&s->streams, &c->st);
}

static void queue_rearm(struct shard *s, struct conn *c)
{
    stream_want_recv(&s->streams, &c->st);
}

static void maybe_free(struct shard *s, struct conn *c)
{
    stream_maybe_closed(&s->streams, &c->st);
}

/* One per connection, slab-packed at a multiple of 16: keep it at 176. */
_Static_assert(sizeof(struct conn) <= 176, "struct conn grew past 176 bytes");

static struct conn *conn_of_timer(struct wheel_entry *e)
{
    return (struct conn *)((char *)e - offsetof(struct conn, timer));
}

/* Arm a receive: single-shot until CONNECT is accepted, then multishot. */
static void arm_recv(struct shard *s, struct conn *c)
{
    c->st.multishot = c->state == CONN_ACTIVE;
    stream_arm_recv(&s->streams, &c->st);
}

/* Off the list it is on (s->pending or s->all). */
static void conn_unlink(struct shard *s, struct conn *c)
{
    if (c->all_next)
        c->all_next->all_pprev = c->all_pprev;
    else if (c->pending)
        s->pending_tail = c->all_pprev;
    *c->all_pprev = c->all_next;
}

static void conn_link_all(struct shard *s, struct conn *c)
{
    c->all_next = s->all;
    if (s->all)
        s->all->all_pprev = &c->all_next;
    c->all_pprev = &s->all;
    s->all = c;
}

void conn_pending_end(struct shard *s, struct conn *c)
{
    if (!c->pending)
        return;
    conn_unlink(s, c);
    c->pending = false;
    s->npending--;
    conn_link_all(s, c);
}

/*
 * max_pending_connections: the oldest pending connection makes room. It is
 * the one closest to its connect timeout; a flood of silent sockets pushes
 * out its own first, while a client that sends CONNECT at once has left the
 * list long before it would reach the head.
 */
static void pending_evict(struct shard *s)
{
    atomic_fetch_add_explicit(&s->broker->pending_evicted, 1, memory_order_relaxed);
    log_ratelimited(LOG_LEVEL_WARN,
                    "max_pending_connections reached (%u on this shard): closing the oldest "
                    "connection waiting for CONNECT",
                    s->pending_max);
    /* A 5.0 client in enhanced authentication gets CONNACK 0x89. */
    conn_close_reason(s, s->pending, CLOSE_PROTOCOL, MQTT_RC_SERVER_BUSY, NULL);
}

static struct conn *conn_create(struct shard *s, uint32_t fi, uint8_t listener,
                                const struct net_peer *peer)
{
    if (s->pending && s->npending >= s->pending_max)
        pending_evict(s);
    struct conn *c = slab_alloc(s->conn_slab);
    if (!c)
        return NULL;
    if (stream_open(&s->streams, &c->st, fi, listener, peer) < 0) {
        slab_free(s->conn_slab, c);
        return NULL;
    }
    c->id = (uint32_t)++s->next_conn_id;
    c->last_rx_ms = s->now_ms;
    c->state = CONN_NEW;
    c->pending = true;
    c->all_pprev = s->pending_tail;
    *s->pending_tail = c;
    s->pending_tail = &c->all_next;
    s->npending++;
    /* A transport that must open first (a TLS handshake) may have less
     * time for that than CONNECT has in all: its bound comes first. */
    bool open;
    uint32_t wait = s->cfg->connect_timeout * 1000u;
    uint32_t opening = stream_opening(&s->streams, &c->st, &open);
    c->opening_timer = !open && opening < wait;
    wheel_add(s->wheel, &c->timer, s->now_ms + (c->opening_timer ? opening : wait));
    return c;
}

/* The transport's opening bound passed (conn_create): closed if it is
 * still opening, else the rest of the connect timeout is left. */
static void opening_timeout(struct shard *s, struct conn *c)
{
    c->opening_timer = false;
    bool open;
    uint32_t opening = stream_opening(&s->streams, &c->st, &open);
    if (!open) {
        log_ratelimited(LOG_LEVEL_INFO,
                        "connection %llu: %s handshake not done within %u ms, closing",
                        (unsigned long long)c->id, s->streams.xprt[c->st.listener]->name, opening);
        conn_close(s, c, CLOSE_PROTOCOL);
        return;
    }
    wheel_add(s->wheel, &c->timer, s->now_ms + s->cfg->connect_timeout * 1000u - opening);
}

bool conn_count(struct shard *s, struct conn *c)
{
    if (c->counted)
        return true;
    /* Taken before it is checked, so that two shards admitting at once
     * cannot both take the last place. */
    uint32_t max = s->cfg->max_connections;
    unsigned before = atomic_fetch_add_explicit(&s->broker->connections, 1, memory_order_relaxed);
    if (max && before >= max) {
        atomic_fetch_sub_explicit(&s->broker->connections, 1, memory_order_relaxed);
        return false;
    }
    c->counted = true;
    return true;
}

static void conn_uncount(struct shard *s, struct conn *c)
{
    if (c->counted)
        atomic_fetch_sub_explicit(&s->broker->connections, 1, memory_order_relaxed);
    c->counted = false;
}

void conn_accepted(struct shard *s, uint32_t fi, uint8_t listener, const struct net_peer *peer)
{
    if (s->stopping) {
        stream_close_fixed(&s->streams, fi);
        return;
    }
    /* Only trusted proxies may connect to a PROXY protocol listener: the
     * others are refused before they take a pending place. */
    if (stream_proxy_admit(&s->streams, listener, peer) < 0) {
        stream_close_fixed(&s->streams, fi);
        return;
    }
    /* Over max_connections a client still gets a CONNACK saying so
     * (connect.c); a flood that never sends CONNECT is bounded by
     * max_pending_connections (conn_create). */
    struct conn *c = conn_create(s, fi, listener, peer);
    if (!c) {
        log_ratelimited(LOG_LEVEL_ERR, "out of memory accepting a connection");
        stream_close_fixed(&s->streams, fi);
        return;
    }
    /* Nothing above the stream reads c->st.peer before the first bytes
     * are delivered, so everything (auth plugin, events, logs) sees the
     * address a PROXY header gives. */
    stream_proxy_expect(&s->streams, &c->st);
    arm_recv(s, c);
}

static void conn_free(struct shard *s, struct conn *c)
{
    if (c->deferred)
        s->ndeferred--;
    stream_release(&s->streams, &c->st);
    free(c->rx);
    /* Still moving (only at shutdown, before the MSG_RING's completion was
     * reaped): the home shard may hold the bytes already and free them
     * when it adopts the connection. A buffer nobody adopts is left to the
     * process's exit rather than freed twice. */
    if (c->state != CONN_MOVING)
        free(c->stash);
    free(c->rate);
    conn_v5_destroy(c->v5);
    identity_free(c->auth);
    wheel_remove(&c->timer);
    conn_unlink(s, c);
    if (c->pending)
        s->npending--;
    conn_uncount(s, c);
    slab_free(s->conn_slab, c);
}

bool conn_fits(const struct conn *c, size_t n)
{
    return !c->v5 || !c->v5->max_packet_out || n <= c->v5->max_packet_out;
}

void conn_too_large(struct shard *s, struct conn *c, const char *what)
{
    log_ratelimited(LOG_LEVEL_INFO, "connection %llu: %s exceeds the client's Maximum Packet Size",
                    (unsigned long long)c->id, what);
    /* Closed at the flush, not here: the caller may be walking a list of
     * sessions that a close would change. Nothing more is queued meanwhile
     * (conn_reserve), so the client misses nothing silently. */
    c->close_pending = true;
    c->close_too_large = true;
    mark_dirty(s, c);
}

void conn_write_v5_users(struct shard *s, struct conn *c, uint8_t first, const uint8_t *head,
                         size_t head_len, const struct mqtt_props *pr,
                         const struct mqtt_user_prop *users, size_t n_users)
{
    size_t plen = mqtt_props_size(pr, NULL, 0, users, n_users);
    size_t rem = head_len + plen;
    size_t total = 1 + mqtt_varint_size((uint32_t)rem) + rem;
    if (n_users && (plen == 0 || !conn_fits(c, total))) {
        /* MQTT-3.2.2-20 / MQTT-3.15.2-3: User Properties only within the
         * client's Maximum Packet Size (and only when they encode). */
        conn_write_v5_users(s, c, first, head, head_len, pr, NULL, 0);
        return;
    }
    if (mqtt_props_has(pr, MQTT_PROP_REASON_STRING) && !conn_fits(c, total)) {
        /* MQTT-3.1.2-24, and per packet MQTT-3.2.2-19, MQTT-3.4.2-2,
         * MQTT-3.14.2-3 ...: the Reason String goes first, not the packet. */
        struct mqtt_props less = *pr;
        less.present &= ~((uint64_t)1 << MQTT_PROP_REASON_STRING);
        conn_write_v5_users(s, c, first, head, head_len, &less, NULL, 0);
        return;
    }
    if (!conn_fits(c, total)) {
        /* MQTT-3.1.2-24: what is left cannot be left out (an Authentication
         * Method, say), and the packet may not be sent larger. */
        conn_too_large(s, c, "a packet");
        return;
    }
    uint8_t *p = conn_reserve(s, c, total);
    if (!p)
        return;
    uint8_t *w = p;
    *w++ = first;
    w += mqtt_varint_encode(w, (uint32_t)rem);
    memcpy(w, head, head_len);
    mqtt_props_encode(w + head_len, pr, NULL, 0, users, n_users);
    conn_commit(s, c, total);
}

void conn_write_v5(struct shard *s, struct conn *c, uint8_t first, const uint8_t *head,
                   size_t head_len, const struct mqtt_props *pr)
{
    conn_write_v5_users(s, c, first, head, head_len, pr, NULL, 0);
}

void conn_write_ack(struct shard *s, struct conn *c, uint8_t type, uint16_t pid, uint8_t reason,
                    const char *why)
{
    if (c->v5 && why && c->v5->problem_info) {
        /* A failing 5.0 acknowledgement says why (MQTT-3.4.2-2 allows the
         * Reason String unless the client refused them, MQTT-3.1.2-29). */
        struct mqtt_props pr;
        memset(&pr, 0, sizeof(pr));
        mqtt_props_set(&pr, MQTT_PROP_REASON_STRING);
        pr.reason_string = (struct mqtt_bytes){(const uint8_t *)why, strlen(why)};
        uint8_t head[3] = {(uint8_t)(pid >> 8), (uint8_t)pid, reason};
        size_t rem = sizeof(head) + mqtt_props_size(&pr, NULL, 0, NULL, 0);
        if (conn_fits(c, 1 + mqtt_varint_size((uint32_t)rem) + rem)) {
            conn_write_v5(s, c, (uint8_t)(type << 4 | (type == MQTT_PUBREL ? 2 : 0)), head,
                          sizeof(head), &pr);
            return;
        }
        /* MQTT-3.1.2-24: without its Reason String; and then without the
         * empty Property Length too (MQTT 5.0 3.4.2.2.1). */
    }
    /* At most 5 bytes, which fit: this client took a CONNACK of 5 or more. */
    uint8_t *p = conn_reserve(s, c, 5);
    if (p)
        conn_commit(s, c, mqtt_ack_encode(p, type, c->version, pid, reason));
}

static void write_disconnect(struct shard *s, struct conn *c, uint8_t rc, const char *why)
{
    struct mqtt_props pr;
    memset(&pr, 0, sizeof(pr));
    if (why && c->v5->problem_info) {
        mqtt_props_set(&pr, MQTT_PROP_REASON_STRING);
        pr.reason_string = (struct mqtt_bytes){(const uint8_t *)why, strlen(why)};
    }
    conn_write_v5(s, c, MQTT_DISCONNECT << 4, &rc, 1, &pr);
}

void conn_close(struct shard *s, struct conn *c, enum conn_close_reason why)
{
    static const uint8_t codes[CLOSE_MOVED + 1] = {
        [CLOSE_TAKEOVER] = MQTT_RC_SESSION_TAKEN_OVER, /* MQTT-3.1.4-3 (5.0) */
        [CLOSE_KEEPALIVE] = MQTT_RC_KEEPALIVE_TIMEOUT,
        [CLOSE_SHUTDOWN] = MQTT_RC_SERVER_SHUTTING_DOWN,
        [CLOSE_PROTOCOL] = MQTT_RC_PROTOCOL_ERROR,
        [CLOSE_ADMIN] = MQTT_RC_ADMINISTRATIVE_ACTION,
    };
    conn_close_reason(s, c, why, codes[why], NULL);
}

void conn_close_reason(struct shard *s, struct conn *c, enum conn_close_reason why, uint8_t rc,
                       const char *reason_string)
{
    if (c->state == CONN_CLOSING)
        return;
    /* A 5.0 client learns why the server closes (MQTT-4.13.1-1); before
     * CONNECT is accepted that is the CONNACK's job. */
    if (c->v5 && c->state == CONN_ACTIVE && rc >= 0x80 &&
        (why == CLOSE_TAKEOVER || why == CLOSE_KEEPALIVE || why == CLOSE_SHUTDOWN ||
         why == CLOSE_PROTOCOL || why == CLOSE_ADMIN))
        write_disconnect(s, c, rc, reason_string);
    else if (c->v5 && c->state == CONN_NEW && why == CLOSE_PROTOCOL && rc >= 0x80 &&
             conn_fits(c, 5)) {
        uint8_t *p = conn_reserve(s, c, 5);
        if (p)
            conn_commit(s, c, mqtt_connack_encode(p, MQTT_V5, false, rc));
    }
    c->state = CONN_CLOSING;
    conn_pending_end(s, c);
    conn_uncount(s, c); /* its place is free once it stops being served */
    wheel_remove(&c->timer);
    if (c->session) {
        struct session *ss = c->session;
        ss->tenant->ctr.connections--;
        observe_event(s, RINGMQ_EV_DISCONNECTED, ss->tenant, ss,
                      why == CLOSE_CLIENT_DISCONNECT ? 0 : rc, 0, NULL, 0);
        c->session = NULL;
        bool will = why != CLOSE_CLIENT_DISCONNECT && why != CLOSE_MOVED &&
                    (why != CLOSE_SHUTDOWN || s->cfg->wills_on_shutdown);
        session_detach(s, ss, will);
    }
    if (why == CLOSE_MOVED) {
        stream_drop(&s->streams, &c->st); /* the home shard holds a copy */
        return;
    }
    /* Flush first (a CONNACK refusal must reach the client), but never
     * wait forever for a peer that does not read. */
    if (stream_close(&s->streams, &c->st))
        wheel_add(s->wheel, &c->timer, s->now_ms + CONN_CLOSE_TIMEOUT_MS);
}

/* Output was sent (or dropped): a slow session that caught up gets QoS 0
 * again, a connection paused for its own backlog is read again; a send
 * that failed closes it. */
static void on_sent(struct stream_loop *l, struct stream *st, int res)
{
    struct shard *s = shard_of_streams(l);
    struct conn *c = conn_of_stream(st);
    if (res < 0) {
        conn_close(s, c, CLOSE_PEER_GONE);
        return;
    }
    struct session *ss = c->session;
    if (ss && ss->slow) {
        size_t resume = out_cap(s, c) / 4;
        if (resume > SESSION_SLOW_MIN / 2)
            resume = SESSION_SLOW_MIN / 2;
        if (conn_backlog(c) < resume)
            ss->slow = false; /* caught up: QoS 0 flows again */
    }
    if (c->out_paused && conn_backlog(c) < out_cap(s, c) / 4) {
        c->out_paused = false;
        queue_rearm(s, c);
    }
}

uint8_t *conn_reserve_failed(struct shard *s, struct conn *c)
{
    if (c->st.shut)
        return NULL;
    /* Not closed here: the caller may be walking a list of sessions that a
     * close would change. The flush closes it. */
    log_ratelimited(LOG_LEVEL_ERR, "out of memory for output, closing connection");
    c->close_pending = true;
    mark_dirty(s, c);
    return NULL;
}

static bool reading(const struct conn *c)
{
    return c->state == CONN_NEW || c->state == CONN_ACTIVE;
}

static uint32_t pre_connect_max(const struct shard *s)
{
    const struct config *cfg = s->cfg;
    return cfg->max_connect_size < cfg->max_packet_size ? cfg->max_connect_size
                                                        : cfg->max_packet_size;
}

/*
 * Handle the complete packets in buf, until `budget` bytes are consumed
 * (at least one packet, however large). Returns the bytes consumed; stops
 * early (returning len) when the connection stopped reading. *need receives
 * the size of the next packet when its header is known.
 */
static size_t process(struct shard *s, struct conn *c, const uint8_t *buf, size_t len,
                      size_t budget, size_t *need)
{
    size_t off = 0;
    *need = 0;
    while (off < len && off < budget) {
        struct mqtt_frame f;
        /* The tenant's limit once it is known (MQTT-3.2.2-15 in 5.0); before,
         * max_connect_size, so that a connection which has not even sent
         * its CONNECT cannot make us hold a large packet. */
        uint32_t max = c->session ? c->session->tenant->set->max_packet_size : pre_connect_max(s);
        int rc = mqtt_frame_decode(buf + off, len - off, max, &f);
        if (rc == MQTT_INCOMPLETE)
            break;
        if (rc == MQTT_RC_PACKET_TOO_LARGE && !c->session) {
            protocol_connect_too_large(s, c, &f, buf + off, len - off);
            return len;
        }
        if (rc != MQTT_OK) {
            /* MQTT-4.13.1-1: 0x95 Packet too large, 0x81 Malformed. */
            protocol_violation(s, c,
                               rc == MQTT_RC_PACKET_TOO_LARGE ? "packet larger than max_packet_size"
                                                              : "malformed remaining length",
                               rc);
            return len;
        }
        if (f.total_len > len - off) {
            *need = f.total_len;
            break;
        }
        const uint8_t *pkt = buf + off;
        size_t next = off + f.total_len;
        /* MQTT-3.1.2-24 counts Control Packets, not bytes. */
        c->last_rx_ms = s->now_ms;
        int r = protocol_handle(s, c, &f, pkt, len - next);
        if (r == PROTO_WAIT)
            return off; /* handled again once the plugin answers */
        acl_packet_done(c);
        off = next;
        if (r == PROTO_STOP || !reading(c) || c->close_pending)
            return len;
        if (c->state == CONN_ACTIVE && stream_turn_spent(&s->streams))
            break; /* this turn made its share of output: the rest waits */
    }
    return off;
}

/* Split packets wait in rx, which grows as their bytes arrive: a header
 * announcing a large packet reserves at most this much up front. */
#define CONN_RX_RESERVE_MAX 65536u

/* Handle what waits in rx, up to `budget` bytes of packets; what is left
 * stays (split packets, or the rest of a deferred turn). */
static void rx_run(struct shard *s, struct conn *c, size_t budget)
{
    struct iobuf *rx = c->rx;
    size_t need;
    size_t used = process(s, c, rx->data, rx->len, budget, &need);
    if (!reading(c))
        return; /* rx is freed with the connection */
    if (used == rx->len) {
        free(rx);
        c->rx = NULL;
    } else if (used) {
        memmove(rx->data, rx->data + used, rx->len - used);
        rx->len -= (uint32_t)used;
    }
}

/* Append len bytes to rx. False when out of memory (the connection is
 * then closing). */
static bool rx_append(struct shard *s, struct conn *c, const uint8_t *data, size_t len)
{
    if (!c->rx) {
        c->rx = iobuf_create(len > CONN_RX_MIN ? len : CONN_RX_MIN);
        if (!c->rx) {
            conn_close(s, c, CLOSE_PEER_GONE);
            return false;
        }
    }
    struct iobuf *rx = c->rx;
    if (rx->cap - rx->len < len) {
        size_t cap = rx->cap * 2u;
        while (cap < rx->len + len)
            cap *= 2;
        rx = realloc(rx, sizeof(*rx) + cap);
        if (!rx) {
            conn_close(s, c, CLOSE_PEER_GONE);
            return false;
        }
        rx->cap = (uint32_t)cap;
        c->rx = rx;
    }
    memcpy(rx->data + rx->len, data, len);
    rx->len += (uint32_t)len;
    return true;
}

/* Whether rx holds a whole packet (not just the start of one, which only
 * more input can complete). */
static bool rx_has_packet(const struct conn *c)
{
    struct mqtt_frame f;
    return c->rx && mqtt_frame_decode(c->rx->data, c->rx->len, UINT32_MAX, &f) == MQTT_OK &&
           f.total_len <= c->rx->len;
}

/* Input waits in rx for the next turns, which hand it out a share at a
 * time (on_rearm); the receive is not re-armed meanwhile. */
static void mark_deferred(struct shard *s, struct conn *c)
{
    if (!c->deferred) {
        c->deferred = true;
        s->ndeferred++;
    }
    queue_rearm(s, c); /* on_rearm hands out the next turns' shares */
}

/* After handling input: whole packets left (the turn's output budget was
 * spent) wait for the next turn. */
static void defer_if_whole(struct shard *s, struct conn *c)
{
    if (reading(c) && !c->close_pending && !c->blocked && rx_has_packet(c))
        mark_deferred(s, c);
}

static void feed(struct shard *s, struct conn *c, const uint8_t *data, size_t len)
{
    size_t need;
    if (c->close_pending)
        return;
    if (!c->rx && !c->blocked) {
        size_t used = process(s, c, data, len, SIZE_MAX, &need);
        if (used == len || !reading(c))
            return;
        size_t left = len - used;
        if (need > CONN_RX_RESERVE_MAX)
            need = CONN_RX_RESERVE_MAX;
        c->rx = iobuf_create(need > left ? need : left);
        if (!c->rx) {
            conn_close(s, c, CLOSE_PEER_GONE);
            return;
        }
        memcpy(c->rx->data, data + used, left);
        c->rx->len = (uint32_t)left;
        defer_if_whole(s, c);
        return;
    }
    if (!rx_append(s, c, data, len))
        return;
    if (c->blocked)
        return; /* a permission check is pending: packets wait their turn */
    rx_run(s, c, SIZE_MAX);
    defer_if_whole(s, c);
}

/*
 * Fairness between the clients of a shard: in one loop turn a connection's
 * input is handled up to CONN_TURN_KIB; beyond, it waits in rx (and its
 * receive ends) for the next turns, CONN_TURN_KIB a turn. One client
 * flooding a topic with a thousand subscribers then cannot make a turn,
 * and every other client's wait, last as long as its whole receive buffer
 * takes (hundreds of milliseconds while those subscribers' buffers fill).
 * And once the turn has had its share of work (stream_turn_spent: 2 MiB of
 * output, or about 1 ms; 32 KiB of 1 KB PUBLISHes to 500 subscribers is
 * 16 MB), each connection's input stops after its next packet and waits
 * the same way.
 */
#define CONN_TURN_KIB 32u

/* Whether `len` more bytes would take c past its share of this turn;
 * counts them when not. */
static bool over_turn_share(struct shard *s, struct conn *c, size_t len)
{
    if (c->turn != s->turn) {
        c->turn = s->turn;
        c->turn_kib = 0;
    }
    if (c->deferred || c->turn_kib >= CONN_TURN_KIB)
        return true;
    /* Saturating: one receive buffer may be up to 1 MiB (1024 KiB). */
    size_t kib = c->turn_kib + (len + 1023) / 1024;
    c->turn_kib = (uint8_t)(kib < UINT8_MAX ? kib : UINT8_MAX);
    return false;
}

static void defer_input(struct shard *s, struct conn *c, const uint8_t *data, size_t len)
{
    if (c->close_pending || !rx_append(s, c, data, len))
        return;
    mark_deferred(s, c);
}

/* A deferred connection's share of this turn; true while whole packets are
 * left for the next. */
static bool run_deferred(struct shard *s, struct conn *c)
{
    if (c->rx && !c->blocked && reading(c) && !c->close_pending)
        rx_run(s, c, stream_turn_over(&s->streams) ? 1 : (size_t)CONN_TURN_KIB * 1024);
    if (reading(c) && !c->close_pending && (c->blocked || rx_has_packet(c)))
        return true;
    c->deferred = false;
    s->ndeferred--;
    return false;
}

/* After feeding a connection that has no receive armed. */
static void arm_next(struct shard *s, struct conn *c)
{
    if (!c->st.recv_armed && reading(c))
        arm_recv(s, c);
}

static void on_bytes(struct stream_loop *l, struct stream *st, const uint8_t *data, size_t len)
{
    struct shard *s = shard_of_streams(l);
    struct conn *c = conn_of_stream(st);
    if (!reading(c) || s->stopping)
        return;
    s->xhit = false;
    const struct session *ss = c->session;
    bool named = ss && log_names_clients;
    if (named) /* JSON log lines written while handling it name it */
        log_set_client(ss->tenant->name, (const char *)ss->st.client_id, ss->st.client_id_len);
    if (c->state == CONN_ACTIVE && over_turn_share(s, c, len))
        defer_input(s, c, data, len);
    else
        feed(s, c, data, len);
    if (named)
        log_set_client(NULL, NULL, 0);
    if (s->xhit && c->state == CONN_ACTIVE)
        c->xpaused = true; /* it published to a shard that is behind */
}

static void on_recv_end(struct stream_loop *l, struct stream *st, int res, bool more)
{
    struct shard *s = shard_of_streams(l);
    struct conn *c = conn_of_stream(st);
    if (res > 0) {
        bool own_backlog = conn_backlog(c) > out_cap(s, c);
        if (more && c->state == CONN_ACTIVE &&
            (c->xpaused || own_backlog || c->rate_limited || c->blocked || c->deferred)) {
            /* Back-pressure: it publishes to a shard that is behind
             * (shard.c), it does not read what it asks for, its packets
             * wait for a plugin's verdict, or it had its share of this turn
             * (what it sends meanwhile would pile up in rx). End the
             * receive; it is re-armed once the cause is gone, and TCP
             * pushes back. */
            stream_pause_recv(l, st);
        }
        if (own_backlog)
            c->out_paused = true;
        if (!more && reading(c))
            queue_rearm(s, c);
    } else if (res == -EAGAIN && reading(c)) {
        queue_rearm(s, c); /* no buffer this turn, or paused: retry later */
    } else if (res != -EAGAIN && reading(c)) {
        conn_close(s, c, CLOSE_PEER_GONE);
    }
}

/* Closes that had to wait for the flush (the caller of conn_reserve may
 * have been walking sessions). */
static void on_flush(struct stream_loop *l, struct stream *st)
{
    struct shard *s = shard_of_streams(l);
    struct conn *c = conn_of_stream(st);
    if (!c->close_pending || c->state == CONN_CLOSING)
        return;
    if (c->close_too_large && c->state == CONN_ACTIVE) {
        /* MQTT-4.13.1-1: the client learns why (0x95 is also "larger than
         * the Maximum Packet Size for this Client"). */
        c->close_pending = false;
        conn_close_reason(s, c, CLOSE_PROTOCOL, MQTT_RC_PACKET_TOO_LARGE,
                          "a packet for this client exceeds its Maximum Packet Size");
    } else {
        conn_close(s, c, CLOSE_PEER_GONE);
    }
}

/* At the flush, a connection listed for reading: read again once nothing
 * holds it back; true keeps it listed. */
static bool on_rearm(struct stream_loop *l, struct stream *st)
{
    struct shard *s = shard_of_streams(l);
    struct conn *c = conn_of_stream(st);
    if (c->rate_limited && c->rate && c->rate->second != s->now_ms / 1000u)
        c->rate_limited = false; /* a new second: read it again */
    if (c->xpaused && !s->xcongested)
        c->xpaused = false; /* every shard it publishes to caught up */
    if (c->deferred && run_deferred(s, c))
        return true; /* input left for the next turns */
    if (!st->recv_armed && reading(c) &&
        (c->blocked || (c->state == CONN_ACTIVE &&
                        (c->xpaused || s->stopping || c->out_paused || c->rate_limited))))
        return true; /* still paused */
    if (reading(c) && !st->recv_armed) {
        /* Time spent paused by back-pressure is not the client's silence. */
        c->last_rx_ms = s->now_ms;
        arm_recv(s, c);
    }
    return false;
}

static void on_closed(struct stream_loop *l, struct stream *st)
{
    conn_free(shard_of_streams(l), conn_of_stream(st));
}

const struct stream_events conn_stream_events = {
    .on_bytes = on_bytes,
    .on_recv_end = on_recv_end,
    .on_sent = on_sent,
    .on_rearm = on_rearm,
    .on_flush = on_flush,
    .on_closed = on_closed,
};

void conn_on_timer(struct wheel_entry *e, void *arg)
{
    struct shard *s = arg;
    struct conn *c = conn_of_timer(e);
    switch (c->state) {
    case CONN_CLOSING:
        /* The final flush did not finish in time: give up on it. */
        stream_teardown(&s->streams, &c->st);
        break;
    case CONN_NEW:
    case CONN_AUTHENTICATING:
        if (c->opening_timer) {
            opening_timeout(s, c);
            break;
        }
        log_ratelimited(LOG_LEVEL_INFO, "connection %llu: no CONNECT in time, closing",
                        (unsigned long long)c->id);
        conn_close(s, c, CLOSE_PROTOCOL);
        break;
    case CONN_ACTIVE: {
        uint64_t deadline = c->last_rx_ms + (uint64_t)c->keepalive * 1500u;
        if (c->blocked && s->now_ms >= deadline) {
            /* Not read while its packet waits for a plugin's verdict: its
             * PINGREQs wait in TCP, unseen. The wait is the broker's, so the
             * client's keepalive starts again from here. */
            c->last_rx_ms = s->now_ms;
            deadline = s->now_ms + (uint64_t)c->keepalive * 1500u;
        }
        if (s->now_ms < deadline) {
            wheel_add(s->wheel, &c->timer, deadline);
        } else {
            log_ratelimited(LOG_LEVEL_INFO, "client %.*s: keepalive expired, closing",
                            c->session ? (int)c->session->st.client_id_len : 0,
                            c->session ? (const char *)c->session->st.client_id : "");
            conn_close(s, c, CLOSE_KEEPALIVE);
        }
        break;
    }
    default:
        break;
    }
}

/*
 * The bytes that travel with a moving connection: the peer address (a
 * direct descriptor cannot be asked for it later, and accept gave it only
 * to this shard) as [16 address][u16 port], then the transport's state
 * when it keeps one ([u32 length][state], stream_export), then the auth
 * plugin's answer when there was one (so the home shard does not ask
 * again; identity.c packs it), then what was read so far, starting with
 * CONNECT. `off` holds the listener index and the flags below.
 */
#define HANDOVER_AUTH    0x100u
#define HANDOVER_COUNTED 0x200u /* it holds a place in max_connections */
#define HANDOVER_XPRT    0x400u /* the transport's state is there */
#define HANDOVER_PEER    18u    /* [16 address][u16 port] */

void conn_relocate(struct shard *s, struct conn *c, uint32_t home, const uint8_t *bytes, size_t len)
{
    size_t xs = stream_export_size(&s->streams, &c->st);
    size_t pre = HANDOVER_PEER + (xs ? 4 + xs : 0) + (c->auth ? identity_packed_size(c->auth) : 0);
    struct iobuf *h = iobuf_create(pre + len);
    if (!h) {
        conn_close(s, c, CLOSE_PEER_GONE);
        return;
    }
    uint8_t *w = h->data;
    memcpy(w, c->st.peer.addr, sizeof(c->st.peer.addr));
    w += sizeof(c->st.peer.addr);
    *w++ = (uint8_t)(c->st.peer.port >> 8);
    *w++ = (uint8_t)c->st.peer.port;
    if (xs) {
        uint32_t n = (uint32_t)xs;
        memcpy(w, &n, 4);
        stream_export(&s->streams, &c->st, w + 4);
        w += 4 + xs;
    }
    if (c->auth)
        identity_pack(c->auth, w);
    memcpy(h->data + pre, bytes, len);
    h->len = (uint32_t)(pre + len);
    h->off = c->st.listener | (c->auth ? HANDOVER_AUTH : 0) | (c->counted ? HANDOVER_COUNTED : 0) |
             (xs ? HANDOVER_XPRT : 0);
    c->stash = h;
    c->state = CONN_MOVING;
    /* Its place in max_connections goes with it: the home shard does not
     * check again, and a second client cannot take the place meanwhile. */
    c->counted = false;
    conn_pending_end(s, c);
    wheel_remove(&c->timer);
    /* IORING_OP_MSG_RING / IORING_MSG_SEND_FD (5.18): install our direct
     * descriptor in the home ring's table; it gets a CQE carrying `h`. */
    struct io_uring_sqe *sqe = shard_sqe(s);
    io_uring_prep_rw(IORING_OP_MSG_RING, sqe, s->broker->shards[home]->ring_fd, NULL, 0,
                     ud_make(UD_HANDOVER, h));
    sqe->addr = IORING_MSG_SEND_FD;
    sqe->addr3 = c->st.fi;
    sqe->file_index = IORING_FILE_INDEX_ALLOC;
    io_uring_sqe_set_data64(sqe, ud_make(UD_FDSENT, c));
    conn_hold(c);
}

/* The transport's state in handover bytes h (HANDOVER_XPRT): read back
 * into c's stream. Returns where what follows starts, NULL when it does
 * not parse or the transport refuses it. */
static const uint8_t *import_xprt(struct shard *s, struct conn *c, const struct iobuf *h)
{
    const uint8_t *r = h->data + HANDOVER_PEER;
    const uint8_t *end = h->data + h->len;
    uint32_t n;
    if (end - r < 4)
        return NULL;
    memcpy(&n, r, 4);
    if ((size_t)(end - r - 4) < n || stream_import(&s->streams, &c->st, r + 4, n) < 0)
        return NULL;
    return r + 4 + n;
}

void conn_on_fdsent(struct shard *s, struct conn *c, int res)
{
    c->st.ops--;
    struct iobuf *h = c->stash;
    c->stash = NULL;
    if (res >= 0) {
        /* The home shard owns the bytes and a copy of the descriptor. */
        conn_close(s, c, CLOSE_MOVED);
        return;
    }
    /* The kernel could not move it (old kernel, full descriptor table at
     * home). Serving it here would create a second session for the same
     * client id, so refuse it: server unavailable. */
    log_ratelimited(LOG_LEVEL_WARN, "cannot move connection to its home shard (%s); refusing it",
                    strerror(-res));
    c->counted = (h->off & HANDOVER_COUNTED) != 0; /* released by the close */
    /* The transport's state went out with h: take it back, so that the
     * refusal is sent through it (and it is freed with the connection). */
    if ((h->off & HANDOVER_XPRT) && !import_xprt(s, c, h)) {
        free(h);
        conn_close(s, c, CLOSE_PEER_GONE);
        return;
    }
    free(h);
    c->state = CONN_NEW;
    uint8_t *p = conn_fits(c, 5) ? conn_reserve(s, c, 5) : NULL; /* MQTT-3.1.2-24 */
    if (p)
        conn_commit(s, c,
                    mqtt_connack_encode(p, c->version, false,
                                        c->version == MQTT_V5 ? MQTT_RC_SERVER_UNAVAILABLE
                                                              : MQTT_CONNACK_UNAVAILABLE));
    conn_close(s, c, CLOSE_REFUSED);
}

void conn_resume(struct shard *s, struct conn *c)
{
    if (c->rx && reading(c) && !c->blocked)
        rx_run(s, c, SIZE_MAX);
    if (reading(c) && !c->st.recv_armed)
        queue_rearm(s, c);
    maybe_free(s, c);
}

void conn_op_done(struct shard *s, struct conn *c)
{
    stream_op_done(&s->streams, &c->st);
}

int conn_set_auth(struct conn *c, uint16_t tenant, const struct ringmq_auth_result *r)
{
    c->auth = identity_create(tenant, r->user_id, r->attributes, r->n_attributes,
                              c->v5 ? r->user_properties : NULL, c->v5 ? r->n_user_properties : 0);
    return c->auth ? 0 : -ENOMEM;
}

void conn_refeed(struct shard *s, struct conn *c, const uint8_t *bytes, size_t len)
{
    feed(s, c, bytes, len);
    arm_next(s, c);
    maybe_free(s, c);
}

/* What travels before the bytes read (conn_relocate): the transport's
 * state and the auth plugin's answer, into c; NULL when it does not parse
 * or out of memory, else where the bytes read start. */
static const uint8_t *adopt_state(struct shard *s, struct conn *c, const struct iobuf *h)
{
    const uint8_t *r = h->data + HANDOVER_PEER;
    const uint8_t *end = h->data + h->len;
    if ((h->off & HANDOVER_XPRT) && !(r = import_xprt(s, c, h)))
        return NULL;
    if (h->off & HANDOVER_AUTH) {
        size_t used = 0;
        c->auth = identity_unpack(r, (size_t)(end - r), &used);
        if (!c->auth)
            return NULL;
        r += used;
    }
    return r;
}

void conn_adopt(struct shard *s, uint32_t fi, struct iobuf *h)
{
    struct net_peer peer;
    memcpy(peer.addr, h->data, sizeof(peer.addr));
    peer.port = (uint16_t)(h->data[sizeof(peer.addr)] << 8 | h->data[sizeof(peer.addr) + 1]);
    /* The sender accepted it on a slot this shard may not have taken yet
     * (a reload's new listener, before this shard's tick): its transport
     * must be known here to import the connection's state. */
    shard_listener_tables(s, h->off & 0xff);
    struct conn *c = conn_create(s, fi, (uint8_t)(h->off & 0xff), &peer);
    if (!c) {
        log_ratelimited(LOG_LEVEL_ERR, "out of memory adopting a connection");
        if (h->off & HANDOVER_COUNTED)
            atomic_fetch_sub_explicit(&s->broker->connections, 1, memory_order_relaxed);
        stream_close_fixed(&s->streams, fi);
        free(h);
        return;
    }
    c->relocated = true;
    c->counted = (h->off & HANDOVER_COUNTED) != 0;
    const uint8_t *r = adopt_state(s, c, h);
    if (!r) {
        free(h);
        conn_close(s, c, CLOSE_PEER_GONE);
        maybe_free(s, c);
        return;
    }
    feed(s, c, r, h->len - (size_t)(r - h->data));
    free(h);
    /* Then what the transport brought along undecoded. */
    if (reading(c) && stream_resume(&s->streams, &c->st) < 0)
        conn_close(s, c, CLOSE_PEER_GONE);
    arm_next(s, c);
    maybe_free(s, c);
}

void conn_shutdown_notice(struct shard *s)
{
    for (struct conn *c = s->all; c; c = c->all_next) {
        if (c->state != CONN_ACTIVE)
            continue;
        if (s->cfg->wills_on_shutdown && c->session)
            session_publish_will(s, c->session);
        if (c->v5)
            conn_close(s, c, CLOSE_SHUTDOWN); /* DISCONNECT 0x8B, MQTT 5.0 4.13 */
    }
}

static bool list_sending(const struct conn *c)
{
    for (; c; c = c->all_next)
        if (stream_sending(&c->st))
            return true;
    return false;
}

bool conn_any_sending(const struct shard *s)
{
    return list_sending(s->all) || list_sending(s->pending);
}

void conn_free_all(struct shard *s)
{
    while (s->all || s->pending) {
        struct conn *c = s->all ? s->all : s->pending;
        if (c->session) {
            struct session *ss = c->session;
            ss->tenant->ctr.connections--;
            c->session = NULL;
            session_detach(s, ss, false); /* wills went out in conn_shutdown_notice */
        }
        c->st.is_dirty = false;
        c->st.in_rearm = false;
        conn_free(s, c);
    }
    stream_dirty_clear(&s->streams);
    s->streams.rearm = NULL;
}
