/*
 * admin/tls: HTTPS for the admin API ([admin] tls_cert, tls_key,
 * tls_client_ca). libmicrohttpd runs TLS with GnuTLS, the library Debian
 * builds it with; this module reads the PEM files, checks them with GnuTLS
 * before libmicrohttpd is handed them (a file that cannot be read, a key
 * that does not match its certificate, a CA file without a certificate:
 * one clear line instead of libmicrohttpd's "cannot start"), and checks a
 * caller's certificate on a connection's GnuTLS session.
 *
 * The only file of the project that includes GnuTLS (README,
 * "Dependencies"): the MQTT listeners' TLS is wolfSSL's (net/tls.c).
 * Loading runs on the main thread, or the one that reloads;
 * handshakes and admin_tls_peer_check on the admin HTTP thread. Logs
 * nothing: it returns reasons.
 */
#ifndef RINGMQ_ADMIN_TLS_H
#define RINGMQ_ADMIN_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

/* The PEM text of the files, each malloc'd and NUL-terminated (as
 * libmicrohttpd's MHD_OPTION_HTTPS_MEM_* take them, and keep pointing at
 * for the daemon's life); NULL when not configured. */
struct admin_tls {
    char *cert, *key; /* both or neither: NULL, plain HTTP */
    char *client_ca;  /* NULL: no client certificate asked for */
};

/* The largest PEM file read (a certificate chain, a CA bundle). */
#define ADMIN_TLS_FILE_MAX (1024u * 1024u)

/* Read and check cfg's admin_tls_* files into *t (zeroed first; nothing
 * read when tls_cert is empty). 0, or -errno with "admin: tls_...: PATH:
 * reason" in err and nothing left allocated. */
int admin_tls_load(struct admin_tls *t, const struct config *cfg, char *err, size_t errlen);

/* Free what admin_tls_load read (a zeroed *t: nothing). */
void admin_tls_fini(struct admin_tls *t);

/*
 * What the API serves, one generation per load of the files: the
 * certificate chain and key each handshake is given, and the CAs a
 * caller's certificate is checked against. A reload builds a new one and
 * publishes it: new connections get it, those open keep theirs. One admin
 * API per process (GnuTLS's certificate callback has no argument).
 */
struct admin_tls_creds;

/* Build a generation from t (loaded by admin_tls_load, with TLS on);
 * cfg names the files in err. 0, or -errno with err set and *out NULL. */
int admin_tls_creds_create(const struct admin_tls *t, const struct config *cfg,
                           struct admin_tls_creds **out, char *err, size_t errlen);

/* Serve c from the next handshake on (takes ownership; the generations
 * before stay valid until admin_tls_creds_free_all). One thread at a time. */
void admin_tls_creds_publish(struct admin_tls_creds *c);

/* Free a generation never published (NULL: no-op). */
void admin_tls_creds_destroy(struct admin_tls_creds *c);

/* Free every generation published: the daemon is stopped, no handshake
 * or peer check can run. */
void admin_tls_creds_free_all(void);

/* The certificate callback for MHD_OPTION_HTTPS_CERT_CALLBACK (a
 * gnutls_certificate_retrieve_function2 *): the generation published last. */
void *admin_tls_cert_callback(void);

/* Whether the caller on the GnuTLS session `session` (a gnutls_session_t,
 * from MHD_CONNECTION_INFO_GNUTLS_SESSION; borrowed) showed a certificate
 * chain that verifies against the tls_client_ca of the generation
 * published last: true, or false with why the certificate was refused in
 * why[whylen]. */
bool admin_tls_peer_check(void *session, char *why, size_t whylen);

#endif
