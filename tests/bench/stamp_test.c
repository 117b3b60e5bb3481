/* Unit tests for bench/stamp.c: the payload stamp and the sequence tracker. */
#include "stamp.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

Test(stamp, round_trip)
{
    uint8_t buf[32];
    memset(buf, 0xEE, sizeof(buf));
    struct stamp s = {
        .run = 0xBEEF, .sent_ns = 0x123456789ABCull, .publisher = 4000000000u, .seq = 0xFFFFFFFFu};
    cr_assert_eq(stamp_encode(buf, 16, &s), 0);
    cr_expect_eq(buf[16], 0xEE, "nothing written past the stamp");
    struct stamp d;
    cr_assert_eq(stamp_decode(buf, 16, 0xBEEF, &d), 0);
    cr_expect_eq(d.run, s.run);
    cr_expect_eq(d.sent_ns, s.sent_ns);
    cr_expect_eq(d.publisher, s.publisher);
    cr_expect_eq(d.seq, s.seq);
}

Test(stamp, layout_is_little_endian)
{
    uint8_t buf[16];
    struct stamp s = {
        .run = 0x0102, .sent_ns = 0x030405060708ull, .publisher = 0x090A0B0C, .seq = 0x0D0E0F10};
    cr_assert_eq(stamp_encode(buf, sizeof(buf), &s), 0);
    uint8_t want[16] = {0x02, 0x01, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03,
                        0x0C, 0x0B, 0x0A, 0x09, 0x10, 0x0F, 0x0E, 0x0D};
    cr_expect_arr_eq(buf, want, 16);
}

Test(stamp, short_payload_is_refused)
{
    uint8_t buf[16] = {0};
    struct stamp s = {0}, d;
    cr_expect_eq(stamp_encode(buf, 15, &s), -EINVAL);
    cr_expect_eq(stamp_decode(buf, 15, 0, &d), -EINVAL);
    cr_expect_eq(stamp_encode(buf, 16, &s), 0);
}

Test(stamp, time_limit_is_48_bits)
{
    uint8_t buf[16] = {0};
    struct stamp s = {.sent_ns = STAMP_TIME_MAX}, d;
    cr_expect_eq(stamp_encode(buf, 16, &s), 0);
    cr_expect_eq(stamp_decode(buf, 16, 0, &d), 0);
    cr_expect_eq(d.sent_ns, STAMP_TIME_MAX);
    s.sent_ns = STAMP_TIME_MAX + 1;
    memset(buf, 0, sizeof(buf));
    cr_expect_eq(stamp_encode(buf, 16, &s), -ERANGE);
    cr_expect_eq(buf[7], 0, "nothing written");
}

Test(stamp, other_run_is_recognised)
{
    uint8_t buf[16];
    struct stamp s = {.run = 7, .publisher = 1, .seq = 2}, d;
    cr_assert_eq(stamp_encode(buf, 16, &s), 0);
    cr_expect_eq(stamp_decode(buf, 16, 8, &d), -EBADMSG);
    cr_expect_eq(d.run, 7);
}

Test(seqtrack, in_order_is_new)
{
    struct seqtrack t;
    seqtrack_init(&t);
    for (uint32_t s = 0; s < 5 * SEQ_WINDOW; s++)
        cr_assert_eq(seqtrack_add(&t, s), SEQ_NEW, "seq %u", s);
}

Test(seqtrack, duplicate_within_window)
{
    struct seqtrack t;
    seqtrack_init(&t);
    cr_expect_eq(seqtrack_add(&t, 0), SEQ_NEW);
    cr_expect_eq(seqtrack_add(&t, 0), SEQ_DUP);
    cr_expect_eq(seqtrack_add(&t, 1), SEQ_NEW);
    cr_expect_eq(seqtrack_add(&t, 0), SEQ_DUP);
    cr_expect_eq(seqtrack_add(&t, 1), SEQ_DUP);
}

Test(seqtrack, gap_then_late_arrival_is_out_of_order)
{
    struct seqtrack t;
    seqtrack_init(&t);
    cr_expect_eq(seqtrack_add(&t, 0), SEQ_NEW);
    cr_expect_eq(seqtrack_add(&t, 5), SEQ_NEW); /* 1..4 missing so far */
    cr_expect_eq(seqtrack_add(&t, 3), SEQ_OOO);
    cr_expect_eq(seqtrack_add(&t, 3), SEQ_DUP);
    cr_expect_eq(seqtrack_add(&t, 6), SEQ_NEW);
}

Test(seqtrack, window_edges)
{
    struct seqtrack t;
    seqtrack_init(&t);
    cr_expect_eq(seqtrack_add(&t, SEQ_WINDOW - 1), SEQ_NEW); /* last slot, no slide */
    cr_expect_eq(t.base, 0);
    cr_expect_eq(seqtrack_add(&t, 0), SEQ_OOO);          /* first slot still covered */
    cr_expect_eq(seqtrack_add(&t, SEQ_WINDOW), SEQ_NEW); /* slides by one */
    cr_expect_eq(t.base, 1);
    cr_expect_eq(seqtrack_add(&t, 0), SEQ_OLD);
    cr_expect_eq(seqtrack_add(&t, 1), SEQ_OOO);
    cr_expect_eq(seqtrack_add(&t, SEQ_WINDOW - 1), SEQ_DUP, "kept across the slide");
}

Test(seqtrack, big_jump_forgets_everything)
{
    struct seqtrack t;
    seqtrack_init(&t);
    for (uint32_t s = 0; s < 10; s++)
        seqtrack_add(&t, s);
    cr_expect_eq(seqtrack_add(&t, 10 * SEQ_WINDOW), SEQ_NEW);
    cr_expect_eq(seqtrack_add(&t, 5), SEQ_OLD);
    /* The slot that held seq 5 must not make 5 + 10 * SEQ_WINDOW - ... look
     * seen: a new number in the window is new. */
    cr_expect_eq(seqtrack_add(&t, 9 * SEQ_WINDOW + 5), SEQ_OOO);
    cr_expect_eq(seqtrack_add(&t, 9 * SEQ_WINDOW + 5), SEQ_DUP);
}
