/*
 * control_req: the request one admin op posts to the shards, shared by the
 * files that answer it (control.c: the path, clients; control_sessions.c;
 * control_retained.c). Private to broker/control*: control.h has the path
 * and its rules (one poster, one answer per loop turn, bounded work).
 */
#ifndef RINGMQ_BROKER_CONTROL_REQ_H
#define RINGMQ_BROKER_CONTROL_REQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin/admin.h"

struct broker;
struct session;
struct shard;
struct tenant;

enum control_kind {
    CONTROL_PAGE = 1,       /* a page of a tenant's clients on this shard */
    CONTROL_ONE = 2,        /* one client (its home shard) */
    CONTROL_KICK = 3,       /* close one client's connection (its home shard) */
    CONTROL_SESS_PAGE = 4,  /* a page of a tenant's sessions on this shard */
    CONTROL_SESS_ONE = 5,   /* one session (its home shard) */
    CONTROL_SESS_DEL = 6,   /* end one session (its home shard) */
    CONTROL_RET_PAGE = 7,   /* a page of retained topics (shard 0's replica) */
    CONTROL_RET_ONE = 8,    /* one retained message (shard 0) */
    CONTROL_RET_DEL = 9,    /* clear one retained message (routed from shard 0) */
    CONTROL_PUBLISH = 10,   /* the broker's own PUBLISH (routed from shard 0) */
    CONTROL_SUB = 11,       /* subscribe a session (its home shard) */
    CONTROL_UNSUB = 12,     /* unsubscribe a session (its home shard) */
    CONTROL_RET_CLEAR = 13, /* clear a filter's retained messages (routed from shard 0) */
};

/*
 * One question to one shard. The admin thread fills everything above the
 * answer before posting; the shard writes the answer (err, more, n and the
 * entries of its kind: v clients, sv sessions, rv retained) and then `done`
 * (release): the admin thread reads the answer only after seeing done
 * (acquire). key holds the prefix (or a filter) then the `after` key
 * (pages), or the client id or topic (prefix_len bytes) for the others;
 * PUBLISH: the topic then the payload and its properties (after_len
 * bytes), SUB and UNSUB: the client id then the filter; RET_CLEAR: as a
 * retained page (the filter then `after`; cap the most to clear, with no
 * entries but the heap; n answers how many were cleared).
 */
struct control_req {
    _Atomic uint32_t refs; /* the admin thread's and the shard's */
    _Atomic bool done;
    uint8_t kind; /* enum control_kind */
    bool delete_session;
    bool has_after;
    bool offline;            /* SESS_PAGE: offline sessions only */
    bool retain;             /* PUBLISH */
    uint8_t qos;             /* PUBLISH, SUB (answered: the QoS granted) */
    uint8_t sub_opts;        /* SUB: session/session.h's enum sub_opt */
    uint8_t retain_handling; /* SUB: 0, 1 or 2 */
    uint32_t subid;          /* SUB: Subscription Identifier, 0: none */
    uint32_t expiry_s;       /* PUBLISH: Message Expiry Interval, 0: none */
    uint32_t props_len;      /* PUBLISH: the last props_len bytes of the key's payload part are
                                its property block (no length prefix) */
    uint16_t tenant;
    uint32_t cap;              /* room in the entries (and heap) */
    const void **heap;         /* pages: the shard's picks, [cap] */
    struct admin_client *v;    /* [cap] */
    struct admin_session *sv;  /* [cap] */
    struct admin_retained *rv; /* [cap] */
    uint32_t prefix_len, after_len;
    /* the answer */
    int err; /* 0, -ENOENT, -ENOMEM */
    bool more;
    uint32_t n;
    /* Pages (and RET_CLEAR) that stopped (more): every id of the shard
     * with the prefix (every topic of the filter's range) up to and
     * including upto (malloc'd) is in the entries (cleared) or not
     * selected; after it, the shard has not looked. */
    char *upto;
    uint16_t upto_len;
    uint8_t key[];
};

/* A request of `kind` with room for `cap` answers and the keys copied;
 * NULL when out of memory. One reference, the caller's. */
struct control_req *control_req_create(uint8_t kind, uint16_t tenant, uint32_t cap,
                                       const char *prefix, size_t prefix_len, const char *after,
                                       size_t after_len);

/* Drop a reference; the last frees the request and the entries it holds. */
void control_req_put(struct control_req *r);

/* Post reqs[i] (NULL: none) to shard i and wait for every answer, at most
 * ADMIN_SHARD_WAIT_MS. 0 or -ETIMEDOUT. The caller keeps its references. */
int control_ask(struct broker *b, struct control_req **reqs);

/* control_ask of request r (created by the caller, owned by this call) of
 * shard `shard` alone: the answered request into *out (the caller's to
 * put), or its error, r then put. 0 or -errno. */
int control_ask_one(struct broker *b, uint32_t shard, struct control_req *r,
                    struct control_req **out);

/* Ask client `id`'s home shard (kinds ONE, KICK, SESS_ONE, SESS_DEL;
 * delete_session for KICK); the answered request (the caller's reference)
 * into *out. 0, or -errno (the shard's answer's err included). */
int control_ask_home(struct broker *b, uint8_t kind, const char *tenant, const char *id, size_t len,
                     bool delete_session, struct control_req **out);

/* How control_merge reads one kind of page entries. */
struct control_entries {
    size_t size;                                                    /* of an entry */
    void *(*of)(struct control_req *r);                             /* the request's entries */
    void (*key)(const void *e, const uint8_t **key, uint16_t *len); /* its id */
    int (*cmp)(const void *a, const void *b);                       /* their order */
    void (*fini)(void *e);                                          /* free what an entry holds */
};

/* A merged page: v[0..n) sorted; with `more`, the next page starts after
 * next (malloc'd, next_len bytes and a NUL) or, when NULL, after v[n-1]. */
struct control_page {
    void *v;
    uint32_t n;
    bool more;
    char *next;
    uint16_t next_len;
};

/*
 * The shards' answered pages into one (*out), at most `limit` entries; the
 * entries move out of the requests. Keyset merge: with B the smallest upto
 * of the shards that stopped, only entries up to B are known to be all
 * there is (a shard that stopped has not looked past its upto), so the
 * page is the `limit` smallest of those; `next` is B when the page holds
 * all of them (it may then be short, even empty). 0 or -errno (a shard's
 * error, -ENOMEM).
 */
int control_merge(struct broker *b, struct control_req **reqs, const struct control_entries *k,
                  uint32_t limit, struct control_page *out);

/* Whether a page takes this session (of the tenant, on the shard). */
typedef bool (*control_sel_fn)(const struct session *ss, const struct control_req *r);

/*
 * On the shard: the page's sessions of tenant t, in id order from the
 * first with r's prefix after r's `after`, those `sel` takes, into
 * r->heap[0..n) (returns n <= r->cap). Seeks in the tenant's id order
 * (session/idtree.h) and reads forward: O(log sessions + looked at). Stops
 * at the end of the prefix's range, or (r->more, r->upto set) before a
 * taken one past r->cap or after `budget` (>= 1) looked at, selected or
 * not ([admin] page_budget): that, not the tenant's size, bounds a page's
 * work in the shard's loop turn. -ENOMEM in r->err when upto cannot be
 * copied.
 */
uint32_t control_walk(struct tenant *t, struct control_req *r, control_sel_fn sel, uint32_t budget);

/* The id of tenant `name`, when some shard has seen it; -ENOENT otherwise. */
int control_tenant(struct broker *b, const char *name);

/* A copy of id (len bytes) with a NUL after it (malloc'd); NULL when out
 * of memory. */
char *control_id_dup(const void *id, uint16_t len);

/* Byte order of ids and topics: memcmp, a prefix first. */
int control_key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl);

/* On the shard: the answers of control_sessions.c and control_retained.c. */
void control_answer_sessions(struct shard *s, struct tenant *t, struct control_req *r);
void control_answer_retained(struct shard *s, struct tenant *t, struct control_req *r);
void control_answer_writes(struct shard *s, struct control_req *r);

/* The admin ops they serve (on the admin thread). */
int control_sessions(void *arg, const char *tenant, const struct admin_session_query *q,
                     struct admin_session_page *out);
int control_session(void *arg, const char *tenant, const char *id, size_t len,
                    struct admin_session *out);
int control_session_delete(void *arg, const char *tenant, const char *id, size_t len);
int control_retained(void *arg, const char *tenant, const struct admin_retained_query *q,
                     struct admin_retained_page *out);
int control_retained_one(void *arg, const char *tenant, const char *topic, size_t len,
                         struct admin_retained *out);
int control_retained_delete(void *arg, const char *tenant, const char *topic, size_t len);
int control_publish(void *arg, const char *tenant, const struct admin_publish *p);
int control_subscribe(void *arg, const char *tenant, const char *id, size_t len,
                      const struct admin_sub_add *a, struct admin_sub_result *out);
int control_retained_clear(void *arg, const char *tenant, const struct admin_retained_query *q,
                           struct admin_retained_cleared *out);
int control_unsubscribe(void *arg, const char *tenant, const char *id, size_t len,
                        const char *filter, size_t flen);

#endif
