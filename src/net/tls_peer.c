/*
 * tls_peer: the client as one TLS handshake showed it (see tls_peer.h),
 * copied into an xprt_info. Runs on the stream's shard, once per
 * handshake; touches only the WOLFSSL it is given.
 */
#include "net/tls_peer.h"

#include <stdio.h>
#include <string.h>

#include <wolfssl/openssl/x509v3.h>
#include <wolfssl/wolfcrypt/sha256.h>

/* The certificate's parts, as text, into the draft (pointing into t). */
struct cert_text {
    char subject[XPRT_INFO_FIELD_MAX + 1];
    char cn[256];
    char sha256[2 * WC_SHA256_DIGEST_SIZE + 1];
    char sans[XPRT_INFO_MAX_SANS][XPRT_INFO_FIELD_MAX + 1];
};

static void hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* DNS, email and URI names of the subjectAltName extension. */
static void cert_sans(WOLFSSL_X509 *x, struct cert_text *t, struct xprt_info_draft *d)
{
    WOLF_STACK_OF(WOLFSSL_GENERAL_NAME) *names =
        wolfSSL_X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    if (!names)
        return;
    int n = wolfSSL_sk_GENERAL_NAME_num(names);
    for (int i = 0; i < n && d->n_sans < XPRT_INFO_MAX_SANS; i++) {
        WOLFSSL_GENERAL_NAME *g = wolfSSL_sk_GENERAL_NAME_value(names, i);
        const char *kind = !g                     ? NULL
                           : g->type == GEN_DNS   ? "DNS"
                           : g->type == GEN_EMAIL ? "email"
                           : g->type == GEN_URI   ? "URI"
                                                  : NULL;
        if (!kind || !g->d.ia5)
            continue;
        const unsigned char *s = wolfSSL_ASN1_STRING_get0_data(g->d.ia5);
        int len = wolfSSL_ASN1_STRING_length(g->d.ia5);
        if (!s || len < 0 || memchr(s, 0, (size_t)len))
            continue; /* an embedded NUL would let the name say two things */
        char *out = t->sans[d->n_sans];
        snprintf(out, sizeof(t->sans[0]), "%s:%.*s", kind, len, (const char *)s);
        d->sans[d->n_sans++] = out;
    }
    wolfSSL_GENERAL_NAMES_free(names);
}

/* The client's own certificate (the first of the chain it sent). */
static void cert_read(WOLFSSL *ssl, struct cert_text *t, struct xprt_info_draft *d)
{
    WOLFSSL_X509_CHAIN *chain = wolfSSL_get_peer_chain(ssl);
    if (!chain || wolfSSL_get_chain_count(chain) < 1)
        return;
    const unsigned char *der = wolfSSL_get_chain_cert(chain, 0);
    int len = wolfSSL_get_chain_length(chain, 0);
    if (!der || len <= 0)
        return;
    uint8_t digest[WC_SHA256_DIGEST_SIZE];
    if (wc_Sha256Hash(der, (word32)len, digest) != 0)
        return;
    const unsigned char *p = der;
    WOLFSSL_X509 *x = wolfSSL_d2i_X509(NULL, &p, len);
    if (!x)
        return;
    hex(digest, sizeof(digest), t->sha256);
    d->sha256 = t->sha256;
    WOLFSSL_X509_NAME *name = wolfSSL_X509_get_subject_name(x);
    if (name && wolfSSL_X509_NAME_oneline(name, t->subject, (int)sizeof(t->subject)))
        d->subject = t->subject;
    if (name &&
        wolfSSL_X509_NAME_get_text_by_NID(name, NID_commonName, t->cn, (int)sizeof(t->cn)) > 0)
        d->cn = t->cn;
    cert_sans(x, t, d);
    wolfSSL_X509_free(x);
    d->cert_verified = d->sha256 != NULL && d->subject != NULL;
}

struct xprt_info *tls_capture_peer(WOLFSSL *ssl, bool verify)
{
    static _Thread_local struct cert_text t; /* large: not on a shard's stack */
    struct xprt_info_draft d = {
        .tls_version = wolfSSL_get_version(ssl),
        .cipher = wolfSSL_get_cipher_name(ssl),
        .sni = wolfSSL_get_servername(ssl, WOLFSSL_SNI_HOST_NAME),
    };
    if (d.sni && !d.sni[0])
        d.sni = NULL;
    /* A handshake that completed under a verifying listener checked the
     * certificate the client showed (or refused it): only one that passed
     * gets this far, and X509_V_OK says so once more. */
    if (verify && wolfSSL_get_verify_result(ssl) == 0)
        cert_read(ssl, &t, &d);
    return xprt_info_pack(&d);
}
