/*
 * stream_proxy: the PROXY protocol header at the start of a stream (see
 * stream.h), between the socket and the listener's transport.
 *
 * Who may send one is checked at accept (proxy_trusted); the header is
 * parsed straight from the receive buffer when it arrives whole, as it
 * nearly always does (senders write it at once, and it is shorter than a
 * segment). Only a header split across receives is copied, into a buffer
 * of the loop's proxy_holds that exists until it is complete (at most
 * PROXY_HEADER_MAX bytes), so an idle stream holds nothing and struct
 * stream grows by no pointer. A header with TLS TLVs (the proxy ended the
 * client's TLS) leaves what they say in the same slot, as an xprt_info,
 * until the stream ends. Runs on the loop's thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/cidr.h"
#include "core/log.h"
#include "net/proxy.h"
#include "net/stream.h"
#include "net/xprt_info.h"

_Static_assert(CONFIG_PROXY_V1 == PROXY_ACCEPT_V1 && CONFIG_PROXY_V2 == PROXY_ACCEPT_V2 &&
                   CONFIG_PROXY_ANY == (PROXY_ACCEPT_V1 | PROXY_ACCEPT_V2),
               "config_proxy values are proxy_parse's accept mask");

/* At most this many headers held in part per loop (st->proxy_hold is a
 * uint16_t): beyond, a new split header is refused. */
#define HOLD_MAX UINT16_MAX

int stream_proxy_admit(const struct stream_loop *l, uint8_t listener, const struct net_peer *peer)
{
    const struct config_listener *cl = l->proxy[listener];
    if (!cl || cidr_any(cl->proxy_trusted.v, cl->proxy_trusted.n, peer->addr))
        return 0;
    char addr[NET_PEER_STRLEN];
    net_peer_format(peer, addr, sizeof(addr));
    log_ratelimited(LOG_LEVEL_WARN,
                    "listener %s: connection from %s refused: not in proxy_trusted, and only "
                    "proxies may connect there (proxy_protocol)",
                    cl->name, addr);
    return -EPERM;
}

void stream_proxy_expect(const struct stream_loop *l, struct stream *st)
{
    st->proxy_wait = l->proxy[st->listener] != NULL;
}

static struct iobuf *held(struct stream_loop *l, const struct stream *st)
{
    return st->proxy_hold && st->proxy_wait ? l->proxy_holds.slot[st->proxy_hold - 1] : NULL;
}

const struct xprt_info *stream_proxy_info(const struct stream_loop *l, const struct stream *st)
{
    return st->proxy_hold && !st->proxy_wait ? l->proxy_holds.slot[st->proxy_hold - 1] : NULL;
}

void stream_proxy_release(struct stream_loop *l, struct stream *st)
{
    if (!st->proxy_hold)
        return;
    uint32_t i = st->proxy_hold - 1u;
    free(l->proxy_holds.slot[i]);
    l->proxy_holds.slot[i] = NULL;
    st->proxy_hold = 0;
    if (--l->proxy_holds.used == 0) {
        /* Nothing held: nor is the table. */
        free(l->proxy_holds.slot);
        l->proxy_holds.slot = NULL;
        l->proxy_holds.cap = l->proxy_holds.hint = 0;
    }
}

/* A free slot of the loop's table (grown when full); -ENOSPC or -ENOMEM. */
static int hold_slot(struct stream_loop *l)
{
    struct stream_proxy_holds *t = &l->proxy_holds;
    if (t->used == t->cap) {
        if (t->cap == HOLD_MAX)
            return -ENOSPC;
        uint32_t cap = t->cap ? t->cap * 2 : 16;
        cap = cap < HOLD_MAX ? cap : HOLD_MAX;
        void **slot = realloc(t->slot, cap * sizeof(*slot));
        if (!slot)
            return -ENOMEM;
        memset(slot + t->cap, 0, (cap - t->cap) * sizeof(*slot));
        t->hint = t->cap;
        t->slot = slot;
        t->cap = cap;
    }
    for (uint32_t k = 0; k < t->cap; k++) {
        uint32_t i = (t->hint + k) % t->cap;
        if (!t->slot[i])
            return (int)i;
    }
    return -ENOSPC; /* not reached: used < cap */
}

/* Put p (taken over) in a free slot for st. 0, or -errno (p freed). */
static int hold_put(struct stream_loop *l, struct stream *st, void *p)
{
    int i = hold_slot(l);
    if (i < 0) {
        free(p);
        return i;
    }
    l->proxy_holds.slot[i] = p;
    l->proxy_holds.used++;
    l->proxy_holds.hint = (uint32_t)i + 1;
    st->proxy_hold = (uint16_t)(i + 1);
    return 0;
}

/* Keep the start of a header that has not arrived whole. */
static int hold_new(struct stream_loop *l, struct stream *st, const uint8_t *data, size_t len)
{
    struct iobuf *b = iobuf_create(len);
    if (!b)
        return -ENOMEM;
    memcpy(b->data, data, len);
    b->len = (uint32_t)len;
    return hold_put(l, st, b);
}

/* A TLV's text as a string (it is not NUL-terminated), into buf. */
static const char *tlv_text(const struct proxy_text *t, char *buf, size_t cap)
{
    if (!t->len || memchr(t->p, 0, t->len))
        return NULL;
    size_t n = t->len < cap - 1 ? t->len : cap - 1;
    memcpy(buf, t->p, n);
    buf[n] = '\0';
    return buf;
}

/* What a v2 header's PP2_TYPE_SSL (and PP2_TYPE_AUTHORITY, the SNI) say
 * of the client's TLS to the proxy; NULL out of memory. Made before the
 * header's bytes are released: h points into them. */
static struct xprt_info *tls_tlvs(const struct proxy_header *h)
{
    static _Thread_local char version[64], cn[XPRT_INFO_FIELD_MAX + 1],
        sni[XPRT_INFO_FIELD_MAX + 1];
    /* The specification: verify is 0 when the client presented a
     * certificate and it was verified; "presented" is a CERT_* bit. */
    bool cert = (h->ssl_client & (PROXY_CLIENT_CERT_CONN | PROXY_CLIENT_CERT_SESS)) != 0;
    struct xprt_info_draft d = {
        .from_proxy = true,
        .cert_verified = cert && h->ssl_verify == 0,
        .tls_version = tlv_text(&h->ssl_version, version, sizeof(version)),
        .sni = tlv_text(&h->authority, sni, sizeof(sni)),
    };
    if (!d.tls_version && (h->ssl_client & PROXY_CLIENT_SSL))
        d.tls_version = "TLS";
    if (d.cert_verified)
        d.subject = d.cn = tlv_text(&h->ssl_cn, cn, sizeof(cn));
    return xprt_info_pack(&d);
}

/* Add to the held start what the header can still use of data (the rest
 * is the connection's own). The held buffer, or NULL out of memory. */
static struct iobuf *hold_append(struct stream_loop *l, struct stream *st, const uint8_t *data,
                                 size_t len)
{
    struct iobuf *b = held(l, st);
    size_t room = PROXY_HEADER_MAX - b->len;
    size_t take = len < room ? len : room;
    struct iobuf *nb = realloc(b, sizeof(*b) + b->len + take);
    if (!nb)
        return NULL;
    memcpy(nb->data + nb->len, data, take);
    nb->len += (uint32_t)take;
    nb->cap = nb->len;
    l->proxy_holds.slot[st->proxy_hold - 1] = nb;
    return nb;
}

static long refuse(struct stream_loop *l, struct stream *st, const char *why)
{
    char addr[NET_PEER_STRLEN];
    net_peer_format(&st->peer, addr, sizeof(addr));
    log_ratelimited(LOG_LEVEL_WARN,
                    "listener %s: connection from %s: bad PROXY protocol header (%s); closing it",
                    l->proxy[st->listener]->name, addr, why);
    /* Still waiting for a header: nothing more it sends reaches the
     * transport before the owner's close. */
    stream_proxy_release(l, st);
    return -EPROTO;
}

long stream_proxy_input(struct stream_loop *l, struct stream *st, const uint8_t *data, size_t len)
{
    size_t before = 0;
    const uint8_t *buf = data;
    size_t have = len;
    if (st->proxy_hold) {
        before = held(l, st)->len;
        struct iobuf *b = hold_append(l, st, data, len);
        if (!b)
            return refuse(l, st, "out of memory");
        buf = b->data;
        have = b->len;
    }
    struct proxy_header h;
    size_t need;
    const char *why;
    int rc = proxy_parse(buf, have, l->proxy[st->listener]->proxy_protocol, &h, &need, &why);
    if (rc < 0)
        return refuse(l, st, why);
    if (rc == 0) {
        if (have >= PROXY_HEADER_MAX) /* proxy_parse never lets it get here */
            return refuse(l, st, "too long");
        if (!st->proxy_hold && hold_new(l, st, data, len) < 0)
            return refuse(l, st, "no room to keep it while incomplete");
        return (long)len;
    }
    if (!h.local)
        st->peer = h.src;
    struct xprt_info *info = h.ssl ? tls_tlvs(&h) : NULL;
    if (h.ssl && !info)
        return refuse(l, st, "out of memory");
    stream_proxy_release(l, st);
    st->proxy_wait = false;
    if (info && hold_put(l, st, info) < 0)
        return refuse(l, st, "no room to keep its TLS TLVs");
    return (long)((size_t)rc - before);
}
