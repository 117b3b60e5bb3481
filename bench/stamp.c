/*
 * stamp: payload stamp encoding and the receivers' sequence tracker (see
 * stamp.h). Pure functions over caller storage; any bench thread.
 */
#include "stamp.h"

#include <errno.h>
#include <string.h>

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

int stamp_encode(uint8_t *payload, size_t len, const struct stamp *s)
{
    if (len < STAMP_SIZE)
        return -EINVAL;
    if (s->sent_ns > STAMP_TIME_MAX)
        return -ERANGE;
    put_le(payload, s->run, 2);
    put_le(payload + 2, s->sent_ns, 6);
    put_le(payload + 8, s->publisher, 4);
    put_le(payload + 12, s->seq, 4);
    return 0;
}

int stamp_decode(const uint8_t *payload, size_t len, uint16_t run, struct stamp *out)
{
    if (len < STAMP_SIZE)
        return -EINVAL;
    out->run = (uint16_t)get_le(payload, 2);
    out->sent_ns = get_le(payload + 2, 6);
    out->publisher = (uint32_t)get_le(payload + 8, 4);
    out->seq = (uint32_t)get_le(payload + 12, 4);
    return out->run == run ? 0 : -EBADMSG;
}

void seqtrack_init(struct seqtrack *t)
{
    memset(t, 0, sizeof(*t));
}

static bool bit_get(const struct seqtrack *t, uint32_t seq)
{
    uint32_t b = seq % SEQ_WINDOW;
    return (t->bits[b / 64] >> (b % 64)) & 1;
}

static void bit_put(struct seqtrack *t, uint32_t seq, bool on)
{
    uint32_t b = seq % SEQ_WINDOW;
    if (on)
        t->bits[b / 64] |= 1ull << (b % 64);
    else
        t->bits[b / 64] &= ~(1ull << (b % 64));
}

enum seq_result seqtrack_add(struct seqtrack *t, uint32_t seq)
{
    if (seq < t->base)
        return SEQ_OLD;
    if (seq - t->base >= SEQ_WINDOW) {
        /* Slide the window so that seq is its last slot; forget what falls
         * out (a whole-window jump clears everything). */
        uint32_t new_base = seq - SEQ_WINDOW + 1;
        if (new_base - t->base >= SEQ_WINDOW)
            memset(t->bits, 0, sizeof(t->bits));
        else
            for (uint32_t s = t->base; s != new_base; s++)
                bit_put(t, s, false);
        t->base = new_base;
    }
    if (seq < t->top && bit_get(t, seq))
        return SEQ_DUP;
    bit_put(t, seq, true);
    if (seq < t->top)
        return SEQ_OOO;
    t->top = seq + 1;
    return SEQ_NEW;
}
