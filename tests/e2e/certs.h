/*
 * e2e certs: test certificates made by the openssl CLI in a directory of
 * the test's own (nothing with a private key is committed), for the TLS
 * tests (tls_test.c, admin_tls_test.c).
 *
 * The script runs in that directory after a prelude that sets
 *   $k                            options of a new P-256 key (no passphrase)
 *   san.ext                       subjectAltName for localhost and 127.0.0.1
 *   ca_new NAME CN                a CA: NAME.crt (subject /CN=CN), NAME.key
 *   sign NAME ISSUER DAYS 'OPT'   NAME.crt (subject /CN=NAME) and NAME.key,
 *                                 signed by ISSUER.crt, valid DAYS days (may
 *                                 be negative), with openssl x509 options OPT
 * and stops at the first command that fails (set -e). The output goes to
 * DIR/openssl.log.
 */
#ifndef RINGMQ_E2E_CERTS_H
#define RINGMQ_E2E_CERTS_H

#include <stddef.h>

/* Make a fresh directory /tmp/ringmq-TAG-XXXXXX into dir[cap] and run
 * `script` there (asserts that it succeeds). */
void certs_make(char *dir, size_t cap, const char *tag, const char *script);

/* Remove the directory and everything in it (dir empty: nothing). */
void certs_remove(const char *dir);

#endif
