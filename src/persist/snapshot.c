/*
 * snapshot: live state written as the records that recreate it (see
 * snapshot.h). No state of its own; reads what it is given.
 */
#include "persist/snapshot.h"

#include "persist/record.h"
#include "session/msg.h"
#include "session/session.h"

int snapshot_session(struct record_writer *w, const struct tenant *t,
                     const struct session_state *st, bool qos0, uint64_t expire_mono_ms,
                     uint64_t will_mono_ms)
{
    int rc = record_session_put_at(w, t, st, expire_mono_ms, will_mono_ms);
    for (uint32_t i = 0; rc == 0 && i < st->nsubs; i++)
        rc = record_sub_put(w, t, st, st->subs[i]);
    for (uint32_t i = 0; rc == 0 && i < st->ninfl; i++)
        rc = record_infl_put(w, t, st, &st->infl[i]);
    for (uint32_t i = 0; rc == 0 && i < st->qlen; i++) {
        const struct qentry *e = &st->q[(st->qhead + i) & (st->qcap - 1)];
        if (e->qos || qos0)
            rc = record_queue_push(w, t, st, e);
    }
    for (uint32_t i = 0; rc == 0 && i < st->nqos2; i++)
        rc = record_pid(w, RECORD_QOS2_ADD, t, st, st->qos2_in[i]);
    return rc;
}

int snapshot_retained(struct record_writer *w, const struct tenant *t, const struct msg *m)
{
    return record_retained(w, RECORD_RETAINED_PUT, t, m);
}
