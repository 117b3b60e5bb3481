/*
 * alias: MQTT 5.0 state of one connection: the client's limits, enhanced
 * authentication, and the two topic alias tables (MQTT 5.0 section
 * 3.3.2.3.4). Allocated only for 5.0 clients, so an idle 3.1.1 connection
 * pays one pointer for all of it. Owned by the connection's shard.
 */
#ifndef RINGMQ_BROKER_ALIAS_H
#define RINGMQ_BROKER_ALIAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Aliases we hand out to one client at most, whatever it allows. */
#define ALIAS_OUT_LIMIT 1024u

enum conn_auth {
    AUTH_NONE = 0,   /* no enhanced authentication */
    AUTH_CONNECTING, /* CONNECT answered with AUTH 0x18, waiting */
    AUTH_DONE,       /* authenticated with auth_method */
    AUTH_REAUTHING,  /* re-authentication answered with AUTH 0x18 */
};

struct alias_in_entry {
    uint16_t len;
    uint8_t *topic;
};

struct alias_out_entry {
    uint64_t hash;
    uint16_t alias; /* 0: free slot */
    uint16_t len;
    uint8_t *topic;
};

struct conn_v5 {
    uint32_t max_packet_out;    /* client's Maximum Packet Size; 0: protocol limit */
    uint32_t expiry_at_connect; /* Session Expiry Interval sent in CONNECT */
    uint16_t alias_max_out;     /* aliases the client accepts (capped) */
    uint16_t alias_used_out;
    uint16_t alias_max_in; /* aliases we accept (config) */
    bool problem_info;     /* Request Problem Information (default true) */
    uint8_t auth;          /* enum conn_auth */
    uint16_t auth_method_len;
    uint8_t *auth_method;
    struct alias_in_entry *alias_in;   /* [alias_max_in + 1], on first use */
    struct alias_out_entry *alias_out; /* open addressing, on first use */
    uint32_t alias_out_cap;
};

/* Free the tables and the struct. NULL is a no-op. */
void conn_v5_destroy(struct conn_v5 *v);

/* Client -> server: remember `topic` for `alias` (1..alias_max_in).
 * 0 or -ENOMEM. */
int alias_in_set(struct conn_v5 *v, uint16_t alias, const uint8_t *topic, size_t len);

/* The topic of `alias`, or NULL when the client never set it. */
const uint8_t *alias_in_get(const struct conn_v5 *v, uint16_t alias, size_t *len);

/*
 * Server -> client: the alias of `topic`, assigning the next free one when
 * the client allows more; 0 when it has none. *known says whether the
 * client already has the mapping (then the topic may be sent empty).
 */
uint16_t alias_out_get(struct conn_v5 *v, const uint8_t *topic, size_t len, bool *known);

/*
 * Take back `alias`, which the last alias_out_get() just assigned to `topic`
 * (known false), because the PUBLISH that was to tell the client was not
 * sent: the client must never see that alias without its topic.
 */
void alias_out_undo(struct conn_v5 *v, uint16_t alias, const uint8_t *topic, size_t len);

#endif
