/* OpenSSL helpers for tls_test.c. */
#ifndef RINGMQ_E2E_TLS_OPENSSL_H
#define RINGMQ_E2E_TLS_OPENSSL_H

#include <stdbool.h>
#include <stddef.h>

/* A new client SSL_CTX that offers TLS 1.2 at most (libmosquitto's
 * tls_version is only a minimum) and trusts the CA file `ca`, for
 * client_opts.tls_ssl_ctx; NULL on failure. */
void *tls12_only_ssl_ctx(const char *ca);

/* Free it once its client is destroyed (libmosquitto does not). */
void tls_ssl_ctx_free(void *ctx);

/* An OpenSSL client over connected socket fd (which the caller closes,
 * and bounds with SO_RCVTIMEO), trusting the CA file `ca`, offering TLS
 * 1.2 or 1.3 at most (max_version 12 or 13; 0: both), asking for server
 * name `sni` (NULL: none), and offering to resume `session` (from
 * ossl_session; NULL: none). NULL when the handshake failed. */
struct ossl_client;
struct ossl_client *ossl_connect(int fd, const char *ca, int max_version, const char *sni,
                                 void *session);

/* Whether the handshake resumed the session offered. */
bool ossl_resumed(const struct ossl_client *c);

/* The server certificate's subject, as "/CN=..." into out. */
bool ossl_subject(const struct ossl_client *c, char *out, size_t cap);

/* Exactly n bytes of application data out or in; false on failure. */
bool ossl_write(struct ossl_client *c, const void *buf, size_t n);
bool ossl_read(struct ossl_client *c, void *buf, size_t n);

/* The session to resume later (a TLS 1.3 ticket arrives after the
 * handshake: read something first); freed with ossl_session_free. */
void *ossl_session(const struct ossl_client *c);
void ossl_session_free(void *session);

/* Free the client (NULL: nothing); the socket stays the caller's. */
void ossl_close(struct ossl_client *c);

#endif
