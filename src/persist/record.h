/*
 * record: the bytes of one durable change, one record type per store hook
 * (session/store.h), and their decoding. A record is what the log frames and
 * checksums (the log is not this room's: it hands each record here as a
 * type byte and a body); this module knows only bodies.
 *
 * Records replay without run-time ids. A session put names its session by
 * its tenant's name and its client id (tenant ids are interned at run time
 * and differ between runs) and by a number (u32, not 0) that the writer
 * chose (record_writer.number); every other record about the session names
 * only the number, which stands for the put's key until a session del or
 * another put of the number. A number is one log's: the writer never gives
 * one to two live sessions, and may give a session a new one with a put.
 * A delivery through a shared subscription names its $share filter by its
 * text. Integers are little-endian. The layout of every type is in
 * docs/DESIGN.md ("Records of durable state").
 *
 * Formats: the log segment a record is in says which (its version,
 * store/format.h). Format 3 (RECORD_FORMAT) is format 2 and
 * RECORD_INFL_DEL_NEXT; format 2 (RECORD_FORMAT_NUMBERED, read only)
 * numbers sessions; format 1 (RECORD_FORMAT_KEYED, read only) put the
 * tenant name and client id in every session record.
 *
 * Time: a message's deadline (msg.expires_at_ms) is on the broker's
 * monotonic clock, which restarts at boot, so a record stores it as a
 * wall-clock deadline (ms since the Unix epoch) converted with the writer's
 * two readings of "now"; replay converts back with its own. A will's
 * expires_at_ms is its Message Expiry Interval (store.h) and is stored as
 * it is: it starts counting only when the will is published.
 *
 * Encoding writes straight into the buffer the writer reserves: one
 * reserve and one commit per record, nothing allocated. Decoding allocates
 * nothing either: the decoded record points into the bytes it was given.
 * Pure functions over bytes; no logging; any thread.
 */
#ifndef RINGMQ_PERSIST_RECORD_H
#define RINGMQ_PERSIST_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct msg;
struct tenant;
struct session_state;
struct sess_sub;
struct qentry;
struct inflight;

/* The format of the record bodies written; and the oldest one read. */
#define RECORD_FORMAT          3
#define RECORD_FORMAT_NUMBERED 2
#define RECORD_FORMAT_KEYED    1

/* Record types; 0 is never one (free for the log's own use). */
enum record_type {
    RECORD_SESSION_PUT = 1,
    RECORD_SESSION_DEL = 2,
    RECORD_SUB_PUT = 3,
    RECORD_SUB_DEL = 4,
    RECORD_QUEUE_PUSH = 5,
    RECORD_QUEUE_POP = 6,
    RECORD_INFL_PUT = 7,
    RECORD_INFL_REC = 8,
    RECORD_INFL_DEL = 9,
    RECORD_QOS2_ADD = 10,
    RECORD_QOS2_DEL = 11,
    RECORD_RETAINED_PUT = 12,
    RECORD_RETAINED_CLEAR = 13,
    /* Compaction markers (empty bodies): a snapshot begins, is whole. */
    RECORD_SNAP_BEGIN = 14,
    RECORD_SNAP_END = 15,
    /* The key of a QoS 2 flow a shard delivered, kept / forgotten
     * (broker/ingress.h): a u64. */
    RECORD_INGRESS_PUT = 16,
    RECORD_INGRESS_DEL = 17,
    /* The queue's head went in flight with a packet id: a queue pop and an
     * infl put (state 1, the head's delivery) in one. */
    RECORD_INFL_FROM_QUEUE = 18,
    /* A session put and when the offline session's expiry and will delay
     * run out (record_session_put_at); type 1 is read as ever. */
    RECORD_SESSION_PUT_AT = 19,
    /* Format 3: an INFL_DEL (its pid) and the INFL_FROM_QUEUE that follows
     * it for the same session (pid2) in one: the acknowledgement that frees
     * a window slot and the queue's head taking it. Written by extending
     * the INFL_DEL just written (record_del_next). */
    RECORD_INFL_DEL_NEXT = 20,
    RECORD_TYPE_MAX = 20,
};

/*
 * Where records go: reserve(ctx, len) returns room for a body of len
 * bytes (NULL when there is none: the record is not written), commit(ctx,
 * type, len) then makes the body just written there a record. A log that
 * takes whole records (append(type, bytes, len)) reserves in a scratch
 * buffer it keeps. mono_ms and wall_ms are "now" on the broker's clock
 * (core/clock.h) and on CLOCK_REALTIME, read together by the caller (once
 * per loop turn is enough): they convert message deadlines.
 */
struct record_writer {
    uint8_t *(*reserve)(void *ctx, size_t len);
    void (*commit)(void *ctx, uint8_t type, size_t len);
    void *ctx;
    uint64_t mono_ms, wall_ms;
    /* The number of session st of tenant t in this log (not 0; see above). */
    uint32_t (*number)(void *ctx, const struct tenant *t, const struct session_state *st);
};

/* ---- encoding: one function per store hook, the same arguments ----
 * Each returns 0, -ENOMEM when reserve gave no room, or -EMSGSIZE for a
 * record over UINT32_MAX bytes. Everything is borrowed for the call. */

int record_session_put(struct record_writer *w, const struct tenant *t,
                       const struct session_state *st);
/* record_session_put of an offline session whose expiry and will delay run
 * out at these deadlines (the broker's monotonic clock, 0: none), written
 * as wall-clock times so that the time the broker is down counts too. */
int record_session_put_at(struct record_writer *w, const struct tenant *t,
                          const struct session_state *st, uint64_t expire_mono_ms,
                          uint64_t will_mono_ms);
int record_session_del(struct record_writer *w, const struct tenant *t,
                       const struct session_state *st);
int record_sub_put(struct record_writer *w, const struct tenant *t, const struct session_state *st,
                   const struct sess_sub *sub);
int record_sub_del(struct record_writer *w, const struct tenant *t, const struct session_state *st,
                   const uint8_t *filter, size_t len);
int record_queue_push(struct record_writer *w, const struct tenant *t,
                      const struct session_state *st, const struct qentry *e);
int record_queue_pop(struct record_writer *w, const struct tenant *t,
                     const struct session_state *st);
/* An entry of the window, in either state (a snapshot writes both). */
int record_infl_put(struct record_writer *w, const struct tenant *t, const struct session_state *st,
                    const struct inflight *e);
/* RECORD_INFL_REC, RECORD_INFL_DEL, RECORD_QOS2_ADD, RECORD_QOS2_DEL,
 * RECORD_INFL_FROM_QUEUE. */
int record_pid(struct record_writer *w, uint8_t type, const struct tenant *t,
               const struct session_state *st, uint16_t pid);
/* Turn the RECORD_INFL_DEL whose body is at `del` (record_pid's, the last
 * record written: the caller knows) into RECORD_INFL_DEL_NEXT by writing
 * pid2 at `more`, the 2 bytes the writer added behind it. */
void record_del_next(uint8_t *more, uint16_t pid2);
enum { RECORD_DEL_NEXT_MORE = 2 };

/* RECORD_RETAINED_PUT, or RECORD_RETAINED_CLEAR (m the empty message). */
int record_retained(struct record_writer *w, uint8_t type, const struct tenant *t,
                    const struct msg *m);

/* RECORD_INGRESS_PUT or RECORD_INGRESS_DEL of `key`. */
int record_ingress(struct record_writer *w, uint8_t type, uint64_t key);

/* ---- decoding ---- */

/* A message as a record holds it; the pointers are into the record. */
struct record_msg {
    uint8_t qos, retain;
    /* Wall-clock deadline (ms since the epoch), 0: never; for a will its
     * Message Expiry Interval in ms (see above). */
    uint64_t expiry;
    uint64_t retain_stamp;
    const uint8_t *topic, *payload, *props;
    uint16_t topic_len;
    uint32_t payload_len, props_len;
};

/* A decoded record: the fields its type has (the others are zero). */
struct record {
    uint8_t type;
    uint32_t no;           /* the session's number: format 2, session records */
    const uint8_t *tenant; /* retained records, session puts; format 1: session records */
    uint16_t tenant_len;
    const uint8_t *client_id; /* session puts; format 1: every session record */
    uint16_t client_id_len;
    uint32_t expiry_s, will_delay_s; /* session put */
    /* Session put: when the offline session's expiry and its will's delay
     * run out, on the wall clock (ms); 0: not counting (connected, or a
     * record from before these were written: counted from the restart). */
    uint64_t expire_wall_ms, will_wall_ms;
    bool has_msg; /* m holds: the will, the delivery's, the retained */
    struct record_msg m;
    const uint8_t *filter; /* sub put/del */
    uint16_t filter_len;
    uint8_t qos, opts; /* sub put (its QoS), queue push and infl put (the delivery's) */
    uint32_t subid;
    uint8_t retain, state; /* queue push, infl put */
    uint16_t pid;          /* infl put/rec/del, qos2 add/del, infl del next (the del's) */
    uint16_t pid2;         /* infl del next: the queue head's */
    const uint8_t *ids;    /* Subscription Identifiers: nids little-endian u32 */
    uint32_t nids;
    const uint8_t *share; /* the $share filter of the delivery, share_len 0: none */
    uint16_t share_len;
    uint64_t key; /* ingress put/del */
};

/* Decode the body of a record of `type` in `format` (a snapshot marker:
 * only its type): 0, or -EBADMSG when the format or the type is unknown, a
 * length or a value is out of range, a number is 0, or bytes are missing
 * or left over. Never reads outside p[0..len). */
int record_decode(uint16_t format, uint8_t type, const uint8_t *p, size_t len, struct record *r);

/* Whether `type` is about a session (and names it: a key or a number). */
bool record_is_session(uint8_t type);

/* The session a record of `type` names, without decoding the rest:
 * r->no, and r->tenant and r->client_id when the record holds them (puts;
 * format 1: all). 0, or -EBADMSG when the record is too short to say, or
 * is no session's. */
int record_session_of(uint16_t format, uint8_t type, const uint8_t *p, size_t len,
                      struct record *r);

/* The i-th Subscription Identifier of r (i < r->nids). */
static inline uint32_t record_id(const struct record *r, uint32_t i)
{
    const uint8_t *b = r->ids + 4u * i;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Deadline conversions (0 stays 0: never). A deadline already passed maps
 * to one that has passed too, never to 0. */
uint64_t record_deadline_to_wall(uint64_t mono_deadline, uint64_t mono_now, uint64_t wall_now);
uint64_t record_deadline_to_mono(uint64_t wall_deadline, uint64_t mono_now, uint64_t wall_now);

#endif
