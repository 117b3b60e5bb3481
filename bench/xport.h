/*
 * xport: the client side of ringmq-bench's transports: plain TCP, TLS
 * (wolfSSL), WebSocket (RFC 6455) and WebSocket over TLS, between the
 * engine's MQTT bytes and the bytes its io_uring sends and receives.
 *
 * wolfSSL never sees a socket: its I/O callbacks read the bytes the engine
 * received (borrowed for the length of one xport_input call) and append
 * what it writes to the connection's `wire` buffer, which the engine sends.
 * So the engine keeps its one io_uring loop and its accounting for every
 * transport, and only the bytes between MQTT and the socket differ.
 *
 * Threads: one xport_ctx per run, built by main before the workers start
 * and only read afterwards (wolfSSL's context is shared by their sessions);
 * an xconn belongs to the worker that owns its connection.
 */
#ifndef RINGMQ_BENCH_XPORT_H
#define RINGMQ_BENCH_XPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer (the engine's output buffers are these too). */
struct xbuf {
    uint8_t *p;
    uint32_t len, cap;
};

/* Room for n more bytes after b->len; NULL when out of memory (b unchanged). */
uint8_t *xbuf_reserve(struct xbuf *b, size_t n);

/* Frees the memory; b is empty afterwards. */
void xbuf_fini(struct xbuf *b);

struct xport_opts {
    bool tls;
    const char *cafile;     /* verify the server against it; NULL: no verification */
    const char *cert, *key; /* client certificate (mutual TLS) or NULL */
    const char *ws_path;    /* WebSocket on this path, or NULL */
    const char *host;       /* Host header */
    uint16_t port;
    bool resume; /* reuse the connection's last TLS session */
};

struct xport_ctx;

/* Builds the run's context. 0, or -EINVAL after a message on stderr (a
 * file that does not load). *out is NULL for plain TCP. */
int xport_ctx_create(const struct xport_opts *o, struct xport_ctx **out);
void xport_ctx_destroy(struct xport_ctx *ctx);

/* Called with the MQTT bytes a connection received (borrowed). */
typedef void (*xport_data_fn)(void *arg, const uint8_t *p, size_t n);

/* One connection's transport state. `wire` holds bytes for the socket;
 * the engine takes them (swapping buffers) when no send is in flight. */
struct xconn {
    struct xbuf wire;
    void *ssl;     /* WOLFSSL *, NULL for plain connections */
    void *session; /* WOLFSSL_SESSION * kept for --tls-resume */
    const uint8_t *in;
    size_t in_len;
    uint8_t state;
    bool resumed;
    /* WebSocket receive: the HTTP response, then frame headers, in parts. */
    uint8_t hdr[10];
    uint8_t hdr_len;
    uint8_t opcode;
    bool in_payload;
    uint64_t payload_left;
    uint8_t ctl[125]; /* a control frame's payload (a ping's, echoed in the pong) */
    uint8_t ctl_len;
    char *http;
    uint32_t http_len;
    uint32_t mask_seed;
};

/* After the TCP connect: starts the TLS handshake and/or queues the
 * WebSocket Upgrade request into x->wire. 0 or -errno. */
int xport_start(struct xport_ctx *ctx, struct xconn *x, uint32_t seed);

/* True when MQTT bytes may be sealed (handshake and Upgrade done). */
bool xport_ready(const struct xconn *x);

/* Bytes from the socket: decrypts and unframes them, hands the MQTT bytes
 * to fn. 0, or -EPROTO (bad TLS, HTTP or frame), -ECONNRESET (the peer
 * closed), -ENOMEM. */
int xport_input(struct xport_ctx *ctx, struct xconn *x, const uint8_t *p, size_t n,
                xport_data_fn fn, void *arg);

/* Appends MQTT bytes to x->wire, framed and encrypted. Only when ready.
 * 0 or -errno. */
int xport_seal(struct xport_ctx *ctx, struct xconn *x, const uint8_t *p, size_t n);

/* Ends the connection's transport state (keeps the TLS session for the
 * next handshake when --tls-resume); x can be started again. */
void xport_reset(struct xport_ctx *ctx, struct xconn *x);

/* xport_reset and the kept session too. */
void xport_fini(struct xport_ctx *ctx, struct xconn *x);

/* Before a thread that used TLS exits: frees what wolfSSL keeps per thread
 * (this Debian build caches fixed-point ECC tables per thread, FP_ECC,
 * which wolfSSL_Cleanup frees for the calling thread only). */
void xport_thread_fini(const struct xport_ctx *ctx);

/* "tcp", "tls", "ws" or "wss". */
const char *xport_name(const struct xport_ctx *ctx);

#endif
