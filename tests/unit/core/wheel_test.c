/*
 * Unit tests for src/core/wheel.c through core/wheel.h: expiry exactly at
 * the deadline, removal, re-adding (also from the callback and into the
 * bucket being swept), far deadlines, big time jumps and the count.
 */
#include <criterion/criterion.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/wheel.h"

/* A test object embedding its entry, as a connection would. */
struct item {
    struct wheel_entry entry;
    int fired;
    uint64_t fired_at; /* now_ms of the advance that fired it */
};

#define ITEM_OF(e) ((struct item *)((char *)(e)-offsetof(struct item, entry)))

struct ctx {
    struct wheel *wheel;
    uint64_t now;
    int calls;
    /* Optional behaviour of the callback. */
    uint64_t readd_delta; /* re-add at now + delta (0: do not) */
    bool readd_same_deadline;
    struct item *victims; /* remove all of these (array) on first call */
    int nvictims;
};

static void on_expire(struct wheel_entry *e, void *arg)
{
    struct ctx *c = arg;
    struct item *it = ITEM_OF(e);
    cr_assert_not(wheel_linked(e), "entry must be unlinked before fn");
    cr_assert_leq(e->deadline_ms, c->now, "fired before its deadline");
    it->fired++;
    it->fired_at = c->now;
    c->calls++;
    if (c->readd_delta)
        wheel_add(c->wheel, e, c->now + c->readd_delta);
    if (c->readd_same_deadline)
        wheel_add(c->wheel, e, e->deadline_ms);
    if (c->victims) {
        for (int i = 0; i < c->nvictims; i++)
            if (&c->victims[i] != it)
                wheel_remove(&c->victims[i].entry);
        c->victims = NULL;
    }
}

static void advance(struct ctx *c, uint64_t now)
{
    c->now = now;
    wheel_advance(c->wheel, now, on_expire, c);
}

Test(wheel, create_rejects_bad_arguments)
{
    cr_assert_null(wheel_create(0, 8, 0));
    cr_assert_null(wheel_create(10, 0, 0));
    struct wheel *w = wheel_create(1, 1, 0);
    cr_assert_not_null(w, "one slot of 1 ms is a valid (if silly) wheel");
    cr_assert_eq(wheel_count(w), 0);
    wheel_destroy(w);
    wheel_destroy(NULL);
}

Test(wheel, zeroed_entry_is_unlinked_and_remove_is_noop)
{
    struct wheel_entry e = {0};
    cr_assert_not(wheel_linked(&e));
    wheel_remove(&e);
    cr_assert_not(wheel_linked(&e));
}

Test(wheel, expires_at_deadline_not_before)
{
    struct ctx c = {.wheel = wheel_create(10, 8, 1000)};
    struct item it = {0};
    wheel_add(c.wheel, &it.entry, 1055);
    cr_assert(wheel_linked(&it.entry));

    advance(&c, 1040);
    cr_assert_eq(it.fired, 0);
    advance(&c, 1050);
    cr_assert_eq(it.fired, 0, "same tick as the deadline but earlier");
    advance(&c, 1054);
    cr_assert_eq(it.fired, 0);
    advance(&c, 1055);
    cr_assert_eq(it.fired, 1);
    cr_assert_eq(it.fired_at, 1055);
    cr_assert_not(wheel_linked(&it.entry));
    advance(&c, 1200);
    cr_assert_eq(it.fired, 1, "fires once");
    wheel_destroy(c.wheel);
}

Test(wheel, past_or_present_deadline_fires_on_next_advance)
{
    struct ctx c = {.wheel = wheel_create(10, 8, 1000)};
    struct item past = {0}, present = {0}, zero = {0};
    wheel_add(c.wheel, &past.entry, 900);
    wheel_add(c.wheel, &present.entry, 1000);
    wheel_add(c.wheel, &zero.entry, 0);
    cr_assert_eq(wheel_count(c.wheel), 3);
    advance(&c, 1000); /* time has not moved */
    cr_assert_eq(past.fired, 1);
    cr_assert_eq(present.fired, 1);
    cr_assert_eq(zero.fired, 1);
    cr_assert_eq(wheel_count(c.wheel), 0);
    wheel_destroy(c.wheel);
}

Test(wheel, removed_entry_never_fires)
{
    struct ctx c = {.wheel = wheel_create(10, 8, 0)};
    struct item a = {0}, b = {0}, d = {0};
    /* Same bucket, so removal from the middle and head of a chain. */
    wheel_add(c.wheel, &a.entry, 30);
    wheel_add(c.wheel, &b.entry, 31);
    wheel_add(c.wheel, &d.entry, 32);
    cr_assert_eq(wheel_count(c.wheel), 3);
    wheel_remove(&b.entry);
    cr_assert_not(wheel_linked(&b.entry));
    cr_assert_eq(wheel_count(c.wheel), 2);
    wheel_remove(&b.entry); /* twice is fine */
    cr_assert_eq(wheel_count(c.wheel), 2);
    wheel_remove(&d.entry); /* the head (last added) */
    cr_assert_eq(wheel_count(c.wheel), 1);
    advance(&c, 100);
    cr_assert_eq(a.fired, 1);
    cr_assert_eq(b.fired, 0);
    cr_assert_eq(d.fired, 0);
    wheel_destroy(c.wheel);
}

Test(wheel, add_of_linked_entry_moves_it)
{
    struct ctx c = {.wheel = wheel_create(10, 8, 0)};
    struct item it = {0};
    wheel_add(c.wheel, &it.entry, 50);
    wheel_add(c.wheel, &it.entry, 200); /* keepalive reset */
    cr_assert_eq(wheel_count(c.wheel), 1, "re-adding does not duplicate");
    advance(&c, 100);
    cr_assert_eq(it.fired, 0, "old deadline is gone");
    advance(&c, 199);
    cr_assert_eq(it.fired, 0);
    advance(&c, 200);
    cr_assert_eq(it.fired, 1);

    /* Moving earlier works too, even into the past. */
    struct item early = {0};
    wheel_add(c.wheel, &early.entry, 500);
    wheel_add(c.wheel, &early.entry, 150);
    advance(&c, 201);
    cr_assert_eq(early.fired, 1);
    wheel_destroy(c.wheel);
}

Test(wheel, callback_readds_periodically)
{
    struct ctx c = {.wheel = wheel_create(10, 8, 0), .readd_delta = 25};
    struct item it = {0};
    wheel_add(c.wheel, &it.entry, 25);
    for (uint64_t t = 1; t <= 1000; t++)
        advance(&c, t);
    /* Fires at 25, 50, ..., 1000. */
    cr_assert_eq(it.fired, 40);
    cr_assert_eq(it.fired_at, 1000);
    cr_assert(wheel_linked(&it.entry));
    cr_assert_eq(it.entry.deadline_ms, 1025);
    cr_assert_eq(wheel_count(c.wheel), 1);
    wheel_destroy(c.wheel);
}

Test(wheel, callback_readd_into_swept_slot_waits_a_revolution)
{
    /* 8 slots of 10 ms: now + 80 hashes to the bucket being swept. */
    struct ctx c = {.wheel = wheel_create(10, 8, 0), .readd_delta = 80};
    struct item it = {0};
    wheel_add(c.wheel, &it.entry, 40);
    advance(&c, 40);
    cr_assert_eq(it.fired, 1, "re-add into the same bucket must not fire again now");
    cr_assert_eq(it.entry.deadline_ms, 120);
    advance(&c, 119);
    cr_assert_eq(it.fired, 1);
    advance(&c, 120);
    cr_assert_eq(it.fired, 2);
    wheel_destroy(c.wheel);
}

Test(wheel, callback_readd_with_past_deadline_does_not_loop, .timeout = 10)
{
    struct ctx c = {.wheel = wheel_create(10, 8, 0), .readd_same_deadline = true};
    struct item it = {0};
    wheel_add(c.wheel, &it.entry, 30);
    advance(&c, 35);
    cr_assert_eq(it.fired, 1, "fires once per advance, not forever");
    advance(&c, 35);
    cr_assert_eq(it.fired, 2, "a past deadline fires on the next advance");
    advance(&c, 1000); /* a big jump must not fire it repeatedly either */
    cr_assert_eq(it.fired, 3);
    wheel_destroy(c.wheel);
}

Test(wheel, callback_may_remove_entries_not_yet_visited, .timeout = 10)
{
    /* Four due entries in one bucket and two in the due list; whichever
     * fires first removes all the others. */
    struct ctx c = {.wheel = wheel_create(10, 8, 100)};
    struct item items[6] = {0};
    for (int i = 0; i < 4; i++)
        wheel_add(c.wheel, &items[i].entry, 150 + (uint64_t)i);
    wheel_add(c.wheel, &items[4].entry, 50);
    wheel_add(c.wheel, &items[5].entry, 60);
    c.victims = items;
    c.nvictims = 6;
    advance(&c, 200);
    cr_assert_eq(c.calls, 1);
    for (int i = 0; i < 6; i++)
        cr_assert_not(wheel_linked(&items[i].entry));
    cr_assert_eq(wheel_count(c.wheel), 0);
    wheel_destroy(c.wheel);
}

Test(wheel, far_deadline_waits_its_rounds)
{
    /* 8 slots * 10 ms = 80 ms per revolution; deadline 5 revolutions on. */
    struct ctx c = {.wheel = wheel_create(10, 8, 0)};
    struct item it = {0};
    uint64_t deadline = 5 * 80 + 33;
    wheel_add(c.wheel, &it.entry, deadline);
    for (uint64_t t = 1; t < deadline; t++) {
        advance(&c, t);
        cr_assert_eq(it.fired, 0, "fired at %llu", (unsigned long long)t);
    }
    advance(&c, deadline);
    cr_assert_eq(it.fired, 1);
    wheel_destroy(c.wheel);
}

Test(wheel, jump_over_several_revolutions)
{
    struct ctx c = {.wheel = wheel_create(10, 8, 0)};
    struct item near = {0}, mid = {0}, far = {0}, later = {0};
    wheel_add(c.wheel, &near.entry, 15);
    wheel_add(c.wheel, &mid.entry, 170);
    wheel_add(c.wheel, &far.entry, 999);
    wheel_add(c.wheel, &later.entry, 1001);
    advance(&c, 1000); /* 100 ticks, 12.5 revolutions, in one call */
    cr_assert_eq(near.fired, 1);
    cr_assert_eq(mid.fired, 1);
    cr_assert_eq(far.fired, 1);
    cr_assert_eq(later.fired, 0);
    cr_assert_eq(wheel_count(c.wheel), 1);
    advance(&c, 1001);
    cr_assert_eq(later.fired, 1);
    wheel_destroy(c.wheel);
}

Test(wheel, time_going_backwards_fires_nothing_new)
{
    struct ctx c = {.wheel = wheel_create(10, 8, 1000)};
    struct item it = {0};
    wheel_add(c.wheel, &it.entry, 1010);
    advance(&c, 500);
    cr_assert_eq(it.fired, 0);
    advance(&c, 1010);
    cr_assert_eq(it.fired, 1);
    wheel_destroy(c.wheel);
}

/* Deterministic xorshift so failures reproduce. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

Test(wheel, random_deadlines_fire_exactly_once_at_first_advance_past_them)
{
    enum { N = 2000 };
    struct ctx c = {.wheel = wheel_create(7, 16, 12345)};
    struct item *items = calloc(N, sizeof(*items));
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < N; i++)
        wheel_add(c.wheel, &items[i].entry, 12345 + rng_next(&seed) % 5000);
    cr_assert_eq(wheel_count(c.wheel), N);

    uint64_t prev = 12345, now = 12345;
    int fired_total = 0;
    while (fired_total < N) {
        /* Steps from 0 (same time) to over two revolutions (224 ms). */
        now += rng_next(&seed) % 300;
        advance(&c, now);
        fired_total = 0;
        for (int i = 0; i < N; i++) {
            uint64_t d = items[i].entry.deadline_ms;
            if (d <= now) {
                cr_assert_eq(items[i].fired, 1, "deadline %llu, now %llu", (unsigned long long)d,
                             (unsigned long long)now);
                if (d > prev)
                    cr_assert_eq(items[i].fired_at, now, "fired late");
            } else {
                cr_assert_eq(items[i].fired, 0);
            }
            fired_total += items[i].fired;
        }
        cr_assert_eq(wheel_count(c.wheel), (uint32_t)(N - fired_total));
        prev = now;
    }
    free(items);
    wheel_destroy(c.wheel);
}

static void record_count(struct wheel_entry *e, void *arg)
{
    struct ctx *c = arg;
    (void)e;
    c->calls += (int)wheel_count(c->wheel);
}

Test(wheel, count_is_exact_inside_the_callback)
{
    /* Each entry is unlinked before fn runs, so the callbacks see 2, 1, 0
     * remaining entries (plus the one never due). */
    struct ctx c = {.wheel = wheel_create(10, 8, 0)};
    struct item items[4] = {0};
    for (int i = 0; i < 3; i++)
        wheel_add(c.wheel, &items[i].entry, 20);
    wheel_add(c.wheel, &items[3].entry, 500);
    wheel_advance(c.wheel, 20, record_count, &c);
    cr_assert_eq(c.calls, (2 + 1) + (1 + 1) + (0 + 1));
    cr_assert_eq(wheel_count(c.wheel), 1);
    wheel_destroy(c.wheel);
}
