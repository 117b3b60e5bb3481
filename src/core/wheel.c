/*
 * wheel: single-level hashed timing wheel for coarse deadlines (keepalive).
 *
 * Owns only its bucket array; entries are embedded in their owners and are
 * borrowed while linked. One per shard, used by that shard's thread only.
 *
 * An entry with deadline d lives in bucket (d / tick_ms) % slots. Deadlines
 * further away than one revolution (slots * tick_ms) share buckets with
 * nearer ones and simply stay put when their bucket is swept before they are
 * due: a deadline k revolutions away is looked at k times before it fires,
 * so size the wheel so that the common deadlines (keepalive * 1.5) fit in
 * one revolution; far ones cost one comparison per revolution, nothing more.
 *
 * Entries added with a deadline already <= the wheel's time go to a separate
 * `due` list that the next wheel_advance() fires first. That list is also
 * what keeps wheel_advance() finite when a callback re-adds an entry with a
 * past deadline: it lands on `due`, which this advance has already taken.
 */
#include "core/wheel.h"

#include <stddef.h>
#include <stdlib.h>

/*
 * Invariants:
 *  - every linked entry is on exactly one list: `due`, `sweeping` (only
 *    inside wheel_advance()) or buckets[i];
 *  - an entry on `due` has deadline_ms <= now_ms;
 *  - an entry on buckets[i] has (deadline_ms / tick_ms) % slots == i;
 *  - every entry with deadline_ms <= now_ms is either on `due` or in a bucket
 *    that the next advance sweeps (bucket cur_tick % slots and onwards);
 *  - e->pprev points at the pointer that points at e (a bucket head, `due`,
 *    or the previous entry's next), and is NULL when e is unlinked.
 */
struct wheel {
    uint64_t tick_ms;
    uint64_t now_ms;   /* time of the last advance (or of create) */
    uint64_t cur_tick; /* now_ms / tick_ms */
    uint32_t slots;
    struct wheel_entry *due;
    struct wheel_entry *sweeping; /* the list being swept, not yet visited */
    struct wheel_entry *buckets[];
};

struct wheel *wheel_create(uint32_t tick_ms, uint32_t slots, uint64_t now_ms)
{
    if (tick_ms == 0 || slots == 0)
        return NULL;
    struct wheel *wheel = calloc(1, sizeof(*wheel) + (size_t)slots * sizeof(wheel->buckets[0]));
    if (!wheel)
        return NULL;
    wheel->tick_ms = tick_ms;
    wheel->slots = slots;
    wheel->now_ms = now_ms;
    wheel->cur_tick = now_ms / tick_ms;
    return wheel;
}

void wheel_destroy(struct wheel *wheel)
{
    free(wheel);
}

static void wheel_link(struct wheel_entry **head, struct wheel_entry *e)
{
    e->next = *head;
    if (e->next)
        e->next->pprev = &e->next;
    *head = e;
    e->pprev = head;
}

void wheel_remove(struct wheel_entry *e)
{
    if (!e->pprev)
        return;
    *e->pprev = e->next;
    if (e->next)
        e->next->pprev = e->pprev;
    e->next = NULL;
    e->pprev = NULL;
}

bool wheel_linked(const struct wheel_entry *e)
{
    return e->pprev != NULL;
}

static struct wheel_entry **wheel_bucket(struct wheel *wheel, uint64_t deadline_ms)
{
    return &wheel->buckets[(deadline_ms / wheel->tick_ms) % wheel->slots];
}

void wheel_add(struct wheel *wheel, struct wheel_entry *e, uint64_t deadline_ms)
{
    wheel_remove(e);
    e->deadline_ms = deadline_ms;
    if (deadline_ms <= wheel->now_ms)
        wheel_link(&wheel->due, e);
    else
        wheel_link(wheel_bucket(wheel, deadline_ms), e);
}

/*
 * Fire the due entries of one list and put the others back in their bucket.
 * The list is first moved to wheel->sweeping so that entries fn adds to the
 * same bucket are not seen again in this sweep, while fn can still
 * wheel_remove() entries not yet visited (their pprev chain now ends at
 * wheel->sweeping). Always taking the first entry keeps that safe.
 */
static void wheel_sweep(struct wheel *wheel, struct wheel_entry **list, wheel_expire_fn fn,
                        void *arg)
{
    wheel->sweeping = *list;
    *list = NULL;
    if (wheel->sweeping)
        wheel->sweeping->pprev = &wheel->sweeping;

    while (wheel->sweeping) {
        struct wheel_entry *e = wheel->sweeping;
        wheel_remove(e);
        if (e->deadline_ms <= wheel->now_ms)
            fn(e, arg);
        else
            wheel_link(wheel_bucket(wheel, e->deadline_ms), e);
    }
}

void wheel_advance(struct wheel *wheel, uint64_t now_ms, wheel_expire_fn fn, void *arg)
{
    /* The clock is monotonic; a smaller now is treated as no time passing. */
    if (now_ms < wheel->now_ms)
        now_ms = wheel->now_ms;

    uint64_t from_tick = wheel->cur_tick;
    uint64_t to_tick = now_ms / wheel->tick_ms;
    /* Update time first: entries fn adds with deadline <= now_ms then go to
     * `due` for the next advance instead of looping here. */
    wheel->now_ms = now_ms;
    wheel->cur_tick = to_tick;

    wheel_sweep(wheel, &wheel->due, fn, arg);

    /* from_tick's bucket is swept again: it may hold entries due later in
     * that tick than the previous advance's now_ms. A jump of a revolution
     * or more sweeps every bucket exactly once. */
    uint64_t ticks = to_tick - from_tick;
    uint64_t sweeps = ticks >= wheel->slots ? wheel->slots : ticks + 1;
    for (uint64_t i = 0; i < sweeps; i++)
        wheel_sweep(wheel, &wheel->buckets[(from_tick + i) % wheel->slots], fn, arg);
}

/* Walks every list: O(slots + entries). wheel_remove() does not know its
 * wheel (the entry has no back pointer), so no counter could stay exact;
 * this is for metrics and tests, not the per-packet path. */
uint32_t wheel_count(const struct wheel *wheel)
{
    uint32_t n = 0;
    for (const struct wheel_entry *e = wheel->due; e; e = e->next)
        n++;
    for (const struct wheel_entry *e = wheel->sweeping; e; e = e->next)
        n++;
    for (uint32_t i = 0; i < wheel->slots; i++)
        for (const struct wheel_entry *e = wheel->buckets[i]; e; e = e->next)
            n++;
    return n;
}
