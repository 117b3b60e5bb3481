/*
 * What the tests of a store share (tests/unit/session/store_test.c, the
 * records of tests/unit/persist): a real shard without a loop, one tenant
 * ("global"), connections that only collect their output, time moved by
 * hand; the client's side of the session code (connect, subscribe,
 * publish, acks, disconnect); and the scenarios that drive every durable
 * change the broker makes, each calling the test's check after every step.
 *
 * A test suite's .init calls harness_setup with its store and its check;
 * its .fini calls harness_teardown.
 */
#ifndef RINGMQ_TESTS_BROKER_STORE_HARNESS_H
#define RINGMQ_TESTS_BROKER_STORE_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/conn.h"
#include "broker/shard.h"
#include "config/config.h"
#include "session/msg.h"
#include "session/session.h"
#include "session/store.h"

/* The shard, its one tenant and the tenant's settings (tests change
 * them), valid between setup and teardown. */
extern struct shard shard;
extern struct tenant *tenant0;
extern struct tenant_settings set;

/* Compare what the store rebuilt with the live state after `step`. */
typedef void (*harness_check_fn)(const char *step);

void harness_setup(const struct store_ops *store, harness_check_fn check);
void harness_teardown(void);

struct conn *conn_new(void);
void conn_free(struct conn *c);

/* CONNECT as connect.c makes it: attach, then resume. Takes the will. */
struct session *connect_as(struct conn *c, const char *id, bool clean, uint32_t expiry_s,
                           struct msg *will, uint32_t will_delay_s, bool *present);
void disconnect(struct conn *c, bool send_will);

struct msg *msg_new(const char *topic, const char *payload, uint8_t qos, bool retain);
void publish(const char *topic, const char *payload, uint8_t qos, bool retain);
void subscribe(struct session *ss, const char *filter, uint8_t qos, uint32_t subid);

/* Acknowledge everything in flight, as the client would. */
void ack_all(struct session *ss);

/* One packet a connection received (what take_output decodes). */
struct out_pkt {
    uint8_t type; /* enum mqtt_packet_type */
    uint8_t qos;
    bool dup;
    uint16_t pid;
    char topic[32];
    char payload[32];
};

#define OUT_PKT_MAX 32

/* Decode the packets the connection collected since the last call into
 * out (at most OUT_PKT_MAX), and consume them as if sent. Returns how
 * many. PUBLISH and the acks only. */
size_t take_output(struct conn *c, struct out_pkt *out);

/* Move time on by ms, running the session wheel. */
void advance(uint64_t ms);

/* ---- the scenarios, each checked after every step ---- */

/* Connect with a will, subscribe, QoS 1/2 in flight and queued, acks,
 * PUBREC, inbound QoS 2 ids, offline queueing, the will delay, resumption,
 * unsubscribe, a new expiry at DISCONNECT, expiry. */
void scenario_session_life(void);
/* Retained put, replace, clear, a retained will. */
void scenario_retained(void);
/* Takeover with a new expiry and will, then Clean Start. */
void scenario_clean_start_and_takeover(void);
/* A full queue dropping its oldest, then its newest. */
void scenario_full_queue(void);

#endif
