/*
 * tls: the `tls` transport (see tls.h). A stream's state (struct
 * tls_stream) sits after its owner's struct; it holds the WOLFSSL, made
 * on the first bytes received, and the wire bytes written for it that are
 * not sent yet (NULL when none). Input runs the handshake with wolfSSL;
 * once it is done, for the AEAD ciphers (all of the default suites), the
 * traffic keys are taken and the WOLFSSL freed (some 56 KB in Debian's
 * wolfSSL, for the connection's whole life): from then on tls_record
 * decrypts record by record into this thread's scratch, each handed up,
 * and seal encrypts the owner's plain output after the transport's own
 * bytes. With another cipher wolfSSL keeps the connection.
 *
 * Limit: a TLS 1.3 KeyUpdate from the client cannot be followed (the new
 * keys derive from the traffic secret, which this wolfSSL does not export:
 * no wolfSSL_set_tls13_secret_cb), so it is answered with a fatal
 * internal_error alert and the connection closed, logged. OpenSSL clients
 * send one only when asked to or after some 2^32 records.
 *
 * Runs on the thread of the stream's loop. The I/O callbacks find this
 * input through a per-thread view (only one stream's input is being read
 * at a time); their context pointer is the stream's state, re-bound when
 * the state moves to another loop. Listener contexts are built and
 * destroyed on the main thread, while no shard runs.
 */
#include "net/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "core/log.h"
#include "net/tls_peer.h"
#include "net/tls_record.h"

/* One record's plaintext at most (TLS 1.3's padding included). */
#define TLS_SCRATCH  TLS_RECORD_BODY_MAX
#define TLS_WIRE_MIN 1024u

/* Alerts (RFC 8446 6) and the one handshake message we look at. */
enum {
    ALERT_WARNING = 1,
    ALERT_FATAL = 2,
    ALERT_CLOSE_NOTIFY = 0,
    ALERT_UNEXPECTED_MESSAGE = 10,
    ALERT_BAD_RECORD_MAC = 20,
    ALERT_RECORD_OVERFLOW = 22,
    ALERT_DECODE_ERROR = 50,
    ALERT_INTERNAL_ERROR = 80,
    ALERT_NO_RENEGOTIATION = 100,
    HANDSHAKE_KEY_UPDATE = 24,
};

/* One generation of a listener's certificates: the default context and
 * those by server name, built together from the files and never changed
 * once published. A handshake holds the generation it started with until
 * its WOLFSSL is freed: wolfSSL counts its own references to each
 * WOLFSSL_CTX, but the SNI table its callback reads is ours. Released on
 * any thread; the last reference frees it. */
struct tls_gen {
    atomic_uint refs;
    WOLFSSL_CTX *ctx;
    struct tls_sni *sni; /* certificates by server name, NULL: none (tls_sni.c) */
};

/* The listener's shared context. Only `cur` changes after start-up: a
 * reload (main thread) builds a complete new generation into `next`
 * (prepare, main thread only) and publishes it (commit) while shards
 * take references to `cur`. The lock covers reading `cur` together with
 * taking a reference, so that a generation cannot be freed between the
 * two; it is taken once per new TLS connection, beside a handshake's
 * cost, and never held across a call into wolfSSL. */
struct tls_listener {
    pthread_mutex_t lock;
    struct tls_gen *cur;
    struct tls_gen *next; /* prepared by a reload, not served yet; NULL: none */
    bool verify;          /* client certificates are asked for */
    uint32_t handshake_ms;
    char name[CONFIG_NAME_MAX];
};

/* A stream's state. Moved by copy to another loop (export/import): the
 * pointers travel, the copy left behind is zeroed and marked moved. At
 * most one of ssl and rec is set: ssl from the first bytes until the
 * handshake is done (and after it with a cipher tls_record does not do),
 * rec after it. */
struct tls_stream {
    WOLFSSL *ssl;           /* wolfSSL runs the connection */
    struct tls_gen *gen;    /* the certificates ssl was made from (set with ssl) */
    struct tls_record *rec; /* the handshake is done: we run the records */
    struct iobuf *wire;     /* output written for it, not yet handed to seal */
    struct iobuf *held;     /* input that came with a moved stream, not yet read */
    struct xprt_info *info; /* the client as the handshake showed it (tls_peer.c) */
    bool open;              /* the handshake is done */
    bool failed;            /* a fatal error: only the alert in `wire` may still go */
    bool moved;             /* exported: another loop may be using the pointers */
};

_Static_assert(sizeof(struct tls_stream) <= TLS_STATE_SIZE, "tls.h's TLS_STATE_SIZE is too small");

/* The input being read on this thread: the callbacks' source, and what
 * tls_record reads. */
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

/* ---- generations of certificates --------------------------------------- */

static struct tls_gen *gen_acquire(struct tls_listener *tl)
{
    pthread_mutex_lock(&tl->lock);
    struct tls_gen *g = tl->cur;
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&tl->lock);
    return g;
}

static void gen_release(struct tls_gen *g)
{
    if (!g || atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
        return;
    tls_sni_destroy(g->sni);
    wolfSSL_CTX_free(g->ctx);
    free(g);
}

/* The stream's WOLFSSL goes, and with it its hold on the certificates. */
static void ssl_free(struct tls_stream *ts)
{
    wolfSSL_free(ts->ssl);
    ts->ssl = NULL;
    gen_release(ts->gen);
    ts->gen = NULL;
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

/* Room for n more bytes at the end of the stream's wire output, growing
 * it by doubling. 0 or -ENOMEM. */
static int wire_reserve(struct tls_stream *ts, size_t n)
{
    struct iobuf *b = ts->wire;
    size_t need = (b ? b->len : 0) + n;
    if (b && need <= b->cap)
        return 0;
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
    ts->wire = nb;
    return 0;
}

static int wire_append(struct tls_stream *ts, const void *data, size_t n)
{
    int rc = wire_reserve(ts, n);
    if (rc < 0)
        return rc;
    memcpy(ts->wire->data + ts->wire->len, data, n);
    ts->wire->len += (uint32_t)n;
    return 0;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    return wire_append(ctx, buf, (size_t)sz) < 0 ? WOLFSSL_CBIO_ERR_GENERAL : sz;
}

/* ---- streams ------------------------------------------------------------ */

static void log_closing(const struct stream_loop *l, struct stream *st, const char *why)
{
    const struct tls_listener *tl = stream_xprt_ctx(l, st);
    char peer[NET_PEER_STRLEN];
    if (net_peer_format(&st->peer, peer, sizeof(peer)) < 0)
        snprintf(peer, sizeof(peer), "?");
    log_ratelimited(LOG_LEVEL_INFO, "listener %s: TLS from %s: %s, closing", tl->name, peer, why);
}

/* What an operator should read into the wolfSSL errors a client causes
 * most often (wolfSSL's own strings say which check failed, not why). */
static const char *failure_meaning(int err)
{
    switch (err) {
    case ASN_NO_SIGNER_E:
        return ": the client certificate is not issued by a CA of tls_ca";
    case ASN_AFTER_DATE_E:
        return ": the client certificate has expired";
    case ASN_BEFORE_DATE_E:
        return ": the client certificate is not valid yet";
    case CRL_CERT_REVOKED:
        return ": the client certificate is revoked (tls_crl)";
    case CRL_MISSING:
        return ": tls_crl has no CRL of the client certificate's CA";
    case NO_PEER_CERT:
        return ": no client certificate (tls_verify_client = required)";
    case VERSION_ERROR:
        return ": a TLS version the listener does not accept (TLS 1.0 and 1.1 never, "
               "TLS 1.2 unless tls_min_version = 1.3)";
    default:
        return "";
    }
}

static void log_failure(const struct stream_loop *l, struct stream *st, const char *what, int err)
{
    const struct tls_listener *tl = stream_xprt_ctx(l, st);
    char peer[NET_PEER_STRLEN], why[WOLFSSL_MAX_ERROR_SZ];
    if (net_peer_format(&st->peer, peer, sizeof(peer)) < 0)
        snprintf(peer, sizeof(peer), "?");
    wolfSSL_ERR_error_string_n((unsigned long)err, why, sizeof(why));
    log_ratelimited(LOG_LEVEL_INFO, "listener %s: TLS %s from %s failed: %s (%d)%s, closing",
                    tl->name, what, peer, why, err, failure_meaning(err));
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
    ts->gen = gen_acquire(stream_xprt_ctx(l, st));
    ts->ssl = wolfSSL_new(ts->gen->ctx);
    if (!ts->ssl) {
        ssl_free(ts);
        return -ENOMEM;
    }
    wolfSSL_SetIOReadCtx(ts->ssl, ts);
    wolfSSL_SetIOWriteCtx(ts->ssl, ts);
    /* ALPN: "mqtt" when the client offers it, a fatal no_application_protocol
     * when it offers only others (RFC 7301 3.2), nothing when it offers none.
     * wolfSSL matches only against a per-session list. */
    char mqtt[] = "mqtt";
    if (wolfSSL_UseALPN(ts->ssl, mqtt, sizeof(mqtt) - 1, WOLFSSL_ALPN_FAILED_ON_MISMATCH) !=
        WOLFSSL_SUCCESS) {
        ssl_free(ts);
        return -ENOMEM;
    }
    return 0;
}

/* Whether tls_record can run this connection's records: an AEAD suite
 * with a 16-byte tag it knows (not the pre-RFC 7905 ChaCha20 draft),
 * and the cipher for it in *cipher. */
static bool record_cipher(WOLFSSL *ssl, bool tls13, enum tls_record_cipher *cipher)
{
    int bulk = wolfSSL_GetBulkCipher(ssl);
    if (wolfSSL_GetCipherType(ssl) != WOLFSSL_AEAD_TYPE || wolfSSL_GetAeadMacSize(ssl) != 16 ||
        wolfSSL_GetKeySize(ssl) > 32 || strstr(wolfSSL_get_cipher_name(ssl), "OLD"))
        return false;
    *cipher = bulk == wolfssl_chacha ? TLS_RECORD_CHACHA20_POLY1305 : TLS_RECORD_AES_GCM;
    if (bulk != wolfssl_aes_gcm && bulk != wolfssl_chacha)
        return false;
    /* The IV wolfSSL derived: TLS 1.2 AES-GCM's is the 4-byte salt. */
    int iv = !tls13 && bulk == wolfssl_aes_gcm ? 4 : 12;
    return wolfSSL_GetIVSize(ssl) == iv;
}

/* The record layer becomes ours: the traffic keys and the next sequence
 * numbers (those of the records wolfSSL already wrote, a TLS 1.3
 * NewSessionTicket, counted) are copied out, and the WOLFSSL freed.
 * -ENOTSUP (a cipher tls_record does not do: wolfSSL keeps running it) or
 * -ENOMEM. */
static int record_take_over(const struct stream_loop *l, struct stream *st, struct tls_stream *ts)
{
    WOLFSSL *ssl = ts->ssl;
    bool tls13 = wolfSSL_version(ssl) == TLS1_3_VERSION;
    enum tls_record_cipher cipher;
    struct tls_record_keys rd = {.seq = 0}, wr = {.seq = 0};
    word64 rseq, wseq;
    /* (These two say success differently: 1 and 0; errors are < 0.) */
    if (!record_cipher(ssl, tls13, &cipher) || wolfSSL_GetPeerSequenceNumber(ssl, &rseq) < 0 ||
        wolfSSL_GetSequenceNumber(ssl, &wseq) < 0)
        return -ENOTSUP;
    size_t key_len = (size_t)wolfSSL_GetKeySize(ssl), iv_len = (size_t)wolfSSL_GetIVSize(ssl);
    memcpy(rd.key, wolfSSL_GetClientWriteKey(ssl), key_len);
    memcpy(rd.iv, wolfSSL_GetClientWriteIV(ssl), iv_len);
    memcpy(wr.key, wolfSSL_GetServerWriteKey(ssl), key_len);
    memcpy(wr.iv, wolfSSL_GetServerWriteIV(ssl), iv_len);
    rd.seq = rseq;
    wr.seq = wseq;
    struct tls_record *r = malloc(sizeof(*r));
    int rc = r ? tls_record_init(r, tls13, cipher, key_len, &rd, &wr) : -ENOMEM;
    explicit_bzero(&rd, sizeof(rd));
    explicit_bzero(&wr, sizeof(wr));
    if (rc < 0) {
        free(r);
        return rc;
    }
    log_debug("listener %s: TLS %s %s%s: records run here, WOLFSSL freed",
              ((const struct tls_listener *)stream_xprt_ctx(l, st))->name, wolfSSL_get_version(ssl),
              wolfSSL_get_cipher_name(ssl), wolfSSL_session_reused(ssl) ? " (resumed)" : "");
    ssl_free(ts);
    ts->rec = r;
    return 0;
}

/* The handshake is done, and what wolfSSL sends with its end (a TLS 1.3
 * NewSessionTicket) is in ts->wire. Whatever the connection needs to know
 * from the WOLFSSL (the peer's certificate, the SNI name) is read here,
 * before record_take_over frees it. 0 or -errno. */
static int handshake_completed(struct stream_loop *l, struct stream *st, struct tls_stream *ts)
{
    /* What the client showed, before anything of the handshake goes. */
    const struct tls_listener *tl = stream_xprt_ctx(l, st);
    if (!(ts->info = tls_capture_peer(ts->ssl, tl->verify)))
        return -ENOMEM;
    ts->open = true;
    if (record_take_over(l, st, ts) == 0)
        return 0;
    /* wolfSSL keeps the records (another cipher, or no memory for ours):
     * what only the handshake needed (keys' arrays, the peer's chain,
     * hashes) goes, an idle connection keeps the session only. */
    wolfSSL_FreeHandshakeResources(ts->ssl);
    return 0;
}

static int handshake(struct stream_loop *l, struct stream *st, struct tls_stream *ts)
{
    int r = wolfSSL_accept(ts->ssl);
    if (r == WOLFSSL_SUCCESS)
        return handshake_completed(l, st, ts);
    int err = wolfSSL_get_error(ts->ssl, r);
    if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE)
        return 0;
    log_failure(l, st, "handshake", err);
    ts->failed = true;
    return -EPROTO;
}

/* wolfSSL's records decrypted into this thread's scratch, each handed up.
 * Stops when the input is used up, or the owner closed or moved the
 * stream (then the rest travels with it: export). */
static int ssl_read(struct stream_loop *l, struct stream *st, struct tls_stream *ts)
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

/* ---- our records, after the handshake ---------------------------------- */

/* One alert of ours, encrypted, at the end of the wire output. */
static int alert_send(struct tls_stream *ts, uint8_t level, uint8_t desc)
{
    uint8_t body[2] = {level, desc}, rec[sizeof(body) + TLS_RECORD_OVERHEAD];
    long n = tls_record_write(ts->rec, TLS_RECORD_ALERT, body, sizeof(body), rec);
    return n < 0 ? (int)n : wire_append(ts, rec, (size_t)n);
}

/* A fatal error, logged: the alert that says why goes, then nothing. */
static int record_fail(struct stream_loop *l, struct stream *st, struct tls_stream *ts,
                       uint8_t desc, const char *why)
{
    log_closing(l, st, why);
    (void)alert_send(ts, ALERT_FATAL, desc); /* without it the close says enough */
    ts->failed = true;
    return -EPROTO;
}

static int read_failed(struct stream_loop *l, struct stream *st, struct tls_stream *ts, int rc)
{
    switch (rc) {
    case -EBADMSG:
        return record_fail(l, st, ts, ALERT_BAD_RECORD_MAC, "a record does not authenticate");
    case -EMSGSIZE:
        return record_fail(l, st, ts, ALERT_RECORD_OVERFLOW, "a record over 16 KiB");
    case -ENOMEM:
        return record_fail(l, st, ts, ALERT_INTERNAL_ERROR, "out of memory");
    case -EOVERFLOW:
        return record_fail(l, st, ts, ALERT_INTERNAL_ERROR, "sequence numbers used up");
    default:
        return record_fail(l, st, ts, ALERT_UNEXPECTED_MESSAGE, "a record of an unexpected type");
    }
}

/* An alert from the client: close_notify is answered with ours (RFC 8446
 * 6.1) and ends the connection; any other ends it too. */
static int alert_received(struct stream_loop *l, struct stream *st, struct tls_stream *ts,
                          const uint8_t *a, size_t n)
{
    if (n != 2)
        return record_fail(l, st, ts, ALERT_DECODE_ERROR, "a malformed alert");
    if (a[1] == ALERT_CLOSE_NOTIFY) {
        (void)alert_send(ts, ALERT_WARNING, ALERT_CLOSE_NOTIFY);
        return -ECONNRESET;
    }
    char why[48];
    snprintf(why, sizeof(why), "alert %u (level %u) from the client", a[1], a[0]);
    log_closing(l, st, why);
    ts->failed = true;
    return -EPROTO;
}

/* A handshake message after the handshake: nothing we can follow. */
static int handshake_received(struct stream_loop *l, struct stream *st, struct tls_stream *ts,
                              const uint8_t *m, size_t n)
{
    if (!ts->rec->tls13) /* a ClientHello: renegotiation is not offered */
        return record_fail(l, st, ts, ALERT_NO_RENEGOTIATION, "renegotiation refused");
    if (n > 0 && m[0] == HANDSHAKE_KEY_UPDATE)
        return record_fail(l, st, ts, ALERT_INTERNAL_ERROR,
                           "TLS 1.3 KeyUpdate from the client, which this broker cannot follow "
                           "(wolfSSL does not export the traffic secrets)");
    return record_fail(l, st, ts, ALERT_UNEXPECTED_MESSAGE, "an unexpected handshake message");
}

/* Our records of the input decrypted into this thread's scratch,
 * application data handed up. Stops when the input is used up (a record
 * begun is kept in ts->rec), or the owner closed or moved the stream
 * (then the rest travels with it: export). */
static int records_read(struct stream_loop *l, struct stream *st, struct tls_stream *ts)
{
    for (;;) {
        size_t n;
        uint8_t type;
        int rc = tls_record_read(ts->rec, &view.in, &view.len, scratch, &n, &type);
        if (rc <= 0)
            return rc < 0 ? read_failed(l, st, ts, rc) : 0;
        if (type == TLS_RECORD_ALERT)
            return alert_received(l, st, ts, scratch, n);
        if (type == TLS_RECORD_HANDSHAKE)
            return handshake_received(l, st, ts, scratch, n);
        if (type != TLS_RECORD_APPLICATION_DATA)
            return read_failed(l, st, ts, -EPROTO);
        if (n)
            stream_deliver(l, st, scratch, n);
        if (ts->moved || st->shut)
            return 0;
    }
}

/* The owner's plain bytes as records of at most 16 KiB, after the wire
 * output. 0 or -errno. */
static int records_write(struct tls_stream *ts, const struct iobuf *plain)
{
    int rc = wire_reserve(ts, tls_record_wire_size(ts->rec, plain->len));
    for (size_t off = 0; rc == 0 && off < plain->len;) {
        size_t n = plain->len - off;
        if (n > TLS_RECORD_PLAIN_MAX)
            n = TLS_RECORD_PLAIN_MAX;
        long w = tls_record_write(ts->rec, TLS_RECORD_APPLICATION_DATA, plain->data + off, n,
                                  ts->wire->data + ts->wire->len);
        if (w < 0)
            return (int)w;
        ts->wire->len += (uint32_t)w;
        off += n;
    }
    return rc;
}

/* ---- the transport's hooks ---------------------------------------------- */

/* Run `len` bytes from the socket through the handshake or the records. */
static int feed(struct stream_loop *l, struct stream *st, struct tls_stream *ts,
                const uint8_t *data, size_t len)
{
    view.ts = ts;
    view.in = data;
    view.len = len;
    int rc = ts->open ? 0 : handshake(l, st, ts);
    if (rc == 0 && ts->open)
        rc = ts->rec ? records_read(l, st, ts) : ssl_read(l, st, ts);
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
    if (!ts->ssl && !ts->rec && ssl_create(l, st, ts) < 0)
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
        return ts->ssl && ts->open && !ts->moved && !st->shut ? feed(l, st, ts, NULL, 0) : 0;
    return feed(l, st, ts, data, len);
}

/* The owner's plain bytes through wolfSSL into the wire output. */
static int ssl_write(struct stream_loop *l, struct stream *st, struct tls_stream *ts,
                     const struct iobuf *plain)
{
    int n = wolfSSL_write(ts->ssl, plain->data, (int)plain->len);
    if (n == (int)plain->len)
        return 0;
    log_failure(l, st, "write", wolfSSL_get_error(ts->ssl, n));
    return -EPROTO;
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
        int rc = ts->rec ? records_write(ts, plain) : ssl_write(l, st, ts, plain);
        if (rc < 0) {
            ts->failed = true;
            return -EPROTO;
        }
    }
    st->out = ts->wire; /* the transport's own bytes first, then the owner's */
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
        ssl_free(ts);
    if (ts->rec) {
        tls_record_fini(ts->rec);
        free(ts->rec);
    }
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
    if (!ts->ssl && !ts->rec)
        return -EINVAL;
    if (ts->ssl) {
        wolfSSL_SetIOReadCtx(ts->ssl, ts);
        wolfSSL_SetIOWriteCtx(ts->ssl, ts);
    }
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

/* A file the listener names: readable, or a clear reason in *fail. */
static int file_check(const char *key, const char *path, struct transport_fail *fail)
{
    if (access(path, R_OK) == 0)
        return 0;
    int err = errno;
    char why[sizeof(fail->why)];
    snprintf(why, sizeof(why), "cannot read: %s", strerror(err));
    transport_fail_set(fail, key, path, why);
    return -err;
}

static int bad_pem(const char *key, const char *path, const char *what, struct transport_fail *fail)
{
    transport_fail_set(fail, key, path, what);
    return -EINVAL;
}

/* Why a listener's files did not load, into the log (start-up). */
static void fail_log(const struct config_listener *cl, const struct transport_fail *f)
{
    if (f->file[0])
        log_err("[listener.%s] %s = %s: %s", cl->name, f->key, f->file, f->why);
    else
        log_err("[listener.%s] %s: %s", cl->name, f->key, f->why);
}

/* Certificate chain and key (which must match). */
static int load_identity(WOLFSSL_CTX *ctx, const struct config_listener *cl,
                         struct transport_fail *fail)
{
    int rc = file_check("tls_cert", cl->tls_cert, fail);
    if (rc == 0)
        rc = file_check("tls_key", cl->tls_key, fail);
    if (rc < 0)
        return rc;
    if (wolfSSL_CTX_use_certificate_chain_file(ctx, cl->tls_cert) != WOLFSSL_SUCCESS)
        return bad_pem("tls_cert", cl->tls_cert, "not a PEM certificate chain", fail);
    if (wolfSSL_CTX_use_PrivateKey_file(ctx, cl->tls_key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
        return bad_pem("tls_key", cl->tls_key, "not a PEM private key", fail);
    if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS ||
        !tls_key_matches_cert(cl->tls_cert, cl->tls_key))
        return bad_pem("tls_key", cl->tls_key, "does not match tls_cert", fail);
    return 0;
}

/* Client certificates: the CAs, the CRL, and whether one is required. */
static int load_verify(WOLFSSL_CTX *ctx, const struct config_listener *cl,
                       struct transport_fail *fail)
{
    int mode = WOLFSSL_VERIFY_NONE;
    if (cl->tls_verify_client == CONFIG_TLS_VERIFY_OPTIONAL)
        mode = WOLFSSL_VERIFY_PEER;
    else if (cl->tls_verify_client == CONFIG_TLS_VERIFY_REQUIRED)
        mode = WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    if (cl->tls_ca[0]) {
        int rc = file_check("tls_ca", cl->tls_ca, fail);
        if (rc < 0)
            return rc;
        if (wolfSSL_CTX_load_verify_locations(ctx, cl->tls_ca, NULL) != WOLFSSL_SUCCESS)
            return bad_pem("tls_ca", cl->tls_ca, "not PEM CA certificates", fail);
    }
    if (cl->tls_crl[0]) {
        int rc = file_check("tls_crl", cl->tls_crl, fail);
        if (rc < 0)
            return rc;
        if (wolfSSL_CTX_EnableCRL(ctx, WOLFSSL_CRL_CHECKALL) != WOLFSSL_SUCCESS ||
            wolfSSL_CTX_LoadCRLFile(ctx, cl->tls_crl, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
            return bad_pem("tls_crl", cl->tls_crl, "not a PEM CRL (or no tls_ca to check it)",
                           fail);
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

static int load_ciphers(WOLFSSL_CTX *ctx, const struct config_listener *cl,
                        struct transport_fail *fail)
{
    if (!cl->tls_ciphers[0] && !cl->tls_ciphersuites[0])
        return 0;
    char list[sizeof(cl->tls_ciphers) + sizeof(cl->tls_ciphersuites) + 2];
    snprintf(list, sizeof(list), "%s:%s",
             cl->tls_ciphersuites[0] ? cl->tls_ciphersuites : TLS13_DEFAULT,
             cl->tls_ciphers[0] ? cl->tls_ciphers : TLS12_DEFAULT);
    if (wolfSSL_CTX_set_cipher_list(ctx, list) != WOLFSSL_SUCCESS) {
        char why[sizeof(fail->why)];
        snprintf(why, sizeof(why), "wolfSSL knows none of '%s'", list);
        transport_fail_set(fail, "tls_ciphers / tls_ciphersuites", NULL, why);
        return -EINVAL;
    }
    return 0;
}

/* tls_resumption = false, or client certificates: every handshake is a
 * full one. Tickets (TLS 1.2
 * and 1.3) are not issued, and the session cache, which TLS 1.2 session
 * ids and this wolfSSL's TLS 1.3 tickets (WOLFSSL_TICKET_HAVE_ID) also
 * resume from, is neither filled nor read. */
static int resumption_off(WOLFSSL_CTX *ctx, struct transport_fail *fail)
{
    /* (Success is 1, 0 and 1 here: each says it its own way.) */
    if (wolfSSL_CTX_NoTicketTLSv12(ctx) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_no_ticket_TLSv13(ctx) != 0 ||
        wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF) != WOLFSSL_SUCCESS) {
        transport_fail_set(fail, "tls_resumption", NULL, "wolfSSL refused to turn it off");
        return -EINVAL;
    }
    return 0;
}

static int ctx_create(const struct config_listener *cl, struct transport_fail *fail,
                      WOLFSSL_CTX **out)
{
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    if (!ctx) {
        transport_fail_set(fail, "transport", NULL, "out of memory creating its TLS context");
        return -ENOMEM;
    }
    int rc = 0;
    if (wolfSSL_CTX_SetMinVersion(ctx,
                                  cl->tls_min_version == 13 ? WOLFSSL_TLSV1_3 : WOLFSSL_TLSV1_2) !=
        WOLFSSL_SUCCESS) {
        transport_fail_set(fail, "tls_min_version", NULL, "wolfSSL refused it");
        rc = -EINVAL;
    }
    if (rc == 0)
        rc = load_identity(ctx, cl, fail);
    if (rc == 0)
        rc = load_verify(ctx, cl, fail);
    if (rc == 0)
        rc = load_ciphers(ctx, cl, fail);
    /* A resumed TLS 1.2 session does not carry the client's certificate in
     * this wolfSSL (and a TLS 1.3 one only while the session cache still
     * holds it): the auth plugin would see a client without one. Where
     * client certificates are asked for, every handshake is a full one. */
    if (rc == 0 && (!cl->tls_resumption || cl->tls_verify_client != CONFIG_TLS_VERIFY_NONE))
        rc = resumption_off(ctx, fail);
    if (rc < 0) {
        wolfSSL_CTX_free(ctx);
        return rc;
    }
    wolfSSL_CTX_SetIORecv(ctx, io_recv);
    wolfSSL_CTX_SetIOSend(ctx, io_send);
    *out = ctx;
    return 0;
}

/* A generation with the listener's default context (its certificates by
 * server name are added by tls_sni_create). 0, or -errno with *fail. */
static int gen_create(const struct config_listener *cl, struct transport_fail *fail,
                      struct tls_gen **out)
{
    struct tls_gen *g = calloc(1, sizeof(*g));
    if (!g) {
        transport_fail_set(fail, "transport", NULL, "out of memory");
        return -ENOMEM;
    }
    int rc = ctx_create(cl, fail, &g->ctx);
    if (rc < 0) {
        free(g);
        return rc;
    }
    atomic_init(&g->refs, 1); /* the listener's */
    *out = g;
    return 0;
}

static int tls_listener_create(const struct config_listener *cl, void **out,
                               struct transport_fail *fail)
{
    if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
        transport_fail_set(fail, "transport", NULL, "cannot initialise wolfSSL");
        fail_log(cl, fail);
        return -EIO;
    }
    struct tls_listener *tl = calloc(1, sizeof(*tl));
    if (!tl)
        transport_fail_set(fail, "transport", NULL, "out of memory");
    int rc = tl ? gen_create(cl, fail, &tl->cur) : -ENOMEM;
    if (rc < 0) {
        fail_log(cl, fail);
        free(tl);
        wolfSSL_Cleanup();
        return rc;
    }
    pthread_mutex_init(&tl->lock, NULL);
    tl->handshake_ms = cl->tls_handshake_timeout * 1000u;
    tl->verify = cl->tls_verify_client != CONFIG_TLS_VERIFY_NONE;
    snprintf(tl->name, sizeof(tl->name), "%s", cl->name);
    *out = tl;
    return 0;
}

/* At start-up, before any shard runs: the first generation's names. */
static int tls_listener_sni(void *ctx, const struct config *cfg, uint32_t li,
                            struct transport_fail *fail)
{
    struct tls_listener *tl = ctx;
    int rc = tls_sni_create(tl->cur->ctx, cfg, li, ctx_create, fail, &tl->cur->sni);
    if (rc < 0)
        fail_log(&cfg->listeners[li], fail);
    return rc;
}

/* Reload, first step, on the main thread while the shards run: the whole
 * generation is built off their loops from the files, into `next`; what
 * is served does not change. */
static int tls_listener_prepare(void *ctx, const struct config *cfg, uint32_t li,
                                struct transport_fail *fail)
{
    struct tls_listener *tl = ctx;
    gen_release(tl->next); /* one a reload left pending (none: no-op) */
    tl->next = NULL;
    struct tls_gen *g;
    int rc = gen_create(&cfg->listeners[li], fail, &g);
    if (rc == 0 && (rc = tls_sni_create(g->ctx, cfg, li, ctx_create, fail, &g->sni)) < 0)
        gen_release(g);
    if (rc == 0)
        tl->next = g;
    return rc;
}

/* Second step: `next` published at once; the handshakes that began with
 * the previous generation finish with it, and the last of them frees it. */
static void tls_listener_commit(void *ctx, bool serve)
{
    struct tls_listener *tl = ctx;
    struct tls_gen *g = tl->next;
    tl->next = NULL;
    if (!g || !serve) {
        gen_release(g);
        return;
    }
    pthread_mutex_lock(&tl->lock);
    struct tls_gen *old = tl->cur;
    tl->cur = g;
    pthread_mutex_unlock(&tl->lock);
    gen_release(old);
    log_info("listener %s: TLS certificates reloaded", tl->name);
}

/* At exit, once no stream is left. */
static void tls_listener_destroy(void *ctx)
{
    struct tls_listener *tl = ctx;
    gen_release(tl->next);
    gen_release(tl->cur);
    pthread_mutex_destroy(&tl->lock);
    free(tl);
    wolfSSL_Cleanup();
}

/* This Debian wolfSSL caches fixed-point ECC tables per thread (FP_ECC),
 * and tls_record its AES keys: a shard that ran TLS streams frees its own
 * before it ends. */
static void tls_thread_fini(void)
{
    wc_ecc_fp_free();
    tls_record_thread_fini();
}

const struct transport_kind transport_kind_tls = {
    .ops = &tls_ops,
    .listener_create = tls_listener_create,
    .listener_sni = tls_listener_sni,
    .listener_prepare = tls_listener_prepare,
    .listener_commit = tls_listener_commit,
    .listener_destroy = tls_listener_destroy,
    .thread_fini = tls_thread_fini,
};
