/*
 * xport: TLS (wolfSSL from memory buffers), WebSocket and WebSocket over
 * TLS for ringmq-bench's connections (see xport.h for the contract).
 *
 * A worker thread calls these for its own connections only; the shared
 * context is read-only after xport_ctx_create. Nothing here does I/O:
 * wolfSSL's callbacks read the borrowed input and append to x->wire.
 *
 * The WebSocket side is the client's half of RFC 6455: one Upgrade request
 * (subprotocol mqtt), masked binary frames out (a fresh mask per frame,
 * RFC 6455 5.3), unmasked frames in (a masked server frame is an error,
 * 5.1), pings answered, a close frame ends the connection.
 */
#include "xport.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_MAX     4096
#define CHUNK        16384 /* plaintext per TLS record (2^14, RFC 8446 5.1) */
#define WS_FRAME_MAX 65536
#define WS_OP_CONT   0x0
#define WS_OP_TEXT   0x1
#define WS_OP_BIN    0x2
#define WS_OP_CLOSE  0x8
#define WS_OP_PING   0x9
#define WS_OP_PONG   0xA

enum xstate {
    XS_NEW = 0,
    XS_TLS_HS,  /* TLS handshake in progress */
    XS_UPGRADE, /* Upgrade sent, waiting for 101 */
    XS_OPEN,
};

struct xport_ctx {
    WOLFSSL_CTX *ssl_ctx; /* NULL: no TLS */
    bool ws, resume;
    char *upgrade;
    size_t upgrade_len;
    const char *name;
};

uint8_t *xbuf_reserve(struct xbuf *b, size_t n)
{
    if ((size_t)b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < (size_t)b->len + n)
            cap *= 2;
        if (cap > UINT32_MAX)
            return NULL;
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return NULL;
        b->p = p;
        b->cap = (uint32_t)cap;
    }
    return b->p + b->len;
}

void xbuf_fini(struct xbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* ---- wolfSSL's I/O: the borrowed input and x->wire ---------------------- */

static int cb_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    (void)ssl;
    struct xconn *x = arg;
    if (x->in_len == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = (size_t)sz < x->in_len ? (size_t)sz : x->in_len;
    memcpy(buf, x->in, n);
    x->in += n;
    x->in_len -= n;
    return (int)n;
}

static int cb_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    (void)ssl;
    struct xconn *x = arg;
    uint8_t *p = xbuf_reserve(&x->wire, (size_t)sz);
    if (!p)
        return WOLFSSL_CBIO_ERR_GENERAL;
    memcpy(p, buf, (size_t)sz);
    x->wire.len += (uint32_t)sz;
    return sz;
}

/* ---- the context ------------------------------------------------------------ */

static int tls_ctx_init(struct xport_ctx *c, const struct xport_opts *o)
{
    c->ssl_ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
    if (!c->ssl_ctx)
        return -ENOMEM;
    wolfSSL_CTX_SetMinVersion(c->ssl_ctx, WOLFSSL_TLSV1_2);
    wolfSSL_CTX_SetIORecv(c->ssl_ctx, cb_recv);
    wolfSSL_CTX_SetIOSend(c->ssl_ctx, cb_send);
    wolfSSL_CTX_UseSessionTicket(c->ssl_ctx);
    if (o->cafile &&
        wolfSSL_CTX_load_verify_locations(c->ssl_ctx, o->cafile, NULL) != WOLFSSL_SUCCESS) {
        fprintf(stderr, "ringmq-bench: --cafile %s: not a PEM certificate file\n", o->cafile);
        return -EINVAL;
    }
    wolfSSL_CTX_set_verify(c->ssl_ctx, o->cafile ? WOLFSSL_VERIFY_PEER : WOLFSSL_VERIFY_NONE, NULL);
    if (o->cert && wolfSSL_CTX_use_certificate_chain_file(c->ssl_ctx, o->cert) != WOLFSSL_SUCCESS) {
        fprintf(stderr, "ringmq-bench: --cert %s: not a PEM certificate chain\n", o->cert);
        return -EINVAL;
    }
    if (o->key && wolfSSL_CTX_use_PrivateKey_file(c->ssl_ctx, o->key, WOLFSSL_FILETYPE_PEM) !=
                      WOLFSSL_SUCCESS) {
        fprintf(stderr, "ringmq-bench: --key %s: not a PEM private key (for --cert)\n", o->key);
        return -EINVAL;
    }
    return 0;
}

int xport_ctx_create(const struct xport_opts *o, struct xport_ctx **out)
{
    *out = NULL;
    if (!o->tls && !o->ws_path)
        return 0;
    struct xport_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->ws = o->ws_path != NULL;
    c->resume = o->resume;
    c->name = o->tls ? (c->ws ? "wss" : "tls") : "ws";
    int rc = 0;
    if (o->tls) {
        wolfSSL_Init();
        rc = tls_ctx_init(c, o);
    }
    if (rc == 0 && c->ws) {
        /* The key is any 16 bytes in base64 (RFC 6455 4.1); the bench does
         * not need it to be fresh per connection. */
        static const char fmt[] = "GET %s HTTP/1.1\r\nHost: %s:%u\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\nSec-WebSocket-Key: "
                                  "cmluZ21xLWJlbmNoLWtleQ==\r\nSec-WebSocket-Version: 13\r\n"
                                  "Sec-WebSocket-Protocol: mqtt\r\n\r\n";
        int n = snprintf(NULL, 0, fmt, o->ws_path, o->host, o->port);
        c->upgrade = malloc((size_t)n + 1);
        if (!c->upgrade)
            rc = -ENOMEM;
        else
            c->upgrade_len =
                (size_t)snprintf(c->upgrade, (size_t)n + 1, fmt, o->ws_path, o->host, o->port);
    }
    if (rc) {
        xport_ctx_destroy(c);
        return rc;
    }
    *out = c;
    return 0;
}

void xport_ctx_destroy(struct xport_ctx *c)
{
    if (!c)
        return;
    if (c->ssl_ctx) {
        wolfSSL_CTX_free(c->ssl_ctx);
        wolfSSL_Cleanup();
    }
    free(c->upgrade);
    free(c);
}

void xport_thread_fini(const struct xport_ctx *c)
{
#ifdef FP_ECC
    if (c && c->ssl_ctx)
        wc_ecc_fp_free();
#else
    (void)c;
#endif
}

const char *xport_name(const struct xport_ctx *c)
{
    return c ? c->name : "tcp";
}

/* ---- output ------------------------------------------------------------------ */

/* Plaintext (MQTT bytes or WebSocket frames) to the wire: encrypted when TLS. */
static int put_plain(struct xconn *x, const uint8_t *p, size_t n)
{
    if (!x->ssl) {
        uint8_t *d = xbuf_reserve(&x->wire, n);
        if (!d)
            return -ENOMEM;
        memcpy(d, p, n);
        x->wire.len += (uint32_t)n;
        return 0;
    }
    while (n) {
        int chunk = n > CHUNK ? CHUNK : (int)n;
        int r = wolfSSL_write((WOLFSSL *)x->ssl, p, chunk);
        if (r != chunk)
            return -EPROTO;
        p += chunk;
        n -= (size_t)chunk;
    }
    return 0;
}

static uint32_t next_mask(struct xconn *x)
{
    /* xorshift32: a different key per frame; unpredictability (RFC 6455
     * 10.3) protects proxies from browsers' scripts, not a concern here. */
    uint32_t s = x->mask_seed ? x->mask_seed : 0x9e3779b9u;
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    x->mask_seed = s;
    return s;
}

/* One masked frame (FIN set) carrying p[0..n). */
static int ws_frame(struct xconn *x, uint8_t opcode, const uint8_t *p, size_t n)
{
    uint8_t buf[CHUNK];
    size_t h = 0;
    buf[h++] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        buf[h++] = (uint8_t)(0x80 | n);
    } else if (n <= 0xffff) {
        buf[h++] = 0x80 | 126;
        buf[h++] = (uint8_t)(n >> 8);
        buf[h++] = (uint8_t)n;
    } else {
        buf[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            buf[h++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    uint32_t m = next_mask(x);
    uint8_t mask[4] = {(uint8_t)(m >> 24), (uint8_t)(m >> 16), (uint8_t)(m >> 8), (uint8_t)m};
    memcpy(buf + h, mask, 4);
    h += 4;
    /* Mask into the stack buffer a record's worth at a time. */
    size_t done = 0;
    do {
        size_t take = n - done < CHUNK - h ? n - done : CHUNK - h;
        for (size_t i = 0; i < take; i++)
            buf[h + i] = p[done + i] ^ mask[(done + i) & 3];
        int rc = put_plain(x, buf, h + take);
        if (rc)
            return rc;
        done += take;
        h = 0;
    } while (done < n);
    return 0;
}

int xport_seal(struct xport_ctx *c, struct xconn *x, const uint8_t *p, size_t n)
{
    if (x->state != XS_OPEN)
        return -EAGAIN;
    if (!c->ws)
        return put_plain(x, p, n);
    /* A flush can hold megabytes; brokers bound the frame (ringmqd's
     * ws_max_frame, 1 MiB by default) and MQTT packets may span frames. */
    do {
        size_t take = n < WS_FRAME_MAX ? n : WS_FRAME_MAX;
        int rc = ws_frame(x, WS_OP_BIN, p, take);
        if (rc)
            return rc;
        p += take;
        n -= take;
    } while (n);
    return 0;
}

/* ---- input ------------------------------------------------------------------- */

/* The Upgrade response: accumulated until its blank line; 101 or an error.
 * Returns the bytes of p it used, or -errno. */
static long ws_response(struct xconn *x, const uint8_t *p, size_t n)
{
    size_t take = n < HTTP_MAX - x->http_len ? n : HTTP_MAX - x->http_len;
    if (!x->http && !(x->http = malloc(HTTP_MAX + 1)))
        return -ENOMEM;
    memcpy(x->http + x->http_len, p, take);
    size_t old = x->http_len;
    x->http_len += (uint32_t)take;
    x->http[x->http_len] = 0;
    char *end = strstr(x->http, "\r\n\r\n");
    if (!end)
        return x->http_len == HTTP_MAX ? -EPROTO : (long)take;
    size_t used = (size_t)(end + 4 - x->http) - old;
    bool ok = strncmp(x->http, "HTTP/1.1 101", 12) == 0;
    free(x->http);
    x->http = NULL;
    x->http_len = 0;
    if (!ok)
        return -EPROTO;
    x->state = XS_OPEN;
    return (long)used;
}

/* Header bytes of the next frame; returns bytes used, or -errno. When the
 * header is complete, sets opcode and payload_left and hdr_len to 0. */
static long ws_header(struct xconn *x, const uint8_t *p, size_t n)
{
    size_t used = 0;
    for (;;) {
        size_t need = 2;
        if (x->hdr_len >= 2) {
            if (x->hdr[1] & 0x80)
                return -EPROTO; /* RFC 6455 5.1: a server never masks */
            uint8_t l7 = x->hdr[1] & 0x7f;
            need += l7 == 126 ? 2 : l7 == 127 ? 8 : 0;
        }
        if (x->hdr_len == need)
            break;
        if (used == n)
            return (long)used;
        x->hdr[x->hdr_len++] = p[used++];
    }
    uint8_t l7 = x->hdr[1] & 0x7f;
    uint64_t len = l7;
    if (l7 >= 126) {
        len = 0;
        for (uint8_t i = 2; i < x->hdr_len; i++)
            len = len << 8 | x->hdr[i];
    }
    x->opcode = x->hdr[0] & 0x0f;
    x->payload_left = len;
    x->hdr_len = 0;
    x->in_payload = true;
    if (x->opcode == WS_OP_TEXT || (x->opcode >= 0x8 && len > 125))
        return -EPROTO; /* MQTT is binary (MQTT-6.0.0-1); control frames <= 125 */
    return (long)used;
}

/* A control frame's payload is complete in x->ctl. */
static int ws_control(struct xconn *x)
{
    switch (x->opcode) {
    case WS_OP_CLOSE:
        return -ECONNRESET;
    case WS_OP_PING:
        return ws_frame(x, WS_OP_PONG, x->ctl, x->ctl_len);
    default:
        return 0;
    }
}

static int ws_input(struct xconn *x, const uint8_t *p, size_t n, xport_data_fn fn, void *arg)
{
    while (n) {
        long used;
        if (x->state == XS_UPGRADE)
            used = ws_response(x, p, n);
        else if (!x->in_payload)
            used = ws_header(x, p, n);
        else {
            size_t take = n < x->payload_left ? n : (size_t)x->payload_left;
            if (x->opcode < 0x8) {
                fn(arg, p, take);
            } else { /* <= 125 bytes (ws_header checked) */
                memcpy(x->ctl + x->ctl_len, p, take);
                x->ctl_len += (uint8_t)take;
            }
            x->payload_left -= take;
            used = (long)take;
        }
        if (used < 0)
            return (int)used;
        p += used;
        n -= (size_t)used;
        if (x->in_payload && x->payload_left == 0) {
            x->in_payload = false;
            int rc = x->opcode >= 0x8 ? ws_control(x) : 0;
            x->ctl_len = 0;
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int plain_input(struct xport_ctx *c, struct xconn *x, const uint8_t *p, size_t n,
                       xport_data_fn fn, void *arg)
{
    if (!c->ws) {
        fn(arg, p, n);
        return 0;
    }
    return ws_input(x, p, n, fn, arg);
}

/* Handshake until done (then the Upgrade request over TLS for wss). */
static int tls_handshake(struct xport_ctx *c, struct xconn *x)
{
    WOLFSSL *ssl = x->ssl;
    int r = wolfSSL_connect(ssl);
    if (r != WOLFSSL_SUCCESS) {
        int err = wolfSSL_get_error(ssl, r);
        return err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE ? 0 : -EPROTO;
    }
    x->resumed = wolfSSL_session_reused(ssl) == 1;
    if (!c->ws) {
        x->state = XS_OPEN;
        return 0;
    }
    x->state = XS_UPGRADE;
    return put_plain(x, (const uint8_t *)c->upgrade, c->upgrade_len);
}

static int tls_input(struct xport_ctx *c, struct xconn *x, xport_data_fn fn, void *arg)
{
    WOLFSSL *ssl = x->ssl;
    if (x->state == XS_TLS_HS) {
        int rc = tls_handshake(c, x);
        if (rc || x->state == XS_TLS_HS)
            return rc;
    }
    uint8_t buf[CHUNK];
    for (;;) {
        int r = wolfSSL_read(ssl, buf, sizeof(buf));
        if (r > 0) {
            int rc = plain_input(c, x, buf, (size_t)r, fn, arg);
            if (rc)
                return rc;
            continue;
        }
        int err = wolfSSL_get_error(ssl, r);
        if (err == WOLFSSL_ERROR_WANT_READ)
            return 0;
        return err == WOLFSSL_ERROR_ZERO_RETURN ? -ECONNRESET : -EPROTO;
    }
}

int xport_input(struct xport_ctx *c, struct xconn *x, const uint8_t *p, size_t n, xport_data_fn fn,
                void *arg)
{
    if (!x->ssl)
        return plain_input(c, x, p, n, fn, arg);
    x->in = p;
    x->in_len = n;
    int rc = tls_input(c, x, fn, arg);
    x->in = NULL;
    x->in_len = 0;
    return rc;
}

/* ---- life cycle --------------------------------------------------------------- */

int xport_start(struct xport_ctx *c, struct xconn *x, uint32_t seed)
{
    if (!x->mask_seed)
        x->mask_seed = seed | 1;
    if (!c->ssl_ctx) {
        x->state = XS_UPGRADE;
        return put_plain(x, (const uint8_t *)c->upgrade, c->upgrade_len);
    }
    WOLFSSL *ssl = wolfSSL_new(c->ssl_ctx);
    if (!ssl)
        return -ENOMEM;
    x->ssl = ssl;
    wolfSSL_SetIOReadCtx(ssl, x);
    wolfSSL_SetIOWriteCtx(ssl, x);
    if (c->resume && x->session)
        wolfSSL_set_session(ssl, x->session);
    x->state = XS_TLS_HS;
    return tls_handshake(c, x); /* writes the ClientHello */
}

bool xport_ready(const struct xconn *x)
{
    return x->state == XS_OPEN;
}

void xport_reset(struct xport_ctx *c, struct xconn *x)
{
    if (x->ssl) {
        if (c->resume && x->state == XS_OPEN) {
            WOLFSSL_SESSION *s = wolfSSL_get1_session(x->ssl);
            if (s) {
                if (x->session)
                    wolfSSL_SESSION_free(x->session);
                x->session = s;
            }
        }
        wolfSSL_free(x->ssl);
        x->ssl = NULL;
    }
    free(x->http);
    x->http = NULL;
    xbuf_fini(&x->wire);
    x->http_len = 0;
    x->hdr_len = x->ctl_len = 0;
    x->in_payload = false;
    x->payload_left = 0;
    x->state = XS_NEW;
    x->resumed = false;
}

void xport_fini(struct xport_ctx *c, struct xconn *x)
{
    xport_reset(c, x);
    if (x->session)
        wolfSSL_SESSION_free(x->session);
    x->session = NULL;
}
