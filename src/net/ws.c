/*
 * ws: MQTT over WebSocket (see ws.h). The frame layer is written here, not
 * taken from wslay: wslay's contexts (frame or event API) are opaque heap
 * objects of 4.9 and 8.8 KiB per connection that cannot be written out
 * for a stream that moves to another shard, where this parser's state is
 * 32 bytes of plain data (README, "WebSocket").
 *
 * Input: frame headers are gathered in the state (they may arrive a byte
 * at a time), payloads unmasked into a scratch buffer on the stack and
 * handed to the owner in one piece per receive where it fits, after the
 * parser's state already counts them consumed (a stream that moves home
 * during that hand-off carries the right state).
 *
 * Output: the owner's bytes in st->out are wrapped into a binary frame in
 * place when sent (seal). What the transport writes itself (the HTTP
 * answer, pong, close) is wire bytes already: it waits in a buffer of the
 * transport's own (`wire`, told to the stream with stream_xprt_output) and
 * seal puts it before the owner's frame. st->out thus only ever holds the
 * owner's bytes, which a gated loop's marks count (stream.h).
 *
 * Runs on the shard that owns the stream.
 */
#include "net/ws.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "net/ws_upgrade.h"

enum {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xa,
};

#define WS_CTL_MAX 125u /* RFC 6455 5.5: a control frame's payload */

/* Payload bytes unmasked per hand-off to the owner: one receive buffer at
 * the default recv_buffer_size (larger receives take several). */
#define WS_SCRATCH 16384u

/* The frame parser: all that travels with a moving stream (plain data). */
struct ws_rx {
    uint32_t remain; /* payload bytes of the current frame still to read */
    uint8_t mask[4]; /* the current frame's masking key */
    uint8_t hdr[14]; /* its header as read so far */
    uint8_t hlen;    /* bytes in hdr; 0 between frames */
    uint8_t opcode;  /* of the current frame */
    uint8_t moff;    /* payload bytes read so far, mod 4: the mask's phase */
    uint8_t ctl_len; /* bytes of a control frame's payload gathered */
    bool in_payload; /* the header is read: payload follows */
    bool fin;        /* the current frame ends its message */
    bool in_message; /* a fragmented binary message awaits continuations */
    bool upgraded;   /* the Upgrade was answered 101 */
};

struct ws_state {
    union {
        struct ws_upgrade *hs; /* before upgraded: the request being read */
        uint8_t *ctl;          /* after: a control frame's payload (WS_CTL_MAX) */
    } aux;
    struct iobuf *wire; /* the transport's own bytes to send, or NULL */
    struct ws_rx rx;
};

/* A listener's options, shared read-only by its streams on every shard. */
struct ws_listener {
    struct ws_upgrade_policy policy;
    uint32_t max_frame;
    char path[sizeof(((struct config_listener *)0)->ws_path)];
    char origins[sizeof(((struct config_listener *)0)->ws_allowed_origins)];
};

_Static_assert(sizeof(struct ws_state) <= WS_STATE_SIZE, "ws.h's WS_STATE_SIZE is too small");

/* stream_state, known not NULL (ws always keeps state; it may be a layer
 * of a stack: stream.h). */
static struct ws_state *ws_of(const struct stream_loop *l, const struct stream *st)
{
    return stream_state_at(l, st);
}

static int ws_open(struct stream_loop *l, struct stream *st)
{
    memset(ws_of(l, st), 0, sizeof(struct ws_state));
    return 0;
}

static void ws_close(struct stream_loop *l, struct stream *st)
{
    struct ws_state *ws = ws_of(l, st);
    if (ws->rx.upgraded)
        free(ws->aux.ctl);
    else
        ws_upgrade_destroy(ws->aux.hs);
    ws->aux.ctl = NULL;
    free(ws->wire);
    ws->wire = NULL;
}

/* The header of a binary frame of n payload bytes (RFC 6455 5.2: a
 * server does not mask) into h[10]; its length. */
static uint32_t frame_header(uint8_t *h, uint32_t n)
{
    h[0] = 0x80 | WS_OP_BINARY;
    if (n < 126) {
        h[1] = (uint8_t)n;
        return 2;
    }
    if (n < 65536) {
        h[1] = 126;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        return 4;
    }
    h[1] = 127;
    memset(h + 2, 0, 4);
    for (int i = 0; i < 4; i++)
        h[6 + i] = (uint8_t)(n >> (24 - 8 * i));
    return 10;
}

/* st->out becomes the wire bytes: the transport's own first, then the
 * owner's as one binary frame (in place when there are none of the
 * former: one memmove). */
static int ws_seal(struct stream_loop *l, struct stream *st)
{
    struct ws_state *ws = ws_of(l, st);
    struct iobuf *b = st->out;
    uint32_t n = b && ws->rx.upgraded ? b->len : 0;
    uint8_t h[10];
    uint32_t hl = n ? frame_header(h, n) : 0;
    uint32_t w = ws->wire ? ws->wire->len : 0;
    if (!w && !hl)
        return 0;
    if (!w && b->cap - b->len >= hl) {
        memmove(b->data + hl, b->data, n);
        memcpy(b->data, h, hl);
        b->len += hl;
        return 0;
    }
    struct iobuf *nb = iobuf_create((size_t)w + hl + n);
    if (!nb)
        return -ENOMEM;
    if (w)
        memcpy(nb->data, ws->wire->data, w);
    memcpy(nb->data + w, h, hl);
    if (n)
        memcpy(nb->data + w + hl, b->data, n);
    nb->len = w + hl + n;
    free(b);
    st->out = nb;
    free(ws->wire);
    ws->wire = NULL;
    return 0;
}

/* Queue wire bytes of the transport's own (sent before what the owner
 * writes from now on, and never held by a gated loop). */
static int emit(struct stream_loop *l, struct stream *st, struct ws_state *ws, const void *bytes,
                size_t n)
{
    if (st->shut)
        return -ENOMEM; /* nothing more goes out anyway */
    struct iobuf *b = ws->wire;
    size_t have = b ? b->len : 0;
    if (!b || b->cap - have < n) {
        struct iobuf *nb = realloc(b, sizeof(*nb) + have + n);
        if (!nb)
            return -ENOMEM;
        if (!b)
            nb->len = nb->off = nb->mark = nb->cover = 0;
        nb->cap = (uint32_t)(have + n);
        ws->wire = b = nb;
    }
    memcpy(b->data + b->len, bytes, n);
    b->len += (uint32_t)n;
    stream_xprt_output(l, st);
    return 0;
}

static int send_control(struct stream_loop *l, struct stream *st, struct ws_state *ws,
                        uint8_t opcode, const uint8_t *payload, size_t n)
{
    uint8_t f[2 + WS_CTL_MAX];
    f[0] = 0x80 | opcode;
    f[1] = (uint8_t)n;
    if (n)
        memcpy(f + 2, payload, n);
    return emit(l, st, ws, f, 2 + n);
}

static int send_close(struct stream_loop *l, struct stream *st, struct ws_state *ws, uint16_t code)
{
    uint8_t c[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    return send_control(l, st, ws, WS_OP_CLOSE, c, code ? 2 : 0);
}

/* A client broke the protocol: say why in a close frame, then the owner
 * closes the stream (stream_close sends what is queued first). */
static int fail(struct stream_loop *l, struct stream *st, struct ws_state *ws, uint16_t code,
                const char *why)
{
    char peer[64];
    if (net_peer_format(&st->peer, peer, sizeof(peer)) < 0)
        snprintf(peer, sizeof(peer), "?");
    log_ratelimited(LOG_LEVEL_INFO, "%s %s: %s, closing (%u)", l->xprt[st->listener]->name, peer,
                    why, code); /* "ws" or "wss" */
    send_close(l, st, ws, code);
    return -EPROTO;
}

static uint64_t be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* The size of the header that starts with hdr[0..1]. */
static unsigned header_size(const uint8_t *h)
{
    unsigned len7 = h[1] & 0x7f;
    return 2 + ((h[1] & 0x80) ? 4 : 0) + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
}

/* Gather header bytes from *d; true once the header is complete. */
static bool read_header(struct ws_rx *rx, const uint8_t **d, size_t *n)
{
    for (;;) {
        unsigned need = rx->hlen < 2 ? 2 : header_size(rx->hdr);
        if (rx->hlen == need)
            return true;
        if (!*n)
            return false;
        size_t k = need - rx->hlen < *n ? need - rx->hlen : *n;
        memcpy(rx->hdr + rx->hlen, *d, k);
        rx->hlen = (uint8_t)(rx->hlen + k);
        *d += k;
        *n -= k;
    }
}

/* A complete header: 0 when the frame may be read, else the close code
 * and *why. */
static uint16_t frame_start(struct ws_rx *rx, uint32_t max_frame, const char **why)
{
    const uint8_t *h = rx->hdr;
    bool fin = h[0] & 0x80, ctl = h[0] & 0x08;
    unsigned op = h[0] & 0x0f, len7 = h[1] & 0x7f;
    unsigned at = len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
    uint64_t len = len7 == 126 ? be(h + 2, 2) : len7 == 127 ? be(h + 2, 8) : len7;
    rx->hlen = 0;
    *why = NULL;
    if (h[0] & 0x70)
        *why = "reserved bits set (no extension was agreed)";
    else if (!(h[1] & 0x80))
        *why = "unmasked client frame"; /* RFC 6455 5.1 */
    else if (ctl && (op > WS_OP_PONG || !fin || len > WS_CTL_MAX))
        *why = "bad control frame"; /* RFC 6455 5.5 */
    else if (!ctl && op > WS_OP_BINARY)
        *why = "reserved opcode";
    else if (op == WS_OP_TEXT)
        return *why = "text frame", WS_CLOSE_UNSUPPORTED; /* MQTT-6.0.0-1 */
    else if (op == WS_OP_CONT && !rx->in_message)
        *why = "continuation without a message";
    else if (op == WS_OP_BINARY && rx->in_message)
        *why = "new message inside a fragmented one"; /* RFC 6455 5.4 */
    else if (len >> 63)
        *why = "64-bit length with its top bit set"; /* RFC 6455 5.2 */
    else if (len > max_frame)
        return *why = "frame over ws_max_frame", WS_CLOSE_TOO_BIG;
    if (*why)
        return WS_CLOSE_PROTOCOL;
    memcpy(rx->mask, h + at, 4);
    rx->opcode = (uint8_t)op;
    rx->fin = fin;
    rx->remain = (uint32_t)len;
    rx->moff = 0;
    rx->ctl_len = 0;
    rx->in_payload = true;
    if (!ctl)
        rx->in_message = !fin;
    return 0;
}

/* dst = src unmasked with the frame's key at its current phase. */
static void unmask(struct ws_rx *rx, uint8_t *dst, const uint8_t *src, size_t n)
{
    uint8_t m[8];
    for (unsigned i = 0; i < 8; i++)
        m[i] = rx->mask[(rx->moff + i) & 3];
    uint64_t m64;
    memcpy(&m64, m, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, src + i, 8);
        v ^= m64;
        memcpy(dst + i, &v, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ m[i & 7];
    rx->moff = (uint8_t)((rx->moff + n) & 3);
}

/* Close codes a peer may send (RFC 6455 7.4.1, 7.4.2 and IANA's
 * registry): 1000-1003, 1007-1014, 3000-4999. */
static bool close_code_valid(unsigned c)
{
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

/* A control frame ended: its payload is aux.ctl (ctl_len bytes). */
static int control(struct stream_loop *l, struct stream *st, struct ws_state *ws)
{
    const uint8_t *p = ws->aux.ctl;
    size_t n = ws->rx.ctl_len;
    int rc = 0;
    if (ws->rx.opcode == WS_OP_PING) {
        rc = send_control(l, st, ws, WS_OP_PONG, p, n); /* RFC 6455 5.5.3: same data */
    } else if (ws->rx.opcode == WS_OP_CLOSE) {
        unsigned code = n >= 2 ? (unsigned)be(p, 2) : 0;
        if (n == 1 || (n >= 2 && !close_code_valid(code)))
            rc = fail(l, st, ws, WS_CLOSE_PROTOCOL, "bad close frame");
        else /* RFC 6455 5.5.1: answer with a close (the status echoed) */
            rc = send_close(l, st, ws, (uint16_t)code) < 0 ? -EPROTO : -ECONNRESET;
    }
    free(ws->aux.ctl);
    ws->aux.ctl = NULL;
    ws->rx.ctl_len = 0;
    return rc;
}

/* Payload bytes of a control frame: gathered until the frame ends. */
static int gather_control(struct ws_state *ws, const uint8_t *d, size_t k)
{
    if (!ws->aux.ctl) {
        ws->aux.ctl = malloc(WS_CTL_MAX);
        if (!ws->aux.ctl)
            return -ENOMEM;
    }
    unmask(&ws->rx, ws->aux.ctl + ws->rx.ctl_len, d, k);
    ws->rx.ctl_len = (uint8_t)(ws->rx.ctl_len + k);
    return 0;
}

/* Hand the unmasked payload gathered so far to the owner; false when it
 * closed the stream meanwhile (nothing more is read). */
static bool hand_up(struct stream_loop *l, struct stream *st, const uint8_t *buf, size_t *got)
{
    if (*got) {
        stream_deliver(l, st, buf, *got);
        *got = 0;
    }
    return !st->shut;
}

/* Frames after the Upgrade. 0, or -errno to close the stream. */
static int frames(struct stream_loop *l, struct stream *st, struct ws_state *ws, const uint8_t *d,
                  size_t n)
{
    const struct ws_listener *cx = stream_xprt_ctx(l, st);
    struct ws_rx *rx = &ws->rx;
    uint8_t buf[WS_SCRATCH];
    size_t got = 0;
    while (n) {
        if (!rx->in_payload) {
            if (!read_header(rx, &d, &n))
                break;
            const char *why;
            uint16_t code = frame_start(rx, cx->max_frame, &why);
            if (code) /* what came before the bad frame is the client's */
                return hand_up(l, st, buf, &got) ? fail(l, st, ws, code, why) : 0;
        } else if (rx->opcode & 0x08) {
            size_t k = n < rx->remain ? n : rx->remain;
            if (gather_control(ws, d, k) < 0)
                return -ENOMEM;
            d += k, n -= k, rx->remain -= (uint32_t)k;
        } else {
            if (got == sizeof(buf) && !hand_up(l, st, buf, &got))
                return 0;
            size_t k = n < rx->remain ? n : rx->remain;
            if (k > sizeof(buf) - got)
                k = sizeof(buf) - got;
            unmask(rx, buf + got, d, k); /* MQTT-6.0.0-2: any split of packets */
            got += k;
            d += k, n -= k, rx->remain -= (uint32_t)k;
        }
        if (rx->in_payload && !rx->remain) {
            rx->in_payload = false;
            if (rx->opcode & 0x08) {
                if (!hand_up(l, st, buf, &got))
                    return 0;
                int rc = control(l, st, ws);
                if (rc < 0)
                    return rc;
            }
        }
    }
    hand_up(l, st, buf, &got);
    return 0;
}

/* The Upgrade request: 0 while it is incomplete, 1 once answered 101
 * (*used: its bytes in d), or -errno after an error answer. */
static int upgrade(struct stream_loop *l, struct stream *st, struct ws_state *ws, const uint8_t *d,
                   size_t n, size_t *used)
{
    const struct ws_listener *cx = stream_xprt_ctx(l, st);
    int rc = ws_upgrade_feed(&ws->aux.hs, d, n, used);
    if (rc == WS_UPGRADE_MORE)
        return 0;
    char ans[WS_UPGRADE_ANSWER_MAX];
    size_t alen = 0;
    int status = rc;
    if (rc == WS_UPGRADE_DONE)
        status = ws_upgrade_answer(ws->aux.hs, &cx->policy, ans, &alen);
    else if (rc > 0)
        alen = ws_upgrade_error(rc, ans);
    ws_upgrade_destroy(ws->aux.hs);
    ws->aux.hs = NULL;
    if (rc < 0)
        return rc;
    int e = emit(l, st, ws, ans, alen);
    if (status != 101) {
        char peer[64];
        if (net_peer_format(&st->peer, peer, sizeof(peer)) < 0)
            snprintf(peer, sizeof(peer), "?");
        log_ratelimited(LOG_LEVEL_INFO, "%s %s: Upgrade refused with HTTP %d",
                        l->xprt[st->listener]->name, peer, status);
        return -EPROTO;
    }
    if (e < 0)
        return e;
    ws->rx.upgraded = true;
    return 1;
}

static int ws_input(struct stream_loop *l, struct stream *st, const uint8_t *d, size_t n)
{
    struct ws_state *ws = ws_of(l, st);
    if (!ws->rx.upgraded) {
        size_t used = 0;
        int rc = upgrade(l, st, ws, d, n, &used);
        if (rc <= 0)
            return rc;
        d += used;
        n -= used;
    }
    return frames(l, st, ws, d, n);
}

/* What travels with a moving stream: the parser, then any control
 * payload gathered (a stream moves once its CONNECT is read, so after the
 * Upgrade: the request is never part of it). */
static size_t ws_export_size(const struct stream_loop *l, const struct stream *st)
{
    const struct ws_state *ws = ws_of(l, st);
    return sizeof(struct ws_rx) + (ws->rx.upgraded ? ws->rx.ctl_len : 0);
}

static void ws_export(const struct stream_loop *l, struct stream *st, uint8_t *to)
{
    const struct ws_state *ws = ws_of(l, st);
    memcpy(to, &ws->rx, sizeof(ws->rx));
    if (ws->rx.upgraded && ws->rx.ctl_len)
        memcpy(to + sizeof(ws->rx), ws->aux.ctl, ws->rx.ctl_len);
}

static int ws_import(struct stream_loop *l, struct stream *st, const uint8_t *from, size_t len)
{
    struct ws_state *ws = ws_of(l, st);
    struct ws_rx rx;
    if (len < sizeof(rx))
        return -EINVAL;
    memcpy(&rx, from, sizeof(rx));
    if (len != sizeof(rx) + (rx.upgraded ? rx.ctl_len : 0) || rx.ctl_len > WS_CTL_MAX ||
        rx.hlen > sizeof(rx.hdr))
        return -EINVAL;
    ws_close(l, st);
    if (rx.upgraded && rx.ctl_len) {
        ws->aux.ctl = malloc(WS_CTL_MAX);
        if (!ws->aux.ctl)
            return -ENOMEM;
        memcpy(ws->aux.ctl, from + sizeof(rx), rx.ctl_len);
    }
    ws->rx = rx;
    return 0;
}

static int ws_listener_create(const struct config_listener *cl, void **ctx,
                              struct transport_fail *fail)
{
    if (cl->ws_path[0] != '/') {
        log_err("listener %s: ws_path must start with '/', got '%s'", cl->name, cl->ws_path);
        transport_fail_set(fail, "ws_path", NULL, "must start with '/'");
        return -EINVAL;
    }
    struct ws_listener *w = calloc(1, sizeof(*w));
    if (!w) {
        log_err("listener %s: out of memory", cl->name);
        transport_fail_set(fail, "transport", NULL, "out of memory");
        return -ENOMEM;
    }
    memcpy(w->path, cl->ws_path, sizeof(w->path));
    memcpy(w->origins, cl->ws_allowed_origins, sizeof(w->origins));
    w->max_frame = cl->ws_max_frame;
    w->policy.path = w->path;
    w->policy.origins = w->origins;
    *ctx = w;
    return 0;
}

static void ws_listener_destroy(void *ctx)
{
    free(ctx);
}

const struct transport_ops transport_ws = {
    .name = "ws",
    .state_size = sizeof(struct ws_state),
    .open = ws_open,
    .input = ws_input,
    .seal = ws_seal,
    .export_size = ws_export_size,
    .export_state = ws_export,
    .import_state = ws_import,
    .close = ws_close,
};

const struct transport_kind transport_kind_ws = {
    .ops = &transport_ws,
    .listener_create = ws_listener_create,
    .listener_destroy = ws_listener_destroy,
};
