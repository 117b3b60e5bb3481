/*
 * tls: the `tls` transport (see tls.h). A stream's state (struct
 * tls_stream) sits after its owner's struct; it holds the WOLFSSL, made
 * on the first bytes received, and the wire bytes wolfSSL wrote that are
 * not sent yet (NULL when none). Input runs the handshake, then decrypts
 * record by record into this thread's scratch and hands each record up;
 * seal encrypts the owner's plain output and sends it after the
 * transport's own bytes.
 *
 * Runs on the thread of the stream's loop. The I/O callbacks find this
 * input through a per-thread view (only one stream's input is being read
 * at a time); their context pointer is the stream's state, re-bound when
 * the state moves to another loop. Listener contexts are built and
 * destroyed on the main thread, while no shard runs.
 */
#include "net/tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "core/log.h"
#include "net/tls_peer.h"

/* One record's plaintext at most (TLS caps a record at 16 KiB). */
#define TLS_SCRATCH  (16u << 10)
#define TLS_WIRE_MIN 1024u

/* The listener's shared context. */
struct tls_listener {
    WOLFSSL_CTX *ctx;
    struct tls_sni *sni; /* certificates by server name, NULL: none (tls_sni.c) */
    bool verify;         /* client certificates are asked for */
    uint32_t handshake_ms;
    char name[CONFIG_NAME_MAX];
};

/* A stream's state. Moved by copy to another loop (export/import): the
 * pointers travel, the copy left behind is zeroed and marked moved. */
struct tls_stream {
    WOLFSSL *ssl;           /* NULL until the first bytes arrive */
    struct iobuf *wire;     /* output wolfSSL wrote, not yet handed to seal */
    struct iobuf *held;     /* input that came with a moved stream, not yet read */
    struct xprt_info *info; /* the client as the handshake showed it (tls_peer.c) */
    bool open;              /* the handshake is done */
    bool failed;            /* a fatal error: only the alert in `wire` may still go */
    bool moved;             /* exported: another loop may be using the pointers */
};

/* The input being read on this thread: the callbacks' source. */
static _Thread_local struct {
    const struct tls_stream *ts;
    const uint8_t *in;
    size_t len;
} view;

static _Thread_local uint8_t scratch[TLS_SCRATCH];

static struct tls_stream *state_of(const struct stream_loop *l, struct stream *st)
{
    return stream_state(l, st);
}

/* ---- wolfSSL's I/O, in memory ------------------------------------------ */

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    if (view.ts != ctx || view.len == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = (size_t)sz < view.len ? (size_t)sz : view.len;
    memcpy(buf, view.in, n);
    view.in += n;
    view.len -= n;
    return (int)n;
}

/* Append to the stream's wire output, growing it by doubling. */
static int wire_append(struct tls_stream *ts, const void *data, size_t n)
{
    struct iobuf *b = ts->wire;
    size_t need = (b ? b->len : 0) + n;
    if (!b || need > b->cap) {
        size_t cap = b ? (size_t)b->cap * 2 : TLS_WIRE_MIN;
        while (cap < need)
            cap *= 2;
        if (cap > UINT32_MAX)
            return -ENOMEM;
        struct iobuf *nb = realloc(b, sizeof(*nb) + cap);
        if (!nb)
            return -ENOMEM;
        if (!b)
            nb->len = nb->off = 0;
        nb->cap = (uint32_t)cap;
        ts->wire = b = nb;
    }
    memcpy(b->data + b->len, data, n);
    b->len += (uint32_t)n;
    return 0;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    return wire_append(ctx, buf, (size_t)sz) < 0 ? WOLFSSL_CBIO_ERR_GENERAL : sz;
}

/* ---- streams ------------------------------------------------------------ */

static void log_failure(const struct stream_loop *l, struct stream *st, const char *what, int err)
{
    const struct tls_listener *tl = stream_xprt_ctx(l, st);
    char peer[NET_PEER_STRLEN], why[WOLFSSL_MAX_ERROR_SZ];
    if (net_peer_format(&st->peer, peer, sizeof(peer)) < 0)
        snprintf(peer, sizeof(peer), "?");
    wolfSSL_ERR_error_string_n((unsigned long)err, why, sizeof(why));
    log_ratelimited(LOG_LEVEL_INFO, "listener %s: TLS %s from %s failed: %s (%d), closing",
                    tl->name, what, peer, why, err);
}

static int tls_open(struct stream_loop *l, struct stream *st)
{
    memset(state_of(l, st), 0, sizeof(struct tls_stream));
    return 0;
}

/* The WOLFSSL is made on the first bytes, so a socket that never speaks
 * costs none. */
static int ssl_create(const struct stream_loop *l, struct stream *st, struct tls_stream *ts)
{
    const struct tls_listener *tl = stream_xprt_ctx(l, st);
    ts->ssl = wolfSSL_new(tl->ctx);
    if (!ts->ssl)
        return -ENOMEM;
    wolfSSL_SetIOReadCtx(ts->ssl, ts);
    wolfSSL_SetIOWriteCtx(ts->ssl, ts);
    /* ALPN: "mqtt" when the client offers it, a fatal no_application_protocol
     * when it offers only others (RFC 7301 3.2), nothing when it offers none.
     * wolfSSL matches only against a per-session list. */
    char mqtt[] = "mqtt";
    if (wolfSSL_UseALPN(ts->ssl, mqtt, sizeof(mqtt) - 1, WOLFSSL_ALPN_FAILED_ON_MISMATCH) !=
        WOLFSSL_SUCCESS) {
        wolfSSL_free(ts->ssl);
        ts->ssl = NULL;
        return -ENOMEM;
    }
    return 0;
}

static int handshake(struct stream_loop *l, struct stream *st, struct tls_stream *ts)
{
    int r = wolfSSL_accept(ts->ssl);
    if (r == WOLFSSL_SUCCESS) {
        /* Before anything of the handshake is released. */
        const struct tls_listener *tl = stream_xprt_ctx(l, st);
        if (!(ts->info = tls_capture_peer(ts->ssl, tl->verify)))
            return -ENOMEM;
        ts->open = true;
        /* What only the handshake needed (keys' arrays, the peer's
         * chain, hashes): an idle connection keeps the session only. */
        wolfSSL_FreeHandshakeResources(ts->ssl);
        return 0;
    }
    int err = wolfSSL_get_error(ts->ssl, r);
    if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE)
        return 0;
    log_failure(l, st, "handshake", err);
    ts->failed = true;
    return -EPROTO;
}

/* Records decrypted into this thread's scratch, each handed up. Stops
 * when the input is used up, or the owner closed or moved the stream
 * (then the rest travels with it: export). */
static int decrypt(struct stream_loop *l, struct stream *st, struct tls_stream *ts)
{
    for (;;) {
        int n = wolfSSL_read(ts->ssl, scratch, (int)sizeof(scratch));
        if (n > 0) {
            stream_deliver(l, st, scratch, (size_t)n);
            if (ts->moved || st->shut)
                return 0;
            continue;
        }
        int err = wolfSSL_get_error(ts->ssl, n);
        if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE)
            return 0;
        if (err == WOLFSSL_ERROR_ZERO_RETURN)
            return -ECONNRESET; /* close_notify: the client ends the connection */
        log_failure(l, st, "read", err);
        ts->failed = true;
        return -EPROTO;
    }
}

/* Run `len` bytes from the socket through wolfSSL. */
static int feed(struct stream_loop *l, struct stream *st, struct tls_stream *ts,
                const uint8_t *data, size_t len)
{
    view.ts = ts;
    view.in = data;
    view.len = len;
    int rc = ts->open ? 0 : handshake(l, st, ts);
    if (rc == 0 && ts->open)
        rc = decrypt(l, st, ts);
    if (!ts->moved && ts->wire && ts->wire->len)
        stream_xprt_output(l, st); /* handshake messages, alerts, tickets */
    view.ts = NULL;
    view.len = 0;
    return rc;
}

static int tls_input(struct stream_loop *l, struct stream *st, const uint8_t *data, size_t len)
{
    struct tls_stream *ts = state_of(l, st);
    if (ts->moved || ts->failed)
        return ts->failed ? -EPROTO : 0;
    if (!ts->ssl && ssl_create(l, st, ts) < 0)
        return -ENOMEM;
    if (ts->held) {
        /* Bytes that arrived with the stream go first. */
        struct iobuf *h = ts->held;
        ts->held = NULL;
        int rc = feed(l, st, ts, h->data, h->len);
        free(h);
        if (rc < 0 || ts->moved || st->shut)
            return rc;
    }
    if (!data)
        /* stream_resume: records wolfSSL itself may hold. */
        return ts->open && !ts->moved && !st->shut ? feed(l, st, ts, NULL, 0) : 0;
    return feed(l, st, ts, data, len);
}

static int tls_seal(struct stream_loop *l, struct stream *st)
{
    struct tls_stream *ts = state_of(l, st);
    struct iobuf *plain = st->out;
    if (ts->moved)
        return plain && plain->len ? -EPIPE : 0; /* never in clear */
    if (plain && plain->len) {
        if (!ts->open || ts->failed)
            return -EPROTO;
        int n = wolfSSL_write(ts->ssl, plain->data, (int)plain->len);
        if (n != (int)plain->len) {
            log_failure(l, st, "write", wolfSSL_get_error(ts->ssl, n));
            ts->failed = true;
            return -EPROTO;
        }
    }
    st->out = ts->wire; /* what wolfSSL wrote, its own bytes first */
    ts->wire = NULL;
    if (plain) {
        l->out_freed += plain->cap;
        free(plain);
    }
    return 0;
}

static void tls_close(struct stream_loop *l, struct stream *st)
{
    struct tls_stream *ts = state_of(l, st);
    if (ts->ssl)
        wolfSSL_free(ts->ssl);
    free(ts->wire);
    free(ts->held);
    free(ts->info);
    memset(ts, 0, sizeof(*ts));
}

static const struct xprt_info *tls_info(const struct stream_loop *l, struct stream *st)
{
    return state_of(l, st)->info;
}

/* The state, then the input not read yet when the stream moved (from
 * within its own input: the owner moves it on reading CONNECT). */
static size_t tls_export_size(const struct stream_loop *l, const struct stream *st)
{
    const struct tls_stream *ts = stream_state(l, (struct stream *)st);
    return sizeof(*ts) + (view.ts == ts ? view.len : 0);
}

static void tls_export(const struct stream_loop *l, struct stream *st, uint8_t *to)
{
    struct tls_stream *ts = state_of(l, st);
    memcpy(to, ts, sizeof(*ts));
    if (view.ts == ts) {
        memcpy(to + sizeof(*ts), view.in, view.len);
        view.len = 0;
    }
    memset(ts, 0, sizeof(*ts));
    ts->moved = true;
}

static int tls_import(struct stream_loop *l, struct stream *st, const uint8_t *from, size_t len)
{
    struct tls_stream *ts = state_of(l, st);
    if (len < sizeof(*ts))
        return -EINVAL;
    tls_close(l, st);
    memcpy(ts, from, sizeof(*ts));
    ts->moved = false;
    if (!ts->ssl)
        return -EINVAL;
    wolfSSL_SetIOReadCtx(ts->ssl, ts);
    wolfSSL_SetIOWriteCtx(ts->ssl, ts);
    size_t rest = len - sizeof(*ts);
    if (rest) {
        ts->held = iobuf_create(rest);
        if (!ts->held)
            return -ENOMEM;
        memcpy(ts->held->data, from + sizeof(*ts), rest);
        ts->held->len = (uint32_t)rest;
    }
    if (ts->wire && ts->wire->len)
        stream_xprt_output(l, st);
    return 0;
}

static uint32_t tls_opening(const struct stream_loop *l, struct stream *st, bool *open)
{
    const struct tls_listener *tl = stream_xprt_ctx(l, st);
    *open = state_of(l, st)->open;
    return tl->handshake_ms;
}

static const struct transport_ops tls_ops = {
    .name = "tls",
    .state_size = sizeof(struct tls_stream),
    .open = tls_open,
    .input = tls_input,
    .seal = tls_seal,
    .export_size = tls_export_size,
    .export_state = tls_export,
    .import_state = tls_import,
    .opening = tls_opening,
    .info = tls_info,
    .close = tls_close,
};

/* ---- the listener ------------------------------------------------------- */

/* A file the listener names: readable, or a clear reason. */
static int file_check(const struct config_listener *cl, const char *key, const char *path)
{
    if (access(path, R_OK) == 0)
        return 0;
    int err = errno;
    log_err("[listener.%s] %s = %s: cannot read: %s", cl->name, key, path, strerror(err));
    return -err;
}

static int bad_pem(const struct config_listener *cl, const char *key, const char *path,
                   const char *what)
{
    log_err("[listener.%s] %s = %s: %s", cl->name, key, path, what);
    return -EINVAL;
}

/* Certificate chain and key (which must match). */
static int load_identity(WOLFSSL_CTX *ctx, const struct config_listener *cl)
{
    int rc = file_check(cl, "tls_cert", cl->tls_cert);
    if (rc == 0)
        rc = file_check(cl, "tls_key", cl->tls_key);
    if (rc < 0)
        return rc;
    if (wolfSSL_CTX_use_certificate_chain_file(ctx, cl->tls_cert) != WOLFSSL_SUCCESS)
        return bad_pem(cl, "tls_cert", cl->tls_cert, "not a PEM certificate chain");
    if (wolfSSL_CTX_use_PrivateKey_file(ctx, cl->tls_key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
        return bad_pem(cl, "tls_key", cl->tls_key, "not a PEM private key");
    if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS)
        return bad_pem(cl, "tls_key", cl->tls_key, "does not match tls_cert");
    return 0;
}

/* Client certificates: the CAs, the CRL, and whether one is required. */
static int load_verify(WOLFSSL_CTX *ctx, const struct config_listener *cl)
{
    int mode = WOLFSSL_VERIFY_NONE;
    if (cl->tls_verify_client == CONFIG_TLS_VERIFY_OPTIONAL)
        mode = WOLFSSL_VERIFY_PEER;
    else if (cl->tls_verify_client == CONFIG_TLS_VERIFY_REQUIRED)
        mode = WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    if (cl->tls_ca[0]) {
        int rc = file_check(cl, "tls_ca", cl->tls_ca);
        if (rc < 0)
            return rc;
        if (wolfSSL_CTX_load_verify_locations(ctx, cl->tls_ca, NULL) != WOLFSSL_SUCCESS)
            return bad_pem(cl, "tls_ca", cl->tls_ca, "not PEM CA certificates");
    }
    if (cl->tls_crl[0]) {
        int rc = file_check(cl, "tls_crl", cl->tls_crl);
        if (rc < 0)
            return rc;
        if (wolfSSL_CTX_EnableCRL(ctx, WOLFSSL_CRL_CHECKALL) != WOLFSSL_SUCCESS ||
            wolfSSL_CTX_LoadCRLFile(ctx, cl->tls_crl, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
            return bad_pem(cl, "tls_crl", cl->tls_crl, "not a PEM CRL (or no tls_ca to check it)");
    }
    wolfSSL_CTX_set_verify(ctx, mode, NULL);
    return 0;
}

/* wolfSSL takes one list for both versions: a list given for one version
 * keeps the other's defaults. */
#define TLS13_DEFAULT                                                                              \
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256"
#define TLS12_DEFAULT                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

static int load_ciphers(WOLFSSL_CTX *ctx, const struct config_listener *cl)
{
    if (!cl->tls_ciphers[0] && !cl->tls_ciphersuites[0])
        return 0;
    char list[sizeof(cl->tls_ciphers) + sizeof(cl->tls_ciphersuites) + 2];
    snprintf(list, sizeof(list), "%s:%s",
             cl->tls_ciphersuites[0] ? cl->tls_ciphersuites : TLS13_DEFAULT,
             cl->tls_ciphers[0] ? cl->tls_ciphers : TLS12_DEFAULT);
    if (wolfSSL_CTX_set_cipher_list(ctx, list) != WOLFSSL_SUCCESS) {
        log_err("[listener.%s] tls_ciphers / tls_ciphersuites: wolfSSL knows none of '%s'",
                cl->name, list);
        return -EINVAL;
    }
    return 0;
}

static int ctx_create(const struct config_listener *cl, WOLFSSL_CTX **out)
{
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    if (!ctx) {
        log_err("[listener.%s] out of memory creating its TLS context", cl->name);
        return -ENOMEM;
    }
    int rc = 0;
    if (wolfSSL_CTX_SetMinVersion(ctx,
                                  cl->tls_min_version == 13 ? WOLFSSL_TLSV1_3 : WOLFSSL_TLSV1_2) !=
        WOLFSSL_SUCCESS) {
        log_err("[listener.%s] tls_min_version: wolfSSL refused it", cl->name);
        rc = -EINVAL;
    }
    if (rc == 0)
        rc = load_identity(ctx, cl);
    if (rc == 0)
        rc = load_verify(ctx, cl);
    if (rc == 0)
        rc = load_ciphers(ctx, cl);
    if (rc < 0) {
        wolfSSL_CTX_free(ctx);
        return rc;
    }
    wolfSSL_CTX_SetIORecv(ctx, io_recv);
    wolfSSL_CTX_SetIOSend(ctx, io_send);
    *out = ctx;
    return 0;
}

static int tls_listener_create(const struct config_listener *cl, void **out)
{
    if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
        log_err("[listener.%s] cannot initialise wolfSSL", cl->name);
        return -EIO;
    }
    struct tls_listener *tl = calloc(1, sizeof(*tl));
    int rc = tl ? ctx_create(cl, &tl->ctx) : -ENOMEM;
    if (rc < 0) {
        if (!tl)
            log_err("[listener.%s] out of memory", cl->name);
        free(tl);
        wolfSSL_Cleanup();
        return rc;
    }
    tl->handshake_ms = cl->tls_handshake_timeout * 1000u;
    tl->verify = cl->tls_verify_client != CONFIG_TLS_VERIFY_NONE;
    snprintf(tl->name, sizeof(tl->name), "%s", cl->name);
    *out = tl;
    return 0;
}

static void tls_listener_destroy(void *ctx)
{
    struct tls_listener *tl = ctx;
    tls_sni_destroy(tl->sni);
    wolfSSL_CTX_free(tl->ctx);
    free(tl);
    wolfSSL_Cleanup();
}

/* This Debian wolfSSL caches fixed-point ECC tables per thread (FP_ECC):
 * a shard that did handshakes frees its own before it ends. */
static void tls_thread_fini(void)
{
    wc_ecc_fp_free();
}

static int tls_listener_sni(void *ctx, const struct config *cfg, uint32_t li)
{
    struct tls_listener *tl = ctx;
    return tls_sni_create(tl->ctx, cfg, li, ctx_create, &tl->sni);
}

const struct transport_kind transport_kind_tls = {
    .ops = &tls_ops,
    .listener_create = tls_listener_create,
    .listener_sni = tls_listener_sni,
    .listener_destroy = tls_listener_destroy,
    .thread_fini = tls_thread_fini,
};
