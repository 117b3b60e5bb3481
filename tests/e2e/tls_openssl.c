/* OpenSSL for tls_test.c, apart from it: wolfSSL's headers there and
 * OpenSSL's name the same constants. */
#include "tls_openssl.h"

#include <openssl/ssl.h>

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
