/*
 * acl: permission checks by the auth plugin for CONNECT, PUBLISH, SUBSCRIBE
 * and UNSUBSCRIBE, with the verdicts the plugin marks cacheable kept per
 * connection, so a client publishing to the same topic asks the plugin once.
 *
 * A check the cache cannot answer goes to the plugin asynchronously; the
 * connection stops handling packets (c->blocked) until the answer comes,
 * then handles the same packet again, which finds the verdict. Runs on the
 * connection's shard.
 */
#ifndef RINGMQ_BROKER_ACL_H
#define RINGMQ_BROKER_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringmq/plugin.h"

struct shard;
struct conn;
struct conn_identity;
struct plugin_done;

/* The answer is on its way: the handler stops, leaving the packet
 * unconsumed (PROTO_WAIT, protocol.h), and handles it again from the start
 * when the plugin answers. acl's own value: no handler returns it. */
#define ACL_WAIT (-2)

/* RINGMQ_GRANTED, RINGMQ_DENIED, RINGMQ_CHECK_ERROR, or ACL_WAIT; for a
 * SUBSCRIBE also RINGMQ_GRANTED_PER_TOPIC (deliveries through it need
 * readcheck_allows). Without an auth plugin: RINGMQ_GRANTED. For a refusal,
 * *reason (may be NULL) gets the MQTT 5.0 reason code the plugin asked for
 * when the packet answering `action` may carry it (PUBACK/PUBREC, SUBACK,
 * UNSUBACK), else 0: the caller's default. */
int acl_check(struct shard *s, struct conn *c, enum ringmq_action action, const uint8_t *topic,
              size_t len, uint8_t qos, bool retain, uint8_t *reason);

/* The CONNECT check, once the client's tenant is known (before its session
 * exists); client_id is the one the client sent (empty when the server
 * assigns one). Same answers as acl_check; *reason for CONNACK. */
int acl_check_connect(struct shard *s, struct conn *c, const char *tenant, const uint8_t *client_id,
                      size_t len, uint8_t *reason);

/* The plugin answered a check of this connection. */
void acl_on_done(struct shard *s, struct conn *c, const struct plugin_done *d);

/* The packet whose checks were answered one by one has been handled. */
void acl_packet_done(struct conn *c);

/* Free the verdicts (with the identity). */
void acl_free(struct conn_identity *id);

#endif
