/*
 * conn: one MQTT client connection on one shard, over a net/stream (its
 * descriptor, receives, output): packet reassembly, the CONNECT-time state
 * (pending, moving to the home shard, authenticating), back-pressure on
 * reading, keepalive, and closing with the right reason. Owned by the
 * shard's thread.
 *
 * An idle connection holds no buffer: `rx` exists only while a packet is
 * split across receives, the stream's output only while there is some.
 */
#ifndef RINGMQ_BROKER_CONN_H
#define RINGMQ_BROKER_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/identity.h"
#include "core/wheel.h"
#include "net/peer.h"
#include "net/stream.h"
#include "session/session.h"
#include "shard/shard.h"

struct shard;
struct session;
struct conn_v5;

/* The auth plugin's answer for this connection (tenant, user). */
struct acl_cache;

/* PUBLISH accounting of the current second, for the tenant's per-connection
 * publish_rate / publish_bandwidth. */
struct conn_rate {
    uint64_t second;
    uint64_t bytes;
    uint32_t msgs;
};

enum conn_state {
    CONN_NEW = 0,        /* accepted, waiting for CONNECT (single-shot recv) */
    CONN_ACTIVE,         /* CONNECT accepted, multishot recv */
    CONN_MOVING,         /* descriptor being sent to its home shard */
    CONN_CLOSING,        /* shut down; freed when no operation is pending */
    CONN_AUTHENTICATING, /* CONNECT handed to the auth plugin, not reading */
};

/* Why a connection closes: decides the will and the log line. */
enum conn_close_reason {
    CLOSE_CLIENT_DISCONNECT = 0, /* clean DISCONNECT: no will */
    CLOSE_PEER_GONE,             /* EOF or error from the socket */
    CLOSE_PROTOCOL,              /* protocol violation or malformed packet */
    CLOSE_KEEPALIVE,             /* 1.5 x keepalive without a packet */
    CLOSE_TAKEOVER,              /* same client id connected again */
    CLOSE_SHUTDOWN,              /* broker shutting down */
    CLOSE_REFUSED,               /* CONNECT refused (CONNACK != 0 sent) */
    CLOSE_ADMIN,                 /* kicked through the admin API */
    CLOSE_MOVED,                 /* descriptor handed to another shard */
};

struct conn {
    struct stream st;           /* first: completions name the conn by its stream */
    struct wheel_entry timer;   /* keepalive / connect timeout / close linger */
    struct session *session;    /* NULL until CONNECT is accepted */
    struct conn_v5 *v5;         /* MQTT 5.0 state, NULL for 3.1/3.1.1 */
    struct conn_identity *auth; /* what the auth plugin said, NULL without one */
    struct conn_rate *rate;     /* publish rate accounting, only under a tenant limit */
    struct iobuf *rx;           /* partial packet, NULL when none */
    struct iobuf *stash;        /* CONN_MOVING: bytes travelling with the descriptor;
                                   enhanced auth: the CONNECT being authenticated */
    struct conn *all_next;      /* shard's pending list until CONNECT completes, then
                                   its list of every other connection (shutdown) */
    struct conn **all_pprev;
    /* Unique per shard, for stale references (a pending SUBSCRIBE, a
     * retained replay): those live a few loop turns, not for the 2^32
     * connections a wrap takes, so 32 bits leave room for since_s. */
    uint32_t id;
    uint32_t since_s; /* CONNECT accepted, CLOCK_MONOTONIC seconds (the admin API) */
    uint64_t last_rx_ms;
    shard_turn_t turn; /* the shard's loop turn turn_kib counts */
    uint8_t turn_kib;  /* KiB of its input handled in that turn, saturating at 255 */
    uint16_t keepalive;
    /* Bit fields: one byte more would push the struct (slab-packed at a
     * multiple of 16) from 176 to 192 bytes per connection. Only the shard
     * thread touches them. */
    uint8_t state : 3;        /* enum conn_state */
    uint8_t version : 3;      /* MQTT protocol level after CONNECT (3, 4, 5) */
    bool close_pending : 1;   /* out of memory mid-turn: close at the flush */
    bool blocked : 1;         /* waiting for a permission check: packets wait in rx */
    bool rate_limited : 1;    /* over the tenant's publish rate: not read until next second */
    bool out_paused : 1;      /* reads stopped: the client does not read its output */
    bool xpaused : 1;         /* reads stopped: it publishes to a shard that is behind */
    bool counted : 1;         /* holds a place in broker->connections (conn_count) */
    bool pending : 1;         /* in s->pending: CONNECT not completed yet */
    bool relocated : 1;       /* arrived from another shard: serve here */
    bool close_too_large : 1; /* close_pending because a packet exceeded the client's limit */
    bool deferred : 1;        /* over its share of a loop turn: input waits in rx */
    bool opening_timer : 1;   /* the timer is the transport's opening bound (a TLS handshake) */
};

/* Accepted descriptor `fi` on listener `li` from `peer` (borrowed): create
 * and start reading. */
void conn_accepted(struct shard *s, uint32_t fi, uint8_t listener, const struct net_peer *peer);

/* A descriptor handed over by another shard: `h` holds the peer address,
 * the auth plugin's answer and the bytes read so far (see conn_relocate;
 * iobuf `off` = listener index and flags). Takes ownership of h. */
void conn_adopt(struct shard *s, uint32_t fi, struct iobuf *h);

/* Take a place in limits.max_connections for this connection, whose
 * CONNECT is being accepted (once; a moving connection takes its place
 * along). False when the broker is full. Connections that have not sent
 * CONNECT hold no place: limits.max_pending_connections bounds them. */
bool conn_count(struct shard *s, struct conn *c);

/* CONNECT completed (or the connection moves or closes): it leaves the
 * shard's pending connections. Idempotent. */
void conn_pending_end(struct shard *s, struct conn *c);

/* What the shard's stream loop tells connections (its ev). */
extern const struct stream_events conn_stream_events;

/* The connection of a stream (the stream is its first member: the
 * session room knows its client by that stream too). */
_Static_assert(offsetof(struct conn, st) == 0, "struct conn must begin with its stream");
static inline struct conn *conn_of_stream(struct stream *st)
{
    return (struct conn *)st;
}

/* The connection holding session ss (its client stream), NULL while the
 * session is offline. */
static inline struct conn *conn_of_session(const struct session *ss)
{
    return (struct conn *)ss->client;
}

/* Completion of the MSG_RING that moved c's descriptor (conn_relocate). */
void conn_on_fdsent(struct shard *s, struct conn *c, int res);

/* conn_reserve's way out when the stream had no room: the connection is
 * shut, or out of memory (then it closes at the flush). NULL. */
uint8_t *conn_reserve_failed(struct shard *s, struct conn *c);

/* Space for `n` more bytes at the end of the output; NULL when nothing more
 * may go to this client (closing, moving) or on OOM (the connection is then
 * closing). Commit what was written with conn_commit. Inline: every packet
 * for a client passes here. */
static inline uint8_t *conn_reserve(struct shard *s, struct conn *c, size_t n)
{
    if (c->state == CONN_CLOSING || c->state == CONN_MOVING || c->close_pending)
        return NULL;
    uint8_t *p = stream_reserve(&s->streams, &c->st, n);
    return p ? p : conn_reserve_failed(s, c);
}

/* Whether a packet (its first byte) promises what records must back: all
 * but a QoS 0/1 PUBLISH, a PINGRESP, a DISCONNECT and an AUTH. A QoS 1
 * delivery sent before its record is durable is at worst sent again after
 * a crash (at least once); a QoS 2 one would be delivered twice. */
static inline bool conn_promises(uint8_t first)
{
    uint8_t type = first >> 4;
    return type == 3 ? ((first >> 1) & 3) == 2 : type < 13;
}

/* Commit one whole packet written at conn_reserve's pointer. */
static inline void conn_commit(struct shard *s, struct conn *c, size_t n)
{
    if (s->streams.gated && conn_promises(c->st.out->data[c->st.out->len]))
        stream_promise(&c->st); /* held for its records (net/stream.h) */
    stream_commit(&s->streams, &c->st, n);
}

/* True when a packet of n bytes may go to this client: not more than the
 * Maximum Packet Size a 5.0 client gave in CONNECT (MQTT-3.1.2-24). */
bool conn_fits(const struct conn *c, size_t n);

/* A packet for this client cannot be made to fit its Maximum Packet Size:
 * it is not sent, nothing after it is queued, and the connection closes at
 * the end of the turn (a connected 5.0 client first gets DISCONNECT 0x95;
 * before CONNACK it is closed without a word). `what` names the packet in
 * the log. */
void conn_too_large(struct shard *s, struct conn *c, const char *what);

struct mqtt_props;
struct mqtt_user_prop;

/* Append a 5.0 packet: the first byte, `head` (the variable header up to
 * the properties) and the property block of *pr, then the n_users User
 * Properties in order. Within the client's Maximum Packet Size: the User
 * Properties are left out, then the Reason String, and a packet still too
 * large is not sent (conn_too_large). */
void conn_write_v5_users(struct shard *s, struct conn *c, uint8_t first, const uint8_t *head,
                         size_t head_len, const struct mqtt_props *pr,
                         const struct mqtt_user_prop *users, size_t n_users);
/* The same without User Properties. */
void conn_write_v5(struct shard *s, struct conn *c, uint8_t first, const uint8_t *head,
                   size_t head_len, const struct mqtt_props *pr);

/* PUBACK / PUBREC / PUBREL / PUBCOMP (or a 3.1.1 UNSUBACK) for `pid` with
 * `reason` (5.0), adding `why` as the Reason String of a 5.0 client that
 * did not refuse them; `why` may be NULL. */
void conn_write_ack(struct shard *s, struct conn *c, uint8_t type, uint16_t pid, uint8_t reason,
                    const char *why);

/* Bytes queued for sending and not yet sent. Kept as a count, not summed
 * from the buffers: a publish to 1000 subscribers reads it for each. */
static inline size_t conn_backlog(const struct conn *c)
{
    return c->st.backlog;
}

/* Close: flush what is queued, then shut down and free when no operation
 * is pending. Detaches the session (publishing the will unless the reason
 * is a clean DISCONNECT or a shutdown without wills). A 5.0 client first
 * gets a DISCONNECT for a takeover (0x8E), keepalive timeout (0x8D),
 * shutdown (0x8B) or the admin API's kick (0x98). Idempotent. */
void conn_close(struct shard *s, struct conn *c, enum conn_close_reason why);

/* conn_close with the DISCONNECT reason code (and a reason string, when the
 * client did not refuse them) a 5.0 client gets; `reason_string` may be
 * NULL. */
void conn_close_reason(struct shard *s, struct conn *c, enum conn_close_reason why, uint8_t rc,
                       const char *reason_string);

/* Keepalive / connect-timeout expiry from the wheel. */
void conn_on_timer(struct wheel_entry *e, void *shard);

/* Requests naming the connection (a plugin call) hold it: it is not freed
 * until each ends with conn_op_done (which frees it if it is closed and
 * nothing else is pending). */
static inline void conn_hold(struct conn *c)
{
    c->st.ops++;
}
void conn_op_done(struct shard *s, struct conn *c);

/* A permission check answered: handle the packets that waited. */
void conn_resume(struct shard *s, struct conn *c);

/* Remember the auth plugin's answer: tenant id, user id, attributes and
 * CONNACK user properties (copied). 0 or -ENOMEM. */
int conn_set_auth(struct conn *c, uint16_t tenant, const struct ringmq_auth_result *r);

/* Handle `bytes` as if just received (after authentication), then go on
 * reading. */
void conn_refeed(struct shard *s, struct conn *c, const uint8_t *bytes, size_t len);

/* The auth plugin answered for this connection (its CONNECT is in
 * c->stash): refuse it, or go on with the tenant it names. */
struct plugin_done;
void conn_on_auth_done(struct shard *s, struct conn *c, const struct plugin_done *d);

/* Hand this connection (in CONN_NEW, CONNECT decoded) to shard `home`
 * along with `bytes` (everything read so far, starting with CONNECT). */
void conn_relocate(struct shard *s, struct conn *c, uint32_t home, const uint8_t *bytes,
                   size_t len);

/* Shutdown: tell every 5.0 client (DISCONNECT 0x8B) and, with
 * wills_on_shutdown, publish every connected client's will. */
void conn_shutdown_notice(struct shard *s);

/* True while any connection has a send in flight (shutdown linger). */
bool conn_any_sending(const struct shard *s);

/* Free every connection of the shard without any I/O (shutdown; the ring's
 * exit closes the descriptors). Sessions are detached first. */
void conn_free_all(struct shard *s);

#endif
