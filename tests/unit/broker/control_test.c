/*
 * control_merge: the admin thread's keyset merge of the shards' pages
 * (broker/control_req.h), over answered requests built by hand. Without a
 * stopped shard the page is the `limit` smallest; when a shard stopped
 * early (budget) at `upto`, nothing past the smallest upto is kept (a
 * shard that stopped has not looked there) and `next` is that bound, so
 * the next page cannot skip an id; the limit cutting first ends the page
 * at its last entry. Every entry left out is freed (ASan's leak check).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "broker/control_req.h"
#include "shard/shard.h"

TestSuite(broker_control);

static struct broker b;
static struct control_req *reqs[CONFIG_MAX_SHARDS];

/* Shard i's answer: ids (NULL-terminated) and, when `upto`, a stop there. */
static void answer(uint32_t i, const char *const *ids, const char *upto)
{
    struct control_req *r = control_req_create(CONTROL_SESS_PAGE, 0, 8, NULL, 0, NULL, 0);
    cr_assert_not_null(r);
    for (; *ids; ids++) {
        r->sv[r->n].id = strdup(*ids);
        r->sv[r->n].id_len = (uint16_t)strlen(*ids);
        r->n++;
    }
    if (upto) {
        r->more = true;
        r->upto = strdup(upto);
        r->upto_len = (uint16_t)strlen(upto);
    }
    reqs[i] = r;
    b.nshards = i + 1;
}

static int entry_cmp(const void *a, const void *b2)
{
    const struct admin_session *x = a, *y = b2;
    return control_key_cmp((const uint8_t *)x->id, x->id_len, (const uint8_t *)y->id, y->id_len);
}

static void *entries(struct control_req *r)
{
    return r->sv;
}

static void entry_key(const void *e, const uint8_t **key, uint16_t *len)
{
    *key = (const uint8_t *)((const struct admin_session *)e)->id;
    *len = ((const struct admin_session *)e)->id_len;
}

static void entry_fini(void *e)
{
    admin_session_fini(e);
}

static const struct control_entries kind = {sizeof(struct admin_session), entries, entry_key,
                                            entry_cmp, entry_fini};

/* Merge with `limit`; the page's ids must be want (NULL-terminated), its
 * more and next (NULL: none) as given. */
static void merge_expect(uint32_t limit, const char *const *want, bool more, const char *next)
{
    struct control_page p;
    cr_assert_eq(control_merge(&b, reqs, &kind, limit, &p), 0);
    struct admin_session *v = p.v;
    uint32_t n = 0;
    for (; want[n]; n++) {
        cr_assert_lt(n, p.n, "page too short: %u", p.n);
        cr_assert_str_eq(v[n].id, want[n], "position %u", n);
    }
    cr_assert_eq(p.n, n, "page of %u, want %u", p.n, n);
    cr_assert_eq(p.more, more);
    if (next)
        cr_assert(p.next && !strcmp(p.next, next) && p.next_len == strlen(next), "next %s",
                  p.next ? p.next : "(null)");
    else
        cr_assert_null(p.next);
    struct admin_session_page page = {p.v, p.n, p.more, p.next, p.next_len};
    admin_session_page_fini(&page);
    for (uint32_t i = 0; i < b.nshards; i++) {
        control_req_put(reqs[i]);
        reqs[i] = NULL;
    }
}

#define IDS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE     ((const char *const[]){NULL})

Test(broker_control, no_stop_keeps_the_limit_smallest)
{
    answer(0, IDS("b", "d"), NULL);
    answer(1, IDS("a", "c", "e"), NULL);
    merge_expect(10, IDS("a", "b", "c", "d", "e"), false, NULL);
    answer(0, IDS("b", "d"), NULL);
    answer(1, IDS("a", "c", "e"), NULL);
    merge_expect(3, IDS("a", "b", "c"), true, NULL); /* next: after "c" */
}

/* Shard 1 stopped after looking up to "c": shard 0's "d" and "e" wait,
 * else a next of "e" would skip whatever shard 1 holds in ("c", "e"). */
Test(broker_control, a_stopped_shard_bounds_the_page)
{
    answer(0, IDS("a0", "d", "e"), NULL);
    answer(1, IDS("a", "b"), "c");
    merge_expect(10, IDS("a", "a0", "b"), true, "c");
}

/* Two stopped: the smaller bound; an entry equal to it is kept. */
Test(broker_control, the_smallest_upto_is_the_bound)
{
    answer(0, IDS("f", "m"), "m");
    answer(1, IDS("e", "f0"), "f0");
    answer(2, IDS("a", "z"), NULL);
    merge_expect(10, IDS("a", "e", "f", "f0"), true, "f0");
}

/* The limit cuts before the bound: the page ends at its last entry. */
Test(broker_control, the_limit_before_the_bound_ends_at_the_last_entry)
{
    answer(0, IDS("a", "b", "c"), "x");
    answer(1, IDS("a1", "b1"), NULL);
    merge_expect(2, IDS("a", "a1"), true, NULL);
}

/* A shard that looked at sessions it did not select: an empty page that
 * still moves on. */
Test(broker_control, an_empty_page_with_next)
{
    answer(0, NONE, "k");
    answer(1, IDS("q"), NULL);
    merge_expect(10, NONE, true, "k");
}

/* A shard's error is the merge's. */
Test(broker_control, a_shard_error_fails_the_page)
{
    answer(0, IDS("a"), NULL);
    answer(1, IDS("b"), NULL);
    reqs[1]->err = -ENOMEM;
    struct control_page p;
    cr_assert_eq(control_merge(&b, reqs, &kind, 10, &p), -ENOMEM);
    control_req_put(reqs[0]);
    control_req_put(reqs[1]);
}
