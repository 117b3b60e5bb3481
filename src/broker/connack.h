/*
 * connack: the CONNACK that answers a CONNECT, for MQTT 3.1, 3.1.1 and 5.0.
 * A 5.0 CONNACK states what the client's tenant allows and is made to fit
 * the client's Maximum Packet Size (MQTT-3.1.2-24), leaving out what may be
 * left out; one that cannot fit is not sent at all.
 *
 * Used by connect.c on the connection's shard. The structs are public
 * because the caller builds a CONNACK on its stack before it accepts the
 * connection (to refuse one whose CONNACK cannot be sent) and writes it
 * after.
 */
#ifndef RINGMQ_BROKER_CONNACK_H
#define RINGMQ_BROKER_CONNACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/identity.h"
#include "mqtt/props.h"

struct conn;
struct shard;
struct tenant_settings;

/* What a CONNACK says. Strings are borrowed. */
struct connack_info {
    const struct tenant_settings *ts; /* what the client's tenant allows (success only) */
    bool present;                     /* session present */
    uint8_t code;                     /* 3.x return code or 5.0 reason code */
    bool expiry_changed;              /* send the Session Expiry Interval granted */
    uint32_t expiry;
    const uint8_t *assigned; /* Assigned Client Identifier, NULL when none */
    size_t assigned_len;
    bool server_keepalive; /* send `keepalive` as Server Keep Alive */
    uint16_t keepalive;
    bool auth;          /* name the connection's authentication method */
    const char *reason; /* a refusal's Reason String, NULL when none */
};

/* The properties of one 5.0 CONNACK, borrowing their strings from the
 * connack_info, the connection and its identity. */
struct connack_props {
    struct mqtt_props pr;
    struct mqtt_user_prop users[IDENTITY_KV_MAX];
    size_t n_users;
};

/* Plugin key/value pairs as User Properties (borrowing the strings), at
 * most IDENTITY_KV_MAX; a pair with a string over 65,535 bytes cannot be an
 * MQTT string and is left out. Returns how many were written to out. */
size_t connack_user_props(const struct ringmq_kv *kv, size_t n, struct mqtt_user_prop *out);

/*
 * The properties of 5.0 client c's CONNACK (c->v5 set) within its Maximum
 * Packet Size. Left out until it fits, in this order: the plugin's User
 * Properties and the Reason String (MQTT-3.2.2-19/-20), then the Topic
 * Alias Maximum (its absence only makes the client send no aliases).
 * False, logged, when it still does not fit: the CONNACK must not be sent.
 */
bool connack_build(const struct conn *c, const struct connack_info *ci, struct connack_props *cp);

/* Queue a 5.0 CONNACK that connack_build made (the same ci, bar `present`,
 * which changes no size). */
void connack_write_built(struct shard *s, struct conn *c, const struct connack_info *ci,
                         const struct connack_props *cp);

/* Build and queue the CONNACK; a 5.0 one that cannot fit is not queued
 * (the caller closes the connection either way after a refusal). */
void connack_write(struct shard *s, struct conn *c, const struct connack_info *ci);

#endif
