/* OpenSSL helpers for tls_test.c. */
#ifndef RINGMQ_E2E_TLS_OPENSSL_H
#define RINGMQ_E2E_TLS_OPENSSL_H

/* A new client SSL_CTX that offers TLS 1.2 at most (libmosquitto's
 * tls_version is only a minimum) and trusts the CA file `ca`, for
 * client_opts.tls_ssl_ctx; NULL on failure. */
void *tls12_only_ssl_ctx(const char *ca);

/* Free it once its client is destroyed (libmosquitto does not). */
void tls_ssl_ctx_free(void *ctx);

#endif
