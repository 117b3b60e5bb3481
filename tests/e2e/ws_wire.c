/* WebSocket bytes for the ws and wss e2e tests (see ws_wire.h). */
#include "ws_wire.h"

#include <criterion/criterion.h>
#include <string.h>

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

size_t ws_frame(uint8_t *out, bool fin, int op, bool masked, const void *payload, size_t len,
                uint64_t claimed)
{
    uint64_t l = claimed ? claimed : len;
    size_t n = 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0) | op);
    uint8_t m = masked ? 0x80 : 0;
    if (l < 126) {
        out[n++] = (uint8_t)(m | l);
    } else if (l < 65536) {
        out[n++] = m | 126;
        out[n++] = (uint8_t)(l >> 8);
        out[n++] = (uint8_t)l;
    } else {
        out[n++] = m | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)(l >> (8 * i));
    }
    if (masked) {
        memcpy(out + n, MASK, 4);
        n += 4;
    }
    for (size_t i = 0; i < len; i++)
        out[n + i] = ((const uint8_t *)payload)[i] ^ (masked ? MASK[i & 3] : 0);
    return n + len;
}

int ws_read_frame(ws_read_fn rd, void *io, uint8_t *buf, size_t cap, size_t *len)
{
    uint8_t h[10];
    cr_assert_eq(rd(io, h, 2), 2, "closed instead of a frame");
    cr_assert_eq(h[1] & 0x80, 0, "a server frame is not masked (RFC 6455 5.1)");
    uint64_t l = h[1] & 0x7f;
    if (l == 126 || l == 127) {
        size_t k = l == 126 ? 2 : 8;
        cr_assert_eq(rd(io, h + 2, k), k);
        l = 0;
        for (size_t i = 0; i < k; i++)
            l = l << 8 | h[2 + i];
    }
    cr_assert_leq(l, cap);
    if (l)
        cr_assert_eq(rd(io, buf, l), l);
    *len = l;
    return h[0] & 0x0f;
}

size_t ws_read_packet_from(ws_read_fn rd, void *io, struct ws_packets *p, uint8_t *out, size_t cap)
{
    for (;;) {
        if (p->have >= 2) {
            size_t rl = 0, i = 1;
            int shift = 0;
            while (i < p->have && i < 5) {
                rl |= (size_t)(p->in[i] & 0x7f) << shift;
                shift += 7;
                if (!(p->in[i++] & 0x80))
                    break;
            }
            if (i <= p->have && !(p->in[i - 1] & 0x80) && p->have >= i + rl) {
                size_t n = i + rl;
                cr_assert_leq(n, cap);
                memcpy(out, p->in, n);
                memmove(p->in, p->in + n, p->have - n);
                p->have -= n;
                return n;
            }
        }
        size_t n;
        int op = ws_read_frame(rd, io, p->in + p->have, sizeof(p->in) - p->have, &n);
        cr_assert_eq(op, 0x2, "opcode %d, not binary", op);
        p->have += n;
    }
}
