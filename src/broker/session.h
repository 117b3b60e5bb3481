/*
 * session: MQTT session state of one client id, homed on the shard chosen
 * by the hash of (tenant, client id), so takeover and resumption are always
 * local. Holds subscriptions, QoS 1/2 in-flight messages, the bounded
 * queue for offline or slow clients, inbound QoS 2 packet ids and the will.
 */
#ifndef RINGMQ_BROKER_SESSION_H
#define RINGMQ_BROKER_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct shard;
struct tenant;
struct conn;
struct msg;

/* One subscriber of a filter on this shard (value of the trie). */
struct sub_entry {
    struct session *s;
    uint8_t qos;
};

/* Trie value: this shard's subscribers of one filter, and the interest
 * mask of shards that have at least one (own bit set iff n > 0). */
struct sub_node {
    uint64_t mask;
    uint32_t n, cap;
    struct sub_entry *v;
};

/* A subscription as the session remembers it. */
struct sess_sub {
    uint8_t qos;
    uint16_t len;
    uint8_t filter[];
};

enum inflight_state {
    INFL_WAIT_ACK = 1,  /* PUBLISH sent, waiting for PUBACK or PUBREC */
    INFL_WAIT_COMP = 2, /* PUBREL sent, waiting for PUBCOMP */
};

struct inflight {
    struct msg *m; /* NULL once PUBREC arrived */
    uint16_t pid;
    uint8_t qos;
    uint8_t state;
    uint8_t retain;
};

struct qentry {
    struct msg *m;
    uint8_t qos;
    uint8_t retain;
};

struct pending_sub;

struct session {
    struct session *reg_next; /* tenant registry chain */
    uint64_t reg_hash;
    struct tenant *tenant;
    struct conn *conn; /* NULL while offline */
    uint8_t *client_id;
    uint16_t client_id_len;
    bool clean;
    uint16_t next_pid;
    struct sess_sub **subs;
    uint32_t nsubs, subs_cap;
    struct inflight *infl; /* in send order */
    uint16_t ninfl, infl_cap;
    struct qentry *q; /* ring buffer */
    uint32_t qhead, qlen, qcap;
    uint64_t qbytes;
    uint16_t *qos2_in; /* inbound QoS 2 ids waiting for PUBREL */
    uint16_t nqos2, qos2_cap;
    struct msg *will;
    uint32_t match_epoch;
    uint8_t match_qos;
    struct pending_sub *pending;
};

/*
 * Attach connection `c` to the session of `client_id` in tenant `t`,
 * taking over a connected one (it is closed) and creating the session if
 * needed; `clean` discards any old state. *present says whether state was
 * resumed. Takes ownership of `will` (may be NULL). NULL on OOM.
 */
struct session *session_attach(struct shard *s, struct tenant *t, struct conn *c,
                               const uint8_t *client_id, size_t len, bool clean, struct msg *will,
                               bool *present);

/* After CONNACK: resend in-flight messages (DUP) and PUBRELs in order, then
 * move queued messages in (MQTT-4.4.0-1). */
void session_resume(struct shard *s, struct session *ss);

/* The connection is gone: publish the will when `send_will`, then destroy
 * a clean session or keep a persistent one offline. */
void session_detach(struct shard *s, struct session *ss, bool send_will);

/* Deliver `m` at `qos` (already the min of message and subscription QoS). */
void session_deliver(struct shard *s, struct session *ss, struct msg *m, uint8_t qos, bool retain);

/* Acknowledgements from the client. Return 0, or a reason code for a
 * protocol violation (the caller closes). */
int session_on_puback(struct shard *s, struct session *ss, uint16_t pid);
int session_on_pubrec(struct shard *s, struct session *ss, uint16_t pid);
int session_on_pubcomp(struct shard *s, struct session *ss, uint16_t pid);

/* Inbound QoS 2 ids: true when pid is waiting for PUBREL. */
bool session_qos2_has(const struct session *ss, uint16_t pid);
int session_qos2_add(struct session *ss, uint16_t pid);
void session_qos2_remove(struct session *ss, uint16_t pid);

/* Add or replace a subscription; *is_new_interest says whether this shard
 * had no subscriber of the filter before. 0 or -ENOMEM. */
int session_subscribe(struct shard *s, struct session *ss, const uint8_t *filter, size_t len,
                      uint8_t qos, bool *is_new_interest);

/* Remove a subscription; returns true when it existed. */
bool session_unsubscribe(struct shard *s, struct session *ss, const uint8_t *filter, size_t len);

/* Free every session of the tenant (shutdown). */
void session_destroy_all(struct shard *s, struct tenant *t);

#endif
