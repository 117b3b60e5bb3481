/*
 * acl: permission checks with a per-connection verdict cache (see acl.h).
 *
 * The cache is a small open-addressing table of 64-bit keys (XXH3 of
 * action, QoS, retain and topic; a collision would reuse another topic's
 * verdict with probability 2^-64 per pair) holding the verdict in the low
 * bits; it is emptied when full rather than grown without bound. Verdicts
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
#include "broker/session.h"
#include "broker/shard.h"
#include "core/log.h"
#include "plugin/host.h"

#define ACL_CACHE_SLOTS 256u /* per connection, power of two */
#define ACL_MEMO_TOPIC  56u  /* longest topic the last-verdict memo keeps */

struct acl_cache {
    uint32_t used;
    uint32_t generation; /* plugin_host_generation() the slots were filled under */
    uint64_t pending;    /* key of the check in flight, 0: none */
    /* Every verdict the packet being handled got (cacheable or not): the
     * packet is handled again after each answer and must find them all,
     * whatever happens to the slots meanwhile (full, or a reload). Emptied
     * when the packet is done. */
    uint64_t *packet;
    uint32_t npacket, packet_cap;
    uint64_t slots[ACL_CACHE_SLOTS]; /* key | verdict, 0: empty */
    /* The last PUBLISH verdict found in the slots: a client publishing to
     * the same topic again (the common case) skips the hash and the probe.
     * memo_len 0: none. Valid under `generation` only. */
    uint8_t memo_len, memo_qos, memo_retain, memo_verdict;
    uint8_t memo_topic[ACL_MEMO_TOPIC];
};

static uint64_t key_of(enum ringmq_action a, const uint8_t *topic, size_t len, uint8_t qos,
                       bool retain)
{
    uint64_t seed = (uint64_t)a << 8 | (uint64_t)qos << 1 | (retain ? 1u : 0u);
    /* The low 2 bits carry the verdict; a key is never 0. */
    return (XXH3_64bits_withSeed(topic, len, seed) & ~UINT64_C(3)) | 4u;
}

static int lookup_packet(const struct acl_cache *a, uint64_t key)
{
    for (uint32_t i = 0; i < a->npacket; i++)
        if ((a->packet[i] & ~UINT64_C(3)) == key)
            return (int)(a->packet[i] & 3u);
    return -1;
}

static int lookup_slots(const struct acl_cache *a, uint64_t key)
{
    uint32_t mask = ACL_CACHE_SLOTS - 1;
    for (uint32_t i = (uint32_t)(key >> 2) & mask, n = 0; n < ACL_CACHE_SLOTS;
         i = (i + 1) & mask, n++) {
        if (a->slots[i] == 0)
            return -1;
        if ((a->slots[i] & ~UINT64_C(3)) == key)
            return (int)(a->slots[i] & 3u);
    }
    return -1;
}

static void insert(struct acl_cache *a, uint64_t key, int verdict)
{
    if (a->used >= ACL_CACHE_SLOTS * 3 / 4) {
        /* Emptied rather than grown without bound; the packet being
         * handled keeps its verdicts in `packet`. */
        memset(a->slots, 0, sizeof(a->slots));
        a->used = 0;
        a->memo_len = 0;
    }
    uint32_t mask = ACL_CACHE_SLOTS - 1;
    uint32_t i = (uint32_t)(key >> 2) & mask;
    while (a->slots[i] != 0)
        i = (i + 1) & mask;
    a->slots[i] = key | (uint64_t)verdict;
    a->used++;
}

/* key: what identifies the verdict (see key_of). */
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
            a->memo_verdict = (uint8_t)v;
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
    c->ops++; /* the call holds the connection until it is answered */
    if (plugin_check(s->port, (uint64_t)(uintptr_t)c, &ask) < 0) {
        c->ops--;
        id->acl->pending = 0;
        return RINGMQ_CHECK_ERROR;
    }
    c->blocked = true;
    return ACL_WAIT;
}

int acl_check(struct shard *s, struct conn *c, enum ringmq_action action, const uint8_t *topic,
              size_t len, uint8_t qos, bool retain)
{
    if (!c->auth)
        return RINGMQ_GRANTED;
    const struct acl_cache *a = c->auth->acl;
    if (a && action == RINGMQ_ACTION_PUBLISH && len && a->memo_len == len && a->memo_qos == qos &&
        a->memo_retain == retain && memcmp(a->memo_topic, topic, len) == 0 &&
        a->generation == plugin_host_generation(s->broker->plugins))
        return a->memo_verdict;
    struct session *ss = c->session;
    struct ringmq_check chk = {
        .action = action,
        .tenant = ss->tenant->name,
        .client_id = {ss->client_id, ss->client_id_len},
        .topic = {topic, len},
        .qos = qos,
        .retain = retain,
    };
    return check(s, c, &chk, key_of(action, topic, len, qos, retain));
}

int acl_check_connect(struct shard *s, struct conn *c, const char *tenant, const uint8_t *client_id,
                      size_t len)
{
    struct ringmq_check chk = {
        .action = RINGMQ_ACTION_CONNECT,
        .tenant = tenant,
        .client_id = {client_id, len},
    };
    /* Keyed by the client id: the CONNECT handled again finds its verdict. */
    return check(s, c, &chk, key_of(RINGMQ_ACTION_CONNECT, client_id, len, 0, false));
}

void acl_on_done(struct shard *s, struct conn *c, const struct plugin_done *d)
{
    struct acl_cache *a = c->auth ? c->auth->acl : NULL;
    if ((c->state != CONN_ACTIVE && c->state != CONN_NEW) || !a || !a->pending) {
        conn_op_done(s, c); /* closed meanwhile */
        return;
    }
    int verdict = d->r.check.verdict;
    if (verdict < RINGMQ_GRANTED || verdict > RINGMQ_CHECK_ERROR)
        verdict = RINGMQ_CHECK_ERROR;
    if (a->npacket == a->packet_cap) {
        uint32_t cap = a->packet_cap ? a->packet_cap * 2 : 8;
        uint64_t *v = realloc(a->packet, cap * sizeof(*v));
        if (!v) {
            /* The packet cannot be handled without its verdicts. */
            a->pending = 0;
            c->blocked = false;
            c->ops--;
            conn_close(s, c, CLOSE_PEER_GONE);
            conn_resume(s, c);
            return;
        }
        a->packet = v;
        a->packet_cap = cap;
    }
    a->packet[a->npacket++] = a->pending | (uint64_t)verdict;
    if (d->r.check.cacheable && !d->timed_out)
        insert(a, a->pending, verdict);
    a->pending = 0;
    c->blocked = false;
    c->ops--;
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
