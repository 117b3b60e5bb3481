/*
 * tls_peer: what tls.c's streams learn of the client at the end of the
 * handshake (tls_peer.c), certificates chosen by server name
 * (tls_sni.c), and whether a key is a certificate's (tls_keycheck.c). Inside the net layer only:
 * these read the WOLFSSL and WOLFSSL_CTX that tls.c owns.
 */
#ifndef RINGMQ_NET_TLS_PEER_H
#define RINGMQ_NET_TLS_PEER_H

#include <stdbool.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "config/config.h"
#include "net/transport.h"
#include "net/xprt_info.h"

/*
 * Everything the auth plugin may want of a stream whose handshake just
 * completed, copied out of `ssl` (which may free its handshake resources,
 * or itself, afterwards): version, cipher, server name, and when
 * `verify` (the listener asks for client certificates) and the client
 * showed one that verified: its subject, CN, SANs, SHA-256. Called once,
 * from the one place the handshake completes; the caller owns (free())
 * the result. NULL when out of memory.
 */
struct xprt_info *tls_capture_peer(WOLFSSL *ssl, bool verify);

/* Whether the private key in key_file (PEM) is the key of the first
 * certificate of cert_file (PEM): it signs, the certificate's public key
 * verifies. false as well when either cannot be read. Run it after wolfSSL
 * loaded both (its own check compares only the key types). */
bool tls_key_matches_cert(const char *cert_file, const char *key_file);

/* A listener's certificates by server name. */
struct tls_sni;

/* Build the certificate of each [listener.NAME] sni.HOST of listener `li`
 * of cfg: a WOLFSSL_CTX each, made by make_ctx from the listener's
 * settings (so CAs, CRL, versions and ciphers are the listener's), with
 * the name's own chain and key loaded over the default ones; and have
 * `def` switch a handshake to it when the client asks for HOST. 0 (and
 * *out NULL when the listener names none), or -errno with *fail saying
 * which file and why (not logged). */
int tls_sni_create(WOLFSSL_CTX *def, const struct config *cfg, uint32_t li,
                   int (*make_ctx)(const struct config_listener *cl, struct transport_fail *fail,
                                   WOLFSSL_CTX **out),
                   struct transport_fail *fail, struct tls_sni **out);

/* Free what tls_sni_create made (NULL: nothing), once no stream uses it. */
void tls_sni_destroy(struct tls_sni *s);

#endif
