/*
 * store: the out-of-line side of store.h's call-site wrappers (reached
 * only when a shard has a store).
 */
#include "session/store.h"

void store_session_put_call(struct shard *s, const struct session *ss)
{
    s->store->session_put(s->store_ctx, ss->tenant, &ss->st);
}

void store_session_del_call(struct shard *s, const struct session *ss)
{
    s->store->session_del(s->store_ctx, ss->tenant, &ss->st);
}

void store_sub_put_call(struct shard *s, const struct session *ss, const struct sess_sub *sub)
{
    s->store->sub_put(s->store_ctx, ss->tenant, &ss->st, sub);
}

void store_sub_del_call(struct shard *s, const struct session *ss, const uint8_t *filter,
                        size_t len)
{
    s->store->sub_del(s->store_ctx, ss->tenant, &ss->st, filter, len);
}

void store_queue_push_call(struct shard *s, const struct session *ss, const struct qentry *e)
{
    s->store->queue_push(s->store_ctx, ss->tenant, &ss->st, e);
}

void store_queue_pop_call(struct shard *s, const struct session *ss, const struct qentry *e)
{
    s->store->queue_pop(s->store_ctx, ss->tenant, &ss->st, e);
}

void store_infl_put_call(struct shard *s, const struct session *ss, const struct inflight *e)
{
    s->store->infl_put(s->store_ctx, ss->tenant, &ss->st, e);
}

void store_infl_from_queue_call(struct shard *s, const struct session *ss, const struct inflight *e,
                                const struct qentry *q)
{
    if (s->store->infl_from_queue) {
        s->store->infl_from_queue(s->store_ctx, ss->tenant, &ss->st, e, q);
        return;
    }
    s->store->queue_pop(s->store_ctx, ss->tenant, &ss->st, q);
    s->store->infl_put(s->store_ctx, ss->tenant, &ss->st, e);
}

void store_infl_rec_call(struct shard *s, const struct session *ss, uint16_t pid)
{
    s->store->infl_rec(s->store_ctx, ss->tenant, &ss->st, pid);
}

void store_infl_del_call(struct shard *s, const struct session *ss, uint16_t pid)
{
    s->store->infl_del(s->store_ctx, ss->tenant, &ss->st, pid);
}

void store_qos2_add_call(struct shard *s, const struct session *ss, uint16_t pid)
{
    s->store->qos2_add(s->store_ctx, ss->tenant, &ss->st, pid);
}

void store_qos2_del_call(struct shard *s, const struct session *ss, uint16_t pid)
{
    s->store->qos2_del(s->store_ctx, ss->tenant, &ss->st, pid);
}

void store_retained_call(struct shard *s, const struct tenant *t, const struct msg *m)
{
    if (m->payload_len)
        s->store->retained_put(s->store_ctx, t, m);
    else
        s->store->retained_clear(s->store_ctx, t, m);
}
