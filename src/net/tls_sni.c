/*
 * tls_sni: a TLS listener's certificates by server name ([listener.NAME]
 * sni.HOST.cert / sni.HOST.key): one WOLFSSL_CTX per name, which a
 * handshake switches to (wolfSSL_set_SSL_CTX) from wolfSSL's server name
 * callback when the ClientHello asks for HOST; any other name, or none,
 * keeps the listener's default certificate.
 *
 * Built and destroyed on the main thread while no shard runs; the
 * callback runs on the shards, reading the table only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/log.h"
#include "net/tls_peer.h"

struct tls_sni {
    uint32_t n;
    struct {
        char host[CONFIG_SNI_HOST_MAX];
        WOLFSSL_CTX *ctx;
    } v[CONFIG_MAX_SNI];
};

/* wolfSSL's CallbackSniRecv: 0 goes on (with the name's context, or the
 * default one for a name not listed). */
static int sni_select(WOLFSSL *ssl, int *alert, void *arg)
{
    (void)alert;
    const struct tls_sni *s = arg;
    const char *name = wolfSSL_get_servername(ssl, WOLFSSL_SNI_HOST_NAME);
    if (!name || !name[0])
        return 0;
    for (uint32_t i = 0; i < s->n; i++)
        if (strcasecmp(s->v[i].host, name) == 0) {
            /* The name's context was made from the same listener settings:
             * only the chain and key differ. */
            if (!wolfSSL_set_SSL_CTX(ssl, s->v[i].ctx))
                return 2; /* fatal_return: no handshake with the wrong certificate */
            return 0;
        }
    return 0;
}

/* The name's chain and key over the default ones. */
static int load_name(WOLFSSL_CTX *ctx, const struct config_sni *e, struct transport_fail *fail)
{
    char kcert[sizeof(fail->key)], kkey[sizeof(fail->key)];
    snprintf(kcert, sizeof(kcert), "sni.%s.cert", e->host);
    snprintf(kkey, sizeof(kkey), "sni.%s.key", e->host);
    int err = 0;
    char why[sizeof(fail->why)];
    if (access(e->cert, R_OK) != 0 || access(e->key, R_OK) != 0) {
        err = errno;
        snprintf(why, sizeof(why), "cannot read: %s", strerror(err));
        bool cert = access(e->cert, R_OK) != 0;
        transport_fail_set(fail, cert ? kcert : kkey, cert ? e->cert : e->key, why);
    } else if (wolfSSL_CTX_use_certificate_chain_file(ctx, e->cert) != WOLFSSL_SUCCESS) {
        transport_fail_set(fail, kcert, e->cert, "not a PEM certificate chain");
    } else if (wolfSSL_CTX_use_PrivateKey_file(ctx, e->key, WOLFSSL_FILETYPE_PEM) !=
               WOLFSSL_SUCCESS) {
        transport_fail_set(fail, kkey, e->key, "not a PEM private key");
    } else if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS ||
               !tls_key_matches_cert(e->cert, e->key)) {
        transport_fail_set(fail, kkey, e->key, "does not match its cert");
    } else {
        return 0;
    }
    return err ? -err : -EINVAL;
}

int tls_sni_create(WOLFSSL_CTX *def, const struct config *cfg, uint32_t li,
                   int (*make_ctx)(const struct config_listener *cl, struct transport_fail *fail,
                                   WOLFSSL_CTX **out),
                   struct transport_fail *fail, struct tls_sni **out)
{
    *out = NULL;
    const struct config_listener *cl = &cfg->listeners[li];
    struct tls_sni *s = NULL;
    for (uint32_t i = 0; i < cfg->nsni; i++) {
        const struct config_sni *e = &cfg->sni[i];
        if (e->listener != li || !e->cert[0])
            continue; /* another listener's, or a tenant binding only */
        if (!s && !(s = calloc(1, sizeof(*s)))) {
            transport_fail_set(fail, "transport", NULL, "out of memory");
            return -ENOMEM;
        }
        int rc = make_ctx(cl, fail, &s->v[s->n].ctx);
        if (rc == 0 && (rc = load_name(s->v[s->n].ctx, e, fail)) < 0)
            wolfSSL_CTX_free(s->v[s->n].ctx);
        if (rc < 0) {
            tls_sni_destroy(s);
            return rc;
        }
        memcpy(s->v[s->n++].host, e->host, sizeof(e->host));
    }
    if (s) {
        wolfSSL_CTX_set_servername_callback(def, sni_select);
        wolfSSL_CTX_set_servername_arg(def, s);
    }
    *out = s;
    return 0;
}

void tls_sni_destroy(struct tls_sni *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < s->n; i++)
        wolfSSL_CTX_free(s->v[i].ctx);
    free(s);
}
