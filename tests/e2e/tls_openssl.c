/* OpenSSL for tls_test.c, apart from it: wolfSSL's headers there and
 * OpenSSL's name the same constants. */
#include "tls_openssl.h"

#include <stdlib.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

void *tls12_only_ssl_ctx(const char *ca)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx && (SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION) != 1 ||
                SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void tls_ssl_ctx_free(void *ctx)
{
    SSL_CTX_free(ctx);
}

struct ossl_client {
    SSL_CTX *ctx;
    SSL *ssl;
};

struct ossl_client *ossl_connect(int fd, const char *ca, int max_version, const char *sni,
                                 void *session)
{
    struct ossl_client *c = calloc(1, sizeof(*c));
    if (!c || !(c->ctx = SSL_CTX_new(TLS_client_method())))
        goto fail;
    int v = max_version == 12 ? TLS1_2_VERSION : max_version == 13 ? TLS1_3_VERSION : 0;
    if ((v && SSL_CTX_set_max_proto_version(c->ctx, v) != 1) ||
        SSL_CTX_load_verify_locations(c->ctx, ca, NULL) != 1)
        goto fail;
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    if (!(c->ssl = SSL_new(c->ctx)) || SSL_set_fd(c->ssl, fd) != 1)
        goto fail;
    if (sni && SSL_set_tlsext_host_name(c->ssl, sni) != 1)
        goto fail;
    if (session && SSL_set_session(c->ssl, session) != 1)
        goto fail;
    if (SSL_connect(c->ssl) == 1)
        return c;
fail:
    ossl_close(c);
    return NULL;
}

bool ossl_resumed(const struct ossl_client *c)
{
    return SSL_session_reused(c->ssl) == 1;
}

bool ossl_subject(const struct ossl_client *c, char *out, size_t cap)
{
    X509 *x = SSL_get1_peer_certificate(c->ssl);
    bool ok = x && X509_NAME_oneline(X509_get_subject_name(x), out, (int)cap);
    X509_free(x);
    return ok;
}

bool ossl_write(struct ossl_client *c, const void *buf, size_t n)
{
    return SSL_write(c->ssl, buf, (int)n) == (int)n;
}

bool ossl_read(struct ossl_client *c, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        int k = SSL_read(c->ssl, (char *)buf + got, (int)(n - got));
        if (k <= 0)
            return false;
        got += (size_t)k;
    }
    return true;
}

void *ossl_session(const struct ossl_client *c)
{
    return SSL_get1_session(c->ssl);
}

void ossl_session_free(void *session)
{
    SSL_SESSION_free(session);
}

void ossl_close(struct ossl_client *c)
{
    if (!c)
        return;
    /* Without a close_notify sent OpenSSL marks the session not resumable. */
    if (c->ssl && SSL_is_init_finished(c->ssl))
        SSL_shutdown(c->ssl);
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    free(c);
}
