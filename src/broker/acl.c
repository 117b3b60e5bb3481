/*
 * acl: permission checks with a per-connection verdict cache (see acl.h).
 *
 * The cache is a small open-addressing table of 64-bit keys (XXH3 of
 * action, QoS, retain and topic; a collision would reuse another topic's
 * verdict with probability 2^-61 per pair, which a client choosing topics
 * cannot search its way to) holding the verdict in the low bits, and beside
 * it the plugin's reason code for a refusal; it is emptied when full rather
 * than grown without bound. Verdicts
 * not marked cacheable are kept only until the packet that asked is
 * handled. A SIGHUP reload of the plugins empties every cache at its
 * connection's next check (the plugin host's generation changed), so a
 * changed ACL file applies to connected clients too.
 */
#include "broker/acl.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "broker/conn.h"
#include "broker/shard.h"
#include "core/log.h"
#include "core/vec.h"
#include "plugin/host.h"
#include "session/session.h"

#define ACL_CACHE_SLOTS 256u /* per connection, power of two */
#define ACL_MEMO_TOPIC  56u  /* longest topic the last-verdict memo keeps */

/* A slot: the key, whose bit 2 is always set (a slot is never 0), and the
 * verdict in bits 0-1 (enum ringmq_verdict fits). An answer, as the
 * functions below pass it: the verdict, and the reason code in bits 8-15. */
#define KEY_MASK             (~UINT64_C(3))
#define ANSWER(slot, reason) ((uint32_t)((slot)&3u) | (uint32_t)(reason) << 8)
#define VERDICT_OF(answer)   ((int)((answer)&3u))
#define REASON_OF(answer)    ((uint8_t)((answer) >> 8))

/* One verdict of the packet being handled. */
struct acl_answer {
    uint64_t slot;
    uint8_t reason;
};

struct acl_cache {
    uint32_t used;
    uint32_t generation; /* plugin_host_generation() the slots were filled under */
    uint64_t pending;    /* key of the check in flight, 0: none */
    /* Every verdict the packet being handled got (cacheable or not): the
     * packet is handled again after each answer and must find them all,
     * whatever happens to the slots meanwhile (full, or a reload). Emptied
     * when the packet is done. */
    struct acl_answer *packet;
    uint32_t npacket, packet_cap;
    uint64_t slots[ACL_CACHE_SLOTS];  /* key | verdict, 0: empty */
    uint8_t reasons[ACL_CACHE_SLOTS]; /* the slot's reason code, 0: none */
    /* The last PUBLISH verdict found in the slots: a client publishing to
     * the same topic again (the common case) skips the hash and the probe.
     * memo_len 0: none. Valid under `generation` only. */
    uint8_t memo_len, memo_qos, memo_retain, memo_reason;
    uint8_t memo_verdict;
    uint8_t memo_topic[ACL_MEMO_TOPIC];
};

static uint64_t key_of(enum ringmq_action a, const uint8_t *topic, size_t len, uint8_t qos,
                       bool retain)
{
    uint64_t seed = (uint64_t)a << 8 | (uint64_t)qos << 1 | (retain ? 1u : 0u);
    /* The low 2 bits carry the verdict; a key is never 0. */
    return (XXH3_64bits_withSeed(topic, len, seed) & KEY_MASK) | 4u;
}

/* An answer (ANSWER) or -1. */
static int lookup_packet(const struct acl_cache *a, uint64_t key)
{
    for (uint32_t i = 0; i < a->npacket; i++)
        if ((a->packet[i].slot & KEY_MASK) == key)
            return (int)ANSWER(a->packet[i].slot, a->packet[i].reason);
    return -1;
}

static int lookup_slots(const struct acl_cache *a, uint64_t key)
{
    uint32_t mask = ACL_CACHE_SLOTS - 1;
    for (uint32_t i = (uint32_t)(key >> 3) & mask, n = 0; n < ACL_CACHE_SLOTS;
         i = (i + 1) & mask, n++) {
        if (a->slots[i] == 0)
            return -1;
        if ((a->slots[i] & KEY_MASK) == key)
            return (int)ANSWER(a->slots[i], a->reasons[i]);
    }
    return -1;
}

static void insert(struct acl_cache *a, uint64_t key, uint32_t answer)
{
    if (a->used >= ACL_CACHE_SLOTS * 3 / 4) {
        /* Emptied rather than grown without bound; the packet being
         * handled keeps its verdicts in `packet`. */
        memset(a->slots, 0, sizeof(a->slots));
        a->used = 0;
        a->memo_len = 0;
    }
    uint32_t mask = ACL_CACHE_SLOTS - 1;
    uint32_t i = (uint32_t)(key >> 3) & mask; /* above the fixed bit 2 */
    while (a->slots[i] != 0)
        i = (i + 1) & mask;
    a->slots[i] = key | (uint64_t)VERDICT_OF(answer);
    a->reasons[i] = REASON_OF(answer);
    a->used++;
}

/* Whether MQTT 5.0 lets the packet answering `action` carry reason code
 * rc for a refusal (SUBACK 3.9.3, PUBACK 3.4.2.1 and PUBREC 3.5.2.1,
 * UNSUBACK 3.11.3, CONNACK 3.2.2.2). */
static bool reason_allowed(enum ringmq_action action, uint8_t rc)
{
    static const uint8_t suback[] = {0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
    static const uint8_t puback[] = {0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
    static const uint8_t unsuback[] = {0x80, 0x83, 0x87, 0x8F, 0x91};
    static const uint8_t connack[] = {0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
                                      0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95,
                                      0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
    const uint8_t *v;
    size_t n;
    switch (action) {
    case RINGMQ_ACTION_SUBSCRIBE:
        v = suback, n = sizeof(suback);
        break;
    case RINGMQ_ACTION_PUBLISH:
        v = puback, n = sizeof(puback);
        break;
    case RINGMQ_ACTION_UNSUBSCRIBE:
        v = unsuback, n = sizeof(unsuback);
        break;
    case RINGMQ_ACTION_CONNECT:
        v = connack, n = sizeof(connack);
        break;
    default:
        return false;
    }
    return memchr(v, rc, n) != NULL;
}

/* The verdict of an answer for this action, *reason set for a refusal. */
static int verdict_of(enum ringmq_action action, uint32_t answer, uint8_t *reason)
{
    int v = VERDICT_OF(answer);
    /* Only a SUBSCRIBE can be granted with per-topic read checks. */
    if (v == RINGMQ_GRANTED_PER_TOPIC && action != RINGMQ_ACTION_SUBSCRIBE)
        v = RINGMQ_CHECK_ERROR;
    if (reason) {
        uint8_t rc = REASON_OF(answer);
        *reason = v != RINGMQ_GRANTED && v != RINGMQ_GRANTED_PER_TOPIC && reason_allowed(action, rc)
                      ? rc
                      : 0;
    }
    return v;
}

/* key: what identifies the verdict (see key_of). An answer (ANSWER), or
 * ACL_WAIT. */
static int check(struct shard *s, struct conn *c, const struct ringmq_check *chk, uint64_t key)
{
    if (!c->auth || !s->port || !plugin_host_has_auth(s->broker->plugins))
        return RINGMQ_GRANTED;
    struct conn_identity *id = c->auth;
    if (!id->acl) {
        id->acl = calloc(1, sizeof(*id->acl));
        if (!id->acl)
            return RINGMQ_CHECK_ERROR;
    }
    uint32_t gen = plugin_host_generation(s->broker->plugins);
    if (id->acl->generation != gen) {
        memset(id->acl->slots, 0, sizeof(id->acl->slots));
        id->acl->used = 0;
        id->acl->memo_len = 0;
        id->acl->generation = gen;
    }
    int v = lookup_packet(id->acl, key);
    if (v >= 0)
        return v;
    v = lookup_slots(id->acl, key);
    if (v >= 0) {
        /* Only a cacheable verdict (from the slots) is memoised. */
        struct acl_cache *a = id->acl;
        if (chk->action == RINGMQ_ACTION_PUBLISH && chk->topic.len &&
            chk->topic.len <= ACL_MEMO_TOPIC) {
            a->memo_len = (uint8_t)chk->topic.len;
            a->memo_qos = chk->qos;
            a->memo_retain = chk->retain;
            a->memo_verdict = (uint8_t)VERDICT_OF((uint32_t)v);
            a->memo_reason = REASON_OF((uint32_t)v);
            memcpy(a->memo_topic, chk->topic.p, chk->topic.len);
        }
        return v;
    }
    struct ringmq_check ask = *chk;
    ask.user_id = id->user_id;
    struct ringmq_kv attrs[IDENTITY_KV_MAX];
    identity_kvs(id->attrs, id->n_attrs, attrs);
    ask.attributes = attrs;
    ask.n_attributes = id->n_attrs;
    id->acl->pending = key;
    conn_hold(c); /* the call holds the connection until it is answered */
    if (plugin_check(s->port, (uint64_t)(uintptr_t)c, &ask) < 0) {
        c->st.ops--;
        id->acl->pending = 0;
        return RINGMQ_CHECK_ERROR;
    }
    c->blocked = true;
    return ACL_WAIT;
}

int acl_check(struct shard *s, struct conn *c, enum ringmq_action action, const uint8_t *topic,
              size_t len, uint8_t qos, bool retain, uint8_t *reason)
{
    if (reason)
        *reason = 0;
    if (!c->auth)
        return RINGMQ_GRANTED;
    const struct acl_cache *a = c->auth->acl;
    if (a && action == RINGMQ_ACTION_PUBLISH && len && a->memo_len == len && a->memo_qos == qos &&
        a->memo_retain == retain && memcmp(a->memo_topic, topic, len) == 0 &&
        a->generation == plugin_host_generation(s->broker->plugins))
        return verdict_of(action, a->memo_verdict | (uint32_t)a->memo_reason << 8, reason);
    struct session *ss = c->session;
    struct ringmq_check chk = {
        .action = action,
        .tenant = ss->tenant->name,
        .client_id = {ss->st.client_id, ss->st.client_id_len},
        .topic = {topic, len},
        .qos = qos,
        .retain = retain,
    };
    int v = check(s, c, &chk, key_of(action, topic, len, qos, retain));
    return v == ACL_WAIT ? v : verdict_of(action, (uint32_t)v, reason);
}

int acl_check_connect(struct shard *s, struct conn *c, const char *tenant, const uint8_t *client_id,
                      size_t len, uint8_t *reason)
{
    if (reason)
        *reason = 0;
    struct ringmq_check chk = {
        .action = RINGMQ_ACTION_CONNECT,
        .tenant = tenant,
        .client_id = {client_id, len},
    };
    /* Keyed by the client id: the CONNECT handled again finds its verdict. */
    int v = check(s, c, &chk, key_of(RINGMQ_ACTION_CONNECT, client_id, len, 0, false));
    return v == ACL_WAIT ? v : verdict_of(RINGMQ_ACTION_CONNECT, (uint32_t)v, reason);
}

void acl_on_done(struct shard *s, struct conn *c, const struct plugin_done *d)
{
    struct acl_cache *a = c->auth ? c->auth->acl : NULL;
    if ((c->state != CONN_ACTIVE && c->state != CONN_NEW) || !a || !a->pending) {
        conn_op_done(s, c); /* closed meanwhile */
        return;
    }
    /* The host kept the verdict within what the plugin may say. */
    uint32_t answer = (uint32_t)d->r.check.verdict | (uint32_t)d->r.check.reason_code << 8;
    if (a->npacket == a->packet_cap) {
        struct acl_answer *v = vec_grow(a->packet, &a->packet_cap, sizeof(*v), 8);
        if (!v) {
            /* The packet cannot be handled without its verdicts. */
            a->pending = 0;
            c->blocked = false;
            c->st.ops--;
            conn_close(s, c, CLOSE_PEER_GONE);
            conn_resume(s, c);
            return;
        }
        a->packet = v;
    }
    a->packet[a->npacket++] =
        (struct acl_answer){a->pending | (uint64_t)VERDICT_OF(answer), REASON_OF(answer)};
    if (d->r.check.cacheable && !d->timed_out)
        insert(a, a->pending, answer);
    a->pending = 0;
    c->blocked = false;
    c->st.ops--;
    conn_resume(s, c);
}

void acl_packet_done(struct conn *c)
{
    struct acl_cache *a = c->auth ? c->auth->acl : NULL;
    if (!a || a->npacket == 0)
        return;
    a->npacket = 0;
    if (a->packet_cap > 64) {
        /* A packet with many filters: do not keep its array. */
        free(a->packet);
        a->packet = NULL;
        a->packet_cap = 0;
    }
}

void acl_free(struct conn_identity *id)
{
    if (id->acl)
        free(id->acl->packet);
    free(id->acl);
}
